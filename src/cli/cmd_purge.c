/*
 * apexops purge (alias purge-old-usage): the retention purge by hand.
 * Dry-run unless CONFIRM is exactly 1 or true, or --execute is given.
 * The engine is jobs/purge.c; this file parses flags, installs the stop
 * signals and prints the plan or the outcome.
 */
#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/signals.h"
#include "db/db.h"
#include "jobs/job.h"
#include "jobs/ledger.h"
#include "jobs/purge.h"

const char cmd_purge_usage[] =
	"usage: apexops purge [--execute | --dry-run] [--months N] "
	"[--as-of YYYY-MM-DD]\n"
	"                     [--scheduled] [--allow-future-as-of] "
	"[--skip-referenced]\n"
	"                     [--batch-ms MS] [--batch-min N] [--batch-max N]\n"
	"                     [--max-rate ROWS_PER_S] [--sleep MS] "
	"[--sleep-coef X]\n"
	"                     [--lock-timeout MS] [--drop-pause MS] "
	"[--pace on|off]\n"
	"                     [--max-lag MS] [--max-lag-bytes SIZE] "
	"[--max-lag-wait S]\n"
	"                     [--vacuum] [--json]\n"
	"       apexops purge history [--limit N] [--json]\n"
	"\n"
	"Delete usage_events and billing_audit rows whose created_at is older "
	"than\nthe start of today in CRON_TZ minus N calendar months (clamped "
	"at month end:\nAug 31 minus 6 months is Feb 28/29). Without "
	"--execute (or CONFIRM=1/true)\nthis is a dry-run: it prints the plan "
	"and deletes nothing.\n"
	"\n"
	"  --execute           delete (same as CONFIRM=1)\n"
	"  --dry-run           plan only, even when CONFIRM=1\n"
	"  --months N          months to keep, 1..1200 (default "
	"RETENTION_MONTHS, 18)\n"
	"  --as-of DATE        take DATE as today (YYYY-MM-DD); a date after "
	"today in\n"
	"                      CRON_TZ is refused\n"
	"  --allow-future-as-of  accept an --as-of after today, for a dry-run "
	"only\n"
	"  --skip-referenced   keep the expired rows that an ON DELETE "
	"RESTRICT or\n"
	"                      NO ACTION foreign key references (without it, "
	"--execute\n"
	"                      refuses to start when there are any)\n"
	"  --pace on|off       on (the default): the pacer sizes the batches "
	"and pauses\n"
	"                      between them by commit latency, a durable "
	"commit's cost,\n"
	"                      sessions waiting on locks or I/O, and standby "
	"replay lag;\n"
	"                      off: fixed batches\n"
	"  --batch-ms MS       target duration of one delete transaction "
	"(pacer 100,\n"
	"                      off 200)\n"
	"  --batch-min N       first and smallest batch, in rows (500)\n"
	"  --batch-max N       largest batch, in rows (pacer 500, off "
	"2000)\n"
	"  --max-rate N        delete at most N rows per second\n"
	"  --sleep MS          pause after each batch\n"
	"  --sleep-coef X      the pacer's pause after each batch, X times "
	"the batch's\n"
	"                      duration (0 to 100; 2 by default, 0 none)\n"
	"  --lock-timeout MS   give up a batch that waits this long for a "
	"lock and\n"
	"                      retry it shortly after (100)\n"
	"  --drop-pause MS     pause between two drops of detached expired "
	"partitions\n"
	"                      (pacer 1500, off 0; 0 none)\n"
	"  --max-lag MS        the pacer waits while a standby's replay lags "
	"more than\n"
	"                      MS (APEXOPS_PURGE_MAX_LAG_MS, 1000)\n"
	"  --max-lag-bytes SIZE\n"
	"                      ... or lags SIZE of WAL not yet replayed "
	"(8kB to 1TB;\n"
	"                      units B, kB, MB, GB, TB: 1 kB = 1024 B;\n"
	"                      APEXOPS_PURGE_MAX_LAG_BYTES, 16MB)\n"
	"  --max-lag-wait S    give up (exit 75, rerun to go on) after S "
	"seconds of one\n"
	"                      such wait (APEXOPS_PURGE_MAX_LAG_WAIT_S, 300)\n"
	"  --vacuum            VACUUM (ANALYZE) each table afterwards\n"
	"  --json              machine-readable output\n"
	"\n"
	"Whole monthly partitions older than the cutoff are all detached "
	"first (out of\nthe table within the second), then dropped one at a "
	"time, --drop-pause apart:\nfreeing their files at once stalls "
	"writers. apexops.purge_detached records\neach detached table until "
	"it is dropped; a stopped run's are dropped by the\nnext. The rest "
	"is deleted in short batches. SIGINT/SIGTERM stops "
	"after the current\nbatch (a second signal cancels it) and exits 75; "
	"running again finishes\nthe job. Every run is recorded in the run "
	"ledger, apexops.job_runs, as job\nusage-purge ('apexops purge "
	"history').\n"
	"\n"
	"  --scheduled         the scheduled purge (the systemd unit, 'cron "
	"run "
	"usage-purge'):\n"
	"                      USAGE_RETENTION_MONTHS, CRON_TZ, executes, "
	"trigger 'scheduled';\n"
	"                      takes no other option but --json\n"
	"\n"
	"Rows that cannot go are walked past and reported with the reason: "
	"locked "
	"by\nanother transaction (tried again at the end, up to the lock "
	"timeout), kept\nby a trigger. Such a run is 'partial'.\n"
	"\n"
	"Exit: 0 done (or planned), 1 failed (or partial: rows kept by a "
	"trigger),\n"
	"      64 bad flag, 69 database unreachable, 75 stopped by a signal, "
	"another\n"
	"      purge is running, or partial with rows still locked, 78 bad "
	"months.\n";

