#define _GNU_SOURCE
/* test_wait_rule.c — the race rule of the one wait (core/wait.h), call by
 * call: a completion that happened is never thrown away. For every call
 * that waits on the loop, in one table:
 *   complete_then_cancel  the waiter is completed and cancelled in the same
 *                         step of another task, in that order;
 *   cancel_then_complete  the same, the other way round;
 *   deadline              the waiter's deadline (its own timeout, or a scope
 *                         for calls without one) and its completion land in
 *                         the same loop turn;
 * and in each the call must return its completion (0, the item, the
 * value), while the cancel stays pending for the waiter's next suspension
 * point (the sync primitives, marked cancel_wins, still return the cancel
 * and pass the grant on: see sync/internal.h). Two control scenarios show every row can fail the other way:
 * cancelled alone it returns -ECANCELED, timed out alone -ETIMEDOUT.
 *
 * Each row: set up the object, wait on it, complete it synchronously (as
 * its waker would: a put, a set, a release, an fd's edge delivered as the
 * poll phase delivers it), check what the waiter got. Virtual clock. */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <unistd.h>

#include "core/internal.h" /* co__fd_event: an edge delivered as the poll phase does */
#include "testutil.h"

#define I(x) ((void *)(intptr_t)(x))

typedef struct ctx ctx;
typedef struct row {
    const char *name;
    bool timed;    /* takes a timeout of its own (else a scope bounds it) */
    bool is_sleep; /* its completion is its deadline: only the deadline scenario applies */
    void (*setup)(ctx *c);
    int (*wait)(ctx *c, double timeout);
    void (*complete)(ctx *c);
    void (*check)(ctx *c); /* asserts the waiter got the completion */
    void (*teardown)(ctx *c);
    /* the sync primitives still answer a grant and a cancel in the same
     * turn with the cancel, passing the grant on (sync/internal.h): pinned
     * here until they move to the one wait's rule */
    bool cancel_wins;
} row;

enum { COMPLETE_THEN_CANCEL, CANCEL_THEN_COMPLETE, DEADLINE, CANCEL_ONLY, TIMEOUT_ONLY };
static const char *scen_name[] = {"complete_then_cancel", "cancel_then_complete", "deadline", "cancel_only",
                                  "timeout_only"};

struct ctx {
    const row *r;
    int scen;
    co_task *waiter;
    int rc;    /* what the call returned */
    int after; /* the waiter's next suspension point */
    bool done; /* the waiter returned from the call */
    /* the objects, per row */
    co_future *f;
    void *value;
    size_t ndone;
    co_event ev;
    co_sem sem;
    co_mutex mx;
    co_cond cv;
    co_queue q;
    co_barrier bar;
    int p[2];
    co_tsfuture *tsf;
};

/* ---- rows ---------------------------------------------------------------------- */

static void fut_setup(ctx *c) { cr_assert_not_null(c->f = co_future_new()); }
static void fut_complete(ctx *c) { cr_assert_eq(co_future_set_result(c->f, I(42)), 0); }
static void fut_check(ctx *c) { cr_assert_eq(c->value, I(42), "%s: value %p", c->r->name, c->value); }
static void fut_teardown(ctx *c) { co_task_release(c->f); }

static int join_wait(ctx *c, double t) { return co_join(c->f, &c->value); }
static int wait_for_wait(ctx *c, double t) { return co_wait_for(c->f, t, &c->value); }
static int wait_wait(ctx *c, double t) {
    co_task *d[1];
    int rc = co_wait(&c->f, 1, CO_ALL_COMPLETED, t, d, &c->ndone, NULL, NULL);
    if (rc == 0 && c->ndone == 0) return -ETIMEDOUT; /* co_wait's timeout is "0, nothing done" */
    if (c->ndone) c->value = co_task_result(d[0]).value;
    return rc;
}
static int gather_wait(ctx *c, double t) {
    co_result r;
    int rc = co_gather(&c->f, 1, &r, 0);
    if (rc == 0) c->value = r.value;
    return rc;
}
static int as_completed_wait(ctx *c, double t) {
    co_as_completed it;
    int rc = co_as_completed_init(&it, &c->f, 1, t);
    if (rc) return rc;
    co_task *next = NULL;
    rc = co_as_completed_next(&it, &next);
    if (rc == 0) c->value = co_task_result(next).value;
    co_as_completed_fini(&it);
    return rc;
}

static void ev_setup(ctx *c) { cr_assert_eq(co_event_init(&c->ev), 0); }
static int ev_wait(ctx *c, double t) { return co_event_wait(&c->ev); }
static void ev_complete(ctx *c) { cr_assert_eq(co_event_set(&c->ev), 0); }
static void ev_check(ctx *c) { cr_assert(co_event_is_set(&c->ev)); }
static void ev_teardown(ctx *c) { cr_assert_eq(co_event_destroy(&c->ev), 0); }

static void sem_setup(ctx *c) { cr_assert_eq(co_sem_init(&c->sem, 0, 0), 0); }
static int sem_wait(ctx *c, double t) { return co_sem_acquire(&c->sem); }
static void sem_complete(ctx *c) { cr_assert_eq(co_sem_release(&c->sem), 0); }
static void sem_check(ctx *c) { cr_assert_eq(co_sem_value(&c->sem), 0, "the permit was kept, not given back"); }
static void sem_teardown(ctx *c) { cr_assert_eq(co_sem_destroy(&c->sem), 0); }

/* the driver holds the mutex while the waiter waits */
static void mx_setup(ctx *c) {
    cr_assert_eq(co_mutex_init(&c->mx), 0);
    cr_assert_eq(co_mutex_lock(&c->mx), 0);
}
static int mx_wait(ctx *c, double t) {
    int rc = co_mutex_lock(&c->mx);
    if (rc == 0) c->value = I(co_mutex_locked(&c->mx));
    if (rc == 0) co_mutex_unlock(&c->mx);
    return rc;
}
static void mx_complete(ctx *c) { cr_assert_eq(co_mutex_unlock(&c->mx), 0); }
static void mx_check(ctx *c) { cr_assert_eq(c->value, I(1), "held the mutex"); }
static void mx_teardown(ctx *c) { cr_assert_eq(co_mutex_destroy(&c->mx), 0); }

static void cv_setup(ctx *c) {
    cr_assert_eq(co_mutex_init(&c->mx), 0);
    cr_assert_eq(co_cond_init(&c->cv, &c->mx), 0);
}
static int cv_wait(ctx *c, double t) {
    if (co_mutex_lock(&c->mx)) return -EIO;
    int rc = co_cond_wait(&c->cv);
    c->value = I(co_mutex_locked(&c->mx));
    co_mutex_unlock(&c->mx);
    return rc;
}
static void cv_complete(ctx *c) {
    cr_assert_eq(co_mutex_trylock(&c->mx), 0, "the waiter let the mutex go");
    cr_assert_geq(co_cond_notify(&c->cv, 1), 0);
    cr_assert_eq(co_mutex_unlock(&c->mx), 0);
}
static void cv_teardown(ctx *c) {
    cr_assert_eq(co_cond_destroy(&c->cv), 0);
    cr_assert_eq(co_mutex_destroy(&c->mx), 0);
}

static void qget_setup(ctx *c) { cr_assert_eq(co_queue_init(&c->q, NULL), 0); }
static int qget_wait(ctx *c, double t) { return co_queue_get(&c->q, &c->value); }
static void qget_complete(ctx *c) { cr_assert_eq(co_queue_try_put(&c->q, I(42)), 0); }
static void qget_check(ctx *c) {
    cr_assert_eq(c->value, I(42));
    cr_assert_eq(co_queue_size(&c->q), 0, "the item is the waiter's, not back in the queue");
}
static void q_teardown(ctx *c) { cr_assert_eq(co_queue_destroy(&c->q), 0); }

static void qput_setup(ctx *c) {
    cr_assert_eq(co_queue_init(&c->q, &(co_queue_opts){.maxsize = 1}), 0);
    cr_assert_eq(co_queue_try_put(&c->q, I(1)), 0);
}
static int qput_wait(ctx *c, double t) { return co_queue_put(&c->q, I(42)); }
static void qput_complete(ctx *c) {
    void *v;
    cr_assert_eq(co_queue_try_get(&c->q, &v), 0);
}
static void qput_check(ctx *c) {
    void *v = NULL;
    cr_assert_eq(co_queue_try_get(&c->q, &v), 0, "the put went in");
    cr_assert_eq(v, I(42));
}

static void bar_setup(ctx *c) { cr_assert_eq(co_barrier_init(&c->bar, 2), 0); }
static int bar_wait(ctx *c, double t) { return co_barrier_wait(&c->bar, NULL); }
static void bar_complete(ctx *c) { cr_assert_eq(co_barrier_wait(&c->bar, NULL), 0, "the last party does not wait"); }
static void bar_check(ctx *c) {}
static void bar_teardown(ctx *c) { cr_assert_eq(co_barrier_destroy(&c->bar), 0); }

