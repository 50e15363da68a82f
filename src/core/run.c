/* run.c — co_run, asyncio.run for C: a loop, a main task, SIGINT and
 * SIGTERM handling.
 *
 * While co_run runs, SIGINT belongs to it unless the program ignores it
 * (SIG_IGN, inherited from a shell for background jobs, stays, as in
 * Python), and SIGTERM too if the program left SIGTERM at its default (a
 * handler or SIG_IGN of its own stays in charge). The first of them cancels the main task ("interrupted by
 * SIGINT", "terminated by SIGTERM": a graceful stop, its cleanup runs)
 * through the loop's wake-up fd, since a signal handler may not touch the
 * loop; a second one (of either) restores its previous disposition and
 * re-raises, ending the process at once. The previous handlers are
 * restored on return. Only one co_run at a time per process owns them;
 * nested or concurrent ones (other threads) run without.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Atomic(co_loop *) g_sigint_loop;
static struct sigaction g_old_sigint, g_old_sigterm;
static bool g_own_sigint, g_own_sigterm; /* taken by the co_run that owns g_sigint_loop */
static atomic_int g_sigints;  /* SIGINTs and SIGTERMs received by the co_run that owns them */
static atomic_int g_stop_sig; /* the first of them */

static void co__on_sigint(int sig) {
    co_loop *L = atomic_load(&g_sigint_loop);
    if (!L || atomic_fetch_add(&g_sigints, 1) > 0) {
        /* second Ctrl-C (or SIGTERM): leave now */
        struct sigaction *old = sig == SIGTERM ? &g_old_sigterm : &g_old_sigint;
        sigaction(sig, old, NULL);
        if (old->sa_handler == SIG_IGN) signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    atomic_store(&g_stop_sig, sig);
    atomic_store(&L->sigint, sig); /* the loop cancels main with a message naming sig */
    co__loop_wakeup(L);
}

/* Takes SIGINT, unless the program ignores it (a shell starts background
 * jobs so: Ctrl-C at the terminal is not for them), and SIGTERM if at its
 * default, for loop L. Returns whether this co_run owns them (one at a
 * time per process). */
static bool co__signals_take(co_loop *L) {
    co_loop *expected = NULL;
    if (!atomic_compare_exchange_strong(&g_sigint_loop, &expected, L)) return false;
    atomic_store(&g_sigints, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = co__on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    struct sigaction cur;
    sigaction(SIGINT, NULL, &cur);
    g_own_sigint = (cur.sa_flags & SA_SIGINFO) || cur.sa_handler != SIG_IGN;
    if (g_own_sigint) sigaction(SIGINT, &sa, &g_old_sigint);
    sigaction(SIGTERM, NULL, &cur);
    g_own_sigterm = !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL;
    if (g_own_sigterm) sigaction(SIGTERM, &sa, &g_old_sigterm);
    return true;
}

/* Restores what co__signals_take replaced. SIGINT and SIGTERM are blocked
 * here while the handler goes, so it cannot run on this thread against a
 * loop about to be freed. (Delivered to another thread in that instant it
 * still could: a window of a few instructions, noted in docs/internals.md.) */
static void co__signals_give_back(void) {
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    if (g_own_sigint) sigaction(SIGINT, &g_old_sigint, NULL);
    if (g_own_sigterm) sigaction(SIGTERM, &g_old_sigterm, NULL);
    atomic_store(&g_sigint_loop, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int co_run(co_fn main, void *arg, void **result) {
    if (!main) return 1;
    if (co__loop_running_here()) { /* from a task or callback: a loop inside a loop */
        fprintf(stderr, "corio: co_run called while a loop runs on this thread: %s\n",
                co_strerror(-CO_ERUNNING));
        return 1;
    }
    co_loop *prev = co_loop_current();
    co_loop *L = co_loop_new(NULL);
    if (!L) {
        fprintf(stderr, "corio: co_run: cannot create a loop: %s\n", strerror(errno));
        return 1;
    }
    co_loop_set_current(L);
    co_task_opts o = {.name = "main"};
    co_task *t = co_spawn_opts(main, arg, &o);
    if (!t) {
        fprintf(stderr, "corio: co_run: cannot spawn the main task: %s\n", co_strerror(-errno));
        co_loop_free(L);
        co_loop_set_current(prev);
        return 1;
    }
    t->flags |= CO__T_MAIN;
    L->main_task = t;

    bool own_sigint = co__signals_take(L);
    void *value = NULL;
    int rc = co_loop_run_until_complete(L, t, &value);
    int status;
    if (rc == 0) {
        status = 0;
        if (result) *result = value;
    } else if (rc == -ECANCELED) {
        status = !own_sigint || !atomic_load(&g_sigints)  ? 1
                 : atomic_load(&g_stop_sig) == SIGTERM ? 128 + SIGTERM
                                                       : 128 + SIGINT;
        if (status == 1)
            fprintf(stderr, "corio: main task cancelled%s%s\n", t->msg ? ": " : "",
                    t->msg ? t->msg : "");
    } else {
        status = 1;
        fprintf(stderr, "corio: main task failed: %s (%s)\n", t->msg ? t->msg : co_strerror(rc),
                co_err_name(rc));
    }
    L->main_task = NULL;
    co_task_release(t);
    co_loop_close(L);
    if (own_sigint) co__signals_give_back();
    co_loop_free(L);
    co_loop_set_current(prev);
    return status;
}
