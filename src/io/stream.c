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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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
 * EAGAIN: a read shorter than asked emptied the socket at that moment, so
 * its READ bit is cleared at once, and a read with the bit clear waits for
 * the next edge (data arriving later always brings one) without a system
 * call. */
static ssize_t co__plain_read(co_stream *s, void *buf, size_t n, int *want) {
    /* Not after the peer's end of stream: the read that returns 0 there
     * brings no edge of its own. */
    bool skip = s->is_sock && !co__fd_ended(s->loop, s->fd);
    if (skip && !(co__fd_ready(s->loop, s->fd) & CO_READ)) {
        *want = CO_READ;
        return -EAGAIN;
    }
    int rc = co__fault(CO_FAULT_READ);
    if (rc) return rc;
    for (;;) {
        ssize_t r = read(s->fd, buf, n);
        if (r > 0 && (size_t)r < n && skip) co__fd_clear(s->loop, s->fd, CO_READ);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno == EAGAIN) *want = CO_READ;
        return -errno;
    }
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

/* ---- buffers -------------------------------------------------------------------------- */

/* Room for at least `room` more bytes after the data; compacts first. */
static int co__buf_reserve(co__buf *b, size_t room) {
    if (b->cap - b->off - b->len >= room) return 0;
    if (b->off && b->cap - b->len >= room) {
        memmove(b->mem, b->mem + b->off, b->len);
        b->off = 0;
        return 0;
    }
    size_t cap = b->cap ? b->cap : CO__STREAM_INBUF;
    while (cap - b->len < room) cap *= 2;
    char *m = malloc(cap);
    if (!m) return -ENOMEM;
    if (b->len) memcpy(m, b->mem + b->off, b->len);
    free(b->mem);
    b->mem = m;
    b->cap = cap;
    b->off = 0;
    return 0;
}

static int co__buf_append(co__buf *b, const void *p, size_t n) {
    int rc = co__buf_reserve(b, n);
    if (rc) return rc;
    memcpy(b->mem + b->off + b->len, p, n);
    b->len += n;
    return 0;
}

static void co__buf_consume(co__buf *b, size_t n) {
    b->off += n;
    b->len -= n;
    if (b->len == 0) b->off = 0;
}

/* Puts bytes back in front (a cancelled readexactly returns what it took). */
static int co__buf_unread(co__buf *b, const void *p, size_t n) {
    if (n == 0) return 0;
    if (b->off >= n) {
        b->off -= n;
        memcpy(b->mem + b->off, p, n);
        b->len += n;
        return 0;
    }
    int rc = co__buf_reserve(b, n);
    if (rc) return rc;
    memmove(b->mem + b->off + n, b->mem + b->off, b->len);
    memcpy(b->mem + b->off, p, n);
    b->len += n;
    return 0;
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
    s->loop = L;
    s->fd = fd;
    s->is_sock = S_ISSOCK(st.st_mode);
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
    free(s->in.mem);
    free(s->out.mem);
    free(s);
}

void co_stream_abort(co_stream *s) {
    if (!s) return;
    co__stream_free(s);
}

/* Common entry checks: the caller runs in a task of s's loop. */
static int co__stream_enter(co_stream *s) {
    if (!s) return -EINVAL;
    co_task *t;
    int rc = co__can_suspend(&t);
    if (rc) return rc;
    if (t->loop != s->loop) return co__wrongloop(s->loop, "co_stream");
    return 0;
}

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
    int rc = co__buf_reserve(&s->in, room);
    if (rc) return rc;
    co__buf *b = &s->in;
    ssize_t r = co__stream_read1(s, b->mem + b->off + b->len, b->cap - b->off - b->len);
    if (r > 0) b->len += (size_t)r;
    return r;
}

static int co__stream_reader(co_stream *s) {
    int rc = co__stream_enter(s);
    if (rc) return rc;
    if (s->reading) return co__io_fail(-EBUSY, "another task is reading from %s", co__stream_peer(s));
    s->reading = true;
    return 0;
}

ssize_t co_stream_read(co_stream *s, void *buf, size_t max) {
    int rc = co__stream_reader(s);
    if (rc) return rc;
    ssize_t r;
    if (max == 0) {
        r = 0;
    } else if (s->in.len) {
        r = (ssize_t)(s->in.len < max ? s->in.len : max);
        memcpy(buf, s->in.mem + s->in.off, (size_t)r);
        co__buf_consume(&s->in, (size_t)r);
    } else if (s->eof) {
        r = 0;
    } else if (max >= CO__STREAM_INBUF / 2) {
        r = co__stream_read1(s, buf, max); /* straight into the caller's memory */
    } else {
        r = co__stream_fill(s, CO__STREAM_INBUF / 2);
        if (r > 0) {
            r = (ssize_t)(s->in.len < max ? s->in.len : max);
            memcpy(buf, s->in.mem + s->in.off, (size_t)r);
            co__buf_consume(&s->in, (size_t)r);
        }
    }
    s->reading = false;
    return r;
}

