/*
 * apexops cron: the scheduler daemon (no subcommand, daemon/cron.h), and
 * `cron list` (the job table and next fire times), `cron run JOB` (one job
 * now, trigger manual, through the same path the scheduler uses) and
 * `cron history` (the run ledger).
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "core/clock.h"
#include "core/parse.h"
#include "core/signals.h"
#include "core/xalloc.h"
#include "daemon/cron.h"
#include "daemon/metrics.h"
#include "db/db.h"
#include "jobs/cron_expr.h"
#include "jobs/job.h"
#include "jobs/ledger.h"

const char cmd_cron_usage[] =
	"usage: apexops cron [--http ADDR] [--run-for SECONDS]\n"
	"       apexops cron list [--json]\n"
	"       apexops cron run JOB [--json]\n"
	"       apexops cron history [JOB] [--failed] [--limit N] [--json]\n"
	"\n"
	"The scheduled jobs: stripe-usage-sync (0 2 * * *), usage-purge\n"
	"(30 2 * * *), dunning-retries (0 3 * * *), privacy-expiry\n"
	"(0 4 * * *), in CRON_TZ (default UTC); APEXOPS_SCHEDULE_<JOB> (e.g.\n"
	"APEXOPS_SCHEDULE_USAGE_PURGE) overrides one, 'off' disables it.\n"
	"\n"
	"  (none)   run the scheduler in the foreground until SIGTERM or\n"
	"           SIGINT. Any number of replicas may run against one\n"
	"           database: each slot runs exactly once. SIGTERM stops\n"
	"           claiming and gives running jobs APEXOPS_CRON_GRACE_S\n"
	"           (60) to finish, then tells them to stop; a second signal\n"
	"           stops them at once. SIGHUP reloads the configuration\n"
	"           (an invalid one is refused and the old one kept).\n"
	"           --http ADDR (or APEXOPS_HTTP_ADDR) serves GET /healthz\n"
	"           and GET /metrics (Prometheus). --run-for exits after\n"
	"           SECONDS of the scheduler's clock (tests and demos).\n"
	"  list     every job, its schedule, whether it is enabled and the\n"
	"           next three fire times in CRON_TZ and in UTC\n"
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
	"Missed slots (the scheduler was down) run once if the newest is\n"
	"within APEXOPS_CRON_DEADLINE_S (21600), trigger catch-up; the\n"
	"others are recorded missed. A replica that dies mid-run loses its\n"
	"lease (APEXOPS_CRON_LEASE_S, 30) and another takes the run over.\n"
	"See apexops(1), SCHEDULER, for time zones and daylight saving time.\n";

/* The next n fire times of schedule s after now, or n = 0 when off. */
static int
next_fires(const char *s, time_t now, time_t *out, size_t n)
{
	struct cron_expr ce;

	if (strcmp(s, "off") == 0 || cron_parse(s, &ce, NULL) != 0 ||
	    cron_next_n(&ce, now, out, n) != 0)
		return 0;
	return (int)n;
}

static void
fmt_local(time_t t, char *buf, size_t n)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, n, "%Y-%m-%d %H:%M %Z", &tm) == 0)
		snprintf(buf, n, "?");
}

