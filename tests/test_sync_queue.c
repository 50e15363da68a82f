/* test_sync_queue.c — co_queue: FIFO / LIFO / priority order, bounded and
 * unbounded, put and get that suspend (FIFO among waiters, no overtaking),
 * try_put / try_get, join / task_done, shutdown graceful and immediate,
 * destroy, and the cancellation rules at get, put and join: cancelled
 * while waiting, nothing moves; handed an item (or a slot) and cancelled
 * before resuming, the item goes back in its place (the slot passes on). */
#include "test_sync.h"

#include <stdint.h>

#define I(n) ((void *)(intptr_t)(n))
#define N(p) ((int)(intptr_t)(p))

static co_queue Q;

/* Drains the queue with try_get into a string "1 2 3". */
static const char *drain(void) {
    static char buf[1024];
    buf[0] = 0;
    void *it;
    while (co_queue_try_get(&Q, &it) == 0) {
        size_t len = strlen(buf);
        snprintf(buf + len, sizeof buf - len, "%s%d", len ? " " : "", N(it));
    }
    return buf;
}

static void init_q(co_queue_order order, size_t maxsize, int (*cmp)(const void *, const void *)) {
    co_queue_opts o = {.order = order, .maxsize = maxsize, .cmp = cmp};
    cr_assert_eq(co_queue_init(&Q, &o), 0);
}

/* Priority: the item is the priority; smaller first. Items n and n+1000
 * have equal priority (to check that ties keep put order). */
static int by_value(const void *a, const void *b) {
    int x = N(a) % 1000, y = N(b) % 1000;
    return (x > y) - (x < y);
}

static void *getter(void *arg) {
    void *it = I(-1);
    int rc = co_queue_get(&Q, &it);
    if (rc == 0) tu_log("%s:%d", (char *)arg, N(it));
    else tu_log("%s:%s", (char *)arg, co_err_name(rc));
    return NULL;
}

/* The putter's item is its name's first letter's number: "P7" puts 7. */
static void *putter(void *arg) {
    int rc = co_queue_put(&Q, I(atoi((char *)arg + 1)));
    tu_log("%s:%s", (char *)arg, co_err_name(rc));
    return NULL;
}

/* ======================================================================= order */

static void *orders(void *arg) {
    int in[] = {5, 1, 1004, 3, 4, 2, 1001};
    for (int i = 0; i < 7; i++) cr_assert_eq(co_queue_try_put(&Q, I(in[i])), 0);
    cr_assert_eq(co_queue_size(&Q), 7);
    static char got[256];
    snprintf(got, sizeof got, "%s", drain());
    cr_assert(co_queue_empty(&Q));
    void *it;
    cr_assert_eq(co_queue_try_get(&Q, &it), -EAGAIN);
    return got;
}

static void check_order(co_queue_order order, int (*cmp)(const void *, const void *), const char *want) {
    co_loop *L = tu_loop();
    init_q(order, 0, cmp);
    void *got;
    cr_assert_eq(tu_run(L, orders, NULL, &got), 0);
    cr_assert_str_eq(got, want);
    cr_assert_eq(co_queue_destroy(&Q), 0);
    tu_close(L);
}

Test(queue, fifo_order) { check_order(CO_QUEUE_FIFO, NULL, "5 1 1004 3 4 2 1001"); }
Test(queue, lifo_order) { check_order(CO_QUEUE_LIFO, NULL, "1001 2 4 3 1004 1 5"); }
Test(queue, priority_order_stable) { check_order(CO_QUEUE_PRIORITY, by_value, "1 1001 2 3 1004 4 5"); }

static void *many(void *arg) {
    /* unbounded growth past the initial buffer, interleaved puts and gets
     * so the ring wraps around */
    int next_in = 0, next_out = 0;
    uint64_t s = 88172645463325252ULL;
    for (int round = 0; round < 2000; round++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        int puts = (int)(s % 5), gets = (int)((s >> 8) % 4);
        for (int i = 0; i < puts; i++) cr_assert_eq(co_queue_put(&Q, I(next_in++)), 0);
        for (int i = 0; i < gets && !co_queue_empty(&Q); i++) {
            void *it;
            cr_assert_eq(co_queue_get(&Q, &it), 0);
            cr_assert_eq(N(it), next_out++);
        }
    }
    cr_assert_eq(co_queue_size(&Q), (size_t)(next_in - next_out));
    void *it;
    while (co_queue_try_get(&Q, &it) == 0) cr_assert_eq(N(it), next_out++);
    cr_assert_eq(next_out, next_in);
    return NULL;
}

