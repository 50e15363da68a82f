/* test_timer.c — call_soon / call_later / call_at, handle cancellation, the
 * timer heap's order, sleeps on the virtual clock, and a real-clock lower
 * bound. */
#include "testutil.h"
#include "core/internal.h" /* the heap, tested directly against a reference */

#include <math.h>
#include <stdint.h>

static void log_cb(void *arg) { tu_log("%s@%g", (char *)arg, co_time()); }

static void *sleep_arg(void *arg) {
    int rc = co_sleep(*(double *)arg);
    return rc ? co_fail(rc, "sleep") : NULL;
}

static void run_for(co_loop *L, double s) { cr_assert_eq(tu_run(L, sleep_arg, &s, NULL), 0); }

Test(timer, call_later_order_and_equal_deadlines_fifo) {
    co_loop *L = tu_loop();
    cr_assert_eq(co_call_later(2.0, log_cb, "c", NULL), 0);
    cr_assert_eq(co_call_later(1.0, log_cb, "a", NULL), 0);
    cr_assert_eq(co_call_later(1.0, log_cb, "b", NULL), 0);
    cr_assert_eq(co_call_at(0.5, log_cb, "at", NULL), 0);
    cr_assert_eq(co_call_soon(log_cb, "soon", NULL), 0);
    cr_assert_eq(co_call_later(-5, log_cb, "negative", NULL), 0);
    cr_assert_eq(co_call_later(2.0, log_cb, "d", NULL), 0);
    run_for(L, 3.0);
    cr_assert_str_eq(tu_trace, "soon@0 negative@0 at@0.5 a@1 b@1 c@2 d@2 ");
    cr_assert_eq(co_time(), 3.0);
    tu_close(L);
}

Test(timer, cancel_handles) {
    co_loop *L = tu_loop();
    co_handle a, b, s;
    cr_assert_eq(co_call_later(1.0, log_cb, "a", &a), 0);
    cr_assert_eq(co_call_later(1.0, log_cb, "b", &b), 0);
    cr_assert_eq(co_call_soon(log_cb, "s", &s), 0);
    cr_assert_eq(co_handle_cancel(a), 1);
    cr_assert_eq(co_handle_cancel(a), 0);
    cr_assert_eq(co_handle_cancel(s), 1);
    cr_assert_eq(co_handle_cancel(s), 0);
    run_for(L, 2.0);
    cr_assert_str_eq(tu_trace, "b@1 ");
    cr_assert_eq(co_handle_cancel(b), 0, "already ran");
    co_handle none = {0};
    cr_assert_eq(co_handle_cancel(none), 0);
    /* a recycled handle does not answer for the old one */
    co_handle c;
    cr_assert_eq(co_call_later(1.0, log_cb, "c", &c), 0);
    cr_assert_eq(co_handle_cancel(a), 0);
    cr_assert_eq(co_handle_cancel(b), 0);
    run_for(L, 2.0);
    cr_assert_str_eq(tu_trace, "b@1 c@3 ");
    tu_close(L);
}

Test(timer, invalid_arguments) {
    co_loop *L = tu_loop();
    cr_assert_eq(co_call_later(NAN, log_cb, "x", NULL), -EINVAL);
    cr_assert_eq(co_call_at(NAN, log_cb, "x", NULL), -EINVAL);
    cr_assert_eq(co_call_soon(NULL, NULL, NULL), -EINVAL);
    tu_close(L);
    cr_assert_eq(co_call_soon(log_cb, "x", NULL), -CO_ENOLOOP);
    cr_assert_eq(co_call_later(1, log_cb, "x", NULL), -CO_ENOLOOP);
}

static void chain_cb(void *arg) {
    int *n = arg;
    if (++*n < 100) cr_assert_eq(co_call_soon(chain_cb, arg, NULL), 0);
}

Test(timer, callbacks_scheduling_callbacks) {
    co_loop *L = tu_loop();
    int n = 0;
    cr_assert_eq(co_call_soon(chain_cb, &n, NULL), 0);
    run_for(L, 0.001);
    cr_assert_eq(n, 100);
    tu_close(L);
}

static void *sleeps(void *arg) {
    double t0 = co_time();
    cr_assert_eq(co_sleep(1.25), 0);
    cr_assert_eq(co_time() - t0, 1.25);
    cr_assert_eq(co_sleep_until(10.0), 0);
    cr_assert_eq(co_time(), 10.0);
    cr_assert_eq(co_sleep_until(5.0), 0); /* in the past: yields only */
    cr_assert_eq(co_time(), 10.0);
    cr_assert_eq(co_sleep(0), 0);
    cr_assert_eq(co_sleep(-1), 0);
    cr_assert_eq(co_sleep(NAN), -EINVAL); /* the public timeout rule */
    cr_assert_eq(co_sleep_ns(1), 0);
    cr_assert_eq(co_now(), 10000000001LL);
    cr_assert_eq(co_sleep(86400.0 * 365), 0); /* a year, in microseconds of real time */
    return NULL;
}

