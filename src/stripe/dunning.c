/* Dunning runs: open cases, pay due ones, suspend, recover; see dunning.h. */
#include "stripe/dunning.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/file.h"
#include "core/log.h"
#include "core/stop.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "http/ratelimit.h"
#include "jobs/job.h"
#include "jobs/ledger.h"
#include "stripe/stripe.h"

#define PAGE_LIMIT	"100"
#define MAX_TRIES	5  /* per Stripe call: the first and 4 retries */
#define MAX_TRIES_429	10 /* a throttled call changed nothing: more */
#define ACTOR		"apexops/dunning"
#define REACTIVATE_URL	"https://console.apexmediation.ee/billing/reactivate"
#define BILLING_URL	"https://console.apexmediation.ee/billing"
#define MAX_CASES_SHOWN 10000 /* per-case lines kept in the result */

struct dcase {
	long long id;
	char invoice[256];
	char status[16];
	int attempts;
	int pending_attempt; /* 0: none */
	char pending_key[320];
	/* Stripe accepted the pending attempt without paying (a bank debit
	 * processing), recorded by an attempt_started transition that names
	 * the invoice's payment intent (pending_pi, "" when it named none) */
	bool pending_accepted;
	char pending_pi[256];
	char action[8]; /* "pause", "resume", "" */
	char customer[40];
	char stripe_sub[256];
};

struct dun {
	struct job_ctx *ctx;
	const struct ops_config *cfg;
	volatile sig_atomic_t *stop;
	bool dry;
	const char *tz;
	int days[DUNNING_MAX_DAYS], ndays;
	char now[32]; /* the run's clock at its start, RFC 3339 */
	struct stripe_opts so;
	struct http_policy policy;
	struct ratelimit rl;
	pthread_mutex_t dbmu; /* the one connection, ctx->db */
	pthread_mutex_t mu;   /* res, next */
	struct dunning_result *res;
	struct dcase *cases;
	size_t ncases, next;
	bool crash_after_pay; /* APEXOPS_TEST_CRASH_AFTER_PAY (tests) */
	double last_slow;     /* when slow_down() last lowered the rate */
};

/* ------------------------------------------------------------------ */
/* small helpers */

static const char *
jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : "";
}

static long long
jint(const json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* The invoice's subscription: a string at the top level (API versions
 * before 2025-03-31.basil), else parent.subscription_details. */
static const char *
inv_subscription(const json_t *inv)
{
	const json_t *v = json_object_get(inv, "subscription");

	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_object(v))
		return jstr(v, "id");
	v = json_object_get(json_object_get(inv, "parent"),
			    "subscription_details");
	return jstr(v, "subscription");
}

static const char *
inv_customer(const json_t *inv)
{
	const json_t *v = json_object_get(inv, "customer");

	return json_is_object(v) ? jstr(v, "id") : jstr(inv, "customer");
}

/* The invoice's payment intent id: a string, or the object when expanded
 * (API versions before 2025-03-31.basil; later ones list it under the
 * invoice's payments, listed_payment_intent(), and this is ""). */
static const char *
inv_payment_intent(const json_t *inv)
{
	const json_t *v = json_object_get(inv, "payment_intent");

	return json_is_object(v) ? jstr(v, "id") : jstr(inv, "payment_intent");
}

static void
now_rfc3339(char *buf, size_t n)
{
	ops_format_rfc3339((time_t)ops_clock_now(), buf, n);
}

static void
add_count(struct dun *d, long *field, long by)
{
	pthread_mutex_lock(&d->mu);
	*field += by;
	pthread_mutex_unlock(&d->mu);
}

/* One line of the result: what happened to invoice. */
static void
note_case(struct dun *d, const char *invoice, const char *action, int attempt,
	  const char *detail)
{
	json_t *o;

	pthread_mutex_lock(&d->mu);
	if (json_array_size(d->res->cases) < MAX_CASES_SHOWN) {
		o = json_pack("{s:s, s:s}", "invoice", invoice, "action",
			      action);
		if (attempt > 0)
			json_object_set_new(o, "attempt",
					    json_integer(attempt));
		if (detail != NULL && *detail != '\0')
			json_object_set_new(o, "detail", json_string(detail));
		json_array_append_new(d->res->cases, o);
	}
	pthread_mutex_unlock(&d->mu);
}

/*
 * The connection of the calling thread: a worker's own (tdb), else the
 * run's (ctx->db, which holds the job's lock), shared under dbmu.
 */
static _Thread_local struct db *tdb;

static struct db *
DB(struct dun *d)
{
	return tdb != NULL ? tdb : d->ctx->db;
}

static void
dblock(struct dun *d)
{
	if (tdb == NULL)
		pthread_mutex_lock(&d->dbmu);
}

static void
dbunlock(struct dun *d)
{
	if (db_in_tx(DB(d)))
		db_rollback(DB(d));
	if (tdb == NULL)
		pthread_mutex_unlock(&d->dbmu);
}

int
dunning_parse_days(const char *s, int *days, int *n, struct ops_err *err)
{
	const char *p = s;
	long prev = 0;

	*n = 0;
	while (p != NULL && *p != '\0') {
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p || v < 1 || v > 365 || v <= prev ||
		    *n >= DUNNING_MAX_DAYS || (*end != ',' && *end != '\0') ||
		    *p < '0' || *p > '9')
			goto bad;
		days[(*n)++] = (int)v;
		prev = v;
		p = *end == ',' ? end + 1 : end;
		if (*end == ',' && *p == '\0')
			goto bad;
	}
	if (*n > 0)
		return 0;
bad:
	return ops_fail(err, OPS_E_CONFIG, false,
			"DUNNING_RETRY_DAYS: invalid value '%s': expected "
			"increasing whole numbers of days from 1 to 365, "
			"comma-separated, at most %d (such as 3,5,7)",
			s ? s : "", DUNNING_MAX_DAYS);
}

/* ------------------------------------------------------------------ */
/* Stripe calls: one slot of the shared limit per attempt */

static bool
retryable(const struct stripe_error *se, const struct ops_err *e)
{
	long s = se->http_status;

	if (e->code == OPS_E_STOPPED)
		return false;
	if (s == 0)
		return e->transient; /* network */
	return s == 409 || s == 429 || s >= 500;
}

/*
 * Stripe throttled us: its limit is below ours (another client shares the
 * account, or a lower limit than STRIPE_MAX_RPS says). Halve the rate, at
 * most once a second (the threads' 429s of one burst count once), down to
 * one request a second, as TCP backs off; the run keeps the lower rate.
 */
static void
slow_down(struct dun *d)
{
	struct timespec ts;
	double now, rps = 0;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;

	pthread_mutex_lock(&d->mu);
	if (now - d->last_slow >= 1.0) {
		d->last_slow = now;
		pthread_mutex_lock(&d->rl.mu);
		if (d->rl.interval > 0 && d->rl.interval < 1.0) {
			d->rl.interval = d->rl.interval * 2 > 1.0
						 ? 1.0
						 : d->rl.interval * 2;
			rps = 1.0 / d->rl.interval;
		}
		pthread_mutex_unlock(&d->rl.mu);
	}
	pthread_mutex_unlock(&d->mu);
	if (rps > 0)
		log_warn("stripe throttled the run (429): client rate lowered "
			 "to %.1f requests/s",
			 rps);
}

static int
scall(struct dun *d, struct stripe *st, const char *method, const char *path,
      const json_t *params, const char *key, json_t **out,
      struct stripe_error *se, struct ops_err *err)
{
	struct ops_err e = OPS_ERR_INIT;
	int r = 0;

	*out = NULL;
	for (int attempt = 1;; attempt++) {
		long delay;

		ops_err_clear(&e);
		r = ratelimit_acquire(&d->rl, d->stop);
		if (r != 0) {
			ops_fail(&e, OPS_E_STOPPED, false,
				 "stopped before calling Stripe");
			break;
		}
		add_count(d, &d->res->stripe_calls, 1);
		r = stripe_call(st, method, path, params, key, out, NULL, se,
				&e);
		/* a 429 did nothing, so it may be retried longer */
		if (r == 0 || !retryable(se, &e) ||
		    attempt >= (se->http_status == 429 ? MAX_TRIES_429
						       : MAX_TRIES))
			break;
		delay = ops_backoff_equal_jitter(500, 8000, attempt);
		if (se->http_status == 429) {
			slow_down(d);
			ratelimit_pause(&d->rl, delay); /* everyone waits */
		}
		log_info("stripe retry method=%s path=%s status=%ld attempt=%d "
			 "delay_ms=%ld",
			 method, log_q(path), se->http_status, attempt, delay);
		if (ops_sleep_ms(delay, d->stop) != 0) {
			r = ops_fail(&e, OPS_E_STOPPED, false,
				     "stopped while waiting to retry Stripe");
			break;
		}
	}
	if (r != 0 && err != NULL)
		*err = e;
	return r;
}

