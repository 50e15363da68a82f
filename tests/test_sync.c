/* test_sync.c — co_mutex, co_event, co_cond, co_sem, co_barrier: each
 * operation, FIFO fairness, and the cancellation rules at every call that
 * suspends (cancelled while waiting: as if it never waited; granted and
 * cancelled before it resumed: the grant passes on), destroy with waiters.
 * Queues are in test_sync_queue.c, wrong-loop use in test_sync_loop.c. */
#include "test_sync.h"

#include <stdint.h>

/* ======================================================================= mutex */

static co_mutex M;

/* Locks, logs, holds the mutex for one yield, unlocks. */
static void *locker(void *arg) {
    int rc = co_mutex_lock(&M);
    tu_log("%s:%s", (char *)arg, co_err_name(rc));
    if (rc == 0) {
        co_yield();
        cr_assert_eq(co_mutex_unlock(&M), 0);
    }
    return NULL;
}

static void *mutex_basics(void *arg) {
    cr_assert_not(co_mutex_locked(&M));
    cr_assert_eq(co_mutex_unlock(&M), -EPERM, "unlocking an unlocked mutex");
    cr_assert_eq(co_mutex_lock(&M), 0);
    cr_assert(co_mutex_locked(&M));
    cr_assert_eq(co_mutex_lock(&M), -EDEADLK);
    cr_assert_eq(co_mutex_trylock(&M), -EDEADLK);
    co_task *b = spawn_named(locker, "B");
    settle();
    cr_assert_str_eq(tu_trace, "", "B waits while we hold it");
    cr_assert_eq(co_mutex_unlock(&M), 0);
    cr_assert(co_mutex_locked(&M), "handed to B at once");
    cr_assert_eq(co_mutex_trylock(&M), -EAGAIN, "no overtaking the woken B");
    cr_assert_eq(co_mutex_unlock(&M), -EPERM, "B holds it, not us");
    settle();
    cr_assert_str_eq(tu_trace, "B:OK ");
    cr_assert_not(co_mutex_locked(&M));
    cr_assert_eq(co_mutex_trylock(&M), 0);
    cr_assert_eq(co_mutex_unlock(&M), 0);
    join_release(b);
    return NULL;
}

Test(mutex, lock_unlock_trylock_errors) {
    co_loop *L = tu_loop();
    co_mutex_init(&M);
    cr_assert_eq(co_mutex_lock(&M), -CO_ENOTASK);
    cr_assert_eq(co_mutex_trylock(&M), -CO_ENOTASK);
    cr_assert_eq(co_mutex_unlock(&M), -EPERM, "no task holds it outside tasks");
    cr_assert_eq(tu_run(L, mutex_basics, NULL, NULL), 0);
    cr_assert_eq(co_mutex_destroy(&M), 0);
    tu_close(L);
}

static void *unlock_foreign(void *arg) {
    tu_log("unlock:%s", co_err_name(co_mutex_unlock(&M)));
    return NULL;
}

static void *mutex_not_owner(void *arg) {
    cr_assert_eq(co_mutex_lock(&M), 0);
    co_task *t = spawn_named(unlock_foreign, "X");
    join_release(t);
    cr_assert(co_mutex_locked(&M), "the stranger's unlock changed nothing");
    cr_assert_eq(co_mutex_unlock(&M), 0);
    return NULL;
}

Test(mutex, unlock_by_another_task_is_eperm) {
    co_mutex_init(&M);
    tu_run_ok(mutex_not_owner, NULL);
    cr_assert_str_eq(tu_trace, "unlock:EPERM ");
}

static void *mutex_fifo(void *arg) {
    cr_assert_eq(co_mutex_lock(&M), 0);
    co_task *t[4];
    const char *names[] = {"A", "B", "C", "D"};
    for (int i = 0; i < 4; i++) {
        t[i] = spawn_named(locker, names[i]);
        co_yield(); /* each queues in turn */
    }
    cr_assert_eq(co_mutex_unlock(&M), 0);
    cr_assert_eq(co_mutex_lock(&M), 0, "we queue again, behind D");
    tu_log("main");
    cr_assert_eq(co_mutex_unlock(&M), 0);
    for (int i = 0; i < 4; i++) join_release(t[i]);
    return NULL;
}

