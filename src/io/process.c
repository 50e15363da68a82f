/* process.c — child processes: spawning (posix_spawn), waiting (a pidfd
 * the loop polls, or waitpid retried on SIGCHLD), communicate, signals,
 * and reaping after the object is gone. Loop thread only.
 *
 * No zombie, ever: each child is reaped exactly once, by waitpid on its
 * own pid (never -1: the program's other children are not ours) — in
 * co_process_wait / _returncode / _send_signal while the object lives;
 * after co_process_free, by a reaper task on the loop (the child was sent
 * SIGKILL), or by a blocking waitpid when no task can run any more (the
 * loop is closing): SIGKILL cannot be caught, so that wait is short.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corio/process.h"
#include "corio/signal.h"
#include "../base/env.h"
#include "internal.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

extern char **environ;

/* signal.c: the mask a child starts with (this thread's, without what
 * corio blocked). */

#define CO__POLL_MAX 0.05 /* without a pidfd: look at least this often (s) */
#define CO__CHUNK (64 * 1024)

struct co_process {
    co_loop *loop;
    pid_t pid;
    int pidfd;          /* -1: none (old kernel, CORIO_NO_PIDFD): waitpid polling */
    bool reaped;        /* returncode is final; the pid may be someone else's now */
    int returncode;     /* exit code, or -signal */
    co_stream *io[3];   /* the parent's ends of CO_PIPEs: stdin (written), stdout, stderr */
    char name[64];      /* argv[0], for messages */
};

static const char *const co__stdio_name[3] = {"stdin", "stdout", "stderr"};

/* ---- reaping -------------------------------------------------------------------------- */

static int co__returncode(int st) {
    if (WIFSIGNALED(st)) return -WTERMSIG(st);
    return WEXITSTATUS(st);
}

/* Reaps the child if it has ended, without waiting: 1 (p->returncode
 * set), 0 (it runs), -ECHILD (someone else reaped it). */
static int co__proc_reap(co_process *p) {
    if (p->reaped) return 1;
    int st;
    pid_t r;
    do r = waitpid(p->pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0) return 0;
    if (r < 0)
        return co__io_fail(-errno, "wait for process %d (%s): %s (something else reaped it)",
                           (int)p->pid, p->name, strerror(errno));
    p->reaped = true;
    p->returncode = co__returncode(st);
    return 1;
}

/* Without a pidfd, between two looks at the child: waits for a SIGCHLD
 * (any child's, and another waiter may take it: hence the cap) for at most
 * `pause` seconds and not past deadline. 0 (look again), -ETIMEDOUT
 * (deadline passed), -ECANCELED. */
static int co__proc_pause(co_loop *L, int64_t deadline, double pause) {
    double left = co__deadline_left(L, deadline);
    if (left <= 0) return -ETIMEDOUT;
    if (left < pause) pause = left;
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    int rc = co_signal_wait(&chld, pause, NULL);
    if (rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM) rc = co_sleep(pause); /* no signalfd: poll */
    return rc == -ETIMEDOUT ? 0 : rc;
}

/* Waits until pid (with pidfd, or -1) has ended, within deadline. 1, or
 * -ETIMEDOUT, -ECANCELED, -ECHILD; p's reap does the looking. */
static int co__proc_wait(co_process *p, int64_t deadline) {
    co_loop *L = p->loop;
    double pause = 0.001;
    for (;;) {
        int rc = co__proc_reap(p);
        if (rc) return rc;
        if (p->pidfd >= 0) {
            /* the exit makes the pidfd readable: an edge the loop reports */
            co__fd_clear(L, p->pidfd, CO_READ);
            rc = co__fd_wait(L, p->pidfd, CO_READ, deadline);
        } else {
            rc = co__proc_pause(L, deadline, pause);
            pause = pause * 2 > CO__POLL_MAX ? CO__POLL_MAX : pause * 2;
        }
        if (rc < 0) return rc;
    }
}

static void co__reap_blocking(pid_t pid) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
}

