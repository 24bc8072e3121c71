/*
 * The S3 client against s3rver behind a SigV4-checking front that uses
 * AWS's own signer (tests/peers/s3-sigv4-front.mjs, started here), every
 * object read back with the official SDK (tests/peers/s3-sdk-get.mjs) and
 * compared byte for byte: single PUT with SSE, multipart, HEAD, DELETE,
 * presigned GET, a wrong secret, a session token, virtual-hosted
 * addressing, a GCS HMAC key. Plus the configuration and addressing rules
 * and the XML reader, which need no peer.
 *
 * Requests go through src/http (s3_send_http) as in production, counted
 * by a wrapper; only the virtual-hosted test, whose host names must be
 * rerouted to 127.0.0.1, sends through a libcurl transport of its own.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "aws_env.h"
#include "core/buf.h"
#include "core/xalloc.h"
#include "storage/s3.h"

static char root[4096];
static char tmpdir[] = "/tmp/s3-it.XXXXXX";
static pid_t front_pid = -1;
static int front_port;
static char endpoint[64];

/* ---- the front, started and stopped here ---- */

static int
start_front(void **state)
{
	char *log, *dir, *script;
	const char *f = __FILE__;
	const char *end = strstr(f, "/tests/integration/");

	(void)state;
	assert_non_null(end);
	snprintf(root, sizeof(root), "%.*s", (int)(end - f), f);
	assert_non_null(mkdtemp(tmpdir));
	log = xasprintf("%s/front.log", tmpdir);
	dir = xasprintf("%s/data", tmpdir);
	script = xasprintf("%s/tests/peers/s3-sigv4-front.mjs", root);
	front_pid = fork();
	assert_true(front_pid >= 0);
	if (front_pid == 0) {
		FILE *out = freopen(log, "w", stdout);

		/* the front dies with this test, even when it crashes */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (out == NULL || dup2(fileno(stdout), 2) < 0)
			_exit(127);
		setenv("PORT", "0", 1);
		setenv("S3_DIR", dir, 1);
		setenv("BUCKETS", "exports,vbucket,gcs-bucket", 1);
		setenv("EXTRA_AK", "GOOG1EXAMPLEHMACKEY", 1);
		setenv("EXTRA_SK", "gcsHmacSecret/+x", 1);
		execlp("node", "node", "--openssl-legacy-provider",
		       "--no-warnings", script, (char *)NULL);
		_exit(127);
	}
	/* wait for "s3 front on 127.0.0.1:PORT", or the process to die */
	for (int i = 0; i < 300 && front_port == 0; i++) {
		FILE *fp = fopen(log, "r");
		char line[256];
		int status;

		if (fp != NULL) {
			while (fgets(line, sizeof(line), fp) != NULL)
				if (sscanf(line, "s3 front on 127.0.0.1:%d",
					   &front_port) == 1)
					break;
			fclose(fp);
		}
		if (front_port != 0)
			break;
		if (waitpid(front_pid, &status, WNOHANG) == front_pid)
			fail_msg("the S3 front exited; see %s", log);
		usleep(100 * 1000);
	}
	if (front_port == 0)
		fail_msg("the S3 front did not start in 30 s; see %s", log);
	snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", front_port);
	free(log);
	free(dir);
	free(script);
	return 0;
}

static int
stop_front(void **state)
{
	char *cmd;

	(void)state;
	if (front_pid > 0) {
		kill(front_pid, SIGTERM);
		waitpid(front_pid, NULL, 0);
	}
	cmd = xasprintf("rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	free(cmd);
	return 0;
}

/* ---- a counting wrapper of s3_send_http, and a libcurl transport for
 * hosts that need rerouting to 127.0.0.1 ---- */

struct transport {
	struct http_client *http; /* src/http, for what it can send */
	bool all_curl;		  /* virtual-hosted names: reroute all */
	int puts, posts, heads;	  /* counters, to see multipart happen */
	char last_sse[32];	  /* x-amz-server-side-encryption sent */
};

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	buf_addn(arg, p, size * n);
	return size * n;
}

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	struct s3_wire_response *r = arg;
	size_t len = size * n;

	if (len > 5 && strncasecmp(p, "ETag:", 5) == 0) {
		const char *v = p + 5;
		size_t vl;

		while (*v == ' ')
			v++;
		vl = strcspn(v, "\r\n");
		free(r->etag);
		r->etag = xstrndup(v, vl);
	}
	return len;
}

static int
send_test(void *arg, const struct s3_wire_request *req,
	  struct s3_wire_response *resp, struct ops_err *err)
{
	struct transport *t = arg;
	struct curl_slist *h = NULL, *connect = NULL;
	char to[64];
	CURL *c;
	CURLcode cc;

	if (strcmp(req->method, "PUT") == 0)
		t->puts++;
	else if (strcmp(req->method, "POST") == 0)
		t->posts++;
	else if (strcmp(req->method, "HEAD") == 0)
		t->heads++;
	for (const char *const *l = req->headers; *l != NULL; l++) {
		if (strncasecmp(*l, "x-amz-server-side-encryption: ", 30) == 0)
			snprintf(t->last_sse, sizeof(t->last_sse), "%s",
				 *l + 30);
	}
	if (!t->all_curl)
		return s3_send_http(t->http, req, resp, err);

	c = curl_easy_init();
	assert_non_null(c);
	for (const char *const *l = req->headers; *l != NULL; l++)
		h = curl_slist_append(h, *l);
	h = curl_slist_append(h, "Expect:");
	snprintf(to, sizeof(to), "::127.0.0.1:%d", front_port);
	connect = curl_slist_append(connect, to);
	curl_easy_setopt(c, CURLOPT_URL, req->url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECT_TO, connect);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp->body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
	if (strcmp(req->method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
		if (req->body_len > 0 || strcmp(req->method, "PUT") == 0 ||
		    strcmp(req->method, "POST") == 0) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)req->body_len);
			curl_easy_setopt(c, CURLOPT_POSTFIELDS,
					 req->body != NULL ? req->body : "");
		}
	}
	cc = curl_easy_perform(c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
	curl_slist_free_all(h);
	curl_slist_free_all(connect);
	curl_easy_cleanup(c);
	if (cc != CURLE_OK)
		return ops_fail(err, OPS_E_HTTP, true, "test transport: %s",
				curl_easy_strerror(cc));
	return 0;
}

/* ---- helpers ---- */

/* A client made from o with short retry delays, sending through t when
 * t is not NULL. */
static struct s3_client *
client_with(struct s3_opts *o, struct transport *t)
{
	struct http_policy p;
	struct s3_client *c = NULL;
	struct ops_err err = OPS_ERR_INIT;

	http_policy_default(&p);
	p.base_delay_ms = 10;
	p.max_delay_ms = 20;
	o->policy = &p;
	if (s3_client_new(o, &c, &err) != 0)
		fail_msg("s3_client_new: %s", err.msg);
	if (t != NULL) {
		assert_int_equal(http_client_new(&p, &t->http, &err), 0);
		s3_client_set_send(c, send_test, t);
	}
	return c;
}

static struct s3_client *
client_for(const char *ep, const char *bucket, const char *region,
	   const char *ak, const char *sk, const char *token,
	   struct transport *t)
{
	struct s3_opts o = { 0 };

