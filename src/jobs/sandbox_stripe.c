/*
 * Sandbox bootstrap, the Stripe part: the owner's test customer and its
 * payment methods, through the resource helpers of stripe/customer.h.
 */
#include "jobs/sandbox.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "stripe/customer.h"
#include "stripe/stripe.h"

static const char *
jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static void
set_id(struct sandbox_stripe_item *it, const char *id)
{
	snprintf(it->id, sizeof(it->id), "%s", id ? id : "");
}

/* Stripe's 4xx answers about the request itself (not auth, not rate
 * limit) are refusals; the rest are failures. */
static bool
is_refusal(const struct stripe_error *se)
{
	long s = se->http_status;

	return s >= 400 && s < 500 && s != 401 && s != 403 && s != 409 &&
	       s != 429;
}

static void
record_failure(struct sandbox_stripe_item *it, const struct stripe_error *se,
	       const struct ops_err *e, bool refusal)
{
	it->outcome = refusal ? SBX_OUT_REFUSED : SBX_OUT_FAILED;
	if (refusal)
		snprintf(it->detail, sizeof(it->detail),
			 "%s (%s%s%s, HTTP %ld)", se->message, se->type,
			 se->code[0] ? " " : "", se->code, se->http_status);
	else
		snprintf(it->detail, sizeof(it->detail), "%s", e->msg);
}

static int
owner_row(struct db *db, char **email, char **cus, struct ops_err *err)
{
	static const char sql[] = "SELECT email, stripe_customer_id FROM users"
				  " WHERE id = $1";
	const char *p[1] = { SANDBOX_OWNER_ID };
	struct db_res *res = NULL;
	int r;

	*email = *cus = NULL;
	r = db_query(db, sql, 1, p, &res, err);
	if (r != 0)
		return r;
	if (db_res_rows(res) == 0) {
		db_res_free(res);
		return ops_fail(err, OPS_E_NOTFOUND, false,
				"sandbox owner %s is not in users",
				SANDBOX_OWNER_ID);
	}
	*email = xstrdup(db_res_get(res, 0, 0));
	*cus = xstrdup(db_res_get(res, 0, 1)); /* NULL stays NULL */
	db_res_free(res);
	return 0;
}

#define OWNER_NAME "Apex Sandbox Owner"
#define OWNER_DESC "Sandbox staging org billing contact"

static int
customer_step(struct db *db, struct stripe *st, bool dry_run, const char *email,
	      const char *stored, json_t **customer,
	      struct sandbox_stripe_item *it, struct ops_err *err)
{
	static const char store_sql[] =
		"UPDATE users SET stripe_customer_id = $2 WHERE id = $1"
		" AND stripe_customer_id IS DISTINCT FROM $2";
	struct stripe_error se;
	json_t *params = NULL, *doc = NULL, *cust = NULL;
	char key[320];
	int r = 0;

	*customer = NULL;
	if (stored != NULL && stripe_id_valid(stored)) {
		r = stripe_customer_get(st, stored, &cust, &se, err);
		if (r != 0)
			goto fail;
		if (cust == NULL)
			log_warn(
				"stripe stored customer is gone, looking up by "
				"email customer=%s",
				log_q(stored));
	}
	if (cust == NULL) {
		char found[128];

		r = stripe_customer_find_by_email(st, email, found,
						  sizeof(found), &se, err);
		if (r != 0)
			goto fail;
		if (found[0] != '\0') {
			r = stripe_customer_get(st, found, &cust, &se, err);
			if (r != 0)
				goto fail;
		}
	}
	if (cust == NULL && dry_run) {
		it->outcome = SBX_OUT_WOULD;
		return 0;
	}
	if (cust == NULL) {
		params = json_pack("{s:s, s:s, s:s}", "email", email, "name",
				   OWNER_NAME, "description", OWNER_DESC);
		/*
		 * Deterministic, so that a crash before the id is stored
		 * replays the same customer; when a stored customer was
		 * deleted in Stripe, its replacement is another operation
		 * and gets another key (the old one would replay the
		 * deleted customer for 24 hours).
		 */
		if (stored != NULL && stripe_id_valid(stored))
			snprintf(key, sizeof(key),
				 "apexops-sandbox-%s-customer-after-%s-v1",
				 SANDBOX_OWNER_ID, stored);
		else
			snprintf(key, sizeof(key),
				 "apexops-sandbox-%s-customer-v1",
				 SANDBOX_OWNER_ID);
		r = stripe_call(st, "POST", "/v1/customers", params, key, &doc,
				NULL, &se, err);
		json_decref(params);
		params = NULL;
		if (r != 0 || !stripe_id_valid(jstr(doc, "id"))) {
			if (r == 0)
				r = ops_fail(err, OPS_E_HTTP, false,
					     "stripe: customer without an id");
			goto fail;
		}
		it->outcome = SBX_OUT_CREATED;
		r = stripe_customer_get(st, jstr(doc, "id"), &cust, &se, err);
		if (r == 0 && cust == NULL)
			r = ops_fail(err, OPS_E_HTTP, false,
				     "stripe: customer %s, just created or "
				     "replayed by its idempotency key, cannot "
				     "be read back (deleted?)",
				     jstr(doc, "id"));
		json_decref(doc);
		doc = NULL;
		if (r != 0)
			goto fail;
	} else {
		it->outcome = SBX_OUT_FOUND;
	}
	set_id(it, jstr(cust, "id"));

