/* sock.c — sockets and plain fds from tasks (asyncio's loop.sock_*):
 * non-blocking calls that wait for readiness with the loop's edge-
 * triggered fd records (src/core/iowait.c), plus connecting and listening
 * by name. Loop thread, inside tasks.
 *
 * Every loop here calls the kernel first and waits only on EAGAIN. These
 * fds are the caller's (it may close one with close(2) and get the number
 * back for another file), so each wait re-arms the registration
 * (co__fd_wait_rearm: one epoll_ctl). Streams own their fds and skip that.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "corio/scope.h"

static const char *const co__opname[CO_FAULT_NOPS] = {"read from", "write to", "accept on", "connect to"};

char *co_sockaddr_str(const struct sockaddr *sa, socklen_t len, char *buf, size_t n) {
    if (!buf || n == 0) return buf;
    buf[0] = 0;
    if (!sa || len < sizeof(sa_family_t)) {
        snprintf(buf, n, "?");
        return buf;
    }
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)sa;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(buf, n, "%s:%u", host, ntohs(a->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(buf, n, "[%s]:%u", host, ntohs(a->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *a = (const void *)sa;
        size_t plen = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
        if (plen > sizeof a->sun_path) plen = sizeof a->sun_path;
        snprintf(buf, n, "%.*s", (int)strnlen(a->sun_path, plen), a->sun_path);
        if (!buf[0]) snprintf(buf, n, "unix socket");
    } else {
        snprintf(buf, n, "address family %d", sa->sa_family);
    }
    return buf;
}

/* What to call the other end of fd in a message: its peer address, else
 * "fd N". Only on error paths (it costs a system call). */
static const char *co__peer_name(int fd, char *buf, size_t n) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) return co_sockaddr_str((void *)&ss, len, buf, n);
    snprintf(buf, n, "fd %d", fd);
    return buf;
}

static int co__op_fail(int op, int fd, int err, bool injected) {
    char peer[128];
    return co__io_fail(err, "%s %s failed: %s%s", co__opname[op], co__peer_name(fd, peer, sizeof peer),
                       strerror(-err), injected ? " (injected fault)" : "");
}

/* The running task's loop, or an error (-CO_ENOTASK, -ECANCELED). */
static co_loop *co__io_loop(int *err) {
    co_task *t;
    *err = co__can_suspend(&t);
    return *err ? NULL : t->loop;
}

int co_socket(int domain, int type, int protocol, int *fd) {
    if (!fd) return -EINVAL;
    int s = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (s < 0) return co__io_fail(-errno, "socket(%d, %d, %d) failed: %s", domain, type, protocol, strerror(errno));
    *fd = s;
    return 0;
}

int co_connect(int fd, const struct sockaddr *addr, socklen_t len, double timeout) {
    int rc;
    co_loop *L = co__io_loop(&rc);
    if (!L) return rc;
    int64_t deadline;
    if (fd < 0 || !addr || co__deadline_in(L, timeout, &deadline)) return -EINVAL;
    char peer[128];
    if ((rc = co__fault(CO_FAULT_CONNECT)))
        return co__io_fail(rc, "connect to %s failed: %s (injected fault)", co_sockaddr_str(addr, len, peer, sizeof peer),
                           strerror(-rc));
    if (connect(fd, addr, len) == 0) return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return co__io_fail(-errno, "connect to %s failed: %s", co_sockaddr_str(addr, len, peer, sizeof peer),
                           strerror(errno));
    for (;;) {
        rc = co__fd_wait_rearm(L, fd, CO_WRITE, deadline);
        if (rc < 0) {
            co_sockaddr_str(addr, len, peer, sizeof peer);
            if (rc == -ETIMEDOUT) return co__io_fail(rc, "connect to %s timed out after %g s", peer, timeout);
            return co__io_fail(rc, "connect to %s: %s", peer, co_strerror(rc));
        }
        int err = 0;
        socklen_t elen = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) err = errno;
        if (err == 0) return 0;
        if (err != EINPROGRESS && err != EALREADY && err != EINTR)
            return co__io_fail(-err, "connect to %s failed: %s", co_sockaddr_str(addr, len, peer, sizeof peer),
                               strerror(err));
    }
}