Test(queue, fifo_ring_wraps_and_grows) {
    init_q(CO_QUEUE_FIFO, 0, NULL);
    tu_run_ok(many, NULL);
}

static void *prio_random(void *arg) {
    /* 3000 items of 10 priorities: out by priority, then in put order */
    uint64_t s = 1234567;
    for (int i = 0; i < 3000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        cr_assert_eq(co_queue_put(&Q, I((int)(s % 10) * 10000 + i)), 0);
    }
    int prev = -1;
    void *it;
    for (int i = 0; i < 3000; i++) {
        cr_assert_eq(co_queue_get(&Q, &it), 0);
        cr_assert_gt(N(it), prev, "%d after %d", N(it), prev);
        prev = N(it);
    }
    return NULL;
}

static int by_tens_of_thousands(const void *a, const void *b) {
    int x = N(a) / 10000, y = N(b) / 10000;
    return (x > y) - (x < y);
}

Test(queue, priority_heap_many) {
    init_q(CO_QUEUE_PRIORITY, 0, by_tens_of_thousands);
    tu_run_ok(prio_random, NULL);
}

Test(queue, init_checks_and_new) {
    co_loop *L = tu_loop();
    cr_assert_eq(co_queue_init(&Q, &(co_queue_opts){.order = CO_QUEUE_PRIORITY}), -EINVAL);
    cr_assert_eq(co_queue_init(&Q, &(co_queue_opts){.cmp = by_value}), -EINVAL);
    cr_assert_eq(co_queue_init(&Q, &(co_queue_opts){.order = (co_queue_order)7}), -EINVAL);
    cr_assert_null(co_queue_new(&(co_queue_opts){.order = CO_QUEUE_PRIORITY}));
    cr_assert_eq(errno, EINVAL);
    co_queue *q = co_queue_new(NULL);
    cr_assert_not_null(q);
    cr_assert_eq(co_queue_maxsize(q), 0);
    cr_assert_eq(co_queue_try_put(q, I(1)), 0);
    cr_assert_eq(co_queue_size(q), 1);
    cr_assert_eq(co_queue_free(q), 0);
    cr_assert_eq(co_queue_free(NULL), 0);
    cr_assert_eq(co_queue_init(&Q, NULL), 0);
    void *it;
    cr_assert_eq(co_queue_get(&Q, &it), -CO_ENOTASK);
    cr_assert_eq(co_queue_try_get(&Q, NULL), -EINVAL);
    cr_assert_eq(co_queue_destroy(&Q), 0);
    tu_close(L);
}

/* ======================================================================= suspending */

static void *bounded(void *arg) {
    cr_assert_eq(co_queue_maxsize(&Q), 2);
    cr_assert_eq(co_queue_put(&Q, I(1)), 0);
    cr_assert_eq(co_queue_put(&Q, I(2)), 0);
    cr_assert(co_queue_full(&Q));
    cr_assert_eq(co_queue_try_put(&Q, I(9)), -EAGAIN);
    co_task *p3 = spawn_named(putter, "P3"), *p4 = spawn_named(putter, "P4");
    settle();
    cr_assert_str_eq(tu_trace, "", "both wait: full");
    void *it;
    cr_assert_eq(co_queue_get(&Q, &it), 0);
    cr_assert_eq(N(it), 1);
    cr_assert_eq(co_queue_try_put(&Q, I(9)), -EAGAIN, "the freed slot is P3's");
    settle();
    cr_assert_str_eq(tu_trace, "P3:OK ");
    cr_assert_eq(co_queue_get(&Q, &it), 0);
    cr_assert_eq(N(it), 2);
    settle();
    cr_assert_str_eq(drain(), "3 4", "put order kept");
    join_release(p3);
    join_release(p4);
    return NULL;
}

