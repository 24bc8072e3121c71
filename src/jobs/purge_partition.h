/*
 * Dropping one expired range partition without queueing live inserts
 * behind an exclusive lock on the parent.
 *
 * A plain `ALTER TABLE parent DETACH PARTITION child` takes ACCESS
 * EXCLUSIVE on the parent: while it waits for that lock (behind any running
 * query), every new insert into the parent queues behind it. So:
 *   - where PostgreSQL allows it (the parent has no default partition, and
 *     the connection is not inside a transaction block), the partition is
 *     detached with DETACH PARTITION ... CONCURRENTLY, which takes only
 *     SHARE UPDATE EXCLUSIVE on the parent;
 *   - otherwise with a plain DETACH in a transaction whose lock_timeout is
 *     short, retried with jittered backoff, so that a queued DETACH gives
 *     way to the writers after lock_timeout_ms;
 *   - a partition left "detach pending" (a DETACH CONCURRENTLY interrupted
 *     half-way, by this module or anyone) is finished with DETACH
 *     PARTITION ... FINALIZE;
 *   - then the detached table is counted and dropped, again with a short
 *     lock_timeout and retries (nothing queues behind it any more but a
 *     straggler reading it).
 *
 * The two steps may run apart (purge_partition_detach(), then later
 * purge_partition_drop_detached()): the purge detaches every expired month
 * at once and drops them with pauses between, because freeing a month's
 * files stalls live writers' fsyncs for tens of milliseconds (on ext4 with
 * discard: bench/purge-drops). So that a crash, a stop or a lock between
 * the steps never strands expired rows in a table nobody looks at, each
 * detach is recorded in apexops.purge_detached (in the DETACH's own
 * transaction, or committed just before a DETACH ... CONCURRENTLY, which
 * cannot run in one) and the record is deleted in the DROP's transaction.
 * purge_detached_forget_stale() and purge_detached_list() are the
 * recovery: a record whose table is gone or is a partition again is
 * forgotten; the others are tables still to drop.
 * Every wait goes through ops_sleep_ms() and honours the stop flag.
 *
 * Names: parent and child are resolved through the catalog
 * (to_regclass); the DDL uses the catalog's names quoted by format('%I'),
 * never the caller's text.
 *
 * The database must have apexops.purge_detached (migration
 * 20261202_090000_purge_detached); callers check purge_detached_ready().
 *
 * Thread safety: one struct db per thread; nothing here keeps state.
 */
#ifndef OPS_JOBS_PURGE_PARTITION_H
#define OPS_JOBS_PURGE_PARTITION_H

#include <signal.h>
#include <stdbool.h>

#include "core/err.h"

struct db;
struct db_res;

/* The default lock_timeout of each DDL attempt (lock_timeout_ms 0). */
#define PURGE_PARTITION_LOCK_TIMEOUT_MS 50
/* Attempts of one step (detach, finalize, drop) before giving up. */
#define PURGE_PARTITION_MAX_ATTEMPTS 60

/* What purge_partition_drop() did; it zeroes the struct first. */
struct purge_partition_stats {
	char parent[160]; /* the parent as the catalog names it */
	char child[160];  /* the partition, likewise */
	char relid[16];	  /* the child's oid, as text */
	bool concurrent;  /* detached with CONCURRENTLY */
	bool finalized;	  /* finished a pending detach with FINALIZE */
	bool detached;	  /* the partition is detached */
	bool dropped;	  /* and dropped */
	bool gone;	  /* drop_detached: someone else had dropped it */
	long long rows;	  /* rows the dropped table held */
	int attempts;	  /* DDL attempts, all steps */
	int lock_retries; /* attempts that timed out on a lock */
	double detach_ms; /* detaching, retries included */
	double drop_ms;	  /* counting and dropping */
};

/*
 * Detach child from parent and drop it, as described above. parent and
 * child are names as to_regclass() reads them ("public.events",
 * "public.events_2024_01"); the child must be a partition of the parent
 * (OPS_E_NOTFOUND otherwise, with nothing changed). lock_timeout_ms is the
 * lock_timeout of each attempt (0: PURGE_PARTITION_LOCK_TIMEOUT_MS); the
 * session's own lock_timeout is restored afterwards. db must not be inside
 * a transaction (OPS_E_INVALID). st may be NULL.
 *
 * Returns 0 when the partition is gone; OPS_E_STOPPED when *stop (may be
 * NULL) was set between attempts; OPS_E_CONFLICT (transient) when a lock
 * stayed out of reach for PURGE_PARTITION_MAX_ATTEMPTS attempts; OPS_E_DB
 * on another failure. After a failure the partition is either attached as
 * before, or "detach pending" (the next call finishes it), or, when
 * st->detached is set, a detached table that was not dropped: it stays
 * recorded in apexops.purge_detached (st->relid), for
 * purge_partition_drop_detached() or the next purge of the parent, and the
 * failure is logged as a warning naming the table.
 */
int purge_partition_drop(struct db *db, const char *parent, const char *child,
			 long lock_timeout_ms,
			 const volatile sig_atomic_t *stop,
			 struct purge_partition_stats *st, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * The first step alone: detach child from parent and record it in
 * apexops.purge_detached with run_id (0: none), for
 * purge_partition_drop_detached(). Arguments, refusals and the detach's
 * failures as purge_partition_drop(); a failed detach leaves no record of a
 * table still attached (a pending one keeps its record: the next call
 * finishes it). On success st->relid names the record.
 */
int purge_partition_detach(struct db *db, const char *parent, const char *child,
			   long lock_timeout_ms, long long run_id,
			   const volatile sig_atomic_t *stop,
			   struct purge_partition_stats *st,
			   struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * The second step: count and drop the table recorded as relid (an oid as
 * text) and delete its record, in one durable transaction, with the same
 * short lock_timeout and retries. A record whose table is gone (or no
 * longer carries the recorded name) is deleted: 0 with st->gone set. One
 * whose table is a partition again is deleted too, and the call refuses
 * it (OPS_E_NOTFOUND): a purge must never drop a live partition. Returns 0,
 * OPS_E_NOTFOUND (no such record, or the above), OPS_E_STOPPED,
 * OPS_E_CONFLICT (transient: a lock stayed out of reach; the record
 * stays), OPS_E_DB. db must not be inside a transaction. st may be NULL.
 */
int purge_partition_drop_detached(struct db *db, const char *relid,
				  long lock_timeout_ms,
				  const volatile sig_atomic_t *stop,
				  struct purge_partition_stats *st,
				  struct ops_err *err)
	__attribute__((warn_unused_result));

/* *ready: the database has apexops.purge_detached (the migration). */
int purge_detached_ready(struct db *db, bool *ready, struct ops_err *err);

/*
 * Forget the records whose table is gone, renamed, or a partition again
 * (recovery after a crash or a failed detach); *forgotten (may be NULL)
 * gets how many, each logged. Run it under the purge lock.
 */
int purge_detached_forget_stale(struct db *db, int *forgotten,
				struct ops_err *err);

/*
 * The recorded tables still to drop, oldest detach first: those detached
 * from parent (a name as to_regclass() reads it), or every record with
 * parent NULL; stale records (see purge_detached_forget_stale()) are left
 * out, so a dry-run may call it without writing. *out gets rows (relid, child,
 * parent, run_id, detached_at as ISO-8601 UTC, bytes, parent_relid); caller
 * frees with db_res_free(). A missing parent gives no rows.
 */
int purge_detached_list(struct db *db, const char *parent, struct db_res **out,
			struct ops_err *err);

#endif
