/* corio/core.h — loops, tasks, futures, callbacks, timers, cancellation.
 *
 * The model is asyncio's: one event loop per thread; tasks are coroutines
 * (functions running on their own stack) pinned to the loop that spawned
 * them; a task suspends at co_sleep / co_join / co_yield / any I/O call and
 * the loop runs others meanwhile. Everything in this header is used from the
 * thread that owns the loop; cross-thread entry points come with the
 * threads layer.
 *
 * Ownership, in one place:
 *   - co_loop: created by co_loop_new, freed by co_loop_free (or co_run).
 *     It belongs to one thread at a time: the creator, until another
 *     thread runs, closes or frees it while it is not running, which makes
 *     that thread its owner (asyncio: new_event_loop() in main, then
 *     Thread(target=loop.run_forever)). Other threads reach it only
 *     through corio/thread.h, which says how they keep it alive.
 *   - co_task / co_future: refcounted. co_spawn and co_future_new return a
 *     handle holding one reference; release it with co_task_release when
 *     done with it (before or after the task finishes). A running task
 *     also holds a reference to itself, so dropping the handle early does
 *     not stop or free it ("fire and forget"). A handle still held when
 *     its loop is freed stays readable (state, result, name) and is freed
 *     by its last co_task_release. One never released is reported by name
 *     when the loop is freed in debug mode (CORIO_DEBUG=1) and in the ASan
 *     build (LeakSanitizer finds it too).
 *   - releasing once more than retained is a bug corio reports ("task
 *     Task-7 was already freed"), then ignores, while the freed struct is
 *     still held aside: always in debug mode (freed structs are not reused
 *     there, up to 4096 of them), and in other builds until a new task
 *     reuses the memory. The ASan build frees task structs at once, so
 *     AddressSanitizer reports any use after free.
 *   - co_handle (from co_call_soon / co_call_later / co_call_at): a small
 *     value, not an allocation; cancelling a handle that already ran or was
 *     cancelled is harmless while its loop lives.
 *   - strings returned by co_task_name / co_task_message are owned by the
 *     task and live as long as it does.
 *
 * NULL arguments: a call returning int returns -EINVAL (co_loop_free(NULL)
 * returns 0: nothing to free); one returning a pointer returns NULL with
 * errno EINVAL; co_task_retain / co_task_release / co_loop_stop do
 * nothing; the accessors answer as each one's comment says
 * (co_task_state: -EINVAL as a co_state, which is no state).
 */
#ifndef CORIO_CORE_H
#define CORIO_CORE_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Timeouts (every `double timeout` in corio, asyncio's rule): seconds from
 * now; `<= 0` has already expired (a call whose result is at hand still
 * returns it: a poll); CO_FOREVER means no limit; NaN is -EINVAL; a
 * duration too long for the clock is CO_FOREVER. In option structs, 0
 * means "the default" (so a zeroed struct is the default), and a negative
 * value has expired. */
#define CO_FOREVER INFINITY

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CO_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CO_PRINTF(f, a)
#endif

typedef struct co_loop co_loop;
typedef struct co_task co_task;
/* One type, two names: a future is a task that runs no function (asyncio:
 * Task is a Future). Every call taking a co_task takes a co_future. */
typedef struct co_task co_future;

/* A task's body. Its return value is the task's result. */
typedef void *(*co_fn)(void *arg);
/* A plain callback (co_call_soon & co). */
typedef void (*co_cb)(void *arg);
/* A done-callback: the finished task (or future) and the caller's arg. */
typedef void (*co_done_cb)(co_task *t, void *arg);

typedef enum co_state {
    CO_PENDING,   /* not started yet, or suspended */
    CO_RUNNING,   /* executing right now (it is co_current()) */
    CO_DONE,      /* finished with a value */
    CO_FAILED,    /* finished with an error and a message (co_fail) */
    CO_CANCELLED  /* finished after a cancel request */
} co_state;

/* One finished task, as co_task_result (and gather/wait) report it. */
typedef struct co_result {
    co_state state;   /* CO_DONE, CO_FAILED or CO_CANCELLED */
    void *value;      /* CO_DONE: what the task returned */
    int err;          /* CO_FAILED: negative error; CO_CANCELLED: -ECANCELED; else 0 */
    const char *msg;  /* failure or cancel message (may be NULL), owned by the task */
    double time;      /* when it finished: co_time() as of that loop turn */
} co_result;

/* ---- loops ------------------------------------------------------------ */

