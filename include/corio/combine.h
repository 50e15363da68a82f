/* corio/combine.h — waiting on several tasks: gather, wait, as_completed,
 * wait_for, shield (asyncio's combinators, with their semantics), and
 * co_spawn_wait_for / co_spawn_shield, which spawn a function already
 * wrapped in wait_for or shield.
 *
 * Every function here takes tasks and futures alike, of the calling task's
 * loop, and must be called from a task (they suspend). The task arrays are
 * the caller's; the functions hold a reference to each task while they
 * wait, so a task released by someone else meanwhile stays valid.
 * Loop thread only.
 */
#ifndef CORIO_COMBINE_H
#define CORIO_COMBINE_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* co_gather flags. */
enum {
    CO_RETURN_ERRORS = 1 /* asyncio return_exceptions=True: failures and
                          * cancellations become results; wait for all */
};

/* asyncio.gather: waits for the n tasks and, if results is not NULL, fills
 * results[i] for each finished tasks[i] (state CO_PENDING for one that is
 * not). Reading a result marks its error as retrieved.
 * Without CO_RETURN_ERRORS, the first child to fail — a child cancelled on
 * its own counts as failing with -ECANCELED — ends the wait at once with
 * its error, and the siblings keep running (the caller still holds them).
 * If the calling task is cancelled while it waits, every unfinished child
 * is cancelled and waited for (their cleanup runs first) before
 * -ECANCELED is returned. Returns
 *   0             every task returned a value (or CO_RETURN_ERRORS)
 *   err           without CO_RETURN_ERRORS: the first failure's error
 *   -ECANCELED    the calling task was cancelled (results hold every child)
 *   -EINVAL       tasks NULL with n > 0, a NULL task, or unknown flags
 *   -CO_ENOTASK   not called from a task
 *   -EDEADLK      the calling task is among the tasks
 *   -CO_EWRONGLOOP a task belongs to another loop
 *   -ENOMEM       more than 8 tasks and no memory to track them */
CO_API int co_gather(co_task **tasks, size_t n, co_result *results, int flags);

/* co_wait `when` values (asyncio return_when). */
enum {
    CO_ALL_COMPLETED = 0,   /* every task finished */
    CO_FIRST_COMPLETED = 1, /* any task finished */
    CO_FIRST_ERROR = 2      /* any task FAILED (a cancelled one does not count,
                             * as in asyncio's FIRST_EXCEPTION), or all finished */
};

/* asyncio.wait: waits until `when` holds or timeout seconds pass (timeout
 * CO_FOREVER: no limit; <= 0: just look). Never cancels anything and never fails
 * because a task failed. done (capacity n, may be NULL) gets the finished
 * tasks in the order they finished (those already finished at the call
 * first, in the order given); pending (capacity n, may be NULL) the others
 * in the order given. A task given more than once counts once (asyncio
 * takes a set), in done or pending. The pointers are the caller's own (no
 * reference added). Each done task's co_task_result() has its state,
 * value or error and the time it finished. Returns
 *   0             when held, or the timeout passed (asyncio does not raise
 *                 either: look at *npending)
 *   -ECANCELED    the calling task was cancelled (the sets are filled too)
 *   -EINVAL       n == 0, NULL tasks, unknown `when`, NaN timeout
 *   -CO_ENOTASK / -EDEADLK / -CO_EWRONGLOOP / -ENOMEM as co_gather */
CO_API int co_wait(co_task **tasks, size_t n, int when, double timeout, co_task **done,
                   size_t *ndone, co_task **pending, size_t *npending);

/* asyncio.as_completed: an iterator, in caller storage, that yields the tasks
 * in the order they finish, each once even if given more than once, with
 * an optional overall timeout (seconds from init; CO_FOREVER: none; <= 0: expired).
 *     co_as_completed it;
 *     co_as_completed_init(&it, tasks, n, 10.0);
 *     while ((rc = co_as_completed_next(&it, &t)) == 0) { ... co_join(t, &v) ... }
 *     co_as_completed_fini(&it);
 * Always call fini, whatever next returned (it is harmless twice). */
