/*
 * Stripe customer resources over stripe_call(): customers, their sources
 * (cards, bank accounts) and their PaymentMethods. Used by the sandbox
 * bootstrap and by billing.
 *
 * Conventions for every function here:
 *   - ids (cus_..., card_..., pm_...) are checked with stripe_id_valid()
 *     before they go into a path; a bad one is OPS_E_INVALID.
 *   - a POST needs idem_key (non-NULL, at most 255 characters, as Stripe
 *     allows); the same key with the same parameters replays Stripe's
 *     first answer, so a crashed caller can rerun safely.
 *   - serr (may be NULL) gets Stripe's error fields on failure; err (may be
 *     NULL) the message. Returns 0 or an OPS_E_* code (stripe_call()'s).
 *   - *out (where there is one) is a new reference the caller
 *     json_decref()s, NULL on failure.
 * Thread safety: as struct stripe: one thread at a time per client.
 */
#ifndef OPS_STRIPE_CUSTOMER_H
#define OPS_STRIPE_CUSTOMER_H

#include <jansson.h>
#include <stddef.h>

#include "core/err.h"
#include "stripe/stripe.h"

/*
 * GET /v1/customers/{id} with its sources expanded. A customer that does
 * not exist (404 resource_missing) or was deleted gives 0 and *out NULL:
 * not an error.
 */
int stripe_customer_get(struct stripe *st, const char *id, json_t **out,
			struct stripe_error *serr, struct ops_err *err);

/* GET /v1/customers?email=...&limit=1: the newest customer with that
 * email into id (idlen bytes), or "" when there is none. */
int stripe_customer_find_by_email(struct stripe *st, const char *email,
				  char *id, size_t idlen,
				  struct stripe_error *serr,
				  struct ops_err *err);

/*
 * A source of customer cus whose object is object ("card" or
 * "bank_account") into id (idlen bytes), or "" when there is none. Uses
 * GET /v1/customers/{id}/sources?object=...; a peer without that endpoint
 * (404 with no error code, as stripe-stateful-mock answers) falls back on
 * customer's expanded sources (customer may be NULL: then none).
 */
int stripe_customer_find_source(struct stripe *st, const char *cus,
				const json_t *customer, const char *object,
				char *id, size_t idlen,
				struct stripe_error *serr, struct ops_err *err);

/* POST /v1/customers/{id}/sources source=token (tok_visa,
 * btok_us_verified, ...): attach it; *out is the new source. */
int stripe_customer_attach_source(struct stripe *st, const char *cus,
				  const char *token, const char *idem_key,
				  json_t **out, struct stripe_error *serr,
				  struct ops_err *err);

/* POST /v1/customers/{id} default_source=source. */
int stripe_customer_set_default_source(struct stripe *st, const char *cus,
				       const char *source, const char *idem_key,
				       struct stripe_error *serr,
				       struct ops_err *err);

/*
 * The first PaymentMethod of type (e.g. "sepa_debit") attached to cus into
 * id (idlen bytes), or "" when there is none: GET
 * /v1/payment_methods?customer=...&type=....
 */
int stripe_customer_find_payment_method(struct stripe *st, const char *cus,
					const char *type, char *id,
					size_t idlen, struct stripe_error *serr,
					struct ops_err *err);

/*
 * POST /v1/payment_methods with params (borrowed; e.g. type=sepa_debit,
 * sepa_debit[iban], billing_details[name], billing_details[email]): a new
 * PaymentMethod, not yet attached to anyone.
 */
int stripe_payment_method_create(struct stripe *st, const json_t *params,
				 const char *idem_key, json_t **out,
				 struct stripe_error *serr,
				 struct ops_err *err);

/* POST /v1/payment_methods/{pm}/attach customer=cus. */
int stripe_payment_method_attach(struct stripe *st, const char *pm,
				 const char *cus, const char *idem_key,
				 json_t **out, struct stripe_error *serr,
				 struct ops_err *err);

#endif
