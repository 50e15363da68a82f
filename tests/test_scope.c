/* test_scope.c — cancel and timeout scopes: fail-after and move-on,
 * level-triggered expiry, nesting in both orders, outer cancellation never
 * mistaken for the scope's own timeout, shields, moving the deadline, and
 * misuse. Virtual clock. */
#include "testutil.h"

#include <math.h>

#define TIME_IS(x) cr_assert_float_eq(co_time(), (x), 1e-9, "time %.9f", co_time())

static void *fail_after(void *arg) {
    co_scope s;
    cr_assert_eq(co_scope_enter(&s, 1.0, CO_FAIL_AFTER), 0);
    cr_assert_float_eq(co_scope_deadline(&s), 1.0, 1e-9);
    cr_assert_eq(co_sleep(10), -ECANCELED);
    TIME_IS(1.0);
    cr_assert(co_cancelled(), "inside the fired scope");
    /* level-triggered: every suspension point inside keeps failing, at once */
    cr_assert_eq(co_sleep(1), -ECANCELED);
    cr_assert_eq(co_yield(), -ECANCELED);
    TIME_IS(1.0);
    cr_assert_eq(co_scope_exit(&s), -ETIMEDOUT);
    cr_assert(co_scope_expired(&s));
    cr_assert_not(co_cancelled(), "the scope's cancellation stays inside it");
    cr_assert_eq(co_sleep(1), 0);
    TIME_IS(2.0);
    return NULL;
}
Test(scope, fail_after_fires_and_stays_inside) { tu_run_ok(fail_after, NULL); }

static void *move_on(void *arg) {
    co_scope s;
    cr_assert_eq(co_scope_enter(&s, 0.5, CO_MOVE_ON), 0);
    cr_assert_eq(co_sleep(10), -ECANCELED);
    cr_assert_eq(co_scope_exit(&s), 0);
    cr_assert(co_scope_expired(&s));
    TIME_IS(0.5);
    return NULL;
}
Test(scope, move_on_exits_quietly) { tu_run_ok(move_on, NULL); }

static void *not_fired(void *arg) {
    co_scope s;
    cr_assert_eq(co_scope_enter(&s, 5.0, CO_FAIL_AFTER), 0);
    cr_assert_eq(co_sleep(1), 0);
    cr_assert_eq(co_scope_exit(&s), 0);
    cr_assert_not(co_scope_expired(&s));
    cr_assert_eq(co_sleep(10), 0, "the deadline is gone with the scope");
    TIME_IS(11.0);
    co_scope u;
    cr_assert_eq(co_scope_enter(&u, CO_FOREVER, CO_FAIL_AFTER), 0);
    cr_assert(isinf(co_scope_deadline(&u)));
    cr_assert_eq(co_sleep(100), 0, "no deadline");
    cr_assert_eq(co_scope_exit(&u), 0);
    return NULL;
}
Test(scope, deadline_not_reached) { tu_run_ok(not_fired, NULL); }

static void *zero_timeout(void *arg) {
    co_scope s;
    cr_assert_eq(co_scope_enter(&s, 0, CO_FAIL_AFTER), 0);
    cr_assert_eq(co_yield(), -ECANCELED, "already expired");
    cr_assert_eq(co_scope_exit(&s), -ETIMEDOUT);
    TIME_IS(0.0);
    return NULL;
}
Test(scope, zero_timeout_is_expired) { tu_run_ok(zero_timeout, NULL); }

static void *inner_later(void *arg) {
    co_scope outer, inner;
    co_scope_enter(&outer, 1.0, CO_FAIL_AFTER);
    co_scope_enter(&inner, 5.0, CO_FAIL_AFTER);
    cr_assert_eq(co_sleep(10), -ECANCELED);
    TIME_IS(1.0);
    cr_assert_eq(co_scope_exit(&inner), -ECANCELED, "the outer fired: keep unwinding");
    cr_assert_not(co_scope_expired(&inner), "the inner deadline did not pass");
    cr_assert_eq(co_sleep(1), -ECANCELED, "still inside the fired outer scope");
    cr_assert_eq(co_scope_exit(&outer), -ETIMEDOUT);
    cr_assert_eq(co_sleep(1), 0);
    return NULL;
}
Test(scope, nested_inner_deadline_later_than_outer) { tu_run_ok(inner_later, NULL); }

