/* mt_procpool.c — the process pool with threads around it (plain C,
 * tests/mt.h, so it runs under ThreadSanitizer): blocking apply from many
 * threads at once, crashes mixed into threaded traffic, terminate under
 * blocked threads, tasks on thread loops, and fork safety: a pool created
 * while other threads hold a lock the job functions need and hammer
 * malloc. The workers are this program, re-executed. */
#include "mt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/prctl.h>

/* ---- job functions ----------------------------------------------------------------- */

static long get_long(const void *in, size_t inlen) {
    long x = 0;
    memcpy(&x, in, inlen < sizeof x ? inlen : sizeof x);
    return x;
}

static int put_long(void **out, size_t *outlen, long v) {
    if (!(*out = malloc(sizeof v))) return -ENOMEM;
    memcpy(*out, &v, sizeof v);
    *outlen = sizeof v;
    return 0;
}

static int cube(const void *in, size_t inlen, void **out, size_t *outlen) {
    long x = get_long(in, inlen);
    return put_long(out, outlen, x * x * x);
}
CO_PROCPOOL_FN(cube)

/* negative input: a real segfault (address 8; see test_procpool.c) */
static int cube_or_crash(const void *in, size_t inlen, void **out, size_t *outlen) {
    if (get_long(in, inlen) < 0) {
        volatile uintptr_t addr = 8;
        *(volatile int *)addr = 1;
    }
    return cube(in, inlen, out, outlen);
}
CO_PROCPOOL_FN(cube_or_crash)

static int nap(const void *in, size_t inlen, void **out, size_t *outlen) {
    mt_sleep((double)get_long(in, inlen) / 1000);
    return put_long(out, outlen, 0);
}
CO_PROCPOOL_FN(nap)

/* A lock that a parent thread holds while the pool starts and runs. A
 * worker made by fork() would inherit it locked and hang here; a worker
 * started as a fresh process image finds it unlocked. The job also
 * mallocs a lot: a fork() taken while another thread held the allocator's
 * lock would hang there too. */
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;

static int needs_lock(const void *in, size_t inlen, void **out, size_t *outlen) {
    pthread_mutex_lock(&held);
    long sum = 0;
    for (int i = 0; i < 1000; i++) {
        char *p = malloc((size_t)(16 + i));
        p[0] = (char)i;
        sum += p[0];
        free(p);
    }
    pthread_mutex_unlock(&held);
    return put_long(out, outlen, get_long(in, inlen) + sum - sum);
}
CO_PROCPOOL_FN(needs_lock)

/* ---- helpers ------------------------------------------------------------------------------ */

static co_procpool *new_pool(size_t n) {
    co_procpool *p = co_procpool_new(n);
    MT_CHECK(p, "co_procpool_new: %s", strerror(errno));
    return p;
}

typedef struct applier {
    pthread_t th;
    co_procpool *p;
    const char *fn;
    int id, n;
    int ok, crashed, other;
} applier;

/* n blocking applies; ids that are multiples of 3 ask for crashes on
 * every 4th job (when fn is cube_or_crash) */
static void *apply_loop(void *arg) {
    applier *a = arg;
    for (int i = 0; i < a->n; i++) {
        long x = a->id * 1000 + i;
        bool crash = strcmp(a->fn, "cube_or_crash") == 0 && a->id % 3 == 0 && i % 4 == 3;
        if (crash) x = -x - 1;
        co_procpool_result r;
        int rc = co_procpool_apply(a->p, a->fn, &x, sizeof x, 30, &r);
        if (rc == 0 && !crash && r.len == sizeof(long) && *(long *)r.data == x * x * x) a->ok++;
        else if (rc == -CO_EWORKER && crash && strstr(r.msg, "killed by SIGSEGV")) a->crashed++;
        else {
            a->other++;
            fprintf(stderr, "  thread %d job %d: %s %s\n", a->id, i, co_err_name(rc), r.msg);
        }
        co_procpool_result_clear(&r, 1);
    }
    return NULL;
}

