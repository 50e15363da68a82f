/* test_io.c — fd waits, sockets and streams over real sockets on
 * 127.0.0.1 / ::1 / Unix paths, on the real clock (the virtual clock
 * cannot jump while a task waits for I/O). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netdb.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static co_loop *io_loop(void) { return tu_loop_opts(false, false, 0); }

static void io_run(co_fn fn, void *arg) {
    co_loop *L = io_loop();
    int rc = tu_run(L, fn, arg, NULL);
    cr_assert_eq(rc, 0, "task ended with %s (%s)", co_err_name(rc), co_io_error());
    tu_close(L);
}

/* ---- an echo server (line by line, or raw chunks) ----------------------------------- */

static void echo_handler(co_stream *s, void *arg) {
    (void)arg;
    char buf[65536];
    for (;;) {
        ssize_t n = co_stream_read(s, buf, sizeof buf);
        if (n <= 0) return;
        if (co_stream_write(s, buf, (size_t)n) < 0) return;
        if (co_stream_drain(s) < 0) return;
    }
}

static co_server *start_echo(char port[16]) {
    co_server *srv;
    int rc = co_server_start_tcp("127.0.0.1", "0", echo_handler, NULL, NULL, &srv);
    cr_assert_eq(rc, 0, "server: %s (%s)", co_err_name(rc), co_io_error());
    snprintf(port, 16, "%d", co_server_port(srv));
    cr_assert_gt(co_server_port(srv), 0);
    return srv;
}

/* ---- co_wait_fd ------------------------------------------------------------------------ */

static void *wait_fd_task(void *arg) {
    int p[2];
    cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    double t0 = co_time();
    cr_assert_eq(co_wait_fd(p[0], CO_READ, 0.05), -ETIMEDOUT);
    cr_assert_geq(co_time() - t0, 0.05);
    cr_assert_eq(co_wait_fd(p[1], CO_WRITE, 1), CO_WRITE);
    cr_assert_eq(write(p[1], "x", 1), 1);
    cr_assert_eq(co_wait_fd(p[0], CO_READ, 1), CO_READ);
    /* still readable (nothing read): a second wait must see it again */
    cr_assert_eq(co_wait_fd(p[0], CO_READ | CO_WRITE, 1), CO_READ);
    char c;
    cr_assert_eq(read(p[0], &c, 1), 1);
    cr_assert_eq(co_wait_fd(p[0], CO_READ, 0.02), -ETIMEDOUT);
    /* the writer closes: a hang-up wakes the reader */
    cr_assert_eq(co_close(p[1]), 0);
    cr_assert_gt(co_wait_fd(p[0], CO_READ, 1), 0);
    cr_assert_eq(read(p[0], &c, 1), 0);
    cr_assert_eq(co_close(p[0]), 0);
    cr_assert_eq(co_wait_fd(-1, CO_READ, 1), -EINVAL);
    cr_assert_eq(co_wait_fd(0, 0, 1), -EINVAL);
    cr_assert_eq(co_wait_fd(p[0], CO_READ, 1), -EBADF); /* closed */
    return NULL;
}
Test(io, wait_fd_ready_timeout_hangup) { io_run(wait_fd_task, NULL); }

static int cancel_pipe[2];
static void *wait_forever(void *arg) {
    int rc = co_wait_fd(cancel_pipe[0], CO_READ, CO_FOREVER);
    return (void *)(intptr_t)rc;
}
static void *wait_fd_cancel_task(void *arg) {
    cr_assert_eq(pipe2(cancel_pipe, O_NONBLOCK | O_CLOEXEC), 0);
    co_task *t = co_spawn(wait_forever, NULL);
    co_sleep(0.01);
    co_cancel(t, NULL);
    void *v = NULL;
    cr_assert_eq(co_join(t, &v), -ECANCELED);
    co_task_release(t);
    /* forget wakes a waiter with -EBADF */
    t = co_spawn(wait_forever, NULL);
    co_sleep(0.01);
    cr_assert_eq(co_fd_forget(cancel_pipe[0]), 0);
    cr_assert_eq(co_join(t, &v), 0);
    cr_assert_eq((intptr_t)v, -EBADF);
    co_task_release(t);
    close(cancel_pipe[0]);
    close(cancel_pipe[1]);
    return NULL;
}
Test(io, wait_fd_cancel_and_forget) { io_run(wait_fd_cancel_task, NULL); }

static void *wait_fd_file_task(void *arg) {
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    cr_assert_eq(co_wait_fd(fd, CO_READ, 1), -EPERM);
    close(fd);
    return NULL;
}
Test(io, wait_fd_regular_file_is_eperm) { io_run(wait_fd_file_task, NULL); }

Test(io, calls_outside_a_task) {
    co_loop *L = io_loop();
    cr_assert_eq(co_wait_fd(0, CO_READ, 1), -CO_ENOTASK);
    char b[4];
    cr_assert_eq(co_read(0, b, 4), -CO_ENOTASK);
    int fd;
    cr_assert_eq(co_tcp_connect("127.0.0.1", "1", NULL, &fd), -CO_ENOTASK);
    tu_close(L);
}

/* ---- TCP streams --------------------------------------------------------------------- */

static void *echo_lines_task(void *arg) {
    char port[16];
    co_server *srv = start_echo(port);
    co_stream *c;
    int rc = co_open_connection("127.0.0.1", port, NULL, &c);
    cr_assert_eq(rc, 0, "connect: %s", co_io_error());
    cr_assert_eq(co_stream_write(c, "hello\nworld\npartial", 19), 0);
    char line[64];
    cr_assert_eq(co_stream_readline(c, line, sizeof line), 6);
    cr_assert_arr_eq(line, "hello\n", 6);
    cr_assert_eq(co_stream_readuntil(c, "ld\n", 3, line, sizeof line), 6);
    cr_assert_arr_eq(line, "world\n", 6);
    cr_assert_eq(co_stream_readexactly(c, line, 7, NULL), 7);
    cr_assert_arr_eq(line, "partial", 7);
    cr_assert_eq(co_server_nconns(srv), 1);
    cr_assert_eq(co_stream_close(c), 0);
    cr_assert_eq(co_server_close(srv, CO_SERVER_WAIT), 0);
    return NULL;
}
Test(io, tcp_echo_lines) { io_run(echo_lines_task, NULL); }

/* A peer that sends `total` bytes in small pieces with pauses; the reader
 * must get them all in order (partial reads). */
