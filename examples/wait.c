/* wait — asyncio.wait with its three return_when modes. It never cancels
 * and never fails because a task failed: it reports which tasks are done
 * (with state, result or error, and when each finished) and which are
 * pending. */
#include <corio.h>
#include <errno.h>
#include <stdio.h>

static double t0;

static void *job1(void *arg) {
    if (co_sleep(1.0) < 0) return NULL;
    return "job1 result";
}

static void *job2(void *arg) {
    if (co_sleep(0.5) < 0) return NULL;
    return "job2 result";
}

static void *failing(void *arg) {
    if (co_sleep(0.5) < 0) return NULL;
    return co_fail(-EIO, "send failed");
}

static void spawn2(co_fn a, const char *na, co_fn b, const char *nb, co_task **t) {
    co_task_opts oa = {.name = na}, ob = {.name = nb};
    t[0] = co_spawn_opts(a, NULL, &oa);
    t[1] = co_spawn_opts(b, NULL, &ob);
}

static void report(const char *mode, co_task **done, size_t ndone, co_task **pending, size_t npending) {
    printf("%s: returned at %.2f s\n", mode, co_time() - t0);
    for (size_t i = 0; i < ndone; i++) {
        co_result r = co_task_result(done[i]);
        printf("  done    %s %-9s at %.2f s: ", co_task_name(done[i]), co_state_name(r.state), r.time - t0);
        if (r.state == CO_DONE) printf("\"%s\"\n", (char *)r.value);
        else printf("%s (%s)\n", co_err_name(r.err), r.msg ? r.msg : "");
    }
    for (size_t i = 0; i < npending; i++) printf("  pending %s\n", co_task_name(pending[i]));
}

static void run(const char *mode, int when, co_fn a, co_fn b) {
    co_task *t[2], *done[2], *pending[2];
    size_t nd, np;
    t0 = co_time();
    spawn2(a, "job1", b, b == failing ? "sender" : "job2", t);
    co_wait(t, 2, when, CO_FOREVER, done, &nd, pending, &np);
    report(mode, done, nd, pending, np);
    for (size_t i = 0; i < np; i++) co_cancel(pending[i], NULL); /* tidy up: wait cancels nothing */
    co_wait(t, 2, CO_ALL_COMPLETED, CO_FOREVER, NULL, NULL, NULL, NULL);
    co_task_release(t[0]);
    co_task_release(t[1]);
}

static void *main_task(void *arg) {
    run("ALL_COMPLETED", CO_ALL_COMPLETED, job1, job2);
    run("FIRST_COMPLETED", CO_FIRST_COMPLETED, job1, job2);
    run("FIRST_ERROR", CO_FIRST_ERROR, job1, failing);
    return NULL;
}

int main(void) { return co_run(main_task, NULL, NULL); }
