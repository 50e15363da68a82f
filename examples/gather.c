/* gather — asyncio.gather: two jobs run concurrently; the results come back
 * in the order the tasks were given, not the order they finished. */
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
    return "job2 result";
}

static void *main_task(void *arg) {
    double t0 = co_time();
    co_task *tasks[2] = {co_spawn(job1, NULL), co_spawn(job2, NULL)};
    if (!tasks[0] || !tasks[1]) return co_fail(-errno, "spawn failed");
    co_result r[2];
    int rc = co_gather(tasks, 2, r, 0);
    if (rc == 0) printf("[\"%s\", \"%s\"]\n", (char *)r[0].value, (char *)r[1].value);
    else printf("gather failed: %s\n", co_strerror(rc));
    printf("total %.2f s\n", co_time() - t0);
    co_task_release(tasks[0]);
    co_task_release(tasks[1]);
    return NULL;
}

int main(void) { return co_run(main_task, NULL, NULL); }
