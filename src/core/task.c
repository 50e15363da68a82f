/* task.c — tasks: spawn, run on their own stack, finish, join, cancel,
 * sleep and yield; the outcome accessors and co_fail.
 *
 * Loop-thread only. A task's life: spawned (CO_PENDING, in the ready
 * queue, no stack yet) -> first run binds a stack from the pool ->
 * CO_RUNNING / CO_PENDING (suspended) as it runs and waits -> its function
 * returns -> finished (CO_DONE | CO_FAILED | CO_CANCELLED), done list
 * fired -> the next task to run reaps its stack -> freed when the last
 * reference goes. Stacks are bound lazily so that spawning a million tasks
 * that have not run yet costs a million small structs, not a million
 * stacks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Freed task structs kept for reuse per loop. Not in the ASan build: a
 * struct freed at once lets AddressSanitizer see any use after free. */
#if defined(__SANITIZE_ADDRESS__)
#define CO__ASAN 1
#define CO__TASK_CACHE_MAX 0
#else
#define CO__ASAN 0
#define CO__TASK_CACHE_MAX 4096
#endif
/* Debug mode: how many freed task structs are kept aside, unused (about
 * 200 B each), to catch a late co_task_release. */
#define CO__QUARANTINE 4096
#define CO__ID_BLOCK 1024

/* Task numbers are per process, as asyncio's Task-N; each thread takes a
 * block of them at a time so spawning needs no atomic operation. */
static atomic_uint_fast64_t g_next_id = 1;
static _Thread_local uint64_t tl_id_next, tl_id_end;

uint64_t co__next_id(void) {
    if (co__unlikely(tl_id_next == tl_id_end)) {
        tl_id_next = atomic_fetch_add(&g_next_id, CO__ID_BLOCK);
        tl_id_end = tl_id_next + CO__ID_BLOCK;
    }
    return tl_id_next++;
}

/* ---- allocation ------------------------------------------------------------------ */

co_task *co__task_alloc(co_loop *L) {
    co_task *t = L->task_cache;
    if (t) {
        L->task_cache = (co_task *)t->arg;
        L->ntask_cache--;
    } else {
        t = malloc(sizeof *t);
        if (!t) return NULL;
    }
    memset(t, 0, sizeof *t);
    t->loop = L;
    t->run.kind = CO__RUN_TASK;
    t->timer.idx = CO__TIMER_IDLE;
    t->timer.kind = CO__TM_TASK;
    co__list_init(&t->done);
    co__list_append(&L->all, &t->all);
    return t;
}

/* Debug mode: t goes to the quarantine (keeping its name for the report),
 * and the oldest there is really freed. */
static void co__task_quarantine(co_loop *L, co_task *t) {
    if (!L->quarantine.next) co__list_init(&L->quarantine);
    co__list_append(&L->quarantine, &t->all);
    if (++L->nquarantine <= CO__QUARANTINE) return;
    co_task *old = co__container_of(co__list_pop_front(&L->quarantine), co_task, all);
    L->nquarantine--;
    free(old->name);
    free(old);
}

void co__task_free(co_task *t) {
    co_loop *L = t->loop;
    if (t->state == CO_FAILED && !(t->flags & CO__T_RETRIEVED)) {
        char name[128];
        co__report(L, "Task error was never retrieved: %s: %s (%s)",
                   co__task_name_buf(t, name, sizeof name), t->msg ? t->msg : co_strerror(t->err),
                   co_err_name(t->err));
    }
    free(t->msg);
    t->msg = NULL;
    t->flags |= CO__T_FREED; /* refs is 0: see co_task_release */
    if (L) {
        co__list_remove(&t->all);
        if (co__unlikely(L->debug)) {
            co__task_quarantine(L, t);
            return;
        }
        free(t->name);
        t->name = NULL; /* a late release names it Task-<id> */
#if CO__TASK_CACHE_MAX > 0
        if (L->ntask_cache < CO__TASK_CACHE_MAX) {
            t->arg = L->task_cache;
            L->task_cache = t;
            L->ntask_cache++;
            return;
        }
#endif
    } else {
        free(t->name);
    }
    free(t);
}

void co__task_cache_fini(co_loop *L) {
    while (L->task_cache) {
        co_task *t = L->task_cache;
        L->task_cache = (co_task *)t->arg;
        free(t);
    }
    while (L->nquarantine) {
        co_task *t = co__container_of(co__list_pop_front(&L->quarantine), co_task, all);
        L->nquarantine--;
        free(t->name);
        free(t);
    }
}

