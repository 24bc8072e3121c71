/* The "jobs" section of `apexops status`. */
#ifndef OPS_JOBS_JOB_STATUS_H
#define OPS_JOBS_JOB_STATUS_H

#include "core/buf.h"
#include "core/err.h"

struct db;

struct ops_config;

/*
 * Append, per job of the job table, its effective schedule under cfg
 * (NULL: defaults) and next fire time in CRON_TZ and UTC, its last run and
 * outcome, last success and runs in progress (from apexops.job_runs), a
 * flag when the last success is older than the schedule allows, and the
 * scheduler replicas seen in the last minute. The process's TZ must be
 * CRON_TZ (the caller sets it). *overdue (may be NULL) counts flagged
 * jobs.
 */
int job_status_report(struct db *db, const struct ops_config *cfg,
		      struct buf *out, int *overdue, struct ops_err *err);

#endif
