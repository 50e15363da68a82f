/* tsfuture.c — thread-safe futures (concurrent.futures.Future).
 *
 * A future has one word-sized lock (lock.h). Threads that wait block in
 * a shared parking lot: one of CO__LOTS mutex + condition variable pairs,
 * picked by the future's address (a future is too small and short-lived
 * to carry its own 48-byte condition variable, and threads blocking on
 * futures are the rare case). Tasks that wait leave a record (co__tsw) on
 * their own stack and park; the thread that finishes the future takes
 * every record off the list under the lock, then, unlocked, posts each
 * task's wake-up to that task's loop inbox (never allocating: the record
 * carries its inbox node) and calls the done-callbacks.
 *
 * A task that stops waiting (cancelled, timed out) takes its record back
 * under the lock; if the finisher took it first, the wake-up is already on
 * its way to this very loop, so the task waits for it (a few microseconds
 * at most) before its stack record can go away.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

/* ---- the parking lot for blocked threads ------------------------------------------- */

#define CO__LOTS 64
static struct co__lot {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
} co__lots[CO__LOTS];
static pthread_once_t co__lots_once = PTHREAD_ONCE_INIT;

static void co__lots_init(void) {
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (int i = 0; i < CO__LOTS; i++) {
        pthread_mutex_init(&co__lots[i].mu, NULL);
        pthread_cond_init(&co__lots[i].cv, &ca);
    }
    pthread_condattr_destroy(&ca);
}

static struct co__lot *co__lot_of(const co_tsfuture *f) {
    pthread_once(&co__lots_once, co__lots_init);
    uintptr_t h = (uintptr_t)f >> 6;
    return &co__lots[(h ^ (h >> 6)) % CO__LOTS];
}

/* After f's state became final (a seq_cst store): wake the threads blocked
 * on it. They count themselves in nblocked (seq_cst) before they look at
 * the state, under their lot's mutex, so either they saw the final state
 * or we see them and our broadcast, under the same mutex, cannot fall
 * between their look and their wait. */
