/* Integration tests of the job table, job_run() and the run ledger. */
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
#include "core/clock.h"
#include "core/config.h"
#define ITEST_DB "jobs"
#include "itest.h"
#include "jobs/job.h"
#include "jobs/job_status.h"
#include "jobs/ledger.h"
#include "jobs/sched.h"

/* the schedules and names the issues and the original fix */
static void
test_job_table(void **state)
{
	static const struct {
		const char *name, *schedule;
	} want[] = {
		{ "stripe-usage-sync", "0 2 * * *" },
		{ "usage-purge", "30 2 * * *" },
		{ "dunning-retries", "0 3 * * *" },
		{ "privacy-expiry", "0 4 * * *" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct job_def *j = job_find(want[i].name);

		assert_non_null(j);
		assert_string_equal(j->schedule, want[i].schedule);
		assert_non_null(j->lock);
		assert_true(j->run != NULL || (j->flags & JOB_UNAVAILABLE));
	}
	for (int i = 0; i < job_count; i++)
		for (int k = i + 1; k < job_count; k++)
			assert_string_not_equal(job_table[i].name,
						job_table[k].name);
	assert_null(job_find("no-such-job"));
	assert_null(job_find(NULL));
}

static void
test_ledger_roundtrip(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct ledger_start ls = { 0 };
	long long id = 0;
	char *json = NULL, *v;

	(void)state;
	ls.job = "usage-purge";
	ls.trigger = LEDGER_SCHEDULED;
	ls.slot = "2026-12-01T02:30:00Z";
	ls.params = "{\"months\": 18}";
	ls.mode = "dry-run";
	assert_int_equal(ledger_start(db, &ls, &id, &err), 0);
	assert_true(id > 0);
	assert_int_equal(ledger_progress(db, id, "{\"rows\": 5}", &err), 0);
	v = itest_value(db, "SELECT counts->>'rows' || ' ' || status || ' ' ||"
			    " mode || ' ' || trigger FROM apexops.job_runs");
	assert_string_equal(v, "5 running dry-run scheduled");
	free(v);
	assert_int_equal(ledger_finish(db, id, LEDGER_SUCCEEDED,
				       "{\"rows\": 7}", NULL, &err),
			 0);
	/* fenced: a second settlement of the same run is refused */
	assert_int_equal(
		ledger_finish(db, id, LEDGER_FAILED, NULL, "late", &err),
		OPS_E_CONFLICT);
	v = itest_value(db,
			"SELECT status || ' ' || (counts->>'rows') || ' ' ||"
			" (error IS NULL) FROM apexops.job_runs");
	assert_string_equal(v, "succeeded 7 true");
	free(v);
	assert_int_equal(
		ledger_history_json(db, "usage-purge", false, 10, &json, &err),
		0);
	assert_non_null(strstr(json, "\"slot\":\"2026-12-01T02:30:00.000Z\""));
	assert_non_null(strstr(json, "\"trigger\":\"scheduled\""));
	assert_non_null(strstr(json, "\"status\":\"succeeded\""));
	free(json);
	assert_int_equal(
		ledger_history_json(db, "usage-purge", true, 10, &json, &err),
		0);
	assert_string_equal(json, "[]");
	free(json);
	itest_exec(db, "DELETE FROM apexops.job_runs");
	db_close(db);
}

/* a run whose backend is gone is abandoned by the next run of any job,
 * and the dead owner's late outcome cannot overwrite that record */
static void
test_ledger_stale_owner(void **state)
{
	struct db *a = itest_connect(url), *b = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct ledger_start ls = { 0 };
	long long id = 0;
	char pid[24], sql[256];
	int n = -1;

	(void)state;
	ls.job = "sandbox-revenue";
	ls.trigger = LEDGER_MANUAL;
	assert_int_equal(ledger_start(a, &ls, &id, &err), 0);
	/* the owner is alive: nothing is stale */
	assert_int_equal(ledger_abandon_stale(b, NULL, &n, &err), 0);
	assert_int_equal(n, 0);
	snprintf(pid, sizeof(pid), "%d", db_backend_pid(a));
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%s)", pid);
	itest_exec(b, sql);
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pid);
	for (int i = 0; i < 300 && itest_value_ll(b, sql) != 0; i++)
		usleep(100 * 1000);
	assert_int_equal(itest_value_ll(b, sql), 0);
	assert_int_equal(ledger_abandon_stale(b, "other-job", &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(ledger_abandon_stale(b, NULL, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(
		ledger_finish(b, id, LEDGER_SUCCEEDED, NULL, NULL, &err),
		OPS_E_CONFLICT);
	assert_int_equal(itest_value_ll(b,
					"SELECT count(*) FROM apexops.job_runs"
					" WHERE status = 'abandoned'"
					" AND finished_at IS NOT NULL"),
			 1);
	itest_exec(b, "DELETE FROM apexops.job_runs");
	db_close(a);
	db_close(b);
}

static void
test_job_unavailable(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct ops_config cfg;
	struct job_ctx ctx;
	/* every job of the table is built now: a capability that is not
	 * (the flag a new job starts with) */
	static const struct job_def unbuilt = {
		"test-unbuilt", "0 3 * * *",	   NULL, JOB_UNAVAILABLE,
		NULL,		"a job not built", NULL
	};
	const struct job_def *j = &unbuilt;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	memset(&ctx, 0, sizeof(ctx));
	ctx.db = db;
	ctx.cfg = &cfg;
	ctx.trigger = LEDGER_SCHEDULED;
	ctx.slot = "2026-12-01T03:00:00Z";
	assert_true(j->flags & JOB_UNAVAILABLE);
	assert_int_equal(job_run(j, &ctx, &err), OPS_E_REFUSED);
	assert_non_null(strstr(err.msg, "not available"));
	assert_int_equal(itest_value_ll(db,
					"SELECT count(*) FROM apexops.job_runs"
					" WHERE job = 'test-unbuilt' AND"
					" status = 'unavailable' AND slot ="
					" '2026-12-01 03:00:00+00'"),
			 1);
	job_ctx_release(&ctx);
	itest_exec(db, "DELETE FROM apexops.job_runs");
	db_close(db);
}

/* the job's lock held elsewhere: refused naming the holder, no row */
static void
test_job_lock_conflict(void **state)
{
	struct db *holder = itest_connect(url), *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct ops_config cfg;
	struct job_ctx ctx;
	const struct job_def *j = job_find("usage-purge");
	bool got = false;
	char pid[24];

	(void)state;
	assert_int_equal(
		db_try_advisory_lock(holder, db_lock_key(j->lock), &got, &err),
		0);
	assert_true(got);
	memset(&cfg, 0, sizeof(cfg));
	cfg.usage_retention_months = 18;
	memset(&ctx, 0, sizeof(ctx));
	ctx.db = db;
	ctx.cfg = &cfg;
	ctx.trigger = LEDGER_MANUAL;
	assert_int_equal(job_run(j, &ctx, &err), OPS_E_CONFLICT);
	snprintf(pid, sizeof(pid), "pid %d", db_backend_pid(holder));
	assert_non_null(strstr(err.msg, pid));
	assert_int_equal(
		itest_value_ll(db, "SELECT count(*) FROM apexops.job_runs"), 0);
	job_ctx_release(&ctx);
	db_close(holder);
	db_close(db);
}

/* args NULL: the scheduled purge takes its settings from configuration */
static void
test_job_scheduled_purge(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct ops_config cfg;
	struct job_ctx ctx;
	char *v;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.retention_months = 3; /* the manual command's: must not be used */
	cfg.usage_retention_months = 18;
	cfg.cron_tz = "UTC";
	itest_exec(db, "ALTER TABLE usage_events DROP CONSTRAINT IF EXISTS "
		       "usage_events_customer_id_fkey");
	itest_exec(db, "INSERT INTO usage_events (customer_id, event_name,"
		       " event_value, created_at) SELECT gen_random_uuid(),"
		       " 'api_calls', 1, now() - g * interval '1 month'"
		       " FROM generate_series(1, 30) g");
	memset(&ctx, 0, sizeof(ctx));
	ctx.db = db;
	ctx.cfg = &cfg;
	ctx.trigger = LEDGER_SCHEDULED;
	assert_int_equal(job_run(job_find("usage-purge"), &ctx, &err), 0);
	assert_string_equal(ctx.status, LEDGER_SUCCEEDED);
	v = itest_value(db, "SELECT job || ' ' || trigger || ' ' || mode ||"
			    " ' ' || status FROM apexops.job_runs");
	assert_string_equal(v, "usage-purge scheduled execute succeeded");
	free(v);
	/* 18 months kept: rows 1..17 months old (and the 18th, depending on
	 * the day of the month) remain, 19..30 are gone */
	assert_true(itest_value_ll(db, "SELECT count(*) FROM usage_events") >=
		    17);
	assert_true(itest_value_ll(db, "SELECT count(*) FROM usage_events") <=
		    18);
	job_ctx_release(&ctx);
	db_close(db);
}

/* status shows each job's last run, from the ledger */
static void
test_job_status(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct buf out = BUF_INIT;
	const char *s;

	(void)state;
	itest_exec(db, "DELETE FROM apexops.job_runs");
	itest_exec(db, "INSERT INTO apexops.job_runs (job, trigger, status,"
		       " started_at, finished_at, error) VALUES"
		       " ('usage-purge', 'scheduled', 'succeeded',"
		       "  '2026-11-30 02:30:00+00', '2026-11-30 02:30:02+00',"
		       "  NULL),"
		       " ('usage-purge', 'manual', 'failed',"
		       "  '2026-11-30 09:00:00+00', '2026-11-30 09:00:01+00',"
		       "  'disk full')");
	int overdue = -1;

	setenv("TZ", "UTC", 1);
	tzset();
	/* on the real clock; test_job_status_overdue sets the clock to check
	 * the OVERDUE mark itself */
	assert_int_equal(job_status_report(db, NULL, &out, &overdue, &err), 0);
	assert_true(overdue == 0 || overdue == 1);
	s = buf_str(&out);
	assert_non_null(strstr(s, "usage-purge        30 2 * * *\n"));
	assert_non_null(strstr(s, "    last run   failed (manual) at "
				  "2026-11-30 09:00:00Z, 1.0 s\n"
				  "    last ok    2026-11-30 02:30:02Z\n"
				  "    error      disk full\n"));
	assert_non_null(strstr(s, "privacy-expiry     0 4 * * *\n"));
	assert_null(strstr(s, "not available"));
	assert_non_null(strstr(s, "  schedulers   none seen"));
	buf_release(&out);
	itest_exec(db, "DELETE FROM apexops.job_runs");
	db_close(db);
}

/* status's OVERDUE mark, on a clock set to known instants: a slot that
 * passed over an hour ago with no success since is owed; the search finds
 * the latest slot of an every-minute, a daily and a yearly schedule */
static void
overdue_at(struct db *db, const char *now, const char *sched, int want,
	   const char *line)
{
	struct ops_config cfg;
	struct ops_err err = OPS_ERR_INIT;
	struct buf out = BUF_INIT;
	int overdue = -1;

	memset(&cfg, 0, sizeof(cfg));
	cfg.schedule_usage_purge = (char *)sched;
	assert_int_equal(ops_clock_setup(now, NULL, NULL, &err), 0);
	assert_int_equal(job_status_report(db, &cfg, &out, &overdue, &err), 0);
	ops_clock_reset();
	if (overdue != want || (line != NULL && !strstr(buf_str(&out), line)))
		fail_msg("at %s with '%s': overdue %d (want %d), report:\n%s",
			 now, sched, overdue, want, buf_str(&out));
	if (line == NULL && strstr(buf_str(&out), "OVERDUE") != NULL)
		fail_msg("at %s with '%s': an OVERDUE line:\n%s", now, sched,
			 buf_str(&out));
	buf_release(&out);
}

static void
test_job_status_overdue(void **state)
{
	struct db *db = itest_connect(url);

	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	itest_exec(db, "DELETE FROM apexops.job_runs");
	itest_exec(db, "INSERT INTO apexops.job_runs (job, trigger, status,"
		       " started_at, finished_at) VALUES ('usage-purge',"
		       " 'scheduled', 'succeeded', '2026-11-30 02:30:00+00',"
		       " '2026-11-30 02:30:02+00')");
	/* 1 Dec 05:00: the 02:30 slot passed 2.5 h ago, no success since */
	overdue_at(db, "2026-12-01T05:00:00Z", "30 2 * * *", 1,
		   "    OVERDUE    no success since the 2026-12-01T02:30:00Z "
		   "slot\n");
	/* 1 Dec 03:00: the slot passed 30 min ago, inside the hour's slack */
	overdue_at(db, "2026-12-01T03:00:00Z", "30 2 * * *", 0, NULL);
	/* every minute: the latest slot an hour before now is owed */
	overdue_at(db, "2026-12-01T05:00:30Z", "* * * * *", 1,
		   "no success since the 2026-12-01T04:00:00Z slot\n");
	/* yearly: the latest slot (1 Jan, 334 days back) is before the
	 * success, so nothing is owed */
	overdue_at(db, "2026-12-01T05:00:00Z", "0 0 1 1 *", 0, NULL);
	/* ... until the next one passes */
	overdue_at(db, "2027-01-01T02:00:00Z", "0 0 1 1 *", 1,
		   "no success since the 2027-01-01T00:00:00Z slot\n");
	itest_exec(db, "DELETE FROM apexops.job_runs");
	db_close(db);
}

/* one row per (job, slot); a lapsed lease is taken over with the attempt
 * raised, and the stale holder's renewal and late outcome are refused */
static void
test_sched_claim_takeover_fencing(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct sched_claim a, b, c;
	bool claimed, taken, abandoned, busy;
	const time_t slot = 1796092200; /* 2026-12-01T02:30:00Z */
	time_t missed[2] = { slot - 86400, slot };
	int n;
	char *v;

	(void)state;
	itest_exec(db, "DELETE FROM apexops.job_runs");
	assert_int_equal(sched_claim(db, "usage-purge", slot, LEDGER_SCHEDULED,
				     "host-a:1", (double)slot + 30, &a,
				     &claimed, &err),
			 0);
	assert_true(claimed);
	assert_int_equal(a.attempt, 1);
	/* a second replica claiming the same slot gets nothing */
	assert_int_equal(sched_claim(db, "usage-purge", slot, LEDGER_SCHEDULED,
				     "host-b:2", (double)slot + 30, &c,
				     &claimed, &err),
			 0);
	assert_false(claimed);
	/* recording the slot missed does not overwrite the claim */
	assert_int_equal(sched_record_missed(db, "usage-purge", missed, 2,
					     "missed", &n, &err),
			 0);
	assert_int_equal(n, 1);
	assert_int_equal(
		sched_busy(db, "usage-purge", (double)slot + 10, &busy, &err),
		0);
	assert_true(busy);
	/* before the lease lapses nobody takes it over */
	assert_int_equal(sched_takeover(db, "usage-purge", "host-b:2",
					(double)slot + 10, (double)slot + 40,
					true, 3, &b, &taken, &abandoned, &err),
			 0);
	assert_false(taken);
	assert_int_equal(sched_renew(db, a.id, a.attempt, "host-a:1",
				     (double)slot + 60, &err),
			 0);
	/* host-a goes quiet; at +61 its lease lapsed */
	assert_int_equal(sched_takeover(db, "usage-purge", "host-b:2",
					(double)slot + 61, (double)slot + 91,
					true, 3, &b, &taken, &abandoned, &err),
			 0);
	assert_true(taken);
	assert_int_equal(b.id, a.id);
	assert_int_equal(b.attempt, 2);
	assert_string_equal(b.previous_owner, "host-a:1");
	/* the stale holder wakes up: its renewal and outcome are refused */
	assert_int_equal(sched_renew(db, a.id, a.attempt, "host-a:1",
				     (double)slot + 120, &err),
			 OPS_E_CONFLICT);
	assert_int_equal(ledger_finish_fenced(db, a.id, a.attempt, "host-a:1",
					      LEDGER_FAILED, NULL, "late",
					      &err),
			 OPS_E_CONFLICT);
	v = itest_value(db, "SELECT status || ' ' || attempt || ' ' ||"
			    " lease_owner || ' ' || takeovers FROM"
			    " apexops.job_runs WHERE slot IS NOT NULL AND"
			    " status <> 'missed'");
	assert_string_equal(v, "running 2 host-b:2 1");
	free(v);
	assert_int_equal(ledger_finish_fenced(db, b.id, b.attempt, "host-b:2",
					      LEDGER_SUCCEEDED, NULL, NULL,
					      &err),
			 0);
	/* after three attempts a lapsed run is abandoned, not retried */
	assert_int_equal(sched_claim(db, "usage-purge", slot + 86400,
				     LEDGER_SCHEDULED, "host-a:1",
				     (double)slot + 86430, &a, &claimed, &err),
			 0);
	itest_exec(db, "UPDATE apexops.job_runs SET attempt = 3 WHERE slot ="
		       " '2026-12-02 02:30+00'");
	assert_int_equal(sched_takeover(db, "usage-purge", "host-b:2",
					(double)slot + 86500,
					(double)slot + 86530, true, 3, &b,
					&taken, &abandoned, &err),
			 0);
	assert_false(taken);
	assert_true(abandoned);
	assert_int_equal(itest_value_ll(db,
					"SELECT count(*) FROM apexops.job_runs"
					" WHERE status = 'abandoned' AND"
					" finished_at IS NOT NULL"),
			 1);
	/* the other policy (JOB_ABANDON_ON_TAKEOVER): abandoned at once */
	assert_int_equal(sched_claim(db, "usage-purge", slot + 3 * 86400,
				     LEDGER_SCHEDULED, "host-a:1",
				     (double)slot + 3 * 86400 + 30, &a,
				     &claimed, &err),
			 0);
	assert_int_equal(sched_takeover(db, "usage-purge", "host-b:2",
					(double)slot + 3 * 86400 + 31,
					(double)slot + 3 * 86400 + 61, false, 3,
					&b, &taken, &abandoned, &err),
			 0);
	assert_false(taken);
	assert_true(abandoned);
	assert_int_equal(b.attempt, 1);
	/* a claim that could not start is withdrawn: the slot is free */
	assert_int_equal(sched_claim(db, "usage-purge", slot + 2 * 86400,
				     LEDGER_SCHEDULED, "host-a:1",
				     (double)slot + 2 * 86400 + 30, &a,
				     &claimed, &err),
			 0);
	assert_int_equal(sched_unclaim(db, a.id, a.attempt, "host-a:1", &err),
			 0);
	assert_int_equal(sched_claim(db, "usage-purge", slot + 2 * 86400,
				     LEDGER_CATCH_UP, "host-b:2",
				     (double)slot + 2 * 86400 + 30, &c,
				     &claimed, &err),
			 0);
	assert_true(claimed);
	itest_exec(db, "DELETE FROM apexops.job_runs");
	db_close(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_job_table),
		cmocka_unit_test(test_ledger_roundtrip),
		cmocka_unit_test(test_ledger_stale_owner),
		cmocka_unit_test(test_job_unavailable),
		cmocka_unit_test(test_job_lock_conflict),
		cmocka_unit_test(test_job_scheduled_purge),
		cmocka_unit_test(test_job_status),
		cmocka_unit_test(test_job_status_overdue),
		cmocka_unit_test(test_sched_claim_takeover_fencing),
	};

	return cmocka_run_group_tests(tests, itest_setup, itest_teardown);
}