Test(mutex, fifo_fair) {
    co_mutex_init(&M);
    tu_run_ok(mutex_fifo, NULL);
    cr_assert_str_eq(tu_trace, "A:OK B:OK C:OK D:OK main ");
}

static void *mutex_cancel_waiting(void *arg) {
    cr_assert_eq(co_mutex_lock(&M), 0);
    co_task *b = spawn_named(locker, "B"), *c = spawn_named(locker, "C");
    settle();
    cr_assert_eq(co_cancel(b, NULL), 1);
    settle();
    cr_assert_str_eq(tu_trace, "B:ECANCELED ", "B left the queue; C still waits");
    cr_assert_eq(co_mutex_unlock(&M), 0);
    settle();
    cr_assert_str_eq(tu_trace, "B:ECANCELED C:OK ");
    cr_assert_not(co_mutex_locked(&M));
    join_release(b);
    join_release(c);
    return NULL;
}

Test(mutex, cancelled_while_waiting_leaves_the_queue) {
    co_mutex_init(&M);
    tu_run_ok(mutex_cancel_waiting, NULL);
}

static void *mutex_granted_then_cancelled(void *arg) {
    cr_assert_eq(co_mutex_lock(&M), 0);
    co_task *b = spawn_named(locker, "B"), *c = spawn_named(locker, "C");
    settle();
    cr_assert_eq(co_mutex_unlock(&M), 0); /* B is handed the mutex ... */
    cr_assert_eq(co_cancel(b, NULL), 1);  /* ... and cancelled before it runs */
    settle();
    cr_assert_str_eq(tu_trace, "B:ECANCELED C:OK ", "B passed the mutex to C");
    cr_assert_not(co_mutex_locked(&M));
    join_release(b);
    join_release(c);

    /* the same with nobody behind: the mutex ends unlocked */
    cr_assert_eq(co_mutex_lock(&M), 0);
    co_task *d = spawn_named(locker, "D");
    settle();
    cr_assert_eq(co_mutex_unlock(&M), 0);
    co_cancel(d, NULL);
    settle();
    cr_assert_not(co_mutex_locked(&M));
    cr_assert_eq(co_mutex_trylock(&M), 0);
    cr_assert_eq(co_mutex_unlock(&M), 0);
    join_release(d);
    return NULL;
}

Test(mutex, granted_then_cancelled_passes_it_on) {
    co_mutex_init(&M);
    tu_run_ok(mutex_granted_then_cancelled, NULL);
    cr_assert_str_eq(tu_trace, "B:ECANCELED C:OK D:ECANCELED ");
}

static void *self_cancelled_lock(void *arg) {
    co_cancel(co_current(), NULL);
    cr_assert_eq(co_mutex_lock(&M), -ECANCELED, "sticky: fails even when free");
    cr_assert_not(co_mutex_locked(&M));
    cr_assert_eq(co_mutex_trylock(&M), 0, "trylock is for cleanup code");
    cr_assert_eq(co_mutex_unlock(&M), 0);
    return NULL;
}

Test(mutex, cancel_pending_fails_at_once) {
    co_loop *L = tu_loop();
    co_mutex_init(&M);
    cr_assert_eq(tu_run(L, self_cancelled_lock, NULL, NULL), -ECANCELED);
    tu_close(L);
}

static void *mutex_destroy_waiters(void *arg) {
    co_mutex_init(&M);
    cr_assert_eq(co_mutex_lock(&M), 0);
    co_task *b = spawn_named(locker, "B"), *c = spawn_named(locker, "C");
    settle();
    cr_assert_eq(co_mutex_unlock(&M), 0); /* B granted, not resumed; C waiting */
    cr_assert_eq(co_mutex_destroy(&M), 0);
    settle();
    cr_assert_str_eq(tu_trace, "B:CO_ECLOSED C:CO_ECLOSED ");
    join_release(b);
    join_release(c);
    return NULL;
}

Test(mutex, destroy_wakes_waiters_with_eclosed) {
    tu_run_ok(mutex_destroy_waiters, NULL);
}

