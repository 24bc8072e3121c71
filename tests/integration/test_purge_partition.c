/*
 * Integration tests of dropping an expired partition: the concurrent path
 * (no default partition), with a live writer that must not queue behind
 * it; the short-lock retry path (a default partition exists) while another
 * session holds a conflicting lock until the drop has retried; FINALIZE of
 * a detach left pending; refusals that change nothing.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#define ITEST_DB "purge_partition"
#include "itest.h"
#include "jobs/purge_partition.h"

/* A table `name` by month, January to March 2024, 10 rows a month; with a
 * default partition when with_default. Test fixtures only. */
static void
make_table(struct db *db, const char *name, bool with_default)
{
	char sql[1024];

	snprintf(sql, sizeof(sql),
		 "CREATE TABLE %s (id bigint, created_at timestamptz NOT NULL)"
		 " PARTITION BY RANGE (created_at)",
		 name);
	itest_exec(db, sql);
	for (int m = 1; m <= 3; m++) {
		snprintf(sql, sizeof(sql),
			 "CREATE TABLE \"%s 2024-%02d\" PARTITION OF %s FOR "
			 "VALUES FROM ('2024-%02d-01 00:00+00') TO "
			 "('2024-%02d-01 00:00+00')",
			 name, m, name, m, m + 1);
		itest_exec(db, sql);
	}
	if (with_default) {
		snprintf(sql, sizeof(sql),
			 "CREATE TABLE %s_default PARTITION OF %s DEFAULT",
			 name, name);
		itest_exec(db, sql);
	}
	snprintf(sql, sizeof(sql),
		 "INSERT INTO %s SELECT g, timestamptz '2024-01-01 00:00+00'"
		 " + (g %% 3) * interval '1 month' + g * interval '1 minute'"
		 " FROM generate_series(0, 29) g",
		 name);
	itest_exec(db, sql);
}

/* Poll sql (one boolean) every 10 ms until true; false after a minute. */
static bool
wait_true(struct db *db, const char *sql)
{
	for (int i = 0; i < 6000; i++) {
		char *v = itest_value(db, sql);
		bool yes = v != NULL && strcmp(v, "t") == 0;

		free(v);
		if (yes)
			return true;
		usleep(10000);
	}
	return false;
}

struct dropper {
	struct db *db;
	const char *parent, *child;
	long lock_timeout_ms;
	bool detach_only; /* purge_partition_detach() instead */
	volatile sig_atomic_t *stop;
	struct purge_partition_stats st;
	struct ops_err err;
	int r;
	atomic_int done;
};

static void *
dropper_thread(void *arg)
{
	struct dropper *d = arg;

	if (d->detach_only)
		d->r = purge_partition_detach(d->db, d->parent, d->child,
					      d->lock_timeout_ms, 0, d->stop,
					      &d->st, &d->err);
	else
		d->r = purge_partition_drop(d->db, d->parent, d->child,
					    d->lock_timeout_ms, d->stop, &d->st,
					    &d->err);
	atomic_store(&d->done, 1);
	return NULL;
}

/*
 * Wait until backend pid has waited on a heavyweight lock in `times`
 * different statements (query_start changes with each retry), or d ended.
 */
static int
wait_for_lock_waits(struct db *watcher, struct dropper *d, int times)
{
	char sql[256], last[64] = "";
	int seen = 0;

	snprintf(sql, sizeof(sql),
		 "SELECT query_start::text FROM pg_stat_activity"
		 " WHERE pid = %d AND wait_event_type = 'Lock'",
		 db_backend_pid(d->db));
	for (int i = 0; i < 120000 && seen < times && !atomic_load(&d->done);
	     i++) {
		char *v = itest_value(watcher, sql);

		if (v != NULL && strcmp(v, last) != 0) {
			snprintf(last, sizeof(last), "%s", v);
			seen++;
		}
		free(v);
		usleep(500);
	}
	return seen;
}

