/* procpool.c — the process pool's parent side: the public API and the
 * manager thread that owns the worker processes.
 *
 * Threads. Callers (any thread, tasks) only queue jobs and wait on their
 * futures. One manager thread per pool does everything else: it spawns
 * the workers, writes requests, reads replies, notices deaths and
 * timeouts, reaps and replaces workers, and completes futures. So the
 * worker table needs no lock; p->mu guards only what callers touch: the
 * state, the job queue and the pid snapshot (pp_worker.pid writes).
 * Futures are completed with p->mu not held (their callbacks may run).
 *
 * Invariants:
 *   - a job is in exactly one place: the queue (under mu), one worker's
 *     w->job (manager only), or finished (its future completed, job freed);
 *   - the manager holds one reference to every unfinished job's future;
 *   - a slot with pid != 0 has a live or unreaped process: its pid cannot
 *     be reused, so kill() on it is always safe;
 *   - a worker gets its next request only after the last reply of the
 *     current one (one job per worker).
 * Workers are spawned by the manager thread (never by callers), so their
 * PR_SET_PDEATHSIG follows the manager, which lives as long as the pool. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../base/buf.h"
#include "procpool.h"

extern char **environ;

enum { PP_RUNNING, PP_CLOSED, PP_TERMINATED };
/* Why a worker is being reaped: decides the error of its unfinished job. */
enum { DIED, TIMED_OUT, TERMINATED, BAD_REPLY };

/* A map chunk's future value: the outcomes of its items. */
typedef struct pp_chunk {
    size_t n;
    co_procpool_result r[];
} pp_chunk;

typedef struct pp_job {
    struct pp_job *next;
    co_tsfuture *f;          /* the manager's reference */
    bool chunk;              /* a map chunk (value pp_chunk) or one item (value co_procpool_result) */
    size_t first;            /* map: input index of item 0 (for messages) */
    uint32_t nitems, ndone;  /* items replied so far arrive in order */
    co_procpool_result *res; /* nitems outcomes: &one, or out->r */
    pp_chunk *out;
    co_procpool_result one;
    int64_t timeout_ns;      /* per item; < 0: none */
    char name[CO_PROCPOOL_MAX_NAME + 1];
    size_t wirelen;
    char *wire;              /* the request: co__pp_req, name, items */
} pp_job;

typedef struct pp_worker {
    pid_t pid;               /* 0: empty slot (written under mu) */
    int sock, pidfd;         /* pidfd -1 when the kernel has none */
    pp_job *job;             /* the job it runs, or NULL (idle) */
    size_t woff;             /* request bytes written */
    co__buf rbuf;            /* reply bytes read, not parsed yet */
    int64_t deadline;        /* the current item's, or INT64_MAX */
    int64_t respawn_at;      /* an empty slot is refilled from then on */
    bool hup;                /* EOF or error on the socket */
    bool eof_sent;           /* closing or retired: told to exit once idle */
    unsigned tasks_left;     /* max_tasks_per_worker: jobs before it retires; 0: no limit */
} pp_worker;

struct co_procpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* the start handshake */
    int state;               /* PP_*, under mu */
    pp_job *qhead, *qtail;   /* under mu */
    bool started;            /* under mu: the manager's first spawns are done */
    int start_err;
    int wakefd;              /* eventfd: callers wake the manager */
    size_t n;
    unsigned max_tasks;      /* per worker, then it is replaced; 0: no limit */
    pp_worker *w;            /* the manager's */
    struct pollfd *pf;       /* the manager's: 1 + 2 per worker */
    pthread_t mgr;
    co_tsfuture *done;       /* completed when the last worker is gone */
    char exe[PATH_MAX];
    char **envp;             /* environ at co_procpool_new, plus CO__PP_ENV */
};

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t timeout_to_ns(double t) {
    if (isinf(t) && t > 0) return -1; /* CO_FOREVER: none */
    if (t <= 0) return 0;             /* expired: the worker is stopped as it starts */
    if (t > 9e9) return INT64_MAX / 4;
    return (int64_t)(t * 1e9);
}