Test(queue, bounded_put_waits_fifo) {
    init_q(CO_QUEUE_FIFO, 2, NULL);
    tu_run_ok(bounded, NULL);
    cr_assert_str_eq(tu_trace, "P3:OK P4:OK ");
}

static void *get_waits(void *arg) {
    co_task *a = spawn_named(getter, "A"), *b = spawn_named(getter, "B");
    settle();
    cr_assert_eq(co_queue_put(&Q, I(1)), 0); /* straight to A */
    cr_assert_eq(co_queue_size(&Q), 1, "A has not resumed: still counted");
    void *it;
    cr_assert_eq(co_queue_try_get(&Q, &it), -EAGAIN, "no overtaking A");
    cr_assert_eq(co_queue_try_put(&Q, I(2)), 0); /* to B */
    cr_assert_eq(co_queue_try_put(&Q, I(3)), 0);
    settle();
    cr_assert_str_eq(tu_trace, "A:1 B:2 ");
    cr_assert_eq(co_queue_size(&Q), 1);
    join_release(a);
    join_release(b);
    cr_assert_str_eq(drain(), "3");
    return NULL;
}

Test(queue, get_waits_fifo_and_is_handed_the_item) {
    init_q(CO_QUEUE_FIFO, 0, NULL);
    tu_run_ok(get_waits, NULL);
}

/* ======================================================================= cancellation */

static void *cancel_getter_waiting(void *arg) {
    co_task *a = spawn_named(getter, "A"), *b = spawn_named(getter, "B");
    settle();
    co_cancel(a, NULL);
    settle();
    cr_assert_eq(co_queue_put(&Q, I(1)), 0);
    settle();
    cr_assert_str_eq(tu_trace, "A:ECANCELED B:1 ", "the item went to B");
    cr_assert(co_queue_empty(&Q));
    join_release(a);
    join_release(b);
    return NULL;
}

Test(queue, getter_cancelled_while_waiting) {
    init_q(CO_QUEUE_FIFO, 0, NULL);
    tu_run_ok(cancel_getter_waiting, NULL);
}

/* A is handed X, then more items arrive, then A is cancelled before it
 * resumes: X goes back where it was. */
static void *handed_then_cancelled(void *arg) {
    co_task *a = spawn_named(getter, "A");
    settle();
    cr_assert_eq(co_queue_put(&Q, I(1005)), 0); /* to A */
    cr_assert_eq(co_queue_put(&Q, I(7)), 0);
    cr_assert_eq(co_queue_put(&Q, I(5)), 0);
    co_cancel(a, NULL);
    settle();
    cr_assert_str_eq(tu_trace, "A:ECANCELED ");
    cr_assert_eq(co_queue_size(&Q), 3, "nothing lost");
    join_release(a);
    return (void *)drain();
}

static void check_handed_back(co_queue_order order, int (*cmp)(const void *, const void *), const char *want) {
    co_loop *L = tu_loop();
    init_q(order, 0, cmp);
    void *got;
    cr_assert_eq(tu_run(L, handed_then_cancelled, NULL, &got), 0);
    cr_assert_str_eq(got, want);
    cr_assert_eq(co_queue_destroy(&Q), 0);
    tu_close(L);
}

Test(queue, handed_then_cancelled_fifo_back_at_the_head) { check_handed_back(CO_QUEUE_FIFO, NULL, "1005 7 5"); }
Test(queue, handed_then_cancelled_lifo_back_below_later_items) {
    check_handed_back(CO_QUEUE_LIFO, NULL, "5 7 1005");
}
Test(queue, handed_then_cancelled_priority_by_priority_then_put_order) {
    /* 1005 ties with 5 (priority 5) and was put first */
    check_handed_back(CO_QUEUE_PRIORITY, by_value, "1005 5 7");
}

