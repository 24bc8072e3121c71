/*
 * Detach and drop one expired range partition without queueing live
 * inserts behind an exclusive lock on the parent. See purge_partition.h.
 */
#include "jobs/purge_partition.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/stop.h"
#include "db/db.h"

#define BACKOFF_BASE_MS 20
#define BACKOFF_CAP_MS	1000

/* The pair as the catalog knows it, names quoted by format('%I.%I'). */
struct target {
	char parent[160];
	char child[160];
	char relid[16];	  /* the child's oid */
	char prelid[16];  /* the parent's */
	bool attached;	  /* child is (still) in pg_inherits under parent */
	bool pending;	  /* detach pending */
	bool has_default; /* the parent has a default partition */
};

static double
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static bool
is_lock_conflict(const struct ops_err *e)
{
	/* lock_not_available (lock_timeout) and deadlock_detected */
	return strcmp(e->sqlstate, "55P03") == 0 ||
	       strcmp(e->sqlstate, "40P01") == 0;
}

static void
copy_cell(char *dst, size_t n, const struct db_res *res, int col)
{
	const char *v = db_res_get(res, 0, col);

	snprintf(dst, n, "%s", v != NULL ? v : "");
}

/*
 * Look the pair up. Once the caller has a target, later calls only refresh
 * attached/pending/has_default, keeping the quoted names (the child has
 * left pg_inherits once it is detached).
 */
static int
resolve(struct db *db, const char *parent, const char *child, struct target *t,
	struct ops_err *err)
{
	static const char sql[] =
		"SELECT format('%I.%I', pn.nspname, p.relname),"
		" format('%I.%I', cn.nspname, c.relname),"
		" i.inhrelid IS NOT NULL, COALESCE(i.inhdetachpending, false),"
		" COALESCE(pt.partdefid <> 0, false), c.oid::text, p.oid::text"
		" FROM pg_class p JOIN pg_namespace pn ON pn.oid = "
		"p.relnamespace"
		" CROSS JOIN pg_class c"
		" JOIN pg_namespace cn ON cn.oid = c.relnamespace"
		" LEFT JOIN pg_partitioned_table pt ON pt.partrelid = p.oid"
		" LEFT JOIN pg_inherits i ON i.inhparent = p.oid"
		"  AND i.inhrelid = c.oid"
		" WHERE p.oid = to_regclass($1) AND c.oid = to_regclass($2)";
	const char *params[2] = { parent, child };
	struct db_res *res = NULL;
	int r;

	r = db_query(db, sql, 2, params, &res, err);
	if (r != 0 && strcmp(err->sqlstate, "42602") == 0)
		return ops_fail(err, OPS_E_INVALID, false,
				"'%s' or '%s' is not a table name", parent,
				child);
	if (r != 0)
		return r;
	if (db_res_rows(res) == 0) {
		db_res_free(res);
		return ops_fail(err, OPS_E_NOTFOUND, false,
				"no table '%s' or no table '%s'", parent,
				child);
	}
	copy_cell(t->parent, sizeof(t->parent), res, 0);
	copy_cell(t->child, sizeof(t->child), res, 1);
	t->attached = strcmp(db_res_get(res, 0, 2), "t") == 0;
	t->pending = strcmp(db_res_get(res, 0, 3), "t") == 0;
	t->has_default = strcmp(db_res_get(res, 0, 4), "t") == 0;
	copy_cell(t->relid, sizeof(t->relid), res, 5);
	copy_cell(t->prelid, sizeof(t->prelid), res, 6);
	db_res_free(res);
	return 0;
}

/* Sleep before attempt n (n >= 1) unless stopped. */
static int
backoff(int n, const volatile sig_atomic_t *stop, struct ops_err *err)
{
	long ms = ops_backoff_equal_jitter(BACKOFF_BASE_MS, BACKOFF_CAP_MS,
					   n - 1);

	if (ops_sleep_ms(ms, stop) != 0)
		return ops_fail(err, OPS_E_STOPPED, true,
				"stopped before the partition was dropped");
	return 0;
}

