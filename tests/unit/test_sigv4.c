/*
 * The SigV4 signer against AWS's published test suite
 * (tests/fixtures/sigv4/aws4_testsuite: canonical request, string to sign
 * and Authorization header of every case), the worked S3 examples of AWS's
 * S3 documentation (exact signatures), and, for many generated requests,
 * byte-for-byte agreement with AWS's own signer, @smithy/signature-v4
 * (tests/peers/sigv4-sign.mjs), on the Authorization header and on
 * presigned URLs.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "storage/sigv4.h"

/* tests/unit/ -> the repository root, from this file's absolute path */
static char *
repo_path(const char *rel)
{
	const char *f = __FILE__;
	const char *end = strstr(f, "/tests/unit/");

	assert_non_null(end);
	return xasprintf("%.*s/%s", (int)(end - f), f, rel);
}

static char *
slurp(const char *path)
{
	FILE *fp = fopen(path, "rb");
	struct buf b = BUF_INIT;
	char chunk[4096];
	size_t n;

	if (fp == NULL)
		fail_msg("cannot open %s", path);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
		assert_int_equal(buf_append(&b, chunk, n), 0);
	fclose(fp);
	return buf_detach(&b);
}

static void
percent_decode(const char *s, size_t len, struct buf *out)
{
	for (size_t i = 0; i < len; i++) {
		unsigned int c;

		if (s[i] == '%' && i + 2 < len &&
		    sscanf(s + i + 1, "%2x", &c) == 1) {
			char ch = (char)c;

			buf_addn(out, &ch, 1);
			i += 2;
		} else {
			buf_addn(out, &s[i], 1);
		}
	}
}

/* A request of the test suite, parsed from its .req file. */
struct suite_req {
	char *method;
	char *path;
	struct sigv4_param query[8];
	size_t nquery;
	struct sigv4_header headers[8];
	size_t nheaders;
	char *body;
	time_t when;
	char *token;
	char *store; /* the file text, cut in place */
	char *qstore[16];
	size_t nq;
};

static time_t
parse_amz_date(const char *s)
{
	struct tm tm = { 0 };

	assert_int_equal(sscanf(s, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year,
				&tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
				&tm.tm_min, &tm.tm_sec),
			 6);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return timegm(&tm);
}

static char *
decoded(struct suite_req *r, const char *s, size_t len)
{
	struct buf b = BUF_INIT;

	percent_decode(s, len, &b);
	r->qstore[r->nq] = buf_detach(&b);
	return r->qstore[r->nq++];
}

static void
parse_req(const char *file, struct suite_req *r)
{
	char *text, *line, *next, *sp, *q;

	memset(r, 0, sizeof(*r));
	text = r->store = slurp(file);
	/* request line: METHOD SP path[?query] SP HTTP/1.1 (paths hold
	 * spaces in some cases) */
	next = strchr(text, '\n');
	assert_non_null(next);
	*next++ = '\0';
	sp = strchr(text, ' ');
	*sp = '\0';
	r->method = text;
	r->path = sp + 1;
	*strrchr(r->path, ' ') = '\0';
	q = strchr(r->path, '?');
	if (q != NULL) {
		*q++ = '\0';
		while (*q != '\0') {
			size_t n = strcspn(q, "&");
			char *eq = memchr(q, '=', n);
			struct sigv4_param *p = &r->query[r->nquery++];

			p->name = decoded(r, q,
					  eq != NULL ? (size_t)(eq - q) : n);
			p->value = eq != NULL
					   ? decoded(r, eq + 1,
						     n - (size_t)(eq - q) - 1)
					   : "";
			q += n;
			if (*q == '&')
				q++;
		}
	}
	/* headers until an empty line; continuation lines fold in */
	for (line = next; line != NULL && *line != '\0'; line = next) {
		char *colon;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (*line == '\0')
			break;
		if (*line == ' ' || *line == '\t') {
			struct sigv4_header *h = &r->headers[r->nheaders - 1];
			/* the value is followed in memory by this line */
			char *v = (char *)h->value;

			v[strlen(v)] = '\n';
			continue;
		}
		colon = strchr(line, ':');
		assert_non_null(colon);
		*colon = '\0';
		if (strcasecmp(line, "X-Amz-Date") == 0) {
			r->when = parse_amz_date(colon + 1);
		} else if (strcasecmp(line, "X-Amz-Security-Token") == 0) {
			r->token = colon + 1;
		} else {
			r->headers[r->nheaders].name = line;
			r->headers[r->nheaders].value = colon + 1;
			r->nheaders++;
		}
	}
	r->body = next != NULL ? next : "";
}

static void
suite_req_release(struct suite_req *r)
{
	for (size_t i = 0; i < r->nq; i++)
		free(r->qstore[i]);
	free(r->store);
}

