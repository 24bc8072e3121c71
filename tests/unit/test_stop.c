/* Unit tests of core/stop.c (stop-aware sleep, seeded random numbers,
 * backoff bounds) and core/signals.c (flag-only handlers). */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/signals.h"
#include "core/stop.h"

struct setter {
	volatile sig_atomic_t *flag;
	volatile sig_atomic_t started;
};

static void *
set_flag_later(void *arg)
{
	struct setter *s = arg;

	/* wait until the sleeper is sleeping, then stop it */
	while (!s->started)
		sched_yield();
	/* most likely mid-sleep now; set on entry is the same answer */
	if (ops_sleep_ms(30, NULL) != 0)
		return NULL;
	*s->flag = 1;
	return NULL;
}

static void
test_sleep_stopped_mid_sleep(void **state)
{
	volatile sig_atomic_t flag = 0;
	struct setter s = { &flag, 0 };
	pthread_t t;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, set_flag_later, &s), 0);
	s.started = 1;
	/* an hour: only the flag can end this sleep within the test */
	assert_int_equal(ops_sleep_ms(3600L * 1000, &flag), OPS_E_STOPPED);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(flag, 1);
}

static void
test_sleep_full_and_flag_on_entry(void **state)
{
	volatile sig_atomic_t flag = 0;

	(void)state;
	assert_int_equal(ops_sleep_ms(5, &flag), 0);
	assert_int_equal(ops_sleep_ms(5, NULL), 0);
	assert_int_equal(ops_sleep_ms(0, &flag), 0);
	assert_int_equal(ops_sleep_ms(-3, &flag), 0);
	flag = SIGTERM;
	assert_int_equal(ops_sleep_ms(3600L * 1000, &flag), OPS_E_STOPPED);
	assert_int_equal(ops_sleep_ms(0, &flag), OPS_E_STOPPED);
	assert_true(ops_stopped(&flag));
	assert_false(ops_stopped(NULL));
}

static void
test_random_below_range(void **state)
{
	static const uint64_t bounds[] = { 1, 2, 3, 7, 10, 1000, UINT64_MAX };
	int seen[10] = { 0 };

	(void)state;
	assert_int_equal(ops_random_below(0), 0);
	for (size_t b = 0; b < sizeof(bounds) / sizeof(bounds[0]); b++)
		for (int i = 0; i < 2000; i++)
			assert_true(ops_random_below(bounds[b]) < bounds[b]);
	for (int i = 0; i < 2000; i++)
		seen[ops_random_below(10)]++;
	for (int i = 0; i < 10; i++)
		assert_true(seen[i] > 0); /* 2000 draws cover 0..9 */
}

#define NDRAWS 16

static void *
draw(void *arg)
{
	uint64_t *out = arg;

	for (int i = 0; i < NDRAWS; i++)
		out[i] = ops_random_below(UINT64_MAX);
	return NULL;
}

static void
test_random_threads_differ(void **state)
{
	uint64_t a[NDRAWS], b[NDRAWS];
	pthread_t ta, tb;

	(void)state;
	assert_int_equal(pthread_create(&ta, NULL, draw, a), 0);
	assert_int_equal(pthread_create(&tb, NULL, draw, b), 0);
	assert_int_equal(pthread_join(ta, NULL), 0);
	assert_int_equal(pthread_join(tb, NULL), 0);
	/* each thread seeds its own generator from getrandom() */
	assert_memory_not_equal(a, b, sizeof(a));
}

static void
test_backoff_bounds(void **state)
{
	(void)state;
	for (int attempt = 0; attempt < 40; attempt++) {
		long step = 100;

		for (int i = 0; i < attempt && step < 5000; i++)
			step *= 2;
		if (step > 5000)
			step = 5000;
		for (int i = 0; i < 200; i++) {
			long f = ops_backoff_full_jitter(100, 5000, attempt);
			long e = ops_backoff_equal_jitter(100, 5000, attempt);

			assert_in_range(f, 0, step);
			assert_in_range(e, step / 2, step);
		}
	}
	/* a zero base still grows: never a busy loop of zero delays */
	assert_in_range(ops_backoff_equal_jitter(0, 1000, 3), 4, 8);
}

static volatile sig_atomic_t hook_calls;

static void
hook(void)
{
	hook_calls++;
}

static void
test_signals_stop_then_hook(void **state)
{
	(void)state;
	ops_signals_reset();
	hook_calls = 0;
	assert_int_equal(ops_signals_install(), 0);
	assert_int_equal(ops_signals_install(), 0); /* idempotent */
	ops_signals_on_second_stop(hook);
	assert_int_equal(raise(SIGTERM), 0);
	assert_int_equal(ops_stop_flag, SIGTERM);
	assert_int_equal(ops_stop_twice, 0);
	assert_int_equal(hook_calls, 0);
	assert_int_equal(raise(SIGINT), 0);
	assert_int_equal(ops_stop_flag, SIGTERM); /* the first one stays */
	assert_int_equal(ops_stop_twice, 1);
	assert_int_equal(hook_calls, 1);
	assert_int_equal(raise(SIGHUP), 0);
	assert_int_equal(ops_reload_flag, 1);
	ops_signals_on_second_stop(NULL);
	ops_signals_reset();
	assert_int_equal(ops_stop_flag, 0);
	ops_signals_restore();
}

static void
test_signals_sigpipe_ignored(void **state)
{
	int fds[2];
	char c = 'x';

	(void)state;
	assert_int_equal(ops_signals_install(), 0);
	assert_int_equal(pipe(fds), 0);
	close(fds[0]);
	/* without the handlers this write would kill the process */
	errno = 0;
	assert_int_equal(write(fds[1], &c, 1), -1);
	assert_int_equal(errno, EPIPE);
	close(fds[1]);
	ops_signals_restore();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sleep_stopped_mid_sleep),
		cmocka_unit_test(test_sleep_full_and_flag_on_entry),
		cmocka_unit_test(test_random_below_range),
		cmocka_unit_test(test_random_threads_differ),
		cmocka_unit_test(test_backoff_bounds),
		cmocka_unit_test(test_signals_stop_then_hook),
		cmocka_unit_test(test_signals_sigpipe_ignored),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
