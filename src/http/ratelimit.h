/*
 * A client-side rate limit shared by the threads that call one service
 * (Stripe's documented limits: 25 requests/s in test mode, 100 live, 1,000
 * for meter events). It is a virtual-time limiter (GCRA, the generic cell
 * rate algorithm, as a token bucket without a timer): each caller reserves
 * the next free slot under a mutex and sleeps until it comes, so requests
 * leave at the configured rate, in the order they asked, with at most
 * `burst` of them at once after an idle spell. A throttled answer (429)
 * pushes every later slot back with ratelimit_pause().
 *
 * Hand-written because no Debian C library offers a thread-safe limiter
 * with a stop flag; it is thirty lines.
 *
 * Thread safety: ratelimit_acquire() and ratelimit_pause() may be called
 * from several threads at once; init and destroy from one thread while no
 * other uses the limiter.
 */
#ifndef OPS_HTTP_RATELIMIT_H
#define OPS_HTTP_RATELIMIT_H

#include <pthread.h>
#include <signal.h>

struct ratelimit {
	pthread_mutex_t mu;
	double interval; /* seconds between requests; 0: no limit */
	double burst;	 /* requests allowed at once after idling, >= 1 */
	double next;	 /* monotonic time of the next free slot */
	long long granted;
};

/* rps <= 0: unlimited. burst < 1 is taken as 1. */
void ratelimit_init(struct ratelimit *rl, double rps, double burst);
void ratelimit_destroy(struct ratelimit *rl);

/*
 * Wait for a slot. Returns 0, or OPS_E_STOPPED as soon as *stop is set
 * (NULL: never); a stopped caller's slot is not given back.
 */
int ratelimit_acquire(struct ratelimit *rl, const volatile sig_atomic_t *stop)
	__attribute__((warn_unused_result));

/* Push every slot from now on back by ms (after a 429 or Retry-After). */
void ratelimit_pause(struct ratelimit *rl, long ms);

/* Slots granted so far (tests, reports). */
long long ratelimit_granted(struct ratelimit *rl);

#endif
