/*
 * The purge's pacer: an AIMD controller fed by the purge's batch timings,
 * a bounded-rate probe of waiting sessions and of a durable commit's cost
 * (the flush canary), and a standby lag guard. See
 * pace.h for the contract.
 */
#include "jobs/pace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/stop.h"
#include "core/xalloc.h"
#include "db/db.h"

/* Commit latency under this many ms over twice its baseline is noise. */
#define COMMIT_SLACK_MS 2.0
/* A batch is "slow" per row only when it also took this long. */
#define BATCH_SLACK_MS 10.0
/* The baselines follow a rising latency this slowly (per batch). */
#define BASE_DRIFT 0.02
/* Weight of a new probe in the smoothed waiters count. */
#define WAITERS_ALPHA 0.5
/* Weight of a new canary in its smoothed round trip. */
#define FLUSH_ALPHA 0.3
/* A canary this close to its floor (ms) is noise, whatever the ratio. */
#define FLUSH_SLACK_MS 0.3
/* The canary's floor follows a rising round trip this slowly (per probe). */
#define FLUSH_BASE_DRIFT 0.005
/* ... and a falling one this fast */
#define FLUSH_BASE_FALL 0.2
/* The largest extra pause coefficient the canary adds. */
#define MAX_FLUSH_COEF 16.0
/* Consecutive back-offs that stop doubling the pause. */
#define MAX_DOUBLINGS 5

