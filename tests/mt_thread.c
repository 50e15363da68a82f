/* mt_thread.c — thread pools, co_run_blocking, thread-safe futures,
 * cross-thread calls, thread loops and the runtime, with real threads
 * (this program also runs under ThreadSanitizer: make test-tsan). */
#include "mt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <stdint.h>
#include <sys/stat.h>

/* ---- helpers ---------------------------------------------------------------------- */

/* A gate threads wait at until it opens, or until a timeout (so a broken
 * library fails the test instead of hanging it). */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open, arrived;
} gate;

static void gate_open(gate *g) {
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}
/* Arrive; wait until `need` have arrived or the gate is opened; returns
 * whether that happened within `secs`. */
static bool gate_meet(gate *g, int need, double secs) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)secs;
    pthread_mutex_lock(&g->mu);
    g->arrived++;
    pthread_cond_broadcast(&g->cv);
    int rc = 0;
    while (!g->open && g->arrived < need && rc == 0) rc = pthread_cond_timedwait(&g->cv, &g->mu, &until);
    bool ok = g->open || g->arrived >= need;
    pthread_mutex_unlock(&g->mu);
    return ok;
}

static co_loop *new_loop(void) {
    co_loop *L = co_loop_new(NULL);
    MT_CHECK(L != NULL, "co_loop_new: %s", strerror(errno));
    co_loop_set_current(L);
    return L;
}

static int run_task(co_loop *L, co_fn fn, void *arg, void **value) {
    co_task *t = co_spawn(fn, arg);
    MT_CHECK(t != NULL);
    int rc = co_loop_run_until_complete(L, t, value);
    co_task_release(t);
    return rc;
}

static void *times_two(void *arg) { return (void *)((intptr_t)arg * 2); }

/* ---- pools ---------------------------------------------------------------------- */

MT_TEST(pool_submit_from_a_plain_thread) {
    co_pool *p = co_pool_new(3);
    MT_CHECK(p != NULL);
    MT_EQ(co_pool_size(p), 3);
    co_tsfuture *fs[200];
    for (int i = 0; i < 200; i++) MT_CHECK((fs[i] = co_pool_submit(p, times_two, (void *)(intptr_t)i)) != NULL);
    for (int i = 0; i < 200; i++) {
        void *v = NULL;
        MT_OK(co_tsfuture_wait(fs[i], CO_FOREVER, &v));
        MT_EQ((intptr_t)v, 2 * i);
        MT_EQ(co_tsfuture_state(fs[i]), CO_DONE);
        co_tsfuture_release(fs[i]);
    }
    co_pool_free(p);
}

/* The jobs of a pool of 4 run at the same time: each waits at a gate that
 * opens only when all 4 are there (no GIL). */
static gate g_par = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
static void *meet_4(void *arg) { return (void *)(intptr_t)gate_meet(&g_par, 4, 20); }

MT_TEST(pool_threads_really_run_in_parallel) {
    co_pool *p = co_pool_new(4);
    co_tsfuture *fs[4];
    for (int i = 0; i < 4; i++) fs[i] = co_pool_submit(p, meet_4, NULL);
    for (int i = 0; i < 4; i++) {
        void *v = NULL;
        MT_OK(co_tsfuture_wait(fs[i], CO_FOREVER, &v));
        MT_CHECK(v == (void *)1, "job %d never met the others: the pool did not run 4 at once", i);
        co_tsfuture_release(fs[i]);
    }
    co_pool_free(p);
}

static gate g_rs = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
static void *meet_3(void *arg) { return (void *)(intptr_t)gate_meet(&g_rs, 3, 20); }
static atomic_int n_ran;
static void *count_job(void *arg) {
    atomic_fetch_add(&n_ran, 1);
    return arg;
}

MT_TEST(pool_resize_grows_and_shrinks) {
    co_pool *p = co_pool_new(1);
    MT_OK(co_pool_resize(p, 3));
    MT_EQ(co_pool_size(p), 3);
    co_tsfuture *fs[3];
    for (int i = 0; i < 3; i++) fs[i] = co_pool_submit(p, meet_3, NULL);
    for (int i = 0; i < 3; i++) {
        void *v = NULL;
        MT_OK(co_tsfuture_wait(fs[i], CO_FOREVER, &v));
        MT_CHECK(v == (void *)1, "after growing to 3, job %d did not run beside two others", i);
        co_tsfuture_release(fs[i]);
    }
    MT_OK(co_pool_resize(p, 1));
    MT_EQ(co_pool_size(p), 1);
    for (int i = 0; i < 50; i++) {
        co_tsfuture *f = co_pool_submit(p, count_job, NULL);
        MT_OK(co_tsfuture_wait(f, CO_FOREVER, NULL));
        co_tsfuture_release(f);
    }
    MT_EQ(atomic_load(&n_ran), 50);
    MT_EQ(co_pool_resize(p, 0), -EINVAL);
    MT_EQ(co_pool_resize(p, 5000), -EINVAL);
    co_pool_free(p);
}

/* Shrinking while jobs come one at a time: a thread that leaves as
 * surplus may be the spinner a submitter counted on instead of waking a
 * sleeper, and nothing but a later submission or a grow would take the
 * job then. Each round grows the pool, shrinks it to one thread, and then
 * the stream of jobs must go on (100 more, bounded by a generous 10 s:
 * only a job left in the queue fails it). */
static co_pool *g_resize_pool;
static atomic_int resize_stop;
static atomic_long resize_done;
static void *one_at_a_time(void *arg) {
    while (!atomic_load(&resize_stop)) {
        co_tsfuture *f = co_pool_submit(g_resize_pool, count_job, NULL);
        MT_CHECK(f != NULL);
        MT_OK(co_tsfuture_wait(f, CO_FOREVER, NULL));
        co_tsfuture_release(f);
        atomic_fetch_add(&resize_done, 1);
    }
    return arg;
}

MT_TEST(shrinking_between_one_at_a_time_jobs_strands_none) {
    g_resize_pool = co_pool_new(4);
    pthread_t th;
    pthread_create(&th, NULL, one_at_a_time, NULL);
    for (int round = 0; round < 300; round++) {
        MT_OK(co_pool_resize(g_resize_pool, 4));
        mt_sleep(0.0002 * (round % 3));
        MT_OK(co_pool_resize(g_resize_pool, 1));
        long from = atomic_load(&resize_done);
        double until = mt_now() + 10;
        while (atomic_load(&resize_done) < from + 100 && mt_now() < until) mt_sleep(0.0002);
        MT_CHECK(atomic_load(&resize_done) >= from + 100, "round %d: a job was stranded after the pool shrank",
                 round);
    }
    atomic_store(&resize_stop, 1);
    pthread_join(th, NULL);
    MT_EQ(atomic_load(&n_ran), atomic_load(&resize_done));
    co_pool_free(g_resize_pool);
}

static gate g_block = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
static atomic_int blocker_started;
static void *blocker(void *arg) {
    atomic_store(&blocker_started, 1);
    gate_meet(&g_block, 1000, 20); /* until opened */
    return arg;
}
static void *opener(void *arg) {
    mt_sleep(0.1);
    gate_open(arg);
    return NULL;
}

