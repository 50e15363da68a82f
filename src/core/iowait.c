/* iowait.c — tasks waiting for file descriptors (co_wait_fd and the I/O
 * layer's co__fd_wait). Loop thread only.
 *
 * Each fd a task ever waits on gets a record in the loop's table, indexed
 * by fd number, and is registered with the poll backend once, for both
 * directions, edge-triggered: no system call per wait on the hot path. An
 * edge sets bits in the record's `ready` mask and wakes the tasks waiting
 * for them; the I/O code clears a bit when the kernel says EAGAIN (the
 * edge-triggered rule: an edge is only reported again after the fd was
 * drained). The poll backend carries fd + 1 (never a pointer) as the
 * event's data, so an event for a record that was freed meanwhile finds
 * nothing rather than freed memory.
 *
 * co_wait_fd (and the public fd calls of io/sock.c) serve fds the caller
 * owns, which it may close and reuse without telling us, and whose
 * draining we may not see: it clears the bits it waits for and
 * re-arms the registration (EPOLL_CTL_MOD makes the kernel re-check the
 * fd and report it at once if it is ready): one system call per wait, and
 * a wait can never miss a state that was already there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define CO__POLL_BOTH (CO__POLL_IN | CO__POLL_OUT | CO__POLL_ET)

static co__iofd *co__fd_rec(co_loop *L, int fd, bool create) {
    if ((size_t)fd < L->nfds && L->fds[fd]) return L->fds[fd];
    if (!create) return NULL;
    if ((size_t)fd >= L->nfds) {
        size_t n = L->nfds ? L->nfds : 64;
        while (n <= (size_t)fd) n *= 2;
        co__iofd **a = realloc(L->fds, n * sizeof *a);
        if (!a) return NULL;
        memset(a + L->nfds, 0, (n - L->nfds) * sizeof *a);
        L->fds = a;
        L->nfds = n;
    }
    co__iofd *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->fd = fd;
    co__list_init(&r->waiters);
    L->fds[fd] = r;
    return r;
}

/* Registers r with the poll backend if it is not yet. 0 or -errno
 * (-EPERM: the fd cannot be polled, e.g. a regular file). */
static int co__fd_register(co_loop *L, co__iofd *r) {
    if (r->registered) return 0;
    int rc = co__poll_add(&L->poll, r->fd, CO__POLL_BOTH, (void *)(intptr_t)(r->fd + 1));
    if (rc == -EEXIST) /* an fd of this number was registered and closed unseen by us */
        rc = co__poll_mod(&L->poll, r->fd, CO__POLL_BOTH, (void *)(intptr_t)(r->fd + 1));
    if (rc == 0) {
        r->registered = true;
        L->io_regs++;
    }
    return rc;
}

co__iofd *co__fd_get(co_loop *L, int fd, int *err) {
    co__iofd *r = co__fd_rec(L, fd, true);
    if (!r) {
        *err = -ENOMEM;
        return NULL;
    }
    int rc = co__fd_register(L, r);
    if (rc) {
        if (co__list_empty(&r->waiters) && !r->hook) {
            L->fds[fd] = NULL;
            free(r);
        }
        *err = rc;
        return NULL;
    }
    return r;
}

static int co__pev_to_co(uint32_t ev) {
    int r = 0;
    if (ev & CO__POLL_IN) r |= CO_READ;
    if (ev & CO__POLL_OUT) r |= CO_WRITE;
    if (ev & (CO__POLL_ERR | CO__POLL_HUP)) r |= CO_READ | CO_WRITE; /* the next call reports it */
    return r;
}

void co__fd_event(co_loop *L, void *data, uint32_t pev) {
    int fd = (int)((intptr_t)data - 1);
    co__iofd *r = co__fd_rec(L, fd, false);
    if (!r) return;
    int ev = co__pev_to_co(pev);
    r->ready |= ev;
    if (pev & (CO__POLL_RDHUP | CO__POLL_HUP | CO__POLL_ERR)) r->ended = true;
    co__list_for_each_safe(it, tmp, &r->waiters) {
        co__iowaiter *w = co__container_of(it, co__iowaiter, link);
        if (!(w->events & ev)) continue;
        co__list_remove(&w->link);
        w->got = w->events & ev;
        co__wake(w->task, 0);
    }
    if (r->hook) r->hook(r->hook_arg, ev);
}

static bool co__iowaiter_done(const void *w) { return ((const co__iowaiter *)w)->got != 0; }

int co__fd_wait_rec(co_loop *L, co__iofd *r, int events, int64_t deadline) {
    if (r->ready & events) return r->ready & events;
    co_task *t;
    int rc = co__can_suspend(&t);
    if (rc) return rc;
    if (t->loop != L) return co__wrongloop(L, "co_wait_fd");
    co__iowaiter w = {.task = t, .events = events, .got = 0};
    co__list_append(&r->waiters, &w.link);
    L->io_waiters++;
    rc = co__wait(t, deadline, co__iowaiter_done, &w, 0);
    L->io_waiters--;
    if (rc == 0) return w.got; /* ready, or -EBADF: forgotten */
    co__list_remove(&w.link);
    return rc;
}

