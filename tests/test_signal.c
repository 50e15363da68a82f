/* test_signal.c — co_signal_wait, the handler API, and co_run's SIGTERM.
 *
 * Every test checks at its end that the signal's disposition and the
 * thread's mask are what they were before (nothing left blocked or
 * replaced). */
#include "testutil.h"

#include <corio/signal.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static sigset_t one(int sig) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    return s;
}

static bool blocked_here(int sig) {
    sigset_t cur;
    pthread_sigmask(SIG_SETMASK, NULL, &cur);
    return sigismember(&cur, sig);
}

static void assert_untouched(int sig) {
    struct sigaction sa;
    sigaction(sig, NULL, &sa);
    cr_assert(!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL,
              "signal %d: the default disposition is back", sig);
    cr_assert(!blocked_here(sig), "signal %d: unblocked again", sig);
}

/* ---- co_signal_wait ------------------------------------------------------------------ */

typedef struct waitarg {
    sigset_t set;
    double timeout;
    int rc, sig;
    double waited;
} waitarg;

static void *waiter(void *arg) {
    waitarg *w = arg;
    double t0 = co_time();
    w->sig = 0;
    w->rc = co_signal_wait(&w->set, w->timeout, &w->sig);
    w->waited = co_time() - t0;
    return NULL;
}

static void *raise_usr1(void *arg) {
    (void)arg;
    waitarg w = {.set = one(SIGUSR1), .timeout = CO_FOREVER};
    co_task *t = co_spawn(waiter, &w);
    co_yield(); /* the waiter now waits */
    cr_assert(blocked_here(SIGUSR1), "blocked while waited for");
    raise(SIGUSR1);
    co_join(t, NULL);
    co_task_release(t);
    cr_assert_eq(w.rc, 0, "%s", co_err_name(w.rc));
    cr_assert_eq(w.sig, SIGUSR1);
    return NULL;
}

Test(signal, wait_raise) {
    tu_run_ok(raise_usr1, NULL);
    assert_untouched(SIGUSR1);
}

static void *kill_self(void *arg) {
    (void)arg;
    waitarg w = {.timeout = CO_FOREVER};
    sigemptyset(&w.set);
    sigaddset(&w.set, SIGUSR1);
    sigaddset(&w.set, SIGUSR2);
    co_task *t = co_spawn(waiter, &w);
    co_yield();
    kill(getpid(), SIGUSR2); /* process-directed: any thread may get it */
    co_join(t, NULL);
    co_task_release(t);
    cr_assert_eq(w.rc, 0, "%s", co_err_name(w.rc));
    cr_assert_eq(w.sig, SIGUSR2, "one of a set, and the right one");
    return NULL;
}

Test(signal, wait_kill_self_from_a_set) {
    tu_run_ok(kill_self, NULL);
    assert_untouched(SIGUSR1);
    assert_untouched(SIGUSR2);
}

/* A thread that does not block the signal gets it: the forwarder must
 * hand it on to the loop thread instead of the default action (death). */
static void *unblocked_thread(void *arg) {
    (void)arg;
    sigset_t s = one(SIGUSR1);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    pthread_kill(pthread_self(), SIGUSR1);
    return NULL;
}

static void *forwarded(void *arg) {
    (void)arg;
    waitarg w = {.set = one(SIGUSR1), .timeout = 10};
    co_task *t = co_spawn(waiter, &w);
    co_yield();
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, unblocked_thread, NULL), 0);
    pthread_join(th, NULL);
    co_join(t, NULL);
    co_task_release(t);
    cr_assert_eq(w.rc, 0, "%s", co_err_name(w.rc));
    cr_assert_eq(w.sig, SIGUSR1);
    return NULL;
}

Test(signal, delivered_to_another_thread_is_forwarded) {
    tu_run_ok(forwarded, NULL);
    assert_untouched(SIGUSR1);
}

static void *two_waiters(void *arg) {
    (void)arg;
    waitarg a = {.set = one(SIGUSR1), .timeout = CO_FOREVER}, b = {.set = one(SIGUSR2), .timeout = CO_FOREVER};
    co_task *ta = co_spawn(waiter, &a), *tb = co_spawn(waiter, &b);
    co_yield();
    raise(SIGUSR2);
    co_join(tb, NULL);
    cr_assert(!co_task_done(ta), "the SIGUSR1 waiter still waits");
    cr_assert(blocked_here(SIGUSR1), "still watched by the other waiter");
    raise(SIGUSR1);
    co_join(ta, NULL);
    co_task_release(ta);
    co_task_release(tb);
    cr_assert_eq(a.sig, SIGUSR1);
    cr_assert_eq(b.sig, SIGUSR2);
    return NULL;
}

