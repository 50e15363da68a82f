/* test_examples.c — every example program prints what its scenario must
 * print (tests/expected/NAME.txt), run on the virtual clock so the sleeps
 * in them take no real time. The binaries are found through
 * CORIO_EXAMPLES_DIR (set by make) or next to this test's build folder. */
#include "testutil.h"

#include <limits.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void examples_dir(char *out, size_t cap) {
    const char *d = getenv("CORIO_EXAMPLES_DIR");
    if (d && *d) {
        snprintf(out, cap, "%s", d);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert_gt(n, 0);
    self[n] = 0;
    *strrchr(self, '/') = 0; /* .../build/tests */
    snprintf(out, cap, "%.*s/../examples", (int)(cap - 16), self);
}

/* env: the environment the example runs with. The thread examples block
 * real threads for real time, so they run on the real clock with their
 * time unit shortened (examples/example_unit.h) and print whole units. */
static void check_example_env(const char *name, const char *env) {
    char dir[PATH_MAX], cmd[PATH_MAX * 2], expected[4096], got[4096];
    examples_dir(dir, sizeof dir);
    snprintf(cmd, sizeof cmd, "%s '%s/%s'", env, dir, name);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(got, 1, sizeof got - 1, p);
    got[n] = 0;
    int st = pclose(p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s exited with status %d", name, st);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/expected/%s.txt", CORIO_TESTS_DIR, name);
    tu_read_file(path, expected, sizeof expected);
    cr_assert_str_eq(got, expected, "%s printed:\n%s", name, got);
}

static void check_example(const char *name) { check_example_env(name, "CORIO_VIRTUAL_CLOCK=1"); }

Test(examples, seq_await) { check_example("seq_await"); }
Test(examples, create_task) { check_example("create_task"); }
Test(examples, callback) { check_example("callback"); }
Test(examples, cancel) { check_example("cancel"); }
Test(examples, gather) { check_example("gather"); }
Test(examples, gather_cancel) { check_example("gather_cancel"); }
Test(examples, gather_errors) { check_example("gather_errors"); }
Test(examples, wait) { check_example("wait"); }
Test(examples, as_completed) { check_example("as_completed"); }
Test(examples, shield) { check_example("shield"); }
Test(examples, group) { check_example("group"); }
Test(examples, producer_consumer) { check_example("producer_consumer"); }
Test(examples, rate_limit) { check_example("rate_limit"); }
Test(examples, to_thread, .timeout = 60) { check_example_env("to_thread", "CORIO_EXAMPLE_UNIT=0.3"); }
Test(examples, loop_thread, .timeout = 60) { check_example_env("loop_thread", "CORIO_EXAMPLE_UNIT=0.1"); }
Test(examples, master_worker, .timeout = 60) { check_example("master_worker"); }
Test(examples, process_pool) { check_example("process_pool"); }
/* download: on the real clock with short units (its server and files do real
 * I/O), and on the virtual clock; whole units print the same either way. */
Test(examples, download, .timeout = 60) {
    check_example_env("download", "CORIO_EXAMPLE_UNIT=0.1");
    check_example("download");
}
Test(examples, subprocess) { check_example("subprocess"); }
/* echo_client starts echo_server as a subprocess: 100 connections at once,
 * every echo checked, the server stopped by SIGTERM and exiting 0. */
Test(examples, echo_client_and_server, .timeout = 60) {
    check_example_env("echo_client", "CORIO_EXAMPLE_UNIT=1");
    check_example("echo_client");
}
