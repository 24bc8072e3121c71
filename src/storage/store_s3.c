/*
 * The S3 and GCS providers, both through the S3 client (storage/s3.h):
 * GCS's XML API takes the same requests, signed with an HMAC key (SigV4,
 * region "auto") or carrying a service account's OAuth2 token
 * (storage/gcs_auth.h).
 *
 * The writer streams: it buffers up to one part (the multipart
 * threshold). A commit with no more than that is one PUT; past it the
 * writer starts a multipart upload and sends each part as it fills, on a
 * thread while the next part fills, so memory stays at two parts whatever
 * the size; it completes the upload at commit and aborts it on any
 * failure or on store_writer_abort().
 */
#include "storage/store_internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "storage/aws_creds.h"
#include "storage/gcs_auth.h"
#include "storage/s3.h"

#define DEFAULT_PART_MB 8
#define MAX_PART_MB	5120
#define DEFAULT_TIMEOUT 60

struct s3_store {
	struct s3_client *c;
	/* the writer whose part is in flight on its thread: the client is
	 * its until quiesce() */
	struct s3_writer *busy;
	const volatile sig_atomic_t *stop; /* the store's */
	size_t part;	       /* the multipart threshold and part size */
	struct gcs_auth *auth; /* GCS with a service account, else NULL */
	/* S3 with container or IMDS credentials, else NULL: the client's
	 * creds hook points at it, so it goes after the client */
	struct aws_creds *creds;
};

/* A part going up on a thread of its own while the next one fills. */
struct part_job {
	pthread_t tid;
	bool running; /* the thread is on it */
	bool done;    /* joined; r and err wait for the writer */
	struct s3_writer *w;
	const unsigned char *data;
	size_t len;
	int number;
	char *etag; /* the writer's etags[number - 1] */
	int r;
	struct ops_err err;
};

struct s3_writer {
	struct s3_store *st;
	char *key; /* the object's name: privacy-exports/<key> */
	char *ctype;
	unsigned char *buf; /* the part being filled */
	size_t len;
	unsigned char *spare; /* the part in flight, or free; NULL at first */
	struct part_job job;
	char *upload_id; /* NULL until the first part goes */
	char **etags;
	int nparts, cap;
};

/* A configured number within [min, max]; def when 0 (a cfg not from
 * config_load(), which checks the range itself). */
static int
cfg_long(const char *name, long v, long def, long min, long max,
	 const char *unit, long *out, struct ops_err *err)
{
	*out = v != 0 ? v : def;
	if (*out < min || *out > max)
		return ops_fail(err, OPS_E_CONFIG, false,
				"%s=%ld is not allowed: a whole number of %s "
				"from %ld to %ld",
				name, v, unit, min, max);
	return 0;
}

/* The settings both providers share: part size and timeout. */
static int
common_opts(const struct ops_config *cfg, struct s3_opts *o,
	    struct http_policy *pol, struct ops_err *err)
{
	long mb, timeout;
	int r;

	r = cfg_long("APEXOPS_S3_MULTIPART_THRESHOLD_MB",
		     cfg != NULL ? cfg->s3_multipart_threshold_mb : 0,
		     DEFAULT_PART_MB, 5, MAX_PART_MB, "MiB", &mb, err);
	if (r != 0)
		return r;
	r = cfg_long("APEXOPS_STORAGE_TIMEOUT_S",
		     cfg != NULL ? cfg->storage_timeout_s : 0, DEFAULT_TIMEOUT,
		     1, 3600, "seconds", &timeout, err);
	if (r != 0)
		return r;
	o->multipart_threshold = (size_t)mb << 20;
	o->part_size = (size_t)mb << 20;
	http_policy_default(pol);
	pol->timeout_ms = timeout * 1000;
	if (pol->connect_timeout_ms > pol->timeout_ms)
		pol->connect_timeout_ms = pol->timeout_ms;
	o->policy = pol;
	return 0;
}

