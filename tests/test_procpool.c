/* test_procpool.c — the process pool: results, crash isolation (a job
 * that segfaults, aborts or exits fails alone and its worker is
 * replaced), timeouts, map in chunks, close/terminate/join, apply from
 * many tasks at once. Threaded cases and fork safety are in
 * mt_procpool.c (they must run under ThreadSanitizer).
 *
 * The workers are this very test program, re-executed: the job functions
 * below are registered with CO_PROCPOOL_FN, one is found by dlsym. */
#include "testutil.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

/* ---- job functions (run in the workers) ------------------------------------------ */

static int put(void **out, size_t *outlen, const void *p, size_t n) {
    if (!(*out = malloc(n ? n : 1))) return -ENOMEM;
    memcpy(*out, p, n);
    *outlen = n;
    return 0;
}

static long get_long(const void *in, size_t inlen) {
    long x = 0;
    memcpy(&x, in, inlen < sizeof x ? inlen : sizeof x);
    return x;
}

static int echo(const void *in, size_t inlen, void **out, size_t *outlen) {
    return put(out, outlen, in, inlen);
}
CO_PROCPOOL_FN(echo)

static int square(const void *in, size_t inlen, void **out, size_t *outlen) {
    long x = get_long(in, inlen);
    x *= x;
    return put(out, outlen, &x, sizeof x);
}
CO_PROCPOOL_FN(square)

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* sleeps input milliseconds, returns its pid */
static int nap(const void *in, size_t inlen, void **out, size_t *outlen) {
    sleep_ms(get_long(in, inlen));
    long pid = getpid();
    return put(out, outlen, &pid, sizeof pid);
}
CO_PROCPOOL_FN(nap)

/* sleeps 100 ms, then appends a byte to the file named by the input */
static int nap_mark(const void *in, size_t inlen, void **out, size_t *outlen) {
    char path[256];
    snprintf(path, sizeof path, "%.*s", (int)inlen, (const char *)in);
    sleep_ms(100);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (fd < 0) return co_procpool_fail(-errno, "open %s", path);
    ssize_t w = write(fd, "x", 1);
    close(fd);
    return w == 1 ? 0 : -EIO;
}
CO_PROCPOOL_FN(nap_mark)

/* A real fault: a store to address 8 (not NULL, which UBSan would catch
 * first and turn into an abort). */
static void segfault(void) {
    volatile uintptr_t addr = 8;
    *(volatile int *)addr = 1;
}

/* 's': a real segfault, 'a': abort, 'e': exit(3) */
static int crash(const void *in, size_t inlen, void **out, size_t *outlen) {
    char how = inlen ? *(const char *)in : 's';
    if (how == 'a') abort();
    if (how == 'e') exit(3);
    segfault();
    return 0;
}
CO_PROCPOOL_FN(crash)

static int picky(const void *in, size_t inlen, void **out, size_t *outlen) {
    return co_procpool_fail(-EDOM, "picky wants 1 byte, got %zu", inlen);
}
CO_PROCPOOL_FN(picky)

/* squares, but segfaults on 13 */
static int square_but_13(const void *in, size_t inlen, void **out, size_t *outlen) {
    if (get_long(in, inlen) == 13) segfault();
    return square(in, inlen, out, outlen);
}
CO_PROCPOOL_FN(square_but_13)

/* Not registered: found through dlsym (the tests link with -rdynamic, and
 * build with -fvisibility=hidden, hence the attribute). */
__attribute__((visibility("default"))) int procpool_exported_twice(const void *in, size_t inlen,
                                                                   void **out, size_t *outlen);
int procpool_exported_twice(const void *in, size_t inlen, void **out, size_t *outlen) {
    long x = get_long(in, inlen) * 2;
    return put(out, outlen, &x, sizeof x);
}

/* Neither registered nor exported: no worker can find it. */
static int hidden(const void *in, size_t inlen, void **out, size_t *outlen) { return 0; }

/* ---- helpers --------------------------------------------------------------------------- */

static co_procpool *pool(size_t n) {
    co_procpool *p = co_procpool_new(n);
    cr_assert_not_null(p, "co_procpool_new: %s", strerror(errno));
    cr_assert_eq(co_procpool_size(p), n);
    return p;
}

