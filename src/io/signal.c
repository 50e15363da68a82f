/* signal.c — signals as loop events: co_signal_wait and the per-loop
 * handlers (asyncio's add_signal_handler). Loop thread only, except the
 * forwarding handler (signal context, any thread).
 *
 * A watch of a signal by a thread = the signal blocked in that thread (so
 * that a signalfd can read it) + the forwarding handler installed for it
 * process-wide. Watches are counted per thread and per signal: the first
 * one blocks and installs, the last one restores. The forwarder only runs
 * when the kernel gave the signal to a thread that does not block it; it
 * re-sends the signal to a watching thread with tgkill, where it is
 * blocked and waits for that thread's signalfd.
 *
 * What it must never do: touch a loop from the forwarder (it only reads
 * g_target and calls tgkill), or leave a signal blocked or a disposition
 * replaced after its last watch ends.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "corio/signal.h"
#include "internal.h"

/* ---- watches (process-wide bookkeeping) ----------------------------------------------- */

/* One per thread that watches something; freed when it watches nothing. */
typedef struct co__sigwatch {
    struct co__sigwatch *next;
    pid_t tid;
    unsigned count[NSIG];  /* waits and handlers of this thread, per signal */
    sigset_t blocked;      /* the signals we blocked (not those the program had blocked) */
} co__sigwatch;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER; /* guards everything below but g_target */
static co__sigwatch *g_watchers;
static unsigned g_nthreads[NSIG];     /* threads watching each signal */
static struct sigaction g_old[NSIG];  /* the disposition to restore after the last watch */
static atomic_int g_target[NSIG];     /* a watching thread's tid (0: none): the forwarder's */
static _Thread_local co__sigwatch *tl_watch;

static bool co__sig_refused(int sig) {
    if (sig < 1 || sig >= NSIG) return true;
    switch (sig) {
    case SIGKILL: case SIGSTOP:                          /* cannot be caught */
    case SIGSEGV: case SIGBUS: case SIGILL: case SIGFPE: /* faults of the thread itself */
        return true;
    }
    return sig > 31 && sig < SIGRTMIN; /* glibc's own (thread cancellation, setxid) */
}

static void co__sig_forward(int sig, siginfo_t *si, void *ctx) {
    (void)si;
    int saved = errno;
    pid_t target = (pid_t)atomic_load(&g_target[sig]);
    if (target) {
        /* Running on the watching thread itself means it does not block the
         * signal right now (the ucontext back end switches masks with the
         * fiber): block it in the interrupted context, so that the signal
         * sent below stays pending for the signalfd instead of coming
         * straight back here. */
        if (target == gettid()) sigaddset(&((ucontext_t *)ctx)->uc_sigmask, sig);
        syscall(SYS_tgkill, getpid(), target, sig);
    }
    /* no target: the last watch ended while this one was in flight; the
     * previous disposition is back for the next one */
    errno = saved;
}

/* Starts a watch of sig by this thread. 0 or -ENOMEM. */
static int co__sig_watch(int sig) {
    pthread_mutex_lock(&g_mu);
    co__sigwatch *w = tl_watch;
    if (!w) {
        if (!(w = calloc(1, sizeof *w))) {
            pthread_mutex_unlock(&g_mu);
            return -ENOMEM;
        }
        w->tid = gettid();
        sigemptyset(&w->blocked);
        w->next = g_watchers;
        g_watchers = w;
        tl_watch = w;
    }
    if (w->count[sig]++ == 0) {
        /* Blocked before the handler goes in: from here on, a signal for this
         * thread waits for the signalfd whatever the disposition. */
        sigset_t one, old;
        sigemptyset(&one);
        sigaddset(&one, sig);
        pthread_sigmask(SIG_BLOCK, &one, &old);
        if (!sigismember(&old, sig)) sigaddset(&w->blocked, sig);
        if (g_nthreads[sig]++ == 0) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_sigaction = co__sig_forward;
            sa.sa_flags = SA_SIGINFO | SA_RESTART;
            sigemptyset(&sa.sa_mask);
            sigaction(sig, &sa, &g_old[sig]);
        }
        if (!atomic_load(&g_target[sig])) atomic_store(&g_target[sig], (int)w->tid);
    }
    pthread_mutex_unlock(&g_mu);
    return 0;
}

