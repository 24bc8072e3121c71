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
		" COALESCE(pt.partdefid <> 0, false)"
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

/*
 * A plain DETACH holds an ACCESS EXCLUSIVE lock on the parent, which every
 * insert queues behind, until its commit returns: that commit does not
 * wait for the WAL flush, so the lock is held for the catalog work alone.
 * A crash that loses the detach leaves the partition attached, for the
 * next run; the DROP that follows is durable, and its flush carries the
 * detach's WAL, written before it.
 */
static int
detach_plain(struct db *db, const char *sql, struct ops_err *err)
{
	int r = db_begin(db, err);

	if (r == 0)
		r = db_exec(db, "SET LOCAL synchronous_commit = off", 0, NULL,
			    NULL, err);
	if (r == 0)
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
       const volatile sig_atomic_t *stop, struct purge_partition_stats *st,
       struct ops_err *err)
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
		if (t->has_default && !t->pending)
			r = detach_plain(db, sql, err);
		else
			r = db_exec(db, sql, 0, NULL, NULL, err);
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

int
purge_partition_drop(struct db *db, const char *parent, const char *child,
		     long lock_timeout_ms, const volatile sig_atomic_t *stop,
		     struct purge_partition_stats *st, struct ops_err *err)
{
	struct purge_partition_stats local;
	struct ops_err lerr = OPS_ERR_INIT, e2 = OPS_ERR_INIT;
	struct target t;
	char *saved = NULL, lt[32];
	double t0;
	int r;

	if (st == NULL)
		st = &local;
	if (err == NULL)
		err = &lerr; /* the retry logic reads the SQLSTATE */
	memset(st, 0, sizeof(*st));
	memset(&t, 0, sizeof(t));
	if (parent == NULL || child == NULL)
		return ops_fail(err, OPS_E_INVALID, false,
				"dropping a partition needs a parent and a "
				"partition name");
	if (db_in_tx(db))
		return ops_fail(err, OPS_E_INVALID, false,
				"cannot drop partition '%s' inside a "
				"transaction",
				child);
	r = resolve(db, parent, child, &t, err);
	if (r != 0)
		return r;
	if (!t.attached)
		return ops_fail(err, OPS_E_NOTFOUND, false,
				"'%s' is not a partition of '%s'", child,
				parent);
	snprintf(st->parent, sizeof(st->parent), "%s", t.parent);
	snprintf(st->child, sizeof(st->child), "%s", t.child);
	if (ops_stopped(stop))
		return ops_fail(err, OPS_E_STOPPED, true,
				"stopped before the partition was detached");

	snprintf(lt, sizeof(lt), "%ldms",
		 lock_timeout_ms > 0 ? lock_timeout_ms
				     : (long)PURGE_PARTITION_LOCK_TIMEOUT_MS);
	r = db_setting_swap(db, "lock_timeout", lt, &saved, err);
	if (r != 0)
		goto out;

	t0 = ms_now();
	r = detach(db, parent, child, &t, stop, st, err);
	st->detach_ms = ms_now() - t0;
	if (r != 0)
		goto restore;
	st->detached = true;
	log_info("purge partition detached partition=%s how=%s ms=%.1f",
		 log_q(t.child),
		 st->finalized	  ? "finalize"
		 : st->concurrent ? "concurrently"
				  : "plain",
		 st->detach_ms);
	t0 = ms_now();
	r = drop_detached(db, &t, stop, st, err);
	st->drop_ms = ms_now() - t0;
	if (r == 0)
		st->dropped = true;
	else
		log_warn("purge partition detached but not dropped; drop it "
			 "by hand table=%s",
			 log_q(t.child));
restore:
	/* keep the first failure; a failed restore alone is one */
	if (db_setting_restore(db, "lock_timeout", saved, &e2) != 0 && r == 0) {
		*err = e2;
		r = e2.code;
	}
	saved = NULL; /* freed by the restore */
out:
	free(saved);
	if (r != 0 && r != OPS_E_STOPPED && t.child[0] != '\0')
		ops_err_prefix(err, "partition %s", t.child);
	return r;
}
