/* Integration tests of the purge engine as the scheduler calls it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include "core/buf.h"
#include "itest.h"
#include "jobs/purge.h"

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
	o->trigger = "scheduled";
	o->os_user = "cron";
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
	assert_int_equal(purge_run(db, &o, &res, &err), OPS_E_STOPPED);
	assert_true(err.transient);
	assert_true(res.stopped);
	assert_int_equal(res.planned_total, 300);
	assert_int_equal(res.deleted_total, 0);
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM usage_events"), 401);
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM apexops.purge_runs"
				   " WHERE status = 'stopped'"
				   " AND trigger = 'scheduled'"
				   " AND os_user = 'cron'"),
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
	assert_int_equal(purge_run(db, &o, &res, &err), 0);
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_months_out_of_range),
		cmocka_unit_test(test_cutoff_clamps_at_month_end),
		cmocka_unit_test(test_stop_flag_stops_before_deleting),
		cmocka_unit_test(test_scheduled_run_and_status),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
