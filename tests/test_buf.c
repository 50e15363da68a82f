/* test_buf.c — the base layer: the shared byte buffer (src/base/buf.h:
 * growth policy, consume and compaction, overflow refusal, zero-length
 * cases) and the environment parser (src/base/env.h). Both are internal:
 * this test includes their headers and links them from libcorio.a. */
#include <stdint.h>

#include "base/buf.h"
#include "base/env.h"
#include "testutil.h"

Test(buf, empty_and_zero_lengths) {
    co__buf b = CO__BUF_INIT;
    cr_assert_eq(co__buf_len(&b), 0);
    cr_assert_str_eq(co__buf_data(&b), "", "an empty buffer's data is \"\", never NULL");
    cr_assert_eq(co__buf_reserve(&b, 0), 0);
    cr_assert_null(b.mem, "reserving 0 allocates nothing");
    cr_assert_eq(co__buf_append(&b, NULL, 0), 0);
    cr_assert_eq(co__buf_prepend(&b, NULL, 0), 0);
    char x;
    cr_assert_eq(co__buf_take(&b, &x, 1), 0);
    co__buf_consume(&b, 0);
    co__buf_commit(&b, 0);
    co__buf_free(&b);
    co__buf_free(&b); /* twice is harmless */
    char *p;
    size_t n = 99;
    cr_assert_eq(co__buf_detach(&b, &p, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_str_eq(p, "");
    free(p);
}

Test(buf, reserve_commit_and_growth) {
    co__buf b = CO__BUF_INIT;
    cr_assert_eq(co__buf_reserve(&b, 10), 0);
    cr_assert_eq(b.cap, CO__BUF_MIN, "the first allocation is CO__BUF_MIN");
    cr_assert_geq(co__buf_room(&b), 10);
    memcpy(co__buf_tail(&b), "0123456789", 10);
    co__buf_commit(&b, 10);
    cr_assert_eq(co__buf_len(&b), 10);
    /* more than the room: doubles */
    cr_assert_eq(co__buf_reserve(&b, CO__BUF_MIN), 0);
    cr_assert_eq(b.cap, 2 * CO__BUF_MIN);
    /* more than twice: exactly what is needed */
    cr_assert_eq(co__buf_reserve(&b, 10 * CO__BUF_MIN), 0);
    cr_assert_eq(b.cap, 10 + 10 * CO__BUF_MIN);
    cr_assert_arr_eq(co__buf_data(&b), "0123456789", 10, "growth keeps the data");
    co__buf_free(&b);
    cr_assert_eq(b.cap, 0);
}

Test(buf, appends_in_order) {
    co__buf b = CO__BUF_INIT;
    char big[100000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 7);
    for (size_t off = 0; off < sizeof big; off += 777)
        cr_assert_eq(co__buf_append(&b, big + off, sizeof big - off < 777 ? sizeof big - off : 777), 0);
    cr_assert_eq(co__buf_len(&b), sizeof big);
    cr_assert_arr_eq(co__buf_data(&b), big, sizeof big);
    co__buf_free(&b);
}

Test(buf, consume_and_compaction) {
    co__buf b = CO__BUF_INIT;
    char fill[CO__BUF_MIN];
    memset(fill, 'a', sizeof fill);
    cr_assert_eq(co__buf_append(&b, fill, sizeof fill), 0);
    cr_assert_eq(co__buf_room(&b), 0);
    co__buf_consume(&b, 100);
    cr_assert_eq(b.off, 100, "consume never copies");
    cr_assert_eq(co__buf_len(&b), CO__BUF_MIN - 100);
    /* room for 100 exists once the data moves to the front: compaction, no growth */
    char *mem = b.mem;
    cr_assert_eq(co__buf_reserve(&b, 100), 0);
    cr_assert_eq(b.mem, mem);
    cr_assert_eq(b.cap, CO__BUF_MIN);
    cr_assert_eq(b.off, 0);
    cr_assert_eq(co__buf_room(&b), 100);
    /* consuming everything resets the start */
    co__buf_consume(&b, co__buf_len(&b));
    cr_assert_eq(b.off, 0);
    cr_assert_eq(co__buf_room(&b), CO__BUF_MIN);
    /* take and prepend round-trip, in front of the data */
    cr_assert_eq(co__buf_append(&b, "world", 5), 0);
    cr_assert_eq(co__buf_prepend(&b, "hello ", 6), 0);
    char out[16] = {0};
    cr_assert_eq(co__buf_take(&b, out, sizeof out), 11);
    cr_assert_str_eq(out, "hello world");
    cr_assert_eq(co__buf_append(&b, "abcdef", 6), 0);
    cr_assert_eq(co__buf_take(&b, out, 3), 3);
    cr_assert_eq(co__buf_prepend(&b, "abc", 3), 0, "into the consumed space");
    cr_assert_eq(b.off, 0);
    cr_assert_arr_eq(co__buf_data(&b), "abcdef", 6);
    co__buf_reset(&b);
    cr_assert_eq(co__buf_len(&b), 0);
    cr_assert_not_null(b.mem, "reset keeps the memory");
    co__buf_free(&b);
}

Test(buf, overflow_is_refused) {
    co__buf b = CO__BUF_INIT;
    cr_assert_eq(co__buf_append(&b, "xy", 2), 0);
    cr_assert_eq(co__buf_reserve(&b, SIZE_MAX), -EINVAL);
    cr_assert_eq(co__buf_reserve(&b, (size_t)1 << 63), -EINVAL);
    cr_assert_eq(co__buf_reserve(&b, ((size_t)1 << 63) + 1), -EINVAL);
    cr_assert_eq(co__buf_reserve(&b, CO__BUF_MAX - 1), -EINVAL, "len + n beyond the maximum");
    cr_assert_eq(co__buf_append(&b, "z", SIZE_MAX), -EINVAL);
    cr_assert_eq(co__buf_prepend(&b, "z", SIZE_MAX), -EINVAL);
    /* within the maximum but more than memory: malloc says no (ASan
     * would rather abort on such a request, so only without it) */
#if !defined(__SANITIZE_ADDRESS__)
    cr_assert_eq(co__buf_reserve(&b, CO__BUF_MAX - 2), -ENOMEM);
#endif
    cr_assert_eq(co__buf_len(&b), 2, "a refused reserve leaves the buffer as it was");
    cr_assert_arr_eq(co__buf_data(&b), "xy", 2);
    co__buf_free(&b);
}

Test(buf, detach_hands_over_a_string) {
    co__buf b = CO__BUF_INIT;
    cr_assert_eq(co__buf_append(&b, "..payload", 9), 0);
    co__buf_consume(&b, 2);
    char *p;
    size_t n;
    cr_assert_eq(co__buf_detach(&b, &p, &n), 0);
    cr_assert_eq(n, 7);
    cr_assert_str_eq(p, "payload", "data at the start, NUL-terminated");
    cr_assert_null(b.mem, "the buffer is left empty");
    free(p);
    co__buf tls = CO__BUF_INIT;
    cr_assert_eq(co__buf_append(&b, "pre", 3), 0);
    co__buf_move(&tls, &b);
    cr_assert_eq(co__buf_len(&tls), 3);
    cr_assert_eq(co__buf_len(&b), 0);
    co__buf_free(&tls);
}

Test(env, booleans) {
    unsetenv("CORIO_TEST_FLAG");
    cr_assert_eq(co__env_bool("CORIO_TEST_FLAG", false), false);
    cr_assert_eq(co__env_bool("CORIO_TEST_FLAG", true), true, "unset: the default");
    setenv("CORIO_TEST_FLAG", "", 1);
    cr_assert_eq(co__env_bool("CORIO_TEST_FLAG", true), true, "empty: the default");
    const char *no[] = {"0", "no", "false", "OFF", "False"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        setenv("CORIO_TEST_FLAG", no[i], 1);
        cr_assert_eq(co__env_bool("CORIO_TEST_FLAG", true), false, "%s", no[i]);
    }
    const char *yes[] = {"1", "yes", "true", "on", "2"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        setenv("CORIO_TEST_FLAG", yes[i], 1);
        cr_assert_eq(co__env_bool("CORIO_TEST_FLAG", false), true, "%s", yes[i]);
    }
    unsetenv("CORIO_TEST_FLAG");
}

Test(env, sizes) {
    size_t v = 7;
    unsetenv("CORIO_TEST_SIZE");
    cr_assert_eq(co__env_size("CORIO_TEST_SIZE", 1, 100, &v), 0);
    cr_assert_eq(v, 7, "unset: untouched");
    setenv("CORIO_TEST_SIZE", "42", 1);
    cr_assert_eq(co__env_size("CORIO_TEST_SIZE", 1, 100, &v), 1);
    cr_assert_eq(v, 42);
    const char *bad[] = {"0", "101", "-1", " 5", "5x", "x", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 7;
        setenv("CORIO_TEST_SIZE", bad[i], 1);
        cr_assert_eq(co__env_size("CORIO_TEST_SIZE", 1, 100, &v), -EINVAL, "%s", bad[i]);
        cr_assert_eq(v, 7, "%s: untouched", bad[i]);
    }
    unsetenv("CORIO_TEST_SIZE");
}

/* CO__ASSERT: checked in the sanitizer builds (-DCO_ASSERTS=1), where a
 * broken invariant aborts; compiled out elsewhere, condition unevaluated. */
#if defined(CO_ASSERTS)
#include <signal.h>
Test(assert, a_broken_invariant_aborts, .signal = SIGABRT) {
    co__buf b = CO__BUF_INIT;
    co__buf_consume(&b, 1); /* more than the buffer holds */
}
#else
Test(assert, compiled_out_of_release_builds) {
    int n = 0;
    CO__ASSERT(++n == 5);
    cr_assert_eq(n, 0, "the condition is not evaluated");
}
#endif
