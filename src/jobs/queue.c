/* The job queue; see queue.h. */
#include "jobs/queue.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/stop.h"
#include "core/xalloc.h"
#include "db/db.h"

#define QUEUE_RETRY_BASE_MS 1000L
#define QUEUE_RETRY_CAP_MS  (3600 * 1000L)

/* RFC 3339 UTC with milliseconds */
#define TS(col)                                \
	"to_char(" col " AT TIME ZONE 'UTC', " \
	"'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

void
queue_batch_release(struct queue_batch *b)
{
	if (b == NULL)
		return;
	for (int i = 0; i < b->n; i++)
		free(b->v[i].payload);
	free(b->v);
	b->v = NULL;
	b->n = 0;
}

bool
queue_kind_valid(const char *kind)
{
	size_t n;

	if (kind == NULL || kind[0] < 'a' || kind[0] > 'z')
		return false;
	for (n = 1; kind[n] != '\0'; n++)
		if (n > 62 ||
		    !((kind[n] >= 'a' && kind[n] <= 'z') ||
		      (kind[n] >= '0' && kind[n] <= '9') || kind[n] == '_' ||
		      kind[n] == '.' || kind[n] == '-'))
			return false;
	return true;
}

/* "{1,2,3}": an array literal of numbers, for a bigint[]/int[] parameter
 * (numbers only: never text from users). */
static char *
num_array(const long long *ll, const int *in, int n)
{
	struct buf b = BUF_INIT;
	int r = buf_puts(&b, "{");

	for (int i = 0; r == 0 && i < n; i++)
		r = ll != NULL ? buf_printf(&b, "%s%lld", i ? "," : "", ll[i])
			       : buf_printf(&b, "%s%d", i ? "," : "", in[i]);
	if (r == 0)
		r = buf_puts(&b, "}");
	if (r != 0) /* an unbounded buf fails only if memory runs out */
		abort();
	return buf_detach(&b);
}

/* The fence of a batch update: $1 the ids, $2 their attempts, $3 the
 * owner. By id = ANY (the primary key), not a join with unnest(), which a
 * table without statistics plans as a loop over every running job; the
 * state test cannot choose the lease index, which a burst fills with
 * entries of finished jobs (see migration 20261201_110000). */
#define FENCE                                                              \
	"q.id = ANY ($1::bigint[])"                                        \
	" AND q.attempt = ($2::int[])[array_position($1::bigint[], q.id)]" \
	" AND (q.state = 'running') IS TRUE AND q.lease_owner = $3"

/* Run sql with $1 the ids, $2 their attempts (number arrays) and $3 the
 * owner: the fenced batch updates. *count (may be NULL) gets the rows. */
static int
exec_fenced(struct db *db, const char *sql, const long long *ids,
	    const int *attempts, int n, const char *owner, long long *count,
	    struct ops_err *err)
{
	char *ia = num_array(ids, NULL, n), *aa = num_array(NULL, attempts, n);
	const char *p[3] = { ia, aa, owner };
	int r = db_exec(db, sql, 3, p, count, err);

	free(ia);
	free(aa);
	return r;
}

int
queue_enqueue(struct db *db, const char *kind, const char *payload,
	      const char *run_at, int priority, int max_attempts,
	      const char *unique_key, long long *id, struct ops_err *err)
{
	char pri[16], maxa[16];
	const char *p[6] = { kind,   payload ? payload : "{}",
			     run_at, pri,
			     maxa,   unique_key };
	char *v = NULL;
	int r;

	*id = 0;
	snprintf(pri, sizeof(pri), "%d", priority);
	snprintf(maxa, sizeof(maxa), "%d", max_attempts > 0 ? max_attempts : 5);
	r = db_query_value(db,
			   "SELECT apexops.enqueue($1, $2::jsonb,"
			   " $3::timestamptz, $4::int, $5::int, $6)",
			   6, p, &v, err);
	if (r != 0)
		return ops_err_prefix(err, "enqueueing a %s job", kind);
	*id = v != NULL ? strtoll(v, NULL, 10) : 0;
	free(v);
	return 0;
}

