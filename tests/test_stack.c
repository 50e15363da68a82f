/* test_stack.c — the context switch keeps what the ABI says it must; stacks
 * are pooled; overflow into a guard page and smashed canaries are reported
 * by task name; past the mapping budget stacks come from slabs. */
#include "testutil.h"
#include "core/internal.h"

#include <criterion/redirect.h>
#include <fenv.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

/* Many values live across a switch: the compiler keeps them in callee-saved
 * registers, which the switch must preserve. */
static void *keep_registers(void *arg) {
    uint64_t s = (uint64_t)(uintptr_t)arg;
    uint64_t a = s * 3, b = s * 5, c = s * 7, d = s * 11, e = s * 13, f = s * 17, g = s * 19;
    double x = (double)s * 0.5, y = (double)s * 0.25;
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(co_yield(), 0);
        a += 1, b += 2, c += 3, d += 4, e += 5, f += 6, g += 7, x += 1.0, y += 2.0;
    }
    cr_assert_eq(a, s * 3 + 100);
    cr_assert_eq(b, s * 5 + 200);
    cr_assert_eq(c, s * 7 + 300);
    cr_assert_eq(d, s * 11 + 400);
    cr_assert_eq(e, s * 13 + 500);
    cr_assert_eq(f, s * 17 + 600);
    cr_assert_eq(g, s * 19 + 700);
    cr_assert_eq(x, (double)s * 0.5 + 100.0);
    cr_assert_eq(y, (double)s * 0.25 + 200.0);
    return NULL;
}

Test(stack, callee_saved_registers_survive_switches) {
    co_loop *L = tu_loop();
    co_task *t[8];
    for (int i = 0; i < 8; i++) t[i] = co_spawn(keep_registers, (void *)(uintptr_t)((i + 1) * 1000));
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(co_loop_run_until_complete(L, t[i], NULL), 0);
        co_task_release(t[i]);
    }
    tu_close(L);
}

/* The floating-point control state (MXCSR / x87 control word; FPCR on
 * AArch64 through the ucontext fallback) belongs to each task. */
static void *rounding(void *arg) {
    int mode = (int)(intptr_t)arg;
    cr_assert_eq(fesetround(mode), 0);
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(co_yield(), 0);
        cr_assert_eq(fegetround(), mode, "task's rounding mode changed under it");
    }
    fesetround(FE_TONEAREST);
    return NULL;
}

Test(stack, floating_point_control_is_per_task) {
#if defined(CORIO_CTX_UCONTEXT) || !defined(__x86_64__)
    cr_skip_test("the MXCSR/x87 control word is saved by the x86-64 assembly switch");
#endif
    co_loop *L = tu_loop();
    co_task *up = co_spawn(rounding, (void *)(intptr_t)FE_UPWARD);
    co_task *down = co_spawn(rounding, (void *)(intptr_t)FE_DOWNWARD);
    cr_assert_eq(co_loop_run_until_complete(L, up, NULL), 0);
    cr_assert_eq(co_loop_run_until_complete(L, down, NULL), 0);
    cr_assert_eq(fegetround(), FE_TONEAREST);
    co_task_release(up);
    co_task_release(down);
    tu_close(L);
}

static void *where_is_my_stack(void *arg) { return co_current()->stack; }

Test(stack, finished_task_stack_is_reused) {
    co_loop *L = tu_loop();
    void *s1, *s2;
    cr_assert_eq(tu_run(L, where_is_my_stack, NULL, &s1), 0);
    cr_assert_eq(tu_run(L, where_is_my_stack, NULL, &s2), 0);
    cr_assert_eq(s1, s2, "the pool hands back the warm stack");
    co_task_opts o = {.stack_size = 100 * 1000};
    co_task *t = co_spawn_opts(where_is_my_stack, NULL, &o);
    void *s3;
    cr_assert_eq(co_loop_run_until_complete(L, t, &s3), 0);
    cr_assert_neq(s3, s1);
    cr_assert_eq(((co__stack *)s3)->size, co__stack_round(100 * 1000));
    cr_assert_geq(((co__stack *)s3)->usable, 90 * 1000);
    co_task_release(t);
    tu_close(L);
}

