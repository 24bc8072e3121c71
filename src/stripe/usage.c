/* Stripe usage sync; see usage.h. */
#include "stripe/usage.h"

#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/stop.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "http/http.h"
#include "http/ratelimit.h"
#include "stripe/stripe.h"

static const char *const default_metrics[] = { "impressions", "api_calls",
					       "data_transfer" };

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool
chars_ok(const char *s, size_t n, size_t max, const char *extra)
{
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) &&
		    strchr(extra, s[i]) == NULL)
			return false;
	return true;
}

static void
meters_add(struct usage_meters *m, const char *metric, size_t ml,
	   const char *name, size_t nl)
{
	m->v = xrealloc(m->v, (m->n + 1) * sizeof(*m->v));
	m->v[m->n].metric = xstrndup(metric, ml);
	m->v[m->n].event_name = xstrndup(name, nl);
	m->n++;
}

void
usage_meters_release(struct usage_meters *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++) {
		free(m->v[i].metric);
		free(m->v[i].event_name);
	}
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

int
usage_meters_parse(const char *spec, struct usage_meters *out,
		   struct ops_err *err)
{
	static const char var[] = "APEXOPS_STRIPE_METER_EVENTS";
	struct usage_meters m = { NULL, 0 };
	size_t ndef = sizeof(default_metrics) / sizeof(default_metrics[0]);
	bool mapped[sizeof(default_metrics) / sizeof(default_metrics[0])];
	const char *p = spec;

	out->v = NULL;
	out->n = 0;
	for (size_t i = 0; i < ndef; i++) {
		meters_add(&m, default_metrics[i], strlen(default_metrics[i]),
			   default_metrics[i], strlen(default_metrics[i]));
		mapped[i] = false;
	}
	while (p != NULL && *p != '\0') {
		size_t len = strcspn(p, ","), ml, nl, k;
		const char *eq = memchr(p, '=', len), *name;

		if (eq == NULL)
			goto bad;
		ml = (size_t)(eq - p);
		name = eq + 1;
		nl = len - ml - 1;
		if (!chars_ok(p, ml, 32, "_.-") ||
		    !chars_ok(name, nl, 100, "_.:-"))
			goto bad;
		for (k = 0; k < m.n; k++)
			if (strlen(m.v[k].metric) == ml &&
			    strncmp(m.v[k].metric, p, ml) == 0)
				break;
		if ((k < ndef && mapped[k]) || (k >= ndef && k < m.n)) {
			ops_fail(err, OPS_E_CONFIG, false,
				 "%s: metric '%.*s' is given twice", var,
				 (int)ml, p);
			usage_meters_release(&m);
			return OPS_E_CONFIG;
		}
		if (k < ndef) {
			free(m.v[k].event_name);
			m.v[k].event_name = xstrndup(name, nl);
			mapped[k] = true;
		} else {
			meters_add(&m, p, ml, name, nl);
		}
		p += len;
		if (*p == ',') {
			p++;
			if (*p == '\0')
				goto bad;
		}
	}
	*out = m;
	return 0;
bad:
	usage_meters_release(&m);
	return ops_fail(err, OPS_E_CONFIG, false,
			"%s: invalid value: expected metric=event_name pairs "
			"separated by commas (metric: 1 to 32 of A-Z a-z 0-9 _ "
			". -; event name: 1 to 100 of A-Z a-z 0-9 _ . : -), "
			"e.g. impressions=apex_impressions,api_calls=apex_api",
			var);
}

bool
usage_is_duplicate(long http_status, const char *message)
{
	return http_status == 400 && message != NULL &&
	       strncmp(message, "An event already exists with identifier",
		       39) == 0;
}

/* ---- results ------------------------------------------------------------ */

void
usage_result_release(struct usage_result *res)
{
	if (res == NULL)
		return;
	for (size_t i = 0; i < res->nev; i++)
		free(res->ev[i].error);
	free(res->ev);
	free(res->days);
	free(res->missing);
	free(res->dec);
	memset(res, 0, sizeof(*res));
}

char *
usage_counts_json(const struct usage_result *res)
{
	json_t *o = json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
		"days", (json_int_t)res->ndays, "events", (json_int_t)res->nev,
		"planned", (json_int_t)res->planned, "sent",
		(json_int_t)res->sent, "created", (json_int_t)res->created,
		"replayed", (json_int_t)res->replayed, "duplicate",
		(json_int_t)res->duplicate, "failed", (json_int_t)res->failed,
		"left", (json_int_t)res->left, "without_stripe_id",
		(json_int_t)res->nmissing, "decreases", (json_int_t)res->ndec);
	char *s = json_dumps(o, JSON_COMPACT);

	json_decref(o);
	return s != NULL ? s : xstrdup("{}");
}

/* Copy src into dst[n], truncated and always terminated. */
static void
copy(char *dst, size_t n, const char *src)
{
	size_t len;

	if (n == 0)
		return;
	len = src != NULL ? strnlen(src, n - 1) : 0;
	if (len > 0)
		memcpy(dst, src, len);
	dst[len] = '\0';
}