MT_TEST(pool_shutdown_cancels_queued_jobs) {
    co_pool *p = co_pool_new(1);
    co_tsfuture *b = co_pool_submit(p, blocker, (void *)7);
    co_tsfuture *q[5];
    for (int i = 0; i < 5; i++) q[i] = co_pool_submit(p, count_job, NULL);
    while (co_tsfuture_state(b) != CO_RUNNING) mt_sleep(0.001);
    MT_EQ(co_pool_queued(p), 5);
    pthread_t th;
    pthread_create(&th, NULL, opener, &g_block);
    MT_OK(co_pool_shutdown(p, CO_POOL_CANCEL_QUEUED)); /* waits for the running one */
    pthread_join(th, NULL);
    void *v = NULL;
    MT_OK(co_tsfuture_wait(b, 0, &v));
    MT_EQ((intptr_t)v, 7);
    for (int i = 0; i < 5; i++) {
        MT_EQ(co_tsfuture_state(q[i]), CO_CANCELLED);
        MT_EQ(co_tsfuture_wait(q[i], CO_FOREVER, NULL), -ECANCELED);
        co_tsfuture_release(q[i]);
    }
    MT_EQ(atomic_load(&n_ran), 0);
    errno = 0;
    MT_CHECK(co_pool_submit(p, count_job, NULL) == NULL && errno == CO_ESHUTDOWN, "errno %d", errno);
    MT_OK(co_pool_shutdown(p, CO_POOL_WAIT)); /* again: harmless */
    co_tsfuture_release(b);
    co_pool_free(p);
}

MT_TEST(pool_shutdown_wait_runs_every_queued_job) {
    co_pool *p = co_pool_new(2);
    co_tsfuture *fs[100];
    for (int i = 0; i < 100; i++) fs[i] = co_pool_submit(p, count_job, NULL);
    MT_OK(co_pool_shutdown(p, CO_POOL_WAIT));
    MT_EQ(atomic_load(&n_ran), 100);
    for (int i = 0; i < 100; i++) {
        MT_EQ(co_tsfuture_state(fs[i]), CO_DONE);
        co_tsfuture_release(fs[i]);
    }
    co_pool_free(p);
}

/* More jobs than the ring holds (65536): the rest wait in the overflow
 * list. One thread, held at a gate, so the order they run in is the order
 * the pool hands them out: first in, first out across the ring and the
 * list. Jobs cancelled in either never run, and co_pool_queued drops at
 * once; a CANCEL_QUEUED shutdown cancels both parts. */
#define NOVER 70000
static gate g_over = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
static void *hold_over(void *arg) {
    gate_meet(&g_over, 1000, 20); /* until opened */
    return arg;
}
static int over_order[NOVER];
static atomic_int over_n;
static void *record_over(void *arg) {
    int k = atomic_fetch_add(&over_n, 1);
    if (k < NOVER) over_order[k] = (int)(intptr_t)arg;
    return arg;
}

MT_TEST(pool_overflow_keeps_order_and_cancels) {
    co_pool *p = co_pool_new(1);
    co_tsfuture *b = co_pool_submit(p, hold_over, NULL);
    while (co_tsfuture_state(b) != CO_RUNNING) mt_sleep(0.001);
    static co_tsfuture *fs[NOVER];
    for (int i = 0; i < NOVER; i++) MT_CHECK((fs[i] = co_pool_submit(p, record_over, (void *)(intptr_t)i)) != NULL);
    MT_EQ(co_pool_queued(p), NOVER);
    int ncancel = 0;
    for (int i = 0; i < NOVER; i += 7, ncancel++) MT_EQ(co_tsfuture_cancel(fs[i]), 1);
    MT_EQ(co_pool_queued(p), NOVER - ncancel); /* cancelled ones stop counting at once */
    gate_open(&g_over);
    for (int i = 0; i < NOVER; i++) {
        void *v = NULL;
        int rc = co_tsfuture_wait(fs[i], 10, &v);
        if (i % 7 == 0) MT_EQ(rc, -ECANCELED);
        else MT_CHECK(rc == 0 && v == (void *)(intptr_t)i, "job %d: %d", i, rc);
        co_tsfuture_release(fs[i]);
    }
    MT_EQ(atomic_load(&over_n), NOVER - ncancel);
    for (int k = 1; k < NOVER - ncancel; k++)
        MT_CHECK(over_order[k] > over_order[k - 1], "job %d ran after job %d", over_order[k], over_order[k - 1]);
    MT_EQ(co_pool_queued(p), 0);
    co_tsfuture_release(b);

    /* again, and shut down with the ring and the list both full */
    g_over.open = 0;
    b = co_pool_submit(p, hold_over, NULL);
    while (co_tsfuture_state(b) != CO_RUNNING) mt_sleep(0.001);
    atomic_store(&over_n, 0);
    for (int i = 0; i < NOVER; i++) MT_CHECK((fs[i] = co_pool_submit(p, record_over, (void *)(intptr_t)i)) != NULL);
    pthread_t th;
    pthread_create(&th, NULL, opener, &g_over);
    MT_OK(co_pool_shutdown(p, CO_POOL_CANCEL_QUEUED));
    pthread_join(th, NULL);
    MT_EQ(atomic_load(&over_n), 0);
    for (int i = 0; i < NOVER; i++) {
        MT_EQ(co_tsfuture_state(fs[i]), CO_CANCELLED);
        co_tsfuture_release(fs[i]);
    }
    MT_EQ(co_pool_queued(p), 0);
    co_tsfuture_release(b);
    co_pool_free(p);
}

/* Submissions racing with a shutdown: each one is either refused
 * (NULL, CO_ESHUTDOWN) or accepted and then run; none is lost, none
 * hangs, and after the shutdown returns every accepted job has run. */
static co_pool *g_race_pool;
static atomic_long race_ran, race_accepted;
static void *race_job(void *arg) {
    atomic_fetch_add(&race_ran, 1);
    return arg;
}
static void *race_submitter(void *arg) {
    for (int i = 0; i < 100000; i++) {
        errno = 0;
        co_tsfuture *f = co_pool_submit(g_race_pool, race_job, NULL);
        if (!f) {
            MT_EQ(errno, CO_ESHUTDOWN);
            break;
        }
        atomic_fetch_add(&race_accepted, 1);
        co_tsfuture_release(f);
    }
    return NULL;
}

MT_TEST(submissions_racing_with_shutdown_are_run_or_refused) {
    for (int round = 0; round < 20; round++) {
        g_race_pool = co_pool_new(2);
        atomic_store(&race_ran, 0);
        atomic_store(&race_accepted, 0);
        pthread_t th[3];
        for (int k = 0; k < 3; k++) pthread_create(&th[k], NULL, race_submitter, NULL);
        mt_sleep(0.001 * (round % 4));
        MT_OK(co_pool_shutdown(g_race_pool, CO_POOL_WAIT));
        long ran = atomic_load(&race_ran);
        for (int k = 0; k < 3; k++) pthread_join(th[k], NULL);
        MT_EQ(ran, atomic_load(&race_accepted)); /* everything accepted ran before shutdown returned */
        MT_EQ(co_pool_queued(g_race_pool), 0);
        co_pool_free(g_race_pool);
    }
}

