/*
 * Unit tests of the pacer's controller (pace_decide), fed latencies by
 * hand: no clock, no database.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include "core/config.h"
#include "core/parse.h"
#include "jobs/pace.h"

/* A calm batch: full, 10 us a row, a 0.2 ms commit, nobody waiting. */
static struct pace_sample
calm(long rows)
{
	struct pace_sample in = { rows, (double)rows * 0.01, 0.2, 0, 0 };

	return in;
}

static void
test_resolve_defaults_and_bounds(void **state)
{
	struct pace_opts in, o;

	(void)state;
	pace_opts_resolve(NULL, &o);
	assert_int_equal(o.target_ms, PACE_DEFAULT_TARGET_MS);
	assert_int_equal(o.min_batch, PACE_DEFAULT_MIN_BATCH);
	assert_int_equal(o.max_batch, PACE_DEFAULT_MAX_BATCH);
	assert_int_equal(o.start_batch, PACE_DEFAULT_MIN_BATCH);
	assert_true(o.sleep_coef == PACE_DEFAULT_SLEEP_COEF);
	assert_int_equal(o.sample_ms, PACE_DEFAULT_SAMPLE_MS);
	assert_int_equal(o.max_lag_ms, PACE_DEFAULT_MAX_LAG_MS);
	assert_true(o.max_lag_bytes == PACE_DEFAULT_MAX_LAG_BYTES);
	assert_int_equal(o.max_lag_wait_ms, PACE_DEFAULT_MAX_LAG_WAIT_MS);

	memset(&in, 0, sizeof(in));
	in.min_batch = 800;
	in.max_batch = 100; /* below min: raised to it */
	in.start_batch = 5000;
	in.sleep_coef = -1; /* no proportional pause: kept */
	pace_opts_resolve(&in, &o);
	assert_int_equal(o.min_batch, 800);
	assert_int_equal(o.max_batch, 800);
	assert_int_equal(o.start_batch, 800);
	assert_true(o.sleep_coef < 0);
}

/* The standby guard's defaults are the scheduled purge's variables'
 * defaults (config.c's table, which src/core cannot take from here), and
 * inside their ranges. */
static void
test_guard_defaults_match_the_variables(void **state)
{
	const struct cfg_def *ms = config_def("APEXOPS_PURGE_MAX_LAG_MS");
	const struct cfg_def *by = config_def("APEXOPS_PURGE_MAX_LAG_BYTES");
	const struct cfg_def *ws = config_def("APEXOPS_PURGE_MAX_LAG_WAIT_S");
	long v;
	long long size;

	(void)state;
	assert_non_null(ms);
	assert_non_null(by);
	assert_non_null(ws);
	assert_null(config_def("APEXOPS_PURGE_MAX_LAG"));
	assert_int_equal(parse_long(ms->def, ms->min, ms->max, &v), 0);
	assert_int_equal(v, PACE_DEFAULT_MAX_LAG_MS);
	assert_int_equal(parse_size(by->def, by->min, by->max, &size), 0);
	assert_true(size == PACE_DEFAULT_MAX_LAG_BYTES);
	assert_int_equal(parse_long(ws->def, ws->min, ws->max, &v), 0);
	assert_int_equal(v * 1000, PACE_DEFAULT_MAX_LAG_WAIT_MS);
}

static void
test_grows_additively_when_calm(void **state)
{
	struct pace_opts o = { 0 };
	struct pace_state s = { 0 };
	struct pace_sample in;
	long next = 0, pause = -1;

	(void)state;
	o.min_batch = 1000;
	o.max_batch = 3000;
	o.sleep_coef = 0.5;
	in = calm(1000);
	assert_false(pace_decide(&o, &s, &in, &next, &pause));
	assert_int_equal(next, 1500); /* + min/2 */
	assert_int_equal(pause, 5);   /* 0.5 x 10 ms */
	for (int i = 0; i < 10; i++) {
		in = calm(next);
		assert_false(pace_decide(&o, &s, &in, &next, &pause));
	}
	assert_int_equal(next, 3000); /* capped at max */
	assert_int_equal(s.backoffs, 0);
	assert_int_equal(s.decisions, 11);
}

static void
test_short_batch_does_not_grow(void **state)
{
	struct pace_opts o = { 0 };
	struct pace_state s = { 0 };
	struct pace_sample in = calm(120); /* the range ran out */
	long next = 0, pause = 0;

	(void)state;
	assert_false(pace_decide(&o, &s, &in, &next, &pause));
	assert_int_equal(next, PACE_DEFAULT_MIN_BATCH);
}

