/* The base-URL rule of http/url.c: https anywhere, plain http only to a
 * real loopback host, never userinfo, query or fragment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "http/url.h"

static void
test_base_url_table(void **state)
{
	static const struct {
		const char *url;
		bool ok;
		const char *why; /* in the message when refused */
	} cases[] = {
		/* the three that a prefix test let through */
		{ "http://localhost@127.0.0.3:58999", false, "user name" },
		{ "http://127.0.0.1@host", false, "user name" },
		{ "http://localhost.evil.example", false, "not a loopback" },
		/* more ways to dress up a remote host */
		{ "http://127.0.0.1.evil.example", false, "not a loopback" },
		{ "http://localhost:80@evil.example", false, "user name" },
		{ "http://[::1]@evil.example", false, "user name" },
		{ "http://evil.example#@127.0.0.1", false, "fragment" },
		{ "http://evil.example?@127.0.0.1", false, "query" },
		{ "http://[::ffff:127.0.0.1]:1", false, "not a loopback" },
		{ "http://[::2]", false, "not a loopback" },
		{ "http://128.0.0.1", false, "not a loopback" },
		{ "http://10.0.0.1", false, "not a loopback" },
		{ "http://example.com", false, "not a loopback" },
		{ "https://user:pw@api.stripe.com", false, "user name" },
		{ "https://api.stripe.com?x=1", false, "query" },
		{ "https://api.stripe.com/#frag", false, "fragment" },
		{ "https://api.stripe.com/#", false, "fragment" },
		{ "https://api.stripe.com?", false, "query" },
		{ "ftp://api.stripe.com", false, "scheme" },
		{ "file:///etc/passwd", false, "" },
		{ "api.stripe.com", false, "" },
		{ "", false, "not a URL" },
		{ "https://", false, "" },
		{ "http://local host", false, "not a URL" },
		/* good */
		{ "https://api.stripe.com", true, NULL },
		{ "https://api.stripe.com/", true, NULL },
		{ "https://s3.eu-west-1.amazonaws.com:443/base", true, NULL },
		{ "http://127.0.0.1:12111", true, NULL },
		{ "http://127.0.0.3:58999/", true, NULL },
		{ "http://127.255.255.254", true, NULL },
		{ "http://localhost:4566", true, NULL },
		{ "http://LOCALHOST:4566", true, NULL },
		{ "http://[::1]:9000/", true, NULL },
		{ "HTTP://127.0.0.1:1", true, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ops_err err = OPS_ERR_INIT;
		int r = http_base_url_check("APEXOPS_STRIPE_API_BASE",
					    cases[i].url, &err);

		if (cases[i].ok) {
			if (r != 0)
				fail_msg("'%s' refused: %s", cases[i].url,
					 err.msg);
			continue;
		}
		if (r != OPS_E_CONFIG)
			fail_msg("'%s' accepted", cases[i].url);
		/* names the variable and what is allowed */
		assert_non_null(strstr(err.msg, "APEXOPS_STRIPE_API_BASE"));
		assert_non_null(strstr(err.msg, "loopback"));
		if (strstr(err.msg, cases[i].why) == NULL)
			fail_msg("'%s': '%s' not in: %s", cases[i].url,
				 cases[i].why, err.msg);
	}
	/* err may be NULL */
	assert_int_equal(http_base_url_check("X", "http://example.com", NULL),
			 OPS_E_CONFIG);
}

static void
test_base_url_password_not_echoed(void **state)
{
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	assert_int_equal(http_base_url_check("AWS_ENDPOINT_URL_S3",
					     "https://u:hunter2@s3.example",
					     &err),
			 OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "AWS_ENDPOINT_URL_S3"));
	assert_null(strstr(err.msg, "hunter2"));
	assert_int_equal(
		http_base_url_check("APEXOPS_STRIPE_API_BASE",
				    "https://api.stripe.com/?key=tok_s3cret",
				    &err),
		OPS_E_CONFIG);
	assert_null(strstr(err.msg, "tok_s3cret"));
}

static void
test_base_urls_from_config(void **state)
{
	struct ops_config cfg;
	struct ops_err err = OPS_ERR_INIT;
	int marked = 0;

	(void)state;
	/* every URL variable of the table is marked, so main() checks it */
	for (int i = 0; i < cfg_ndefs; i++)
		if (strcmp(cfg_defs[i].name, "APEXOPS_STRIPE_API_BASE") == 0)
			marked = cfg_defs[i].flags & CFG_BASE_URL;
	assert_true(marked);
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(http_base_urls_check(&cfg, &err), 0); /* all unset */
	cfg.stripe_api_base = "http://localhost@127.0.0.3:58999";
	assert_int_equal(http_base_urls_check(&cfg, &err), OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "APEXOPS_STRIPE_API_BASE"));
	cfg.stripe_api_base = "https://api.stripe.com";
	assert_int_equal(http_base_urls_check(&cfg, &err), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base_url_table),
		cmocka_unit_test(test_base_url_password_not_echoed),
		cmocka_unit_test(test_base_urls_from_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
