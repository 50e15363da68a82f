/* queue.c — co_queue (asyncio.Queue, LifoQueue, PriorityQueue): void *
 * items, bounded or not, join / task_done, shutdown (Python 3.13).
 *
 * Loop-thread only. The items sit in one buffer of (item, seq) entries, seq
 * counting puts: FIFO and LIFO keep a ring sorted by seq (FIFO takes the
 * front, LIFO the back), PRIORITY a binary heap ordered by (cmp, seq), so
 * equal priorities come out in put order.
 *
 * Grants, as in the other primitives, are decided here, not by the woken
 * task: an item put while getters wait stays in the buffer but is claimed
 * for the first getter, which pops the next item (in the queue's order)
 * when it resumes, so a LIFO waiter woken by put(5), put(1) gets 1, as
 * asyncio's does; a slot freed while putters wait is reserved for the
 * first putter, which inserts its item when it resumes. Claimed items stay
 * in the buffer and reserved slots count against maxsize, so nobody
 * overtakes a woken task: a newcomer gets only unclaimed items. A getter
 * cancelled before it resumed passes its claim on to the next getter (the
 * item never left the buffer); a putter granted a slot and cancelled
 * passes the slot on. Either way the queue ends as if the cancelled task
 * had never waited. An immediate shutdown pops each claimed item into its
 * getter's record (CO__SW_GOT) before it drops the rest, so a get woken
 * before the shutdown still returns its item.
 *
 * Invariants: claimed <= n; getters wait only while claimed == n. Room:
 * the buffer always has cap >= n + reserved, so inserting a reserved item
 * never allocates (and never fails). Only a put that takes a fresh slot
 * may grow it.
 */
#include <string.h>

#include "internal.h"

enum { CO__Q_OPEN = 0, CO__Q_GRACEFUL, CO__Q_IMMEDIATE };

typedef struct co__qent {
    void *item;
    uint64_t seq;
} co__qent;

typedef struct co__queue {
    co_loop *loop;
    co__list getters;   /* co__swait (CO__SW_GET), FIFO */
    co__list putters;   /* co__swait (CO__SW_PUT), FIFO */
    co__list joiners;   /* co__swait */
    co__list granted;   /* getters with a claim (or a GOT item), putters granted a slot; until they resume */
    co__qent *buf;
    size_t cap;         /* a power of two (or 0) */
    size_t head;        /* ring: index of the first entry */
    size_t n;           /* entries in buf, claimed ones included */
    size_t claimed;     /* entries promised to granted getters (CO__SW_GET) */
    size_t reserved;    /* slots granted to putters */
    size_t maxsize;     /* 0: unbounded */
    size_t unfinished;  /* puts not yet matched by task_done */
    uint64_t seq;
    int (*cmp)(const void *, const void *);
    void (*drop)(void *item, void *arg);
    void *drop_arg;
    uint8_t order;      /* co_queue_order */
    uint8_t shut;       /* CO__Q_* */
} co__queue;

CO__CHECK_SIZE(co_queue, co__queue);

static inline co__queue *co__qu(co_queue *q) { return (co__queue *)(void *)q; }
static inline const co__queue *co__cqu(const co_queue *q) { return (const co__queue *)(const void *)q; }

/* ---- the buffer ------------------------------------------------------------------ */

static inline co__qent *co__q_at(co__queue *q, size_t i) { return &q->buf[(q->head + i) & (q->cap - 1)]; }

static inline bool co__q_before(const co__queue *q, const co__qent *a, const co__qent *b) {
    int c = q->cmp(a->item, b->item);
    return c < 0 || (c == 0 && a->seq < b->seq);
}