/* After co_process_free: a copy of the object (no streams) whose child
 * was sent SIGKILL, reaped in the background. Owns the copy and the pidfd. */
static void *co__reaper(void *arg) {
    co_process *o = arg;
    int rc = co__proc_wait(o, CO__NO_DEADLINE);
    /* cancelled: the loop is closing and will not turn for us any more */
    if (rc < 0 && rc != -ECHILD) co__reap_blocking(o->pid);
    if (o->pidfd >= 0) co_close(o->pidfd);
    free(o);
    return NULL;
}

/* Hands p's unreaped (SIGKILLed) child to a reaper task. false if none
 * can run (not on p's loop, loop closing, no memory). */
static bool co__reap_later(co_process *p) {
    co_loop *L = p->loop;
    if (co__tls_loop != L || L->closing || L->closed) return false;
    co_process *o = malloc(sizeof *o);
    if (!o) return false;
    *o = *p;
    memset(o->io, 0, sizeof o->io);
    co_task_opts to = {.name = "reaper", .stack_size = 64 * 1024};
    co_task *t = co_spawn_opts(co__reaper, o, &to);
    if (!t) {
        free(o);
        return false;
    }
    co_task_release(t);
    return true;
}

/* ---- spawning ---------------------------------------------------------------------------- */

static atomic_bool co__pidfd_nosys; /* any thread: the kernel has no pidfd_open */

/* pidfd_open(2) (always close-on-exec), or -1: none (the kernel has none,
 * CORIO_NO_PIDFD=1 asks for the fallback, or out of fds): wait by polling. */
static int co__pidfd_open(pid_t pid) {
    if (atomic_load(&co__pidfd_nosys)) return -1;
    if (co__env_bool("CORIO_NO_PIDFD", false)) return -1;
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0 && errno == ENOSYS) atomic_store(&co__pidfd_nosys, true);
    return fd;
}

/* Words a spawn failure into co_io_error. */
static int co__spawn_fail(int err, const char *prog, const char *cwd) {
    if (cwd && (err == -ENOENT || err == -ENOTDIR || err == -EACCES)) {
        /* exec and chdir fail alike: say which it was */
        struct stat st;
        if (stat(cwd, &st) < 0)
            return co__io_fail(-errno, "spawn %s: working directory %s: %s", prog, cwd, strerror(errno));
        if (!S_ISDIR(st.st_mode))
            return co__io_fail(-ENOTDIR, "spawn %s: working directory %s: %s", prog, cwd,
                               strerror(ENOTDIR));
    }
    const char *hint = err == -ENOENT && !strchr(prog, '/') ? " (not found in PATH)" : "";
    return co__io_fail(err, "spawn %s: %s%s", prog, strerror(-err), hint);
}

static void co__close_fds(int *fds, int n) {
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

/* Makes the pipe for stdio slot i: the child's end (never 0..2, which
 * the file actions overwrite) and the parent's. Both close-on-exec. */
static int co__stdio_pipe(int i, int *child, int *parent) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return -errno;
    *child = i == 0 ? fds[0] : fds[1];
    *parent = i == 0 ? fds[1] : fds[0];
    if (*child <= 2) { /* our own stdio was closed and the pipe took its number */
        int d = fcntl(*child, F_DUPFD_CLOEXEC, 3);
        if (d < 0) {
            int e = -errno;
            close(fds[0]);
            close(fds[1]);
            return e;
        }
        close(*child);
        *child = d;
    }
    return 0;
}