/* Append s to a PostgreSQL array literal under construction. */
static void
array_add(struct buf *a, const char *s)
{
	buf_adds(a, a->len > 1 ? ",\"" : "\"");
	for (; s != NULL && *s != '\0'; s++) {
		if (*s == '"' || *s == '\\')
			buf_addn(a, "\\", 1);
		buf_addn(a, s, 1);
	}
	buf_adds(a, "\"");
}

/* ---- days --------------------------------------------------------------- */

static int
add_days(struct db *db, const struct usage_opts *o, const char *from,
	 const char *to, bool check, struct usage_result *res,
	 struct ops_err *err)
{
	static const char sql[] =
		"SELECT d::date::text,"
		" to_char(d::timestamp AT TIME ZONE $3 AT TIME ZONE 'UTC',"
		"  'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
		" to_char((d + interval '1 day')::timestamp AT TIME ZONE $3"
		"  AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
		" (extract(epoch FROM ((d + interval '1 day')::timestamp"
		"  AT TIME ZONE $3) - (d::timestamp AT TIME ZONE $3)) / 3600)"
		"  ::int,"
		" extract(epoch FROM d::timestamp AT TIME ZONE $3)::bigint"
		"  > $4::float8 - $5::bigint,"
		" d::date < (to_timestamp($4::float8) AT TIME ZONE $3)::date"
		" FROM generate_series($1::date, $2::date, interval '1 day') d";
	char now_s[32], age_s[32];
	const char *p[5] = { from, to, o->tz, now_s, age_s };
	struct db_res *q = NULL;
	int r, n;

	snprintf(now_s, sizeof(now_s), "%.3f", o->now);
	snprintf(age_s, sizeof(age_s), "%ld",
		 USAGE_MAX_AGE_S - USAGE_AGE_MARGIN_S);
	r = db_query(db, sql, 5, p, &q, err);
	if (r != 0)
		return r;
	n = db_res_rows(q);
	for (int i = 0; i < n; i++) {
		const char *day = db_res_get(q, i, 0);
		struct usage_day *d;

		if (check && strcmp(db_res_get(q, i, 5), "t") != 0) {
			r = ops_fail(err, OPS_E_INVALID, false,
				     "day %s is not over yet in CRON_TZ %s: "
				     "expected a day before today",
				     day, o->tz);
			goto out;
		}
		if (check && strcmp(db_res_get(q, i, 4), "t") != 0) {
			r = ops_fail(err, OPS_E_INVALID, false,
				     "day %s is too old: Stripe accepts meter "
				     "events only with a timestamp within the "
				     "past 35 days (this run allows days "
				     "starting after now - 35 days + 1 hour); "
				     "nothing was sent",
				     day);
			goto out;
		}
		res->days = xrealloc(res->days,
				     (res->ndays + 1) * sizeof(*res->days));
		d = &res->days[res->ndays++];
		copy(d->day, sizeof(d->day), day);
		copy(d->start, sizeof(d->start), db_res_get(q, i, 1));
		copy(d->end, sizeof(d->end), db_res_get(q, i, 2));
		d->hours = (int)db_res_ll(q, i, 3);
	}
	r = 0;
out:
	db_res_free(q);
	return r;
}

/* The days of this run into res->days. */
static int
resolve_days(struct db *db, const struct usage_opts *o,
	     struct usage_result *res, struct ops_err *err)
{
	char now_s[32], age_s[32];
	struct db_res *q = NULL;
	int y, m, d, r;
	char *yday = NULL;

	if (o->from != NULL) {
		const char *to = o->to != NULL ? o->to : o->from;

		if (strlen(o->from) != 10 ||
		    parse_date(o->from, &y, &m, &d) != 0)
			return ops_fail(err, OPS_E_INVALID, false,
					"invalid date '%s': expected "
					"YYYY-MM-DD",
					o->from);
		if (strlen(to) != 10 || parse_date(to, &y, &m, &d) != 0)
			return ops_fail(err, OPS_E_INVALID, false,
					"invalid date '%s': expected "
					"YYYY-MM-DD",
					to);
		if (strcmp(o->from, to) > 0)
			return ops_fail(err, OPS_E_INVALID, false,
					"--from %s is after --to %s", o->from,
					to);
		return add_days(db, o, o->from, to, true, res, err);
	}
	/* scheduled: yesterday, and earlier days apexops already reported
	 * that are still within Stripe's window (pending or failed rows,
	 * late usage); days never synced are left to a backfill */
	{
		const char *p[2] = { now_s, o->tz };

		snprintf(now_s, sizeof(now_s), "%.3f", o->now);
		r = db_query_value(db,
				   "SELECT ((to_timestamp($1::float8) AT TIME "
				   "ZONE $2)::date - 1)::text",
				   2, p, &yday, err);
		if (r != 0)
			return r;
	}
	{
		static const char sql[] =
			"SELECT DISTINCT usage_day::text FROM"
			" apexops.stripe_usage_events WHERE usage_day < "
			"$1::date"
			" AND extract(epoch FROM usage_day::timestamp AT TIME"
			"  ZONE $2) > $3::float8 - $4::bigint"
			" ORDER BY 1";
		const char *p[4] = { yday, o->tz, now_s, age_s };

		snprintf(age_s, sizeof(age_s), "%ld",
			 USAGE_MAX_AGE_S - USAGE_AGE_MARGIN_S);
		r = db_query(db, sql, 4, p, &q, err);
		if (r != 0)
			goto out;
		for (int i = 0; i < db_res_rows(q); i++) {
			r = add_days(db, o, db_res_get(q, i, 0),
				     db_res_get(q, i, 0), false, res, err);
			if (r != 0)
				goto out;
		}
	}
	r = add_days(db, o, yday, yday, true, res, err);
out:
	db_res_free(q);
	free(yday);
	return r;
}

