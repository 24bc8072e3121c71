#include "http/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/log.h"
#include "core/signals.h"
#include "core/stop.h"
#include "core/xalloc.h"
#include "http/ratelimit.h"

#ifndef APEXOPS_VERSION
#define APEXOPS_VERSION "dev"
#endif

struct http_client {
	CURL *curl;
	struct http_policy policy;
	char *user_agent;
};

int
http_global_init(struct ops_err *err)
{
	CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);

	if (cc != CURLE_OK)
		return ops_fail(err, OPS_E_HTTP, false,
				"http: cannot initialise libcurl: %s",
				curl_easy_strerror(cc));
	return 0;
}

void
http_global_cleanup(void)
{
	curl_global_cleanup();
}

void
http_policy_default(struct http_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->max_retries = 3;
	p->base_delay_ms = 500;
	p->max_delay_ms = 8000;
	p->max_retry_after_ms = 30000;
	p->connect_timeout_ms = 10000;
	p->timeout_ms = 60000;
	p->max_body = 8u << 20;
}

int
http_client_new(const struct http_policy *p, struct http_client **out,
		struct ops_err *err)
{
	struct http_client *c;

	*out = NULL;
	c = xcalloc(1, sizeof(*c));
	c->curl = curl_easy_init();
	if (c->curl == NULL) {
		free(c);
		return ops_fail(err, OPS_E_HTTP, false,
				"http: cannot make a curl handle");
	}
	c->policy = *p;
	c->user_agent = p->user_agent != NULL
				? xstrdup(p->user_agent)
				: xstrdup("apexops/" APEXOPS_VERSION);
	c->policy.user_agent = c->user_agent;
	*out = c;
	return 0;
}

void
http_client_free(struct http_client *c)
{
	if (c == NULL)
		return;
	curl_easy_cleanup(c->curl);
	free(c->user_agent);
	free(c);
}

void
http_response_release(struct http_response *resp)
{
	buf_release(&resp->body);
	free(resp->retry_after);
	free(resp->should_retry);
	free(resp->request_id);
	free(resp->etag);
	resp->retry_after = resp->should_retry = resp->request_id = NULL;
	resp->etag = NULL;
	resp->status = 0;
	resp->replayed = false;
	resp->attempts = 0;
}

/* Retry-After: delta-seconds or an HTTP-date; -1 when unreadable. */
static long
retry_after_ms(const char *v)
{
	char *end;
	long long s;
	time_t t;

	if (v == NULL || *v == '\0')
		return -1;
	if (*v >= '0' && *v <= '9') {
		errno = 0;
		s = strtoll(v, &end, 10);
		if (errno != 0 || *end != '\0' || s > 86400LL * 365)
			return -1;
		return (long)(s * 1000);
	}
	t = curl_getdate(v, NULL);
	if (t == -1)
		return -1;
	s = (long long)t - (long long)time(NULL);
	return s <= 0 ? 0
		      : (long)(s > 86400LL * 365 ? 86400LL * 365000 : s * 1000);
}

/* The retry decision; backoff_ms is the jittered exponential step. */
static long
retry_delay(const struct http_policy *p, bool idempotent, int attempt,
	    long status, const char *retry_after, const char *should_retry,
	    long backoff_ms)
{
	long ra, d = backoff_ms;
	bool retry;

	if (!idempotent || attempt > p->max_retries)
		return -1;
	if (status == 0)
		retry = true; /* no response: network error or timeout */
	else if (should_retry != NULL && strcasecmp(should_retry, "false") == 0)
		retry = false;
	else if (should_retry != NULL && strcasecmp(should_retry, "true") == 0)
		retry = true;
	else
		retry = status == 409 || status == 429 || status >= 500;
	if (!retry)
		return -1;
	if (d < p->base_delay_ms)
		d = p->base_delay_ms;
	ra = retry_after_ms(retry_after);
	if (ra > p->max_retry_after_ms)
		ra = p->max_retry_after_ms;
	if (ra > d)
		d = ra;
	return d;
}

long
http_retry_delay_ms(const struct http_policy *p, bool idempotent, int attempt,
		    long status, const char *retry_after,
		    const char *should_retry, double jitter01)
{
	double d = (double)p->base_delay_ms;

	for (int i = 1; i < attempt && d < (double)p->max_delay_ms; i++)
		d *= 2;
	if (d > (double)p->max_delay_ms)
		d = (double)p->max_delay_ms;
	if (jitter01 < 0 || jitter01 >= 1)
		jitter01 = 0;
	d *= 0.5 * (1.0 + jitter01); /* in [d/2, d), as stripe-node */
	return retry_delay(p, idempotent, attempt, status, retry_after,
			   should_retry, (long)d);
}

