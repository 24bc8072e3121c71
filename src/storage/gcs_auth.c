#include "storage/gcs_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "storage/sigv4.h"

#define SCOPE	      "https://www.googleapis.com/auth/devstorage.read_write"
#define DEFAULT_TOKEN "https://oauth2.googleapis.com/token"
#define GRANT	      "urn:ietf:params:oauth:grant-type:jwt-bearer"
#define MAX_KEY_FILE  (64 * 1024)
#define JWT_LIFETIME  3600
#define REFRESH_AHEAD 60

struct gcs_auth {
	struct gcs_key key;
	EVP_PKEY *pkey;
	struct http_client *http;
	const volatile sig_atomic_t *stop;
	char *token; /* cached; wiped */
	time_t token_expires;
	time_t (*now)(void);
};

void
gcs_key_release(struct gcs_key *k)
{
	if (k == NULL)
		return;
	free(k->client_email);
	freezero_str(k->private_key);
	free(k->token_uri);
	memset(k, 0, sizeof(*k));
}

static int
key_field(json_t *doc, const char *name, bool required, char **out,
	  struct ops_err *err)
{
	json_t *v = json_object_get(doc, name);

	*out = NULL;
	if (v == NULL && !required)
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return ops_fail(err, OPS_E_CONFIG, false,
				"GOOGLE_APPLICATION_CREDENTIALS: the key "
				"file's \"%s\" is missing or not a non-empty "
				"string",
				name);
	*out = xstrdup(json_string_value(v));
	return 0;
}

int
gcs_key_parse(const char *json, size_t len, struct gcs_key *out,
	      struct ops_err *err)
{
	json_error_t je;
	json_t *doc, *type;
	int r;

	memset(out, 0, sizeof(*out));
	doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
	if (doc == NULL || !json_is_object(doc)) {
		/* je.text may quote the key file: give the place only */
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "GOOGLE_APPLICATION_CREDENTIALS: the key file "
			     "is not a JSON object (line %d, column %d)",
			     doc == NULL ? je.line : 1,
			     doc == NULL ? je.column : 1);
		json_decref(doc);
		return r;
	}
	type = json_object_get(doc, "type");
	if (type != NULL &&
	    (!json_is_string(type) ||
	     strcmp(json_string_value(type), "service_account") != 0)) {
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "GOOGLE_APPLICATION_CREDENTIALS: the key file's "
			     "\"type\" is not \"service_account\" (user and "
			     "external-account credentials are not "
			     "supported; use a service-account key or an "
			     "HMAC key)");
		goto out;
	}
	r = key_field(doc, "client_email", true, &out->client_email, err);
	if (r == 0)
		r = key_field(doc, "private_key", true, &out->private_key, err);
	if (r == 0)
		r = key_field(doc, "token_uri", false, &out->token_uri, err);
	if (r != 0)
		goto out;
	if (out->token_uri == NULL)
		out->token_uri = xstrdup(DEFAULT_TOKEN);
	if (strncmp(out->token_uri, "https://", 8) != 0 &&
	    strncmp(out->token_uri, "http://", 7) != 0) {
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "GOOGLE_APPLICATION_CREDENTIALS: the key file's "
			     "\"token_uri\" must be an http:// or https:// "
			     "URL");
		goto out;
	}
	for (const char *p = out->client_email; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == '/' || *p == 0x7f) {
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "GOOGLE_APPLICATION_CREDENTIALS: the key "
				     "file's \"client_email\" holds a space, "
				     "'/' or a control character");
			goto out;
		}
	r = 0;
out:
	json_decref(doc);
	return r;
}

