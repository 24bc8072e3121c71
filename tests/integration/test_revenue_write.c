/*
 * Integration tests of the revenue writer's reference checks: the bulk
 * path (references locked and counted once, row triggers off) must refuse
 * exactly what the foreign-key triggers refuse, write nothing then, and
 * leave session_replication_role as it found it.
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

#include "itest.h"
#include "jobs/job.h"
#include "jobs/revenue.h"
#include "jobs/revenue_job.h"
#include "jobs/sandbox.h"

#define P1   "11111111-1111-4111-8111-111111111111"
#define P2   "22222222-2222-4222-8222-222222222222"
#define GONE "33333333-3333-4333-8333-333333333333"

static char *url;

static long long
count_rows(struct db *db)
{
	return itest_value_ll(db, "SELECT count(*) FROM revenue_events");
}

static int
setup(void **state)
{
	struct db *db;

	(void)state;
	url = itest_new_db("revenue_write", 1);
	db = itest_connect(url);
	itest_exec(db, "INSERT INTO publishers (id, company_name) VALUES"
		       " ('" SANDBOX_PUBLISHER_ID "', 'Apex Sandbox "
		       "Studio')");
	itest_exec(db, "INSERT INTO adapters (id, name) VALUES"
		       " ('a7f66258-6c5c-462f-9ff4-126886c1d7d3', "
		       "'FakeNetworkA'),"
		       " ('ca13eef0-bdbd-4475-823f-93c5b2932d6d', "
		       "'FakeNetworkB'),"
		       " ('dc801f21-749c-46ae-ad33-ded15da2f5f0', "
		       "'FakeNetworkC')");
	itest_exec(db, "INSERT INTO apps (id, publisher_id, name, bundle_id,"
		       " platform) VALUES ('7bcfc807-1834-4d69-a1ca-"
		       "27e258f4ce75', '" SANDBOX_PUBLISHER_ID "',"
		       " 'Apex Sandbox Android', 'com.apex.sandbox.android',"
		       " 'android')");
	itest_exec(db, "INSERT INTO placements (id, app_id, name, type) VALUES"
		       " ('" P1 "', '7bcfc807-1834-4d69-a1ca-27e258f4ce75',"
		       " 'Android Interstitial 01', 'interstitial'),"
		       " ('" P2 "', '7bcfc807-1834-4d69-a1ca-27e258f4ce75',"
		       " 'Android Banner 01', 'banner')");
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

/* A plan over pl (n placements), 3 days from 2025-01-01. */
static void
plan_for(const struct revenue_placement *pl, size_t n,
	 struct revenue_plan *plan)
{
	struct ops_err err = OPS_ERR_INIT;
	struct revenue_date start = { 2025, 1, 1 };

	if (revenue_generate(REVENUE_STARTER, &start, 3, pl, n, plan, &err) !=
	    0)
		fail_msg("revenue_generate: %s", err.msg);
}

static void
test_bulk_path_writes_and_resets_the_setting(void **state)
{
	static const struct revenue_placement pl[] = {
		{ P1, "Android Interstitial 01", "interstitial" },
		{ P2, "Android Banner 01", "banner" },
	};
	struct revenue_write_opts o = { 0 };
	struct revenue_write_stats st;
	struct revenue_plan plan;
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = itest_connect(url);
	char *v;

	(void)state;
	plan_for(pl, 2, &plan);
	assert_int_equal(revenue_write(db, &plan, pl, &o, NULL, &st, &err), 0);
	assert_true(st.bulk_checked); /* the harness connects as superuser */
	assert_null(st.why_per_row);
	assert_int_equal(st.inserted, (long long)plan.nrows);
	assert_int_equal(count_rows(db), (long long)plan.nrows);
	v = itest_value(db, "SHOW session_replication_role");
	assert_string_equal(v, "origin"); /* SET LOCAL ended with the tx */
	free(v);
	revenue_plan_release(&plan);
	db_close(db);
}

/* a placement that does not exist: both paths refuse, nothing is written */
static void
test_missing_reference_is_refused_by_both_paths(void **state)
{
	static const struct revenue_placement pl[] = {
		{ P1, "Android Interstitial 01", "interstitial" },
		{ GONE, "Deleted Placement", "banner" },
	};
	struct revenue_write_opts o = { 0 };
	struct revenue_write_stats st;
	struct revenue_plan plan;
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = itest_connect(url);
	long long before = count_rows(db);
	char *v;

	(void)state;
	plan_for(pl, 2, &plan);
	/* bulk: counted before the COPY, named in the error */
	assert_int_equal(revenue_write(db, &plan, pl, &o, NULL, &st, &err),
			 OPS_E_NOTFOUND);
	assert_non_null(strstr(err.msg, "1 of the 2 sandbox placements"));
	assert_int_equal(count_rows(db), before);
	v = itest_value(db, "SHOW session_replication_role");
	assert_string_equal(v, "origin");
	free(v);
	/* per row: the trigger refuses it with 23503 */
	o.row_checks = true;
	ops_err_clear(&err);
	assert_int_equal(revenue_write(db, &plan, pl, &o, NULL, &st, &err),
			 OPS_E_DB);
	assert_string_equal(err.sqlstate, "23503");
	assert_false(st.bulk_checked);
	assert_int_equal(count_rows(db), before);
	revenue_plan_release(&plan);
	db_close(db);
}

