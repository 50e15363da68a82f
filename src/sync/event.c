/* event.c — co_event (asyncio.Event): a flag tasks wait for.
 *
 * Loop-thread only. co_event_set wakes every waiter and unlinks it: a
 * woken waiter never touches the event again, so nothing is left to pass
 * on if it turns out cancelled (it returns -ECANCELED, as co_join does).
 */
#include "internal.h"

typedef struct co__event {
    co_loop *loop;
    co__waitq wq; /* granted: unused (woken waiters are unlinked) */
    bool set;
} co__event;

CO__CHECK_SIZE(co_event, co__event);

static inline co__event *co__ev(co_event *e) { return (co__event *)(void *)e; }

int co_event_init(co_event *pe) {
    co__event *e = co__ev(pe);
    e->loop = co__tls_loop;
    e->set = false;
    co__waitq_init(&e->wq);
    return 0;
}

int co_event_destroy(co_event *pe) {
    co__event *e = co__ev(pe);
    return co__waitq_close(&e->wq, &e->loop, "co_event_destroy");
}

co_event *co_event_new(void) {
    co_event *e = malloc(sizeof *e);
    return co__sync_made(e, e ? co_event_init(e) : -ENOMEM);
}

int co_event_free(co_event *e) { return co__sync_freed(e, e ? co_event_destroy(e) : 0); }

int co_event_wait(co_event *pe) {
    co__event *e = co__ev(pe);
    co_task *t;
    int rc = co__sync_task(&e->loop, "co_event_wait", &t);
    if (rc || (rc = co__can_suspend(&t))) return rc;
    if (e->set) return 0;
    co__swait w;
    rc = co__swait_park(&e->wq.waiting, &w, t, true);
    return co__swait_result(&w, rc);
}

int co_event_set(co_event *pe) {
    co__event *e = co__ev(pe);
    int rc = co__sync_check(&e->loop, "co_event_set");
    if (rc) return rc;
    if (e->set) return 0;
    e->set = true;
    co__swait *w;
    while ((w = co__swait_first(&e->wq.waiting))) co__swait_grant(w, NULL);
    return 0;
}

int co_event_clear(co_event *pe) {
    co__event *e = co__ev(pe);
    int rc = co__sync_check(&e->loop, "co_event_clear");
    if (rc) return rc;
    e->set = false;
    return 0;
}

bool co_event_is_set(const co_event *pe) { return ((const co__event *)(const void *)pe)->set; }