/* Options for co_loop_new; zero-initialise and set what you need. */
typedef struct co_loop_opts {
    /* Virtual clock (trio's MockClock, Go's synctest): time starts at 0
     * and, whenever no task is runnable and no I/O is awaited, jumps to the
     * next timer. Timing tests run in microseconds and deterministically.
     * The environment variable CORIO_VIRTUAL_CLOCK=1 turns it on too. */
    bool virtual_clock;
    /* Debug mode (also CORIO_DEBUG=1): report every task step or callback
     * that holds the loop longer than slow_step seconds. */
    bool debug;
    double slow_step;           /* seconds; 0 means 0.1 */
    size_t stack_size;          /* default task stack size; 0 means 256 KiB
                                   (more than 1 GiB is taken as 1 GiB) */
    /* Timers fire at or after their deadline, and by default the loop wakes
     * on whole milliseconds of its clock (asyncio's and libuv's resolution),
     * so a burst of timers costs one wake-up per millisecond, not one per
     * timer. true: wake at the exact nanosecond (more wake-ups). */
    bool precise_timers;
    /* Where the loop reports problems nobody else will see: errors never
     * retrieved, slow steps, tasks that would not finish at close, leaked
     * handles. NULL means: print "corio: <msg>" on stderr. */
    void (*report)(co_loop *loop, const char *msg, void *arg);
    void *report_arg;
} co_loop_opts;

/* A new loop (opts may be NULL). It becomes this thread's current loop if
 * the thread has none. Returns NULL only when out of memory or file
 * descriptors; errno then says which. */
CO_API co_loop *co_loop_new(const co_loop_opts *opts);

/* Closes the loop if it is not closed yet, then frees it. Returns the
 * result of that close (0 if it was already closed); on -CO_ERUNNING
 * nothing was freed. */
CO_API int co_loop_free(co_loop *loop);

/* Runs the loop until task t is finished; returns what co_join would:
 *   0            t finished with a value (stored in *value if not NULL)
 *   <0           t's error (CO_FAILED) or -ECANCELED (CO_CANCELLED)
 *   -EINTR       co_loop_stop came first (before or during the run): the
 *                loop returned with t unfinished; run again to go on
 *   -CO_ERUNNING a loop is already running on this thread (or a task calls
 *                it), or this loop is running on another thread
 *   -CO_EWRONGLOOP t belongs to another loop
 *   -CO_ECLOSED  the loop is closed
 *   -EINVAL      loop or t is NULL
 * Called from a thread other than the loop's owner while the loop is not
 * running, it makes the calling thread the owner (see Ownership). */
CO_API int co_loop_run_until_complete(co_loop *loop, co_task *t, void **value);

/* Runs the loop until co_loop_stop (from another thread: send it with
 * co_loop_call_threadsafe). Returns 0, or -CO_ERUNNING, -CO_ECLOSED as
 * above; takes the loop over from another thread as above. */
CO_API int co_loop_run_forever(co_loop *loop);

/* Asks the running loop to return after the current iteration. Called
 * while it is not running, the next run returns after one iteration. */
CO_API void co_loop_stop(co_loop *loop);

/* Cancels every pending task, runs the loop until they have finished,
 * drops pending callbacks and timers, and closes the loop for new work.
 * Returns 0, or:
 *   -EBUSY       some tasks would not finish (each is reported by name)
 *   -CO_ERUNNING called while the loop runs (e.g. from one of its tasks, or
 *                on another thread), or while another loop runs on this
 *                thread and this one has tasks to drain
 * From another thread while the loop is not running, it takes the loop
 * over first (see Ownership). */
CO_API int co_loop_close(co_loop *loop);

/* This thread's current loop, or NULL. */
CO_API co_loop *co_loop_current(void);
/* Makes loop the current loop of this thread (NULL clears it). */
CO_API void co_loop_set_current(co_loop *loop);

/* Lists the loop's unfinished tasks (asyncio.all_tasks): stores up to cap
 * of them in out (borrowed, not retained) and returns how many there are.
 * Plain futures are not tasks and are not listed. 0 for a NULL loop. */
CO_API size_t co_all_tasks(co_loop *loop, co_task **out, size_t cap);

