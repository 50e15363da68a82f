/* procpool_tsstub.c — TEMPORARY stand-in for co_tsfuture while main's
 * implementation (src/thread) has not landed on this branch. Blocking
 * waits only: a task calling co_tsfuture_wait blocks its thread. Deleted
 * in the merge that brings the real one. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "corio.h"

struct co_tsfuture {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    co_state state;
    void *value;
    int err;
    bool read;
    char *msg;
    void (*free_result)(void *);
};

co_tsfuture *co_tsfuture_new(void) {
    co_tsfuture *f = calloc(1, sizeof *f);
    if (!f) return errno = ENOMEM, NULL;
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    f->refs = 1;
    f->state = CO_PENDING;
    return f;
}

static bool fin(co_state s) { return s == CO_DONE || s == CO_FAILED || s == CO_CANCELLED; }

static int outcome(co_tsfuture *f, void **value) {
    if (f->state == CO_DONE) {
        if (value) *value = f->value;
        f->read = true;
        return 0;
    }
    return f->state == CO_CANCELLED ? -ECANCELED : f->err;
}

int co_tsfuture_wait(co_tsfuture *f, double timeout, void **value) {
    if (!f || isnan(timeout)) return -EINVAL;
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    bool lim = timeout >= 0 && !isinf(timeout);
    if (lim) {
        double s = (double)dl.tv_sec + (double)dl.tv_nsec * 1e-9 + timeout;
        dl.tv_sec = (time_t)s;
        dl.tv_nsec = (long)((s - (double)dl.tv_sec) * 1e9);
    }
    pthread_mutex_lock(&f->mu);
    while (!fin(f->state)) {
        if (!lim) pthread_cond_wait(&f->cv, &f->mu);
        else if (pthread_cond_timedwait(&f->cv, &f->mu, &dl) == ETIMEDOUT && !fin(f->state)) {
            pthread_mutex_unlock(&f->mu);
            return -ETIMEDOUT;
        }
    }
    int rc = outcome(f, value);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int co_tsfuture_result(co_tsfuture *f, void **value) {
    if (!f) return -EINVAL;
    pthread_mutex_lock(&f->mu);
    int rc = fin(f->state) ? outcome(f, value) : -EAGAIN;
    pthread_mutex_unlock(&f->mu);
    return rc;
}

int co_tsfuture_cancel(co_tsfuture *f) {
    if (!f) return -EINVAL;
    pthread_mutex_lock(&f->mu);
    int rc = 0;
    if (f->state == CO_PENDING) {
        f->state = CO_CANCELLED;
        pthread_cond_broadcast(&f->cv);
        rc = 1;
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

co_state co_tsfuture_state(const co_tsfuture *f) {
    co_tsfuture *m = (co_tsfuture *)f;
    pthread_mutex_lock(&m->mu);
    co_state s = m->state;
    pthread_mutex_unlock(&m->mu);
    return s;
}
bool co_tsfuture_done(const co_tsfuture *f) { return fin(co_tsfuture_state(f)); }
const char *co_tsfuture_message(const co_tsfuture *f) {
    co_tsfuture *m = (co_tsfuture *)f;
    pthread_mutex_lock(&m->mu);
    const char *s = m->msg;
    pthread_mutex_unlock(&m->mu);
    return s;
}

static int finish(co_tsfuture *f, co_state s, void *value, int err, const char *msg) {
    pthread_mutex_lock(&f->mu);
    if (fin(f->state)) {
        pthread_mutex_unlock(&f->mu);
        return -CO_EINVALSTATE;
    }
    f->state = s;
    f->value = value;
    f->err = err;
    f->msg = msg ? strdup(msg) : NULL;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return 0;
}
int co_tsfuture_set_result(co_tsfuture *f, void *value) { return finish(f, CO_DONE, value, 0, NULL); }
int co_tsfuture_set_error(co_tsfuture *f, int err, const char *msg) {
    return finish(f, CO_FAILED, NULL, err, msg);
}
int co_tsfuture_set_running(co_tsfuture *f) {
    pthread_mutex_lock(&f->mu);
    int rc = f->state == CO_CANCELLED ? -ECANCELED : 0;
    if (!rc) f->state = CO_RUNNING;
    pthread_mutex_unlock(&f->mu);
    return rc;
}
void co_tsfuture_set_free_result(co_tsfuture *f, void (*fr)(void *)) { f->free_result = fr; }
co_tsfuture *co_tsfuture_retain(co_tsfuture *f) {
    pthread_mutex_lock(&f->mu);
    f->refs++;
    pthread_mutex_unlock(&f->mu);
    return f;
}
void co_tsfuture_release(co_tsfuture *f) {
    if (!f) return;
    pthread_mutex_lock(&f->mu);
    int left = --f->refs;
    pthread_mutex_unlock(&f->mu);
    if (left) return;
    if (f->state == CO_DONE && !f->read && f->free_result) f->free_result(f->value);
    free(f->msg);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}
