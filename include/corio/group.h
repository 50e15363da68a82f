/* corio/group.h — task groups (asyncio.TaskGroup, trio's nursery).
 *
 *     co_group *g = co_group_new();
 *     co_group_spawn(g, fetch, url1, NULL);
 *     co_group_spawn(g, fetch, url2, NULL);
 *     const co_result *errs; size_t nerrs;
 *     int rc = co_group_join(g, &errs, &nerrs);   // waits for every child
 *     co_group_free(g);
 *
 * Rules:
 *   - The task that calls co_group_new owns the group. From new to join the
 *     group is open on the owner like a cancel scope (corio/scope.h), and
 *     nests with its scopes and other groups in LIFO order.
 *   - Joining waits for every child, also those spawned while it waits. No
 *     child outlives the group: a group left unjoined (the owner returned,
 *     or co_group_free) cancels and waits for its children.
 *   - The first child to FAIL (a child that ends cancelled is not a
 *     failure) cancels every other child and the owner's code inside the
 *     group: its waits return -ECANCELED until it reaches co_group_join,
 *     which reports every child's error, in the order they failed (our
 *     ExceptionGroup). That cancellation stays inside the group: after the
 *     join the owner runs on normally.
 *   - If the owner is cancelled from outside (while in the group or in the
 *     join), the join cancels the children, waits for them, and returns
 *     -ECANCELED.
 *   - Beyond asyncio: co_group_cancel cancels the whole group from outside
 *     (the join then returns normally, as trio's cancel scope absorbs its
 *     own cancellation); co_group_children lists the live children; and
 *     co_group_start + co_started let a child say "I am ready" (trio's
 *     nursery.start) — a server task can report that it listens before its
 *     spawner goes on.
 * Ownership: the group is freed by co_group_free; it holds a reference to
 * every child until the child finishes successfully, or until the free for
 * a failed child (whose message the error list points to). Loop thread only.
 */
#ifndef CORIO_GROUP_H
#define CORIO_GROUP_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct co_group co_group;

/* A new group owned by the calling task. NULL with errno CO_ENOTASK (not in
 * a task) or ENOMEM. */
CO_API co_group *co_group_new(void);

/* Spawns fn(arg) as a child of the group (opts as co_spawn_opts, may be
 * NULL). *task (if task is not NULL) gets a new reference to the child, to
 * release with co_task_release. A child spawned into a cancelled group
 * starts cancelled (its body runs and sees -ECANCELED). From any task or
 * callback of the group's loop. Returns 0, or:
 *   -EINVAL        g or fn is NULL
 *   -CO_ECLOSED    the group was joined already (or its loop is closing)
 *   -CO_EWRONGLOOP called from another thread
 *   -ENOMEM */
CO_API int co_group_spawn(co_group *g, co_fn fn, void *arg, co_task **task);
CO_API int co_group_spawn_opts(co_group *g, co_fn fn, void *arg, const co_task_opts *opts,
                               co_task **task);

/* trio's nursery.start: spawns fn(arg) into the group and waits until the
 * child calls co_started(value); *value (if not NULL) gets that value and
 * *task (if not NULL) a reference to the child. Until then the child
 * belongs to the caller: if it fails before co_started, its error is
 * returned here (it does not cancel the group); if the caller is
 * cancelled, the child is cancelled and waited for. Returns 0, or
 *   err            the child failed before co_started
 *   -CO_EINVALSTATE the child returned without calling co_started
 *   -ECANCELED     the caller was cancelled (or the child before starting)
 *   -CO_ENOTASK, and the errors of co_group_spawn */
CO_API int co_group_start(co_group *g, co_fn fn, void *arg, void **value, co_task **task);
/* Called by a child started with co_group_start: wakes the starter with
 * value. 0, or -CO_EINVALSTATE (not started by co_group_start, or said
 * twice), -CO_ENOTASK. */
CO_API int co_started(void *value);

/* Closes the group for its owner and waits for every child. *errors (if
 * errors is not NULL) gets the failed children's results (state
 * CO_FAILED, their error and message; owned by the group, valid until
 * co_group_free) and *nerrors their number. Joining again returns the same.
 * Returns
 *   0              no child failed
 *   err            the first child's failure (all are in *errors)
 *   -ECANCELED     the owner was cancelled from outside (children were
 *                  cancelled and have finished; *errors still lists failures)
 *   -CO_EINVALSTATE not called by the owner, or a scope or group opened
 *                  after this group is still open
 *   -CO_ENOTASK    not called from a task */
CO_API int co_group_join(co_group *g, const co_result **errors, size_t *nerrors);

/* Cancels every child and the owner's code inside the group (see above).
 * 0, or -CO_EWRONGLOOP, -EINVAL. Harmless after the join. */
CO_API int co_group_cancel(co_group *g);
/* Was the group cancelled (co_group_cancel, or a child's failure)? */
CO_API bool co_group_cancelled(const co_group *g);
/* Lists the unfinished children: up to cap of them into out (borrowed, not
 * retained); returns how many there are. */
CO_API size_t co_group_children(const co_group *g, co_task **out, size_t cap);

/* Frees the group. If it was not joined, its owner calling this (with no
 * scope or group opened after it still open) cancels and joins it first,
 * so this may suspend; any other call is refused with a report and the
 * group is left alone rather than freed under its owner. */
CO_API void co_group_free(co_group *g);

#ifdef __cplusplus
}
#endif
#endif