static co_pool *g_self_pool;
static void *shutdown_self(void *arg) { return (void *)(intptr_t)co_pool_shutdown(g_self_pool, CO_POOL_WAIT); }

MT_TEST(pool_shutdown_from_its_own_thread_is_edeadlk) {
    g_self_pool = co_pool_new(1);
    co_tsfuture *f = co_pool_submit(g_self_pool, shutdown_self, NULL);
    void *v = NULL;
    MT_OK(co_tsfuture_wait(f, CO_FOREVER, &v));
    MT_EQ((intptr_t)v, -EDEADLK);
    co_tsfuture_release(f);
    co_pool_free(g_self_pool);
}

MT_TEST(default_pool_size_from_corio_threads) {
    setenv("CORIO_THREADS", "3", 1);
    co_pool *p = co_pool_default();
    MT_CHECK(p != NULL);
    MT_EQ(co_pool_size(p), 3);
    MT_CHECK(co_pool_default() == p);
    MT_OK(co_pool_set_default_size(5));
    MT_EQ(co_pool_size(p), 5);
    co_pool_free(p); /* refused: the default pool is the library's */
    MT_EQ(co_pool_size(co_pool_default()), 5);
}

MT_TEST(default_pool_size_is_pythons_default) {
    unsetenv("CORIO_THREADS");
    long c = sysconf(_SC_NPROCESSORS_ONLN) + 4;
    MT_EQ(co_pool_size(co_pool_default()), c < 32 ? c : 32);
}

MT_TEST(bad_arguments_get_errors) {
    errno = 0;
    MT_CHECK(co_pool_submit(NULL, NULL, NULL) == NULL && errno == EINVAL);
    MT_CHECK(co_pool_new(5000) == NULL && errno == EINVAL);
    MT_EQ(co_tsfuture_wait(NULL, 1, NULL), -EINVAL);
    MT_EQ(co_tsfuture_cancel(NULL), -EINVAL);
    MT_EQ(co_loop_call_threadsafe(NULL, NULL, NULL), -EINVAL);
    MT_EQ(co_run_blocking(times_two, NULL, NULL), -CO_ENOTASK);
    MT_EQ(co_blocking_fail(-EIO, "not in a job"), -EINVAL);
    MT_CHECK(!co_blocking_cancelled());
    MT_EQ(co_thread_loop_stop(NULL, 0), -EINVAL);
    co_tsfuture *f = co_tsfuture_new();
    MT_EQ(co_tsfuture_wait(f, 0.0 / 0.0, NULL), -EINVAL);
    MT_EQ(co_tsfuture_set_error(f, 5, NULL), -EINVAL);
    co_tsfuture_release(f);
}

/* ---- co_run_blocking ---------------------------------------------------------------- */

static atomic_int ticks;
static void *ticker(void *arg) {
    for (;;) {
        if (co_sleep(0.01)) return NULL;
        atomic_fetch_add(&ticks, 1);
    }
}
static void *sleep_then_value(void *arg) {
    mt_sleep(0.3);
    return arg;
}
static void *run_blocking_main(void *arg) {
    co_task *tk = co_spawn(ticker, NULL);
    void *v = NULL;
    int rc = co_run_blocking(sleep_then_value, (void *)42, &v);
    MT_OK(rc);
    MT_EQ((intptr_t)v, 42);
    co_cancel(tk, NULL);
    co_join(tk, NULL);
    co_task_release(tk);
    return NULL;
}

MT_TEST(run_blocking_leaves_the_loop_free) {
    co_loop *L = new_loop();
    MT_OK(run_task(L, run_blocking_main, NULL, NULL));
    /* 0.3 s of blocking call; the ticker ran every 10 ms meanwhile */
    MT_CHECK(atomic_load(&ticks) >= 10, "ticker ran %d times while the job blocked", atomic_load(&ticks));
    MT_OK(co_loop_free(L));
}

static void *failing_job(void *arg) {
    co_blocking_fail(-EIO, "disk %d is gone", 3);
    return malloc(16); /* ignored, handed to free_result */
}
static void *run_failing(void *arg) {
    void *v = (void *)1;
    MT_EQ(co_run_blocking_ex(NULL, failing_job, NULL, free, &v), -EIO);
    MT_CHECK(v == (void *)1, "a failed job must not store a result");
    co_tsfuture *f = co_pool_submit_ex(NULL, failing_job, NULL, free);
    MT_EQ(co_tsfuture_wait(f, CO_FOREVER, NULL), -EIO);
    MT_EQ(co_tsfuture_state(f), CO_FAILED);
    MT_CHECK(strcmp(co_tsfuture_message(f), "disk 3 is gone") == 0, "%s", co_tsfuture_message(f));
    co_tsfuture_release(f);
    return NULL;
}

MT_TEST(run_blocking_reports_the_jobs_error) {
    co_loop *L = new_loop();
    MT_OK(run_task(L, run_failing, NULL, NULL));
    MT_OK(co_loop_free(L));
}

/* Cancel a waiter whose job has not started: the job never runs. */
static co_pool *g_p1;
static void *wait_blocker(void *arg) { return (void *)(intptr_t)co_run_blocking_on(g_p1, blocker, NULL, NULL); }
static void *wait_counter(void *arg) { return (void *)(intptr_t)co_run_blocking_on(g_p1, count_job, NULL, NULL); }
static void *cancel_queued_main(void *arg) {
    co_task *a = co_spawn(wait_blocker, NULL);
    co_task *b = co_spawn(wait_counter, NULL);
    /* a's job runs, b's is queued behind it */
    while (!atomic_load(&blocker_started) || co_pool_queued(g_p1) < 1) co_sleep(0.001);
    MT_EQ(co_cancel(b, NULL), 1);
    MT_EQ(co_join(b, NULL), -ECANCELED);
    MT_EQ(co_pool_queued(g_p1), 0); /* taken out of the queue at once */
    gate_open(&g_block);
    void *v;
    MT_OK(co_join(a, &v));
    MT_EQ((intptr_t)v, 0);
    co_task_release(a);
    co_task_release(b);
    return NULL;
}

MT_TEST(cancel_removes_a_queued_job) {
    g_p1 = co_pool_new(1);
    co_loop *L = new_loop();
    MT_OK(run_task(L, cancel_queued_main, NULL, NULL));
    MT_OK(co_loop_free(L));
    co_pool_free(g_p1);
    MT_EQ(atomic_load(&n_ran), 0);
}

/* Cancel a waiter whose job runs: the waiter returns at once; the job sees
 * co_blocking_cancelled() and stops; its late result is freed through the
 * destructor. */
static atomic_int freed, saw_cancel;
static void count_free(void *p) {
    atomic_fetch_add(&freed, 1);
    free(p);
}
static void *cooperative(void *arg) {
    atomic_store((atomic_int *)arg, 1); /* started */
    double t0 = mt_now();
    while (!co_blocking_cancelled() && mt_now() - t0 < 20) mt_sleep(0.001);
    if (co_blocking_cancelled()) atomic_store(&saw_cancel, 1);
    return malloc(64);
}
static void *wait_cooperative(void *arg) {
    void *v = NULL;
    int rc = co_run_blocking_ex(NULL, cooperative, arg, count_free, &v);
    MT_CHECK(v == NULL);
    return (void *)(intptr_t)rc;
}
static void *cancel_running_main(void *arg) {
    atomic_int started = 0;
    co_task *t = co_spawn(wait_cooperative, &started);
    while (!atomic_load(&started)) co_sleep(0.001);
    co_cancel(t, NULL);
    void *v = NULL;
    MT_EQ(co_join(t, &v), -ECANCELED); /* the task itself was cancelled */
    co_task_release(t);
    return NULL;
}

