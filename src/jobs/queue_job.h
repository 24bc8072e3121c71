/* The scheduler's queue-prune job. */
#ifndef OPS_JOBS_QUEUE_JOB_H
#define OPS_JOBS_QUEUE_JOB_H

#include "core/err.h"

struct job_ctx;

/*
 * Run function of "queue-prune": delete succeeded and cancelled queue
 * jobs finished more than APEXOPS_QUEUE_KEEP_DAYS (7) ago and dead ones
 * more than max(30, that) days ago.
 */
int queue_prune_job_run(struct job_ctx *ctx, struct ops_err *err);

#endif
