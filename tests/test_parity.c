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

/* Yields N(arg) times, then returns. */
static void *yields(void *arg) {
    for (int i = 0; i < N(arg); i++) cr_assert_eq(co_yield(), 0);
    return NULL;
}

/* ---- test_queues: LifoQueueTests / PriorityQueueTests.test_order, with the
 * getter already waiting (as in QueueGetTests.test_blocking_get_wait) ------ */

static co_queue Q;

static int by_value(const void *a, const void *b) { return (N(a) > N(b)) - (N(a) < N(b)); }

static void *getter(void *arg) {
    void *it = I(-1);
    int rc = co_queue_get(&Q, &it);
    tu_log("%s:%d", rc ? co_err_name(rc) : "got", N(it));
    return NULL;
}

/* A worker waits on an empty queue; the producer puts a batch before the
 * worker runs: the worker gets what a get would return when it runs. */
static void *batch_to_waiting_getter(void *arg) {
    co_task *g = spawn_named(getter, "G");
    settle();
    cr_assert_eq(co_queue_put(&Q, I(5)), 0);
    cr_assert_eq(co_queue_put(&Q, I(1)), 0);
    cr_assert_eq(co_queue_put(&Q, I(3)), 0);
    join_release(g);
    void *it;
    cr_assert_eq(co_queue_try_get(&Q, &it), 0);
    tu_log("next:%d", N(it));
    return NULL;
}

/* Two getters wait; the first is cancelled after the batch woke both but
 * before it ran: the second gets what a get returns then, nothing is lost. */
static void *batch_first_getter_cancelled(void *arg) {
    co_task *a = spawn_named(getter, "A"), *b = spawn_named(getter, "B");
    settle();
    cr_assert_eq(co_queue_put(&Q, I(5)), 0);
    cr_assert_eq(co_queue_put(&Q, I(1)), 0);
    cr_assert_eq(co_queue_put(&Q, I(3)), 0);
    co_cancel(a, NULL);
    join_release(a);
    join_release(b);
    cr_assert_eq(co_queue_size(&Q), 2, "A's cancel lost no item");
    void *it;
    while (co_queue_try_get(&Q, &it) == 0) tu_log("left:%d", N(it));
    return NULL;
}

static void check_batch(co_queue_order order, int (*cmp)(const void *, const void *), const char *want,
                        const char *want_cancelled) {
    co_queue_opts o = {.order = order, .cmp = cmp};
    tu_trace[0] = 0;
    cr_assert_eq(co_queue_init(&Q, &o), 0);
    tu_run_ok(batch_to_waiting_getter, NULL);
    cr_assert_str_eq(tu_trace, want);
    co_queue_destroy(&Q);
    tu_trace[0] = 0;
    cr_assert_eq(co_queue_init(&Q, &o), 0);
    tu_run_ok(batch_first_getter_cancelled, NULL);
    cr_assert_str_eq(tu_trace, want_cancelled);
    co_queue_destroy(&Q);
}

Test(parity, test_order_with_waiting_getter) {
    /* LIFO: the last in; priority: the smallest; FIFO: the first in */
    check_batch(CO_QUEUE_LIFO, NULL, "got:3 next:1 ", "ECANCELED:-1 got:3 left:1 left:5 ");
    check_batch(CO_QUEUE_PRIORITY, by_value, "got:1 next:3 ", "ECANCELED:-1 got:1 left:3 left:5 ");
    check_batch(CO_QUEUE_FIFO, NULL, "got:5 next:1 ", "ECANCELED:-1 got:5 left:1 left:3 ");
}

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

/* ---- test_tasks: BaseTaskTests.test_wait_really_done ----------------------
 * A deliberate difference (docs/asyncio.md): co_wait wakes its caller as
 * soon as `when` holds, asyncio one callback round later. */

static void *wait_really_done(void *arg) {
    co_task *a = co_spawn(yields, I(1)), *b = co_spawn(yields, I(2));
    co_task *in[2] = {b, a}, *done[2], *pending[2];
    size_t nd, np;
    cr_assert_eq(co_wait(in, 2, CO_FIRST_COMPLETED, INFINITY, done, &nd, pending, &np), 0);
    /* asyncio: done == {a, b}; corio: a alone, b one step short */
    cr_assert_eq(nd, 1);
    cr_assert_eq(done[0], a);
    cr_assert_eq(np, 1);
    cr_assert_eq(pending[0], b);
    cr_assert_not(co_task_done(b));
    cr_assert_eq(co_yield(), 0);
    cr_assert(co_task_done(b), "b finished in the very next step");
    co_task_release(a);
    co_task_release(b);
    return NULL;
}

Test(parity, test_wait_really_done) { tu_run_ok(wait_really_done, NULL); }

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

/* ---- test_tasks: BaseTaskTests.test_as_completed_duplicate_coroutines -----
 * (and the same input to co_wait: asyncio takes both as a set) */

static void *coro(void *arg) { return arg; }

static void *duplicates(void *arg) {
    co_task *ham = co_spawn(coro, "ham"), *spam = co_spawn(coro, "spam");
    co_task *in[3] = {ham, ham, spam}, *t;
    co_as_completed it;
    cr_assert_eq(co_as_completed_init(&it, in, 3, INFINITY), 0);
    int rc, n = 0;
    void *v;
    while ((rc = co_as_completed_next(&it, &t)) == 0) {
        cr_assert_eq(co_join(t, &v), 0);
        tu_log("%s", (char *)v);
        n++;
    }
    cr_assert_eq(rc, 1);
    co_as_completed_fini(&it);
    cr_assert_eq(n, 2, "each task once: %s", tu_trace);

    co_task *done[3], *pending[3];
    size_t nd, np;
    cr_assert_eq(co_wait(in, 3, CO_ALL_COMPLETED, INFINITY, done, &nd, pending, &np), 0);
    cr_assert_eq(nd, 2);
    cr_assert_eq(np, 0);
    cr_assert(done[0] != done[1]);

    /* more than fit on the stack, finishing later: 10 tasks given 3 times */
    co_task *many[30], *d[30], *p[30];
    for (int i = 0; i < 10; i++) many[i] = many[10 + i] = many[29 - i] = co_spawn(yields, I(i));
    cr_assert_eq(co_wait(many, 30, CO_FIRST_COMPLETED, INFINITY, d, &nd, p, &np), 0);
    cr_assert_eq(nd + np, 10);
    cr_assert_eq(co_wait(many, 30, CO_ALL_COMPLETED, INFINITY, d, &nd, p, &np), 0);
    cr_assert_eq(nd, 10);
    cr_assert_eq(np, 0);
    cr_assert_eq(co_as_completed_init(&it, many, 30, INFINITY), 0);
    for (n = 0; (rc = co_as_completed_next(&it, &t)) == 0; n++) {}
    cr_assert_eq(rc, 1);
    cr_assert_eq(n, 10);
    co_as_completed_fini(&it);
    for (int i = 0; i < 10; i++) co_task_release(many[i]);
    co_task_release(ham);
    co_task_release(spam);
    return NULL;
}

Test(parity, test_as_completed_duplicate_coroutines) { tu_run_ok(duplicates, NULL); }