static void *bigsend(void *arg) {
    int fd = (int)(intptr_t)arg;
    static char chunk[7777];
    size_t total = 0;
    for (int i = 0; i < 300; i++) {
        for (size_t k = 0; k < sizeof chunk; k++) chunk[k] = (char)((total + k) % 251);
        cr_assert_eq(co_send_all(fd, chunk, sizeof chunk, NULL), 0);
        total += sizeof chunk;
        if (i % 50 == 0) co_sleep(0.001);
    }
    shutdown(fd, SHUT_WR);
    return NULL;
}
static void *partial_reads_task(void *arg) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    co_stream *r;
    cr_assert_eq(co_stream_open(sv[1], NULL, &r), 0);
    co_task *w = co_spawn(bigsend, (void *)(intptr_t)sv[0]);
    size_t got = 0;
    char buf[1000];
    for (;;) {
        ssize_t n = (got / 1000) % 2 ? co_stream_read(r, buf, 333) : co_stream_readexactly(r, buf, 1000, NULL);
        if (n == -CO_EINCOMPLETE || n == 0) break;
        cr_assert_gt(n, 0, "read: %s", co_err_name((int)n));
        for (ssize_t k = 0; k < n; k++) cr_assert_eq(buf[k], (char)((got + (size_t)k) % 251), "byte %zu", got + (size_t)k);
        got += (size_t)n;
    }
    cr_assert_eq(co_join(w, NULL), 0);
    co_task_release(w);
    /* readexactly at the end took what remained and said incomplete */
    cr_assert_geq(got, 300 * 7777 - 1000);
    cr_assert(co_stream_at_eof(r));
    co_stream_close(r);
    co_close(sv[0]);
    return NULL;
}
Test(io, partial_reads_in_order) { io_run(partial_reads_task, NULL); }

static void *incomplete_task(void *arg) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    co_stream *r;
    cr_assert_eq(co_stream_open(sv[1], NULL, &r), 0);
    cr_assert_eq(write(sv[0], "abc", 3), 3);
    close(sv[0]);
    char buf[16];
    size_t got = 99;
    cr_assert_eq(co_stream_readexactly(r, buf, 10, &got), -CO_EINCOMPLETE);
    cr_assert_eq(got, 3);
    cr_assert_arr_eq(buf, "abc", 3);
    cr_assert(strstr(co_io_error(), "3 of 10"), "%s", co_io_error());
    cr_assert_eq(co_stream_read(r, buf, sizeof buf), 0);
    co_stream_close(r);
    return NULL;
}
Test(io, readexactly_incomplete_gives_partial) { io_run(incomplete_task, NULL); }

static void *limit_task(void *arg) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    co_stream_opts o = {.limit = 100};
    co_stream *r;
    cr_assert_eq(co_stream_open(sv[1], &o, &r), 0);
    char data[300];
    memset(data, 'x', sizeof data);
    data[250] = '\n';
    cr_assert_eq(write(sv[0], data, sizeof data), (ssize_t)sizeof data);
    char line[400];
    cr_assert_eq(co_stream_readline(r, line, sizeof line), -CO_ELIMIT);
    /* nothing was dropped: all 300 bytes are still readable */
    size_t total = 0;
    while (total < sizeof data) {
        ssize_t n = co_stream_read(r, line + total, sizeof line - total);
        cr_assert_gt(n, 0);
        total += (size_t)n;
    }
    cr_assert_arr_eq(line, data, sizeof data);
    /* a line longer than the caller's buffer: also a limit, data kept */
    cr_assert_eq(write(sv[0], "0123456789\n", 11), 11);
    cr_assert_eq(co_stream_readline(r, line, 5), -CO_ELIMIT);
    cr_assert_eq(co_stream_readline(r, line, sizeof line), 11);
    /* end of stream without the separator */
    cr_assert_eq(write(sv[0], "tail", 4), 4);
    close(sv[0]);
    cr_assert_eq(co_stream_readuntil(r, "\n", 1, line, sizeof line), -CO_EINCOMPLETE);
    cr_assert_eq(co_stream_read(r, line, sizeof line), 4);
    co_stream_close(r);
    return NULL;
}
Test(io, readuntil_limit_keeps_data) { io_run(limit_task, NULL); }

static void *refused_task(void *arg) {
    /* a port nobody listens on: bind one, close it */
    int fd;
    cr_assert_eq(co_tcp_listen("127.0.0.1", "0", NULL, &fd), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", co_sock_port(fd));
    close(fd);
    co_stream *c = NULL;
    int rc = co_open_connection("127.0.0.1", port, NULL, &c);
    cr_assert_eq(rc, -ECONNREFUSED, "%s", co_err_name(rc));
    cr_assert_null(c);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%s", port);
    cr_assert(strstr(co_io_error(), want), "message names the peer: %s", co_io_error());
    cr_assert(strstr(co_io_error(), "refused"), "%s", co_io_error());
    return NULL;
}
Test(io, connection_refused_names_peer) { io_run(refused_task, NULL); }

/* The listen backlog full and never accepted: further SYNs are dropped,
 * so a connect hangs until its timeout. */
static int fill_backlog(int *lfd, char port[16], int *extra, int nextra) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(l, (void *)&a, sizeof a), 0);
    cr_assert_eq(listen(l, 0), 0);
    snprintf(port, 16, "%d", co_sock_port(l));
    socklen_t len = sizeof a;
    getsockname(l, (void *)&a, &len);
    for (int i = 0; i < nextra; i++) {
        extra[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(extra[i], (void *)&a, sizeof a);
    }
    usleep(20000);
    *lfd = l;
    return 0;
}

static void *connect_timeout_task(void *arg) {
    int l, extra[4];
    char port[16];
    fill_backlog(&l, port, extra, 4);
    co_connect_opts o = {.attempt_timeout = 0.1};
    int fd;
    double t0 = co_time();
    int rc = co_tcp_connect("127.0.0.1", port, &o, &fd);
    cr_assert_eq(rc, -ETIMEDOUT, "%s: %s", co_err_name(rc), co_io_error());
    cr_assert_geq(co_time() - t0, 0.1);
    cr_assert(strstr(co_io_error(), "timed out"), "%s", co_io_error());
    /* the whole-connect timeout, through a scope */
    co_connect_opts o2 = {.timeout = 0.05, .attempt_timeout = CO_FOREVER};
    rc = co_tcp_connect("127.0.0.1", port, &o2, &fd);
    cr_assert_eq(rc, -ETIMEDOUT, "%s: %s", co_err_name(rc), co_io_error());
    for (int i = 0; i < 4; i++) close(extra[i]);
    close(l);
    return NULL;
}
Test(io, connect_timeout) { io_run(connect_timeout_task, NULL); }

static char cport[16];
static void *connect_forever(void *arg) {
    int fd;
    co_connect_opts o = {.attempt_timeout = CO_FOREVER};
    return (void *)(intptr_t)co_tcp_connect("127.0.0.1", cport, &o, &fd);
}
static void *read_forever(void *arg) {
    char b[10];
    return (void *)(intptr_t)co_stream_read(arg, b, sizeof b);
}
static void *accept_forever(void *arg) {
    int fd;
    return (void *)(intptr_t)co_accept((int)(intptr_t)arg, &fd, NULL, NULL);
}
static void *drain_forever(void *arg) {
    co_stream *s = arg;
    static char big[1 << 20];
    int rc = co_stream_write(s, big, sizeof big);
    if (rc) return (void *)(intptr_t)rc;
    return (void *)(intptr_t)co_stream_drain(s);
}
static void *cancel_each_wait_task(void *arg) {
    int l, extra[4];
    fill_backlog(&l, cport, extra, 4);
    cr_assert_eq(tu_cancel_after(connect_forever, NULL, 0.02), -ECANCELED);
    for (int i = 0; i < 4; i++) close(extra[i]);
    close(l);

    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    co_stream *s;
    cr_assert_eq(co_stream_open(sv[0], NULL, &s), 0);
    cr_assert_eq(tu_cancel_after(read_forever, s, 0.02), -ECANCELED);
    cr_assert_eq(tu_cancel_after(drain_forever, s, 0.02), -ECANCELED);
    /* after the cancelled reads, the stream still works */
    cr_assert_eq(write(sv[1], "ok", 2), 2);
    char b[4];
    cr_assert_eq(co_stream_read(s, b, sizeof b), 2);
    co_stream_abort(s);
    close(sv[1]);

    int lfd;
    cr_assert_eq(co_tcp_listen("127.0.0.1", "0", NULL, &lfd), 0);
    cr_assert_eq(tu_cancel_after(accept_forever, (void *)(intptr_t)lfd, 0.02), -ECANCELED);
    co_close(lfd);
    return NULL;
}
Test(io, cancel_at_each_wait) { io_run(cancel_each_wait_task, NULL); }

