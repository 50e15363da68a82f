/* corio-bench — corio's side of the micro-benchmarks in
 * ../shared/BENCHMARKS.md, written to match the peer programs in
 * ../shared/peers/micro/src (same workloads, same metrics, same output).
 *
 * Usage: corio-bench WORKLOAD [N] [MODE]
 *   switch N        two tasks co_yield() to each other; N switches in all
 *                   (default 10000000)                      -> per_switch ns
 *   spawn N         N tasks that return at once, spawned and joined from a
 *                   main task (default 1000000)             -> per_task ns,
 *                                                              per_task_all_at_once ns
 *   idle N [MODE]   N tasks blocked in co_sleep(10 s) (MODE sleep) or in
 *                   co_join on a future never completed (MODE event, the
 *                   default as in the Go peer) (default N 1000000)
 *                                        -> create_per_task ns, rss_per_task B, rss_total MiB
 *   timers N        N co_call_later callbacks, delays uniform in [0, 1] s,
 *                   run until all fired (default 1000000)
 *                                        -> schedule_per_timer ns, total_wall s, cpu_per_timer ns
 *
 * Output: one line per metric, in the peers' format
 *   RESULT<TAB>bench<TAB>peer<TAB>metric<TAB>value<TAB>unit
 * with peer "corio" ("corio-sleep" / "corio-event" for idle, as the Go peer
 * prints "go-event-P2").
 *
 * Every figure is taken with clock_gettime around the workload only, inside
 * a running loop: process start-up, loop creation and teardown are not in
 * it. Each run checks its counts and exits 1 on a mismatch; an unknown
 * workload or mode prints the usage and exits 2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "corio.h"

/* ---- helpers (as ../shared/peers/micro/src/c/common.h) -------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* VmRSS from /proc/self/status, in bytes (-1 on failure). */
static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* The peers' deterministic PRNG (xorshift64*), same seed: same deadlines. */
static uint64_t xs64(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void result(const char *bench, const char *peer, const char *metric, double value,
                   const char *unit) {
    printf("RESULT\t%s\t%s\t%s\t%.6g\t%s\n", bench, peer, metric, value, unit);
}

static _Noreturn void die(const char *fmt, ...) CO_PRINTF(1, 2);
static _Noreturn void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("corio-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stdout);
    _exit(1);
}

static co_task *spawn_or_die(co_fn fn, void *arg) {
    co_task *t = co_spawn(fn, arg);
    if (!t) die("co_spawn failed: %s", co_strerror(-errno));
    return t;
}

/* ---- switch --------------------------------------------------------------------- */

static long sw_per;          /* yields per task */
static long sw_yields;       /* yields done, both tasks */
static co_future *sw_start;  /* both tasks wait here until the clock starts */

static void *sw_task(void *arg) {
    (void)arg;
    int rc = co_join(sw_start, NULL);
    if (rc) return co_fail(rc, "waiting for the start failed");
    for (long i = 0; i < sw_per; i++) {
        if ((rc = co_yield()) != 0) return co_fail(rc, "co_yield failed");
        sw_yields++;
    }
    return NULL;
}

static void *switch_main(void *arg) {
    long n = *(long *)arg;
    sw_per = n / 2;
    sw_start = co_future_new();
    if (!sw_start) die("co_future_new failed: %s", co_strerror(-errno));
    co_task *a = spawn_or_die(sw_task, NULL);
    co_task *b = spawn_or_die(sw_task, NULL);
    co_yield(); /* both start and block on sw_start */

    double t0 = now_s();
    co_future_set_result(sw_start, NULL);
    int ra = co_join(a, NULL);
    int rb = co_join(b, NULL);
    double t1 = now_s();

    if (ra || rb) die("switch: a task failed (%s / %s)", co_strerror(ra), co_strerror(rb));
    long total = sw_per * 2;
    if (sw_yields != total) die("switch: %ld yields != %ld", sw_yields, total);
    co_task_release(a);
    co_task_release(b);
    co_task_release(sw_start);
    result("switch", "corio", "per_switch", (t1 - t0) * 1e9 / (double)total, "ns");
    return NULL;
}

/* ---- spawn -------------------------------------------------------------------------- */

#define SPAWN_BATCH 1000

static long sp_finished;

static void *sp_task(void *arg) {
    (void)arg;
    sp_finished++;
    return NULL;
}

static void sp_join_release(co_task **ts, long k) {
    for (long j = 0; j < k; j++) {
        int rc = co_join(ts[j], NULL);
        if (rc) die("spawn: co_join failed: %s", co_strerror(rc));
        co_task_release(ts[j]);
    }
}

static void *spawn_main(void *arg) {
    long n = *(long *)arg;
    co_task **ts = malloc(sizeof *ts * (size_t)n);
    if (!ts) die("spawn: out of memory");
    memset(ts, 0, sizeof *ts * (size_t)n); /* touch it outside the timing */

    /* per_task: in batches of SPAWN_BATCH (spawn 1000, join those 1000,
     * release them), as the boost::context peer (spawn_fiber.cpp) does with
     * its batch argument 1000. */
    sp_finished = 0;
    double t0 = now_s();
    for (long done = 0; done < n; done += SPAWN_BATCH) {
        long b = n - done < SPAWN_BATCH ? n - done : SPAWN_BATCH;
        for (long i = 0; i < b; i++) ts[i] = spawn_or_die(sp_task, NULL);
        sp_join_release(ts, b);
    }
    double t1 = now_s();
    if (sp_finished != n) die("spawn: finished %ld != %ld", sp_finished, n);

    /* per_task_all_at_once: spawn all N first, then join them all, as the Go
     * peer (spawn.go: N goroutines, then wg.Wait) does. */
    sp_finished = 0;
    double t2 = now_s();
    for (long i = 0; i < n; i++) ts[i] = spawn_or_die(sp_task, NULL);
    sp_join_release(ts, n);
    double t3 = now_s();
    if (sp_finished != n) die("spawn (all at once): finished %ld != %ld", sp_finished, n);

    free(ts);
    result("spawn", "corio", "per_task", (t1 - t0) * 1e9 / (double)n, "ns");
    result("spawn", "corio", "per_task_all_at_once", (t3 - t2) * 1e9 / (double)n, "ns");
    return NULL;
}

/* ---- idle ----------------------------------------------------------------------------- */

static long idle_started;   /* tasks that reached their blocking point */
static co_future *idle_ev;  /* never completed */
static int idle_event;      /* 1: event mode, 0: sleep mode */

static void *idle_task(void *arg) {
    (void)arg;
    idle_started++;
    if (idle_event) co_join(idle_ev, NULL);
    else co_sleep(10.0);
    return NULL;
}

static void *idle_main(void *arg) {
    long n = *(long *)arg;
    const char *peer = idle_event ? "corio-event" : "corio-sleep";
    if (idle_event && !(idle_ev = co_future_new()))
        die("co_future_new failed: %s", co_strerror(-errno));

    long rss0 = rss_bytes();
    double t0 = now_s();
    for (long i = 0; i < n; i++) co_task_release(spawn_or_die(idle_task, NULL)); /* fire and forget */
    /* The spawned tasks run ahead of us in FIFO order; each counts itself
     * just before it blocks, so once the count is N every task is blocked. */
    while (idle_started < n) {
        int rc = co_yield();
        if (rc) die("idle: co_yield failed: %s", co_strerror(rc));
    }
    double t1 = now_s();
    long rss1 = rss_bytes();
    if (idle_started != n) die("idle: started %ld != %ld", idle_started, n);
    if (rss0 < 0 || rss1 < 0) die("idle: cannot read VmRSS from /proc/self/status");

    result("idle", peer, "create_per_task", (t1 - t0) * 1e9 / (double)n, "ns");
    result("idle", peer, "rss_per_task", (double)(rss1 - rss0) / (double)n, "B");
    result("idle", peer, "rss_total", (double)rss1 / 1048576.0, "MiB");
    fflush(stdout);
    _exit(0); /* do not tear down N blocked tasks */
}

/* ---- timers -------------------------------------------------------------------------------- */

static long tm_n, tm_fired;
static double *tm_delay;   /* precomputed before the loop runs */
static co_future *tm_done; /* completed by the last callback */

static void tm_cb(void *arg) {
    (void)arg;
    if (++tm_fired == tm_n) co_future_set_result(tm_done, NULL);
}

static void timers_prepare(long n) {
    tm_n = n;
    tm_delay = malloc(sizeof *tm_delay * (size_t)n);
    if (!tm_delay) die("timers: out of memory");
    uint64_t seed = 0x9E3779B97F4A7C15ULL;
    for (long i = 0; i < n; i++) tm_delay[i] = (double)(xs64(&seed) % 1000001) / 1e6; /* 0..1 s, 1 us steps */
}

static void *timers_main(void *arg) {
    long n = *(long *)arg;
    tm_done = co_future_new();
    if (!tm_done) die("co_future_new failed: %s", co_strerror(-errno));

    double c0 = cpu_s(), t0 = now_s();
    /* co_call_later counts from the loop's cached clock (co_now), as
     * uv_timer_start does; the libuv peer calls uv_update_time after t0.
     * corio has no public call for that, so a 1 ns sleep makes the loop go
     * round once and refresh its clock: every deadline is then >= t0. */
    int rc = co_sleep_ns(1);
    if (rc) die("timers: co_sleep_ns failed: %s", co_strerror(rc));
    for (long i = 0; i < n; i++) {
        rc = co_call_later(tm_delay[i], tm_cb, NULL, NULL);
        if (rc) die("timers: co_call_later failed: %s", co_strerror(rc));
    }
    double t1 = now_s();
    rc = co_join(tm_done, NULL);
    double t2 = now_s(), c1 = cpu_s();

    if (rc) die("timers: waiting for the last timer failed: %s", co_strerror(rc));
    if (tm_fired != n) die("timers: fired %ld != %ld", tm_fired, n);
    co_task_release(tm_done);
    free(tm_delay);
    result("timers", "corio", "schedule_per_timer", (t1 - t0) * 1e9 / (double)n, "ns");
    result("timers", "corio", "total_wall", t2 - t0, "s");
    result("timers", "corio", "cpu_per_timer", (c1 - c0) * 1e9 / (double)n, "ns");
    return NULL;
}

/* ---- gather: spawn N tasks and gather them all at once ---------------------------------------- */

static void *gather_main(void *arg) {
    long n = *(long *)arg;
    co_task **ts = malloc(sizeof *ts * (size_t)n);
    co_result *rs = malloc(sizeof *rs * (size_t)n);
    if (!ts || !rs) die("gather: out of memory");
    memset(rs, 0, sizeof *rs * (size_t)n);
    sp_finished = 0;
    double t0 = now_s();
    for (long i = 0; i < n; i++) ts[i] = spawn_or_die(sp_task, NULL);
    int rc = co_gather(ts, (size_t)n, rs, 0);
    for (long i = 0; i < n; i++) co_task_release(ts[i]);
    double t1 = now_s();
    if (rc || sp_finished != n) die("gather: %s, finished %ld != %ld", co_strerror(rc), sp_finished, n);
    free(ts);
    free(rs);
    result("gather", "corio", "per_task", (t1 - t0) * 1e9 / (double)n, "ns");
    return NULL;
}

/* ---- queue: one producer, one consumer, a bounded queue of 64 --------------------------------- */

static co_queue bq;
static void *q_producer(void *arg) {
    long n = *(long *)arg;
    for (long i = 1; i <= n; i++)
        if (co_queue_put(&bq, (void *)(intptr_t)i)) die("queue: put failed");
    return NULL;
}

static void *queue_main(void *arg) {
    long n = *(long *)arg;
    if (co_queue_init(&bq, &(co_queue_opts){.maxsize = 64})) die("queue: init failed");
    double t0 = now_s();
    co_task *p = spawn_or_die(q_producer, arg);
    long sum = 0;
    for (long i = 0; i < n; i++) {
        void *v;
        if (co_queue_get(&bq, &v)) die("queue: get failed");
        sum += (long)(intptr_t)v;
    }
    co_join(p, NULL);
    double t1 = now_s();
    co_task_release(p);
    if (sum != n * (n + 1) / 2) die("queue: lost items");
    co_queue_destroy(&bq);
    result("queue", "corio", "per_item", (t1 - t0) * 1e9 / (double)n, "ns");
    return NULL;
}

/* ---- offload: trivial functions on the thread pool ------------------------------------------ */

static volatile long off_sink;
static void *off_work(void *arg) {
    (void)arg;
    off_sink = off_sink + 1;
    return (void *)1;
}

static double off_seq(long n) {
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        void *r = NULL;
        int rc = co_run_blocking(off_work, NULL, &r);
        if (rc || r != (void *)1) die("offload: co_run_blocking: %s", co_strerror(rc));
    }
    return now_s() - t0;
}

