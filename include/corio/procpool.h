/* corio/procpool.h — a pool of worker processes (Python's
 * multiprocessing.Pool) for CPU-bound or crash-prone work.
 *
 * A job names a function of the program (a string) and carries a byte
 * payload; its result comes back as bytes. A worker that crashes (a
 * signal, abort, exit) fails only the job it was running, with a message
 * naming the signal and the worker; the pool starts a replacement and goes
 * on. A job's timeout kills and replaces its worker.
 *
 * Workers are not fork()ed from the caller: each one is a fresh
 * posix_spawn of this program (/proc/self/exe) that a library constructor
 * turns into a worker before main() runs, so creating a pool from a
 * process that already runs threads is safe (docs/procpool.md).
 * Consequences:
 *   - job functions must be reachable by name in a fresh process: register
 *     them with CO_PROCPOOL_FN(fn) (works with libcorio.a), or export them
 *     (non-static) and link the program with -rdynamic;
 *   - a worker never runs main(): state set up there (globals, a parsed
 *     config) is not in the worker; pass what a job needs in its payload;
 *   - with libcorio.so only the -rdynamic lookup works, and the program's
 *     own constructors have not run in a worker.
 *
 * Python -> corio:
 *   Pool(n)                    co_procpool_new(n)
 *   Pool(n, maxtasksperchild=k) co_procpool_new_ex(&(co_procpool_opts){n, k})
 *   pool.apply(f, (x,))        co_procpool_apply
 *   pool.apply_async(f, (x,))  co_procpool_submit (a co_tsfuture)
 *   pool.map(f, xs, chunk)     co_procpool_map
 *   pool.imap(f, xs, chunk)    co_procpool_imap + co_procpool_iter_next
 *   pool.imap_unordered(...)   co_procpool_imap(..., CO_PROCPOOL_UNORDERED)
 *   close / terminate / join   co_procpool_close / _terminate / _join
 *
 * Threads: every function may be called from any thread and from many at
 * once. co_procpool_apply, co_procpool_map and co_procpool_join block a
 * plain thread; called from a task they suspend only that task.
 *
 * Ownership: co_procpool_new's caller owns the pool and frees it with
 * co_procpool_free. Result bytes are malloc'd; the caller frees them with
 * co_procpool_result_clear (or free(r.data)).
 */
#ifndef CORIO_PROCPOOL_H
#define CORIO_PROCPOOL_H

#include <stddef.h>

#include "core.h"
#include "thread.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A job function, run in a worker process: reads inlen bytes at in, and
 * on success stores a malloc'd result in *out and its size in *outlen
 * (or leaves *out NULL for an empty result) and returns 0. On failure it
 * returns a negative error, ideally through co_procpool_fail. It may
 * crash: only its job fails. */
typedef int (*co_procpool_fn)(const void *in, size_t inlen, void **out, size_t *outlen);

/* The largest payload or result (1 GiB): bigger ones fail with -E2BIG. */
#define CO_PROCPOOL_MAX_PAYLOAD ((size_t)1 << 30)
/* The longest function name (bytes, without the NUL); names are C
 * identifiers: [A-Za-z_][A-Za-z0-9_]*. */
#define CO_PROCPOOL_MAX_NAME 127
/* The most workers a pool may have. */
#define CO_PROCPOOL_MAX_WORKERS 256

/* Registers fn under name for every worker of this program. Call it from
 * a constructor (CO_PROCPOOL_FN does); workers never run main(), so a
 * registration made later could never be seen by them.
 *   0, -EINVAL (bad name or NULL fn), -EEXIST (name taken by another
 *   function), -ENOMEM, -CO_EINVALSTATE (called after the constructors
 *   ran, e.g. from main) */
CO_API int co_procpool_register(const char *name, co_procpool_fn fn);

/* Put after fn's definition (or declaration), at file scope: registers fn
 * under its own name before main() (and before any worker starts). */
#define CO_PROCPOOL_FN(fn)                                                 \
    __attribute__((constructor(200))) static void co__procpool_reg_##fn(void) { \
        (void)co_procpool_register(#fn, fn);                               \
    }

/* Inside a job function: records why the job fails and returns err, so
 *     return co_procpool_fail(-EINVAL, "need 8 bytes, got %zu", inlen);
 * The message reaches the caller's co_procpool_result.msg (or
 * co_tsfuture_message). Outside a worker it only returns err. */