int
queue_enqueue_bulk(struct db *db, const char *kind, const char *const *payloads,
		   int n, long long *first_id, struct ops_err *err)
{
	struct buf arr = BUF_INIT;
	const char *p[2];
	char *v = NULL;
	int r = buf_puts(&arr, "{");

	*first_id = 0;
	/* a text[] literal of JSON documents: each element quoted, with "
	 * and \ escaped, so any payload passes through as data */
	for (int i = 0; r == 0 && i < n; i++) {
		r = buf_puts(&arr, i ? ",\"" : "\"");
		for (const char *c = payloads[i]; r == 0 && *c; c++)
			r = (*c == '"' || *c == '\\')
				    ? buf_printf(&arr, "\\%c", *c)
				    : buf_append(&arr, c, 1);
		if (r == 0)
			r = buf_puts(&arr, "\"");
	}
	if (r == 0)
		r = buf_puts(&arr, "}");
	if (r != 0) {
		buf_release(&arr);
		return ops_fail(err, OPS_E_INVALID, false,
				"enqueueing: the payloads are too large");
	}
	p[0] = kind;
	p[1] = buf_str(&arr);
	r = db_query_value(db,
			   "SELECT min(id) FROM apexops.enqueue_bulk($1,"
			   " $2::jsonb[]) AS e(id)",
			   2, p, &v, err);
	buf_release(&arr);
	if (r != 0)
		return ops_err_prefix(err, "enqueueing %d %s jobs", n, kind);
	*first_id = v != NULL ? strtoll(v, NULL, 10) : 0;
	free(v);
	return 0;
}

int
queue_claim(struct db *db, const char *const *kinds, int nkinds, int limit,
	    const char *owner, long lease_s, struct queue_batch *b,
	    struct ops_err *err)
{
	return queue_complete_claim(db, NULL, NULL, 0, kinds, nkinds, limit,
				    owner, lease_s, b, err);
}

/* The claimed jobs of res (id, kind, payload, attempt, max_attempts) into
 * b; frees res. */
static void
batch_from(struct db_res *res, struct queue_batch *b)
{
	b->n = db_res_rows(res);
	b->v = b->n > 0 ? xcalloc((size_t)b->n, sizeof(*b->v)) : NULL;
	for (int i = 0; i < b->n; i++) {
		struct queue_job *j = &b->v[i];

		j->id = db_res_ll(res, i, 0);
		snprintf(j->kind, sizeof(j->kind), "%s", db_res_get(res, i, 1));
		j->payload = xstrdup(db_res_get(res, i, 2));
		j->attempt = (int)db_res_ll(res, i, 3);
		j->max_attempts = (int)db_res_ll(res, i, 4);
	}
	db_res_free(res);
}

/*
 * The claim statement for a shape (how many kinds each pool has), built
 * from the shape alone; the kinds, limits, owner and lease are its
 * parameters: $1 owner, $2 lease, then per pool its limit and its kinds.
 * Each kind is read in the claim index's order (kind, priority DESC,
 * run_at, id) up to its pool's limit by a "kind = $n" of its own, the
 * plan that needs no statistics (a burst into a table never analyzed);
 * a pool of several kinds merges those few rows and keeps its limit.
 * The update finds the batch by id = ANY (the primary key), where a join
 * would scan the whole table once statistics say the batch is large.
 * Its commit does not wait for the WAL flush (set_config, local to the
 * claim's transaction, in a one-time filter): a claim is a lease, not a
 * result. A crash that loses it leaves the job available again, to run
 * again as a lapsed lease would, and the completion that would have
 * recorded the lost claim's run is refused by its fence (the job is no
 * longer 'running'); every completion and failure is durable, and its
 * flush carries the claim's WAL, written before it.
 */