/* The file actions and attributes of one spawn. 0 or a positive errno. */
static int co__spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *at,
                           const co_process_opts *o, const int *mode, const int *child) {
    int rc = 0;
    for (int i = 0; i < 3 && !rc; i++) {
        if (mode[i] == CO_PIPE) rc = posix_spawn_file_actions_adddup2(fa, child[i], i);
        else if (mode[i] == CO_DEVNULL)
            rc = posix_spawn_file_actions_addopen(fa, i, "/dev/null", i ? O_WRONLY : O_RDONLY, 0);
        else if (mode[i] == CO_STDOUT) rc = posix_spawn_file_actions_adddup2(fa, 1, 2);
    }
    if (!rc && o->cwd) rc = posix_spawn_file_actions_addchdir_np(fa, o->cwd);
    /* close_fds: nothing of ours leaks into the child, even fds opened
     * without O_CLOEXEC */
    if (!rc) rc = posix_spawn_file_actions_addclosefrom_np(fa, 3);
    sigset_t mask, dfl;
    co__signal_child_mask(&mask);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE); /* the I/O layer ignores it in the parent */
    sigaddset(&dfl, SIGXFSZ);
    if (!rc) rc = posix_spawnattr_setsigmask(at, &mask);
    if (!rc) rc = posix_spawnattr_setsigdefault(at, &dfl);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (o->new_session) flags |= POSIX_SPAWN_SETSID;
    if (!rc) rc = posix_spawnattr_setflags(at, flags);
    return rc;
}

int co_process_spawn(const char *const argv[], const co_process_opts *opts, co_process **out) {
    if (!out) return -EINVAL;
    *out = NULL;
    co_process_opts o;
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    if (!argv || !argv[0] || !argv[0][0]) return co__io_fail(-EINVAL, "spawn: argv is empty");
    int mode[3] = {o.stdin_mode, o.stdout_mode, o.stderr_mode};
    for (int i = 0; i < 3; i++)
        if (mode[i] < CO_INHERIT || mode[i] > (i == 2 ? CO_STDOUT : CO_DEVNULL))
            return co__io_fail(-EINVAL, "spawn %s: bad mode %d for %s", argv[0], mode[i],
                               co__stdio_name[i]);
    int rc;
    co_loop *L = co__loop_get(&rc);
    if (!L) return rc;
    co_process *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->loop = L;
    p->pidfd = -1;
    snprintf(p->name, sizeof p->name, "%s", argv[0]);

    int child[3] = {-1, -1, -1}, parent[3] = {-1, -1, -1};
    for (int i = 0; i < 3; i++)
        if (mode[i] == CO_PIPE && (rc = co__stdio_pipe(i, &child[i], &parent[i])) < 0) {
            co__io_fail(rc, "spawn %s: pipe for %s: %s", argv[0], co__stdio_name[i], strerror(-rc));
            goto fail;
        }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    if ((rc = posix_spawn_file_actions_init(&fa))) {
        rc = -rc;
        goto fail;
    }
    if ((rc = posix_spawnattr_init(&at))) {
        posix_spawn_file_actions_destroy(&fa);
        rc = -rc;
        goto fail;
    }
    rc = co__spawn_setup(&fa, &at, &o, mode, child);
    if (!rc) {
        char *const *argvp = (char *const *)argv;
        char *const *envp = o.envp ? o.envp : environ;
        rc = strchr(argv[0], '/') ? posix_spawn(&p->pid, argv[0], &fa, &at, argvp, envp)
                                  : posix_spawnp(&p->pid, argv[0], &fa, &at, argvp, envp);
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    co__close_fds(child, 3);
    if (rc) {
        rc = co__spawn_fail(-rc, argv[0], o.cwd);
        goto fail;
    }

    /* The child cannot be reaped before we are done here, so its pid is
     * still its own: the pidfd names the right process. */
    p->pidfd = co__pidfd_open(p->pid);
    for (int i = 0; i < 3; i++) {
        if (parent[i] < 0) continue;
        char peer[96];
        snprintf(peer, sizeof peer, "%s[%d] %s", p->name, (int)p->pid, co__stdio_name[i]);
        co_stream_opts so = {.limit = o.limit, .peer = peer};
        if ((rc = co_stream_open(parent[i], &so, &p->io[i])) < 0) {
            co__io_fail(rc, "spawn %s: stream for %s: %s", argv[0], co__stdio_name[i], co_strerror(rc));
            co_process_free(p); /* kills and reaps the child, closes the streams made */
            co__close_fds(parent, 3);
            return rc;
        }
        parent[i] = -1; /* the stream owns it now */
    }
    *out = p;
    return 0;
fail:
    co__close_fds(child, 3);
    co__close_fds(parent, 3);
    free(p);
    return rc;
}

/* ---- the object ------------------------------------------------------------------------ */

pid_t co_process_pid(const co_process *p) { return p ? p->pid : -1; }
co_stream *co_process_stdin(co_process *p) { return p ? p->io[0] : NULL; }
co_stream *co_process_stdout(co_process *p) { return p ? p->io[1] : NULL; }
co_stream *co_process_stderr(co_process *p) { return p ? p->io[2] : NULL; }

int co_process_close_stdin(co_process *p) {
    if (!p || !p->io[0]) return 0;
    co_stream *s = p->io[0];
    p->io[0] = NULL;
    return co_stream_close(s); /* flushes (in a task), closes, frees whatever happens */
}

/* The calling task, on p's loop. */
static int co__proc_enter(co_process *p, co_task **t) {
    if (!p) return -EINVAL;
    int rc = co__can_suspend(t);
    if (rc) return rc;
    if ((*t)->loop != p->loop) return co__wrongloop(p->loop, "co_process");
    return 0;
}

int co_process_wait(co_process *p, double timeout, int *returncode) {
    co_task *t;
    int rc = co__proc_enter(p, &t);
    if (rc) return rc;
    int64_t deadline;
    if (co__deadline_in(p->loop, timeout, &deadline)) return -EINVAL;
    rc = co__proc_wait(p, deadline);
    if (rc < 0) return rc;
    if (returncode) *returncode = p->returncode;
    return 0;
}

int co_process_returncode(co_process *p, int *returncode) {
    if (!p) return -EINVAL;
    int rc = co__proc_reap(p);
    if (rc == 1 && returncode) *returncode = p->returncode;
    return rc;
}

int co_process_send_signal(co_process *p, int sig) {
    if (!p) return -EINVAL;
    if (sig < 0 || sig >= NSIG) return -EINVAL;
    /* Python's send_signal looks first too: an ended child is reaped here
     * rather than signalled as a zombie, and never after its pid is reused */
    int rc = co__proc_reap(p);
    if (rc < 0) return rc;
    if (rc == 1)
        return co__io_fail(-ESRCH, "signal %d to process %d (%s): it has ended (%s)", sig,
                           (int)p->pid, p->name, "already reaped");
    long r = p->pidfd >= 0 ? syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0)
                           : kill(p->pid, sig);
    if (r < 0)
        return co__io_fail(-errno, "signal %d to process %d (%s): %s", sig, (int)p->pid, p->name,
                           strerror(errno));
    return 0;
}

