/*
 * apexops sandbox revenue: write a deterministic Starter/Growth/Scale
 * revenue scenario for the sandbox publisher (generateSandboxRevenue.js).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "core/buf.h"
#include "core/parse.h"
#include "db/db.h"
#include "jobs/job.h"
#include "jobs/ledger.h"
#include "jobs/revenue.h"
#include "jobs/revenue_job.h"
#include "jobs/sandbox.h"

#define CMD "sandbox revenue"

const char cmd_sandbox_revenue_usage[] =
	"usage: apexops sandbox revenue [TIER] [options]\n"
	"\n"
	"Write a deterministic revenue scenario for the sandbox publisher\n"
	"(Apex Sandbox Studio, " SANDBOX_PUBLISHER_ID ")\n"
	"into revenue_events, with the original generator's formulas. The\n"
	"window's earlier rows of that publisher are replaced in one\n"
	"transaction; no other publisher is touched. Needs the sandbox\n"
	"placements and adapters: run 'apexops sandbox bootstrap' first.\n"
	"\n"
	"  TIER, --tier TIER   starter (~$3,000 over the window), growth\n"
	"                      (~$50,000) or scale (~$150,000). Required,\n"
	"                      except with --dry-run, where it defaults to\n"
	"                      'all' (each tier printed; 'all' is only\n"
	"                      allowed with --dry-run)\n"
	"  --days N            days in the window, 1..3660 (default 30)\n"
	"  --start YYYY-MM-DD  first day (UTC); default: today (UTC, the\n"
	"                      database's clock) minus N-1 days\n"
	"  --dry-run           compute and print, write nothing\n"
	"  --keep-history      do not delete the window's earlier rows\n"
	"                      (a rerun then adds a second copy)\n"
	"  --plot FILE.svg     also write an SVG chart of daily revenue\n"
	"                      stacked by adapter (one tier only)\n"
	"  --row-checks        let revenue_events' foreign-key triggers check\n"
	"                      every row, even where apexops could lock and\n"
	"                      check the referenced rows once for the load\n"
	"                      (see 'Reference checks' in apexops(1))\n"
	"  --force             run even when APP_ENV or NODE_ENV is\n"
	"                      production (refused otherwise, exit 78,\n"
	"                      --dry-run included)\n"
	"\n"
	"Both '--days 7' and '--days=7' work. Output per tier: rows, total\n"
	"(USD, 2 decimals) and dates; on a terminal also a sparkline of the\n"
	"daily totals (omitted when stdout is not a terminal).\n"
	"Exit: 0 done, 1 failed (e.g. no sandbox placements), 64 bad flag,\n"
	"69 database unreachable, 75 another run holds the lock, 78 refused\n"
	"(production) or bad configuration.\n";

/* Parsing state beside the library's options. */
struct cli_revenue_opts {
	struct revenue_opts run;
	bool tier_all;
	bool tier_set;
};

static int
set_tier(struct cli_revenue_opts *o, const char *v, const char *what)
{
	enum revenue_tier t;

	if (o->tier_set)
		return cli_usage(CMD,
				 "%s: the tier is given twice; give it once "
				 "(positional or --tier)",
				 what);
	o->tier_set = true;
	if (strcasecmp(v, "all") == 0) {
		o->tier_all = true;
		for (int i = 0; i < REVENUE_NTIERS; i++)
			o->run.tiers[i] = true;
		return 0;
	}
	if (revenue_tier_parse(v, &t) != 0)
		return cli_usage(CMD,
				 "%s: unknown tier '%s'; expected starter, "
				 "growth or scale (or all with --dry-run)",
				 what, v);
	o->run.tiers[t] = true;
	return 0;
}

