/*
 * apexops stripe sync-usage: the Stripe usage sync by hand (the 02:00 job
 * stripe-usage-sync runs the same engine, stripe/usage.c), with --dry-run
 * to print exactly what would be sent.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "core/clock.h"
#include "core/parse.h"
#include "core/signals.h"
#include "db/db.h"
#include "jobs/job.h"
#include "jobs/ledger.h"
#include "stripe/usage.h"

#define CMD "stripe sync-usage"

const char cmd_stripe_sync_usage_usage[] =
	"usage: apexops stripe sync-usage [--date YYYY-MM-DD | --from "
	"YYYY-MM-DD --to YYYY-MM-DD]\n"
	"                                 [--dry-run] [--json]\n"
	"\n"
	"Report each customer's usage of a day in CRON_TZ ([D 00:00, D+1 "
	"00:00) local,\n23 or 25 hours on DST days) to Stripe as one Billing "
	"Meter Event per\ncustomer and metric (usage_records.metric_type: "
	"impressions, api_calls,\ndata_transfer and any metric named in "
	"APEXOPS_STRIPE_METER_EVENTS). Customers\nmap to Stripe through "
	"users.stripe_customer_id, else\nsubscriptions.stripe_customer_id; "
	"usage of a customer without one is listed\nand audited, never "
	"sent. Every event is written to the ledger\n(apexops.stripe_usage_"
	"events) before it is sent, with an identifier and\nIdempotency-Key "
	"derived from customer, metric, day and sequence, so a rerun\nsends "
	"nothing twice; late usage is sent as the difference, a decrease is\n"
	"reported (apexops.stripe_usage_decreases), never sent.\n"
	"\n"
	"  --date D     sync day D (default: yesterday in CRON_TZ, plus "
	"earlier days\n"
	"               already synced that have rows to retry or late "
	"usage)\n"
	"  --from D --to D  sync every day from D to D (a backfill)\n"
	"  --dry-run    print exactly what would be sent, customer by "
	"customer, with\n"
	"               totals per metric; nothing is written or sent (no "
	"key needed)\n"
	"  --json       machine-readable output\n"
	"\n"
	"Days must be over in CRON_TZ and start within Stripe's 35 days (less "
	"an hour\nfor the run); an older day is refused before anything is "
	"sent.\nSTRIPE_SECRET_KEY or STRIPE_SECRET_KEY_FILE (read at the "
	"start of every run;\nsk_... or a restricted rk_... key), "
	"STRIPE_MAX_RPS (0: 25 requests/s with a\ntest key, 100 live), "
	"APEXOPS_STRIPE_CONCURRENCY, APEXOPS_STRIPE_TIMEOUT_MS.\n"
	"Exit: 0 done, 1 a meter event failed (running again retries it), 64 "
	"bad\nflag or day, 69 database unreachable, 75 stopped or another "
	"sync is running,\n78 no key or bad configuration.\n";

struct sync_args {
	struct usage_opts o;
	bool json;
};

static int
check_date(const char *flag, const char *v)
{
	int y, m, d;

	if (strlen(v) != 10 || parse_date(v, &y, &m, &d) != 0)
		return cli_usage(CMD,
				 "%s: '%s' is not a date; expected "
				 "YYYY-MM-DD (e.g. 2026-11-30)",
				 flag, v);
	return 0;
}

static int
parse_args(int argc, char **argv, struct sync_args *a)
{
	enum { O_DATE = 256, O_FROM, O_TO, O_DRY, O_JSON };
	static const struct option longopts[] = {
		{ "date", required_argument, NULL, O_DATE },
		{ "from", required_argument, NULL, O_FROM },
		{ "to", required_argument, NULL, O_TO },
		{ "dry-run", no_argument, NULL, O_DRY },
		{ "json", no_argument, NULL, O_JSON },
		{ NULL, 0, NULL, 0 },
	};
	const char *date = NULL, *from = NULL, *to = NULL;
	int c;

	memset(a, 0, sizeof(*a));
	optind = 0; /* full reset of GNU getopt */
	while ((c = cli_getopt(CMD, argc, argv, "", longopts)) != -1) {
		switch (c) {
		case O_DATE:
			date = optarg;
			break;
		case O_FROM:
			from = optarg;
			break;
		case O_TO:
			to = optarg;
			break;
		case O_DRY:
			a->o.dry_run = true;
			break;
		case O_JSON:
			a->json = true;
			break;
		default:
			return OPS_EXIT_USAGE; /* cli_getopt() said why */
		}
	}
	if (optind < argc)
		return cli_usage(CMD, "unexpected argument '%s'", argv[optind]);
	if (date != NULL && (from != NULL || to != NULL))
		return cli_usage(CMD, "--date cannot be combined with --from "
				      "or --to");
	if ((from == NULL) != (to == NULL))
		return cli_usage(CMD, "--from and --to go together: give both "
				      "(or --date for one day)");
	if (date != NULL && check_date("--date", date) != 0)
		return OPS_EXIT_USAGE;
	if (from != NULL &&
	    (check_date("--from", from) != 0 || check_date("--to", to) != 0))
		return OPS_EXIT_USAGE;
	if (from != NULL && strcmp(from, to) > 0)
		return cli_usage(CMD, "--from %s is after --to %s", from, to);
	a->o.from = date != NULL ? date : from;
	a->o.to = date != NULL ? date : to;
	return 0;
}

