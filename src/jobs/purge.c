#include "jobs/purge.h"
#include "jobs/purge_partition.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "jobs/pace.h"
#include "jobs/purge_internal.h"

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

static volatile sig_atomic_t no_stop;

bool
purge_stopping(const struct purge_opts *o)
{
	return o->stop != NULL && *o->stop != 0;
}

void
purge_copy_cell(char *dst, size_t n, const struct db_res *res, int row, int col)
{
	const char *v = db_res_get(res, row, col);

	snprintf(dst, n, "%s", v ? v : "");
}

void
purge_policy_ident(const struct purge_policy *p, char *out, size_t n)
{
	snprintf(out, n, "\"%s\".\"%s\"", p->schema, p->table);
}

int
purge_statement_timeout_off(struct db *db, char **saved, struct ops_err *err)
{
	return db_setting_swap(db, "statement_timeout", "0", saved, err);
}

void
purge_statement_timeout_restore(struct db *db, char *saved)
{
	struct ops_err e = OPS_ERR_INIT;

	if (db_setting_restore(db, "statement_timeout", saved, &e) != 0)
		log_warn("cannot restore statement_timeout error=%s",
			 log_q(e.msg));
}

/*
 * The purge works on one core: no parallel workers for its counts, its
 * deletes or its VACUUM. A parallel count of the expired rows took both
 * cores of a 2-core server for a few hundred ms, and a live writer's p99
 * with them (bench/purge: 10.9-16.3 ms against 1.1 ms idle on the
 * partitioned table, 3.9-4.0 ms without). Saved values for restore.
 */
static int
one_core(struct db *db, char **saved_q, char **saved_m, struct ops_err *err)
{
	int r = db_setting_swap(db, "max_parallel_workers_per_gather", "0",
				saved_q, err);

	if (r == 0)
		r = db_setting_swap(db, "max_parallel_maintenance_workers", "0",
				    saved_m, err);
	return r;
}

static void
one_core_restore(struct db *db, char *saved_q, char *saved_m)
{
	struct ops_err e = OPS_ERR_INIT;
	int r = db_setting_restore(db, "max_parallel_workers_per_gather",
				   saved_q, &e);

	/* both, whatever the first did: each frees its value */
	if (db_setting_restore(db, "max_parallel_maintenance_workers", saved_m,
			       r == 0 ? &e : NULL) != 0 ||
	    r != 0)
		log_warn("cannot restore the parallel worker settings "
			 "error=%s",
			 log_q(e.msg));
}

int
purge_count_rel(struct db *db, const char *rel, long long *n,
		struct ops_err *err)
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

/*
 * "Now" for the date of today: NULL (PostgreSQL's now()) on the real
 * clock; under the scheduler's virtual clock (core/clock.h: tests and
 * demos) its time, so that a purge run at virtual 02:30 purges as of the
 * virtual date. buf needs 21 bytes.
 */
static const char *
now_param(char *buf, size_t n)
{
	if (!ops_clock_is_virtual())
		return NULL;
	return ops_format_rfc3339((time_t)ops_clock_now(), buf, n);
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
		"SELECT to_char(c AT TIME ZONE 'UTC', " PURGE_TS_FMT "),"
		" to_char(c AT TIME ZONE $2, 'YYYY-MM-DD HH24:MI:SS'),"
		" to_char(d, 'YYYY-MM-DD')"
		" FROM (SELECT d, (d::timestamp"
		"  - make_interval(months => $3::int)) AT TIME ZONE $2 AS c"
		"  FROM (SELECT COALESCE($1::date,"
		"   (COALESCE($4::timestamptz, now()) AT TIME ZONE $2)::date)"
		"   AS d) x) y";
	char m[24], nowbuf[32];
	const char *params[4] = { as_of, tz ? tz : "UTC", m,
				  now_param(nowbuf, sizeof(nowbuf)) };
	struct db_res *res = NULL;
	int r;

	snprintf(m, sizeof(m), "%ld", months);
	r = db_query(db, sql, 4, params, &res, err);
	if (r != 0)
		return ops_err_prefix(err, "computing the purge cutoff");
	purge_copy_cell(cutoff_utc, 40, res, 0, 0);
	purge_copy_cell(cutoff_local, 40, res, 0, 1);
	purge_copy_cell(today, 11, res, 0, 2);
	db_res_free(res);
	return 0;
}

