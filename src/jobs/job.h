/*
 * The job interface: every unit of work apexops runs on its own (the
 * retention purge, sandbox revenue, and the scheduler's and workers' jobs)
 * is a row of one table. `apexops purge`, `apexops sandbox revenue`, `apexops
 * cron run JOB`, the scheduler and the workers all start a job through
 * job_run(), which records the run in the ledger (jobs/ledger.h), takes the
 * job's advisory lock, calls its run function and settles the run row.
 *
 * A run function gets a context: the database, the configuration, how it
 * was started, a stop flag to poll, and two job-specific pointers: args
 * (options a CLI command parsed; NULL means "from configuration", as the
 * scheduler runs it) and out (a job-specific result the caller wants to
 * print; may be NULL). It fills ctx->counts and ctx->params (JSON object
 * texts, malloc'ed, for the ledger) and returns 0 or an OPS_E_* code with
 * err filled. It never prints; it never exits.
 *
 * Thread safety: job_table is constant; job_run() may run in several
 * threads at once, each with its own struct db.
 */
#ifndef OPS_JOBS_JOB_H
#define OPS_JOBS_JOB_H

#include <signal.h>
#include <stdbool.h>

#include "core/config.h"
#include "core/err.h"

struct db;

struct job_ctx {
	struct db *db;		      /* connected; owned by the caller */
	const struct ops_config *cfg; /* loaded; owned by the caller */
	const char *trigger;	      /* LEDGER_MANUAL, _SCHEDULED, _CATCH_UP */
	const char *slot;	      /* RFC 3339 UTC slot, NULL for manual */
	volatile sig_atomic_t *stop;  /* polled; NULL: never stopped */
	bool progress_tty;	      /* draw progress on stderr */
	const void *args;	      /* job-specific options, or NULL */
	void *out;		      /* job-specific result, or NULL */
	/* a run the scheduler already claimed: run_id set on entry, with the
	 * attempt and lease owner that fence its completion */
	int attempt;
	const char *lease_owner;
	/* filled by job_run() and the run function */
	long long run_id;     /* the ledger row; 0 when not recorded */
	char *params;	      /* JSON object text (run fn, malloc'ed) */
	char *counts;	      /* JSON object text (run fn, malloc'ed) */
	const char *mode;     /* "execute" / "dry-run" / NULL (run fn) */
	const char *status;   /* how job_run() settled the row */
	bool no_record;	      /* run fn: do not keep this run in the ledger */
	double last_progress; /* job_progress(): monotonic seconds */
};

enum job_flags {
	JOB_UNAVAILABLE = 1 << 0, /* capability not built: recorded as such */
	JOB_MANUAL_ONLY = 1 << 1, /* never scheduled (sandbox revenue) */
	/* the scheduler's takeover policy: a run whose holder died is
	 * recorded abandoned instead of retried (for a job whose rerun is
	 * not safe; every job today is, so none sets it) */
	JOB_ABANDON_ON_TAKEOVER = 1 << 2
};

struct job_def {
	const char *name;     /* "usage-purge" */
	const char *schedule; /* default cron expression; NULL: none */
	const char *lock;     /* advisory lock name; NULL: none */
	int flags;	      /* enum job_flags */
	/* NULL only with JOB_UNAVAILABLE */
	int (*run)(struct job_ctx *ctx, struct ops_err *err);
	const char *summary;
	const char *noun; /* "purge": "another purge is running"; NULL: name */
};

extern const struct job_def job_table[];
extern const int job_count;

/* The job called name, or NULL. */
const struct job_def *job_find(const char *name);

/*
 * Run j once in ctx (db, cfg, trigger required): record a running ledger
 * row (unless ctx->run_id names one the scheduler claimed), take j->lock
 * (OPS_E_CONFLICT naming the holder when another session has it), call j->run,
 * settle the row (succeeded, failed, stopped, or unavailable for a
 * JOB_UNAVAILABLE job) and release the lock. Returns the run function's result.
 * ctx->params/counts are freed by job_ctx_release().
 */
int job_run(const struct job_def *j, struct job_ctx *ctx, struct ops_err *err);

/*
 * For run functions: record ctx->mode and ctx->params in the run row as
 * soon as they are known (the row was written before the job started).
 */
int job_note_params(struct job_ctx *ctx, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * For run functions: store counts (JSON object text) in the run row, at
 * most once a second unless force; a failed write is logged, never fatal.
 */
void job_progress(struct job_ctx *ctx, const char *counts, bool force);

/*
 * The schedule j runs on under cfg (may be NULL: the default): its
 * APEXOPS_SCHEDULE_<JOB> value, else j->schedule; "off" when disabled or
 * never scheduled. Borrowed from cfg or the table; not validated (the
 * scheduler and `cron list` parse it).
 */
const char *job_schedule(const struct ops_config *cfg, const struct job_def *j);

/* Free what job_run() and the run function left in ctx. */
void job_ctx_release(struct job_ctx *ctx);

#endif