static int
too_many(const char *what, const struct target *t, struct ops_err *err)
{
	return ops_fail(err, OPS_E_CONFLICT, true,
			"%s %s: a lock stayed out of reach after %d attempts",
			what, t->child, PURGE_PARTITION_MAX_ATTEMPTS);
}

static const char record_sql[] =
	"INSERT INTO apexops.purge_detached"
	" (relid, child, parent_relid, parent, run_id)"
	" VALUES ($1::oid, $2, $3::oid, $4, NULLIF($5::bigint, 0))"
	" ON CONFLICT (relid) DO UPDATE SET child = EXCLUDED.child,"
	" parent_relid = EXCLUDED.parent_relid, parent = EXCLUDED.parent,"
	" run_id = EXCLUDED.run_id, detached_at = now()";

/* Record t as detached (inside the caller's transaction, or on its own). */
static int
record(struct db *db, const struct target *t, long long run_id,
       struct ops_err *err)
{
	char rid[24];
	const char *params[5] = { t->relid, t->child, t->prelid, t->parent,
				  rid };

	snprintf(rid, sizeof(rid), "%lld", run_id > 0 ? run_id : 0);
	return db_exec(db, record_sql, 5, params, NULL, err);
}

static int
unrecord(struct db *db, const char *relid, struct ops_err *err)
{
	const char *params[1] = { relid };

	return db_exec(db,
		       "DELETE FROM apexops.purge_detached WHERE relid = "
		       "$1::oid",
		       1, params, NULL, err);
}

/*
 * Record t, then run sql (NULL: none) in the same transaction, whose
 * commit does not wait for the WAL flush.
 *   - A plain DETACH (sql): it holds an ACCESS EXCLUSIVE lock on the
 *     parent, which every insert queues behind, until its commit returns,
 *     so the lock is held for the catalog work alone; the record commits
 *     with the detach, or neither does. A crash that loses both leaves the
 *     partition attached, for the next run; the DROP that follows is
 *     durable, and its flush carries this WAL, written before it.
 *   - Before a DETACH ... CONCURRENTLY or FINALIZE (sql NULL), which cannot
 *     run inside a transaction: the record commits first. The detach's own
 *     commit comes later in the WAL, so any detach that survives a crash
 *     has its record; a record that survives without its detach is
 *     forgotten as stale.
 */
static int
record_with(struct db *db, const struct target *t, long long run_id,
	    const char *sql, struct ops_err *err)
{
	int r = db_begin(db, err);

	if (r == 0)
		r = db_exec(db, "SET LOCAL synchronous_commit = off", 0, NULL,
			    NULL, err);
	if (r == 0)
		r = record(db, t, run_id, err);
	if (r == 0 && sql != NULL)
		r = db_exec(db, sql, 0, NULL, NULL, err);
	if (r == 0)
		r = db_commit(db, err);
	if (r != 0)
		db_rollback(db);
	return r;
}

/*
 * Detach: CONCURRENTLY where allowed, FINALIZE when pending, else plain;
 * every attempt under the session's short lock_timeout, re-reading the
 * catalog after a failure (a timed-out CONCURRENTLY leaves it pending).
 */
static int
detach(struct db *db, const char *parent, const char *child, struct target *t,
       long long run_id, const volatile sig_atomic_t *stop,
       struct purge_partition_stats *st, struct ops_err *err)
{
	char sql[512];
	int r = 0;

