/*
 * The one stop path. A stop request is a flag (set by a signal handler, or
 * by a daemon that passes "stop" to a running job after its grace period);
 * every wait in apexops goes through ops_sleep_ms() so that it returns as
 * soon as the flag is set, instead of sleeping through a SIGTERM.
 *
 * Flags are `volatile sig_atomic_t`: signal handlers may set them, and a
 * thread that sets one for another (the daemon's grace timer) does so with
 * a plain store, which is atomic for sig_atomic_t on every platform apexops
 * builds on. A NULL flag means "never stopped".
 *
 * Thread safety: every function here may be called from several threads.
 */
#ifndef OPS_CORE_STOP_H
#define OPS_CORE_STOP_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* Has *stop been set? NULL: false. */
bool ops_stopped(const volatile sig_atomic_t *stop);

/*
 * Sleep ms milliseconds (<= 0: return at once), waking early when *stop
 * becomes non-zero. Returns 0 after the full sleep, OPS_E_STOPPED when the
 * flag ended it (also when it was already set on entry).
 */
int ops_sleep_ms(long ms, const volatile sig_atomic_t *stop)
	__attribute__((warn_unused_result));

/*
 * A uniformly random integer in [0, bound) (bound <= 0: 0) from a generator
 * seeded by getrandom(2) once per thread, so that replicas started at the
 * same moment draw different retry delays.
 */
uint64_t ops_random_below(uint64_t bound);

/*
 * "Full jitter" backoff (AWS architecture blog): a random delay in
 * [0, min(cap_ms, base_ms * 2^attempt)], attempt counting from 0.
 */
long ops_backoff_full_jitter(long base_ms, long cap_ms, int attempt);

/*
 * "Equal jitter": half the exponential step fixed, half random, so a retry
 * never comes back immediately: [step/2, step] with step =
 * min(cap_ms, base_ms * 2^attempt).
 */
long ops_backoff_equal_jitter(long base_ms, long cap_ms, int attempt);

#endif
