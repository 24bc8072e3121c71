#include "jobs/revenue_job.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "jobs/job.h"
#include "jobs/revenue.h"
#include "jobs/sandbox.h"

/* A JSON object text of o (malloc'ed). */
static char *
params_json(const struct revenue_opts *o)
{
	json_t *doc = json_object(), *tiers = json_array();
	char start[16];
	char *s;

	for (int t = 0; t < REVENUE_NTIERS; t++)
		if (o->tiers[t])
			json_array_append_new(tiers,
					      json_string(revenue_tier_name(
						      (enum revenue_tier)t)));
	json_object_set_new(doc, "tiers", tiers);
	json_object_set_new(doc, "days", json_integer(o->days));
	if (o->have_start) {
		revenue_date_format(&o->start, start, sizeof(start));
		json_object_set_new(doc, "start", json_string(start));
	} else {
		json_object_set_new(doc, "start", json_null());
	}
	json_object_set_new(doc, "keep_history", json_boolean(o->keep_history));
	json_object_set_new(doc, "row_checks", json_boolean(o->row_checks));
	json_object_set_new(doc, "plot",
			    o->plot != NULL ? json_string(o->plot)
					    : json_null());
	json_object_set_new(doc, "force", json_boolean(o->force));
	s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (s == NULL)
		abort(); /* out of memory */
	return s;
}

static char *
counts_json(const struct revenue_opts *o, const struct revenue_result *res)
{
	json_t *doc = json_object();
	char *s;

	json_object_set_new(doc, "placements",
			    json_integer((json_int_t)res->placements));
	for (int t = 0; t < REVENUE_NTIERS; t++) {
		const struct revenue_tier_result *tr = &res->tier[t];
		char from[16], to[16];
		json_t *c;

		if (!tr->ran)
			continue;
		revenue_date_format(&tr->plan.start, from, sizeof(from));
		revenue_date_format(&tr->plan.end, to, sizeof(to));
		c = json_pack("{s:I, s:I, s:s, s:s}", "rows",
			      (json_int_t)tr->plan.nrows, "total_cents",
			      (json_int_t)tr->plan.total_cents, "from", from,
			      "to", to);
		if (!o->dry_run) {
			json_object_set_new(c, "deleted",
					    json_integer(tr->write.deleted));
			json_object_set_new(c, "inserted",
					    json_integer(tr->write.inserted));
			json_object_set_new(c, "reference_checks",
					    json_string(tr->write.bulk_checked
								? "bulk"
								: "per-row"));
		}
		json_object_set_new(doc,
				    revenue_tier_name((enum revenue_tier)t), c);
	}
	s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (s == NULL)
		abort(); /* out of memory */
	return s;
}

int
revenue_job_run(struct job_ctx *ctx, struct ops_err *err)
{
	const struct revenue_opts *args = ctx->args;
	struct revenue_result own, *res = ctx->out != NULL ? ctx->out : &own;
	struct revenue_opts o;
	int r;

	memset(&own, 0, sizeof(own));
	if (args == NULL)
		return ops_fail(err, OPS_E_INVALID, false,
				"the job %s needs options (a tier); run it "
				"with 'apexops sandbox revenue TIER'",
				REVENUE_JOB_NAME);
	o = *args;
	o.stop = ctx->stop;
	o.progress_tty = ctx->progress_tty;
	ctx->mode = o.dry_run ? "dry-run" : "execute";
	ctx->no_record = o.dry_run;
	free(ctx->params);
	ctx->params = params_json(&o);
	r = sandbox_check_environment(ctx->cfg, o.force,
				      "sandbox revenue replaces the sandbox "
				      "publisher's revenue_events rows",
				      err);
	if (r != 0)
		return r;
	r = revenue_run(ctx->db, &o, res, err);
	free(ctx->counts);
	ctx->counts = counts_json(&o, res);
	if (res == &own)
		revenue_result_release(&own);
	return r;
}
