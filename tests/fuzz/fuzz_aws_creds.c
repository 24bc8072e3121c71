/*
 * The container endpoint's and IMDS's answers come over the network (plain
 * http to a link-local address): aws_creds_parse() must take any bytes
 * without crashing or leaking, never read past the bytes it is given (the
 * input is not NUL-terminated), give back only keys it checked, and never
 * put a value in its message. aws_iso8601_parse() gets the same bytes as
 * a C string. The first byte picks IMDS (Code required) or not.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/aws_creds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const char *v, bool key_id)
{
	if (v == NULL || v[0] == '\0')
		__builtin_trap();
	for (const char *p = v; *p != '\0'; p++) {
		/* one header-safe line: no control characters */
		if ((unsigned char)*p < ' ' || *p == 0x7f)
			__builtin_trap();
		if (key_id &&
		    !((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9')))
			__builtin_trap();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct s3_creds c = S3_CREDS_INIT;
	struct ops_err err = OPS_ERR_INIT;
	char *text;
	time_t t;

	if (size == 0)
		return 0;
	if (aws_creds_parse((const char *)data + 1, size - 1, data[0] & 1,
			    "fuzz", &c, &err) == 0) {
		check(c.access_key_id, true);
		check(c.secret_access_key, false);
		if (c.session_token != NULL)
			check(c.session_token, false);
	} else if (strncmp(err.msg, "fuzz ", 5) != 0 ||
		   c.access_key_id != NULL || c.secret_access_key != NULL ||
		   c.session_token != NULL) {
		__builtin_trap(); /* names the source, holds nothing */
	}
	s3_creds_release(&c);
	text = malloc(size);
	if (text == NULL)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0'; /* the parser takes a C string */
	if (aws_iso8601_parse(text, &t) != 0 && t != 0)
		__builtin_trap();
	free(text);
	return 0;
}
