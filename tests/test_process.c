/* test_process.c — child processes: spawning with pipes, env, cwd;
 * return codes; communicate; signals; cancellation; no zombies, no fd
 * leaks; the waitpid fallback for kernels without pidfd.
 *
 * Real clock: the children take real time. Every test ends by checking
 * that no child of ours is left (waitpid(-1) says ECHILD) and, where fds
 * are made, that as many are open as before. */
#include "testutil.h"

#include <corio/process.h>
#include <corio/signal.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void assert_no_children(void) {
    int st;
    errno = 0;
    pid_t r = waitpid(-1, &st, WNOHANG);
    cr_assert(r == -1 && errno == ECHILD, "a child is left (waitpid: %d, %s)", (int)r, strerror(errno));
}

/* How many pidfds this process holds. */
static int count_pidfds(void) {
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len <= 0) continue;
        target[len] = 0;
        if (strstr(target, "pidfd")) n++;
    }
    closedir(d);
    return n;
}

static int fds_before;

/* A real-clock loop; the test's fn runs as a task and must return NULL. */
static void run_real(co_fn fn, void *arg) {
    fds_before = count_fds();
    co_loop *L = tu_loop_opts(false, false, 0);
    int rc = tu_run(L, fn, arg, NULL);
    cr_assert_eq(rc, 0, "task ended with %s", co_err_name(rc));
    tu_close(L);
    assert_no_children();
    cr_assert_eq(count_fds(), fds_before, "fds leaked");
}

static co_process *spawn_ok(const char *const *argv, const co_process_opts *o) {
    co_process *p = NULL;
    int rc = co_process_spawn(argv, o, &p);
    cr_assert_eq(rc, 0, "spawn %s: %s (%s)", argv[0], co_err_name(rc), co_io_error());
    cr_assert_not_null(p);
    return p;
}

static int wait_rc(co_process *p) {
    int code = 12345;
    int rc = co_process_wait(p, CO_FOREVER, &code);
    cr_assert_eq(rc, 0, "wait: %s", co_err_name(rc));
    return code;
}

/* ---- pipes, exit codes, signals ----------------------------------------------------- */

static void *echo_through_cat(void *arg) {
    (void)arg;
    co_process_opts o = {.stdin_mode = CO_PIPE, .stdout_mode = CO_PIPE};
    co_process *p = spawn_ok((const char *[]){"cat", NULL}, &o);
    cr_assert_gt(co_process_pid(p), 0);
    cr_assert_null(co_process_stderr(p), "stderr inherited: no stream");
    cr_assert_eq(co_stream_write(co_process_stdin(p), "hello\n", 6), 0);
    char line[64];
    ssize_t n = co_stream_readline(co_process_stdout(p), line, sizeof line);
    cr_assert_eq(n, 6, "%zd", n);
    cr_assert_eq(memcmp(line, "hello\n", 6), 0);
    cr_assert_eq(co_process_close_stdin(p), 0);
    cr_assert_null(co_process_stdin(p));
    cr_assert_eq(co_process_close_stdin(p), 0, "again: nothing to do");
    cr_assert_eq(co_stream_read(co_process_stdout(p), line, sizeof line), 0, "EOF after stdin closed");
    cr_assert_eq(wait_rc(p), 0);
    co_process_free(p);
    return NULL;
}

Test(process, echo_through_pipes) { run_real(echo_through_cat, NULL); }

