/* server.c — asyncio.start_server for corio: an accept task spawning one
 * task per connection, and a close that stops accepting and then waits
 * for, cancels (close_clients) or aborts (abort_clients) the connections.
 * Loop thread.
 *
 * Ownership: the server owns the listening fd, its accept task, a spare
 * fd and one record per live connection (linked in `conns`); a connection
 * task owns its stream and frees its record when its handler returns.
 *
 * Out of file descriptors (EMFILE, ENFILE), accept fails while the
 * connection stays in the kernel's backlog, its client waiting with no
 * answer, and the listening fd stays readable. libuv's answer, taken
 * here: the server holds one spare fd (on /dev/null); out of fds, it
 * closes it, accepts and closes every pending connection (their clients
 * see the connection closed at once), and reopens it. The alternative of
 * backing off and retrying leaves clients hanging for as long as the
 * shortage lasts. Accept errors are reported at most once a second, with
 * what happened since the last report.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "corio/scope.h"
#include "corio/sync.h"

typedef struct co__conn {
    co__list link;          /* srv->conns */
    co_server *srv;
    co_task *task;          /* the server's reference */
    co_stream *s;
} co__conn;

struct co_server {
    co_loop *loop;
    int lfd;
    co_conn_handler handler;
    void *arg;
    co_server_opts opts;
    co_task *acceptor;
    co__list conns;
    size_t nconns;
    bool aborting;          /* ABORT_CLIENTS: connections end with co_stream_abort */
    co_event room;          /* set while nconns < max_conns */
    int spare;              /* open on /dev/null, closed to make room (see the top); -1: none */
    /* accept errors since the last report (at most one a second) */
    bool reported;          /* last_report is set */
    int64_t last_report;    /* co_now() of the last report */
    size_t nerrors, nshed;  /* failed accepts, connections closed unserved */
};

/* Most pending connections one shortage closes in one go (a flood must
 * not hold the loop). */
#define CO__SHED_MAX 1024

static void *co__conn_main(void *arg) {
    co__conn *c = arg;
    co_server *srv = c->srv;
    /* TLS: the handshake runs in the connection's task, never in the accept
     * loop; a client that fails it is dropped without reaching the handler */
    bool ok = !srv->opts.tls || co_stream_start_tls(c->s, srv->opts.tls, NULL) == 0;
    if (ok) srv->handler(c->s, srv->arg);
    if (srv->aborting || !ok) co_stream_abort(c->s);
    else co_stream_close(c->s); /* flushes what the handler wrote, unless cancelled */
    c->s = NULL;
    co__list_remove(&c->link);
    srv->nconns--;
    co_event_set(&srv->room);
    co_task_release(c->task);
    free(c);
    return NULL;
}

/* Out of fds: closes the spare, accepts and closes the pending
 * connections, reopens the spare (see the top). How many it closed. */
static size_t co__server_shed(co_server *srv) {
    if (srv->spare < 0) return 0;
    close(srv->spare);
    srv->spare = -1;
    size_t n = 0;
    while (n < CO__SHED_MAX) {
        struct pollfd p = {.fd = srv->lfd, .events = POLLIN};
        if (poll(&p, 1, 0) != 1) break; /* never block, even on a blocking lfd */
        int c = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            break;
        }
        close(c);
        n++;
    }
    srv->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return n;
}

/* An accept failed with rc (co_io_error() tells): report it, at most once
 * a second, with the count of failures and shed connections meanwhile. */
static void co__server_complain(co_server *srv, size_t shed) {
    srv->nerrors++;
    srv->nshed += shed;
    int64_t now = co_now();
    if (srv->reported && now - srv->last_report < 1000000000) return;
    co__report(srv->loop, "server on port %d: %s (%zu failed accepts, %zu connections closed unserved for "
                          "want of file descriptors, since the last report)",
               co_sock_port(srv->lfd), co_io_error(), srv->nerrors, srv->nshed);
    srv->reported = true;
    srv->last_report = now;
    srv->nerrors = srv->nshed = 0;
}

