/* stream.c — buffered streams (asyncio StreamReader + StreamWriter in one
 * object) over a transport: plain fds here, TLS in tls.c. Loop thread,
 * inside tasks (except co_stream_abort and the background flush).
 *
 * Reading: the input buffer is refilled by one transport read at a time;
 * large reads into an empty buffer go straight to the caller's memory
 * (no copy). Writing: co_stream_write tries the transport at once when
 * nothing is queued (the common case: no copy, no wait), queues the rest,
 * and the fd's writable edges flush the queue in the background (the
 * fd record's hook) while no task is flushing. drain is the flow control.
 * Both buffers are base/buf.h's co__buf; other files reach the input
 * buffer only through co__stream_take_input.
 *
 * Every entry point checks the stream's magic first (internal.h): a
 * closed stream gives -EBADF and a report, not a crash, while its memory
 * is still ours (always in assertion builds and on debug loops, which
 * quarantine closed streams; by luck otherwise).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define CO__STREAM_LIMIT (64 * 1024)
#define CO__STREAM_HIGH (64 * 1024)
#define CO__STREAM_INBUF (16 * 1024)

/* ---- the plain transport -------------------------------------------------------------- */

/* The edge-triggered bookkeeping saves the read that would only say
 * EAGAIN when a read shorter than asked proves the socket empty: its READ
 * bit is then cleared at once, and a read with the bit clear waits for
 * the next edge (data arriving later always brings one) without a system
 * call. The proof holds only where the kernel stops a read short for no
 * other reason than an empty queue: an AF_UNIX SOCK_STREAM socket read
 * with recvmsg, whose MSG_CTRUNC shows the one other stop (ancillary data
 * such as SCM_RIGHTS, which it drops). It does not hold for TCP (a read
 * stops before the urgent mark with data queued behind it, and nothing
 * in the result says so), for SOCK_SEQPACKET or datagram sockets (one
 * message per read), nor for packet-mode pipes or terminals (a packet, a
 * line per read): all those read until EAGAIN. */
static ssize_t co__plain_read(co_stream *s, void *buf, size_t n, int *want) {
    /* Not after the peer's end of stream: the read that returns 0 there
     * brings no edge of its own. */
    bool skip = s->short_drains && !co__fd_ended(s->loop, s->fd);
    if (skip && !(co__fd_ready(s->loop, s->fd) & CO_READ)) {
        *want = CO_READ;
        return -EAGAIN;
    }
    int rc = co__fault(CO_FAULT_READ);
    if (rc) return rc;
    for (;;) {
        struct iovec iov = {buf, n};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t r = s->short_drains ? recvmsg(s->fd, &m, 0) : read(s->fd, buf, n);
        if (r > 0 && (size_t)r < n && skip && !(m.msg_flags & MSG_CTRUNC)) co__fd_clear(s->loop, s->fd, CO_READ);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno == EAGAIN) *want = CO_READ;
        return -errno;
    }
}

/* Whether fd is a socket whose short reads prove it empty (above). */
static bool co__short_read_drains(int fd) {
    int type = 0, domain = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) return false;
    len = sizeof domain;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0) return false;
    return type == SOCK_STREAM && domain == AF_UNIX;
}

static ssize_t co__plain_write(co_stream *s, const void *buf, size_t n, int *want) {
    int rc = co__fault(CO_FAULT_WRITE);
    if (rc) return rc;
    for (;;) {
        ssize_t r = s->is_sock ? send(s->fd, buf, n, MSG_NOSIGNAL) : write(s->fd, buf, n);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno == EAGAIN) *want = CO_WRITE;
        return -errno;
    }
}

static int co__plain_shutdown(co_stream *s, int *want) {
    (void)want;
    if (s->is_sock) return shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN ? -errno : 0;
    /* a pipe: closing our end is the only end-of-stream it has */
    int fd = s->fd;
    co__fd_forget(s->loop, fd);
    close(fd);
    s->fd = -1;
    return 0;
}

static const co__transport co__plain = {
    .read = co__plain_read, .write = co__plain_write, .shutdown = co__plain_shutdown, .free = NULL, .name = "fd"};

/* ---- use after close ------------------------------------------------------------------ */

