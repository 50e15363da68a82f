/* fiber.c — fiber set-up and tear-down (see fiber.h). */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>

#include "fiber.h"

void co__fiber_init_thread(co__fiber *f) {
    memset(f, 0, sizeof *f);
#if CO__ASAN
    /* ASan needs the bounds of the stack it switches back to. */
    pthread_attr_t attr;
    void *addr = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &addr, &size);
        pthread_attr_destroy(&attr);
    }
    f->stack_lo = addr;
    f->stack_size = size;
#endif
#if CO__TSAN
    f->tsan = __tsan_get_current_fiber();
#endif
}

void co__fiber_make(co__fiber *f, void *lo, size_t size, void (*entry)(void *), void *arg) {
    co__ctx_make(&f->ctx, lo, size, entry, arg);
#if CO__ASAN
    f->stack_lo = lo;
    f->stack_size = size;
    f->asan_fake = NULL;
#endif
#if CO__TSAN
    f->tsan = __tsan_create_fiber(0);
#endif
}

void co__fiber_destroy(co__fiber *f) {
#if CO__TSAN
    if (f->tsan) __tsan_destroy_fiber(f->tsan);
    f->tsan = NULL;
#else
    (void)f;
#endif
}
