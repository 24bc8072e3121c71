/* The usage-purge job: the retention purge through the job interface. */
#ifndef OPS_JOBS_PURGE_JOB_H
#define OPS_JOBS_PURGE_JOB_H

#include "core/err.h"

struct job_ctx;

/*
 * Run function of "usage-purge". ctx->args is a struct purge_opts * (the
 * CLI's options, months already resolved) or NULL: then the scheduled
 * job's options come from configuration (USAGE_RETENTION_MONTHS, CRON_TZ,
 * execute). ctx->out may point at a struct purge_result to fill.
 */
int purge_job_run(struct job_ctx *ctx, struct ops_err *err);

#endif
