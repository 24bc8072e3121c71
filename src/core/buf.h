/* Growable byte buffer with a hard maximum (curl dynbuf, git strbuf). */
#ifndef OPS_CORE_BUF_H
#define OPS_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data; /* always NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
	size_t max; /* 0: no limit */
};

#define BUF_INIT              \
	{                     \
		NULL, 0, 0, 0 \
	}

/*
 * Append; returns 0, or -1 when the result would pass b->max (then b is
 * unchanged). A dropped -1 is text silently lost: check it, or use the
 * buf_add* functions below on a buffer without a maximum.
 */
int buf_append(struct buf *b, const void *data, size_t n)
	__attribute__((warn_unused_result));
int buf_puts(struct buf *b, const char *s) __attribute__((warn_unused_result));
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), warn_unused_result));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((warn_unused_result));
/*
 * The same for a buffer without a maximum (b->max == 0), where appending
 * can only fail when memory runs out, which aborts anyway (git's
 * strbuf_addf): no result to check. On a bounded buffer that overflows
 * they abort, naming the caller's mistake.
 */
void buf_addn(struct buf *b, const void *data, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_addf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);
/* Cut the contents back to len bytes (len <= b->len), keeping the
 * storage: for building on a common prefix (git's strbuf_setlen). */
void buf_truncate(struct buf *b, size_t len);
/* Free the storage; the buffer may be reused. */
void buf_release(struct buf *b);
/* The same, wiping the storage first: for a buffer that held a secret. */
void buf_release_wipe(struct buf *b);
/* Hand the string to the caller (never NULL); b is left empty. */
char *buf_detach(struct buf *b) __attribute__((warn_unused_result));
/* "" when nothing was appended. */
const char *buf_str(const struct buf *b);

#endif
