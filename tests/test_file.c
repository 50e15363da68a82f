/* test_file.c — co_file_*: round trips through the handle, pread / pwrite
 * at offsets, O_APPEND, the path calls, the whole-file helpers (the limit
 * of read_all; write_all's atomic replacement, and the old file kept and
 * the temporary removed when writing fails), the kernel's errors, calls
 * from outside a task, and cancellation while a job is stuck in the
 * kernel (a FIFO without writer): the waiter returns at once, and the
 * late fd or buffer is released when the job ends (fds counted in
 * /proc/self/fd; LeakSanitizer checks the memory in the ASan pass).
 * Every test works in its own mkdtemp directory. */
#define _GNU_SOURCE
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ================================================================= helpers */

static char dir[64];
static char path[128], path2[128], fifo[128];

static void mkdir_tmp(void) {
    snprintf(dir, sizeof dir, "/tmp/corio-file-XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof path, "%s/a.txt", dir);
    snprintf(path2, sizeof path2, "%s/b.txt", dir);
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
}

/* The directory's entries, sorted, space-separated ("" if empty). */
static const char *dir_list(void) {
    static char out[1024];
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    cr_assert_geq(n, 0, "scandir: %s", strerror(errno));
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, "..")) {
            if (out[0]) strncat(out, " ", sizeof out - strlen(out) - 1);
            strncat(out, ents[i]->d_name, sizeof out - strlen(out) - 1);
        }
        free(ents[i]);
    }
    free(ents);
    return out;
}

static void rm_tmp(void) {
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, ents[i]->d_name);
        if (strcmp(ents[i]->d_name, ".") && strcmp(ents[i]->d_name, "..")) {
            if (unlink(p) < 0) rmdir(p);
        }
        free(ents[i]);
    }
    if (n >= 0) free(ents);
    cr_assert_eq(rmdir(dir), 0, "rmdir %s: %s (left: %s)", dir, strerror(errno), dir_list());
}

/* Plain blocking helpers for setting up and checking, outside the API. */
static void put(const char *p, const char *s) {
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(s, f);
    cr_assert_eq(fclose(f), 0);
}

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n - 1; /* the one opendir holds */
}

/* From a task: waits (real time, bounded) until the fd count is `want`. */
static void await_fds(int want) {
    for (int i = 0; i < 500 && count_fds() != want; i++) co_sleep(0.01);
    cr_assert_eq(count_fds(), want, "fds: %d, expected %d", count_fds(), want);
}

/* From a task: waits until the default pool has taken every queued job,
 * then a little more, so a job is inside its system call. */
static void await_pool_busy(void) {
    for (int i = 0; i < 500 && co_pool_queued(co_pool_default()) > 0; i++) co_sleep(0.01);
    cr_assert_eq(co_pool_queued(co_pool_default()), 0);
    co_sleep(0.05);
}

/* A pattern that differs at every offset modulo 251, so a misplaced chunk
 * shows. */
static char *pattern(size_t n, unsigned seed) {
    char *p = malloc(n);
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++) p[i] = (char)((i + seed) % 251);
    return p;
}

/* Runs fn as a task on a fresh loop (real clock: jobs take real time). */
static void run_real(co_fn fn) {
    co_loop *L = tu_loop_opts(false, false, 0);
    int rc = tu_run(L, fn, NULL, NULL);
    cr_assert_eq(rc, 0, "task ended with %s", co_err_name(rc));
    tu_close(L);
}

static int task_rc; /* what a spawned task's call returned */

/* ============================================================ round trips */

#define BIG ((size_t)3 << 20) /* more than one 1 MiB chunk */

