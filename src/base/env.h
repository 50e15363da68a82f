/* base/env.h — the one parser for corio's environment settings
 * (CORIO_DEBUG, CORIO_VIRTUAL_CLOCK, CORIO_THREADS, ...): every getenv in
 * src/ goes through these, so every flag reads the same way. Any thread;
 * reads the environment only (getenv), never changes it.
 */
#ifndef CO_BASE_ENV_H
#define CO_BASE_ENV_H

#include <stdbool.h>
#include <stddef.h>

/* A yes/no setting: unset or empty gives dflt; "0", "no", "false", "off"
 * (any case) are false; any other value is true. */
bool co__env_bool(const char *name, bool dflt);

/* A size setting: a decimal number within [min, max].
 * 1 with *out set; 0 if unset or empty (*out untouched); -EINVAL if it is
 * not a number, has trailing characters or is out of range (*out
 * untouched: the caller keeps its default). */
int co__env_size(const char *name, size_t min, size_t max, size_t *out);

#endif
