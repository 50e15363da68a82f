/* internal.h — the core's data structures and the contracts between its
 * files (loop.c, task.c, future.c, handle.c, timer.c, run.c). Never
 * installed; other layers include it to build on the core.
 *
 * Threading: everything here is owned by one loop and touched only by the
 * thread running it, except the fields marked "any thread".
 */
#ifndef CO_CORE_INTERNAL_H
#define CO_CORE_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "corio.h"
#include "../arch/cpu.h"
#include "../base/assert.h"
#include "../arch/fiber.h"
#include "../arch/stack.h"
#include "list.h"
#include "poll.h"

/* ---- the ready queue -------------------------------------------------------
 * A singly-linked FIFO of co__run entries: a task to resume, or a handle
 * whose callback must run. An entry is in the queue at most once (tasks:
 * CO__T_INREADY; handles: state CO__H_READY). */
enum { CO__RUN_TASK = 1, CO__RUN_HANDLE = 2 };
typedef struct co__run {
    struct co__run *next;
    uint8_t kind;
} co__run;

/* ---- timers -----------------------------------------------------------------
 * A timer node lives inside what it wakes (a task's sleep, a handle), so
 * arming one allocates nothing. The heap (timer.c) is an array of
 * (deadline, node) ordered by deadline then the node's seq: equal deadlines fire
 * in the order they were armed. idx is the node's slot, CO__TIMER_IDLE
 * when not armed. */
#define CO__TIMER_IDLE UINT32_MAX
enum { CO__TM_TASK = 1, CO__TM_HANDLE = 2, CO__TM_SCOPE = 3 };
typedef struct co__timer {
    int64_t deadline; /* loop clock, ns */
    uint64_t seq;     /* arming order: breaks ties between equal deadlines */
    uint32_t idx;
    uint8_t kind;
} co__timer;

/* 16 bytes, so the four children of a slot fill one 64-byte cache line
 * (the array is offset so that they start on a line boundary). */
typedef struct co__heap_ent {
    int64_t deadline;
    co__timer *t;
} co__heap_ent;

typedef struct co__heap {
    co__heap_ent *a;   /* a[0] is the minimum; a[4i+1 .. 4i+4] are i's children */
    void *mem;         /* the allocation a points into */
    uint32_t n, cap;
    uint64_t seq;
} co__heap;

void co__heap_init(co__heap *h);
void co__heap_fini(co__heap *h);
/* Arms t at deadline. 0, or -ENOMEM (growing the array; amortised, rare). */
int co__heap_add(co__heap *h, co__timer *t, int64_t deadline);
/* Disarms t if armed; returns whether it was. */
bool co__heap_remove(co__heap *h, co__timer *t);
static inline co__timer *co__heap_min(const co__heap *h) { return h->n ? h->a[0].t : NULL; }
static inline int64_t co__heap_min_deadline(const co__heap *h) { return h->a[0].deadline; }
co__timer *co__heap_pop(co__heap *h);

/* ---- done lists ---------------------------------------------------------------
 * A future's done list holds, in registration order, the done-callbacks
 * (co__handle, kind CO__H_DONE) and the tasks waiting in co_join (a
 * co__waiter on the waiter's own stack). When the future finishes, each
 * entry is unlinked and fired in order. */
enum { CO__W_TASK = 1, CO__W_HANDLE = 2, CO__W_HOOK = 3, CO__W_HOOK_OWNED = 4 };
typedef struct co__waiter {
    co__list link;
    uint8_t kind;
    co_task *task; /* CO__W_TASK: the task to wake */
    /* CO__W_HOOK / CO__W_HOOK_OWNED: called when the future finishes
     * (combinators). A HOOK record lives on a waiting task's stack or in
     * memory its owner frees; an OWNED record is heap memory only the hook
     * frees, so co_loop_free calls hook(w, NULL) for it: "the loop is
     * going away: free yourself and drop (decrement, never release) the
     * task references you hold". */
    void (*hook)(struct co__waiter *w, co_task *finished);
} co__waiter;

