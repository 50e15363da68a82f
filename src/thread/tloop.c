/* tloop.c — loops running in their own threads (co_thread_loop_start /
 * stop) and N of them as a runtime (co_runtime_*).
 *
 * The loop is created inside its thread, so the thread owns it. A stop is
 * a message through the loop's own inbox: it makes run_forever return;
 * the thread then gives the remaining tasks their grace period (a task
 * waiting on all of them with co_wait, so no polling), closes the loop
 * (which cancels and drains what is left), frees it, and exits. The
 * stopper joins the thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

typedef struct co__tloop {
    struct co__tloop *next;   /* the registry (under co__tl_mu) */
    pthread_t th;
    co_loop *loop;
    co_loop_opts opts;
    bool has_opts;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started;              /* under mu: 0 starting, 1 running, <0 failed */
    atomic_bool stop;         /* a stop was requested */
    double grace;             /* written before the stop message */
    int result;               /* the close's result, read after the join */
    co__xnode stop_node;
} co__tloop;

static pthread_mutex_t co__tl_mu = PTHREAD_MUTEX_INITIALIZER;
static co__tloop *co__tl_all;

/* A task on the stopping loop: lets the other tasks finish, for at most
 * grace seconds. Tasks they spawn meanwhile are waited for too. */
static void *co__tloop_grace(void *arg) {
    co__tloop *tl = arg;
    co_loop *L = tl->loop;
    co_task *self = co_current();
    int64_t deadline;
    co__deadline_in(L, tl->grace, &deadline); /* NaN was refused at the stop call */
    for (;;) {
        size_t n = co_all_tasks(L, NULL, 0);
        if (n <= 1) break;
        co_task **v = malloc(n * sizeof *v);
        if (!v) break;
        n = co_all_tasks(L, v, n);
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (v[i] != self) v[m++] = v[i];
        double left = co__deadline_left(L, deadline);
        int rc = m && left > 0 ? co_wait(v, m, CO_ALL_COMPLETED, left, NULL, NULL, NULL, NULL) : -ETIMEDOUT;
        free(v);
        if (rc < 0 || m == 0) break; /* timed out (or cannot wait): close cancels the rest */
    }
    return NULL;
}

static void co__tloop_stop_msg(void *arg) {
    co__tloop *tl = arg;
    co_loop_stop(tl->loop);
}

static void *co__tloop_main(void *arg) {
    co__tloop *tl = arg;
    co_loop *L = co_loop_new(tl->has_opts ? &tl->opts : NULL);
    pthread_mutex_lock(&tl->mu);
    tl->loop = L;
    tl->started = L ? 1 : -errno;
    pthread_cond_broadcast(&tl->cv);
    pthread_mutex_unlock(&tl->mu);
    if (!L) return NULL;
    pthread_setname_np(pthread_self(), "corio-loop");
    do {
        co_loop_run_forever(L); /* returns on co_loop_stop: ours, or the user's */
    } while (!atomic_load(&tl->stop));
    co_task *g = co_spawn(co__tloop_grace, tl);
    if (g) {
        co_loop_run_until_complete(L, g, NULL);
        co_task_release(g);
    }
    tl->result = co_loop_free(L);
    return NULL;
}

co_loop *co_thread_loop_start(const co_loop_opts *opts) {
    co__tloop *tl = calloc(1, sizeof *tl);
    if (!tl) {
        errno = ENOMEM;
        return NULL;
    }
    if (opts) {
        tl->opts = *opts;
        tl->has_opts = true;
    }
    pthread_mutex_init(&tl->mu, NULL);
    pthread_cond_init(&tl->cv, NULL);
    int rc = pthread_create(&tl->th, NULL, co__tloop_main, tl);
    if (rc == 0) {
        pthread_mutex_lock(&tl->mu);
        while (tl->started == 0) pthread_cond_wait(&tl->cv, &tl->mu);
        rc = tl->started < 0 ? -tl->started : 0;
        pthread_mutex_unlock(&tl->mu);
        if (rc) pthread_join(tl->th, NULL);
    }
    if (rc) {
        pthread_mutex_destroy(&tl->mu);
        pthread_cond_destroy(&tl->cv);
        free(tl);
        errno = rc;
        return NULL;
    }
    pthread_mutex_lock(&co__tl_mu);
    tl->next = co__tl_all;
    co__tl_all = tl;
    pthread_mutex_unlock(&co__tl_mu);
    return tl->loop;
}

