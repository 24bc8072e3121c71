/* The run ledger (apexops.job_runs); see ledger.h. */
#include "jobs/ledger.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "db/db.h"

/* RFC 3339 in UTC with milliseconds, e.g. 2026-12-01T02:30:00.000Z */
#define RFC3339(col)                           \
	"to_char(" col " AT TIME ZONE 'UTC', " \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static const char *
os_user_name(char *buf, size_t n)
{
	struct passwd pw, *found = NULL;
	char tmp[1024];
	const char *env;

	if (getpwuid_r(geteuid(), &pw, tmp, sizeof(tmp), &found) == 0 &&
	    found != NULL) {
		snprintf(buf, n, "%s", pw.pw_name);
		return buf;
	}
	env = getenv("USER");
	if (env != NULL && env[0] != '\0') {
		snprintf(buf, n, "%s", env);
		return buf;
	}
	snprintf(buf, n, "uid:%u", (unsigned)geteuid());
	return buf;
}

int
ledger_start(struct db *db, const struct ledger_start *s, long long *id,
	     struct ops_err *err)
{
	char user[128], host[256], pid[24], attempt[24];
	const char *params[9];
	char *v = NULL;
	int r;

	*id = 0;
	if (s->job == NULL || s->trigger == NULL)
		return ops_fail(err, OPS_E_INVALID, false,
				"ledger: a run needs a job and a trigger");
	if (gethostname(host, sizeof(host)) != 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	snprintf(attempt, sizeof(attempt), "%d",
		 s->attempt > 0 ? s->attempt : 1);
	params[0] = s->job;
	params[1] = s->trigger;
	params[2] = s->slot;
	params[3] = attempt;
	params[4] = s->mode;
	params[5] = s->params != NULL ? s->params : "{}";
	params[6] = host[0] != '\0' ? host : NULL;
	params[7] = pid;
	params[8] = s->os_user != NULL ? s->os_user
				       : os_user_name(user, sizeof(user));
	r = db_query_value(
		db,
		"INSERT INTO apexops.job_runs (job, trigger, slot, attempt,"
		" mode, params, owner_host, owner_pid, os_user,"
		" application_name, client_host, backend_start)"
		" SELECT $1, $2, $3::timestamptz, $4::int, $5, $6::jsonb, $7,"
		"  $8::int, $9, current_setting('application_name'), $7,"
		"  (SELECT backend_start FROM pg_stat_activity"
		"   WHERE pid = pg_backend_pid())"
		" RETURNING id",
		9, params, &v, err);
	if (r != 0)
		return ops_err_prefix(err, "recording the %s run", s->job);
	*id = v != NULL ? strtoll(v, NULL, 10) : 0;
	free(v);
	return 0;
}

int
ledger_progress(struct db *db, long long id, const char *counts,
		struct ops_err *err)
{
	char ids[24];
	const char *params[2] = { ids, counts != NULL ? counts : "{}" };
	int r;

	snprintf(ids, sizeof(ids), "%lld", id);
	r = db_exec(db,
		    "UPDATE apexops.job_runs SET counts = $2::jsonb,"
		    " updated_at = clock_timestamp()"
		    " WHERE id = $1::bigint AND status = 'running'",
		    2, params, NULL, err);
	if (r != 0)
		return ops_err_prefix(err, "recording progress of run %lld",
				      id);
	return 0;
}

int
ledger_finish(struct db *db, long long id, const char *status,
	      const char *counts, const char *error, struct ops_err *err)
{
	char ids[24];
	const char *params[4] = { ids, status, counts, error };
	long long n = 0;
	int r;

	snprintf(ids, sizeof(ids), "%lld", id);
	/* only a row still running: a run marked abandoned (its owner was
	 * presumed gone) keeps that record, so a late writer is fenced */
	r = db_exec(db,
		    "UPDATE apexops.job_runs SET status = $2,"
		    " counts = COALESCE($3::jsonb, counts), error = $4,"
		    " updated_at = clock_timestamp(),"
		    " finished_at = clock_timestamp()"
		    " WHERE id = $1::bigint AND status = 'running'",
		    4, params, &n, err);
	if (r != 0)
		return ops_err_prefix(err, "recording the outcome of run %lld",
				      id);
	if (n == 0)
		return ops_fail(err, OPS_E_CONFLICT, false,
				"run %lld is no longer running in the ledger "
				"(marked abandoned or settled by another "
				"process): its outcome '%s' was not recorded",
				id, status);
	return 0;
}

int
ledger_finish_fenced(struct db *db, long long id, int attempt,
		     const char *owner, const char *status, const char *counts,
		     const char *error, struct ops_err *err)
{
	char ids[24], att[24];
	const char *params[6] = { ids, status, counts, error, att, owner };
	long long n = 0;
	int r;

	snprintf(ids, sizeof(ids), "%lld", id);
	snprintf(att, sizeof(att), "%d", attempt);
	r = db_exec(db,
		    "UPDATE apexops.job_runs SET status = $2,"
		    " counts = COALESCE($3::jsonb, counts), error = $4,"
		    " lease_expires_at = NULL, updated_at = clock_timestamp(),"
		    " finished_at = clock_timestamp()"
		    " WHERE id = $1::bigint AND status = 'running'"
		    " AND attempt = $5::int AND lease_owner = $6",
		    6, params, &n, err);
	if (r != 0)
		return ops_err_prefix(err, "recording the outcome of run %lld",
				      id);
	if (n == 0)
		return ops_fail(err, OPS_E_CONFLICT, false,
				"run %lld attempt %d is no longer held by %s "
				"(its lease lapsed and another replica took "
				"it over): its outcome '%s' was not recorded",
				id, attempt, owner, status);
	return 0;
}

int
ledger_abandon_stale(struct db *db, const char *job, int *n,
		     struct ops_err *err)
{
	const char *params[1] = { job };
	long long count = 0;
	int r;

