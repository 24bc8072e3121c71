/*
 * Unit tests of cron expressions (jobs/cron_expr.h): what parses and to
 * what, what is refused and with which message, and fire times in several
 * zones, on their DST days, on leap days and with Vixie's day rules. Each
 * table row is checked as one string, so a failure names its row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include "jobs/cron_expr.h"

static void
set_zone(const char *zone)
{
	assert_int_equal(setenv("TZ", zone, 1), 0);
	tzset();
}

/* "2026-03-29T01:00:00Z" to seconds since the epoch */
static time_t
utc(const char *iso)
{
	struct tm tm;
	char *end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
	assert_non_null(end);
	assert_int_equal(*end, '\0');
	return timegm(&tm);
}

static void
iso(time_t t, char *buf, size_t size)
{
	struct tm tm;

	assert_non_null(gmtime_r(&t, &tm));
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
test_parse_valid(void **state)
{
	static const struct {
		const char *in, *canonical;
	} cases[] = {
		{ "* * * * *", "* * * * *" },
		{ "*/15 * * * *", "0,15,30,45 * * * *" },
		{ "1-30/5 * * * *", "1,6,11,16,21,26 * * * *" },
		{ "5/10 * * * *", "5,15,25,35,45,55 * * * *" },
		{ "5/1 22/1 * * *", "5-59 22,23 * * *" },
		{ "0 9-17 * * mon-fri", "0 9-17 * * 1-5" },
		{ "0 0 * jan,JUL,Dec Sun", "0 0 * 1,7,12 0" },
		{ "0 0 * feb-apr/2 *", "0 0 * 2,4 *" },
		{ "0 0 * * 7", "0 0 * * 0" },
		{ "0 0 * * 5-7", "0 0 * * 0,5,6" },
		{ "0 0 * * fri/1", "0 0 * * 0,5,6" },
		{ "0 0 * * 0-7", "0 0 * * 0-6" },
		{ "0 0 */2 * *", "0 0 */2 * *" },
		{ "0 0 */31 * *", "0 0 */31 * *" },
		{ "0 0 * * */7", "0 0 * * */7" },
		{ "0 0 * * */2", "0 0 * * */2" },
		{ "0 0 1-31 * *", "0 0 1-31 * *" },
		{ "*/60 */24 * */12 *", "0 0 * 1 *" },
		{ "00 07 01 * *", "0 7 1 * *" },
		{ "  0\t0  1 * *  ", "0 0 1 * *" },
		{ "0 0 29 2 *", "0 0 29 2 *" },
		{ "0 0 31 * *", "0 0 31 * *" },
		{ "0 0 30 2 1", "0 0 30 2 1" }, /* never the 30th: Mondays */
		{ "59 23 31 12 6", "59 23 31 12 6" },
		{ "1,2,4,5,7,8,10,11,13,14,16,17,19,20,22,23,25,26,28,29,31,32,"
		  "34,35,37,38,40,41,43,44,46,47,49,50,52,53,55,56,58,59 "
		  "0,1,3,4,6,7,9,10,12,13,15,16,18,19,21,22 "
		  "1,2,4,5,7,8,10,11,13,14,16,17,19,20,22,23,25,26,28,29,31 "
		  "1,2,4,5,7,8,10,11 0,1,3,4,6",
		  "1,2,4,5,7,8,10,11,13,14,16,17,19,20,22,23,25,26,28,29,31,32,"
		  "34,35,37,38,40,41,43,44,46,47,49,50,52,53,55,56,58,59 "
		  "0,1,3,4,6,7,9,10,12,13,15,16,18,19,21,22 "
		  "1,2,4,5,7,8,10,11,13,14,16,17,19,20,22,23,25,26,28,29,31 "
		  "1,2,4,5,7,8,10,11 0,1,3,4,6" },
		{ "@hourly", "0 * * * *" },
		{ "@daily", "0 0 * * *" },
		{ "@midnight", "0 0 * * *" },
		{ "@weekly", "0 0 * * 0" },
		{ "@monthly", "0 0 1 * *" },
		{ "@yearly", "0 0 1 1 *" },
		{ "@annually ", "0 0 1 1 *" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cron_expr ce, again;
		struct ops_err err = OPS_ERR_INIT;
		char got[600], want[600], text[CRON_FORMAT_MAX];
		int r = cron_parse(cases[i].in, &ce, &err);

		snprintf(want, sizeof(want), "%s -> %s", cases[i].in,
			 cases[i].canonical);
		if (r != 0) {
			snprintf(got, sizeof(got), "%s -> error %s",
				 cases[i].in, err.msg);
			assert_string_equal(got, want);
		}
		assert_true(cron_format(&ce, text, sizeof(text)) > 0);
		snprintf(got, sizeof(got), "%s -> %s", cases[i].in, text);
		assert_string_equal(got, want);
		/* the canonical text gives the same expression back */
		assert_int_equal(cron_parse(text, &again, NULL), 0);
		assert_memory_equal(&ce, &again, sizeof(ce));
	}
}

static void
test_parse_invalid(void **state)
{
	static const struct {
		const char *in, *msg;
	} cases[] = {
		{ "", "empty cron expression: give five fields (minute hour "
		      "day-of-month month day-of-week) or a macro such as "
		      "@daily" },
		{ " \t ", "empty cron expression: give five fields (minute "
			  "hour day-of-month month day-of-week) or a macro "
			  "such as @daily" },
		{ "* * * *", "field 5 (day-of-week) is missing at position 8: "
			     "a cron expression has five (minute hour "
			     "day-of-month month day-of-week)" },
		{ "*", "field 2 (hour) is missing at position 2: a cron "
		       "expression has five (minute hour day-of-month month "
		       "day-of-week)" },
		{ "0 * * * * *", "a sixth field at position 11: a cron "
				 "expression has five (minute hour "
				 "day-of-month month day-of-week)" },
		{ "0 24 * * *",
		  "field 2 (hour): 24 is out of range 0-23 at position 3" },
		{ "60 * * * *",
		  "field 1 (minute): 60 is out of range 0-59 at position 1" },
		{ "* * 32 * *", "field 3 (day-of-month): 32 is out of range "
				"1-31 at position 5" },
		{ "* * 0 * *", "field 3 (day-of-month): 0 is out of range "
			       "1-31 at position 5" },
		{ "* * * 13 *",
		  "field 4 (month): 13 is out of range 1-12 at position 7" },
		{ "* * * 0 *",
		  "field 4 (month): 0 is out of range 1-12 at position 7" },
		{ "* * * * 8", "field 5 (day-of-week): 8 is out of range 0-7 "
			       "at position 9" },
		{ "1-70 * * * *",
		  "field 1 (minute): 70 is out of range 0-59 at position 3" },
		{ "99999999999999999999999 * * * *",
		  "field 1 (minute): 9999999999999999... is out of range 0-59 "
		  "at position 1" },
		{ "*/0 * * * *", "field 1 (minute): step 0 is out of range "
				 "1-60 at position 3" },
		{ "* */25 * * *", "field 2 (hour): step 25 is out of range "
				  "1-24 at position 5" },
		{ "* * * * 1-5/8", "field 5 (day-of-week): step 8 is out of "
				   "range 1-7 at position 13" },
		{ "*/ * * * *",
		  "field 1 (minute): '/' needs a step (1-60) at position 3" },
		{ "1/x * * * *", "field 1 (minute): 'x' is not a number at "
				 "position 3" },
		{ "5-1 * * * *",
		  "field 1 (minute): range 5-1 runs backwards at position 1" },
		{ "* * * dec-jan *", "field 4 (month): range dec-jan runs "
				     "backwards at position 7" },
		{ "1,,2 * * * *",
		  "field 1 (minute): empty list item at position 3" },
		{ "1, * * * *",
		  "field 1 (minute): empty list item at position 3" },
		{ ",1 * * * *",
		  "field 1 (minute): empty list item at position 1" },
		{ "1- * * * *",
		  "field 1 (minute): '-' needs a second value at position 3" },
		{ "1-/2 * * * *",
		  "field 1 (minute): '-' needs a second value at position 3" },
		{ "*,5 * * * *", "field 1 (minute): '*' must stand alone in "
				 "its field (or as \"*/STEP\") at position 1" },
		{ "5,* * * * *", "field 1 (minute): '*' must stand alone in "
				 "its field (or as \"*/STEP\") at position 3" },
		{ "** * * * *", "field 1 (minute): '*' must stand alone in "
				"its field (or as \"*/STEP\") at position 2" },
		{ "x * * * *",
		  "field 1 (minute): 'x' is not a number at position 1" },
		{ "L * * * *",
		  "field 1 (minute): 'L' is not a number at position 1" },
		{ "* * * foo *", "field 4 (month): 'foo' is not a number or a "
				 "month name (jan-dec) at position 7" },
		{ "* * * january *", "field 4 (month): 'january' is not a "
				     "number or a month name (jan-dec) at "
				     "position 7" },
		{ "* * * * jan", "field 5 (day-of-week): 'jan' is not a number "
				 "or a weekday name (sun-sat) at position 9" },
		{ "* jan * * *",
		  "field 2 (hour): 'jan' is not a number at position 3" },
		{ "1#2 * * * *",
		  "field 1 (minute): unexpected '#' at position 2" },
		{ "* * * * 5L",
		  "field 5 (day-of-week): unexpected 'L' at position 10" },
		{ "1.5 * * * *",
		  "field 1 (minute): unexpected '.' at position 2" },
		{ "-1 * * * *",
		  "field 1 (minute): unexpected '-' at position 1" },
		{ "\x01 * * * *",
		  "field 1 (minute): unexpected byte 0x01 at position 1" },
		{ "0 0 * * *\n", "field 5 (day-of-week): unexpected byte 0x0a "
				 "at position 10" },
		{ "0 0 30 2 *", "field 3 (day-of-month): no day chosen occurs "
				"in the months chosen, so it never fires at "
				"position 5" },
		{ "0 0 31 4,6,9,11 *", "field 3 (day-of-month): no day chosen "
				       "occurs in the months chosen, so it "
				       "never fires at position 5" },
		{ "0 0 30,31 2 */2", "field 3 (day-of-month): no day chosen "
				     "occurs in the months chosen, so it "
				     "never fires at position 5" },
		{ "@reboot", "unknown macro '@reboot' at position 1: use "
			     "@yearly, @annually, @monthly, @weekly, @daily, "
			     "@midnight or @hourly" },
		{ "@DAILY", "unknown macro '@DAILY' at position 1: use "
			    "@yearly, @annually, @monthly, @weekly, @daily, "
			    "@midnight or @hourly" },
		{ " @daily 1",
		  "unexpected text after the macro at position 9" },
		{ "0 @daily * * *",
		  "field 2 (hour): unexpected '@' at position 3" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cron_expr ce, zero;
		struct ops_err err = OPS_ERR_INIT;
		char got[700], want[700];
		int r;

		memset(&ce, 0x5a, sizeof(ce));
		memset(&zero, 0, sizeof(zero));
		r = cron_parse(cases[i].in, &ce, &err);
		snprintf(want, sizeof(want), "'%s': %d %s", cases[i].in,
			 OPS_E_INVALID, cases[i].msg);
		snprintf(got, sizeof(got), "'%s': %d %s", cases[i].in, r,
			 err.msg);
		assert_string_equal(got, want);
		assert_int_equal(err.code, OPS_E_INVALID);
		assert_memory_equal(&ce, &zero, sizeof(ce)); /* cleared */
		/* a NULL err is allowed */
		assert_int_equal(cron_parse(cases[i].in, &ce, NULL),
				 OPS_E_INVALID);
	}
}

static void
test_parse_null(void **state)
{
	struct cron_expr ce;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	assert_int_equal(cron_parse(NULL, &ce, &err), OPS_E_INVALID);
	assert_string_equal(err.msg, "no cron expression given");
}

static void
test_next(void **state)
{
	static const struct {
		const char *zone, *expr, *after;
		const char
			*want; /* the next fire times, UTC, space-separated */
	} cases[] = {
		/* strictly after, on whole minutes */
		{ "UTC", "* * * * *", "2026-05-01T12:00:00Z",
		  "2026-05-01T12:01:00Z 2026-05-01T12:02:00Z" },
		{ "UTC", "* * * * *", "2026-05-01T12:00:59Z",
		  "2026-05-01T12:01:00Z 2026-05-01T12:02:00Z" },
		{ "UTC", "*/15 * * * *", "2026-12-31T23:50:00Z",
		  "2027-01-01T00:00:00Z 2027-01-01T00:15:00Z" },
		{ "UTC", "@weekly", "2026-05-06T10:00:00Z", /* a Wednesday */
		  "2026-05-10T00:00:00Z 2026-05-17T00:00:00Z" },
		{ "UTC", "@monthly", "2026-01-31T00:00:00Z",
		  "2026-02-01T00:00:00Z 2026-03-01T00:00:00Z" },
		{ "UTC", "0 0 1 1 *", "1969-06-01T00:00:00Z",
		  "1970-01-01T00:00:00Z 1971-01-01T00:00:00Z" },
		/* leap days: 2100 is not a leap year */
		{ "UTC", "0 0 29 2 *", "2025-01-01T00:00:00Z",
		  "2028-02-29T00:00:00Z 2032-02-29T00:00:00Z" },
		{ "UTC", "0 0 29 2 *", "2096-03-01T00:00:00Z",
		  "2104-02-29T00:00:00Z 2108-02-29T00:00:00Z" },
		{ "UTC", "0 12 29 2 0", "2026-01-01T00:00:00Z", /* or Sunday */
		  "2026-02-01T12:00:00Z 2026-02-08T12:00:00Z "
		  "2026-02-15T12:00:00Z 2026-02-22T12:00:00Z "
		  "2027-02-07T12:00:00Z" },
		{ "UTC", "0 0 29 2 */7",
		  "2025-01-01T00:00:00Z", /* and Sunday */
		  "2032-02-29T00:00:00Z 2060-02-29T00:00:00Z" },
		/* months without a 31st are skipped */
		{ "UTC", "0 0 31 * *", "2026-01-31T00:00:00Z",
		  "2026-03-31T00:00:00Z 2026-05-31T00:00:00Z "
		  "2026-07-31T00:00:00Z 2026-08-31T00:00:00Z" },
		/* Vixie: both restricted, either matches (13th or Friday) */
		{ "UTC", "0 0 13 * 5", "2026-04-01T00:00:00Z",
		  "2026-04-03T00:00:00Z 2026-04-10T00:00:00Z "
		  "2026-04-13T00:00:00Z 2026-04-17T00:00:00Z" },
		{ "UTC", "0 0 13 * fri", "2026-04-01T00:00:00Z",
		  "2026-04-03T00:00:00Z 2026-04-10T00:00:00Z "
		  "2026-04-13T00:00:00Z 2026-04-17T00:00:00Z" },
		/* a field beginning with '*': both must match */
		{ "UTC", "0 0 */2 * 5", "2026-04-01T00:00:00Z",
		  "2026-04-03T00:00:00Z 2026-04-17T00:00:00Z "
		  "2026-05-01T00:00:00Z" },
		{ "UTC", "0 0 1 * */2", "2026-01-01T00:00:00Z",
		  "2026-02-01T00:00:00Z 2026-03-01T00:00:00Z "
		  "2026-08-01T00:00:00Z" },
		{ "UTC", "0 0 13 * *", "2026-04-01T00:00:00Z",
		  "2026-04-13T00:00:00Z 2026-05-13T00:00:00Z" },
		{ "UTC", "0 0 * * 7", "2026-04-01T00:00:00Z",
		  "2026-04-05T00:00:00Z 2026-04-12T00:00:00Z" },
		{ "Asia/Kolkata", "0 9 * * *", "2026-03-29T00:00:00Z",
		  "2026-03-29T03:30:00Z 2026-03-30T03:30:00Z" },
		/* Berlin, spring forward 2026-03-29 02:00 CET -> 03:00 CEST:
		 * 02:30 does not exist, fires once at 03:00 CEST */
		{ "Europe/Berlin", "30 2 * * *", "2026-03-28T12:00:00Z",
		  "2026-03-29T01:00:00Z 2026-03-30T00:30:00Z "
		  "2026-03-31T00:30:00Z" },
		{ "Europe/Berlin", "30 2 * * *", "2026-03-29T00:59:59Z",
		  "2026-03-29T01:00:00Z 2026-03-30T00:30:00Z" },
		{ "Europe/Berlin", "30 2 * * *", "2026-03-29T01:00:00Z",
		  "2026-03-30T00:30:00Z" },
		/* every gap time fires once, together */
		{ "Europe/Berlin", "*/15 2,3 * * *", "2026-03-29T00:00:00Z",
		  "2026-03-29T01:00:00Z 2026-03-29T01:15:00Z "
		  "2026-03-29T01:30:00Z 2026-03-29T01:45:00Z "
		  "2026-03-30T00:00:00Z" },
		/* Berlin, fall back 2026-10-25 03:00 CEST -> 02:00 CET: 02:30
		 * occurs twice, fires at the first (CEST) */
		{ "Europe/Berlin", "30 2 * * *", "2026-10-24T12:00:00Z",
		  "2026-10-25T00:30:00Z 2026-10-26T01:30:00Z "
		  "2026-10-27T01:30:00Z" },
		{ "Europe/Berlin", "30 2 * * *", "2026-10-25T00:30:00Z",
		  "2026-10-26T01:30:00Z" },
		{ "Europe/Berlin", "30 2 * * *", "2026-10-25T01:00:00Z",
		  "2026-10-26T01:30:00Z" },
		{ "Europe/Berlin", "0 * * * *", "2026-10-24T23:30:00Z",
		  "2026-10-25T00:00:00Z 2026-10-25T02:00:00Z "
		  "2026-10-25T03:00:00Z" },
		/* New York, spring forward 2026-03-08 02:00 EST -> 03:00 EDT */
		{ "America/New_York", "30 2 * * *", "2026-03-07T12:00:00Z",
		  "2026-03-08T07:00:00Z 2026-03-09T06:30:00Z "
		  "2026-03-10T06:30:00Z" },
		{ "America/New_York", "0 2 * * *", "2026-03-07T12:00:00Z",
		  "2026-03-08T07:00:00Z 2026-03-09T06:00:00Z" },
		/* New York, fall back 2026-11-01 02:00 EDT -> 01:00 EST: 02:30
		 * occurs once; 01:30 twice and fires at the first (EDT) */
		{ "America/New_York", "30 2 * * *", "2026-10-31T12:00:00Z",
		  "2026-11-01T07:30:00Z 2026-11-02T07:30:00Z" },
		{ "America/New_York", "30 1 * * *", "2026-10-31T12:00:00Z",
		  "2026-11-01T05:30:00Z 2026-11-02T06:30:00Z" },
		{ "America/New_York", "30 1 * * *", "2026-11-01T06:15:00Z",
		  "2026-11-02T06:30:00Z" },
		{ "America/New_York", "*/30 * * * *", "2026-11-01T05:00:00Z",
		  "2026-11-01T05:30:00Z 2026-11-01T07:00:00Z "
		  "2026-11-01T07:30:00Z" },
		/* Lord Howe, 30-minute DST: 2026-10-04 02:00 -> 02:30 (+11) */
		{ "Australia/Lord_Howe", "*/15 2 * * *", "2026-10-03T12:00:00Z",
		  "2026-10-03T15:30:00Z 2026-10-03T15:45:00Z "
		  "2026-10-04T15:00:00Z" },
		/* and 2026-04-05 02:00 (+11) -> 01:30 (+10:30) */
		{ "Australia/Lord_Howe", "45 1 * * *", "2026-04-04T12:00:00Z",
		  "2026-04-04T14:45:00Z 2026-04-05T15:15:00Z" },
		/* Sydney: 2026-10-04 02:00 AEST -> 03:00 AEDT */
		{ "Australia/Sydney", "30 2 4 10 *", "2026-01-01T00:00:00Z",
		  "2026-10-03T16:00:00Z 2027-10-03T15:30:00Z" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cron_expr ce;
		struct ops_err err = OPS_ERR_INIT;
		time_t next[8], one;
		char got[600], want[600], t[32];
		size_t n = 0, len;

		set_zone(cases[i].zone);
		for (const char *p = cases[i].want; p != NULL;
		     p = strchr(p + 1, ' '))
			n++;
		assert_true(n <= 8);
		snprintf(want, sizeof(want), "%s '%s' after %s: %s",
			 cases[i].zone, cases[i].expr, cases[i].after,
			 cases[i].want);
		len = (size_t)snprintf(got, sizeof(got),
				       "%s '%s' after %s:", cases[i].zone,
				       cases[i].expr, cases[i].after);
		if (cron_parse(cases[i].expr, &ce, &err) != 0) {
			snprintf(got + len, sizeof(got) - len, " error %s",
				 err.msg);
			assert_string_equal(got, want);
		}
		assert_int_equal(cron_next_n(&ce, utc(cases[i].after), next, n),
				 0);
		for (size_t k = 0; k < n; k++) {
			iso(next[k], t, sizeof(t));
			len += (size_t)snprintf(got + len, sizeof(got) - len,
						"%s%s", k == 0 ? " " : " ", t);
		}
		assert_string_equal(got, want);
		/* cron_next() alone gives the first */
		assert_int_equal(cron_next(&ce, utc(cases[i].after), &one), 0);
		assert_int_equal(one, next[0]);
	}
	set_zone("UTC");
}

static void
test_next_limits(void **state)
{
	struct cron_expr ce;
	time_t next = 0;

	(void)state;
	set_zone("UTC");
	assert_int_equal(cron_parse("* * * * *", &ce, NULL), 0);
	/* beyond the years cron_next() accepts */
	assert_int_equal(cron_next(&ce, (time_t)300000000000LL, &next),
			 OPS_E_INVALID);
	assert_int_equal(next, -1);
	assert_int_equal(cron_next(&ce, (time_t)-70000000000LL, &next),
			 OPS_E_INVALID);
	assert_int_equal(next, -1);
	/* a struct cron_parse() never makes: no day can match */
	memset(&ce, 0, sizeof(ce));
	ce.minutes = 1;
	ce.hours = 1;
	ce.months = 1u << 2;
	ce.days = 1u << 30;
	ce.dow_star = true;
	ce.weekdays = 0x7f;
	assert_int_equal(cron_next(&ce, 0, &next), OPS_E_NOTFOUND);
	assert_int_equal(next, -1);
}

static void
test_format_small_buffer(void **state)
{
	struct cron_expr ce;
	char buf[16] = "x";

	(void)state;
	assert_int_equal(cron_parse("0 0 1 1 *", &ce, NULL), 0);
	assert_int_equal(cron_format(&ce, buf, 9), OPS_E_INVALID);
	assert_string_equal(buf, "");
	assert_int_equal(cron_format(&ce, buf, 0), OPS_E_INVALID);
	assert_int_equal(cron_format(&ce, buf, 10), 9);
	assert_string_equal(buf, "0 0 1 1 *");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_invalid),
		cmocka_unit_test(test_parse_null),
		cmocka_unit_test(test_next),
		cmocka_unit_test(test_next_limits),
		cmocka_unit_test(test_format_small_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
