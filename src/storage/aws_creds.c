#include "storage/aws_creds.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/xalloc.h"
#include "http/http.h"

#define ECS_HOST	   "http://169.254.170.2"
#define IMDS_DEFAULT	   "http://169.254.169.254"
#define IMDS_TOKEN_TTL	   "21600"
#define IMDS_CREDS_PATH	   "/latest/meta-data/iam/security-credentials/"
#define V_RELATIVE	   "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
#define V_FULL		   "AWS_CONTAINER_CREDENTIALS_FULL_URI"
#define V_TOKEN		   "AWS_CONTAINER_AUTHORIZATION_TOKEN"
#define V_TOKEN_FILE	   "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
#define V_IMDS_ENDPOINT	   "AWS_EC2_METADATA_SERVICE_ENDPOINT"
#define CONTAINER_TIMEOUTS 2000

struct aws_creds {
	enum aws_creds_source source;
	char *url;	  /* container: the whole URL; IMDS: the endpoint */
	char *where;	  /* "VAR (scheme://host)" for messages */
	char *token;	  /* AWS_CONTAINER_AUTHORIZATION_TOKEN; wiped */
	char *token_file; /* AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE */
	struct http_client *http;
	const volatile sig_atomic_t *stop;
	pthread_mutex_t lock; /* the cache and http */
	struct s3_creds cached;
	bool have;
};

static bool
set(const char *v)
{
	return v != NULL && v[0] != '\0';
}

/* Does s hold a space, a control character or DEL? */
static bool
has_ctl(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return true;
	return false;
}

bool
aws_creds_imds_disabled(void)
{
	const char *v = getenv("AWS_EC2_METADATA_DISABLED");

	return v != NULL && strcasecmp(v, "true") == 0;
}

/* Two digits at s, or -1. */
static int
two(const char *s)
{
	if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]))
		return -1;
	return (s[0] - '0') * 10 + (s[1] - '0');
}

int
aws_iso8601_parse(const char *s, time_t *out)
{
	struct tm tm;
	char date[11];
	int year, mon, mday, off = 0, oh, om;
	const char *p = s + 10;

	*out = 0;
	/* "YYYY-MM-DDTHH:MM:SS" before anything is read at a fixed
	 * offset: a short string must not be read past its end */
	if (strnlen(s, 20) < 20)
		return -1;
	/* a real calendar date (timegm() would roll Feb 30 into March) */
	memcpy(date, s, 10);
	date[10] = '\0';
	if (parse_date(date, &year, &mon, &mday) != 0 || year < 1970)
		return -1;
	memset(&tm, 0, sizeof(tm));
	if ((p[0] != 'T' && p[0] != 't') || p[3] != ':' || p[6] != ':')
		return -1;
	tm.tm_mon = mon;
	tm.tm_mday = mday;
	tm.tm_hour = two(p + 1);
	tm.tm_min = two(p + 4);
	tm.tm_sec = two(p + 7);
	if (tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 ||
	    tm.tm_min > 59 || tm.tm_sec < 0 || tm.tm_sec > 60)
		return -1;
	p += 9;
	if (*p == '.') {
		if (!isdigit((unsigned char)p[1]))
			return -1;
		for (p++; isdigit((unsigned char)*p); p++)
			;
	}
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
		off = 0;
	} else if (*p == '+' || *p == '-') {
		/* each read only after the ones before it were not NUL */
		oh = two(p + 1);
		om = oh >= 0 && p[3] == ':' ? two(p + 4) : -1;
		if (oh < 0 || om < 0 || p[6] != '\0' || oh > 23 || om > 59)
			return -1;
		off = (oh * 60 + om) * 60;
		if (*p == '-')
			off = -off;
	} else {
		return -1;
	}
	tm.tm_year = year - 1900;
	tm.tm_mon -= 1;
	*out = timegm(&tm) - off;
	return 0;
}

/* A string field of doc without NUL or control characters; NULL when
 * absent, or bad into *bad. */