static void *round_trip(void *arg) {
    co_file *f;
    cr_assert_eq(co_file_open(path, O_RDWR | O_CREAT | O_TRUNC, 0600, &f), 0);
    cr_assert_geq(co_file_fd(f), 0);
    cr_assert(fcntl(co_file_fd(f), F_GETFD) & FD_CLOEXEC, "close-on-exec");
    char *big = pattern(BIG, 7);
    size_t w = 1;
    cr_assert_eq(co_file_write(f, "hello ", 6, &w), 0);
    cr_assert_eq(w, 6);
    cr_assert_eq(co_file_write(f, big, BIG, &w), 0);
    cr_assert_eq(w, BIG);
    cr_assert_eq(co_file_write(f, "", 0, NULL), 0);
    cr_assert_eq(co_file_tell(f), 6 + BIG);

    struct stat st;
    cr_assert_eq(co_file_fstat(f, &st), 0);
    cr_assert_eq(st.st_size, 6 + BIG);

    cr_assert_eq(co_file_seek(f, 0, SEEK_SET), 0);
    char head[6];
    cr_assert_eq(co_file_read(f, head, 6), 6);
    cr_assert_eq(memcmp(head, "hello ", 6), 0);
    char *back = malloc(BIG + 10);
    cr_assert_eq(co_file_read(f, back, BIG + 10), (ssize_t)BIG, "a short count only at the end");
    cr_assert_eq(memcmp(back, big, BIG), 0);
    cr_assert_eq(co_file_read(f, back, 10), 0, "end of file");
    cr_assert_eq(co_file_tell(f), 6 + BIG);

    cr_assert_eq(co_file_seek(f, -4, SEEK_END), (off_t)(6 + BIG - 4));
    cr_assert_eq(co_file_read(f, back, 10), 4);
    cr_assert_eq(memcmp(back, big + BIG - 4, 4), 0);
    cr_assert_eq(co_file_seek(f, -2, SEEK_CUR), (off_t)(6 + BIG - 2));
    cr_assert_eq(co_file_seek(f, -1, SEEK_SET), -EINVAL);
    cr_assert_eq(co_file_seek(f, 0, 42), -EINVAL);
    cr_assert_eq(co_file_seek(f, INT64_MAX, SEEK_CUR), -EOVERFLOW);
    cr_assert_eq(co_file_tell(f), (off_t)(6 + BIG - 2), "failed seeks leave the position");

    cr_assert_eq(co_file_fsync(f), 0);
    cr_assert_eq(co_file_close(f), 0);

    /* what the kernel has is what we wrote */
    FILE *c = fopen(path, "r");
    cr_assert_not_null(c);
    cr_assert_eq(fread(back, 1, BIG + 10, c), 6 + BIG);
    fclose(c);
    cr_assert_eq(memcmp(back, "hello ", 6), 0);
    cr_assert_eq(memcmp(back + 6, big, BIG), 0);
    free(back);
    free(big);
    return NULL;
}

Test(file, round_trip_through_the_handle) {
    mkdir_tmp();
    run_real(round_trip);
    rm_tmp();
}

static void *at_offsets(void *arg) {
    co_file *f;
    cr_assert_eq(co_file_open(path, O_RDWR | O_CREAT | O_EXCL, 0600, &f), 0);
    size_t w;
    cr_assert_eq(co_file_pwrite(f, "WORLD", 5, 1000, &w), 0);
    cr_assert_eq(w, 5);
    cr_assert_eq(co_file_pwrite(f, "hello", 5, 10, NULL), 0);
    cr_assert_eq(co_file_tell(f), 0, "pwrite leaves the position alone");

    char buf[2048];
    cr_assert_eq(co_file_pread(f, buf, 5, 1000), 5);
    cr_assert_eq(memcmp(buf, "WORLD", 5), 0);
    cr_assert_eq(co_file_pread(f, buf, sizeof buf, 8), 997, "to the end: 1005 - 8");
    cr_assert_eq(memcmp(buf, "\0\0hello\0", 8), 0, "the hole reads as zeros");
    cr_assert_eq(co_file_pread(f, buf, 10, 1005), 0, "at the end");
    cr_assert_eq(co_file_pread(f, buf, 10, 5000), 0, "past the end");
    cr_assert_eq(co_file_pread(f, buf, 10, -1), -EINVAL);
    cr_assert_eq(co_file_pwrite(f, buf, 10, -1, NULL), -EINVAL);
    cr_assert_eq(co_file_tell(f), 0, "pread leaves the position alone");

    /* a pwrite spanning chunks, at an odd offset */
    char *big = pattern(BIG, 3);
    cr_assert_eq(co_file_pwrite(f, big, BIG, 12345, &w), 0);
    cr_assert_eq(w, BIG);
    char *back = malloc(BIG);
    cr_assert_eq(co_file_pread(f, back, BIG, 12345), (ssize_t)BIG);
    cr_assert_eq(memcmp(back, big, BIG), 0);
    cr_assert_eq(co_file_read(f, buf, 10), 10);
    cr_assert_eq(memcmp(buf, "\0\0\0\0\0\0\0\0\0\0", 10), 0);
    cr_assert_eq(co_file_read(f, buf, 7), 7);
    cr_assert_eq(memcmp(buf, "hello\0\0", 7), 0, "read follows its own position");
    free(big);
    free(back);
    cr_assert_eq(co_file_close(f), 0);
    return NULL;
}

