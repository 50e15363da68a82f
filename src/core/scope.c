/* scope.c — cancel and timeout scopes (corio/scope.h).
 *
 * Loop-thread only. A scope is a link in its task's chain (task->scope,
 * innermost first) plus an optional timer. Nothing here allocates: the
 * scope lives in the caller's storage and its timer node inside it.
 *
 * Delivering a cancellation: when a scope fires (deadline) or is cancelled,
 * its task is interrupted (woken with -ECANCELED) only if the scope is
 * "exposed" — no shielding scope sits between it and the task's innermost
 * scope. Otherwise nothing happens now; the cancellation becomes visible
 * (co__cancel_pending) when the shield exits, and the task, running then,
 * meets it at its next suspension point.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

CO__CHECK_SIZE(co_scope, co__scope);

static inline co__scope *co__sc(co_scope *s) { return (co__scope *)(void *)s; }
static inline const co__scope *co__csc(const co_scope *s) { return (const co__scope *)(const void *)s; }

bool co__scope_pending(const co_task *t) {
    for (const co__scope *x = t->scope; x; x = x->parent) {
        if (x->fired || x->cancelled) return true;
        if (x->mode & CO_SHIELD) return false;
    }
    return t->flags & CO__T_CANCEL;
}

/* Can a cancellation of s reach its task where the task stands now? */
static bool co__scope_exposed(const co__scope *s) {
    for (const co__scope *x = s->task->scope; x && x != s; x = x->parent)
        if (x->mode & CO_SHIELD) return false;
    return true;
}

static void co__scope_deliver(co__scope *s) {
    co_task *t = s->task;
    if (t == t->loop->cur) return; /* running: its next suspension point sees it */
    if (co__scope_exposed(s)) co__interrupt(t);
}

void co__scope_fire(co_loop *L, co__timer *tm) {
    (void)L;
    co__scope *s = co__container_of(tm, co__scope, timer);
    s->fired = true;
    co__scope_deliver(s);
}

void co__scope_cancel(co__scope *s) {
    if (!s->open || s->cancelled) return;
    s->cancelled = true;
    co__scope_deliver(s);
}

/* Arms s's timer for deadline, or fires s at once if it has passed. */
static int co__scope_arm(co__scope *s, int64_t deadline) {
    co_loop *L = s->task->loop;
    s->deadline = deadline;
    if (deadline == CO__NO_DEADLINE) return 0;
    if (deadline <= L->now) {
        s->fired = true;
        co__scope_deliver(s);
        return 0;
    }
    return co__timer_arm(L, &s->timer, deadline);
}

int co__scope_push(co__scope *s, co_task *t, int64_t deadline, int mode) {
    memset(s, 0, sizeof *s);
    s->task = t;
    s->mode = (uint8_t)mode;
    s->timer.idx = CO__TIMER_IDLE;
    s->timer.kind = CO__TM_SCOPE;
    s->parent = t->scope;
    t->scope = s;
    s->open = true;
    int rc = co__scope_arm(s, deadline);
    if (rc) co__scope_pop(s);
    return rc;
}

void co__scope_pop(co__scope *s) {
    co__timer_disarm(s->task->loop, &s->timer);
    s->task->scope = s->parent;
    s->open = false;
}

int co_scope_enter(co_scope *s, double timeout, int mode) {
    if (!s || isnan(timeout) || (mode & ~(CO_MOVE_ON | CO_SHIELD))) return -EINVAL;
    co_loop *L = co__tls_loop;
    co_task *t = L ? L->cur : NULL;
    if (!t) return -CO_ENOTASK;
    int64_t deadline;
    co__deadline_in(L, timeout, &deadline);
    return co__scope_push(co__sc(s), t, deadline, mode);
}

int co_scope_exit(co_scope *us) {
    if (!us) return -EINVAL;
    co__scope *s = co__sc(us);
    co_task *t = co_current();
    if (!t) return -CO_ENOTASK;
    if (!s->open || t->scope != s || s->group) return -CO_EINVALSTATE;
    co__scope_pop(s);
    if (co__cancel_pending(t)) return -ECANCELED;
    if (s->fired && !(s->mode & CO_MOVE_ON)) return -ETIMEDOUT;
    return 0;
}

static int co__scope_check(co__scope *s, const char *what) {
    if (!s->open) return -CO_EINVALSTATE;
    co_loop *L = s->task->loop;
    if (!co__on_loop_thread(L)) return co__wrongloop(L, what);
    return 0;
}

int co_scope_reschedule(co_scope *us, double when) {
    if (!us || isnan(when)) return -EINVAL;
    co__scope *s = co__sc(us);
    int rc = co__scope_check(s, "co_scope_reschedule");
    if (rc) return rc;
    if (s->fired) return -CO_EINVALSTATE;
    co_loop *L = s->task->loop;
    co__timer_disarm(L, &s->timer);
    co__loop_update_time(L);
    int64_t d;
    co__deadline_at(when, &d);
    return co__scope_arm(s, d);
}

int co_scope_cancel(co_scope *us) {
    if (!us) return -EINVAL;
    co__scope *s = co__sc(us);
    int rc = co__scope_check(s, "co_scope_cancel");
    if (rc) return rc;
    co__scope_cancel(s);
    return 0;
}

bool co_scope_expired(const co_scope *s) { return s && co__csc(s)->fired; }

double co_scope_deadline(const co_scope *us) {
    if (!us) return INFINITY;
    const co__scope *s = co__csc(us);
    return s->deadline == CO__NO_DEADLINE ? INFINITY : (double)s->deadline * 1e-9;
}

/* ---- a task returned inside its scopes -------------------------------------------- */

static __attribute__((noinline)) void co__scopes_close_all(co_task *t) {
    char name[128];
    size_t n = 0;
    for (co__scope *x = t->scope; x; x = x->parent) n++;
    co__report(t->loop, "task \"%s\" returned with %zu scope(s) or group(s) still open; closed for it",
               co__task_name_buf(t, name, sizeof name), n);
    while (t->scope) {
        co__scope *s = t->scope;
        if (s->group) co__group_abandon(s->group); /* pops it; joins the children */
        else co__scope_pop(s);
    }
}

void co__scopes_abandoned(co_task *t) {
    /* The scopes on the task's stack are in the dead frames of its
     * function, below us. Move the stack pointer below the lowest of them
     * first, so that the frames of the clean-up do not overwrite them. */
    char *here = __builtin_frame_address(0);
    char *lo = here;
    char *stack_lo = (char *)t->stack->lo;
    for (co__scope *x = t->scope; x; x = x->parent)
        if ((char *)x >= stack_lo && (char *)x < lo) lo = (char *)x;
    size_t pad = (size_t)(here - lo) + 512;
    volatile char *gap = __builtin_alloca(pad);
    gap[0] = 0;
#if CO__ASAN
    /* ASan poisons the redzones of the alloca, which may cover a scope */
    __asan_unpoison_memory_region(lo, (size_t)(here - lo));
#endif
    co__scopes_close_all(t);
}