Test(timer, virtual_clock_sleeps_are_exact) {
    co_loop *L = tu_loop();
    cr_assert_eq(co_now(), 0);
    cr_assert_eq(tu_run(L, sleeps, NULL, NULL), 0);
    tu_close(L);
}

static void *many_sleepers(void *arg) {
    enum { N = 2000 };
    static co_task *t[N];
    static int order[N];
    static int pos;
    uint64_t seed = 12345;
    for (int i = 0; i < N; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        static double d[N];
        d[i] = (double)(seed >> 40 & 1023) / 64.0;
        t[i] = co_spawn(sleep_arg, &d[i]);
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(co_join(t[i], NULL), 0);
        co_task_release(t[i]);
    }
    (void)order;
    (void)pos;
    return NULL;
}

Test(timer, thousands_of_sleepers) {
    co_loop *L = tu_loop();
    cr_assert_eq(tu_run(L, many_sleepers, NULL, NULL), 0);
    cr_assert_leq(co_time(), 1023.0 / 64.0);
    tu_close(L);
}

/* The heap against a reference: random adds and removes, pops in
 * (deadline, insertion) order. */
Test(timer, heap_matches_reference) {
    enum { N = 5000 };
    static co__timer t[N];
    static bool armed[N];
    static uint64_t seqof[N];
    co__heap h;
    co__heap_init(&h);
    uint64_t s = 99, seq = 0;
    for (int i = 0; i < N; i++) t[i].idx = CO__TIMER_IDLE;
    for (int step = 0; step < 40000; step++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        int i = (int)(s % N);
        if (!armed[i] || (s >> 32) % 3) {
            cr_assert_eq(co__heap_add(&h, &t[i], (int64_t)((s >> 20) % 64)), 0);
            armed[i] = true;
            seqof[i] = seq++;
        } else {
            cr_assert(co__heap_remove(&h, &t[i]));
            armed[i] = false;
            cr_assert(!co__heap_remove(&h, &t[i]));
        }
    }
    int64_t last_d = -1;
    uint64_t last_seq = 0;
    uint32_t count = 0;
    co__timer *x;
    while ((x = co__heap_pop(&h))) {
        int i = (int)(x - t);
        cr_assert(armed[i]);
        armed[i] = false;
        cr_assert(x->deadline > last_d || (x->deadline == last_d && seqof[i] > last_seq),
                  "order broken at %u", count);
        last_d = x->deadline;
        last_seq = seqof[i];
        count++;
    }
    for (int i = 0; i < N; i++) cr_assert(!armed[i]);
    cr_assert_gt(count, 1000);
    co__heap_fini(&h);
}

static void *real_sleep(void *arg) {
    int64_t t0 = co__clock_ns();
    cr_assert_eq(co_sleep(0.02), 0);
    int64_t dt = co__clock_ns() - t0;
    cr_assert_geq(dt, 20 * 1000 * 1000, "slept %lld ns", (long long)dt);
    return NULL;
}

Test(timer, real_clock_sleep_lower_bound) {
    co_loop *L = tu_loop_opts(false, false, 0);
    cr_assert_eq(tu_run(L, real_sleep, NULL, NULL), 0);
    tu_close(L);
}

static void *sleep_300us(void *arg) {
    int64_t before = co__clock_ns();
    cr_assert_eq(co_sleep(0.0003), 0);
    int64_t after = co__clock_ns();
    cr_assert_geq(after - before, 300000);
    if (arg) { /* default resolution: woken on a whole millisecond at or after the deadline */
        int64_t boundary = (before + 300000 + 999999) / 1000000 * 1000000;
        cr_assert_geq(after, boundary, "woke at %lld, before the ms boundary %lld",
                      (long long)after, (long long)boundary);
    }
    return NULL;
}

Test(timer, default_wakeups_on_whole_milliseconds) {
    co_loop *L = tu_loop_opts(false, false, 0);
    for (int i = 0; i < 5; i++) cr_assert_eq(tu_run(L, sleep_300us, (void *)1, NULL), 0);
    tu_close(L);
}

Test(timer, precise_timers_still_never_early) {
    co_loop_opts o = {.precise_timers = true, .report = tu_report};
    co_loop *L = co_loop_new(&o);
    for (int i = 0; i < 5; i++) cr_assert_eq(tu_run(L, sleep_300us, NULL, NULL), 0);
    tu_close(L);
}