Test(file, pread_pwrite_at_offsets) {
    mkdir_tmp();
    run_real(at_offsets);
    rm_tmp();
}

static void *appending(void *arg) {
    put(path, "0123456789");
    co_file *f;
    cr_assert_eq(co_file_open(path, O_RDWR | O_APPEND, 0, &f), 0);
    cr_assert_eq(co_file_write(f, "ab", 2, NULL), 0);
    cr_assert_eq(co_file_tell(f), 12, "the position follows the appended end");
    cr_assert_eq(co_file_seek(f, 0, SEEK_SET), 0);
    cr_assert_eq(co_file_write(f, "cd", 2, NULL), 0, "O_APPEND wins over the position");
    cr_assert_eq(co_file_tell(f), 14);
    cr_assert_eq(co_file_close(f), 0);
    char buf[64];
    tu_read_file(path, buf, sizeof buf);
    cr_assert_str_eq(buf, "0123456789abcd");
    return NULL;
}

Test(file, append_writes_at_the_end) {
    mkdir_tmp();
    run_real(appending);
    rm_tmp();
}

/* ================================================================== paths */

static void *paths(void *arg) {
    put(path, "12345");
    struct stat st;
    cr_assert_eq(co_file_stat(path, &st), 0);
    cr_assert(S_ISREG(st.st_mode));
    cr_assert_eq(st.st_size, 5);
    cr_assert_eq(co_file_stat(dir, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));

    cr_assert_eq(co_file_rename(path, path2), 0);
    cr_assert_eq(co_file_stat(path, &st), -ENOENT);
    cr_assert_eq(co_file_stat(path2, &st), 0);
    cr_assert_eq(st.st_size, 5);
    cr_assert_str_eq(dir_list(), "b.txt");
    cr_assert_eq(co_file_rename(path, path2), -ENOENT, "from is gone");

    put(path, "x");
    cr_assert_eq(co_file_rename(path2, path), 0, "replaces an existing file");
    char buf[16];
    tu_read_file(path, buf, sizeof buf);
    cr_assert_str_eq(buf, "12345");

    char sub[160];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    cr_assert_eq(co_file_rename(path, sub), -EISDIR);
    cr_assert_eq(co_file_unlink(sub), -EISDIR);
    cr_assert_eq(rmdir(sub), 0);

    cr_assert_eq(co_file_unlink(path), 0);
    cr_assert_eq(co_file_unlink(path), -ENOENT);
    cr_assert_eq(co_file_stat(path, &st), -ENOENT);
    cr_assert_str_eq(dir_list(), "");
    return NULL;
}

Test(file, stat_rename_unlink) {
    mkdir_tmp();
    run_real(paths);
    rm_tmp();
}

/* ============================================================ whole files */

static void *read_all(void *arg) {
    put(path, "twelve bytes");
    char *data = (char *)1;
    size_t len = 99;
    cr_assert_eq(co_file_read_all(path, SIZE_MAX, &data, &len), 0);
    cr_assert_eq(len, 12);
    cr_assert_str_eq(data, "twelve bytes", "NUL-terminated");
    free(data);
    cr_assert_eq(co_file_read_all(path, 12, &data, &len), 0, "the limit itself is allowed");
    cr_assert_eq(len, 12);
    free(data);
    cr_assert_eq(co_file_read_all(path, 11, &data, &len), -EFBIG);
    cr_assert_null(data);
    cr_assert_eq(len, 0);

    put(path, "");
    cr_assert_eq(co_file_read_all(path, 0, &data, &len), 0);
    cr_assert_eq(len, 0);
    cr_assert_not_null(data);
    cr_assert_str_eq(data, "");
    free(data);

    /* several chunks */
    char *big = pattern(BIG + 17, 5);
    FILE *f = fopen(path, "w");
    fwrite(big, 1, BIG + 17, f);
    fclose(f);
    cr_assert_eq(co_file_read_all(path, SIZE_MAX, &data, &len), 0);
    cr_assert_eq(len, BIG + 17);
    cr_assert_eq(memcmp(data, big, len), 0);
    cr_assert_eq(data[len], 0);
    free(data);
    cr_assert_eq(co_file_read_all(path, BIG, &data, &len), -EFBIG);
    free(big);

    /* procfs: a size of 0 and reads shorter than asked before the end */
    cr_assert_eq(co_file_read_all("/proc/self/maps", SIZE_MAX, &data, &len), 0);
    cr_assert_gt(len, 4096, "all of it, not the first read's worth");
    cr_assert_eq(strlen(data), len);
    cr_assert_not_null(strstr(data, "[stack]"));
    free(data);
    cr_assert_eq(co_file_read_all("/proc/self/maps", 100, &data, &len), -EFBIG);

    return NULL;
}

