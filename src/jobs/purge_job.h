/* The usage-purge job: the retention purge through the job interface. */
#ifndef OPS_JOBS_PURGE_JOB_H
#define OPS_JOBS_PURGE_JOB_H

#include "core/err.h"

struct job_ctx;

/*
 * Run function of "usage-purge". ctx->args is a struct purge_opts * (the
 * CLI's options, months already resolved) or NULL: then the scheduled
 * job's options come from configuration (USAGE_RETENTION_MONTHS, CRON_TZ,
 * execute, trigger from ctx). ctx->out may point at a struct purge_result
 * to fill. It fills ctx->mode, ctx->params (months, tz, as_of, today,
 * cutoff), ctx->counts (purge_counts_json()) and, for a partial run,
 * ctx->status = LEDGER_PARTIAL; progress goes to the run row as batches
 * commit, at most about once a second.
 */
int purge_job_run(struct job_ctx *ctx, struct ops_err *err);

#endif
