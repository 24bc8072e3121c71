/* Integration tests of the purge engine as the scheduler calls it. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include "core/buf.h"
#include "itest.h"
#include "jobs/job.h"
#include "jobs/ledger.h"
#include "jobs/purge.h"
#include "jobs/purge_partition.h"

static char *url;

static int
setup(void **state)
{
	struct db *db;

	(void)state;
	url = itest_new_db("purge", 1);
	db = itest_connect(url);
	itest_exec(db, "ALTER TABLE usage_events DROP CONSTRAINT IF EXISTS "
		       "usage_events_customer_id_fkey");
	/* 300 rows before 2024-02-29 (the 2025-08-31 - 18 months cutoff),
	 * 100 at or after it, one NULL */
	itest_exec(db, "INSERT INTO usage_events (customer_id, event_name,"
		       " event_value, created_at)"
		       " SELECT gen_random_uuid(), 'api_calls', 1,"
		       " timestamptz '2024-02-29 00:00:00+00' - g * interval "
		       "'1 hour' FROM generate_series(1, 300) g"
		       " UNION ALL SELECT gen_random_uuid(), 'api_calls', 1,"
		       " timestamptz '2024-02-29 00:00:00+00' + g * interval "
		       "'1 hour' FROM generate_series(0, 99) g"
		       " UNION ALL SELECT gen_random_uuid(), 'api_calls', 1, "
		       "NULL");
	db_close(db);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	free(url);
	return 0;
}

static void
base_opts(struct purge_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->months = 18;
	o->tz = "UTC";
	o->as_of = "2025-08-31";
	/* short: pausing between drops has tests of its own */
	o->drop_pause_ms = 20;
}

static struct ops_config test_cfg;

/* Through the job, as apexops purge runs it: the lock, the ledger row and
 * the engine; trigger "scheduled". */
static int
run_job(struct db *db, const struct purge_opts *o, struct purge_result *res,
	struct ops_err *err)
{
	struct job_ctx ctx;
	int r;

	memset(res, 0, sizeof(*res));
	memset(&test_cfg, 0, sizeof(test_cfg));
	test_cfg.cron_tz = "UTC";
	test_cfg.usage_retention_months = 18;
	memset(&ctx, 0, sizeof(ctx));
	ctx.db = db;
	ctx.cfg = &test_cfg;
	ctx.trigger = LEDGER_SCHEDULED;
	ctx.args = o;
	ctx.out = res;
	r = job_run(job_find("usage-purge"), &ctx, err);
	job_ctx_release(&ctx);
	return r;
}

static void
test_months_out_of_range(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_result res;
	struct purge_opts o;
	static const long bad[] = { 0, -1, 1201 };

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		base_opts(&o);
		o.months = bad[i];
		o.execute = true;
		assert_int_equal(purge_run(db, &o, &res, &err), OPS_E_CONFIG);
		assert_non_null(strstr(err.msg, "1 to 1200"));
	}
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM usage_events"), 401);
	db_close(db);
}

static void
test_cutoff_clamps_at_month_end(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	char utc[40], local[40], today[11];

	(void)state;
	assert_int_equal(purge_cutoff(db, 6, "UTC", "2025-08-31", utc, local,
				      today, &err),
			 0);
	assert_string_equal(utc, "2025-02-28T00:00:00.000000Z");
	assert_string_equal(today, "2025-08-31");
	assert_int_equal(purge_cutoff(db, 1, "Europe/Tallinn", "2024-03-31",
				      utc, local, today, &err),
			 0);
	assert_string_equal(utc, "2024-02-28T22:00:00.000000Z");
	assert_string_equal(local, "2024-02-29 00:00:00");
	db_close(db);
}

static void
test_stop_flag_stops_before_deleting(void **state)
{
	static volatile sig_atomic_t stop = 1;
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_result res;
	struct purge_opts o;

	(void)state;
	base_opts(&o);
	o.execute = true;
	o.stop = &stop;
	assert_int_equal(run_job(db, &o, &res, &err), OPS_E_STOPPED);
	assert_true(err.transient);
	assert_true(res.stopped);
	assert_int_equal(res.planned_total, 300);
	assert_int_equal(res.deleted_total, 0);
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM usage_events"), 401);
	assert_int_equal(
		itest_value_ll(db,
			       "SELECT count(*) FROM apexops.job_runs"
			       " WHERE status = 'stopped'"
			       " AND job = 'usage-purge'"
			       " AND trigger = 'scheduled'"
			       " AND mode = 'execute'"
			       " AND (counts ->> 'rows_planned')::int = 300"),
		1);
	db_close(db);
}

