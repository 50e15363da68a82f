/* combine.c — gather, wait, as_completed, wait_for, shield.
 *
 * Loop-thread only. All of them stand on one piece: a watch set
 * (co__wset), which hooks one record into each task's done list and keeps
 * counters the hooks update as tasks finish (how many finished, the first
 * to fail, the finishing order). The waiting task sleeps in
 * co__wset_wait until a predicate over those counters holds; hooks wake it
 * only while it is parked there, so a task that is running or sleeping
 * somewhere else is never disturbed. Nothing is scanned per wake-up:
 * gathering n tasks costs O(n) in all.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define CO__NONE SIZE_MAX
#define CO__WSET_LOCAL 8

typedef struct co__wset co__wset;
typedef bool (*co__wset_pred)(const co__wset *s);

typedef struct co__watch {
    co__waiter w; /* CO__W_HOOK in tasks[idx]'s done list */
    co__wset *set;
    size_t idx;
} co__watch;

struct co__wset {
    co_task **tasks;     /* the caller's array */
    size_t n;
    co_task *waiter;     /* the task parked in co__wset_wait, or NULL */
    co__wset_pred pred;  /* what it waits for */
    size_t ndone;        /* tasks finished */
    size_t first_bad;    /* index of the first to finish not DONE, or CO__NONE */
    size_t first_failed; /* index of the first to finish FAILED, or CO__NONE */
    size_t *order;       /* finishing order (indices), or NULL if not kept */
    size_t nordered;
    size_t taken;        /* as_completed: order[taken] is the next to yield */
    co__watch *watch;
    co__watch local[CO__WSET_LOCAL];
    size_t local_order[CO__WSET_LOCAL];
};

static void co__wset_note(co__wset *s, size_t idx) {
    co_task *t = s->tasks[idx];
    s->ndone++;
    if (t->state != CO_DONE && s->first_bad == CO__NONE) s->first_bad = idx;
    if (t->state == CO_FAILED && s->first_failed == CO__NONE) s->first_failed = idx;
    if (s->order) s->order[s->nordered++] = idx;
}

static void co__wset_hook(co__waiter *w, co_task *finished) {
    (void)finished;
    co__watch *x = co__container_of(w, co__watch, w);
    co__wset *s = x->set;
    co__wset_note(s, x->idx);
    if (s->waiter) co__wake_if_parked(s->waiter);
}

/* Checks the tasks: non-NULL, of loop L (or finished and orphaned), not
 * the caller itself (cur; NULL outside tasks), which would wait forever. */
static int co__check_tasks(co_loop *L, co_task *cur, co_task **tasks, size_t n, const char *what) {
    if (n && !tasks) return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        co_task *t = tasks[i];
        if (!t) return -EINVAL;
        if (t == cur) return -EDEADLK;
        if (t->loop != L && !(t->loop == NULL && co_task_done(t))) return co__wrongloop(t->loop, what);
    }
    return 0;
}

/* Copies the distinct tasks of src[0..n) to dst (may be src; NULL: only
 * count), in the order of their first appearance; returns how many.
 * asyncio's wait and as_completed take a set. O(n): tasks are marked, not
 * compared, and unmarked before returning. */
static size_t co__distinct(co_task **dst, co_task **src, size_t n) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        co_task *t = src[i];
        if (t->flags & CO__T_MARK) continue;
        t->flags |= CO__T_MARK;
        if (dst) dst[m] = t;
        m++;
    }
    for (size_t i = 0; i < n; i++) src[i]->flags &= ~(uint32_t)CO__T_MARK;
    return m;
}

/* Hooks s into each unfinished task (holding a reference to it); counts
 * those already finished, in the order given. 0 or -ENOMEM. */
