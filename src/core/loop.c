/* loop.c — the event loop: ready queue dispatch, switching between tasks,
 * clock and virtual clock, polling, timers firing, run / stop / close.
 *
 * Runs on the loop's thread only, except co__loop_wakeup (any thread,
 * async-signal-safe).
 *
 * Scheduling. A turn of the loop dispatches ready entries in FIFO order,
 * then polls (without blocking if anything is ready), then fires expired
 * timers into the ready queue. A turn runs at least the entries that were
 * ready when it began (asyncio's rule) and at least CO__BUDGET of them, so
 * a pair of tasks yielding to each other does not pay a poll per switch;
 * I/O and timers still get their turn every CO__BUDGET entries. A task
 * that suspends hands control straight to the next ready task when there
 * is one and the turn has budget left; only otherwise does it switch back
 * to the loop's own stack. A finished task cannot release the stack it is
 * running on: it leaves itself in L->zombie and whoever runs next reaps it.
 *
 * Ownership. A loop belongs to one thread at a time: the one that created
 * it, until another thread runs, closes or frees it while it is not
 * running, which makes that thread the owner (asyncio's new_event_loop()
 * in main, then loop.run_forever in a thread). The struct's memory is
 * refcounted for other threads (co_loop_retain / co_loop_release): after
 * co_loop_free it lives on, closed, until the last reference goes, so a
 * thread that holds one and submits gets -CO_ECLOSED, never freed memory.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "../base/env.h"
#include "internal.h"

#define CO__BUDGET 256
#define CO__AUTOJUMP_NS (10 * 1000 * 1000) /* virtual clock: real wait for I/O before jumping */
#define CO__SPIN_NS (30 * 1000) /* spin before sleeping while a task waits for another thread */

_Thread_local co_loop *co__tls_loop;      /* this thread's current loop */
static _Thread_local co_loop *co__tls_running; /* the loop running on this thread */

/* ---- reporting ------------------------------------------------------------------ */

void co__report(co_loop *L, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (L && L->report) L->report(L, buf, L->report_arg);
    else fprintf(stderr, "corio: %s\n", buf);
}

int co__wrongloop(const co_loop *L, const char *what) {
    co_loop *mine = co__tls_loop;
    if (!L) { /* an orphaned handle: its loop was freed */
        co__report(mine, "%s: object of a loop that was freed", what);
        return -CO_ECLOSED;
    }
    /* Reported through the object's loop: its owner is who needs to know. */
    if (mine == L && !co__on_loop_thread(L))
        co__report((co_loop *)L, "%s: called on an object of loop %p from a thread that does not own "
                                 "it (the loop moved to the thread that ran it last)",
                   what, (const void *)L);
    else
        co__report((co_loop *)L, "%s: called from %s on an object of loop %p (this thread's loop: %p)",
                   what, co__on_loop_thread(L) ? "a task of another loop" : "another thread",
                   (const void *)L, (void *)mine);
    return -CO_EWRONGLOOP;
}

/* ---- clock ---------------------------------------------------------------------- */

int64_t co__clock_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void co__loop_update_time(co_loop *L) {
    if (!L->virtual_clock) L->now = co__clock_ns();
}

int64_t co_now(void) {
    co_loop *L = co__tls_loop;
    return L ? L->now : 0;
}

double co_time(void) { return (double)co_now() * 1e-9; }

/* ---- stack overflow hook (async-signal context) ------------------------------ */

static const co__stack *co__running_stack(char *name, size_t n) {
    co_loop *L = co__tls_running;
    if (!L || !L->cur) return NULL;
    const char *nm = co__task_name_buf(L->cur, name, n);
    if (nm != name) snprintf(name, n, "%s", nm);
    return L->cur->stack;
}

/* ---- loops ------------------------------------------------------------------------ */

