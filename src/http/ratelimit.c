/* Client-side rate limit; see ratelimit.h. */
#include "http/ratelimit.h"

#include <time.h>

#include "core/err.h"
#include "core/stop.h"

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
ratelimit_init(struct ratelimit *rl, double rps, double burst)
{
	pthread_mutex_init(&rl->mu, NULL);
	rl->interval = rps > 0 ? 1.0 / rps : 0;
	rl->burst = burst < 1 ? 1 : burst;
	rl->next = 0;
	rl->granted = 0;
}

void
ratelimit_destroy(struct ratelimit *rl)
{
	pthread_mutex_destroy(&rl->mu);
}

int
ratelimit_acquire(struct ratelimit *rl, const volatile sig_atomic_t *stop)
{
	double now = mono(), slot, earliest;

	pthread_mutex_lock(&rl->mu);
	rl->granted++;
	if (rl->interval == 0) {
		pthread_mutex_unlock(&rl->mu);
		return ops_stopped(stop) ? OPS_E_STOPPED : 0;
	}
	/* idle credit: at most burst slots may be in the past */
	earliest = now - (rl->burst - 1) * rl->interval;
	if (rl->next < earliest)
		rl->next = earliest;
	slot = rl->next;
	rl->next += rl->interval;
	pthread_mutex_unlock(&rl->mu);

	for (;;) {
		double left = slot - mono();
		struct timespec ts;

		if (ops_stopped(stop))
			return OPS_E_STOPPED;
		if (left <= 0)
			return 0;
		if (left > 0.05) /* look at the stop flag every 50 ms */
			left = 0.05;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		nanosleep(&ts, NULL);
	}
}

void
ratelimit_pause(struct ratelimit *rl, long ms)
{
	double until = mono() + (double)ms / 1000.0;

	pthread_mutex_lock(&rl->mu);
	if (rl->next < until)
		rl->next = until;
	pthread_mutex_unlock(&rl->mu);
}

long long
ratelimit_granted(struct ratelimit *rl)
{
	long long n;

	pthread_mutex_lock(&rl->mu);
	n = rl->granted;
	pthread_mutex_unlock(&rl->mu);
	return n;
}