/* In assertion builds (the ASan pass) and on debug loops a closed
 * stream's struct is not freed at once: it stays, marked dead, among the
 * last CO__QUARANTINE closed streams, so that a use after close meets the
 * magic and is reported (older ones are freed: ASan reports a use of
 * those). The quarantine is global (streams of every loop thread, hence
 * the lock; debug builds only) and reachable, so no leak checker counts
 * it. */
#define CO__QUARANTINE 64
static co_stream *co__quarantine[CO__QUARANTINE];
static unsigned co__quarantine_next;
static pthread_mutex_t co__quarantine_lock = PTHREAD_MUTEX_INITIALIZER;

static void co__stream_release(co_stream *s) {
    bool keep = CO__ASSERTS_ON || s->loop->debug;
    s->magic = CO__STREAM_DEAD;
    if (!keep) {
        free(s);
        return;
    }
    pthread_mutex_lock(&co__quarantine_lock);
    co_stream *old = co__quarantine[co__quarantine_next % CO__QUARANTINE];
    co__quarantine[co__quarantine_next++ % CO__QUARANTINE] = s;
    pthread_mutex_unlock(&co__quarantine_lock);
    free(old);
}

/* what was called on a stream that is not open: reported on stderr (a
 * bug in the caller, which may not look at the return value) and -EBADF. */
static int co__stream_dead(const co_stream *s, const char *what) {
    fprintf(stderr, "corio: %s on stream %p after co_stream_close (use after close)\n", what, (const void *)s);
    return co__io_fail(-EBADF, "%s on a stream after co_stream_close", what);
}

int co__stream_check(const co_stream *s, const char *what) {
    if (!s) return -EINVAL;
    return co__likely(s->magic == CO__STREAM_LIVE) ? 0 : co__stream_dead(s, what);
}

/* ---- life ----------------------------------------------------------------------------- */

static const char *co__stream_peer(co_stream *s) {
    if (!s->peer[0]) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (s->fd >= 0 && getpeername(s->fd, (struct sockaddr *)&ss, &len) == 0 && len > sizeof(sa_family_t))
            co_sockaddr_str((struct sockaddr *)&ss, len, s->peer, sizeof s->peer);
        else
            snprintf(s->peer, sizeof s->peer, "fd %d", s->fd);
    }
    return s->peer;
}

static int co__stream_err(co_stream *s, const char *what, int err) {
    if (err == -ECANCELED || err == -ETIMEDOUT) return co__io_fail(err, "%s %s: %s", what, co__stream_peer(s), co_strerror(err));
    return co__io_fail(err, "%s %s failed: %s", what, co__stream_peer(s), co_strerror(err));
}

/* A transport call failed: its own sentence (TLS says what and why) if it
 * wrote one during the call, else ours. */
static int co__stream_tr_err(co_stream *s, const char *what, int err) {
    return co__io_error_gen() != s->tr_gen ? err : co__stream_err(s, what, err);
}
static inline void co__tr_mark(co_stream *s) { s->tr_gen = co__io_error_gen(); }

static void co__stream_bg(void *arg, int ev);

int co_stream_open(int fd, const co_stream_opts *opts, co_stream **out) {
    if (fd < 0 || !out) return -EINVAL;
    co_loop *L = co__tls_loop;
    if (!L) return -CO_ENOLOOP;
    if (!co__on_loop_thread(L)) return co__wrongloop(L, "co_stream_open");
    struct stat st;
    if (fstat(fd, &st) < 0) return -errno;
    if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
        return co__io_fail(-EPERM, "fd %d is a regular file or directory: it cannot be polled (use the file API)", fd);
    co_stream *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->magic = CO__STREAM_LIVE;
    s->loop = L;
    s->fd = fd;
    s->is_sock = S_ISSOCK(st.st_mode);
    s->short_drains = s->is_sock && co__short_read_drains(fd);
    s->tr = &co__plain;
    s->bg_want = CO_WRITE;
    s->limit = opts && opts->limit ? opts->limit : CO__STREAM_LIMIT;
    s->high = opts && opts->high_water ? opts->high_water : CO__STREAM_HIGH;
    s->low = opts && opts->low_water ? opts->low_water : s->high / 4;
    if (s->low > s->high) s->low = s->high;
    if (opts && opts->peer) snprintf(s->peer, sizeof s->peer, "%s", opts->peer);
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    if (!s->is_sock) co__sigpipe_ignore();
    int rc = co__fd_set_hook(L, fd, co__stream_bg, s);
    if (rc) {
        if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl);
        free(s);
        return rc == -EPERM ? co__io_fail(rc, "fd %d cannot be polled", fd) : rc;
    }
    *out = s;
    return 0;
}

