/* test_group.c — task groups: join, the first failure cancelling siblings
 * and the owner's code inside the group, the error list, outside
 * cancellation of the owner and of the group, start/started, children
 * listing, nesting, and misuse. Virtual clock. */
#include "testutil.h"

#include <stdint.h>

#define TIME_IS(x) cr_assert_float_eq(co_time(), (x), 1e-9, "time %.9f", co_time())
#define V(ms) ((void *)(intptr_t)(ms))

static void *sleep_ms(void *arg) {
    int rc = co_sleep((double)(intptr_t)arg / 1000);
    if (rc) {
        tu_log("cleanup-%d", (int)(intptr_t)arg);
        return NULL;
    }
    tu_log("done-%d", (int)(intptr_t)arg);
    return arg;
}

static void *fail_ms(void *arg) {
    if (co_sleep((double)(intptr_t)arg / 1000)) return NULL;
    tu_log("fail-%d", (int)(intptr_t)arg);
    return co_fail(-EIO, "failed after %d", (int)(intptr_t)arg);
}

static void *join_all(void *arg) {
    co_group *g = co_group_new();
    cr_assert_not_null(g);
    co_task *t;
    cr_assert_eq(co_group_spawn(g, sleep_ms, V(300), &t), 0);
    cr_assert_eq(co_group_spawn(g, sleep_ms, V(100), NULL), 0);
    cr_assert_eq(co_group_spawn(g, sleep_ms, V(200), NULL), 0);
    cr_assert_eq(co_group_children(g, NULL, 0), 3);
    const co_result *errs = (void *)1;
    size_t n = 99;
    cr_assert_eq(co_group_join(g, &errs, &n), 0);
    TIME_IS(0.3);
    cr_assert_eq(n, 0);
    cr_assert_null(errs);
    cr_assert_eq(co_group_children(g, NULL, 0), 0);
    void *v;
    cr_assert_eq(co_join(t, &v), 0);
    cr_assert_eq(v, V(300));
    co_task_release(t);
    cr_assert_eq(co_group_join(g, NULL, NULL), 0, "joining again answers the same");
    cr_assert_eq(co_group_spawn(g, sleep_ms, V(1), NULL), -CO_ECLOSED);
    co_group_free(g);
    return NULL;
}
Test(group, join_waits_for_every_child) {
    tu_run_ok(join_all, NULL);
    cr_assert_str_eq(tu_trace, "done-100 done-200 done-300 ");
}

static void *first_failure(void *arg) {
    co_group *g = co_group_new();
    co_group_spawn(g, fail_ms, V(1000), NULL);
    co_group_spawn(g, sleep_ms, V(5000), NULL);
    co_group_spawn(g, sleep_ms, V(10000), NULL);
    int rc = co_sleep(60); /* the owner's own code inside the group */
    tu_log("owner:%s@%.1f", co_err_name(rc), co_time());
    cr_assert(co_group_cancelled(g));
    const co_result *errs;
    size_t n;
    rc = co_group_join(g, &errs, &n);
    cr_assert_eq(rc, -EIO);
    cr_assert_eq(n, 1);
    cr_assert_eq(errs[0].state, CO_FAILED);
    cr_assert_eq(errs[0].err, -EIO);
    cr_assert_str_eq(errs[0].msg, "failed after 1000");
    co_group_free(g);
    TIME_IS(1.0);
    cr_assert_not(co_cancelled(), "the group's cancellation stays inside the group");
    cr_assert_eq(co_sleep(1), 0);
    return NULL;
}
Test(group, first_failure_cancels_siblings_and_owner_body) {
    tu_run_ok(first_failure, NULL);
    cr_assert_str_eq(tu_trace, "fail-1000 cleanup-5000 cleanup-10000 owner:ECANCELED@1.0 ");
    cr_assert_eq(tu_nreports, 0, "errors were read by the join: %s", tu_reports);
}

static void *cleanup_fails(void *arg) {
    if (co_sleep(60) == -ECANCELED) return co_fail(-EPIPE, "cleanup failed");
    return NULL;
}
static void *every_error(void *arg) {
    co_group *g = co_group_new();
    co_group_spawn(g, cleanup_fails, NULL, NULL);
    co_group_spawn(g, fail_ms, V(500), NULL);
    co_group_spawn(g, sleep_ms, V(5000), NULL);
    const co_result *errs;
    size_t n;
    cr_assert_eq(co_group_join(g, &errs, &n), -EIO, "the first failure's error");
    cr_assert_eq(n, 2);
    cr_assert_eq(errs[0].err, -EIO);
    cr_assert_eq(errs[1].err, -EPIPE, "in the order they failed");
    cr_assert_str_eq(errs[1].msg, "cleanup failed");
    co_group_free(g);
    return NULL;
}
Test(group, join_reports_every_error) { tu_run_ok(every_error, NULL); }

