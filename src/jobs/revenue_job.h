/*
 * The job "sandbox-revenue" (JOB_MANUAL_ONLY): revenue_run() behind the
 * job interface of jobs/job.h, so `apexops sandbox revenue` is recorded
 * in the run ledger like every other job.
 */
#ifndef OPS_JOBS_REVENUE_JOB_H
#define OPS_JOBS_REVENUE_JOB_H

#include "core/err.h"

struct job_ctx;

#define REVENUE_JOB_NAME "sandbox-revenue"

/*
 * The run function. ctx->args is the CLI's const struct revenue_opts *
 * (NULL, as a scheduler would pass, is OPS_E_INVALID: the job has no
 * configuration of its own and needs a tier); ctx->out, when not NULL, is
 * a struct revenue_result * that gets the plans for the caller to print
 * (the caller releases it with revenue_result_release()). Refuses in
 * production unless the options say force (OPS_E_CONFIG). Fills
 * ctx->params (the options), ctx->counts (per tier: rows, total_cents,
 * deleted, inserted, reference checks) and ctx->mode ("dry-run" or
 * "execute"). A dry run sets ctx->no_record: a preview changes nothing,
 * and the ledger records what changed data. Prints nothing.
 */
int revenue_job_run(struct job_ctx *ctx, struct ops_err *err);

#endif