static long apply_long(co_procpool *p, const char *fn, long x) {
    co_procpool_result r;
    int rc = co_procpool_apply(p, fn, &x, sizeof x, CO_FOREVER, &r);
    cr_assert_eq(rc, 0, "%s(%ld): %s: %s", fn, x, co_err_name(rc), r.msg);
    cr_assert_eq(r.len, sizeof(long));
    long v = *(long *)r.data;
    co_procpool_result_clear(&r, 1);
    return v;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool has_pid(const int *pids, size_t n, int pid) {
    for (size_t i = 0; i < n; i++)
        if (pids[i] == pid) return true;
    return false;
}

/* Every slot filled again (a replacement starts right after a death). */
static size_t wait_full(co_procpool *p, int *pids, size_t cap) {
    size_t n = 0;
    for (int i = 0; i < 5000 && (n = co_procpool_pids(p, pids, cap)) < co_procpool_size(p); i++)
        sleep_ms(1);
    return n;
}

/* ---- results ------------------------------------------------------------------------------ */

Test(procpool, apply_returns_bytes) {
    co_procpool *p = pool(2);
    cr_assert_eq(apply_long(p, "square", 12), 144);
    cr_assert_eq(apply_long(p, "procpool_exported_twice", 21), 42, "found by dlsym");

    /* a 3 MiB payload and back, byte for byte */
    size_t n = 3u << 20;
    unsigned char *big = malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = (unsigned char)(i * 7 + (i >> 11));
    co_procpool_result r;
    cr_assert_eq(co_procpool_apply(p, "echo", big, n, CO_FOREVER, &r), 0, "%s", r.msg);
    cr_assert_eq(r.len, n);
    cr_assert(memcmp(r.data, big, n) == 0);
    co_procpool_result_clear(&r, 1);
    cr_assert_null(r.data);
    free(big);

    /* empty payload, empty result */
    cr_assert_eq(co_procpool_apply(p, "echo", NULL, 0, CO_FOREVER, &r), 0, "%s", r.msg);
    cr_assert_eq(r.len, 0);
    cr_assert_str_eq(r.msg, "");
    co_procpool_result_clear(&r, 1);
    co_procpool_free(p);
}

Test(procpool, job_error_and_message) {
    co_procpool *p = pool(1);
    co_procpool_result r;
    cr_assert_eq(co_procpool_apply(p, "picky", "abc", 3, CO_FOREVER, &r), -EDOM);
    cr_assert_eq(r.err, -EDOM);
    cr_assert_str_eq(r.msg, "picky wants 1 byte, got 3");
    cr_assert_null(r.data);
    co_procpool_free(p);
}

Test(procpool, bad_names_and_sizes) {
    co_procpool *p = pool(1);
    co_procpool_result r;
    cr_assert_eq(co_procpool_apply(p, "no_such_fn", "x", 1, CO_FOREVER, &r), -ENOENT);
    cr_assert(strstr(r.msg, "no job function named 'no_such_fn'"), "%s", r.msg);
    (void)hidden;
    cr_assert_eq(co_procpool_apply(p, "hidden", "x", 1, CO_FOREVER, &r), -ENOENT, "static: not reachable");
    /* a libc function must never be called with a job's arguments */
    cr_assert_eq(co_procpool_apply(p, "exit", "x", 1, CO_FOREVER, &r), -ENOENT, "%s", r.msg);
    cr_assert_eq(co_procpool_apply(p, "bad name", "x", 1, CO_FOREVER, &r), -EINVAL);
    cr_assert_eq(co_procpool_apply(p, "", "x", 1, CO_FOREVER, &r), -EINVAL);
    cr_assert_eq(co_procpool_apply(p, NULL, "x", 1, CO_FOREVER, &r), -EINVAL);
    cr_assert_eq(co_procpool_apply(p, "echo", NULL, 5, CO_FOREVER, &r), -EINVAL);
    cr_assert_eq(co_procpool_apply(p, "echo", "x", 1, NAN, &r), -EINVAL);
    cr_assert_eq(co_procpool_apply(NULL, "echo", "x", 1, CO_FOREVER, &r), -EINVAL);
    /* the limit is checked before anything is read or copied */
    cr_assert_eq(co_procpool_apply(p, "echo", "x", CO_PROCPOOL_MAX_PAYLOAD + 1, CO_FOREVER, &r), -E2BIG);
    cr_assert(strstr(r.msg, "limit"), "%s", r.msg);
    errno = 0;
    cr_assert_null(co_procpool_submit(p, "nope", "x", 1, CO_FOREVER));
    cr_assert_eq(errno, ENOENT);
    /* the pool is unharmed */
    cr_assert_eq(apply_long(p, "square", 3), 9);
    co_procpool_free(p);
}

Test(procpool, register_rules) {
    cr_assert_eq(co_procpool_register("late", echo), -CO_EINVALSTATE, "after main started");
    cr_assert_eq(co_procpool_register("1abc", echo), -EINVAL);
    cr_assert_eq(co_procpool_register("ok", NULL), -EINVAL);
    errno = 0;
    cr_assert_null(co_procpool_new(CO_PROCPOOL_MAX_WORKERS + 1));
    cr_assert_eq(errno, EINVAL);
}

/* ---- crash isolation ------------------------------------------------------------------------ */

static void check_crash(char how, const char *what) {
    co_procpool *p = pool(2);
    int before[2], after[2];
    cr_assert_eq(wait_full(p, before, 2), 2);
    /* a long job on the other worker must not notice */
    long ms = 300;
    co_tsfuture *slow = co_procpool_submit(p, "nap", &ms, sizeof ms, CO_FOREVER);
    cr_assert_not_null(slow);
    co_procpool_result r;
    int rc = co_procpool_apply(p, "crash", &how, 1, CO_FOREVER, &r);
    cr_assert_eq(rc, -CO_EWORKER, "%s: %s", co_err_name(rc), r.msg);
    cr_assert(strstr(r.msg, what), "'%s' lacks '%s'", r.msg, what);
    cr_assert(strstr(r.msg, "while running crash"), "%s", r.msg);
    int dead = 0;
    cr_assert_eq(sscanf(r.msg, "worker %d", &dead), 1, "%s", r.msg);
    cr_assert(has_pid(before, 2, dead), "the pid named (%d) is one of the pool's", dead);

    co_procpool_result s;
    cr_assert_eq(co_procpool_wait(slow, CO_FOREVER, &s), 0, "the other job: %s", s.msg);
    co_tsfuture_release(slow);
    co_procpool_result_clear(&s, 1);

    /* replaced: two workers again, the dead one not among them */
    cr_assert_eq(wait_full(p, after, 2), 2);
    cr_assert(!has_pid(after, 2, dead), "worker %d replaced", dead);
    /* and the following jobs succeed, on both workers */
    for (long i = 0; i < 6; i++) cr_assert_eq(apply_long(p, "square", i), i * i);
    co_procpool_free(p);
}

Test(procpool, crash_sigsegv_fails_only_its_job) { check_crash('s', "killed by SIGSEGV"); }
Test(procpool, crash_abort_fails_only_its_job) { check_crash('a', "killed by SIGABRT"); }
Test(procpool, crash_exit_fails_only_its_job) { check_crash('e', "exited with status 3"); }

Test(procpool, worker_killed_from_outside_is_replaced) {
    co_procpool *p = pool(2);
    int pids[2], again[2];
    cr_assert_eq(wait_full(p, pids, 2), 2);
    cr_assert_eq(kill(pids[0], SIGKILL), 0);
    for (int i = 0; i < 5000; i++) {
        size_t n = co_procpool_pids(p, again, 2);
        if (n == 2 && !has_pid(again, 2, pids[0])) break;
        sleep_ms(1);
    }
    cr_assert(!has_pid(again, 2, pids[0]));
    cr_assert_eq(apply_long(p, "square", 5), 25);
    co_procpool_free(p);
}

Test(procpool, timeout_kills_and_replaces_the_worker) {
    co_procpool *p = pool(1);
    int before, after;
    cr_assert_eq(wait_full(p, &before, 1), 1);
    long ms = 20000;
    co_procpool_result r;
    double t0 = now();
    int rc = co_procpool_apply(p, "nap", &ms, sizeof ms, 0.2, &r);
    double dt = now() - t0;
    cr_assert_eq(rc, -ETIMEDOUT, "%s: %s", co_err_name(rc), r.msg);
    cr_assert_geq(dt, 0.2, "killed after %.3f s, before its time", dt);
    char want[96];
    snprintf(want, sizeof want, "nap ran longer than 0.2 s: worker %d killed", before);
    cr_assert_str_eq(r.msg, want);
    cr_assert_eq(wait_full(p, &after, 1), 1);
    cr_assert_neq(after, before);
    /* a job within its timeout is fine */
    ms = 10;
    cr_assert_eq(co_procpool_apply(p, "nap", &ms, sizeof ms, 30, &r), 0, "%s", r.msg);
    co_procpool_result_clear(&r, 1);
    co_procpool_free(p);
}

/* ---- map -------------------------------------------------------------------------------------------- */

#define NMAP 100

static void map_inputs(long *xs, co_procpool_buf *in, size_t n) {
    for (size_t i = 0; i < n; i++) {
        xs[i] = (long)i;
        in[i] = (co_procpool_buf){&xs[i], sizeof xs[i]};
    }
}

Test(procpool, map_in_chunks_keeps_order) {
    co_procpool *p = pool(3);
    long xs[NMAP];
    co_procpool_buf in[NMAP];
    co_procpool_result out[NMAP];
    map_inputs(xs, in, NMAP);
    size_t chunks[] = {1, 7, 0, NMAP, 1000};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        int rc = co_procpool_map(p, "square", in, NMAP, chunks[c], CO_FOREVER, out);
        cr_assert_eq(rc, 0, "chunksize %zu: %s", chunks[c], co_err_name(rc));
        for (size_t i = 0; i < NMAP; i++) {
            cr_assert_eq(out[i].err, 0);
            cr_assert_eq(*(long *)out[i].data, (long)(i * i), "chunksize %zu, item %zu", chunks[c], i);
        }
        co_procpool_result_clear(out, NMAP);
    }
    cr_assert_eq(co_procpool_map(p, "square", NULL, 0, 0, CO_FOREVER, NULL), 0, "nothing to do");
    co_procpool_free(p);
}