static const char *
ev_state(const struct usage_event *e, char *buf, size_t n)
{
	if (strcmp(e->status, "sent") == 0)
		snprintf(buf, n, "sent (%s)", e->outcome);
	else if (strcmp(e->status, "failed") == 0)
		snprintf(buf, n, "FAILED: %s", e->error ? e->error : "");
	else
		snprintf(buf, n, "%s", e->status);
	return buf;
}

/* the totals per metric of what was (or would be) sent */
static json_t *
totals(const struct usage_result *res)
{
	json_t *t = json_object();

	for (size_t i = 0; i < res->nev; i++) {
		const struct usage_event *e = &res->ev[i];
		json_t *m = json_object_get(t, e->metric);

		if (m == NULL) {
			m = json_pack("{s:s, s:I, s:I}", "event_name",
				      e->event_name, "value", (json_int_t)0,
				      "events", (json_int_t)0);
			json_object_set_new(t, e->metric, m);
		}
		json_object_set_new(
			m, "value",
			json_integer(json_integer_value(
					     json_object_get(m, "value")) +
				     e->quantity));
		json_object_set_new(
			m, "events",
			json_integer(json_integer_value(
					     json_object_get(m, "events")) +
				     1));
	}
	return t;
}

static void
print_text(const struct usage_result *res)
{
	const char *cust = "";
	json_t *t = totals(res);
	const char *k;
	json_t *v;
	char state[600];

	for (size_t i = 0; i < res->ndays; i++)
		printf("day %s (CRON_TZ %s): %s to %s, %d hours\n",
		       res->days[i].day, res->tz, res->days[i].start,
		       res->days[i].end, res->days[i].hours);
	if (res->nev == 0)
		printf("nothing to send: no usage of %s that Stripe has not "
		       "been told of%s\n",
		       res->ndays == 1 ? "this day" : "these days",
		       res->nmissing > 0 ? ", except from customers without "
					   "a Stripe id (below)"
					 : "");
	for (size_t i = 0; i < res->nev; i++) {
		const struct usage_event *e = &res->ev[i];

		if (strcmp(cust, e->customer_id) != 0) {
			cust = e->customer_id;
			printf("customer %s (Stripe %s)\n", e->customer_id,
			       e->stripe_customer_id);
		}
		printf("  %s %-14s %12lld  event_name=%s timestamp=%lld "
		       "identifier=%s  %s\n",
		       e->day, e->metric, e->quantity, e->event_name,
		       e->event_ts, e->identifier,
		       ev_state(e, state, sizeof(state)));
	}
	if (res->nev > 0) {
		printf("totals%s\n", res->dry_run ? " (would send)" : "");
		json_object_foreach(t, k, v)
		{
			printf("  %-16s %12lld in %lld events (event_name "
			       "%s)\n",
			       k,
			       (long long)json_integer_value(
				       json_object_get(v, "value")),
			       (long long)json_integer_value(
				       json_object_get(v, "events")),
			       json_string_value(
				       json_object_get(v, "event_name")));
		}
	}
	if (res->nmissing > 0) {
		printf("without a Stripe customer id (not sent; set "
		       "users.stripe_customer_id):\n");
		for (size_t i = 0; i < res->nmissing; i++)
			printf("  customer %s %s %-14s %12lld\n",
			       res->missing[i].customer_id, res->missing[i].day,
			       res->missing[i].metric,
			       res->missing[i].quantity);
	}
	if (res->ndec > 0) {
		printf("decreases (recorded usage below what Stripe was told; "
		       "not sent, settle by hand: see the runbook):\n");
		for (size_t i = 0; i < res->ndec; i++)
			printf("  customer %s %s %-14s reported %lld, recorded "
			       "%lld\n",
			       res->dec[i].customer_id, res->dec[i].day,
			       res->dec[i].metric, res->dec[i].reported,
			       res->dec[i].recorded);
	}
	if (res->dry_run)
		printf("dry-run: %zu events would be sent; nothing written or "
		       "sent\n",
		       res->nev);
	else
		printf("sent %lld (%lld new, %lld replayed, %lld already "
		       "known to Stripe), failed %lld, left %lld\n",
		       res->sent, res->created, res->replayed, res->duplicate,
		       res->failed, res->left);
	json_decref(t);
}