MT_TEST(cancel_while_the_job_runs_frees_the_late_result) {
    co_loop *L = new_loop();
    MT_OK(run_task(L, cancel_running_main, NULL, NULL));
    MT_OK(co_loop_free(L));
    for (int i = 0; i < 2000 && atomic_load(&freed) == 0; i++) mt_sleep(0.005);
    MT_EQ(atomic_load(&saw_cancel), 1);
    MT_EQ(atomic_load(&freed), 1);
}

/* A scope's deadline reaches a task in co_run_blocking too. */
static void *scoped_wait(void *arg) {
    co_scope s;
    MT_OK(co_scope_enter(&s, 0.05, CO_FAIL_AFTER));
    int rc = co_run_blocking(blocker, NULL, NULL);
    MT_EQ(rc, -ECANCELED);
    MT_EQ(co_scope_exit(&s), -ETIMEDOUT);
    gate_open(&g_block);
    return NULL;
}

MT_TEST(scope_deadline_interrupts_run_blocking) {
    co_loop *L = new_loop();
    MT_OK(run_task(L, scoped_wait, NULL, NULL));
    MT_OK(co_loop_free(L));
}

/* ---- thread-safe futures ---------------------------------------------------------------- */

static atomic_int cb_calls;
static void on_done(co_tsfuture *f, void *arg) {
    MT_CHECK(co_tsfuture_done(f));
    atomic_fetch_add(&cb_calls, 1);
    *(intptr_t *)arg = co_tsfuture_state(f);
}
static void *set_later(void *arg) {
    mt_sleep(0.05);
    MT_OK(co_tsfuture_set_result(arg, (void *)99));
    return NULL;
}

MT_TEST(tsfuture_between_threads) {
    co_tsfuture *f = co_tsfuture_new();
    intptr_t st = -1;
    MT_EQ(co_tsfuture_wait(f, 0.01, NULL), -ETIMEDOUT);
    MT_EQ(co_tsfuture_result(f, NULL), -EAGAIN);
    MT_OK(co_tsfuture_add_done_callback(f, on_done, &st));
    MT_OK(co_tsfuture_set_running(f));
    MT_EQ(co_tsfuture_state(f), CO_RUNNING);
    pthread_t th;
    pthread_create(&th, NULL, set_later, f);
    void *v = NULL;
    MT_OK(co_tsfuture_wait(f, 10, &v));
    pthread_join(th, NULL);
    MT_EQ((intptr_t)v, 99);
    MT_EQ(atomic_load(&cb_calls), 1);
    MT_EQ(st, CO_DONE);
    MT_EQ(co_tsfuture_set_result(f, NULL), -CO_EINVALSTATE);
    MT_EQ(co_tsfuture_cancel(f), 0);
    intptr_t st2 = -1;
    MT_OK(co_tsfuture_add_done_callback(f, on_done, &st2)); /* already done: runs at once */
    MT_EQ(st2, CO_DONE);
    co_tsfuture_release(f);
}

MT_TEST(tsfuture_cancel_before_it_runs) {
    co_tsfuture *f = co_tsfuture_new();
    intptr_t st = -1;
    co_tsfuture_add_done_callback(f, on_done, &st);
    MT_EQ(co_tsfuture_cancel(f), 1);
    MT_EQ(st, CO_CANCELLED);
    MT_EQ(co_tsfuture_wait(f, CO_FOREVER, NULL), -ECANCELED);
    MT_EQ(co_tsfuture_set_running(f), -ECANCELED);
    MT_EQ(co_tsfuture_set_result(f, NULL), -CO_EINVALSTATE);
    co_tsfuture_release(f);
}

MT_TEST(tsfuture_unread_value_is_freed) {
    co_tsfuture *f = co_tsfuture_new();
    co_tsfuture_set_free_result(f, count_free);
    co_tsfuture_set_result(f, malloc(8));
    co_tsfuture_release(f);
    MT_EQ(atomic_load(&freed), 1);
    f = co_tsfuture_new(); /* read: the reader owns it */
    co_tsfuture_set_free_result(f, count_free);
    co_tsfuture_set_result(f, malloc(8));
    void *v = NULL;
    MT_OK(co_tsfuture_result(f, &v));
    co_tsfuture_release(f);
    MT_EQ(atomic_load(&freed), 1);
    free(v);
}

/* Tasks waiting on futures completed by other threads, with timeouts. */
static void *await_with_timeout(void *arg) {
    co_tsfuture *f = arg;
    MT_EQ(co_tsfuture_wait(f, 0.02, NULL), -ETIMEDOUT);
    void *v = NULL;
    MT_OK(co_tsfuture_wait(f, 10, &v));
    return v;
}

MT_TEST(task_awaits_a_tsfuture) {
    co_loop *L = new_loop();
    co_tsfuture *f = co_tsfuture_new();
    pthread_t th;
    pthread_create(&th, NULL, set_later, f);
    void *v = NULL;
    MT_OK(run_task(L, await_with_timeout, f, &v));
    MT_EQ((intptr_t)v, 99);
    pthread_join(th, NULL);
    co_tsfuture_release(f);
    MT_OK(co_loop_free(L));
}

/* Many tasks wait on futures completed by 4 threads at once; half of the
 * tasks are cancelled while they wait. Nothing is lost, nothing hangs. */
#define NW 400
static co_tsfuture *wf[NW];
static void *await_one(void *arg) {
    void *v = NULL;
    int rc = co_tsfuture_wait(wf[(intptr_t)arg], CO_FOREVER, &v);
    if (rc == 0) MT_EQ((intptr_t)v, (intptr_t)arg);
    return (void *)(intptr_t)rc;
}
static void *completer(void *arg) {
    for (intptr_t i = (intptr_t)arg; i < NW; i += 4) {
        if (i % 7 == 0) mt_sleep(0.0005);
        co_tsfuture_set_result(wf[i], (void *)i);
    }
    return NULL;
}
static void *many_waiters_main(void *arg) {
    co_task *ts[NW];
    for (intptr_t i = 0; i < NW; i++) ts[i] = co_spawn(await_one, (void *)i);
    co_yield();
    pthread_t th[4];
    for (intptr_t k = 0; k < 4; k++) pthread_create(&th[k], NULL, completer, (void *)k);
    for (int i = 0; i < NW; i += 2) co_cancel(ts[i], NULL);
    int ok = 0, cancelled = 0;
    for (int i = 0; i < NW; i++) {
        void *v;
        int rc = co_join(ts[i], &v);
        if (rc == 0 && v == NULL) ok++;
        else if (rc == -ECANCELED || (rc == 0 && (intptr_t)v == -ECANCELED)) cancelled++;
        co_task_release(ts[i]);
    }
    for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
    MT_EQ(ok + cancelled, NW);
    MT_CHECK(ok >= NW / 2, "only %d of the uncancelled waiters got their value", ok);
    return NULL;
}

