/* base/hints.h — compiler hints and checks every layer may use, from arch
 * up: branch hints, container_of, and the storage-size check for opaque
 * public structs. Header only; includes nothing of corio's.
 */
#ifndef CO_BASE_HINTS_H
#define CO_BASE_HINTS_H

#include <stddef.h>

/* Branch hints: for the branches a hot path takes (or not) almost always. */
#if defined(__GNUC__)
#define co__likely(x) __builtin_expect(!!(x), 1)
#define co__unlikely(x) __builtin_expect(!!(x), 0)
#else
#define co__likely(x) (x)
#define co__unlikely(x) (x)
#endif

/* The struct that holds `member` at ptr. */
#define co__container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* A public struct `pub` is opaque storage for the library's `priv`: it
 * must be at least as large and as aligned. Use at file scope, once per
 * pair, in the .c that casts between them. */
#define CO__CHECK_SIZE(pub, priv)                                                           \
    _Static_assert(sizeof(pub) >= sizeof(priv) && _Alignof(pub) >= _Alignof(priv), \
                   #pub " is too small or too little aligned for " #priv)

#endif
