/* Unit tests of the self-pipe (core/wake.h). */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include "core/wake.h"

static int
readable(struct ops_wake *w)
{
	struct pollfd p = { ops_wake_fd(w), POLLIN, 0 };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void
test_poke_wakes_and_drain_empties(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	struct ops_wake w;

	(void)state;
	assert_int_equal(ops_wake_open(&w, &err), 0);
	assert_false(readable(&w));
	ops_wake_poke(&w);
	ops_wake_poke(&w);
	assert_true(readable(&w));
	ops_wake_drain(&w);
	assert_false(readable(&w));
	/* a full pipe drops pokes instead of blocking the poker */
	for (int i = 0; i < 200000; i++)
		ops_wake_poke(&w);
	assert_true(readable(&w));
	ops_wake_drain(&w);
	assert_false(readable(&w));
	ops_wake_close(&w);
	assert_int_equal(ops_wake_fd(&w), -1);
	ops_wake_close(&w); /* twice: a no-op */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_poke_wakes_and_drain_empties),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
