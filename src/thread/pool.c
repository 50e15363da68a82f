/* pool.c — thread pools: co_pool_*, co_run_blocking*, co_blocking_*.
 *
 * A pool is a lock-free ring of jobs (Vyukov's bounded multi-producer,
 * multi-consumer queue: one CAS to submit, one CAS to take), an overflow
 * list under the pool's mutex for when the ring is full, and threads that
 * take jobs from them. A job is one allocation: the future its submitter
 * holds, the function and argument.
 *
 * The mutex is off the fast path: submitting touches it only to wake a
 * sleeping thread, and a thread only to go to sleep. Waking costs a system
 * call on the submitter's side, so it happens only when needed: a thread
 * that runs out of work first spins for a while (CO__POOL_SPIN_NS)
 * watching the ring, and a submission wakes a sleeping thread only when no
 * thread is spinning. A thread that takes a job and sees more queued wakes
 * the next one, so a burst of submissions pays for one wake-up and the
 * pool fans out by itself. At most max_spin threads spin at once (half the
 * cores): spinning must never take the CPU from threads with work.
 *
 * The wake-up handshake (no lost wake-up): a submitter claims its cell
 * (a seq_cst CAS; or appends to the overflow list under mu), then reads
 * nsleeping; a thread going to sleep increments nsleeping (seq_cst, under
 * mu), then looks at the queue again, claims included. One of the two
 * sees the other; and since the sleeper holds mu from its check until
 * pthread_cond_wait releases it, a signal sent under mu cannot fall into
 * that gap.
 *
 * A job cancelled while queued stays in the ring (a ring has no middle to
 * remove from) and is counted in ncancelled; the thread that takes it
 * drops it without running it. co_pool_queued subtracts those.
 *
 * Threads are detached; the pool counts them and shutdown waits until the
 * count reaches zero (a thread touches the pool for the last time under
 * the mutex, before it signals).
 *
 * Stalls (the default pool only). Blocking work can block for good: a
 * FIFO's open with no writer, a dead NFS server. A fixed pool whose every
 * thread is stuck stops every later file call and DNS lookup in the
 * process. So the default pool grows past its size when its queue stalls,
 * up to CO__POOL_GROW_MAX threads, and the threads above its size leave
 * after CO__POOL_KEEPALIVE_NS idle. The rejected alternatives: Tokio's
 * rule (a new thread whenever a job finds no idle thread) starts hundreds
 * of threads for a burst of short jobs, which here run faster on the
 * threads already spinning; a reserve pool for files and DNS only moves
 * the problem to the reserve. Go's sysmon is the model instead: a monitor
 * thread, armed when a job is queued with no thread asleep or spinning
 * (every thread is busy), looks every CO__POOL_STALL_NS and starts one
 * thread when the queue's head has not moved for a whole tick with every
 * thread still busy; it disarms (and sleeps, costing nothing) once the
 * queue is empty. A burst of short jobs moves the head every tick and
 * starts nothing. Pools from co_pool_new keep their size: they are the
 * way to bound CPU-bound work.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../base/env.h"
#include "internal.h"

#define CO__POOL_MAX 1024
/* Stalls (see the top): the default pool's growth. */
#define CO__POOL_GROW_MAX 512
#define CO__POOL_STALL_NS (20 * 1000 * 1000)
#define CO__POOL_KEEPALIVE_NS (10LL * 1000 * 1000 * 1000)
#define CO__POOL_SPIN_NS (50 * 1000)
/* Ring cells (a power of two): 16 bytes each, 1 MiB of address space,
 * allocated zeroed and so touched only as positions are used. Bursts of
 * up to this many queued jobs never take the overflow path (a mutex per
 * submission). */
#define CO__POOL_RING 65536
#define CO__POOL_MASK (CO__POOL_RING - 1)

struct co__job {
    co_tsfuture f;   /* first: the job is freed through it */
    co__list qlink;  /* in pool->overflow while there (under pool->mu) */
    co_pool *pool;
    co_blocking_fn fn;
    void *arg;
};

/* A ring cell: its sequence number is pos while free for the submission
 * at position pos, pos + 1 once that job is published, pos + RING once
 * taken (free for the lap after). Stored minus the cell's index, so that
 * zeroed memory is a ring ready for lap 0 (co__cell_seq/co__cell_set). */
typedef struct co__pcell {
    atomic_size_t seq;
    co__job *job;
} co__pcell;

