/*
 * Dunning: a state machine per failed Stripe invoice (a case in
 * apexops.dunning_cases, each transition in apexops.dunning_transitions,
 * each with its billing_audit row in the same transaction).
 *
 * A run (the scheduler's dunning-retries job at 03:00, or `apexops stripe
 * dunning`):
 *   1. opens a case for every billing_audit payment_failed row whose
 *      invoice has none, and for every invoice of GET /v1/invoices
 *      ?status=open (paged) with attempt_count > 0 that has none (a missed
 *      webhook);
 *   2. takes every due case (open with next_attempt_at reached, an attempt
 *      whose outcome was never committed, a suspended case, a Stripe action
 *      not yet sent) and fetches its invoice: paid by any means closes it
 *      as recovered and reactivates; else attempt n is paid with
 *      Idempotency-Key apexops-dunning-<invoice>-attempt-<n>, its intent
 *      committed before the call (a pending attempt is replayed only
 *      after its invoice's payment intent is read: a debit still
 *      processing stays pending, one that failed is a failed attempt);
 *      a decline schedules the next attempt on
 *      day DUNNING_RETRY_DAYS[n] after the first failure (CRON_TZ), or
 *      suspends after the last one;
 *   3. sends the pause or resume of the subscription's collection that a
 *      transition committed (an outbox: retried by later runs).
 * Stripe calls go through one client-side rate limit (STRIPE_MAX_RPS; 0:
 * 25/s with a test key, 100/s live) from APEXOPS_STRIPE_CONCURRENCY
 * threads, each with its own Stripe client and database connection (the
 * run's own, which holds the job's lock, keeps the ledger; a worker that
 * cannot connect shares it under a mutex).
 *
 * Thread safety: dunning_job_run() runs in one thread (it starts and joins
 * its own); the query functions take a struct db of the calling thread.
 */
#ifndef OPS_STRIPE_DUNNING_H
#define OPS_STRIPE_DUNNING_H

#include <jansson.h>
#include <stdbool.h>

#include "core/buf.h"
#include "core/err.h"

struct db;
struct job_ctx;

#define DUNNING_JOB_NAME "dunning-retries"
#define DUNNING_MAX_DAYS 10

/* Options of `apexops stripe dunning` (job_ctx.args); NULL: execute. */
struct dunning_opts {
	bool dry_run; /* read Stripe, write nothing, send no POST */
};

/* What a run did (job_ctx.out, may be NULL). */
struct dunning_result {
	bool dry_run;
	long opened;	  /* new cases (webhook rows + reconciliation) */
	long reconciled;  /* of which found only by reconciliation */
	long open_seen;	  /* open invoices with failed attempts listed */
	long smart_retry; /* of those, with Stripe's own next attempt set */
	long due;	  /* cases taken */
	long paid;	  /* attempts that paid */
	long declined;	  /* attempts declined, attempts left */
	long suspended;
	long recovered; /* closed as recovered (paid by apexops or not) */
	long closed;	/* closed otherwise (void, gone) */
	long pending;	/* outcome still unknown (left for the next run) */
	long errors;	/* cases that failed this run */
	long stripe_calls;
	json_t *cases; /* array of {invoice, action, attempt, detail}; owned */
};

/* Run function of the dunning-retries job (jobs/job.h). Reads
 * STRIPE_SECRET_KEY (or STRIPE_SECRET_KEY_FILE) afresh: none is
 * OPS_E_CONFIG naming it. */
int dunning_job_run(struct job_ctx *ctx, struct ops_err *err);

/* Free what res holds (res itself is the caller's). NULL is a no-op. */
void dunning_result_release(struct dunning_result *res);

/* res as a JSON object text the caller frees. */
char *dunning_result_json(const struct dunning_result *res);

/*
 * Parse DUNNING_RETRY_DAYS ("3,5,7": increasing whole days, 1..365) into
 * days (at most DUNNING_MAX_DAYS); *n gets how many. Returns 0 or
 * OPS_E_CONFIG naming the variable.
 */
int dunning_parse_days(const char *s, int *days, int *n, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * Cases as a JSON array (caller json_decref()s *out), newest first;
 * status NULL: every status, else open|recovered|suspended|closed.
 */
int dunning_list(struct db *db, const char *status, long limit, json_t **out,
		 struct ops_err *err) __attribute__((warn_unused_result));

/*
 * One case by its invoice id with every transition, oldest first, as a
 * JSON object (caller json_decref()s *out); none is OPS_E_NOTFOUND.
 */
int dunning_show(struct db *db, const char *invoice, json_t **out,
		 struct ops_err *err) __attribute__((warn_unused_result));

/* The `apexops status` section: open cases, the next attempts,
 * suspensions in the last 7 days. */
int dunning_status_report(struct db *db, struct buf *out, struct ops_err *err);

#endif