CO_API int co_procpool_fail(int err, const char *fmt, ...) CO_PRINTF(2, 3);

/* One job's outcome. */
typedef struct co_procpool_result {
    void *data;     /* the result bytes (malloc'd, the caller's), NULL if none */
    size_t len;
    int err;        /* 0, or why the job failed (see co_procpool_apply) */
    char msg[200];  /* the failure message; "" on success */
} co_procpool_result;

/* One input of co_procpool_map. */
typedef struct co_procpool_buf {
    const void *data;
    size_t len;
} co_procpool_buf;

typedef struct co_procpool co_procpool;

/* A pool of nworkers processes (0: one per core), all started before it
 * returns. NULL with errno EINVAL (nworkers > CO_PROCPOOL_MAX_WORKERS),
 * ENOMEM, EMFILE, EAGAIN (a process or the manager thread could not
 * start) or ENOEXEC (this program cannot be re-executed: /proc missing). */
CO_API co_procpool *co_procpool_new(size_t nworkers);

/* Options of co_procpool_new_ex; zeroed fields take the defaults. */
typedef struct co_procpool_opts {
    size_t workers;                /* 0: one per core */
    /* maxtasksperchild: a worker that finished this many jobs (a map or
     * imap chunk is one job) exits and a fresh process takes its place,
     * so leaks and fragmentation in job code cannot build up. 0: never. */
    unsigned max_tasks_per_worker;
} co_procpool_opts;

/* co_procpool_new with options; errors as co_procpool_new, and EINVAL
 * for a NULL opts. */
CO_API co_procpool *co_procpool_new_ex(const co_procpool_opts *opts);

/* apply_async: queues fn_name(in) and returns a future for it at once
 * (the payload is copied; in may be freed on return). The future's value
 * is a malloc'd co_procpool_result (err 0) freed with
 * co_procpool_result_free; on failure the future fails with the errors
 * listed at co_procpool_apply and co_tsfuture_message says why.
 * co_procpool_wait reads it into a plain struct. timeout: seconds the job
 * may run once a worker has taken it (CO_FOREVER: no limit; <= 0: expired).
 * Cancelling the future before a worker took the job drops the job.
 * NULL with errno EINVAL (p or fn_name NULL, bad name, in NULL with
 * inlen > 0, timeout NaN), ENOENT (no such function), E2BIG,
 * CO_ESHUTDOWN (closed or terminated), ENOMEM. */
CO_API co_tsfuture *co_procpool_submit(co_procpool *p, const char *fn_name,
                                       const void *in, size_t inlen, double timeout);

/* Waits for a future of co_procpool_submit (timeout: as co_tsfuture_wait)
 * and fills *r: the result bytes (now the caller's) or the error and its
 * message. Returns r->err; -ETIMEDOUT (wait timed out; f unchanged, r
 * says so) and -ECANCELED (the waiting task was cancelled) too. Drop f
 * with co_tsfuture_release afterwards. */
CO_API int co_procpool_wait(co_tsfuture *f, double timeout, co_procpool_result *r);

/* apply: runs fn_name(in) in a worker and waits for it (a thread blocks;
 * a task suspends). Fills *r and returns r->err:
 *   0              done: r->data, r->len hold the result
 *   <0             the error the job function returned (r->msg: its message)
 *   -CO_EWORKER    the worker died running it: r->msg says
 *                  "worker 1234 killed by SIGSEGV" or "... exited with status 3"
 *   -ETIMEDOUT     it ran longer than timeout: its worker was killed
 *   -ENOENT        no function of that name (register it: CO_PROCPOOL_FN)
 *   -E2BIG         payload or result bigger than CO_PROCPOOL_MAX_PAYLOAD
 *   -CO_ESHUTDOWN  the pool is closed or terminated (before the job started)
 *   -ECANCELED     the pool was terminated while the job waited or ran, or
 *                  the waiting task was cancelled (the job is dropped if
 *                  it had not started, else its result is thrown away)
 *   -EINVAL, -ENOMEM, -EAGAIN (no worker could be started) */
CO_API int co_procpool_apply(co_procpool *p, const char *fn_name, const void *in,
                             size_t inlen, double timeout, co_procpool_result *r);

