/*
 * apexops stripe dunning (a run of the dunning-retries job) and apexops
 * dunning list|show (the cases and their history).
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
#include "db/db.h"
#include "jobs/job.h"
#include "jobs/ledger.h"
#include "stripe/dunning.h"
#include "stripe/stripe.h"

const char cmd_dunning_usage[] =
	"usage: apexops dunning list [--status S] [--limit N] [--json]\n"
	"       apexops dunning show INVOICE [--json]\n"
	"\n"
	"The dunning cases (apexops.dunning_cases), one per failed Stripe\n"
	"invoice. Statuses: open, recovered, suspended, closed.\n"
	"  list   newest first (default 100): invoice, status, attempts made,\n"
	"         next attempt, amount, customer\n"
	"  show   one case by its Stripe invoice id (in_...) with every\n"
	"         transition and its time, idempotency key and decline code\n"
	"'apexops stripe dunning' runs the retries.\n";

const char cmd_stripe_dunning_usage[] =
	"usage: apexops stripe dunning [--dry-run] [--json]\n"
	"\n"
	"Retry failed invoice payments (the dunning-retries job, 03:00 in\n"
	"CRON_TZ): open a case for each billing_audit payment_failed row and\n"
	"each of Stripe's open invoices with failed attempts, pay the due "
	"ones\n"
	"on DUNNING_RETRY_DAYS (3,5,7) after the first failure, suspend the\n"
	"subscription and API keys after the last attempt, reactivate when\n"
	"the invoice is paid by any means. Needs STRIPE_SECRET_KEY.\n"
	"  --dry-run  read Stripe, write nothing, pay nothing\n"
	"  --json     the counts and each case's outcome as JSON\n"
	"'apexops dunning list|show' shows the cases.\n";

static const char *const statuses[] = { "open", "recovered", "suspended",
					"closed" };

static void
print_result(const struct dunning_result *res, const char *tz, const char *days)
{
	size_t i, n = json_array_size(res->cases);
	json_t *c;

	printf("dunning (%s, CRON_TZ %s, retry days %s)\n",
	       res->dry_run ? "dry-run: nothing written, no payment"
			    : "execute",
	       tz, days);
	printf("  %s %ld (%ld found by reconciliation only)\n"
	       "  open in Stripe %ld with failed attempts (%ld with Stripe's "
	       "own retry scheduled)\n"
	       "  due          %ld\n"
	       "  paid         %ld\n"
	       "  declined     %ld\n"
	       "  suspended    %ld\n"
	       "  recovered    %ld\n"
	       "  closed       %ld\n"
	       "  pending      %ld\n"
	       "  errors       %ld\n"
	       "  stripe calls %ld\n",
	       res->dry_run ? "to open     " : "opened      ", res->opened,
	       res->reconciled, res->open_seen, res->smart_retry, res->due,
	       res->paid, res->declined, res->suspended, res->recovered,
	       res->closed, res->pending, res->errors, res->stripe_calls);
	json_array_foreach(res->cases, i, c)
	{
		const char *detail =
			json_string_value(json_object_get(c, "detail"));
		json_int_t att =
			json_integer_value(json_object_get(c, "attempt"));

		if (i >= 50) {
			printf("  ... %zu more ('--json' lists all)\n", n - i);
			break;
		}
		printf("  %-28s %s",
		       json_string_value(json_object_get(c, "invoice")),
		       json_string_value(json_object_get(c, "action")));
		if (att > 0)
			printf(" (attempt %lld)", (long long)att);
		if (detail != NULL)
			printf(": %s", detail);
		printf("\n");
	}
}

int
cmd_stripe_dunning(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct ops_err err = OPS_ERR_INIT;
	struct dunning_opts o;
	struct dunning_result res;
	struct job_ctx jc;
	struct db *db = NULL;
	bool as_json = false;
	int c, r, rc;

	ctx->cmd = "stripe dunning"; /* messages and application_name */
	memset(&o, 0, sizeof(o));
	memset(&res, 0, sizeof(res));
	optind = 1;
	while ((c = cli_getopt("stripe dunning", argc, argv, "", lo)) != -1) {
		switch (c) {
		case 'n':
			o.dry_run = true;
			break;
		case 'j':
			as_json = true;
			break;
		default:
			return OPS_EXIT_USAGE; /* cli_getopt said why */
		}
	}
	if (optind < argc)
		return cli_usage("stripe dunning",
				 "unexpected argument '%s' (options: "
				 "--dry-run, --json)",
				 argv[optind]);
	/* the schedule's days count in the scheduler's clock, which tests and
	 * demos may make virtual (never in production) */
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
	if (cli_db_connect(ctx, &db, &err) != 0)
		return cli_report(ctx, &err);
	memset(&jc, 0, sizeof(jc));
	jc.db = db;
	jc.cfg = &ctx->cfg;
	jc.trigger = LEDGER_MANUAL;
	jc.stop = &ops_stop_flag;
	jc.args = &o;
	jc.out = &res;
	jc.mode = o.dry_run ? "dry-run" : "execute";
	r = job_run(job_find(DUNNING_JOB_NAME), &jc, &err);
	job_ctx_release(&jc);
	/* a run refused before any work (no key, the lock) prints no table */
	if (res.cases != NULL && (r == 0 || res.stripe_calls > 0)) {
		if (as_json) {
			char *counts = dunning_result_json(&res);
			json_t *doc = json_loads(counts, 0, NULL);
			char *s;

			json_object_set(doc, "cases", res.cases);
			s = json_dumps(doc, JSON_INDENT(2));
			printf("%s\n", s);
			free(s);
			free(counts);
			json_decref(doc);
		} else {
			print_result(&res, ctx->cfg.cron_tz,
				     ctx->cfg.dunning_retry_days);
		}
		if (res.smart_retry > 0)
			cli_warn("stripe dunning",
				 "%ld open invoice%s also %s Stripe's own "
				 "retry scheduled (next_payment_attempt): turn "
				 "Smart Retries off so that customers are "
				 "charged on the promised days only (runbook, "
				 "Dunning)",
				 res.smart_retry,
				 res.smart_retry == 1 ? "" : "s",
				 res.smart_retry == 1 ? "has" : "have");
	}
	if (r != 0)
		rc = cli_report(ctx, &err);
	else if (res.errors > 0) {
		cli_warn("stripe dunning",
			 "%ld case%s failed this run (see above); the next run "
			 "retries them",
			 res.errors, res.errors == 1 ? "" : "s");
		rc = OPS_EXIT_TEMPFAIL;
	} else
		rc = OPS_EXIT_OK;
	dunning_result_release(&res);
	db_close(db);
	return rc;
}