void
gcs_base64url(struct buf *out, const void *data, size_t len)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
				  "qrstuvwxyz0123456789-_";
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i + 2 < len; i += 3) {
		char q[4] = { tab[p[i] >> 2],
			      tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)],
			      tab[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)],
			      tab[p[i + 2] & 63] };

		buf_addn(out, q, 4);
	}
	if (len - i == 1) {
		char q[2] = { tab[p[i] >> 2], tab[(p[i] & 3) << 4] };

		buf_addn(out, q, 2);
	} else if (len - i == 2) {
		char q[3] = { tab[p[i] >> 2],
			      tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)],
			      tab[(p[i + 1] & 15) << 2] };

		buf_addn(out, q, 3);
	}
}

static time_t
auth_now(const struct gcs_auth *a)
{
	return a->now != NULL ? a->now() : time(NULL);
}

void
gcs_auth_set_clock(struct gcs_auth *a, time_t (*fn)(void))
{
	a->now = fn;
}

int
gcs_auth_new(const char *path, const struct http_policy *pol,
	     const volatile sig_atomic_t *stop, struct gcs_auth **out,
	     struct ops_err *err)
{
	struct buf text = BUF_INIT;
	struct ops_err sub = OPS_ERR_INIT;
	struct gcs_auth *a;
	BIO *bio;
	int r;

	*out = NULL;
	r = ops_read_file(path, MAX_KEY_FILE, &text, &sub);
	if (r != 0)
		return ops_fail(err, OPS_E_CONFIG, false,
				"GOOGLE_APPLICATION_CREDENTIALS: %s", sub.msg);
	a = xcalloc(1, sizeof(*a));
	a->stop = stop;
	r = gcs_key_parse(text.data, text.len, &a->key, err);
	OPENSSL_cleanse(text.data, text.len);
	buf_release(&text);
	if (r != 0)
		goto fail;
	bio = BIO_new_mem_buf(a->key.private_key, -1);
	if (bio != NULL)
		a->pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (a->pkey == NULL || EVP_PKEY_base_id(a->pkey) != EVP_PKEY_RSA) {
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "GOOGLE_APPLICATION_CREDENTIALS: the key file's "
			     "\"private_key\" is not a PEM RSA private key");
		goto fail;
	}
	r = http_client_new(pol, &a->http, err);
	if (r != 0)
		goto fail;
	*out = a;
	return 0;
fail:
	gcs_auth_free(a);
	return r;
}

void
gcs_auth_free(struct gcs_auth *a)
{
	if (a == NULL)
		return;
	gcs_key_release(&a->key);
	EVP_PKEY_free(a->pkey);
	http_client_free(a->http);
	freezero_str(a->token);
	free(a);
}

/* RSA-SHA256 (PKCS #1 v1.5) of data: *sig new, *siglen bytes. */
static int
rsa_sign(struct gcs_auth *a, const void *data, size_t len, unsigned char **sig,
	 size_t *siglen, struct ops_err *err)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = 0;

	*sig = NULL;
	*siglen = 0;
	if (ctx == NULL ||
	    EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, a->pkey) != 1 ||
	    EVP_DigestSign(ctx, NULL, siglen, data, len) != 1) {
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "gcs: cannot sign with the service account's "
			     "key");
		goto out;
	}
	*sig = xmalloc(*siglen);
	if (EVP_DigestSign(ctx, *sig, siglen, data, len) != 1) {
		free(*sig);
		*sig = NULL;
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "gcs: cannot sign with the service account's "
			     "key");
	}
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

/* The signed JWT assertion for the token exchange; *out new. */
static int
make_jwt(struct gcs_auth *a, time_t now, char **out, struct ops_err *err)
{
	static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
	struct buf jwt = BUF_INIT;
	json_t *claims;
	char *text;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	int r;

	*out = NULL;
	claims = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss",
			   a->key.client_email, "scope", SCOPE, "aud",
			   a->key.token_uri, "iat", (json_int_t)now, "exp",
			   (json_int_t)(now + JWT_LIFETIME));
	if (claims == NULL)
		abort();
	text = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(claims);
	if (text == NULL)
		abort();
	gcs_base64url(&jwt, header, strlen(header));
	buf_adds(&jwt, ".");
	gcs_base64url(&jwt, text, strlen(text));
	free(text);
	r = rsa_sign(a, jwt.data, jwt.len, &sig, &siglen, err);
	if (r != 0) {
		buf_release(&jwt);
		return r;
	}
	buf_adds(&jwt, ".");
	gcs_base64url(&jwt, sig, siglen);
	free(sig);
	*out = buf_detach(&jwt);
	return 0;
}

