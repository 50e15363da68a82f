/* pool.c — thread pools: co_pool_*, co_run_blocking*, co_blocking_*.
 *
 * A pool is a FIFO of jobs under one mutex, and threads that take jobs
 * from it. A job is one allocation: the future its submitter holds, the
 * function and argument, and its queue link.
 *
 * Waking threads costs a system call on the submitter's side, so it
 * happens only when needed: a thread that runs out of work first spins
 * for a while (CO__POOL_SPIN_NS) watching the queue length, and a
 * submission wakes a sleeping thread only when no thread is spinning. A
 * woken thread that sees more work queued wakes the next one, so a burst
 * of submissions pays for one wake-up and the pool fans out by itself. At
 * most max_spin threads spin at once (half the cores): spinning must never
 * take the CPU from threads with work.
 *
 * Threads are detached; the pool counts them and shutdown waits until the
 * count reaches zero (a thread touches the pool for the last time under
 * the mutex, before it signals).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define CO__POOL_MAX 1024
#define CO__POOL_SPIN_NS (50 * 1000)

struct co__job {
    co_tsfuture f;   /* first: the job is freed through it */
    co__list qlink;  /* in pool->queue while queued (under pool->mu) */
    bool dropped;    /* under pool->mu: shutdown took it out of the queue */
    co_pool *pool;
    co_blocking_fn fn;
    void *arg;
};

struct co_pool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv;   /* idle threads sleep here */
    pthread_cond_t exit_cv;   /* shutdown waits here for threads to exit */
    co__list queue;           /* co__job, FIFO */
    atomic_size_t nqueued;    /* written under mu; read by spinners without it */
    size_t target;            /* threads wanted */
    size_t nthreads;          /* threads alive */
    size_t nsleeping;         /* threads in work_cv */
    atomic_int nspinning;
    int max_spin;
    bool shutdown;
    bool is_default;
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
    const char *e = getenv("CORIO_THREADS");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end == 0 && v >= 1 && v <= CO__POOL_MAX) return (size_t)v;
    }
    int c = co__ncores();
    return c > 4 ? (size_t)c : 4;
}

/* ---- the threads ---------------------------------------------------------------- */

static void co__job_run(co__job *j) {
    co_tsfuture *f = &j->f;
    if (co_tsfuture_set_running(f) == 0) {
        co__cur_job = j;
        co__cur_fail = 0;
        co__cur_failmsg = NULL;
        void *r = j->fn(j->arg);
        co__cur_job = NULL;
        if (co__cur_fail) {
            if (r && f->free_result) f->free_result(r);
            co__tsf_finish(f, CO_FAILED, NULL, co__cur_fail, co__cur_failmsg);
            free(co__cur_failmsg);
            co__cur_failmsg = NULL;
        } else {
            co__tsf_finish(f, CO_DONE, r, 0, NULL);
        }
    }
    co_tsfuture_release(f); /* the queue's reference */
}

/* mu held. Spins (mu released) while the queue stays empty; returns with
 * mu held again. */
static void co__pool_spin(co_pool *p) {
    if (atomic_load_explicit(&p->nspinning, memory_order_relaxed) >= p->max_spin) return;
    atomic_fetch_add(&p->nspinning, 1);
    pthread_mutex_unlock(&p->mu);
    int64_t until = co__clock_ns() + CO__POOL_SPIN_NS;
    do {
        for (int i = 0; i < 64; i++) {
            if (atomic_load_explicit(&p->nqueued, memory_order_relaxed)) goto out;
            co__cpu_relax();
        }
        sched_yield(); /* the submitter may share our CPU: let it run */
    } while (co__clock_ns() < until);
out:
    pthread_mutex_lock(&p->mu);
    atomic_fetch_sub(&p->nspinning, 1);
}

