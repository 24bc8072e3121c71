#include "storage/store.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "core/stop.h"
#include "core/xalloc.h"
#include "storage/sigv4.h"
#include "storage/store_internal.h"

struct store_writer {
	struct store *s;
	void *impl;
	EVP_MD_CTX *sha;
	long long size;
	char key[STORE_MAX_KEY + 1];
};

const char *
store_provider_name(enum store_provider p)
{
	switch (p) {
	case STORE_LOCAL:
		return "local";
	case STORE_S3:
		return "s3";
	case STORE_GCS:
		return "gcs";
	}
	return "unknown";
}

int
store_provider_parse(const char *s, enum store_provider *out)
{
	if (s == NULL)
		return -1;
	if (strcmp(s, "local") == 0)
		*out = STORE_LOCAL;
	else if (strcmp(s, "s3") == 0)
		*out = STORE_S3;
	else if (strcmp(s, "gcs") == 0)
		*out = STORE_GCS;
	else
		return -1;
	return 0;
}

int
store_location_provider(const char *location, enum store_provider *out)
{
	if (location == NULL)
		return -1;
	if (location[0] == '/')
		*out = STORE_LOCAL;
	else if (strncmp(location, "s3://", 5) == 0)
		*out = STORE_S3;
	else if (strncmp(location, "gs://", 5) == 0)
		*out = STORE_GCS;
	else
		return -1;
	return 0;
}

static bool
key_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool
store_key_valid(const char *key, bool as_prefix)
{
	size_t n, seg = 0;

	if (key == NULL)
		return false;
	n = strlen(key);
	if (n > STORE_MAX_KEY || (n == 0 && !as_prefix))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = key[i];

		if (c == '/') {
			if (seg == 0)
				return false; /* leading '/' or "//" */
			seg = 0;
			continue;
		}
		if (!key_char(c))
			return false;
		/* no ".", "..", hidden names or temporaries (".x.tmp.") */
		if (seg == 0 && c == '.')
			return false;
		seg++;
	}
	/* an object key ends with a name, a prefix may end with '/' */
	return as_prefix || seg > 0;
}

static int
bad_key(struct ops_err *err, const char *what, const char *key)
{
	return ops_fail(err, OPS_E_INVALID, false,
			"store: %s '%.100s%s' is not allowed: segments of "
			"A-Z a-z 0-9 . _ - (not starting with '.') joined "
			"by '/', at most %d bytes",
			what, key != NULL ? key : "",
			key != NULL && strlen(key) > 100 ? "..." : "",
			STORE_MAX_KEY);
}

static const struct store_provider_ops *
ops_of(enum store_provider p)
{
	switch (p) {
	case STORE_LOCAL:
		return &store_local_ops;
	case STORE_S3:
		return &store_s3_ops;
	case STORE_GCS:
		return &store_gcs_ops;
	}
	return NULL;
}

int
store_open(const struct ops_config *cfg, enum store_provider p,
	   const volatile sig_atomic_t *stop, struct store **out,
	   struct ops_err *err)
{
	struct store *s;
	int r;

	*out = NULL;
	if (ops_of(p) == NULL)
		return ops_fail(err, OPS_E_INVALID, false,
				"store: unknown provider %d", (int)p);
	s = xcalloc(1, sizeof(*s));
	s->provider = p;
	s->cfg = cfg;
	s->stop = stop;
	s->ops = ops_of(p);
	r = s->ops->open(s, err);
	if (r != 0) {
		free(s->root);
		free(s);
		return r;
	}
	*out = s;
	return 0;
}

void
store_free(struct store *s)
{
	if (s == NULL)
		return;
	s->ops->close(s);
	free(s->root);
	free(s);
}

enum store_provider
store_provider_of(const struct store *s)
{
	return s->provider;
}

/* The key of location in this store, or NULL (err filled). */
static const char *
location_key(struct store *s, const char *location, struct ops_err *err)
{
	size_t rl = strlen(s->root);
	const char *key;

	if (location == NULL || strncmp(location, s->root, rl) != 0) {
		(void)ops_fail(err, OPS_E_INVALID, false,
			       "store: location '%.200s' is not in this %s "
			       "store (%s...)",
			       location != NULL ? location : "",
			       store_provider_name(s->provider), s->root);
		return NULL;
	}
	key = location + rl;
	if (!store_key_valid(key, false)) {
		(void)bad_key(err, "object key of the location", key);
		return NULL;
	}
	return key;
}

int
store_writer_open(struct store *s, const char *key, const char *content_type,
		  struct store_writer **out, struct ops_err *err)
{
	struct store_writer *w;
	int r;

