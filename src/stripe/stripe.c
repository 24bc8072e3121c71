#include "stripe/stripe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "http/url.h"

struct stripe {
	struct http_client *http;
	char *api_base;
	char *auth_header; /* "Authorization: Bearer sk_..."; wiped on free */
	char *version_header;
};

bool
stripe_id_valid(const char *s)
{
	size_t n = 0;

	if (s == NULL)
		return false;
	for (; s[n] != '\0'; n++) {
		char c = s[n];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return n >= 1 && n <= 255;
}

static bool
header_value_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

int
stripe_new(const struct stripe_opts *o, struct stripe **out,
	   struct ops_err *err)
{
	struct http_policy def;
	struct stripe *st;
	size_t n;
	int r;

	*out = NULL;
	if (o->api_base == NULL)
		return ops_fail(err, OPS_E_CONFIG, false,
				"APEXOPS_STRIPE_API_BASE is unset: expected a "
				"URL such as https://api.stripe.com");
	/* main() checked it already; a library caller may not have */
	r = http_base_url_check("APEXOPS_STRIPE_API_BASE", o->api_base, err);
	if (r != 0)
		return r;
	if (o->secret_key == NULL || *o->secret_key == '\0' ||
	    !header_value_ok(o->secret_key) || strchr(o->secret_key, ' '))
		return ops_fail(err, OPS_E_CONFIG, false,
				"STRIPE_SECRET_KEY is empty or holds spaces "
				"or control characters");
	if (o->api_version == NULL || *o->api_version == '\0' ||
	    !header_value_ok(o->api_version))
		return ops_fail(err, OPS_E_CONFIG, false,
				"STRIPE_API_VERSION must be a version such as "
				"2023-10-16");
	if (o->policy == NULL)
		http_policy_default(&def);
	st = xcalloc(1, sizeof(*st));
	r = http_client_new(o->policy ? o->policy : &def, &st->http, err);
	if (r != 0) {
		free(st);
		return r;
	}
	st->api_base = xstrdup(o->api_base);
	n = strlen(st->api_base);
	while (n > 0 && st->api_base[n - 1] == '/')
		st->api_base[--n] = '\0';
	st->auth_header = xasprintf("Authorization: Bearer %s", o->secret_key);
	st->version_header = xasprintf("Stripe-Version: %s", o->api_version);
	*out = st;
	return 0;
}

void
stripe_free(struct stripe *st)
{
	if (st == NULL)
		return;
	http_client_free(st->http);
	freezero_str(st->auth_header);
	free(st->version_header);
	free(st->api_base);
	free(st);
}

/* The shortest decimal text that reads back as d (String(n) in JS). */
static void
format_real(char *out, size_t n, double d)
{
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, n, "%.*g", prec, d);
		if (strtod(out, NULL) == d)
			return;
	}
}

static int encode_value(struct buf *out, struct buf *key, const json_t *v,
			bool *first);

static int
encode_pair(struct buf *out, const struct buf *key, const char *val,
	    bool *first)
{
	if (!*first && buf_append(out, "&", 1) != 0)
		return -1;
	*first = false;
	if (http_url_encode(out, key->data, key->len, true) != 0 ||
	    buf_append(out, "=", 1) != 0 ||
	    http_url_encode(out, val, strlen(val), true) != 0)
		return -1;
	return 0;
}

static int
encode_value(struct buf *out, struct buf *key, const json_t *v, bool *first)
{
	size_t keylen = key->len;
	char num[64];
	const char *k;
	json_t *item;
	size_t i;
	int r = 0;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		json_object_foreach((json_t *)v, k, item)
		{
			if (buf_printf(key, "[%s]", k) != 0)
				return -1;
			r = encode_value(out, key, item, first);
			buf_truncate(key, keylen);
			if (r != 0)
				return r;
		}
		return 0;
	case JSON_ARRAY:
		json_array_foreach(v, i, item)
		{
			if (buf_printf(key, "[%zu]", i) != 0)
				return -1;
			r = encode_value(out, key, item, first);
			buf_truncate(key, keylen);
			if (r != 0)
				return r;
		}
		return 0;
	case JSON_STRING:
		return encode_pair(out, key, json_string_value(v), first);
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		return encode_pair(out, key, num, first);
	case JSON_REAL:
		format_real(num, sizeof(num), json_real_value(v));
		return encode_pair(out, key, num, first);
	case JSON_TRUE:
		return encode_pair(out, key, "true", first);
	case JSON_FALSE:
		return encode_pair(out, key, "false", first);
	case JSON_NULL:
		return encode_pair(out, key, "", first);
	}
	return -1;
}

