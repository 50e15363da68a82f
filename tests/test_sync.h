/* test_sync.h — helpers the sync tests share (on top of testutil.h). */
#ifndef CORIO_TEST_SYNC_H
#define CORIO_TEST_SYNC_H

#include "testutil.h"

/* Lets every ready task run until nothing is left to run this instant. */
static inline void settle(void) {
    for (int i = 0; i < 8; i++) cr_assert_eq(co_yield(), 0);
}

/* A task named `name` that gets the name as its argument. */
static inline co_task *spawn_named(co_fn fn, const char *name) {
    co_task *t = co_spawn_opts(fn, (void *)name, &(co_task_opts){.name = name});
    cr_assert_not_null(t);
    return t;
}

static inline void join_release(co_task *t) {
    co_join(t, NULL);
    co_task_release(t);
}

#endif
