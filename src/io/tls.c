/* tls.c — TLS over OpenSSL: contexts (co_tls_ctx), the handshake on an
 * open stream (co_stream_start_tls) and the "tls" transport the stream
 * moves its bytes through afterwards.
 *
 * OpenSSL never touches the fd itself: its SSL object reads and writes
 * through a BIO of ours that calls recv / send (MSG_NOSIGNAL: never a
 * SIGPIPE) on the non-blocking fd and notes the errno and whether it saw
 * end of stream. So OpenSSL never blocks, its WANT_READ / WANT_WRITE
 * become -EAGAIN with *want (the BIO met EAGAIN in that direction, which
 * is what the edge-triggered fd waits need), and failures are reported by
 * their real cause rather than as OpenSSL's "syscall failure".
 *
 * Threads: a stream's TLS state is used on its loop's thread only. A
 * context is shared freely (OpenSSL's SSL_CTX is thread-safe once set up;
 * our reference count is atomic). OpenSSL's error queue is per thread and
 * shared by every SSL object on it, so every SSL_* call here starts with
 * ERR_clear_error and the failure paths leave the queue empty.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "internal.h"

/* allow_truncation: OpenSSL 3 turns such an EOF into a clean one itself;
 * before 3.0 it reports a bare SSL_ERROR_SYSCALL, handled in co__tls_check. */
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
#define CO__OP_TRUNCATION SSL_OP_IGNORE_UNEXPECTED_EOF
#else
#define CO__OP_TRUNCATION 0
#endif

struct co_tls_ctx {
    SSL_CTX *ssl;
    atomic_uint refs;
    bool server;
    bool allow_trunc;
    double hs_timeout;       /* seconds; CO_FOREVER: none */
    unsigned char *alpn;     /* server: its list, wire format (length-prefixed) */
    size_t alpn_len;
};

/* A TLS stream's state (s->tr_state once the handshake is done). */
typedef struct co__tls {
    SSL *ssl;
    co_tls_ctx *ctx;          /* one reference held */
    co_stream *s;
    const co__transport *inner; /* the transport TLS replaced, and its state */
    void *inner_state;
    co__buf pre;              /* bytes the stream had read before the handshake:
                                 the BIO hands them out first */
    int sys_err;              /* errno of the BIO's last failed recv / send (0: none) */
    bool is_sock;             /* recv / send; else read / write (a pipe, a tty) */
    bool bio_eof;             /* recv returned 0 */
    bool dead;                /* a fatal error: no SSL call but SSL_free; reads return `err` */
    int err;
    bool established;         /* the handshake completed */
    bool sent_close;          /* close_notify went out */
    bool verified;
    char alpn[256];
    char name[300];           /* "host:port", or the stream's peer: for messages */
} co__tls;

static const co__transport co__tls_transport;

/* ---- the BIO ------------------------------------------------------------------------- */

static int co__bio_write(BIO *b, const char *buf, size_t n, size_t *done) {
    co__tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    for (;;) {
        ssize_t r = t->is_sock ? send(t->s->fd, buf, n, MSG_NOSIGNAL) : write(t->s->fd, buf, n);
        if (r >= 0) {
            *done = (size_t)r;
            return 1;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(b);
        else t->sys_err = errno;
        *done = 0;
        return 0;
    }
}

static int co__bio_read(BIO *b, char *buf, size_t n, size_t *done) {
    co__tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    *done = 0;
    if (co__buf_len(&t->pre)) {
        *done = co__buf_take(&t->pre, buf, n);
        if (!co__buf_len(&t->pre)) co__buf_free(&t->pre);
        return 1;
    }
    for (;;) {
        ssize_t r = t->is_sock ? recv(t->s->fd, buf, n, 0) : read(t->s->fd, buf, n);
        if (r > 0) {
            *done = (size_t)r;
            return 1;
        }
        if (r == 0) {
            t->bio_eof = true;
            return 0;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_read(b);
        else t->sys_err = errno;
        return 0;
    }
}

static long co__bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    co__tls *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1; /* nothing buffered here */
    case BIO_CTRL_EOF: return t && t->bio_eof && !co__buf_len(&t->pre);
    default: return 0;
    }
}