Test(mutex, new_and_free) {
    co_loop *L = tu_loop();
    co_mutex *m = co_mutex_new();
    cr_assert_not_null(m);
    cr_assert_not(co_mutex_locked(m));
    cr_assert_eq(co_mutex_free(m), 0);
    cr_assert_eq(co_mutex_free(NULL), 0);
    tu_close(L);
}

/* ======================================================================= event */

static co_event E;

static void *event_waiter(void *arg) {
    int rc = co_event_wait(&E);
    tu_log("%s:%s", (char *)arg, co_err_name(rc));
    return NULL;
}

static void set_cb(void *arg) { cr_assert_eq(co_event_set(&E), 0); }

static void *event_basics(void *arg) {
    cr_assert_not(co_event_is_set(&E));
    co_task *a = spawn_named(event_waiter, "A"), *b = spawn_named(event_waiter, "B");
    settle();
    cr_assert_str_eq(tu_trace, "");
    cr_assert_eq(co_event_set(&E), 0);
    cr_assert_eq(co_event_clear(&E), 0); /* too late for A and B: they were woken */
    cr_assert_not(co_event_is_set(&E));
    settle();
    cr_assert_str_eq(tu_trace, "A:OK B:OK ");
    co_task *c = spawn_named(event_waiter, "C");
    cr_assert_eq(co_call_later(2.0, set_cb, NULL, NULL), 0); /* set from a callback */
    join_release(c);
    cr_assert_eq(co_time(), 2.0);
    cr_assert(co_event_is_set(&E));
    cr_assert_eq(co_event_wait(&E), 0, "set: no wait");
    cr_assert_eq(co_event_set(&E), 0, "twice is harmless");
    join_release(a);
    join_release(b);
    return NULL;
}

Test(event, set_clear_wait) {
    co_loop *L = tu_loop();
    co_event_init(&E);
    cr_assert_eq(co_event_wait(&E), -CO_ENOTASK);
    cr_assert_eq(tu_run(L, event_basics, NULL, NULL), 0);
    cr_assert_str_eq(tu_trace, "A:OK B:OK C:OK ");
    cr_assert_eq(co_event_destroy(&E), 0);
    tu_close(L);
}

static void *event_cancels(void *arg) {
    co_task *a = spawn_named(event_waiter, "A"), *b = spawn_named(event_waiter, "B"),
            *c = spawn_named(event_waiter, "C");
    settle();
    co_cancel(a, NULL); /* cancelled while waiting */
    settle();
    cr_assert_eq(co_event_set(&E), 0);
    co_cancel(b, NULL); /* woken, then cancelled before it resumed */
    settle();
    join_release(a);
    join_release(b);
    join_release(c);
    co_cancel(co_current(), NULL);
    cr_assert_eq(co_event_wait(&E), -ECANCELED, "sticky even when set");
    return NULL;
}

Test(event, cancellation) {
    co_loop *L = tu_loop();
    co_event_init(&E);
    cr_assert_eq(tu_run(L, event_cancels, NULL, NULL), -ECANCELED);
    cr_assert_str_eq(tu_trace, "A:ECANCELED B:ECANCELED C:OK ");
    tu_close(L);
}

static void *event_destroy(void *arg) {
    co_event *e = co_event_new();
    cr_assert_not_null(e);
    co_event_init(&E);
    co_task *a = spawn_named(event_waiter, "A");
    settle();
    cr_assert_eq(co_event_destroy(&E), 0);
    settle();
    cr_assert_str_eq(tu_trace, "A:CO_ECLOSED ");
    join_release(a);
    cr_assert_eq(co_event_free(e), 0);
    return NULL;
}

Test(event, destroy_wakes_waiters) {
    tu_run_ok(event_destroy, NULL);
}

/* ======================================================================= cond */

static co_cond C;
static int shared_items;

static bool have_items(void *arg) { return shared_items > 0; }

static void *cond_consumer(void *arg) {
    cr_assert_eq(co_mutex_lock(&M), 0);
    int rc = co_cond_wait_for(&C, have_items, NULL);
    if (rc == 0) shared_items--;
    tu_log("%s:%s", (char *)arg, co_err_name(rc));
    cr_assert_eq(co_mutex_unlock(&M), 0, "held again on return, whatever rc");
    return NULL;
}

