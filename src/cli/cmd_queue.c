/*
 * apexops worker (the queue's workers) and apexops queue (its operator
 * surface: stats, list, show, retry, cancel, enqueue).
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/xalloc.h"
#include "daemon/metrics.h"
#include "daemon/worker.h"
#include "db/db.h"
#include "jobs/queue.h"

const char cmd_worker_usage[] =
	"usage: apexops worker [--concurrency N] [--kinds K[,K...]]\n"
	"                      [--http ADDR] [--exit-when-idle MS] "
	"[--no-handoff]\n"
	"\n"
	"Run queue jobs (apexops.queue_jobs) with N handler threads\n"
	"(APEXOPS_WORKER_CONCURRENCY, 4). Any number of workers may run on "
	"any\n"
	"number of machines: jobs are claimed with FOR UPDATE SKIP LOCKED, and "
	"a\n"
	"job enqueued into an idle worker starts at once (LISTEN "
	"apexops_queue,\n"
	"polling every second as a fallback). A job holds a lease\n"
	"(APEXOPS_WORKER_LEASE_S, 60) that the worker renews; a worker killed\n"
	"mid-job loses it and the job is retried after it lapses. Failed jobs\n"
	"are retried with exponential backoff and full jitter up to their\n"
	"max_attempts (5), then kept as dead with every attempt's error.\n"
	"SIGTERM: no new claims, jobs not started are given back, running "
	"ones\n"
	"get APEXOPS_WORKER_GRACE_S (60), then their stop flag; exit 0.\n"
	"--kinds: only these kinds (default every kind this binary handles:\n"
	"noop, privacy-export, privacy-delete). --http: GET /healthz and\n"
	"/metrics. --exit-when-idle: exit "
	"after\n"
	"MS milliseconds without work (benchmarks and tests).\n"
	"While it could start a job at once, the worker waits for a handoff:\n"
	"apexops.enqueue() leases a job due now (without a unique key) to it\n"
	"in the enqueuing transaction and sends it in the notification, so\n"
	"the job starts without a claim. --no-handoff: claim every job.\n";

const char cmd_queue_usage[] =
	"usage: apexops queue stats [--json]\n"
	"       apexops queue list [--state S] [--kind K] [--limit N] "
	"[--json]\n"
	"       apexops queue show ID\n"
	"       apexops queue retry ID | --dead\n"
	"       apexops queue cancel ID\n"
	"       apexops queue enqueue KIND [--payload JSON] [--count N]\n"
	"                             [--unique-key KEY] [--max-attempts N]\n"
	"\n"
	"The job queue in apexops.queue_jobs. States: available, running,\n"
	"succeeded, failed-retrying, dead, cancelled.\n"
	"  stats    per kind and state: count and oldest age (--json: an "
	"object\n"
	"           keyed by kind, then by state)\n"
	"  list     newest first (default 50): id, kind, state, attempt,\n"
	"           max_attempts, run_at, timestamps, last error\n"
	"  show     one job with its payload and every attempt's error\n"
	"  retry    make a dead, cancelled or retrying job available now with\n"
	"           its attempts reset; --dead: every dead job\n"
	"  cancel   cancel an available or retrying job (a running one is\n"
	"           refused)\n"
	"  enqueue  through apexops.enqueue(), the SQL function the "
	"platform's\n"
	"           API server calls in its own transaction; --count N uses\n"
	"           apexops.enqueue_bulk()\n";

static const char *const states[] = {
	"available",	   "running", "succeeded",
	"failed-retrying", "dead",    "cancelled",
};

static int
parse_id(const char *what, const char *s, long long *id)
{
	long v;

	if (parse_long(s, 1, 2147483647L * 1000, &v) != 0)
		return cli_usage("queue",
				 "%s: '%s' is not a job id (a whole number "
				 "from 1)",
				 what, s);
	*id = v;
	return 0;
}

static int
with_db(struct cli_ctx *ctx, struct db **db, struct ops_err *err)
{
	return cli_db_connect(ctx, db, err);
}

static int
print_json_or(struct cli_ctx *ctx, const char *json, bool as_json,
	      void (*text)(json_t *))
{
	json_t *doc;

	if (as_json) {
		printf("%s\n", json);
		return OPS_EXIT_OK;
	}
	doc = json_loads(json, 0, NULL);
	if (doc == NULL) {
		struct ops_err e = OPS_ERR_INIT;

		ops_fail(&e, OPS_E_DB, false, "unreadable answer");
		return cli_report(ctx, &e);
	}
	text(doc);
	json_decref(doc);
	return OPS_EXIT_OK;
}

static void
stats_text(json_t *doc)
{
	const char *kind;
	json_t *st;

	printf("%-20s %-16s %10s %12s\n", "kind", "state", "jobs",
	       "oldest (s)");
	json_object_foreach(doc, kind, st)
	{
		const char *state;
		json_t *v;

		json_object_foreach(st, state, v)
		{
			printf("%-20s %-16s %10lld %12lld\n", kind, state,
			       (long long)json_integer_value(
				       json_object_get(v, "count")),
			       (long long)json_integer_value(
				       json_object_get(v, "oldest_age_s")));
		}
	}
}

static void
list_text(json_t *doc)
{
	size_t i;
	json_t *j;

	printf("%-10s %-16s %-16s %-7s %-24s %s\n", "id", "kind", "state",
	       "attempt", "run_at", "last error");
	json_array_foreach(doc, i, j)
	{
		const char *e =
			json_string_value(json_object_get(j, "last_error"));

		printf("%-10lld %-16s %-16s %3lld/%-3lld %-24s %.60s\n",
		       (long long)json_integer_value(json_object_get(j, "id")),
		       json_string_value(json_object_get(j, "kind")),
		       json_string_value(json_object_get(j, "state")),
		       (long long)json_integer_value(
			       json_object_get(j, "attempt")),
		       (long long)json_integer_value(
			       json_object_get(j, "max_attempts")),
		       json_string_value(json_object_get(j, "run_at")),
		       e ? e : "");
	}
}

static void
show_text(json_t *doc)
{
	char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	printf("%s\n", s);
	free(s);
}

static int
queue_enqueue_cmd(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "payload", required_argument, NULL, 'p' },
		{ "count", required_argument, NULL, 'c' },
		{ "unique-key", required_argument, NULL, 'u' },
		{ "max-attempts", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	const char *payload = "{}", *ukey = NULL, *kind;
	long count = 1, maxa = 5;
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = NULL;
	long long id = 0;
	json_t *check;
	int c, r, rc;

	optind = 1;
	while ((c = cli_getopt("queue", argc, argv, "", lo)) != -1) {
		switch (c) {
		case 'p':
			payload = optarg;
			break;
		case 'c':
			if (parse_long(optarg, 1, 1000000, &count) != 0)
				return cli_usage("queue",
						 "--count '%s': expected a "
						 "whole number from 1 to "
						 "1000000",
						 optarg);
			break;
		case 'u':
			ukey = optarg;
			break;
		case 'm':
			if (parse_long(optarg, 1, 1000, &maxa) != 0)
				return cli_usage(
					"queue",
					"--max-attempts '%s': expected "
					"a whole number from 1 to "
					"1000",
					optarg);
			break;
		default:
			return OPS_EXIT_USAGE;
		}
	}
	if (optind + 1 != argc)
		return cli_usage("queue", "enqueue: name one job kind");
	kind = argv[optind];
	if (!queue_kind_valid(kind))
		return cli_usage(
			"queue",
			"enqueue: '%.80s' is not a job kind (" QUEUE_KIND_RULE
			")",
			kind);
	check = json_loads(payload, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(check)) {
		json_decref(check);
		return cli_usage("queue",
				 "--payload: expected a JSON object such as "
				 "'{\"sleep_ms\": 10}'");
	}
	json_decref(check);
	if (count > 1 && ukey != NULL)
		return cli_usage("queue", "--unique-key goes with one job, not "
					  "--count");
	if (with_db(ctx, &db, &err) != 0)
		return cli_report(ctx, &err);
	if (count == 1) {
		r = queue_enqueue(db, kind, payload, NULL, 0, (int)maxa, ukey,
				  &id, &err);
	} else {
		const char **v = xcalloc((size_t)count, sizeof(*v));

		for (long i = 0; i < count; i++)
			v[i] = payload;
		r = queue_enqueue_bulk(db, kind, v, (int)count, &id, &err);
		free(v);
	}
	if (r == 0) {
		bool known = false;

		for (int i = 0; i < worker_nkinds; i++)
			known = known ||
				strcmp(worker_kinds[i].kind, kind) == 0;
		if (!known)
			log_warn(
				"no handler for this kind in this apexops: the "
				"job waits for a worker that has one kind=%s",
				kind);
		if (count == 1)
			printf("job %lld\n", id);
		else
			printf("jobs %lld..%lld\n", id, id + count - 1);
		rc = OPS_EXIT_OK;
	} else {
		rc = cli_report(ctx, &err);
	}
	db_close(db);
	return rc;
}

int
cmd_queue(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "state", required_argument, NULL, 's' },
		{ "kind", required_argument, NULL, 'k' },
		{ "limit", required_argument, NULL, 'l' },
		{ "dead", no_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sub = argc > 1 ? argv[1] : NULL, *state = NULL,
		   *kind = NULL;
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = NULL;
	bool as_json = false, dead = false;
	long limit = 50;
	long long id = 0;
	char *json = NULL;
	int c, n = 0, rc;

	if (sub == NULL)
		return cli_usage("queue", "which subcommand? (stats, list, "
					  "show, retry, cancel, enqueue)");
	if (strcmp(sub, "enqueue") == 0)
		return queue_enqueue_cmd(ctx, argc - 1, argv + 1);
	if (strcmp(sub, "stats") != 0 && strcmp(sub, "list") != 0 &&
	    strcmp(sub, "show") != 0 && strcmp(sub, "retry") != 0 &&
	    strcmp(sub, "cancel") != 0)
		return cli_usage("queue",
				 "unknown subcommand '%s' (stats, list, show, "
				 "retry, cancel, enqueue)",
				 sub);
	optind = 1;
	while ((c = cli_getopt("queue", argc - 1, argv + 1, "", lo)) != -1) {
		switch (c) {
		case 'j':
			as_json = true;
			break;
		case 's':
			state = optarg;
			break;
		case 'k':
			if (!queue_kind_valid(optarg))
				return cli_usage("queue",
						 "--kind '%.80s': not a job "
						 "kind (" QUEUE_KIND_RULE ")",
						 optarg);
			kind = optarg;
			break;
		case 'l':
			if (parse_long(optarg, 1, 100000, &limit) != 0)
				return cli_usage("queue",
						 "--limit '%s': expected a "
						 "whole number from 1 to "
						 "100000",
						 optarg);
			break;
		case 'd':
			dead = true;
			break;
		default:
			return OPS_EXIT_USAGE;
		}
	}
	if (state != NULL) {
		bool ok = false;

		for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
			ok = ok || strcmp(states[i], state) == 0;
		if (!ok)
			return cli_usage("queue",
					 "--state '%s': expected available, "
					 "running, succeeded, failed-retrying, "
					 "dead or cancelled",
					 state);
	}
	optind++; /* past the subcommand in the shifted argv */
	if (strcmp(sub, "show") == 0 || strcmp(sub, "cancel") == 0 ||
	    (strcmp(sub, "retry") == 0 && !dead)) {
		if (optind + 1 != argc)
			return cli_usage("queue", "%s: name one job id%s", sub,
					 strcmp(sub, "retry") == 0
						 ? " (or --dead)"
						 : "");
		if (parse_id(sub, argv[optind], &id) != 0)
			return OPS_EXIT_USAGE;
	} else if (optind < argc) {
		return cli_usage("queue", "%s: unexpected argument '%s'", sub,
				 argv[optind]);
	}
	if (with_db(ctx, &db, &err) != 0)
		return cli_report(ctx, &err);
	rc = OPS_EXIT_OK;
	if (strcmp(sub, "stats") == 0) {
		if (queue_stats_json(db, &json, &err) != 0)
			rc = cli_report(ctx, &err);
		else
			rc = print_json_or(ctx, json, as_json, stats_text);
	} else if (strcmp(sub, "list") == 0) {
		if (queue_list_json(db, state, kind, limit, &json, &err) != 0)
			rc = cli_report(ctx, &err);
		else
			rc = print_json_or(ctx, json, as_json, list_text);
	} else if (strcmp(sub, "show") == 0) {
		if (queue_show_json(db, id, &json, &err) != 0)
			rc = cli_report(ctx, &err);
		else
			rc = print_json_or(ctx, json, true, show_text);
	} else if (strcmp(sub, "retry") == 0) {
		if (queue_retry(db, dead ? 0 : id, &n, &err) != 0) {
			rc = cli_report(ctx, &err);
		} else if (n == 0 && !dead) {
			ops_fail(&err, OPS_E_NOTFOUND, false,
				 "job %lld is not dead, cancelled or retrying "
				 "(or does not exist): nothing to retry",
				 id);
			rc = cli_report(ctx, &err);
		} else {
			printf("%d job(s) available again\n", n);
		}
	} else {
		if (queue_cancel(db, id, &n, &err) != 0) {
			rc = cli_report(ctx, &err);
		} else if (n == 0) {
			ops_fail(&err, OPS_E_REFUSED, false,
				 "job %lld is not available or retrying (a "
				 "running job finishes; a finished one stays "
				 "as it is)",
				 id);
			rc = cli_report(ctx, &err);
		} else {
			printf("job %lld cancelled\n", id);
		}
	}
	free(json);
	db_close(db);
	return rc;
}

