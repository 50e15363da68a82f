/* to_thread — asyncio.to_thread / run_in_executor: five blocking
 * calaTask(a, b) calls, each sleeping 1 s, run on the thread pool.
 * Awaited one by one (co_run_blocking) they take 5 s; started with
 * co_to_thread and gathered, 1 s (the pool runs them in parallel; each
 * co_to_thread is a task co_gather accepts, no wrapper needed). A ticker
 * task prints all along: the loop never blocks while the calls run. */
#include <corio.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "example_unit.h"

typedef struct pair {
    int a, b;
} pair;
static const pair pairs[5] = {{1, 2}, {2, 3}, {3, 4}, {3, 5}, {4, 5}};
static double t0;

/* The blocking function: runs on a pool thread. */
static void *calaTask(void *arg) {
    const pair *p = arg;
    blocking_sleep(1);
    return (void *)(intptr_t)(p->a + p->b);
}

static void *ticker(void *arg) {
    while (co_sleep(0.7 * example_unit()) == 0) printf("  tick %.1f s\n", units_since(t0));
    return NULL;
}

static void print_list(const char *what, const intptr_t *v, double t) {
    printf("%s: [%ld, %ld, %ld, %ld, %ld] in %.1f s\n", what, (long)v[0], (long)v[1], (long)v[2],
           (long)v[3], (long)v[4], t);
}

static void *main_task(void *arg) {
    co_pool_set_default_size(5); /* five calls at once need five threads */
    t0 = mono_now();
    co_task *tick = co_spawn(ticker, NULL);
    intptr_t v[5];

    puts("one by one:");
    double start = mono_now();
    for (int i = 0; i < 5; i++) {
        void *sum;
        int rc = co_run_blocking(calaTask, (void *)&pairs[i], &sum);
        if (rc) return co_fail(rc, "calaTask failed");
        v[i] = (intptr_t)sum;
        printf("  calaTask(%d, %d) = %ld (%.1f s)\n", pairs[i].a, pairs[i].b, (long)v[i], units_since(t0));
    }
    print_list("one by one", v, units_since(start));

    puts("gathered:");
    start = mono_now();
    co_task *ts[5];
    for (int i = 0; i < 5; i++) ts[i] = co_to_thread(calaTask, (void *)&pairs[i]);
    co_result r[5];
    int rc = co_gather(ts, 5, r, 0);
    for (int i = 0; i < 5; i++) {
        v[i] = (intptr_t)r[i].value;
        co_task_release(ts[i]);
    }
    if (rc) return co_fail(rc, "gather failed");
    print_list("gathered", v, units_since(start));

    co_cancel(tick, NULL);
    co_join(tick, NULL);
    co_task_release(tick);
    return NULL;
}

int main(void) { return co_run(main_task, NULL, NULL); }