static BIO_METHOD *co__bio_method;
static void co__bio_method_init(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "corio fd");
    if (!m) return;
    BIO_meth_set_write_ex(m, co__bio_write);
    BIO_meth_set_read_ex(m, co__bio_read);
    BIO_meth_set_ctrl(m, co__bio_ctrl);
    co__bio_method = m;
}

/* ---- errors --------------------------------------------------------------------------- */

/* What went wrong after an SSL_* call returned r <= 0:
 *   -EAGAIN with *want      retry when the fd is ready (not an error)
 *   0                       the peer's close_notify (a clean end of stream)
 *   < 0                     a failure; co_io_error says "TLS <what> <name>
 *                           failed: <why>", and the SSL object is dead
 * Leaves OpenSSL's error queue empty. */
static int co__tls_check(co__tls *t, int r, int *want, const char *what) {
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *want = e == SSL_ERROR_WANT_READ ? CO_READ : CO_WRITE;
        return -EAGAIN;
    }
    if (e == SSL_ERROR_ZERO_RETURN) return 0;

    unsigned long q = ERR_peek_last_error();
    int reason = ERR_GET_LIB(q) == ERR_LIB_SSL ? ERR_GET_REASON(q) : 0;
    char why[256];
    int err = -CO_ETLS;
    bool handshake = !t->established;
    if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        long v = SSL_get_verify_result(t->ssl);
        snprintf(why, sizeof why, "certificate verify failed (%s)", X509_verify_cert_error_string(v));
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
    } else if (q && reason != SSL_R_UNEXPECTED_EOF_WHILE_READING && e == SSL_ERROR_SSL) {
#else
    } else if (q && e == SSL_ERROR_SSL) {
#endif
        const char *rs = ERR_reason_error_string(q);
        if (!rs) snprintf(why, sizeof why, "OpenSSL error %lx", q);
        else if (reason > SSL_AD_REASON_OFFSET) /* an alert the peer sent: it refused us */
            snprintf(why, sizeof why, "the peer refused (%s)", rs);
        else snprintf(why, sizeof why, "%s", rs);
        if (reason == SSL_R_WRONG_VERSION_NUMBER && handshake)
            snprintf(why + strlen(why), sizeof why - strlen(why), " (is the peer speaking TLS?)");
    } else if (t->sys_err) {
        err = -t->sys_err;
        snprintf(why, sizeof why, "%s", strerror(t->sys_err));
    } else if (t->bio_eof || e == SSL_ERROR_SSL) {
        if (handshake) snprintf(why, sizeof why, "the peer closed the connection during the handshake");
        else if (t->ctx->allow_trunc) {
            ERR_clear_error();
            t->dead = true;
            t->err = 0;
            return 0; /* allow_truncation: a plain end of stream */
        } else
            snprintf(why, sizeof why,
                     "stream truncated: the peer closed the connection without a TLS close_notify");
    } else {
        snprintf(why, sizeof why, "unexpected OpenSSL state (SSL_get_error %d)", e);
    }
    ERR_clear_error();
    t->dead = true;
    t->err = err;
    return co__io_fail(err, "TLS %s %s failed: %s", what, t->name, why);
}

/* ---- the transport ------------------------------------------------------------------ */

static ssize_t co__tls_read(co_stream *s, void *buf, size_t n, int *want) {
    co__tls *t = s->tr_state;
    if (t->dead) return t->err;
    ERR_clear_error();
    t->sys_err = 0;
    size_t got = 0;
    int r = SSL_read_ex(t->ssl, buf, n, &got);
    if (r == 1) return (ssize_t)got;
    return co__tls_check(t, r, want, "read from");
}

static ssize_t co__tls_write(co_stream *s, const void *buf, size_t n, int *want) {
    co__tls *t = s->tr_state;
    if (t->dead) return t->err ? t->err : -EPIPE;
    ERR_clear_error();
    t->sys_err = 0;
    size_t put = 0;
    int r = SSL_write_ex(t->ssl, buf, n, &put);
    if (r == 1) return (ssize_t)put;
    int rc = co__tls_check(t, r, want, "write to");
    return rc == 0 ? -EPIPE : rc;
}