typedef struct co_as_completed {
    void *_priv;
} co_as_completed;
/* 0, or -EINVAL, -CO_ENOLOOP (no loop on this thread), -CO_EWRONGLOOP,
 * -EDEADLK (the calling task is among the tasks), -ENOMEM. */
CO_API int co_as_completed_init(co_as_completed *it, co_task **tasks, size_t n, double timeout);
/* Stores the next finished task in *next (the caller's pointer from the
 * array). Returns
 *   0            *next is set
 *   1            every task was yielded
 *   -ETIMEDOUT   the overall timeout passed first (and on every later call)
 *   -ECANCELED   the calling task was cancelled
 *   -CO_ENOTASK / -CO_EWRONGLOOP / -EINVAL (not initialised) */
CO_API int co_as_completed_next(co_as_completed *it, co_task **next);
CO_API void co_as_completed_fini(co_as_completed *it);

/* asyncio.wait_for: waits for t at most timeout seconds (CO_FOREVER: no
 * limit; <= 0: at once, as asyncio).
 * On timeout, t is cancelled and waited for (its cleanup runs), then
 * -ETIMEDOUT is returned; if the calling task is cancelled, t is cancelled
 * and waited for too. When t finishes in the same loop turn as the timeout
 * fires, its result wins. Returns
 *   0            t returned a value (in *value if not NULL)
 *   err          t failed with err (also when it failed while being
 *                cancelled for the timeout)
 *   -ETIMEDOUT   the timeout passed; t has finished (cancelled)
 *   -ECANCELED   t was cancelled by someone else, or the caller was
 *   -EDEADLK      t is the calling task
 *   -EINVAL / -CO_ENOTASK / -CO_EWRONGLOOP */
CO_API int co_wait_for(co_task *t, double timeout, void **value);

/* asyncio.shield: a new future that finishes with t's outcome. Waiting on
 * it (co_join, co_gather, ...) and being cancelled cancels only the waiter:
 * t runs on to completion. If nobody can read the shield any more (it was
 * cancelled or released) when t finishes, t's error, unread, is reported as
 * never retrieved. The future holds a reference to t until t finishes;
 * release the returned handle with co_task_release. NULL with errno:
 *   EINVAL (t NULL), CO_ENOLOOP, CO_EWRONGLOOP, CO_ECLOSED, ENOMEM. */
CO_API co_future *co_shield(co_task *t);

/* ---- one call: spawn already wrapped ------------------------------------------
 * asyncio writes gather(wait_for(work(a), 5), shield(work(b))): each
 * wrapped coroutine is one element. These spawn fn(arg) wrapped the same
 * way and return a task to put in the array. Loop thread; release the
 * handle with co_task_release. */

/* asyncio.wait_for(fn(arg), timeout) as a task: runs fn(arg) in a task of
 * its own and waits for it as co_wait_for does. The returned task ends
 *   CO_DONE      with fn's value
 *   CO_FAILED    -ETIMEDOUT ("Task-N timed out after 5 s"): fn's task was
 *                cancelled and its cleanup ran; or fn's own error and message
 *   CO_CANCELLED it was cancelled: fn's task is cancelled and waited for
 *                first (cancelled before it ran: fn never starts)
 * NULL with errno: EINVAL (fn NULL, NaN timeout), CO_ENOLOOP, CO_ECLOSED,
 * ENOMEM. */
CO_API co_task *co_spawn_wait_for(co_fn fn, void *arg, double timeout);

/* asyncio.shield(fn(arg)): spawns fn(arg) and returns co_shield of it
 * (see co_shield): cancelling the returned future does not cancel fn's
 * task, which runs to the end. NULL with errno: EINVAL (fn NULL),
 * CO_ENOLOOP, CO_ECLOSED, ENOMEM (then fn's task, if spawned, is
 * cancelled). */
CO_API co_future *co_spawn_shield(co_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif
