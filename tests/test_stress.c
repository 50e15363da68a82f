/* test_stress.c — randomised schedules, fixed seeds: many tasks sleeping,
 * yielding, joining each other and spawning, while a controller cancels at
 * random. Invariants: every task finishes exactly once, a cancelled task
 * ends CANCELLED unless it had finished first, joins report exactly the
 * joined task's outcome, nothing leaks, the loop closes cleanly. */
#include "testutil.h"

#include <stdint.h>

enum { N = 2000 };

typedef struct world {
    uint64_t seed;
    co_task *t[N];
    int finished[N];
    bool cancel_sent[N];
    int joins_ok, joins_cancelled;
} world;

static world W;

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *child(void *arg) {
    co_yield();
    return arg;
}

static void *worker(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t s = W.seed ^ (uint64_t)(me + 1) * 0x9E3779B97F4A7C15ULL;
    int rc = 0;
    for (int step = 0; step < 30 && rc == 0; step++) {
        switch (rnd(&s) % 4) {
        case 0:
            rc = co_sleep((double)(rnd(&s) % 1000) / 1000.0);
            break;
        case 1:
            rc = co_yield();
            break;
        case 2: { /* join a later task: no cycles */
            int other = me + 1 + (int)(rnd(&s) % 8);
            if (other >= N || !W.t[other]) break;
            co_task *o = W.t[other];
            co_task_retain(o);
            rc = co_join(o, NULL);
            if (rc == -ECANCELED && co_cancelled()) rc = -ECANCELED;
            else {
                /* the join's answer is exactly the other task's outcome */
                cr_assert(co_task_done(o));
                int expect = co_task_state(o) == CO_DONE ? 0 : co_task_error(o);
                cr_assert_eq(rc, expect);
                W.joins_ok++;
                rc = 0;
            }
            if (rc) W.joins_cancelled++;
            co_task_release(o);
            break;
        }
        case 3: { /* a short-lived child, fire and forget */
            co_task *c = co_spawn(child, (void *)(intptr_t)me);
            cr_assert_not_null(c);
            co_task_release(c);
            break;
        }
        }
    }
    W.finished[me]++;
    if (rc == -ECANCELED) cr_assert(co_cancelled());
    return (void *)(intptr_t)me;
}

static void *controller(void *arg) {
    uint64_t s = W.seed;
    for (int i = 0; i < N; i++) {
        W.t[i] = co_spawn(worker, (void *)(intptr_t)i);
        cr_assert_not_null(W.t[i]);
    }
    for (int k = 0; k < N / 3; k++) {
        co_sleep((double)(rnd(&s) % 100) / 1000.0);
        int v = (int)(rnd(&s) % N);
        bool was_done = co_task_done(W.t[v]);
        int r = co_cancel(W.t[v], "random");
        cr_assert_eq(r, was_done ? 0 : 1);
        if (!was_done) W.cancel_sent[v] = true;
    }
    for (int i = 0; i < N; i++) {
        void *val;
        int rc = co_join(W.t[i], &val);
        if (W.cancel_sent[i]) {
            cr_assert(rc == -ECANCELED, "task %d: %d", i, rc);
            cr_assert_eq(co_task_state(W.t[i]), CO_CANCELLED);
        } else {
            cr_assert_eq(rc, 0, "task %d: %s", i, co_err_name(rc));
            cr_assert_eq((intptr_t)val, i);
        }
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(W.finished[i], 1, "task %d finished %d times", i, W.finished[i]);
        co_task_release(W.t[i]);
        W.t[i] = NULL;
    }
    return NULL;
}

static void run_seed(uint64_t seed) {
    memset(&W, 0, sizeof W);
    W.seed = seed;
    co_loop *L = tu_loop();
    cr_assert_eq(tu_run(L, controller, NULL, NULL), 0);
    cr_assert_eq(co_all_tasks(L, NULL, 0), 0);
    tu_close(L);
    cr_assert_gt(W.joins_ok, 100);
    int ncancel = 0;
    for (int i = 0; i < N; i++) ncancel += W.cancel_sent[i];
    cr_assert_gt(ncancel, 10);
    cr_assert_gt(W.joins_cancelled, 0, "some joins were interrupted by a cancel");
}

Test(stress, seed_1) { run_seed(1); }
Test(stress, seed_2) { run_seed(0xDEADBEEF); }
Test(stress, seed_3) { run_seed(42424242); }
Test(stress, seed_4) { run_seed(7); }
