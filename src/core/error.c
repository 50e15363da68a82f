/* error.c — co_strerror / co_err_name / co_perror for errno values and
 * CO_E* codes. Owns the wording users read; depends on nothing but libc.
 *
 * Both signs name the same code: calls returning int give -E..., calls
 * returning a pointer leave +E... in errno, and a user should not have to
 * know which to print it. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "corio.h"

/* The corio message for code e (> 0), or NULL if e is a plain errno. */
static const char *co__own_msg(int e) {
    switch (e) {
#define CO__ERR_MSG(name, value, msg) \
    case value:                       \
        return msg;
        CO_ERRNO_MAP(CO__ERR_MSG)
#undef CO__ERR_MSG
    /* libc says "Connection timed out": corio's timeouts are timers */
    case ETIMEDOUT:
        return "timed out";
    }
    return NULL;
}

const char *co_strerror(int err) {
    if (err == 0) return "success";
    int e = err < 0 ? -err : err;
    if (err == -2147483647 - 1) return "unknown error";
    const char *s = co__own_msg(e);
    if (!s) s = strerrordesc_np(e);
    return s ? s : "unknown error";
}

const char *co_err_name(int err) {
    if (err == 0) return "OK";
    if (err == -2147483647 - 1) return "EUNKNOWN";
    int e = err < 0 ? -err : err;
    switch (e) {
#define CO__ERR_NAME(name, value, msg) \
    case value:                        \
        return "CO_" #name;
        CO_ERRNO_MAP(CO__ERR_NAME)
#undef CO__ERR_NAME
    }
    const char *s = strerrorname_np(e);
    return s ? s : "EUNKNOWN";
}

void co_perror(const char *prefix) {
    int e = errno;
    if (prefix && *prefix) fprintf(stderr, "%s: %s (%s)\n", prefix, co_strerror(e), co_err_name(e));
    else fprintf(stderr, "%s (%s)\n", co_strerror(e), co_err_name(e));
    errno = e;
}