/* ---- handles ---------------------------------------------------------------------
 * A scheduled callback: co_call_soon / later / at, or a done-callback.
 * Handles come from a per-loop pool of chunks that live as long as the
 * loop, so a stale co_handle {p, gen} is always safe to test: gen changes
 * every time the handle is used up (ran, cancelled, recycled). */
enum { CO__H_FREE = 0, CO__H_READY, CO__H_TIMED, CO__H_LISTED, CO__H_RUNNING };
enum { CO__HK_CALL = 1, CO__HK_DONE = 2 };
typedef struct co__handle {
    co__run run;      /* ready-queue entry */
    co__waiter w;     /* done-list entry (kind CO__W_HANDLE) */
    co__timer timer;  /* call_later / call_at */
    uint64_t gen;
    co_loop *loop;
    uint8_t state;
    uint8_t hkind;
    bool cancelled;   /* cancelled while CO__H_READY: skipped when popped */
    union {
        co_cb call;
        co_done_cb done;
    } fn;
    void *arg;
    co_task *task;    /* CO__HK_DONE: the finished future (one reference held) */
    struct co__handle *free_next;
} co__handle;

/* ---- tasks -------------------------------------------------------------------------- */
enum {
    CO__T_FUTURE = 1u << 0,     /* a plain future: no function, no stack */
    CO__T_INREADY = 1u << 1,    /* in the ready queue */
    CO__T_SUSPENDED = 1u << 2,  /* parked in co__suspend, not in the ready queue */
    CO__T_CANCEL = 1u << 3,     /* cancel requested (sticky) */
    CO__T_FAILSET = 1u << 4,    /* co_fail was called */
    CO__T_RETRIEVED = 1u << 5,  /* the outcome was read */
    CO__T_MAIN = 1u << 6,       /* co_run's main task */
    CO__T_MARK = 1u << 7,       /* scratch: set and cleared within one call that does
                                 * not suspend (combine.c drops repeated tasks) */
    CO__T_FREED = 1u << 8,      /* freed (cached or quarantined, refs 0): a
                                 * co_task_release now is a double release */
};

struct co_task {
    co__fiber fiber;      /* first: the switch saves into it */
    co_loop *loop;        /* NULL once the loop was freed under a leaked handle */
    co__run run;          /* ready-queue entry */
    uint32_t refs;        /* handles + 1 while unfinished (running tasks) + callbacks */
    uint32_t flags;       /* CO__T_* */
    uint8_t state;        /* co_state */
    int wake;             /* code the waker hands to the suspended task */
    co_fn fn;
    void *arg;
    void *value;          /* CO_DONE: the result */
    int err;              /* CO_FAILED / CO_CANCELLED: the error */
    char *msg;            /* failure or cancel message, malloc'd (NULL: none) */
    char *name;           /* NULL: "Task-<id>", formatted on demand */
    uint64_t id;
    size_t stack_size;    /* requested; 0: the loop's default */
    co__stack *stack;     /* bound at first run, released when finished */
    co__timer timer;      /* co_sleep */
    co__list done;        /* co__waiter: callbacks and joiners, in order */
    co__list all;         /* loop->all: every task struct not yet freed */
    struct co__scope *scope;   /* innermost open cancel scope (on its stack), or NULL */
    struct co__gchild *gchild; /* its record in a task group, or NULL */
    int64_t finished_at;  /* loop clock when it finished */
};

/* ---- cancel scopes (scope.c) ---------------------------------------------------------
 * A scope lives in the caller's storage (co_scope, usually on the task's
 * stack) or inside a co_group. A task's open scopes form a chain from
 * task->scope (innermost) through ->parent; they are entered and exited in
 * LIFO order. A cancellation is "pending" for the task at its current point
 * when, walking outwards, a fired or cancelled scope comes before any
 * shielding scope, or the walk passes every scope and the task itself has a
 * cancel request. Level-triggered: a fired scope stays fired until it is
 * exited, so every suspension point inside keeps failing. */
