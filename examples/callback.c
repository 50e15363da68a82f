/* callback — a done-callback with an extra argument (asyncio's
 * add_done_callback + functools.partial): prints "callback 1: job1 result"
 * when job1 finishes. */
#include <corio.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>

static void *job1(void *arg) {
    puts("job1 start");
    if (co_sleep(1.0) < 0) return NULL;
    puts("job1 end");
    return "job1 result";
}

static void callback(co_task *t, void *arg) {
    void *value = NULL;
    if (co_task_state(t) == CO_DONE) value = co_task_result(t).value;
    printf("callback %d: %s\n", (int)(intptr_t)arg, value ? (char *)value : "(no result)");
}

static void *main_task(void *arg) {
    double t0 = co_time();
    co_task *t = co_spawn(job1, NULL);
    if (!t) return co_fail(-errno, "spawn failed");
    int rc = co_on_done(t, callback, (void *)(intptr_t)1);
    if (rc == 0) rc = co_join(t, NULL);
    co_yield(); /* the callback runs at the loop's next turn, like asyncio */
    co_task_release(t);
    if (rc < 0) return co_fail(rc, "job1 failed");
    printf("total %.2f s\n", co_time() - t0);
    return NULL;
}

int main(void) { return co_run(main_task, NULL, NULL); }
