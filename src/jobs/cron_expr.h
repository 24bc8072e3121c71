/*
 * Cron expressions for the scheduler: parse the five standard fields and
 * compute fire times in the process's local time zone.
 *
 * Syntax (Vixie cron's): "minute hour day-of-month month day-of-week",
 * fields separated by spaces or tabs. Each field is "*", "*\/STEP", or a
 * comma list of VALUE, VALUE-VALUE, VALUE-VALUE/STEP and VALUE/STEP (which
 * means VALUE-LAST/STEP, as in Vixie cron: "5/10" in the minute field is
 * 5,15,...,55). Ranges: minute 0-59, hour 0-23, day-of-month 1-31, month
 * 1-12 or jan-dec, day-of-week 0-7 or sun-sat (0 and 7 are Sunday); names
 * in any case. A STEP is 1 to the size of the field's range. "*" stands
 * alone in its field. Macros: @yearly and @annually (0 0 1 1 *), @monthly
 * (0 0 1 * *), @weekly (0 0 * * 0), @daily and @midnight (0 0 * * *),
 * @hourly (0 * * * *).
 *
 * Day-of-month and day-of-week combine as in Vixie cron: when both are
 * restricted (neither field begins with '*') a day matches when either
 * does; otherwise it must match both ("*\/2" counts as beginning with '*').
 *
 * Fire times are whole minutes in the local time zone that TZ names (the
 * scheduler sets TZ from CRON_TZ and calls tzset() once at start, before
 * any thread; one zone for every schedule). Daylight saving time:
 *   - a local time that does not exist (spring forward: 02:30 on the day
 *     clocks jump from 02:00 to 03:00) fires once, at the first valid
 *     instant after it (03:00); several such times fire once together;
 *   - a local time that occurs twice (fall back: 01:30 on the day clocks
 *     go from 02:00 back to 01:00) fires once, at its first occurrence.
 * Only localtime_r() reads the zone.
 *
 * Thread safety: every function may be called from several threads at
 * once, as long as no thread changes TZ meanwhile.
 */
#ifndef OPS_JOBS_CRON_EXPR_H
#define OPS_JOBS_CRON_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/err.h"

/* A parsed expression: plain data, owned by the caller, copied freely. */
struct cron_expr {
	uint64_t minutes; /* bit n: minute n, 0-59 */
	uint32_t hours;	  /* bit n: hour n, 0-23 */
	uint32_t days;	  /* bit n: day of month n, 1-31 */
	uint16_t months;  /* bit n: month n, 1-12 */
	uint8_t weekdays; /* bit n: weekday n, 0-6, 0 = Sunday */
	bool dom_star;	  /* the day-of-month field began with '*' */
	bool dow_star;	  /* the day-of-week field began with '*' */
};

/* Longest text cron_format() writes, with its NUL. */
#define CRON_FORMAT_MAX 320

/*
 * Parse text (a C string; NULL is refused) into *ce. Returns 0, or
 * OPS_E_INVALID with err (may be NULL) saying which field, what is wrong
 * and the 1-based character position, e.g. "field 2 (hour): 24 is out of
 * range 0-23 at position 3". An expression that can never fire ("0 0 30 2
 * *") is refused too. ce must not be NULL; it is cleared on failure.
 */
int cron_parse(const char *text, struct cron_expr *ce, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * The first fire time strictly after `after`, in *next (set to -1 on
 * failure; ce and next must not be NULL). Returns 0; OPS_E_INVALID when `after`
 * cannot be converted to local time or the answer would not fit a time_t;
 * OPS_E_NOTFOUND when nothing fires within 400 years (cannot happen for an
 * expression that cron_parse() accepted).
 */
int cron_next(const struct cron_expr *ce, time_t after, time_t *next)
	__attribute__((warn_unused_result));

/*
 * The n fire times after `after`, in increasing order, into out[0..n-1].
 * Returns 0 or cron_next()'s error (out is then partly filled).
 */
int cron_next_n(const struct cron_expr *ce, time_t after, time_t *out, size_t n)
	__attribute__((warn_unused_result));

/*
 * Write ce (not NULL) as a canonical five-field expression ("0,30 9-17 * *
 * 1-5") into buf; CRON_FORMAT_MAX bytes always suffice. Parsing the text gives
 * ce back. Returns the length, or OPS_E_INVALID when size is too small (buf
 * then holds "" if size > 0).
 */
int cron_format(const struct cron_expr *ce, char *buf, size_t size);

#endif
