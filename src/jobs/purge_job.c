/* The usage-purge job; see purge_job.h. */
#include "jobs/purge_job.h"

#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "jobs/job.h"
#include "jobs/purge.h"

int
purge_job_run(struct job_ctx *ctx, struct ops_err *err)
{
	struct purge_opts o;
	struct purge_result local, *res;
	int r;

	if (ctx->args != NULL) {
		o = *(const struct purge_opts *)ctx->args;
	} else {
		memset(&o, 0, sizeof(o));
		o.months = ctx->cfg->usage_retention_months;
		o.tz = ctx->cfg->cron_tz;
		o.execute = true;
	}
	/* apexops.purge_runs (still written by the engine) knows only manual
	 * and scheduled; the ledger row keeps the real trigger */
	o.trigger = strcmp(ctx->trigger, "catch-up") == 0 ? "scheduled"
							  : ctx->trigger;
	if (o.stop == NULL)
		o.stop = ctx->stop;
	res = ctx->out != NULL ? ctx->out : &local;
	ctx->mode = o.execute ? "execute" : "dry-run";
	r = job_note_params(ctx, err);
	if (r != 0)
		return r;
	r = purge_run(ctx->db, &o, res, err);
	free(ctx->counts);
	ctx->counts = purge_result_json(res);
	return r;
}