static void fd_setup(ctx *c) { cr_assert_eq(pipe2(c->p, O_NONBLOCK | O_CLOEXEC), 0); }
static int fd_wait(ctx *c, double t) {
    int rc = co_wait_fd(c->p[0], CO_READ, t);
    if (rc > 0) c->value = I(rc);
    return rc > 0 ? 0 : rc;
}
static void fd_complete(ctx *c) {
    cr_assert_eq(write(c->p[1], "x", 1), 1);
    co__fd_event(co_loop_current(), I(c->p[0] + 1), CO__POLL_IN); /* as the poll phase delivers it */
}
static void fd_check(ctx *c) { cr_assert_eq(c->value, I(CO_READ)); }
static void fd_teardown(ctx *c) {
    co_close(c->p[0]);
    close(c->p[1]);
}

static void tsf_setup(ctx *c) { cr_assert_not_null(c->tsf = co_tsfuture_new()); }
static int tsf_wait(ctx *c, double t) { return co_tsfuture_wait(c->tsf, t, &c->value); }
static void tsf_complete(ctx *c) { cr_assert_eq(co_tsfuture_set_result(c->tsf, I(42)), 0); }
static void tsf_teardown(ctx *c) { co_tsfuture_release(c->tsf); }

static void nop(ctx *c) {}
static int sleep_wait(ctx *c, double t) { return co_sleep(1.0); }

static const row rows[] = {
    {"co_join", false, false, fut_setup, join_wait, fut_complete, fut_check, fut_teardown, false},
    {"co_wait_for", true, false, fut_setup, wait_for_wait, fut_complete, fut_check, fut_teardown, false},
    {"co_wait", true, false, fut_setup, wait_wait, fut_complete, fut_check, fut_teardown, false},
    {"co_gather", false, false, fut_setup, gather_wait, fut_complete, fut_check, fut_teardown, false},
    {"co_as_completed_next", true, false, fut_setup, as_completed_wait, fut_complete, fut_check, fut_teardown, false},
    {"co_event_wait", false, false, ev_setup, ev_wait, ev_complete, ev_check, ev_teardown, true},
    {"co_sem_acquire", false, false, sem_setup, sem_wait, sem_complete, sem_check, sem_teardown, true},
    {"co_mutex_lock", false, false, mx_setup, mx_wait, mx_complete, mx_check, mx_teardown, true},
    {"co_cond_wait", false, false, cv_setup, cv_wait, cv_complete, mx_check, cv_teardown, true},
    {"co_queue_get", false, false, qget_setup, qget_wait, qget_complete, qget_check, q_teardown, true},
    {"co_queue_put", false, false, qput_setup, qput_wait, qput_complete, qput_check, q_teardown, true},
    {"co_barrier_wait", false, false, bar_setup, bar_wait, bar_complete, bar_check, bar_teardown, true},
    {"co_wait_fd", true, false, fd_setup, fd_wait, fd_complete, fd_check, fd_teardown, false},
    {"co_tsfuture_wait", true, false, tsf_setup, tsf_wait, tsf_complete, fut_check, tsf_teardown, false},
    {"co_sleep", true, true, nop, sleep_wait, nop, nop, nop, false},
};

/* ---- the scenarios -------------------------------------------------------------- */

static void *waiter(void *arg) {
    ctx *c = arg;
    co_scope sc;
    bool scoped = c->scen == DEADLINE || c->scen == TIMEOUT_ONLY;
    scoped = scoped && !c->r->timed;
    if (scoped) cr_assert_eq(co_scope_enter(&sc, 1.0, CO_FAIL_AFTER), 0);
    double t = (c->scen == DEADLINE || c->scen == TIMEOUT_ONLY) && c->r->timed ? 1.0 : CO_FOREVER;
    c->rc = c->r->wait(c, t);
    c->done = true;
    if (scoped) co_scope_exit(&sc);
    c->after = co_yield();
    return NULL;
}