/* Sends close_notify (without waiting for the peer's), then ends the
 * socket's sending side, so a peer reading until end of stream sees it. */
static int co__tls_shutdown(co_stream *s, int *want) {
    co__tls *t = s->tr_state;
    if (!t->dead && !t->sent_close) {
        ERR_clear_error();
        t->sys_err = 0;
        int r = SSL_shutdown(t->ssl);
        if (r < 0) {
            int rc = co__tls_check(t, r, want, "shutdown with");
            if (rc == -EAGAIN) return rc;
            if (rc < 0) return rc;
        }
        t->sent_close = true;
    }
    if (t->is_sock && shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN) return -errno;
    return 0;
}

static void co__tls_free_state(co__tls *t) {
    if (!t) return;
    SSL_free(t->ssl); /* and the BIO */
    co_tls_ctx_free(t->ctx);
    co__buf_free(&t->pre);
    free(t);
}

static void co__tls_free(co_stream *s) {
    co__tls *t = s->tr_state;
    const co__transport *inner = t->inner;
    s->tr_state = t->inner_state;
    co__tls_free_state(t);
    if (inner && inner->free) inner->free(s);
    s->tr_state = NULL;
}

static const co__transport co__tls_transport = {
    .read = co__tls_read,
    .write = co__tls_write,
    .shutdown = co__tls_shutdown,
    .free = co__tls_free,
    .name = "tls",
};

/* ---- contexts ------------------------------------------------------------------------ */

/* "h2,http/1.1" -> "\2h2\10http/1.1". 0 or -EINVAL. */
static int co__alpn_wire(const char *list, unsigned char **out, size_t *outlen) {
    size_t n = strlen(list);
    unsigned char *w = malloc(n + 1);
    if (!w) return -ENOMEM;
    size_t len = 0;
    const char *p = list;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t k = c ? (size_t)(c - p) : strlen(p);
        if (k == 0 || k > 255) {
            free(w);
            return -EINVAL;
        }
        w[len++] = (unsigned char)k;
        memcpy(w + len, p, k);
        len += k;
        if (!c) break;
        p = c + 1;
    }
    *out = w;
    *outlen = len;
    return 0;
}

/* The server picks the first protocol of its own list that the client
 * offered (RFC 7301: no overlap is a fatal no_application_protocol). */
