/* lock.h — a four-byte mutex on a Linux futex, for the thread-safe
 * futures: one per future, held for a few stores at a time.
 *
 * Why not pthread_mutex_t: a future lives for one job, and a pool job is
 * small enough to cross between cores in two cache lines only if its lock
 * is a word (pthread_mutex_t is 40 bytes, and its condition variable,
 * now a shared parking lot in tsfuture.c, was 48 more).
 *
 * The word is 0 (free), 1 (held) or 2 (held, and someone may sleep on
 * it): Drepper's "Futexes Are Tricky", mutex 2. The holder never sleeps
 * while holding it, so a short spin before sleeping usually wins.
 * ThreadSanitizer sees the acquire/release atomics, not the futex.
 */
#ifndef CO_THREAD_LOCK_H
#define CO_THREAD_LOCK_H

#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../arch/cpu.h"

typedef atomic_int co__lock;

#define CO__LOCK_INIT 0

static inline void co__futex(co__lock *l, int op, int val) {
    syscall(SYS_futex, (int *)l, op | FUTEX_PRIVATE_FLAG, val, NULL, NULL, 0);
}

static inline void co__lock_slow(co__lock *l) {
    for (int i = 0; i < 100; i++) {
        int c = 0;
        if (atomic_load_explicit(l, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(l, &c, 1, memory_order_acquire, memory_order_relaxed))
            return;
        co__cpu_relax();
    }
    /* from here on the word says 2 while we may sleep, so the holder's
     * release knows to wake someone */
    while (atomic_exchange_explicit(l, 2, memory_order_acquire) != 0) co__futex(l, FUTEX_WAIT, 2);
}

static inline void co__lock_acquire(co__lock *l) {
    int c = 0;
    if (__builtin_expect(atomic_compare_exchange_strong_explicit(l, &c, 1, memory_order_acquire,
                                                                 memory_order_relaxed),
                         1))
        return;
    co__lock_slow(l);
}

static inline void co__lock_release(co__lock *l) {
    if (__builtin_expect(atomic_exchange_explicit(l, 0, memory_order_release) == 2, 0))
        co__futex(l, FUTEX_WAKE, 1);
}

#endif