	for (int n = 0;; n++) {
		const char *how;

		if (n > 0) {
			r = backoff(n, stop, err);
			if (r == 0)
				r = resolve(db, parent, child, t, err);
			if (r != 0)
				return r;
		}
		if (!t->attached)
			return 0; /* someone finished it */
		if (n >= PURGE_PARTITION_MAX_ATTEMPTS)
			return too_many("detaching", t, err);
		if (ops_stopped(stop))
			return ops_fail(err, OPS_E_STOPPED, true,
					"stopped before the partition was "
					"detached");
		how = t->pending       ? " FINALIZE"
		      : t->has_default ? ""
				       : " CONCURRENTLY";
		/* names: the catalog's, quoted by format('%I') */
		snprintf(sql, sizeof(sql),
			 "ALTER TABLE %s DETACH PARTITION %s%s", t->parent,
			 t->child, how);
		st->attempts++;
		if (t->has_default && !t->pending) {
			r = record_with(db, t, run_id, sql, err);
		} else {
			r = record_with(db, t, run_id, NULL, err);
			if (r == 0)
				r = db_exec(db, sql, 0, NULL, NULL, err);
		}
		if (r == 0) {
			if (t->pending)
				st->finalized = true;
			else if (!t->has_default)
				st->concurrent = true;
			t->attached = false;
			return 0;
		}
		if (is_lock_conflict(err)) {
			st->lock_retries++;
			log_info("purge partition detach waited too long for "
				 "a lock, retrying partition=%s attempt=%d",
				 log_q(t->child), n + 1);
			ops_err_clear(err);
			continue;
		}
		/*
		 * A default partition added, or another session's detach
		 * pending, since we looked: the catalog says what to try
		 * next. Anything else is a real failure.
		 */
		{
			struct target again = *t;
			struct ops_err e2 = OPS_ERR_INIT;

			if (resolve(db, parent, child, &again, &e2) == 0 &&
			    (again.has_default != t->has_default ||
			     again.pending != t->pending || !again.attached)) {
				*t = again;
				ops_err_clear(err);
				continue;
			}
		}
		return r;
	}
}

/* Count and drop the detached table in one short transaction. */
static int
drop_detached(struct db *db, const struct target *t,
	      const volatile sig_atomic_t *stop,
	      struct purge_partition_stats *st, struct ops_err *err)
{
	char lock_sql[256], count_sql[256], drop_sql[256];
	int r = 0;

	/* names: the catalog's, quoted by format('%I') */
	snprintf(lock_sql, sizeof(lock_sql),
		 "LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", t->child);
	snprintf(count_sql, sizeof(count_sql), "SELECT count(*) FROM %s",
		 t->child);
	snprintf(drop_sql, sizeof(drop_sql), "DROP TABLE %s", t->child);
	for (int n = 0;; n++) {
		char *v = NULL;

		if (n > 0) {
			r = backoff(n, stop, err);
			if (r != 0)
				return r;
		}
		if (n >= PURGE_PARTITION_MAX_ATTEMPTS)
			return too_many("dropping", t, err);
		st->attempts++;
		r = db_begin(db, err);
		/* durable whatever the role's default: a lost DROP would
		 * leave a detached table of expired rows that no run finds */
		if (r == 0)
			r = db_exec(db, "SET LOCAL synchronous_commit = on", 0,
				    NULL, NULL, err);
		if (r == 0)
			r = db_exec(db, lock_sql, 0, NULL, NULL, err);
		if (r == 0)
			r = db_query_value(db, count_sql, 0, NULL, &v, err);
		if (r == 0) {
			st->rows = v != NULL ? strtoll(v, NULL, 10) : 0;
			r = db_exec(db, drop_sql, 0, NULL, NULL, err);
		}
		/* the record goes with the table, or neither does */
		if (r == 0)
			r = unrecord(db, t->relid, err);
		free(v);
		if (r == 0)
			r = db_commit(db, err);
		if (r == 0)
			return 0;
		db_rollback(db);
		if (!is_lock_conflict(err))
			return r;
		st->lock_retries++;
		log_info("purge partition drop waited too long for a lock, "
			 "retrying partition=%s attempt=%d",
			 log_q(t->child), n + 1);
		ops_err_clear(err);
	}
}

/* Set the short lock_timeout for the steps; *saved for restore_lt(). */
static int
short_lt(struct db *db, long lock_timeout_ms, char **saved, struct ops_err *err)
{
	char lt[32];

	snprintf(lt, sizeof(lt), "%ldms",
		 lock_timeout_ms > 0 ? lock_timeout_ms
				     : (long)PURGE_PARTITION_LOCK_TIMEOUT_MS);
	return db_setting_swap(db, "lock_timeout", lt, saved, err);
}

