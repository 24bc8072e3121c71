/* The scheduler's claims, leases and fencing; see sched.h. */
#include "jobs/sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/xalloc.h"
#include "db/db.h"

static void
fmt_time(char *buf, size_t n, double t)
{
	snprintf(buf, n, "%.3f", t);
}

int
sched_last_slot(struct db *db, const char *job, time_t *slot, bool *found,
		struct ops_err *err)
{
	const char *p[1] = { job };
	char *v = NULL;
	int r;

	*found = false;
	*slot = 0;
	r = db_query_value(db,
			   "SELECT extract(epoch FROM max(slot))::bigint"
			   " FROM apexops.job_runs WHERE job = $1"
			   " AND slot IS NOT NULL",
			   1, p, &v, err);
	if (r != 0)
		return ops_err_prefix(err, "reading the last slot of %s", job);
	if (v != NULL) {
		*slot = (time_t)strtoll(v, NULL, 10);
		*found = true;
	}
	free(v);
	return 0;
}

int
sched_busy(struct db *db, const char *job, double now, bool *busy,
	   struct ops_err *err)
{
	char t[32];
	const char *p[2] = { job, t };
	char *v = NULL;
	int r;

	fmt_time(t, sizeof(t), now);
	r = db_query_value(db,
			   "SELECT EXISTS (SELECT 1 FROM apexops.job_runs"
			   " WHERE job = $1 AND status = 'running'"
			   " AND lease_owner IS NOT NULL"
			   " AND lease_expires_at >= to_timestamp($2::float8))",
			   2, p, &v, err);
	if (r != 0)
		return ops_err_prefix(err, "checking for a running %s", job);
	*busy = v != NULL && strcmp(v, "t") == 0;
	free(v);
	return 0;
}

/* The first row of res as a claim. */
static void
fill_claim(struct sched_claim *c, const struct db_res *res)
{
	const char *prev;

	memset(c, 0, sizeof(*c));
	c->id = db_res_ll(res, 0, 0);
	c->attempt = (int)db_res_ll(res, 0, 1);
	c->slot = (time_t)db_res_ll(res, 0, 2);
	snprintf(c->trigger, sizeof(c->trigger), "%s", db_res_get(res, 0, 3));
	prev = db_res_cols(res) > 4 ? db_res_get(res, 0, 4) : NULL;
	snprintf(c->previous_owner, sizeof(c->previous_owner), "%s",
		 prev ? prev : "");
}