ssize_t co_stream_readexactly(co_stream *s, void *buf, size_t n, size_t *got) {
    if (got) *got = 0;
    int rc = co__stream_reader(s);
    if (rc) return rc;
    char *p = buf;
    size_t have = s->in.len < n ? s->in.len : n;
    if (have) {
        memcpy(p, s->in.mem + s->in.off, have);
        co__buf_consume(&s->in, have);
    }
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
    if (co__buf_unread(&s->in, p, have) < 0 && got) *got = have;
    return r;
}

/* Finds sep in the buffer from `from`; the index after it, or 0. */
static size_t co__find(const co__buf *b, size_t from, const void *sep, size_t seplen) {
    if (b->len < seplen || from > b->len - seplen) return 0;
    const char *base = b->mem + b->off;
    const char *hit = memmem(base + from, b->len - from, sep, seplen);
    return hit ? (size_t)(hit - base) + seplen : 0;
}

ssize_t co_stream_readuntil(co_stream *s, const void *sep, size_t seplen, void *buf, size_t cap) {
    if (!sep || seplen == 0 || (!buf && cap)) return -EINVAL;
    int rc = co__stream_reader(s);
    if (rc) return rc;
    size_t max = s->limit < cap ? s->limit : cap;
    size_t scanned = 0;
    ssize_t r;
    for (;;) {
        size_t end = co__find(&s->in, scanned, sep, seplen);
        if (end) {
            if (end > max) {
                r = co__io_fail(-CO_ELIMIT, "line from %s longer than %zu bytes", co__stream_peer(s), max);
            } else {
                memcpy(buf, s->in.mem + s->in.off, end);
                co__buf_consume(&s->in, end);
                r = (ssize_t)end;
            }
            break;
        }
        if (s->in.len >= max) {
            r = co__io_fail(-CO_ELIMIT, "no separator within %zu bytes from %s (the data stays readable)", max,
                            co__stream_peer(s));
            break;
        }
        if (s->eof) {
            r = co__io_fail(-CO_EINCOMPLETE, "%s ended without the separator (%zu bytes stay readable)",
                            co__stream_peer(s), s->in.len);
            break;
        }
        scanned = s->in.len >= seplen ? s->in.len - seplen + 1 : 0;
        r = co__stream_fill(s, CO__STREAM_INBUF / 2);
        if (r < 0) break;
    }
    s->reading = false;
    return r;
}

ssize_t co_stream_readline(co_stream *s, void *buf, size_t cap) { return co_stream_readuntil(s, "\n", 1, buf, cap); }

int co_stream_peek(co_stream *s, size_t want, const char **p, size_t *n) {
    int rc = co__stream_reader(s);
    if (rc) return rc;
    if (want > s->limit && want > s->in.len) {
        rc = co__io_fail(-CO_ELIMIT, "peek of %zu bytes exceeds the limit (%zu)", want, s->limit);
    } else {
        while (s->in.len < want && rc == 0) {
            ssize_t r = co__stream_fill(s, want - s->in.len > CO__STREAM_INBUF / 2 ? want - s->in.len : CO__STREAM_INBUF / 2);
            if (r < 0) rc = (int)r;
            else if (r == 0) rc = -CO_EINCOMPLETE;
        }
    }
    if (p) *p = s->in.mem ? s->in.mem + s->in.off : "";
    if (n) *n = s->in.len;
    s->reading = false;
    return rc;
}

void co_stream_consume(co_stream *s, size_t n) {
    if (!s) return;
    co__buf_consume(&s->in, n < s->in.len ? n : s->in.len);
}

bool co_stream_at_eof(const co_stream *s) { return s && s->eof && s->in.len == 0; }
int co_stream_fd(const co_stream *s) { return s ? s->fd : -1; }
size_t co_stream_unsent(const co_stream *s) { return s ? s->out.len : 0; }

/* ---- writing -------------------------------------------------------------------------- */

/* Hands queued bytes to the transport until it would block: 0 (all sent,
 * or blocked: *want says on what) or an error (also kept in s->err). */
static int co__stream_push(co_stream *s, int *want) {
    while (s->out.len) {
        *want = 0;
        co__tr_mark(s);
        ssize_t r = s->tr->write(s, s->out.mem + s->out.off, s->out.len, want);
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
    if (!s || (!buf && n)) return -EINVAL;
    if (s->loop != co__tls_loop || !co__on_loop_thread(s->loop)) return co__wrongloop(s->loop, "co_stream_write");
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
    if (n && co__buf_append(&s->out, p, n) < 0) return -ENOMEM;
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
    int rc = co__stream_enter(s);
    if (rc) return rc;
    if (s->out.len <= s->high) return s->err ? co__stream_err(s, "write to", s->err) : 0;
    return co__stream_flush_to(s, s->low);
}

int co_stream_flush(co_stream *s) {
    int rc = co__stream_enter(s);
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
    int rc = co__stream_enter(s);
    if (rc) return rc;
    if (s->wclosed) return 0;
    if ((rc = co__stream_flush_to(s, 0))) return rc;
    s->wclosed = true;
    return co__stream_shutdown(s);
}

int co_stream_close(co_stream *s) {
    if (!s) return -EINVAL;
    int rc = 0;
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
