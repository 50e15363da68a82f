/* base/assert.h — checked invariants. base is the layer below arch and
 * core: it includes nothing of corio's other layers, and every layer may
 * include it.
 *
 * CO__ASSERT(cond) states an invariant the code relies on. It is checked
 * when CO_ASSERTS is defined non-zero (the Makefile defines it for the
 * sanitizer builds, SAN=asan|tsan, so the ASan test pass runs with
 * assertions on) and compiled out otherwise: the condition is then type
 * checked but never evaluated, so it must have no side effects. A failed
 * assertion prints file:line and the expression to stderr and aborts.
 *
 * For invariants only: bad input from a user is an error return, never
 * an assertion.
 */
#ifndef CO_BASE_ASSERT_H
#define CO_BASE_ASSERT_H

#include "hints.h"

#if defined(CO_ASSERTS) && (CO_ASSERTS + 0)
#define CO__ASSERTS_ON 1
#define CO__ASSERT(cond) (co__likely(cond) ? (void)0 : co__assert_fail(#cond, __FILE__, __LINE__, __func__))
#else
#define CO__ASSERTS_ON 0
#define CO__ASSERT(cond) ((void)sizeof(!(cond)))
#endif

/* Prints "corio: file:line: func: assertion `expr' failed" and aborts. */
__attribute__((noreturn, cold)) void co__assert_fail(const char *expr, const char *file, int line,
                                                     const char *func);

#endif
