/* The job table and job_run(); see job.h. */
#include "jobs/job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/stop.h"
#include "db/db.h"
#include "db/lock.h"
#include "jobs/ledger.h"
#include "jobs/privacy.h"
#include "jobs/purge_job.h"
#include "jobs/queue_job.h"
#include "jobs/revenue_job.h"
#include "stripe/dunning.h"
#include "stripe/usage.h"

/*
 * Every job apexops knows, in the order of the original's schedule
 * (ORIGINAL-SYSTEM.md §2.1). Lock names keep the keys older binaries
 * use, so that an old and a new binary still exclude each other.
 */
const struct job_def job_table[] = {
	{ "stripe-usage-sync", "0 2 * * *", "apexops.stripe-usage-sync", 0,
	  usage_job_run, "report yesterday's usage to Stripe as meter events",
	  "usage sync" },
	{ "usage-purge", "30 2 * * *", "apexops.purge", 0, purge_job_run,
	  "retention purge of usage_events and billing_audit", "purge" },
	{ "dunning-retries", "0 3 * * *", "apexops.dunning-retries", 0,
	  dunning_job_run, "retry failed payments on schedule", "dunning run" },
	{ "privacy-expiry", "0 4 * * *", "apexops.privacy-expiry", 0,
	  privacy_expiry_job_run, "delete expired privacy exports",
	  "privacy expiry" },
	{ "queue-prune", "15 4 * * *", "apexops.queue-prune", 0,
	  queue_prune_job_run, "delete finished queue jobs past their age",
	  "queue prune" },
	/* no lock here: revenue_run() takes its own, and not for a dry run */
	{ REVENUE_JOB_NAME, NULL, NULL, JOB_MANUAL_ONLY, revenue_job_run,
	  "write a deterministic sandbox revenue scenario", "sandbox revenue" },
};
const int job_count = (int)(sizeof(job_table) / sizeof(job_table[0]));

const struct job_def *
job_find(const char *name)
{
	if (name == NULL)
		return NULL;
	for (int i = 0; i < job_count; i++)
		if (strcmp(job_table[i].name, name) == 0)
			return &job_table[i];
	return NULL;
}

static double
mono_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Take j's lock once (db/lock.h); on conflict name the session that
 * holds it, in the job's own words. */
static int
take_lock(struct db *db, const struct job_def *j, struct ops_err *err)
{
	struct db_lock_holder h;
	bool held = false;
	int r;

	r = db_lock_try(db, j->lock, err);
	if (r != OPS_E_CONFLICT)
		return r;
	ops_err_clear(err);
	if (db_lock_holder(db, j->lock, &h, &held, err) == 0 && held &&
	    h.pid != 0)
		return ops_fail(err, OPS_E_CONFLICT, true,
				"another %s is running (job %s, backend pid "
				"%d, %s, %s, connected since %s): wait for it "
				"to finish or stop it, then run again",
				j->noun ? j->noun : "run of the job", j->name,
				h.pid, h.appname[0] ? h.appname : "no name",
				h.client, h.since);
	return ops_fail(
		err, OPS_E_CONFLICT, true,
		"another %s is running (job %s): wait for it to finish, "
		"then run again",
		j->noun ? j->noun : "run of the job", j->name);
}

static const char *
settled_status(const struct job_ctx *ctx, int r)
{
	if (r == OPS_E_STOPPED)
		return LEDGER_STOPPED;
	if (ctx->status != NULL && strcmp(ctx->status, LEDGER_PARTIAL) == 0)
		return LEDGER_PARTIAL;
	return r == 0 ? LEDGER_SUCCEEDED : LEDGER_FAILED;
}