/* map: runs fn_name on every input, chunksize inputs per job (0: Python's
 * default, about n / (4 * workers)); a worker runs a chunk's items one
 * after another and sends each result as it finishes. results[i] gets
 * input i's outcome (per-item results: one failure does not hide the
 * others). timeout applies to each item. Returns 0 if every item
 * succeeded, else the error of the failed item with the lowest index; a
 * worker that crashes fails the item it ran (-CO_EWORKER, message naming
 * the item) and the rest of its chunk (-CO_EWORKER, "not run: ..."), and
 * is replaced. Errors before any job ran (-EINVAL, -ENOENT, -E2BIG,
 * -CO_ESHUTDOWN, -ENOMEM) are returned with every results[i].err set to
 * them. Free the results with co_procpool_result_clear(results, n). */
CO_API int co_procpool_map(co_procpool *p, const char *fn_name, const co_procpool_buf *inputs,
                           size_t n, size_t chunksize, double timeout,
                           co_procpool_result *results);

/* imap / imap_unordered: queues fn_name on every input, chunksize inputs
 * per job (0: 1, Python's default), and returns an iterator that hands out
 * the outcomes one at a time as they come: in input order, or with
 * CO_PROCPOOL_UNORDERED in the order the chunks finish. The inputs are
 * copied; timeout applies to each item. Unlike map, the caller can start
 * on the first results while the rest still run, and nothing holds all n
 * results at once. NULL with errno as co_procpool_submit, EINVAL (unknown
 * flags); nothing is queued then. One thread or task uses an iterator at
 * a time; free it with co_procpool_iter_free. */
#define CO_PROCPOOL_UNORDERED 1
typedef struct co_procpool_iter co_procpool_iter;
CO_API co_procpool_iter *co_procpool_imap(co_procpool *p, const char *fn_name,
                                          const co_procpool_buf *inputs, size_t n,
                                          size_t chunksize, double timeout, int flags);
/* Waits (a thread blocks, a task suspends) for the next outcome, at most
 * timeout seconds (CO_FOREVER: no limit), and fills *r (as co_procpool_apply
 * does: r->err is the item's own outcome, its data is the caller's) and
 * *index (the input it belongs to; may be NULL). Returns
 *   0            *r and *index are set: look at r->err
 *   1            every outcome was handed out
 *   -ETIMEDOUT   none came within timeout (the jobs go on; call again)
 *   -ECANCELED   the waiting task was cancelled (the iterator stays usable)
 *   -EINVAL, -ENOMEM */
CO_API int co_procpool_iter_next(co_procpool_iter *it, double timeout, size_t *index,
                                 co_procpool_result *r);
/* Frees the iterator: jobs not yet started are dropped, running ones'
 * results are thrown away when they come, outcomes not handed out are
 * freed. NULL: no-op. */
CO_API void co_procpool_iter_free(co_procpool_iter *it);

/* Frees the data of n results and zeroes them (NULL or n = 0: nothing). */
CO_API void co_procpool_result_clear(co_procpool_result *r, size_t n);
/* Frees a co_procpool_result the pool allocated (a future's value). */
CO_API void co_procpool_result_free(co_procpool_result *r);

/* close: no new jobs (-CO_ESHUTDOWN); the queued and running ones finish,
 * then the workers exit. 0, -EINVAL. Harmless to repeat. */
CO_API int co_procpool_close(co_procpool *p);
/* terminate: kills every worker now (SIGKILL); queued and running jobs
 * fail with -ECANCELED. 0, -EINVAL. Harmless to repeat, also after close. */
CO_API int co_procpool_terminate(co_procpool *p);
/* join: waits until every worker has exited, after close or terminate
 * (a thread blocks; a task suspends). timeout: seconds (CO_FOREVER: no limit).
 * 0, -CO_EINVALSTATE (neither closed nor terminated), -ETIMEDOUT,
 * -ECANCELED (the waiting task was cancelled), -EINVAL. */
CO_API int co_procpool_join(co_procpool *p, double timeout);
/* Terminates the pool if it is still running (as Python's `with Pool()`
 * does: call close + join first to let the jobs finish), waits for its
 * workers and frees it. Futures already handed out stay valid. NULL: no-op. */
CO_API void co_procpool_free(co_procpool *p);

/* The number of workers the pool keeps. */
CO_API size_t co_procpool_size(const co_procpool *p);
/* The process ids of the live workers: stores up to cap in out and
 * returns how many there are (0 once they all exited). */
CO_API size_t co_procpool_pids(co_procpool *p, int *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
