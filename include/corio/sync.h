/* corio/sync.h — task-level synchronisation: mutex, event, condition,
 * semaphore, barrier, queue (asyncio.Lock, Event, Condition, Semaphore,
 * BoundedSemaphore, Barrier, Queue, LifoQueue, PriorityQueue).
 *
 * These coordinate the tasks of ONE loop; they are not thread locks (a task
 * that waits suspends, the loop runs others meanwhile).
 *
 * Storage. Every primitive can live in the caller's storage (co_X_init /
 * co_X_destroy) or be allocated (co_X_new / co_X_free). The public structs
 * are opaque but sized: declare them, never read or copy their fields, and
 * do not move one after init (its wait lists point into it).
 *
 * Loop binding. A primitive belongs to the loop that is current on the
 * thread when it is initialised (co_loop_current()); initialised where no
 * loop is current, it binds to the loop of its first user. Every call from
 * a task of another loop, or from another thread, fails at once with
 * -CO_EWRONGLOOP and reports both loops through the primitive's loop
 * (co_loop_opts.report). Calls that cannot suspend (unlock, set, release,
 * try_put, ...) may also be made on the loop's thread outside any task
 * (from callbacks, or before the loop runs), except the ones that need an
 * owner (co_mutex_unlock, co_cond_notify).
 *
 * Cancellation (co_cancel, or a timeout scope firing) is safe at every call
 * that suspends:
 *   - A call that can suspend fails with -ECANCELED at once, doing nothing,
 *     when the calling task has a cancel request pending, even if it would
 *     not have needed to wait (sticky cancellation: cleanup cannot block by
 *     accident). Cleanup code uses the try_ forms, or shields itself.
 *   - Cancelled while waiting, the task leaves the primitive exactly as if
 *     it had never waited: no permit, slot or item taken, no place kept.
 *   - Granted what it waited for (the mutex, a permit, an item, a slot, a
 *     notification) and cancelled before it resumed, it returns -ECANCELED
 *     and hands the grant to the next waiter (or back to the primitive):
 *     nothing is lost and nothing is delivered to a task that no longer
 *     waits. Waiters are served in FIFO order; the grant is decided by the
 *     primitive, so a task arriving later never overtakes a woken one.
 *   - Where a wake-up is not a grant (an event set, a barrier passing, a
 *     queue's join released) a cancel arriving after it still wins: the
 *     call returns -ECANCELED, as co_join does. Nothing needs passing on.
 *
 * Destroying a primitive that tasks wait on wakes every one of them —
 * including ones already granted but not yet resumed — with -CO_ECLOSED;
 * they do not touch it again. Destroying the primitive is the caller's
 * business otherwise: a task that uses it after that is a use after free.
 */
#ifndef CORIO_SYNC_H
#define CORIO_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque storage, sized for the library's own structs (checked when the
 * library is built). */
typedef struct co_mutex { uint64_t _priv[6]; } co_mutex;
typedef struct co_event { uint64_t _priv[6]; } co_event;
typedef struct co_cond { uint64_t _priv[6]; } co_cond;
typedef struct co_sem { uint64_t _priv[7]; } co_sem;
typedef struct co_barrier { uint64_t _priv[7]; } co_barrier;
typedef struct co_queue { uint64_t _priv[24]; } co_queue;

/* ---- co_mutex (asyncio.Lock) --------------------------------------------------
 * Held by one task at a time; FIFO fair: unlock hands it to the longest
 * waiting task. Not recursive. */

/* Initialises an unlocked mutex. Returns 0. */
CO_API int co_mutex_init(co_mutex *m);
/* Wakes waiters (-CO_ECLOSED) and forgets the owner. 0, or:
 *   -CO_EWRONGLOOP tasks wait and the caller is not on the mutex's loop */
