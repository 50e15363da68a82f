/* corio/process.h — child processes (asyncio.create_subprocess_exec).
 *
 * asyncio names, C shapes:
 *   asyncio.create_subprocess_exec(prog, *args, stdin=, stdout=, stderr=,
 *       env=, cwd=, start_new_session=)    -> co_process_spawn(argv, &opts, &p)
 *   subprocess.PIPE / DEVNULL / STDOUT     -> CO_PIPE / CO_DEVNULL / CO_STDOUT
 *   proc.stdin / stdout / stderr           -> co_process_stdin / _stdout / _stderr
 *   proc.wait()                            -> co_process_wait(p, timeout, &rc)
 *   proc.communicate(input)                -> co_process_communicate
 *   proc.returncode                        -> co_process_returncode
 *   proc.send_signal / terminate / kill    -> co_process_send_signal / _terminate / _kill
 *   proc.pid                               -> co_process_pid
 *
 * Return codes are Python's: the exit code (0..255) when the child
 * exited, -N when signal N killed it (-9: SIGKILL). co_process_status_str
 * words one ("exit code 3", "killed by SIGKILL").
 *
 * Spawning uses posix_spawn (glibc: clone + exec on a fresh stack; safe in
 * threaded programs). The child gets: its stdio as asked; no other fd of
 * the parent (every fd above 2 is closed in the child, as Python's
 * close_fds=True); the signal mask the thread had before corio blocked
 * anything (corio/signal.h) and SIGPIPE at its default; the environment
 * and directory as asked.
 *
 * Waiting uses a pidfd (Linux >= 5.3) the loop polls; without one (older
 * kernels, or CORIO_NO_PIDFD=1 in the environment) waitpid(pid, WNOHANG)
 * is retried on each SIGCHLD and at least every 50 ms. Only this pid is
 * ever reaped: other children of the program are left alone. A program
 * that reaps children itself (waitpid(-1), SIGCHLD set to SIG_IGN) takes
 * our status away: the wait then fails with -ECHILD.
 *
 * Ownership: co_process_spawn returns a process object the caller owns
 * and frees with co_process_free; the pipe streams belong to it. No child
 * is ever left a zombie: freeing an object whose child still runs sends
 * the child SIGKILL, and it is reaped in the background on the loop (or
 * at once if the loop is closing or gone). To let a child finish its work,
 * wait for it before freeing. Free the object before its loop is freed.
 *
 * Threads: loop thread only; a process belongs to the loop it was spawned
 * on. Errors: after a failed call, co_io_error() says what failed, e.g.
 * "spawn nosuchprog: No such file or directory (not found in PATH)".
 */
#ifndef CORIO_PROCESS_H
#define CORIO_PROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core.h"
#include "io.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct co_process co_process;

/* Where a child's stdin, stdout or stderr goes. */
enum {
    CO_INHERIT = 0, /* the parent's own fd (the default) */
    CO_PIPE = 1,    /* a pipe to the parent: a co_stream (co_process_stdin, ...) */
    CO_DEVNULL = 2, /* /dev/null */
    CO_STDOUT = 3   /* stderr only: wherever stdout goes (2>&1) */
};

/* Options for co_process_spawn; zero-initialise and set what you need. */
typedef struct co_process_opts {
    char *const *envp;   /* the child's environment, NULL-terminated "K=V"s; NULL: this one */
    const char *cwd;     /* the child's working directory; NULL: this one */
    int stdin_mode;      /* CO_INHERIT, CO_PIPE or CO_DEVNULL */
    int stdout_mode;     /* CO_INHERIT, CO_PIPE or CO_DEVNULL */
    int stderr_mode;     /* CO_INHERIT, CO_PIPE, CO_DEVNULL or CO_STDOUT */
    bool new_session;    /* setsid() in the child (start_new_session=True) */
    size_t limit;        /* the pipe streams' read limit (0: 64 KiB) */
} co_process_opts;

/* Starts argv[0] with arguments argv (NULL-terminated; argv[0] is also
 * the program: looked up in PATH when it has no '/', with this process's
 * PATH even when opts->envp is given). opts may be NULL (all inherited).
 * Needs a current loop. Does not suspend. 0 with *out, or:
 *   -ENOENT       no such program (or no such cwd)
 *   -EACCES       not executable (or cwd not searchable)
 *   -ENOEXEC, -ENOTDIR, -E2BIG, ... what exec or chdir said
 *   -EINVAL       argv NULL or empty, or a mode out of range
 *   -EMFILE / -ENFILE / -ENOMEM / -EAGAIN  out of fds, memory, processes
 *   -CO_ENOLOOP   no current loop (-CO_ECLOSED: it is closed)
 * co_io_error() names the program and the cause. */