static int pipefd[2];
static char *piped;
static size_t piped_len;

static void *read_all_pipe(void *arg) {
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", pipefd[0]);
    task_rc = co_file_read_all(p, SIZE_MAX, &piped, &piped_len);
    return NULL;
}

/* A pipe (opened again through /proc): no size, no offsets; read until
 * its writer closes. */
static void *read_all_from_a_pipe(void *arg) {
    cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
    cr_assert_eq(write(pipefd[1], "through a pipe", 14), 14);
    co_task *t = co_spawn(read_all_pipe, NULL);
    /* once the bytes are taken, the reader is past its open: the writer
     * may go, and the reader sees the end */
    int avail = 1;
    for (int i = 0; i < 500 && avail; i++) {
        co_sleep(0.01);
        cr_assert_eq(ioctl(pipefd[0], FIONREAD, &avail), 0);
    }
    cr_assert_eq(avail, 0);
    close(pipefd[1]);
    cr_assert_eq(co_join(t, NULL), 0);
    co_task_release(t);
    close(pipefd[0]);
    cr_assert_eq(task_rc, 0, "%s", co_err_name(task_rc));
    cr_assert_eq(piped_len, 14);
    cr_assert_str_eq(piped, "through a pipe");
    free(piped);
    return NULL;
}

Test(file, read_all_from_a_pipe, .timeout = 30) { run_real(read_all_from_a_pipe); }

Test(file, read_all_and_its_limit) {
    mkdir_tmp();
    run_real(read_all);
    rm_tmp();
}

static void *write_all(void *arg) {
    umask(022);
    cr_assert_eq(co_file_write_all(path, "first", 5, 0640), 0, "creates");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640);
    char buf[64];
    tu_read_file(path, buf, sizeof buf);
    cr_assert_str_eq(buf, "first");
    cr_assert_str_eq(dir_list(), "a.txt", "no temporary file left");

    /* Replacement, not rewriting in place: a hard link to the old file
     * keeps the old contents, and a reader holding the old file open
     * still reads all of it. */
    cr_assert_eq(link(path, path2), 0);
    int old = open(path, O_RDONLY | O_CLOEXEC);
    cr_assert_geq(old, 0);
    cr_assert_eq(co_file_write_all(path, "second, longer", 14, 0600), 0);
    tu_read_file(path, buf, sizeof buf);
    cr_assert_str_eq(buf, "second, longer");
    tu_read_file(path2, buf, sizeof buf);
    cr_assert_str_eq(buf, "first");
    ssize_t n = read(old, buf, sizeof buf - 1);
    cr_assert_eq(n, 5);
    close(old);
    struct stat st2;
    cr_assert_eq(stat(path, &st2), 0);
    cr_assert_neq(st.st_ino, st2.st_ino, "a new inode");
    cr_assert_str_eq(dir_list(), "a.txt b.txt");

    cr_assert_eq(co_file_write_all(path, NULL, 0, 0600), 0, "empty");
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_size, 0);

    char *big = pattern(BIG, 11);
    cr_assert_eq(co_file_write_all(path, big, BIG, 0600), 0);
    char *data;
    size_t len;
    cr_assert_eq(co_file_read_all(path, SIZE_MAX, &data, &len), 0);
    cr_assert_eq(len, BIG);
    cr_assert_eq(memcmp(data, big, BIG), 0);
    free(data);
    free(big);

    /* a relative path: the temporary file goes to the current directory */
    char cwd[256];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(dir), 0);
    cr_assert_eq(co_file_write_all("rel.txt", "rel", 3, 0600), 0);
    cr_assert_eq(chdir(cwd), 0);
    cr_assert_str_eq(dir_list(), "a.txt b.txt rel.txt");
    return NULL;
}

