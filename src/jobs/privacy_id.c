/*
 * UUID and request-id parsers. By hand rather than libuuid's
 * uuid_parse(): that accepts nothing more than this, but it is one more
 * library for 30 lines, and its refusal says nothing about why.
 */
#include "jobs/privacy_id.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* s for an error message: at most 40 bytes, unprintables as '?' */
static void
quote_input(const char *s, char *out, size_t size)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < size && i < 40; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	out[i] = '\0';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
privacy_uuid_parse(const char *what, const char *s,
		   char out[PRIVACY_UUID_LEN + 1], struct ops_err *err)
{
	static const char digits[] = "0123456789abcdef";
	char shown[48];
	size_t i;

	out[0] = '\0';
	if (s == NULL || s[0] == '\0')
		return ops_fail(err, OPS_E_INVALID, false,
				"missing %s: expected a UUID such as "
				"2f1c0b9e-5d7a-4c3e-9b1a-0e8d6f4a2c11",
				what);
	for (i = 0; i < PRIVACY_UUID_LEN; i++) {
		int v;

		if (s[i] == '\0')
			break;
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				break;
			out[i] = '-';
			continue;
		}
		v = hexval(s[i]);
		if (v < 0)
			break;
		out[i] = digits[v];
	}
	if (i != PRIVACY_UUID_LEN || s[i] != '\0') {
		out[0] = '\0';
		quote_input(s, shown, sizeof(shown));
		return ops_fail(err, OPS_E_INVALID, false,
				"invalid %s '%s%s': expected a UUID "
				"(8-4-4-4-12 hexadecimal digits)",
				what, shown, strlen(s) > 40 ? "..." : "");
	}
	out[PRIVACY_UUID_LEN] = '\0';
	return 0;
}

int
privacy_request_id_parse(const char *s, long long *out, struct ops_err *err)
{
	char shown[48];
	char *end;
	long long v;

	*out = 0;
	if (s == NULL || s[0] < '0' || s[0] > '9') {
		quote_input(s ? s : "", shown, sizeof(shown));
		return ops_fail(err, OPS_E_INVALID, false,
				"invalid request id '%s': expected a whole "
				"number >= 1",
				shown);
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 1) {
		quote_input(s, shown, sizeof(shown));
		return ops_fail(err, OPS_E_INVALID, false,
				"invalid request id '%s': expected a whole "
				"number >= 1",
				shown);
	}
	*out = v;
	return 0;
}
