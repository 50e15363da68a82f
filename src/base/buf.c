/* base/buf.c — the byte buffer's growth, copies and hand-over (buf.h
 * states the policy and the invariants; the O(1) calls are inline
 * there). Allocates with malloc/realloc only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

/* The capacity for `need` bytes of data: the largest of CO__BUF_MIN, 2 *
 * cap and need, never beyond CO__BUF_MAX (need itself is <= it). */
static size_t co__buf_grown(size_t cap, size_t need) {
    size_t c = cap <= CO__BUF_MAX / 2 ? cap * 2 : CO__BUF_MAX;
    if (c < CO__BUF_MIN) c = CO__BUF_MIN;
    return c > need ? c : need;
}

int co__buf_reserve(co__buf *b, size_t n) {
    co__buf_check(b);
    if (n <= co__buf_room(b)) return 0;
    if (n > CO__BUF_MAX - b->len) return -EINVAL;
    size_t need = b->len + n;
    if (need <= b->cap) { /* compacting is enough */
        memmove(b->mem, b->mem + b->off, b->len);
        b->off = 0;
        return 0;
    }
    size_t cap = co__buf_grown(b->cap, need);
    char *m;
    if (b->off == 0) {
        m = realloc(b->mem, cap); /* may grow in place */
    } else {
        m = malloc(cap);
        if (m) {
            memcpy(m, b->mem + b->off, b->len);
            free(b->mem);
        }
    }
    if (!m) return -ENOMEM;
    b->mem = m;
    b->cap = cap;
    b->off = 0;
    co__buf_check(b);
    return 0;
}

int co__buf_append(co__buf *b, const void *p, size_t n) {
    if (n == 0) return 0;
    int rc = co__buf_reserve(b, n);
    if (rc) return rc;
    memcpy(co__buf_tail(b), p, n);
    co__buf_commit(b, n);
    return 0;
}

int co__buf_prepend(co__buf *b, const void *p, size_t n) {
    if (n == 0) return 0;
    if (b->off >= n) {
        b->off -= n;
        memcpy(b->mem + b->off, p, n);
        b->len += n;
        co__buf_check(b);
        return 0;
    }
    int rc = co__buf_reserve(b, n);
    if (rc) return rc;
    memmove(b->mem + b->off + n, b->mem + b->off, b->len);
    memcpy(b->mem + b->off, p, n);
    b->len += n;
    co__buf_check(b);
    return 0;
}

size_t co__buf_take(co__buf *b, void *dst, size_t max) {
    size_t k = b->len < max ? b->len : max;
    if (k) {
        memcpy(dst, b->mem + b->off, k);
        co__buf_consume(b, k);
    }
    return k;
}

void co__buf_free(co__buf *b) {
    free(b->mem);
    co__buf_init(b);
}

void co__buf_move(co__buf *dst, co__buf *src) {
    CO__ASSERT(dst->mem == NULL);
    *dst = *src;
    co__buf_init(src);
    co__buf_check(dst);
}

int co__buf_detach(co__buf *b, char **p, size_t *n) {
    int rc = co__buf_reserve(b, 1);
    if (rc) return rc;
    if (b->off) {
        memmove(b->mem, b->mem + b->off, b->len);
        b->off = 0;
    }
    b->mem[b->len] = 0;
    *p = b->mem;
    *n = b->len;
    co__buf_init(b);
    return 0;
}
