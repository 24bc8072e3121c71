/* Unit tests of the core parsers: .env, strict numbers, dates, config. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/dotenv.h"
#include "core/log.h"
#include "core/parse.h"

static void
test_buf_truncate(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	buf_truncate(&b, 0); /* empty, no storage: nothing to do */
	assert_string_equal(buf_str(&b), "");
	assert_int_equal(buf_puts(&b, "key[a]"), 0);
	buf_truncate(&b, 3);
	assert_int_equal(b.len, 3);
	assert_string_equal(buf_str(&b), "key");
	buf_truncate(&b, 10); /* longer than the contents: unchanged */
	assert_string_equal(buf_str(&b), "key");
	assert_int_equal(buf_puts(&b, "[b]"), 0);
	assert_string_equal(buf_str(&b), "key[b]");
	buf_reset(&b);
	assert_string_equal(buf_str(&b), "");
	buf_release(&b);
}

static void
test_buf_release_wipe(void **state)
{
	struct buf b = BUF_INIT;

	(void)state;
	buf_release_wipe(&b); /* no storage: nothing to do */
	assert_null(b.data);
	assert_int_equal(buf_puts(&b, "s3cret"), 0);
	buf_release_wipe(&b);
	assert_null(b.data);
	assert_int_equal(b.len + b.cap, 0);
	assert_int_equal(buf_puts(&b, "again"), 0); /* reusable */
	assert_string_equal(buf_str(&b), "again");
	buf_release_wipe(&b);
}

static void
test_parse_long(void **state)
{
	static const struct {
		const char *in;
		int ok;
		long v;
	} cases[] = {
		{ "18", 1, 18 },     { "1", 1, 1 },
		{ "1200", 1, 1200 }, { "0", 0, 0 },
		{ "-1", 0, 0 },	     { "1201", 0, 0 },
		{ "18abc", 0, 0 },   { "abc", 0, 0 },
		{ "", 0, 0 },	     { "1e3", 0, 0 },
		{ " 18", 0, 0 },     { "18 ", 0, 0 },
		{ "+18", 0, 0 },     { "0x12", 0, 0 },
		{ "18.0", 0, 0 },    { "-", 0, 0 },
		{ "0018", 1, 18 },   { "99999999999999999999", 0, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long v = -7;
		int r = parse_long(cases[i].in, 1, 1200, &v);

		if (cases[i].ok) {
			assert_int_equal(r, 0);
			assert_int_equal(v, cases[i].v);
		} else {
			assert_int_equal(r, OPS_E_INVALID);
			assert_int_equal(v, -7); /* untouched on error */
		}
	}
}

static void
test_parse_size(void **state)
{
	static const struct {
		const char *in;
		int ok;
		long long v;
	} cases[] = {
		{ "1", 1, 1 },
		{ "4096", 1, 4096 },
		{ "4096B", 1, 4096 },
		{ "1kB", 1, 1024 },
		{ "16MB", 1, 16LL << 20 },
		{ "2GB", 1, 2LL << 30 },
		{ "1TB", 1, 1LL << 40 },
		{ "0016MB", 1, 16LL << 20 },
		{ "0", 0, 0 },			  /* under min */
		{ "0MB", 0, 0 },		  /* under min */
		{ "2TB", 0, 0 },		  /* over max */
		{ "1099511627777", 0, 0 },	  /* over max */
		{ "16mb", 0, 0 },		  /* PostgreSQL's case */
		{ "16KB", 0, 0 },		  /* kB, not KB */
		{ "16 MB", 0, 0 },		  /* no blank */
		{ "16MiB", 0, 0 },		  /* not a PostgreSQL unit */
		{ "MB", 0, 0 },			  /* no number */
		{ "", 0, 0 },			  /* empty */
		{ "-1", 0, 0 },			  /* no sign */
		{ "+1", 0, 0 },			  /* no sign */
		{ "1.5MB", 0, 0 },		  /* no fraction */
		{ "1e6", 0, 0 },		  /* no exponent */
		{ "0x10", 0, 0 },		  /* no hex */
		{ "16MB ", 0, 0 },		  /* trailing blank */
		{ "99999999999999999999", 0, 0 }, /* overflow */
		{ "9999999999TB", 0, 0 },	  /* overflows on the shift */
	};
	long long v = -7;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r;

		v = -7;
		r = parse_size(cases[i].in, 1, 1LL << 40, &v);
		if (cases[i].ok) {
			assert_int_equal(r, 0);
			assert_int_equal(v, cases[i].v);
		} else {
			assert_int_equal(r, OPS_E_INVALID);
			assert_int_equal(v, -7); /* untouched on error */
		}
	}
	assert_int_equal(parse_size(NULL, 1, 10, &v), OPS_E_INVALID);
	/* the whole range of long long, at its edge */
	assert_int_equal(parse_size("9223372036854775807", 0, LLONG_MAX, &v),
			 0);
	assert_true(v == LLONG_MAX);
	assert_int_equal(parse_size("8388608TB", 0, LLONG_MAX, &v),
			 OPS_E_INVALID); /* 2^63 */
	{
		static const struct {
			long long n;
			const char *s;
		} back[] = { { 16LL << 20, "16MB" },  { 8192, "8kB" },
			     { 100000, "100000B" },   { 1LL << 40, "1TB" },
			     { 1LL << 50, "1024TB" }, { 0, "0B" } };
		char out[32];

		for (size_t i = 0; i < sizeof(back) / sizeof(back[0]); i++) {
			format_size(back[i].n, out, sizeof(out));
			assert_string_equal(out, back[i].s);
			/* and it reads back */
			assert_int_equal(parse_size(out, 0, LLONG_MAX, &v), 0);
			assert_true(v == back[i].n);
		}
	}
}

