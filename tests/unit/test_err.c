/* The NULL rule of core/err.h: every function that takes a struct ops_err
 * * accepts NULL and still returns its code. Each failure path of src/core
 * and src/http is driven once with err = NULL (ASan catches a
 * dereference). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/dotenv.h"
#include "core/err.h"
#include "core/file.h"
#include "core/log.h"
#include "http/http.h"
#include "http/url.h"

static const char *const *fake_env;

static const char *
fake_getenv(const char *name)
{
	for (size_t i = 0; fake_env[i] != NULL; i += 2)
		if (strcmp(fake_env[i], name) == 0)
			return fake_env[i + 1];
	return NULL;
}

static void
test_err_functions_take_null(void **state)
{
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	assert_int_equal(ops_fail(NULL, OPS_E_DB, true, "x %d", 1), OPS_E_DB);
	assert_int_equal(ops_err_prefix(NULL, "what"), OPS_E_INVALID);
	assert_int_equal(ops_err_recode(NULL, OPS_E_CONFIG, "what"),
			 OPS_E_CONFIG);
	ops_err_clear(NULL);
	assert_int_equal(ops_err_exit_code(NULL), OPS_EXIT_FAIL);
	/* and with an err: recode keeps the text behind the prefix */
	ops_fail(&err, OPS_E_IO, false, "cannot open 'f'");
	assert_int_equal(ops_err_recode(&err, OPS_E_CONFIG, "X_FILE"),
			 OPS_E_CONFIG);
	assert_int_equal(err.code, OPS_E_CONFIG);
	assert_string_equal(err.msg, "X_FILE: cannot open 'f'");
	assert_int_equal(ops_err_exit_code(&err), OPS_EXIT_CONFIG);
	/* stopped by a signal: 75, whatever the transient flag says */
	ops_fail(&err, OPS_E_STOPPED, false, "stopped");
	assert_int_equal(ops_err_exit_code(&err), OPS_EXIT_TEMPFAIL);
}

static void
test_core_failures_with_null_err(void **state)
{
	static const char *const bad_env[] = { "RETENTION_MONTHS", "abc",
					       NULL };
	static const char *const blank_env[] = { "APEXOPS_HOME", " ", NULL };
	static const char *const file_env[] = { "STRIPE_SECRET_KEY_FILE", "/",
						NULL };
	static const char *const none[] = { NULL };
	struct ops_config cfg;
	struct dotenv env = DOTENV_INIT;
	struct buf b = BUF_INIT;
	long v;

	(void)state;
	fake_env = bad_env;
	assert_int_equal(
		config_load(&cfg, "/nonexistent.env", fake_getenv, NULL),
		OPS_E_CONFIG);
	fake_env = none;
	assert_int_equal(config_load(&cfg, "/", fake_getenv, NULL),
			 OPS_E_CONFIG);
	fake_env = blank_env;
	assert_int_equal(
		config_load(&cfg, "/nonexistent.env", fake_getenv, NULL),
		OPS_E_CONFIG);
	fake_env = file_env;
	assert_int_equal(
		config_load(&cfg, "/nonexistent.env", fake_getenv, NULL),
		OPS_E_CONFIG);
	assert_int_equal(config_check_months("M", "0", &v, NULL), OPS_E_CONFIG);
	assert_int_equal(dotenv_parse("not a pair\n", 11, "t", &env, NULL),
			 OPS_E_CONFIG);
	assert_int_equal(dotenv_load("/", &env, NULL), OPS_E_CONFIG);
	assert_int_equal(dotenv_load("/nonexistent.env", &env, NULL),
			 OPS_E_NOTFOUND);
	assert_int_equal(ops_read_file("/", 0, &b, NULL), OPS_E_IO);
	assert_int_equal(b.len, 0);
	log_forget_secrets();
}

static void
test_http_failures_with_null_err(void **state)
{
	struct http_policy p;
	struct http_client *c = NULL;
	struct http_response resp = HTTP_RESPONSE_INIT;
	struct http_request req;
	struct ops_config cfg;

	(void)state;
	assert_int_equal(http_base_url_check("V", "http://example.com", NULL),
			 OPS_E_CONFIG);
	memset(&cfg, 0, sizeof(cfg));
	cfg.stripe_api_base = "ftp://x";
	assert_int_equal(http_base_urls_check(&cfg, NULL), OPS_E_CONFIG);
	http_policy_default(&p);
	p.max_retries = 0;
	assert_int_equal(http_client_new(&p, &c, NULL), 0);
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = "http://127.0.0.1:1/"; /* nothing listens on port 1 */
	assert_int_equal(http_do(c, &req, &resp, NULL), OPS_E_HTTP);
	http_response_release(&resp);
	http_client_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_err_functions_take_null),
		cmocka_unit_test(test_core_failures_with_null_err),
		cmocka_unit_test(test_http_failures_with_null_err),
	};
	struct ops_err err = OPS_ERR_INIT;
	int r;

	if (http_global_init(&err) != 0)
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	http_global_cleanup();
	return r;
}