/* Reach a steady batch of 4000, then feed a slow commit. */
static void
test_commit_latency_halves_and_doubles_pause(void **state)
{
	struct pace_opts o = { 0 };
	struct pace_state s = { 0 };
	struct pace_sample in;
	long next = 0, pause = 0;

	(void)state;
	o.min_batch = 1000;
	o.start_batch = 4000;
	o.max_pause_ms = 300;
	o.sleep_coef = 1.0;
	in = calm(4000);
	assert_false(pace_decide(&o, &s, &in, &next, &pause));
	assert_int_equal(next, 4500);
	/* 0.2 ms baseline: 2 x 0.2 + 2 ms slack = 2.4 ms is still calm */
	in = calm(4500);
	in.commit_ms = 2.3;
	assert_false(pace_decide(&o, &s, &in, &next, &pause));
	assert_int_equal(next, 5000);
	in = calm(5000);
	in.commit_ms = 9.0;
	assert_true(pace_decide(&o, &s, &in, &next, &pause));
	assert_string_equal(s.reason, "commit");
	assert_int_equal(next, 2500);
	assert_int_equal(pause, 50); /* 1 x 50 ms, the first back-off */
	in = calm(2500);
	in.commit_ms = 9.0;
	assert_true(pace_decide(&o, &s, &in, &next, &pause));
	assert_int_equal(next, 1250);
	assert_int_equal(pause, 50); /* 25 ms, doubled */
	for (int i = 0; i < 8; i++) {
		in = calm(next);
		in.commit_ms = 50.0;
		assert_true(pace_decide(&o, &s, &in, &next, &pause));
	}
	assert_int_equal(next, 1000); /* never below min */
	assert_int_equal(pause, 300); /* capped at max_pause_ms */
	/* calm again: the congestion ends at once and growth resumes */
	in = calm(1000);
	assert_false(pace_decide(&o, &s, &in, &next, &pause));
	assert_int_equal(s.congested, 0);
	assert_string_equal(s.reason, "");
	assert_int_equal(next, 1500);
	assert_int_equal(pause, 10);
}

static void
test_waiters_smoothed_and_unprobed(void **state)
{
	struct pace_opts o = { 0 };
	struct pace_state s = { 0 };
	struct pace_sample in;
	long next = 0, pause = 0;

	(void)state;
	o.max_waiters = 1.0;
	in = calm(500);
	in.waiters = 1; /* at the limit, not over it */
	assert_false(pace_decide(&o, &s, &in, &next, &pause));
	in = calm(next);
	in.waiters = 3; /* smoothed: (1 + 3) / 2 = 2 > 1 */
	assert_true(pace_decide(&o, &s, &in, &next, &pause));
	assert_string_equal(s.reason, "waiters");
	assert_true(s.waiters_avg > 1.9 && s.waiters_avg < 2.1);
	/* no probe since the last batch: the old average is not reused */
	in = calm(next);
	in.waiters = -1;
	assert_false(pace_decide(&o, &s, &in, &next, &pause));
	in = calm(next);
	in.waiters = 0; /* (2 + 0) / 2 = 1: calm */
	assert_false(pace_decide(&o, &s, &in, &next, &pause));
	/* after quiet probes, one probe of 2 is (0 + 2) / 2 = 1: calm; a
	 * second in a row, 1.5, is a queue */
	memset(&s, 0, sizeof(s));
	in = calm(500);
	in.waiters = 0;
	assert_false(pace_decide(&o, &s, &in, &next, &pause));
	in = calm(next);
	in.waiters = 2;
	assert_false(pace_decide(&o, &s, &in, &next, &pause));
	in = calm(next);
	in.waiters = 2;
	assert_true(pace_decide(&o, &s, &in, &next, &pause));
	assert_string_equal(s.reason, "waiters");
}

static void
test_slow_batch_and_target(void **state)
{
	struct pace_opts o = { 0 };
	struct pace_state s = { 0 };
	struct pace_sample in;
	long next = 0, pause = 0;

	(void)state;
	o.target_ms = 100;
	o.min_batch = 1000;
	o.start_batch = 2000;
	in = calm(2000); /* 0.01 ms per row */
	assert_false(pace_decide(&o, &s, &in, &next, &pause));
	in = calm(next);
	in.batch_ms = 60.0; /* 0.024 ms per row: over twice the baseline */
	assert_true(pace_decide(&o, &s, &in, &next, &pause));
	assert_string_equal(s.reason, "batch");
	assert_int_equal(next, 1250);

	memset(&s, 0, sizeof(s));
	in = calm(2000);
	in.batch_ms = 150.0; /* first batch: no baseline, over target */
	assert_true(pace_decide(&o, &s, &in, &next, &pause));
	assert_string_equal(s.reason, "target");
	assert_int_equal(next, 1000);
}

