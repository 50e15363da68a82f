/* file.c — async files (corio/file.h): co_file handles, path operations
 * and the whole-file helpers.
 *
 * Three layers, top to bottom:
 *   - the public functions check arguments and the calling task, keep the
 *     handle's position, cut big transfers into chunks, and compose the
 *     whole-file helpers out of single operations;
 *   - co__fileops, the backend table: one entry per system call, each
 *     suspending the calling task until its operation is over;
 *   - the thread-pool backend: each entry is one job on the default pool.
 * An io_uring backend would be a second co__fileops (its own file, picked
 * at run time after probing the kernel) and nothing above it changes.
 *
 * Runs in tasks, on their loop's thread. The loop's thread never makes a
 * blocking call here, with two exceptions it cannot avoid cheaply:
 * co_file_close outside a task (by contract), and the rare late job whose
 * cleanup ends up on the loop (see co__freq_run).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/buf.h"
#include "corio/file.h"
#include "corio/thread.h"

_Static_assert(sizeof(off_t) == 8, "corio needs a 64-bit off_t");

/* Transfers go through a buffer the job owns, this big at most per job:
 * a cancelled caller's buffer is never touched late, and a 1 GiB write
 * does not need 1 GiB more memory. A pool round trip per MiB is noise
 * next to the I/O itself. */
#define CO__FILE_CHUNK ((size_t)1 << 20)

/* The handle. Its fd may outlive co_file_close for a while: a job whose
 * waiter was cancelled still runs with the fd, and closing the number
 * under it could let a newly opened file reuse it. So every job using the
 * fd holds a reference, and the fd is closed with the last one. */
struct co_file {
    atomic_int refs; /* the owner's, plus one per job using fd */
    int fd;          /* -1 once the close job closed it */
    off_t pos;       /* co_file_read / write; owner's thread only */
    bool seekable;   /* false: a pipe, FIFO or tty: read(2) / write(2) */
    bool append;     /* O_APPEND: the kernel picks where writes go */
    bool busy;       /* a read, write or SEEK_END is using pos */
};

static co_file *co__file_ref(co_file *f) {
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

/* On any thread: the last reference closes what is still open. */
static void co__file_unref(co_file *f) {
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1) return;
    if (f->fd >= 0) close(f->fd);
    free(f);
}

/* ---- the backend interface ---------------------------------------------------------
 * Each call is made from a task, suspends it until the operation is over,
 * and returns as the system call would (0 or a count, else -errno), or
 * -ECANCELED when the task stops waiting first. In that case
 * the backend owns whatever the operation still produces and cleans it
 * up: an fd is closed, a buffer freed, a reference on the co_file dropped.
 * Buffers passed in are read or filled before the call returns, never
 * after. */
typedef struct co__fileops {
    const char *name;
    /* open(2) with O_CLOEXEC added: 0 with *fd. unlink_late: if the fd
     * arrives after the caller gave up, the file is unlinked as well as
     * closed (a temporary file nobody else knows about). */
    int (*open)(const char *path, int flags, mode_t mode, bool unlink_late, int *fd);
    /* One read of up to n bytes at off, or (off < 0) at the fd's own
     * position: the count, 0 at end of file, or -errno. */
    ssize_t (*read)(co_file *f, void *buf, size_t n, off_t off);
    /* Writes all n bytes at off (off < 0: the fd's position, or the end
     * with O_APPEND). 0 or -errno; *written: bytes written either way. */
    int (*write)(co_file *f, const void *buf, size_t n, off_t off, size_t *written);
    int (*fsync)(co_file *f);
    int (*fstat)(co_file *f, struct stat *st);
    /* Closes f's fd and drops the caller's reference. The fd gets closed
     * even when the caller stops waiting. */
    int (*close)(co_file *f);
    int (*stat)(const char *path, struct stat *st);
    int (*rename)(const char *from, const char *to);
    /* must_run: happens even when the caller stops waiting (the cleanup
     * of a temporary file must not depend on the task's fate). */
    int (*unlink)(const char *path, bool must_run);
} co__fileops;

