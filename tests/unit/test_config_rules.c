/* The configuration rules of core/config.c and core/file.c: one rule for
 * blank values, secret files that lose exactly one newline, and env and
 * secret files that must be regular files (a directory is not empty, a
 * FIFO does not block). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/dotenv.h"
#include "core/log.h"

/* a value that passes for each variable: every entry of cfg_defs must be
 * here, so that a new variable is covered by the blank rule test */
static const char *const good[][2] = {
	{ "DATABASE_URL", "postgresql://h/db" },
	{ "DATABASE_SSL", "true" },
	{ "RETENTION_MONTHS", "18" },
	{ "USAGE_RETENTION_MONTHS", "12" },
	{ "CONFIRM", "1" },
	{ "PRIVACY_EXPORT_PROVIDER", "s3" },
	{ "PRIVACY_EXPORT_BUCKET", "bucket" },
	{ "PRIVACY_EXPIRY_DAYS", "30" },
	{ "STRIPE_SECRET_KEY", "sk_test_FAKE_abcdef" },
	{ "STRIPE_API_VERSION", "2023-10-16" },
	{ "APEXOPS_STRIPE_API_BASE", "https://api.stripe.com" },
	{ "STRIPE_WEBHOOK_SECRET", "whsec_FAKE_abcdef" },
	{ "SANDBOX_USER_PASSWORD", "pass word" },
	{ "CRON_TZ", "Europe/Tallinn" },
	{ "APP_ENV", "staging" },
	{ "NODE_ENV", "development" },
	{ "APEXOPS_HOME", "/tmp/apexops-home" },
	{ "APEXOPS_LOG_LEVEL", "debug" },
	{ "APEXOPS_LOG_FORMAT", "json" },
	{ "APEXOPS_DB_CONNECT_TIMEOUT", "5" },
	{ "APEXOPS_DB_CONNECT_RETRIES", "2" },
	{ "DATABASE_STATEMENT_TIMEOUT_MS", "100" },
	{ "APEXOPS_LOCK_TIMEOUT_MS", "100" },
	{ "APEXOPS_PG_BINDIR", "/usr/lib/postgresql/15/bin" },
	{ "APEXOPS_MIGRATIONS_DIR", "/tmp" },
	{ "APEXOPS_SCHEDULE_STRIPE_USAGE_SYNC", "0 2 * * *" },
	{ "APEXOPS_SCHEDULE_USAGE_PURGE", "off" },
	{ "APEXOPS_SCHEDULE_DUNNING_RETRIES", "@daily" },
	{ "APEXOPS_SCHEDULE_PRIVACY_EXPIRY", "0 4 * * *" },
	{ "APEXOPS_SCHEDULE_QUEUE_PRUNE", "15 4 * * *" },
	{ "APEXOPS_CRON_GRACE_S", "60" },
	{ "APEXOPS_CRON_LEASE_S", "30" },
	{ "APEXOPS_CRON_DEADLINE_S", "21600" },
	{ "APEXOPS_HTTP_ADDR", "127.0.0.1:9187" },
	{ "APEXOPS_CLOCK_START", "2026-12-01T00:00:00Z" },
	{ "APEXOPS_CLOCK_EPOCH", "1796083200" },
	{ "APEXOPS_CLOCK_SPEED", "60" },
	{ "APEXOPS_WORKER_CONCURRENCY", "8" },
	{ "PRIVACY_WORKER_CONCURRENCY", "2" },
	{ "APEXOPS_WORKER_LEASE_S", "60" },
	{ "APEXOPS_WORKER_GRACE_S", "60" },
	{ "APEXOPS_QUEUE_KEEP_DAYS", "7" },
	{ "APEXOPS_PURGE_MAX_LAG_MS", "5000" },
	{ "APEXOPS_PURGE_MAX_LAG_BYTES", "64MB" },
	{ "APEXOPS_PURGE_MAX_LAG_WAIT_S", "60" },
	{ "PRIVACY_EXPORT_DIR", "/tmp/exports" },
	{ "APEXOPS_GCS_ENDPOINT", "http://127.0.0.1:4443" },
	{ "APEXOPS_GCS_HMAC_ACCESS_ID", "GOOG1EXAMPLE" },
	{ "APEXOPS_GCS_HMAC_SECRET", "c2VjcmV0" },
	{ "GOOGLE_APPLICATION_CREDENTIALS", "/tmp/sa.json" },
	{ "APEXOPS_S3_MULTIPART_THRESHOLD_MB", "5" },
	{ "APEXOPS_STORAGE_TIMEOUT_S", "30" },
	{ "STRIPE_MAX_RPS", "25" },
	{ "APEXOPS_STRIPE_CONCURRENCY", "4" },
	{ "APEXOPS_STRIPE_METER_EVENTS", "impressions=apex_impressions" },
	{ "DUNNING_RETRY_DAYS", "3,5,7" },
	{ "APEXOPS_STRIPE_TIMEOUT_MS", "1000" },
};

