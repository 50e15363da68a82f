/* test_sync_scope.c — the sync primitives under timeout scopes: a waiter
 * whose scope fires while it waits in lock, acquire, get, put, cond wait,
 * event wait, barrier wait or join leaves the primitive as if it had never
 * waited; and a waiter granted something in the very turn its scope fires
 * hands it on. Virtual clock. */
#include "test_sync.h"

#include <stdint.h>

static co_mutex m;
static co_sem sem;
static co_queue q;
static co_event ev;
static co_cond cond;
static co_barrier bar;

/* Runs one waiting call inside a 1 s fail-after scope; logs what the call
 * and the scope's exit returned. */
typedef int (*wait_call)(void);
static void *scoped(void *arg) {
    wait_call call = (wait_call)arg;
    co_scope s;
    co_scope_enter(&s, 1.0, CO_FAIL_AFTER);
    int rc = call();
    int ex = co_scope_exit(&s);
    tu_log("%s/%s@%.1f", co_err_name(rc), co_err_name(ex), co_time());
    return NULL;
}
static co_task *spawn_scoped(wait_call c) {
    co_task *t = co_spawn(scoped, (void *)c);
    cr_assert_not_null(t);
    return t;
}

static int do_lock(void) { return co_mutex_lock(&m); }
static int do_acquire(void) { return co_sem_acquire(&sem); }
static void *got;
static int do_get(void) { return co_queue_get(&q, &got); }
static int do_put(void) { return co_queue_put(&q, "late"); }
static int do_event(void) { return co_event_wait(&ev); }
static int do_join(void) { return co_queue_join(&q); }
static int do_barrier(void) {
    unsigned i;
    return co_barrier_wait(&bar, &i);
}
static int do_cond(void) {
    int rc = co_mutex_lock(&m);
    if (rc) return rc;
    rc = co_cond_wait(&cond);
    cr_assert(co_mutex_locked(&m), "a cond wait returns with the mutex held");
    co_mutex_unlock(&m);
    return rc;
}

static bool never(void *arg) { return false; }
static int do_cond_wait_for(void) {
    int rc = co_mutex_lock(&m);
    if (rc) return rc;
    rc = co_cond_wait_for(&cond, never, NULL);
    cr_assert(co_mutex_locked(&m), "a cond wait_for returns with the mutex held");
    co_mutex_unlock(&m);
    return rc;
}

static void *each_call(void *arg) {
    co_mutex_init(&m);
    co_sem_init(&sem, 0, 0);
    co_queue_init(&q, &(co_queue_opts){.maxsize = 1});
    co_event_init(&ev);
    co_cond_init(&cond, &m);
    co_barrier_init(&bar, 2);

    /* lock: held by us for 5 s */
    cr_assert_eq(co_mutex_lock(&m), 0);
    co_task *t = spawn_scoped(do_lock);
    co_sleep(2);
    cr_assert_eq(co_mutex_unlock(&m), 0);
    cr_assert_not(co_mutex_locked(&m), "the timed-out waiter did not get the lock");
    join_release(t);

    t = spawn_scoped(do_acquire);
    co_sleep(2);
    cr_assert_eq(co_sem_release(&sem), 0);
    cr_assert_eq(co_sem_value(&sem), 1, "no permit lost to the timed-out waiter");
    cr_assert_eq(co_sem_try_acquire(&sem), 0);
    join_release(t);

    t = spawn_scoped(do_get);
    co_sleep(2);
    cr_assert_eq(co_queue_try_put(&q, "item"), 0);
    cr_assert_eq(co_queue_size(&q), 1, "the item is not delivered to a task that left");
    join_release(t);

    t = spawn_scoped(do_put); /* the queue is full */
    co_sleep(2);
    void *v;
    cr_assert_eq(co_queue_try_get(&q, &v), 0);
    cr_assert_str_eq(v, "item");
    cr_assert_eq(co_queue_size(&q), 0, "the timed-out put put nothing");
    co_queue_task_done(&q);
    join_release(t);

    cr_assert_eq(co_queue_try_put(&q, "x"), 0);
    t = spawn_scoped(do_join);
    co_sleep(2);
    join_release(t);
    co_queue_try_get(&q, &v);
    cr_assert_eq(co_queue_task_done(&q), 0);

    t = spawn_scoped(do_event);
    co_sleep(2);
    join_release(t);

    t = spawn_scoped(do_cond);
    co_sleep(2);
    cr_assert_eq(co_mutex_lock(&m), 0); /* notify needs the mutex, as asyncio's */
    int nn = co_cond_notify(&cond, 1);
    co_mutex_unlock(&m);
    cr_assert_eq(nn, 0, "nobody waits any more: %d (%s) trace %s", nn, co_err_name(nn), tu_trace);
    join_release(t);

    t = spawn_scoped(do_barrier);
    co_sleep(2);
    cr_assert_eq(co_barrier_n_waiting(&bar), 0);
    join_release(t);

    t = spawn_scoped(do_cond_wait_for);
    co_sleep(2);
    cr_assert_not(co_mutex_locked(&m));

    co_barrier_destroy(&bar);
    co_cond_destroy(&cond);
    co_event_destroy(&ev);
    co_queue_destroy(&q);
    co_sem_destroy(&sem);
    co_mutex_destroy(&m);
    join_release(t);
    return NULL;
}
Test(sync_scope, scope_firing_in_every_wait_leaves_no_trace) {
    tu_run_ok(each_call, NULL);
    const char *want = "ECANCELED/ETIMEDOUT@1.0 ECANCELED/ETIMEDOUT@3.0 ECANCELED/ETIMEDOUT@5.0 "
                       "ECANCELED/ETIMEDOUT@7.0 ECANCELED/ETIMEDOUT@9.0 ECANCELED/ETIMEDOUT@11.0 "
                       "ECANCELED/ETIMEDOUT@13.0 ECANCELED/ETIMEDOUT@15.0 ECANCELED/ETIMEDOUT@17.0 ";
    cr_assert_str_eq(tu_trace, want);
}

