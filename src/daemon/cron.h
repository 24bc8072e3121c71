/*
 * apexops cron, the scheduler daemon: runs the jobs of the job table
 * (jobs/job.h) on their schedules in CRON_TZ, through job_run(), with
 * exactly one run per (job, slot) however many replicas run (jobs/sched.h),
 * leases and takeover, catch-up within a starting deadline, a grace period
 * on SIGTERM, configuration reload on SIGHUP, and reconnection when the
 * database goes away. Runs in the foreground until a stop signal.
 *
 * Thread safety: call from the main thread; it starts one thread per
 * running job, each with its own connection.
 */
#ifndef OPS_DAEMON_CRON_H
#define OPS_DAEMON_CRON_H

#include "core/config.h"
#include "core/err.h"

struct cron_daemon_opts {
	const char *env_file; /* re-read on SIGHUP; NULL: ./.env if present */
	const char *db_url;   /* resolved URL (DATABASE_URL or embedded) */
	const char
		*http_addr; /* HOST:PORT for /healthz and /metrics, or NULL */
	/* exit after this many seconds of the scheduler's clock (tests and
	 * demos; 0: run until stopped) */
	double run_for_s;
};

/*
 * Check what the daemon would refuse to start with, without starting:
 * every APEXOPS_SCHEDULE_* value, the virtual clock (and that it is not
 * used in production), CRON_TZ. OPS_E_CONFIG naming the variable.
 */
int cron_daemon_check(const struct ops_config *cfg, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * The schedule of job name under cfg: its APEXOPS_SCHEDULE_<JOB> value or
 * its default; "off" when disabled. Borrowed.
 */
const char *cron_daemon_schedule(const struct ops_config *cfg,
				 const char *name);

/*
 * Run the daemon with a copy of cfg (the caller keeps its own) until a
 * stop signal (or run_for_s). Returns 0 after a clean stop, or an error
 * that kept it from starting (configuration, OPS_E_CONFIG).
 */
int cron_daemon_run(const struct ops_config *cfg,
		    const struct cron_daemon_opts *o, struct ops_err *err);

#endif