/* ---- the thread-pool backend --------------------------------------------------------
 * One request per operation: its inputs (paths copied), its outputs, and
 * the job's buffer. It belongs to the waiting task until the task stops
 * waiting, then to the job, whose result it is: the pool hands an unread
 * result to co__freq_late, so a late fd or buffer is released on the pool
 * thread that produced it. */
enum { CO__F_OPEN, CO__F_READ, CO__F_WRITE, CO__F_FSYNC, CO__F_FSTAT,
       CO__F_CLOSE, CO__F_STAT, CO__F_RENAME, CO__F_UNLINK };

typedef struct co__freq {
    int op;
    bool must_run;     /* run even if the waiter gave up: never cancel the job */
    bool unlink_late;  /* open: a late fd's file is unlinked too */
    co_file *file;     /* a reference held for the job, or NULL */
    int fd;            /* open: the new fd while nobody took it, else -1 */
    int flags;
    mode_t mode;
    off_t off;
    char *buf;         /* read / write: the job's copy of the data */
    size_t n;
    ssize_t res;       /* the outcome: a count or 0, or -errno */
    size_t done;       /* write: bytes written before an error */
    struct stat st;
    char *path, *path2;
    char paths[];      /* path and path2, copied */
} co__freq;

static co__freq *co__freq_new(int op, const char *path, const char *path2, size_t bufsize) {
    size_t l1 = path ? strlen(path) + 1 : 0, l2 = path2 ? strlen(path2) + 1 : 0;
    co__freq *r = calloc(1, sizeof *r + l1 + l2);
    if (!r) return NULL;
    r->op = op;
    r->fd = -1;
    if (path) r->path = memcpy(r->paths, path, l1);
    if (path2) r->path2 = memcpy(r->paths + l1, path2, l2);
    /* page-aligned, so that O_DIRECT files work with aligned sizes */
    if (bufsize && posix_memalign((void **)&r->buf, 4096, bufsize)) {
        free(r);
        return NULL;
    }
    r->n = bufsize;
    return r;
}

/* Frees r and whatever it still holds: a normal end, or a late job's. */
static void co__freq_free(co__freq *r) {
    if (r->fd >= 0) {
        close(r->fd);
        if (r->unlink_late) unlink(r->path);
    }
    free(r->buf);
    if (r->file) co__file_unref(r->file);
    free(r);
}

static void co__freq_late(void *r) { co__freq_free(r); }