/* Restore it, keeping the first failure (a failed restore alone is one). */
static int
restore_lt(struct db *db, char *saved, int r, struct ops_err *err)
{
	struct ops_err e2 = OPS_ERR_INIT;

	if (db_setting_restore(db, "lock_timeout", saved, &e2) != 0 && r == 0) {
		*err = e2;
		return e2.code;
	}
	return r;
}

static int
check_args(struct db *db, const char *a, const char *b, const char *what,
	   struct ops_err *err)
{
	if (a == NULL || b == NULL)
		return ops_fail(err, OPS_E_INVALID, false,
				"%s needs a parent and a partition name", what);
	if (db_in_tx(db))
		return ops_fail(err, OPS_E_INVALID, false,
				"cannot drop partition '%s' inside a "
				"transaction",
				b);
	return 0;
}

/* Resolve and detach (lock_timeout already short); fills t and st. */
static int
detach_step(struct db *db, const char *parent, const char *child,
	    long long run_id, const volatile sig_atomic_t *stop,
	    struct target *t, struct purge_partition_stats *st,
	    struct ops_err *err)
{
	double t0;
	int r;

	r = resolve(db, parent, child, t, err);
	if (r != 0)
		return r;
	if (!t->attached)
		return ops_fail(err, OPS_E_NOTFOUND, false,
				"'%s' is not a partition of '%s'", child,
				parent);
	snprintf(st->parent, sizeof(st->parent), "%s", t->parent);
	snprintf(st->child, sizeof(st->child), "%s", t->child);
	snprintf(st->relid, sizeof(st->relid), "%s", t->relid);
	if (ops_stopped(stop))
		return ops_fail(err, OPS_E_STOPPED, true,
				"stopped before the partition was detached");
	t0 = ms_now();
	r = detach(db, parent, child, t, run_id, stop, st, err);
	st->detach_ms = ms_now() - t0;
	if (r != 0) {
		struct target now = *t;
		struct ops_err e2 = OPS_ERR_INIT;

		/* still attached and not pending: no detach to remember */
		if (resolve(db, parent, child, &now, &e2) == 0 &&
		    now.attached && !now.pending &&
		    unrecord(db, t->relid, &e2) != 0)
			log_warn("cannot forget the record of a partition "
				 "that stayed attached partition=%s error=%s",
				 log_q(t->child), log_q(e2.msg));
		return r;
	}
	st->detached = true;
	log_info("purge partition detached partition=%s how=%s ms=%.1f",
		 log_q(t->child),
		 st->finalized	  ? "finalize"
		 : st->concurrent ? "concurrently"
				  : "plain",
		 st->detach_ms);
	return 0;
}

static int
drop_step(struct db *db, const struct target *t,
	  const volatile sig_atomic_t *stop, struct purge_partition_stats *st,
	  struct ops_err *err)
{
	double t0 = ms_now();
	int r = drop_detached(db, t, stop, st, err);

	st->drop_ms = ms_now() - t0;
	if (r == 0)
		st->dropped = true;
	return r;
}

/* Both public entry points: detach (recorded with run_id), then, when
 * drop, drop; the short lock_timeout around them. */
static int
detach_and_maybe_drop(struct db *db, const char *parent, const char *child,
		      long lock_timeout_ms, long long run_id, bool drop,
		      const volatile sig_atomic_t *stop,
		      struct purge_partition_stats *st, struct ops_err *err)
{
	struct purge_partition_stats local;
	struct ops_err lerr = OPS_ERR_INIT;
	struct target t;
	char *saved = NULL;
	int r;

