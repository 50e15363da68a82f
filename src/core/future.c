/* future.c — plain futures (loop.create_future) and done-callbacks.
 *
 * Loop-thread only. A future is a co_task with CO__T_FUTURE set: no
 * function, no stack; whoever holds it completes it. Done-callbacks are
 * handles (handle.c) in the future's done list, each holding one reference
 * to the future until it has run or been removed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

co_future *co_future_new(void) {
    int err = 0;
    co_loop *L = co__loop_get(&err);
    if (!L) {
        errno = -err;
        return NULL;
    }
    if (L->closing) {
        errno = CO_ECLOSED;
        return NULL;
    }
    co_task *f = co__task_alloc(L);
    if (!f) {
        errno = ENOMEM;
        return NULL;
    }
    f->flags = CO__T_FUTURE;
    f->refs = 1;
    f->name = NULL;
    f->id = co__next_id();
    return f;
}

static int co__future_check(co_future *f) {
    if (!f) return -EINVAL;
    if (!(f->flags & CO__T_FUTURE)) return -EINVAL;
    if (!f->loop) return -CO_ECLOSED;
    if (!co__on_loop_thread(f->loop)) return co__wrongloop(f->loop, "co_future_set");
    if (f->loop->closed) return -CO_ECLOSED; /* nothing would run its callbacks */
    if (co_task_done(f)) return -CO_EINVALSTATE;
    return 0;
}

int co_future_set_result(co_future *f, void *value) {
    int rc = co__future_check(f);
    if (rc) return rc;
    f->value = value;
    f->state = CO_DONE;
    co__task_finish(f);
    return 0;
}

int co_future_set_error(co_future *f, int err, const char *fmt, ...) {
    int rc = co__future_check(f);
    if (rc) return rc;
    if (err >= 0) return -EINVAL;
    char *msg = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
        va_end(ap);
    }
    free(f->msg);
    f->msg = msg;
    f->err = err;
    f->state = err == -ECANCELED ? CO_CANCELLED : CO_FAILED;
    co__task_finish(f);
    return 0;
}

int co_on_done(co_task *t, co_done_cb cb, void *arg) {
    if (!t || !cb) return -EINVAL;
    co_loop *L = t->loop;
    if (!L) return -CO_ECLOSED;
    if (!co__on_loop_thread(L)) return co__wrongloop(L, "co_on_done");
    if (L->closed) return -CO_ECLOSED;
    co__handle *h = co__handle_alloc(L);
    if (!h) return -ENOMEM;
    h->hkind = CO__HK_DONE;
    h->fn.done = cb;
    h->arg = arg;
    h->task = t;
    co_task_retain(t);
    if (co_task_done(t)) {
        h->state = CO__H_READY;
        co__rq_push(L, &h->run);
    } else {
        h->state = CO__H_LISTED;
        co__list_append(&t->done, &h->w.link);
    }
    return 0;
}

int co_on_done_remove(co_task *t, co_done_cb cb, void *arg) {
    if (!t) return -EINVAL;
    co_loop *L = t->loop;
    if (!L) return 0;
    if (!co__on_loop_thread(L)) return co__wrongloop(L, "co_on_done_remove");
    int removed = 0;
    co__list_for_each_safe(it, tmp, &t->done) {
        co__waiter *w = co__container_of(it, co__waiter, link);
        if (w->kind != CO__W_HANDLE) continue;
        co__handle *h = co__container_of(w, co__handle, w);
        if (h->fn.done != cb || h->arg != arg) continue;
        co__list_remove(&w->link);
        co__handle_free(L, h);
        removed++;
    }
    /* Drop the references last: the final one may free t. */
    for (int i = 0; i < removed; i++) co_task_release(t);
    return removed;
}