static void
test_scheduled_run_and_status(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct buf out = BUF_INIT;
	struct purge_result res;
	struct purge_opts o;
	char *json = NULL;

	(void)state;
	assert_int_equal(purge_status_report(db, &out, &err), 0);
	assert_non_null(strstr(buf_str(&out),
			       "public.usage_events        oldest "
			       "created_at 2024-02-16"));
	buf_reset(&out);

	base_opts(&o);
	o.execute = true;
	o.batch_min = 50; /* several batches */
	o.batch_max = 50;
	assert_int_equal(run_job(db, &o, &res, &err), 0);
	assert_false(res.stopped);
	assert_int_equal(res.tables[0].planned_rows, 300);
	assert_int_equal(res.tables[0].deleted_rows, 300);
	assert_true(res.tables[0].batches >= 6);
	assert_int_equal(res.tables[0].null_rows, 1);
	assert_int_equal(itest_value_ll(db,
					"SELECT count(*) FROM usage_events"
					" WHERE created_at < '2024-02-29Z'"),
			 0);
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM usage_events"), 101);

	assert_int_equal(purge_status_report(db, &out, &err), 0);
	assert_non_null(strstr(buf_str(&out), "oldest created_at 2024-02-29 "
					      "00:00:00Z"));
	assert_non_null(strstr(buf_str(&out), "scheduled execute succeeded"));
	assert_non_null(strstr(buf_str(&out), "300 rows deleted"));
	buf_release(&out);

	assert_int_equal(purge_history_json(db, 1, &json, &err), 0);
	assert_non_null(strstr(json, "\"rows_deleted\":300"));
	free(json);
	db_close(db);
}

/* A database of its own with n rows before 2024-02-29 (the 2025-08-31 - 18
 * months cutoff), one per 10 minutes, and 100 after it. */
static char *
seeded_db(const char *name, int n)
{
	char *u = itest_new_db(name, 1), *sql;
	struct db *db = itest_connect(u);

	itest_exec(db, "ALTER TABLE usage_events DROP CONSTRAINT IF EXISTS "
		       "usage_events_customer_id_fkey");
	sql = xasprintf(
		"INSERT INTO usage_events (customer_id, event_name,"
		" event_value, created_at)"
		" SELECT gen_random_uuid(), 'api_calls', g,"
		" timestamptz '2024-02-29 00:00:00+00'"
		" - g * interval '10 minutes'"
		" FROM generate_series(1, %d) g"
		" UNION ALL SELECT gen_random_uuid(), 'api_calls', 0,"
		" timestamptz '2024-02-29 00:00:00+00'"
		" + g * interval '1 hour' FROM generate_series(0, 99) g",
		n);
	itest_exec(db, sql);
	free(sql);
	db_close(db);
	return u;
}

static long long
expired_left(struct db *db, const char *table)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM %s WHERE created_at < '2024-02-29Z'",
		 table);
	return itest_value_ll(db, sql);
}

static void
test_future_as_of_refused(void **state)
{
	char *u = seeded_db("purge_future", 300);
	struct db *db = itest_connect(u);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_result res;
	struct purge_opts o;

	(void)state;
	base_opts(&o);
	o.as_of = "2062-11-25"; /* a typo for 2026 */
	o.execute = true;
	assert_int_equal(purge_run(db, &o, &res, &err), OPS_E_INVALID);
	assert_non_null(strstr(err.msg, "--as-of 2062-11-25 is after today"));
	/* allowed, but only for a preview */
	o.allow_future_as_of = true;
	assert_int_equal(purge_run(db, &o, &res, &err), OPS_E_INVALID);
	assert_non_null(strstr(err.msg, "may only be previewed"));
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM usage_events"), 400);
	o.execute = false;
	assert_int_equal(purge_run(db, &o, &res, &err), 0);
	assert_int_equal(res.planned_total, 400);
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM usage_events"), 400);
	/* today itself is fine, in the zone's own calendar */
	o.allow_future_as_of = false;
	o.as_of = NULL;
	o.tz = "Pacific/Kiritimati";
	assert_int_equal(purge_run(db, &o, &res, &err), 0);
	db_close(db);
	free(u);
}

/*
 * The position between batches must not go through the session's
 * DateStyle and TimeZone: under 'SQL, DMY' and Asia/Kolkata, "IST" read
 * back is Israel time, and batches skipped 3.5 hours of rows each.
 */
static void
test_datestyle_does_not_skip_rows(void **state)
{
	char *u = seeded_db("purge_dmy", 20000), *role_url, *sql;
	struct db *db = itest_connect(u), *dmy;
	struct ops_err err = OPS_ERR_INIT;
	struct purge_result res;
	struct purge_opts o;
	char role[64];

	(void)state;
	snprintf(role, sizeof(role), "purge_dmy_%d", (int)getpid());
	sql = xasprintf("DROP ROLE IF EXISTS %s", role);
	itest_exec(db, sql);
	free(sql);
	sql = xasprintf("CREATE ROLE %s LOGIN SUPERUSER", role);
	itest_exec(db, sql);
	free(sql);
	sql = xasprintf("ALTER ROLE %s SET DateStyle = 'SQL, DMY'", role);
	itest_exec(db, sql);
	free(sql);
	sql = xasprintf("ALTER ROLE %s SET TimeZone = 'Asia/Kolkata'", role);
	itest_exec(db, sql);
	free(sql);
	role_url = xasprintf("postgresql://%s@%s", role, strchr(u, '@') + 1);
	dmy = itest_connect(role_url);
	/* the db layer pins both for its connections; the purge must be
	 * right without that, so take the role's settings back */
	itest_exec(dmy, "SET DateStyle = 'SQL, DMY'");
	itest_exec(dmy, "SET TimeZone = 'Asia/Kolkata'");
	{
		char *ds = itest_value(dmy, "SHOW DateStyle");

		assert_string_equal(ds, "SQL, DMY");
		free(ds);
	}
	base_opts(&o);
	o.execute = true;
	o.batch_min = 500;
	o.batch_max = 500;
	assert_int_equal(purge_run(dmy, &o, &res, &err), 0);
	assert_string_equal(res.status, "succeeded");
	assert_int_equal(res.tables[0].planned_rows, 20000);
	assert_int_equal(res.tables[0].deleted_rows, 20000);
	/* in one walk: the return walks (for locked rows) must not be what
	 * catches rows a misread position skipped */
	assert_int_equal(res.tables[0].passes, 1);
	assert_int_equal(expired_left(db, "usage_events"), 0);
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM usage_events"), 100);
	db_close(dmy);
	sql = xasprintf("DROP ROLE %s", role);
	itest_exec(db, sql);
	free(sql);
	free(role_url);
	db_close(db);
	free(u);
}

