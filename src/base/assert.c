/* base/assert.c — the failure half of CO__ASSERT (assert.h). Writes with
 * one write(2) so that it works from any thread and any stack, then
 * aborts (a core dump, or the sanitizer's report, shows the rest). */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "assert.h"

void co__assert_fail(const char *expr, const char *file, int line, const char *func) {
    char msg[512];
    int n = snprintf(msg, sizeof msg, "corio: %s:%d: %s: assertion `%s' failed\n", file, line, func, expr);
    if (n > 0) {
        ssize_t w = write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
        (void)w;
    }
    abort();
}