static int co__alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                           unsigned int inlen, void *arg) {
    const co_tls_ctx *c = arg;
    for (size_t i = 0; i < c->alpn_len; i += 1u + c->alpn[i]) {
        unsigned k = c->alpn[i];
        for (unsigned j = 0; j < inlen && j + 1u + in[j] <= inlen; j += 1u + in[j]) {
            if (in[j] == k && memcmp(in + j + 1, c->alpn + i + 1, k) == 0) {
                *out = in + j + 1;
                *outlen = (unsigned char)k;
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* OpenSSL's reason for the failure just seen, then an empty error queue. */
static const char *co__ssl_reason(char *buf, size_t n) {
    unsigned long q = ERR_peek_last_error();
    const char *rs = q ? ERR_reason_error_string(q) : NULL;
    if (rs) snprintf(buf, n, "%s", rs);
    else if (q) snprintf(buf, n, "OpenSSL error %lx", q);
    else snprintf(buf, n, "unknown OpenSSL failure");
    ERR_clear_error();
    return buf;
}

/* A file OpenSSL will be asked to read: a clear message if it cannot be. */
static int co__check_file(const char *what, const char *path) {
    if (access(path, R_OK) == 0) return 0;
    return co__io_fail(-CO_ETLS, "TLS: cannot read %s %s: %s", what, path, strerror(errno));
}

static int co__tls_ctx_new(bool server, const char *cert, const char *key, const co_tls_opts *opts,
                           co_tls_ctx **out) {
    static const co_tls_opts none;
    const co_tls_opts *o = opts ? opts : &none;
    char why[256];
    int rc = 0;
    if (!out) return co__io_fail(-EINVAL, "TLS: no place for the context");
    *out = NULL;
    int minv = o->min_version ? o->min_version : CO_TLS1_2;
    if (minv != CO_TLS1_2 && minv != CO_TLS1_3)
        return co__io_fail(-EINVAL, "TLS: min_version %#x is not CO_TLS1_2 or CO_TLS1_3", (unsigned)minv);

    co_tls_ctx *c = calloc(1, sizeof *c);
    if (!c) return co__io_fail(-ENOMEM, "TLS: out of memory");
    atomic_init(&c->refs, 1);
    c->server = server;
    if (isnan(o->handshake_timeout)) {
        free(c);
        return co__io_fail(-EINVAL, "TLS: handshake_timeout is NaN");
    }
    c->hs_timeout = o->handshake_timeout == 0 ? 60 : o->handshake_timeout;
    ERR_clear_error();
    c->ssl = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!c->ssl) {
        rc = co__io_fail(-ENOMEM, "TLS: SSL_CTX_new failed: %s", co__ssl_reason(why, sizeof why));
        goto fail;
    }
    SSL_CTX_set_min_proto_version(c->ssl, minv);
    /* The stream retries a write with its output buffer, which may have
     * moved (realloc) and grown since: both modes are needed for that. */
    SSL_CTX_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                 SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(c->ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* read whole socket buffers, not a record header then its body: the
     * stream always tries a read before it waits, so nothing buffered in
     * OpenSSL can be missed */
    SSL_CTX_set_read_ahead(c->ssl, 1);
    c->allow_trunc = o->allow_truncation;
    if (o->allow_truncation) SSL_CTX_set_options(c->ssl, CO__OP_TRUNCATION);

    bool verify = server ? o->verify_client : !o->insecure_no_verify;
    if (verify) {
        if (o->ca_file && (rc = co__check_file("CA file", o->ca_file))) goto fail;
        if (o->ca_file || o->ca_path) {
            if (SSL_CTX_load_verify_locations(c->ssl, o->ca_file, o->ca_path) != 1) {
                rc = co__io_fail(-CO_ETLS, "TLS: cannot load CA %s %s: %s", o->ca_file ? "file" : "directory",
                                 o->ca_file ? o->ca_file : o->ca_path, co__ssl_reason(why, sizeof why));
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(c->ssl) != 1) {
            rc = co__io_fail(-CO_ETLS, "TLS: cannot load the system CA store: %s",
                             co__ssl_reason(why, sizeof why));
            goto fail;
        }
    }
    if (server) {
        SSL_CTX_set_verify(c->ssl, verify ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_NONE,
                           NULL);
        /* resumed sessions must carry the same verification: an id context is required */
        static const unsigned char sid[] = "corio";
        SSL_CTX_set_session_id_context(c->ssl, sid, sizeof sid - 1);
        if (verify && o->ca_file) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca_file);
            if (names) SSL_CTX_set_client_CA_list(c->ssl, names);
            ERR_clear_error();
        }
    } else {
        SSL_CTX_set_verify(c->ssl, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    }

    if (o->alpn) {
        unsigned char *w;
        size_t wlen;
        if ((rc = co__alpn_wire(o->alpn, &w, &wlen))) {
            rc = co__io_fail(rc, "TLS: bad ALPN list \"%s\" (comma-separated names of 1 to 255 bytes)", o->alpn);
            goto fail;
        }
        if (server) {
            c->alpn = w;
            c->alpn_len = wlen;
            SSL_CTX_set_alpn_select_cb(c->ssl, co__alpn_select, c);
        } else {
            int r = SSL_CTX_set_alpn_protos(c->ssl, w, (unsigned)wlen); /* 0 is success */
            free(w);
            if (r != 0) {
                rc = co__io_fail(-ENOMEM, "TLS: cannot set ALPN: %s", co__ssl_reason(why, sizeof why));
                goto fail;
            }
        }
    }

    if (!server) {
        cert = o->cert_file;
        key = o->key_file;
    }
    if (cert) {
        if (!key) key = cert;
        if ((rc = co__check_file("certificate file", cert)) || (rc = co__check_file("key file", key))) goto fail;
        if (SSL_CTX_use_certificate_chain_file(c->ssl, cert) != 1) {
            rc = co__io_fail(-CO_ETLS, "TLS: cannot load certificate %s: %s", cert, co__ssl_reason(why, sizeof why));
            goto fail;
        }
        if (SSL_CTX_use_PrivateKey_file(c->ssl, key, SSL_FILETYPE_PEM) != 1) {
            unsigned long q = ERR_peek_last_error();
            if (ERR_GET_LIB(q) == ERR_LIB_X509 && ERR_GET_REASON(q) == X509_R_KEY_VALUES_MISMATCH)
                rc = co__io_fail(-CO_ETLS, "TLS: private key %s does not match certificate %s", key, cert);
            else
                rc = co__io_fail(-CO_ETLS, "TLS: cannot load private key %s: %s", key, co__ssl_reason(why, sizeof why));
            goto fail;
        }
        if (SSL_CTX_check_private_key(c->ssl) != 1) {
            rc = co__io_fail(-CO_ETLS, "TLS: private key %s does not match certificate %s: %s", key, cert,
                             co__ssl_reason(why, sizeof why));
            goto fail;
        }
    } else if (server) {
        rc = co__io_fail(-EINVAL, "TLS: a server context needs a certificate file");
        goto fail;
    } else if (key) {
        rc = co__io_fail(-EINVAL, "TLS: key_file %s given without cert_file", key);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    ERR_clear_error();
    SSL_CTX_free(c->ssl);
    free(c->alpn);
    free(c);
    return rc;
}

int co_tls_ctx_new_client(const co_tls_opts *opts, co_tls_ctx **out) {
    return co__tls_ctx_new(false, NULL, NULL, opts, out);
}

int co_tls_ctx_new_server(const char *cert_file, const char *key_file, const co_tls_opts *opts,
                          co_tls_ctx **out) {
    if (!cert_file) return co__io_fail(-EINVAL, "TLS: a server context needs a certificate file");
    return co__tls_ctx_new(true, cert_file, key_file, opts, out);
}

void co_tls_ctx_retain(co_tls_ctx *ctx) {
    if (ctx) atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
}

void co_tls_ctx_free(co_tls_ctx *ctx) {
    if (!ctx || atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1) return;
    SSL_CTX_free(ctx->ssl);
    free(ctx->alpn);
    free(ctx);
}

void *co_tls_ctx_native(co_tls_ctx *ctx) { return ctx ? ctx->ssl : NULL; }

/* ---- the handshake ------------------------------------------------------------------- */

static bool co__is_ip(const char *host) {
    unsigned char a[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/* The stream's name for messages (s->peer, filled in as stream.c does). */
static const char *co__peer(co_stream *s) {
    if (!s->peer[0]) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getpeername(s->fd, (struct sockaddr *)&ss, &len) == 0 && len > sizeof(sa_family_t))
            co_sockaddr_str((struct sockaddr *)&ss, len, s->peer, sizeof s->peer);
        else
            snprintf(s->peer, sizeof s->peer, "fd %d", s->fd);
    }
    return s->peer;
}

/* "host:port" ("[v6]:port") with the port the fd is connected to; without
 * a host (a server), the stream's peer. */
static void co__tls_name(co__tls *t, const char *host) {
    co_stream *s = t->s;
    if (!host) {
        snprintf(t->name, sizeof t->name, "%s", co__peer(s));
        return;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int port = 0;
    if (getpeername(s->fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6) port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    bool v6 = strchr(host, ':') != NULL;
    if (port) snprintf(t->name, sizeof t->name, "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "", port);
    else snprintf(t->name, sizeof t->name, "%s", host);
}

/* Sets up the SSL object for the client or the server side. 0 or an error. */
static int co__tls_setup(co__tls *t, const char *host) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, co__bio_method_init);
    char why[256];
    ERR_clear_error();
    if (!co__bio_method || !(t->ssl = SSL_new(t->ctx->ssl)))
        return co__io_fail(-ENOMEM, "TLS handshake with %s: cannot create the connection: %s", t->name,
                           co__ssl_reason(why, sizeof why));
    BIO *b = BIO_new(co__bio_method);
    if (!b) return co__io_fail(-ENOMEM, "TLS handshake with %s: out of memory", t->name);
    BIO_set_data(b, t);
    BIO_set_init(b, 1);
    SSL_set_bio(t->ssl, b, b); /* the SSL owns it now */
    if (t->ctx->server) {
        SSL_set_accept_state(t->ssl);
        return 0;
    }
    SSL_set_connect_state(t->ssl);
    if (!host) return 0;
    bool ip = co__is_ip(host);
    /* RFC 6066: SNI carries DNS names only */
    if (!ip && SSL_set_tlsext_host_name(t->ssl, host) != 1)
        return co__io_fail(-EINVAL, "TLS handshake with %s: bad server name \"%s\": %s", t->name, host,
                           co__ssl_reason(why, sizeof why));
    if (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
        int ok;
        if (ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(vp, host);
        } else {
            X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = X509_VERIFY_PARAM_set1_host(vp, host, 0);
        }
        if (ok != 1)
            return co__io_fail(-EINVAL, "TLS handshake with %s: cannot verify against \"%s\": %s", t->name, host,
                               co__ssl_reason(why, sizeof why));
    }
    return 0;
}

/* The handshake itself: SSL_do_handshake until done, waiting for the fd
 * in the direction OpenSSL asks for. 0 or an error (message set). */
static int co__tls_handshake(co__tls *t, int64_t deadline) {
    co_stream *s = t->s;
    co_loop *L = s->loop;
    for (;;) {
        ERR_clear_error();
        t->sys_err = 0;
        int r = SSL_do_handshake(t->ssl);
        if (r == 1) {
            t->established = true;
            return 0;
        }
        int want = 0;
        int rc = co__tls_check(t, r, &want, "handshake with");
        if (rc == 0)
            return co__io_fail(-CO_ETLS, "TLS handshake with %s failed: the peer closed the connection", t->name);
        if (rc != -EAGAIN) return rc;
        co__fd_clear(L, s->fd, want); /* the BIO met EAGAIN that way */
        rc = co__fd_wait(L, s->fd, want, deadline);
        if (rc == -ETIMEDOUT && deadline != CO__NO_DEADLINE && co_now() >= deadline)
            return co__io_fail(rc, "TLS handshake with %s timed out (handshake_timeout %g s)", t->name,
                               t->ctx->hs_timeout);
        if (rc < 0) return co__io_fail(rc, "TLS handshake with %s: %s", t->name, co_strerror(rc));
    }
}

int co_stream_start_tls(co_stream *s, co_tls_ctx *ctx, const char *host) {
    if (!s || !ctx) return co__io_fail(-EINVAL, "start_tls: %s", s ? "no TLS context" : "no stream");
    int rc = co__stream_check(s, "co_stream_start_tls");
    if (rc) return rc;
    co_task *task;
    if ((rc = co__can_suspend(&task))) return rc;
    co_loop *L = s->loop;
    if (task->loop != L) return co__wrongloop(L, "co_stream_start_tls");
    if (s->tr == &co__tls_transport)
        return co__io_fail(-EINVAL, "start_tls on %s: the stream is TLS already", co__peer(s));
    if (s->wclosed) return co__io_fail(-EINVAL, "start_tls on %s: the stream's sending side is closed", co__peer(s));
    if (s->reading || s->writing)
        return co__io_fail(-EBUSY, "start_tls on %s: another task is reading or writing", co__peer(s));
    if (!ctx->server && !host && (SSL_CTX_get_verify_mode(ctx->ssl) & SSL_VERIFY_PEER))
        return co__io_fail(-EINVAL, "start_tls on %s: no host name to verify the certificate against "
                                    "(give one, or set insecure_no_verify)",
                           co__peer(s));
    if (host && !*host) host = NULL;

    /* what was queued in the clear goes out in the clear, first */
    if ((rc = co__stream_flush(s))) return rc;

    co__tls *t = calloc(1, sizeof *t);
    if (!t) return co__io_fail(-ENOMEM, "start_tls on %s: out of memory", co__peer(s));
    t->s = s;
    t->ctx = ctx;
    co_tls_ctx_retain(ctx);
    t->is_sock = s->is_sock;
    co__tls_name(t, ctx->server ? NULL : host);
    co__stream_take_input(s, &t->pre); /* read ahead of the handshake: the peer's first TLS bytes */
    if ((rc = co__tls_setup(t, host))) {
        co__tls_free_state(t);
        return rc;
    }

    /* Nobody else may use the stream meanwhile: readers and drains get
     * -EBUSY, writers -CO_ECLOSED (a write now would go out in the clear). */
    s->reading = s->writing = s->wclosed = true;
    int64_t deadline;
    co__deadline_in(L, ctx->hs_timeout, &deadline); /* NaN refused when the context was made */
    rc = co__tls_handshake(t, deadline);
    s->reading = s->writing = s->wclosed = false;
    if (rc) {
        co__tls_free_state(t);
        return rc;
    }

    const unsigned char *a;
    unsigned alen;
    SSL_get0_alpn_selected(t->ssl, &a, &alen);
    if (a && alen) {
        memcpy(t->alpn, a, alen < sizeof t->alpn ? alen : sizeof t->alpn - 1);
        t->alpn[alen < sizeof t->alpn ? alen : sizeof t->alpn - 1] = 0;
    }
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
    t->verified = peer && (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) &&
                  SSL_get_verify_result(t->ssl) == X509_V_OK;
#else
    X509 *peer = SSL_get_peer_certificate(t->ssl);
    t->verified = peer && (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) &&
                  SSL_get_verify_result(t->ssl) == X509_V_OK;
    X509_free(peer);
#endif
    t->inner = s->tr;
    t->inner_state = s->tr_state;
    s->tr = &co__tls_transport;
    s->tr_state = t;
    return 0;
}

/* ---- what was negotiated --------------------------------------------------------------- */

static co__tls *co__tls_of(const co_stream *s) {
    return s && s->tr == &co__tls_transport ? s->tr_state : NULL;
}

bool co_stream_is_tls(const co_stream *s) { return co__tls_of(s) != NULL; }

const char *co_tls_alpn(const co_stream *s) {
    co__tls *t = co__tls_of(s);
    return t && t->alpn[0] ? t->alpn : NULL;
}

const char *co_tls_version(const co_stream *s) {
    co__tls *t = co__tls_of(s);
    return t ? SSL_get_version(t->ssl) : NULL;
}

const char *co_tls_cipher(const co_stream *s) {
    co__tls *t = co__tls_of(s);
    return t ? SSL_get_cipher_name(t->ssl) : NULL;
}

const char *co_tls_server_name(const co_stream *s) {
    co__tls *t = co__tls_of(s);
    return t ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

bool co_tls_peer_verified(const co_stream *s) {
    co__tls *t = co__tls_of(s);
    return t && t->verified;
}

int co_tls_peer_subject(const co_stream *s, char *buf, size_t n) {
    co__tls *t = co__tls_of(s);
    if (!t || !buf || !n) return -EINVAL;
    buf[0] = 0;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
#else
    X509 *peer = SSL_get_peer_certificate(t->ssl);
#endif
    if (!peer) return -ENOENT;
    int rc = 0;
    BIO *m = BIO_new(BIO_s_mem());
    if (m && X509_NAME_print_ex(m, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253) >= 0) {
        char *p;
        long len = BIO_get_mem_data(m, &p);
        size_t k = len < 0 ? 0 : (size_t)len < n - 1 ? (size_t)len : n - 1;
        memcpy(buf, p, k);
        buf[k] = 0;
    } else {
        rc = -ENOMEM;
    }
    BIO_free(m);
    ERR_clear_error();
#if OPENSSL_VERSION_NUMBER < 0x30000000L
    X509_free(peer);
#endif
    return rc;
}