/*
 * The payment intent of an invoice that names none (API versions from
 * 2025-03-31.basil removed the invoice's payment_intent field): its invoice
 * payments, GET /v1/invoice_payments?invoice=ID (newest first; see
 * https://docs.stripe.com/api/invoice-payment/list), the default one
 * (is_default: the payment the invoice's own collection uses, which a
 * pay call charges) if listed, else the newest of type payment_intent.
 * The intent is a string, or the object when expanded. out is "" when the
 * invoice has none; an error only when the list cannot be read.
 */
static int
listed_payment_intent(struct dun *d, struct stripe *st, const char *invoice,
		      char *out, size_t n, struct ops_err *err)
{
	struct stripe_error se;
	json_t *params, *page = NULL, *ip;
	const char *best = "";
	size_t i;
	int r;

	out[0] = '\0';
	params = json_pack("{s:s, s:s}", "invoice", invoice, "limit", "100");
	r = scall(d, st, "GET", "/v1/invoice_payments", params, NULL, &page,
		  &se, err);
	json_decref(params);
	if (r != 0)
		return ops_err_prefix(err, "listing the payments of invoice %s",
				      invoice);
	json_array_foreach(json_object_get(page, "data"), i, ip)
	{
		const json_t *pay = json_object_get(ip, "payment");
		const json_t *v = json_object_get(pay, "payment_intent");
		const char *id = json_is_object(v)
					 ? jstr(v, "id")
					 : jstr(pay, "payment_intent");

		if (strcmp(jstr(pay, "type"), "payment_intent") != 0 ||
		    *id == '\0')
			continue;
		if (*best == '\0' ||
		    json_is_true(json_object_get(ip, "is_default"))) {
			best = id;
			if (json_is_true(json_object_get(ip, "is_default")))
				break;
		}
	}
	snprintf(out, n, "%s", best);
	json_decref(page);
	return 0;
}

static int
get_invoice(struct dun *d, struct stripe *st, const char *id, json_t **inv,
	    struct stripe_error *se, struct ops_err *err)
{
	char path[320];

	*inv = NULL;
	if (!stripe_id_valid(id))
		return ops_fail(err, OPS_E_INVALID, false,
				"invoice id '%.64s' is not a Stripe id", id);
	snprintf(path, sizeof(path), "/v1/invoices/%s", id);
	return scall(d, st, "GET", path, NULL, NULL, inv, se, err);
}

/* ------------------------------------------------------------------ */
/* database steps; the caller holds dbmu */

static int
exec(struct dun *d, const char *sql, int n, const char *const *p,
     long long *affected, struct ops_err *err)
{
	return db_exec(DB(d), sql, n, p, affected, err);
}

/*
 * A transition and its billing_audit row, in the caller's transaction.
 * detail (may be NULL) is borrowed.
 */
static int
note(struct dun *d, long long case_id, const char *invoice,
     const char *customer, const char *kind, const char *from, const char *to,
     int attempt, const char *key, const char *decline, const json_t *detail,
     struct ops_err *err)
{
	static const char tsql[] =
		"INSERT INTO apexops.dunning_transitions (case_id, at, kind,"
		" from_status, to_status, attempt, idempotency_key,"
		" decline_code, detail, run_id) VALUES ($1, $2, $3,"
		" NULLIF($4, ''), NULLIF($5, ''), NULLIF($6, '0')::int,"
		" NULLIF($7, ''), NULLIF($8, ''), $9::jsonb,"
		" NULLIF($10, '0')::bigint)";
	static const char asql[] =
		"INSERT INTO public.billing_audit (event_type, actor,"
		" customer_id, data, created_at) VALUES ($1, '" ACTOR "',"
		" NULLIF($2, '')::uuid, $3::jsonb, $4)";
	char id_s[24], att_s[16], run_s[24], at[32], type[64];
	json_t *data;
	char *dtext, *atext;
	int r;

	snprintf(id_s, sizeof(id_s), "%lld", case_id);
	snprintf(att_s, sizeof(att_s), "%d", attempt);
	snprintf(run_s, sizeof(run_s), "%lld", d->ctx->run_id);
	snprintf(type, sizeof(type), "dunning_%s", kind);
	now_rfc3339(at, sizeof(at));
	data = detail != NULL ? json_incref((json_t *)detail) : json_object();
	dtext = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	data = detail != NULL ? json_deep_copy(detail) : json_object();
	json_object_set_new(data, "invoice", json_string(invoice));
	json_object_set_new(data, "case_id", json_integer(case_id));
	if (from != NULL && *from != '\0')
		json_object_set_new(data, "from", json_string(from));
	if (to != NULL && *to != '\0')
		json_object_set_new(data, "to", json_string(to));
	if (attempt > 0)
		json_object_set_new(data, "attempt", json_integer(attempt));
	if (key != NULL && *key != '\0')
		json_object_set_new(data, "idempotency_key", json_string(key));
	if (decline != NULL && *decline != '\0')
		json_object_set_new(data, "decline_code", json_string(decline));
	if (d->ctx->run_id > 0)
		json_object_set_new(data, "run_id",
				    json_integer(d->ctx->run_id));
	atext = json_dumps(data, JSON_COMPACT);
	json_decref(data);
	{
		const char *p[10] = { id_s,	      at,
				      kind,	      from ? from : "",
				      to ? to : "",   att_s,
				      key ? key : "", decline ? decline : "",
				      dtext,	      run_s };

		r = exec(d, tsql, 10, p, NULL, err);
	}
	if (r == 0) {
		const char *p[4] = { type, customer ? customer : "", atext,
				     at };

		r = exec(d, asql, 4, p, NULL, err);
	}
	free(dtext);
	free(atext);
	return r;
}

/* An events row for the mailer (public.events); only for a known user,
 * whose email goes in "to". payload is borrowed. */
static int
emit(struct dun *d, const char *type, const char *customer,
     const json_t *payload, struct ops_err *err)
{
	static const char sql[] =
		"INSERT INTO public.events (event_type, data, customer_id,"
		" created_at) SELECT $1, $2::jsonb || jsonb_build_object('to',"
		" u.email, 'customer_id', u.id), u.id, $4 FROM public.users u"
		" WHERE u.id = $3::uuid";
	char at[32];
	char *text;
	int r;

	if (customer == NULL || *customer == '\0')
		return 0;
	now_rfc3339(at, sizeof(at));
	text = json_dumps(payload, JSON_COMPACT);
	{
		const char *p[4] = { type, text, customer, at };

		r = exec(d, sql, 4, p, NULL, err);
	}
	free(text);
	return r;
}

/* ------------------------------------------------------------------ */
/* opening cases */

struct candidate {
	char invoice[256];
	char failed_at[40];
	char customer[40]; /* the row's customer_id (users.id), or "" */
	bool taken;
};

struct candidates {
	struct candidate *v;
	size_t n;
};

static int
load_candidates(struct dun *d, struct candidates *c, struct ops_err *err)
{
	/* the webhook intake's rows name the invoice in data: "invoice"
	 * (an id or the object), "invoice_id", "stripe_invoice_id", or the
	 * whole event (data.object) */
	static const char sql[] =
		"SELECT inv, min(created_at), COALESCE((array_agg(customer_id"
		" ORDER BY created_at) FILTER (WHERE customer_id IS NOT"
		" NULL))[1]::text, '') FROM (SELECT COALESCE("
		" NULLIF(data->>'invoice_id', ''),"
		" NULLIF(data->>'stripe_invoice_id', ''),"
		" CASE jsonb_typeof(data->'invoice') WHEN 'string' THEN"
		" data->>'invoice' WHEN 'object' THEN data->'invoice'->>'id'"
		" END, CASE WHEN data->'data'->'object'->>'object' = 'invoice'"
		" THEN data->'data'->'object'->>'id' END) AS inv, created_at,"
		" customer_id"
		" FROM public.billing_audit WHERE event_type = "
		"'payment_failed')"
		" a WHERE inv ~ '^in_[A-Za-z0-9_]{1,250}$' AND NOT EXISTS"
		" (SELECT 1 FROM apexops.dunning_cases c WHERE c.invoice_id ="
		" a.inv) GROUP BY inv ORDER BY 2, 1";
	struct db_res *res = NULL;
	int r;

	c->v = NULL;
	c->n = 0;
	dblock(d);
	r = db_query(DB(d), sql, 0, NULL, &res, err);
	dbunlock(d);
	if (r != 0)
		return r;
	c->n = (size_t)db_res_rows(res);
	c->v = xcalloc(c->n + 1, sizeof(*c->v));
	for (size_t i = 0; i < c->n; i++) {
		snprintf(c->v[i].invoice, sizeof(c->v[i].invoice), "%s",
			 db_res_get(res, (int)i, 0));
		snprintf(c->v[i].failed_at, sizeof(c->v[i].failed_at), "%s",
			 db_res_get(res, (int)i, 1));
		snprintf(c->v[i].customer, sizeof(c->v[i].customer), "%s",
			 db_res_get(res, (int)i, 2));
	}
	db_res_free(res);
	return 0;
}

