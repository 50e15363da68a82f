/* tls_none.c — corio/tls.h in a library built without TLS (make
 * CORIO_TLS=0, e.g. a cross build with no OpenSSL for the target): every
 * call says so with -ENOTSUP, the getters answer "not TLS". */
#include "internal.h"

#define CO__NO_TLS "TLS support is not built into this corio (CORIO_TLS=0)"

int co_tls_ctx_new_client(const co_tls_opts *opts, co_tls_ctx **out) {
    if (out) *out = NULL;
    return co__io_fail(-ENOTSUP, CO__NO_TLS);
}

int co_tls_ctx_new_server(const char *cert_file, const char *key_file, const co_tls_opts *opts,
                          co_tls_ctx **out) {
    if (out) *out = NULL;
    return co__io_fail(-ENOTSUP, CO__NO_TLS);
}

void co_tls_ctx_retain(co_tls_ctx *ctx) {}
void co_tls_ctx_free(co_tls_ctx *ctx) {}
void *co_tls_ctx_native(co_tls_ctx *ctx) { return NULL; }

int co_stream_start_tls(co_stream *s, co_tls_ctx *ctx, const char *host) {
    return co__io_fail(-ENOTSUP, CO__NO_TLS);
}

bool co_stream_is_tls(const co_stream *s) { return false; }
const char *co_tls_alpn(const co_stream *s) { return NULL; }
const char *co_tls_version(const co_stream *s) { return NULL; }
const char *co_tls_cipher(const co_stream *s) { return NULL; }
const char *co_tls_server_name(const co_stream *s) { return NULL; }
bool co_tls_peer_verified(const co_stream *s) { return false; }
int co_tls_peer_subject(const co_stream *s, char *buf, size_t n) {
    if (buf && n) buf[0] = 0;
    return -ENOTSUP;
}
