/* ctx.h — the raw context switch, the lowest layer of corio.
 *
 * A context is the saved state of a stopped execution: on the assembly
 * back ends (switch_x86_64.S, switch_aarch64.S) just the stack pointer,
 * because the callee-saved registers the ABI requires are pushed on the
 * stack being left; on the ucontext fallback (ctx_ucontext.c) a ucontext_t.
 * The back end is chosen at build time (make CORIO_CTX=asm|ucontext).
 *
 * Nothing here allocates, locks, or knows about tasks or sanitizers (those
 * annotations live one level up, in fiber.h).
 */
#ifndef CO_ARCH_CTX_H
#define CO_ARCH_CTX_H

#include <stddef.h>

#if defined(CORIO_CTX_UCONTEXT)
#include <ucontext.h>
typedef struct co__ctx {
    ucontext_t uc;
} co__ctx;
#define CO__CTX_METHOD "ucontext"
#else
typedef struct co__ctx {
    void *sp; /* saved stack pointer; the registers are on that stack */
} co__ctx;
#if defined(__x86_64__)
#define CO__CTX_METHOD "asm-x86_64"
#elif defined(__aarch64__)
#define CO__CTX_METHOD "asm-aarch64"
#else
#error "no assembly context switch for this CPU: build with CORIO_CTX=ucontext"
#endif
#endif

/* Prepares ctx so that the first switch to it calls entry(arg) on the stack
 * [lo, lo + size). entry must never return: it ends by switching away. */
void co__ctx_make(co__ctx *ctx, void *lo, size_t size, void (*entry)(void *), void *arg);

/* Saves the running context into *from and resumes *to. Returns when some
 * later switch resumes *from. */
void co__ctx_switch(co__ctx *from, co__ctx *to);

#endif