static void *cond_waiter(void *arg) {
    cr_assert_eq(co_mutex_lock(&M), 0);
    int rc = co_cond_wait(&C);
    tu_log("%s:%s", (char *)arg, co_err_name(rc));
    if (rc != -CO_ECLOSED) cr_assert_eq(co_mutex_unlock(&M), 0, "held again on return");
    else cr_assert_eq(co_mutex_unlock(&M), -EPERM, "closed: not re-taken");
    return NULL;
}

static void *cond_notify_counts(void *arg) {
    cr_assert_eq(co_cond_wait(&C), -EPERM, "without the mutex");
    cr_assert_eq(co_cond_notify(&C, 1), -EPERM);
    co_task *t[4];
    const char *names[] = {"A", "B", "C", "D"};
    for (int i = 0; i < 4; i++) t[i] = spawn_named(cond_waiter, names[i]);
    settle();
    cr_assert_not(co_mutex_locked(&M), "waiters released the mutex");
    cr_assert_eq(co_mutex_lock(&M), 0);
    cr_assert_eq(co_cond_notify(&C, 0), 0);
    cr_assert_eq(co_cond_notify(&C, 2), 2);
    settle();
    cr_assert_str_eq(tu_trace, "", "notified, but the mutex is ours");
    cr_assert_eq(co_mutex_unlock(&M), 0);
    settle();
    cr_assert_str_eq(tu_trace, "A:OK B:OK ", "FIFO");
    cr_assert_eq(co_mutex_lock(&M), 0);
    cr_assert_eq(co_cond_notify_all(&C), 2);
    cr_assert_eq(co_cond_notify_all(&C), 0);
    cr_assert_eq(co_mutex_unlock(&M), 0);
    for (int i = 0; i < 4; i++) join_release(t[i]);
    return NULL;
}

Test(cond, notify_n_and_all_fifo) {
    co_mutex_init(&M);
    cr_assert_eq(co_cond_init(&C, &M), 0);
    tu_run_ok(cond_notify_counts, NULL);
    cr_assert_str_eq(tu_trace, "A:OK B:OK C:OK D:OK ");
    cr_assert_eq(co_cond_destroy(&C), 0);
}

static void *cond_wait_for_items(void *arg) {
    co_task *t[3];
    const char *names[] = {"A", "B", "C"};
    for (int i = 0; i < 3; i++) t[i] = spawn_named(cond_consumer, names[i]);
    for (int k = 0; k < 3; k++) {
        co_sleep(1);
        cr_assert_eq(co_mutex_lock(&M), 0);
        shared_items++;
        cr_assert_eq(co_cond_notify_all(&C), 3 - k, "every consumer still waiting");
        cr_assert_eq(co_mutex_unlock(&M), 0);
    }
    for (int i = 0; i < 3; i++) join_release(t[i]);
    cr_assert_eq(shared_items, 0);
    cr_assert_eq(co_mutex_lock(&M), 0);
    shared_items = 1;
    cr_assert_eq(co_cond_wait_for(&C, have_items, NULL), 0, "true at once: no wait");
    cr_assert_eq(co_cond_wait_for(&C, NULL, NULL), -EINVAL);
    cr_assert_eq(co_mutex_unlock(&M), 0);
    return NULL;
}

Test(cond, wait_for_predicate) {
    co_mutex_init(&M);
    co_cond_init(&C, &M);
    tu_run_ok(cond_wait_for_items, NULL);
    /* notify_all wakes all three each time; the first to get the mutex takes the item */
    cr_assert_str_eq(tu_trace, "A:OK B:OK C:OK ");
}

static void *cond_cancels(void *arg) {
    co_task *a = spawn_named(cond_waiter, "A"), *b = spawn_named(cond_waiter, "B"),
            *c = spawn_named(cond_waiter, "C");
    settle();
    /* A: cancelled while waiting; it re-takes the mutex and returns */
    co_cancel(a, NULL);
    settle();
    cr_assert_str_eq(tu_trace, "A:ECANCELED ");
    /* B: notified and cancelled at once; the notification passes to C */
    cr_assert_eq(co_mutex_lock(&M), 0);
    cr_assert_eq(co_cond_notify(&C, 1), 1);
    co_cancel(b, NULL);
    cr_assert_eq(co_mutex_unlock(&M), 0);
    settle();
    cr_assert_str_eq(tu_trace, "A:ECANCELED B:ECANCELED C:OK ");
    cr_assert_eq(co_mutex_lock(&M), 0);
    cr_assert_eq(co_cond_notify_all(&C), 0, "nobody left");
    cr_assert_eq(co_mutex_unlock(&M), 0);
    join_release(a);
    join_release(b);
    join_release(c);
    return NULL;
}

