/* echo_server — the tcp-echo workload of BENCHMARKS.md, written with the
 * stream API a user would write: one task per connection reading up to
 * 64 KiB and writing it back, drain for flow control.
 *
 * usage: echo_server PORT    (listens on 127.0.0.1 and every address;
 * stops on SIGINT / SIGTERM)
 */
#include <corio.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

static void echo(co_stream *s, void *arg) {
    (void)arg;
    char buf[65536]; /* on the task's stack, as libuv's server has 64 KiB per connection */
    for (;;) {
        ssize_t n = co_stream_read(s, buf, sizeof buf);
        if (n <= 0) return;
        if (co_stream_write(s, buf, (size_t)n) < 0 || co_stream_drain(s) < 0) return;
    }
}

static void *serve(void *arg) {
    co_server *srv;
    int rc = co_server_start_tcp(NULL, arg, echo, NULL, NULL, &srv);
    if (rc) {
        fprintf(stderr, "echo_server: %s\n", co_io_error());
        return co_fail(rc, "%s", co_io_error());
    }
    co_sleep(1e9); /* until SIGINT / SIGTERM cancels us */
    co_server_close(srv, CO_SERVER_ABORT_CLIENTS);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    int rc = co_run(serve, argv[1], NULL);
    return rc == 0 || rc == -ECANCELED ? 0 : 1;
}