static void co__stream_free(co_stream *s) {
    if (s->fd >= 0) {
        co__fd_forget(s->loop, s->fd);
        close(s->fd);
    }
    if (s->tr->free) s->tr->free(s);
    co__buf_free(&s->in);
    co__buf_free(&s->out);
    co__stream_release(s);
}

void co_stream_abort(co_stream *s) {
    if (!s || co__stream_check(s, "co_stream_abort")) return;
    co__stream_free(s);
}

/* Common entry checks: s is open and the caller runs in a task of its loop. */
static int co__stream_enter(co_stream *s, const char *what) {
    int rc = co__stream_check(s, what);
    if (rc) return rc;
    co_task *t;
    if ((rc = co__can_suspend(&t))) return rc;
    if (t->loop != s->loop) return co__wrongloop(s->loop, what);
    return 0;
}

void co__stream_take_input(co_stream *s, co__buf *dst) { co__buf_move(dst, &s->in); }

int co__stream_wait(co_stream *s, int want) {
    if (s->fd < 0) return -EBADF;
    co__fd_clear(s->loop, s->fd, want);
    int rc = co__fd_wait(s->loop, s->fd, want, CO__NO_DEADLINE);
    return rc < 0 ? rc : 0;
}

/* ---- reading -------------------------------------------------------------------------- */

/* One transport read into buf, waiting until it gives something: the
 * count, 0 (end of stream: s->eof set), or an error. */
static ssize_t co__stream_read1(co_stream *s, void *buf, size_t n) {
    for (;;) {
        int want = 0;
        co__tr_mark(s);
        ssize_t r = s->tr->read(s, buf, n, &want);
        if (r > 0) return r;
        if (r == 0) {
            s->eof = true;
            return 0;
        }
        if (r != -EAGAIN || !want) return co__stream_tr_err(s, "read from", (int)r);
        int rc = co__stream_wait(s, want);
        if (rc) return co__stream_err(s, "read from", rc);
    }
}

/* One read into the input buffer (growing it up to `room` free bytes). */
static ssize_t co__stream_fill(co_stream *s, size_t room) {
    if (s->eof) return 0;
    co__buf *b = &s->in;
    int rc = co__buf_reserve(b, room);
    if (rc) return co__io_fail(rc, "no room for %zu more bytes from %s: %s", room, co__stream_peer(s), co_strerror(rc));
    ssize_t r = co__stream_read1(s, co__buf_tail(b), co__buf_room(b));
    if (r > 0) co__buf_commit(b, (size_t)r);
    return r;
}

static int co__stream_reader(co_stream *s, const char *what) {
    int rc = co__stream_enter(s, what);
    if (rc) return rc;
    if (s->reading) return co__io_fail(-EBUSY, "another task is reading from %s", co__stream_peer(s));
    s->reading = true;
    return 0;
}

ssize_t co_stream_read(co_stream *s, void *buf, size_t max) {
    int rc = co__stream_reader(s, "co_stream_read");
    if (rc) return rc;
    ssize_t r;
    if (max == 0) {
        r = 0;
    } else if (s->in.len) {
        r = (ssize_t)co__buf_take(&s->in, buf, max);
    } else if (s->eof) {
        r = 0;
    } else if (max >= CO__STREAM_INBUF / 2) {
        r = co__stream_read1(s, buf, max); /* straight into the caller's memory */
    } else {
        r = co__stream_fill(s, CO__STREAM_INBUF / 2);
        if (r > 0) r = (ssize_t)co__buf_take(&s->in, buf, max);
    }
    s->reading = false;
    return r;
}