void co__task_orphaned(co_loop *L, co_task *t) {
    if (!L->debug && !CO__ASAN) return;
    char name[128];
    co__report(L, "task %s was never released: %u handle(s) still held when its loop was freed "
                  "(a co_task_release is missing)",
               co__task_name_buf(t, name, sizeof name), t->refs);
}

/* A retain or release of a freed task: loud, and harmless while the
 * struct is cached or quarantined (refs 0, CO__T_FREED). */
static void co__task_misuse(const co_task *t, const char *what) {
    char name[128];
    co__report(t->loop, "%s: task %s was already freed (released once more than retained); ignored",
               what, co__task_name_buf(t, name, sizeof name));
}

void co_task_retain(co_task *t) {
    if (!t) return;
    if (co__unlikely(t->refs == 0)) co__task_misuse(t, "co_task_retain");
    else t->refs++;
}

void co_task_release(co_task *t) {
    if (!t) return;
    if (co__unlikely(t->refs == 0)) co__task_misuse(t, "co_task_release");
    else if (--t->refs == 0) co__task_free(t);
}

/* ---- names and messages ------------------------------------------------------------- */

const char *co__task_name_buf(const co_task *t, char *buf, size_t n) {
    if (t->name) return t->name;
    snprintf(buf, n, "%s-%llu", (t->flags & CO__T_FUTURE) ? "Future" : "Task",
             (unsigned long long)t->id);
    return buf;
}

const char *co_task_name(const co_task *t) {
    if (!t) return "(null)";
    if (!t->name) {
        char buf[32];
        co__task_name_buf(t, buf, sizeof buf);
        ((co_task *)t)->name = strdup(buf); /* formatted once, on demand */
        if (!t->name) return "Task-?";
    }
    return t->name;
}

int co_task_set_name(co_task *t, const char *name) {
    if (!t || !name) return -EINVAL;
    char *copy = strdup(name);
    if (!copy) return -ENOMEM;
    free(t->name);
    t->name = copy;
    return 0;
}

void co__set_msg(co_task *t, const char *msg) {
    char *copy = msg ? strdup(msg) : NULL;
    free(t->msg);
    t->msg = copy;
}

/* ---- spawning and running --------------------------------------------------------------- */

co_task *co_spawn(co_fn fn, void *arg) { return co_spawn_opts(fn, arg, NULL); }

co_task *co_spawn_opts(co_fn fn, void *arg, const co_task_opts *opts) {
    int err = 0;
    co_loop *L = co__loop_get(&err);
    if (!L) {
        errno = -err;
        return NULL;
    }
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    if (co__unlikely(opts && opts->stack_size > CO__STACK_MAX)) {
        co__report(L, "co_spawn_opts: stack_size %zu bytes is over the limit of %zu (1 GiB); task not "
                      "spawned", opts->stack_size, (size_t)CO__STACK_MAX);
        errno = EINVAL;
        return NULL;
    }
    if (L->closing) {
        errno = CO_ECLOSED;
        return NULL;
    }
    co_task *t = co__task_alloc(L);
    if (!t) {
        errno = ENOMEM;
        return NULL;
    }
    t->fn = fn;
    t->arg = arg;
    t->refs = 2; /* the caller's handle + the task's own while unfinished */
    t->id = co__next_id();
    if (opts) {
        t->stack_size = opts->stack_size;
        if (opts->name && !(t->name = strdup(opts->name))) {
            co__list_remove(&t->all);
            free(t);
            errno = ENOMEM;
            return NULL;
        }
    }
    L->ntasks_live++;
    co__wake(t, 0);
    return t;
}

static void co__task_entry(void *p) {
    co__fiber_started();
    co_task *t = p;
    co__reap(t->loop);
    void *v = t->fn(t->arg);
    if (co__unlikely(t->scope)) co__scopes_abandoned(t);
    co_loop *L = t->loop;
    if (t->flags & CO__T_INREADY) abort(); /* a finishing task must not be queued */
    if (t->flags & CO__T_FAILSET) {
        if (t->err == -ECANCELED) t->state = CO_CANCELLED;
        else t->state = CO_FAILED;
    } else if (t->flags & CO__T_CANCEL) {
        t->state = CO_CANCELLED;
        t->err = -ECANCELED;
    } else {
        t->value = v;
        t->state = CO_DONE;
    }
    co__task_finish(t);
    /* frames from here down are abandoned (ASan must unpoison them) */
    t->stack->dirty_lo = (char *)((uintptr_t)__builtin_frame_address(0) - 4096);
    L->zombie = t; /* its stack and self-reference go after the switch */
    co__switch_out(L, t, true);
    abort(); /* a finished task is never resumed */
}

