/* wrap.c — the one-call forms of asyncio's wait_for(coro, timeout) and
 * shield(coro): spawn fn(arg) already wrapped, so the result can be one
 * element of a gather. Built only on public calls (co_spawn, co_wait_for,
 * co_shield); loop thread only.
 *
 * co_spawn_wait_for runs a small outer task that spawns fn's task and
 * waits for it with co_wait_for, so cancelling the outer task cancels
 * fn's task and waits for its cleanup, and a timeout does the same and
 * ends the outer task with -ETIMEDOUT.
 */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

typedef struct co__wait_for_args {
    co_fn fn;
    void *arg;
    double timeout;
} co__wait_for_args;

static void *co__wait_for_body(void *p) {
    co__wait_for_args a = *(co__wait_for_args *)p;
    free(p); /* a task cancelled before it first ran still runs its body */
    if (co_cancelled()) return NULL; /* ends CANCELLED: fn never starts */
    co_task *inner = co_spawn(a.fn, a.arg);
    if (!inner) return co_fail(-errno, "co_spawn_wait_for: cannot spawn the task: %s", co_strerror(errno));
    void *v = NULL;
    int rc = co_wait_for(inner, a.timeout, &v);
    if (!co_task_done(inner)) co_cancel(inner, NULL); /* never left running unwatched */
    char name[128];
    if (rc == -ETIMEDOUT)
        co_fail(rc, "%s timed out after %g s", co__task_name_buf(inner, name, sizeof name), a.timeout);
    else if (rc)
        co_fail(rc, "%s", co_task_message(inner) ? co_task_message(inner) : co_strerror(rc));
    co_task_release(inner);
    return rc ? NULL : v;
}

co_task *co_spawn_wait_for(co_fn fn, void *arg, double timeout) {
    if (!fn || timeout != timeout) {
        errno = EINVAL;
        return NULL;
    }
    co__wait_for_args *a = malloc(sizeof *a);
    if (!a) {
        errno = ENOMEM;
        return NULL;
    }
    *a = (co__wait_for_args){fn, arg, timeout};
    co_task *t = co_spawn(co__wait_for_body, a);
    if (!t) free(a); /* errno from co_spawn */
    return t;
}

co_future *co_spawn_shield(co_fn fn, void *arg) {
    co_task *inner = co_spawn(fn, arg);
    if (!inner) return NULL;
    co_future *sh = co_shield(inner);
    if (!sh) {
        int err = errno;
        co_cancel(inner, NULL); /* nobody could ever read it */
        errno = err;
    }
    co_task_release(inner);
    return sh;
}