int
cmd_worker(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "concurrency", required_argument, NULL, 'c' },
		{ "kinds", required_argument, NULL, 'k' },
		{ "http", required_argument, NULL, 'h' },
		{ "exit-when-idle", required_argument, NULL, 'i' },
		{ "no-handoff", no_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	struct worker_opts o;
	struct ops_err err = OPS_ERR_INIT;
	const char *kinds_arg = NULL;
	char *kinds_copy = NULL;
	const char *kinds[16];
	long conc = ctx->cfg.worker_concurrency, idle = 0;
	int c, r, nk = 0;

	memset(&o, 0, sizeof(o));
	o.http_addr = ctx->cfg.http_addr;
	optind = 1;
	while ((c = cli_getopt("worker", argc, argv, "", lo)) != -1) {
		switch (c) {
		case 'c':
			if (parse_long(optarg, 1, 256, &conc) != 0)
				return cli_usage("worker",
						 "--concurrency '%s': expected "
						 "a whole number from 1 to 256",
						 optarg);
			break;
		case 'k':
			kinds_arg = optarg;
			break;
		case 'h':
			if (!metrics_addr_valid(optarg))
				return cli_usage(
					"worker",
					"--http '%s': " METRICS_ADDR_EXPECTED,
					optarg);
			o.http_addr = optarg;
			break;
		case 'i':
			if (parse_long(optarg, 1, 86400000, &idle) != 0)
				return cli_usage("worker",
						 "--exit-when-idle '%s': "
						 "expected milliseconds from 1",
						 optarg);
			break;
		case 'H':
			o.no_handoff = true;
			break;
		default:
			return OPS_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage("worker", "unexpected argument '%s'",
				 argv[optind]);
	if (kinds_arg != NULL) {
		char *save = NULL, *tok;

		kinds_copy = xstrdup(kinds_arg);
		for (tok = strtok_r(kinds_copy, ",", &save); tok != NULL;
		     tok = strtok_r(NULL, ",", &save)) {
			bool known = false;

			for (int i = 0; i < worker_nkinds; i++)
				known = known ||
					strcmp(worker_kinds[i].kind, tok) == 0;
			if (!known || nk == 16) {
				int rc = cli_usage("worker",
						   "--kinds: '%s' is not a "
						   "kind this worker handles "
						   "(noop, privacy-export, "
						   "privacy-delete)",
						   tok);

				free(kinds_copy); /* tok points into it */
				return rc;
			}
			kinds[nk++] = tok;
		}
	} else {
		for (int i = 0; i < worker_nkinds && nk < 16; i++)
			kinds[nk++] = worker_kinds[i].kind;
	}
	if (ctx->cfg.database_url != NULL) {
		ctx->db_url = xstrdup(ctx->cfg.database_url);
	} else {
		struct db *db = NULL;

		if (cli_db_connect(ctx, &db, &err) != 0) {
			free(kinds_copy);
			return cli_report(ctx, &err);
		}
		db_close(db);
	}
	o.db_url = ctx->db_url;
	o.concurrency = (int)conc;
	o.kinds = kinds;
	o.nkinds = nk;
	o.lease_s = ctx->cfg.worker_lease_s;
	o.grace_s = ctx->cfg.worker_grace_s;
	o.exit_when_idle_ms = idle;
	r = worker_run(&ctx->cfg, &o, &err);
	free(kinds_copy);
	return r == 0 ? OPS_EXIT_OK : cli_report(ctx, &err);
}
