/* procpool_worker.c — the worker side of the process pool: the function
 * registry, and the constructor that turns a freshly spawned copy of the
 * program into a worker before main() runs.
 *
 * A worker is started by posix_spawn of /proc/self/exe with argv[1]
 * CO__PP_ARGV1 and CORIO_PROCPOOL_WORKER=<fd>:<parent pid> in its
 * environment. Both together make it a worker: one whose parent is gone
 * by the time it looks exits, and never runs main(). The
 * constructor below runs after every prioritised constructor of the
 * program (CO_PROCPOOL_FN registers at priority 200, and the linker puts
 * all prioritised constructors first), sees the variable, and serves jobs
 * on fd 3 until EOF, then _exit(0)s: the program's main() never runs, and
 * since the process image is new, no lock, thread or buffer of the
 * (possibly multithreaded) parent exists in it.
 *
 * The worker is single-threaded and uses blocking I/O; everything here
 * except co_procpool_register / co__pp_lookup runs only in a worker. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <fcntl.h>
#include <signal.h>

#include "procpool.h"

/* ---- registry -----------------------------------------------------------------
 * Filled by constructors only (single-threaded, before main), read-only
 * afterwards, so readers need no lock. ctors_done is set by the worker
 * constructor, which runs after every registration constructor. */
typedef struct co__pp_reg {
    struct co__pp_reg *next;
    co_procpool_fn fn;
    char name[];
} co__pp_reg;

static co__pp_reg *registry;
static bool ctors_done;

bool co__pp_name_ok(const char *name) {
    if (!name || !*name) return false;
    size_t n = 0;
    for (const char *c = name; *c; c++, n++) {
        bool alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_';
        if (!alpha && !(n > 0 && *c >= '0' && *c <= '9')) return false;
    }
    return n <= CO_PROCPOOL_MAX_NAME;
}

int co_procpool_register(const char *name, co_procpool_fn fn) {
    if (!co__pp_name_ok(name) || !fn) return -EINVAL;
    if (ctors_done) return -CO_EINVALSTATE;
    for (co__pp_reg *r = registry; r; r = r->next)
        if (strcmp(r->name, name) == 0) return r->fn == fn ? 0 : -EEXIST;
    size_t len = strlen(name);
    co__pp_reg *r = malloc(sizeof *r + len + 1);
    if (!r) return -ENOMEM;
    memcpy(r->name, name, len + 1);
    r->fn = fn;
    r->next = registry;
    registry = r;
    return 0;
}

/* Only functions of the main program may be named through dlsym: a name
 * that happens to match a libc function (exit, free) must not be called
 * with a job's arguments. glibc gives the main program an empty l_name. */
static bool in_main_program(void *sym) {
    Dl_info di;
    struct link_map *lm = NULL;
    if (!dladdr1(sym, &di, (void **)&lm, RTLD_DL_LINKMAP) || !lm) return false;
    return lm->l_name && lm->l_name[0] == 0;
}

co_procpool_fn co__pp_lookup(const char *name) {
    for (co__pp_reg *r = registry; r; r = r->next)
        if (strcmp(r->name, name) == 0) return r->fn;
    void *sym = dlsym(RTLD_DEFAULT, name);
    if (!sym || !in_main_program(sym)) return NULL;
    co_procpool_fn fn;
    memcpy(&fn, &sym, sizeof fn); /* object to function pointer, as POSIX allows */
    return fn;
}

/* ---- the worker ------------------------------------------------------------ */

static bool in_worker;
static char fail_msg[CO__PP_MSG_MAX + 1];

int co_procpool_fail(int err, const char *fmt, ...) {
    if (!in_worker || !fmt) return err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fail_msg, sizeof fail_msg, fmt, ap);
    va_end(ap);
    return err;
}

/* Reads exactly n bytes; false on EOF or error (the parent is gone or
 * closed the pool: either way the worker's life is over). */
static bool read_all(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static void send_reply(int fd, uint32_t item, int err, const char *msg, const void *out,
                       size_t outlen) {
    size_t ml = msg ? strlen(msg) : 0;
    if (ml > CO__PP_MSG_MAX) ml = CO__PP_MSG_MAX;
    co__pp_rep h = {CO__PP_REP_MAGIC, err, item, (uint32_t)ml, outlen};
    struct iovec iov[3] = {{&h, sizeof h}, {(void *)msg, ml}, {(void *)out, outlen}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 3};
    while (m.msg_iovlen) {
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) _exit(0); /* parent gone */
        size_t left = (size_t)w;
        while (m.msg_iovlen && left >= m.msg_iov->iov_len) {
            left -= m.msg_iov->iov_len;
            m.msg_iov++;
            m.msg_iovlen--;
        }
        if (m.msg_iovlen) {
            m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + left;
            m.msg_iov->iov_len -= left;
        }
    }
}

