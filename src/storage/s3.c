#include "storage/s3.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "storage/aws_creds.h"
#include "storage/aws_profile.h"
#include "storage/sigv4.h"

#define MAX_KEY 1024

struct s3_client {
	char *scheme; /* "http" or "https" */
	char *host;   /* host[:port] as sent in Host, default port dropped */
	bool path_style;
	char *region;
	char *bucket;
	char *access_key_id;
	char *secret_access_key; /* wiped on free */
	char *session_token;	 /* NULL: none; wiped on free */
	char *sse;		 /* NULL: none */
	size_t threshold;
	size_t part_size;
	struct http_client *http;
	s3_send_fn *send;
	void *send_arg;
	time_t (*now)(void); /* NULL: time() */
	const volatile sig_atomic_t *stop;
	int (*bearer)(void *arg, char **token, struct ops_err *err);
	void *bearer_arg;
	/* s3_opts.creds: NULL for the static keys above */
	int (*creds)(void *arg, struct s3_creds *out, struct ops_err *err);
	void *creds_arg;
};

/* A parsed endpoint. */
struct endpoint {
	char scheme[6];
	char host[300]; /* host[:port] */
	bool ip_or_localhost;
};

static int
parse_endpoint(const char *url, struct endpoint *ep, struct ops_err *err)
{
	const char *p, *auth, *end, *hend, *port = NULL;
	size_t hlen;

	memset(ep, 0, sizeof(*ep));
	if (strncasecmp(url, "https://", 8) == 0) {
		memcpy(ep->scheme, "https", 6);
		auth = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		memcpy(ep->scheme, "http", 5);
		auth = url + 7;
	} else {
		return ops_fail(err, OPS_E_CONFIG, false,
				"must start with http:// or https://");
	}
	end = auth + strcspn(auth, "/?#");
	if (*end != '\0' && strcmp(end, "/") != 0)
		return ops_fail(err, OPS_E_CONFIG, false,
				"must be scheme://host[:port] without a path "
				"or query");
	/* never echo user information: it would be a password */
	if (memchr(auth, '@', (size_t)(end - auth)) != NULL)
		return ops_fail(
			err, OPS_E_CONFIG, false,
			"must not hold user information (user:password@); "
			"credentials go in AWS_ACCESS_KEY_ID and "
			"AWS_SECRET_ACCESS_KEY");
	if (*auth == '[') {
		char v6[64];
		struct in6_addr a6;

		hend = memchr(auth, ']', (size_t)(end - auth));
		if (hend == NULL || (size_t)(hend - auth - 1) >= sizeof(v6))
			return ops_fail(err, OPS_E_CONFIG, false,
					"has a bad IPv6 address");
		memcpy(v6, auth + 1, (size_t)(hend - auth - 1));
		v6[hend - auth - 1] = '\0';
		if (inet_pton(AF_INET6, v6, &a6) != 1)
			return ops_fail(err, OPS_E_CONFIG, false,
					"has a bad IPv6 address");
		hend++;
		ep->ip_or_localhost = true;
	} else {
		char name[256];
		struct in_addr a4;

		hend = auth;
		while (hend < end && *hend != ':')
			hend++;
		hlen = (size_t)(hend - auth);
		if (hlen == 0 || hlen >= sizeof(name))
			return ops_fail(err, OPS_E_CONFIG, false,
					"has no host name");
		for (p = auth; p < hend; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' &&
			    *p != '.')
				return ops_fail(err, OPS_E_CONFIG, false,
						"has a bad character in its "
						"host name");
		memcpy(name, auth, hlen);
		name[hlen] = '\0';
		ep->ip_or_localhost = inet_pton(AF_INET, name, &a4) == 1 ||
				      strcasecmp(name, "localhost") == 0;
	}
	if (hend < end) {
		long n = 0;

		if (*hend != ':' || hend + 1 == end)
			return ops_fail(err, OPS_E_CONFIG, false,
					"has a bad port");
		port = hend + 1;
		for (p = port; p < end; p++) {
			if (!isdigit((unsigned char)*p) || n > 65535)
				return ops_fail(err, OPS_E_CONFIG, false,
						"has a bad port");
			n = n * 10 + (*p - '0');
		}
		if (n < 1 || n > 65535)
			return ops_fail(err, OPS_E_CONFIG, false,
					"has a port out of range (1 to 65535)");
		/* curl leaves a default port out of Host; so do we, or
		 * the signed host would not match the one sent */
		if ((strcmp(ep->scheme, "https") == 0 && n == 443) ||
		    (strcmp(ep->scheme, "http") == 0 && n == 80))
			end = hend;
	}
	if ((size_t)(end - auth) >= sizeof(ep->host))
		return ops_fail(err, OPS_E_CONFIG, false, "is too long");
	memcpy(ep->host, auth, (size_t)(end - auth));
	ep->host[end - auth] = '\0';
	for (char *q = ep->host; *q != '\0' && *q != ':' && *q != ']'; q++)
		*q = (char)tolower((unsigned char)*q);
	return 0;
}

/* S3 and GCS bucket names: 3 to 222 of a-z 0-9 . - _, alphanumeric at
 * both ends. */
static bool
valid_bucket(const char *b)
{
	size_t n = b != NULL ? strlen(b) : 0;

	if (n < 3 || n > 222 || !isalnum((unsigned char)b[0]) ||
	    !isalnum((unsigned char)b[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)b[i]) ||
		      isdigit((unsigned char)b[i]) || b[i] == '.' ||
		      b[i] == '-' || b[i] == '_'))
			return false;
	return true;
}

/* Can the bucket be the first DNS label(s) of the host? With https a dot
 * would break the certificate's wildcard match, so no dots then. */
static bool
dns_bucket(const char *b, bool https)
{
	if (strlen(b) > 63 || strchr(b, '_') != NULL ||
	    strstr(b, "..") != NULL || strstr(b, ".-") != NULL ||
	    strstr(b, "-.") != NULL)
		return false;
	return !(https && strchr(b, '.') != NULL);
}

static bool
valid_region(const char *r)
{
	if (r == NULL || *r == '\0' || strlen(r) > 64)
		return false;
	for (; *r != '\0'; r++)
		if (!(islower((unsigned char)*r) ||
		      isdigit((unsigned char)*r) || *r == '-'))
			return false;
	return true;
}

bool
s3_valid_key_id(const char *k)
{
	if (k == NULL || *k == '\0' || strlen(k) > 128)
		return false;
	for (; *k != '\0'; k++)
		if (!isalnum((unsigned char)*k))
			return false;
	return true;
}

static bool
set(const char *v)
{
	return v != NULL && v[0] != '\0';
}

/* Append to b the shared files read (credentials only when creds), as
 * "the shared credentials file 'x' (VAR) or the shared config file 'y'
 * (VAR)". */
