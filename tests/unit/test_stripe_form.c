/*
 * The Stripe form encoder against stripe-node 23.1.0's
 * queryStringifyRequestData (expected strings printed by that function),
 * and the percent-encoder it sits on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "stripe/stripe.h"

static void
check(const char *json, const char *want)
{
	json_error_t jerr;
	json_t *doc = json_loads(json, 0, &jerr);
	struct buf out = BUF_INIT;

	assert_non_null(doc);
	assert_int_equal(stripe_form_encode(&out, doc), 0);
	assert_string_equal(buf_str(&out), want);
	buf_release(&out);
	json_decref(doc);
}

static void
test_nested_and_escaped(void **state)
{
	(void)state;
	check("{\"email\":\"a b+c@x.test\",\"metadata\":{\"order id\":\"1&2\","
	      "\"nested\":{\"k\":\"v\"}},\"expand\":[\"sources\","
	      "\"default_source\"],\"limit\":3,\"ratio\":0.55,\"flag\":true,"
	      "\"unset\":null,\"u\":\"\xc3\xa9!*()'~[x]\"}",
	      "email=a%20b%2Bc%40x.test&metadata[order%20id]=1%262"
	      "&metadata[nested][k]=v&expand[0]=sources"
	      "&expand[1]=default_source&limit=3&ratio=0.55&flag=true&unset="
	      "&u=%C3%A9%21%2A%28%29%27~[x]");
}

static void
test_arrays_of_objects_and_numbers(void **state)
{
	(void)state;
	check("{\"items\":[{\"price\":\"p_1\",\"quantity\":2},"
	      "{\"price\":\"p_2\"}],\"amount\":1e21,"
	      "\"small\":0.30000000000000004}",
	      "items[0][price]=p_1&items[0][quantity]=2&items[1][price]=p_2"
	      "&amount=1e%2B21&small=0.30000000000000004");
}

static void
test_empty_and_bad(void **state)
{
	struct buf out = BUF_INIT;
	json_t *arr = json_array();

	(void)state;
	check("{}", "");
	check("{\"metadata\":{}}", "");
	assert_int_equal(stripe_form_encode(&out, arr), -1);
	json_decref(arr);
	/* a full buffer fails instead of truncating */
	out.max = 4;
	{
		json_t *o = json_pack("{s:s}", "email", "long@example.com");

		assert_int_equal(stripe_form_encode(&out, o), -1);
		json_decref(o);
	}
	buf_release(&out);
}

static void
test_url_encode_table(void **state)
{
	static const struct {
		const char *in;
		bool brackets;
		const char *want;
	} cases[] = {
		{ "AZaz09-_.~", false, "AZaz09-_.~" },
		{ "a[b]", false, "a%5Bb%5D" },
		{ "a[b]", true, "a[b]" },
		{ " /?#&=+%", true, "%20%2F%3F%23%26%3D%2B%25" },
		{ "\n\x7f\xff", true, "%0A%7F%FF" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b = BUF_INIT;

		assert_int_equal(http_url_encode(&b, cases[i].in,
						 strlen(cases[i].in),
						 cases[i].brackets),
				 0);
		assert_string_equal(buf_str(&b), cases[i].want);
		buf_release(&b);
	}
}

static void
test_error_parse_and_ids(void **state)
{
	static const char body[] =
		"{\"error\":{\"type\":\"invalid_request_error\",\"code\":"
		"\"resource_missing\",\"message\":\"No such token: "
		"'btok_sepa_debit'\",\"param\":\"source\"}}";
	struct stripe_error se;

	(void)state;
	memset(&se, 0, sizeof(se));
	assert_int_equal(stripe_error_parse(body, strlen(body), &se), 0);
	assert_string_equal(se.type, "invalid_request_error");
	assert_string_equal(se.code, "resource_missing");
	assert_string_equal(se.param, "source");
	assert_string_equal(se.message, "No such token: 'btok_sepa_debit'");
	assert_int_equal(stripe_error_parse("<html>", 6, &se), -1);
	assert_true(stripe_id_valid("cus_4QFvDFGijHOBv1"));
	assert_false(stripe_id_valid(""));
	assert_false(stripe_id_valid("cus_1/../x"));
	assert_false(stripe_id_valid("cus 1"));
	assert_false(stripe_id_valid(NULL));
}

static void
test_client_validates_options(void **state)
{
	struct stripe_opts o = { "ftp://x", "sk_test_1", "2023-10-16", NULL };
	struct ops_err err = OPS_ERR_INIT;
	struct stripe *st = NULL;

	(void)state;
	assert_int_equal(stripe_new(&o, &st, &err), OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "APEXOPS_STRIPE_API_BASE"));
	o.api_base = "http://127.0.0.1:1";
	o.secret_key = "sk_test_1\r\nX: y";
	assert_int_equal(stripe_new(&o, &st, &err), OPS_E_CONFIG);
	/* the message names the variable, never the value */
	assert_null(strstr(err.msg, "sk_test_1"));
	o.secret_key = "sk_test_1";
	assert_int_equal(stripe_new(&o, &st, &err), 0);
	{
		json_t *out = NULL;

		/* a POST without an idempotency key is refused locally */
		assert_int_equal(stripe_call(st, "POST", "/v1/customers", NULL,
					     NULL, &out, NULL, NULL, &err),
				 OPS_E_INVALID);
		assert_null(out);
		assert_int_equal(stripe_call(st, "GET", "customers", NULL, NULL,
					     &out, NULL, NULL, &err),
				 OPS_E_INVALID);
	}
	stripe_free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nested_and_escaped),
		cmocka_unit_test(test_arrays_of_objects_and_numbers),
		cmocka_unit_test(test_empty_and_bad),
		cmocka_unit_test(test_url_encode_table),
		cmocka_unit_test(test_error_parse_and_ids),
		cmocka_unit_test(test_client_validates_options),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