CO_API int co_mutex_destroy(co_mutex *m);
/* Allocated and initialised; NULL with errno ENOMEM. */
CO_API co_mutex *co_mutex_new(void);
/* co_mutex_destroy, then free (NULL is fine); on error nothing is freed. */
CO_API int co_mutex_free(co_mutex *m);

/* Suspends until the calling task holds the mutex. 0, or:
 *   -ECANCELED     cancelled (pending at the call, or while waiting)
 *   -EDEADLK       the calling task already holds it
 *   -CO_ENOTASK    not called from a task
 *   -CO_EWRONGLOOP the mutex belongs to another loop or thread
 *   -CO_ECLOSED    the mutex was destroyed while waiting */
CO_API int co_mutex_lock(co_mutex *m);
/* Takes the mutex if it is free; never suspends (usable in cleanup). 0, or:
 *   -EAGAIN        another task holds it
 *   -EDEADLK       the calling task already holds it
 *   -CO_ENOTASK    not called from a task
 *   -CO_EWRONGLOOP the mutex belongs to another loop or thread */
CO_API int co_mutex_trylock(co_mutex *m);
/* Releases the mutex; the first waiter (if any) now holds it. 0, or:
 *   -EPERM         the calling task does not hold it (or no task calls)
 *   -CO_EWRONGLOOP the mutex belongs to another loop or thread */
CO_API int co_mutex_unlock(co_mutex *m);
/* Is it held (or handed to a waiter that has not resumed yet)? */
CO_API bool co_mutex_locked(const co_mutex *m);

/* ---- co_event (asyncio.Event) ------------------------------------------------
 * A flag tasks wait for; setting it wakes all of them. */

/* Initialises a clear event. Returns 0. */
CO_API int co_event_init(co_event *e);
/* Wakes waiters (-CO_ECLOSED). 0, or -CO_EWRONGLOOP (as co_mutex_destroy). */
CO_API int co_event_destroy(co_event *e);
CO_API co_event *co_event_new(void);       /* NULL with errno ENOMEM */
CO_API int co_event_free(co_event *e);     /* destroy + free; NULL is fine */

/* Suspends until the event is set (returns at once if it is). 0, or:
 *   -ECANCELED     cancelled (pending at the call, while waiting, or after
 *                  the wake-up but before the task resumed)
 *   -CO_ENOTASK    not called from a task
 *   -CO_EWRONGLOOP the event belongs to another loop or thread
 *   -CO_ECLOSED    the event was destroyed while waiting */
CO_API int co_event_wait(co_event *e);
/* Sets the flag and wakes every waiter. 0, or -CO_EWRONGLOOP. */
CO_API int co_event_set(co_event *e);
/* Clears the flag (later waits suspend). 0, or -CO_EWRONGLOOP. */
CO_API int co_event_clear(co_event *e);
CO_API bool co_event_is_set(const co_event *e);

/* ---- co_cond (asyncio.Condition) -----------------------------------------------
 * A condition variable over a co_mutex the caller provides (one mutex may
 * serve several conditions). Destroy the condition before its mutex. */

/* 0, or -EINVAL (m is NULL). Binds to m's loop if m is bound. */
CO_API int co_cond_init(co_cond *c, co_mutex *m);
/* Wakes waiters (-CO_ECLOSED; they return without re-taking the mutex).
 * 0, or -CO_EWRONGLOOP (as co_mutex_destroy). */
CO_API int co_cond_destroy(co_cond *c);
CO_API co_cond *co_cond_new(co_mutex *m);  /* NULL with errno ENOMEM or EINVAL */
CO_API int co_cond_free(co_cond *c);       /* destroy + free; NULL is fine */