static const char *const *fake_env;

static const char *
fake_getenv(const char *name)
{
	for (size_t i = 0; fake_env[i] != NULL; i += 2)
		if (strcmp(fake_env[i], name) == 0)
			return fake_env[i + 1];
	return NULL;
}

static char tmpdir[64];
static char empty_env[96];

static int
setup(void **state)
{
	FILE *f;

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/apexops-cfg-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(empty_env, sizeof(empty_env), "%s/empty.env", tmpdir);
	f = fopen(empty_env, "w");
	if (f == NULL)
		return -1;
	fclose(f);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	log_forget_secrets();
	return system(cmd) == 0 ? 0 : -1;
}

static const char *
good_value(const char *name)
{
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (strcmp(good[i][0], name) == 0)
			return good[i][1];
	return NULL;
}

/* load with one variable set to value; returns config_load's result */
static int
load_one(const char *name, const char *value, struct ops_err *err)
{
	const char *env[] = { name, value, NULL };
	struct ops_config cfg;
	int r;

	fake_env = env;
	ops_err_clear(err);
	r = config_load(&cfg, empty_env, fake_getenv, err);
	if (r == 0)
		config_release(&cfg);
	return r;
}

static void
expect_refused(const char *name, const char *value, const char *want)
{
	struct ops_err err = OPS_ERR_INIT;

	if (load_one(name, value, &err) != OPS_E_CONFIG)
		fail_msg("%s='%s' accepted", name, value);
	if (strstr(err.msg, name) == NULL || strstr(err.msg, want) == NULL)
		fail_msg("%s='%s': want '%s' in: %s", name, value, want,
			 err.msg);
}

static void
test_blank_values_every_variable(void **state)
{
	static const char *const blank[] = { "", " ", "\t", "  \n ", "\r" };

	(void)state;
	for (int i = 0; i < cfg_ndefs; i++) {
		const struct cfg_def *d = &cfg_defs[i];
		const char *v = good_value(d->name);
		struct ops_err err = OPS_ERR_INIT;
		bool raw_secret =
			(d->flags & CFG_SECRET) && !(d->flags & CFG_URL_SECRET);
		char padded[128];

		if (v == NULL)
			fail_msg("no good value for %s in the table", d->name);
		if (load_one(d->name, v, &err) != 0)
			fail_msg("%s='%s' refused: %s", d->name, v, err.msg);
		for (size_t b = 0; b < sizeof(blank) / sizeof(blank[0]); b++)
			expect_refused(d->name, blank[b],
				       "set a value or unset it");
		snprintf(padded, sizeof(padded), " %s", v);
		if (raw_secret) {
			/* a key or password is used as given */
			snprintf(padded, sizeof(padded), "%s ", v);
			assert_int_equal(load_one(d->name, padded, &err), 0);
			continue;
		}
		expect_refused(d->name, padded, "white space");
		snprintf(padded, sizeof(padded), "%s ", v);
		expect_refused(d->name, padded, "white space");
		snprintf(padded, sizeof(padded), "%s\t", v);
		expect_refused(d->name, padded, "white space");
	}
}

