/* The scheduler's clock; see clock.h. */
#include "core/clock.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/parse.h"

static bool clock_virtual;
static double clock_start, clock_epoch, clock_speed = 1.0;

static double
real_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int
ops_parse_rfc3339(const char *s, double *out)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0;
	double frac = 0;
	const char *p;
	struct tm tm;
	time_t t;

	if (s == NULL || strlen(s) < 20)
		return OPS_E_INVALID;
	if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
	    s[7] != '-' || digits(s + 8, 2, &d) ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) ||
	    s[16] != ':' || digits(s + 17, 2, &sec))
		return OPS_E_INVALID;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 ||
	    d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59)
		return OPS_E_INVALID;
	p = s + 19;
	if (*p == '.') {
		double scale = 0.1;

		p++;
		if (!isdigit((unsigned char)*p))
			return OPS_E_INVALID;
		while (isdigit((unsigned char)*p)) {
			frac += (*p - '0') * scale;
			scale /= 10;
			p++;
		}
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1;

		if (digits(p + 1, 2, &oh) || p[3] != ':' ||
		    digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return OPS_E_INVALID;
		oh *= sign;
		om *= sign;
		p += 6;
	} else {
		return OPS_E_INVALID; /* an offset is required */
	}
	if (*p != '\0')
		return OPS_E_INVALID;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	*out = (double)t + frac - (double)(oh * 3600 + om * 60);
	return 0;
}

const char *
ops_format_rfc3339(time_t t, char *buf, size_t n)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, n, "?");
	return buf;
}

static bool
unset(const char *v)
{
	return v == NULL || v[0] == '\0';
}

int
ops_clock_setup(const char *start, const char *epoch, const char *speed,
		struct ops_err *err)
{
	double s, e, sp = 1.0;

	if (unset(start)) {
		if (!unset(epoch) || !unset(speed))
			return ops_fail(err, OPS_E_CONFIG, false,
					"APEXOPS_CLOCK_%s is set without "
					"APEXOPS_CLOCK_START: set START (RFC "
					"3339) for a virtual clock, or unset "
					"both",
					unset(epoch) ? "SPEED" : "EPOCH");
		ops_clock_reset();
		return 0;
	}
	if (ops_parse_rfc3339(start, &s) != 0)
		return ops_fail(err, OPS_E_CONFIG, false,
				"APEXOPS_CLOCK_START='%s': expected an RFC "
				"3339 time such as 2026-03-29T01:00:00Z",
				start);
	e = real_now();
	if (!unset(epoch)) {
		char *end = NULL;

		/* digits, optionally a fraction: 1796115367 or
		 * 1796115367.25 (date +%s.%N) */
		e = strtod(epoch, &end);
		if (!isdigit((unsigned char)epoch[0]) || end == epoch ||
		    *end != '\0' || strpbrk(epoch, "eExXpP") != NULL ||
		    !isfinite(e) || e > 253402300799.0)
			return ops_fail(err, OPS_E_CONFIG, false,
					"APEXOPS_CLOCK_EPOCH='%s': expected "
					"unix seconds, such as 1796115367 or "
					"1796115367.25",
					epoch);
	}
	if (!unset(speed)) {
		char *end = NULL;

		sp = strtod(speed, &end);
		if (end == speed || *end != '\0' || !isfinite(sp) || sp <= 0 ||
		    sp > 100000 || isspace((unsigned char)*speed))
			return ops_fail(err, OPS_E_CONFIG, false,
					"APEXOPS_CLOCK_SPEED='%s': expected a "
					"number of virtual seconds per real "
					"second, above 0 and at most 100000",
					speed);
	}
	clock_virtual = true;
	clock_start = s;
	clock_epoch = e;
	clock_speed = sp;
	return 0;
}

void
ops_clock_reset(void)
{
	clock_virtual = false;
	clock_start = clock_epoch = 0;
	clock_speed = 1.0;
}

double
ops_clock_now(void)
{
	if (!clock_virtual)
		return real_now();
	return clock_start + (real_now() - clock_epoch) * clock_speed;
}

bool
ops_clock_is_virtual(void)
{
	return clock_virtual;
}

double
ops_clock_speed(void)
{
	return clock_speed;
}

long
ops_clock_ms_until(double t)
{
	double d = (t - ops_clock_now()) / clock_speed;

	if (d <= 0)
		return 0;
	if (d > 86400.0)
		d = 86400.0;
	return (long)ceil(d * 1000.0);
}

const char *
ops_clock_describe(char *buf, size_t n)
{
	char s[32];

	if (!clock_virtual) {
		snprintf(buf, n, "real clock");
		return buf;
	}
	ops_format_rfc3339((time_t)clock_start, s, sizeof(s));
	snprintf(buf, n, "virtual clock: %s at epoch %.0f, speed %gx", s,
		 clock_epoch, clock_speed);
	return buf;
}
