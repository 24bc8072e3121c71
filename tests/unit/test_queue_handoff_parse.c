/*
 * Unit tests of queue_handoff_parse() (jobs/queue_handoff.h): the payload
 * of a handoff notification, as apexops.enqueue() writes it, becomes a job
 * only when every field is there and in range; anything else (another
 * client's pg_notify on the worker's channel) is refused with a reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include "jobs/queue_handoff.h"

static void
test_parse(void **state)
{
	static const struct {
		const char *text;
		bool ok;
		const char *why; /* a word of the reason when refused */
	} cases[] = {
		/* PostgreSQL's json_build_object() spacing */
		{ "{\"id\" : 5, \"kind\" : \"noop\", \"attempt\" : 1, "
		  "\"max_attempts\" : 5, \"payload\" : \"{\\\"a\\\": 1}\"}",
		  true, NULL },
		{ "{\"id\":1,\"kind\":\"privacy-export\",\"attempt\":1,"
		  "\"max_attempts\":1,\"payload\":\"{}\"}",
		  true, NULL },
		{ "", false, "object" },
		{ "[]", false, "object" },
		{ "{\"id\":1", false, "object" },
		{ "{\"id\":0,\"kind\":\"noop\",\"attempt\":1,"
		  "\"max_attempts\":5,\"payload\":\"{}\"}",
		  false, "id" },
		{ "{\"id\":-3,\"kind\":\"noop\",\"attempt\":1,"
		  "\"max_attempts\":5,\"payload\":\"{}\"}",
		  false, "id" },
		{ "{\"id\":\"7\",\"kind\":\"noop\",\"attempt\":1,"
		  "\"max_attempts\":5,\"payload\":\"{}\"}",
		  false, "id" },
		{ "{\"id\":7,\"kind\":\"noop\",\"attempt\":0,"
		  "\"max_attempts\":5,\"payload\":\"{}\"}",
		  false, "attempt" },
		{ "{\"id\":7,\"kind\":\"noop\",\"attempt\":1,"
		  "\"max_attempts\":0,\"payload\":\"{}\"}",
		  false, "attempt" },
		{ "{\"id\":7,\"kind\":\"noop\",\"attempt\":1,"
		  "\"max_attempts\":99999999999,\"payload\":\"{}\"}",
		  false, "attempt" },
		{ "{\"id\":7,\"kind\":\"No Op\",\"attempt\":1,"
		  "\"max_attempts\":5,\"payload\":\"{}\"}",
		  false, "kind" },
		{ "{\"id\":7,\"attempt\":1,\"max_attempts\":5,"
		  "\"payload\":\"{}\"}",
		  false, "kind" },
		{ "{\"id\":7,\"kind\":\"noop\",\"attempt\":1,"
		  "\"max_attempts\":5,\"payload\":{}}",
		  false, "payload" },
		{ "{\"id\":7,\"id\":8,\"kind\":\"noop\",\"attempt\":1,"
		  "\"max_attempts\":5,\"payload\":\"{}\"}",
		  false, "object" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct queue_job j;
		char why[96] = "";
		bool ok = queue_handoff_parse(cases[i].text, &j, why,
					      sizeof(why));

		assert_int_equal(ok, cases[i].ok);
		if (ok) {
			assert_non_null(j.payload);
			assert_true(j.id > 0 && j.attempt >= 1);
		} else {
			assert_null(j.payload);
			assert_non_null(strstr(why, cases[i].why));
		}
		free(j.payload);
	}
}

static void
test_fields(void **state)
{
	struct queue_job j;

	(void)state;
	assert_true(queue_handoff_parse(
		"{\"id\" : 9007199254740993, \"kind\" : \"privacy-delete\", "
		"\"attempt\" : 1, \"max_attempts\" : 3, \"payload\" : "
		"\"{\\\"request_id\\\": 42, \\\"q\\\": \\\"a\\\\\\\"b\\\"}\"}",
		&j, NULL, 0));
	assert_int_equal(j.id, 9007199254740993LL);
	assert_string_equal(j.kind, "privacy-delete");
	assert_int_equal(j.attempt, 1);
	assert_int_equal(j.max_attempts, 3);
	/* the payload's text exactly as the database wrote it */
	assert_string_equal(j.payload,
			    "{\"request_id\": 42, \"q\": \"a\\\"b\"}");
	free(j.payload);
	assert_false(queue_handoff_parse(NULL, &j, NULL, 0));
	assert_null(j.payload);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