/*
 * A future as-of moves the cutoff forward and purges recent rows (a typo,
 * 2062 for 2026, deleted everything): refused unless allowed, and then only
 * for a preview.
 */
int
purge_check_as_of(struct db *db, const struct purge_opts *o, const char *tz,
		  struct ops_err *err)
{
	char nowbuf[32];
	const char *params[3] = { o->as_of, tz,
				  now_param(nowbuf, sizeof(nowbuf)) };
	struct db_res *res = NULL;
	bool future;
	int r;

	if (o->as_of == NULL)
		return 0;
	r = db_query(db,
		     "SELECT $1::date > t, to_char(t, 'YYYY-MM-DD') FROM"
		     " (SELECT (COALESCE($3::timestamptz, now())"
		     "  AT TIME ZONE $2)::date AS t) x",
		     3, params, &res, err);
	if (r != 0)
		return ops_err_prefix(err, "checking --as-of");
	future = strcmp(db_res_get(res, 0, 0), "t") == 0;
	if (future && !o->allow_future_as_of)
		r = ops_fail(err, OPS_E_INVALID, false,
			     "--as-of %s is after today (%s in %s): a future "
			     "date moves the cutoff forward and purges recent "
			     "rows; give a date up to today (to preview a "
			     "future date, add --allow-future-as-of to a "
			     "dry-run)",
			     o->as_of, db_res_get(res, 0, 1), tz);
	else if (future && o->execute)
		r = ops_fail(err, OPS_E_INVALID, false,
			     "--as-of %s is after today (%s in %s): a future "
			     "as-of may only be previewed; run it without "
			     "--execute (and without CONFIRM)",
			     o->as_of, db_res_get(res, 0, 1), tz);
	db_res_free(res);
	return r;
}

/* The status and the result code once the execution is over. */
static int
settle(const struct purge_opts *o, struct purge_result *res, int r,
       struct ops_err *err)
{
	long long locked = 0, trigger = 0, other = 0, refs = 0;
	int detached = 0;

	purge_sum(res);
	if (r != 0)
		return r;
	for (int i = 0; i < res->ntables; i++) {
		detached += res->tables[i].detached_left;
		locked += res->tables[i].left_locked;
		trigger += res->tables[i].left_trigger;
		other += res->tables[i].left_other;
		refs += res->tables[i].left_referenced;
	}
	if (purge_stopping(o)) {
		res->stopped = true;
		return ops_fail(err, OPS_E_STOPPED, true,
				"purge stopped by a signal after %lld of %lld "
				"rows: run it again to finish",
				res->deleted_total, res->planned_total);
	}
	if (locked + trigger + other == 0 && detached > 0) {
		snprintf(res->status, sizeof(res->status), "partial");
		return ops_fail(err, OPS_E_CONFLICT, true,
				"partial purge: %d detached expired "
				"partition%s could not be dropped (a lock "
				"stayed out of reach); run again to drop "
				"them",
				detached, detached == 1 ? "" : "s");
	}
	if (locked + trigger + other == 0)
		return 0;
	snprintf(res->status, sizeof(res->status), "partial");
	/* rows others hold go on a rerun: transient; a trigger's keep does
	 * not go away by itself */
	return ops_fail(err, locked > 0 ? OPS_E_CONFLICT : OPS_E_REFUSED,
			locked > 0,
			"partial purge: %lld expired rows were left (%lld "
			"locked by another transaction, %lld kept by a "
			"trigger, %lld written behind the purge meanwhile%s); "
			"%s",
			locked + trigger + other, locked, trigger, other,
			refs > 0 ? ", besides the referenced rows skipped" : "",
			locked > 0 ? "run again when the locks are released"
				   : "see the table's trigger");
}

