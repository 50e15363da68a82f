/* create_task — the same two jobs spawned as tasks and joined: they run
 * concurrently, so the total is about job1's 1 s, not 1 s + job2's 0.5 s. */
#include <corio.h>
#include <errno.h>
#include <stdio.h>

static void *job1(void *arg) {
    puts("job1 start");
    if (co_sleep(1.0) < 0) return NULL;
    puts("job1 end");
    return "job1 result";
}

static void *job2(void *arg) {
    puts("job2 start");
    if (co_sleep(0.5) < 0) return NULL;
    puts("job2 end");
    return "job2 result";
}

static void *main_task(void *arg) {
    double t0 = co_time();
    co_task *t1 = co_spawn(job1, NULL);
    co_task *t2 = co_spawn(job2, NULL);
    if (!t1 || !t2) return co_fail(-errno, "spawn failed");
    void *r1 = NULL, *r2 = NULL;
    int rc1 = co_join(t1, &r1), rc2 = co_join(t2, &r2);
    co_task_release(t1);
    co_task_release(t2);
    if (rc1 < 0 || rc2 < 0) return co_fail(rc1 < 0 ? rc1 : rc2, "a job failed");
    printf("results: %s, %s\n", (char *)r1, (char *)r2);
    printf("total %.2f s (concurrently)\n", co_time() - t0);
    return NULL;
}

int main(void) { return co_run(main_task, NULL, NULL); }
