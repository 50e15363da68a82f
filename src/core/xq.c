/* xq.c — the loop's cross-thread inbox (see co__xq in internal.h) and the
 * loop's wake-up protocol.
 *
 * Pushes come from any thread; co__xq_drain and co__xq_fini run on the
 * loop's thread only.
 *
 * Cost of a push on the ring: one CAS on the tail (the only locked
 * instruction, and the full barrier the wake-up check needs), a load of
 * wake_pending that stays in the producer's cache while the loop is busy,
 * two plain stores and a release store publishing the cell: no system
 * call, no lock.
 *
 * The wake-up is decided between the claim and the publish. The loop
 * never sleeps while a position is claimed and not yet run (it compares
 * the tail with its head, not just the next cell), and co__xq_close waits
 * for every claimed position, so until the publish the loop is awake or
 * about to be, and alive; after the publish the message may run and the
 * loop be freed, and the push touches the loop no more.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#define CO__XQ_MASK (CO__XQ_CELLS - 1)
/* Entries one drain runs from the ring before it lets the loop turn (a
 * producer faster than the loop must not starve the tasks). */
#define CO__XQ_BATCH (4 * CO__XQ_CELLS)

/* co__xq_gather: how many entries a spinning loop lets accumulate, and for
 * how long at most (pause instructions: about 1-3 us) before draining. */
#define CO__XQ_GATHER 64
#define CO__XQ_GATHER_SPINS 100

static void co__xq_nop(void *arg) { (void)arg; }

int co__xq_init(co__xq *q) {
    atomic_init(&q->cells, NULL);
    atomic_init(&q->tail, 0);
    q->head = 0;
    atomic_init(&q->overflow, false);
    atomic_init(&q->closed, false);
    q->ohead = q->otail = NULL;
    return -pthread_mutex_init(&q->omu, NULL);
}

static co__xcell *co__xq_cells(co__xq *q) {
    co__xcell *c = atomic_load_explicit(&q->cells, memory_order_acquire);
    if (co__likely(c != NULL)) return c;
    co__xcell *fresh = malloc(sizeof(co__xcell) * CO__XQ_CELLS);
    if (!fresh) return NULL;
    for (size_t i = 0; i < CO__XQ_CELLS; i++) atomic_init(&fresh[i].seq, i);
    if (atomic_compare_exchange_strong_explicit(&q->cells, &c, fresh, memory_order_acq_rel,
                                                memory_order_acquire))
        return fresh;
    free(fresh); /* another producer installed one first */
    return c;
}

void co__loop_wakeup(co_loop *L) {
    /* seq_cst: ordered after the caller's claim (a CAS on the tail, or the
     * overflow flag's store; see co_loop). */
    if (atomic_load(&L->wake_pending)) return;
    if (atomic_exchange(&L->wake_pending, true)) return;
    if (atomic_load(&L->sleeping)) {
        uint64_t one = 1;
        ssize_t n = write(L->wakefd, &one, sizeof one);
        (void)n; /* EAGAIN: the counter is saturated, a wake-up is pending anyway */
    }
}

int co__xq_push(co_loop *L, co_cb fn, void *arg, co__xnode *spare) {
    co__xq *q = &L->xq;
    if (co__unlikely(atomic_load_explicit(&q->closed, memory_order_relaxed))) return -CO_ECLOSED;
    co__xcell *cells = co__xq_cells(q);
    if (co__likely(cells && !atomic_load_explicit(&q->overflow, memory_order_acquire))) {
        size_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
        for (;;) {
            co__xcell *c = &cells[pos & CO__XQ_MASK];
            size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
            intptr_t d = (intptr_t)seq - (intptr_t)pos;
            if (d == 0) {
                /* seq_cst claim, then the closed check: co__xq_close reads
                 * the tail after setting closed, so a claim it did not see
                 * sees closed (and publishes a no-op). */
                if (atomic_compare_exchange_weak(&q->tail, &pos, pos + 1)) {
                    int rc = 0;
                    if (co__unlikely(atomic_load(&q->closed))) {
                        fn = co__xq_nop;
                        rc = -CO_ECLOSED;
                    }
                    if (rc == 0) co__loop_wakeup(L); /* before the publish: see the top */
                    c->fn = fn;
                    c->arg = arg;
                    atomic_store_explicit(&c->seq, pos + 1, memory_order_release); /* L may be gone after this */
                    return rc;
                }
            } else if (d < 0) {
                break; /* full: the loop has not run cell pos - CELLS yet */
            } else {
                pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
            }
        }
    }
    co__xnode *n = spare;
    if (!n) {
        n = malloc(sizeof *n);
        if (!n) return -ENOMEM;
        n->owned = true;
    } else {
        n->owned = false;
    }
    n->fn = fn;
    n->arg = arg;
    n->next = NULL;
    pthread_mutex_lock(&q->omu);
    if (atomic_load_explicit(&q->closed, memory_order_relaxed)) {
        pthread_mutex_unlock(&q->omu);
        if (n->owned) free(n);
        return -CO_ECLOSED;
    }
    if (q->otail) q->otail->next = n;
    else q->ohead = n;
    q->otail = n;
    atomic_store(&q->overflow, true);
    /* under the lock: the loop cannot take (and run) n before we are done
     * with it, so it is alive */
    co__loop_wakeup(L);
    pthread_mutex_unlock(&q->omu);
    return 0;
}