static void *readexactly_cancel_keeps(void *arg) {
    co_stream *s = arg;
    char b[10];
    return (void *)(intptr_t)co_stream_readexactly(s, b, sizeof b, NULL);
}
static void *cancel_keeps_data_task(void *arg) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    co_stream *s;
    cr_assert_eq(co_stream_open(sv[0], NULL, &s), 0);
    cr_assert_eq(write(sv[1], "12345", 5), 5);
    cr_assert_eq(tu_cancel_after(readexactly_cancel_keeps, s, 0.02), -ECANCELED);
    cr_assert_eq(write(sv[1], "67890", 5), 5);
    char b[10];
    cr_assert_eq(co_stream_readexactly(s, b, 10, NULL), 10);
    cr_assert_arr_eq(b, "1234567890", 10);
    co_stream_abort(s);
    close(sv[1]);
    return NULL;
}
Test(io, cancelled_readexactly_loses_nothing) { io_run(cancel_keeps_data_task, NULL); }

static void *reset_task(void *arg) {
    int lfd;
    cr_assert_eq(co_tcp_listen("127.0.0.1", "0", NULL, &lfd), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", co_sock_port(lfd));
    co_stream *c;
    cr_assert_eq(co_open_connection("127.0.0.1", port, NULL, &c), 0);
    int sfd;
    cr_assert_eq(co_accept(lfd, &sfd, NULL, NULL), 0);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(sfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(sfd); /* RST */
    char b[16];
    ssize_t n = co_stream_read(c, b, sizeof b);
    cr_assert_eq(n, -ECONNRESET, "%s", co_err_name((int)n));
    cr_assert(strstr(co_io_error(), "127.0.0.1"), "%s", co_io_error());
    /* writing to the reset connection fails (EPIPE or ECONNRESET), no SIGPIPE */
    int rc = 0;
    for (int i = 0; i < 10 && rc == 0; i++) {
        rc = co_stream_write(c, "x", 1);
        if (rc == 0) rc = co_stream_flush(c);
    }
    cr_assert(rc == -EPIPE || rc == -ECONNRESET, "%s", co_err_name(rc));
    co_stream_close(c);
    co_close(lfd);
    return NULL;
}
Test(io, peer_reset_and_broken_pipe) { io_run(reset_task, NULL); }

static void *pipe_epipe_task(void *arg) {
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    close(p[0]);
    cr_assert_eq(co_write(p[1], "x", 1), -EPIPE);
    co_close(p[1]);
    return NULL;
}
Test(io, pipe_write_without_reader_is_epipe) { io_run(pipe_epipe_task, NULL); }

/* Flow control: a peer that does not read makes drain wait; once it
 * reads, drain returns and every byte arrives. */
static void *slow_reader(void *arg) {
    co_stream *s = arg;
    co_sleep(0.05);
    static char buf[1 << 16];
    size_t total = 0;
    for (;;) {
        ssize_t n = co_stream_read(s, buf, sizeof buf);
        if (n <= 0) break;
        total += (size_t)n;
    }
    return (void *)total;
}
static void *drain_task(void *arg) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    co_stream_opts o = {.high_water = 1 << 16};
    co_stream *w, *r;
    cr_assert_eq(co_stream_open(sv[0], &o, &w), 0);
    cr_assert_eq(co_stream_open(sv[1], NULL, &r), 0);
    co_task *rt = co_spawn(slow_reader, r);
    static char big[4 << 20];
    memset(big, 'y', sizeof big);
    double t0 = co_time();
    cr_assert_eq(co_stream_write(w, big, sizeof big), 0);
    cr_assert_gt(co_stream_unsent(w), 1 << 16, "the kernel cannot take 4 MiB at once");
    cr_assert_eq(co_stream_drain(w), 0);
    cr_assert_geq(co_time() - t0, 0.05, "drain waited for the reader");
    cr_assert_leq(co_stream_unsent(w), 1 << 14);
    cr_assert_eq(co_stream_write_eof(w), 0);
    void *total;
    cr_assert_eq(co_join(rt, &total), 0);
    cr_assert_eq((size_t)total, sizeof big);
    co_task_release(rt);
    cr_assert_eq(co_stream_write(w, "x", 1), -CO_ECLOSED);
    co_stream_close(w);
    co_stream_close(r);
    return NULL;
}
Test(io, drain_flow_control_and_write_eof) { io_run(drain_task, NULL); }

/* Queued data goes out in the background, without any task draining. */
static void *bg_flush_task(void *arg) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    co_stream *w, *r;
    cr_assert_eq(co_stream_open(sv[0], NULL, &w), 0);
    cr_assert_eq(co_stream_open(sv[1], NULL, &r), 0);
    static char big[1 << 20];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 7);
    cr_assert_eq(co_stream_write(w, big, sizeof big), 0);
    cr_assert_gt(co_stream_unsent(w), 0);
    static char got[1 << 20];
    cr_assert_eq(co_stream_readexactly(r, got, sizeof got, NULL), (ssize_t)sizeof got);
    cr_assert_arr_eq(got, big, sizeof big);
    cr_assert_eq(co_stream_unsent(w), 0);
    co_stream_close(w);
    co_stream_close(r);
    return NULL;
}
Test(io, background_flush) { io_run(bg_flush_task, NULL); }

/* ---- IPv6, Unix, UDP, names ------------------------------------------------------------ */

static void *ipv6_task(void *arg) {
    int lfd;
    int rc = co_tcp_listen("::1", "0", NULL, &lfd);
    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
        cr_log_warn("no IPv6 loopback here: %s", co_io_error());
        return NULL;
    }
    cr_assert_eq(rc, 0, "%s", co_io_error());
    co_server *srv;
    cr_assert_eq(co_server_start(lfd, echo_handler, NULL, NULL, &srv), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", co_server_port(srv));
    co_connect_opts o = {.family = AF_INET6};
    co_stream *c;
    cr_assert_eq(co_open_connection("::1", port, &o, &c), 0, "%s", co_io_error());
    cr_assert_eq(co_stream_write(c, "six\n", 4), 0);
    char b[8];
    cr_assert_eq(co_stream_readline(c, b, sizeof b), 4);
    co_stream_close(c);
    co_server_close(srv, CO_SERVER_WAIT);
    return NULL;
}
Test(io, ipv6_loopback) { io_run(ipv6_task, NULL); }