int
stripe_form_encode(struct buf *out, const json_t *params)
{
	struct buf key = BUF_INIT;
	bool first = true;
	const char *k;
	json_t *v;
	int r = 0;

	if (!json_is_object(params))
		return -1;
	if (out->len > 0)
		first = false;
	json_object_foreach((json_t *)params, k, v)
	{
		buf_reset(&key);
		if (buf_puts(&key, k) != 0) {
			r = -1;
			break;
		}
		r = encode_value(out, &key, v, &first);
		if (r != 0)
			break;
	}
	buf_release(&key);
	return r;
}

static void
copy_field(char *dst, size_t n, const json_t *obj, const char *name)
{
	const char *s = json_string_value(json_object_get(obj, name));

	snprintf(dst, n, "%s", s != NULL ? s : "");
}

int
stripe_error_parse(const char *body, size_t len, struct stripe_error *serr)
{
	json_t *doc, *e;
	int r = -1;

	doc = json_loadb(body, len, 0, NULL);
	e = json_object_get(doc, "error");
	if (json_is_object(e)) {
		copy_field(serr->type, sizeof(serr->type), e, "type");
		copy_field(serr->code, sizeof(serr->code), e, "code");
		copy_field(serr->param, sizeof(serr->param), e, "param");
		copy_field(serr->message, sizeof(serr->message), e, "message");
		copy_field(serr->decline_code, sizeof(serr->decline_code), e,
			   "decline_code");
		r = 0;
	}
	json_decref(doc);
	return r;
}

int
stripe_call(struct stripe *st, const char *method, const char *path,
	    const json_t *params, const char *idem_key, json_t **out,
	    bool *replayed, struct stripe_error *serr, struct ops_err *err)
{
	struct http_response resp = HTTP_RESPONSE_INIT;
	struct stripe_error se;
	struct http_request req;
	struct buf url = BUF_INIT, form = BUF_INIT;
	const char *headers[6];
	char *idem_header = NULL;
	bool post = strcmp(method, "POST") == 0;
	json_t *doc = NULL;
	int nh = 0, r;

	*out = NULL;
	if (replayed != NULL)
		*replayed = false;
	memset(&se, 0, sizeof(se));
	if (strncmp(path, "/v1/", 4) != 0) {
		r = ops_fail(err, OPS_E_INVALID, false,
			     "stripe: path '%s' does not start with /v1/",
			     path);
		goto out;
	}
	if (post && (idem_key == NULL || *idem_key == '\0' ||
		     !header_value_ok(idem_key) || strlen(idem_key) > 255)) {
		r = ops_fail(err, OPS_E_INVALID, false,
			     "stripe: POST %s needs an idempotency key of 1 "
			     "to 255 printable characters",
			     path);
		goto out;
	}
	if (params != NULL &&
	    stripe_form_encode(post ? &form : &url, params) != 0) {
		r = ops_fail(err, OPS_E_INVALID, false,
			     "stripe: parameters of %s are not an object",
			     path);
		goto out;
	}
	if (!post && url.len > 0) {
		/* url holds the query so far; build base + path + ? + query */
		char *q = buf_detach(&url);

		buf_addf(&url, "%s%s?%s", st->api_base, path, q);
		free(q);
	} else {
		buf_addf(&url, "%s%s", st->api_base, path);
	}

	headers[nh++] = st->auth_header;
	headers[nh++] = st->version_header;
	if (post) {
		headers[nh++] =
			"Content-Type: application/x-www-form-urlencoded";
		idem_header = xasprintf("Idempotency-Key: %s", idem_key);
		headers[nh++] = idem_header;
	}
	headers[nh] = NULL;

	memset(&req, 0, sizeof(req));
	req.method = method;
	req.url = buf_str(&url);
	req.headers = headers;
	req.body = post ? buf_str(&form) : NULL;
	req.body_len = post ? form.len : 0;
	req.idempotent = true; /* GET/DELETE, or POST with a key */

	r = http_do(st->http, &req, &resp, err);
	if (r != 0) {
		ops_err_prefix(err, "stripe");
		goto out;
	}
	se.http_status = resp.status;
	snprintf(se.request_id, sizeof(se.request_id), "%s",
		 resp.request_id ? resp.request_id : "");
	if (resp.status < 200 || resp.status > 299) {
		bool transient = resp.status == 409 || resp.status == 429 ||
				 resp.status >= 500;

		if (stripe_error_parse(resp.body.data, resp.body.len, &se) != 0)
			snprintf(se.message, sizeof(se.message),
				 "no Stripe error object in the answer "
				 "(body: %.120s)",
				 buf_str(&resp.body));
		r = ops_fail(
			err, resp.status == 404 ? OPS_E_NOTFOUND : OPS_E_HTTP,
			transient, "stripe: %s %s: HTTP %ld %s%s%s: %s%s%s%s",
			method, path, resp.status,
			se.type[0] ? se.type : "error", se.code[0] ? " " : "",
			se.code, se.message, se.param[0] ? " (param " : "",
			se.param, se.param[0] ? ")" : "");
		goto out;
	}
	doc = json_loadb(resp.body.data, resp.body.len, 0, NULL);
	if (!json_is_object(doc)) {
		r = ops_fail(err, OPS_E_HTTP, false,
			     "stripe: %s %s: HTTP %ld with a body that is not "
			     "a JSON object",
			     method, path, resp.status);
		goto out;
	}
	if (replayed != NULL)
		*replayed = resp.replayed;
	log_debug("stripe call method=%s path=%s status=%ld attempts=%d "
		  "replayed=%s",
		  method, log_q(path), resp.status, resp.attempts,
		  resp.replayed ? "true" : "false");
	*out = doc;
	doc = NULL; /* ownership moved to the caller */
	r = 0;
out:
	if (serr != NULL)
		*serr = se;
	json_decref(doc);
	free(idem_header);
	http_response_release(&resp);
	buf_release(&url);
	buf_release(&form);
	return r;
}