MT_TEST(many_tasks_await_futures_completed_by_four_threads) {
    for (int i = 0; i < NW; i++) wf[i] = co_tsfuture_new();
    co_loop *L = new_loop();
    MT_OK(run_task(L, many_waiters_main, NULL, NULL));
    MT_OK(co_loop_free(L));
    for (int i = 0; i < NW; i++) co_tsfuture_release(wf[i]);
}

/* Four plain threads submit to one pool at once, with done-callbacks. */
static co_pool *g_sp;
static atomic_long cb_sum;
static void sum_cb(co_tsfuture *f, void *arg) {
    void *v = NULL;
    if (co_tsfuture_result(f, &v) == 0) atomic_fetch_add(&cb_sum, (long)(intptr_t)v);
}
static void *submitter(void *arg) {
    long base = (long)(intptr_t)arg * 100000;
    for (long i = 0; i < 5000; i++) {
        co_tsfuture *f = co_pool_submit(g_sp, times_two, (void *)(intptr_t)(base + i));
        MT_CHECK(f != NULL);
        MT_OK(co_tsfuture_add_done_callback(f, sum_cb, NULL));
        if (i % 3 == 0) MT_OK(co_tsfuture_wait(f, CO_FOREVER, NULL));
        co_tsfuture_release(f);
    }
    return NULL;
}

MT_TEST(stress_four_threads_submit_at_once) {
    g_sp = co_pool_new(3);
    pthread_t th[4];
    for (intptr_t k = 0; k < 4; k++) pthread_create(&th[k], NULL, submitter, (void *)k);
    for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
    MT_OK(co_pool_shutdown(g_sp, CO_POOL_WAIT));
    long want = 0;
    for (long k = 0; k < 4; k++)
        for (long i = 0; i < 5000; i++) want += 2 * (k * 100000 + i);
    MT_EQ(atomic_load(&cb_sum), want);
    co_pool_free(g_sp);
}

/* Cancels racing with the takers: four threads submit 20k jobs each and
 * cancel every third at once, while three pool threads take them. A
 * cancel that won (returned 1) means the job never runs; every other job
 * runs exactly once with its result; nothing stays counted as queued. */
#define NCX 20000
static co_pool *g_cx;
static atomic_uchar cx_ran[4 * NCX];
static void *cx_job(void *arg) {
    atomic_fetch_add(&cx_ran[(intptr_t)arg], 1);
    return arg;
}
static void *cx_submitter(void *arg) {
    intptr_t base = (intptr_t)arg * NCX;
    static _Thread_local co_tsfuture *fs[NCX];
    static _Thread_local int won[NCX];
    for (intptr_t i = 0; i < NCX; i++) {
        MT_CHECK((fs[i] = co_pool_submit(g_cx, cx_job, (void *)(base + i))) != NULL);
        won[i] = i % 3 == 0 ? co_tsfuture_cancel(fs[i]) : 0;
    }
    for (intptr_t i = 0; i < NCX; i++) {
        void *v = NULL;
        int rc = co_tsfuture_wait(fs[i], CO_FOREVER, &v);
        if (won[i]) MT_EQ(rc, -ECANCELED);
        else if (rc == 0) MT_EQ((intptr_t)v, base + i);
        else MT_CHECK(i % 3 == 0 && rc == -ECANCELED, "job %ld: %d", (long)i, rc);
        co_tsfuture_release(fs[i]);
    }
    for (intptr_t i = 0; i < NCX; i++) {
        unsigned ran = atomic_load(&cx_ran[base + i]);
        if (won[i]) MT_EQ(ran, 0);
        else MT_CHECK(ran == 1 || (i % 3 == 0 && ran == 0), "job %ld ran %u times", (long)i, ran);
    }
    return NULL;
}

MT_TEST(cancels_racing_with_takers_never_lose_or_double_a_job) {
    g_cx = co_pool_new(3);
    pthread_t th[4];
    for (intptr_t k = 0; k < 4; k++) pthread_create(&th[k], NULL, cx_submitter, (void *)k);
    for (int k = 0; k < 4; k++) pthread_join(th[k], NULL);
    MT_EQ(co_pool_queued(g_cx), 0);
    co_pool_free(g_cx);
}

/* ---- cross-thread calls and thread loops ---------------------------------------------- */

#define NPROD 4
#define NCALL 50000
static long last_seen[NPROD];
static atomic_long total_calls;
static atomic_int order_broken;
static void record(void *arg) {
    uintptr_t x = (uintptr_t)arg;
    int who = (int)(x >> 32);
    long seq = (long)(x & 0xffffffff);
    if (seq != last_seen[who] + 1) atomic_store(&order_broken, 1);
    last_seen[who] = seq;
    atomic_fetch_add(&total_calls, 1);
}
static co_loop *g_tl;
static void *producer(void *arg) {
    uintptr_t who = (uintptr_t)arg;
    for (uintptr_t i = 1; i <= NCALL; i++) MT_OK(co_loop_call_threadsafe(g_tl, record, (void *)(who << 32 | i)));
    return NULL;
}

MT_TEST(call_threadsafe_from_four_threads_keeps_each_ones_order) {
    g_tl = co_thread_loop_start(NULL);
    MT_CHECK(g_tl != NULL);
    pthread_t th[NPROD];
    for (uintptr_t k = 0; k < NPROD; k++) pthread_create(&th[k], NULL, producer, (void *)k);
    for (int k = 0; k < NPROD; k++) pthread_join(th[k], NULL);
    MT_OK(co_thread_loop_stop(g_tl, 1)); /* runs what was accepted */
    MT_EQ(atomic_load(&total_calls), (long)NPROD * NCALL);
    MT_EQ(atomic_load(&order_broken), 0);
    for (int k = 0; k < NPROD; k++) MT_EQ(last_seen[k], NCALL);
}

static void never(void *arg) { MT_CHECK(0, "a call made after close ran"); }

MT_TEST(call_threadsafe_on_a_closed_loop_fails) {
    co_loop *L = new_loop();
    MT_OK(co_loop_call_threadsafe(L, record, (void *)1)); /* accepted before close: runs */
    MT_OK(co_loop_close(L));
    MT_EQ(atomic_load(&total_calls), 1);
    MT_EQ(co_loop_call_threadsafe(L, never, NULL), -CO_ECLOSED);
    errno = 0;
    MT_CHECK(co_loop_submit(L, ticker, NULL) == NULL);
    MT_OK(co_loop_free(L));
}

static void *sleep_return(void *arg) {
    if (co_sleep(0.01)) return NULL;
    return (void *)((intptr_t)arg + 1);
}
static void *fail_task(void *arg) {
    co_fail(-ENOENT, "no such thing: %s", (char *)arg);
    return NULL;
}
static atomic_int cleanup_ran;
static void *sleep_long(void *arg) {
    int rc = co_sleep(100);
    if (rc == -ECANCELED) atomic_store(&cleanup_ran, 1);
    return NULL;
}