/* ---- plan --------------------------------------------------------------- */

/*
 * One statement per day: the window and the sums by PostgreSQL, new ledger
 * rows for what is not yet carried by earlier rows, decreases upserted,
 * and the customers without a Stripe id returned.
 */
static const char plan_sql[] =
	"WITH win AS (SELECT $1::date::timestamp AT TIME ZONE $2 AS lo,"
	"  ($1::date + 1)::timestamp AT TIME ZONE $2 AS hi),"
	" m AS (SELECT * FROM unnest($3::text[], $4::text[])"
	"  AS m(metric, event_name)),"
	" sums AS (SELECT r.customer_id, r.metric_type AS metric,"
	"  sum(r.quantity)::bigint AS total"
	"  FROM public.usage_records r, win"
	"  WHERE r.recorded_at >= win.lo AND r.recorded_at < win.hi"
	"  AND r.metric_type IN (SELECT metric FROM m)"
	"  GROUP BY 1, 2),"
	" led AS (SELECT customer_id, metric, COALESCE(sum(quantity) FILTER"
	"  (WHERE status <> 'cancelled'), 0)::bigint AS reported,"
	"  max(seq) AS maxseq FROM apexops.stripe_usage_events"
	"  WHERE usage_day = $1::date GROUP BY 1, 2),"
	" cand AS (SELECT s.customer_id, s.metric, s.total,"
	"  COALESCE(l.reported, 0) AS reported,"
	"  COALESCE(l.maxseq + 1, 0) AS seq,"
	"  COALESCE(NULLIF(btrim(u.stripe_customer_id), ''),"
	"   NULLIF(btrim(sub.stripe_customer_id), '')) AS scid"
	"  FROM sums s LEFT JOIN led l USING (customer_id, metric)"
	"  LEFT JOIN public.users u ON u.id = s.customer_id"
	"  LEFT JOIN public.subscriptions sub ON sub.customer_id ="
	"   s.customer_id"
	"  WHERE s.total > COALESCE(l.reported, 0)),"
	" ins AS (INSERT INTO apexops.stripe_usage_events (customer_id,"
	"  metric, usage_day, seq, tz, stripe_customer_id, event_name,"
	"  quantity, day_total, event_ts, identifier, run_id)"
	"  SELECT c.customer_id, c.metric, $1::date, c.seq, $2, c.scid,"
	"  m.event_name, c.total - c.reported, c.total,"
	"  extract(epoch FROM win.lo)::bigint,"
	"  'apexops:' || c.customer_id::text || ':' || c.metric || ':' ||"
	"  to_char($1::date, 'YYYYMMDD') || ':' || c.seq::text,"
	"  NULLIF($5::bigint, 0)"
	"  FROM cand c JOIN m USING (metric), win WHERE c.scid IS NOT NULL"
	"  RETURNING id),"
	" dec AS (INSERT INTO apexops.stripe_usage_decreases AS d"
	"  (customer_id, metric, usage_day, reported, recorded)"
	"  SELECT l.customer_id, l.metric, $1::date, l.reported,"
	"  COALESCE(s.total, 0) FROM led l LEFT JOIN sums s"
	"  USING (customer_id, metric)"
	"  WHERE COALESCE(s.total, 0) < l.reported"
	"  ON CONFLICT (customer_id, metric, usage_day) DO UPDATE SET"
	"  reported = EXCLUDED.reported, recorded = EXCLUDED.recorded,"
	"  last_seen = clock_timestamp(),"
	"  resolved_at = CASE WHEN d.reported = EXCLUDED.reported AND"
	"   d.recorded = EXCLUDED.recorded THEN d.resolved_at END"
	"  RETURNING customer_id, metric, reported, recorded, resolved_at)"
	" , back AS (UPDATE apexops.stripe_usage_decreases d SET"
	"  resolved_at = clock_timestamp(), note = concat_ws('; ', d.note,"
	"  'recorded usage back at or above the reported figure')"
	"  FROM led l LEFT JOIN sums s USING (customer_id, metric)"
	"  WHERE d.usage_day = $1::date AND d.customer_id = l.customer_id"
	"  AND d.metric = l.metric AND d.resolved_at IS NULL"
	"  AND COALESCE(s.total, 0) >= l.reported RETURNING 1)"
	" SELECT 'missing', customer_id::text, metric, total, 0"
	"  FROM cand WHERE scid IS NULL"
	" UNION ALL SELECT 'decrease', customer_id::text, metric, recorded,"
	"  reported FROM dec WHERE resolved_at IS NULL"
	" UNION ALL SELECT 'planned', NULL, NULL, count(*), 0 FROM ins"
	" UNION ALL SELECT 'resolved', NULL, NULL, count(*), 0 FROM back"
	" ORDER BY 1, 2, 3";