static const char *const suite_cases[] = {
	"get-header-key-duplicate",
	"get-header-value-multiline",
	"get-header-value-order",
	"get-header-value-trim",
	"get-unreserved",
	"get-utf8",
	"get-vanilla",
	"get-vanilla-empty-query-key",
	"get-vanilla-query",
	"get-vanilla-query-order-encoded",
	"get-vanilla-query-order-key",
	"get-vanilla-query-order-key-case",
	"get-vanilla-query-order-value",
	"get-vanilla-query-unreserved",
	"get-vanilla-utf8-query",
	"get-vanilla-with-session-token",
	"normalize-path/get-relative",
	"normalize-path/get-relative-relative",
	"normalize-path/get-slash",
	"normalize-path/get-slash-dot-slash",
	"normalize-path/get-slash-pointless-dot",
	"normalize-path/get-slashes",
	"normalize-path/get-space",
	"normalize-path/get-special-character",
	"post-header-key-case",
	"post-header-key-sort",
	"post-header-value-case",
	"post-sts-token/post-sts-header-after",
	"post-sts-token/post-sts-header-before",
	"post-vanilla",
	"post-vanilla-empty-query-value",
	"post-vanilla-query",
	"post-x-www-form-urlencoded",
	"post-x-www-form-urlencoded-parameters",
};

static void
test_aws_suite(void **state)
{
	char *dir = repo_path("tests/fixtures/sigv4/aws4_testsuite");

	(void)state;
	for (size_t i = 0; i < sizeof(suite_cases) / sizeof(suite_cases[0]);
	     i++) {
		const char *c = suite_cases[i];
		const char *base = strrchr(c, '/') ? strrchr(c, '/') + 1 : c;
		char *stem = xasprintf("%s/%s/%s", dir, c, base);
		char *file = xasprintf("%s.req", stem);
		char *creq, *sts, *authz;
		struct suite_req r;
		struct sigv4_creds creds = {
			"AKIDEXAMPLE",
			"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL
		};
		struct sigv4_request req = { 0 };
		struct sigv4_signed out = SIGV4_SIGNED_INIT;
		struct ops_err err = OPS_ERR_INIT;

		parse_req(file, &r);
		free(file);
		creds.session_token = r.token;
		req.flags = 0;
		if (strcmp(base, "get-vanilla-with-session-token") == 0)
			creds.session_token =
				"6e86291e8372ff2a2260956d9b8aae1d"
				"763fbf315fa00fa31553b73ebf194267";
		if (strcmp(base, "post-sts-header-after") == 0) {
			creds.session_token = "AQoDYXdzEPT//////////"
					      "wEXAMPLEtc764bNrC9SAPBSM22w"
					      "DOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwA"
					      "eMicRXmxfpSPfIeo"
					      "IYRqTflfKD8YUuwthAx7mSEI/"
					      "qkPpKPi/kMcGdQrmGdeehM4"
					      "IC1NtBmUpp2wUE8phUZampKsburEDy0K"
					      "PkyQDYwT7WZ0wq5V"
					      "SXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVX"
					      "AkiY9q6d+xo0rKwT"
					      "38xVqr7ZD0u0iPPkUL64lIZbqBAz+"
					      "scqKmlzm8FDrypNC9Yj"
					      "c8fPOLn9FX9KSYvKTr4rvx3iSIlTJabI"
					      "Qwj2ICCR/oLxBA==";
			req.flags = SIGV4_TOKEN_UNSIGNED;
		}
		req.method = r.method;
		req.path = r.path;
		req.query = r.query;
		req.nquery = r.nquery;
		req.headers = r.headers;
		req.nheaders = r.nheaders;
		req.body = r.body;
		req.body_len = strlen(r.body);
		req.when = r.when;
		req.region = "us-east-1";
		req.service = "service";
		creq = xasprintf("%s.creq", stem);
		sts = xasprintf("%s.sts", stem);
		authz = xasprintf("%s.authz", stem);
		{
			char *want_creq = slurp(creq);
			char *want_sts = slurp(sts);
			char *want_authz = slurp(authz);

			if (sigv4_sign(&req, &creds, &out, &err) != 0)
				fail_msg("%s: %s", c, err.msg);
			if (strcmp(out.canonical_request, want_creq) != 0)
				fail_msg("%s: canonical request\n%s\nwant\n%s",
					 c, out.canonical_request, want_creq);
			if (strcmp(out.string_to_sign, want_sts) != 0)
				fail_msg("%s: string to sign\n%s\nwant\n%s", c,
					 out.string_to_sign, want_sts);
			if (strcmp(out.authorization, want_authz) != 0)
				fail_msg("%s: authorization\n%s\nwant\n%s", c,
					 out.authorization, want_authz);
			free(want_creq);
			free(want_sts);
			free(want_authz);
		}
		sigv4_signed_release(&out);
		free(creq);
		free(sts);
		free(authz);
		free(stem);
		suite_req_release(&r);
	}
	free(dir);
}

