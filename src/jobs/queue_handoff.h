/*
 * Direct handoff (migration 20261203_090000_queue_handoff): a worker that
 * could start a job at once keeps a row of apexops.queue_idle ready, and
 * apexops.enqueue() leases a new job to it in the enqueuing transaction
 * and sends it the job in a notification on the worker's own channel, so
 * the job starts without a claim's round trip. The claim (jobs/queue.h)
 * stays the way every other job, and any backlog, is worked.
 *
 * A worker's connection that LISTENs holds the row's advisory lock (two
 * keys: QUEUE_HANDOFF_LOCK_CLASS and the row's id) for its life: a row
 * whose lock is free is a dead worker's, handed nothing and deleted by
 * queue_idle_reap(). A row is handed one job and then stays not ready
 * until its worker sets it ready again.
 *
 * Thread safety: as jobs/queue.h (each call uses the connection it is
 * given); queue_handoff_parse() is pure and may run in any thread.
 */
#ifndef OPS_JOBS_QUEUE_HANDOFF_H
#define OPS_JOBS_QUEUE_HANDOFF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "jobs/queue.h"

struct db;

/* The advisory lock class of idle rows: "apex" in ASCII. */
#define QUEUE_HANDOFF_LOCK_CLASS 1634755960

/* A worker's row. */
struct queue_idle {
	int id; /* 0: none */
	char channel[64];
};

/*
 * Register a worker on db (the connection it LISTENs on): take the new
 * row's advisory lock for the session, insert the row (not ready) with
 * owner and lease_s (the lease a handed job gets), and LISTEN on its
 * channel. owner must not be NULL.
 */
int queue_idle_register(struct db *db, const char *owner, long lease_s,
			struct queue_idle *out, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * Set the row ready (or not) for kinds[0..nkinds-1] (queue_kind_valid()
 * names). Never waits: a row an enqueuer holds (a handoff under way, or
 * one that will roll back) is left alone and *set is false; else true.
 * The commit does not wait for the WAL flush: a lost change costs at
 * most a handoff, never a job.
 */
int queue_idle_set(struct db *db, int id, bool ready, const char *const *kinds,
		   int nkinds, bool *set, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * Delete the row, waiting up to wait_ms for an enqueuer that holds it:
 * after it returns 0 no job can be handed to the worker, and every job
 * handed to it is committed (visible to queue_release_orphans()). A wait
 * that times out is OPS_E_CONFLICT.
 */
int queue_idle_leave(struct db *db, int id, long wait_ms, struct ops_err *err)
	__attribute__((warn_unused_result));

/* Delete the rows of workers that are gone (their lock is free), other
 * than own_id (the caller's row, or 0); *n gets how many. An enqueuer on
 * the session that holds a row's lock does not see it held either: a
 * worker never enqueues on the connection it registered. */
int queue_idle_reap(struct db *db, int own_id, int *n, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * Give back every job handed to owner (running, attempt 1, started in
 * the transaction that enqueued it: never claimed) whose id is not in
 * held[0..n-1]: jobs whose notification never came (a lost connection)
 * or that the worker stops before reading. They never started: the
 * attempt is undone, as queue_release() does. *released (may be NULL)
 * gets how many.
 */
int queue_release_orphans(struct db *db, const char *owner,
			  const long long *held, int n, int *released,
			  struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * A handoff notification's payload, the JSON object apexops.enqueue()
 * sends: {"id": N, "kind": K, "attempt": A, "max_attempts": M,
 * "payload": "JSON text"}. Fills job (job->payload is a new string the
 * caller frees) and returns true; false for anything else, with why
 * (why may be NULL) saying what was wrong. text may be NULL (false).
 */
bool queue_handoff_parse(const char *text, struct queue_job *job, char *why,
			 size_t whylen);

#endif
