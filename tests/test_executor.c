/* test_executor.c — blocking work and thread-safe futures as tasks the
 * combinators accept: co_to_thread, co_run_in_executor, co_wrap_tsfuture;
 * their cancellation (queued job never runs, running job's late result
 * goes to the destructor) and a loop freed under them. */
#include "testutil.h"

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void nap(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- five blocking 1 s calls gathered ------------------------------------------ */

static atomic_int running, peak;

static void *settle(void *arg) {
    int n = atomic_fetch_add(&running, 1) + 1;
    int p = atomic_load(&peak);
    while (n > p && !atomic_compare_exchange_weak(&peak, &p, n)) {
    }
    nap(1.0); /* a blocking call */
    atomic_fetch_sub(&running, 1);
    return (void *)((intptr_t)arg * 10);
}

static co_pool *five;

static void *gather_five(void *arg) {
    co_task *ts[5];
    for (intptr_t i = 0; i < 5; i++) {
        ts[i] = co_run_in_executor(five, settle, (void *)(i + 1), NULL);
        cr_assert_not_null(ts[i], "co_run_in_executor: %s", co_strerror(errno));
    }
    co_result r[5];
    double t0 = mono();
    int rc = co_gather(ts, 5, r, 0);
    double took = mono() - t0;
    cr_assert_eq(rc, 0, "%s", co_err_name(rc));
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(r[i].state, CO_DONE);
        cr_assert_eq((intptr_t)r[i].value, (i + 1) * 10, "results in order");
        co_task_release(ts[i]);
    }
    cr_assert_eq(atomic_load(&peak), 5, "all five ran at once (peak %d)", atomic_load(&peak));
    cr_assert_lt(took, 4.5, "gathered five 1 s calls took %.2f s (one after another: 5 s)", took);
    return NULL;
}

/* On the virtual clock too: a loop whose only work is on other threads
 * must wait for it, not end or jump. */
Test(executor, five_blocking_calls_gathered_run_at_once) {
    five = co_pool_new(5);
    cr_assert_not_null(five);
    tu_run_ok(gather_five, NULL);
    co_pool_free(five);
}

/* ---- the default pool, failures ------------------------------------------------ */

static void *twice(void *arg) { return (void *)((intptr_t)arg * 2); }
static void *refuse(void *arg) {
    co_blocking_fail(-EPERM, "no entry for %s", (char *)arg);
    return NULL;
}

static void *to_thread_default_pool(void *arg) {
    co_task *t = co_to_thread(twice, (void *)21);
    cr_assert_not_null(t);
    void *v = NULL;
    cr_assert_eq(co_join(t, &v), 0);
    cr_assert_eq((intptr_t)v, 42);
    co_task_release(t);

    t = co_to_thread(refuse, "bob");
    cr_assert_eq(co_join(t, NULL), -EPERM);
    cr_assert_str_eq(co_task_message(t), "no entry for bob");
    co_task_release(t);

    errno = 0;
    cr_assert_null(co_to_thread(NULL, NULL));
    cr_assert_eq(errno, EINVAL);
    return NULL;
}

Test(executor, to_thread_value_and_error) {
    tu_run_ok(to_thread_default_pool, NULL);
}

Test(executor, needs_a_loop) {
    co_loop_set_current(NULL);
    errno = 0;
    cr_assert_null(co_to_thread(twice, NULL));
    cr_assert_eq(errno, CO_ENOLOOP);
    co_tsfuture *f = co_tsfuture_new();
    cr_assert_null(co_wrap_tsfuture(f));
    cr_assert_eq(errno, CO_ENOLOOP);
    cr_assert_null(co_wrap_tsfuture(NULL));
    cr_assert_eq(errno, EINVAL);
    co_tsfuture_release(f);
}

/* ---- cancellation ---------------------------------------------------------------- */

static atomic_int gate;     /* 1: blocked jobs may go on */
static atomic_int started;  /* jobs that began */
static atomic_int freed;    /* results passed to the destructor */

static void *wait_gate(void *arg) {
    atomic_fetch_add(&started, 1);
    for (int i = 0; i < 10000 && !atomic_load(&gate); i++) nap(0.001);
    return arg;
}
static void count_free(void *v) { atomic_fetch_add(&freed, 1); }

static void *cancel_queued_and_running(void *arg) {
    co_pool *one = arg;
    co_task *a = co_run_in_executor(one, wait_gate, (void *)1, count_free);
    co_task *b = co_run_in_executor(one, wait_gate, (void *)2, count_free); /* queued behind a */
    while (atomic_load(&started) < 1) co_sleep(0.001);
    cr_assert_eq(co_cancel(b, NULL), 1);
    cr_assert_eq(co_task_state(b), CO_CANCELLED, "cancelled at once, as a future");
    cr_assert_eq(co_cancel(a, "enough"), 1);
    cr_assert_eq(co_join(a, NULL), -ECANCELED);
    cr_assert_eq(co_join(b, NULL), -ECANCELED);
    co_task_release(a);
    co_task_release(b);
    atomic_store(&gate, 1);
    co_pool_shutdown(one, CO_POOL_WAIT); /* a's job finishes; b's never started */
    co_sleep(0.01);                      /* the completion reaches this loop */
    return NULL;
}

