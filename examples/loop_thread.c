/* loop_thread — an event loop running forever in a second thread, fed
 * from the main thread (the seed's "event loops in different threads"):
 *   - co_loop_call_threadsafe (call_soon_threadsafe) of a blocking
 *     more_work(6) and more_work(3): callbacks run one after another on
 *     the loop's thread, so ≈9 s;
 *   - co_loop_submit (run_coroutine_threadsafe) of the task do_some_work(6)
 *     and (4): tasks sleep concurrently, so ≈6 s.
 * The thread-safe futures co_loop_submit returns are waited for from the
 * main thread, which is not a task: co_tsfuture_wait blocks it. */
#include <corio.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "example_unit.h"

static void more_work(void *arg) {
    int x = (int)(intptr_t)arg;
    printf("More work %d\n", x);
    blocking_sleep(x); /* blocks the loop: nothing else runs meanwhile */
    printf("Finished more work %d\n", x);
}

static void *do_some_work(void *arg) {
    int x = (int)(intptr_t)arg;
    printf("Waiting %d\n", x);
    int rc = co_sleep(x * example_unit());
    if (rc) return co_fail(rc, "interrupted");
    printf("Done after %ds\n", x);
    return arg;
}

/* Runs after the two callbacks (calls run in the order they were made). */
static void mark_done(void *arg) { co_tsfuture_set_result(arg, NULL); }

int main(void) {
    co_loop *loop = co_thread_loop_start(NULL);
    if (!loop) {
        perror("co_thread_loop_start");
        return 1;
    }
    double t0 = mono_now();
    co_tsfuture *calls_done = co_tsfuture_new();
    co_loop_call_threadsafe(loop, more_work, (void *)6);
    co_loop_call_threadsafe(loop, more_work, (void *)3);
    co_loop_call_threadsafe(loop, mark_done, calls_done);
    co_tsfuture_wait(calls_done, CO_FOREVER, NULL);
    co_tsfuture_release(calls_done);
    printf("call_threadsafe x2: %.0f s (callbacks run one after another, blocking the loop)\n",
           units_since(t0));

    t0 = mono_now();
    co_tsfuture *a = co_loop_submit(loop, do_some_work, (void *)6);
    co_tsfuture *b = co_loop_submit(loop, do_some_work, (void *)4);
    void *va = NULL, *vb = NULL;
    int ra = co_tsfuture_wait(a, CO_FOREVER, &va), rb = co_tsfuture_wait(b, CO_FOREVER, &vb);
    printf("submit x2: %.0f s (tasks run concurrently), results %ld and %ld\n", units_since(t0),
           (long)(intptr_t)va, (long)(intptr_t)vb);
    co_tsfuture_release(a);
    co_tsfuture_release(b);
    int rc = co_thread_loop_stop(loop, 1.0);
    return ra || rb || rc ? 1 : 0;
}