static void
claim_sql(struct buf *q, const int *nkinds, int npools)
{
	int next = 3, r = buf_puts(q, "WITH ");

	for (int p = 0; r == 0 && p < npools; p++) {
		int lim = next++;

		for (int k = 0; r == 0 && k < nkinds[p]; k++)
			r = buf_printf(
				q,
				"a%d_%d AS (SELECT id, priority, run_at"
				" FROM apexops.queue_jobs WHERE kind = $%d"
				" AND state IN ('available', 'failed-retrying')"
				" AND run_at <= now()"
				" AND (SELECT set_config('synchronous_commit',"
				" 'off', true)) = 'off'"
				" ORDER BY priority DESC, run_at, id"
				" LIMIT $%d::int FOR UPDATE SKIP LOCKED), ",
				p, k, next++, lim);
		if (r == 0 && nkinds[p] == 1)
			r = buf_printf(q, "p%d AS (SELECT id FROM a%d_0), ", p,
				       p);
		else if (r == 0) {
			r = buf_printf(q, "p%d AS (SELECT id FROM (", p);
			for (int k = 0; r == 0 && k < nkinds[p]; k++)
				r = buf_printf(q, "%sSELECT * FROM a%d_%d",
					       k ? " UNION ALL " : "", p, k);
			if (r == 0)
				r = buf_printf(q,
					       ") s ORDER BY priority DESC,"
					       " run_at, id LIMIT $%d::int), ",
					       lim);
		}
	}
	if (r == 0)
		r = buf_puts(q, "u AS (UPDATE apexops.queue_jobs q SET state ="
				" 'running', attempt = q.attempt + 1,"
				" lease_owner = $1, lease_expires_at = now() +"
				" $2::int * interval '1 s', started_at = now(),"
				" updated_at = now()"
				" WHERE q.id = ANY (ARRAY(");
	for (int p = 0; r == 0 && p < npools; p++)
		r = buf_printf(q, "%sSELECT id FROM p%d",
			       p ? " UNION ALL " : "", p);
	if (r == 0)
		r = buf_puts(q, ")) RETURNING q.id, q.kind::text AS kind,"
				" q.payload::text AS payload, q.attempt,"
				" q.max_attempts, q.priority, q.run_at)"
				" SELECT id, kind, payload, attempt,"
				" max_attempts FROM u"
				" ORDER BY priority DESC, run_at, id");
	if (r != 0) /* an unbounded buf fails only if memory runs out */
		abort();
}

/* Statement names by shape (db_query_prepared keeps the pointer). */
static char claim_names[QUEUE_POOL_KINDS + 1][QUEUE_POOL_KINDS + 1][48];
static pthread_once_t claim_names_once = PTHREAD_ONCE_INIT;

static void
claim_names_init(void)
{
	for (int i = 0; i <= QUEUE_POOL_KINDS; i++)
		for (int j = 0; j <= QUEUE_POOL_KINDS; j++)
			snprintf(claim_names[i][j], sizeof(claim_names[i][j]),
				 "apexops_queue_claim_%d_%d", i, j);
}

int
queue_claim_pools(struct db *db, const struct queue_pool_claim *pools,
		  int npools, const char *owner, long lease_s,
		  struct queue_batch *b, struct ops_err *err)
{
	struct buf q = BUF_INIT;
	char lim[QUEUE_MAX_POOLS][16], lease[24];
	const char *p[2 + QUEUE_MAX_POOLS * (1 + QUEUE_POOL_KINDS)];
	int nk[QUEUE_MAX_POOLS] = { 0, 0 }, np = 2, r;
	struct db_res *res = NULL;

	b->v = NULL;
	b->n = 0;
	if (npools < 1 || npools > QUEUE_MAX_POOLS)
		return ops_fail(err, OPS_E_INVALID, false,
				"claiming jobs: %d pools (1 to %d)", npools,
				QUEUE_MAX_POOLS);
	snprintf(lease, sizeof(lease), "%ld", lease_s);
	p[0] = owner;
	p[1] = lease;
	for (int i = 0; i < npools; i++) {
		if (pools[i].nkinds < 1 || pools[i].nkinds > QUEUE_POOL_KINDS)
			return ops_fail(err, OPS_E_INVALID, false,
					"claiming jobs: %d kinds in a pool (1 "
					"to %d)",
					pools[i].nkinds, QUEUE_POOL_KINDS);
		nk[i] = pools[i].nkinds;
		snprintf(lim[i], sizeof(lim[i]), "%d",
			 pools[i].limit > 0 ? pools[i].limit : 0);
		p[np++] = lim[i];
		for (int k = 0; k < nk[i]; k++)
			p[np++] = pools[i].kinds[k];
	}
	claim_sql(&q, nk, npools);
	pthread_once(&claim_names_once, claim_names_init);
	r = db_query_prepared(db, claim_names[nk[0]][nk[1]], buf_str(&q), np, p,
			      &res, err);
	buf_release(&q);
	if (r != 0)
		return ops_err_prefix(err, "claiming jobs");
	batch_from(res, b);
	return 0;
}