int co_process_terminate(co_process *p) { return co_process_send_signal(p, SIGTERM); }
int co_process_kill(co_process *p) { return co_process_send_signal(p, SIGKILL); }

void co_process_free(co_process *p) {
    if (!p) return;
    for (int i = 0; i < 3; i++)
        if (p->io[i]) co_stream_abort(p->io[i]);
    if (co__proc_reap(p) == 0) {
        if (p->pidfd >= 0) syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
        else kill(p->pid, SIGKILL);
        /* usually still there: the kernel needs a moment to tear it down */
        if (co__proc_reap(p) == 0) {
            if (co__reap_later(p)) {
                free(p); /* the reaper owns the pidfd now */
                return;
            }
            co__reap_blocking(p->pid);
        }
    }
    if (p->pidfd >= 0) co_close(p->pidfd);
    free(p);
}

char *co_process_status_str(int returncode, char *buf, size_t n) {
    if (!buf || !n) return buf;
    if (returncode >= 0) {
        snprintf(buf, n, "exit code %d", returncode);
        return buf;
    }
    const char *abbrev = sigabbrev_np(-returncode);
    if (abbrev) snprintf(buf, n, "killed by SIG%s", abbrev);
    else snprintf(buf, n, "killed by signal %d", -returncode);
    return buf;
}