Test(file, write_all_replaces_atomically) {
    mkdir_tmp();
    run_real(write_all);
    rm_tmp();
}

/* A "full disk": RLIMIT_FSIZE lets the temporary file grow to 64 KiB only,
 * and with SIGXFSZ ignored the write past it fails with EFBIG. */
static void *write_all_fails(void *arg) {
    put(path, "the old contents");
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {64 * 1024, 64 * 1024};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);

    char *big = pattern(256 * 1024, 1);
    cr_assert_eq(co_file_write_all(path, big, 256 * 1024, 0600), -EFBIG);
    char buf[64];
    tu_read_file(path, buf, sizeof buf);
    cr_assert_str_eq(buf, "the old contents", "the old file is intact");
    cr_assert_str_eq(dir_list(), "a.txt", "the temporary file is gone");

    /* the same through a handle: the bytes before the limit are counted */
    co_file *f;
    cr_assert_eq(co_file_open(path2, O_WRONLY | O_CREAT, 0600, &f), 0);
    size_t w = 0;
    cr_assert_eq(co_file_write(f, big, 256 * 1024, &w), -EFBIG);
    cr_assert_eq(w, 64 * 1024);
    cr_assert_eq(co_file_tell(f), 64 * 1024);
    cr_assert_eq(co_file_close(f), 0);
    free(big);

    /* a small file still fits */
    cr_assert_eq(co_file_write_all(path, "new", 3, 0600), 0);
    tu_read_file(path, buf, sizeof buf);
    cr_assert_str_eq(buf, "new");
    cr_assert_str_eq(dir_list(), "a.txt b.txt");
    return NULL;
}

Test(file, write_all_failure_keeps_the_old_file) {
    mkdir_tmp();
    run_real(write_all_fails);
    rm_tmp();
}

/* ================================================================= errors */

static void *errors(void *arg) {
    co_file *f = (co_file *)1;
    char *data;
    size_t len;
    char buf[16];
    cr_assert_eq(co_file_open(path, O_RDONLY, 0, &f), -ENOENT);
    cr_assert_null(f, "*out cleared on failure");
    cr_assert_eq(co_file_open(dir, O_WRONLY, 0, &f), -EISDIR);
    cr_assert_eq(co_file_read_all(path, SIZE_MAX, &data, &len), -ENOENT);
    cr_assert_null(data);
    cr_assert_eq(co_file_read_all(dir, SIZE_MAX, &data, &len), -EISDIR);

    /* a directory opened for reading fails at read(2), as in C */
    cr_assert_eq(co_file_open(dir, O_RDONLY, 0, &f), 0);
    cr_assert_eq(co_file_read(f, buf, sizeof buf), -EISDIR);
    cr_assert_eq(co_file_close(f), 0);

    put(path, "data");
    cr_assert_eq(co_file_open(path, O_WRONLY, 0, &f), 0);
    cr_assert_eq(co_file_read(f, buf, sizeof buf), -EBADF, "not open for reading");
    cr_assert_eq(co_file_tell(f), 0);
    cr_assert_eq(co_file_close(f), 0);
    cr_assert_eq(co_file_open(path, O_RDONLY, 0, &f), 0);
    size_t w = 9;
    cr_assert_eq(co_file_write(f, "x", 1, &w), -EBADF, "not open for writing");
    cr_assert_eq(w, 0);
    cr_assert_eq(co_file_close(f), 0);
    cr_assert_eq(co_file_open(path, O_RDONLY | O_CREAT | O_EXCL, 0600, &f), -EEXIST);

    char missing[160], sub[160];
    snprintf(missing, sizeof missing, "%s/nodir/x", dir);
    cr_assert_eq(co_file_write_all(missing, "x", 1, 0600), -ENOENT);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    cr_assert_eq(co_file_write_all(sub, "x", 1, 0600), -EISDIR);
    cr_assert_str_eq(dir_list(), "a.txt sub", "no temporary file left behind");
    cr_assert_eq(rmdir(sub), 0);

    /* arguments */
    cr_assert_eq(co_file_open(NULL, O_RDONLY, 0, &f), -EINVAL);
    cr_assert_eq(co_file_open(path, O_RDONLY, 0, NULL), -EINVAL);
    cr_assert_eq(co_file_read(NULL, buf, 1), -EINVAL);
    cr_assert_eq(co_file_write(NULL, buf, 1, NULL), -EINVAL);
    cr_assert_eq(co_file_fsync(NULL), -EINVAL);
    cr_assert_eq(co_file_close(NULL), -EINVAL);
    cr_assert_eq(co_file_tell(NULL), -EINVAL);
    cr_assert_eq(co_file_seek(NULL, 0, SEEK_SET), -EINVAL);
    cr_assert_eq(co_file_stat(NULL, NULL), -EINVAL);
    cr_assert_eq(co_file_rename(path, NULL), -EINVAL);
    cr_assert_eq(co_file_unlink(NULL), -EINVAL);
    cr_assert_eq(co_file_read_all(path, 1, NULL, &len), -EINVAL);
    cr_assert_eq(co_file_write_all("", "x", 1, 0600), -EINVAL);
    cr_assert_eq(co_file_write_all(path, NULL, 1, 0600), -EINVAL);
    char slash[160];
    snprintf(slash, sizeof slash, "%s/", dir);
    cr_assert_eq(co_file_write_all(slash, "x", 1, 0600), -EINVAL);
    cr_assert_str_eq(dir_list(), "a.txt");
    return NULL;
}