static void *inner_earlier(void *arg) {
    co_scope outer, inner;
    co_scope_enter(&outer, 5.0, CO_FAIL_AFTER);
    co_scope_enter(&inner, 1.0, CO_MOVE_ON);
    cr_assert_eq(co_sleep(10), -ECANCELED);
    cr_assert_eq(co_scope_exit(&inner), 0);
    cr_assert(co_scope_expired(&inner));
    cr_assert_eq(co_sleep(1), 0, "the outer scope has not fired");
    cr_assert_eq(co_scope_exit(&outer), 0);
    cr_assert_not(co_scope_expired(&outer));
    TIME_IS(2.0);
    return NULL;
}
Test(scope, nested_inner_deadline_earlier) { tu_run_ok(inner_earlier, NULL); }

static co_scope *g_scope;
static void *scoped_sleeper(void *arg) {
    co_scope s;
    g_scope = &s;
    co_scope_enter(&s, 10.0, CO_FAIL_AFTER);
    int rc = co_sleep(100);
    tu_log("sleep:%s@%.1f", co_err_name(rc), co_time());
    rc = co_scope_exit(&s);
    tu_log("exit:%s:expired=%d", co_err_name(rc), co_scope_expired(&s));
    return NULL;
}
static void *outer_cancel(void *arg) {
    cr_assert_eq(tu_cancel_after(scoped_sleeper, NULL, 1), -ECANCELED);
    return NULL;
}
Test(scope, outer_cancel_is_not_the_scopes_timeout) {
    tu_run_ok(outer_cancel, NULL);
    cr_assert_str_eq(tu_trace, "sleep:ECANCELED@1.0 exit:ECANCELED:expired=0 ");
}

static void *both(void *arg) {
    co_task *t = co_spawn(scoped_sleeper, NULL);
    co_sleep(10); /* the scope fires at 10 s, and we cancel in the same turn */
    co_cancel(t, NULL);
    co_join(t, NULL);
    co_task_release(t);
    return NULL;
}
Test(scope, fired_and_cancelled_reports_the_cancel) {
    tu_run_ok(both, NULL);
    cr_assert_str_eq(tu_trace, "sleep:ECANCELED@10.0 exit:ECANCELED:expired=1 ");
}

static void *shielded_cleanup(void *arg) {
    int rc = co_sleep(100);
    tu_log("body:%s@%.1f", co_err_name(rc), co_time());
    co_scope sh;
    co_scope_enter(&sh, CO_FOREVER, CO_SHIELD);
    cr_assert_not(co_cancelled(), "shielded");
    rc = co_sleep(2); /* cleanup that must wait */
    tu_log("cleanup:%s@%.1f", co_err_name(rc), co_time());
    rc = co_scope_exit(&sh);
    tu_log("exit:%s", co_err_name(rc));
    tu_log("after:%s", co_err_name(co_sleep(1)));
    return NULL;
}
static void *shield_cancel(void *arg) {
    co_task *t = co_spawn(shielded_cleanup, NULL);
    co_sleep(1);
    co_cancel(t, NULL);
    co_sleep(0.5);
    co_cancel(t, "again"); /* a second cancel does not break the shield either */
    co_join(t, NULL);
    cr_assert_eq(co_task_state(t), CO_CANCELLED);
    co_task_release(t);
    return NULL;
}
Test(scope, shield_protects_cleanup_from_outer_cancel) {
    tu_run_ok(shield_cancel, NULL);
    cr_assert_str_eq(tu_trace, "body:ECANCELED@1.0 cleanup:OK@3.0 exit:ECANCELED after:ECANCELED ");
}

static void *shield_with_deadline(void *arg) {
    co_cancel(co_current(), NULL);
    co_scope sh;
    co_scope_enter(&sh, 1.0, CO_SHIELD | CO_FAIL_AFTER);
    cr_assert_eq(co_sleep(60), -ECANCELED, "the shield's own deadline bounds the cleanup");
    TIME_IS(1.0);
    cr_assert_eq(co_scope_exit(&sh), -ECANCELED, "the outer cancel is still pending");
    return NULL;
}
Test(scope, shield_own_deadline_applies) {
    co_loop *L = tu_loop();
    cr_assert_eq(tu_run(L, shield_with_deadline, NULL, NULL), -ECANCELED);
    tu_close(L);
}

static void *shield_from_outer_scope(void *arg) {
    co_scope outer, sh;
    co_scope_enter(&outer, 1.0, CO_FAIL_AFTER);
    co_scope_enter(&sh, CO_FOREVER, CO_SHIELD);
    cr_assert_eq(co_sleep(2), 0, "the outer scope fires at 1 s; the shield holds");
    TIME_IS(2.0);
    cr_assert_eq(co_scope_exit(&sh), -ECANCELED);
    cr_assert_eq(co_scope_exit(&outer), -ETIMEDOUT);
    return NULL;
}
Test(scope, shield_protects_from_outer_scope) { tu_run_ok(shield_from_outer_scope, NULL); }

