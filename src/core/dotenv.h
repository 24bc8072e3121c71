/*
 * .env parser, following the dotenv package's syntax: KEY=VALUE lines,
 * optional "export ", # comments, '...' literal, "..." with \n \r \t \\ \"
 * escapes, `...`, quoted values spanning lines, unquoted values trimmed and
 * cut at " #". Unlike dotenv a line that is not KEY=VALUE is an error
 * naming the line, so a typo is never silently ignored.
 * Hand-written: no Debian package parses dotenv files.
 */
#ifndef OPS_CORE_DOTENV_H
#define OPS_CORE_DOTENV_H

#include <stddef.h>

#include "core/err.h"

struct dotenv_entry {
	char *key;
	char *value;
	int line;
};

struct dotenv {
	struct dotenv_entry *v;
	size_t n;
};

#define DOTENV_INIT     \
	{               \
		NULL, 0 \
	}

/*
 * Parse text (len bytes, need not be NUL-terminated); name is used in
 * messages ("name:line: ..."). Later keys replace earlier ones. On error
 * env is left empty.
 */
int dotenv_parse(const char *text, size_t len, const char *name,
		 struct dotenv *env, struct ops_err *err)
	__attribute__((warn_unused_result));
/* Read and parse a file. OPS_E_NOTFOUND when it does not exist;
 * OPS_E_CONFIG when it is not a regular file (a directory, a FIFO), cannot
 * be read or is malformed. */
int dotenv_load(const char *path, struct dotenv *env, struct ops_err *err)
	__attribute__((warn_unused_result));
/* The value for key, or NULL. Borrowed from env. */
const char *dotenv_get(const struct dotenv *env, const char *key);
/* Free entries (values are wiped: a .env holds secrets). */
void dotenv_release(struct dotenv *env);

#endif
