/* Allocation that aborts on exhaustion (redis zmalloc, openssh xmalloc). */
#ifndef OPS_CORE_XALLOC_H
#define OPS_CORE_XALLOC_H

#include <stddef.h>

/* Each result is new memory the caller frees: dropping it is a leak. */
void *xmalloc(size_t n) __attribute__((warn_unused_result));
void *xcalloc(size_t nmemb, size_t size) __attribute__((warn_unused_result));
void *xrealloc(void *p, size_t n) __attribute__((warn_unused_result));
/* NULL gives NULL. */
char *xstrdup(const char *s) __attribute__((warn_unused_result));
char *xstrndup(const char *s, size_t n) __attribute__((warn_unused_result));
/* A new string the caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)))
__attribute__((warn_unused_result));
/* Overwrite then free a secret. NULL is a no-op. */
void freezero_str(char *s);

#endif