struct pace {
	struct pace_opts o; /* resolved */
	struct pace_state s;
	struct pace_stats st;
	double last_probe; /* monotonic seconds; 0: never */
	bool warned_hidden;
};

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
clampl(long v, long lo, long hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

void
pace_opts_resolve(const struct pace_opts *in, struct pace_opts *out)
{
	static const struct pace_opts none;

	*out = in != NULL ? *in : none;
	if (out->target_ms <= 0)
		out->target_ms = PACE_DEFAULT_TARGET_MS;
	if (out->min_batch <= 0)
		out->min_batch = PACE_DEFAULT_MIN_BATCH;
	if (out->max_batch <= 0)
		out->max_batch = PACE_DEFAULT_MAX_BATCH;
	if (out->max_batch < out->min_batch)
		out->max_batch = out->min_batch;
	if (out->start_batch <= 0)
		out->start_batch = out->min_batch;
	out->start_batch =
		clampl(out->start_batch, out->min_batch, out->max_batch);
	if (out->sleep_coef == 0)
		out->sleep_coef = PACE_DEFAULT_SLEEP_COEF;
	if (out->max_pause_ms <= 0)
		out->max_pause_ms = PACE_DEFAULT_MAX_PAUSE_MS;
	if (out->max_waiters <= 0)
		out->max_waiters = PACE_DEFAULT_MAX_WAITERS;
	if (out->max_flush_ratio <= 0)
		out->max_flush_ratio = PACE_DEFAULT_MAX_FLUSH_RATIO;
	if (out->sample_ms <= 0)
		out->sample_ms = PACE_DEFAULT_SAMPLE_MS;
	if (out->max_lag_ms <= 0)
		out->max_lag_ms = PACE_DEFAULT_MAX_LAG_MS;
	if (out->max_lag_bytes <= 0)
		out->max_lag_bytes = PACE_DEFAULT_MAX_LAG_BYTES;
	if (out->max_lag_wait_ms <= 0)
		out->max_lag_wait_ms = PACE_DEFAULT_MAX_LAG_WAIT_MS;
}

/* Follow a falling value at once, a rising one slowly: a floor that
 * forgets an old lucky sample. */
static void
baseline(double *base, double v)
{
	if (*base <= 0 || v < *base)
		*base = v;
	else
		*base += (v - *base) * BASE_DRIFT;
}

bool
pace_decide(const struct pace_opts *oin, struct pace_state *s,
	    const struct pace_sample *in, long *next_batch, long *pause_ms)
{
	struct pace_opts o;
	double coef, pause, row_ms = 0;
	const char *why = NULL;
	bool flush_congested = false;

	pace_opts_resolve(oin, &o);
	coef = o.sleep_coef < 0 ? 0 : o.sleep_coef;
	if (s->batch <= 0)
		s->batch = o.start_batch;
	s->decisions++;
	if (in->rows > 0)
		row_ms = in->batch_ms / (double)in->rows;
	/* smoothed: a writer caught in its own commit's WAL flush at one
	 * probe is not yet a queue */
	if (in->waiters >= 0)
		s->waiters_avg =
			s->decisions == 1
				? in->waiters
				: s->waiters_avg * (1 - WAITERS_ALPHA) +
					  in->waiters * WAITERS_ALPHA;
	if (in->flush_ms > 0) {
		s->flush_avg = s->flush_avg <= 0
				       ? in->flush_ms
				       : s->flush_avg * (1 - FLUSH_ALPHA) +
						 in->flush_ms * FLUSH_ALPHA;
		flush_congested =
			s->base_flush_ms > 0 &&
			s->flush_avg > s->base_flush_ms * o.max_flush_ratio &&
			s->flush_avg > s->base_flush_ms + FLUSH_SLACK_MS;
		/*
		 * The canary comes once a probe, the batches far more often:
		 * what it finds holds until the next one, as an extra pause
		 * coefficient on every batch, doubled while commits stay slow
		 * and shrunk while they are fast again.
		 */
		if (flush_congested)
			s->flush_coef =
				s->flush_coef < 1
					? 1
					: (s->flush_coef * 2 > MAX_FLUSH_COEF
						   ? MAX_FLUSH_COEF
						   : s->flush_coef * 2);
		else
			s->flush_coef = s->flush_coef * 0.75 < 0.1
						? 0
						: s->flush_coef * 0.75;
	}
	/* compare with the baselines before this sample moves them */
	if (in->waiters >= 0 && s->waiters_avg > o.max_waiters)
		why = "waiters";
	else if (flush_congested)
		why = "flush";
	else if (s->base_commit_ms > 0 &&
		 in->commit_ms > 2 * s->base_commit_ms + COMMIT_SLACK_MS)
		why = "commit";
	else if (s->base_row_ms > 0 && row_ms > 2 * s->base_row_ms &&
		 in->batch_ms > BATCH_SLACK_MS)
		why = "batch";
	else if (in->batch_ms > (double)o.target_ms)
		why = "target";
	if (in->commit_ms >= 0)
		baseline(&s->base_commit_ms, in->commit_ms);
	if (row_ms > 0)
		baseline(&s->base_row_ms, row_ms);
	if (in->flush_ms > 0) {
		/* the floor forgets slowly: a long purge must not come to
		 * take its own load for the idle level */
		if (s->base_flush_ms <= 0)
			s->base_flush_ms = in->flush_ms;
		else if (in->flush_ms < s->base_flush_ms)
			/* quickly, not at once: a commit whose flush another
			 * session had just done is luck, not the idle level */
			s->base_flush_ms += (in->flush_ms - s->base_flush_ms) *
					    FLUSH_BASE_FALL;
		else
			s->base_flush_ms += (in->flush_ms - s->base_flush_ms) *
					    FLUSH_BASE_DRIFT;
	}

	if (why != NULL) {
		int k = s->congested < MAX_DOUBLINGS ? s->congested
						     : MAX_DOUBLINGS;

		s->congested++;
		s->backoffs++;
		s->batch = clampl(s->batch / 2, o.min_batch, o.max_batch);
		/* at least the batch's own time, doubling while it lasts */
		pause = in->batch_ms * (coef > 1 ? coef : 1) *
				(double)(1 << k) +
			in->batch_ms * s->flush_coef;
		snprintf(s->reason, sizeof(s->reason), "%s", why);
	} else {
		s->congested = 0;
		s->reason[0] = '\0';
		/* grow gently, and only when the batch was full: a short
		 * batch says the range is running out, not that it is easy */
		if (in->rows >= s->batch) {
			long step = o.min_batch / 2 > 0 ? o.min_batch / 2 : 1;

			s->batch = clampl(s->batch + step, o.min_batch,
					  o.max_batch);
		}
		pause = in->batch_ms * (coef + s->flush_coef);
	}
	if (pause > (double)o.max_pause_ms)
		pause = (double)o.max_pause_ms;
	if (pause < 0)
		pause = 0;
	*next_batch = s->batch;
	*pause_ms = (long)(pause + 0.5);
	return why != NULL;
}

struct pace *
pace_new(const struct pace_opts *o)
{
	struct pace *p = xcalloc(1, sizeof(*p));

	pace_opts_resolve(o, &p->o);
	p->s.batch = p->o.start_batch;
	p->st.batch = p->st.batch_lo = p->st.batch_hi = p->s.batch;
	return p;
}

void
pace_free(struct pace *p)
{
	free(p);
}

long
pace_first_batch(const struct pace *p)
{
	return p->o.start_batch;
}

void
pace_stats_get(const struct pace *p, struct pace_stats *out)
{
	*out = p->st;
}

/* One probe round's findings. */
struct probe {
	double waiters;
	int standbys;
	int hidden;	  /* standbys without a visible replay_lsn */
	long long bytes;  /* largest unreplayed WAL */
	double lag_ms;	  /* largest replay_lag */
	int behind;	  /* standbys whose replay_lsn < the target */
	char cur_lsn[32]; /* pg_current_wal_lsn() */
};

/*
 * Count the other sessions waiting on locks or I/O, and read every
 * connected standby's lag; behind counts the standbys that have not yet
 * replayed target (an LSN text; "0/0" when there is none).
 */
static int
probe(struct db *db, const char *target, struct probe *pr, struct ops_err *err)
{
	static const char sql[] =
		"SELECT (SELECT count(*) FROM pg_stat_activity"
		"  WHERE pid <> pg_backend_pid()"
		"  AND backend_type = 'client backend' AND state = 'active'"
		"  AND wait_event_type IN ('Lock', 'LWLock', 'IO')),"
		" count(r.pid),"
		" count(r.pid) FILTER (WHERE r.state IS NULL),"
		" COALESCE(max(pg_wal_lsn_diff(pg_current_wal_lsn(),"
		"  r.replay_lsn)), 0)::bigint,"
		" COALESCE(max(EXTRACT(epoch FROM r.replay_lag) * 1000), 0)"
		"  ::float8,"
		" count(r.pid) FILTER (WHERE r.replay_lsn < $1::pg_lsn),"
		" pg_current_wal_lsn()::text"
		" FROM pg_stat_replication r";
	const char *params[1] = { target };
	struct db_res *res = NULL;
	int r;

	memset(pr, 0, sizeof(*pr));
	r = db_query(db, sql, 1, params, &res, err);
	if (r != 0)
		return ops_err_prefix(err, "pacer: probing activity");
	pr->waiters = (double)db_res_ll(res, 0, 0);
	pr->standbys = (int)db_res_ll(res, 0, 1);
	pr->hidden = (int)db_res_ll(res, 0, 2);
	pr->bytes = db_res_ll(res, 0, 3);
	pr->lag_ms = db_res_double(res, 0, 4);
	pr->behind = (int)db_res_ll(res, 0, 5);
	snprintf(pr->cur_lsn, sizeof(pr->cur_lsn), "%s",
		 db_res_get(res, 0, 6) ? db_res_get(res, 0, 6) : "0/0");
	db_res_free(res);
	return 0;
}

/*
 * The flush canary: one statement, so one implicit transaction, that takes
 * an xid (a commit record to write) and makes its own commit durable with
 * a transaction-local synchronous_commit = on; its round trip is what a
 * durable writer's commit costs now. *ms gets it.
 */
static int
flush_canary(struct db *db, double *ms, struct ops_err *err)
{
	double t0 = mono_now();
	int r = db_exec(db,
			"SELECT set_config('synchronous_commit', 'on', true),"
			" txid_current()",
			0, NULL, NULL, err);

	*ms = (mono_now() - t0) * 1000.0;
	return r != 0 ? ops_err_prefix(err, "pacer: the flush canary") : 0;
}

static void
note_probe(struct pace *p, const struct probe *pr)
{
	p->st.probes++;
	if (pr->bytes > p->st.max_lag_bytes)
		p->st.max_lag_bytes = pr->bytes;
	if (pr->lag_ms > p->st.max_lag_ms)
		p->st.max_lag_ms = pr->lag_ms;
	if (pr->hidden > 0) {
		p->st.lag_hidden++;
		if (!p->warned_hidden)
			log_warn("pacer cannot read a standby's replay "
				 "position; grant pg_monitor to check "
				 "replica lag standbys=%d",
				 pr->hidden);
		p->warned_hidden = true;
	}
}

static bool
lagging(const struct pace *p, const struct probe *pr)
{
	return pr->bytes > p->o.max_lag_bytes ||
	       (pr->lag_ms > (double)p->o.max_lag_ms && pr->bytes > 0);
}

/* Wait until every standby has replayed the WAL written before the wait
 * (first->cur_lsn), polling every sample_ms. */
static int
wait_for_standbys(struct pace *p, struct db *db, const struct probe *first,
		  const volatile sig_atomic_t *stop, struct ops_err *err)
{
	char target[32];
	double t0 = mono_now(), waited;
	struct probe pr = *first;
	int r = 0;

	snprintf(target, sizeof(target), "%s", first->cur_lsn);
	p->st.lag_waits++;
	log_info("pacer waiting for a standby to replay lag_bytes=%lld "
		 "lag_ms=%.0f until_lsn=%s",
		 first->bytes, first->lag_ms, target);
	for (;;) {
		waited = (mono_now() - t0) * 1000.0;
		if (waited >= (double)p->o.max_lag_wait_ms) {
			r = ops_fail(err, OPS_E_CONFLICT, true,
				     "pacer: a standby is still behind %s "
				     "after %.0f ms (lag %lld bytes, %.0f ms; "
				     "the guard waits over %lld bytes or "
				     "%ld ms: --max-lag-bytes, --max-lag)",
				     target, waited, pr.bytes, pr.lag_ms,
				     p->o.max_lag_bytes, p->o.max_lag_ms);
			break;
		}
		r = ops_sleep_ms(p->o.sample_ms, stop);
		if (r != 0) {
			r = ops_fail(err, OPS_E_STOPPED, true,
				     "pacer: stopped while waiting for a "
				     "standby");
			break;
		}
		r = probe(db, target, &pr, err);
		if (r != 0)
			break;
		note_probe(p, &pr);
		if (pr.behind == 0)
			break; /* caught up, or the standby went away */
	}
	p->st.lag_wait_ms += (mono_now() - t0) * 1000.0;
	p->last_probe = mono_now();
	if (r == 0)
		log_info("pacer standby caught up waited_ms=%.0f",
			 (mono_now() - t0) * 1000.0);
	return r;
}

int
pace_after_batch(struct pace *p, struct db *db, long rows, double batch_ms,
		 double commit_ms, long *next_batch, long *pause_ms,
		 const volatile sig_atomic_t *stop, struct ops_err *err)
{
	struct pace_sample in = { rows, batch_ms, commit_ms, -1, 0 };
	struct probe pr;
	bool probed = false;
	double now = mono_now();
	int r;

	*next_batch = p->o.min_batch;
	*pause_ms = 0;
	p->st.batches++;
	if (!p->o.no_probe &&
	    (p->last_probe == 0 ||
	     (now - p->last_probe) * 1000.0 >= (double)p->o.sample_ms)) {
		r = probe(db, "0/0", &pr, err);
		if (r != 0)
			return r;
		r = flush_canary(db, &in.flush_ms, err);
		if (r != 0)
			return r;
		if (in.flush_ms > p->st.max_flush_ms)
			p->st.max_flush_ms = in.flush_ms;
		p->last_probe = now;
		probed = true;
		note_probe(p, &pr);
		in.waiters = pr.waiters;
	}
	if (probed && pr.standbys > 0 && lagging(p, &pr)) {
		r = wait_for_standbys(p, db, &pr, stop, err);
		if (r != 0)
			return r;
		/* restart gently: the standby just showed its limit */
		p->s.batch = p->o.min_batch;
		p->s.congested = 0;
		*next_batch = p->s.batch;
		p->st.batch = p->s.batch;
		p->st.batch_lo = p->s.batch < p->st.batch_lo ? p->s.batch
							     : p->st.batch_lo;
		return 0;
	}
	if (pace_decide(&p->o, &p->s, &in, next_batch, pause_ms)) {
		p->st.backoffs++;
		snprintf(p->st.last_backoff, sizeof(p->st.last_backoff), "%s",
			 p->s.reason);
		log_debug("pacer backing off reason=%s batch=%ld pause_ms=%ld "
			  "batch_ms=%.1f commit_ms=%.2f waiters=%.1f "
			  "flush_ms=%.2f flush_floor_ms=%.2f",
			  p->s.reason, *next_batch, *pause_ms, batch_ms,
			  commit_ms, p->s.waiters_avg, p->s.flush_avg,
			  p->s.base_flush_ms);
	}
	if (*pause_ms > 0) {
		p->st.pauses++;
		p->st.pause_ms += (double)*pause_ms;
	}
	p->st.waiters = p->s.waiters_avg;
	p->st.flush_ms = p->s.flush_avg;
	p->st.base_flush_ms = p->s.base_flush_ms;
	p->st.batch = *next_batch;
	if (*next_batch < p->st.batch_lo)
		p->st.batch_lo = *next_batch;
	if (*next_batch > p->st.batch_hi)
		p->st.batch_hi = *next_batch;
	return 0;
}
