/* test_readme.c — the example in README.md, as a newcomer runs it. make
 * extracts it (between the readme-example markers) and builds it into
 * the examples folder as readme_example, so the README and this test
 * cannot drift apart. It must print the two jobs and "done after 1.00 s"
 * on the virtual clock, and on the real clock a duration of at least 1 s
 * and at most the time the program ran (not the machine's uptime). */
#include "testutil.h"

#include <limits.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void readme_binary(char *out, size_t cap) {
    const char *d = getenv("CORIO_EXAMPLES_DIR");
    if (d && *d) {
        snprintf(out, cap, "%s/readme_example", d);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    cr_assert_gt(n, 0);
    self[n] = 0;
    *strrchr(self, '/') = 0; /* .../build/tests */
    snprintf(out, cap, "%.*s/../examples/readme_example", (int)(cap - 32), self);
}

/* Runs the example with CORIO_VIRTUAL_CLOCK as given (NULL: unset);
 * returns its output and how long it ran (seconds). */
static double run_readme(const char *virtual_clock, char *got, size_t cap) {
    char bin[PATH_MAX];
    readme_binary(bin, sizeof bin);
    cr_assert_eq(access(bin, X_OK), 0, "%s: %s", bin, strerror(errno));
    int p[2];
    cr_assert_eq(pipe(p), 0);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        if (virtual_clock) setenv("CORIO_VIRTUAL_CLOCK", virtual_clock, 1);
        else unsetenv("CORIO_VIRTUAL_CLOCK");
        execl(bin, bin, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t k;
    while (n < cap - 1 && (k = read(p[0], got + n, cap - 1 - n)) > 0) n += (size_t)k;
    got[n] = 0;
    close(p[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    clock_gettime(CLOCK_MONOTONIC, &b);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the README example exited with %d:\n%s", st, got);
    return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
}

Test(readme, example_on_the_virtual_clock) {
    char got[1024];
    run_readme("1", got, sizeof got);
    cr_assert_str_eq(got, "job1 start\njob2 start\njob1 end\njob2 end\njob1 and job2 done after 1.00 s\n",
                     "the README example printed:\n%s", got);
}

Test(readme, example_on_the_real_clock, .timeout = 60) {
    char got[1024];
    double ran = run_readme(NULL, got, sizeof got);
    const char *s = strstr(got, "job1 and job2 done after ");
    cr_assert_not_null(s, "%s", got);
    double said = atof(s + strlen("job1 and job2 done after "));
    cr_assert_geq(said, 0.995, "printed %.3f s for two 1 s sleeps", said);
    cr_assert_leq(said, ran + 0.01, "printed %.2f s, but it ran for %.2f s (the uptime?)", said, ran);
}
