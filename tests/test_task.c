/* test_task.c — spawning, joining, results, names, references, states. */
#include "testutil.h"

#include <stdint.h>

static void *ret_arg(void *arg) { return arg; }

Test(task, spawn_join_returns_value) {
    co_loop *L = tu_loop();
    void *v = NULL;
    cr_assert_eq(tu_run(L, ret_arg, (void *)0x1234, &v), 0);
    cr_assert_eq(v, (void *)0x1234);
    tu_close(L);
}

static void *join_children(void *arg) {
    intptr_t n = (intptr_t)arg;
    co_task *t[16];
    for (intptr_t i = 0; i < n; i++) {
        t[i] = co_spawn(ret_arg, (void *)(i * 10));
        cr_assert_not_null(t[i]);
    }
    intptr_t sum = 0;
    for (intptr_t i = 0; i < n; i++) {
        void *v;
        cr_assert_eq(co_join(t[i], &v), 0);
        sum += (intptr_t)v;
        co_task_release(t[i]);
    }
    return (void *)sum;
}

Test(task, many_children_joined) {
    co_loop *L = tu_loop();
    void *v;
    cr_assert_eq(tu_run(L, join_children, (void *)16, &v), 0);
    cr_assert_eq((intptr_t)v, 10 * (15 * 16 / 2));
    tu_close(L);
}

static void *fails(void *arg) { return co_fail(-ECONNREFUSED, "connect to %s failed", (char *)arg); }

static void *join_failing(void *arg) {
    co_task *t = co_spawn(fails, "db.example:3306");
    int rc = co_join(t, NULL);
    cr_assert_eq(rc, -ECONNREFUSED);
    cr_assert_eq(co_task_state(t), CO_FAILED);
    cr_assert_str_eq(co_task_message(t), "connect to db.example:3306 failed");
    co_result r = co_task_result(t);
    cr_assert_eq(r.state, CO_FAILED);
    cr_assert_eq(r.err, -ECONNREFUSED);
    cr_assert_str_eq(r.msg, "connect to db.example:3306 failed");
    cr_assert_eq(co_task_error(t), -ECONNREFUSED);
    co_task_release(t);
    return NULL;
}

Test(task, failure_with_message) {
    co_loop *L = tu_loop();
    cr_assert_eq(tu_run(L, join_failing, NULL, NULL), 0);
    tu_close(L);
    cr_assert_eq(tu_nreports, 0, "%s", tu_reports);
}

static void *fail_zero(void *arg) { return co_fail(0, NULL); }

Test(task, co_fail_with_zero_becomes_einval) {
    co_loop *L = tu_loop();
    co_task *t = co_spawn(fail_zero, NULL);
    cr_assert_eq(co_loop_run_until_complete(L, t, NULL), -EINVAL);
    cr_assert_null(co_task_message(t));
    co_task_release(t);
    tu_close(L);
}

Test(task, co_fail_outside_task_is_harmless) {
    cr_assert_null(co_fail(-EIO, "nobody"));
    co_loop *L = tu_loop();
    cr_assert_null(co_fail(-EIO, "not in a task"));
    tu_close(L);
}

Test(task, error_never_retrieved_is_reported) {
    co_loop *L = tu_loop();
    co_task_opts o = {.name = "fetcher"};
    co_task *t = co_spawn_opts(fails, "api.example", &o);
    co_task *keep = co_spawn(ret_arg, NULL);
    cr_assert_eq(co_loop_run_until_complete(L, keep, NULL), 0);
    co_task_release(keep);
    cr_assert(co_task_done(t));
    cr_assert_eq(tu_nreports, 0);
    co_task_release(t); /* last reference: the error was never read */
    cr_assert_eq(tu_nreports, 1);
    cr_assert(strstr(tu_reports, "Task error was never retrieved: fetcher: connect to api.example failed (ECONNREFUSED)"),
              "%s", tu_reports);
    tu_close(L);
}