static void *offload_main(void *arg) {
    long n = *(long *)arg;
    if (!co_pool_default()) die("offload: no pool: %s", strerror(errno));
    off_seq(1000); /* warm-up: the pool's threads are started and running */
    double seq = off_seq(n);
    co_tsfuture **fs = malloc(sizeof *fs * (size_t)n);
    if (!fs) die("offload: out of memory");
    double t0 = now_s();
    for (long i = 0; i < n; i++)
        if (!(fs[i] = co_pool_submit(NULL, off_work, NULL))) die("offload: submit: %s", strerror(errno));
    for (long i = 0; i < n; i++) {
        void *r = NULL;
        int rc = co_tsfuture_wait(fs[i], CO_FOREVER, &r);
        if (rc || r != (void *)1) die("offload: wait: %s", co_strerror(rc));
        co_tsfuture_release(fs[i]);
    }
    double conc = now_s() - t0;
    free(fs);
    result("offload", "corio", "seq_roundtrip", seq * 1e9 / (double)n, "ns");
    result("offload", "corio", "conc_per_op", conc * 1e9 / (double)n, "ns");
    return NULL;
}

/* ---- threadsafe: a foreign thread sends N callbacks to the loop ---------------------------- */

static long ts_target, ts_ran;
static double ts_end;
static co_future *ts_done;
static co_loop *ts_loop;

