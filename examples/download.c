/* download — the "download three images" pattern: fetched one after
 * another they take 3 s, gathered 1 s.
 *
 * The example brings its own web server: a tiny HTTP/1.1 server on
 * 127.0.0.1 (a free port) built with co_server_start_tcp and streams,
 * serving three generated "images" of a few hundred KB, each reply
 * delayed by 1 s (co_sleep) as a slow server would. A tiny client
 * (co_open_connection, a GET, the headers with co_stream_readline, the
 * body with co_stream_readexactly by Content-Length) saves each image
 * with co_file_write_all in a temporary directory and prints the saved
 * file's size (co_file_stat) and the CRC-32 of its bytes. First one by one,
 * then all three at once with co_gather: the second pass replaces the
 * files of the first, atomically.
 *
 * CORIO_EXAMPLE_UNIT=0.1 makes every "second" 0.1 s (the tests use it);
 * times are printed in those units, rounded down to whole ones. */
#define _GNU_SOURCE
#include <corio.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* only example_unit() is used here; the header's other helpers are for
 * the thread examples */
#include "example_unit.h"

#define NIMAGES 3

/* ---- the images ---------------------------------------------------------------- */

typedef struct image {
    char name[24];
    char *data;
    size_t len;
} image;

static image images[NIMAGES];

/* Deterministic noise behind a PNG signature: the same bytes every run,
 * so the checksums below are too. */
static int make_images(void) {
    for (int i = 0; i < NIMAGES; i++) {
        image *im = &images[i];
        snprintf(im->name, sizeof im->name, "image%d.png", i + 1);
        im->len = (size_t)(160 + 80 * i) * 1024;
        if (!(im->data = malloc(im->len))) return -ENOMEM;
        uint32_t x = 2463534242u + (uint32_t)i;
        for (size_t k = 0; k < im->len; k++) {
            x ^= x << 13; /* xorshift32 */
            x ^= x >> 17;
            x ^= x << 5;
            im->data[k] = (char)x;
        }
        memcpy(im->data, "\x89PNG\r\n\x1a\n", 8);
    }
    return 0;
}