static int
parse_args(int argc, char **argv, struct cli_revenue_opts *o)
{
	enum {
		O_TIER = 1,
		O_DAYS,
		O_START,
		O_DRY,
		O_KEEP,
		O_PLOT,
		O_ROWCHK,
		O_FORCE
	};
	static const struct option longopts[] = {
		{ "tier", required_argument, NULL, O_TIER },
		{ "days", required_argument, NULL, O_DAYS },
		{ "start", required_argument, NULL, O_START },
		{ "dry-run", no_argument, NULL, O_DRY },
		{ "keep-history", no_argument, NULL, O_KEEP },
		{ "plot", required_argument, NULL, O_PLOT },
		{ "row-checks", no_argument, NULL, O_ROWCHK },
		{ "force", no_argument, NULL, O_FORCE },
		{ NULL, 0, NULL, 0 },
	};
	long days = 30;
	int c, r;

	memset(o, 0, sizeof(*o));
	optind = 0; /* full reset of GNU getopt */
	while ((c = cli_getopt(CMD, argc, argv, "", longopts)) != -1) {
		switch (c) {
		case O_TIER:
			r = set_tier(o, optarg, "--tier");
			if (r != 0)
				return r;
			break;
		case O_DAYS:
			if (parse_long(optarg, 1, REVENUE_MAX_DAYS, &days) != 0)
				return cli_usage(CMD,
						 "--days: '%s' is not allowed; "
						 "expected a whole number of "
						 "days from 1 to %d",
						 optarg, REVENUE_MAX_DAYS);
			break;
		case O_START:
			if (parse_date(optarg, &o->run.start.y, &o->run.start.m,
				       &o->run.start.d) != 0)
				return cli_usage(CMD,
						 "--start: '%s' is not a real "
						 "date; expected YYYY-MM-DD "
						 "(e.g. 2025-01-01)",
						 optarg);
			if (o->run.start.y < 1970)
				return cli_usage(CMD,
						 "--start: '%s' is before "
						 "1970-01-01",
						 optarg);
			o->run.have_start = true;
			break;
		case O_DRY:
			o->run.dry_run = true;
			break;
		case O_KEEP:
			o->run.keep_history = true;
			break;
		case O_ROWCHK:
			o->run.row_checks = true;
			break;
		case O_PLOT:
			if (optarg[0] == '\0')
				return cli_usage(
					CMD, "--plot: expected a file name");
			o->run.plot = optarg;
			break;
		case O_FORCE:
			o->run.force = true;
			break;
		default:
			return OPS_EXIT_USAGE; /* cli_getopt() said why */
		}
	}
	for (int i = optind; i < argc; i++) {
		if (i > optind)
			return cli_usage(CMD, "unexpected argument '%s'",
					 argv[i]);
		r = set_tier(o, argv[i], "TIER");
		if (r != 0)
			return r;
	}
	if (!o->tier_set) {
		if (!o->run.dry_run)
			return cli_usage(CMD,
					 "a tier is required: starter, growth "
					 "or scale (--dry-run alone prints "
					 "all three)");
		o->tier_all = true;
		for (int i = 0; i < REVENUE_NTIERS; i++)
			o->run.tiers[i] = true;
	}
	o->run.days = (int)days;
	if (o->tier_all && !o->run.dry_run)
		return cli_usage(CMD,
				 "--tier all is only allowed with --dry-run "
				 "(each tier replaces the same window, so "
				 "writing all three would keep only scale)");
	if (o->tier_all && o->run.plot != NULL)
		return cli_usage(CMD, "--plot needs a single tier, not all");
	if (o->run.have_start) {
		struct revenue_date end;

		revenue_date_from_days(revenue_date_to_days(&o->run.start) +
					       o->run.days - 1,
				       &end);
		if (end.y > 9999)
			return cli_usage(CMD,
					 "--start/--days: the window would end "
					 "after 9999-12-31");
	}
	return 0;
}