/* Runs fn in a child process; returns its stderr and wait status. */
static void run_child(void (*fn)(void), char *out, size_t cap, int *status) {
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        signal(SIGABRT, SIG_DFL);
        fn();
        _exit(0);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(p[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
    out[n] = 0;
    close(p[0]);
    cr_assert_eq(waitpid(pid, status, 0), pid);
}

static volatile int sink;
__attribute__((noinline)) static int recurse(int n) {
    volatile char pad[512];
    pad[0] = (char)n;
    sink = pad[0];
    return n > (1 << 30) ? 0 : recurse(n + 1) + pad[0]; /* "bounded": no infinite-recursion warning */
}
static void *overflow_task(void *arg) { return (void *)(intptr_t)recurse(0); }

/* Runs overflow_task on a 64 KiB stack of loop L, under the given name. */
static void overflow_in(co_loop *L, const char *name) {
    co_loop_set_current(L);
    co_task_opts o = {.name = name, .stack_size = 64 * 1024};
    co_task *t = co_spawn_opts(overflow_task, NULL, &o);
    co_loop_run_until_complete(L, t, NULL);
}

/* The child must die of SIGABRT after printing the report for `name`. */
static void expect_overflow_report(void (*child)(void), const char *name) {
    char out[8192], want[256];
    int st;
    run_child(child, out, sizeof out, &st);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "status %d, stderr:\n%s", st, out);
    snprintf(want, sizeof want, "corio: stack overflow in task \"%s\" (stack 64 KiB)", name);
    cr_assert(strstr(out, want), "%s", out);
}

static void child_overflow(void) { overflow_in(co_loop_new(NULL), "recurser"); }

Test(stack, guard_page_overflow_is_reported) {
#if CO__ASAN
    cr_skip_test("AddressSanitizer reports stack overflows itself");
#endif
    expect_overflow_report(child_overflow, "recurser");
}

static void *smash(void *arg) {
    *co_current()->stack->canary = 0; /* what an overflow past the stack's bottom does */
    co_yield();
    return NULL;
}

static void child_canary(void) {
    co__stack_set_guarded_limit(0); /* every stack from a slab */
    co_loop *L = co_loop_new(NULL);
    co_task_opts o = {.name = "smasher"};
    co_task *t = co_spawn_opts(smash, NULL, &o);
    co_loop_run_until_complete(L, t, NULL);
}

Test(stack, smashed_canary_is_reported) {
    char out[8192];
    int st;
    run_child(child_canary, out, sizeof out, &st);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "status %d, stderr:\n%s", st, out);
    cr_assert(strstr(out, "corio: stack overflow in task \"smasher\" (stack 256 KiB): canary smashed"),
              "%s", out);
    cr_assert(strstr(out, "vm.max_map_count"), "the slab fallback was announced: %s", out);
}

static int alive;
static void *sleep_1s(void *arg) {
    alive++;
    int rc = co_sleep(1.0);
    alive--;
    return rc ? co_fail(rc, "sleep") : NULL;
}

static void *spawn_n_sleepers(void *arg) {
    int n = (int)(intptr_t)arg;
    co_task **t = malloc(sizeof *t * (size_t)n);
    for (int i = 0; i < n; i++) {
        t[i] = co_spawn(sleep_1s, NULL);
        if (!t[i]) return co_fail(-errno, "spawn %d", i);
    }
    co_yield();
    cr_assert_eq(alive, n, "all %d asleep at once", n);
    for (int i = 0; i < n; i++) {
        int rc = co_join(t[i], NULL);
        if (rc) return co_fail(rc, "join %d", i);
        co_task_release(t[i]);
    }
    free(t);
    return NULL;
}

Test(stack, slab_fallback_past_the_guard_budget) {
    co__stack_set_guarded_limit(10);
    cr_redirect_stderr();
    co_loop *L = tu_loop();
    cr_assert_eq(tu_run(L, spawn_n_sleepers, (void *)(intptr_t)300, NULL), 0);
    cr_assert_leq(co__stack_guarded_count(), 10);
    tu_close(L);
    cr_assert_eq(co__stack_guarded_count(), 0, "every guarded stack unmapped with the loop");
    const char *buf = tu_stderr();
    cr_assert(strstr(buf, "sysctl -w vm.max_map_count="), "%s", buf);
    const char *first = strstr(buf, "corio:");
    cr_assert_not_null(first, "%s", buf);
    cr_assert_null(strstr(first + 1, "corio:"), "said once: %s", buf);
}

/* Beyond the kernel's real default limit (vm.max_map_count 65530 allows
 * ~28k guarded stacks with our reserve): 40,000 tasks alive at once. */
Test(stack, forty_thousand_concurrent_tasks_on_a_default_machine, .timeout = 300) {
    cr_redirect_stderr();
    co_loop *L = tu_loop();
    cr_assert_eq(tu_run(L, spawn_n_sleepers, (void *)(intptr_t)40000, NULL), 0);
    cr_assert_lt(co__stack_guarded_count(), co__stack_guarded_limit());
    tu_close(L);
}

static void child_two_loops(void) {
    co_loop *first = co_loop_new(NULL);
    co_loop *second = co_loop_new(NULL);
    co_loop_free(first); /* must not take the signal stack from the second */
    overflow_in(second, "survivor");
}

Test(stack, overflow_reported_after_another_loop_was_freed) {
#if CO__ASAN
    cr_skip_test("AddressSanitizer reports stack overflows itself");
#endif
    expect_overflow_report(child_two_loops, "survivor");
}
