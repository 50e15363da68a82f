/* executor.c — blocking work and thread-safe futures as tasks:
 * co_to_thread, co_run_in_executor (asyncio.to_thread, run_in_executor)
 * and co_wrap_tsfuture (asyncio.wrap_future).
 *
 * A wrap joins two worlds: a co_future of one loop (loop thread only) and
 * a co_tsfuture finished on any thread. One record links them, with two
 * references: the loop side (the future's done-list hook) and the
 * thread-safe side (f's done-callback). The callback posts the outcome to
 * the loop's inbox through the record's own node, so finishing never
 * allocates. The loop side lets go when the future finishes (done by the
 * outcome, or cancelled: then f is cancelled too) or when the loop is
 * freed first (f is cancelled then as well: nobody can read it); from then
 * on `loop` is NULL and the callback posts nothing.
 * The record's lock makes "post to the loop" and "the loop lets go"
 * exclusive, so no thread posts to a loop being freed.
 *
 * Layering: builds on the core (futures, done lists, the inbox); the core
 * knows nothing of it.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

typedef struct co__wrap {
    atomic_uint refs;  /* the loop side + the thread-safe side */
    co__lock lock;     /* guards loop */
    co_loop *loop;     /* NULL once the loop side let go */
    co_task *fut;      /* loop thread: the future (one reference); NULL once let go */
    co_tsfuture *f;    /* one reference, dropped with the record */
    co__waiter w;      /* CO__W_HOOK_OWNED in fut's done list */
    co__xnode node;    /* the outcome's inbox entry when the ring is full */
} co__wrap;

/* Any thread. The last one out frees the record; f's unread value then
 * goes to its free_result. */
static void co__wrap_unref(co__wrap *r) {
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1) return;
    co_tsfuture_release(r->f);
    free(r);
}

/* Loop thread: fut finished (finished != NULL), or its loop is being
 * freed. The loop side lets go first (no more posts to this loop), then a
 * cancelled future, or one nobody can ever read again, cancels f: a queued
 * job never runs, a running one's late result goes to its free_result. */
static void co__wrap_hook(co__waiter *w, co_task *finished) {
    co__wrap *r = co__container_of(w, co__wrap, w);
    co_task *fut = r->fut;
    co__lock_acquire(&r->lock);
    r->loop = NULL;
    co__lock_release(&r->lock);
    r->fut = NULL;
    if (!finished) {
        co_tsfuture_cancel(r->f);
        fut->refs--; /* drop, never release, during co_loop_free */
    } else {
        fut->loop->xwaiters--;
        if (fut->state == CO_CANCELLED) co_tsfuture_cancel(r->f);
        /* the finisher holds fut (a canceller's handle, co__wrap_deliver's
         * reference): this is never the last one */
        co_task_release(fut);
    }
    co__wrap_unref(r);
}

/* Loop thread: f finished; pass its outcome on to the future. */
static void co__wrap_deliver(void *arg) {
    co__wrap *r = arg;
    co_task *fut = r->fut;
    if (fut && !co_task_done(fut)) {
        co_task_retain(fut);
        void *v = NULL;
        int rc = co_tsfuture_result(r->f, &v);
        const char *msg = co_tsfuture_message(r->f);
        if (rc == 0) co_future_set_result(fut, v);
        else if (rc == -ECANCELED) co_cancel(fut, msg);
        else co_future_set_error(fut, rc, msg ? "%s" : NULL, msg);
        co_task_release(fut);
    }
    co__wrap_unref(r); /* the thread-safe side's reference, carried here */
}

/* Any thread: f finished. */
static void co__wrap_tsf_done(co_tsfuture *f, void *arg) {
    co__wrap *r = arg;
    bool posted = false;
    co__lock_acquire(&r->lock);
    if (r->loop) posted = co__xq_push(r->loop, co__wrap_deliver, r, &r->node) == 0;
    co__lock_release(&r->lock);
    if (!posted) co__wrap_unref(r); /* the loop let go, or is closed */
}

co_task *co_wrap_tsfuture(co_tsfuture *f) {
    if (!f) {
        errno = EINVAL;
        return NULL;
    }
    co_task *fut = co_future_new(); /* errno: CO_ENOLOOP, CO_ECLOSED, ENOMEM */
    if (!fut) return NULL;
    co__wrap *r = calloc(1, sizeof *r);
    if (!r) {
        co_task_release(fut);
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&r->refs, 2);
    atomic_init(&r->lock, CO__LOCK_INIT);
    r->loop = fut->loop;
    r->fut = fut;
    co_task_retain(fut);
    r->f = co_tsfuture_retain(f);
    r->w.kind = CO__W_HOOK_OWNED;
    r->w.hook = co__wrap_hook;
    co__list_append(&fut->done, &r->w.link);
    fut->loop->xwaiters++;
    if (co_tsfuture_add_done_callback(f, co__wrap_tsf_done, r) < 0) {
        co__list_remove(&r->w.link);
        fut->loop->xwaiters--;
        co_task_release(fut); /* the record's */
        co_task_release(fut); /* the caller's */
        co_tsfuture_release(f);
        free(r);
        errno = ENOMEM;
        return NULL;
    }
    return fut;
}

co_task *co_run_in_executor(co_pool *p, co_blocking_fn fn, void *arg, void (*free_result)(void *)) {
    int err = 0;
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    co_loop *L = co__loop_get(&err);
    if (!L || L->closing) { /* before submitting: a job nobody awaits must not start */
        errno = L ? CO_ECLOSED : -err;
        return NULL;
    }
    co_tsfuture *f = co_pool_submit_ex(p, fn, arg, free_result);
    if (!f) return NULL;
    co_task *t = co_wrap_tsfuture(f);
    if (!t) {
        err = errno;
        co_tsfuture_cancel(f);
        errno = err;
    }
    co_tsfuture_release(f);
    return t;
}

co_task *co_to_thread(co_blocking_fn fn, void *arg) { return co_run_in_executor(NULL, fn, arg, NULL); }
