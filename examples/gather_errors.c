/* gather_errors — three tasks gathered with CO_RETURN_ERRORS: the first
 * returns the time it finished, the second fails after 2 s, the third
 * waits (co_wait_for, 3 s) for a 30 s sleep and times out. Every outcome
 * comes back as a result; the whole takes 3 s. */
#include <corio.h>
#include <errno.h>
#include <stdio.h>

#include "show_results.h"

static double t0;
static char stamp[32];

static void *job1(void *arg) {
    if (co_sleep(1.0) < 0) return NULL;
    snprintf(stamp, sizeof stamp, "%.2f", co_time() - t0);
    return stamp;
}

static void *job2(void *arg) {
    if (co_sleep(2.0) < 0) return NULL;
    return co_fail(-EIO, "error");
}

static void *long_sleep(void *arg) {
    co_sleep(30.0);
    return NULL;
}

static void *job3(void *arg) {
    co_task *inner = co_spawn(long_sleep, NULL);
    if (!inner) return co_fail(-errno, "spawn failed");
    int rc = co_wait_for(inner, 3.0, NULL);
    co_task_release(inner);
    if (rc < 0) return co_fail(rc, "wait_for: %s", co_strerror(rc));
    return "job3 result";
}

static void *main_task(void *arg) {
    t0 = co_time();
    co_task *tasks[3] = {co_spawn(job1, NULL), co_spawn(job2, NULL), co_spawn(job3, NULL)};
    if (!tasks[0] || !tasks[1] || !tasks[2]) return co_fail(-errno, "spawn failed");
    co_result r[3];
    co_gather(tasks, 3, r, CO_RETURN_ERRORS);
    show_results(r, 3);
    printf("total %.2f s\n", co_time() - t0);
    for (int i = 0; i < 3; i++) co_task_release(tasks[i]);
    return NULL;
}

int main(void) { return co_run(main_task, NULL, NULL); }
