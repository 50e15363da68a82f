/* group.c — task groups (corio/group.h).
 *
 * Loop-thread only. A group is a cancel scope on its owner (g->scope, in
 * the owner's chain from co_group_new to the join) plus one record per
 * child, hooked into the child's done list. The hook is where the rules
 * live: a finished child leaves the live list; a failed one is kept for
 * the error list and, the first time, cancels the rest (children, and the
 * scope, which interrupts the owner's code inside the group). The owner is
 * woken by a hook only while it sits in the join, never in some other
 * wait of its own.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum { CO__GS_WAITING, CO__GS_STARTED, CO__GS_EXITED };

/* co_group_start's handshake, on the starter's stack: the child's
 * co_started or its early end writes here, so the child's record can go
 * whenever the child does. */
typedef struct co__gstart {
    co_task *starter;
    void *value;
    uint8_t state; /* CO__GS_* */
} co__gstart;

typedef struct co__gchild {
    co__waiter w;       /* CO__W_HOOK in the child's done list */
    co__list link;      /* g->live while it runs, then g->failed or nowhere */
    struct co_group *g;
    co_task *t;         /* one reference, held until success or co_group_free */
    co__gstart *start;  /* co_group_start still waiting for co_started, or NULL */
} co__gchild;

struct co_group {
    co__scope scope;    /* open on the owner until the join */
    co_loop *loop;
    co_task *owner;
    co__list live;      /* co__gchild of unfinished children */
    size_t nlive;
    co__list failed;    /* co__gchild of failed children, in failing order */
    size_t nfailed;
    co_result *errors;  /* built at the join */
    int join_rc;
    bool joining, joined, cancelled;
};

static void co__group_cancel_all(co_group *g) {
    g->cancelled = true;
    co__list_for_each(it, &g->live) {
        co__gchild *c = co__container_of(it, co__gchild, link);
        co_cancel(c->t, NULL);
    }
    if (g->scope.open) co__scope_cancel(&g->scope);
}

static void co__gchild_free(co__gchild *c) {
    co_task_release(c->t);
    free(c);
}

static void co__gchild_hook(co__waiter *w, co_task *t) {
    co__gchild *c = co__container_of(w, co__gchild, w);
    co_group *g = c->g;
    t->gchild = NULL;
    co__list_remove(&c->link);
    g->nlive--;
    if (c->start) { /* still the starter's: it reads the outcome from the task */
        c->start->state = CO__GS_EXITED;
        co__wake_if_parked(c->start->starter);
        co__gchild_free(c); /* the starter holds its own reference */
    } else if (t->state == CO_FAILED) {
        co__list_append(&g->failed, &c->link);
        g->nfailed++;
        if (!g->cancelled && !g->joined) co__group_cancel_all(g);
    } else {
        co__gchild_free(c);
    }
    if (g->joining) co__wake_if_parked(g->owner);
}

co_group *co_group_new(void) {
    co_task *cur = co_current();
    if (!cur) {
        errno = CO_ENOTASK;
        return NULL;
    }
    co_group *g = calloc(1, sizeof *g);
    if (!g) {
        errno = ENOMEM;
        return NULL;
    }
    g->loop = cur->loop;
    g->owner = cur;
    co__list_init(&g->live);
    co__list_init(&g->failed);
    co__scope_push(&g->scope, cur, CO__NO_DEADLINE, 0); /* no deadline: cannot fail */
    g->scope.group = g;
    return g;
}

static int co__group_add(co_group *g, co_fn fn, void *arg, const co_task_opts *opts,
                         co__gchild **out) {
    if (!g || !fn) return -EINVAL;
    if (!co__on_loop_thread(g->loop)) return co__wrongloop(g->loop, "co_group_spawn");
    if (g->joined) return -CO_ECLOSED;
    co__gchild *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    co_loop *prev = co__tls_loop;
    co__tls_loop = g->loop; /* spawn on the group's loop, whatever is current */
    co_task *t = co_spawn_opts(fn, arg, opts);
    co__tls_loop = prev;
    if (!t) {
        int err = errno;
        free(c);
        return -err;
    }
    c->g = g;
    c->t = t; /* co_spawn's reference */
    t->gchild = c;
    c->w.kind = CO__W_HOOK;
    c->w.hook = co__gchild_hook;
    co__list_append(&t->done, &c->w.link);
    co__list_append(&g->live, &c->link);
    g->nlive++;
    if (g->cancelled) co_cancel(t, NULL);
    *out = c;
    return 0;
}

int co_group_spawn_opts(co_group *g, co_fn fn, void *arg, const co_task_opts *opts, co_task **task) {
    co__gchild *c;
    int rc = co__group_add(g, fn, arg, opts, &c);
    if (rc) return rc;
    if (task) {
        co_task_retain(c->t);
        *task = c->t;
    }
    return 0;
}

int co_group_spawn(co_group *g, co_fn fn, void *arg, co_task **task) {
    return co_group_spawn_opts(g, fn, arg, NULL, task);
}