static void *exit_codes(void *arg) {
    (void)arg;
    co_process *p = spawn_ok((const char *[]){"sh", "-c", "exit 3", NULL}, NULL);
    cr_assert_eq(wait_rc(p), 3);
    int code = -1;
    cr_assert_eq(co_process_returncode(p, &code), 1, "known after the wait");
    cr_assert_eq(code, 3);
    cr_assert_eq(wait_rc(p), 3, "waiting again gives the same");
    cr_assert_eq(co_process_send_signal(p, SIGTERM), -ESRCH, "reaped: nothing to signal");
    co_process_free(p);

    p = spawn_ok((const char *[]){"/bin/true", NULL}, NULL);
    cr_assert_eq(wait_rc(p), 0);
    co_process_free(p);

    char buf[64];
    cr_assert_str_eq(co_process_status_str(3, buf, sizeof buf), "exit code 3");
    cr_assert_str_eq(co_process_status_str(-9, buf, sizeof buf), "killed by SIGKILL");
    cr_assert_str_eq(co_process_status_str(-15, buf, sizeof buf), "killed by SIGTERM");
    return NULL;
}

Test(process, exit_codes) { run_real(exit_codes, NULL); }

static void *killed(void *arg) {
    (void)arg;
    co_process *p = spawn_ok((const char *[]){"sh", "-c", "kill -9 $$", NULL}, NULL);
    cr_assert_eq(wait_rc(p), -SIGKILL);
    co_process_free(p);

    p = spawn_ok((const char *[]){"sleep", "10", NULL}, NULL);
    int code;
    cr_assert_eq(co_process_returncode(p, &code), 0, "still running");
    cr_assert_eq(co_process_terminate(p), 0);
    cr_assert_eq(wait_rc(p), -SIGTERM);
    co_process_free(p);

    p = spawn_ok((const char *[]){"sleep", "10", NULL}, NULL);
    cr_assert_eq(co_process_send_signal(p, NSIG + 1), -EINVAL);
    cr_assert_eq(co_process_kill(p), 0);
    cr_assert_eq(wait_rc(p), -SIGKILL);
    co_process_free(p);
    return NULL;
}

Test(process, killed_by_a_signal) { run_real(killed, NULL); }

/* ---- environment, directory, session, what the child inherits ------------------------------ */

static char *run_capture(const char *const *argv, const co_process_opts *opts, int *code) {
    co_process_opts o = {0};
    if (opts) o = *opts;
    o.stdout_mode = CO_PIPE;
    co_process *p = spawn_ok(argv, &o);
    char *out = NULL;
    size_t len = 0;
    int rc = co_process_communicate(p, NULL, 0, &out, &len, NULL, NULL);
    cr_assert_eq(rc, 0, "communicate: %s", co_err_name(rc));
    cr_assert_eq(strlen(out), len);
    cr_assert_eq(co_process_returncode(p, code), 1);
    co_process_free(p);
    return out;
}

static void *env_cwd(void *arg) {
    (void)arg;
    char tmpl[] = "/tmp/corio-proc-XXXXXX";
    cr_assert_not_null(mkdtemp(tmpl));
    char real[PATH_MAX], expect[PATH_MAX + 64];
    cr_assert_not_null(realpath(tmpl, real));

    char *envp[] = {"FOO=bar baz", "PATH=/usr/bin:/bin", NULL};
    co_process_opts o = {.envp = envp, .cwd = tmpl};
    int code;
    char *out = run_capture((const char *[]){"sh", "-c", "echo \"$FOO|$HOME\"; pwd -P", NULL}, &o, &code);
    snprintf(expect, sizeof expect, "bar baz|\n%s\n", real);
    cr_assert_str_eq(out, expect, "env replaced, cwd honoured");
    cr_assert_eq(code, 0);
    free(out);

    setenv("CORIO_TEST_INHERIT", "yes", 1);
    out = run_capture((const char *[]){"sh", "-c", "echo $CORIO_TEST_INHERIT", NULL}, NULL, &code);
    cr_assert_str_eq(out, "yes\n", "envp NULL: this environment");
    free(out);
    unsetenv("CORIO_TEST_INHERIT");

    cr_assert_eq(rmdir(tmpl), 0);
    return NULL;
}

Test(process, env_and_cwd) { run_real(env_cwd, NULL); }