	o.endpoint = ep;
	o.region = region;
	o.bucket = bucket;
	o.access_key_id = ak;
	o.secret_access_key = sk;
	o.session_token = token;
	o.sse = "AES256";
	o.multipart_threshold = S3_MIN_PART_SIZE;
	o.part_size = S3_MIN_PART_SIZE;
	return client_with(&o, t);
}

static struct s3_client *
client(struct transport *t)
{
	return client_for(endpoint, "exports", "us-east-1", "S3RVER", "S3RVER",
			  NULL, t);
}

/* Read bucket/key back with the AWS SDK; *out gets the bytes. Run
 * without a shell: keys hold quotes. */
static int
sdk_get(const char *region, const char *ak, const char *sk, const char *bucket,
	const char *key, struct buf *out)
{
	char *file = xasprintf("%s/sdk-get.out", tmpdir);
	char *script = xasprintf("%s/tests/peers/s3-sdk-get.mjs", root);
	int status = -1;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		execlp("node", "node", "--no-warnings", script, endpoint,
		       region, ak, sk, bucket, key, file, (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		FILE *fp = fopen(file, "rb");
		char chunk[65536];
		size_t n;

		assert_non_null(fp);
		while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
			buf_addn(out, chunk, n);
		fclose(fp);
		unlink(file);
		status = 0;
	}
	free(script);
	free(file);
	return status;
}

static void
assert_sdk_reads(const char *region, const char *ak, const char *sk,
		 const char *bucket, const char *key, const void *want,
		 size_t len)
{
	struct buf got = BUF_INIT;

	assert_int_equal(sdk_get(region, ak, sk, bucket, key, &got), 0);
	assert_int_equal(got.len, len);
	assert_memory_equal(got.data != NULL ? got.data : "", want, len);
	buf_release(&got);
}

static void
release(struct s3_client *c, struct transport *t)
{
	s3_client_free(c);
	if (t != NULL)
		http_client_free(t->http);
}

/* ---- tests against the peers ---- */

static void
test_put_head_delete_roundtrip(void **state)
{
	/* reserved characters, a space, "+" and UTF-8 in the key (s3rver
	 * answers 404 to a key with "//", which S3 allows) */
	static const char key[] = "exports/2026-12/a b(1)+\xc3\xa9!'*~x.json";
	static const char body[] = "{\"user\":\"u-1\",\"rows\":[1,2,3]}\n";
	struct transport t = { 0 };
	struct s3_client *c = client(&t);
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	if (s3_put_object(c, key, body, sizeof(body) - 1, "application/json",
			  &err) != 0)
		fail_msg("put: %s", err.msg);
	assert_int_equal(t.puts, 1);
	assert_int_equal(t.posts, 0);
	assert_string_equal(t.last_sse, "AES256");
	assert_sdk_reads("us-east-1", "S3RVER", "S3RVER", "exports", key, body,
			 sizeof(body) - 1);
	assert_int_equal(s3_head_object(c, key, &err), 0);
	assert_int_equal(s3_head_object(c, "exports/none", &err),
			 OPS_E_NOTFOUND);
	assert_int_equal(s3_delete_object(c, key, &err), 0);
	assert_int_equal(s3_head_object(c, key, &err), OPS_E_NOTFOUND);
	/* deleting a missing key succeeds, as in S3 */
	assert_int_equal(s3_delete_object(c, key, &err), 0);
	/* an empty object */
	assert_int_equal(s3_put_object(c, "empty", "", 0, NULL, &err), 0);
	assert_sdk_reads("us-east-1", "S3RVER", "S3RVER", "exports", "empty",
			 "", 0);
	release(c, &t);
}

static void
test_multipart_above_threshold(void **state)
{
	size_t len = 2 * S3_MIN_PART_SIZE + 12345;
	unsigned char *data = xmalloc(len);
	struct transport t = { 0 };
	struct s3_client *c = client(&t);
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	for (size_t off = 0; off < len;) {
		ssize_t n = getrandom(data + off, len - off, 0);

		assert_true(n > 0);
		off += (size_t)n;
	}
	if (s3_put_object(c, "big/export.bin", data, len, NULL, &err) != 0)
		fail_msg("multipart put: %s", err.msg);
	/* create + complete, three parts */
	assert_int_equal(t.posts, 2);
	assert_int_equal(t.puts, 3);
	assert_sdk_reads("us-east-1", "S3RVER", "S3RVER", "exports",
			 "big/export.bin", data, len);
	/* exactly at the threshold: one PUT */
	t.puts = t.posts = 0;
	assert_int_equal(s3_put_object(c, "big/at-threshold.bin", data,
				       S3_MIN_PART_SIZE, NULL, &err),
			 0);
	assert_int_equal(t.puts, 1);
	assert_int_equal(t.posts, 0);
	assert_sdk_reads("us-east-1", "S3RVER", "S3RVER", "exports",
			 "big/at-threshold.bin", data, S3_MIN_PART_SIZE);
	free(data);
	release(c, &t);
}

static void
test_multipart_steps_and_abort(void **state)
{
	struct transport t = { 0 };
	struct s3_client *c = client(&t);
	struct ops_err err = OPS_ERR_INIT;
	char etag[67];
	char *id = NULL;

	(void)state;
	if (s3_multipart_create(c, "steps/x", "text/plain", &id, &err) != 0)
		fail_msg("create: %s", err.msg);
	assert_true(strlen(id) > 0);
	assert_int_equal(s3_multipart_upload_part(c, "steps/x", id, 1, "abc", 3,
						  etag, &err),
			 0);
	/* the server's ETag of a plain part is the part's MD5 */
	assert_string_equal(etag, "\"900150983cd24fb0d6963f7d28e17f72\"");
	assert_int_equal(s3_multipart_upload_part(c, "steps/x", id, 0, "abc", 3,
						  etag, &err),
			 OPS_E_INVALID);
	/*
	 * s3rver lacks AbortMultipartUpload; the front answers it (after
	 * checking the signature) and forgets the upload, whose parts are
	 * then refused
	 */
	assert_int_equal(s3_multipart_abort(c, "steps/x", id, &err), 0);
	assert_int_equal(s3_multipart_abort(c, "steps/x", id, &err),
			 OPS_E_NOTFOUND);
	assert_non_null(strstr(err.msg, "HTTP 404 NoSuchUpload"));
	assert_int_equal(s3_multipart_upload_part(c, "steps/x", id, 2, "abc", 3,
						  etag, &err),
			 OPS_E_NOTFOUND);
	free(id);
	release(c, &t);
}

static void
test_wrong_secret_is_refused(void **state)
{
	struct transport t = { 0 };
	struct s3_client *c = client_for(endpoint, "exports", "us-east-1",
					 "S3RVER", "WRONGsecret", NULL, &t);
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	assert_int_equal(s3_put_object(c, "nope", "x", 1, NULL, &err),
			 OPS_E_HTTP);
	assert_non_null(strstr(err.msg, "HTTP 403 SignatureDoesNotMatch"));
	assert_false(err.transient);
	assert_null(strstr(err.msg, "WRONGsecret"));
	assert_int_equal(s3_delete_object(c, "nope", &err), OPS_E_HTTP);
	assert_non_null(strstr(err.msg, "SignatureDoesNotMatch"));
	release(c, &t);
}

static void
test_session_token_is_sent_and_signed(void **state)
{
	struct transport t = { 0 };
	struct s3_client *c =
		client_for(endpoint, "exports", "us-east-1", "S3RVER", "S3RVER",
			   "FwoGZXIvYXdzEJr//////////wEaDK+t/=", &t);
	struct ops_err err = OPS_ERR_INIT;
	char *url = NULL;

	(void)state;
	if (s3_put_object(c, "token/obj", "tok", 3, NULL, &err) != 0)
		fail_msg("put with token: %s", err.msg);
	assert_sdk_reads("us-east-1", "S3RVER", "S3RVER", "exports",
			 "token/obj", "tok", 3);
	assert_int_equal(s3_presign_get(c, "token/obj", 60, &url, &err), 0);
	assert_non_null(
		strstr(url, "&X-Amz-Security-Token=FwoGZXIvYXdzEJr%2F"));
	free(url);
	release(c, &t);
}

static void
get_url(const char *url, long *status, struct buf *body)
{
	struct http_policy p;
	struct http_client *hc = NULL;
	struct http_response resp = HTTP_RESPONSE_INIT;
	struct http_request req = { .method = "GET",
				    .url = url,
				    .idempotent = true };
	struct ops_err err = OPS_ERR_INIT;

	http_policy_default(&p);
	p.max_retries = 0;
	assert_int_equal(http_client_new(&p, &hc, &err), 0);
	if (http_do(hc, &req, &resp, &err) != 0)
		fail_msg("GET: %s", err.msg);
	*status = resp.status;
	buf_addn(body, resp.body.data != NULL ? resp.body.data : "",
		 resp.body.len);
	http_response_release(&resp);
	http_client_free(hc);
}

/* A credentials hook (s3_opts.creds) the tests steer: what it hands out,
 * how often it was asked, and an error to give instead. */
struct test_creds {
	const char *ak, *sk, *token;
	time_t expires;
	int calls;
	bool fail;
};

static int
creds_hook(void *arg, struct s3_creds *out, struct ops_err *err)
{
	struct test_creds *tc = arg;

	tc->calls++;
	if (tc->fail)
		return ops_fail(err, OPS_E_CONFIG, false,
				"the test's credentials source refused");
	out->access_key_id = xstrdup(tc->ak);
	out->secret_access_key = xstrdup(tc->sk);
	out->session_token = tc->token != NULL ? xstrdup(tc->token) : NULL;
	out->expires = tc->expires;
	return 0;
}

static struct s3_client *
hooked_client(struct test_creds *tc, struct transport *t)
{
	struct s3_opts o = { 0 };

	o.endpoint = endpoint;
	o.region = "us-east-1";
	o.bucket = "exports";
	/* no static keys at all: the hook is the only source */
	o.creds = creds_hook;
	o.creds_arg = tc;
	return client_with(&o, t);
}

/* x-amz-security-token as the last request sent it, for the hook test */
static char last_token[128];

static int
send_note_token(void *arg, const struct s3_wire_request *req,
		struct s3_wire_response *resp, struct ops_err *err)
{
	last_token[0] = '\0';
	for (const char *const *l = req->headers; *l != NULL; l++)
		if (strncasecmp(*l, "x-amz-security-token: ", 22) == 0)
			snprintf(last_token, sizeof(last_token), "%s", *l + 22);
	return send_test(arg, req, resp, err);
}

/*
 * Every signature takes the hook's credentials of the moment: a change
 * between two requests is used at once (a wrong secret is refused, the
 * right one accepted), the session token is sent and signed, a
 * presigned URL never outlives the credentials, and the hook's error
 * fails the request.
 */
static void
test_credentials_hook_per_request(void **state)
{
	struct test_creds tc = { "S3RVER", "S3RVER", "IQoJb3JpZ2luX2VjTEMP/+=",
				 0,	   0,	     false };
	struct transport t = { 0 };
	struct s3_client *c = hooked_client(&tc, &t);
	struct ops_err err = OPS_ERR_INIT;
	char *url = NULL;
	const char *e;
	long status = 0;
	struct buf body = BUF_INIT;

	(void)state;
	s3_client_set_send(c, send_note_token, &t);
	if (s3_put_object(c, "hook/a", "one", 3, NULL, &err) != 0)
		fail_msg("put through the hook: %s", err.msg);
	assert_int_equal(tc.calls, 1);
	assert_string_equal(last_token, "IQoJb3JpZ2luX2VjTEMP/+=");
	assert_sdk_reads("us-east-1", "S3RVER", "S3RVER", "exports", "hook/a",
			 "one", 3);
	/* rotated to a secret the front does not know: refused */
	tc.sk = "rotatedWRONG";
	assert_int_equal(s3_put_object(c, "hook/b", "two", 3, NULL, &err),
			 OPS_E_HTTP);
	assert_non_null(strstr(err.msg, "SignatureDoesNotMatch"));
	assert_null(strstr(err.msg, "rotatedWRONG"));
	assert_int_equal(tc.calls, 2);
	/* another key pair the front knows, without a token */
	tc.ak = "GOOG1EXAMPLEHMACKEY";
	tc.sk = "gcsHmacSecret/+x";
	tc.token = NULL;
	assert_int_equal(s3_head_object(c, "hook/a", &err), 0);
	assert_string_equal(last_token, "");
	/* presigned: the token in the query, the lifetime clamped to what
	 * is left of the credentials' */
	tc.ak = "S3RVER";
	tc.sk = "S3RVER";
	tc.token = "IQoJb3JpZ2luX2VjTEMP/+=";
	tc.expires = time(NULL) + 120;
	assert_int_equal(s3_presign_get(c, "hook/a", 3600, &url, &err), 0);
	assert_non_null(strstr(url, "X-Amz-Security-Token=IQoJb3JpZ2luX2VjTEMP"
				    "%2F%2B%3D"));
	e = strstr(url, "X-Amz-Expires=");
	assert_non_null(e);
	if (atol(e + 14) > 120 || atol(e + 14) < 110)
		fail_msg("X-Amz-Expires not clamped to ~120: %s", e);
	get_url(url, &status, &body);
	assert_int_equal(status, 200);
	assert_memory_equal(body.data, "one", 3);
	free(url);
	url = NULL;
	/* shorter than what is left: as asked */
	assert_int_equal(s3_presign_get(c, "hook/a", 60, &url, &err), 0);
	assert_non_null(strstr(url, "X-Amz-Expires=60&"));
	free(url);
	url = NULL;
	/* expired credentials: no URL */
	tc.expires = time(NULL) - 1;
	assert_int_equal(s3_presign_get(c, "hook/a", 60, &url, &err),
			 OPS_E_HTTP);
	assert_null(url);
	assert_non_null(strstr(err.msg, "expired"));
	/* the hook's error is the request's */
	tc.expires = 0;
	tc.fail = true;
	assert_int_equal(s3_delete_object(c, "hook/a", &err), OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "the test's credentials source"));
	tc.fail = false;
	assert_int_equal(s3_delete_object(c, "hook/a", &err), 0);
	buf_release(&body);
	release(c, &t);
}