/* The oid of table name as text ("" when there is none). */
static int
purge_table_oid(struct db *db, const char *name, char *out, struct ops_err *err)
{
	const char *params[1] = { name };
	char *v = NULL;
	int r = db_query_value(db, "SELECT to_regclass($1)::oid::text", 1,
			       params, &v, err);

	snprintf(out, 16, "%s", r == 0 && v != NULL ? v : "");
	free(v);
	return r;
}

/*
 * The detached tables an earlier run recorded and did not drop
 * (jobs/purge_partition.h): counted into each policy table's plan, and
 * dropped first when executing. An execution forgets the stale records
 * first; a dry-run only reads. *ready: apexops.purge_detached exists; an
 * execution that would detach partitions refuses to start without it.
 */
static int
plan_detached(struct db *db, const struct purge_opts *o,
	      const struct purge_table_info *info, struct purge_result *res,
	      bool *ready, struct ops_err *err)
{
	struct db_res *all = NULL;
	char oids[PURGE_MAX_TABLES][16];
	int r;

	res->drop_pause_ms = o->drop_pause_ms > 0   ? o->drop_pause_ms
			     : o->drop_pause_ms < 0 ? 0
			     : o->no_pace	    ? 0
						    : PURGE_DROP_PAUSE_MS;
	r = purge_detached_ready(db, ready, err);
	if (r != 0)
		return r;
	if (!*ready) {
		for (int i = 0; o->execute && i < res->ntables; i++)
			if (!res->tables[i].missing && info[i].drop_whole)
				return ops_fail(
					err, OPS_E_CONFIG, false,
					"apexops.purge_detached is missing, "
					"which dropping the expired "
					"partitions of %s needs: run 'apexops "
					"migrate up'",
					res->tables[i].name);
		return 0;
	}
	if (o->execute) {
		r = purge_detached_forget_stale(db, NULL, err);
		if (r != 0)
			return r;
	}
	for (int i = 0; i < res->ntables; i++) {
		struct purge_table_result *t = &res->tables[i];
		struct db_res *d = NULL;
		size_t used = 0;

		oids[i][0] = '\0';
		if (t->missing)
			continue;
		r = purge_table_oid(db, t->name, oids[i], err);
		if (r == 0)
			r = purge_detached_list(db, t->name, &d, err);
		for (int k = 0; r == 0 && k < db_res_rows(d); k++) {
			const char *name = db_res_get(d, k, 1);
			long long n = 0;
			int w;

			/* name: the catalog's, format('%I.%I'), checked
			 * against the oid by the list */
			r = purge_count_rel(db, name, &n, err);
			if (r != 0)
				break;
			t->detached_pending++;
			t->detached_rows += n;
			t->planned_rows += n;
			w = snprintf(t->detached + used,
				     sizeof(t->detached) - used, "%s%s",
				     used ? "," : "", name);
			if (w > 0 && (size_t)w < sizeof(t->detached) - used)
				used += (size_t)w;
		}
		db_res_free(d);
		if (r != 0)
			return r;
		if (t->detached_pending > 0)
			log_info("purge plan found detached partitions to "
				 "drop table=%s tables=%d rows=%lld",
				 log_q(t->name), t->detached_pending,
				 t->detached_rows);
	}
	/* records of a parent that is no policy table: reported, not ours
	 * to drop in this run */
	r = purge_detached_list(db, NULL, &all, err);
	for (int k = 0; r == 0 && k < db_res_rows(all); k++) {
		const char *prelid = db_res_get(all, k, 6);
		bool ours = false;

		for (int i = 0; i < res->ntables && !ours; i++)
			ours = strcmp(oids[i], prelid) == 0;
		if (ours)
			continue;
		res->detached_other++;
		log_warn("purge found a detached partition of a table it "
			 "does not purge; drop it by hand table=%s parent=%s "
			 "detached_at=%s",
			 log_q(db_res_get(all, k, 1)),
			 log_q(db_res_get(all, k, 2)), db_res_get(all, k, 4));
	}
	db_res_free(all);
	return r;
}