static struct candidate *
find_candidate(struct candidates *c, const char *invoice)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i].invoice, invoice) == 0)
			return &c->v[i];
	return NULL;
}

/*
 * Open a case for inv (a Stripe invoice object): status open when it is
 * open (or uncollectible) and unpaid, closed otherwise; failed_at is the
 * first failure (RFC 3339 or a timestamptz text).
 */
static int
open_case(struct dun *d, const json_t *inv, const char *failed_at,
	  const char *opened_by, const char *customer, struct ops_err *err)
{
	static const char sql[] =
		"INSERT INTO apexops.dunning_cases (invoice_id,"
		" stripe_customer_id, customer_id, stripe_subscription_id,"
		" subscription_id, amount_due, currency, hosted_invoice_url,"
		" first_failed_at, next_attempt_at, status, opened_by,"
		" stripe_attempt_count, stripe_next_payment_attempt,"
		" closed_at, last_error, created_at, updated_at)"
		" SELECT $1, NULLIF($2, ''), cu.id, NULLIF($3, ''),"
		" COALESCE((SELECT s.id FROM public.subscriptions s WHERE"
		" s.stripe_subscription_id = NULLIF($3, '')), (SELECT s.id FROM"
		" public.subscriptions s WHERE s.customer_id = cu.id)),"
		" $4::bigint, $5, NULLIF($6, ''), $7::timestamptz,"
		" CASE WHEN $10 = 'open' THEN ((($7::timestamptz AT TIME ZONE"
		" $8)::date + $9::int)::timestamp AT TIME ZONE $8) END, $10,"
		" $11, $12::int, to_timestamp(NULLIF($13, '0')::bigint),"
		" CASE WHEN $10 <> 'open' THEN $14::timestamptz END,"
		" NULLIF($15, ''), $14::timestamptz, $14::timestamptz"
		" FROM (SELECT COALESCE((SELECT u.id FROM public.users u WHERE"
		" u.stripe_customer_id = NULLIF($2, '')), (SELECT s.customer_id"
		" FROM public.subscriptions s WHERE s.stripe_customer_id ="
		" NULLIF($2, '') ORDER BY s.created_at LIMIT 1),"
		" (SELECT u.id FROM public.users u WHERE u.id ="
		" NULLIF($16, '')::uuid)) AS id) cu"
		" ON CONFLICT (invoice_id) DO NOTHING RETURNING id,"
		" customer_id, to_char(next_attempt_at AT TIME ZONE $8,"
		" 'YYYY-MM-DD')";
	const char *istatus = jstr(inv, "status");
	bool open = strcmp(istatus, "open") == 0 ||
		    strcmp(istatus, "uncollectible") == 0;
	const char *status = open ? "open" : "closed";
	char amount[32], day0[16], attempts[24], nextpa[24], at[32];
	const char *why = open ? ""
			  : strcmp(istatus, "paid") == 0
				  ? "paid before dunning started"
			  : strcmp(istatus, "missing") == 0
				  ? "invoice not found in Stripe"
				  : "invoice is not open";
	struct db_res *res = NULL;
	json_t *detail, *ev;
	int r;

	snprintf(amount, sizeof(amount), "%lld", jint(inv, "amount_due"));
	snprintf(day0, sizeof(day0), "%d", d->days[0]);
	snprintf(attempts, sizeof(attempts), "%lld",
		 jint(inv, "attempt_count"));
	snprintf(nextpa, sizeof(nextpa), "%lld",
		 jint(inv, "next_payment_attempt"));
	now_rfc3339(at, sizeof(at));
	if (d->dry) {
		note_case(d, jstr(inv, "id"),
			  open ? "would open" : "would close", 0, why);
		add_count(d, &d->res->opened, 1);
		return 0;
	}
	{
		const char *p[16] = { jstr(inv, "id"),
				      inv_customer(inv),
				      inv_subscription(inv),
				      amount,
				      jstr(inv, "currency")[0]
					      ? jstr(inv, "currency")
					      : "usd",
				      jstr(inv, "hosted_invoice_url"),
				      failed_at,
				      d->tz,
				      day0,
				      status,
				      opened_by,
				      attempts,
				      nextpa,
				      at,
				      why,
				      customer ? customer : "" };

		dblock(d);
		r = db_begin(DB(d), err);
		if (r == 0)
			r = db_query(DB(d), sql, 16, p, &res, err);
	}
	if (r != 0)
		goto out;
	if (db_res_rows(res) == 0) { /* another run opened it meanwhile */
		r = 0;
		goto out;
	}
	detail = json_pack("{s:s, s:s, s:I, s:s, s:I}", "opened_by", opened_by,
			   "stripe_status", istatus, "amount_due",
			   (json_int_t)jint(inv, "amount_due"), "currency",
			   jstr(inv, "currency"), "stripe_attempt_count",
			   (json_int_t)jint(inv, "attempt_count"));
	if (!open)
		json_object_set_new(detail, "reason", json_string(why));
	r = note(d, db_res_ll(res, 0, 0), jstr(inv, "id"),
		 db_res_get(res, 0, 1), "opened", "", status, 0, NULL, NULL,
		 detail, err);
	json_decref(detail);
	if (r == 0 && open) {
		/* the customer's first notice, with the promised retry day */
		ev = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s}",
			       "invoice_id", jstr(inv, "id"), "amount_due", "",
			       "currency", jstr(inv, "currency"),
			       "next_retry_date", db_res_get(res, 0, 2),
			       "attempt_number", 0, "payment_url",
			       jstr(inv, "hosted_invoice_url")[0]
				       ? jstr(inv, "hosted_invoice_url")
				       : BILLING_URL,
			       "retry_days", "");
		{
			char a[32], days[64] = "";

			snprintf(a, sizeof(a), "%.2f",
				 (double)jint(inv, "amount_due") / 100.0);
			json_object_set_new(ev, "amount_due", json_string(a));
			for (int i = 0; i < d->ndays; i++)
				snprintf(days + strlen(days),
					 sizeof(days) - strlen(days), "%s%d",
					 i ? "," : "", d->days[i]);
			json_object_set_new(ev, "retry_days",
					    json_string(days));
		}
		r = emit(d, "email.payment_failed", db_res_get(res, 0, 1), ev,
			 err);
		json_decref(ev);
	}
	if (r == 0)
		r = db_commit(DB(d), err);
	if (r == 0) {
		add_count(d, &d->res->opened, 1);
		if (strcmp(opened_by, "reconciliation") == 0)
			add_count(d, &d->res->reconciled, 1);
		note_case(d, jstr(inv, "id"), open ? "opened" : "closed", 0,
			  why);
		log_info("dunning case opened invoice=%s status=%s by=%s",
			 log_q(jstr(inv, "id")), status, opened_by);
	}
out:
	db_res_free(res);
	dbunlock(d);
	return r;
}

/* Which of ids (a JSON array of strings) have a case already: a JSON
 * array text for ANY($1). Returns a new json array of the known ids. */
static int
known_cases(struct dun *d, const json_t *ids, json_t **known,
	    struct ops_err *err)
{
	static const char sql[] =
		"SELECT invoice_id FROM apexops.dunning_cases WHERE invoice_id"
		" = ANY (ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))";
	struct db_res *res = NULL;
	char *text = json_dumps(ids, JSON_COMPACT);
	const char *p[1] = { text };
	int r;

	*known = json_array();
	dblock(d);
	r = db_query(DB(d), sql, 1, p, &res, err);
	dbunlock(d);
	free(text);
	if (r != 0)
		return r;
	for (int i = 0; i < db_res_rows(res); i++)
		json_array_append_new(*known,
				      json_string(db_res_get(res, i, 0)));
	db_res_free(res);
	return 0;
}

static bool
in_array(const json_t *a, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(a, i, v) if (strcmp(json_string_value(v), s) ==
					0) return true;
	return false;
}

/* A failure time for an invoice found without a webhook row: when it was
 * finalized (its first automatic attempt follows), else created. */
static void
inv_failed_at(const json_t *inv, char *buf, size_t n)
{
	long long t = jint(json_object_get(inv, "status_transitions"),
			   "finalized_at");

	if (t <= 0)
		t = jint(inv, "created");
	if (t <= 0)
		t = (long long)ops_clock_now();
	ops_format_rfc3339((time_t)t, buf, n);
}

/* GET /v1/invoices?status=open, every page: open a case for each invoice
 * with failed attempts that has none. */
static int
reconcile(struct dun *d, struct stripe *st, struct candidates *cand,
	  struct ops_err *err)
{
	char after[256] = "";
	int r = 0;