static void *co__accept_main(void *arg) {
    co_server *srv = arg;
    for (;;) {
        if (srv->opts.max_conns && srv->nconns >= srv->opts.max_conns) {
            co_event_clear(&srv->room);
            if (co_event_wait(&srv->room) < 0) break;
            continue;
        }
        int fd;
        int rc = co_accept(srv->lfd, &fd, NULL, NULL);
        if (rc == -ECANCELED) break;
        if (rc < 0) {
            /* out of fds: make room and close the pending connections;
             * otherwise (memory, a fault, no spare) back off; go on */
            bool nofd = rc == -EMFILE || rc == -ENFILE;
            bool had_spare = srv->spare >= 0;
            size_t shed = nofd ? co__server_shed(srv) : 0;
            co__server_complain(srv, shed);
            /* accept fails for want of an fd even with an empty backlog:
             * wait for the next connection before trying again */
            if (nofd && had_spare) rc = co_wait_fd(srv->lfd, CO_READ, INFINITY);
            else rc = co_sleep(nofd ? 0.1 : 0.01);
            if (rc == -ECANCELED) break;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        co__conn *c = calloc(1, sizeof *c);
        if (!c || co_stream_open(fd, &srv->opts.stream, &c->s) < 0) {
            free(c);
            co_close(fd);
            continue;
        }
        c->srv = srv;
        c->task = co_spawn(co__conn_main, c);
        if (!c->task) {
            co_stream_abort(c->s);
            free(c);
            continue;
        }
        co__list_append(&srv->conns, &c->link);
        srv->nconns++;
    }
    return NULL;
}

int co_server_start(int lfd, co_conn_handler handler, void *arg, const co_server_opts *opts, co_server **out) {
    if (lfd < 0 || !handler || !out) return -EINVAL;
    co_loop *L = co__tls_loop;
    if (!L) return -CO_ENOLOOP;
    if (!co__on_loop_thread(L)) return co__wrongloop(L, "co_server_start");
    co_server *srv = calloc(1, sizeof *srv);
    if (!srv) return -ENOMEM;
    srv->loop = L;
    srv->lfd = lfd;
    srv->handler = handler;
    srv->arg = arg;
    srv->spare = open("/dev/null", O_RDONLY | O_CLOEXEC); /* -1: no trick, back off instead */
    if (opts) srv->opts = *opts;
    co_tls_ctx_retain(srv->opts.tls); /* the caller may free its context now */
    co__list_init(&srv->conns);
    int rc = co_event_init(&srv->room);
    if (rc == 0) {
        srv->acceptor = co_spawn(co__accept_main, srv);
        if (!srv->acceptor) rc = -errno;
    }
    if (rc) {
        co_event_destroy(&srv->room);
        co_tls_ctx_free(srv->opts.tls);
        if (srv->spare >= 0) close(srv->spare);
        free(srv);
        return rc;
    }
    co_task_set_name(srv->acceptor, "server-accept");
    *out = srv;
    return 0;
}

int co_server_start_tcp(const char *host, const char *port, co_conn_handler handler, void *arg,
                        const co_server_opts *opts, co_server **out) {
    int fd;
    int rc = co_tcp_listen(host, port, NULL, &fd);
    if (rc) return rc;
    rc = co_server_start(fd, handler, arg, opts, out);
    if (rc) co_close(fd);
    return rc;
}

size_t co_server_nconns(const co_server *srv) { return srv ? srv->nconns : 0; }
int co_server_port(const co_server *srv) { return srv ? co_sock_port(srv->lfd) : 0; }

int co_server_close(co_server *srv, int mode) {
    if (!srv) return -EINVAL;
    co_task *self;
    int rc = co__can_suspend(&self);
    if (rc == -CO_ENOTASK) return rc;
    /* stop accepting: the acceptor waits in accept (or for room) */
    co_cancel(srv->acceptor, "server closing");
    bool cancelled = rc == -ECANCELED;
    while (!co_task_done(srv->acceptor)) {
        co_scope sh;
        co_scope_enter(&sh, CO_FOREVER, CO_SHIELD); /* the cleanup runs to its end */
        co_join(srv->acceptor, NULL);
        co_scope_exit(&sh);
    }
    co_task_release(srv->acceptor);
    co_fd_forget(srv->lfd);
    close(srv->lfd);
    srv->lfd = -1;
    if (mode == CO_SERVER_ABORT_CLIENTS) srv->aborting = true;
    while (!co__list_empty(&srv->conns)) {
        co__conn *c = co__container_of(srv->conns.next, co__conn, link);
        co_task *t = c->task;
        co_task_retain(t);
        if (mode != CO_SERVER_WAIT || cancelled) co_cancel(t, "server closing");
        int jr = co_join(t, NULL);
        if (jr == -ECANCELED && co_cancelled() && !cancelled) {
            /* the closer itself was cancelled: cancel the clients, finish under a shield */
            cancelled = true;
            srv->aborting = srv->aborting || mode == CO_SERVER_ABORT_CLIENTS;
        }
        if (cancelled && !co_task_done(t)) {
            co_cancel(t, "server closing");
            co_scope sh;
            co_scope_enter(&sh, CO_FOREVER, CO_SHIELD);
            co_join(t, NULL);
            co_scope_exit(&sh);
        }
        co_task_release(t);
    }
    co_event_destroy(&srv->room);
    co_tls_ctx_free(srv->opts.tls);
    if (srv->spare >= 0) close(srv->spare);
    free(srv);
    return cancelled ? -ECANCELED : 0;
}