typedef struct co__scope {
    struct co__scope *parent;
    co_task *task;          /* the task whose chain it is in */
    co__timer timer;        /* kind CO__TM_SCOPE; armed while a deadline is pending */
    int64_t deadline;       /* loop clock; INT64_MAX: none */
    struct co_group *group; /* the group this scope belongs to, or NULL */
    uint8_t mode;           /* CO_FAIL_AFTER / CO_MOVE_ON, | CO_SHIELD */
    bool fired;             /* its deadline passed while it was open */
    bool cancelled;         /* co_scope_cancel (or its group was cancelled) */
    bool open;
} co__scope;

bool co__scope_pending(const co_task *t);
void co__scope_fire(co_loop *L, co__timer *tm);
int co__scope_push(co__scope *s, co_task *t, int64_t deadline, int mode);
void co__scope_pop(co__scope *s);
void co__scope_cancel(co__scope *s);
/* The task returned with scopes still open: report, close them (joining
 * the groups among them). Runs on the task's stack, may suspend. */
void co__scopes_abandoned(co_task *t);
/* Closes a group whose owner returned inside it (group.c): cancels and
 * joins its children, pops its scope. */
void co__group_abandon(struct co_group *g);

/* ---- the cross-thread inbox (xq.c) -----------------------------------------------------
 * How other threads reach a loop: co_loop_call_threadsafe, pool
 * completions, thread-safe futures waking a task. A bounded lock-free
 * multi-producer ring (Vyukov's: a cell is free for position pos when its
 * seq == pos, published when seq == pos + 1), allocated at the first push,
 * plus an overflow list under a mutex for when the ring is full. While the
 * overflow list is non-empty every push goes there, and the loop drains the
 * ring before the list, so each producer's calls run in the order made.
 * The loop is the only consumer. */
#define CO__XQ_CELLS 4096u
typedef struct co__xcell {
    atomic_size_t seq;
    co_cb fn;
    void *arg;
} co__xcell;
/* An overflow entry. Internal producers embed one in their record so that
 * their pushes never allocate and never fail; `owned` ones were malloc'd
 * by the push and are freed after running. */
typedef struct co__xnode {
    struct co__xnode *next;
    co_cb fn;
    void *arg;
    bool owned;
} co__xnode;
typedef struct co__xq {
    /* read by every push, written rarely: a line of their own */
    _Alignas(64) _Atomic(co__xcell *) cells; /* any thread: NULL until the first push */
    atomic_bool overflow;         /* any thread: the list below is non-empty */
    atomic_bool closed;           /* any thread: pushes fail with -CO_ECLOSED */
    _Alignas(64) atomic_size_t tail; /* any thread: next position to claim */
    _Alignas(64) size_t head;     /* loop thread: next position to run */
    pthread_mutex_t omu;          /* guards ohead/otail */
    co__xnode *ohead, *otail;
} co__xq;

int co__xq_init(co__xq *q);
/* Loop thread: refuses further pushes (-CO_ECLOSED) and runs everything
 * accepted before. Calling it again is harmless. */
void co__xq_close(co_loop *L);
/* co__xq_close, then frees the queue. */
void co__xq_fini(co_loop *L);
/* Queues fn(arg) to run on L's thread and wakes L. `spare` (may be NULL)
 * is used if the ring is full; without one a node is malloc'd.
 * 0, -CO_ECLOSED (the loop is closed), -ENOMEM (no spare, no memory). */
int co__xq_push(co_loop *L, co_cb fn, void *arg, co__xnode *spare);
/* Loop thread: runs what was queued; returns how many ran. Every turn
 * calls it (cheap when empty: one load of the next cell). */
