#include "jobs/purge.h"

#include <errno.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/progress.h"
#include "core/xalloc.h"
#include "db/db.h"

/*
 * The one policy list, shared with the scheduler. The original purged
 * usage_events (both jobs) and billing_audit (cron only), by created_at.
 */
const struct purge_policy purge_policies[] = {
	{ "public", "usage_events", "created_at" },
	{ "public", "billing_audit", "created_at" },
};
const int purge_npolicies =
	(int)(sizeof(purge_policies) / sizeof(purge_policies[0]));

#define TS_FMT		 "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'"
#define MAX_LOCK_RETRIES 200

static volatile sig_atomic_t no_stop;

static bool
stopping(const struct purge_opts *o)
{
	return o->stop != NULL && *o->stop != 0;
}

/* Sleep ms in short slices so that a stop request is seen quickly. */
static void
nap(const struct purge_opts *o, long ms)
{
	while (ms > 0 && !stopping(o)) {
		long step = ms > 50 ? 50 : ms;
		struct timespec ts = { 0, step * 1000000L };

		while (nanosleep(&ts, &ts) == -1 && errno == EINTR &&
		       !stopping(o))
			;
		ms -= step;
	}
}

static void
copy_cell(char *dst, size_t n, const struct db_res *res, int row, int col)
{
	const char *v = db_res_get(res, row, col);

	snprintf(dst, n, "%s", v ? v : "");
}

int
purge_cutoff(struct db *db, long months, const char *tz, const char *as_of,
	     char *cutoff_utc, char *cutoff_local, char *today,
	     struct ops_err *err)
{
	/*
	 * "Today" is the date in tz (or as_of); its local midnight minus N
	 * months as a local timestamp, which PostgreSQL clamps at month end
	 * (2025-08-31 - 6 months = 2025-02-28), then back to an instant.
	 */
	static const char sql[] =
		"SELECT to_char(c AT TIME ZONE 'UTC', " TS_FMT "),"
		" to_char(c AT TIME ZONE $2, 'YYYY-MM-DD HH24:MI:SS'),"
		" to_char(d, 'YYYY-MM-DD')"
		" FROM (SELECT d, (d::timestamp"
		"  - make_interval(months => $3::int)) AT TIME ZONE $2 AS c"
		"  FROM (SELECT COALESCE($1::date,"
		"   (now() AT TIME ZONE $2)::date) AS d) x) y";
	char m[24];
	const char *params[3] = { as_of, tz ? tz : "UTC", m };
	struct db_res *res = NULL;
	int r;

	snprintf(m, sizeof(m), "%ld", months);
	r = db_query(db, sql, 3, params, &res, err);
	if (r != 0)
		return ops_err_prefix(err, "computing the purge cutoff");
	copy_cell(cutoff_utc, 40, res, 0, 0);
	copy_cell(cutoff_local, 40, res, 0, 1);
	copy_cell(today, 11, res, 0, 2);
	db_res_free(res);
	return 0;
}

/* "schema"."table" of a policy; the names are constants, not data. */
static void
policy_ident(const struct purge_policy *p, char *out, size_t n)
{
	snprintf(out, n, "\"%s\".\"%s\"", p->schema, p->table);
}

static const char *
os_user_name(const struct purge_opts *o, char *buf, size_t n)
{
	struct passwd pw, *found = NULL;
	char tmp[1024];

	if (o->os_user != NULL)
		return o->os_user;
	if (getpwuid_r(geteuid(), &pw, tmp, sizeof(tmp), &found) == 0 &&
	    found != NULL) {
		snprintf(buf, n, "%s", pw.pw_name);
		return buf;
	}
	if (getenv("USER") != NULL) {
		snprintf(buf, n, "%s", getenv("USER"));
		return buf;
	}
	snprintf(buf, n, "uid:%u", (unsigned)geteuid());
	return buf;
}

static int
lock_or_conflict(struct db *db, struct ops_err *err)
{
	char key[32];
	const char *params[1] = { key };
	struct db_res *res = NULL;
	bool got = false;
	int r;

	r = db_try_advisory_lock(db, db_lock_key(PURGE_LOCK_NAME), &got, err);
	if (r != 0)
		return r;
	if (got)
		return 0;
	snprintf(key, sizeof(key), "%lld",
		 (long long)db_lock_key(PURGE_LOCK_NAME));
	/* name the holder so that the operator knows whom to wait for */
	r = db_query(db,
		     "SELECT a.pid, a.application_name,"
		     " to_char(a.backend_start AT TIME ZONE 'UTC', " TS_FMT ")"
		     " FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
		     " WHERE l.locktype = 'advisory' AND l.granted"
		     " AND l.objsubid = 1 AND ((l.classid::bigint << 32)"
		     "  | l.objid::bigint) = $1::bigint LIMIT 1",
		     1, params, &res, err);
	if (r == 0 && db_res_rows(res) > 0)
		r = ops_fail(err, OPS_E_CONFLICT, true,
			     "another purge is running (backend pid %s, %s, "
			     "connected since %s): wait for it to finish or "
			     "stop it, then run again",
			     db_res_get(res, 0, 0),
			     db_res_get(res, 0, 1) ? db_res_get(res, 0, 1) : "",
			     db_res_get(res, 0, 2) ? db_res_get(res, 0, 2)
						   : "");
	else
		r = ops_fail(err, OPS_E_CONFLICT, true,
			     "another purge is running: wait for it to "
			     "finish, then run again");
	db_res_free(res);
	return r;
}

