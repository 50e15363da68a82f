/* testutil.h — helpers shared by the Criterion tests.
 *
 * Every test builds its own loop (virtual clock unless it measures real
 * time), runs tasks on it, and ends with tu_close(), which asserts that the
 * loop closes cleanly: no task left that would not finish, nothing leaked
 * (LeakSanitizer checks the rest in the ASan pass). Reports the loop makes
 * (never-retrieved errors, slow steps, ...) are captured in tu_reports. */
#ifndef CORIO_TESTUTIL_H
#define CORIO_TESTUTIL_H

#include <corio.h>
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char tu_reports[16384];
static int tu_nreports;

static void tu_report(co_loop *loop, const char *msg, void *arg) {
    (void)loop;
    (void)arg;
    size_t len = strlen(tu_reports);
    snprintf(tu_reports + len, sizeof tu_reports - len, "%s\n", msg);
    tu_nreports++;
}

static inline co_loop *tu_loop_opts(bool virtual_clock, bool debug, double slow) {
    co_loop_opts o = {0};
    o.virtual_clock = virtual_clock;
    o.debug = debug;
    o.slow_step = slow;
    o.report = tu_report;
    co_loop *L = co_loop_new(&o);
    cr_assert_not_null(L, "co_loop_new: %s", strerror(errno));
    co_loop_set_current(L);
    return L;
}
static inline co_loop *tu_loop(void) { return tu_loop_opts(true, false, 0); }

static inline void tu_close(co_loop *L) {
    int rc = co_loop_close(L);
    cr_assert_eq(rc, 0, "co_loop_close: %s; reports:\n%s", co_err_name(rc), tu_reports);
    cr_assert_eq(co_loop_free(L), 0);
    cr_assert_null(co_loop_current());
}

/* Runs fn(arg) as a task to completion; returns what co_join would. */
static inline int tu_run(co_loop *L, co_fn fn, void *arg, void **value) {
    co_task *t = co_spawn(fn, arg);
    cr_assert_not_null(t, "co_spawn: %s", co_strerror(-errno));
    int rc = co_loop_run_until_complete(L, t, value);
    co_task_release(t);
    return rc;
}

/* From a task: spawns fn(arg), lets it run for `secs`, cancels it, waits
 * for it to finish; returns what co_join returned. */
static inline int tu_cancel_after(co_fn fn, void *arg, double secs) {
    co_task *t = co_spawn(fn, arg);
    cr_assert_not_null(t, "co_spawn: %s", co_strerror(-errno));
    co_sleep(secs);
    co_cancel(t, NULL);
    int rc = co_join(t, NULL);
    co_task_release(t);
    return rc;
}

/* The common case: fn(arg) as a task on a fresh virtual-clock loop must
 * finish with a value, and the loop must then close cleanly. */
static inline void tu_run_ok(co_fn fn, void *arg) {
    co_loop *L = tu_loop();
    int rc = tu_run(L, fn, arg, NULL);
    cr_assert_eq(rc, 0, "task ended with %s", co_err_name(rc));
    tu_close(L);
}

/* What was written to the redirected stderr (cr_redirect_stderr() first).
 * Tests look for their line in it rather than compare all of it: sanitizer
 * runtimes may add notes of their own (ASan warns once about swapcontext). */
static inline const char *tu_stderr(void) {
    static char buf[8192];
    fflush(stderr);
    FILE *f = cr_get_redirected_stderr();
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    return buf;
}

/* An ordered trace of events, for asserting interleavings. */
static char tu_trace[8192];
static inline void tu_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void tu_log(const char *fmt, ...) {
    size_t len = strlen(tu_trace);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tu_trace + len, sizeof tu_trace - len, fmt, ap);
    va_end(ap);
    len = strlen(tu_trace);
    if (len + 1 < sizeof tu_trace) {
        tu_trace[len] = ' ';
        tu_trace[len + 1] = 0;
    }
}

/* A whole (small) file into buf, NUL-terminated; returns its length. */
static inline size_t tu_read_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
    return n;
}

#endif