/* AWS's S3 examples: examplebucket, 24 May 2013, us-east-1 */
static const struct sigv4_creds s3_creds = {
	"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL
};
#define S3_WHEN 1369353600 /* 20130524T000000Z */
#define S3_HOST "examplebucket.s3.amazonaws.com"
#define EMPTY_SHA \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static void
s3_example(const char *method, const char *raw_path,
	   const struct sigv4_param *q, size_t nq,
	   const struct sigv4_header *extra, size_t nextra, const char *body,
	   const char *want_signed, const char *want_sig)
{
	struct sigv4_header h[4] = { { "Host", S3_HOST } };
	struct buf path = BUF_INIT;
	struct sigv4_request req = { 0 };
	struct sigv4_signed out = SIGV4_SIGNED_INIT;
	struct ops_err err = OPS_ERR_INIT;
	char *auth;

	for (size_t i = 0; i < nextra; i++)
		h[i + 1] = extra[i];
	assert_int_equal(sigv4_encode_path(&path, raw_path, strlen(raw_path)),
			 0);
	req.method = method;
	req.path = buf_str(&path);
	req.query = q;
	req.nquery = nq;
	req.headers = h;
	req.nheaders = nextra + 1;
	req.body = body;
	req.body_len = strlen(body);
	req.when = S3_WHEN;
	req.region = "us-east-1";
	req.service = "s3";
	req.flags = SIGV4_S3;
	if (sigv4_sign(&req, &s3_creds, &out, &err) != 0)
		fail_msg("%s", err.msg);
	assert_string_equal(out.amz_date, "20130524T000000Z");
	assert_string_equal(out.signature, want_sig);
	auth = xasprintf("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/"
			 "20130524/us-east-1/s3/aws4_request, SignedHeaders=%s,"
			 " Signature=%s",
			 want_signed, want_sig);
	assert_string_equal(out.authorization, auth);
	free(auth);
	sigv4_signed_release(&out);
	buf_release(&path);
}

static void
test_s3_documented_examples(void **state)
{
	const struct sigv4_header range[] = { { "Range", "bytes=0-9" } };
	const struct sigv4_header put[] = {
		{ "Date", "Fri, 24 May 2013 00:00:00 GMT" },
		{ "x-amz-storage-class", "REDUCED_REDUNDANCY" },
	};
	const struct sigv4_param lifecycle[] = { { "lifecycle", NULL } };
	const struct sigv4_param list[] = { { "prefix", "J" },
					    { "max-keys", "2" } };

	(void)state;
	/* GET Object with a Range */
	s3_example("GET", "/test.txt", NULL, 0, range, 1, "",
		   "host;range;x-amz-content-sha256;x-amz-date",
		   "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036"
		   "bdb41");
	/* PUT Object: a '$' in the key, a signed body */
	s3_example("PUT", "/test$file.text", NULL, 0, put, 2,
		   "Welcome to Amazon S3.",
		   "date;host;x-amz-content-sha256;x-amz-date;"
		   "x-amz-storage-class",
		   "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece"
		   "108bd");
	/* GET Bucket Lifecycle: a parameter without a value */
	s3_example("GET", "/", lifecycle, 1, NULL, 0, "",
		   "host;x-amz-content-sha256;x-amz-date",
		   "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a01367"
		   "83543");
	/* GET Bucket (List Objects): parameters given out of order */
	s3_example("GET", "/", list, 2, NULL, 0, "",
		   "host;x-amz-content-sha256;x-amz-date",
		   "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69"
		   "dc6f7");
}

static void
test_s3_documented_presigned_url(void **state)
{
	const struct sigv4_header h[] = { { "host", S3_HOST } };
	struct sigv4_request req = { 0 };
	struct sigv4_signed out = SIGV4_SIGNED_INIT;
	struct ops_err err = OPS_ERR_INIT;
	char *url;

	(void)state;
	req.method = "GET";
	req.path = "/test.txt";
	req.headers = h;
	req.nheaders = 1;
	req.when = S3_WHEN;
	req.region = "us-east-1";
	req.service = "s3";
	req.flags = SIGV4_S3;
	if (sigv4_presign(&req, &s3_creds, 86400, &out, &err) != 0)
		fail_msg("%s", err.msg);
	url = xasprintf("https://%s%s?%s", S3_HOST, req.path, out.query);
	assert_string_equal(
		url, "https://examplebucket.s3.amazonaws.com/test.txt"
		     "?X-Amz-Algorithm=AWS4-HMAC-SHA256"
		     "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
		     "us-east-1%2Fs3%2Faws4_request"
		     "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"
		     "&X-Amz-SignedHeaders=host&X-Amz-Signature="
		     "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f"
		     "604d404");
	assert_null(out.authorization);
	assert_string_equal(out.payload_hash, "UNSIGNED-PAYLOAD");
	free(url);
	sigv4_signed_release(&out);
}

