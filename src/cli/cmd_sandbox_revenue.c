/*
 * apexops sandbox revenue: write a deterministic Starter/Growth/Scale
 * revenue scenario for the sandbox publisher (generateSandboxRevenue.js).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/progress.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "jobs/revenue.h"
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

struct revenue_opts {
	bool tiers[REVENUE_NTIERS];
	bool tier_all;
	bool tier_set;
	long days;
	bool have_start;
	struct revenue_date start;
	bool dry_run;
	bool keep_history;
	bool row_checks;
	const char *plot;
	bool force;
};

static int
set_tier(struct revenue_opts *o, const char *v, const char *what)
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
			o->tiers[i] = true;
		return 0;
	}
	if (revenue_tier_parse(v, &t) != 0)
		return cli_usage(CMD,
				 "%s: unknown tier '%s'; expected starter, "
				 "growth or scale (or all with --dry-run)",
				 what, v);
	o->tiers[t] = true;
	return 0;
}

static int
parse_args(int argc, char **argv, struct revenue_opts *o)
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
	int c, r;

	memset(o, 0, sizeof(*o));
	o->days = 30;
	optind = 0; /* full reset of GNU getopt */
	while ((c = cli_getopt(CMD, argc, argv, "", longopts)) != -1) {
		switch (c) {
		case O_TIER:
			r = set_tier(o, optarg, "--tier");
			if (r != 0)
				return r;
			break;
		case O_DAYS:
			if (parse_long(optarg, 1, REVENUE_MAX_DAYS, &o->days) !=
			    0)
				return cli_usage(CMD,
						 "--days: '%s' is not allowed; "
						 "expected a whole number of "
						 "days from 1 to %d",
						 optarg, REVENUE_MAX_DAYS);
			break;
		case O_START:
			if (parse_date(optarg, &o->start.y, &o->start.m,
				       &o->start.d) != 0)
				return cli_usage(CMD,
						 "--start: '%s' is not a real "
						 "date; expected YYYY-MM-DD "
						 "(e.g. 2025-01-01)",
						 optarg);
			if (o->start.y < 1970)
				return cli_usage(CMD,
						 "--start: '%s' is before "
						 "1970-01-01",
						 optarg);
			o->have_start = true;
			break;
		case O_DRY:
			o->dry_run = true;
			break;
		case O_KEEP:
			o->keep_history = true;
			break;
		case O_ROWCHK:
			o->row_checks = true;
			break;
		case O_PLOT:
			if (optarg[0] == '\0')
				return cli_usage(
					CMD, "--plot: expected a file name");
			o->plot = optarg;
			break;
		case O_FORCE:
			o->force = true;
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
		if (!o->dry_run)
			return cli_usage(CMD,
					 "a tier is required: starter, growth "
					 "or scale (--dry-run alone prints "
					 "all three)");
		o->tier_all = true;
		for (int i = 0; i < REVENUE_NTIERS; i++)
			o->tiers[i] = true;
	}
	if (o->tier_all && !o->dry_run)
		return cli_usage(CMD,
				 "--tier all is only allowed with --dry-run "
				 "(each tier replaces the same window, so "
				 "writing all three would keep only scale)");
	if (o->tier_all && o->plot != NULL)
		return cli_usage(CMD, "--plot needs a single tier, not all");
	if (o->have_start) {
		struct revenue_date end;

		revenue_date_from_days(
			revenue_date_to_days(&o->start) + o->days - 1, &end);
		if (end.y > 9999)
			return cli_usage(CMD,
					 "--start/--days: the window would end "
					 "after 9999-12-31");
	}
	return 0;
}

/* Today in UTC by the database's clock, minus days - 1. */
static int
default_start(struct db *db, long days, struct revenue_date *out,
	      struct ops_err *err)
{
	static const char sql[] =
		"SELECT to_char((now() AT TIME ZONE 'UTC')::date - $1::int,"
		" 'YYYY-MM-DD')";
	char back[24];
	const char *params[1] = { back };
	char *v = NULL;
	int r;

	snprintf(back, sizeof(back), "%ld", days - 1);
	r = db_query_value(db, sql, 1, params, &v, err);
	if (r != 0)
		return r;
	if (v == NULL || parse_date(v, &out->y, &out->m, &out->d) != 0)
		r = ops_fail(err, OPS_E_DB, false,
			     "the database returned an unusable date '%s'",
			     v ? v : "");
	free(v);
	return r;
}

/* Write text to path through a temporary file and rename(2). */
static int
write_file(const char *path, const struct buf *b, struct ops_err *err)
{
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "w");
	int r = 0;

	if (f == NULL) {
		r = ops_fail(err, OPS_E_IO, false, "cannot create '%s': %s",
			     tmp, strerror(errno));
		goto out;
	}
	if (fwrite(b->data, 1, b->len, f) != b->len || fflush(f) != 0 ||
	    fsync(fileno(f)) != 0) {
		r = ops_fail(err, OPS_E_IO, false, "cannot write '%s': %s", tmp,
			     strerror(errno));
		fclose(f);
		unlink(tmp);
		goto out;
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		r = ops_fail(err, OPS_E_IO, false, "cannot write '%s': %s",
			     path, strerror(errno));
		unlink(tmp);
	}
