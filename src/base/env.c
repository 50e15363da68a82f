/* base/env.c — parses corio's environment settings (env.h). */
#include <errno.h>
#include <stdlib.h>
#include <strings.h>

#include "env.h"

bool co__env_bool(const char *name, bool dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    static const char *const no[] = {"0", "no", "false", "off"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (strcasecmp(v, no[i]) == 0) return false;
    return true;
}

int co__env_size(const char *name, size_t min, size_t max, size_t *out) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    if (*v < '0' || *v > '9') return -EINVAL; /* no sign, no space: strtoull would take "-1" */
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end || n < min || n > max) return -EINVAL;
    *out = (size_t)n;
    return 1;
}
