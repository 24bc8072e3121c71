/*
 * Unit tests of the sandbox revenue algorithm against the original's test
 * vectors and worked example (ORIGINAL-SYSTEM.md §2.10), the JavaScript
 * rounding rules, the tier totals for the 25 sandbox placements, and the
 * charts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include "core/buf.h"
#include "jobs/revenue.h"

static void
test_hash_and_noise_vectors(void **state)
{
	static const struct {
		const char *in;
		uint32_t h;
		double n;
	} v[] = {
		{ "starter|0|2025-01-01T00:00:00.000Z", 1558879070u,
		  0.78258830698541715 },
		{ "growth|5|2025-01-06T00:00:00.000Z", 540846598u,
		  0.24755957867841971 },
		{ "scale|29|2025-01-30T00:00:00.000Z", 1133324612u,
		  0.45369480697809195 },
		{ "starter|0|edcbe420-5e96-4c0f-b7ee-e5a10eb11db3", 512768079u,
		  0.24729176192340674 },
		{ "scale|3|f7defcdc-33e5-41f3-8577-2bceb73015d3", 2606620061u,
		  0.81937984129103825 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint32_t h = revenue_hash(v[i].in);
		double n = revenue_noise(h);

		assert_int_equal(h, v[i].h);
		/* 17 significant digits round-trip a double exactly */
		assert_true(n == v[i].n);
	}
	/* the empty string hashes to 0, which becomes 1 */
	assert_int_equal(revenue_hash(""), 1);
	/* wraps mod 2^32 instead of overflowing */
	assert_int_equal(revenue_hash("zzzzzzzzzzzzzzzz"),
			 revenue_hash("zzzzzzzzzzzzzzzz"));
}

