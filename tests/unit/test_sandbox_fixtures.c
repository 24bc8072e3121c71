/* Sandbox fixtures and helpers: UUIDv5 known answers, bcrypt keep/replace,
 * the §4.1/§4.2 inventory, and the fixture constants agreeing wherever
 * they are used (config JSON, waterfall JSON, revenue's rotation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>

#include "core/parse.h"
#include "jobs/revenue.h"
#include "jobs/sandbox.h"

static void
test_uuid5_known_answers(void **state)
{
	char out[37];

	(void)state;
	/* RFC 4122 DNS namespace; Python uuid.uuid5(NAMESPACE_DNS, ...) */
	assert_int_equal(sandbox_uuid5("6ba7b810-9dad-11d1-80b4-00c04fd430c8",
				       "www.example.com", out),
			 0);
	assert_string_equal(out, "2ed6657d-e927-568b-95e1-2665a8aea6a2");
	assert_int_equal(sandbox_uuid5("6ba7b810-9dad-11d1-80b4-00c04fd430c8",
				       "python.org", out),
			 0);
	assert_string_equal(out, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
	assert_int_equal(sandbox_uuid5("not-a-uuid", "x", out), OPS_E_INVALID);
	assert_int_equal(
		sandbox_uuid5("6ba7b810-9dad-11d1-80b4-00c04fd430", "x", out),
		OPS_E_INVALID);
}

static void
test_password_hash_keep_and_replace(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	char *h1 = NULL, *h2 = NULL, *h3 = NULL, *h4 = NULL;
	bool changed;

	(void)state;
	assert_int_equal(sandbox_password_hash("SandboxPass!2025", NULL, &h1,
					       &changed, &err),
			 0);
	assert_true(changed);
	assert_int_equal(strncmp(h1, "$2b$10$", 7), 0);
	assert_int_equal(strlen(h1), 60);
	/* same password: the stored hash is kept byte for byte */
	assert_int_equal(sandbox_password_hash("SandboxPass!2025", h1, &h2,
					       &changed, &err),
			 0);
	assert_false(changed);
	assert_string_equal(h1, h2);
	/* another password: a new hash */
	assert_int_equal(
		sandbox_password_hash("other", h1, &h3, &changed, &err), 0);
	assert_true(changed);
	assert_string_not_equal(h1, h3);
	/* a weak (cost 5) hash of the right password is replaced */
	assert_int_equal(
		sandbox_password_hash("U*U",
				      "$2b$05$CCCCCCCCCCCCCCCCCCCCC."
				      "E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
				      &h4, &changed, &err),
		0);
	assert_true(changed);
	free(h1);
	free(h2);
	free(h3);
	free(h4);
}

static void
test_inventory(void **state)
{
	const char *seen[SANDBOX_NAPPS * SANDBOX_NPLACEMENTS];
	int n = 0;

	(void)state;
	for (int a = 0; a < SANDBOX_NAPPS; a++) {
		assert_true(is_uuid(sandbox_apps[a].id));
		for (int p = 0; p < SANDBOX_NPLACEMENTS; p++) {
			const char *id = sandbox_apps[a].placement_ids[p];

			assert_true(is_uuid(id));
			for (int j = 0; j < n; j++)
				assert_string_not_equal(seen[j], id);
			seen[n++] = id;
		}
	}
	assert_int_equal(n, 25);
	assert_string_equal(sandbox_apps[3].placement_ids[2],
			    "916aa3f1-b875-45f9-b672-bb6461ceadf4");
	assert_string_equal(sandbox_users[0].id, SANDBOX_OWNER_ID);
	assert_true(sandbox_adapters[1].fill_rate == 0.55);
	assert_int_equal(sandbox_adapters[2].timeout_ms, 1500);
}

static void
test_numbers_round_trip(void **state)
{
	static const struct {
		double x;
		const char *want;
	} cases[] = {
		{ 8.1, "8.1" },
		{ 12.5, "12.5" },
		{ 1, "1" },
		{ 0.55, "0.55" },
		{ 0.35, "0.35" },
		{ 5.3, "5.3" },
		{ 0.1 + 0.2, "0.30000000000000004" },
	};
	char buf[32];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sandbox_format_number(cases[i].x, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
	}
}

/* What bootstrap writes into adapter_configs.config is what revenue
 * computes impressions from: one set of numbers. */
