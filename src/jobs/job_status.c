/* The "jobs" section of `apexops status`, from the run ledger. */
#include "jobs/job_status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "jobs/job.h"

/*
 * Per job: its last run (status, trigger, when, how long), its last
 * success, and whether a run is going on now. One query for all jobs.
 */
int
job_status_report(struct db *db, struct buf *out, struct ops_err *err)
{
	struct db_res *res = NULL;
	char *reg = NULL;
	int r;

	r = db_query_value(db, "SELECT to_regclass('apexops.job_runs')::text",
			   0, NULL, &reg, err);
	if (r != 0)
		return r;
	if (reg == NULL)
		return buf_puts(out, "  (apexops.job_runs is missing: run "
				     "'apexops migrate up')\n") < 0
			       ? ops_fail(err, OPS_E_IO, false, "out of space")
			       : 0;
	free(reg);
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
		" l.error"
		" FROM (SELECT DISTINCT job FROM apexops.job_runs) j"
		" LEFT JOIN LATERAL (SELECT * FROM apexops.job_runs x"
		"  WHERE x.job = j.job ORDER BY x.id DESC LIMIT 1) l ON true",
		0, NULL, &res, err);
	if (r != 0)
		return r;
	for (int i = 0; i < job_count; i++) {
		const struct job_def *j = &job_table[i];
		int row = -1;

		for (int k = 0; k < db_res_rows(res); k++)
			if (strcmp(db_res_get(res, k, 0), j->name) == 0)
				row = k;
		buf_printf(out, "  %-18s %s%s\n", j->name,
			   j->schedule ? j->schedule : "(manual only)",
			   (j->flags & JOB_UNAVAILABLE)
				   ? "  (not available in this version)"
				   : "");
		if (row < 0) {
			buf_puts(out, "    last run   never\n");
			continue;
		}
		buf_printf(out, "    last run   %s (%s) at %s",
			   db_res_get(res, row, 1), db_res_get(res, row, 2),
			   db_res_get(res, row, 3));
		if (db_res_get(res, row, 4) != NULL)
			buf_printf(out, ", %s s", db_res_get(res, row, 4));
		buf_puts(out, "\n");
		buf_printf(out, "    last ok    %s\n",
			   db_res_get(res, row, 5) ? db_res_get(res, row, 5)
						   : "never");
		if (db_res_ll(res, row, 6) > 0)
			buf_printf(out, "    running    %lld run(s) now\n",
				   db_res_ll(res, row, 6));
		if (db_res_get(res, row, 7) != NULL &&
		    strcmp(db_res_get(res, row, 1), "succeeded") != 0)
			buf_printf(out, "    error      %.160s\n",
				   db_res_get(res, row, 7));
	}
	db_res_free(res);
	return 0;
}
