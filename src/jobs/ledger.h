/*
 * The run ledger: one row per run of any job (apexops.job_runs), written
 * before the job starts and settled when it ends, so a killed run stays
 * visible. The owner (host, pid, backend pid and backend start) is recorded;
 * a `running` row whose backend no longer exists is stale and is marked
 * `abandoned` by ledger_abandon_stale(), whatever job it belongs to.
 *
 * params and counts are JSON object texts (NULL: {}), built by the job;
 * the ledger stores them as jsonb and never interprets them.
 *
 * Thread safety: the functions take a struct db, which belongs to one
 * thread; with one connection per thread they may be called from several.
 */
#ifndef OPS_JOBS_LEDGER_H
#define OPS_JOBS_LEDGER_H

#include <stdbool.h>

#include "core/err.h"

struct db;

/* Statuses a run row may have (the migration's CHECK has the same list). */
#define LEDGER_RUNNING	   "running"
#define LEDGER_SUCCEEDED   "succeeded"
#define LEDGER_PARTIAL	   "partial" /* done, but some work was left */
#define LEDGER_FAILED	   "failed"
#define LEDGER_STOPPED	   "stopped"
#define LEDGER_ABANDONED   "abandoned"
#define LEDGER_MISSED	   "missed"
#define LEDGER_UNAVAILABLE "unavailable"

/* Triggers. */
#define LEDGER_MANUAL	 "manual"
#define LEDGER_SCHEDULED "scheduled"
#define LEDGER_CATCH_UP	 "catch-up"

struct ledger_start {
	const char *job;     /* job name, e.g. "usage-purge" (required) */
	const char *trigger; /* LEDGER_MANUAL etc. (required) */
	const char *slot;    /* schedule slot, RFC 3339; NULL for manual */
	const char *params;  /* JSON object text, or NULL */
	const char *mode;    /* "execute", "dry-run", or NULL */
	const char *os_user; /* recorded; NULL: looked up from the uid */
	int attempt;	     /* 1 for a first attempt; 0 means 1 */
};

/* Insert a running row; *id gets its id. */
int ledger_start(struct db *db, const struct ledger_start *s, long long *id,
		 struct ops_err *err) __attribute__((warn_unused_result));

/* Record what a run was asked to do, once it knows: mode (NULL keeps
 * it) and params (JSON object text; NULL keeps it). */
int ledger_set_params(struct db *db, long long id, const char *mode,
		      const char *params, struct ops_err *err)
	__attribute__((warn_unused_result));

/* Store counts (JSON object text) on a running row; callers bound the
 * rate (a write per second is plenty). */
int ledger_progress(struct db *db, long long id, const char *counts,
		    struct ops_err *err) __attribute__((warn_unused_result));

/*
 * Settle a row: status (LEDGER_SUCCEEDED ...), counts (NULL keeps what
 * progress wrote), error (NULL for none; scrubbed of secrets by the
 * caller). Only a row still `running` is settled: settling one that was
 * marked abandoned meanwhile is OPS_E_CONFLICT, and the row keeps its
 * status (a stale owner cannot overwrite the record).
 */
int ledger_finish(struct db *db, long long id, const char *status,
		  const char *counts, const char *error, struct ops_err *err)
	__attribute__((warn_unused_result));

/* Delete a run row (a run that asked not to be kept). */
int ledger_forget(struct db *db, long long id, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * ledger_finish() for a leased run (the scheduler's): only when the row is
 * still running under attempt and owner, the fencing token. A holder
 * whose lease lapsed and was taken over gets OPS_E_CONFLICT and changes
 * nothing.
 */
int ledger_finish_fenced(struct db *db, long long id, int attempt,
			 const char *owner, const char *status,
			 const char *counts, const char *error,
			 struct ops_err *err)
	__attribute__((warn_unused_result));

/* Mark running rows of job (NULL: any job) whose owner backend is gone as
 * abandoned; *n (may be NULL) gets how many. Leased rows (the
 * scheduler's) are left to their lease. */
int ledger_abandon_stale(struct db *db, const char *job, int *n,
			 struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * The last `limit` runs of job (NULL: all jobs), newest first, as a JSON
 * array text (caller frees *json). failed_only keeps failed and abandoned
 * runs. Each element has: id, job, slot, trigger, status, mode, attempt,
 * owner ("host:pid"), started_at, finished_at, duration_ms, params, counts,
 * error.
 */
int ledger_history_json(struct db *db, const char *job, bool failed_only,
			long limit, char **json, struct ops_err *err)
	__attribute__((warn_unused_result));

#endif