static void
files_read(struct buf *b, const struct aws_profile *p, bool creds)
{
	const char *cf = creds ? p->credentials_file : NULL;

	if (cf != NULL)
		buf_addf(b,
			 "the shared credentials file '%.120s' "
			 "(AWS_SHARED_CREDENTIALS_FILE)",
			 cf);
	if (p->config_file != NULL)
		buf_addf(b,
			 "%sthe shared config file '%.120s' (AWS_CONFIG_FILE)",
			 cf != NULL ? " or " : "", p->config_file);
}

/* Append to b where else what was looked for, for the messages of
 * s3_opts_from_env() when it is nowhere. */
static void
where(struct buf *b, const struct aws_profile *p, const char *what, bool creds)
{
	const char *cf = creds ? p->credentials_file : NULL;

	if (cf != NULL || p->config_file != NULL) {
		if (p->found)
			buf_addf(b,
				 "; nor does profile '%.64s' (AWS_PROFILE) "
				 "set %s in ",
				 aws_profile_name(), what);
		else
			buf_addf(b,
				 "; nor is there a profile '%.64s' "
				 "(AWS_PROFILE) in ",
				 aws_profile_name());
		files_read(b, p, creds);
	}
	if (creds && cf == NULL)
		buf_adds(b, "; no shared credentials file was read (HOME and "
			    "AWS_SHARED_CREDENTIALS_FILE are not set)");
	else if (!creds && p->config_file == NULL)
		buf_adds(b, "; no shared config file was read (HOME and "
			    "AWS_CONFIG_FILE are not set)");
}

int
s3_opts_from_env(struct s3_opts *o, const char *bucket, struct ops_err *err)
{
	const char *v, *id, *secret, *pname = aws_profile_name();
	const char *rvar = "AWS_REGION";
	struct endpoint ep;
	struct ops_err sub = OPS_ERR_INIT;
	struct aws_profile *p = NULL;
	struct buf msg = BUF_INIT;
	bool env_pair, used = false;
	int r;

	memset(o, 0, sizeof(*o));
	o->bucket = bucket;
	id = getenv("AWS_ACCESS_KEY_ID");
	secret = getenv("AWS_SECRET_ACCESS_KEY");
	env_pair = set(id) && set(secret);
	o->region = getenv("AWS_REGION");
	if (!set(o->region)) {
		o->region = getenv("AWS_DEFAULT_REGION");
		rvar = "AWS_DEFAULT_REGION";
		if (!set(o->region))
			o->region = NULL;
	}
	/* the shared files, for what the environment lacks: config first,
	 * then credentials, whose values win */
	if (!env_pair || o->region == NULL) {
		p = xcalloc(1, sizeof(*p));
		r = aws_profile_load(AWS_PROFILE_CONFIG, pname, p, err);
		if (r == 0 && !env_pair)
			r = aws_profile_load(AWS_PROFILE_CREDENTIALS, pname, p,
					     err);
		if (r != 0)
			goto out;
	}
	if (env_pair) {
		o->access_key_id = id;
		o->secret_access_key = secret;
		o->session_token = getenv("AWS_SESSION_TOKEN");
	} else if (set(p->access_key_id) || set(p->secret_access_key)) {
		if (!set(p->access_key_id) || !set(p->secret_access_key)) {
			bool has_id = set(p->access_key_id);

			files_read(&msg, p, true);
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "profile '%.64s' (AWS_PROFILE) has %s but "
				     "no %s in %s: the S3 export needs both",
				     pname,
				     has_id ? "aws_access_key_id"
					    : "aws_secret_access_key",
				     has_id ? "aws_secret_access_key"
					    : "aws_access_key_id",
				     buf_str(&msg));
			goto out;
		}
		if (!s3_valid_key_id(p->access_key_id)) {
			files_read(&msg, p, true);
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "aws_access_key_id of profile '%.64s' "
				     "(AWS_PROFILE) in %s is not an access key "
				     "id (1 to 128 letters and digits)",
				     pname, buf_str(&msg));
			goto out;
		}
		o->access_key_id = p->access_key_id;
		o->secret_access_key = p->secret_access_key;
		o->session_token = p->session_token;
		used = true;
	} else if (!set(id) && !set(secret)) {
		/* the SDKs' chain goes on: the container endpoint, then
		 * instance metadata */
		r = aws_creds_from_env(&o->provider, err);
		if (r != 0)
			goto out;
		if (o->provider == NULL) {
			where(&msg, p, "aws_access_key_id", true);
			r = ops_fail(
				err, OPS_E_CONFIG, false,
				"AWS_ACCESS_KEY_ID is not set: the S3 "
				"export needs credentials (an access key "
				"id, GOOG1... for GCS); nor is "
				"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or "
				"AWS_CONTAINER_CREDENTIALS_FULL_URI set "
				"(container credentials), and instance "
				"metadata is off "
				"(AWS_EC2_METADATA_DISABLED=true)%s",
				buf_str(&msg));
			goto out;
		}
		o->creds = aws_creds_hook;
		o->creds_arg = o->provider;
	} else {
		/* nowhere: the environment's messages, and where else
		 * was looked */
		if (!set(id)) {
			where(&msg, p, "aws_access_key_id", true);
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "AWS_ACCESS_KEY_ID is not set: the S3 "
				     "export needs an access key id (GOOG1... "
				     "for GCS)%s",
				     buf_str(&msg));
			goto out;
		}
		if (!s3_valid_key_id(id)) {
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "AWS_ACCESS_KEY_ID is not an access key "
				     "id (1 to 128 letters and digits)");
			goto out;
		}
		where(&msg, p, "aws_secret_access_key", true);
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "AWS_SECRET_ACCESS_KEY is not set: the S3 export "
			     "needs the secret key%s",
			     buf_str(&msg));
		goto out;
	}
	if (o->provider == NULL && !used &&
	    !s3_valid_key_id(o->access_key_id)) {
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "AWS_ACCESS_KEY_ID is not an access key id "
			     "(1 to 128 letters and digits)");
		goto out;
	}
	/* defence in depth: no log line may carry them */
	log_add_secret(o->secret_access_key);
	if (o->session_token != NULL)
		log_add_secret(o->session_token);
	if (o->region == NULL && set(p->region)) {
		o->region = p->region;
		used = true;
		if (!valid_region(o->region)) {
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "region '%.64s' of profile '%.64s' "
				     "(AWS_PROFILE) in '%.120s' is not a "
				     "region: lower-case letters, digits and "
				     "'-', such as eu-west-1",
				     o->region, pname,
				     p->config_file != NULL ? p->config_file
							    : "?");
			goto out;
		}
	}
	if (o->region == NULL) {
		where(&msg, p, "region", false);
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "AWS_REGION is not set: name the bucket's region, "
			     "such as us-east-1 (auto for GCS); "
			     "AWS_DEFAULT_REGION is not set either%s",
			     buf_str(&msg));
		goto out;
	}
	if (!valid_region(o->region)) {
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "%s='%.64s' is not a region: lower-case "
			     "letters, digits and '-', such as eu-west-1",
			     rvar, o->region);
		goto out;
	}
	v = getenv("AWS_ENDPOINT_URL_S3");
	if (v != NULL && v[0] != '\0') {
		if (parse_endpoint(v, &ep, &sub) != 0) {
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "AWS_ENDPOINT_URL_S3 %s", sub.msg);
			goto out;
		}
		o->endpoint = v;
	} else {
		v = getenv("AWS_ENDPOINT_URL");
		if (v != NULL && v[0] != '\0') {
			if (parse_endpoint(v, &ep, &sub) != 0) {
				r = ops_fail(err, OPS_E_CONFIG, false,
					     "AWS_ENDPOINT_URL %s", sub.msg);
				goto out;
			}
			o->endpoint = v;
		}
	}
	v = getenv("APEXOPS_S3_FORCE_PATH_STYLE");
	if (v != NULL && v[0] != '\0') {
		if (strcmp(v, "true") == 0)
			o->force_path_style = true;
		else if (strcmp(v, "false") != 0) {
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "APEXOPS_S3_FORCE_PATH_STYLE='%.32s' is "
				     "not allowed: use true or false",
				     v);
			goto out;
		}
	}
	v = getenv("APEXOPS_S3_SSE");
	if (v != NULL && v[0] != '\0') {
		if (strcmp(v, "AES256") != 0 && strcmp(v, "aws:kms") != 0) {
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "APEXOPS_S3_SSE='%.32s' is not allowed: "
				     "use AES256 or aws:kms, or leave it "
				     "unset for none",
				     v);
			goto out;
		}
		o->sse = v;
	}
	r = 0;
