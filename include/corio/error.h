/* corio/error.h — error codes.
 *
 * corio reports errors as negative numbers: plain errno values negated
 * (-ECANCELED, -ETIMEDOUT, -ENOMEM, ...) plus the CO_E* codes below, which
 * live far above any errno so the two never collide. One X-macro list makes
 * the enum, co_strerror() and co_err_name(), so they cannot drift apart.
 */
#ifndef CORIO_ERROR_H
#define CORIO_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CO_API __attribute__((visibility("default")))
#else
#define CO_API
#endif

/* X(name, value, message) */
#define CO_ERRNO_MAP(X)                                                        \
    X(ENOTASK, 4001, "not called from a task (this call can suspend)")         \
    X(ENOLOOP, 4002, "no event loop on this thread")                           \
    X(EWRONGLOOP, 4003, "object belongs to another event loop or thread")      \
    X(ECLOSED, 4004, "event loop or object is closed")                         \
    X(EINVALSTATE, 4005, "invalid state (future already done, or not done)")   \
    X(ESHUTDOWN, 4006, "shut down")                                            \
    X(EINCOMPLETE, 4007, "end of stream before the expected data")             \
    X(ELIMIT, 4008, "limit exceeded")                                          \
    X(ERUNNING, 4009, "event loop is already running")                         \
    X(EBROKEN, 4010, "barrier is broken (aborted, or reset while waiting)")     \
    X(EWORKER, 4011, "a worker process died (crashed, killed or exited)")      \
    X(ETLS, 4012, "TLS handshake or protocol failure")

enum {
#define CO__ERR_ENUM(name, value, msg) CO_##name = (value),
    CO_ERRNO_MAP(CO__ERR_ENUM)
#undef CO__ERR_ENUM
};

/* The message for an error code, errno or CO_E*, of either sign: the
 * -E... an int-returning call returned, or the +E... a pointer-returning
 * call left in errno (which libc's strerror/perror cannot name for CO_E*
 * codes: use these). ETIMEDOUT reads "timed out" (corio's timeouts are
 * timers, not connections). 0 reads "success". Never NULL. */
CO_API const char *co_strerror(int err);
/* The symbolic name, e.g. "ECANCELED", "CO_EWRONGLOOP", for either sign;
 * "OK" for 0, "EUNKNOWN" for a code nobody defines. Never NULL. */
CO_API const char *co_err_name(int err);
/* perror for corio: prints "prefix: message (NAME)" for the current errno
 * on stderr (just "message (NAME)" if prefix is NULL or empty), after a
 * call returned NULL. errno is left as it was. */
CO_API void co_perror(const char *prefix);

#ifdef __cplusplus
}
#endif
#endif
