/* test_misuse.c — misuse a newcomer plausibly makes must be loud: a second
 * co_task_release (before and after the struct is reused), a handle never
 * released, NULL arguments. In the ASan build AddressSanitizer itself
 * reports the use after free; in the others corio does (always for the
 * cheap case, in debug mode for the reused one). The double releases run
 * in a forked child, so whichever reports it may end the child. */
#include "testutil.h"

#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#else
#define ASAN_BUILD 0
#endif

/* Runs fn in a child with stderr captured; returns what it wrote. */
static const char *in_child(void (*fn)(void)) {
    static char out[16384];
    int p[2];
    cr_assert_eq(pipe(p), 0);
    fflush(stderr);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 2);
        fn();
        fflush(stderr);
        _exit(0);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t k;
    while (n < sizeof out - 1 && (k = read(p[0], out + n, sizeof out - 1 - n)) > 0) n += (size_t)k;
    out[n] = 0;
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    return out;
}

static void *quick(void *arg) { return arg; }

static co_loop *plain_loop(bool debug) {
    co_loop_opts o = {.virtual_clock = true, .debug = debug}; /* reports on stderr */
    co_loop *L = co_loop_new(&o);
    cr_assert_not_null(L);
    return L;
}

/* Released twice, nothing in between: the struct sits freed, not reused. */
static void release_twice(void) {
    co_loop *L = plain_loop(false);
    co_task *t = co_spawn(quick, NULL);
    co_loop_run_until_complete(L, t, NULL);
    co_task_release(t);
    co_task_release(t);
    co_loop_free(L);
}

Test(misuse, double_release_is_reported) {
    const char *out = in_child(release_twice);
    cr_assert(strstr(out, "co_task_release: task Task-") || (ASAN_BUILD && strstr(out, "heap-use-after-free")),
              "not reported:\n%s", out);
    if (!ASAN_BUILD) cr_assert(strstr(out, "already freed"), "%s", out);
}

/* Released twice with a new task spawned in between, which in release
 * builds may get the same memory: debug mode keeps freed structs aside. */
static void *named(void *arg) {
    co_sleep(1);
    return arg;
}

static void release_after_reuse(void) {
    co_loop *L = plain_loop(true);
    co_task_opts o = {.name = "first"};
    co_task *t1 = co_spawn_opts(quick, NULL, &o);
    co_loop_run_until_complete(L, t1, NULL);
    co_task_release(t1);
    o.name = "second";
    co_task *t2 = co_spawn_opts(named, (void *)7, &o);
    co_task_release(t1); /* the bug */
    void *v = NULL;
    int rc = co_loop_run_until_complete(L, t2, &v);
    fprintf(stderr, "second: %s rc=%d v=%ld\n", co_task_name(t2), rc, (long)(intptr_t)v);
    co_task_release(t2);
    co_loop_free(L);
}

Test(misuse, double_release_after_reuse_is_reported_in_debug_mode) {
    const char *out = in_child(release_after_reuse);
    cr_assert(strstr(out, "co_task_release: task first was already freed") ||
                  (ASAN_BUILD && strstr(out, "heap-use-after-free")),
              "not reported:\n%s", out);
    if (!ASAN_BUILD) cr_assert(strstr(out, "second: second rc=0 v=7\n"), "the new task was hurt:\n%s", out);
}

/* A handle never released: reported by name when the loop is freed. */
Test(misuse, unreleased_handle_reported_at_loop_free) {
    tu_reports[0] = 0;
    co_loop *L = tu_loop_opts(true, true, 0);
    co_task_opts o = {.name = "forgotten"};
    co_task *t = co_spawn_opts(quick, NULL, &o);
    cr_assert_eq(co_loop_run_until_complete(L, t, NULL), 0);
    co_task *u = co_spawn(quick, NULL);
    co_task_release(u); /* released: not reported */
    tu_close(L);
    cr_assert(strstr(tu_reports, "task forgotten was never released"), "%s", tu_reports);
    cr_assert(!strstr(tu_reports, "Task-"), "only the leaked one: %s", tu_reports);
    co_task_release(t); /* (an orphan now: freed here) */
}

/* ---- NULL arguments ----------------------------------------------------------- */

Test(misuse, null_task_arguments) {
    co_loop *L = tu_loop();
    cr_assert_eq((int)co_task_state(NULL), -EINVAL, "never a state");
    cr_assert_str_eq(co_state_name(co_task_state(NULL)), "INVALID");
    cr_assert_eq(co_task_error(NULL), -EINVAL);
    cr_assert_eq(co_task_result(NULL).err, -EINVAL);
    cr_assert_eq((int)co_task_result(NULL).state, -EINVAL);
    cr_assert_eq(co_cancel(NULL, NULL), -EINVAL);
    cr_assert_eq(co_task_set_name(NULL, "x"), -EINVAL);
    cr_assert_eq(co_on_done(NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(co_on_done_remove(NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(co_future_set_result(NULL, NULL), -EINVAL);
    cr_assert_eq(co_future_set_error(NULL, -EIO, NULL), -EINVAL);
    cr_assert_not(co_task_done(NULL));
    cr_assert_null(co_task_message(NULL));
    cr_assert_null(co_task_loop(NULL));
    cr_assert_not_null(co_task_name(NULL));
    co_task_retain(NULL);
    co_task_release(NULL);
    tu_close(L);
}

Test(misuse, null_loop_arguments) {
    co_loop *L = tu_loop();
    co_task *t = co_spawn(quick, NULL);
    cr_assert_eq(co_loop_run_forever(NULL), -EINVAL);
    cr_assert_eq(co_loop_run_until_complete(NULL, t, NULL), -EINVAL);
    cr_assert_eq(co_loop_run_until_complete(L, NULL, NULL), -EINVAL);
    cr_assert_eq(co_loop_close(NULL), -EINVAL);
    cr_assert_eq(co_loop_free(NULL), 0);
    co_loop_stop(NULL);
    cr_assert_eq(co_all_tasks(NULL, NULL, 0), 0);
    cr_assert_eq(co_loop_run_until_complete(L, t, NULL), 0);
    co_task_release(t);
    tu_close(L);
}
