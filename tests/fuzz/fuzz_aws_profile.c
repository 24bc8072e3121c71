/*
 * The AWS shared credentials and config files are text a user edits:
 * aws_profile_parse() must take any bytes without crashing or leaking,
 * never read past the bytes it is given (the input is not NUL-terminated),
 * and give back only trimmed C strings. The first byte picks the file kind
 * and the profile asked for.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "storage/aws_profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const char *v)
{
	size_t n;

	if (v == NULL)
		return;
	n = strlen(v);
	/* values are trimmed, and one line each */
	if (n > 0 && (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' ||
		      v[n - 1] == '\t' || v[n - 1] == '\r'))
		__builtin_trap();
	if (strchr(v, '\n') != NULL)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const profiles[] = { "default", "dev", "a@b.c",
						"x" };
	struct aws_profile p = AWS_PROFILE_INIT;
	struct ops_err err = OPS_ERR_INIT;
	enum aws_profile_file kind;
	const char *profile;

	if (size == 0)
		return 0;
	kind = (data[0] & 1) ? AWS_PROFILE_CONFIG : AWS_PROFILE_CREDENTIALS;
	profile = profiles[(data[0] >> 1) & 3];
	if (aws_profile_parse((const char *)data + 1, size - 1, kind, "fuzz",
			      profile, &p, &err) == 0) {
		check(p.access_key_id);
		check(p.secret_access_key);
		check(p.session_token);
		check(p.region);
		if (kind == AWS_PROFILE_CREDENTIALS && p.region != NULL)
			__builtin_trap(); /* region is the config file's */
	} else if (strncmp(err.msg, "fuzz:", 5) != 0) {
		__builtin_trap(); /* every error names the file and line */
	}
	aws_profile_release(&p);
	return 0;
}
