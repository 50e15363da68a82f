/* test_cancel.c — cancellation at every kind of suspension point, sticky
 * cancellation, cancel before start, messages, and loop close. */
#include "testutil.h"
#include "core/internal.h" /* co__suspend: to build a wait that ignores cancellation */

#include <stdint.h>

static int cleanups;

static void *sleep_long(void *arg) {
    int rc = co_sleep(3600);
    cr_assert_eq(rc, -ECANCELED);
    cr_assert(co_cancelled());
    /* sticky: every later suspension point fails at once, so cleanup cannot hang */
    cr_assert_eq(co_sleep(10), -ECANCELED);
    cr_assert_eq(co_yield(), -ECANCELED);
    cleanups++;
    return (void *)1; /* returning after a cancel request still ends CANCELLED */
}

static void *cancel_after(void *arg) {
    co_task *t = co_spawn(sleep_long, NULL);
    cr_assert_eq(co_sleep(1.5), 0);
    cr_assert_eq(co_task_state(t), CO_PENDING);
    cr_assert_eq(co_cancel(t, "shutting down"), 1);
    cr_assert_eq(co_cancel(t, NULL), 1); /* still unfinished: the request stands */
    void *v = (void *)99;
    cr_assert_eq(co_join(t, &v), -ECANCELED);
    cr_assert_eq(v, (void *)99, "no value for a cancelled task");
    cr_assert_eq(co_task_state(t), CO_CANCELLED);
    cr_assert_str_eq(co_task_message(t), "shutting down");
    co_result r = co_task_result(t);
    cr_assert_eq(r.state, CO_CANCELLED);
    cr_assert_eq(r.err, -ECANCELED);
    cr_assert_eq(co_cancel(t, "late"), 0);
    cr_assert_eq(co_time(), 1.5);
    co_task_release(t);
    return NULL;
}

Test(cancel, while_sleeping) {
    co_loop *L = tu_loop();
    cr_assert_eq(tu_run(L, cancel_after, NULL, NULL), 0);
    cr_assert_eq(cleanups, 1);
    tu_close(L);
}

static void *join_forever(void *arg) {
    int rc = co_join((co_task *)arg, NULL);
    tu_log("join:%s", co_err_name(rc));
    return NULL;
}

static void *cancel_joiner(void *arg) {
    co_future *never = co_future_new();
    co_task *j = co_spawn(join_forever, never);
    cr_assert_eq(co_yield(), 0); /* j is now waiting */
    cr_assert_eq(co_cancel(j, NULL), 1);
    cr_assert_eq(co_join(j, NULL), -ECANCELED);
    cr_assert_null(co_task_message(j));
    /* the cancelled waiter left the future's done list: completing it now is harmless */
    cr_assert_eq(co_future_set_result(never, NULL), 0);
    co_task_release(j);
    co_task_release(never);
    return NULL;
}

Test(cancel, while_joining_a_future) {
    tu_run_ok(cancel_joiner, NULL);
    cr_assert_str_eq(tu_trace, "join:ECANCELED ");
}

static void *sleeper(void *arg) { return co_sleep(100) == 0 ? (void *)1 : NULL; }

static void *cancel_task_joiner(void *arg) {
    co_task *s = co_spawn(sleeper, NULL);
    co_task *j = co_spawn(join_forever, s);
    cr_assert_eq(co_sleep(1), 0);
    cr_assert_eq(co_cancel(j, NULL), 1);
    cr_assert_eq(co_join(j, NULL), -ECANCELED);
    cr_assert_eq(co_task_state(s), CO_PENDING, "the joined task is not cancelled with its waiter");
    void *v;
    cr_assert_eq(co_join(s, &v), 0);
    cr_assert_eq(v, (void *)1);
    cr_assert_eq(co_time(), 100);
    co_task_release(s);
    co_task_release(j);
    return NULL;
}

Test(cancel, while_joining_a_task) {
    tu_run_ok(cancel_task_joiner, NULL);
}

static void *yield_loop(void *arg) {
    int n = 0;
    while (co_yield() == 0) n++;
    return (void *)(intptr_t)n;
}

static void *cancel_yielder(void *arg) {
    co_task *y = co_spawn(yield_loop, NULL);
    for (int i = 0; i < 5; i++) co_yield();
    co_cancel(y, NULL);
    cr_assert_eq(co_join(y, NULL), -ECANCELED);
    cr_assert_eq(co_task_state(y), CO_CANCELLED);
    co_task_release(y);
    return NULL;
}