/* POST body (JSON) to the front's control path */
static void
front_control(const char *path, const char *body)
{
	struct http_policy p;
	struct http_client *hc = NULL;
	struct http_response resp = HTTP_RESPONSE_INIT;
	const char *const hdrs[] = { "Content-Type: application/json", NULL };
	char *url = xasprintf("%s%s", endpoint, path);
	struct http_request req = { .method = "POST",
				    .url = url,
				    .headers = hdrs,
				    .body = body,
				    .body_len = strlen(body) };
	struct ops_err err = OPS_ERR_INIT;

	http_policy_default(&p);
	p.max_retries = 0;
	assert_int_equal(http_client_new(&p, &hc, &err), 0);
	if (http_do(hc, &req, &resp, &err) != 0 || resp.status != 200)
		fail_msg("POST %s: %ld %s", path, resp.status, err.msg);
	http_response_release(&resp);
	http_client_free(hc);
	free(url);
}

/*
 * Temporary keys at the front (POST /__front/temp_keys), as S3 takes STS
 * credentials: only with their own session token, and not once expired.
 */
static void
test_front_requires_session_token(void **state)
{
	struct test_creds tc = { "ASIATESTTEMPORARY01",
				 "tempSecret/+01",
				 "IQoJTOKEN/+01==",
				 0,
				 0,
				 false };
	struct transport t = { 0 };
	struct s3_client *c;
	struct ops_err err = OPS_ERR_INIT;
	char *url = NULL, *keys;
	long status = 0;
	struct buf body = BUF_INIT;

	(void)state;
	keys = xasprintf("{\"keys\":[{\"AccessKeyId\":\"ASIATESTTEMPORARY01\","
			 "\"SecretAccessKey\":\"tempSecret/+01\",\"Token\":"
			 "\"IQoJTOKEN/+01==\",\"Expiration\":\"2099-01-01T00:"
			 "00:00Z\"},{\"AccessKeyId\":\"ASIATESTEXPIRED0002\","
			 "\"SecretAccessKey\":\"tempSecret/+02\",\"Token\":"
			 "\"IQoJTOKEN/+02==\",\"Expiration\":\"2020-01-01T00:"
			 "00:00Z\"}]}");
	front_control("/__front/temp_keys", keys);
	free(keys);
	c = hooked_client(&tc, &t);
	if (s3_put_object(c, "temp/a", "tmp", 3, NULL, &err) != 0)
		fail_msg("put with temporary keys: %s", err.msg);
	assert_sdk_reads("us-east-1", "S3RVER", "S3RVER", "exports", "temp/a",
			 "tmp", 3);
	assert_int_equal(s3_presign_get(c, "temp/a", 60, &url, &err), 0);
	get_url(url, &status, &body);
	assert_int_equal(status, 200);
	free(url);
	tc.token = "IQoJTOKEN/+other";
	assert_int_equal(s3_put_object(c, "temp/b", "x", 1, NULL, &err),
			 OPS_E_HTTP);
	assert_non_null(strstr(err.msg, "400 InvalidToken"));
	tc.token = NULL;
	assert_int_equal(s3_put_object(c, "temp/b", "x", 1, NULL, &err),
			 OPS_E_HTTP);
	assert_non_null(strstr(err.msg, "403 InvalidAccessKeyId"));
	tc.ak = "ASIATESTEXPIRED0002";
	tc.sk = "tempSecret/+02";
	tc.token = "IQoJTOKEN/+02==";
	assert_int_equal(s3_put_object(c, "temp/b", "x", 1, NULL, &err),
			 OPS_E_HTTP);
	assert_non_null(strstr(err.msg, "400 ExpiredToken"));
	tc.ak = "ASIATESTTEMPORARY01";
	tc.sk = "tempSecret/+01";
	tc.token = "IQoJTOKEN/+01==";
	assert_int_equal(s3_delete_object(c, "temp/a", &err), 0);
	buf_release(&body);
	release(c, &t);
}