static void *two_handed_both_cancelled(void *arg) {
    co_task *a = spawn_named(getter, "A"), *b = spawn_named(getter, "B");
    settle();
    cr_assert_eq(co_queue_put(&Q, I(1)), 0); /* to A */
    cr_assert_eq(co_queue_put(&Q, I(2)), 0); /* to B */
    cr_assert_eq(co_queue_put(&Q, I(3)), 0);
    co_cancel(a, NULL);
    co_cancel(b, NULL);
    settle();
    cr_assert_str_eq(drain(), "1 2 3", "both back, in their order");
    join_release(a);
    join_release(b);
    return NULL;
}

Test(queue, two_handed_both_cancelled_keep_order) {
    init_q(CO_QUEUE_FIFO, 0, NULL);
    tu_run_ok(two_handed_both_cancelled, NULL);
    cr_assert_str_eq(tu_trace, "A:ECANCELED B:ECANCELED ");
}

static void *handed_passes_to_next_getter(void *arg) {
    co_task *a = spawn_named(getter, "A"), *b = spawn_named(getter, "B");
    settle();
    cr_assert_eq(co_queue_put(&Q, I(1)), 0); /* to A */
    co_cancel(a, NULL);
    settle();
    cr_assert_str_eq(tu_trace, "A:ECANCELED B:1 ", "the item went on to B");
    cr_assert(co_queue_empty(&Q));
    join_release(a);
    join_release(b);
    return NULL;
}

Test(queue, handed_then_cancelled_goes_to_the_next_getter) {
    init_q(CO_QUEUE_FIFO, 0, NULL);
    tu_run_ok(handed_passes_to_next_getter, NULL);
}

static void *bounded_handed_back(void *arg) {
    /* maxsize 1: A is handed 1 and the item still counts until A resumes,
     * so P2 queues behind it and gets the slot when A takes the item */
    co_task *a = spawn_named(getter, "A");
    settle();
    cr_assert_eq(co_queue_put(&Q, I(1)), 0);
    cr_assert(co_queue_full(&Q));
    co_task *p = spawn_named(putter, "P2");
    settle();
    cr_assert_str_eq(tu_trace, "A:1 P2:OK ");
    join_release(a);
    join_release(p);
    cr_assert_str_eq(drain(), "2");

    /* B is handed 1 and cancelled before it resumes: 1 is back and P3
     * still waits, as if B had never waited */
    tu_trace[0] = 0;
    co_task *b = spawn_named(getter, "B");
    settle();
    cr_assert_eq(co_queue_put(&Q, I(1)), 0); /* to B */
    cr_assert_eq(co_queue_try_put(&Q, I(9)), -EAGAIN, "B's item still counts");
    co_task *p3 = spawn_named(putter, "P3");
    co_cancel(b, NULL);
    settle();
    cr_assert_str_eq(tu_trace, "B:ECANCELED ", "P3 still waits: 1 is back in the queue");
    cr_assert_eq(co_queue_size(&Q), 1);
    void *it;
    cr_assert_eq(co_queue_get(&Q, &it), 0);
    cr_assert_eq(N(it), 1);
    settle();
    cr_assert_str_eq(tu_trace, "B:ECANCELED P3:OK ");
    cr_assert_str_eq(drain(), "3");
    join_release(b);
    join_release(p3);
    return NULL;
}

Test(queue, bounded_handed_then_cancelled) {
    init_q(CO_QUEUE_FIFO, 1, NULL);
    tu_run_ok(bounded_handed_back, NULL);
}

static void *putter_cancels(void *arg) {
    cr_assert_eq(co_queue_put(&Q, I(1)), 0);
    co_task *p2 = spawn_named(putter, "P2"), *p3 = spawn_named(putter, "P3"),
            *p4 = spawn_named(putter, "P4"), *p5 = spawn_named(putter, "P5");
    settle();
    co_cancel(p2, NULL); /* while waiting: its item never enters */
    settle();
    void *it;
    cr_assert_eq(co_queue_get(&Q, &it), 0); /* the slot goes to P3 ... */
    cr_assert_eq(N(it), 1);
    co_cancel(p3, NULL); /* ... cancelled before it resumed: the slot passes to P4 */
    settle();
    cr_assert_str_eq(tu_trace, "P2:ECANCELED P3:ECANCELED P4:OK ");
    cr_assert_eq(co_queue_get(&Q, &it), 0);
    cr_assert_eq(N(it), 4);
    settle();
    cr_assert_str_eq(drain(), "5");
    /* granted a slot with nobody behind, cancelled: the slot is free again */
    cr_assert_eq(co_queue_put(&Q, I(1)), 0);
    co_task *p6 = spawn_named(putter, "P6");
    settle();
    cr_assert_eq(co_queue_get(&Q, &it), 0);
    co_cancel(p6, NULL);
    settle();
    cr_assert(co_queue_empty(&Q));
    cr_assert_eq(co_queue_try_put(&Q, I(7)), 0);
    cr_assert_str_eq(drain(), "7");
    join_release(p2);
    join_release(p3);
    join_release(p4);
    join_release(p5);
    join_release(p6);
    return NULL;
}