static void co__tsf_unpark(co_tsfuture *f) {
    if (atomic_load(&f->nblocked) == 0) return;
    struct co__lot *b = co__lot_of(f);
    pthread_mutex_lock(&b->mu);
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* ---- life ------------------------------------------------------------------------ */

static void co__tsf_init(co_tsfuture *f, const co__tsf_ops *ops, unsigned refs) {
    atomic_init(&f->lock, CO__LOCK_INIT);
    atomic_init(&f->state, CO_PENDING);
    atomic_init(&f->refs, refs);
    atomic_init(&f->nblocked, 0);
    atomic_init(&f->cancel_req, false);
    atomic_init(&f->retrieved, false);
    co__list_init(&f->waiters);
    f->ops = ops;
}

void *co__tsf_alloc(size_t size, const co__tsf_ops *ops, unsigned refs) {
    co_tsfuture *f = calloc(1, size);
    if (!f) {
        errno = ENOMEM;
        return NULL;
    }
    co__tsf_init(f, ops, refs);
    return f;
}

void co__tsf_discard(co_tsfuture *f) {
    atomic_store(&f->refs, 1);
    co_tsfuture_release(f);
}

co_tsfuture *co_tsfuture_new(void) { return co__tsf_alloc(sizeof(co_tsfuture), NULL, 1); }

co_tsfuture *co_tsfuture_retain(co_tsfuture *f) {
    if (f) atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void co_tsfuture_release(co_tsfuture *f) {
    if (!f || atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1) return;
    if (atomic_load_explicit(&f->state, memory_order_relaxed) == CO_DONE && f->value &&
        f->free_result && !atomic_load_explicit(&f->retrieved, memory_order_relaxed))
        f->free_result(f->value);
    free(f->msg);
    if (f->ops && f->ops->free) f->ops->free(f);
    else free(f);
}

/* ---- finishing ------------------------------------------------------------------ */

/* On the waiting task's loop: the wake-up posted by the finisher. */
static void co__tsw_deliver(void *arg) {
    co__tsw *w = arg;
    co_task *t = w->task;
    w->delivered = true; /* w may be gone once t runs */
    co__wake_if_parked(t);
}

/* Takes every waiter off f's list (mu held); returns them in `out`. */
static void co__tsf_take_waiters(co_tsfuture *f, co__list *out) {
    co__list_init(out);
    co__list_for_each(it, &f->waiters) co__container_of(it, co__tsw, link)->taken = true;
    if (co__list_empty(&f->waiters)) return;
    out->next = f->waiters.next;
    out->prev = f->waiters.prev;
    out->next->prev = out;
    out->prev->next = out;
    co__list_init(&f->waiters);
}

static void co__tsf_fire(co_tsfuture *f, co__list *ws) {
    co__list *n;
    while ((n = co__list_pop_front(ws))) {
        co__tsw *w = co__container_of(n, co__tsw, link);
        if (w->kind == CO__TSW_TASK) {
            /* the task's loop is alive: the task is parked in it, waiting */
            co__xq_push(w->task->loop, co__tsw_deliver, w, &w->node);
        } else {
            w->cb(f, w->arg);
            free(w);
        }
    }
}

int co__tsf_finish(co_tsfuture *f, int state, void *value, int err, const char *msg) {
    char *m = msg ? strdup(msg) : NULL;
    co__list ws;
    co__lock_acquire(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed) >= CO_DONE) {
        co__lock_release(&f->lock);
        free(m);
        return -CO_EINVALSTATE;
    }
    f->value = value;
    f->err = err;
    f->msg = m;
    atomic_store(&f->state, state); /* seq_cst: see co__tsf_unpark */
    co__tsf_take_waiters(f, &ws);
    co__lock_release(&f->lock);
    co__tsf_unpark(f);
    co__tsf_fire(f, &ws);
    return 0;
}

int co_tsfuture_set_result(co_tsfuture *f, void *value) {
    if (!f) return -EINVAL;
    return co__tsf_finish(f, CO_DONE, value, 0, NULL);
}

int co_tsfuture_set_error(co_tsfuture *f, int err, const char *msg) {
    if (!f || err >= 0) return -EINVAL;
    return co__tsf_finish(f, err == -ECANCELED ? CO_CANCELLED : CO_FAILED, NULL, err, msg);
}

int co_tsfuture_set_running(co_tsfuture *f) {
    if (!f) return -EINVAL;
    /* one CAS, no lock: a cancel moves PENDING on under the lock with
     * a CAS too, so exactly one of the two wins */
    int s = CO_PENDING;
    if (atomic_compare_exchange_strong_explicit(&f->state, &s, CO_RUNNING, memory_order_acquire,
                                                memory_order_acquire) ||
        s == CO_RUNNING)
        return 0;
    return s == CO_CANCELLED ? -ECANCELED : -CO_EINVALSTATE;
}

void co_tsfuture_set_free_result(co_tsfuture *f, void (*free_result)(void *)) {
    if (f) f->free_result = free_result;
}

/* Tests only: called by co_tsfuture_cancel once it let go of the lock,
 * to widen the window in which the producer may go away. */
void (*co__tsf_cancel_gap)(co_tsfuture *f);

int co_tsfuture_cancel(co_tsfuture *f) {
    if (!f) return -EINVAL;
    co__list ws;
    co__lock_acquire(&f->lock);
    int s = CO_PENDING;
    /* err first: readers look at it only once the state is final */
    if (atomic_load_explicit(&f->state, memory_order_relaxed) == CO_PENDING) f->err = -ECANCELED;
    if (atomic_compare_exchange_strong(&f->state, &s, CO_CANCELLED)) { /* seq_cst: co__tsf_unpark */
        co__tsf_take_waiters(f, &ws);
        if (f->ops && f->ops->cancel) f->ops->cancel(f, true); /* locked: see co__tsf_ops */
        co__lock_release(&f->lock);
        if (co__tsf_cancel_gap) co__tsf_cancel_gap(f);
        co__tsf_unpark(f);
        co__tsf_fire(f, &ws);
        return 1;
    }
    bool first = s == CO_RUNNING && !atomic_exchange(&f->cancel_req, true);
    if (first && f->ops && f->ops->cancel) f->ops->cancel(f, false);
    co__lock_release(&f->lock);
    if (co__tsf_cancel_gap) co__tsf_cancel_gap(f);
    return 0;
}

/* ---- reading ---------------------------------------------------------------------- */

co_state co_tsfuture_state(const co_tsfuture *f) {
    return f ? (co_state)atomic_load_explicit(&((co_tsfuture *)f)->state, memory_order_acquire)
             : CO_PENDING;
}

bool co_tsfuture_done(const co_tsfuture *f) { return co_tsfuture_state(f) >= CO_DONE; }

const char *co_tsfuture_message(const co_tsfuture *f) {
    return co_tsfuture_done(f) ? f->msg : NULL;
}

/* f is finished (state read with acquire). */
static int co__tsf_outcome(co_tsfuture *f, void **value) {
    switch (atomic_load_explicit(&f->state, memory_order_acquire)) {
    case CO_DONE:
        if (value) {
            *value = f->value;
            atomic_store_explicit(&f->retrieved, true, memory_order_relaxed);
        }
        return 0;
    case CO_FAILED:
        return f->err;
    default:
        return -ECANCELED;
    }
}

int co_tsfuture_result(co_tsfuture *f, void **value) {
    if (!f) return -EINVAL;
    if (!co_tsfuture_done(f)) return -EAGAIN;
    return co__tsf_outcome(f, value);
}

int co_tsfuture_add_done_callback(co_tsfuture *f, co_tsfuture_cb fn, void *arg) {
    if (!f || !fn) return -EINVAL;
    co__tsw *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->kind = CO__TSW_CB;
    w->cb = fn;
    w->arg = arg;
    co__lock_acquire(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed) < CO_DONE) {
        co__list_append(&f->waiters, &w->link);
        co__lock_release(&f->lock);
        return 0;
    }
    co__lock_release(&f->lock);
    free(w);
    fn(f, arg);
    return 0;
}