static const char *
str_field(json_t *doc, const char *name, bool *bad)
{
	json_t *v = json_object_get(doc, name);
	const char *s;

	if (v == NULL)
		return NULL;
	s = json_string_value(v);
	if (s == NULL || json_string_length(v) == 0 ||
	    strlen(s) != json_string_length(v)) {
		*bad = true;
		return NULL;
	}
	for (const char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p < ' ' || *p == 0x7f) {
			*bad = true;
			return NULL;
		}
	return s;
}

/* Wipe every string value of doc: they may be secrets. */
static void
wipe_json(json_t *doc)
{
	const char *k;
	json_t *v;

	json_object_foreach(doc, k, v)
	{
		if (json_is_string(v))
			OPENSSL_cleanse((char *)json_string_value(v),
					json_string_length(v));
	}
}

int
aws_creds_parse(const char *json, size_t len, bool imds, const char *what,
		struct s3_creds *out, struct ops_err *err)
{
	json_t *doc;
	const char *id, *secret, *token, *exp, *code;
	bool bad = false;
	int r = 0;

	memset(out, 0, sizeof(*out));
	doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
	if (doc == NULL || !json_is_object(doc)) {
		/* the parser's text may quote a secret: no detail */
		r = ops_fail(err, OPS_E_HTTP, false,
			     "%s answered with no JSON object", what);
		goto out;
	}
	code = str_field(doc, "Code", &bad);
	if (imds && (code == NULL || strcmp(code, "Success") != 0)) {
		r = ops_fail(err, OPS_E_HTTP, false,
			     "%s answered without \"Code\": \"Success\"", what);
		goto out;
	}
	bad = false;
	id = str_field(doc, "AccessKeyId", &bad);
	if (id == NULL || !s3_valid_key_id(id)) {
		r = ops_fail(err, OPS_E_HTTP, false,
			     "%s answered without a valid \"AccessKeyId\"",
			     what);
		goto out;
	}
	secret = str_field(doc, "SecretAccessKey", &bad);
	if (secret == NULL) {
		r = ops_fail(err, OPS_E_HTTP, false,
			     "%s answered without a valid \"SecretAccessKey\"",
			     what);
		goto out;
	}
	token = str_field(doc, "Token", &bad);
	if (bad) {
		r = ops_fail(err, OPS_E_HTTP, false,
			     "%s answered with a bad \"Token\"", what);
		goto out;
	}
	exp = str_field(doc, "Expiration", &bad);
	if (bad || (exp != NULL && aws_iso8601_parse(exp, &out->expires))) {
		r = ops_fail(err, OPS_E_HTTP, false,
			     "%s answered with an \"Expiration\" that is not "
			     "an ISO 8601 time",
			     what);
		goto out;
	}
	out->access_key_id = xstrdup(id);
	out->secret_access_key = xstrdup(secret);
	if (token != NULL)
		out->session_token = xstrdup(token);
out:
	if (r != 0)
		s3_creds_release(out);
	if (doc != NULL)
		wipe_json(doc);
	json_decref(doc);
	return r;
}

/* The host of an http URL (after "http://"): is plain http to it
 * allowed? Loopback, ECS's and EKS's addresses, as the SDKs allow. */
static bool
http_host_allowed(const char *auth, size_t n)
{
	char host[64];
	struct in_addr a4;
	struct in6_addr a6, eks6;

	if (n == 0 || n >= sizeof(host))
		return false;
	memcpy(host, auth, n);
	host[n] = '\0';
	if (host[0] == '[') {
		char *end = strchr(host, ']');

		if (end == NULL || end[1] != '\0')
			return false;
		*end = '\0';
		if (inet_pton(AF_INET6, host + 1, &a6) != 1)
			return false;
		if (inet_pton(AF_INET6, "fd00:ec2::23", &eks6) != 1)
			abort();
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       memcmp(&a6, &eks6, sizeof(a6)) == 0;
	}
	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) != 1)
		return false;
	return (ntohl(a4.s_addr) >> 24) == 127 ||
	       strcmp(host, "169.254.170.2") == 0 ||
	       strcmp(host, "169.254.170.23") == 0;
}