static void
test_path_encoding(void **state)
{
	static const struct {
		const char *raw, *wire;
	} enc[] = {
		{ "/", "/" },
		{ "/bucket/a b(1).txt", "/bucket/a%20b%281%29.txt" },
		{ "/b/dir//./../k~-_.", "/b/dir//./../k~-_." },
		{ "/b/\xc3\xa9+&=?#%", "/b/%C3%A9%2B%26%3D%3F%23%25" },
		{ "/b/!*'()@:$,;", "/b/%21%2A%27%28%29%40%3A%24%2C%3B" },
	};
	static const struct {
		const char *wire;
		unsigned flags;
		const char *canon;
	} canon[] = {
		/* S3: decoded and encoded once, dot segments kept */
		{ "/b/dir//./../k", SIGV4_S3, "/b/dir//./../k" },
		{ "/b/a(b).txt", SIGV4_S3, "/b/a%28b%29.txt" },
		{ "/b/a%28b%29.txt", SIGV4_S3, "/b/a%28b%29.txt" },
		{ "/b/a%2fb", SIGV4_S3, "/b/a%2Fb" },
		{ "/b/100%", SIGV4_S3, "/b/100%25" },
		{ "", SIGV4_S3, "/" },
		/* other services: normalised, then encoded again */
		{ "/a%20b/./c/../d//", 0, "/a%2520b/d/" },
		{ "/..", 0, "/" },
		{ "/a/.", 0, "/a" },
		{ "/a/b/..", 0, "/a" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(enc) / sizeof(enc[0]); i++) {
		struct buf b = BUF_INIT;

		assert_int_equal(
			sigv4_encode_path(&b, enc[i].raw, strlen(enc[i].raw)),
			0);
		assert_string_equal(buf_str(&b), enc[i].wire);
		buf_release(&b);
	}
	for (size_t i = 0; i < sizeof(canon) / sizeof(canon[0]); i++) {
		struct buf b = BUF_INIT;

		assert_int_equal(
			sigv4_canonical_uri(&b, canon[i].wire, canon[i].flags),
			0);
		assert_string_equal(buf_str(&b), canon[i].canon);
		buf_release(&b);
	}
}

/* a session token: sent and signed as a header, in the query when
 * presigned; the Authorization header never holds a secret */
static void
test_session_token_and_secrets(void **state)
{
	const struct sigv4_header h[] = { { "host", S3_HOST } };
	const struct sigv4_creds creds = { "AKIDEXAMPLE", "SECRETsecret/+KEY",
					   "TOKEN/with+chars=" };
	struct sigv4_request req = { 0 };
	struct sigv4_signed out = SIGV4_SIGNED_INIT;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	req.method = "GET";
	req.path = "/k";
	req.headers = h;
	req.nheaders = 1;
	req.when = S3_WHEN;
	req.region = "us-east-1";
	req.service = "s3";
	req.flags = SIGV4_S3;
	assert_int_equal(sigv4_sign(&req, &creds, &out, &err), 0);
	assert_non_null(strstr(out.authorization,
			       "SignedHeaders=host;x-amz-content-sha256;"
			       "x-amz-date;x-amz-security-token,"));
	assert_non_null(strstr(out.canonical_request,
			       "\nx-amz-security-token:TOKEN/with+chars=\n"));
	assert_null(strstr(out.authorization, "SECRET"));
	assert_null(strstr(out.canonical_request, "SECRET"));
	assert_null(strstr(out.string_to_sign, "SECRET"));
	assert_string_equal(out.payload_hash, EMPTY_SHA);
	sigv4_signed_release(&out);
	assert_int_equal(sigv4_presign(&req, &creds, 60, &out, &err), 0);
	assert_non_null(strstr(out.query, "&X-Amz-Security-Token="
					  "TOKEN%2Fwith%2Bchars%3D&"));
	assert_null(strstr(out.query, "SECRET"));
	sigv4_signed_release(&out);
	/* the same request signed twice gives the same signature, and a
	 * different secret a different one */
	{
		struct sigv4_signed a = SIGV4_SIGNED_INIT;
		struct sigv4_signed b = SIGV4_SIGNED_INIT;
		const struct sigv4_creds other = { "AKIDEXAMPLE",
						   "SECRETsecret/+KEz",
						   "TOKEN/with+chars=" };

		assert_int_equal(sigv4_sign(&req, &creds, &a, &err), 0);
		assert_int_equal(sigv4_sign(&req, &creds, &b, &err), 0);
		assert_string_equal(a.signature, b.signature);
		sigv4_signed_release(&b);
		assert_int_equal(sigv4_sign(&req, &other, &b, &err), 0);
		assert_string_not_equal(a.signature, b.signature);
		sigv4_signed_release(&a);
		sigv4_signed_release(&b);
	}
}

static void
test_rejects_bad_input(void **state)
{
	const struct sigv4_header host[] = { { "host", S3_HOST } };
	const struct sigv4_header nohost[] = { { "range", "bytes=0-1" } };
	const struct sigv4_header own[] = { { "host", S3_HOST },
					    { "X-Amz-Date", "x" } };
	const struct sigv4_header badname[] = { { "host", S3_HOST },
						{ "bad name", "x" } };
	const struct sigv4_param sig[] = { { "X-Amz-Signature", "0" } };
	const struct sigv4_creds nosecret = { "AK", "", NULL };
	const struct sigv4_creds slashkey = { "A/K", "s", NULL };
	struct sigv4_request good = { 0 }, req;
	struct sigv4_signed out = SIGV4_SIGNED_INIT;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	good.method = "GET";
	good.path = "/k";
	good.headers = host;
	good.nheaders = 1;
	good.when = S3_WHEN;
	good.region = "us-east-1";
	good.service = "s3";
	good.flags = SIGV4_S3;
#define BAD(call, needle)                                             \
	do {                                                          \
		ops_err_clear(&err);                                  \
		assert_int_equal(call, OPS_E_INVALID);                \
		assert_int_equal(err.code, OPS_E_INVALID);            \
		if (strstr(err.msg, needle) == NULL)                  \
			fail_msg("'%s' lacks '%s'", err.msg, needle); \
		assert_null(strstr(err.msg, "wJalr"));                \
		assert_null(out.authorization);                       \
		assert_null(out.query);                               \
	} while (0)

	BAD(sigv4_presign(&good, &s3_creds, 0, &out, &err), "1 to 604800");
	BAD(sigv4_presign(&good, &s3_creds, SIGV4_MAX_EXPIRES + 1, &out, &err),
	    "604801 s is out of range");
	req = good;
	req.query = sig;
	req.nquery = 1;
	BAD(sigv4_presign(&req, &s3_creds, 60, &out, &err), "X-Amz-Signature");
	req = good;
	req.headers = nohost;
	BAD(sigv4_sign(&req, &s3_creds, &out, &err), "host header is missing");
	req = good;
	req.headers = own;
	req.nheaders = 2;
	BAD(sigv4_sign(&req, &s3_creds, &out, &err), "'x-amz-date' is set by");
	req.headers = badname;
	BAD(sigv4_sign(&req, &s3_creds, &out, &err), "not an HTTP token");
	req = good;
	req.payload_hash = "E3B0";
	BAD(sigv4_sign(&req, &s3_creds, &out, &err), "payload hash");
	req = good;
	req.path = "k";
	BAD(sigv4_sign(&req, &s3_creds, &out, &err), "start with '/'");
	req.path = "/a?b";
	BAD(sigv4_sign(&req, &s3_creds, &out, &err), "'?'");
	req = good;
	req.region = "us east";
	BAD(sigv4_sign(&req, &s3_creds, &out, &err), "region");
	req.region = "";
	BAD(sigv4_sign(&req, &s3_creds, &out, &err), "region");
	req = good;
	req.service = NULL;
	BAD(sigv4_sign(&req, &s3_creds, &out, &err), "service");
	req = good;
	req.method = "GE T";
	BAD(sigv4_sign(&req, &s3_creds, &out, &err), "method");
	req = good;
	req.when = -1;
	BAD(sigv4_sign(&req, &s3_creds, &out, &err), "signing time");
	BAD(sigv4_sign(&good, &nosecret, &out, &err), "secret access key");
	BAD(sigv4_sign(&good, &slashkey, &out, &err), "access key id");
	BAD(sigv4_sign(&good, NULL, &out, &err), "access key id");
#undef BAD
	/* and the good request passes */
	assert_int_equal(sigv4_sign(&good, &s3_creds, &out, &err), 0);
	sigv4_signed_release(&out);
	sigv4_signed_release(NULL);
}

/* No static state: threads signing at once get what one thread gets. */
struct sign_job {
	const char *secret;
	char want[65];
	bool ok;
};

static void
sign_once(const char *secret, char sig[65])
{
	const struct sigv4_header h[] = { { "host", S3_HOST },
					  { "Range", "bytes=0-9" } };
	const struct sigv4_param q[] = { { "b", "2" }, { "a", "1" } };
	const struct sigv4_creds creds = { "AKIDEXAMPLE", secret, "tok" };
	struct sigv4_request req = { 0 };
	struct sigv4_signed out = SIGV4_SIGNED_INIT;
	struct ops_err err = OPS_ERR_INIT;

	req.method = "GET";
	req.path = "/k";
	req.query = q;
	req.nquery = 2;
	req.headers = h;
	req.nheaders = 2;
	req.when = S3_WHEN;
	req.region = "us-east-1";
	req.service = "s3";
	req.flags = SIGV4_S3;
	if (sigv4_sign(&req, &creds, &out, &err) != 0)
		sig[0] = '\0';
	else
		memcpy(sig, out.signature, 65);
	sigv4_signed_release(&out);
}

static void *
sign_worker(void *arg)
{
	struct sign_job *j = arg;

	j->ok = true;
	for (int i = 0; i < 300; i++) {
		char sig[65];

		sign_once(j->secret, sig);
		if (strcmp(sig, j->want) != 0)
			j->ok = false;
	}
	return NULL;
}

static void
test_threads(void **state)
{
	static const char *const secrets[] = { "secret-one", "secret-two",
					       "secret-three", "secret-four" };
	struct sign_job jobs[4];
	pthread_t th[4];

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		jobs[i].secret = secrets[i];
		sign_once(secrets[i], jobs[i].want);
		assert_int_equal(strlen(jobs[i].want), 64);
	}
	assert_string_not_equal(jobs[0].want, jobs[1].want);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(
			pthread_create(&th[i], NULL, sign_worker, &jobs[i]), 0);
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_true(jobs[i].ok);
	}
}