/* Makes room for `need` entries. 0, or -ENOMEM. */
static int co__q_reserve(co__queue *q, size_t need) {
    if (need <= q->cap) return 0;
    size_t cap = q->cap ? q->cap : 8;
    while (cap < need) cap *= 2;
    co__qent *nb = malloc(cap * sizeof *nb);
    if (!nb) return -ENOMEM;
    for (size_t i = 0; i < q->n; i++) nb[i] = *co__q_at(q, i); /* the ring unrolled: head 0 */
    free(q->buf);
    q->buf = nb;
    q->cap = cap;
    q->head = 0;
    return 0;
}

static void co__heap_up(co__queue *q, size_t i) {
    co__qent e = q->buf[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!co__q_before(q, &e, &q->buf[p])) break;
        q->buf[i] = q->buf[p];
        i = p;
    }
    q->buf[i] = e;
}

static void co__heap_down(co__queue *q, size_t i) {
    co__qent e = q->buf[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && co__q_before(q, &q->buf[c + 1], &q->buf[c])) c++;
        if (!co__q_before(q, &q->buf[c], &e)) break;
        q->buf[i] = q->buf[c];
        i = c;
    }
    q->buf[i] = e;
}

/* Inserts a new entry (room is there). Its seq is the largest: the back
 * of the ring. */
static void co__q_insert(co__queue *q, co__qent e) {
    if (q->order == CO_QUEUE_PRIORITY) {
        q->buf[q->n++] = e;
        co__heap_up(q, q->n - 1);
        return;
    }
    *co__q_at(q, q->n) = e;
    q->n++;
}

static co__qent co__q_pop(co__queue *q) {
    co__qent e;
    switch (q->order) {
    case CO_QUEUE_FIFO:
        e = *co__q_at(q, 0);
        q->head = (q->head + 1) & (q->cap - 1);
        q->n--;
        break;
    case CO_QUEUE_LIFO:
        e = *co__q_at(q, --q->n);
        break;
    default:
        e = q->buf[0];
        q->buf[0] = q->buf[--q->n];
        if (q->n) co__heap_down(q, 0);
        break;
    }
    return e;
}

/* ---- grants ------------------------------------------------------------------------ */

static inline bool co__q_full(const co__queue *q) {
    return q->maxsize && q->n + q->reserved >= q->maxsize;
}

/* Unclaimed items are claimed for waiting getters, first come first served. */
static void co__q_hand_items(co__queue *q) {
    co__swait *w;
    while (q->n > q->claimed && (w = co__swait_first(&q->getters))) {
        q->claimed++;
        co__swait_grant(w, &q->granted);
    }
}

/* Slots go to waiting putters. Called after a slot was freed, so the room
 * invariant holds for the reservation. */
static void co__q_hand_slots(co__queue *q) {
    co__swait *w;
    while (!co__q_full(q) && (w = co__swait_first(&q->putters))) {
        q->reserved++;
        co__swait_grant(w, &q->granted);
    }
}

/* A put completes: the item enters the queue (room is there). */
static void co__q_add(co__queue *q, void *item) {
    co__q_insert(q, (co__qent){item, ++q->seq});
    q->unfinished++;
    co__q_hand_items(q);
}

/* A put that takes a fresh slot. */
static int co__q_put_now(co__queue *q, void *item) {
    int rc = co__q_reserve(q, q->n + q->reserved + 1);
    if (rc) return rc;
    co__q_add(q, item);
    return 0;
}

static void co__q_release_joiners(co__queue *q) {
    co__swait *w;
    while ((w = co__swait_first(&q->joiners))) co__swait_grant(w, NULL);
}

static void co__q_drop(co__queue *q, void *item) {
    if (q->drop) q->drop(item, q->drop_arg);
}

/* An item dropped by an immediate shutdown counts as done. */
static void co__q_drop_unfinished(co__queue *q, void *item) {
    co__q_drop(q, item);
    if (q->unfinished && --q->unfinished == 0) co__q_release_joiners(q);
}

/* ---- life cycle ----------------------------------------------------------------------- */