/* Ends a watch of sig by this thread (which has one). */
static void co__sig_unwatch(int sig) {
    pthread_mutex_lock(&g_mu);
    co__sigwatch *w = tl_watch;
    if (--w->count[sig] == 0) {
        if (--g_nthreads[sig] == 0) {
            atomic_store(&g_target[sig], 0);
            sigaction(sig, &g_old[sig], NULL);
        } else if (atomic_load(&g_target[sig]) == (int)w->tid) {
            for (co__sigwatch *o = g_watchers; o; o = o->next)
                if (o != w && o->count[sig]) {
                    atomic_store(&g_target[sig], (int)o->tid);
                    break;
                }
        }
        /* Unblocked after the disposition is back: an occurrence nobody
         * read gets the program's own handling, as if we never watched. */
        if (sigismember(&w->blocked, sig)) {
            sigdelset(&w->blocked, sig);
            sigset_t one;
            sigemptyset(&one);
            sigaddset(&one, sig);
            pthread_sigmask(SIG_UNBLOCK, &one, NULL);
        }
        bool idle = true;
        for (int s = 1; s < NSIG && idle; s++) idle = w->count[s] == 0;
        if (idle) {
            for (co__sigwatch **p = &g_watchers; *p; p = &(*p)->next)
                if (*p == w) {
                    *p = w->next;
                    break;
                }
            tl_watch = NULL;
            free(w);
        }
    }
    pthread_mutex_unlock(&g_mu);
}

static void co__sig_unwatch_set(const sigset_t *set, int upto) {
    for (int s = 1; s < upto; s++)
        if (sigismember(set, s)) co__sig_unwatch(s);
}

static int co__sig_watch_set(const sigset_t *set) {
    for (int s = 1; s < NSIG; s++) {
        if (!sigismember(set, s)) continue;
        int rc = co__sig_watch(s);
        if (rc) {
            co__sig_unwatch_set(set, s);
            return rc;
        }
    }
    return 0;
}

/* For process.c: the mask a child should start with, this thread's
 * without the signals corio blocked. */
void co__signal_child_mask(sigset_t *mask) {
    pthread_sigmask(SIG_SETMASK, NULL, mask);
    co__sigwatch *w = tl_watch; /* only this thread changes its record */
    if (!w) return;
    for (int s = 1; s < NSIG; s++)
        if (sigismember(&w->blocked, s)) sigdelset(mask, s);
}

/* ---- co_signal_wait ------------------------------------------------------------------- */

static int co__sig_check_set(const sigset_t *set) {
    if (!set) return -EINVAL;
    int n = 0;
    for (int s = 1; s < NSIG; s++) {
        if (sigismember(set, s) != 1) continue;
        if (co__sig_refused(s)) return -EINVAL;
        n++;
    }
    return n ? 0 : -EINVAL;
}

int co_signal_wait(const sigset_t *set, double timeout, int *signo) {
    co_task *t;
    int rc = co__can_suspend(&t);
    if (rc) return rc;
    if ((rc = co__sig_check_set(set))) return rc;
    co_loop *L = t->loop;
    int64_t deadline;
    if (co__deadline_in(L, timeout, &deadline)) return -EINVAL;
    if ((rc = co__sig_watch_set(set))) return rc;
    int fd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) rc = -errno;
    while (fd >= 0) {
        struct signalfd_siginfo si;
        ssize_t n = read(fd, &si, sizeof si);
        if (n == (ssize_t)sizeof si) {
            if (signo) *signo = (int)si.ssi_signo;
            rc = 0;
            break;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN) {
            rc = -errno;
            break;
        }
        co__fd_clear(L, fd, CO_READ);
        if ((rc = co__fd_wait(L, fd, CO_READ, deadline)) < 0) break;
    }
    if (fd >= 0) co_close(fd);
    co__sig_unwatch_set(set, NSIG);
    return rc;
}

/* ---- handlers ------------------------------------------------------------------------------
 * A loop with handlers has a hub: one signalfd over the handled signals,
 * read by a task of its own (the dispatcher), which calls the handlers.
 * The dispatcher owns the hub and frees it when it ends: after the last
 * handler was removed (closing, already unlinked and unwatched), or when
 * the loop closes and cancels it. */