static co_task *g_victim;
static void *own_cancel(void *arg) {
    co_group *g = co_group_new();
    co_group_spawn(g, sleep_ms, V(1000), &g_victim);
    co_group_spawn(g, sleep_ms, V(2000), NULL);
    cr_assert_eq(co_sleep(0.5), 0);
    co_cancel(g_victim, NULL); /* a child cancelled on its own is not a failure */
    cr_assert_eq(co_group_join(g, NULL, NULL), 0);
    cr_assert_not(co_group_cancelled(g));
    TIME_IS(2.0);
    co_task_release(g_victim);
    co_group_free(g);
    return NULL;
}
Test(group, child_cancelled_alone_is_not_a_failure) {
    tu_run_ok(own_cancel, NULL);
    cr_assert_str_eq(tu_trace, "cleanup-1000 done-2000 ");
}

static co_group *g_group;
static void *owner_joining(void *arg) {
    co_group *g = co_group_new();
    co_group_spawn(g, sleep_ms, V(5000), NULL);
    co_group_spawn(g, sleep_ms, V(6000), NULL);
    if (arg) tu_log("body:%s", co_err_name(co_sleep(10)));
    int rc = co_group_join(g, NULL, NULL);
    tu_log("join:%s@%.1f", co_err_name(rc), co_time());
    co_group_free(g);
    return NULL;
}
static void *cancel_owner(void *arg) {
    cr_assert_eq(tu_cancel_after(owner_joining, arg, 1), -ECANCELED);
    return NULL;
}
Test(group, owner_cancelled_from_outside_while_joining) {
    tu_run_ok(cancel_owner, NULL);
    cr_assert_str_eq(tu_trace, "cleanup-5000 cleanup-6000 join:ECANCELED@1.0 ");
}
Test(group, owner_cancelled_from_outside_in_body) {
    tu_run_ok(cancel_owner, (void *)1);
    cr_assert_str_eq(tu_trace, "body:ECANCELED cleanup-5000 cleanup-6000 join:ECANCELED@1.0 ");
}

static void *group_canceller(void *arg) {
    co_sleep(1);
    cr_assert_eq(co_group_cancel(g_group), 0);
    return NULL;
}
static void *cancel_group(void *arg) {
    co_group *g = g_group = co_group_new();
    co_group_spawn(g, sleep_ms, V(5000), NULL);
    co_task *c = co_spawn(group_canceller, NULL);
    tu_log("body:%s", co_err_name(co_sleep(10)));
    int rc = co_group_join(g, NULL, NULL);
    tu_log("join:%s@%.1f", co_err_name(rc), co_time());
    cr_assert(co_group_cancelled(g));
    co_group_free(g);
    cr_assert_eq(co_sleep(1), 0, "the owner is not cancelled");
    co_task_release(c);
    return NULL;
}
Test(group, cancel_whole_group_from_outside) {
    tu_run_ok(cancel_group, NULL);
    cr_assert_str_eq(tu_trace, "cleanup-5000 body:ECANCELED join:OK@1.0 ");
}

static void *server(void *arg) {
    if (co_sleep(1)) return NULL; /* set up: bind, listen */
    cr_assert_eq(co_started("listening on :8080"), 0);
    cr_assert_eq(co_started("twice"), -CO_EINVALSTATE);
    if (co_sleep(2)) return NULL; /* serve */
    tu_log("server-done");
    return NULL;
}
static void *start_ok(void *arg) {
    co_group *g = co_group_new();
    void *v = NULL;
    co_task *t = NULL;
    cr_assert_eq(co_group_start(g, server, NULL, &v, &t), 0);
    cr_assert_str_eq(v, "listening on :8080");
    TIME_IS(1.0);
    tu_log("started");
    cr_assert_eq(co_group_children(g, NULL, 0), 1);
    co_task *kids[2];
    cr_assert_eq(co_group_children(g, kids, 2), 1);
    cr_assert_eq(kids[0], t);
    cr_assert_eq(co_group_join(g, NULL, NULL), 0);
    TIME_IS(3.0);
    co_task_release(t);
    co_group_free(g);
    cr_assert_eq(co_started(NULL), -CO_EINVALSTATE, "not a started child");
    return NULL;
}
Test(group, start_waits_for_started) {
    tu_run_ok(start_ok, NULL);
    cr_assert_str_eq(tu_trace, "started server-done ");
}

