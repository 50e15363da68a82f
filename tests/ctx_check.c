/* ctx_check.c — a Criterion-free check of the context switch, for running a
 * cross-built corio under qemu-user (make test-aarch64), where the test
 * framework is not installed for the target. Exits non-zero on the first
 * broken expectation. */
#include <corio.h>
#include <errno.h>
#include <fenv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                          \
    do {                                                                  \
        if (!(c)) {                                                       \
            fprintf(stderr, "ctx_check: %s:%d: %s\n", __FILE__, __LINE__, #c); \
            exit(1);                                                      \
        }                                                                 \
    } while (0)

/* Values live across switches in callee-saved registers (integer and FP). */
static void *keep(void *arg) {
    uint64_t s = (uint64_t)(uintptr_t)arg;
    uint64_t a = s * 3, b = s * 5, c = s * 7, d = s * 11, e = s * 13, f = s * 17, g = s * 19;
    double x = (double)s * 0.5, y = (double)s * 0.25, z = (double)s;
    for (int i = 0; i < 1000; i++) {
        CHECK(co_yield() == 0);
        a += 1, b += 2, c += 3, d += 4, e += 5, f += 6, g += 7, x += 1.0, y += 2.0, z *= 1.0;
    }
    CHECK(a == s * 3 + 1000 && b == s * 5 + 2000 && c == s * 7 + 3000 && d == s * 11 + 4000);
    CHECK(e == s * 13 + 5000 && f == s * 17 + 6000 && g == s * 19 + 7000);
    CHECK(x == (double)s * 0.5 + 1000.0 && y == (double)s * 0.25 + 2000.0 && z == (double)s);
    return arg;
}

static volatile int sink;
__attribute__((noinline)) static int deep(int n) {
    volatile char pad[200];
    pad[0] = (char)n;
    sink = pad[0];
    if (n == 0) return 0;
    int r = deep(n - 1) + 1;
    if (n % 50 == 0) CHECK(co_yield() == 0);
    return r;
}

static void *recurse(void *arg) { return (void *)(intptr_t)deep(300); }

static void *main_task(void *arg) {
    co_task *t[16];
    for (int i = 0; i < 16; i++)
        t[i] = co_spawn(i % 2 ? keep : recurse, (void *)(uintptr_t)((i + 1) * 1000));
    for (int i = 0; i < 16; i++) {
        void *v;
        CHECK(co_join(t[i], &v) == 0);
        CHECK(i % 2 ? v == (void *)(uintptr_t)((i + 1) * 1000) : (intptr_t)v == 300);
        co_task_release(t[i]);
    }
    printf("%.3f\n", 1.0 / 3.0); /* varargs double: needs an aligned stack */
    return "ok";
}

int main(void) {
    void *r = NULL;
    int st = co_run(main_task, NULL, &r);
    CHECK(st == 0 && r != NULL);
    puts("ctx_check: ok");
    return 0;
}
