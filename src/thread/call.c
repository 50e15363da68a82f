/* call.c — reaching a loop from other threads: co_loop_call_threadsafe
 * (call_soon_threadsafe) and co_loop_submit / co_spawn_on
 * (run_coroutine_threadsafe).
 *
 * A submission is one allocation holding the future, what to spawn, the
 * spawned task's done hook and the inbox nodes its two possible
 * cross-thread messages (start, cancel) use when the ring is full, so
 * nothing after co_loop_submit allocates or can fail silently.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

int co_loop_call_threadsafe(co_loop *L, co_cb fn, void *arg) {
    if (!L || !fn) return -EINVAL;
    if (co__unlikely(atomic_load_explicit(&L->xrefuse, memory_order_relaxed))) return -CO_ECLOSED;
    return co__xq_push(L, fn, arg, NULL);
}

typedef struct co__lsub {
    co_tsfuture f;        /* first: freed through it */
    co_loop *loop;
    co_fn fn;
    void *arg;
    co_task *task;        /* loop thread: the spawned task (one reference) */
    co__waiter w;         /* CO__W_HOOK_OWNED in task's done list */
    co__xnode start_node; /* inbox entries when the ring is full */
    co__xnode cancel_node;
} co__lsub;

/* The task finished (or, finished == NULL, its loop is being freed with
 * the task stuck in it): pass the outcome on. */
static void co__lsub_done(co__waiter *w, co_task *finished) {
    co__lsub *s = co__container_of(w, co__lsub, w);
    co_task *t = s->task;
    s->task = NULL;
    if (!finished) {
        co__tsf_finish(&s->f, CO_CANCELLED, NULL, -ECANCELED, "its event loop was freed");
        t->refs--; /* drop, never release, during co_loop_free */
    } else {
        void *v = NULL;
        int rc = co__task_outcome(t, &v);
        if (rc == 0) co__tsf_finish(&s->f, CO_DONE, v, 0, NULL);
        else co__tsf_finish(&s->f, rc == -ECANCELED ? CO_CANCELLED : CO_FAILED, NULL, rc, t->msg);
        co_task_release(t);
    }
    co_tsfuture_release(&s->f); /* the producer's reference */
}

/* On the loop: start the task, unless the future was cancelled first. */
static void co__lsub_start(void *arg) {
    co__lsub *s = arg;
    if (co_tsfuture_set_running(&s->f) < 0) { /* cancelled before it started */
        co_tsfuture_release(&s->f);
        return;
    }
    co_loop *prev = co__tls_loop;
    co__tls_loop = s->loop; /* co__xq_close may run this outside the loop's turn */
    co_task *t = co_spawn(s->fn, s->arg);
    co__tls_loop = prev;
    if (!t) {
        int err = errno;
        co__tsf_finish(&s->f, err == CO_ECLOSED ? CO_CANCELLED : CO_FAILED, NULL,
                       err == CO_ECLOSED ? -ECANCELED : -err,
                       err == CO_ECLOSED ? "the event loop closed before the task could start"
                                         : "could not spawn the task");
        co_tsfuture_release(&s->f);
        return;
    }
    s->task = t;
    s->w.kind = CO__W_HOOK_OWNED;
    s->w.hook = co__lsub_done;
    co__list_append(&t->done, &s->w.link);
    /* cancelled between set_running and here: its cancel message is queued
     * behind us and finds s->task set */
}

/* On the loop: the future was cancelled while the task runs. */
static void co__lsub_cancel_run(void *arg) {
    co__lsub *s = arg;
    if (s->task) co_cancel(s->task, "cancelled through its thread-safe future");
    co_tsfuture_release(&s->f); /* the cancel message's reference */
}

static void co__lsub_cancel(co_tsfuture *f, bool was_pending) {
    if (was_pending) return; /* the start message sees it and spawns nothing */
    co__lsub *s = (co__lsub *)f;
    co_tsfuture_retain(f);
    if (co__xq_push(s->loop, co__lsub_cancel_run, s, &s->cancel_node) < 0)
        co_tsfuture_release(f); /* the loop closed: its tasks were cancelled already */
}

static const co__tsf_ops co__lsub_ops = {.cancel = co__lsub_cancel};

co_tsfuture *co_loop_submit(co_loop *L, co_fn fn, void *arg) {
    if (!L || !fn) {
        errno = EINVAL;
        return NULL;
    }
    if (atomic_load_explicit(&L->xrefuse, memory_order_relaxed)) {
        errno = CO_ECLOSED;
        return NULL;
    }
    co__lsub *s = co__tsf_alloc(sizeof *s, &co__lsub_ops, 2); /* the caller's + the producer's */
    if (!s) return NULL;
    s->loop = L;
    s->fn = fn;
    s->arg = arg;
    co__list_init(&s->w.link);
    int rc = co__xq_push(L, co__lsub_start, s, &s->start_node);
    if (rc < 0) {
        co__tsf_discard(&s->f);
        errno = -rc;
        return NULL;
    }
    return &s->f;
}

co_tsfuture *co_spawn_on(co_loop *L, co_fn fn, void *arg) { return co_loop_submit(L, fn, arg); }
