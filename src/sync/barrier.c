/* barrier.c — co_barrier (asyncio.Barrier): parties tasks meet.
 *
 * Loop-thread only. The last task to arrive releases the round at once:
 * it numbers the waiters in arrival order, wakes them and unlinks them, so
 * the barrier is ready for the next round before any of them runs (no
 * draining state, unlike asyncio). A task cancelled while waiting leaves
 * the round as if it had never arrived; one cancelled after the round
 * passed returns -ECANCELED and the round stands for the others.
 */
#include "internal.h"

typedef struct co__barrier {
    co_loop *loop;
    co__waitq wq;      /* waiting: arrival order; granted: unused (passed waiters are unlinked) */
    unsigned parties;
    unsigned nwaiting;
    bool broken;
} co__barrier;

CO__CHECK_SIZE(co_barrier, co__barrier);

static inline co__barrier *co__bar(co_barrier *b) { return (co__barrier *)(void *)b; }
static inline const co__barrier *co__cbar(const co_barrier *b) {
    return (const co__barrier *)(const void *)b;
}

int co_barrier_init(co_barrier *pb, unsigned parties) {
    if (!parties) return -EINVAL;
    co__barrier *b = co__bar(pb);
    b->loop = co__tls_loop;
    b->parties = parties;
    b->nwaiting = 0;
    b->broken = false;
    co__waitq_init(&b->wq);
    return 0;
}

int co_barrier_destroy(co_barrier *pb) {
    co__barrier *b = co__bar(pb);
    int rc = co__waitq_close(&b->wq, &b->loop, "co_barrier_destroy");
    if (rc == 0) b->nwaiting = 0;
    return rc;
}

co_barrier *co_barrier_new(unsigned parties) {
    co_barrier *b = malloc(sizeof *b);
    return co__sync_made(b, b ? co_barrier_init(b, parties) : -ENOMEM);
}

int co_barrier_free(co_barrier *b) { return co__sync_freed(b, b ? co_barrier_destroy(b) : 0); }

int co_barrier_wait(co_barrier *pb, unsigned *index) {
    co__barrier *b = co__bar(pb);
    co_task *t;
    int rc = co__sync_task(&b->loop, "co_barrier_wait", &t);
    if (rc || (rc = co__can_suspend(&t))) return rc;
    if (b->broken) return -CO_EBROKEN;
    if (b->nwaiting + 1 == b->parties) { /* the last one: the round passes */
        unsigned i = 0;
        co__swait *w;
        while ((w = co__swait_first(&b->wq.waiting))) {
            w->index = i++;
            co__swait_grant(w, NULL);
        }
        b->nwaiting = 0;
        if (index) *index = i;
        return 0;
    }
    co__swait w;
    b->nwaiting++;
    rc = co__swait_park(&b->wq.waiting, &w, t, true);
    if (w.state == CO__SW_WAITING) b->nwaiting--; /* cancelled: never arrived */
    if (w.state == CO__SW_GRANTED && !rc && index) *index = w.index;
    return co__swait_result(&w, rc);
}

/* Every waiter fails with -CO_EBROKEN. */
static int co__barrier_break(co__barrier *b, const char *what, bool broken) {
    int rc = co__sync_check(&b->loop, what);
    if (rc) return rc;
    b->broken = broken;
    co__swait_fail_all(&b->wq.waiting, -CO_EBROKEN);
    b->nwaiting = 0;
    return 0;
}

int co_barrier_reset(co_barrier *b) { return co__barrier_break(co__bar(b), "co_barrier_reset", false); }
int co_barrier_abort(co_barrier *b) { return co__barrier_break(co__bar(b), "co_barrier_abort", true); }

unsigned co_barrier_parties(const co_barrier *b) { return co__cbar(b)->parties; }
unsigned co_barrier_n_waiting(const co_barrier *b) { return co__cbar(b)->nwaiting; }
bool co_barrier_broken(const co_barrier *b) { return co__cbar(b)->broken; }