static void *all_addresses_task(void *arg) {
    /* "localhost" may resolve to ::1 first; only 127.0.0.1 listens: the
     * connect must go on to the next address */
    char port[16];
    co_server *srv = start_echo(port);
    co_stream *c;
    int rc = co_open_connection("localhost", port, NULL, &c);
    cr_assert_eq(rc, 0, "%s", co_io_error());
    cr_assert_eq(co_stream_write(c, "a\n", 2), 0);
    char b[4];
    cr_assert_eq(co_stream_readline(c, b, sizeof b), 2);
    co_stream_close(c);
    co_server_close(srv, CO_SERVER_WAIT);
    return NULL;
}
Test(io, connect_tries_every_address) { io_run(all_addresses_task, NULL); }

static void *dns_task(void *arg) {
    struct addrinfo *res;
    struct addrinfo h = {.ai_socktype = SOCK_STREAM};
    cr_assert_eq(co_getaddrinfo("localhost", "80", &h, &res), 0, "%s", co_io_error());
    cr_assert_not_null(res);
    co_freeaddrinfo(res);
    int rc = co_getaddrinfo("no-such-host.invalid", "80", &h, &res);
    cr_assert(rc == -ENOENT || rc == -EAGAIN, "%s", co_err_name(rc));
    cr_assert(strstr(co_io_error(), "no-such-host.invalid"), "%s", co_io_error());
    return NULL;
}
Test(io, dns_on_the_pool) { io_run(dns_task, NULL); }

static void *unix_task(void *arg) {
    char dir[] = "/tmp/corio-unix-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/sock", dir);
    int lfd;
    cr_assert_eq(co_unix_listen(path, NULL, &lfd), 0, "%s", co_io_error());
    co_server *srv;
    cr_assert_eq(co_server_start(lfd, echo_handler, NULL, NULL, &srv), 0);
    co_stream *c;
    cr_assert_eq(co_open_unix_connection(path, NULL, &c), 0, "%s", co_io_error());
    cr_assert_eq(co_stream_write(c, "unix\n", 5), 0);
    char b[8];
    cr_assert_eq(co_stream_readline(c, b, sizeof b), 5);
    co_stream_close(c);
    co_server_close(srv, CO_SERVER_WAIT);
    unlink(path);
    rmdir(dir);
    return NULL;
}
Test(io, unix_stream_sockets) { io_run(unix_task, NULL); }

static void *udp_task(void *arg) {
    int a, b;
    cr_assert_eq(co_udp_bind("127.0.0.1", "0", AF_INET, &a), 0);
    cr_assert_eq(co_udp_bind("127.0.0.1", "0", AF_INET, &b), 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)co_sock_port(b))};
    cr_assert_eq(co_sendto(a, "ping", 4, 0, (void *)&to, sizeof to), 4);
    char buf[16];
    struct sockaddr_storage from;
    socklen_t flen = sizeof from;
    cr_assert_eq(co_recvfrom(b, buf, sizeof buf, 0, &from, &flen), 4);
    cr_assert_eq(ntohs(((struct sockaddr_in *)&from)->sin_port), co_sock_port(a));
    cr_assert_eq(co_sendto(b, "pong", 4, 0, (void *)&from, flen), 4);
    cr_assert_eq(co_recvfrom(a, buf, sizeof buf, 0, NULL, NULL), 4);
    cr_assert_arr_eq(buf, "pong", 4);
    co_close(a);
    co_close(b);
    return NULL;
}
Test(io, udp_sendto_recvfrom) { io_run(udp_task, NULL); }

/* ---- servers ---------------------------------------------------------------------- */

static int handlers_done, handlers_cancelled;
static void slow_handler(co_stream *s, void *arg) {
    char b[8];
    ssize_t n = co_stream_read(s, b, sizeof b); /* waits for the client */
    if (n == -ECANCELED) {
        handlers_cancelled++;
        return;
    }
    co_stream_write(s, "bye\n", 4);
    handlers_done++;
}
static void *server_modes_task(void *arg) {
    for (int mode = 0; mode < 3; mode++) {
        handlers_done = handlers_cancelled = 0;
        co_server *srv;
        cr_assert_eq(co_server_start_tcp("127.0.0.1", "0", slow_handler, NULL, NULL, &srv), 0);
        char port[16];
        snprintf(port, sizeof port, "%d", co_server_port(srv));
        co_stream *c[3];
        for (int i = 0; i < 3; i++) cr_assert_eq(co_open_connection("127.0.0.1", port, NULL, &c[i]), 0);
        while (co_server_nconns(srv) < 3) co_sleep(0.001);
        if (mode == CO_SERVER_WAIT) {
            /* the clients finish later: close waits for them */
            for (int i = 0; i < 3; i++) co_stream_write(c[i], "go", 2);
        }
        cr_assert_eq(co_server_close(srv, mode), 0);
        if (mode == CO_SERVER_WAIT) cr_assert_eq(handlers_done, 3);
        else cr_assert_eq(handlers_cancelled, 3);
        /* the listener is closed: new connections are refused */
        co_stream *x;
        cr_assert_eq(co_open_connection("127.0.0.1", port, NULL, &x), -ECONNREFUSED);
        char b[8];
        for (int i = 0; i < 3; i++) {
            ssize_t n = co_stream_read(c[i], b, sizeof b);
            if (mode == CO_SERVER_WAIT) cr_assert_eq(n, 4);
            else cr_assert(n == 0 || n == -ECONNRESET, "%zd", n);
            co_stream_close(c[i]);
        }
    }
    return NULL;
}
Test(io, server_close_wait_close_abort) { io_run(server_modes_task, NULL); }

/* ---- fault injection -------------------------------------------------------------------- */

/* Only this task's calls go through corio here (the peers are plain
 * fds), so the counts are exact. */
