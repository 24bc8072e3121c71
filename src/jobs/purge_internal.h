/*
 * Between the parts of the purge engine (not for other modules): the
 * policy helpers (purge.c), the plan (purge_plan.c), the execution
 * (purge_exec.c) and the reporting (purge_report.c); the run bookkeeping
 * is the run ledger's (jobs/purge_job.c). purge.h stays the public
 * interface.
 *
 * Identifiers that these files put into SQL text are policy constants or
 * names that PostgreSQL itself quoted (regclass output, format('%I')),
 * never data. Not thread-safe beyond what struct db allows: one run per
 * connection.
 */
#ifndef OPS_JOBS_PURGE_INTERNAL_H
#define OPS_JOBS_PURGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/progress.h"
#include "jobs/purge.h"

struct db;
struct db_res;
struct pace;

/* to_char() format of an instant in UTC, ISO-8601 with microseconds: the
 * only text form of a timestamp the engine reads back (DateStyle and
 * TimeZone do not change it) */
#define PURGE_TS_FMT "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'"

/* What the catalog says about a policy table. */
struct purge_table_info {
	bool exists;
	bool has_col;
	bool partitioned; /* relkind p */
	bool range_by_col;
	/* whole expired partitions may be dropped: range_by_col, and no
	 * DELETE trigger or rule and no foreign key that dropping a
	 * partition would bypass (set by purge_plan_table()) */
	bool drop_whole;
	/* AND-ed conditions (alias p for the policy table) that keep rows
	 * referenced through RESTRICT / NO ACTION keys; "" if none. Only
	 * used with skip_referenced. */
	char keep_referenced[2048];
};

/* Is the stop flag of o set? */
bool purge_stopping(const struct purge_opts *o);

/* "schema"."table" of a policy (constants, not data). */
void purge_policy_ident(const struct purge_policy *p, char *out, size_t n);

/* Copy a cell ("" for NULL) into dst of size n. */
void purge_copy_cell(char *dst, size_t n, const struct db_res *res, int row,
		     int col);

/* Turn the session's statement_timeout off for statements that scan a
 * whole table (the plan, VACUUM); *saved (caller frees) gets the old
 * value for purge_statement_timeout_restore(), which logs a failure. */
int purge_statement_timeout_off(struct db *db, char **saved,
				struct ops_err *err);
void purge_statement_timeout_restore(struct db *db, char *saved);

/* count(*) of rel (a regclass-quoted name) into *n. */
int purge_count_rel(struct db *db, const char *rel, long long *n,
		    struct ops_err *err);

/* --- purge_plan.c */

/* Fill ti from the catalog. */
int purge_probe_table(struct db *db, const struct purge_policy *p,
		      struct purge_table_info *ti, struct ops_err *err);

/* Count what would go (rows, bytes, partitions, references) into t. */
int purge_plan_table(struct db *db, const struct purge_policy *p,
		     struct purge_table_info *ti, const char *cutoff,
		     struct purge_table_result *t, struct ops_err *err);

/* Whole range partitions of qname whose upper bound is at or before the
 * cutoff, oldest first, one name per row (*out: caller frees). */
int purge_expired_partitions(struct db *db, const char *qname,
			     const char *cutoff, struct db_res **out,
			     struct ops_err *err);

/* OPS_E_REFUSED naming the first RESTRICT / NO ACTION reference to an
 * expired row in res, or 0 when there is none. */
int purge_check_references(const struct purge_result *res, struct ops_err *err);

/* --- purge_exec.c */

struct purge_exec {
	const struct purge_opts *o;
	struct purge_result *res; /* for progress reports */
	struct progress prog;
	double run_started;
	double last_report; /* monotonic time of the last on_progress */
	long long run_done; /* rows deleted in this run, for --max-rate */
	long size;
	struct pace *pace; /* NULL: the fixed loop (no_pace) */
	/* apexops.purge_detached exists: detached tables to drop */
	bool detached_ready;
};

/* Remove what the plan counted from one table; fills t. */
int purge_execute_table(struct db *db, struct purge_exec *x,
			const struct purge_policy *p,
			const struct purge_table_info *ti, const char *cutoff,
			struct purge_table_result *t, struct ops_err *err);

/* Recompute the run totals from the tables. */
void purge_sum(struct purge_result *res);

/* --- purge_report.c */

/* The tables as a JSON array text (caller frees). */
char *purge_tables_json(const struct purge_result *res);

#endif
