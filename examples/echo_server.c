/* echo_server — the classic: every line a client sends comes back.
 *
 *   echo_server [PORT]     (PORT 0 or none: the kernel picks one)
 *
 * Prints "listening on port N", serves until SIGTERM (or SIGINT), then
 * stops accepting, closes the connections (close_clients), prints how many
 * it served and exits 0. echo_client starts it for you. */
#include <corio.h>
#include <signal.h>
#include <stdio.h>

static size_t nconns, nlines;

static void echo_lines(co_stream *s, void *arg) {
    (void)arg;
    nconns++;
    char line[1024];
    for (;;) {
        ssize_t n = co_stream_readline(s, line, sizeof line);
        if (n <= 0) return; /* end of stream, an error, or the server closing */
        nlines++;
        if (co_stream_write(s, line, (size_t)n) < 0 || co_stream_drain(s) < 0) return;
    }
}

/* loop.add_signal_handler: runs on the loop, not in signal context */
static void on_stop(int signo, void *arg) { co_event_set(arg); }

static void *serve(void *arg) {
    co_event stop;
    co_event_init(&stop);
    co_signal_add_handler(SIGTERM, on_stop, &stop);
    co_signal_add_handler(SIGINT, on_stop, &stop);
    co_server *srv;
    if (co_server_start_tcp("127.0.0.1", arg, echo_lines, NULL, NULL, &srv) < 0) {
        fprintf(stderr, "echo_server: %s\n", co_io_error());
        return co_fail(-1, "cannot listen");
    }
    printf("listening on port %d\n", co_server_port(srv));
    fflush(stdout);
    co_event_wait(&stop);
    co_server_close(srv, CO_SERVER_CLOSE_CLIENTS);
    co_signal_remove_handler(SIGTERM);
    co_signal_remove_handler(SIGINT);
    co_event_destroy(&stop);
    printf("served %zu connections, %zu lines\n", nconns, nlines);
    return NULL;
}

int main(int argc, char **argv) { return co_run(serve, argc > 1 ? argv[1] : "0", NULL); }
