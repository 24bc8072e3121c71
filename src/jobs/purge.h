/*
 * The retention purge engine, shared by `apexops purge` and the scheduler's
 * 02:30 job. One policy list names the tables and their timestamp column.
 * The cutoff is the start of "today" in a time zone minus N calendar months,
 * clamped at month end, computed by PostgreSQL. A dry-run counts; an
 * execution removes exactly the rows older than the cutoff: whole expired
 * range partitions are detached and dropped, the rest goes in short batched
 * transactions sized to a target duration. The engine keeps no books of
 * its own: `apexops purge`, the scheduler and the systemd unit run it as the
 * job "usage-purge" (jobs/purge_job.h), whose run is a row of the run
 * ledger (apexops.job_runs). Nothing here prints: results come back in
 * structs, progress goes through core/progress.h, the log and on_progress.
 */
#ifndef OPS_JOBS_PURGE_H
#define OPS_JOBS_PURGE_H

#include <signal.h>
#include <stdbool.h>

#include "core/buf.h"
#include "core/err.h"

struct db;
struct purge_result;

/* One retention policy: rows of schema.table whose column is older than
 * the cutoff expire. Constants, never data, so they may appear in SQL. */
struct purge_policy {
	const char *schema;
	const char *table;
	const char *column;
};

extern const struct purge_policy purge_policies[];
extern const int purge_npolicies;

#define PURGE_MAX_TABLES 8
#define PURGE_MAX_REFS	 8

/*
 * The default pause between two drops of detached expired partitions.
 * Freeing a month's files stalls live writers' fsyncs: measured on a
 * 2-vCPU machine with ext4 mounted with discard (bench/purge-drops, 18
 * months of 32 MB, a 200 tx/s durable writer), drops back to back put
 * the writer's p99 at 3.2-4.1x idle in 5 quiet runs of 5, drops 1.5 s
 * apart at 1.16-1.43x in 4 of 4.
 */
#define PURGE_DROP_PAUSE_MS 1500

/* The advisory lock name that keeps two purges from running at once. */
#define PURGE_LOCK_NAME "apexops.purge"

struct purge_opts {
	long months;	   /* 1..1200 (callers validate) */
	const char *tz;	   /* IANA zone of "today"; NULL: UTC */
	const char *as_of; /* YYYY-MM-DD pinning "today", or NULL */
	bool execute;	   /* false: dry-run (plan only) */
	/* an as-of after today (in tz) is refused unless this is set, and
	 * even then only for a dry-run */
	bool allow_future_as_of;
	/* leave expired rows that an ON DELETE RESTRICT / NO ACTION foreign
	 * key references in place instead of refusing to execute */
	bool skip_referenced;
	long batch_ms;	      /* target batch duration; 0: 200 */
	long batch_min;	      /* first/least batch size; 0: 500 */
	long batch_max;	      /* largest batch; 0: 2000 (WAL per commit) */
	long lock_timeout_ms; /* per batch; 0: 100 */
	/* the pacer (jobs/pace.h) sizes the batches and pauses between
	 * them from the database's response; true: the fixed loop
	 * (batch_ms/batch_min/batch_max only) */
	bool no_pace;
	long max_rate; /* rows/s ceiling; 0: none */
	long sleep_ms; /* pause after each batch */
	/* pause between two drops of detached expired partitions; 0:
	 * PURGE_DROP_PAUSE_MS when paced, none with no_pace; negative: none */
	long drop_pause_ms;
	/* the pacer's pause after each batch, as a multiple of the batch's
	 * duration (pt-archiver's --sleep-coef); 0: its default; negative:
	 * none */
	double sleep_coef;
	/* the pacer's standby guard (pt-archiver's --max-lag): a standby
	 * whose replay lags more than max_lag_ms, or max_lag_bytes of WAL,
	 * makes it wait, at most max_lag_wait_ms at a time (then the run
	 * stops, exit 75); 0: the pacer's defaults (PACE_DEFAULT_MAX_LAG_MS,
	 * _BYTES, _WAIT_MS) */
	long max_lag_ms;
	long long max_lag_bytes;
	long max_lag_wait_ms;
	bool vacuum;	   /* VACUUM (ANALYZE) each purged table */
	bool progress_tty; /* progress drawn on a terminal */
	/* the run ledger's id of this run (res->run_id, and recorded with
	 * each detached partition); 0: none */
	long long run_id;
	/* polled between batches: non-zero stops after the current one */
	volatile sig_atomic_t *stop;
	/*
	 * Called once the cutoff is known, then after a batch commits at most
	 * about once a second, and at the end of each table, with the result
	 * so far (for the run record). A failure is logged and the purge goes
	 * on. NULL: none.
	 */
	int (*on_progress)(void *arg, const struct purge_result *res,
			   struct ops_err *err);
	void *progress_arg;
};

