/* sem.c — co_sem (asyncio.Semaphore and BoundedSemaphore).
 *
 * Loop-thread only. Invariant: value > 0 only while nobody waits. release
 * hands its permit straight to the first waiter (the value does not move),
 * so a task that comes later cannot take it first; a waiter handed a permit
 * and cancelled before it resumed gives it back the same way.
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

int co_sem_acquire(co_sem *ps) {
    co__sem *s = co__sm(ps);
    co_task *t;
    int rc = co__sync_task(&s->loop, "co_sem_acquire", &t);
    if (rc || (rc = co__can_suspend(&t))) return rc;
    if (s->value) {
        s->value--;
        return 0;
    }
    co__swait w;
    rc = co__swait_park(&s->wq.waiting, &w, t, true);
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