static void
print_json(const struct usage_result *res, long long run_id)
{
	json_t *o = json_object(), *days = json_array();
	json_t *mi = json_array(), *de = json_array();
	char *s;

	for (size_t i = 0; i < res->ndays; i++)
		json_array_append_new(days,
				      json_pack("{s:s, s:s, s:s, s:i}", "day",
						res->days[i].day, "start",
						res->days[i].start, "end",
						res->days[i].end, "hours",
						res->days[i].hours));
	for (size_t i = 0; i < res->nev; i++) {
		const struct usage_event *e = &res->ev[i];
		json_t *x = json_pack(
			"{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I, s:s, "
			"s:s}",
			"customer_id", e->customer_id, "stripe_customer_id",
			e->stripe_customer_id, "metric", e->metric,
			"event_name", e->event_name, "day", e->day, "seq",
			e->seq, "value", (json_int_t)e->quantity, "day_total",
			(json_int_t)e->day_total, "timestamp",
			(json_int_t)e->event_ts, "identifier", e->identifier,
			"status", e->status);

		if (e->outcome[0] != '\0')
			json_object_set_new(x, "outcome",
					    json_string(e->outcome));
		if (e->request_id[0] != '\0')
			json_object_set_new(x, "request_id",
					    json_string(e->request_id));
		if (e->error != NULL)
			json_object_set_new(x, "error", json_string(e->error));
		/* streamed: 30,000 events as one jansson tree cost ~50 MiB */
		fputs(i == 0 ? "{\"events\":[" : ",", stdout);
		json_dumpf(x, stdout, JSON_COMPACT);
		json_decref(x);
	}
	if (res->nev == 0)
		fputs("{\"events\":[", stdout);
	fputs("],", stdout);
	for (size_t i = 0; i < res->nmissing; i++)
		json_array_append_new(
			mi, json_pack("{s:s, s:s, s:s, s:I}", "customer_id",
				      res->missing[i].customer_id, "day",
				      res->missing[i].day, "metric",
				      res->missing[i].metric, "value",
				      (json_int_t)res->missing[i].quantity));
	for (size_t i = 0; i < res->ndec; i++)
		json_array_append_new(
			de,
			json_pack("{s:s, s:s, s:s, s:I, s:I}", "customer_id",
				  res->dec[i].customer_id, "day",
				  res->dec[i].day, "metric", res->dec[i].metric,
				  "reported", (json_int_t)res->dec[i].reported,
				  "recorded",
				  (json_int_t)res->dec[i].recorded));
	json_object_set_new(o, "tz", json_string(res->tz));
	json_object_set_new(o, "dry_run", json_boolean(res->dry_run));
	if (run_id != 0)
		json_object_set_new(o, "run_id", json_integer(run_id));
	json_object_set_new(o, "days", days);
	json_object_set_new(o, "totals", totals(res));
	json_object_set_new(o, "without_stripe_id", mi);
	json_object_set_new(o, "decreases", de);
	json_object_set_new(o, "counts",
			    json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
				      "planned", (json_int_t)res->planned,
				      "sent", (json_int_t)res->sent, "created",
				      (json_int_t)res->created, "replayed",
				      (json_int_t)res->replayed, "duplicate",
				      (json_int_t)res->duplicate, "failed",
				      (json_int_t)res->failed, "left",
				      (json_int_t)res->left));
	json_object_set_new(
		o, "timing",
		json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "wall_s",
			  res->wall_s, "ledger_s", res->ledger_s, "audit_s",
			  res->audit_s, "ledger_serial_s", res->ledger_serial_s,
			  "plan_s", res->plan_s, "send_s", res->send_s));
	s = json_dumps(o, JSON_COMPACT);
	if (s != NULL)
		puts(s + 1); /* after the events: the object's '{' is ours */
	free(s);
	json_decref(o);
}