struct co_pool {
    /* Submitters' line: the next position to claim. Threads read it only
     * on their way to sleep (a spinner watches the cell at the head), so
     * the submitter's CAS usually finds it in its own cache. */
    _Alignas(64) atomic_size_t tail;
    /* Takers' line: next position to take. */
    _Alignas(64) atomic_size_t head;
    _Alignas(64) co__pcell *cells;
    atomic_size_t noverflow;  /* jobs in overflow; written under mu */
    atomic_size_t ncancelled; /* queued entries that are not live jobs: cancelled
                                 ones and tombstones, not taken yet */
    atomic_int nsleeping;     /* threads in work_cv; changed under mu */
    atomic_int nspinning;
    atomic_bool shutdown;     /* set once, under mu */
    atomic_bool drop_queued;  /* CO_POOL_CANCEL_QUEUED: takers cancel what they take */
    atomic_bool shrinking;    /* nthreads > target; under mu, read racily after jobs */
    atomic_bool refilling;    /* a thread moves overflow jobs into the ring */
    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* idle threads sleep here */
    pthread_cond_t exit_cv;   /* shutdown waits here for threads to exit */
    co__list overflow;        /* under mu: co__job, FIFO, after the ring's */
    size_t target;            /* under mu: threads wanted */
    size_t nthreads;          /* under mu: threads alive */
    int wake_tokens;          /* under mu: signals sent to wake a spinner, not yet taken */
    int max_spin;
    bool is_default;
    /* Stalls (see the top). grow_max 0: a fixed pool (no monitor). */
    size_t grow_max;          /* threads the monitor may start up to */
    atomic_bool mon_armed;    /* the monitor watches the queue (set by anyone, cleared by it) */
    bool mon_started;         /* under mon_mu */
    pthread_mutex_t mon_mu;
    pthread_cond_t mon_cv;    /* the disarmed monitor sleeps here */
};

_Thread_local co__job *co__cur_job;
static _Thread_local int co__cur_fail;
static _Thread_local char *co__cur_failmsg;

bool co__job_is(const co__job *j, const co_tsfuture *f) { return &j->f == f; }

static int co__ncores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static size_t co__default_size(void) {
    size_t v;
    if (co__env_size("CORIO_THREADS", 1, CO__POOL_MAX, &v) > 0) return v;
    /* Python's default executor: min(32, cores + 4) */
    int c = co__ncores() + 4;
    return c < 32 ? (size_t)c : 32;
}

/* ---- the queue ------------------------------------------------------------------------ */

static inline size_t co__cell_seq(co_pool *p, co__pcell *c, memory_order mo) {
    return atomic_load_explicit(&c->seq, mo) + (size_t)(c - p->cells);
}

static inline void co__cell_set(co_pool *p, co__pcell *c, size_t seq, memory_order mo) {
    atomic_store_explicit(&c->seq, seq - (size_t)(c - p->cells), mo);
}

/* What a submission that claimed a cell after shutdown began publishes
 * instead of its job: every claimed cell gets published, and takers skip
 * it. Counted in ncancelled while queued. */
static co__job co__tomb;

/* Shutdown and submissions meet without a lock or an in-flight count: a
 * submission claims its cell (a seq_cst CAS), then looks at the flag; a
 * thread leaves only after it saw the flag and then an empty queue, claims
 * counted (has_work). Either the thread sees the claim, and waits for its
 * publish, or the submitter sees the flag, and publishes a tombstone. */
enum { CO__PUSHED, CO__FULL, CO__REFUSED };

/* *at: the position the job took. check_shutdown false: moving jobs from
 * the overflow list, which were accepted before. */
static int co__ring_push(co_pool *p, co__job *j, size_t *at, bool check_shutdown) {
    size_t pos = atomic_load_explicit(&p->tail, memory_order_relaxed);
    for (;;) {
        co__pcell *c = &p->cells[pos & CO__POOL_MASK];
        size_t seq = co__cell_seq(p, c, memory_order_acquire);
        intptr_t d = (intptr_t)seq - (intptr_t)pos;
        if (d == 0) {
            /* seq_cst: the claim is also the full barrier between this
             * submission and the wake-up check that follows it (a
             * thread going to sleep counts claims) */
            if (atomic_compare_exchange_weak_explicit(&p->tail, &pos, pos + 1, memory_order_seq_cst,
                                                      memory_order_relaxed)) {
                int rc = CO__PUSHED;
                if (check_shutdown && co__unlikely(atomic_load(&p->shutdown))) {
                    atomic_fetch_add_explicit(&p->ncancelled, 1, memory_order_relaxed);
                    j = &co__tomb;
                    rc = CO__REFUSED;
                }
                c->job = j;
                co__cell_set(p, c, pos + 1, memory_order_release);
                *at = pos;
                return rc;
            }
        } else if (d < 0) {
            return CO__FULL; /* the cell still holds the job of the lap before */
        } else {
            pos = atomic_load_explicit(&p->tail, memory_order_relaxed);
        }
    }
}

