/* corio/io.h — waiting on file descriptors, sockets and buffered streams.
 *
 * asyncio names, C shapes:
 *   loop.add_reader / add_writer (one wait) -> co_wait_fd
 *   loop.sock_recv / sock_sendall / ...      -> co_recv / co_send_all / ...
 *   loop.sock_connect / sock_accept          -> co_connect / co_accept
 *   asyncio.open_connection                  -> co_open_connection
 *   asyncio.open_unix_connection             -> co_open_unix_connection
 *   asyncio.start_server (+ Server.close*)   -> co_server_start / co_server_close
 *   StreamReader / StreamWriter              -> co_stream (one object for both)
 *
 * Threads: everything here runs on a loop's thread, inside tasks (the
 * calls that can suspend: -CO_ENOTASK elsewhere). A co_stream or co_server
 * belongs to the loop it was created on (-CO_EWRONGLOOP from any other).
 *
 * Waiting: every call that can wait honours the calling task's
 * cancellation (-ECANCELED) and its open scopes' deadlines (-ETIMEDOUT).
 * Calls with an explicit `timeout` (seconds; the rule in core.h: <= 0 has expired, CO_FOREVER: none) add
 * that limit on top.
 *
 * Errors are the kernel's, negated (-ECONNREFUSED, -ECONNRESET, -EPIPE,
 * -ETIMEDOUT, ...) or -CO_E*. After a failed call, co_io_error() gives a
 * sentence naming the peer and the operation, e.g. "connect to
 * 127.0.0.1:7 failed: Connection refused". SIGPIPE is never raised:
 * sockets send with MSG_NOSIGNAL and pipes are written with SIGPIPE
 * blocked for the call.
 *
 * File descriptors: sockets made here are non-blocking and close-on-exec.
 * The loop registers an fd with the poll backend once (edge-triggered) and
 * keeps it until co_close / co_fd_forget: close fds you waited on with
 * co_close (or call co_fd_forget before close(2)).
 */
#ifndef CORIO_IO_H
#define CORIO_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- waiting for a file descriptor ------------------------------------------ */

enum { CO_READ = 1, CO_WRITE = 2 };

/* Suspends the task until fd is ready for one of `events` (CO_READ,
 * CO_WRITE or both), timeout seconds pass, or the task is cancelled. The
 * integration point for any non-blocking library (libpq, libmariadb,
 * hiredis, c-ares, libcurl): do the I/O, and on EAGAIN wait here.
 *   >0             the ready events (CO_READ | CO_WRITE); an error or
 *                  hang-up on the fd counts as both, so that the next
 *                  read or write reports it
 *   -ETIMEDOUT     timeout passed (or an enclosing scope's deadline)
 *   -ECANCELED     the task was cancelled
 *   -EINVAL        fd < 0, or events has no CO_READ / CO_WRITE bit
 *   -EBADF         fd is not open
 *   -EPERM         fd cannot be polled (a regular file: it is always ready)
 *   -CO_ENOTASK    not called from a task
 * Several tasks may wait on one fd; each gets its own wake-up. */
CO_API int co_wait_fd(int fd, int events, double timeout);

/* The loop forgets fd: tasks waiting on it wake with -EBADF, the poll
 * backend drops it. Call before closing an fd you waited on yourself (or
 * use co_close). 0; -EINVAL for fd < 0. Loop thread only. */
CO_API int co_fd_forget(int fd);

/* co_fd_forget(fd) then close(fd). 0 or -errno from close. */
CO_API int co_close(int fd);

/* A sentence about the last I/O error on this thread (a failed call from
 * this header, the DNS or the TLS layer): what, which peer, why. "" if
 * none. Read it right after the call: the next failing call overwrites it. */
CO_API const char *co_io_error(void);

/* ---- sockets (asyncio loop.sock_*) --------------------------------------------
 * Plain fds, non-blocking; the calls below wait with co_wait_fd. */

/* socket(2), non-blocking and close-on-exec. 0 with *fd, or -errno. */
CO_API int co_socket(int domain, int type, int protocol, int *fd);

/* Connects fd to addr, waiting at most timeout seconds. 0, -ECONNREFUSED,
 * -ETIMEDOUT, -ENETUNREACH, -ECANCELED, ... (co_io_error names the peer). */
CO_API int co_connect(int fd, const struct sockaddr *addr, socklen_t len, double timeout);

/* Accepts one connection on the listening socket lfd: 0 with *fd
 * (non-blocking, close-on-exec); peer / peerlen may be NULL. */
CO_API int co_accept(int lfd, int *fd, struct sockaddr_storage *peer, socklen_t *peerlen);