MT_TEST(loop_submit_returns_the_tasks_outcome) {
    co_loop *L = co_thread_loop_start(NULL);
    co_tsfuture *a = co_loop_submit(L, sleep_return, (void *)41);
    co_tsfuture *b = co_loop_submit(L, fail_task, "key");
    co_tsfuture *c = co_spawn_on(L, sleep_long, NULL);
    void *v = NULL;
    MT_OK(co_tsfuture_wait(a, 10, &v));
    MT_EQ((intptr_t)v, 42);
    MT_EQ(co_tsfuture_wait(b, 10, NULL), -ENOENT);
    MT_CHECK(co_tsfuture_message(b) && strstr(co_tsfuture_message(b), "no such thing: key"), "%s",
             co_tsfuture_message(b));
    while (co_tsfuture_state(c) != CO_RUNNING) mt_sleep(0.001);
    MT_EQ(co_tsfuture_wait(c, 0.02, NULL), -ETIMEDOUT);
    MT_EQ(co_tsfuture_cancel(c), 0); /* running: the task is cancelled */
    MT_EQ(co_tsfuture_wait(c, 10, NULL), -ECANCELED);
    MT_EQ(co_tsfuture_state(c), CO_CANCELLED);
    MT_EQ(atomic_load(&cleanup_ran), 1);
    co_tsfuture_release(a);
    co_tsfuture_release(b);
    co_tsfuture_release(c);
    MT_OK(co_thread_loop_stop(L, 1));
}

static atomic_int finished_normally;
static void *short_job(void *arg) {
    if (co_sleep(0.05) == 0) atomic_store(&finished_normally, 1);
    return NULL;
}

MT_TEST(thread_loop_stop_gives_grace_then_cancels) {
    co_loop *L = co_thread_loop_start(NULL);
    co_tsfuture *a = co_loop_submit(L, short_job, NULL);
    co_tsfuture *b = co_loop_submit(L, sleep_long, NULL);
    while (co_tsfuture_state(b) != CO_RUNNING) mt_sleep(0.001);
    MT_OK(co_thread_loop_stop(L, 0.5)); /* short_job finishes within it; sleep_long does not */
    MT_EQ(atomic_load(&finished_normally), 1);
    MT_EQ(atomic_load(&cleanup_ran), 1);
    MT_EQ(co_tsfuture_state(a), CO_DONE);
    MT_EQ(co_tsfuture_state(b), CO_CANCELLED);
    co_tsfuture_release(a);
    co_tsfuture_release(b);
}

/* Objects of a loop used from another thread: -CO_EWRONGLOOP, every build. */
static _Atomic(co_event *) g_ev;
static void *make_event(void *arg) {
    co_event *e = co_event_new();
    co_event_set(e); /* binds it to this loop */
    co_event_clear(e);
    atomic_store(&g_ev, e);
    co_event_wait(e);
    return NULL;
}
static void quiet(co_loop *l, const char *m, void *a) {}

MT_TEST(wrong_thread_use_is_an_error) {
    co_loop_opts o = {.report = quiet};
    co_loop *L = co_thread_loop_start(&o);
    co_tsfuture *f = co_loop_submit(L, make_event, NULL);
    while (!atomic_load(&g_ev)) mt_sleep(0.001);
    MT_EQ(co_event_set(atomic_load(&g_ev)), -CO_EWRONGLOOP);
    MT_EQ(co_loop_run_forever(L), -CO_ERUNNING); /* it runs on its thread */
    MT_EQ(co_loop_close(L), -CO_ERUNNING);
    MT_OK(co_thread_loop_stop(L, 0)); /* cancels the waiter */
    MT_EQ(co_tsfuture_state(f), CO_CANCELLED);
    co_tsfuture_release(f);
    co_event_free(atomic_load(&g_ev));
}

/* ---- the runtime ---------------------------------------------------------------------- */

static void *which_loop(void *arg) { return co_loop_current(); }
static co_runtime *g_rt;
static void *hand_off(void *arg) {
    /* from a task on loop 0, hand work to loop 1 and await it */
    co_tsfuture *f = co_spawn_on(co_runtime_loop(g_rt, 1), which_loop, NULL);
    void *v = NULL;
    int rc = co_tsfuture_wait(f, 10, &v);
    co_tsfuture_release(f);
    MT_OK(rc);
    MT_CHECK(v == co_runtime_loop(g_rt, 1) && v != co_loop_current());
    return v;
}

MT_TEST(runtime_spreads_tasks_and_hands_work_between_loops) {
    g_rt = co_runtime_new(3, NULL);
    MT_CHECK(g_rt != NULL);
    MT_EQ(co_runtime_size(g_rt), 3);
    co_tsfuture *fs[30];
    for (int i = 0; i < 30; i++) fs[i] = co_spawn_on(co_runtime_loop(g_rt, -1), which_loop, NULL);
    int count[3] = {0};
    for (int i = 0; i < 30; i++) {
        void *v = NULL;
        MT_OK(co_tsfuture_wait(fs[i], 10, &v));
        for (int k = 0; k < 3; k++) count[k] += v == co_runtime_loop(g_rt, k);
        co_tsfuture_release(fs[i]);
    }
    MT_CHECK(count[0] == 10 && count[1] == 10 && count[2] == 10, "%d %d %d", count[0], count[1], count[2]);
    co_tsfuture *h = co_spawn_on(co_runtime_loop(g_rt, 0), hand_off, NULL);
    void *v = NULL;
    MT_OK(co_tsfuture_wait(h, 10, &v));
    MT_CHECK(v == co_runtime_loop(g_rt, 1));
    co_tsfuture_release(h);
    MT_CHECK(co_runtime_loop(g_rt, 3) == NULL);
    MT_OK(co_runtime_free(g_rt, 1));
}

/* ---- more of the public surface ----------------------------------------------------- */

MT_TEST(tsfuture_set_error_and_references) {
    co_tsfuture *f = co_tsfuture_new();
    MT_CHECK(co_tsfuture_retain(f) == f); /* two references now */
    MT_OK(co_tsfuture_set_error(f, -EPIPE, "peer went away"));
    co_tsfuture_release(f); /* one left: still readable */
    MT_EQ(co_tsfuture_state(f), CO_FAILED);
    MT_EQ(co_tsfuture_wait(f, CO_FOREVER, NULL), -EPIPE);
    MT_EQ(co_tsfuture_result(f, NULL), -EPIPE);
    MT_CHECK(strcmp(co_tsfuture_message(f), "peer went away") == 0);
    MT_EQ(co_tsfuture_set_error(f, -EIO, NULL), -CO_EINVALSTATE);
    co_tsfuture_release(f);
    f = co_tsfuture_new();
    MT_OK(co_tsfuture_set_error(f, -ECANCELED, NULL)); /* a cancellation, not a failure */
    MT_EQ(co_tsfuture_state(f), CO_CANCELLED);
    MT_EQ(co_tsfuture_wait(f, 1, NULL), -ECANCELED);
    co_tsfuture_release(f);
}

/* A task cancelled while it waits on a future leaves the future as it was;
 * completing it later wakes nobody and loses nothing. A scope's deadline
 * ends the wait the same way. */
