/*
 * apexops cron: the scheduled jobs. `cron list` shows the job table,
 * `cron run JOB` runs one job now (trigger manual) through the same path
 * the scheduler uses, `cron history` reads the run ledger. The scheduler
 * daemon itself (`apexops cron` with no subcommand) is not in this version.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "core/parse.h"
#include "core/signals.h"
#include "db/db.h"
#include "jobs/job.h"
#include "jobs/ledger.h"

const char cmd_cron_usage[] =
	"usage: apexops cron list [--json]\n"
	"       apexops cron run JOB [--json]\n"
	"       apexops cron history [JOB] [--failed] [--limit N] [--json]\n"
	"\n"
	"The scheduled jobs: stripe-usage-sync (0 2 * * *), usage-purge\n"
	"(30 2 * * *), dunning-retries (0 3 * * *), privacy-expiry\n"
	"(0 4 * * *), in CRON_TZ (default UTC).\n"
	"\n"
	"  list     every job, its schedule, lock and whether this version\n"
	"           can run it\n"
	"  run      run JOB now, as the scheduler would (configuration, not\n"
	"           flags: usage-purge executes with USAGE_RETENTION_MONTHS),\n"
	"           recorded with trigger 'manual'. Exit 75 while the same\n"
	"           job runs elsewhere, 1 when it fails or is not available.\n"
	"  history  the newest runs (default 20) of every job or of JOB,\n"
	"           from the run ledger apexops.job_runs; --failed keeps\n"
	"           failed, partial, stopped, abandoned, missed and\n"
	"           unavailable runs. --json prints an array, newest first,\n"
	"           each with job, slot, trigger, status, attempt, owner,\n"
	"           started_at, finished_at, duration_ms, params, counts and\n"
	"           error.\n"
	"\n"
	"The scheduler daemon ('apexops cron' with no subcommand) is not part\n"
	"of this version: deploy/apexops-purge.timer runs the purge.\n";

static int
cron_list(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	bool as_json = false;
	int c;

	optind = 1;
	while ((c = cli_getopt("cron", argc, argv, "", longopts)) != -1) {
		if (c != 'j')
			return OPS_EXIT_USAGE;
		as_json = true;
	}
	if (optind < argc)
		return cli_usage("cron", "list: unexpected argument '%s'",
				 argv[optind]);
	if (as_json) {
		json_t *arr = json_array();
		char *s;

		for (int i = 0; i < job_count; i++) {
			const struct job_def *j = &job_table[i];

			json_array_append_new(
				arr,
				json_pack(
					"{s:s, s:s?, s:s?, s:I, s:b, s:b, s:s}",
					"job", j->name, "schedule", j->schedule,
					"lock", j->lock, "lock_key",
					(json_int_t)(j->lock ? db_lock_key(
								       j->lock)
							     : 0),
					"available",
					!(j->flags & JOB_UNAVAILABLE),
					"scheduled",
					!(j->flags & JOB_MANUAL_ONLY) &&
						j->schedule != NULL,
					"summary", j->summary));
		}
		s = json_dumps(arr, JSON_INDENT(2));
		printf("%s\n", s);
		free(s);
		json_decref(arr);
		return OPS_EXIT_OK;
	}
	printf("%-18s %-14s %-10s %s\n", "job", "schedule", "available",
	       "what it does");
	for (int i = 0; i < job_count; i++) {
		const struct job_def *j = &job_table[i];

		printf("%-18s %-14s %-10s %s\n", j->name,
		       j->schedule ? j->schedule : "(manual)",
		       (j->flags & JOB_UNAVAILABLE) ? "no" : "yes", j->summary);
	}
	return OPS_EXIT_OK;
}

static void
print_run_json(const struct job_ctx *jc, const char *job, int r,
	       const struct ops_err *err)
{
	json_t *o =
		json_pack("{s:s, s:I, s:s, s:s?, s:s?}", "job", job, "run_id",
			  (json_int_t)jc->run_id, "trigger", jc->trigger,
			  "status", jc->status, "mode", jc->mode);
	char *s;

	if (jc->counts != NULL) {
		json_t *c = json_loads(jc->counts, 0, NULL);

		if (c != NULL)
			json_object_set_new(o, "counts", c);
	}
	json_object_set_new(o, "error",
			    r != 0 ? json_string(err->msg) : json_null());
	s = json_dumps(o, JSON_INDENT(2));
	printf("%s\n", s);
	free(s);
	json_decref(o);
}

static int
cron_run(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct ops_err err = OPS_ERR_INIT;
	const struct job_def *j;
	struct job_ctx jc;
	struct db *db = NULL;
	bool as_json = false;
	int c, r, rc;

	optind = 1;
	while ((c = cli_getopt("cron", argc, argv, "", longopts)) != -1) {
		if (c != 'j')
			return OPS_EXIT_USAGE;
		as_json = true;
	}
	if (optind >= argc)
		return cli_usage("cron", "run: which job? ('apexops cron "
					 "list' names them)");
	if (optind + 1 < argc)
		return cli_usage("cron", "run: unexpected argument '%s'",
				 argv[optind + 1]);
	j = job_find(argv[optind]);
	if (j == NULL)
		return cli_usage("cron",
				 "run: unknown job '%s' ('apexops cron list' "
				 "names them)",
				 argv[optind]);
	if (cli_db_connect(ctx, &db, &err) != 0)
		return cli_report(ctx, &err);
	if (ops_signals_install() != 0)
		fprintf(stderr, "apexops cron: warning: cannot install signal "
				"handlers\n");
	memset(&jc, 0, sizeof(jc));
	jc.db = db;
	jc.cfg = &ctx->cfg;
	jc.trigger = LEDGER_MANUAL;
	jc.stop = &ops_stop_flag;
	jc.progress_tty = !as_json && cli_isatty_err();
	r = job_run(j, &jc, &err);
	if (as_json)
		print_run_json(&jc, j->name, r, &err);
	else if (jc.run_id != 0)
		printf("%s: run %lld %s\n", j->name, jc.run_id,
		       jc.status ? jc.status : "not recorded");
	rc = r == 0 ? OPS_EXIT_OK : cli_report(ctx, &err);
	if (r == OPS_E_REFUSED)
		rc = OPS_EXIT_FAIL;
	job_ctx_release(&jc);
	db_close(db);
	return rc;
}

static void
print_history_text(const json_t *arr)
{
	size_t i;
	json_t *row;

	printf("%-6s %-18s %-20s %-9s %-11s %-7s %-19s %9s %s\n", "run", "job",
	       "slot", "trigger", "status", "attempt", "started", "seconds",
	       "error");
	json_array_foreach(arr, i, row)
	{
		const char *slot =
			json_string_value(json_object_get(row, "slot"));
		const char *err =
			json_string_value(json_object_get(row, "error"));
		json_t *ms = json_object_get(row, "duration_ms");
		char secs[24] = "-";

		if (json_is_integer(ms))
			snprintf(secs, sizeof(secs), "%.1f",
				 (double)json_integer_value(ms) / 1000.0);
		printf("%-6lld %-18s %-20.20s %-9s %-11s %-7lld %-19.19s %9s "
		       "%.80s\n",
		       (long long)json_integer_value(
			       json_object_get(row, "id")),
		       json_string_value(json_object_get(row, "job")),
		       slot ? slot : "-",
		       json_string_value(json_object_get(row, "trigger")),
		       json_string_value(json_object_get(row, "status")),
		       (long long)json_integer_value(
			       json_object_get(row, "attempt")),
		       json_string_value(json_object_get(row, "started_at")),
		       secs, err ? err : "");
	}
}

static int
cron_history(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "failed", no_argument, NULL, 'f' },
		{ "limit", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = NULL;
	const char *job = NULL;
	bool as_json = false, failed = false;
	long limit = 20;
	char *json = NULL;
	json_t *arr;
	int c, rc;

	optind = 1;
	while ((c = cli_getopt("cron", argc, argv, "", longopts)) != -1) {
		switch (c) {
		case 'f':
			failed = true;
			break;
		case 'l':
			if (parse_long(optarg, 1, 100000, &limit) != 0)
				return cli_usage("cron",
						 "history: --limit '%s': "
						 "expected a whole number "
						 "from 1 to 100000",
						 optarg);
			break;
		case 'j':
			as_json = true;
			break;
		default:
			return OPS_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		job = argv[optind++];
		if (job_find(job) == NULL)
			return cli_usage("cron",
					 "history: unknown job '%s' ('apexops "
					 "cron list' names them)",
					 job);
	}
	if (optind < argc)
		return cli_usage("cron", "history: unexpected argument '%s'",
				 argv[optind]);
	if (cli_db_connect(ctx, &db, &err) != 0)
		return cli_report(ctx, &err);
	if (ledger_history_json(db, job, failed, limit, &json, &err) != 0) {
		rc = cli_report(ctx, &err);
		goto out;
	}
	if (as_json) {
		printf("%s\n", json);
		rc = OPS_EXIT_OK;
		goto out;
	}
	arr = json_loads(json, 0, NULL);
	if (arr == NULL) {
		rc = cli_report(ctx, &(struct ops_err){ OPS_E_DB, false, "",
							"unreadable history" });
		goto out;
	}
	print_history_text(arr);
	json_decref(arr);
	rc = OPS_EXIT_OK;
out:
	free(json);
	db_close(db);
	return rc;
}

int
cmd_cron(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;

	if (sub == NULL)
		return cli_usage("cron",
				 "the scheduler daemon is not part of this "
				 "version; use 'cron list', 'cron run JOB' "
				 "or 'cron history'");
	if (strcmp(sub, "list") == 0)
		return cron_list(argc - 1, argv + 1);
	if (strcmp(sub, "run") == 0)
		return cron_run(ctx, argc - 1, argv + 1);
	if (strcmp(sub, "history") == 0)
		return cron_history(ctx, argc - 1, argv + 1);
	return cli_usage("cron", "unknown subcommand '%s' (list, run, history)",
			 sub);
}