Test(cond, cancellation_retakes_the_mutex_and_passes_notifications) {
    co_mutex_init(&M);
    co_cond_init(&C, &M);
    tu_run_ok(cond_cancels, NULL);
}

static void *cond_cancel_while_retaking(void *arg) {
    co_task *a = spawn_named(cond_waiter, "A");
    settle();
    cr_assert_eq(co_mutex_lock(&M), 0);
    cr_assert_eq(co_cond_notify(&C, 1), 1);
    settle(); /* A resumed and now waits for the mutex */
    co_cancel(a, NULL);
    co_sleep(5);
    cr_assert_eq(co_task_state(a), CO_PENDING, "A waits for the mutex despite the cancel");
    cr_assert_str_eq(tu_trace, "");
    cr_assert_eq(co_mutex_unlock(&M), 0);
    settle();
    cr_assert_str_eq(tu_trace, "A:OK ", "notified before the cancel: the wait succeeded");
    co_join(a, NULL);
    cr_assert_eq(co_task_state(a), CO_CANCELLED);
    co_task_release(a);
    return NULL;
}

Test(cond, retaking_the_mutex_ignores_cancel) {
    co_mutex_init(&M);
    co_cond_init(&C, &M);
    tu_run_ok(cond_cancel_while_retaking, NULL);
}

static void *cond_cancel_pending(void *arg) {
    cr_assert_eq(co_mutex_lock(&M), 0);
    co_cancel(co_current(), NULL);
    cr_assert_eq(co_cond_wait(&C), -ECANCELED);
    cr_assert(co_mutex_locked(&M), "not released");
    cr_assert_eq(co_mutex_unlock(&M), 0);
    return NULL;
}

Test(cond, cancel_pending_keeps_the_mutex) {
    co_loop *L = tu_loop();
    co_mutex_init(&M);
    co_cond_init(&C, &M);
    cr_assert_eq(tu_run(L, cond_cancel_pending, NULL, NULL), -ECANCELED);
    tu_close(L);
}

static void *cond_destroy(void *arg) {
    co_task *a = spawn_named(cond_waiter, "A"), *b = spawn_named(cond_waiter, "B");
    settle();
    cr_assert_eq(co_mutex_lock(&M), 0);
    cr_assert_eq(co_cond_notify(&C, 1), 1); /* A notified, not resumed; B waiting */
    cr_assert_eq(co_cond_destroy(&C), 0);
    settle();
    cr_assert_str_eq(tu_trace, "A:CO_ECLOSED B:CO_ECLOSED ");
    cr_assert_eq(co_mutex_unlock(&M), 0, "still ours: the woken did not take it");
    join_release(a);
    join_release(b);
    co_cond *c = co_cond_new(&M);
    cr_assert_not_null(c);
    cr_assert_eq(co_cond_free(c), 0);
    cr_assert_null(co_cond_new(NULL));
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(co_cond_init(&C, NULL), -EINVAL);
    return NULL;
}

Test(cond, destroy_wakes_waiters) {
    co_mutex_init(&M);
    co_cond_init(&C, &M);
    tu_run_ok(cond_destroy, NULL);
}

/* ======================================================================= sem */

static co_sem S;

/* Acquires, logs, holds the permit until released by a sleep, gives it back. */
static void *acquirer(void *arg) {
    int rc = co_sem_acquire(&S);
    tu_log("%s:%s", (char *)arg, co_err_name(rc));
    if (rc == 0) {
        co_sleep(1);
        cr_assert_eq(co_sem_release(&S), 0);
    }
    return NULL;
}