/* A legal hold: a BEFORE DELETE trigger keeps some rows. */
static void
test_trigger_kept_rows_are_walked_past(void **state)
{
	char *u = seeded_db("purge_hold", 10600);
	struct db *db = itest_connect(u);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_result res;
	struct purge_opts o;
	char *tables;

	(void)state;
	/* every 7th row is on hold, some in every batch */
	itest_exec(db, "CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql"
		       " AS $$ BEGIN IF OLD.event_value % 7 = 0 THEN"
		       " RETURN NULL; END IF; RETURN OLD; END $$");
	itest_exec(db, "CREATE TRIGGER legal_hold BEFORE DELETE ON usage_events"
		       " FOR EACH ROW EXECUTE FUNCTION hold()");
	base_opts(&o);
	o.execute = true;
	assert_int_equal(run_job(db, &o, &res, &err), OPS_E_REFUSED);
	assert_false(err.transient);
	assert_non_null(strstr(err.msg, "1514 kept by a trigger"));
	assert_string_equal(res.status, "partial");
	assert_int_equal(res.tables[0].deleted_rows, 10600 - 1514);
	assert_int_equal(res.tables[0].left_rows, 1514);
	assert_int_equal(res.tables[0].left_trigger, 1514);
	assert_int_equal(res.tables[0].left_locked, 0);
	assert_int_equal(expired_left(db, "usage_events"), 1514);
	/* the held rows were locked once, by the walk's committed batches:
	 * the census counted them from the walk and did not lock (write)
	 * them again in its rolled-back transaction (a fresh test cluster
	 * is in xid epoch 0, so xmax converts to xid8 as is) */
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM usage_events"
					    " WHERE pg_xact_status(xmax::text"
					    "::xid8) = 'committed'"),
			 1514);
	/* the run record keeps the reason */
	tables = itest_value(db, "SELECT counts::text || error FROM "
				 "apexops.job_runs ORDER BY id DESC LIMIT 1");
	assert_non_null(strstr(tables, "\"kept by a trigger\": 1514"));
	assert_non_null(strstr(tables, "partial purge"));
	free(tables);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM "
					    "apexops.job_runs WHERE status "
					    "= 'partial'"),
			 1);
	db_close(db);
	free(u);
}

/* The purge runs on one core: a trigger sees no parallel workers allowed
 * while it deletes, and the session's own values come back after. */
static void
test_purge_uses_one_core(void **state)
{
	char *u = seeded_db("purge_one_core", 3000);
	struct db *db = itest_connect(u);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_result res;
	struct purge_opts o;
	char *v;

	(void)state;
	itest_exec(db, "CREATE TABLE seen (q text, m text)");
	itest_exec(db, "CREATE FUNCTION note_workers() RETURNS trigger"
		       " LANGUAGE plpgsql AS $$ BEGIN INSERT INTO seen VALUES"
		       " (current_setting('max_parallel_workers_per_gather'),"
		       " current_setting('max_parallel_maintenance_workers'));"
		       " RETURN NULL; END $$");
	itest_exec(db, "CREATE TRIGGER note AFTER DELETE ON usage_events"
		       " FOR EACH STATEMENT EXECUTE FUNCTION note_workers()");
	itest_exec(db, "SET max_parallel_workers_per_gather = 3");
	itest_exec(db, "SET max_parallel_maintenance_workers = 3");
	base_opts(&o);
	o.execute = true;
	assert_int_equal(run_job(db, &o, &res, &err), 0);
	assert_int_equal(res.tables[0].deleted_rows, 3000);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM seen"
					    " WHERE q <> '0' OR m <> '0'"),
			 0);
	assert_true(itest_value_ll(db, "SELECT count(*) FROM seen") > 0);
	v = itest_value(db, "SELECT current_setting("
			    "'max_parallel_workers_per_gather') || ' ' ||"
			    " current_setting("
			    "'max_parallel_maintenance_workers')");
	assert_string_equal(v, "3 3");
	free(v);
	db_close(db);
	free(u);
}

