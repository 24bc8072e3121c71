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
 * Every wait goes through ops_sleep_ms() and honours the stop flag.
 *
 * Names: parent and child are resolved through the catalog
 * (to_regclass); the DDL uses the catalog's names quoted by format('%I'),
 * never the caller's text.
 *
 * Thread safety: one struct db per thread; nothing here keeps state.
 */
#ifndef OPS_JOBS_PURGE_PARTITION_H
#define OPS_JOBS_PURGE_PARTITION_H

#include <signal.h>
#include <stdbool.h>

#include "core/err.h"

struct db;

/* The default lock_timeout of each DDL attempt (lock_timeout_ms 0). */
#define PURGE_PARTITION_LOCK_TIMEOUT_MS 50
/* Attempts of one step (detach, finalize, drop) before giving up. */
#define PURGE_PARTITION_MAX_ATTEMPTS 60

/* What purge_partition_drop() did; it zeroes the struct first. */
struct purge_partition_stats {
	char parent[160]; /* the parent as the catalog names it */
	char child[160];  /* the partition, likewise */
	bool concurrent;  /* detached with CONCURRENTLY */
	bool finalized;	  /* finished a pending detach with FINALIZE */
	bool detached;	  /* the partition is detached */
	bool dropped;	  /* and dropped */
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
 * NULL) was set between attempts (the partition may be left detached, or
 * detach pending, which the next call finishes); OPS_E_CONFLICT
 * (transient) when a lock stayed out of reach for
 * PURGE_PARTITION_MAX_ATTEMPTS attempts; OPS_E_DB on another failure.
 */
int purge_partition_drop(struct db *db, const char *parent, const char *child,
			 long lock_timeout_ms,
			 const volatile sig_atomic_t *stop,
			 struct purge_partition_stats *st, struct ops_err *err)
	__attribute__((warn_unused_result));

#endif
