/* mt.h — a tiny test harness for the multithreaded tests (tests/mt_*.c).
 *
 * Why not Criterion: its runner crashes under ThreadSanitizer, and threaded
 * code must run under TSan. These programs run in every pass (normal,
 * ASan+UBSan, TSan): `make test-tsan` runs them under TSan.
 *
 *   MT_TEST(name) { ... MT_CHECK(cond, "fmt", ...); MT_EQ(a, b); ... }
 *
 * Tests run one after another in the order they are defined, each in a
 * fresh child process (a failing or crashing test cannot hide another, and
 * leaks are checked per test by the sanitizer at the child's exit). Each
 * test has MT_TIMEOUT seconds (default 60) before it is killed and counted
 * as a hang. argv[1], if given, runs only the tests whose name contains it.
 * Exit status: 0 only if every test passed.
 */
#ifndef CORIO_MT_H
#define CORIO_MT_H

#include <corio.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MT_TIMEOUT
#define MT_TIMEOUT 60
#endif

typedef struct mt_test {
    const char *name;
    void (*fn)(void);
} mt_test;

static mt_test mt_tests[256];
static int mt_ntests;

#define MT_TEST(name)                                                     \
    static void mt_##name(void);                                          \
    __attribute__((constructor)) static void mt_reg_##name(void) {        \
        mt_tests[mt_ntests++] = (mt_test){#name, mt_##name};              \
    }                                                                     \
    static void mt_##name(void)

/* Not declared printf-like: MT_CHECK(cond) passes it an empty format. */
static void mt_msg(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

#define MT_CHECK(cond, ...)                                                   \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "  %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            mt_msg("" __VA_ARGS__);                                           \
            fprintf(stderr, "\n");                                            \
            fflush(stderr);                                                   \
            _exit(1);                                                         \
        }                                                                     \
    } while (0)

#define MT_EQ(a, b)                                                           \
    do {                                                                      \
        long long mt_a_ = (long long)(a), mt_b_ = (long long)(b);             \
        MT_CHECK(mt_a_ == mt_b_, "%s = %lld, %s = %lld", #a, mt_a_, #b, mt_b_); \
    } while (0)

/* An int return code that must be 0. */
#define MT_OK(expr)                                                           \
    do {                                                                      \
        int mt_rc_ = (expr);                                                  \
        MT_CHECK(mt_rc_ == 0, "%s returned %s (%s)", #expr, co_err_name(mt_rc_), \
                 co_strerror(mt_rc_));                                        \
    } while (0)

static inline double mt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void mt_sleep(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

int main(int argc, char **argv) {
    int failed = 0, ran = 0;
    const char *only = argc > 1 ? argv[1] : NULL;
    for (int i = 0; i < mt_ntests; i++) {
        mt_test *t = &mt_tests[i];
        if (only && !strstr(t->name, only)) continue;
        ran++;
        fflush(stdout);
        double t0 = mt_now();
        pid_t pid = fork();
        if (pid == 0) {
            alarm(MT_TIMEOUT);
            t->fn();
            fflush(stdout);
            exit(0); /* exit, not _exit: sanitizers check leaks at exit */
        }
        int st = 0;
        if (pid < 0 || waitpid(pid, &st, 0) < 0) st = 0xff00;
        double dt = mt_now() - t0;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            printf("  ok   %-40s %.2f s\n", t->name, dt);
        } else {
            failed++;
            if (WIFSIGNALED(st))
                printf("  FAIL %-40s killed by signal %d%s\n", t->name, WTERMSIG(st),
                       WTERMSIG(st) == SIGALRM ? " (timeout: a hang)" : "");
            else
                printf("  FAIL %-40s exit status %d\n", t->name, WEXITSTATUS(st));
        }
    }
    printf("%s: %d tests, %d passed, %d failed\n", argv[0], ran, ran - failed, failed);
    return failed ? 1 : 0;
}

#endif
