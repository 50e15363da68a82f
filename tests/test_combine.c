/* test_combine.c — gather, wait, as_completed, wait_for and shield: their
 * asyncio semantics, the nasty cases (cancel while gathering, a child that
 * ignores a cancel, a timeout at the same instant as the result), on the
 * virtual clock. */
#include "testutil.h"

#include <math.h>
#include <stdint.h>

/* A task that sleeps arg milliseconds and returns arg. */
static void *sleep_ms(void *arg) {
    int rc = co_sleep((double)(intptr_t)arg / 1000);
    if (rc) {
        tu_log("cleanup-%d", (int)(intptr_t)arg);
        return NULL;
    }
    return arg;
}

/* Sleeps arg ms, then fails with -EIO "failed after N". */
static void *fail_ms(void *arg) {
    if (co_sleep((double)(intptr_t)arg / 1000)) return NULL;
    return co_fail(-EIO, "failed after %d", (int)(intptr_t)arg);
}

static co_task *spawn_ms(co_fn fn, int ms) {
    co_task *t = co_spawn(fn, (void *)(intptr_t)ms);
    cr_assert_not_null(t);
    return t;
}

static void release_all(co_task **t, size_t n) {
    for (size_t i = 0; i < n; i++) co_task_release(t[i]);
}

#define V(ms) ((void *)(intptr_t)(ms))

/* ---- gather ---------------------------------------------------------------------- */

static void *gather_order(void *arg) {
    co_task *t[3] = {spawn_ms(sleep_ms, 300), spawn_ms(sleep_ms, 100), spawn_ms(sleep_ms, 200)};
    co_result r[3];
    cr_assert_eq(co_gather(t, 3, r, 0), 0);
    cr_assert_float_eq(co_time(), 0.3, 1e-9);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(r[i].state, CO_DONE);
        cr_assert_eq(r[i].err, 0);
    }
    cr_assert_eq(r[0].value, V(300)); /* the order given, not the order finished */
    cr_assert_eq(r[1].value, V(100));
    cr_assert_eq(r[2].value, V(200));
    cr_assert_float_eq(r[1].time, 0.1, 1e-9, "when it finished");
    cr_assert_float_eq(r[0].time, 0.3, 1e-9);
    release_all(t, 3);
    return NULL;
}
Test(gather, results_in_given_order) { tu_run_ok(gather_order, NULL); }

static void *gather_first_failure(void *arg) {
    co_task *t[3] = {spawn_ms(sleep_ms, 100), spawn_ms(fail_ms, 200), spawn_ms(sleep_ms, 5000)};
    co_result r[3];
    cr_assert_eq(co_gather(t, 3, r, 0), -EIO);
    cr_assert_float_eq(co_time(), 0.2, 1e-9, "returns at the first failure");
    cr_assert_eq(r[0].state, CO_DONE);
    cr_assert_eq(r[1].state, CO_FAILED);
    cr_assert_str_eq(r[1].msg, "failed after 200");
    cr_assert_eq(r[2].state, CO_PENDING, "the sibling keeps running");
    cr_assert_eq(co_task_state(t[2]), CO_PENDING);
    void *v;
    cr_assert_eq(co_join(t[2], &v), 0); /* and finishes normally */
    cr_assert_eq(v, V(5000));
    release_all(t, 3);
    return NULL;
}
Test(gather, first_failure_returns_siblings_run_on) { tu_run_ok(gather_first_failure, NULL); }

static void *gather_return_errors(void *arg) {
    co_task *t[3] = {spawn_ms(fail_ms, 100), spawn_ms(sleep_ms, 300), spawn_ms(sleep_ms, 200)};
    co_cancel(t[2], "no longer needed");
    co_result r[3];
    cr_assert_eq(co_gather(t, 3, r, CO_RETURN_ERRORS), 0);
    cr_assert_float_eq(co_time(), 0.3, 1e-9, "waits for all");
    cr_assert_eq(r[0].state, CO_FAILED);
    cr_assert_eq(r[0].err, -EIO);
    cr_assert_eq(r[1].state, CO_DONE);
    cr_assert_eq(r[1].value, V(300));
    cr_assert_eq(r[2].state, CO_CANCELLED);
    cr_assert_eq(r[2].err, -ECANCELED);
    cr_assert_str_eq(r[2].msg, "no longer needed");
    release_all(t, 3);
    return NULL;
}
Test(gather, return_errors_collects_everything) {
    tu_run_ok(gather_return_errors, NULL);
    cr_assert_eq(tu_nreports, 0, "errors read by gather are retrieved: %s", tu_reports);
}