static void run_appliers(co_procpool *p, const char *fn, int nthreads, int n, int *ok,
                         int *crashed) {
    applier a[16];
    MT_CHECK(nthreads <= 16, "at most 16 threads");
    for (int i = 0; i < nthreads; i++) {
        a[i] = (applier){.p = p, .fn = fn, .id = i, .n = n};
        MT_OK(pthread_create(&a[i].th, NULL, apply_loop, &a[i]));
    }
    *ok = *crashed = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(a[i].th, NULL);
        MT_EQ(a[i].other, 0);
        *ok += a[i].ok;
        *crashed += a[i].crashed;
    }
}

/* ---- tests ------------------------------------------------------------------------------------ */

MT_TEST(blocking_apply_from_many_threads) {
    co_procpool *p = new_pool(3);
    int ok, crashed;
    run_appliers(p, "cube", 8, 25, &ok, &crashed);
    MT_EQ(ok, 8 * 25);
    co_procpool_free(p);
}

MT_TEST(crashes_among_threaded_jobs_fail_only_themselves) {
    co_procpool *p = new_pool(3);
    int ok, crashed;
    run_appliers(p, "cube_or_crash", 6, 16, &ok, &crashed);
    /* ids 0 and 3 crash on jobs 3, 7, 11, 15 */
    MT_EQ(crashed, 2 * 4);
    MT_EQ(ok, 6 * 16 - 8);
    MT_EQ(co_procpool_pids(p, NULL, 0) <= 3, 1);
    int ok2, crashed2;
    run_appliers(p, "cube", 3, 5, &ok2, &crashed2);
    MT_EQ(ok2, 15);
    co_procpool_free(p);
}

/* ---- fork safety ---- */

static atomic_bool stop_churn;

static void *churn(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_churn)) {
        void *blocks[32];
        for (int i = 0; i < 32; i++) blocks[i] = malloc((size_t)(32 + i * 64));
        for (int i = 0; i < 32; i++) free(blocks[i]);
    }
    return NULL;
}

MT_TEST(pool_created_while_threads_hold_locks_and_malloc) {
    pthread_t th[4];
    atomic_store(&stop_churn, false);
    for (int i = 0; i < 4; i++) MT_OK(pthread_create(&th[i], NULL, churn, NULL));
    /* the lock the job needs is held by this process from before the pool
     * exists until after the jobs ran */
    MT_OK(pthread_mutex_lock(&held));
    co_procpool *p = new_pool(2);
    for (long i = 0; i < 6; i++) {
        co_procpool_result r;
        int rc = co_procpool_apply(p, "needs_lock", &i, sizeof i, 10, &r);
        MT_CHECK(rc == 0, "job %ld: %s: %s (a fork()ed worker would hang on the inherited lock)",
                 i, co_err_name(rc), r.msg);
        MT_EQ(*(long *)r.data, i);
        co_procpool_result_clear(&r, 1);
    }
    MT_OK(pthread_mutex_unlock(&held));
    atomic_store(&stop_churn, true);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    co_procpool_free(p);
}

static void *make_pool_and_apply(void *arg) {
    co_procpool *p = co_procpool_new(1);
    if (!p) return (void *)(intptr_t)-errno;
    long x = (long)(intptr_t)arg;
    co_procpool_result r;
    int rc = co_procpool_apply(p, "cube", &x, sizeof x, 10, &r);
    if (rc == 0 && *(long *)r.data != x * x * x) rc = -EPROTO;
    co_procpool_result_clear(&r, 1);
    co_procpool_free(p);
    return (void *)(intptr_t)rc;
}

MT_TEST(pools_created_from_several_threads_at_once) {
    pthread_t th[4];
    for (long i = 0; i < 4; i++) MT_OK(pthread_create(&th[i], NULL, make_pool_and_apply, (void *)(intptr_t)(i + 2)));
    for (int i = 0; i < 4; i++) {
        void *v;
        pthread_join(th[i], &v);
        MT_CHECK((intptr_t)v == 0, "thread %d: %s", i, co_err_name((int)(intptr_t)v));
    }
}

/* ---- terminate, close under blocked threads ---- */