out:
	buf_release(&msg);
	if (r != 0 || !used) {
		aws_profile_release(p);
		free(p);
		p = NULL;
	}
	if (r != 0) {
		aws_creds_free(o->provider);
		memset(o, 0, sizeof(*o)); /* nothing points into p */
	}
	o->profile = p;
	return r;
}

int
s3_opts_fetch_creds(struct s3_opts *o, const volatile sig_atomic_t *stop,
		    struct ops_err *err)
{
	struct s3_creds first = S3_CREDS_INIT;
	struct ops_err sub = OPS_ERR_INIT;
	int r;

	if (o->provider == NULL)
		return 0;
	aws_creds_set_stop(o->provider, stop);
	r = aws_creds_get(o->provider, &first, &sub);
	s3_creds_release(&first);
	if (r == 0 || r == OPS_E_STOPPED ||
	    aws_creds_source(o->provider) != AWS_CREDS_IMDS) {
		if (r != 0 && err != NULL)
			*err = sub;
		return r;
	}
	/* IMDS is the last resort: say what came before it */
	return ops_fail(err, r, sub.transient,
			"no S3 credentials: none in AWS_ACCESS_KEY_ID and "
			"AWS_SECRET_ACCESS_KEY, profile '%.64s' (AWS_PROFILE) "
			"or AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/_FULL_URI, "
			"and %s; set one of those, or "
			"AWS_EC2_METADATA_DISABLED=true off EC2",
			aws_profile_name(), sub.msg);
}

void
s3_opts_release(struct s3_opts *o)
{
	if (o == NULL)
		return;
	if (o->profile != NULL) {
		aws_profile_release(o->profile);
		free(o->profile);
	}
	aws_creds_free(o->provider);
	memset(o, 0, sizeof(*o));
}

void
s3_creds_release(struct s3_creds *c)
{
	if (c == NULL)
		return;
	free(c->access_key_id);
	freezero_str(c->secret_access_key);
	freezero_str(c->session_token);
	memset(c, 0, sizeof(*c));
}

void
s3_wire_response_release(struct s3_wire_response *r)
{
	buf_release(&r->body);
	free(r->etag);
	r->etag = NULL;
	r->status = 0;
}

int
s3_send_http(void *arg, const struct s3_wire_request *req,
	     struct s3_wire_response *resp, struct ops_err *err)
{
	struct http_client *hc = arg;
	struct http_response hr = HTTP_RESPONSE_INIT;
	struct http_request r = { 0 }; /* fields added later stay zero */
	int rc;

	r.method = req->method;
	r.url = req->url;
	r.headers = req->headers;
	r.body = req->body;
	r.body_len = req->body_len;
	r.idempotent = req->idempotent;
	r.stop = req->stop;
	rc = http_do(hc, &r, &hr, err);
	if (rc == 0) {
		resp->status = hr.status;
		resp->body = hr.body; /* moved */
		hr.body = (struct buf)BUF_INIT;
		resp->etag = hr.etag; /* moved */
		hr.etag = NULL;
	}
	http_response_release(&hr);
	return rc;
}

void
s3_client_set_send(struct s3_client *c, s3_send_fn *fn, void *arg)
{
	if (fn == NULL) {
		c->send = s3_send_http;
		c->send_arg = c->http;
	} else {
		c->send = fn;
		c->send_arg = arg;
	}
}

void
s3_client_set_stop(struct s3_client *c, const volatile sig_atomic_t *stop)
{
	c->stop = stop;
}

void
s3_client_set_clock(struct s3_client *c, time_t (*fn)(void))
{
	c->now = fn;
}

static time_t
client_now(const struct s3_client *c)
{
	return c->now != NULL ? c->now() : time(NULL);
}

int
s3_client_new(const struct s3_opts *o, struct s3_client **out,
	      struct ops_err *err)
{
	struct http_policy pol;
	struct endpoint ep;
	struct s3_client *c;
	struct ops_err sub = OPS_ERR_INIT;
	char *deflt = NULL;
	int r;

	*out = NULL;
	if (!valid_region(o->region))
		return ops_fail(
			err, OPS_E_CONFIG, false,
			"s3: region is empty or not lower-case letters, "
			"digits and '-'");
	if (!valid_bucket(o->bucket))
		return ops_fail(err, OPS_E_CONFIG, false,
				"s3: bucket name '%.240s' is not allowed: 3 to "
				"222 of a-z 0-9 . - _, starting and ending "
				"with a letter or digit",
				o->bucket != NULL ? o->bucket : "");
	if (o->bearer == NULL && o->creds == NULL &&
	    !s3_valid_key_id(o->access_key_id))
		return ops_fail(err, OPS_E_CONFIG, false,
				"s3: access key id is empty or not letters "
				"and digits");
	if (o->bearer == NULL && o->creds == NULL &&
	    (o->secret_access_key == NULL || o->secret_access_key[0] == '\0'))
		return ops_fail(err, OPS_E_CONFIG, false,
				"s3: secret access key is empty");
	if (o->sse != NULL && o->sse[0] != '\0' &&
	    strcmp(o->sse, "AES256") != 0 && strcmp(o->sse, "aws:kms") != 0)
		return ops_fail(err, OPS_E_CONFIG, false,
				"s3: server-side encryption '%.32s' is not "
				"allowed: AES256 or aws:kms",
				o->sse);
	if ((o->multipart_threshold != 0 &&
	     o->multipart_threshold < S3_MIN_PART_SIZE) ||
	    (o->part_size != 0 && (o->part_size < S3_MIN_PART_SIZE ||
				   o->part_size > (size_t)5 << 30)))
		return ops_fail(err, OPS_E_CONFIG, false,
				"s3: multipart threshold and part size must be "
				"5 MiB to 5 GiB");
	if (o->endpoint == NULL || o->endpoint[0] == '\0')
		deflt = xasprintf("https://s3.%s.amazonaws.com", o->region);
	if (parse_endpoint(deflt != NULL ? deflt : o->endpoint, &ep, &sub) !=
	    0) {
		free(deflt);
		return ops_fail(err, OPS_E_CONFIG, false, "s3: endpoint %s",
				sub.msg);
	}
	free(deflt);

