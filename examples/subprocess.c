/* subprocess — asyncio.create_subprocess_exec: three child processes.
 *   1. ls, run in a directory made here with three files, its output read
 *      line by line from a pipe (a co_stream);
 *   2. a shell command that complains on stderr and exits with 3, run
 *      with co_process_communicate;
 *   3. sleep 10, waited for at most 0.2 s with co_wait_for: the waiting
 *      task is cancelled, the child killed and reaped.
 * Each prints the child's output and how it ended. */
#include <corio.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const files[] = {"alpha.txt", "beta.txt", "gamma.txt"};

static int make_dir(char *dir) {
    if (!mkdtemp(dir)) return -errno;
    for (size_t i = 0; i < 3; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        FILE *f = fopen(path, "w");
        if (!f) return -errno;
        fclose(f);
    }
    return 0;
}

static void remove_dir(const char *dir) {
    for (size_t i = 0; i < 3; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void print_end(const char *name, co_process *p) {
    int code;
    char buf[64];
    if (co_process_returncode(p, &code) == 1)
        printf("%s: %s\n", name, co_process_status_str(code, buf, sizeof buf));
}

/* 1: ls in its own directory, read through a pipe */
static int list_dir(const char *dir) {
    puts("$ ls        (in a directory with three files)");
    const char *argv[] = {"ls", NULL};
    co_process_opts o = {.cwd = dir, .stdout_mode = CO_PIPE};
    co_process *p;
    int rc = co_process_spawn(argv, &o, &p);
    if (rc) return rc;
    char line[256];
    ssize_t n;
    while ((n = co_stream_readline(co_process_stdout(p), line, sizeof line)) > 0)
        printf("  %.*s", (int)n, line);
    /* the end of the output: 0, as asyncio's b'' */
    rc = n < 0 ? (int)n : co_process_wait(p, CO_FOREVER, NULL);
    if (rc == 0) print_end("ls", p);
    co_process_free(p);
    return rc;
}

/* 2: a failing command, its stderr captured */
static int failing(void) {
    puts("$ sh -c 'echo oops >&2; exit 3'");
    const char *argv[] = {"sh", "-c", "echo oops >&2; exit 3", NULL};
    co_process_opts o = {.stdout_mode = CO_PIPE, .stderr_mode = CO_PIPE};
    co_process *p;
    int rc = co_process_spawn(argv, &o, &p);
    if (rc) return rc;
    char *out, *err;
    size_t outlen, errlen;
    rc = co_process_communicate(p, NULL, 0, &out, &outlen, &err, &errlen);
    if (rc == 0) {
        printf("  stdout: %zu bytes, stderr: %s", outlen, err);
        print_end("sh", p);
        free(out);
        free(err);
    }
    co_process_free(p);
    return rc;
}

/* 3: a child that takes too long */
static void *wait_child(void *arg) {
    int rc = co_process_wait(arg, CO_FOREVER, NULL);
    return rc ? co_fail(rc, "wait failed") : NULL;
}

static int too_slow(void) {
    puts("$ sleep 10  (waited for at most 0.2 s)");
    const char *argv[] = {"sleep", "10", NULL};
    co_process *p;
    int rc = co_process_spawn(argv, NULL, &p);
    if (rc) return rc;
    co_task *waiter = co_spawn(wait_child, p);
    rc = co_wait_for(waiter, 0.2, NULL); /* on timeout the waiter is cancelled */
    co_task_release(waiter);
    int code;
    printf("  wait: %s; still running: %s\n", co_err_name(rc),
           co_process_returncode(p, &code) == 0 ? "yes, kill it" : "no");
    co_process_kill(p);
    rc = co_process_wait(p, CO_FOREVER, NULL);
    if (rc == 0) print_end("sleep", p);
    co_process_free(p);
    return rc;
}

static void *main_task(void *arg) {
    (void)arg;
    char dir[] = "/tmp/corio-subprocess-XXXXXX";
    int rc = make_dir(dir);
    if (rc) return co_fail(rc, "cannot make the directory: %s", strerror(-rc));
    rc = list_dir(dir);
    remove_dir(dir);
    if (rc == 0) rc = failing();
    if (rc == 0) rc = too_slow();
    return rc ? co_fail(rc, "%s", co_io_error()) : NULL;
}

int main(void) { return co_run(main_task, NULL, NULL); }