static void
test_presigned_get(void **state)
{
	static const char key[] = "presign/r\xc3\xa9sum\xc3\xa9 (final).txt";
	struct transport t = { 0 };
	struct s3_client *c = client(&t);
	struct ops_err err = OPS_ERR_INIT;
	struct buf body = BUF_INIT;
	char *url = NULL;
	long status = 0;
	size_t n;

	(void)state;
	assert_int_equal(
		s3_put_object(c, key, "signed link", 11, "text/plain", &err),
		0);
	assert_int_equal(s3_presign_get(c, key, 300, &url, &err), 0);
	assert_non_null(strstr(url, "X-Amz-Expires=300&"));
	assert_null(strstr(url, "S3RVER&")); /* the secret is not there */
	get_url(url, &status, &body);
	assert_int_equal(status, 200);
	assert_int_equal(body.len, 11);
	assert_memory_equal(body.data, "signed link", 11);
	/* one digit of the signature changed */
	n = strlen(url);
	url[n - 1] = url[n - 1] == '0' ? '1' : '0';
	buf_reset(&body);
	get_url(url, &status, &body);
	assert_int_equal(status, 403);
	assert_non_null(strstr(buf_str(&body), "SignatureDoesNotMatch"));
	free(url);
	/* 7 days is the limit */
	assert_int_equal(s3_presign_get(c, key, 604800, &url, &err), 0);
	free(url);
	assert_int_equal(s3_presign_get(c, key, 604801, &url, &err),
			 OPS_E_INVALID);
	assert_null(url);
	assert_non_null(strstr(err.msg, "604801"));
	buf_release(&body);
	release(c, &t);
}

static time_t clock_offset;

static time_t
offset_clock(void)
{
	return time(NULL) + clock_offset;
}

/* The front refuses a request dated more than 15 minutes off, as S3
 * does, and a presigned URL after its expiry. */
static void
test_clock_skew_and_expiry(void **state)
{
	struct transport t = { 0 };
	struct s3_client *c = client(&t);
	struct ops_err err = OPS_ERR_INIT;
	struct buf body = BUF_INIT;
	long status = 0;
	char *url = NULL;

	(void)state;
	s3_client_set_clock(c, offset_clock);
	clock_offset = -3600;
	assert_int_equal(s3_put_object(c, "skew", "x", 1, NULL, &err),
			 OPS_E_HTTP);
	assert_non_null(strstr(err.msg, "HTTP 403 RequestTimeTooSkewed"));
	clock_offset = 20 * 60;
	assert_int_equal(s3_delete_object(c, "skew", &err), OPS_E_HTTP);
	assert_non_null(strstr(err.msg, "RequestTimeTooSkewed"));
	clock_offset = -10 * 60; /* within the 15 minutes */
	assert_int_equal(s3_put_object(c, "skew", "x", 1, NULL, &err), 0);
	/* signed an hour ago for a minute: expired */
	clock_offset = -3600;
	assert_int_equal(s3_presign_get(c, "skew", 60, &url, &err), 0);
	get_url(url, &status, &body);
	assert_int_equal(status, 403);
	assert_non_null(strstr(buf_str(&body), "Request has expired"));
	free(url);
	/* signed an hour ago for two hours: still good */
	assert_int_equal(s3_presign_get(c, "skew", 7200, &url, &err), 0);
	buf_reset(&body);
	get_url(url, &status, &body);
	assert_int_equal(status, 200);
	assert_string_equal(buf_str(&body), "x");
	free(url);
	s3_client_set_clock(c, NULL);
	buf_release(&body);
	release(c, &t);
}

