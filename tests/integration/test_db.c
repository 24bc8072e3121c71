/* Integration tests of the libpq layer against a real PostgreSQL. */
#include <poll.h>
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
#define ITEST_DB "db"
#include "itest.h"

static void
test_params_and_results(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = itest_connect(url);
	struct db_res *res = NULL;
	/* a value that would break string-built SQL must round-trip */
	const char *params[2] = { "x'); DROP TABLE t; --", "42" };

	(void)state;
	assert_int_equal(db_query(db, "SELECT $1::text, $2::int + 1, NULL", 2,
				  params, &res, &err),
			 0);
	assert_int_equal(db_res_rows(res), 1);
	assert_int_equal(db_res_cols(res), 3);
	assert_string_equal(db_res_get(res, 0, 0), params[0]);
	assert_int_equal(db_res_ll(res, 0, 1), 43);
	assert_null(db_res_get(res, 0, 2));
	db_res_free(res);
	db_close(db);
}

static void
test_errors_carry_sqlstate(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = itest_connect(url);

	(void)state;
	assert_int_equal(
		db_exec(db, "SELECT * FROM no_such_table", 0, NULL, NULL, &err),
		OPS_E_DB);
	assert_string_equal(err.sqlstate, "42P01");
	assert_false(err.transient);
	assert_non_null(strstr(err.msg, "no_such_table"));
	assert_int_equal(db_exec(db, "SELECT 1/0", 0, NULL, NULL, &err),
			 OPS_E_DB);
	assert_string_equal(err.sqlstate, "22012");
	/* statement_timeout: cancelled, SQLSTATE 57014 */
	assert_int_equal(
		db_exec(db, "SET statement_timeout = 50", 0, NULL, NULL, &err),
		0);
	assert_int_equal(db_exec(db, "SELECT pg_sleep(2)", 0, NULL, NULL, &err),
			 OPS_E_DB);
	assert_string_equal(err.sqlstate, "57014");
	assert_true(db_sqlstate_transient("40001"));
	assert_true(db_sqlstate_transient("40P01"));
	assert_true(db_sqlstate_transient("08006"));
	assert_true(db_sqlstate_transient("55P03"));
	assert_false(db_sqlstate_transient("23505"));
	db_close(db);
}

static void
test_transactions(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = itest_connect(url);
	char *v = NULL;
	long long n = -1;

	(void)state;
	assert_int_equal(
		db_exec(db, "CREATE TABLE tx_t (v int)", 0, NULL, NULL, &err),
		0);
	assert_int_equal(db_begin(db, &err), 0);
	assert_true(db_in_tx(db));
	assert_int_equal(
		db_exec(db, "INSERT INTO tx_t SELECT generate_series(1, 5)", 0,
			NULL, &n, &err),
		0);
	assert_int_equal(n, 5);
	db_rollback(db);
	assert_false(db_in_tx(db));
	assert_int_equal(db_query_value(db, "SELECT count(*) FROM tx_t", 0,
					NULL, &v, &err),
			 0);
	assert_string_equal(v, "0");
	free(v);
	assert_int_equal(db_begin(db, &err), 0);
	assert_int_equal(
		db_exec(db, "INSERT INTO tx_t VALUES (1)", 0, NULL, NULL, &err),
		0);
	assert_int_equal(db_commit(db, &err), 0);
	assert_int_equal(db_query_value(db, "SELECT count(*) FROM tx_t", 0,
					NULL, &v, &err),
			 0);
	assert_string_equal(v, "1");
	free(v);
	db_close(db);
}

static void
test_relation_exists(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = itest_connect(url);
	bool have = false;

	(void)state;
	assert_int_equal(db_exec_script(db,
					"CREATE SCHEMA rel_s; CREATE TABLE "
					"rel_s.here (v int); CREATE VIEW "
					"rel_s.seen AS SELECT 1 AS v",
					&err),
			 0);
	assert_int_equal(db_relation_exists(db, "rel_s.here", &have, &err), 0);
	assert_true(have);
	assert_int_equal(db_relation_exists(db, "rel_s.seen", &have, &err), 0);
	assert_true(have);
	have = true;
	assert_int_equal(db_relation_exists(db, "rel_s.gone", &have, &err), 0);
	assert_false(have);
	have = true; /* a schema that is not there */
	assert_int_equal(db_relation_exists(db, "no_s.here", &have, &err), 0);
	assert_false(have);
	have = true; /* not on the search_path */
	assert_int_equal(db_relation_exists(db, "here", &have, &err), 0);
	assert_false(have);
	have = true; /* a name that does not parse is an error */
	assert_int_equal(db_relation_exists(db, "rel_s.here x(", &have, &err),
			 OPS_E_DB);
	assert_false(have);
	ops_err_clear(&err);
	db_close(db);
}