Test(queue, putter_cancellation_loses_no_slot_and_adds_no_item) {
    init_q(CO_QUEUE_FIFO, 1, NULL);
    tu_run_ok(putter_cancels, NULL);
    cr_assert_str_eq(tu_trace, "P2:ECANCELED P3:ECANCELED P4:OK P5:OK P6:ECANCELED ");
}

static void *cancel_pending(void *arg) {
    cr_assert_eq(co_queue_try_put(&Q, I(1)), 0);
    co_cancel(co_current(), NULL);
    void *it = NULL;
    cr_assert_eq(co_queue_get(&Q, &it), -ECANCELED, "sticky: even with an item there");
    cr_assert_null(it);
    cr_assert_eq(co_queue_put(&Q, I(2)), -ECANCELED);
    cr_assert_eq(co_queue_join(&Q), -ECANCELED);
    cr_assert_eq(co_queue_size(&Q), 1);
    cr_assert_eq(co_queue_try_get(&Q, &it), 0, "try_ forms work in cleanup");
    cr_assert_eq(N(it), 1);
    return NULL;
}

Test(queue, cancel_pending_fails_at_once) {
    co_loop *L = tu_loop();
    init_q(CO_QUEUE_FIFO, 0, NULL);
    cr_assert_eq(tu_run(L, cancel_pending, NULL, NULL), -ECANCELED);
    tu_close(L);
}

/* ======================================================================= join */

static void *joiner(void *arg) {
    int rc = co_queue_join(&Q);
    tu_log("%s:%s@%g", (char *)arg, co_err_name(rc), co_time());
    return NULL;
}

static void *worker_done(void *arg) {
    void *it;
    while (co_queue_get(&Q, &it) == 0) {
        co_sleep(N(it));
        cr_assert_eq(co_queue_task_done(&Q), 0);
    }
    return NULL;
}

static void *join_all(void *arg) {
    cr_assert_eq(co_queue_join(&Q), 0, "nothing put: at once");
    cr_assert_eq(co_queue_task_done(&Q), -EINVAL);
    co_task *w = spawn_named(worker_done, "W");
    for (int i = 1; i <= 3; i++) cr_assert_eq(co_queue_put(&Q, I(i)), 0);
    cr_assert_eq(co_queue_join(&Q), 0);
    cr_assert_eq(co_time(), 6, "1 + 2 + 3 s of work");
    cr_assert_eq(co_queue_shutdown(&Q, false), 0); /* W's get fails: it ends */
    join_release(w);

    co_queue_destroy(&Q);
    co_queue_init(&Q, NULL);
    void *it;
    for (int i = 1; i <= 3; i++) cr_assert_eq(co_queue_put(&Q, I(i)), 0);
    for (int i = 1; i <= 3; i++) cr_assert_eq(co_queue_get(&Q, &it), 0);
    co_task *j1 = spawn_named(joiner, "J1"), *j2 = spawn_named(joiner, "J2"),
            *j3 = spawn_named(joiner, "J3");
    settle();
    co_cancel(j2, NULL); /* while waiting */
    settle();
    cr_assert_eq(co_queue_task_done(&Q), 0);
    cr_assert_eq(co_queue_task_done(&Q), 0);
    settle();
    cr_assert_str_eq(tu_trace, "J2:ECANCELED@6 ", "one item not done yet");
    cr_assert_eq(co_queue_task_done(&Q), 0);
    co_cancel(j3, NULL); /* woken by the last task_done, cancelled before resuming */
    settle();
    cr_assert_eq(co_queue_task_done(&Q), -EINVAL, "more than were put");
    join_release(j1);
    join_release(j2);
    join_release(j3);
    return NULL;
}