static int
abandon_stale(struct db *db, int *count, struct ops_err *err)
{
	long long n = 0;
	int r;

	/* a running row whose backend is gone was killed or lost its
	 * connection; we hold the purge lock, so no live purge owns it */
	r = db_exec(db,
		    "UPDATE apexops.purge_runs r SET status = 'abandoned',"
		    " finished_at = clock_timestamp(),"
		    " error = COALESCE(r.error, 'the run ended without "
		    "recording an outcome (killed, crashed or lost its "
		    "database connection)')"
		    " WHERE r.status = 'running' AND NOT EXISTS (SELECT 1"
		    "  FROM pg_stat_activity a WHERE a.pid = r.backend_pid"
		    "  AND a.backend_start IS NOT DISTINCT FROM"
		    "  r.backend_start)",
		    0, NULL, &n, err);
	*count = (int)n;
	if (n > 0)
		log_warn("marked stale purge runs abandoned count=%lld", n);
	return r;
}

static int
record_start(struct db *db, const struct purge_opts *o,
	     struct purge_result *res, struct ops_err *err)
{
	char months[24], user[128], host[256];
	const char *params[9];
	char *id = NULL;
	int r;

	snprintf(months, sizeof(months), "%ld", res->months);
	if (gethostname(host, sizeof(host)) != 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	params[0] = o->execute ? "execute" : "dry-run";
	params[1] = o->trigger ? o->trigger : "manual";
	params[2] = os_user_name(o, user, sizeof(user));
	params[3] = host[0] ? host : NULL;
	params[4] = months;
	params[5] = res->tz;
	params[6] = o->as_of;
	params[7] = res->today;
	params[8] = res->cutoff;
	r = db_query_value(
		db,
		"INSERT INTO apexops.purge_runs (mode, trigger, os_user,"
		" application_name, client_host, backend_start, months, tz,"
		" as_of, today, cutoff)"
		" SELECT $1, $2, $3, current_setting('application_name'), $4,"
		"  (SELECT backend_start FROM pg_stat_activity"
		"   WHERE pid = pg_backend_pid()),"
		"  $5::int, $6, $7::date, $8::date, $9::timestamptz"
		" RETURNING id",
		9, params, &id, err);
	if (r != 0)
		return ops_err_prefix(err, "recording the purge run");
	res->run_id = id ? strtoll(id, NULL, 10) : 0;
	free(id);
	return 0;
}

static json_t *
table_json(const struct purge_result *res, const struct purge_table_result *t)
{
	json_t *o = json_object();

	json_object_set_new(o, "table", json_string(t->name));
	json_object_set_new(o, "missing", json_boolean(t->missing));
	if (!t->missing) {
		json_object_set_new(o, "partitioned",
				    json_boolean(t->partitioned));
		json_object_set_new(o, "planned_rows",
				    json_integer(t->planned_rows));
		json_object_set_new(o, "null_rows", json_integer(t->null_rows));
		json_object_set_new(o, "est_bytes", json_integer(t->est_bytes));
		json_object_set_new(o, "oldest",
				    t->oldest[0] ? json_string(t->oldest)
						 : json_null());
		json_object_set_new(o, "newest",
				    t->newest[0] ? json_string(t->newest)
						 : json_null());
		json_object_set_new(o, "partitions_planned",
				    json_integer(t->partitions_planned));
		json_object_set_new(o, "partition_rows",
				    json_integer(t->partition_rows));
		json_object_set_new(o, "partitions",
				    json_string(t->partitions));
	}
	if (res->executed) {
		json_object_set_new(o, "deleted_rows",
				    json_integer(t->deleted_rows));
		json_object_set_new(o, "partitions_dropped",
				    json_integer(t->partitions_dropped));
		json_object_set_new(o, "batches", json_integer(t->batches));
		json_object_set_new(o, "lock_retries",
				    json_integer(t->lock_retries));
		json_object_set_new(o, "partition_seconds",
				    json_real(t->partition_seconds));
		json_object_set_new(o, "seconds", json_real(t->seconds));
	}
	return o;
}

static json_t *
tables_json(const struct purge_result *res)
{
	json_t *arr = json_array();

	for (int i = 0; i < res->ntables; i++)
		json_array_append_new(arr, table_json(res, &res->tables[i]));
	return arr;
}

char *
purge_result_json(const struct purge_result *res)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "run_id", json_integer(res->run_id));
	json_object_set_new(o, "mode",
			    json_string(res->executed ? "execute" : "dry-run"));
	json_object_set_new(o, "months", json_integer(res->months));
	json_object_set_new(o, "tz", json_string(res->tz));
	json_object_set_new(o, "today", json_string(res->today));
	json_object_set_new(o, "cutoff", json_string(res->cutoff));
	json_object_set_new(o, "cutoff_local", json_string(res->cutoff_local));
	json_object_set_new(o, "stopped", json_boolean(res->stopped));
	json_object_set_new(o, "abandoned_runs_marked",
			    json_integer(res->abandoned));
	json_object_set_new(o, "planned_rows",
			    json_integer(res->planned_total));
	if (res->executed)
		json_object_set_new(o, "deleted_rows",
				    json_integer(res->deleted_total));
	json_object_set_new(o, "null_rows", json_integer(res->null_total));
	json_object_set_new(o, "seconds", json_real(res->seconds));
	json_object_set_new(o, "tables", tables_json(res));
	s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s ? s : xstrdup("{}");
}