	c = xcalloc(1, sizeof(*c));
	c->scheme = xstrdup(ep.scheme);
	c->host = xstrdup(ep.host);
	c->path_style = o->force_path_style || ep.ip_or_localhost ||
			!dns_bucket(o->bucket, strcmp(ep.scheme, "https") == 0);
	c->region = xstrdup(o->region);
	c->bucket = xstrdup(o->bucket);
	c->access_key_id =
		xstrdup(o->access_key_id != NULL ? o->access_key_id : "");
	c->secret_access_key = xstrdup(
		o->secret_access_key != NULL ? o->secret_access_key : "");
	c->bearer = o->bearer;
	c->bearer_arg = o->bearer_arg;
	c->creds = o->creds;
	c->creds_arg = o->creds_arg;
	if (o->session_token != NULL && o->session_token[0] != '\0')
		c->session_token = xstrdup(o->session_token);
	if (o->sse != NULL && o->sse[0] != '\0')
		c->sse = xstrdup(o->sse);
	c->threshold = o->multipart_threshold != 0 ? o->multipart_threshold
						   : S3_DEFAULT_THRESHOLD;
	c->part_size = o->part_size != 0 ? o->part_size : S3_DEFAULT_PART_SIZE;
	if (o->policy != NULL)
		pol = *o->policy;
	else
		http_policy_default(&pol);
	r = http_client_new(&pol, &c->http, err);
	if (r != 0) {
		s3_client_free(c);
		return r;
	}
	s3_client_set_send(c, NULL, NULL);
	*out = c;
	return 0;
}

void
s3_client_free(struct s3_client *c)
{
	if (c == NULL)
		return;
	http_client_free(c->http);
	free(c->scheme);
	free(c->host);
	free(c->region);
	free(c->bucket);
	free(c->access_key_id);
	freezero_str(c->secret_access_key);
	freezero_str(c->session_token);
	free(c->sse);
	free(c);
}

static int
check_key(const char *key, struct ops_err *err)
{
	size_t n = key != NULL ? strlen(key) : 0;

	if (n == 0 || n > MAX_KEY)
		return ops_fail(err, OPS_E_INVALID, false,
				"s3: object key must be 1 to %d bytes",
				MAX_KEY);
	return 0;
}

/* The wire path of key: /bucket/key or /key, each segment encoded. */
static void
object_path(const struct s3_client *c, const char *key, struct buf *out)
{
	buf_adds(out, "/");
	if (c->path_style) {
		(void)sigv4_encode_path(out, c->bucket, strlen(c->bucket));
		buf_adds(out, "/");
	}
	(void)sigv4_encode_path(out, key, strlen(key));
}

static void
base_url(const struct s3_client *c, struct buf *out)
{
	if (c->path_style)
		buf_addf(out, "%s://%s", c->scheme, c->host);
	else
		buf_addf(out, "%s://%s.%s", c->scheme, c->bucket, c->host);
}

static void
host_header(const struct s3_client *c, struct buf *out)
{
	if (c->path_style)
		buf_adds(out, c->host);
	else
		buf_addf(out, "%s.%s", c->bucket, c->host);
}

void
s3_object_parts(const struct s3_client *c, const char *key, char **base,
		char **path, char **host)
{
	struct buf b = BUF_INIT, p = BUF_INIT, h = BUF_INIT;

	base_url(c, &b);
	object_path(c, key, &p);
	host_header(c, &h);
	*base = buf_detach(&b);
	*path = buf_detach(&p);
	*host = buf_detach(&h);
}

int
s3_object_url(const struct s3_client *c, const char *key, char **url,
	      struct ops_err *err)
{
	struct buf b = BUF_INIT;
	int r;

	*url = NULL;
	r = check_key(key, err);
	if (r != 0)
		return r;
	base_url(c, &b);
	object_path(c, key, &b);
	*url = buf_detach(&b);
	return 0;
}

static int
xml_unescape(struct buf *out, const char *s, size_t n, size_t max)
{
	static const struct {
		const char *ent;
		char ch;
	} ents[] = { { "&amp;", '&' },
		     { "&lt;", '<' },
		     { "&gt;", '>' },
		     { "&quot;", '"' },
		     { "&apos;", '\'' } };

	for (size_t i = 0; i < n && out->len < max; i++) {
		char ch = s[i];

		if (ch == '&') {
			for (size_t e = 0; e < sizeof(ents) / sizeof(ents[0]);
			     e++) {
				size_t el = strlen(ents[e].ent);

				if (n - i >= el &&
				    memcmp(s + i, ents[e].ent, el) == 0) {
					ch = ents[e].ch;
					i += el - 1;
					break;
				}
			}
		}
		if (buf_append(out, &ch, 1) != 0)
			return -1;
	}
	return 0;
}

int
s3_xml_text(const char *doc, size_t len, const char *tag, size_t max,
	    struct buf *out)
{
	size_t tl = strlen(tag);
	const char *p = doc, *end = doc + len;

	if (tl == 0)
		return -1;
	while (p < end) {
		const char *lt = memchr(p, '<', (size_t)(end - p));
		const char *text, *close;

		if (lt == NULL || (size_t)(end - lt) < tl + 2)
			return -1;
		if (memcmp(lt + 1, tag, tl) != 0 || lt[tl + 1] != '>') {
			p = lt + 1;
			continue;
		}
		text = lt + tl + 2;
		for (close = text; close < end; close++) {
			if (*close == '<' && (size_t)(end - close) >= tl + 3 &&
			    close[1] == '/' &&
			    memcmp(close + 2, tag, tl) == 0 &&
			    close[tl + 2] == '>')
				break;
		}
		if (close >= end)
			return -1;
		return xml_unescape(out, text, (size_t)(close - text), max);
	}
	return -1;
}

/* Copy S3's error text, keeping printable ASCII only. */
static void
clean_text(char *dst, size_t n, const struct buf *b)
{
	size_t o = 0;

	for (size_t i = 0; i < b->len && o + 1 < n; i++) {
		unsigned char ch = (unsigned char)b->data[i];

		dst[o++] = ch >= ' ' && ch < 0x7f ? (char)ch : '?';
	}
	dst[o] = '\0';
}

