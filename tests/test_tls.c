/* test_tls.c — TLS streams: a corio client and a corio server verifying
 * against a test CA, ALPN and SNI, the failures a client must report
 * clearly (wrong host, expired, untrusted CA, no common ALPN protocol),
 * the explicit insecure option, client certificates, start_tls on a plain
 * stream (also with the client's hello pipelined behind "STARTTLS"),
 * clean and truncated shutdown, a large full-duplex transfer, a handshake
 * cancelled or timed out against a peer that never answers, and real
 * OpenSSL peers: `openssl s_server` for our client, `openssl s_client`
 * for our server.
 *
 * Every test makes its own CA and certificates with the openssl CLI in a
 * mkdtemp directory (EC P-256 keys: a fraction of a second) and removes
 * them after. The loops run on the real clock: the peers are real. */
#define _GNU_SOURCE
#include "testutil.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- certificates ------------------------------------------------------------------- */

static char D[128]; /* this test's directory */

/* D/name, in one of a few rotating buffers. */
static const char *P(const char *name) {
    static char buf[8][256];
    static int i;
    char *b = buf[i++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", D, name);
    return b;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fclose(f);
}

/* ca.pem (the test CA) signs srv.pem (localhost, 127.0.0.1), expired.pem
 * (the same names, expired yesterday), other.pem (other.test) and cli.pem
 * (a client); rogue.pem, a CA nobody trusts, signs untrusted.pem. */
static const char conf[] = "[req]\n"
                           "distinguished_name = dn\n"
                           "prompt = no\n"
                           "[dn]\n"
                           "CN = corio test\n"
                           "[ca]\n"
                           "basicConstraints = critical,CA:TRUE\n"
                           "keyUsage = critical,keyCertSign,cRLSign\n"
                           "subjectKeyIdentifier = hash\n"
                           "[srv]\n"
                           "basicConstraints = CA:FALSE\n"
                           "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
                           "extendedKeyUsage = serverAuth\n"
                           "[other]\n"
                           "basicConstraints = CA:FALSE\n"
                           "subjectAltName = DNS:other.test\n"
                           "extendedKeyUsage = serverAuth\n"
                           "[cli]\n"
                           "basicConstraints = CA:FALSE\n"
                           "extendedKeyUsage = clientAuth\n";

static const char gen[] =
    "set -e\n"
    "k() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $1; }\n"
    "k ca.key; k rogue.key; k srv.key; k cli.key\n"
    "openssl req -x509 -new -key ca.key -subj '/CN=corio test CA' -days 2 -config cnf -extensions ca -out ca.pem\n"
    "openssl req -x509 -new -key rogue.key -subj '/CN=rogue CA' -days 2 -config cnf -extensions ca -out rogue.pem\n"
    "openssl req -new -key srv.key -subj '/CN=localhost' -config cnf -out srv.csr\n"
    "openssl req -new -key cli.key -subj '/CN=corio client' -config cnf -out cli.csr\n"
    "s() { openssl x509 -req -in $1 -CA $2.pem -CAkey $2.key -set_serial $5 -days $3 -extfile cnf -extensions $4 "
    "-out $6; }\n"
    "s srv.csr ca 2 srv 1 srv.pem\n"
    "s srv.csr ca -1 srv 2 expired.pem\n"
    "s srv.csr ca 2 other 3 other.pem\n"
    "s srv.csr rogue 2 srv 4 untrusted.pem\n"
    "s cli.csr ca 2 cli 5 cli.pem\n";

static void make_certs(void) {
    co_tls_ctx *probe = NULL;
    co_tls_opts po = {.insecure_no_verify = true};
    if (co_tls_ctx_new_client(&po, &probe) == -ENOTSUP) cr_skip_test("corio built without TLS (CORIO_TLS=0)");
    co_tls_ctx_free(probe);
    snprintf(D, sizeof D, "/tmp/corio-tls-XXXXXX");
    cr_assert_not_null(mkdtemp(D), "mkdtemp: %s", strerror(errno));
    write_file(P("cnf"), conf);
    write_file(P("gen.sh"), gen);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cd %s && sh gen.sh > gen.log 2>&1", D);
    cr_assert_eq(system(cmd), 0, "making the certificates failed: see %s/gen.log", D);
}

static pid_t peer_pid; /* an openssl process still running (a failed test): killed at the end */

static void remove_certs(void) {
    if (peer_pid > 0) {
        kill(peer_pid, SIGKILL);
        waitpid(peer_pid, NULL, 0);
    }
    if (!D[0]) return;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", D);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", D);
}

TestSuite(tls, .init = make_certs, .fini = remove_certs);

/* ---- helpers ---------------------------------------------------------------------- */

static co_loop *real_loop(void) { return tu_loop_opts(false, false, 0); }

static void run_ok(co_fn fn, void *arg) {
    co_loop *L = real_loop();
    int rc = tu_run(L, fn, arg, NULL);
    cr_assert_eq(rc, 0, "task ended with %s", co_err_name(rc));
    tu_close(L);
}

static co_tls_ctx *client_ctx(const co_tls_opts *o) {
    co_tls_ctx *c = NULL;
    int rc = co_tls_ctx_new_client(o, &c);
    cr_assert_eq(rc, 0, "client ctx: %s: %s", co_err_name(rc), co_io_error());
    return c;
}

static co_tls_ctx *trusting_client(const char *alpn) {
    co_tls_opts o = {.ca_file = P("ca.pem"), .alpn = alpn};
    return client_ctx(&o);
}