static void *session(void *arg) {
    (void)arg;
    co_process_opts o = {.new_session = true};
    int code;
    /* field 6 of /proc/PID/stat is the session id; comm "(sh)" has no space */
    char *out = run_capture(
        (const char *[]){"sh", "-c", "read -r a b c d e f rest < /proc/$$/stat; echo $a $f", NULL}, &o,
        &code);
    int pid = 0, sid = 0;
    cr_assert_eq(sscanf(out, "%d %d", &pid, &sid), 2, "%s", out);
    cr_assert_eq(sid, pid, "a session of its own");
    free(out);
    return NULL;
}

Test(process, new_session) { run_real(session, NULL); }

static void never_called(int sig, void *arg) {
    (void)arg;
    cr_assert_fail("handler of signal %d ran", sig);
}

/* The child gets no fd of ours (not even one opened without O_CLOEXEC),
 * not the signals corio blocked, and SIGPIPE at its default. */
static void *inherits_nothing(void *arg) {
    int leaky = *(int *)arg;
    int code;
    char *out = run_capture((const char *[]){"ls", "/proc/self/fd", NULL}, NULL, &code);
    char name[16];
    snprintf(name, sizeof name, "\n%d\n", leaky);
    cr_assert_null(strstr(out, name), "fd %d leaked into the child:\n%s", leaky, out);
    cr_assert_not_null(strstr(out, "0\n1\n2\n"), "%s", out);
    free(out);

    /* a task waits for SIGTERM meanwhile: blocked in this thread */
    cr_assert_eq(co_signal_add_handler(SIGTERM, never_called, NULL), 0);
    out = run_capture((const char *[]){"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status", NULL}, NULL,
                      &code);
    unsigned long long blk = ~0ull, ign = ~0ull;
    char *b = strstr(out, "SigBlk:"), *g = strstr(out, "SigIgn:");
    cr_assert(b && g, "%s", out);
    sscanf(b + 7, "%llx", &blk);
    sscanf(g + 7, "%llx", &ign);
    cr_assert_eq(blk & (1ull << (SIGTERM - 1)), 0, "SIGTERM not blocked in the child: %s", out);
    cr_assert_eq(ign & (1ull << (SIGPIPE - 1)), 0, "SIGPIPE at its default in the child: %s", out);
    free(out);
    cr_assert_eq(co_signal_remove_handler(SIGTERM), 1);
    return NULL;
}

Test(process, child_inherits_no_fd_no_blocked_signal) {
    int leaky = dup(2); /* no O_CLOEXEC on purpose */
    cr_assert_geq(leaky, 3);
    run_real(inherits_nothing, &leaky);
    close(leaky);
}

/* ---- communicate ------------------------------------------------------------------------ */

