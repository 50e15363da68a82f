/* test_future.c — plain futures and done-callbacks. */
#include "testutil.h"

#include <stdint.h>

static void *await_future(void *arg) {
    void *v = NULL;
    int rc = co_join((co_future *)arg, &v);
    if (rc) return co_fail(rc, "await failed");
    return v;
}

static void complete_later(void *arg) { cr_assert_eq(co_future_set_result(arg, (void *)42), 0); }

Test(future, set_result_wakes_waiter) {
    co_loop *L = tu_loop();
    co_future *f = co_future_new();
    cr_assert_not_null(f);
    cr_assert_eq(co_task_state(f), CO_PENDING);
    cr_assert_eq(co_call_later(2.0, complete_later, f, NULL), 0);
    void *v;
    cr_assert_eq(tu_run(L, await_future, f, &v), 0);
    cr_assert_eq((intptr_t)v, 42);
    cr_assert_eq(co_time(), 2.0);
    cr_assert(co_task_done(f));
    cr_assert_eq(co_future_set_result(f, NULL), -CO_EINVALSTATE);
    cr_assert_eq(co_future_set_error(f, -EIO, "x"), -CO_EINVALSTATE);
    co_task_release(f);
    tu_close(L);
}

static void fail_later(void *arg) { cr_assert_eq(co_future_set_error(arg, -EPIPE, "peer %s went away", "10.0.0.1"), 0); }

Test(future, set_error_reaches_waiter) {
    co_loop *L = tu_loop();
    co_future *f = co_future_new();
    cr_assert_eq(co_call_soon(fail_later, f, NULL), 0);
    co_task *t = co_spawn(await_future, f);
    cr_assert_eq(co_loop_run_until_complete(L, t, NULL), -EPIPE);
    cr_assert_eq(co_task_error(f), -EPIPE);
    cr_assert_str_eq(co_task_message(f), "peer 10.0.0.1 went away");
    cr_assert_eq(co_task_state(f), CO_FAILED);
    co_task_release(t);
    co_task_release(f);
    tu_close(L);
}

Test(future, invalid_uses) {
    co_loop *L = tu_loop();
    co_future *f = co_future_new();
    cr_assert_eq(co_future_set_error(f, 0, NULL), -EINVAL);
    cr_assert_eq(co_future_set_error(f, 5, NULL), -EINVAL);
    cr_assert_eq(co_future_set_result(NULL, NULL), -EINVAL);
    co_task *t = co_spawn(await_future, f);
    cr_assert_eq(co_future_set_result(t, NULL), -EINVAL); /* tasks finish by returning */
    cr_assert_eq(co_cancel(f, "no longer needed"), 1);
    cr_assert_eq(co_task_state(f), CO_CANCELLED);
    cr_assert_eq(co_cancel(f, NULL), 0);
    cr_assert_eq(co_loop_run_until_complete(L, t, NULL), -ECANCELED);
    cr_assert_str_eq(co_task_message(f), "no longer needed");
    cr_assert_eq(co_task_error(f), -ECANCELED);
    co_task_release(t);
    co_task_release(f);
    tu_close(L);
}

static void record_cb(co_task *t, void *arg) {
    co_result r = co_task_result(t);
    tu_log("cb%d:%s:%ld", (int)(intptr_t)arg, co_state_name(r.state), (long)(intptr_t)r.value);
}

static void *waiter_logs(void *arg) {
    int rc = co_join(arg, NULL);
    tu_log("waiter:%d", rc);
    return NULL;
}

Test(future, callbacks_and_waiters_run_in_registration_order) {
    co_loop *L = tu_loop();
    co_future *f = co_future_new();
    cr_assert_eq(co_on_done(f, record_cb, (void *)1), 0);
    co_task *w = co_spawn(waiter_logs, f);
    co_future *never = co_future_new();
    co_task *step = co_spawn(await_future, never); /* never completes: cancelled below */
    co_loop_stop(L);
    co_loop_run_forever(L); /* one turn: the waiter registers */
    cr_assert_eq(co_on_done(f, record_cb, (void *)2), 0);
    cr_assert_eq(co_on_done(f, record_cb, (void *)3), 0);
    cr_assert_eq(co_on_done(f, record_cb, (void *)2), 0);
    cr_assert_eq(co_on_done_remove(f, record_cb, (void *)2), 2);
    cr_assert_eq(co_on_done_remove(f, record_cb, (void *)9), 0);
    cr_assert_eq(co_future_set_result(f, (void *)7), 0);
    cr_assert_eq(co_loop_run_until_complete(L, w, NULL), 0);
    co_yield(); /* outside a task: no effect */
    co_loop_stop(L);
    co_loop_run_forever(L);
    cr_assert_str_eq(tu_trace, "cb1:DONE:7 waiter:0 cb3:DONE:7 ");
    /* registering on a finished future schedules the callback at once */
    cr_assert_eq(co_on_done(f, record_cb, (void *)4), 0);
    co_loop_stop(L);
    co_loop_run_forever(L);
    cr_assert_str_eq(tu_trace, "cb1:DONE:7 waiter:0 cb3:DONE:7 cb4:DONE:7 ");
    co_cancel(step, NULL);
    co_task_release(w);
    co_task_release(step);
    co_task_release(never);
    co_task_release(f);
    tu_close(L);
}

static void release_in_cb(co_task *t, void *arg) {
    *(int *)arg += 1;
    co_task_release(t); /* the callback's own reference keeps t valid until it returns */
}

Test(future, callback_holds_a_reference) {
    co_loop *L = tu_loop();
    int calls = 0;
    co_future *f = co_future_new();
    co_task_retain(f); /* one reference for the callback to drop */
    cr_assert_eq(co_on_done(f, release_in_cb, &calls), 0);
    co_task_release(f); /* our handle: the registration keeps it alive */
    cr_assert_eq(co_future_set_result(f, NULL), 0);
    co_loop_stop(L);
    co_loop_run_forever(L);
    cr_assert_eq(calls, 1);
    tu_close(L);
}

Test(future, on_done_invalid) {
    co_loop *L = tu_loop();
    co_future *f = co_future_new();
    cr_assert_eq(co_on_done(NULL, record_cb, NULL), -EINVAL);
    cr_assert_eq(co_on_done(f, NULL, NULL), -EINVAL);
    cr_assert_eq(co_on_done_remove(NULL, record_cb, NULL), -EINVAL);
    co_task_release(f);
    tu_close(L);
}

Test(future, pending_future_with_callback_at_close) {
    co_loop *L = tu_loop();
    co_future *f = co_future_new();
    cr_assert_eq(co_on_done(f, record_cb, NULL), 0);
    co_task_release(f); /* only the callback holds it now; it never completes */
    tu_close(L);       /* freed with the loop, no leak, no callback */
    cr_assert_str_eq(tu_trace, "");
}