static int co__wset_init(co__wset *s, co_task **tasks, size_t n, bool keep_order) {
    memset(s, 0, offsetof(co__wset, local));
    s->tasks = tasks;
    s->n = n;
    s->first_bad = s->first_failed = CO__NONE;
    if (n <= CO__WSET_LOCAL) {
        s->watch = s->local;
        if (keep_order) s->order = s->local_order;
    } else {
        s->watch = malloc(n * sizeof *s->watch);
        if (keep_order) s->order = malloc(n * sizeof *s->order);
        if (!s->watch || (keep_order && !s->order)) {
            free(s->watch);
            free(s->order);
            return -ENOMEM;
        }
    }
    for (size_t i = 0; i < n; i++) {
        co__watch *x = &s->watch[i];
        co__list_init(&x->w.link);
        x->set = s;
        x->idx = i;
        co_task *t = tasks[i];
        co_task_retain(t);
        if (co_task_done(t)) {
            co__wset_note(s, i);
            continue;
        }
        x->w.kind = CO__W_HOOK;
        x->w.hook = co__wset_hook;
        co__list_append(&t->done, &x->w.link);
    }
    return 0;
}

static void co__wset_fini(co__wset *s) {
    for (size_t i = 0; i < s->n; i++) {
        if (co__list_linked(&s->watch[i].w.link)) co__list_remove(&s->watch[i].w.link);
        co_task_release(s->tasks[i]);
    }
    if (s->watch != s->local) {
        free(s->watch);
        free(s->order);
    }
    s->n = 0;
}

static bool co__all_done(const co__wset *s) { return s->ndone == s->n; }
static bool co__all_done_or_bad(const co__wset *s) { return s->ndone == s->n || s->first_bad != CO__NONE; }
static bool co__any_done(const co__wset *s) { return s->ndone > 0; }
static bool co__unyielded(const co__wset *s) { return s->nordered > s->taken; }
static bool co__all_done_or_failed(const co__wset *s) {
    return s->ndone == s->n || s->first_failed != CO__NONE;
}

static bool co__wset_done(const void *arg) {
    const co__wset *s = arg;
    return s->pred(s);
}

/* Parks the calling task t until pred(s) holds (0), the loop clock reaches
 * deadline (-ETIMEDOUT), or — if interruptible — a cancellation is pending
 * for t (-ECANCELED): the one wait's rules (wait.h). Not interruptible, a
 * cancellation wakes t up but the wait goes on: used to let children
 * finish their cleanup. */
static int co__wset_wait(co__wset *s, co_task *t, co__wset_pred pred, int64_t deadline,
                         bool interruptible) {
    s->waiter = t;
    s->pred = pred;
    int rc = co__wait(t, deadline, co__wset_done, s, interruptible ? 0 : CO__WAIT_SHIELDED);
    s->waiter = NULL;
    return rc;
}

/* The calling task, checked: -CO_ENOTASK outside tasks. */
static int co__caller(co_task **out) {
    co_loop *L = co__tls_loop;
    co_task *t = L ? L->cur : NULL;
    if (!t) return -CO_ENOTASK;
    *out = t;
    return 0;
}

/* Cancels every unfinished task of s, then waits (not interruptibly) until
 * they have all finished. */
static void co__wset_cancel_all(co__wset *s, co_task *cur, const char *msg) {
    for (size_t i = 0; i < s->n; i++)
        if (!co_task_done(s->tasks[i])) co_cancel(s->tasks[i], msg);
    co__wset_wait(s, cur, co__all_done, CO__NO_DEADLINE, false);
}

/* ---- gather --------------------------------------------------------------------- */

int co_gather(co_task **tasks, size_t n, co_result *results, int flags) {
    co_task *cur;
    int rc = co__caller(&cur);
    if (rc) return rc;
    if (flags & ~CO_RETURN_ERRORS) return -EINVAL;
    if ((rc = co__check_tasks(cur->loop, cur, tasks, n, "co_gather"))) return rc;
    co__wset s;
    if ((rc = co__wset_init(&s, tasks, n, false))) return rc;
    bool all = flags & CO_RETURN_ERRORS;
    rc = co__wset_wait(&s, cur, all ? co__all_done : co__all_done_or_bad, CO__NO_DEADLINE, true);
    if (rc == -ECANCELED) co__wset_cancel_all(&s, cur, NULL);
    if (results) {
        for (size_t i = 0; i < n; i++) results[i] = co_task_result(tasks[i]);
    }
    if (rc == 0 && !all && s.first_bad != CO__NONE) rc = co__task_outcome(tasks[s.first_bad], NULL);
    co__wset_fini(&s);
    return rc;
}

/* ---- wait ---------------------------------------------------------------------- */

