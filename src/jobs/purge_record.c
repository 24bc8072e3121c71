/*
 * The purge's own run bookkeeping: the advisory lock and the rows of
 * apexops.purge_runs.
 */
#include "jobs/purge_internal.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "db/db.h"

static const char *
os_user_name(const struct purge_opts *o, char *buf, size_t n)
{
	struct passwd pw, *found = NULL;
	char tmp[1024];

	if (o->os_user != NULL)
		return o->os_user;
	if (getpwuid_r(geteuid(), &pw, tmp, sizeof(tmp), &found) == 0 &&
	    found != NULL) {
		snprintf(buf, n, "%s", pw.pw_name);
		return buf;
	}
	if (getenv("USER") != NULL) {
		snprintf(buf, n, "%s", getenv("USER"));
		return buf;
	}
	snprintf(buf, n, "uid:%u", (unsigned)geteuid());
	return buf;
}

int
purge_record_lock(struct db *db, struct ops_err *err)
{
	char key[32];
	const char *params[1] = { key };
	struct db_res *res = NULL;
	bool got = false;
	int r;

	r = db_try_advisory_lock(db, db_lock_key(PURGE_LOCK_NAME), &got, err);
	if (r != 0)
		return r;
	if (got)
		return 0;
	snprintf(key, sizeof(key), "%lld",
		 (long long)db_lock_key(PURGE_LOCK_NAME));
	/* name the holder so that the operator knows whom to wait for */
	r = db_query(
		db,
		"SELECT a.pid, a.application_name,"
		" to_char(a.backend_start AT TIME ZONE 'UTC', " PURGE_TS_FMT ")"
		" FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
		" WHERE l.locktype = 'advisory' AND l.granted"
		" AND l.objsubid = 1 AND ((l.classid::bigint << 32)"
		"  | l.objid::bigint) = $1::bigint LIMIT 1",
		1, params, &res, err);
	if (r == 0 && db_res_rows(res) > 0)
		r = ops_fail(err, OPS_E_CONFLICT, true,
			     "another purge is running (backend pid %s, %s, "
			     "connected since %s): wait for it to finish or "
			     "stop it, then run again",
			     db_res_get(res, 0, 0),
			     db_res_get(res, 0, 1) ? db_res_get(res, 0, 1) : "",
			     db_res_get(res, 0, 2) ? db_res_get(res, 0, 2)
						   : "");
	else
		r = ops_fail(err, OPS_E_CONFLICT, true,
			     "another purge is running: wait for it to "
			     "finish, then run again");
	db_res_free(res);
	return r;
}

int
purge_record_abandon_stale(struct db *db, int *count, struct ops_err *err)
{
	long long n = 0;
	int r;

	/* a running row whose backend is gone was killed or lost its
	 * connection; we hold the purge lock, so no live purge owns it */
	r = db_exec(db,
		    "UPDATE apexops.purge_runs r SET status = 'abandoned',"
		    " finished_at = clock_timestamp(),"
		    " error = COALESCE(r.error, 'the run ended without "
		    "recording an outcome (killed, crashed or lost its "
		    "database connection)')"
		    " WHERE r.status = 'running' AND NOT EXISTS (SELECT 1"
		    "  FROM pg_stat_activity a WHERE a.pid = r.backend_pid"
		    "  AND a.backend_start IS NOT DISTINCT FROM"
		    "  r.backend_start)",
		    0, NULL, &n, err);
	*count = (int)n;
	if (n > 0)
		log_warn("marked stale purge runs abandoned count=%lld", n);
	return r;
}

int
purge_record_start(struct db *db, const struct purge_opts *o,
		   struct purge_result *res, struct ops_err *err)
{
	char months[24], user[128], host[256];
	const char *params[9];
	char *id = NULL;
	int r;

	snprintf(months, sizeof(months), "%ld", res->months);
	if (gethostname(host, sizeof(host)) != 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	params[0] = o->execute ? "execute" : "dry-run";
	params[1] = o->trigger ? o->trigger : "manual";
	params[2] = os_user_name(o, user, sizeof(user));
	params[3] = host[0] ? host : NULL;
	params[4] = months;
	params[5] = res->tz;
	params[6] = o->as_of;
	params[7] = res->today;
	params[8] = res->cutoff;
	r = db_query_value(
		db,
		"INSERT INTO apexops.purge_runs (mode, trigger, os_user,"
		" application_name, client_host, backend_start, months, tz,"
		" as_of, today, cutoff)"
		" SELECT $1, $2, $3, current_setting('application_name'), $4,"
		"  (SELECT backend_start FROM pg_stat_activity"
		"   WHERE pid = pg_backend_pid()),"
		"  $5::int, $6, $7::date, $8::date, $9::timestamptz"
		" RETURNING id",
		9, params, &id, err);
	if (r != 0)
		return ops_err_prefix(err, "recording the purge run");
	res->run_id = id ? strtoll(id, NULL, 10) : 0;
	free(id);
	return 0;
}

/* Update the run row: progress when status is NULL, else the outcome. */
int
purge_record_update(struct db *db, const struct purge_result *res,
		    const char *status, const char *error, struct ops_err *err)
{
	char id[24], planned[24], deleted[24], nulls[24], ms[24];
	const char *params[8];
	char *tables = purge_tables_json(res);
	int r;

	snprintf(id, sizeof(id), "%lld", res->run_id);
	snprintf(planned, sizeof(planned), "%lld", res->planned_total);
	snprintf(deleted, sizeof(deleted), "%lld", res->deleted_total);
	snprintf(nulls, sizeof(nulls), "%lld", res->null_total);
	snprintf(ms, sizeof(ms), "%.0f", res->seconds * 1000.0);
	params[0] = id;
	params[1] = status;
	params[2] = planned;
	params[3] = res->execute ? deleted : NULL;
	params[4] = nulls;
	params[5] = tables ? tables : "[]";
	params[6] = ms;
	params[7] = error;
	r = db_exec(db,
		    "UPDATE apexops.purge_runs SET"
		    " status = COALESCE($2, status),"
		    " finished_at = CASE WHEN $2 IS NULL THEN NULL"
		    "  ELSE clock_timestamp() END,"
		    " rows_planned = $3::bigint, rows_deleted = $4::bigint,"
		    " null_rows = $5::bigint, tables = $6::jsonb,"
		    " duration_ms = $7::bigint, error = $8"
		    " WHERE id = $1::bigint",
		    8, params, NULL, err);
	free(tables);
	return r;
}

void
purge_record_unlock(struct db *db)
{
	struct ops_err e2 = OPS_ERR_INIT;

	if (db_advisory_unlock(db, db_lock_key(PURGE_LOCK_NAME), &e2) != 0)
		log_debug("purge unlock failed error=%s", log_q(e2.msg));
}
