/* stack.c — stack allocation, pooling and overflow reporting (see stack.h).
 *
 * Runs on the owning loop's thread, except the process-wide guarded-stack
 * counter (atomic) and the signal handler. */
#define _GNU_SOURCE
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../base/env.h"
#include "fiber.h"
#include "stack.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define CO__VALGRIND 1
#endif
#endif
#ifndef CO__VALGRIND
#define VALGRIND_STACK_REGISTER(a, b) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

#define CO__SLAB_STACKS 64
#define CO__GUARD_REACH (64u * 1024u) /* faults this far below a stack count as its overflow */

static size_t co__page(void) {
    static atomic_size_t page; /* any thread; every writer writes the same value */
    size_t p = atomic_load_explicit(&page, memory_order_relaxed);
    if (!p) {
        p = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&page, p, memory_order_relaxed);
    }
    return p;
}

/* size <= CO__STACK_MAX (callers refuse more), so rounding cannot wrap. */
size_t co__stack_round(size_t size) {
    size_t page = co__page();
    if (size == 0) size = CO__STACK_DEFAULT;
    if (size < CO__STACK_MIN) size = CO__STACK_MIN;
    if (size > CO__STACK_MAX) size = CO__STACK_MAX;
    return (size + page - 1) & ~(page - 1);
}

/* ---- the process-wide budget of guarded stacks ------------------------- */

static atomic_size_t g_guarded_count;
static atomic_size_t g_guarded_limit; /* 0: not computed yet */
static atomic_flag g_said_slab = ATOMIC_FLAG_INIT;
static uint64_t g_canary_dummy = CO__CANARY; /* guarded stacks point here */

size_t co__stack_guarded_limit(void) {
    size_t lim = atomic_load_explicit(&g_guarded_limit, memory_order_relaxed);
    if (lim) return lim;
    long maxmap = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &maxmap) != 1) maxmap = 65530;
        fclose(f);
    }
    /* Two mappings per guarded stack; keep an eighth (at least 2048) of the
     * limit for the rest of the process: libraries, malloc arenas, files. */
    long reserve = maxmap / 8 > 2048 ? maxmap / 8 : 2048;
    lim = maxmap > reserve ? (size_t)(maxmap - reserve) / 2 : 1;
    size_t env;
    if (co__env_size("CORIO_GUARDED_STACKS_MAX", 0, SIZE_MAX - 1, &env) > 0) lim = env + 1; /* +1: 0 must mean "none" */
    atomic_store(&g_guarded_limit, lim);
    return lim;
}

void co__stack_set_guarded_limit(size_t n) { atomic_store(&g_guarded_limit, n + 1); }
size_t co__stack_guarded_count(void) { return atomic_load(&g_guarded_count); }

static void co__say_slab(size_t size, const char *why) {
    if (atomic_flag_test_and_set(&g_said_slab)) return;
    fprintf(stderr,
            "corio: %s; further task stacks (%zu KiB) come from unguarded slabs, "
            "checked by a canary at every switch instead of a guard page. To keep "
            "guard pages for more tasks raise the limit (two mappings per task), e.g. "
            "sysctl -w vm.max_map_count=2200000 for a million tasks\n",
            why, size / 1024);
}

/* ---- descriptors ---------------------------------------------------------- */

/* Places the descriptor in the top bytes of [region, region + len - pad). */
static co__stack *co__stack_place(char *region, size_t len, size_t pad) {
    uintptr_t d = ((uintptr_t)region + len - pad - sizeof(co__stack)) & ~(uintptr_t)63;
    co__stack *s = (co__stack *)d;
    memset(s, 0, sizeof *s);
    s->lo = region;
    s->usable = (size_t)((char *)s - region);
    return s;
}

static void co__stack_unmap(co__stack *s) {
    VALGRIND_STACK_DEREGISTER(s->vg_id);
    if (s->guarded) atomic_fetch_sub(&g_guarded_count, 1);
    munmap(s->map, s->map_len); /* the descriptor goes with it */
}