static co_tls_ctx *server_ctx(const char *cert, const co_tls_opts *o) {
    co_tls_ctx *c = NULL;
    int rc = co_tls_ctx_new_server(P(cert), P("srv.key"), o, &c);
    cr_assert_eq(rc, 0, "server ctx: %s: %s", co_err_name(rc), co_io_error());
    return c;
}

/* What the server's handler saw of its last connection. */
static struct {
    int conns;
    char sni[64], alpn[32], version[16], subject[128];
    bool verified, tls;
    int end_rc;        /* the read that ended its loop */
    bool at_eof;
    int phase;         /* test-specific */
} seen;

static void note_conn(co_stream *s) {
    seen.conns++;
    seen.tls = co_stream_is_tls(s);
    const char *v;
    snprintf(seen.sni, sizeof seen.sni, "%s", (v = co_tls_server_name(s)) ? v : "(none)");
    snprintf(seen.alpn, sizeof seen.alpn, "%s", (v = co_tls_alpn(s)) ? v : "(none)");
    snprintf(seen.version, sizeof seen.version, "%s", (v = co_tls_version(s)) ? v : "(none)");
    seen.verified = co_tls_peer_verified(s);
    if (co_tls_peer_subject(s, seen.subject, sizeof seen.subject) < 0)
        snprintf(seen.subject, sizeof seen.subject, "(none)");
}

/* Echoes lines upper-cased until end of stream, then says "BYE" and
 * returns (the server closes the stream: close_notify). */
static void echo_upper(co_stream *s, void *arg) {
    note_conn(s);
    char line[512];
    ssize_t n;
    while ((n = co_stream_readline(s, line, sizeof line)) > 0) {
        for (ssize_t i = 0; i < n; i++) line[i] = (char)toupper((unsigned char)line[i]);
        co_stream_write(s, line, (size_t)n);
    }
    seen.end_rc = (int)n;
    seen.at_eof = co_stream_at_eof(s);
    co_stream_write(s, "BYE\n", 4);
}

static co_server *start_server(co_tls_ctx *ctx, co_conn_handler h, int *port) {
    co_server_opts o = {.tls = ctx};
    co_server *srv = NULL;
    int rc = co_server_start_tcp("127.0.0.1", "0", h, NULL, &o, &srv);
    cr_assert_eq(rc, 0, "server: %s", co_io_error());
    *port = co_server_port(srv);
    cr_assert_gt(*port, 0);
    return srv;
}

static int connect_tls(co_tls_ctx *ctx, const char *host, int port, const char *tls_host, co_stream **s) {
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    co_connect_opts o = {.family = AF_INET, .tls = ctx, .tls_host = tls_host};
    return co_open_connection(host, p, &o, s);
}

/* A connection that must succeed. */
static co_stream *connected(co_tls_ctx *ctx, const char *host, int port, const char *tls_host) {
    co_stream *s = NULL;
    int rc = connect_tls(ctx, host, port, tls_host, &s);
    cr_assert_eq(rc, 0, "connect: %s: %s", co_err_name(rc), co_io_error());
    return s;
}

/* The end of a test with a TLS server: both contexts freed, the server
 * closed cleanly. */
static void finish(co_tls_ctx *cctx, co_tls_ctx *sctx, co_server *srv) {
    co_tls_ctx_free(cctx);
    co_tls_ctx_free(sctx);
    cr_assert_eq(co_server_close(srv, CO_SERVER_WAIT), 0);
}

/* Sends line, expects want back. */
static void exchange(co_stream *s, const char *line, const char *want) {
    cr_assert_eq(co_stream_write(s, line, strlen(line)), 0, "%s", co_io_error());
    char buf[512];
    ssize_t n = co_stream_readline(s, buf, sizeof buf - 1);
    cr_assert_gt(n, 0, "readline: %s: %s", co_err_name((int)n), co_io_error());
    buf[n] = 0;
    cr_assert_str_eq(buf, want);
}

/* A connection attempt that must fail: the error and co_io_error's sentence. */
static int failing_connect(co_tls_ctx *ctx, const char *host, int port, const char *tls_host, char *msg, size_t n) {
    co_stream *s = NULL;
    int rc = connect_tls(ctx, host, port, tls_host, &s);
    snprintf(msg, n, "%s", co_io_error());
    if (rc == 0) co_stream_close(s);
    cr_assert_null(rc == 0 ? NULL : s, "no stream on failure");
    return rc;
}

/* ---- round trip ------------------------------------------------------------------- */

