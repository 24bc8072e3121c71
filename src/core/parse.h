/*
 * Strict parsers for values from users: the whole text must match, no
 * prefixes ("18abc"), no exponents ("1e3"), no blanks. Each returns 0 or
 * OPS_E_INVALID and never prints.
 */
#ifndef OPS_CORE_PARSE_H
#define OPS_CORE_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* A decimal integer in [min, max]: an optional '-' then digits only. */
int parse_long(const char *s, long min, long max, long *out)
	__attribute__((warn_unused_result));
/*
 * A size in bytes in [min, max]: digits, then an optional unit (no blank) in
 * PostgreSQL's spelling and multiples (B, kB, MB, GB, TB; 1 kB = 1024 B),
 * so "16MB" means what max_wal_size = 16MB means. No sign, no fraction.
 */
int parse_size(const char *s, long long min, long long max, long long *out)
	__attribute__((warn_unused_result));
/* n bytes as parse_size reads them back, in the largest unit that divides
 * it exactly ("16MB", "8kB", "100000B"); out is always terminated. */
void format_size(long long n, char *out, size_t len);
/* "true|false|1|0|yes|no|on|off" (case-insensitive). */
int parse_bool(const char *s, bool *out) __attribute__((warn_unused_result));
/* A real calendar date YYYY-MM-DD (zero-padded, 1..9999, 2025-02-30 fails). */
int parse_date(const char *s, int *y, int *m, int *d)
	__attribute__((warn_unused_result));
/* A UUID in 8-4-4-4-12 hex form (either case). */
bool is_uuid(const char *s);
/* Days in month m (1..12) of year y. */
int days_in_month(int y, int m);

#endif
