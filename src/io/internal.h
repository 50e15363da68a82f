/* io/internal.h — the I/O layer's contracts between its files (fd.c,
 * sock.c, stream.c, server.c, and the TLS, signal and process files built
 * on them). Never installed.
 *
 * Everything here runs on the owning loop's thread.
 */
#ifndef CO_IO_INTERNAL_H
#define CO_IO_INTERNAL_H

#include <sys/types.h>

#include "../base/assert.h"
#include "../base/buf.h"
#include "../core/internal.h"
#include "corio/io.h"

/* ---- fd readiness (src/core/iowait.c) --------------------------------------------
 * Edge-triggered registration, once per fd: co__fd_wait suspends until an
 * edge sets one of the wanted bits in the fd's ready mask (returned, > 0)
 * or fails (-ECANCELED, -ETIMEDOUT at deadline, -EBADF: forgotten).
 * Callers follow the edge-triggered rule: read / write until EAGAIN, then
 * co__fd_clear the bit and wait. */
int co__fd_wait(co_loop *L, int fd, int events, int64_t deadline);
void co__fd_clear(co_loop *L, int fd, int events);
/* For fds the caller owns (co_wait_fd, co_read, ...): clears the bits,
 * re-arms the registration (one epoll_ctl: the kernel reports the fd at
 * once if ready, and a closed-and-reused fd number is registered anew),
 * then waits. */
int co__fd_wait_rearm(co_loop *L, int fd, int events, int64_t deadline);

/* ---- error messages ------------------------------------------------------------------- */
/* Sets co_io_error()'s sentence (printf-style) and returns err. */
int co__io_fail(int err, const char *fmt, ...) CO_PRINTF(2, 3);
/* Changes whenever co__io_fail writes a sentence (this thread): a caller
 * that notes it before calling into a layer below can tell whether that
 * layer explained its own failure. */
unsigned co__io_error_gen(void);

/* Ignores SIGPIPE process-wide if the program left it at its default
 * (once): writes to a closed pipe then fail with -EPIPE. */
void co__sigpipe_ignore(void);

/* The signals the loop thread blocks for its signalfds (signal.c): a
 * spawned child must start with them unblocked. */
#include <signal.h>
void co__signal_child_mask(sigset_t *mask);

/* ---- fault injection ------------------------------------------------------------------ */
/* Counts one call of op: -err if this is the armed one, else 0. */
int co__fault(int op);

/* ---- stream transports -----------------------------------------------------------------
 * A stream moves bytes through its transport: the plain one calls
 * read/write on the fd; TLS (tls.c) wraps an SSL object. Calls never
 * block. Each returns a count (> 0), 0 (read: end of stream), or a
 * negative error; -EAGAIN with *want set to CO_READ or CO_WRITE says what
 * the fd must become before the call can make progress (TLS may need to
 * read in order to write, and the reverse). */
typedef struct co__transport {
    ssize_t (*read)(co_stream *s, void *buf, size_t n, int *want);
    ssize_t (*write)(co_stream *s, const void *buf, size_t n, int *want);
    /* Ends the sending side (shutdown(SHUT_WR), TLS close_notify): 0,
     * -EAGAIN with *want, or an error. */
    int (*shutdown)(co_stream *s, int *want);
    /* Frees the transport's state (not the fd, not s). */
    void (*free)(co_stream *s);
    const char *name; /* "tcp", "pipe", "tls" */
} co__transport;

/* A stream's magic while it is open; co_stream_close writes
 * CO__STREAM_DEAD before it frees (or, in debug and assertion builds,
 * quarantines) the struct, and every entry point checks it: a use after
 * close is -EBADF with a report instead of a crash where the memory is
 * still ours (see co__stream_check in stream.c). */
#define CO__STREAM_LIVE 0x5354524Du /* "STRM" */
#define CO__STREAM_DEAD 0xDEADC105u

struct co_stream {
    unsigned magic;          /* CO__STREAM_LIVE while open */
    co_loop *loop;
    int fd;
    const co__transport *tr;
    void *tr_state;          /* the transport's (TLS: its SSL) */
    co__buf in, out;         /* out: queued, not yet taken by the transport */
    size_t limit, high, low;
    int err;                 /* first background send error, reported by the next write / drain */
    bool eof;                /* the transport read end of stream */
    bool wclosed;            /* write_eof or close: no more writes */
    bool reading, writing;   /* a task is in a read / a drain (one each at a time) */
    bool is_sock;            /* send with MSG_NOSIGNAL; shutdown(SHUT_WR) for write_eof */
    bool short_drains;       /* a plain-transport read shorter than asked proves the socket
                                empty (co__plain_read): set for AF_UNIX SOCK_STREAM only */
    int bg_want;             /* the edge the background flush waits for (CO_WRITE; TLS may want CO_READ) */
    unsigned tr_gen;         /* co__io_error_gen() before the last transport call: a
                                transport that explained its failure (TLS) keeps its sentence */
    char peer[96];           /* for messages */
};

/* Stream internals for other transports (tls.c starts TLS on an open
 * stream by swapping tr / tr_state after its handshake). */
/* Waits until s's fd is ready for `want` (CO_READ / CO_WRITE), within the
 * task's deadlines: 0 or -ECANCELED / -ETIMEDOUT / -CO_ENOTASK. */
int co__stream_wait(co_stream *s, int want);
/* Sends everything queued in s->out, waiting as needed. 0 or error. */
int co__stream_flush(co_stream *s);
/* 0 if s is open; -EINVAL for NULL; -EBADF, reported on stderr, after
 * co_stream_close (what names the call). */
int co__stream_check(const co_stream *s, const char *what);
/* Moves the bytes s has read ahead but nobody consumed into *dst (which
 * must hold no memory): TLS hands them to its BIO first. s->in is left
 * empty. */
void co__stream_take_input(co_stream *s, co__buf *dst);

#endif