static void
test_no_sleep_coef_still_pauses_when_congested(void **state)
{
	struct pace_opts o = { 0 };
	struct pace_state s = { 0 };
	struct pace_sample in;
	long next = 0, pause = -1;

	(void)state;
	o.sleep_coef = -1;
	in = calm(500);
	assert_false(pace_decide(&o, &s, &in, &next, &pause));
	assert_int_equal(pause, 0);
	in = calm(next);
	in.commit_ms = 30.0;
	assert_true(pace_decide(&o, &s, &in, &next, &pause));
	assert_int_equal(pause, 8); /* 7.5 ms: at least the batch's time */
}

/* The flush canary: a slow durable commit at a probe backs off, and its
 * finding slows every batch until the next probe; calm canaries undo it;
 * one lucky fast canary does not become the floor. */
static void
test_flush_canary_holds_between_probes(void **state)
{
	struct pace_opts o = { 0 };
	struct pace_state s = { 0 };
	struct pace_sample in;
	long next = 0, pause = -1;
	double coef_after_two;

	(void)state;
	o.sleep_coef = -1; /* no proportional pause: only the canary's */
	for (int i = 0; i < 10; i++) {
		in = calm(500);
		in.flush_ms = 0.5;
		assert_false(pace_decide(&o, &s, &in, &next, &pause));
		assert_int_equal(pause, 0);
	}
	assert_true(s.base_flush_ms > 0.45 && s.base_flush_ms < 0.55);
	/* a lucky canary moves the floor a fifth of the way, not all */
	in = calm(500);
	in.flush_ms = 0.05;
	assert_false(pace_decide(&o, &s, &in, &next, &pause));
	assert_true(s.base_flush_ms > 0.35);
	/* slow commits: back off, named */
	in = calm(500);
	in.flush_ms = 3.0;
	assert_true(pace_decide(&o, &s, &in, &next, &pause));
	assert_string_equal(s.reason, "flush");
	assert_true(s.flush_coef >= 1);
	assert_true(pause > 0);
	/* batches between probes (no canary) keep pausing */
	for (int i = 0; i < 5; i++) {
		in = calm(500);
		assert_false(pace_decide(&o, &s, &in, &next, &pause));
		assert_true(pause >= 5); /* 5 ms batches, coefficient >= 1 */
	}
	in = calm(500);
	in.flush_ms = 3.0;
	assert_true(pace_decide(&o, &s, &in, &next, &pause));
	coef_after_two = s.flush_coef;
	assert_true(coef_after_two >= 2); /* doubled */
	/* calm canaries shrink it to nothing */
	for (int i = 0; i < 60; i++) {
		in = calm(500);
		in.flush_ms = 0.5;
		(void)pace_decide(&o, &s, &in, &next, &pause);
	}
	assert_true(s.flush_coef == 0);
	in = calm(500);
	assert_false(pace_decide(&o, &s, &in, &next, &pause));
	assert_int_equal(pause, 0);
	/* a canary slower than the ratio but within the slack is noise */
	memset(&s, 0, sizeof(s));
	for (int i = 0; i < 10; i++) {
		in = calm(500);
		in.flush_ms = 0.1;
		(void)pace_decide(&o, &s, &in, &next, &pause);
	}
	for (int i = 0; i < 10; i++) {
		in = calm(500);
		in.flush_ms = 0.3; /* 3x, but 0.2 ms over the floor */
		assert_false(pace_decide(&o, &s, &in, &next, &pause));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve_defaults_and_bounds),
		cmocka_unit_test(test_guard_defaults_match_the_variables),
		cmocka_unit_test(test_flush_canary_holds_between_probes),
		cmocka_unit_test(test_grows_additively_when_calm),
		cmocka_unit_test(test_short_batch_does_not_grow),
		cmocka_unit_test(test_commit_latency_halves_and_doubles_pause),
		cmocka_unit_test(test_waiters_smoothed_and_unprobed),
		cmocka_unit_test(test_slow_batch_and_target),
		cmocka_unit_test(
			test_no_sleep_coef_still_pauses_when_congested),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