static void run_item(int fd, co_procpool_fn fn, const char *name, uint32_t item, const void *in,
                     size_t inlen) {
    void *out = NULL;
    size_t outlen = 0;
    fail_msg[0] = 0;
    int rc = fn(in, inlen, &out, &outlen);
    fflush(NULL); /* what the job printed must not die with the process */
    if (rc > 0) rc = -EINVAL;
    if (rc < 0) {
        char msg[CO__PP_MSG_MAX + 1];
        if (fail_msg[0]) snprintf(msg, sizeof msg, "%s", fail_msg);
        else snprintf(msg, sizeof msg, "%s failed: %s", name, co_strerror(rc));
        free(out);
        send_reply(fd, item, rc, msg, NULL, 0);
        return;
    }
    if (!out) outlen = 0;
    if (outlen > CO_PROCPOOL_MAX_PAYLOAD) {
        char msg[CO__PP_MSG_MAX + 1];
        snprintf(msg, sizeof msg, "%s returned %zu bytes, over the %zu-byte limit", name, outlen,
                 CO_PROCPOOL_MAX_PAYLOAD);
        free(out);
        send_reply(fd, item, -E2BIG, msg, NULL, 0);
        return;
    }
    send_reply(fd, item, 0, NULL, out, outlen);
    free(out);
}

static void serve_job(int fd, char *body, const co__pp_req *h) {
    char name[CO_PROCPOOL_MAX_NAME + 1];
    if (h->namelen > CO_PROCPOOL_MAX_NAME || h->namelen > h->total) _exit(2);
    memcpy(name, body, h->namelen);
    name[h->namelen] = 0;
    co_procpool_fn fn = co__pp_name_ok(name) ? co__pp_lookup(name) : NULL;
    char *p = body + h->namelen, *end = body + h->total;
    for (uint32_t i = 0; i < h->nitems; i++) {
        uint64_t len;
        if ((size_t)(end - p) < sizeof len) _exit(2);
        memcpy(&len, p, sizeof len);
        p += sizeof len;
        if ((uint64_t)(end - p) < len) _exit(2);
        if (!fn) {
            char msg[CO__PP_MSG_MAX + 1];
            snprintf(msg, sizeof msg, "no job function named '%s' in the worker", name);
            send_reply(fd, i, -ENOENT, msg, NULL, 0);
        } else {
            run_item(fd, fn, name, i, p, (size_t)len);
        }
        p += len;
    }
}

static void __attribute__((noreturn)) worker_main(int fd) {
    in_worker = true;
    for (;;) {
        co__pp_req h;
        if (!read_all(fd, &h, sizeof h)) _exit(0); /* EOF: the pool closed */
        if (h.magic != CO__PP_REQ_MAGIC) _exit(2);
        /* +1: a zero-length body still gets a valid pointer */
        char *body = malloc((size_t)h.total + 1);
        if (!body) _exit(3);
        if (!read_all(fd, body, (size_t)h.total)) _exit(0);
        serve_job(fd, body, &h);
        free(body);
    }
}

/* Was this process spawned as a worker? argv[1] says so; read from
 * /proc (a constructor gets no argv portably). */
static bool spawned_as_worker(void) {
    char buf[512];
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return false;
    buf[n] = 0;
    size_t a0 = strlen(buf);
    return (size_t)n > a0 + 1 && strcmp(buf + a0 + 1, CO__PP_ARGV1) == 0;
}

/* No priority: runs after every prioritised constructor (registrations),
 * in link order among the rest (libcorio.a comes after the program's
 * objects). See the file comment. */
__attribute__((constructor)) static void co__pp_worker_ctor(void) {
    ctors_done = true;
    const char *v = getenv(CO__PP_ENV);
    if (!v) return;
    int fd = -1;
    long ppid = 0;
    int ok = sscanf(v, "%d:%ld", &fd, &ppid) == 2;
    /* Not for our children's children: a job that runs another program
     * (or this one) must not turn it into a worker. */
    unsetenv(CO__PP_ENV);
    /* A stale variable inherited by some unrelated start of the program
     * (no worker argv): run main() normally. A worker never does: if its
     * pool is gone, or its start is broken, it exits. */
    if (!spawned_as_worker()) return;
    if (!ok || fd != CO__PP_FD || (long)getppid() != ppid) _exit(0);
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) _exit(0);
    /* A crash must end the process by its signal, which the pool reports:
     * sanitizer runtimes catch SEGV/BUS/FPE/ILL, print, and exit(1 or 66)
     * instead. And Ctrl-C (SIGINT to the whole process group) is the
     * parent's to handle: it cancels its tasks, and terminate or free
     * kills the workers. */
    static const int crash_sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP};
    for (size_t i = 0; i < sizeof crash_sigs / sizeof crash_sigs[0]; i++) signal(crash_sigs[i], SIG_DFL);
    signal(SIGINT, SIG_IGN);
    /* Die with the pool's manager thread (the spawner), even in a job that
     * never reads its socket again; then re-check the parent, which may
     * have gone before the prctl. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if ((long)getppid() != ppid) _exit(0);
    worker_main(fd);
}
