/* corio/thread.h — thread pools, blocking work off the loop, thread-safe
 * futures, loops in other threads, and one loop per core.
 *
 * asyncio names, C shapes:
 *   asyncio.to_thread / loop.run_in_executor -> co_to_thread / co_run_in_executor
 *                                              (a task), or co_run_blocking(_on/_ex)
 *                                              (waits in the calling task)
 *   asyncio.wrap_future                      -> co_wrap_tsfuture
 *   concurrent.futures.ThreadPoolExecutor    -> co_pool (co_pool_submit)
 *   concurrent.futures.Future                -> co_tsfuture
 *   loop.call_soon_threadsafe                -> co_loop_call_threadsafe
 *   asyncio.run_coroutine_threadsafe         -> co_loop_submit / co_spawn_on
 *
 * Threads: every function here may be called from any thread unless its
 * comment says otherwise. Functions that can suspend (co_run_blocking*, and
 * co_tsfuture_wait when called from a task) suspend only the calling task;
 * the loop keeps serving the others.
 *
 * Ownership:
 *   - co_pool: co_pool_new's caller owns it and frees it with co_pool_free.
 *     The default pool (co_pool_default) is the library's: never free it.
 *   - co_tsfuture: refcounted. Every function returning one returns one
 *     reference; drop it with co_tsfuture_release. The producer (pool
 *     thread, loop, process pool) holds its own reference until it
 *     completes the future, so releasing early never loses the work.
 *   - a future's value: if the future has a result destructor (the
 *     free_result argument of the _ex calls) and nobody ever read the value
 *     (co_tsfuture_wait / co_tsfuture_result returning 0), the destructor
 *     runs on it when the future is freed. A value that was read belongs
 *     to the reader.
 *   - co_runtime: co_runtime_new's caller owns it; co_runtime_free stops it.
 *   - co_loop, seen from other threads: a loop belongs to one thread at a
 *     time, the one that created it, or the one that last ran, closed or
 *     freed it while it was not running (asyncio: a loop made in main and
 *     run with loop.run_forever in a thread; see co_loop_run_forever). Its
 *     owner frees it (co_loop_free, or co_thread_loop_stop for a thread
 *     loop). A thread that keeps the pointer to submit to it must hold a
 *     reference (co_loop_retain, taken while the loop is surely alive,
 *     e.g. before the thread is handed the pointer): the memory then lives
 *     on after the free, and co_loop_call_threadsafe / co_loop_submit on it
 *     return -CO_ECLOSED, until co_loop_release drops the last reference.
 */
#ifndef CORIO_THREAD_H
#define CORIO_THREAD_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A function run on a pool thread: gets arg, returns the result. It may
 * call co_blocking_cancelled() to stop early and co_blocking_fail() to
 * report an error; it must not call task functions (it is not a task). */
typedef void *(*co_blocking_fn)(void *arg);

/* ---- thread-safe futures (concurrent.futures.Future) ------------------------
 * States (co_state): CO_PENDING (queued), CO_RUNNING (a thread or task is
 * working on it), then one of CO_DONE (value), CO_FAILED (error) or
 * CO_CANCELLED. Once finished, never changes again. */
typedef struct co_tsfuture co_tsfuture;
typedef void (*co_tsfuture_cb)(co_tsfuture *f, void *arg);

/* A future the caller completes itself with co_tsfuture_set_result /
 * co_tsfuture_set_error, from any thread. NULL with errno ENOMEM. */
CO_API co_tsfuture *co_tsfuture_new(void);

/* Waits until f is finished or timeout seconds passed (CO_FOREVER:
 * no limit). Called from a task, it suspends only that task; from any other
 * thread (or a loop callback, which it then blocks: avoid) it blocks.
 *   0              done; *value (if not NULL) gets the value
 *   <0             the error f failed with (co_tsfuture_message tells more)
 *   -ECANCELED     f was cancelled, or the waiting task was cancelled
 *                  (co_tsfuture_state tells which; f is left as it was)
 *   -ETIMEDOUT     timeout passed first (f is left as it was)
 *   -EINVAL        f is NULL or timeout is NaN
 *   -EDEADLK       called from the thread that must complete f (a pool
 *                  thread waiting on its own job) */