static void
test_parse_date(void **state)
{
	static const char *const good[] = { "2025-01-01", "2024-02-29",
					    "2025-12-31", "0001-01-01" };
	static const char *const bad[] = {
		"2025-02-30",  "2025-02-29", "2025-13-01", "2025-00-10",
		"2025-1-01",   "2025-01-1",  "25-01-01",   "2025/01/01",
		"2025-01-01x", "",	     "2100-02-29", "0000-01-01"
	};
	int y, m, d;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(parse_date(good[i], &y, &m, &d), 0);
	assert_int_equal(parse_date("2024-02-29", &y, &m, &d), 0);
	assert_int_equal(y, 2024);
	assert_int_equal(m, 2);
	assert_int_equal(d, 29);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse_date(bad[i], &y, &m, &d), OPS_E_INVALID);
}

static void
test_uuid(void **state)
{
	(void)state;
	assert_true(is_uuid("138f62be-5cee-4c73-aba4-ba78ea77ab44"));
	assert_true(is_uuid("138F62BE-5CEE-4C73-ABA4-BA78EA77AB44"));
	assert_false(is_uuid("138f62be5cee4c73aba4ba78ea77ab44"));
	assert_false(is_uuid("138f62be-5cee-4c73-aba4-ba78ea77ab4"));
	assert_false(is_uuid("138f62be-5cee-4c73-aba4-ba78ea77ab4g"));
	assert_false(is_uuid("'; DROP TABLE users; --"));
	assert_false(is_uuid(NULL));
}