typedef struct co__sighub {
    struct co__sighub *next;   /* this thread's hubs, one per loop with handlers */
    co_loop *loop;
    co_task *task;             /* the dispatcher ("signal-handlers") */
    int fd;                    /* signalfd over `set` */
    sigset_t set;              /* the signals with a handler */
    bool closing;              /* no handler left: the dispatcher ends */
    struct {
        co_signal_cb cb;
        void *arg;
    } h[NSIG];
} co__sighub;

static _Thread_local co__sighub *tl_hubs; /* a loop is used by one thread only */

static co__sighub *co__hub_find(co_loop *L) {
    for (co__sighub *h = tl_hubs; h; h = h->next)
        if (h->loop == L) return h;
    return NULL;
}

static void co__hub_unlink(co__sighub *hub) {
    for (co__sighub **p = &tl_hubs; *p; p = &(*p)->next)
        if (*p == hub) {
            *p = hub->next;
            return;
        }
}

static void *co__sig_dispatch(void *arg) {
    co__sighub *hub = arg;
    co_loop *L = hub->loop;
    while (!hub->closing) {
        struct signalfd_siginfo si[8];
        ssize_t n = read(hub->fd, si, sizeof si);
        if (n > 0) {
            for (size_t i = 0; i < (size_t)n / sizeof si[0] && !hub->closing; i++) {
                int sig = (int)si[i].ssi_signo;
                /* looked up at each call: a handler may remove or replace another */
                if (sig > 0 && sig < NSIG && hub->h[sig].cb) hub->h[sig].cb(sig, hub->h[sig].arg);
            }
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN) {
            co__report(L, "signal handlers: reading the signalfd failed: %s; handlers removed",
                       strerror(errno));
            break;
        }
        co__fd_clear(L, hub->fd, CO_READ);
        if (co__fd_wait(L, hub->fd, CO_READ, CO__NO_DEADLINE) < 0) break; /* cancelled: loop closing */
    }
    if (!hub->closing) {
        co__hub_unlink(hub);
        for (int s = 1; s < NSIG; s++)
            if (hub->h[s].cb) co__sig_unwatch(s);
    }
    co_close(hub->fd);
    co_task_release(hub->task);
    free(hub);
    return NULL;
}

/* Ends a hub with no handler: its dispatcher frees it. */
static void co__hub_close(co__sighub *hub) {
    hub->closing = true;
    co__hub_unlink(hub);
    co_cancel(hub->task, "no signal handler left");
}

int co_signal_add_handler(int signo, co_signal_cb cb, void *arg) {
    if (co__sig_refused(signo) || !cb) return -EINVAL;
    int rc;
    co_loop *L = co__loop_get(&rc);
    if (!L) return rc;
    if (L->closing) return -CO_ECLOSED;
    co__sighub *hub = co__hub_find(L);
    if (!hub) {
        if (!(hub = calloc(1, sizeof *hub))) return -ENOMEM;
        hub->loop = L;
        sigemptyset(&hub->set);
        hub->fd = signalfd(-1, &hub->set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (hub->fd < 0) {
            rc = -errno;
            free(hub);
            return rc;
        }
        co_task_opts o = {.name = "signal-handlers"};
        if (!(hub->task = co_spawn_opts(co__sig_dispatch, hub, &o))) {
            rc = -errno;
            close(hub->fd);
            free(hub);
            return rc;
        }
        hub->next = tl_hubs;
        tl_hubs = hub;
    }
    if (!hub->h[signo].cb) {
        if ((rc = co__sig_watch(signo))) {
            if (sigisemptyset(&hub->set)) co__hub_close(hub);
            return rc;
        }
        sigaddset(&hub->set, signo);
        signalfd(hub->fd, &hub->set, 0); /* cannot fail: a valid signalfd, a valid mask */
    }
    hub->h[signo].cb = cb;
    hub->h[signo].arg = arg;
    return 0;
}

int co_signal_remove_handler(int signo) {
    if (co__sig_refused(signo)) return -EINVAL;
    co_loop *L = co__tls_loop;
    if (!L) return -CO_ENOLOOP;
    co__sighub *hub = co__hub_find(L);
    if (!hub || !hub->h[signo].cb) return 0;
    hub->h[signo].cb = NULL;
    hub->h[signo].arg = NULL;
    sigdelset(&hub->set, signo);
    signalfd(hub->fd, &hub->set, 0);
    co__sig_unwatch(signo);
    if (sigisemptyset(&hub->set)) co__hub_close(hub);
    return 1;
}
