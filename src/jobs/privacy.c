/*
 * Privacy requests: filing, one request's run by a worker, and expiry
 * (see privacy.h).
 */
#include "jobs/privacy.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/parse.h"
#include "core/stop.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "jobs/job.h"
#include "jobs/privacy_delete.h"
#include "jobs/privacy_export.h"
#include "jobs/privacy_id.h"
#include "storage/store.h"

#define NPROVIDERS 3 /* enum store_provider */

int
privacy_file(struct db *db, const char *kind, const char *tenant,
	     const char *user, const char *format, long long *id,
	     struct ops_err *err)
{
	char t[PRIVACY_UUID_LEN + 1], u[PRIVACY_UUID_LEN + 1];
	const char *params[4];
	char *v = NULL;
	int r;

	*id = 0;
	if (kind == NULL ||
	    (strcmp(kind, "export") != 0 && strcmp(kind, "delete") != 0))
		return ops_fail(err, OPS_E_INVALID, false,
				"invalid request kind: use export or delete");
	if (format != NULL && strcmp(format, "jsonl") != 0 &&
	    strcmp(format, "json") != 0 && strcmp(format, "csv") != 0)
		return ops_fail(err, OPS_E_INVALID, false,
				"invalid format '%.20s': use jsonl (or json) "
				"or csv",
				format);
	if (format != NULL && strcmp(kind, "delete") == 0)
		return ops_fail(err, OPS_E_INVALID, false,
				"a delete request takes no format");
	r = privacy_uuid_parse("tenant id", tenant, t, err);
	if (r == 0)
		r = privacy_uuid_parse("user id", user, u, err);
	if (r != 0)
		return r;
	params[0] = kind;
	params[1] = t;
	params[2] = u;
	params[3] = format; /* NULL: SQL NULL, the function's default */
	r = db_query_value(db, "SELECT apexops.request_privacy($1, $2, $3, $4)",
			   4, params, &v, err);
	if (r == 0 && v != NULL)
		*id = strtoll(v, NULL, 10);
	free(v);
	return r;
}

/* ---- one request ------------------------------------------------------- */

/* The recorded locations of a user's exports ($1 tenant, $2 user): what an
 * erasure deletes besides the provider's listing, and what its preview
 * counts. */
#define EXPORT_LOCATIONS                                                \
	" FROM (SELECT DISTINCT location FROM apexops.privacy_requests" \
	" WHERE tenant_id = $1::uuid AND user_id = $2::uuid"            \
	" AND kind = 'export' AND location IS NOT NULL) l"

int
privacy_delete_preview(struct db *db, const char *tenant, const char *user,
		       char **json, struct ops_err *err)
{
	static const char count_sql[] = "SELECT count(*)" EXPORT_LOCATIONS;
	const char *params[2] = { tenant, user };
	struct privacy_subject s;
	char *text = NULL, *exports = NULL;
	long long total = 0;
	json_t *doc;
	int r;

	*json = NULL;
	memset(&s, 0, sizeof(s));
	snprintf(s.tenant, sizeof(s.tenant), "%s", tenant);
	snprintf(s.user, sizeof(s.user), "%s", user);
	r = db_begin(db, err);
	if (r == 0)
		r = db_exec(db, "SET TRANSACTION READ ONLY", 0, NULL, NULL,
			    err);
	if (r == 0)
		r = privacy_erase_preview(db, &s, &text, &total, err);
	if (r == 0)
		r = db_query_value(db, count_sql, 2, params, &exports, err);
	db_rollback(db);
	if (r == 0) {
		doc = json_loads(text, 0, NULL);
		if (doc == NULL)
			abort(); /* our own JSON */
		json_object_set_new(
			doc, "exports_to_delete",
			json_integer(exports ? strtoll(exports, NULL, 10) : 0));
		*json = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(doc);
		if (*json == NULL)
			abort(); /* jansson fails only on allocation */
	}
	free(text);
	free(exports);
	return r;
}

struct req {
	long long id;
	int attempt;
	char kind[8];
	struct privacy_subject s;
	bool csv;
	long long requested_ms;
};

static int
connect_own(const struct ops_config *cfg, const char *db_url,
	    const volatile sig_atomic_t *stop, struct db **db,
	    struct ops_err *err)
{
	struct db_opts o = { 0 };