static void
test_dotenv_syntax(void **state)
{
	static const char text[] = "# comment\n"
				   "PLAIN=value\n"
				   "export EXPORTED=yes\n"
				   "SPACED = padded  \n"
				   "INLINE=abc # comment\n"
				   "HASH=abc#def\n"
				   "SINGLE='lit $x \\n'\n"
				   "DOUBLE=\"a\\nb \\\"q\\\"\"\n"
				   "MULTI=\"line1\nline2\"\n"
				   "EMPTY=\n"
				   "BACK=`tick`\n"
				   "PLAIN=override\n"
				   "\r\n"
				   "CRLF=x\r\n";
	struct dotenv env = DOTENV_INIT;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	assert_int_equal(dotenv_parse(text, strlen(text), "t.env", &env, &err),
			 0);
	assert_string_equal(dotenv_get(&env, "PLAIN"), "override");
	assert_string_equal(dotenv_get(&env, "EXPORTED"), "yes");
	assert_string_equal(dotenv_get(&env, "SPACED"), "padded");
	assert_string_equal(dotenv_get(&env, "INLINE"), "abc");
	assert_string_equal(dotenv_get(&env, "HASH"), "abc#def");
	assert_string_equal(dotenv_get(&env, "SINGLE"), "lit $x \\n");
	assert_string_equal(dotenv_get(&env, "DOUBLE"), "a\nb \"q\"");
	assert_string_equal(dotenv_get(&env, "MULTI"), "line1\nline2");
	assert_string_equal(dotenv_get(&env, "EMPTY"), "");
	assert_string_equal(dotenv_get(&env, "BACK"), "tick");
	assert_string_equal(dotenv_get(&env, "CRLF"), "x");
	assert_null(dotenv_get(&env, "MISSING"));
	dotenv_release(&env);
}

static void
test_dotenv_errors(void **state)
{
	static const struct {
		const char *text;
		const char *want; /* substring of the message */
	} cases[] = {
		{ "A=1\nnot a pair\n", "t.env:2:" },
		{ "A=1\n=nokey\n", "t.env:2:" },
		{ "A=\"open\n", "t.env:1: unterminated" },
		{ "A='x' trailing\n", "unexpected text" },
		{ "1A=x\n", "t.env:1:" },
		{ "A\n", "expected '='" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct dotenv env = DOTENV_INIT;
		struct ops_err err = OPS_ERR_INIT;

		assert_int_equal(dotenv_parse(cases[i].text,
					      strlen(cases[i].text), "t.env",
					      &env, &err),
				 OPS_E_CONFIG);
		assert_non_null(strstr(err.msg, cases[i].want));
		assert_int_equal(env.n, 0);
	}
}

/* a fake environment for config_load */
static const char *const *fake_env;

static const char *
fake_getenv(const char *name)
{
	for (size_t i = 0; fake_env[i] != NULL; i += 2)
		if (strcmp(fake_env[i], name) == 0)
			return fake_env[i + 1];
	return NULL;
}

static int
load_with(const char *const *env, struct ops_config *cfg, struct ops_err *err)
{
	fake_env = env;
	return config_load(cfg, "/nonexistent-apexops-test.env", fake_getenv,
			   err);
}

static void
test_config_defaults(void **state)
{
	static const char *const env[] = { NULL };
	struct ops_config cfg;
	struct ops_err err = OPS_ERR_INIT;

	char dir[] = "/tmp/apexops-test-cwd-XXXXXX";
	char old[4096];

	(void)state;
	fake_env = env;
	/* env_file NULL: ./.env is optional; run in a dir without one */
	assert_non_null(getcwd(old, sizeof(old)));
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chdir(dir), 0);
	assert_int_equal(config_load(&cfg, NULL, fake_getenv, &err), 0);
	assert_int_equal(err.code, 0);
	assert_int_equal(chdir(old), 0);
	rmdir(dir);
	assert_int_equal(cfg.retention_months, 18);
	assert_int_equal(cfg.usage_retention_months, 18);
	assert_int_equal(cfg.privacy_expiry_days, 30);
	assert_string_equal(cfg.privacy_export_provider, "local");
	assert_string_equal(cfg.privacy_export_bucket, "privacy-exports-dev");
	assert_string_equal(cfg.cron_tz, "UTC");
	assert_string_equal(cfg.sandbox_user_password, "SandboxPass!2025");
	assert_null(cfg.database_url);
	assert_false(cfg.confirm);
	assert_int_equal(cfg.purge_max_lag_ms, 1000);
	assert_true(cfg.purge_max_lag_bytes == 16LL << 20);
	assert_int_equal(cfg.purge_max_lag_wait_s, 300);
	config_release(&cfg);
}