static void
test_concurrent_without_default(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_partition_stats st;

	(void)state;
	make_table(db, "ev", false);
	itest_exec(db, "SET lock_timeout = '7s'");
	assert_int_equal(purge_partition_drop(db, "public.ev",
					      "public.\"ev 2024-01\"", 0, NULL,
					      &st, &err),
			 0);
	assert_true(st.concurrent);
	assert_false(st.finalized);
	assert_true(st.detached && st.dropped);
	assert_int_equal(st.rows, 10);
	assert_int_equal(st.attempts, 2); /* one detach, one drop */
	assert_string_equal(st.child, "public.\"ev 2024-01\"");
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM pg_class"
					    " WHERE relname = 'ev 2024-01'"),
			 0);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM ev"), 20);
	/* the session's own lock_timeout is back */
	{
		char *v = itest_value(db, "SHOW lock_timeout");

		assert_string_equal(v, "7s");
		free(v);
	}
	db_close(db);
}

/* An open writer's transaction on the parent: the detach waits for it,
 * but new inserts into the parent go through meanwhile. */
static void
test_concurrent_spares_live_writers(void **state)
{
	struct db *db = itest_connect(url);
	struct db *writer = itest_connect(url);
	struct db *late = itest_connect(url);
	struct dropper d;
	pthread_t th;

	(void)state;
	make_table(db, "evw", false);
	memset(&d, 0, sizeof(d));
	d.db = itest_connect(url);
	d.parent = "evw";
	d.child = "\"evw 2024-01\"";
	itest_exec(writer, "BEGIN");
	itest_exec(writer, "INSERT INTO evw VALUES (100, '2024-03-05')");
	assert_int_equal(pthread_create(&th, NULL, dropper_thread, &d), 0);
	/* detach started: the partition is marked pending while it waits */
	assert_true(wait_true(db, "SELECT inhdetachpending FROM pg_inherits"
				  " WHERE inhrelid = '\"evw 2024-01\"'"
				  "::regclass"));
	/* a new writer is not queued behind the detach */
	itest_exec(late, "SET lock_timeout = '30s'");
	itest_exec(late, "INSERT INTO evw VALUES (101, '2024-02-05')");
	itest_exec(writer, "COMMIT");
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(d.r, 0);
	assert_true(d.st.dropped);
	assert_true(d.st.concurrent || d.st.finalized);
	assert_int_equal(d.st.rows, 10);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM evw"), 22);
	db_close(d.db);
	db_close(late);
	db_close(writer);
	db_close(db);
}

static void
test_lock_retry_with_default(void **state)
{
	struct db *db = itest_connect(url);
	struct db *holder = itest_connect(url);
	struct dropper d;
	pthread_t th;

	(void)state;
	make_table(db, "evd", true);
	memset(&d, 0, sizeof(d));
	d.db = itest_connect(url);
	d.parent = "public.evd";
	d.child = "public.\"evd 2024-01\"";
	d.lock_timeout_ms = 50;
	/* a reader on the parent: a plain DETACH needs ACCESS EXCLUSIVE */
	itest_exec(holder, "BEGIN");
	itest_exec(holder, "SELECT count(*) FROM evd");
	assert_int_equal(pthread_create(&th, NULL, dropper_thread, &d), 0);
	/* released once the drop has waited, timed out and tried again */
	assert_true(wait_for_lock_waits(db, &d, 2) >= 2);
	itest_exec(holder, "ROLLBACK");
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(d.r, 0);
	assert_false(d.st.concurrent); /* not allowed with a default */
	assert_true(d.st.lock_retries >= 1);
	assert_true(d.st.attempts >= 3);
	assert_true(d.st.dropped);
	assert_int_equal(d.st.rows, 10);
	assert_int_equal(itest_value_ll(db,
					"SELECT count(*) FROM pg_inherits"
					" WHERE inhparent = 'evd'::regclass"),
			 3); /* February, March, default */
	db_close(d.db);
	db_close(holder);
	db_close(db);
}