static void
test_config_json_agrees_with_the_fixture(void **state)
{
	(void)state;
	for (int i = 0; i < SANDBOX_NADAPTERS; i++) {
		const struct sandbox_adapter *a = &sandbox_adapters[i];
		char *text = sandbox_adapter_config_json(a);
		json_t *doc = json_loads(text, 0, NULL);

		assert_non_null(doc);
		assert_string_equal(
			json_string_value(json_object_get(doc, "behavior")),
			a->behavior);
		assert_true(json_number_value(json_object_get(
				    doc, "targetEcpm")) == a->ecpm);
		assert_true(json_number_value(json_object_get(
				    doc, "fillRate")) == a->fill_rate);
		assert_int_equal(
			json_integer_value(json_object_get(doc, "timeoutMs")),
			a->timeout_ms);
		json_decref(doc);
		free(text);
	}
	{
		char *text = sandbox_adapter_config_json(&sandbox_adapters[1]);

		/* the original's text (tests/e2e checks it in the database) */
		assert_string_equal(text, "{\"behavior\": \"random_fill\", "
					  "\"fillRate\": 0.55, \"timeoutMs\": "
					  "450, \"targetEcpm\": 8.1}");
		free(text);
	}
}

static void
test_waterfall_json_agrees_with_the_fixture(void **state)
{
	char *text = sandbox_waterfall_priorities_json();
	json_t *doc = json_loads(text, 0, NULL);
	char id[37], again[37];

	(void)state;
	assert_int_equal(json_array_size(doc), SANDBOX_NADAPTERS);
	for (int i = 0; i < SANDBOX_NADAPTERS; i++) {
		json_t *e = json_array_get(doc, (size_t)i);

		assert_string_equal(
			json_string_value(json_object_get(e, "adapter_id")),
			sandbox_adapters[i].id);
		assert_int_equal(
			json_integer_value(json_object_get(e, "priority")),
			i + 1);
		assert_int_equal(
			json_integer_value(json_object_get(e, "timeout_ms")),
			sandbox_adapters[i].timeout_ms);
	}
	json_decref(doc);
	free(text);
	/* derived ids are stable and differ per placement */
	assert_int_equal(
		sandbox_waterfall_id(sandbox_apps[0].placement_ids[0], id), 0);
	assert_int_equal(
		sandbox_waterfall_id(sandbox_apps[0].placement_ids[0], again),
		0);
	assert_string_equal(id, again);
	assert_int_equal(
		sandbox_waterfall_id(sandbox_apps[0].placement_ids[1], again),
		0);
	assert_string_not_equal(id, again);
}

/* Revenue rotates over the fixture adapters and derives impressions from
 * their eCPMs; its placements are the fixture placements. */
static void
test_revenue_uses_the_fixture(void **state)
{
	struct revenue_placement pl[SANDBOX_NALL_PLACEMENTS];
	char names[SANDBOX_NALL_PLACEMENTS][96];
	struct revenue_date start = { 2025, 1, 1 };
	struct ops_err err = OPS_ERR_INIT;
	struct revenue_plan plan;

	(void)state;
	assert_int_equal(REVENUE_NADAPTERS, SANDBOX_NADAPTERS);
	for (int a = 0; a < SANDBOX_NAPPS; a++)
		for (int p = 0; p < SANDBOX_NPLACEMENTS; p++) {
			int k = a * SANDBOX_NPLACEMENTS + p;

			sandbox_placement_name(&sandbox_apps[a], p, names[k],
					       sizeof(names[k]));
			pl[k].id = sandbox_apps[a].placement_ids[p];
			pl[k].name = names[k];
			pl[k].type = sandbox_placement_types[p];
			assert_int_equal(sandbox_placement_index(pl[k].id), k);
		}
	assert_int_equal(sandbox_placement_index("not-a-placement"), -1);
	assert_int_equal(sandbox_placement_index(NULL), -1);
	assert_string_equal(names[17], "Android TV Rewarded 01");
	assert_int_equal(revenue_generate(REVENUE_GROWTH, &start, 30, pl,
					  SANDBOX_NALL_PLACEMENTS, &plan, &err),
			 0);
	for (size_t i = 0; i < plan.nrows; i++) {
		const struct revenue_row *r = &plan.rows[i];
		double impr =
			revenue_js_round((double)r->cents / 100 * 1000 /
					 sandbox_adapters[r->adapter].ecpm);

		assert_true(r->adapter >= 0 && r->adapter < SANDBOX_NADAPTERS);
		assert_int_equal(r->impressions,
				 (long long)(impr > 80 ? impr : 80));
	}
	revenue_plan_release(&plan);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid5_known_answers),
		cmocka_unit_test(test_password_hash_keep_and_replace),
		cmocka_unit_test(test_inventory),
		cmocka_unit_test(test_numbers_round_trip),
		cmocka_unit_test(test_config_json_agrees_with_the_fixture),
		cmocka_unit_test(test_waterfall_json_agrees_with_the_fixture),
		cmocka_unit_test(test_revenue_uses_the_fixture),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
