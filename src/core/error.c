/* error.c — co_strerror / co_err_name for errno values and CO_E* codes. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "corio.h"

const char *co_strerror(int err) {
    switch (-err) {
#define CO__ERR_MSG(name, value, msg) \
    case value:                       \
        return msg;
        CO_ERRNO_MAP(CO__ERR_MSG)
#undef CO__ERR_MSG
    }
    if (err == 0) return "success";
    if (err > 0) return "not an error code (corio errors are negative)";
    const char *s = strerrordesc_np(-err);
    return s ? s : "unknown error";
}

const char *co_err_name(int err) {
    switch (-err) {
#define CO__ERR_NAME(name, value, msg) \
    case value:                        \
        return "CO_" #name;
        CO_ERRNO_MAP(CO__ERR_NAME)
#undef CO__ERR_NAME
    }
    if (err == 0) return "OK";
    if (err > 0) return "EPOSITIVE";
    const char *s = strerrorname_np(-err);
    return s ? s : "EUNKNOWN";
}
