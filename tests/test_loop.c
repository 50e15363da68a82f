/* test_loop.c — loop life cycle: new / run / stop / close / free, the
 * current loop, nested and wrong-thread use, debug mode. */
#include "testutil.h"

#include <criterion/redirect.h>

#include <pthread.h>
#include <stdint.h>

static void *ret_arg(void *arg) { return arg; }

static void stop_cb(void *arg) { co_loop_stop(arg); }

Test(loop, run_forever_until_stop) {
    co_loop *L = tu_loop();
    cr_assert_eq(co_loop_current(), L);
    cr_assert_eq(co_call_later(5.0, stop_cb, L, NULL), 0);
    cr_assert_eq(co_loop_run_forever(L), 0);
    cr_assert_eq(co_time(), 5.0);
    tu_close(L);
}

static void count_cb(void *arg) { (*(int *)arg)++; }

Test(loop, stop_before_run_runs_one_turn) {
    co_loop *L = tu_loop();
    int n = 0;
    co_call_soon(count_cb, &n, NULL);
    co_call_later(1.0, count_cb, &n, NULL);
    co_loop_stop(L);
    cr_assert_eq(co_loop_run_forever(L), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(co_time(), 0.0, "a stopping loop does not wait for timers");
    tu_close(L);
}

static void *sleep_then(void *arg) {
    co_sleep(10);
    return arg;
}

Test(loop, run_until_complete_stopped_early) {
    co_loop *L = tu_loop();
    co_task *t = co_spawn(sleep_then, (void *)5);
    co_call_later(1.0, stop_cb, L, NULL);
    cr_assert_eq(co_loop_run_until_complete(L, t, NULL), -EINTR);
    void *v;
    cr_assert_eq(co_loop_run_until_complete(L, t, &v), 0);
    cr_assert_eq(v, (void *)5);
    cr_assert_eq(co_loop_run_until_complete(L, t, &v), 0, "already finished");
    cr_assert_eq(co_loop_run_until_complete(L, NULL, &v), -EINVAL);
    co_task_release(t);
    tu_close(L);
}

static void *nested_run(void *arg) {
    co_loop *L = co_loop_current();
    cr_assert_eq(co_loop_run_forever(L), -CO_ERUNNING);
    cr_assert_eq(co_loop_run_until_complete(L, co_current(), NULL), -CO_ERUNNING);
    cr_assert_eq(co_loop_close(L), -CO_ERUNNING);
    cr_assert_eq(co_loop_free(L), -CO_ERUNNING);
    co_loop *other = co_loop_new(NULL);
    cr_assert_not_null(other);
    cr_assert_eq(co_loop_run_forever(other), -CO_ERUNNING, "one running loop per thread");
    cr_assert_eq(co_loop_free(other), 0);
    return NULL;
}

Test(loop, nested_run_refused) {
    tu_run_ok(nested_run, NULL);
}

Test(loop, two_loops_one_thread) {
    co_loop *A = tu_loop();
    co_loop_opts o = {.report = tu_report};
    co_loop *B = co_loop_new(&o);
    cr_assert_eq(co_loop_current(), A, "the first loop stays current");
    co_loop_set_current(B);
    co_task *tb = co_spawn(ret_arg, (void *)2);
    co_loop_set_current(A);
    co_task *ta = co_spawn(ret_arg, (void *)1);
    cr_assert_eq(co_task_loop(tb), B);
    cr_assert_eq(co_loop_run_until_complete(A, tb, NULL), -CO_EWRONGLOOP);
    void *v;
    cr_assert_eq(co_loop_run_until_complete(B, tb, &v), 0);
    cr_assert_eq(v, (void *)2);
    cr_assert_eq(co_loop_current(), A, "running B does not steal A's place");
    cr_assert_eq(co_loop_run_until_complete(A, ta, &v), 0);
    co_task_release(ta);
    co_task_release(tb);
    cr_assert_eq(co_loop_free(B), 0);
    tu_close(A);
    cr_assert(strstr(tu_reports, "co_loop_run_until_complete"), "%s", tu_reports);
}

struct foreign {
    co_loop *L;
    co_task *t;
    int rc_cancel, rc_on_done, rc_set, rc_cancel_h;
    co_handle h;
};

static void noop_done(co_task *t, void *arg) {}

static void *foreign_thread(void *arg) {
    struct foreign *f = arg;
    /* (not co_loop_close / co_loop_run_forever: a loop that is not running
     * moves to the thread that closes or runs it; tests/mt_thread.c) */
    f->rc_cancel = co_cancel(f->t, NULL);
    f->rc_on_done = co_on_done(f->t, noop_done, NULL);
    f->rc_set = co_future_set_result(f->t, NULL);
    f->rc_cancel_h = co_handle_cancel(f->h);
    return NULL;
}

Test(loop, wrong_thread_is_an_error) {
    co_loop *L = tu_loop();
    struct foreign f = {.L = L};
    f.t = co_future_new();
    cr_assert_eq(co_call_later(1, count_cb, NULL, &f.h), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, foreign_thread, &f), 0);
    pthread_join(th, NULL);
    cr_assert_eq(f.rc_cancel, -CO_EWRONGLOOP);
    cr_assert_eq(f.rc_on_done, -CO_EWRONGLOOP);
    cr_assert_eq(f.rc_set, -CO_EWRONGLOOP);
    cr_assert_eq(f.rc_cancel_h, -CO_EWRONGLOOP);
    cr_assert(strstr(tu_reports, "another thread"), "%s", tu_reports);
    cr_assert_eq(co_task_state(f.t), CO_PENDING, "nothing changed");
    cr_assert_eq(co_handle_cancel(f.h), 1);
    co_task_release(f.t);
    tu_close(L);
}