int co_group_start(co_group *g, co_fn fn, void *arg, void **value, co_task **task) {
    co_task *cur = co_current();
    if (!cur) return -CO_ENOTASK;
    if (g && cur->loop != g->loop) return co__wrongloop(g->loop, "co_group_start");
    if (co__cancel_pending(cur)) return -ECANCELED;
    co__gchild *c;
    int rc = co__group_add(g, fn, arg, NULL, &c);
    if (rc) return rc;
    co_task *t = c->t;
    co_task_retain(t); /* ours: the record may go before we resume */
    co__gstart st = {.starter = cur, .state = CO__GS_WAITING};
    c->start = &st;
    bool cancelled = false;
    while (st.state == CO__GS_WAITING) {
        if (!cancelled && co__cancel_pending(cur)) {
            cancelled = true;
            co_cancel(t, NULL); /* and wait until it starts or ends */
        }
        co__suspend(cur);
    }
    if (st.state == CO__GS_STARTED) {
        if (value) *value = st.value;
        rc = cancelled ? -ECANCELED : 0;
    } else { /* it ended before co_started */
        if (t->state == CO_DONE) rc = -CO_EINVALSTATE;
        else rc = cancelled ? -ECANCELED : co__task_outcome(t, NULL);
        if (rc == -CO_EINVALSTATE) {
            char name[128];
            co__report(t->loop, "task \"%s\" returned without calling co_started",
                       co__task_name_buf(t, name, sizeof name));
        }
    }
    if (task) *task = t;
    else co_task_release(t);
    return rc;
}

int co_started(void *value) {
    co_task *cur = co_current();
    if (!cur) return -CO_ENOTASK;
    co__gchild *c = cur->gchild;
    if (!c || !c->start) return -CO_EINVALSTATE;
    c->start->state = CO__GS_STARTED;
    c->start->value = value;
    co__wake_if_parked(c->start->starter);
    c->start = NULL; /* an ordinary child from now on */
    return 0;
}

/* The join proper: pop the scope, wait for every child (cancelling them
 * all if the owner is cancelled from outside), and build the error list
 * (reading the errors, which marks them retrieved, only if `read`). */
static int co__group_close(co_group *g, co_task *cur, bool read) {
    co__scope_pop(&g->scope);
    g->joining = true;
    bool outer = false;
    while (g->nlive) {
        if (!outer && co__cancel_pending(cur)) {
            outer = true;
            co__group_cancel_all(g);
        }
        co__suspend(cur); /* a finishing child or a cancellation wakes us */
    }
    g->joining = false;
    g->joined = true;
    if (g->nfailed && read) {
        g->errors = calloc(g->nfailed, sizeof *g->errors);
        if (g->errors) {
            size_t i = 0;
            co__list_for_each(it, &g->failed) {
                co__gchild *c = co__container_of(it, co__gchild, link);
                g->errors[i++] = co_task_result(c->t);
            }
        }
    }
    if (outer) g->join_rc = -ECANCELED;
    else if (g->nfailed) {
        co__gchild *c = co__container_of(g->failed.next, co__gchild, link);
        g->join_rc = c->t->err;
    }
    return g->join_rc;
}

int co_group_join(co_group *g, const co_result **errors, size_t *nerrors) {
    if (!g) return -EINVAL;
    co_task *cur = co_current();
    if (!cur) return -CO_ENOTASK;
    if (!g->joined) {
        if (cur != g->owner || cur->scope != &g->scope) return -CO_EINVALSTATE;
        co__group_close(g, cur, true);
    }
    if (errors) *errors = g->errors;
    if (nerrors) *nerrors = g->errors ? g->nfailed : 0;
    return g->join_rc;
}

void co__group_abandon(co_group *g) {
    co__group_cancel_all(g);
    co__group_close(g, g->owner, false);
}

int co_group_cancel(co_group *g) {
    if (!g) return -EINVAL;
    if (!co__on_loop_thread(g->loop)) return co__wrongloop(g->loop, "co_group_cancel");
    if (!g->joined) co__group_cancel_all(g);
    return 0;
}

bool co_group_cancelled(const co_group *g) { return g && g->cancelled; }

size_t co_group_children(const co_group *g, co_task **out, size_t cap) {
    if (!g) return 0;
    size_t n = 0;
    co__list_for_each(it, &g->live) {
        if (out && n < cap) out[n] = co__container_of(it, co__gchild, link)->t;
        n++;
    }
    return n;
}

void co_group_free(co_group *g) {
    if (!g) return;
    if (!g->joined) {
        co_task *cur = co_current();
        if (cur != g->owner || cur->scope != &g->scope) {
            co__report(g->loop, "co_group_free: the group is still open on its owner; not freed");
            return;
        }
        co__group_cancel_all(g);
        co__group_close(g, cur, false);
    }
    co__list *n;
    while ((n = co__list_pop_front(&g->failed))) co__gchild_free(co__container_of(n, co__gchild, link));
    free(g->errors);
    free(g);
}