Test(executor, cancel_skips_a_queued_job_and_frees_a_late_result) {
    co_pool *one = co_pool_new(1);
    co_loop *L = tu_loop_opts(false, false, 0);
    cr_assert_eq(tu_run(L, cancel_queued_and_running, one, NULL), 0);
    tu_close(L);
    co_pool_free(one);
    cr_assert_eq(atomic_load(&started), 1, "the queued job never ran");
    cr_assert_eq(atomic_load(&freed), 1, "the running job's late result went to the destructor");
}

/* A timeout while the job runs: co_wait_for gives -ETIMEDOUT, the task is
 * cancelled, and the job's late result goes to the destructor. */
static void *time_out_a_running_job(void *arg) {
    co_pool *one = arg;
    co_task *t = co_run_in_executor(one, wait_gate, (void *)1, count_free);
    while (atomic_load(&started) < 1) co_sleep(0.001);
    cr_assert_eq(co_wait_for(t, 0.05, NULL), -ETIMEDOUT);
    cr_assert_eq(co_task_state(t), CO_CANCELLED);
    co_task_release(t);
    atomic_store(&gate, 1);
    co_pool_shutdown(one, CO_POOL_WAIT);
    co_sleep(0.01); /* the completion reaches this loop */
    return NULL;
}

Test(executor, wait_for_times_out_a_running_job) {
    atomic_store(&gate, 0);
    atomic_store(&started, 0);
    atomic_store(&freed, 0);
    co_pool *one = co_pool_new(1);
    co_loop *L = tu_loop_opts(false, false, 0);
    cr_assert_eq(tu_run(L, time_out_a_running_job, one, NULL), 0);
    tu_close(L);
    co_pool_free(one);
    cr_assert_eq(atomic_load(&freed), 1, "the late result went to the destructor");
}

/* ---- wrap_future ------------------------------------------------------------------- */

static void *set_later(void *arg) {
    nap(0.01);
    co_tsfuture_set_result(arg, (void *)7);
    return NULL;
}

static void *wrap_and_cancel(void *arg) {
    co_tsfuture *f = co_tsfuture_new();
    co_task *t = co_wrap_tsfuture(f);
    cr_assert_not_null(t);
    co_tsfuture *g = co_pool_submit(NULL, set_later, f);
    void *v = NULL;
    cr_assert_eq(co_join(t, &v), 0); /* (no timer: the virtual clock has nothing to jump to) */
    cr_assert_eq((intptr_t)v, 7);
    co_task_release(t);
    co_tsfuture_wait(g, CO_FOREVER, NULL);
    co_tsfuture_release(g);
    co_tsfuture_release(f);

    f = co_tsfuture_new();
    t = co_wrap_tsfuture(f);
    co_task *both[2] = {t, t};
    co_cancel(t, NULL);
    cr_assert_eq(co_gather(both, 1, NULL, 0), -ECANCELED);
    cr_assert_eq(co_tsfuture_state(f), CO_CANCELLED, "cancelling the task cancels the future");
    co_task_release(t);
    co_tsfuture_release(f);

    f = co_tsfuture_new(); /* already finished: the task finishes at the next turn */
    co_tsfuture_set_error(f, -EIO, "disk gone");
    t = co_wrap_tsfuture(f);
    co_tsfuture_release(f);
    cr_assert_eq(co_join(t, NULL), -EIO);
    cr_assert_str_eq(co_task_message(t), "disk gone");
    co_task_release(t);
    return NULL;
}

Test(executor, wrap_tsfuture) {
    tu_run_ok(wrap_and_cancel, NULL);
}

/* The loop goes away while a job still runs: the job finishes later on its
 * thread, and nothing touches the freed loop (ASan watches). */
Test(executor, loop_freed_under_a_running_job) {
    atomic_store(&gate, 0);
    co_pool *one = co_pool_new(1);
    co_loop *L = tu_loop();
    co_task *t = co_run_in_executor(one, wait_gate, (void *)1, count_free);
    cr_assert_not_null(t);
    while (atomic_load(&started) < 1) nap(0.001);
    cr_assert_eq(co_loop_free(L), 0);
    atomic_store(&gate, 1);
    co_pool_shutdown(one, CO_POOL_WAIT);
    cr_assert_eq(co_task_state(t), CO_PENDING, "never finished: its loop went first");
    co_task_release(t);
    co_pool_free(one);
    cr_assert_eq(atomic_load(&freed), 1, "the result nobody can read was freed");
}
