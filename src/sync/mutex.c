/* mutex.c — co_mutex (asyncio.Lock): held by one task, FIFO fair.
 *
 * Loop-thread only. Unlock hands the mutex straight to the first waiter
 * (it becomes the owner before it even runs), so a task that comes later
 * cannot take it first. A waiter handed the mutex and cancelled before it
 * resumed unlocks it in turn: the mutex ends as if it had never waited.
 * The owner is kept as a task id, not a pointer: task structs are
 * recycled, ids are not.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

CO__SYNC_CHECK_SIZE(co_mutex, co__mutex);

int co_mutex_init(co_mutex *pm) {
    co__mutex *m = co__mx(pm);
    m->loop = co__tls_loop;
    m->owner = 0;
    co__list_init(&m->waiting);
    co__list_init(&m->granted);
    return 0;
}

int co_mutex_destroy(co_mutex *pm) {
    co__mutex *m = co__mx(pm);
    bool waiters = !co__list_empty(&m->waiting) || !co__list_empty(&m->granted);
    int rc = co__sync_check_waiters(&m->loop, "co_mutex_destroy", waiters);
    if (rc) return rc;
    co__swait_fail_all(&m->waiting, -CO_ECLOSED);
    co__swait_fail_all(&m->granted, -CO_ECLOSED);
    m->owner = 0;
    return 0;
}

co_mutex *co_mutex_new(void) {
    co_mutex *m = malloc(sizeof *m);
    if (!m) return NULL; /* errno: ENOMEM */
    co_mutex_init(m);
    return m;
}

int co_mutex_free(co_mutex *m) {
    if (!m) return 0;
    int rc = co_mutex_destroy(m);
    if (rc == 0) free(m);
    return rc;
}

void co__mutex_release(co__mutex *m) {
    co__swait *w = co__swait_first(&m->waiting);
    if (!w) {
        m->owner = 0;
        return;
    }
    m->owner = w->task->id;
    co__swait_grant(w, &m->granted);
}

int co_mutex_lock(co_mutex *pm) {
    co__mutex *m = co__mx(pm);
    co_task *t;
    int rc = co__sync_task(&m->loop, "co_mutex_lock", &t);
    if (rc) return rc;
    if (m->owner == t->id) return -EDEADLK;
    if ((rc = co__can_suspend(&t))) return rc;
    if (!m->owner) {
        m->owner = t->id;
        return 0;
    }
    co__swait w;
    rc = co__swait_park(&m->waiting, &w, t, true);
    if (w.state == CO__SW_GRANTED && rc) co__mutex_release(m); /* handed it, then cancelled */
    return co__swait_result(&w, rc);
}

int co__mutex_lock_uncancellable(co__mutex *m, co_task *t) {
    if (!m->owner) {
        m->owner = t->id;
        return 0;
    }
    co__swait w;
    co__swait_park(&m->waiting, &w, t, false);
    return w.state == CO__SW_GRANTED ? 0 : w.err;
}

int co_mutex_trylock(co_mutex *pm) {
    co__mutex *m = co__mx(pm);
    co_task *t;
    int rc = co__sync_task(&m->loop, "co_mutex_trylock", &t);
    if (rc) return rc;
    if (m->owner == t->id) return -EDEADLK;
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