Test(task, automatic_names_count_up) {
    co_loop *L = tu_loop();
    co_task *a = co_spawn(ret_arg, NULL), *b = co_spawn(ret_arg, NULL);
    unsigned long na, nb;
    cr_assert_eq(sscanf(co_task_name(a), "Task-%lu", &na), 1, "%s", co_task_name(a));
    cr_assert_eq(sscanf(co_task_name(b), "Task-%lu", &nb), 1);
    cr_assert_eq(nb, na + 1);
    cr_assert_eq(co_task_set_name(b, "renamed"), 0);
    cr_assert_str_eq(co_task_name(b), "renamed");
    cr_assert_eq(co_task_set_name(b, NULL), -EINVAL);
    co_task_release(a);
    co_task_release(b);
    tu_close(L);
}

static void *check_current(void *arg) {
    co_task *self = co_current();
    cr_assert_not_null(self);
    cr_assert_eq(co_task_state(self), CO_RUNNING);
    cr_assert_str_eq(co_task_name(self), "me");
    cr_assert_eq(co_task_loop(self), co_loop_current());
    cr_assert_eq(co_join(self, NULL), -EDEADLK);
    return self;
}

Test(task, current_state_and_self_join) {
    co_loop *L = tu_loop();
    cr_assert_null(co_current());
    co_task_opts o = {.name = "me", .stack_size = 64 * 1024};
    co_task *t = co_spawn_opts(check_current, NULL, &o);
    cr_assert_eq(co_task_state(t), CO_PENDING);
    void *v;
    cr_assert_eq(co_loop_run_until_complete(L, t, &v), 0);
    cr_assert_eq(v, t);
    cr_assert_eq(co_task_state(t), CO_DONE);
    cr_assert_str_eq(co_state_name(co_task_state(t)), "DONE");
    co_task_release(t);
    tu_close(L);
}

static int finished;
static void *sleeper_counts(void *arg) {
    co_sleep(0.5);
    finished++;
    return NULL;
}

static void *fire_and_forget(void *arg) {
    for (int i = 0; i < 10; i++) co_task_release(co_spawn(sleeper_counts, NULL));
    size_t n = co_all_tasks(co_loop_current(), NULL, 0);
    cr_assert_eq(n, 11); /* ten children and this task */
    co_task *list[4];
    cr_assert_eq(co_all_tasks(co_loop_current(), list, 4), 11);
    for (int i = 0; i < 4; i++) cr_assert_not_null(list[i]);
    cr_assert_eq(co_sleep(1.0), 0);
    cr_assert_eq(finished, 10);
    cr_assert_eq(co_all_tasks(co_loop_current(), NULL, 0), 1);
    return NULL;
}

Test(task, released_handles_keep_running_tasks_alive) {
    tu_run_ok(fire_and_forget, NULL);
}

static void *deep(void *arg) {
    intptr_t n = (intptr_t)arg;
    volatile char buf[256];
    buf[0] = (char)n;
    if (n == 0) return (void *)(intptr_t)buf[0];
    return (void *)((intptr_t)deep((void *)(n - 1)) + 1);
}

static void *use_stack(void *arg) { return deep((void *)(intptr_t)200); }

Test(task, stack_is_usable_and_reused) {
    co_loop *L = tu_loop();
    for (int round = 0; round < 3; round++) {
        co_task *t[50];
        for (int i = 0; i < 50; i++) t[i] = co_spawn(use_stack, NULL);
        for (int i = 0; i < 50; i++) {
            void *v;
            cr_assert_eq(co_loop_run_until_complete(L, t[i], &v), 0);
            cr_assert_eq((intptr_t)v, 200);
            co_task_release(t[i]);
        }
    }
    tu_close(L);
}