/*
 * The fixture constants agree between what bootstrap writes and what
 * revenue reads back: the placements revenue loads are the fixture's (ids,
 * names, types), the adapters it checks exist, and the eCPMs stored in
 * the configs are the ones it computes impressions with.
 */
static void
test_bootstrap_writes_what_revenue_reads(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	struct revenue_placements pl = { NULL, 0 };
	struct sandbox_db_opts o = { "pw", false, false };
	struct sandbox_report rep;
	char *burl = itest_new_db("revenue_fixture", 1);
	struct db *db = itest_connect(burl);
	bool seen[SANDBOX_NALL_PLACEMENTS] = { false };

	(void)state;
	if (sandbox_bootstrap_db(db, &o, &rep, &err) != 0)
		fail_msg("sandbox_bootstrap_db: %s", err.msg);
	sandbox_report_release(&rep);
	assert_int_equal(revenue_check_prereqs(db, &err), 0);
	assert_int_equal(revenue_load_placements(db, &pl, &err), 0);
	assert_int_equal(pl.n, SANDBOX_NALL_PLACEMENTS);
	for (size_t i = 0; i < pl.n; i++) {
		int k = sandbox_placement_index(pl.v[i].id);
		char name[96];

		assert_true(k >= 0);
		assert_false(seen[k]);
		seen[k] = true;
		sandbox_placement_name(&sandbox_apps[k / SANDBOX_NPLACEMENTS],
				       k % SANDBOX_NPLACEMENTS, name,
				       sizeof(name));
		assert_string_equal(pl.v[i].name, name);
		assert_string_equal(
			pl.v[i].type,
			sandbox_placement_types[k % SANDBOX_NPLACEMENTS]);
	}
	for (int i = 0; i < SANDBOX_NADAPTERS; i++) {
		const char *p[1] = { sandbox_adapters[i].config_id };
		char *v = NULL;

		assert_int_equal(
			db_query_value(
				db,
				"SELECT c.publisher_id || ' ' || a.id"
				" || ' ' || a.name || ' '"
				" || (c.config->>'targetEcpm')"
				" FROM adapter_configs c JOIN adapters a"
				" ON a.id = c.adapter_id WHERE c.id = $1",
				1, p, &v, &err),
			0);
		assert_non_null(v);
		{
			char pub[40], id[40], name[40];
			double ecpm = 0;

			assert_int_equal(sscanf(v, "%39s %39s %39s %lf", pub,
						id, name, &ecpm),
					 4);
			assert_string_equal(pub, SANDBOX_PUBLISHER_ID);
			assert_string_equal(id, sandbox_adapters[i].id);
			assert_string_equal(name, sandbox_adapters[i].name);
			assert_true(ecpm == sandbox_adapters[i].ecpm);
		}
		free(v);
	}
	revenue_placements_release(&pl);
	db_close(db);
	free(burl);
}

/* revenue_run(): the command as a library call, lock included. */
static void
test_revenue_run(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	struct sandbox_db_opts so = { "pw", false, false };
	struct sandbox_report rep;
	struct revenue_opts o;
	struct revenue_result res;
	char *rurl = itest_new_db("revenue_run", 1);
	struct db *db = itest_connect(rurl), *other = itest_connect(rurl);
	int64_t key = db_lock_key(SANDBOX_REVENUE_LOCK);
	bool got = false;

	(void)state;
	if (sandbox_bootstrap_db(db, &so, &rep, &err) != 0)
		fail_msg("sandbox_bootstrap_db: %s", err.msg);
	sandbox_report_release(&rep);
	memset(&o, 0, sizeof(o));
	o.tiers[REVENUE_GROWTH] = true;
	o.days = 30;
	o.have_start = true;
	o.start = (struct revenue_date){ 2026, 10, 1 };
	o.dry_run = true;
	assert_int_equal(revenue_run(db, &o, &res, &err), 0);
	assert_true(res.tier[REVENUE_GROWTH].ran);
	assert_false(res.tier[REVENUE_STARTER].ran);
	assert_int_equal(res.placements, SANDBOX_NALL_PLACEMENTS);
	assert_int_equal(res.tier[REVENUE_GROWTH].plan.nrows, 750);
	assert_int_equal(res.tier[REVENUE_GROWTH].plan.total_cents, 5050041);
	assert_false(res.written);
	assert_int_equal(count_rows(db), 0);
	revenue_result_release(&res);

	o.dry_run = false;
	assert_int_equal(revenue_run(db, &o, &res, &err), 0);
	assert_true(res.written);
	assert_int_equal(res.tier[REVENUE_GROWTH].write.inserted, 750);
	assert_int_equal(count_rows(db), 750);
	revenue_result_release(&res);

	/* another session holds the lock: refused at once, holder named */
	assert_int_equal(db_try_advisory_lock(other, key, &got, &err), 0);
	assert_true(got);
	ops_err_clear(&err);
	assert_int_equal(revenue_run(db, &o, &res, &err), OPS_E_CONFLICT);
	assert_int_equal(ops_err_exit_code(&err), OPS_EXIT_TEMPFAIL);
	assert_non_null(strstr(err.msg,
			       "is running: lock 'apexops/sandbox-revenue' "
			       "is held by backend pid "));
	assert_false(res.tier[REVENUE_GROWTH].ran);
	revenue_result_release(&res);
	/* a dry run takes no lock */
	o.dry_run = true;
	assert_int_equal(revenue_run(db, &o, &res, &err), 0);
	revenue_result_release(&res);
	assert_int_equal(db_advisory_unlock(other, key, &err), 0);

	/* several tiers write the same window: only as a dry run */
	o.dry_run = false;
	o.tiers[REVENUE_SCALE] = true;
	assert_int_equal(revenue_run(db, &o, &res, &err), OPS_E_INVALID);
	revenue_result_release(&res);
	assert_int_equal(count_rows(db), 750);
	db_close(other);
	db_close(db);
	free(rurl);
}