/* The authority of url after its scheme, up to the path: [*auth, +n). */
static int
split_url(const char *url, const char *var, bool *https, const char **auth,
	  size_t *n, struct ops_err *err)
{
	const char *a, *host_end;

	if (strncasecmp(url, "https://", 8) == 0) {
		*https = true;
		a = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		*https = false;
		a = url + 7;
	} else {
		return ops_fail(err, OPS_E_CONFIG, false,
				"%s must start with http:// or https://", var);
	}
	*auth = a;
	*n = strcspn(a, "/?#");
	if (*n == 0)
		return ops_fail(err, OPS_E_CONFIG, false, "%s has no host",
				var);
	if (memchr(a, '@', *n) != NULL)
		return ops_fail(err, OPS_E_CONFIG, false,
				"%s must not hold user information", var);
	for (const char *p = url; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return ops_fail(err, OPS_E_CONFIG, false,
					"%s holds a space or a control "
					"character",
					var);
	/* the host without its port */
	host_end = a + *n;
	if (*a == '[') {
		const char *rb = memchr(a, ']', *n);

		if (rb == NULL)
			return ops_fail(err, OPS_E_CONFIG, false,
					"%s has a bad IPv6 address", var);
		host_end = rb + 1;
	} else {
		const char *colon = memchr(a, ':', *n);

		if (colon != NULL)
			host_end = colon;
	}
	*n = (size_t)(host_end - a);
	return 0;
}

static int
container_from_env(struct aws_creds *a, struct ops_err *err)
{
	const char *rel = getenv(V_RELATIVE), *full = getenv(V_FULL);
	const char *tok = getenv(V_TOKEN), *tfile = getenv(V_TOKEN_FILE);
	const char *auth;
	size_t n;
	bool https;
	int r;

	if (set(rel)) {
		if (rel[0] != '/' || has_ctl(rel, strlen(rel)))
			return ops_fail(err, OPS_E_CONFIG, false,
					V_RELATIVE " must be a path starting "
						   "with '/', without spaces "
						   "or control characters");
		a->url = xasprintf(ECS_HOST "%s", rel);
		a->where = xstrdup(V_RELATIVE " (" ECS_HOST ")");
	} else {
		r = split_url(full, V_FULL, &https, &auth, &n, err);
		if (r != 0)
			return r;
		if (!https && !http_host_allowed(auth, n))
			return ops_fail(err, OPS_E_CONFIG, false,
					V_FULL " names host '%.*s' over plain "
					       "http: only loopback, "
					       "169.254.170.2, 169.254.170.23 "
					       "and [fd00:ec2::23] are "
					       "allowed; use https",
					(int)(n > 100 ? 100 : n), auth);
		/* the message names scheme://host[:port], never the path,
		 * which may identify the credentials */
		n = strcspn(auth, "/?#");
		a->url = xstrdup(full);
		a->where = xasprintf(V_FULL " (%s://%.*s)",
				     https ? "https" : "http",
				     (int)(n > 100 ? 100 : n), auth);
	}
	if (set(tfile))
		a->token_file = xstrdup(tfile);
	else if (set(tok)) {
		/* it goes into a header line: no CR/LF injection */
		if (strpbrk(tok, "\r\n") != NULL)
			return ops_fail(err, OPS_E_CONFIG, false,
					V_TOKEN " holds a line break");
		for (const char *p = tok; *p != '\0'; p++)
			if ((unsigned char)*p < ' ' || *p == 0x7f)
				return ops_fail(err, OPS_E_CONFIG, false,
						V_TOKEN " holds a control "
							"character");
		a->token = xstrdup(tok);
	}
	return 0;
}

static int
imds_from_env(struct aws_creds *a, struct ops_err *err)
{
	const char *ep = getenv(V_IMDS_ENDPOINT), *auth;
	size_t n, len;
	bool https;
	int r;

	if (!set(ep))
		ep = IMDS_DEFAULT;
	r = split_url(ep, V_IMDS_ENDPOINT, &https, &auth, &n, err);
	if (r != 0)
		return r;
	len = strlen(ep);
	while (len > 0 && ep[len - 1] == '/')
		len--;
	a->url = xstrndup(ep, len);
	a->where = xstrndup(ep, len);
	return 0;
}

int
aws_creds_from_env(struct aws_creds **out, struct ops_err *err)
{
	struct http_policy pol;
	struct aws_creds *a;
	int r;

	*out = NULL;
	a = xcalloc(1, sizeof(*a));
	pthread_mutex_init(&a->lock, NULL);
	http_policy_default(&pol);
	pol.max_body = AWS_CREDS_MAX_BYTES;
	if (set(getenv(V_RELATIVE)) || set(getenv(V_FULL))) {
		a->source = AWS_CREDS_CONTAINER;
		r = container_from_env(a, err);
		/* as botocore: a short timeout, a few attempts */
		pol.connect_timeout_ms = CONTAINER_TIMEOUTS;
		pol.timeout_ms = CONTAINER_TIMEOUTS;
		pol.max_retries = 2;
		pol.base_delay_ms = 100;
	} else if (!aws_creds_imds_disabled()) {
		a->source = AWS_CREDS_IMDS;
		r = imds_from_env(a, err);
		/* as the SDKs: 1 s, one attempt */
		pol.connect_timeout_ms = 1000;
		pol.timeout_ms = 1000;
		pol.max_retries = 0;
	} else {
		aws_creds_free(a);
		return 0;
	}
	if (r == 0)
		r = http_client_new(&pol, &a->http, err);
	if (r != 0) {
		aws_creds_free(a);
		return r;
	}
	*out = a;
	return 0;
}

void
aws_creds_free(struct aws_creds *a)
{
	if (a == NULL)
		return;
	http_client_free(a->http);
	free(a->url);
	free(a->where);
	freezero_str(a->token);
	free(a->token_file);
	s3_creds_release(&a->cached);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

enum aws_creds_source
aws_creds_source(const struct aws_creds *a)
{
	return a->source;
}

void
aws_creds_set_stop(struct aws_creds *a, const volatile sig_atomic_t *stop)
{
	a->stop = stop;
}

/* One request; resp released by the caller on every path. */
static int
creds_send(struct aws_creds *a, const char *method, const char *url,
	   const char *const *hdrs, bool idempotent, struct http_response *resp,
	   struct ops_err *err)
{
	struct http_request req = { 0 };

	req.method = method;
	req.url = url;
	req.headers = hdrs;
	req.body = method[0] == 'P' ? "" : NULL;
	req.body_len = 0;
	req.idempotent = idempotent;
	req.stop = a->stop;
	/* the relative URI's path identifies the task's credentials: logs
	 * (retries) and errors name the endpoint's scheme://host only */
	req.log_url = a->where;
	return http_do(a->http, &req, resp, err);
}

/* The reason at the end of an http_do() error ("http: GET <url> failed
 * after 1 attempt: Connection refused"), without the URL, whose path may
 * identify the credentials and would crowd the message. */
static const char *
http_reason(const char *msg)
{
	const char *why = strrchr(msg, ':');

	return why != NULL && why[1] == ' ' ? why + 2 : msg;
}

static void
wipe_response(struct http_response *resp)
{
	if (resp->body.data != NULL)
		OPENSSL_cleanse(resp->body.data, resp->body.len);
	http_response_release(resp);
}

/* The authorization token to send: *out new (wiped by the caller), or
 * NULL for none. */
static int
container_token(struct aws_creds *a, char **out, struct ops_err *err)
{
	struct buf text = BUF_INIT;
	struct ops_err sub = OPS_ERR_INIT;
	int r;

	*out = NULL;
	if (a->token_file == NULL) {
		if (a->token != NULL)
			*out = xstrdup(a->token);
		return 0;
	}
	r = ops_read_file(a->token_file, AWS_CREDS_MAX_BYTES, &text, &sub);
	if (r != 0)
		return ops_fail(err, OPS_E_CONFIG, false, V_TOKEN_FILE ": %s",
				sub.msg);
	/* one trailing newline goes, as with mounted secrets */
	if (text.len > 0 && text.data[text.len - 1] == '\n')
		text.len--;
	if (text.len > 0 && text.data[text.len - 1] == '\r')
		text.len--;
	if (memchr(text.data, '\n', text.len) != NULL ||
	    memchr(text.data, '\r', text.len) != NULL ||
	    memchr(text.data, '\0', text.len) != NULL)
		r = ops_fail(err, OPS_E_CONFIG, false,
			     V_TOKEN_FILE ": the token holds a line break or "
					  "a NUL byte");
	else
		*out = xstrndup(text.data != NULL ? text.data : "", text.len);
	OPENSSL_cleanse(text.data, text.len);
	buf_release(&text);
	return r;
}

static int
fetch_container(struct aws_creds *a, struct s3_creds *out, struct ops_err *err)
{
	struct http_response resp = HTTP_RESPONSE_INIT;
	char *token = NULL, *line = NULL;
	const char *hdrs[3] = { "Accept: application/json", NULL, NULL };
	struct ops_err sub = OPS_ERR_INIT;
	char *what;
	int r;

	r = container_token(a, &token, err);
	if (r != 0)
		return r;
	if (token != NULL) {
		line = xasprintf("Authorization: %s", token);
		hdrs[1] = line;
	}
	freezero_str(token);
	what = xasprintf("the container credentials endpoint %s", a->where);
	r = creds_send(a, "GET", a->url, hdrs, true, &resp, &sub);
	if (r != 0) {
		r = ops_fail(err, r, sub.transient, "%s did not answer: %s",
			     what, http_reason(sub.msg));
		goto out;
	}
	if (resp.status != 200) {
		bool client = resp.status >= 400 && resp.status < 500;

		r = ops_fail(err, client ? OPS_E_CONFIG : OPS_E_HTTP, !client,
			     "%s refused the credentials request: HTTP %ld%s",
			     what, resp.status,
			     resp.status == 401 || resp.status == 403
				     ? " (check " V_TOKEN_FILE " or " V_TOKEN
				       ")"
				     : "");
		goto out;
	}
	r = aws_creds_parse(resp.body.data, resp.body.len, false, what, out,
			    err);
out:
	freezero_str(line);
	free(what);
	wipe_response(&resp);
	return r;
}

/* IMDS's answer to a call that must be 200, else the error. */
static int
imds_call(struct aws_creds *a, const char *method, const char *path,
	  const char *hdr, const char *step, struct http_response *resp,
	  struct ops_err *err)
{
	const char *hdrs[2] = { hdr, NULL };
	char *url = xasprintf("%s%s", a->url, path);
	struct ops_err sub = OPS_ERR_INIT;
	int r;

	r = creds_send(a, method, url, hdrs, true, resp, &sub);
	free(url);
	if (r == OPS_E_STOPPED) {
		if (err != NULL)
			*err = sub;
		return r;
	}
	if (r != 0)
		return ops_fail(err, OPS_E_CONFIG, false,
				"the instance metadata service at %s did not "
				"answer (%s): %s",
				a->where, step, http_reason(sub.msg));
	if (resp->status != 200)
		return ops_fail(err, OPS_E_CONFIG, false,
				"the instance metadata service at %s answered "
				"HTTP %ld to %s%s",
				a->where, resp->status, step,
				resp->status == 404 &&
						strcmp(step, "the role "
							     "request") == 0
					? " (no IAM role is attached to the "
					  "instance)"
					: "");
	return 0;
}

static int
fetch_imds(struct aws_creds *a, struct s3_creds *out, struct ops_err *err)
{
	struct http_response resp = HTTP_RESPONSE_INIT;
	char *tok_hdr = NULL, *role = NULL, *path = NULL, *what = NULL;
	size_t n;
	int r;

	r = imds_call(a, "PUT", "/latest/api/token",
		      "X-aws-ec2-metadata-token-ttl-seconds: " IMDS_TOKEN_TTL,
		      "the IMDSv2 token request", &resp, err);
	if (r != 0)
		goto out;
	/* the session token goes into a header: one line of visible
	 * ASCII, else it would inject or disable headers */
	n = strcspn(buf_str(&resp.body), "\r\n");
	if (n == 0 || has_ctl(buf_str(&resp.body), n)) {
		r = ops_fail(err, OPS_E_HTTP, false,
			     "the instance metadata service at %s answered the "
			     "IMDSv2 token request without a valid token",
			     a->where);
		goto out;
	}
	tok_hdr = xasprintf("X-aws-ec2-metadata-token: %.*s", (int)n,
			    buf_str(&resp.body));
	wipe_response(&resp);
	r = imds_call(a, "GET", IMDS_CREDS_PATH, tok_hdr, "the role request",
		      &resp, err);
	if (r != 0)
		goto out;
	n = strcspn(buf_str(&resp.body), "\r\n");
	role = xstrndup(buf_str(&resp.body), n);
	for (const char *p = role; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) &&
		    strchr("+=,.@_-", *p) == NULL)
			n = 0;
	if (n == 0) {
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "the instance metadata service at %s named no "
			     "valid IAM role",
			     a->where);
		goto out;
	}
	wipe_response(&resp);
	path = xasprintf(IMDS_CREDS_PATH "%s", role);
	r = imds_call(a, "GET", path, tok_hdr, "the credentials request", &resp,
		      err);
	if (r != 0)
		goto out;
	what = xasprintf("the instance metadata service at %s", a->where);
	r = aws_creds_parse(resp.body.data, resp.body.len, true, what, out,
			    err);
out:
	freezero_str(tok_hdr);
	free(role);
	free(path);
	free(what);
	wipe_response(&resp);
	return r;
}

