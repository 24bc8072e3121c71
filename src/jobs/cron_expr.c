#include "jobs/cron_expr.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, NFIELDS };

static const char *const month_names[] = { "jan", "feb", "mar", "apr",
					   "may", "jun", "jul", "aug",
					   "sep", "oct", "nov", "dec" };
static const char *const weekday_names[] = { "sun", "mon", "tue", "wed",
					     "thu", "fri", "sat" };

static const struct field_spec {
	const char *name;
	int min, max;  /* values as written (day-of-week 7 is Sunday) */
	int star_max;  /* the last value "*" covers */
	int step_max;  /* steps are 1..step_max */
	int name_base; /* the value of names[0] */
	const char *const *names;
	size_t nnames;
	const char *names_hint;
} fields[NFIELDS] = {
	{ "minute", 0, 59, 59, 60, 0, NULL, 0, NULL },
	{ "hour", 0, 23, 23, 24, 0, NULL, 0, NULL },
	{ "day-of-month", 1, 31, 31, 31, 0, NULL, 0, NULL },
	{ "month", 1, 12, 12, 12, 1, month_names, 12,
	  "a month name (jan-dec)" },
	{ "day-of-week", 0, 7, 6, 7, 0, weekday_names, 7,
	  "a weekday name (sun-sat)" },
};

static const struct {
	const char *name;
	const char *fields;
} macros[] = {
	{ "@yearly", "0 0 1 1 *" },  { "@annually", "0 0 1 1 *" },
	{ "@monthly", "0 0 1 * *" }, { "@weekly", "0 0 * * 0" },
	{ "@daily", "0 0 * * *" },   { "@midnight", "0 0 * * *" },
	{ "@hourly", "0 * * * *" },
};

/*
 * Instants cron_next() accepts: years 1 to 9000 (UTC), so that every sum
 * below fits a long long and localtime_r() can convert the answer.
 */
#define CRON_AFTER_MIN (-62135596800LL)
#define CRON_AFTER_MAX (221845392000LL)
/* 400 years repeat the calendar: what has not fired by then never will */
#define CRON_SEARCH_DAYS (146097LL + 2)
/* in a message, quote at most this much of a bad token */
#define TOKEN_SHOWN 16

struct parser {
	const char *text;
	int field; /* enum F_* being parsed */
	struct ops_err *err;
};

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char
lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static size_t
position(const struct parser *ps, const char *at)
{
	return (size_t)(at - ps->text) + 1;
}

/* "field 2 (hour): REASON at position N" */
static int field_fail(const struct parser *ps, const char *at, const char *fmt,
		      ...) __attribute__((format(printf, 3, 4)));