/* Points *tasks at the distinct ones and sets *n to their number: the
 * caller's array itself when nothing repeats, else a copy in local (room
 * for CO__WSET_LOCAL) or in malloc'd memory. 0 or -ENOMEM. */
static int co__distinct_view(co_task ***tasks, size_t *n, co_task **local) {
    size_t m = co__distinct(NULL, *tasks, *n);
    if (m == *n) return 0;
    co_task **copy = m <= CO__WSET_LOCAL ? local : malloc(m * sizeof *copy);
    if (!copy) return -ENOMEM;
    co__distinct(copy, *tasks, *n);
    *tasks = copy;
    *n = m;
    return 0;
}

/* Frees what co__distinct_view allocated, if it did. */
static void co__distinct_free(co_task **view, co_task **given, co_task **local) {
    if (view != given && view != local) free(view);
}

int co_wait(co_task **tasks, size_t n, int when, double timeout, co_task **done, size_t *ndone,
            co_task **pending, size_t *npending) {
    co_task *cur;
    int rc = co__caller(&cur);
    if (rc) return rc;
    int64_t deadline;
    if (!n || co__deadline_in(cur->loop, timeout, &deadline)) return -EINVAL;
    co__wset_pred pred;
    switch (when) {
    case CO_ALL_COMPLETED: pred = co__all_done; break;
    case CO_FIRST_COMPLETED: pred = co__any_done; break;
    case CO_FIRST_ERROR: pred = co__all_done_or_failed; break;
    default: return -EINVAL;
    }
    if ((rc = co__check_tasks(cur->loop, cur, tasks, n, "co_wait"))) return rc;
    co_task **given = tasks, *local[CO__WSET_LOCAL];
    if ((rc = co__distinct_view(&tasks, &n, local))) return rc; /* a task given twice counts once */
    co__wset s;
    if ((rc = co__wset_init(&s, tasks, n, true))) {
        co__distinct_free(tasks, given, local);
        return rc;
    }
    rc = co__wset_wait(&s, cur, pred, deadline, true);
    if (rc == -ETIMEDOUT) rc = 0;
    if (done)
        for (size_t i = 0; i < s.nordered; i++) done[i] = tasks[s.order[i]];
    if (ndone) *ndone = s.nordered;
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        if (co_task_done(tasks[i])) continue;
        if (pending) pending[np] = tasks[i];
        np++;
    }
    if (npending) *npending = np;
    co__wset_fini(&s);
    co__distinct_free(tasks, given, local);
    return rc;
}

/* ---- as_completed ---------------------------------------------------------------- */

typedef struct co__asc {
    co_loop *loop;
    int64_t deadline;
    bool timed_out;
    co_task **tasks; /* a copy: the caller's array may go before the iterator */
    co__wset set;
} co__asc;

int co_as_completed_init(co_as_completed *it, co_task **tasks, size_t n, double timeout) {
    if (!it) return -EINVAL;
    it->_priv = NULL;
    if (isnan(timeout)) return -EINVAL;
    int err = 0;
    co_loop *L = co__loop_get(&err);
    if (!L) return err;
    int64_t deadline;
    co__deadline_in(L, timeout, &deadline);
    int rc = co__check_tasks(L, co_current(), tasks, n, "co_as_completed_init");
    if (rc) return rc;
    co__asc *a = calloc(1, sizeof *a);
    co_task **copy = malloc((n ? n : 1) * sizeof *copy);
    if (!a || !copy) {
        free(a);
        free(copy);
        return -ENOMEM;
    }
    if (n) memcpy(copy, tasks, n * sizeof *copy);
    n = co__distinct(copy, copy, n); /* a task given twice is yielded once */
    a->loop = L;
    a->tasks = copy;
    a->deadline = deadline;
    if ((rc = co__wset_init(&a->set, copy, n, true))) {
        free(copy);
        free(a);
        return rc;
    }
    it->_priv = a;
    return 0;
}

int co_as_completed_next(co_as_completed *it, co_task **next) {
    co__asc *a = it ? it->_priv : NULL;
    if (!a || !next) return -EINVAL;
    co_task *cur;
    int rc = co__caller(&cur);
    if (rc) return rc;
    if (cur->loop != a->loop) return co__wrongloop(a->loop, "co_as_completed_next");
    co__wset *s = &a->set;
    if (s->taken == s->n) return 1;
    if (a->timed_out) return -ETIMEDOUT; /* for good, as asyncio */
    if (s->taken == s->nordered) rc = co__wset_wait(s, cur, co__unyielded, a->deadline, true);
    if (s->taken < s->nordered) { /* a result wins over a timeout in the same turn */
        *next = a->tasks[s->order[s->taken++]];
        return 0;
    }
    if (rc == -ETIMEDOUT) a->timed_out = true;
    return rc;
}

