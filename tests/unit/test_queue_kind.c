/*
 * Unit tests of queue_kind_valid() (jobs/queue.h): the CLI's check of a
 * job kind before any query, the same rule as the domain
 * apexops.queue_kind (^[a-z][a-z0-9_.-]{0,62}$).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include "jobs/queue.h"

static void
test_kinds(void **state)
{
	static const struct {
		const char *kind;
		bool ok;
	} cases[] = {
		{ "noop", true },	{ "privacy-export", true },
		{ "a", true },		{ "t.first_2", true },
		{ "z9-._", true },	{ "", false },
		{ "Noop", false },	{ "nOop", false },
		{ "9lives", false },	{ "-x", false },
		{ ".x", false },	{ "_x", false },
		{ "bad kind", false },	{ "kind;drop", false },
		{ "k\xc3\xa9", false }, { "../etc", false },
		{ "k\n", false },
	};
	char at63[64], at64[65];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(queue_kind_valid(cases[i].kind), cases[i].ok);
	assert_false(queue_kind_valid(NULL));
	/* 63 characters at most */
	memset(at63, 'k', 63);
	at63[63] = '\0';
	memset(at64, 'k', 64);
	at64[64] = '\0';
	assert_true(queue_kind_valid(at63));
	assert_false(queue_kind_valid(at64));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kinds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