int co__task_start(co_task *t) {
    co_loop *L = t->loop;
    co__stack *s;
    int rc = co__stack_get(&L->stacks, t->stack_size ? t->stack_size : L->default_stack, &s);
    if (rc < 0) {
        t->err = rc;
        co__set_msg(t, "no memory for the task's stack");
        t->state = CO_FAILED;
        co__task_finish(t);
        co_task_release(t); /* the self-reference: it will never run */
        return rc;
    }
    t->stack = s;
    co__fiber_make(&t->fiber, s->lo, s->usable, co__task_entry, t);
    return 0;
}

void co__reap(co_loop *L) {
    co_task *z = L->zombie;
    if (!z) return;
    L->zombie = NULL;
    co__fiber_destroy(&z->fiber);
    co__stack_put(&L->stacks, z->stack);
    z->stack = NULL;
    co_task_release(z);
}

void co__fire_done(co_task *t) {
    co_loop *L = t->loop;
    co__list *n;
    while ((n = co__list_pop_front(&t->done))) {
        co__waiter *w = co__container_of(n, co__waiter, link);
        if (w->kind == CO__W_TASK) {
            co__wake(w->task, 0);
        } else if (w->kind == CO__W_HANDLE) {
            co__handle *h = co__container_of(w, co__handle, w);
            h->state = CO__H_READY;
            co__rq_push(L, &h->run);
        } else { /* CO__W_HOOK, CO__W_HOOK_OWNED */
            w->hook(w, t);
        }
    }
}

void co__task_finish(co_task *t) {
    co_loop *L = t->loop;
    if (!(t->flags & CO__T_FUTURE)) L->ntasks_live--;
    co__timer_disarm(L, &t->timer);
    t->finished_at = L->now; /* the turn's clock: a clock read per finish costs 13% of a spawn */
    co__fire_done(t);
    if (L->stop_when == t) L->stopping = true;
}

/* ---- waiting ----------------------------------------------------------------------------- */

int co__can_suspend(co_task **out) {
    co_loop *L = co__tls_loop;
    co_task *t = L ? L->cur : NULL;
    if (co__unlikely(!t)) return -CO_ENOTASK;
    *out = t;
    return co__cancel_pending(t) ? -ECANCELED : 0;
}

int co__suspend(co_task *t) {
    t->flags |= CO__T_SUSPENDED;
    co__switch_out(t->loop, t, false);
    /* Running again: whoever resumed us cleared INREADY; SUSPENDED must go
     * too (co_yield resumes without a co__wake), or a later co_cancel would
     * queue a running task. */
    t->flags &= ~(uint32_t)CO__T_SUSPENDED;
    return t->wake;
}

co_task *co_current(void) {
    /* only while a loop runs here: this thread's current loop may be
     * running on another thread, which took it over (loop.c) */
    co_loop *L = co__tls_loop;
    return L && co__loop_running_here() ? L->cur : NULL;
}

bool co_cancelled(void) {
    co_task *t = co_current();
    return t && co__cancel_pending(t);
}

/* A sleep's completion is its deadline: the timer that fired wins over a
 * cancel in the same turn, as every wait's completion does (wait.h). */
typedef struct co__sleeper {
    const co_loop *loop;
    int64_t until;
} co__sleeper;
static bool co__slept(const void *arg) {
    const co__sleeper *z = arg;
    return z->loop->now >= z->until;
}

/* Sleeps until `until` on the loop clock (CO__NO_DEADLINE: until
 * cancelled); an `until` that has passed yields once (asyncio.sleep(0)). */
static int co__sleep_until(co_task *t, int64_t until) {
    co_loop *L = t->loop;
    if (until <= L->now) {
        co__wake(t, 0);
        return co__suspend(t);
    }
    co__sleeper z = {L, until};
    return co__wait(t, until, co__slept, &z, 0);
}

int co_sleep_ns(int64_t ns) {
    co_task *t;
    int rc = co__can_suspend(&t);
    if (rc) return rc;
    if (ns > 0) co__loop_update_time(t->loop); /* "at least ns from now", not from the turn's start */
    return co__sleep_until(t, co__deadline_plus(t->loop->now, ns));
}

int co_sleep(double seconds) {
    co_task *t;
    int rc = co__can_suspend(&t);
    if (rc) return rc;
    if (isnan(seconds)) return -EINVAL;
    if (!(seconds > 0)) return co__sleep_until(t, t->loop->now); /* yield, no clock read */
    int64_t until;
    co__deadline_in(t->loop, seconds, &until);
    return co__sleep_until(t, until);
}