/* APEXOPS_STRIPE_METER_EVENTS: its syntax is checked at load */
static void
test_meter_events_syntax(void **state)
{
	static const char *const good_v[] = {
		"impressions=apex_impressions",
		"impressions=a,api_calls=b,data_transfer=c",
		"video.minutes=meter:video-minutes",
	};
	static const char *const bad_v[] = {
		"impressions",
		"impressions=",
		"=name",
		"impressions=a,",
		",impressions=a",
		"impressions=a b",
		"imp ressions=a",
		"impressions=a,impressions=b",
		"impressions=a;b",
		"a_metric_name_longer_than_thirty_two_chars=x",
	};
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(good_v) / sizeof(good_v[0]); i++)
		if (load_one("APEXOPS_STRIPE_METER_EVENTS", good_v[i], &err) !=
		    0)
			fail_msg("'%s' refused: %s", good_v[i], err.msg);
	for (size_t i = 0; i < sizeof(bad_v) / sizeof(bad_v[0]); i++)
		expect_refused("APEXOPS_STRIPE_METER_EVENTS", bad_v[i],
			       "expected metric=event_name pairs");
}

static void
test_dunning_retry_days(void **state)
{
	static const char *const bad[] = {
		"0",	  "3,3", "5,3", "3,,5",
		"3,5,",	  ",3",	 "3;5", "x",
		"3,5,7d", "366", "-1",	"1,2,3,4,5,6,7,8,9,10,11",
		"3, 5",
	};
	static const char *const ok[] = { "3,5,7", "1", "1,2,3,4,5,6,7,8,9,10",
					  "7,14,365" };
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_refused("DUNNING_RETRY_DAYS", bad[i], "increasing");
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (load_one("DUNNING_RETRY_DAYS", ok[i], &err) != 0)
			fail_msg("DUNNING_RETRY_DAYS='%s' refused: %s", ok[i],
				 err.msg);
}

static void
test_blank_values_in_env_file(void **state)
{
	static const char *const none[] = { NULL };
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "APEXOPS_HOME=\" \"\n", "APEXOPS_HOME: white-space-only" },
		{ "STRIPE_SECRET_KEY=\n", "STRIPE_SECRET_KEY: empty value" },
		{ "APP_ENV=''\n", "APP_ENV: empty value (from the env file)" },
		{ "CRON_TZ=\"UTC \"\n", "CRON_TZ: invalid value 'UTC '" },
		{ "STRIPE_SECRET_KEY_FILE=\n",
		  "STRIPE_SECRET_KEY_FILE: empty" },
	};
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/blank.env", tmpdir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ops_config cfg;
		struct ops_err err = OPS_ERR_INIT;
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		fputs(cases[i].text, f);
		fclose(f);
		fake_env = none;
		assert_int_equal(config_load(&cfg, path, fake_getenv, &err),
				 OPS_E_CONFIG);
		if (strstr(err.msg, cases[i].want) == NULL)
			fail_msg("want '%s' in: %s", cases[i].want, err.msg);
	}
}

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
}