out:
	free(tmp);
	return r;
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

int
cmd_sandbox_revenue(struct cli_ctx *ctx, int argc, char **argv)
{
	struct ops_err err = OPS_ERR_INIT;
	struct revenue_placements pl = { NULL, 0 };
	struct revenue_plan plan;
	struct revenue_opts o;
	struct db *db = NULL;
	int64_t lock_key = db_lock_key("apexops/sandbox-revenue");
	bool locked = false;
	int rc, r;

	memset(&plan, 0, sizeof(plan));
	rc = parse_args(argc, argv, &o);
	if (rc != 0)
		return rc;
	r = sandbox_check_environment(&ctx->cfg, o.force,
				      "sandbox revenue replaces the sandbox "
				      "publisher's revenue_events rows",
				      &err);
	if (r != 0)
		return cli_report(ctx, &err);

	r = cli_db_connect(ctx, &db, &err);
	if (r != 0)
		goto fail;
	if (!o.dry_run) {
		r = db_try_advisory_lock(db, lock_key, &locked, &err);
		if (r != 0)
			goto fail;
		if (!locked) {
			fprintf(stderr,
				"apexops %s: another 'apexops sandbox revenue' "
				"is writing; try again when it is done\n",
				CMD);
			rc = OPS_EXIT_TEMPFAIL;
			goto out;
		}
	}
	r = revenue_load_placements(db, &pl, &err);
	if (r != 0)
		goto fail;
	if (pl.n == 0) {
		fprintf(stderr,
			"apexops %s: error: the sandbox publisher %s has no "
			"placements; run 'apexops sandbox bootstrap' first\n",
			CMD, SANDBOX_PUBLISHER_ID);
		rc = OPS_EXIT_FAIL;
		goto out;
	}
	if (!o.dry_run) {
		r = revenue_check_prereqs(db, &err);
		if (r != 0) {
			ops_err_prefix(&err, "run 'apexops sandbox bootstrap' "
					     "first");
			goto fail;
		}
	}
	if (!o.have_start) {
		r = default_start(db, o.days, &o.start, &err);
		if (r != 0)
			goto fail;
	}

	for (int t = 0; t < REVENUE_NTIERS; t++) {
		struct revenue_write_stats st;
		struct revenue_write_opts wo = { 0 };
		struct progress prog;
		bool show = false;

		if (!o.tiers[t])
			continue;
		r = revenue_generate((enum revenue_tier)t, &o.start,
				     (int)o.days, pl.v, pl.n, &plan, &err);
		if (r != 0)
			goto fail;
		if (o.plot != NULL) {
			struct buf svg = BUF_INIT;

			revenue_svg(&plan, &svg);
			r = write_file(o.plot, &svg, &err);
			buf_release(&svg);
			if (r != 0)
				goto fail;
		}
		print_plan(&plan);
		if (o.plot != NULL)
			printf("  chart  %s\n", o.plot);
		if (o.dry_run) {
			printf("  dry-run: nothing written\n");
		} else {
			memset(&prog, 0, sizeof(prog));
			show = plan.nrows >= 20000;
			if (show)
				progress_start(&prog, "sandbox revenue COPY",
					       (long long)plan.nrows,
					       cli_isatty_err());
			wo.keep_history = o.keep_history;
			wo.row_checks = o.row_checks;
			r = revenue_write(db, &plan, pl.v, &wo,
					  show ? &prog : NULL, &st, &err);
			if (show)
				progress_finish(&prog);
			if (r != 0)
				goto fail;
			if (o.keep_history)
				printf("  kept earlier rows (--keep-history); "
				       "wrote %lld rows\n",
				       st.inserted);
			else
				printf("  deleted %lld earlier rows of the "
				       "sandbox "
				       "publisher in the window; wrote %lld "
				       "rows\n",
				       st.deleted, st.inserted);
			if (st.bulk_checked)
				printf("  references: publisher, adapters and "
				       "placements locked and checked once for "
				       "the load\n");
			else
				printf("  references: checked per row by the "
				       "foreign-key triggers (%s)\n",
				       st.why_per_row);
		}
		fflush(stdout);
		revenue_plan_release(&plan);
	}
	rc = OPS_EXIT_OK;
	goto out;
fail:
	rc = cli_report(ctx, &err);
out:
	if (locked) {
		struct ops_err ignored = OPS_ERR_INIT;

		db_advisory_unlock(db, lock_key, &ignored);
	}
	revenue_plan_release(&plan);
	revenue_placements_release(&pl);
	db_close(db);
	return rc;
}