static void wake(co_procpool *p) {
    uint64_t one = 1;
    ssize_t r = write(p->wakefd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is already non-zero, the manager will wake */
}

/* ---- results and jobs ------------------------------------------------------------ */

void co_procpool_result_clear(co_procpool_result *r, size_t n) {
    for (size_t i = 0; r && i < n; i++) {
        free(r[i].data);
        memset(&r[i], 0, sizeof r[i]);
    }
}

void co_procpool_result_free(co_procpool_result *r) {
    if (!r) return;
    free(r->data);
    free(r);
}

static void chunk_free(void *v) {
    pp_chunk *c = v;
    if (!c) return;
    co_procpool_result_clear(c->r, c->n);
    free(c);
}

static void set_msg(co_procpool_result *r, int err, const char *fmt, ...) CO_PRINTF(3, 4);
static void set_msg(co_procpool_result *r, int err, const char *fmt, ...) {
    r->err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
}

/* A job for items[0..n) of fn name; the request bytes are built here, so
 * the caller's buffers are not needed afterwards. NULL with *err, *msg. */
static pp_job *job_new(const char *name, const co_procpool_buf *items, size_t n, double timeout,
                       bool chunk, size_t first, int *err) {
    size_t namelen = strlen(name), total = namelen;
    for (size_t i = 0; i < n; i++) total += sizeof(uint64_t) + items[i].len;
    pp_job *j = calloc(1, sizeof *j);
    char *wire = malloc(sizeof(co__pp_req) + total);
    pp_chunk *out = chunk ? calloc(1, sizeof *out + n * sizeof out->r[0]) : NULL;
    co_tsfuture *f = co_tsfuture_new();
    if (!j || !wire || (chunk && !out) || !f) {
        free(j), free(wire), free(out), co_tsfuture_release(f);
        *err = -ENOMEM;
        return NULL;
    }
    co__pp_req h = {CO__PP_REQ_MAGIC, (uint32_t)namelen, (uint32_t)n, 0, total};
    char *w = wire;
    memcpy(w, &h, sizeof h), w += sizeof h;
    memcpy(w, name, namelen), w += namelen;
    for (size_t i = 0; i < n; i++) {
        uint64_t len = items[i].len;
        memcpy(w, &len, sizeof len), w += sizeof len;
        if (len) memcpy(w, items[i].data, len), w += len;
    }
    j->f = f;
    j->chunk = chunk;
    j->first = first;
    j->nitems = (uint32_t)n;
    j->out = out;
    if (out) out->n = n;
    j->res = chunk ? out->r : &j->one;
    j->timeout_ns = timeout_to_ns(timeout);
    memcpy(j->name, name, namelen + 1);
    j->wire = wire;
    j->wirelen = sizeof h + total;
    co_tsfuture_set_free_result(f, chunk ? chunk_free : (void (*)(void *))co_procpool_result_free);
    return j;
}

/* Completes the job's future from its outcomes and frees the job. */
static void job_finish(pp_job *j) {
    co_tsfuture *f = j->f;
    if (j->chunk) {
        if (co_tsfuture_set_result(f, j->out) < 0) chunk_free(j->out);
    } else if (j->one.err == 0) {
        co_procpool_result *r = malloc(sizeof *r);
        if (!r) {
            free(j->one.data);
            co_tsfuture_set_error(f, -ENOMEM, "out of memory for the result");
        } else {
            *r = j->one;
            if (co_tsfuture_set_result(f, r) < 0) co_procpool_result_free(r);
        }
    } else {
        co_tsfuture_set_error(f, j->one.err, j->one.msg);
    }
    co_tsfuture_release(f);
    free(j->wire);
    free(j);
}

/* A job that will never run (cancelled by its waiter, or the pool was
 * terminated or could not start a worker). */
static void job_drop(pp_job *j, int err, const char *msg) {
    if (co_tsfuture_set_running(j->f) == 0) {
        for (uint32_t i = 0; i < j->nitems; i++) set_msg(&j->res[i], err, "%s", msg);
        job_finish(j);
        return;
    }
    /* cancelled before it started: the future is finished already */
    co_tsfuture_release(j->f);
    chunk_free(j->out);
    free(j->wire);
    free(j);
}

/* ---- workers ----------------------------------------------------------------------- */

static int spawn(co_procpool *p, pp_worker *w) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    int child = sv[1];
    if (child == CO__PP_FD) { /* dup2(3, 3) would keep close-on-exec set */
        child = fcntl(sv[1], F_DUPFD_CLOEXEC, CO__PP_FD + 1);
        close(sv[1]);
        if (child < 0) {
            close(sv[0]);
            return -errno;
        }
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_adddup2(&fa, child, CO__PP_FD);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    /* descriptors the program leaked without O_CLOEXEC stay in the parent */
    posix_spawn_file_actions_addclosefrom_np(&fa, CO__PP_FD + 1);
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    for (int s = 1; s < 32; s++)
        if (s != SIGKILL && s != SIGSTOP) sigaddset(&dfl, s);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {p->exe, (char *)CO__PP_ARGV1, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, p->exe, &fa, &at, argv, p->envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(child);
    if (rc) {
        close(sv[0]);
        return -rc;
    }
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    w->sock = sv[0];
    w->pidfd = (int)syscall(SYS_pidfd_open, pid, 0); /* -1 (ENOSYS): EOF alone tells */
    w->job = NULL;
    w->woff = 0;
    co__buf_reset(&w->rbuf);
    w->deadline = INT64_MAX;
    w->hup = w->eof_sent = false;
    w->tasks_left = p->max_tasks;
    pthread_mutex_lock(&p->mu); /* co_procpool_pids reads it */
    w->pid = pid;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static void pump_write(pp_worker *w) {
    pp_job *j = w->job;
    while (j && !w->hup && w->woff < j->wirelen) {
        ssize_t r = send(w->sock, j->wire + w->woff, j->wirelen - w->woff, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) return;
        if (r < 0) {
            w->hup = true; /* EPIPE: it died; its death is read next */
            return;
        }
        w->woff += (size_t)r;
    }
}

/* Takes one item's reply off rbuf. 1 taken, 0 need more bytes, -1 the
 * worker broke the protocol. */
static int take_reply(pp_worker *w, int64_t now) {
    co__pp_rep h;
    size_t have = co__buf_len(&w->rbuf);
    if (have < sizeof h) return 0;
    const char *rb = co__buf_data(&w->rbuf);
    memcpy(&h, rb, sizeof h);
    pp_job *j = w->job;
    if (h.magic != CO__PP_REP_MAGIC || !j || h.item != j->ndone || h.msglen > CO__PP_MSG_MAX ||
        h.outlen > CO_PROCPOOL_MAX_PAYLOAD || h.err > 0)
        return -1;
    size_t need = sizeof h + h.msglen + (size_t)h.outlen;
    if (have < need) /* room for the rest, so that one read can bring it */
        return co__buf_reserve(&w->rbuf, need - have) ? -1 : 0;
    co_procpool_result *r = &j->res[h.item];
    r->err = h.err;
    memcpy(r->msg, rb + sizeof h, h.msglen);
    r->msg[h.msglen] = 0;
    if (h.err == 0 && h.outlen) {
        r->data = malloc((size_t)h.outlen);
        if (r->data) {
            memcpy(r->data, rb + sizeof h + h.msglen, (size_t)h.outlen);
            r->len = (size_t)h.outlen;
        } else {
            set_msg(r, -ENOMEM, "out of memory for a %zu-byte result", (size_t)h.outlen);
        }
    }
    co__buf_consume(&w->rbuf, need);
    if (++j->ndone == j->nitems) {
        w->job = NULL;
        w->deadline = INT64_MAX;
        job_finish(j);
        if (w->tasks_left && --w->tasks_left == 0 && !w->eof_sent) {
            /* retired (maxtasksperchild): EOF makes it exit, and the
             * manager starts a fresh one in its slot */
            shutdown(w->sock, SHUT_WR);
            w->eof_sent = true;
        }
    } else {
        w->deadline = j->timeout_ns < 0 ? INT64_MAX : now + j->timeout_ns;
    }
    return 1;
}

/* Reads what the worker sent and completes the items it finished.
 * -1 if it broke the protocol. */
static int pump_read(pp_worker *w) {
    for (;;) {
        /* reads of 64 KiB at first, at least 4 KiB later */
        if (co__buf_reserve(&w->rbuf, w->rbuf.cap ? 4096 : 65536)) return -1;
        ssize_t r = read(w->sock, co__buf_tail(&w->rbuf), co__buf_room(&w->rbuf));
        if (r < 0 && errno == EINTR) continue;
        if (r > 0) co__buf_commit(&w->rbuf, (size_t)r);
        else if (r == 0 || errno != EAGAIN) w->hup = true;
        int64_t now = now_ns();
        int t;
        while ((t = take_reply(w, now)) > 0) {
        }
        if (t < 0) return -1;
        if (r <= 0) return 0;
    }
}

static const char *sig_name(int sig, char *buf, size_t cap) {
    const char *abbr = sigabbrev_np(sig);
    if (abbr) snprintf(buf, cap, "SIG%s", abbr);
    else snprintf(buf, cap, "signal %d", sig);
    return buf;
}

/* Waits for w's process to end (up to grace_ms, then SIGKILL) and reaps
 * it; describes how it ended in how. */
static void reap_process(pp_worker *w, int grace_ms, char *how, size_t cap) {
    int64_t until = now_ns() + (int64_t)grace_ms * 1000000;
    bool killed = grace_ms == 0;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(w->pid, &st, killed ? 0 : WNOHANG);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { /* the program reaps children itself (SIGCHLD handler, SIG_IGN) */
            snprintf(how, cap, "died (reaped elsewhere: status unknown)");
            return;
        }
        if (r == w->pid) {
            char sb[32];
            if (WIFSIGNALED(st))
                snprintf(how, cap, "killed by %s", sig_name(WTERMSIG(st), sb, sizeof sb));
            else
                snprintf(how, cap, "exited with status %d", WEXITSTATUS(st));
            return;
        }
        int64_t left = until - now_ns();
        if (left <= 0) {
            kill(w->pid, SIGKILL);
            killed = true;
            continue;
        }
        if (w->pidfd >= 0) {
            struct pollfd pf = {w->pidfd, POLLIN, 0};
            poll(&pf, 1, (int)(left / 1000000) + 1);
        } else {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
}

/* Ends w's process (why: DIED, TIMED_OUT, TERMINATED, BAD_REPLY), fails
 * what is left of its job and empties the slot. */
static void reap(co_procpool *p, pp_worker *w, int why) {
    char how[96];
    if (why == DIED) {
        (void)pump_read(w); /* replies sent just before dying still count */
        /* EOF normally means the process is gone; give it a moment to
         * become reapable (or a job closed fd 3 and lives on: kill it) */
        reap_process(w, 1000, how, sizeof how);
    } else {
        kill(w->pid, SIGKILL);
        reap_process(w, 0, how, sizeof how);
    }
    int pid = (int)w->pid;
    close(w->sock);
    if (w->pidfd >= 0) close(w->pidfd);
    co__buf_free(&w->rbuf);
    /* gone from co_procpool_pids before anyone hears of its death */
    pthread_mutex_lock(&p->mu);
    w->pid = 0;
    pthread_mutex_unlock(&p->mu);
    pp_job *j = w->job;
    if (j) {
        uint32_t k = j->ndone;
        char item[48] = "";
        if (j->chunk) snprintf(item, sizeof item, " on item %zu", j->first + k);
        co_procpool_result *r = &j->res[k];
        if (why == TIMED_OUT)
            set_msg(r, -ETIMEDOUT, "%s%s ran longer than %.3g s: worker %d killed", j->name, item,
                    (double)j->timeout_ns * 1e-9, pid);
        else if (why == TERMINATED)
            set_msg(r, -ECANCELED, "pool terminated while %s%s ran (worker %d killed)", j->name,
                    item, pid);
        else if (why == BAD_REPLY)
            set_msg(r, -CO_EWORKER, "worker %d sent a malformed reply while running %s%s",
                    pid, j->name, item);
        else
            set_msg(r, -CO_EWORKER, "worker %d %s while running %s%s", pid, how, j->name,
                    item);
        for (uint32_t i = k + 1; i < j->nitems; i++)
            set_msg(&j->res[i], r->err, "not run: %s", r->msg);
        w->job = NULL;
        job_finish(j);
    }
}

static pp_job *dequeue(co_procpool *p) {
    pthread_mutex_lock(&p->mu);
    pp_job *j = p->qhead;
    if (j && !(p->qhead = j->next)) p->qtail = NULL;
    pthread_mutex_unlock(&p->mu);
    return j;
}

/* Gives queued jobs to idle workers. */
static void dispatch(co_procpool *p, int64_t now) {
    for (size_t i = 0; i < p->n; i++) {
        pp_worker *w = &p->w[i];
        while (w->pid && !w->job && !w->hup && !w->eof_sent) {
            pp_job *j = dequeue(p);
            if (!j) return;
            if (co_tsfuture_set_running(j->f) < 0) { /* its waiter gave up first */
                job_drop(j, -ECANCELED, "cancelled");
                continue;
            }
            w->job = j;
            w->woff = 0;
            w->deadline = j->timeout_ns < 0 ? INT64_MAX : now + j->timeout_ns;
            pump_write(w);
        }
    }
}

/* Fails every queued job (terminate, or no worker can start). */
static void drop_queue(co_procpool *p, int err, const char *msg) {
    pthread_mutex_lock(&p->mu);
    pp_job *j = p->qhead;
    p->qhead = p->qtail = NULL;
    pthread_mutex_unlock(&p->mu);
    while (j) {
        pp_job *next = j->next;
        job_drop(j, err, msg);
        j = next;
    }
}

static void *manager(void *arg) {
    co_procpool *p = arg;
    int err = 0;
    size_t started = 0;
    for (; started < p->n && !err; started++)
        if ((err = spawn(p, &p->w[started])) < 0) break;
    pthread_mutex_lock(&p->mu);
    p->start_err = err;
    p->started = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (err) {
        for (size_t i = 0; i < started; i++) reap(p, &p->w[i], TERMINATED);
        return NULL;
    }

    struct pollfd *pf = p->pf;
    bool killed = false;
    int spawn_err = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int state = p->state;
        bool queued = p->qhead != NULL;
        pthread_mutex_unlock(&p->mu);
        if (state == PP_TERMINATED && !killed) {
            killed = true;
            drop_queue(p, -ECANCELED, "pool terminated before the job started");
            queued = false;
            for (size_t i = 0; i < p->n; i++)
                if (p->w[i].pid) reap(p, &p->w[i], TERMINATED);
        }
        int64_t now = now_ns(), wait_until = INT64_MAX;
        size_t live = 0;
        if (state != PP_TERMINATED) {
            /* running: keep every slot filled; closed: only while jobs wait */
            for (size_t i = 0; i < p->n; i++) {
                pp_worker *w = &p->w[i];
                if (w->pid || !(state == PP_RUNNING || queued)) continue;
                if (now < w->respawn_at) {
                    if (w->respawn_at < wait_until) wait_until = w->respawn_at;
                    continue;
                }
                int rc = spawn(p, w);
                if (rc < 0) {
                    spawn_err = rc;
                    w->respawn_at = now + 100000000; /* 0.1 s: no busy loop */
                    if (w->respawn_at < wait_until) wait_until = w->respawn_at;
                }
            }
            for (size_t i = 0; i < p->n; i++) live += p->w[i].pid != 0;
            if (!live && queued) {
                char msg[160];
                snprintf(msg, sizeof msg, "no worker process could be started: %s",
                         co_strerror(spawn_err));
                drop_queue(p, -EAGAIN, msg);
            }
            dispatch(p, now);
            if (state == PP_CLOSED) {
                pthread_mutex_lock(&p->mu);
                queued = p->qhead != NULL;
                pthread_mutex_unlock(&p->mu);
                for (size_t i = 0; i < p->n && !queued; i++) {
                    pp_worker *w = &p->w[i];
                    if (w->pid && !w->job && !w->eof_sent) { /* drained: EOF makes it exit */
                        shutdown(w->sock, SHUT_WR);
                        w->eof_sent = true;
                    }
                }
            }
        }
        live = 0;
        for (size_t i = 0; i < p->n; i++) live += p->w[i].pid != 0;
        if (!live && state != PP_RUNNING && !queued) break;

        /* wait for a wake-up, a reply, a death, or the nearest deadline */
        size_t np = 0;
        pf[np++] = (struct pollfd){p->wakefd, POLLIN, 0};
        for (size_t i = 0; i < p->n; i++) {
            pp_worker *w = &p->w[i];
            if (!w->pid) continue;
            short ev = w->hup ? 0 : POLLIN;
            if (w->job && w->woff < w->job->wirelen && !w->hup) ev |= POLLOUT;
            pf[np++] = (struct pollfd){w->sock, ev, 0};
            pf[np++] = (struct pollfd){w->pidfd, POLLIN, 0}; /* fd -1 is skipped */
            if (w->deadline < wait_until) wait_until = w->deadline;
        }
        int ms = -1;
        if (wait_until != INT64_MAX) {
            int64_t d = wait_until - now_ns();
            ms = d <= 0 ? 0 : d > 1000000000 ? 1000 : (int)((d + 999999) / 1000000);
        }
        if (poll(pf, np, ms) < 0 && errno != EINTR) {
            struct timespec ts = {0, 1000000}; /* ENOMEM: try again shortly */
            nanosleep(&ts, NULL);
            continue;
        }
        if (pf[0].revents) {
            uint64_t v;
            ssize_t r = read(p->wakefd, &v, sizeof v);
            (void)r;
        }
        np = 1;
        now = now_ns();
        for (size_t i = 0; i < p->n; i++) {
            pp_worker *w = &p->w[i];
            if (!w->pid) continue;
            short sev = pf[np++].revents, pev = pf[np++].revents;
            if (sev & POLLOUT) pump_write(w);
            if ((sev & (POLLIN | POLLHUP | POLLERR)) && pump_read(w) < 0) {
                reap(p, w, BAD_REPLY);
                continue;
            }
            if (w->hup || pev) reap(p, w, DIED);
            else if (w->deadline <= now) reap(p, w, TIMED_OUT);
        }
    }
    co_tsfuture_set_result(p->done, NULL);
    return NULL;
}

/* ---- public API ----------------------------------------------------------------------- */

static void free_envp(char **envp) {
    for (char **e = envp; e && *e; e++) free(*e);
    free(envp);
}

/* environ without any CO__PP_ENV, plus ours: "CORIO_PROCPOOL_WORKER=3:<pid>". */
static char **make_envp(void) {
    size_t n = 0;
    for (char **e = environ; e && *e; e++) n++;
    char **envp = calloc(n + 2, sizeof *envp);
    if (!envp) return NULL;
    size_t k = 0, pl = strlen(CO__PP_ENV);
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, CO__PP_ENV, pl) == 0 && (*e)[pl] == '=') continue;
        if (!(envp[k++] = strdup(*e))) goto fail;
    }
    if (asprintf(&envp[k], "%s=%d:%ld", CO__PP_ENV, CO__PP_FD, (long)getpid()) < 0) {
        envp[k] = NULL;
        goto fail;
    }
    return envp;
fail:
    free_envp(envp);
    return NULL;
}

