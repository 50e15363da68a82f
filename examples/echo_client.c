/* echo_client — starts echo_server (next to this program) as a
 * subprocess, reads its port from its first line, then opens 100
 * connections at once, each sending three lines and checking every echo;
 * at the end it stops the server with SIGTERM and reports its exit.
 *
 *   echo_client [PORT]     (a PORT: use a server already running there) */
#include <corio.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NCONN 100
static const char *port;
static int matched, opened;

static void *client(void *arg) {
    int id = (int)(intptr_t)arg;
    co_stream *s;
    int rc = co_open_connection("127.0.0.1", port, NULL, &s);
    if (rc) return co_fail(rc, "%s", co_io_error());
    opened++;
    for (int i = 0; i < 3; i++) {
        char msg[64], back[64];
        int n = snprintf(msg, sizeof msg, "client %d line %d\n", id, i);
        if ((rc = co_stream_write(s, msg, (size_t)n)) < 0) break;
        ssize_t got = co_stream_readline(s, back, sizeof back);
        if (got != n || memcmp(msg, back, (size_t)n) != 0) {
            rc = got < 0 ? (int)got : -EPROTO;
            break;
        }
        matched++;
    }
    co_stream_close(s);
    return rc ? co_fail(rc, "client %d: %s", id, co_io_error()) : NULL;
}

static void *run_clients(void) {
    co_task *t[NCONN];
    for (int i = 0; i < NCONN; i++) t[i] = co_spawn(client, (void *)(intptr_t)i);
    int rc = co_gather(t, NCONN, NULL, 0);
    for (int i = 0; i < NCONN; i++) co_task_release(t[i]);
    printf("%d connections opened at once, %d of %d echoes matched\n", opened, matched, NCONN * 3);
    return rc ? co_fail(rc, "some clients failed") : NULL;
}

static void *main_task(void *arg) {
    if (arg) {
        port = arg;
        return run_clients();
    }
    char server[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", server, sizeof server - 16);
    if (n <= 0) return co_fail(-errno, "readlink");
    server[n] = 0;
    strcpy(strrchr(server, '/') + 1, "echo_server");
    const char *argv[] = {server, "0", NULL};
    co_process_opts o = {.stdout_mode = CO_PIPE};
    co_process *p;
    if (co_process_spawn(argv, &o, &p) < 0) return co_fail(-1, "%s", co_io_error());
    char line[64], portbuf[16];
    ssize_t len = co_stream_readline(co_process_stdout(p), line, sizeof line - 1);
    if (len > 0) line[len] = 0; /* readline returns bytes, not a C string */
    if (len <= 0 || sscanf(line, "listening on port %15s", portbuf) != 1) {
        co_process_free(p);
        return co_fail(-EPROTO, "the server did not start");
    }
    printf("server started (it printed \"listening on port N\")\n");
    port = portbuf;
    void *r = run_clients();
    co_process_terminate(p);
    len = co_stream_readline(co_process_stdout(p), line, sizeof line);
    printf("server said: %.*s", len > 0 ? (int)len : 0, line);
    int status;
    co_process_wait(p, CO_FOREVER, &status);
    char why[64];
    printf("server stopped: %s\n", co_process_status_str(status, why, sizeof why));
    co_process_free(p);
    return r;
}

int main(int argc, char **argv) { return co_run(main_task, argc > 1 ? argv[1] : NULL, NULL); }
