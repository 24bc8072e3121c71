/* The AWS shared credentials and config files; see aws_profile.h. */
#include "storage/aws_profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/xalloc.h"

/* The values read, and the files they may come from. */
static const struct {
	const char *name;
	size_t off;
	bool config_only; /* not read from the credentials file */
} keys[] = {
	{ "aws_access_key_id", offsetof(struct aws_profile, access_key_id),
	  false },
	{ "aws_secret_access_key",
	  offsetof(struct aws_profile, secret_access_key), false },
	{ "aws_session_token", offsetof(struct aws_profile, session_token),
	  false },
	{ "region", offsetof(struct aws_profile, region), true },
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* What lines indented under the last setting may be. */
enum prop {
	PROP_NONE,  /* none: no setting above in this section */
	PROP_BLOCK, /* "name =": sub-settings "name = value" */
	PROP_SKIP,  /* another setting's value goes on: skipped */
	PROP_MINE,  /* a value read here: must be on one line */
};

struct parse {
	const char *name; /* for messages */
	size_t line;
	enum aws_profile_file kind;
	const char *profile;
	bool in_section;       /* a section header was seen */
	bool mine;	       /* in a section of the profile */
	bool prefixed_default; /* "[profile default]" seen (config) */
	enum prop prop;
	const char *prop_name; /* PROP_MINE: the setting's name */
	struct aws_profile v;  /* what this text gives */
};

static char **
slot(struct aws_profile *p, size_t i)
{
	return (char **)(void *)((char *)p + keys[i].off);
}

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* The SDKs' profile name characters (aws-c-sdkutils' identifier set). */
static bool
is_name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("_-/.%@:+\\", c) != NULL);
}

static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && is_blank(**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && is_blank((*s)[*n - 1]))
		(*n)--;
}

static bool
valid_name(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_name_char(s[i]))
			return false;
	return true;
}

static bool
same(const char *s, size_t n, const char *word)
{
	return strlen(word) == n && memcmp(s, word, n) == 0;
}

static void
clear_values(struct aws_profile *p)
{
	for (size_t i = 0; i < NKEYS; i++) {
		freezero_str(*slot(p, i));
		*slot(p, i) = NULL;
	}
}

/* "[NAME]", "[profile NAME]", "[default]", maybe a comment after. */
static int
section(struct parse *ps, const char *s, size_t n, struct ops_err *err)
{
	const char *in;
	size_t end = 0, ilen;
	bool prefixed = false;

	/* on a header line a comment needs no blank before it */
	while (end < n && s[end] != '#' && s[end] != ';')
		end++;
	while (end > 0 && is_blank(s[end - 1]))
		end--;
	if (end < 2 || s[end - 1] != ']')
		return ops_fail(err, OPS_E_CONFIG, false,
				"%s:%zu: a section header must end with ']'",
				ps->name, ps->line);
	ps->in_section = true;
	ps->mine = false;
	ps->prop = PROP_NONE;
	in = s + 1;
	ilen = end - 2;
	trim(&in, &ilen);
	if (ps->kind == AWS_PROFILE_CONFIG) {
		if (ilen > 8 && memcmp(in, "profile", 7) == 0 &&
		    (in[7] == ' ' || in[7] == '\t')) {
			in += 8;
			ilen -= 8;
			trim(&in, &ilen);
			prefixed = true;
		} else if (!same(in, ilen, "default")) {
			return 0; /* sso-session, services, ...: no profile */
		}
	}
	/* "[profile x]" in the credentials file names no profile either:
	 * the space is not a name character */
	if (!valid_name(in, ilen) || !same(in, ilen, ps->profile))
		return 0;
	if (ps->kind == AWS_PROFILE_CONFIG && same(in, ilen, "default")) {
		/* "[profile default]" wins over "[default]", in either order */
		if (prefixed && !ps->prefixed_default) {
			clear_values(&ps->v);
			ps->prefixed_default = true;
		} else if (!prefixed && ps->prefixed_default) {
			return 0;
		}
	}
	ps->mine = true;
	ps->v.found = true;
	return 0;
}

/* "name = value", maybe a comment after a blank. */
static int
setting(struct parse *ps, const char *s, size_t n, struct ops_err *err)
{
	const char *eq, *key, *val;
	size_t klen, vlen;

	if (!ps->in_section)
		return ops_fail(err, OPS_E_CONFIG, false,
				"%s:%zu: a setting before any [section] header",
				ps->name, ps->line);
	/* on a setting line a comment needs a blank before it: '#' and
	 * ';' may be part of a value */
	for (size_t j = 1; j < n; j++) {
		if (is_blank(s[j - 1]) && (s[j] == '#' || s[j] == ';')) {
			n = j;
			break;
		}
	}
	eq = memchr(s, '=', n);
	if (eq == NULL)
		return ops_fail(err, OPS_E_CONFIG, false,
				"%s:%zu: expected a [section] header, a "
				"'name = value' setting or a comment",
				ps->name, ps->line);
	key = s;
	klen = (size_t)(eq - s);
	trim(&key, &klen);
	if (klen == 0)
		return ops_fail(err, OPS_E_CONFIG, false,
				"%s:%zu: a setting needs a name before '='",
				ps->name, ps->line);
	val = eq + 1;
	vlen = n - (size_t)(val - s);
	trim(&val, &vlen);
	ps->prop = vlen == 0 ? PROP_BLOCK : PROP_SKIP;
	if (!ps->mine)
		return 0;
	for (size_t i = 0; i < NKEYS; i++) {
		if (!same(key, klen, keys[i].name) ||
		    (keys[i].config_only && ps->kind != AWS_PROFILE_CONFIG))
			continue;
		/* the same name again: the later one wins */
		freezero_str(*slot(&ps->v, i));
		*slot(&ps->v, i) = xstrndup(val, vlen);
		if (vlen > 0) {
			ps->prop = PROP_MINE;
			ps->prop_name = keys[i].name;
		}
		break;
	}
	return 0;
}

