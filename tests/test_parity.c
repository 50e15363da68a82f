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