int co_accept(int lfd, int *fd, struct sockaddr_storage *peer, socklen_t *peerlen) {
    int rc;
    co_loop *L = co__io_loop(&rc);
    if (!L) return rc;
    if (lfd < 0 || !fd) return -EINVAL;
    if ((rc = co__fault(CO_FAULT_ACCEPT))) return co__io_fail(rc, "accept on fd %d failed: %s (injected fault)", lfd, strerror(-rc));
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    for (;;) {
        len = sizeof ss;
        int c = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0) {
            *fd = c;
            if (peer) memcpy(peer, &ss, len < sizeof *peer ? len : sizeof *peer);
            if (peerlen) *peerlen = len;
            return 0;
        }
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EAGAIN) return co__io_fail(-errno, "accept on fd %d failed: %s", lfd, strerror(errno));
        if ((rc = co__fd_wait_rearm(L, lfd, CO_READ, CO__NO_DEADLINE)) < 0) return rc;
    }
}

/* Writes to pipes (and sockets written with write(2)) raise SIGPIPE when
 * the reader is gone, which kills the process by default. Python ignores
 * SIGPIPE at start-up for the same reason; corio does it the first time
 * such a write is made, and only if the program left SIGPIPE at its
 * default: the error then comes back as -EPIPE. Sockets use MSG_NOSIGNAL. */
static pthread_once_t co__sigpipe_once = PTHREAD_ONCE_INIT;
static void co__sigpipe_ignore_once(void) {
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL && !(old.sa_flags & SA_SIGINFO)) {
        struct sigaction ign = {.sa_handler = SIG_IGN};
        sigemptyset(&ign.sa_mask);
        sigaction(SIGPIPE, &ign, NULL);
    }
}
void co__sigpipe_ignore(void) { pthread_once(&co__sigpipe_once, co__sigpipe_ignore_once); }

static ssize_t co__write_nosig(int fd, const void *buf, size_t n, int flags, bool sock) {
    if (sock) return send(fd, buf, n, flags | MSG_NOSIGNAL);
    return write(fd, buf, n);
}

/* One read or write (op CO_FAULT_READ / _WRITE; sock: recv / send with
 * flags), waiting until the fd lets it move at least a byte. */
static ssize_t co__xfer(int op, int fd, void *buf, size_t n, int flags, bool sock) {
    int rc;
    co_loop *L = co__io_loop(&rc);
    if (!L) return rc;
    if (fd < 0 || (!buf && n)) return -EINVAL;
    if ((rc = co__fault(op))) return co__op_fail(op, fd, rc, true);
    bool rd = op == CO_FAULT_READ;
    for (;;) {
        ssize_t r = rd ? (sock ? recv(fd, buf, n, flags) : read(fd, buf, n)) : co__write_nosig(fd, buf, n, flags, sock);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno != EAGAIN) return co__op_fail(op, fd, -errno, false);
        if ((rc = co__fd_wait_rearm(L, fd, rd ? CO_READ : CO_WRITE, CO__NO_DEADLINE)) < 0) return rc;
    }
}

ssize_t co_recv(int fd, void *buf, size_t n, int flags) { return co__xfer(CO_FAULT_READ, fd, buf, n, flags, true); }
ssize_t co_read(int fd, void *buf, size_t n) { return co__xfer(CO_FAULT_READ, fd, buf, n, 0, false); }
static ssize_t co__write1(int fd, const void *buf, size_t n, int flags, bool sock) {
    return co__xfer(CO_FAULT_WRITE, fd, (void *)buf, n, flags, sock);
}

ssize_t co_send(int fd, const void *buf, size_t n, int flags) { return co__write1(fd, buf, n, flags, true); }
ssize_t co_write(int fd, const void *buf, size_t n) {
    co__sigpipe_ignore();
    return co__write1(fd, buf, n, 0, false);
}

static int co__write_all(int fd, const void *buf, size_t n, size_t *sent, bool sock) {
    size_t done = 0;
    int rc = 0;
    while (done < n) {
        ssize_t r = co__write1(fd, (const char *)buf + done, n - done, 0, sock);
        if (r < 0) {
            rc = (int)r;
            break;
        }
        done += (size_t)r;
    }
    if (sent) *sent = done;
    return rc;
}

int co_send_all(int fd, const void *buf, size_t n, size_t *sent) { return co__write_all(fd, buf, n, sent, true); }
int co_write_all(int fd, const void *buf, size_t n, size_t *sent) {
    co__sigpipe_ignore();
    return co__write_all(fd, buf, n, sent, false);
}