co_loop *co_loop_new(const co_loop_opts *opts) {
    co_loop_opts o;
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    co_loop *L = calloc(1, sizeof *L);
    if (!L) return NULL;
    L->owner = pthread_self();
    atomic_init(&L->xrefs, 1); /* the owner's */
    L->wakefd = -1;
    L->poll.fd = -1;
    int rc = co__xq_init(&L->xq);
    if (rc < 0) {
        free(L);
        errno = -rc;
        return NULL;
    }
    rc = co__poll_open(&L->poll);
    if (rc < 0) goto fail;
    L->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (L->wakefd < 0) {
        rc = -errno;
        goto fail;
    }
    rc = co__poll_add(&L->poll, L->wakefd, CO__POLL_IN, NULL);
    if (rc < 0) goto fail;
    co__heap_init(&L->timers);
    co__list_init(&L->all);
    co__stack_pool_init(&L->stacks);
    L->virtual_clock = o.virtual_clock || co__env_bool("CORIO_VIRTUAL_CLOCK", false);
    L->debug = o.debug || co__env_bool("CORIO_DEBUG", false);
    L->precise_timers = o.precise_timers;
    L->slow_ns = o.slow_step > 0 ? (int64_t)(o.slow_step * 1e9) : 100 * 1000 * 1000;
    L->default_stack = co__stack_round(o.stack_size);
    L->report = o.report;
    L->report_arg = o.report_arg;
    L->now = L->virtual_clock ? 0 : co__clock_ns();
    co__stack_handler_install(co__running_stack);
    L->altstack = co__altstack_ensure();
    if (!co__tls_loop) co__tls_loop = L;
    return L;
fail:
    if (L->wakefd >= 0) close(L->wakefd);
    co__poll_close(&L->poll);
    pthread_mutex_destroy(&L->xq.omu);
    free(L);
    errno = -rc;
    return NULL;
}

co_loop *co_loop_current(void) { return co__tls_loop; }
bool co__loop_running_here(void) { return co__tls_running != NULL; }
void co_loop_set_current(co_loop *L) { co__tls_loop = L; }

co_loop *co__loop_get(int *err) {
    co_loop *L = co__tls_loop;
    if (!L) {
        *err = -CO_ENOLOOP;
        return NULL;
    }
    if (L->closed) {
        *err = -CO_ECLOSED;
        return NULL;
    }
    return L;
}

size_t co_all_tasks(co_loop *L, co_task **out, size_t cap) {
    size_t n = 0;
    if (!L) return 0;
    co__list_for_each(it, &L->all) {
        co_task *t = co__container_of(it, co_task, all);
        if ((t->flags & CO__T_FUTURE) || co_task_done(t)) continue;
        if (n < cap) out[n] = t;
        n++;
    }
    return n;
}

/* ---- switching ---------------------------------------------------------------- */

static void co__slow_step(co_loop *L, const char *what, const char *name) {
    int64_t dt = co__clock_ns() - L->step_start;
    if (dt > L->slow_ns)
        co__report(L, "%s \"%s\" held the loop for %.1f ms (slow_step %.1f ms): other tasks "
                      "could not run; move CPU-bound or blocking work to a thread",
                   what, name, (double)dt / 1e6, (double)L->slow_ns / 1e6);
}

void co__switch_out(co_loop *L, co_task *cur, bool exits) {
    if (co__unlikely(!co__stack_canary_ok(cur->stack))) {
        char name[128];
        co__stack_overflow(cur->stack, co__task_name_buf(cur, name, sizeof name),
                           "canary smashed (unguarded stack)");
    }
    if (!exits) cur->state = CO_PENDING;
    co__run *r = L->rq_head;
    if (r && r->kind == CO__RUN_TASK && L->budget && !L->debug) {
        co_task *next = co__container_of(r, co_task, run);
        co__rq_pop(L);
        L->budget--;
        next->flags &= ~(uint32_t)CO__T_INREADY;
        if (next == cur) { /* co_yield with nobody else ready */
            cur->state = CO_RUNNING;
            return;
        }
        if (next->stack || co__task_start(next) == 0) {
            L->cur = next;
            next->state = CO_RUNNING;
            co__fiber_switch(&cur->fiber, &next->fiber, exits);
            co__reap(L);
            return;
        }
        /* next could not get a stack and has failed; go through the loop */
    }
    L->cur = NULL;
    co__fiber_switch(&cur->fiber, &L->main, exits);
    co__reap(L);
}

