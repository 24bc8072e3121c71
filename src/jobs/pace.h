/*
 * The pacer of batched deletes: how large the next batch of the retention
 * purge may be and how long to pause before it, so that the purge spares
 * the live writers (in the spirit of pt-archiver's --sleep-coef and
 * --check-slave-lag, and of gh-ost's throttling).
 *
 * It watches the database's response rather than a fixed rate:
 *   - the purge's own batches: each batch's duration, its COMMIT's
 *     duration and the rows it removed, passed by the caller;
 *   - what a writer's commit costs now: at each probe a "flush canary",
 *     a transaction that only takes an xid and commits durably (whatever
 *     the session's synchronous_commit), so its round trip is a commit
 *     that flushes the WAL written before it, the purge's included. A
 *     durable writer feels the purge mostly there (its commits flush the
 *     purge's WAL with their own), which the purge's batches, committed
 *     without waiting for the flush, cannot see;
 *   - other sessions waiting on locks or I/O (pg_stat_activity rows with
 *     wait_event_type Lock, LWLock or IO, the caller's backend excluded),
 *     probed at most every sample_ms, never once per batch; a role without
 *     pg_monitor (or pg_read_all_stats) sees only its own sessions' waits;
 *   - the replay lag of every connected standby (pg_stat_replication:
 *     replay_lag, and the WAL bytes between pg_current_wal_lsn() and
 *     replay_lsn); over the limit, pace_after_batch() waits, bounded, until
 *     the standby has caught up.
 * The controller is AIMD: the batch grows by a small step while batches and
 * commits stay near their idle baseline and nobody waits, and halves (with a
 * doubling pause) when commit latency, batch time or waiters rise. Between
 * batches it asks for a pause proportional to the last batch's duration
 * (sleep_coef), so that the purge leaves the disk and the WAL to the writers
 * part of the time.
 *
 * Typical use, in the purge's batch loop:
 *
 *	struct pace *p = pace_new(&po);      // po zeroed: defaults
 *	long size = pace_first_batch(p), pause = 0;
 *	for (;;) {
 *		... delete up to size rows, timing the batch and its COMMIT ...
 *		r = pace_after_batch(p, db, rows, batch_ms, commit_ms,
 *				     &size, &pause, stop, err);
 *		if (r != 0) break;        // OPS_E_STOPPED, OPS_E_DB, ...
 *		if (ops_sleep_ms(pause, stop) != 0) break;
 *	}
 *	pace_stats_get(p, &st);              // for the result and the log
 *	pace_free(p);
 *
 * Thread safety: a struct pace belongs to one thread (with the struct db it
 * probes through); different struct pace may be used in different threads.
 * pace_decide() and pace_opts_resolve() are pure and may be called from any
 * thread.
 */
#ifndef OPS_JOBS_PACE_H
#define OPS_JOBS_PACE_H

#include <signal.h>
#include <stdbool.h>

#include "core/err.h"

struct db;

/*
 * Knobs. Zero in any field means its default (the PACE_DEFAULT_* values);
 * pace_opts_resolve() shows the effective set.
 */
struct pace_opts {
	long target_ms;	  /* a batch longer than this is a back-off signal */
	long min_batch;	  /* least and first batch size */
	long max_batch;	  /* largest batch size */
	long start_batch; /* first batch size, clamped to [min, max] */
	/*
	 * Pause after each batch = sleep_coef x that batch's duration
	 * (pt-archiver --sleep-coef). Negative: no proportional pause.
	 */
	double sleep_coef;
	long max_pause_ms; /* longest pause the controller asks for */
	/*
	 * Back off when more than this many other sessions wait on
	 * Lock/LWLock/IO (a smoothed count of the probes).
	 */
	double max_waiters;
	/*
	 * Back off when the flush canary's smoothed round trip exceeds this
	 * multiple of its floor (the least seen, slowly forgotten).
	 */
	double max_flush_ratio;
	long sample_ms;		 /* least interval between two probes */
	long max_lag_ms;	 /* standby replay_lag that makes it wait */
	long long max_lag_bytes; /* WAL not yet replayed that makes it wait */
	/* Longest single wait for a standby; after it OPS_E_CONFLICT. */
	long max_lag_wait_ms;
	bool no_probe; /* never query pg_stat_*: batch timings only */
};

#define PACE_DEFAULT_TARGET_MS	     100
#define PACE_DEFAULT_MIN_BATCH	     500
#define PACE_DEFAULT_MAX_BATCH	     10000
#define PACE_DEFAULT_SLEEP_COEF	     2.0
#define PACE_DEFAULT_MAX_PAUSE_MS    2000
#define PACE_DEFAULT_MAX_WAITERS     1.0
#define PACE_DEFAULT_MAX_FLUSH_RATIO 1.5
#define PACE_DEFAULT_SAMPLE_MS	     100
/* the defaults of APEXOPS_PURGE_MAX_LAG_MS, _BYTES and _WAIT_S (config.c;
 * tests/unit/test_pace.c holds them equal) */
#define PACE_DEFAULT_MAX_LAG_MS	     1000
#define PACE_DEFAULT_MAX_LAG_BYTES   (16LL * 1024 * 1024)
#define PACE_DEFAULT_MAX_LAG_WAIT_MS 300000

