/* bind.c — which loop a primitive belongs to, and the check every call of
 * src/sync makes first: the caller must run on that loop's thread, with
 * that loop current (so a task of another loop, or a plain thread, is told
 * at once instead of corrupting wait lists that are not thread-safe).
 */
#include "internal.h"

int co__sync_check(co_loop **loop, const char *what) {
    co_loop *mine = co__tls_loop, *L = *loop;
    if (co__unlikely(!L)) {
        if (!mine) return -CO_ENOLOOP;
        *loop = L = mine; /* initialised where no loop was current: first user's loop */
    }
    if (co__unlikely(mine != L || !co__on_loop_thread(L))) return co__wrongloop(L, what);
    return 0;
}

int co__sync_task(co_loop **loop, const char *what, co_task **t) {
    co_loop *mine = co__tls_loop, *L = *loop;
    if (co__unlikely(L && (mine != L || !co__on_loop_thread(L)))) return co__wrongloop(L, what);
    co_task *cur = mine ? mine->cur : NULL;
    if (co__unlikely(!cur)) return -CO_ENOTASK;
    if (!L) *loop = mine;
    *t = cur;
    return 0;
}
