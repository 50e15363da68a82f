/* corio/signal.h — Unix signals as loop events.
 *
 * asyncio names, C shapes:
 *   loop.add_signal_handler(sig, cb, *args) -> co_signal_add_handler
 *   loop.remove_signal_handler(sig)         -> co_signal_remove_handler
 *   (a task awaiting one signal)            -> co_signal_wait
 *   asyncio.run: Ctrl-C cancels main        -> co_run: SIGINT and SIGTERM cancel main
 *
 * How: a watched signal is blocked in the loop's thread and read from a
 * signalfd, so nothing runs in signal context and no system call of the
 * program is interrupted. While any thread of the process watches a
 * signal, a small forwarding handler is installed for it: a
 * process-directed signal (kill(1), kill(getpid(), ...)) that the kernel
 * hands to another thread, one that does not block it, is sent on to a
 * watching loop thread instead of getting its default action. When the
 * last watch of a signal ends, its previous disposition (handler, default
 * or ignore) and the thread's previous mask are restored.
 *
 * Consequences worth knowing:
 *   - a signal is delivered to one watcher: the first to read it (several
 *     tasks may wait for the same signal; only one gets each occurrence);
 *   - standard signals do not queue: two SIGUSR1 sent before anyone reads
 *     are seen once (real-time signals, SIGRTMIN..SIGRTMAX, do queue);
 *   - between two co_signal_wait calls the signal is not watched: one that
 *     arrives then gets the previous disposition (SIGTERM's default ends
 *     the process). For signals that must never be missed, install a
 *     handler: it watches until it is removed or the loop closes;
 *   - child processes start with the signal mask the thread had before
 *     corio blocked anything (corio/process.h sees to it).
 *   - SIGKILL and SIGSTOP cannot be caught; SIGSEGV, SIGBUS, SIGILL and
 *     SIGFPE report faults of the thread itself (and corio's stack guard
 *     uses SIGSEGV) and glibc reserves 32 and 33: these are refused
 *     (-EINVAL).
 *
 * Threads: loop thread only; a loop's handlers belong to that loop and run
 * on it. Several loops (threads) may watch the same signal; each
 * occurrence goes to one of them.
 */
#ifndef CORIO_SIGNAL_H
#define CORIO_SIGNAL_H

#include <signal.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Suspends the task until one of the signals in `set` arrives (*signo, if
 * not NULL, gets which), timeout seconds pass (CO_FOREVER: no limit;
 * 0: only take one already pending), or the task is cancelled. The
 * signals are watched only during the call. Returns 0, or:
 *   -ETIMEDOUT    timeout passed (or an enclosing scope's deadline)
 *   -ECANCELED    the task was cancelled (no signal was consumed)
 *   -EINVAL       set is NULL, empty, or holds a refused signal (see top)
 *   -EMFILE / -ENOMEM  no signalfd could be made
 *   -CO_ENOTASK   not called from a task */
CO_API int co_signal_wait(const sigset_t *set, double timeout, int *signo);

/* A signal handler: runs on the loop (on a task of its own named
 * "signal-handlers", never in signal context) with the signal's number.
 * It should not suspend: signals that arrive meanwhile wait for it. To do
 * work that waits, spawn a task from it. */
typedef void (*co_signal_cb)(int signo, void *arg);

/* loop.add_signal_handler: from now on, every delivery of signo runs
 * cb(signo, arg) on the current loop, replacing the loop's previous
 * handler for signo if any. The handler stays until
 * co_signal_remove_handler or until the loop closes. Works outside tasks
 * too (before the loop runs). Returns 0, or:
 *   -EINVAL       signo refused (see top), or cb is NULL
 *   -CO_ENOLOOP   no current loop
 *   -CO_ECLOSED   the loop is closed or closing
 *   -EMFILE / -ENOMEM */
CO_API int co_signal_add_handler(int signo, co_signal_cb cb, void *arg);

/* loop.remove_signal_handler: 1 if the current loop had a handler for
 * signo (removed now: it will not run again, even for a signal already
 * received), 0 if it had none, -EINVAL for a refused signo, -CO_ENOLOOP. */
CO_API int co_signal_remove_handler(int signo);

#ifdef __cplusplus
}
#endif
#endif
