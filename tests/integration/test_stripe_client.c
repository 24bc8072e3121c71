/*
 * The Stripe client against our Stripe double (OPS_TEST_STRIPE_DOUBLE_URL,
 * started by tests/peers/up.sh): idempotent replay, idempotency_error,
 * Stripe's error fields, 404 as OPS_E_NOTFOUND, retries of injected 503s,
 * no retry of a 401, the body size limit, a refused connection, and the
 * customer helpers of stripe/customer.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "stripe/customer.h"
#include "stripe/stripe.h"

static const char *base;

static void
double_post(const char *path, const char *body)
{
	char url[512];
	struct http_policy p;
	struct http_client *c = NULL;
	struct http_response resp = HTTP_RESPONSE_INIT;
	struct http_request req = { "POST",	  url,	NULL, body,
				    strlen(body), true, NULL, NULL };
	struct ops_err err = OPS_ERR_INIT;

	snprintf(url, sizeof(url), "%s%s", base, path);
	http_policy_default(&p);
	assert_int_equal(http_client_new(&p, &c, &err), 0);
	assert_int_equal(http_do(c, &req, &resp, &err), 0);
	assert_int_equal(resp.status, 200);
	http_response_release(&resp);
	http_client_free(c);
}

static struct stripe *
client(const char *key, const struct http_policy *p)
{
	struct stripe_opts o = { base, key, "2023-10-16", p };
	struct ops_err err = OPS_ERR_INIT;
	struct stripe *st = NULL;

	assert_int_equal(stripe_new(&o, &st, &err), 0);
	return st;
}

static void
test_idempotency(void **state)
{
	struct stripe *st = client("sk_test_it1", NULL);
	struct ops_err err = OPS_ERR_INIT;
	struct stripe_error se;
	json_t *p1 = json_pack("{s:s, s:{s:s}}", "email", "it@x.test",
			       "metadata", "run", "1");
	json_t *p2 = json_pack("{s:s}", "email", "other@x.test");
	json_t *a = NULL, *b = NULL, *c = NULL;
	bool replayed = true;

	(void)state;
	double_post("/__double/reset", "");
	assert_int_equal(stripe_call(st, "POST", "/v1/customers", p1, "it-k1",
				     &a, &replayed, &se, &err),
			 0);
	assert_false(replayed);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(a, "metadata"), "run")),
			    "1");
	assert_int_equal(stripe_call(st, "POST", "/v1/customers", p1, "it-k1",
				     &b, &replayed, &se, &err),
			 0);
	assert_true(replayed);
	assert_string_equal(json_string_value(json_object_get(a, "id")),
			    json_string_value(json_object_get(b, "id")));
	/* same key, other parameters */
	assert_int_equal(stripe_call(st, "POST", "/v1/customers", p2, "it-k1",
				     &c, NULL, &se, &err),
			 OPS_E_HTTP);
	assert_null(c);
	assert_int_equal(se.http_status, 400);
	assert_string_equal(se.type, "idempotency_error");
	assert_false(err.transient);
	json_decref(a);
	json_decref(b);
	json_decref(p1);
	json_decref(p2);
	stripe_free(st);
}

static void
test_errors(void **state)
{
	struct stripe *st = client("sk_test_it2", NULL);
	struct stripe *bad = client("sk_live_itSecret42", NULL);
	struct ops_err err = OPS_ERR_INIT;
	struct stripe_error se;
	json_t *out = NULL;

	(void)state;
	assert_int_equal(stripe_call(st, "GET", "/v1/customers/cus_nope", NULL,
				     NULL, &out, NULL, &se, &err),
			 OPS_E_NOTFOUND);
	assert_string_equal(se.code, "resource_missing");
	assert_string_equal(se.param, "id");
	assert_int_equal(se.http_status, 404);
	assert_non_null(strstr(err.msg, "No such customer"));
	/* 401 is not retried and the key is not in the message */
	assert_int_equal(stripe_call(bad, "GET", "/v1/customers", NULL, NULL,
				     &out, NULL, &se, &err),
			 OPS_E_HTTP);
	assert_int_equal(se.http_status, 401);
	assert_null(strstr(err.msg, "itSecret42"));
	stripe_free(st);
	stripe_free(bad);
}

