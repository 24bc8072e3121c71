/* Allocation that aborts on exhaustion (redis zmalloc, openssh xmalloc). */
#ifndef OPS_CORE_XALLOC_H
#define OPS_CORE_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* NULL gives NULL. */
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* A new string the caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Overwrite then free a secret. NULL is a no-op. */
void freezero_str(char *s);

#endif