	if (n != NULL)
		*n = 0;
	/* A row is stale when no backend with its pid and start time exists.
	 * A role without pg_read_all_stats sees other roles' backend_start as
	 * NULL: then the pid alone decides, erring on "still running". */
	r = db_exec(db,
		    "UPDATE apexops.job_runs r SET status = 'abandoned',"
		    " updated_at = clock_timestamp(),"
		    " finished_at = clock_timestamp(),"
		    " error = COALESCE(r.error, 'the run ended without "
		    "recording an outcome (killed, crashed or lost its "
		    "database connection)')"
		    " WHERE r.status = 'running' AND r.lease_owner IS NULL"
		    " AND ($1::text IS NULL OR r.job = $1::text)"
		    " AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a"
		    "  WHERE a.pid = r.backend_pid AND (a.backend_start IS NULL"
		    "   OR r.backend_start IS NULL"
		    "   OR a.backend_start = r.backend_start))",
		    1, params, &count, err);
	if (r != 0)
		return ops_err_prefix(err, "marking stale runs abandoned");
	if (count > 0)
		log_warn("marked stale runs abandoned count=%lld", count);
	if (n != NULL)
		*n = (int)count;
	return 0;
}

int
ledger_history_json(struct db *db, const char *job, bool failed_only,
		    long limit, char **json, struct ops_err *err)
{
	char lim[24];
	const char *params[3] = { job, failed_only ? "t" : "f", lim };
	int r;

	*json = NULL;
	snprintf(lim, sizeof(lim), "%ld", limit < 0 ? 0 : limit);
	r = db_query_value(
		db,
		"SELECT COALESCE(json_agg(h ORDER BY h.id DESC), '[]')::text"
		" FROM (SELECT id, job, " RFC3339(
			"slot") " AS slot, trigger,"
				"  status, mode, attempt,"
				"  COALESCE(owner_host, '?') || ':' ||"
				"   COALESCE(owner_pid::text, '?') AS owner,"
				"  " RFC3339("started_at") " AS started_at,"
							   "  " RFC3339(
								   "finished_"
								   "at") " AS "
									 "finis"
									 "hed_"
									 "at,"
									 "  "
									 "(extr"
									 "act("
									 "epoch"
									 " FROM"
									 " fini"
									 "shed_"
									 "at - "
									 "start"
									 "ed_"
									 "at) "
									 "* "
									 "1000)"
									 "   "
									 "::"
									 "bigin"
									 "t AS "
									 "durat"
									 "ion_"
									 "ms,"
									 "  "
									 "os_"
									 "user,"
									 " db_"
									 "user,"
									 " appl"
									 "icati"
									 "on_"
									 "name,"
									 " back"
									 "end_"
									 "pid,"
									 "  "
									 "param"
									 "s, "
									 "count"
									 "s, "
									 "error"
									 "  "
									 "FROM "
									 "apexo"
									 "ps."
									 "job_"
									 "runs"
									 "  "
									 "WHERE"
									 " ($1:"
									 ":text"
									 " IS "
									 "NULL "
									 "OR "
									 "job "
									 "= "
									 "$1::"
									 "text)"
									 "  "
									 "AND "
									 "(NOT "
									 "$2::"
									 "bool "
									 "OR "
									 "statu"
									 "s IN "
									 "('"
									 "faile"
									 "d', "
									 "'aban"
									 "doned"
									 "',"
									 "   "
									 "'part"
									 "ial',"
									 " '"
									 "misse"
									 "d', "
									 "'unav"
									 "ailab"
									 "le', "
									 "'stop"
									 "ped')"
									 ")"
									 "  "
									 "ORDER"
									 " BY "
									 "id "
									 "DESC "
									 "LIMIT"
									 " $3::"
									 "int) "
									 "h",
		3, params, json, err);
	if (r != 0)
		return ops_err_prefix(err, "reading apexops.job_runs");
	return 0;
}

int
ledger_set_params(struct db *db, long long id, const char *mode,
		  const char *params, struct ops_err *err)
{
	char ids[24];
	const char *p[3] = { ids, mode, params };
	int r;

	snprintf(ids, sizeof(ids), "%lld", id);
	r = db_exec(db,
		    "UPDATE apexops.job_runs SET mode = COALESCE($2, mode),"
		    " params = COALESCE($3::jsonb, params),"
		    " updated_at = clock_timestamp() WHERE id = $1::bigint",
		    3, p, NULL, err);
	if (r != 0)
		return ops_err_prefix(err,
				      "recording the parameters of run "
				      "%lld",
				      id);
	return 0;
}

int
ledger_forget(struct db *db, long long id, struct ops_err *err)
{
	char ids[24];
	const char *p[1] = { ids };
	int r;

	snprintf(ids, sizeof(ids), "%lld", id);
	r = db_exec(db, "DELETE FROM apexops.job_runs WHERE id = $1::bigint", 1,
		    p, NULL, err);
	if (r != 0)
		return ops_err_prefix(err, "forgetting run %lld", id);
	return 0;
}
