/*
 * The job queue (apexops.queue_jobs, migrations 20261201_100000_queue and
 * 20261201_110000_queue_tuning):
 * enqueue, claim with FOR UPDATE SKIP LOCKED several jobs per round trip,
 * complete in batches fenced by (id, attempt, owner), fail with a backoff
 * or dead-letter, renew and reap leases, and the operator's views.
 * Lease times are the server's (now()): queue workers need no shared
 * virtual clock.
 *
 * Thread safety: each function uses the struct db it is given, which
 * belongs to one thread; with one connection per thread they may be
 * called from several.
 */
#ifndef OPS_JOBS_QUEUE_H
#define OPS_JOBS_QUEUE_H

#include <stdbool.h>

#include "core/err.h"

struct db;

/* Job states (the migration's CHECK has the same list). */
#define QUEUE_AVAILABLE "available"
#define QUEUE_RUNNING	"running"
#define QUEUE_SUCCEEDED "succeeded"
#define QUEUE_RETRYING	"failed-retrying"
#define QUEUE_DEAD	"dead"
#define QUEUE_CANCELLED "cancelled"

struct queue_job {
	long long id;
	char kind[64];
	char *payload; /* JSON text, owned by the batch */
	int attempt;   /* this attempt, from 1: the fencing token */
	int max_attempts;
};

struct queue_batch {
	struct queue_job *v;
	int n;
};

/* Free the batch's jobs (not b itself). NULL is a no-op. */
void queue_batch_release(struct queue_batch *b);

/* Whether kind is a job kind's name as the queue stores them (the domain
 * apexops.queue_kind): a lowercase letter, then up to 62 of a-z, 0-9,
 * '_', '.', '-'. NULL is not. Pure; any thread. */
#define QUEUE_KIND_RULE                                                \
	"a lowercase letter, then up to 62 of a-z, 0-9, '_', '.' and " \
	"'-'"
bool queue_kind_valid(const char *kind);

/*
 * Enqueue through apexops.enqueue() (the function the platform's API
 * server calls in its own transaction): payload JSON text (NULL: {}),
 * run_at RFC 3339 or NULL (now), max_attempts <= 0: 5, unique_key may be
 * NULL. *id gets the new job's id, or the unfinished job's of the same
 * unique key.
 */
int queue_enqueue(struct db *db, const char *kind, const char *payload,
		  const char *run_at, int priority, int max_attempts,
		  const char *unique_key, long long *id, struct ops_err *err)
	__attribute__((warn_unused_result));

/* Enqueue n jobs of kind in one statement (apexops.enqueue_bulk). */
int queue_enqueue_bulk(struct db *db, const char *kind,
		       const char *const *payloads, int n, long long *first_id,
		       struct ops_err *err) __attribute__((warn_unused_result));

/*
 * Claim at most limit due jobs whose kind is one of kinds[0..nkinds-1]
 * (nkinds 0: any kind), highest priority first, then oldest, skipping
 * jobs other workers hold: each becomes running under owner with a
 * lease of lease_s seconds and its attempt raised. b is filled (b->n may
 * be 0); release it with queue_batch_release().
 */
int queue_claim(struct db *db, const char *const *kinds, int nkinds, int limit,
		const char *owner, long lease_s, struct queue_batch *b,
		struct ops_err *err) __attribute__((warn_unused_result));

/* One pool's part of queue_claim_pools(): up to limit (0: none) due jobs
 * of kinds[0..nkinds-1], 1 <= nkinds <= QUEUE_POOL_KINDS. */
#define QUEUE_POOL_KINDS 8
#define QUEUE_MAX_POOLS	 2
struct queue_pool_claim {
	const char *const *kinds;
	int nkinds;
	int limit;
};

/*
 * Claim for each of pools[0..npools-1] (1 <= npools <= QUEUE_MAX_POOLS,
 * kinds of different pools distinct) up to its own limit, as queue_claim()
 * would for it alone, in one statement and one round trip (the worker's
 * default and privacy pools). b gets every pool's jobs, highest priority
 * first, then oldest; the caller sorts them by kind. The statement is
 * prepared once per connection and shape (kinds per pool).
 */
