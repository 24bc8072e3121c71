/* Sandbox fixtures and helpers: UUIDv5 known answers, bcrypt keep/replace,
 * the §4.1/§4.2 inventory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/parse.h"
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
	assert_string_equal(sandbox_adapters[1].fill_rate, "0.55");
	assert_int_equal(sandbox_adapters[2].timeout_ms, 1500);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid5_known_answers),
		cmocka_unit_test(test_password_hash_keep_and_replace),
		cmocka_unit_test(test_inventory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
