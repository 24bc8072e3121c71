/* The "jobs" section of `apexops status`. */
#ifndef OPS_JOBS_JOB_STATUS_H
#define OPS_JOBS_JOB_STATUS_H

#include "core/buf.h"
#include "core/err.h"

struct db;

/* Append, per job of the job table, its schedule, last run and outcome,
 * last success and runs in progress, read from apexops.job_runs. */
int job_status_report(struct db *db, struct buf *out, struct ops_err *err);

#endif