CO_API int co_tsfuture_wait(co_tsfuture *f, double timeout, void **value);

/* Without waiting: what co_tsfuture_wait would return, or -EAGAIN while f
 * is not finished. */
CO_API int co_tsfuture_result(co_tsfuture *f, void **value);

/* Cancels f if it has not started: returns 1 (it is CO_CANCELLED, its
 * done-callbacks ran, the work will never run). A running job cannot be
 * stopped by force; the request is recorded (co_blocking_cancelled()
 * returns true in it, a task submitted with co_loop_submit is cancelled)
 * and 0 is returned, as for a finished f. -EINVAL if f is NULL. */
CO_API int co_tsfuture_cancel(co_tsfuture *f);

CO_API co_state co_tsfuture_state(const co_tsfuture *f);
CO_API bool co_tsfuture_done(const co_tsfuture *f);
/* The failure message (NULL if none), valid while the caller holds f. */
CO_API const char *co_tsfuture_message(const co_tsfuture *f);

/* Calls fn(f, arg) once f is finished: at once, in the caller, if it
 * already is; otherwise on the thread that finishes it (a pool thread, a
 * loop's thread), which must not be blocked long. 0, -ENOMEM, -EINVAL. */
CO_API int co_tsfuture_add_done_callback(co_tsfuture *f, co_tsfuture_cb fn, void *arg);

/* Completing a future made by co_tsfuture_new (or a running one):
 * 0, or -CO_EINVALSTATE if it is already finished (a cancelled future
 * stays cancelled; the value is then the caller's again). */
CO_API int co_tsfuture_set_result(co_tsfuture *f, void *value);
CO_API int co_tsfuture_set_error(co_tsfuture *f, int err, const char *msg);
/* concurrent.futures' set_running_or_notify_cancel: 0 (now CO_RUNNING) or
 * -ECANCELED if it was cancelled first (then do not run the work). */
CO_API int co_tsfuture_set_running(co_tsfuture *f);
/* The destructor for an unread value (see Ownership). Set it before the
 * future can finish. */
CO_API void co_tsfuture_set_free_result(co_tsfuture *f, void (*free_result)(void *));

CO_API co_tsfuture *co_tsfuture_retain(co_tsfuture *f);
CO_API void co_tsfuture_release(co_tsfuture *f);

/* ---- thread pools ---------------------------------------------------------- */
typedef struct co_pool co_pool;

/* A pool of nthreads threads (0: the default size: CORIO_THREADS if set,
 * else min(32, cores + 4), Python's default executor). Threads start at
 * once; the pool keeps its size (bound CPU-bound work with it). NULL with
 * errno ENOMEM, EAGAIN (no threads) or EINVAL (nthreads > 1024). */
CO_API co_pool *co_pool_new(size_t nthreads);

/* The process-wide default pool, started on first use, sized as above or
 * by co_pool_set_default_size. NULL with errno as for co_pool_new.
 * Files and DNS run on it, so stuck jobs must not starve them: when its
 * queue makes no progress for a tick (20 ms) while every thread is busy,
 * it starts one thread more (up to 512 in all); threads above its size
 * leave after 10 s idle. co_pool_size reports the size, not the extras. */
CO_API co_pool *co_pool_default(void);
/* Sets the default pool's size: before it starts, or resizes it. */
CO_API int co_pool_set_default_size(size_t nthreads);

/* Grows or shrinks the pool to nthreads (1..1024). Growing starts threads
 * at once; shrinking lets idle threads exit now and busy ones after their
 * current job. 0, -EINVAL, -CO_ESHUTDOWN, -EAGAIN (thread creation). */
CO_API int co_pool_resize(co_pool *p, size_t nthreads);
CO_API size_t co_pool_size(const co_pool *p);   /* its target size */
CO_API size_t co_pool_queued(const co_pool *p); /* jobs waiting for a thread */

enum {
    CO_POOL_WAIT = 0,          /* run every queued job, then stop */
    CO_POOL_CANCEL_QUEUED = 1  /* cancel the queued jobs; running ones finish */
};
/* Stops accepting jobs (later submissions get -CO_ESHUTDOWN), finishes or
 * cancels the queued ones as `how` says, waits for the running ones and
 * joins the threads. 0, -EINVAL, -EDEADLK (called from one of its threads).
 * Calling it again is harmless. */