int
queue_complete_claim(struct db *db, const long long *done_ids,
		     const int *done_attempts, int ndone,
		     const char *const *kinds, int nkinds, int limit,
		     const char *owner, long lease_s, struct queue_batch *b,
		     struct ops_err *err)
{
	struct buf kb = BUF_INIT;
	char lim[16], lease[24], *ia = NULL, *aa = NULL;
	const char *p[6];
	struct db_res *res = NULL;
	int r;

	if (ndone == 0 && nkinds >= 1 && nkinds <= QUEUE_POOL_KINDS) {
		/* a claim alone, of named kinds (the worker's): one
		 * statement, prepared once per connection */
		struct queue_pool_claim pc = { kinds, nkinds, limit };

		return queue_claim_pools(db, &pc, 1, owner, lease_s, b, err);
	}
	b->v = NULL;
	b->n = 0;
	r = buf_puts(&kb, "{");
	for (int i = 0; r == 0 && i < nkinds; i++) /* kinds: [a-z0-9_.-] */
		r = buf_printf(&kb, "%s\"%s\"", i ? "," : "", kinds[i]);
	if (r == 0)
		r = buf_puts(&kb, "}");
	if (r != 0)
		abort();
	if (ndone > 0) {
		ia = num_array(done_ids, NULL, ndone);
		aa = num_array(NULL, done_attempts, ndone);
	}
	snprintf(lim, sizeof(lim), "%d", limit);
	snprintf(lease, sizeof(lease), "%ld", lease_s);
	p[0] = owner;
	p[1] = nkinds > 0 ? buf_str(&kb) : NULL;
	p[2] = lim;
	p[3] = lease;
	p[4] = ia;
	p[5] = aa;
	/* apexops.queue_claim (migration 20261201_110000): completes the
	 * done jobs, then claims (any kinds, or named), in one round trip */
	r = db_query(db,
		     "SELECT j_id, j_kind, j_payload, j_attempt,"
		     " j_max_attempts FROM apexops.queue_claim($1,"
		     " $2::text[], $3::int, $4::int, $5::bigint[],"
		     " $6::int[])",
		     6, p, &res, err);
	buf_release(&kb);
	free(ia);
	free(aa);
	if (r != 0)
		return ndone > 0 ? ops_err_prefix(err,
						  "completing %d job(s) and "
						  "claiming jobs",
						  ndone)
				 : ops_err_prefix(err, "claiming jobs");
	batch_from(res, b);
	return 0;
}

int
queue_complete(struct db *db, const long long *ids, const int *attempts, int n,
	       const char *owner, int *done, struct ops_err *err)
{
	long long count = 0;
	int r;

	if (done != NULL)
		*done = 0;
	if (n <= 0)
		return 0;
	r = exec_fenced(db,
			"UPDATE apexops.queue_jobs q SET state = 'succeeded',"
			" finished_at = now(), updated_at = now(),"
			" lease_owner = NULL, lease_expires_at = NULL"
			" WHERE " FENCE,
			ids, attempts, n, owner, &count, err);
	if (r != 0)
		return ops_err_prefix(err, "completing %d job(s)", n);
	if (done != NULL)
		*done = (int)count;
	return 0;
}