int co__fd_wait(co_loop *L, int fd, int events, int64_t deadline) {
    int err;
    co__iofd *r = co__fd_get(L, fd, &err);
    if (!r) return err;
    return co__fd_wait_rec(L, r, events, deadline);
}

void co__fd_clear(co_loop *L, int fd, int events) {
    co__iofd *r = co__fd_rec(L, fd, false);
    if (r) r->ready &= ~events;
}

int co__fd_set_hook(co_loop *L, int fd, void (*hook)(void *, int), void *arg) {
    int err;
    co__iofd *r = co__fd_get(L, fd, &err);
    if (!r) return err;
    r->hook = hook;
    r->hook_arg = arg;
    return 0;
}

/* live: the loop goes on (unregister, wake the waiters); otherwise it is
 * being freed and the waiters' stacks are gone. */
static void co__fd_drop(co_loop *L, co__iofd *r, bool live) {
    if (r->registered && live) co__poll_del(&L->poll, r->fd); /* EBADF if closed already: fine */
    if (r->registered) L->io_regs--;
    while (live && !co__list_empty(&r->waiters)) {
        co__iowaiter *w = co__container_of(co__list_pop_front(&r->waiters), co__iowaiter, link);
        w->got = -EBADF;
        co__wake(w->task, 0);
    }
    L->fds[r->fd] = NULL;
    free(r);
}

void co__fd_forget(co_loop *L, int fd) {
    co__iofd *r = fd >= 0 ? co__fd_rec(L, fd, false) : NULL;
    if (r) co__fd_drop(L, r, true);
}

void co__fd_fini(co_loop *L) {
    for (size_t i = 0; i < L->nfds; i++)
        if (L->fds[i]) co__fd_drop(L, L->fds[i], false);
    free(L->fds);
    L->fds = NULL;
    L->nfds = 0;
}

/* ---- the public primitive ----------------------------------------------------------- */

int co__fd_wait_rearm(co_loop *L, int fd, int events, int64_t deadline) {
    int rc;
    co__iofd *r = co__fd_rec(L, fd, false);
    if (r && r->registered) {
        /* re-arm: the kernel re-checks the fd (we cannot see its draining) */
        r->ready &= ~events;
        rc = co__poll_mod(&L->poll, fd, CO__POLL_BOTH, (void *)(intptr_t)(fd + 1));
        if (rc == -ENOENT) { /* closed and its number reused, unseen by us */
            r->registered = false;
            L->io_regs--;
            rc = co__fd_register(L, r);
        }
        if (rc) return rc;
    } else {
        if (fcntl(fd, F_GETFD) < 0) return -errno;
        r = co__fd_get(L, fd, &rc);
        if (!r) return rc;
        r->ready &= ~events; /* the registration reports the current state */
    }
    return co__fd_wait_rec(L, r, events, deadline);
}

/* co_wait_fd with a timeout that has expired: a poll. The readiness an
 * edge-triggered registration knows is stale for fds the caller drains
 * unseen, so ask the kernel. The events ready, or -ETIMEDOUT. */
static int co__fd_poll_now(int fd, int events) {
    struct pollfd p = {.fd = fd};
    if (events & CO_READ) p.events |= POLLIN;
    if (events & CO_WRITE) p.events |= POLLOUT;
    if (poll(&p, 1, 0) < 0) return -errno;
    if (p.revents & POLLNVAL) return -EBADF;
    int got = 0;
    if (p.revents & (POLLIN | POLLERR | POLLHUP)) got |= CO_READ;
    if (p.revents & (POLLOUT | POLLERR | POLLHUP)) got |= CO_WRITE;
    got &= events;
    return got ? got : -ETIMEDOUT;
}

int co_wait_fd(int fd, int events, double timeout) {
    co_task *t;
    int rc = co__can_suspend(&t);
    if (rc) return rc;
    events &= CO_READ | CO_WRITE;
    int64_t deadline;
    if (fd < 0 || !events || co__deadline_in(t->loop, timeout, &deadline)) return -EINVAL;
    if (deadline <= t->loop->now) return co__fd_poll_now(fd, events);
    return co__fd_wait_rearm(t->loop, fd, events, deadline);
}

int co_fd_forget(int fd) {
    if (fd < 0) return -EINVAL;
    co_loop *L = co__tls_loop;
    if (L && co__on_loop_thread(L)) co__fd_forget(L, fd);
    return 0;
}

int co_close(int fd) {
    if (fd < 0) return -EBADF;
    co_fd_forget(fd);
    return close(fd) < 0 ? -errno : 0;
}