static void
human_bytes(long long n, char *out, size_t size)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = 0;

	while (v >= 1024.0 && u < 4) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(out, size, "%lld B", n);
	else
		snprintf(out, size, "%.1f %s", v, unit[u]);
}

/* Why the rows deleted differ from the plan, or NULL when they do not. */
static void
print_shortfall(const struct purge_result *res,
		const struct purge_table_result *t)
{
	long long diff = t->deleted_rows - t->planned_rows;
	long long explained = t->left_locked + t->left_trigger +
			      t->left_referenced + t->left_other;

	if (t->left_locked > 0)
		printf("  left               %lld locked by another "
		       "transaction\n",
		       t->left_locked);
	if (t->left_trigger > 0)
		printf("  left               %lld kept by a trigger\n",
		       t->left_trigger);
	if (t->left_referenced > 0)
		printf("  left               %lld referenced by a foreign key "
		       "(--skip-referenced)\n",
		       t->left_referenced);
	if (t->left_other > 0)
		printf("  left               %lld written behind the purge "
		       "meanwhile\n",
		       t->left_other);
	if (diff == 0)
		return;
	if (!t->census) {
		/* the table was not finished: say why */
		printf("  note               %lld of %lld planned rows not "
		       "deleted: %s\n",
		       -diff, t->planned_rows,
		       res->stopped    ? "stopped by a signal"
		       : res->error[0] ? "the run failed (see the error below)"
				       : "the run ended before this table");
		return;
	}
	if (diff + explained != 0)
		printf("  note               %+lld rows against the plan: rows "
		       "older than the cutoff were written or deleted "
		       "meanwhile\n",
		       diff + explained);
}

static void
print_refs(const struct purge_table_result *t)
{
	for (int k = 0; k < t->nrefs; k++) {
		const struct purge_ref *ref = &t->refs[k];
		const char *what;
		long long n = ref->referencing_rows;

		if (strcmp(ref->action, "cascade") == 0) {
			what = "rows of it will be deleted with them";
		} else if (strncmp(ref->action, "set ", 4) == 0) {
			what = "rows of it will be changed";
		} else {
			what = "expired rows are referenced: they cannot be "
			       "deleted";
			n = ref->referenced_rows;
		}
		printf("  referenced by      %s (%s, ON DELETE %s): %lld %s\n",
		       ref->table, ref->constraint, ref->action, n, what);
	}
}

/* How the plan's whole partitions go: all out of the table at once,
 * their files freed one at a time. */
