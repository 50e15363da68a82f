/* error.c — co_io_error(): the sentence behind the last failed I/O call
 * on this thread (which operation, which peer, why). A thread-local
 * buffer: cheap to set, read right after the call. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

static _Thread_local char co__io_msg[512];
static _Thread_local unsigned co__io_gen; /* bumped by every sentence written */

const char *co_io_error(void) { return co__io_msg; }
unsigned co__io_error_gen(void) { return co__io_gen; }

int co__io_fail(int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(co__io_msg, sizeof co__io_msg, fmt, ap);
    va_end(ap);
    co__io_gen++;
    return err;
}