Test(cancel, while_yielding) {
    tu_run_ok(cancel_yielder, NULL);
}

static void *owns_buffer(void *arg) {
    char *buf = arg; /* the task owns it, cancelled or not */
    tu_log("body-ran cancelled=%d", co_cancelled());
    int rc = co_sleep(1);
    free(buf);
    return rc == 0 ? (void *)1 : NULL;
}

static void *cancel_before_start(void *arg) {
    co_task *t = co_spawn(owns_buffer, malloc(64));
    cr_assert_eq(co_cancel(t, "never mind"), 1); /* before it ever ran */
    cr_assert_eq(co_join(t, NULL), -ECANCELED);
    cr_assert_eq(co_task_state(t), CO_CANCELLED);
    co_task_release(t);
    return NULL;
}

Test(cancel, before_start_still_runs_the_body) {
    co_loop *L = tu_loop();
    cr_assert_eq(tu_run(L, cancel_before_start, NULL, NULL), 0);
    cr_assert_str_eq(tu_trace, "body-ran cancelled=1 ");
    tu_close(L); /* LeakSanitizer: the buffer was freed by the body */
}

static void *self_cancel(void *arg) {
    cr_assert_eq(co_cancel(co_current(), "by myself"), 1);
    cr_assert_eq(co_sleep(1), -ECANCELED);
    return NULL;
}

Test(cancel, self_cancel) {
    co_loop *L = tu_loop();
    co_task *t = co_spawn(self_cancel, NULL);
    cr_assert_eq(co_loop_run_until_complete(L, t, NULL), -ECANCELED);
    cr_assert_str_eq(co_task_message(t), "by myself");
    co_task_release(t);
    tu_close(L);
}

static void *fail_after_cancel(void *arg) {
    co_sleep(100);
    return co_fail(-EIO, "cleanup failed");
}

Test(cancel, failure_during_cleanup_wins) {
    co_loop *L = tu_loop();
    co_task *t = co_spawn(fail_after_cancel, NULL);
    co_loop_stop(L);
    co_loop_run_forever(L);
    co_cancel(t, NULL);
    cr_assert_eq(co_loop_run_until_complete(L, t, NULL), -EIO);
    cr_assert_eq(co_task_state(t), CO_FAILED);
    cr_assert_str_eq(co_task_message(t), "cleanup failed");
    co_task_release(t);
    tu_close(L);
}

static void *fail_cancelled(void *arg) { return co_fail(-ECANCELED, "gave up"); }

Test(cancel, co_fail_ecanceled_ends_cancelled) {
    co_loop *L = tu_loop();
    co_task *t = co_spawn(fail_cancelled, NULL);
    cr_assert_eq(co_loop_run_until_complete(L, t, NULL), -ECANCELED);
    cr_assert_eq(co_task_state(t), CO_CANCELLED);
    co_task_release(t);
    tu_close(L);
}

static void *wake_then_cancel(void *arg) {
    co_future *f = co_future_new();
    co_task *j = co_spawn(join_forever, f);
    co_yield();
    co_future_set_result(f, NULL); /* j is woken with success ... */
    co_cancel(j, NULL);            /* ... and cancelled before it runs */
    cr_assert_eq(co_join(j, NULL), -ECANCELED);
    co_task_release(j);
    co_task_release(f);
    return NULL;
}

Test(cancel, woken_then_cancelled_sees_the_cancel) {
    tu_run_ok(wake_then_cancel, NULL);
    /* woken but not yet resumed: the completion is not thrown away (the one
     * wait's rule, core/wait.h); the cancel stays, and the task ends CANCELLED */
    cr_assert_str_eq(tu_trace, "join:OK ");
}

static void *cleanup_sleeper(void *arg) {
    if (co_sleep(3600) == -ECANCELED) tu_log("cleanup");
    return NULL;
}

Test(cancel, close_cancels_and_drains_pending_tasks) {
    co_loop *L = tu_loop();
    for (int i = 0; i < 3; i++) co_task_release(co_spawn(cleanup_sleeper, NULL));
    co_loop_stop(L);
    co_loop_run_forever(L);
    cr_assert_eq(co_all_tasks(L, NULL, 0), 3);
    tu_close(L);
    cr_assert_str_eq(tu_trace, "cleanup cleanup cleanup ");
}