	for (;;) {
		struct stripe_error se;
		json_t *params, *page = NULL, *data, *ids, *known = NULL, *inv;
		size_t i;
		bool more;

		if (ops_stopped(d->stop))
			return ops_fail(err, OPS_E_STOPPED, false,
					"stopped during reconciliation");
		params = json_pack("{s:s, s:s}", "status", "open", "limit",
				   PAGE_LIMIT);
		if (after[0] != '\0')
			json_object_set_new(params, "starting_after",
					    json_string(after));
		r = scall(d, st, "GET", "/v1/invoices", params, NULL, &page,
			  &se, err);
		json_decref(params);
		if (r != 0)
			return ops_err_prefix(err, "reconciliation");
		data = json_object_get(page, "data");
		more = json_is_true(json_object_get(page, "has_more"));
		ids = json_array();
		json_array_foreach(data, i, inv) json_array_append_new(
			ids, json_string(jstr(inv, "id")));
		r = known_cases(d, ids, &known, err);
		json_decref(ids);
		json_array_foreach(data, i, inv)
		{
			struct candidate *c;
			char failed[40];

			if (r != 0)
				break;
			if (jint(inv, "attempt_count") <= 0 ||
			    !stripe_id_valid(jstr(inv, "id")))
				continue;
			add_count(d, &d->res->open_seen, 1);
			if (jint(inv, "next_payment_attempt") > 0)
				add_count(d, &d->res->smart_retry, 1);
			if (in_array(known, jstr(inv, "id")))
				continue;
			c = find_candidate(cand, jstr(inv, "id"));
			if (c != NULL)
				c->taken = true;
			else
				inv_failed_at(inv, failed, sizeof(failed));
			r = open_case(d, inv, c ? c->failed_at : failed,
				      c ? "webhook" : "reconciliation",
				      c ? c->customer : NULL, err);
		}
		if (r == 0 && json_array_size(data) > 0)
			snprintf(after, sizeof(after), "%s",
				 jstr(json_array_get(data,
						     json_array_size(data) - 1),
				      "id"));
		json_decref(known);
		json_decref(page);
		if (r != 0 || !more || after[0] == '\0')
			return r;
	}
}