/* asyncio.run: a new loop, main(arg) as its main task named "main", run
 * until it finishes, then cancel and drain whatever is left, close, free.
 * The first SIGINT or SIGTERM cancels the main task (SIGINT is taken
 * unless the program ignores it, e.g. a shell's background job inherits
 * SIG_IGN, as Python does; SIGTERM only if left at its default) ("interrupted by SIGINT" /
 * "terminated by SIGTERM"; its cleanup runs); a second one ends the
 * process at once. *result (if not NULL) gets main's value.
 * Returns an exit status for main(): 0 main returned a value, 1 it failed
 * (its error is printed on stderr) or could not start, 130 it was
 * cancelled by SIGINT, 143 by SIGTERM, 1 it was cancelled otherwise. */
CO_API int co_run(co_fn main, void *arg, void **result);

/* ---- clock -------------------------------------------------------------- */

/* The current loop's clock in nanoseconds (monotonic, or virtual); 0 when
 * the thread has no loop. Cached: refreshed at every turn of the loop and
 * whenever a task starts a sleep (so a sleep lasts at least what was asked
 * from the moment of the call). */
CO_API int64_t co_now(void);
/* The same in seconds (asyncio loop.time()). */
CO_API double co_time(void);

/* ---- tasks -------------------------------------------------------------- */

typedef struct co_task_opts {
    const char *name;    /* NULL: "Task-N", numbered per process as asyncio does */
    size_t stack_size;   /* 0: the loop's default (256 KiB virtual, lazily committed);
                            at most 1 GiB */
} co_task_opts;

/* asyncio.create_task: a new task running fn(arg) on the current loop. It
 * starts at the loop's next turn, in FIFO order. Returns a handle holding
 * one reference (see top of file), or NULL with errno set:
 *   CO_ENOLOOP (no current loop), CO_ECLOSED (loop closed), ENOMEM,
 *   EINVAL (fn NULL, or opts->stack_size over 1 GiB: reported). */
CO_API co_task *co_spawn(co_fn fn, void *arg);
CO_API co_task *co_spawn_opts(co_fn fn, void *arg, const co_task_opts *opts);

/* await t: suspends until t is finished. Returns
 *   0             t returned a value (stored in *value if value != NULL)
 *   err           t failed with err (co_task_message(t) has the message)
 *   -ECANCELED    t was cancelled, or the calling task was cancelled
 *   -EDEADLK      t is the calling task
 *   -CO_ENOTASK   not called from a task (use co_loop_run_until_complete)
 *   -CO_EWRONGLOOP t belongs to another loop
 *   -CO_ECLOSED   t outlived its loop (freed) without finishing
 *   -EINVAL       t is NULL
 * Reading the outcome marks the error as retrieved. */
CO_API int co_join(co_task *t, void **value);

/* Requests cancellation (msg may be NULL; it is copied). The task sees
 * -ECANCELED at the suspension point it sits in and at every later one
 * (sticky) — also when it was woken but has not resumed yet — runs its
 * cleanup, and ends CO_CANCELLED. A task cancelled before it first ran
 * still runs its body, so resources handed to it are
 * released. A plain future is cancelled at once. Returns
 *   1   the request was made (the task or future was not finished)
 *   0   already finished: nothing to do
 *   -CO_EWRONGLOOP called from another thread
 *   -EINVAL t is NULL */
CO_API int co_cancel(co_task *t, const char *msg);

/* Is a cancel request pending for the calling task? (false outside tasks) */
CO_API bool co_cancelled(void);

/* One more reference / one less (the last frees the task once finished).
 * NULL: nothing. On a task already freed: reported, ignored (see top). */
CO_API void co_task_retain(co_task *t);
CO_API void co_task_release(co_task *t);

/* t's state; (co_state)-EINVAL for NULL (co_state_name says "INVALID"). */
CO_API co_state co_task_state(const co_task *t);
/* "PENDING", "RUNNING", "DONE", "FAILED", "CANCELLED". */
CO_API const char *co_state_name(co_state s);
/* 0, the failure's error, or -ECANCELED; -CO_EINVALSTATE if not finished,
 * -EINVAL if t is NULL. Marks the error as retrieved. */
CO_API int co_task_error(co_task *t);
/* The failure message, or the cancel message; NULL if none (or t NULL). */
CO_API const char *co_task_message(const co_task *t);
/* "Task-N", the name given in co_task_opts, or "main" for co_run's task;
 * "(null)" for NULL. */