static void
print_plan(const struct revenue_plan *plan)
{
	char from[16], to[16];

	revenue_date_format(&plan->start, from, sizeof(from));
	revenue_date_format(&plan->end, to, sizeof(to));
	printf("%s: %zu rows, total %lld.%02lld USD, %s to %s (%d days)\n",
	       revenue_tier_name(plan->tier), plan->nrows,
	       plan->total_cents / 100, plan->total_cents % 100, from, to,
	       plan->days);
	if (cli_isatty_out()) {
		struct buf b = BUF_INIT;
		int per = 1;

		revenue_sparkline(plan, 60, &b, &per);
		if (per == 1)
			printf("  daily  %s\n", buf_str(&b));
		else
			printf("  daily  %s  (1 char = %d days)\n", buf_str(&b),
			       per);
		buf_release(&b);
	}
}

static void
print_tier(const struct revenue_opts *o, const struct revenue_tier_result *tr)
{
	const struct revenue_write_stats *st = &tr->write;

	print_plan(&tr->plan);
	if (o->plot != NULL)
		printf("  chart  %s\n", o->plot);
	if (o->dry_run) {
		printf("  dry-run: nothing written\n");
		return;
	}
	if (st->inserted == 0 && st->deleted == 0 && !st->bulk_checked &&
	    st->why_per_row == NULL)
		return; /* the write failed: cli_report() says why */
	if (o->keep_history)
		printf("  kept earlier rows (--keep-history); wrote %lld "
		       "rows\n",
		       st->inserted);
	else
		printf("  deleted %lld earlier rows of the sandbox publisher "
		       "in the window; wrote %lld rows\n",
		       st->deleted, st->inserted);
	if (st->bulk_checked)
		printf("  references: publisher, adapters and placements "
		       "locked and checked once for the load\n");
	else
		printf("  references: checked per row by the foreign-key "
		       "triggers (%s)\n",
		       st->why_per_row);
}

int
cmd_sandbox_revenue(struct cli_ctx *ctx, int argc, char **argv)
{
	struct ops_err err = OPS_ERR_INIT;
	struct revenue_result res;
	struct cli_revenue_opts o;
	struct job_ctx jc;
	struct db *db = NULL;
	int rc, r;

	memset(&res, 0, sizeof(res));
	memset(&jc, 0, sizeof(jc));
	rc = parse_args(argc, argv, &o);
	if (rc != 0)
		return rc;
	r = sandbox_check_environment(&ctx->cfg, o.run.force,
				      "sandbox revenue replaces the sandbox "
				      "publisher's revenue_events rows",
				      &err);
	if (r != 0)
		return cli_report(ctx, &err);
	r = cli_db_connect(ctx, &db, &err);
	if (r == 0) {
		const struct job_def *j = job_find(REVENUE_JOB_NAME);

		/* through the job runner, so the run is in the ledger */
		memset(&jc, 0, sizeof(jc));
		jc.db = db;
		jc.cfg = &ctx->cfg;
		jc.trigger = LEDGER_MANUAL;
		jc.progress_tty = cli_isatty_err();
		jc.args = &o.run;
		jc.out = &res;
		r = j != NULL ? job_run(j, &jc, &err)
			      : ops_fail(&err, OPS_E_CONFIG, false,
					 "job %s is not in the job table",
					 REVENUE_JOB_NAME);
	}
	/* what was done, even when a later tier failed */
	for (int t = 0; t < REVENUE_NTIERS; t++)
		if (res.tier[t].ran)
			print_tier(&o.run, &res.tier[t]);
	if (jc.run_id != 0 && !jc.no_record)
		printf("%s: run %lld %s ('apexops cron history %s')\n",
		       REVENUE_JOB_NAME, jc.run_id,
		       jc.status ? jc.status : "not recorded",
		       REVENUE_JOB_NAME);
	fflush(stdout);
	rc = r == 0 ? OPS_EXIT_OK : cli_report(ctx, &err);
	job_ctx_release(&jc);
	revenue_result_release(&res);
	db_close(db);
	return rc;
}