static void ts_callback(void *arg) {
    (void)arg;
    if (++ts_ran == ts_target) {
        ts_end = now_s();
        co_future_set_result(ts_done, NULL);
    }
}

static void *ts_producer(void *arg) {
    (void)arg;
    for (long i = 0; i < ts_target; i++) {
        int rc = co_loop_call_threadsafe(ts_loop, ts_callback, NULL);
        if (rc) die("threadsafe: co_loop_call_threadsafe: %s", co_strerror(rc));
    }
    return NULL;
}

static void *threadsafe_main(void *arg) {
    ts_target = *(long *)arg;
    ts_loop = co_loop_current();
    ts_done = co_future_new();
    if (!ts_done) die("threadsafe: out of memory");
    pthread_t th;
    double t0 = now_s();
    if (pthread_create(&th, NULL, ts_producer, NULL)) die("threadsafe: pthread_create failed");
    int rc = co_join(ts_done, NULL);
    pthread_join(th, NULL);
    if (rc || ts_ran != ts_target) die("threadsafe: ran %ld != %ld (%s)", ts_ran, ts_target, co_strerror(rc));
    co_task_release(ts_done);
    result("threadsafe", "corio", "per_callback", (ts_end - t0) * 1e9 / (double)ts_target, "ns");
    return NULL;
}

