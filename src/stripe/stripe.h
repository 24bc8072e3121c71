/*
 * Stripe API client over http/: form-encoded requests (nested parameters
 * as stripe-node encodes them), "Authorization: Bearer <key>" (the key is
 * never logged nor put in an error), a pinned Stripe-Version, an
 * Idempotency-Key on every POST, JSON answers through jansson, and errors
 * that carry Stripe's type, code, message, param and the HTTP status. The
 * official SDKs have no C flavour; stripe-node is the reference for the
 * encoding and the retry rules (tests compare against it).
 */
#ifndef OPS_STRIPE_STRIPE_H
#define OPS_STRIPE_STRIPE_H

#include <jansson.h>
#include <stdbool.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "http/http.h"

struct stripe;

struct stripe_opts {
	const char *api_base;	 /* e.g. https://api.stripe.com (no /v1) */
	const char *secret_key;	 /* sk_...; copied and wiped on free */
	const char *api_version; /* Stripe-Version */
	const struct http_policy *policy; /* NULL: http_policy_default() */
};

/* What Stripe said about a failed request; fields "" when absent. */
struct stripe_error {
	long http_status; /* 0: no response */
	char type[64];	  /* invalid_request_error, card_error, ... */
	char code[64];	  /* resource_missing, card_declined, ... */
	char param[128];
	char message[512];
	char request_id[64];
	char decline_code[64]; /* card errors: generic_decline, ... */
};

/*
 * Validate the options (an http(s) base URL, a key, a version) and make a
 * client; *out is freed with stripe_free(). A bad value is OPS_E_CONFIG.
 */
int stripe_new(const struct stripe_opts *o, struct stripe **out,
	       struct ops_err *err);
/* Wipe the key, free st. NULL is a no-op. */
void stripe_free(struct stripe *st);

/*
 * One API call. method is GET, POST or DELETE; path starts with "/v1/".
 * params (borrowed, may be NULL) is a JSON object encoded as a query
 * string for GET/DELETE and as the form body for POST. idem_key is
 * required for POST (OPS_E_INVALID without one) and ignored otherwise.
 * On success *out is a new reference the caller json_decref()s. A non-2xx
 * answer is OPS_E_HTTP (OPS_E_NOTFOUND for 404), transient for 409, 429
 * and 5xx; serr (may be NULL) gets Stripe's error fields. *replayed (may
 * be NULL) tells whether Stripe replayed an earlier idempotent answer.
 */
int stripe_call(struct stripe *st, const char *method, const char *path,
		const json_t *params, const char *idem_key, json_t **out,
		bool *replayed, struct stripe_error *serr, struct ops_err *err);

/*
 * Encode a JSON object as stripe-node's stringifyRequestData does:
 * nested objects as a[b]=v, arrays as a[0]=v, null as "", booleans as
 * true/false, numbers in their shortest round-trip form; keys and values
 * percent-encoded with [ and ] kept. Appends to out; returns 0 or -1 when
 * params is not an object or out is full.
 */
int stripe_form_encode(struct buf *out, const json_t *params);

/* Is s a plausible Stripe object id (letters, digits, '_'; 1..255)? Ids
 * are checked before they go into a path. */
bool stripe_id_valid(const char *s);

/* Parse a Stripe error body into serr (status set by the caller). Returns
 * 0 when the body had an "error" object. */
int stripe_error_parse(const char *body, size_t len, struct stripe_error *serr);

/*
 * The Stripe secret key for this run, read now (so a rotated key takes
 * effect without a restart): STRIPE_SECRET_KEY_FILE's file (less one
 * trailing newline), else STRIPE_SECRET_KEY from the environment, else
 * cfg's value (from a .env file at start). Both variables set is an error.
 * Without a key, OPS_E_CONFIG naming STRIPE_SECRET_KEY and what needs it
 * (purpose, e.g. "dunning"; NULL: "this command"). The key must start
 * with sk_ or rk_ (restricted). *key is a new string the caller frees with
 * freezero_str(); it is registered with the logger's secret list.
 */
int stripe_load_key(const struct ops_config *cfg, const char *purpose,
		    char **key, struct ops_err *err)
	__attribute__((warn_unused_result));

/* STRIPE_MAX_RPS resolved: configured > 0 wins; else 25 for a test key
 * (sk_test_, rk_test_), 100 for a live one. */
long stripe_default_rps(long configured, const char *key);

#endif
