/* corio/tls.h — TLS on corio streams (asyncio's ssl= and start_tls).
 *
 *   ssl.create_default_context()        -> co_tls_ctx_new_client(NULL, &ctx)
 *   SSLContext(PROTOCOL_TLS_SERVER) +
 *     load_cert_chain(cert, key)        -> co_tls_ctx_new_server(cert, key, &opts, &ctx)
 *   open_connection(..., ssl=ctx)       -> co_open_connection with opts.tls = ctx
 *   start_server(..., ssl=ctx)          -> co_server_start with opts.tls = ctx
 *   StreamWriter.start_tls(ctx, server_hostname=h) -> co_stream_start_tls(s, ctx, h)
 *   get_extra_info("ssl_object").selected_alpn_protocol() -> co_tls_alpn(s)
 *
 * Verification is on by default: a client context trusts the system's CA
 * store and co_stream_start_tls checks the server's certificate against
 * the host name it is given. Turning it off is one explicit option
 * (insecure_no_verify). Built on OpenSSL (1.1.1 or 3.x); TLS 1.2 and 1.3.
 *
 * Ownership: a co_tls_ctx is refcounted and may be shared by any number
 * of streams on any number of loops and threads. co_tls_ctx_new_* return
 * it with one reference; co_tls_ctx_free drops one; every TLS stream holds
 * its own until it is closed, so the creator may free its context as soon
 * as it has started its connections or servers.
 *
 * Errors: -CO_ETLS for a handshake or protocol failure (a certificate
 * that does not verify, an alert from the peer, a peer that does not speak
 * TLS), -errno for a failure of the connection itself (-ECONNRESET,
 * -EPIPE), plus -ECANCELED / -ETIMEDOUT as for any wait. co_io_error()
 * then holds a sentence such as
 *   "TLS handshake with example.test:443 failed: certificate verify failed (certificate has expired)"
 *   "TLS handshake with localhost:4433 failed: certificate verify failed (hostname mismatch)"
 *
 * A library built without TLS (make CORIO_TLS=0) keeps these functions:
 * they return -ENOTSUP (NULL / false for the getters).
 */
#ifndef CORIO_TLS_H
#define CORIO_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* typedef struct co_tls_ctx co_tls_ctx;  (declared in corio/io.h) */

enum { CO_TLS1_2 = 0x0303, CO_TLS1_3 = 0x0304 };

/* Options for both kinds of context; zero-initialise and set what you need
 * (NULL opts: all defaults). */
typedef struct co_tls_opts {
    /* Whom to trust. Client: the CAs that may sign servers; server with
     * verify_client: the CAs that may sign clients. ca_file is a PEM
     * bundle, ca_path a c_rehash'ed directory. Neither: the system store
     * (OpenSSL's default paths; SSL_CERT_FILE / SSL_CERT_DIR override). */
    const char *ca_file;
    const char *ca_path;
    /* Client: do not verify the server at all (any certificate, any name).
     * For tests and debugging only; co_tls_peer_verified then says false. */
    bool insecure_no_verify;
    /* ALPN, comma-separated in order of preference, e.g. "h2,http/1.1".
     * A client offers them; a server picks the first of its own list the
     * client offered (and refuses the handshake with a no_application_protocol
     * alert when the client offered some and none match, as RFC 7301 says).
     * NULL: no ALPN. */
    const char *alpn;
    /* Client: a certificate (PEM chain) and its key, for servers that ask
     * for one. Ignored by co_tls_ctx_new_server (it takes them as arguments). */
    const char *cert_file;
    const char *key_file;
    /* Server: require a client certificate verified against ca_file /
     * ca_path (or the system store). */
    bool verify_client;
    /* Lowest protocol version accepted: 0 means CO_TLS1_2. */
    int min_version;
    /* A peer that closes the connection without a TLS close_notify alert
     * could have had its data cut short by an attacker. By default a read
     * then fails with -CO_ETLS ("truncated"); true makes it a plain end of
     * stream (many HTTP servers close that way; the HTTP framing then
     * tells whether the data was complete). */
    bool allow_truncation;
    /* The longest co_stream_start_tls may take, in seconds, on top of the
     * task's own deadlines: 0 means 60 (asyncio's default), CO_FOREVER none.
     * Bounds a server's handshake with a client that never speaks. */
    double handshake_timeout;
} co_tls_opts;