Test(loop, close_is_idempotent_and_free_without_close) {
    co_loop *L = tu_loop();
    cr_assert_eq(co_loop_close(L), 0);
    cr_assert_eq(co_loop_close(L), 0);
    cr_assert_eq(co_loop_run_forever(L), -CO_ECLOSED);
    cr_assert_eq(co_loop_free(L), 0);
    co_loop *M = tu_loop();
    co_task_release(co_spawn(sleep_then, NULL));
    cr_assert_eq(co_loop_free(M), 0, "free closes: cancels and drains");
    cr_assert_eq(co_loop_free(NULL), 0);
    cr_assert_eq(co_loop_close(NULL), -EINVAL);
}

Test(loop, handle_outlives_its_loop) {
    co_loop *L = tu_loop();
    co_task *t = co_spawn(ret_arg, (void *)3);
    void *v;
    cr_assert_eq(co_loop_run_until_complete(L, t, &v), 0);
    tu_close(L);
    /* the task's handle is still ours: readable, then released */
    cr_assert_eq(co_task_state(t), CO_DONE);
    cr_assert_null(co_task_loop(t));
    cr_assert_eq(co_cancel(t, NULL), 0);
    co_task_release(t);
}

Test(loop, no_loop_clock) {
    cr_assert_eq(co_now(), 0);
    cr_assert_eq(co_time(), 0.0);
    cr_assert_eq(co_all_tasks(NULL, NULL, 0), 0);
}

Test(loop, real_clock_is_monotonic_ns) {
    co_loop *L = tu_loop_opts(false, false, 0);
    int64_t a = co_now();
    cr_assert_gt(a, 0);
    co_loop_stop(L);
    co_loop_run_forever(L);
    cr_assert_geq(co_now(), a);
    tu_close(L);
}

static void *busy(void *arg) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t end = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (int64_t)(intptr_t)arg * 1000000;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec >= end) break;
    }
    return NULL;
}

static void busy_cb(void *arg) { busy(arg); }

Test(loop, debug_reports_slow_steps) {
    co_loop *L = tu_loop_opts(false, true, 0.01);
    co_task_opts o = {.name = "cruncher"};
    co_task *t = co_spawn_opts(busy, (void *)30, &o);
    co_task *quick = co_spawn(ret_arg, NULL);
    co_call_soon(busy_cb, (void *)30, NULL);
    cr_assert_eq(co_loop_run_until_complete(L, t, NULL), 0);
    cr_assert_eq(co_loop_run_until_complete(L, quick, NULL), 0);
    co_loop_stop(L);
    co_loop_run_forever(L);
    cr_assert(strstr(tu_reports, "task \"cruncher\" held the loop for"), "%s", tu_reports);
    cr_assert(strstr(tu_reports, "callback"), "%s", tu_reports);
    cr_assert_eq(tu_nreports, 2, "%s", tu_reports);
    co_task_release(t);
    co_task_release(quick);
    tu_close(L);
}

