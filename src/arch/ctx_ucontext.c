/* ctx_ucontext.c — the portable fallback: glibc's makecontext/swapcontext.
 * About 50x slower than the assembly (swapcontext saves the signal mask
 * with a system call), kept for CPUs without a .S file and tested on
 * x86-64 with `make CORIO_CTX=ucontext test`. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>

#include "ctx.h"

/* makecontext passes int arguments only: split the pointers. */
static void co__uc_trampoline(unsigned e_hi, unsigned e_lo, unsigned a_hi, unsigned a_lo) {
    void (*entry)(void *) =
        (void (*)(void *))(uintptr_t)(((uint64_t)e_hi << 32) | (uint64_t)e_lo);
    void *arg = (void *)(uintptr_t)(((uint64_t)a_hi << 32) | (uint64_t)a_lo);
    entry(arg);
    abort(); /* entry must never return */
}

void co__ctx_make(co__ctx *ctx, void *lo, size_t size, void (*entry)(void *), void *arg) {
    uint64_t e = (uint64_t)(uintptr_t)entry, a = (uint64_t)(uintptr_t)arg;
    getcontext(&ctx->uc);
    ctx->uc.uc_stack.ss_sp = lo;
    ctx->uc.uc_stack.ss_size = size - 16;
    ctx->uc.uc_link = NULL;
    makecontext(&ctx->uc, (void (*)(void))co__uc_trampoline, 4, (unsigned)(e >> 32),
                (unsigned)e, (unsigned)(a >> 32), (unsigned)a);
}

/* swapcontext installs the signal mask saved in `to`, which is the mask of
 * the moment that context last switched out: a signal blocked meanwhile
 * (co_signal_wait blocks what it reads from its signalfd) would come
 * unblocked. The thread's mask is the truth, so `to` gets it first. */
void co__ctx_switch(co__ctx *from, co__ctx *to) {
    pthread_sigmask(SIG_SETMASK, NULL, &to->uc.uc_sigmask);
    swapcontext(&from->uc, &to->uc);
}
