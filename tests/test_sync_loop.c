/* test_sync_loop.c — a primitive belongs to one loop: every call from a
 * task of another loop, or from a plain thread, fails at once with
 * -CO_EWRONGLOOP, changes nothing, and is reported through the
 * primitive's loop naming both loops. Also: binding at first use. */
#include "testutil.h"

#include <pthread.h>
#include <stdint.h>

static co_mutex M;
static co_event E;
static co_cond C;
static co_sem S;
static co_barrier B;
static co_queue Q;

static void init_all(void) {
    co_mutex_init(&M);
    co_event_init(&E);
    co_cond_init(&C, &M);
    co_sem_init(&S, 1, CO_SEM_BOUNDED);
    co_barrier_init(&B, 2);
    co_queue_init(&Q, &(co_queue_opts){.maxsize = 2});
}

static void destroy_all(void) {
    cr_assert_eq(co_queue_destroy(&Q), 0);
    cr_assert_eq(co_barrier_destroy(&B), 0);
    cr_assert_eq(co_sem_destroy(&S), 0);
    cr_assert_eq(co_cond_destroy(&C), 0);
    cr_assert_eq(co_event_destroy(&E), 0);
    cr_assert_eq(co_mutex_destroy(&M), 0);
}

typedef struct op {
    const char *name;
    int (*fn)(void);
} op;

static void *item;
static int op_lock(void) { return co_mutex_lock(&M); }
static int op_trylock(void) { return co_mutex_trylock(&M); }
static int op_unlock(void) { return co_mutex_unlock(&M); }
static int op_ev_wait(void) { return co_event_wait(&E); }
static int op_ev_set(void) { return co_event_set(&E); }
static int op_ev_clear(void) { return co_event_clear(&E); }
static int op_cond_wait(void) { return co_cond_wait(&C); }
static int op_cond_notify(void) { return co_cond_notify(&C, 1); }
static int op_acquire(void) { return co_sem_acquire(&S); }
static int op_try_acquire(void) { return co_sem_try_acquire(&S); }
static int op_release(void) { return co_sem_release(&S); }
static int op_bwait(void) { return co_barrier_wait(&B, NULL); }
static int op_breset(void) { return co_barrier_reset(&B); }
static int op_babort(void) { return co_barrier_abort(&B); }
static int op_put(void) { return co_queue_put(&Q, (void *)1); }
static int op_get(void) { return co_queue_get(&Q, &item); }
static int op_try_put(void) { return co_queue_try_put(&Q, (void *)1); }
static int op_try_get(void) { return co_queue_try_get(&Q, &item); }
static int op_join(void) { return co_queue_join(&Q); }
static int op_task_done(void) { return co_queue_task_done(&Q); }
static int op_shutdown(void) { return co_queue_shutdown(&Q, true); }

static const op OPS[] = {
    {"co_mutex_lock", op_lock},         {"co_mutex_trylock", op_trylock},
    {"co_mutex_unlock", op_unlock},     {"co_event_wait", op_ev_wait},
    {"co_event_set", op_ev_set},        {"co_event_clear", op_ev_clear},
    {"co_cond_wait", op_cond_wait},     {"co_cond_notify", op_cond_notify},
    {"co_sem_acquire", op_acquire},     {"co_sem_try_acquire", op_try_acquire},
    {"co_sem_release", op_release},     {"co_barrier_wait", op_bwait},
    {"co_barrier_reset", op_breset},    {"co_barrier_abort", op_babort},
    {"co_queue_put", op_put},           {"co_queue_get", op_get},
    {"co_queue_try_put", op_try_put},   {"co_queue_try_get", op_try_get},
    {"co_queue_join", op_join},         {"co_queue_task_done", op_task_done},
    {"co_queue_shutdown", op_shutdown},
};
enum { NOPS = sizeof OPS / sizeof OPS[0] };
static int rcs[NOPS];

static void run_all_ops(void) {
    for (int i = 0; i < NOPS; i++) rcs[i] = OPS[i].fn();
}

static void *all_ops_task(void *arg) {
    run_all_ops();
    return NULL;
}

/* Every call failed, nothing changed, and each was reported by name. */
static void check_refused(const char *from) {
    for (int i = 0; i < NOPS; i++)
        cr_assert_eq(rcs[i], -CO_EWRONGLOOP, "%s: %s", OPS[i].name, co_err_name(rcs[i]));
    for (int i = 0; i < NOPS; i++) {
        char want[128];
        snprintf(want, sizeof want, "%s: called from %s", OPS[i].name, from);
        cr_assert(strstr(tu_reports, want), "no report \"%s\" in:\n%s", want, tu_reports);
    }
    cr_assert_not(co_mutex_locked(&M));
    cr_assert_not(co_event_is_set(&E));
    cr_assert_eq(co_sem_value(&S), 1);
    cr_assert_eq(co_barrier_n_waiting(&B), 0);
    cr_assert_not(co_barrier_broken(&B));
    cr_assert_eq(co_queue_size(&Q), 0);
}