static void
test_retries_and_limits(void **state)
{
	struct http_policy p;
	struct stripe *st;
	struct ops_err err = OPS_ERR_INIT;
	struct stripe_error se;
	json_t *out = NULL;

	(void)state;
	http_policy_default(&p);
	p.base_delay_ms = 10;
	p.max_delay_ms = 40;
	st = client("sk_test_it3", &p);
	double_post("/__double/faults", "{\"count\":2,\"status\":503}");
	assert_int_equal(stripe_call(st, "GET", "/v1/customers", NULL, NULL,
				     &out, NULL, &se, &err),
			 0);
	json_decref(out);
	out = NULL;
	/* more faults than retries: a transient failure */
	double_post("/__double/faults", "{\"count\":4,\"status\":500}");
	assert_int_equal(stripe_call(st, "GET", "/v1/customers", NULL, NULL,
				     &out, NULL, &se, &err),
			 OPS_E_HTTP);
	assert_true(err.transient);
	assert_int_equal(se.http_status, 500);
	/* Stripe-Should-Retry: false stops at once */
	double_post("/__double/faults",
		    "{\"count\":1,\"status\":500,\"shouldRetry\":\"false\"}");
	assert_int_equal(stripe_call(st, "GET", "/v1/customers", NULL, NULL,
				     &out, NULL, &se, &err),
			 OPS_E_HTTP);
	assert_int_equal(stripe_call(st, "GET", "/v1/customers", NULL, NULL,
				     &out, NULL, &se, &err),
			 0);
	json_decref(out);
	stripe_free(st);

	/* a body over the limit fails instead of being cut */
	p.max_body = 16;
	st = client("sk_test_it3", &p);
	assert_int_equal(stripe_call(st, "GET", "/v1/customers", NULL, NULL,
				     &out, NULL, &se, &err),
			 OPS_E_HTTP);
	assert_non_null(strstr(err.msg, "larger than 16 bytes"));
	stripe_free(st);
}

static void
test_connection_refused(void **state)
{
	struct stripe_opts o = { "http://127.0.0.1:1", "sk_test_x",
				 "2023-10-16", NULL };
	struct http_policy p;
	struct ops_err err = OPS_ERR_INIT;
	struct stripe *st = NULL;
	json_t *out = NULL;

	(void)state;
	http_policy_default(&p);
	p.max_retries = 1;
	p.base_delay_ms = 10;
	o.policy = &p;
	assert_int_equal(stripe_new(&o, &st, &err), 0);
	assert_int_equal(stripe_call(st, "GET", "/v1/customers", NULL, NULL,
				     &out, NULL, NULL, &err),
			 OPS_E_HTTP);
	assert_true(err.transient);
	assert_non_null(strstr(err.msg, "after 2 attempts"));
	stripe_free(st);
}

/* stripe/customer.h against the double: every helper, its refusals and
 * its id checks. */