int queue_claim_pools(struct db *db, const struct queue_pool_claim *pools,
		      int npools, const char *owner, long lease_s,
		      struct queue_batch *b, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * queue_complete() of done_ids[0..ndone-1] (ndone may be 0), then
 * queue_claim(), in one statement and one commit (apexops.queue_claim):
 * the worker's round trip per batch. limit 0 only completes.
 */
int queue_complete_claim(struct db *db, const long long *done_ids,
			 const int *done_attempts, int ndone,
			 const char *const *kinds, int nkinds, int limit,
			 const char *owner, long lease_s, struct queue_batch *b,
			 struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * Mark succeeded every job ids[i] still running under attempts[i] and
 * owner, in one statement; *done (may be NULL) gets how many were.
 * A job whose lease lapsed and was claimed again is left alone (fenced).
 */
int queue_complete(struct db *db, const long long *ids, const int *attempts,
		   int n, const char *owner, int *done, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * Record a failed attempt of job id (still running under attempt and
 * owner): error is kept with every earlier one; the job is retried after
 * retry_delay_ms (state failed-retrying) unless permanent or out of
 * attempts (then dead). state_out (may be NULL, 16 bytes) gets the new
 * state. OPS_E_CONFLICT when the job is no longer ours.
 */
int queue_fail(struct db *db, long long id, int attempt, const char *owner,
	       const char *error, bool permanent, long retry_delay_ms,
	       char *state_out, struct ops_err *err)
	__attribute__((warn_unused_result));

/* The wait before retrying a job whose attempt (from 1) failed: full
 * jitter (AWS), a random delay in [0, min(1 h, 1 s * 2^(attempt - 1))].
 * Thread-safe. */
long queue_retry_delay_ms(int attempt);

/* Extend the leases of ids held by owner by lease_s; *renewed (may be
 * NULL) gets how many still were. */
int queue_renew(struct db *db, const long long *ids, int n, const char *owner,
		long lease_s, int *renewed, struct ops_err *err)
	__attribute__((warn_unused_result));

/* Give back jobs ids held by owner without counting the attempt (a
 * graceful stop): they are available again at once. */
int queue_release(struct db *db, const long long *ids, const int *attempts,
		  int n, const char *owner, struct ops_err *err)
	__attribute__((warn_unused_result));

/* Jobs whose lease lapsed (their worker died): the attempt counts as
 * failed ("the lease of OWNER lapsed"), retried or dead. *n gets how
 * many. */
int queue_reap(struct db *db, int *n, struct ops_err *err)
	__attribute__((warn_unused_result));

/* Operator actions. retry: a dead, cancelled or retrying job becomes
 * available now with its attempts reset (id 0: every dead job); cancel: an
 * available or retrying job is cancelled (a running one is refused).
 * *n gets how many changed. */
int queue_retry(struct db *db, long long id, int *n, struct ops_err *err)
	__attribute__((warn_unused_result));
int queue_cancel(struct db *db, long long id, int *n, struct ops_err *err)
	__attribute__((warn_unused_result));

/* Delete finished jobs: succeeded and cancelled older than keep_days,
 * dead older than dead_days; *n gets how many. */
int queue_prune(struct db *db, long keep_days, long dead_days, long long *n,
		struct ops_err *err) __attribute__((warn_unused_result));

/* JSON texts for the CLI (caller frees *json). stats: an object keyed by
 * kind, then state: {count, oldest_age_s}; list: an array, newest first;
 * show: one job with every attempt's error, or OPS_E_NOTFOUND. */
int queue_stats_json(struct db *db, char **json, struct ops_err *err)
	__attribute__((warn_unused_result));
int queue_list_json(struct db *db, const char *state, const char *kind,
		    long limit, char **json, struct ops_err *err)
	__attribute__((warn_unused_result));
int queue_show_json(struct db *db, long long id, char **json,
		    struct ops_err *err) __attribute__((warn_unused_result));

#define QUEUE_STALE_S 60

/* The "queue" section of `apexops status`: depth, running, retrying,
 * dead, the oldest due job's age, and each kind (up to 5, the longest
 * waiting first) whose due jobs have waited over QUEUE_STALE_S: a kind no
 * running worker handles (a typo in an enqueue, a worker not started)
 * shows there rather than only as a growing age. */
struct buf;
int queue_status_report(struct db *db, struct buf *out, struct ops_err *err);

#endif
