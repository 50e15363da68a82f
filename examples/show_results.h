/* show_results.h — prints a list of co_result the way Python prints the list
 * asyncio.gather(..., return_exceptions=True) returns: values as strings,
 * failures as Error("message"), cancellations as CancelledError, timeouts
 * as TimeoutError. Shared by the gather examples. */
#ifndef SHOW_RESULTS_H
#define SHOW_RESULTS_H

#include <corio.h>
#include <errno.h>
#include <stdio.h>

static void show_results(const co_result *r, size_t n) {
    fputs("[", stdout);
    for (size_t i = 0; i < n; i++) {
        if (i) fputs(", ", stdout);
        if (r[i].state == CO_DONE) printf("\"%s\"", (const char *)r[i].value);
        else if (r[i].state == CO_CANCELLED) fputs("CancelledError", stdout);
        else if (r[i].err == -ETIMEDOUT) fputs("TimeoutError", stdout);
        else printf("Error(\"%s\")", r[i].msg ? r[i].msg : co_strerror(r[i].err));
    }
    puts("]");
}

#endif
