/* fiber.h — a context plus what the sanitizers must be told about it.
 *
 * Every switch between stacks in corio goes through co__fiber_switch, which
 * wraps the raw co__ctx_switch in the AddressSanitizer and ThreadSanitizer
 * fiber annotations when the build uses them (and compiles to the bare
 * switch otherwise). Valgrind learns about stacks where they are created
 * (stack.c). One fiber is the thread's own stack (co__fiber_init_thread),
 * the others run on stacks from the pool.
 */
#ifndef CO_ARCH_FIBER_H
#define CO_ARCH_FIBER_H

#include <stdbool.h>
#include <stddef.h>

#include "ctx.h"

#if defined(__SANITIZE_ADDRESS__)
#define CO__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CO__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CO__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CO__TSAN 1
#endif
#endif

#if CO__ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
                                     size_t *size_old);
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif
#if CO__TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

typedef struct co__fiber {
    co__ctx ctx; /* first member: the switch saves into it */
#if CO__ASAN
    const void *stack_lo; /* the stack ASan must switch to */
    size_t stack_size;
    void *asan_fake; /* ASan's fake-stack save slot while switched out */
#endif
#if CO__TSAN
    void *tsan;
#endif
} co__fiber;

/* The fiber of the calling thread's own stack. */
void co__fiber_init_thread(co__fiber *f);
/* A fiber that will run entry(arg) on [lo, lo + size). */
void co__fiber_make(co__fiber *f, void *lo, size_t size, void (*entry)(void *), void *arg);
/* Releases what the sanitizers keep for a fiber that has finished. Must be
 * called from another fiber. */
void co__fiber_destroy(co__fiber *f);

/* First thing a fresh fiber's entry does. */
static inline void co__fiber_started(void) {
#if CO__ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
}

/* Switches from `from` (the running fiber) to `to`. `from_exits` says the
 * running fiber will never be resumed, so ASan can drop its fake stack. */
static inline void co__fiber_switch(co__fiber *from, co__fiber *to, bool from_exits) {
#if CO__ASAN
    __sanitizer_start_switch_fiber(from_exits ? NULL : &from->asan_fake, to->stack_lo,
                                   to->stack_size);
#else
    (void)from_exits;
#endif
#if CO__TSAN
    __tsan_switch_to_fiber(to->tsan, 0);
#endif
    co__ctx_switch(&from->ctx, &to->ctx);
#if CO__ASAN
    __sanitizer_finish_switch_fiber(from->asan_fake, NULL, NULL);
#endif
}

#endif
