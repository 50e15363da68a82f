/* shield — a task waits on a shielded job and is cancelled: the waiter
 * stops at once, the job runs on to its end, and its result still reaches
 * its done-callback. */
#include <corio.h>
#include <errno.h>
#include <stdio.h>

static double t0;

static void *job1(void *arg) {
    puts("job1 start");
    if (co_sleep(2.0) < 0) return NULL;
    puts("job1 end");
    return "job1 result";
}

static void on_done(co_task *t, void *arg) {
    void *v = NULL;
    int rc = co_task_error(t);
    if (rc == 0) v = co_task_result(t).value;
    printf("done-callback at %.2f s: %s\n", co_time() - t0, rc ? co_err_name(rc) : (char *)v);
}

static void *waiter(void *arg) {
    co_future *s = co_shield(arg);
    if (!s) return co_fail(-errno, "shield");
    int rc = co_join(s, NULL);
    printf("waiter at %.2f s: %s\n", co_time() - t0, co_err_name(rc));
    co_task_release(s);
    return NULL;
}

static void *main_task(void *arg) {
    t0 = co_time();
    co_task *job = co_spawn(job1, NULL);
    if (!job) return co_fail(-errno, "spawn");
    co_on_done(job, on_done, NULL);
    co_task *w = co_spawn(waiter, job);
    co_sleep(1.0);
    puts("main: cancelling the waiter");
    co_cancel(w, NULL);
    co_join(w, NULL);
    printf("job1 still running: %s\n", co_task_done(job) ? "no" : "yes");
    co_join(job, NULL);
    co_yield(); /* let the done-callback run */
    co_task_release(w);
    co_task_release(job);
    return NULL;
}

int main(void) { return co_run(main_task, NULL, NULL); }