/* Update the run row: progress when status is NULL, else the outcome. */
static int
record_update(struct db *db, const struct purge_result *res, const char *status,
	      const char *error, struct ops_err *err)
{
	char id[24], planned[24], deleted[24], nulls[24], ms[24];
	const char *params[8];
	json_t *tj = tables_json(res);
	char *tables = json_dumps(tj, JSON_COMPACT);
	int r;

	json_decref(tj);
	snprintf(id, sizeof(id), "%lld", res->run_id);
	snprintf(planned, sizeof(planned), "%lld", res->planned_total);
	snprintf(deleted, sizeof(deleted), "%lld", res->deleted_total);
	snprintf(nulls, sizeof(nulls), "%lld", res->null_total);
	snprintf(ms, sizeof(ms), "%.0f", res->seconds * 1000.0);
	params[0] = id;
	params[1] = status;
	params[2] = planned;
	params[3] = res->executed ? deleted : NULL;
	params[4] = nulls;
	params[5] = tables ? tables : "[]";
	params[6] = ms;
	params[7] = error;
	r = db_exec(db,
		    "UPDATE apexops.purge_runs SET"
		    " status = COALESCE($2, status),"
		    " finished_at = CASE WHEN $2 IS NULL THEN NULL"
		    "  ELSE clock_timestamp() END,"
		    " rows_planned = $3::bigint, rows_deleted = $4::bigint,"
		    " null_rows = $5::bigint, tables = $6::jsonb,"
		    " duration_ms = $7::bigint, error = $8"
		    " WHERE id = $1::bigint",
		    8, params, NULL, err);
	free(tables);
	return r;
}

struct table_info {
	bool exists;
	bool has_col;
	bool partitioned; /* relkind p */
	bool range_by_col;
};

static int
probe_table(struct db *db, const struct purge_policy *p, struct table_info *ti,
	    struct ops_err *err)
{
	char qname[160];
	const char *params[2] = { qname, p->column };
	struct db_res *res = NULL;
	int r;

	memset(ti, 0, sizeof(*ti));
	policy_ident(p, qname, sizeof(qname));
	r = db_query(
		db,
		"SELECT c.relkind = 'p',"
		" a.attnum IS NOT NULL,"
		" COALESCE(pt.partstrat = 'r' AND pt.partnatts = 1"
		"  AND pt.partattrs[0] = a.attnum, false)"
		" FROM pg_class c"
		" LEFT JOIN pg_attribute a ON a.attrelid = c.oid"
		"  AND a.attname = $2 AND NOT a.attisdropped"
		" LEFT JOIN pg_partitioned_table pt ON pt.partrelid = c.oid"
		" WHERE c.oid = to_regclass($1)",
		2, params, &res, err);
	if (r != 0)
		return r;
	if (db_res_rows(res) > 0) {
		ti->exists = true;
		ti->partitioned = strcmp(db_res_get(res, 0, 0), "t") == 0;
		ti->has_col = strcmp(db_res_get(res, 0, 1), "t") == 0;
		ti->range_by_col = strcmp(db_res_get(res, 0, 2), "t") == 0;
	}
	db_res_free(res);
	return 0;
}

/* Whole range partitions whose upper bound is at or before the cutoff:
 * every row they can hold is older than the cutoff. */
static int
expired_partitions(struct db *db, const char *qname, const char *cutoff,
		   struct db_res **out, struct ops_err *err)
{
	const char *params[2] = { qname, cutoff };