/* Releases the mutex, suspends until notified, re-takes the mutex. The
 * calling task must hold the mutex; it holds it again on every return
 * except -EPERM (it did not hold it) and -CO_ECLOSED. Cancelled while
 * waiting, the task still waits for the mutex (that wait ignores further
 * cancel requests, as asyncio's) before it returns -ECANCELED; notified
 * and cancelled at once, it passes the notification to the next waiter.
 *   -ECANCELED     cancelled (at the call: the mutex was not released)
 *   -EPERM         the calling task does not hold the mutex
 *   -CO_ENOTASK    not called from a task
 *   -CO_EWRONGLOOP the condition belongs to another loop or thread
 *   -CO_ECLOSED    the condition (or its mutex) was destroyed while waiting;
 *                  the mutex is not held */
CO_API int co_cond_wait(co_cond *c);
/* Waits until pred(arg) is true: checks it first, then after every
 * wake-up, with the mutex held. 0 when pred returned true, -EINVAL (pred is
 * NULL), or any error of co_cond_wait (returned as soon as a wait fails;
 * a cancel request pending at the call fails it before pred is called). */
CO_API int co_cond_wait_for(co_cond *c, bool (*pred)(void *arg), void *arg);
/* Wakes up to n waiters (FIFO) and returns how many; n <= 0 wakes none.
 * The calling task must hold the mutex. Errors:
 *   -EPERM         the calling task does not hold the mutex (or no task calls)
 *   -CO_EWRONGLOOP the condition belongs to another loop or thread */
CO_API int co_cond_notify(co_cond *c, int n);
/* Wakes every waiter; as co_cond_notify. */
CO_API int co_cond_notify_all(co_cond *c);

/* ---- co_sem (asyncio.Semaphore, BoundedSemaphore) -----------------------------
 * A counter of permits; acquire takes one (waiting for one if none is
 * left), release gives one back (to the longest waiting task first). */

enum {
    /* BoundedSemaphore: releasing above the initial value is an error. */
    CO_SEM_BOUNDED = 1 << 0,
};

/* value permits; flags 0 or CO_SEM_BOUNDED. 0, or -EINVAL (unknown flag). */
CO_API int co_sem_init(co_sem *s, unsigned value, int flags);
/* Wakes waiters (-CO_ECLOSED). 0, or -CO_EWRONGLOOP (as co_mutex_destroy). */
CO_API int co_sem_destroy(co_sem *s);
CO_API co_sem *co_sem_new(unsigned value, int flags);   /* NULL with errno ENOMEM or EINVAL */
CO_API int co_sem_free(co_sem *s);                      /* destroy + free; NULL is fine */

/* Takes a permit, suspending until one is free. Tasks handed a permit
 * before that have not resumed yet run first: a free permit is taken, but
 * the caller yields to them (asyncio's order). 0, or:
 *   -ECANCELED     cancelled (pending at the call, or while waiting)
 *   -CO_ENOTASK    not called from a task
 *   -CO_EWRONGLOOP the semaphore belongs to another loop or thread
 *   -CO_ECLOSED    the semaphore was destroyed while waiting */
CO_API int co_sem_acquire(co_sem *s);
/* Takes a permit if one is free; never suspends. 0, or:
 *   -EAGAIN        no permit free
 *   -CO_EWRONGLOOP the semaphore belongs to another loop or thread */
CO_API int co_sem_try_acquire(co_sem *s);
/* Gives a permit back (to the first waiter if any). 0, or:
 *   -EOVERFLOW     bounded, and the value would exceed the initial value
 *                  (or the count would overflow)
 *   -CO_EWRONGLOOP the semaphore belongs to another loop or thread */
CO_API int co_sem_release(co_sem *s);
/* Free permits now (0 while tasks wait). */
CO_API unsigned co_sem_value(const co_sem *s);

/* ---- co_barrier (asyncio.Barrier) ------------------------------------------------
 * parties tasks meet: each co_barrier_wait suspends until parties tasks
 * wait, then all of them pass and the barrier is ready for the next round. */

