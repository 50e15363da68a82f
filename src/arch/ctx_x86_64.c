/* ctx_x86_64.c — builds the first frame of a fresh stack for
 * switch_x86_64.S (its header comment shows the layout). */
#include <stdint.h>
#include <string.h>

#include "cpu.h"
#include "ctx.h"

void co__ctx_trampoline(void);

void co__ctx_make(co__ctx *ctx, void *lo, size_t size, void (*entry)(void *), void *arg) {
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
    /* The trampoline must see rsp % 16 == 0, i.e. frame + 64 aligned; keep
     * 16 spare bytes at the very top. */
    uint64_t *f = (uint64_t *)(top - 16 - 64);
    /* A fresh task starts with the floating-point control state this thread
     * had when it made its first context (reading it costs more than the
     * rest of this function, and it is the same for every task). */
    static _Thread_local uint64_t fpctl;
    if (co__unlikely(!fpctl)) {
        uint32_t mxcsr;
        uint16_t fpcw;
        __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
        __asm__ volatile("fnstcw %0" : "=m"(fpcw));
        fpctl = (uint64_t)mxcsr | ((uint64_t)fpcw << 32);
    }
    f[0] = fpctl;
    f[1] = 0;                        /* r15 */
    f[2] = 0;                        /* r14 */
    f[3] = (uint64_t)(uintptr_t)entry; /* r13 */
    f[4] = (uint64_t)(uintptr_t)arg;   /* r12 */
    f[5] = 0;                        /* rbx */
    f[6] = 0;                        /* rbp: ends frame-pointer walks */
    f[7] = (uint64_t)(uintptr_t)co__ctx_trampoline;
    ctx->sp = f;
}