CO_API int co_pool_shutdown(co_pool *p, int how);
/* co_pool_shutdown(p, CO_POOL_WAIT), then frees p. Not the default pool. */
CO_API void co_pool_free(co_pool *p);

/* Runs fn(arg) on pool p (NULL: the default pool), from any thread.
 * Returns a future for the result; NULL with errno ENOMEM, EINVAL (fn
 * NULL) or CO_ESHUTDOWN (the pool is shut down). */
CO_API co_tsfuture *co_pool_submit(co_pool *p, co_blocking_fn fn, void *arg);
/* Same, with a destructor for a result nobody reads (see Ownership). */
CO_API co_tsfuture *co_pool_submit_ex(co_pool *p, co_blocking_fn fn, void *arg,
                                      void (*free_result)(void *));

/* From a task: runs fn(arg) on the default pool and suspends the task
 * until it returns; the loop serves other tasks meanwhile.
 *   0              *result (if not NULL) gets fn's return value
 *   <0             the error fn reported with co_blocking_fail
 *   -ECANCELED     the task was cancelled while waiting: a job that had
 *                  not started never runs; a running one goes on (it can
 *                  poll co_blocking_cancelled) and its late result is
 *                  passed to free_result (_ex), never leaked
 *   -CO_ENOTASK    not called from a task
 *   -CO_ESHUTDOWN  the pool is shut down
 *   -ENOMEM, -EINVAL (fn NULL) */
CO_API int co_run_blocking(co_blocking_fn fn, void *arg, void **result);
CO_API int co_run_blocking_on(co_pool *p, co_blocking_fn fn, void *arg, void **result);
CO_API int co_run_blocking_ex(co_pool *p, co_blocking_fn fn, void *arg,
                              void (*free_result)(void *), void **result);

/* ---- blocking work as a task (asyncio.to_thread, run_in_executor, wrap_future) ---------
 * These return a co_task * (a future of the calling thread's loop) that
 * co_join, co_gather, co_wait, co_wait_for, co_as_completed and co_shield
 * accept like any task, so five blocking calls gather in one line:
 *     co_task *ts[5];
 *     for (int i = 0; i < 5; i++) ts[i] = co_to_thread(work, &in[i]);
 *     co_gather(ts, 5, results, 0);      (then co_task_release each)
 * Loop thread only; release the handle with co_task_release. The task
 * finishes with the job's value, its co_blocking_fail error and message, or
 * CO_CANCELLED. Cancelling the task (co_cancel, or a gather/wait_for that
 * gives up) finishes it at once, as any future; the job then never runs if
 * it had not started, and otherwise runs on (co_blocking_cancelled() tells
 * it) and its late result goes to free_result, never leaked. While one is
 * pending, the loop counts it as work on another thread, as it does for a
 * task in co_run_blocking (the virtual clock waits a little before jumping).
 * If the loop is freed first, the handle stays CO_PENDING and the job is
 * cancelled as above (nobody can read its result any more). */

/* asyncio.to_thread(fn, arg): fn(arg) on the default pool. NULL with errno:
 *   EINVAL (fn NULL), CO_ENOLOOP, CO_ECLOSED (loop closing), CO_ESHUTDOWN,
 *   ENOMEM. */
CO_API co_task *co_to_thread(co_blocking_fn fn, void *arg);
/* loop.run_in_executor(p, fn, arg): the same on pool p (NULL: the default
 * pool), with a destructor for a result nobody will read (may be NULL). */
CO_API co_task *co_run_in_executor(co_pool *p, co_blocking_fn fn, void *arg,
                                   void (*free_result)(void *));
/* asyncio.wrap_future: a task that finishes with f's outcome (at the loop's
 * next turn if f is finished already). It holds its own reference to f:
 * the caller keeps (and releases) theirs. Reading the task's value takes
 * the value from f (f's free_result no longer applies to it). Cancelling
 * the task cancels f (co_tsfuture_cancel). NULL with errno: EINVAL (f
 * NULL), CO_ENOLOOP, CO_ECLOSED, ENOMEM. */