static void *gather_child_cancelled(void *arg) {
    co_task *t[2] = {spawn_ms(sleep_ms, 1000), spawn_ms(sleep_ms, 2000)};
    co_task *killer = co_spawn(sleep_ms, V(1)); /* just to have time pass */
    co_task_release(killer);
    co_cancel(t[0], NULL); /* cancelled on its own, not through us */
    co_result r[2];
    cr_assert_eq(co_gather(t, 2, r, 0), -ECANCELED);
    cr_assert_float_eq(co_time(), 0.0, 1e-9);
    cr_assert_not(co_cancelled(), "the gathering task itself is not cancelled");
    cr_assert_eq(co_sleep(0.1), 0);
    cr_assert_eq(co_task_state(t[1]), CO_PENDING, "siblings keep running");
    co_cancel(t[1], NULL);
    co_join(t[1], NULL);
    release_all(t, 2);
    return NULL;
}
Test(gather, child_cancelled_counts_as_failure) { tu_run_ok(gather_child_cancelled, NULL); }

static co_task *g_kids[3];
static void *gatherer(void *arg) {
    co_result r[3];
    int rc = co_gather(g_kids, 3, r, 0);
    tu_log("gather:%s", co_err_name(rc));
    for (int i = 0; i < 3; i++) cr_assert_eq(r[i].state, i == 0 ? CO_DONE : CO_CANCELLED);
    return NULL;
}
static void *cancel_while_gathering(void *arg) {
    g_kids[0] = spawn_ms(sleep_ms, 100);
    g_kids[1] = spawn_ms(sleep_ms, 5000);
    g_kids[2] = spawn_ms(sleep_ms, 6000);
    co_task *g = co_spawn(gatherer, NULL);
    cr_assert_eq(co_sleep(1), 0);
    co_cancel(g, NULL);
    cr_assert_eq(co_join(g, NULL), -ECANCELED);
    cr_assert_float_eq(co_time(), 1.0, 1e-9);
    for (int i = 1; i < 3; i++) cr_assert_eq(co_task_state(g_kids[i]), CO_CANCELLED);
    co_task_release(g);
    release_all(g_kids, 3);
    return NULL;
}
Test(gather, cancel_while_gathering_cancels_children_first) {
    tu_run_ok(cancel_while_gathering, NULL);
    /* the children's cleanup ran before the gather returned */
    cr_assert_str_eq(tu_trace, "cleanup-5000 cleanup-6000 gather:ECANCELED ");
}

/* Ignores the cancel once and carries on: sticky cancellation still ends it. */
static void *stubborn(void *arg) {
    int ignored = 0;
    for (int i = 0; i < 100; i++) {
        if (co_sleep(1) == -ECANCELED) {
            ignored++;
            if (ignored == 3) break;
        }
    }
    tu_log("stubborn-ignored-%d", ignored);
    return "ignored";
}
static void *gather_stubborn_waiter(void *arg) {
    co_task **t = arg;
    int rc = co_gather(t, 1, NULL, 0);
    tu_log("gather:%s", co_err_name(rc));
    return NULL;
}
static void *gather_stubborn(void *arg) {
    co_task *kid = co_spawn(stubborn, NULL);
    co_task *g = co_spawn(gather_stubborn_waiter, &kid);
    co_sleep(2.5);
    co_cancel(g, NULL);
    co_join(g, NULL);
    cr_assert_float_eq(co_time(), 2.5, 1e-9, "sticky: the child's later sleeps fail at once");
    cr_assert_eq(co_task_state(kid), CO_CANCELLED, "returning after a cancel is CANCELLED");
    co_task_release(g);
    co_task_release(kid);
    return NULL;
}
Test(gather, child_ignoring_cancel_still_ends) {
    tu_run_ok(gather_stubborn, NULL);
    cr_assert_str_eq(tu_trace, "stubborn-ignored-3 gather:ECANCELED ");
}