ssize_t co_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr_storage *from, socklen_t *fromlen) {
    int rc;
    co_loop *L = co__io_loop(&rc);
    if (!L) return rc;
    if (fd < 0 || (!buf && n)) return -EINVAL;
    if ((rc = co__fault(CO_FAULT_READ))) return co__op_fail(CO_FAULT_READ, fd, rc, true);
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        ssize_t r = recvfrom(fd, buf, n, flags, (struct sockaddr *)&ss, &len);
        if (r >= 0) {
            if (from) memcpy(from, &ss, len < sizeof *from ? len : sizeof *from);
            if (fromlen) *fromlen = len;
            return r;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) return co__op_fail(CO_FAULT_READ, fd, -errno, false);
        if ((rc = co__fd_wait_rearm(L, fd, CO_READ, CO__NO_DEADLINE)) < 0) return rc;
    }
}

ssize_t co_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *to, socklen_t tolen) {
    int rc;
    co_loop *L = co__io_loop(&rc);
    if (!L) return rc;
    if (fd < 0 || (!buf && n)) return -EINVAL;
    char peer[128];
    if ((rc = co__fault(CO_FAULT_WRITE)))
        return co__io_fail(rc, "send to %s failed: %s (injected fault)", co_sockaddr_str(to, tolen, peer, sizeof peer),
                           strerror(-rc));
    for (;;) {
        ssize_t r = sendto(fd, buf, n, flags | MSG_NOSIGNAL, to, tolen);
        if (r >= 0) return r;
        if (errno == EINTR) continue;
        if (errno != EAGAIN)
            return co__io_fail(-errno, "send to %s failed: %s", to ? co_sockaddr_str(to, tolen, peer, sizeof peer) : "peer",
                               strerror(errno));
        if ((rc = co__fd_wait_rearm(L, fd, CO_WRITE, CO__NO_DEADLINE)) < 0) return rc;
    }
}

int co_sock_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) return 0;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

/* ---- by name -------------------------------------------------------------------------- */

static void co__nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int co_tcp_connect(const char *host, const char *port, const co_connect_opts *opts, int *fd) {
    if (!host || !port || !fd) return -EINVAL;
    co_connect_opts o = {0};
    if (opts) o = *opts;
    double attempt = o.attempt_timeout == 0 ? 10.0 : o.attempt_timeout;
    co_scope sc;
    bool scoped = o.timeout != 0 && !isinf(o.timeout); /* 0: none (the default) */
    if (scoped) {
        int rc = co_scope_enter(&sc, o.timeout, CO_FAIL_AFTER);
        if (rc) return rc;
    }
    struct addrinfo hints = {.ai_family = o.family, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    struct addrinfo *res = NULL;
    int rc = co_getaddrinfo(host, port, &hints, &res);
    char why[384] = ""; /* each attempt's sentence */
    size_t wlen = 0;
    int tries = 0;
    int s = -1;
    for (struct addrinfo *ai = rc ? NULL : res; ai; ai = ai->ai_next) {
        if ((rc = co_socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol, &s))) break;
        if (o.local_host) {
            struct addrinfo lh = {.ai_family = ai->ai_family, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
            struct addrinfo *lr = NULL;
            rc = co_getaddrinfo(o.local_host, NULL, &lh, &lr);
            if (rc == 0 && bind(s, lr->ai_addr, lr->ai_addrlen) < 0)
                rc = co__io_fail(-errno, "bind to %s failed: %s", o.local_host, strerror(errno));
            co_freeaddrinfo(lr);
        }
        if (rc == 0) rc = co_connect(s, ai->ai_addr, ai->ai_addrlen, attempt);
        if (rc == 0) break;
        tries++;
        if (wlen < sizeof why) wlen += (size_t)snprintf(why + wlen, sizeof why - wlen, "%s%s", wlen ? "; " : "", co_io_error());
        co_close(s);
        s = -1;
        if (rc == -ECANCELED || co_cancelled()) break; /* cancelled (or the whole timeout): no more tries */
    }
    co_freeaddrinfo(res);
    if (scoped) {
        int src = co_scope_exit(&sc);
        if (src == -ETIMEDOUT && s < 0) {
            rc = co__io_fail(-ETIMEDOUT, "connect to %s:%s timed out after %g s%s%s", host, port, o.timeout,
                             wlen ? ": " : "", why);
        }
    }
    if (s < 0) {
        if (rc == 0) rc = -ECONNREFUSED;
        if (tries > 1 && rc != -ETIMEDOUT)
            co__io_fail(rc, "connect to %s:%s failed, %d addresses tried: %s", host, port, tries, why);
        return rc;
    }
    co__nodelay(s);
    *fd = s;
    return 0;
}

static int co__listen_on(const struct sockaddr *sa, socklen_t len, const co_listen_opts *o, int *fd) {
    int s;
    int rc = co_socket(sa->sa_family, SOCK_STREAM, 0, &s);
    if (rc) return rc;
    int one = 1;
    if (sa->sa_family != AF_UNIX) setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (o->reuse_port) setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (sa->sa_family == AF_INET6) {
        int v6 = o->v6_only ? 1 : 0;
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6, sizeof v6);
    }
    char name[128];
    if (bind(s, sa, len) < 0 || listen(s, o->backlog > 0 ? o->backlog : SOMAXCONN) < 0) {
        rc = co__io_fail(-errno, "listen on %s failed: %s", co_sockaddr_str(sa, len, name, sizeof name), strerror(errno));
        co_close(s);
        return rc;
    }
    *fd = s;
    return 0;
}