static void *await_forever(void *arg) { return (void *)(intptr_t)co_tsfuture_wait(arg, CO_FOREVER, NULL); }
static void *await_in_scope(void *arg) {
    co_scope s;
    co_scope_enter(&s, 0.03, CO_FAIL_AFTER);
    int rc = co_tsfuture_wait(arg, CO_FOREVER, NULL);
    int ex = co_scope_exit(&s);
    MT_EQ(rc, -ECANCELED);
    MT_EQ(ex, -ETIMEDOUT);
    return NULL;
}
static void *cancel_tsf_wait_main(void *arg) {
    co_tsfuture *f = arg;
    co_task *t = co_spawn(await_forever, f);
    co_sleep(0.01);
    MT_EQ(co_task_state(t), CO_PENDING); /* parked in the wait */
    MT_EQ(co_cancel(t, NULL), 1);
    MT_EQ(co_join(t, NULL), -ECANCELED);
    co_task_release(t);
    MT_EQ(co_tsfuture_state(f), CO_PENDING);
    t = co_spawn(await_in_scope, f);
    MT_OK(co_join(t, NULL));
    co_task_release(t);
    MT_EQ(co_tsfuture_state(f), CO_PENDING);
    return NULL;
}

MT_TEST(task_waiting_on_a_tsfuture_is_cancelled_or_times_out) {
    co_loop *L = new_loop();
    co_tsfuture *f = co_tsfuture_new();
    MT_OK(run_task(L, cancel_tsf_wait_main, f, NULL));
    MT_OK(co_tsfuture_set_result(f, (void *)5)); /* no waiter left to wake */
    void *v = NULL;
    MT_OK(co_tsfuture_wait(f, 0, &v));
    MT_EQ((intptr_t)v, 5);
    co_tsfuture_release(f);
    MT_OK(co_loop_free(L));
}

/* A submission cancelled before its loop got to it never runs. */
static atomic_int submitted_ran;
static void *mark_ran(void *arg) {
    atomic_store(&submitted_ran, 1);
    return NULL;
}
static void hold_loop(void *arg) { gate_meet(arg, 1000, 20); } /* blocks the loop until opened */
static gate g_hold = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

MT_TEST(loop_submit_cancelled_before_it_starts_never_runs) {
    co_loop *L = co_thread_loop_start(NULL);
    MT_OK(co_loop_call_threadsafe(L, hold_loop, &g_hold));
    co_tsfuture *f = co_loop_submit(L, mark_ran, NULL);
    MT_EQ(co_tsfuture_state(f), CO_PENDING);
    MT_EQ(co_tsfuture_cancel(f), 1);
    gate_open(&g_hold);
    MT_EQ(co_tsfuture_wait(f, CO_FOREVER, NULL), -ECANCELED);
    MT_OK(co_thread_loop_stop(L, 1)); /* the start message ran (and spawned nothing) */
    MT_EQ(atomic_load(&submitted_ran), 0);
    co_tsfuture_release(f);
}

static void *stop_myself(void *arg) { return (void *)(intptr_t)co_thread_loop_stop(co_loop_current(), 0); }

MT_TEST(thread_loop_stop_refuses_bad_loops) {
    co_loop *plain = new_loop();
    MT_EQ(co_thread_loop_stop(plain, 0), -EINVAL); /* not started by co_thread_loop_start */
    MT_EQ(co_thread_loop_stop(plain, 0.0 / 0.0), -EINVAL);
    MT_OK(co_loop_free(plain));
    co_loop *L = co_thread_loop_start(NULL);
    co_tsfuture *f = co_loop_submit(L, stop_myself, NULL);
    void *v = NULL;
    MT_OK(co_tsfuture_wait(f, 10, &v));
    MT_EQ((intptr_t)v, -EDEADLK);
    co_tsfuture_release(f);
    MT_OK(co_thread_loop_stop(L, 0));
    MT_EQ(co_thread_loop_stop(L, 0), -EINVAL); /* stopped already: no longer known */
}

MT_TEST(runtime_defaults_to_one_loop_per_core) {
    co_runtime *rt = co_runtime_new(0, NULL);
    MT_CHECK(rt != NULL);
    MT_EQ(co_runtime_size(rt), sysconf(_SC_NPROCESSORS_ONLN));
    for (size_t i = 0; i < co_runtime_size(rt); i++)
        for (size_t k = 0; k < i; k++) MT_CHECK(co_runtime_loop(rt, (int)i) != co_runtime_loop(rt, (int)k));
    MT_OK(co_runtime_free(rt, 0));
    errno = 0;
    MT_CHECK(co_runtime_new(5000, NULL) == NULL && errno == EINVAL);
}

/* ---- stuck blocking work (the default pool grows past stalls) --------------------------- */

static char fifo_path[64];
static void *open_fifo(void *arg) {
    co_file *f = NULL;
    int rc = co_file_open(fifo_path, O_RDONLY, 0, &f); /* no writer: blocks in open(2) */
    if (rc == 0) co_file_close(f);
    return (void *)(intptr_t)rc;
}

/* Files and DNS after five cancelled FIFO opens fill the pool's threads. */
static void *files_after_stuck_opens(void *arg) {
    co_task *opens[5];
    for (int i = 0; i < 5; i++) MT_CHECK((opens[i] = co_spawn(open_fifo, NULL)) != NULL);
    co_sleep(0.05); /* they reach open(2) */
    for (int i = 0; i < 5; i++) {
        co_cancel(opens[i], "test");
        MT_EQ(co_join(opens[i], NULL), -ECANCELED);
        co_task_release(opens[i]);
    }
    char path[80];
    snprintf(path, sizeof path, "%s.txt", fifo_path);
    MT_OK(co_file_write_all(path, "hello", 5, 0600));
    char *data = NULL;
    size_t len = 0;
    MT_OK(co_file_read_all(path, 100, &data, &len));
    MT_EQ(len, 5);
    free(data);
    unlink(path);
    struct addrinfo *ai = NULL;
    MT_OK(co_getaddrinfo("127.0.0.1", "80", NULL, &ai));
    freeaddrinfo(ai);
    return NULL;
}

static void *bounded(void *arg) {
    co_task *t = co_spawn(files_after_stuck_opens, NULL);
    MT_CHECK(t != NULL);
    int rc = co_wait_for(t, 30, NULL); /* a hang fails instead of blocking the suite */
    co_task_release(t);
    return (void *)(intptr_t)rc;
}

MT_TEST(stuck_blocking_jobs_leave_files_and_dns_working) {
    MT_OK(co_pool_set_default_size(4));
    snprintf(fifo_path, sizeof fifo_path, "/tmp/corio-fifo-%d", (int)getpid());
    unlink(fifo_path);
    MT_OK(mkfifo(fifo_path, 0600) < 0 ? -errno : 0);
    co_loop *L = new_loop();
    void *v = NULL;
    MT_OK(run_task(L, bounded, NULL, &v));
    MT_OK((int)(intptr_t)v);
    /* release the stuck opens: a writer lets them return */
    for (int i = 0; i < 5; i++) {
        int fd = open(fifo_path, O_WRONLY | O_NONBLOCK);
        if (fd >= 0) close(fd);
    }
    unlink(fifo_path);
    MT_OK(co_loop_free(L));
}

/* ---- cancelling while the producer goes away ------------------------------------------- */

/* The library's test hook: runs inside co_tsfuture_cancel after it let go
 * of the future's lock, before it is done with the producer. */
extern void (*co__tsf_cancel_gap)(co_tsfuture *f);