static int
cron_list(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	bool as_json = false;
	time_t now;
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
	{
		struct ops_err err = OPS_ERR_INIT;

		if (cron_daemon_check(&ctx->cfg, &err) != 0)
			return cli_report(ctx, &err);
	}
	setenv("TZ", ctx->cfg.cron_tz, 1);
	tzset();
	now = (time_t)ops_clock_now();
	if (as_json) {
		json_t *arr = json_array();
		char *s;

		for (int i = 0; i < job_count; i++) {
			const struct job_def *j = &job_table[i];
			const char *sched =
				cron_daemon_schedule(&ctx->cfg, j->name);
			time_t next[3];
			json_t *nx = json_array();
			int nn = next_fires(sched, now, next, 3);
			json_t *o;

			for (int k = 0; k < nn; k++) {
				char b[32];

				json_array_append_new(
					nx, json_string(ops_format_rfc3339(
						    next[k], b, sizeof(b))));
			}
			o = json_pack("{s:s, s:b, s:o}", "effective_schedule",
				      sched, "enabled",
				      strcmp(sched, "off") != 0 &&
					      !(j->flags & JOB_MANUAL_ONLY),
				      "next", nx);
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
			json_object_update(
				json_array_get(arr, json_array_size(arr) - 1),
				o);
			json_decref(o);
		}
		s = json_dumps(arr, JSON_INDENT(2));
		printf("%s\n", s);
		free(s);
		json_decref(arr);
		return OPS_EXIT_OK;
	}
	printf("time zone %s (CRON_TZ)\n\n", ctx->cfg.cron_tz);
	for (int i = 0; i < job_count; i++) {
		const struct job_def *j = &job_table[i];
		const char *sched = cron_daemon_schedule(&ctx->cfg, j->name);
		time_t next[3];
		int nn = next_fires(sched, now, next, 3);

		printf("%-18s %-14s %s%s\n", j->name, sched, j->summary,
		       (j->flags & JOB_UNAVAILABLE)
			       ? " (not available in this version)"
			       : "");
		for (int k = 0; k < nn; k++) {
			char l[64], u[32];

			fmt_local(next[k], l, sizeof(l));
			printf("    next  %-26s %s\n", l,
			       ops_format_rfc3339(next[k], u, sizeof(u)));
		}
		if (nn == 0)
			printf("    next  never (disabled)\n");
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
		cli_warn("cron", "cannot install signal handlers");
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

	printf("%-6s %-18s %-24s %-9s %-11s %-7s %-19s %9s %s\n", "run", "job",
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
		printf("%-6lld %-18s %-24.24s %-9s %-11s %-7lld %-19.19s %9s "
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

static int
cron_daemon(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "http", required_argument, NULL, 'h' },
		{ "run-for", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct cron_daemon_opts o;
	struct ops_err err = OPS_ERR_INIT;
	long run_for = 0;
	int c, r;

	memset(&o, 0, sizeof(o));
	o.env_file = ctx->env_file;
	o.http_addr = ctx->cfg.http_addr;
	optind = 1;
	while ((c = cli_getopt("cron", argc, argv, "", longopts)) != -1) {
		switch (c) {
		case 'h':
			if (!metrics_addr_valid(optarg))
				return cli_usage(
					"cron",
					"--http '%s': " METRICS_ADDR_EXPECTED,
					optarg);
			o.http_addr = optarg;
			break;
		case 'r':
			if (parse_long(optarg, 1, 31536000, &run_for) != 0)
				return cli_usage("cron",
						 "--run-for '%s': expected a "
						 "whole number of seconds from "
						 "1 to 31536000",
						 optarg);
			break;
		default:
			return OPS_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage("cron",
				 "unknown subcommand '%s' (list, run, "
				 "history)",
				 argv[optind]);
	o.run_for_s = (double)run_for;
	if (cron_daemon_check(&ctx->cfg, &err) != 0)
		return cli_report(ctx, &err);
	if (ctx->cfg.database_url != NULL) {
		ctx->db_url = xstrdup(ctx->cfg.database_url);
	} else {
		struct db *db = NULL;

		/* starts the embedded cluster and resolves its URL */
		if (cli_db_connect(ctx, &db, &err) != 0)
			return cli_report(ctx, &err);
		db_close(db);
	}
	o.db_url = ctx->db_url;
	r = cron_daemon_run(&ctx->cfg, &o, &err);
	return r == 0 ? OPS_EXIT_OK : cli_report(ctx, &err);
}

int
cmd_cron(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;

	if (sub == NULL || sub[0] == '-')
		return cron_daemon(ctx, argc, argv);
	if (strcmp(sub, "list") == 0)
		return cron_list(ctx, argc - 1, argv + 1);
	if (strcmp(sub, "run") == 0)
		return cron_run(ctx, argc - 1, argv + 1);
	if (strcmp(sub, "history") == 0)
		return cron_history(ctx, argc - 1, argv + 1);
	return cli_usage("cron", "unknown subcommand '%s' (list, run, history)",
			 sub);
}