static void *faults_task(void *arg) {
    int lfd;
    cr_assert_eq(co_tcp_listen("127.0.0.1", "0", NULL, &lfd), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", co_sock_port(lfd));
    co_stream *c;
    co_fault_inject(CO_FAULT_CONNECT, 1, ENETUNREACH);
    cr_assert_eq(co_open_connection("127.0.0.1", port, NULL, &c), -ENETUNREACH);
    cr_assert(strstr(co_io_error(), "injected"), "%s", co_io_error());
    cr_assert(strstr(co_io_error(), port), "%s", co_io_error());
    cr_assert_eq(co_open_connection("127.0.0.1", port, NULL, &c), 0);
    co_stream_abort(c);
    co_fault_inject(CO_FAULT_ACCEPT, 2, EMFILE);
    int fd;
    cr_assert_eq(co_accept(lfd, &fd, NULL, NULL), 0); /* the 1st: the connection above */
    close(fd);
    cr_assert_eq(co_accept(lfd, &fd, NULL, NULL), -EMFILE);
    co_close(lfd);

    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(co_stream_open(sv[0], NULL, &c), 0);
    co_fault_inject(CO_FAULT_WRITE, 3, EIO);
    cr_assert_eq(co_stream_write(c, "a\n", 2), 0);
    cr_assert_eq(co_stream_write(c, "b\n", 2), 0);
    cr_assert_eq(co_stream_write(c, "c\n", 2), -EIO);
    cr_assert_eq(co_stream_write(c, "d\n", 2), -EIO, "the error sticks");
    char b[8];
    cr_assert_eq(read(sv[1], b, sizeof b), 4, "what went before the fault arrived");
    cr_assert_eq(write(sv[1], "x\ny\n", 4), 4);
    co_fault_inject(CO_FAULT_READ, 1, ECONNRESET);
    cr_assert_eq(co_stream_readline(c, b, sizeof b), -ECONNRESET);
    cr_assert_eq(co_stream_readline(c, b, sizeof b), 2, "the data was not lost");
    cr_assert_eq(co_stream_readline(c, b, sizeof b), 2);
    co_stream_abort(c);
    close(sv[1]);
    return NULL;
}
Test(io, fault_injection_reaches_the_caller) { io_run(faults_task, NULL); }

/* ---- 10,000 concurrent connections ---------------------------------------------------
 * The server (this process) and the clients (a forked child with its own
 * loop and fd table) each hold 10,000 sockets; every client connects,
 * gets its line echoed, and keeps its connection open until all 10,000
 * are through, so they are all open at once. */
#define MANY 10000
static size_t many_live, many_peak;
static void many_handler(co_stream *s, void *arg) {
    if (++many_live > many_peak) many_peak = many_live;
    char line[64];
    ssize_t n = co_stream_readline(s, line, sizeof line);
    if (n > 0) co_stream_write(s, line, (size_t)n);
    co_stream_read(s, line, sizeof line); /* until the client closes */
    many_live--;
}

static const char *many_port;
static int many_ok, many_done;
static co_event many_all;
static void *many_client(void *arg) {
    co_stream *s;
    co_connect_opts o = {.attempt_timeout = 60};
    int rc = co_open_connection("127.0.0.1", many_port, &o, &s);
    if (rc == 0) {
        char msg[32], back[32];
        int n = snprintf(msg, sizeof msg, "hello %d\n", (int)(intptr_t)arg);
        co_stream_write(s, msg, (size_t)n);
        if (co_stream_readline(s, back, sizeof back) == n && memcmp(msg, back, (size_t)n) == 0) many_ok++;
    }
    if (++many_done == MANY) co_event_set(&many_all);
    co_event_wait(&many_all); /* hold the connection until all are through */
    if (rc == 0) co_stream_close(s);
    return NULL;
}
static void *many_clients_main(void *arg) {
    co_event_init(&many_all);
    co_task **t = malloc(MANY * sizeof *t);
    for (int i = 0; i < MANY; i++) t[i] = co_spawn(many_client, (void *)(intptr_t)i);
    co_gather(t, MANY, NULL, 0);
    for (int i = 0; i < MANY; i++) co_task_release(t[i]);
    free(t);
    return NULL;
}

static pid_t many_child;
static int many_lfd;
static void *many_server_task(void *arg) {
    co_server *srv;
    co_server_opts so = {.stream.limit = 1024};
    cr_assert_eq(co_server_start(many_lfd, many_handler, NULL, &so, &srv), 0);
    int status = 0;
    for (;;) {
        pid_t w = waitpid(many_child, &status, WNOHANG);
        if (w == many_child) break;
        co_sleep(0.02);
    }
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client process status %d", status);
    cr_assert_eq(many_peak, MANY, "connections open at once: %zu", many_peak);
    cr_assert_eq(co_server_close(srv, CO_SERVER_WAIT), 0);
    return NULL;
}
Test(io, ten_thousand_connections, .timeout = 180) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    cr_assert_geq(rl.rlim_max, MANY + 100, "the hard fd limit (%lu) is below %d", (unsigned long)rl.rlim_max, MANY + 100);
    rl.rlim_cur = rl.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    /* the listener exists before the fork: the clients' connects queue */
    co_listen_opts lo = {.backlog = 4096};
    cr_assert_eq(co_tcp_listen("127.0.0.1", "0", &lo, &many_lfd), 0);
    static char port[16];
    snprintf(port, sizeof port, "%d", co_sock_port(many_lfd));
    many_port = port;
    fflush(NULL);
    many_child = fork();
    cr_assert_geq(many_child, 0);
    co_loop_opts o = {.stack_size = 32 * 1024, .report = tu_report};
    if (many_child == 0) { /* the clients: a process and a loop of their own */
        close(many_lfd);
        co_loop *L = co_loop_new(&o);
        co_loop_set_current(L);
        co_task *m = co_spawn(many_clients_main, NULL);
        co_loop_run_until_complete(L, m, NULL);
        _exit(many_ok == MANY ? 0 : 3);
    }
    co_loop *L = co_loop_new(&o);
    co_loop_set_current(L);
    int rc = tu_run(L, many_server_task, NULL, NULL);
    cr_assert_eq(rc, 0, "%s", co_err_name(rc));
    tu_close(L);
}

/* ---- a deadline at each stage: a 50 ms scope around each wait ------------------------ */
typedef struct {
    int stage;
    co_stream *s;
    int lfd;
} stage_arg;
static int run_stage(stage_arg *a) {
    char b[16];
    int fd;
    switch (a->stage) {
    case 0: {
        co_connect_opts o = {.attempt_timeout = CO_FOREVER};
        return co_tcp_connect("127.0.0.1", cport, &o, &fd);
    }
    case 1: return co_accept(a->lfd, &fd, NULL, NULL);
    case 2: return (int)co_stream_read(a->s, b, sizeof b);
    case 3: return (int)co_stream_readexactly(a->s, b, sizeof b, NULL);
    case 4: return (int)co_stream_readline(a->s, b, sizeof b);
    default: {
        static char big[1 << 20];
        int rc = co_stream_write(a->s, big, sizeof big);
        return rc ? rc : co_stream_drain(a->s);
    }
    }
}
static void *stages_task(void *arg) {
    int l, extra[4];
    fill_backlog(&l, cport, extra, 4);
    int lfd;
    cr_assert_eq(co_tcp_listen("127.0.0.1", "0", NULL, &lfd), 0);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    co_stream *s;
    cr_assert_eq(co_stream_open(sv[0], NULL, &s), 0);
    cr_assert_eq(write(sv[1], "abc", 3), 3); /* readexactly and readline wait for more */
    for (int stage = 0; stage < 6; stage++) {
        stage_arg a = {.stage = stage, .s = s, .lfd = lfd};
        if (stage == 2) { /* read must find nothing buffered: take "abc" first */
            char t[3];
            cr_assert_eq(co_stream_readexactly(s, t, 3, NULL), 3);
        }
        if (stage == 3) cr_assert_eq(write(sv[1], "abc", 3), 3);
        co_scope sc;
        co_scope_enter(&sc, 0.05, CO_FAIL_AFTER);
        double t0 = co_time();
        int rc = run_stage(&a);
        int src = co_scope_exit(&sc);
        cr_assert_eq(rc, -ECANCELED, "stage %d: %s", stage, co_err_name(rc));
        cr_assert_eq(src, -ETIMEDOUT, "stage %d", stage);
        cr_assert_geq(co_time() - t0, 0.05, "stage %d", stage);
    }
    /* nothing was lost: the 3 bytes readexactly and readline waited on */
    char t[3];
    cr_assert_eq(co_stream_readexactly(s, t, 3, NULL), 3);
    cr_assert_arr_eq(t, "abc", 3);
    co_stream_abort(s);
    close(sv[1]);
    co_close(lfd);
    for (int i = 0; i < 4; i++) close(extra[i]);
    close(l);
    return NULL;
}
Test(io, timeout_at_each_stage) { io_run(stages_task, NULL); }