static uint32_t crc32(const char *p, size_t n) {
    static uint32_t table[256];
    if (!table[1]) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    }
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) c = table[(c ^ (uint8_t)p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

/* ---- the server: one task per connection ------------------------------------------ */

static void serve(co_stream *s, void *arg) {
    char line[512];
    ssize_t n = co_stream_readline(s, line, sizeof line - 1);
    if (n <= 0) return;
    line[n] = 0;
    char path[64] = "";
    sscanf(line, "GET %63s HTTP/1.", path);
    do { /* the headers: nothing in them matters here */
        if ((n = co_stream_readline(s, line, sizeof line)) < 0) return;
    } while (n > 2 || (n == 2 && line[0] != '\r'));

    const image *im = NULL;
    for (int i = 0; i < NIMAGES; i++)
        if (path[0] == '/' && strcmp(path + 1, images[i].name) == 0) im = &images[i];
    if (!im) {
        co_stream_printf(s, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    if (co_sleep(1 * example_unit()) < 0) return; /* a slow server */
    co_stream_printf(s,
                     "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     im->len);
    co_stream_write(s, im->data, im->len);
    co_stream_drain(s); /* the server closes the stream (and flushes the rest) on return */
}

/* ---- the client ------------------------------------------------------------------- */

static char port[8];
static char dir[64];
static double phase_start;

typedef struct download {
    const char *name;
    size_t size;
    uint32_t crc;
    double at; /* seconds since the phase started */
} download;

/* GET /name; the body into *body (malloc'd), its length into *len. */
static int http_get(const char *name, char **body, size_t *len) {
    co_stream *s;
    int rc = co_open_connection("127.0.0.1", port, NULL, &s);
    if (rc) return rc;
    char line[512];
    ssize_t n;
    size_t clen = 0;
    int status = 0;
    *body = NULL;
    rc = co_stream_printf(s, "GET /%s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n", name, port);
    if (rc) goto out;
    if ((n = co_stream_readline(s, line, sizeof line - 1)) < 0) {
        rc = (int)n;
        goto out;
    }
    line[n] = 0;
    if (sscanf(line, "HTTP/1.%*d %d", &status) != 1 || status != 200) {
        rc = -EPROTO;
        goto out;
    }
    for (;;) {
        if ((n = co_stream_readline(s, line, sizeof line - 1)) <= 0) { /* 0: the end, mid-headers */
            rc = n < 0 ? (int)n : -CO_EINCOMPLETE;
            goto out;
        }
        line[n] = 0;
        if (strcmp(line, "\r\n") == 0 || strcmp(line, "\n") == 0) break;
        if (strncasecmp(line, "Content-Length:", 15) == 0) clen = strtoull(line + 15, NULL, 10);
    }
    if (!(*body = malloc(clen ? clen : 1))) {
        rc = -ENOMEM;
        goto out;
    }
    if ((n = co_stream_readexactly(s, *body, clen, NULL)) < 0) {
        rc = (int)n;
        free(*body);
        *body = NULL;
        goto out;
    }
    *len = clen;
out:;
    int closed = co_stream_close(s);
    return rc ? rc : closed;
}

/* One image: download, save, read back. */
static void *fetch(void *arg) {
    download *d = arg;
    char *body;
    size_t len = 0;
    int rc = http_get(d->name, &body, &len);
    if (rc) return co_fail(rc, "GET %s: %s", d->name, co_strerror(rc));
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, d->name);
    rc = co_file_write_all(path, body, len, 0644);
    d->crc = crc32(body, len);
    free(body);
    if (rc) return co_fail(rc, "saving %s: %s", path, co_strerror(rc));
    struct stat st;
    if ((rc = co_file_stat(path, &st))) return co_fail(rc, "stat %s: %s", path, co_strerror(rc));
    d->size = (size_t)st.st_size;
    d->at = co_time() - phase_start;
    return d;
}

/* Seconds as whole units, rounded down: the sleeps make every run last
 * at least its nominal time, and a busy machine adds less than a unit on
 * top, so the output stays the same (the 1e-6 absorbs the rounding of
 * 0.3 / 0.1 on the virtual clock). */
static int units(double seconds) { return (int)(seconds / example_unit() + 1e-6); }

static void print_download(const download *d) {
    printf("  %s: %zu bytes, crc32 %08x (at %d s)\n", d->name, d->size, (unsigned)d->crc, units(d->at));
}

/* ---- main ------------------------------------------------------------------------- */

static void *main_task(void *arg) {
    co_server *srv;
    int rc = co_server_start_tcp("127.0.0.1", "0", serve, NULL, NULL, &srv);
    if (rc) return co_fail(rc, "server: %s", co_io_error());
    snprintf(port, sizeof port, "%d", co_server_port(srv));
    printf("serving %d images on 127.0.0.1, each reply after 1 s\n", NIMAGES);
    download d[NIMAGES];
    for (int i = 0; i < NIMAGES; i++) d[i] = (download){.name = images[i].name};

    puts("one by one:");
    phase_start = co_time();
    for (int i = 0; i < NIMAGES && rc == 0; i++) {
        co_task *t = co_spawn(fetch, &d[i]);
        if (!t) return co_fail(-errno, "spawn");
        if ((rc = co_join(t, NULL)) == 0) print_download(&d[i]);
        else printf("  %s failed: %s\n", d[i].name, co_task_message(t));
        co_task_release(t);
    }
    if (rc == 0) printf("one by one: %d images in %d s\n", NIMAGES, units(co_time() - phase_start));

    if (rc == 0) {
        puts("gathered:");
        phase_start = co_time();
        co_task *ts[NIMAGES];
        for (int i = 0; i < NIMAGES; i++) ts[i] = co_spawn(fetch, &d[i]);
        co_result r[NIMAGES];
        rc = co_gather(ts, NIMAGES, r, CO_RETURN_ERRORS);
        for (int i = 0; i < NIMAGES; i++) {
            if (r[i].state == CO_DONE) print_download(&d[i]);
            else printf("  %s failed: %s\n", d[i].name, r[i].msg ? r[i].msg : co_strerror(r[i].err));
            if (r[i].state != CO_DONE) rc = r[i].err;
            co_task_release(ts[i]);
        }
        if (rc == 0) printf("gathered: %d images in %d s\n", NIMAGES, units(co_time() - phase_start));
    }

    co_server_close(srv, CO_SERVER_CLOSE_CLIENTS);
    for (int i = 0; i < NIMAGES; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s", dir, d[i].name);
        co_file_unlink(path);
    }
    return rc ? co_fail(rc, "download failed") : NULL;
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/corio-download-XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    int status = make_images() == 0 ? co_run(main_task, NULL, NULL) : 1;
    rmdir(dir); /* empty by now (no corio call for rmdir: one quick system call) */
    for (int i = 0; i < NIMAGES; i++) free(images[i].data);
    return status;
}