/* ---- communicate ------------------------------------------------------------------------ */

typedef struct co__sink {
    co_stream *s;
    bool keep;          /* false: read and drop */
    co__buf buf;        /* what was kept */
} co__sink;

typedef struct co__comm {
    co_process *p;
    const char *in;
    size_t inlen;
    co__sink sink[2];   /* stdout, stderr */
} co__comm;

/* Writes the input in chunks, with drain as flow control (the stream
 * never holds more than a chunk beyond its high-water mark), then closes
 * stdin so that the child sees the end. */
static void *co__comm_feed(void *arg) {
    co__comm *c = arg;
    co_stream *s = c->p->io[0];
    int rc = 0;
    for (size_t off = 0; off < c->inlen && rc == 0; off += CO__CHUNK) {
        size_t n = c->inlen - off < CO__CHUNK ? c->inlen - off : CO__CHUNK;
        if ((rc = co_stream_write(s, c->in + off, n)) == 0) rc = co_stream_drain(s);
    }
    int crc = co_process_close_stdin(c->p);
    if (!rc) rc = crc;
    /* the child stopped reading (it exited or closed stdin): not our error */
    if (rc == -EPIPE || rc == -ECONNRESET) rc = 0;
    return rc ? co_fail(rc, "%s", co_io_error()) : NULL;
}

static void *co__comm_drain(void *arg) {
    co__sink *k = arg;
    char scratch[4096];
    for (;;) {
        if (k->keep && co__buf_reserve(&k->buf, CO__CHUNK / 4))
            return co_fail(-ENOMEM, "communicate: no memory for %zu bytes of output", co__buf_len(&k->buf));
        ssize_t n = k->keep ? co_stream_read(k->s, co__buf_tail(&k->buf), co__buf_room(&k->buf))
                            : co_stream_read(k->s, scratch, sizeof scratch);
        if (n == 0) break;
        if (n < 0) return co_fail((int)n, "%s", co_io_error());
        if (k->keep) co__buf_commit(&k->buf, (size_t)n);
    }
    return NULL;
}

int co_process_communicate(co_process *p, const void *input, size_t len, char **out,
                           size_t *outlen, char **err, size_t *errlen) {
    if (out) *out = NULL;
    if (outlen) *outlen = 0;
    if (err) *err = NULL;
    if (errlen) *errlen = 0;
    co_task *t;
    int rc = co__proc_enter(p, &t);
    if (rc) return rc;
    co__comm c = {.p = p, .in = input, .inlen = input ? len : 0};
    c.sink[0] = (co__sink){.s = p->io[1], .keep = out != NULL};
    c.sink[1] = (co__sink){.s = p->io[2], .keep = err != NULL};
    co_group *g = co_group_new();
    if (!g) return -errno;
    if (p->io[0]) rc = co_group_spawn(g, co__comm_feed, &c, NULL);
    for (int i = 0; i < 2 && !rc; i++)
        if (c.sink[i].s) rc = co_group_spawn(g, co__comm_drain, &c.sink[i], NULL);
    if (rc) co_group_cancel(g);
    int jrc = co_group_join(g, NULL, NULL); /* waits for every helper, also when cancelled */
    co_group_free(g);
    if (!rc) rc = jrc;
    if (!rc) rc = co__proc_wait(p, CO__NO_DEADLINE);
    /* each kept output as a NUL-terminated string ("" if nothing came) */
    for (int i = 0; i < 2 && rc >= 0; i++) {
        char **dst = i ? err : out;
        size_t *dlen = i ? errlen : outlen;
        size_t n = 0;
        if (dst && c.sink[i].s) rc = co__buf_detach(&c.sink[i].buf, dst, &n);
        if (dlen) *dlen = n;
    }
    co__buf_free(&c.sink[0].buf);
    co__buf_free(&c.sink[1].buf);
    if (rc < 0 && out) {
        free(*out);
        *out = NULL;
        if (outlen) *outlen = 0;
    }
    return rc < 0 ? rc : 0;
}