int
queue_fail(struct db *db, long long id, int attempt, const char *owner,
	   const char *error, bool permanent, long retry_delay_ms,
	   char *state_out, struct ops_err *err)
{
	char ids[24], att[16], delay[24];
	const char *p[6] = { ids,
			     att,
			     owner,
			     error ? error : "failed",
			     permanent ? "t" : "f",
			     delay };
	char *v = NULL;
	int r;

	if (state_out != NULL)
		state_out[0] = '\0';
	snprintf(ids, sizeof(ids), "%lld", id);
	snprintf(att, sizeof(att), "%d", attempt);
	snprintf(delay, sizeof(delay), "%ld",
		 retry_delay_ms > 0 ? retry_delay_ms : 0);
	r = db_query_value(
		db,
		"UPDATE apexops.queue_jobs q SET"
		" state = CASE WHEN NOT $5::bool AND q.attempt < q.max_attempts"
		"  THEN 'failed-retrying' ELSE 'dead' END,"
		/* a dead job keeps the run_at of its last attempt */
		" run_at = CASE WHEN NOT $5::bool AND q.attempt < "
		"q.max_attempts"
		"  THEN now() + $6::bigint * interval '1 ms' ELSE q.run_at END,"
		" last_error = $4::text, errors = q.errors || "
		"jsonb_build_array("
		"  jsonb_build_object('attempt', q.attempt, 'error', $4::text,"
		"  'at', " TS(
			"now()") ", 'permanent', $5::bool)),"
				 " finished_at = CASE WHEN NOT $5::bool AND"
				 "  q.attempt < q.max_attempts THEN NULL ELSE "
				 "now() END,"
				 " lease_owner = NULL, lease_expires_at = NULL,"
				 " updated_at = now()"
				 " WHERE q.id = $1::bigint AND q.attempt = "
				 "$2::int"
				 " AND q.state = 'running' AND q.lease_owner = "
				 "$3"
				 " RETURNING q.state",
		6, p, &v, err);
	if (r != 0)
		return ops_err_prefix(err, "recording the failure of job %lld",
				      id);
	if (v == NULL)
		return ops_fail(err, OPS_E_CONFLICT, false,
				"job %lld attempt %d is no longer held by %s",
				id, attempt, owner);
	if (state_out != NULL)
		snprintf(state_out, 16, "%s", v);
	free(v);
	return 0;
}

long
queue_retry_delay_ms(int attempt)
{
	return ops_backoff_full_jitter(QUEUE_RETRY_BASE_MS, QUEUE_RETRY_CAP_MS,
				       attempt > 1 ? attempt - 1 : 0);
}

int
queue_renew(struct db *db, const long long *ids, int n, const char *owner,
	    long lease_s, int *renewed, struct ops_err *err)
{
	char *ia, lease[24];
	const char *p[3];
	long long count = 0;
	int r;

	if (renewed != NULL)
		*renewed = 0;
	if (n <= 0)
		return 0;
	ia = num_array(ids, NULL, n);
	snprintf(lease, sizeof(lease), "%ld", lease_s);
	p[0] = ia;
	p[1] = owner;
	p[2] = lease;
	r = db_exec(db,
		    "UPDATE apexops.queue_jobs SET lease_expires_at = now() +"
		    " $3::int * interval '1 s', updated_at = now()"
		    " WHERE id = ANY ($1::bigint[])"
		    " AND (state = 'running') IS TRUE AND lease_owner = $2",
		    3, p, &count, err);
	free(ia);
	if (r != 0)
		return ops_err_prefix(err, "renewing leases");
	if (renewed != NULL)
		*renewed = (int)count;
	return 0;
}

int
queue_release(struct db *db, const long long *ids, const int *attempts, int n,
	      const char *owner, struct ops_err *err)
{
	int r;

	if (n <= 0)
		return 0;
	r = exec_fenced(db,
			"UPDATE apexops.queue_jobs q SET state = 'available',"
			" attempt = q.attempt - 1, run_at = now(),"
			" lease_owner = NULL, lease_expires_at = NULL,"
			" updated_at = now()"
			" WHERE " FENCE,
			ids, attempts, n, owner, NULL, err);
	if (r != 0)
		return ops_err_prefix(err, "releasing %d job(s)", n);
	return 0;
}

int
queue_reap(struct db *db, int *n, struct ops_err *err)
{
	long long count = 0;
	int r;

	*n = 0;
	r = db_exec(
		db,
		"UPDATE apexops.queue_jobs q SET"
		" state = CASE WHEN q.attempt < q.max_attempts"
		"  THEN 'failed-retrying' ELSE 'dead' END,"
		" run_at = CASE WHEN q.attempt < q.max_attempts THEN now()"
		"  ELSE q.run_at END,"
		" last_error = 'the lease of ' || q.lease_owner || ' lapsed"
		" (the worker died or lost the database)',"
		" errors = q.errors || jsonb_build_array(jsonb_build_object("
		"  'attempt', q.attempt, 'error', 'the lease of ' ||"
		"  q.lease_owner || ' lapsed', 'at', " TS(
			"now()") ")),"
				 " finished_at = CASE WHEN q.attempt < "
				 "q.max_attempts THEN NULL"
				 "  ELSE now() END,"
				 " lease_owner = NULL, lease_expires_at = NULL,"
				 " updated_at = now()"
				 " WHERE q.id IN (SELECT id FROM "
				 "apexops.queue_jobs"
				 "  WHERE state = 'running' AND "
				 "lease_expires_at < now()"
				 "  FOR UPDATE SKIP LOCKED)",
		0, NULL, &count, err);
	if (r != 0)
		return ops_err_prefix(err, "reaping lapsed leases");
	*n = (int)count;
	return 0;
}