/* Another transaction holds the oldest 1,001 expired rows. */
static void
test_locked_rows_are_skipped(void **state)
{
	char *u = seeded_db("purge_locked", 5000);
	struct db *db = itest_connect(u), *holder = itest_connect(u);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_result res;
	struct purge_opts o;
	char *rec;

	(void)state;
	assert_int_equal(db_begin(holder, &err), 0);
	itest_exec(holder, "SELECT 1 FROM (SELECT 1 FROM usage_events"
			   " ORDER BY created_at LIMIT 1001 FOR UPDATE) x");
	base_opts(&o);
	o.execute = true;
	o.lock_timeout_ms = 20;
	assert_int_equal(run_job(db, &o, &res, &err), OPS_E_CONFLICT);
	assert_true(err.transient); /* exit 75: a rerun may finish */
	assert_non_null(strstr(err.msg, "1001 locked by another transaction"));
	assert_string_equal(res.status, "partial");
	assert_int_equal(res.tables[0].deleted_rows, 5000 - 1001);
	assert_int_equal(res.tables[0].left_locked, 1001);
	assert_int_equal(res.left_locked, 1001);
	assert_true(res.tables[0].passes > 1); /* it came back for them */
	rec = itest_value(db, "SELECT status || ' ' || counts::text FROM"
			      " apexops.job_runs ORDER BY id DESC LIMIT 1");
	assert_true(strncmp(rec, "partial ", 8) == 0);
	assert_non_null(strstr(rec, "\"locked by another transaction\": 1001"));
	free(rec);
	db_rollback(holder);
	/* released: the next run finishes */
	assert_int_equal(purge_run(db, &o, &res, &err), 0);
	assert_int_equal(res.tables[0].deleted_rows, 1001);
	assert_int_equal(expired_left(db, "usage_events"), 0);
	db_close(holder);
	db_close(db);
	free(u);
}

struct vac_holder {
	const char *url;
	volatile int ready;
	int waited; /* the VACUUM waited past the statement timeout */
};

/* Hold off VACUUM of usage_events until it has waited for longer than the
 * purge session's statement timeout, or is gone. */
static void *
hold_vacuum(void *arg)
{
	struct vac_holder *h = arg;
	struct db *db = itest_connect(h->url);
	struct ops_err err = OPS_ERR_INIT;
	bool seen = false;

	if (db_begin(db, &err) != 0)
		abort();
	itest_exec(db,
		   "LOCK TABLE usage_events IN SHARE UPDATE EXCLUSIVE MODE");
	h->ready = 1;
	for (int i = 0; i < 6000; i++) {
		long long w;

		/* the activity view is a snapshot per transaction */
		itest_exec(db, "SELECT pg_stat_clear_snapshot()");
		w = itest_value_ll(
			db, "SELECT count(*) FILTER (WHERE clock_timestamp() - "
			    "query_start"
			    " > interval '1 second') * 10 + count(*)"
			    " FROM pg_stat_activity WHERE query LIKE"
			    " 'VACUUM%usage_events%' AND wait_event_type ="
			    " 'Lock'");

		if (w >= 10) {
			h->waited = 1;
			break;
		}
		if (w > 0)
			seen = true;
		else if (seen)
			break; /* it gave up: the timeout applied */
		usleep(10000);
	}
	db_rollback(db);
	db_close(db);
	return NULL;
}

static void
test_vacuum_without_statement_timeout(void **state)
{
	char *u = seeded_db("purge_vac", 2000);
	struct db *db = itest_connect(u), *other;
	struct ops_err err = OPS_ERR_INIT;
	struct vac_holder h = { u, 0, 0 };
	struct purge_result res;
	struct purge_opts o;
	pthread_t th;
	char *st;

	(void)state;
	itest_exec(db, "SET statement_timeout = '300ms'");
	assert_int_equal(pthread_create(&th, NULL, hold_vacuum, &h), 0);
	while (!h.ready)
		usleep(1000);
	base_opts(&o);
	o.execute = true;
	o.vacuum = true;
	assert_int_equal(purge_run(db, &o, &res, &err), 0);
	pthread_join(th, NULL);
	assert_int_equal(h.waited, 1);
	assert_string_equal(res.tables[0].vacuum_error, "");
	assert_true(res.tables[0].vacuumed);
	assert_true(res.tables[1].vacuumed);
	st = itest_value(db, "SHOW statement_timeout");
	assert_string_equal(st, "300ms"); /* restored */
	free(st);

	/* a VACUUM that fails is a warning, and the next table still gets
	 * its VACUUM */
	other = itest_connect(u);
	assert_int_equal(db_begin(other, &err), 0);
	itest_exec(other, "LOCK TABLE usage_events IN SHARE UPDATE EXCLUSIVE "
			  "MODE");
	itest_exec(db, "SET lock_timeout = '50ms'");
	assert_int_equal(purge_run(db, &o, &res, &err), 0);
	assert_string_equal(res.status, "succeeded");
	assert_int_equal(res.warnings, 1);
	assert_false(res.tables[0].vacuumed);
	assert_non_null(strstr(res.tables[0].vacuum_error, "lock timeout"));
	assert_true(res.tables[1].vacuumed);
	db_rollback(other);
	db_close(other);
	db_close(db);
	free(u);
}

static int
count_progress(void *arg, const struct purge_result *res, struct ops_err *err)
{
	long long *calls = arg;

	(void)err;
	/* the first report comes with the cutoff, before any batch */
	if (res->deleted_total > 0)
		(*calls)++;
	return 0;
}

