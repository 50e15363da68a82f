/* wait.c — the one wait's out-of-line half: the public timeout rule turned
 * into deadlines, and the timer heap's arm/disarm for every timer of the
 * loop (tasks' waits, handles, scopes). The wait itself is inline in
 * wait.h; the rules are written there. Loop thread only.
 */
#include <errno.h>
#include <math.h>

#include "internal.h"

int co__deadline_in(co_loop *L, double timeout, int64_t *deadline) {
    if (isnan(timeout)) return -EINVAL;
    if (timeout > 0 && isinf(timeout)) {
        *deadline = CO__NO_DEADLINE;
        return 0;
    }
    co__loop_update_time(L);
    *deadline = timeout > 0 ? co__deadline_plus(L->now, co__sec_to_ns(timeout)) : L->now;
    return 0;
}

int co__deadline_at(double when, int64_t *deadline) {
    if (isnan(when)) return -EINVAL;
    if (when > 9.2e9) *deadline = CO__NO_DEADLINE; /* INFINITY too */
    else *deadline = co__sec_to_ns(when);
    return 0;
}

double co__deadline_left(co_loop *L, int64_t deadline) {
    if (deadline == CO__NO_DEADLINE) return INFINITY;
    co__loop_update_time(L);
    return deadline > L->now ? (double)(deadline - L->now) * 1e-9 : 0;
}

int co__timer_arm(co_loop *L, co__timer *tm, int64_t deadline) {
    return co__heap_add(&L->timers, tm, deadline);
}

bool co__timer_disarm(co_loop *L, co__timer *tm) { return co__heap_remove(&L->timers, tm); }