static void
print_drop_pace(const struct purge_result *res, int n)
{
	if (res->drop_pause_ms > 0 && n > 1)
		printf("  then               detached at once, dropped one "
		       "every %.1f s (about %.0f s; --drop-pause)\n",
		       (double)res->drop_pause_ms / 1000.0,
		       (double)res->drop_pause_ms * (n - 1) / 1000.0);
	else
		printf("  then               detached at once, dropped one "
		       "after another\n");
}

static void
print_text(const struct purge_result *res)
{
	printf("%s: keep %ld months, time zone %s, today %s\n",
	       res->execute ? "EXECUTE" : "DRY-RUN (nothing is deleted)",
	       res->months, res->tz, res->today);
	printf("cutoff: %s (%s local): rows created before it expire\n",
	       res->cutoff, res->cutoff_local);
	for (int i = 0; i < res->ntables; i++) {
		const struct purge_table_result *t = &res->tables[i];
		char size[32];

		printf("\n%s\n", t->name);
		if (t->missing) {
			printf("  table does not exist: skipped\n");
			continue;
		}
		human_bytes(t->est_bytes, size, sizeof(size));
		printf("  rows to delete     %lld\n", t->planned_rows);
		printf("  oldest affected    %s\n",
		       t->oldest[0] ? t->oldest : "-");
		printf("  newest affected    %s\n",
		       t->newest[0] ? t->newest : "-");
		printf("  estimated size     %s\n", size);
		printf("  NULL created_at    %lld (never deleted)\n",
		       t->null_rows);
		if (t->partitions_off[0] != '\0')
			printf("  whole partitions   none dropped (%s): row by "
			       "row\n",
			       t->partitions_off);
		else if (t->partitioned)
			printf("  whole partitions   %d (%lld rows)%s%s\n",
			       t->partitions_planned, t->partition_rows,
			       t->partitions_planned ? ": " : "",
			       t->partitions);
		else
			printf("  whole partitions   0 (not partitioned)\n");
		if (t->partitions_planned > 0 && !res->executed)
			print_drop_pace(res, t->partitions_planned);
		if (t->detached_pending > 0)
			printf("  detached earlier   %d (%lld rows), dropped "
			       "first: %s\n",
			       t->detached_pending, t->detached_rows,
			       t->detached);
		print_refs(t);
		if (res->executed) {
			printf("  deleted            %lld in %.1f s (%lld "
			       "batches, %d partitions dropped, %lld lock "
			       "retries)\n",
			       t->deleted_rows, t->seconds, t->batches,
			       t->partitions_dropped, t->lock_retries);
			if (t->partitions_detached > 0)
				printf("  detached           %d partitions in "
				       "%.2f s; dropping took %.1f s\n",
				       t->partitions_detached,
				       t->partition_detach_seconds,
				       t->partition_seconds -
					       t->partition_detach_seconds);
			if (t->detached_left > 0)
				printf("  not dropped yet    %d detached "
				       "partitions (a lock): the next run "
				       "drops them\n",
				       t->detached_left);
			print_shortfall(res, t);
			if (t->vacuum_error[0] != '\0')
				printf("  warning            VACUUM failed: "
				       "%s\n",
				       t->vacuum_error);
		}
	}
	if (res->detached_other > 0)
		printf("\nwarning: %d detached partitions of tables that are "
		       "not purged are recorded\nin apexops.purge_detached "
		       "(see the log): drop them by hand\n",
		       res->detached_other);
	printf("\n");
	if (res->execute && strcmp(res->status, "succeeded") == 0)
		printf("total: %lld rows deleted of %lld planned in %.1f s; "
		       "run %lld: succeeded%s\n",
		       res->deleted_total, res->planned_total, res->seconds,
		       res->run_id, res->warnings ? " with warnings" : "");
	else if (res->execute)
		printf("total: %lld rows deleted of %lld planned in %.1f s%s; "
		       "run %lld: %s\nerror: %s\n",
		       res->deleted_total, res->planned_total, res->seconds,
		       res->stopped ? " (STOPPED: run again to finish)" : "",
		       res->run_id, res->status[0] ? res->status : "failed",
		       res->error[0] ? res->error : "-");
	else if (strcmp(res->status, "succeeded") == 0)
		printf("total: %lld rows would be deleted; run %lld. To "
		       "delete, run again with --execute (or CONFIRM=1).\n",
		       res->planned_total, res->run_id);
	else
		printf("total: the dry-run did not finish; run %lld: %s\n"
		       "error: %s\n",
		       res->run_id, res->status[0] ? res->status : "failed",
		       res->error[0] ? res->error : "-");
}