static void
test_finalizes_a_pending_detach(void **state)
{
	struct db *db = itest_connect(url);
	struct db *holder = itest_connect(url);
	struct db *other = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_partition_stats st;

	(void)state;
	make_table(db, "evp", false);
	/* an older snapshot that the second phase waits for ... */
	itest_exec(holder, "BEGIN ISOLATION LEVEL REPEATABLE READ");
	itest_exec(holder, "SELECT count(*) FROM evp");
	/* ... and a detach interrupted while it waits */
	itest_exec(other, "SET statement_timeout = '300ms'");
	assert_int_not_equal(db_exec(other,
				     "ALTER TABLE evp DETACH PARTITION"
				     " \"evp 2024-01\" CONCURRENTLY",
				     0, NULL, NULL, &err),
			     0);
	itest_exec(holder, "COMMIT");
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM pg_inherits"
					    " WHERE inhdetachpending"),
			 1);
	assert_int_equal(purge_partition_drop(db, "evp", "\"evp 2024-01\"", 0,
					      NULL, &st, &err),
			 0);
	assert_true(st.finalized);
	assert_false(st.concurrent);
	assert_true(st.dropped);
	assert_int_equal(st.rows, 10);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM pg_inherits"
					    " WHERE inhdetachpending"),
			 0);
	assert_null(itest_value(db, "SELECT to_regclass('\"evp 2024-01\"')"));
	db_close(other);
	db_close(holder);
	db_close(db);
}

static void
test_refusals_change_nothing(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_partition_stats st;
	volatile sig_atomic_t stop = 1;

	(void)state;
	make_table(db, "evr", false);
	itest_exec(db, "CREATE TABLE lone (id int)");
	assert_int_equal(
		purge_partition_drop(db, "evr", "lone", 0, NULL, &st, &err),
		OPS_E_NOTFOUND);
	assert_non_null(strstr(err.msg, "not a partition of"));
	assert_int_equal(
		purge_partition_drop(db, "evr", "nosuch", 0, NULL, &st, &err),
		OPS_E_NOTFOUND);
	/* text that is not a name is looked up, never run */
	assert_int_equal(purge_partition_drop(db, "evr", "lone; DROP TABLE evr",
					      0, NULL, &st, &err),
			 OPS_E_INVALID);
	assert_non_null(strstr(err.msg, "is not a table name"));
	assert_int_equal(purge_partition_drop(db, "evr", "\"evr 2024-01\"", 0,
					      &stop, &st, &err),
			 OPS_E_STOPPED);
	assert_int_equal(db_begin(db, &err), 0);
	assert_int_equal(purge_partition_drop(db, "evr", "\"evr 2024-01\"", 0,
					      NULL, &st, &err),
			 OPS_E_INVALID);
	db_rollback(db);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM pg_inherits"
					    " WHERE inhparent = 'evr'::regclass"
					    " AND NOT inhdetachpending"),
			 3);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM lone"), 0);
	db_close(db);
}

/* Rows of apexops.purge_detached. */
static long long
records(struct db *db)
{
	return itest_value_ll(db,
			      "SELECT count(*) FROM apexops.purge_detached");
}

/*
 * The two steps apart, as the purge runs them: the detach (CONCURRENTLY:
 * no default partition) is recorded with its run, the table stays until
 * purge_partition_drop_detached() drops it and its record together.
 */