	if (st == NULL)
		st = &local;
	if (err == NULL)
		err = &lerr; /* the retry logic reads the SQLSTATE */
	memset(st, 0, sizeof(*st));
	memset(&t, 0, sizeof(t));
	r = check_args(db, parent, child,
		       drop ? "dropping a partition" : "detaching a partition",
		       err);
	if (r != 0)
		return r;
	r = short_lt(db, lock_timeout_ms, &saved, err);
	if (r != 0) {
		free(saved);
		return r;
	}
	r = detach_step(db, parent, child, run_id, stop, &t, st, err);
	if (r == 0 && drop) {
		r = drop_step(db, &t, stop, st, err);
		if (r != 0)
			log_warn("purge partition detached but not dropped; "
				 "it stays recorded in apexops.purge_detached "
				 "(a purge of its parent drops it) table=%s",
				 log_q(t.child));
	}
	r = restore_lt(db, saved, r, err);
	if (r != 0 && r != OPS_E_STOPPED && t.child[0] != '\0')
		ops_err_prefix(err, "partition %s", t.child);
	return r;
}

int
purge_partition_drop(struct db *db, const char *parent, const char *child,
		     long lock_timeout_ms, const volatile sig_atomic_t *stop,
		     struct purge_partition_stats *st, struct ops_err *err)
{
	return detach_and_maybe_drop(db, parent, child, lock_timeout_ms, 0,
				     true, stop, st, err);
}

int
purge_partition_detach(struct db *db, const char *parent, const char *child,
		       long lock_timeout_ms, long long run_id,
		       const volatile sig_atomic_t *stop,
		       struct purge_partition_stats *st, struct ops_err *err)
{
	return detach_and_maybe_drop(db, parent, child, lock_timeout_ms, run_id,
				     false, stop, st, err);
}

/* relid must be an oid's text: digits only, 1..4294967295. */
static bool
oid_text_ok(const char *s)
{
	size_t n = 0;

	if (s == NULL || s[0] == '\0' || s[0] == '0')
		return false;
	for (; s[n] != '\0'; n++)
		if (s[n] < '0' || s[n] > '9' || n >= 10)
			return false;
	return n < 10 || strcmp(s, "4294967295") <= 0;
}

int
purge_partition_drop_detached(struct db *db, const char *relid,
			      long lock_timeout_ms,
			      const volatile sig_atomic_t *stop,
			      struct purge_partition_stats *st,
			      struct ops_err *err)
{
	/* the catalog's name for the oid, when it still is the recorded
	 * table: a plain table or a partitioned one, not a partition */
	static const char sql[] =
		"SELECT d.child, d.parent,"
		" COALESCE(c.relkind IN ('r', 'p') AND quote_ident(n.nspname)"
		"  || '.' || quote_ident(c.relname) = d.child, false),"
		" EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = "
		"d.relid),"
		/* as format('%I.%I'), which refuses the NULLs of no table */
		" quote_ident(n.nspname) || '.' || quote_ident(c.relname)"
		" FROM apexops.purge_detached d"
		" LEFT JOIN pg_class c ON c.oid = d.relid"
		" LEFT JOIN pg_namespace n ON n.oid = c.relnamespace"
		" WHERE d.relid = $1::oid";
	struct purge_partition_stats local;
	struct ops_err lerr = OPS_ERR_INIT;
	const char *params[1] = { relid };
	struct db_res *res = NULL;
	struct target t;
	bool present, attached;
	char *saved = NULL;
	int r;