/* The webhook rows reconciliation did not meet: fetch each invoice. */
static int
open_remaining(struct dun *d, struct stripe *st, struct candidates *cand,
	       struct ops_err *err)
{
	for (size_t i = 0; i < cand->n; i++) {
		struct candidate *c = &cand->v[i];
		struct stripe_error se;
		struct ops_err e = OPS_ERR_INIT;
		json_t *inv = NULL;
		int r;

		if (c->taken)
			continue;
		if (ops_stopped(d->stop))
			return ops_fail(err, OPS_E_STOPPED, false,
					"stopped while opening cases");
		r = get_invoice(d, st, c->invoice, &inv, &se, &e);
		if (r == OPS_E_NOTFOUND) {
			/* a row about an invoice Stripe does not know (another
			 * account, test data): closed, so that it is not
			 * fetched again every day */
			inv = json_pack("{s:s, s:s}", "id", c->invoice,
					"status", "missing");
			r = 0;
		}
		if (r == 0 && strcmp(jstr(inv, "status"), "draft") != 0)
			r = open_case(d, inv, c->failed_at, "webhook",
				      c->customer, &e);
		json_decref(inv);
		if (r == OPS_E_STOPPED) {
			*err = e;
			return r;
		}
		if (r != 0) {
			log_warn("dunning cannot open a case invoice=%s "
				 "error=%s",
				 log_q(c->invoice), log_q(e.msg));
			add_count(d, &d->res->errors, 1);
			note_case(d, c->invoice, "error", 0, e.msg);
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* the due cases */

static int
load_due(struct dun *d, struct ops_err *err)
{
	static const char sql[] =
		"SELECT id, invoice_id, status, attempts,"
		" COALESCE(pending_attempt, 0), COALESCE(pending_key, ''),"
		" COALESCE(stripe_action, ''), COALESCE(customer_id::text, ''),"
		" COALESCE(stripe_subscription_id, ''), a.pi IS NOT NULL,"
		" COALESCE(a.pi, '')"
		" FROM apexops.dunning_cases c LEFT JOIN LATERAL (SELECT"
		" COALESCE(t.detail->>'payment_intent', '') AS pi FROM"
		" apexops.dunning_transitions t WHERE t.case_id = c.id AND"
		" t.kind = 'attempt_started' AND t.attempt = c.pending_attempt"
		" AND t.idempotency_key = c.pending_key AND t.detail->>'result'"
		" = 'accepted' ORDER BY t.id DESC LIMIT 1) a ON true"
		" WHERE (status = 'open' AND"
		" (next_attempt_at <= $1::timestamptz OR pending_attempt IS NOT"
		" NULL)) OR (status = 'suspended' AND updated_at >"
		" $1::timestamptz - interval '180 days') OR stripe_action IS "
		"NOT"
		" NULL"
		" ORDER BY next_attempt_at NULLS FIRST, id";
	const char *p[1] = { d->now };
	struct db_res *res = NULL;
	int r;

	dblock(d);
	r = db_query(DB(d), sql, 1, p, &res, err);
	dbunlock(d);
	if (r != 0)
		return r;
	d->ncases = (size_t)db_res_rows(res);
	d->cases = xcalloc(d->ncases + 1, sizeof(*d->cases));
	for (size_t i = 0; i < d->ncases; i++) {
		struct dcase *c = &d->cases[i];
		int row = (int)i;

		c->id = db_res_ll(res, row, 0);
		snprintf(c->invoice, sizeof(c->invoice), "%s",
			 db_res_get(res, row, 1));
		snprintf(c->status, sizeof(c->status), "%s",
			 db_res_get(res, row, 2));
		c->attempts = (int)db_res_ll(res, row, 3);
		c->pending_attempt = (int)db_res_ll(res, row, 4);
		snprintf(c->pending_key, sizeof(c->pending_key), "%s",
			 db_res_get(res, row, 5));
		snprintf(c->action, sizeof(c->action), "%s",
			 db_res_get(res, row, 6));
		snprintf(c->customer, sizeof(c->customer), "%s",
			 db_res_get(res, row, 7));
		snprintf(c->stripe_sub, sizeof(c->stripe_sub), "%s",
			 db_res_get(res, row, 8));
		c->pending_accepted = strcmp(db_res_get(res, row, 9), "t") == 0;
		snprintf(c->pending_pi, sizeof(c->pending_pi), "%s",
			 db_res_get(res, row, 10));
	}
	db_res_free(res);
	d->res->due = (long)d->ncases;
	return 0;
}

/*
 * One transaction: sql (np parameters p) must touch exactly the case's row
 * (OPS_E_CONFLICT otherwise: the case moved meanwhile, another actor),
 * then an attempt_started transition of attempt n with key and detail
 * (may be NULL, borrowed).
 */
static int
commit_started(struct dun *d, const struct dcase *c, const char *sql, int np,
	       const char *const *p, int n, const char *key,
	       const json_t *detail, struct ops_err *err)
{
	long long hit = 0;
	int r;

	dblock(d);
	r = db_begin(DB(d), err);
	if (r == 0)
		r = exec(d, sql, np, p, &hit, err);
	if (r == 0 && hit != 1)
		r = ops_fail(err, OPS_E_CONFLICT, false,
			     "case of invoice %s changed meanwhile",
			     c->invoice);
	if (r == 0)
		r = note(d, c->id, c->invoice, c->customer, "attempt_started",
			 "open", "open", n, key, NULL, detail, err);
	if (r == 0)
		r = db_commit(DB(d), err);
	dbunlock(d);
	return r;
}

/* Commit the intent of attempt n before the call. 0: ours; OPS_E_CONFLICT:
 * the case moved meanwhile (another actor). */
static int
commit_intent(struct dun *d, struct dcase *c, int n, const char *key,
	      struct ops_err *err)
{
	static const char sql[] =
		"UPDATE apexops.dunning_cases SET pending_attempt = $2::int,"
		" pending_key = $3, pending_since = $4, updated_at = $4 WHERE"
		" id = $1 AND status = 'open' AND pending_attempt IS NULL AND"
		" attempts = $2::int - 1";
	char id_s[24], n_s[16], at[32];
	const char *p[4] = { id_s, n_s, key, at };

	snprintf(id_s, sizeof(id_s), "%lld", c->id);
	snprintf(n_s, sizeof(n_s), "%d", n);
	now_rfc3339(at, sizeof(at));
	return commit_started(d, c, sql, 4, p, n, key, NULL, err);
}

/*
 * Stripe accepted attempt n without paying the invoice (a bank debit
 * processing): an attempt_started transition with result "accepted" and
 * the invoice's payment intent (pi, may be ""), so that a later run whose
 * intent reads requires_payment_method knows the debit failed, rather than
 * a call that never reached Stripe. The case itself is unchanged.
 */
static int
commit_accepted(struct dun *d, struct dcase *c, int n, const char *key,
		const char *pi, struct ops_err *err)
{
	static const char sql[] =
		"SELECT 1 FROM apexops.dunning_cases WHERE id = $1 AND status ="
		" 'open' AND pending_key = $2 FOR UPDATE";
	char id_s[24];
	const char *p[2] = { id_s, key };
	json_t *detail;
	int r;

	snprintf(id_s, sizeof(id_s), "%lld", c->id);
	detail = json_pack("{s:s, s:s}", "result", "accepted", "invoice_status",
			   "open");
	if (*pi != '\0')
		json_object_set_new(detail, "payment_intent", json_string(pi));
	r = commit_started(d, c, sql, 2, p, n, key, detail, err);
	json_decref(detail);
	if (r == 0) {
		c->pending_accepted = true;
		snprintf(c->pending_pi, sizeof(c->pending_pi), "%s", pi);
	}
	return r;
}

/*
 * Paid: the case recovered, the subscription active with no failed
 * payments, the user's suspended API keys active again, the receipt
 * event, and pause_collection cleared in Stripe (queued; a no-op for a
 * subscription that was never paused), as the subscription is active.
 */
static int
commit_recovered(struct dun *d, struct dcase *c, const json_t *inv, int n,
		 const char *key, const char *how, struct ops_err *err)
{
	static const char csql[] =
		"WITH old AS (SELECT status FROM apexops.dunning_cases WHERE"
		" id = $1 FOR UPDATE) UPDATE apexops.dunning_cases SET status ="
		" 'recovered', attempts = GREATEST(attempts, $2::int),"
		" pending_attempt = NULL, pending_key = NULL, pending_since ="
		" NULL, next_attempt_at = NULL, stripe_action = CASE WHEN"
		" stripe_subscription_id IS NOT NULL THEN 'resume' END,"
		" last_error = NULL, closed_at = $3,"
		" updated_at = $3 WHERE id = $1 AND status IN ('open',"
		" 'suspended') RETURNING (SELECT status FROM old),"
		" COALESCE(stripe_action, ''), COALESCE(subscription_id::text,"
		" '')";
	static const char ssql[] =
		"UPDATE public.subscriptions SET status = 'active',"
		" failed_payment_count = 0, updated_at = now() WHERE id ="
		" $1::uuid AND status <> 'cancelled'";
	static const char ksql[] =
		"UPDATE public.api_keys SET status = 'active', suspended_at ="
		" NULL WHERE user_id = $1::uuid AND status = 'suspended'";
	char id_s[24], n_s[16], at[32], amount[32];
	struct db_res *res = NULL;
	json_t *detail = NULL, *ev = NULL;
	int r;

	snprintf(id_s, sizeof(id_s), "%lld", c->id);
	snprintf(n_s, sizeof(n_s), "%d", n);
	now_rfc3339(at, sizeof(at));
	dblock(d);
	r = db_begin(DB(d), err);
	if (r == 0) {
		const char *p[3] = { id_s, n_s, at };

		r = db_query(DB(d), csql, 3, p, &res, err);
	}
	if (r == 0 && db_res_rows(res) != 1)
		r = ops_fail(err, OPS_E_CONFLICT, false,
			     "case of invoice %s is no longer open",
			     c->invoice);
	if (r == 0 && *db_res_get(res, 0, 2) != '\0') {
		const char *p[1] = { db_res_get(res, 0, 2) };

		r = exec(d, ssql, 1, p, NULL, err);
	}
	if (r == 0 && c->customer[0] != '\0') {
		const char *p[1] = { c->customer };

		r = exec(d, ksql, 1, p, NULL, err);
	}
	if (r == 0) {
		detail = json_pack("{s:s, s:I}", "paid", how, "amount_paid",
				   (json_int_t)jint(inv, "amount_paid"));
		r = note(d, c->id, c->invoice, c->customer, "recovered",
			 db_res_get(res, 0, 0), "recovered", n, key, NULL,
			 detail, err);
	}
	if (r == 0) {
		snprintf(amount, sizeof(amount), "%.2f",
			 (double)jint(inv, "amount_paid") / 100.0);
		ev = json_pack("{s:s, s:s, s:s, s:i}", "invoice_id", c->invoice,
			       "amount_paid", amount, "currency",
			       jstr(inv, "currency"), "attempt_number", n);
		r = emit(d, "email.payment_succeeded_after_retry", c->customer,
			 ev, err);
	}
	if (r == 0)
		r = db_commit(DB(d), err);
	if (r == 0)
		snprintf(c->action, sizeof(c->action), "%s",
			 db_res_get(res, 0, 1));
	json_decref(detail);
	json_decref(ev);
	db_res_free(res);
	dbunlock(d);
	return r;
}

/*
 * Attempt n declined: the next attempt on day days[n] after the first
 * failure (CRON_TZ), with a retry notice; after the last one, suspended:
 * subscription and API keys, a notice, a pause of collection queued.
 */
static int
commit_declined(struct dun *d, struct dcase *c, int n, const char *key,
		const char *decline, const char *message, bool *suspended,
		struct ops_err *err)
{
	static const char rsql[] =
		"UPDATE apexops.dunning_cases SET attempts = $2::int,"
		" pending_attempt = NULL, pending_key = NULL, pending_since ="
		" NULL, last_decline_code = NULLIF($3, ''), last_error = $7,"
		" next_attempt_at = ((first_failed_at AT TIME ZONE $4)::date +"
		" $5::int)::timestamp AT TIME ZONE $4, updated_at = $6 WHERE id"
		" = $1 AND status = 'open' AND pending_key = $8 RETURNING"
		" to_char(next_attempt_at AT TIME ZONE $4, 'YYYY-MM-DD'),"
		" (next_attempt_at AT TIME ZONE $4)::date - ($6::timestamptz AT"
		" TIME ZONE $4)::date, amount_due, currency,"
		" COALESCE(hosted_invoice_url, ''),"
		" COALESCE(subscription_id::text, '')";
	static const char xsql[] =
		"UPDATE apexops.dunning_cases SET attempts = $2::int,"
		" pending_attempt = NULL, pending_key = NULL, pending_since ="
		" NULL, last_decline_code = NULLIF($3, ''), last_error = $5,"
		" next_attempt_at = NULL, status = 'suspended', stripe_action ="
		" 'pause', paused = true, updated_at = $4 WHERE id = $1 AND"
		" status = 'open' AND pending_key = $6 RETURNING"
		" COALESCE(subscription_id::text, ''), amount_due, currency";
	/* one more failed payment; past due, or suspended after the last */
	static const char ssql[] =
		"UPDATE public.subscriptions SET failed_payment_count ="
		" failed_payment_count + 1, last_failed_payment_at = $2, "
		"status ="
		" CASE WHEN $3 = 'suspend' THEN 'suspended' WHEN status IN"
		" ('active', 'trial') THEN 'past_due' ELSE status END,"
		" updated_at = now() WHERE id = $1::uuid AND status <>"
		" 'cancelled'";
	static const char ksql[] =
		"UPDATE public.api_keys SET status = 'suspended', suspended_at"
		" = $2 WHERE user_id = $1::uuid AND status = 'active'";
	char id_s[24], n_s[16], at[32], next_s[16], amount[32];
	bool last = n >= d->ndays;
	struct db_res *res = NULL;
	json_t *detail = NULL, *ev = NULL;
	int r;

	*suspended = false;
	snprintf(id_s, sizeof(id_s), "%lld", c->id);
	snprintf(n_s, sizeof(n_s), "%d", n);
	snprintf(next_s, sizeof(next_s), "%d", last ? 0 : d->days[n]);
	now_rfc3339(at, sizeof(at));
	dblock(d);
	r = db_begin(DB(d), err);
	if (r == 0 && !last) {
		const char *p[8] = { id_s,   n_s, decline, d->tz,
				     next_s, at,  message, key };

		r = db_query(DB(d), rsql, 8, p, &res, err);
	} else if (r == 0) {
		const char *p[6] = { id_s, n_s, decline, at, message, key };

		r = db_query(DB(d), xsql, 6, p, &res, err);
	}
	if (r == 0 && db_res_rows(res) != 1)
		r = ops_fail(err, OPS_E_CONFLICT, false,
			     "case of invoice %s changed meanwhile",
			     c->invoice);
	if (r == 0) {
		detail = json_pack("{s:s}", "message", message);
		r = note(d, c->id, c->invoice, c->customer, "attempt_failed",
			 "open", last ? "open" : "open", n, key, decline,
			 detail, err);
	}
	if (r == 0 && !last) {
		snprintf(amount, sizeof(amount), "%.2f",
			 (double)db_res_ll(res, 0, 2) / 100.0);
		ev = json_pack("{s:s, s:i, s:i, s:I, s:s, s:s, s:s, s:s, s:s}",
			       "invoice_id", c->invoice, "attempt_number", n,
			       "max_retries", d->ndays, "days_until_retry",
			       (json_int_t)db_res_ll(res, 0, 1),
			       "next_retry_date", db_res_get(res, 0, 0),
			       "amount_due", amount, "currency",
			       db_res_get(res, 0, 3), "decline_code", decline,
			       "payment_url",
			       *db_res_get(res, 0, 4) ? db_res_get(res, 0, 4)
						      : BILLING_URL);
		r = emit(d, "email.payment_retry", c->customer, ev, err);
		if (r == 0 && *db_res_get(res, 0, 5) != '\0') {
			const char *p[3] = { db_res_get(res, 0, 5), at,
					     "retry" };

			r = exec(d, ssql, 3, p, NULL, err);
		}
	} else if (r == 0) {
		if (*db_res_get(res, 0, 0) != '\0') {
			const char *p[3] = { db_res_get(res, 0, 0), at,
					     "suspend" };

			r = exec(d, ssql, 3, p, NULL, err);
		}
		if (r == 0 && c->customer[0] != '\0') {
			const char *p[2] = { c->customer, at };

			r = exec(d, ksql, 2, p, NULL, err);
		}
		if (r == 0)
			r = note(d, c->id, c->invoice, c->customer, "suspended",
				 "open", "suspended", n, NULL, decline, NULL,
				 err);
		if (r == 0) {
			snprintf(amount, sizeof(amount), "%.2f",
				 (double)db_res_ll(res, 0, 1) / 100.0);
			ev = json_pack("{s:s, s:s, s:s, s:i, s:s}",
				       "invoice_id", c->invoice, "amount_due",
				       amount, "currency",
				       db_res_get(res, 0, 2), "attempt_number",
				       n, "reactivation_url", REACTIVATE_URL);
			r = emit(d, "email.subscription_suspended", c->customer,
				 ev, err);
		}
	}
	if (r == 0)
		r = db_commit(DB(d), err);
	if (r == 0 && last) {
		*suspended = true;
		snprintf(c->action, sizeof(c->action), "pause");
	}
	json_decref(detail);
	json_decref(ev);
	db_res_free(res);
	dbunlock(d);
	return r;
}

/* Void, deleted or missing: closed without reactivation. */
static int
commit_closed(struct dun *d, struct dcase *c, const char *why,
	      struct ops_err *err)
{
	static const char sql[] =
		"UPDATE apexops.dunning_cases SET status = 'closed',"
		" pending_attempt = NULL, pending_key = NULL, pending_since ="
		" NULL, next_attempt_at = NULL, last_error = $2, closed_at = "
		"$3,"
		" updated_at = $3 WHERE id = $1 AND status IN ('open',"
		" 'suspended')";
	char id_s[24], at[32];
	const char *p[3] = { id_s, why, at };
	json_t *detail = json_pack("{s:s}", "reason", why);
	long long hit = 0;
	int r;

	snprintf(id_s, sizeof(id_s), "%lld", c->id);
	now_rfc3339(at, sizeof(at));
	dblock(d);
	r = db_begin(DB(d), err);
	if (r == 0)
		r = exec(d, sql, 3, p, &hit, err);
	if (r == 0 && hit == 1)
		r = note(d, c->id, c->invoice, c->customer, "closed", c->status,
			 "closed", 0, NULL, NULL, detail, err);
	if (r == 0)
		r = db_commit(DB(d), err);
	dbunlock(d);
	json_decref(detail);
	return r;
}

/* The pause or resume of the subscription's collection, once Stripe has
 * it (or there is no subscription to change). */
static int
commit_action_done(struct dun *d, struct dcase *c, const char *what,
		   const char *detail_text, struct ops_err *err)
{
	static const char sql[] =
		"UPDATE apexops.dunning_cases SET stripe_action = NULL, paused"
		" = ($2 = 'pause'), updated_at = $3 WHERE id = $1 AND"
		" stripe_action = $2";
	char id_s[24], at[32];
	const char *p[3] = { id_s, what, at };
	json_t *detail = json_pack("{s:s, s:s}", "subscription", c->stripe_sub,
				   "result", detail_text);
	long long hit = 0;
	int r;

	snprintf(id_s, sizeof(id_s), "%lld", c->id);
	now_rfc3339(at, sizeof(at));
	dblock(d);
	r = db_begin(DB(d), err);
	if (r == 0)
		r = exec(d, sql, 3, p, &hit, err);
	if (r == 0 && hit == 1)
		r = note(d, c->id, c->invoice, c->customer,
			 strcmp(what, "pause") == 0 ? "stripe_paused"
						    : "stripe_resumed",
			 "", "", 0, NULL, NULL, detail, err);
	if (r == 0)
		r = db_commit(DB(d), err);
	dbunlock(d);
	json_decref(detail);
	return r;
}

static int
send_action(struct dun *d, struct stripe *st, struct dcase *c,
	    struct ops_err *err)
{
	struct stripe_error se;
	char path[320], key[400];
	const char *result = "sent";
	json_t *params, *out = NULL;
	bool pause = strcmp(c->action, "pause") == 0;
	int r;

	if (d->dry) {
		note_case(d, c->invoice, pause ? "would pause" : "would resume",
			  0, c->stripe_sub);
		return 0;
	}
	if (c->stripe_sub[0] == '\0' || !stripe_id_valid(c->stripe_sub)) {
		result = "no Stripe subscription on the invoice";
	} else {
		snprintf(path, sizeof(path), "/v1/subscriptions/%s",
			 c->stripe_sub);
		snprintf(key, sizeof(key), "apexops-dunning-%s-%s", c->invoice,
			 pause ? "pause" : "resume");
		params = pause ? json_pack("{s:{s:s}}", "pause_collection",
					   "behavior", "void")
			       : json_pack("{s:s}", "pause_collection", "");
		r = scall(d, st, "POST", path, params, key, &out, &se, err);
		json_decref(params);
		json_decref(out);
		if (r == OPS_E_NOTFOUND) {
			result = "subscription not found in Stripe";
			ops_err_clear(err);
		} else if (r != 0) {
			return r;
		}
	}
	r = commit_action_done(d, c, pause ? "pause" : "resume", result, err);
	if (r == 0)
		note_case(d, c->invoice, pause ? "paused" : "resumed", 0,
			  result);
	return r;
}

static bool
already_paid(const struct stripe_error *se)
{
	return se->http_status == 400 &&
	       strstr(se->message, "already paid") != NULL;
}

static int
recover(struct dun *d, struct dcase *c, const json_t *inv, int n,
	const char *key, const char *how, struct ops_err *err)
{
	int r = commit_recovered(d, c, inv, n, key, how, err);

	if (r == 0) {
		add_count(d, &d->res->recovered, 1);
		note_case(d, c->invoice, "recovered", n, how);
		log_info("dunning recovered invoice=%s attempt=%d paid=%s",
			 log_q(c->invoice), n, how);
	}
	return r;
}

/*
 * Attempt n failed: declined, refused, or a bank debit that did not go
 * through. Recorded as a failed attempt (code: the decline code or
 * Stripe's error code); the schedule goes on, or the case is suspended
 * after the last attempt.
 */
static int
attempt_failed(struct dun *d, struct dcase *c, int n, const char *key,
	       const char *code, const char *message, struct ops_err *err)
{
	bool susp;
	int r = commit_declined(d, c, n, key, code, message, &susp, err);

	if (r == 0) {
		add_count(d, susp ? &d->res->suspended : &d->res->declined, 1);
		note_case(d, c->invoice, susp ? "suspended" : "declined", n,
			  code);
		log_info("dunning declined invoice=%s attempt=%d "
			 "decline_code=%s suspended=%s",
			 log_q(c->invoice), n, log_q(code),
			 susp ? "true" : "false");
	}
	return r;
}

/*
 * The pending attempt n of an open case whose invoice inv is still open:
 * before its pay call is replayed, what the invoice's payment intent says.
 * Stripe keeps an Idempotency-Key for at least 24 hours, not for ever; a
 * debit processing for longer would make the replay a refusal (counted as
 * a failed attempt although nothing failed), and one that failed would
 * make it a new charge. So: processing, or succeeded with the invoice not
 * yet marked paid, stays pending with nothing sent (the attempt marked
 * accepted if it was not: a run killed after the call never marked it);
 * requires_payment_method or canceled after Stripe accepted the attempt
 * (pending_accepted) is the attempt failed, recorded as a decline. *done tells
 * whether the attempt is settled for this run; otherwise (no intent to read,
 * another status, or an attempt Stripe may never have received) the caller
 * replays the pay call as before. The intent is the one the invoice names
 * (API versions before 2025-03-31.basil), else the one recorded when Stripe
 * accepted the attempt, else the invoice's listed payments' (basil and
 * later, whose invoices name none).
 */
static int
resolve_pending(struct dun *d, struct stripe *st, struct dcase *c,
		const json_t *inv, int n, const char *key, bool *done,
		struct ops_err *err)
{
	struct stripe_error se;
	const json_t *lpe;
	const char *id, *ps, *code, *msg;
	char path[320], detail[320], msgbuf[600], listed[256];
	json_t *pi = NULL;
	int r;

	*done = false;
	id = inv_payment_intent(inv);
	if (*id == '\0')
		id = c->pending_pi;
	if (*id == '\0') {
		r = listed_payment_intent(d, st, c->invoice, listed,
					  sizeof(listed), err);
		if (r == OPS_E_NOTFOUND) { /* no such list: replay as before */
			log_warn("dunning invoice payments not found "
				 "invoice=%s",
				 log_q(c->invoice));
			ops_err_clear(err);
			return 0;
		}
		if (r != 0)
			return r;
		id = listed;
	}
	if (*id == '\0' || !stripe_id_valid(id))
		return 0;
	snprintf(path, sizeof(path), "/v1/payment_intents/%s", id);
	r = scall(d, st, "GET", path, NULL, NULL, &pi, &se, err);
	if (r == OPS_E_NOTFOUND) { /* nothing to read: replay as before */
		log_warn("dunning payment intent not found invoice=%s "
			 "payment_intent=%s",
			 log_q(c->invoice), log_q(id));
		ops_err_clear(err);
		return 0;
	}
	if (r != 0)
		return r;
	ps = jstr(pi, "status");
	if (strcmp(ps, "processing") == 0 || strcmp(ps, "succeeded") == 0) {
		/* still processing, or paid and the invoice not yet marked:
		 * Stripe settles it; a later run finds the outcome */
		snprintf(detail, sizeof(detail), "%s (payment intent %s)", ps,
			 id);
		/* Stripe has the attempt (a run killed before it recorded
		 * that): recorded now, so that a debit failing later counts
		 * as this attempt failed, not as one never received */
		if (!c->pending_accepted && !d->dry)
			r = commit_accepted(d, c, n, key, id, err);
		if (r != 0) {
			json_decref(pi);
			return r;
		}
		add_count(d, &d->res->pending, 1);
		note_case(d, c->invoice, "pending", n, detail);
		log_info("dunning pending invoice=%s attempt=%d "
			 "payment_intent=%s status=%s",
			 log_q(c->invoice), n, log_q(id), log_q(ps));
		*done = true;
	} else if ((strcmp(ps, "requires_payment_method") == 0 ||
		    strcmp(ps, "canceled") == 0) &&
		   c->pending_accepted) {
		lpe = json_object_get(pi, "last_payment_error");
		code = *jstr(lpe, "decline_code") ? jstr(lpe, "decline_code")
		       : *jstr(lpe, "code")	  ? jstr(lpe, "code")
		       : *jstr(lpe, "type")	  ? jstr(lpe, "type")
						  : ps;
		msg = jstr(lpe, "message");
		if (*msg == '\0') {
			snprintf(msgbuf, sizeof(msgbuf),
				 "payment intent %s is %s", id, ps);
			msg = msgbuf;
		}
		if (d->dry)
			note_case(d, c->invoice,
				  n >= d->ndays ? "would suspend"
						: "would decline",
				  n, code);
		else
			r = attempt_failed(d, c, n, key, code, msg, err);
		*done = true;
	}
	json_decref(pi);
	return r;
}

/* Pay attempt n of an open case whose invoice inv is unpaid. */
static int
pay_attempt(struct dun *d, struct stripe *st, struct dcase *c,
	    const json_t *inv, struct ops_err *err)
{
	struct stripe_error se;
	struct ops_err pe = OPS_ERR_INIT;
	char path[320], key[400], msg[1024];
	json_t *out = NULL, *again = NULL;
	bool done;
	int n, r;

	n = c->pending_attempt > 0 ? c->pending_attempt : c->attempts + 1;
	if (c->pending_attempt > 0)
		snprintf(key, sizeof(key), "%s", c->pending_key);
	else
		snprintf(key, sizeof(key), "apexops-dunning-%s-attempt-%d",
			 c->invoice, n);
	if (c->pending_attempt > 0) {
		/* a read, so also in a dry run */
		r = resolve_pending(d, st, c, inv, n, key, &done, err);
		if (r != 0 || done)
			return r;
	}
	if (d->dry) {
		note_case(d, c->invoice, "would pay", n, key);
		return 0;
	}
	if (c->pending_attempt == 0) {
		r = commit_intent(d, c, n, key, err);
		if (r != 0)
			return r;
	}
	snprintf(path, sizeof(path), "/v1/invoices/%s/pay", c->invoice);
	/* the same key for the same attempt, replayed after a crash: Stripe
	 * answers its first outcome (within 24 h) instead of paying again */
	r = scall(d, st, "POST", path, NULL, key, &out, &se, &pe);
	if (d->crash_after_pay) {
		log_warn("APEXOPS_TEST_CRASH_AFTER_PAY: killing the process "
			 "after the pay call invoice=%s",
			 log_q(c->invoice));
		raise(SIGKILL);
	}
	if (r == 0 && strcmp(jstr(out, "status"), "paid") == 0) {
		add_count(d, &d->res->paid, 1);
		r = recover(d, c, out, n, key, "by apexops", err);
	} else if (r == 0) {
		/* accepted but not paid yet (a bank debit processing): the
		 * intent stays, marked accepted; the next run fetches the
		 * invoice, then its payment intent (resolve_pending()) */
		const char *pi = inv_payment_intent(out);
		char listed[256] = "";

		/* basil and later name the intent in the invoice's payments
		 * only; not found now, a later run lists them again */
		if (*pi == '\0' && !c->pending_accepted) {
			if (listed_payment_intent(d, st, c->invoice, listed,
						  sizeof(listed), &pe) != 0)
				ops_err_clear(&pe);
			pi = listed;
		}
		if (!c->pending_accepted)
			r = commit_accepted(d, c, n, key, pi, err);
		if (r == 0) {
			add_count(d, &d->res->pending, 1);
			note_case(d, c->invoice, "pending", n,
				  jstr(out, "status"));
		}
	} else if (already_paid(&se)) {
		r = get_invoice(d, st, c->invoice, &again, &se, err);
		if (r == 0 && strcmp(jstr(again, "status"), "paid") == 0)
			r = recover(d, c, again, n, key, "already paid", err);
		else if (r == 0)
			r = ops_fail(err, OPS_E_HTTP, true,
				     "stripe said invoice %s is already paid, "
				     "but it reads '%s'",
				     c->invoice, jstr(again, "status"));
	} else if (se.http_status == 402 ||
		   strcmp(se.type, "card_error") == 0 ||
		   (se.http_status >= 400 && se.http_status < 500 &&
		    se.http_status != 401 && se.http_status != 403 &&
		    se.http_status != 404 && !retryable(&se, &pe))) {
		/* a decline, or another refusal to pay this invoice now (no
		 * payment method, authentication required): the attempt
		 * failed, and the schedule goes on towards suspension */
		const char *code = se.decline_code[0] ? se.decline_code
				   : se.code[0]	      ? se.code
						      : se.type;

		snprintf(msg, sizeof(msg), "%s", se.message);
		r = attempt_failed(d, c, n, key, code, msg, err);
	} else {
		/* unknown outcome (network, 5xx, 429 after retries, auth):
		 * the intent stays and the next run resolves it */
		*err = pe;
	}
	json_decref(out);
	json_decref(again);
	return r;
}

static void
process_case(struct dun *d, struct stripe *st, struct dcase *c)
{
	struct stripe_error se;
	struct ops_err e = OPS_ERR_INIT;
	json_t *inv = NULL;
	const char *is;
	int r = 0;

	if (strcmp(c->status, "open") == 0 ||
	    strcmp(c->status, "suspended") == 0) {
		/* first the invoice: paid by any means closes the case */
		r = get_invoice(d, st, c->invoice, &inv, &se, &e);
		if (r == OPS_E_NOTFOUND && d->dry) {
			note_case(d, c->invoice, "would close", 0,
				  "invoice not found");
			r = 0;
			goto out;
		}
		if (r == OPS_E_NOTFOUND) {
			ops_err_clear(&e);
			r = commit_closed(d, c, "invoice not found in Stripe",
					  &e);
			if (r == 0) {
				add_count(d, &d->res->closed, 1);
				note_case(d, c->invoice, "closed", 0,
					  "invoice not found");
			}
			goto action;
		}
		if (r != 0)
			goto out;
		is = jstr(inv, "status");
		if (d->dry) {
			bool paid = strcmp(is, "paid") == 0;

			if (paid || strcmp(is, "void") == 0)
				note_case(d, c->invoice,
					  paid ? "would recover"
					       : "would close",
					  0, is);
			else if (strcmp(c->status, "open") == 0)
				r = pay_attempt(d, st, c, inv, &e);
			else
				note_case(d, c->invoice, "still suspended",
					  c->attempts, is);
			goto action;
		}
		if (strcmp(is, "paid") == 0) {
			r = recover(d, c, inv,
				    c->pending_attempt > 0 ? c->pending_attempt
							   : c->attempts,
				    c->pending_key,
				    c->pending_attempt > 0
					    ? "by apexops (found on the next "
					      "run)"
					    : "outside apexops",
				    &e);
		} else if (strcmp(is, "void") == 0) {
			r = commit_closed(d, c, "invoice voided", &e);
			if (r == 0) {
				add_count(d, &d->res->closed, 1);
				note_case(d, c->invoice, "closed", 0,
					  "invoice voided");
			}
		} else if (strcmp(c->status, "open") == 0) {
			r = pay_attempt(d, st, c, inv, &e);
		} else {
			note_case(d, c->invoice, "still suspended", c->attempts,
				  is);
		}
		if (r != 0)
			goto out;
	}
action:
	if (r == 0 && c->action[0] != '\0')
		r = send_action(d, st, c, &e);
out:
	json_decref(inv);
	if (r != 0 && r != OPS_E_STOPPED) {
		add_count(d, &d->res->errors, 1);
		note_case(d, c->invoice, "error", 0, e.msg);
		log_warn("dunning case failed invoice=%s error=%s",
			 log_q(c->invoice), log_q(e.msg));
	}
}

static void
progress(struct dun *d)
{
	char *counts;

	pthread_mutex_lock(&d->mu); /* the counters, as workers add to them */
	counts = dunning_result_json(d->res);
	pthread_mutex_unlock(&d->mu);
	pthread_mutex_lock(&d->dbmu); /* the run's connection */
	job_progress(d->ctx, counts, false);
	pthread_mutex_unlock(&d->dbmu);
	free(counts);
}

struct worker {
	struct dun *d;
	struct db *db; /* its own connection, or NULL: the shared one */
	pthread_t th;
	int r;
	struct ops_err err;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct dun *d = w->d;
	struct stripe *st = NULL;

	tdb = w->db;
	w->r = stripe_new(&d->so, &st, &w->err);
	while (w->r == 0 && !ops_stopped(d->stop)) {
		struct dcase *c = NULL;

		pthread_mutex_lock(&d->mu);
		if (d->next < d->ncases)
			c = &d->cases[d->next++];
		pthread_mutex_unlock(&d->mu);
		if (c == NULL)
			break;
		process_case(d, st, c);
		progress(d);
	}
	stripe_free(st);
	return NULL;
}

static int
process_due(struct dun *d, struct ops_err *err)
{
	long n =
		d->cfg->stripe_concurrency > 0 ? d->cfg->stripe_concurrency : 1;
	struct worker *w;
	char *url = NULL;
	long total;
	int r = 0;

	if (d->ncases == 0)
		return 0;
	if ((size_t)n > d->ncases)
		n = (long)d->ncases;
	total = n;
	w = xcalloc((size_t)n, sizeof(*w));
	/* a connection per worker, so that cases commit in parallel; the
	 * run's own (with the job's lock) stays for the ledger */
	for (long i = 0; i < n; i++) {
		struct ops_err e = OPS_ERR_INIT;

		if (db_connect_config(d->cfg, DUNNING_JOB_NAME, &url, NULL,
				      &w[i].db, &e) != 0) {
			log_warn("dunning worker shares the run's connection "
				 "error=%s",
				 log_q(e.msg));
			w[i].db = NULL;
		}
	}
	for (long i = 0; i < n; i++) {
		w[i].d = d;
		if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0) {
			n = i;
			r = ops_fail(err, OPS_E_IO, false,
				     "cannot start a dunning thread");
			break;
		}
	}
	for (long i = 0; i < n; i++) {
		pthread_join(w[i].th, NULL);
		if (w[i].r != 0 && r == 0) {
			r = w[i].r;
			*err = w[i].err;
		}
	}
	for (long i = 0; i < total; i++)
		db_close(w[i].db);
	free(w);
	free(url);
	if (r == 0 && ops_stopped(d->stop))
		r = ops_fail(err, OPS_E_STOPPED, false,
			     "stopped with %zu of %zu cases done", d->next,
			     d->ncases);
	return r;
}

/* ------------------------------------------------------------------ */

char *
dunning_result_json(const struct dunning_result *res)
{
	return xasprintf(
		"{\"mode\": \"%s\", \"opened\": %ld, \"reconciled\": %ld, "
		"\"open_invoices_seen\": %ld, \"smart_retries_on\": %ld, "
		"\"due\": %ld, \"paid\": %ld, \"declined\": %ld, "
		"\"suspended\": %ld, \"recovered\": %ld, \"closed\": %ld, "
		"\"pending\": %ld, \"errors\": %ld, \"stripe_calls\": %ld}",
		res->dry_run ? "dry-run" : "execute", res->opened,
		res->reconciled, res->open_seen, res->smart_retry, res->due,
		res->paid, res->declined, res->suspended, res->recovered,
		res->closed, res->pending, res->errors, res->stripe_calls);
}

void
dunning_result_release(struct dunning_result *res)
{
	if (res == NULL)
		return;
	json_decref(res->cases);
	res->cases = NULL;
}

int
dunning_job_run(struct job_ctx *ctx, struct ops_err *err)
{
	const struct dunning_opts *o = ctx->args;
	struct dunning_result local, *res = ctx->out ? ctx->out : &local;
	struct candidates cand = { NULL, 0 };
	struct stripe *st = NULL;
	struct dun d;
	char *key = NULL;
	int r;

	memset(&d, 0, sizeof(d));
	memset(res, 0, sizeof(*res));
	res->cases = json_array();
	d.ctx = ctx;
	d.cfg = ctx->cfg;
	d.stop = ctx->stop;
	d.dry = o != NULL && o->dry_run;
	d.res = res;
	res->dry_run = d.dry;
	d.tz = ctx->cfg->cron_tz ? ctx->cfg->cron_tz : "UTC";
	ctx->mode = d.dry ? "dry-run" : "execute";
	pthread_mutex_init(&d.dbmu, NULL);
	pthread_mutex_init(&d.mu, NULL);
	r = dunning_parse_days(ctx->cfg->dunning_retry_days
				       ? ctx->cfg->dunning_retry_days
				       : "3,5,7",
			       d.days, &d.ndays, err);
	if (r == 0)
		r = stripe_load_key(ctx->cfg, "dunning", &key, err);
	if (r != 0)
		goto out;
	{
		const char *crash = getenv("APEXOPS_TEST_CRASH_AFTER_PAY");

		d.crash_after_pay = crash != NULL && strcmp(crash, "1") == 0 &&
				    !config_is_production(ctx->cfg);
	}
	ops_format_rfc3339((time_t)ops_clock_now(), d.now, sizeof(d.now));
	ratelimit_init(
		&d.rl,
		(double)stripe_default_rps(ctx->cfg->stripe_max_rps, key), 1);
	http_policy_default(&d.policy);
	d.policy.max_retries = 0; /* scall() retries, through the limit */
	d.so.api_base = ctx->cfg->stripe_api_base;
	d.so.secret_key = key;
	d.so.api_version = ctx->cfg->stripe_api_version;
	d.so.policy = &d.policy;
	free(ctx->params);
	ctx->params = xasprintf(
		"{\"retry_days\": \"%s\", \"tz\": \"%s\", \"max_rps\": %.0f, "
		"\"concurrency\": %ld, \"now\": \"%s\"}",
		ctx->cfg->dunning_retry_days ? ctx->cfg->dunning_retry_days
					     : "3,5,7",
		d.tz, (double)stripe_default_rps(ctx->cfg->stripe_max_rps, key),
		ctx->cfg->stripe_concurrency, d.now);
	r = stripe_new(&d.so, &st, err);
	if (r != 0)
		goto out_rl;
	log_info("dunning run mode=%s now=%s tz=%s days=%s max_rps=%.0f",
		 ctx->mode, d.now, log_q(d.tz),
		 log_q(ctx->cfg->dunning_retry_days),
		 (double)stripe_default_rps(ctx->cfg->stripe_max_rps, key));
	r = load_candidates(&d, &cand, err);
	if (r == 0)
		r = reconcile(&d, st, &cand, err);
	if (r == 0)
		r = open_remaining(&d, st, &cand, err);
	if (r == 0)
		r = load_due(&d, err);
	if (r == 0)
		r = process_due(&d, err);
	if (r == 0 && res->errors > 0)
		ctx->status = LEDGER_PARTIAL;
out_rl:
	ratelimit_destroy(&d.rl);
out:
	free(ctx->counts);
	ctx->counts = dunning_result_json(res);
	stripe_free(st);
	freezero_str(key);
	free(cand.v);
	free(d.cases);
	pthread_mutex_destroy(&d.dbmu);
	pthread_mutex_destroy(&d.mu);
	if (res == &local)
		dunning_result_release(&local);
	return r;
}