/* ---- the rest of the stream and fd API ------------------------------------------------ */

static void *peek_printf_flush_task(void *arg) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    co_stream *a, *b;
    cr_assert_eq(co_stream_open(sv[0], NULL, &a), 0);
    cr_assert_eq(co_stream_open(sv[1], NULL, &b), 0);
    cr_assert_eq(co_stream_fd(a), sv[0]);
    cr_assert_eq(co_stream_printf(a, "GET /%s HTTP/1.1\r\n", "x"), 0);
    static char big[4000];
    memset(big, 'z', sizeof big);
    cr_assert_eq(co_stream_printf(a, "%.*s\r\n", (int)sizeof big, big), 0); /* longer than the small buffer */
    cr_assert_eq(co_stream_flush(a), 0);
    cr_assert_eq(co_stream_unsent(a), 0);
    const char *p;
    size_t n;
    cr_assert_eq(co_stream_peek(b, 18, &p, &n), 0);
    cr_assert_geq(n, 18);
    cr_assert_arr_eq(p, "GET /x HTTP/1.1\r\n", 17);
    co_stream_consume(b, 17);
    cr_assert_eq(co_stream_peek(b, 4002, &p, &n), 0);
    cr_assert_eq(n, 4002);
    cr_assert_eq(p[0], 'z');
    cr_assert_arr_eq(p + 4000, "\r\n", 2);
    co_stream_consume(b, n);
    /* asking past the limit, and past the end */
    cr_assert_eq(co_stream_peek(b, 1 << 20, &p, &n), -CO_ELIMIT);
    cr_assert_eq(co_stream_write(a, "end", 3), 0);
    cr_assert_eq(co_stream_write_eof(a), 0);
    cr_assert_eq(co_stream_peek(b, 10, &p, &n), -CO_EINCOMPLETE);
    cr_assert_eq(n, 3, "what is there is still shown");
    co_stream_consume(b, 3);
    cr_assert(co_stream_at_eof(b));
    co_stream_close(a);
    co_stream_close(b);
    return NULL;
}
Test(io, peek_consume_printf_flush) { io_run(peek_printf_flush_task, NULL); }

static char pipe_data[300000];
static void *pipe_writer(void *arg) {
    size_t sent = 0;
    int rc = co_write_all((int)(intptr_t)arg, pipe_data, sizeof pipe_data, &sent);
    cr_assert_eq(sent, sizeof pipe_data);
    return (void *)(intptr_t)rc;
}
static void *fd_calls_task(void *arg) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    cr_assert_eq(co_send(sv[0], "ab", 2, 0), 2);
    char b[8];
    cr_assert_eq(co_recv(sv[1], b, sizeof b, 0), 2);
    cr_assert_arr_eq(b, "ab", 2);
    co_close(sv[0]);
    cr_assert_eq(co_recv(sv[1], b, sizeof b, 0), 0, "end of stream");
    co_close(sv[1]);
    /* a pipe through co_write_all / co_read, bigger than the pipe buffer */
    int p[2];
    cr_assert_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    co_task *w;
    for (size_t i = 0; i < sizeof pipe_data; i++) pipe_data[i] = (char)(i % 253);
    w = co_spawn(pipe_writer, (void *)(intptr_t)p[1]);
    static char got[300000];
    size_t have = 0;
    while (have < sizeof got) {
        ssize_t n = co_read(p[0], got + have, sizeof got - have);
        cr_assert_gt(n, 0);
        have += (size_t)n;
    }
    void *rc;
    cr_assert_eq(co_join(w, &rc), 0);
    cr_assert_eq((intptr_t)rc, 0);
    co_task_release(w);
    cr_assert_arr_eq(got, pipe_data, sizeof pipe_data);
    co_close(p[0]);
    co_close(p[1]);
    return NULL;
}
Test(io, recv_send_read_write_all) { io_run(fd_calls_task, NULL); }

/* A lookup that cannot start (every pool thread is busy) is cancelled: the
 * waiter returns at once and nothing leaks (ASan checks the late parts). */
static atomic_int pool_gate;
static void *hold_thread(void *arg) {
    while (!atomic_load(&pool_gate)) usleep(1000);
    return NULL;
}
static void *lookup(void *arg) {
    struct addrinfo *res = NULL;
    int rc = co_getaddrinfo("never-resolved.invalid", "80", NULL, &res);
    co_freeaddrinfo(res);
    return (void *)(intptr_t)rc;
}
static void *dns_cancel_task(void *arg) {
    size_t n = co_pool_size(co_pool_default());
    co_tsfuture *held[64];
    cr_assert_leq(n, 64);
    for (size_t i = 0; i < n; i++) held[i] = co_pool_submit(NULL, hold_thread, NULL);
    double t0 = co_time();
    cr_assert_eq(tu_cancel_after(lookup, NULL, 0.02), -ECANCELED);
    cr_assert_lt(co_time() - t0, 1.0, "released at once");
    atomic_store(&pool_gate, 1);
    for (size_t i = 0; i < n; i++) {
        co_tsfuture_wait(held[i], CO_FOREVER, NULL);
        co_tsfuture_release(held[i]);
    }
    /* and a lookup under a deadline scope, also waiting for a thread */
    atomic_store(&pool_gate, 0);
    for (size_t i = 0; i < n; i++) held[i] = co_pool_submit(NULL, hold_thread, NULL);
    co_scope sc;
    co_scope_enter(&sc, 0.03, CO_FAIL_AFTER);
    cr_assert_eq((intptr_t)lookup(NULL), -ECANCELED);
    cr_assert_eq(co_scope_exit(&sc), -ETIMEDOUT);
    atomic_store(&pool_gate, 1);
    for (size_t i = 0; i < n; i++) {
        co_tsfuture_wait(held[i], CO_FOREVER, NULL);
        co_tsfuture_release(held[i]);
    }
    return NULL;
}
Test(io, dns_cancel_and_timeout_while_waiting) { io_run(dns_cancel_task, NULL); }