/* The run function of the job "sandbox-revenue", called as job_run()
 * calls it: options in through args, the ledger's fields out. */
static void
test_revenue_job_run(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	struct sandbox_db_opts so = { "pw", false, false };
	struct sandbox_report rep;
	struct ops_config cfg;
	struct revenue_opts o;
	struct revenue_result res;
	struct job_ctx ctx;
	char *jurl = itest_new_db("revenue_job", 1);
	struct db *db = itest_connect(jurl);

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	if (sandbox_bootstrap_db(db, &so, &rep, &err) != 0)
		fail_msg("sandbox_bootstrap_db: %s", err.msg);
	sandbox_report_release(&rep);
	memset(&o, 0, sizeof(o));
	o.tiers[REVENUE_GROWTH] = true;
	o.days = 30;
	o.have_start = true;
	o.start = (struct revenue_date){ 2026, 10, 1 };

	/* no options, as a scheduler would call it: refused */
	memset(&ctx, 0, sizeof(ctx));
	ctx.db = db;
	ctx.cfg = &cfg;
	assert_int_equal(revenue_job_run(&ctx, &err), OPS_E_INVALID);
	free(ctx.params);
	free(ctx.counts);

	/* a real run: execute, recorded, counts and params as JSON */
	memset(&ctx, 0, sizeof(ctx));
	memset(&res, 0, sizeof(res));
	ctx.db = db;
	ctx.cfg = &cfg;
	ctx.args = &o;
	ctx.out = &res;
	assert_int_equal(revenue_job_run(&ctx, &err), 0);
	assert_string_equal(ctx.mode, "execute");
	assert_false(ctx.no_record);
	assert_string_equal(ctx.params,
			    "{\"tiers\":[\"growth\"],\"days\":30,\"start\":"
			    "\"2026-10-01\",\"keep_history\":false,"
			    "\"row_checks\":false,\"plot\":null,"
			    "\"force\":false}");
	assert_non_null(strstr(ctx.counts, "\"growth\":{\"rows\":750,"
					   "\"total_cents\":5050041,"));
	assert_non_null(strstr(ctx.counts, "\"inserted\":750"));
	assert_int_equal(res.tier[REVENUE_GROWTH].plan.nrows, 750);
	assert_int_equal(count_rows(db), 750);
	revenue_result_release(&res);
	free(ctx.params);
	free(ctx.counts);

	/* a dry run: mode dry-run, not kept in the ledger */
	o.dry_run = true;
	memset(&ctx, 0, sizeof(ctx));
	ctx.db = db;
	ctx.cfg = &cfg;
	ctx.args = &o;
	assert_int_equal(revenue_job_run(&ctx, &err), 0);
	assert_string_equal(ctx.mode, "dry-run");
	assert_true(ctx.no_record);
	assert_null(strstr(ctx.counts, "inserted"));
	free(ctx.params);
	free(ctx.counts);

	/* production without force: refused, nothing written */
	o.dry_run = false;
	cfg.app_env = (char *)"production ";
	memset(&ctx, 0, sizeof(ctx));
	ctx.db = db;
	ctx.cfg = &cfg;
	ctx.args = &o;
	assert_int_equal(revenue_job_run(&ctx, &err), OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "APP_ENV is 'production '"));
	free(ctx.params);
	free(ctx.counts);
	assert_int_equal(count_rows(db), 750);
	db_close(db);
	free(jurl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bulk_path_writes_and_resets_the_setting),
		cmocka_unit_test(
			test_missing_reference_is_refused_by_both_paths),
		cmocka_unit_test(test_bootstrap_writes_what_revenue_reads),
		cmocka_unit_test(test_revenue_run),
		cmocka_unit_test(test_revenue_job_run),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