/* A foreign key that references a policy table, as the plan found it. */
struct purge_ref {
	char table[128];	    /* the referencing table (regclass text) */
	char constraint[128];	    /* its constraint name */
	char action[16];	    /* "cascade", "set null", "set default",
				       "restrict", "no action" */
	long long referencing_rows; /* its rows that reference expired rows */
	long long referenced_rows;  /* expired rows it references */
};

struct purge_table_result {
	char name[128];		  /* schema.table */
	bool missing;		  /* the table does not exist: skipped */
	bool partitioned;	  /* range-partitioned by the policy column */
	long long planned_rows;	  /* rows older than the cutoff (plan) */
	long long null_rows;	  /* rows whose column is NULL: kept */
	long long est_bytes;	  /* estimated bytes the planned rows use */
	char oldest[40];	  /* oldest affected value (UTC), "" if none */
	char newest[40];	  /* newest affected value (UTC), "" if none */
	int partitions_planned;	  /* whole partitions older than the cutoff */
	long long partition_rows; /* rows in those partitions (plan) */
	char partitions[512];	  /* their names, comma-separated */
	/* why expired partitions are purged row by row instead of dropped
	 * whole ("" when they are dropped) */
	char partitions_off[96];
	/* expired partitions an earlier run detached and did not drop
	 * (apexops.purge_detached): dropped first; their rows are in
	 * planned_rows */
	int detached_pending;
	long long detached_rows;
	char detached[512]; /* their names, comma-separated */
	/* execution */
	long long deleted_rows;	 /* total removed (batches + partitions) */
	int partitions_detached; /* expired partitions detached by this run */
	int partitions_dropped;	 /* detached tables dropped (any run's) */
	/* detached tables still to drop at the end (a lock kept them) */
	int detached_left;
	int partitions_kept; /* could not be dropped: purged row-wise */
	long long batches;
	long long lock_retries;
	double partition_seconds; /* detaching and dropping partitions */
	/* detaching alone: from the first expired month's detach to the
	 * last's, the time in which the expired months left the table */
	double partition_detach_seconds;
	double seconds; /* everything for this table */
	int passes;	/* walks over the expired range */
	/* expired rows still there when the table was done, and why */
	long long left_rows;
	long long left_locked;	   /* locked by another transaction */
	long long left_trigger;	   /* kept by a trigger */
	long long left_referenced; /* kept: a RESTRICT/NO ACTION reference */
	long long left_other;	   /* written behind the purge meanwhile */
	bool census;		   /* the left_* counts were taken */
	int nrefs;
	struct purge_ref refs[PURGE_MAX_REFS];
	bool vacuumed;
	char vacuum_error[512]; /* a failed --vacuum: a warning, "" if none */
};