/* ---- differential test against @smithy/signature-v4 ---- */

static uint64_t rng_state;

static uint32_t
rnd(uint32_t n)
{
	/* xorshift64*: reproducible from the printed seed */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ULL) >> 33) % n;
}

/* Pieces of names and values: unreserved, reserved, '%', blanks, UTF-8
 * of two, three and four bytes. */
static const char *const atoms[] = {
	"a",
	"Z",
	"0",
	"-",
	"_",
	".",
	"~",
	"!",
	"*",
	"'",
	"(",
	")",
	";",
	":",
	"@",
	"&",
	"=",
	"+",
	"$",
	",",
	"/",
	"?",
	"#",
	"[",
	"]",
	"%",
	"%20",
	" ",
	"\xc3\xa9",
	"\xe1\x88\xb4",
	"\xf0\x9f\x98\x80",
	"key",
	"Value",
};

static void
rnd_text(struct buf *b, size_t max_atoms, bool allow_slash)
{
	size_t n = rnd((uint32_t)max_atoms + 1);

	for (size_t i = 0; i < n; i++) {
		const char *a = atoms[rnd(sizeof(atoms) / sizeof(atoms[0]))];

		if (!allow_slash && strchr(a, '/') != NULL)
			a = "x";
		buf_adds(b, a);
	}
}

