/* seq_await — awaiting one job after another is not concurrency.
 * job1 sleeps 1 s, then job2 (0.5 s) runs: the total is job1 + job2. */
#include <corio.h>
#include <stdio.h>

static void *job1(void *arg) {
    puts("job1 start");
    if (co_sleep(1.0) < 0) return NULL; /* cancelled: unwind */
    puts("job1 end");
    return "job1 result";
}

static void *job2(void *arg) {
    puts("job2 start");
    if (co_sleep(0.5) < 0) return NULL;
    puts("job2 end");
    return "job2 result";
}

static void *main_task(void *arg) {
    double t0 = co_time();
    const char *r1 = job1(NULL); /* a plain call: runs to the end first */
    const char *r2 = job2(NULL);
    printf("results: %s, %s\n", r1, r2);
    printf("total %.2f s (one after the other)\n", co_time() - t0);
    return NULL;
}

int main(void) { return co_run(main_task, NULL, NULL); }
