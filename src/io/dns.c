/* dns.c — getaddrinfo on the thread pool (asyncio and libuv do the same:
 * the system resolver blocks). Numeric hosts are answered in place. A
 * cancelled lookup releases its task at once; the job finishes on its
 * thread and its answer is freed by the future's destructor. */
#define _GNU_SOURCE
#include <netdb.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "corio/thread.h"

typedef struct co__dns_job {
    char *host, *port;
    struct addrinfo hints;
    struct addrinfo *res;
    int gai; /* getaddrinfo's return */
} co__dns_job;

static void co__dns_free(void *p) {
    co__dns_job *j = p;
    if (!j) return;
    if (j->res) freeaddrinfo(j->res);
    free(j->host);
    free(j->port);
    free(j);
}

static void *co__dns_run(void *arg) {
    co__dns_job *j = arg;
    if (!co_blocking_cancelled()) j->gai = getaddrinfo(j->host, j->port, &j->hints, &j->res);
    else j->gai = EAI_AGAIN;
    return j;
}

static int co__gai_err(int gai, int sys) {
    switch (gai) {
    case EAI_NONAME: case EAI_NODATA: return -ENOENT;
    case EAI_AGAIN: return -EAGAIN;
    case EAI_MEMORY: return -ENOMEM;
    case EAI_FAMILY: case EAI_ADDRFAMILY: return -EAFNOSUPPORT;
    case EAI_BADFLAGS: case EAI_SERVICE: case EAI_SOCKTYPE: return -EINVAL;
    case EAI_SYSTEM: return sys ? -sys : -EIO;
    default: return -EIO;
    }
}

static int co__dns_fail(int gai, int sys, const char *host, const char *port) {
    return co__io_fail(co__gai_err(gai, sys), "cannot resolve %s:%s: %s", host ? host : "*",
                       port ? port : "*", gai == EAI_SYSTEM ? strerror(sys) : gai_strerror(gai));
}

int co_getaddrinfo(const char *host, const char *port, const struct addrinfo *hints,
                   struct addrinfo **res) {
    if (!res || (!host && !port)) return -EINVAL;
    *res = NULL;
    struct addrinfo h = {0};
    if (hints) h = *hints;
    /* numeric (or no) host: no resolver, no thread, no task needed */
    struct addrinfo hn = h;
    hn.ai_flags |= AI_NUMERICHOST;
    int gai = getaddrinfo(host, port, &hn, res);
    if (gai == 0) return 0;
    if (!host || gai != EAI_NONAME) return co__dns_fail(gai, errno, host, port);
    co__dns_job *j = calloc(1, sizeof *j);
    if (!j || !(j->host = strdup(host)) || (port && !(j->port = strdup(port)))) {
        co__dns_free(j);
        return -ENOMEM;
    }
    j->hints = h;
    co_tsfuture *f = co_pool_submit_ex(NULL, co__dns_run, j, co__dns_free);
    if (!f) {
        int err = -errno;
        co__dns_free(j);
        return err;
    }
    void *out = NULL;
    int rc = co_tsfuture_wait(f, CO_FOREVER, &out);
    if (rc) {
        /* Cancelled (or the pool shut down). A job still queued is taken
         * out and never runs: j is ours to free. One that runs or ran
         * hands j to the future, whose destructor frees it. */
        if (co_tsfuture_state(f) < CO_DONE) co_tsfuture_cancel(f);
        bool never_ran = co_tsfuture_state(f) == CO_CANCELLED;
        co_tsfuture_release(f);
        if (never_ran) co__dns_free(j);
        return co__io_fail(rc, "resolving %s: %s", host, co_strerror(rc));
    }
    co_tsfuture_release(f); /* read: the value (j) is ours */
    if (j->gai) {
        rc = co__dns_fail(j->gai, 0, host, port);
        co__dns_free(j);
        return rc;
    }
    *res = j->res;
    j->res = NULL;
    co__dns_free(j);
    return 0;
}

void co_freeaddrinfo(struct addrinfo *res) {
    if (res) freeaddrinfo(res);
}