	/* some peers ignore name on create; converge name and description */
	if (jstr(cust, "name") == NULL ||
	    strcmp(jstr(cust, "name"), OWNER_NAME) != 0 ||
	    jstr(cust, "description") == NULL ||
	    strcmp(jstr(cust, "description"), OWNER_DESC) != 0) {
		char path[320];

		if (dry_run) {
			it->outcome = SBX_OUT_WOULD;
		} else {
			snprintf(path, sizeof(path), "/v1/customers/%s",
				 it->id);
			snprintf(key, sizeof(key),
				 "apexops-sandbox-%s-profile-v1", it->id);
			params = json_pack("{s:s, s:s}", "name", OWNER_NAME,
					   "description", OWNER_DESC);
			r = stripe_call(st, "POST", path, params, key, &doc,
					NULL, &se, err);
			json_decref(params);
			params = NULL;
			json_decref(doc);
			doc = NULL;
			if (r != 0)
				goto fail;
			if (it->outcome == SBX_OUT_FOUND)
				it->outcome = SBX_OUT_CREATED;
		}
	}
	if (!dry_run) {
		const char *p[2] = { SANDBOX_OWNER_ID, it->id };
		long long n = 0;

		r = db_exec(db, store_sql, 2, p, &n, err);
		if (r != 0) {
			ops_err_prefix(err, "storing users.stripe_customer_id");
			goto fail;
		}
		if (n > 0 && it->outcome == SBX_OUT_FOUND)
			it->outcome = SBX_OUT_CREATED; /* newly linked */
	}
	*customer = cust;
	return 0;
fail:
	json_decref(cust);
	json_decref(doc);
	record_failure(it, &se, err, false);
	return r;
}

static int
attach_step(struct stripe *st, bool dry_run, const char *cus,
	    const json_t *customer, const char *object, const char *token,
	    const char *tag, struct sandbox_stripe_item *it,
	    struct ops_err *err)
{
	struct stripe_error se;
	json_t *doc = NULL;
	char key[320];
	int r;

	memset(&se, 0, sizeof(se));
	r = stripe_customer_find_source(st, cus, customer, object, it->id,
					sizeof(it->id), &se, err);
	if (r != 0) {
		record_failure(it, &se, err, false);
		return r;
	}
	if (it->id[0] != '\0') {
		it->outcome = SBX_OUT_FOUND;
		return 0;
	}
	if (dry_run) {
		it->outcome = SBX_OUT_WOULD;
		return 0;
	}
	snprintf(key, sizeof(key), "apexops-sandbox-%s-%s-v1", cus, tag);
	r = stripe_customer_attach_source(st, cus, token, key, &doc, &se, err);
	if (r != 0) {
		bool refused = is_refusal(&se);

		record_failure(it, &se, err, refused);
		if (refused) {
			ops_err_clear(err);
			r = 0;
		}
		return r;
	}
	set_id(it, jstr(doc, "id"));
	it->outcome = SBX_OUT_CREATED;
	json_decref(doc);
	return 0;
}

/* Stripe's test IBAN for SEPA Direct Debit (docs.stripe.com/testing): a
 * PaymentMethod made from it attaches and its debits succeed. */
#define SANDBOX_SEPA_IBAN "DE89370400440532013000"

/*
 * SEPA as Stripe documents it: a PaymentMethod of type sepa_debit from
 * the test IBAN, with the billing name and email SEPA requires, attached
 * to the customer. (There is no SEPA source token: btok_sepa_debit is
 * refused by Stripe as "No such token".)
 */
static int
sepa_step(struct stripe *st, bool dry_run, const char *cus, const char *email,
	  struct sandbox_stripe_item *it, struct ops_err *err)
{
	struct stripe_error se;
	json_t *params = NULL, *doc = NULL;
	char key[320], pm[128];
	int r;

	memset(&se, 0, sizeof(se));
	r = stripe_customer_find_payment_method(st, cus, "sepa_debit", it->id,
						sizeof(it->id), &se, err);
	if (r != 0)
		goto fail;
	if (it->id[0] != '\0') {
		it->outcome = SBX_OUT_FOUND;
		return 0;
	}
	if (dry_run) {
		it->outcome = SBX_OUT_WOULD;
		return 0;
	}
	params = json_pack("{s:s, s:{s:s}, s:{s:s, s:s}}", "type", "sepa_debit",
			   "sepa_debit", "iban", SANDBOX_SEPA_IBAN,
			   "billing_details", "name", OWNER_NAME, "email",
			   email);
	snprintf(key, sizeof(key), "apexops-sandbox-%s-sepa-pm-v1", cus);
	r = stripe_payment_method_create(st, params, key, &doc, &se, err);
	json_decref(params);
	if (r == 0 && !stripe_id_valid(jstr(doc, "id")))
		r = ops_fail(err, OPS_E_HTTP, false,
			     "stripe: payment method without an id");
	if (r != 0)
		goto fail;
	snprintf(pm, sizeof(pm), "%s", jstr(doc, "id"));
	json_decref(doc);
	doc = NULL;
	snprintf(key, sizeof(key), "apexops-sandbox-%s-sepa-attach-%s-v1", cus,
		 pm);
	r = stripe_payment_method_attach(st, pm, cus, key, &doc, &se, err);
	if (r != 0)
		goto fail;
	set_id(it, pm);
	it->outcome = SBX_OUT_CREATED;
	json_decref(doc);
	return 0;
fail:
	json_decref(doc);
	{
		bool refused = is_refusal(&se);

		record_failure(it, &se, err, refused);
		if (refused) {
			ops_err_clear(err);
			r = 0;
		}
	}
	return r;
}