/* Takes L's record out of the registry and sends the stop message. */
static int co__tloop_request_stop(co_loop *L, double grace, co__tloop **out) {
    if (!L || isnan(grace)) return -EINVAL;
    pthread_mutex_lock(&co__tl_mu);
    co__tloop **pp = &co__tl_all;
    while (*pp && (*pp)->loop != L) pp = &(*pp)->next;
    co__tloop *tl = *pp;
    /* unknown (never started here, or stopped already: L may be freed, so
     * it is not touched), or our own thread, which could never join itself */
    int rc = !tl ? -EINVAL : pthread_equal(tl->th, pthread_self()) ? -EDEADLK : 0;
    if (rc == 0) *pp = tl->next;
    pthread_mutex_unlock(&co__tl_mu);
    if (rc) return rc;
    tl->grace = grace;
    atomic_store(&L->xrefuse, true);
    atomic_store(&tl->stop, true);
    co__xq_push(L, co__tloop_stop_msg, tl, &tl->stop_node); /* never fails: not closed yet */
    *out = tl;
    return 0;
}

static int co__tloop_join(co__tloop *tl) {
    pthread_join(tl->th, NULL);
    int rc = tl->result;
    pthread_mutex_destroy(&tl->mu);
    pthread_cond_destroy(&tl->cv);
    free(tl);
    return rc;
}

int co_thread_loop_stop(co_loop *L, double grace) {
    co__tloop *tl;
    int rc = co__tloop_request_stop(L, grace, &tl);
    return rc ? rc : co__tloop_join(tl);
}

/* ---- the runtime -------------------------------------------------------------------- */

struct co_runtime {
    size_t n;
    atomic_size_t next; /* round-robin cursor */
    co_loop *loops[];
};

co_runtime *co_runtime_new(size_t nloops, const co_loop_opts *opts) {
    if (nloops == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        nloops = c > 0 ? (size_t)c : 1;
    }
    if (nloops > 1024) {
        errno = EINVAL;
        return NULL;
    }
    co_runtime *rt = calloc(1, sizeof *rt + nloops * sizeof(co_loop *));
    if (!rt) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&rt->next, 0);
    for (size_t i = 0; i < nloops; i++) {
        rt->loops[i] = co_thread_loop_start(opts);
        if (!rt->loops[i]) {
            int err = errno;
            co_runtime_free(rt, 0);
            errno = err;
            return NULL;
        }
        rt->n++;
    }
    return rt;
}

size_t co_runtime_size(const co_runtime *rt) { return rt ? rt->n : 0; }

co_loop *co_runtime_loop(co_runtime *rt, int i) {
    if (!rt || rt->n == 0) return NULL;
    if (i < 0) return rt->loops[atomic_fetch_add_explicit(&rt->next, 1, memory_order_relaxed) % rt->n];
    return (size_t)i < rt->n ? rt->loops[i] : NULL;
}

int co_runtime_free(co_runtime *rt, double grace) {
    if (!rt) return 0;
    int first = 0;
    co__tloop **tls = calloc(rt->n ? rt->n : 1, sizeof *tls);
    /* all stops first, so the loops drain in parallel; then the joins */
    for (size_t i = 0; i < rt->n; i++) {
        if (!tls) {
            int rc = co_thread_loop_stop(rt->loops[i], grace);
            if (rc && !first) first = rc;
            continue;
        }
        int rc = co__tloop_request_stop(rt->loops[i], grace, &tls[i]);
        if (rc) {
            tls[i] = NULL;
            if (!first) first = rc;
        }
    }
    for (size_t i = 0; tls && i < rt->n; i++) {
        if (!tls[i]) continue;
        int rc = co__tloop_join(tls[i]);
        if (rc && !first) first = rc;
    }
    free(tls);
    free(rt);
    return first;
}