/* Turn a non-2xx (or an error document) into an ops_err. */
static int
s3_fail(struct ops_err *err, const char *method, const char *key,
	const struct s3_wire_response *resp)
{
	struct buf code = BUF_INIT, msg = BUF_INIT;
	char code_s[64] = "", msg_s[200] = "", key_s[120];
	struct buf kb = BUF_INIT;
	int rc;
	bool transient = resp->status >= 500 || resp->status == 429;

	if (resp->body.len > 0) {
		(void)s3_xml_text(resp->body.data, resp->body.len, "Code", 60,
				  &code);
		(void)s3_xml_text(resp->body.data, resp->body.len, "Message",
				  190, &msg);
	}
	clean_text(code_s, sizeof(code_s), &code);
	clean_text(msg_s, sizeof(msg_s), &msg);
	buf_adds(&kb, key != NULL ? key : "");
	clean_text(key_s, sizeof(key_s), &kb);
	if (strcmp(code_s, "SlowDown") == 0 ||
	    strcmp(code_s, "InternalError") == 0 ||
	    strcmp(code_s, "RequestTimeout") == 0)
		transient = true;
	rc = resp->status == 404 ? OPS_E_NOTFOUND : OPS_E_HTTP;
	(void)ops_fail(err, rc, transient,
		       "s3: %s '%s' failed: HTTP %ld%s%s%s%s", method, key_s,
		       resp->status, code_s[0] ? " " : "", code_s,
		       msg_s[0] ? ": " : "", msg_s);
	buf_release(&code);
	buf_release(&msg);
	buf_release(&kb);
	return rc;
}

/*
 * With a bearer token nothing is signed, but the query must still go out
 * encoded and sorted as for SigV4: sigv4_sign() builds it, with these
 * stand-in credentials, and its signature is dropped.
 */
static const struct sigv4_creds query_only = { "UNSIGNED", "unused", NULL };

/* "Content-MD5: <base64>", which GCS checks on uploads */
static char *
content_md5_line(const void *body, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned char b64[32];
	unsigned int n = 0;

	if (EVP_Digest(body, len, md, &n, EVP_md5(), NULL) != 1 || n != 16)
		abort();
	EVP_EncodeBlock(b64, md, 16);
	return xasprintf("Content-MD5: %s", (char *)b64);
}

/*
 * The credentials to sign with now into *sc: the client's static keys, or
 * what its creds hook gives, copied into *tmp (which the caller releases
 * on every path; S3_CREDS_INIT on entry).
 */
static int
current_creds(struct s3_client *c, struct s3_creds *tmp, struct sigv4_creds *sc,
	      struct ops_err *err)
{
	int r;

	if (c->creds == NULL) {
		*sc = (struct sigv4_creds){ c->access_key_id,
					    c->secret_access_key,
					    c->session_token };
		return 0;
	}
	r = c->creds(c->creds_arg, tmp, err);
	if (r != 0)
		return r;
	if (!s3_valid_key_id(tmp->access_key_id) ||
	    !set(tmp->secret_access_key))
		return ops_fail(err, OPS_E_HTTP, false,
				"s3: the credentials provider gave no usable "
				"access key");
	*sc = (struct sigv4_creds){ tmp->access_key_id, tmp->secret_access_key,
				    set(tmp->session_token) ? tmp->session_token
							    : NULL };
	return 0;
}

/* A request header to sign and send. */
struct hv {
	const char *name;
	const char *value;
};

/*
 * Sign and send one request for key. params are the query (decoded);
 * hdrs the extra headers (signed). resp must be S3_WIRE_RESPONSE_INIT.
 */
static int
s3_request(struct s3_client *c, const char *method, const char *key,
	   const struct sigv4_param *params, size_t nparams,
	   const struct hv *hdrs, size_t nhdrs, const void *body, size_t len,
	   bool idempotent, struct s3_wire_response *resp, struct ops_err *err)
{
	struct buf path = BUF_INIT, url = BUF_INIT, host = BUF_INIT;
	struct sigv4_header sh[8];
	struct s3_creds tmp = S3_CREDS_INIT;
	struct sigv4_creds creds;
	struct sigv4_request req = { 0 };
	struct sigv4_signed sig = SIGV4_SIGNED_INIT;
	char *lines[14] = { NULL };
	size_t nl = 0;
	struct s3_wire_request w;
	int r;

	object_path(c, key, &path);
	host_header(c, &host);
	sh[0] = (struct sigv4_header){ "host", buf_str(&host) };
	for (size_t i = 0; i < nhdrs && i < 7; i++)
		sh[i + 1] =
			(struct sigv4_header){ hdrs[i].name, hdrs[i].value };
	req.method = method;
	req.path = buf_str(&path);
	req.query = params;
	req.nquery = nparams;
	req.headers = sh;
	req.nheaders = 1 + (nhdrs < 7 ? nhdrs : 7);
	req.body = body;
	req.body_len = len;
	req.when = client_now(c);
	req.region = c->region;
	req.service = "s3";
	req.flags = SIGV4_S3;
	if (c->bearer != NULL) {
		char *token = NULL;

		r = c->bearer(c->bearer_arg, &token, err);
		if (r != 0)
			goto out;
		/* the query as SigV4 would send it, encoded and sorted */
		req.payload_hash = SIGV4_UNSIGNED_PAYLOAD;
		r = sigv4_sign(&req, &query_only, &sig, err);
		if (r != 0) {
			freezero_str(token);
			goto out;
		}
		lines[nl++] = xasprintf("Authorization: Bearer %s", token);
		freezero_str(token);
		if (body != NULL && len > 0)
			lines[nl++] = content_md5_line(body, len);
	} else {
		/* per request: temporary credentials change under us */
		r = current_creds(c, &tmp, &creds, err);
		if (r != 0)
			goto out;
		r = sigv4_sign(&req, &creds, &sig, err);
		if (r != 0)
			goto out;
		lines[nl++] = xasprintf("x-amz-date: %s", sig.amz_date);
		lines[nl++] =
			xasprintf("x-amz-content-sha256: %s", sig.payload_hash);
		lines[nl++] = xasprintf("Authorization: %s", sig.authorization);
		if (creds.session_token != NULL)
			lines[nl++] = xasprintf("x-amz-security-token: %s",
						creds.session_token);
	}
	base_url(c, &url);
	buf_adds(&url, buf_str(&path));
	if (sig.query[0] != '\0')
		buf_addf(&url, "?%s", sig.query);

	lines[nl++] = xasprintf("Host: %s", buf_str(&host));
	for (size_t i = 1; i < req.nheaders; i++) {
		/* S3's headers mean nothing to GCS with OAuth */
		if (c->bearer != NULL &&
		    strncasecmp(sh[i].name, "x-amz-", 6) == 0)
			continue;
		lines[nl++] = xasprintf("%s: %s", sh[i].name, sh[i].value);
	}
	lines[nl] = NULL;

	w.method = method;
	w.url = buf_str(&url);
	w.headers = (const char *const *)lines;
	w.body = body;
	w.body_len = len;
	w.idempotent = idempotent;
	w.stop = c->stop;
	r = c->send(c->send_arg, &w, resp, err);
out:
	for (size_t i = 0; i < nl; i++)
		freezero_str(lines[i]); /* the token line is a secret */
	s3_creds_release(&tmp);
	sigv4_signed_release(&sig);
	buf_release(&path);
	buf_release(&url);
	buf_release(&host);
	return r;
}

