/* The retry decision of http/: which answers retry, backoff growth and
 * cap, jitter range, Retry-After honoured and capped, Stripe-Should-Retry
 * obeyed (rules of stripe-node's RequestSender._shouldRetry). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "http/http.h"

static struct http_policy
policy(void)
{
	struct http_policy p;

	http_policy_default(&p);
	p.max_retries = 5;
	p.base_delay_ms = 500;
	p.max_delay_ms = 4000;
	p.max_retry_after_ms = 10000;
	return p;
}

static void
test_which_statuses_retry(void **state)
{
	static const struct {
		long status;
		bool retry;
	} cases[] = {
		{ 0, true },	{ 200, false }, { 400, false }, { 401, false },
		{ 402, false }, { 404, false }, { 409, true },	{ 429, true },
		{ 500, true },	{ 502, true },	{ 503, true },	{ 504, true },
	};
	struct http_policy p = policy();

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long d = http_retry_delay_ms(&p, true, 1, cases[i].status, NULL,
					     NULL, 0.0);

		if (cases[i].retry)
			assert_true(d >= 0);
		else
			assert_int_equal(d, -1);
	}
}

static void
test_should_retry_header_and_idempotency(void **state)
{
	struct http_policy p = policy();

	(void)state;
	assert_int_equal(
		http_retry_delay_ms(&p, true, 1, 500, NULL, "false", 0.0), -1);
	assert_true(http_retry_delay_ms(&p, true, 1, 400, NULL, "true", 0.0) >=
		    0);
	/* a POST without an idempotency key is never sent twice */
	assert_int_equal(http_retry_delay_ms(&p, false, 1, 0, NULL, NULL, 0.0),
			 -1);
	assert_int_equal(
		http_retry_delay_ms(&p, false, 1, 503, NULL, NULL, 0.0), -1);
}

static void
test_backoff_grows_is_capped_and_jittered(void **state)
{
	struct http_policy p = policy();

	(void)state;
	/* jitter 0 gives half the nominal delay, never below the base */
	assert_int_equal(http_retry_delay_ms(&p, true, 1, 500, NULL, NULL, 0),
			 500);
	assert_int_equal(http_retry_delay_ms(&p, true, 2, 500, NULL, NULL, 0),
			 500);
	assert_int_equal(http_retry_delay_ms(&p, true, 3, 500, NULL, NULL, 0),
			 1000);
	assert_int_equal(http_retry_delay_ms(&p, true, 4, 500, NULL, NULL, 0),
			 2000);
	/* capped at max_delay_ms (4000), jitter just under 1 */
	assert_in_range(
		http_retry_delay_ms(&p, true, 5, 500, NULL, NULL, 0.999), 3990,
		4000);
	/* out of retries */
	assert_int_equal(http_retry_delay_ms(&p, true, 6, 500, NULL, NULL, 0),
			 -1);
	/* jitter stays inside [d/2, d) */
	for (int i = 0; i < 100; i++) {
		long d = http_retry_delay_ms(&p, true, 3, 503, NULL, NULL,
					     i / 100.0);

		assert_in_range(d, 1000, 2000);
	}
}

static void
test_retry_after(void **state)
{
	struct http_policy p = policy();

	(void)state;
	assert_int_equal(http_retry_delay_ms(&p, true, 1, 429, "3", NULL, 0),
			 3000);
	/* a shorter Retry-After than the backoff does not shorten it */
	assert_int_equal(http_retry_delay_ms(&p, true, 4, 429, "0", NULL, 0),
			 2000);
	/* capped at max_retry_after_ms */
	assert_int_equal(http_retry_delay_ms(&p, true, 1, 429, "3600", NULL, 0),
			 10000);
	/* unreadable values are ignored */
	assert_int_equal(http_retry_delay_ms(&p, true, 1, 429, "soon", NULL, 0),
			 500);
	assert_int_equal(http_retry_delay_ms(&p, true, 1, 429, "-5", NULL, 0),
			 500);
	/* an HTTP-date in the past means now */
	assert_int_equal(http_retry_delay_ms(&p, true, 1, 503,
					     "Wed, 21 Oct 2015 07:28:00 GMT",
					     NULL, 0),
			 500);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_which_statuses_retry),
		cmocka_unit_test(test_should_retry_header_and_idempotency),
		cmocka_unit_test(test_backoff_grows_is_capped_and_jittered),
		cmocka_unit_test(test_retry_after),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