static void *round_trip(void *arg) {
    co_tls_opts so = {.alpn = "h2,http/1.1"};
    co_tls_ctx *sctx = server_ctx("srv.pem", &so);
    int port;
    co_server *srv = start_server(sctx, echo_upper, &port);
    co_tls_ctx_free(sctx); /* the server holds its own reference */

    co_tls_ctx *cctx = trusting_client("http/1.1,h2");
    co_stream *s = NULL;
    int rc = connect_tls(cctx, "localhost", port, NULL, &s); /* the name through DNS, and as SNI */
    cr_assert_eq(rc, 0, "connect: %s: %s", co_err_name(rc), co_io_error());
    co_tls_ctx_free(cctx); /* the stream holds its own reference */

    cr_assert(co_stream_is_tls(s));
    cr_assert_str_eq(co_tls_alpn(s), "h2", "the server's preference wins");
    cr_assert_str_eq(co_tls_version(s), "TLSv1.3");
    cr_assert_not_null(co_tls_cipher(s));
    cr_assert_str_eq(co_tls_server_name(s), "localhost");
    cr_assert(co_tls_peer_verified(s));
    char subj[128];
    cr_assert_eq(co_tls_peer_subject(s, subj, sizeof subj), 0);
    cr_assert_str_eq(subj, "CN=localhost");

    exchange(s, "hello\n", "HELLO\n");
    exchange(s, "tls world\n", "TLS WORLD\n");
    cr_assert_str_eq(seen.sni, "localhost", "SNI seen by the server");
    cr_assert_str_eq(seen.alpn, "h2");
    cr_assert_str_eq(seen.version, "TLSv1.3");
    cr_assert_not(seen.verified, "no client certificate was asked for");
    cr_assert_str_eq(seen.subject, "(none)");

    /* clean shutdown, both ways: our close_notify ends the server's loop
     * as a plain end of stream; its close_notify ends ours */
    cr_assert_eq(co_stream_write_eof(s), 0, "%s", co_io_error());
    char buf[64];
    ssize_t n = co_stream_readline(s, buf, sizeof buf);
    cr_assert_eq(n, 4, "%s: %s", co_err_name((int)n), co_io_error());
    cr_assert_eq(memcmp(buf, "BYE\n", 4), 0);
    n = co_stream_read(s, buf, sizeof buf);
    cr_assert_eq(n, 0, "a clean end of stream, not %s: %s", co_err_name((int)n), co_io_error());
    cr_assert(co_stream_at_eof(s));
    cr_assert_eq(seen.end_rc, 0, "the server read a plain end of stream (readline: 0): %s", co_err_name(seen.end_rc));
    cr_assert(seen.at_eof);
    cr_assert_eq(co_stream_close(s), 0, "%s", co_io_error());
    cr_assert_eq(co_server_close(srv, CO_SERVER_WAIT), 0);
    cr_assert_eq(seen.conns, 1);
    return NULL;
}

Test(tls, round_trip_verified_with_alpn_sni_and_clean_shutdown) { run_ok(round_trip, NULL); }

static void *ip_host(void *arg) {
    co_tls_ctx *sctx = server_ctx("srv.pem", NULL);
    int port;
    co_server *srv = start_server(sctx, echo_upper, &port);
    co_tls_ctx *cctx = trusting_client(NULL);

    co_stream *s = NULL;
    int rc = connect_tls(cctx, "127.0.0.1", port, NULL, &s);
    cr_assert_eq(rc, 0, "an address is checked against the IP names: %s", co_io_error());
    cr_assert_null(co_tls_alpn(s), "no ALPN offered");
    exchange(s, "ip\n", "IP\n");
    cr_assert_str_eq(seen.sni, "(none)", "no SNI for an address (RFC 6066)");
    cr_assert_str_eq(seen.alpn, "(none)");
    co_stream_close(s);

    char msg[512], want[256];
    rc = failing_connect(cctx, "127.0.0.1", port, "127.0.0.2", msg, sizeof msg);
    cr_assert_eq(rc, -CO_ETLS, "%s", co_err_name(rc));
    snprintf(want, sizeof want,
             "TLS handshake with 127.0.0.2:%d failed: certificate verify failed (IP address mismatch)", port);
    cr_assert_str_eq(msg, want);

    finish(cctx, sctx, srv);
    return NULL;
}

Test(tls, ip_address_verified_without_sni) { run_ok(ip_host, NULL); }

/* ---- verification failures ----------------------------------------------------------- */

typedef struct {
    const char *cert;       /* the server's */
    const char *want;       /* the end of the client's sentence */
    bool system_store;      /* the client trusts only the system store */
} bad_case;

static void *bad_cert(void *arg) {
    bad_case *bc = arg;
    co_tls_ctx *sctx = server_ctx(bc->cert, NULL);
    int port;
    co_server *srv = start_server(sctx, echo_upper, &port);
    co_tls_ctx *cctx = bc->system_store ? client_ctx(NULL) : trusting_client(NULL);
    char msg[512], want[512];
    int rc = failing_connect(cctx, "127.0.0.1", port, "localhost", msg, sizeof msg);
    cr_assert_eq(rc, -CO_ETLS, "%s: %s", co_err_name(rc), msg);
    snprintf(want, sizeof want, "TLS handshake with localhost:%d failed: certificate verify failed (%s)", port,
             bc->want);
    cr_assert_str_eq(msg, want);
    cr_assert_str_eq(co_strerror(rc), "TLS handshake or protocol failure");
    finish(cctx, sctx, srv);
    cr_assert_eq(seen.conns, 0, "the server's handler never ran");
    return NULL;
}

Test(tls, wrong_host_is_a_clear_error) {
    bad_case bc = {"other.pem", "hostname mismatch", false};
    run_ok(bad_cert, &bc);
}

Test(tls, expired_certificate_is_a_clear_error) {
    bad_case bc = {"expired.pem", "certificate has expired", false};
    run_ok(bad_cert, &bc);
}

Test(tls, untrusted_ca_is_a_clear_error) {
    bad_case bc = {"untrusted.pem", "unable to get local issuer certificate", false};
    run_ok(bad_cert, &bc);
}

Test(tls, default_context_trusts_the_system_store_not_the_test_ca) {
    bad_case bc = {"srv.pem", "unable to get local issuer certificate", true};
    run_ok(bad_cert, &bc);
}