static void *nap_forever(void *arg) {
    long ms = 30000;
    co_procpool_result r;
    return (void *)(intptr_t)co_procpool_apply(arg, "nap", &ms, sizeof ms, CO_FOREVER, &r);
}

MT_TEST(terminate_releases_blocked_threads) {
    co_procpool *p = new_pool(2);
    pthread_t th[5];
    for (int i = 0; i < 5; i++) MT_OK(pthread_create(&th[i], NULL, nap_forever, p));
    mt_sleep(0.2);
    double t0 = mt_now();
    MT_OK(co_procpool_terminate(p));
    for (int i = 0; i < 5; i++) {
        void *v;
        pthread_join(th[i], &v);
        MT_EQ((int)(intptr_t)v, -ECANCELED);
    }
    MT_OK(co_procpool_join(p, 30));
    MT_CHECK(mt_now() - t0 < 20, "terminate killed, it did not wait");
    co_procpool_free(p);
}

static void *short_naps(void *arg) {
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        long ms = 20;
        co_procpool_result r;
        int rc = co_procpool_apply(arg, "nap", &ms, sizeof ms, CO_FOREVER, &r);
        if (rc != 0 && rc != -CO_ESHUTDOWN) bad++;
        co_procpool_result_clear(&r, 1);
    }
    return (void *)(intptr_t)bad;
}

MT_TEST(close_while_threads_submit) {
    co_procpool *p = new_pool(2);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) MT_OK(pthread_create(&th[i], NULL, short_naps, p));
    mt_sleep(0.05);
    MT_OK(co_procpool_close(p));
    MT_OK(co_procpool_join(p, 30));
    for (int i = 0; i < 4; i++) {
        void *v;
        pthread_join(th[i], &v);
        MT_EQ((int)(intptr_t)v, 0); /* every job ran or was refused, none failed */
    }
    MT_EQ(co_procpool_pids(p, NULL, 0), 0);
    co_procpool_free(p);
}

/* ---- tasks on thread loops ---- */

static co_procpool *task_pool;

static void *task_applies(void *arg) {
    long base = (long)(intptr_t)arg, sum = 0;
    for (long i = 0; i < 10; i++) {
        long x = base + i;
        co_procpool_result r;
        int rc = co_procpool_apply(task_pool, "cube", &x, sizeof x, CO_FOREVER, &r);
        if (rc) return co_fail(rc, "%s", r.msg);
        sum += *(long *)r.data;
        co_procpool_result_clear(&r, 1);
    }
    return (void *)(intptr_t)sum;
}

static long want_sum(long base) {
    long want = 0;
    for (long k = 0; k < 10; k++) want += (base + k) * (base + k) * (base + k);
    return want;
}

/* its own loop, 4 tasks applying at once, run to the end */
static void *loop_thread(void *arg) {
    long id = (long)(intptr_t)arg;
    co_loop *L = co_loop_new(NULL);
    if (!L) return (void *)(intptr_t)-errno;
    co_task *t[4];
    for (long i = 0; i < 4; i++) t[i] = co_spawn(task_applies, (void *)(intptr_t)((id * 4 + i) * 100));
    intptr_t bad = 0;
    for (long i = 0; i < 4; i++) {
        void *v = NULL;
        int rc = t[i] ? co_loop_run_until_complete(L, t[i], &v) : -ENOMEM;
        if (rc != 0 || (long)(intptr_t)v != want_sum((id * 4 + i) * 100)) bad++;
        co_task_release(t[i]);
    }
    if (co_loop_close(L) != 0) bad++;
    co_loop_free(L);
    return (void *)bad;
}

/* Loops the test owns, in plain threads: each runs its tasks to the end
 * and closes cleanly while the others still wait for processes. */
MT_TEST(tasks_on_loops_in_two_threads_apply_at_once) {
    task_pool = new_pool(3);
    pthread_t th[2];
    for (long i = 0; i < 2; i++) MT_OK(pthread_create(&th[i], NULL, loop_thread, (void *)(intptr_t)i));
    for (int i = 0; i < 2; i++) {
        void *v;
        pthread_join(th[i], &v);
        MT_EQ((intptr_t)v, 0);
    }
    co_procpool_free(task_pool);
}