static void *sem_basics(void *arg) {
    cr_assert_eq(co_sem_value(&S), 2);
    cr_assert_eq(co_sem_acquire(&S), 0);
    cr_assert_eq(co_sem_try_acquire(&S), 0);
    cr_assert_eq(co_sem_value(&S), 0);
    cr_assert_eq(co_sem_try_acquire(&S), -EAGAIN);
    co_task *t[3];
    const char *names[] = {"A", "B", "C"};
    for (int i = 0; i < 3; i++) t[i] = spawn_named(acquirer, names[i]);
    settle();
    cr_assert_str_eq(tu_trace, "");
    cr_assert_eq(co_sem_release(&S), 0);
    cr_assert_eq(co_sem_value(&S), 0, "handed to A, not counted");
    cr_assert_eq(co_sem_try_acquire(&S), -EAGAIN, "no overtaking the woken A");
    cr_assert_eq(co_sem_release(&S), 0);
    settle();
    cr_assert_str_eq(tu_trace, "A:OK B:OK ", "FIFO");
    for (int i = 0; i < 3; i++) join_release(t[i]);
    cr_assert_str_eq(tu_trace, "A:OK B:OK C:OK ");
    cr_assert_eq(co_sem_value(&S), 2, "every permit back");
    cr_assert_eq(co_sem_release(&S), 0, "unbounded: above the initial value is fine");
    cr_assert_eq(co_sem_value(&S), 3);
    return NULL;
}

Test(sem, acquire_release_fifo) {
    co_loop *L = tu_loop();
    cr_assert_eq(co_sem_init(&S, 2, 0), 0);
    cr_assert_eq(co_sem_acquire(&S), -CO_ENOTASK);
    cr_assert_eq(tu_run(L, sem_basics, NULL, NULL), 0);
    cr_assert_eq(co_sem_destroy(&S), 0);
    cr_assert_eq(co_sem_init(&S, 1, 42), -EINVAL);
    cr_assert_null(co_sem_new(1, 42));
    cr_assert_eq(errno, EINVAL);
    co_sem *s = co_sem_new(0, CO_SEM_BOUNDED);
    cr_assert_not_null(s);
    cr_assert_eq(co_sem_release(s), -EOVERFLOW);
    cr_assert_eq(co_sem_free(s), 0);
    tu_close(L);
}

static void *bounded(void *arg) {
    cr_assert_eq(co_sem_release(&S), -EOVERFLOW, "at the initial value");
    cr_assert_eq(co_sem_acquire(&S), 0);
    cr_assert_eq(co_sem_acquire(&S), 0);
    co_task *a = spawn_named(acquirer, "A");
    settle();
    cr_assert_eq(co_sem_release(&S), 0); /* to A */
    co_cancel(a, NULL);                   /* A gives it back */
    settle();
    cr_assert_eq(co_sem_value(&S), 1);
    cr_assert_eq(co_sem_release(&S), 0);
    cr_assert_eq(co_sem_value(&S), 2);
    cr_assert_eq(co_sem_release(&S), -EOVERFLOW, "never above the bound");
    join_release(a);
    return NULL;
}

Test(sem, bounded_release_above_initial_is_eoverflow) {
    co_loop *L = tu_loop();
    cr_assert_eq(co_sem_init(&S, 2, CO_SEM_BOUNDED), 0);
    cr_assert_eq(tu_run(L, bounded, NULL, NULL), 0);
    cr_assert_str_eq(tu_trace, "A:ECANCELED ");
    tu_close(L);
}

static void *sem_cancels(void *arg) {
    cr_assert_eq(co_sem_acquire(&S), 0); /* value 1 -> 0 */
    co_task *a = spawn_named(acquirer, "A"), *b = spawn_named(acquirer, "B"),
            *c = spawn_named(acquirer, "C");
    settle();
    co_cancel(a, NULL); /* while waiting */
    settle();
    cr_assert_eq(co_sem_value(&S), 0);
    cr_assert_eq(co_sem_release(&S), 0); /* to B ... */
    co_cancel(b, NULL);                   /* ... cancelled before it resumed: to C */
    settle();
    cr_assert_str_eq(tu_trace, "A:ECANCELED B:ECANCELED C:OK ");
    join_release(a);
    join_release(b);
    join_release(c);
    cr_assert_eq(co_sem_value(&S), 1, "no permit lost, none made up");
    co_cancel(co_current(), NULL);
    cr_assert_eq(co_sem_acquire(&S), -ECANCELED, "sticky even with a permit free");
    cr_assert_eq(co_sem_value(&S), 1);
    return NULL;
}