Test(procpool, map_crash_fails_its_item_and_the_rest_of_its_chunk) {
    co_procpool *p = pool(2);
    long xs[30];
    co_procpool_buf in[30];
    co_procpool_result out[30];
    map_inputs(xs, in, 30);
    /* chunks of 5: 10..14 holds 13, which crashes its worker */
    int rc = co_procpool_map(p, "square_but_13", in, 30, 5, CO_FOREVER, out);
    cr_assert_eq(rc, -CO_EWORKER, "%s", co_err_name(rc));
    for (size_t i = 0; i < 30; i++) {
        if (i == 13 || i == 14) continue;
        cr_assert_eq(out[i].err, 0, "item %zu: %s", i, out[i].msg);
        cr_assert_eq(*(long *)out[i].data, (long)(i * i));
    }
    cr_assert_eq(out[13].err, -CO_EWORKER);
    cr_assert(strstr(out[13].msg, "killed by SIGSEGV while running square_but_13 on item 13"), "%s",
              out[13].msg);
    cr_assert_eq(out[14].err, -CO_EWORKER);
    cr_assert(strncmp(out[14].msg, "not run: ", 9) == 0, "%s", out[14].msg);
    co_procpool_result_clear(out, 30);
    /* per-item errors from the function itself */
    rc = co_procpool_map(p, "picky", in, 4, 2, CO_FOREVER, out);
    cr_assert_eq(rc, -EDOM);
    for (size_t i = 0; i < 4; i++) cr_assert_eq(out[i].err, -EDOM);
    co_procpool_result_clear(out, 4);
    /* an error before anything ran is in every item */
    rc = co_procpool_map(p, "nope", in, 4, 2, CO_FOREVER, out);
    cr_assert_eq(rc, -ENOENT);
    for (size_t i = 0; i < 4; i++) cr_assert_eq(out[i].err, -ENOENT);
    co_procpool_free(p);
}