static int co__stack_new_guarded(size_t size, co__stack **out) {
    size_t page = co__page();
    size_t lim = co__stack_guarded_limit();
    if (atomic_fetch_add(&g_guarded_count, 1) + 1 >= lim) {
        atomic_fetch_sub(&g_guarded_count, 1);
        co__say_slab(size, "the process is near the kernel's limit of memory mappings "
                           "(vm.max_map_count); guarded stacks use two each");
        return -EAGAIN;
    }
    size_t len = size + page;
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED) goto fail;
    if (mprotect(map, page, PROT_NONE) != 0) {
        munmap(map, len);
        goto fail;
    }
    co__stack *s = co__stack_place(map + page, size, 16);
    s->size = size;
    s->map = map;
    s->map_len = len;
    s->guarded = true;
    s->canary = &g_canary_dummy;
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, s->lo + s->usable);
    *out = s;
    return 0;
fail:
    atomic_fetch_sub(&g_guarded_count, 1);
    co__say_slab(size, "mapping a guarded stack failed (out of memory mappings?)");
    return -EAGAIN;
}

/* Carves a slab of CO__SLAB_STACKS stacks into bucket b. The slab starts
 * with one spare page whose last word is the canary of the first stack;
 * every stack's region ends with 16 bytes holding the next one's canary. */
static int co__slab_new(co__stack_pool *p, int b, size_t size) {
    size_t page = co__page();
    size_t len = page + (size_t)CO__SLAB_STACKS * size;
    co__slab *slab = malloc(sizeof *slab);
    if (!slab) return -ENOMEM;
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED) {
        free(slab);
        return -ENOMEM;
    }
    slab->map = map;
    slab->map_len = len;
    slab->next = p->slabs;
    p->slabs = slab;
    /* Push in reverse so the lowest stack is handed out first. */
    for (int i = CO__SLAB_STACKS - 1; i >= 0; i--) {
        char *region = map + page + (size_t)i * size;
        co__stack *s = co__stack_place(region, size, 16);
        s->size = size;
        s->canary = (uint64_t *)(void *)(region - 8);
        *s->canary = CO__CANARY;
        s->vg_id = VALGRIND_STACK_REGISTER(s->lo, s->lo + s->usable);
        s->next = p->bucket[b].free;
        p->bucket[b].free = s;
        p->bucket[b].nfree++;
    }
    return 0;
}

/* ---- the pool ------------------------------------------------------------ */

void co__stack_pool_init(co__stack_pool *p) {
    memset(p, 0, sizeof *p);
    p->max_free = 1024;
}

static int co__bucket(co__stack_pool *p, size_t size, bool claim) {
    for (int i = 0; i < CO__STACK_BUCKETS; i++)
        if (p->bucket[i].size == size) return i;
    if (claim)
        for (int i = 0; i < CO__STACK_BUCKETS; i++)
            if (p->bucket[i].size == 0) {
                p->bucket[i].size = size;
                return i;
            }
    return -1;
}

int co__stack_get(co__stack_pool *p, size_t size, co__stack **out) {
    size = co__stack_round(size);
    int b = co__bucket(p, size, true);
    if (b >= 0 && p->bucket[b].free) {
        co__stack *s = p->bucket[b].free;
        p->bucket[b].free = s->next;
        p->bucket[b].nfree--;
        if (!s->guarded) *s->canary = CO__CANARY; /* guarded ones share a read-only dummy */
        s->next = NULL;
        *out = s;
        return 0;
    }
    if (co__stack_new_guarded(size, out) == 0) {
        p->nguarded++;
        return 0;
    }
    if (b < 0) return -ENOMEM; /* more distinct stack sizes than buckets, and no guard left */
    int rc = co__slab_new(p, b, size);
    if (rc < 0) return rc;
    return co__stack_get(p, size, out);
}