static char *
rnd_segment_path(bool s3)
{
	struct buf b = BUF_INIT;
	size_t n = 1 + rnd(4);

	for (size_t i = 0; i < n; i++) {
		buf_adds(&b, "/");
		switch (rnd(8)) {
		case 0:
			buf_adds(&b, rnd(2) ? "." : "..");
			break;
		case 1:
			break; /* an empty segment: "//" */
		default:
			rnd_text(&b, 5, false);
		}
	}
	if (!s3 && rnd(3) == 0)
		buf_adds(&b, "/");
	return buf_detach(&b);
}

static json_t *
pair(const char *k, const char *v)
{
	return json_pack("[s,s]", k, v);
}

struct gen_case {
	char *raw_path;
	char *host;
	const char *method, *region, *service;
	bool s3, unsigned_payload;
	char *names[6], *values[6];
	size_t nq;
	char *hnames[5], *hvalues[5];
	size_t nh;
	unsigned char body[64];
	size_t body_len;
	char ak[24], sk[48], token[48];
	bool has_token;
	time_t when;
	long expires;
};

static void
gen(struct gen_case *c)
{
	static const char *const methods[] = { "GET", "PUT", "POST", "DELETE",
					       "HEAD" };
	static const char *const regions[] = { "us-east-1", "eu-west-3",
					       "auto" };
	static const char *const services[] = { "service", "sts",
						"execute-api" };
	static const char *const hosts[] = { "bucket.s3.amazonaws.com",
					     "127.0.0.1:4569",
					     "storage.googleapis.com" };
	static const char *const qnames[] = { "prefix", "uploadId", "a", "A",
					      "list-type" };
	static const char *const hpool[] = { "Content-Type",
					     "X-Amz-Meta-Owner",
					     "x-amz-server-side-encryption",
					     "Range",
					     "X-Apexops-Trace",
					     "content-md5",
					     "If-Match" };
	static const char keychars[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		"abcdefghijklmnopqrstuvwxyz0123456789/+=";
	bool used[7] = { false };

	memset(c, 0, sizeof(*c));
	c->s3 = rnd(2) == 0;
	c->raw_path = rnd_segment_path(c->s3);
	c->host = xstrdup(hosts[rnd(3)]);
	c->method = methods[rnd(5)];
	c->region = regions[rnd(3)];
	c->service = c->s3 ? "s3" : services[rnd(3)];
	c->unsigned_payload = c->s3 && rnd(3) == 0;
	c->nq = rnd(7);
	for (size_t i = 0; i < c->nq; i++) {
		struct buf b = BUF_INIT;

		/* names repeat often (duplicates), values are often empty */
		if (rnd(2))
			buf_adds(&b, qnames[rnd(5)]);
		else
			rnd_text(&b, 3, true);
		if (b.len == 0)
			buf_adds(&b, "k");
		c->names[i] = buf_detach(&b);
		rnd_text(&b, rnd(2) ? 0 : 6, true);
		c->values[i] = buf_detach(&b);
	}
	for (size_t i = 0, n = rnd(5); i < n; i++) {
		size_t k = rnd(7);
		struct buf b = BUF_INIT;

		if (used[k])
			continue;
		used[k] = true;
		c->hnames[c->nh] = xstrdup(hpool[k]);
		if (rnd(2))
			buf_adds(&b, rnd(2) ? "  " : "\t");
		rnd_text(&b, 4, true);
		if (rnd(2))
			buf_adds(&b, " \t  mid  ");
		rnd_text(&b, 3, true);
		if (rnd(2))
			buf_adds(&b, "   ");
		c->hvalues[c->nh++] = buf_detach(&b);
	}
	c->body_len = rnd(65);
	for (size_t i = 0; i < c->body_len; i++)
		c->body[i] = (unsigned char)rnd(256);
	snprintf(c->ak, sizeof(c->ak), "AKID%08u", rnd(100000000));
	for (size_t i = 0; i < 40; i++)
		c->sk[i] = keychars[rnd(sizeof(keychars) - 1)];
	c->has_token = rnd(2) == 0;
	for (size_t i = 0; i < 44; i++)
		c->token[i] = keychars[rnd(sizeof(keychars) - 1)];
	/* 2010 to 2037 */
	c->when = (time_t)1262304000 + (time_t)rnd(880000000);
	c->expires = 1 + (long)rnd(SIGV4_MAX_EXPIRES);
}

static void
gen_release(struct gen_case *c)
{
	free(c->raw_path);
	free(c->host);
	for (size_t i = 0; i < c->nq; i++) {
		free(c->names[i]);
		free(c->values[i]);
	}
	for (size_t i = 0; i < c->nh; i++) {
		free(c->hnames[i]);
		free(c->hvalues[i]);
	}
}

static json_t *
gen_json(const struct gen_case *c)
{
	json_t *q = json_array(), *h = json_array();
	char *b64 = xmalloc(4 * (sizeof(c->body) / 3 + 1) + 1);

	for (size_t i = 0; i < c->nq; i++)
		json_array_append_new(q, pair(c->names[i], c->values[i]));
	for (size_t i = 0; i < c->nh; i++)
		json_array_append_new(h, pair(c->hnames[i], c->hvalues[i]));
	EVP_EncodeBlock((unsigned char *)b64, c->body, (int)c->body_len);
	{
		json_t *o = json_pack(
			"{s:s, s:s, s:s, s:b, s:o, s:o, s:s, s:b, s:I, s:s, "
			"s:s, s:s, s:s, s:s?, s:I}",
			"method", c->method, "host", c->host, "raw_path",
			c->raw_path, "s3", c->s3, "query", q, "headers", h,
			"body_b64", b64, "unsigned", c->unsigned_payload,
			"when", (json_int_t)c->when, "region", c->region,
			"service", c->service, "ak", c->ak, "sk", c->sk,
			"token", c->has_token ? c->token : NULL, "expires",
			(json_int_t)c->expires);

		assert_non_null(o);
		free(b64);
		return o;
	}
}

#define NCASES 400

static void
test_differential_smithy(void **state)
{
	struct gen_case *cases = xcalloc(NCASES, sizeof(*cases));
	json_t *all = json_array(), *ref;
	json_error_t jerr;
	char file[] = "/tmp/sigv4-diff.XXXXXX";
	char *script = repo_path("tests/peers/sigv4-sign.mjs"), *cmd, *text;
	struct buf outb = BUF_INIT;
	uint64_t seed;
	FILE *p;
	int fd;

	(void)state;
	assert_int_equal(getrandom(&seed, sizeof(seed), 0), sizeof(seed));
	if (getenv("OPS_TEST_SEED") != NULL)
		seed = strtoull(getenv("OPS_TEST_SEED"), NULL, 10);
	rng_state = seed | 1;
	print_message("seed %llu (OPS_TEST_SEED=... repeats a run)\n",
		      (unsigned long long)seed);
	for (size_t i = 0; i < NCASES; i++) {
		gen(&cases[i]);
		json_array_append_new(all, gen_json(&cases[i]));
	}
	fd = mkstemp(file);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(json_dump_file(all, file, 0), 0);
	cmd = xasprintf("node --no-warnings '%s' '%s'", script, file);
	p = popen(cmd, "r");
	assert_non_null(p);
	{
		char chunk[8192];
		size_t n;

		while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
			buf_addn(&outb, chunk, n);
	}
	assert_int_equal(pclose(p), 0); /* node and the SDK are installed */
	unlink(file);
	text = buf_detach(&outb);
	ref = json_loads(text, 0, &jerr);
	if (ref == NULL)
		fail_msg("bad output of %s: %s", script, jerr.text);
	assert_int_equal(json_array_size(ref), NCASES);

	for (size_t i = 0; i < NCASES; i++) {
		struct gen_case *c = &cases[i];
		json_t *r = json_array_get(ref, i);
		const char *want_path =
			json_string_value(json_object_get(r, "path"));
		const char *want_auth =
			json_string_value(json_object_get(r, "authorization"));
		const char *want_url =
			json_string_value(json_object_get(r, "url"));
		struct sigv4_param q[6];
		struct sigv4_header h[6];
		struct sigv4_creds creds = { c->ak, c->sk,
					     c->has_token ? c->token : NULL };
		struct sigv4_request req = { 0 };
		struct sigv4_signed out = SIGV4_SIGNED_INIT;
		struct ops_err err = OPS_ERR_INIT;
		struct buf wire = BUF_INIT;
		char *url;

		assert_int_equal(sigv4_encode_path(&wire, c->raw_path,
						   strlen(c->raw_path)),
				 0);
		if (strcmp(buf_str(&wire), want_path) != 0)
			fail_msg("case %zu (seed %llu): wire path %s, SDK %s",
				 i, (unsigned long long)seed, buf_str(&wire),
				 want_path);
		for (size_t j = 0; j < c->nq; j++)
			q[j] = (struct sigv4_param){ c->names[j],
						     c->values[j] };
		for (size_t j = 0; j < c->nh; j++)
			h[j] = (struct sigv4_header){ c->hnames[j],
						      c->hvalues[j] };
		h[c->nh] = (struct sigv4_header){ "host", c->host };
		req.method = c->method;
		req.path = buf_str(&wire);
		req.query = q;
		req.nquery = c->nq;
		req.headers = h;
		req.nheaders = c->nh + 1;
		req.payload_hash =
			c->unsigned_payload ? SIGV4_UNSIGNED_PAYLOAD : NULL;
		req.body = c->body;
		req.body_len = c->body_len;
		req.when = c->when;
		req.region = c->region;
		req.service = c->service;
		req.flags = c->s3 ? SIGV4_S3 : 0;
		if (sigv4_sign(&req, &creds, &out, &err) != 0)
			fail_msg("case %zu: %s", i, err.msg);
		if (strcmp(out.authorization, want_auth) != 0)
			fail_msg("case %zu (seed %llu): authorization\n%s\n"
				 "SDK\n%s\ncanonical request\n%s",
				 i, (unsigned long long)seed, out.authorization,
				 want_auth, out.canonical_request);
		sigv4_signed_release(&out);
		req.payload_hash = NULL;
		if (sigv4_presign(&req, &creds, c->expires, &out, &err) != 0)
			fail_msg("case %zu: %s", i, err.msg);
		url = xasprintf("https://%s%s?%s", c->host, req.path,
				out.query);
		if (strcmp(url, want_url) != 0)
			fail_msg("case %zu (seed %llu): presigned URL\n%s\n"
				 "SDK\n%s\ncanonical request\n%s",
				 i, (unsigned long long)seed, url, want_url,
				 out.canonical_request);
		free(url);
		sigv4_signed_release(&out);
		buf_release(&wire);
		gen_release(c);
	}
	json_decref(ref);
	json_decref(all);
	free(text);
	free(cmd);
	free(script);
	free(cases);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_aws_suite),
		cmocka_unit_test(test_s3_documented_examples),
		cmocka_unit_test(test_s3_documented_presigned_url),
		cmocka_unit_test(test_path_encoding),
		cmocka_unit_test(test_session_token_and_secrets),
		cmocka_unit_test(test_rejects_bad_input),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_differential_smithy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
