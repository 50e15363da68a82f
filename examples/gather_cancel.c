/* gather_cancel — job1 is cancelled before the gather. Without
 * CO_RETURN_ERRORS the gather fails with -ECANCELED (asyncio raises
 * CancelledError); with it, the cancellation is one of the results
 * (return_exceptions=True). */
#include <corio.h>
#include <errno.h>
#include <stdio.h>

#include "show_results.h"

static void *job1(void *arg) {
    if (co_sleep(1.0) < 0) return NULL; /* cancelled before it got here */
    return "job1 result";
}

static void *job2(void *arg) {
    if (co_sleep(0.5) < 0) return NULL;
    return "job2 result";
}

static void *main_task(void *arg) {
    co_task *tasks[2] = {co_spawn(job1, NULL), co_spawn(job2, NULL)};
    if (!tasks[0] || !tasks[1]) return co_fail(-errno, "spawn failed");
    co_cancel(tasks[0], NULL);

    co_result r[2];
    int rc = co_gather(tasks, 2, r, 0);
    printf("gather: %s (%s)\n", co_err_name(rc), co_strerror(rc));

    rc = co_gather(tasks, 2, r, CO_RETURN_ERRORS);
    printf("gather with CO_RETURN_ERRORS: %s\n", co_err_name(rc));
    show_results(r, 2);
    co_task_release(tasks[0]);
    co_task_release(tasks[1]);
    return NULL;
}

int main(void) { return co_run(main_task, NULL, NULL); }