int
job_run(const struct job_def *j, struct job_ctx *ctx, struct ops_err *err)
{
	struct ledger_start ls;
	struct ops_err ferr = OPS_ERR_INIT;
	bool locked = false;
	int r;

	if (ctx->lease_owner == NULL)
		ctx->run_id = 0;
	if (j->lock != NULL) {
		r = take_lock(ctx->db, j, err);
		if (r != 0)
			return r;
		locked = true;
	}
	/* any job's stale rows: a killed run of another job is seen too */
	r = ledger_abandon_stale(ctx->db, NULL, NULL, err);
	if (r != 0)
		goto out;
	if (ctx->lease_owner == NULL) {
		memset(&ls, 0, sizeof(ls));
		ls.job = j->name;
		ls.trigger = ctx->trigger;
		ls.slot = ctx->slot;
		ls.params = ctx->params;
		ls.mode = ctx->mode;
		r = ledger_start(ctx->db, &ls, &ctx->run_id, err);
		if (r != 0)
			goto out;
	}
	log_info("job started job=%s run=%lld trigger=%s", j->name, ctx->run_id,
		 ctx->trigger);
	if (j->flags & JOB_UNAVAILABLE) {
		r = ops_fail(err, OPS_E_REFUSED, false,
			     "job %s is not available in apexops %s yet",
			     j->name, APEXOPS_VERSION);
		ctx->status = LEDGER_UNAVAILABLE;
	} else {
		ctx->last_progress = 0;
		r = j->run(ctx, err);
		if (db_in_tx(ctx->db))
			db_rollback(ctx->db);
		ctx->status = settled_status(ctx, r);
		/* what the run fn learnt of its mode and parameters */
		if ((ctx->mode != NULL || ctx->params != NULL) &&
		    ledger_set_params(ctx->db, ctx->run_id, ctx->mode,
				      ctx->params, &ferr) != 0)
			log_warn("could not record the parameters run=%lld "
				 "error=%s",
				 ctx->run_id, log_q(ferr.msg));
	}
	if (ctx->no_record && r == 0) {
		if (ledger_forget(ctx->db, ctx->run_id, &ferr) != 0)
			log_warn("could not forget run run=%lld error=%s",
				 ctx->run_id, log_q(ferr.msg));
	} else {
		char msg[sizeof(err->msg)];

		msg[0] = '\0';
		if (r != 0 && err != NULL) {
			snprintf(msg, sizeof(msg), "%s", err->msg);
			log_scrub(msg);
		}
		int fr;

		if (ctx->lease_owner != NULL)
			fr = ledger_finish_fenced(
				ctx->db, ctx->run_id, ctx->attempt,
				ctx->lease_owner, ctx->status, ctx->counts,
				r != 0 ? msg : NULL, &ferr);
		else
			fr = ledger_finish(ctx->db, ctx->run_id, ctx->status,
					   ctx->counts, r != 0 ? msg : NULL,
					   &ferr);
		if (fr != 0) {
			log_warn("could not record the outcome job=%s run=%lld "
				 "status=%s error=%s",
				 j->name, ctx->run_id, ctx->status,
				 log_q(ferr.msg));
			if (r == 0) /* the record is the product: say so */
				r = ops_fail(err, ferr.code, ferr.transient,
					     "%s", ferr.msg);
		}
	}
	log_info("job finished job=%s run=%lld status=%s", j->name, ctx->run_id,
		 ctx->status);
out:
	if (locked) {
		struct ops_err uerr = OPS_ERR_INIT;

		if (db_lock_release(ctx->db, j->lock, &uerr) != 0)
			log_warn("could not release the lock job=%s error=%s",
				 j->name, log_q(uerr.msg));
	}
	return r;
}

int
job_note_params(struct job_ctx *ctx, struct ops_err *err)
{
	if (ctx->run_id == 0)
		return 0;
	return ledger_set_params(ctx->db, ctx->run_id, ctx->mode, ctx->params,
				 err);
}

void
job_progress(struct job_ctx *ctx, const char *counts, bool force)
{
	struct ops_err err = OPS_ERR_INIT;
	double now = mono_seconds();

	if (ctx->run_id == 0 || (!force && now - ctx->last_progress < 1.0))
		return;
	ctx->last_progress = now;
	if (ledger_progress(ctx->db, ctx->run_id, counts, &err) != 0)
		log_warn("could not record progress run=%lld error=%s",
			 ctx->run_id, log_q(err.msg));
}

void
job_ctx_release(struct job_ctx *ctx)
{
	if (ctx == NULL)
		return;
	free(ctx->params);
	free(ctx->counts);
	ctx->params = NULL;
	ctx->counts = NULL;
}

const char *
job_schedule(const struct ops_config *cfg, const struct job_def *j)
{
	const char *v = NULL;

	if (j == NULL || (j->flags & JOB_MANUAL_ONLY) || j->schedule == NULL)
		return "off";
	if (cfg != NULL) {
		if (strcmp(j->name, "stripe-usage-sync") == 0)
			v = cfg->schedule_stripe_usage_sync;
		else if (strcmp(j->name, "usage-purge") == 0)
			v = cfg->schedule_usage_purge;
		else if (strcmp(j->name, "dunning-retries") == 0)
			v = cfg->schedule_dunning_retries;
		else if (strcmp(j->name, "privacy-expiry") == 0)
			v = cfg->schedule_privacy_expiry;
		else if (strcmp(j->name, "queue-prune") == 0)
			v = cfg->schedule_queue_prune;
	}
	return v != NULL ? v : j->schedule;
}