/* Run sql with the job id as $1; *n gets the rows changed. */
static int
exec_on_id(struct db *db, const char *sql, long long id, int *n,
	   const char *what, struct ops_err *err)
{
	char ids[24];
	const char *p[1] = { ids };
	long long count = 0;
	int r;

	*n = 0;
	snprintf(ids, sizeof(ids), "%lld", id);
	r = db_exec(db, sql, 1, p, &count, err);
	if (r != 0)
		return ops_err_prefix(err, "%s job %lld", what, id);
	*n = (int)count;
	return 0;
}

int
queue_retry(struct db *db, long long id, int *n, struct ops_err *err)
{
	return exec_on_id(db,
			  "UPDATE apexops.queue_jobs SET state = 'available',"
			  " run_at = now(), attempt = 0, finished_at = NULL,"
			  " updated_at = now()"
			  " WHERE CASE WHEN $1::bigint = 0 THEN state = 'dead'"
			  "  ELSE id = $1::bigint AND state IN ('dead',"
			  "  'cancelled', 'failed-retrying') END",
			  id, n, "retrying", err);
}

int
queue_cancel(struct db *db, long long id, int *n, struct ops_err *err)
{
	return exec_on_id(db,
			  "UPDATE apexops.queue_jobs SET state = 'cancelled',"
			  " finished_at = now(), updated_at = now()"
			  " WHERE id = $1::bigint"
			  " AND state IN ('available', 'failed-retrying')",
			  id, n, "cancelling", err);
}

int
queue_prune(struct db *db, long keep_days, long dead_days, long long *n,
	    struct ops_err *err)
{
	char kd[24], dd[24];
	const char *p[2] = { kd, dd };
	int r;

	*n = 0;
	snprintf(kd, sizeof(kd), "%ld", keep_days);
	snprintf(dd, sizeof(dd), "%ld", dead_days);
	r = db_exec(db,
		    "DELETE FROM apexops.queue_jobs WHERE"
		    " (state IN ('succeeded', 'cancelled') AND finished_at <"
		    "  now() - $1::int * interval '1 day')"
		    " OR (state = 'dead' AND finished_at <"
		    "  now() - $2::int * interval '1 day')",
		    2, p, n, err);
	if (r != 0)
		return ops_err_prefix(err, "pruning finished jobs");
	return 0;
}

int
queue_stats_json(struct db *db, char **json, struct ops_err *err)
{
	int r;

	*json = NULL;
	r = db_query_value(
		db,
		"SELECT COALESCE(jsonb_object_agg(kind, states), '{}')::text"
		" FROM (SELECT kind, jsonb_object_agg(state, "
		"jsonb_build_object("
		"  'count', n, 'oldest_age_s', age)) AS states"
		"  FROM (SELECT kind, state, count(*) AS n,"
		"   round(extract(epoch FROM now() - min(CASE WHEN state IN"
		"    ('available', 'failed-retrying') THEN run_at ELSE"
		"    created_at END)))::bigint AS age"
		"   FROM apexops.queue_jobs GROUP BY kind, state) s"
		"  GROUP BY kind) k",
		0, NULL, json, err);
	if (r != 0)
		return ops_err_prefix(err, "reading queue statistics");
	return 0;
}

/* clang-format off: one SQL expression, kept readable */
#define JOB_JSON                                                                                                             \
	"jsonb_build_object('id', id, 'kind', kind, 'state', state,"                                                         \
	" 'priority', priority, 'attempt', attempt,"                                                                         \
	" 'max_attempts', max_attempts,"                                                                                     \
	" 'run_at', " TS(                                                                                                    \
		"run_at") ","                                                                                                \
			  " 'created_at', " TS(                                                                              \
				  "created_at") ","                                                                          \
						" 'started_at', " TS(                                                        \
							"started_at") ","                                                    \
								      " '"                                                   \
								      "finish"                                               \
								      "ed_at'"                                               \
								      ", " TS("finished_at") ","                             \
											     " 'lease_owner', lease_owner,"  \
											     " 'lease_expires_at', " TS(     \
												     "lease_expires_at") "," \
															 " 'unique_key', unique_key, 'last_error', last_error)"