static int
plan_day(struct db *db, const struct usage_opts *o, const char *day,
	 const char *metrics, const char *names, struct usage_result *res,
	 struct ops_err *err)
{
	char run_s[32];
	const char *p[5] = { day, o->tz, metrics, names, run_s };
	struct db_res *q = NULL;
	int r;

	snprintf(run_s, sizeof(run_s), "%lld", o->run_id);
	r = db_query(db, plan_sql, 5, p, &q, err);
	if (r != 0)
		return ops_err_prefix(err, "planning day %s", day);
	for (int i = 0; i < db_res_rows(q); i++) {
		const char *kind = db_res_get(q, i, 0);

		if (strcmp(kind, "planned") == 0) {
			res->planned += db_res_ll(q, i, 3);
		} else if (strcmp(kind, "resolved") == 0) {
			continue; /* noted in the table */
		} else if (strcmp(kind, "missing") == 0) {
			struct usage_missing *mi;

			res->missing = xrealloc(res->missing,
						(res->nmissing + 1) *
							sizeof(*res->missing));
			mi = &res->missing[res->nmissing++];
			copy(mi->customer_id, sizeof(mi->customer_id),
			     db_res_get(q, i, 1));
			copy(mi->metric, sizeof(mi->metric),
			     db_res_get(q, i, 2));
			copy(mi->day, sizeof(mi->day), day);
			mi->quantity = db_res_ll(q, i, 3);
		} else {
			struct usage_decrease *de;

			res->dec = xrealloc(
				res->dec, (res->ndec + 1) * sizeof(*res->dec));
			de = &res->dec[res->ndec++];
			copy(de->customer_id, sizeof(de->customer_id),
			     db_res_get(q, i, 1));
			copy(de->metric, sizeof(de->metric),
			     db_res_get(q, i, 2));
			copy(de->day, sizeof(de->day), day);
			de->recorded = db_res_ll(q, i, 3);
			de->reported = db_res_ll(q, i, 4);
		}
	}
	db_res_free(q);
	return 0;
}

/* The rows still to send on the run's days, into res->ev. */
static int
load_open(struct db *db, const char *days, bool dry_run,
	  struct usage_result *res, struct ops_err *err)
{
	static const char sql[] =
		"SELECT id, customer_id::text, stripe_customer_id, metric,"
		" event_name, usage_day::text, seq, quantity, day_total,"
		" event_ts, identifier, status, COALESCE(error, '')"
		" FROM apexops.stripe_usage_events"
		" WHERE usage_day = ANY($1::date[])"
		" AND status IN ('pending', 'failed')"
		" ORDER BY customer_id, usage_day, metric, seq";
	const char *p[1] = { days };
	struct db_res *q = NULL;
	int r, n;

	r = db_query(db, sql, 1, p, &q, err);
	if (r != 0)
		return r;
	n = db_res_rows(q);
	res->ev = xcalloc((size_t)n + 1, sizeof(*res->ev));
	for (int i = 0; i < n; i++) {
		struct usage_event *e = &res->ev[res->nev++];

		e->id = dry_run ? 0 : db_res_ll(q, i, 0);
		copy(e->customer_id, sizeof(e->customer_id),
		     db_res_get(q, i, 1));
		copy(e->stripe_customer_id, sizeof(e->stripe_customer_id),
		     db_res_get(q, i, 2));
		copy(e->metric, sizeof(e->metric), db_res_get(q, i, 3));
		copy(e->event_name, sizeof(e->event_name), db_res_get(q, i, 4));
		copy(e->day, sizeof(e->day), db_res_get(q, i, 5));
		e->seq = (int)db_res_ll(q, i, 6);
		e->quantity = db_res_ll(q, i, 7);
		e->day_total = db_res_ll(q, i, 8);
		e->event_ts = db_res_ll(q, i, 9);
		copy(e->identifier, sizeof(e->identifier),
		     db_res_get(q, i, 10));
		copy(e->status, sizeof(e->status),
		     dry_run ? "would send" : db_res_get(q, i, 11));
	}
	db_res_free(q);
	return 0;
}

/* ---- sending ------------------------------------------------------------ */

struct sender {
	const struct usage_opts *o;
	struct usage_result *res;
	struct ratelimit rl;
	struct http_policy policy;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t next;	 /* next event to take */
	size_t *settled; /* indexes of events done, not yet flushed */
	size_t nsettled;
	int running;  /* workers still running */
	bool stopped; /* a worker saw the stop flag */
	char worker_err[sizeof(((struct ops_err *)0)->msg)];
};

static void
settle_event(struct usage_event *e, int r, bool replayed,
	     const struct stripe_error *se, const struct ops_err *err)
{
	copy(e->request_id, sizeof(e->request_id), se->request_id);
	if (r == 0) {
		copy(e->status, sizeof(e->status), "sent");
		copy(e->outcome, sizeof(e->outcome),
		     replayed ? "replayed" : "created");
		return;
	}
	if (usage_is_duplicate(se->http_status, se->message)) {
		copy(e->status, sizeof(e->status), "sent");
		copy(e->outcome, sizeof(e->outcome), "duplicate");
		return;
	}
	copy(e->status, sizeof(e->status), "failed");
	e->error = xstrdup(err->msg);
	log_scrub(e->error);
}