static void
test_js_to_fixed(void **state)
{
	/* expected values from node 20: Number(x.toFixed(2)) * 100 */
	static const struct {
		double x;
		long long cents;
	} v[] = {
		{ 1.005, 100 }, /* binary value below the half */
		{ 1.125, 113 }, /* exact tie: up (glibc %.2f gives 1.12) */
		{ 0.125, 13 },	/* exact tie */
		{ 1.375, 138 }, /* exact tie */
		{ 0.625, 63 },	/* exact tie (glibc: 0.62) */
		{ 2.675, 267 }, /* binary value below the half */
		{ 8.345, 835 }, /* binary value above the half */
		{ 0.005, 1 },	/* above */
		{ 0.015, 1 },	/* below */
		{ 1234.565, 123457 }, { 1e-7, 0 },
		{ 0.0, 0 },	      { 2.5, 250 },
		{ -1.125, -113 }, /* sign split off, then up */
		{ 158.4, 15840 },     { 12345678.875, 1234567888 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		long long c = revenue_js_cents(v[i].x);

		if (c != v[i].cents)
			fail_msg("toFixed(%.17g): got %lld, want %lld", v[i].x,
				 c, v[i].cents);
	}
}

static void
test_js_round(void **state)
{
	(void)state;
	assert_true(revenue_js_round(2.5) == 3);
	assert_true(revenue_js_round(-2.5) == -2);
	assert_true(revenue_js_round(0.49999999999999994) == 0);
	assert_true(revenue_js_round(45.6) == 46);
	assert_true(revenue_js_round(45.4) == 45);
	assert_true(revenue_js_round(12672) == 12672);
}

static void
test_dates(void **state)
{
	struct revenue_date d = { 2025, 1, 1 }, o;
	char s[16];

	(void)state;
	assert_int_equal(revenue_date_to_days(&d), 20089);
	revenue_date_from_days(20089 + 59, &o); /* 2025 is not a leap year */
	revenue_date_format(&o, s, sizeof(s));
	assert_string_equal(s, "2025-03-01");
	d = (struct revenue_date){ 2024, 2, 28 };
	revenue_date_from_days(revenue_date_to_days(&d) + 1, &o);
	revenue_date_format(&o, s, sizeof(s));
	assert_string_equal(s, "2024-02-29");
	d = (struct revenue_date){ 1970, 1, 1 };
	assert_int_equal(revenue_date_to_days(&d), 0);
	d = (struct revenue_date){ 9999, 12, 31 };
	revenue_date_from_days(revenue_date_to_days(&d), &o);
	assert_int_equal(o.y, 9999);
	assert_int_equal(o.m, 12);
	assert_int_equal(o.d, 31);
}

static void
test_tier_parse(void **state)
{
	enum revenue_tier t;

	(void)state;
	assert_int_equal(revenue_tier_parse("growth", &t), 0);
	assert_int_equal(t, REVENUE_GROWTH);
	assert_int_equal(revenue_tier_parse("SCALE", &t), 0);
	assert_int_equal(t, REVENUE_SCALE);
	assert_int_not_equal(revenue_tier_parse("all", &t), 0);
	assert_int_not_equal(revenue_tier_parse("gold", &t), 0);
	assert_int_not_equal(revenue_tier_parse("", &t), 0);
	assert_int_not_equal(revenue_tier_parse("starter ", &t), 0);
}

static void
test_worked_example(void **state)
{
	static const struct revenue_placement pl[] = {
		{ "p-1", "p-1", "banner" },
		{ "p-2", "p-2", "interstitial" },
		{ "p-3", "p-3", "rewarded" },
	};
	static const struct {
		int day;
		const char *placement;
		const char *adapter_prefix;
		long long cents, impressions, clicks;
	} want[] = {
		{ 0, "p-1", "a7f66258", 15840, 12672, 46 },
		{ 0, "p-2", "ca13eef0", 41295, 50981, 408 },
		{ 0, "p-3", "dc801f21", 48279, 91092, 619 },
		{ 1, "p-1", "ca13eef0", 14360, 17728, 64 },
		{ 1, "p-2", "dc801f21", 33859, 63885, 511 },
		{ 1, "p-3", "a7f66258", 41625, 33300, 226 },
		{ 2, "p-1", "dc801f21", 16895, 31877, 115 },
		{ 2, "p-2", "a7f66258", 33275, 26620, 213 },
		{ 2, "p-3", "ca13eef0", 41972, 51817, 352 },
	};
	struct revenue_date start = { 2025, 1, 1 };
	struct revenue_plan plan;
	struct ops_err err = OPS_ERR_INIT;
	char s[16];

	(void)state;
	assert_int_equal(revenue_generate(REVENUE_STARTER, &start, 3, pl, 3,
					  &plan, &err),
			 0);
	assert_int_equal(plan.nrows, 9);
	for (size_t i = 0; i < plan.nrows; i++) {
		const struct revenue_row *r = &plan.rows[i];

		assert_int_equal(r->day, want[i].day);
		assert_string_equal(pl[r->placement].id, want[i].placement);
		assert_memory_equal(sandbox_adapters[r->adapter].id,
				    want[i].adapter_prefix, 8);
		assert_int_equal(r->cents, want[i].cents);
		assert_int_equal(r->impressions, want[i].impressions);
		assert_int_equal(r->clicks, want[i].clicks);
	}
	assert_int_equal(plan.total_cents, 287400);
	revenue_date_format(&plan.end, s, sizeof(s));
	assert_string_equal(s, "2025-01-03");
	/* per-day, per-adapter sums feed the charts */
	assert_int_equal(plan.day_cents[0 * 3 + 0], 15840);
	assert_int_equal(plan.day_cents[2 * 3 + 2], 16895);
	revenue_plan_release(&plan);
}

/* The 25 fixture placements (jobs/sandbox_fixtures.h), named by id. */
static void
sandbox_placements(struct revenue_placement pl[SANDBOX_NALL_PLACEMENTS])
{
	for (int a = 0; a < SANDBOX_NAPPS; a++)
		for (int k = 0; k < SANDBOX_NPLACEMENTS; k++) {
			struct revenue_placement *p =
				&pl[a * SANDBOX_NPLACEMENTS + k];

			p->id = sandbox_apps[a].placement_ids[k];
			p->name = p->id;
			p->type = sandbox_placement_types[k];
		}
}

static void
test_tier_totals(void **state)
{
	static const int windows[] = { 30, 7, 1, 365 };
	struct revenue_placement pl[25];
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	sandbox_placements(pl);
	for (int t = 0; t < REVENUE_NTIERS; t++) {
		double target = revenue_tier_monthly((enum revenue_tier)t);

		for (size_t w = 0; w < sizeof(windows) / sizeof(windows[0]);
		     w++) {
			struct revenue_date start = { 2025, 1, 1 };
			struct revenue_plan plan;
			double total;

			assert_int_equal(revenue_generate((enum revenue_tier)t,
							  &start, windows[w],
							  pl, 25, &plan, &err),
					 0);
			total = (double)plan.total_cents / 100;
			assert_int_equal(plan.nrows, 25 * windows[w]);
			if (total < target * 0.9 || total > target * 1.1)
				fail_msg(
					"%s over %d days: %.2f not within "
					"10%% of %.0f",
					revenue_tier_name((enum revenue_tier)t),
					windows[w], total, target);
			revenue_plan_release(&plan);
		}
	}
}

static void
test_deterministic_and_tier_dependent(void **state)
{
	struct revenue_placement pl[25];
	struct revenue_date start = { 2025, 3, 1 };
	struct revenue_plan a, b, c;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	sandbox_placements(pl);
	assert_int_equal(
		revenue_generate(REVENUE_GROWTH, &start, 30, pl, 25, &a, &err),
		0);
	assert_int_equal(
		revenue_generate(REVENUE_GROWTH, &start, 30, pl, 25, &b, &err),
		0);
	assert_int_equal(
		revenue_generate(REVENUE_SCALE, &start, 30, pl, 25, &c, &err),
		0);
	assert_int_equal(a.nrows, b.nrows);
	assert_memory_equal(a.rows, b.rows, a.nrows * sizeof(*a.rows));
	assert_int_not_equal(a.total_cents, c.total_cents);
	/* the rotation: placement i on day d gets adapter (i + d) mod 3 */
	for (size_t i = 0; i < a.nrows; i++)
		assert_int_equal(a.rows[i].adapter,
				 (a.rows[i].placement + a.rows[i].day) % 3);
	revenue_plan_release(&a);
	revenue_plan_release(&b);
	revenue_plan_release(&c);
}

static void
test_bad_inputs(void **state)
{
	struct revenue_placement pl[1] = { { "x", "x", "banner" } };
	struct revenue_date start = { 2025, 1, 1 };
	struct revenue_date late = { 9999, 12, 1 };
	struct revenue_plan plan;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	assert_int_equal(revenue_generate(REVENUE_STARTER, &start, 30, pl, 0,
					  &plan, &err),
			 OPS_E_INVALID);
	assert_int_equal(revenue_generate(REVENUE_STARTER, &start, 0, pl, 1,
					  &plan, &err),
			 OPS_E_INVALID);
	assert_int_equal(revenue_generate(REVENUE_STARTER, &start,
					  REVENUE_MAX_DAYS + 1, pl, 1, &plan,
					  &err),
			 OPS_E_INVALID);
	assert_int_equal(revenue_generate(REVENUE_STARTER, &late, 60, pl, 1,
					  &plan, &err),
			 OPS_E_INVALID);
	revenue_plan_release(&plan);
	/* an unknown type gets the "other" weight: still rows */
	pl[0].type = "native";
	assert_int_equal(revenue_generate(REVENUE_STARTER, &start, 2, pl, 1,
					  &plan, &err),
			 0);
	assert_int_equal(plan.nrows, 2);
	revenue_plan_release(&plan);
}

static void
test_charts(void **state)
{
	static const struct revenue_placement pl[] = {
		{ "p-1", "p-1", "banner" },
		{ "p-2", "p-2", "interstitial" },
		{ "p-3", "p-3", "rewarded" },
	};
	struct revenue_date start = { 2025, 1, 1 };
	struct revenue_plan plan;
	struct ops_err err = OPS_ERR_INIT;
	struct buf b = BUF_INIT, b2 = BUF_INIT;
	int per = 0;

	(void)state;
	assert_int_equal(revenue_generate(REVENUE_STARTER, &start, 3, pl, 3,
					  &plan, &err),
			 0);
	/* day totals 1054.14, 898.44, 921.42: high, low, low-ish */
	revenue_sparkline(&plan, 60, &b, &per);
	assert_string_equal(buf_str(&b), "█▁▂");
	assert_int_equal(per, 1);
	buf_reset(&b);

	revenue_svg(&plan, &b);
	revenue_svg(&plan, &b2);
	assert_string_equal(buf_str(&b), buf_str(&b2)); /* deterministic */
	assert_non_null(strstr(buf_str(&b), "<svg xmlns="));
	assert_non_null(strstr(buf_str(&b), "FakeNetworkA"));
	assert_non_null(strstr(buf_str(&b), "FakeNetworkC"));
	assert_non_null(strstr(buf_str(&b), "starter tier"));
	assert_non_null(strstr(buf_str(&b), "total $2,874.00"));
	assert_non_null(strstr(buf_str(&b), ">2025-01-03<"));
	assert_non_null(strstr(buf_str(&b), "</svg>\n"));
	revenue_plan_release(&plan);

	/* long windows are bucketed to the width */
	{
		struct revenue_placement one[1] = { { "q", "q", "banner" } };

		assert_int_equal(revenue_generate(REVENUE_SCALE, &start, 365,
						  one, 1, &plan, &err),
				 0);
		buf_reset(&b);
		revenue_sparkline(&plan, 60, &b, &per);
		assert_int_equal(per, 7);
		/* 53 characters of 3 bytes each */
		assert_int_equal(b.len, 53 * 3);
		revenue_plan_release(&plan);
	}
	buf_release(&b);
	buf_release(&b2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_and_noise_vectors),
		cmocka_unit_test(test_js_to_fixed),
		cmocka_unit_test(test_js_round),
		cmocka_unit_test(test_dates),
		cmocka_unit_test(test_tier_parse),
		cmocka_unit_test(test_worked_example),
		cmocka_unit_test(test_tier_totals),
		cmocka_unit_test(test_deterministic_and_tier_dependent),
		cmocka_unit_test(test_bad_inputs),
		cmocka_unit_test(test_charts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
