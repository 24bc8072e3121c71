#include "storage/sigv4.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/xalloc.h"
#include "http/http.h"

#define ALGORITHM "AWS4-HMAC-SHA256"

/* One encoded query parameter. */
struct qparam {
	char *name;
	char *value;
};

/* One header being canonicalised; idx keeps repeated names in order. */
struct hdr {
	char *name;  /* lower case */
	char *value; /* trimmed, blanks collapsed */
	size_t idx;
};

static void
hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void
sigv4_sha256_hex(const void *data, size_t len, char hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	/* EVP_Digest cannot fail for SHA-256 short of memory exhaustion,
	 * which xmalloc treats as fatal elsewhere too. */
	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32)
		abort();
	hex_encode(md, 32, hex);
}

static void
hmac_sha256(const void *key, size_t keylen, const char *data, size_t len,
	    unsigned char out[32])
{
	unsigned int outlen = 0;

	if (HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)data,
		 len, out, &outlen) == NULL ||
	    outlen != 32)
		abort();
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode %XX sequences of s[0..len) into out; a '%' that starts no valid
 * escape stays as it is (then gets encoded as %25). */
static void
percent_decode(struct buf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
		int lo = i + 2 < len ? hexval(s[i + 2]) : -1;

		if (s[i] == '%' && hi >= 0 && lo >= 0) {
			char c = (char)(hi << 4 | lo);

			buf_addn(out, &c, 1);
			i += 2;
			continue;
		}
		buf_addn(out, &s[i], 1);
	}
}

int
sigv4_encode_path(struct buf *out, const char *raw, size_t len)
{
	size_t start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && raw[i] != '/')
			continue;
		if (http_url_encode(out, raw + start, i - start, false) != 0)
			return -1;
		if (i < len && buf_append(out, "/", 1) != 0)
			return -1;
		start = i + 1;
	}
	return 0;
}

/* S3: decode each segment as sent, then encode it once, so that the
 * canonical form does not depend on how the caller escaped it. */
static int
canonical_uri_s3(struct buf *out, const char *path)
{
	struct buf seg = BUF_INIT;
	const char *p = path;
	int r = 0;

	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);

		buf_reset(&seg);
		percent_decode(&seg, p, n);
		if (http_url_encode(out, seg.data != NULL ? seg.data : "",
				    seg.len, false) != 0) {
			r = -1;
			break;
		}
		if (slash == NULL)
			break;
		if (buf_append(out, "/", 1) != 0) {
			r = -1;
			break;
		}
		p = slash + 1;
	}
	buf_release(&seg);
	return r;
}

/*
 * Other services: drop empty and "." segments, let ".." remove the
 * segment before it, keep a leading and a trailing slash, then encode each
 * segment of the path as sent once more (AWS's "encoded twice"). This is
 * the rule of the test suite's normalize-path cases and of the SDKs.
 */
static int
canonical_uri_normalized(struct buf *out, const char *path)
{
	size_t len = strlen(path), cap = len / 2 + 2, nseg = 0;
	const char **seg = xmalloc(cap * sizeof(*seg));
	size_t *seglen = xmalloc(cap * sizeof(*seglen));
	const char *p = path;
	int r = 0;

	while (*p != '\0') {
		const char *slash = strchr(p, '/');
		size_t n = slash != NULL ? (size_t)(slash - p) : strlen(p);

		if (n == 0 || (n == 1 && p[0] == '.')) {
			/* skipped */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (nseg > 0)
				nseg--;
		} else {
			seg[nseg] = p;
			seglen[nseg] = n;
			nseg++;
		}
		if (slash == NULL)
			break;
		p = slash + 1;
	}
	if (path[0] == '/' && buf_append(out, "/", 1) != 0)
		r = -1;
	for (size_t i = 0; r == 0 && i < nseg; i++) {
		if (i > 0 && buf_append(out, "/", 1) != 0)
			r = -1;
		else if (http_url_encode(out, seg[i], seglen[i], false) != 0)
			r = -1;
	}
	if (r == 0 && nseg > 0 && len > 0 && path[len - 1] == '/' &&
	    buf_append(out, "/", 1) != 0)
		r = -1;
	free(seg);
	free(seglen);
	return r;
}