int co_tcp_listen(const char *host, const char *port, const co_listen_opts *opts, int *fd) {
    if (!fd) return -EINVAL;
    co_listen_opts o = {0};
    if (opts) o = *opts;
    if (!port) port = "0";
    if (!host) { /* every address: [::] taking IPv4 too, else 0.0.0.0 */
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
        struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
        char *end;
        long p = strtol(port, &end, 10);
        if (*end || p < 0 || p > 65535) {
            struct addrinfo h = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
            struct addrinfo *r = NULL;
            int rc = co_getaddrinfo(NULL, port, &h, &r);
            if (rc) return rc;
            p = r->ai_family == AF_INET ? ntohs(((struct sockaddr_in *)r->ai_addr)->sin_port)
                                        : ntohs(((struct sockaddr_in6 *)r->ai_addr)->sin6_port);
            co_freeaddrinfo(r);
        }
        a6.sin6_port = a4.sin_port = htons((uint16_t)p);
        if (o.family != AF_INET && co__listen_on((void *)&a6, sizeof a6, &o, fd) == 0) return 0;
        return co__listen_on((void *)&a4, sizeof a4, &o, fd);
    }
    struct addrinfo h = {.ai_family = o.family, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = co_getaddrinfo(host, port, &h, &res);
    if (rc) return rc;
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        if ((rc = co__listen_on(ai->ai_addr, ai->ai_addrlen, &o, fd)) == 0) break;
    co_freeaddrinfo(res);
    return rc;
}

static int co__unix_addr(const char *path, struct sockaddr_un *a, socklen_t *len) {
    if (!path) return -EINVAL;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof a->sun_path)
        return co__io_fail(-ENAMETOOLONG, "unix socket path too long (%zu bytes, at most %zu)", n,
                           sizeof a->sun_path - 1);
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    memcpy(a->sun_path, path, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

int co_unix_connect(const char *path, double timeout, int *fd) {
    struct sockaddr_un a;
    socklen_t len;
    int rc = co__unix_addr(path, &a, &len);
    if (rc) return rc;
    if (!fd) return -EINVAL;
    int s;
    if ((rc = co_socket(AF_UNIX, SOCK_STREAM, 0, &s))) return rc;
    if ((rc = co_connect(s, (struct sockaddr *)&a, len, timeout))) {
        co_close(s);
        return rc;
    }
    *fd = s;
    return 0;
}

int co_unix_listen(const char *path, const co_listen_opts *opts, int *fd) {
    struct sockaddr_un a;
    socklen_t len;
    int rc = co__unix_addr(path, &a, &len);
    if (rc) return rc;
    if (!fd) return -EINVAL;
    co_listen_opts o = {0};
    if (opts) o = *opts;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path); /* a stale socket file */
    return co__listen_on((struct sockaddr *)&a, len, &o, fd);
}

int co_udp_bind(const char *host, const char *port, int family, int *fd) {
    if (!fd) return -EINVAL;
    struct addrinfo h = {.ai_family = family, .ai_socktype = SOCK_DGRAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = co_getaddrinfo(host, port ? port : "0", &h, &res);
    if (rc) return rc;
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int s;
        if ((rc = co_socket(ai->ai_family, SOCK_DGRAM, 0, &s))) continue;
        if (bind(s, ai->ai_addr, ai->ai_addrlen) == 0) {
            *fd = s;
            rc = 0;
            break;
        }
        char name[128];
        rc = co__io_fail(-errno, "bind to %s failed: %s", co_sockaddr_str(ai->ai_addr, ai->ai_addrlen, name, sizeof name),
                         strerror(errno));
        co_close(s);
    }
    co_freeaddrinfo(res);
    return rc;
}