/* clang-format on */

int
queue_list_json(struct db *db, const char *state, const char *kind, long limit,
		char **json, struct ops_err *err)
{
	char lim[24];
	const char *p[3] = { state, kind, lim };
	int r;

	*json = NULL;
	snprintf(lim, sizeof(lim), "%ld", limit);
	r = db_query_value(db,
			   "SELECT COALESCE(jsonb_agg(j ORDER BY id DESC),"
			   " '[]')::text FROM (SELECT id, " JOB_JSON " AS j"
			   " FROM apexops.queue_jobs"
			   " WHERE ($1::text IS NULL OR state = $1)"
			   " AND ($2::text IS NULL OR kind = $2)"
			   " ORDER BY id DESC LIMIT $3::int) s",
			   3, p, json, err);
	if (r != 0)
		return ops_err_prefix(err, "listing jobs");
	return 0;
}

int
queue_show_json(struct db *db, long long id, char **json, struct ops_err *err)
{
	char ids[24];
	const char *p[1] = { ids };
	int r;

	*json = NULL;
	snprintf(ids, sizeof(ids), "%lld", id);
	r = db_query_value(db,
			   "SELECT (" JOB_JSON " || jsonb_build_object("
			   "'payload', payload, 'errors', errors))::text"
			   " FROM apexops.queue_jobs WHERE id = $1::bigint",
			   1, p, json, err);
	if (r != 0)
		return ops_err_prefix(err, "reading job %lld", id);
	if (*json == NULL)
		return ops_fail(err, OPS_E_NOTFOUND, false, "no job %lld", id);
	return 0;
}

int
queue_status_report(struct db *db, struct buf *out, struct ops_err *err)
{
	struct db_res *res = NULL;
	const char *p[1];
	char stale[16];
	int r;

	r = db_query(db,
		     "SELECT count(*) FILTER (WHERE state IN ('available',"
		     "  'failed-retrying') AND run_at <= now()),"
		     " count(*) FILTER (WHERE state = 'running'),"
		     " count(*) FILTER (WHERE state = 'failed-retrying'),"
		     " count(*) FILTER (WHERE state = 'dead'),"
		     " COALESCE(round(extract(epoch FROM now() - min(run_at)"
		     "  FILTER (WHERE state IN ('available', 'failed-retrying')"
		     "  AND run_at <= now())))::bigint, 0)"
		     " FROM apexops.queue_jobs",
		     0, NULL, &res, err);
	if (r != 0)
		return r;
	buf_addf(out, "  depth        %lld due, %lld running, %lld retrying\n",
		 db_res_ll(res, 0, 0), db_res_ll(res, 0, 1),
		 db_res_ll(res, 0, 2));
	buf_addf(out, "  dead         %lld%s\n", db_res_ll(res, 0, 3),
		 db_res_ll(res, 0, 3) > 0 ? " ('apexops queue list --state "
					    "dead')"
					  : "");
	buf_addf(out, "  oldest due   %lld s\n", db_res_ll(res, 0, 4));
	db_res_free(res);
	res = NULL;
	snprintf(stale, sizeof(stale), "%d", QUEUE_STALE_S);
	p[0] = stale;
	r = db_query(db,
		     "SELECT kind, count(*),"
		     " round(extract(epoch FROM now() - min(run_at)))::bigint"
		     " FROM apexops.queue_jobs"
		     " WHERE state IN ('available', 'failed-retrying')"
		     "  AND run_at <= now() - make_interval(secs => $1::int)"
		     " GROUP BY kind ORDER BY min(run_at), kind LIMIT 5",
		     1, p, &res, err);
	if (r != 0)
		return r;
	for (int i = 0; i < db_res_rows(res); i++)
		buf_addf(out,
			 "  waiting      %s: %lld due over %d s, the oldest "
			 "%lld s (is a worker for it running?)\n",
			 db_res_get(res, i, 0), db_res_ll(res, i, 1),
			 QUEUE_STALE_S, db_res_ll(res, i, 2));
	db_res_free(res);
	return 0;
}
