/*
 * libFuzzer target for the strict value parsers of core/parse.h (flag and
 * environment values). Each result is checked against the text it came
 * from: what passes prints back to itself (less leading zeros and a unit),
 * lies in the range asked for, and a refusal leaves the output untouched.
 */
#include <ctype.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), back[64];
	long l = -7;
	long long ll = -7;
	int y = -7, m = -7, d = -7;
	bool b;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	if (parse_long(text, -1000000, 1000000, &l) == 0) {
		if (l < -1000000 || l > 1000000)
			__builtin_trap();
	} else if (l != -7) {
		__builtin_trap();
	}

	if (parse_size(text, 1, LLONG_MAX, &ll) == 0) {
		const char *u = text;

		if (ll < 1)
			__builtin_trap();
		while (isdigit((unsigned char)*u))
			u++;
		/* digits, then one of the units, then nothing */
		if (u == text ||
		    (strcmp(u, "") != 0 && strcmp(u, "B") != 0 &&
		     strcmp(u, "kB") != 0 && strcmp(u, "MB") != 0 &&
		     strcmp(u, "GB") != 0 && strcmp(u, "TB") != 0))
			__builtin_trap();
		if (*u == '\0' || *u == 'B') {
			/* in bytes: the value prints back as the digits */
			const char *z = text;

			while (*z == '0' && isdigit((unsigned char)z[1]))
				z++;
			snprintf(back, sizeof(back), "%lld", ll);
			if (strncmp(back, z, (size_t)(u - z)) != 0 ||
			    strlen(back) != (size_t)(u - z))
				__builtin_trap();
		} else if (ll % 1024 != 0) {
			__builtin_trap();
		}
	} else if (ll != -7) {
		__builtin_trap();
	}

	if (parse_date(text, &y, &m, &d) == 0) {
		if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1 ||
		    d > days_in_month(y, m))
			__builtin_trap();
		snprintf(back, sizeof(back), "%04d-%02d-%02d", y, m, d);
		if (strcmp(back, text) != 0)
			__builtin_trap();
	}

	if (parse_bool(text, &b) == 0 && strlen(text) > 5)
		__builtin_trap();
	if (is_uuid(text) && strlen(text) != 36)
		__builtin_trap();
	free(text);
	return 0;
}