Test(file, kernel_errors_and_bad_arguments) {
    mkdir_tmp();
    run_real(errors);
    rm_tmp();
}

/* A FIFO: no offsets, and a write without reader is -EPIPE, not SIGPIPE. */
static void *fifo_io(void *arg) {
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    int r = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    cr_assert_geq(r, 0);
    co_file *f;
    cr_assert_eq(co_file_open(fifo, O_WRONLY, 0, &f), 0, "a reader exists: no wait");
    char buf[16];
    cr_assert_eq(co_file_pread(f, buf, 1, 0), -ESPIPE);
    cr_assert_eq(co_file_pwrite(f, buf, 1, 0, NULL), -ESPIPE);
    cr_assert_eq(co_file_seek(f, 0, SEEK_SET), -ESPIPE);
    cr_assert_eq(co_file_write(f, "ping", 4, NULL), 0);
    cr_assert_eq(co_file_tell(f), 4, "bytes written so far");
    cr_assert_eq(read(r, buf, sizeof buf), 4);
    close(r);
    size_t w = 9;
    cr_assert_eq(co_file_write(f, "lost", 4, &w), -EPIPE);
    cr_assert_eq(w, 0);
    cr_assert_eq(co_file_close(f), 0);
    return NULL;
}

Test(file, fifo_no_offsets_and_epipe) {
    mkdir_tmp();
    run_real(fifo_io);
    rm_tmp();
}

/* ============================================================ not a task */

Test(file, outside_a_task_is_enotask) {
    mkdir_tmp();
    put(path, "x");
    co_loop *L = tu_loop();
    co_file *f = (co_file *)1;
    char *data = (char *)1;
    size_t len = 9;
    struct stat st;
    cr_assert_eq(co_file_open(path2, O_WRONLY | O_CREAT, 0600, &f), -CO_ENOTASK);
    cr_assert_eq(co_file_stat(path, &st), -CO_ENOTASK);
    cr_assert_eq(co_file_rename(path, path2), -CO_ENOTASK);
    cr_assert_eq(co_file_unlink(path), -CO_ENOTASK);
    cr_assert_eq(co_file_read_all(path, 10, &data, &len), -CO_ENOTASK);
    cr_assert_null(data);
    cr_assert_eq(len, 0);
    cr_assert_eq(co_file_write_all(path2, "x", 1, 0600), -CO_ENOTASK);
    cr_assert_str_eq(dir_list(), "a.txt", "nothing was done");
    tu_close(L);
    cr_assert_eq(co_file_stat(path, &st), -CO_ENOTASK, "no loop at all");
    rm_tmp();
}

/* Another thread, while this one's task waits for it: not a task there. */
static void *other_thread(void *arg) {
    struct stat st;
    intptr_t bad = 0;
    bad |= co_file_stat(path, &st) != -CO_ENOTASK;
    bad |= co_file_write_all(path2, "x", 1, 0600) != -CO_ENOTASK;
    co_file *f;
    bad |= co_file_open(path, O_RDONLY, 0, &f) != -CO_ENOTASK;
    return (void *)bad;
}