static void *insecure(void *arg) {
    co_tls_ctx *sctx = server_ctx("untrusted.pem", NULL);
    int port;
    co_server *srv = start_server(sctx, echo_upper, &port);
    co_tls_opts o = {.insecure_no_verify = true};
    co_tls_ctx *cctx = client_ctx(&o);
    co_stream *s = connected(cctx, "127.0.0.1", port, "other.test"); /* wrong CA, wrong name */
    cr_assert_not(co_tls_peer_verified(s));
    exchange(s, "anyway\n", "ANYWAY\n");
    cr_assert_str_eq(seen.sni, "other.test", "the name still goes out as SNI");
    co_stream_close(s);

    /* with no name at all */
    co_stream *raw = connected(cctx, "127.0.0.1", port, NULL);
    exchange(raw, "x\n", "X\n");
    co_stream_close(raw);
    finish(cctx, sctx, srv);
    return NULL;
}

Test(tls, insecure_option_connects_unverified) { run_ok(insecure, NULL); }

static void *alpn_mismatch(void *arg) {
    co_tls_opts so = {.alpn = "h2"};
    co_tls_ctx *sctx = server_ctx("srv.pem", &so);
    int port;
    co_server *srv = start_server(sctx, echo_upper, &port);
    co_tls_ctx *cctx = trusting_client("spdy/3,http/1.0");
    char msg[512];
    int rc = failing_connect(cctx, "127.0.0.1", port, "localhost", msg, sizeof msg);
    cr_assert_eq(rc, -CO_ETLS, "%s: %s", co_err_name(rc), msg);
    cr_assert(strstr(msg, "TLS handshake with localhost:") && strstr(msg, "no application protocol"), "%s", msg);
    co_tls_ctx_free(cctx);

    /* a client offering nothing gets nothing, and no error */
    cctx = trusting_client(NULL);
    co_stream *s = connected(cctx, "127.0.0.1", port, "localhost");
    cr_assert_null(co_tls_alpn(s));
    exchange(s, "a\n", "A\n");
    co_stream_close(s);
    finish(cctx, sctx, srv);
    return NULL;
}

Test(tls, alpn_without_a_common_protocol_fails) { run_ok(alpn_mismatch, NULL); }

/* ---- client certificates ------------------------------------------------------------ */

static void *mutual(void *arg) {
    co_tls_opts so = {.verify_client = true, .ca_file = P("ca.pem")};
    co_tls_ctx *sctx = server_ctx("srv.pem", &so);
    int port;
    co_server *srv = start_server(sctx, echo_upper, &port);

    co_tls_opts co = {.ca_file = P("ca.pem"), .cert_file = P("cli.pem"), .key_file = P("cli.key")};
    co_tls_ctx *cctx = client_ctx(&co);
    co_stream *s = connected(cctx, "127.0.0.1", port, "localhost");
    exchange(s, "me\n", "ME\n");
    cr_assert(seen.verified, "the server verified our certificate");
    cr_assert_str_eq(seen.subject, "CN=corio client");
    co_stream_close(s);
    co_tls_ctx_free(cctx);

    /* no certificate: in TLS 1.3 the client's handshake is over before the
     * server judges it; its refusal arrives as an alert on the first read */
    cctx = trusting_client(NULL);
    s = connected(cctx, "127.0.0.1", port, "localhost");
    char buf[64];
    ssize_t n = co_stream_read(s, buf, sizeof buf);
    cr_assert_eq(n, -CO_ETLS, "%s: %s", co_err_name((int)n), co_io_error());
    cr_assert(strstr(co_io_error(), "TLS read from localhost:") && strstr(co_io_error(), "certificate required"), "%s",
              co_io_error());
    co_stream_close(s);
    finish(cctx, sctx, srv);
    cr_assert_eq(seen.conns, 1, "the handler ran for the verified client only");
    return NULL;
}

Test(tls, client_certificates) { run_ok(mutual, NULL); }

/* ---- start_tls ------------------------------------------------------------------------- */

static co_tls_ctx *upgrade_ctx; /* the plain server's TLS context */

/* SMTP-like: "STARTTLS" -> "READY" in the clear, then TLS, then echo. With
 * seen.phase == 1 it does not answer, and reads the line late, so that the
 * client's hello sits in the stream's buffer behind it. */
static void starttls_server(co_stream *s, void *arg) {
    if (seen.phase == 1) co_sleep(0.1);
    char line[64];
    ssize_t n = co_stream_readline(s, line, sizeof line);
    if (n != 9 || memcmp(line, "STARTTLS\n", 9) != 0) return;
    if (seen.phase == 0) co_stream_write(s, "READY\n", 6);
    cr_assert_not(co_stream_is_tls(s));
    int rc = co_stream_start_tls(s, upgrade_ctx, NULL);
    cr_assert_eq(rc, 0, "server start_tls: %s: %s", co_err_name(rc), co_io_error());
    echo_upper(s, arg);
}

static void *upgrade(void *arg) {
    seen.phase = *(int *)arg;
    upgrade_ctx = server_ctx("srv.pem", NULL);
    int port;
    co_server *srv = start_server(NULL, starttls_server, &port);
    co_tls_ctx *cctx = trusting_client(NULL);
    co_stream *s = connected(NULL, "127.0.0.1", port, NULL);
    cr_assert_eq(co_stream_write(s, "STARTTLS\n", 9), 0);
    if (seen.phase == 0) {
        char line[64];
        cr_assert_eq(co_stream_readline(s, line, sizeof line), 6);
        cr_assert_eq(memcmp(line, "READY\n", 6), 0);
    }
    int rc = co_stream_start_tls(s, cctx, "localhost");
    cr_assert_eq(rc, 0, "client start_tls: %s: %s", co_err_name(rc), co_io_error());
    co_tls_ctx_free(cctx);
    cr_assert(co_stream_is_tls(s));
    cr_assert(co_tls_peer_verified(s));
    exchange(s, "secret\n", "SECRET\n");
    cr_assert(seen.tls);
    cr_assert_str_eq(seen.sni, "localhost");

    cr_assert_eq(co_stream_start_tls(s, upgrade_ctx, NULL), -EINVAL, "TLS twice");
    cr_assert(strstr(co_io_error(), "TLS already"), "%s", co_io_error());

    cr_assert_eq(co_stream_write_eof(s), 0);
    char buf[16];
    cr_assert_eq(co_stream_readline(s, buf, sizeof buf), 4);
    cr_assert_eq(co_stream_read(s, buf, sizeof buf), 0);
    cr_assert_eq(co_stream_close(s), 0);
    cr_assert_eq(co_server_close(srv, CO_SERVER_WAIT), 0);
    co_tls_ctx_free(upgrade_ctx);
    return NULL;
}