static void
test_advisory_locks(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	struct db *a = itest_connect(url), *b = itest_connect(url);
	int64_t key = db_lock_key("apexops.test");
	bool got = false;

	(void)state;
	assert_int_not_equal(db_lock_key("a"), db_lock_key("b"));
	assert_int_equal(db_try_advisory_lock(a, key, &got, &err), 0);
	assert_true(got);
	assert_int_equal(db_try_advisory_lock(b, key, &got, &err), 0);
	assert_false(got); /* held by a */
	assert_int_equal(db_advisory_unlock(a, key, &err), 0);
	assert_int_equal(db_try_advisory_lock(b, key, &got, &err), 0);
	assert_true(got);
	/* db_close releases the session's locks before it returns, so the
	 * lock is free at once, not when the backend sees the disconnect */
	db_close(b);
	got = false;
	assert_int_equal(db_try_advisory_lock(a, key, &got, &err), 0);
	assert_true(got);
	assert_int_equal(db_advisory_unlock(a, key, &err), 0);
	/* the race a fixed pause would hide shows up over many rounds */
	for (int i = 0; i < 200; i++) {
		struct db *c = itest_connect(url);

		assert_int_equal(db_try_advisory_lock(c, key, &got, &err), 0);
		assert_true(got);
		db_close(c);
		assert_int_equal(db_try_advisory_lock(a, key, &got, &err), 0);
		if (!got)
			fail_msg("round %d: the lock outlived db_close", i);
		assert_int_equal(db_advisory_unlock(a, key, &err), 0);
	}
	assert_int_equal(db_try_advisory_lock(a, key, &got, &err), 0);
	assert_true(got);
	/* also from inside a failed transaction */
	assert_int_equal(db_begin(a, &err), 0);
	assert_int_equal(db_exec(a, "SELECT 1/0", 0, NULL, NULL, &err),
			 OPS_E_DB);
	db_close(a);
	b = itest_connect(url);
	assert_int_equal(db_try_advisory_lock(b, key, &got, &err), 0);
	assert_true(got);
	db_close(b);
}

static int
collect(void *arg, const char *row, size_t len)
{
	struct buf *b = arg;

	buf_addn(b, row, len);
	return 0;
}

static void
test_copy_in_and_out(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = itest_connect(url);
	struct buf out = BUF_INIT;
	long long rows = 0;
	const char data[] = "1\tone\n2\ttwo\n3\t\\N\n";

	(void)state;
	assert_int_equal(db_exec(db, "CREATE TABLE copy_t (id int, s text)", 0,
				 NULL, NULL, &err),
			 0);
	assert_int_equal(db_copy_begin(db, "COPY copy_t FROM STDIN", &err), 0);
	assert_int_equal(db_copy_put(db, data, strlen(data), &err), 0);
	assert_int_equal(db_copy_end(db, NULL, &rows, &err), 0);
	assert_int_equal(rows, 3);
	assert_int_equal(db_copy_out(db,
				     "COPY (SELECT * FROM copy_t ORDER BY id) "
				     "TO STDOUT",
				     collect, &out, &err),
			 0);
	assert_string_equal(buf_str(&out), data);
	buf_release(&out);
	/* a bad row fails the whole COPY with the server's SQLSTATE */
	assert_int_equal(db_copy_begin(db, "COPY copy_t FROM STDIN", &err), 0);
	assert_int_equal(db_copy_put(db, "x\ty\n", 4, &err), 0);
	assert_int_equal(db_copy_end(db, NULL, &rows, &err), OPS_E_DB);
	assert_string_equal(err.sqlstate, "22P02");
	db_close(db);
}

static void
test_connect_failure_is_bounded_and_secret_free(void **state)
{
	struct db_opts o = { 0 };
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = NULL;

	(void)state;
	o.url = "postgresql://u:topsecretpw@127.0.0.1:1/x";
	o.connect_timeout_s = 2;
	o.retries = 1;
	assert_int_equal(db_connect(&o, &db, &err), OPS_E_CONNECT);
	assert_null(db);
	assert_int_equal(ops_err_exit_code(&err), 69);
	assert_null(strstr(err.msg, "topsecretpw"));
	o.url = "host=127.0.0.1 bogus_option=1";
	assert_int_equal(db_connect(&o, &db, &err), OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "bogus_option"));
}

