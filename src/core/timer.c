/* timer.c — the timer heap: a 4-ary min-heap in one array, ordered by
 * (deadline, seq). The deadline sits in the array next to the node pointer
 * so a sift reads only the array (the node's seq is read on ties only), and
 * the four children of a slot share one cache line. Each node knows its
 * slot (idx), so removal is O(log n). seq grows with every add, which makes
 * equal deadlines fire in the order they were armed. The array grows by
 * doubling (amortised; it never shrinks below its peak while the loop
 * lives). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "internal.h"

#define D 4

static inline bool co__less(const co__heap_ent *a, const co__heap_ent *b) {
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->t->seq < b->t->seq);
}

static inline void co__place(co__heap *h, uint32_t i, co__heap_ent e) {
    h->a[i] = e;
    e.t->idx = i;
}

static void co__sift_up(co__heap *h, uint32_t i, co__heap_ent e) {
    while (i > 0) {
        uint32_t parent = (i - 1) / D;
        if (!co__less(&e, &h->a[parent])) break;
        co__place(h, i, h->a[parent]);
        i = parent;
    }
    co__place(h, i, e);
}

static void co__sift_down(co__heap *h, uint32_t i, co__heap_ent e) {
    uint32_t n = h->n;
    for (;;) {
        uint32_t c = i * D + 1;
        if (c >= n) break;
        uint32_t best = c, end = c + D < n ? c + D : n;
        for (uint32_t k = c + 1; k < end; k++)
            if (co__less(&h->a[k], &h->a[best])) best = k;
        if (!co__less(&h->a[best], &e)) break;
        co__place(h, i, h->a[best]);
        i = best;
    }
    co__place(h, i, e);
}

void co__heap_init(co__heap *h) {
    h->a = NULL;
    h->mem = NULL;
    h->n = h->cap = 0;
    h->seq = 0;
}

void co__heap_fini(co__heap *h) {
    for (uint32_t i = 0; i < h->n; i++) h->a[i].t->idx = CO__TIMER_IDLE;
    free(h->mem);
    co__heap_init(h);
}

int co__heap_add(co__heap *h, co__timer *t, int64_t deadline) {
    if (t->idx != CO__TIMER_IDLE) co__heap_remove(h, t);
    if (co__unlikely(h->n == h->cap)) {
        uint32_t cap = h->cap ? h->cap * 2 : 64;
        /* 3 spare slots in front: a[1] (and so every a[4i+1]) starts a line */
        void *mem = aligned_alloc(64, ((size_t)cap + 4) * sizeof(co__heap_ent));
        if (!mem) return -ENOMEM;
        co__heap_ent *a = (co__heap_ent *)mem + 3;
        if (h->n) memcpy(a, h->a, (size_t)h->n * sizeof *a);
        free(h->mem);
        h->mem = mem;
        h->a = a;
        h->cap = cap;
    }
    t->deadline = deadline;
    t->seq = h->seq++;
    co__heap_ent e = {deadline, t};
    co__sift_up(h, h->n++, e);
    return 0;
}

bool co__heap_remove(co__heap *h, co__timer *t) {
    uint32_t i = t->idx;
    if (i == CO__TIMER_IDLE) return false;
    t->idx = CO__TIMER_IDLE;
    co__heap_ent last = h->a[--h->n];
    if (i == h->n) return true;
    if (i > 0 && co__less(&last, &h->a[(i - 1) / D])) co__sift_up(h, i, last);
    else co__sift_down(h, i, last);
    return true;
}

co__timer *co__heap_pop(co__heap *h) {
    if (!h->n) return NULL;
    co__timer *t = h->a[0].t;
    t->idx = CO__TIMER_IDLE;
    co__heap_ent last = h->a[--h->n];
    if (h->n) co__sift_down(h, 0, last);
    return t;
}

void co__timer_fire(co_loop *L, co__timer *t) {
    if (t->kind == CO__TM_TASK) {
        co_task *task = co__container_of(t, co_task, timer);
        co__wake(task, 0);
    } else if (t->kind == CO__TM_SCOPE) {
        co__scope_fire(L, t);
    } else {
        co__handle *h = co__container_of(t, co__handle, timer);
        h->state = CO__H_READY;
        co__rq_push(L, &h->run);
    }
}
