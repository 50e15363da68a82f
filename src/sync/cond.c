/* cond.c — co_cond (asyncio.Condition) over a caller's co_mutex.
 *
 * Loop-thread only. A wait releases the mutex, parks, then takes the mutex
 * back however it was woken — also when cancelled, as asyncio does, so the
 * caller's cleanup always runs with the mutex held. Taking it back ignores
 * further cancel requests (it keeps its place in the mutex's queue). A
 * notified waiter stays in the granted list until it resumes; if it turns
 * out cancelled, it passes the notification to the next waiter, so no
 * notify is swallowed.
 */
#include <limits.h>

#include "internal.h"

typedef struct co__cond {
    co_loop *loop;
    co__mutex *m;
    co__waitq wq; /* granted: notified, not resumed yet */
} co__cond;

CO__CHECK_SIZE(co_cond, co__cond);

static inline co__cond *co__cv(co_cond *c) { return (co__cond *)(void *)c; }

int co_cond_init(co_cond *pc, co_mutex *m) {
    if (!m) return -EINVAL;
    co__cond *c = co__cv(pc);
    c->m = co__mx(m);
    c->loop = c->m->loop ? c->m->loop : co__tls_loop;
    co__waitq_init(&c->wq);
    return 0;
}

int co_cond_destroy(co_cond *pc) {
    co__cond *c = co__cv(pc);
    return co__waitq_close(&c->wq, &c->loop, "co_cond_destroy");
}

co_cond *co_cond_new(co_mutex *m) {
    co_cond *c = malloc(sizeof *c);
    return co__sync_made(c, c ? co_cond_init(c, m) : -ENOMEM);
}

int co_cond_free(co_cond *c) { return co__sync_freed(c, c ? co_cond_destroy(c) : 0); }

static int co__cond_wake(co__cond *c, int n) {
    int woken = 0;
    co__swait *w;
    while (woken < n && (w = co__swait_first(&c->wq.waiting))) {
        co__swait_grant(w, &c->wq.granted);
        woken++;
    }
    return woken;
}

/* The checks of a wait: the right loop, a task holding the mutex, no
 * cancel request pending. */
static int co__cond_enter(co__cond *c, const char *what, co_task **t) {
    int rc = co__sync_task(&c->loop, what, t);
    if (rc) return rc;
    if (c->m->owner != (*t)->id) return -EPERM;
    return co__can_suspend(t);
}

static int co__cond_wait(co__cond *c, co_task *t) {
    co__mutex_release(c->m);
    co__swait w;
    int rc = co__swait_park(&c->wq.waiting, &w, t, true);
    if (w.state == CO__SW_FAILED) return w.err; /* destroyed: do not touch the mutex */
    if (w.state == CO__SW_GRANTED && rc) co__cond_wake(c, 1); /* notified, then cancelled */
    int lrc = co__mutex_lock_uncancellable(c->m, t);
    return lrc ? lrc : rc;
}

int co_cond_wait(co_cond *pc) {
    co__cond *c = co__cv(pc);
    co_task *t;
    int rc = co__cond_enter(c, "co_cond_wait", &t);
    return rc ? rc : co__cond_wait(c, t);
}

int co_cond_wait_for(co_cond *pc, bool (*pred)(void *arg), void *arg) {
    co__cond *c = co__cv(pc);
    co_task *t;
    int rc = co__cond_enter(c, "co_cond_wait_for", &t);
    if (rc) return rc;
    if (!pred) return -EINVAL;
    while (!pred(arg))
        if ((rc = co__cond_wait(c, t))) return rc;
    return 0;
}

int co_cond_notify(co_cond *pc, int n) {
    co__cond *c = co__cv(pc);
    int rc = co__sync_check(&c->loop, "co_cond_notify");
    if (rc) return rc;
    co_task *t = co_current();
    if (!t || c->m->owner != t->id) return -EPERM;
    return co__cond_wake(c, n);
}

int co_cond_notify_all(co_cond *c) { return co_cond_notify(c, INT_MAX); }