int
purge_run(struct db *db, const struct purge_opts *o, struct purge_result *res,
	  struct ops_err *err)
{
	struct purge_opts opts = *o;
	struct purge_table_info info[PURGE_MAX_TABLES];
	struct purge_exec x;
	double started = clock_now();
	char *saved_st = NULL, *saved_q = NULL, *saved_m = NULL;
	int r;

	memset(res, 0, sizeof(*res));
	memset(&x, 0, sizeof(x));
	ops_err_clear(err);
	if (opts.stop == NULL)
		opts.stop = &no_stop;
	res->execute = o->execute;
	res->run_id = o->run_id;
	if (o->months < 1 || o->months > 1200)
		return ops_fail(err, OPS_E_CONFIG, false,
				"retention months %ld out of range: expected a "
				"whole number from 1 to 1200",
				o->months);
	res->months = o->months;
	snprintf(res->tz, sizeof(res->tz), "%s", o->tz ? o->tz : "UTC");
	r = purge_check_as_of(db, o, res->tz, err);
	if (r == 0)
		r = purge_cutoff(db, o->months, res->tz, o->as_of, res->cutoff,
				 res->cutoff_local, res->today, err);
	if (r != 0)
		return r;
	log_info("purge started mode=%s months=%ld tz=%s today=%s cutoff=%s",
		 o->execute ? "execute" : "dry-run", res->months,
		 log_q(res->tz), res->today, res->cutoff);
	if (opts.on_progress != NULL) {
		struct ops_err e2 = OPS_ERR_INIT;

		/* the parameters are known: the record shows them at once */
		if (opts.on_progress(opts.progress_arg, res, &e2) != 0)
			log_warn("cannot record purge progress error=%s",
				 log_q(e2.msg));
	}

	/* the plan counts whole tables: not under the session's statement
	 * timeout (its batches are short and keep it) */
	r = purge_statement_timeout_off(db, &saved_st, err);
	if (r == 0)
		r = one_core(db, &saved_q, &saved_m, err);
	if (r != 0)
		goto finish;
	for (int i = 0; i < purge_npolicies && i < PURGE_MAX_TABLES; i++) {
		const struct purge_policy *p = &purge_policies[i];
		struct purge_table_result *t = &res->tables[res->ntables++];

		snprintf(t->name, sizeof(t->name), "%s.%s", p->schema,
			 p->table);
		r = purge_probe_table(db, p, &info[i], err);
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
		r = purge_plan_table(db, p, &info[i], res->cutoff, t, err);
		if (r != 0)
			goto finish;
		log_info("purge plan table=%s rows=%lld null_rows=%lld "
			 "partitions=%d oldest=%s newest=%s",
			 log_q(t->name), t->planned_rows, t->null_rows,
			 t->partitions_planned, log_q(t->oldest),
			 log_q(t->newest));
	}
	r = plan_detached(db, o, info, res, &x.detached_ready, err);
	if (r != 0)
		goto finish;
	purge_statement_timeout_restore(db, saved_st);
	saved_st = NULL;
	purge_sum(res);
	if (!o->execute)
		goto finish;
	/* a RESTRICT / NO ACTION reference would fail the run part-way */
	if (!o->skip_referenced) {
		r = purge_check_references(res, err);
		if (r != 0)
			goto finish;
	}