int
http_url_encode(struct buf *out, const char *s, size_t len, bool keep_brackets)
{
	static const char hex[] = "0123456789ABCDEF";
	char esc[3];

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		bool plain = (ch >= 'A' && ch <= 'Z') ||
			     (ch >= 'a' && ch <= 'z') ||
			     (ch >= '0' && ch <= '9') || ch == '-' ||
			     ch == '_' || ch == '.' || ch == '~' ||
			     (keep_brackets && (ch == '[' || ch == ']'));

		if (plain) {
			if (buf_append(out, &s[i], 1) != 0)
				return -1;
			continue;
		}
		esc[0] = '%';
		esc[1] = hex[ch >> 4];
		esc[2] = hex[ch & 15];
		if (buf_append(out, esc, 3) != 0)
			return -1;
	}
	return 0;
}

struct attempt_state {
	struct http_response *resp;
	bool too_big;
	const char *upload; /* a PUT body, read from memory */
	size_t upload_len;
	size_t upload_off; /* rewound for each attempt */
};

static size_t
on_read(char *buffer, size_t size, size_t nitems, void *arg)
{
	struct attempt_state *st = arg;
	size_t n = size * nitems, left = st->upload_len - st->upload_off;

	if (n > left)
		n = left;
	if (n > 0)
		memcpy(buffer, st->upload + st->upload_off, n);
	st->upload_off += n;
	return n;
}

/* curl rewinds the body when it must send it again (a redirect, a
 * connection lost before the response) */
static int
on_seek(void *arg, curl_off_t offset, int origin)
{
	struct attempt_state *st = arg;

	if (origin != SEEK_SET || offset < 0 || (size_t)offset > st->upload_len)
		return CURL_SEEKFUNC_FAIL;
	st->upload_off = (size_t)offset;
	return CURL_SEEKFUNC_OK;
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct attempt_state *st = arg;
	size_t n = size * nmemb;

	if (buf_append(&st->resp->body, ptr, n) != 0) {
		st->too_big = true;
		return 0; /* makes curl stop with CURLE_WRITE_ERROR */
	}
	return n;
}

/* Keep one header value (trimmed) when its name matches. */
static void
header_pick(const char *line, size_t len, const char *name, char **dst)
{
	size_t nl = strlen(name);
	const char *v, *e;

	if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return;
	v = line + nl + 1;
	e = line + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
		e--;
	free(*dst);
	*dst = xstrndup(v, (size_t)(e - v));
}

static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct attempt_state *st = arg;
	struct http_response *r = st->resp;
	size_t n = size * nmemb;
	char *replayed = NULL;

	/* a new status line (redirect, 100 Continue) starts a new header set */
	if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
		free(r->retry_after);
		free(r->should_retry);
		free(r->request_id);
		free(r->etag);
		r->retry_after = r->should_retry = r->request_id = NULL;
		r->etag = NULL;
		r->replayed = false;
		return n;
	}
	header_pick(ptr, n, "ETag", &r->etag);
	header_pick(ptr, n, "Retry-After", &r->retry_after);
	header_pick(ptr, n, "Stripe-Should-Retry", &r->should_retry);
	header_pick(ptr, n, "Request-Id", &r->request_id);
	header_pick(ptr, n, "Idempotent-Replayed", &replayed);
	if (replayed != NULL) {
		r->replayed = strcasecmp(replayed, "true") == 0;
		free(replayed);
	}
	return n;
}

/* curl's progress callback: a non-zero return aborts the transfer */
static int
on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
	    curl_off_t ulnow)
{
	const volatile sig_atomic_t *stop = arg;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return ops_stopped(stop) ? 1 : 0;
}

/* Host and path of a URL without its query, for log lines. */
static void
url_for_log(const char *url, char *out, size_t n)
{
	size_t len = strcspn(url, "?#");

	snprintf(out, n, "%.*s", (int)len, url);
}

int
http_do(struct http_client *c, const struct http_request *req,
	struct http_response *resp, struct ops_err *err)
{
	const struct http_policy *p = &c->policy;
	struct curl_slist *hdrs = NULL, *tmp;
	struct attempt_state st = { resp, false, req->body, req->body_len, 0 };
	char errbuf[CURL_ERROR_SIZE];
	char where[256];
	bool post = strcmp(req->method, "POST") == 0;
	bool put = strcmp(req->method, "PUT") == 0;
	bool head = strcmp(req->method, "HEAD") == 0;
	bool idempotent = req->idempotent || !post;
	const volatile sig_atomic_t *stop =
		req->stop != NULL ? req->stop : &ops_stop_flag;
	int r = 0;

	http_response_release(resp);
	resp->body.max = p->max_body;
	if (req->log_url != NULL)
		snprintf(where, sizeof(where), "%s", req->log_url);
	else
		url_for_log(req->url, where, sizeof(where));

	for (const char *const *h = req->headers; h != NULL && *h != NULL;
	     h++) {
		tmp = curl_slist_append(hdrs, *h);
		if (tmp == NULL) {
			r = ops_fail(err, OPS_E_HTTP, false,
				     "http: out of memory for headers");
			goto out;
		}
		hdrs = tmp;
	}
	/* no "Expect: 100-continue" round trip for small bodies */
	tmp = curl_slist_append(hdrs, "Expect:");
	if (tmp == NULL) {
		r = ops_fail(err, OPS_E_HTTP, false, "http: out of memory");
		goto out;
	}
	hdrs = tmp;