static int
bucket_of(const struct store *s, const char **out, struct ops_err *err)
{
	const char *b = s->cfg != NULL ? s->cfg->privacy_export_bucket : NULL;

	if (b == NULL || b[0] == '\0')
		return ops_fail(err, OPS_E_CONFIG, false,
				"PRIVACY_EXPORT_BUCKET is not set: "
				"PRIVACY_EXPORT_PROVIDER=%s needs a bucket",
				store_provider_name(s->provider));
	*out = b;
	return 0;
}

static int
finish_open(struct store *s, struct s3_opts *o, const char *scheme,
	    struct gcs_auth *auth, struct ops_err *err)
{
	struct s3_store *st = xcalloc(1, sizeof(*st));
	struct ops_err sub = OPS_ERR_INIT;
	bool gcs = strcmp(scheme, "gs") == 0;
	const char *var;
	int r;

	r = s3_client_new(o, &st->c, &sub);
	if (r != 0) {
		free(st);
		gcs_auth_free(auth);
		/* name the variable (s3_opts_from_env checked the AWS ones) */
		if (strstr(sub.msg, "bucket") != NULL)
			var = "PRIVACY_EXPORT_BUCKET";
		else if (strstr(sub.msg, "endpoint") != NULL)
			var = gcs ? "APEXOPS_GCS_ENDPOINT"
				  : "AWS_ENDPOINT_URL_S3";
		else if (gcs && strstr(sub.msg, "access key") != NULL)
			var = "APEXOPS_GCS_HMAC_ACCESS_ID";
		else
			var = "PRIVACY_EXPORT_PROVIDER";
		return ops_fail(err, r, sub.transient, "%s: %s", var, sub.msg);
	}
	s3_client_set_stop(st->c, s->stop);
	st->stop = s->stop;
	st->part = o->part_size;
	st->auth = auth;
	st->creds = o->provider; /* taken: the store frees it */
	o->provider = NULL;
	s->impl = st;
	s->root = xasprintf("%s://%s/" STORE_BUCKET_PREFIX, scheme, o->bucket);
	return 0;
}

static int
s3_open(struct store *s, struct ops_err *err)
{
	struct s3_opts o;
	struct http_policy pol;
	const char *bucket = NULL;
	int r;

	r = bucket_of(s, &bucket, err);
	if (r != 0)
		return r;
	r = s3_opts_from_env(&o, bucket, err);
	if (r != 0)
		return r;
	r = common_opts(s->cfg, &o, &pol, err);
	/* temporary credentials: one fetch now, so that a misconfigured
	 * source fails here, naming it, and not at the first upload */
	if (r == 0)
		r = s3_opts_fetch_creds(&o, s->stop, err);
	if (r == 0)
		r = finish_open(s, &o, "s3", NULL, err); /* copies o */
	s3_opts_release(&o); /* wipes what the shared files gave */
	return r;
}

static int
gcs_bearer(void *arg, char **token, struct ops_err *err)
{
	return gcs_auth_token(arg, token, err);
}

static int
gcs_open(struct store *s, struct ops_err *err)
{
	const struct ops_config *cfg = s->cfg;
	struct s3_opts o;
	struct http_policy pol;
	struct gcs_auth *auth = NULL;
	const char *bucket = NULL;
	int r;

	r = bucket_of(s, &bucket, err);
	if (r != 0)
		return r;
	memset(&o, 0, sizeof(o));
	r = common_opts(s->cfg, &o, &pol, err);
	if (r != 0)
		return r;
	o.bucket = bucket;
	o.region = "auto";
	o.endpoint = cfg->gcs_endpoint != NULL && cfg->gcs_endpoint[0] != '\0'
			     ? cfg->gcs_endpoint
			     : "https://storage.googleapis.com";
	if (cfg->gcs_hmac_access_id != NULL &&
	    cfg->gcs_hmac_access_id[0] != '\0') {
		if (cfg->gcs_hmac_secret == NULL ||
		    cfg->gcs_hmac_secret[0] == '\0')
			return ops_fail(err, OPS_E_CONFIG, false,
					"APEXOPS_GCS_HMAC_SECRET is not set: "
					"APEXOPS_GCS_HMAC_ACCESS_ID needs its "
					"secret (or APEXOPS_GCS_HMAC_SECRET_"
					"FILE)");
		o.access_key_id = cfg->gcs_hmac_access_id;
		o.secret_access_key = cfg->gcs_hmac_secret;
	} else if (cfg->google_application_credentials != NULL &&
		   cfg->google_application_credentials[0] != '\0') {
		r = gcs_auth_new(cfg->google_application_credentials, &pol,
				 s->stop, &auth, err);
		if (r != 0)
			return r;
		o.bearer = gcs_bearer;
		o.bearer_arg = auth;
	} else {
		return ops_fail(err, OPS_E_CONFIG, false,
				"PRIVACY_EXPORT_PROVIDER=gcs needs "
				"credentials: APEXOPS_GCS_HMAC_ACCESS_ID and "
				"APEXOPS_GCS_HMAC_SECRET (an HMAC key), or "
				"GOOGLE_APPLICATION_CREDENTIALS (a "
				"service-account key file)");
	}
	return finish_open(s, &o, "gs", auth, err);
}

