/* stack.h — task stacks: mmap'd, guarded, pooled; slabs past the map limit.
 *
 * A stack is a region of `size` bytes of virtual memory (MAP_NORESERVE: the
 * kernel commits pages on first touch, so an idle task costs about one
 * page). Its descriptor (co__stack) lives in the region's top bytes, on the
 * same page as the task's first frames, so it costs no extra memory.
 *
 * Two kinds:
 *   guarded  its own mapping with a PROT_NONE page below the usable part;
 *            an overflow faults there and the SIGSEGV handler (on an
 *            alternate signal stack) names the task before aborting.
 *   slab     one of many stacks carved from one big mapping, no guard page,
 *            used once the process nears vm.max_map_count (each guarded
 *            stack costs two of the 65530 mappings Linux allows by
 *            default). A canary word just below the usable part is checked
 *            at every switch-out; the canary lives in the top page of the
 *            region below, which is touched anyway, so it costs no page.
 *
 * A pool (one per loop, so no locks) keeps freed stacks for reuse: spawning
 * does not pay for mmap/munmap in steady state. Runs on its loop's thread.
 */
#ifndef CO_ARCH_STACK_H
#define CO_ARCH_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CO__CANARY 0x636f72696f5f5e5eULL /* "corio_^^" */
#define CO__STACK_DEFAULT (256u * 1024u)
#define CO__STACK_MIN (16u * 1024u)
/* The largest stack a task may ask for (Go's limit for a goroutine's
 * stack): far below the sizes whose page rounding or slab arithmetic
 * (CO__SLAB_STACKS of them in one mapping) would overflow. */
#define CO__STACK_MAX ((size_t)1 << 30)

typedef struct co__stack {
    struct co__stack *next; /* pool free list */
    char *lo;               /* lowest usable byte */
    size_t usable;          /* bytes from lo to the descriptor */
    size_t size;            /* region size: what was asked for, rounded to pages */
    uint64_t *canary;       /* word checked at switch-out (a dummy on guarded stacks) */
    void *map;              /* guarded: the mapping (guard included); slab: NULL */
    size_t map_len;
    char *dirty_lo;         /* ASan: lowest byte abandoned frames may have poisoned (NULL: all) */
    unsigned vg_id;         /* Valgrind's id for the registered stack */
    bool guarded;
} co__stack;

typedef struct co__slab {
    struct co__slab *next;
    void *map;
    size_t map_len;
} co__slab;

#define CO__STACK_BUCKETS 4
typedef struct co__stack_pool {
    struct {
        size_t size;     /* 0: bucket unused */
        co__stack *free; /* LIFO: the warmest stack first */
        size_t nfree;
    } bucket[CO__STACK_BUCKETS];
    co__slab *slabs;
    size_t max_free;     /* guarded stacks kept per bucket; more are unmapped */
    size_t nguarded;     /* guarded stacks of this pool alive (in use or pooled) */
} co__stack_pool;

void co__stack_pool_init(co__stack_pool *p);
/* Unmaps every stack of the pool, in use or not: call when none runs. */
void co__stack_pool_fini(co__stack_pool *p);
/* A stack of at least `size` bytes (0: the default). 0, or -ENOMEM. */
int co__stack_get(co__stack_pool *p, size_t size, co__stack **out);
/* Gives a stack back to the pool. Not the stack running now. */
void co__stack_put(co__stack_pool *p, co__stack *s);
/* Rounds a requested size the way co__stack_get does. */
size_t co__stack_round(size_t size);

static inline bool co__stack_canary_ok(const co__stack *s) { return *s->canary == CO__CANARY; }

/* Stack overflow reporting. The core tells the handler which stack runs on
 * this thread and how to name its task (async-signal-safe: no allocation). */
typedef const co__stack *(*co__stack_running_fn)(char *name, size_t n);
/* Installs the process-wide SIGSEGV/SIGBUS handler (once). */
void co__stack_handler_install(co__stack_running_fn fn);
/* Gives the calling thread an alternate signal stack if it has none.
 * Returns the memory to pass to co__altstack_release, or NULL if the
 * thread already had one (or none could be made). */
void *co__altstack_ensure(void);
void co__altstack_release(void *mem);
/* Prints "corio: stack overflow in task "NAME" (stack N KiB)" with a
 * backtrace and aborts. */
_Noreturn void co__stack_overflow(const co__stack *s, const char *name, const char *how);

/* Tuning and introspection for tests and benchmarks. */
size_t co__stack_guarded_limit(void);        /* guarded stacks allowed in the process */
void co__stack_set_guarded_limit(size_t n);  /* override (tests) */
size_t co__stack_guarded_count(void);        /* guarded stacks alive in the process */

#endif
