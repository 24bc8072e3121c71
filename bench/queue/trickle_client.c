/*
 * The trickle's enqueuing client in C, for bench/queue's trickle case with
 * TRICKLE_CLIENT=libpq: the same enqueues as bench.mjs makes with
 * node-postgres (one prepared statement per job, one transaction each, on
 * one connection, RATE per second), timed with CLOCK_MONOTONIC around
 * libpq's own call, so that call->start leaves out the JavaScript driver's
 * time (its event loop and garbage collector) and keeps the queue's.
 *
 *   trickle_client URL SQL RATE COUNT WARM OUT
 *
 * SQL takes one parameter, the payload text {"i": K}. First WARM jobs
 * back to back, K = -1..-WARM, then a 1.5 s pause (bench.mjs's warm-up,
 * as graphile-worker's latencyTest does), then the measured jobs, K =
 * 0..COUNT-1, each due at start + K/RATE; the client sleeps until then
 * (clock_nanosleep, absolute: a late wake-up delays that call, not the
 * ones after it) and takes "call" after waking. Writes one line per job
 * to OUT: "K CALL_US ACK_US VALUE", VALUE the first column of the first
 * row (the job's id, where the call returns one). Exit 1 on any error.
 * Bench code, not part of apexops; built by bench/queue/run.sh.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

static long long
ts_us(const struct timespec *ts)
{
	return (long long)ts->tv_sec * 1000000 + ts->tv_nsec / 1000;
}

static long long
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts_us(&ts);
}

/* one enqueue, its own transaction; writes its line to f */
static int
enqueue_one(PGconn *c, FILE *f, long k)
{
	char payload[32];
	const char *params[1] = { payload };
	long long call, ack;
	PGresult *r;

	snprintf(payload, sizeof(payload), "{\"i\": %ld}", k);
	call = now_us();
	r = PQexecPrepared(c, "enq", 1, params, NULL, NULL, 0);
	ack = now_us();
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(stderr, "trickle_client: job %ld: %s", k,
			PQerrorMessage(c));
		PQclear(r);
		return -1;
	}
	fprintf(f, "%ld %lld %lld %s\n", k, call, ack,
		PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return 0;
}

int
main(int argc, char **argv)
{
	struct timespec due;
	long long step_ns;
	long rate, count, warm;
	PGconn *c;
	PGresult *r;
	FILE *f;

	if (argc != 7 || (rate = strtol(argv[3], NULL, 10)) <= 0 ||
	    (count = strtol(argv[4], NULL, 10)) <= 0 ||
	    (warm = strtol(argv[5], NULL, 10)) < 0) {
		fprintf(stderr,
			"usage: trickle_client URL SQL RATE COUNT WARM OUT\n");
		return 64;
	}
	c = PQconnectdb(argv[1]);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "trickle_client: %s", PQerrorMessage(c));
		return 69;
	}
	r = PQprepare(c, "enq", argv[2], 1, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "trickle_client: %s", PQerrorMessage(c));
		return 69;
	}
	PQclear(r);
	f = fopen(argv[6], "w");
	if (f == NULL) {
		fprintf(stderr, "trickle_client: cannot write %s\n", argv[6]);
		return 1;
	}
	for (long k = -1; k >= -warm; k--)
		if (enqueue_one(c, f, k) != 0)
			return 1;
	if (warm > 0)
		nanosleep(&(struct timespec){ 1, 500000000L }, NULL);
	step_ns = 1000000000LL / rate;
	clock_gettime(CLOCK_MONOTONIC, &due);
	due.tv_nsec += 1000000; /* the first job 1 ms from now */
	for (long k = 0; k < count; k++) {
		while (due.tv_nsec >= 1000000000L) {
			due.tv_nsec -= 1000000000L;
			due.tv_sec++;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due,
				       NULL) != 0)
			;
		if (enqueue_one(c, f, k) != 0)
			return 1;
		due.tv_nsec += (long)step_ns;
	}
	PQfinish(c);
	if (fclose(f) != 0) {
		fprintf(stderr, "trickle_client: cannot write %s\n", argv[6]);
		return 1;
	}
	return 0;
}