static void
md5_etag(const void *data, size_t len, char etag[67])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (EVP_Digest(data, len, md, &n, EVP_md5(), NULL) != 1 || n != 16)
		abort();
	etag[0] = '"';
	for (unsigned int i = 0; i < 16; i++)
		snprintf(etag + 1 + 2 * i, 3, "%02x", md[i]);
	etag[33] = '"';
	etag[34] = '\0';
}

static size_t
put_headers(const struct s3_client *c, const char *content_type, struct hv *h)
{
	size_t n = 0;

	h[n++] = (struct hv){ "Content-Type",
			      content_type != NULL
				      ? content_type
				      : "application/octet-stream" };
	if (c->sse != NULL)
		h[n++] = (struct hv){ "x-amz-server-side-encryption", c->sse };
	return n;
}

int
s3_multipart_create(struct s3_client *c, const char *key,
		    const char *content_type, char **upload_id,
		    struct ops_err *err)
{
	const struct sigv4_param q[] = { { "uploads", "" } };
	struct s3_wire_response resp = S3_WIRE_RESPONSE_INIT;
	struct buf id = BUF_INIT;
	struct hv h[2];
	size_t nh;
	int r;

	*upload_id = NULL;
	r = check_key(key, err);
	if (r != 0)
		return r;
	nh = put_headers(c, content_type, h);
	/* not retried: a second CreateMultipartUpload would leave an
	 * orphaned upload behind */
	r = s3_request(c, "POST", key, q, 1, h, nh, NULL, 0, false, &resp, err);
	if (r != 0)
		goto out;
	if (resp.status != 200) {
		r = s3_fail(err, "CreateMultipartUpload", key, &resp);
		goto out;
	}
	if (s3_xml_text(resp.body.data != NULL ? resp.body.data : "",
			resp.body.len, "UploadId", 1024, &id) != 0 ||
	    id.len == 0) {
		r = ops_fail(err, OPS_E_HTTP, false,
			     "s3: CreateMultipartUpload '%.100s' answered "
			     "without an UploadId",
			     key);
		goto out;
	}
	*upload_id = buf_detach(&id); /* to the caller */
out:
	buf_release(&id);
	s3_wire_response_release(&resp);
	return r;
}

int
s3_multipart_upload_part(struct s3_client *c, const char *key,
			 const char *upload_id, int part_number,
			 const void *data, size_t len, char etag[67],
			 struct ops_err *err)
{
	char num[16];
	const struct sigv4_param q[] = { { "partNumber", num },
					 { "uploadId", upload_id } };
	struct s3_wire_response resp = S3_WIRE_RESPONSE_INIT;
	int r;

	etag[0] = '\0';
	r = check_key(key, err);
	if (r != 0)
		return r;
	if (part_number < 1 || part_number > S3_MAX_PARTS)
		return ops_fail(err, OPS_E_INVALID, false,
				"s3: part number %d is out of range (1 to %d)",
				part_number, S3_MAX_PARTS);
	snprintf(num, sizeof(num), "%d", part_number);
	r = s3_request(c, "PUT", key, q, 2, NULL, 0, data, len, true, &resp,
		       err);
	if (r != 0)
		goto out;
	if (resp.status != 200) {
		r = s3_fail(err, "UploadPart", key, &resp);
		goto out;
	}
	if (resp.etag != NULL && resp.etag[0] != '\0' && strlen(resp.etag) < 67)
		snprintf(etag, 67, "%s", resp.etag);
	else
		md5_etag(data, len, etag);
out:
	s3_wire_response_release(&resp);
	return r;
}

static void
xml_escape(struct buf *out, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&':
			buf_adds(out, "&amp;");
			break;
		case '<':
			buf_adds(out, "&lt;");
			break;
		case '>':
			buf_adds(out, "&gt;");
			break;
		default:
			buf_addn(out, s, 1);
		}
	}
}

int
s3_multipart_complete(struct s3_client *c, const char *key,
		      const char *upload_id, const char *const *etags,
		      int nparts, struct ops_err *err)
{
	const struct sigv4_param q[] = { { "uploadId", upload_id } };
	const struct hv h[] = { { "Content-Type", "application/xml" } };
	struct s3_wire_response resp = S3_WIRE_RESPONSE_INIT;
	struct buf body = BUF_INIT;
	int r;

	r = check_key(key, err);
	if (r != 0)
		return r;
	if (nparts < 1 || nparts > S3_MAX_PARTS)
		return ops_fail(err, OPS_E_INVALID, false,
				"s3: a multipart upload needs 1 to %d parts",
				S3_MAX_PARTS);
	buf_adds(&body, "<CompleteMultipartUpload xmlns=\"http://s3."
			"amazonaws.com/doc/2006-03-01/\">");
	for (int i = 0; i < nparts; i++) {
		buf_addf(&body, "<Part><PartNumber>%d</PartNumber><ETag>",
			 i + 1);
		xml_escape(&body, etags[i]);
		buf_adds(&body, "</ETag></Part>");
	}
	buf_adds(&body, "</CompleteMultipartUpload>");
	r = s3_request(c, "POST", key, q, 1, h, 1, body.data, body.len, true,
		       &resp, err);
	if (r != 0)
		goto out;
	/* S3 may answer 200 with an <Error> document */
	if (resp.status != 200 || (resp.body.data != NULL &&
				   strstr(resp.body.data, "<Error>") != NULL)) {
		if (resp.status == 200)
			resp.status = 500;
		r = s3_fail(err, "CompleteMultipartUpload", key, &resp);
		goto out;
	}
out:
	buf_release(&body);
	s3_wire_response_release(&resp);
	return r;
}

int
s3_multipart_abort(struct s3_client *c, const char *key, const char *upload_id,
		   struct ops_err *err)
{
	const struct sigv4_param q[] = { { "uploadId", upload_id } };
	struct s3_wire_response resp = S3_WIRE_RESPONSE_INIT;
	int r;

	r = check_key(key, err);
	if (r != 0)
		return r;
	r = s3_request(c, "DELETE", key, q, 1, NULL, 0, NULL, 0, true, &resp,
		       err);
	if (r == 0 && resp.status != 204 && resp.status != 200)
		r = s3_fail(err, "AbortMultipartUpload", key, &resp);
	s3_wire_response_release(&resp);
	return r;
}

