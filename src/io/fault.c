/* fault.c — test-only fault injection: the nth next read / write /
 * accept / connect made through corio in this thread fails with a chosen
 * errno instead of reaching the kernel (neco's idea). Per thread, so
 * parallel tests cannot disturb each other; one pending fault per op.
 * Off (all counters 0) it costs one thread-local load per call. */
#include "internal.h"

static _Thread_local struct {
    unsigned left; /* calls until the fault: 1 = the next one; 0 = disarmed */
    int err;
} co__faults[CO_FAULT_NOPS];

void co_fault_inject(int op, unsigned n, int err) {
    if (op < 0 || op >= CO_FAULT_NOPS) return;
    co__faults[op].left = n;
    co__faults[op].err = err < 0 ? -err : err;
}

int co__fault(int op) {
    if (co__likely(co__faults[op].left == 0)) return 0;
    if (--co__faults[op].left) return 0;
    return -co__faults[op].err;
}
