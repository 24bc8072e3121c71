/*
 * Integration tests of dunning's pieces that the end-to-end test does not
 * reach one by one: the schedule parser, the schema's guarantees (one case
 * per invoice, an intent is a key and an attempt together), the status
 * section, list and show, and a run refused without a key.
 */
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
#include "core/config.h"
#include "db/db.h"
#define ITEST_DB "dunning"
#include "itest.h"
#include "jobs/job.h"
#include "jobs/ledger.h"
#include "stripe/dunning.h"

static void
test_parse_days(void **state)
{
	static const struct {
		const char *in;
		int n, last;
	} good[] = {
		{ "3,5,7", 3, 7 },
		{ "1", 1, 1 },
		{ "1,2,3,4,5,6,7,8,9,10", 10, 10 },
		{ "30,365", 2, 365 },
	};
	static const char *const bad[] = {
		"",	"0",	"3,3",	"7,5",
		"3,,5", "3,5,", ",3",	"3 5",
		"3;5",	"366",	"-1",	"+3",
		"x",	"3,5x", "3, 5", "1,2,3,4,5,6,7,8,9,10,11",
	};
	int days[DUNNING_MAX_DAYS], n;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(dunning_parse_days(good[i].in, days, &n, &err),
				 0);
		assert_int_equal(n, good[i].n);
		assert_int_equal(days[n - 1], good[i].last);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (dunning_parse_days(bad[i], days, &n, &err) != OPS_E_CONFIG)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(strstr(err.msg, "DUNNING_RETRY_DAYS"));
	}
}

static void
seed_case(struct db *db, const char *invoice, const char *status,
	  const char *next)
{
	char sql[1024];

	snprintf(sql, sizeof(sql),
		 "INSERT INTO apexops.dunning_cases (invoice_id, status,"
		 " opened_by, first_failed_at, next_attempt_at, amount_due,"
		 " currency) VALUES ('%s', '%s', 'webhook', now() - interval"
		 " '2 days', %s, 4900, 'usd')",
		 invoice, status, next);
	itest_exec(db, sql);
}

static void
test_schema_guarantees(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	seed_case(db, "in_g1", "open", "now()");
	/* one case per invoice */
	assert_int_equal(
		db_exec(db,
			"INSERT INTO apexops.dunning_cases (invoice_id,"
			" opened_by, first_failed_at) VALUES ('in_g1',"
			" 'reconciliation', now())",
			0, NULL, NULL, &err),
		OPS_E_DB);
	assert_string_equal(err.sqlstate, "23505");
	/* an intent is an attempt and its key, never one alone */
	assert_int_equal(db_exec(db,
				 "UPDATE apexops.dunning_cases SET"
				 " pending_attempt = 1 WHERE invoice_id ="
				 " 'in_g1'",
				 0, NULL, NULL, &err),
			 OPS_E_DB);
	assert_string_equal(err.sqlstate, "23514");
	/* statuses are the four of the issue */
	assert_int_equal(db_exec(db,
				 "UPDATE apexops.dunning_cases SET status ="
				 " 'pending' WHERE invoice_id = 'in_g1'",
				 0, NULL, NULL, &err),
			 OPS_E_DB);
	assert_string_equal(err.sqlstate, "23514");
	/* an id that could not go into a Stripe path is refused */
	assert_int_equal(
		db_exec(db,
			"INSERT INTO apexops.dunning_cases (invoice_id,"
			" opened_by, first_failed_at) VALUES"
			" ('in_1/../x', 'webhook', now())",
			0, NULL, NULL, &err),
		OPS_E_DB);
	itest_exec(db, "DELETE FROM apexops.dunning_cases");
	db_close(db);
}

