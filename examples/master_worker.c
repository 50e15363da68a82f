/* master_worker — asyncio's master-worker as written in Python:
 *     loop = asyncio.new_event_loop()
 *     t = Thread(target=loop.run_forever); t.start()
 *     futs = [run_coroutine_threadsafe(work(n), loop) for n in (2, 5, 1, 1)]
 *     ... f.result() for each ...
 *     loop.call_soon_threadsafe(loop.stop); t.join(); loop.close()
 * The loop is made in main and run by another thread, which takes it over
 * (a loop that is not running belongs to whoever runs it); main takes it
 * back to free it once the thread is done. Jobs of 2, 5, 1 and 1 s sleep
 * concurrently: 5 s in all. (The jobs are submitted before the thread
 * starts so that the output is the same on every run: they wait in the
 * loop's inbox until it runs.) */
#include <corio.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "example_unit.h"

static void *work(void *arg) {
    int n = (int)(intptr_t)arg;
    double t0 = co_time();
    int rc = co_sleep(n * example_unit());
    if (rc) return co_fail(rc, "interrupted");
    double took = (co_time() - t0) / example_unit();
    printf("job %d s: done after %.0f s\n", n, took);
    return (void *)(intptr_t)(took + 0.5);
}

static void *run_it(void *loop) { return (void *)(intptr_t)co_loop_run_forever(loop); }
static void stop_it(void *loop) { co_loop_stop(loop); }

int main(void) {
    co_loop *loop = co_loop_new(NULL);
    if (!loop) {
        perror("co_loop_new");
        return 1;
    }
    intptr_t secs[4] = {2, 5, 1, 1};
    co_tsfuture *f[4];
    for (int i = 0; i < 4; i++)
        if (!(f[i] = co_loop_submit(loop, work, (void *)secs[i]))) {
            perror("co_loop_submit");
            return 1;
        }
    pthread_t th;
    if (pthread_create(&th, NULL, run_it, loop) != 0) return 1;
    long longest = 0;
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        void *v = NULL;
        bad |= co_tsfuture_wait(f[i], INFINITY, &v) != 0; /* no time limit */
        if ((long)(intptr_t)v > longest) longest = (long)(intptr_t)v;
        co_tsfuture_release(f[i]);
    }
    printf("all four done: %ld s (concurrently; one after another it would be 9 s)\n", longest);
    co_loop_call_threadsafe(loop, stop_it, loop);
    void *rc = NULL;
    pthread_join(th, &rc);
    bad |= rc != NULL;
    bad |= co_loop_free(loop) != 0;
    return bad;
}
