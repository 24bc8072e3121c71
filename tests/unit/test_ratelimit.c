/* Unit tests of http/ratelimit.c. Only lower bounds of elapsed time are
 * asserted (a slow machine can only make them truer); the rest is the
 * limiter's slot arithmetic and its stop flag. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/stop.h"
#include "http/ratelimit.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
test_unlimited(void **state)
{
	struct ratelimit rl;

	(void)state;
	ratelimit_init(&rl, 0, 1);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(ratelimit_acquire(&rl, NULL), 0);
	assert_int_equal(ratelimit_granted(&rl), 10000);
	ratelimit_destroy(&rl);
}

/* n slots at r/s from idle with burst b span at least (n - b) / r s */
static void
test_rate_is_a_floor(void **state)
{
	struct ratelimit rl;
	double t0;

	(void)state;
	ratelimit_init(&rl, 1000, 10);
	t0 = now_s();
	for (int i = 0; i < 110; i++)
		assert_int_equal(ratelimit_acquire(&rl, NULL), 0);
	assert_true(now_s() - t0 >= 0.099);
	/* the next free slot lies ahead of the clock: nothing was skipped */
	assert_true(rl.next >= now_s() - 0.001 - 9 * rl.interval);
	ratelimit_destroy(&rl);
}

struct racer {
	struct ratelimit *rl;
	int n;
};

static void *
race(void *arg)
{
	struct racer *r = arg;

	for (int i = 0; i < r->n; i++)
		if (ratelimit_acquire(r->rl, NULL) != 0)
			return (void *)1;
	return NULL;
}

/* four threads share one limit: 4 x 50 slots at 2000/s take >= 95 ms */
static void
test_threads_share_the_limit(void **state)
{
	struct ratelimit rl;
	pthread_t t[4];
	struct racer r = { &rl, 50 };
	double t0;
	void *rv;

	(void)state;
	ratelimit_init(&rl, 2000, 10);
	t0 = now_s();
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, race, &r), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &rv), 0);
		assert_null(rv);
	}
	assert_true(now_s() - t0 >= 0.095);
	assert_int_equal(ratelimit_granted(&rl), 200);
	ratelimit_destroy(&rl);
}

static void *
stop_later(void *arg)
{
	volatile sig_atomic_t *flag = arg;

	if (ops_sleep_ms(50, NULL) == 0)
		*flag = 1;
	return NULL;
}

/* a pause of an hour is ended by the stop flag, not slept through */
static void
test_pause_and_stop(void **state)
{
	struct ratelimit rl;
	volatile sig_atomic_t flag = 0;
	pthread_t t;
	double before;

	(void)state;
	ratelimit_init(&rl, 10, 1);
	before = rl.next;
	ratelimit_pause(&rl, 3600L * 1000);
	assert_true(rl.next > before + 3500);
	assert_int_equal(pthread_create(&t, NULL, stop_later, (void *)&flag),
			 0);
	assert_int_equal(ratelimit_acquire(&rl, &flag), OPS_E_STOPPED);
	assert_int_equal(pthread_join(t, NULL), 0);
	/* a pause never moves the next slot earlier */
	before = rl.next;
	ratelimit_pause(&rl, 1);
	assert_true(rl.next >= before);
	ratelimit_destroy(&rl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unlimited),
		cmocka_unit_test(test_rate_is_a_floor),
		cmocka_unit_test(test_threads_share_the_limit),
		cmocka_unit_test(test_pause_and_stop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