	res->executed = true;
	x.o = &opts;
	x.res = res;
	x.run_started = clock_now();
	x.last_report = x.run_started;
	if (!opts.no_pace) {
		struct pace_opts po;

		/* the batch flags bound the pacer; zero keeps its default */
		memset(&po, 0, sizeof(po));
		po.target_ms = opts.batch_ms;
		po.min_batch = opts.batch_min;
		/* 500 by default: measured on an idle 2-core machine
		 * (bench/purge, 5 M rows, a 200 tx/s writer), batches up to
		 * 10000 put the writer's p99 at 8.6x idle, up to 1000 at 2.3x,
		 * 500 at 1.75-2.0x, each still above 250k rows/s */
		po.max_batch = opts.batch_max > 0 ? opts.batch_max : 500;
		po.sleep_coef = opts.sleep_coef;
		po.max_lag_ms = opts.max_lag_ms;
		po.max_lag_bytes = opts.max_lag_bytes;
		po.max_lag_wait_ms = opts.max_lag_wait_ms;
		x.pace = pace_new(&po);
		res->paced = true;
	}
	for (int i = 0; i < res->ntables && !purge_stopping(&opts); i++) {
		struct purge_table_result *t = &res->tables[i];

		if (t->missing)
			continue;
		r = purge_execute_table(db, &x, &purge_policies[i], &info[i],
					res->cutoff, t, err);
		if (r != 0)
			break;
	}
	if (x.pace != NULL) {
		struct pace_stats ps;

		pace_stats_get(x.pace, &ps);
		res->pace_backoffs = ps.backoffs;
		res->pace_pauses = ps.pauses;
		res->pace_pause_ms = ps.pause_ms;
		res->pace_lag_waits = ps.lag_waits;
		res->pace_lag_wait_ms = ps.lag_wait_ms;
		res->pace_max_lag_ms = ps.max_lag_ms;
		res->pace_max_lag_bytes = ps.max_lag_bytes;
		res->pace_batch_lo = ps.batch_lo;
		res->pace_batch_hi = ps.batch_hi;
		res->pace_flush_floor_ms = ps.base_flush_ms;
		res->pace_flush_max_ms = ps.max_flush_ms;
		snprintf(res->pace_last_backoff, sizeof(res->pace_last_backoff),
			 "%s", ps.last_backoff);
		pace_free(x.pace);
		x.pace = NULL;
	}
	r = settle(&opts, res, r, err);

finish:
	if (db_in_tx(db))
		db_rollback(db);
	purge_statement_timeout_restore(db, saved_st);
	one_core_restore(db, saved_q, saved_m);
	purge_sum(res);
	res->seconds = clock_now() - started;
	if (res->status[0] == '\0')
		snprintf(res->status, sizeof(res->status), "%s",
			 r == 0		? "succeeded"
			 : res->stopped ? "stopped"
					: "failed");
	if (r != 0)
		snprintf(res->error, sizeof(res->error), "%s", err->msg);
	if (db_in_tx(db))
		db_rollback(db);
	log_info("purge finished status=%s planned=%lld deleted=%lld "
		 "left=%lld seconds=%.1f",
		 res->status, res->planned_total, res->deleted_total,
		 res->left_total, res->seconds);
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
	/* params and counts hold ISO text and numbers the purge wrote (or
	 * the migration copied from apexops.purge_runs) */
	r = db_query_value(
		db,
		"SELECT COALESCE(json_agg(r ORDER BY r.id DESC), '[]')::text"
		" FROM (SELECT id, started_at, finished_at, status, mode,"
		"  trigger, os_user, db_user, application_name, client_host,"
		"  (params ->> 'months')::int AS months, params ->> 'tz' AS tz,"
		"  (params ->> 'as_of')::date AS as_of,"
		"  (params ->> 'today')::date AS today,"
		"  (params ->> 'cutoff')::timestamptz AS cutoff,"
		"  (counts ->> 'rows_planned')::bigint AS rows_planned,"
		"  (counts ->> 'rows_deleted')::bigint AS rows_deleted,"
		"  (counts ->> 'null_rows')::bigint AS null_rows,"
		"  (extract(epoch FROM finished_at - started_at) * 1000)"
		"   ::bigint AS duration_ms, error,"
		"  COALESCE(counts -> 'tables', '[]'::jsonb) AS tables"
		"  FROM apexops.job_runs WHERE job = 'usage-purge'"
		"  ORDER BY id DESC LIMIT $1::int) r",
		1, params, json, err);
	if (r != 0)
		return ops_err_prefix(err, "reading the purge runs");
	return 0;
}