	return db_query(
		db,
		"SELECT name FROM (SELECT c.oid::regclass::text AS name,"
		"  substring(pg_get_expr(c.relpartbound, c.oid)"
		"   FROM 'TO \\(''([^'']+)''\\)')::timestamptz AS upper"
		"  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
		"  WHERE i.inhparent = $1::regclass) x"
		" WHERE upper <= $2::timestamptz ORDER BY upper",
		2, params, out, err);
}

static int
count_rel(struct db *db, const char *rel, long long *n, struct ops_err *err)
{
	char sql[512];
	char *v = NULL;
	int r;

	/* rel is a catalog name quoted by PostgreSQL (regclass output) */
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", rel);
	r = db_query_value(db, sql, 0, NULL, &v, err);
	*n = v ? strtoll(v, NULL, 10) : 0;
	free(v);
	return r;
}

static int
plan_table(struct db *db, const struct purge_policy *p,
	   const struct table_info *ti, const char *cutoff,
	   struct purge_table_result *t, struct ops_err *err)
{
	char qname[160], sql[1024];
	const char *params[2] = { cutoff, NULL };
	struct db_res *res = NULL;
	double size = 0, tuples = 0;
	int r;

	policy_ident(p, qname, sizeof(qname));
	snprintf(sql, sizeof(sql),
		 "SELECT count(*), to_char(min(%s) AT TIME ZONE 'UTC', " TS_FMT
		 "), to_char(max(%s) AT TIME ZONE 'UTC', " TS_FMT ")"
		 " FROM %s WHERE %s < $1::timestamptz",
		 p->column, p->column, qname, p->column);
	r = db_query(db, sql, 1, params, &res, err);
	if (r != 0)
		goto out;
	t->planned_rows = db_res_ll(res, 0, 0);
	copy_cell(t->oldest, sizeof(t->oldest), res, 0, 1);
	copy_cell(t->newest, sizeof(t->newest), res, 0, 2);
	db_res_free(res);
	res = NULL;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE %s IS NULL",
		 qname, p->column);
	r = db_query(db, sql, 0, NULL, &res, err);
	if (r != 0)
		goto out;
	t->null_rows = db_res_ll(res, 0, 0);
	db_res_free(res);
	res = NULL;

	/* bytes per row from the size of table, TOAST and indexes */
	params[0] = qname;
	r = db_query(db,
		     "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0),"
		     " COALESCE(sum(GREATEST(c.reltuples, 0)), 0)"
		     " FROM pg_class c WHERE c.oid IN (SELECT relid"
		     "  FROM pg_partition_tree($1::regclass) WHERE isleaf"
		     "  UNION ALL SELECT $1::regclass)"
		     " AND c.relkind IN ('r', 'm')",
		     1, params, &res, err);
	if (r != 0)
		goto out;
	size = db_res_double(res, 0, 0);
	tuples = db_res_double(res, 0, 1);
	db_res_free(res);
	res = NULL;
	if (tuples < 1 && t->planned_rows > 0) {
		long long n;

		/* never analysed: count once */
		r = count_rel(db, qname, &n, err);
		if (r != 0)
			goto out;
		tuples = (double)n;
	}
	if (tuples >= 1)
		t->est_bytes =
			(long long)(size / tuples * (double)t->planned_rows);

	if (ti->range_by_col) {
		size_t used = 0;

		r = expired_partitions(db, qname, cutoff, &res, err);
		if (r != 0)
			goto out;
		for (int i = 0; i < db_res_rows(res); i++) {
			const char *name = db_res_get(res, i, 0);
			long long n;
			int w;

			r = count_rel(db, name, &n, err);
			if (r != 0)
				goto out;
			t->partitions_planned++;
			t->partition_rows += n;
			w = snprintf(t->partitions + used,
				     sizeof(t->partitions) - used, "%s%s",
				     used ? "," : "", name);
			if (w > 0 && (size_t)w < sizeof(t->partitions) - used)
				used += (size_t)w;
		}
	}
	r = 0;
out:
	db_res_free(res);
	if (r != 0)
		ops_err_prefix(err, "planning %s", t->name);
	return r;
}

static bool
is_lock_conflict(const struct ops_err *e)
{
	/* lock_not_available (lock_timeout) and deadlock_detected */
	return strcmp(e->sqlstate, "55P03") == 0 ||
	       strcmp(e->sqlstate, "40P01") == 0;
}

static int
set_local_lock_timeout(struct db *db, const struct purge_opts *o,
		       struct ops_err *err)
{
	char lt[32];
	const char *params[1] = { lt };

	snprintf(lt, sizeof(lt), "%ldms",
		 o->lock_timeout_ms > 0 ? o->lock_timeout_ms : 100);
	return db_exec(db, "SELECT set_config('lock_timeout', $1, true)", 1,
		       params, NULL, err);
}

/* Detach and drop one expired partition in a short transaction; *rows
 * gets the exact count it held (taken under a SHARE lock on it, which
 * blocks only writes into that expired range). */