static void *fails_before_start(void *arg) {
    co_sleep(0.5);
    return co_fail(-EADDRINUSE, "port taken");
}
static void *returns_before_start(void *arg) { return NULL; }
static void *start_failures(void *arg) {
    co_group *g = co_group_new();
    co_group_spawn(g, sleep_ms, V(2000), NULL);
    cr_assert_eq(co_group_start(g, fails_before_start, NULL, NULL, NULL), -EADDRINUSE);
    cr_assert_not(co_group_cancelled(g), "a failure before started is the starter's, not the group's");
    cr_assert_eq(co_group_start(g, returns_before_start, NULL, NULL, NULL), -CO_EINVALSTATE);
    cr_assert_eq(co_group_join(g, NULL, NULL), 0);
    TIME_IS(2.0);
    co_group_free(g);
    return NULL;
}
Test(group, start_failures_go_to_the_starter) {
    tu_run_ok(start_failures, NULL);
    cr_assert(strstr(tu_reports, "returned without calling co_started") != NULL, "%s", tu_reports);
    cr_assert_str_eq(tu_trace, "done-2000 ");
}

static void *starter(void *arg) {
    int rc = co_group_start(g_group, sleep_ms, V(9000), NULL, NULL);
    tu_log("start:%s", co_err_name(rc));
    return NULL;
}
static void *start_cancelled(void *arg) {
    co_group *g = g_group = co_group_new();
    tu_cancel_after(starter, NULL, 1);
    cr_assert_eq(co_group_join(g, NULL, NULL), 0);
    co_group_free(g);
    return NULL;
}
Test(group, starter_cancelled_cancels_the_child) {
    tu_run_ok(start_cancelled, NULL);
    cr_assert_str_eq(tu_trace, "cleanup-9000 start:ECANCELED ");
}

static void *spawns_sibling(void *arg) {
    co_sleep(1);
    cr_assert_eq(co_group_spawn(g_group, sleep_ms, V(3000), NULL), 0);
    return NULL;
}
static void *late_children(void *arg) {
    co_group *g = g_group = co_group_new();
    co_group_spawn(g, spawns_sibling, NULL, NULL);
    cr_assert_eq(co_group_join(g, NULL, NULL), 0);
    TIME_IS(4.0);
    co_group_free(g);
    return NULL;
}
Test(group, join_waits_for_children_spawned_meanwhile) {
    tu_run_ok(late_children, NULL);
    cr_assert_str_eq(tu_trace, "done-3000 ");
}

static void *cancelled_group_spawn(void *arg) {
    co_group *g = co_group_new();
    co_group_cancel(g);
    cr_assert_eq(co_yield(), -ECANCELED, "the owner's body is cancelled");
    co_task *t;
    cr_assert_eq(co_group_spawn(g, sleep_ms, V(1000), &t), 0);
    cr_assert_eq(co_group_join(g, NULL, NULL), 0);
    cr_assert_eq(co_task_state(t), CO_CANCELLED, "starts cancelled");
    TIME_IS(0.0);
    co_task_release(t);
    co_group_free(g);
    return NULL;
}
Test(group, spawn_into_cancelled_group) { tu_run_ok(cancelled_group_spawn, NULL); }

static void *nested(void *arg) {
    co_group *outer = co_group_new();
    co_group_spawn(outer, sleep_ms, V(3000), NULL);
    co_group *inner = co_group_new();
    co_group_spawn(inner, fail_ms, V(1000), NULL);
    co_group_spawn(inner, sleep_ms, V(2000), NULL);
    cr_assert_eq(co_group_join(outer, NULL, NULL), -CO_EINVALSTATE, "the inner group is still open");
    cr_assert_eq(co_group_join(inner, NULL, NULL), -EIO);
    cr_assert_not(co_group_cancelled(outer), "the inner failure stays in the inner group");
    cr_assert_eq(co_group_join(outer, NULL, NULL), 0);
    TIME_IS(3.0);
    co_group_free(inner);
    co_group_free(outer);
    return NULL;
}
Test(group, nested_groups) {
    tu_run_ok(nested, NULL);
    cr_assert_str_eq(tu_trace, "fail-1000 cleanup-2000 done-3000 ");
}