static void *co__pool_main(void *arg) {
    co_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->nthreads > p->target) break; /* shrinking: surplus threads leave */
        co__list *n = co__list_pop_front(&p->queue);
        if (n) {
            size_t left = atomic_load_explicit(&p->nqueued, memory_order_relaxed) - 1;
            atomic_store_explicit(&p->nqueued, left, memory_order_relaxed);
            if (left && p->nsleeping) pthread_cond_signal(&p->work_cv); /* fan out */
            pthread_mutex_unlock(&p->mu);
            co__job_run(co__container_of(n, co__job, qlink));
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (p->shutdown) break;
        co__pool_spin(p);
        if (!co__list_empty(&p->queue) || p->shutdown) continue;
        p->nsleeping++;
        pthread_cond_wait(&p->work_cv, &p->mu);
        p->nsleeping--;
    }
    p->nthreads--;
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
    co__list_init(&p->queue);
    atomic_init(&p->nqueued, 0);
    atomic_init(&p->nspinning, 0);
    int c = co__ncores();
    p->max_spin = c > 1 ? c / 2 : 0;
    p->is_default = is_default;
    p->target = n ? n : co__default_size();
    pthread_mutex_lock(&p->mu);
    int rc = co__pool_grow(p);
    size_t started = p->nthreads;
    pthread_mutex_unlock(&p->mu);
    if (!started) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->work_cv);
        pthread_cond_destroy(&p->exit_cv);
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
    if (p->shutdown) {
        pthread_mutex_unlock(&p->mu);
        return -CO_ESHUTDOWN;
    }
    p->target = nthreads;
    int rc = 0;
    if (p->nthreads < nthreads) {
        rc = co__pool_grow(p);
    } else if (p->nthreads > nthreads) {
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
    return p ? atomic_load_explicit(&((co_pool *)p)->nqueued, memory_order_relaxed) : 0;
}

int co_pool_shutdown(co_pool *p, int how) {
    if (!p || (how != CO_POOL_WAIT && how != CO_POOL_CANCEL_QUEUED)) return -EINVAL;
    if (co__cur_job && co__cur_job->pool == p) return -EDEADLK;
    co__list dropped;
    co__list_init(&dropped);
    pthread_mutex_lock(&p->mu);
    p->shutdown = true;
    if (how == CO_POOL_CANCEL_QUEUED) {
        co__list *n;
        while ((n = co__list_pop_front(&p->queue))) {
            co__container_of(n, co__job, qlink)->dropped = true;
            co__list_append(&dropped, n);
        }
        atomic_store_explicit(&p->nqueued, 0, memory_order_relaxed);
    }
    pthread_cond_broadcast(&p->work_cv);
    while (p->nthreads) pthread_cond_wait(&p->exit_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    co__list *n;
    while ((n = co__list_pop_front(&dropped))) {
        co__job *j = co__container_of(n, co__job, qlink);
        co_tsfuture_cancel(&j->f);
        co_tsfuture_release(&j->f); /* the queue's reference */
    }
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
    free(p);
}

/* ---- submitting ------------------------------------------------------------------------ */

/* A queued job cancelled through its future: take it out of the queue. */
static void co__job_cancel(co_tsfuture *f, bool was_pending) {
    if (!was_pending) return; /* running: co_blocking_cancelled() reports it */
    co__job *j = (co__job *)f;
    co_pool *p = j->pool;
    pthread_mutex_lock(&p->mu);
    bool queued = co__list_linked(&j->qlink) && !j->dropped;
    if (queued) {
        co__list_remove(&j->qlink);
        atomic_store_explicit(&p->nqueued, atomic_load_explicit(&p->nqueued, memory_order_relaxed) - 1,
                              memory_order_relaxed);
    }
    pthread_mutex_unlock(&p->mu);
    /* not queued: a thread popped it and will see it cancelled */
    if (queued) co_tsfuture_release(f);
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
    j->dropped = false;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    if (co__unlikely(p->shutdown)) {
        pthread_mutex_unlock(&p->mu);
        co__tsf_discard(&j->f);
        errno = CO_ESHUTDOWN;
        return NULL;
    }
    co__list_append(&p->queue, &j->qlink);
    atomic_store_explicit(&p->nqueued, atomic_load_explicit(&p->nqueued, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (p->nsleeping && atomic_load_explicit(&p->nspinning, memory_order_relaxed) == 0)
        pthread_cond_signal(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
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
    rc = co_tsfuture_wait(f, -1, result);
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
