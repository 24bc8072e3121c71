/*
 * Unit tests of the privacy id parsers (jobs/privacy_id.h): UUIDs in
 * either case come back lower-case; anything else, path traversal
 * included, is refused with a message naming the value and the form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include "jobs/privacy_id.h"

static void
test_uuid_good(void **state)
{
	static const struct {
		const char *in, *out;
	} good[] = {
		{ "2f1c0b9e-5d7a-4c3e-9b1a-0e8d6f4a2c11",
		  "2f1c0b9e-5d7a-4c3e-9b1a-0e8d6f4a2c11" },
		{ "2F1C0B9E-5D7A-4C3E-9B1A-0E8D6F4A2C11",
		  "2f1c0b9e-5d7a-4c3e-9b1a-0e8d6f4a2c11" },
		{ "00000000-0000-0000-0000-000000000000",
		  "00000000-0000-0000-0000-000000000000" },
		{ "ffffffff-ffff-ffff-ffff-ffffffffffff",
		  "ffffffff-ffff-ffff-ffff-ffffffffffff" },
	};
	char out[PRIVACY_UUID_LEN + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(
			privacy_uuid_parse("user id", good[i].in, out, NULL),
			0);
		assert_string_equal(out, good[i].out);
	}
}

static void
test_uuid_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"x",
		"2f1c0b9e5d7a4c3e9b1a0e8d6f4a2c11",
		"{2f1c0b9e-5d7a-4c3e-9b1a-0e8d6f4a2c11}",
		"urn:uuid:2f1c0b9e-5d7a-4c3e-9b1a-0e8d6f4a2c11",
		" 2f1c0b9e-5d7a-4c3e-9b1a-0e8d6f4a2c11",
		"2f1c0b9e-5d7a-4c3e-9b1a-0e8d6f4a2c11 ",
		"2f1c0b9e-5d7a-4c3e-9b1a-0e8d6f4a2c1",
		"2f1c0b9e-5d7a-4c3e-9b1a-0e8d6f4a2c111",
		"2f1c0b9e-5d7a-4c3e-9b1a_0e8d6f4a2c11",
		"2f1c0b9e-5d7a-4c3e-9b1a-0e8d6f4a2c1g",
		"2f1c0b9e+5d7a-4c3e-9b1a-0e8d6f4a2c11",
		"../../../../etc/passwd",
		"2f1c0b9e-5d7a-4c3e-9b1a-0e8d6f4a2c11/..",
		"../2f1c0b9e-5d7a-4c3e-9b1a-0e8d6f4a2c",
		"2f1c0b9e-5d7a-4c3e-9b1a-0e8d6f4a2c11\n",
		"2f1c0b9e-5d7a-4c3e-9b1a-0e8d6f4a2c11;drop",
	};
	char out[PRIVACY_UUID_LEN + 1];
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(
			privacy_uuid_parse("tenant id", bad[i], out, &err),
			OPS_E_INVALID);
		assert_string_equal(out, "");
		assert_non_null(strstr(err.msg, "tenant id"));
		assert_non_null(strstr(err.msg, "UUID"));
	}
	assert_int_equal(privacy_uuid_parse("user id", NULL, out, &err),
			 OPS_E_INVALID);
	assert_non_null(strstr(err.msg, "missing user id"));
	/* the message shows what was refused, without control bytes */
	assert_int_equal(privacy_uuid_parse("user id", "../x\n", out, &err),
			 OPS_E_INVALID);
	assert_non_null(strstr(err.msg, "'../x?'"));
}

static void
test_request_id(void **state)
{
	static const struct {
		const char *in;
		long long v; /* 0: refused */
	} rows[] = {
		{ "1", 1 },
		{ "42", 42 },
		{ "9223372036854775807", 9223372036854775807LL },
		{ "0", 0 },
		{ "-1", 0 },
		{ "+1", 0 },
		{ " 1", 0 },
		{ "1 ", 0 },
		{ "1x", 0 },
		{ "", 0 },
		{ "9223372036854775808", 0 },
		{ "0x10", 0 },
	};
	struct ops_err err = OPS_ERR_INIT;
	long long v;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int r = privacy_request_id_parse(rows[i].in, &v, &err);

		if (rows[i].v == 0) {
			assert_int_equal(r, OPS_E_INVALID);
			assert_non_null(strstr(err.msg, "invalid request id"));
		} else {
			assert_int_equal(r, 0);
			assert_true(v == rows[i].v);
		}
	}
	assert_int_equal(privacy_request_id_parse(NULL, &v, NULL),
			 OPS_E_INVALID);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid_good),
		cmocka_unit_test(test_uuid_bad),
		cmocka_unit_test(test_request_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