/* A client context. 0 with *out; -CO_ETLS with co_io_error() naming the
 * file and OpenSSL's reason when a CA file / directory or the client
 * certificate or key cannot be loaded; -EINVAL (a malformed alpn list or
 * min_version); -ENOMEM. */
CO_API int co_tls_ctx_new_client(const co_tls_opts *opts, co_tls_ctx **out);

/* A server context presenting the certificate chain in cert_file (PEM,
 * the leaf first) with the private key in key_file (PEM; NULL: cert_file
 * holds it too). 0 with *out, or the errors of co_tls_ctx_new_client
 * (-CO_ETLS also when the key does not match the certificate). */
CO_API int co_tls_ctx_new_server(const char *cert_file, const char *key_file, const co_tls_opts *opts,
                                 co_tls_ctx **out);

/* Reference counting (any thread). co_tls_ctx_free drops one reference
 * and frees the context with the last; NULL is fine. */
CO_API void co_tls_ctx_retain(co_tls_ctx *ctx);
CO_API void co_tls_ctx_free(co_tls_ctx *ctx);

/* The OpenSSL SSL_CTX behind ctx, for settings not covered above (cipher
 * lists, session caches, a server's SNI callback). Change it before the
 * first handshake that uses it. */
CO_API void *co_tls_ctx_native(co_tls_ctx *ctx);

/* Runs the TLS handshake on an open stream and, when it succeeds, makes
 * every later read and write on s go through TLS (STARTTLS, or a stream
 * made from a plain fd). From a task: it suspends during the handshake.
 *   ctx a client context: s is the client; host is the name sent as SNI
 *       and checked against the server's certificate (a DNS name or an
 *       IP address; an address is checked but not sent as SNI). host may
 *       be NULL only with insecure_no_verify.
 *   ctx a server context: s is the server; host is ignored.
 * What was queued for writing is flushed first, in the clear. Bytes the
 * stream had already read past the plaintext exchange (a client sending
 * its hello right behind "STARTTLS") are fed to the handshake, not lost.
 * No other task may read from or write to s meanwhile (a read or drain
 * then gets -EBUSY, a write -CO_ECLOSED).
 * Returns 0, or:
 *   -CO_ETLS     the handshake failed: verification (why, in
 *                co_io_error: "hostname mismatch", "certificate has
 *                expired", "unable to get local issuer certificate"...),
 *                an alert from the peer, no common protocol version or
 *                ALPN protocol, or a peer that does not speak TLS
 *   -ECONNRESET, -EPIPE, ...  the connection failed
 *   -ECANCELED, -ETIMEDOUT  cancelled, a deadline, or handshake_timeout
 *   -EINVAL      s or ctx NULL, s already TLS, or host NULL while verifying
 *   -EBUSY       another task is reading or draining s
 *   -CO_ENOTASK  not called from a task; -CO_EWRONGLOOP s is another loop's
 *   -ENOMEM
 * On failure s stays a plain stream in an unknown protocol state: close it. */
CO_API int co_stream_start_tls(co_stream *s, co_tls_ctx *ctx, const char *host);

/* ---- what was negotiated (NULL / false for a stream that is not TLS) ---------- */

/* Is s a TLS stream (a handshake completed on it)? */
CO_API bool co_stream_is_tls(const co_stream *s);
/* The ALPN protocol agreed ("h2"), or NULL if none. */
CO_API const char *co_tls_alpn(const co_stream *s);
/* "TLSv1.3", "TLSv1.2". */
CO_API const char *co_tls_version(const co_stream *s);
/* The cipher suite, e.g. "TLS_AES_256_GCM_SHA384". */
CO_API const char *co_tls_cipher(const co_stream *s);
/* The SNI name: the one a client sent, or the one a server received
 * (NULL if none). */
CO_API const char *co_tls_server_name(const co_stream *s);
/* Did the peer present a certificate that was verified? A client: true
 * unless insecure_no_verify. A server: true for a verified client
 * certificate (verify_client). */
CO_API bool co_tls_peer_verified(const co_stream *s);
/* The subject of the peer's certificate, one line ("CN=localhost,O=..."),
 * into buf (always terminated). 0, or -ENOENT (no certificate), -EINVAL. */
CO_API int co_tls_peer_subject(const co_stream *s, char *buf, size_t n);

#ifdef __cplusplus
}
#endif

#endif