/* ---- main ------------------------------------------------------------------------------------ */

static _Noreturn void usage(void) {
    fputs("usage: corio-bench WORKLOAD [N] [MODE]\n"
          "  switch [N=10000000]          two tasks co_yield to each other, N switches\n"
          "  spawn  [N=1000000]           spawn and join N tasks that return at once\n"
          "  idle   [N=1000000] [event|sleep]   N tasks blocked on a future / in co_sleep(10)\n"
          "  timers [N=1000000]           N co_call_later, delays uniform in [0, 1] s\n"
          "  gather [N=1000000]           spawn N tasks that return at once, co_gather them all\n"
          "  queue  [N=10000000]          one producer, one consumer, co_queue of 64, N items\n"
          "  offload [N=100000]           N trivial functions on the thread pool: one at a time, then all at once\n"
          "  threadsafe [N=1000000]       a foreign thread sends N co_loop_call_threadsafe callbacks\n",
          stderr);
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 2) usage();
    const char *w = argv[1];
    co_fn fn;
    long dflt;
    if (strcmp(w, "switch") == 0) {
        fn = switch_main;
        dflt = 10000000;
    } else if (strcmp(w, "spawn") == 0) {
        fn = spawn_main;
        dflt = 1000000;
    } else if (strcmp(w, "idle") == 0) {
        fn = idle_main;
        dflt = 1000000;
        const char *mode = argc > 3 ? argv[3] : "event";
        if (strcmp(mode, "event") == 0) idle_event = 1;
        else if (strcmp(mode, "sleep") == 0) idle_event = 0;
        else {
            fprintf(stderr, "corio-bench: unknown idle mode \"%s\"\n", mode);
            usage();
        }
    } else if (strcmp(w, "timers") == 0) {
        fn = timers_main;
        dflt = 1000000;
    } else if (strcmp(w, "gather") == 0) {
        fn = gather_main;
        dflt = 1000000;
    } else if (strcmp(w, "queue") == 0) {
        fn = queue_main;
        dflt = 10000000;
    } else if (strcmp(w, "offload") == 0) {
        fn = offload_main;
        dflt = 100000;
    } else if (strcmp(w, "threadsafe") == 0) {
        fn = threadsafe_main;
        dflt = 1000000;
    } else {
        fprintf(stderr, "corio-bench: unknown workload \"%s\"\n", w);
        usage();
    }
    long n = dflt;
    if (argc > 2) {
        char *end;
        errno = 0;
        n = strtol(argv[2], &end, 10);
        if (errno || end == argv[2] || *end || n <= 0) {
            fprintf(stderr, "corio-bench: bad N \"%s\"\n", argv[2]);
            usage();
        }
    }
    if (strcmp(w, "switch") == 0 && n < 2) n = 2;
    if (fn == timers_main) timers_prepare(n); /* outside the timing */

    co_loop *loop = co_loop_new(NULL);
    if (!loop) die("co_loop_new failed: %s", strerror(errno));
    co_loop_set_current(loop);
    co_task *t = co_spawn(fn, &n);
    if (!t) die("co_spawn (main) failed: %s", co_strerror(-errno));
    int rc = co_loop_run_until_complete(loop, t, NULL);
    if (rc) die("%s: the benchmark task failed: %s (%s)", w, co_task_message(t) ? co_task_message(t) : co_strerror(rc),
                co_err_name(rc));
    co_task_release(t);
    fflush(stdout);
    rc = co_loop_free(loop);
    if (rc) die("co_loop_free: %s", co_strerror(rc));
    return 0;
}