static void
s3_close(struct store *s)
{
	struct s3_store *st = s->impl;

	if (st == NULL)
		return;
	s3_client_free(st->c);
	gcs_auth_free(st->auth);
	aws_creds_free(st->creds);
	free(st);
	s->impl = NULL;
}

static char *
object_name(const char *key)
{
	return xasprintf(STORE_BUCKET_PREFIX "%s", key);
}

static int
s3_w_open(struct store *s, const char *key, const char *ctype, void **out,
	  struct ops_err *err)
{
	struct s3_writer *w = xcalloc(1, sizeof(*w));

	(void)err;
	w->st = s->impl;
	w->key = object_name(key);
	w->ctype = xstrdup(ctype);
	w->buf = xmalloc(w->st->part);
	*out = w;
	return 0;
}

static void *
part_thread(void *arg)
{
	struct part_job *j = arg;

	j->r = s3_multipart_upload_part(j->w->st->c, j->w->key, j->w->upload_id,
					j->number, j->data, j->len, j->etag,
					&j->err);
	return NULL;
}

/* Join the part in flight on st's client, if any, keeping its result
 * for its writer: then the client is free for anyone. */
static void
quiesce(struct s3_store *st)
{
	struct s3_writer *w = st->busy;

	st->busy = NULL;
	if (w != NULL && w->job.running) {
		pthread_join(w->job.tid, NULL);
		w->job.running = false;
		w->job.done = true;
	}
}

/* Wait for w's part in flight, if any; its result. */
static int
wait_part(struct s3_writer *w, struct ops_err *err)
{
	struct part_job *j = &w->job;

	if (w->st->busy == w)
		quiesce(w->st);
	if (!j->done)
		return 0;
	j->done = false;
	if (j->r != 0 && err != NULL)
		*err = j->err;
	return j->r;
}

/*
 * Send the full buffer as the next part, starting the upload first. When
 * more is to come (async), the part goes up on a thread while the caller
 * fills the other buffer: reading and encoding the export overlap the
 * upload, and memory stays at two parts. One s3_client serves both, one
 * at a time: the caller only touches it after wait_part().
 */
