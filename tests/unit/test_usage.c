/*
 * The pure parts of the Stripe usage sync (stripe/usage.c): the meter
 * events mapping, the default rate by key type, the duplicate-identifier
 * answer, and the key read at the start of each run (file, environment,
 * restricted keys, rotation, refusals).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "stripe/stripe.h"
#include "stripe/usage.h"

static const char *
event_of(const struct usage_meters *m, const char *metric)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->v[i].metric, metric) == 0)
			return m->v[i].event_name;
	return NULL;
}

static void
test_meters_default_and_mapped(void **state)
{
	struct usage_meters m;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	assert_int_equal(usage_meters_parse(NULL, &m, &err), 0);
	assert_int_equal(m.n, 3);
	assert_string_equal(event_of(&m, "impressions"), "impressions");
	assert_string_equal(event_of(&m, "api_calls"), "api_calls");
	assert_string_equal(event_of(&m, "data_transfer"), "data_transfer");
	usage_meters_release(&m);

	assert_int_equal(usage_meters_parse("impressions=apex_imp,video=apex_"
					    "video",
					    &m, &err),
			 0);
	assert_int_equal(m.n, 4);
	assert_string_equal(event_of(&m, "impressions"), "apex_imp");
	assert_string_equal(event_of(&m, "api_calls"), "api_calls");
	assert_string_equal(event_of(&m, "video"), "apex_video");
	usage_meters_release(&m);
}

static void
test_meters_refused(void **state)
{
	static const char *const bad[] = {
		"impressions",
		"impressions=",
		"=x",
		"impressions=a,",
		"impressions=a,impressions=b",
		"video=a,video=b",
		"impressions=a b",
		"x=y z",
		"metric_name_that_is_far_longer_than_32=x",
	};
	struct usage_meters m;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (usage_meters_parse(bad[i], &m, &err) != OPS_E_CONFIG)
			fail_msg("'%s' accepted", bad[i]);
		assert_non_null(strstr(err.msg, "APEXOPS_STRIPE_METER_EVENTS"));
		assert_null(m.v);
	}
}

static void
test_default_rps(void **state)
{
	(void)state;
	assert_int_equal(stripe_default_rps(0, "sk_test_x"), 25);
	assert_int_equal(stripe_default_rps(0, "rk_test_x"), 25);
	assert_int_equal(stripe_default_rps(0, "sk_live_x"), 100);
	assert_int_equal(stripe_default_rps(0, "rk_live_x"), 100);
	assert_int_equal(stripe_default_rps(1000, "sk_test_x"), 1000);
}

static void
test_duplicate_answer(void **state)
{
	(void)state;
	assert_true(usage_is_duplicate(
		400, "An event already exists with identifier apexops:x:0."));
	assert_false(usage_is_duplicate(
		409, "An event already exists with identifier apexops:x:0."));
	assert_false(usage_is_duplicate(400, "Missing required param: x."));
	assert_false(usage_is_duplicate(400, NULL));
}

static char keyfile[64];

static void
write_key(const char *text)
{
	FILE *f = fopen(keyfile, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* the key is read when asked, so a rotated file takes effect at once */
static void
test_key_read_each_run(void **state)
{
	struct ops_config cfg;
	struct ops_err err = OPS_ERR_INIT;
	char *key = NULL;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	snprintf(keyfile, sizeof(keyfile), "/tmp/apexops-key-XXXXXX");
	close(mkstemp(keyfile));
	unsetenv("STRIPE_SECRET_KEY");
	setenv("STRIPE_SECRET_KEY_FILE", keyfile, 1);
	write_key("rk_test_first\n");
	assert_int_equal(stripe_load_key(&cfg, "the usage sync", &key, &err),
			 0);
	assert_string_equal(key, "rk_test_first");
	freezero_str(key);
	write_key("sk_test_rotated\n");
	assert_int_equal(stripe_load_key(&cfg, "the usage sync", &key, &err),
			 0);
	assert_string_equal(key, "sk_test_rotated");
	freezero_str(key);
	/* both set: refused */
	setenv("STRIPE_SECRET_KEY", "sk_test_env", 1);
	assert_int_equal(stripe_load_key(&cfg, "the usage sync", &key, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "both set"));
	unsetenv("STRIPE_SECRET_KEY_FILE");
	assert_int_equal(stripe_load_key(&cfg, "the usage sync", &key, &err),
			 0);
	assert_string_equal(key, "sk_test_env");
	freezero_str(key);
	/* not a Stripe key: refused without showing it */
	setenv("STRIPE_SECRET_KEY", "pk_test_publishable", 1);
	assert_int_equal(stripe_load_key(&cfg, "the usage sync", &key, &err),
			 OPS_E_CONFIG);
	assert_null(strstr(err.msg, "pk_test_publishable"));
	/* none: names STRIPE_SECRET_KEY */
	unsetenv("STRIPE_SECRET_KEY");
	assert_int_equal(stripe_load_key(&cfg, "the usage sync", &key, &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "STRIPE_SECRET_KEY is not set"));
	assert_null(key);
	/* the .env value read at start is the last resort */
	cfg.stripe_secret_key = "sk_test_dotenv";
	assert_int_equal(stripe_load_key(&cfg, "the usage sync", &key, &err),
			 0);
	assert_string_equal(key, "sk_test_dotenv");
	freezero_str(key);
	unlink(keyfile);
	log_forget_secrets();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_meters_default_and_mapped),
		cmocka_unit_test(test_meters_refused),
		cmocka_unit_test(test_default_rps),
		cmocka_unit_test(test_duplicate_answer),
		cmocka_unit_test(test_key_read_each_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
