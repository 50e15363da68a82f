/* test_sync_stress.c — randomised schedules over one mutex, semaphore,
 * queue, event, condition and barrier, fixed seeds. Many workers lock,
 * acquire, put, get, wait, notify at random while others cancel them at
 * random — often the very waiter a release has just granted, to hit the
 * "woken and cancelled at once" path. Invariants at the end: every worker
 * finished (no hang), never two holders of the mutex nor more than K of
 * the semaphore, every item put was got exactly once or is still in the
 * queue (none lost, none duplicated, none from a cancelled put), every
 * permit is back, the mutex is free, the queue's task_done count is exact. */
#include "testutil.h"

#include <stdint.h>

enum { NW = 400, STEPS = 100, K = 3, MAXITEMS = NW * STEPS + 1 };
enum { OP_LOCK, OP_SEM, OP_PUT, OP_GET, OP_EVENT, OP_COND, OP_BARRIER, OP_TRY, NOPS };

typedef struct world {
    uint64_t seed;
    co_mutex m;
    co_sem s;
    co_queue q;
    co_event e;
    co_cond c;
    co_barrier b;
    co_task *w[NW];
    int steps_left[NW];        /* per worker slot; a cancelled worker's successor goes on */
    int in_cs, in_sem, finished, closing;
    int next_id, total_steps;
    unsigned char put_ok[MAXITEMS], got[MAXITEMS];
    int wait_op[NW];           /* what worker i waits in now (-1: nothing) */
    uint64_t wait_ticket[NW];  /* when it started waiting: FIFO order */
    uint64_t ticket;
    int cancelled_at[NOPS];    /* -ECANCELED results seen per operation */
    double vt;                 /* virtual time when the last worker finished */
    int ok_at[NOPS];
} world;

static world W;

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void waiting(int me, int op) {
    W.wait_op[me] = op;
    W.wait_ticket[me] = ++W.ticket;
}

/* Right after a release on `op`: cancel the longest waiter there (the one
 * the release has just granted, if it had to wait). */
static void cancel_first_waiter(int op) {
    int best = -1;
    for (int i = 0; i < NW; i++)
        if (W.wait_op[i] == op && (best < 0 || W.wait_ticket[i] < W.wait_ticket[best])) best = i;
    if (best >= 0) co_cancel(W.w[best], "granted, then cancelled");
}

static int pause_a_little(uint64_t *s) {
    switch (rnd(s) % 3) {
    case 0: return 0;
    case 1: return co_yield();
    default: return co_sleep((double)(rnd(s) % 3) / 1000.0);
    }
}

static bool tick_moved(void *arg) { return W.closing || (rnd((uint64_t *)arg) % 3) == 0; }

static int step(int me, uint64_t *s) {
    int op = (int)(rnd(s) % NOPS), rc = 0;
    bool mean = rnd(s) % 6 == 0; /* cancel the next waiter after our release */
    waiting(me, op);
    switch (op) {
    case OP_LOCK:
        rc = co_mutex_lock(&W.m);
        W.wait_op[me] = -1;
        if (rc) break;
        cr_assert_eq(W.in_cs++, 0, "two holders of the mutex");
        rc = pause_a_little(s);
        W.in_cs--;
        cr_assert_eq(co_mutex_unlock(&W.m), 0);
        if (mean) cancel_first_waiter(OP_LOCK);
        break;
    case OP_SEM:
        rc = co_sem_acquire(&W.s);
        W.wait_op[me] = -1;
        if (rc) break;
        cr_assert_leq(++W.in_sem, K, "more than K permits out");
        rc = pause_a_little(s);
        W.in_sem--;
        cr_assert_eq(co_sem_release(&W.s), 0);
        if (mean) cancel_first_waiter(OP_SEM);
        break;
    case OP_PUT: {
        int id = ++W.next_id;
        rc = co_queue_put(&W.q, (void *)(intptr_t)id);
        W.wait_op[me] = -1;
        if (rc == 0) W.put_ok[id] = 1;
        if (rc == 0 && mean) cancel_first_waiter(OP_GET);
        break;
    }
    case OP_GET: {
        void *it = NULL;
        rc = co_queue_get(&W.q, &it);
        W.wait_op[me] = -1;
        if (rc) break;
        int id = (int)(intptr_t)it;
        cr_assert(W.put_ok[id], "item %d got but never put", id);
        cr_assert_not(W.got[id], "item %d got twice", id);
        W.got[id] = 1;
        cr_assert_eq(co_queue_task_done(&W.q), 0);
        if (mean) cancel_first_waiter(OP_PUT);
        break;
    }
    case OP_EVENT:
        rc = co_event_wait(&W.e);
        W.wait_op[me] = -1;
        break;
    case OP_COND:
        W.wait_op[me] = OP_LOCK;
        rc = co_mutex_lock(&W.m);
        W.wait_op[me] = -1;
        if (rc) break;
        cr_assert_eq(W.in_cs++, 0);
        W.in_cs--;
        waiting(me, OP_COND);
        rc = co_cond_wait_for(&W.c, tick_moved, s);
        W.wait_op[me] = -1;
        cr_assert_eq(W.in_cs++, 0, "the mutex is held again after a cond wait");
        W.in_cs--;
        cr_assert_eq(co_mutex_unlock(&W.m), 0, "cond wait returned %s without the mutex", co_err_name(rc));
        break;
    case OP_BARRIER: {
        unsigned idx = 99;
        rc = co_barrier_wait(&W.b, &idx);
        W.wait_op[me] = -1;
        if (rc == 0) cr_assert_lt(idx, 3);
        if (rc == 0 && idx == 2 && mean) cancel_first_waiter(OP_BARRIER); /* passed, not resumed */
        if (rc == -CO_EBROKEN) rc = 0;
        break;
    }
    default: { /* the forms that never suspend */
        W.wait_op[me] = -1;
        void *it;
        if (co_mutex_trylock(&W.m) == 0) {
            cr_assert_eq(W.in_cs++, 0);
            W.in_cs--;
            cr_assert_eq(co_mutex_unlock(&W.m), 0);
        }
        if (co_sem_try_acquire(&W.s) == 0) {
            cr_assert_leq(++W.in_sem, K);
            W.in_sem--;
            cr_assert_eq(co_sem_release(&W.s), 0);
        }
        if (co_queue_try_get(&W.q, &it) == 0) {
            int id = (int)(intptr_t)it;
            cr_assert(W.put_ok[id] && !W.got[id], "item %d", id);
            W.got[id] = 1;
            cr_assert_eq(co_queue_task_done(&W.q), 0);
        }
        int id = ++W.next_id;
        if (co_queue_try_put(&W.q, (void *)(intptr_t)id) == 0) W.put_ok[id] = 1;
        if (rnd(s) % 16 == 0) co_cancel(W.w[rnd(s) % NW], "at random");
        break;
    }
    }
    if (rc == -ECANCELED) W.cancelled_at[op]++;
    else if (rc == 0) W.ok_at[op]++;
    return rc;
}