/* From the loop's own stack into task t; returns when control is back. */
static void co__enter(co_loop *L, co_task *t) {
    if (!t->stack && co__task_start(t) < 0) return;
    L->cur = t;
    t->state = CO_RUNNING;
    if (L->debug) {
        L->step_start = co__clock_ns();
        co__fiber_switch(&L->main, &t->fiber, false);
        char name[128];
        co__slow_step(L, "task", co__task_name_buf(t, name, sizeof name));
    } else {
        co__fiber_switch(&L->main, &t->fiber, false);
    }
    L->cur = NULL;
    co__reap(L);
}

/* ---- one turn ---------------------------------------------------------------------- */

static void co__dispatch(co_loop *L) {
    size_t n = L->nready;
    L->budget = n > CO__BUDGET ? n : CO__BUDGET;
    while (L->budget && L->rq_head) {
        co__run *r = co__rq_pop(L);
        L->budget--;
        if (r->kind == CO__RUN_TASK) {
            co_task *t = co__container_of(r, co_task, run);
            t->flags &= ~(uint32_t)CO__T_INREADY;
            co__enter(L, t);
        } else {
            co__handle *h = co__container_of(r, co__handle, run);
            if (L->debug && !h->cancelled) {
                L->step_start = co__clock_ns();
                co__handle_run(L, h);
                co__slow_step(L, "callback", "call_soon/call_later/done callback");
            } else {
                co__handle_run(L, h);
            }
        }
    }
    L->budget = 0;
}

/* L->sigint holds the stop signal co_run's handler received (SIGINT or
 * SIGTERM), 0 if none. */
static void co__handle_signals(co_loop *L) {
    int sig = atomic_exchange(&L->sigint, 0);
    if (sig && L->main_task && !co_task_done(L->main_task))
        co_cancel(L->main_task, sig == SIGTERM ? "terminated by SIGTERM" : "interrupted by SIGINT");
}

static void co__poll_once(co_loop *L, int64_t timeout) {
    /* a few hundred per call: 1000 busy connections need few calls */
    co__pevent ev[512];
    int n = co__poll_wait(&L->poll, timeout, ev, 512);
    for (int i = 0; i < n; i++) {
        if (ev[i].data == NULL) { /* the wake-up eventfd: reset it */
            uint64_t v;
            ssize_t r = read(L->wakefd, &v, sizeof v);
            (void)r;
        } else {
            co__fd_event(L, ev[i].data, ev[i].events);
        }
    }
}

/* The loop is about to block for up to timeout ns. If a task waits for
 * another thread, or other threads just sent calls, the next message is
 * often microseconds away: spin a little first (a sleeping thread costs a system call to wake, and on a VM whose
 * idle vCPUs halt, tens of microseconds). Then announce the sleep; returns
 * 0 if a wake-up came meanwhile (do not block). */
static int64_t co__before_sleep(co_loop *L, int64_t timeout) {
    if ((L->xwaiters || L->xbusy) && !L->virtual_clock) {
        int64_t until = co__clock_ns() + CO__SPIN_NS;
        do {
            for (int i = 0; i < 64; i++) {
                if (co__xq_ready(L)) {
                    if (L->xlast >= 16) co__xq_gather(L); /* a stream, not a reply */
                    return 0;
                }
                co__cpu_relax();
            }
            /* a task waits for a reply: the thread computing it may share
             * our CPU, let it run (a stream of calls needs no such help) */
            if (L->xwaiters) sched_yield();
        } while (co__clock_ns() < until);
        L->xbusy = false; /* nothing came: the next sleep does not spin */
    }
    /* From here on a push must write the eventfd (see co_loop) */
    atomic_store(&L->wake_pending, false);
    atomic_store(&L->sleeping, true);
    atomic_thread_fence(memory_order_seq_cst);
    /* Claims count, not just published cells: a producer decides about
     * the wake-up between its claim and its publish. wake_pending true
     * again: a waker took the duty of waking us while `sleeping` was still
     * false, so it wrote nothing; sleeping now would lose it. */
    if (co__xq_claimed(L) || atomic_load(&L->wake_pending) ||
        atomic_load_explicit(&L->sigint, memory_order_relaxed)) {
        atomic_store(&L->sleeping, false);
        atomic_store(&L->wake_pending, true);
        return 0;
    }
    return timeout;
}