static int
send_one(struct stripe *st, struct usage_event *e, bool *stopped)
{
	struct ops_err err = OPS_ERR_INIT;
	struct stripe_error se;
	json_t *params, *out = NULL;
	bool replayed = false;
	char value[32];
	int r;

	snprintf(value, sizeof(value), "%lld", e->quantity);
	params =
		json_pack("{s:s, s:{s:s, s:s}, s:I, s:s}", "event_name",
			  e->event_name, "payload", "stripe_customer_id",
			  e->stripe_customer_id, "value", value, "timestamp",
			  (json_int_t)e->event_ts, "identifier", e->identifier);
	memset(&se, 0, sizeof(se));
	r = stripe_call(st, "POST", "/v1/billing/meter_events", params,
			e->identifier, &out, &replayed, &se, &err);
	json_decref(params);
	json_decref(out);
	if (r == OPS_E_STOPPED) {
		*stopped = true;
		return r;
	}
	settle_event(e, r, replayed, &se, &err);
	return 0;
}

static void *
worker_main(void *arg)
{
	struct sender *s = arg;
	struct stripe_opts so;
	struct stripe *st = NULL;
	struct ops_err err = OPS_ERR_INIT;

	memset(&so, 0, sizeof(so));
	so.api_base = s->o->api_base;
	so.secret_key = s->o->secret_key;
	so.api_version = s->o->api_version;
	so.policy = &s->policy;
	if (stripe_new(&so, &st, &err) != 0) {
		pthread_mutex_lock(&s->mu);
		copy(s->worker_err, sizeof(s->worker_err), err.msg);
		s->stopped = true;
		goto out;
	}
	for (;;) {
		struct usage_event *e;
		bool stopped = false;
		size_t i;

		pthread_mutex_lock(&s->mu);
		if (s->stopped || s->next >= s->res->nev ||
		    ops_stopped(s->o->stop)) {
			if (ops_stopped(s->o->stop))
				s->stopped = true;
			break;
		}
		i = s->next++;
		pthread_mutex_unlock(&s->mu);
		e = &s->res->ev[i];
		send_one(st, e, &stopped);
		pthread_mutex_lock(&s->mu);
		if (stopped) {
			s->stopped = true;
			break;
		}
		s->settled[s->nsettled++] = i;
		pthread_cond_signal(&s->cv);
		pthread_mutex_unlock(&s->mu);
	}
out:
	/* the mutex is held here */
	s->running--;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	stripe_free(st);
	return NULL;
}

/* Write the settled events idx[0..n) to the ledger in one statement. */
static int
flush(struct db *db, struct usage_result *res, const size_t *idx, size_t n,
      long long run_id, struct ops_err *err)
{
	static const char sql[] =
		"UPDATE apexops.stripe_usage_events e SET status = v.status,"
		" outcome = NULLIF(v.outcome, ''), attempts = e.attempts + 1,"
		" request_id = COALESCE(NULLIF(v.req, ''), e.request_id),"
		" error = NULLIF(v.error, ''),"
		" sent_at = CASE WHEN v.status = 'sent' THEN clock_timestamp()"
		" END, updated_at = clock_timestamp(), audited_at = NULL,"
		" run_id = COALESCE(NULLIF($6::bigint, 0), e.run_id)"
		" FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[],"
		"  $5::text[]) AS v(id, status, outcome, req, error)"
		" WHERE e.id = v.id AND e.status IN ('pending', 'failed')";
	struct buf ids = BUF_INIT, st = BUF_INIT, oc = BUF_INIT, rq = BUF_INIT,
		   er = BUF_INIT;
	char run_s[32];
	const char *p[6];
	int r;

	if (n == 0)
		return 0;
	buf_adds(&ids, "{");
	buf_adds(&st, "{");
	buf_adds(&oc, "{");
	buf_adds(&rq, "{");
	buf_adds(&er, "{");
	for (size_t i = 0; i < n; i++) {
		const struct usage_event *e = &res->ev[idx[i]];

		buf_addf(&ids, "%s%lld", i ? "," : "", e->id);
		array_add(&st, e->status);
		array_add(&oc, e->outcome);
		array_add(&rq, e->request_id);
		array_add(&er, e->error);
	}
	buf_adds(&ids, "}");
	buf_adds(&st, "}");
	buf_adds(&oc, "}");
	buf_adds(&rq, "}");
	buf_adds(&er, "}");
	snprintf(run_s, sizeof(run_s), "%lld", run_id);
	p[0] = buf_str(&ids);
	p[1] = buf_str(&st);
	p[2] = buf_str(&oc);
	p[3] = buf_str(&rq);
	p[4] = buf_str(&er);
	p[5] = run_s;
	r = db_exec(db, sql, 6, p, NULL, err);
	buf_release(&ids);
	buf_release(&st);
	buf_release(&oc);
	buf_release(&rq);
	buf_release(&er);
	return r;
}

/* billing_audit rows per customer and day, synced or failed, for the
 * events [from, to) (whole customers), and with_missing for the customers
 * without a Stripe id. */