static int
parse_opt_long(const char *flag, const char *v, long min, long max, long *out)
{
	if (parse_long(v, min, max, out) != 0)
		return cli_usage("purge",
				 "%s: invalid value '%s': expected a whole "
				 "number from %ld to %ld",
				 flag, v, min, max);
	return 0;
}

/* The entry of the variable a flag overrides: the flag takes the
 * variable's range, so the two cannot disagree. */
static const struct cfg_def *
flag_var(const char *name)
{
	const struct cfg_def *d = config_def(name);

	assert(d != NULL);
	return d;
}

/* A size in parse_size's units in [min, max]. */
static int
parse_opt_size(const char *flag, const char *v, long long min, long long max,
	       long long *out)
{
	char lo[32], hi[32];

	if (parse_size(v, min, max, out) == 0)
		return 0;
	format_size(min, lo, sizeof(lo));
	format_size(max, hi, sizeof(hi));
	return cli_usage("purge",
			 "%s: invalid size '%s': expected %s to %s, a number "
			 "of bytes or with a unit B, kB, MB, GB or TB "
			 "(PostgreSQL's: 1 kB = 1024 B)",
			 flag, v, lo, hi);
}

/*
 * A pause coefficient: a plain decimal from 0 to 100 ("2", "0.5"), nothing
 * strtod() would also take (exponents, hex, inf, nan, leading space).
 */
static int
parse_opt_coef(const char *flag, const char *v, double *out)
{
	size_t i = 0, digits = 0, dots = 0;
	double d;

	for (; v[i] != '\0'; i++) {
		if (v[i] >= '0' && v[i] <= '9')
			digits++;
		else if (v[i] == '.' && dots++ == 0 && i > 0)
			continue;
		else
			break;
	}
	d = v[i] == '\0' && digits > 0 && digits <= 12 ? strtod(v, NULL) : -1;
	if (d < 0 || d > 100 || v[i - (i > 0)] == '.')
		return cli_usage("purge",
				 "%s: invalid value '%s': expected a number "
				 "from 0 to 100 (a pause of that many times "
				 "each batch's duration)",
				 flag, v);
	*out = d;
	return 0;
}

static int
print_history(const char *json, bool as_json)
{
	json_error_t jerr;
	json_t *arr;
	size_t i;
	json_t *row;

	if (as_json) {
		printf("%s\n", json);
		return OPS_EXIT_OK;
	}
	arr = json_loads(json, 0, &jerr);
	if (arr == NULL || !json_is_array(arr)) {
		json_decref(arr);
		struct ops_err e = OPS_ERR_INIT;

		ops_fail(&e, OPS_E_DB, false,
			 "purge history: the ledger's answer is unreadable");
		cli_report(NULL, &e);
		return OPS_EXIT_FAIL;
	}
	printf("%-6s %-19s %-9s %-8s %-10s %-6s %-12s %-25s %10s %10s %s\n",
	       "run", "started", "trigger", "mode", "status", "months", "user",
	       "cutoff", "planned", "deleted", "error");
	json_array_foreach(arr, i, row)
	{
		const char *err =
			json_string_value(json_object_get(row, "error"));
		json_t *del = json_object_get(row, "rows_deleted");
		char deleted[24];

		if (json_is_integer(del))
			snprintf(deleted, sizeof(deleted), "%lld",
				 (long long)json_integer_value(del));
		else
			snprintf(deleted, sizeof(deleted), "-");
		printf("%-6lld %-19.19s %-9s %-8s %-10s %-6lld %-12.12s "
		       "%-25.25s %10lld %10s %s\n",
		       (long long)json_integer_value(
			       json_object_get(row, "id")),
		       json_string_value(json_object_get(row, "started_at")),
		       json_string_value(json_object_get(row, "trigger")),
		       json_string_value(json_object_get(row, "mode")),
		       json_string_value(json_object_get(row, "status")),
		       (long long)json_integer_value(
			       json_object_get(row, "months")),
		       json_string_value(json_object_get(row, "os_user"))
			       ? json_string_value(
					 json_object_get(row, "os_user"))
			       : "-",
		       json_string_value(json_object_get(row, "cutoff"))
			       ? json_string_value(
					 json_object_get(row, "cutoff"))
			       : "-",
		       (long long)json_integer_value(
			       json_object_get(row, "rows_planned")),
		       deleted, err ? err : "");
	}
	json_decref(arr);
	return OPS_EXIT_OK;
}

