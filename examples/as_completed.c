/* as_completed — three tasks sleeping 4, 1 and 2 s: their results arrive in
 * the order they finish, and the whole takes 4 s, not 7. */
#include <corio.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

static void *sleeper(void *arg) {
    int s = (int)(intptr_t)arg;
    if (co_sleep(s) < 0) return NULL;
    return arg;
}

static void *main_task(void *arg) {
    double t0 = co_time();
    co_task *tasks[3];
    int secs[3] = {4, 1, 2};
    for (int i = 0; i < 3; i++)
        if (!(tasks[i] = co_spawn(sleeper, (void *)(intptr_t)secs[i]))) return co_fail(-errno, "spawn");
    co_as_completed it;
    int rc = co_as_completed_init(&it, tasks, 3, CO_FOREVER);
    if (rc) return co_fail(rc, "as_completed");
    co_task *t;
    while ((rc = co_as_completed_next(&it, &t)) == 0) {
        void *v;
        co_join(t, &v);
        printf("slept %d s (at %.2f s)\n", (int)(intptr_t)v, co_time() - t0);
    }
    co_as_completed_fini(&it);
    printf("total %.2f s\n", co_time() - t0);
    for (int i = 0; i < 3; i++) co_task_release(tasks[i]);
    return NULL;
}

int main(void) { return co_run(main_task, NULL, NULL); }