int
sigv4_canonical_uri(struct buf *out, const char *path, unsigned flags)
{
	if (path[0] == '\0')
		return buf_append(out, "/", 1);
	if (flags & SIGV4_NO_NORMALIZE)
		return canonical_uri_s3(out, path);
	return canonical_uri_normalized(out, path);
}

static int
qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c != 0 ? c : strcmp(x->value, y->value);
}

static char *
encode_str(const char *s)
{
	struct buf b = BUF_INIT;

	/* an unbounded buf only fails when memory runs out, and xmalloc
	 * aborts then; a failure here would still sign an empty value,
	 * which the server refuses, never a wrong one silently */
	if (http_url_encode(&b, s, strlen(s), false) != 0)
		buf_reset(&b);
	return buf_detach(&b);
}

/* Append the sorted, encoded query of params plus extra to out. */
static void
canonical_query(struct buf *out, const struct sigv4_param *params, size_t n,
		const struct sigv4_param *extra, size_t nextra)
{
	size_t total = n + nextra;
	struct qparam *q;

	if (total == 0)
		return;
	q = xcalloc(total, sizeof(*q));
	for (size_t i = 0; i < total; i++) {
		const struct sigv4_param *p =
			i < n ? &params[i] : &extra[i - n];

		q[i].name = encode_str(p->name);
		q[i].value = encode_str(p->value != NULL ? p->value : "");
	}
	qsort(q, total, sizeof(*q), qparam_cmp);
	for (size_t i = 0; i < total; i++) {
		if (i > 0)
			buf_addn(out, "&", 1);
		buf_addf(out, "%s=%s", q[i].name, q[i].value);
		free(q[i].name);
		free(q[i].value);
	}
	free(q);
}

static int
hdr_cmp(const void *a, const void *b)
{
	const struct hdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c != 0)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* RFC 9110 token characters (ASCII, whatever the locale). */
static bool
is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static char *
lower_name(const char *s)
{
	char *l = xstrdup(s);

	for (char *p = l; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return l;
}

/* Trim, and collapse runs of blanks, CR and LF into one space. */
static char *
canonical_value(const char *v)
{
	size_t n = strlen(v), o = 0;
	char *out = xmalloc(n + 1);
	bool blank = false;

	for (size_t i = 0; i < n; i++) {
		char c = v[i];

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			blank = true;
			continue;
		}
		if (blank && o > 0)
			out[o++] = ' ';
		blank = false;
		out[o++] = c;
	}
	out[o] = '\0';
	return out;
}

static bool
reserved_header(const char *lname)
{
	return strcmp(lname, "authorization") == 0 ||
	       strcmp(lname, "x-amz-date") == 0 ||
	       strcmp(lname, "x-amz-content-sha256") == 0 ||
	       strcmp(lname, "x-amz-security-token") == 0;
}