Test(queue, join_and_task_done) {
    init_q(CO_QUEUE_FIFO, 0, NULL);
    tu_run_ok(join_all, NULL);
    cr_assert_str_eq(tu_trace, "J2:ECANCELED@6 J1:OK@6 J3:ECANCELED@6 ");
}

/* ======================================================================= shutdown */

static int dropped;
static void drop_count(void *item, void *arg) {
    dropped += N(item);
    (void)arg;
}

static void *graceful(void *arg) {
    cr_assert_eq(co_queue_put(&Q, I(1)), 0);
    cr_assert_eq(co_queue_put(&Q, I(2)), 0);
    co_task *p3 = spawn_named(putter, "P3"), *p4 = spawn_named(putter, "P4");
    settle();
    void *it;
    cr_assert_eq(co_queue_get(&Q, &it), 0); /* P3 granted a slot, not resumed */
    cr_assert_eq(co_queue_shutdown(&Q, false), 0);
    settle();
    cr_assert_str_eq(tu_trace, "P3:CO_ESHUTDOWN P4:CO_ESHUTDOWN ", "no put completes after shutdown");
    cr_assert_eq(co_queue_put(&Q, I(5)), -CO_ESHUTDOWN);
    cr_assert_eq(co_queue_try_put(&Q, I(5)), -CO_ESHUTDOWN);
    cr_assert_eq(co_queue_get(&Q, &it), 0, "graceful: the items left drain");
    cr_assert_eq(N(it), 2);
    cr_assert_eq(co_queue_get(&Q, &it), -CO_ESHUTDOWN);
    cr_assert_eq(co_queue_try_get(&Q, &it), -CO_ESHUTDOWN);
    cr_assert_eq(co_queue_shutdown(&Q, false), 0, "twice is harmless");
    join_release(p3);
    join_release(p4);
    return NULL;
}

Test(queue, shutdown_graceful_drains) {
    init_q(CO_QUEUE_FIFO, 2, NULL);
    tu_run_ok(graceful, NULL);
}

static void *graceful_getters(void *arg) {
    co_task *a = spawn_named(getter, "A"), *b = spawn_named(getter, "B");
    settle();
    cr_assert_eq(co_queue_put(&Q, I(1)), 0); /* handed to A before the shutdown */
    cr_assert_eq(co_queue_shutdown(&Q, false), 0);
    settle();
    join_release(a);
    join_release(b);
    return NULL;
}

Test(queue, shutdown_graceful_wakes_getters) {
    init_q(CO_QUEUE_FIFO, 0, NULL);
    tu_run_ok(graceful_getters, NULL);
    cr_assert_str_eq(tu_trace, "A:1 B:CO_ESHUTDOWN ");
}

static void *immediate(void *arg) {
    co_task *a = spawn_named(getter, "A");
    settle();
    cr_assert_eq(co_queue_put(&Q, I(1)), 0); /* handed to A */
    for (int i = 2; i <= 4; i++) cr_assert_eq(co_queue_put(&Q, I(i)), 0);
    co_task *p5 = spawn_named(putter, "P5"), *j = spawn_named(joiner, "J");
    settle(); /* A resumed, so P5 got its slot: 2 3 4 5 */
    co_task *p6 = spawn_named(putter, "P6");
    settle();
    cr_assert_str_eq(tu_trace, "A:1 P5:OK ", "P6 waits, J waits");
    cr_assert_eq(co_queue_shutdown(&Q, true), 0);
    cr_assert_eq(dropped, 2 + 3 + 4 + 5);
    cr_assert(co_queue_empty(&Q));
    settle();
    cr_assert_str_eq(tu_trace, "A:1 P5:OK P6:CO_ESHUTDOWN ", "J waits for A's task_done");
    cr_assert_eq(co_queue_task_done(&Q), 0);
    settle();
    cr_assert_str_eq(tu_trace, "A:1 P5:OK P6:CO_ESHUTDOWN J:OK@0 ");
    void *it;
    cr_assert_eq(co_queue_get(&Q, &it), -CO_ESHUTDOWN);
    cr_assert_eq(co_queue_shutdown(&Q, true), 0);
    join_release(a);
    join_release(p5);
    join_release(p6);
    join_release(j);
    return NULL;
}

