/* The queue-prune job: finished queue jobs deleted by age. */
#include "jobs/queue_job.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/xalloc.h"
#include "jobs/job.h"
#include "jobs/queue.h"

/* Dead jobs are kept longer, for inspection: at least this many days. */
#define DEAD_KEEP_DAYS 30

int
queue_prune_job_run(struct job_ctx *ctx, struct ops_err *err)
{
	long keep =
		ctx->cfg->queue_keep_days > 0 ? ctx->cfg->queue_keep_days : 7;
	long dead = keep > DEAD_KEEP_DAYS ? keep : DEAD_KEEP_DAYS;
	long long n = 0;
	int r;

	ctx->mode = "execute";
	free(ctx->params);
	ctx->params = xasprintf("{\"keep_days\": %ld, \"dead_keep_days\": %ld}",
				keep, dead);
	r = queue_prune(ctx->db, keep, dead, &n, err);
	free(ctx->counts);
	ctx->counts = xasprintf("{\"deleted\": %lld}", n);
	return r;
}