static void *gather_bad_args(void *arg) {
    co_task *t[2] = {spawn_ms(sleep_ms, 10), NULL};
    cr_assert_eq(co_gather(t, 2, NULL, 0), -EINVAL);
    cr_assert_eq(co_gather(t, 1, NULL, 42), -EINVAL);
    cr_assert_eq(co_gather(NULL, 1, NULL, 0), -EINVAL);
    cr_assert_eq(co_gather(NULL, 0, NULL, 0), 0, "nothing to wait for");
    co_task *self[2] = {t[0], co_current()};
    cr_assert_eq(co_gather(self, 2, NULL, 0), -EDEADLK);
    cr_assert_eq(co_wait(self, 2, CO_ALL_COMPLETED, CO_FOREVER, NULL, NULL, NULL, NULL), -EDEADLK);
    co_as_completed it;
    cr_assert_eq(co_as_completed_init(&it, self, 2, CO_FOREVER), -EDEADLK);
    cr_assert_eq(co_gather(t, 1, NULL, 0), 0);
    co_task_release(t[0]);
    return NULL;
}
Test(gather, bad_arguments) {
    tu_run_ok(gather_bad_args, NULL);
    co_task *t = NULL;
    cr_assert_eq(co_gather(&t, 0, NULL, 0), -CO_ENOTASK);
}

static co_task *other_loop_task;
static void *gather_wrong_loop(void *arg) {
    co_task *t[1] = {other_loop_task};
    cr_assert_eq(co_gather(t, 1, NULL, 0), -CO_EWRONGLOOP);
    cr_assert_eq(co_wait(t, 1, CO_ALL_COMPLETED, CO_FOREVER, NULL, NULL, NULL, NULL), -CO_EWRONGLOOP);
    cr_assert_eq(co_wait_for(t[0], 1, NULL), -CO_EWRONGLOOP);
    errno = 0;
    cr_assert_null(co_shield(t[0]));
    cr_assert_eq(errno, CO_EWRONGLOOP);
    return NULL;
}
Test(gather, task_of_another_loop) {
    co_loop *B = tu_loop();
    other_loop_task = co_spawn(sleep_ms, V(10));
    co_loop *A = tu_loop();
    cr_assert_eq(tu_run(A, gather_wrong_loop, NULL, NULL), 0);
    cr_assert(strstr(tu_reports, "co_gather") != NULL, "the report names the call: %s", tu_reports);
    tu_close(A);
    co_loop_set_current(B);
    cr_assert_eq(co_loop_run_until_complete(B, other_loop_task, NULL), 0);
    co_task_release(other_loop_task);
    tu_close(B);
}

static void *gather_many(void *arg) {
    enum { N = 1000 };
    co_task **t = malloc(N * sizeof *t);
    co_result *r = malloc(N * sizeof *r);
    for (int i = 0; i < N; i++) t[i] = spawn_ms(sleep_ms, 1 + (i * 7919) % 500);
    cr_assert_eq(co_gather(t, N, r, 0), 0);
    for (int i = 0; i < N; i++) cr_assert_eq(r[i].value, V(1 + (i * 7919) % 500));
    cr_assert_float_eq(co_time(), 0.5, 1e-9);
    release_all(t, N);
    free(t);
    free(r);
    return NULL;
}
Test(gather, a_thousand_tasks) { tu_run_ok(gather_many, NULL); }