/* 0, or -EINVAL (parties is 0). */
CO_API int co_barrier_init(co_barrier *b, unsigned parties);
/* Wakes waiters (-CO_ECLOSED). 0, or -CO_EWRONGLOOP (as co_mutex_destroy). */
CO_API int co_barrier_destroy(co_barrier *b);
CO_API co_barrier *co_barrier_new(unsigned parties);   /* NULL with errno ENOMEM or EINVAL */
CO_API int co_barrier_free(co_barrier *b);             /* destroy + free; NULL is fine */

/* Waits until parties tasks wait, then passes. *index (if not NULL) gets
 * the task's arrival order in this round, 0 .. parties-1 (the last to
 * arrive gets parties-1). A task cancelled while waiting leaves the round
 * as if it had never arrived. 0, or:
 *   -ECANCELED     cancelled (pending at the call, while waiting, or after
 *                  the barrier passed but before the task resumed)
 *   -CO_EBROKEN    the barrier is broken (co_barrier_abort), or was reset or
 *                  aborted while waiting
 *   -CO_ENOTASK    not called from a task
 *   -CO_EWRONGLOOP the barrier belongs to another loop or thread
 *   -CO_ECLOSED    the barrier was destroyed while waiting */
CO_API int co_barrier_wait(co_barrier *b, unsigned *index);
/* Back to the empty, unbroken state; current waiters get -CO_EBROKEN.
 * 0, or -CO_EWRONGLOOP. */
CO_API int co_barrier_reset(co_barrier *b);
/* Breaks the barrier: current and later waits get -CO_EBROKEN until
 * co_barrier_reset. 0, or -CO_EWRONGLOOP. */
CO_API int co_barrier_abort(co_barrier *b);
CO_API unsigned co_barrier_parties(const co_barrier *b);
CO_API unsigned co_barrier_n_waiting(const co_barrier *b);
CO_API bool co_barrier_broken(const co_barrier *b);

/* ---- co_queue (asyncio.Queue, LifoQueue, PriorityQueue) ---------------------------
 * Items are void * values (pointers, or integers cast through intptr_t);
 * the queue never dereferences them. put suspends while the queue is full,
 * get while it is empty; both serve their waiters in FIFO order. A put
 * wakes the first waiting getter and keeps an item for it, which no task
 * coming later can take; the getter gets what a get returns when it runs
 * (asyncio's rule: a LIFO getter woken by put(5), put(1) gets 1).
 *
 * Ownership: an item belongs to the queue from a successful put until a
 * successful get. Items the queue drops (co_queue_shutdown immediate,
 * co_queue_destroy) go to opts.drop, if given. */

typedef enum co_queue_order {
    CO_QUEUE_FIFO = 0,   /* asyncio.Queue: first in, first out */
    CO_QUEUE_LIFO,       /* asyncio.LifoQueue: last in, first out */
    CO_QUEUE_PRIORITY,   /* asyncio.PriorityQueue: smallest first (opts.cmp);
                            items that compare equal come out in put order */
} co_queue_order;

/* Zero-initialise and set what you need; zero is an unbounded FIFO. */
typedef struct co_queue_opts {
    co_queue_order order;
    size_t maxsize;   /* 0: unbounded */
    /* CO_QUEUE_PRIORITY (required there, NULL otherwise): compares two
     * items, < 0 when a comes out before b (qsort-style, but on the items
     * themselves, not pointers to them). */
    int (*cmp)(const void *a, const void *b);
    /* Called with each item the queue drops (may be NULL). */
    void (*drop)(void *item, void *arg);
    void *drop_arg;
} co_queue_opts;

/* opts may be NULL (unbounded FIFO). 0, or -EINVAL (unknown order; cmp
 * missing for CO_QUEUE_PRIORITY or given for another order). Allocates
 * nothing: the item buffer grows on demand. */
CO_API int co_queue_init(co_queue *q, const co_queue_opts *opts);
/* Wakes waiters (-CO_ECLOSED), drops the items left (opts.drop), frees the
 * buffer. 0, or -CO_EWRONGLOOP (as co_mutex_destroy). */