/* ---- close, terminate, join ------------------------------------------------------------------- */

Test(procpool, close_finishes_queued_jobs_then_workers_exit) {
    co_procpool *p = pool(2);
    cr_assert_eq(co_procpool_join(p, 1), -CO_EINVALSTATE, "join before close");
    co_tsfuture *f[6];
    for (int i = 0; i < 6; i++) {
        long ms = 50;
        f[i] = co_procpool_submit(p, "nap", &ms, sizeof ms, CO_FOREVER);
        cr_assert_not_null(f[i]);
    }
    cr_assert_eq(co_procpool_close(p), 0);
    cr_assert_eq(co_procpool_close(p), 0, "again: harmless");
    co_procpool_result r;
    cr_assert_eq(co_procpool_apply(p, "square", "x", 1, CO_FOREVER, &r), -CO_ESHUTDOWN);
    errno = 0;
    cr_assert_null(co_procpool_submit(p, "square", "x", 1, CO_FOREVER));
    cr_assert_eq(errno, CO_ESHUTDOWN);
    cr_assert_eq(co_procpool_join(p, 30), 0);
    cr_assert_eq(co_procpool_pids(p, NULL, 0), 0, "every worker exited");
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(co_procpool_wait(f[i], 0, &r), 0, "job %d finished before join: %s", i, r.msg);
        co_procpool_result_clear(&r, 1);
        co_tsfuture_release(f[i]);
    }
    co_procpool_free(p);
}

Test(procpool, terminate_cancels_running_and_queued_jobs) {
    co_procpool *p = pool(2);
    co_tsfuture *f[5];
    long ms = 30000;
    for (int i = 0; i < 5; i++) cr_assert_not_null(f[i] = co_procpool_submit(p, "nap", &ms, sizeof ms, CO_FOREVER));
    sleep_ms(100); /* two of them running */
    double t0 = now();
    cr_assert_eq(co_procpool_terminate(p), 0);
    cr_assert_eq(co_procpool_join(p, 30), 0);
    cr_assert_lt(now() - t0, 20, "killed, not waited for");
    cr_assert_eq(co_procpool_pids(p, NULL, 0), 0);
    for (int i = 0; i < 5; i++) {
        co_procpool_result r;
        cr_assert_eq(co_procpool_wait(f[i], 0, &r), -ECANCELED, "job %d: %s", i, r.msg);
        cr_assert(strstr(r.msg, "terminated"), "%s", r.msg);
        co_tsfuture_release(f[i]);
    }
    co_procpool_result r;
    cr_assert_eq(co_procpool_apply(p, "square", "x", 1, CO_FOREVER, &r), -CO_ESHUTDOWN);
    cr_assert_eq(co_procpool_terminate(p), 0, "again: harmless");
    co_procpool_free(p);
}

