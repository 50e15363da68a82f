/* ctx_aarch64.c — builds the first frame of a fresh stack for
 * switch_aarch64.S (its header comment shows the layout). */
#include <stdint.h>
#include <string.h>

#include "ctx.h"

void co__ctx_trampoline(void);

void co__ctx_make(co__ctx *ctx, void *lo, size_t size, void (*entry)(void *), void *arg) {
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
    uint64_t *f = (uint64_t *)(top - 16 - 160);   /* sp must stay 16-aligned */
    memset(f, 0, 160);
    f[0] = (uint64_t)(uintptr_t)arg;                 /* x19 */
    f[1] = (uint64_t)(uintptr_t)entry;               /* x20 */
    f[10] = 0;                                       /* x29: ends frame walks */
    f[11] = (uint64_t)(uintptr_t)co__ctx_trampoline; /* x30 */
    ctx->sp = f;
}
