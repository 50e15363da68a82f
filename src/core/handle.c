/* handle.c — scheduled callbacks: co_call_soon / later / at, their
 * cancellation, and the pool their handles come from.
 *
 * Loop-thread only. Handles are allocated in chunks that live until the
 * loop is freed, so the {pointer, generation} pair a user keeps can always
 * be checked safely: every time a handle is used up its generation moves
 * on, and a stale co_handle no longer matches.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define CO__HANDLE_CHUNK 256

co__handle *co__handle_alloc(co_loop *L) {
    if (co__unlikely(!L->handle_free)) {
        if (L->nchunks == L->chunk_cap) {
            size_t cap = L->chunk_cap ? L->chunk_cap * 2 : 16;
            void **c = realloc(L->handle_chunks, cap * sizeof *c);
            if (!c) return NULL;
            L->handle_chunks = c;
            L->chunk_cap = cap;
        }
        co__handle *chunk = calloc(CO__HANDLE_CHUNK, sizeof *chunk);
        if (!chunk) return NULL;
        L->handle_chunks[L->nchunks++] = chunk;
        for (int i = CO__HANDLE_CHUNK - 1; i >= 0; i--) {
            chunk[i].loop = L;
            chunk[i].gen = 1;
            chunk[i].free_next = L->handle_free;
            L->handle_free = &chunk[i];
        }
    }
    co__handle *h = L->handle_free;
    L->handle_free = h->free_next;
    h->run.kind = CO__RUN_HANDLE;
    h->w.kind = CO__W_HANDLE;
    co__list_init(&h->w.link);
    h->timer.idx = CO__TIMER_IDLE;
    h->timer.kind = CO__TM_HANDLE;
    h->cancelled = false;
    h->task = NULL;
    return h;
}

void co__handle_free(co_loop *L, co__handle *h) {
    h->gen++;
    h->state = CO__H_FREE;
    h->free_next = L->handle_free;
    L->handle_free = h;
}

void co__handles_fini(co_loop *L) {
    for (size_t i = 0; i < L->nchunks; i++) free(L->handle_chunks[i]);
    free(L->handle_chunks);
    L->handle_chunks = NULL;
    L->nchunks = L->chunk_cap = 0;
    L->handle_free = NULL;
}

void co__handle_run(co_loop *L, co__handle *h) {
    if (h->cancelled) {
        co__handle_free(L, h);
        return;
    }
    h->state = CO__H_RUNNING;
    h->gen++; /* from now on co_handle_cancel says "already ran" */
    if (h->hkind == CO__HK_CALL) {
        h->fn.call(h->arg);
    } else {
        co_task *t = h->task;
        h->fn.done(t, h->arg);
        co_task_release(t);
    }
    co__handle_free(L, h);
}

static int co__call(int64_t deadline, bool timed, co_cb fn, void *arg, co_handle *out) {
    int err = 0;
    co_loop *L = co__loop_get(&err);
    if (!L) return err;
    if (!fn) return -EINVAL;
    if (L->closing) return -CO_ECLOSED;
    co__handle *h = co__handle_alloc(L);
    if (!h) return -ENOMEM;
    h->hkind = CO__HK_CALL;
    h->fn.call = fn;
    h->arg = arg;
    if (timed) {
        if (co__timer_arm(L, &h->timer, deadline) < 0) {
            co__handle_free(L, h);
            return -ENOMEM;
        }
        h->state = CO__H_TIMED;
    } else {
        h->state = CO__H_READY;
        co__rq_push(L, &h->run);
    }
    if (out) {
        out->p = h;
        out->gen = h->gen;
    }
    return 0;
}

int co_call_soon(co_cb fn, void *arg, co_handle *h) { return co__call(0, false, fn, arg, h); }

static int co__when_ns(double when, int64_t *out) {
    if (isnan(when)) return -EINVAL;
    *out = co__sec_to_ns(when);
    return 0;
}

int co_call_later(double delay, co_cb fn, void *arg, co_handle *h) {
    int64_t d;
    if (co__when_ns(delay, &d) < 0) return -EINVAL;
    co_loop *L = co__tls_loop;
    if (!L) return -CO_ENOLOOP;
    /* Counted from the loop's clock as of this turn (co_now(), libuv's rule):
     * timers set in one turn share one "now", so a burst of them keeps its
     * spacing. co_sleep, by contrast, counts from the moment of the call. A
     * negative delay is a deadline in the past, not 0: -2 runs before -1
     * (asyncio's order); co__sec_to_ns's clamp keeps the sum in range. */
    return co__call(L->now + d, true, fn, arg, h);
}

int co_call_at(double when, co_cb fn, void *arg, co_handle *h) {
    int64_t d;
    if (co__when_ns(when, &d) < 0) return -EINVAL;
    return co__call(d, true, fn, arg, h);
}

int co_handle_cancel(co_handle hd) {
    co__handle *h = hd.p;
    if (!h || h->gen != hd.gen) return 0;
    co_loop *L = h->loop;
    if (!co__on_loop_thread(L)) return co__wrongloop(L, "co_handle_cancel");
    switch (h->state) {
    case CO__H_READY:
        h->cancelled = true; /* skipped and freed when the queue reaches it */
        h->gen++;
        return 1;
    case CO__H_TIMED:
        co__timer_disarm(L, &h->timer);
        co__handle_free(L, h);
        return 1;
    default:
        return 0;
    }
}
