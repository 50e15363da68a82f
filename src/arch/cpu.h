/* cpu.h — the processor's spin-wait hint, for busy-wait loops (a pause
 * lets the sibling hyperthread run and saves power while spinning). */
#ifndef CO_ARCH_CPU_H
#define CO_ARCH_CPU_H

#include "../base/hints.h" /* the branch hints, for arch and every layer above */

static inline void co__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

#endif