Test(procpool, free_kills_a_running_pool) {
    co_procpool *p = pool(2);
    long ms = 30000;
    co_tsfuture *f = co_procpool_submit(p, "nap", &ms, sizeof ms, CO_FOREVER);
    int pids[2];
    cr_assert_eq(wait_full(p, pids, 2), 2);
    double t0 = now();
    co_procpool_free(p);
    cr_assert_lt(now() - t0, 20);
    cr_assert_eq(co_tsfuture_wait(f, 0, NULL), -ECANCELED);
    co_tsfuture_release(f);
    for (int i = 0; i < 2; i++) cr_assert_eq(kill(pids[i], 0), -1, "worker %d is gone", pids[i]);
}

/* ---- futures and tasks ------------------------------------------------------------------------- */

Test(procpool, submit_and_wait_with_timeout) {
    co_procpool *p = pool(1);
    long ms = 300;
    co_tsfuture *f = co_procpool_submit(p, "nap", &ms, sizeof ms, CO_FOREVER);
    cr_assert_not_null(f);
    co_procpool_result r;
    cr_assert_eq(co_procpool_wait(f, 0.01, &r), -ETIMEDOUT);
    cr_assert(!co_tsfuture_done(f), "a wait timeout leaves the job alone");
    cr_assert_eq(co_procpool_wait(f, CO_FOREVER, &r), 0, "%s", r.msg);
    cr_assert_eq(r.len, sizeof(long));
    co_procpool_result_clear(&r, 1);
    co_tsfuture_release(f);
    /* a result nobody reads is freed with the future (LeakSanitizer checks) */
    f = co_procpool_submit(p, "square", &ms, sizeof ms, CO_FOREVER);
    cr_assert_eq(co_tsfuture_wait(f, CO_FOREVER, NULL), 0);
    co_tsfuture_release(f);
    co_procpool_free(p);
}

#define NTASKS 12
static co_procpool *task_pool;
static int ticks;

static void *apply_task(void *arg) {
    long x = (long)(intptr_t)arg;
    co_procpool_result r;
    long in[2] = {x, 0};
    int rc = co_procpool_apply(task_pool, "square", in, sizeof in[0], CO_FOREVER, &r);
    if (rc) return co_fail(rc, "%s", r.msg);
    long v = *(long *)r.data;
    co_procpool_result_clear(&r, 1);
    return (void *)(intptr_t)v;
}

static void *slow_task(void *arg) {
    long ms = 200;
    co_procpool_result r;
    int rc = co_procpool_apply(task_pool, "nap", &ms, sizeof ms, CO_FOREVER, &r);
    co_procpool_result_clear(&r, 1);
    return rc ? co_fail(rc, "nap failed") : NULL;
}

static void *ticker(void *arg) {
    while (co_sleep(0.01) == 0) ticks++;
    return NULL;
}

static void *many_tasks_main(void *arg) {
    co_task *tick = co_spawn(ticker, NULL);
    co_task *slow = co_spawn(slow_task, NULL);
    co_task *t[NTASKS];
    for (long i = 0; i < NTASKS; i++) t[i] = co_spawn(apply_task, (void *)(intptr_t)i);
    for (long i = 0; i < NTASKS; i++) {
        void *v;
        int rc = co_join(t[i], &v);
        cr_assert_eq(rc, 0, "task %ld: %s", i, co_task_message(t[i]));
        cr_assert_eq((long)(intptr_t)v, i * i);
        co_task_release(t[i]);
    }
    cr_assert_eq(co_join(slow, NULL), 0);
    co_task_release(slow);
    /* the loop ran the ticker while the tasks waited for their processes */
    cr_assert_geq(ticks, 5, "only %d ticks during a 200 ms job: the loop was blocked", ticks);
    co_cancel(tick, NULL);
    co_join(tick, NULL);
    co_task_release(tick);
    return NULL;
}

Test(procpool, apply_from_many_tasks_suspends_only_them) {
    task_pool = pool(3);
    co_loop *L = tu_loop_opts(false, false, 0); /* real clock: processes take real time */
    cr_assert_eq(tu_run(L, many_tasks_main, NULL, NULL), 0);
    tu_close(L);
    co_procpool_free(task_pool);
}

static int waited[2];

static void *waiting_task(void *arg) {
    long ms = 20000;
    co_procpool_result r;
    waited[(intptr_t)arg] = co_procpool_apply(task_pool, "nap", &ms, sizeof ms, CO_FOREVER, &r);
    return NULL;
}