Test(tls, start_tls_upgrades_a_plain_stream) {
    int phase = 0;
    run_ok(upgrade, &phase);
}

Test(tls, start_tls_uses_bytes_read_ahead) {
    int phase = 1;
    run_ok(upgrade, &phase);
}

/* ---- truncation ------------------------------------------------------------------------ */

/* Sends a line, then ends the TCP stream without a close_notify, then
 * waits for the client to go. */
static void truncating(co_stream *s, void *arg) {
    co_stream_write(s, "partial\n", 8);
    co_stream_flush(s);
    shutdown(co_stream_fd(s), SHUT_WR);
    char buf[64];
    while (co_stream_read(s, buf, sizeof buf) > 0) {}
}

static void *truncated(void *arg) {
    bool allow = *(bool *)arg;
    co_tls_ctx *sctx = server_ctx("srv.pem", NULL);
    int port;
    co_server *srv = start_server(sctx, truncating, &port);
    co_tls_opts o = {.ca_file = P("ca.pem"), .allow_truncation = allow};
    co_tls_ctx *cctx = client_ctx(&o);
    co_stream *s = connected(cctx, "127.0.0.1", port, "localhost");
    char buf[64];
    cr_assert_eq(co_stream_readline(s, buf, sizeof buf), 8);
    ssize_t n = co_stream_read(s, buf, sizeof buf);
    if (allow) {
        cr_assert_eq(n, 0, "%s: %s", co_err_name((int)n), co_io_error());
    } else {
        cr_assert_eq(n, -CO_ETLS, "%s", co_err_name((int)n));
        char want[256];
        snprintf(want, sizeof want,
                 "TLS read from localhost:%d failed: stream truncated: the peer closed the connection without a "
                 "TLS close_notify",
                 port);
        cr_assert_str_eq(co_io_error(), want);
        cr_assert_eq(co_stream_read(s, buf, sizeof buf), -CO_ETLS, "and again");
    }
    co_stream_close(s);
    finish(cctx, sctx, srv);
    return NULL;
}

Test(tls, truncated_stream_is_an_error) {
    bool allow = false;
    run_ok(truncated, &allow);
}

Test(tls, truncation_allowed_reads_as_end_of_stream) {
    bool allow = true;
    run_ok(truncated, &allow);
}

/* ---- a large full-duplex transfer --------------------------------------------------- */

#define BIG (6u << 20)

static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + (i >> 13)); }

/* Small send buffers: the transfer meets EAGAIN in the middle of TLS
 * records hundreds of times (WANT_WRITE, retried from the moved and grown
 * output buffer). (Not small receive buffers: loopback TCP itself then
 * crawls, tens of seconds for these 6 MiB, with or without TLS.) */