/* Printable ASCII of a JSON string field, for error text. */
static void
printable(char *dst, size_t n, json_t *doc, const char *name)
{
	const char *v = json_string_value(json_object_get(doc, name));
	size_t o = 0;

	for (; v != NULL && *v != '\0' && o + 1 < n; v++)
		dst[o++] = (unsigned char)*v >= ' ' && *v != 0x7f ? *v : '?';
	dst[o] = '\0';
}

static int
exchange(struct gcs_auth *a, struct ops_err *err)
{
	struct http_request req = { 0 };
	struct http_response resp = HTTP_RESPONSE_INIT;
	const char *hdrs[] = {
		"Content-Type: application/x-www-form-urlencoded",
		"Accept: application/json", NULL
	};
	struct buf body = BUF_INIT;
	char *jwt = NULL;
	json_t *doc = NULL, *tok, *exp;
	time_t now = auth_now(a);
	int r;

	r = make_jwt(a, now, &jwt, err);
	if (r != 0)
		return r;
	buf_adds(&body, "grant_type=");
	if (http_url_encode(&body, GRANT, strlen(GRANT), false) != 0)
		abort(); /* body has no maximum */
	buf_adds(&body, "&assertion=");
	buf_adds(&body, jwt); /* base64url and dots need no encoding */
	freezero_str(jwt);
	req.method = "POST";
	req.url = a->key.token_uri;
	req.headers = hdrs;
	req.body = body.data;
	req.body_len = body.len;
	req.idempotent = true; /* a second exchange only makes a new token */
	req.stop = a->stop;
	r = http_do(a->http, &req, &resp, err);
	OPENSSL_cleanse(body.data, body.len);
	buf_release(&body);
	if (r != 0) {
		(void)ops_err_prefix(err, "gcs: token exchange");
		goto out;
	}
	if (resp.body.len > 0)
		doc = json_loadb(resp.body.data, resp.body.len, 0, NULL);
	if (resp.status != 200) {
		char code[64] = "", desc[200] = "";

		printable(code, sizeof(code), doc, "error");
		printable(desc, sizeof(desc), doc, "error_description");
		r = ops_fail(err, OPS_E_HTTP, resp.status >= 500,
			     "gcs: token exchange at the key file's "
			     "token_uri failed: HTTP %ld%s%s%s%s",
			     resp.status, code[0] ? " " : "", code,
			     desc[0] ? ": " : "", desc);
		goto out;
	}
	tok = json_object_get(doc, "access_token");
	exp = json_object_get(doc, "expires_in");
	if (!json_is_string(tok) || json_string_length(tok) == 0 ||
	    strlen(json_string_value(tok)) != json_string_length(tok) ||
	    strpbrk(json_string_value(tok), "\r\n") != NULL ||
	    !json_is_integer(exp) || json_integer_value(exp) <= 0) {
		r = ops_fail(err, OPS_E_HTTP, false,
			     "gcs: token exchange answered without an "
			     "access_token and expires_in");
		goto out;
	}
	freezero_str(a->token);
	/* not log_add_secret(): a daemon would register one per hour for
	 * ever; the token only ever goes into an Authorization header,
	 * which is never logged */
	a->token = xstrdup(json_string_value(tok));
	{
		json_int_t e = json_integer_value(exp);

		if (e > 86400)
			e = 86400;
		/* refresh a minute early; half-way for short tokens */
		a->token_expires =
			now + (time_t)(e > 2 * REFRESH_AHEAD ? e - REFRESH_AHEAD
							     : e / 2);
	}
	r = 0;
out:
	if (doc != NULL) {
		/* the token is in there too */
		json_t *t = json_object_get(doc, "access_token");

		if (json_is_string(t))
			OPENSSL_cleanse((char *)json_string_value(t),
					json_string_length(t));
	}
	json_decref(doc);
	if (resp.body.data != NULL)
		OPENSSL_cleanse(resp.body.data, resp.body.len);
	http_response_release(&resp);
	return r;
}