static co_loop *gap_loop;
static void stop_loop_in_gap(co_tsfuture *f) { MT_OK(co_thread_loop_stop(gap_loop, 0)); }

static void *sleep_a_minute(void *arg) {
    co_sleep(60);
    return NULL;
}

MT_TEST(cancel_of_a_submission_while_its_loop_is_stopped_and_freed) {
    gap_loop = co_thread_loop_start(NULL);
    MT_CHECK(gap_loop != NULL);
    co_tsfuture *f = co_loop_submit(gap_loop, sleep_a_minute, NULL);
    MT_CHECK(f != NULL);
    while (co_tsfuture_state(f) != CO_RUNNING) mt_sleep(0.001);
    co__tsf_cancel_gap = stop_loop_in_gap;
    MT_EQ(co_tsfuture_cancel(f), 0); /* running: a request, sent to a loop now gone */
    co__tsf_cancel_gap = NULL;
    MT_EQ(co_tsfuture_wait(f, INFINITY, NULL), -ECANCELED);
    co_tsfuture_release(f);
}

static co_pool *gap_pool;
static void free_pool_in_gap(co_tsfuture *f) { co_pool_free(gap_pool); }
static gate g_gap = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
static void *hold_gap(void *arg) { return (void *)(intptr_t)gate_meet(&g_gap, 99, 20); }
static void open_gap_gate(co_tsfuture *f) {
    co__tsf_cancel_gap = NULL; /* once: the pool's own drop cancels again */
    gate_open(&g_gap);
    free_pool_in_gap(f);
}

MT_TEST(cancel_of_a_queued_job_while_its_pool_is_freed) {
    gap_pool = co_pool_new(1);
    MT_CHECK(gap_pool != NULL);
    co_tsfuture *b = co_pool_submit(gap_pool, hold_gap, NULL);
    while (co_tsfuture_state(b) != CO_RUNNING) mt_sleep(0.001);
    co_tsfuture *f = co_pool_submit(gap_pool, times_two, (void *)1);
    MT_CHECK(f != NULL);
    co__tsf_cancel_gap = open_gap_gate; /* the pool drains and is freed here */
    MT_EQ(co_tsfuture_cancel(f), 1);
    co__tsf_cancel_gap = NULL;
    MT_EQ(co_tsfuture_wait(f, INFINITY, NULL), -ECANCELED);
    MT_OK(co_tsfuture_wait(b, INFINITY, NULL));
    co_tsfuture_release(f);
    co_tsfuture_release(b);
}

/* ---- loops and their threads ------------------------------------------------------------- */

static atomic_long d6_sent;
static void d6_nop(void *arg) {}
static void *d6_task(void *arg) { return NULL; }
static void *d6_submitter(void *arg) {
    co_loop *L = arg; /* a reference of ours, taken by the starter */
    for (;;) {
        int rc = co_loop_call_threadsafe(L, d6_nop, NULL);
        if (rc == -CO_ECLOSED) break;
        MT_OK(rc);
        co_tsfuture *f = co_loop_submit(L, d6_task, NULL);
        if (!f) {
            MT_EQ(errno, CO_ECLOSED);
            break;
        }
        co_tsfuture_release(f);
        atomic_fetch_add(&d6_sent, 1);
    }
    co_loop_release(L);
    return NULL;
}

MT_TEST(submitters_racing_a_thread_loop_stop_get_eclosed) {
    for (int round = 0; round < 20; round++) {
        co_loop *L = co_thread_loop_start(NULL);
        MT_CHECK(L != NULL);
        pthread_t th[3];
        atomic_store(&d6_sent, 0);
        for (int i = 0; i < 3; i++) MT_EQ(pthread_create(&th[i], NULL, d6_submitter, co_loop_retain(L)), 0);
        while (atomic_load(&d6_sent) < 50 * (round % 4)) sched_yield();
        MT_OK(co_thread_loop_stop(L, 0));
        for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    }
}

MT_TEST(a_loop_freed_while_referenced_refuses_calls) {
    co_loop *L = co_loop_new(NULL);
    MT_CHECK(co_loop_retain(L) == L);
    MT_OK(co_loop_free(L));
    MT_EQ(co_loop_call_threadsafe(L, d6_nop, NULL), -CO_ECLOSED);
    errno = 0;
    MT_CHECK(co_loop_submit(L, d6_task, NULL) == NULL && errno == CO_ECLOSED);
    co_loop_release(L);
}

/* asyncio's master-worker, word for word: loop = new_event_loop() in main,
 * Thread(target=loop.run_forever).start(), run_coroutine_threadsafe from
 * main, then call_soon_threadsafe(loop.stop), join, close. */
static void *forever(void *arg) { return (void *)(intptr_t)co_loop_run_forever(arg); }
static void *sleep_secs(void *arg) {
    MT_OK(co_sleep((double)(intptr_t)arg));
    return arg;
}
static void stop_it(void *arg) { co_loop_stop(arg); }
static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

MT_TEST(loop_made_in_main_runs_forever_in_a_thread) {
    co_loop *L = co_loop_new(NULL);
    MT_CHECK(L != NULL);
    pthread_t th;
    MT_EQ(pthread_create(&th, NULL, forever, L), 0);
    double t0 = mono_now();
    intptr_t secs[4] = {2, 5, 1, 1};
    co_tsfuture *f[4];
    for (int i = 0; i < 4; i++) MT_CHECK((f[i] = co_loop_submit(L, sleep_secs, (void *)secs[i])) != NULL);
    for (int i = 0; i < 4; i++) {
        void *v = NULL;
        MT_OK(co_tsfuture_wait(f[i], 30, &v));
        MT_EQ((intptr_t)v, secs[i]);
        co_tsfuture_release(f[i]);
    }
    double took = mono_now() - t0;
    MT_CHECK(took >= 4.99 && took < 8.5, "took %.2f s (5 s concurrently, 9 s one after another)", took);
    MT_OK(co_loop_call_threadsafe(L, stop_it, L));
    void *rc = NULL;
    pthread_join(th, &rc);
    MT_OK((int)(intptr_t)rc);
    MT_OK(co_loop_free(L)); /* main takes it back: it is not running */
}

static char took_over_msg[512];
static void keep_msg(co_loop *l, const char *m, void *a) { snprintf(took_over_msg, sizeof took_over_msg, "%s", m); }

MT_TEST(a_running_loop_is_not_taken_over) {
    co_loop_opts o = {.report = keep_msg};
    co_loop *L = co_loop_new(&o);
    pthread_t th;
    MT_EQ(pthread_create(&th, NULL, forever, L), 0);
    co_tsfuture *f = co_loop_submit(L, sleep_secs, (void *)0);
    MT_OK(co_tsfuture_wait(f, 60, NULL)); /* the thread runs it now */
    co_tsfuture_release(f);
    MT_EQ(co_loop_run_forever(L), -CO_ERUNNING);
    MT_CHECK(strstr(took_over_msg, "co_loop_run_forever: loop ") && strstr(took_over_msg, "another thread"),
             "%s", took_over_msg);
    MT_EQ(co_loop_free(L), -CO_ERUNNING);
    MT_OK(co_loop_call_threadsafe(L, stop_it, L));
    pthread_join(th, NULL);
    MT_OK(co_loop_free(L));
}
