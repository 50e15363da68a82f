/* test_wrap.c — co_spawn_wait_for and co_spawn_shield: asyncio's
 * wait_for(coro, t) and shield(coro) as one element of a gather, and what
 * cancelling the returned task does. Virtual clock throughout. */
#include "testutil.h"

#include <math.h>
#include <stdint.h>

static int cleaned; /* bodies that saw their sleep cut short */
static int finished;

static void *sleeper(void *arg) {
    double secs = (double)(intptr_t)arg;
    if (co_sleep(secs) < 0) {
        cleaned++;
        return NULL;
    }
    finished++;
    return (void *)(intptr_t)(secs * 10);
}

static void *failer(void *arg) { return co_fail(-EIO, "disk %s gone", (char *)arg); }

static void *gather_with_timeouts(void *arg) {
    co_task *ts[3] = {co_spawn_wait_for(sleeper, (void *)10, 1.0),
                      co_spawn_wait_for(sleeper, (void *)0, 1.0), /* (sleeps 0: done at once) */
                      co_spawn_wait_for(failer, "sdb", 1.0)};
    for (int i = 0; i < 3; i++) cr_assert_not_null(ts[i]);
    co_result r[3];
    double t0 = co_time();
    cr_assert_eq(co_gather(ts, 3, r, CO_RETURN_ERRORS), 0);
    cr_assert_eq(r[0].state, CO_FAILED);
    cr_assert_eq(r[0].err, -ETIMEDOUT);
    cr_assert(strstr(r[0].msg, "timed out after 1 s"), "%s", r[0].msg);
    cr_assert_eq(cleaned, 1, "the timed-out task was cancelled and its cleanup ran");
    cr_assert_eq(r[1].state, CO_DONE);
    cr_assert_eq(r[2].state, CO_FAILED);
    cr_assert_eq(r[2].err, -EIO);
    cr_assert_str_eq(r[2].msg, "disk sdb gone");
    cr_assert(fabs(co_time() - t0 - 1.0) < 0.01, "took %.3f s", co_time() - t0);
    for (int i = 0; i < 3; i++) co_task_release(ts[i]);

    co_task *ok = co_spawn_wait_for(sleeper, (void *)2, 5.0);
    void *v;
    cr_assert_eq(co_join(ok, &v), 0);
    cr_assert_eq((intptr_t)v, 20);
    co_task_release(ok);
    return NULL;
}

Test(wrap, wait_for_as_an_element_of_gather) {
    cleaned = finished = 0;
    tu_run_ok(gather_with_timeouts, NULL);
}

static void *cancel_outer(void *arg) {
    co_task *t = co_spawn_wait_for(sleeper, (void *)10, 5.0);
    co_sleep(1);
    cr_assert_eq(co_cancel(t, "stop"), 1);
    cr_assert_eq(co_join(t, NULL), -ECANCELED);
    cr_assert_eq(co_task_state(t), CO_CANCELLED);
    cr_assert_eq(cleaned, 1, "fn's task was cancelled and waited for");
    co_task_release(t);

    t = co_spawn_wait_for(sleeper, (void *)10, 5.0); /* cancelled before it ran */
    co_cancel(t, NULL);
    cr_assert_eq(co_join(t, NULL), -ECANCELED);
    co_task_release(t);
    co_sleep(20);
    cr_assert_eq(finished, 0, "fn never started, or was cancelled");
    return NULL;
}

Test(wrap, cancelling_wait_for_cancels_fn) {
    cleaned = finished = 0;
    tu_run_ok(cancel_outer, NULL);
}

static void *shielded(void *arg) {
    co_future *sh = co_spawn_shield(sleeper, (void *)3);
    cr_assert_not_null(sh);
    co_task *w = co_spawn_wait_for(sleeper, (void *)1, 5.0);
    co_task *ts[2] = {sh, w};
    co_sleep(0.5);
    co_cancel(sh, NULL); /* cancels the waiter's view only */
    co_result r[2];
    cr_assert_eq(co_gather(ts, 2, r, CO_RETURN_ERRORS), 0);
    cr_assert_eq(r[0].state, CO_CANCELLED);
    cr_assert_eq(r[1].state, CO_DONE);
    co_task_release(sh);
    co_task_release(w);
    co_sleep(5);
    cr_assert_eq(finished, 2, "the shielded task ran to its end");
    cr_assert_eq(cleaned, 0);

    sh = co_spawn_shield(sleeper, (void *)1); /* not cancelled: its value */
    void *v;
    cr_assert_eq(co_join(sh, &v), 0);
    cr_assert_eq((intptr_t)v, 10);
    co_task_release(sh);
    return NULL;
}

Test(wrap, shield_survives_the_outer_cancel) {
    cleaned = finished = 0;
    tu_run_ok(shielded, NULL);
}

Test(wrap, bad_arguments) {
    co_loop_set_current(NULL);
    errno = 0;
    cr_assert_null(co_spawn_wait_for(sleeper, NULL, 1));
    cr_assert_eq(errno, CO_ENOLOOP);
    cr_assert_null(co_spawn_shield(sleeper, NULL));
    cr_assert_eq(errno, CO_ENOLOOP);
    co_loop *L = tu_loop();
    cr_assert_null(co_spawn_wait_for(NULL, NULL, 1));
    cr_assert_eq(errno, EINVAL);
    cr_assert_null(co_spawn_wait_for(sleeper, NULL, NAN));
    cr_assert_eq(errno, EINVAL);
    cr_assert_null(co_spawn_shield(NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    tu_close(L);
}