static void co__fire_timers(co_loop *L) {
    while (L->timers.n && co__heap_min_deadline(&L->timers) <= L->now)
        co__timer_fire(L, co__heap_pop(&L->timers));
}

static void co__turn(co_loop *L) {
    co__dispatch(L);

    bool ready = L->rq_head != NULL || L->stopping;
    int64_t timeout;
    if (ready) {
        timeout = 0;
    } else if (L->timers.n) {
        int64_t d = co__heap_min_deadline(&L->timers);
        if (L->virtual_clock) timeout = L->io_waiters || L->xwaiters ? CO__AUTOJUMP_NS : 0;
        else {
            /* Wake on the next whole millisecond of the clock at or after
             * the deadline (asyncio and libuv have millisecond timers too):
             * a burst of timers is served by one wake-up per millisecond
             * rather than one per timer. precise_timers: wake at the ns. */
            if (!L->precise_timers) d = (d + 999999) / 1000000 * 1000000;
            timeout = d - co__clock_ns();
        }
        if (timeout < 0) timeout = 0;
    } else {
        timeout = L->closing ? 0 : -1; /* closing: never wait for what may not come */
    }
    if (timeout != 0) timeout = co__before_sleep(L, timeout);
    /* Looking for I/O costs a system call: skip it when work is ready and
     * nothing but the wake-up fd is registered. */
    if (timeout != 0 || L->io_regs) co__poll_once(L, timeout);
    if (timeout != 0) { /* awake: pushes need not wake us until the next sleep */
        atomic_store_explicit(&L->sleeping, false, memory_order_relaxed);
        atomic_store_explicit(&L->wake_pending, true, memory_order_relaxed);
    }
    size_t nx = co__xq_drain(L);
    if (nx) {
        L->xbusy = true;
        L->xlast = nx;
    }
    if (atomic_load_explicit(&L->sigint, memory_order_relaxed)) co__handle_signals(L);

    co__loop_update_time(L);
    if (L->virtual_clock && !L->rq_head && !L->stopping && L->timers.n) {
        int64_t d = co__heap_min_deadline(&L->timers);
        if (d > L->now) L->now = d; /* nothing can run before it: jump */
    }
    co__fire_timers(L);
}

/* ---- run / stop / close -------------------------------------------------------------- */

/* The calling thread becomes L's owner if L is not running (see the top).
 * Its signal stack comes with it: the old owner's stays with that thread. */
static int co__adopt(co_loop *L, const char *what) {
    if (co__on_loop_thread(L)) return 0;
    if (atomic_load(&L->xactive)) {
        co__report(L, "%s: loop %p is running on another thread (a loop runs on one thread at a time)",
                   what, (void *)L);
        return -CO_ERUNNING;
    }
    L->owner = pthread_self();
    L->altstack = co__altstack_ensure();
    return 0;
}

static int co__check_runnable(co_loop *L, const char *what) {
    if (!L) return -EINVAL;
    if (L->closed) return -CO_ECLOSED;
    int rc = co__adopt(L, what);
    if (rc) return rc;
    if (L->running || co__tls_running) return -CO_ERUNNING;
    return 0;
}