static int
send_part(struct s3_writer *w, bool async, struct ops_err *err)
{
	struct part_job *j = &w->job;
	unsigned char *full;
	int r;

	r = wait_part(w, err);
	if (r != 0)
		return r;
	quiesce(w->st); /* another writer's part */
	if (w->upload_id == NULL) {
		r = s3_multipart_create(w->st->c, w->key, w->ctype,
					&w->upload_id, err);
		if (r != 0)
			return r;
	}
	if (w->nparts == S3_MAX_PARTS)
		return ops_fail(err, OPS_E_INVALID, false,
				"store: '%s' needs more than %d parts of %zu "
				"MiB: raise APEXOPS_S3_MULTIPART_THRESHOLD_MB",
				w->key, S3_MAX_PARTS, w->st->part >> 20);
	if (w->nparts == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 16;
		w->etags = xrealloc(w->etags, (size_t)w->cap * sizeof(char *));
	}
	w->etags[w->nparts] = xcalloc(1, 67);
	w->nparts++;
	memset(j, 0, sizeof(*j));
	j->w = w;
	j->data = w->buf;
	j->len = w->len;
	j->number = w->nparts;
	j->etag = w->etags[w->nparts - 1];
	if (async) {
		/* the caller goes on with the other buffer */
		full = w->buf;
		w->buf = w->spare != NULL ? w->spare : xmalloc(w->st->part);
		w->spare = full;
		w->len = 0;
		if (pthread_create(&j->tid, NULL, part_thread, j) == 0) {
			j->running = true;
			w->st->busy = w;
			return 0;
		}
		/* no thread: send it here */
	}
	part_thread(j);
	if (j->r != 0 && err != NULL)
		*err = j->err;
	if (!async)
		w->len = 0;
	return j->r;
}

static int
s3_w_write(void *arg, const void *data, size_t len, struct ops_err *err)
{
	struct s3_writer *w = arg;
	const unsigned char *p = data;

	while (len > 0) {
		size_t n;
		int r;

		/* a full buffer goes only when more follows: an object of
		 * exactly one part is one PUT */
		if (w->len == w->st->part) {
			r = send_part(w, true, err);
			if (r != 0)
				return r;
		}
		n = w->st->part - w->len;
		if (n > len)
			n = len;
		memcpy(w->buf + w->len, p, n);
		w->len += n;
		p += n;
		len -= n;
	}
	return 0;
}

static void
s3_w_free(struct s3_writer *w, bool abort_upload)
{
	(void)wait_part(w, NULL); /* its result no longer matters */
	if (abort_upload && w->upload_id != NULL) {
		/* a stop is why many uploads are aborted: the abort itself
		 * must still go out, or the parts stay */
		static const volatile sig_atomic_t never = 0;
		struct ops_err e = OPS_ERR_INIT;

		quiesce(w->st); /* another writer's part */
		s3_client_set_stop(w->st->c, &never);
		/* best effort; a lifecycle rule on incomplete uploads is the
		 * backstop (docs/runbook.md) */
		if (s3_multipart_abort(w->st->c, w->key, w->upload_id, &e) != 0)
			log_warn("store abort of upload key=%s failed: %s",
				 log_q(w->key), e.msg);
		s3_client_set_stop(w->st->c, w->st->stop);
	}
	for (int i = 0; i < w->nparts; i++)
		free(w->etags[i]);
	free(w->etags);
	free(w->upload_id);
	free(w->buf);
	free(w->spare);
	free(w->ctype);
	free(w->key);
	free(w);
}

static int
s3_w_commit(void *arg, struct ops_err *err)
{
	struct s3_writer *w = arg;
	int r;

	if (w->upload_id == NULL) {
		quiesce(w->st);
		r = s3_put_object(w->st->c, w->key, w->buf, w->len, w->ctype,
				  err);
		s3_w_free(w, false);
		return r;
	}
	r = send_part(w, false, err); /* the last part, after the one in
				       * flight */
	if (r == 0)
		r = s3_multipart_complete(w->st->c, w->key, w->upload_id,
					  (const char *const *)w->etags,
					  w->nparts, err);
	s3_w_free(w, r != 0);
	return r;
}

static void
s3_w_abort(void *arg)
{
	if (arg != NULL)
		s3_w_free(arg, true);
}

static int
s3_del(struct store *s, const char *key, struct ops_err *err)
{
	struct s3_store *st = s->impl;
	char *name = object_name(key);
	int r;

	quiesce(st);
	r = s3_delete_object(st->c, name, err);

	free(name);
	return r;
}

static int
s3_exists(struct store *s, const char *key, struct ops_err *err)
{
	struct s3_store *st = s->impl;
	char *name = object_name(key);
	int r;

	quiesce(st);
	r = s3_head_object(st->c, name, err);

	free(name);
	return r;
}

struct list_arg {
	int (*fn)(void *arg, const char *key);
	void *arg;
};

