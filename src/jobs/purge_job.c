/* The usage-purge job; see purge_job.h. */
#include "jobs/purge_job.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "jobs/job.h"
#include "jobs/ledger.h"
#include "jobs/purge.h"

struct purge_job {
	struct job_ctx *ctx;
	const struct purge_opts *o;
	bool noted; /* params are in the run row */
};

/*
 * The engine's progress: the parameters once the cutoff is known, then the
 * counts as batches commit. The engine calls this at most about once a
 * second (and at the end of each table), so every call is written.
 */
static int
on_progress(void *arg, const struct purge_result *res, struct ops_err *err)
{
	struct purge_job *pj = arg;
	struct job_ctx *ctx = pj->ctx;
	char *counts;

	if (!pj->noted && res->cutoff[0] != '\0') {
		int r;

		free(ctx->params);
		ctx->params = purge_params_json(res, pj->o);
		pj->noted = true;
		r = job_note_params(ctx, err);
		if (r != 0)
			return r;
	}
	counts = purge_counts_json(res);
	job_progress(ctx, counts, true);
	free(counts);
	return 0;
}

int
purge_job_run(struct job_ctx *ctx, struct ops_err *err)
{
	struct purge_opts o;
	struct purge_result local, *res;
	struct purge_job pj;
	int r;

	if (ctx->args != NULL) {
		o = *(const struct purge_opts *)ctx->args;
	} else {
		/* the scheduler and the systemd unit: from configuration */
		memset(&o, 0, sizeof(o));
		o.months = ctx->cfg->usage_retention_months;
		o.tz = ctx->cfg->cron_tz;
		o.execute = true;
		o.progress_tty = ctx->progress_tty;
		o.max_lag_ms = ctx->cfg->purge_max_lag_ms;
		o.max_lag_bytes = ctx->cfg->purge_max_lag_bytes;
		o.max_lag_wait_ms = ctx->cfg->purge_max_lag_wait_s * 1000;
	}
	if (o.stop == NULL)
		o.stop = ctx->stop;
	pj.ctx = ctx;
	pj.o = &o;
	pj.noted = false;
	o.run_id = ctx->run_id;
	o.on_progress = on_progress;
	o.progress_arg = &pj;
	res = ctx->out != NULL ? ctx->out : &local;
	ctx->mode = o.execute ? "execute" : "dry-run";
	r = job_note_params(ctx, err);
	if (r != 0)
		return r;
	r = purge_run(ctx->db, &o, res, err);
	res->run_id = ctx->run_id;
	free(ctx->params);
	ctx->params = purge_params_json(res, &o);
	free(ctx->counts);
	ctx->counts = purge_counts_json(res);
	if (strcmp(res->status, "partial") == 0)
		ctx->status = LEDGER_PARTIAL;
	return r;
}