static void set_future(void *arg) { co_future_set_result(arg, "from a callback"); }
static void *gather_futures(void *arg) {
    co_future *f = co_future_new();
    co_task *t[2] = {f, spawn_ms(sleep_ms, 10)};
    co_call_later(0.5, set_future, f, NULL);
    co_result r[2];
    cr_assert_eq(co_gather(t, 2, r, 0), 0);
    cr_assert_str_eq(r[0].value, "from a callback");
    cr_assert_float_eq(co_time(), 0.5, 1e-9);
    release_all(t, 2);
    return NULL;
}
Test(gather, futures_too) { tu_run_ok(gather_futures, NULL); }

/* ---- wait --------------------------------------------------------------------------- */

static void *wait_modes(void *arg) {
    co_task *t[3] = {spawn_ms(sleep_ms, 300), spawn_ms(sleep_ms, 100), spawn_ms(sleep_ms, 200)};
    co_task *done[3], *pending[3];
    size_t nd = 99, np = 99;
    cr_assert_eq(co_wait(t, 3, CO_FIRST_COMPLETED, CO_FOREVER, done, &nd, pending, &np), 0);
    cr_assert_float_eq(co_time(), 0.1, 1e-9);
    cr_assert_eq(nd, 1);
    cr_assert_eq(done[0], t[1]);
    cr_assert_eq(np, 2);
    cr_assert_eq(pending[0], t[0]);
    cr_assert_eq(pending[1], t[2]);
    cr_assert_eq(co_wait(t, 3, CO_ALL_COMPLETED, CO_FOREVER, done, &nd, pending, &np), 0);
    cr_assert_float_eq(co_time(), 0.3, 1e-9);
    cr_assert_eq(nd, 3);
    cr_assert_eq(np, 0);
    cr_assert_eq(done[0], t[1], "already finished first, in the order given");
    cr_assert_eq(done[1], t[2], "then in finishing order");
    cr_assert_eq(done[2], t[0]);
    release_all(t, 3);
    return NULL;
}
Test(wait, first_completed_then_all) { tu_run_ok(wait_modes, NULL); }

static void *wait_first_error(void *arg) {
    co_task *t[3] = {spawn_ms(sleep_ms, 100), spawn_ms(fail_ms, 300), spawn_ms(sleep_ms, 1000)};
    co_cancel(t[0], NULL); /* a cancellation is not an error for FIRST_ERROR */
    co_task *done[3];
    size_t nd, np;
    cr_assert_eq(co_wait(t, 3, CO_FIRST_ERROR, CO_FOREVER, done, &nd, NULL, &np), 0);
    cr_assert_float_eq(co_time(), 0.3, 1e-9);
    cr_assert_eq(nd, 2);
    cr_assert_eq(done[0], t[0]);
    cr_assert_eq(done[1], t[1]);
    cr_assert_eq(np, 1);
    co_result r = co_task_result(done[1]);
    cr_assert_eq(r.state, CO_FAILED);
    cr_assert_eq(r.err, -EIO);
    cr_assert_float_eq(r.time, 0.3, 1e-9);
    cr_assert_eq(co_task_state(t[2]), CO_PENDING, "wait cancels nothing");
    cr_assert_eq(co_wait(t, 3, CO_FIRST_ERROR, CO_FOREVER, NULL, &nd, NULL, &np), 0);
    cr_assert_float_eq(co_time(), 0.3, 1e-9, "a failure is already there");
    co_cancel(t[2], NULL);
    co_join(t[2], NULL);
    release_all(t, 3);
    return NULL;
}
Test(wait, first_error) { tu_run_ok(wait_first_error, NULL); }