int
stripe_load_key(const struct ops_config *cfg, const char *purpose, char **key,
		struct ops_err *err)
{
	const char *file = getenv("STRIPE_SECRET_KEY_FILE");
	const char *env = getenv("STRIPE_SECRET_KEY");
	char *k = NULL;

	*key = NULL;
	if (file != NULL && env != NULL)
		return ops_fail(err, OPS_E_CONFIG, false,
				"STRIPE_SECRET_KEY and STRIPE_SECRET_KEY_FILE "
				"are both set: use one");
	if (file != NULL) {
		struct buf b = BUF_INIT;

		if (ops_read_file(file, 64 * 1024, &b, err) != 0) {
			buf_release(&b);
			return ops_err_recode(err, OPS_E_CONFIG,
					      "STRIPE_SECRET_KEY_FILE");
		}
		if (b.len > 0 && b.data[b.len - 1] == '\n')
			buf_truncate(&b, b.len - 1);
		k = buf_detach(&b);
	} else if (env != NULL) {
		k = xstrdup(env);
	} else if (cfg != NULL && cfg->stripe_secret_key != NULL) {
		k = xstrdup(cfg->stripe_secret_key);
	}
	if (k == NULL || *k == '\0') {
		freezero_str(k);
		return ops_fail(err, OPS_E_CONFIG, false,
				"STRIPE_SECRET_KEY is not set (nor "
				"STRIPE_SECRET_KEY_FILE): %s needs a Stripe "
				"secret key, sk_... or a restricted key rk_...",
				purpose != NULL ? purpose : "this command");
	}
	log_add_secret(k);
	for (const char *c = k; *c != '\0'; c++)
		if ((unsigned char)*c <= ' ' || *c == 0x7f) {
			freezero_str(k);
			return ops_fail(err, OPS_E_CONFIG, false,
					"STRIPE_SECRET_KEY: the key holds "
					"white space or control characters");
		}
	if (strncmp(k, "sk_", 3) != 0 && strncmp(k, "rk_", 3) != 0) {
		freezero_str(k);
		return ops_fail(err, OPS_E_CONFIG, false,
				"STRIPE_SECRET_KEY: invalid value: expected a "
				"secret key starting with sk_ (or a restricted "
				"key, rk_)");
	}
	*key = k;
	return 0;
}

long
stripe_default_rps(long configured, const char *key)
{
	if (configured > 0)
		return configured;
	if (key != NULL && (strncmp(key, "sk_test_", 8) == 0 ||
			    strncmp(key, "rk_test_", 8) == 0))
		return 25;
	return 100;
}