ssize_t co_stream_readexactly(co_stream *s, void *buf, size_t n, size_t *got) {
    if (got) *got = 0;
    if (n > CO__BUF_MAX) return co__io_fail(-EINVAL, "readexactly of %zu bytes: no buffer is that large", n);
    if (!buf && n) return -EINVAL;
    int rc = co__stream_reader(s, "co_stream_readexactly");
    if (rc) return rc;
    char *p = buf;
    size_t have = co__buf_take(&s->in, p, n);
    ssize_t r = 1;
    while (have < n) {
        r = co__stream_read1(s, p + have, n - have);
        if (r <= 0) break;
        have += (size_t)r;
    }
    s->reading = false;
    if (have == n) {
        if (got) *got = n;
        return (ssize_t)n;
    }
    if (r == 0) { /* end of stream first: the partial data is the caller's */
        if (got) *got = have;
        return co__io_fail(-CO_EINCOMPLETE, "%s ended after %zu of %zu bytes", co__stream_peer(s), have, n);
    }
    /* cancelled, timed out or failed: nothing read is lost */
    if (co__buf_prepend(&s->in, p, have) < 0 && got) *got = have;
    return r;
}

/* Finds sep in the buffer from `from`; the index after it, or 0. */
static size_t co__find(const co__buf *b, size_t from, const void *sep, size_t seplen) {
    if (b->len < seplen || from > b->len - seplen) return 0;
    const char *base = co__buf_data(b);
    const char *hit = memmem(base + from, b->len - from, sep, seplen);
    return hit ? (size_t)(hit - base) + seplen : 0;
}

/* At end of stream without sep: readuntil's strict form fails with
 * -CO_EINCOMPLETE and leaves the bytes readable; readline's (asyncio's)
 * hands over what is left, a last line without its newline (< max bytes,
 * the loop's limit check saw to that), and then 0. */
static ssize_t co__stream_until_eof(co_stream *s, bool partial, void *buf) {
    if (partial) return (ssize_t)co__buf_take(&s->in, buf, s->in.len);
    return co__io_fail(-CO_EINCOMPLETE, "%s ended without the separator (%zu bytes stay readable)",
                       co__stream_peer(s), s->in.len);
}

static ssize_t co__stream_until(co_stream *s, const void *sep, size_t seplen, void *buf, size_t cap, bool partial,
                                const char *what) {
    if (!sep || seplen == 0 || (!buf && cap)) return -EINVAL;
    int rc = co__stream_reader(s, what);
    if (rc) return rc;
    size_t max = s->limit < cap ? s->limit : cap;
    size_t scanned = 0;
    ssize_t r;
    for (;;) {
        size_t end = co__find(&s->in, scanned, sep, seplen);
        if (end) {
            if (end > max) r = co__io_fail(-CO_ELIMIT, "line from %s longer than %zu bytes", co__stream_peer(s), max);
            else r = (ssize_t)co__buf_take(&s->in, buf, end);
            break;
        }
        if (s->in.len >= max) {
            r = co__io_fail(-CO_ELIMIT, "no separator within %zu bytes from %s (the data stays readable)", max,
                            co__stream_peer(s));
            break;
        }
        if (s->eof) {
            r = co__stream_until_eof(s, partial, buf);
            break;
        }
        scanned = s->in.len >= seplen ? s->in.len - seplen + 1 : 0;
        r = co__stream_fill(s, CO__STREAM_INBUF / 2);
        if (r < 0) break;
    }
    s->reading = false;
    return r;
}

ssize_t co_stream_readuntil(co_stream *s, const void *sep, size_t seplen, void *buf, size_t cap) {
    return co__stream_until(s, sep, seplen, buf, cap, false, "co_stream_readuntil");
}

ssize_t co_stream_readline(co_stream *s, void *buf, size_t cap) {
    return co__stream_until(s, "\n", 1, buf, cap, true, "co_stream_readline");
}

int co_stream_peek(co_stream *s, size_t want, const char **p, size_t *n) {
    if (want > CO__BUF_MAX) return co__io_fail(-EINVAL, "peek of %zu bytes: no buffer is that large", want);
    int rc = co__stream_reader(s, "co_stream_peek");
    if (rc) return rc;
    if (want > s->limit && want > s->in.len) {
        rc = co__io_fail(-CO_ELIMIT, "peek of %zu bytes exceeds the limit (%zu)", want, s->limit);
    } else {
        while (s->in.len < want && rc == 0) {
            size_t more = want - s->in.len;
            ssize_t r = co__stream_fill(s, more > CO__STREAM_INBUF / 2 ? more : CO__STREAM_INBUF / 2);
            if (r < 0) rc = (int)r;
            else if (r == 0) rc = -CO_EINCOMPLETE;
        }
    }
    if (p) *p = co__buf_data(&s->in);
    if (n) *n = s->in.len;
    s->reading = false;
    return rc;
}

