/*
 * The purge execution: whole expired partitions, then the rest in short
 * batches, walking the expired range in (column, ctid) order. A batch
 * locks its rows with FOR UPDATE SKIP LOCKED, so rows another transaction
 * holds are walked past instead of stopping the purge; rows a trigger keeps
 * are walked past too. At the end of a walk a census counts what is left
 * and why; rows locked (or written behind the walk) bring the walk back,
 * waiting up to the lock timeout per batch, a bounded number of times.
 */
#include "jobs/purge_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/stop.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "jobs/pace.h"
#include "jobs/purge_partition.h"

#define MAX_LOCK_RETRIES 200
#define RETURN_PASSES	 3 /* walks after the first, for skipped rows */

static long
clampl(long v, long lo, long hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static bool
is_lock_conflict(const struct ops_err *e)
{
	/* lock_not_available (lock_timeout) and deadlock_detected */
	return strcmp(e->sqlstate, "55P03") == 0 ||
	       strcmp(e->sqlstate, "40P01") == 0;
}

/* A stop-aware pause; a stop simply ends it early. */
static void
pause_ms(const struct purge_opts *o, long ms)
{
	if (ops_sleep_ms(ms, o->stop) != 0)
		return; /* stopped: the caller checks the flag */
}

static int
set_local_lock_timeout(struct db *db, const struct purge_opts *o,
		       struct ops_err *err)
{
	char lt[32];
	const char *params[1] = { lt };

	snprintf(lt, sizeof(lt), "%ldms",
		 o->lock_timeout_ms > 0 ? o->lock_timeout_ms : 100);
	return db_exec(db, "SELECT set_config('lock_timeout', $1, true)", 1,
		       params, NULL, err);
}

void
purge_sum(struct purge_result *res)
{
	res->planned_total = res->deleted_total = res->null_total = 0;
	res->left_total = res->left_locked = 0;
	res->warnings = 0;
	for (int i = 0; i < res->ntables; i++) {
		const struct purge_table_result *t = &res->tables[i];

		res->planned_total += t->planned_rows;
		res->deleted_total += t->deleted_rows;
		res->null_total += t->null_rows;
		res->left_total += t->left_rows;
		res->left_locked += t->left_locked;
		if (t->vacuum_error[0] != '\0')
			res->warnings++;
	}
}

/* Tell o->on_progress how far the run got: at most once a second unless
 * forced. */
static void
report_progress(struct purge_exec *x, bool force)
{
	const struct purge_opts *o = x->o;
	struct ops_err e = OPS_ERR_INIT;
	double now = clock_now();

	if (o->on_progress == NULL || x->res == NULL)
		return;
	if (!force && now - x->last_report < 1.0)
		return;
	x->last_report = now;
	purge_sum(x->res);
	x->res->seconds = now - x->run_started;
	if (o->on_progress(o->progress_arg, x->res, &e) != 0)
		log_warn("cannot record purge progress error=%s", log_q(e.msg));
}

/* n more rows removed from t: the counts, the progress line, the record. */
static void
count_removed(struct purge_exec *x, struct purge_table_result *t, long long n)
{
	t->deleted_rows += n;
	x->run_done += n;
	progress_add(&x->prog, n);
	report_progress(x, false);
}

/* Where a walk is: the last (column, ctid) it passed. The column travels
 * as ISO-8601 UTC text from to_char() (or "-infinity"), never through
 * the session's DateStyle and TimeZone. */
struct walk_pos {
	char key[64];
	char tid[32];
};

struct batch_out {
	long long selected; /* rows the batch locked */
	long long deleted;  /* of which the DELETE removed */
	double batch_ms;    /* the whole transaction */
	double commit_ms;   /* its COMMIT */
};

/*
 * One batch in one short transaction: lock up to limit expired rows after
 * the position (skipping rows others hold when skip_locked, else waiting up
 * to the lock timeout), delete them, move the position past them.
 */
static int
run_batch(struct db *db, const struct purge_opts *o, const char *sql,
	  const char *cutoff, struct walk_pos *w, long size,
	  struct batch_out *b, struct ops_err *err)
{
	char limit[24];
	const char *params[4] = { cutoff, w->key, w->tid, limit };
	struct db_res *res = NULL;
	double t0 = clock_now(), tc = 0;
	int r;

	memset(b, 0, sizeof(*b));
	snprintf(limit, sizeof(limit), "%ld", size);
	r = db_begin(db, err);
	if (r == 0)
		r = set_local_lock_timeout(db, o, err);
	/*
	 * A batch need not wait for its WAL flush: if the server crashes,
	 * the rows of the lost batches are still there and the next run
	 * deletes them; the run record, committed synchronously at the end,
	 * flushes every batch before it.
	 */
	if (r == 0)
		r = db_exec(db, "SET LOCAL synchronous_commit = off", 0, NULL,
			    NULL, err);
	if (r == 0)
		r = db_query(db, sql, 4, params, &res, err);
	if (r == 0) {
		tc = clock_now();
		r = db_commit(db, err);
	}
	if (r != 0) {
		db_rollback(db);
		db_res_free(res);
		return r;
	}
	b->commit_ms = (clock_now() - tc) * 1000.0;
	b->batch_ms = (clock_now() - t0) * 1000.0;
	b->selected = db_res_ll(res, 0, 0);
	b->deleted = db_res_ll(res, 0, 1);
	if (b->selected > 0) {
		purge_copy_cell(w->key, sizeof(w->key), res, 0, 2);
		purge_copy_cell(w->tid, sizeof(w->tid), res, 0, 3);
	}
	db_res_free(res);
	return 0;
}

/*
 * What is left of the expired rows of rel: *all of them, *cand those not
 * kept for a reference (= *all without a keep clause), *lockable those
 * this session could lock now. kept: the rows the walk just locked and a
 * trigger kept. When no more than those are left (cand <= kept), they are
 * what is left, and they were lockable a moment ago: *lockable = *cand,
 * without locking them again (locking writes every row, and a large legal
 * hold would be written twice per walk). The one case this misreads is
 * another session deleting trigger-kept rows while as many others are
 * written or locked behind the walk: those are then reported kept by a
 * trigger, not locked, and left for the next run.
 */
static int
census(struct db *db, const struct purge_opts *o, const char *rel,
       const struct purge_policy *p, const char *keep, const char *cutoff,
       long long kept, long long *all, long long *cand, long long *lockable,
       struct ops_err *err)
{
	const char *params[1] = { cutoff };
	struct db_res *res = NULL;
	char *sql;
	int r;

	*all = *cand = *lockable = 0;
	/* one short transaction, without the statement timeout (it counts
	 * the whole expired range); the row locks are let go at once */
	r = db_begin(db, err);
	if (r == 0)
		r = set_local_lock_timeout(db, o, err);
	if (r == 0)
		r = db_exec(db,
			    "SELECT set_config('statement_timeout', '0', true)",
			    0, NULL, NULL, err);
	if (r == 0) {
		sql = xasprintf(
			"SELECT count(*), count(*) FILTER (WHERE true%s)"
			" FROM %s p WHERE p.%s < $1::timestamptz",
			keep, rel, p->column);
		r = db_query(db, sql, 1, params, &res, err);
		free(sql);
	}
	if (r == 0) {
		*all = db_res_ll(res, 0, 0);
		*cand = db_res_ll(res, 0, 1);
		db_res_free(res);
		res = NULL;
	}
	if (r == 0 && *cand > 0 && *cand <= kept)
		*lockable = *cand;
	else if (r == 0 && *cand > 0) {
		sql = xasprintf("SELECT count(*) FROM (SELECT 1 FROM %s p"
				" WHERE p.%s < $1::timestamptz%s"
				" FOR UPDATE OF p SKIP LOCKED) x",
				rel, p->column, keep);
		r = db_query(db, sql, 1, params, &res, err);
		free(sql);
		if (r == 0)
			*lockable = db_res_ll(res, 0, 0);
	}
	db_rollback(db);
	db_res_free(res);
	return r;
}

/* The batch statement for rel (a policy constant or a regclass-quoted
 * catalog name), col (a policy constant) and keep (conditions on catalog
 * names quoted by PostgreSQL); caller frees. */
static char *
batch_sql(const char *rel, const char *col, const char *keep, bool skip)
{
	return xasprintf(
		"WITH c AS MATERIALIZED (SELECT p.ctid AS t, p.%s AS k"
		"  FROM %s p WHERE p.%s < $1::timestamptz"
		"  AND p.%s >= $2::timestamptz"
		"  AND (p.%s > $2::timestamptz OR p.ctid > $3::tid)%s"
		"  ORDER BY p.%s, p.ctid LIMIT $4::int FOR UPDATE OF p%s),"
		" d AS (DELETE FROM %s WHERE ctid = ANY (ARRAY(SELECT t FROM "
		"c))"
		"  AND %s < $1::timestamptz RETURNING 1),"
		" l AS (SELECT k, t FROM c ORDER BY k DESC, t DESC LIMIT 1)"
		" SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM d),"
		" (SELECT CASE WHEN isfinite(k) THEN to_char(k AT TIME ZONE"
		"  'UTC', " PURGE_TS_FMT ") ELSE k::text END FROM l),"
		" (SELECT t::text FROM l)",
		col, rel, col, col, col, keep, col, skip ? " SKIP LOCKED" : "",
		rel, col);
}

/*
 * Delete every expired row of rel (one relation: a plain table or a leaf
 * partition) that can go, in batches of one short transaction each, and
 * account in t for every expired row that is left.
 */
static int
purge_rowwise(struct db *db, struct purge_exec *x, const char *rel,
	      const struct purge_policy *p, const struct purge_table_info *ti,
	      const char *cutoff, struct purge_table_result *t,
	      struct ops_err *err)
{
	const struct purge_opts *o = x->o;
	long target = o->batch_ms > 0 ? o->batch_ms : 200;
	long bmin = o->batch_min > 0 ? o->batch_min : 500;
	/*
	 * Measured (docs/benchmarks.md): what hurts a concurrent writer is
	 * the WAL each batch commits at once, not the lock time, so batches
	 * stay small (2000 rows, about 300 kB of WAL); the time target only
	 * shrinks them further when they get slow (cold cache, busy disk).
	 */
	long bmax = o->batch_max > 0 ? o->batch_max : 2000;
	const char *keep = o->skip_referenced ? ti->keep_referenced : "";
	const char *col = p->column;
	char *sql_skip, *sql_wait;
	long long all = 0, cand = 0, lockable = 0, kept = 0;
	int retries = 0, r = 0;

	if (bmax < bmin)
		bmax = bmin;
	if (x->size <= 0)
		x->size = x->pace != NULL ? pace_first_batch(x->pace) : bmin;
	sql_skip = batch_sql(rel, col, keep, true);
	sql_wait = batch_sql(rel, col, keep, false);
	for (int pass = 0; r == 0; pass++) {
		struct walk_pos w = { "-infinity", "(0,0)" };

		t->passes++;
		kept = 0;
		/* the first walk skips locked rows; a return walk waits up
		 * to the lock timeout for them, then skips them too */
		while (r == 0) {
			struct batch_out b;
			bool wait = pass > 0;
			double t0, el;

			if (purge_stopping(o))
				goto out;
			t0 = clock_now();
			r = run_batch(db, o, wait ? sql_wait : sql_skip, cutoff,
				      &w, x->size, &b, err);
			if (r != 0 && purge_stopping(o)) {
				/* a second signal cancelled the batch */
				ops_err_clear(err);
				r = 0;
				goto out;
			}
			if (r != 0 && is_lock_conflict(err) && wait) {
				/* still locked: walk past it this time */
				t->lock_retries++;
				ops_err_clear(err);
				r = run_batch(db, o, sql_skip, cutoff, &w,
					      x->size, &b, err);
			}
			if (r != 0) {
				/* e.g. a cascade waiting on a child row lock */
				if (!is_lock_conflict(err) ||
				    ++retries > MAX_LOCK_RETRIES)
					goto out;
				t->lock_retries++;
				log_info("purge batch waited too long for a "
					 "lock, retrying table=%s size=%ld "
					 "retry=%d",
					 log_q(rel), x->size, retries);
				x->size = clampl(x->size / 2, bmin, bmax);
				ops_err_clear(err);
				r = 0;
				pause_ms(o, ops_backoff_equal_jitter(
						    50, 1000, retries - 1));
				continue;
			}
			retries = 0;
			el = clock_now() - t0;
			if (b.selected == 0)
				break;
			kept += b.selected - b.deleted;
			t->batches++;
			count_removed(x, t, b.deleted);
			log_debug("purge batch table=%s rows=%lld kept=%lld "
				  "size=%ld ms=%.1f",
				  log_q(rel), b.deleted, b.selected - b.deleted,
				  x->size, el * 1000.0);
			if (x->pace != NULL) {
				long pause = 0;

				/* the pacer: batch and commit latency, waiters,
				 * standby lag */
				r = pace_after_batch(
					x->pace, db, (long)b.deleted,
					b.batch_ms, b.commit_ms, &x->size,
					&pause, o->stop, err);
				if (r == OPS_E_STOPPED) {
					ops_err_clear(err);
					r = 0;
					goto out;
				}
				if (r != 0) {
					ops_err_prefix(err, "pacing the purge");
					goto out;
				}
				pause_ms(o, pause);
			} else if (b.selected >= x->size && el > 0) {
				/* adapt the size towards the target duration,
				 * at most 2x per step either way */
				double ideal = (double)x->size *
					       (double)target / (el * 1000.0);
				long next = (long)ideal;

				next = clampl(next, x->size / 2, x->size * 2);
				x->size = clampl(next, bmin, bmax);
			} else if (el * 1000.0 > (double)target * 1.5) {
				x->size = clampl(x->size / 2, bmin, bmax);
			}
			if (o->max_rate > 0) {
				double due = (double)x->run_done /
					     (double)o->max_rate;
				double spent = clock_now() - x->run_started;

				if (due > spent)
					pause_ms(o, (long)((due - spent) *
							   1000.0));
			}
			if (o->sleep_ms > 0)
				pause_ms(o, o->sleep_ms);
		}
		if (r != 0)
			break;
		r = census(db, o, rel, p, keep, cutoff, kept, &all, &cand,
			   &lockable, err);
		if (r != 0)
			break;
		/* done: nothing left, or all that is left was tried in this
		 * walk and kept by a trigger, or no more walks */
		if (cand == 0 || (cand == lockable && lockable <= kept) ||
		    pass >= RETURN_PASSES || purge_stopping(o))
			break;
		log_info("purge walks the table again table=%s left=%lld "
			 "locked=%lld pass=%d",
			 log_q(rel), cand, cand - lockable, pass + 1);
		pause_ms(o, ops_backoff_equal_jitter(100, 2000, pass));
		if (purge_stopping(o))
			break;
	}
	if (r == 0 && !purge_stopping(o)) {
		long long trig = lockable < kept ? lockable : kept;

		t->census = true;
		t->left_rows += all;
		t->left_referenced += all - cand;
		t->left_locked += cand - lockable;
		t->left_trigger += trig;
		t->left_other += lockable - trig;
	}
out:
	free(sql_skip);
	free(sql_wait);
	return r;
}

/* VACUUM (ANALYZE) qname without the session's statement timeout (a big
 * table takes long); a failure is a warning in t, not the run's. */
static void
vacuum_table(struct db *db, const char *qname, struct purge_table_result *t)
{
	struct ops_err e = OPS_ERR_INIT;
	char sql[256], *old = NULL;
	int r;

	/* qname: a policy constant */
	snprintf(sql, sizeof(sql), "VACUUM (ANALYZE) %s", qname);
	log_info("purge vacuum table=%s", log_q(qname));
	r = purge_statement_timeout_off(db, &old, &e);
	if (r == 0)
		r = db_exec(db, sql, 0, NULL, NULL, &e);
	purge_statement_timeout_restore(db, old);
	if (r != 0) {
		snprintf(t->vacuum_error, sizeof(t->vacuum_error), "%s", e.msg);
		log_warn("purge vacuum failed table=%s error=%s", log_q(qname),
			 log_q(e.msg));
		return;
	}
	t->vacuumed = true;
}

/*
 * Drop the tables recorded as detached from qname, one at a time, with
 * x->res->drop_pause_ms between two drops: freeing many months' files at
 * once stalls live writers (PURGE_DROP_PAUSE_MS). A table a lock keeps
 * (OPS_E_CONFLICT after the retries) stays recorded for the next run and
 * is counted in t->detached_left.
 */
static int
drop_recorded(struct db *db, struct purge_exec *x, const char *qname,
	      struct purge_table_result *t, struct ops_err *err)
{
	const struct purge_opts *o = x->o;
	struct db_res *res = NULL;
	double p0 = clock_now();
	bool dropped_one = false;
	int r;

	r = purge_detached_list(db, qname, &res, err);
	for (int i = 0; r == 0 && i < db_res_rows(res); i++) {
		const char *relid = db_res_get(res, i, 0);
		const char *child = db_res_get(res, i, 1);
		struct purge_partition_stats st;

		if (dropped_one && x->res->drop_pause_ms > 0)
			pause_ms(o, x->res->drop_pause_ms);
		if (purge_stopping(o))
			break;
		r = purge_partition_drop_detached(db, relid, o->lock_timeout_ms,
						  o->stop, &st, err);
		t->lock_retries += st.lock_retries;
		if (r == OPS_E_CONFLICT || r == OPS_E_NOTFOUND) {
			/* kept by a lock: the next run drops it; a
			 * partition again: not ours to drop */
			log_warn("purge could not drop a detached partition "
				 "table=%s partition=%s error=%s",
				 log_q(t->name), log_q(child), log_q(err->msg));
			if (r == OPS_E_CONFLICT)
				t->detached_left++;
			ops_err_clear(err);
			r = 0;
			continue;
		}
		if (r != 0)
			break;
		if (st.gone)
			continue;
		dropped_one = true;
		t->partitions_dropped++;
		count_removed(x, t, st.rows);
		log_info("purge dropped partition table=%s partition=%s "
			 "rows=%lld ms=%.1f",
			 log_q(t->name), log_q(child), st.rows, st.drop_ms);
	}
	db_res_free(res);
	t->partition_seconds += clock_now() - p0;
	if (r == OPS_E_STOPPED || (r != 0 && purge_stopping(o))) {
		ops_err_clear(err);
		r = 0;
	}
	if (r != 0)
		ops_err_prefix(err, "dropping the detached partitions");
	return r;
}

int
purge_execute_table(struct db *db, struct purge_exec *x,
		    const struct purge_policy *p,
		    const struct purge_table_info *ti, const char *cutoff,
		    struct purge_table_result *t, struct ops_err *err)
{
	const struct purge_opts *o = x->o;
	char qname[160];
	struct db_res *res = NULL;
	double t0 = clock_now();
	int r = 0;

	purge_policy_ident(p, qname, sizeof(qname));
	progress_start(&x->prog, t->name, t->planned_rows, o->progress_tty);
	if (ti->drop_whole) {
		double p0 = clock_now();

		/*
		 * Every expired month leaves the table first, within the
		 * second; their files are freed afterwards, paced
		 * (drop_recorded()): each detach is recorded in
		 * apexops.purge_detached, so nothing is stranded meanwhile.
		 */
		r = purge_expired_partitions(db, qname, cutoff, &res, err);
		for (int i = 0; r == 0 && i < db_res_rows(res); i++) {
			const char *child = db_res_get(res, i, 0);
			struct purge_partition_stats st;

			if (purge_stopping(o))
				break;
			/* CONCURRENTLY where PostgreSQL allows it, else
			 * short locks with retries (jobs/purge_partition.h) */
			r = purge_partition_detach(
				db, qname, child, o->lock_timeout_ms,
				x->res->run_id, o->stop, &st, err);
			t->lock_retries += st.lock_retries;
			if (r == OPS_E_CONFLICT) {
				/* its rows go row-wise below instead */
				log_warn("purge could not detach a partition, "
					 "purging it row by row table=%s "
					 "partition=%s error=%s",
					 log_q(t->name), log_q(child),
					 log_q(err->msg));
				t->partitions_kept++;
				ops_err_clear(err);
				r = 0;
				continue;
			}
			if (r != 0) {
				ops_err_prefix(err, "detaching partition %s",
					       child);
				break;
			}
			t->partitions_detached++;
		}
		db_res_free(res);
		res = NULL;
		t->partition_detach_seconds = clock_now() - p0;
		t->partition_seconds += t->partition_detach_seconds;
		if (r == OPS_E_STOPPED || (r != 0 && purge_stopping(o))) {
			/* stopped between attempts, or a second signal
			 * cancelled the statement */
			ops_err_clear(err);
			r = 0;
		}
	}
	if (r == 0 && !purge_stopping(o)) {
		if (ti->partitioned) {
			/* ctid is per partition: purge each leaf by itself */
			const char *params[1] = { qname };

			r = db_query(
				db,
				"SELECT relid::regclass::text"
				" FROM pg_partition_tree($1::regclass)"
				" WHERE isleaf ORDER BY relid::regclass::text",
				1, params, &res, err);
			for (int i = 0; r == 0 && i < db_res_rows(res); i++)
				r = purge_rowwise(db, x, db_res_get(res, i, 0),
						  p, ti, cutoff, t, err);
			db_res_free(res);
		} else {
			r = purge_rowwise(db, x, qname, p, ti, cutoff, t, err);
		}
	}
	/* the detached months of this run and of any earlier one */
	if (r == 0 && x->detached_ready && !purge_stopping(o))
		r = drop_recorded(db, x, qname, t, err);
	progress_finish(&x->prog);
	if (r == 0 && o->vacuum && !purge_stopping(o))
		vacuum_table(db, qname, t);
	t->seconds = clock_now() - t0;
	report_progress(x, true);
	if (r != 0)
		ops_err_prefix(err, "purging %s", t->name);
	return r;
}