/* A login role whose own defaults read values differently: DMY dates,
 * Indian time. Returns the role's URL (caller frees). */
static char *
odd_role_url(const char *role)
{
	struct db *admin = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	char sql[512], *u, *at;

	/* test-only DDL: the names are ours, not data */
	snprintf(sql, sizeof(sql), "DROP ROLE IF EXISTS %s", role);
	itest_exec(admin, sql);
	snprintf(sql, sizeof(sql),
		 "CREATE ROLE %s LOGIN SUPERUSER; ALTER ROLE %s SET DateStyle "
		 "= 'SQL, DMY'; ALTER ROLE %s SET TimeZone = 'Asia/Kolkata';"
		 " ALTER ROLE %s SET IntervalStyle = 'sql_standard';"
		 " ALTER ROLE %s SET extra_float_digits = -3",
		 role, role, role, role, role);
	if (db_exec_script(admin, sql, &err) != 0)
		fail_msg("%s: %s", sql, err.msg);
	db_close(admin);
	/* postgresql://postgres@host:port/db -> postgresql://ROLE@host... */
	at = strchr(url, '@');
	assert_non_null(at);
	u = xasprintf("postgresql://%s%s", role, at);
	return u;
}

static void
assert_pinned(struct db *db)
{
	char *v;

	v = itest_value(db, "SHOW DateStyle");
	assert_string_equal(v, "ISO, MDY");
	free(v);
	v = itest_value(db, "SHOW TimeZone");
	assert_string_equal(v, "UTC");
	free(v);
	v = itest_value(db, "SHOW IntervalStyle");
	assert_string_equal(v, "postgres");
	free(v);
	v = itest_value(db, "SHOW extra_float_digits");
	assert_string_equal(v, "3");
	free(v);
	/* a timestamptz written and read back the same way */
	v = itest_value(db, "SELECT '2026-03-04 05:06:07Z'::timestamptz");
	assert_string_equal(v, "2026-03-04 05:06:07+00");
	free(v);
	v = itest_value(db, "SELECT '2026-03-04'::date");
	assert_string_equal(v, "2026-03-04");
	free(v);
	v = itest_value(db, "SELECT interval '1 day 02:03:04'");
	assert_string_equal(v, "1 day 02:03:04");
	free(v);
	v = itest_value(db, "SELECT 0.1::float8");
	assert_string_equal(v, "0.1");
	free(v);
}

static void
test_session_is_pinned(void **state)
{
	char *role_url = odd_role_url("it_odd_session");
	struct db *db;
	char *v;

	(void)state;
	db = itest_connect(role_url);
	/* the role's own defaults are in place, and do not apply */
	v = itest_value(db, "SELECT array_to_string(s.setconfig, ';') FROM "
			    "pg_db_role_setting s JOIN pg_roles r ON r.oid = "
			    "s.setrole WHERE r.rolname = current_user");
	assert_non_null(strstr(v, "DateStyle=SQL, DMY"));
	assert_non_null(strstr(v, "TimeZone=Asia/Kolkata"));
	free(v);
	assert_pinned(db);
	db_close(db);
	free(role_url);
}

/* Terminate the backend of db from admin and wait until it is gone (a
 * condition, not a time). */
static void
terminate_and_wait(struct db *admin, struct db *db)
{
	struct ops_err err = OPS_ERR_INIT;
	char pid_s[24], *v = NULL;
	const char *params[1] = { pid_s };

	snprintf(pid_s, sizeof(pid_s), "%d", db_backend_pid(db));
	assert_int_equal(db_query_value(admin,
					"SELECT pg_terminate_backend($1::int)",
					1, params, &v, &err),
			 0);
	assert_string_equal(v, "t");
	free(v);
	for (;;) {
		assert_int_equal(db_query_value(admin,
						"SELECT count(*) FROM "
						"pg_stat_activity WHERE pid = "
						"$1::int",
						1, params, &v, &err),
				 0);
		if (strcmp(v, "0") == 0)
			break;
		free(v);
		usleep(10 * 1000);
	}
	free(v);
}