static void
test_virtual_hosted_style(void **state)
{
	char ep[96], want[160];
	struct transport t = { .all_curl = true };
	struct s3_client *c;
	struct ops_err err = OPS_ERR_INIT;
	char *url = NULL;

	(void)state;
	/* a name, not an IP: bucket.host, which the test transport sends
	 * to 127.0.0.1; s3rver takes the bucket from the Host header */
	snprintf(ep, sizeof(ep), "http://s3.us-east-1.amazonaws.com:%d",
		 front_port);
	c = client_for(ep, "vbucket", "us-east-1", "S3RVER", "S3RVER", NULL,
		       &t);
	assert_int_equal(s3_object_url(c, "v/k.txt", &url, &err), 0);
	snprintf(want, sizeof(want),
		 "http://vbucket.s3.us-east-1.amazonaws.com:%d/v/k.txt",
		 front_port);
	assert_string_equal(url, want);
	free(url);
	if (s3_put_object(c, "v/k.txt", "virtual", 7, NULL, &err) != 0)
		fail_msg("virtual-hosted put: %s", err.msg);
	assert_int_equal(s3_head_object(c, "v/k.txt", &err), 0);
	assert_sdk_reads("us-east-1", "S3RVER", "S3RVER", "vbucket", "v/k.txt",
			 "virtual", 7);
	release(c, &t);
}

static void
test_gcs_hmac_key(void **state)
{
	struct transport t = { 0 };
	struct s3_client *c =
		client_for(endpoint, "gcs-bucket", "auto",
			   "GOOG1EXAMPLEHMACKEY", "gcsHmacSecret/+x", NULL, &t);
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	if (s3_put_object(c, "gcs/obj", "gcs bytes", 9, NULL, &err) != 0)
		fail_msg("GCS-style put: %s", err.msg);
	assert_sdk_reads("auto", "GOOG1EXAMPLEHMACKEY", "gcsHmacSecret/+x",
			 "gcs-bucket", "gcs/obj", "gcs bytes", 9);
	release(c, &t);
}

/* The default transport, src/http, with no wrapper: PUT sends its body
 * (the front checks its SHA-256), HEAD reads no body, ETags come back. */
static void
test_default_transport(void **state)
{
	static const char body[] = "sent by src/http";
	struct s3_client *c = client(NULL);
	struct ops_err err = OPS_ERR_INIT;
	char etag[67], *id = NULL;

	(void)state;
	if (s3_put_object(c, "default/put", body, sizeof(body) - 1, NULL,
			  &err) != 0)
		fail_msg("put: %s", err.msg);
	assert_sdk_reads("us-east-1", "S3RVER", "S3RVER", "exports",
			 "default/put", body, sizeof(body) - 1);
	assert_int_equal(s3_head_object(c, "default/put", &err), 0);
	assert_int_equal(s3_head_object(c, "default/none", &err),
			 OPS_E_NOTFOUND);
	assert_int_equal(s3_multipart_create(c, "default/mp", NULL, &id, &err),
			 0);
	assert_int_equal(s3_multipart_upload_part(c, "default/mp", id, 1, "abc",
						  3, etag, &err),
			 0);
	assert_string_equal(etag, "\"900150983cd24fb0d6963f7d28e17f72\"");
	free(id);
	assert_int_equal(s3_delete_object(c, "default/put", &err), 0);
	assert_int_equal(s3_head_object(c, "default/put", &err),
			 OPS_E_NOTFOUND);
	s3_client_free(c);
}

/* ---- no peer needed ---- */