static void *map_task(void *arg) {
    long xs[8];
    co_procpool_buf in[8];
    co_procpool_result out[8];
    map_inputs(xs, in, 8);
    int rc = co_procpool_map(task_pool, "square", in, 8, 3, CO_FOREVER, out);
    long sum = 0;
    for (int i = 0; i < 8 && rc == 0; i++) sum += *(long *)out[i].data;
    co_procpool_result_clear(out, 8);
    return rc ? co_fail(rc, "map") : (void *)(intptr_t)sum;
}

static void *cancel_main(void *arg) {
    co_task *a = co_spawn(waiting_task, (void *)0); /* runs: the only worker is busy */
    co_task *b = co_spawn(waiting_task, (void *)1); /* queued behind it */
    co_sleep(0.1);
    co_cancel(a, NULL);
    co_cancel(b, NULL);
    cr_assert_eq(co_join(a, NULL), -ECANCELED);
    cr_assert_eq(co_join(b, NULL), -ECANCELED);
    cr_assert_eq(waited[0], -ECANCELED);
    cr_assert_eq(waited[1], -ECANCELED);
    co_task_release(a);
    co_task_release(b);
    return NULL;
}

Test(procpool, cancelled_task_gives_up_its_job) {
    task_pool = pool(1);
    co_loop *L = tu_loop_opts(false, false, 0);
    double t0 = now();
    cr_assert_eq(tu_run(L, cancel_main, NULL, NULL), 0);
    cr_assert_lt(now() - t0, 15, "the waits ended at the cancel");
    tu_close(L);
    co_procpool_terminate(task_pool); /* the running 20 s nap */
    co_procpool_free(task_pool);
}

Test(procpool, map_from_a_task) {
    task_pool = pool(2);
    co_loop *L = tu_loop_opts(false, false, 0);
    void *v;
    cr_assert_eq(tu_run(L, map_task, NULL, &v), 0);
    cr_assert_eq((long)(intptr_t)v, 0 + 1 + 4 + 9 + 16 + 25 + 36 + 49);
    tu_close(L);
    co_procpool_free(task_pool);
}

/* ---- imap / imap_unordered -------------------------------------------------------------------- */

/* Drains it: every outcome once, then 1 (and 1 again). Stores each
 * item's square or error by index; returns the indices in yield order. */
static void drain(co_procpool_iter *it, size_t n, long *vals, int *errs, size_t *order) {
    for (size_t k = 0; k < n; k++) {
        co_procpool_result r;
        size_t idx = (size_t)-1;
        int rc = co_procpool_iter_next(it, CO_FOREVER, &idx, &r);
        cr_assert_eq(rc, 0, "outcome %zu: %s", k, co_err_name(rc));
        cr_assert_lt(idx, n);
        cr_assert_eq(errs[idx], 1, "index %zu handed out twice", idx);
        errs[idx] = r.err;
        vals[idx] = r.err == 0 && r.len == sizeof(long) ? *(long *)r.data : -1;
        if (order) order[k] = idx;
        co_procpool_result_clear(&r, 1);
    }
    co_procpool_result r;
    cr_assert_eq(co_procpool_iter_next(it, CO_FOREVER, NULL, &r), 1, "exhausted");
    cr_assert_eq(co_procpool_iter_next(it, 0, NULL, &r), 1, "still exhausted");
}

Test(procpool, imap_hands_out_results_in_input_order) {
    co_procpool *p = pool(3);
    long xs[40], vals[40];
    int errs[40];
    size_t order[40];
    co_procpool_buf in[40];
    map_inputs(xs, in, 40);
    size_t chunks[] = {0, 1, 7, 40};
    for (size_t c = 0; c < 4; c++) {
        for (int i = 0; i < 40; i++) errs[i] = 1;
        co_procpool_iter *it = co_procpool_imap(p, "square_but_13", in, 40, chunks[c], CO_FOREVER, 0);
        cr_assert_not_null(it, "%s", strerror(errno));
        drain(it, 40, vals, errs, order);
        for (size_t i = 0; i < 40; i++) {
            cr_assert_eq(order[i], i, "chunksize %zu: position %zu holds input %zu", chunks[c], i, order[i]);
            if (i == 13) cr_assert_eq(errs[i], -CO_EWORKER, "the crash fails its own item");
            else if (chunks[c] > 1 && i / chunks[c] == 13 / chunks[c] && i > 13)
                cr_assert_eq(errs[i], -CO_EWORKER, "the rest of the crashed chunk");
            else cr_assert(errs[i] == 0 && vals[i] == (long)(i * i), "chunksize %zu item %zu: %d %ld", chunks[c], i, errs[i], vals[i]);
        }
        co_procpool_iter_free(it);
    }
    co_procpool_free(p);
}

