/* rate_limit — a semaphore of 3 around 10 jobs of 1 s each: never more
 * than 3 run at once, so the 10 jobs take 4 s (rounds of 3, 3, 3, 1), not
 * 10 s one after another nor 1 s all at once. Waiting jobs get a permit in
 * the order they asked for one. */
#include <corio.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

enum { JOBS = 10, LIMIT = 3 };

static co_sem limit;
static int running, max_running;
static double t0;

static void *job(void *arg) {
    int id = (int)(intptr_t)arg;
    int rc = co_sem_acquire(&limit);
    if (rc) return co_fail(rc, "job %d: no permit", id);
    if (++running > max_running) max_running = running;
    printf("%.2f s  job %d starts (%d running)\n", co_time() - t0, id, running);
    rc = co_sleep(1.0);
    running--;
    if (rc == 0) printf("%.2f s  job %d done\n", co_time() - t0, id);
    co_sem_release(&limit); /* whatever happened: the permit goes back */
    return rc ? co_fail(rc, "job %d interrupted", id) : NULL;
}

static void *main_task(void *arg) {
    t0 = co_time();
    co_sem_init(&limit, LIMIT, CO_SEM_BOUNDED);
    co_task *t[JOBS];
    for (int i = 0; i < JOBS; i++)
        if (!(t[i] = co_spawn(job, (void *)(intptr_t)i))) return co_fail(-errno, "spawn failed");
    int failed = 0;
    for (int i = 0; i < JOBS; i++) {
        if (co_join(t[i], NULL) != 0) failed++;
        co_task_release(t[i]);
    }
    co_sem_destroy(&limit);
    printf("max concurrency: %d (limit %d)\n", max_running, LIMIT);
    printf("total %.2f s for %d jobs of 1 s (%d failed)\n", co_time() - t0, JOBS, failed);
    return NULL;
}

int main(void) { return co_run(main_task, NULL, NULL); }
