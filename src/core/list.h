/* list.h — the intrusive containers every layer shares.
 *
 * co__list: a circular doubly-linked list with a sentinel head. A node that
 * is in no list points to itself (co__list_init), so "is it linked?" is one
 * compare and unlinking twice is harmless. Nothing here allocates.
 */
#ifndef CO_CORE_LIST_H
#define CO_CORE_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "../base/hints.h" /* co__container_of, co__likely / co__unlikely */

typedef struct co__list {
    struct co__list *next, *prev;
} co__list;

static inline void co__list_init(co__list *l) { l->next = l->prev = l; }
static inline bool co__list_empty(const co__list *l) { return l->next == l; }
/* For a node: is it in a list? (nodes are co__list_init'ed when unlinked) */
static inline bool co__list_linked(const co__list *n) { return n->next != n; }

static inline void co__list_insert_before(co__list *pos, co__list *n) {
    n->prev = pos->prev;
    n->next = pos;
    pos->prev->next = n;
    pos->prev = n;
}
static inline void co__list_append(co__list *head, co__list *n) { co__list_insert_before(head, n); }
static inline void co__list_prepend(co__list *head, co__list *n) { co__list_insert_before(head->next, n); }

static inline void co__list_remove(co__list *n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

static inline co__list *co__list_pop_front(co__list *head) {
    co__list *n = head->next;
    if (n == head) return NULL;
    co__list_remove(n);
    return n;
}

/* Moves every node of src, in order, to the front of dst; src ends empty. */
static inline void co__list_splice_front(co__list *dst, co__list *src) {
    if (co__list_empty(src)) return;
    co__list *first = src->next, *last = src->prev;
    first->prev = dst;
    last->next = dst->next;
    dst->next->prev = last;
    dst->next = first;
    co__list_init(src);
}

#define co__list_for_each(it, head) for (co__list *it = (head)->next; it != (head); it = it->next)
/* Safe against removal of the current node. */
#define co__list_for_each_safe(it, tmp, head) \
    for (co__list *it = (head)->next, *tmp = it->next; it != (head); it = tmp, tmp = it->next)

#endif