static void *reschedule_from_outside(void *arg) {
    co_sleep(0.5);
    cr_assert_eq(co_scope_reschedule(g_scope, 3.0), 0);
    return NULL;
}
static void *moved_deadline(void *arg) {
    co_scope s;
    g_scope = &s;
    co_scope_enter(&s, 1.0, CO_FAIL_AFTER);
    co_task *t = co_spawn(reschedule_from_outside, NULL);
    cr_assert_eq(co_sleep(2), 0, "moved to 3 s by another task");
    cr_assert_float_eq(co_scope_deadline(&s), 3.0, 1e-9);
    cr_assert_eq(co_scope_reschedule(&s, co_time() + 0.25), 0);
    cr_assert_eq(co_sleep(5), -ECANCELED);
    TIME_IS(2.25);
    cr_assert_eq(co_scope_reschedule(&s, 100), -CO_EINVALSTATE, "fired already");
    cr_assert_eq(co_scope_exit(&s), -ETIMEDOUT);
    cr_assert_eq(co_scope_reschedule(&s, 100), -CO_EINVALSTATE, "closed");
    co_scope_enter(&s, 5.0, CO_MOVE_ON);
    cr_assert_eq(co_scope_reschedule(&s, 1.0), 0, "a deadline already passed");
    cr_assert_eq(co_yield(), -ECANCELED);
    cr_assert_eq(co_scope_exit(&s), 0);
    co_task_release(t);
    return NULL;
}
Test(scope, deadline_moves_while_inside) { tu_run_ok(moved_deadline, NULL); }

static void *canceller(void *arg) {
    co_sleep(1);
    cr_assert_eq(co_scope_cancel(g_scope), 0);
    return NULL;
}
static void *manual_cancel(void *arg) {
    co_scope s;
    g_scope = &s;
    co_scope_enter(&s, CO_FOREVER, CO_FAIL_AFTER);
    co_task *t = co_spawn(canceller, NULL);
    cr_assert_eq(co_sleep(10), -ECANCELED);
    TIME_IS(1.0);
    cr_assert_eq(co_scope_exit(&s), 0, "a cancelled scope absorbs its own cancellation");
    cr_assert_not(co_scope_expired(&s));
    cr_assert_eq(co_scope_cancel(&s), -CO_EINVALSTATE);
    co_task_release(t);
    return NULL;
}
Test(scope, cancel_from_another_task) { tu_run_ok(manual_cancel, NULL); }

static void *misuse(void *arg) {
    co_scope a, b;
    cr_assert_eq(co_scope_enter(&a, NAN, 0), -EINVAL);
    cr_assert_eq(co_scope_enter(&a, 1, 64), -EINVAL);
    cr_assert_eq(co_scope_enter(NULL, 1, 0), -EINVAL);
    co_scope_enter(&a, 1, 0);
    co_scope_enter(&b, 1, 0);
    cr_assert_eq(co_scope_exit(&a), -CO_EINVALSTATE, "not the innermost");
    cr_assert_eq(co_scope_exit(&b), 0);
    cr_assert_eq(co_scope_exit(&a), 0);
    cr_assert_eq(co_scope_exit(&a), -CO_EINVALSTATE, "twice");
    return NULL;
}
Test(scope, misuse_is_an_error) {
    tu_run_ok(misuse, NULL);
    co_scope s;
    cr_assert_eq(co_scope_enter(&s, 1, 0), -CO_ENOTASK);
}

static void __attribute__((noinline)) open_and_forget(void) {
    co_scope s;
    co_scope_enter(&s, 5.0, CO_FAIL_AFTER);
}
static void *returns_inside(void *arg) {
    open_and_forget();
    return "done";
}
Test(scope, task_returning_inside_a_scope_is_reported) {
    co_loop *L = tu_loop();
    void *v = NULL;
    cr_assert_eq(tu_run(L, returns_inside, NULL, &v), 0);
    cr_assert_str_eq(v, "done");
    cr_assert(strstr(tu_reports, "returned with 1 scope(s) or group(s) still open") != NULL, "%s",
              tu_reports);
    cr_assert_float_eq(co_time(), 0.0, 1e-9);
    tu_close(L); /* its timer was removed: nothing left to fire */
}