void co_stream_consume(co_stream *s, size_t n) {
    if (co__stream_check(s, "co_stream_consume")) return;
    co__buf_consume(&s->in, n < s->in.len ? n : s->in.len);
}

bool co_stream_at_eof(const co_stream *s) {
    return !co__stream_check(s, "co_stream_at_eof") && s->eof && s->in.len == 0;
}
int co_stream_fd(const co_stream *s) { return co__stream_check(s, "co_stream_fd") ? -1 : s->fd; }
size_t co_stream_unsent(const co_stream *s) { return co__stream_check(s, "co_stream_unsent") ? 0 : s->out.len; }

/* ---- writing -------------------------------------------------------------------------- */

/* Hands queued bytes to the transport until it would block: 0 (all sent,
 * or blocked: *want says on what) or an error (also kept in s->err). */
static int co__stream_push(co_stream *s, int *want) {
    while (s->out.len) {
        *want = 0;
        co__tr_mark(s);
        ssize_t r = s->tr->write(s, co__buf_data(&s->out), s->out.len, want);
        if (r > 0) {
            co__buf_consume(&s->out, (size_t)r);
            continue;
        }
        if (r == -EAGAIN && *want) return 0;
        s->err = r < 0 ? (int)r : -EIO;
        return s->err;
    }
    *want = 0;
    return 0;
}

/* The fd's edge hook: flush in the background while no task does. */
static void co__stream_bg(void *arg, int ev) {
    co_stream *s = arg;
    if (!s->out.len || s->writing || s->err || !(ev & s->bg_want)) return;
    int want = 0;
    if (co__stream_push(s, &want) == 0 && want) s->bg_want = want;
}

int co_stream_write(co_stream *s, const void *buf, size_t n) {
    int rc = co__stream_check(s, "co_stream_write");
    if (rc) return rc;
    if (!buf && n) return -EINVAL;
    if (s->loop != co__tls_loop || !co__on_loop_thread(s->loop)) return co__wrongloop(s->loop, "co_stream_write");
    if (n > CO__BUF_MAX - s->out.len)
        return co__io_fail(-EINVAL, "write of %zu bytes to %s: no buffer is that large", n, co__stream_peer(s));
    if (s->err) return co__stream_err(s, "write to", s->err);
    if (s->wclosed) return co__io_fail(-CO_ECLOSED, "write to %s after write_eof or close", co__stream_peer(s));
    const char *p = buf;
    if (s->out.len == 0 && !s->writing) { /* nothing queued: straight to the transport */
        while (n) {
            int want = 0;
            co__tr_mark(s);
            ssize_t r = s->tr->write(s, p, n, &want);
            if (r > 0) {
                p += r;
                n -= (size_t)r;
                continue;
            }
            if (r == -EAGAIN && want) {
                s->bg_want = want;
                co__fd_clear(s->loop, s->fd, want);
                break;
            }
            s->err = r < 0 ? (int)r : -EIO;
            return co__stream_tr_err(s, "write to", s->err);
        }
    }
    if ((rc = co__buf_append(&s->out, p, n)))
        return co__io_fail(rc, "cannot queue %zu bytes for %s: %s", n, co__stream_peer(s), co_strerror(rc));
    return 0;
}

int co_stream_printf(co_stream *s, const char *fmt, ...) {
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return -EINVAL;
    if ((size_t)n < sizeof small) return co_stream_write(s, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) return -ENOMEM;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = co_stream_write(s, big, (size_t)n);
    free(big);
    return rc;
}

/* Sends until at most `target` bytes stay queued. */
static int co__stream_flush_to(co_stream *s, size_t target) {
    if (s->err) return co__stream_err(s, "write to", s->err);
    if (s->out.len <= target) return 0;
    if (s->writing) return co__io_fail(-EBUSY, "another task is draining %s", co__stream_peer(s));
    s->writing = true;
    int rc = 0;
    while (s->out.len > target) {
        int want = 0;
        if ((rc = co__stream_push(s, &want))) {
            rc = co__stream_tr_err(s, "write to", rc);
            break;
        }
        if (s->out.len <= target) break;
        if ((rc = co__stream_wait(s, want))) {
            rc = co__stream_err(s, "write to", rc);
            break;
        }
    }
    s->writing = false;
    return rc;
}