bool co__xq_claimed(co_loop *L) {
    co__xq *q = &L->xq;
    return atomic_load(&q->tail) != q->head || atomic_load(&q->overflow);
}

bool co__xq_ready(co_loop *L) {
    co__xq *q = &L->xq;
    co__xcell *cells = atomic_load_explicit(&q->cells, memory_order_acquire);
    if (cells && atomic_load_explicit(&cells[q->head & CO__XQ_MASK].seq, memory_order_acquire) == q->head + 1)
        return true;
    return atomic_load_explicit(&q->overflow, memory_order_acquire);
}

void co__xq_gather(co_loop *L) {
    co__xq *q = &L->xq;
    co__xcell *cells = atomic_load_explicit(&q->cells, memory_order_acquire);
    if (!cells) return;
    co__xcell *c = &cells[(q->head + CO__XQ_GATHER) & CO__XQ_MASK];
    size_t want = q->head + CO__XQ_GATHER + 1;
    for (int i = 0; i < CO__XQ_GATHER_SPINS; i++) {
        if (atomic_load_explicit(&c->seq, memory_order_relaxed) == want) return;
        co__cpu_relax();
    }
}

size_t co__xq_drain(co_loop *L) {
    co__xq *q = &L->xq;
    size_t ran = 0;
    co__xcell *cells = atomic_load_explicit(&q->cells, memory_order_acquire);
    if (cells) {
        while (ran < CO__XQ_BATCH) {
            co__xcell *c = &cells[q->head & CO__XQ_MASK];
            if (atomic_load_explicit(&c->seq, memory_order_acquire) != q->head + 1) break;
            co_cb fn = c->fn;
            void *arg = c->arg;
            /* free the cell for position head + CELLS before running fn,
             * which may push again */
            atomic_store_explicit(&c->seq, q->head + CO__XQ_CELLS, memory_order_release);
            q->head++;
            fn(arg);
            ran++;
        }
        if (ran == CO__XQ_BATCH) return ran; /* the rest next turn (every turn drains) */
    }
    /* The overflow list holds what was pushed after the ring filled up:
     * take it only once every position claimed in the ring has run, or a
     * producer's ring entry would run after its later overflow entry. The
     * tail is read under the lock: a producer's ring claim precedes its
     * later append, so a list taken under the same lock holds no entry
     * whose producer has an earlier claim this check did not see. (Read
     * before the lock, a claim and the next append could both slip in
     * between the check and the take.) */
    if (atomic_load_explicit(&q->overflow, memory_order_acquire)) {
        pthread_mutex_lock(&q->omu);
        co__xnode *n = NULL;
        if (q->head == atomic_load(&q->tail)) {
            n = q->ohead;
            q->ohead = q->otail = NULL;
            atomic_store(&q->overflow, false);
        }
        pthread_mutex_unlock(&q->omu);
        while (n) {
            co__xnode *next = n->next;
            bool owned = n->owned;
            co_cb fn = n->fn;
            void *arg = n->arg;
            if (owned) free(n);
            fn(arg); /* n may be gone now (it was the caller's record) */
            ran++;
            n = next;
        }
    }
    return ran;
}

void co__xq_close(co_loop *L) {
    co__xq *q = &L->xq;
    if (atomic_exchange(&q->closed, true)) return;
    pthread_mutex_lock(&q->omu); /* no overflow push after this */
    pthread_mutex_unlock(&q->omu);
    /* Every position claimed before `closed` was seen gets published soon
     * (the claimer is between its CAS and its store): run them all. */
    size_t tail = atomic_load(&q->tail);
    for (;;) {
        co__xq_drain(L);
        if ((intptr_t)(q->head - tail) >= 0 && !atomic_load(&q->overflow)) break;
        sched_yield();
    }
}

void co__xq_fini(co_loop *L) {
    co__xq *q = &L->xq;
    co__xq_close(L); /* every claimed position ran: no push touches L any more */
    free(atomic_load(&q->cells));
    atomic_store(&q->cells, NULL);
    pthread_mutex_destroy(&q->omu);
}