/* imap_unordered's outcomes reach the iterator from the pool's manager
 * thread (done-callbacks) while the caller waits, and after it freed the
 * iterator: two threads each drain one, a third frees one half-way. */
static co_procpool *g_ip;
static void *imap_drainer(void *arg) {
    long xs[60];
    co_procpool_buf in[60];
    for (long i = 0; i < 60; i++) xs[i] = i - 30, in[i] = (co_procpool_buf){&xs[i], sizeof xs[i]};
    co_procpool_iter *it = co_procpool_imap(g_ip, "cube", in, 60, 4, CO_FOREVER, CO_PROCPOOL_UNORDERED);
    MT_CHECK(it != NULL);
    bool seen[60] = {0};
    size_t k = 0, idx;
    co_procpool_result r;
    int rc;
    while ((rc = co_procpool_iter_next(it, CO_FOREVER, &idx, &r)) == 0) {
        MT_CHECK(idx < 60 && !seen[idx]);
        seen[idx] = true;
        MT_EQ(r.err, 0);
        MT_EQ(*(long *)r.data, xs[idx] * xs[idx] * xs[idx]);
        co_procpool_result_clear(&r, 1);
        if (arg && ++k == 10) break; /* the quitter */
        k += !arg;
    }
    if (!arg) {
        MT_EQ(rc, 1);
        MT_EQ(k, 60);
    }
    co_procpool_iter_free(it);
    return NULL;
}

MT_TEST(imap_unordered_from_threads) {
    g_ip = co_procpool_new(3);
    MT_CHECK(g_ip != NULL);
    pthread_t th[3];
    for (intptr_t k = 0; k < 3; k++) pthread_create(&th[k], NULL, imap_drainer, (void *)(intptr_t)(k == 2));
    for (int k = 0; k < 3; k++) pthread_join(th[k], NULL);
    co_procpool_free(g_ip);
}

/* ---- orphans ------------------------------------------------------------------------ */

static void orphan_mark(void);
MT_TEST(workers_of_a_killed_owner_never_run_main) {
    char dir[] = "/tmp/corio-orphan-XXXXXX";
    MT_CHECK(mkdtemp(dir) != NULL);
    char marker[64];
    snprintf(marker, sizeof marker, "%s/main-ran", dir);
    /* the workers of our dead children become ours: waitpid sees them all */
    MT_OK(prctl(PR_SET_CHILD_SUBREAPER, 1) < 0 ? -errno : 0);
    for (int round = 0; round < 8; round++) {
        pid_t owner = fork();
        MT_CHECK(owner >= 0);
        if (owner == 0) {
            setenv("MT_ORPHAN_PROBE", marker, 1); /* the workers' environment */
            co_procpool *p = co_procpool_new(6);
            if (round % 2) usleep(200 * round); /* kill at different points of the start */
            kill(getpid(), p ? SIGKILL : SIGTERM);
            _exit(1);
        }
        int st;
        MT_CHECK(waitpid(owner, &st, 0) == owner);
        MT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "co_procpool_new failed in the owner");
    }
    while (waitpid(-1, NULL, 0) > 0) {} /* every orphan has ended */
    bool ran_main = access(marker, F_OK) == 0;
    unlink(marker);
    rmdir(dir);
    MT_CHECK(!ran_main, "an orphaned worker ran main()");
}

/* A copy of this program that runs main() with MT_ORPHAN_PROBE set leaves
 * the marker file it names (atexit: a worker ends with _exit and never
 * does) and runs no test (mt_ntests = 0). Defined last: it runs after the
 * MT_TEST registrations of this file (constructors run in definition order), and before corio's worker
 * constructor (libcorio.a is linked after this file). */
static const char *orphan_marker;
static void orphan_mark(void) {
    FILE *f = fopen(orphan_marker, "w");
    if (f) fclose(f);
}
__attribute__((constructor)) static void orphan_probe(void) {
    if (!(orphan_marker = getenv("MT_ORPHAN_PROBE"))) return;
    mt_ntests = 0;
    atexit(orphan_mark);
}