static void *wait_timeout(void *arg) {
    co_task *t[2] = {spawn_ms(sleep_ms, 100), spawn_ms(sleep_ms, 5000)};
    co_task *done[2], *pending[2];
    size_t nd, np;
    cr_assert_eq(co_wait(t, 2, CO_ALL_COMPLETED, 1.0, done, &nd, pending, &np), 0,
                 "a timeout is not an error (asyncio)");
    cr_assert_float_eq(co_time(), 1.0, 1e-9);
    cr_assert_eq(nd, 1);
    cr_assert_eq(np, 1);
    cr_assert_eq(pending[0], t[1]);
    cr_assert_eq(co_wait(t, 2, CO_ALL_COMPLETED, 0, done, &nd, pending, &np), 0);
    cr_assert_float_eq(co_time(), 1.0, 1e-9, "timeout 0 only looks");
    cr_assert_eq(np, 1);
    cr_assert_eq(co_wait(t, 2, CO_ALL_COMPLETED, CO_FOREVER, NULL, &nd, NULL, &np), 0);
    cr_assert_float_eq(co_time(), 5.0, 1e-9);
    cr_assert_eq(co_wait(t, 0, CO_ALL_COMPLETED, CO_FOREVER, NULL, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(co_wait(t, 2, 7, CO_FOREVER, NULL, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(co_wait(t, 2, CO_ALL_COMPLETED, NAN, NULL, NULL, NULL, NULL), -EINVAL);
    release_all(t, 2);
    return NULL;
}
Test(wait, timeout_reports_pending) { tu_run_ok(wait_timeout, NULL); }

static void *waiter_in_wait(void *arg) {
    co_task **t = arg;
    size_t nd, np;
    int rc = co_wait(t, 2, CO_ALL_COMPLETED, CO_FOREVER, NULL, &nd, NULL, &np);
    tu_log("wait:%s:%zu:%zu", co_err_name(rc), nd, np);
    return NULL;
}
static void *wait_cancelled(void *arg) {
    co_task *t[2] = {spawn_ms(sleep_ms, 100), spawn_ms(sleep_ms, 2000)};
    tu_cancel_after(waiter_in_wait, t, 1);
    cr_assert_eq(co_task_state(t[1]), CO_PENDING, "cancelling the waiter cancels no child");
    void *v;
    cr_assert_eq(co_join(t[1], &v), 0);
    release_all(t, 2);
    return NULL;
}
Test(wait, cancelled_waiter_leaves_children) {
    tu_run_ok(wait_cancelled, NULL);
    cr_assert_str_eq(tu_trace, "wait:ECANCELED:1:1 ");
}

/* ---- as_completed ---------------------------------------------------------------- */

static void *as_completed_order(void *arg) {
    co_task *t[4] = {spawn_ms(sleep_ms, 400), spawn_ms(sleep_ms, 100), spawn_ms(fail_ms, 200),
                     spawn_ms(sleep_ms, 0)};
    co_sleep(0.01); /* t[3] finishes before the iterator exists */
    co_as_completed it;
    cr_assert_eq(co_as_completed_init(&it, t, 4, CO_FOREVER), 0);
    int want[4] = {3, 1, 2, 0};
    double when[4] = {0.01, 0.1, 0.2, 0.4};
    co_task *next;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(co_as_completed_next(&it, &next), 0);
        cr_assert_eq(next, t[want[i]], "step %d", i);
        cr_assert_float_eq(co_time(), when[i], 1e-9);
    }
    cr_assert_eq(co_as_completed_next(&it, &next), 1, "the end");
    cr_assert_eq(co_as_completed_next(&it, &next), 1);
    co_as_completed_fini(&it);
    co_as_completed_fini(&it); /* harmless twice */
    cr_assert_eq(co_task_error(t[2]), -EIO);
    release_all(t, 4);
    return NULL;
}
Test(as_completed, yields_in_finishing_order) { tu_run_ok(as_completed_order, NULL); }

static void *as_completed_timeout(void *arg) {
    co_task *t[3] = {spawn_ms(sleep_ms, 1000), spawn_ms(sleep_ms, 2000), spawn_ms(sleep_ms, 4000)};
    co_as_completed it;
    cr_assert_eq(co_as_completed_init(&it, t, 3, 2.5), 0);
    co_task *next;
    cr_assert_eq(co_as_completed_next(&it, &next), 0);
    cr_assert_eq(co_as_completed_next(&it, &next), 0);
    cr_assert_eq(next, t[1]);
    cr_assert_eq(co_as_completed_next(&it, &next), -ETIMEDOUT);
    cr_assert_float_eq(co_time(), 2.5, 1e-9, "the timeout is overall, from init");
    cr_assert_eq(co_as_completed_next(&it, &next), -ETIMEDOUT, "and stays");
    cr_assert_eq(co_task_state(t[2]), CO_PENDING, "as_completed cancels nothing");
    co_sleep(2); /* t[2] finishes after the timeout: not yielded any more */
    cr_assert_eq(co_task_state(t[2]), CO_DONE);
    cr_assert_eq(co_as_completed_next(&it, &next), -ETIMEDOUT, "for good");
    co_as_completed_fini(&it);
    release_all(t, 3);
    return NULL;
}
Test(as_completed, overall_timeout) { tu_run_ok(as_completed_timeout, NULL); }

static void *as_completed_cancelled(void *arg) {
    co_task *t = spawn_ms(sleep_ms, 1000);
    co_as_completed it;
    cr_assert_eq(co_as_completed_init(&it, &t, 1, CO_FOREVER), 0);
    co_cancel(co_current(), NULL);
    co_task *next;
    cr_assert_eq(co_as_completed_next(&it, &next), -ECANCELED);
    co_as_completed_fini(&it);
    cr_assert_eq(co_as_completed_next(&it, &next), -EINVAL, "finished iterator");
    co_task_release(t);
    return NULL;
}
Test(as_completed, caller_cancelled) {
    co_loop *L = tu_loop();
    cr_assert_eq(tu_run(L, as_completed_cancelled, NULL, NULL), -ECANCELED);
    tu_close(L);
}

/* ---- wait_for -------------------------------------------------------------------------- */

static void *wait_for_cases(void *arg) {
    void *v = NULL;
    co_task *t = spawn_ms(sleep_ms, 500);
    cr_assert_eq(co_wait_for(t, 1.0, &v), 0);
    cr_assert_eq(v, V(500));
    cr_assert_float_eq(co_time(), 0.5, 1e-9);
    cr_assert_eq(co_wait_for(t, 1.0, &v), 0, "already finished");
    co_task_release(t);

    t = spawn_ms(sleep_ms, 30000);
    cr_assert_eq(co_wait_for(t, 3.0, &v), -ETIMEDOUT);
    cr_assert_float_eq(co_time(), 3.5, 1e-9);
    cr_assert_eq(co_task_state(t), CO_CANCELLED, "cancelled and finished before the return");
    cr_assert_str_eq(tu_trace, "cleanup-30000 ");
    co_task_release(t);

    t = spawn_ms(sleep_ms, 100);
    cr_assert_eq(co_wait_for(t, CO_FOREVER, &v), 0, "no limit");
    co_task_release(t);
    cr_assert_eq(co_wait_for(co_current(), 1, NULL), -EDEADLK);
    cr_assert_eq(co_wait_for(NULL, 1, NULL), -EINVAL);
    return NULL;
}
Test(wait_for, result_timeout_and_args) { tu_run_ok(wait_for_cases, NULL); }

/* The task's timer and the timeout fire in the same turn: the result wins. */
static void *wait_for_same_instant(void *arg) {
    co_task *t = spawn_ms(sleep_ms, 1000);
    co_yield(); /* t starts and arms its 1 s timer before ours */
    void *v = NULL;
    cr_assert_eq(co_wait_for(t, 1.0, &v), 0);
    cr_assert_eq(v, V(1000));
    cr_assert_float_eq(co_time(), 1.0, 1e-9);
    co_task_release(t);
    return NULL;
}
Test(wait_for, result_at_the_same_instant_as_timeout_wins) { tu_run_ok(wait_for_same_instant, NULL); }

/* The other order: our timeout is armed first, so it runs first, while the
 * task's sleep has ended but its body has not run on: the timeout wins,
 * as in asyncio (deterministic either way). */
static void *wait_for_same_instant_timeout_first(void *arg) {
    co_task *t = spawn_ms(sleep_ms, 1000);
    cr_assert_eq(co_wait_for(t, 1.0, NULL), -ETIMEDOUT);
    cr_assert_float_eq(co_time(), 1.0, 1e-9);
    cr_assert_eq(co_task_state(t), CO_CANCELLED);
    co_task_release(t);
    return NULL;
}
Test(wait_for, timeout_armed_first_wins_the_same_instant) {
    tu_run_ok(wait_for_same_instant_timeout_first, NULL);
}

static void *fails_in_cleanup(void *arg) {
    if (co_sleep(60) == -ECANCELED) return co_fail(-EPIPE, "cleanup failed");
    return NULL;
}
static void *wait_for_cleanup_failure(void *arg) {
    co_task *t = co_spawn(fails_in_cleanup, NULL);
    cr_assert_eq(co_wait_for(t, 1.0, NULL), -EPIPE, "the failure is not hidden by the timeout");
    co_task_release(t);
    return NULL;
}
Test(wait_for, failure_during_cancel_is_returned) {
    tu_run_ok(wait_for_cleanup_failure, NULL);
    cr_assert_eq(tu_nreports, 0, "%s", tu_reports);
}

static void *wait_for_waiter(void *arg) {
    int rc = co_wait_for(arg, 100, NULL);
    tu_log("waiter:%s", co_err_name(rc));
    return NULL;
}
static void *wait_for_cancel_waiter(void *arg) {
    co_task *t = spawn_ms(sleep_ms, 50000);
    tu_cancel_after(wait_for_waiter, t, 1);
    cr_assert_eq(co_task_state(t), CO_CANCELLED, "cancelling the waiter cancels the task");
    cr_assert_float_eq(co_time(), 1.0, 1e-9);
    co_task_release(t);
    return NULL;
}
Test(wait_for, cancelling_waiter_cancels_task) {
    tu_run_ok(wait_for_cancel_waiter, NULL);
    cr_assert_str_eq(tu_trace, "cleanup-50000 waiter:ECANCELED ");
}

/* ---- shield --------------------------------------------------------------------------- */

static void *shield_waiter(void *arg) {
    co_future *s = co_shield(arg);
    cr_assert_not_null(s);
    int rc = co_join(s, NULL);
    tu_log("waiter:%s@%.1f", co_err_name(rc), co_time());
    co_task_release(s);
    return NULL;
}
static void *shield_under_cancel(void *arg) {
    co_task *job = spawn_ms(sleep_ms, 2000);
    tu_cancel_after(shield_waiter, job, 1);
    cr_assert_eq(co_task_state(job), CO_PENDING, "the shielded task runs on");
    void *v;
    cr_assert_eq(co_join(job, &v), 0);
    cr_assert_eq(v, V(2000));
    cr_assert_float_eq(co_time(), 2.0, 1e-9);
    co_task_release(job);
    return NULL;
}
Test(shield, waiter_cancelled_task_runs_on) {
    tu_run_ok(shield_under_cancel, NULL);
    cr_assert_str_eq(tu_trace, "waiter:ECANCELED@1.0 ");
}

static void *shield_passes_outcome(void *arg) {
    co_task *job = spawn_ms(sleep_ms, 300);
    co_future *s = co_shield(job);
    void *v;
    cr_assert_eq(co_join(s, &v), 0);
    cr_assert_eq(v, V(300));
    co_task_release(s);
    s = co_shield(job); /* of a finished task: finished at once */
    cr_assert(co_task_done(s));
    cr_assert_eq(co_join(s, &v), 0);
    co_task_release(s);
    co_task_release(job);

    job = spawn_ms(fail_ms, 100);
    s = co_shield(job);
    cr_assert_eq(co_join(s, NULL), -EIO);
    cr_assert_str_eq(co_task_message(s), "failed after 100");
    co_task_release(s);
    co_task_release(job);
    errno = 0;
    cr_assert_null(co_shield(NULL));
    cr_assert_eq(errno, EINVAL);
    return NULL;
}
Test(shield, passes_value_and_error) {
    tu_run_ok(shield_passes_outcome, NULL);
    cr_assert_eq(tu_nreports, 0, "the error was read through the shield: %s", tu_reports);
}

static void *shield_unread_error(void *arg) {
    co_task_opts o = {.name = "shielded-job"};
    co_task *job = co_spawn_opts(fail_ms, V(2000), &o);
    tu_cancel_after(shield_waiter, job, 1);
    co_task_release(job);
    co_sleep(2); /* the job fails with nobody to read it */
    return NULL;
}
Test(shield, later_error_nobody_reads_is_reported) {
    tu_run_ok(shield_unread_error, NULL);
    cr_assert(strstr(tu_reports, "never retrieved: shielded-job: failed after 2000") != NULL,
              "reports: %s", tu_reports);
}

/* A shield over a future nobody completes, left when the loop goes: no leak
 * (LeakSanitizer checks in the ASan pass). */
static void *shield_leftover(void *arg) {
    co_future *f = co_future_new();
    co_future *s = co_shield(f);
    co_task_release(f);
    co_task_release(s);
    return NULL;
}
Test(shield, pending_at_loop_free) { tu_run_ok(shield_leftover, NULL); }

/* ---- every waiting call under a timeout scope, and cancelled while waiting ---------- */

static co_task *slow[2];
static int call_gather(void) { return co_gather(slow, 2, NULL, 0); }
static int call_wait(void) { return co_wait(slow, 2, CO_ALL_COMPLETED, CO_FOREVER, NULL, NULL, NULL, NULL); }
static int call_wait_for(void) { return co_wait_for(slow[0], 100, NULL); }
static int call_as_completed(void) {
    co_as_completed it;
    co_task *next;
    int rc = co_as_completed_init(&it, slow, 2, CO_FOREVER);
    if (rc == 0) rc = co_as_completed_next(&it, &next);
    co_as_completed_fini(&it);
    return rc;
}
static int call_shield(void) {
    co_future *s = co_shield(slow[0]);
    int rc = co_join(s, NULL);
    co_task_release(s);
    return rc;
}
typedef int (*combine_call)(void);
static combine_call calls[] = {call_gather, call_wait, call_wait_for, call_as_completed, call_shield};

static int call_rc, scope_rc;
/* arg: the call; a 1 s fail-after scope around it. */
static void *call_in_scope(void *arg) {
    co_scope s;
    co_scope_enter(&s, 1.0, CO_FAIL_AFTER);
    call_rc = ((combine_call)arg)();
    scope_rc = co_scope_exit(&s);
    return NULL;
}
static void *call_plain(void *arg) {
    call_rc = ((combine_call)arg)();
    scope_rc = 0;
    return NULL;
}

/* Each call, first timed out by a scope, then cancelled by another task,
 * while it waits on two 10 s tasks; checks the clock and what became of
 * the children (gather and wait_for cancel theirs, the others do not). */
static void *each_combinator(void *arg) {
    bool cancels_children[] = {true, false, true, false, false};
    for (int mode = 0; mode < 2; mode++) {
        for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
            double t0 = co_time();
            slow[0] = co_spawn(sleep_ms, V(10000));
            slow[1] = co_spawn(sleep_ms, V(10000));
            co_task *w = co_spawn(mode ? call_plain : call_in_scope, (void *)calls[i]);
            if (mode) {
                co_sleep(1);
                co_cancel(w, NULL);
            }
            call_rc = scope_rc = 1;
            co_join(w, NULL);
            cr_assert_eq(call_rc, -ECANCELED, "call %zu mode %d: %s", i, mode, co_err_name(call_rc));
            cr_assert_eq(scope_rc, mode ? 0 : -ETIMEDOUT, "call %zu: the scope's own timeout", i);
            cr_assert_float_eq(co_time() - t0, 1.0, 1e-9, "call %zu mode %d", i, mode);
            cr_assert_eq(co_task_state(slow[0]) == CO_CANCELLED, cancels_children[i], "call %zu", i);
            for (int k = 0; k < 2; k++) co_cancel(slow[k], NULL);
            for (int k = 0; k < 2; k++) co_join(slow[k], NULL);
            release_all(slow, 2);
            co_task_release(w);
            tu_trace[0] = 0;
        }
    }
    return NULL;
}
Test(combine, every_call_times_out_and_cancels_while_waiting) { tu_run_ok(each_combinator, NULL); }