static int
cmd_purge_history(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "limit", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = NULL;
	bool as_json = false;
	long limit = 20;
	char *json = NULL;
	int c, rc;

	optind = 1;
	opterr = 0;
	while ((c = cli_getopt("purge", argc, argv, "", longopts)) != -1) {
		switch (c) {
		case 'l':
			if (parse_opt_long("--limit", optarg, 1, 100000,
					   &limit) != 0)
				return OPS_EXIT_USAGE;
			break;
		case 'j':
			as_json = true;
			break;
		default:
			return OPS_EXIT_USAGE; /* cli_getopt said why */
		}
	}
	if (optind < argc)
		return cli_usage("purge", "history: unexpected argument '%s'",
				 argv[optind]);
	if (cli_db_connect(ctx, &db, &err) != 0)
		return cli_report(ctx, &err);
	if (purge_history_json(db, limit, &json, &err) != 0)
		rc = cli_report(ctx, &err);
	else
		rc = print_history(json ? json : "[]", as_json);
	free(json);
	db_close(db);
	return rc;
}

int
cmd_purge(struct cli_ctx *ctx, int argc, char **argv)
{
	enum {
		O_EXEC = 1,
		O_DRY,
		O_MONTHS,
		O_ASOF,
		O_BMS,
		O_RATE,
		O_SLEEP,
		O_LT,
		O_VAC,
		O_JSON,
		O_BMIN,
		O_BMAX,
		O_FUTURE,
		O_SKIPREF,
		O_SCHED,
		O_PACE,
		O_COEF,
		O_DPAUSE,
		O_MAXLAG,
		O_LAGBYTES,
		O_LAGWAIT
	};
	static const struct option longopts[] = {
		{ "execute", no_argument, NULL, O_EXEC },
		{ "dry-run", no_argument, NULL, O_DRY },
		{ "months", required_argument, NULL, O_MONTHS },
		{ "as-of", required_argument, NULL, O_ASOF },
		{ "batch-ms", required_argument, NULL, O_BMS },
		{ "batch-min", required_argument, NULL, O_BMIN },
		{ "batch-max", required_argument, NULL, O_BMAX },
		{ "max-rate", required_argument, NULL, O_RATE },
		{ "sleep", required_argument, NULL, O_SLEEP },
		{ "lock-timeout", required_argument, NULL, O_LT },
		{ "vacuum", no_argument, NULL, O_VAC },
		{ "json", no_argument, NULL, O_JSON },
		{ "allow-future-as-of", no_argument, NULL, O_FUTURE },
		{ "skip-referenced", no_argument, NULL, O_SKIPREF },
		{ "scheduled", no_argument, NULL, O_SCHED },
		{ "pace", required_argument, NULL, O_PACE },
		{ "sleep-coef", required_argument, NULL, O_COEF },
		{ "drop-pause", required_argument, NULL, O_DPAUSE },
		{ "max-lag", required_argument, NULL, O_MAXLAG },
		{ "max-lag-bytes", required_argument, NULL, O_LAGBYTES },
		{ "max-lag-wait", required_argument, NULL, O_LAGWAIT },
		{ NULL, 0, NULL, 0 },
	};
	struct purge_opts o;
	struct purge_result res;
	struct ops_err err = OPS_ERR_INIT;
	struct job_ctx jc;
	struct db *db = NULL;
	bool execute = false, dry = false, as_json = false, scheduled = false;
	int nopts = 0;
	const char *months_arg = NULL;
	const struct cfg_def *var;
	int c, r, rc;

	if (argc > 1 && strcmp(argv[1], "history") == 0)
		return cmd_purge_history(ctx, argc - 1, argv + 1);
	memset(&o, 0, sizeof(o));
	optind = 1;
	opterr = 0;
	while ((c = cli_getopt("purge", argc, argv, "", longopts)) != -1) {
		if (c != O_JSON && c != O_SCHED && c != CLI_OPT_ERROR)
			nopts++;
		switch (c) {
		case O_EXEC:
			execute = true;
			break;
		case O_DRY:
			dry = true;
			break;
		case O_MONTHS:
			months_arg = optarg;
			break;
		case O_ASOF: {
			int y, m, d;

			if (parse_date(optarg, &y, &m, &d) != 0)
				return cli_usage("purge",
						 "--as-of: invalid date '%s': "
						 "expected a real date "
						 "YYYY-MM-DD",
						 optarg);
			o.as_of = optarg;
			break;
		}
		case O_BMS:
			if (parse_opt_long("--batch-ms", optarg, 10, 60000,
					   &o.batch_ms) != 0)
				return OPS_EXIT_USAGE;
			break;
		case O_BMIN:
			if (parse_opt_long("--batch-min", optarg, 1, 1000000,
					   &o.batch_min) != 0)
				return OPS_EXIT_USAGE;
			break;
		case O_BMAX:
			if (parse_opt_long("--batch-max", optarg, 1, 1000000,
					   &o.batch_max) != 0)
				return OPS_EXIT_USAGE;
			break;
		case O_RATE:
			if (parse_opt_long("--max-rate", optarg, 1, 1000000000L,
					   &o.max_rate) != 0)
				return OPS_EXIT_USAGE;
			break;
		case O_SLEEP:
			if (parse_opt_long("--sleep", optarg, 0, 600000,
					   &o.sleep_ms) != 0)
				return OPS_EXIT_USAGE;
			break;
		case O_COEF:
			if (parse_opt_coef("--sleep-coef", optarg,
					   &o.sleep_coef) != 0)
				return OPS_EXIT_USAGE;
			if (o.sleep_coef == 0)
				o.sleep_coef = -1; /* the pacer's "none" */
			break;
		case O_DPAUSE:
			if (parse_opt_long("--drop-pause", optarg, 0, 600000,
					   &o.drop_pause_ms) != 0)
				return OPS_EXIT_USAGE;
			if (o.drop_pause_ms == 0)
				o.drop_pause_ms = -1; /* the engine's "none" */
			break;
		case O_MAXLAG:
			var = flag_var("APEXOPS_PURGE_MAX_LAG_MS");
			if (parse_opt_long("--max-lag", optarg, var->min,
					   var->max, &o.max_lag_ms) != 0)
				return OPS_EXIT_USAGE;
			break;
		case O_LAGBYTES:
			/* 8 kB (one WAL page) to 1 TB */
			var = flag_var("APEXOPS_PURGE_MAX_LAG_BYTES");
			if (parse_opt_size("--max-lag-bytes", optarg, var->min,
					   var->max, &o.max_lag_bytes) != 0)
				return OPS_EXIT_USAGE;
			break;
		case O_LAGWAIT:
			var = flag_var("APEXOPS_PURGE_MAX_LAG_WAIT_S");
			if (parse_opt_long("--max-lag-wait", optarg, var->min,
					   var->max, &o.max_lag_wait_ms) != 0)
				return OPS_EXIT_USAGE;
			o.max_lag_wait_ms *= 1000;
			break;
		case O_LT:
			if (parse_opt_long("--lock-timeout", optarg, 1, 600000,
					   &o.lock_timeout_ms) != 0)
				return OPS_EXIT_USAGE;
			break;
		case O_VAC:
			o.vacuum = true;
			break;
		case O_JSON:
			as_json = true;
			break;
		case O_FUTURE:
			o.allow_future_as_of = true;
			break;
		case O_SKIPREF:
			o.skip_referenced = true;
			break;
		case O_SCHED:
			scheduled = true;
			break;
		case O_PACE:
			if (strcmp(optarg, "on") == 0)
				o.no_pace = false;
			else if (strcmp(optarg, "off") == 0)
				o.no_pace = true;
			else
				return cli_usage("purge",
						 "--pace: invalid value '%s': "
						 "expected on or off",
						 optarg);
			break;
		default:
			return OPS_EXIT_USAGE; /* cli_getopt said why */
		}
	}
	if (optind < argc)
		return cli_usage("purge", "unexpected argument '%s'",
				 argv[optind]);
	if (scheduled && nopts > 0)
		return cli_usage("purge",
				 "--scheduled takes its settings from the "
				 "configuration (USAGE_RETENTION_MONTHS, "
				 "CRON_TZ, APEXOPS_PURGE_MAX_LAG_*): give no "
				 "other option but --json");
	if (o.no_pace &&
	    (o.max_lag_ms > 0 || o.max_lag_bytes > 0 || o.max_lag_wait_ms > 0))
		return cli_usage("purge", "--max-lag, --max-lag-bytes and "
					  "--max-lag-wait set the pacer's "
					  "standby guard: they need --pace on");
	if (execute && dry)
		return cli_usage("purge",
				 "--execute and --dry-run contradict each "
				 "other");
	/* the guard's limits a flag did not set: from the configuration */
	if (o.max_lag_ms == 0)
		o.max_lag_ms = ctx->cfg.purge_max_lag_ms;
	if (o.max_lag_bytes == 0)
		o.max_lag_bytes = ctx->cfg.purge_max_lag_bytes;
	if (o.max_lag_wait_ms == 0)
		o.max_lag_wait_ms = ctx->cfg.purge_max_lag_wait_s * 1000;
	o.months = ctx->cfg.retention_months;
	if (months_arg != NULL &&
	    config_check_months("--months", months_arg, &o.months, &err) != 0)
		return cli_report(ctx, &err); /* 78, like RETENTION_MONTHS */
	if (!execute && !dry && ctx->cfg.confirm)
		execute = true;
	if (!scheduled && !execute && ctx->cfg.confirm_raw != NULL &&
	    ctx->cfg.confirm_raw[0] != '\0' && !ctx->cfg.confirm)
		cli_warn("purge",
			 "CONFIRM='%s' is not exactly '1' or 'true': this is "
			 "a dry-run",
			 ctx->cfg.confirm_raw);
	if (o.allow_future_as_of && execute)
		return cli_usage("purge",
				 "--allow-future-as-of is for a dry-run only: "
				 "drop --execute (and CONFIRM)");
	o.execute = execute;
	o.tz = ctx->cfg.cron_tz;
	o.progress_tty = !as_json && cli_isatty_err();
	o.stop = &ops_stop_flag;

	if (cli_db_connect(ctx, &db, &err) != 0)
		return cli_report(ctx, &err);
	/* a refused as-of leaves no run record */
	if (!scheduled &&
	    purge_check_as_of(db, &o, o.tz ? o.tz : "UTC", &err) != 0) {
		rc = cli_report(ctx, &err);
		db_close(db);
		return rc;
	}
	memset(&res, 0, sizeof(res));
	memset(&jc, 0, sizeof(jc));
	jc.db = db;
	jc.cfg = &ctx->cfg;
	jc.trigger = scheduled ? LEDGER_SCHEDULED : LEDGER_MANUAL;
	jc.stop = &ops_stop_flag;
	jc.progress_tty = !as_json && cli_isatty_err();
	jc.args = scheduled ? NULL : &o; /* NULL: from configuration */
	jc.out = &res;
	jc.mode = scheduled || execute ? "execute" : "dry-run";
	/* SIGINT/SIGTERM set ops_stop_flag (main.c installed the handlers):
	 * the purge stops after its batch; a second one cancels the batch
	 * through the db layer's hook (db_cancel_all) */
	r = job_run(job_find("usage-purge"), &jc, &err);
	job_ctx_release(&jc);

	if (r == 0 || res.ntables > 0 || res.run_id > 0) {
		if (as_json) {
			char *s = purge_result_json(&res);

			printf("%s\n", s);
			free(s);
		} else {
			print_text(&res);
		}
	}
	rc = r == 0 ? OPS_EXIT_OK : cli_report(ctx, &err);
	db_close(db);
	return rc;
}
