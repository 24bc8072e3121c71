/* The stripe-usage-sync job: usage_sync() through the job interface. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "jobs/job.h"
#include "jobs/ledger.h"
#include "stripe/stripe.h"
#include "stripe/usage.h"

static char *
params_json(const struct usage_opts *o, const struct usage_result *res)
{
	json_t *p = json_pack("{s:s, s:b, s:I, s:I}", "tz", o->tz, "dry_run",
			      o->dry_run, "max_rps", (json_int_t)o->max_rps,
			      "concurrency", (json_int_t)o->concurrency);
	json_t *days = json_array();
	char *s;

	for (size_t i = 0; res != NULL && i < res->ndays; i++)
		json_array_append_new(days, json_string(res->days[i].day));
	json_object_set_new(p, "days", days);
	if (o->from != NULL)
		json_object_set_new(p, "from", json_string(o->from));
	if (o->to != NULL)
		json_object_set_new(p, "to", json_string(o->to));
	s = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	return s != NULL ? s : xstrdup("{}");
}

int
usage_job_run(struct job_ctx *ctx, struct ops_err *err)
{
	const struct ops_config *cfg = ctx->cfg;
	struct usage_opts o;
	struct usage_meters meters = { NULL, 0 };
	struct usage_result local, *res;
	char *key = NULL;
	int r;

	memset(&o, 0, sizeof(o));
	if (ctx->args != NULL) {
		const struct usage_opts *a = ctx->args;

		o.from = a->from;
		o.to = a->to;
		o.dry_run = a->dry_run;
		o.now = a->now;
	}
	o.tz = cfg->cron_tz;
	if (o.now == 0 && ctx->slot != NULL &&
	    ops_parse_rfc3339(ctx->slot, &o.now) != 0)
		o.now = 0;
	if (o.now == 0)
		o.now = ops_clock_now();
	o.api_base = cfg->stripe_api_base;
	o.api_version = cfg->stripe_api_version;
	o.concurrency = cfg->stripe_concurrency;
	o.timeout_ms = cfg->stripe_timeout_ms;
	o.stop = ctx->stop;
	o.run_id = ctx->run_id;
	ctx->mode = o.dry_run ? "dry-run" : "execute";
	r = usage_meters_parse(cfg->stripe_meter_events, &meters, err);
	if (r != 0)
		return r;
	o.meters = &meters;
	/* the key is read again on every run: a rotated key takes effect
	 * at the next run of a long-lived scheduler */
	r = stripe_load_key(cfg, "the usage sync", &key, err);
	if (r != 0 && !(o.dry_run && err != NULL && err->code == OPS_E_CONFIG &&
			getenv("STRIPE_SECRET_KEY_FILE") == NULL &&
			getenv("STRIPE_SECRET_KEY") == NULL)) {
		usage_meters_release(&meters);
		return r;
	}
	if (r != 0) /* a dry run sends nothing: no key needed */
		ops_err_clear(err);
	o.secret_key = key;
	o.max_rps = stripe_default_rps(cfg->stripe_max_rps, key);
	res = ctx->out != NULL ? ctx->out : &local;
	free(ctx->params);
	ctx->params = params_json(&o, NULL);
	r = job_note_params(ctx, err);
	if (r == 0)
		r = usage_sync(ctx->db, &o, res, err);
	free(ctx->params);
	ctx->params = params_json(&o, res);
	free(ctx->counts);
	ctx->counts = usage_counts_json(res);
	log_info("usage sync done run=%lld days=%zu events=%zu sent=%lld "
		 "duplicate=%lld failed=%lld without_stripe_id=%zu "
		 "decreases=%zu",
		 ctx->run_id, res->ndays, res->nev, res->sent, res->duplicate,
		 res->failed, res->nmissing, res->ndec);
	if (res == &local)
		usage_result_release(&local);
	usage_meters_release(&meters);
	freezero_str(key);
	return r;
}