static void
test_status_list_show(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct buf out = BUF_INIT;
	json_t *arr = NULL, *doc = NULL, *t;
	const char *s;

	(void)state;
	seed_case(db, "in_s1", "open", "now() + interval '2 hours'");
	seed_case(db, "in_s2", "open", "now() + interval '3 days'");
	seed_case(db, "in_s3", "suspended", "NULL");
	seed_case(db, "in_s4", "recovered", "NULL");
	itest_exec(db, "UPDATE apexops.dunning_cases SET stripe_action ="
		       " 'pause' WHERE invoice_id = 'in_s3'");
	itest_exec(db, "INSERT INTO apexops.dunning_transitions (case_id, at,"
		       " kind, from_status, to_status, attempt) SELECT id,"
		       " now() - interval '1 day', 'suspended', 'open',"
		       " 'suspended', 3 FROM apexops.dunning_cases WHERE"
		       " invoice_id = 'in_s3'");
	itest_exec(db, "INSERT INTO apexops.dunning_transitions (case_id, at,"
		       " kind, to_status) SELECT id, now() - interval '5"
		       " days', 'opened', 'open' FROM apexops.dunning_cases"
		       " WHERE invoice_id = 'in_s3'");
	assert_int_equal(dunning_status_report(db, &out, &err), 0);
	s = buf_str(&out);
	assert_non_null(strstr(s, "open cases   2 (1 due within a day"));
	assert_non_null(strstr(s, "suspended    1 now, 1 in the last 7 days"));
	assert_non_null(strstr(s, "1 pause/resume still to send"));
	assert_non_null(strstr(s, "in_s1"));
	buf_release(&out);

	assert_int_equal(dunning_list(db, "open", 100, &arr, &err), 0);
	assert_int_equal(json_array_size(arr), 2);
	json_decref(arr);
	assert_int_equal(dunning_list(db, NULL, 100, &arr, &err), 0);
	assert_int_equal(json_array_size(arr), 4);
	/* newest first */
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(arr, 0), "invoice")),
			    "in_s4");
	json_decref(arr);

	assert_int_equal(dunning_show(db, "in_s3", &doc, &err), 0);
	assert_string_equal(json_string_value(json_object_get(doc, "status")),
			    "suspended");
	/* transitions in the order they were written */
	t = json_object_get(doc, "transitions");
	assert_int_equal(json_array_size(t), 2);
	assert_string_equal(json_string_value(json_object_get(
				    json_array_get(t, 0), "kind")),
			    "suspended");
	json_decref(doc);
	assert_int_equal(dunning_show(db, "in_none", &doc, &err),
			 OPS_E_NOTFOUND);
	assert_null(doc);
	assert_non_null(strstr(err.msg, "in_none"));
	itest_exec(db, "DELETE FROM apexops.dunning_cases");
	db_close(db);
}

/* no key: refused naming it, recorded failed, nothing opened */
static void
test_run_without_key(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct ops_config cfg;
	struct job_ctx ctx;

	(void)state;
	unsetenv("STRIPE_SECRET_KEY_FILE");
	memset(&cfg, 0, sizeof(cfg));
	cfg.cron_tz = "UTC";
	cfg.dunning_retry_days = "3,5,7";
	cfg.stripe_api_base = "http://127.0.0.1:9";
	cfg.stripe_api_version = "2023-10-16";
	cfg.stripe_concurrency = 2;
	memset(&ctx, 0, sizeof(ctx));
	ctx.db = db;
	ctx.cfg = &cfg;
	ctx.trigger = LEDGER_MANUAL;
	itest_exec(db,
		   "INSERT INTO public.billing_audit (event_type, data)"
		   " VALUES ('payment_failed', '{\"invoice\": \"in_k1\"}')");
	assert_int_equal(job_run(job_find(DUNNING_JOB_NAME), &ctx, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "STRIPE_SECRET_KEY is not set"));
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM"
					    " apexops.job_runs WHERE job ="
					    " 'dunning-retries' AND status ="
					    " 'failed'"),
			 1);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM"
					    " apexops.dunning_cases"),
			 0);
	job_ctx_release(&ctx);
	itest_exec(db, "DELETE FROM apexops.job_runs");
	itest_exec(db, "DELETE FROM public.billing_audit");
	db_close(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_days),
		cmocka_unit_test(test_schema_guarantees),
		cmocka_unit_test(test_status_list_show),
		cmocka_unit_test(test_run_without_key),
	};

	return cmocka_run_group_tests(tests, itest_setup, itest_teardown);
}
