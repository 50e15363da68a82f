/* test_run.c — co_run: exit statuses, results, leftover tasks, SIGINT. */
#include "testutil.h"

#include <criterion/redirect.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

static void *answer(void *arg) {
    cr_assert_str_eq(co_task_name(co_current()), "main");
    return (void *)42;
}

Test(run, returns_zero_and_the_result) {
    void *v = NULL;
    cr_assert_eq(co_run(answer, NULL, &v), 0);
    cr_assert_eq(v, (void *)42);
    cr_assert_null(co_loop_current(), "co_run leaves no loop behind");
    cr_assert_eq(co_run(answer, NULL, NULL), 0);
}

static void *failing_main(void *arg) { return co_fail(-ENOENT, "config file %s missing", "/etc/x.conf"); }

Test(run, failure_is_status_one_and_printed) {
    cr_redirect_stderr();
    cr_assert_eq(co_run(failing_main, NULL, NULL), 1);
    const char *err = tu_stderr();
    cr_assert(strstr(err, "corio: main task failed: config file /etc/x.conf missing (ENOENT)\n"), "%s", err);
}

Test(run, null_main) { cr_assert_eq(co_run(NULL, NULL, NULL), 1); }

static int leftover_cleaned;
static void *forever(void *arg) {
    if (co_sleep(1e6) == -ECANCELED) leftover_cleaned++;
    return NULL;
}

static void *leaves_tasks(void *arg) {
    for (int i = 0; i < 5; i++) co_task_release(co_spawn(forever, NULL));
    co_yield();
    return NULL;
}

Test(run, leftover_tasks_are_cancelled_and_drained) {
    setenv("CORIO_VIRTUAL_CLOCK", "1", 1);
    cr_assert_eq(co_run(leaves_tasks, NULL, NULL), 0);
    cr_assert_eq(leftover_cleaned, 5);
}

static int main_cleaned;
static void *interrupted(void *arg) {
    raise(SIGINT); /* as if the user pressed Ctrl-C */
    int rc = co_sleep(30);
    cr_assert_eq(rc, -ECANCELED);
    cr_assert_str_eq(co_task_message(co_current()), "interrupted by SIGINT");
    main_cleaned = 1; /* graceful shutdown: cleanup runs */
    return NULL;
}

Test(run, first_sigint_cancels_main) {
    struct sigaction before, after;
    sigaction(SIGINT, NULL, &before);
    cr_assert_eq(co_run(interrupted, NULL, NULL), 130);
    cr_assert_eq(main_cleaned, 1);
    sigaction(SIGINT, NULL, &after);
    cr_assert_eq(before.sa_handler, after.sa_handler, "the old SIGINT handler is back");
}

static void *ignores_first(void *arg) {
    raise(SIGINT);
    co_yield();
    raise(SIGINT); /* second Ctrl-C while still running */
    _exit(3);      /* not reached: the second SIGINT ends the process */
}

Test(run, second_sigint_exits_at_once) {
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        co_run(ignores_first, NULL, NULL);
        _exit(4);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st), "status %d", st);
    cr_assert_eq(WTERMSIG(st), SIGINT);
}

static void *cancelled_main(void *arg) {
    co_cancel(co_current(), "gave up");
    co_yield();
    return NULL;
}

Test(run, cancelled_main_is_status_one) {
    cr_redirect_stderr();
    cr_assert_eq(co_run(cancelled_main, NULL, NULL), 1);
    const char *err = tu_stderr();
    cr_assert(strstr(err, "corio: main task cancelled: gave up\n"), "%s", err);
}

static void *inner_main(void *arg) { return (void *)7; }
static void *nested_main(void *arg) {
    /* a co_run inside a task would block this loop: refused as a nested run */
    cr_redirect_stderr();
    int st = co_run(inner_main, NULL, NULL);
    return (void *)(intptr_t)st;
}

Test(run, nested_co_run_refused) {
    void *v;
    cr_assert_eq(co_run(nested_main, NULL, &v), 0);
    cr_assert_eq((intptr_t)v, 1);
}

static void *raises_sigint_twice(void *arg) {
    raise(SIGINT);
    co_yield();
    raise(SIGINT);
    co_yield();
    return (void *)7;
}

/* A shell starts background jobs with SIGINT ignored: co_run leaves it so,
 * as Python does (Ctrl-C at the terminal is not meant for them). */
Test(run, inherited_sig_ign_is_respected) {
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        signal(SIGINT, SIG_IGN);
        void *v = NULL;
        int status = co_run(raises_sigint_twice, NULL, &v);
        struct sigaction after;
        sigaction(SIGINT, NULL, &after);
        _exit(status != 0 ? 10 + (status & 0xff) % 100 : v != (void *)7 ? 5
              : after.sa_handler != SIG_IGN                       ? 6
                                                                   : 0);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "killed by signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    cr_assert_eq(WEXITSTATUS(st), 0, "child status %d (10+: co_run's status mod 100; 6: SIG_IGN not restored)",
                 WEXITSTATUS(st));
}
