/* server.c — asyncio.start_server for corio: an accept task spawning one
 * task per connection, and a close that stops accepting and then waits
 * for, cancels (close_clients) or aborts (abort_clients) the connections.
 * Loop thread.
 *
 * Ownership: the server owns the listening fd, its accept task and one
 * record per live connection (linked in `conns`); a connection task owns
 * its stream and frees its record when its handler returns.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
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
};

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
            /* out of fds or memory, or a fault: say so, back off, go on */
            co__report(srv->loop, "server on port %d: %s", co_sock_port(srv->lfd), co_io_error());
            if (co_sleep(rc == -EMFILE || rc == -ENFILE ? 0.1 : 0.01) < 0) break;
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
    free(srv);
    return cancelled ? -ECANCELED : 0;
}
