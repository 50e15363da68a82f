/* wait.h — the one wait: how every blocking call of the library parks a
 * task, and how a public `double timeout` becomes the absolute deadline
 * that wait takes. Loop thread only. Included at the end of internal.h
 * (it needs the task and the loop declared there).
 *
 * A waiting task waits for three things at once (libdill's model: the
 * deadline is one more way to be woken): its completion, which the waker
 * records where the waiter can test it (a flag, a state, a counter) before
 * it co__wake()s the task; its deadline, on the task's own timer; and a
 * cancellation. On every wake-up, co__wait looks in this order:
 *   1. the completion is there          -> 0
 *   2. a cancellation is pending        -> -ECANCELED
 *   3. the deadline has passed          -> -ETIMEDOUT
 * and otherwise parks again (a wake code is only a hint).
 *
 * THE RACE RULE. A completion that happened is never thrown away. When a
 * completion and a cancel, or the deadline, land in the same loop turn, in
 * either order, the wait returns the completion; the cancel stays pending
 * (it is sticky) and the task's next suspension point reports it. Why
 * this and not "the cancel wins": by the time the task runs, the
 * completion was taken from someone — an item out of a queue, bytes out of
 * a socket, a permit, a lock, a job's result. Throwing it away loses data,
 * or makes every primitive put the thing back, which cannot be done for
 * bytes read or a job's side effects. Reporting it loses nothing: the
 * cancel is still delivered, one suspension point later.
 *
 * THE PUBLIC TIMEOUT RULE (asyncio's). A relative `timeout` in seconds:
 * `<= 0` (and -INFINITY) has already expired; CO_FOREVER (+INFINITY) is no
 * limit; NaN is -EINVAL; durations past the clock's range saturate to no
 * limit. An expired deadline still lets a completion that is already there
 * win: a poll, not a failure.
 */
#ifndef CO_CORE_WAIT_H
#define CO_CORE_WAIT_H

#include <math.h>

/* A deadline that never comes. */
#define CO__NO_DEADLINE INT64_MAX

/* Seconds to nanoseconds, rounded, clamped to +-INT64_MAX/2 so that adding
 * a clock value cannot overflow. NaN is the caller's to refuse. */
static inline int64_t co__sec_to_ns(double s) {
    if (s > 9.2e9) return INT64_MAX / 2;
    if (s < -9.2e9) return INT64_MIN / 2;
    return (int64_t)(s * 1e9 + (s >= 0 ? 0.5 : -0.5));
}

/* The deadline `ns` nanoseconds after `now`: <= 0 is `now` (expired), a
 * sum past the clock's range is CO__NO_DEADLINE. */
static inline int64_t co__deadline_plus(int64_t now, int64_t ns) {
    if (ns <= 0) return now;
    return ns >= CO__NO_DEADLINE - now ? CO__NO_DEADLINE : now + ns;
}

/* The public timeout rule, for a relative timeout: *deadline on L's clock
 * (refreshed first: "timeout from now", not from the turn's start).
 * 0, or -EINVAL for NaN. */
int co__deadline_in(co_loop *L, double timeout, int64_t *deadline);
/* The same for an absolute time on the co_time() scale (+INFINITY: none). */
int co__deadline_at(double when, int64_t *deadline);
/* Seconds left until deadline on L's clock (CO_FOREVER for none, 0 once
 * passed): for code that must hand a relative timeout to the kernel. */
double co__deadline_left(co_loop *L, int64_t deadline);

/* Arms / disarms a timer on L's heap: the only code that touches it. Arming
 * an armed timer moves it. 0 or -ENOMEM (growing the heap: rare). */
int co__timer_arm(co_loop *L, co__timer *tm, int64_t deadline);
/* Returns whether it was armed. */
bool co__timer_disarm(co_loop *L, co__timer *tm);

/* What a waiter tests: has its completion happened? */
typedef bool (*co__wait_done)(const void *arg);
enum {
    CO__WAIT_SHIELDED = 1, /* a cancellation does not end the wait (a cond
                              re-taking its mutex, a combinator letting its
                              children finish their cleanup) */
};

/* Parks the running task t (it registered with its waker first) until
 * done(arg) holds (0), a cancellation is pending (-ECANCELED, unless
 * CO__WAIT_SHIELDED), or the loop clock reaches deadline (-ETIMEDOUT), in
 * that order of precedence (see the race rule above); -ENOMEM if the
 * timer could not be armed. The caller unregisters from its waker when
 * the result is not 0. Inline so that each caller's `done` inlines. */
static inline int co__wait(co_task *t, int64_t deadline, co__wait_done done, const void *arg,
                           int flags) {
    co_loop *L = t->loop;
    int rc;
    bool armed = false;
    for (;;) {
        if (done(arg)) {
            rc = 0;
            break;
        }
        if (!(flags & CO__WAIT_SHIELDED) && co__cancel_pending(t)) {
            rc = -ECANCELED;
            break;
        }
        if (deadline != CO__NO_DEADLINE) {
            if (deadline <= L->now || (armed && t->timer.idx == CO__TIMER_IDLE)) {
                rc = -ETIMEDOUT;
                break;
            }
            if (!armed) {
                if ((rc = co__timer_arm(L, &t->timer, deadline))) break;
                armed = true;
            }
        }
        co__suspend(t);
    }
    if (armed) co__timer_disarm(L, &t->timer);
    return rc;
}

#endif