static int
write_audit(struct db *db, const struct usage_result *res, size_t from,
	    size_t to, const char *days, bool with_missing, long long run_id,
	    struct ops_err *err)
{
	/* the rows settled since their last audit (audited_at NULL): by id,
	 * or every such row of the run's days, which also catches rows a
	 * killed run delivered but did not audit */
	static const char sql_ev[] =
		"WITH a AS (UPDATE apexops.stripe_usage_events SET"
		"  audited_at = clock_timestamp()"
		"  WHERE (id = ANY($1::bigint[]) OR usage_day = "
		"ANY($3::date[]))"
		"  AND status IN ('sent', 'failed') AND audited_at IS NULL"
		"  RETURNING *)"
		" INSERT INTO public.billing_audit (event_type, actor,"
		" customer_id, data)"
		" SELECT CASE WHEN bool_and(status = 'sent') THEN"
		"  'stripe_usage_synced' ELSE 'stripe_usage_sync_failed' END,"
		" 'apexops', customer_id, jsonb_build_object('day', usage_day,"
		" 'tz', min(tz), 'run_id', NULLIF($2::bigint, 0),"
		" 'stripe_customer_id', min(stripe_customer_id), 'events',"
		" jsonb_agg(jsonb_build_object('metric', metric, 'event_name',"
		"  event_name, 'seq', seq, 'value', quantity, 'day_total',"
		"  day_total, 'identifier', identifier, 'status', status,"
		"  'outcome', outcome, 'request_id', request_id, 'error', "
		"error)"
		"  ORDER BY metric, seq))"
		" FROM a GROUP BY customer_id, usage_day";
	static const char sql_missing[] =
		"INSERT INTO public.billing_audit (event_type, actor,"
		" customer_id, data)"
		" SELECT 'stripe_usage_sync_failed', 'apexops', c::uuid,"
		" jsonb_build_object('day', d, 'tz', $4::text, 'run_id',"
		"  NULLIF($5::bigint, 0), 'reason', 'no Stripe customer id:"
		" users.stripe_customer_id and subscriptions.stripe_customer_id"
		" are empty; nothing was sent', 'usage',"
		"  jsonb_object_agg(m, q))"
		" FROM unnest($1::text[], $2::text[], $3::text[], $6::bigint[])"
		"  AS x(c, d, m, q) GROUP BY c, d";
	struct buf ids = BUF_INIT, c = BUF_INIT, d = BUF_INIT, m = BUF_INIT,
		   q = BUF_INIT;
	char run_s[32];
	int r = 0;

	snprintf(run_s, sizeof(run_s), "%lld", run_id);
	buf_adds(&ids, "{");
	for (size_t i = from; i < to; i++) {
		if (strcmp(res->ev[i].status, "pending") == 0)
			continue; /* not tried (stopped) */
		buf_addf(&ids, "%s%lld", ids.len > 1 ? "," : "", res->ev[i].id);
	}
	buf_adds(&ids, "}");
	if (ids.len > 2 || days != NULL) {
		const char *p[3] = { buf_str(&ids), run_s, days };

		r = db_exec(db, sql_ev, 3, p, NULL, err);
	}
	if (r == 0 && with_missing && res->nmissing > 0) {
		const char *p[6];

		buf_adds(&c, "{");
		buf_adds(&d, "{");
		buf_adds(&m, "{");
		buf_adds(&q, "{");
		for (size_t i = 0; i < res->nmissing; i++) {
			array_add(&c, res->missing[i].customer_id);
			array_add(&d, res->missing[i].day);
			array_add(&m, res->missing[i].metric);
			buf_addf(&q, "%s%lld", i ? "," : "",
				 res->missing[i].quantity);
		}
		buf_adds(&c, "}");
		buf_adds(&d, "}");
		buf_adds(&m, "}");
		buf_adds(&q, "}");
		p[0] = buf_str(&c);
		p[1] = buf_str(&d);
		p[2] = buf_str(&m);
		p[3] = res->tz;
		p[4] = run_s;
		p[5] = buf_str(&q);
		r = db_exec(db, sql_missing, 6, p, NULL, err);
	}
	buf_release(&ids);
	buf_release(&c);
	buf_release(&d);
	buf_release(&m);
	buf_release(&q);
	if (r != 0)
		ops_err_prefix(err, "writing billing_audit");
	return r;
}

/*
 * Mark the events idx[0..n) done and audit the customers whose events
 * are all done, from *audited on, once there are 1,024 events of them:
 * the audit is written beside the calls instead of after the last one
 * (events are ordered by customer, so customers finish in order).
 */
static int
audit_done(struct db *db, const struct usage_result *res, const size_t *idx,
	   size_t n, bool *done, size_t *audited, long long run_id,
	   struct ops_err *err)
{
	size_t k = *audited, b;
	int r;

	for (size_t i = 0; i < n; i++)
		done[idx[i]] = true;
	while (k < res->nev && done[k])
		k++;
	/* the customer at k may have done events before k: not yet */
	b = k;
	while (b > *audited && b < res->nev &&
	       strcmp(res->ev[b].customer_id, res->ev[b - 1].customer_id) == 0)
		b--;
	if (b - *audited < 1024)
		return 0;
	r = write_audit(db, res, *audited, b, NULL, false, run_id, err);
	if (r == 0)
		*audited = b;
	return r;
}