static void small_buffers(co_stream *s) {
    int small = 8192;
    setsockopt(co_stream_fd(s), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
}

/* Echoes raw bytes back until end of stream. */
static void echo_raw(co_stream *s, void *arg) {
    small_buffers(s);
    static char buf[40000];
    ssize_t n;
    while ((n = co_stream_read(s, buf, sizeof buf)) > 0) {
        if (co_stream_write(s, buf, (size_t)n) < 0 || co_stream_drain(s) < 0) break;
    }
    seen.end_rc = (int)n;
}

static void *big_writer(void *arg) {
    co_stream *s = arg;
    static unsigned char chunk[100000];
    size_t off = 0;
    while (off < BIG) {
        size_t k = BIG - off < sizeof chunk ? BIG - off : sizeof chunk;
        for (size_t i = 0; i < k; i++) chunk[i] = pattern(off + i);
        cr_assert_eq(co_stream_write(s, chunk, k), 0, "%s", co_io_error());
        cr_assert_eq(co_stream_drain(s), 0, "%s", co_io_error());
        off += k;
    }
    cr_assert_eq(co_stream_write_eof(s), 0, "%s", co_io_error());
    return NULL;
}

static void *big(void *arg) {
    co_tls_ctx *sctx = server_ctx("srv.pem", NULL);
    int port;
    co_server *srv = start_server(sctx, echo_raw, &port);
    co_tls_ctx *cctx = trusting_client(NULL);
    co_stream *s = connected(cctx, "127.0.0.1", port, "localhost");
    small_buffers(s);
    co_task *w = co_spawn(big_writer, s);
    static unsigned char buf[70000];
    size_t got = 0;
    ssize_t n;
    while ((n = co_stream_read(s, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pattern(got + (size_t)i)) cr_assert_fail("byte %zu differs", got + (size_t)i);
        got += (size_t)n;
    }
    cr_assert_eq(n, 0, "%s: %s", co_err_name((int)n), co_io_error());
    cr_assert_eq(got, BIG);
    cr_assert_eq(co_join(w, NULL), 0);
    co_task_release(w);
    cr_assert_eq(seen.end_rc, 0, "the server read a clean end: %s", co_err_name(seen.end_rc));
    cr_assert_eq(co_stream_close(s), 0);
    finish(cctx, sctx, srv);
    return NULL;
}

Test(tls, large_full_duplex_transfer) { run_ok(big, NULL); }

/* ---- a peer that never answers ------------------------------------------------------- */

static int silent_port;   /* a listener nobody accepts on: the kernel completes TCP, no TLS ever */
static co_tls_ctx *silent_ctx;
static int silent_rc;

static int silent_listener(void) {
    int lfd;
    cr_assert_eq(co_tcp_listen("127.0.0.1", "0", NULL, &lfd), 0, "%s", co_io_error());
    silent_port = co_sock_port(lfd);
    return lfd;
}

static void *hello_into_void(void *arg) {
    int fd;
    char port[16];
    snprintf(port, sizeof port, "%d", silent_port);
    cr_assert_eq(co_tcp_connect("127.0.0.1", port, NULL, &fd), 0, "%s", co_io_error());
    co_stream *s;
    cr_assert_eq(co_stream_open(fd, NULL, &s), 0);
    silent_rc = co_stream_start_tls(s, silent_ctx, "localhost");
    co_stream_close(s);
    return NULL;
}

static void *cancel_handshake(void *arg) {
    int lfd = silent_listener();
    silent_ctx = trusting_client(NULL);
    int rc = tu_cancel_after(hello_into_void, NULL, 0.2);
    cr_assert_eq(rc, -ECANCELED, "%s", co_err_name(rc));
    cr_assert_eq(silent_rc, -ECANCELED, "%s", co_err_name(silent_rc));
    cr_assert(strstr(co_io_error(), "TLS handshake with localhost:"), "%s", co_io_error());
    co_tls_ctx_free(silent_ctx);
    co_close(lfd);
    return NULL;
}

Test(tls, cancelled_handshake_returns_ecanceled_and_leaks_nothing) { run_ok(cancel_handshake, NULL); }

static void *timeout_handshake(void *arg) {
    int lfd = silent_listener();
    co_tls_opts o = {.ca_file = P("ca.pem"), .handshake_timeout = 0.2};
    silent_ctx = client_ctx(&o);
    double t0 = co_time();
    hello_into_void(NULL);
    cr_assert_eq(silent_rc, -ETIMEDOUT, "%s", co_err_name(silent_rc));
    cr_assert_geq(co_time() - t0, 0.19);
    cr_assert(strstr(co_io_error(), "timed out (handshake_timeout 0.2 s)"), "%s", co_io_error());
    co_tls_ctx_free(silent_ctx);

    /* co_open_connection's timeout covers the handshake */
    co_tls_ctx *cctx = trusting_client(NULL);
    char port[16];
    snprintf(port, sizeof port, "%d", silent_port);
    co_connect_opts co = {.tls = cctx, .tls_host = "localhost", .timeout = 0.2};
    co_stream *s = NULL;
    t0 = co_time();
    int rc = co_open_connection("127.0.0.1", port, &co, &s);
    cr_assert_eq(rc, -ETIMEDOUT, "%s: %s", co_err_name(rc), co_io_error());
    cr_assert_null(s);
    cr_assert_geq(co_time() - t0, 0.19);
    char want[128];
    snprintf(want, sizeof want, "TLS connection to 127.0.0.1:%s timed out after 0.2 s", port);
    cr_assert_str_eq(co_io_error(), want);
    co_tls_ctx_free(cctx);
    co_close(lfd);
    return NULL;
}

Test(tls, handshake_timeouts) { run_ok(timeout_handshake, NULL); }

/* A server's handshake_timeout drops a client that never speaks. */
static void *silent_client(void *arg) {
    co_tls_opts so = {.handshake_timeout = 0.2};
    co_tls_ctx *sctx = server_ctx("srv.pem", &so);
    int port;
    co_server *srv = start_server(sctx, echo_upper, &port);
    co_tls_ctx_free(sctx);
    co_stream *s = NULL;
    cr_assert_eq(connect_tls(NULL, "127.0.0.1", port, NULL, &s), 0, "%s", co_io_error());
    double t0 = co_time();
    char buf[16];
    ssize_t n = co_stream_read(s, buf, sizeof buf); /* we say nothing; the server gives up */
    cr_assert(n == 0 || n == -ECONNRESET, "%s", co_err_name((int)n));
    cr_assert_geq(co_time() - t0, 0.19);
    cr_assert_eq(co_server_nconns(srv), 0);
    cr_assert_eq(seen.conns, 0, "the handler never ran");
    co_stream_close(s);
    cr_assert_eq(co_server_close(srv, CO_SERVER_WAIT), 0);
    return NULL;
}

Test(tls, server_drops_a_client_that_never_speaks) { run_ok(silent_client, NULL); }

static void *blocked_reader(void *arg) {
    char b[8];
    co_stream_read(arg, b, sizeof b);
    return NULL;
}

static void *busy(void *arg) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    co_stream *s;
    cr_assert_eq(co_stream_open(sv[0], NULL, &s), 0);
    co_tls_ctx *cctx = trusting_client(NULL);
    co_task *r = co_spawn(blocked_reader, s);
    co_sleep(0.01);
    cr_assert_eq(co_stream_start_tls(s, cctx, "localhost"), -EBUSY);
    cr_assert(strstr(co_io_error(), "another task is reading"), "%s", co_io_error());
    co_cancel(r, NULL);
    co_join(r, NULL);
    co_task_release(r);
    co_stream_close(s);
    close(sv[1]);
    co_tls_ctx_free(cctx);
    return NULL;
}

Test(tls, start_tls_while_another_task_reads_is_ebusy) { run_ok(busy, NULL); }

/* ---- real OpenSSL peers ---------------------------------------------------------------- */

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts argv with stdin from `in` (NULL: /dev/null), stdout and stderr into `out`. */
static pid_t spawn(char *const argv[], const char *in, const char *out) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in ? in : "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    extern char **environ;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    cr_assert_eq(rc, 0, "spawn %s: %s", argv[0], strerror(rc));
    peer_pid = pid;
    return pid;
}

