/* revenue_run(): `apexops sandbox revenue` as a library call. */
#include "jobs/revenue.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/parse.h"
#include "core/progress.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "jobs/sandbox.h"

/* Show a progress line for loads at least this large. */
#define PROGRESS_MIN_ROWS 20000

void
revenue_result_release(struct revenue_result *res)
{
	if (res == NULL)
		return;
	for (int t = 0; t < REVENUE_NTIERS; t++)
		revenue_plan_release(&res->tier[t].plan);
	memset(res, 0, sizeof(*res));
}

/* Today in UTC by the database's clock, minus days - 1. */
static int
default_start(struct db *db, int days, struct revenue_date *out,
	      struct ops_err *err)
{
	static const char sql[] =
		"SELECT to_char((now() AT TIME ZONE 'UTC')::date - $1::int,"
		" 'YYYY-MM-DD')";
	char back[24];
	const char *params[1] = { back };
	char *v = NULL;
	int r;

	snprintf(back, sizeof(back), "%d", days - 1);
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

static int
check_opts(const struct revenue_opts *o, struct ops_err *err)
{
	int ntiers = 0;

	for (int t = 0; t < REVENUE_NTIERS; t++)
		ntiers += o->tiers[t];
	if (ntiers == 0)
		return ops_fail(err, OPS_E_INVALID, false,
				"no tier chosen: expected starter, growth or "
				"scale");
	if (ntiers > 1 && !o->dry_run)
		return ops_fail(err, OPS_E_INVALID, false,
				"several tiers are only allowed with a dry "
				"run (each tier replaces the same window)");
	if (ntiers > 1 && o->plot != NULL)
		return ops_fail(err, OPS_E_INVALID, false,
				"a chart needs a single tier");
	if (o->days < 1 || o->days > REVENUE_MAX_DAYS)
		return ops_fail(err, OPS_E_INVALID, false,
				"days %d out of range 1..%d", o->days,
				REVENUE_MAX_DAYS);
	return 0;
}

static int
run_tier(struct db *db, const struct revenue_opts *o,
	 const struct revenue_placements *pl, const struct revenue_date *start,
	 enum revenue_tier t, struct revenue_tier_result *tr,
	 struct ops_err *err)
{
	struct revenue_write_opts wo = { 0 };
	struct progress prog;
	bool show;
	int r;

	r = revenue_generate(t, start, o->days, pl->v, pl->n, &tr->plan, err);
	if (r != 0)
		return r;
	tr->ran = true;
	if (o->plot != NULL) {
		struct buf svg = BUF_INIT;

		revenue_svg(&tr->plan, &svg);
		r = write_file(o->plot, &svg, err);
		buf_release(&svg);
		if (r != 0)
			return r;
	}
	if (o->dry_run)
		return 0;
	memset(&prog, 0, sizeof(prog));
	show = tr->plan.nrows >= PROGRESS_MIN_ROWS;
	if (show)
		progress_start(&prog, "sandbox revenue COPY",
			       (long long)tr->plan.nrows, o->progress_tty);
	wo.keep_history = o->keep_history;
	wo.row_checks = o->row_checks;
	r = revenue_write(db, &tr->plan, pl->v, &wo, show ? &prog : NULL,
			  &tr->write, err);
	if (show)
		progress_finish(&prog);
	return r;
}

int
revenue_run(struct db *db, const struct revenue_opts *o,
	    struct revenue_result *res, struct ops_err *err)
{
	struct revenue_placements pl = { NULL, 0 };
	struct revenue_date start;
	bool locked = false;
	int r;

	memset(res, 0, sizeof(*res));
	r = check_opts(o, err);
	if (r != 0)
		return r;
	if (!o->dry_run) {
		r = sandbox_lock_try(db, SANDBOX_REVENUE_LOCK,
				     "another 'apexops sandbox revenue'", err);
		if (r != 0)
			return r;
		locked = true;
	}
	r = revenue_load_placements(db, &pl, err);
	if (r != 0)
		goto out;
	res->placements = pl.n;
	if (pl.n == 0) {
		r = ops_fail(err, OPS_E_NOTFOUND, false,
			     "the sandbox publisher %s has no placements; run "
			     "'apexops sandbox bootstrap' first",
			     SANDBOX_PUBLISHER_ID);
		goto out;
	}
	if (!o->dry_run) {
		r = revenue_check_prereqs(db, err);
		if (r != 0) {
			ops_err_prefix(err, "run 'apexops sandbox bootstrap' "
					    "first");
			goto out;
		}
	}
	start = o->start;
	if (!o->have_start) {
		r = default_start(db, o->days, &start, err);
		if (r != 0)
			goto out;
	}
	for (int t = 0; t < REVENUE_NTIERS; t++) {
		if (!o->tiers[t])
			continue;
		if (o->stop != NULL && *o->stop) {
			r = ops_fail(err, OPS_E_STOPPED, false,
				     "stopped before the %s tier",
				     revenue_tier_name((enum revenue_tier)t));
			goto out;
		}
		r = run_tier(db, o, &pl, &start, (enum revenue_tier)t,
			     &res->tier[t], err);
		if (r != 0)
			goto out;
		if (!o->dry_run)
			res->written = true;
	}
	r = 0;
out:
	if (locked)
		sandbox_lock_release(db, SANDBOX_REVENUE_LOCK);
	revenue_placements_release(&pl);
	return r;
}