static void *ignores_cancel(void *arg) {
    co_task *self = co_current();
    /* An internal wait that ignores cancellation: parks again when woken. */
    while (co__suspend(self) == -ECANCELED) tu_log("ignored");
    return NULL;
}

Test(cancel, close_reports_tasks_that_would_not_finish) {
    co_loop *L = tu_loop();
    co_task_opts o = {.name = "stubborn"};
    co_task_release(co_spawn_opts(ignores_cancel, NULL, &o));
    co_loop_stop(L);
    co_loop_run_forever(L);
    cr_assert_eq(co_loop_close(L), -EBUSY);
    cr_assert(strstr(tu_reports, "task \"stubborn\" would not finish"), "%s", tu_reports);
    cr_assert_str_eq(tu_trace, "ignored ");
    cr_assert_eq(co_loop_free(L), 0);
}

Test(cancel, cancel_invalid) {
    cr_assert_eq(co_cancel(NULL, NULL), -EINVAL);
    cr_assert(!co_cancelled());
}

static int body_runs;
static void *yield_then_self_cancel(void *arg) {
    body_runs++;
    cr_assert_eq(co_yield(), 0);
    cr_assert_eq(co_cancel(co_current(), "me"), 1); /* must not queue the running task */
    return arg;
}

static void *other_yields(void *arg) {
    co_yield();
    co_yield();
    return NULL;
}

Test(cancel, self_cancel_after_yield_finishes_once) {
    co_loop *L = tu_loop();
    co_task *a = co_spawn(yield_then_self_cancel, (void *)1);
    co_task *b = co_spawn(other_yields, NULL);
    co_task_release(a); /* released early: a rerun would touch freed memory */
    cr_assert_eq(co_loop_run_until_complete(L, b, NULL), 0);
    co_loop_stop(L);
    co_loop_run_forever(L);
    cr_assert_eq(body_runs, 1);
    co_task_release(b);
    tu_close(L);
}

static void *cancel_all_including_me(void *arg) {
    co_yield();
    co_task *list[8];
    size_t n = co_all_tasks(co_loop_current(), list, 8);
    for (size_t i = 0; i < n; i++) co_cancel(list[i], "everyone");
    body_runs++;
    return NULL;
}

Test(cancel, cancel_all_tasks_from_one_of_them) {
    co_loop *L = tu_loop();
    co_task *a = co_spawn(cancel_all_including_me, NULL);
    co_task *b = co_spawn(sleeper, NULL);
    cr_assert_eq(co_loop_run_until_complete(L, a, NULL), -ECANCELED);
    cr_assert_eq(co_loop_run_until_complete(L, b, NULL), -ECANCELED);
    cr_assert_eq(body_runs, 1);
    co_task_release(a);
    co_task_release(b);
    tu_close(L);
}

/* A task parked in co_yield is queued and suspended at once: a cancel (or a
 * scope firing) must still fail the yield it sits in. */
static void *yielder(void *arg) {
    int rc = co_yield();
    tu_log("yield:%s", co_err_name(rc));
    co_scope s;
    co_scope_enter(&s, CO_FOREVER, CO_MOVE_ON);
    *(co_scope **)arg = &s;
    rc = co_yield();
    tu_log("scoped-yield:%s", co_err_name(rc));
    co_scope_exit(&s);
    return NULL;
}
static void *cancel_in_yield(void *arg) {
    co_scope *sp = NULL;
    co_task *a = co_spawn(yielder, &sp);
    co_yield(); /* a runs and parks in co_yield */
    co_cancel(a, NULL);
    co_yield();
    co_join(a, NULL);
    co_task_release(a);
    a = co_spawn(yielder, &sp);
    co_yield();
    co_yield(); /* a passed its first yield and parked in the scoped one */
    cr_assert_not_null(sp);
    co_scope_cancel(sp);
    co_join(a, NULL);
    co_task_release(a);
    return NULL;
}
Test(cancel, task_parked_in_yield) {
    tu_run_ok(cancel_in_yield, NULL);
    cr_assert_str_eq(tu_trace, "yield:ECANCELED scoped-yield:ECANCELED yield:OK scoped-yield:ECANCELED ");
}