/* One read of up to n bytes, waiting until some arrive: the count (> 0),
 * 0 at end of stream, or -errno. co_read is the same for any fd (pipes). */
CO_API ssize_t co_recv(int fd, void *buf, size_t n, int flags);
CO_API ssize_t co_read(int fd, void *buf, size_t n);

/* One write of up to n bytes, waiting until there is room: the count
 * (> 0, maybe < n), or -errno (-EPIPE, -ECONNRESET, ...). */
CO_API ssize_t co_send(int fd, const void *buf, size_t n, int flags);
CO_API ssize_t co_write(int fd, const void *buf, size_t n);

/* Writes all n bytes (loop.sock_sendall). 0, or -errno; *sent (if not
 * NULL) says how many were written before an error. */
CO_API int co_send_all(int fd, const void *buf, size_t n, size_t *sent);
CO_API int co_write_all(int fd, const void *buf, size_t n, size_t *sent);

/* UDP and other datagram sockets. from / fromlen may be NULL. */
CO_API ssize_t co_recvfrom(int fd, void *buf, size_t n, int flags,
                           struct sockaddr_storage *from, socklen_t *fromlen);
CO_API ssize_t co_sendto(int fd, const void *buf, size_t n, int flags,
                         const struct sockaddr *to, socklen_t tolen);

/* ---- DNS (getaddrinfo on the thread pool, as asyncio and libuv do) -------------------
 * co_getaddrinfo: getaddrinfo(3) run on the default pool; the task
 * suspends meanwhile. 0 with *res (free it with co_freeaddrinfo); an
 * EAI_* failure maps to -ENOENT (no such name), -EAGAIN (try again),
 * -ENOMEM, -EINVAL, -EAFNOSUPPORT or -EIO, with the resolver's words in
 * co_io_error(); -ECANCELED: the task was cancelled while the lookup ran
 * (the waiter is released at once; the late answer is freed, never
 * leaked). Numeric hosts are answered at once, without the pool. */
struct addrinfo;
CO_API int co_getaddrinfo(const char *host, const char *port, const struct addrinfo *hints,
                          struct addrinfo **res);
CO_API void co_freeaddrinfo(struct addrinfo *res);

/* ---- connecting and listening by name ------------------------------------------- */

typedef struct co_tls_ctx co_tls_ctx; /* corio/tls.h */

typedef struct co_connect_opts {
    int family;             /* AF_UNSPEC (default: every address), AF_INET, AF_INET6 */
    double attempt_timeout; /* per address tried; 0: default 10 s; CO_FOREVER: none */
    double timeout;         /* the whole connect, DNS included; 0 (default) or CO_FOREVER: none */
    const char *local_host; /* bind before connecting (NULL: no) */
    co_tls_ctx *tls;        /* streams: wrap in TLS with this context (NULL: plain) */
    const char *tls_host;   /* TLS: the name to verify and send as SNI (NULL: host) */
    size_t limit;           /* streams: read limit (0: 64 KiB) */
} co_connect_opts;

/* Resolves host:port (a name or a numeric address; port a number or a
 * service name) and connects to the addresses in the resolver's order,
 * one after another, each attempt limited to attempt_timeout: the first
 * to connect wins ("happy eyeballs lite": sequential, never parallel).
 * 0 with *fd (non-blocking, TCP_NODELAY set), or the last attempt's
 * error; co_io_error lists every address tried and why it failed. */
CO_API int co_tcp_connect(const char *host, const char *port, const co_connect_opts *opts, int *fd);

typedef struct co_listen_opts {
    int backlog;            /* 0: SOMAXCONN */
    bool reuse_port;        /* SO_REUSEPORT (one listener per loop) */
    bool v6_only;           /* IPv6 listeners: IPV6_V6ONLY */
    int family;             /* AF_UNSPEC: what the name resolves to first */
} co_listen_opts;

/* A listening TCP socket on host:port (host NULL: every address, IPv6 and
 * IPv4 when the system allows it; port "0": any, see co_sock_port).
 * SO_REUSEADDR is set. 0 with *fd, or -errno. */
CO_API int co_tcp_listen(const char *host, const char *port, const co_listen_opts *opts, int *fd);

/* Unix stream sockets. listen unlinks a stale socket file at path first. */
CO_API int co_unix_connect(const char *path, double timeout, int *fd);
CO_API int co_unix_listen(const char *path, const co_listen_opts *opts, int *fd);

/* A UDP socket bound to host:port (host NULL: any; port NULL or "0": any).
 * 0 with *fd, or -errno. Connect it with co_connect to use co_send/co_recv. */