int co_queue_init(co_queue *pq, const co_queue_opts *opts) {
    co_queue_opts o = opts ? *opts : (co_queue_opts){0};
    if ((unsigned)o.order > CO_QUEUE_PRIORITY || (o.order == CO_QUEUE_PRIORITY) != (o.cmp != NULL))
        return -EINVAL;
    co__queue *q = co__qu(pq);
    memset(q, 0, sizeof *q);
    q->loop = co__tls_loop;
    co__list_init(&q->getters);
    co__list_init(&q->putters);
    co__list_init(&q->joiners);
    co__list_init(&q->granted);
    q->maxsize = o.maxsize;
    q->cmp = o.cmp;
    q->drop = o.drop;
    q->drop_arg = o.drop_arg;
    q->order = (uint8_t)o.order;
    return 0;
}

int co_queue_destroy(co_queue *pq) {
    co__queue *q = co__qu(pq);
    bool waiters = !co__list_empty(&q->getters) || !co__list_empty(&q->putters) ||
                   !co__list_empty(&q->joiners) || !co__list_empty(&q->granted);
    int rc = co__sync_check_waiters(&q->loop, "co_queue_destroy", waiters);
    if (rc) return rc;
    co__swait_fail_all(&q->getters, -CO_ECLOSED);
    co__swait_fail_all(&q->putters, -CO_ECLOSED);
    co__swait_fail_all(&q->joiners, -CO_ECLOSED);
    co__swait *w;
    while ((w = co__swait_first(&q->granted))) {
        if (w->kind == CO__SW_GOT) co__q_drop(q, w->item); /* still the queue's */
        co__swait_fail(w, -CO_ECLOSED);
    }
    while (q->n) co__q_drop(q, co__q_pop(q).item);
    free(q->buf);
    q->buf = NULL;
    q->cap = q->claimed = q->reserved = q->unfinished = 0;
    return 0;
}

co_queue *co_queue_new(const co_queue_opts *opts) {
    co_queue *q = malloc(sizeof *q);
    return co__sync_made(q, q ? co_queue_init(q, opts) : -ENOMEM);
}

int co_queue_free(co_queue *q) { return co__sync_freed(q, q ? co_queue_destroy(q) : 0); }

/* ---- put and get -------------------------------------------------------------------------- */

int co_queue_put(co_queue *pq, void *item) {
    co__queue *q = co__qu(pq);
    co_task *t;
    int rc = co__sync_task(&q->loop, "co_queue_put", &t);
    if (rc || (rc = co__can_suspend(&t))) return rc;
    if (q->shut) return -CO_ESHUTDOWN;
    if (!co__q_full(q)) return co__q_put_now(q, item); /* nobody waits to put: no slot is free then */
    co__swait w = {.kind = CO__SW_PUT, .item = item};
    rc = co__swait_park(&q->putters, &w, t, true);
    if (w.state != CO__SW_GRANTED) return co__swait_result(&w, rc);
    q->reserved--;
    if (rc) { /* granted a slot, then cancelled: the slot passes on */
        co__q_hand_slots(q);
        return rc;
    }
    co__q_add(q, item);
    return 0;
}

int co_queue_try_put(co_queue *pq, void *item) {
    co__queue *q = co__qu(pq);
    int rc = co__sync_check(&q->loop, "co_queue_try_put");
    if (rc) return rc;
    if (q->shut) return -CO_ESHUTDOWN;
    if (co__q_full(q)) return -EAGAIN;
    return co__q_put_now(q, item);
}

/* Takes the next item (there is one). */
static void *co__q_take(co__queue *q) {
    void *item = co__q_pop(q).item;
    co__q_hand_slots(q);
    return item;
}