Test(task, spawn_without_loop_or_on_closed_loop) {
    cr_assert_null(co_loop_current());
    errno = 0;
    cr_assert_null(co_spawn(ret_arg, NULL));
    cr_assert_eq(errno, CO_ENOLOOP);
    cr_assert_null(co_future_new());
    cr_assert_eq(errno, CO_ENOLOOP);
    cr_assert_eq(co_sleep(0.1), -CO_ENOTASK);
    cr_assert_eq(co_yield(), -CO_ENOTASK);
    co_loop *L = tu_loop();
    cr_assert_null(co_spawn(NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(co_loop_close(L), 0);
    co_loop_set_current(L);
    cr_assert_null(co_spawn(ret_arg, NULL));
    cr_assert_eq(errno, CO_ECLOSED);
    cr_assert_eq(co_call_soon((co_cb)free, NULL, NULL), -CO_ECLOSED);
    cr_assert_eq(co_loop_free(L), 0);
}

Test(task, join_outside_task) {
    co_loop *L = tu_loop();
    co_task *t = co_spawn(ret_arg, NULL);
    cr_assert_eq(co_join(t, NULL), -CO_ENOTASK);
    cr_assert_eq(co_task_error(t), -CO_EINVALSTATE);
    cr_assert_eq(co_task_result(t).state, CO_PENDING);
    cr_assert_eq(co_loop_run_until_complete(L, t, NULL), 0);
    cr_assert_eq(co_join(t, NULL), -CO_ENOTASK);
    co_task_release(t);
    tu_close(L);
}

static void *yielder(void *arg) {
    for (int i = 0; i < 3; i++) {
        tu_log("%s%d", (char *)arg, i);
        cr_assert_eq(co_yield(), 0);
    }
    return NULL;
}

static void *yield_order(void *arg) {
    co_task *a = co_spawn(yielder, "a"), *b = co_spawn(yielder, "b"), *c = co_spawn(yielder, "c");
    co_join(a, NULL);
    co_join(b, NULL);
    co_join(c, NULL);
    co_task_release(a);
    co_task_release(b);
    co_task_release(c);
    return NULL;
}

Test(task, ready_queue_is_fifo) {
    tu_run_ok(yield_order, NULL);
    cr_assert_str_eq(tu_trace, "a0 b0 c0 a1 b1 c1 a2 b2 c2 ");
}

static void *lonely_yield(void *arg) {
    for (int i = 0; i < 1000; i++) cr_assert_eq(co_yield(), 0);
    return (void *)1;
}

Test(task, yield_alone_returns) {
    co_loop *L = tu_loop();
    void *v;
    cr_assert_eq(tu_run(L, lonely_yield, NULL, &v), 0);
    cr_assert_eq(v, (void *)1);
    tu_close(L);
}

static void *spawn_many(void *arg) {
    int n = (int)(intptr_t)arg;
    co_task **t = malloc(sizeof *t * (size_t)n);
    for (int i = 0; i < n; i++) {
        t[i] = co_spawn(ret_arg, (void *)(intptr_t)i);
        if (!t[i]) return co_fail(-errno, "spawn %d", i);
    }
    for (int i = 0; i < n; i++) {
        void *v;
        if (co_join(t[i], &v) != 0 || (intptr_t)v != i) return co_fail(-EIO, "join %d", i);
        co_task_release(t[i]);
    }
    free(t);
    return NULL;
}

Test(task, hundred_thousand_spawned_before_any_runs) {
    tu_run_ok(spawn_many, (void *)(intptr_t)100000);
}

/* Sizes whose page rounding or slab arithmetic overflows are refused at
 * the spawn, with a reason, instead of crashing the task's first run. */
Test(task, absurd_stack_sizes_are_refused) {
    co_loop *L = tu_loop();
    size_t bad[] = {SIZE_MAX, SIZE_MAX - 4095, (size_t)1 << 63, ((size_t)1 << 63) + 1, (size_t)1 << 40};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        co_task_opts o = {.stack_size = bad[i]};
        errno = 0;
        cr_assert_null(co_spawn_opts(ret_arg, (void *)1, &o), "stack_size %zu", bad[i]);
        cr_assert_eq(errno, EINVAL, "stack_size %zu", bad[i]);
    }
    cr_assert(strstr(tu_reports, "stack_size"), "%s", tu_reports);
    co_task_opts ok = {.stack_size = 8u << 20};
    co_task *t = co_spawn_opts(ret_arg, (void *)7, &ok);
    cr_assert_not_null(t);
    void *v = NULL;
    cr_assert_eq(co_loop_run_until_complete(L, t, &v), 0);
    cr_assert_eq(v, (void *)7);
    co_task_release(t);
    tu_close(L);
}
