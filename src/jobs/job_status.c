/* The "jobs" section of `apexops status`, from the run ledger. */
#include "jobs/job_status.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/config.h"
#include "db/db.h"
#include "jobs/cron_expr.h"
#include "jobs/job.h"

/* A run may take this long after its slot before its success is owed. */
#define OVERDUE_SLACK_S 3600

static void
fmt_local(time_t t, char *buf, size_t n)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, n, "%Y-%m-%d %H:%M %Z", &tm) == 0)
		snprintf(buf, n, "?");
}

/* The latest slot of ce at or before t, searching the hour before, then
 * the day, the month, the 400 days: an every-minute schedule walks 60
 * slots, not the 576,000 of 400 days. */
static int
slot_before(const struct cron_expr *ce, time_t t, time_t *out)
{
	static const long windows[] = { 3600L, 86400L, 32L * 86400,
					400L * 86400 };

	for (size_t w = 0; w < sizeof(windows) / sizeof(windows[0]); w++) {
		time_t s = t - windows[w], next;
		bool found = false;

		while (cron_next(ce, s, &next) == 0 && next <= t) {
			*out = next;
			found = true;
			s = next;
		}
		if (found)
			return 0;
	}
	return -1;
}

static int
replicas(struct db *db, struct buf *out, struct ops_err *err)
{
	struct db_res *res = NULL;
	int r;

	r = db_query(db,
		     "SELECT replica, version, clock, to_char(started_at AT"
		     " TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"')"
		     " FROM apexops.cron_replicas"
		     " WHERE seen_at > now() - interval '1 minute'"
		     " ORDER BY replica",
		     0, NULL, &res, err);
	if (r != 0)
		return r;
	if (db_res_rows(res) == 0)
		buf_adds(out, "  schedulers   none seen in the last "
			      "minute ('apexops cron' is not running)\n");
	for (int i = 0; i < db_res_rows(res); i++)
		buf_addf(out, "  scheduler    %s (apexops %s, since %s, %s)\n",
			 db_res_get(res, i, 0), db_res_get(res, i, 1),
			 db_res_get(res, i, 3), db_res_get(res, i, 2));
	db_res_free(res);
	return 0;
}

int
job_status_report(struct db *db, const struct ops_config *cfg, struct buf *out,
		  int *overdue, struct ops_err *err)
{
	struct db_res *res = NULL;
	time_t now = (time_t)ops_clock_now();
	bool have = false;
	int r;

	if (overdue != NULL)
		*overdue = 0;
	r = db_relation_exists(db, "apexops.job_runs", &have, err);
	if (r != 0)
		return r;
	if (!have) {
		buf_adds(out, "  (apexops.job_runs is missing: run "
			      "'apexops migrate up')\n");
		return 0;
	}
	r = db_query(
		db,
		"SELECT j.job, l.status, l.trigger,"
		" to_char(l.started_at AT TIME ZONE 'UTC',"
		"  'YYYY-MM-DD HH24:MI:SS\"Z\"'),"
		" round(extract(epoch FROM l.finished_at - l.started_at)"
		"  ::numeric, 1)::text,"
		" (SELECT to_char(max(s.finished_at) AT TIME ZONE 'UTC',"
		"  'YYYY-MM-DD HH24:MI:SS\"Z\"') FROM apexops.job_runs s"
		"  WHERE s.job = j.job AND s.status = 'succeeded'),"
		" (SELECT count(*) FROM apexops.job_runs s"
		"  WHERE s.job = j.job AND s.status = 'running'),"
		" l.error,"
		" (SELECT extract(epoch FROM max(s.finished_at))::bigint"
		"  FROM apexops.job_runs s"
		"  WHERE s.job = j.job AND s.status = 'succeeded')"
		" FROM (SELECT DISTINCT job FROM apexops.job_runs) j"
		" LEFT JOIN LATERAL (SELECT * FROM apexops.job_runs x"
		"  WHERE x.job = j.job ORDER BY x.id DESC LIMIT 1) l ON true",
		0, NULL, &res, err);
	if (r != 0)
		return r;
	for (int i = 0; i < job_count; i++) {
		const struct job_def *j = &job_table[i];
		const char *sched = job_schedule(cfg, j);
		struct cron_expr ce;
		bool parsed = strcmp(sched, "off") != 0 &&
			      cron_parse(sched, &ce, NULL) == 0;
		time_t next, owed = 0;
		long long ok_at = 0;
		int row = -1;

		for (int k = 0; k < db_res_rows(res); k++)
			if (strcmp(db_res_get(res, k, 0), j->name) == 0)
				row = k;
		buf_addf(out, "  %-18s %s%s\n", j->name,
			 (j->flags & JOB_MANUAL_ONLY) ? "(manual only)" : sched,
			 (j->flags & JOB_UNAVAILABLE)
				 ? "  (not available in this version)"
				 : "");
		if (parsed && cron_next(&ce, now, &next) == 0) {
			char l[64], u[32];

			fmt_local(next, l, sizeof(l));
			buf_addf(out, "    next       %s (%s)\n", l,
				 ops_format_rfc3339(next, u, sizeof(u)));
		}
		if (row >= 0 && db_res_get(res, row, 8) != NULL)
			ok_at = db_res_ll(res, row, 8);
		/* overdue: a slot passed (with an hour's slack) after the last
		 * success */
		/* a job that never ran anywhere is not flagged: no scheduler
		 * was ever set up to run it */
		if (parsed && row >= 0 && !(j->flags & JOB_UNAVAILABLE) &&
		    slot_before(&ce, now - OVERDUE_SLACK_S, &owed) == 0 &&
		    ok_at < (long long)owed) {
			char u[32];

			buf_addf(out,
				 "    OVERDUE    no success since the "
				 "%s slot\n",
				 ops_format_rfc3339(owed, u, sizeof(u)));
			if (overdue != NULL)
				(*overdue)++;
		}
		if (row < 0) {
			buf_adds(out, "    last run   never\n");
			continue;
		}
		buf_addf(out, "    last run   %s (%s) at %s",
			 db_res_get(res, row, 1), db_res_get(res, row, 2),
			 db_res_get(res, row, 3));
		if (db_res_get(res, row, 4) != NULL)
			buf_addf(out, ", %s s", db_res_get(res, row, 4));
		buf_adds(out, "\n");
		buf_addf(out, "    last ok    %s\n",
			 db_res_get(res, row, 5) ? db_res_get(res, row, 5)
						 : "never");
		if (db_res_ll(res, row, 6) > 0)
			buf_addf(out, "    running    %lld run(s) now\n",
				 db_res_ll(res, row, 6));
		if (db_res_get(res, row, 7) != NULL &&
		    strcmp(db_res_get(res, row, 1), "succeeded") != 0)
			buf_addf(out, "    error      %.160s\n",
				 db_res_get(res, row, 7));
	}
	db_res_free(res);
	if (db_relation_exists(db, "apexops.cron_replicas", &have, err) != 0)
		return OPS_E_DB;
	if (have)
		r = replicas(db, out, err);
	return r;
}
