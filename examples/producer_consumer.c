/* producer_consumer — a bounded queue between 2 producers and 3
 * consumers. Producers wait while the queue is full; consumers take items
 * as they come (a busy consumer takes fewer). co_queue_join waits until
 * every item put was marked done, then co_queue_shutdown tells the idle
 * consumers there is nothing more: their co_queue_get returns
 * -CO_ESHUTDOWN and they end. */
#include <corio.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

enum { PRODUCERS = 2, CONSUMERS = 3, ITEMS = 8, MAXSIZE = 3 };

static co_queue q;
static int counts[CONSUMERS];
static double t0;

static void *producer(void *arg) {
    int p = (int)(intptr_t)arg;
    for (int k = 1; k <= ITEMS; k++) {
        int rc = co_queue_put(&q, (void *)(intptr_t)(p * 100 + k)); /* waits while full */
        if (rc) return co_fail(rc, "producer %d: put", p);
        co_sleep(0.05); /* making the next one */
    }
    printf("%.2f s  producer %d: put %d items\n", co_time() - t0, p, ITEMS);
    return NULL;
}

static void *consumer(void *arg) {
    int c = (int)(intptr_t)arg;
    void *item;
    int rc;
    while ((rc = co_queue_get(&q, &item)) == 0) {
        int id = (int)(intptr_t)item;
        co_sleep(0.1 * (1 + id % 3)); /* items take 0.1 to 0.3 s */
        counts[c]++;
        co_queue_task_done(&q);
    }
    if (rc != -CO_ESHUTDOWN) return co_fail(rc, "consumer %d: get", c);
    return NULL;
}

static void *main_task(void *arg) {
    t0 = co_time();
    co_queue_init(&q, &(co_queue_opts){.maxsize = MAXSIZE});
    co_task *prod[PRODUCERS], *cons[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) cons[i] = co_spawn(consumer, (void *)(intptr_t)i);
    for (int i = 0; i < PRODUCERS; i++) prod[i] = co_spawn(producer, (void *)(intptr_t)(i + 1));
    for (int i = 0; i < PRODUCERS; i++) {
        co_join(prod[i], NULL);
        co_task_release(prod[i]);
    }
    int rc = co_queue_join(&q); /* every item processed */
    printf("%.2f s  queue joined (%s): every item processed\n", co_time() - t0, co_err_name(rc));
    co_queue_shutdown(&q, false);
    int total = 0;
    for (int i = 0; i < CONSUMERS; i++) {
        co_join(cons[i], NULL);
        co_task_release(cons[i]);
        printf("consumer %d: %d items\n", i, counts[i]);
        total += counts[i];
    }
    co_queue_destroy(&q);
    printf("total %d of %d items, %.2f s\n", total, PRODUCERS * ITEMS, co_time() - t0);
    return NULL;
}

int main(void) { return co_run(main_task, NULL, NULL); }
