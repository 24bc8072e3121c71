/*
 * apexops worker: runs queue jobs (jobs/queue.h) with N handler threads.
 * The main thread claims jobs in batches (holding as many as the handlers
 * finish in two round trips, claiming again when half are gone, so
 * handlers run while it waits on the database) and hands them to the
 * handlers; a completer thread reports what they finished on a second
 * connection (the successes in one statement per batch, failures with
 * backoff), so the database completes one batch while it claims the
 * next. The main thread sleeps on LISTEN apexops_queue with a poll
 * fallback, renews the leases of the jobs it
 * holds and reaps lapsed ones. While it could start a job at once (a
 * free handler, nothing queued, the last claim short) its row of
 * apexops.queue_idle is ready and apexops.enqueue() hands it new jobs
 * directly (jobs/queue_handoff.h), in a notification on its own
 * channel: no claim round trip between the enqueue and the start. Kinds of
 * WORKER_POOL_PRIVACY run on at most cfg->privacy_worker_concurrency handlers
 * at once, and no more of them are claimed than can start: one never waits here
 * behind others while another worker could run it. SIGTERM: no new claims,
 * prefetched jobs are given back, running ones get a grace period, then their
 * stop flag. It never exits because a job failed.
 *
 * Thread safety: call from the main thread.
 */
#ifndef OPS_DAEMON_WORKER_H
#define OPS_DAEMON_WORKER_H

#include <signal.h>
#include <stdbool.h>

#include "core/config.h"
#include "core/err.h"

struct db;

/* What a handler gets for one job. */
struct worker_job {
	long long id;
	const char *kind;
	const char *payload; /* JSON text */
	int attempt;
	volatile sig_atomic_t *stop;  /* set when the worker stops */
	const struct ops_config *cfg; /* the worker's configuration */
	const char *db_url; /* connect with this (handlers open their own) */
	/* the handler fills on failure */
	bool permanent; /* do not retry */
	char error[256];
};

/* Which concurrency limit a kind counts against. */
enum worker_pool {
	WORKER_POOL_DEFAULT, /* APEXOPS_WORKER_CONCURRENCY handlers */
	WORKER_POOL_PRIVACY  /* at most PRIVACY_WORKER_CONCURRENCY of them */
};

/* A job kind and its handler: 0 on success, else a failure with
 * job->error (and job->permanent) filled. */
struct worker_kind {
	const char *kind;
	int (*handle)(struct worker_job *job);
	int max_attempts; /* default for enqueue; informational */
	enum worker_pool pool;
	const char *summary;
};

/* defined in worker_kinds.c; handlers run on handler threads and must
 * be thread-safe */
extern const struct worker_kind worker_kinds[];
extern const int worker_nkinds;

struct worker_opts {
	const char *db_url;
	int concurrency;	  /* handler threads, >= 1 */
	const char *const *kinds; /* NULL: every known kind */
	int nkinds;
	long lease_s;		/* job lease; renewed every third */
	long grace_s;		/* after SIGTERM */
	const char *http_addr;	/* /healthz, /metrics; NULL: off */
	long run_for_s;		/* tests: exit after this many seconds; 0 */
	long exit_when_idle_ms; /* bench: exit after this long without work */
	long poll_ms;		/* tests: LISTEN's poll fallback; 0: 1000 */
	bool no_handoff; /* claim every job (jobs/queue_handoff.h: off) */
	/* tests: the kind table (NULL: worker_kinds); kinds must name its
	 * entries */
	const struct worker_kind *kind_table;
	int nkind_table;
};

/* Run until a stop signal (or o->run_for_s / exit_when_idle_ms). */
int worker_run(const struct ops_config *cfg, const struct worker_opts *o,
	       struct ops_err *err);

#endif
