#include "core/parse.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"

int
parse_long(const char *s, long min, long max, long *out)
{
	const char *p = s;
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return OPS_E_INVALID;
	if (*p == '-')
		p++;
	if (*p == '\0')
		return OPS_E_INVALID;
	for (const char *q = p; *q != '\0'; q++)
		if (!isdigit((unsigned char)*q))
			return OPS_E_INVALID;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return OPS_E_INVALID;
	*out = v;
	return 0;
}

int
parse_size(const char *s, long long min, long long max, long long *out)
{
	static const struct {
		const char *unit;
		int shift;
	} units[] = { { "", 0 },    { "B", 0 },	  { "kB", 10 },
		      { "MB", 20 }, { "GB", 30 }, { "TB", 40 } };
	const char *p = s;
	unsigned long long v = 0;

	if (s == NULL || !isdigit((unsigned char)*p))
		return OPS_E_INVALID;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (ULLONG_MAX - 9) / 10)
			return OPS_E_INVALID; /* too many digits */
		v = v * 10 + (unsigned)(*p - '0');
	}
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].unit) != 0)
			continue;
		if (v > ((unsigned long long)LLONG_MAX >> units[i].shift))
			return OPS_E_INVALID;
		v <<= units[i].shift;
		if ((long long)v < min || (long long)v > max)
			return OPS_E_INVALID;
		*out = (long long)v;
		return 0;
	}
	return OPS_E_INVALID;
}

void
format_size(long long n, char *out, size_t len)
{
	static const char *const units[] = { "B", "kB", "MB", "GB", "TB" };
	int u = 0;

	while (u < 4 && n != 0 && n % 1024 == 0) {
		n /= 1024;
		u++;
	}
	snprintf(out, len, "%lld%s", n, units[u]);
}

int
parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "1", "yes", "on" };
	static const char *const no[] = { "false", "0", "no", "off" };

	if (s == NULL)
		return OPS_E_INVALID;
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return OPS_E_INVALID;
}

int
days_in_month(int y, int m)
{
	static const int dm[] = {
		31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
	};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	if (m < 1 || m > 12)
		return 0;
	return m == 2 && leap ? 29 : dm[m - 1];
}

int
parse_date(const char *s, int *y, int *m, int *d)
{
	int yy, mm, dd;

	if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return OPS_E_INVALID;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
			return OPS_E_INVALID;
	yy = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 +
	     (s[3] - '0');
	mm = (s[5] - '0') * 10 + (s[6] - '0');
	dd = (s[8] - '0') * 10 + (s[9] - '0');
	if (yy < 1 || mm < 1 || mm > 12 || dd < 1 || dd > days_in_month(yy, mm))
		return OPS_E_INVALID;
	*y = yy;
	*m = mm;
	*d = dd;
	return 0;
}

bool
is_uuid(const char *s)
{
	if (s == NULL || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return true;
}
