/*
 * The one clock of the scheduler. Real by default; three variables turn it
 * into a virtual clock that every replica shares (tests and demos, never
 * silently): APEXOPS_CLOCK_START (RFC 3339: what the clock reads at the
 * epoch), APEXOPS_CLOCK_EPOCH (real unix seconds at which it reads START;
 * default: the moment of setup) and APEXOPS_CLOCK_SPEED (virtual seconds
 * per real second, default 1). Replicas given the same three values read
 * the same time. Leases, grace periods and deadlines count in this clock.
 *
 * Thread safety: ops_clock_setup() runs once at start, before threads;
 * the readers may be called from any thread.
 */
#ifndef OPS_CORE_CLOCK_H
#define OPS_CORE_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/err.h"

/*
 * Configure the clock from the three variables' values (NULL or "" each
 * means unset). START unset: the real clock (EPOCH and SPEED must then be
 * unset too). Returns 0 or OPS_E_CONFIG naming the variable and what is
 * allowed; the clock is unchanged on failure.
 */
int ops_clock_setup(const char *start, const char *epoch, const char *speed,
		    struct ops_err *err) __attribute__((warn_unused_result));

/* Back to the real clock (tests). */
void ops_clock_reset(void);

/* Now, in (possibly virtual) unix seconds with fractions. */
double ops_clock_now(void);
/* Is the clock virtual? */
bool ops_clock_is_virtual(void);
/* Virtual seconds per real second (1 for the real clock). */
double ops_clock_speed(void);
/* Real milliseconds until the clock reads t (0 when already past). */
long ops_clock_ms_until(double t);
/* "virtual clock: 2026-03-29T00:00:00Z at epoch 1767225600, speed 60x"
 * or "real clock" into buf; returns buf. */
const char *ops_clock_describe(char *buf, size_t n);

/*
 * Parse an RFC 3339 timestamp ("2026-03-29T01:30:00Z",
 * "2026-03-29T01:30:00.250+02:00"; a space may stand for the 'T') into
 * unix seconds. Returns 0 or OPS_E_INVALID.
 */
int ops_parse_rfc3339(const char *s, double *out)
	__attribute__((warn_unused_result));
/* Format unix seconds t as RFC 3339 UTC with seconds ("...T02:30:00Z");
 * buf needs 21 bytes. Returns buf. */
const char *ops_format_rfc3339(time_t t, char *buf, size_t n);

#endif