int
cmd_stripe_sync_usage(struct cli_ctx *ctx, int argc, char **argv)
{
	struct ops_err err = OPS_ERR_INIT;
	struct usage_result res;
	struct sync_args a;
	struct job_ctx jc;
	struct db *db = NULL;
	const struct job_def *j = job_find("stripe-usage-sync");
	int rc, r;

	ctx->cmd = CMD;
	memset(&res, 0, sizeof(res));
	memset(&jc, 0, sizeof(jc));
	rc = parse_args(argc, argv, &a);
	if (rc != 0)
		return rc;
	/* the scheduler's virtual clock, for tests and demos only */
	if (ops_clock_setup(ctx->cfg.clock_start, ctx->cfg.clock_epoch,
			    ctx->cfg.clock_speed, &err) != 0)
		return cli_report(ctx, &err);
	if (ops_clock_is_virtual() && config_is_production(&ctx->cfg)) {
		ops_fail(&err, OPS_E_CONFIG, false,
			 "APEXOPS_CLOCK_START is set while %s is production: "
			 "a virtual clock is for tests and demos only",
			 config_production_var(&ctx->cfg));
		return cli_report(ctx, &err);
	}
	r = cli_db_connect(ctx, &db, &err);
	if (r == 0 && j == NULL)
		r = ops_fail(&err, OPS_E_CONFIG, false,
			     "job stripe-usage-sync is not in the job table");
	if (r == 0) {
		jc.db = db;
		jc.cfg = &ctx->cfg;
		jc.trigger = LEDGER_MANUAL;
		jc.stop = &ops_stop_flag;
		jc.args = &a.o;
		jc.out = &res;
		r = job_run(j, &jc, &err);
	}
	if (res.ndays > 0 || res.nev > 0) {
		if (a.json)
			print_json(&res, jc.run_id);
		else
			print_text(&res);
	}
	if (!a.json && jc.run_id != 0)
		printf("stripe-usage-sync: run %lld %s ('apexops cron history "
		       "stripe-usage-sync')\n",
		       jc.run_id, jc.status ? jc.status : "not recorded");
	fflush(stdout);
	if (r == 0 && res.ndec > 0)
		cli_warn(CMD,
			 "%zu decrease%s: recorded usage is below what Stripe "
			 "was told; see apexops.stripe_usage_decreases and the "
			 "runbook",
			 res.ndec, res.ndec == 1 ? "" : "s");
	if (r == 0 && res.nmissing > 0)
		cli_warn(CMD,
			 "%zu customer-metric-day%s without a Stripe customer "
			 "id: not sent",
			 res.nmissing, res.nmissing == 1 ? "" : "s");
	rc = r == 0 ? OPS_EXIT_OK : cli_report(ctx, &err);
	job_ctx_release(&jc);
	usage_result_release(&res);
	db_close(db);
	return rc;
}
