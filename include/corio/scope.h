/* corio/scope.h — cancel and timeout scopes (asyncio.timeout, trio's
 * move_on_after / fail_after / CancelScope(shield=True)).
 *
 * A scope is opened on the calling task and closed by the same task, in
 * LIFO order with its other scopes and task groups:
 *
 *     co_scope s;
 *     co_scope_enter(&s, 2.0, CO_FAIL_AFTER);
 *     rc = fetch_all();                 // every wait inside fails with
 *     rc = co_scope_exit(&s);           // -ECANCELED once 2 s have passed
 *     if (rc == -ETIMEDOUT) ...         // the scope's own deadline fired
 *
 * Semantics:
 *   - When the deadline passes (or co_scope_cancel is called), every
 *     suspension point inside the scope returns -ECANCELED — the one the
 *     task sits in and every later one — until the scope is exited
 *     (level-triggered like trio: the cancellation cannot be swallowed by
 *     code that ignores one error).
 *   - co_scope_exit says what happened. An outer cancellation (co_cancel
 *     of the task, or an enclosing scope that fired) is never mistaken
 *     for the scope's own timeout: if one is pending at exit, exit returns
 *     -ECANCELED so the caller keeps unwinding, even if this scope fired
 *     too.
 *   - CO_SHIELD: code inside is protected from outer cancellation (a
 *     co_cancel of the task, enclosing scopes firing); the cancellation
 *     is delivered at the first suspension point after the scope exits.
 *     The shield scope's own deadline still applies, so cleanup under a
 *     shield can be bounded: co_scope_enter(&s, 5.0, CO_SHIELD).
 *   - Scopes nest; an inner deadline later than an outer one changes
 *     nothing (the outer fires first and the inner exit returns
 *     -ECANCELED).
 *   - A task that returns with scopes still open is reported; its scopes
 *     are closed for it.
 *
 * Storage: co_scope is the caller's (usually a local variable of the task);
 * it must stay valid from enter to exit. Loop thread only.
 */
#ifndef CORIO_SCOPE_H
#define CORIO_SCOPE_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque, caller-allocated. */
typedef struct co_scope {
    uint64_t _priv[8];
} co_scope;

enum {
    CO_FAIL_AFTER = 0, /* default: exit returns -ETIMEDOUT if the deadline fired */
    CO_MOVE_ON = 1,    /* exit returns 0 if the deadline fired; co_scope_expired tells */
    CO_SHIELD = 2      /* or'ed in: protect the inside from outer cancellation */
};

/* Opens a scope on the calling task whose deadline is timeout seconds from
 * now (co_now() refreshed first); timeout CO_FOREVER: no deadline;
 * timeout <= 0: already expired. Returns 0, or:
 *   -CO_ENOTASK  not called from a task
 *   -EINVAL      s is NULL, timeout is NaN, or mode has unknown bits
 *   -ENOMEM      growing the timer heap failed */
CO_API int co_scope_enter(co_scope *s, double timeout, int mode);
/* Closes the scope, which must be the calling task's innermost one. Returns
 *   0            nothing happened, or (CO_MOVE_ON) the deadline fired, or the
 *                scope was cancelled with co_scope_cancel
 *   -ETIMEDOUT   CO_FAIL_AFTER and the deadline fired
 *   -ECANCELED   an outer cancellation is pending (keep unwinding)
 *   -CO_EINVALSTATE s is not the calling task's innermost open scope
 *                (nothing is closed) */
CO_API int co_scope_exit(co_scope *s);
/* Moves the deadline to loop time `when` (co_time() scale; INFINITY: none).
 * From any task of the scope's loop. 0, or:
 *   -CO_EINVALSTATE the scope is not open, or has already fired
 *   -CO_EWRONGLOOP  called from another thread
 *   -ENOMEM / -EINVAL as above */
CO_API int co_scope_reschedule(co_scope *s, double when);
/* Cancels the scope now (trio's cancel_scope.cancel()): its inside sees
 * -ECANCELED; the exit returns 0. From any task of the scope's loop.
 * 0, -CO_EINVALSTATE (not open), -CO_EWRONGLOOP. */
CO_API int co_scope_cancel(co_scope *s);
/* Did the deadline fire while the scope was open? (asyncio
 * Timeout.expired(); still answers after the exit.) */
CO_API bool co_scope_expired(const co_scope *s);
/* The deadline on the co_time() scale, INFINITY if none. */
CO_API double co_scope_deadline(const co_scope *s);

#ifdef __cplusplus
}
#endif
#endif