/* Progress is reported as batches commit, at most about once a second. */
static void
test_progress_while_running(void **state)
{
	char *u = seeded_db("purge_prog", 3000);
	struct db *db = itest_connect(u);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_result res;
	struct purge_opts o;
	long long calls = 0;

	(void)state;
	base_opts(&o);
	o.execute = true;
	o.batch_min = 100;
	o.batch_max = 100;
	o.on_progress = count_progress;
	o.progress_arg = &calls;
	assert_int_equal(purge_run(db, &o, &res, &err), 0);
	/* 30 batches; a report at the end of each table at least, never one
	 * per batch */
	assert_true(calls >= 1);
	assert_true(calls < res.tables[0].batches);
	db_close(db);
	free(u);
}

/* The pacer drives the execution unless no_pace; --max-rate still holds. */
static void
test_paced_by_default(void **state)
{
	char *u = seeded_db("purge_pace", 3000);
	struct db *db = itest_connect(u);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_result res;
	struct purge_opts o;
	char *json;

	(void)state;
	base_opts(&o);
	o.execute = true;
	o.batch_min = 200;
	o.batch_max = 400;
	assert_int_equal(purge_run(db, &o, &res, &err), 0);
	assert_true(res.paced);
	assert_int_equal(res.tables[0].deleted_rows, 3000);
	/* the flags bound the pacer's batches */
	assert_true(res.pace_batch_lo >= 200);
	assert_true(res.pace_batch_hi <= 400);
	assert_true(res.tables[0].batches >= 3000 / 400);
	json = purge_result_json(&res);
	assert_non_null(strstr(json, "\"pace\": {\n    \"enabled\": true"));
	free(json);

	itest_exec(db, "INSERT INTO usage_events (customer_id, event_name,"
		       " event_value, created_at) SELECT gen_random_uuid(),"
		       " 'api_calls', g, timestamptz '2024-01-01Z'"
		       " FROM generate_series(1, 100) g");
	o.no_pace = true;
	assert_int_equal(purge_run(db, &o, &res, &err), 0);
	assert_false(res.paced);
	assert_int_equal(res.tables[0].deleted_rows, 100);
	db_close(db);
	free(u);
}

/* usage_events as monthly range partitions (UTC months), 2023-12..2024-08,
 * with no rows; the caller inserts. */
static char *
partitioned_db(const char *name)
{
	char *u = itest_new_db(name, 1);
	struct db *db = itest_connect(u);

	itest_exec(db, "DROP TABLE usage_events CASCADE");
	itest_exec(db, "CREATE TABLE usage_events (id uuid NOT NULL DEFAULT"
		       " gen_random_uuid(), customer_id uuid NOT NULL,"
		       " event_name varchar(100) NOT NULL,"
		       " event_value bigint NOT NULL,"
		       " created_at timestamptz DEFAULT CURRENT_TIMESTAMP)"
		       " PARTITION BY RANGE (created_at)");
	itest_exec(db, "CREATE INDEX ON usage_events (created_at)");
	itest_exec(db, "DO $$ DECLARE m timestamptz; BEGIN"
		       " FOR m IN SELECT generate_series(timestamptz"
		       " '2023-12-01Z', '2024-08-01Z', interval '1 month') LOOP"
		       " EXECUTE format('CREATE TABLE %I PARTITION OF"
		       " usage_events FOR VALUES FROM (%L) TO (%L)',"
		       " 'ue_' || to_char(m AT TIME ZONE 'UTC', 'YYYY_MM'), m,"
		       " m + interval '1 month'); END LOOP; END $$");
	db_close(db);
	return u;
}

/*
 * Partition bounds come back from pg_get_expr() in the session's DateStyle
 * and TimeZone: under 'SQL, DMY' and Europe/Dublin in summer "IST" is read
 * as Israel, two hours off, which made the June partition look expired
 * against a 2024-06-30 23:00Z cutoff and dropped rows newer than it.
 */
static void
test_partition_bounds_under_dmy(void **state)
{
	char *u = partitioned_db("purge_pdmy");
	struct db *db = itest_connect(u);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_result res;
	struct purge_opts o;

	(void)state;
	/* 3 rows an hour before the cutoff, 2 after it (June 30, UTC) */
	itest_exec(db,
		   "INSERT INTO usage_events (customer_id, event_name,"
		   " event_value, created_at) SELECT gen_random_uuid(),"
		   " 'api_calls', g, timestamptz '2024-06-30 21:50Z'"
		   " + g * interval '20 minutes' FROM generate_series(1, 5) g");
	itest_exec(db, "SET DateStyle = 'SQL, DMY'");
	itest_exec(db, "SET TimeZone = 'Europe/Dublin'");
	base_opts(&o);
	o.months = 1;
	o.tz = "Etc/GMT-1"; /* UTC+1: local midnight is 23:00Z */
	o.as_of = "2024-08-01";
	o.execute = true;
	assert_int_equal(purge_run(db, &o, &res, &err), 0);
	assert_string_equal(res.cutoff, "2024-06-30T23:00:00.000000Z");
	/* May and before are whole; June is not */
	assert_int_equal(res.tables[0].partitions_dropped, 6);
	assert_int_equal(res.tables[0].deleted_rows, 3);
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM usage_events"), 2);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM pg_class"
					    " WHERE relname = 'ue_2024_06'"),
			 1);
	db_close(db);
	free(u);
}