static void *driver(void *arg) {
    ctx *c = arg;
    c->r->setup(c);
    c->waiter = co_spawn(waiter, c);
    cr_assert_not_null(c->waiter);
    if (c->scen == DEADLINE) {
        /* armed before the waiter's deadline, for the same instant: at that
         * turn this task runs first, the waiter's timer already fired */
        cr_assert_eq(co_sleep(1.0), 0);
    } else {
        for (int i = 0; i < 3; i++) co_yield(); /* the waiter is parked in its call */
    }
    cr_assert(!c->done, "%s: the waiter is still waiting", c->r->name);
    switch (c->scen) {
    case COMPLETE_THEN_CANCEL:
        c->r->complete(c);
        co_cancel(c->waiter, NULL);
        break;
    case CANCEL_THEN_COMPLETE:
        co_cancel(c->waiter, NULL);
        c->r->complete(c);
        break;
    case DEADLINE:
        if (c->r->is_sleep) co_cancel(c->waiter, NULL); /* the sleep's completion is its deadline */
        else c->r->complete(c);
        break;
    case CANCEL_ONLY:
        co_cancel(c->waiter, NULL);
        break;
    case TIMEOUT_ONLY:
        break;
    }
    co_join(c->waiter, NULL);
    return NULL;
}

static void run_row(const row *r, int scen) {
    co_loop *L = tu_loop();
    ctx c = {.r = r, .scen = scen};
    co_task *d = co_spawn(driver, &c);
    cr_assert_not_null(d);
    int rc = co_loop_run_until_complete(L, d, NULL);
    cr_assert_eq(rc, 0, "%s/%s: driver %s", r->name, scen_name[scen], co_err_name(rc));
    co_task_release(d);
    const char *n = r->name, *s = scen_name[scen];
    switch (scen) {
    case COMPLETE_THEN_CANCEL:
    case CANCEL_THEN_COMPLETE:
        if (r->cancel_wins) {
            cr_assert_eq(c.rc, -ECANCELED, "%s/%s: %s", n, s, co_err_name(c.rc));
            break;
        }
        cr_assert_eq(c.rc, 0, "%s/%s: the completion is thrown away (%s)", n, s, co_err_name(c.rc));
        r->check(&c);
        cr_assert_eq(c.after, -ECANCELED, "%s/%s: the cancel is not lost (%s)", n, s, co_err_name(c.after));
        cr_assert_eq(co_task_state(c.waiter), CO_CANCELLED);
        break;
    case DEADLINE:
        if (r->cancel_wins) {
            cr_assert_eq(c.rc, -ECANCELED, "%s/%s: %s", n, s, co_err_name(c.rc));
            break;
        }
        cr_assert_eq(c.rc, 0, "%s/%s: the completion is thrown away (%s)", n, s, co_err_name(c.rc));
        r->check(&c);
        if (r->is_sleep) cr_assert_eq(c.after, -ECANCELED, "%s/%s: the cancel is not lost", n, s);
        break;
    case CANCEL_ONLY:
        cr_assert_eq(c.rc, -ECANCELED, "%s/%s: %s", n, s, co_err_name(c.rc));
        break;
    case TIMEOUT_ONLY:
        cr_assert_eq(c.rc, r->timed ? -ETIMEDOUT : -ECANCELED, "%s/%s: %s", n, s, co_err_name(c.rc));
        break;
    }
    co_task_release(c.waiter);
    r->teardown(&c);
    tu_close(L);
}

#define NROWS (sizeof rows / sizeof rows[0])

static void run_scenario(int scen) {
    for (size_t i = 0; i < NROWS; i++) {
        if (rows[i].is_sleep && scen != DEADLINE && scen != CANCEL_ONLY && scen != TIMEOUT_ONLY) continue;
        if (rows[i].is_sleep && scen == TIMEOUT_ONLY) continue; /* a sleep's deadline is its completion */
        run_row(&rows[i], scen);
    }
}

Test(wait_rule, complete_then_cancel_returns_the_completion) { run_scenario(COMPLETE_THEN_CANCEL); }
Test(wait_rule, cancel_then_complete_returns_the_completion) { run_scenario(CANCEL_THEN_COMPLETE); }
Test(wait_rule, completion_at_the_deadline_wins) { run_scenario(DEADLINE); }
Test(wait_rule, cancelled_alone_is_ecanceled) { run_scenario(CANCEL_ONLY); }
Test(wait_rule, timed_out_alone_is_etimedout) { run_scenario(TIMEOUT_ONLY); }

/* ---- the public timeout rule ------------------------------------------------------ */

static void *never(void *arg) {
    co_sleep(CO_FOREVER);
    return NULL;
}