	o.url = db_url;
	o.ssl = cfg->database_ssl;
	o.appname = "apexops/privacy";
	o.connect_timeout_s = cfg->connect_timeout_s;
	o.retries = cfg->connect_retries;
	/* no statement timeout: an export's COPY of a big user is one
	 * long statement; stop requests end it through the sink */
	o.statement_timeout_ms = 0;
	o.lock_timeout_ms = cfg->lock_timeout_ms;
	o.stop = stop;
	return db_connect(&o, db, err);
}

/*
 * Take the request for this attempt; *mine false when it is finished or
 * a newer attempt is running it. A queued or failed request (never
 * started, or its last attempt failed and said so) is taken whatever
 * its attempt number: `apexops queue retry` starts a job's attempts
 * from 1 again, and an operator retries a failed request that way.
 */
static int
claim(struct db *db, struct req *q, long long job_id, bool *mine,
      struct ops_err *err)
{
	static const char sql[] =
		"UPDATE apexops.privacy_requests SET status = 'running',"
		" attempt = $2::int, started_at = COALESCE(started_at, now()),"
		" finished_at = NULL, error = NULL,"
		" job_id = COALESCE(job_id, $3::bigint)"
		" WHERE id = $1::bigint AND (status IN ('queued', 'failed')"
		" OR (status = 'running' AND attempt < $2::int))"
		" RETURNING kind, tenant_id, user_id, COALESCE(format, ''),"
		" (extract(epoch FROM requested_at) * 1000)::bigint";
	char id_s[24], att_s[16], job_s[24];
	const char *params[3] = { id_s, att_s, job_s };
	struct db_res *res = NULL;
	int r;

	*mine = false;
	snprintf(id_s, sizeof(id_s), "%lld", q->id);
	snprintf(att_s, sizeof(att_s), "%d", q->attempt);
	snprintf(job_s, sizeof(job_s), "%lld", job_id);
	r = db_query(db, sql, 3, params, &res, err);
	if (r != 0 || db_res_rows(res) == 0)
		goto out;
	snprintf(q->kind, sizeof(q->kind), "%s", db_res_get(res, 0, 0));
	r = privacy_uuid_parse("tenant id", db_res_get(res, 0, 1), q->s.tenant,
			       err);
	if (r == 0)
		r = privacy_uuid_parse("user id", db_res_get(res, 0, 2),
				       q->s.user, err);
	q->s.request_id = q->id;
	q->csv = strcmp(db_res_get(res, 0, 3), "csv") == 0;
	q->requested_ms = db_res_ll(res, 0, 4);
	*mine = r == 0;
out:
	db_res_free(res);
	return r;
}

/* In a transaction: lock the request row if this attempt still owns
 * it; *mine false otherwise. */
static int
fence(struct db *db, const struct req *q, bool *mine, struct ops_err *err)
{
	static const char sql[] =
		"SELECT count(*) FROM (SELECT 1 FROM apexops.privacy_requests"
		" WHERE id = $1::bigint AND attempt = $2::int"
		" AND status = 'running' FOR UPDATE) s";
	char id_s[24], att_s[16];
	const char *params[2] = { id_s, att_s };
	char *v = NULL;
	int r;

	snprintf(id_s, sizeof(id_s), "%lld", q->id);
	snprintf(att_s, sizeof(att_s), "%d", q->attempt);
	r = db_query_value(db, sql, 2, params, &v, err);
	*mine = r == 0 && v != NULL && strcmp(v, "1") == 0;
	free(v);
	return r;
}

/* Record a failure: failed when permanent or the job has no attempt
 * left, else queued for the queue's retry. */