int
gcs_auth_token(struct gcs_auth *a, char **token, struct ops_err *err)
{
	int r;

	*token = NULL;
	if (a->token == NULL || auth_now(a) >= a->token_expires) {
		r = exchange(a, err);
		if (r != 0)
			return r;
	}
	*token = xstrdup(a->token);
	return 0;
}

static void
add_param(struct buf *q, const char *name, const char *value)
{
	if (q->len > 0)
		buf_adds(q, "&");
	buf_adds(q, name);
	buf_adds(q, "=");
	if (http_url_encode(q, value, strlen(value), false) != 0)
		abort(); /* q has no maximum */
}

int
gcs_auth_presign_get(struct gcs_auth *a, const struct s3_client *c,
		     const char *name, long expires, char **url,
		     struct ops_err *err)
{
	char datetime[17], date[9], exp_s[24], hash[65];
	char *base = NULL, *path = NULL, *host = NULL, *scope, *cred;
	struct buf q = BUF_INIT, creq = BUF_INIT, sts = BUF_INIT, u = BUF_INIT;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	time_t now = auth_now(a);
	struct tm tm;
	int r;

	*url = NULL;
	if (expires < 1 || expires > SIGV4_MAX_EXPIRES)
		return ops_fail(err, OPS_E_INVALID, false,
				"gcs: a signed URL's validity of %ld s is not "
				"allowed: 1 to %d",
				expires, SIGV4_MAX_EXPIRES);
	gmtime_r(&now, &tm);
	strftime(datetime, sizeof(datetime), "%Y%m%dT%H%M%SZ", &tm);
	strftime(date, sizeof(date), "%Y%m%d", &tm);
	snprintf(exp_s, sizeof(exp_s), "%ld", expires);
	scope = xasprintf("%s/auto/storage/goog4_request", date);
	cred = xasprintf("%s/%s", a->key.client_email, scope);
	s3_object_parts(c, name, &base, &path, &host);
	/* already in sorted order */
	add_param(&q, "X-Goog-Algorithm", "GOOG4-RSA-SHA256");
	add_param(&q, "X-Goog-Credential", cred);
	add_param(&q, "X-Goog-Date", datetime);
	add_param(&q, "X-Goog-Expires", exp_s);
	add_param(&q, "X-Goog-SignedHeaders", "host");
	buf_addf(&creq, "GET\n%s\n%s\nhost:%s\n\nhost\nUNSIGNED-PAYLOAD", path,
		 buf_str(&q), host);
	sigv4_sha256_hex(creq.data, creq.len, hash);
	buf_addf(&sts, "GOOG4-RSA-SHA256\n%s\n%s\n%s", datetime, scope, hash);
	r = rsa_sign(a, sts.data, sts.len, &sig, &siglen, err);
	if (r != 0)
		goto out;
	buf_addf(&u, "%s%s?%s&X-Goog-Signature=", base, path, buf_str(&q));
	for (size_t i = 0; i < siglen; i++)
		buf_addf(&u, "%02x", sig[i]);
	*url = buf_detach(&u); /* to the caller */
out:
	free(sig);
	free(scope);
	free(cred);
	free(base);
	free(path);
	free(host);
	buf_release(&q);
	buf_release(&creq);
	buf_release(&sts);
	buf_release(&u);
	return r;
}