static bool
valid_payload_hash(const char *h)
{
	if (strcmp(h, SIGV4_UNSIGNED_PAYLOAD) == 0)
		return true;
	if (strlen(h) != 64)
		return false;
	for (const char *p = h; *p != '\0'; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* A region, service or access key id: printable, no '/', no blanks. */
static bool
valid_scope_part(const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '/')
			return false;
	return true;
}

static int
check_request(const struct sigv4_request *req, const struct sigv4_creds *creds,
	      struct ops_err *err)
{
	if (req->method == NULL || req->method[0] == '\0')
		return ops_fail(err, OPS_E_INVALID, false,
				"sigv4: method is empty");
	for (const char *p = req->method; *p != '\0'; p++)
		if (!is_tchar((unsigned char)*p))
			return ops_fail(err, OPS_E_INVALID, false,
					"sigv4: method '%s' is not an HTTP "
					"token",
					req->method);
	if (req->path == NULL || req->path[0] != '/')
		return ops_fail(err, OPS_E_INVALID, false,
				"sigv4: path must start with '/'");
	if (strpbrk(req->path, "?#\r\n") != NULL)
		return ops_fail(err, OPS_E_INVALID, false,
				"sigv4: path holds '?', '#' or a line break, "
				"which must be percent-encoded");
	if (!valid_scope_part(req->region))
		return ops_fail(err, OPS_E_INVALID, false,
				"sigv4: region is empty or holds '/' or "
				"blanks");
	if (!valid_scope_part(req->service))
		return ops_fail(err, OPS_E_INVALID, false,
				"sigv4: service is empty or holds '/' or "
				"blanks");
	if (creds == NULL || !valid_scope_part(creds->access_key_id))
		return ops_fail(err, OPS_E_INVALID, false,
				"sigv4: access key id is empty or holds '/' "
				"or blanks");
	if (creds->secret_access_key == NULL ||
	    creds->secret_access_key[0] == '\0')
		return ops_fail(err, OPS_E_INVALID, false,
				"sigv4: secret access key is empty");
	if (req->payload_hash != NULL && !valid_payload_hash(req->payload_hash))
		return ops_fail(err, OPS_E_INVALID, false,
				"sigv4: payload hash must be 64 lower-case "
				"hex digits or UNSIGNED-PAYLOAD");
	if (req->body == NULL && req->body_len > 0)
		return ops_fail(err, OPS_E_INVALID, false,
				"sigv4: body is NULL with a length");
	if ((req->nquery > 0 && req->query == NULL) ||
	    (req->nheaders > 0 && req->headers == NULL))
		return ops_fail(err, OPS_E_INVALID, false,
				"sigv4: query or header array is NULL");
	for (size_t i = 0; i < req->nquery; i++)
		if (req->query[i].name == NULL)
			return ops_fail(err, OPS_E_INVALID, false,
					"sigv4: query parameter %zu has no "
					"name",
					i + 1);
	return 0;
}

/*
 * Canonical headers: "name:value\n" lines into lines, "a;b" into signed.
 * extra are the signer's own (already lower case). Fails on a bad or
 * reserved name and when there is no host.
 */
static int
canonical_headers(const struct sigv4_request *req,
		  const struct sigv4_header *extra, size_t nextra,
		  struct buf *lines, struct buf *signed_list,
		  struct ops_err *err)
{
	size_t total = req->nheaders + nextra, i;
	struct hdr *h = xcalloc(total > 0 ? total : 1, sizeof(*h));
	bool have_host = false;
	int r = 0;

	for (i = 0; i < total; i++) {
		const struct sigv4_header *in =
			i < req->nheaders ? &req->headers[i]
					  : &extra[i - req->nheaders];

		if (in->name == NULL || in->name[0] == '\0' ||
		    in->value == NULL) {
			r = ops_fail(err, OPS_E_INVALID, false,
				     "sigv4: header %zu has no name or value",
				     i + 1);
			goto out;
		}
		for (const char *p = in->name; *p != '\0'; p++) {
			if (!is_tchar((unsigned char)*p)) {
				r = ops_fail(err, OPS_E_INVALID, false,
					     "sigv4: header name '%.64s' is "
					     "not an HTTP token",
					     in->name);
				goto out;
			}
		}
		h[i].name = lower_name(in->name);
		h[i].value = canonical_value(in->value);
		h[i].idx = i;
		if (i < req->nheaders && reserved_header(h[i].name)) {
			r = ops_fail(err, OPS_E_INVALID, false,
				     "sigv4: header '%s' is set by the signer",
				     h[i].name);
			i++;
			goto out;
		}
		if (strcmp(h[i].name, "host") == 0)
			have_host = true;
	}
	if (!have_host) {
		r = ops_fail(err, OPS_E_INVALID, false,
			     "sigv4: the host header is missing");
		goto out;
	}
	qsort(h, total, sizeof(*h), hdr_cmp);
	for (size_t j = 0; j < total; j++) {
		bool same = j > 0 && strcmp(h[j].name, h[j - 1].name) == 0;

		if (same) {
			buf_addf(lines, ",%s", h[j].value);
			continue;
		}
		if (j > 0) {
			buf_addn(lines, "\n", 1);
			buf_addn(signed_list, ";", 1);
		}
		buf_addf(lines, "%s:%s", h[j].name, h[j].value);
		buf_adds(signed_list, h[j].name);
	}
	buf_addn(lines, "\n", 1);
out:
	for (size_t j = 0; j < i && j < total; j++) {
		free(h[j].name);
		free(h[j].value);
	}
	free(h);
	return r;
}

static int
format_date(time_t when, char amz[17], struct ops_err *err)
{
	struct tm tm;

	if (when < 0 || gmtime_r(&when, &tm) == NULL || tm.tm_year > 8099)
		return ops_fail(err, OPS_E_INVALID, false,
				"sigv4: signing time is out of range");
	if (strftime(amz, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
		return ops_fail(err, OPS_E_INVALID, false,
				"sigv4: signing time is out of range");
	return 0;
}

/* kSigning = HMAC chain over date, region, service, "aws4_request", then
 * the signature of sts into hex. Every key is wiped. */
static void
compute_signature(const struct sigv4_creds *creds, const char *date8,
		  const char *region, const char *service, const char *sts,
		  char sig[65])
{
	size_t slen = strlen(creds->secret_access_key);
	char *ksecret = xmalloc(slen + 5);
	unsigned char k1[32], k2[32];

	memcpy(ksecret, "AWS4", 4);
	memcpy(ksecret + 4, creds->secret_access_key, slen + 1);
	hmac_sha256(ksecret, slen + 4, date8, strlen(date8), k1);
	OPENSSL_cleanse(ksecret, slen + 5);
	free(ksecret);
	hmac_sha256(k1, 32, region, strlen(region), k2);
	hmac_sha256(k2, 32, service, strlen(service), k1);
	hmac_sha256(k1, 32, "aws4_request", 12, k2);
	hmac_sha256(k2, 32, sts, strlen(sts), k1);
	hex_encode(k1, 32, sig);
	OPENSSL_cleanse(k1, sizeof(k1));
	OPENSSL_cleanse(k2, sizeof(k2));
}

void
sigv4_signed_release(struct sigv4_signed *s)
{
	if (s == NULL)
		return;
	free(s->authorization);
	free(s->query);
	free(s->signed_headers);
	free(s->canonical_request);
	free(s->string_to_sign);
	*s = (struct sigv4_signed)SIGV4_SIGNED_INIT;
}

static int
sign_common(const struct sigv4_request *req, const struct sigv4_creds *creds,
	    long expires, bool presign, struct sigv4_signed *out,
	    struct ops_err *err)
{
	struct buf creq = BUF_INIT, hdrs = BUF_INIT, signed_list = BUF_INIT;
	struct buf query = BUF_INIT, sts = BUF_INIT, scope = BUF_INIT;
	struct buf cred = BUF_INIT;
	struct sigv4_header extra[3];
	struct sigv4_param qextra[6];
	size_t nextra = 0, nqextra = 0;
	bool token = creds != NULL && creds->session_token != NULL &&
		     creds->session_token[0] != '\0';
	char date8[9], hash[65], expires_s[24];
	int r;

	*out = (struct sigv4_signed)SIGV4_SIGNED_INIT;
	r = check_request(req, creds, err);
	if (r != 0)
		goto out;
	r = format_date(req->when, out->amz_date, err);
	if (r != 0)
		goto out;
	memcpy(date8, out->amz_date, 8);
	date8[8] = '\0';
	if (req->payload_hash != NULL)
		snprintf(out->payload_hash, sizeof(out->payload_hash), "%s",
			 req->payload_hash);
	else if (presign)
		snprintf(out->payload_hash, sizeof(out->payload_hash), "%s",
			 SIGV4_UNSIGNED_PAYLOAD);
	else
		sigv4_sha256_hex(req->body != NULL ? req->body : "",
				 req->body_len, out->payload_hash);
	buf_addf(&scope, "%s/%s/%s/aws4_request", date8, req->region,
		 req->service);

	if (!presign) {
		extra[nextra++] =
			(struct sigv4_header){ "x-amz-date", out->amz_date };
		if (req->flags & SIGV4_CONTENT_SHA256)
			extra[nextra++] =
				(struct sigv4_header){ "x-amz-content-sha256",
						       out->payload_hash };
		if (token && !(req->flags & SIGV4_TOKEN_UNSIGNED))
			extra[nextra++] =
				(struct sigv4_header){ "x-amz-security-token",
						       creds->session_token };
	}
	r = canonical_headers(req, extra, nextra, &hdrs, &signed_list, err);
	if (r != 0)
		goto out;

	if (presign) {
		static const char *const own[] = {
			"X-Amz-Algorithm",     "X-Amz-Credential",
			"X-Amz-Date",	       "X-Amz-Expires",
			"X-Amz-SignedHeaders", "X-Amz-Signature",
			"X-Amz-Security-Token"
		};

		if (expires < 1 || expires > SIGV4_MAX_EXPIRES) {
			r = ops_fail(err, OPS_E_INVALID, false,
				     "sigv4: presigned URL lifetime %ld s is "
				     "out of range (1 to %d s, 7 days)",
				     expires, SIGV4_MAX_EXPIRES);
			goto out;
		}
		for (size_t i = 0; i < req->nquery; i++) {
			for (size_t j = 0; j < sizeof(own) / sizeof(own[0]);
			     j++) {
				if (strcasecmp(req->query[i].name, own[j]) ==
				    0) {
					r = ops_fail(err, OPS_E_INVALID, false,
						     "sigv4: query parameter "
						     "'%s' is set by the "
						     "signer",
						     own[j]);
					goto out;
				}
			}
		}
		snprintf(expires_s, sizeof(expires_s), "%ld", expires);
		buf_addf(&cred, "%s/%s", creds->access_key_id, buf_str(&scope));
		qextra[nqextra++] =
			(struct sigv4_param){ "X-Amz-Algorithm", ALGORITHM };
		qextra[nqextra++] = (struct sigv4_param){ "X-Amz-Credential",
							  buf_str(&cred) };
		qextra[nqextra++] =
			(struct sigv4_param){ "X-Amz-Date", out->amz_date };
		qextra[nqextra++] =
			(struct sigv4_param){ "X-Amz-Expires", expires_s };
		qextra[nqextra++] =
			(struct sigv4_param){ "X-Amz-SignedHeaders",
					      buf_str(&signed_list) };
		if (token)
			qextra[nqextra++] =
				(struct sigv4_param){ "X-Amz-Security-Token",
						      creds->session_token };
	}
	canonical_query(&query, req->query, req->nquery, qextra, nqextra);

	buf_addf(&creq, "%s\n", req->method);
	if (sigv4_canonical_uri(&creq, req->path, req->flags) != 0) {
		r = ops_fail(err, OPS_E_INVALID, false, "sigv4: path too long");
		goto out;
	}
	buf_addf(&creq, "\n%s\n%s\n%s\n%s", buf_str(&query), buf_str(&hdrs),
		 buf_str(&signed_list), out->payload_hash);
	sigv4_sha256_hex(creq.data, creq.len, hash);
	buf_addf(&sts, "%s\n%s\n%s\n%s", ALGORITHM, out->amz_date,
		 buf_str(&scope), hash);
	compute_signature(creds, date8, req->region, req->service,
			  buf_str(&sts), out->signature);

	if (presign) {
		buf_addf(&query, "&X-Amz-Signature=%s", out->signature);
	} else {
		struct buf auth = BUF_INIT;

		buf_addf(&auth,
			 "%s Credential=%s/%s, SignedHeaders=%s, "
			 "Signature=%s",
			 ALGORITHM, creds->access_key_id, buf_str(&scope),
			 buf_str(&signed_list), out->signature);
		out->authorization = buf_detach(&auth);
	}
	out->query = buf_detach(&query);
	out->signed_headers = buf_detach(&signed_list);
	out->canonical_request = buf_detach(&creq); /* moved to out */
	out->string_to_sign = buf_detach(&sts);
	r = 0;
out:
	if (r != 0)
		sigv4_signed_release(out);
	buf_release(&creq);
	buf_release(&hdrs);
	buf_release(&signed_list);
	buf_release(&query);
	buf_release(&sts);
	buf_release(&scope);
	buf_release(&cred);
	return r;
}

int
sigv4_sign(const struct sigv4_request *req, const struct sigv4_creds *creds,
	   struct sigv4_signed *out, struct ops_err *err)
{
	return sign_common(req, creds, 0, false, out, err);
}

int
sigv4_presign(const struct sigv4_request *req, const struct sigv4_creds *creds,
	      long expires, struct sigv4_signed *out, struct ops_err *err)
{
	return sign_common(req, creds, expires, true, out, err);
}