/* A legal-hold trigger on a partitioned table: whole partitions would go
 * without it firing, so they are purged row by row. */
static void
test_partitions_with_hold_go_row_by_row(void **state)
{
	char *u = partitioned_db("purge_phold");
	struct db *db = itest_connect(u);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_result res;
	struct purge_opts o;

	(void)state;
	itest_exec(db,
		   "INSERT INTO usage_events (customer_id, event_name,"
		   " event_value, created_at) SELECT gen_random_uuid(),"
		   " 'api_calls', g, timestamptz '2023-12-01Z'"
		   " + g * interval '1 hour' FROM generate_series(1, 2000) g");
	itest_exec(db, "CREATE FUNCTION hold() RETURNS trigger LANGUAGE plpgsql"
		       " AS $$ BEGIN IF OLD.event_value % 100 = 0 THEN"
		       " RETURN NULL; END IF; RETURN OLD; END $$");
	itest_exec(db, "CREATE TRIGGER legal_hold BEFORE DELETE ON usage_events"
		       " FOR EACH ROW EXECUTE FUNCTION hold()");
	base_opts(&o);
	o.execute = true;
	assert_int_equal(purge_run(db, &o, &res, &err), OPS_E_REFUSED);
	assert_string_equal(res.status, "partial");
	assert_string_equal(res.tables[0].partitions_off, "DELETE triggers");
	assert_int_equal(res.tables[0].partitions_planned, 0);
	assert_int_equal(res.tables[0].partitions_dropped, 0);
	assert_int_equal(res.tables[0].left_trigger, 20);
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM usage_events"), 20);
	db_close(db);
	free(u);
}

struct holder {
	const char *url;
	const char *lock_sql; /* run in the holder's transaction */
	const char *like;     /* the waiting statement, for LIKE */
	volatile int ready;
	int waited; /* it waited past the statement timeout */
};

/* Hold a lock until the statement that waits for it has waited for longer
 * than the purge session's statement timeout, or is gone. */
static void *
hold_lock(void *arg)
{
	struct holder *h = arg;
	struct db *db = itest_connect(h->url);
	struct ops_err err = OPS_ERR_INIT;
	bool seen = false;
	char *sql;

	if (db_begin(db, &err) != 0)
		abort();
	itest_exec(db, h->lock_sql);
	sql = xasprintf("SELECT count(*) FILTER (WHERE clock_timestamp()"
			" - query_start > interval '1 second') * 10 + count(*)"
			" FROM pg_stat_activity WHERE query LIKE '%s'"
			" AND wait_event_type = 'Lock'",
			h->like);
	h->ready = 1;
	for (int i = 0; i < 6000; i++) {
		long long w;

		/* the activity view is a snapshot per transaction */
		itest_exec(db, "SELECT pg_stat_clear_snapshot()");
		w = itest_value_ll(db, sql);
		if (w >= 10) {
			h->waited = 1;
			break;
		}
		if (w > 0)
			seen = true;
		else if (seen)
			break; /* it gave up: the timeout applied */
		usleep(10000);
	}
	free(sql);
	db_rollback(db);
	db_close(db);
	return NULL;
}

/* The plan counts whole tables: not under the statement timeout. */
static void
test_plan_without_statement_timeout(void **state)
{
	char *u = seeded_db("purge_plan_st", 1000);
	struct db *db = itest_connect(u);
	struct ops_err err = OPS_ERR_INIT;
	struct holder h = { u,
			    "LOCK TABLE billing_audit IN ACCESS EXCLUSIVE"
			    " MODE",
			    "SELECT count(*)%billing_audit%", 0, 0 };
	struct purge_result res;
	struct purge_opts o;
	pthread_t th;
	char *st;

	(void)state;
	itest_exec(db, "SET statement_timeout = '300ms'");
	assert_int_equal(pthread_create(&th, NULL, hold_lock, &h), 0);
	while (!h.ready)
		usleep(1000);
	base_opts(&o);
	o.execute = true;
	assert_int_equal(purge_run(db, &o, &res, &err), 0);
	pthread_join(th, NULL);
	assert_int_equal(h.waited, 1);
	assert_int_equal(res.tables[0].deleted_rows, 1000);
	st = itest_value(db, "SHOW statement_timeout");
	assert_string_equal(st, "300ms"); /* restored for the batches */
	free(st);
	db_close(db);
	free(u);
}

/* A key may reference one partition rather than the parent. */
static void
test_reference_to_a_partition(void **state)
{
	char *u = partitioned_db("purge_pref");
	struct db *db = itest_connect(u);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_result res;
	struct purge_opts o;

	(void)state;
	itest_exec(db,
		   "INSERT INTO usage_events (customer_id, event_name,"
		   " event_value, created_at) SELECT gen_random_uuid(),"
		   " 'api_calls', g, timestamptz '2024-01-01Z'"
		   " + g * interval '1 hour' FROM generate_series(1, 100) g");
	itest_exec(db, "ALTER TABLE ue_2024_01 ADD PRIMARY KEY (id)");
	itest_exec(db, "CREATE TABLE jan_notes (ue uuid REFERENCES"
		       " ue_2024_01 (id) ON DELETE RESTRICT)");
	itest_exec(db, "INSERT INTO jan_notes SELECT id FROM usage_events"
		       " ORDER BY created_at LIMIT 7");
	base_opts(&o);
	o.execute = true;
	assert_int_equal(purge_run(db, &o, &res, &err), OPS_E_REFUSED);
	assert_non_null(strstr(err.msg, "7 expired rows of public.usage_events"
					" are referenced by jan_notes"));
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM usage_events"), 100);
	o.skip_referenced = true;
	assert_int_equal(purge_run(db, &o, &res, &err), 0);
	assert_string_equal(res.tables[0].partitions_off,
			    "referenced by foreign keys");
	assert_int_equal(res.tables[0].left_referenced, 7);
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM usage_events"), 7);
	db_close(db);
	free(u);
}