/* An indented line: it goes on with the setting above. */
static int
continuation(struct parse *ps, const char *s, size_t n, struct ops_err *err)
{
	const char *eq, *key = s;
	size_t klen;

	switch (ps->prop) {
	case PROP_NONE:
		return ops_fail(err, OPS_E_CONFIG, false,
				"%s:%zu: an indented line with no setting "
				"above it to continue: start a setting in the "
				"first column",
				ps->name, ps->line);
	case PROP_BLOCK:
		/* sub-settings, as "s3 =" has: checked, then skipped */
		eq = memchr(s, '=', n);
		klen = eq != NULL ? (size_t)(eq - s) : 0;
		trim(&key, &klen);
		if (klen == 0)
			return ops_fail(err, OPS_E_CONFIG, false,
					"%s:%zu: expected an indented 'name = "
					"value' sub-setting",
					ps->name, ps->line);
		return 0;
	case PROP_MINE:
		return ops_fail(err, OPS_E_CONFIG, false,
				"%s:%zu: the value of %s goes on over an "
				"indented line: write it on one line",
				ps->name, ps->line, ps->prop_name);
	case PROP_SKIP:
		break;
	}
	return 0;
}

static int
parse_line(struct parse *ps, const char *s, size_t n, struct ops_err *err)
{
	size_t i = 0;

	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (memchr(s, '\0', n) != NULL)
		return ops_fail(err, OPS_E_CONFIG, false,
				"%s:%zu: a NUL byte: expected text", ps->name,
				ps->line);
	while (i < n && is_blank(s[i]))
		i++;
	if (i == n || s[i] == '#' || s[i] == ';')
		return 0; /* blank, or a comment (indented or not) */
	if (i > 0)
		return continuation(ps, s + i, n - i, err);
	if (s[0] == '[')
		return section(ps, s, n, err);
	return setting(ps, s, n, err);
}

int
aws_profile_parse(const char *text, size_t len, enum aws_profile_file kind,
		  const char *name, const char *profile, struct aws_profile *p,
		  struct ops_err *err)
{
	struct parse ps = { 0 };
	size_t at = 0;
	int r = 0;

	ps.name = name != NULL ? name : "(text)";
	ps.kind = kind;
	ps.profile = profile != NULL ? profile : "default";
	while (at < len && r == 0) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t n = nl != NULL ? (size_t)(nl - (text + at)) : len - at;

		ps.line++;
		r = parse_line(&ps, text + at, n, err);
		at += n + 1;
	}
	if (r == 0) {
		/* lay this file's values over p's */
		for (size_t i = 0; i < NKEYS; i++) {
			if (*slot(&ps.v, i) == NULL)
				continue;
			freezero_str(*slot(p, i));
			*slot(p, i) = *slot(&ps.v, i);
			*slot(&ps.v, i) = NULL;
		}
		if (ps.v.found)
			p->found = true;
	}
	aws_profile_release(&ps.v);
	return r;
}

int
aws_profile_load(enum aws_profile_file kind, const char *profile,
		 struct aws_profile *p, struct ops_err *err)
{
	bool creds = kind == AWS_PROFILE_CREDENTIALS;
	const char *var =
		creds ? "AWS_SHARED_CREDENTIALS_FILE" : "AWS_CONFIG_FILE";
	const char *v = getenv(var), *home = getenv("HOME");
	char **kept = creds ? &p->credentials_file : &p->config_file;
	struct ops_err sub = OPS_ERR_INIT;
	struct buf b = BUF_INIT;
	bool named = v != NULL && v[0] != '\0';
	bool has_home = home != NULL && home[0] != '\0';
	char *path;
	int r;

	if (named && v[0] == '~' && v[1] == '/' && has_home)
		path = xasprintf("%s/%s", home, v + 2); /* as the SDKs do */
	else if (named)
		path = xstrdup(v);
	else if (has_home)
		path = xasprintf("%s%s.aws/%s", home,
				 home[strlen(home) - 1] == '/' ? "" : "/",
				 creds ? "credentials" : "config");
	else
		return 0; /* nowhere to look */
	free(*kept);
	*kept = path;
	r = ops_read_file(path, AWS_PROFILE_MAX_BYTES, &b, &sub);
	if (r == OPS_E_NOTFOUND && !named) {
		r = 0; /* no default file: nothing in it */
	} else if (r != 0) {
		/* a directory, a FIFO, unreadable, too big; or missing
		 * though named */
		if (named)
			r = ops_fail(err, OPS_E_CONFIG, false, "%s: %s", var,
				     sub.msg);
		else
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "shared %s file: %s (set %s to read "
				     "another file)",
				     creds ? "credentials" : "config", sub.msg,
				     var);
	} else {
		r = aws_profile_parse(buf_str(&b), b.len, kind, path, profile,
				      p, err);
	}
	buf_release_wipe(&b); /* it holds secrets */
	return r;
}

const char *
aws_profile_name(void)
{
	const char *v = getenv("AWS_PROFILE");

	return v != NULL && v[0] != '\0' ? v : "default";
}

void
aws_profile_release(struct aws_profile *p)
{
	if (p == NULL)
		return;
	clear_values(p);
	free(p->credentials_file);
	free(p->config_file);
	p->credentials_file = NULL;
	p->config_file = NULL;
	p->found = false;
}