CO_API int co_udp_bind(const char *host, const char *port, int family, int *fd);

/* The local port of a bound socket (0 on error). */
CO_API int co_sock_port(int fd);
/* "host:port" ("[v6]:port", or the path of a Unix socket) of a socket
 * address, into buf (always terminated). Returns buf. */
CO_API char *co_sockaddr_str(const struct sockaddr *sa, socklen_t len, char *buf, size_t n);

/* ---- buffered streams (asyncio StreamReader + StreamWriter) ----------------------
 * A co_stream owns its fd (a socket, a pipe, a tty) and buffers in both
 * directions. Reads come from the buffer, refilled by one read(2) at a
 * time; writes append to the output buffer after trying to send at once,
 * and what the kernel would not take yet goes out in the background as
 * the fd becomes writable (no task needed). drain is the flow control.
 *
 * Ownership: the creator owns the stream; co_stream_close (or _abort)
 * frees it, whatever it returns. One task reads and one task writes at a
 * time (two readers at once: -EBUSY).
 *
 * Use after close is a bug, reported on stderr and failed with -EBADF
 * (co_stream_fd: -1, co_stream_unsent: 0) while the memory is still the
 * stream's: always on a debug loop (CORIO_DEBUG=1) and in builds with
 * assertions (the ASan test pass), which keep the last 64 closed streams'
 * structs for that; by chance otherwise. */
typedef struct co_stream co_stream;

typedef struct co_stream_opts {
    size_t limit;           /* readuntil / readline limit (0: 64 KiB) */
    size_t high_water;      /* drain suspends above this many unsent bytes (0: 64 KiB) */
    size_t low_water;       /* ... until at most this many remain (0: high_water / 4) */
    const char *peer;       /* a name for error messages (NULL: from the fd) */
} co_stream_opts;

/* Wraps fd (any fd poll can watch; made non-blocking here) in a stream
 * that now owns it. 0 with *out; -EINVAL, -ENOMEM, -EPERM (not pollable).
 * On failure fd is left open and still the caller's. */
CO_API int co_stream_open(int fd, const co_stream_opts *opts, co_stream **out);

/* asyncio.open_connection: co_tcp_connect, then a stream (with TLS if
 * opts->tls). On TLS failure, the error is the TLS layer's (see tls.h). */
CO_API int co_open_connection(const char *host, const char *port, const co_connect_opts *opts,
                              co_stream **out);
CO_API int co_open_unix_connection(const char *path, const co_connect_opts *opts, co_stream **out);

/* Reads up to max bytes: what is buffered, or else waits for one read.
 * The count (> 0), 0 at end of stream, or -errno. */
CO_API ssize_t co_stream_read(co_stream *s, void *buf, size_t max);

/* Reads exactly n bytes. n (all read); -CO_EINCOMPLETE at end of stream
 * before n bytes, with the *got bytes that did arrive in buf (got may be
 * NULL); -EINVAL for n > PTRDIFF_MAX; -errno. A cancelled or timed-out call leaves what it had read
 * in the stream's buffer (nothing is lost). */
CO_API ssize_t co_stream_readexactly(co_stream *s, void *buf, size_t n, size_t *got);

/* Reads through the first occurrence of sep (sep included) into buf
 * (capacity cap). The count; -CO_ELIMIT when no sep within the stream's
 * limit or cap bytes (the data stays buffered, readable by co_stream_read,
 * so nothing is dropped); -CO_EINCOMPLETE at end of stream without sep
 * (the partial data stays buffered too); -errno. */
CO_API ssize_t co_stream_readuntil(co_stream *s, const void *sep, size_t seplen, void *buf, size_t cap);
/* co_stream_readuntil with "\n", except at end of stream, where it is
 * asyncio's readline: the last line even without its newline, then 0
 * (an empty line) from every later call. (readuntil keeps the strict
 * form: -CO_EINCOMPLETE.) */
CO_API ssize_t co_stream_readline(co_stream *s, void *buf, size_t cap);

/* Zero-copy reading for parsers: waits until at least `want` bytes are
 * buffered (or end of stream), then *p / *n show everything buffered,
 * valid until the next call on s. 0 (n >= want), -CO_EINCOMPLETE (end of
 * stream first; *p / *n still show what is there), -CO_ELIMIT (want >
 * the limit), -EINVAL (want > PTRDIFF_MAX), -ENOMEM, -errno. co_stream_consume drops n bytes from the front. */
CO_API int co_stream_peek(co_stream *s, size_t want, const char **p, size_t *n);
CO_API void co_stream_consume(co_stream *s, size_t n);