/* Writes all of buf; retries short writes and EINTR. */
static void co__job_write(co__freq *r, int fd) {
    /* A pipe or FIFO without reader raises SIGPIPE, whose default action
     * ends the process: block it for this thread, and take back the one
     * our write raised before unblocking. Regular files never raise it. */
    bool pipe = !r->file->seekable;
    sigset_t pipeset, old;
    if (pipe) {
        sigemptyset(&pipeset);
        sigaddset(&pipeset, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipeset, &old);
    }
    r->res = 0;
    while (r->done < r->n) {
        const char *p = r->buf + r->done;
        size_t left = r->n - r->done;
        ssize_t k = r->off < 0 ? write(fd, p, left) : pwrite(fd, p, left, r->off + (off_t)r->done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            r->res = k < 0 ? -errno : -EIO; /* 0 for n > 0: never progress */
            break;
        }
        r->done += (size_t)k;
    }
    if (pipe) {
        if (r->res == -EPIPE && !sigismember(&old, SIGPIPE)) {
            sigset_t pending;
            sigpending(&pending);
            if (sigismember(&pending, SIGPIPE)) {
                struct timespec zero = {0, 0};
                sigtimedwait(&pipeset, NULL, &zero);
            }
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
}

/* On a pool thread. Always returns r: its result, read or not. */
static void *co__freq_job(void *arg) {
    co__freq *r = arg;
    /* The waiter gave up after the job left the queue: do not start an
     * operation nobody wants any more (a must_run one is wanted anyway). */
    if (!r->must_run && co_blocking_cancelled()) {
        r->res = -ECANCELED;
        return r;
    }
    int fd = r->file ? r->file->fd : -1;
    int rc;
    ssize_t k;
    switch (r->op) {
    case CO__F_OPEN:
        do r->fd = open(r->path, r->flags | O_CLOEXEC, r->mode);
        while (r->fd < 0 && errno == EINTR); /* a FIFO's open can be interrupted */
        r->res = r->fd < 0 ? -errno : 0;
        break;
    case CO__F_READ:
        do k = r->off < 0 ? read(fd, r->buf, r->n) : pread(fd, r->buf, r->n, r->off);
        while (k < 0 && errno == EINTR);
        r->res = k < 0 ? -errno : k;
        break;
    case CO__F_WRITE:
        co__job_write(r, fd);
        break;
    case CO__F_FSYNC:
        r->res = fsync(fd) < 0 ? -errno : 0;
        break;
    case CO__F_FSTAT:
        r->res = fstat(fd, &r->st) < 0 ? -errno : 0;
        break;
    case CO__F_CLOSE:
        /* Linux frees the fd even when close fails, EINTR included:
         * never retry, the number may be someone else's already. */
        rc = close(fd);
        r->res = rc < 0 && errno != EINTR ? -errno : 0;
        r->file->fd = -1;
        break;
    case CO__F_STAT:
        r->res = stat(r->path, &r->st) < 0 ? -errno : 0;
        break;
    case CO__F_RENAME:
        r->res = rename(r->path, r->path2) < 0 ? -errno : 0;
        break;
    case CO__F_UNLINK:
        r->res = unlink(r->path) < 0 ? -errno : 0;
        break;
    }
    return r;
}

/* Runs r as a job on the default pool and waits for it.
 *   0    the job ran; its outcome is in r, which the caller frees
 *   <0   no outcome: the task stopped waiting (-ECANCELED) or the job
 *        could not be submitted; r is gone (freed, or left
 *        to the job, which frees it)
 * co_run_blocking_ex cannot be used here: when a waiter is cancelled
 * while its job is still queued, the job never runs and its argument
 * (r) would leak, and co_run_blocking_ex does not tell which case it was. */
static int co__freq_run(co__freq *r) {
    co_tsfuture *fut = co_pool_submit_ex(NULL, co__freq_job, r, co__freq_late);
    if (!fut) {
        int err = errno;
        if (r->must_run) { /* a cleanup that must happen: here, blocking */
            co__freq_job(r);
            return 0;
        }
        co__freq_free(r);
        return -err;
    }
    void *v;
    int rc = co_tsfuture_wait(fut, CO_FOREVER, &v);
    if (rc == 0) {
        co_tsfuture_release(fut);
        return 0;
    }
    /* Cancelling a queued job means it never runs (CO_CANCELLED); a job
     * that started always ends CO_DONE, and then its unread result goes
     * to co__freq_late when the last reference to fut drops: on the pool
     * thread, or here if the job finished in between (a close(2) or
     * free() on the loop: rare and cheap). */
    if (!r->must_run) co_tsfuture_cancel(fut);
    bool never_ran = co_tsfuture_state(fut) == CO_CANCELLED;
    co_tsfuture_release(fut);
    if (never_ran) co__freq_free(r);
    return rc;
}

/* Runs r and returns its outcome, freeing r. */
static ssize_t co__freq_do(co__freq *r) {
    int rc = co__freq_run(r);
    if (rc < 0) return rc;
    ssize_t res = r->res;
    co__freq_free(r);
    return res;
}

static int co__pool_open(const char *path, int flags, mode_t mode, bool unlink_late, int *fd) {
    co__freq *r = co__freq_new(CO__F_OPEN, path, NULL, 0);
    if (!r) return -ENOMEM;
    r->flags = flags;
    r->mode = mode;
    r->unlink_late = unlink_late;
    int rc = co__freq_run(r);
    if (rc < 0) return rc;
    rc = (int)r->res;
    *fd = r->fd;
    r->fd = -1; /* ours now */
    co__freq_free(r);
    return rc;
}

static ssize_t co__pool_read(co_file *f, void *buf, size_t n, off_t off) {
    co__freq *r = co__freq_new(CO__F_READ, NULL, NULL, n);
    if (!r) return -ENOMEM;
    r->file = co__file_ref(f);
    r->off = off;
    int rc = co__freq_run(r);
    if (rc < 0) return rc;
    ssize_t k = r->res;
    if (k > 0) memcpy(buf, r->buf, (size_t)k);
    co__freq_free(r);
    return k;
}

static int co__pool_write(co_file *f, const void *buf, size_t n, off_t off, size_t *written) {
    *written = 0;
    co__freq *r = co__freq_new(CO__F_WRITE, NULL, NULL, n);
    if (!r) return -ENOMEM;
    memcpy(r->buf, buf, n);
    r->file = co__file_ref(f);
    r->off = off;
    int rc = co__freq_run(r);
    if (rc < 0) return rc;
    *written = r->done;
    rc = (int)r->res;
    co__freq_free(r);
    return rc;
}

static int co__pool_fsync(co_file *f) {
    co__freq *r = co__freq_new(CO__F_FSYNC, NULL, NULL, 0);
    if (!r) return -ENOMEM;
    r->file = co__file_ref(f);
    return (int)co__freq_do(r);
}

/* Runs a stat-kind request and hands its struct stat out. */
static int co__freq_stat(co__freq *r, struct stat *st) {
    int rc = co__freq_run(r);
    if (rc < 0) return rc;
    rc = (int)r->res;
    if (rc == 0) *st = r->st;
    co__freq_free(r);
    return rc;
}

static int co__pool_fstat(co_file *f, struct stat *st) {
    co__freq *r = co__freq_new(CO__F_FSTAT, NULL, NULL, 0);
    if (!r) return -ENOMEM;
    r->file = co__file_ref(f);
    return co__freq_stat(r, st);
}

static int co__pool_close(co_file *f) {
    /* A late job still uses the fd: the last reference closes it. */
    if (atomic_load_explicit(&f->refs, memory_order_acquire) > 1) {
        co__file_unref(f);
        return 0;
    }
    co__freq *r = co__freq_new(CO__F_CLOSE, NULL, NULL, 0);
    if (!r) { /* cannot even ask: close here rather than leak the fd */
        co__file_unref(f);
        return 0;
    }
    r->file = f; /* the owner's reference, handed to the job */
    r->must_run = true;
    return (int)co__freq_do(r);
}

static int co__pool_stat(const char *path, struct stat *st) {
    co__freq *r = co__freq_new(CO__F_STAT, path, NULL, 0);
    if (!r) return -ENOMEM;
    return co__freq_stat(r, st);
}

static int co__pool_rename(const char *from, const char *to) {
    co__freq *r = co__freq_new(CO__F_RENAME, from, to, 0);
    if (!r) return -ENOMEM;
    return (int)co__freq_do(r);
}

static int co__pool_unlink(const char *path, bool must_run) {
    co__freq *r = co__freq_new(CO__F_UNLINK, path, NULL, 0);
    if (!r) {
        if (!must_run) return -ENOMEM;
        return unlink(path) < 0 ? -errno : 0; /* a cleanup must happen: here, blocking */
    }
    r->must_run = must_run;
    return (int)co__freq_do(r);
}

static const co__fileops co__pool_fileops = {
    .name = "threadpool",
    .open = co__pool_open,
    .read = co__pool_read,
    .write = co__pool_write,
    .fsync = co__pool_fsync,
    .fstat = co__pool_fstat,
    .close = co__pool_close,
    .stat = co__pool_stat,
    .rename = co__pool_rename,
    .unlink = co__pool_unlink,
};

static const co__fileops *const co__fops = &co__pool_fileops;

/* ---- handles ----------------------------------------------------------------------- */

/* The common entry check of the calls that suspend. */
static int co__file_enter(void) {
    if (!co_current()) return -CO_ENOTASK;
    return co_cancelled() ? -ECANCELED : 0;
}

/* Wraps an fd the caller just opened. NULL: out of memory. */
static co_file *co__file_new(int fd, int flags) {
    co_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    atomic_init(&f->refs, 1);
    f->fd = fd;
    f->seekable = lseek(fd, 0, SEEK_CUR) >= 0; /* no I/O: cheap on the loop */
    f->append = (flags & O_APPEND) != 0;
    return f;
}

static int co__file_open(const char *path, int flags, mode_t mode, bool unlink_late, co_file **out) {
    int fd;
    int rc = co__fops->open(path, flags, mode, unlink_late, &fd);
    if (rc) return rc;
    co_file *f = co__file_new(fd, flags);
    if (!f) {
        close(fd);
        if (unlink_late) unlink(path);
        return -ENOMEM;
    }
    *out = f;
    return 0;
}

int co_file_open(const char *path, int flags, mode_t mode, co_file **out) {
    int rc = co__file_enter();
    if (rc) return rc;
    if (!path || !out) return -EINVAL;
    *out = NULL;
    return co__file_open(path, flags, mode, false, out);
}

/* Reads up to n bytes at off (< 0: the fd's position), a chunk per job,
 * until n or a short chunk (end of file). A pipe gets one read. An error
 * drops what earlier chunks read: the caller sees the error only. */
static ssize_t co__file_readat(co_file *f, char *buf, size_t n, off_t off) {
    if (n > SSIZE_MAX) n = SSIZE_MAX;
    size_t got = 0;
    while (got < n) {
        size_t want = n - got < CO__FILE_CHUNK ? n - got : CO__FILE_CHUNK;
        ssize_t k = co__fops->read(f, buf + got, want, off < 0 ? -1 : off + (off_t)got);
        if (k < 0) return k;
        got += (size_t)k;
        if ((size_t)k < want || off < 0) break;
    }
    return (ssize_t)got;
}

/* Writes all n bytes at off (< 0: the fd's position), a chunk per job;
 * *written counts the bytes that went out. */
static int co__file_writeat(co_file *f, const char *buf, size_t n, off_t off, size_t *written) {
    *written = 0;
    while (*written < n) {
        size_t want = n - *written < CO__FILE_CHUNK ? n - *written : CO__FILE_CHUNK;
        size_t w = 0;
        int rc = co__fops->write(f, buf + *written, want, off < 0 ? -1 : off + (off_t)*written, &w);
        *written += w;
        if (rc) return rc;
    }
    return 0;
}

/* The checks co_file_read and co_file_write share: 1 to go on (f is
 * then marked busy: its position is the caller's), 0 for n == 0, or an
 * error. */
static int co__file_take(co_file *f, const void *buf, size_t n) {
    int rc = co__file_enter();
    if (rc) return rc;
    if (!f || (!buf && n)) return -EINVAL;
    if (f->busy) return -EBUSY;
    if (n == 0) return 0;
    f->busy = true;
    return 1;
}

ssize_t co_file_read(co_file *f, void *buf, size_t n) {
    int rc = co__file_take(f, buf, n);
    if (rc <= 0) return rc;
    ssize_t k = co__file_readat(f, buf, n, f->seekable ? f->pos : -1);
    if (k > 0) f->pos += k;
    f->busy = false;
    return k;
}

int co_file_write(co_file *f, const void *buf, size_t n, size_t *written) {
    if (written) *written = 0;
    int rc = co__file_take(f, buf, n);
    if (rc <= 0) return rc;
    size_t w = 0;
    /* O_APPEND ignores pwrite's offset on Linux: write(2) and ask where
     * the kernel put the end (lseek does no I/O). */
    rc = co__file_writeat(f, buf, n, f->seekable && !f->append ? f->pos : -1, &w);
    if (f->append && f->seekable) {
        off_t end = lseek(f->fd, 0, SEEK_CUR);
        if (end >= 0) f->pos = end;
    } else {
        f->pos += (off_t)w;
    }
    f->busy = false;
    if (written) *written = w;
    return rc;
}

ssize_t co_file_pread(co_file *f, void *buf, size_t n, off_t off) {
    int rc = co__file_enter();
    if (rc) return rc;
    if (!f || (!buf && n) || off < 0) return -EINVAL;
    if (!f->seekable) return -ESPIPE;
    if (n == 0) return 0;
    return co__file_readat(f, buf, n, off);
}

int co_file_pwrite(co_file *f, const void *buf, size_t n, off_t off, size_t *written) {
    size_t w = 0;
    if (written) *written = 0;
    int rc = co__file_enter();
    if (rc) return rc;
    if (!f || (!buf && n) || off < 0) return -EINVAL;
    if (!f->seekable) return -ESPIPE;
    rc = co__file_writeat(f, buf, n, off, &w);
    if (written) *written = w;
    return rc;
}

int co_file_fsync(co_file *f) {
    int rc = co__file_enter();
    if (rc) return rc;
    if (!f) return -EINVAL;
    return co__fops->fsync(f);
}

int co_file_fstat(co_file *f, struct stat *st) {
    int rc = co__file_enter();
    if (rc) return rc;
    if (!f || !st) return -EINVAL;
    return co__fops->fstat(f, st);
}

off_t co_file_seek(co_file *f, off_t off, int whence) {
    if (!f) return -EINVAL;
    if (!f->seekable) return -ESPIPE;
    if (f->busy) return -EBUSY;
    off_t base;
    switch (whence) {
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = f->pos;
        break;
    case SEEK_END: {
        int rc = co__file_enter();
        if (rc) return rc;
        struct stat st;
        f->busy = true; /* a read or write now would race with the new pos */
        rc = co__fops->fstat(f, &st);
        f->busy = false;
        if (rc) return rc;
        base = st.st_size;
        break;
    }
    default:
        return -EINVAL;
    }
    if (off > 0 && base > INT64_MAX - off) return -EOVERFLOW;
    if (base + off < 0) return -EINVAL;
    f->pos = base + off;
    return f->pos;
}

off_t co_file_tell(const co_file *f) { return f ? f->pos : -EINVAL; }

int co_file_fd(const co_file *f) { return f ? f->fd : -EINVAL; }

int co_file_close(co_file *f) {
    if (!f) return -EINVAL;
    if (!co_current()) {
        /* No task to suspend: close here, so a handle can always be let go. */
        int rc = 0;
        if (atomic_load_explicit(&f->refs, memory_order_acquire) == 1) {
            rc = close(f->fd) < 0 && errno != EINTR ? -errno : 0;
            f->fd = -1;
        }
        co__file_unref(f);
        return rc;
    }
    /* No cancellation check first: a cancelled task must still be able
     * to close; the close job runs whatever happens to the task. A
     * cancelled caller always hears -ECANCELED (the fd still goes, in the
     * background), whether or not a late job held the last reference. */
    bool cancelled = co_cancelled();
    int rc = co__fops->close(f);
    return cancelled ? -ECANCELED : rc;
}

/* ---- paths ------------------------------------------------------------------------- */

int co_file_stat(const char *path, struct stat *st) {
    int rc = co__file_enter();
    if (rc) return rc;
    if (!path || !st) return -EINVAL;
    return co__fops->stat(path, st);
}

int co_file_rename(const char *from, const char *to) {
    int rc = co__file_enter();
    if (rc) return rc;
    if (!from || !to) return -EINVAL;
    return co__fops->rename(from, to);
}

int co_file_unlink(const char *path) {
    int rc = co__file_enter();
    if (rc) return rc;
    if (!path) return -EINVAL;
    return co__fops->unlink(path, false);
}

/* ---- whole files ------------------------------------------------------------------- */

/* Reads f to its end into b: 0, -EFBIG past max_bytes, -ENOMEM, or the
 * read's error. hint: the size fstat stated (0: none); a buffer of
 * hint + 2 bytes reads a file that did not grow in one go and sees its
 * end at once (the 2: one byte past the size, one for the NUL). */
static int co__file_slurp(co_file *f, size_t max_bytes, size_t hint, co__buf *b) {
    int rc = hint ? co__buf_reserve(b, hint + 2) : 0;
    while (rc == 0) {
        if ((rc = co__buf_reserve(b, 2))) break; /* a byte to read, one for the NUL */
        size_t n = co__buf_len(b);
        size_t want = co__buf_room(b) - 1, room = max_bytes - n;
        if (want > room) want = room + 1; /* one past the limit is enough to know */
        ssize_t k = co__file_readat(f, co__buf_tail(b), want, f->seekable ? (off_t)n : -1);
        if (k < 0) return (int)k;
        co__buf_commit(b, (size_t)k);
        if (co__buf_len(b) > max_bytes) return -EFBIG;
        /* End of file: nothing more, or less than asked once the stated
         * size is in (procfs and sysfs files state 0 and read short
         * before their end, so a short read alone proves nothing). */
        if (k == 0 || (hint && co__buf_len(b) >= hint && (size_t)k < want)) return 0;
    }
    return rc == -EINVAL ? -EFBIG : rc;
}

int co_file_read_all(const char *path, size_t max_bytes, char **data, size_t *len) {
    if (data) *data = NULL;
    if (len) *len = 0;
    int rc = co__file_enter();
    if (rc) return rc;
    if (!path || !data || !len) return -EINVAL;
    co_file *f;
    rc = co__file_open(path, O_RDONLY, 0, false, &f);
    if (rc) return rc;
    co__buf b = CO__BUF_INIT;
    struct stat st;
    rc = co__fops->fstat(f, &st);
    if (rc == 0 && S_ISDIR(st.st_mode)) rc = -EISDIR; /* open(2) lets a directory be read... by read(2) failing */
    size_t hint = rc == 0 && S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size : 0;
    if (rc == 0 && hint > max_bytes) rc = -EFBIG;
    if (rc == 0) rc = co__file_slurp(f, max_bytes, hint, &b);
    int crc = co__fops->close(f);
    if (!rc) rc = crc;
    if (!rc) rc = co__buf_detach(&b, data, len); /* room for the NUL is there: no allocation */
    co__buf_free(&b);
    return rc;
}

/* A name for a temporary file next to path: "DIR/.BASE.XXXXXX.tmp", BASE
 * cut so the name stays within NAME_MAX. Unique enough with O_EXCL and a
 * retry: the pid, a counter and the clock, mixed. */
static char *co__tmp_name(const char *path) {
    static atomic_uint counter;
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
    const char *base = path + dirlen;
    int baselen = (int)strlen(base);
    if (baselen > NAME_MAX - 16) baselen = NAME_MAX - 16;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 20) ^
                 atomic_fetch_add_explicit(&counter, 1, memory_order_relaxed);
    /* splitmix64's finaliser: neighbouring inputs give unrelated names */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    static const char digits[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    char rnd[7];
    for (int i = 0; i < 6; i++, x /= 36) rnd[i] = digits[x % 36];
    rnd[6] = 0;
    size_t cap = dirlen + (size_t)baselen + 16;
    char *t = malloc(cap);
    if (t) snprintf(t, cap, "%.*s.%.*s.%s.tmp", (int)dirlen, path, baselen, base, rnd);
    return t;
}

/* fsync on the directory holding path, so a rename in it is durable. */
static int co__fsync_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return -ENOMEM;
    co_file *d;
    int rc = co__file_open(dir, O_RDONLY | O_DIRECTORY, 0, false, &d);
    free(dir);
    if (rc) return rc;
    rc = co__fops->fsync(d);
    if (rc == -EINVAL) rc = 0; /* a file system that cannot sync directories */
    int crc = co__fops->close(d);
    return rc ? rc : crc;
}

int co_file_write_all(const char *path, const void *data, size_t len, mode_t mode) {
    int rc = co__file_enter();
    if (rc) return rc;
    if (!path || !*path || path[strlen(path) - 1] == '/' || (!data && len)) return -EINVAL;
    char *tmp = NULL;
    co_file *f = NULL;
    for (int tries = 0; tries < 16; tries++) {
        free(tmp);
        if (!(tmp = co__tmp_name(path))) return -ENOMEM;
        /* unlink_late: if the task gives up while the file is being
         * created, the late fd's job removes it */
        rc = co__file_open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode, true, &f);
        if (rc != -EEXIST) break;
    }
    if (rc) goto out;
    rc = co_file_write(f, data, len, NULL);
    if (!rc) rc = co__fops->fsync(f);
    /* close reports write-back errors of some file systems (NFS): a
     * failed close means the data may not be there, so no rename */
    int crc = co__fops->close(f);
    if (!rc) rc = crc;
    if (!rc) rc = co__fops->rename(tmp, path);
    if (rc) {
        /* -ECANCELED from the rename: it may have happened; the unlink
         * then finds nothing, and the old or the new file is in place,
         * whole, either way */
        co__fops->unlink(tmp, true);
        goto out;
    }
    rc = co__fsync_dir(path);
out:
    free(tmp);
    return rc;
}
