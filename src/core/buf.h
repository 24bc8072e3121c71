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
 * unchanged). A dropped -1 is text silently lost: check it. src/core and
 * src/http check every result.
 *
 * NEEDSWORK: buf_append, buf_puts and buf_printf should carry
 * warn_unused_result as buf_vprintf does; callers in src/jobs, src/stripe
 * and tests/integration still drop results, so it waits for them.
 */
int buf_append(struct buf *b, const void *data, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((warn_unused_result));
void buf_reset(struct buf *b);
/* Cut the contents back to len bytes (len <= b->len), keeping the
 * storage: for building on a common prefix (git's strbuf_setlen). */
void buf_truncate(struct buf *b, size_t len);
/* Free the storage; the buffer may be reused. */
void buf_release(struct buf *b);
/* Hand the string to the caller (never NULL); b is left empty. */
char *buf_detach(struct buf *b) __attribute__((warn_unused_result));
/* "" when nothing was appended. */
const char *buf_str(const struct buf *b);

#endif