static void *not_owner(void *arg) {
    cr_assert_eq(co_group_join(g_group, NULL, NULL), -CO_EINVALSTATE);
    co_group_free(g_group); /* refused, reported */
    return NULL;
}
static void *misuse(void *arg) {
    co_group *g = g_group = co_group_new();
    co_task *t = co_spawn(not_owner, NULL);
    co_join(t, NULL);
    co_task_release(t);
    cr_assert_eq(co_group_spawn(g, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(co_group_spawn(NULL, sleep_ms, NULL, NULL), -EINVAL);
    co_scope s;
    co_scope_enter(&s, CO_FOREVER, 0);
    cr_assert_eq(co_group_join(g, NULL, NULL), -CO_EINVALSTATE, "a scope opened after it is open");
    co_scope_exit(&s);
    cr_assert_eq(co_group_join(g, NULL, NULL), 0);
    co_group_free(g);
    return NULL;
}
Test(group, misuse_is_refused) {
    tu_run_ok(misuse, NULL);
    cr_assert(strstr(tu_reports, "still open on its owner") != NULL, "%s", tu_reports);
    errno = 0;
    cr_assert_null(co_group_new());
    cr_assert_eq(errno, CO_ENOTASK);
}

static void *forgets_join(void *arg) {
    co_group *g = co_group_new();
    co_group_spawn(g, sleep_ms, V(5000), NULL);
    g_group = g;
    return NULL; /* no join: the children are cancelled and waited for */
}
Test(group, owner_returning_without_join) {
    co_loop *L = tu_loop();
    co_task *t = co_spawn(forgets_join, NULL);
    cr_assert_eq(co_loop_run_until_complete(L, t, NULL), 0);
    cr_assert_str_eq(tu_trace, "cleanup-5000 ", "no child outlives the group");
    cr_assert(strstr(tu_reports, "still open") != NULL, "%s", tu_reports);
    co_task_release(t);
    co_group_free(g_group);
    tu_close(L);
}

static void *free_unjoined(void *arg) {
    co_group *g = co_group_new();
    co_group_spawn(g, sleep_ms, V(5000), NULL);
    co_sleep(1);
    co_group_free(g); /* the owner: cancels and joins */
    TIME_IS(1.0);
    tu_log("freed");
    return NULL;
}
Test(group, owner_freeing_unjoined_group_cancels_children) {
    tu_run_ok(free_unjoined, NULL);
    cr_assert_str_eq(tu_trace, "cleanup-5000 freed ");
}

/* A child that says started and returns at once, in the same step: the
 * starter still gets the value (its handshake outlives the child's record). */
static void *start_then_return(void *arg) {
    cr_assert_eq(co_started((void *)42), 0);
    return NULL;
}
static void *start_quick_child(void *arg) {
    co_group *g = co_group_new();
    void *v = NULL;
    cr_assert_eq(co_group_start(g, start_then_return, NULL, &v, NULL), 0);
    cr_assert_eq(v, (void *)42);
    cr_assert_eq(co_group_join(g, NULL, NULL), 0);
    co_group_free(g);
    return NULL;
}
Test(group, child_started_and_returned_in_one_step) { tu_run_ok(start_quick_child, NULL); }

/* join and start inside a 1 s timeout scope: the scope firing is an outer
 * cancellation for the group — children cancelled and waited for, join /
 * start return -ECANCELED, the scope's exit -ETIMEDOUT. */
static void *join_in_scope(void *arg) {
    co_scope s;
    co_scope_enter(&s, 1.0, CO_FAIL_AFTER);
    co_group *g = co_group_new();
    co_group_spawn(g, sleep_ms, V(5000), NULL);
    int rc;
    if (arg) rc = co_group_start(g, sleep_ms, V(7000), NULL, NULL);
    else rc = co_group_join(g, NULL, NULL);
    tu_log("call:%s@%.1f", co_err_name(rc), co_time());
    if (arg) tu_log("join:%s", co_err_name(co_group_join(g, NULL, NULL)));
    co_group_free(g);
    tu_log("scope:%s", co_err_name(co_scope_exit(&s)));
    return NULL;
}
Test(group, join_times_out_in_a_scope) {
    tu_run_ok(join_in_scope, NULL);
    cr_assert_str_eq(tu_trace, "cleanup-5000 call:ECANCELED@1.0 scope:ETIMEDOUT ");
}
Test(group, start_times_out_in_a_scope) {
    tu_run_ok(join_in_scope, (void *)1);
    /* start cancels only its own child; the join, still in the fired scope, the rest */
    cr_assert_str_eq(tu_trace, "cleanup-7000 call:ECANCELED@1.0 cleanup-5000 join:ECANCELED scope:ETIMEDOUT ");
}