/* NULL: nothing published (a submitter may be between its claim and its
 * publish; has_work says so). */
static co__job *co__ring_take(co_pool *p) {
    size_t pos = atomic_load_explicit(&p->head, memory_order_relaxed);
    for (;;) {
        co__pcell *c = &p->cells[pos & CO__POOL_MASK];
        size_t seq = co__cell_seq(p, c, memory_order_acquire);
        intptr_t d = (intptr_t)seq - (intptr_t)(pos + 1);
        if (d == 0) {
            if (atomic_compare_exchange_weak_explicit(&p->head, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                co__job *j = c->job;
                co__cell_set(p, c, pos + CO__POOL_RING, memory_order_release);
                return j;
            }
        } else if (d < 0) {
            return NULL;
        } else {
            pos = atomic_load_explicit(&p->head, memory_order_relaxed);
        }
    }
}

/* Queues j; *cell: its ring cell, NULL if it went to the overflow list.
 * 0, or -CO_ESHUTDOWN (j was not queued). */
static int co__pool_queue(co_pool *p, co__job *j, co__pcell **cell, size_t *pos) {
    /* Once jobs overflow, later ones follow them there until it drains,
     * so the order stays first in, first out. */
    if (co__likely(atomic_load_explicit(&p->noverflow, memory_order_relaxed) == 0)) {
        int rc = co__ring_push(p, j, pos, true);
        if (co__likely(rc == CO__PUSHED)) {
            *cell = &p->cells[*pos & CO__POOL_MASK];
            return 0;
        }
        if (rc == CO__REFUSED) return -CO_ESHUTDOWN;
    }
    *cell = NULL;
    pthread_mutex_lock(&p->mu);
    if (atomic_load_explicit(&p->shutdown, memory_order_relaxed)) { /* set under mu */
        pthread_mutex_unlock(&p->mu);
        return -CO_ESHUTDOWN;
    }
    co__list_append(&p->overflow, &j->qlink);
    atomic_store_explicit(&p->noverflow, atomic_load_explicit(&p->noverflow, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

/* The ring ran dry with jobs waiting in the overflow list: move the
 * oldest into the ring, as many as fit, so that thousands of takes cost
 * one refill. One thread refills at a time (the others find the ring
 * empty a moment longer), and it holds the mutex only to detach the list
 * and to put back what did not fit, never while it fills the ring:
 * submitters append to the list under the same mutex. The ring holds only
 * older jobs (submitters use it only while noverflow is 0, and noverflow
 * drops only once the moved jobs are in the ring), so the order is kept. */
static void co__pool_refill(co_pool *p) {
    if (atomic_exchange_explicit(&p->refilling, true, memory_order_acquire)) return;
    co__list batch;
    co__list_init(&batch);
    pthread_mutex_lock(&p->mu);
    co__list_splice_front(&batch, &p->overflow);
    pthread_mutex_unlock(&p->mu);
    size_t moved = 0, pos;
    co__list *n;
    while ((n = co__list_pop_front(&batch))) {
        /* off the list first: once in the ring, another thread may run
         * and free it */
        if (co__ring_push(p, co__container_of(n, co__job, qlink), &pos, false) != CO__PUSHED) {
            co__list_prepend(&batch, n);
            break;
        }
        moved++;
    }
    pthread_mutex_lock(&p->mu);
    co__list_splice_front(&p->overflow, &batch); /* ahead of what came meanwhile */
    atomic_store_explicit(&p->noverflow, atomic_load_explicit(&p->noverflow, memory_order_relaxed) - moved,
                          memory_order_release);
    pthread_mutex_unlock(&p->mu);
    atomic_store_explicit(&p->refilling, false, memory_order_release);
}

static co__job *co__pool_take(co_pool *p) {
    co__job *j;
    while (co__unlikely((j = co__ring_take(p)) == &co__tomb))
        atomic_fetch_sub_explicit(&p->ncancelled, 1, memory_order_relaxed);
    if (co__likely(j != NULL) || atomic_load_explicit(&p->noverflow, memory_order_acquire) == 0) return j;
    co__pool_refill(p);
    while (co__unlikely((j = co__ring_take(p)) == &co__tomb))
        atomic_fetch_sub_explicit(&p->ncancelled, 1, memory_order_relaxed);
    return j;
}

/* A job is published at the head of the ring, or waits in the overflow
 * list. Reads the takers' own lines only, unlike has_work, which also
 * reads the submitters' tail. */
static bool co__pool_next_ready(co_pool *p) {
    size_t pos = atomic_load_explicit(&p->head, memory_order_relaxed);
    return co__cell_seq(p, &p->cells[pos & CO__POOL_MASK], memory_order_relaxed) == pos + 1 ||
           atomic_load_explicit(&p->noverflow, memory_order_relaxed) != 0;
}

/* Something is queued or about to be (a claimed cell not yet published). */
static bool co__pool_has_work(co_pool *p) {
    return atomic_load(&p->tail) != atomic_load(&p->head) || atomic_load(&p->noverflow) != 0;
}

/* After a publish (ordered before by a seq_cst operation): make sure a
 * thread will look at the queue. A spinning thread will; otherwise wake a
 * sleeping one *as a spinner*: the waker counts it in nspinning and leaves
 * a token it takes when it wakes (Go's scheduler does the same), so the
 * submissions that follow see a spinner and send no second, useless
 * wake-up while the first one is still on its way. */
static void co__pool_wake_in(co_pool *p);
static void co__pool_stall_hint(co_pool *p);
static void co__pool_wake(co_pool *p) {
    if (atomic_load(&p->nspinning) != 0) return;
    if (atomic_load(&p->nsleeping) == 0) {
        if (p->grow_max && co__pool_has_work(p)) co__pool_stall_hint(p);
        return;
    }
    if (co__pool_has_work(p)) co__pool_wake_in(p);
}

/* The same after a submission, which knows its job's cell: a spinner
 * often takes the job between its publish and this check, and waking
 * another thread then would only make the two swap roles. (The cell is in
 * the submitter's cache unless a taker touched it; the queue's head and
 * tail, which has_work reads, rarely are.) */
static void co__pool_wake_after(co_pool *p, co__pcell *c, size_t pos) {
    if (atomic_load(&p->nsleeping) == 0) {
        /* every thread busy or spinning: if busy, the monitor watches */
        if (co__unlikely(p->grow_max) && atomic_load(&p->nspinning) == 0) co__pool_stall_hint(p);
        return;
    }
    if (c ? co__cell_seq(p, c, memory_order_seq_cst) != pos + 1 : !co__pool_has_work(p)) return;
    if (atomic_load(&p->nspinning) == 0) co__pool_wake_in(p);
}

static void co__pool_wake_in(co_pool *p) {
    int zero = 0;
    if (!atomic_compare_exchange_strong(&p->nspinning, &zero, 1)) return; /* someone spins now */
    pthread_mutex_lock(&p->mu);
    if (atomic_load_explicit(&p->nsleeping, memory_order_relaxed) > p->wake_tokens) {
        p->wake_tokens++;
        pthread_cond_signal(&p->work_cv);
        pthread_mutex_unlock(&p->mu);
        return;
    }
    pthread_mutex_unlock(&p->mu);
    /* nobody to wake after all (it woke for another reason): give the
     * count back, and look again, since a thread that went to sleep in
     * between may have seen our nspinning and skipped the queue */
    atomic_fetch_sub(&p->nspinning, 1);
    if (co__pool_has_work(p)) co__pool_wake(p);
}

/* A job taken out of the queue that must not run: cancelled while queued,
 * or dropped by shutdown. */
static void co__job_drop(co__job *j) {
    co_tsfuture_cancel(&j->f); /* counts it in ncancelled if it was pending */
    atomic_fetch_sub_explicit(&j->pool->ncancelled, 1, memory_order_relaxed);
    co_tsfuture_release(&j->f); /* the queue's reference */
}

/* ---- the threads ---------------------------------------------------------------- */

static bool co__pool_spin_start(co_pool *p);

/* Runs j. If no job is waiting for this thread when j is done, it counts
 * itself as spinning (if there is room) before it publishes j's outcome:
 * a submitter that waits for that outcome sends its next job at once, and
 * must see a thread about to look rather than wake a sleeping one (a
 * round trip of a few microseconds, and two threads swapping places on
 * every job). With jobs waiting it stays out of nspinning, which every
 * submission reads: writing it on every job would bounce its line between
 * the cores. */
static void co__job_run(co__job *j, bool *spinning) {
    co_tsfuture *f = &j->f;
    int rc = co_tsfuture_set_running(f);
    if (co__unlikely(rc)) {
        co__job_drop(j); /* cancelled while queued */
        return;
    }
    co__cur_job = j;
    co__cur_fail = 0;
    co__cur_failmsg = NULL;
    void *r = j->fn(j->arg);
    co__cur_job = NULL;
    if (!*spinning && !co__pool_next_ready(j->pool)) *spinning = co__pool_spin_start(j->pool);
    if (co__cur_fail) {
        if (r && f->free_result) f->free_result(r);
        co__tsf_finish(f, CO_FAILED, NULL, co__cur_fail, co__cur_failmsg);
        free(co__cur_failmsg);
        co__cur_failmsg = NULL;
    } else {
        co__tsf_finish(f, CO_DONE, r, 0, NULL);
    }
    co_tsfuture_release(f); /* the queue's reference */
}

/* Becomes a spinner if fewer than max_spin threads spin. */
static bool co__pool_spin_start(co_pool *p) {
    int n = atomic_load_explicit(&p->nspinning, memory_order_relaxed);
    while (n < p->max_spin)
        if (atomic_compare_exchange_weak(&p->nspinning, &n, n + 1)) return true;
    return false;
}

/* A spinner watches the queue for up to CO__POOL_SPIN_NS; true if work
 * showed up (it still counts as spinning: the take ends that). It watches
 * the cell at the head, not the tail: reading the tail in a loop would
 * take its line from the submitter before every claim. */
static bool co__pool_spin(co_pool *p) {
    int64_t until = co__clock_ns() + CO__POOL_SPIN_NS;
    do {
        for (int i = 0; i < 64; i++) {
            if (co__pool_next_ready(p)) return true;
            co__cpu_relax();
        }
        sched_yield(); /* the submitter may share our CPU: let it run */
    } while (co__clock_ns() < until && !atomic_load_explicit(&p->shutdown, memory_order_relaxed));
    return false;
}

/* The spinner stops spinning. seq_cst: a submitter that saw it spinning
 * skipped its wake-up; the caller looks at the queue after this. */
static void co__pool_spin_end(co_pool *p, bool *spinning) {
    if (!*spinning) return;
    *spinning = false;
    atomic_fetch_sub(&p->nspinning, 1);
}

/* mu held: this thread is surplus after a shrink. It may leave while
 * counted as a spinner (a submitter that saw it sent no wake-up) without
 * stranding a job: a shrink wakes every sleeper, and a thread sleeps only
 * after finding, under mu, that it is not surplus. So a thread asleep once
 * this one has left went to sleep after it left (looking before, it would
 * have been surplus too, and left), and looked at the queue after this one
 * stopped spinning: it saw the job, or the submitter sees it asleep. */
static bool co__pool_surplus(co_pool *p) { return p->nthreads > p->target; }

/* mu held: an idle thread sleeps until woken; one above the pool's size
 * in a growing pool for CO__POOL_KEEPALIVE_NS at most (true: expired). */
static bool co__pool_sleep(co_pool *p) {
    if (!co__pool_surplus(p)) {
        pthread_cond_wait(&p->work_cv, &p->mu);
        return false;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until); /* work_cv's clock */
    int64_t ns = until.tv_nsec + CO__POOL_KEEPALIVE_NS;
    until.tv_sec += (time_t)(ns / 1000000000);
    until.tv_nsec = (long)(ns % 1000000000);
    return pthread_cond_timedwait(&p->work_cv, &p->mu, &until) == ETIMEDOUT;
}

/* mu held (on return too): an idle thread sleeps until there is work, or
 * leaves (true). */
static bool co__pool_rest(co_pool *p, bool *spinning, bool *owes) {
    /* surplus after a resize leaves now; above the size of a growing pool
     * (its monitor started it) it stays a while (co__pool_sleep) */
    if (co__pool_surplus(p) && (!p->grow_max || atomic_load(&p->shrinking))) return true;
    atomic_fetch_add(&p->nsleeping, 1);
    /* has_work counts a claimed job not yet published: then loop round
     * until it is. Look once and act on that answer: a claim that comes
     * after this look, once the flag is set, is a tombstone whose
     * submitter wakes nobody, so sleeping on an earlier look's answer
     * could sleep through it. */
    bool idle = !co__pool_has_work(p);
    if (idle && atomic_load(&p->shutdown)) {
        /* the flag was set under mu before we took it, and the queue is
         * empty with no claim in it: later submissions see the flag (see
         * co__tomb) */
        atomic_fetch_sub(&p->nsleeping, 1);
        return true;
    }
    bool expired = false;
    if (idle) {
        *owes = false;
        expired = co__pool_sleep(p);
    }
    atomic_fetch_sub(&p->nsleeping, 1);
    if (p->wake_tokens) { /* woken as a spinner: nspinning counts us */
        p->wake_tokens--;
        *spinning = true;
        return false;
    }
    /* out of nsleeping before this look (seq_cst): a submitter that
     * claims after it sees us gone, and the monitor acts */
    return expired && co__pool_surplus(p) && !co__pool_has_work(p);
}

static void *co__pool_main(void *arg) {
    co_pool *p = arg;
    bool spinning = false; /* counted in nspinning */
    /* Submitters that saw this thread spinning sent no wake-up: the job it
     * takes next may have others behind it that it must pass on, even if
     * its spin ran out just before it took it. */
    bool owes = false;
    for (;;) {
        co__job *j = co__pool_take(p);
        if (j) {
            if (spinning || owes) {
                /* the next spinner takes over watching the queue */
                co__pool_spin_end(p, &spinning);
                owes = false;
                co__pool_wake(p);
            } else if (co__unlikely(p->grow_max) && !atomic_load_explicit(&p->mon_armed, memory_order_relaxed) &&
                       co__pool_next_ready(p)) {
                co__pool_wake(p); /* more queued behind j: someone must see it */
            }
            if (co__unlikely(atomic_load_explicit(&p->drop_queued, memory_order_relaxed))) {
                co__job_drop(j);
                continue;
            }
            co__job_run(j, &spinning);
            if (co__unlikely(atomic_load_explicit(&p->shrinking, memory_order_relaxed))) {
                pthread_mutex_lock(&p->mu);
                if (co__pool_surplus(p)) break;
                pthread_mutex_unlock(&p->mu);
            }
            continue;
        }
        if (spinning || (spinning = co__pool_spin_start(p))) {
            if (co__pool_spin(p)) continue;
            co__pool_spin_end(p, &spinning);
            owes = true;
        }
        pthread_mutex_lock(&p->mu);
        if (co__pool_rest(p, &spinning, &owes)) break;
        pthread_mutex_unlock(&p->mu);
    }
    /* mu held */
    co__pool_spin_end(p, &spinning);
    p->nthreads--;
    if (p->nthreads <= p->target) atomic_store(&p->shrinking, false);
    pthread_cond_broadcast(&p->exit_cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* mu held. Starts threads until there are `target`. */
static int co__pool_grow(co_pool *p) {
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int rc = 0;
    while (p->nthreads < p->target) {
        pthread_t th;
        rc = pthread_create(&th, &a, co__pool_main, p);
        if (rc) break;
        pthread_setname_np(th, "corio-pool");
        p->nthreads++;
    }
    pthread_attr_destroy(&a);
    if (rc && p->nthreads) p->target = p->nthreads; /* keep what started */
    return -rc;
}

/* ---- stalls (see the top) ---------------------------------------------------------------- */

/* One thread more if the queue is still stalled. */
static void co__pool_add_thread(co_pool *p) {
    pthread_mutex_lock(&p->mu);
    if (!atomic_load_explicit(&p->shutdown, memory_order_relaxed) && p->nthreads < p->grow_max &&
        atomic_load(&p->nsleeping) == 0) {
        size_t target = p->target;
        p->target = p->nthreads + 1;
        co__pool_grow(p);
        p->target = target; /* the new thread is above it: it leaves when idle */
    }
    pthread_mutex_unlock(&p->mu);
}

static void *co__pool_monitor(void *arg) {
    co_pool *p = arg;
    size_t last = SIZE_MAX;
    pthread_mutex_lock(&p->mon_mu);
    for (;;) {
        if (!co__pool_has_work(p)) {
            /* disarm, then look (seq_cst): a submitter that claimed after
             * the look sees the flag down and re-arms us under mon_mu */
            atomic_store(&p->mon_armed, false);
            if (!co__pool_has_work(p)) {
                while (!atomic_load(&p->mon_armed)) pthread_cond_wait(&p->mon_cv, &p->mon_mu);
                last = SIZE_MAX;
                continue;
            }
            atomic_store(&p->mon_armed, true);
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int64_t ns = until.tv_nsec + CO__POOL_STALL_NS;
        until.tv_sec += (time_t)(ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        pthread_cond_timedwait(&p->mon_cv, &p->mon_mu, &until);
        size_t head = atomic_load(&p->head);
        if (head == last && co__pool_has_work(p) && atomic_load(&p->nsleeping) == 0 &&
            atomic_load(&p->nspinning) == 0)
            co__pool_add_thread(p);
        last = head;
    }
    return NULL;
}

/* A job is queued and no thread sleeps or spins: arm the monitor. */
static void co__pool_stall_hint(co_pool *p) {
    if (atomic_load_explicit(&p->mon_armed, memory_order_relaxed) || atomic_exchange(&p->mon_armed, true))
        return;
    pthread_mutex_lock(&p->mon_mu);
    if (!p->mon_started) {
        pthread_t th;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        p->mon_started = pthread_create(&th, &a, co__pool_monitor, p) == 0;
        if (p->mon_started) pthread_setname_np(th, "corio-poolmon");
        pthread_attr_destroy(&a);
    }
    pthread_cond_signal(&p->mon_cv);
    pthread_mutex_unlock(&p->mon_mu);
}

/* ---- pools ---------------------------------------------------------------------------- */

static co_pool *co__pool_create(size_t n, bool is_default) {
    if (n > CO__POOL_MAX) {
        errno = EINVAL;
        return NULL;
    }
    co_pool *p = calloc(1, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->exit_cv, NULL);
    p->cells = calloc(CO__POOL_RING, sizeof(co__pcell));
    if (!p->cells) {
        free(p);
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&p->tail, 0);
    atomic_init(&p->head, 0);
    atomic_init(&p->noverflow, 0);
    atomic_init(&p->ncancelled, 0);
    atomic_init(&p->nsleeping, 0);
    atomic_init(&p->nspinning, 0);
    atomic_init(&p->shutdown, false);
    atomic_init(&p->drop_queued, false);
    atomic_init(&p->shrinking, false);
    atomic_init(&p->refilling, false);
    co__list_init(&p->overflow);
    int c = co__ncores();
    p->max_spin = c > 1 ? c / 2 : 0;
    p->is_default = is_default;
    p->grow_max = is_default ? CO__POOL_GROW_MAX : 0;
    atomic_init(&p->mon_armed, false);
    pthread_mutex_init(&p->mon_mu, NULL);
    pthread_cond_init(&p->mon_cv, NULL);
    p->target = n ? n : co__default_size();
    pthread_mutex_lock(&p->mu);
    int rc = co__pool_grow(p);
    size_t started = p->nthreads;
    pthread_mutex_unlock(&p->mu);
    if (!started) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->work_cv);
        pthread_cond_destroy(&p->exit_cv);
        pthread_mutex_destroy(&p->mon_mu);
        pthread_cond_destroy(&p->mon_cv);
        free(p->cells);
        free(p);
        errno = rc ? -rc : EAGAIN;
        return NULL;
    }
    return p;
}

co_pool *co_pool_new(size_t nthreads) { return co__pool_create(nthreads, false); }

static pthread_mutex_t co__default_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(co_pool *) co__default_pool;
static size_t co__default_want;

co_pool *co_pool_default(void) {
    co_pool *p = atomic_load_explicit(&co__default_pool, memory_order_acquire);
    if (co__likely(p != NULL)) return p;
    pthread_mutex_lock(&co__default_mu);
    p = atomic_load_explicit(&co__default_pool, memory_order_relaxed);
    if (!p) {
        p = co__pool_create(co__default_want, true);
        if (p) atomic_store_explicit(&co__default_pool, p, memory_order_release);
    }
    pthread_mutex_unlock(&co__default_mu);
    return p;
}

int co_pool_set_default_size(size_t nthreads) {
    if (nthreads < 1 || nthreads > CO__POOL_MAX) return -EINVAL;
    pthread_mutex_lock(&co__default_mu);
    co_pool *p = atomic_load_explicit(&co__default_pool, memory_order_relaxed);
    co__default_want = nthreads;
    pthread_mutex_unlock(&co__default_mu);
    return p ? co_pool_resize(p, nthreads) : 0;
}

int co_pool_resize(co_pool *p, size_t nthreads) {
    if (!p || nthreads < 1 || nthreads > CO__POOL_MAX) return -EINVAL;
    pthread_mutex_lock(&p->mu);
    if (atomic_load_explicit(&p->shutdown, memory_order_relaxed)) {
        pthread_mutex_unlock(&p->mu);
        return -CO_ESHUTDOWN;
    }
    p->target = nthreads;
    int rc = 0;
    if (p->nthreads < nthreads) {
        rc = co__pool_grow(p);
    } else if (p->nthreads > nthreads) {
        atomic_store(&p->shrinking, true);   /* busy ones leave after their job */
        pthread_cond_broadcast(&p->work_cv); /* idle ones see the surplus and leave */
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

size_t co_pool_size(const co_pool *p) {
    if (!p) return 0;
    co_pool *m = (co_pool *)p;
    pthread_mutex_lock(&m->mu);
    size_t n = m->target;
    pthread_mutex_unlock(&m->mu);
    return n;
}

size_t co_pool_queued(const co_pool *p) {
    if (!p) return 0;
    co_pool *m = (co_pool *)p;
    /* taken before read: a job counted in ncancelled is still in the ring
     * then, so the sum does not go below zero except in a race */
    size_t cancelled = atomic_load(&m->ncancelled);
    size_t head = atomic_load(&m->head);
    size_t n = atomic_load(&m->tail) - head + atomic_load(&m->noverflow);
    return n > cancelled ? n - cancelled : 0;
}

int co_pool_shutdown(co_pool *p, int how) {
    if (!p || (how != CO_POOL_WAIT && how != CO_POOL_CANCEL_QUEUED)) return -EINVAL;
    if (co__cur_job && co__cur_job->pool == p) return -EDEADLK;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->shutdown, true); /* seq_cst: see co__tomb */
    pthread_mutex_unlock(&p->mu);
    if (how == CO_POOL_CANCEL_QUEUED) {
        /* threads drop what they take from now on; take the rest here */
        atomic_store(&p->drop_queued, true);
        co__job *j;
        while (co__pool_has_work(p)) {
            if ((j = co__pool_take(p))) co__job_drop(j);
            else sched_yield(); /* a submitter between its claim and its publish */
        }
    }
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->work_cv);
    while (p->nthreads) pthread_cond_wait(&p->exit_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

void co_pool_free(co_pool *p) {
    if (!p) return;
    if (p->is_default) {
        co__report(co_loop_current(), "co_pool_free: the default pool belongs to corio; not freed");
        return;
    }
    if (co_pool_shutdown(p, CO_POOL_WAIT) == -EDEADLK) {
        co__report(co_loop_current(), "co_pool_free: called from one of the pool's own threads; not freed");
        return;
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->exit_cv);
    pthread_mutex_destroy(&p->mon_mu);
    pthread_cond_destroy(&p->mon_cv);
    free(p->cells);
    free(p);
}

/* ---- submitting ------------------------------------------------------------------------ */

/* A job cancelled through its future. Queued: it stays in the queue,
 * counted as cancelled, and whoever takes it drops it (co__job_drop).
 * Running: co_blocking_cancelled() reports it. */
static void co__job_cancel(co_tsfuture *f, bool was_pending) {
    if (was_pending) atomic_fetch_add_explicit(&((co__job *)f)->pool->ncancelled, 1, memory_order_relaxed);
}

static const co__tsf_ops co__job_ops = {.cancel = co__job_cancel};

co_tsfuture *co_pool_submit_ex(co_pool *p, co_blocking_fn fn, void *arg, void (*free_result)(void *)) {
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    if (!p && !(p = co_pool_default())) return NULL;
    co__job *j = co__tsf_alloc(sizeof *j, &co__job_ops, 2); /* the caller's + the queue's */
    if (!j) return NULL;
    j->f.free_result = free_result;
    j->pool = p;
    j->fn = fn;
    j->arg = arg;
    co__pcell *cell;
    size_t pos = 0;
    if (co__unlikely(co__pool_queue(p, j, &cell, &pos) < 0)) {
        co__tsf_discard(&j->f);
        errno = CO_ESHUTDOWN;
        return NULL;
    }
    co__pool_wake_after(p, cell, pos);
    return &j->f;
}

co_tsfuture *co_pool_submit(co_pool *p, co_blocking_fn fn, void *arg) {
    return co_pool_submit_ex(p, fn, arg, NULL);
}

int co_run_blocking_ex(co_pool *p, co_blocking_fn fn, void *arg, void (*free_result)(void *),
                       void **result) {
    co_task *t;
    int rc = co__can_suspend(&t);
    if (rc) return rc;
    co_tsfuture *f = co_pool_submit_ex(p, fn, arg, free_result);
    if (!f) return -errno;
    rc = co_tsfuture_wait(f, CO_FOREVER, result);
    /* The task stopped waiting (cancelled): a queued job never runs; a
     * running one sees co_blocking_cancelled(), and its late result goes
     * to free_result when the last reference drops. */
    if (rc == -ECANCELED && co_tsfuture_state(f) < CO_DONE) co_tsfuture_cancel(f);
    co_tsfuture_release(f);
    return rc;
}

int co_run_blocking_on(co_pool *p, co_blocking_fn fn, void *arg, void **result) {
    return co_run_blocking_ex(p, fn, arg, NULL, result);
}

int co_run_blocking(co_blocking_fn fn, void *arg, void **result) {
    return co_run_blocking_ex(NULL, fn, arg, NULL, result);
}

/* ---- inside a job ----------------------------------------------------------------------- */

bool co_blocking_cancelled(void) {
    co__job *j = co__cur_job;
    return j && atomic_load_explicit(&j->f.cancel_req, memory_order_relaxed);
}

int co_blocking_fail(int err, const char *fmt, ...) {
    if (!co__cur_job || err >= 0) return -EINVAL;
    co__cur_fail = err;
    free(co__cur_failmsg);
    co__cur_failmsg = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&co__cur_failmsg, fmt, ap) < 0) co__cur_failmsg = NULL;
        va_end(ap);
    }
    return 0;
}