/* The primitives still work on their own loop afterwards. */
static void *use_all(void *arg) {
    cr_assert_eq(co_mutex_lock(&M), 0);
    cr_assert_eq(co_cond_notify(&C, 1), 0);
    cr_assert_eq(co_mutex_unlock(&M), 0);
    cr_assert_eq(co_event_set(&E), 0);
    cr_assert_eq(co_event_wait(&E), 0);
    cr_assert_eq(co_sem_acquire(&S), 0);
    cr_assert_eq(co_sem_release(&S), 0);
    cr_assert_eq(co_queue_put(&Q, (void *)7), 0);
    cr_assert_eq(co_queue_get(&Q, &item), 0);
    cr_assert_eq(item, (void *)7);
    cr_assert_eq(co_queue_task_done(&Q), 0);
    cr_assert_eq(co_queue_join(&Q), 0);
    return NULL;
}

Test(sync_loop, task_of_another_loop) {
    co_loop *L1 = tu_loop();
    init_all();
    co_loop *L2 = co_loop_new(&(co_loop_opts){.virtual_clock = true, .report = tu_report});
    cr_assert_not_null(L2);
    co_loop_set_current(L2);
    co_task *t = co_spawn(all_ops_task, NULL);
    co_loop_set_current(L1);
    cr_assert_eq(co_loop_run_until_complete(L2, t, NULL), 0);
    co_task_release(t);
    check_refused("a task of another loop");
    char both[128];
    snprintf(both, sizeof both, "on an object of loop %p (this thread's loop: %p)", (void *)L1, (void *)L2);
    cr_assert(strstr(tu_reports, both), "both loops named: want \"%s\" in:\n%s", both, tu_reports);
    cr_assert_eq(co_loop_free(L2), 0);
    co_loop_set_current(L1);
    cr_assert_eq(tu_run(L1, use_all, NULL, NULL), 0);
    destroy_all();
    tu_close(L1);
}

static void *thread_ops(void *arg) {
    run_all_ops();
    return NULL;
}

Test(sync_loop, plain_thread) {
    co_loop *L = tu_loop();
    init_all();
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, thread_ops, NULL), 0);
    pthread_join(th, NULL);
    check_refused("another thread");
    cr_assert_eq(tu_run(L, use_all, NULL, NULL), 0);
    destroy_all();
    tu_close(L);
}

/* ---- destroy from the wrong thread while tasks wait: refused ------------------------- */

static void *ev_waiter(void *arg) { return (void *)(intptr_t)co_event_wait(&E); }
static void *stop_soon(void *arg) {
    co_yield();
    co_yield();
    return NULL;
}

static int destroy_rc;
static void *thread_destroy(void *arg) {
    destroy_rc = co_event_destroy(&E);
    return NULL;
}

Test(sync_loop, destroy_with_waiters_from_another_thread) {
    co_loop *L = tu_loop();
    init_all();
    co_task *w = co_spawn(ev_waiter, NULL);
    cr_assert_eq(tu_run(L, stop_soon, NULL, NULL), 0); /* w now waits */
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, thread_destroy, NULL), 0);
    pthread_join(th, NULL);
    cr_assert_eq(destroy_rc, -CO_EWRONGLOOP);
    cr_assert(strstr(tu_reports, "co_event_destroy: called from another thread"), "%s", tu_reports);
    cr_assert_eq(co_event_set(&E), 0, "outside a task, on the loop's thread: fine");
    void *v;
    cr_assert_eq(co_loop_run_until_complete(L, w, &v), 0);
    cr_assert_eq(v, (void *)0, "the waiter was woken normally");
    co_task_release(w);
    destroy_all();
    tu_close(L);
}

/* ---- binding at first use --------------------------------------------------------------- */

static void *lock_unlock(void *arg) {
    int rc = co_mutex_lock(&M);
    if (rc == 0) co_mutex_unlock(&M);
    return (void *)(intptr_t)rc;
}

Test(sync_loop, initialised_without_a_loop_binds_at_first_use) {
    co_loop_set_current(NULL);
    co_mutex_init(&M);     /* no loop current: unbound */
    cr_assert_eq(co_mutex_unlock(&M), -CO_ENOLOOP);
    co_loop *L1 = tu_loop();
    co_loop *L2 = co_loop_new(&(co_loop_opts){.virtual_clock = true, .report = tu_report});
    void *v;
    cr_assert_eq(tu_run(L1, lock_unlock, NULL, &v), 0);
    cr_assert_eq((intptr_t)v, 0, "bound to L1 by its first user");
    co_loop_set_current(L2);
    co_task *t = co_spawn(lock_unlock, NULL);
    co_loop_set_current(L1);
    cr_assert_eq(co_loop_run_until_complete(L2, t, &v), 0);
    cr_assert_eq((intptr_t)v, -CO_EWRONGLOOP);
    co_task_release(t);
    cr_assert_eq(co_loop_free(L2), 0);
    co_loop_set_current(L1);
    cr_assert_eq(co_mutex_destroy(&M), 0);
    tu_close(L1);
}