CO_API co_task *co_wrap_tsfuture(co_tsfuture *f);

/* Inside a pool job: has the job been cancelled (its waiter gave up, or
 * co_tsfuture_cancel was called on its future)? false outside a job. */
CO_API bool co_blocking_cancelled(void);
/* Inside a pool job: make the job fail with err (< 0) and an optional
 * message; its return value is then ignored (and passed to free_result).
 * -EINVAL outside a job or for err >= 0. */
CO_API int co_blocking_fail(int err, const char *fmt, ...) CO_PRINTF(2, 3);

/* ---- loops in other threads ---------------------------------------------------- */

/* Keeps loop's memory valid for the caller (see Ownership above) until the
 * matching co_loop_release, even if its owner frees it meanwhile: calls on
 * a freed loop then return -CO_ECLOSED. Returns loop. Take the reference
 * while the loop is known to be alive. */
CO_API co_loop *co_loop_retain(co_loop *loop);
/* Drops a reference from co_loop_retain (never the owner's: that is what
 * co_loop_free drops; an unmatched release is reported and ignored). */
CO_API void co_loop_release(co_loop *loop);

/* call_soon_threadsafe: fn(arg) runs on loop's thread, in a later turn, in
 * the order calls were made from each thread. Safe from any thread (the
 * loop's own included) and from many at once; never blocks. The loop need
 * not run yet: calls wait for the thread that runs it.
 *   0, -EINVAL (NULL), -CO_ECLOSED (the loop is closed or freed), -ENOMEM */
CO_API int co_loop_call_threadsafe(co_loop *loop, co_cb fn, void *arg);

/* run_coroutine_threadsafe: spawns fn(arg) as a task on loop, from any
 * thread, and returns a future for its result (its value, its error, or
 * CO_CANCELLED). Cancelling the future cancels the task. NULL with errno
 * EINVAL, CO_ECLOSED or ENOMEM. */
CO_API co_tsfuture *co_loop_submit(co_loop *loop, co_fn fn, void *arg);
/* The same, named for the many-loops case: hand work to another loop; a
 * task awaits it with co_tsfuture_wait. */
CO_API co_tsfuture *co_spawn_on(co_loop *loop, co_fn fn, void *arg);

/* A loop running forever in a new thread (opts may be NULL). Returns once
 * the loop runs; NULL with errno ENOMEM, EAGAIN, EMFILE. Feed it with
 * co_loop_call_threadsafe / co_loop_submit. */
CO_API co_loop *co_thread_loop_start(const co_loop_opts *opts);
/* Stops a loop started by co_thread_loop_start, from another thread:
 * refuses new calls (-CO_ECLOSED), runs the callbacks already queued,
 * gives its tasks `grace` seconds to finish (CO_FOREVER: no limit; <= 0: none), cancels the
 * rest, closes and frees the loop (its memory lives on while threads hold
 * co_loop_retain references), joins the thread.
 *   0, -EBUSY (a task would not finish even when cancelled: reported),
 *   -EINVAL (not a loop from co_thread_loop_start, or stopped already),
 *   -EDEADLK (called on the loop's own thread) */
CO_API int co_thread_loop_stop(co_loop *loop, double grace);

/* ---- one loop per core ----------------------------------------------------------- */
typedef struct co_runtime co_runtime;

/* nloops loops on as many threads (0: one per core). NULL with errno. */
CO_API co_runtime *co_runtime_new(size_t nloops, const co_loop_opts *opts);
CO_API size_t co_runtime_size(const co_runtime *rt);
/* Loop i (0 <= i < size), or for i < 0 the next one round-robin. NULL if
 * i is out of range. */
CO_API co_loop *co_runtime_loop(co_runtime *rt, int i);
/* Stops every loop as co_thread_loop_stop does (grace applies to each, in
 * parallel), then frees rt. 0 or the first error. Threads that may still
 * submit to its loops meanwhile hold co_loop_retain references. */
CO_API int co_runtime_free(co_runtime *rt, double grace);

#ifdef __cplusplus
}
#endif
#endif