/* ---- waiting ---------------------------------------------------------------------- */

/* From a task: park until the finisher's wake-up arrives. */
static bool co__tsw_delivered(const void *w) { return ((const co__tsw *)w)->delivered; }

/* From a task: park until the finisher's wake-up arrives. */
static int co__tsf_wait_task(co_tsfuture *f, co_task *t, int64_t deadline, void **value) {
    co_loop *L = t->loop;
    if (co__cancel_pending(t)) return -ECANCELED;
    co__tsw w = {.kind = CO__TSW_TASK, .task = t};
    co__lock_acquire(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed) >= CO_DONE) {
        co__lock_release(&f->lock);
        return co__tsf_outcome(f, value);
    }
    co__list_append(&f->waiters, &w.link);
    co__lock_release(&f->lock);

    L->xwaiters++;
    int rc = co__wait(t, deadline, co__tsw_delivered, &w, 0);
    if (rc) {
        co__lock_acquire(&f->lock);
        bool taken = w.taken;
        if (!taken) co__list_remove(&w.link);
        co__lock_release(&f->lock);
        /* taken: the wake-up is in (or entering) this loop's inbox and
         * points at w; wait for it, whatever else wakes us meanwhile */
        while (taken && !w.delivered) co__suspend(t);
        if (w.delivered) rc = 0; /* it finished after all: a completion is never thrown away */
    }
    L->xwaiters--;
    return rc ? rc : co__tsf_outcome(f, value);
}

/* From a thread: block in f's parking lot (see co__tsf_unpark). */
static int co__tsf_wait_thread(co_tsfuture *f, double timeout, void **value) {
    struct timespec until;
    bool limited = !isinf(timeout) && timeout < 9.2e9; /* > 0 here */
    if (limited) {
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t ns = co__sec_to_ns(timeout) + until.tv_nsec;
        until.tv_sec += (time_t)(ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
    }
    struct co__lot *b = co__lot_of(f);
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    atomic_fetch_add(&f->nblocked, 1);
    while (atomic_load(&f->state) < CO_DONE) {
        int e = limited ? pthread_cond_timedwait(&b->cv, &b->mu, &until) : pthread_cond_wait(&b->cv, &b->mu);
        if (e == ETIMEDOUT && atomic_load(&f->state) < CO_DONE) {
            rc = -ETIMEDOUT;
            break;
        }
    }
    atomic_fetch_sub(&f->nblocked, 1);
    pthread_mutex_unlock(&b->mu);
    return rc ? rc : co__tsf_outcome(f, value);
}

int co_tsfuture_wait(co_tsfuture *f, double timeout, void **value) {
    if (!f || isnan(timeout)) return -EINVAL;
    if (co_tsfuture_done(f)) return co__tsf_outcome(f, value);
    if (co__cur_job && co__job_is(co__cur_job, f)) return -EDEADLK;
    co_task *t = co_current();
    if (t) {
        int64_t deadline;
        co__deadline_in(t->loop, timeout, &deadline);
        return co__tsf_wait_task(f, t, deadline, value);
    }
    if (timeout <= 0) return -ETIMEDOUT;
    return co__tsf_wait_thread(f, timeout, value);
}
