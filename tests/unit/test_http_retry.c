/* The retry decision of http/: which answers retry, backoff growth and
 * cap, jitter range, Retry-After honoured and capped, Stripe-Should-Retry
 * obeyed (rules of stripe-node's RequestSender._shouldRetry); and a stop
 * request that ends a backoff or a transfer, against a loopback socket. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/signals.h"
#include "http/http.h"

static struct http_policy
policy(void)
{
	struct http_policy p;

	http_policy_default(&p);
	p.max_retries = 5;
	p.base_delay_ms = 500;
	p.max_delay_ms = 4000;
	p.max_retry_after_ms = 10000;
	return p;
}

static void
test_which_statuses_retry(void **state)
{
	static const struct {
		long status;
		bool retry;
	} cases[] = {
		{ 0, true },	{ 200, false }, { 400, false }, { 401, false },
		{ 402, false }, { 404, false }, { 409, true },	{ 429, true },
		{ 500, true },	{ 502, true },	{ 503, true },	{ 504, true },
	};
	struct http_policy p = policy();

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long d = http_retry_delay_ms(&p, true, 1, cases[i].status, NULL,
					     NULL, 0.0);

		if (cases[i].retry)
			assert_true(d >= 0);
		else
			assert_int_equal(d, -1);
	}
}

static void
test_should_retry_header_and_idempotency(void **state)
{
	struct http_policy p = policy();

	(void)state;
	assert_int_equal(
		http_retry_delay_ms(&p, true, 1, 500, NULL, "false", 0.0), -1);
	assert_true(http_retry_delay_ms(&p, true, 1, 400, NULL, "true", 0.0) >=
		    0);
	/* a POST without an idempotency key is never sent twice */
	assert_int_equal(http_retry_delay_ms(&p, false, 1, 0, NULL, NULL, 0.0),
			 -1);
	assert_int_equal(
		http_retry_delay_ms(&p, false, 1, 503, NULL, NULL, 0.0), -1);
}

static void
test_backoff_grows_is_capped_and_jittered(void **state)
{
	struct http_policy p = policy();

	(void)state;
	/* jitter 0 gives half the nominal delay, never below the base */
	assert_int_equal(http_retry_delay_ms(&p, true, 1, 500, NULL, NULL, 0),
			 500);
	assert_int_equal(http_retry_delay_ms(&p, true, 2, 500, NULL, NULL, 0),
			 500);
	assert_int_equal(http_retry_delay_ms(&p, true, 3, 500, NULL, NULL, 0),
			 1000);
	assert_int_equal(http_retry_delay_ms(&p, true, 4, 500, NULL, NULL, 0),
			 2000);
	/* capped at max_delay_ms (4000), jitter just under 1 */
	assert_in_range(
		http_retry_delay_ms(&p, true, 5, 500, NULL, NULL, 0.999), 3990,
		4000);
	/* out of retries */
	assert_int_equal(http_retry_delay_ms(&p, true, 6, 500, NULL, NULL, 0),
			 -1);
	/* jitter stays inside [d/2, d) */
	for (int i = 0; i < 100; i++) {
		long d = http_retry_delay_ms(&p, true, 3, 503, NULL, NULL,
					     i / 100.0);

		assert_in_range(d, 1000, 2000);
	}
}

static void
test_retry_after(void **state)
{
	struct http_policy p = policy();

	(void)state;
	assert_int_equal(http_retry_delay_ms(&p, true, 1, 429, "3", NULL, 0),
			 3000);
	/* a shorter Retry-After than the backoff does not shorten it */
	assert_int_equal(http_retry_delay_ms(&p, true, 4, 429, "0", NULL, 0),
			 2000);
	/* capped at max_retry_after_ms */
	assert_int_equal(http_retry_delay_ms(&p, true, 1, 429, "3600", NULL, 0),
			 10000);
	/* unreadable values are ignored */
	assert_int_equal(http_retry_delay_ms(&p, true, 1, 429, "soon", NULL, 0),
			 500);
	assert_int_equal(http_retry_delay_ms(&p, true, 1, 429, "-5", NULL, 0),
			 500);
	/* an HTTP-date in the past means now */
	assert_int_equal(http_retry_delay_ms(&p, true, 1, 503,
					     "Wed, 21 Oct 2015 07:28:00 GMT",
					     NULL, 0),
			 500);
}

/* A loopback peer: answers 503 (Retry-After: 30) or never answers. */
struct peer {
	int lfd;
	int port;
	bool hang;		     /* read the request, never answer */
	volatile sig_atomic_t *stop; /* set once the first request is in */
	int requests;
	pthread_t thread;
};