size_t co__xq_drain(co_loop *L);
/* Loop thread: is something queued? */
bool co__xq_ready(co_loop *L);
/* Loop thread: is something queued or claimed (a push between its claim
 * and its publish)? What the loop checks before it sleeps. */
bool co__xq_claimed(co_loop *L);
/* Loop thread, spinning with nothing else to do, just saw the inbox become
 * non-empty: waits a moment (at most a few microseconds) for a batch to
 * accumulate. Draining each entry the instant it is published makes the
 * loop and the producer fight over the same cache line for every entry;
 * a batch moves whole lines once. */
void co__xq_gather(co_loop *L);

/* ---- fd readiness (iowait.c) ------------------------------------------------------------
 * One record per fd a task waited on (the loop's table, by fd number),
 * registered with the poll backend once, both directions, edge-triggered.
 * `ready` holds the CO_READ / CO_WRITE edges seen and not yet cleared by
 * an EAGAIN (co__fd_clear). Waiters live on their tasks' stacks. */
typedef struct co__iowaiter {
    co__list link;
    co_task *task;
    int events; /* CO_READ / CO_WRITE wanted */
    int got;    /* set by the waker: the ready events, or -EBADF (forgotten) */
} co__iowaiter;
typedef struct co__iofd {
    int fd;
    int ready;
    bool registered;
    bool ended;                       /* a hang-up or the peer's end of stream was seen: sticky */
    co__list waiters;                 /* co__iowaiter */
    void (*hook)(void *arg, int ev);  /* called on every edge (a stream's background flush) */
    void *hook_arg;
} co__iofd;

/* The record for fd, created and registered if needed; NULL with *err
 * (-ENOMEM, -EPERM: not pollable, -EBADF). */
co__iofd *co__fd_get(co_loop *L, int fd, int *err);
/* Suspends the running task until r has one of events ready (returned),
 * or deadline (-ETIMEDOUT), cancellation (-ECANCELED), forget (-EBADF). */
int co__fd_wait_rec(co_loop *L, co__iofd *r, int events, int64_t deadline);
/* A poll event for the fd whose number + 1 is data. */
void co__fd_event(co_loop *L, void *data, uint32_t pev);
void co__fd_forget(co_loop *L, int fd);
void co__fd_fini(co_loop *L);
int co__fd_set_hook(co_loop *L, int fd, void (*hook)(void *, int), void *arg);

