/*
 * The scheduler's claims on the run ledger (apexops.job_runs), the only
 * coordinator between replicas:
 *   - a scheduled run is claimed by inserting its (job, slot) row under a
 *     unique index: exactly one replica's insert succeeds;
 *   - the claimer holds a lease (lease_owner, lease_expires_at) that it
 *     renews; a replica that finds a running row whose lease lapsed takes
 *     it over by raising its attempt, the fencing token: renewals and the
 *     completion (ledger_finish_fenced) name the attempt they hold, so a
 *     stale holder's late writes match no row;
 *   - slots that passed while no replica ran are recorded `missed`.
 * Times are unix seconds of the scheduler's clock (core/clock.h), passed
 * as parameters, never the server's now(), so a virtual clock works.
 *
 * Thread safety: each function uses the struct db it is given, which
 * belongs to one thread.
 */
#ifndef OPS_JOBS_SCHED_H
#define OPS_JOBS_SCHED_H

#include <stdbool.h>
#include <time.h>

#include "core/err.h"

struct db;

struct sched_claim {
	long long id;		  /* the job_runs row */
	int attempt;		  /* fencing token */
	time_t slot;		  /* the slot (unix seconds) */
	char trigger[16];	  /* scheduled / catch-up */
	char previous_owner[128]; /* takeover: whom the lease lapsed from */
};

/* The newest slot recorded for job, any status: *found false when none. */
int sched_last_slot(struct db *db, const char *job, time_t *slot, bool *found,
		    struct ops_err *err) __attribute__((warn_unused_result));

/* Is a leased run of job going on (lease not lapsed at now)? */
int sched_busy(struct db *db, const char *job, double now, bool *busy,
	       struct ops_err *err) __attribute__((warn_unused_result));

/*
 * Claim (job, slot) for owner with a lease until lease_until. *claimed is
 * false (and c untouched) when the slot already has a row: another
 * replica claimed it, or it was recorded.
 */
int sched_claim(struct db *db, const char *job, time_t slot,
		const char *trigger, const char *owner, double lease_until,
		struct sched_claim *c, bool *claimed, struct ops_err *err)
	__attribute__((warn_unused_result));

/* Record each slot of slots[0..n-1] as missed with reason why, unless it
 * has a row; *inserted (may be NULL) gets how many were new. */
int sched_record_missed(struct db *db, const char *job, const time_t *slots,
			int n, const char *why, int *inserted,
			struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * Take over one running run of job whose lease lapsed before now: when
 * retry is true and its attempt is below max_attempts, raise the attempt,
 * make owner the holder until lease_until and fill c (*taken true);
 * otherwise mark it abandoned (*taken false, *abandoned true).
 */
int sched_takeover(struct db *db, const char *job, const char *owner,
		   double now, double lease_until, bool retry, int max_attempts,
		   struct sched_claim *c, bool *taken, bool *abandoned,
		   struct ops_err *err) __attribute__((warn_unused_result));

/* Extend a held lease; OPS_E_CONFLICT when owner no longer holds
 * attempt of run id (taken over, or settled). */
int sched_renew(struct db *db, long long id, int attempt, const char *owner,
		double lease_until, struct ops_err *err)
	__attribute__((warn_unused_result));

/* Let the lease lapse at once (a graceful stop left the run unfinished):
 * another replica takes it over on its next pass. */
int sched_release(struct db *db, long long id, int attempt, const char *owner,
		  double now, struct ops_err *err)
	__attribute__((warn_unused_result));

/* Withdraw a claim that could not start (the job's lock was held by a
 * manual run): the row goes, so the slot is claimed again later. */
int sched_unclaim(struct db *db, long long id, int attempt, const char *owner,
		  struct ops_err *err) __attribute__((warn_unused_result));

/* The earliest lease expiry of running runs held by others than owner, in
 * clock seconds: *found false when there is none. The scheduler wakes
 * then, so a lapsed lease is taken over at once. */
int sched_next_expiry(struct db *db, const char *owner, double *t, bool *found,
		      struct ops_err *err) __attribute__((warn_unused_result));

/* Record that replica (host:pid) is alive; and that it stopped. */
int sched_replica_seen(struct db *db, const char *replica, const char *host,
		       int pid, const char *clock, struct ops_err *err)
	__attribute__((warn_unused_result));
int sched_replica_gone(struct db *db, const char *replica, struct ops_err *err)
	__attribute__((warn_unused_result));

#endif
