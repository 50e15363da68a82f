/* poll_epoll.c — the epoll backend of poll.h. Uses epoll_pwait2 for
 * nanosecond timeouts where the kernel has it (5.11+), epoll_wait with the
 * timeout rounded up to a millisecond otherwise. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "poll.h"

static uint32_t co__to_epoll(uint32_t ev) {
    return (ev & CO__POLL_IN ? EPOLLIN | EPOLLRDHUP : 0) | (ev & CO__POLL_OUT ? EPOLLOUT : 0) |
           (ev & CO__POLL_ET ? EPOLLET : 0);
}

int co__poll_open(co__poll *p) {
    p->fd = epoll_create1(EPOLL_CLOEXEC);
    return p->fd < 0 ? -errno : 0;
}

void co__poll_close(co__poll *p) {
    if (p->fd >= 0) close(p->fd);
    p->fd = -1;
}

static int co__ctl(co__poll *p, int op, int fd, uint32_t events, void *data) {
    struct epoll_event ev = {.events = co__to_epoll(events), .data.ptr = data};
    return epoll_ctl(p->fd, op, fd, &ev) < 0 ? -errno : 0;
}

int co__poll_add(co__poll *p, int fd, uint32_t events, void *data) {
    return co__ctl(p, EPOLL_CTL_ADD, fd, events, data);
}
int co__poll_mod(co__poll *p, int fd, uint32_t events, void *data) {
    return co__ctl(p, EPOLL_CTL_MOD, fd, events, data);
}
int co__poll_del(co__poll *p, int fd) { return co__ctl(p, EPOLL_CTL_DEL, fd, 0, NULL); }

int co__poll_wait(co__poll *p, int64_t timeout_ns, co__pevent *out, int max) {
    static atomic_bool no_pwait2; /* any thread: set once, when the kernel lacks it */
    struct epoll_event evs[512];
    if (max > 512) max = 512;
    int n = -1;
    if (!no_pwait2 && timeout_ns > 0) {
        struct timespec ts = {.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
        n = epoll_pwait2(p->fd, evs, max, &ts, NULL);
        if (n < 0 && errno == ENOSYS) no_pwait2 = true;
    }
    if (n < 0 && (no_pwait2 || timeout_ns <= 0)) {
        int ms = timeout_ns < 0 ? -1
                 : timeout_ns > (int64_t)1000 * 1000 * 1000 * 3600
                     ? 3600 * 1000
                     : (int)((timeout_ns + 999999) / 1000000);
        n = epoll_wait(p->fd, evs, max, ms);
    }
    if (n < 0) return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        uint32_t e = evs[i].events, r = 0;
        if (e & (EPOLLIN | EPOLLRDHUP)) r |= CO__POLL_IN;
        if (e & EPOLLOUT) r |= CO__POLL_OUT;
        if (e & EPOLLERR) r |= CO__POLL_ERR;
        if (e & EPOLLHUP) r |= CO__POLL_HUP;
        if (e & EPOLLRDHUP) r |= CO__POLL_RDHUP;
        out[i].events = r;
        out[i].data = evs[i].data.ptr;
    }
    return n;
}