/* A run killed before it knew its parameters still reads in status. */
static void
test_status_of_a_run_without_params(void **state)
{
	char *u = itest_new_db("purge_noparams", 1);
	struct db *db = itest_connect(u);
	struct ops_err err = OPS_ERR_INIT;
	struct buf out = BUF_INIT;

	(void)state;
	itest_exec(db, "INSERT INTO apexops.job_runs (job, trigger, status,"
		       " finished_at, error) VALUES ('usage-purge', 'manual',"
		       " 'abandoned', clock_timestamp(), 'killed')");
	assert_int_equal(purge_status_report(db, &out, &err), 0);
	assert_non_null(strstr(buf_str(&out), "manual - abandoned"));
	assert_non_null(strstr(buf_str(&out), "months -, cutoff -, 0 rows"));
	buf_release(&out);
	db_close(db);
	free(u);
}

/* 4 rows a month in partitioned_db()'s usage_events, December to August,
 * on the 3rd and 4th of the month. */
static void
four_a_month(struct db *db)
{
	itest_exec(db, "INSERT INTO usage_events (customer_id, event_name,"
		       " event_value, created_at) SELECT gen_random_uuid(),"
		       " 'api_calls', g, timestamptz '2023-12-03Z'"
		       " + (g / 4) * interval '1 month' + g * interval '1 hour'"
		       " FROM generate_series(0, 35) g");
}

/*
 * A run that detached months and died before dropping them (here: the
 * detach alone, as purge_partition_detach() left it) strands nothing: the
 * next dry-run counts the detached table's rows and changes nothing, the
 * next execution drops it first and reports its rows as deleted. A record
 * of a table the purge does not own is reported, never dropped.
 */
static void
test_detached_earlier_are_dropped(void **state)
{
	char *u = partitioned_db("purge_pdet");
	struct db *db = itest_connect(u);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_partition_stats st;
	struct purge_result res;
	struct purge_opts o;

	(void)state;
	four_a_month(db);
	assert_int_equal(purge_partition_detach(db, "public.usage_events",
						"public.ue_2023_12", 0, 0, NULL,
						&st, &err),
			 0);
	itest_exec(db, "CREATE TABLE other_parent (created_at timestamptz)"
		       " PARTITION BY RANGE (created_at)");
	itest_exec(db, "CREATE TABLE other_2020 PARTITION OF other_parent"
		       " FOR VALUES FROM ('2020-01-01Z') TO ('2020-02-01Z')");
	assert_int_equal(purge_partition_detach(db, "other_parent",
						"other_2020", 0, 0, NULL, &st,
						&err),
			 0);
	base_opts(&o);
	o.months = 2;
	o.as_of = "2024-08-15"; /* cutoff 2024-06-15: December to May whole */
	assert_int_equal(purge_run(db, &o, &res, &err), 0);
	assert_int_equal(res.tables[0].detached_pending, 1);
	assert_int_equal(res.tables[0].detached_rows, 4);
	assert_string_equal(res.tables[0].detached, "public.ue_2023_12");
	assert_int_equal(res.tables[0].partitions_planned, 5);
	/* 4 detached + 5 months of 4 + June's 4, all before the 15th */
	assert_int_equal(res.tables[0].planned_rows, 4 + 20 + 4);
	assert_int_equal(res.detached_other, 1);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM "
					    "apexops.purge_detached"),
			 2);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM ue_2023_12"),
			 4);

	o.execute = true;
	assert_int_equal(purge_run(db, &o, &res, &err), 0);
	assert_string_equal(res.status, "succeeded");
	assert_int_equal(res.tables[0].partitions_detached, 5);
	assert_int_equal(res.tables[0].partitions_dropped, 6);
	assert_int_equal(res.tables[0].deleted_rows, 28);
	assert_int_equal(res.tables[0].detached_left, 0);
	assert_null(itest_value(db, "SELECT to_regclass('ue_2023_12')"));
	assert_null(itest_value(db, "SELECT to_regclass('ue_2024_05')"));
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM pg_class"
					    " WHERE relname = 'ue_2024_06'"),
			 1);
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM usage_events"),
		36 - 28);
	/* the other table's record stays, and so does its table */
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM "
					    "apexops.purge_detached"),
			 1);
	assert_int_equal(res.detached_other, 1);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM other_2020"),
			 0);
	db_close(db);
	free(u);
}

/*
 * A stop between the detaches and the drops (the pause between two
 * drops) leaves the rest detached and recorded; the rows are out of the
 * table already, and the next run drops what is left.
 */