/* max_conns: above it the server stops accepting until a connection ends. */
static co_event mc_release;
static void mc_handler(co_stream *s, void *arg) {
    co_stream_write(s, "hi\n", 3);
    co_event_wait(&mc_release);
}
static void *max_conns_task(void *arg) {
    co_event_init(&mc_release);
    co_server_opts so = {.max_conns = 2};
    co_server *srv;
    cr_assert_eq(co_server_start_tcp("127.0.0.1", "0", mc_handler, NULL, &so, &srv), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", co_server_port(srv));
    co_stream *c[3];
    char b[8];
    for (int i = 0; i < 3; i++) cr_assert_eq(co_open_connection("127.0.0.1", port, NULL, &c[i]), 0);
    cr_assert_eq(co_stream_readline(c[0], b, sizeof b), 3);
    cr_assert_eq(co_stream_readline(c[1], b, sizeof b), 3);
    co_sleep(0.05);
    cr_assert_eq(co_server_nconns(srv), 2, "the third waits in the backlog");
    co_event_set(&mc_release); /* the first two end; the third is accepted */
    cr_assert_eq(co_stream_readline(c[2], b, sizeof b), 3);
    cr_assert_eq(co_server_close(srv, CO_SERVER_WAIT), 0);
    for (int i = 0; i < 3; i++) co_stream_close(c[i]);
    co_event_destroy(&mc_release);
    return NULL;
}
Test(io, server_max_conns_pauses_accepting) { io_run(max_conns_task, NULL); }

/* The task closing a server (waiting for its clients) is cancelled: the
 * clients are cancelled too, the server is freed, -ECANCELED comes back. */
static co_server *closing_srv;
static void *closer(void *arg) { return (void *)(intptr_t)co_server_close(closing_srv, CO_SERVER_WAIT); }
static void *close_cancelled_task(void *arg) {
    handlers_done = handlers_cancelled = 0;
    cr_assert_eq(co_server_start_tcp("127.0.0.1", "0", slow_handler, NULL, NULL, &closing_srv), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", co_server_port(closing_srv));
    co_stream *c[2];
    for (int i = 0; i < 2; i++) cr_assert_eq(co_open_connection("127.0.0.1", port, NULL, &c[i]), 0);
    while (co_server_nconns(closing_srv) < 2) co_sleep(0.001);
    co_task *t = co_spawn(closer, NULL);
    co_sleep(0.02);
    cr_assert_not(co_task_done(t), "close waits for the clients");
    co_cancel(t, NULL);
    void *rc;
    cr_assert_eq(co_join(t, &rc), -ECANCELED);
    co_task_release(t);
    cr_assert_eq(handlers_cancelled, 2);
    cr_assert_eq(handlers_done, 0);
    for (int i = 0; i < 2; i++) co_stream_close(c[i]);
    return NULL;
}
Test(io, server_close_cancelled_while_waiting) { io_run(close_cancelled_task, NULL); }

/* ==== streams: short reads, absurd lengths, readline at the end, use after close ==== */

#include <sys/ioctl.h>
#include <netinet/tcp.h>

/* Bounds a wait that must not hang: a regression fails after 10 s
 * instead of stalling the suite (a lower bound only: passing never
 * depends on it). */
#define STALL_BOUND 10.0

typedef struct {
    int fd;
    int kind; /* 0: urgent byte, 1: SCM_RIGHTS, 2: seqpacket */
} short_peer;

/* The peer puts everything in the kernel within one step of the loop:
 * the reader's wake-up sees all of it at once, and no later edge comes. */
static void *short_sender(void *arg) {
    short_peer *p = arg;
    if (p->kind == 0) {
        cr_assert_eq(send(p->fd, "abc", 3, 0), 3);
        cr_assert_eq(send(p->fd, "X", 1, MSG_OOB), 1);
        cr_assert_eq(send(p->fd, "def", 3, 0), 3);
    } else if (p->kind == 1) {
        int pass = dup(0);
        char cbuf[CMSG_SPACE(sizeof(int))] = {0};
        struct iovec iov = {"abc", 3};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass, sizeof pass);
        cr_assert_eq(sendmsg(p->fd, &m, 0), 3);
        close(pass);
        cr_assert_eq(send(p->fd, "def", 3, 0), 3);
    } else {
        cr_assert_eq(send(p->fd, "abc", 3, 0), 3);
        cr_assert_eq(send(p->fd, "def", 3, 0), 3);
    }
    return NULL;
}

/* The reader asks for everything the peer sends; the first read stops
 * short with the rest already queued. */
static void short_read_case(int rfd, int wfd, int kind, const char *want) {
    co_stream *s;
    cr_assert_eq(co_stream_open(rfd, NULL, &s), 0, "%s", co_io_error());
    short_peer peer = {wfd, kind};
    co_task *t = co_spawn(short_sender, &peer);
    cr_assert_not_null(t);
    size_t n = strlen(want);
    char got[16] = {0};
    co_scope sc;
    cr_assert_eq(co_scope_enter(&sc, STALL_BOUND, CO_FAIL_AFTER), 0);
    ssize_t r = co_stream_readexactly(s, got, n, NULL);
    int expired = co_scope_exit(&sc);
    cr_assert_eq(co_join(t, NULL), 0);
    co_task_release(t);
    cr_assert_eq(expired, 0, "case %d: the reader stalled with data in the kernel", kind);
    cr_assert_eq(r, (ssize_t)n, "case %d: %s", kind, co_err_name((int)r));
    cr_assert_arr_eq(got, want, n);
    co_stream_close(s);
    close(wfd);
}

static void tcp_pair(int *a, int *b) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    cr_assert_eq(bind(l, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(l, 1), 0);
    cr_assert_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
    *a = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_eq(connect(*a, (struct sockaddr *)&sa, sizeof sa), 0);
    *b = accept(l, NULL, NULL);
    cr_assert_geq(*b, 0);
    close(l);
    int one = 1;
    setsockopt(*a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void *urgent_task(void *arg) {
    int inline_oob = (int)(intptr_t)arg;
    int w, r;
    tcp_pair(&w, &r);
    cr_assert_eq(setsockopt(r, SOL_SOCKET, SO_OOBINLINE, &inline_oob, sizeof inline_oob), 0);
    short_read_case(r, w, 0, inline_oob ? "abcXdef" : "abcdef");
    return NULL;
}
Test(io, short_read_at_tcp_urgent_mark_does_not_stall) { io_run(urgent_task, (void *)0); }
Test(io, short_read_at_inline_urgent_byte_does_not_stall) { io_run(urgent_task, (void *)1); }

static void *scm_rights_task(void *arg) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    short_read_case(sv[0], sv[1], 1, "abcdef");
    return NULL;
}
Test(io, short_read_at_scm_rights_does_not_stall) { io_run(scm_rights_task, NULL); }

static void *seqpacket_task(void *arg) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    short_read_case(sv[0], sv[1], 2, "abcdef");
    return NULL;
}
Test(io, short_read_on_seqpacket_does_not_stall) { io_run(seqpacket_task, NULL); }

/* Lengths no buffer can have are refused at the edge, at once: the
 * Criterion timeout catches a spin. */
static void *absurd_task(void *arg) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    co_stream_opts o = {.limit = SIZE_MAX};
    co_stream *s;
    cr_assert_eq(co_stream_open(sv[0], &o, &s), 0);
    char small[16] = "0123456789abcdef";
    cr_assert_eq(co_stream_write(s, small, SIZE_MAX), -EINVAL);
    cr_assert_eq(co_stream_write(s, small, ((size_t)1 << 63) + 1), -EINVAL);
    cr_assert_eq(co_stream_unsent(s), 0, "nothing was queued");
    const char *p;
    size_t n;
    cr_assert_eq(co_stream_peek(s, SIZE_MAX, &p, &n), -EINVAL);
    cr_assert_eq(co_stream_peek(s, ((size_t)1 << 63) + 1, &p, &n), -EINVAL);
#if !defined(__SANITIZE_ADDRESS__) /* ASan aborts on such a malloc instead of failing it */
    cr_assert_eq(co_stream_peek(s, (size_t)1 << 62, &p, &n), -ENOMEM, "%s", co_io_error());
#endif
    cr_assert_eq(co_stream_readexactly(s, small, SIZE_MAX, NULL), -EINVAL);
    /* the stream still works */
    cr_assert_eq(co_stream_write(s, "ok", 2), 0);
    char b[2];
    cr_assert_eq(read(sv[1], b, 2), 2);
    /* with the socket full, a write goes to the queue at once: the same
     * lengths must not reach its growth */
    while (write(sv[0], small, sizeof small) > 0) {}
    cr_assert_eq(co_stream_write(s, small, SIZE_MAX), -EINVAL);
    cr_assert_eq(co_stream_write(s, small, ((size_t)1 << 63) + 1), -EINVAL);
    cr_assert_eq(co_stream_unsent(s), 0);
    co_stream_abort(s);
    close(sv[1]);
    return NULL;
}
Test(io, absurd_lengths_are_refused, .timeout = 20) { io_run(absurd_task, NULL); }

