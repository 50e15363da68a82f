/* process_pool — multiprocessing.Pool for C: five CPU-bound jobs (counting
 * primes) on a pool of four worker processes, plus one job that crashes
 * on purpose. The crash fails only that job, with a message naming the
 * signal and the worker; the pool replaces the worker and the other jobs
 * finish. The main task awaits each job's future: it suspends, the
 * loop stays free. */
#include <corio.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- job functions: they run in the worker processes ---- */

/* in: a long n; out: a long, the number of primes below n */
static int count_primes(const void *in, size_t inlen, void **out, size_t *outlen) {
    long n;
    if (inlen != sizeof n) return co_procpool_fail(-EINVAL, "want a long, got %zu bytes", inlen);
    memcpy(&n, in, sizeof n);
    char *composite = calloc((size_t)n + 1, 1);
    if (!composite) return -ENOMEM;
    long count = 0;
    for (long i = 2; i < n; i++) {
        if (composite[i]) continue;
        count++;
        for (long k = i * i; k < n; k += i) composite[k] = 1;
    }
    free(composite);
    if (!(*out = malloc(sizeof count))) return -ENOMEM;
    memcpy(*out, &count, sizeof count);
    *outlen = sizeof count;
    return 0;
}
CO_PROCPOOL_FN(count_primes)

static int crash(const void *in, size_t inlen, void **out, size_t *outlen) {
    volatile uintptr_t addr = 8; /* a wild pointer: SIGSEGV */
    *(volatile int *)addr = 1;
    return 0;
}
CO_PROCPOOL_FN(crash)

/* ---- the program ---- */

static void *main_task(void *arg) {
    co_procpool *pool = arg;
    long sizes[5] = {1000000, 2000000, 3000000, 4000000, 5000000};
    co_tsfuture *jobs[6];
    for (int i = 0; i < 5; i++)
        jobs[i] = co_procpool_submit(pool, "count_primes", &sizes[i], sizeof sizes[i], CO_FOREVER);
    jobs[5] = co_procpool_submit(pool, "crash", NULL, 0, CO_FOREVER);
    for (int i = 0; i < 6; i++)
        if (!jobs[i]) return co_fail(-errno, "submit: %s", co_strerror(-errno));

    for (int i = 0; i < 6; i++) {
        co_procpool_result r;
        int rc = co_procpool_wait(jobs[i], CO_FOREVER, &r);
        co_tsfuture_release(jobs[i]);
        if (rc == 0) {
            printf("primes below %ld: %ld\n", sizes[i], *(long *)r.data);
        } else {
            /* "worker 1234 killed by SIGSEGV while running crash": the pid
             * goes to stderr, the rest to stdout (which the tests compare) */
            fprintf(stderr, "job %d: %s\n", i, r.msg);
            const char *rest = strncmp(r.msg, "worker ", 7) == 0 ? strchr(r.msg + 7, ' ') : NULL;
            printf("job %d failed: %s: worker %s\n", i, co_err_name(rc), rest ? rest + 1 : r.msg);
        }
        co_procpool_result_clear(&r, 1);
    }

    /* the pool goes on with a fresh worker in place of the dead one */
    long n = 1000;
    co_procpool_result r;
    if (co_procpool_apply(pool, "count_primes", &n, sizeof n, 10, &r) == 0)
        printf("after the crash: primes below %ld: %ld\n", n, *(long *)r.data);
    co_procpool_result_clear(&r, 1);
    printf("workers alive: %zu\n", co_procpool_pids(pool, NULL, 0));

    co_procpool_close(pool);                /* no more jobs ...            */
    int rc = co_procpool_join(pool, CO_FOREVER);    /* ... and the workers exit     */
    printf("closed and joined: %s, workers alive: %zu\n", co_err_name(rc),
           co_procpool_pids(pool, NULL, 0));
    return NULL;
}

int main(void) {
    /* Create the pool first thing: the workers are this program, started
     * afresh, and never run main() (see docs/procpool.md). */
    co_procpool *pool = co_procpool_new(4);
    if (!pool) {
        perror("co_procpool_new");
        return 1;
    }
    printf("pool of %zu worker processes\n", co_procpool_size(pool));
    int status = co_run(main_task, pool, NULL);
    co_procpool_free(pool);
    return status;
}