static void
test_detach_is_recorded_until_dropped(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_partition_stats st, st2;
	struct db_res *res = NULL;
	char *v;

	(void)state;
	make_table(db, "evs", false);
	assert_int_equal(purge_partition_detach(db, "evs", "\"evs 2024-01\"", 0,
						42, NULL, &st, &err),
			 0);
	assert_true(st.detached);
	assert_true(st.concurrent);
	assert_false(st.dropped);
	v = itest_value(db, "SELECT child || '|' || parent || '|' || run_id"
			    " || '|' || (relid = '\"evs 2024-01\"'::regclass)"
			    " FROM apexops.purge_detached");
	assert_string_equal(v, "public.\"evs 2024-01\"|public.evs|42|true");
	free(v);
	/* out of the table, still in the database */
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM evs"), 20);
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM \"evs 2024-01\""), 10);
	assert_int_equal(purge_detached_list(db, "evs", &res, &err), 0);
	assert_int_equal(db_res_rows(res), 1);
	assert_string_equal(db_res_get(res, 0, 0), st.relid);
	assert_string_equal(db_res_get(res, 0, 1), "public.\"evs 2024-01\"");
	db_res_free(res);
	/* another parent's list does not have it */
	itest_exec(db, "CREATE TABLE evs_other (id int)");
	assert_int_equal(purge_detached_list(db, "evs_other", &res, &err), 0);
	assert_int_equal(db_res_rows(res), 0);
	db_res_free(res);

	assert_int_equal(purge_partition_drop_detached(db, st.relid, 0, NULL,
						       &st2, &err),
			 0);
	assert_true(st2.dropped);
	assert_false(st2.gone);
	assert_int_equal(st2.rows, 10);
	assert_int_equal(records(db), 0);
	assert_null(itest_value(db, "SELECT to_regclass('\"evs 2024-01\"')"));
	/* once only */
	assert_int_equal(purge_partition_drop_detached(db, st.relid, 0, NULL,
						       &st2, &err),
			 OPS_E_NOTFOUND);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM evs"), 20);
	db_close(db);
}

/* With a default partition the plain DETACH and its record commit
 * together; purge_partition_drop() leaves no record behind. */
static void
test_plain_detach_is_recorded(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_partition_stats st;
	char *rel;
	int r;

	(void)state;
	make_table(db, "evq", true);
	assert_int_equal(purge_partition_detach(db, "evq", "\"evq 2024-01\"", 0,
						0, NULL, &st, &err),
			 0);
	assert_false(st.concurrent);
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM apexops.purge_detached"
				   " WHERE run_id IS NULL AND relid ="
				   " '\"evq 2024-01\"'::regclass"),
		1);
	assert_int_equal(purge_partition_drop(db, "evq", "\"evq 2024-02\"", 0,
					      NULL, &st, &err),
			 0);
	assert_true(st.dropped);
	assert_int_equal(records(db), 1); /* January's only */
	assert_int_equal(purge_partition_drop_detached(db, "999999999", 0, NULL,
						       &st, &err),
			 OPS_E_NOTFOUND);
	itest_exec(db, "DROP TABLE \"evq 2024-01\"");
	/* dropped by someone else: the record is forgotten, nothing fails */
	rel = itest_value(db, "SELECT relid::text FROM apexops.purge_detached");
	r = purge_partition_drop_detached(db, rel, 0, NULL, &st, &err);
	if (r != 0)
		fprintf(stderr, "drop_detached %s: %s\n", rel, err.msg);
	assert_int_equal(r, 0);
	free(rel);
	assert_true(st.gone);
	assert_false(st.dropped);
	assert_int_equal(records(db), 0);
	db_close(db);
}

/*
 * Records that no longer name a detached table are never acted on: the
 * table is a partition again (the detach did not happen), the oid is gone,
 * the oid carries another name. The list leaves them out, dropping refuses
 * a partition, and forget_stale deletes them without touching a table.
 */