static void pool_destroy(co_procpool *p) {
    if (p->wakefd >= 0) close(p->wakefd);
    co_tsfuture_release(p->done);
    free_envp(p->envp);
    free(p->w);
    free(p->pf);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

co_procpool *co_procpool_new(size_t nworkers) {
    return co_procpool_new_ex(&(co_procpool_opts){.workers = nworkers});
}

co_procpool *co_procpool_new_ex(const co_procpool_opts *opts) {
    if (!opts) return errno = EINVAL, NULL;
    size_t nworkers = opts->workers;
    if (nworkers > CO_PROCPOOL_MAX_WORKERS) return errno = EINVAL, NULL;
    if (nworkers == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        nworkers = c < 1 ? 1 : c > CO_PROCPOOL_MAX_WORKERS ? CO_PROCPOOL_MAX_WORKERS : (size_t)c;
    }
    co_procpool *p = calloc(1, sizeof *p);
    if (!p) return errno = ENOMEM, NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->wakefd = -1;
    p->n = nworkers;
    p->max_tasks = opts->max_tasks_per_worker;
    int err = ENOMEM;
    ssize_t len = readlink("/proc/self/exe", p->exe, sizeof p->exe - 1);
    if (len <= 0 || (size_t)len >= sizeof p->exe - 1) {
        err = ENOEXEC;
        goto fail;
    }
    p->exe[len] = 0;
    p->w = calloc(nworkers, sizeof *p->w);
    p->pf = calloc(1 + 2 * nworkers, sizeof *p->pf);
    p->envp = make_envp();
    p->done = co_tsfuture_new();
    if (!p->w || !p->pf || !p->envp || !p->done) goto fail;
    co_tsfuture_set_running(p->done);
    if ((p->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        err = errno;
        goto fail;
    }
    /* the manager takes no signal meant for the program's own threads */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&p->mgr, NULL, manager, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        err = EAGAIN;
        goto fail;
    }
    pthread_mutex_lock(&p->mu);
    while (!p->started) pthread_cond_wait(&p->cv, &p->mu);
    int serr = p->start_err;
    pthread_mutex_unlock(&p->mu);
    if (serr) {
        pthread_join(p->mgr, NULL);
        err = serr == -ENOMEM || serr == -EMFILE || serr == -ENFILE ? -serr : EAGAIN;
        goto fail;
    }
    return p;
fail:
    pool_destroy(p);
    errno = err;
    return NULL;
}

static int check_args(co_procpool *p, const char *name, const co_procpool_buf *items, size_t n,
                      double timeout, char *msg, size_t cap) {
    if (!p || !name || isnan(timeout) || (n && !items)) {
        snprintf(msg, cap, "invalid argument (NULL pool, name or inputs, or NaN timeout)");
        return -EINVAL;
    }
    if (!co__pp_name_ok(name)) {
        snprintf(msg, cap, "'%.40s' is not a C identifier of at most %d bytes", name,
                 CO_PROCPOOL_MAX_NAME);
        return -EINVAL;
    }
    if (!co__pp_lookup(name)) {
        snprintf(msg, cap,
                 "no job function named '%s' (register it with CO_PROCPOOL_FN, or export it "
                 "and link with -rdynamic)",
                 name);
        return -ENOENT;
    }
    for (size_t i = 0; i < n; i++) {
        if (!items[i].data && items[i].len) {
            snprintf(msg, cap, "input %zu: NULL data with length %zu", i, items[i].len);
            return -EINVAL;
        }
        if (items[i].len > CO_PROCPOOL_MAX_PAYLOAD) {
            snprintf(msg, cap, "input %zu: %zu bytes, over the %zu-byte limit", i, items[i].len,
                     CO_PROCPOOL_MAX_PAYLOAD);
            return -E2BIG;
        }
    }
    return 0;
}

static int enqueue(co_procpool *p, pp_job *j) {
    pthread_mutex_lock(&p->mu);
    if (p->state != PP_RUNNING) {
        pthread_mutex_unlock(&p->mu);
        return -CO_ESHUTDOWN;
    }
    if (p->qtail) p->qtail->next = j;
    else p->qhead = j;
    p->qtail = j;
    pthread_mutex_unlock(&p->mu);
    wake(p);
    return 0;
}

static void job_free_unqueued(pp_job *j) {
    co_tsfuture_release(j->f);
    chunk_free(j->out);
    free(j->wire);
    free(j);
}

static const char *shutdown_msg = "the pool is closed or terminated: no new jobs";

/* submit with the error's message. */
static co_tsfuture *submit(co_procpool *p, const char *name, const void *in, size_t inlen,
                           double timeout, int *err, char *msg, size_t cap) {
    co_procpool_buf b = {in, inlen};
    if ((*err = check_args(p, name, &b, 1, timeout, msg, cap)) < 0) return NULL;
    pp_job *j = job_new(name, &b, 1, timeout, false, 0, err);
    if (!j) {
        snprintf(msg, cap, "out of memory");
        return NULL;
    }
    co_tsfuture *f = co_tsfuture_retain(j->f); /* the caller's */
    if ((*err = enqueue(p, j)) < 0) {
        snprintf(msg, cap, "%s", shutdown_msg);
        co_tsfuture_release(f);
        job_free_unqueued(j);
        return NULL;
    }
    return f;
}

co_tsfuture *co_procpool_submit(co_procpool *p, const char *fn_name, const void *in, size_t inlen,
                                double timeout) {
    int err;
    char msg[200];
    co_tsfuture *f = submit(p, fn_name, in, inlen, timeout, &err, msg, sizeof msg);
    if (!f) errno = -err;
    return f;
}

int co_procpool_wait(co_tsfuture *f, double timeout, co_procpool_result *r) {
    if (!r) return -EINVAL;
    memset(r, 0, sizeof *r);
    void *v = NULL;
    int rc = co_tsfuture_wait(f, timeout, &v);
    if (rc == 0) {
        co_procpool_result *res = v;
        *r = *res;
        free(res);
        return 0;
    }
    const char *m = f && co_tsfuture_done(f) ? co_tsfuture_message(f) : NULL;
    if (m) set_msg(r, rc, "%s", m);
    else if (rc == -ETIMEDOUT) set_msg(r, rc, "no result within %.3g s", timeout);
    else if (rc == -ECANCELED) set_msg(r, rc, "cancelled while waiting for the job");
    else set_msg(r, rc, "%s", co_strerror(rc));
    return rc;
}

int co_procpool_apply(co_procpool *p, const char *fn_name, const void *in, size_t inlen,
                      double timeout, co_procpool_result *r) {
    if (!r) return -EINVAL;
    memset(r, 0, sizeof *r);
    int err;
    co_tsfuture *f = submit(p, fn_name, in, inlen, timeout, &err, r->msg, sizeof r->msg);
    if (!f) return r->err = err;
    int rc = co_procpool_wait(f, CO_FOREVER, r);
    if (rc == -ECANCELED && !co_tsfuture_done(f)) co_tsfuture_cancel(f); /* drop it if queued */
    co_tsfuture_release(f);
    return rc;
}

/* Cancels and drops n chunk futures: a queued chunk never runs, a running
 * one's outcome is thrown away when it comes. */
static void cancel_chunks(co_tsfuture **fs, size_t n) {
    for (size_t c = 0; c < n; c++)
        if (fs[c]) {
            co_tsfuture_cancel(fs[c]);
            co_tsfuture_release(fs[c]);
            fs[c] = NULL;
        }
}

/* Queues inputs[0..n) as chunks of chunksize (0: `dflt_chunk`) and
 * stores their futures (the caller's references) in *fsp, their count in
 * *nchunksp and the chunk size used in *chunkp. 0, or an error with msg
 * and nothing left queued. */
static int queue_chunks(co_procpool *p, const char *fn_name, const co_procpool_buf *inputs, size_t n,
                        size_t chunksize, size_t dflt_chunk, double timeout, co_tsfuture ***fsp,
                        size_t *nchunksp, size_t *chunkp, char *msg, size_t cap) {
    *fsp = NULL;
    *nchunksp = 0;
    int err = check_args(p, fn_name, inputs, n, timeout, msg, cap);
    if (err || n == 0) return err;
    if (chunksize == 0) chunksize = dflt_chunk;
    if (chunksize > UINT32_MAX) chunksize = UINT32_MAX;
    size_t nchunks = n / chunksize + (n % chunksize != 0);
    co_tsfuture **fs = calloc(nchunks, sizeof *fs);
    if (!fs) {
        snprintf(msg, cap, "out of memory");
        return -ENOMEM;
    }
    size_t made = 0;
    for (; err == 0 && made < nchunks; made++) {
        size_t first = made * chunksize, k = n - first < chunksize ? n - first : chunksize;
        pp_job *j = job_new(fn_name, inputs + first, k, timeout, true, first, &err);
        if (!j) {
            snprintf(msg, cap, "out of memory");
            break;
        }
        fs[made] = co_tsfuture_retain(j->f);
        if ((err = enqueue(p, j)) < 0) {
            snprintf(msg, cap, "%s", shutdown_msg);
            co_tsfuture_release(fs[made]);
            job_free_unqueued(j);
            break;
        }
    }
    if (err) { /* nothing is reported half-done: cancel what was queued */
        cancel_chunks(fs, made);
        free(fs);
        return err;
    }
    *fsp = fs;
    *nchunksp = nchunks;
    *chunkp = chunksize;
    return 0;
}

/* A chunk's future finished without outcomes (cancelled, or failed as a
 * whole): the error and message each of its items gets. */
static int chunk_error(co_tsfuture *f, int rc, bool cancelled, char *msg, size_t cap) {
    const char *m = co_tsfuture_done(f) ? co_tsfuture_message(f) : NULL;
    snprintf(msg, cap, "%s", m ? m : cancelled ? "cancelled while waiting" : co_strerror(rc));
    return rc;
}

int co_procpool_map(co_procpool *p, const char *fn_name, const co_procpool_buf *inputs, size_t n,
                    size_t chunksize, double timeout, co_procpool_result *results) {
    if (n && !results) return -EINVAL;
    for (size_t i = 0; i < n; i++) memset(&results[i], 0, sizeof results[i]);
    char msg[200];
    co_tsfuture **fs;
    size_t nchunks, chunk = 1;
    /* multiprocessing's default: about 4 chunks per worker */
    size_t dflt = p && n ? n / (4 * p->n) + (n % (4 * p->n) != 0) : 1;
    int err = queue_chunks(p, fn_name, inputs, n, chunksize, dflt, timeout, &fs, &nchunks, &chunk, msg,
                           sizeof msg);
    if (err) {
        for (size_t i = 0; i < n; i++) set_msg(&results[i], err, "%s", msg);
        return err;
    }
    bool cancelled = false;
    for (size_t c = 0; c < nchunks; c++) {
        size_t first = c * chunk, k = n - first < chunk ? n - first : chunk;
        void *v = NULL;
        int rc = cancelled ? -ECANCELED : co_tsfuture_wait(fs[c], CO_FOREVER, &v);
        if (rc == 0) {
            pp_chunk *out = v;
            memcpy(results + first, out->r, k * sizeof out->r[0]);
            free(out);
        } else {
            /* the waiting task was cancelled: the rest is dropped if queued,
             * thrown away when it comes if running */
            if (rc == -ECANCELED && !co_tsfuture_done(fs[c])) cancelled = true;
            co_tsfuture_cancel(fs[c]);
            chunk_error(fs[c], rc, cancelled, msg, sizeof msg);
            for (size_t i = first; i < first + k; i++) set_msg(&results[i], rc, "%s", msg);
        }
        co_tsfuture_release(fs[c]);
    }
    free(fs);
    for (size_t i = 0; i < n; i++)
        if (results[i].err) return results[i].err;
    return 0;
}

/* ---- imap / imap_unordered ------------------------------------------------------------------ */

/* Unordered iterators learn which chunk finished through done-callbacks,
 * which may run on the manager thread after the caller freed the
 * iterator: they hold references, and the memory goes with the last. */
typedef struct pp_cbarg {
    co_procpool_iter *it;
    size_t chunk;
} pp_cbarg;

struct co_procpool_iter {
    pthread_mutex_t mu;
    atomic_uint refs;        /* the caller's + one per callback not yet run */
    bool unordered;
    size_t n, chunk, nchunks;
    co_tsfuture **fs;        /* chunk futures; NULL once opened */
    pp_cbarg *args;          /* unordered: one per chunk */
    size_t *ready;           /* unordered, under mu: finished chunks, in finishing order */
    size_t rhead, rtail;     /* under mu */
    co_tsfuture *signal;     /* under mu: completed when a chunk finishes (a waiter's) */
    bool closed;             /* under mu: freed by the caller */
    size_t next_chunk;       /* ordered: the chunk to open next */
    /* the chunk being handed out */
    size_t cur, pos, k;      /* its index, next item in it, its item count */
    pp_chunk *open;          /* its outcomes (NULL: it failed as a whole) */
    bool have_open;
    int open_err;
    char open_msg[200];
    size_t yielded;
};

static void iter_unref(co_procpool_iter *it) {
    if (atomic_fetch_sub_explicit(&it->refs, 1, memory_order_acq_rel) != 1) return;
    pthread_mutex_destroy(&it->mu);
    free(it->fs);
    free(it->args);
    free(it->ready);
    free(it);
}

static void iter_chunk_done(co_tsfuture *f, void *arg) {
    (void)f;
    pp_cbarg *a = arg;
    co_procpool_iter *it = a->it;
    pthread_mutex_lock(&it->mu);
    co_tsfuture *s = NULL;
    if (!it->closed) {
        it->ready[it->rtail++] = a->chunk;
        s = it->signal;
        it->signal = NULL;
    }
    pthread_mutex_unlock(&it->mu);
    if (s) {
        co_tsfuture_set_result(s, NULL);
        co_tsfuture_release(s);
    }
    iter_unref(it);
}

co_procpool_iter *co_procpool_imap(co_procpool *p, const char *fn_name, const co_procpool_buf *inputs,
                                   size_t n, size_t chunksize, double timeout, int flags) {
    if (flags & ~CO_PROCPOOL_UNORDERED) {
        errno = EINVAL;
        return NULL;
    }
    co_procpool_iter *it = calloc(1, sizeof *it);
    if (!it) {
        errno = ENOMEM;
        return NULL;
    }
    it->unordered = flags & CO_PROCPOOL_UNORDERED;
    it->n = n;
    char msg[200];
    /* chunksize 0 means 1, Python's default for imap */
    int err = queue_chunks(p, fn_name, inputs, n, chunksize, 1, timeout, &it->fs, &it->nchunks, &it->chunk,
                           msg, sizeof msg);
    if (!err && it->unordered && it->nchunks) {
        it->args = calloc(it->nchunks, sizeof *it->args);
        it->ready = calloc(it->nchunks, sizeof *it->ready);
        if (!it->args || !it->ready) {
            cancel_chunks(it->fs, it->nchunks);
            free(it->fs);
            err = -ENOMEM;
        }
    }
    if (err) {
        free(it->args), free(it->ready), free(it);
        errno = -err;
        return NULL;
    }
    pthread_mutex_init(&it->mu, NULL);
    atomic_init(&it->refs, 1 + (it->unordered ? (unsigned)it->nchunks : 0));
    if (it->unordered)
        for (size_t c = 0; c < it->nchunks; c++) {
            it->args[c] = (pp_cbarg){it, c};
            if (co_tsfuture_add_done_callback(it->fs[c], iter_chunk_done, &it->args[c]) < 0) {
                /* out of memory: this chunk could never be reported. Undo:
                 * the callbacks registered so far run (and let go) as
                 * their chunks are cancelled; the rest never will. */
                for (size_t u = c; u < it->nchunks; u++) atomic_fetch_sub(&it->refs, 1);
                co_procpool_iter_free(it);
                errno = ENOMEM;
                return NULL;
            }
        }
    return it;
}

/* Takes chunk c's outcome (its future is finished, or the wait for it
 * returned rc) as the chunk to hand out. */
static void iter_open(co_procpool_iter *it, size_t c, int rc, void *v) {
    it->cur = c;
    it->pos = 0;
    size_t first = c * it->chunk;
    it->k = it->n - first < it->chunk ? it->n - first : it->chunk;
    it->have_open = true;
    it->open = rc == 0 ? v : NULL;
    it->open_err = rc;
    if (rc) chunk_error(it->fs[c], rc, false, it->open_msg, sizeof it->open_msg);
    co_tsfuture_release(it->fs[c]);
    it->fs[c] = NULL;
}

/* Waits for the next finished chunk of an unordered iterator. */
static int iter_wait_any(co_procpool_iter *it, double timeout) {
    for (;;) {
        pthread_mutex_lock(&it->mu);
        if (it->rhead < it->rtail) {
            size_t c = it->ready[it->rhead++];
            pthread_mutex_unlock(&it->mu);
            void *v = NULL;
            int rc = co_tsfuture_result(it->fs[c], &v);
            iter_open(it, c, rc, v);
            return 0;
        }
        if (!it->signal && !(it->signal = co_tsfuture_new())) {
            pthread_mutex_unlock(&it->mu);
            return -ENOMEM;
        }
        co_tsfuture *s = co_tsfuture_retain(it->signal);
        pthread_mutex_unlock(&it->mu);
        int rc = co_tsfuture_wait(s, timeout, NULL);
        if (rc < 0) {
            pthread_mutex_lock(&it->mu);
            if (it->signal == s) { /* still ours: nothing finished */
                it->signal = NULL;
                co_tsfuture_release(s);
            }
            pthread_mutex_unlock(&it->mu);
            co_tsfuture_release(s);
            return rc;
        }
        co_tsfuture_release(s);
    }
}

int co_procpool_iter_next(co_procpool_iter *it, double timeout, size_t *index, co_procpool_result *r) {
    if (!it || !r || isnan(timeout)) return -EINVAL;
    memset(r, 0, sizeof *r);
    for (;;) {
        if (it->have_open && it->pos < it->k) {
            size_t i = it->pos++;
            if (it->open) {
                *r = it->open->r[i];
                it->open->r[i].data = NULL; /* now the caller's */
            } else {
                set_msg(r, it->open_err, "%s", it->open_msg);
            }
            if (index) *index = it->cur * it->chunk + i;
            it->yielded++;
            if (it->pos == it->k) {
                free(it->open); /* every item's data was handed out */
                it->open = NULL;
                it->have_open = false;
            }
            return 0;
        }
        if (it->yielded == it->n) return 1;
        int rc;
        if (it->unordered) {
            if ((rc = iter_wait_any(it, timeout)) < 0) return rc;
            continue;
        }
        size_t c = it->next_chunk;
        void *v = NULL;
        rc = co_tsfuture_wait(it->fs[c], timeout, &v);
        /* the wait itself timed out or was cancelled: the chunk goes on */
        if ((rc == -ETIMEDOUT || rc == -ECANCELED) && !co_tsfuture_done(it->fs[c])) return rc;
        it->next_chunk++;
        iter_open(it, c, rc, v);
    }
}

void co_procpool_iter_free(co_procpool_iter *it) {
    if (!it) return;
    pthread_mutex_lock(&it->mu);
    it->closed = true;
    co_tsfuture *s = it->signal;
    it->signal = NULL;
    pthread_mutex_unlock(&it->mu);
    co_tsfuture_release(s);
    cancel_chunks(it->fs, it->nchunks);
    if (it->open) {
        co_procpool_result_clear(it->open->r + it->pos, it->k - it->pos);
        free(it->open);
        it->open = NULL;
    }
    iter_unref(it);
}

static int set_state(co_procpool *p, int to) {
    if (!p) return -EINVAL;
    pthread_mutex_lock(&p->mu);
    if (p->state < to) p->state = to;
    pthread_mutex_unlock(&p->mu);
    wake(p);
    return 0;
}

int co_procpool_close(co_procpool *p) { return set_state(p, PP_CLOSED); }
int co_procpool_terminate(co_procpool *p) { return set_state(p, PP_TERMINATED); }

int co_procpool_join(co_procpool *p, double timeout) {
    if (!p || isnan(timeout)) return -EINVAL;
    pthread_mutex_lock(&p->mu);
    int state = p->state;
    pthread_mutex_unlock(&p->mu);
    if (state == PP_RUNNING) return -CO_EINVALSTATE;
    return co_tsfuture_wait(p->done, timeout, NULL);
}

void co_procpool_free(co_procpool *p) {
    if (!p) return;
    co_procpool_terminate(p);
    pthread_join(p->mgr, NULL);
    pool_destroy(p);
}

size_t co_procpool_size(const co_procpool *p) { return p ? p->n : 0; }

size_t co_procpool_pids(co_procpool *p, int *out, size_t cap) {
    if (!p) return 0;
    size_t k = 0;
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->n; i++) {
        if (!p->w[i].pid) continue;
        if (out && k < cap) out[k] = (int)p->w[i].pid;
        k++;
    }
    pthread_mutex_unlock(&p->mu);
    return k;
}