/* Queues n bytes for sending (tries to send at once; never suspends).
 * 0; -EPIPE / -ECONNRESET / ... an earlier background send failed;
 * -CO_ECLOSED after write_eof or close; -EINVAL when n plus what is
 * queued exceeds PTRDIFF_MAX (no buffer can be that large; nothing is
 * sent); -ENOMEM (what the kernel did not take at once is not queued). */
CO_API int co_stream_write(co_stream *s, const void *buf, size_t n);
/* printf into the stream. 0 or as co_stream_write. */
CO_API int co_stream_printf(co_stream *s, const char *fmt, ...) CO_PRINTF(2, 3);
/* Waits while more than high_water bytes are unsent (until at most
 * low_water are). 0, or the send error, -ECANCELED, -ETIMEDOUT. */
CO_API int co_stream_drain(co_stream *s);
/* Waits until every queued byte was handed to the kernel. */
CO_API int co_stream_flush(co_stream *s);
/* Half-close: flushes, then shuts down the sending side (TLS: sends
 * close_notify). Reading goes on. 0 or -errno. */
CO_API int co_stream_write_eof(co_stream *s);
/* Bytes queued and not yet sent. */
CO_API size_t co_stream_unsent(const co_stream *s);
/* The fd (for setsockopt, getpeername; do not read or close it). */
CO_API int co_stream_fd(const co_stream *s);
/* Has the peer finished sending (and the buffer been read to the end)? */
CO_API bool co_stream_at_eof(const co_stream *s);

/* writer.close() + wait_closed(): flushes what is queued (honouring the
 * task's cancellation and deadlines), closes the fd and frees s. 0, or the
 * flush error (the stream is freed anyway). Outside a task it does not
 * flush: it aborts. */
CO_API int co_stream_close(co_stream *s);
/* transport.abort(): closes now, dropping unsent data (a TCP reset for a
 * socket with unread input). Frees s. */
CO_API void co_stream_abort(co_stream *s);

/* ---- servers (asyncio.start_server) --------------------------------------------
 * A server task accepts connections on a listening socket and spawns one
 * task per connection running handler(stream, arg); the stream is the
 * server's and is closed when the handler returns (the handler must not
 * close it). */
typedef struct co_server co_server;
typedef void (*co_conn_handler)(co_stream *s, void *arg);

typedef struct co_server_opts {
    co_stream_opts stream;  /* for the connection streams */
    co_tls_ctx *tls;        /* TLS server context (NULL: plain) */
    size_t max_conns;       /* 0: no limit; above it, accepting pauses */
} co_server_opts;

/* Starts serving on the listening fd (which the server now owns) on the
 * current loop. 0 with *out; -EINVAL, -ENOMEM, -CO_ENOLOOP. */
CO_API int co_server_start(int lfd, co_conn_handler handler, void *arg, const co_server_opts *opts,
                           co_server **out);
/* co_tcp_listen + co_server_start. */
CO_API int co_server_start_tcp(const char *host, const char *port, co_conn_handler handler, void *arg,
                               const co_server_opts *opts, co_server **out);

enum { CO_SERVER_WAIT = 0, CO_SERVER_CLOSE_CLIENTS = 1, CO_SERVER_ABORT_CLIENTS = 2 };
/* Stops accepting (the listening socket is closed at once). Then, by mode:
 * CO_SERVER_WAIT waits for the connection tasks to finish; CLOSE_CLIENTS
 * cancels them (asyncio 3.13 close_clients: their streams are flushed and
 * closed as their handlers unwind); ABORT_CLIENTS cancels them and aborts
 * their streams. Frees the server. From a task (waits); 0, -ECANCELED
 * (the caller was cancelled: the clients are cancelled too and the server
 * freed once they are done). */
CO_API int co_server_close(co_server *srv, int mode);
/* Connections being served now. */
CO_API size_t co_server_nconns(const co_server *srv);
/* The listening port (0 for a Unix socket). */
CO_API int co_server_port(const co_server *srv);

/* ---- fault injection (tests) ------------------------------------------------------
 * Makes the nth next call (1 = the very next) of an operation in this
 * thread fail with -err instead of reaching the kernel, once. The corio
 * functions above count their calls (not the retries after EAGAIN).
 * Arming again replaces the pending fault; n = 0 disarms. */
enum { CO_FAULT_READ = 0, CO_FAULT_WRITE, CO_FAULT_ACCEPT, CO_FAULT_CONNECT, CO_FAULT_NOPS };
CO_API void co_fault_inject(int op, unsigned n, int err);

#ifdef __cplusplus
}
#endif

#endif