static int
field_fail(const struct parser *ps, const char *at, const char *fmt, ...)
{
	char reason[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	return ops_fail(ps->err, OPS_E_INVALID, false,
			"field %d (%s): %s at position %zu", ps->field + 1,
			fields[ps->field].name, reason, position(ps, at));
}

/* a character that does not belong where it stands */
static int
unexpected(const struct parser *ps, const char *at)
{
	unsigned char c = (unsigned char)*at;

	if (c == '*')
		return field_fail(ps, at,
				  "'*' must stand alone in its field (or as "
				  "\"*/STEP\")");
	if (c >= 0x21 && c < 0x7f)
		return field_fail(ps, at, "unexpected '%c'", c);
	return field_fail(ps, at, "unexpected byte 0x%02x", c);
}

/*
 * A number (or, where the field has them, a name) at *pp, before end, into
 * *v; min..max is the range to check it against (what = "step" or NULL).
 */
static int
parse_number(const struct parser *ps, const char **pp, const char *end, int min,
	     int max, const char *what, int *v)
{
	const struct field_spec *fs = &fields[ps->field];
	const char *p = *pp, *start = *pp;
	long n = 0;

	if (p < end && is_digit(*p)) {
		while (p < end && is_digit(*p)) {
			if (n <= 100000)
				n = n * 10 + (*p - '0');
			p++;
		}
		if (n < min || n > max) {
			int len = (int)(p - start);

			return field_fail(
				ps, start, "%s%.*s%s is out of range %d-%d",
				what != NULL ? what : "",
				len > TOKEN_SHOWN ? TOKEN_SHOWN : len, start,
				len > TOKEN_SHOWN ? "..." : "", min, max);
		}
		*v = (int)n;
		*pp = p;
		return 0;
	}
	if (p < end && is_alpha(*p)) {
		int len;

		while (p < end && is_alpha(*p))
			p++;
		len = (int)(p - start);
		if (what == NULL && fs->names != NULL && len == 3) {
			for (size_t i = 0; i < fs->nnames; i++) {
				const char *nm = fs->names[i];

				if (lower(start[0]) == nm[0] &&
				    lower(start[1]) == nm[1] &&
				    lower(start[2]) == nm[2]) {
					*v = fs->name_base + (int)i;
					*pp = p;
					return 0;
				}
			}
		}
		return field_fail(
			ps, start, "'%.*s%s' is not a number%s%s",
			len > TOKEN_SHOWN ? TOKEN_SHOWN : len, start,
			len > TOKEN_SHOWN ? "..." : "",
			what == NULL && fs->names != NULL ? " or " : "",
			what == NULL && fs->names != NULL ? fs->names_hint
							  : "");
	}
	if (what != NULL)
		return field_fail(ps, p, "'/' needs a step (1-%d)", max);
	if (p == end || *p == ',')
		return field_fail(ps, p, "empty list item");
	return unexpected(ps, p);
}

/* "/STEP" at *pp, if there is one; *step stays 1 otherwise */
static int
parse_step(const struct parser *ps, const char **pp, const char *end, int *step)
{
	*step = 1;
	if (*pp >= end || **pp != '/')
		return 0;
	(*pp)++;
	return parse_number(ps, pp, end, 1, fields[ps->field].step_max, "step ",
			    step);
}

/* One field, text [start, end), into *bits; *star if it began with '*'. */
static int
parse_field(const struct parser *ps, const char *start, const char *end,
	    uint64_t *bits, bool *star)
{
	const struct field_spec *fs = &fields[ps->field];
	const char *p = start;
	int lo, hi, step, r;

	*bits = 0;
	*star = false;
	if (*p == '*') {
		*star = true;
		p++;
		r = parse_step(ps, &p, end, &step);
		if (r != 0)
			return r;
		if (p != end) {
			if (*p == ',')
				return field_fail(ps, start,
						  "'*' must stand alone in its "
						  "field (or as \"*/STEP\")");
			return unexpected(ps, p);
		}
		for (int v = fs->min; v <= fs->star_max; v += step)
			*bits |= (uint64_t)1 << v;
		return 0;
	}
	for (;;) {
		const char *item = p;
		bool range = false, stepped;

		r = parse_number(ps, &p, end, fs->min, fs->max, NULL, &lo);
		if (r != 0)
			return r;
		hi = lo;
		if (p < end && *p == '-') {
			p++;
			if (p == end || *p == ',' || *p == '/')
				return field_fail(ps, p,
						  "'-' needs a second value");
			r = parse_number(ps, &p, end, fs->min, fs->max, NULL,
					 &hi);
			if (r != 0)
				return r;
			if (hi < lo)
				return field_fail(ps, item,
						  "range %.*s runs backwards",
						  (int)(p - item), item);
			range = true;
		}
		stepped = p < end && *p == '/';
		r = parse_step(ps, &p, end, &step);
		if (r != 0)
			return r;
		if (stepped && !range)
			hi = fs->max; /* "5/10" is 5-LAST/10, as in Vixie cron
				       */
		for (int v = lo; v <= hi; v += step)
			*bits |= (uint64_t)1 << v;
		if (p == end)
			return 0;
		if (*p != ',')
			return unexpected(ps, p);
		p++;
		if (p == end)
			return field_fail(ps, p, "empty list item");
	}
}

static bool
is_leap(long long y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
days_in_month(long long y, unsigned m)
{
	static const int mdays[12] = { 31, 28, 31, 30, 31, 30,
				       31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : mdays[m - 1];
}

/* Can some day match? Only when day-of-month decides alone or together. */
static bool
can_fire(const struct cron_expr *ce)
{
	if (!ce->dom_star && !ce->dow_star)
		return true; /* either matches: every weekday comes round */
	for (unsigned m = 1; m <= 12; m++) {
		if (!(ce->months & (1u << m)))
			continue;
		for (int d = 1; d <= 31; d++) {
			/* 2000 is a leap year: February has its 29th */
			if ((ce->days & (1u << d)) &&
			    d <= days_in_month(2000, m))
				return true;
		}
	}
	return false;
}

static int
parse_macro(const char *text, const char *at, struct cron_expr *ce,
	    struct ops_err *err)
{
	const char *end = at;
	size_t len;

	while (*end != '\0' && !is_blank(*end))
		end++;
	len = (size_t)(end - at);
	for (const char *p = end; *p != '\0'; p++) {
		if (!is_blank(*p))
			return ops_fail(err, OPS_E_INVALID, false,
					"unexpected text after the macro at "
					"position %zu",
					(size_t)(p - text) + 1);
	}
	for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++) {
		if (strlen(macros[i].name) == len &&
		    strncmp(macros[i].name, at, len) == 0)
			return cron_parse(macros[i].fields, ce, err);
	}
	return ops_fail(err, OPS_E_INVALID, false,
			"unknown macro '%.*s%s' at position %zu: use @yearly, "
			"@annually, @monthly, @weekly, @daily, @midnight or "
			"@hourly",
			len > TOKEN_SHOWN ? TOKEN_SHOWN : (int)len, at,
			len > TOKEN_SHOWN ? "..." : "",
			(size_t)(at - text) + 1);
}

int
cron_parse(const char *text, struct cron_expr *ce, struct ops_err *err)
{
	struct parser ps = { text, 0, err };
	const char *start[NFIELDS], *end[NFIELDS];
	uint64_t bits[NFIELDS];
	bool star[NFIELDS];
	const char *p;
	int n = 0, r;

	memset(ce, 0, sizeof(*ce));
	if (text == NULL)
		return ops_fail(err, OPS_E_INVALID, false,
				"no cron expression given");
	p = text;
	while (is_blank(*p))
		p++;
	if (*p == '\0')
		return ops_fail(err, OPS_E_INVALID, false,
				"empty cron expression: give five fields "
				"(minute hour day-of-month month day-of-week) "
				"or a macro such as @daily");
	if (*p == '@')
		return parse_macro(text, p, ce, err);
	while (*p != '\0') {
		if (n == NFIELDS)
			return ops_fail(err, OPS_E_INVALID, false,
					"a sixth field at position %zu: a cron "
					"expression has five (minute hour "
					"day-of-month month day-of-week)",
					position(&ps, p));
		start[n] = p;
		while (*p != '\0' && !is_blank(*p))
			p++;
		end[n] = p;
		n++;
		while (is_blank(*p))
			p++;
	}
	if (n < NFIELDS)
		return ops_fail(err, OPS_E_INVALID, false,
				"field %d (%s) is missing at position %zu: a "
				"cron expression has five (minute hour "
				"day-of-month month day-of-week)",
				n + 1, fields[n].name, position(&ps, p));
	for (n = 0; n < NFIELDS; n++) {
		ps.field = n;
		r = parse_field(&ps, start[n], end[n], &bits[n], &star[n]);
		if (r != 0)
			return r;
	}
	ce->minutes = bits[F_MIN];
	ce->hours = (uint32_t)bits[F_HOUR];
	ce->days = (uint32_t)bits[F_DOM];
	ce->months = (uint16_t)bits[F_MON];
	/* 7 is Sunday, as 0 is */
	ce->weekdays = (uint8_t)((bits[F_DOW] | bits[F_DOW] >> 7) & 0x7f);
	ce->dom_star = star[F_DOM];
	ce->dow_star = star[F_DOW];
	if (!can_fire(ce)) {
		memset(ce, 0, sizeof(*ce));
		ps.field = F_DOM;
		return field_fail(&ps, start[F_DOM],
				  "no day chosen occurs in the months chosen, "
				  "so it never fires");
	}
	return 0;
}

/* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant) */
static long long
days_from_civil(long long y, unsigned m, unsigned d)
{
	long long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(long long z, long long *y, unsigned *m, unsigned *d)
{
	long long era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* 0 = Sunday */
static int
weekday_from_days(long long z)
{
	return (int)(z >= -4 ? (z + 4) % 7 : (z + 5) % 7 + 6);
}

static long long
floor_div(long long a, long long b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/*
 * The local wall-clock time of t as seconds on a clock without zones
 * ("naive": days_from_civil() * 86400 + time of day).
 */
static int
local_naive(long long t, long long *naive)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (localtime_r(&tt, &tm) == NULL)
		return OPS_E_INVALID;
	*naive =
		days_from_civil((long long)tm.tm_year + 1900,
				(unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday) *
			86400 +
		tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
	return 0;
}

static int
local_offset(long long t, long long *off)
{
	long long naive;
	int r = local_naive(t, &naive);

	if (r == 0)
		*off = naive - t;
	return r;
}

/*
 * The instant of the local wall-clock time `naive`: the first instant whose
 * local time is `naive` or later. That is the time itself, its first
 * occurrence when it occurs twice, and the end of the gap when it falls in
 * one. Zones change offset at most once within a day either side.
 */
static int
wall_to_instant(long long naive, long long *t)
{
	long long probe[3] = { naive - 86400, naive, naive + 86400 };
	long long off[3], best = 0, lo, hi, o, ln;
	bool found = false;
	int r;

	for (int i = 0; i < 3; i++) {
		r = local_offset(probe[i], &off[i]);
		if (r != 0)
			return r;
	}
	for (int i = 0; i < 3; i++) {
		long long cand = naive - off[i];

		r = local_offset(cand, &o);
		if (r != 0)
			return r;
		if (o == off[i] && (!found || cand < best)) {
			best = cand;
			found = true;
		}
	}
	if (found) {
		*t = best;
		return 0;
	}
	/* a gap: local time jumps over naive somewhere in [lo, hi] */
	lo = naive - off[2];
	hi = naive - off[0];
	r = local_naive(lo, &ln);
	if (r != 0)
		return r;
	if (lo >= hi || ln >= naive)
		return OPS_E_INVALID; /* not a zone this code knows */
	while (hi - lo > 1) {
		long long mid = lo + (hi - lo) / 2;

		r = local_naive(mid, &ln);
		if (r != 0)
			return r;
		if (ln >= naive)
			hi = mid;
		else
			lo = mid;
	}
	*t = hi;
	return 0;
}

static bool
day_matches(const struct cron_expr *ce, unsigned dom, int dow)
{
	bool dom_ok = (ce->days & (1u << dom)) != 0;
	bool dow_ok = (ce->weekdays & (1u << dow)) != 0;

	if (ce->dom_star || ce->dow_star)
		return dom_ok && dow_ok;
	return dom_ok || dow_ok;
}

int
cron_next(const struct cron_expr *ce, time_t after, time_t *next)
{
	long long local, start, day, last_day, t;
	int h0, m0, r;

	*next = -1;
	if ((long long)after < CRON_AFTER_MIN ||
	    (long long)after > CRON_AFTER_MAX)
		return OPS_E_INVALID;
	r = local_naive((long long)after, &local);
	if (r != 0)
		return r;
	/* wall-clock times from the minute after `after`'s, in order: the
	 * instants they map to never decrease, so the first one after
	 * `after` is the answer */
	start = (floor_div(local, 60) + 1) * 60;
	day = floor_div(start, 86400);
	h0 = (int)((start - day * 86400) / 3600);
	m0 = (int)((start - day * 86400) % 3600 / 60);
	for (last_day = day + CRON_SEARCH_DAYS; day <= last_day;
	     day++, h0 = 0, m0 = 0) {
		long long y;
		unsigned mon, dom;

		civil_from_days(day, &y, &mon, &dom);
		if (!(ce->months & (1u << mon))) {
			/* on to the last day of the month: the loop adds one */
			day += days_in_month(y, mon) - (int)dom;
			continue;
		}
		if (!day_matches(ce, dom, weekday_from_days(day)))
			continue;
		for (int h = h0; h < 24; h++) {
			if (!(ce->hours & (1u << h)))
				continue;
			for (int m = h == h0 ? m0 : 0; m < 60; m++) {
				if (!(ce->minutes & ((uint64_t)1 << m)))
					continue;
				r = wall_to_instant(
					day * 86400 + h * 3600 + m * 60, &t);
				if (r != 0)
					return r;
				if (t > (long long)after) {
					*next = (time_t)t;
					return 0;
				}
			}
		}
	}
	return OPS_E_NOTFOUND;
}

int
cron_next_n(const struct cron_expr *ce, time_t after, time_t *out, size_t n)
{
	int r;

	for (size_t i = 0; i < n; i++) {
		r = cron_next(ce, i == 0 ? after : out[i - 1], &out[i]);
		if (r != 0)
			return r;
	}
	return 0;
}

/* the lowest set bit at or above `from`, or -1 */
static int
next_bit(uint64_t bits, int from, int max)
{
	for (int v = from; v <= max; v++) {
		if (bits & ((uint64_t)1 << v))
			return v;
	}
	return -1;
}

/* a list of the set bits, runs of three or more as "a-b" */
static void
format_list(char *out, size_t size, uint64_t bits, int min, int max)
{
	size_t len = 0;
	int v = next_bit(bits, min, max);

	out[0] = '\0';
	while (v >= 0 && len < size) {
		int e = v;

		while (e < max && (bits & ((uint64_t)1 << (e + 1))))
			e++;
		if (e - v >= 2)
			len += (size_t)snprintf(out + len, size - len,
						"%s%d-%d", len > 0 ? "," : "",
						v, e);
		else if (e == v + 1)
			len += (size_t)snprintf(out + len, size - len,
						"%s%d,%d", len > 0 ? "," : "",
						v, e);
		else
			len += (size_t)snprintf(out + len, size - len, "%s%d",
						len > 0 ? "," : "", v);
		v = e < max ? next_bit(bits, e + 1, max) : -1;
	}
}

/* a field that began with '*': "*" or "*\/STEP" (its bits run min, min+STEP..)
 */
static void
format_star(char *out, size_t size, uint64_t bits, int min, int max)
{
	uint64_t all = 0;
	int second;

	for (int v = min; v <= max; v++)
		all |= (uint64_t)1 << v;
	if (bits == all) {
		snprintf(out, size, "*");
		return;
	}
	second = next_bit(bits, min + 1, max);
	snprintf(out, size, "*/%d", second < 0 ? max - min + 1 : second - min);
}

int
cron_format(const struct cron_expr *ce, char *buf, size_t size)
{
	uint64_t full_min = ((uint64_t)1 << 60) - 1;
	char f[NFIELDS][192];
	int n;

	if (ce->minutes == full_min)
		snprintf(f[F_MIN], sizeof(f[F_MIN]), "*");
	else
		format_list(f[F_MIN], sizeof(f[F_MIN]), ce->minutes, 0, 59);
	if (ce->hours == (1u << 24) - 1)
		snprintf(f[F_HOUR], sizeof(f[F_HOUR]), "*");
	else
		format_list(f[F_HOUR], sizeof(f[F_HOUR]), ce->hours, 0, 23);
	if (ce->dom_star)
		format_star(f[F_DOM], sizeof(f[F_DOM]), ce->days, 1, 31);
	else
		format_list(f[F_DOM], sizeof(f[F_DOM]), ce->days, 1, 31);
	if (ce->months == 0x1ffe)
		snprintf(f[F_MON], sizeof(f[F_MON]), "*");
	else
		format_list(f[F_MON], sizeof(f[F_MON]), ce->months, 1, 12);
	if (ce->dow_star)
		format_star(f[F_DOW], sizeof(f[F_DOW]), ce->weekdays, 0, 6);
	else
		format_list(f[F_DOW], sizeof(f[F_DOW]), ce->weekdays, 0, 6);
	n = snprintf(buf, size, "%s %s %s %s %s", f[F_MIN], f[F_HOUR], f[F_DOM],
		     f[F_MON], f[F_DOW]);
	if (n < 0 || (size_t)n >= size) {
		if (size > 0)
			buf[0] = '\0';
		return OPS_E_INVALID;
	}
	return n;
}
