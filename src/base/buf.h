/* base/buf.h — the byte buffer every layer shares (streams, TLS, process
 * communicate, file read_all, procpool replies; next the protocol
 * parsers). Modelled on h2o's h2o_buffer_t: a producer reserves room,
 * writes into it and commits what it wrote; a consumer peeks at the data
 * and consumes what it used. Not thread-safe: one owner at a time.
 *
 *     co__buf b = CO__BUF_INIT;
 *     if ((rc = co__buf_reserve(&b, 4096))) return rc;  // -ENOMEM / -EINVAL
 *     ssize_t r = read(fd, co__buf_tail(&b), co__buf_room(&b));
 *     if (r > 0) co__buf_commit(&b, (size_t)r);
 *     ... co__buf_data(&b), co__buf_len(&b) ...; co__buf_consume(&b, used);
 *     co__buf_free(&b);
 *
 * Growth: reserve(n) first compacts (moves the data to the front) when
 * that alone makes n bytes of room — it copies len bytes, never more than
 * a reallocation would; otherwise the capacity becomes the largest of
 * CO__BUF_MIN, twice the old capacity and len + n (so appends cost
 * amortised O(1)). All arithmetic is overflow-checked: a request no object
 * can satisfy (len + n beyond CO__BUF_MAX, i.e. PTRDIFF_MAX) is -EINVAL,
 * one malloc refuses is -ENOMEM; the buffer is unchanged after either.
 *
 * Consumption is O(1): consume moves the data start and never copies;
 * when the buffer becomes empty the start returns to the front.
 */
#ifndef CO_BASE_BUF_H
#define CO_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "assert.h"

#define CO__BUF_MIN ((size_t)16 * 1024)
#define CO__BUF_MAX ((size_t)PTRDIFF_MAX)

/* The data is mem[off, off + len); the room is mem[off + len, cap).
 * Invariants (co__buf_check):
 *   mem == NULL exactly when cap == 0;
 *   off + len <= cap <= CO__BUF_MAX;
 *   len == 0 implies off == 0 (an empty buffer has all its room). */
typedef struct co__buf {
    char *mem;
    size_t off, len, cap;
} co__buf;

#define CO__BUF_INIT {NULL, 0, 0, 0}

static inline void co__buf_check(const co__buf *b) {
    CO__ASSERT((b->mem == NULL) == (b->cap == 0));
    CO__ASSERT(b->off <= b->cap && b->len <= b->cap - b->off && b->cap <= CO__BUF_MAX);
    CO__ASSERT(b->len != 0 || b->off == 0);
    (void)b;
}

static inline void co__buf_init(co__buf *b) { *b = (co__buf)CO__BUF_INIT; }
/* The data and its length (data is never NULL: "" when nothing is held). */
static inline const char *co__buf_data(const co__buf *b) { return b->mem ? b->mem + b->off : ""; }
static inline char *co__buf_data_mut(co__buf *b) { return b->mem ? b->mem + b->off : NULL; }
static inline size_t co__buf_len(const co__buf *b) { return b->len; }
/* Writable room after the data: valid until the next reserve. */
static inline char *co__buf_tail(co__buf *b) { return b->mem ? b->mem + b->off + b->len : NULL; }
static inline size_t co__buf_room(const co__buf *b) { return b->cap - b->off - b->len; }

/* Makes room for at least n more bytes after the data (see the growth
 * policy above). 0, -EINVAL (len + n beyond CO__BUF_MAX) or -ENOMEM.
 * n == 0 succeeds without allocating. Pointers into the buffer are
 * invalid after a call that returned 0. */
int co__buf_reserve(co__buf *b, size_t n);

/* The producer wrote n bytes at co__buf_tail: they become data. n must
 * be at most co__buf_room. */
static inline void co__buf_commit(co__buf *b, size_t n) {
    CO__ASSERT(n <= co__buf_room(b));
    b->len += n;
    co__buf_check(b);
}

/* Drops the first n bytes of data (n <= len). */
static inline void co__buf_consume(co__buf *b, size_t n) {
    CO__ASSERT(n <= b->len);
    b->off += n;
    b->len -= n;
    if (b->len == 0) b->off = 0;
    co__buf_check(b);
}

/* Copies n bytes in after the data: 0, -EINVAL or -ENOMEM (unchanged). */
int co__buf_append(co__buf *b, const void *p, size_t n);
/* Copies n bytes in front of the data (a reader that took bytes and must
 * give them back): 0, -EINVAL or -ENOMEM (unchanged). */
int co__buf_prepend(co__buf *b, const void *p, size_t n);
/* Copies out up to max bytes from the front and consumes them: the count. */
size_t co__buf_take(co__buf *b, void *dst, size_t max);
/* Drops the data, keeps the memory. */
static inline void co__buf_reset(co__buf *b) { b->off = b->len = 0; }
/* Releases the memory; the buffer is empty and usable again. */
void co__buf_free(co__buf *b);
/* Moves everything (data and memory) from src to dst, which must be
 * empty of memory; src is left empty. */
void co__buf_move(co__buf *dst, co__buf *src);
/* Hands the memory to the caller with the data at its start followed by
 * a NUL byte (room for it is reserved): *p (free() it) and *n. The
 * buffer is left empty. 0, -EINVAL or -ENOMEM (buffer unchanged). */
int co__buf_detach(co__buf *b, char **p, size_t *n);

#endif