Test(sem, cancellation_loses_no_permit) {
    co_loop *L = tu_loop();
    co_sem_init(&S, 1, 0);
    cr_assert_eq(tu_run(L, sem_cancels, NULL, NULL), -ECANCELED);
    tu_close(L);
}

/* A task that finds a permit free while a woken waiter has not resumed
 * yet queues behind it (test_parity.c has asyncio's scenario); cancelled
 * there, it gives the permit back. */
static co_task *sem_main;

static void *acquire_then_cancel_main(void *arg) {
    tu_log("%s:%s", (char *)arg, co_err_name(co_sem_acquire(&S)));
    co_cancel(sem_main, NULL);
    return NULL;
}

static void *sem_behind_cancelled(void *arg) {
    sem_main = co_current();
    co_task *x = spawn_named(acquire_then_cancel_main, "X");
    settle();
    cr_assert_eq(co_sem_release(&S), 0); /* to X */
    cr_assert_eq(co_sem_release(&S), 0); /* free, but X has not resumed */
    cr_assert_eq(co_sem_value(&S), 1);
    cr_assert_eq(co_sem_acquire(&S), -ECANCELED, "X ran first, and cancelled us");
    cr_assert_str_eq(tu_trace, "X:OK ");
    cr_assert_eq(co_sem_value(&S), 1, "the permit we took is back");
    cr_assert_eq(co_sem_try_acquire(&S), 0);
    join_release(x);
    return NULL;
}

Test(sem, acquire_behind_woken_waiter_then_cancelled) {
    co_loop *L = tu_loop();
    co_sem_init(&S, 0, 0);
    cr_assert_eq(tu_run(L, sem_behind_cancelled, NULL, NULL), -ECANCELED);
    cr_assert_eq(co_sem_destroy(&S), 0);
    tu_close(L);
}

static void *sem_destroy(void *arg) {
    co_sem_init(&S, 0, 0);
    co_task *a = spawn_named(acquirer, "A"), *b = spawn_named(acquirer, "B");
    settle();
    cr_assert_eq(co_sem_release(&S), 0); /* A granted, not resumed */
    cr_assert_eq(co_sem_destroy(&S), 0);
    settle();
    cr_assert_str_eq(tu_trace, "A:CO_ECLOSED B:CO_ECLOSED ");
    join_release(a);
    join_release(b);
    return NULL;
}

Test(sem, destroy_wakes_waiters) {
    tu_run_ok(sem_destroy, NULL);
}

/* ======================================================================= barrier */

static co_barrier B;

static void *barrier_waiter(void *arg) {
    unsigned idx = 99;
    int rc = co_barrier_wait(&B, &idx);
    if (rc == 0) tu_log("%s:%u", (char *)arg, idx);
    else tu_log("%s:%s", (char *)arg, co_err_name(rc));
    return NULL;
}

static void *barrier_rounds(void *arg) {
    cr_assert_eq(co_barrier_parties(&B), 3);
    for (int round = 0; round < 2; round++) {
        co_task *a = spawn_named(barrier_waiter, "A"), *b = spawn_named(barrier_waiter, "B");
        settle();
        cr_assert_eq(co_barrier_n_waiting(&B), 2);
        cr_assert_str_eq(tu_trace, round ? "main:2 A:0 B:1 " : "");
        unsigned idx;
        cr_assert_eq(co_barrier_wait(&B, &idx), 0);
        tu_log("main:%u", idx);
        cr_assert_eq(co_barrier_n_waiting(&B), 0, "ready for the next round at once");
        settle();
        join_release(a);
        join_release(b);
    }
    return NULL;
}

Test(barrier, rounds_and_indexes) {
    co_loop *L = tu_loop();
    cr_assert_eq(co_barrier_init(&B, 0), -EINVAL);
    cr_assert_null(co_barrier_new(0));
    cr_assert_eq(co_barrier_init(&B, 3), 0);
    cr_assert_eq(tu_run(L, barrier_rounds, NULL, NULL), 0);
    cr_assert_str_eq(tu_trace, "main:2 A:0 B:1 main:2 A:0 B:1 ", "the last to arrive passes first");
    co_barrier_destroy(&B);
    tu_close(L);
}