static bool
read_request(int fd)
{
	char buf[4096];
	size_t got = 0;

	while (got < sizeof(buf) - 1) {
		ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);

		if (n <= 0)
			return false;
		got += (size_t)n;
		buf[got] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL)
			return true;
	}
	return false;
}

static void *
peer_main(void *arg)
{
	static const char answer[] = "HTTP/1.1 503 Service Unavailable\r\n"
				     "Retry-After: 30\r\n"
				     "Content-Length: 0\r\n"
				     "Connection: close\r\n\r\n";
	struct peer *pe = arg;

	for (;;) {
		int fd = accept(pe->lfd, NULL, NULL);
		char c;

		if (fd < 0)
			return NULL; /* shut down by the test */
		if (!read_request(fd)) {
			close(fd);
			continue;
		}
		pe->requests++;
		if (!pe->hang &&
		    send(fd, answer, sizeof(answer) - 1, MSG_NOSIGNAL) < 0) {
			close(fd);
			continue;
		}
		*pe->stop = SIGTERM;
		if (pe->hang) /* until the client gives up */
			while (recv(fd, &c, 1, 0) > 0)
				;
		close(fd);
	}
}

static void
peer_start(struct peer *pe, bool hang, volatile sig_atomic_t *stop)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);

	memset(pe, 0, sizeof(*pe));
	pe->hang = hang;
	pe->stop = stop;
	pe->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(pe->lfd >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(pe->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(pe->lfd, 8), 0);
	assert_int_equal(getsockname(pe->lfd, (struct sockaddr *)&a, &al), 0);
	pe->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&pe->thread, NULL, peer_main, pe), 0);
}

static void
peer_stop(struct peer *pe)
{
	shutdown(pe->lfd, SHUT_RDWR); /* wakes accept() */
	pthread_join(pe->thread, NULL);
	close(pe->lfd);
}

/* Run one GET against pe with stop (NULL: ops_stop_flag). */
static int
get(struct peer *pe, const volatile sig_atomic_t *stop,
    struct http_response *resp, struct ops_err *err)
{
	struct http_policy p;
	struct http_client *c = NULL;
	struct http_request req;
	char url[64];
	int r;

	http_policy_default(&p);
	p.max_retries = 3;
	p.timeout_ms = 20000;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/x", pe->port);
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	req.stop = stop;
	assert_int_equal(http_client_new(&p, &c, err), 0);
	r = http_do(c, &req, resp, err);
	http_client_free(c);
	return r;
}

static void
test_stop_ends_the_backoff(void **state)
{
	volatile sig_atomic_t stop = 0;
	struct http_response resp = HTTP_RESPONSE_INIT;
	struct ops_err err = OPS_ERR_INIT;
	struct peer pe;

	(void)state;
	peer_start(&pe, false, &stop);
	/* 503 with Retry-After: 30 would wait 30 s three times; the stop set
	 * after the first answer ends it with no second attempt */
	assert_int_equal(get(&pe, &stop, &resp, &err), OPS_E_STOPPED);
	assert_int_equal(err.code, OPS_E_STOPPED);
	assert_true(err.transient); /* running again may finish */
	assert_int_equal(resp.attempts, 1);
	peer_stop(&pe);
	assert_int_equal(pe.requests, 1);
	http_response_release(&resp);
}

static void
test_stop_aborts_a_transfer(void **state)
{
	struct http_response resp = HTTP_RESPONSE_INIT;
	struct ops_err err = OPS_ERR_INIT;
	struct peer pe;

	(void)state;
	ops_signals_reset();
	/* the peer never answers; without a stop this waits 20 s a try.
	 * NULL stop: the request polls ops_stop_flag */
	peer_start(&pe, true, &ops_stop_flag);
	assert_int_equal(get(&pe, NULL, &resp, &err), OPS_E_STOPPED);
	assert_non_null(strstr(err.msg, "stopped"));
	assert_int_equal(resp.attempts, 1);
	peer_stop(&pe);
	assert_int_equal(pe.requests, 1);
	http_response_release(&resp);
	ops_signals_reset();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_which_statuses_retry),
		cmocka_unit_test(test_should_retry_header_and_idempotency),
		cmocka_unit_test(test_backoff_grows_is_capped_and_jittered),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_stop_ends_the_backoff),
		cmocka_unit_test(test_stop_aborts_a_transfer),
	};
	struct ops_err err = OPS_ERR_INIT;
	int r;

	if (http_global_init(&err) != 0)
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	http_global_cleanup();
	return r;
}