int co_sleep_until(double when) {
    co_task *t;
    int rc = co__can_suspend(&t);
    if (rc) return rc;
    int64_t until;
    if (co__deadline_at(when, &until)) return -EINVAL;
    return co__sleep_until(t, until);
}

int co_yield(void) { return co_sleep_ns(0); }

/* ---- outcome ------------------------------------------------------------------------------ */

bool co_task_done(const co_task *t) { return t && t->state >= CO_DONE; }

int co__task_outcome(co_task *t, void **value) {
    t->flags |= CO__T_RETRIEVED;
    switch (t->state) {
    case CO_DONE:
        if (value) *value = t->value;
        return 0;
    case CO_FAILED:
        return t->err;
    case CO_CANCELLED:
        return -ECANCELED;
    default:
        return -CO_EINVALSTATE;
    }
}

static bool co__joined(const void *t) { return co_task_done(t); }

int co_join(co_task *t, void **value) {
    if (!t) return -EINVAL;
    co_loop *L = co__tls_loop;
    co_task *cur = L ? L->cur : NULL;
    if (!cur) return -CO_ENOTASK;
    if (!t->loop && co_task_done(t)) return co__task_outcome(t, value); /* outlived its loop */
    if (t->loop != cur->loop) return co__wrongloop(t->loop, "co_join");
    if (co_task_done(t)) return co__task_outcome(t, value);
    if (t == cur) return -EDEADLK;
    if (co__cancel_pending(cur)) return -ECANCELED;
    co__waiter w = {.kind = CO__W_TASK, .task = cur};
    co__list_init(&w.link);
    co__list_append(&t->done, &w.link);
    co_task_retain(t);
    int rc = co__wait(cur, CO__NO_DEADLINE, co__joined, t, 0);
    if (co__list_linked(&w.link)) co__list_remove(&w.link);
    if (rc == 0) rc = co__task_outcome(t, value);
    co_task_release(t);
    return rc;
}

int co_cancel(co_task *t, const char *msg) {
    if (!t) return -EINVAL;
    co_loop *L = t->loop;
    if (!L || co_task_done(t)) return 0;
    if (!co__on_loop_thread(L)) return co__wrongloop(L, "co_cancel");
    if (msg) co__set_msg(t, msg);
    if (t->flags & CO__T_FUTURE) {
        t->state = CO_CANCELLED;
        t->err = -ECANCELED;
        co__task_finish(t);
        return 1;
    }
    t->flags |= CO__T_CANCEL;
    if (t == L->cur) return 1; /* running: its next suspension point fails */
    if (t->scope && !co__scope_pending(t)) return 1; /* shielded: delivered when it leaves the shield */
    co__interrupt(t);
    return 1;
}

void *co_fail(int err, const char *fmt, ...) {
    co_task *t = co_current();
    if (!t) return NULL;
    if (err >= 0) err = -EINVAL; /* a failure needs an error; 0 would read as success */
    t->flags |= CO__T_FAILSET;
    t->err = err;
    char *msg = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
        va_end(ap);
    }
    free(t->msg);
    t->msg = msg;
    return NULL;
}

co_state co_task_state(const co_task *t) { return t ? (co_state)t->state : (co_state)-EINVAL; }

const char *co_state_name(co_state s) {
    static const char *const names[] = {"PENDING", "RUNNING", "DONE", "FAILED", "CANCELLED"};
    return (unsigned)s < 5 ? names[s] : "INVALID";
}

int co_task_error(co_task *t) {
    if (!t) return -EINVAL;
    if (!co_task_done(t)) return -CO_EINVALSTATE;
    return co__task_outcome(t, NULL);
}

const char *co_task_message(const co_task *t) { return t ? t->msg : NULL; }
co_loop *co_task_loop(const co_task *t) { return t ? t->loop : NULL; }

co_result co_task_result(co_task *t) {
    co_result r = {CO_PENDING, NULL, 0, NULL, 0};
    if (!t) {
        r.state = (co_state)-EINVAL;
        r.err = -EINVAL;
    }
    if (!t || !co_task_done(t)) return r;
    t->flags |= CO__T_RETRIEVED;
    r.state = (co_state)t->state;
    r.value = t->state == CO_DONE ? t->value : NULL;
    r.err = t->state == CO_DONE ? 0 : t->state == CO_CANCELLED ? -ECANCELED : t->err;
    r.msg = t->msg;
    r.time = (double)t->finished_at * 1e-9;
    return r;
}