Test(signal, two_waiters_on_different_sets) {
    tu_run_ok(two_waiters, NULL);
    assert_untouched(SIGUSR1);
    assert_untouched(SIGUSR2);
}

static void *times_out(void *arg) {
    (void)arg;
    waitarg w = {.set = one(SIGUSR1), .timeout = 0.05};
    waiter(&w);
    cr_assert_eq(w.rc, -ETIMEDOUT, "%s", co_err_name(w.rc));
    cr_assert_geq(w.waited, 0.05 - 1e-9, "waited %f s", w.waited);
    w.timeout = 0; /* only what is pending: nothing */
    waiter(&w);
    cr_assert_eq(w.rc, -ETIMEDOUT, "%s", co_err_name(w.rc));
    return NULL;
}

Test(signal, wait_timeout) {
    tu_run_ok(times_out, NULL);
    assert_untouched(SIGUSR1);
}

/* The program blocked the signal itself: a pending one is taken by a wait
 * with timeout 0, and the signal stays blocked afterwards (it was not ours
 * to unblock). */
static void *pending_taken(void *arg) {
    (void)arg;
    raise(SIGUSR1); /* blocked: stays pending */
    waitarg w = {.set = one(SIGUSR1), .timeout = 0};
    waiter(&w);
    cr_assert_eq(w.rc, 0, "%s", co_err_name(w.rc));
    cr_assert_eq(w.sig, SIGUSR1);
    cr_assert(blocked_here(SIGUSR1), "the program's own block is left alone");
    return NULL;
}