/*
 * Send res->ev with o->concurrency workers; this thread settles what they
 * finish in batches (every 512 events or 200 ms), so the ledger's work
 * runs beside the calls. A failed settle write stops the workers: a row
 * delivered but not settled stays pending and the next run settles it
 * through Stripe's duplicate answer.
 */
static int
send_all(struct db *db, const struct usage_opts *o, struct usage_result *res,
	 size_t *audited, bool *missing_done, struct ops_err *err)
{
	bool *done;
	struct sender s;
	pthread_t *th;
	size_t *batch;
	int nth = (int)o->concurrency, started = 0, r = 0;
	double t0, t1;

	if (res->nev == 0)
		return 0;
	if ((size_t)nth > res->nev)
		nth = (int)res->nev;
	if (nth < 1)
		nth = 1;
	memset(&s, 0, sizeof(s));
	s.o = o;
	s.res = res;
	/* a burst of 10 ms of calls lets a thread that lost the CPU catch
	 * up with its slots instead of losing them for good */
	ratelimit_init(&s.rl, (double)o->max_rps, (double)o->max_rps / 100);
	http_policy_default(&s.policy);
	s.policy.max_retries = 5;
	s.policy.timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
	s.policy.limit = &s.rl;
	pthread_mutex_init(&s.mu, NULL);
	pthread_cond_init(&s.cv, NULL);
	s.settled = xcalloc(res->nev, sizeof(*s.settled));
	batch = xcalloc(res->nev, sizeof(*batch));
	done = xcalloc(res->nev, sizeof(*done));
	th = xcalloc((size_t)nth, sizeof(*th));
	pthread_mutex_lock(&s.mu);
	for (int i = 0; i < nth; i++) {
		if (pthread_create(&th[i], NULL, worker_main, &s) != 0)
			break;
		started++;
		s.running++;
	}
	if (started == 0) {
		pthread_mutex_unlock(&s.mu);
		r = ops_fail(err, OPS_E_IO, false,
			     "cannot start a sender thread");
		goto out;
	}
	for (;;) {
		struct timespec until;
		bool serial;
		size_t n;

		if (s.running > 0 && s.nsettled < 512) {
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 200 * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&s.cv, &s.mu, &until);
			if (s.running > 0 && s.nsettled < 512)
				continue;
		}
		n = s.nsettled;
		memcpy(batch, s.settled, n * sizeof(*batch));
		s.nsettled = 0;
		if (n == 0 && s.running == 0)
			break;
		serial = s.running == 0;
		pthread_mutex_unlock(&s.mu);
		t0 = mono();
		if (r == 0)
			r = flush(db, res, batch, n, o->run_id, err);
		t1 = mono();
		if (r == 0 && !*missing_done) {
			r = write_audit(db, res, 0, 0, NULL, true, o->run_id,
					err);
			*missing_done = true;
		}
		if (r == 0 && !serial)
			r = audit_done(db, res, batch, n, done, audited,
				       o->run_id, err);
		res->ledger_s += t1 - t0;
		res->audit_s += mono() - t1;
		if (serial)
			res->ledger_serial_s += mono() - t0;
		pthread_mutex_lock(&s.mu);
		if (r != 0)
			s.stopped = true; /* stop the workers, keep settling */
	}
	pthread_mutex_unlock(&s.mu);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	if (r == 0 && s.worker_err[0] != '\0')
		r = ops_fail(err, OPS_E_CONFIG, false, "%s", s.worker_err);
	if (r == 0 && s.stopped && ops_stopped(o->stop))
		r = ops_fail(err, OPS_E_STOPPED, true,
			     "usage sync stopped: rows not sent stay pending "
			     "and the next run sends them");
out:
	free(th);
	free(batch);
	free(done);
	free(s.settled);
	pthread_cond_destroy(&s.cv);
	pthread_mutex_destroy(&s.mu);
	ratelimit_destroy(&s.rl);
	return r;
}

int
usage_sync(struct db *db, const struct usage_opts *o, struct usage_result *res,
	   struct ops_err *err)
{
	struct buf metrics = BUF_INIT, names = BUF_INIT, days = BUF_INIT;
	double t_start = mono(), t0;
	size_t audited = 0;	   /* events [0, audited) are audited */
	bool missing_done = false; /* customers without an id audited */
	int r;

