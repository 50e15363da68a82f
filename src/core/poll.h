/* poll.h — the poll backend interface (epoll now: poll_epoll.c; io_uring
 * later behind the same calls). Loop-thread only. */
#ifndef CO_CORE_POLL_H
#define CO_CORE_POLL_H

#include <stdint.h>

/* ET (registration only): edge-triggered, reported once per change. */
enum { CO__POLL_IN = 1, CO__POLL_OUT = 2, CO__POLL_ERR = 4, CO__POLL_HUP = 8, CO__POLL_ET = 16,
       CO__POLL_RDHUP = 32 /* the peer finished sending (reported, never asked for) */ };

typedef struct co__poll {
    int fd;
} co__poll;

typedef struct co__pevent {
    uint32_t events; /* CO__POLL_* */
    void *data;
} co__pevent;

int co__poll_open(co__poll *p);                 /* 0 or -errno */
void co__poll_close(co__poll *p);
int co__poll_add(co__poll *p, int fd, uint32_t events, void *data);
int co__poll_mod(co__poll *p, int fd, uint32_t events, void *data);
int co__poll_del(co__poll *p, int fd);
/* Waits up to timeout_ns (<0: forever, 0: just look). Returns the number of
 * events stored in out (0 on timeout or EINTR) or -errno. */
int co__poll_wait(co__poll *p, int64_t timeout_ns, co__pevent *out, int max);

#endif