/* ---- the loop ------------------------------------------------------------------------ */
struct co_loop {
    co__fiber main;           /* the thread's own stack, where run_* was called */
    co_task *cur;             /* the task running, NULL on the loop's own stack */
    co__run *rq_head, *rq_tail;
    size_t nready;
    size_t budget;            /* entries this turn may still run (see loop.c) */
    co_task *zombie;          /* finished task whose stack is released after the switch */
    int64_t now;              /* cached clock, ns */
    int64_t step_start;       /* debug: when the current step began */
    co__heap timers;
    co__poll poll;
    int wakefd;               /* eventfd: wake-ups from other threads and signals */
    /* Waking the loop (co__loop_wakeup, any thread, after claiming a place
     * for its message). wake_pending true means "the loop will look at its inbox
     * without being told": a waker that sees it does nothing; otherwise it
     * sets it and writes wakefd if the loop is sleeping. The loop keeps
     * wake_pending true while awake (it drains the inbox every turn), and
     * only before blocking clears it, sets sleeping and looks at the inbox
     * once more, claims included (seq_cst: either the loop sees the claim
     * or the waker sees the flags). So a busy loop costs a waker one load of a line
     * that does not change, and a sleeping one one write(2). */
    _Alignas(64) atomic_bool wake_pending; /* (a line of their own: other threads
                                             read these on every push) */
    atomic_bool sleeping;
    atomic_bool xrefuse;      /* any thread: a stop began: co_loop_call_threadsafe
                                 and co_loop_submit refuse (-CO_ECLOSED); the
                                 library's own wake-ups still get through */
    /* The struct's memory (with the inbox) outlives co_loop_free while other
     * threads hold references (co_loop_retain): their calls then get
     * -CO_ECLOSED. One reference is the owner's, dropped by co_loop_free
     * (xdead set first); the last one frees the memory. */
    atomic_uint xrefs;
    atomic_bool xdead;
    atomic_bool xactive;      /* a run (or close's drain) is under way: other
                                 threads may read it; the loop cannot move */
    co__xq xq;                /* the cross-thread inbox */
    bool xbusy;               /* the last turn ran cross-thread calls: more are
                                 likely, spin before sleeping */
    size_t xlast;             /* how many the last non-empty drain ran */
    size_t xwaiters;          /* tasks waiting for another thread (pool jobs,
                                 thread-safe futures): spin before sleeping,
                                 and the virtual clock treats them as I/O */
    atomic_int sigint;        /* any thread / signal: the stop signal (SIGINT or SIGTERM)
                                 co_run's handler received and the loop has not
                                 handled yet; 0 if none */
    size_t io_waiters;        /* tasks waiting on an fd (virtual clock: do not jump) */
    co__iofd **fds;           /* by fd number (NULL: none); nfds slots */
    size_t nfds;
    size_t io_regs;           /* records registered with the poll backend */
    co__list all;             /* every task struct of this loop */
    size_t ntasks_live;       /* unfinished tasks (not futures) */
    co_task *stop_when;       /* run_until_complete: stop when it finishes */
    co_task *main_task;       /* co_run's: SIGINT cancels it */
    bool running, stopping, closed, closing;
    bool virtual_clock, debug, precise_timers;
    int64_t slow_ns;
    size_t default_stack;
    pthread_t owner;          /* the thread that may use the loop; a loop that
                                 is not running moves to the thread that runs,
                                 closes or frees it (loop.c: co__adopt) */
    co__stack_pool stacks;
    co_task *task_cache;      /* freed task structs, linked through ->arg */
    size_t ntask_cache;
    /* Debug mode: freed task structs are kept aside here (linked through
     * ->all, oldest first, at most CO__QUARANTINE of them), never reused,
     * so a late co_task_release finds CO__T_FREED instead of a new task.
     * Zeroed until first used (co_loop_new callocs). */
    co__list quarantine;
    size_t nquarantine;
    co__handle *handle_free;
    void **handle_chunks;     /* chunks of handles, freed with the loop */
    size_t nchunks, chunk_cap;
    void *altstack;
    void (*report)(co_loop *, const char *, void *);
    void *report_arg;
};

/* ---- cross-file contracts ---------------------------------------------------------- */
extern _Thread_local co_loop *co__tls_loop;

/* Reports a problem through the loop's report hook (or stderr). */
void co__report(co_loop *L, const char *fmt, ...) CO_PRINTF(2, 3);
/* Is the caller on the loop's thread? */
static inline bool co__on_loop_thread(const co_loop *L) {
    return pthread_equal(L->owner, pthread_self());
}
int co__wrongloop(const co_loop *L, const char *what);

/* Ready queue. */
static inline void co__rq_push(co_loop *L, co__run *r) {
    r->next = NULL;
    if (L->rq_tail) L->rq_tail->next = r;
    else L->rq_head = r;
    L->rq_tail = r;
    L->nready++;
}
static inline co__run *co__rq_pop(co_loop *L) {
    co__run *r = L->rq_head;
    if (!r) return NULL;
    L->rq_head = r->next;
    if (!L->rq_head) L->rq_tail = NULL;
    L->nready--;
    return r;
}

/* Makes a suspended (or not yet started) task ready with wake code `code`.
 * A task already in the ready queue keeps its first code. */
static inline void co__wake(co_task *t, int code) {
    if (t->flags & CO__T_INREADY) return;
    t->flags = (t->flags | CO__T_INREADY) & ~(uint32_t)CO__T_SUSPENDED;
    t->wake = code;
    co__rq_push(t->loop, &t->run);
}