static void
test_secret_file_loses_one_newline(void **state)
{
	static const struct {
		const char *var, *text, *want; /* want NULL: refused */
	} cases[] = {
		{ "STRIPE_SECRET_KEY", "sk_test_FAKE_abc\n",
		  "sk_test_FAKE_abc" },
		{ "STRIPE_SECRET_KEY", "sk_test_FAKE_abc", "sk_test_FAKE_abc" },
		{ "STRIPE_SECRET_KEY", "sk_test_FAKE_abc\n\n",
		  "sk_test_FAKE_abc\n" },
		{ "STRIPE_SECRET_KEY", "sk_test_FAKE_abc\r\n",
		  "sk_test_FAKE_abc\r" },
		{ "SANDBOX_USER_PASSWORD", " pass word \n", " pass word " },
		{ "STRIPE_SECRET_KEY", "\n", NULL },
		{ "STRIPE_SECRET_KEY", "", NULL },
		{ "SANDBOX_USER_PASSWORD", " \t\n", NULL },
	};
	char path[128], fname[64];

	(void)state;
	snprintf(path, sizeof(path), "%s/secret", tmpdir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *env[] = { fname, path, NULL };
		struct ops_config cfg;
		struct ops_err err = OPS_ERR_INIT;
		int r;

		snprintf(fname, sizeof(fname), "%s_FILE", cases[i].var);
		write_file(path, cases[i].text, strlen(cases[i].text));
		fake_env = env;
		r = config_load(&cfg, empty_env, fake_getenv, &err);
		if (cases[i].want == NULL) {
			assert_int_equal(r, OPS_E_CONFIG);
			assert_non_null(strstr(err.msg, cases[i].var));
			assert_non_null(
				strstr(err.msg, "set a value or unset it"));
			continue;
		}
		if (r != 0)
			fail_msg("case %zu refused: %s", i, err.msg);
		assert_string_equal(strcmp(cases[i].var, "STRIPE_SECRET_KEY") ==
						    0
					    ? cfg.stripe_secret_key
					    : cfg.sandbox_user_password,
				    cases[i].want);
		config_release(&cfg);
	}
}

static void
test_files_must_be_regular(void **state)
{
	char fifo[128], missing[128];
	const char *const specials[] = { tmpdir, fifo };
	static const char *const none[] = { NULL };
	static const char *const kinds[] = { "directory", "FIFO" };

	(void)state;
	snprintf(fifo, sizeof(fifo), "%s/fifo", tmpdir);
	snprintf(missing, sizeof(missing), "%s/missing", tmpdir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	for (size_t i = 0; i < 2; i++) {
		const char *env[] = { "STRIPE_SECRET_KEY_FILE", specials[i],
				      NULL };
		struct ops_config cfg;
		struct ops_err err = OPS_ERR_INIT;
		struct dotenv de = DOTENV_INIT;

		/* --env-file naming it: not an empty file, and no hang */
		fake_env = none;
		assert_int_equal(
			config_load(&cfg, specials[i], fake_getenv, &err),
			OPS_E_CONFIG);
		assert_non_null(strstr(err.msg, "--env-file"));
		assert_non_null(strstr(err.msg, kinds[i]));
		assert_int_equal(ops_err_exit_code(&err), 78);
		assert_int_equal(dotenv_load(specials[i], &de, &err),
				 OPS_E_CONFIG);
		/* a secret file naming it */
		fake_env = env;
		assert_int_equal(
			config_load(&cfg, empty_env, fake_getenv, &err),
			OPS_E_CONFIG);
		assert_non_null(strstr(err.msg, "STRIPE_SECRET_KEY_FILE"));
		assert_non_null(strstr(err.msg, kinds[i]));
	}
	{
		const char *env[] = { "STRIPE_SECRET_KEY_FILE", missing, NULL };
		struct ops_config cfg;
		struct ops_err err = OPS_ERR_INIT;

		fake_env = env;
		assert_int_equal(
			config_load(&cfg, empty_env, fake_getenv, &err),
			OPS_E_CONFIG);
		assert_non_null(strstr(err.msg, "No such file"));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blank_values_every_variable),
		cmocka_unit_test(test_meter_events_syntax),
		cmocka_unit_test(test_blank_values_in_env_file),
		cmocka_unit_test(test_dunning_retry_days),
		cmocka_unit_test(test_secret_file_loses_one_newline),
		cmocka_unit_test(test_files_must_be_regular),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