Test(queue, shutdown_immediate_drops_and_releases_join) {
    co_queue_opts o = {.maxsize = 4, .drop = drop_count};
    cr_assert_eq(co_queue_init(&Q, &o), 0);
    tu_run_ok(immediate, NULL);
}

static void *immediate_handed_cancelled(void *arg) {
    co_task *a = spawn_named(getter, "A"), *b = spawn_named(getter, "B");
    settle();
    cr_assert_eq(co_queue_put(&Q, I(7)), 0); /* to A */
    co_task *j = spawn_named(joiner, "J");
    settle(); /* A got 7; J waits */
    co_task *c = spawn_named(getter, "C");
    settle();
    cr_assert_eq(co_queue_put(&Q, I(8)), 0); /* to B, not resumed */
    cr_assert_eq(co_queue_task_done(&Q), 0); /* for A's 7: B's 8 is left */
    cr_assert_eq(co_queue_shutdown(&Q, true), 0); /* C (waiting) gets ESHUTDOWN */
    cr_assert_eq(dropped, 0, "an item handed before the shutdown is not dropped");
    co_cancel(b, NULL); /* B's item is dropped now, which completes the join */
    settle();
    cr_assert_eq(dropped, 8);
    join_release(a);
    join_release(b);
    join_release(c);
    join_release(j);
    return NULL;
}

Test(queue, shutdown_immediate_then_handed_getter_cancelled) {
    co_queue_opts o = {.drop = drop_count};
    cr_assert_eq(co_queue_init(&Q, &o), 0);
    tu_run_ok(immediate_handed_cancelled, NULL);
    cr_assert_str_eq(tu_trace, "A:7 B:ECANCELED C:CO_ESHUTDOWN J:OK@0 ");
}

/* ======================================================================= destroy */

static void *destroy_waiters(void *arg) {
    co_task *a = spawn_named(getter, "A"), *b = spawn_named(getter, "B");
    settle();
    cr_assert_eq(co_queue_put(&Q, I(10)), 0); /* handed to A, not resumed */
    co_task *j = spawn_named(joiner, "J");
    settle();
    cr_assert_str_eq(tu_trace, "A:10 ");
    tu_trace[0] = 0;
    cr_assert_eq(co_queue_put(&Q, I(20)), 0); /* to B */
    cr_assert_eq(co_queue_destroy(&Q), 0);
    cr_assert_eq(dropped, 20, "B's item dropped with the queue");
    settle();
    cr_assert_str_eq(tu_trace, "B:CO_ECLOSED J:CO_ECLOSED@0 ", "B was woken first, by the put");

    tu_trace[0] = 0;
    co_queue_opts o = {.maxsize = 1, .drop = drop_count};
    cr_assert_eq(co_queue_init(&Q, &o), 0);
    cr_assert_eq(co_queue_put(&Q, I(1)), 0);
    co_task *p2 = spawn_named(putter, "P2"), *p3 = spawn_named(putter, "P3");
    settle();
    void *it;
    cr_assert_eq(co_queue_get(&Q, &it), 0); /* P2 granted a slot */
    cr_assert_eq(co_queue_try_put(&Q, I(9)), -EAGAIN, "the slot is P2's");
    cr_assert_eq(co_queue_destroy(&Q), 0);
    settle();
    cr_assert_str_eq(tu_trace, "P2:CO_ECLOSED P3:CO_ECLOSED ");
    join_release(a);
    join_release(b);
    join_release(j);
    join_release(p2);
    join_release(p3);
    return NULL;
}

Test(queue, destroy_wakes_everyone_and_drops_items) {
    co_queue_opts o = {.drop = drop_count};
    cr_assert_eq(co_queue_init(&Q, &o), 0);
    tu_run_ok(destroy_waiters, NULL);
}