static void
record_failure(struct db *db, const struct req *q, long long job_id,
	       bool permanent, const char *msg)
{
	static const char sql[] =
		"UPDATE apexops.privacy_requests r SET"
		" status = CASE WHEN $3::bool OR COALESCE((SELECT j.attempt >="
		" j.max_attempts FROM apexops.queue_jobs j WHERE j.id ="
		" $4::bigint), true) THEN 'failed' ELSE 'queued' END,"
		" finished_at = CASE WHEN $3::bool OR COALESCE((SELECT"
		" j.attempt >= j.max_attempts FROM apexops.queue_jobs j WHERE"
		" j.id = $4::bigint), true) THEN now() END,"
		" error = $5"
		" WHERE r.id = $1::bigint AND r.attempt = $2::int"
		" AND r.status = 'running'";
	char id_s[24], att_s[16], job_s[24];
	const char *params[5] = { id_s, att_s, permanent ? "true" : "false",
				  job_s, msg };
	struct ops_err e2 = OPS_ERR_INIT;

	db_rollback(db);
	snprintf(id_s, sizeof(id_s), "%lld", q->id);
	snprintf(att_s, sizeof(att_s), "%d", q->attempt);
	snprintf(job_s, sizeof(job_s), "%lld", job_id);
	if (db_exec(db, sql, 5, params, NULL, &e2) != 0)
		log_warn("privacy request=%lld cannot record its failure: %s",
			 q->id, e2.msg);
}

struct sink_arg {
	struct store_writer *w;
	volatile sig_atomic_t *stop;
	long delay_ms; /* tests only, see test_delay_ms() */
};

static int
sink_write(void *arg, const void *data, size_t len, struct ops_err *err)
{
	struct sink_arg *a = arg;

	if (a->stop != NULL && *a->stop)
		return ops_fail(err, OPS_E_STOPPED, true,
				"export stopped before it finished");
	if (a->delay_ms > 0 && ops_sleep_ms(a->delay_ms, a->stop) != 0)
		return ops_fail(err, OPS_E_STOPPED, true,
				"export stopped before it finished");
	return store_write(a->w, data, len, err);
}

/*
 * Tests slow an export down to kill its worker in the middle: when the
 * process environment (never a payload or the configuration) sets
 * APEXOPS_TEST_PRIVACY_WRITE_DELAY_MS, each write of the encoder's
 * buffer to the store waits that long. Nothing an operator sets.
 */
static long
test_delay_ms(void)
{
	const char *s = getenv("APEXOPS_TEST_PRIVACY_WRITE_DELAY_MS");
	long v = 0;

	if (s == NULL || parse_long(s, 0, 60000, &v) != 0)
		return 0;
	return v;
}

static int
run_export(struct db *db, const struct ops_config *cfg, struct req *q,
	   volatile sig_atomic_t *stop, bool *permanent, struct ops_err *err)
{
	static const char done_sql[] =
		"UPDATE apexops.privacy_requests SET status = 'completed',"
		" finished_at = now(), provider = $3, location = $4,"
		" size_bytes = $5::bigint, sha256 = $6,"
		" rows_per_table = $7::jsonb, error = NULL,"
		" expires_at = now() + make_interval(days => $8::int)"
		" WHERE id = $1::bigint AND attempt = $2::int";
	struct store *st = NULL;
	struct store_writer *w = NULL;
	struct store_object obj;
	struct sink_arg sa = { NULL, stop, test_delay_ms() };
	struct privacy_sink sink = { sink_write, &sa };
	enum store_provider p;
	char key[160], id_s[24], att_s[16], size_s[24], days_s[16];
	char *counts = NULL;
	bool mine = false;
	int r;

	if (store_provider_parse(cfg->privacy_export_provider, &p) != 0)
		return ops_fail(
			err, OPS_E_CONFIG, false,
			"PRIVACY_EXPORT_PROVIDER: use local, s3 or gcs");
	/* the tenant check before the store is touched (no directory or
	 * upload for a refused request); the export checks it again in
	 * its snapshot */
	r = db_begin(db, err);
	if (r == 0)
		r = privacy_subject_bind(db, &q->s, err);
	db_rollback(db);
	if (r == OPS_E_REFUSED)
		*permanent = true;
	if (r == 0)
		r = store_open(cfg, p, stop, &st, err);
	if (r != 0)
		goto out;
	snprintf(key, sizeof(key), "%s/%s/%lld.%s", q->s.tenant, q->s.user,
		 q->requested_ms, q->csv ? "csv" : "jsonl");
	r = store_writer_open(
		st, key, q->csv ? "text/csv" : "application/x-ndjson", &w, err);
	if (r != 0)
		goto out;
	sa.w = w;
	r = privacy_export_encode(db, &q->s, q->csv, &sink, &counts, err);
	if (r == OPS_E_REFUSED)
		*permanent = true;
	if (r != 0)
		goto out;
	r = db_begin(db, err);
	if (r == 0)
		r = fence(db, q, &mine, err);
	if (r != 0)
		goto out;
	if (!mine) {
		log_info("privacy request=%lld attempt=%d: a newer attempt "
			 "owns it; leaving",
			 q->id, q->attempt);
		goto out; /* r = 0: nothing for this attempt to do */
	}
	r = store_writer_commit(w, &obj, err);
	w = NULL; /* freed by commit whatever the result */
	if (r != 0)
		goto out;
	snprintf(id_s, sizeof(id_s), "%lld", q->id);
	snprintf(att_s, sizeof(att_s), "%d", q->attempt);
	snprintf(size_s, sizeof(size_s), "%lld", obj.size);
	snprintf(days_s, sizeof(days_s), "%ld", cfg->privacy_expiry_days);
	{
		const char *params[8] = {
			id_s,	      att_s,  store_provider_name(p),
			obj.location, size_s, obj.sha256,
			counts,	      days_s
		};

		r = db_exec(db, done_sql, 8, params, NULL, err);
	}
	if (r == 0)
		r = db_commit(db, err);
	if (r == 0)
		log_info("privacy export request=%lld completed location=%s "
			 "bytes=%lld",
			 q->id, obj.location, obj.size);
out:
	store_writer_abort(w);
	db_rollback(db);
	store_free(st);
	free(counts);
	return r;
}