int co__stream_flush(co_stream *s) { return co__stream_flush_to(s, 0); }

int co_stream_drain(co_stream *s) {
    int rc = co__stream_enter(s, "co_stream_drain");
    if (rc) return rc;
    if (s->out.len <= s->high) return s->err ? co__stream_err(s, "write to", s->err) : 0;
    return co__stream_flush_to(s, s->low);
}

int co_stream_flush(co_stream *s) {
    int rc = co__stream_enter(s, "co_stream_flush");
    return rc ? rc : co__stream_flush_to(s, 0);
}

static int co__stream_shutdown(co_stream *s) {
    for (;;) {
        int want = 0;
        co__tr_mark(s);
        int rc = s->tr->shutdown(s, &want);
        if (rc != -EAGAIN || !want) return rc ? co__stream_tr_err(s, "shutdown of", rc) : 0;
        if ((rc = co__stream_wait(s, want))) return co__stream_err(s, "shutdown of", rc);
    }
}

int co_stream_write_eof(co_stream *s) {
    int rc = co__stream_enter(s, "co_stream_write_eof");
    if (rc) return rc;
    if (s->wclosed) return 0;
    if ((rc = co__stream_flush_to(s, 0))) return rc;
    s->wclosed = true;
    return co__stream_shutdown(s);
}

int co_stream_close(co_stream *s) {
    int rc = co__stream_check(s, "co_stream_close");
    if (rc) return rc;
    co_task *t = co_current();
    if (t && t->loop == s->loop && !s->err) {
        rc = co__stream_flush_to(s, 0);
        /* TLS says goodbye (close_notify); a plain socket needs nothing */
        if (rc == 0 && !s->wclosed && s->tr != &co__plain) {
            s->wclosed = true;
            rc = co__stream_shutdown(s);
        }
    }
    co__stream_free(s);
    return rc;
}

/* ---- opening by name ------------------------------------------------------------------ */

/* host: the TLS name (opts->tls_host overrides it). */
static int co__open_stream(int fd, const co_connect_opts *opts, const char *peer, const char *host,
                           co_stream **out) {
    co_stream_opts so = {.limit = opts ? opts->limit : 0, .peer = peer};
    int rc = co_stream_open(fd, &so, out);
    if (rc) {
        co_close(fd);
        return rc;
    }
    if (opts && opts->tls && (rc = co_stream_start_tls(*out, opts->tls, opts->tls_host ? opts->tls_host : host))) {
        co_stream_abort(*out);
        *out = NULL;
    }
    return rc;
}

int co_open_connection(const char *host, const char *port, const co_connect_opts *opts, co_stream **out) {
    if (!out) return -EINVAL;
    *out = NULL;
    /* with TLS, opts->timeout covers the handshake too */
    co_scope sc;
    bool scoped = opts && opts->tls && opts->timeout != 0 && !isinf(opts->timeout);
    int rc = scoped ? co_scope_enter(&sc, opts->timeout, CO_FAIL_AFTER) : 0;
    if (rc) return rc;
    int fd;
    rc = co_tcp_connect(host, port, opts, &fd);
    char peer[96];
    snprintf(peer, sizeof peer, "%s:%s", host, port);
    if (rc == 0) rc = co__open_stream(fd, opts, peer, host, out);
    if (scoped && co_scope_exit(&sc) == -ETIMEDOUT) {
        if (*out) co_stream_abort(*out); /* (done just as the deadline passed) */
        *out = NULL;
        rc = co__io_fail(-ETIMEDOUT, "TLS connection to %s timed out after %g s", peer, opts->timeout);
    }
    return rc;
}

int co_open_unix_connection(const char *path, const co_connect_opts *opts, co_stream **out) {
    if (!out) return -EINVAL;
    *out = NULL;
    int fd;
    int rc = co_unix_connect(path, opts && opts->attempt_timeout != 0 ? opts->attempt_timeout : CO_FOREVER, &fd);
    if (rc) return rc;
    return co__open_stream(fd, opts, path, NULL, out);
}