Test(signal, pending_signal_taken_at_once) {
    sigset_t s = one(SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    tu_run_ok(pending_taken, NULL);
    sigset_t pend;
    sigpending(&pend);
    cr_assert(!sigismember(&pend, SIGUSR1), "consumed");
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    assert_untouched(SIGUSR1);
}

static void *forever_waiter(void *arg) {
    (void)arg;
    sigset_t s = one(SIGUSR1);
    int rc = co_signal_wait(&s, CO_FOREVER, NULL);
    return rc ? co_fail(rc, "wait") : NULL;
}

static void *cancel_wait(void *arg) {
    (void)arg;
    int rc = tu_cancel_after(forever_waiter, NULL, 0.01);
    cr_assert_eq(rc, -ECANCELED, "%s", co_err_name(rc));
    return NULL;
}

Test(signal, wait_cancelled) {
    tu_run_ok(cancel_wait, NULL);
    assert_untouched(SIGUSR1);
}

static void *deadline_scope(void *arg) {
    (void)arg;
    co_scope sc;
    co_scope_enter(&sc, 0.02, CO_FAIL_AFTER);
    sigset_t s = one(SIGUSR1);
    int rc = co_signal_wait(&s, CO_FOREVER, NULL);
    cr_assert_eq(rc, -ECANCELED, "%s", co_err_name(rc));
    cr_assert_eq(co_scope_exit(&sc), -ETIMEDOUT);
    return NULL;
}

Test(signal, wait_in_a_scope) {
    tu_run_ok(deadline_scope, NULL);
    assert_untouched(SIGUSR1);
}

static void nop_cb(int sig, void *arg) {
    (void)sig;
    (void)arg;
}

static void *bad_args(void *arg) {
    (void)arg;
    sigset_t s;
    sigemptyset(&s);
    cr_assert_eq(co_signal_wait(&s, 0, NULL), -EINVAL, "empty set");
    cr_assert_eq(co_signal_wait(NULL, 0, NULL), -EINVAL);
    s = one(SIGKILL);
    cr_assert_eq(co_signal_wait(&s, 0, NULL), -EINVAL, "SIGKILL cannot be caught");
    s = one(SIGSEGV);
    cr_assert_eq(co_signal_wait(&s, 0, NULL), -EINVAL, "faults are refused");
    cr_assert_eq(co_signal_add_handler(SIGSTOP, nop_cb, NULL), -EINVAL);
    cr_assert_eq(co_signal_add_handler(SIGUSR1, NULL, NULL), -EINVAL);
    cr_assert_eq(co_signal_add_handler(0, nop_cb, NULL), -EINVAL);
    cr_assert_eq(co_signal_add_handler(NSIG, nop_cb, NULL), -EINVAL);
    cr_assert_eq(co_signal_remove_handler(SIGUSR1), 0, "none to remove");
    return NULL;
}

Test(signal, bad_arguments) {
    tu_run_ok(bad_args, NULL);
    sigset_t s = one(SIGUSR1);
    cr_assert_eq(co_signal_wait(&s, 0, NULL), -CO_ENOTASK);
    cr_assert_eq(co_signal_add_handler(SIGUSR1, nop_cb, NULL), -CO_ENOLOOP);
    cr_assert_eq(co_signal_remove_handler(SIGUSR1), -CO_ENOLOOP);
}

/* ---- handlers -------------------------------------------------------------------------- */

static int hits[NSIG];
static char where[64];

static void count(int sig, void *arg) {
    hits[sig] += arg ? *(int *)arg : 1;
    co_task *t = co_current();
    snprintf(where, sizeof where, "%s", t ? co_task_name(t) : "(no task)");
}

/* Raises sig and lets the loop turn until the handler saw it (bounded). */
static void raise_and_settle(int sig, int expect) {
    raise(sig);
    for (int i = 0; i < 1000 && hits[sig] < expect; i++) co_sleep(0.001);
}

static void *handlers(void *arg) {
    (void)arg;
    memset(hits, 0, sizeof hits);
    cr_assert_eq(co_signal_add_handler(SIGUSR1, count, NULL), 0);
    cr_assert_eq(co_signal_add_handler(SIGHUP, count, NULL), 0);
    cr_assert(blocked_here(SIGUSR1) && blocked_here(SIGHUP));
    raise_and_settle(SIGUSR1, 1);
    raise_and_settle(SIGUSR1, 2);
    raise_and_settle(SIGHUP, 1);
    cr_assert_eq(hits[SIGUSR1], 2);
    cr_assert_eq(hits[SIGHUP], 1);
    cr_assert_str_eq(where, "signal-handlers", "runs on the loop, on the handlers' task");

    int ten = 10; /* replacing: the new one only */
    cr_assert_eq(co_signal_add_handler(SIGUSR1, count, &ten), 0);
    raise_and_settle(SIGUSR1, 12);
    cr_assert_eq(hits[SIGUSR1], 12);

    cr_assert_eq(co_signal_remove_handler(SIGUSR1), 1);
    cr_assert_eq(co_signal_remove_handler(SIGUSR1), 0);
    assert_untouched(SIGUSR1);
    cr_assert(blocked_here(SIGHUP), "the other handler stays");
    cr_assert_eq(co_signal_remove_handler(SIGHUP), 1);
    assert_untouched(SIGHUP);
    co_sleep(0.001); /* the handlers' task ends */
    cr_assert_eq(co_all_tasks(co_loop_current(), NULL, 0), 1, "only this task is left");
    return NULL;
}

Test(signal, handlers_add_replace_remove) {
    tu_run_ok(handlers, NULL);
    assert_untouched(SIGUSR1);
    assert_untouched(SIGHUP);
}

static void remove_self(int sig, void *arg) {
    hits[sig]++;
    cr_assert_eq(co_signal_remove_handler(sig), 1);
}

static void *handler_removes_itself(void *arg) {
    (void)arg;
    memset(hits, 0, sizeof hits);
    cr_assert_eq(co_signal_add_handler(SIGUSR2, remove_self, NULL), 0);
    raise_and_settle(SIGUSR2, 1);
    cr_assert_eq(hits[SIGUSR2], 1);
    assert_untouched(SIGUSR2);
    /* and a new one after the last was removed */
    cr_assert_eq(co_signal_add_handler(SIGUSR2, count, NULL), 0);
    raise_and_settle(SIGUSR2, 2);
    cr_assert_eq(hits[SIGUSR2], 2);
    return NULL; /* left installed: the loop's close removes it */
}

Test(signal, handler_removes_itself_and_close_removes_the_rest) {
    tu_run_ok(handler_removes_itself, NULL);
    assert_untouched(SIGUSR2);
}

/* Added before the loop runs: a signal raised then is pending (blocked)
 * and handled as soon as the loop turns. */
Test(signal, handler_added_outside_tasks) {
    co_loop *L = tu_loop();
    memset(hits, 0, sizeof hits);
    cr_assert_eq(co_signal_add_handler(SIGUSR1, count, NULL), 0);
    raise(SIGUSR1);
    for (int i = 0; i < 100 && !hits[SIGUSR1]; i++) {
        co_loop_stop(L);
        co_loop_run_forever(L);
    }
    cr_assert_eq(hits[SIGUSR1], 1);
    tu_close(L);
    assert_untouched(SIGUSR1);
}

/* A handler and a wait on the same signal: each occurrence goes to one of
 * them; when both are gone, nothing is left behind. */
static void *handler_and_wait(void *arg) {
    (void)arg;
    memset(hits, 0, sizeof hits);
    cr_assert_eq(co_signal_add_handler(SIGUSR1, count, NULL), 0);
    waitarg w = {.set = one(SIGUSR1), .timeout = CO_FOREVER};
    co_task *t = co_spawn(waiter, &w);
    co_yield();
    raise(SIGUSR1);
    for (int i = 0; i < 1000 && !co_task_done(t) && !hits[SIGUSR1]; i++) co_sleep(0.001);
    cr_assert_eq(hits[SIGUSR1] + (co_task_done(t) ? 1 : 0), 1, "delivered once");
    co_cancel(t, NULL);
    co_join(t, NULL);
    co_task_release(t);
    cr_assert(blocked_here(SIGUSR1), "the handler still watches");
    cr_assert_eq(co_signal_remove_handler(SIGUSR1), 1);
    return NULL;
}

Test(signal, handler_and_wait_share_a_signal) {
    tu_run_ok(handler_and_wait, NULL);
    assert_untouched(SIGUSR1);
}

/* ---- co_run and SIGTERM ---------------------------------------------------------------- */

static void *terminated(void *arg) {
    (void)arg;
    raise(SIGTERM); /* as if `kill <pid>` */
    int rc = co_sleep(30);
    if (rc != -ECANCELED) _exit(10);
    if (strcmp(co_task_message(co_current()), "terminated by SIGTERM") != 0) _exit(11);
    return NULL; /* cleanup done: a graceful stop */
}

/* Runs fn in a child process; returns its wait status. */
static int in_child(void (*fn)(void)) {
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        fn();
        _exit(0);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return st;
}

static void run_terminated(void) {
    setenv("CORIO_VIRTUAL_CLOCK", "1", 1);
    struct sigaction before, after;
    sigaction(SIGTERM, NULL, &before);
    int status = co_run(terminated, NULL, NULL);
    sigaction(SIGTERM, NULL, &after);
    if (before.sa_handler != after.sa_handler) _exit(12);
    _exit(status == 143 ? 0 : 13);
}

Test(signal, co_run_sigterm_cancels_main) {
    int st = in_child(run_terminated);
    cr_assert(WIFEXITED(st), "status %#x", st);
    cr_assert_eq(WEXITSTATUS(st), 0, "child failed at check %d", WEXITSTATUS(st));
}

static void *terminated_twice(void *arg) {
    (void)arg;
    raise(SIGTERM);
    co_yield();
    raise(SIGTERM); /* the second ends the process at once */
    _exit(3);
}

static void run_terminated_twice(void) { co_run(terminated_twice, NULL, NULL); }

Test(signal, co_run_second_sigterm_exits_at_once) {
    int st = in_child(run_terminated_twice);
    cr_assert(WIFSIGNALED(st), "status %#x", st);
    cr_assert_eq(WTERMSIG(st), SIGTERM);
}

static void *term_ignored(void *arg) {
    (void)arg;
    raise(SIGTERM);
    return co_sleep(0.01) == 0 ? NULL : co_fail(-EINTR, "cancelled");
}

static void run_term_ignored(void) {
    setenv("CORIO_VIRTUAL_CLOCK", "1", 1);
    signal(SIGTERM, SIG_IGN); /* the program's own choice: co_run leaves it */
    _exit(co_run(term_ignored, NULL, NULL) == 0 ? 0 : 20);
}

Test(signal, co_run_leaves_a_program_sigterm_setting) {
    int st = in_child(run_term_ignored);
    cr_assert(WIFEXITED(st), "status %#x", st);
    cr_assert_eq(WEXITSTATUS(st), 0);
}

/* Inside co_run, a task waiting for SIGTERM gets it instead of main being
 * cancelled; afterwards co_run's own handling is back. */
static void *waits_for_term(void *arg) {
    (void)arg;
    waitarg w = {.set = one(SIGTERM), .timeout = CO_FOREVER};
    co_task *t = co_spawn(waiter, &w);
    co_yield();
    raise(SIGTERM);
    co_join(t, NULL);
    co_task_release(t);
    if (w.rc != 0 || w.sig != SIGTERM) _exit(30);
    if (co_cancelled()) _exit(31);
    raise(SIGTERM); /* now co_run's again: cancels main */
    if (co_sleep(30) != -ECANCELED) _exit(32);
    return NULL;
}

static void run_waits_for_term(void) {
    setenv("CORIO_VIRTUAL_CLOCK", "1", 1);
    _exit(co_run(waits_for_term, NULL, NULL) == 143 ? 0 : 33);
}

Test(signal, co_run_sigterm_waited_for_by_a_task) {
    int st = in_child(run_waits_for_term);
    cr_assert(WIFEXITED(st), "status %#x", st);
    cr_assert_eq(WEXITSTATUS(st), 0, "child failed at check %d", WEXITSTATUS(st));
}