Test(procpool, imap_unordered_hands_out_results_as_they_finish) {
    co_procpool *p = pool(3);
    long ms[3] = {900, 10, 400}; /* finish 1, 2, 0 */
    co_procpool_buf in[3];
    for (int i = 0; i < 3; i++) in[i] = (co_procpool_buf){&ms[i], sizeof ms[i]};
    co_procpool_iter *it = co_procpool_imap(p, "nap", in, 3, 0, CO_FOREVER, CO_PROCPOOL_UNORDERED);
    cr_assert_not_null(it, "%s", strerror(errno));
    long vals[3];
    int errs[3] = {1, 1, 1};
    size_t order[3];
    drain(it, 3, vals, errs, order);
    cr_assert(order[0] == 1 && order[1] == 2 && order[2] == 0, "order %zu %zu %zu", order[0], order[1], order[2]);
    for (int i = 0; i < 3; i++) cr_assert_eq(errs[i], 0);
    co_procpool_iter_free(it);

    /* ordered, the same jobs: the first outcome waits for the slowest */
    double t0 = now();
    it = co_procpool_imap(p, "nap", in, 3, 0, CO_FOREVER, 0);
    co_procpool_result r;
    size_t idx;
    cr_assert_eq(co_procpool_iter_next(it, CO_FOREVER, &idx, &r), 0);
    cr_assert_eq(idx, 0);
    cr_assert_geq(now() - t0, 0.85);
    co_procpool_result_clear(&r, 1);
    co_procpool_iter_free(it); /* two outcomes never handed out: freed */
    co_procpool_free(p);
}

Test(procpool, imap_next_times_out_and_goes_on) {
    co_procpool *p = pool(1);
    long ms = 300;
    co_procpool_buf in = {&ms, sizeof ms};
    for (int flags = 0; flags <= CO_PROCPOOL_UNORDERED; flags++) {
        co_procpool_iter *it = co_procpool_imap(p, "nap", &in, 1, 0, CO_FOREVER, flags);
        cr_assert_not_null(it);
        co_procpool_result r;
        size_t idx = 7;
        cr_assert_eq(co_procpool_iter_next(it, 0.02, &idx, &r), -ETIMEDOUT, "flags %d", flags);
        cr_assert_eq(idx, 7, "nothing handed out");
        cr_assert_eq(co_procpool_iter_next(it, CO_FOREVER, &idx, &r), 0);
        cr_assert(idx == 0 && r.err == 0, "%s", r.msg);
        co_procpool_result_clear(&r, 1);
        cr_assert_eq(co_procpool_iter_next(it, CO_FOREVER, &idx, &r), 1);
        co_procpool_iter_free(it);
    }
    co_procpool_free(p);
}

Test(procpool, imap_freed_early_drops_the_rest) {
    co_procpool *p = pool(2);
    char path[64];
    for (int flags = 0; flags <= CO_PROCPOOL_UNORDERED; flags++) {
        snprintf(path, sizeof path, "/tmp/corio-imap-%d-%d", (int)getpid(), flags);
        unlink(path);
        co_procpool_buf in[20];
        for (int i = 0; i < 20; i++) in[i] = (co_procpool_buf){path, strlen(path)};
        co_procpool_iter *it = co_procpool_imap(p, "nap_mark", in, 20, 0, CO_FOREVER, flags);
        cr_assert_not_null(it);
        co_procpool_result r;
        cr_assert_eq(co_procpool_iter_next(it, CO_FOREVER, NULL, &r), 0);
        cr_assert_eq(r.err, 0, "%s", r.msg);
        co_procpool_iter_free(it);
        /* two applies of the same job behind whatever still ran: once
         * they are done, nothing of the iterator's is left to run */
        cr_assert_eq(co_procpool_apply(p, "nap_mark", path, strlen(path), CO_FOREVER, &r), 0, "%s", r.msg);
        cr_assert_eq(co_procpool_apply(p, "nap_mark", path, strlen(path), CO_FOREVER, &r), 0, "%s", r.msg);
        char marks[64];
        size_t len = tu_read_file(path, marks, sizeof marks);
        unlink(path);
        /* handed out 1, at most 2 running and 2 more taken meanwhile, plus
         * the 2 applies: the other ~14 of the 20 were dropped */
        cr_assert_leq(len, 7, "flags %d: %zu jobs ran of 20 + 2", flags, len);
        cr_assert_geq(len, 3);
    }
    co_procpool_free(p);
}