/* config_load of env with an empty env file (no ./.env is read) */
static int
load_env_only(const char *const *env, struct ops_config *cfg,
	      struct ops_err *err)
{
	char path[] = "/tmp/apexops-test-env-XXXXXX";
	int fd = mkstemp(path), r;

	assert_true(fd >= 0);
	close(fd);
	fake_env = env;
	r = config_load(cfg, path, fake_getenv, err);
	unlink(path);
	return r;
}

/* a size variable: PostgreSQL's units, its range, and what it says */
static void
test_config_size(void **state)
{
	static const char *const bad[] = { "16mb", "16 MB", "4kB", "2TB",
					   "-1",   "1.5MB", "MB" };
	const char *env[] = { "APEXOPS_PURGE_MAX_LAG_BYTES", "2GB", NULL };
	struct ops_config cfg;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	assert_int_equal(load_env_only(env, &cfg, &err), 0);
	assert_true(cfg.purge_max_lag_bytes == 2LL << 30);
	config_release(&cfg);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		env[1] = bad[i];
		ops_err_clear(&err);
		assert_int_equal(load_env_only(env, &cfg, &err), OPS_E_CONFIG);
		assert_non_null(strstr(err.msg, "APEXOPS_PURGE_MAX_LAG_BYTES: "
						"invalid value"));
		assert_non_null(strstr(err.msg, "a size from 8kB to 1TB"));
		assert_int_equal(ops_err_exit_code(&err), 78);
	}
}

static void
test_config_missing_env_file(void **state)
{
	static const char *const env[] = { NULL };
	struct ops_config cfg;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	assert_int_equal(load_with(env, &cfg, &err), OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "--env-file"));
}

static void
test_config_bad_values(void **state)
{
	static const char *const names[] = { "RETENTION_MONTHS",
					     "USAGE_RETENTION_MONTHS",
					     "PRIVACY_EXPIRY_DAYS",
					     "APEXOPS_DB_CONNECT_TIMEOUT" };
	static const char *const bad[] = { "0", "-1",  "abc", "18abc",
					   "",	"1e3", " 18", "99999" };
	char path[] = "/tmp/apexops-test-env-XXXXXX";
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	close(fd);
	for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			const char *env[] = { names[n], bad[i], NULL };
			struct ops_config cfg;
			struct ops_err err = OPS_ERR_INIT;

			fake_env = env;
			assert_int_equal(
				config_load(&cfg, path, fake_getenv, &err),
				OPS_E_CONFIG);
			assert_non_null(strstr(err.msg, names[n]));
			assert_int_equal(ops_err_exit_code(&err), 78);
		}
	}
	unlink(path);
}

static void
test_config_sources_and_confirm(void **state)
{
	char path[] = "/tmp/apexops-test-env-XXXXXX";
	int fd = mkstemp(path);
	const char *text = "RETENTION_MONTHS=24\nUSAGE_RETENTION_MONTHS=12\n"
			   "CONFIRM=yes\nPRIVACY_EXPORT_PROVIDER=s3\n";
	static const char *const env[] = { "RETENTION_MONTHS", "6", NULL };
	struct ops_config cfg;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	fake_env = env;
	assert_int_equal(config_load(&cfg, path, fake_getenv, &err), 0);
	assert_int_equal(cfg.retention_months, 6);	  /* environment wins */
	assert_int_equal(cfg.usage_retention_months, 12); /* from the file */
	assert_false(cfg.confirm); /* only exactly 1 or true */
	assert_string_equal(cfg.confirm_raw, "yes");
	assert_string_equal(cfg.privacy_export_provider, "s3");
	config_release(&cfg);
	unlink(path);
}