int co_queue_get(co_queue *pq, void **item) {
    co__queue *q = co__qu(pq);
    co_task *t;
    int rc = co__sync_task(&q->loop, "co_queue_get", &t);
    if (rc) return rc;
    if (!item) return -EINVAL;
    if ((rc = co__can_suspend(&t))) return rc;
    if (q->n > q->claimed) { /* getters wait only while every item is claimed: nobody is ahead */
        *item = co__q_take(q);
        return 0;
    }
    if (q->shut) return -CO_ESHUTDOWN;
    co__swait w = {.kind = CO__SW_GET};
    rc = co__swait_park(&q->getters, &w, t, true);
    if (w.state != CO__SW_GRANTED) return co__swait_result(&w, rc);
    if (w.kind == CO__SW_GOT) { /* an immediate shutdown set our item aside */
        if (rc) co__q_drop_unfinished(q, w.item);
        else *item = w.item;
        return rc;
    }
    q->claimed--;
    if (rc) { /* granted, then cancelled: the claim passes on */
        co__q_hand_items(q);
        return rc;
    }
    *item = co__q_take(q);
    return 0;
}

int co_queue_try_get(co_queue *pq, void **item) {
    co__queue *q = co__qu(pq);
    int rc = co__sync_check(&q->loop, "co_queue_try_get");
    if (rc) return rc;
    if (!item) return -EINVAL;
    if (q->n == q->claimed) return q->shut && !q->n ? -CO_ESHUTDOWN : -EAGAIN;
    *item = co__q_take(q);
    return 0;
}

/* ---- join, task_done, shutdown ---------------------------------------------------------------- */

int co_queue_join(co_queue *pq) {
    co__queue *q = co__qu(pq);
    co_task *t;
    int rc = co__sync_task(&q->loop, "co_queue_join", &t);
    if (rc || (rc = co__can_suspend(&t))) return rc;
    if (!q->unfinished) return 0;
    co__swait w;
    rc = co__swait_park(&q->joiners, &w, t, true);
    return co__swait_result(&w, rc);
}

int co_queue_task_done(co_queue *pq) {
    co__queue *q = co__qu(pq);
    int rc = co__sync_check(&q->loop, "co_queue_task_done");
    if (rc) return rc;
    if (!q->unfinished) return -EINVAL;
    if (--q->unfinished == 0) co__q_release_joiners(q);
    return 0;
}

/* Immediate shutdown: each granted getter's claimed item moves into its
 * record, in grant order (the order they would have popped in). */
static void co__q_set_aside(co__queue *q) {
    co__list_for_each(it, &q->granted) {
        co__swait *w = co__container_of(it, co__swait, link);
        if (w->kind != CO__SW_GET) continue;
        w->item = co__q_pop(q).item;
        w->kind = CO__SW_GOT;
        q->claimed--;
    }
}

int co_queue_shutdown(co_queue *pq, bool immediate) {
    co__queue *q = co__qu(pq);
    int rc = co__sync_check(&q->loop, "co_queue_shutdown");
    if (rc) return rc;
    if (immediate) {
        q->shut = CO__Q_IMMEDIATE;
        co__q_set_aside(q);
        while (q->n) co__q_drop_unfinished(q, co__q_pop(q).item);
        co__swait_fail_all(&q->getters, -CO_ESHUTDOWN);
    } else if (!q->shut) {
        q->shut = CO__Q_GRACEFUL;
        co__swait_fail_all(&q->getters, -CO_ESHUTDOWN); /* they wait: the queue is empty */
    }
    co__swait_fail_all(&q->putters, -CO_ESHUTDOWN);
    co__list_for_each_safe(it, tmp, &q->granted) {
        co__swait *w = co__container_of(it, co__swait, link);
        if (w->kind != CO__SW_PUT) continue; /* a get granted before keeps its item */
        q->reserved--;
        co__swait_fail(w, -CO_ESHUTDOWN);
    }
    return 0;
}

/* ---- state ------------------------------------------------------------------------------------ */

size_t co_queue_size(const co_queue *q) { return co__cqu(q)->n; }
size_t co_queue_maxsize(const co_queue *q) { return co__cqu(q)->maxsize; }
bool co_queue_empty(const co_queue *q) { return co_queue_size(q) == 0; }
bool co_queue_full(const co_queue *q) { return co__q_full(co__cqu(q)); }