static int
drop_partition(struct db *db, const struct purge_opts *o, const char *parent,
	       const char *child, long long *rows, struct ops_err *err)
{
	char sql[768];
	int r;

	*rows = 0;
	r = db_begin(db, err);
	if (r == 0)
		r = set_local_lock_timeout(db, o, err);
	/* names: the policy constant and a regclass-quoted catalog name */
	if (r == 0) {
		snprintf(sql, sizeof(sql), "LOCK TABLE %s IN SHARE MODE",
			 child);
		r = db_exec(db, sql, 0, NULL, NULL, err);
	}
	if (r == 0)
		r = count_rel(db, child, rows, err);
	if (r == 0) {
		snprintf(sql, sizeof(sql), "ALTER TABLE %s DETACH PARTITION %s",
			 parent, child);
		r = db_exec(db, sql, 0, NULL, NULL, err);
	}
	if (r == 0) {
		snprintf(sql, sizeof(sql), "DROP TABLE %s", child);
		r = db_exec(db, sql, 0, NULL, NULL, err);
	}
	if (r == 0)
		r = db_commit(db, err);
	if (r != 0)
		db_rollback(db);
	return r;
}

static long
clampl(long v, long lo, long hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

struct batcher {
	const struct purge_opts *o;
	struct progress prog;
	double run_started;
	long long run_done; /* rows deleted in this run, for --max-rate */
	long size;
};

/*
 * Delete, in key order of the column's index, every row of rel older than
 * the cutoff, in batches of one short transaction each. The first pass
 * walks forward from the last key deleted (keyset, so dead index entries
 * are not rescanned); a final pass from -infinity catches rows that were
 * inserted behind the walk while it ran.
 */
static int
purge_rowwise(struct db *db, struct batcher *b, const char *rel,
	      const struct purge_policy *p, const char *cutoff,
	      struct purge_table_result *t, struct ops_err *err)
{
	const struct purge_opts *o = b->o;
	long target = o->batch_ms > 0 ? o->batch_ms : 200;
	long bmin = o->batch_min > 0 ? o->batch_min : 500;
	/*
	 * Measured (docs/benchmarks.md): what hurts a concurrent writer is
	 * the WAL each batch commits at once, not the lock time, so batches
	 * stay small (2000 rows, about 300 kB of WAL); the time target only
	 * shrinks them further when they get slow (cold cache, busy disk).
	 */
	long bmax = o->batch_max > 0 ? o->batch_max : 2000;
	char sql[1024], lower[64] = "-infinity", limit[24];
	const char *params[3] = { cutoff, lower, limit };
	int pass = 0, retries = 0, r = 0;

	if (bmax < bmin)
		bmax = bmin;
	if (b->size <= 0)
		b->size = bmin;
	/* rel: policy constant or regclass-quoted catalog name; column: a
	 * policy constant */
	snprintf(sql, sizeof(sql),
		 "WITH d AS (DELETE FROM %s WHERE ctid = ANY (ARRAY("
		 "SELECT ctid FROM %s WHERE %s >= $2::timestamptz"
		 " AND %s < $1::timestamptz ORDER BY %s LIMIT $3::int))"
		 " AND %s < $1::timestamptz RETURNING %s)"
		 " SELECT count(*), max(%s)::text FROM d",
		 rel, rel, p->column, p->column, p->column, p->column,
		 p->column, p->column);
	for (;;) {
		struct db_res *res = NULL;
		double t0, el;
		long long n;

		if (stopping(o))
			return 0;
		snprintf(limit, sizeof(limit), "%ld", b->size);
		t0 = clock_now();
		r = db_begin(db, err);
		if (r == 0)
			r = set_local_lock_timeout(db, o, err);
		/*
		 * A batch need not wait for its WAL flush: if the server
		 * crashes, the rows of the lost batches are still there and
		 * the next run deletes them; the run record, committed
		 * synchronously at the end, flushes every batch before it.
		 */
		if (r == 0)
			r = db_exec(db, "SET LOCAL synchronous_commit = off", 0,
				    NULL, NULL, err);
		if (r == 0)
			r = db_query(db, sql, 3, params, &res, err);
		if (r == 0)
			r = db_commit(db, err);
		if (r != 0) {
			db_rollback(db);
			db_res_free(res);
			if (stopping(o))
				return 0; /* cancelled by a second signal */
			if (is_lock_conflict(err) &&
			    ++retries <= MAX_LOCK_RETRIES) {
				t->lock_retries++;
				log_info("purge batch waited too long for a "
					 "lock, retrying table=%s size=%ld "
					 "retry=%d",
					 log_q(rel), b->size, retries);
				b->size = clampl(b->size / 2, bmin, bmax);
				nap(o, 50 + (long)(random() % 200));
				ops_err_clear(err);
				continue;
			}
			return r;
		}
		retries = 0;
		el = clock_now() - t0;
		n = db_res_ll(res, 0, 0);
		if (n > 0)
			snprintf(lower, sizeof(lower), "%s",
				 db_res_get(res, 0, 1));
		db_res_free(res);
		t->batches++;
		t->deleted_rows += n;
		b->run_done += n;
		progress_add(&b->prog, n);
		log_debug("purge batch table=%s rows=%lld size=%ld ms=%.1f",
			  log_q(rel), n, b->size, el * 1000.0);
		if (n == 0) {
			if (pass++ > 0 || strcmp(lower, "-infinity") == 0)
				return 0;
			snprintf(lower, sizeof(lower), "-infinity");
			continue;
		}
		/* adapt the size towards the target duration, at most 2x
		 * per step either way */
		if (n >= b->size && el > 0) {
			double ideal = (double)b->size * (double)target /
				       (el * 1000.0);
			long next = (long)ideal;

			next = clampl(next, b->size / 2, b->size * 2);
			b->size = clampl(next, bmin, bmax);
		} else if (el * 1000.0 > (double)target * 1.5) {
			b->size = clampl(b->size / 2, bmin, bmax);
		}
		if (o->max_rate > 0) {
			double due = (double)b->run_done / (double)o->max_rate;
			double spent = clock_now() - b->run_started;

			if (due > spent)
				nap(o, (long)((due - spent) * 1000.0));
		}
		if (o->sleep_ms > 0)
			nap(o, o->sleep_ms);
	}
}

static int
vacuum_table(struct db *db, const char *qname, struct ops_err *err)
{
	char sql[256];

	/* qname: a policy constant */
	snprintf(sql, sizeof(sql), "VACUUM (ANALYZE) %s", qname);
	log_info("purge vacuum table=%s", log_q(qname));
	return db_exec(db, sql, 0, NULL, NULL, err);
}

static int
execute_table(struct db *db, struct batcher *b, const struct purge_policy *p,
	      const struct table_info *ti, const char *cutoff,
	      struct purge_table_result *t, struct ops_err *err)
{
	const struct purge_opts *o = b->o;
	char qname[160];
	struct db_res *res = NULL;
	double t0 = clock_now();
	int r = 0;

	policy_ident(p, qname, sizeof(qname));
	progress_start(&b->prog, t->name, t->planned_rows, o->progress_tty);
	if (ti->range_by_col) {
		double p0 = clock_now();

		r = expired_partitions(db, qname, cutoff, &res, err);
		for (int i = 0; r == 0 && i < db_res_rows(res); i++) {
			const char *child = db_res_get(res, i, 0);
			long long n = 0;
			int tries = 0;

			if (stopping(o))
				break;
			for (;;) {
				r = drop_partition(db, o, qname, child, &n,
						   err);
				if (r == 0 || !is_lock_conflict(err) ||
				    ++tries > MAX_LOCK_RETRIES || stopping(o))
					break;
				t->lock_retries++;
				ops_err_clear(err);
				nap(o, 100 + (long)(random() % 400));
			}
			if (r != 0) {
				ops_err_prefix(err, "dropping partition %s",
					       child);
				break;
			}
			t->partitions_dropped++;
			t->deleted_rows += n;
			b->run_done += n;
			progress_add(&b->prog, n);
			log_info("purge dropped partition table=%s "
				 "partition=%s rows=%lld",
				 log_q(t->name), log_q(child), n);
		}
		db_res_free(res);
		res = NULL;
		t->partition_seconds = clock_now() - p0;
		if (r != 0 && stopping(o)) {
			/* a second signal cancelled the statement */
			ops_err_clear(err);
			r = 0;
		}
	}
	if (r == 0 && !stopping(o)) {
		if (ti->partitioned) {
			/* ctid is per partition: purge each leaf by itself */
			const char *params[1] = { qname };

			r = db_query(
				db,
				"SELECT relid::regclass::text"
				" FROM pg_partition_tree($1::regclass)"
				" WHERE isleaf ORDER BY relid::regclass::text",
				1, params, &res, err);
			for (int i = 0; r == 0 && i < db_res_rows(res); i++)
				r = purge_rowwise(db, b, db_res_get(res, i, 0),
						  p, cutoff, t, err);
			db_res_free(res);
		} else {
			r = purge_rowwise(db, b, qname, p, cutoff, t, err);
		}
	}
	progress_finish(&b->prog);
	if (r == 0 && o->vacuum && !stopping(o))
		r = vacuum_table(db, qname, err);
	t->seconds = clock_now() - t0;
	if (r != 0)
		ops_err_prefix(err, "purging %s", t->name);
	return r;
}

int
purge_run(struct db *db, const struct purge_opts *o, struct purge_result *res,
	  struct ops_err *err)
{
	struct purge_opts opts = *o;
	struct table_info info[PURGE_MAX_TABLES];
	struct batcher b;
	double started = clock_now();
	bool locked = false;
	const char *status;
	int r;

	memset(res, 0, sizeof(*res));
	memset(&b, 0, sizeof(b));
	ops_err_clear(err);
	if (opts.stop == NULL)
		opts.stop = &no_stop;
	if (o->months < 1 || o->months > 1200)
		return ops_fail(err, OPS_E_CONFIG, false,
				"retention months %ld out of range: expected a "
				"whole number from 1 to 1200",
				o->months);
	res->months = o->months;
	snprintf(res->tz, sizeof(res->tz), "%s", o->tz ? o->tz : "UTC");
	r = purge_cutoff(db, o->months, res->tz, o->as_of, res->cutoff,
			 res->cutoff_local, res->today, err);
	if (r != 0)
		return r;
	r = lock_or_conflict(db, err);
	if (r != 0)
		return r;
	locked = true;
	{
		char *reg = NULL;

		r = db_query_value(db,
				   "SELECT to_regclass('apexops.purge_runs')"
				   "::text",
				   0, NULL, &reg, err);
		if (r == 0 && reg == NULL)
			r = ops_fail(err, OPS_E_NOTFOUND, false,
				     "table apexops.purge_runs is missing: "
				     "run 'apexops migrate up' first");
		free(reg);
		if (r != 0)
			goto unlock;
	}
	r = abandon_stale(db, &res->abandoned, err);
	if (r == 0)
		r = record_start(db, &opts, res, err);
	if (r != 0)
		goto unlock;
	log_info("purge started run=%lld mode=%s months=%ld tz=%s today=%s "
		 "cutoff=%s",
		 res->run_id, o->execute ? "execute" : "dry-run", res->months,
		 log_q(res->tz), res->today, res->cutoff);

	for (int i = 0; i < purge_npolicies && i < PURGE_MAX_TABLES; i++) {
		const struct purge_policy *p = &purge_policies[i];
		struct purge_table_result *t = &res->tables[res->ntables++];

		snprintf(t->name, sizeof(t->name), "%s.%s", p->schema,
			 p->table);
		r = probe_table(db, p, &info[i], err);
		if (r != 0)
			goto finish;
		if (!info[i].exists) {
			t->missing = true;
			log_warn("purge table is missing, skipped table=%s",
				 log_q(t->name));
			continue;
		}
		if (!info[i].has_col) {
			r = ops_fail(err, OPS_E_INVALID, false,
				     "table %s has no column %s", t->name,
				     p->column);
			goto finish;
		}
		t->partitioned = info[i].partitioned;
		r = plan_table(db, p, &info[i], res->cutoff, t, err);
		if (r != 0)
			goto finish;
		res->planned_total += t->planned_rows;
		res->null_total += t->null_rows;
		log_info("purge plan table=%s rows=%lld null_rows=%lld "
			 "partitions=%d oldest=%s newest=%s",
			 log_q(t->name), t->planned_rows, t->null_rows,
			 t->partitions_planned, log_q(t->oldest),
			 log_q(t->newest));
	}
	if (!o->execute)
		goto finish;

	res->executed = true;
	b.o = &opts;
	b.run_started = clock_now();
	for (int i = 0; i < res->ntables && !stopping(&opts); i++) {
		struct purge_table_result *t = &res->tables[i];

		if (t->missing)
			continue;
		r = execute_table(db, &b, &purge_policies[i], &info[i],
				  res->cutoff, t, err);
		res->deleted_total += t->deleted_rows;
		if (r != 0)
			goto finish;
		if (t->deleted_rows != t->planned_rows)
			log_warn("purge removed a different number of rows "
				 "than planned table=%s planned=%lld "
				 "deleted=%lld",
				 log_q(t->name), t->planned_rows,
				 t->deleted_rows);
		/* progress in the run row, so a killed run shows how far
		 * it got */
		res->seconds = clock_now() - started;
		if (record_update(db, res, NULL, NULL, err) != 0) {
			log_warn("cannot record purge progress error=%s",
				 log_q(err->msg));
			ops_err_clear(err);
		}
	}
	if (stopping(&opts)) {
		res->stopped = true;
		r = ops_fail(err, OPS_E_STOPPED, true,
			     "purge stopped by a signal after %lld of %lld "
			     "rows: run it again to finish",
			     res->deleted_total, res->planned_total);
	}

finish:
	res->seconds = clock_now() - started;
	status = r == 0 ? "succeeded" : res->stopped ? "stopped" : "failed";
	if (db_in_tx(db))
		db_rollback(db);
	{
		struct ops_err e2 = OPS_ERR_INIT;

		if (record_update(db, res, status, r == 0 ? NULL : err->msg,
				  &e2) != 0)
			log_warn("cannot record the purge outcome run=%lld "
				 "error=%s",
				 res->run_id, log_q(e2.msg));
	}
	log_info("purge finished run=%lld status=%s planned=%lld "
		 "deleted=%lld seconds=%.1f",
		 res->run_id, status, res->planned_total, res->deleted_total,
		 res->seconds);
unlock:
	if (locked) {
		struct ops_err e2 = OPS_ERR_INIT;

		if (db_advisory_unlock(db, db_lock_key(PURGE_LOCK_NAME), &e2) !=
		    0)
			log_debug("purge unlock failed error=%s",
				  log_q(e2.msg));
	}
	return r;
}

int
purge_history_json(struct db *db, long limit, char **json, struct ops_err *err)
{
	char lim[24];
	const char *params[1] = { lim };
	int r;

	*json = NULL;
	snprintf(lim, sizeof(lim), "%ld", limit);
	r = db_query_value(
		db,
		"SELECT COALESCE(json_agg(r ORDER BY r.id DESC), '[]')::text"
		" FROM (SELECT id, started_at, finished_at, status, mode,"
		"  trigger, os_user, db_user, application_name, client_host,"
		"  months, tz, as_of, today, cutoff, rows_planned,"
		"  rows_deleted, null_rows, duration_ms, error, tables"
		"  FROM apexops.purge_runs ORDER BY id DESC LIMIT $1::int) r",
		1, params, json, err);
	if (r != 0)
		return ops_err_prefix(err, "reading apexops.purge_runs");
	return 0;
}

int
purge_status_report(struct db *db, struct buf *out, struct ops_err *err)
{
	struct db_res *res = NULL;
	char *reg = NULL;
	int r = 0;

	for (int i = 0; i < purge_npolicies; i++) {
		const struct purge_policy *p = &purge_policies[i];
		char qname[160], disp[160], sql[512];
		const char *params[1] = { qname };

		policy_ident(p, qname, sizeof(qname));
		snprintf(disp, sizeof(disp), "%s.%s", p->schema, p->table);
		r = db_query_value(db, "SELECT to_regclass($1)::text", 1,
				   params, &reg, err);
		if (r != 0)
			goto out;
		if (reg == NULL) {
			buf_printf(
				out,
				"  %-26s table missing (skipped by purges)\n",
				disp);
			continue;
		}
		free(reg);
		reg = NULL;
		snprintf(sql, sizeof(sql),
			 "SELECT to_char(min(%s) AT TIME ZONE 'UTC',"
			 " 'YYYY-MM-DD HH24:MI:SS\"Z\"'),"
			 " floor(extract(epoch FROM now() - min(%s)) / 86400)"
			 "::bigint FROM %s",
			 p->column, p->column, qname);
		r = db_query(db, sql, 0, NULL, &res, err);
		if (r != 0)
			goto out;
		if (db_res_get(res, 0, 0) == NULL)
			buf_printf(out, "  %-26s no dated rows\n", disp);
		else
			buf_printf(out, "  %-26s oldest %s %s (%s days old)\n",
				   disp, p->column, db_res_get(res, 0, 0),
				   db_res_get(res, 0, 1));
		db_res_free(res);
		res = NULL;
	}
	r = db_query_value(db, "SELECT to_regclass('apexops.purge_runs')::text",
			   0, NULL, &reg, err);
	if (r != 0)
		goto out;
	if (reg == NULL) {
		buf_puts(out, "  last purge                 none "
			      "(apexops.purge_runs missing)\n");
		goto out;
	}
	r = db_query(db,
		     "SELECT id, mode, status, to_char(started_at AT TIME ZONE"
		     " 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"'), months,"
		     " to_char(cutoff AT TIME ZONE 'UTC',"
		     " 'YYYY-MM-DD HH24:MI:SS\"Z\"'),"
		     " COALESCE(rows_deleted, rows_planned, 0), trigger"
		     " FROM apexops.purge_runs ORDER BY id DESC LIMIT 1",
		     0, NULL, &res, err);
	if (r != 0)
		goto out;
	if (db_res_rows(res) == 0)
		buf_puts(out, "  last purge                 never\n");
	else
		buf_printf(
			out,
			"  last purge                 run %s %s %s %s at %s,\n"
			"                             months %s, cutoff %s, %s "
			"rows "
			"%s\n",
			db_res_get(res, 0, 0), db_res_get(res, 0, 7),
			db_res_get(res, 0, 1), db_res_get(res, 0, 2),
			db_res_get(res, 0, 3), db_res_get(res, 0, 4),
			db_res_get(res, 0, 5) ? db_res_get(res, 0, 5) : "-",
			db_res_get(res, 0, 6),
			strcmp(db_res_get(res, 0, 1), "execute") == 0
				? "deleted"
				: "planned");
out:
	free(reg);
	db_res_free(res);
	if (r != 0)
		ops_err_prefix(err, "retention status");
	return r;
}