	if (st == NULL)
		st = &local;
	if (err == NULL)
		err = &lerr;
	memset(st, 0, sizeof(*st));
	memset(&t, 0, sizeof(t));
	if (!oid_text_ok(relid))
		return ops_fail(err, OPS_E_INVALID, false,
				"invalid table oid '%s': expected a whole "
				"number from 1 to 4294967295",
				relid != NULL ? relid : "(null)");
	r = check_args(db, relid, relid, "dropping a detached partition", err);
	if (r != 0)
		return r;
	r = db_query(db, sql, 1, params, &res, err);
	if (r != 0)
		return r;
	if (db_res_rows(res) == 0) {
		db_res_free(res);
		return ops_fail(err, OPS_E_NOTFOUND, false,
				"no detached partition is recorded as oid %s",
				relid);
	}
	copy_cell(st->child, sizeof(st->child), res, 0);
	copy_cell(st->parent, sizeof(st->parent), res, 1);
	present = strcmp(db_res_get(res, 0, 2), "t") == 0;
	attached = strcmp(db_res_get(res, 0, 3), "t") == 0;
	copy_cell(t.child, sizeof(t.child), res, 4);
	db_res_free(res);
	snprintf(st->relid, sizeof(st->relid), "%s", relid);
	snprintf(t.relid, sizeof(t.relid), "%s", relid);
	if (!present || attached) {
		r = unrecord(db, relid, err);
		if (r != 0)
			return r;
		log_info("purge forgot a detached partition's record "
			 "table=%s reason=%s",
			 log_q(st->child),
			 attached ? "a partition again" : "gone");
		if (attached)
			return ops_fail(err, OPS_E_NOTFOUND, false,
					"%s is a partition again: not dropped",
					st->child);
		st->gone = true;
		return 0;
	}
	st->detached = true;
	r = short_lt(db, lock_timeout_ms, &saved, err);
	if (r != 0) {
		free(saved);
		return r;
	}
	/* t.child: the catalog's name, quoted by format('%I') */
	r = drop_step(db, &t, stop, st, err);
	r = restore_lt(db, saved, r, err);
	if (r != 0 && r != OPS_E_STOPPED)
		ops_err_prefix(err, "detached partition %s", st->child);
	return r;
}

int
purge_detached_ready(struct db *db, bool *ready, struct ops_err *err)
{
	return db_relation_exists(db, "apexops.purge_detached", ready, err);
}

int
purge_detached_forget_stale(struct db *db, int *forgotten, struct ops_err *err)
{
	static const char sql[] =
		"WITH s AS (SELECT d.relid, d.child,"
		"  EXISTS (SELECT 1 FROM pg_inherits i"
		"   WHERE i.inhrelid = d.relid) AS attached,"
		"  EXISTS (SELECT 1 FROM pg_class c"
		"   JOIN pg_namespace n ON n.oid = c.relnamespace"
		"   WHERE c.oid = d.relid AND c.relkind IN ('r', 'p')"
		"   AND format('%I.%I', n.nspname, c.relname) = d.child)"
		"  AS present"
		"  FROM apexops.purge_detached d)"
		" DELETE FROM apexops.purge_detached d USING s"
		" WHERE d.relid = s.relid AND (s.attached OR NOT s.present)"
		" RETURNING d.child, CASE WHEN s.attached THEN 'a partition "
		"again' ELSE 'gone' END";
	struct db_res *res = NULL;
	int r;

	if (forgotten != NULL)
		*forgotten = 0;
	r = db_query(db, sql, 0, NULL, &res, err);
	if (r != 0)
		return r;
	for (int i = 0; i < db_res_rows(res); i++)
		log_info("purge forgot a detached partition's record "
			 "table=%s reason=%s",
			 log_q(db_res_get(res, i, 0)),
			 log_q(db_res_get(res, i, 1)));
	if (forgotten != NULL)
		*forgotten = db_res_rows(res);
	db_res_free(res);
	return 0;
}

int
purge_detached_list(struct db *db, const char *parent, struct db_res **out,
		    struct ops_err *err)
{
	const char *params[1] = { parent };

	return db_query(
		db,
		"SELECT d.relid::text, d.child, d.parent,"
		" COALESCE(d.run_id::text, ''),"
		" to_char(d.detached_at AT TIME ZONE 'UTC',"
		"  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
		" COALESCE(pg_total_relation_size(d.relid), 0),"
		" d.parent_relid::text"
		" FROM apexops.purge_detached d"
		" WHERE ($1::text IS NULL OR d.parent_relid = to_regclass($1))"
		/* still the recorded table, and not a partition again */
		" AND EXISTS (SELECT 1 FROM pg_class c"
		"  JOIN pg_namespace n ON n.oid = c.relnamespace"
		"  WHERE c.oid = d.relid AND c.relkind IN ('r', 'p')"
		"  AND format('%I.%I', n.nspname, c.relname) = d.child)"
		" AND NOT EXISTS (SELECT 1 FROM pg_inherits i"
		"  WHERE i.inhrelid = d.relid)"
		" ORDER BY d.detached_at, d.relid",
		1, params, out, err);
}