static void
test_addressing(void **state)
{
	static const struct {
		const char *endpoint, *bucket;
		bool force;
		const char *url;
	} cases[] = {
		{ NULL, "exports", false,
		  "https://exports.s3.eu-west-1.amazonaws.com/k/a%20b" },
		{ "http://localhost:9000", "exports", false,
		  "http://localhost:9000/exports/k/a%20b" },
		{ "http://LocalHost:9000/", "exports", false,
		  "http://localhost:9000/exports/k/a%20b" },
		{ "http://10.0.0.5:9000", "exports", false,
		  "http://10.0.0.5:9000/exports/k/a%20b" },
		{ "https://[::1]:9000", "exports", false,
		  "https://[::1]:9000/exports/k/a%20b" },
		{ "https://minio.internal", "exports", true,
		  "https://minio.internal/exports/k/a%20b" },
		{ "https://minio.internal", "exports", false,
		  "https://exports.minio.internal/k/a%20b" },
		{ "https://storage.googleapis.com", "exports", false,
		  "https://exports.storage.googleapis.com/k/a%20b" },
		/* dots break the TLS wildcard; '_' is no DNS label */
		{ "https://s3.example.com", "my.bucket", false,
		  "https://s3.example.com/my.bucket/k/a%20b" },
		{ "http://s3.example.com", "my.bucket", false,
		  "http://my.bucket.s3.example.com/k/a%20b" },
		{ "https://storage.googleapis.com", "my_bucket", false,
		  "https://storage.googleapis.com/my_bucket/k/a%20b" },
		/* a default port is dropped, as curl drops it from Host */
		{ "https://s3.example.com:443", "exports", false,
		  "https://exports.s3.example.com/k/a%20b" },
		{ "http://s3.example.com:80", "exports", true,
		  "http://s3.example.com/exports/k/a%20b" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct s3_opts o = { 0 };
		struct s3_client *c = NULL;
		struct ops_err err = OPS_ERR_INIT;
		char *url = NULL;

		o.endpoint = cases[i].endpoint;
		o.region = "eu-west-1";
		o.bucket = cases[i].bucket;
		o.access_key_id = "AKID";
		o.secret_access_key = "secret";
		o.force_path_style = cases[i].force;
		if (s3_client_new(&o, &c, &err) != 0)
			fail_msg("%s: %s", cases[i].endpoint, err.msg);
		assert_int_equal(s3_object_url(c, "k/a b", &url, &err), 0);
		assert_string_equal(url, cases[i].url);
		free(url);
		s3_client_free(c);
	}
}

static void
test_bad_options(void **state)
{
	static const struct {
		const char *endpoint, *bucket, *region, *sse;
		const char *needle;
	} cases[] = {
		{ "ftp://h", "exports", "us-east-1", NULL,
		  "http:// or https://" },
		{ "https://h/path", "exports", "us-east-1", NULL,
		  "without a path" },
		{ "https://h?x=1", "exports", "us-east-1", NULL,
		  "without a path" },
		{ "https://h:0", "exports", "us-east-1", NULL, "out of range" },
		{ "https://h:99999", "exports", "us-east-1", NULL, "port" },
		{ "https://h:", "exports", "us-east-1", NULL, "bad port" },
		{ "https://", "exports", "us-east-1", NULL, "no host" },
		{ "https://a b", "exports", "us-east-1", NULL,
		  "bad character" },
		{ "https://[zz]:1", "exports", "us-east-1", NULL, "IPv6" },
		{ "https://me:hunter2@h", "exports", "us-east-1", NULL,
		  "user information" },
		{ NULL, "Exports", "us-east-1", NULL, "bucket name 'Exports'" },
		{ NULL, "ab", "us-east-1", NULL, "bucket name" },
		{ NULL, "-ab", "us-east-1", NULL, "bucket name" },
		{ NULL, "exports", "US-EAST-1", NULL, "region" },
		{ NULL, "exports", "", NULL, "region" },
		{ NULL, "exports", "us-east-1", "aes256", "'aes256' is not" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct s3_opts o = { 0 };
		struct s3_client *c = NULL;
		struct ops_err err = OPS_ERR_INIT;

		o.endpoint = cases[i].endpoint;
		o.region = cases[i].region;
		o.bucket = cases[i].bucket;
		o.access_key_id = "AKID";
		o.secret_access_key = "secret";
		o.sse = cases[i].sse;
		assert_int_equal(s3_client_new(&o, &c, &err), OPS_E_CONFIG);
		assert_null(c);
		if (strstr(err.msg, cases[i].needle) == NULL)
			fail_msg("%s: '%s' lacks '%s'",
				 cases[i].endpoint ? cases[i].endpoint : "-",
				 err.msg, cases[i].needle);
		assert_null(strstr(err.msg, "hunter2"));
	}
	{
		struct s3_opts o = { 0 };
		struct s3_client *c = NULL;
		struct ops_err err = OPS_ERR_INIT;

		o.region = "us-east-1";
		o.bucket = "exports";
		o.access_key_id = "AKID";
		o.secret_access_key = "secret";
		o.part_size = S3_MIN_PART_SIZE - 1;
		assert_int_equal(s3_client_new(&o, &c, &err), OPS_E_CONFIG);
		assert_non_null(strstr(err.msg, "5 MiB"));
		o.part_size = 0;
		o.secret_access_key = "";
		assert_int_equal(s3_client_new(&o, &c, &err), OPS_E_CONFIG);
		assert_non_null(strstr(err.msg, "secret access key"));
	}
}

static void
clear_env(void)
{
	aws_env_clear();
	/* a HOME without .aws: never the user's own shared files */
	setenv("HOME", tmpdir, 1);
}

/* HOME as the test found it, put back by restore_home() */
static char *saved_home;

static void
save_home(void)
{
	const char *h = getenv("HOME");

	saved_home = h != NULL ? xstrdup(h) : NULL;
}

static void
restore_home(void)
{
	if (saved_home != NULL)
		setenv("HOME", saved_home, 1);
	else
		unsetenv("HOME");
	free(saved_home);
	saved_home = NULL;
}

#define ENV_FAILS(needle)                                               \
	do {                                                            \
		ops_err_clear(&err);                                    \
		assert_int_equal(s3_opts_from_env(&o, "exports", &err), \
				 OPS_E_CONFIG);                         \
		if (strstr(err.msg, needle) == NULL)                    \
			fail_msg("'%s' lacks '%s'", err.msg, needle);   \
		assert_null(strstr(err.msg, "topSecretValue"));         \
	} while (0)

static void
test_options_from_env(void **state)
{
	struct s3_opts o;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	save_home();
	clear_env();
	ENV_FAILS("AWS_ACCESS_KEY_ID is not set");
	/* ... nor in the shared files, and the message says where it
	 * looked */
	ENV_FAILS("profile 'default' (AWS_PROFILE)");
	ENV_FAILS("shared credentials file");
	setenv("AWS_ACCESS_KEY_ID", "AKIA/bad", 1);
	ENV_FAILS("AWS_ACCESS_KEY_ID is not an access key id");
	setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE", 1);
	ENV_FAILS("AWS_SECRET_ACCESS_KEY is not set");
	setenv("AWS_SECRET_ACCESS_KEY", "topSecretValue", 1);
	ENV_FAILS("AWS_REGION is not set");
	setenv("AWS_REGION", "Mars 1", 1);
	ENV_FAILS("AWS_REGION='Mars 1' is not a region");
	setenv("AWS_REGION", "eu-west-1", 1);
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_null(o.endpoint);
	assert_false(o.force_path_style);
	assert_null(o.sse);
	assert_null(o.session_token);
	assert_string_equal(o.bucket, "exports");
	/* AWS_ENDPOINT_URL_S3 wins over AWS_ENDPOINT_URL */
	setenv("AWS_ENDPOINT_URL", "http://10.1.1.1:9000", 1);
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_string_equal(o.endpoint, "http://10.1.1.1:9000");
	setenv("AWS_ENDPOINT_URL_S3", "https://minio.internal", 1);
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_string_equal(o.endpoint, "https://minio.internal");
	setenv("AWS_ENDPOINT_URL_S3", "https://u:topSecretValue@minio", 1);
	ENV_FAILS("AWS_ENDPOINT_URL_S3 must not hold user information");
	unsetenv("AWS_ENDPOINT_URL_S3");
	setenv("AWS_ENDPOINT_URL", "minio:9000", 1);
	ENV_FAILS("AWS_ENDPOINT_URL must start with http:// or https://");
	unsetenv("AWS_ENDPOINT_URL");
	setenv("APEXOPS_S3_FORCE_PATH_STYLE", "yes", 1);
	ENV_FAILS("APEXOPS_S3_FORCE_PATH_STYLE='yes' is not allowed: use "
		  "true or false");
	setenv("APEXOPS_S3_FORCE_PATH_STYLE", "true", 1);
	setenv("APEXOPS_S3_SSE", "KMS", 1);
	ENV_FAILS("APEXOPS_S3_SSE='KMS' is not allowed");
	setenv("APEXOPS_S3_SSE", "aws:kms", 1);
	setenv("AWS_SESSION_TOKEN", "tok", 1);
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_true(o.force_path_style);
	assert_string_equal(o.sse, "aws:kms");
	assert_string_equal(o.session_token, "tok");
	/* AWS_DEFAULT_REGION when AWS_REGION is unset */
	unsetenv("AWS_REGION");
	setenv("AWS_DEFAULT_REGION", "ap-east-1", 1);
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_string_equal(o.region, "ap-east-1");
	setenv("AWS_DEFAULT_REGION", "Mars 2", 1);
	ENV_FAILS("AWS_DEFAULT_REGION='Mars 2' is not a region");
	s3_opts_release(&o);
	clear_env();
	restore_home();
}

/*
 * After the keys and the profile, the chain goes on to the container
 * endpoint, then IMDS: the provider is chosen from the environment, a bad
 * variable fails naming it, and the first fetch (s3_opts_fetch_creds)
 * names the endpoint and, for IMDS, what was tried before it. Nothing
 * listens on 127.0.0.1:1.
 */
static void
test_options_chain(void **state)
{
	struct s3_opts o;
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	save_home();
	clear_env();
	setenv("AWS_REGION", "eu-west-1", 1);
	/* nothing anywhere, IMDS off: every source is named */
	ENV_FAILS("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or "
		  "AWS_CONTAINER_CREDENTIALS_FULL_URI");
	ENV_FAILS("AWS_EC2_METADATA_DISABLED=true");
	ENV_FAILS("profile 'default' (AWS_PROFILE)");
	/* the container endpoint */
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.0.0.9/creds",
	       1);
	ENV_FAILS("AWS_CONTAINER_CREDENTIALS_FULL_URI names host '10.0.0.9' "
		  "over plain http");
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI",
	       "http://127.0.0.1:1/creds/topSecretValue", 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "topSecretValue", 1);
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_non_null(o.provider);
	assert_non_null(o.creds);
	assert_null(o.access_key_id);
	ops_err_clear(&err);
	assert_int_equal(s3_opts_fetch_creds(&o, NULL, &err), OPS_E_HTTP);
	assert_non_null(strstr(err.msg, "the container credentials endpoint "
					"AWS_CONTAINER_CREDENTIALS_FULL_URI "
					"(http://127.0.0.1:1) did not answer"));
	assert_null(strstr(err.msg, "topSecretValue"));
	s3_opts_release(&o);
	assert_null(o.provider);
	/* the keys win over the container endpoint */
	setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "topSecretValue", 1);
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_null(o.provider);
	assert_int_equal(s3_opts_fetch_creds(&o, NULL, &err), 0);
	s3_opts_release(&o);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	/* IMDS, last, when allowed */
	unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	setenv("AWS_EC2_METADATA_DISABLED", "false", 1);
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "ftp://127.0.0.1:1", 1);
	ENV_FAILS("AWS_EC2_METADATA_SERVICE_ENDPOINT must start with http://");
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1/", 1);
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_non_null(o.provider);
	ops_err_clear(&err);
	assert_int_equal(s3_opts_fetch_creds(&o, NULL, &err), OPS_E_CONFIG);
	assert_non_null(strstr(err.msg, "no S3 credentials"));
	assert_non_null(strstr(err.msg, "the instance metadata service at "
					"http://127.0.0.1:1 did not answer "
					"(the IMDSv2 token request)"));
	assert_non_null(strstr(err.msg, "AWS_EC2_METADATA_DISABLED=true"));
	s3_opts_release(&o);
	clear_env();
	restore_home();
}