int
sched_claim(struct db *db, const char *job, time_t slot, const char *trigger,
	    const char *owner, double lease_until, struct sched_claim *c,
	    bool *claimed, struct ops_err *err)
{
	char s[24], lease[32], host[256], pid[24];
	const char *p[7] = { job, trigger, s, owner, lease, host, pid };
	struct db_res *res = NULL;
	int r;

	*claimed = false;
	snprintf(s, sizeof(s), "%lld", (long long)slot);
	fmt_time(lease, sizeof(lease), lease_until);
	if (gethostname(host, sizeof(host)) != 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	r = db_query(db,
		     "INSERT INTO apexops.job_runs (job, trigger, slot,"
		     " lease_owner, lease_expires_at, owner_host, owner_pid,"
		     " application_name, client_host, backend_start)"
		     " VALUES ($1, $2, to_timestamp($3::bigint), $4,"
		     "  to_timestamp($5::float8), $6, $7::int,"
		     "  current_setting('application_name'), $6,"
		     "  (SELECT backend_start FROM pg_stat_activity"
		     "   WHERE pid = pg_backend_pid()))"
		     " ON CONFLICT (job, slot) WHERE slot IS NOT NULL"
		     " DO NOTHING"
		     " RETURNING id, attempt, extract(epoch FROM slot)::bigint,"
		     "  trigger",
		     7, p, &res, err);
	if (r != 0)
		return ops_err_prefix(err, "claiming %s at slot %s", job, s);
	if (db_res_rows(res) == 1) {
		fill_claim(c, res);
		*claimed = true;
	}
	db_res_free(res);
	return 0;
}

int
sched_record_missed(struct db *db, const char *job, const time_t *slots, int n,
		    const char *why, int *inserted, struct ops_err *err)
{
	struct buf_like {
		char *s;
		size_t len, cap;
	} arr = { NULL, 0, 0 };
	const char *p[3];
	long long count = 0;
	int r;

	if (inserted != NULL)
		*inserted = 0;
	if (n <= 0)
		return 0;
	/* one statement for all: {t1,t2,...} as a bigint[] parameter */
	arr.cap = (size_t)n * 21 + 3;
	arr.s = xmalloc(arr.cap);
	arr.s[arr.len++] = '{';
	for (int i = 0; i < n; i++)
		arr.len += (size_t)snprintf(arr.s + arr.len, arr.cap - arr.len,
					    "%s%lld", i ? "," : "",
					    (long long)slots[i]);
	arr.s[arr.len++] = '}';
	arr.s[arr.len] = '\0';
	p[0] = job;
	p[1] = arr.s;
	p[2] = why;
	r = db_exec(
		db,
		"INSERT INTO apexops.job_runs (job, trigger, slot, status,"
		" finished_at, error, application_name)"
		" SELECT $1, 'scheduled', to_timestamp(s), 'missed',"
		"  clock_timestamp(), $3, current_setting('application_name')"
		" FROM unnest($2::bigint[]) s"
		" ON CONFLICT (job, slot) WHERE slot IS NOT NULL DO NOTHING",
		3, p, &count, err);
	free(arr.s);
	if (r != 0)
		return ops_err_prefix(err, "recording missed slots of %s", job);
	if (inserted != NULL)
		*inserted = (int)count;
	return 0;
}

int
sched_takeover(struct db *db, const char *job, const char *owner, double now,
	       double lease_until, bool retry, int max_attempts,
	       struct sched_claim *c, bool *taken, bool *abandoned,
	       struct ops_err *err)
{
	char t[32], lease[32], maxa[24], host[256], pid[24];
	const char *p[8] = { job,  t,	 owner, lease, retry ? "t" : "f",
			     maxa, host, pid };
	struct db_res *res = NULL;
	int r;

	*taken = false;
	*abandoned = false;
	fmt_time(t, sizeof(t), now);
	fmt_time(lease, sizeof(lease), lease_until);
	snprintf(maxa, sizeof(maxa), "%d", max_attempts);
	if (gethostname(host, sizeof(host)) != 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	/* SKIP LOCKED: two replicas never take over the same run; the row's
	 * old values come back through the FROM self-join */
	r = db_query(
		db,
		"WITH victim AS (SELECT id, attempt, lease_owner"
		"  FROM apexops.job_runs WHERE job = $1 AND status = 'running'"
		"  AND lease_owner IS NOT NULL"
		"  AND lease_expires_at < to_timestamp($2::float8)"
		"  ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
		" UPDATE apexops.job_runs r SET"
		"  attempt = CASE WHEN $5::bool AND r.attempt < $6::int"
		"   THEN r.attempt + 1 ELSE r.attempt END,"
		"  takeovers = r.takeovers + 1,"
		"  status = CASE WHEN $5::bool AND r.attempt < $6::int"
		"   THEN 'running' ELSE 'abandoned' END,"
		"  finished_at = CASE WHEN $5::bool AND r.attempt < $6::int"
		"   THEN NULL ELSE clock_timestamp() END,"
		"  lease_owner = CASE WHEN $5::bool AND r.attempt < $6::int"
		"   THEN $3 ELSE r.lease_owner END,"
		"  lease_expires_at = CASE WHEN $5::bool AND r.attempt < "
		"$6::int"
		"   THEN to_timestamp($4::float8) ELSE NULL END,"
		"  owner_host = CASE WHEN $5::bool AND r.attempt < $6::int"
		"   THEN $7 ELSE r.owner_host END,"
		"  owner_pid = CASE WHEN $5::bool AND r.attempt < $6::int"
		"   THEN $8::int ELSE r.owner_pid END,"
		"  error = 'the lease of ' || v.lease_owner || ' (attempt ' ||"
		"   v.attempt || ') lapsed' || CASE WHEN $5::bool AND"
		"   r.attempt < $6::int THEN ': taken over' ELSE"
		"   ': abandoned' END,"
		"  updated_at = clock_timestamp()"
		" FROM victim v WHERE r.id = v.id"
		" RETURNING r.id, r.attempt, extract(epoch FROM "
		"r.slot)::bigint,"
		"  r.trigger, v.lease_owner, r.status",
		8, p, &res, err);
	if (r != 0)
		return ops_err_prefix(err, "taking over a lapsed run of %s",
				      job);
	if (db_res_rows(res) == 1) {
		fill_claim(c, res);
		if (strcmp(db_res_get(res, 0, 5), "running") == 0)
			*taken = true;
		else
			*abandoned = true;
	}
	db_res_free(res);
	return 0;
}

static int
lease_update(struct db *db, const char *sql, long long id, int attempt,
	     const char *owner, double t, const char *what, struct ops_err *err)
{
	char ids[24], att[24], ts[32];
	const char *p[4] = { ids, att, owner, ts };
	long long n = 0;
	int r;

	snprintf(ids, sizeof(ids), "%lld", id);
	snprintf(att, sizeof(att), "%d", attempt);
	fmt_time(ts, sizeof(ts), t);
	r = db_exec(db, sql, 4, p, &n, err);
	if (r != 0)
		return ops_err_prefix(err, "%s run %lld", what, id);
	if (n == 0)
		return ops_fail(err, OPS_E_CONFLICT, false,
				"run %lld attempt %d is no longer held by %s",
				id, attempt, owner);
	return 0;
}

int
sched_renew(struct db *db, long long id, int attempt, const char *owner,
	    double lease_until, struct ops_err *err)
{
	return lease_update(db,
			    "UPDATE apexops.job_runs SET lease_expires_at ="
			    " to_timestamp($4::float8),"
			    " updated_at = clock_timestamp()"
			    " WHERE id = $1::bigint AND attempt = $2::int"
			    " AND lease_owner = $3 AND status = 'running'",
			    id, attempt, owner, lease_until,
			    "renewing the lease of", err);
}

int
sched_release(struct db *db, long long id, int attempt, const char *owner,
	      double now, struct ops_err *err)
{
	return lease_update(db,
			    "UPDATE apexops.job_runs SET lease_expires_at ="
			    " to_timestamp($4::float8) - interval '1 ms',"
			    " updated_at = clock_timestamp()"
			    " WHERE id = $1::bigint AND attempt = $2::int"
			    " AND lease_owner = $3 AND status = 'running'",
			    id, attempt, owner, now, "releasing the lease of",
			    err);
}

int
sched_unclaim(struct db *db, long long id, int attempt, const char *owner,
	      struct ops_err *err)
{
	char ids[24], att[24];
	const char *p[3] = { ids, att, owner };
	int r;

	snprintf(ids, sizeof(ids), "%lld", id);
	snprintf(att, sizeof(att), "%d", attempt);
	r = db_exec(db,
		    "DELETE FROM apexops.job_runs WHERE id = $1::bigint"
		    " AND attempt = $2::int AND lease_owner = $3"
		    " AND status = 'running'",
		    3, p, NULL, err);
	if (r != 0)
		return ops_err_prefix(err, "withdrawing the claim of run %lld",
				      id);
	return 0;
}

int
sched_next_expiry(struct db *db, const char *owner, double *t, bool *found,
		  struct ops_err *err)
{
	const char *p[1] = { owner };
	char *v = NULL;
	int r;

	*found = false;
	*t = 0;
	r = db_query_value(db,
			   "SELECT extract(epoch FROM min(lease_expires_at))"
			   " FROM apexops.job_runs WHERE status = 'running'"
			   " AND lease_owner IS NOT NULL AND lease_owner <> $1",
			   1, p, &v, err);
	if (r != 0)
		return ops_err_prefix(err, "reading lease expiries");
	if (v != NULL) {
		*t = strtod(v, NULL);
		*found = true;
	}
	free(v);
	return 0;
}

int
sched_replica_seen(struct db *db, const char *replica, const char *host,
		   int pid, const char *clock, struct ops_err *err)
{
	char pids[24];
	const char *p[5] = { replica, host, pids, APEXOPS_VERSION, clock };
	int r;

	snprintf(pids, sizeof(pids), "%d", pid);
	r = db_exec(db,
		    "INSERT INTO apexops.cron_replicas (replica, host, pid,"
		    " version, clock) VALUES ($1, $2, $3::int, $4, $5)"
		    " ON CONFLICT (replica) DO UPDATE SET"
		    " seen_at = clock_timestamp(), clock = EXCLUDED.clock",
		    5, p, NULL, err);
	if (r != 0)
		return ops_err_prefix(err, "recording replica %s", replica);
	return 0;
}

int
sched_replica_gone(struct db *db, const char *replica, struct ops_err *err)
{
	const char *p[1] = { replica };
	int r;

	r = db_exec(db, "DELETE FROM apexops.cron_replicas WHERE replica = $1",
		    1, p, NULL, err);
	if (r != 0)
		return ops_err_prefix(err, "removing replica %s", replica);
	return 0;
}
