/*
 * Sandbox revenue: the original generator's arithmetic, step by step in
 * the same order and in IEEE doubles, so that every row matches it to the
 * cent (see the worked example in tests/unit/test_revenue.c), and the
 * COPY writer.
 *
 * Floating point: the build is ISO C11 (-std=c11), where GCC does not
 * contract a * b + c into an FMA, and x86-64 evaluates doubles in SSE2
 * registers, so each operation rounds as JavaScript's does. sin() is
 * glibc's, which the original's test vectors were checked against; V8's
 * fdlibm sin could differ in the last bit for some seed, which moves a
 * revenue value by about 1e-12 and so changes a cent only if the value
 * sits within that distance of a half cent.
 */
#include "jobs/revenue.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "core/progress.h"
#include "core/xalloc.h"
#include "db/db.h"

static const struct {
	const char *name;
	double monthly; /* USD over the whole window */
	double base_ctr;
} tiers[REVENUE_NTIERS] = {
	{ "starter", 3000, 0.008 },
	{ "growth", 50000, 0.011 },
	{ "scale", 150000, 0.014 },
};

int
revenue_tier_parse(const char *s, enum revenue_tier *out)
{
	for (int i = 0; i < REVENUE_NTIERS; i++) {
		/* the original lower-cased the value first */
		if (strcasecmp(s, tiers[i].name) == 0) {
			*out = (enum revenue_tier)i;
			return 0;
		}
	}
	return OPS_E_INVALID;
}

const char *
revenue_tier_name(enum revenue_tier t)
{
	return tiers[t].name;
}

double
revenue_tier_monthly(enum revenue_tier t)
{
	return tiers[t].monthly;
}

