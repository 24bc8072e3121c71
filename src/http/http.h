/*
 * HTTP client over libcurl: the only module that includes curl/curl.h.
 * Requests carry connect and total timeouts, never use signals
 * (CURLOPT_NOSIGNAL), read at most a fixed number of body bytes, and are
 * retried on network errors, 409, 429 and 5xx with exponential backoff and
 * jitter that honours Retry-After and Stripe-Should-Retry. libcurl was the
 * obvious choice (TLS, proxies, keep-alive); only the retry policy is ours,
 * modelled on stripe-node's RequestSender._shouldRetry.
 *
 * http_global_init() must have run before the first client is made and
 * before threads start (main.c does it).
 *
 * A request is stopped by its stop flag (NULL: ops_stop_flag, which the
 * signal handlers set): a backoff sleep returns at once and a transfer in
 * progress is aborted from curl's progress callback, both as OPS_E_STOPPED.
 *
 * Thread safety: a client is used by one thread at a time; several
 * threads may each use their own client. http_global_init/cleanup only
 * from the main thread while no other thread runs.
 */
#ifndef OPS_HTTP_HTTP_H
#define OPS_HTTP_HTTP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

struct ratelimit;

struct http_client; /* one curl easy handle: keep-alive, one thread */

/* Initialise libcurl once per process (curl_global_init); returns 0 or
 * OPS_E_HTTP. Pair with http_global_cleanup() at exit. */
int http_global_init(struct ops_err *err) __attribute__((warn_unused_result));
void http_global_cleanup(void);

struct http_policy {
	int max_retries;	 /* extra attempts after the first */
	long base_delay_ms;	 /* first backoff, doubled per retry */
	long max_delay_ms;	 /* cap of the computed backoff */
	long max_retry_after_ms; /* cap of a server's Retry-After */
	long connect_timeout_ms; /* per attempt */
	long timeout_ms;	 /* whole attempt, body included */
	size_t max_body;	 /* bytes of response body kept; more fails */
	const char *user_agent;	 /* borrowed; NULL: "apexops/<version>" */
	/* shared client-side rate limit (http/ratelimit.h), borrowed: every
	 * attempt, retries included, waits for a slot, and a 429 pushes later
	 * slots back by the retry delay; NULL: none */
	struct ratelimit *limit;
};

/* Defaults: 3 retries, 500 ms doubling to 8 s, Retry-After up to 30 s,
 * 10 s to connect, 60 s per attempt, 8 MiB of body. */
void http_policy_default(struct http_policy *p);

struct http_request {
	/* "GET", "POST", "PUT", "DELETE", "HEAD" (no body is read back) */
	const char *method;
	const char *url;
	/* NULL-terminated "Name: value" lines, borrowed; may hold secrets,
	 * which are never logged nor copied into errors. */
	const char *const *headers;
	/* NULL: none. POST and PUT send it (PUT from memory, with a
	 * Content-Length and no Content-Type of curl's own) */
	const char *body;
	size_t body_len;
	/*
	 * May the request be sent twice? GET/DELETE always are; a POST is
	 * only when it carries an Idempotency-Key. A non-idempotent request
	 * is never retried.
	 */
	bool idempotent;
	/* Stop request: when *stop becomes non-zero the request ends with
	 * OPS_E_STOPPED. NULL: ops_stop_flag (core/signals.h). Borrowed. */
	const volatile sig_atomic_t *stop;
	/* What log lines and errors name instead of the URL ("http://host"
	 * when the path identifies a credential); NULL: the URL without its
	 * query. Borrowed. */
	const char *log_url;
};

struct http_response {
	long status;	    /* 0 when no response arrived */
	struct buf body;    /* the last attempt's body */
	char *retry_after;  /* header values of the last attempt, or NULL */
	char *should_retry; /* Stripe-Should-Retry */
	char *request_id;   /* Request-Id */
	bool replayed;	    /* Idempotent-Replayed: true */
	int attempts;	    /* attempts made */
	char *etag;	    /* ETag, as sent (quotes kept), or NULL */
};

#define HTTP_RESPONSE_INIT                                    \
	{                                                     \
		0, BUF_INIT, NULL, NULL, NULL, false, 0, NULL \
	}

/* *out is a new client the caller frees with http_client_free(). */
int http_client_new(const struct http_policy *p, struct http_client **out,
		    struct ops_err *err) __attribute__((warn_unused_result));
/* NULL is a no-op. */
void http_client_free(struct http_client *c);

/*
 * Send req, retrying as the policy says. Returns 0 when a response
 * arrived, whatever its status (the caller judges resp->status); a
 * network failure or timeout that outlives the retries, or a body over
 * max_body, is OPS_E_HTTP (transient for network failures); a stop
 * (req->stop) during a transfer or a backoff is OPS_E_STOPPED. resp must be
 * HTTP_RESPONSE_INIT or released; the caller releases it on every path.
 */
int http_do(struct http_client *c, const struct http_request *req,
	    struct http_response *resp, struct ops_err *err)
	__attribute__((warn_unused_result));

/* Free what resp holds and reset it to HTTP_RESPONSE_INIT. */
void http_response_release(struct http_response *resp);

/*
 * The retry decision, pure so that tests can drive it. attempt is the
 * number of attempts made so far (1 after the first). status is 0 after a
 * network error. retry_after and should_retry are header values or NULL;
 * jitter01 is a random number in [0, 1). Returns the delay in ms before
 * the next attempt, or -1 when the request must not be retried.
 */
long http_retry_delay_ms(const struct http_policy *p, bool idempotent,
			 int attempt, long status, const char *retry_after,
			 const char *should_retry, double jitter01);

/* Percent-encode s for a URL query or form body: A-Z a-z 0-9 - _ . ~ stay,
 * and so do [ and ] when keep_brackets (as stripe-node does); everything
 * else is %XX. Appends to out. Returns 0, or -1 when out is full. */
int http_url_encode(struct buf *out, const char *s, size_t len,
		    bool keep_brackets) __attribute__((warn_unused_result));

#endif
