#!/bin/sh
# Runs every test binary given; prints each one's Criterion summary and a
# final "N passed, N failed" line over all of them. Exits non-zero if any
# test failed or crashed.
total_pass=0 total_fail=0 bad=0
for t in "$@"; do
    out=$("$t" --jobs=2 --timeout=120 2>&1)
    rc=$?
    summary=$(printf '%s\n' "$out" | grep -E '^\[====\] Synthesis:' | tail -n 1)
    p=$(printf '%s' "$summary" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
    f=$(printf '%s' "$summary" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
    c=$(printf '%s' "$summary" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
    p=${p:-0} f=${f:-0} c=${c:-0}
    # Sanitizer reports do not always change a Criterion test's verdict
    # (LeakSanitizer runs as the test process exits): count them as failures.
    if printf '%s\n' "$out" | grep -qE 'ERROR: (Address|Leak|Thread)Sanitizer|WARNING: ThreadSanitizer|runtime error:'; then
        rc=1
    fi
    if [ $rc -ne 0 ] || [ -z "$summary" ]; then
        printf '%s\n' "$out"
        [ "$f" = 0 ] && [ "$c" = 0 ] && f=1
        bad=1
    else
        printf '%s: %s\n' "$(basename "$t")" "$summary"
    fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f + c))
done
echo "$total_pass passed, $total_fail failed"
[ $bad -eq 0 ] && [ $total_fail -eq 0 ]