static void co__run_loop(co_loop *L, bool until_stop) {
    co_loop *prev_cur = co__tls_loop;
    co__tls_loop = L;
    co__tls_running = L;
    atomic_store(&L->xactive, true);
    L->running = true;
    co__fiber_init_thread(&L->main);
    co__loop_update_time(L);
    do {
        co__turn(L);
    } while (!L->stopping && until_stop);
    L->stopping = false;
    L->running = false;
    atomic_store(&L->xactive, false);
    co__tls_running = NULL;
    co__tls_loop = prev_cur ? prev_cur : L;
}

int co_loop_run_forever(co_loop *L) {
    if (!L) return -EINVAL;
    int rc = co__check_runnable(L, "co_loop_run_forever");
    if (rc) return rc;
    co__run_loop(L, true);
    return 0;
}

void co_loop_stop(co_loop *L) {
    if (L) L->stopping = true;
}

int co_loop_run_until_complete(co_loop *L, co_task *t, void **value) {
    if (!L || !t) return -EINVAL;
    int rc = co__check_runnable(L, "co_loop_run_until_complete");
    if (rc) return rc;
    if (t->loop != L) return co__wrongloop(t->loop, "co_loop_run_until_complete");
    if (!co_task_done(t)) {
        co_task_retain(t);
        L->stop_when = t; /* an earlier co_loop_stop still counts: one turn */
        co__run_loop(L, true);
        L->stop_when = NULL;
        if (!co_task_done(t)) {
            co_task_release(t);
            return -EINTR; /* co_loop_stop came first */
        }
        rc = co__task_outcome(t, value);
        co_task_release(t);
        return rc;
    }
    return co__task_outcome(t, value);
}

/* Could a turn of the loop make progress on its unfinished tasks? */
static bool co__can_progress(co_loop *L) {
    if (L->rq_head || L->io_waiters || L->xwaiters) return true;
    for (uint32_t i = 0; i < L->timers.n; i++)
        if (L->timers.a[i].t->kind != CO__TM_HANDLE) return true; /* wakes a task */
    return false;
}

static void co__drop_pending(co_loop *L) {
    co__run *r;
    while ((r = co__rq_pop(L))) {
        if (r->kind == CO__RUN_TASK) {
            co__container_of(r, co_task, run)->flags &= ~(uint32_t)CO__T_INREADY;
            continue;
        }
        co__handle *h = co__container_of(r, co__handle, run);
        if (h->hkind == CO__HK_DONE && h->task) co_task_release(h->task);
        co__handle_free(L, h);
    }
    co__timer *t;
    while ((t = co__heap_pop(&L->timers)))
        if (t->kind == CO__TM_HANDLE) co__handle_free(L, co__container_of(t, co__handle, timer));
}

int co_loop_close(co_loop *L) {
    if (!L) return -EINVAL;
    if (L->closed) return 0;
    int arc = co__adopt(L, "co_loop_close");
    if (arc) return arc;
    if (L->running) return -CO_ERUNNING;
    /* Draining runs the loop: not inside another loop running on this thread. */
    if (co__tls_running && L->ntasks_live) return -CO_ERUNNING;
    L->closing = true;
    co__list_for_each(it, &L->all) {
        co_task *t = co__container_of(it, co_task, all);
        if (!(t->flags & CO__T_FUTURE) && !co_task_done(t)) co_cancel(t, "event loop closing");
    }
    if (L->ntasks_live) {
        co_loop *prev_cur = co__tls_loop;
        co__tls_loop = L;
        co__tls_running = L;
        atomic_store(&L->xactive, true);
        L->running = true;
        co__fiber_init_thread(&L->main);
        while (L->ntasks_live && co__can_progress(L)) co__turn(L);
        L->running = false;
        atomic_store(&L->xactive, false);
        co__tls_running = NULL;
        co__tls_loop = prev_cur;
    }
    int rc = 0;
    co__list_for_each(it, &L->all) {
        co_task *t = co__container_of(it, co_task, all);
        if ((t->flags & CO__T_FUTURE) || co_task_done(t)) continue;
        char name[128];
        co__report(L, "task \"%s\" would not finish after being cancelled at loop close",
                   co__task_name_buf(t, name, sizeof name));
        rc = -EBUSY;
    }
    co_loop *prev = co__tls_loop;
    co__tls_loop = L;
    atomic_store(&L->xrefuse, true);
    co__xq_close(L); /* runs the cross-thread calls accepted until now */
    co__tls_loop = prev;
    co__drop_pending(L);
    L->closed = true;
    return rc;
}