static void
test_customer_helpers(void **state)
{
	struct stripe *st = client("sk_test_it_customer", NULL);
	struct ops_err err = OPS_ERR_INIT;
	struct stripe_error se;
	json_t *cust = NULL, *doc = NULL, *params;
	char cus[128], id[128], pm[128];

	(void)state;
	double_post("/__double/reset", "");
	/* a customer that does not exist: NULL, not an error */
	assert_int_equal(
		stripe_customer_get(st, "cus_missing", &cust, &se, &err), 0);
	assert_null(cust);
	/* an id that is no Stripe id never reaches a path */
	assert_int_equal(stripe_customer_get(st, "cus_x/../../v1/charges",
					     &cust, &se, &err),
			 OPS_E_INVALID);
	assert_int_equal(stripe_customer_find_by_email(st, "h@x.test", cus,
						       sizeof(cus), &se, &err),
			 0);
	assert_string_equal(cus, "");
	params = json_pack("{s:s}", "email", "h@x.test");
	assert_int_equal(stripe_call(st, "POST", "/v1/customers", params,
				     "it-customer-1", &doc, NULL, &se, &err),
			 0);
	json_decref(params);
	json_decref(doc);
	assert_int_equal(stripe_customer_find_by_email(st, "h@x.test", cus,
						       sizeof(cus), &se, &err),
			 0);
	assert_int_equal(strncmp(cus, "cus_", 4), 0);

	/* sources: none, attach a card, find it, make it the default */
	assert_int_equal(stripe_customer_find_source(st, cus, NULL, "card", id,
						     sizeof(id), &se, &err),
			 0);
	assert_string_equal(id, "");
	assert_int_equal(stripe_customer_attach_source(st, cus, "tok_visa",
						       "it-card-1", &doc, &se,
						       &err),
			 0);
	assert_string_equal(json_string_value(json_object_get(doc, "object")),
			    "card");
	json_decref(doc);
	assert_int_equal(stripe_customer_find_source(st, cus, NULL, "card", id,
						     sizeof(id), &se, &err),
			 0);
	assert_int_equal(strncmp(id, "card_", 5), 0);
	assert_int_equal(stripe_customer_set_default_source(
				 st, cus, id, "it-default-1", &se, &err),
			 0);
	assert_int_equal(stripe_customer_get(st, cus, &cust, &se, &err), 0);
	assert_string_equal(
		json_string_value(json_object_get(cust, "default_source")), id);
	json_decref(cust);
	/* Stripe has no btok_sepa_debit: refused with resource_missing */
	assert_int_equal(
		stripe_customer_attach_source(st, cus, "btok_sepa_debit",
					      "it-sepa-tok", &doc, &se, &err),
		OPS_E_HTTP);
	assert_null(doc);
	assert_string_equal(se.code, "resource_missing");
	assert_int_equal(se.http_status, 400);

	/* a SEPA PaymentMethod: create, attach, find */
	assert_int_equal(
		stripe_customer_find_payment_method(st, cus, "sepa_debit", pm,
						    sizeof(pm), &se, &err),
		0);
	assert_string_equal(pm, "");
	params = json_pack("{s:s, s:{s:s}}", "type", "sepa_debit", "sepa_debit",
			   "iban", "DE89370400440532013000");
	assert_int_equal(stripe_payment_method_create(st, params, "it-pm-0",
						      &doc, &se, &err),
			 OPS_E_HTTP);
	assert_string_equal(se.param, "billing_details[name]");
	json_decref(params);
	params = json_pack("{s:s, s:{s:s}, s:{s:s, s:s}}", "type", "sepa_debit",
			   "sepa_debit", "iban", "DE89370400440532013000",
			   "billing_details", "name", "H", "email", "h@x.test");
	assert_int_equal(stripe_payment_method_create(st, params, "it-pm-1",
						      &doc, &se, &err),
			 0);
	json_decref(params);
	snprintf(pm, sizeof(pm), "%s",
		 json_string_value(json_object_get(doc, "id")));
	json_decref(doc);
	assert_int_equal(strncmp(pm, "pm_", 3), 0);
	assert_int_equal(stripe_payment_method_attach(
				 st, pm, cus, "it-attach-1", &doc, &se, &err),
			 0);
	assert_string_equal(json_string_value(json_object_get(doc, "customer")),
			    cus);
	json_decref(doc);
	assert_int_equal(
		stripe_customer_find_payment_method(st, cus, "sepa_debit", id,
						    sizeof(id), &se, &err),
		0);
	assert_string_equal(id, pm);
	assert_int_equal(stripe_payment_method_attach(st, "pm_x'", cus, "k",
						      &doc, &se, &err),
			 OPS_E_INVALID);
	stripe_free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idempotency),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_retries_and_limits),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_customer_helpers),
	};
	int r;

	base = getenv("OPS_TEST_STRIPE_DOUBLE_URL");
	if (base == NULL) {
		/* the double is a project peer: never a reason to skip */
		printf("1..1\nnot ok 1 - OPS_TEST_STRIPE_DOUBLE_URL unset: run "
		       "through tests/run.sh, which starts the Stripe double "
		       "(install it with scripts/install-deps.sh --test)\n");
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	r = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return r;
}