/* Waits (without blocking the loop) up to `secs` for pid; its wait status, or -1. */
static int reap(pid_t pid, double secs) {
    double end = co_time() + secs;
    for (;;) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            peer_pid = 0;
            return st;
        }
        if (co_time() >= end) return -1;
        co_sleep(0.02);
    }
}

/* Ends pid if it is still our unreaped child (never a reused pid). */
static void stop(pid_t pid) {
    if (peer_pid != pid || reap(pid, 0) != -1) return;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    peer_pid = 0;
}

static char *slurp(const char *path) {
    static char buf[16384];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    return buf;
}

static void *against_s_server(void *arg) {
    int port = free_port();
    char accept[32];
    snprintf(accept, sizeof accept, "127.0.0.1:%d", port);
    char *argv[] = {"openssl", "s_server", "-accept", accept, "-cert", (char *)P("srv.pem"), "-key",
                    (char *)P("srv.key"), "-alpn", "h2", "-www", "-naccept", "1", NULL};
    pid_t pid = spawn(argv, NULL, P("s_server.log"));

    for (int i = 0; i < 500 && !strstr(slurp(P("s_server.log")), "ACCEPT"); i++) co_sleep(0.01); /* listening */
    co_tls_ctx *cctx = trusting_client("h2");
    co_stream *s = NULL;
    int rc = connect_tls(cctx, "127.0.0.1", port, "localhost", &s);
    cr_assert_eq(rc, 0, "%s: %s\ns_server said:\n%s", co_err_name(rc), co_io_error(), slurp(P("s_server.log")));
    cr_assert_str_eq(co_tls_alpn(s), "h2");
    cr_assert(co_tls_peer_verified(s));
    const char req[] = "GET / HTTP/1.0\r\n\r\n";
    cr_assert_eq(co_stream_write(s, req, sizeof req - 1), 0);
    static char page[65536];
    size_t got = 0;
    ssize_t n;
    while ((n = co_stream_read(s, page + got, sizeof page - 1 - got)) > 0) got += (size_t)n;
    page[got] = 0;
    cr_assert_eq(n, 0, "s_server ends with close_notify: %s: %s", co_err_name((int)n), co_io_error());
    cr_assert(strncmp(page, "HTTP/1.0 200 ok", 15) == 0, "%s", page);
    cr_assert(strstr(page, "TLSv1.3"), "the status page names the protocol:\n%s", page);
    cr_assert_eq(co_stream_close(s), 0);
    int st = reap(pid, 5);
    cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "s_server status %d:\n%s", st,
              slurp(P("s_server.log")));
    cr_assert(strstr(slurp(P("s_server.log")), "ALPN protocols selected: h2"), "%s", slurp(P("s_server.log")));
    stop(pid);
    co_tls_ctx_free(cctx);
    return NULL;
}

Test(tls, corio_client_against_openssl_s_server) { run_ok(against_s_server, NULL); }

/* Answers one line upper-cased and closes (with close_notify). */
static void answer_once(co_stream *s, void *arg) {
    note_conn(s);
    char line[256];
    ssize_t n = co_stream_readline(s, line, sizeof line);
    if (n <= 0) return;
    for (ssize_t i = 0; i < n; i++) line[i] = (char)toupper((unsigned char)line[i]);
    co_stream_write(s, line, (size_t)n);
}

static void *against_s_client(void *arg) {
    co_tls_opts so = {.alpn = "http/1.1,h2"};
    co_tls_ctx *sctx = server_ctx("srv.pem", &so);
    int port;
    co_server *srv = start_server(sctx, answer_once, &port);
    write_file(P("in.txt"), "hello from s_client\n");
    char connect[32];
    snprintf(connect, sizeof connect, "127.0.0.1:%d", port);
    char *argv[] = {"openssl", "s_client", "-connect", connect, "-servername", "localhost", "-CAfile",
                    (char *)P("ca.pem"), "-verify_return_error", "-verify_hostname", "localhost", "-alpn", "h2",
                    "-quiet", NULL};
    pid_t pid = spawn(argv, P("in.txt"), P("s_client.log"));
    int st = reap(pid, 10);
    const char *log = slurp(P("s_client.log"));
    if (st == -1) stop(pid);
    cr_assert(st != -1, "s_client did not finish:\n%s", log);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "s_client status %#x:\n%s", st, log);
    cr_assert(strstr(log, "HELLO FROM S_CLIENT"), "%s", log);
    cr_assert(strstr(log, "verify return:1"), "s_client verified us:\n%s", log);
    cr_assert_eq(seen.conns, 1);
    cr_assert_str_eq(seen.sni, "localhost");
    cr_assert_str_eq(seen.alpn, "h2", "the only one s_client offered");
    cr_assert_str_eq(seen.version, "TLSv1.3");
    co_tls_ctx_free(sctx);
    cr_assert_eq(co_server_close(srv, CO_SERVER_WAIT), 0);
    return NULL;
}