static void *worker(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t s = W.seed ^ (uint64_t)(W.steps_left[me] * NW + me + 1) * 0x9E3779B97F4A7C15ULL;
    int rc = 0;
    while (W.steps_left[me] > 0 && rc == 0 && !W.closing) {
        W.steps_left[me]--;
        W.total_steps++;
        rc = step(me, &s);
        cr_assert(rc == 0 || rc == -ECANCELED || rc == -CO_ESHUTDOWN, "step: %s", co_err_name(rc));
    }
    if (rc == -ECANCELED) {
        cr_assert(co_cancelled());
        if (W.steps_left[me] > 0 && !W.closing) { /* a successor takes the slot over */
            co_task *next = co_spawn(worker, arg), *self = W.w[me];
            cr_assert_not_null(next);
            W.w[me] = next;
            co_task_release(self);
            return NULL;
        }
    }
    W.finished++;
    return NULL;
}

/* Toggles the event, notifies the condition, cancels at random; then
 * closes everything so that every waiter gets out. */
static void *controller(void *arg) {
    uint64_t s = W.seed * 31 + 7;
    for (int tick = 0; tick < 5000 && W.finished < NW; tick++) {
        co_sleep((double)(rnd(&s) % 4) / 1000.0);
        if (rnd(&s) % 2) {
            co_event_set(&W.e);
            if (rnd(&s) % 3 == 0) cancel_first_waiter(OP_EVENT); /* woken, not resumed */
        } else {
            co_event_clear(&W.e);
        }
        if (co_mutex_lock(&W.m) == 0) {
            cr_assert_eq(W.in_cs++, 0);
            W.in_cs--;
            co_cond_notify(&W.c, (int)(rnd(&s) % 3));
            co_mutex_unlock(&W.m);
        }
        if (rnd(&s) % 4 == 0) co_cancel(W.w[rnd(&s) % NW], "controller");
    }
    W.closing = 1;
    co_event_set(&W.e);
    co_barrier_abort(&W.b);
    co_queue_shutdown(&W.q, false); /* blocked putters fail; getters drain, then fail */
    for (int i = 0; W.finished < NW; i++) {
        cr_assert_lt(i, 10000, "%d workers never got out (hung)", NW - W.finished);
        if (co_mutex_lock(&W.m) == 0) {
            co_cond_notify_all(&W.c);
            co_mutex_unlock(&W.m);
        }
        co_sleep(0.001);
    }
    return NULL;
}

/* If every task is stuck, the virtual clock jumps here: fail, not hang. */
static void *watchdog(void *arg) {
    if (co_sleep(3600) == 0)
        cr_assert(false, "hung: %d of %d workers never finished, mutex %s, %u permits free", NW - W.finished, NW,
                co_mutex_locked(&W.m) ? "locked" : "free", co_sem_value(&W.s));
    return NULL;
}