static void *from_another_thread(void *arg) {
    void *bad = (void *)1;
    cr_assert_eq(co_run_blocking(other_thread, NULL, &bad), 0);
    cr_assert_null(bad, "a pool thread's calls were not refused");
    cr_assert_str_eq(dir_list(), "a.txt");
    return NULL;
}

Test(file, another_thread_is_enotask) {
    mkdir_tmp();
    put(path, "x");
    tu_run_ok(from_another_thread, NULL);
    rm_tmp();
}

static co_file *handle;

static void *open_handle(void *arg) {
    cr_assert_eq(co_file_open(path, O_RDWR, 0, &handle), 0);
    return NULL;
}

Test(file, handle_calls_outside_a_task) {
    mkdir_tmp();
    put(path, "0123456789");
    co_loop *L = tu_loop();
    cr_assert_eq(tu_run(L, open_handle, NULL, NULL), 0);
    int base = count_fds();
    char buf[4];
    cr_assert_eq(co_file_read(handle, buf, 4), -CO_ENOTASK);
    cr_assert_eq(co_file_write(handle, buf, 4, NULL), -CO_ENOTASK);
    cr_assert_eq(co_file_pread(handle, buf, 4, 0), -CO_ENOTASK);
    cr_assert_eq(co_file_pwrite(handle, buf, 4, 0, NULL), -CO_ENOTASK);
    cr_assert_eq(co_file_fsync(handle), -CO_ENOTASK);
    cr_assert_eq(co_file_seek(handle, 0, SEEK_END), -CO_ENOTASK, "SEEK_END would suspend");
    cr_assert_eq(co_file_seek(handle, 3, SEEK_SET), 3, "the others do not");
    cr_assert_eq(co_file_seek(handle, 2, SEEK_CUR), 5);
    cr_assert_eq(co_file_close(handle), 0, "close works anywhere");
    cr_assert_eq(count_fds(), base - 1);
    tu_close(L);
    rm_tmp();
}

/* ============================================================ cancellation */

static void *open_fifo_for_reading(void *arg) {
    co_file *f = NULL;
    task_rc = co_file_open(fifo, O_RDONLY, 0, &f); /* waits for a writer */
    cr_assert_null(f);
    return NULL;
}

/* The job is stuck in open(2) for good: the waiter must come back at once.
 * Then a writer lets the open finish: its fd, which nobody wants, is
 * closed by the job. */
static void *cancel_open(void *arg) {
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    int base = count_fds();
    co_task *t = co_spawn(open_fifo_for_reading, NULL);
    await_pool_busy();
    cr_assert_not(co_task_done(t));
    co_cancel(t, NULL);
    cr_assert_eq(co_join(t, NULL), -ECANCELED);
    co_task_release(t);
    cr_assert_eq(task_rc, -ECANCELED);

    /* Still in open(2), so a non-blocking writer finds its reader. */
    int w = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    cr_assert_geq(w, 0, "the job should still be waiting in open: %s", strerror(errno));
    close(w);
    await_fds(base);
    return NULL;
}

Test(file, cancel_while_open_waits, .timeout = 30) {
    mkdir_tmp();
    run_real(cancel_open);
    rm_tmp();
}

static co_file *rf;

static void *read_fifo(void *arg) {
    char buf[100];
    memset(buf, 'z', sizeof buf);
    task_rc = (int)co_file_read(rf, buf, sizeof buf);
    cr_assert_eq(buf[0], 'z', "the late read never reaches the caller's buffer");
    return NULL;
}

/* The job is stuck in read(2): cancel the reader, close the handle (the
 * close waits for the late job, which then closes the fd), and let the
 * read finish into a buffer nobody reads any more. */
static void *cancel_read(void *arg) {
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    cr_assert_eq(co_file_open(fifo, O_RDWR, 0, &rf), 0); /* O_RDWR: no wait, never EOF */
    int base = count_fds();
    co_task *t = co_spawn(read_fifo, NULL);
    await_pool_busy();
    char buf[4];
    cr_assert_eq(co_file_read(rf, buf, sizeof buf), -EBUSY, "one reader at a time");
    cr_assert_eq(co_file_write(rf, buf, 1, NULL), -EBUSY);
    co_cancel(t, NULL);
    cr_assert_eq(co_join(t, NULL), -ECANCELED);
    co_task_release(t);
    cr_assert_eq(task_rc, -ECANCELED);
    cr_assert_eq(co_file_tell(rf), 0);

    cr_assert_eq(co_file_close(rf), 0);
    cr_assert_eq(count_fds(), base, "the late read still uses the fd");
    int w = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    cr_assert_geq(w, 0);
    cr_assert_eq(write(w, "late", 4), 4);
    close(w);
    await_fds(base - 1);
    return NULL;
}

