/* example_unit.h — the thread examples block for whole seconds, as their
 * scenarios say. CORIO_EXAMPLE_UNIT=0.1 makes every "second" 0.1 s of real
 * time (the tests use it); printed durations are in those units, so the
 * output is the same. */
#ifndef EXAMPLE_UNIT_H
#define EXAMPLE_UNIT_H

#include <stdlib.h>
#include <time.h>

static inline double example_unit(void) {
    const char *e = getenv("CORIO_EXAMPLE_UNIT");
    double u = e && *e ? atof(e) : 1.0;
    return u > 0 ? u : 1.0;
}

/* A blocking sleep (the kind of call that must not run on the loop). */
static inline void blocking_sleep(double units) {
    double s = units * example_unit();
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Real elapsed time since t0 (CLOCK_MONOTONIC seconds), in units. */
static inline double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static inline double units_since(double t0) { return (mono_now() - t0) / example_unit(); }

#endif