	*out = NULL;
	if (!store_key_valid(key, false))
		return bad_key(err, "object key", key);
	if (ops_stopped(s->stop))
		return ops_fail(err, OPS_E_STOPPED, true,
				"store: stopped before writing '%s'", key);
	w = xcalloc(1, sizeof(*w));
	w->s = s;
	snprintf(w->key, sizeof(w->key), "%s", key);
	w->sha = EVP_MD_CTX_new();
	if (w->sha == NULL ||
	    EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL) != 1)
		abort(); /* out of memory, as xmalloc */
	r = s->ops->w_open(s, key,
			   content_type != NULL ? content_type
						: "application/octet-stream",
			   &w->impl, err);
	if (r != 0) {
		EVP_MD_CTX_free(w->sha);
		free(w);
		return r;
	}
	*out = w;
	return 0;
}

int
store_write(struct store_writer *w, const void *data, size_t len,
	    struct ops_err *err)
{
	if (len == 0)
		return 0;
	if (ops_stopped(w->s->stop))
		return ops_fail(err, OPS_E_STOPPED, true,
				"store: stopped while writing '%s'", w->key);
	if (EVP_DigestUpdate(w->sha, data, len) != 1)
		abort();
	w->size += (long long)len;
	return w->s->ops->w_write(w->impl, data, len, err);
}

int
store_writer_commit(struct store_writer *w, struct store_object *obj,
		    struct ops_err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	int r;

	memset(obj, 0, sizeof(*obj));
	if (ops_stopped(w->s->stop)) {
		r = ops_fail(err, OPS_E_STOPPED, true,
			     "store: stopped before committing '%s'", w->key);
		store_writer_abort(w);
		return r;
	}
	if (EVP_DigestFinal_ex(w->sha, md, &n) != 1 || n != 32)
		abort();
	r = w->s->ops->w_commit(w->impl, err); /* frees impl */
	if (r == 0) {
		for (unsigned int i = 0; i < n; i++)
			snprintf(obj->sha256 + 2 * i, 3, "%02x", md[i]);
		obj->size = w->size;
		snprintf(obj->location, sizeof(obj->location), "%s%s",
			 w->s->root, w->key);
	}
	EVP_MD_CTX_free(w->sha);
	free(w);
	return r;
}

void
store_writer_abort(struct store_writer *w)
{
	if (w == NULL)
		return;
	w->s->ops->w_abort(w->impl);
	EVP_MD_CTX_free(w->sha);
	free(w);
}

int
store_delete(struct store *s, const char *location, struct ops_err *err)
{
	const char *key = location_key(s, location, err);

	if (key == NULL)
		return OPS_E_INVALID;
	return s->ops->del(s, key, err);
}

int
store_exists(struct store *s, const char *location, struct ops_err *err)
{
	const char *key = location_key(s, location, err);

	if (key == NULL)
		return OPS_E_INVALID;
	return s->ops->exists(s, key, err);
}

struct list_ctx {
	struct store *s;
	int (*fn)(void *arg, const char *location);
	void *arg;
	struct buf loc;
};

static int
list_one(void *arg, const char *key)
{
	struct list_ctx *lc = arg;
	int r;

	buf_reset(&lc->loc);
	buf_adds(&lc->loc, lc->s->root);
	buf_adds(&lc->loc, key);
	r = lc->fn(lc->arg, buf_str(&lc->loc));
	return r;
}

int
store_list(struct store *s, const char *prefix,
	   int (*fn)(void *arg, const char *location), void *arg,
	   struct ops_err *err)
{
	struct list_ctx lc = { s, fn, arg, BUF_INIT };
	int r;

	if (prefix == NULL)
		prefix = "";
	if (!store_key_valid(prefix, true))
		return bad_key(err, "list prefix", prefix);
	r = s->ops->list(s, prefix, list_one, &lc, err);
	buf_release(&lc.loc);
	return r;
}

int
store_sweep(struct store *s, const char *prefix, long older_than_s,
	    int *removed, struct ops_err *err)
{
	int n = 0, r;

	if (removed != NULL)
		*removed = 0;
	if (prefix == NULL)
		prefix = "";
	if (!store_key_valid(prefix, true))
		return bad_key(err, "sweep prefix", prefix);
	if (older_than_s < 60)
		return ops_fail(err, OPS_E_INVALID, false,
				"store: a sweep of writes younger than %ld s "
				"could remove one in progress: at least 60",
				older_than_s);
	r = s->ops->sweep(s, prefix, time(NULL) - older_than_s, &n, err);
	if (removed != NULL)
		*removed = n;
	return r;
}

int
store_url(struct store *s, const char *location, long expires_s, char **url,
	  struct ops_err *err)
{
	const char *key;

	*url = NULL;
	if (expires_s < 1 || expires_s > SIGV4_MAX_EXPIRES)
		return ops_fail(err, OPS_E_INVALID, false,
				"store: a link's validity of %ld s is not "
				"allowed: 1 to %d s (7 days)",
				expires_s, SIGV4_MAX_EXPIRES);
	key = location_key(s, location, err);
	if (key == NULL)
		return OPS_E_INVALID;
	return s->ops->url(s, key, expires_s, url, err);
}