/* Parks the running task until someone co__wake()s it; returns the wake
 * code. The caller registered itself with the waker first and must undo
 * that registration if the code says it was woken for another reason. */
int co__suspend(co_task *t);
/* 0, or -ECANCELED if the running task has a cancel request, or
 * -CO_ENOTASK outside tasks. Call before registering a wait. */
int co__can_suspend(co_task **out);

/* Switch out of the running task (loop.c). */
void co__switch_out(co_loop *L, co_task *cur, bool exits);
/* Run a popped handle (handle.c). */
void co__handle_run(co_loop *L, co__handle *h);
co__handle *co__handle_alloc(co_loop *L);
void co__handle_free(co_loop *L, co__handle *h);
void co__handles_fini(co_loop *L);
/* A timer fired (timer.c): wake its task or queue its handle. */
void co__timer_fire(co_loop *L, co__timer *t);

/* Tasks (task.c). */
int co__task_start(co_task *t);        /* binds a stack; on -ENOMEM the task has failed */
int co__task_outcome(co_task *t, void **value); /* 0 / err / -ECANCELED; marks retrieved */
void co__task_finish(co_task *t);      /* state set by caller; fires the done list */
void co__task_free(co_task *t);
/* co_loop_free: t is still referenced by a handle after the loop let go of
 * it: debug mode (and the ASan build) reports the missing release. */
void co__task_orphaned(co_loop *L, co_task *t);
/* co_loop_free: frees the cached and quarantined task structs. */
void co__task_cache_fini(co_loop *L);
void co__reap(co_loop *L);             /* release the zombie's stack */
const char *co__task_name_buf(const co_task *t, char *buf, size_t n); /* no allocation */
co_task *co__task_alloc(co_loop *L);
uint64_t co__next_id(void);          /* Task-N / Future-N numbering, per process */
void co__fire_done(co_task *t);
void co__set_msg(co_task *t, const char *msg);

/* Clock (loop.c). */
int64_t co__clock_ns(void);
void co__loop_update_time(co_loop *L);
void co__loop_wakeup(co_loop *L);      /* any thread */
co_loop *co__loop_get(int *err);       /* this thread's loop, checked */
bool co__loop_running_here(void);      /* is a loop running on this thread? */

/* Is a cancellation pending for t where it stands (see above)? */
static inline bool co__cancel_pending(const co_task *t) {
    if (co__likely(!t->scope)) return t->flags & CO__T_CANCEL;
    return co__scope_pending(t);
}

/* Delivers a pending cancellation to t (not running): a suspended task is
 * woken with -ECANCELED; one woken but not resumed yet sees -ECANCELED
 * instead of its wake code, since it still sits in its wait. */
static inline void co__interrupt(co_task *t) {
    /* INREADY first: a task in co_yield is both parked and queued. One
     * queued without a stack has not started; its body meets the cancel. */
    if (t->flags & CO__T_INREADY) {
        if (t->stack) t->wake = -ECANCELED;
    } else if (t->flags & CO__T_SUSPENDED) {
        co__wake(t, -ECANCELED);
    }
}

/* Wakes t only if it is parked in co__suspend (hooks may fire while the
 * task they would wake is running, e.g. it cancelled a future itself). */
static inline void co__wake_if_parked(co_task *t) {
    if (t->flags & CO__T_SUSPENDED) co__wake(t, 0);
}

/* fd's ready bits (0 if it has no record). */
static inline int co__fd_ready(const co_loop *L, int fd) {
    return (size_t)fd < L->nfds && L->fds[fd] ? L->fds[fd]->ready : 0;
}
/* Has fd reported the peer's end of stream or a hang-up? (Reading at the
 * end brings no further edge: readers must not wait for one then.) */
static inline bool co__fd_ended(const co_loop *L, int fd) {
    return (size_t)fd < L->nfds && L->fds[fd] && L->fds[fd]->ended;
}

#include "wait.h"

#endif