static void *timeout_rule_body(void *arg) {
    co_loop *L = co_loop_current();
    co_task *t = co_spawn(never, NULL);
    int64_t t0 = co_now();
    /* <= 0 has expired: at once, no time passes (virtual clock) */
    double expired[] = {0.0, -1.0, -1e-9, -INFINITY};
    for (size_t i = 0; i < 4; i++) {
        double x = expired[i];
        cr_assert_eq(co_wait_for(t, x, NULL), -ETIMEDOUT, "wait_for(%g)", x);
        cr_assert_eq(co_task_state(t), CO_CANCELLED, "wait_for's timeout cancelled the task");
        co_task_release(t);
        t = co_spawn(never, NULL);
        size_t nd = 9;
        cr_assert_eq(co_wait(&t, 1, CO_ALL_COMPLETED, x, NULL, &nd, NULL, NULL), 0);
        cr_assert_eq(nd, 0, "wait(%g) returns at once, nothing done", x);
        co_tsfuture *f = co_tsfuture_new();
        cr_assert_eq(co_tsfuture_wait(f, x, NULL), -ETIMEDOUT, "tsfuture_wait(%g)", x);
        co_tsfuture_release(f);
        int p[2];
        cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
        cr_assert_eq(co_wait_fd(p[0], CO_READ, x), -ETIMEDOUT, "wait_fd(%g): a poll, nothing there", x);
        cr_assert_eq(write(p[1], "x", 1), 1);
        cr_assert_eq(co_wait_fd(p[0], CO_READ, x), CO_READ, "wait_fd(%g): a poll, data there", x);
        co_close(p[0]);
        close(p[1]);
        co_scope sc;
        cr_assert_eq(co_scope_enter(&sc, x, CO_FAIL_AFTER), 0);
        cr_assert_eq(co_sleep(1), -ECANCELED, "scope(%g) has expired", x);
        cr_assert_eq(co_scope_exit(&sc), -ETIMEDOUT);
    }
    cr_assert_eq(co_now(), t0, "no time passed");
    /* a completion at hand still wins over an expired timeout */
    co_future *f = co_future_new();
    co_future_set_result(f, I(7));
    void *v = NULL;
    cr_assert_eq(co_wait_for(f, 0, &v), 0);
    cr_assert_eq(v, I(7));
    co_task_release(f);
    /* NaN is -EINVAL everywhere */
    cr_assert_eq(co_sleep(NAN), -EINVAL);
    cr_assert_eq(co_sleep_until(NAN), -EINVAL);
    cr_assert_eq(co_wait_for(t, NAN, NULL), -EINVAL);
    cr_assert_eq(co_wait(&t, 1, CO_ALL_COMPLETED, NAN, NULL, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(co_wait_fd(0, CO_READ, NAN), -EINVAL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    cr_assert_eq(co_signal_wait(&s, NAN, NULL), -EINVAL);
    co_scope sc;
    cr_assert_eq(co_scope_enter(&sc, NAN, 0), -EINVAL);
    co_as_completed it;
    cr_assert_eq(co_as_completed_init(&it, &t, 1, NAN), -EINVAL);
    cr_assert_eq(co_call_later(NAN, (co_cb)free, NULL, NULL), -EINVAL);
    co_cancel(t, NULL);
    co_join(t, NULL);
    co_task_release(t);
    (void)L;
    return NULL;
}

static void *sleep_ns_max(void *arg) { return I(co_sleep_ns(INT64_MAX)); }
static void *sleep_huge(void *arg) { return I(co_sleep(1e300)); }
static void *sleep_forever(void *arg) { return I(co_sleep(CO_FOREVER)); }

static void *saturation_body(void *arg) {
    co_task *v[3] = {co_spawn(sleep_ns_max, NULL), co_spawn(sleep_huge, NULL), co_spawn(sleep_forever, NULL)};
    cr_assert_eq(co_sleep(3600.0 * 24 * 365 * 100), 0, "a century passes");
    for (int i = 0; i < 3; i++) {
        cr_assert(!co_task_done(v[i]), "sleeper %d still asleep: its duration saturated to forever", i);
        co_cancel(v[i], NULL);
        cr_assert_eq(co_join(v[i], NULL), -ECANCELED);
        co_task_release(v[i]);
    }
    return NULL;
}

Test(timeout_rule, expired_nan_and_forever) {
    co_loop *L = tu_loop();
    cr_assert_eq(tu_run(L, timeout_rule_body, NULL, NULL), 0);
    cr_assert_eq(tu_run(L, saturation_body, NULL, NULL), 0);
    tu_close(L);
}