	for (int attempt = 1;; attempt++) {
		CURLcode cc;
		long status = 0, delay;

		buf_reset(&resp->body);
		st.too_big = false;
		errbuf[0] = '\0';
		curl_easy_reset(c->curl); /* keeps the connection cache */
		curl_easy_setopt(c->curl, CURLOPT_URL, req->url);
		curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS,
				 p->connect_timeout_ms);
		curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, p->timeout_ms);
		curl_easy_setopt(c->curl, CURLOPT_USERAGENT, p->user_agent);
		curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
		curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &st);
		curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, &st);
		if (post) {
			curl_easy_setopt(c->curl, CURLOPT_POST, 1L);
			curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)req->body_len);
			curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS,
					 req->body != NULL ? req->body : "");
		} else if (put) {
			st.upload_off = 0;
			curl_easy_setopt(c->curl, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(c->curl, CURLOPT_INFILESIZE_LARGE,
					 (curl_off_t)req->body_len);
			curl_easy_setopt(c->curl, CURLOPT_READFUNCTION,
					 on_read);
			curl_easy_setopt(c->curl, CURLOPT_READDATA, &st);
			curl_easy_setopt(c->curl, CURLOPT_SEEKFUNCTION,
					 on_seek);
			curl_easy_setopt(c->curl, CURLOPT_SEEKDATA, &st);
		} else if (head) {
			curl_easy_setopt(c->curl, CURLOPT_NOBODY, 1L);
		} else if (strcmp(req->method, "GET") != 0) {
			curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST,
					 req->method);
		}

		curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION,
				 on_progress);
		curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, stop);

		if (ops_stopped(stop)) {
			r = ops_fail(err, OPS_E_STOPPED, true,
				     "http: %s %s: stopped before attempt %d",
				     req->method, where, attempt);
			goto out;
		}
		if (p->limit != NULL &&
		    ratelimit_acquire(p->limit, stop) != 0) {
			r = ops_fail(err, OPS_E_STOPPED, true,
				     "http: %s %s: stopped waiting for a rate "
				     "limit slot",
				     req->method, where);
			goto out;
		}
		resp->attempts = attempt;
		cc = curl_easy_perform(c->curl);
		if (cc == CURLE_ABORTED_BY_CALLBACK) {
			r = ops_fail(err, OPS_E_STOPPED, true,
				     "http: %s %s: stopped during attempt %d",
				     req->method, where, attempt);
			goto out;
		}
		if (cc == CURLE_OK) {
			curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE,
					  &status);
		} else if (st.too_big) {
			r = ops_fail(err, OPS_E_HTTP, false,
				     "http: %s %s: response body larger than "
				     "%zu bytes",
				     req->method, where, p->max_body);
			goto out;
		}
		resp->status = status;
		/* [step/2, step], step doubling from the base up to the cap:
		 * the rule of http_retry_delay_ms() with a seeded jitter */
		delay = retry_delay(p, idempotent, attempt, status,
				    resp->retry_after, resp->should_retry,
				    ops_backoff_equal_jitter(p->base_delay_ms,
							     p->max_delay_ms,
							     attempt - 1));
		if (delay < 0) {
			if (cc != CURLE_OK) {
				r = ops_fail(err, OPS_E_HTTP, true,
					     "http: %s %s failed after %d "
					     "attempt%s: %s",
					     req->method, where, attempt,
					     attempt == 1 ? "" : "s",
					     errbuf[0]
						     ? errbuf
						     : curl_easy_strerror(cc));
				goto out;
			}
			break;
		}
		if (p->limit != NULL && status == 429)
			ratelimit_pause(p->limit, delay);
		if (cc != CURLE_OK)
			log_warn("http retry method=%s url=%s attempt=%d "
				 "error=%s delay_ms=%ld",
				 req->method, log_q(where), attempt,
				 log_q(errbuf[0] ? errbuf
						 : curl_easy_strerror(cc)),
				 delay);
		else
			log_warn("http retry method=%s url=%s attempt=%d "
				 "status=%ld delay_ms=%ld",
				 req->method, log_q(where), attempt, status,
				 delay);
		if (ops_sleep_ms(delay, stop) != 0) {
			r = ops_fail(err, OPS_E_STOPPED, true,
				     "http: %s %s: stopped while waiting to "
				     "retry after attempt %d",
				     req->method, where, attempt);
			goto out;
		}
	}
	r = 0;
out:
	/* the handle outlives errbuf, hdrs and stop: forget them */
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, NULL);
	curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 1L);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c->curl, CURLOPT_READDATA, NULL);
	curl_easy_setopt(c->curl, CURLOPT_SEEKDATA, NULL);
	curl_slist_free_all(hdrs);
	return r;
}