void co__stack_put(co__stack_pool *p, co__stack *s) {
#if CO__ASAN
    /* Frames abandoned by a finished task keep their redzones poisoned.
     * Only the top is dirty when the task ended normally (the frames below
     * returned and cleaned up after themselves); unpoisoning all of it would
     * commit shadow memory for every byte of every pooled stack. */
    char *from = s->dirty_lo && s->dirty_lo > s->lo ? s->dirty_lo : s->lo;
    __asan_unpoison_memory_region(from, (size_t)((char *)s - from));
    s->dirty_lo = NULL;
#endif
    int b = co__bucket(p, s->size, false);
    if (s->guarded && (b < 0 || p->bucket[b].nfree >= p->max_free)) {
        p->nguarded--;
        co__stack_unmap(s);
        return;
    }
    /* Slab stacks always have a bucket: their slab claimed it. */
    s->next = p->bucket[b].free;
    p->bucket[b].free = s;
    p->bucket[b].nfree++;
}

void co__stack_pool_fini(co__stack_pool *p) {
    for (int b = 0; b < CO__STACK_BUCKETS; b++) {
        co__stack *s = p->bucket[b].free;
        while (s) {
            co__stack *next = s->next;
            if (s->guarded) {
                p->nguarded--;
                co__stack_unmap(s);
            } else {
                VALGRIND_STACK_DEREGISTER(s->vg_id);
            }
            s = next;
        }
        p->bucket[b].free = NULL;
        p->bucket[b].nfree = 0;
    }
    while (p->slabs) {
        co__slab *slab = p->slabs;
        p->slabs = slab->next;
        munmap(slab->map, slab->map_len);
        free(slab);
    }
}

/* ---- overflow reporting ------------------------------------------------------ */

static co__stack_running_fn g_running;
static struct sigaction g_old_segv, g_old_bus;

_Noreturn void co__stack_overflow(const co__stack *s, const char *name, const char *how) {
    char msg[512];
    int n = snprintf(msg, sizeof msg, "corio: stack overflow in task \"%s\" (stack %zu KiB)%s%s\n",
                     name ? name : "?", s->size / 1024, how ? ": " : "", how ? how : "");
    if (n > (int)sizeof msg - 1) n = (int)sizeof msg - 1;
    if (write(2, msg, (size_t)n) < 0) { /* nothing more we can do */
    }
    void *frames[32];
    int nf = backtrace(frames, 32);
    backtrace_symbols_fd(frames, nf, 2);
    signal(SIGABRT, SIG_DFL);
    abort();
}

static void co__segv(int sig, siginfo_t *si, void *uc) {
    char name[128];
    const co__stack *s = g_running ? g_running(name, sizeof name) : NULL;
    char *a = si->si_addr;
    if (s && s->guarded && a < s->lo && a >= s->lo - CO__GUARD_REACH)
        co__stack_overflow(s, name, "hit the guard page");
    /* Not ours: hand it to whoever was there before. */
    struct sigaction *old = sig == SIGSEGV ? &g_old_segv : &g_old_bus;
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        old->sa_sigaction(sig, si, uc);
    } else if (old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN) {
        sigaction(sig, old, NULL); /* the fault repeats and does its default */
    } else {
        old->sa_handler(sig);
    }
}

void co__stack_handler_install(co__stack_running_fn fn) {
    static atomic_flag done = ATOMIC_FLAG_INIT;
    if (atomic_flag_test_and_set(&done)) return;
    g_running = fn;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = co__segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_old_segv);
    sigaction(SIGBUS, &sa, &g_old_bus);
}

#define CO__ALTSTACK (64u * 1024u)

/* One alternate stack per thread, shared by its loops: counted, so that
 * freeing one loop does not take it from another on the same thread. */
static _Thread_local void *tl_alt;
static _Thread_local unsigned tl_alt_users;

void *co__altstack_ensure(void) {
    if (tl_alt) {
        tl_alt_users++;
        return tl_alt;
    }
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) return NULL; /* someone else's */
    void *mem = mmap(NULL, CO__ALTSTACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return NULL;
    stack_t ss = {.ss_sp = mem, .ss_size = CO__ALTSTACK, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(mem, CO__ALTSTACK);
        return NULL;
    }
    tl_alt = mem;
    tl_alt_users = 1;
    return mem;
}

void co__altstack_release(void *mem) {
    if (!mem || mem != tl_alt || --tl_alt_users > 0) return;
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == mem) {
        stack_t off = {.ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE};
        sigaltstack(&off, NULL);
    }
    munmap(mem, CO__ALTSTACK);
    tl_alt = NULL;
}