struct stopper {
	char *url;
	volatile sig_atomic_t *stop;
};

static void *
stop_after_first_drop(void *arg)
{
	struct stopper *s = arg;
	struct db *db = itest_connect(s->url);

	/* 5 months detached, then the first dropped: 4 records left. Both
	 * counts in one statement, one snapshot: read apart, 4 records
	 * while detaching and 4 attached after it looked like a drop */
	for (int i = 0; i < 30000; i++) {
		if (itest_value_ll(db,
				   "SELECT ((SELECT count(*) FROM"
				   " apexops.purge_detached) = 4 AND"
				   " (SELECT count(*) FROM pg_inherits"
				   " WHERE inhparent ="
				   " 'usage_events'::regclass) = 4)::int") == 1)
			break;
		usleep(1000);
	}
	*s->stop = 1;
	db_close(db);
	return NULL;
}

static void
test_stop_between_drops(void **state)
{
	char *u = partitioned_db("purge_pstop");
	struct db *db = itest_connect(u);
	struct ops_err err = OPS_ERR_INIT;
	volatile sig_atomic_t stop = 0;
	struct stopper s = { u, &stop };
	struct purge_result res;
	struct purge_opts o;
	pthread_t th;

	(void)state;
	four_a_month(db);
	base_opts(&o);
	o.months = 2;
	o.as_of = "2024-07-01"; /* cutoff 2024-05-01: December to April */
	o.execute = true;
	o.drop_pause_ms = 600000; /* the stop comes in the first pause */
	o.stop = &stop;
	assert_int_equal(pthread_create(&th, NULL, stop_after_first_drop, &s),
			 0);
	assert_int_equal(purge_run(db, &o, &res, &err), OPS_E_STOPPED);
	pthread_join(th, NULL);
	assert_string_equal(res.status, "stopped");
	assert_int_equal(res.drop_pause_ms, 600000);
	assert_int_equal(res.tables[0].partitions_detached, 5);
	assert_int_equal(res.tables[0].partitions_dropped, 1);
	assert_int_equal(res.tables[0].deleted_rows, 4);
	/* out of the table at once, the files still there */
	assert_int_equal(itest_value_ll(db,
					"SELECT count(*) FROM usage_events"
					" WHERE created_at < '2024-05-01Z'"),
			 0);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM "
					    "apexops.purge_detached"),
			 4);
	o.stop = NULL;
	o.drop_pause_ms = -1; /* back to back */
	assert_int_equal(purge_run(db, &o, &res, &err), 0);
	assert_int_equal(res.drop_pause_ms, 0);
	assert_int_equal(res.tables[0].detached_pending, 4);
	assert_int_equal(res.tables[0].partitions_detached, 0);
	assert_int_equal(res.tables[0].partitions_dropped, 4);
	assert_int_equal(res.tables[0].deleted_rows, 16);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM "
					    "apexops.purge_detached"),
			 0);
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM pg_class WHERE relname"
				   " ~ '^ue_(2023_12|2024_0[1-4])$'"),
		0);
	db_close(db);
	free(u);
}

/* Without the migration of apexops.purge_detached an execution that would
 * detach partitions refuses before changing anything; a dry-run plans. */
static void
test_detached_table_missing(void **state)
{
	char *u = partitioned_db("purge_pnomig");
	struct db *db = itest_connect(u);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_result res;
	struct purge_opts o;

	(void)state;
	four_a_month(db);
	itest_exec(db, "DROP TABLE apexops.purge_detached");
	base_opts(&o);
	o.months = 2;
	o.as_of = "2024-08-15";
	assert_int_equal(purge_run(db, &o, &res, &err), 0);
	assert_int_equal(res.tables[0].partitions_planned, 6);
	o.execute = true;
	assert_int_equal(purge_run(db, &o, &res, &err), OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "run 'apexops migrate up'"));
	assert_false(res.executed);
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM usage_events"), 36);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM pg_inherits"
					    " WHERE inhparent ="
					    " 'usage_events'::regclass"),
			 9);
	db_close(db);
	free(u);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_months_out_of_range),
		cmocka_unit_test(test_cutoff_clamps_at_month_end),
		cmocka_unit_test(test_stop_flag_stops_before_deleting),
		cmocka_unit_test(test_scheduled_run_and_status),
		cmocka_unit_test(test_future_as_of_refused),
		cmocka_unit_test(test_datestyle_does_not_skip_rows),
		cmocka_unit_test(test_trigger_kept_rows_are_walked_past),
		cmocka_unit_test(test_purge_uses_one_core),
		cmocka_unit_test(test_locked_rows_are_skipped),
		cmocka_unit_test(test_vacuum_without_statement_timeout),
		cmocka_unit_test(test_progress_while_running),
		cmocka_unit_test(test_paced_by_default),
		cmocka_unit_test(test_partition_bounds_under_dmy),
		cmocka_unit_test(test_partitions_with_hold_go_row_by_row),
		cmocka_unit_test(test_plan_without_statement_timeout),
		cmocka_unit_test(test_status_of_a_run_without_params),
		cmocka_unit_test(test_reference_to_a_partition),
		cmocka_unit_test(test_detached_earlier_are_dropped),
		cmocka_unit_test(test_stop_between_drops),
		cmocka_unit_test(test_detached_table_missing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