static void *communicate_large(void *arg) {
    (void)arg;
    size_t len = 3 * 1024 * 1024 + 17; /* far beyond any pipe buffer, both ways */
    char *in = malloc(len);
    cr_assert_not_null(in);
    for (size_t i = 0; i < len; i++) in[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    /* stdout and stderr both get everything: three pipes full at once */
    co_process_opts o = {.stdin_mode = CO_PIPE, .stdout_mode = CO_PIPE, .stderr_mode = CO_PIPE};
    co_process *p = spawn_ok((const char *[]){"tee", "/dev/stderr", NULL}, &o);
    char *out, *err;
    size_t outlen, errlen;
    int rc = co_process_communicate(p, in, len, &out, &outlen, &err, &errlen);
    cr_assert_eq(rc, 0, "%s: %s", co_err_name(rc), co_io_error());
    cr_assert_eq(outlen, len);
    cr_assert_eq(errlen, len);
    cr_assert_eq(memcmp(out, in, len), 0);
    cr_assert_eq(memcmp(err, in, len), 0);
    cr_assert_eq(out[outlen], 0, "NUL-terminated");
    int code;
    cr_assert_eq(co_process_returncode(p, &code), 1);
    cr_assert_eq(code, 0);
    free(out);
    free(err);
    free(in);
    co_process_free(p);
    return NULL;
}

Test(process, communicate_large_both_ways, .timeout = 60) { run_real(communicate_large, NULL); }

static void *communicate_modes(void *arg) {
    (void)arg;
    /* stderr into stdout */
    co_process_opts o = {.stdout_mode = CO_PIPE, .stderr_mode = CO_STDOUT};
    co_process *p = spawn_ok((const char *[]){"sh", "-c", "echo out; echo err >&2; exit 5", NULL}, &o);
    char *out, *err;
    size_t outlen, errlen;
    cr_assert_eq(co_process_communicate(p, "ignored", 7, &out, &outlen, &err, &errlen), 0);
    cr_assert_str_eq(out, "out\nerr\n");
    cr_assert_null(err, "stderr is not a pipe");
    cr_assert_eq(errlen, 0);
    int code;
    cr_assert_eq(co_process_returncode(p, &code), 1);
    cr_assert_eq(code, 5);
    free(out);
    co_process_free(p);

    /* to /dev/null, and a pipe whose output nobody wants (read, dropped) */
    co_process_opts o2 = {.stdin_mode = CO_DEVNULL, .stdout_mode = CO_DEVNULL, .stderr_mode = CO_PIPE};
    p = spawn_ok((const char *[]){"sh", "-c", "cat; echo hidden; echo shown >&2", NULL}, &o2);
    cr_assert_eq(co_process_communicate(p, NULL, 0, &out, &outlen, &err, &errlen), 0);
    cr_assert_null(out);
    cr_assert_str_eq(err, "shown\n");
    free(err);
    co_process_free(p);

    co_process_opts o3 = {.stdout_mode = CO_PIPE};
    p = spawn_ok((const char *[]){"sh", "-c", "head -c 300000 /dev/zero", NULL}, &o3);
    cr_assert_eq(co_process_communicate(p, NULL, 0, NULL, NULL, NULL, NULL), 0, "output dropped");
    cr_assert_eq(wait_rc(p), 0, "and the child was not blocked on a full pipe");
    co_process_free(p);

    /* a child that stops reading early: the rest of the input is dropped */
    co_process_opts o4 = {.stdin_mode = CO_PIPE, .stdout_mode = CO_PIPE};
    p = spawn_ok((const char *[]){"head", "-c", "5", NULL}, &o4);
    size_t big = 2 * 1024 * 1024;
    char *in = calloc(1, big);
    memset(in, 'x', big);
    cr_assert_eq(co_process_communicate(p, in, big, &out, &outlen, NULL, NULL), 0, "%s", co_io_error());
    cr_assert_str_eq(out, "xxxxx");
    free(out);
    free(in);
    co_process_free(p);
    return NULL;
}

Test(process, communicate_modes) { run_real(communicate_modes, NULL); }

/* ---- killed mid-read, cancellation, timeouts: no zombie ------------------------------------ */

static void *killed_mid_read(void *arg) {
    (void)arg;
    co_process_opts o = {.stdout_mode = CO_PIPE};
    co_process *p = spawn_ok((const char *[]){"sh", "-c", "echo start; exec sleep 10", NULL}, &o);
    char line[64];
    cr_assert_eq(co_stream_readline(co_process_stdout(p), line, sizeof line), 6);
    cr_assert_eq(co_process_kill(p), 0);
    ssize_t n = co_stream_read(co_process_stdout(p), line, sizeof line);
    cr_assert_eq(n, 0, "the reader sees the end of the stream: %zd", n);
    cr_assert_eq(wait_rc(p), -SIGKILL);
    co_process_free(p);
    return NULL;
}

Test(process, killed_mid_read) { run_real(killed_mid_read, NULL); }

static void *wait_sleep(void *arg) {
    int rc = co_process_wait(arg, CO_FOREVER, NULL);
    return rc ? co_fail(rc, "wait") : NULL;
}

static void *cancel_then_free(void *arg) {
    (void)arg;
    co_process *p = spawn_ok((const char *[]){"sleep", "10", NULL}, NULL);
    double t0 = co_time();
    cr_assert_eq(co_process_wait(p, 0.05, NULL), -ETIMEDOUT);
    cr_assert_geq(co_time() - t0, 0.05 - 1e-9);
    int code;
    cr_assert_eq(co_process_returncode(p, &code), 0, "a timeout leaves the child running");

    int rc = tu_cancel_after(wait_sleep, p, 0.02);
    cr_assert_eq(rc, -ECANCELED, "%s", co_err_name(rc));
    cr_assert_eq(co_process_returncode(p, &code), 0, "a cancel too");
    pid_t pid = co_process_pid(p);
    co_process_free(p); /* kills; reaped in the background */
    for (int i = 0; i < 5000 && kill(pid, 0) == 0; i++) co_sleep(0.001);
    cr_assert_eq(kill(pid, 0), -1, "reaped while the loop runs");
    return NULL;
}

Test(process, cancelled_wait_then_free_leaves_no_zombie) { run_real(cancel_then_free, NULL); }

static void *wait_in_scope(void *arg) {
    (void)arg;
    co_process *p = spawn_ok((const char *[]){"sleep", "10", NULL}, NULL);
    co_scope sc;
    co_scope_enter(&sc, 0.03, CO_FAIL_AFTER);
    int rc = co_process_wait(p, CO_FOREVER, NULL);
    cr_assert_eq(rc, -ECANCELED, "%s", co_err_name(rc));
    cr_assert_eq(co_scope_exit(&sc), -ETIMEDOUT);
    co_process_free(p);
    return NULL;
}

Test(process, wait_under_a_deadline_scope) { run_real(wait_in_scope, NULL); }

static void *two_waiters(void *arg) {
    (void)arg;
    co_process *p = spawn_ok((const char *[]){"sh", "-c", "sleep 0.05; exit 7", NULL}, NULL);
    co_task *a = co_spawn(wait_sleep, p), *b = co_spawn(wait_sleep, p);
    int code;
    cr_assert_eq(co_process_wait(p, CO_FOREVER, &code), 0);
    cr_assert_eq(code, 7);
    co_join(a, NULL);
    co_join(b, NULL);
    cr_assert_eq(co_task_state(a), CO_DONE);
    cr_assert_eq(co_task_state(b), CO_DONE);
    co_task_release(a);
    co_task_release(b);
    co_process_free(p);
    return NULL;
}

Test(process, several_waiters) { run_real(two_waiters, NULL); }

/* A task owns a running child and is cancelled by the loop's close: its
 * free happens while the loop is closing (no reaper task can start). */
static void *holds_child(void *arg) {
    (void)arg;
    co_process *p = spawn_ok((const char *[]){"sleep", "1000", NULL}, NULL);
    co_sleep(100);
    co_process_free(p);
    return NULL;
}

static void *spawn_holder(void *arg) {
    (void)arg;
    co_task_release(co_spawn(holds_child, NULL));
    co_sleep(0.01);
    /* and one freed at once, left to a reaper task that the close cancels */
    co_process *p = spawn_ok((const char *[]){"sleep", "1000", NULL}, NULL);
    co_process_free(p);
    return NULL;
}

/* The children never end by themselves: without the kill on free the
 * test hangs until its timeout and fails. */
Test(process, free_during_loop_close_reaps, .timeout = 30) { run_real(spawn_holder, NULL); }

/* Freed outside any task, with the loop not running. */
Test(process, free_outside_tasks, .timeout = 30) {
    fds_before = count_fds();
    co_loop *L = tu_loop_opts(false, false, 0);
    co_process *p = NULL;
    co_process_opts o = {.stdin_mode = CO_PIPE, .stdout_mode = CO_PIPE};
    cr_assert_eq(co_process_spawn((const char *[]){"sleep", "1000", NULL}, &o, &p), 0);
    co_process_free(p);
    tu_close(L);
    assert_no_children();
    cr_assert_eq(count_fds(), fds_before);
}

/* ---- errors ----------------------------------------------------------------------------------- */

static void *missing(void *arg) {
    (void)arg;
    co_process *p = (co_process *)1;
    int rc = co_process_spawn((const char *[]){"corio-no-such-program", "x", NULL}, NULL, &p);
    cr_assert_eq(rc, -ENOENT, "%s", co_err_name(rc));
    cr_assert_null(p);
    cr_assert_str_eq(co_io_error(),
                     "spawn corio-no-such-program: No such file or directory (not found in PATH)");

    co_process_opts o = {.stdin_mode = CO_PIPE, .stdout_mode = CO_PIPE, .stderr_mode = CO_PIPE};
    rc = co_process_spawn((const char *[]){"/nonexistent/prog", NULL}, &o, &p);
    cr_assert_eq(rc, -ENOENT);
    cr_assert_str_eq(co_io_error(), "spawn /nonexistent/prog: No such file or directory");

    o.cwd = "/nonexistent-dir";
    rc = co_process_spawn((const char *[]){"true", NULL}, &o, &p);
    cr_assert_eq(rc, -ENOENT);
    cr_assert_str_eq(co_io_error(),
                     "spawn true: working directory /nonexistent-dir: No such file or directory");

    rc = co_process_spawn((const char *[]){"/dev/null", NULL}, NULL, &p);
    cr_assert_eq(rc, -EACCES, "%s", co_err_name(rc));

    cr_assert_eq(co_process_spawn((const char *[]){NULL}, NULL, &p), -EINVAL);
    cr_assert_eq(co_process_spawn(NULL, NULL, &p), -EINVAL);
    co_process_opts bad = {.stdout_mode = CO_STDOUT};
    cr_assert_eq(co_process_spawn((const char *[]){"true", NULL}, &bad, &p), -EINVAL);
    cr_assert_eq(co_process_wait(NULL, 0, NULL), -EINVAL);
    co_process_free(NULL);
    return NULL;
}

Test(process, spawn_errors) { run_real(missing, NULL); }

Test(process, outside_a_loop) {
    co_process *p;
    cr_assert_eq(co_process_spawn((const char *[]){"true", NULL}, NULL, &p), -CO_ENOLOOP);
    co_loop *L = tu_loop_opts(false, false, 0);
    cr_assert_eq(co_process_spawn((const char *[]){"true", NULL}, NULL, &p), 0);
    cr_assert_eq(co_process_wait(p, CO_FOREVER, NULL), -CO_ENOTASK);
    co_process_free(p);
    tu_close(L);
    assert_no_children();
}

/* ---- without pidfd: waitpid retried on SIGCHLD ------------------------------------------------ */

static void *uses_pidfd(void *arg) {
    int expect = *(int *)arg;
    co_process *p = spawn_ok((const char *[]){"sleep", "10", NULL}, NULL);
    cr_assert_eq(count_pidfds(), expect);
    co_process_free(p);
    return NULL;
}

Test(process, waits_with_a_pidfd) {
    int one = 1;
    run_real(uses_pidfd, &one);
}

static void *fallback(void *arg) {
    (void)arg;
    int none = 0;
    uses_pidfd(&none);
    exit_codes(NULL);
    killed(NULL);
    cancel_then_free(NULL);
    two_waiters(NULL);
    killed_mid_read(NULL);
    return NULL;
}

Test(process, without_pidfd) {
    setenv("CORIO_NO_PIDFD", "1", 1);
    run_real(fallback, NULL);
    struct sigaction sa;
    sigaction(SIGCHLD, NULL, &sa);
    cr_assert(sa.sa_handler == SIG_DFL && !(sa.sa_flags & SA_SIGINFO), "SIGCHLD's disposition is back");
    unsetenv("CORIO_NO_PIDFD");
}