Test(file, cancel_while_read_waits, .timeout = 30) {
    mkdir_tmp();
    run_real(cancel_read);
    rm_tmp();
}

/* A scope's deadline releases the waiter the same way. */
static void *deadline_read(void *arg) {
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    co_file *f;
    cr_assert_eq(co_file_open(fifo, O_RDWR, 0, &f), 0);
    int base = count_fds();
    co_scope s;
    cr_assert_eq(co_scope_enter(&s, 0.05, CO_FAIL_AFTER), 0);
    double t0 = co_time();
    char buf[8];
    cr_assert_eq(co_file_read(f, buf, sizeof buf), -ECANCELED);
    cr_assert_geq(co_time() - t0, 0.05);
    cr_assert_eq(co_scope_exit(&s), -ETIMEDOUT);
    cr_assert_eq(co_file_close(f), 0);
    int w = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    cr_assert_geq(w, 0);
    cr_assert_eq(write(w, "x", 1), 1);
    close(w);
    await_fds(base - 1);
    return NULL;
}

Test(file, scope_deadline_releases_the_waiter, .timeout = 30) {
    mkdir_tmp();
    run_real(deadline_read);
    rm_tmp();
}

/* A cancelled task still closes its file: the fd goes, in the background. */
static void *close_when_cancelled(void *arg) {
    co_file *f;
    cr_assert_eq(co_file_open(path, O_RDONLY, 0, &f), 0);
    int base = count_fds();
    co_cancel(co_current(), NULL);
    char buf[4];
    cr_assert_eq(co_file_read(f, buf, sizeof buf), -ECANCELED, "sticky");
    cr_assert_eq(co_file_close(f), -ECANCELED);
    for (int i = 0; i < 500 && count_fds() != base - 1; i++) usleep(10000);
    cr_assert_eq(count_fds(), base - 1);
    return NULL;
}

Test(file, close_in_a_cancelled_task_still_closes) {
    mkdir_tmp();
    put(path, "x");
    co_loop *L = tu_loop_opts(false, false, 0);
    cr_assert_eq(tu_run(L, close_when_cancelled, NULL, NULL), -ECANCELED);
    tu_close(L);
    rm_tmp();
}

#define NEW_LEN ((size_t)6 << 20)
static char *new_data;

static void *replace(void *arg) {
    task_rc = co_file_write_all(path, new_data, NEW_LEN, 0600);
    return NULL;
}

/* write_all cancelled at many points: the file is always the old one or
 * the new one in full, and no temporary file survives. */
static void *cancel_write_all(void *arg) {
    new_data = pattern(NEW_LEN, 9);
    int replaced = 0, kept = 0;
    for (int i = 0; i < 12; i++) {
        put(path, "old");
        task_rc = 1;
        int jrc = tu_cancel_after(replace, NULL, i * 0.002);
        cr_assert(jrc == 0 || jrc == -ECANCELED, "join: %s", co_err_name(jrc));
        cr_assert(task_rc == 0 || task_rc == -ECANCELED, "write_all: %s", co_err_name(task_rc));
        char *data;
        size_t len;
        cr_assert_eq(co_file_read_all(path, SIZE_MAX, &data, &len), 0);
        if (len == 3 && memcmp(data, "old", 3) == 0) {
            kept++;
        } else {
            cr_assert_eq(len, NEW_LEN, "round %d: a file of %zu bytes", i, len);
            cr_assert_eq(memcmp(data, new_data, NEW_LEN), 0);
            replaced++;
        }
        free(data);
        /* the cleanup of a cancelled call may still be running */
        for (int j = 0; j < 500 && strcmp(dir_list(), "a.txt"); j++) co_sleep(0.01);
        cr_assert_str_eq(dir_list(), "a.txt", "round %d", i);
    }
    cr_assert_geq(kept, 1, "the first round cancels before anything runs");
    free(new_data);
    return NULL;
}

Test(file, cancelled_write_all_is_old_or_new, .timeout = 60) {
    mkdir_tmp();
    run_real(cancel_write_all);
    rm_tmp();
}