CO_API int co_queue_destroy(co_queue *q);
CO_API co_queue *co_queue_new(const co_queue_opts *opts);   /* NULL with errno ENOMEM or EINVAL */
CO_API int co_queue_free(co_queue *q);                      /* destroy + free; NULL is fine */

/* Puts item, suspending while the queue is full. 0, or:
 *   -ECANCELED     cancelled (pending at the call, or while waiting): the
 *                  item was not put, the caller still owns it
 *   -CO_ESHUTDOWN  the queue is shut down (before the call, or while waiting)
 *   -ENOMEM        growing the item buffer failed
 *   -CO_ENOTASK    not called from a task
 *   -CO_EWRONGLOOP the queue belongs to another loop or thread
 *   -CO_ECLOSED    the queue was destroyed while waiting */
CO_API int co_queue_put(co_queue *q, void *item);
/* Takes the next item into *item, suspending while the queue is empty.
 * 0, or:
 *   -ECANCELED     cancelled (pending at the call, or while waiting): no
 *                  item was taken
 *   -CO_ESHUTDOWN  the queue is shut down and empty (a graceful shutdown
 *                  lets gets drain the items left first)
 *   -EINVAL        item is NULL
 *   -CO_ENOTASK    not called from a task
 *   -CO_EWRONGLOOP the queue belongs to another loop or thread
 *   -CO_ECLOSED    the queue was destroyed while waiting */
CO_API int co_queue_get(co_queue *q, void **item);
/* put / get that never suspend. 0, or:
 *   -EAGAIN        full (try_put) / empty (try_get)
 *   -CO_ESHUTDOWN  shut down (try_put); shut down and empty (try_get)
 *   -ENOMEM        (try_put) growing the item buffer failed
 *   -EINVAL        (try_get) item is NULL
 *   -CO_EWRONGLOOP the queue belongs to another loop or thread */
CO_API int co_queue_try_put(co_queue *q, void *item);
CO_API int co_queue_try_get(co_queue *q, void **item);
/* Suspends until every item ever put has been matched by a
 * co_queue_task_done (returns at once if so). 0, or:
 *   -ECANCELED     cancelled (pending at the call, while waiting, or after
 *                  the wake-up but before the task resumed)
 *   -CO_ENOTASK    not called from a task
 *   -CO_EWRONGLOOP the queue belongs to another loop or thread
 *   -CO_ECLOSED    the queue was destroyed while waiting */
CO_API int co_queue_join(co_queue *q);
/* A consumer finished with an item it got. 0, or:
 *   -EINVAL        called more times than items were put
 *   -CO_EWRONGLOOP the queue belongs to another loop or thread */
CO_API int co_queue_task_done(co_queue *q);
/* Python 3.13's Queue.shutdown. From now on puts fail with -CO_ESHUTDOWN
 * (waiting putters are woken with it; a putter granted a slot but not yet
 * resumed fails too). Graceful (immediate false): gets drain the items
 * left, then fail with -CO_ESHUTDOWN; waiting getters (the queue is empty)
 * get it at once. Immediate: the items left are dropped (opts.drop), each
 * counting as done for co_queue_join, and every waiting getter gets
 * -CO_ESHUTDOWN. A get that was handed an item before the shutdown still
 * returns it. Calling it again is harmless (graceful may become
 * immediate). 0, or -CO_EWRONGLOOP. */
CO_API int co_queue_shutdown(co_queue *q, bool immediate);
/* Items in the queue (asyncio qsize), including ones handed to a getter
 * that has not resumed yet. */
CO_API size_t co_queue_size(const co_queue *q);
CO_API size_t co_queue_maxsize(const co_queue *q);
CO_API bool co_queue_empty(const co_queue *q);
/* Would a put wait now? (also counts slots granted to waiting putters) */
CO_API bool co_queue_full(const co_queue *q);

#ifdef __cplusplus
}
#endif
#endif