static int
default_step(struct stripe *st, bool dry_run, const char *cus, const char *card,
	     struct sandbox_stripe_item *it, struct ops_err *err)
{
	struct stripe_error se;
	json_t *cust = NULL;
	char key[400];
	const char *cur;
	int r;

	memset(&se, 0, sizeof(se));
	if (card[0] == '\0') {
		it->outcome = dry_run ? SBX_OUT_WOULD : SBX_OUT_NONE;
		return 0;
	}
	r = stripe_customer_get(st, cus, &cust, &se, err);
	if (r != 0 || cust == NULL) {
		if (r == 0)
			r = ops_fail(err, OPS_E_HTTP, false,
				     "stripe: customer %s disappeared", cus);
		record_failure(it, &se, err, false);
		return r;
	}
	cur = jstr(cust, "default_source");
	if (cur != NULL && strcmp(cur, card) == 0) {
		it->outcome = SBX_OUT_FOUND;
		set_id(it, card);
		json_decref(cust);
		return 0;
	}
	json_decref(cust);
	if (dry_run) {
		it->outcome = SBX_OUT_WOULD;
		return 0;
	}
	snprintf(key, sizeof(key), "apexops-sandbox-%s-default-%s-v1", cus,
		 card);
	r = stripe_customer_set_default_source(st, cus, card, key, &se, err);
	if (r != 0) {
		record_failure(it, &se, err, false);
		return r;
	}
	set_id(it, card);
	it->outcome = SBX_OUT_CREATED;
	return 0;
}

int
sandbox_bootstrap_stripe(struct db *db, struct stripe *st, bool dry_run,
			 struct sandbox_stripe_report *rep, struct ops_err *err)
{
	static const struct {
		enum sandbox_stripe_step step;
		const char *object, *token, *tag;
	} sources[] = {
		{ SBX_ST_CARD, "card", "tok_visa", "card" },
		{ SBX_ST_ACH, "bank_account", "btok_us_verified", "ach" },
	};
	struct ops_err first = OPS_ERR_INIT;
	char *email = NULL, *stored = NULL, *cus = NULL;
	json_t *customer = NULL;
	int r, failed = 0;

	memset(rep, 0, sizeof(*rep));
	r = owner_row(db, &email, &stored, err);
	if (r != 0) {
		if (r == OPS_E_NOTFOUND && dry_run) {
			/* the dry run rolled the owner back: plan from email */
			ops_err_clear(err);
			email = xstrdup(sandbox_users[0].email);
		} else {
			goto out;
		}
	}
	r = customer_step(db, st, dry_run, email, stored, &customer,
			  &rep->step[SBX_ST_CUSTOMER], err);
	if (r != 0)
		goto out;
	if (customer == NULL) { /* dry run, no customer yet */
		for (int s = SBX_ST_CARD; s < SBX_ST_NSTEPS; s++)
			rep->step[s].outcome = SBX_OUT_WOULD;
		goto out;
	}
	cus = xstrdup(rep->step[SBX_ST_CUSTOMER].id);
	for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
		struct ops_err e = OPS_ERR_INIT;

		if (attach_step(st, dry_run, cus, customer, sources[i].object,
				sources[i].token, sources[i].tag,
				&rep->step[sources[i].step], &e) != 0) {
			if (failed++ == 0)
				first = e;
		}
	}
	{
		struct ops_err e = OPS_ERR_INIT;

		if (sepa_step(st, dry_run, cus, email, &rep->step[SBX_ST_SEPA],
			      &e) != 0) {
			if (failed++ == 0)
				first = e;
		}
	}
	{
		struct ops_err e = OPS_ERR_INIT;

		if (default_step(st, dry_run, cus, rep->step[SBX_ST_CARD].id,
				 &rep->step[SBX_ST_DEFAULT], &e) != 0) {
			if (failed++ == 0)
				first = e;
		}
	}
	if (failed > 0) {
		if (err != NULL)
			*err = first;
		r = first.code != 0 ? first.code : OPS_E_HTTP;
		if (failed > 1)
			ops_err_prefix(err, "%d Stripe steps failed, first",
				       failed);
	}
out:
	json_decref(customer);
	free(email);
	free(stored);
	free(cus);
	return r;
}