/* readline at the end of the stream, as asyncio: the last line without
 * its newline, then 0; readuntil keeps the strict form. */
static void *readline_eof_task(void *arg) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    co_stream *s;
    cr_assert_eq(co_stream_open(sv[0], NULL, &s), 0);
    cr_assert_eq(write(sv[1], "one\nlast", 8), 8);
    close(sv[1]);
    char line[16] = {0};
    cr_assert_eq(co_stream_readline(s, line, sizeof line), 4);
    cr_assert_arr_eq(line, "one\n", 4);
    cr_assert_eq(co_stream_readline(s, line, sizeof line), 4, "the unterminated last line");
    cr_assert_arr_eq(line, "last", 4);
    cr_assert_eq(co_stream_readline(s, line, sizeof line), 0, "then an empty line");
    cr_assert_eq(co_stream_readline(s, line, sizeof line), 0);
    cr_assert(co_stream_at_eof(s));
    co_stream_close(s);

    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(co_stream_open(sv[0], NULL, &s), 0);
    cr_assert_eq(write(sv[1], "tail", 4), 4);
    close(sv[1]);
    cr_assert_eq(co_stream_readuntil(s, "\n", 1, line, sizeof line), -CO_EINCOMPLETE);
    cr_assert_eq(co_stream_readline(s, line, sizeof line), 4);
    co_stream_close(s);
    return NULL;
}
Test(io, readline_returns_the_last_line_then_empty) { io_run(readline_eof_task, NULL); }

/* A stream used after co_stream_close: -EBADF and a report on stderr
 * (on a debug loop; in the assertion builds, the ASan pass, on every
 * loop), not a crash or a silent use of freed memory. */
static void *after_close_task(void *arg) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    co_stream *s;
    cr_assert_eq(co_stream_open(sv[0], NULL, &s), 0);
    cr_assert_eq(co_stream_close(s), 0);
    char b[4];
    cr_assert_eq(co_stream_read(s, b, sizeof b), -EBADF);
    cr_assert(strstr(co_io_error(), "after co_stream_close"), "%s", co_io_error());
    cr_assert_eq(co_stream_readline(s, b, sizeof b), -EBADF);
    cr_assert_eq(co_stream_write(s, "x", 1), -EBADF);
    cr_assert_eq(co_stream_drain(s), -EBADF);
    cr_assert_eq(co_stream_close(s), -EBADF, "a second close");
    cr_assert_eq(co_stream_fd(s), -1);
    close(sv[1]);
    return NULL;
}
static void after_close_run(bool debug) {
    /* stderr into a file for the duration, to look for the report */
    FILE *cap = tmpfile();
    cr_assert_not_null(cap);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(cap), 2);
    co_loop *L = tu_loop_opts(false, debug, 0);
    int rc = tu_run(L, after_close_task, NULL, NULL);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    cr_assert_eq(rc, 0);
    tu_close(L);
    char out[4096] = {0};
    rewind(cap);
    size_t n = fread(out, 1, sizeof out - 1, cap);
    fclose(cap);
    cr_assert_gt(n, 0, "nothing reported");
    cr_assert(strstr(out, "corio: co_stream_read on stream"), "%s", out);
    cr_assert(strstr(out, "corio: co_stream_close on stream"), "%s", out);
}
Test(io, read_after_close_is_reported_in_debug_mode) { after_close_run(true); }
#if defined(CO_ASSERTS)
Test(io, read_after_close_is_reported_in_the_asan_build) { after_close_run(false); }
#endif
/* ---- out of file descriptors at accept ---------------------------------------------- */

static void hi_handler(co_stream *s, void *arg) {
    (void)arg;
    co_stream_write(s, "hi", 2);
}

/* A client on the one free fd; what the server does with it: 1 served
 * ("hi"), 0 closed unserved, -1 nothing within 5 s (left in the backlog). */
static int emfile_client(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -2;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) return close(fd), -3;
    int rc = -1;
    if (co_wait_fd(fd, CO_READ, 5) >= 0) {
        char buf[4];
        ssize_t n = read(fd, buf, sizeof buf);
        rc = n == 2 && memcmp(buf, "hi", 2) == 0 ? 1 : 0;
    }
    close(fd);
    return rc;
}

static int count_reports(const char *what) {
    int n = 0;
    for (const char *p = tu_reports; (p = strstr(p, what)); p++) n++;
    return n;
}

/* In a forked child: the fds are its own to exhaust. */
static void *emfile_task(void *arg) {
    (void)arg;
    co_server *srv;
    if (co_server_start_tcp("127.0.0.1", "0", hi_handler, NULL, NULL, &srv)) _exit(10);
    int port = co_server_port(srv);
    if (emfile_client(port) != 1) _exit(11); /* served while fds last */
    struct rlimit rl = {.rlim_cur = 128, .rlim_max = 0};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = 128;
    if (setrlimit(RLIMIT_NOFILE, &rl)) _exit(12);
    int fill[128], nfill = 0, fd;
    while (nfill < 128 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) fill[nfill++] = fd;
    if (nfill == 0) _exit(13);
    close(fill[--nfill]); /* one free fd: the client's; none for the server's accept */
    tu_reports[0] = 0;
    for (int i = 0; i < 20; i++) {
        int rc = emfile_client(port);
        if (rc == -1) _exit(20); /* waited in the backlog: the bug */
        if (rc != 0) _exit(21);
    }
    int lines = count_reports("server on port");
    if (lines < 1 || lines > 5) _exit(22); /* reported, not once per retry */
    if (!strstr(tu_reports, "connections closed unserved")) _exit(23);
    while (nfill) close(fill[--nfill]);
    if (emfile_client(port) != 1) _exit(24); /* served again once fds are back */
    if (co_server_close(srv, CO_SERVER_WAIT)) _exit(25);
    return NULL;
}

Test(io, out_of_fds_at_accept_closes_pending_clients) {
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        alarm(60); /* a spinning or stuck acceptor fails the test */
        co_loop *L = io_loop();
        tu_run(L, emfile_task, NULL, NULL);
        co_loop_free(L);
        _exit(0);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "child: status %d (20: a client waited in the backlog; 22: reports not rate-limited)",
              WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
}