Test(procpool, imap_bad_arguments) {
    co_procpool *p = pool(1);
    long x = 1;
    co_procpool_buf in = {&x, sizeof x};
    errno = 0;
    cr_assert_null(co_procpool_imap(p, "square", &in, 1, 0, CO_FOREVER, 4));
    cr_assert_eq(errno, EINVAL);
    cr_assert_null(co_procpool_imap(p, "nope", &in, 1, 0, CO_FOREVER, 0));
    cr_assert_eq(errno, ENOENT);
    cr_assert_null(co_procpool_imap(NULL, "square", &in, 1, 0, CO_FOREVER, 0));
    cr_assert_eq(errno, EINVAL);
    co_procpool_result r;
    cr_assert_eq(co_procpool_iter_next(NULL, CO_FOREVER, NULL, &r), -EINVAL);
    co_procpool_iter *it = co_procpool_imap(p, "square", NULL, 0, 0, CO_FOREVER, CO_PROCPOOL_UNORDERED);
    cr_assert_not_null(it, "nothing to do is fine");
    cr_assert_eq(co_procpool_iter_next(it, CO_FOREVER, NULL, &r), 1);
    co_procpool_iter_free(it);
    co_procpool_iter_free(NULL);
    co_procpool_free(p);
}

/* From a task, in both orders: next suspends only the task (a ticker
 * keeps running), times out, and a cancelled wait leaves the iterator
 * usable. */
static co_procpool_iter *g_it;
static int imap_ticks;
static void *imap_ticker(void *arg) {
    for (;;) {
        if (co_sleep(0.01) < 0) return NULL;
        imap_ticks++;
    }
}
static void *imap_next_task(void *arg) {
    co_procpool_result r;
    size_t idx;
    int rc = co_procpool_iter_next(g_it, CO_FOREVER, &idx, &r);
    if (rc == 0) co_procpool_result_clear(&r, 1);
    return (void *)(intptr_t)rc;
}
static void *imap_main(void *arg) {
    co_task *tick = co_spawn(imap_ticker, NULL);
    co_procpool_result r;
    size_t idx = 9;
    cr_assert_eq(co_procpool_iter_next(g_it, 0.02, &idx, &r), -ETIMEDOUT, "the task's own timeout");
    cr_assert_eq(idx, 9);
    cr_assert_eq(tu_cancel_after(imap_next_task, NULL, 0.1), -ECANCELED);
    int before = imap_ticks;
    cr_assert_geq(before, 3, "the loop kept running: %d ticks", before);
    for (int k = 0; k < 2; k++) {
        co_task *t = co_spawn(imap_next_task, NULL);
        void *v;
        cr_assert_eq(co_join(t, &v), 0);
        cr_assert_eq((intptr_t)v, 0, "outcome %d: %s", k, co_err_name((int)(intptr_t)v));
        co_task_release(t);
    }
    cr_assert_eq((intptr_t)imap_next_task(NULL), 1);
    co_cancel(tick, NULL);
    co_join(tick, NULL);
    co_task_release(tick);
    return NULL;
}

Test(procpool, imap_from_a_task) {
    co_procpool *p = pool(2);
    long ms[2] = {400, 300};
    co_procpool_buf in[2] = {{&ms[0], sizeof ms[0]}, {&ms[1], sizeof ms[1]}};
    for (int flags = 0; flags <= CO_PROCPOOL_UNORDERED; flags++) {
        g_it = co_procpool_imap(p, "nap", in, 2, 0, CO_FOREVER, flags);
        cr_assert_not_null(g_it);
        imap_ticks = 0;
        co_loop *L = tu_loop_opts(false, false, 0);
        cr_assert_eq(tu_run(L, imap_main, NULL, NULL), 0, "flags %d", flags);
        tu_close(L);
        co_procpool_iter_free(g_it);
    }
    co_procpool_free(p);
}

/* ---- max_tasks_per_worker (maxtasksperchild) ------------------------------------------------ */

Test(procpool, worker_retires_after_max_tasks) {
    co_procpool *p = co_procpool_new_ex(&(co_procpool_opts){.workers = 1, .max_tasks_per_worker = 3});
    cr_assert_not_null(p, "%s", strerror(errno));
    long pid[7];
    for (int i = 0; i < 7; i++) pid[i] = apply_long(p, "nap", 0);
    for (int i = 0; i < 7; i++) {
        if (i % 3) cr_assert_eq(pid[i], pid[i - 1], "job %d ran in a new worker too early", i);
        else if (i) cr_assert_neq(pid[i], pid[i - 1], "job %d: the worker did not retire after 3", i);
    }
    cr_assert(pid[0] != pid[6] && pid[3] != pid[6], "three different workers");
    /* a map chunk is one task: 6 chunks of 2 take two workers' lives */
    long xs[12];
    co_procpool_buf in[12];
    co_procpool_result out[12];
    map_inputs(xs, in, 12);
    cr_assert_eq(co_procpool_map(p, "square", in, 12, 2, CO_FOREVER, out), 0);
    for (int i = 0; i < 12; i++) cr_assert_eq(*(long *)out[i].data, (long)(i * i));
    co_procpool_result_clear(out, 12);
    long after = apply_long(p, "nap", 0);
    cr_assert_neq(after, pid[6]);
    cr_assert_null(co_procpool_new_ex(NULL));
    cr_assert_eq(errno, EINVAL);
    co_procpool_free(p);
}
