/* Stop-aware sleeping and seeded jitter; see stop.h. */
#include "core/stop.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/err.h"

/* A stop is seen within this many milliseconds of being requested. */
#define STOP_SLICE_MS 20

bool
ops_stopped(const volatile sig_atomic_t *stop)
{
	return stop != NULL && *stop != 0;
}

/* Sleep exactly ms (no stop check), resuming after EINTR. */
static void
nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

int
ops_sleep_ms(long ms, const volatile sig_atomic_t *stop)
{
	struct timespec now, end;

	if (ops_stopped(stop))
		return OPS_E_STOPPED;
	if (ms <= 0)
		return 0;
	if (stop == NULL) {
		nap(ms);
		return 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	for (;;) {
		long left;

		if (ops_stopped(stop))
			return OPS_E_STOPPED;
		clock_gettime(CLOCK_MONOTONIC, &now);
		left = (long)(end.tv_sec - now.tv_sec) * 1000 +
		       (end.tv_nsec - now.tv_nsec) / 1000000L;
		if (left <= 0)
			return 0;
		nap(left < STOP_SLICE_MS ? left : STOP_SLICE_MS);
	}
}

/*
 * xoshiro256** (Blackman and Vigna, public domain): libc's random() is
 * process-global and unseeded here, and random_r() needs the same seeding
 * work; a per-thread generator seeded from getrandom() needs no lock.
 */
static _Thread_local uint64_t rng_s[4];
static _Thread_local bool rng_seeded;

static uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static void
rng_seed(void)
{
	uint64_t seed[4] = { 0, 0, 0, 0 };
	ssize_t n = getrandom(seed, sizeof(seed), 0);

	if (n != (ssize_t)sizeof(seed)) {
		/* no entropy source: fall back to time and address bits */
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		seed[0] = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20);
		seed[1] = (uint64_t)(uintptr_t)&ts;
		seed[2] = 0x9e3779b97f4a7c15ULL;
		seed[3] = 0xbf58476d1ce4e5b9ULL ^ seed[0];
	}
	if ((seed[0] | seed[1] | seed[2] | seed[3]) == 0)
		seed[0] = 1; /* the all-zero state is a fixed point */
	memcpy(rng_s, seed, sizeof(rng_s));
	rng_seeded = true;
}

static uint64_t
rng_next(void)
{
	uint64_t result, t;

	if (!rng_seeded)
		rng_seed();
	result = rotl(rng_s[1] * 5, 7) * 9;
	t = rng_s[1] << 17;
	rng_s[2] ^= rng_s[0];
	rng_s[3] ^= rng_s[1];
	rng_s[1] ^= rng_s[2];
	rng_s[0] ^= rng_s[3];
	rng_s[2] ^= t;
	rng_s[3] = rotl(rng_s[3], 45);
	return result;
}

uint64_t
ops_random_below(uint64_t bound)
{
	uint64_t limit, x;

	if (bound == 0)
		return 0;
	/* rejection sampling: no modulo bias */
	limit = UINT64_MAX - UINT64_MAX % bound;
	do
		x = rng_next();
	while (x >= limit);
	return x % bound;
}

static long
backoff_step(long base_ms, long cap_ms, int attempt)
{
	long step = base_ms > 0 ? base_ms : 1;

	for (int i = 0; i < attempt && step < cap_ms; i++)
		step *= 2;
	return step < cap_ms ? step : cap_ms;
}

long
ops_backoff_full_jitter(long base_ms, long cap_ms, int attempt)
{
	long step = backoff_step(base_ms, cap_ms, attempt);

	return (long)ops_random_below((uint64_t)step + 1);
}

long
ops_backoff_equal_jitter(long base_ms, long cap_ms, int attempt)
{
	long step = backoff_step(base_ms, cap_ms, attempt);

	return step / 2 +
	       (long)ops_random_below((uint64_t)(step - step / 2) + 1);
}