void co_as_completed_fini(co_as_completed *it) {
    co__asc *a = it ? it->_priv : NULL;
    if (!a) return;
    co__wset_fini(&a->set);
    free(a->tasks);
    free(a);
    it->_priv = NULL;
}

/* ---- wait_for ---------------------------------------------------------------------- */

int co_wait_for(co_task *t, double timeout, void **value) {
    co_task *cur;
    int rc = co__caller(&cur);
    if (rc) return rc;
    int64_t deadline;
    if (!t || co__deadline_in(cur->loop, timeout, &deadline)) return -EINVAL;
    if ((rc = co__check_tasks(cur->loop, cur, &t, 1, "co_wait_for"))) return rc;
    co__wset s;
    if ((rc = co__wset_init(&s, &t, 1, false))) return rc;
    /* co__wset_wait looks at the task before the clock: a task that
     * finished in the turn the timeout fired, before we ran, wins. */
    rc = co__wset_wait(&s, cur, co__all_done, deadline, true);
    if (rc == -ETIMEDOUT || rc == -ECANCELED) {
        int why = rc;
        co__wset_cancel_all(&s, cur, why == -ETIMEDOUT ? "co_wait_for: timed out" : NULL);
        if (why == -ETIMEDOUT) {
            rc = co__task_outcome(t, value); /* a failure during its cleanup is reported */
            if (rc == -ECANCELED) rc = -ETIMEDOUT;
        } /* cancelled: t's outcome stays unread (a failure is reported as never retrieved) */
    } else if (rc == 0) {
        rc = co__task_outcome(t, value);
    }
    co__wset_fini(&s);
    return rc;
}

/* ---- shield ------------------------------------------------------------------------- */

typedef struct co__shield {
    co__waiter w; /* CO__W_HOOK_OWNED in inner's done list */
    co_task *inner, *outer;
} co__shield;

/* Hands inner's outcome to outer, if anyone can still read outer. */
static void co__shield_pass(co_task *inner, co_task *outer, uint32_t outer_others) {
    if (co_task_done(outer) || outer_others == 0) return; /* cancelled, or unreadable */
    inner->flags |= CO__T_RETRIEVED; /* the outer reports it if nobody reads it */
    outer->value = inner->value;
    outer->err = inner->err;
    outer->state = inner->state;
    co__set_msg(outer, inner->msg);
    co__task_finish(outer);
}

static void co__shield_hook(co__waiter *w, co_task *finished) {
    co__shield *sh = co__container_of(w, co__shield, w);
    if (!finished) { /* the loop is being freed */
        sh->inner->refs--;
        sh->outer->refs--;
        free(sh);
        return;
    }
    co__shield_pass(sh->inner, sh->outer, sh->outer->refs - 1);
    co_task_release(sh->outer);
    co_task_release(sh->inner);
    free(sh);
}

co_future *co_shield(co_task *t) {
    if (!t) {
        errno = EINVAL;
        return NULL;
    }
    int err = 0;
    co_loop *L = co__loop_get(&err);
    if (!L) {
        errno = -err;
        return NULL;
    }
    if ((err = co__check_tasks(L, NULL, &t, 1, "co_shield"))) {
        errno = -err;
        return NULL;
    }
    co_future *f = co_future_new();
    if (!f) return NULL;
    if (co_task_done(t)) {
        co__shield_pass(t, f, 1);
        return f;
    }
    co__shield *sh = malloc(sizeof *sh);
    if (!sh) {
        co_task_release(f);
        errno = ENOMEM;
        return NULL;
    }
    sh->w.kind = CO__W_HOOK_OWNED;
    sh->w.hook = co__shield_hook;
    sh->inner = t;
    sh->outer = f;
    co_task_retain(t);
    co_task_retain(f);
    co__list_append(&t->done, &sh->w.link);
    return f;
}