static int
list_strip(void *arg, const char *name)
{
	struct list_arg *la = arg;
	const char *key = name + strlen(STORE_BUCKET_PREFIX);

	/* S3 matched the prefix; objects that are not exports' are not
	 * ours to show */
	if (strncmp(name, STORE_BUCKET_PREFIX, strlen(STORE_BUCKET_PREFIX)) !=
		    0 ||
	    !store_key_valid(key, false))
		return 0;
	return la->fn(la->arg, key);
}

static int
s3_list(struct store *s, const char *prefix,
	int (*fn)(void *arg, const char *key), void *arg, struct ops_err *err)
{
	struct s3_store *st = s->impl;
	struct list_arg la = { fn, arg };
	char *name = object_name(prefix);
	int r;

	quiesce(st);
	r = s3_list_objects(st->c, name, list_strip, &la, err);

	free(name);
	return r;
}

struct sweep_arg {
	time_t cutoff;
	/* uploads to abort, gathered first: the listing's pages are not
	 * disturbed by aborts under them */
	char **keys, **ids;
	int n, cap;
};

static int
sweep_one(void *arg, const char *name, const char *upload_id, time_t initiated)
{
	struct sweep_arg *sa = arg;

	/* an upload of unknown age is left alone */
	if (initiated == 0 || initiated >= sa->cutoff)
		return 0;
	if (sa->n == sa->cap) {
		sa->cap = sa->cap ? 2 * sa->cap : 16;
		sa->keys = xrealloc(sa->keys, (size_t)sa->cap * sizeof(char *));
		sa->ids = xrealloc(sa->ids, (size_t)sa->cap * sizeof(char *));
	}
	sa->keys[sa->n] = xstrdup(name);
	sa->ids[sa->n] = xstrdup(upload_id);
	sa->n++;
	return 0;
}

static int
s3_sweep(struct store *s, const char *prefix, time_t cutoff, int *removed,
	 struct ops_err *err)
{
	struct s3_store *st = s->impl;
	struct sweep_arg sa = { cutoff, NULL, NULL, 0, 0 };
	char *name = object_name(prefix);
	int r;

	quiesce(st);
	r = s3_list_uploads(st->c, name, sweep_one, &sa, err);
	for (int i = 0; i < sa.n; i++) {
		if (r == 0) {
			r = s3_multipart_abort(st->c, sa.keys[i], sa.ids[i],
					       err);
			if (r == OPS_E_NOTFOUND) {
				ops_err_clear(err); /* gone meanwhile */
				r = 0;
			} else if (r == 0) {
				(*removed)++;
			}
		}
		free(sa.keys[i]);
		free(sa.ids[i]);
	}
	free(sa.keys);
	free(sa.ids);
	free(name);
	return r;
}

static int
s3_url(struct store *s, const char *key, long expires_s, char **url,
       struct ops_err *err)
{
	struct s3_store *st = s->impl;
	char *name = object_name(key);
	int r;

	/* no request: signing only reads the client and the key, which a
	 * part in flight leaves alone */
	if (st->auth != NULL)
		r = gcs_auth_presign_get(st->auth, st->c, name, expires_s, url,
					 err);
	else
		r = s3_presign_get(st->c, name, expires_s, url, err);
	free(name);
	return r;
}

const struct store_provider_ops store_s3_ops = {
	.open = s3_open,
	.close = s3_close,
	.w_open = s3_w_open,
	.w_write = s3_w_write,
	.w_commit = s3_w_commit,
	.w_abort = s3_w_abort,
	.del = s3_del,
	.exists = s3_exists,
	.list = s3_list,
	.url = s3_url,
	.sweep = s3_sweep,
};

const struct store_provider_ops store_gcs_ops = {
	.open = gcs_open,
	.close = s3_close,
	.w_open = s3_w_open,
	.w_write = s3_w_write,
	.w_commit = s3_w_commit,
	.w_abort = s3_w_abort,
	.del = s3_del,
	.exists = s3_exists,
	.list = s3_list,
	.url = s3_url,
	.sweep = s3_sweep,
};