/*
 * Copy in (NULL: all defaults) to out with every zero field replaced by its
 * default and min <= start <= max enforced. Pure.
 */
void pace_opts_resolve(const struct pace_opts *in, struct pace_opts *out);

/* What one batch (and the latest probe) showed: pace_decide()'s input. */
struct pace_sample {
	long rows;	  /* rows the batch removed */
	double batch_ms;  /* the whole batch transaction */
	double commit_ms; /* its COMMIT alone */
	/*
	 * Other sessions waiting on Lock/LWLock/IO at a probe taken since
	 * the previous batch; negative when no probe was taken.
	 */
	double waiters;
	/*
	 * The flush canary's round trip (ms) at that probe; 0 or negative
	 * when none was taken.
	 */
	double flush_ms;
};

/* The controller's memory; zero it before the first pace_decide(). */
struct pace_state {
	long batch;	       /* the current batch size; 0: not started */
	double base_commit_ms; /* idle baseline of commit latency */
	double base_row_ms;    /* idle baseline of batch time per row */
	double waiters_avg;    /* smoothed waiters of the probes */
	double base_flush_ms;  /* floor of the flush canary's round trip */
	double flush_avg;      /* smoothed canary round trip */
	double flush_coef;     /* extra pause coefficient the canary set */
	int congested;	       /* consecutive back-off decisions */
	long long decisions;   /* pace_decide() calls */
	long long backoffs;    /* of which backed off */
	char reason[32];       /* why the last decision backed off, or "" */
};

/*
 * The AIMD controller, pure (no clock, no database): update s with in and
 * give the size of the next batch and the pause before it. o is resolved
 * with pace_opts_resolve() first (NULL: defaults). Returns true when it
 * backed off (s->reason says why: "commit", "batch", "target",
 * "waiters", "flush").
 */
bool pace_decide(const struct pace_opts *o, struct pace_state *s,
		 const struct pace_sample *in, long *next_batch,
		 long *pause_ms);

struct pace; /* opaque: options, controller state, probe clock, stats */

/* A new pacer (free with pace_free()); o may be NULL (defaults). Never
 * fails (allocation failure aborts). */
struct pace *pace_new(const struct pace_opts *o);
/* Free p. NULL is a no-op. */
void pace_free(struct pace *p);

/* The size of the first batch. */
long pace_first_batch(const struct pace *p);

/*
 * Report one committed batch (rows removed, the transaction's duration and
 * its COMMIT's, in ms) and get the next batch's size (*next_batch) and the
 * pause before it (*pause_ms, which the caller sleeps with ops_sleep_ms()).
 * Call it outside a transaction, on the purge's own connection db.
 *
 * When sample_ms has passed since the last probe (and not o->no_probe) it
 * counts the waiting sessions, reads pg_stat_replication and runs the
 * flush canary (one more round trip, and one xid, per probe). When a
 * standby's lag is over max_lag_ms / max_lag_bytes it waits here, polling
 * every sample_ms through ops_sleep_ms(), until every standby has replayed
 * the WAL written before the wait (pg_current_wal_lsn() at its start) or
 * has disconnected; after the wait the batch restarts at min_batch. A
 * standby reports its replay position with each write/flush reply or every
 * wal_receiver_status_interval (10 s by default), so on a primary with no
 * other writes a wait can outlast the catch-up by up to that interval. A
 * standby whose LSNs the role may not read (not pg_monitor /
 * pg_read_all_stats) is counted in stats.lag_hidden and cannot be waited
 * for.
 *
 * Returns 0; OPS_E_STOPPED when *stop (may be NULL) is set during a wait;
 * OPS_E_CONFLICT (transient) when a standby stays behind longer than
 * max_lag_wait_ms; OPS_E_DB when a probe fails. The out-params are set on
 * every path (to min_batch and 0 on failure).
 */
int pace_after_batch(struct pace *p, struct db *db, long rows, double batch_ms,
		     double commit_ms, long *next_batch, long *pause_ms,
		     const volatile sig_atomic_t *stop, struct ops_err *err)
	__attribute__((warn_unused_result));

/* What the pacer did so far: for the purge's result and its log. */
struct pace_stats {
	long long batches;	 /* pace_after_batch() calls */
	long long backoffs;	 /* decisions that shrank the batch */
	long long pauses;	 /* non-zero pauses asked for */
	double pause_ms;	 /* their sum */
	long long probes;	 /* probe rounds run */
	long long lag_waits;	 /* waits for a standby */
	double lag_wait_ms;	 /* their total duration */
	double max_lag_ms;	 /* largest standby lag seen, ms */
	long long max_lag_bytes; /* largest standby lag seen, bytes */
	long long lag_hidden;	 /* probes that saw a standby without LSNs */
	double waiters;		 /* smoothed waiters at the last probe */
	double flush_ms;	 /* smoothed flush canary, ms */
	double base_flush_ms;	 /* its floor, ms */
	double max_flush_ms;	 /* the slowest canary, ms */
	long batch;		 /* the current batch size */
	long batch_lo, batch_hi; /* least and largest size used */
	char last_backoff[32];	 /* the last back-off reason, or "" */
};

/* Copy p's counters into *out. */
void pace_stats_get(const struct pace *p, struct pace_stats *out);

#endif