/* The holder unlocks at 1 s, in the turn the waiter's scope fires: the lock
 * granted to the first waiter passes on to the second. */
static void *holder(void *arg) {
    cr_assert_eq(co_mutex_lock(&m), 0);
    co_sleep(1);
    co_mutex_unlock(&m);
    return NULL;
}
static void *second(void *arg) {
    int rc = co_mutex_lock(&m);
    tu_log("second:%s@%.1f", co_err_name(rc), co_time());
    if (!rc) co_mutex_unlock(&m);
    return NULL;
}
/* The waker (armed first), then the scoped waiter, then a second waiter:
 * the waker grants at 1 s, the very turn the scoped waiter's scope fires. */
static void same_turn(co_fn waker, wait_call scoped_call, co_fn second_waiter) {
    co_task *w = co_spawn(waker, NULL);
    co_yield(); /* the waker arms its 1 s timer first */
    co_task *a = spawn_scoped(scoped_call);
    co_yield();
    co_task *b = co_spawn(second_waiter, NULL);
    join_release(w);
    join_release(a);
    join_release(b);
}

static void *lock_same_turn(void *arg) {
    co_mutex_init(&m);
    same_turn(holder, do_lock, second);
    cr_assert_not(co_mutex_locked(&m));
    co_mutex_destroy(&m);
    return NULL;
}
Test(sync_scope, grant_in_the_turn_the_scope_fires_passes_on) {
    tu_run_ok(lock_same_turn, NULL);
    cr_assert_str_eq(tu_trace, "ECANCELED/ETIMEDOUT@1.0 second:OK@1.0 ");
}

/* The same for a queue item: put at 1 s, in the turn the getter's scope
 * fires; the item goes to the next getter, not lost. */
static void *putter(void *arg) {
    co_sleep(1);
    cr_assert_eq(co_queue_put(&q, "precious"), 0);
    return NULL;
}
static void *second_getter(void *arg) {
    void *v = NULL;
    int rc = co_queue_get(&q, &v);
    tu_log("second:%s:%s", co_err_name(rc), v ? (char *)v : "-");
    return NULL;
}
static void *item_same_turn(void *arg) {
    co_queue_init(&q, NULL);
    same_turn(putter, do_get, second_getter);
    cr_assert_eq(co_queue_size(&q), 0);
    co_queue_destroy(&q);
    return NULL;
}
Test(sync_scope, item_in_the_turn_the_scope_fires_passes_on) {
    tu_run_ok(item_same_turn, NULL);
    cr_assert_str_eq(tu_trace, "ECANCELED/ETIMEDOUT@1.0 second:OK:precious ");
}