	memset(res, 0, sizeof(*res));
	copy(res->tz, sizeof(res->tz), o->tz);
	res->dry_run = o->dry_run;
	res->run_id = o->run_id;
	if (!o->dry_run && o->secret_key == NULL)
		return ops_fail(err, OPS_E_CONFIG, false,
				"STRIPE_SECRET_KEY is not set: the usage sync "
				"needs a Stripe secret key");
	t0 = mono();
	r = resolve_days(db, o, res, err);
	if (r != 0)
		goto out;
	buf_adds(&metrics, "{");
	buf_adds(&names, "{");
	for (size_t i = 0; i < o->meters->n; i++) {
		array_add(&metrics, o->meters->v[i].metric);
		array_add(&names, o->meters->v[i].event_name);
	}
	buf_adds(&metrics, "}");
	buf_adds(&names, "}");
	buf_adds(&days, "{");
	for (size_t i = 0; i < res->ndays; i++)
		array_add(&days, res->days[i].day);
	buf_adds(&days, "}");
	/* a dry run plans inside a transaction it rolls back: what it
	 * prints is exactly what a real run would write and send */
	if (o->dry_run) {
		r = db_begin(db, err);
		if (r != 0)
			goto out;
	}
	for (size_t i = 0; i < res->ndays && r == 0; i++)
		r = plan_day(db, o, res->days[i].day, buf_str(&metrics),
			     buf_str(&names), res, err);
	if (r == 0)
		r = load_open(db, buf_str(&days), o->dry_run, res, err);
	if (o->dry_run)
		db_rollback(db);
	res->ledger_s += mono() - t0;
	res->ledger_serial_s += mono() - t0;
	res->plan_s = mono() - t0;
	if (r != 0 || o->dry_run)
		goto out;
	/*
	 * Settling need not wait for the WAL flush: a settle lost in a
	 * server crash leaves its row pending, and the next run resends it
	 * with the same identifier and values, which Stripe answers as
	 * replayed or duplicate. The plan above was committed durably (a
	 * lost plan could be planned again with other values under the same
	 * identifier), and so is the audit below.
	 */
	t0 = mono();
	r = db_exec(db, "SET synchronous_commit = off", 0, NULL, NULL, err);
	if (r == 0)
		r = send_all(db, o, res, &audited, &missing_done, err);
	{
		struct ops_err rerr = OPS_ERR_INIT;

		if (db_exec(db, "RESET synchronous_commit", 0, NULL, NULL,
			    &rerr) != 0 &&
		    r == 0) {
			r = rerr.code;
			if (err != NULL)
				*err = rerr;
		}
	}
	res->send_s = mono() - t0;
	for (size_t i = 0; i < res->nev; i++) {
		const struct usage_event *e = &res->ev[i];

		if (strcmp(e->status, "sent") == 0) {
			res->sent++;
			if (strcmp(e->outcome, "created") == 0)
				res->created++;
			else if (strcmp(e->outcome, "replayed") == 0)
				res->replayed++;
			else
				res->duplicate++;
		} else if (strcmp(e->status, "failed") == 0) {
			res->failed++;
		} else {
			res->left++;
		}
	}
	t0 = mono();
	{
		struct ops_err aerr = OPS_ERR_INIT;

		if (write_audit(db, res, audited, audited, buf_str(&days),
				!missing_done, o->run_id, &aerr) != 0) {
			log_warn("usage sync audit failed error=%s",
				 log_q(aerr.msg));
			if (r == 0) {
				r = aerr.code;
				if (err != NULL)
					*err = aerr;
			}
		}
	}
	res->audit_s += mono() - t0;
	res->ledger_serial_s += mono() - t0;
	if (r == 0 && res->failed > 0)
		r = ops_fail(err, OPS_E_HTTP, false,
			     "%lld of %zu meter events failed (see the "
			     "ledger, apexops.stripe_usage_events, status "
			     "failed); running again retries them",
			     res->failed, res->nev);
out:
	res->wall_s = mono() - t_start;
	buf_release(&metrics);
	buf_release(&names);
	buf_release(&days);
	return r;
}

int
usage_status_report(struct db *db, struct buf *out, struct ops_err *err)
{
	struct db_res *q = NULL;
	int r;

	r = db_query(db,
		     "SELECT (SELECT max(usage_day)::text FROM"
		     "  apexops.stripe_usage_events WHERE status = 'sent'),"
		     " (SELECT count(*) FROM apexops.stripe_usage_events"
		     "  WHERE status = 'pending'),"
		     " (SELECT count(*) FROM apexops.stripe_usage_events"
		     "  WHERE status = 'failed'),"
		     " (SELECT count(DISTINCT r.customer_id) FROM"
		     "  public.usage_records r JOIN public.users u ON u.id ="
		     "  r.customer_id LEFT JOIN public.subscriptions s ON"
		     "  s.customer_id = r.customer_id"
		     "  WHERE r.recorded_at > now() - interval '35 days'"
		     "  AND COALESCE(NULLIF(btrim(u.stripe_customer_id), ''),"
		     "  NULLIF(btrim(s.stripe_customer_id), '')) IS NULL),"
		     " (SELECT count(*) FROM apexops.stripe_usage_decreases"
		     "  WHERE resolved_at IS NULL)",
		     0, NULL, &q, err);
	if (r != 0)
		return r;
	buf_addf(out, "  last synced  %s\n",
		 db_res_get(q, 0, 0) ? db_res_get(q, 0, 0) : "never");
	buf_addf(out, "  rows         %lld pending, %lld failed%s\n",
		 db_res_ll(q, 0, 1), db_res_ll(q, 0, 2),
		 db_res_ll(q, 0, 2) > 0 ? " ('apexops stripe sync-usage' "
					  "retries them)"
					: "");
	buf_addf(out,
		 "  no Stripe id %lld customers with usage in the last "
		 "35 days\n",
		 db_res_ll(q, 0, 3));
	buf_addf(out, "  decreases    %lld open%s\n", db_res_ll(q, 0, 4),
		 db_res_ll(q, 0, 4) > 0 ? " (see apexops.stripe_usage_"
					  "decreases and the runbook)"
					: "");
	db_res_free(q);
	return 0;
}