Test(tls, openssl_s_client_against_corio_server) { run_ok(against_s_client, NULL); }

/* ---- contexts and argument errors ------------------------------------------------------ */

Test(tls, context_errors_are_clear) {
    co_tls_ctx *c = (co_tls_ctx *)1;
    co_tls_opts o = {.ca_file = "/nonexistent/ca.pem"};
    cr_assert_eq(co_tls_ctx_new_client(&o, &c), -CO_ETLS);
    cr_assert_null(c);
    cr_assert_str_eq(co_io_error(), "TLS: cannot read CA file /nonexistent/ca.pem: No such file or directory");

    write_file(P("junk.pem"), "not a certificate\n");
    o.ca_file = P("junk.pem");
    cr_assert_eq(co_tls_ctx_new_client(&o, &c), -CO_ETLS);
    cr_assert(strstr(co_io_error(), "TLS: cannot load CA file"), "%s", co_io_error());

    cr_assert_eq(co_tls_ctx_new_server(P("missing.pem"), P("srv.key"), NULL, &c), -CO_ETLS);
    cr_assert(strstr(co_io_error(), "cannot read certificate file") && strstr(co_io_error(), "missing.pem"), "%s",
              co_io_error());
    cr_assert_eq(co_tls_ctx_new_server(P("srv.pem"), P("cli.key"), NULL, &c), -CO_ETLS);
    cr_assert(strstr(co_io_error(), "does not match"), "%s", co_io_error());
    cr_assert_eq(co_tls_ctx_new_server(NULL, NULL, NULL, &c), -EINVAL);

    co_tls_opts bad = {.alpn = "h2,,http/1.1"};
    cr_assert_eq(co_tls_ctx_new_client(&bad, &c), -EINVAL);
    cr_assert(strstr(co_io_error(), "bad ALPN list"), "%s", co_io_error());
    co_tls_opts old = {.min_version = 0x0301};
    cr_assert_eq(co_tls_ctx_new_client(&old, &c), -EINVAL);
    co_tls_opts keyonly = {.key_file = P("cli.key")};
    cr_assert_eq(co_tls_ctx_new_client(&keyonly, &c), -EINVAL);

    /* the good ones, and their references */
    co_tls_opts v13 = {.min_version = CO_TLS1_3, .ca_path = D};
    cr_assert_eq(co_tls_ctx_new_client(&v13, &c), 0, "%s", co_io_error());
    cr_assert_not_null(co_tls_ctx_native(c));
    co_tls_ctx_retain(c);
    co_tls_ctx_free(c);
    co_tls_ctx_free(c);
    co_tls_ctx_free(NULL);
    cr_assert_eq(co_tls_ctx_new_server(P("srv.pem"), P("srv.key"), NULL, &c), 0, "%s", co_io_error());
    co_tls_ctx_free(c);
}

static void *start_tls_errors(void *arg) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    co_stream *s;
    cr_assert_eq(co_stream_open(sv[0], NULL, &s), 0);
    co_tls_ctx *cctx = trusting_client(NULL);
    cr_assert_eq(co_stream_start_tls(NULL, cctx, "x"), -EINVAL);
    cr_assert_eq(co_stream_start_tls(s, NULL, "x"), -EINVAL);
    cr_assert_eq(co_stream_start_tls(s, cctx, NULL), -EINVAL, "no name to verify");
    cr_assert(strstr(co_io_error(), "no host name to verify"), "%s", co_io_error());
    cr_assert_not(co_stream_is_tls(s));
    cr_assert_null(co_tls_alpn(s));
    cr_assert_null(co_tls_version(s));
    cr_assert_null(co_tls_cipher(s));
    cr_assert_null(co_tls_server_name(s));
    cr_assert_not(co_tls_peer_verified(s));
    char b[8];
    cr_assert_eq(co_tls_peer_subject(s, b, sizeof b), -EINVAL);

    /* the peer is not TLS at all: it answers the hello with text */
    write(sv[1], "220 hello, plain text here\r\n", 28);
    int rc = co_stream_start_tls(s, cctx, "localhost");
    cr_assert_eq(rc, -CO_ETLS, "%s: %s", co_err_name(rc), co_io_error());
    cr_assert(strstr(co_io_error(), "wrong version number (is the peer speaking TLS?)"), "%s", co_io_error());
    co_stream_close(s);
    close(sv[1]);

    /* the peer closes during the handshake */
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    cr_assert_eq(co_stream_open(sv[0], NULL, &s), 0);
    close(sv[1]);
    rc = co_stream_start_tls(s, cctx, "localhost");
    cr_assert(rc == -CO_ETLS || rc == -EPIPE || rc == -ECONNRESET, "%s: %s", co_err_name(rc), co_io_error());
    cr_assert(strstr(co_io_error(), "TLS handshake with localhost failed"), "%s", co_io_error());
    co_stream_close(s);
    co_tls_ctx_free(cctx);
    return NULL;
}

Test(tls, start_tls_argument_and_peer_errors) { run_ok(start_tls_errors, NULL); }

Test(tls, start_tls_outside_a_task) {
    co_loop *L = real_loop();
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    co_stream *s;
    cr_assert_eq(co_stream_open(sv[0], NULL, &s), 0);
    co_tls_ctx *cctx = trusting_client(NULL);
    cr_assert_eq(co_stream_start_tls(s, cctx, "localhost"), -CO_ENOTASK);
    co_stream_abort(s);
    close(sv[1]);
    co_tls_ctx_free(cctx);
    tu_close(L);
}