static const char *
s_or(const json_t *o, const char *k, const char *def)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : def;
}

static void
print_case_line(const json_t *c)
{
	printf("%-28s %-10s %8lld   %-25s %10.2f %-4s %s\n",
	       s_or(c, "invoice", ""), s_or(c, "status", ""),
	       (long long)json_integer_value(json_object_get(c, "attempts")),
	       s_or(c, "next_attempt_at", "-"),
	       (double)json_integer_value(json_object_get(c, "amount_due")) /
		       100.0,
	       s_or(c, "currency", ""), s_or(c, "customer_id", "(unknown)"));
}

static int
dunning_list_cmd(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "status", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct ops_err err = OPS_ERR_INIT;
	const char *status = NULL;
	struct db *db = NULL;
	json_t *arr = NULL, *c;
	bool as_json = false;
	long limit = 100;
	size_t i;
	int ch, rc;

	optind = 1;
	while ((ch = cli_getopt("dunning", argc, argv, "", lo)) != -1) {
		switch (ch) {
		case 's': {
			bool ok = false;

			for (size_t k = 0; k < 4; k++)
				ok = ok || strcmp(optarg, statuses[k]) == 0;
			if (!ok)
				return cli_usage("dunning",
						 "--status '%s': expected "
						 "open, recovered, suspended "
						 "or closed",
						 optarg);
			status = optarg;
			break;
		}
		case 'l':
			if (parse_long(optarg, 1, 100000, &limit) != 0)
				return cli_usage("dunning",
						 "--limit '%s': expected a "
						 "whole number from 1 to "
						 "100000",
						 optarg);
			break;
		case 'j':
			as_json = true;
			break;
		default:
			return OPS_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage("dunning", "list: unexpected argument '%s'",
				 argv[optind]);
	if (cli_db_connect(ctx, &db, &err) != 0)
		return cli_report(ctx, &err);
	if (dunning_list(db, status, limit, &arr, &err) != 0) {
		rc = cli_report(ctx, &err);
		db_close(db);
		return rc;
	}
	if (as_json) {
		char *s = json_dumps(arr, JSON_INDENT(2));

		printf("%s\n", s);
		free(s);
	} else {
		printf("%-28s %-10s %8s   %-25s %10s %-4s %s\n", "INVOICE",
		       "STATUS", "ATTEMPTS", "NEXT ATTEMPT", "AMOUNT", "CUR",
		       "CUSTOMER");
		json_array_foreach(arr, i, c) print_case_line(c);
		if (json_array_size(arr) == 0)
			printf("(no cases%s%s)\n",
			       status ? " with status " : "",
			       status ? status : "");
	}
	json_decref(arr);
	db_close(db);
	return OPS_EXIT_OK;
}

static int
dunning_show_cmd(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = NULL;
	json_t *doc = NULL, *t;
	bool as_json = false;
	const char *inv;
	size_t i;
	int ch, rc;

	optind = 1;
	while ((ch = cli_getopt("dunning", argc, argv, "", lo)) != -1) {
		if (ch != 'j')
			return OPS_EXIT_USAGE;
		as_json = true;
	}
	if (optind >= argc)
		return cli_usage("dunning",
				 "show: expected a Stripe invoice id such as "
				 "in_1Nx...");
	if (optind + 1 < argc)
		return cli_usage("dunning", "show: unexpected argument '%s'",
				 argv[optind + 1]);
	inv = argv[optind];
	if (!stripe_id_valid(inv) || strncmp(inv, "in_", 3) != 0)
		return cli_usage("dunning",
				 "show: '%s' is not a Stripe invoice id "
				 "(expected in_ followed by letters, digits "
				 "or _)",
				 inv);
	if (cli_db_connect(ctx, &db, &err) != 0)
		return cli_report(ctx, &err);
	if (dunning_show(db, inv, &doc, &err) != 0) {
		rc = cli_report(ctx, &err);
		db_close(db);
		return rc;
	}
	if (as_json) {
		char *s = json_dumps(doc, JSON_INDENT(2));

		printf("%s\n", s);
		free(s);
	} else {
		static const char *const keys[] = {
			"status",	   "attempts",
			"next_attempt_at", "first_failed_at",
			"customer_id",	   "stripe_customer_id",
			"subscription_id", "stripe_subscription_id",
			"opened_by",	   "pending_key",
			"stripe_action",   "last_decline_code",
			"last_error",	   "closed_at",
		};

		printf("invoice      %s\n", s_or(doc, "invoice", ""));
		printf("amount       %.2f %s\n",
		       (double)json_integer_value(
			       json_object_get(doc, "amount_due")) /
			       100.0,
		       s_or(doc, "currency", ""));
		for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			json_t *v = json_object_get(doc, keys[k]);

			if (json_is_string(v))
				printf("%-22s %s\n", keys[k],
				       json_string_value(v));
			else if (json_is_integer(v))
				printf("%-22s %lld\n", keys[k],
				       (long long)json_integer_value(v));
		}
		printf("transitions\n");
		json_array_foreach(json_object_get(doc, "transitions"), i, t)
		{
			json_t *att = json_object_get(t, "attempt");

			printf("  %s  %-16s %s -> %s", s_or(t, "at", ""),
			       s_or(t, "kind", ""), s_or(t, "from", "-"),
			       s_or(t, "to", "-"));
			if (json_is_integer(att))
				printf("  attempt %lld",
				       (long long)json_integer_value(att));
			if (json_is_string(json_object_get(t, "decline_code")))
				printf("  declined %s",
				       s_or(t, "decline_code", ""));
			if (json_is_string(
				    json_object_get(t, "idempotency_key")))
				printf("  key %s",
				       s_or(t, "idempotency_key", ""));
			printf("\n");
		}
	}
	json_decref(doc);
	db_close(db);
	return OPS_EXIT_OK;
}

int
cmd_dunning(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 2)
		return cli_usage("dunning", "expected list or show");
	if (strcmp(argv[1], "list") == 0)
		return dunning_list_cmd(ctx, argc - 1, argv + 1);
	if (strcmp(argv[1], "show") == 0)
		return dunning_show_cmd(ctx, argc - 1, argv + 1);
	return cli_usage("dunning",
			 "unknown subcommand '%s' (expected list or show)",
			 argv[1]);
}