CO_API const char *co_task_name(const co_task *t);
/* Renames the task (copies name). 0, or -ENOMEM, -EINVAL (NULL). */
CO_API int co_task_set_name(co_task *t, const char *name);
/* The outcome of a finished task (state CO_PENDING if not finished; for
 * NULL, state (co_state)-EINVAL and err -EINVAL). Marks the error as
 * retrieved. */
CO_API co_result co_task_result(co_task *t);
/* The task being executed, or NULL outside tasks. */
CO_API co_task *co_current(void);
/* The loop a task or future belongs to (NULL for NULL, or once its loop
 * was freed). */
CO_API co_loop *co_task_loop(const co_task *t);

/* Records a failure of the calling task: it will end CO_FAILED with err
 * (negative) and the formatted message. Returns NULL, so a task fails with
 *     return co_fail(-EIO, "connect to %s failed", host);
 * Called outside a task it does nothing and returns NULL. co_fail with
 * -ECANCELED ends the task CO_CANCELLED instead. */
CO_API void *co_fail(int err, const char *fmt, ...) CO_PRINTF(2, 3);

/* Suspends the calling task for the given time / until the given loop time
 * (co_time() scale). 0, or -ECANCELED, -CO_ENOTASK, -ENOMEM (growing the
 * timer heap failed). A negative or zero duration still yields once, as
 * asyncio.sleep(0). */
CO_API int co_sleep(double seconds);
CO_API int co_sleep_ns(int64_t ns);
CO_API int co_sleep_until(double when);
/* Lets every other ready task run once (asyncio.sleep(0)).
 * 0, or -ECANCELED, -CO_ENOTASK. */
CO_API int co_yield(void);

/* ---- futures (loop.create_future) ------------------------------------------ */

/* A pending future on the current loop, completed by whoever holds it.
 * NULL with errno CO_ENOLOOP, CO_ECLOSED or ENOMEM. */
CO_API co_future *co_future_new(void);
/* Completes f with a value / an error (negative) and message. Done-callbacks
 * and waiters are scheduled. 0, or:
 *   -CO_EINVALSTATE f is already finished
 *   -EINVAL         f is a task (tasks finish by returning), or err >= 0
 *   -CO_EWRONGLOOP  called from another thread
 *   -CO_ECLOSED     f's loop is closed or was freed */
CO_API int co_future_set_result(co_future *f, void *value);
CO_API int co_future_set_error(co_future *f, int err, const char *fmt, ...) CO_PRINTF(3, 4);
/* Is t finished (done, failed or cancelled)? false for NULL. */
CO_API bool co_task_done(const co_task *t);

/* ---- done callbacks ------------------------------------------------------- */

/* add_done_callback + functools.partial: cb(t, arg) is scheduled through the
 * loop when t finishes (at once if it already has), in registration order,
 * each holding a reference to t until it has run. 0, or -ENOMEM,
 * -CO_EWRONGLOOP, -CO_ECLOSED (t's loop is closed or freed), -EINVAL (NULL). */
CO_API int co_on_done(co_task *t, co_done_cb cb, void *arg);
/* Removes every registration of (cb, arg) not yet scheduled; returns how
 * many were removed (asyncio remove_done_callback), or -CO_EWRONGLOOP,
 * -EINVAL (t NULL). */
CO_API int co_on_done_remove(co_task *t, co_done_cb cb, void *arg);

/* ---- plain callbacks and timers ------------------------------------------- */

/* What co_call_* return: a value, not an allocation. Keep it to cancel. */
typedef struct co_handle {
    void *p;
    uint64_t gen;
} co_handle;

/* Schedules fn(arg) on the current loop: at its next turn / delay seconds
 * after co_time() (the loop's clock as of this turn, as libuv counts) / at
 * loop time when. Callbacks run on the loop's own stack and
 * must not suspend (they may spawn tasks). Equal times run in the order
 * they were scheduled. *h (if not NULL) gets a handle for co_handle_cancel.
 * 0, or -CO_ENOLOOP, -CO_ECLOSED, -ENOMEM, -EINVAL (delay is NaN). */
CO_API int co_call_soon(co_cb fn, void *arg, co_handle *h);
CO_API int co_call_later(double delay, co_cb fn, void *arg, co_handle *h);
CO_API int co_call_at(double when, co_cb fn, void *arg, co_handle *h);
/* Cancels a scheduled callback: 1 if it was pending and is now cancelled,
 * 0 if it already ran or was cancelled, -CO_EWRONGLOOP from another thread. */
CO_API int co_handle_cancel(co_handle h);

#ifdef __cplusplus
}
#endif
#endif
