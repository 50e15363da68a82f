/* test_parity.c — scenarios from CPython 3.11's own asyncio tests
 * (Lib/test/test_asyncio), written with corio's names: each test is named
 * for the CPython test it mirrors and asserts the event order asyncio
 * prints, or, where corio differs on purpose (docs/asyncio.md says why),
 * the order corio promises instead. Virtual clock throughout; INFINITY
 * (CO_FOREVER) is "no time limit". */
#include "test_sync.h"

#include <math.h>
#include <stdint.h>

#define I(n) ((void *)(intptr_t)(n))
#define N(p) ((int)(intptr_t)(p))

/* ---- test_locks: SemaphoreTests.test_acquire_fifo_order_2 ----------------- */

static co_sem S;

static void *c1(void *arg) {
    cr_assert_eq(co_sem_acquire(&S), 0);
    tu_log("1");
    return NULL;
}

static void *c2(void *arg) {
    cr_assert_eq(co_sem_acquire(&S), 0);
    tu_log("2");
    cr_assert_eq(co_sem_release(&S), 0);
    cr_assert_eq(co_sem_acquire(&S), 0); /* behind c3, woken before us */
    tu_log("4");
    return NULL;
}

static void *c3(void *arg) {
    cr_assert_eq(co_sem_acquire(&S), 0);
    tu_log("3");
    return NULL;
}

static void *fifo_order_2(void *arg) {
    cr_assert_eq(co_sem_init(&S, 1, 0), 0);
    co_task *t[3] = {co_spawn(c1, NULL), co_spawn(c2, NULL), co_spawn(c3, NULL)};
    cr_assert_eq(co_yield(), 0); /* asyncio.sleep(0): c1 holds it, c2 and c3 wait */
    cr_assert_eq(co_sem_release(&S), 0);
    cr_assert_eq(co_sem_release(&S), 0);
    cr_assert_eq(co_gather(t, 3, NULL, 0), 0);
    for (int i = 0; i < 3; i++) co_task_release(t[i]);
    cr_assert_eq(co_sem_value(&S), 0, "c2 and c3 still hold theirs");
    cr_assert_eq(co_sem_destroy(&S), 0);
    return NULL;
}

Test(parity, test_acquire_fifo_order_2) {
    tu_run_ok(fifo_order_2, NULL);
    cr_assert_str_eq(tu_trace, "1 2 3 4 ");
}

/* ---- test_events: EventLoopTestsMixin.test_call_later_negative_delays ----- */

static void log_cb(void *arg) { tu_log("%s", (char *)arg); }

static void *sleep_1s(void *arg) { return co_sleep(1) ? I(-1) : NULL; }

Test(parity, test_call_later_negative_delays) {
    co_loop *L = tu_loop();
    cr_assert_eq(co_call_later(-1, log_cb, "a", NULL), 0);
    cr_assert_eq(co_call_later(-2, log_cb, "b", NULL), 0);
    cr_assert_eq(co_call_later(0, log_cb, "zero", NULL), 0);
    cr_assert_eq(co_call_at(-1.5, log_cb, "at", NULL), 0);
    cr_assert_eq(tu_run(L, sleep_1s, NULL, NULL), 0);
    cr_assert_str_eq(tu_trace, "b at a zero ", "by deadline, as asyncio: %s", tu_trace);
    tu_close(L);
}