static void co__loop_unref(co_loop *L);

int co_loop_free(co_loop *L) {
    if (!L) return 0;
    if (atomic_load(&L->xactive)) return -CO_ERUNNING; /* here or on another thread */
    int rc = L->closed ? 0 : co_loop_close(L);
    if (rc == -CO_EWRONGLOOP || rc == -CO_ERUNNING) return rc;
    co__drop_pending(L); /* what was queued after close (nothing runs it now) */
    /* Tasks that would not finish: drop their stacks and self-references.
     * Handles the user still holds outlive the loop as orphans (loop NULL),
     * freed by their last co_task_release. First the combinators' own
     * records (shields) let go of the tasks they hold, so that the pass
     * below sees final reference counts and frees nothing twice. */
    co__list_for_each(it, &L->all) {
        co_task *t = co__container_of(it, co_task, all);
        co__list_for_each_safe(n, ntmp, &t->done) {
            co__waiter *w = co__container_of(n, co__waiter, link);
            if (w->kind != CO__W_HOOK_OWNED) continue;
            co__list_remove(&w->link);
            w->hook(w, NULL);
        }
    }
    co__list_for_each_safe(it, tmp, &L->all) {
        co_task *t = co__container_of(it, co_task, all);
        co__list_remove(&t->all);
        co__timer_disarm(L, &t->timer);
        /* done-list entries live in the loop's memory or on dead stacks */
        while (!co__list_empty(&t->done)) {
            co__waiter *w = co__container_of(co__list_pop_front(&t->done), co__waiter, link);
            if (w->kind == CO__W_HANDLE) t->refs--;
        }
        bool stuck = !(t->flags & CO__T_FUTURE) && !co_task_done(t);
        if (t->stack) {
            co__fiber_destroy(&t->fiber);
            co__stack_put(&L->stacks, t->stack);
            t->stack = NULL;
        }
        t->loop = NULL;
        if (stuck) {
            t->state = CO_CANCELLED;
            t->err = -ECANCELED;
            t->refs--; /* its running self-reference */
        }
        if (t->refs == 0) co__task_free(t);
        else co__task_orphaned(L, t);
    }
    co__task_cache_fini(L);
    co__heap_fini(&L->timers); /* before the handles its nodes live in */
    co__handles_fini(L);
    co__stack_pool_fini(&L->stacks);
    co__fd_fini(L);
    co__poll_close(&L->poll);
    if (L->wakefd >= 0) close(L->wakefd); /* a push after the close never writes it */
    co__altstack_release(L->altstack);
    if (co__tls_loop == L) co__tls_loop = NULL;
    atomic_store(&L->xdead, true);
    co__loop_unref(L); /* the owner's reference */
    return rc;
}

/* Drops a reference; the last frees the inbox and the struct. */
static void co__loop_unref(co_loop *L) {
    if (atomic_fetch_sub_explicit(&L->xrefs, 1, memory_order_acq_rel) != 1) return;
    co__xq_fini(L);
    free(L);
}

co_loop *co_loop_retain(co_loop *L) {
    if (L) atomic_fetch_add_explicit(&L->xrefs, 1, memory_order_relaxed);
    return L;
}

void co_loop_release(co_loop *L) {
    if (!L) return;
    unsigned n = atomic_load(&L->xrefs);
    do {
        if (n <= 1 && !atomic_load(&L->xdead)) { /* the owner's: co_loop_free drops it */
            co__report(L, "co_loop_release: more releases than co_loop_retain calls; not released");
            return;
        }
    } while (!atomic_compare_exchange_weak(&L->xrefs, &n, n - 1));
    if (n == 1) {
        co__xq_fini(L);
        free(L);
    }
}
