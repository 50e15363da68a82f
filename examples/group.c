/* group — a task group whose first child fails: its siblings are
 * cancelled and run their cleanup, and the join reports the one error.
 * The owner carries on after the join. */
#include <corio.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

static double t0;

static void *failing(void *arg) {
    if (co_sleep(1.0) < 0) return NULL;
    printf("fetch-a fails at %.2f s\n", co_time() - t0);
    return co_fail(-EIO, "disk on fire");
}

static void *slow(void *arg) {
    const char *name = co_task_name(co_current());
    if (co_sleep((double)(intptr_t)arg) < 0) {
        printf("%s cancelled at %.2f s: cleaning up\n", name, co_time() - t0);
        return NULL;
    }
    printf("%s done\n", name);
    return NULL;
}

static void *main_task(void *arg) {
    t0 = co_time();
    co_group *g = co_group_new();
    if (!g) return co_fail(-errno, "group");
    co_task_opts a = {.name = "fetch-a"}, b = {.name = "fetch-b"}, c = {.name = "fetch-c"};
    co_group_spawn_opts(g, failing, NULL, &a, NULL);
    co_group_spawn_opts(g, slow, (void *)(intptr_t)5, &b, NULL);
    co_group_spawn_opts(g, slow, (void *)(intptr_t)10, &c, NULL);
    const co_result *errs;
    size_t nerrs;
    int rc = co_group_join(g, &errs, &nerrs);
    printf("join: %s, %zu error(s)\n", co_err_name(rc), nerrs);
    for (size_t i = 0; i < nerrs; i++) printf("  %s: %s\n", co_err_name(errs[i].err), errs[i].msg);
    co_group_free(g);
    rc = co_sleep(0.5);
    printf("owner goes on: sleep returned %s; total %.2f s\n", co_err_name(rc), co_time() - t0);
    return NULL;
}

int main(void) { return co_run(main_task, NULL, NULL); }