struct locs {
	char **v;
	int n, cap;
};

static int
locs_add(void *arg, const char *location)
{
	struct locs *l = arg;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xrealloc(l->v, (size_t)l->cap * sizeof(*l->v));
	}
	l->v[l->n++] = xstrdup(location);
	return 0;
}

static void
locs_release(struct locs *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Delete every export artifact of the subject: what each provider
 * lists under "<tenant>/<user>/", the locations the request rows
 * recorded, and unfinished writes of killed exports under the prefix;
 * *n counts the deletions. */
static int
delete_artifacts(struct db *db, const struct ops_config *cfg,
		 const struct req *q, const volatile sig_atomic_t *stop,
		 long long *n, long long *outside, struct ops_err *err)
{
	static const char sql[] = "SELECT location" EXPORT_LOCATIONS;
	const char *params[2] = { q->s.tenant, q->s.user };
	struct db_res *res = NULL;
	bool want[NPROVIDERS] = { false };
	struct locs recorded = { 0 };
	enum store_provider p;
	char prefix[80];
	int r;

	*n = 0;
	*outside = 0;
	if (store_provider_parse(cfg->privacy_export_provider, &p) == 0)
		want[p] = true;
	r = db_query(db, sql, 2, params, &res, err);
	if (r != 0)
		return r;
	for (int i = 0; i < db_res_rows(res); i++) {
		if (store_location_provider(db_res_get(res, i, 0), &p) == 0)
			want[p] = true;
		(void)locs_add(&recorded, db_res_get(res, i, 0));
	}
	db_res_free(res);
	snprintf(prefix, sizeof(prefix), "%s/%s/", q->s.tenant, q->s.user);
	for (int k = 0; r == 0 && k < NPROVIDERS; k++) {
		struct locs found = { 0 };
		struct store *st = NULL;

		if (!want[k])
			continue;
		r = store_open(cfg, (enum store_provider)k, stop, &st, err);
		if (r == 0)
			r = store_list(st, prefix, locs_add, &found, err);
		for (int i = 0; r == 0 && i < found.n; i++) {
			r = store_delete(st, found.v[i], err);
			if (r == 0)
				(*n)++;
		}
		/* what the rows recorded; one outside this store (the
		 * directory or bucket was reconfigured since) cannot be
		 * reached from here: counted and logged, not fatal */
		for (int i = 0; r == 0 && i < recorded.n; i++) {
			struct ops_err e = OPS_ERR_INIT;
			int rr;

			if (store_location_provider(recorded.v[i], &p) != 0 ||
			    (int)p != k)
				continue;
			rr = store_delete(st, recorded.v[i], &e);
			if (rr == OPS_E_INVALID) {
				(*outside)++;
				log_warn("privacy request=%lld: an earlier "
					 "export is outside the configured "
					 "store: %s",
					 q->id, e.msg);
			} else if (rr != 0) {
				r = rr;
				if (err != NULL)
					*err = e;
			}
		}
		/* a killed export's unfinished write holds personal data
		 * too: gone with the rest (a write younger than a minute
		 * may be in progress and is left; its request is fenced) */
		if (r == 0) {
			int swept = 0;

			r = store_sweep(st, prefix, 60, &swept, err);
			*n += swept;
		}
		if (r != 0)
			(void)ops_err_prefix(
				err, "delete the earlier exports in %s",
				store_provider_name((enum store_provider)k));
		locs_release(&found);
		store_free(st);
	}
	locs_release(&recorded);
	return r;
}

static int
run_delete(struct db *db, const struct ops_config *cfg, struct req *q,
	   volatile sig_atomic_t *stop, bool *permanent, struct ops_err *err)
{
	static const char prior_sql[] =
		"UPDATE apexops.privacy_requests SET status = 'expired',"
		" expired_at = now(), error = 'artifact deleted by erasure "
		"request ' || $3"
		" WHERE tenant_id = $1::uuid AND user_id = $2::uuid"
		" AND kind = 'export' AND status = 'completed'";
	static const char done_sql[] =
		"UPDATE apexops.privacy_requests SET status = 'completed',"
		" finished_at = now(), receipt = $3::jsonb, error = NULL"
		" WHERE id = $1::bigint AND attempt = $2::int";
	char *receipt = NULL, *text = NULL;
	char id_s[24], att_s[16];
	long long artifacts = 0, outside = 0, total = 0;
	bool mine = false;
	json_t *doc;
	int r;

	/* the tenant check before anything is touched, here or in a
	 * provider */
	r = db_begin(db, err);
	if (r == 0)
		r = privacy_subject_bind(db, &q->s, err);
	db_rollback(db);
	if (r == OPS_E_REFUSED)
		*permanent = true;
	if (r == 0)
		r = delete_artifacts(db, cfg, q, stop, &artifacts, &outside,
				     err);
	if (r != 0)
		return r;
	r = db_begin(db, err);
	if (r == 0)
		r = fence(db, q, &mine, err);
	if (r != 0 || !mine)
		goto out;
	r = privacy_erase(db, &q->s, &receipt, &total, err);
	if (r == OPS_E_REFUSED)
		*permanent = true;
	if (r != 0)
		goto out;
	doc = json_loads(receipt, 0, NULL);
	json_object_set_new(doc, "artifacts_deleted", json_integer(artifacts));
	if (outside > 0)
		json_object_set_new(doc, "artifacts_outside_store",
				    json_integer(outside));
	text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (text == NULL)
		abort(); /* jansson fails only on allocation */
	snprintf(id_s, sizeof(id_s), "%lld", q->id);
	snprintf(att_s, sizeof(att_s), "%d", q->attempt);
	{
		const char *p1[3] = { q->s.tenant, q->s.user, id_s };
		const char *p2[3] = { id_s, att_s, text };

		r = db_exec(db, prior_sql, 3, p1, NULL, err);
		if (r == 0)
			r = db_exec(db, done_sql, 3, p2, NULL, err);
	}
	if (r == 0)
		r = db_commit(db, err);
	if (r == 0)
		log_info("privacy delete request=%lld completed rows=%lld "
			 "artifacts=%lld%s",
			 q->id, total, artifacts,
			 total == 0 ? " (nothing was left)" : "");
out:
	db_rollback(db);
	free(receipt);
	free(text);
	return r;
}

int
privacy_request_run(const struct ops_config *cfg, const char *db_url,
		    long long request_id, long long job_id, int attempt,
		    volatile sig_atomic_t *stop, bool *permanent,
		    struct ops_err *err)
{
	struct db *db = NULL;
	struct req q;
	bool mine = false;
	int r;

	*permanent = false;
	memset(&q, 0, sizeof(q));
	q.id = request_id;
	q.attempt = attempt;
	r = connect_own(cfg, db_url, stop, &db, err);
	if (r != 0)
		return r;
	r = claim(db, &q, job_id, &mine, err);
	if (r != 0 || !mine) {
		if (r == 0)
			log_info("privacy request=%lld attempt=%d: finished "
				 "or owned by a newer attempt; nothing to do",
				 request_id, attempt);
		goto out;
	}
	if (strcmp(q.kind, "export") == 0)
		r = run_export(db, cfg, &q, stop, permanent, err);
	else
		r = run_delete(db, cfg, &q, stop, permanent, err);
	if (r != 0)
		record_failure(db, &q, job_id, *permanent,
			       err != NULL ? err->msg : "failed");
out:
	db_close(db);
	return r;
}

/* ---- expiry ------------------------------------------------------------- */

static void
note_left(struct privacy_expire_result *res, const char *location,
	  const char *why)
{
	res->left++;
	if (res->first_error[0] == '\0')
		snprintf(res->first_error, sizeof(res->first_error),
			 "%.120s: %.120s", location, why);
}

/*
 * A worker killed mid-export leaves an unfinished write (a temporary file,
 * a multipart upload) that no request names; erasure sweeps the user's,
 * and this sweeps the rest, in the provider new exports go to, once they
 * are a day old. stores[] holds what expiry opened (reused, or filled).
 */
static void
sweep_configured(const struct ops_config *cfg,
		 const volatile sig_atomic_t *stop, struct store **stores,
		 struct privacy_expire_result *res)
{
	struct ops_err e = OPS_ERR_INIT;
	enum store_provider p;
	int n = 0;

	if (store_provider_parse(cfg->privacy_export_provider, &p) != 0) {
		snprintf(res->sweep_error, sizeof(res->sweep_error),
			 "unknown provider");
		return;
	}
	if (stores[p] == NULL &&
	    store_open(cfg, p, stop, &stores[p], &e) != 0) {
		snprintf(res->sweep_error, sizeof(res->sweep_error), "%.250s",
			 e.msg);
		log_warn("privacy expiry: no sweep of unfinished writes in "
			 "%s: %s",
			 store_provider_name(p), e.msg);
		return;
	}
	if (store_sweep(stores[p], "", PRIVACY_SWEEP_AGE_S, &n, &e) != 0) {
		snprintf(res->sweep_error, sizeof(res->sweep_error), "%.250s",
			 e.msg);
		log_warn("privacy expiry: sweep of unfinished writes in %s "
			 "failed: %s",
			 store_provider_name(p), e.msg);
	}
	res->swept = n;
	if (n > 0)
		log_info("privacy expiry: swept %d unfinished write(s) older "
			 "than a day from %s",
			 n, store_provider_name(p));
}

int
privacy_expire(struct db *db, const struct ops_config *cfg, bool dry_run,
	       const volatile sig_atomic_t *stop,
	       struct privacy_expire_result *res, struct ops_err *err)
{
	static const char due_sql[] =
		"SELECT id, location FROM apexops.privacy_requests"
		" WHERE kind = 'export' AND status = 'completed'"
		" AND expires_at <= now() ORDER BY expires_at, id";
	static const char mark_sql[] =
		"UPDATE apexops.privacy_requests SET status = 'expired',"
		" expired_at = now() WHERE id = $1::bigint"
		" AND status = 'completed'";
	struct store *stores[NPROVIDERS] = { NULL };
	char store_err[NPROVIDERS][256];
	bool tried[NPROVIDERS] = { false };
	struct db_res *due = NULL;
	int r;

	memset(res, 0, sizeof(*res));
	r = db_query(db, due_sql, 0, NULL, &due, err);
	if (r != 0)
		return r;
	res->due = db_res_rows(due);
	for (int i = 0; !dry_run && i < db_res_rows(due); i++) {
		const char *id = db_res_get(due, i, 0);
		const char *loc = db_res_get(due, i, 1);
		const char *params[1] = { id };
		struct ops_err e = OPS_ERR_INIT;
		enum store_provider p;
		int rr;

		if (stop != NULL && *stop) {
			r = ops_fail(err, OPS_E_STOPPED, true,
				     "expiry stopped after %lld of %lld",
				     res->expired, res->due);
			goto out;
		}
		if (loc != NULL) {
			if (store_location_provider(loc, &p) != 0) {
				note_left(res, loc, "unknown provider");
				continue;
			}
			if (!tried[p]) {
				tried[p] = true;
				if (store_open(cfg, p, stop, &stores[p], &e) !=
				    0)
					snprintf(store_err[p],
						 sizeof(store_err[p]), "%.250s",
						 e.msg);
			}
			if (stores[p] == NULL) {
				note_left(res, loc, store_err[p]);
				continue;
			}
			rr = store_delete(stores[p], loc, &e);
			if (rr == 0)
				rr = store_exists(stores[p], loc, &e);
			if (rr == 0) {
				note_left(res, loc,
					  "still exists after its delete");
				continue;
			}
			if (rr != OPS_E_NOTFOUND) {
				note_left(res, loc, e.msg);
				continue;
			}
		}
		r = db_exec(db, mark_sql, 1, params, NULL, err);
		if (r != 0)
			goto out;
		res->expired++;
	}
	if (!dry_run)
		sweep_configured(cfg, stop, stores, res);
	if (res->left > 0)
		r = ops_fail(err, OPS_E_HTTP, true,
			     "%lld expired export(s) left for the next run "
			     "(%lld expired): %s",
			     res->left, res->expired, res->first_error);
out:
	for (int k = 0; k < NPROVIDERS; k++)
		store_free(stores[k]);
	db_res_free(due);
	return r;
}

int
privacy_expiry_job_run(struct job_ctx *ctx, struct ops_err *err)
{
	struct privacy_expire_result res;
	int r;

	ctx->mode = "execute";
	free(ctx->params);
	ctx->params = xasprintf("{\"expiry_days\": %ld}",
				ctx->cfg->privacy_expiry_days);
	r = privacy_expire(ctx->db, ctx->cfg, false, ctx->stop, &res, err);
	free(ctx->counts);
	ctx->counts = xasprintf("{\"due\": %lld, \"expired\": %lld, "
				"\"left\": %lld, \"swept\": %lld}",
				res.due, res.expired, res.left, res.swept);
	return r;
}

/* ---- apexops status ------------------------------------------------------ */

int
privacy_status_report(struct db *db, struct buf *out, struct ops_err *err)
{
	static const char sum_sql[] =
		"SELECT count(*) FILTER (WHERE status IN ('queued', "
		"'running')),"
		" count(*) FILTER (WHERE status IN ('queued', 'running',"
		"  'failed') AND due_at < now()),"
		" count(*) FILTER (WHERE status IN ('queued', 'running',"
		"  'failed') AND due_at >= now()"
		"  AND due_at < now() + interval '7 days'),"
		" count(*) FILTER (WHERE status = 'failed'),"
		" count(*) FILTER (WHERE kind = 'export' AND status ="
		"  'completed' AND expires_at <= now())"
		" FROM apexops.privacy_requests";
	static const char near_sql[] =
		"SELECT id, kind, status, user_id,"
		" to_char(due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),"
		" due_at < now()"
		" FROM apexops.privacy_requests"
		" WHERE status IN ('queued', 'running', 'failed')"
		" AND due_at < now() + interval '7 days'"
		" ORDER BY due_at, id LIMIT 10";
	struct db_res *res = NULL;
	int r;

	r = db_query(db, sum_sql, 0, NULL, &res, err);
	if (r != 0)
		return r;
	buf_addf(out, "  open         %lld\n", db_res_ll(res, 0, 0));
	buf_addf(out, "  overdue      %lld%s\n", db_res_ll(res, 0, 1),
		 db_res_ll(res, 0, 1) > 0
			 ? " (past the GDPR month: 'apexops privacy list "
			   "--overdue')"
			 : "");
	buf_addf(out, "  due in 7 d   %lld\n", db_res_ll(res, 0, 2));
	buf_addf(out, "  failed       %lld\n", db_res_ll(res, 0, 3));
	buf_addf(out, "  to expire    %lld%s\n", db_res_ll(res, 0, 4),
		 db_res_ll(res, 0, 4) > 0 ? " ('apexops privacy expire')" : "");
	db_res_free(res);
	res = NULL;
	r = db_query(db, near_sql, 0, NULL, &res, err);
	if (r != 0)
		return r;
	for (int i = 0; i < db_res_rows(res); i++)
		buf_addf(out, "  request %-5s %-6s %-8s user %s due %s%s\n",
			 db_res_get(res, i, 0), db_res_get(res, i, 1),
			 db_res_get(res, i, 2), db_res_get(res, i, 3),
			 db_res_get(res, i, 4),
			 db_res_get(res, i, 5)[0] == 't' ? " OVERDUE" : "");
	db_res_free(res);
	return 0;
}