/* tmpdir/name holding text; the path is new, the caller frees it */
static char *
shared_file(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_true(fputs(text, fp) >= 0);
	assert_int_equal(fclose(fp), 0);
	return path;
}

/*
 * Credentials and region from AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE
 * and AWS_PROFILE, as the SDKs take them; then a request signed with them
 * through the SigV4 front, read back with the SDK.
 */
static void
test_options_from_shared_files(void **state)
{
	static const char body[] = "signed with a profile's key";
	struct s3_opts o;
	struct s3_client *c = NULL;
	struct ops_err err = OPS_ERR_INIT;
	char *cred, *conf, *dir, *fifo, *bad;

	(void)state;
	save_home();
	clear_env();
	cred = shared_file("aws-credentials",
			   "# apexops test\n"
			   "[default]\naws_access_key_id = WRONGID\n"
			   "aws_secret_access_key = topSecretValue\n"
			   "\n[exporter]\r\n"
			   "aws_access_key_id = S3RVER\r\n"
			   "aws_secret_access_key = S3RVER ; s3rver's\r\n");
	conf = shared_file("aws-config",
			   "[default]\nregion = eu-west-1\n"
			   "[profile exporter]\nregion = us-east-1\n"
			   "s3 =\n  addressing_style = path\n"
			   "aws_access_key_id = CONFIGID\n"
			   "aws_secret_access_key = configSecretValue\n");
	setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);
	setenv("AWS_CONFIG_FILE", conf, 1);
	setenv("AWS_ENDPOINT_URL_S3", endpoint, 1);
	/* the default profile */
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_string_equal(o.access_key_id, "WRONGID");
	assert_string_equal(o.region, "eu-west-1");
	s3_opts_release(&o);
	/* AWS_PROFILE's: the credentials file wins over the config file */
	setenv("AWS_PROFILE", "exporter", 1);
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_string_equal(o.access_key_id, "S3RVER");
	assert_string_equal(o.secret_access_key, "S3RVER");
	assert_null(o.session_token);
	assert_string_equal(o.region, "us-east-1");
	assert_string_equal(o.endpoint, endpoint);
	assert_int_equal(s3_client_new(&o, &c, &err), 0);
	s3_opts_release(&o); /* the client has its own copies */
	if (s3_put_object(c, "profile/put", body, sizeof(body) - 1, NULL,
			  &err) != 0)
		fail_msg("put: %s", err.msg);
	assert_sdk_reads("us-east-1", "S3RVER", "S3RVER", "exports",
			 "profile/put", body, sizeof(body) - 1);
	assert_int_equal(s3_delete_object(c, "profile/put", &err), 0);
	s3_client_free(c);
	/* the environment wins over both files, the pair and the region */
	setenv("AWS_ACCESS_KEY_ID", "ENVID", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envSecretValue", 1);
	setenv("AWS_REGION", "sa-east-1", 1);
	assert_int_equal(s3_opts_from_env(&o, "exports", &err), 0);
	assert_string_equal(o.access_key_id, "ENVID");
	assert_string_equal(o.region, "sa-east-1");
	assert_null(o.profile);
	s3_opts_release(&o);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_REGION");
	/* a directory, a FIFO, a missing file named by the variables:
	 * exit 78 with the variable and the reason, no hang */
	dir = xasprintf("%s/data", tmpdir);
	fifo = xasprintf("%s/aws-fifo", tmpdir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	setenv("AWS_SHARED_CREDENTIALS_FILE", dir, 1);
	ENV_FAILS("AWS_SHARED_CREDENTIALS_FILE: ");
	ENV_FAILS("is a directory, expected a regular file");
	assert_int_equal(ops_err_exit_code(&err), 78);
	setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);
	setenv("AWS_CONFIG_FILE", fifo, 1);
	ENV_FAILS("AWS_CONFIG_FILE: ");
	ENV_FAILS("is a FIFO");
	setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config", 1);
	ENV_FAILS("AWS_CONFIG_FILE: cannot open '/nonexistent/aws-config'");
	/* a malformed file: its name and line, never the line */
	bad = shared_file("aws-bad", "[exporter]\n"
				     "aws_secret_access_key topSecretValue\n");
	setenv("AWS_CONFIG_FILE", conf, 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", bad, 1);
	ENV_FAILS("/aws-bad:2: expected");
	/* a profile with half a pair */
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	setenv("AWS_CONFIG_FILE", cred, 1); /* no [profile exporter] */
	ENV_FAILS("AWS_ACCESS_KEY_ID is not set");
	ENV_FAILS("nor is there a profile 'exporter' (AWS_PROFILE)");
	free(bad);
	bad = shared_file("aws-half", "[exporter]\naws_access_key_id = AK\n");
	setenv("AWS_SHARED_CREDENTIALS_FILE", bad, 1);
	ENV_FAILS("has aws_access_key_id but no aws_secret_access_key");
	assert_int_equal(unlink(fifo), 0);
	free(bad);
	free(fifo);
	free(dir);
	free(conf);
	free(cred);
	clear_env();
	restore_home();
}

static void
test_xml_text(void **state)
{
	static const char doc[] =
		"<?xml version=\"1.0\"?><InitiateMultipartUploadResult>"
		"<Bucket>b</Bucket><Key>a&amp;b</Key><UploadIdX>no</UploadIdX>"
		"<UploadId>VXBsb2FkIElE&lt;&gt;&quot;&apos;&amp;&#1;</UploadId>"
		"</InitiateMultipartUploadResult>";
	struct buf b = BUF_INIT;

	(void)state;
	assert_int_equal(s3_xml_text(doc, strlen(doc), "UploadId", 100, &b), 0);
	assert_string_equal(buf_str(&b), "VXBsb2FkIElE<>\"'&&#1;");
	buf_reset(&b);
	assert_int_equal(s3_xml_text(doc, strlen(doc), "Key", 100, &b), 0);
	assert_string_equal(buf_str(&b), "a&b");
	buf_reset(&b);
	assert_int_equal(s3_xml_text(doc, strlen(doc), "UploadId", 4, &b), 0);
	assert_string_equal(buf_str(&b), "VXBs");
	buf_reset(&b);
	assert_int_equal(s3_xml_text(doc, strlen(doc), "Code", 100, &b), -1);
	/* truncated: no closing tag within len */
	assert_int_equal(s3_xml_text(doc, 80, "Key", 100, &b), -1);
	assert_int_equal(s3_xml_text("<Code>", 6, "Code", 100, &b), -1);
	assert_int_equal(s3_xml_text("", 0, "Code", 100, &b), -1);
	assert_int_equal(s3_xml_text("<a>", 3, "", 100, &b), -1);
	buf_release(&b);
}

static int
collect_keys(void *arg, const char *key)
{
	buf_addf(arg, "%s|", key);
	return 0;
}

static int
stop_first(void *arg, const char *key)
{
	(void)arg;
	(void)key;
	return 7;
}

static int
collect_uploads(void *arg, const char *key, const char *id, time_t when)
{
	buf_addf(arg, "%s %s %lld|", key, id, (long long)when);
	return 0;
}

static void
test_uploads_parse(void **state)
{
	static const char page[] =
		"<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
		"<NextKeyMarker>p/b</NextKeyMarker><NextUploadIdMarker>id2"
		"</NextUploadIdMarker><Upload><Key>p/a&amp;b</Key><UploadId>"
		"id1</UploadId><Initiated>2026-12-01T11:00:00.000Z</Initiated>"
		"</Upload><Upload><Key>p/b</Key><UploadId>id2</UploadId>"
		"<Initiated>yesterday</Initiated></Upload><Upload><Key>p/d"
		"</Key><UploadId>id3</UploadId><Initiated>2026-02-30T11:00:00Z"
		"</Initiated></Upload><Upload><Key>p/c"
		"</Key></Upload></ListMultipartUploadsResult>";
	struct buf got = BUF_INIT, nk = BUF_INIT, ni = BUF_INIT;
	bool truncated = false;

	(void)state;
	assert_int_equal(s3_uploads_parse(page, strlen(page), collect_uploads,
					  &got, &truncated, &nk, &ni),
			 0);
	/* 2026-12-01T11:00:00Z is 1796122800; an unreadable date is 0, and
	 * so is one not in the calendar (not rolled into March); an upload
	 * without an id is skipped */
	assert_string_equal(buf_str(&got),
			    "p/a&b id1 1796122800|p/b id2 0|p/d id3 0|");
	assert_true(truncated);
	assert_string_equal(buf_str(&nk), "p/b");
	assert_string_equal(buf_str(&ni), "id2");
	assert_int_equal(s3_uploads_parse("<ListBucketResult/>", 19,
					  collect_uploads, &got, &truncated,
					  &nk, &ni),
			 -1);
	buf_release(&got);
	buf_release(&nk);
	buf_release(&ni);
}

static void
test_list_parse(void **state)
{
	static const char page[] =
		"<?xml version=\"1.0\"?><ListBucketResult xmlns=\"x\">"
		"<Name>b</Name><Prefix>p/</Prefix><IsTruncated>true"
		"</IsTruncated><Contents><Key>p/a&amp;b.csv</Key><Size>1"
		"</Size></Contents><Contents><Size>2</Size></Contents>"
		"<Contents><Key>p/c</Key></Contents><NextContinuationToken>"
		"tok/+=</NextContinuationToken></ListBucketResult>";
	static const char last[] = "<ListBucketResult><IsTruncated>false"
				   "</IsTruncated><Contents><Key>k</Key>"
				   "</Contents></ListBucketResult>";
	struct buf keys = BUF_INIT, next = BUF_INIT;
	bool truncated = false;

	(void)state;
	assert_int_equal(s3_list_parse(page, strlen(page), collect_keys, &keys,
				       &truncated, &next),
			 0);
	assert_string_equal(buf_str(&keys), "p/a&b.csv|p/c|");
	assert_true(truncated);
	assert_string_equal(buf_str(&next), "tok/+=");
	buf_reset(&keys);
	buf_reset(&next);
	assert_int_equal(s3_list_parse(last, strlen(last), collect_keys, &keys,
				       &truncated, &next),
			 0);
	assert_false(truncated);
	assert_string_equal(buf_str(&keys), "k|");
	assert_int_equal(s3_list_parse(last, strlen(last), stop_first, NULL,
				       &truncated, &next),
			 7);
	/* an error document, and a truncated page with no token */
	assert_int_equal(s3_list_parse("<Error><Code>x</Code></Error>", 29,
				       collect_keys, &keys, &truncated, &next),
			 -1);
	assert_int_equal(s3_list_parse("<ListBucketResult><IsTruncated>true"
				       "</IsTruncated></ListBucketResult>",
				       68, collect_keys, &keys, &truncated,
				       &next),
			 -1);
	buf_release(&keys);
	buf_release(&next);
}

int
main(void)
{
	const struct CMUnitTest peers[] = {
		cmocka_unit_test(test_put_head_delete_roundtrip),
		cmocka_unit_test(test_multipart_above_threshold),
		cmocka_unit_test(test_multipart_steps_and_abort),
		cmocka_unit_test(test_wrong_secret_is_refused),
		cmocka_unit_test(test_session_token_is_sent_and_signed),
		cmocka_unit_test(test_credentials_hook_per_request),
		cmocka_unit_test(test_front_requires_session_token),
		cmocka_unit_test(test_presigned_get),
		cmocka_unit_test(test_clock_skew_and_expiry),
		cmocka_unit_test(test_virtual_hosted_style),
		cmocka_unit_test(test_gcs_hmac_key),
		cmocka_unit_test(test_default_transport),
		cmocka_unit_test(test_addressing),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_options_from_env),
		cmocka_unit_test(test_options_chain),
		cmocka_unit_test(test_options_from_shared_files),
		cmocka_unit_test(test_xml_text),
		cmocka_unit_test(test_list_parse),
		cmocka_unit_test(test_uploads_parse),
	};
	int r;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	r = cmocka_run_group_tests(peers, start_front, stop_front);
	curl_global_cleanup();
	return r;
}
