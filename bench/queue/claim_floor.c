/*
 * The floor under the queue design issue 10 names, for bench/queue's
 * trickle case: a worker that sleeps on LISTEN/NOTIFY and, on each
 * notification, claims with FOR UPDATE SKIP LOCKED, and does nothing else.
 * One thread, one connection, no hand-over to a handler: a job "starts"
 * when its claim returns. The claim is apexops's own (src/jobs/queue.c,
 * apexops_queue_claim1, with its commit not waiting for the WAL flush),
 * so "notify" (notification alone) to "claim" (this) is the claim's round
 * trip, and "claim" to "apexops" is what the worker adds on top.
 *
 *   claim_floor URL LOG
 *
 * Records "start ID ATTEMPT US" (US: CLOCK_MONOTONIC microseconds) in
 * memory, writes LOG at SIGTERM. Prints "ready" once listening. Jobs stay
 * 'running' (nothing completes them): the driver checks each ran once.
 * Bench code, not part of apexops; built by bench/queue/run.sh.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static long long
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char claim_sql[] =
	"WITH c AS (SELECT id FROM apexops.queue_jobs"
	"  WHERE kind = $2 AND state IN ('available', 'failed-retrying')"
	"  AND run_at <= now()"
	"  AND (SELECT set_config('synchronous_commit', 'off', true)) = 'off'"
	"  ORDER BY priority DESC, run_at, id LIMIT $3::int"
	"  FOR UPDATE SKIP LOCKED),"
	" u AS (UPDATE apexops.queue_jobs q SET state = 'running',"
	"  attempt = q.attempt + 1, lease_owner = $1,"
	"  lease_expires_at = now() + $4::int * interval '1 s',"
	"  started_at = now(), updated_at = now()"
	"  WHERE q.id = ANY (ARRAY(SELECT id FROM c))"
	"  RETURNING q.id, q.attempt, q.priority, q.run_at)"
	" SELECT id, attempt FROM u ORDER BY priority DESC, run_at, id";

int
main(int argc, char **argv)
{
	const char *params[4] = { "claim-floor", "noop", "8", "300" };
	size_t cap = 1 << 16, len = 0;
	char *out = malloc(cap);
	struct sigaction sa;
	PGconn *c;
	PGresult *r;
	FILE *f;

	if (argc != 3 || out == NULL) {
		fprintf(stderr, "usage: claim_floor URL LOG\n");
		return 64;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	c = PQconnectdb(argv[1]);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "claim_floor: %s", PQerrorMessage(c));
		return 69;
	}
	r = PQprepare(c, "claim", claim_sql, 4, NULL);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "claim_floor: %s", PQerrorMessage(c));
		return 69;
	}
	PQclear(r);
	PQclear(PQexec(c, "LISTEN apexops_queue"));
	printf("ready\n");
	fflush(stdout);
	while (!stop) {
		struct pollfd pfd = { PQsocket(c), POLLIN, 0 };
		PGnotify *n;
		int got = 0;

		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
			break;
		if (!PQconsumeInput(c))
			break;
		while ((n = PQnotifies(c)) != NULL) {
			got = 1;
			PQfreemem(n);
		}
		/* claim until a claim comes back short, as the worker does */
		for (int full = got; full && !stop;) {
			int rows;

			r = PQexecPrepared(c, "claim", 4, params, NULL, NULL,
					   0);
			if (PQresultStatus(r) != PGRES_TUPLES_OK) {
				fprintf(stderr, "claim_floor: %s",
					PQerrorMessage(c));
				PQclear(r);
				return 1;
			}
			rows = PQntuples(r);
			for (int i = 0; i < rows; i++) {
				long long t = now_us();

				if (cap - len < 128) {
					char *o = realloc(out, cap * 2);

					if (o == NULL)
						return 1;
					out = o;
					cap *= 2;
				}
				len += (size_t)snprintf(out + len, cap - len,
							"start %s %s %lld\n",
							PQgetvalue(r, i, 0),
							PQgetvalue(r, i, 1), t);
			}
			full = rows == 8;
			PQclear(r);
		}
	}
	f = fopen(argv[2], "w");
	if (f == NULL || fwrite(out, 1, len, f) != len || fclose(f) != 0) {
		fprintf(stderr, "claim_floor: cannot write %s\n", argv[2]);
		return 1;
	}
	free(out);
	PQfinish(c);
	return 0;
}