static void
test_reconnect_after_terminate(void **state)
{
	char *role_url = odd_role_url("it_odd_reconnect");
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = itest_connect(role_url), *admin = itest_connect(url);
	int pid;

	(void)state;
	pid = db_backend_pid(db);
	assert_int_equal(db_reconnect(db, &err), 0); /* good: left alone */
	assert_int_equal(db_backend_pid(db), pid);
	terminate_and_wait(admin, db);
	assert_int_equal(db_exec(db, "SELECT 1", 0, NULL, NULL, &err),
			 OPS_E_CONNECT);
	assert_true(err.transient);
	assert_int_equal(db_reconnect(db, &err), 0);
	assert_int_not_equal(db_backend_pid(db), pid);
	/* the session settings came back with the new connection */
	assert_pinned(db);
	db_close(db);
	db_close(admin);
	free(role_url);
}

/* the same statement prepared once per connection, prepared again after a
 * DISCARD ALL and after a reconnect; a failure is an ordinary error */
static void
test_prepared_statements(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = itest_connect(url), *admin = itest_connect(url);
	struct db_res *res = NULL;
	const char *params[1] = { "41" };
	char *v = NULL;

	(void)state;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(db_query_prepared(db, "it_prep",
						   "SELECT $1::int + 1", 1,
						   params, &res, &err),
				 0);
		assert_int_equal(db_res_ll(res, 0, 0), 42);
		db_res_free(res);
	}
	/* prepared once: the server holds one statement of that name */
	assert_int_equal(db_query_value(db,
					"SELECT count(*) FROM "
					"pg_prepared_statements WHERE name = "
					"'it_prep'",
					0, NULL, &v, &err),
			 0);
	assert_string_equal(v, "1");
	free(v);
	assert_int_equal(db_exec(db, "DISCARD ALL", 0, NULL, NULL, &err), 0);
	assert_int_equal(db_query_prepared(db, "it_prep", "SELECT $1::int + 1",
					   1, params, &res, &err),
			 0);
	assert_int_equal(db_res_ll(res, 0, 0), 42);
	db_res_free(res);
	/* a new backend: prepared there afresh */
	terminate_and_wait(admin, db);
	assert_int_not_equal(db_query_prepared(db, "it_prep",
					       "SELECT $1::int + 1", 1, params,
					       &res, &err),
			     0);
	assert_int_equal(err.code, OPS_E_CONNECT);
	ops_err_clear(&err);
	assert_int_equal(db_reconnect(db, &err), 0);
	assert_int_equal(db_query_prepared(db, "it_prep", "SELECT $1::int + 1",
					   1, params, &res, &err),
			 0);
	assert_int_equal(db_res_ll(res, 0, 0), 42);
	db_res_free(res);
	/* a bad statement is an error with its SQLSTATE, and nothing kept */
	assert_int_equal(db_query_prepared(db, "it_bad", "SELECT nosuchcol", 0,
					   NULL, &res, &err),
			 OPS_E_DB);
	assert_string_equal(err.sqlstate, "42703");
	assert_null(res);
	ops_err_clear(&err);
	db_close(db);
	db_close(admin);
}

/* a notification that comes in with a query's reply is taken in by libpq
 * then: poll() no longer sees it on the socket, and db_notifies() still
 * reports it (the worker relies on this before it sleeps) */
static void
test_notifies_taken_in_during_a_query(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = itest_connect(url);
	struct pollfd pfd;
	char *v = NULL;
	int n = -1;

	(void)state;
	assert_int_equal(db_listen(db, "it_chan", &err), 0);
	assert_int_equal(db_notifies(db, &n, &err), 0);
	assert_int_equal(n, 0);
	/* its own notification arrives before the reply's end */
	assert_int_equal(db_query_value(db, "SELECT pg_notify('it_chan', 'x')",
					0, NULL, &v, &err),
			 0);
	free(v);
	pfd.fd = db_socket(db);
	pfd.events = POLLIN;
	pfd.revents = 0;
	assert_int_equal(poll(&pfd, 1, 50), 0);
	assert_int_equal(db_notifies(db, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(db_notifies(db, &n, &err), 0);
	assert_int_equal(n, 0);
	db_close(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_params_and_results),
		cmocka_unit_test(test_errors_carry_sqlstate),
		cmocka_unit_test(test_transactions),
		cmocka_unit_test(test_relation_exists),
		cmocka_unit_test(test_advisory_locks),
		cmocka_unit_test(test_copy_in_and_out),
		cmocka_unit_test(
			test_connect_failure_is_bounded_and_secret_free),
		cmocka_unit_test(test_session_is_pinned),
		cmocka_unit_test(test_reconnect_after_terminate),
		cmocka_unit_test(test_prepared_statements),
		cmocka_unit_test(test_notifies_taken_in_during_a_query),
	};
	return cmocka_run_group_tests(tests, itest_setup, itest_teardown);
}