Test(loop, no_debug_no_reports) {
    co_loop *L = tu_loop_opts(false, false, 0.01);
    co_task *t = co_spawn(busy, (void *)30);
    cr_assert_eq(co_loop_run_until_complete(L, t, NULL), 0);
    cr_assert_eq(tu_nreports, 0);
    co_task_release(t);
    tu_close(L);
}

Test(loop, default_report_goes_to_stderr) {
    cr_redirect_stderr();
    co_loop *L = co_loop_new(NULL);
    co_task *t = co_spawn((co_fn)ret_arg, NULL);
    co_loop_run_until_complete(L, t, NULL);
    co_task_release(t);
    co_loop_free(L);
    co_loop *M = co_loop_new(NULL);
    co_future *f = co_future_new();
    co_task_set_name(f, "Future-1");
    co_future_set_error(f, -EIO, "disk on fire");
    co_task_release(f);
    co_loop_free(M);
    const char *err = tu_stderr();
    cr_assert(strstr(err, "corio: Task error was never retrieved: Future-1: disk on fire (EIO)\n"), "%s", err);
}

static void *join_orphan(void *arg) { return (void *)(intptr_t)co_join(arg, NULL); }

Test(loop, orphaned_handle_in_another_loop) {
    co_loop *L = tu_loop();
    co_future *f = co_future_new();
    tu_close(L);
    co_loop *M = tu_loop();
    void *v;
    cr_assert_eq(tu_run(M, join_orphan, f, &v), 0);
    cr_assert_eq((intptr_t)v, -CO_ECLOSED);
    cr_assert_eq(co_loop_run_until_complete(M, f, NULL), -CO_ECLOSED);
    cr_assert_eq(co_on_done(f, noop_done, NULL), -CO_ECLOSED);
    cr_assert_eq(co_future_set_result(f, NULL), -CO_ECLOSED);
    co_task_release(f);
    tu_close(M);
}

static void *close_other(void *arg) {
    co_loop *other = arg;
    cr_assert_eq(co_loop_close(other), -CO_ERUNNING, "draining it would run a loop inside a loop");
    cr_assert_eq(co_loop_free(other), -CO_ERUNNING);
    return NULL;
}

Test(loop, close_from_inside_another_running_loop_refused) {
    co_loop *L = tu_loop();
    co_loop *M = co_loop_new(NULL);
    co_loop_set_current(M);
    co_task_release(co_spawn(ret_arg, NULL)); /* M has a task to drain */
    co_loop_set_current(L);
    cr_assert_eq(tu_run(L, close_other, M, NULL), 0);
    cr_assert_eq(co_loop_free(M), 0);
    tu_close(L);
}

Test(loop, closed_loop_refuses_new_work) {
    co_loop *L = tu_loop();
    co_future *f = co_future_new();
    cr_assert_eq(co_loop_close(L), 0);
    cr_assert_eq(co_future_set_result(f, NULL), -CO_ECLOSED);
    cr_assert_eq(co_on_done(f, noop_done, NULL), -CO_ECLOSED);
    co_task_release(f);
    cr_assert_eq(co_loop_free(L), 0);
}

Test(loop, stop_before_run_until_complete_counts) {
    co_loop *L = tu_loop();
    co_future *f = co_future_new();
    co_loop_stop(L);
    cr_assert_eq(co_loop_run_until_complete(L, f, NULL), -EINTR, "one turn, then back");
    co_task_release(f);
    tu_close(L);
}

static void *co_run_inside(void *arg) { return (void *)(intptr_t)co_run(ret_arg, NULL, NULL); }

Test(loop, co_run_inside_a_task_refused_without_running_anything) {
    co_loop *L = tu_loop();
    cr_redirect_stderr();
    void *v;
    cr_assert_eq(tu_run(L, co_run_inside, NULL, &v), 0);
    cr_assert_eq((intptr_t)v, 1);
    const char *err = tu_stderr();
    cr_assert(strstr(err, "co_run called while a loop runs on this thread"), "%s", err);
    tu_close(L);
}