static void
test_stale_records_are_forgotten(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct purge_partition_stats st;
	struct db_res *res = NULL;
	char *attached;
	int forgotten = -1;
	static const char *const bad[] = {
		"", "abc", "0", "-1", "12;DROP", "4294967296", "99999999999"
	};

	(void)state;
	make_table(db, "evx", false);
	itest_exec(db, "CREATE TABLE evx_solo (id int)");
	itest_exec(db, "INSERT INTO evx_solo VALUES (1)");
	itest_exec(db, "CREATE TABLE evx_tmp (id int)");
	itest_exec(db,
		   "INSERT INTO apexops.purge_detached"
		   " (relid, child, parent_relid, parent) VALUES"
		   " ('\"evx 2024-02\"'::regclass, 'public.\"evx 2024-02\"',"
		   "  'evx'::regclass, 'public.evx'),"
		   " ('evx_tmp'::regclass, 'public.evx_tmp', 'evx'::regclass,"
		   "  'public.evx'),"
		   " ('evx_solo'::regclass, 'public.not_evx_solo',"
		   "  'evx'::regclass, 'public.evx')");
	itest_exec(db, "DROP TABLE evx_tmp");
	assert_int_equal(purge_detached_list(db, NULL, &res, &err), 0);
	assert_int_equal(db_res_rows(res), 0);
	db_res_free(res);
	assert_int_equal(purge_detached_list(db, "evx", &res, &err), 0);
	assert_int_equal(db_res_rows(res), 0);
	db_res_free(res);

	attached = itest_value(db, "SELECT '\"evx 2024-02\"'::regclass::oid");
	assert_int_equal(
		purge_partition_drop_detached(db, attached, 0, NULL, &st, &err),
		OPS_E_NOTFOUND);
	assert_non_null(strstr(err.msg, "a partition again"));
	free(attached);
	assert_int_equal(records(db), 2);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(purge_partition_drop_detached(db, bad[i], 0,
							       NULL, &st, &err),
				 OPS_E_INVALID);
		assert_non_null(strstr(err.msg, "expected a whole number"));
	}
	assert_int_equal(
		purge_partition_drop_detached(db, NULL, 0, NULL, &st, &err),
		OPS_E_INVALID);
	assert_int_equal(records(db), 2);
	assert_int_equal(purge_detached_forget_stale(db, &forgotten, &err), 0);
	assert_int_equal(forgotten, 2);
	assert_int_equal(records(db), 0);
	/* nothing was dropped or detached */
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM evx_solo"),
			 1);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM evx"), 30);
	assert_int_equal(itest_value_ll(db,
					"SELECT count(*) FROM pg_inherits"
					" WHERE inhparent = 'evx'::regclass"),
			 3);
	db_close(db);
}

/*
 * A DETACH ... CONCURRENTLY commits its record first; when it then gives
 * up (here: a lock it cannot get, and a stop), the table is still
 * attached and the record goes.
 */
static void
test_failed_detach_leaves_no_record(void **state)
{
	struct db *db = itest_connect(url);
	struct db *holder = itest_connect(url);
	struct db *watcher = itest_connect(url);
	volatile sig_atomic_t stop = 0;
	struct dropper d;
	pthread_t th;

	(void)state;
	make_table(db, "evf", false);
	/* SHARE conflicts with the SHARE UPDATE EXCLUSIVE of CONCURRENTLY */
	itest_exec(holder, "BEGIN");
	itest_exec(holder, "LOCK TABLE evf IN SHARE MODE");
	memset(&d, 0, sizeof(d));
	d.db = db;
	d.parent = "evf";
	d.child = "\"evf 2024-01\"";
	d.lock_timeout_ms = 20;
	d.detach_only = true;
	d.stop = &stop;
	assert_int_equal(pthread_create(&th, NULL, dropper_thread, &d), 0);
	assert_int_equal(wait_for_lock_waits(watcher, &d, 2), 2);
	stop = 1;
	pthread_join(th, NULL);
	itest_exec(holder, "COMMIT");
	assert_int_equal(d.r, OPS_E_STOPPED);
	assert_false(d.st.detached);
	assert_true(d.st.lock_retries >= 1);
	assert_int_equal(records(watcher), 0);
	assert_int_equal(itest_value_ll(watcher,
					"SELECT count(*) FROM pg_inherits"
					" WHERE inhparent = 'evf'::regclass"
					" AND NOT inhdetachpending"),
			 3);
	db_close(watcher);
	db_close(holder);
	db_close(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_without_default),
		cmocka_unit_test(test_concurrent_spares_live_writers),
		cmocka_unit_test(test_lock_retry_with_default),
		cmocka_unit_test(test_finalizes_a_pending_detach),
		cmocka_unit_test(test_refusals_change_nothing),
		cmocka_unit_test(test_detach_is_recorded_until_dropped),
		cmocka_unit_test(test_plain_detach_is_recorded),
		cmocka_unit_test(test_stale_records_are_forgotten),
		cmocka_unit_test(test_failed_detach_leaves_no_record),
	};

	return cmocka_run_group_tests(tests, itest_setup, itest_teardown);
}
