/*
 * Health and metrics of a daemon (`apexops cron`, `apexops worker`):
 * counters kept in memory and, when asked, served over HTTP by
 * libmicrohttpd: GET /healthz (200 while the loop is alive and the
 * database reachable, 503 otherwise) and GET /metrics (Prometheus text
 * exposition format 0.0.4).
 *
 * Thread safety: every function may be called from several threads (the
 * loop, job threads, the HTTP server's thread); a mutex guards the state.
 */
#ifndef OPS_DAEMON_METRICS_H
#define OPS_DAEMON_METRICS_H

#include <stdbool.h>

#include "core/buf.h"
#include "core/err.h"

struct metrics;

struct metrics *metrics_new(void);
/* Stop serving and free. NULL is a no-op. */
void metrics_free(struct metrics *m);

/* What an address for metrics_serve() must be, for messages. */
#define METRICS_ADDR_EXPECTED                                             \
	"expected HOST:PORT with a numeric address and a port from 1 to " \
	"65535, e.g. 127.0.0.1:9187"

/* Is addr an address metrics_serve() can parse (not whether it can bind
 * it)? Commands check a --http flag with it before starting. */
bool metrics_addr_valid(const char *addr);

/*
 * Serve /healthz and /metrics on addr ("127.0.0.1:9187", "[::1]:9187",
 * "0.0.0.0:9187"; a port alone means 127.0.0.1). OPS_E_CONFIG for an
 * address that cannot be parsed (naming APEXOPS_HTTP_ADDR, as a --http
 * flag was checked before) or bound.
 */
int metrics_serve(struct metrics *m, const char *addr, struct ops_err *err)
	__attribute__((warn_unused_result));

/* The loop made a pass (it is alive). */
void metrics_tick(struct metrics *m);
/* Whether the database answered on the last pass. */
void metrics_set_health(struct metrics *m, bool db_ok);
/* A run of job was claimed lateness seconds after its slot. */
void metrics_claimed(struct metrics *m, const char *job, double lateness);
/* A run ended with status after seconds; success_at: clock time of a
 * success (0: not a success). */
void metrics_finished(struct metrics *m, const char *job, const char *status,
		      double seconds, double success_at);
void metrics_takeover(struct metrics *m, const char *job);
void metrics_missed(struct metrics *m, const char *job, int n);

/* The queue worker's metrics (apexops worker): enable renders their
 * families (empty until used). A claim (with the
 * completions riding on it) took seconds and claimed n jobs. */
void metrics_worker_enable(struct metrics *m);
void metrics_worker_claim(struct metrics *m, double seconds, int n);
/* n jobs handed to this worker by apexops.enqueue() (no claim). */
void metrics_worker_handed(struct metrics *m, int n);
/* A job of kind ended with status ("succeeded", "failed", "dead",
 * "retrying") after its handler ran for seconds. */
void metrics_worker_finished(struct metrics *m, const char *kind,
			     const char *status, double seconds);
/* A snapshot of the queue from the database: unfinished jobs by kind and
 * state, the jobs due now and the age of the oldest of them. */
struct metrics_queue_row {
	char kind[64];
	char state[16];
	long long count;
};
void metrics_worker_queue(struct metrics *m,
			  const struct metrics_queue_row *rows, int n,
			  long long depth, double oldest_age_s);

/* The /metrics text into out; the /healthz answer as the return value
 * (true: healthy). Exposed for tests. */
void metrics_render(struct metrics *m, struct buf *out);
bool metrics_healthy(struct metrics *m);

#endif