static void
test_config_enums_and_keys(void **state)
{
	static const char *const cases[][2] = {
		{ "PRIVACY_EXPORT_PROVIDER", "azure" },
		{ "PRIVACY_EXPORT_PROVIDER", "S3" },
		{ "STRIPE_SECRET_KEY", "pk_test_123" },
		{ "STRIPE_API_VERSION", "2023-13-16" },
		{ "CRON_TZ", "Mars/Olympus" },
		{ "CRON_TZ", "../../etc/passwd" },
		{ "DATABASE_SSL", "maybe" },
		{ "DATABASE_URL", "mysql://x" },
		{ "APEXOPS_LOG_LEVEL", "loud" },
	};
	char path[] = "/tmp/apexops-test-env-XXXXXX";
	int fd = mkstemp(path);

	(void)state;
	close(fd);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *env[] = { cases[i][0], cases[i][1], NULL };
		struct ops_config cfg;
		struct ops_err err = OPS_ERR_INIT;

		fake_env = env;
		assert_int_equal(config_load(&cfg, path, fake_getenv, &err),
				 OPS_E_CONFIG);
		assert_non_null(strstr(err.msg, cases[i][0]));
	}
	unlink(path);
}

static void
test_secret_never_in_messages(void **state)
{
	char path[] = "/tmp/apexops-test-env-XXXXXX";
	int fd = mkstemp(path);
	static const char *const env[] = { "DATABASE_URL",
					   "postgresql://u:hunter2secret@h/db",
					   "STRIPE_SECRET_KEY",
					   "sk_test_FAKE_abcdefghijkl", NULL };
	struct ops_config cfg;
	struct ops_err err = OPS_ERR_INIT;
	char line[256];
	char *red;

	(void)state;
	close(fd);
	fake_env = env;
	assert_int_equal(config_load(&cfg, path, fake_getenv, &err), 0);
	red = config_redact_url(cfg.database_url);
	assert_null(strstr(red, "hunter2secret"));
	assert_non_null(strstr(red, "u:***@h/db"));
	free(red);
	red = config_redact_url("host=h password='p w' user=u");
	assert_null(strstr(red, "p w"));
	free(red);
	snprintf(line, sizeof(line),
		 "connect postgresql://u:hunter2secret@h key "
		 "sk_test_FAKE_abcdefghijkl");
	log_scrub(line);
	assert_null(strstr(line, "hunter2secret"));
	assert_null(strstr(line, "sk_test_FAKE_abcdefghijkl"));
	config_release(&cfg);
	log_forget_secrets();
	unlink(path);
}

static void
test_redact_url(void **state)
{
	static const char *const cases[][2] = {
		{ "postgresql://u:pw@h:5/db?sslmode=require&password=abc&x=1",
		  "postgresql://u:***@h:5/"
		  "db?sslmode=require&password=***&x=1" },
		{ "postgresql://h/db", "postgresql://h/db" },
		{ "postgres://u@h", "postgres://u@h" },
		{ "postgresql://u:@h/", "postgresql://u:***@h/" },
		{ "postgresql://a:b@c@d/e", "postgresql://a:***@d/e" },
		{ "host=h password='a b\\' c' user=u",
		  "host=h password=*** user=u" },
		{ "host=x password = secret port=5",
		  "host=x password=*** port=5" },
		{ "password=", "password=***" },
		{ "", "" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *r = config_redact_url(cases[i][0]);

		assert_string_equal(r, cases[i][1]);
		free(r);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_truncate),
		cmocka_unit_test(test_buf_release_wipe),
		cmocka_unit_test(test_parse_long),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_config_size),
		cmocka_unit_test(test_parse_date),
		cmocka_unit_test(test_uuid),
		cmocka_unit_test(test_dotenv_syntax),
		cmocka_unit_test(test_dotenv_errors),
		cmocka_unit_test(test_config_defaults),
		cmocka_unit_test(test_config_missing_env_file),
		cmocka_unit_test(test_config_bad_values),
		cmocka_unit_test(test_config_sources_and_confirm),
		cmocka_unit_test(test_config_enums_and_keys),
		cmocka_unit_test(test_secret_never_in_messages),
		cmocka_unit_test(test_redact_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