static void *run_world(void *arg) {
    co_queue_opts qo = {.order = (co_queue_order)(W.seed % 2 ? CO_QUEUE_FIFO : CO_QUEUE_LIFO),
                        .maxsize = 1 + W.seed % 4};
    co_mutex_init(&W.m);
    cr_assert_eq(co_sem_init(&W.s, K, CO_SEM_BOUNDED), 0);
    cr_assert_eq(co_queue_init(&W.q, &qo), 0);
    co_event_init(&W.e);
    co_cond_init(&W.c, &W.m);
    co_barrier_init(&W.b, 3);
    for (int i = 0; i < NW; i++) {
        W.wait_op[i] = -1;
        W.steps_left[i] = STEPS;
    }
    for (int i = 0; i < NW; i++) cr_assert_not_null(W.w[i] = co_spawn(worker, (void *)(intptr_t)i));
    co_task *ctl = co_spawn(controller, NULL), *dog = co_spawn(watchdog, NULL);
    cr_assert_eq(co_join(ctl, NULL), 0);
    co_task_release(ctl);
    co_cancel(dog, NULL);
    co_join(dog, NULL);
    co_task_release(dog);
    for (int i = 0; i < NW; i++) {
        co_join(W.w[i], NULL);
        co_task_release(W.w[i]);
    }
    cr_assert_eq(W.finished, NW);
    W.vt = co_time();

    /* items: each put exactly once got, or still in the queue */
    void *it;
    int left = 0;
    while (co_queue_try_get(&W.q, &it) == 0) {
        int id = (int)(intptr_t)it;
        cr_assert(W.put_ok[id] && !W.got[id], "item %d left but put %d got %d", id, W.put_ok[id], W.got[id]);
        W.got[id] = 1;
        left++;
    }
    int puts = 0;
    for (int id = 1; id <= W.next_id; id++) {
        cr_assert_eq(W.got[id], W.put_ok[id], "item %d: put %d, got %d", id, W.put_ok[id], W.got[id]);
        puts += W.put_ok[id];
    }
    cr_assert_gt(puts, 0);
    for (int i = 0; i < left; i++) cr_assert_eq(co_queue_task_done(&W.q), 0);
    cr_assert_eq(co_queue_task_done(&W.q), -EINVAL, "task_done count exact");
    cr_assert_eq(co_queue_join(&W.q), 0);

    /* permits and the mutex */
    cr_assert_eq(W.in_cs, 0);
    cr_assert_eq(W.in_sem, 0);
    cr_assert_eq(co_sem_value(&W.s), K, "every permit back");
    cr_assert_eq(co_sem_release(&W.s), -EOVERFLOW, "and none made up");
    cr_assert_not(co_mutex_locked(&W.m));
    cr_assert_eq(co_mutex_trylock(&W.m), 0);
    cr_assert_eq(co_mutex_unlock(&W.m), 0);
    cr_assert_eq(co_barrier_n_waiting(&W.b), 0);

    cr_assert_eq(co_queue_destroy(&W.q), 0);
    cr_assert_eq(co_barrier_destroy(&W.b), 0);
    cr_assert_eq(co_cond_destroy(&W.c), 0);
    cr_assert_eq(co_event_destroy(&W.e), 0);
    cr_assert_eq(co_sem_destroy(&W.s), 0);
    cr_assert_eq(co_mutex_destroy(&W.m), 0);
    return NULL;
}

static void run_seed(uint64_t seed) {
    memset(&W, 0, sizeof W);
    W.seed = seed;
    tu_run_ok(run_world, NULL);
    if (getenv("STRESS_STATS")) { /* ok/cancelled per operation, for tuning */
        fprintf(stderr, "seed %llu: %.3f s virtual, %d steps, %d items:", (unsigned long long)seed, W.vt,
                W.total_steps, W.next_id);
        for (int op = 0; op < NOPS; op++) fprintf(stderr, " %d/%d", W.ok_at[op], W.cancelled_at[op]);
        fprintf(stderr, "\n");
    }
    /* the schedule did exercise cancellation at the calls that suspend */
    static const char *names[] = {"lock", "sem", "put", "get", "event", "cond", "barrier"};
    for (int op = 0; op < OP_TRY; op++) {
        cr_assert_gt(W.ok_at[op], 0, "seed %llu: no %s succeeded", (unsigned long long)seed, names[op]);
        cr_assert_gt(W.cancelled_at[op], 0, "seed %llu: no %s cancelled", (unsigned long long)seed, names[op]);
    }
}

Test(sync_stress, seed_1) { run_seed(1); }
Test(sync_stress, seed_2) { run_seed(2); }
Test(sync_stress, seed_3) { run_seed(3); }
Test(sync_stress, seed_4) { run_seed(4); }
Test(sync_stress, seed_5) { run_seed(0x5eed5); }
Test(sync_stress, seed_6) { run_seed(0xC0FFEE); }
Test(sync_stress, seed_7) { run_seed(77777777); }
Test(sync_stress, seed_8) { run_seed(0xDEADBEEF); }