static int
put_multipart(struct s3_client *c, const char *key, const unsigned char *data,
	      size_t len, const char *content_type, struct ops_err *err)
{
	size_t part = c->part_size, nparts;
	char **etags = NULL;
	char *upload_id = NULL;
	int r;

	/* grow the part size until the object fits in S3_MAX_PARTS parts */
	if ((len + part - 1) / part > S3_MAX_PARTS)
		part = (len + S3_MAX_PARTS - 1) / S3_MAX_PARTS;
	nparts = (len + part - 1) / part;
	r = s3_multipart_create(c, key, content_type, &upload_id, err);
	if (r != 0)
		return r;
	etags = xcalloc(nparts, sizeof(*etags));
	for (size_t i = 0; i < nparts; i++) {
		size_t off = i * part;
		size_t n = len - off < part ? len - off : part;

		etags[i] = xmalloc(67);
		r = s3_multipart_upload_part(c, key, upload_id, (int)i + 1,
					     data + off, n, etags[i], err);
		if (r != 0)
			break;
	}
	if (r == 0)
		r = s3_multipart_complete(c, key, upload_id,
					  (const char *const *)etags,
					  (int)nparts, err);
	if (r != 0) {
		/* best effort, keeping the first error; a bucket lifecycle
		 * rule for incomplete uploads is the backstop */
		struct ops_err ignored = OPS_ERR_INIT;

		if (s3_multipart_abort(c, key, upload_id, &ignored) != 0)
			log_warn("s3 abort of a failed upload failed: %s",
				 ignored.msg);
	}
	for (size_t i = 0; etags != NULL && i < nparts; i++)
		free(etags[i]);
	free(etags);
	free(upload_id);
	return r;
}

int
s3_put_object(struct s3_client *c, const char *key, const void *data,
	      size_t len, const char *content_type, struct ops_err *err)
{
	struct s3_wire_response resp = S3_WIRE_RESPONSE_INIT;
	struct hv h[2];
	size_t nh;
	int r;

	r = check_key(key, err);
	if (r != 0)
		return r;
	if (data == NULL && len > 0)
		return ops_fail(err, OPS_E_INVALID, false,
				"s3: PUT '%.100s' has no data", key);
	if (len > c->threshold)
		return put_multipart(c, key, data, len, content_type, err);
	nh = put_headers(c, content_type, h);
	r = s3_request(c, "PUT", key, NULL, 0, h, nh, data != NULL ? data : "",
		       len, true, &resp, err);
	if (r == 0 && resp.status != 200)
		r = s3_fail(err, "PUT", key, &resp);
	s3_wire_response_release(&resp);
	return r;
}

int
s3_head_object(struct s3_client *c, const char *key, struct ops_err *err)
{
	struct s3_wire_response resp = S3_WIRE_RESPONSE_INIT;
	int r;

	r = check_key(key, err);
	if (r != 0)
		return r;
	r = s3_request(c, "HEAD", key, NULL, 0, NULL, 0, NULL, 0, true, &resp,
		       err);
	if (r == 0 && resp.status != 200)
		r = s3_fail(err, "HEAD", key, &resp);
	s3_wire_response_release(&resp);
	return r;
}

int
s3_delete_object(struct s3_client *c, const char *key, struct ops_err *err)
{
	struct s3_wire_response resp = S3_WIRE_RESPONSE_INIT;
	int r;

	r = check_key(key, err);
	if (r != 0)
		return r;
	r = s3_request(c, "DELETE", key, NULL, 0, NULL, 0, NULL, 0, true, &resp,
		       err);
	if (r == 0 && resp.status != 204 && resp.status != 200 &&
	    resp.status != 404)
		r = s3_fail(err, "DELETE", key, &resp);
	s3_wire_response_release(&resp);
	return r;
}

/* The end of the element <tag>...</tag> that starts at or after p, with
 * its text in [*text, *text_end); NULL when there is none. */
static const char *
xml_next(const char *p, const char *end, const char *tag, const char **text,
	 const char **text_end)
{
	size_t tl = strlen(tag);

	while (p < end) {
		const char *lt = memchr(p, '<', (size_t)(end - p));
		const char *close;

		if (lt == NULL || (size_t)(end - lt) < tl + 2)
			return NULL;
		if (memcmp(lt + 1, tag, tl) != 0 || lt[tl + 1] != '>') {
			p = lt + 1;
			continue;
		}
		*text = lt + tl + 2;
		for (close = *text; close < end; close++)
			if (*close == '<' && (size_t)(end - close) >= tl + 3 &&
			    close[1] == '/' &&
			    memcmp(close + 2, tag, tl) == 0 &&
			    close[tl + 2] == '>')
				break;
		if (close >= end)
			return NULL;
		*text_end = close;
		return close + tl + 3;
	}
	return NULL;
}

int
s3_list_parse(const char *doc, size_t len,
	      int (*fn)(void *arg, const char *key), void *arg, bool *truncated,
	      struct buf *next)
{
	const char *end = doc + len, *p, *t, *te;
	struct buf flag = BUF_INIT, key = BUF_INIT;
	int r = 0;

	*truncated = false;
	if (memmem(doc, len, "<ListBucketResult", 17) == NULL)
		return -1;
	if (s3_xml_text(doc, len, "IsTruncated", 8, &flag) == 0)
		*truncated = strcmp(buf_str(&flag), "true") == 0;
	buf_release(&flag);
	if (*truncated &&
	    s3_xml_text(doc, len, "NextContinuationToken", 1024, next) != 0)
		return -1; /* more pages, but no way to ask for them */
	for (p = doc; r == 0 && p < end;) {
		const char *kt, *kte;

		p = xml_next(p, end, "Contents", &t, &te);
		if (p == NULL)
			break;
		if (xml_next(t, te, "Key", &kt, &kte) == NULL)
			continue;
		buf_reset(&key);
		if (xml_unescape(&key, kt, (size_t)(kte - kt), 1024) != 0 ||
		    key.len == 0 || memchr(key.data, '\0', key.len) != NULL)
			continue;
		r = fn(arg, buf_str(&key));
	}
	buf_release(&key);
	return r;
}

/* "2026-12-01T11:00:00.000Z" as UTC seconds (aws_iso8601_parse, the
 * credentials' parser: a real calendar date, an offset allowed); 0 when
 * it is not one. */
static time_t
iso_time(const char *v)
{
	time_t t;

	return aws_iso8601_parse(v, &t) == 0 ? t : 0;
}

/* The decoded text of the first <tag> within [p, end) into out. */
static int
xml_field(const char *p, const char *end, const char *tag, size_t max,
	  struct buf *out)
{
	const char *t, *te;

	buf_reset(out);
	if (xml_next(p, end, tag, &t, &te) == NULL)
		return -1;
	return xml_unescape(out, t, (size_t)(te - t), max);
}

int
s3_uploads_parse(const char *doc, size_t len,
		 int (*fn)(void *arg, const char *key, const char *upload_id,
			   time_t initiated),
		 void *arg, bool *truncated, struct buf *next_key,
		 struct buf *next_id)
{
	const char *end = doc + len, *p, *t, *te;
	struct buf flag = BUF_INIT, key = BUF_INIT, id = BUF_INIT,
		   when = BUF_INIT;
	int r = 0;