/* Per placement type: share weight and CTR multiplier. */
static void
type_factors(const char *type, double *weight, double *ctr_mult)
{
	if (strcmp(type, "interstitial") == 0) {
		*weight = 1;
		*ctr_mult = 1;
	} else if (strcmp(type, "rewarded") == 0) {
		*weight = 1.15;
		*ctr_mult = 0.85;
	} else if (strcmp(type, "banner") == 0) {
		*weight = 0.4;
		*ctr_mult = 0.45;
	} else {
		*weight = 0.75;
		*ctr_mult = 0.7;
	}
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
long
revenue_date_to_days(const struct revenue_date *dt)
{
	long y = dt->y - (dt->m <= 2);
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;
	long mp = (dt->m + 9) % 12;
	long doy = (153 * mp + 2) / 5 + dt->d - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

void
revenue_date_from_days(long z, struct revenue_date *out)
{
	long era, doe, yoe, y, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	out->d = (int)(doy - (153 * mp + 2) / 5 + 1);
	out->m = (int)(mp < 10 ? mp + 3 : mp - 9);
	out->y = (int)(y + (out->m <= 2));
}

void
revenue_date_format(const struct revenue_date *dt, char *buf, size_t len)
{
	snprintf(buf, len, "%04d-%02d-%02d", dt->y, dt->m, dt->d);
}

static uint32_t
hash_feed(uint32_t h, const char *s)
{
	/* uint32 arithmetic wraps mod 2^32, as the original's ">>> 0" */
	for (; *s != '\0'; s++)
		h = h * 31u + (unsigned char)*s;
	return h;
}

uint32_t
revenue_hash(const char *s)
{
	uint32_t h = hash_feed(0, s);

	return h == 0 ? 1 : h;
}

/* H(tier, day, tail) without building the joined string. */
static uint32_t
hash3(const char *tier, int day, const char *tail)
{
	char num[16];
	uint32_t h;

	snprintf(num, sizeof(num), "%d", day);
	h = hash_feed(0, tier);
	h = hash_feed(h, "|");
	h = hash_feed(h, num);
	h = hash_feed(h, "|");
	h = hash_feed(h, tail);
	return h == 0 ? 1 : h;
}

double
revenue_noise(uint32_t seed)
{
	double v = sin((double)seed) * 10000;

	return v - floor(v);
}

/*
 * toFixed(2) picks the integer n minimising |n / 100 - x| on the exact
 * value of x and, on a tie, the larger n (of |x|: the sign is split off
 * first). glibc's printf rounds the exact binary value correctly too, but
 * breaks exact ties to even. An exact tie means x * 100 = m + 1/2, which
 * for a binary double happens only when x = k / 8 with k odd; those are
 * handled here, the rest by printf.
 */
long long
revenue_js_cents(double x)
{
	double a = fabs(x), e = a * 8; /* exact: a power of two */
	long long c;
	char s[64], *dot;

	if (a < 1e15 && e == floor(e) && fmod(e, 2) == 1) {
		c = (long long)(a * 100) + 1; /* a * 100 = m + 0.5, exact */
	} else {
		snprintf(s, sizeof(s), "%.2f", a);
		dot = strchr(s, '.');
		if (dot ==
		    NULL) /* inf or nan: not reachable from the formulas */
			return 0;
		*dot = '\0';
		c = strtoll(s, NULL, 10) * 100 + strtoll(dot + 1, NULL, 10);
	}
	return x < 0 ? -c : c;
}

double
revenue_js_round(double x)
{
	double f = floor(x);

	/* x - floor(x) is exact; floor(x + 0.5) would misround 0.49999... */
	return x - f >= 0.5 ? f + 1 : f;
}

int
revenue_generate(enum revenue_tier tier, const struct revenue_date *start,
		 int days, const struct revenue_placement *pl, size_t n,
		 struct revenue_plan *out, struct ops_err *err)
{
	const char *tname = tiers[tier].name;
	double base_ctr = tiers[tier].base_ctr;
	double daily_target, w_sum = 0;
	double *weight = NULL, *ctr_mult = NULL;
	long day0;
	size_t cap;

	memset(out, 0, sizeof(*out));
	if (n == 0)
		return ops_fail(err, OPS_E_INVALID, false,
				"no sandbox placements");
	if (days < 1 || days > REVENUE_MAX_DAYS)
		return ops_fail(err, OPS_E_INVALID, false,
				"days %d out of range 1..%d", days,
				REVENUE_MAX_DAYS);
	day0 = revenue_date_to_days(start);
	out->tier = tier;
	out->days = days;
	out->start = *start;
	revenue_date_from_days(day0 + days - 1, &out->end);
	if (out->end.y > 9999 || start->y < 1970)
		return ops_fail(err, OPS_E_INVALID, false,
				"window %04d-%02d-%02d + %d days is outside "
				"1970-01-01..9999-12-31",
				start->y, start->m, start->d, days);

	weight = xcalloc(n, sizeof(*weight));
	ctr_mult = xcalloc(n, sizeof(*ctr_mult));
	for (size_t i = 0; i < n; i++) {
		type_factors(pl[i].type, &weight[i], &ctr_mult[i]);
		w_sum += weight[i]; /* left fold in placement order */
	}
	cap = n * (size_t)days;
	out->rows = xcalloc(cap, sizeof(*out->rows));
	out->day_cents = xcalloc((size_t)days * REVENUE_NADAPTERS,
				 sizeof(*out->day_cents));
	daily_target = tiers[tier].monthly / (double)days;

	for (int d = 0; d < days; d++) {
		struct revenue_date dt;
		char iso[32];
		double day_revenue;

		revenue_date_from_days(day0 + d, &dt);
		snprintf(iso, sizeof(iso), "%04d-%02d-%02dT00:00:00.000Z", dt.y,
			 dt.m, dt.d);
		day_revenue = daily_target *
			      (0.9 + revenue_noise(hash3(tname, d, iso)) * 0.2);
		for (size_t i = 0; i < n; i++) {
			struct revenue_row *row;
			double base_share, share_var, revenue, impr;
			long long cents;
			int a = (int)((i + (size_t)d) % REVENUE_NADAPTERS);

			base_share = (weight[i] / w_sum) * day_revenue;
			share_var =
				0.85 +
				revenue_noise(hash3(tname, d, pl[i].id)) * 0.3;
			cents = revenue_js_cents(base_share * share_var);
			if (cents <= 0)
				continue;
			/* Number(toFixed(2)): the double nearest the decimal */
			revenue = (double)cents / 100;
			impr = revenue_js_round(
				revenue * 1000 /
				fmax(sandbox_adapters[a].ecpm, 0.5));
			row = &out->rows[out->nrows++];
			row->day = d;
			row->placement = (int)i;
			row->adapter = a;
			row->cents = cents;
			row->impressions = (long long)fmax(80, impr);
			row->clicks = (long long)fmax(
				0, revenue_js_round((double)row->impressions *
						    base_ctr * ctr_mult[i]));
			out->total_cents += cents;
			out->day_cents[(size_t)d * REVENUE_NADAPTERS +
				       (size_t)a] += cents;
		}
	}
	free(weight);
	free(ctr_mult);
	return 0;
}

void
revenue_plan_release(struct revenue_plan *plan)
{
	if (plan == NULL)
		return;
	free(plan->rows);
	free(plan->day_cents);
	memset(plan, 0, sizeof(*plan));
}

/* ---- database ---- */

int
revenue_load_placements(struct db *db, struct revenue_placements *out,
			struct ops_err *err)
{
	/*
	 * The original ordered by placements.name in the database collation;
	 * COLLATE "C" (byte order) gives the same order for the sandbox's
	 * ASCII names under C/C.UTF-8 and one order everywhere, and the id
	 * breaks ties between equal names.
	 */
	/* only the fixture placements: a placement someone added to the
	 * sandbox publisher is not part of the scenario */
	static const char sql[] =
		"SELECT p.id, p.name, p.type FROM placements p"
		" JOIN apps a ON a.id = p.app_id"
		" WHERE a.publisher_id = $1 AND p.id = ANY ($2::uuid[])"
		" ORDER BY p.name COLLATE \"C\", p.id";
	char *ids = sandbox_placement_id_array();
	const char *params[2] = { SANDBOX_PUBLISHER_ID, ids };
	struct db_res *res = NULL;
	int r, rows;

	memset(out, 0, sizeof(*out));
	r = db_query(db, sql, 2, params, &res, err);
	free(ids);
	if (r != 0)
		return ops_err_prefix(err, "loading sandbox placements");
	rows = db_res_rows(res);
	out->v = xcalloc(rows > 0 ? (size_t)rows : 1, sizeof(*out->v));
	for (int i = 0; i < rows; i++) {
		out->v[i].id = xstrdup(db_res_get(res, i, 0));
		out->v[i].name = xstrdup(db_res_get(res, i, 1));
		out->v[i].type = xstrdup(db_res_get(res, i, 2));
	}
	out->n = (size_t)rows;
	db_res_free(res);
	return 0;
}

void
revenue_placements_release(struct revenue_placements *pl)
{
	if (pl == NULL || pl->v == NULL)
		return;
	for (size_t i = 0; i < pl->n; i++) {
		free((char *)pl->v[i].id);
		free((char *)pl->v[i].name);
		free((char *)pl->v[i].type);
	}
	free(pl->v);
	memset(pl, 0, sizeof(*pl));
}

int
revenue_check_prereqs(struct db *db, struct ops_err *err)
{
	static const char sql_pub[] =
		"SELECT count(*) FROM publishers WHERE id = $1";
	static const char sql_ad[] =
		"SELECT count(*) FROM adapters WHERE id IN ($1, $2, $3)";
	const char *p1[1] = { SANDBOX_PUBLISHER_ID };
	const char *p3[3] = { sandbox_adapters[0].id, sandbox_adapters[1].id,
			      sandbox_adapters[2].id };
	char *v = NULL;
	int r;

	r = db_query_value(db, sql_pub, 1, p1, &v, err);
	if (r != 0)
		goto out;
	if (v == NULL || strcmp(v, "1") != 0) {
		r = ops_fail(err, OPS_E_NOTFOUND, false,
			     "sandbox publisher %s does not exist",
			     SANDBOX_PUBLISHER_ID);
		goto out;
	}
	free(v);
	v = NULL;
	r = db_query_value(db, sql_ad, 3, p3, &v, err);
	if (r != 0)
		goto out;
	if (v == NULL || strcmp(v, "3") != 0) {
		r = ops_fail(err, OPS_E_NOTFOUND, false,
			     "the FakeNetworkA/B/C adapters do not exist "
			     "(found %s of 3)",
			     v ? v : "0");
		goto out;
	}
	r = 0;
out:
	free(v);
	return r;
}

#define COPY_CHUNK (64 * 1024)

/*
 * Bulk reference checks.
 *
 * revenue_events has three foreign keys (publisher_id, placement_id,
 * adapter_id). Checked by their row triggers they cost about 10 us a row,
 * three quarters of the COPY's time (docs/benchmarks.md). Every row of a
 * load references the same publisher, the same three adapters and the
 * sandbox placements, so the writer can do what the triggers do once for
 * the whole load instead:
 *   1. lock every referenced row FOR KEY SHARE, the lock the triggers
 *      take, so that no other transaction can delete one or change its key
 *      before this one commits;
 *   2. count them and fail, naming the table, if one is missing;
 *   3. COPY with session_replication_role = replica (SET LOCAL: it ends
 *      with the transaction), under which the row triggers do not fire.
 * This is what pg_restore --disable-triggers relies on, with the checks
 * kept. It is used only when it is exactly equivalent: the table is a
 * plain table whose only INSERT triggers are those three keys' checks (a
 * user trigger, enabled or replica-only, would be skipped or fired
 * differently), the role may set session_replication_role (superuser, or
 * GRANT SET ON PARAMETER in PostgreSQL 15) and may lock the referenced rows
 * (UPDATE on their tables). The DELETE runs before the
 * setting, so keys that reference revenue_events act as usual.
 * Anything else, or o->row_checks, leaves the checks to the triggers.
 */
/* FOR KEY SHARE needs UPDATE on the table; the triggers run as its owner */
#define NO_LOCK_REASON                                                     \
	"the role may not lock the referenced rows: that needs UPDATE on " \
	"publishers, placements and adapters"

/* *yes: did sql (no parameters) answer true? */
static int
query_true(struct db *db, const char *sql, bool *yes, struct ops_err *err)
{
	char *v = NULL;
	int r = db_query_value(db, sql, 0, NULL, &v, err);

	*yes = r == 0 && v != NULL && strcmp(v, "t") == 0;
	free(v);
	return r;
}

static int
bulk_checks_allowed(struct db *db, const char **why, struct ops_err *err)
{
	static const char sql_shape[] =
		"WITH fk AS ("
		" SELECT c.oid, c.confrelid, c.conkey, c.confkey"
		" FROM pg_constraint c"
		" WHERE c.conrelid = 'revenue_events'::regclass"
		" AND c.contype = 'f'),"
		" known AS ("
		" SELECT fk.oid FROM fk"
		" JOIN pg_attribute a"
		"  ON a.attrelid = 'revenue_events'::regclass"
		"  AND a.attnum = fk.conkey[1]"
		" JOIN pg_attribute r ON r.attrelid = fk.confrelid"
		"  AND r.attnum = fk.confkey[1]"
		" WHERE cardinality(fk.conkey) = 1 AND r.attname = 'id'"
		" AND (fk.confrelid, a.attname) IN"
		"  (('publishers'::regclass, 'publisher_id'),"
		"   ('placements'::regclass, 'placement_id'),"
		"   ('adapters'::regclass, 'adapter_id')))"
		" SELECT CASE"
		" WHEN (SELECT relkind FROM pg_class"
		"  WHERE oid = 'revenue_events'::regclass) <> 'r'"
		"  THEN 1"
		" WHEN (SELECT count(*) FROM known) <> 3"
		"  OR (SELECT count(*) FROM fk) <> 3"
		"  THEN 2"
		" WHEN EXISTS (SELECT 1 FROM pg_trigger t"
		"  WHERE t.tgrelid = 'revenue_events'::regclass"
		"  AND t.tgenabled <> 'D' AND (t.tgtype & 4) <> 0"
		"  AND t.tgconstraint NOT IN (SELECT oid FROM known))"
		"  THEN 3"
		" ELSE 0 END";
	static const char sql_lock_priv[] =
		"SELECT has_any_column_privilege('publishers', 'UPDATE')"
		" AND has_any_column_privilege('placements', 'UPDATE')"
		" AND has_any_column_privilege('adapters', 'UPDATE')";
	/* has_parameter_privilege and GRANT SET ON PARAMETER came in 15 */
	static const char sql_priv[] =
		"SELECT current_setting('is_superuser') = 'on'";
	static const char sql_priv15[] =
		"SELECT current_setting('is_superuser') = 'on'"
		" OR has_parameter_privilege('session_replication_role',"
		"  'SET')";
	/* what sql_shape's codes 1..3 mean */
	static const char *const reasons[] = {
		"revenue_events is not a plain table",
		"revenue_events has a foreign key apexops does not know",
		"revenue_events has an INSERT trigger of its own",
	};
	bool yes = false;
	char *v = NULL;
	int code, r;

	*why = NULL;
	r = db_query_value(db, sql_shape, 0, NULL, &v, err);
	if (r != 0)
		return r;
	code = v != NULL ? atoi(v) : 0;
	free(v);
	if (code != 0) {
		*why = code >= 1 && code <= 3
			       ? reasons[code - 1]
			       : "revenue_events has an unexpected shape";
		return 0;
	}
	r = query_true(
		db, db_server_version_num(db) >= 150000 ? sql_priv15 : sql_priv,
		&yes, err);
	if (r == 0 && !yes)
		*why = "the role may not set session_replication_role";
	if (r == 0 && yes) {
		r = query_true(db, sql_lock_priv, &yes, err);
		if (r == 0 && !yes)
			*why = NO_LOCK_REASON;
	}
	return r;
}

/* Steps 1 and 2 above: lock and count every referenced row. */
static int
lock_references(struct db *db, const struct revenue_plan *plan,
		const struct revenue_placement *pl, struct ops_err *err)
{
	static const char sql[] =
		"SELECT (SELECT count(*) FROM (SELECT 1 FROM publishers"
		"  WHERE id = $1::uuid FOR KEY SHARE) p)"
		" || ' ' || (SELECT count(*) FROM (SELECT 1 FROM adapters"
		"  WHERE id = ANY ($2::uuid[]) FOR KEY SHARE) a)"
		" || ' ' || (SELECT count(*) FROM (SELECT 1 FROM placements"
		"  WHERE id = ANY ($3::uuid[]) FOR KEY SHARE) l)";
	struct buf adapters = BUF_INIT, places = BUF_INIT;
	const char *params[3];
	unsigned char *used = NULL;
	long long n[3] = { 0, 0, 0 }, want_pl = 0;
	size_t npl = 0;
	char *v = NULL;
	int r;

	/* the placements the rows reference (all of them, usually) */
	for (size_t i = 0; i < plan->nrows; i++)
		if ((size_t)plan->rows[i].placement + 1 > npl)
			npl = (size_t)plan->rows[i].placement + 1;
	used = xcalloc(npl + 1, 1);
	for (size_t i = 0; i < plan->nrows; i++)
		used[plan->rows[i].placement] = 1;
	buf_adds(&places, "{");
	for (size_t i = 0; i < npl; i++) {
		if (!used[i])
			continue;
		buf_addf(&places, "%s%s", want_pl > 0 ? "," : "", pl[i].id);
		want_pl++;
	}
	buf_adds(&places, "}");
	buf_adds(&adapters, "{");
	for (int i = 0; i < REVENUE_NADAPTERS; i++)
		buf_addf(&adapters, "%s%s", i > 0 ? "," : "",
			 sandbox_adapters[i].id);
	buf_adds(&adapters, "}");
	params[0] = SANDBOX_PUBLISHER_ID;
	params[1] = buf_str(&adapters);
	params[2] = buf_str(&places);
	r = db_query_value(db, sql, 3, params, &v, err);
	if (r == 0 && (v == NULL ||
		       sscanf(v, "%lld %lld %lld", &n[0], &n[1], &n[2]) != 3))
		r = ops_fail(err, OPS_E_DB, false,
			     "checking references: unexpected answer");
	if (r == 0 && n[0] != 1)
		r = ops_fail(err, OPS_E_NOTFOUND, false,
			     "the sandbox publisher %s does not exist",
			     SANDBOX_PUBLISHER_ID);
	else if (r == 0 && n[1] != REVENUE_NADAPTERS)
		r = ops_fail(err, OPS_E_NOTFOUND, false,
			     "%lld of the %d FakeNetwork adapters exist", n[1],
			     REVENUE_NADAPTERS);
	else if (r == 0 && n[2] != want_pl)
		r = ops_fail(err, OPS_E_NOTFOUND, false,
			     "%lld of the %lld sandbox placements exist "
			     "(deleted meanwhile?)",
			     n[2], want_pl);
	free(v);
	free(used);
	buf_release(&adapters);
	buf_release(&places);
	return r;
}

int
revenue_write(struct db *db, const struct revenue_plan *plan,
	      const struct revenue_placement *pl,
	      const struct revenue_write_opts *o, struct progress *prog,
	      struct revenue_write_stats *st, struct ops_err *err)
{
	static const char sql_del[] =
		"DELETE FROM revenue_events WHERE publisher_id = $1"
		" AND event_date BETWEEN $2 AND $3";
	static const char sql_copy[] =
		"COPY revenue_events (publisher_id, placement_id, adapter_id,"
		" impressions, clicks, revenue, event_date) FROM STDIN";
	char from[16], to[16];
	const char *params[3] = { SANDBOX_PUBLISHER_ID, from, to };
	struct buf b = BUF_INIT;
	char(*dates)[11] = NULL;
	bool copying = false;
	long long rows = 0;
	size_t sent = 0;
	int r;

	memset(st, 0, sizeof(*st));
	revenue_date_format(&plan->start, from, sizeof(from));
	revenue_date_format(&plan->end, to, sizeof(to));
	dates = xcalloc((size_t)plan->days, sizeof(*dates));
	for (int d = 0; d < plan->days; d++) {
		struct revenue_date dt;

		revenue_date_from_days(revenue_date_to_days(&plan->start) + d,
				       &dt);
		revenue_date_format(&dt, dates[d], sizeof(dates[d]));
	}

	r = db_begin(db, err);
	if (r != 0)
		goto out;
	if (!o->keep_history) {
		r = db_exec(db, sql_del, 3, params, &st->deleted, err);
		if (r != 0) {
			ops_err_prefix(err, "deleting earlier sandbox revenue");
			goto out;
		}
	}
	if (o->row_checks) {
		st->why_per_row = "asked for (--row-checks)";
	} else {
		r = bulk_checks_allowed(db, &st->why_per_row, err);
		if (r != 0)
			goto out;
	}
	if (st->why_per_row == NULL) {
		r = lock_references(db, plan, pl, err);
		if (r != 0) {
			ops_err_prefix(err, "checking references");
			goto out;
		}
		r = db_exec(db, "SET LOCAL session_replication_role = replica",
			    0, NULL, NULL, err);
		if (r != 0)
			goto out;
		st->bulk_checked = true;
	}
	r = db_copy_begin(db, sql_copy, err);
	if (r != 0)
		goto out;
	copying = true;
	for (size_t i = 0; i < plan->nrows; i++) {
		const struct revenue_row *row = &plan->rows[i];

		/* every field is a uuid, a number or a date: nothing to
		 * escape in COPY text format */
		buf_addf(&b, "%s\t%s\t%s\t%lld\t%lld\t%lld.%02lld\t%s\n",
			 SANDBOX_PUBLISHER_ID, pl[row->placement].id,
			 sandbox_adapters[row->adapter].id, row->impressions,
			 row->clicks, row->cents / 100, row->cents % 100,
			 dates[row->day]);
		if (b.len >= COPY_CHUNK || i + 1 == plan->nrows) {
			r = db_copy_put(db, b.data, b.len, err);
			if (r != 0)
				goto out;
			if (prog != NULL)
				progress_add(prog, (long long)(i + 1 - sent));
			sent = i + 1;
			buf_reset(&b);
		}
	}
	copying = false;
	r = db_copy_end(db, NULL, &rows, err);
	if (r != 0) {
		ops_err_prefix(err, "writing sandbox revenue");
		goto out;
	}
	st->inserted = rows;
	r = db_commit(db, err);
	if (r != 0)
		goto out;
	log_info("sandbox revenue written tier=%s from=%s to=%s deleted=%lld "
		 "rows=%lld total_cents=%lld reference_checks=%s",
		 revenue_tier_name(plan->tier), from, to, st->deleted, rows,
		 plan->total_cents, st->bulk_checked ? "bulk" : "per-row");
out:
	if (copying) {
		struct ops_err ignored = OPS_ERR_INIT;

		db_copy_end(db, "apexops: sandbox revenue aborted", NULL,
			    &ignored);
	}
	if (r != 0)
		db_rollback(db);
	buf_release(&b);
	free(dates);
	return r;
}