CO_API int co_process_spawn(const char *const argv[], const co_process_opts *opts,
                            co_process **out);

/* The child's process id (still valid after it was reaped: the number it had). */
CO_API pid_t co_process_pid(const co_process *p);

/* The parent's end of a CO_PIPE (NULL for any other mode, and for stdin
 * after co_process_close_stdin). Borrowed: owned by p, valid until
 * co_process_free; read and write them with co_stream_* but do not close
 * them (co_process_close_stdin ends the child's input). */
CO_API co_stream *co_process_stdin(co_process *p);
CO_API co_stream *co_process_stdout(co_process *p);
CO_API co_stream *co_process_stderr(co_process *p);

/* Flushes what was written to the child's stdin and closes it: the child
 * reads end of file. 0 (also when stdin is not a pipe or already closed),
 * or the flush error (-EPIPE: the child closed its end; the stream is
 * closed anyway), -ECANCELED. */
CO_API int co_process_close_stdin(co_process *p);

/* proc.wait(): suspends until the child ends (at most timeout seconds;
 * CO_FOREVER: no limit; <= 0: a poll), reaps it and stores its return code in
 * *returncode (if not NULL). Several tasks may wait at once. Waiting with
 * pipes nobody reads can deadlock (the child blocks on a full pipe): use
 * co_process_communicate then. 0, or:
 *   -ETIMEDOUT    timeout passed (or a scope's deadline); the child runs on
 *   -ECANCELED    the task was cancelled; the child runs on
 *   -ECHILD       someone else reaped the child (see top)
 *   -CO_ENOTASK   not called from a task */
CO_API int co_process_wait(co_process *p, double timeout, int *returncode);

/* proc.returncode: 1 with *returncode if the child has ended (reaping it
 * if needed, without waiting), 0 if it still runs, -ECHILD (see top). */
CO_API int co_process_returncode(co_process *p, int *returncode);

/* proc.communicate(input): writes len bytes of input to the child's stdin
 * (if it is a pipe; input may be NULL) and closes it, reads stdout and
 * stderr to their ends at the same time (no deadlock whatever the sizes),
 * then waits for the child. *out / *err (if those are not NULL, and the
 * stream is a pipe; else NULL and 0) get malloc'd buffers the caller
 * frees, NUL-terminated for convenience (not counted in *outlen /
 * *errlen). A pipe whose buffer pointer is NULL is still read, and its
 * data dropped. A child that stops reading its input early is not an
 * error (the rest of the input is dropped). The return code is then
 * co_process_returncode's. 0, or:
 *   -ECANCELED / -ETIMEDOUT  cancelled, or a scope's deadline passed: the
 *                 child runs on (free or kill it); output read so far is lost
 *   -ENOMEM, or a read error (-EIO, ...); on any error *out and *err are NULL
 *   -CO_ENOTASK   not called from a task */
CO_API int co_process_communicate(co_process *p, const void *input, size_t len, char **out,
                                  size_t *outlen, char **err, size_t *errlen);

/* Sends signal sig to the child (through its pidfd when there is one, so
 * never to a process that took its pid after it was reaped). 0, or:
 *   -ESRCH        the child was already reaped (Python: ProcessLookupError)
 *   -EINVAL       sig is not a signal
 *   -EPERM        not allowed (the child changed its credentials) */
CO_API int co_process_send_signal(co_process *p, int sig);
/* SIGTERM / SIGKILL; as co_process_send_signal. */
CO_API int co_process_terminate(co_process *p);
CO_API int co_process_kill(co_process *p);

/* Closes the pipes (dropping unsent input), kills the child with SIGKILL
 * if it still runs and makes sure it is reaped (see top), frees p. NULL is
 * fine. Does not suspend. */
CO_API void co_process_free(co_process *p);

/* Words a return code into buf: "exit code 0", "killed by SIGKILL"
 * ("killed by signal 40" when it has no name). Returns buf. */
CO_API char *co_process_status_str(int returncode, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
