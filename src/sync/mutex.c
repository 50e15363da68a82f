/* mutex.c — co_mutex (asyncio.Lock): held by one task, FIFO fair.
 *
 * Loop-thread only. Unlock hands the mutex straight to the first waiter
 * (it becomes the owner before it even runs), so a task that comes later
 * cannot take it first. A waiter handed the mutex and cancelled before it
 * resumed unlocks it in turn: the mutex ends as if it had never waited.
 * The owner is kept as a task id, not a pointer: task structs are
 * recycled, ids are not.
 */
#include "internal.h"

CO__CHECK_SIZE(co_mutex, co__mutex);

int co_mutex_init(co_mutex *pm) {
    co__mutex *m = co__mx(pm);
    m->loop = co__tls_loop;
    m->owner = 0;
    co__waitq_init(&m->wq);
    return 0;
}

int co_mutex_destroy(co_mutex *pm) {
    co__mutex *m = co__mx(pm);
    int rc = co__waitq_close(&m->wq, &m->loop, "co_mutex_destroy");
    if (rc == 0) m->owner = 0;
    return rc;
}

co_mutex *co_mutex_new(void) {
    co_mutex *m = malloc(sizeof *m);
    return co__sync_made(m, m ? co_mutex_init(m) : -ENOMEM);
}

int co_mutex_free(co_mutex *m) { return co__sync_freed(m, m ? co_mutex_destroy(m) : 0); }

void co__mutex_release(co__mutex *m) {
    co__swait *w = co__swait_first(&m->wq.waiting);
    if (!w) {
        m->owner = 0;
        return;
    }
    m->owner = w->task->id;
    co__swait_grant(w, &m->wq.granted);
}

/* The checks of lock and trylock: the right loop, a task, not the owner. */
static int co__mutex_enter(co__mutex *m, const char *what, co_task **t) {
    int rc = co__sync_task(&m->loop, what, t);
    if (rc) return rc;
    return m->owner == (*t)->id ? -EDEADLK : 0;
}

int co_mutex_lock(co_mutex *pm) {
    co__mutex *m = co__mx(pm);
    co_task *t;
    int rc = co__mutex_enter(m, "co_mutex_lock", &t);
    if (rc || (rc = co__can_suspend(&t))) return rc;
    if (!m->owner) {
        m->owner = t->id;
        return 0;
    }
    co__swait w;
    rc = co__swait_park(&m->wq.waiting, &w, t, true);
    if (w.state == CO__SW_GRANTED && rc) co__mutex_release(m); /* handed it, then cancelled */
    return co__swait_result(&w, rc);
}

int co__mutex_lock_uncancellable(co__mutex *m, co_task *t) {
    if (!m->owner) {
        m->owner = t->id;
        return 0;
    }
    co__swait w;
    co__swait_park(&m->wq.waiting, &w, t, false);
    return w.state == CO__SW_GRANTED ? 0 : w.err;
}

int co_mutex_trylock(co_mutex *pm) {
    co__mutex *m = co__mx(pm);
    co_task *t;
    int rc = co__mutex_enter(m, "co_mutex_trylock", &t);
    if (rc) return rc;
    if (m->owner) return -EAGAIN;
    m->owner = t->id;
    return 0;
}

int co_mutex_unlock(co_mutex *pm) {
    co__mutex *m = co__mx(pm);
    int rc = co__sync_check(&m->loop, "co_mutex_unlock");
    if (rc) return rc;
    co_task *t = co_current();
    if (!t || !m->owner || m->owner != t->id) return -EPERM;
    co__mutex_release(m);
    return 0;
}

bool co_mutex_locked(const co_mutex *pm) { return ((const co__mutex *)(const void *)pm)->owner != 0; }