struct purge_result {
	long long run_id;      /* apexops.job_runs.id; 0 if not recorded */
	char cutoff[40];       /* UTC, ISO-8601 with microseconds and Z */
	char cutoff_local[40]; /* the same instant in tz, no offset */
	char today[11];	       /* the "today" used (as-of or the tz's date) */
	char tz[64];
	long months;
	bool execute;  /* the mode asked for */
	bool executed; /* the execution started (the plan was complete) */
	bool stopped;  /* a stop flag ended the run early */
	/* "succeeded", "partial" (rows the plan counted were left, see
	 * left_*), "stopped" or "failed" (error); "" before the end */
	char status[16];
	char error[512];
	int abandoned; /* stale running rows marked abandoned */
	int ntables;
	struct purge_table_result tables[PURGE_MAX_TABLES];
	long long planned_total;
	long long deleted_total;
	long long null_total;
	long long left_total;  /* sum of the tables' left_rows */
	long long left_locked; /* of which locked by another transaction */
	int warnings;	       /* e.g. a failed VACUUM */
	long drop_pause_ms;    /* the pause between two drops, resolved */
	int detached_other;    /* recorded detached tables of other parents */
	/* what the pacer did (executions with pacing) */
	bool paced;
	long long pace_backoffs;
	long long pace_pauses;
	double pace_pause_ms;
	long long pace_lag_waits;
	double pace_lag_wait_ms;
	double pace_max_lag_ms;
	long long pace_max_lag_bytes;
	long pace_batch_lo, pace_batch_hi;
	/* the flush canary: its floor and its slowest round trip, ms */
	double pace_flush_floor_ms, pace_flush_max_ms;
	char pace_last_backoff[32]; /* why it last backed off, or "" */
	double seconds;
};

/*
 * Run one purge (dry-run or execute, per o->execute) on db: compute the
 * cutoff, plan every policy table and, when executing, remove what the plan
 * counted. The caller holds the purge lock and keeps the run record
 * (job_run() does both). res is filled as far as the run got, also on
 * failure (res->status and res->error say how it ended). Returns 0 when it
 * succeeded; OPS_E_INVALID for an as-of after today; OPS_E_REFUSED before
 * deleting anything when a RESTRICT / NO ACTION key references expired rows
 * (unless o->skip_referenced); for a "partial" run, OPS_E_CONFLICT
 * (transient) when rows were left locked by another transaction, else
 * OPS_E_REFUSED (kept by a trigger); OPS_E_STOPPED (transient) after a stop
 * request, after the current batch.
 */
int purge_run(struct db *db, const struct purge_opts *o,
	      struct purge_result *res, struct ops_err *err);

/*
 * Refuse an as-of after today in tz unless o->allow_future_as_of, and
 * then for a dry-run only (OPS_E_INVALID naming the date and today). 0
 * when o->as_of is NULL. purge_run() checks it too; a command checks it
 * first so that a refused run leaves no record.
 */
int purge_check_as_of(struct db *db, const struct purge_opts *o, const char *tz,
		      struct ops_err *err);

/* The result as indented JSON text (caller frees). */
char *purge_result_json(const struct purge_result *res);

/* For the run ledger, as compact JSON object texts (caller frees): params
 * {months, tz, as_of, today, cutoff, execute flags}, and counts
 * {rows_planned, rows_deleted, null_rows, left_rows, left_locked, left,
 * warnings, status, tables}, as purge_result_json() has the tables. */
char *purge_params_json(const struct purge_result *res,
			const struct purge_opts *o);
char *purge_counts_json(const struct purge_result *res);

/*
 * The cutoff for months and tz with "today" = as_of (or the current date
 * in tz): cutoff_utc gets ISO-8601 UTC (size >= 40), cutoff_local the local
 * time, today the date used. Computed by PostgreSQL.
 */
int purge_cutoff(struct db *db, long months, const char *tz, const char *as_of,
		 char *cutoff_utc, char *cutoff_local, char *today,
		 struct ops_err *err);

/*
 * The last `limit` runs of "usage-purge" from the run ledger, newest
 * first, as a JSON array text (caller frees *json), each with the fields
 * apexops.purge_runs had: id, started_at, finished_at, status, mode,
 * trigger, os_user, db_user, application_name, client_host, months, tz,
 * as_of, today, cutoff, rows_planned, rows_deleted, null_rows, duration_ms,
 * error, tables.
 */
int purge_history_json(struct db *db, long limit, char **json,
		       struct ops_err *err);

/*
 * For the status screen: per policy table, the oldest retained created_at
 * and its age, then the last purge run; appended to out as text lines.
 */
int purge_status_report(struct db *db, struct buf *out, struct ops_err *err);

#endif
