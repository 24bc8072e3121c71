/*
 * The temporary-credential providers (storage/aws_creds.h) without a
 * peer: the answer parser, the ISO 8601 reader and the validation of the
 * environment, table-driven. Fetching is the e2e test's (a double of the
 * container endpoint and IMDS).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include "aws_env.h"
#include "http/http.h"
#include "storage/aws_creds.h"
#include "storage/s3.h"

/* in every answer below; never in a message */
#define SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzSECRET"
#define TOKEN  "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJTOKEN"

static void
test_parse(void **state)
{
	static const struct {
		const char *json;
		bool imds;
		int want; /* 0 or the error code */
		/* in the message, or the session token on success */
		const char *needle;
		time_t expires;
	} cases[] = {
		/* the container endpoint's answer (ECS, EKS Pod Identity) */
		{ "{\"AccessKeyId\":\"ASIAEXAMPLE\",\"SecretAccessKey\":"
		  "\"" SECRET "\",\"Token\":\"" TOKEN "\",\"Expiration\":"
		  "\"2026-12-03T10:15:30Z\"}",
		  false, 0, TOKEN, 1796292930 },
		/* IMDS's, with its Code and extra fields */
		{ "{\"Code\":\"Success\",\"LastUpdated\":\"2026-12-03T04:00:"
		  "00Z\","
		  "\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIAEXAMPLE\","
		  "\"SecretAccessKey\":\"" SECRET "\",\"Token\":\"" TOKEN "\","
		  "\"Expiration\":\"2026-12-03T11:15:30+01:00\"}",
		  true, 0, TOKEN, 1796292930 },
		/* no token, no expiry: long-lived keys */
		{ "{\"AccessKeyId\":\"AKIAEXAMPLE\",\"SecretAccessKey\":"
		  "\"" SECRET "\"}",
		  false, 0, NULL, 0 },
		{ "{\"AccessKeyId\":\"AKIAEXAMPLE\",\"SecretAccessKey\":"
		  "\"" SECRET "\"}",
		  true, OPS_E_HTTP, "\"Code\": \"Success\"", 0 },
		{ "{\"Code\":\"Failure\",\"AccessKeyId\":\"AKIAEXAMPLE\","
		  "\"SecretAccessKey\":\"" SECRET "\"}",
		  true, OPS_E_HTTP, "\"Code\": \"Success\"", 0 },
		{ "", false, OPS_E_HTTP, "no JSON object", 0 },
		{ "[1,2]", false, OPS_E_HTTP, "no JSON object", 0 },
		{ "{\"SecretAccessKey\":\"" SECRET "\"", false, OPS_E_HTTP,
		  "no JSON object", 0 },
		{ "{\"AccessKeyId\":\"A\",\"AccessKeyId\":\"B\","
		  "\"SecretAccessKey\":\"" SECRET "\"}",
		  false, OPS_E_HTTP, "no JSON object", 0 },
		{ "{\"SecretAccessKey\":\"" SECRET "\"}", false, OPS_E_HTTP,
		  "\"AccessKeyId\"", 0 },
		{ "{\"AccessKeyId\":\"ASIA/EX\",\"SecretAccessKey\":\"" SECRET
		  "\"}",
		  false, OPS_E_HTTP, "\"AccessKeyId\"", 0 },
		{ "{\"AccessKeyId\":7,\"SecretAccessKey\":\"" SECRET "\"}",
		  false, OPS_E_HTTP, "\"AccessKeyId\"", 0 },
		{ "{\"AccessKeyId\":\"ASIAEXAMPLE\"}", false, OPS_E_HTTP,
		  "\"SecretAccessKey\"", 0 },
		{ "{\"AccessKeyId\":\"ASIAEXAMPLE\",\"SecretAccessKey\":\"\"}",
		  false, OPS_E_HTTP, "\"SecretAccessKey\"", 0 },
		{ "{\"AccessKeyId\":\"ASIAEXAMPLE\",\"SecretAccessKey\":"
		  "\"" SECRET "\\n\"}",
		  false, OPS_E_HTTP, "\"SecretAccessKey\"", 0 },
		/* a NUL would cut the header line short */
		{ "{\"AccessKeyId\":\"ASIAEXAMPLE\",\"SecretAccessKey\":"
		  "\"" SECRET "\",\"Token\":\"a\\u0000b\"}",
		  false, OPS_E_HTTP, "no JSON object", 0 },
		{ "{\"AccessKeyId\":\"ASIAEXAMPLE\",\"SecretAccessKey\":"
		  "\"" SECRET "\",\"Token\":\"" TOKEN "\\r\\nX-Evil: 1\"}",
		  false, OPS_E_HTTP, "bad \"Token\"", 0 },
		{ "{\"AccessKeyId\":\"ASIAEXAMPLE\",\"SecretAccessKey\":"
		  "\"" SECRET "\",\"Token\":\"" TOKEN
		  "\",\"Expiration\":\"tomorrow\"}",
		  false, OPS_E_HTTP, "\"Expiration\"", 0 },
		{ "{\"AccessKeyId\":\"ASIAEXAMPLE\",\"SecretAccessKey\":"
		  "\"" SECRET "\",\"Expiration\":1796292930}",
		  false, OPS_E_HTTP, "\"Expiration\"", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct s3_creds c = S3_CREDS_INIT;
		struct ops_err err = OPS_ERR_INIT;
		int r = aws_creds_parse(cases[i].json, strlen(cases[i].json),
					cases[i].imds, "the test endpoint", &c,
					&err);

		if (r != cases[i].want)
			fail_msg("case %zu: got %d (%s), want %d", i, r,
				 err.msg, cases[i].want);
		if (r != 0) {
			if (strstr(err.msg, cases[i].needle) == NULL ||
			    strstr(err.msg, "the test endpoint") == NULL)
				fail_msg("case %zu: '%s' lacks '%s'", i,
					 err.msg, cases[i].needle);
			if (strstr(err.msg, SECRET) != NULL ||
			    strstr(err.msg, "wJalr") != NULL ||
			    strstr(err.msg, "IQoJ") != NULL)
				fail_msg("case %zu: a secret in '%s'", i,
					 err.msg);
			assert_null(c.access_key_id);
			assert_null(c.secret_access_key);
			assert_null(c.session_token);
			continue;
		}
		assert_non_null(c.access_key_id);
		assert_string_equal(c.secret_access_key, SECRET);
		if (cases[i].needle == NULL)
			assert_null(c.session_token);
		else
			assert_string_equal(c.session_token, cases[i].needle);
		assert_int_equal(c.expires, cases[i].expires);
		s3_creds_release(&c);
		assert_null(c.secret_access_key);
	}
}

static void
test_iso8601(void **state)
{
	static const struct {
		const char *s;
		int want;
		time_t t;
	} cases[] = {
		{ "2026-12-03T10:15:30Z", 0, 1796292930 },
		{ "2026-12-03t10:15:30z", 0, 1796292930 },
		{ "2026-12-03T10:15:30.123456Z", 0, 1796292930 },
		{ "2026-12-03T10:15:30+00:00", 0, 1796292930 },
		{ "2026-12-03T11:45:30+01:30", 0, 1796292930 },
		{ "2026-12-03T05:15:30-05:00", 0, 1796292930 },
		{ "2024-02-29T00:00:00Z", 0, 1709164800 },
		{ "1970-01-01T00:00:00Z", 0, 0 },
		/* short strings: never read past their end */
		{ "", -1, 0 },
		{ "2026", -1, 0 },
		{ "2026-", -1, 0 },
		{ "2026-12-03", -1, 0 },
		{ "2026-12-03T10:15", -1, 0 },
		{ "2026-12-03T10:15:30", -1, 0 }, /* no zone */
		{ "2026-12-03T10:15:30.", -1, 0 },
		{ "2026-12-03T10:15:30.Z", -1, 0 },
		{ "2026-12-03T10:15:30Zjunk", -1, 0 },
		{ "2026-12-03T10:15:30+01", -1, 0 },
		{ "2026-12-03T10:15:30+1:00", -1, 0 },
		{ "2026-12-03T10:15:30+01:00x", -1, 0 },
		{ "2026-12-03T10:15:30+24:00", -1, 0 },
		{ "2026-12-03T10:15:30+01:60", -1, 0 },
		{ "2026-12-03 10:15:30Z", -1, 0 },
		{ "2026/12/03T10:15:30Z", -1, 0 },
		{ "1969-12-31T23:59:59Z", -1, 0 },
		{ "2026-13-01T00:00:00Z", -1, 0 },
		{ "2026-00-01T00:00:00Z", -1, 0 },
		{ "2026-02-29T00:00:00Z", -1, 0 },
		{ "2026-04-31T00:00:00Z", -1, 0 },
		{ "2026-12-00T00:00:00Z", -1, 0 },
		{ "2026-12-03T24:00:00Z", -1, 0 },
		{ "2026-12-03T10:60:00Z", -1, 0 },
		{ "2026-12-03T10:15:61Z", -1, 0 },
		{ "2026-1a-03T10:15:30Z", -1, 0 },
		{ "+026-12-03T10:15:30Z", -1, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		time_t t = 99;
		int r = aws_iso8601_parse(cases[i].s, &t);

		if (r != cases[i].want)
			fail_msg("case %zu '%s': got %d, want %d", i,
				 cases[i].s, r, cases[i].want);
		if (r == 0 && t != cases[i].t)
			fail_msg("case %zu '%s': got %lld, want %lld", i,
				 cases[i].s, (long long)t,
				 (long long)cases[i].t);
	}
}

static void
test_from_env(void **state)
{
	enum { NONE = -1 };
	static const struct {
		const char *rel, *full, *token, *imds_off, *imds_ep;
		int want;   /* 0 or the error code */
		int source; /* enum aws_creds_source, NONE: no provider */
		const char *needle; /* in the message */
	} cases[] = {
		/* nothing set, IMDS off: no provider, no error */
		{ NULL, NULL, NULL, "true", NULL, 0, NONE, NULL },
		{ NULL, NULL, NULL, "TRUE", NULL, 0, NONE, NULL },
		/* ECS */
		{ "/v2/credentials/1b2c", NULL, NULL, "true", NULL, 0,
		  AWS_CREDS_CONTAINER, NULL },
		{ "v2/credentials", NULL, NULL, "true", NULL, OPS_E_CONFIG,
		  NONE,
		  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must be a path "
		  "starting with '/'" },
		{ "/v2/a b", NULL, NULL, "true", NULL, OPS_E_CONFIG, NONE,
		  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" },
		{ "/v2/a\r\nHost: evil", NULL, NULL, "true", NULL, OPS_E_CONFIG,
		  NONE, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI" },
		/* the relative URI wins: the full one is not even read */
		{ "/v2/x", "ftp://nowhere", NULL, "true", NULL, 0,
		  AWS_CREDS_CONTAINER, NULL },
		/* full URIs: https anywhere, http only to the allowed hosts */
		{ NULL, "https://creds.example.com/get", NULL, "true", NULL, 0,
		  AWS_CREDS_CONTAINER, NULL },
		{ NULL, "http://127.0.0.1:8080/creds", NULL, "true", NULL, 0,
		  AWS_CREDS_CONTAINER, NULL },
		{ NULL, "http://127.9.9.9/creds", NULL, "true", NULL, 0,
		  AWS_CREDS_CONTAINER, NULL },
		{ NULL, "http://localhost:9/creds", NULL, "true", NULL, 0,
		  AWS_CREDS_CONTAINER, NULL },
		{ NULL, "http://[::1]:9/creds", NULL, "true", NULL, 0,
		  AWS_CREDS_CONTAINER, NULL },
		{ NULL, "http://169.254.170.2/v2/credentials", NULL, "true",
		  NULL, 0, AWS_CREDS_CONTAINER, NULL },
		{ NULL, "http://169.254.170.23/v1/credentials", NULL, "true",
		  NULL, 0, AWS_CREDS_CONTAINER, NULL },
		{ NULL, "http://[fd00:ec2::23]/v1/credentials", NULL, "true",
		  NULL, 0, AWS_CREDS_CONTAINER, NULL },
		{ NULL, "http://10.0.0.1/creds", NULL, "true", NULL,
		  OPS_E_CONFIG, NONE, "names host '10.0.0.1' over plain http" },
		{ NULL, "http://169.254.169.254/creds", NULL, "true", NULL,
		  OPS_E_CONFIG, NONE, "over plain http" },
		{ NULL, "http://127.0.0.1.evil.example/creds", NULL, "true",
		  NULL, OPS_E_CONFIG, NONE, "over plain http" },
		{ NULL, "http://[fd00:ec2::24]/creds", NULL, "true", NULL,
		  OPS_E_CONFIG, NONE, "over plain http" },
		{ NULL, "http://[::1/creds", NULL, "true", NULL, OPS_E_CONFIG,
		  NONE, "AWS_CONTAINER_CREDENTIALS_FULL_URI has a bad IPv6" },
		{ NULL, "ftp://127.0.0.1/creds", NULL, "true", NULL,
		  OPS_E_CONFIG, NONE,
		  "AWS_CONTAINER_CREDENTIALS_FULL_URI must start with "
		  "http:// or https://" },
		{ NULL, "/creds", NULL, "true", NULL, OPS_E_CONFIG, NONE,
		  "must start with http:// or https://" },
		{ NULL, "http:///creds", NULL, "true", NULL, OPS_E_CONFIG, NONE,
		  "AWS_CONTAINER_CREDENTIALS_FULL_URI has no host" },
		{ NULL, "http://u:pw4secret@127.0.0.1/creds", NULL, "true",
		  NULL, OPS_E_CONFIG, NONE, "must not hold user information" },
		{ NULL, "https://example.com/a b", NULL, "true", NULL,
		  OPS_E_CONFIG, NONE, "a space or a control character" },
		/* the authorization token goes into a header */
		{ NULL, "http://127.0.0.1/creds", "tok\nX-Evil: 1", "true",
		  NULL, OPS_E_CONFIG, NONE,
		  "AWS_CONTAINER_AUTHORIZATION_TOKEN holds a line break" },
		{ NULL, "http://127.0.0.1/creds", "tok\rX", "true", NULL,
		  OPS_E_CONFIG, NONE, "line break" },
		{ NULL, "http://127.0.0.1/creds", "tok\tX", "true", NULL,
		  OPS_E_CONFIG, NONE, "a control character" },
		{ NULL, "http://127.0.0.1/creds", "Bearer abc/+=", "true", NULL,
		  0, AWS_CREDS_CONTAINER, NULL },
		/* IMDS when allowed: any endpoint URL, checked */
		{ NULL, NULL, NULL, NULL, NULL, 0, AWS_CREDS_IMDS, NULL },
		{ NULL, NULL, NULL, "false", "http://127.0.0.1:1/", 0,
		  AWS_CREDS_IMDS, NULL },
		{ NULL, NULL, NULL, "false", "http://[fd00:ec2::254]", 0,
		  AWS_CREDS_IMDS, NULL },
		{ NULL, NULL, NULL, "false", "169.254.169.254", OPS_E_CONFIG,
		  NONE, "AWS_EC2_METADATA_SERVICE_ENDPOINT must start with" },
		{ NULL, NULL, NULL, "false", "http://u:p@169.254.169.254",
		  OPS_E_CONFIG, NONE,
		  "AWS_EC2_METADATA_SERVICE_ENDPOINT must "
		  "not hold user information" },
		/* the container endpoint comes before IMDS */
		{ "/v2/x", NULL, NULL, "false", NULL, 0, AWS_CREDS_CONTAINER,
		  NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct aws_creds *a = NULL;
		struct ops_err err = OPS_ERR_INIT;
		int r;

		aws_env_clear();
		unsetenv("AWS_EC2_METADATA_DISABLED");
		if (cases[i].rel != NULL)
			setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
			       cases[i].rel, 1);
		if (cases[i].full != NULL)
			setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI",
			       cases[i].full, 1);
		if (cases[i].token != NULL)
			setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN",
			       cases[i].token, 1);
		if (cases[i].imds_off != NULL)
			setenv("AWS_EC2_METADATA_DISABLED", cases[i].imds_off,
			       1);
		if (cases[i].imds_ep != NULL)
			setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT",
			       cases[i].imds_ep, 1);
		r = aws_creds_from_env(&a, &err);
		if (r != cases[i].want)
			fail_msg("case %zu: got %d (%s), want %d", i, r,
				 err.msg, cases[i].want);
		if (r != 0) {
			assert_null(a);
			if (strstr(err.msg, cases[i].needle) == NULL)
				fail_msg("case %zu: '%s' lacks '%s'", i,
					 err.msg, cases[i].needle);
			if (strstr(err.msg, "pw4secret") != NULL ||
			    strstr(err.msg, "X-Evil") != NULL)
				fail_msg("case %zu: quotes a value: '%s'", i,
					 err.msg);
			continue;
		}
		if (cases[i].source == NONE) {
			assert_null(a);
			continue;
		}
		assert_non_null(a);
		assert_int_equal(aws_creds_source(a), cases[i].source);
		aws_creds_free(a);
	}
	aws_env_clear();
}

/* AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE wins over the variable and is
 * read at each fetch: a missing file fails the fetch naming it, before
 * any request (nothing listens on 127.0.0.1:1 anyway). */
static void
test_token_file_is_checked_at_fetch(void **state)
{
	struct aws_creds *a = NULL;
	struct s3_creds c = S3_CREDS_INIT;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	aws_env_clear();
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/c", 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "tok\nbad", 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
	       "/nonexistent/apexops-token", 1);
	assert_int_equal(aws_creds_from_env(&a, &err), 0);
	assert_non_null(a);
	assert_int_equal(aws_creds_get(a, &c, &err), OPS_E_CONFIG);
	assert_non_null(
		strstr(err.msg, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
	assert_null(c.access_key_id);
	aws_creds_free(a);
	aws_creds_free(NULL);
	aws_env_clear();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_iso8601),
		cmocka_unit_test(test_from_env),
		cmocka_unit_test(test_token_file_is_checked_at_fetch),
	};
	struct ops_err err = OPS_ERR_INIT;

	if (http_global_init(&err) != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