static void *barrier_one(void *arg) {
    unsigned idx = 7;
    cr_assert_eq(co_barrier_wait(&B, &idx), 0);
    cr_assert_eq(idx, 0);
    cr_assert_eq(co_barrier_wait(&B, NULL), 0);
    return NULL;
}

Test(barrier, one_party_never_waits) {
    co_loop *L = tu_loop();
    co_barrier_init(&B, 1);
    cr_assert_eq(tu_run(L, barrier_one, NULL, NULL), 0);
    co_barrier *b = co_barrier_new(2);
    cr_assert_not_null(b);
    cr_assert_eq(co_barrier_parties(b), 2);
    cr_assert_eq(co_barrier_free(b), 0);
    tu_close(L);
}

static void *barrier_cancels(void *arg) {
    co_task *a = spawn_named(barrier_waiter, "A"), *x = spawn_named(barrier_waiter, "X");
    settle();
    co_cancel(a, NULL); /* leaves the round as if it never arrived */
    settle();
    cr_assert_eq(co_barrier_n_waiting(&B), 1);
    co_task *b = spawn_named(barrier_waiter, "B");
    settle();
    cr_assert_str_eq(tu_trace, "A:ECANCELED ", "two waiting: X and B");
    co_task *c = spawn_named(barrier_waiter, "C");
    settle();
    cr_assert_str_eq(tu_trace, "A:ECANCELED C:2 X:0 B:1 ");
    /* passed, then cancelled before it resumed: -ECANCELED; the round stands */
    co_task *d = spawn_named(barrier_waiter, "D"), *e = spawn_named(barrier_waiter, "E");
    settle();
    co_task *f = spawn_named(barrier_waiter, "F");
    co_yield(); /* F arrives last and releases D and E */
    co_cancel(d, NULL);
    settle();
    cr_assert_str_eq(tu_trace, "A:ECANCELED C:2 X:0 B:1 F:2 D:ECANCELED E:1 ");
    cr_assert_eq(co_barrier_n_waiting(&B), 0);
    join_release(a);
    join_release(x);
    join_release(b);
    join_release(c);
    join_release(d);
    join_release(e);
    join_release(f);
    return NULL;
}

Test(barrier, cancellation) {
    co_barrier_init(&B, 3);
    tu_run_ok(barrier_cancels, NULL);
}

static void *barrier_abort_reset(void *arg) {
    co_task *a = spawn_named(barrier_waiter, "A");
    settle();
    cr_assert_eq(co_barrier_abort(&B), 0);
    cr_assert(co_barrier_broken(&B));
    settle();
    cr_assert_eq(co_barrier_wait(&B, NULL), -CO_EBROKEN, "broken until reset");
    cr_assert_eq(co_barrier_reset(&B), 0);
    cr_assert_not(co_barrier_broken(&B));
    co_task *b = spawn_named(barrier_waiter, "B");
    settle();
    cr_assert_eq(co_barrier_reset(&B), 0); /* B waiting: it gets EBROKEN, the barrier is fine */
    cr_assert_not(co_barrier_broken(&B));
    settle();
    co_task *c = spawn_named(barrier_waiter, "C");
    settle();
    unsigned idx;
    cr_assert_eq(co_barrier_wait(&B, &idx), 0);
    cr_assert_eq(idx, 1);
    settle();
    join_release(a);
    join_release(b);
    join_release(c);
    return NULL;
}

Test(barrier, abort_and_reset_break_waiters) {
    co_barrier_init(&B, 2);
    tu_run_ok(barrier_abort_reset, NULL);
    cr_assert_str_eq(tu_trace, "A:CO_EBROKEN B:CO_EBROKEN C:0 ");
}

static void *barrier_destroy(void *arg) {
    co_task *a = spawn_named(barrier_waiter, "A");
    settle();
    cr_assert_eq(co_barrier_destroy(&B), 0);
    settle();
    join_release(a);
    return NULL;
}

Test(barrier, destroy_wakes_waiters) {
    co_barrier_init(&B, 2);
    tu_run_ok(barrier_destroy, NULL);
    cr_assert_str_eq(tu_trace, "A:CO_ECLOSED ");
}