/* Detached expired partitions still to drop, when there are any. */
static int
status_detached(struct db *db, struct buf *out, struct ops_err *err)
{
	struct db_res *res = NULL;
	long long bytes = 0;
	bool ready = false;
	int r = purge_detached_ready(db, &ready, err);

	if (r != 0 || !ready)
		return r;
	r = purge_detached_list(db, NULL, &res, err);
	if (r != 0)
		return r;
	for (int i = 0; i < db_res_rows(res); i++)
		bytes += strtoll(db_res_get(res, i, 5), NULL, 10);
	if (db_res_rows(res) > 0)
		buf_addf(out,
			 "  detached, not dropped      %d table%s (%lld MiB), "
			 "oldest detached %s: the next purge drops them\n",
			 db_res_rows(res), db_res_rows(res) == 1 ? "" : "s",
			 bytes / (1024 * 1024), db_res_get(res, 0, 4));
	db_res_free(res);
	return 0;
}

int
purge_status_report(struct db *db, struct buf *out, struct ops_err *err)
{
	struct db_res *res = NULL;
	bool have = false;
	int r = 0;

	for (int i = 0; i < purge_npolicies; i++) {
		const struct purge_policy *p = &purge_policies[i];
		char qname[160], disp[160], sql[512];

		purge_policy_ident(p, qname, sizeof(qname));
		snprintf(disp, sizeof(disp), "%s.%s", p->schema, p->table);
		r = db_relation_exists(db, qname, &have, err);
		if (r != 0)
			goto out;
		if (!have) {
			buf_addf(out,
				 "  %-26s table missing (skipped by purges)\n",
				 disp);
			continue;
		}
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
			buf_addf(out, "  %-26s no dated rows\n", disp);
		else
			buf_addf(out, "  %-26s oldest %s %s (%s days old)\n",
				 disp, p->column, db_res_get(res, 0, 0),
				 db_res_get(res, 0, 1));
		db_res_free(res);
		res = NULL;
	}
	r = status_detached(db, out, err);
	if (r != 0)
		goto out;
	r = db_relation_exists(db, "apexops.job_runs", &have, err);
	if (r != 0)
		goto out;
	if (!have) {
		buf_adds(out, "  last purge                 none "
			      "(apexops.job_runs missing)\n");
		goto out;
	}
	r = db_query(db,
		     "SELECT id, COALESCE(mode, '-'), status,"
		     " to_char(started_at AT TIME ZONE 'UTC',"
		     " 'YYYY-MM-DD HH24:MI:SS\"Z\"'),"
		     " COALESCE(params ->> 'months', '-'),"
		     " to_char((params ->> 'cutoff')::timestamptz AT TIME ZONE"
		     " 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"'),"
		     " COALESCE(counts ->> 'rows_deleted',"
		     "  counts ->> 'rows_planned', '0'), trigger"
		     " FROM apexops.job_runs WHERE job = 'usage-purge'"
		     " ORDER BY id DESC LIMIT 1",
		     0, NULL, &res, err);
	if (r != 0)
		goto out;
	if (db_res_rows(res) == 0)
		buf_adds(out, "  last purge                 never\n");
	else
		buf_addf(
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
	db_res_free(res);
	if (r != 0)
		ops_err_prefix(err, "retention status");
	return r;
}
