/* cancel — a task cancelled while sleeping sees -ECANCELED, runs its
 * cleanup, and ends CANCELLED with the message the canceller gave. */
#include <corio.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static double t0;

static void *worker(void *arg) {
    char *buffer = malloc(4096); /* a resource the task must release */
    puts("worker start: sleeping 10 s");
    int rc = co_sleep(10.0);
    if (rc == -ECANCELED) {
        printf("worker cancelled at %.2f s: cleaning up\n", co_time() - t0);
        free(buffer);
        return NULL;
    }
    puts("worker end");
    free(buffer);
    return "worker result";
}

static void *main_task(void *arg) {
    t0 = co_time();
    co_task *t = co_spawn(worker, NULL);
    if (!t) return co_fail(-errno, "spawn failed");
    co_sleep(1.0);
    puts("main: cancelling the worker");
    co_cancel(t, "stop requested by main");
    int rc = co_join(t, NULL);
    printf("join: %s; state %s; message \"%s\"\n", co_err_name(rc),
           co_state_name(co_task_state(t)), co_task_message(t));
    co_task_release(t);
    printf("total %.2f s\n", co_time() - t0);
    return NULL;
}

int main(void) { return co_run(main_task, NULL, NULL); }
