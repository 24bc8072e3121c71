#include "core/dotenv.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/xalloc.h"

#define DOTENV_MAX_BYTES (1024 * 1024)

static void
dotenv_set(struct dotenv *env, char *key, char *value, int line)
{
	for (size_t i = 0; i < env->n; i++) {
		if (strcmp(env->v[i].key, key) == 0) {
			freezero_str(env->v[i].value);
			free(key);
			env->v[i].value = value;
			env->v[i].line = line;
			return;
		}
	}
	env->v = xrealloc(env->v, (env->n + 1) * sizeof(*env->v));
	env->v[env->n].key = key;
	env->v[env->n].value = value;
	env->v[env->n].line = line;
	env->n++;
}

static int
is_key_start(int c)
{
	return isalpha(c) || c == '_';
}

static int
is_key_char(int c)
{
	return isalnum(c) || c == '_' || c == '.' || c == '-';
}

int
dotenv_parse(const char *text, size_t len, const char *name, struct dotenv *env,
	     struct ops_err *err)
{
	size_t i = 0;
	int line = 1, r = 0;
	struct buf val = BUF_INIT;

	while (i < len) {
		size_t ks, ke;
		int start_line = line, grow = 0;

		/* leading blanks */
		while (i < len &&
		       (text[i] == ' ' || text[i] == '\t' || text[i] == '\r'))
			i++;
		if (i >= len)
			break;
		if (text[i] == '\n') {
			i++;
			line++;
			continue;
		}
		if (text[i] == '#') {
			while (i < len && text[i] != '\n')
				i++;
			continue;
		}
		if (len - i > 7 && strncmp(text + i, "export", 6) == 0 &&
		    (text[i + 6] == ' ' || text[i + 6] == '\t')) {
			i += 6;
			while (i < len && (text[i] == ' ' || text[i] == '\t'))
				i++;
		}
		if (i >= len || !is_key_start((unsigned char)text[i])) {
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "%s:%d: expected KEY=VALUE (a key starts "
				     "with a letter or '_')",
				     name, line);
			goto out;
		}
		ks = i;
		while (i < len && is_key_char((unsigned char)text[i]))
			i++;
		ke = i;
		while (i < len && (text[i] == ' ' || text[i] == '\t'))
			i++;
		if (i >= len || text[i] != '=') {
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "%s:%d: expected '=' after key '%.*s'",
				     name, line, (int)(ke - ks), text + ks);
			goto out;
		}
		i++;
		while (i < len && (text[i] == ' ' || text[i] == '\t'))
			i++;
		buf_reset(&val);
		if (i < len &&
		    (text[i] == '"' || text[i] == '\'' || text[i] == '`')) {
			char q = text[i++];
			int closed = 0;

			while (i < len) {
				char c = text[i];

				if (c == q) {
					closed = 1;
					i++;
					break;
				}
				if (c == '\n')
					line++;
				if (q == '"' && c == '\\' && i + 1 < len) {
					char e = text[i + 1];

					c = e == 'n'   ? '\n'
					    : e == 'r' ? '\r'
					    : e == 't' ? '\t'
						       : e;
					if (e != 'n' && e != 'r' && e != 't' &&
					    e != '\\' && e != '"') {
						grow |= buf_append(&val, "\\",
								   1);
						c = e;
					}
					i++;
				}
				grow |= buf_append(&val, &c, 1);
				i++;
			}
			if (!closed) {
				r = ops_fail(err, OPS_E_CONFIG, false,
					     "%s:%d: unterminated %c-quoted "
					     "value for '%.*s'",
					     name, start_line, q,
					     (int)(ke - ks), text + ks);
				goto out;
			}
			/* after the closing quote: blanks, a comment, EOL */
			while (i < len && (text[i] == ' ' || text[i] == '\t' ||
					   text[i] == '\r'))
				i++;
			if (i < len && text[i] == '#') {
				while (i < len && text[i] != '\n')
					i++;
			}
			if (i < len && text[i] != '\n') {
				r = ops_fail(err, OPS_E_CONFIG, false,
					     "%s:%d: unexpected text after the "
					     "quoted value of '%.*s'",
					     name, line, (int)(ke - ks),
					     text + ks);
				goto out;
			}
		} else {
			size_t vs = i, ve;

			while (i < len && text[i] != '\n') {
				if (text[i] == '#' && i > vs &&
				    (text[i - 1] == ' ' || text[i - 1] == '\t'))
					break;
				i++;
			}
			ve = i;
			while (i < len && text[i] != '\n')
				i++;
			while (ve > vs && isspace((unsigned char)text[ve - 1]))
				ve--;
			grow |= buf_append(&val, text + vs, ve - vs);
		}
		if (grow != 0) {
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "%s:%d: the value of '%.*s' is too long",
				     name, start_line, (int)(ke - ks),
				     text + ks);
			goto out;
		}
		if (memchr(buf_str(&val), '\0', val.len) != NULL) {
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "%s:%d: NUL byte in the value of '%.*s'",
				     name, start_line, (int)(ke - ks),
				     text + ks);
			goto out;
		}
		dotenv_set(env, xstrndup(text + ks, ke - ks),
			   xstrdup(buf_str(&val)), start_line);
	}
out:
	buf_release_wipe(&val);
	if (r != 0)
		dotenv_release(env);
	return r;
}

int
dotenv_load(const char *path, struct dotenv *env, struct ops_err *err)
{
	struct buf b = BUF_INIT;
	int r;

	r = ops_read_file(path, DOTENV_MAX_BYTES, &b, err);
	if (r == 0)
		r = dotenv_parse(buf_str(&b), b.len, path, env, err);
	else if (r != OPS_E_NOTFOUND) {
		/* the message names the file; the caller adds context */
		if (err != NULL)
			err->code = OPS_E_CONFIG;
		r = OPS_E_CONFIG;
	}
	buf_release_wipe(&b);
	return r;
}

const char *
dotenv_get(const struct dotenv *env, const char *key)
{
	for (size_t i = 0; i < env->n; i++)
		if (strcmp(env->v[i].key, key) == 0)
			return env->v[i].value;
	return NULL;
}

void
dotenv_release(struct dotenv *env)
{
	for (size_t i = 0; i < env->n; i++) {
		free(env->v[i].key);
		freezero_str(env->v[i].value);
	}
	free(env->v);
	env->v = NULL;
	env->n = 0;
}