	*truncated = false;
	if (memmem(doc, len, "<ListMultipartUploadsResult", 27) == NULL)
		return -1;
	if (s3_xml_text(doc, len, "IsTruncated", 8, &flag) == 0)
		*truncated = strcmp(buf_str(&flag), "true") == 0;
	buf_release(&flag);
	if (*truncated &&
	    (s3_xml_text(doc, len, "NextKeyMarker", 1024, next_key) != 0 ||
	     s3_xml_text(doc, len, "NextUploadIdMarker", 1024, next_id) != 0))
		return -1;
	for (p = doc; r == 0 && p < end;) {
		p = xml_next(p, end, "Upload", &t, &te);
		if (p == NULL)
			break;
		if (xml_field(t, te, "Key", 1024, &key) != 0 || key.len == 0 ||
		    memchr(key.data, '\0', key.len) != NULL ||
		    xml_field(t, te, "UploadId", 1024, &id) != 0 ||
		    id.len == 0 || memchr(id.data, '\0', id.len) != NULL)
			continue;
		if (xml_field(t, te, "Initiated", 64, &when) != 0)
			buf_reset(&when);
		r = fn(arg, buf_str(&key), buf_str(&id),
		       iso_time(buf_str(&when)));
	}
	buf_release(&key);
	buf_release(&id);
	buf_release(&when);
	return r;
}

int
s3_list_uploads(struct s3_client *c, const char *prefix,
		int (*fn)(void *arg, const char *key, const char *upload_id,
			  time_t initiated),
		void *arg, struct ops_err *err)
{
	struct buf key_marker = BUF_INIT, id_marker = BUF_INIT;
	int r = 0;
	bool more;

	do {
		struct sigv4_param q[4] = { { "uploads", "" },
					    { "prefix", prefix },
					    { "key-marker", NULL },
					    { "upload-id-marker", NULL } };
		struct s3_wire_response resp = S3_WIRE_RESPONSE_INIT;
		struct buf nk = BUF_INIT, ni = BUF_INIT;
		bool truncated = false;
		size_t nq = 2;

		if (key_marker.len > 0) {
			q[2].value = buf_str(&key_marker);
			q[3].value = buf_str(&id_marker);
			nq = 4;
		}
		r = s3_request(c, "GET", "", q, nq, NULL, 0, NULL, 0, true,
			       &resp, err);
		if (r == 0 && resp.status != 200)
			r = s3_fail(err, "ListMultipartUploads", prefix, &resp);
		if (r == 0) {
			r = s3_uploads_parse(
				resp.body.data != NULL ? resp.body.data : "",
				resp.body.len, fn, arg, &truncated, &nk, &ni);
			if (r == -1)
				r = ops_fail(err, OPS_E_HTTP, false,
					     "s3: ListMultipartUploads "
					     "'%.100s' answered with no "
					     "ListMultipartUploadsResult",
					     prefix);
		}
		s3_wire_response_release(&resp);
		more = r == 0 && truncated && nk.len > 0;
		buf_reset(&key_marker);
		buf_reset(&id_marker);
		if (more) {
			buf_adds(&key_marker, buf_str(&nk));
			buf_adds(&id_marker, buf_str(&ni));
		}
		buf_release(&nk);
		buf_release(&ni);
	} while (more);
	buf_release(&key_marker);
	buf_release(&id_marker);
	return r;
}

int
s3_list_objects(struct s3_client *c, const char *prefix,
		int (*fn)(void *arg, const char *key), void *arg,
		struct ops_err *err)
{
	struct buf token = BUF_INIT;
	int r = 0;

	do {
		struct sigv4_param q[3] = { { "list-type", "2" },
					    { "prefix", prefix },
					    { "continuation-token", NULL } };
		struct s3_wire_response resp = S3_WIRE_RESPONSE_INIT;
		struct buf next = BUF_INIT;
		bool truncated = false;
		size_t nq = 2;

		if (token.len > 0) {
			q[2].value = buf_str(&token);
			nq = 3;
		}
		/* the bucket itself: "/bucket/" or "/" */
		r = s3_request(c, "GET", "", q, nq, NULL, 0, NULL, 0, true,
			       &resp, err);
		if (r == 0 && resp.status != 200)
			r = s3_fail(err, "ListObjectsV2", prefix, &resp);
		if (r == 0) {
			r = s3_list_parse(
				resp.body.data != NULL ? resp.body.data : "",
				resp.body.len, fn, arg, &truncated, &next);
			if (r == -1)
				r = ops_fail(
					err, OPS_E_HTTP, false,
					"s3: ListObjectsV2 '%.100s' "
					"answered with no ListBucketResult",
					prefix);
		}
		s3_wire_response_release(&resp);
		buf_reset(&token);
		if (r == 0 && truncated)
			buf_adds(&token, buf_str(&next));
		buf_release(&next);
	} while (r == 0 && token.len > 0);
	buf_release(&token);
	return r;
}

int
s3_presign_get(struct s3_client *c, const char *key, long expires, char **url,
	       struct ops_err *err)
{
	struct buf path = BUF_INIT, u = BUF_INIT, host = BUF_INIT;
	struct sigv4_header sh[1];
	struct s3_creds tmp = S3_CREDS_INIT;
	struct sigv4_creds creds;
	struct sigv4_request req = { 0 };
	struct sigv4_signed sig = SIGV4_SIGNED_INIT;
	int r;

	*url = NULL;
	r = check_key(key, err);
	if (r != 0)
		return r;
	if (c->bearer != NULL)
		return ops_fail(err, OPS_E_INVALID, false,
				"s3: no SigV4 presigned URL with a bearer "
				"token");
	object_path(c, key, &path);
	host_header(c, &host);
	sh[0] = (struct sigv4_header){ "host", buf_str(&host) };
	req.method = "GET";
	req.path = buf_str(&path);
	req.headers = sh;
	req.nheaders = 1;
	req.when = client_now(c);
	req.region = c->region;
	req.service = "s3";
	req.flags = SIGV4_S3;
	r = current_creds(c, &tmp, &creds, err);
	if (r != 0)
		goto out;
	if (tmp.expires != 0) {
		/* S3 stops honouring the URL when its credentials expire */
		long left = (long)(tmp.expires - req.when);

		if (left < 1) {
			r = ops_fail(err, OPS_E_HTTP, true,
				     "s3: the temporary credentials have "
				     "expired: no presigned URL");
			goto out;
		}
		if (expires >= 1 && expires <= SIGV4_MAX_EXPIRES &&
		    expires > left)
			expires = left;
	}
	r = sigv4_presign(&req, &creds, expires, &sig, err);
	if (r != 0)
		goto out;
	base_url(c, &u);
	buf_addf(&u, "%s?%s", buf_str(&path), sig.query);
	*url = buf_detach(&u); /* to the caller */
out:
	s3_creds_release(&tmp);
	sigv4_signed_release(&sig);
	buf_release(&path);
	buf_release(&u);
	buf_release(&host);
	return r;
}
