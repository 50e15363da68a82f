/* internal.h — the thread layer's shared structures: thread-safe futures
 * (tsfuture.c) and what producers (pool.c, call.c, the process pool) plug
 * into them. Never installed. */
#ifndef CO_THREAD_INTERNAL_H
#define CO_THREAD_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "../core/internal.h"
#include "corio/thread.h"
#include "lock.h"

/* What a producer does when its future is cancelled, and how the memory
 * that embeds the future is freed. Both optional. */
typedef struct co__tsf_ops {
    /* Called once, with the future's lock held. was_pending: the future
     * went from CO_PENDING to CO_CANCELLED (take the job out of your
     * queue); otherwise it is running and got a cancel request. The lock
     * is what keeps the producer alive here: a future outlives its
     * producer, and nothing else holds one. A pool cannot finish its
     * shutdown while a job it queued is unfinished (the thread that takes
     * the job drops it through co_tsfuture_cancel, which takes the lock),
     * and a loop finishes every running submission's future (under the
     * lock) before it frees itself. So the hook must be short, must not
     * sleep (a mutex held for a few stores is fine) and must not take the
     * lock of another future. */
    void (*cancel)(co_tsfuture *f, bool was_pending);
    void (*free)(co_tsfuture *f); /* NULL: free(f) */
} co__tsf_ops;

/* A waiter: a task parked in co_tsfuture_wait (the record is on its
 * stack) or a done-callback (malloc'd). */
enum { CO__TSW_TASK = 1, CO__TSW_CB = 2 };
typedef struct co__tsw {
    co__list link;      /* in f->waiters while not taken (under f->mu) */
    uint8_t kind;
    bool taken;         /* under f->mu: the finisher took it off the list */
    bool delivered;     /* task: its loop ran the wake-up (loop thread only) */
    co_task *task;
    co__xnode node;     /* the wake-up's inbox entry if the ring is full */
    co_tsfuture_cb cb;
    void *arg;
} co__tsw;

/* Invariants: state only moves forward (PENDING -> RUNNING -> finished, or
 * PENDING -> finished). PENDING -> RUNNING is a lock-free CAS (the pool
 * thread starting the job); every other move is made under `lock`, and a
 * cancel moves PENDING on with a CAS so that exactly one of the two wins.
 * value, err and msg are written once, before state becomes final, and
 * never change after. The hot fields come first: a pool job (this plus
 * five words) crosses between cores in two cache lines. */
struct co_tsfuture {
    co__lock lock;              /* lock.h: guards waiters and the final move */
    atomic_int state;           /* co_state */
    atomic_uint refs;
    atomic_int nblocked;        /* threads parked in co_tsfuture_wait */
    atomic_bool cancel_req;     /* co_tsfuture_cancel on a running future */
    atomic_bool retrieved;      /* the value was handed to a reader */
    int err;
    void *value;
    co__list waiters;           /* under lock: co__tsw, in registration order */
    const co__tsf_ops *ops;
    void (*free_result)(void *);
    char *msg;
};

/* Allocates `size` zeroed bytes whose start is a future, initialised with
 * `refs` references (the caller's + the producer's). NULL with errno. */
void *co__tsf_alloc(size_t size, const co__tsf_ops *ops, unsigned refs);
/* Frees a future from co__tsf_alloc that was never handed out, whatever
 * its reference count. */
void co__tsf_discard(co_tsfuture *f);
/* Finishes f (state CO_DONE, CO_FAILED or CO_CANCELLED) and fires its
 * waiters. 0, or -CO_EINVALSTATE if it was already finished. */
int co__tsf_finish(co_tsfuture *f, int state, void *value, int err, const char *msg);

/* The pool job running on this thread (NULL elsewhere): co_blocking_*. */
typedef struct co__job co__job;
extern _Thread_local co__job *co__cur_job;
bool co__job_is(const co__job *j, const co_tsfuture *f);

#endif
