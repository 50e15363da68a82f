/* mt_executor.c — co_to_thread / co_run_in_executor / co_wrap_tsfuture
 * under ThreadSanitizer: outcomes posted from pool threads, cancels racing
 * with completions, and a loop freed while jobs still run. (The behaviour
 * itself is tested in test_executor.c; this is about the threads.) */
#include <stdatomic.h>
#include <stdint.h>

#include "mt.h"

static void *twice(void *arg) { return (void *)((intptr_t)arg * 2); }

static void *gather_many(void *arg) {
    enum { N = 64 };
    co_task *ts[N];
    for (intptr_t i = 0; i < N; i++) ts[i] = co_to_thread(twice, (void *)i);
    co_result r[N];
    MT_EQ(co_gather(ts, N, r, 0), 0);
    for (int i = 0; i < N; i++) {
        MT_EQ((intptr_t)r[i].value, 2 * i);
        co_task_release(ts[i]);
    }
    return NULL;
}

MT_TEST(gathered_results_from_pool_threads) {
    co_pool_set_default_size(4);
    MT_EQ(co_run(gather_many, NULL, NULL), 0);
}

static atomic_int freed;
static void count_free(void *v) { atomic_fetch_add(&freed, 1); }
static void *spin_a_little(void *arg) {
    for (volatile int i = 0; i < 20000; i++) {
    }
    return arg;
}

/* Cancel every other one at once: some still queued, some running, some
 * just finished; every result is read or freed, exactly once. */
static void *cancel_racing(void *arg) {
    enum { N = 200 };
    co_task *ts[N];
    for (intptr_t i = 0; i < N; i++) ts[i] = co_run_in_executor(NULL, spin_a_little, (void *)(i + 1), count_free);
    for (int i = 0; i < N; i += 2) co_cancel(ts[i], NULL);
    co_result r[N];
    MT_EQ(co_gather(ts, N, r, CO_RETURN_ERRORS), 0);
    int done = 0;
    for (int i = 0; i < N; i++) {
        if (r[i].state == CO_DONE) done++;
        else MT_EQ(r[i].state, CO_CANCELLED);
        co_task_release(ts[i]);
    }
    MT_CHECK(done >= N / 2, "%d done", done);
    return (void *)(intptr_t)done;
}

MT_TEST(cancels_racing_with_completions) {
    co_pool_set_default_size(2);
    void *done = NULL;
    MT_EQ(co_run(cancel_racing, NULL, &done), 0);
    co_pool_shutdown(co_pool_default(), CO_POOL_WAIT);
    /* the cancelled ones that had started: their results went to count_free */
    MT_CHECK((intptr_t)done + atomic_load(&freed) <= 200, "%ld + %d", (long)(intptr_t)done, atomic_load(&freed));
}

static atomic_int go, started;
static void *wait_go(void *arg) {
    atomic_fetch_add(&started, 1);
    while (!atomic_load(&go)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return arg;
}

MT_TEST(loop_freed_while_jobs_run) {
    co_pool *p = co_pool_new(2);
    co_loop *L = co_loop_new(NULL);
    co_task *ts[4];
    for (intptr_t i = 0; i < 4; i++) ts[i] = co_run_in_executor(p, wait_go, (void *)(i + 1), count_free);
    co_tsfuture *f = co_tsfuture_new();
    co_task *w = co_wrap_tsfuture(f);
    MT_EQ(co_loop_free(L), 0);
    atomic_store(&go, 1);
    co_tsfuture_set_result(f, NULL);
    co_pool_free(p);
    for (int i = 0; i < 4; i++) co_task_release(ts[i]);
    co_task_release(w);
    co_tsfuture_release(f);
    /* queued ones were cancelled with the loop; started ones' results freed */
    MT_EQ(atomic_load(&freed), atomic_load(&started));
}
