#include "stripe/customer.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"

static const char *
jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int
check_id(const char *what, const char *id, struct ops_err *err)
{
	if (id == NULL || !stripe_id_valid(id))
		return ops_fail(err, OPS_E_INVALID, false,
				"stripe: %s id '%s' is not a Stripe id", what,
				id != NULL ? id : "");
	return 0;
}

static void
copy_serr(struct stripe_error *dst, const struct stripe_error *src)
{
	if (dst != NULL)
		*dst = *src;
}

/* The first element of list doc's data with id, or "" */
static void
first_id(const json_t *data, const char *object, char *id, size_t idlen)
{
	const json_t *item;
	size_t i;

	id[0] = '\0';
	json_array_foreach(data, i, item)
	{
		const char *obj = jstr(item, "object");

		if (object != NULL && (obj == NULL || strcmp(obj, object) != 0))
			continue;
		if (jstr(item, "id") == NULL)
			continue;
		snprintf(id, idlen, "%s", jstr(item, "id"));
		return;
	}
}

int
stripe_customer_get(struct stripe *st, const char *id, json_t **out,
		    struct stripe_error *serr, struct ops_err *err)
{
	struct stripe_error se;
	json_t *params, *doc = NULL;
	char path[320];
	int r;

	*out = NULL;
	memset(&se, 0, sizeof(se));
	r = check_id("customer", id, err);
	if (r != 0)
		return r;
	snprintf(path, sizeof(path), "/v1/customers/%s", id);
	params = json_pack("{s:[s]}", "expand", "sources");
	r = stripe_call(st, "GET", path, params, NULL, &doc, NULL, &se, err);
	json_decref(params);
	if (r == OPS_E_NOTFOUND && strcmp(se.code, "resource_missing") == 0) {
		ops_err_clear(err);
		return 0;
	}
	if (r != 0) {
		copy_serr(serr, &se);
		return r;
	}
	if (json_is_true(json_object_get(doc, "deleted"))) {
		json_decref(doc);
		return 0;
	}
	*out = doc;
	return 0;
}

int
stripe_customer_find_by_email(struct stripe *st, const char *email, char *id,
			      size_t idlen, struct stripe_error *serr,
			      struct ops_err *err)
{
	json_t *params, *doc = NULL;
	int r;

	id[0] = '\0';
	params = json_pack("{s:s, s:i}", "email", email, "limit", 1);
	r = stripe_call(st, "GET", "/v1/customers", params, NULL, &doc, NULL,
			serr, err);
	json_decref(params);
	if (r != 0)
		return r;
	first_id(json_object_get(doc, "data"), NULL, id, idlen);
	json_decref(doc);
	return 0;
}

int
stripe_customer_find_source(struct stripe *st, const char *cus,
			    const json_t *customer, const char *object,
			    char *id, size_t idlen, struct stripe_error *serr,
			    struct ops_err *err)
{
	struct stripe_error se;
	json_t *params, *doc = NULL;
	char path[320];
	int r;

	id[0] = '\0';
	memset(&se, 0, sizeof(se));
	r = check_id("customer", cus, err);
	if (r != 0)
		return r;
	snprintf(path, sizeof(path), "/v1/customers/%s/sources", cus);
	params = json_pack("{s:s, s:i}", "object", object, "limit", 1);
	r = stripe_call(st, "GET", path, params, NULL, &doc, NULL, &se, err);
	json_decref(params);
	if (r == OPS_E_NOTFOUND && se.code[0] == '\0') {
		log_debug("stripe sources list missing on this peer; using the "
			  "customer's sources");
		ops_err_clear(err);
		first_id(json_object_get(json_object_get(customer, "sources"),
					 "data"),
			 object, id, idlen);
		return 0;
	}
	if (r != 0) {
		copy_serr(serr, &se);
		return r;
	}
	first_id(json_object_get(doc, "data"), object, id, idlen);
	json_decref(doc);
	return 0;
}

int
stripe_customer_attach_source(struct stripe *st, const char *cus,
			      const char *token, const char *idem_key,
			      json_t **out, struct stripe_error *serr,
			      struct ops_err *err)
{
	json_t *params;
	char path[320];
	int r;

	*out = NULL;
	r = check_id("customer", cus, err);
	if (r != 0)
		return r;
	snprintf(path, sizeof(path), "/v1/customers/%s/sources", cus);
	params = json_pack("{s:s}", "source", token);
	r = stripe_call(st, "POST", path, params, idem_key, out, NULL, serr,
			err);
	json_decref(params);
	return r;
}

int
stripe_customer_set_default_source(struct stripe *st, const char *cus,
				   const char *source, const char *idem_key,
				   struct stripe_error *serr,
				   struct ops_err *err)
{
	json_t *params, *doc = NULL;
	char path[320];
	int r;

	r = check_id("customer", cus, err);
	if (r == 0)
		r = check_id("source", source, err);
	if (r != 0)
		return r;
	snprintf(path, sizeof(path), "/v1/customers/%s", cus);
	params = json_pack("{s:s}", "default_source", source);
	r = stripe_call(st, "POST", path, params, idem_key, &doc, NULL, serr,
			err);
	json_decref(params);
	json_decref(doc);
	return r;
}

int
stripe_customer_find_payment_method(struct stripe *st, const char *cus,
				    const char *type, char *id, size_t idlen,
				    struct stripe_error *serr,
				    struct ops_err *err)
{
	json_t *params, *doc = NULL;
	int r;

	id[0] = '\0';
	r = check_id("customer", cus, err);
	if (r != 0)
		return r;
	params = json_pack("{s:s, s:s, s:i}", "customer", cus, "type", type,
			   "limit", 1);
	r = stripe_call(st, "GET", "/v1/payment_methods", params, NULL, &doc,
			NULL, serr, err);
	json_decref(params);
	if (r != 0)
		return r;
	first_id(json_object_get(doc, "data"), "payment_method", id, idlen);
	json_decref(doc);
	return 0;
}

int
stripe_payment_method_create(struct stripe *st, const json_t *params,
			     const char *idem_key, json_t **out,
			     struct stripe_error *serr, struct ops_err *err)
{
	*out = NULL;
	return stripe_call(st, "POST", "/v1/payment_methods", params, idem_key,
			   out, NULL, serr, err);
}

int
stripe_payment_method_attach(struct stripe *st, const char *pm, const char *cus,
			     const char *idem_key, json_t **out,
			     struct stripe_error *serr, struct ops_err *err)
{
	json_t *params;
	char path[320];
	int r;

	*out = NULL;
	r = check_id("payment method", pm, err);
	if (r == 0)
		r = check_id("customer", cus, err);
	if (r != 0)
		return r;
	snprintf(path, sizeof(path), "/v1/payment_methods/%s/attach", pm);
	params = json_pack("{s:s}", "customer", cus);
	r = stripe_call(st, "POST", path, params, idem_key, out, NULL, serr,
			err);
	json_decref(params);
	return r;
}
