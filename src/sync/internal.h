/* internal.h — what the primitives of src/sync share: the loop check, the
 * waiter record and its moves, and the mutex (which co_cond builds on).
 *
 * Loop-thread only, like the core. Nothing here allocates.
 *
 * The waiter record lives on the waiting task's stack. Its life:
 *   WAITING  linked in the primitive's waiting list (FIFO);
 *   GRANTED  the primitive gave it what it waited for (the mutex, a permit,
 *            an item, a slot, a notification), moved it to the primitive's
 *            granted list (or unlinked it when the grant needs no
 *            follow-up) and woke the task;
 *   FAILED   woken with an error (-CO_ECLOSED, -CO_ESHUTDOWN, -CO_EBROKEN)
 *            and unlinked.
 * The task waits through the one wait (core/wait.h), whose completion is
 * "the record left WAITING". The primitives keep, for now, their own
 * answer to a grant and a cancel landing in the same turn: the cancel is
 * returned and the grant passed on (nothing is lost, the next waiter gets
 * it), which the sync tests pin; moving them to the one wait's rule
 * (keep the grant) is the open step. A record still linked after the wait proves the
 * primitive is alive (destroy unlinks every record and marks it FAILED),
 * so unlinking it is always safe.
 */
#ifndef CO_SYNC_INTERNAL_H
#define CO_SYNC_INTERNAL_H

#include <errno.h>
#include <stdlib.h>

#include "../core/internal.h"
#include "corio/sync.h"

enum { CO__SW_WAITING = 0, CO__SW_GRANTED, CO__SW_FAILED };
/* queue records: which list they wait in; GOT: a granted getter whose
 * item an immediate shutdown moved into the record */
enum { CO__SW_GET = 1, CO__SW_PUT = 2, CO__SW_GOT = 3 };

typedef struct co__swait {
    co__list link;
    co_task *task;
    uint8_t state;   /* CO__SW_* */
    uint8_t kind;    /* queues: CO__SW_GET / CO__SW_PUT */
    int err;         /* FAILED: what the call returns */
    void *item;      /* queue: a putter's item / a GOT getter's item */
    unsigned index;  /* barrier: arrival order in the round */
} co__swait;

/* Checks that the caller runs on the primitive's loop: that loop is the
 * thread's current one and this is its thread. An unbound primitive
 * (*loop NULL) is bound to the current loop here. 0, or -CO_EWRONGLOOP
 * (reported, naming both loops), or -CO_ENOLOOP (unbound, no loop). */
int co__sync_check(co_loop **loop, const char *what);
/* The same for calls that need a task; the task goes to *t. 0, or
 * -CO_EWRONGLOOP, -CO_ENOTASK. Cancellation is NOT checked: callers do
 * their argument checks, then co__can_suspend(). */
int co__sync_task(co_loop **loop, const char *what, co_task **t);
/* For destroy: the loop check matters only when someone must be woken. */
static inline int co__sync_check_waiters(co_loop **loop, const char *what, bool waiters) {
    return waiters ? co__sync_check(loop, what) : 0;
}

/* The tails of co_X_new and co_X_free: p was allocated and initialised
 * with result rc / destroyed with result rc. */
static inline void *co__sync_made(void *p, int rc) {
    if (rc) {
        free(p);
        errno = -rc;
        return NULL;
    }
    return p;
}
static inline int co__sync_freed(void *p, int rc) {
    if (rc == 0) free(p);
    return rc;
}

static inline co__swait *co__swait_first(co__list *l) {
    return co__list_empty(l) ? NULL : co__container_of(l->next, co__swait, link);
}

static inline bool co__swait_moved(const void *w) { return ((const co__swait *)w)->state != CO__SW_WAITING; }

/* Parks t in `waiting` until a waker moves the record (0: GRANTED or
 * FAILED, see w->state) or, if `cancellable`, a cancellation is pending
 * (-ECANCELED; the record may be GRANTED: the caller passes the grant on);
 * unlinks the record. Uncancellable waits (a
 * cond re-taking its mutex) sleep on through a cancel, keeping their place. */
static inline int co__swait_park(co__list *waiting, co__swait *w, co_task *t, bool cancellable) {
    w->task = t;
    w->state = CO__SW_WAITING;
    w->err = 0;
    co__list_append(waiting, &w->link);
    int rc = co__wait(t, CO__NO_DEADLINE, co__swait_moved, w, cancellable ? 0 : CO__WAIT_SHIELDED);
    co__list_remove(&w->link);
    if (rc == 0 && cancellable && co__cancel_pending(t)) rc = -ECANCELED; /* granted, then cancelled: passed on */
    return rc;
}

/* What a wait returns: the cancel, or the error the record was failed
 * with, or 0 (granted). */
static inline int co__swait_result(const co__swait *w, int rc) { return rc ? rc : w->err; }

/* Grants w and wakes its task; keeps it in `granted` (NULL: unlinked) until
 * the task resumes. */
static inline void co__swait_grant(co__swait *w, co__list *granted) {
    co__list_remove(&w->link);
    if (granted) co__list_append(granted, &w->link);
    w->state = CO__SW_GRANTED;
    co__wake(w->task, 0);
}

static inline void co__swait_fail(co__swait *w, int err) {
    co__list_remove(&w->link);
    w->state = CO__SW_FAILED;
    w->err = err;
    co__wake(w->task, err); /* a task already woken keeps its code; w->err decides */
}

static inline void co__swait_fail_all(co__list *l, int err) {
    co__swait *w;
    while ((w = co__swait_first(l))) co__swait_fail(w, err);
}

/* The waiters of a primitive that grants one thing at a time. */
typedef struct co__waitq {
    co__list waiting; /* co__swait, FIFO */
    co__list granted; /* granted, not resumed yet (empty where grants need no follow-up) */
} co__waitq;

static inline void co__waitq_init(co__waitq *q) {
    co__list_init(&q->waiting);
    co__list_init(&q->granted);
}

/* Destroy: wakes every waiter, granted or not, with -CO_ECLOSED. 0, or
 * -CO_EWRONGLOOP (someone waits and the caller is not on the loop). */
static inline int co__waitq_close(co__waitq *q, co_loop **loop, const char *what) {
    bool waiters = !co__list_empty(&q->waiting) || !co__list_empty(&q->granted);
    int rc = co__sync_check_waiters(loop, what, waiters);
    if (rc) return rc;
    co__swait_fail_all(&q->waiting, -CO_ECLOSED);
    co__swait_fail_all(&q->granted, -CO_ECLOSED);
    return 0;
}

/* ---- the mutex (mutex.c), shared with cond.c --------------------------------- */
typedef struct co__mutex {
    co_loop *loop;
    uint64_t owner;    /* id of the holding task (ids start at 1); 0: unlocked */
    co__waitq wq;      /* granted: the waiter handed the mutex, until it resumes */
} co__mutex;

static inline co__mutex *co__mx(co_mutex *m) { return (co__mutex *)(void *)m; }

/* The holder lets go: the first waiter becomes the owner, or none. */
void co__mutex_release(co__mutex *m);
/* Takes the mutex for t, waiting as long as it takes: cancel requests do
 * not interrupt it (co_cond_wait must return with the mutex held). 0, or
 * -CO_ECLOSED (destroyed meanwhile). */
int co__mutex_lock_uncancellable(co__mutex *m, co_task *t);

#endif
