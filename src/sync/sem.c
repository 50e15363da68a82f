/* sem.c — co_sem (asyncio.Semaphore and BoundedSemaphore).
 *
 * Loop-thread only. Invariant: value > 0 only while nobody waits. release
 * hands its permit straight to the first waiter (the value does not move),
 * so a task that comes later cannot take it first; a waiter handed a permit
 * and cancelled before it resumed gives it back the same way.
 *
 * Order of running, not only of permits: while tasks handed a permit have
 * not resumed yet, an acquire that finds a free permit takes it but queues
 * behind them (it is granted like a waiter, and woken tasks resume in the
 * order they were woken), as asyncio makes it wait for them. Without this a
 * task that releases and at once re-acquires would run ahead of a waiter
 * woken before it.
 */
#include <limits.h>

#include "internal.h"

typedef struct co__sem {
    co_loop *loop;
    co__waitq wq;     /* granted: handed a permit, not resumed yet */
    unsigned value;   /* free permits */
    unsigned bound;   /* CO_SEM_BOUNDED: the initial value; else UINT_MAX */
} co__sem;

CO__CHECK_SIZE(co_sem, co__sem);

static inline co__sem *co__sm(co_sem *s) { return (co__sem *)(void *)s; }

int co_sem_init(co_sem *ps, unsigned value, int flags) {
    if (flags & ~CO_SEM_BOUNDED) return -EINVAL;
    co__sem *s = co__sm(ps);
    s->loop = co__tls_loop;
    s->value = value;
    s->bound = (flags & CO_SEM_BOUNDED) ? value : UINT_MAX;
    co__waitq_init(&s->wq);
    return 0;
}

int co_sem_destroy(co_sem *ps) {
    co__sem *s = co__sm(ps);
    return co__waitq_close(&s->wq, &s->loop, "co_sem_destroy");
}

co_sem *co_sem_new(unsigned value, int flags) {
    co_sem *s = malloc(sizeof *s);
    return co__sync_made(s, s ? co_sem_init(s, value, flags) : -ENOMEM);
}

int co_sem_free(co_sem *s) { return co__sync_freed(s, s ? co_sem_destroy(s) : 0); }

/* A permit comes back: to the first waiter, or to the count. */
static void co__sem_give(co__sem *s) {
    co__swait *w = co__swait_first(&s->wq.waiting);
    if (w) co__swait_grant(w, &s->wq.granted);
    else s->value++;
}

/* Takes a free permit for t behind the tasks granted one before (they are
 * in the ready queue already): t is granted at once and yields; returns
 * the wake code, as co__swait_park. */
static int co__sem_take_behind(co__sem *s, co__swait *w, co_task *t) {
    w->task = t;
    w->err = 0;
    co__list_init(&w->link);
    s->value--;
    co__swait_grant(w, &s->wq.granted);
    int rc = co__suspend(t);
    co__list_remove(&w->link);
    return rc;
}

int co_sem_acquire(co_sem *ps) {
    co__sem *s = co__sm(ps);
    co_task *t;
    int rc = co__sync_task(&s->loop, "co_sem_acquire", &t);
    if (rc || (rc = co__can_suspend(&t))) return rc;
    bool behind = !co__list_empty(&s->wq.granted);
    if (s->value && !behind) {
        s->value--;
        return 0;
    }
    co__swait w;
    if (s->value) rc = co__sem_take_behind(s, &w, t);
    else rc = co__swait_park(&s->wq.waiting, &w, t, true);
    if (w.state == CO__SW_GRANTED && rc) co__sem_give(s); /* handed a permit, then cancelled */
    return co__swait_result(&w, rc);
}

int co_sem_try_acquire(co_sem *ps) {
    co__sem *s = co__sm(ps);
    int rc = co__sync_check(&s->loop, "co_sem_try_acquire");
    if (rc) return rc;
    if (!s->value) return -EAGAIN;
    s->value--;
    return 0;
}

int co_sem_release(co_sem *ps) {
    co__sem *s = co__sm(ps);
    int rc = co__sync_check(&s->loop, "co_sem_release");
    if (rc) return rc;
    if (s->value >= s->bound) return -EOVERFLOW;
    co__sem_give(s);
    return 0;
}

unsigned co_sem_value(const co_sem *ps) { return ((const co__sem *)(const void *)ps)->value; }