static void
copy_creds(const struct s3_creds *from, struct s3_creds *to)
{
	to->access_key_id = xstrdup(from->access_key_id);
	to->secret_access_key = xstrdup(from->secret_access_key);
	to->session_token = from->session_token != NULL
				    ? xstrdup(from->session_token)
				    : NULL;
	to->expires = from->expires;
}

/* Take old's secrets off the log's scrub list unless now has them too
 * (IMDS serves the same keys until it rotates them). */
static void
forget_rotated(const struct s3_creds *old, const struct s3_creds *now)
{
	if (old->secret_access_key != NULL &&
	    (now->secret_access_key == NULL ||
	     strcmp(old->secret_access_key, now->secret_access_key) != 0))
		log_remove_secret(old->secret_access_key);
	if (old->session_token != NULL &&
	    (now->session_token == NULL ||
	     strcmp(old->session_token, now->session_token) != 0))
		log_remove_secret(old->session_token);
}

static bool
fresh(const struct s3_creds *c, time_t now)
{
	return c->expires == 0 || now < c->expires - AWS_CREDS_REFRESH_AHEAD;
}

int
aws_creds_get(struct aws_creds *a, struct s3_creds *out, struct ops_err *err)
{
	struct s3_creds got = S3_CREDS_INIT;
	struct ops_err sub = OPS_ERR_INIT;
	time_t now = time(NULL);
	int r = 0;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&a->lock);
	if (!a->have || !fresh(&a->cached, now)) {
		if (a->source == AWS_CREDS_CONTAINER)
			r = fetch_container(a, &got, &sub);
		else
			r = fetch_imds(a, &got, &sub);
		if (r == 0) {
			/* defence in depth: no log line may carry them */
			log_add_secret(got.secret_access_key);
			log_add_secret(got.session_token);
			/* and the list keeps only what is live: a worker
			 * running for months rotates thousands of times */
			if (a->have)
				forget_rotated(&a->cached, &got);
			s3_creds_release(&a->cached);
			a->cached = got; /* moved */
			a->have = true;
		} else if (a->have && now < a->cached.expires) {
			log_warn("aws credentials refresh failed, using the "
				 "cached ones until they expire in %lld s: %s",
				 (long long)(a->cached.expires - now), sub.msg);
			r = 0;
		} else if (err != NULL) {
			*err = sub;
		}
	}
	if (r == 0)
		copy_creds(&a->cached, out);
	pthread_mutex_unlock(&a->lock);
	return r;
}

int
aws_creds_hook(void *arg, struct s3_creds *out, struct ops_err *err)
{
	return aws_creds_get(arg, out, err);
}
