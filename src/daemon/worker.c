/* The queue worker; see worker.h. */
#include "daemon/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/signals.h"
#include "core/stop.h"
#include "core/wake.h"
#include "core/xalloc.h"
#include "daemon/metrics.h"
#include "db/db.h"
#include "jobs/queue.h"
#include "jobs/queue_handoff.h"

/* How many jobs to hold claimed: enough for the handlers to run on
 * through two claims' round trips at the rate they finish jobs (so slow
 * jobs are not hoarded from other workers, fast ones never starve), at
 * least two per handler, at most PREFETCH_MAX. */
#define PREFETCH_MAX	    4096
#define POLL_MS		    1000 /* LISTEN's fallback */
#define REAP_MS		    5000 /* lapsed leases of dead workers */
#define JOIN_RETRY_S	    30	 /* a failed handoff join, tried again */
#define CLAIM_BACKOFF_MAX_S 30	 /* failed claims, at most this apart */
#define QUEUE_METRICS_MS    5000 /* the queue's snapshot for /metrics */
#define FINAL_WAIT_S	    30.0 /* after the stop flag */
#define NPOOLS		    2

struct item {
	struct queue_job job;
	int pool; /* enum worker_pool */
	int rc;
	bool permanent;
	double started, seconds; /* the handler's, monotonic */
	char error[256];
};

/* a FIFO of items */
struct fifo {
	struct item **v;
	int head, n, cap;
};

static void
fifo_push(struct fifo *f, struct item *it)
{
	if (f->n == f->cap) {
		int cap = f->cap ? f->cap * 2 : 256;
		struct item **v = xcalloc((size_t)cap, sizeof(*v));

		for (int k = 0; k < f->n; k++)
			v[k] = f->v[(f->head + k) % f->cap];
		free(f->v);
		f->v = v;
		f->head = 0;
		f->cap = cap;
	}
	f->v[(f->head + f->n) % f->cap] = it;
	f->n++;
}

static struct item *
fifo_pop(struct fifo *f)
{
	struct item *it;

	if (f->n == 0)
		return NULL;
	it = f->v[f->head];
	f->head = (f->head + 1) % f->cap;
	f->n--;
	return it;
}

struct worker {
	const struct worker_opts *o;
	const struct worker_kind *kinds; /* the kind table */
	int nkinds;
	char owner[300];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* jobs claimed, not started, by pool */
	struct fifo todo[NPOOLS];
	/* jobs in handlers, by pool, and the most a pool may have */
	int running[NPOOLS], limit[NPOOLS], nrunning;
	/* jobs finished, not yet reported, and how many the completer holds */
	struct item **done;
	int done_n, done_cap, cbusy;
	/* everything claimed and not yet reported, for lease renewal, and
	 * how many of each pool (running in the database, for this worker) */
	struct item **inflight;
	int ninflight, capinflight, held[NPOOLS];
	/* the completer: its own connection, so that completions run in the
	 * database beside the next claim */
	struct db *cdb;
	pthread_t cthread;
	pthread_cond_t ccv;
	bool cstarted, cquit;
	int low;	   /* wake the loop to claim when fewer are queued */
	double job_s;	   /* moving average of a handler's run, seconds */
	double trip_s_avg; /* ... and of a claim's round trip */
	long long trips;   /* round trips to the database, for the log */
	double trip_s;	   /* ... and the time spent in them */
	bool wake_pending;
	bool quit;		    /* handlers exit */
	volatile sig_atomic_t stop; /* passed to running handlers */
	struct ops_wake wake;
	struct metrics *m;
	const struct ops_config *cfg;
	/* direct handoff (main thread only): the row in apexops.queue_idle
	 * (id 0: none), what it says now (ARMED_*), the connection it
	 * belongs to */
	struct queue_idle idle;
	int armed, session_pid;
	bool leaving;	  /* stopping: handed jobs are given back, not run */
	long long handed; /* jobs handed to this worker */
};

/* What a worker's row of apexops.queue_idle offers (a bit set; 0: not
 * ready). */
#define ARMED_DEFAULT 1 /* the default pool's kinds */
#define ARMED_PRIVACY 2 /* the privacy pool's kinds */

/*
 * The pause before claim number fails + 1 after fails failed ones: the
 * doubling steps 1, 2, 4 ... 30 s with equal jitter (half of each step
 * random), so the workers of a fleet that lost the database together do
 * not all come back in the same instant.
 */
static double
claim_backoff_s(int fails)
{
	return (double)ops_backoff_equal_jitter(1000,
						CLAIM_BACKOFF_MAX_S * 1000L,
						fails > 0 ? fails - 1 : 0) /
	       1000.0;
}

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const struct worker_kind *
kind_in(const struct worker_kind *kinds, int nkinds, const char *kind)
{
	for (int i = 0; i < nkinds; i++)
		if (strcmp(kinds[i].kind, kind) == 0)
			return &kinds[i];
	return NULL;
}

/* The pool a job of kind runs in (unknown kinds: the default pool, where
 * they fail as having no handler). */
static int
pool_of(const struct worker *w, const char *kind)
{
	const struct worker_kind *k = kind_in(w->kinds, w->nkinds, kind);

	return k != NULL && k->pool == WORKER_POOL_PRIVACY
		       ? WORKER_POOL_PRIVACY
		       : WORKER_POOL_DEFAULT;
}

static void
wake_main(struct worker *w)
{
	ops_wake_poke(&w->wake);
}

static int
queued(const struct worker *w)
{
	return w->todo[WORKER_POOL_DEFAULT].n + w->todo[WORKER_POOL_PRIVACY].n;
}

/* The next job a free handler may start, under w->mu: a privacy job while
 * the privacy pool has room, else a default one; NULL when none. */
static struct item *
next_item(struct worker *w)
{
	struct item *it = NULL;

	if (w->todo[WORKER_POOL_PRIVACY].n > 0 &&
	    w->running[WORKER_POOL_PRIVACY] < w->limit[WORKER_POOL_PRIVACY])
		it = fifo_pop(&w->todo[WORKER_POOL_PRIVACY]);
	else
		it = fifo_pop(&w->todo[WORKER_POOL_DEFAULT]);
	if (it != NULL) {
		w->running[it->pool]++;
		w->nrunning++;
	}
	return it;
}

static void *
handler_thread(void *arg)
{
	struct worker *w = arg;

	for (;;) {
		struct item *it;
		const struct worker_kind *k;
		struct worker_job job;
		bool wake = false;

		pthread_mutex_lock(&w->mu);
		while ((it = next_item(w)) == NULL && !w->quit)
			pthread_cond_wait(&w->cv, &w->mu);
		if (it == NULL) {
			pthread_mutex_unlock(&w->mu);
			return NULL;
		}
		pthread_mutex_unlock(&w->mu);

		memset(&job, 0, sizeof(job));
		job.id = it->job.id;
		job.kind = it->job.kind;
		job.payload = it->job.payload;
		job.attempt = it->job.attempt;
		job.stop = &w->stop;
		job.cfg = w->cfg;
		job.db_url = w->o->db_url;
		k = kind_in(w->kinds, w->nkinds, it->job.kind);
		it->started = mono();
		if (k == NULL) {
			it->rc = -1;
			it->permanent = true;
			snprintf(it->error, sizeof(it->error),
				 "no handler for kind '%s' in this worker",
				 it->job.kind);
		} else {
			it->rc = k->handle(&job);
			it->permanent = job.permanent;
			snprintf(it->error, sizeof(it->error), "%s", job.error);
		}
		it->seconds = mono() - it->started;
		pthread_mutex_lock(&w->mu);
		w->job_s = w->job_s == 0 ? it->seconds
					 : 0.95 * w->job_s + 0.05 * it->seconds;
		if (w->done_n == w->done_cap) {
			w->done_cap = w->done_cap ? w->done_cap * 2 : 256;
			w->done =
				xrealloc(w->done, sizeof(*w->done) *
							  (size_t)w->done_cap);
		}
		w->done[w->done_n++] = it;
		if (w->done_n == 1)
			pthread_cond_signal(&w->ccv); /* the completer */
		w->running[it->pool]--;
		w->nrunning--;
		/* a privacy slot freed: a waiting handler may take one */
		if (it->pool == WORKER_POOL_PRIVACY &&
		    w->todo[WORKER_POOL_PRIVACY].n > 0)
			pthread_cond_broadcast(&w->cv);
		/* the loop sleeps until it has something to do: claim (few
		 * left, or a privacy slot free) or notice it is idle */
		if (!w->wake_pending &&
		    (queued(w) < w->low || it->pool == WORKER_POOL_PRIVACY ||
		     (w->nrunning == 0 && queued(w) == 0))) {
			w->wake_pending = true;
			wake = true;
		}
		pthread_mutex_unlock(&w->mu);
		if (wake)
			wake_main(w);
	}
}

static void
free_item(struct item *it)
{
	free(it->job.payload);
	free(it);
}

/* Drop it from the in-flight list (no longer ours to renew), under
 * w->mu. */
static void
forget(struct worker *w, const struct item *it)
{
	for (int k = 0; k < w->ninflight; k++)
		if (w->inflight[k] == it) {
			w->inflight[k] = w->inflight[--w->ninflight];
			w->held[it->pool]--;
			return;
		}
}

/* Forget and free items the database took (or that are let go). */
static void
retire(struct worker *w, struct item **v, int n)
{
	bool privacy = false;

	pthread_mutex_lock(&w->mu);
	for (int i = 0; i < n; i++) {
		forget(w, v[i]);
		privacy = privacy || v[i]->pool == WORKER_POOL_PRIVACY;
	}
	pthread_mutex_unlock(&w->mu);
	for (int i = 0; i < n; i++)
		free_item(v[i]);
	if (privacy)
		wake_main(w); /* a privacy slot is free: claim again */
}

/* Give finished items back to the done list (the database did not take
 * them; the leases protect their jobs meanwhile). */
static void
requeue_done(struct worker *w, struct item **done, int n)
{
	pthread_mutex_lock(&w->mu);
	for (int i = 0; i < n; i++) {
		if (w->done_n == w->done_cap) {
			w->done_cap = w->done_cap ? w->done_cap * 2 : 256;
			w->done =
				xrealloc(w->done, sizeof(*w->done) *
							  (size_t)w->done_cap);
		}
		w->done[w->done_n++] = done[i];
	}
	pthread_mutex_unlock(&w->mu);
}

/* Queue b's jobs for the handlers and note them in flight; got[pool] is
 * raised by the jobs of each pool. */
static void
push_todo(struct worker *w, struct queue_batch *b, int got[NPOOLS])
{
	if (b->n == 0)
		return;
	pthread_mutex_lock(&w->mu);
	if (w->ninflight + b->n > w->capinflight) {
		w->capinflight = (w->ninflight + b->n) * 2;
		w->inflight =
			xrealloc(w->inflight,
				 sizeof(*w->inflight) * (size_t)w->capinflight);
	}
	for (int i = 0; i < b->n; i++) {
		struct item *it = xcalloc(1, sizeof(*it));

		it->job = b->v[i];
		b->v[i].payload = NULL; /* moved to the item */
		it->pool = pool_of(w, it->job.kind);
		w->inflight[w->ninflight++] = it;
		w->held[it->pool]++;
		got[it->pool]++;
		fifo_push(&w->todo[it->pool], it);
	}
	/* one handler woken per job, not all of them: on a small machine a
	 * herd of handlers waking for one job is what delays its start */
	if (b->n >= w->o->concurrency)
		pthread_cond_broadcast(&w->cv);
	else
		for (int i = 0; i < b->n; i++)
			pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* The notifications read from the main connection: the generic ones
 * (jobs to claim) are counted, a handoff's job is queued at once. */
struct notes {
	struct worker *w;
	int generic, handed;
};

static void
on_note(void *arg, const char *channel, const char *payload)
{
	struct notes *n = arg;
	struct worker *w = n->w;
	struct queue_batch b = { NULL, 0 };
	struct queue_job job;
	char why[96];
	int got[NPOOLS] = { 0, 0 };

	if (w->idle.id == 0 || strcmp(channel, w->idle.channel) != 0) {
		n->generic++;
		return;
	}
	/* the row said ready once and has been taken */
	w->armed = 0;
	if (w->leaving) /* the sweep that follows gives it back */
		return;
	if (!queue_handoff_parse(payload, &job, why, sizeof(why))) {
		/* not apexops.enqueue()'s: a job handed with it, if any,
		 * comes back when its lease lapses */
		log_warn("a notification on this worker's channel is not a "
			 "job error=%s",
			 log_q(why));
		return;
	}
	b.v = &job;
	b.n = 1;
	push_todo(w, &b, got);
	free(job.payload); /* push_todo moved it, unless it failed */
	n->handed++;
	w->handed++;
	metrics_worker_handed(w->m, 1);
}

/* db_notifies() on the main connection through on_note(). */
static int
read_notes(struct worker *w, struct db *db, struct notes *n,
	   struct ops_err *err)
{
	int count = 0;

	n->w = w;
	n->generic = n->handed = 0;
	return db_notifies_each(db, on_note, n, &count, err);
}

/*
 * One round trip on db: complete the successes among done[0..ndone-1],
 * then record the failures one by one. The reported items are retired;
 * on a connection failure they go back to the done list. Called by the
 * completer, on its own connection, and by the loop for what is left at
 * the end.
 */
static int
report_trip(struct worker *w, struct db *db, struct item **done, int ndone,
	    struct ops_err *err)
{
	long long *ids = xcalloc((size_t)ndone + 1, sizeof(*ids));
	int *att = xcalloc((size_t)ndone + 1, sizeof(*att));
	int nok = 0, r = 0, handled;

	for (int i = 0; i < ndone; i++)
		if (done[i]->rc == 0) {
			ids[nok] = done[i]->job.id;
			att[nok++] = done[i]->job.attempt;
		}
	/* apexops.queue_claim() with no claim: its fenced update is the one
	 * that stays fast for a burst's big batches */
	if (nok > 0) {
		struct queue_batch none = { NULL, 0 };

		r = queue_complete_claim(db, ids, att, nok, NULL, 0, 0,
					 w->owner, w->o->lease_s, &none, err);
		queue_batch_release(&none);
	}
	/* without an error, every success is recorded: report the failures;
	 * [0, handled) are the items the database took */
	handled = r == 0 ? ndone : 0;
	for (int i = 0; r == 0 && i < ndone; i++) {
		struct item *it = done[i];
		char state[16];
		long delay;
		int fr;

		if (it->rc == 0) {
			metrics_worker_finished(w->m, it->job.kind, "succeeded",
						it->seconds);
			continue;
		}
		delay = queue_retry_delay_ms(it->job.attempt);
		fr = queue_fail(db, it->job.id, it->job.attempt, w->owner,
				it->error, it->permanent, delay, state, err);
		if (fr == OPS_E_CONFLICT) {
			ops_err_clear(err);
			continue;
		}
		if (fr != 0) {
			r = fr;
			handled = i;
			break;
		}
		metrics_worker_finished(
			w->m, it->job.kind,
			strcmp(state, QUEUE_DEAD) == 0 ? "dead" : "retrying",
			it->seconds);
		log_warn("job failed id=%lld kind=%s attempt=%d "
			 "state=%s error=%s",
			 it->job.id, it->job.kind, it->job.attempt, state,
			 log_q(it->error));
	}
	free(ids);
	free(att);
	retire(w, done, handled);
	if (r != 0 &&
	    !(err != NULL && (err->transient || err->code == OPS_E_CONNECT))) {
		/* a failure a retry will not cure: let these jobs go, so
		 * that their leases lapse and they are retried (by the reaper,
		 * on any worker) rather than held here for ever */
		log_error("cannot record results; their jobs will be retried "
			  "after their leases count=%d error=%s",
			  ndone - handled, log_q(err != NULL ? err->msg : ""));
		retire(w, done + handled, ndone - handled);
	} else if (r != 0) {
		/* the database went away: keep them for the next pass (a
		 * success already recorded is fenced off the second time) */
		requeue_done(w, done + handled, ndone - handled);
	}
	return r;
}

/*
 * One claim round trip on db for every pool p with claim[p], up to room[p]
 * jobs of its kinds pk[p][0..npk[p]-1]; got[p] gets how many came. The
 * jobs are queued for the handlers.
 */
static int
claim_trip(struct worker *w, struct db *db, const char *const pk[NPOOLS][64],
	   const int npk[NPOOLS], const int room[NPOOLS],
	   const bool claim[NPOOLS], int got[NPOOLS], struct ops_err *err)
{
	struct queue_pool_claim pc[NPOOLS];
	struct queue_batch b = { NULL, 0 };
	int n = 0, r = 0;
	double t0, dt;

	t0 = mono();
	for (int p = 0; p < NPOOLS; p++) {
		got[p] = 0;
		if (claim[p])
			pc[n++] = (struct queue_pool_claim){ pk[p], npk[p],
							     room[p] };
	}
	if (n == NPOOLS && npk[0] <= QUEUE_POOL_KINDS &&
	    npk[1] <= QUEUE_POOL_KINDS) {
		r = queue_claim_pools(db, pc, n, w->owner, w->o->lease_s, &b,
				      err);
		push_todo(w, &b, got);
		queue_batch_release(&b);
	} else {
		/* one pool, or a pool of more kinds than one statement
		 * names: each claimed on its own; what came is ours to run
		 * even if a later claim fails */
		for (int i = 0; r == 0 && i < n; i++) {
			r = queue_claim(db, pc[i].kinds, pc[i].nkinds,
					pc[i].limit, w->owner, w->o->lease_s,
					&b, err);
			push_todo(w, &b, got);
			queue_batch_release(&b);
		}
	}
	dt = mono() - t0;
	if (r == 0) {
		pthread_mutex_lock(&w->mu);
		w->trips++;
		w->trip_s += dt;
		w->trip_s_avg = w->trip_s_avg == 0
					? dt
					: 0.8 * w->trip_s_avg + 0.2 * dt;
		pthread_mutex_unlock(&w->mu);
		metrics_worker_claim(w->m, dt, got[0] + got[1]);
	}
	return r;
}

/* Take the done list (caller frees the array), under w->mu. */
static struct item **
take_done_locked(struct worker *w, int *n)
{
	struct item **done = w->done;

	*n = w->done_n;
	w->done = NULL;
	w->done_n = w->done_cap = 0;
	return done;
}

/*
 * The completer thread: whatever handlers finished, in one round trip
 * on its own connection, while the loop claims on the other; so the
 * batch grows with the backlog and the database works on both at once.
 */
static void *
completer_thread(void *arg)
{
	struct worker *w = arg;
	volatile sig_atomic_t no_stop = 0;

	for (;;) {
		struct ops_err e = OPS_ERR_INIT;
		struct item **done;
		int n = 0, rc;
		bool idle, quitting;

		pthread_mutex_lock(&w->mu);
		while (w->done_n == 0 && !w->cquit)
			pthread_cond_wait(&w->ccv, &w->mu);
		if (w->done_n == 0) {
			pthread_mutex_unlock(&w->mu);
			return NULL;
		}
		done = take_done_locked(w, &n);
		w->cbusy = n;
		pthread_mutex_unlock(&w->mu);
		rc = db_reconnect(w->cdb, &e);
		if (rc == 0)
			rc = report_trip(w, w->cdb, done, n, &e);
		else
			requeue_done(w, done, n);
		free(done);
		pthread_mutex_lock(&w->mu);
		w->cbusy = 0;
		idle = w->nrunning == 0 && queued(w) == 0 && w->done_n == 0;
		quitting = w->cquit;
		pthread_mutex_unlock(&w->mu);
		if (rc != 0) {
			log_warn("reporting results failed error=%s",
				 log_q(e.msg));
			if (quitting)
				return NULL; /* the loop reports what is left */
			/* not cut short by the stop flag: this wait is what
			 * keeps an outage from turning into a busy loop */
			if (ops_sleep_ms(500, &no_stop) != 0)
				continue;
		} else if (idle) {
			wake_main(w); /* it may be done */
		}
	}
}

/* The ids of every job this process holds, for lease renewal (caller
 * frees). */
static long long *
held_ids(struct worker *w, int *n)
{
	long long *ids;

	pthread_mutex_lock(&w->mu);
	*n = w->ninflight;
	ids = xcalloc((size_t)*n + 1, sizeof(*ids));
	for (int i = 0; i < *n; i++)
		ids[i] = w->inflight[i]->job.id;
	pthread_mutex_unlock(&w->mu);
	return ids;
}

/* Give back the jobs handed to this worker that it does not hold (their
 * notification never came, or came too late to start). */
static int
handoff_sweep(struct worker *w, struct db *db, const char *when,
	      struct ops_err *err)
{
	int n = 0, released = 0, r;
	long long *ids = held_ids(w, &n);

	r = queue_release_orphans(db, w->owner, ids, n, &released, err);
	free(ids);
	if (r == 0 && released > 0)
		log_info("gave back jobs handed to this worker %s count=%d",
			 when, released);
	return r;
}

/* Register for handoffs on db, the main connection; after a lost
 * session, first give back what was handed to the old one. */
static int
handoff_join(struct worker *w, struct db *db, bool after_loss,
	     struct ops_err *err)
{
	if (after_loss &&
	    handoff_sweep(w, db, "while its connection was lost", err) != 0)
		return err != NULL ? err->code : OPS_E_DB;
	if (queue_idle_register(db, w->owner, w->o->lease_s, &w->idle, err) !=
	    0)
		return err != NULL ? err->code : OPS_E_DB;
	w->armed = 0;
	return 0;
}

/*
 * Stopping: delete the row (waiting a little for an enqueuer that holds
 * it), then give back every job handed to this worker that no handler
 * has: a stopping worker starts no job it was handed, as it claims none.
 */
static void
handoff_leave(struct worker *w, struct db *db)
{
	struct ops_err e = OPS_ERR_INIT;
	struct notes nt;
	long wait_ms = w->o->grace_s * 1000;

	if (wait_ms > 5000)
		wait_ms = 5000;
	if (wait_ms < 100)
		wait_ms = 100;
	w->leaving = true;
	if (queue_idle_leave(db, w->idle.id, wait_ms, &e) != 0) {
		log_warn("leaving the idle workers failed; a job handed to "
			 "this worker now comes back when its lease lapses "
			 "error=%s",
			 log_q(e.msg));
		ops_err_clear(&e);
	}
	if (read_notes(w, db, &nt, &e) != 0)
		ops_err_clear(&e);
	w->idle.id = 0;
	w->armed = 0;
	if (handoff_sweep(w, db, "as it stops", &e) != 0) {
		log_warn("giving back handed jobs failed; their leases will "
			 "lapse error=%s",
			 log_q(e.msg));
		ops_err_clear(&e);
	}
}

/*
 * Say in the row what this worker can start at once: the default pool's
 * kinds while a handler is free and nothing waits for one, the privacy
 * pool's too while it has room; nothing while a claim may still find
 * jobs (more[p]: a handoff must not overtake the queue) or it stops.
 * One round trip, only when that changes.
 */
static void
handoff_arm(struct worker *w, struct db *db, bool stopping,
	    const bool more[NPOOLS], const char *const pk[NPOOLS][64],
	    const int npk[NPOOLS])
{
	struct ops_err e = OPS_ERR_INIT;
	const char *kinds[2 * 64];
	int nk = 0, want = 0;
	bool set = false, privacy_room, blocked;

	pthread_mutex_lock(&w->mu);
	privacy_room =
		w->held[WORKER_POOL_PRIVACY] < w->limit[WORKER_POOL_PRIVACY];
	blocked = stopping ||
		  (more[WORKER_POOL_DEFAULT] && npk[WORKER_POOL_DEFAULT] > 0) ||
		  (more[WORKER_POOL_PRIVACY] && npk[WORKER_POOL_PRIVACY] > 0 &&
		   privacy_room);
	if (!blocked && queued(w) + w->nrunning < w->o->concurrency) {
		if (npk[WORKER_POOL_DEFAULT] > 0)
			want |= ARMED_DEFAULT;
		if (npk[WORKER_POOL_PRIVACY] > 0 && privacy_room)
			want |= ARMED_PRIVACY;
	}
	pthread_mutex_unlock(&w->mu);
	if (want == w->armed)
		return;
	for (int p = 0; p < NPOOLS; p++)
		if (want &
		    (p == WORKER_POOL_DEFAULT ? ARMED_DEFAULT : ARMED_PRIVACY))
			for (int k = 0; k < npk[p]; k++)
				kinds[nk++] = pk[p][k];
	if (queue_idle_set(db, w->idle.id, want != 0, kinds, nk, &set, &e) !=
	    0) {
		log_warn("cannot update this worker's handoff row error=%s",
			 log_q(e.msg));
		ops_err_clear(&e);
		return;
	}
	/* not set: an enqueuer holds the row; its handoff (or rollback)
	 * decides, and the next pass tries again */
	if (set)
		w->armed = want;
}

/* The queue's snapshot for /metrics: unfinished jobs by kind and state
 * (read through the partial indexes), the jobs due and the oldest's age. */
static void
queue_snapshot(struct worker *w, struct db *db)
{
	struct ops_err e = OPS_ERR_INIT;
	struct db_res *res = NULL;
	struct metrics_queue_row rows[64];
	long long depth = 0;
	double oldest = 0;
	int n = 0;

	if (db_query(db,
		     "SELECT kind, state, count(*),"
		     " count(*) FILTER (WHERE state <> 'running'"
		     "  AND run_at <= now()),"
		     " COALESCE(extract(epoch FROM now() - min(run_at) FILTER"
		     "  (WHERE state <> 'running' AND run_at <= now())), 0)"
		     " FROM apexops.queue_jobs"
		     " WHERE state IN ('available', 'failed-retrying', "
		     "'running')"
		     " GROUP BY kind, state ORDER BY kind, state LIMIT 64",
		     0, NULL, &res, &e) != 0) {
		log_warn("reading the queue for /metrics failed error=%s",
			 log_q(e.msg));
		return;
	}
	for (int i = 0; i < db_res_rows(res); i++) {
		double age = db_res_double(res, i, 4);

		snprintf(rows[n].kind, sizeof(rows[n].kind), "%s",
			 db_res_get(res, i, 0));
		snprintf(rows[n].state, sizeof(rows[n].state), "%s",
			 db_res_get(res, i, 1));
		rows[n++].count = db_res_ll(res, i, 2);
		depth += db_res_ll(res, i, 3);
		if (age > oldest)
			oldest = age;
	}
	db_res_free(res);
	metrics_worker_queue(w->m, rows, n, depth, oldest);
}

/* The prefetch target (and w->low, half of it: claim again when half the
 * prefetched jobs are gone, so that the handlers run on the other half
 * while the claim waits), under w->mu. */
static int
prefetch(struct worker *w, int conc)
{
	double need = 2.0 * conc;

	if (w->job_s > 0)
		need = 2.0 * conc * (w->trip_s_avg + 0.002) / w->job_s + conc;
	if (need < 2.0 * conc)
		need = 2.0 * conc;
	if (need > PREFETCH_MAX)
		need = PREFETCH_MAX;
	w->low = (int)need / 2;
	return (int)need;
}

/* Free the handlers: quit and join them. */
static void
handlers_join(struct worker *w, pthread_t *threads, int n)
{
	pthread_mutex_lock(&w->mu);
	w->quit = true;
	w->stop = SIGTERM;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (int i = 0; i < n; i++)
		pthread_join(threads[i], NULL);
}

int
worker_run(const struct ops_config *cfg, const struct worker_opts *o,
	   struct ops_err *err)
{
	struct worker w;
	struct db *db = NULL;
	pthread_t *threads;
	sigset_t mask, orig;
	char host[256], *url;
	double next_renew = 0, next_reap = 0, next_poll = 0, next_snapshot = 0,
	       started = mono(), stop_deadline = 0, last_work = mono();
	bool stopping = false, passed = false, listening = false;
	/* whether jobs may have been handed to an earlier session's row */
	bool handoff_lost = false;
	int joined_pid = 0; /* the session handoff_join() last ran on */
	/* a join that failed is tried again (a database migrated after the
	 * worker started): not before join_retry, logged once */
	bool join_failed = false;
	double join_retry = 0;
	/* claims that failed in a row: the next one not before claim_after
	 * (1 s, doubling up to CLAIM_BACKOFF_MAX_S), a warning at the first
	 * and then at most one a minute */
	int claim_fails = 0;
	double claim_after = 0, claim_warned = 0;
	/* whether a claim of the pool may find jobs: after a notification,
	 * a poll, or a claim that came back full */
	bool more[NPOOLS] = { true, true };
	/* the kinds this worker claims, by pool */
	const char *pk[NPOOLS][64];
	int npk[NPOOLS] = { 0, 0 }, high;
	int r = 0;
	long long claimed_total = 0;

	memset(&w, 0, sizeof(w));
	w.o = o;
	w.cfg = cfg;
	w.kinds = o->kind_table != NULL ? o->kind_table : worker_kinds;
	w.nkinds = o->kind_table != NULL ? o->nkind_table : worker_nkinds;
	for (int i = 0; i < o->nkinds; i++) {
		const struct worker_kind *k =
			kind_in(w.kinds, w.nkinds, o->kinds[i]);
		int p = k != NULL && k->pool == WORKER_POOL_PRIVACY
				? WORKER_POOL_PRIVACY
				: WORKER_POOL_DEFAULT;

		if (npk[p] < 64)
			pk[p][npk[p]++] = o->kinds[i];
	}
	if (o->kinds == NULL || o->nkinds == 0)
		for (int i = 0; i < w.nkinds; i++) {
			int p = w.kinds[i].pool == WORKER_POOL_PRIVACY
					? WORKER_POOL_PRIVACY
					: WORKER_POOL_DEFAULT;

			if (npk[p] < 64)
				pk[p][npk[p]++] = w.kinds[i].kind;
		}
	w.limit[WORKER_POOL_DEFAULT] = o->concurrency;
	w.limit[WORKER_POOL_PRIVACY] =
		cfg->privacy_worker_concurrency < o->concurrency
			? (int)cfg->privacy_worker_concurrency
			: o->concurrency;
	if (w.limit[WORKER_POOL_PRIVACY] < 1)
		w.limit[WORKER_POOL_PRIVACY] = 1;
	high = prefetch(&w, o->concurrency);
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	{
		/* host:pid and a random tag: two containers may share a host
		 * name and a pid, never a lease owner */
		unsigned int tag = 0;

		if (getrandom(&tag, sizeof(tag), GRND_NONBLOCK) !=
		    (ssize_t)sizeof(tag))
			tag = (unsigned int)(mono() * 1e9) ^
			      (unsigned int)getpid();
		snprintf(w.owner, sizeof(w.owner), "%s:%ld:%08x", host,
			 (long)getpid(), tag);
	}
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	pthread_cond_init(&w.ccv, NULL);
	if (ops_wake_open(&w.wake, err) != 0)
		return err != NULL ? err->code : OPS_E_IO;
	w.m = metrics_new();
	metrics_worker_enable(w.m); /* the worker families, from the start */
	if (o->http_addr != NULL &&
	    metrics_serve(w.m, o->http_addr, err) != 0) {
		metrics_free(w.m);
		ops_wake_close(&w.wake);
		return OPS_E_CONFIG;
	}
	if (ops_signals_install() != 0)
		log_warn("cannot install signal handlers");
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, &orig);
	threads = xcalloc((size_t)o->concurrency, sizeof(*threads));
	for (int i = 0; i < o->concurrency; i++)
		if (pthread_create(&threads[i], NULL, handler_thread, &w) != 0)
			abort();
	log_info("worker started owner=%s concurrency=%d privacy_limit=%d "
		 "handoff=%s",
		 w.owner, o->concurrency, w.limit[WORKER_POOL_PRIVACY],
		 o->no_handoff ? "off" : "on");
	url = xstrdup(o->db_url);

	for (;;) {
		struct ops_err e = OPS_ERR_INIT;
		double now = mono();
		struct pollfd pfd[2];
		int nfd = 1, wait_ms = 0, got = 0, nq, ndone;
		int room[NPOOLS];
		bool claim[NPOOLS];

		if (!stopping && (ops_stop_flag ||
				  (o->run_for_s > 0 &&
				   now - started >= (double)o->run_for_s))) {
			stopping = true;
			stop_deadline = now + (double)o->grace_s;
			log_info("stopping: no new claims; running jobs have "
				 "%lds",
				 o->grace_s);
		}
		/* connection */
		if (db == NULL) {
			if (db_connect_config(cfg, "worker", &url, NULL, &db,
					      &e) != 0) {
				log_warn(
					"the database is unreachable, retrying "
					"error=%s",
					log_q(e.msg));
				db = NULL;
				metrics_set_health(w.m, false);
				if (stopping)
					break;
				if (ops_sleep_ms(1000, &ops_stop_flag) != 0)
					continue; /* the stop is seen above */
				continue;
			}
			listening = false;
		} else if (db_reconnect(db, &e) != 0) {
			metrics_set_health(w.m, false);
			if (ops_sleep_ms(1000, &ops_stop_flag) != 0 && stopping)
				break;
			continue;
		}
		if (db_backend_pid(db) != w.session_pid) {
			/* a new session: no LISTEN, no row, no lock */
			if (w.session_pid != 0)
				listening = false;
			w.session_pid = db_backend_pid(db);
			w.idle.id = 0;
			w.armed = 0;
		}
		if (!listening) {
			if (db_listen(db, "apexops_queue", &e) == 0) {
				listening = true;
				more[0] = more[1] = true; /* missed meanwhile */
			} else {
				log_warn("LISTEN failed; polling error=%s",
					 log_q(e.msg));
			}
		}
		/* once per session, and again every JOIN_RETRY_S after a
		 * failure (meanwhile every job is claimed) */
		if (listening && !o->no_handoff && !stopping &&
		    w.idle.id == 0 &&
		    (joined_pid != w.session_pid ||
		     (join_failed && now >= join_retry))) {
			bool again = joined_pid == w.session_pid;

			joined_pid = w.session_pid;
			if (handoff_join(&w, db, handoff_lost && !again, &e) !=
			    0) {
				if (!join_failed)
					log_warn("cannot wait for handoffs; "
						 "claiming every job, trying "
						 "again every %d s error=%s%s",
						 JOIN_RETRY_S, log_q(e.msg),
						 db_schema_hint_field(&e));
				join_failed = true;
				join_retry = now + JOIN_RETRY_S;
				ops_err_clear(&e);
			} else if (join_failed) {
				log_info("waiting for handoffs again");
				join_failed = false;
			}
			handoff_lost = true; /* from the next session on */
		}
		metrics_set_health(w.m, true);
		/* the completer's connection, and the completer */
		if (w.cdb == NULL && db_connect_config(cfg, "worker", &url,
						       NULL, &w.cdb, &e) != 0) {
			log_warn("cannot open the completer's connection; "
				 "retrying error=%s",
				 log_q(e.msg));
			w.cdb = NULL;
			ops_err_clear(&e);
		}
		if (w.cdb != NULL && !w.cstarted) {
			if (pthread_create(&w.cthread, NULL, completer_thread,
					   &w) != 0)
				abort();
			w.cstarted = true;
		}
		if (now >= next_poll) {
			more[0] = more[1] = true; /* the poll fallback */
			next_poll = now + (double)(o->poll_ms > 0 ? o->poll_ms
								  : POLL_MS) /
						  1000.0;
		}
		/* what to do this pass */
		pthread_mutex_lock(&w.mu);
		w.wake_pending = false;
		high = prefetch(&w, o->concurrency);
		nq = queued(&w);
		ndone = w.done_n + w.cbusy;
		room[WORKER_POOL_DEFAULT] = high - nq - w.nrunning;
		/* privacy jobs held (queued, running, or finished and not yet
		 * reported: running in the database) stay within the pool */
		room[WORKER_POOL_PRIVACY] = w.limit[WORKER_POOL_PRIVACY] -
					    w.held[WORKER_POOL_PRIVACY];
		claim[WORKER_POOL_DEFAULT] =
			!stopping && now >= claim_after &&
			npk[WORKER_POOL_DEFAULT] > 0 &&
			more[WORKER_POOL_DEFAULT] &&
			w.todo[WORKER_POOL_DEFAULT].n < w.low &&
			room[WORKER_POOL_DEFAULT] > 0;
		claim[WORKER_POOL_PRIVACY] = !stopping && now >= claim_after &&
					     npk[WORKER_POOL_PRIVACY] > 0 &&
					     more[WORKER_POOL_PRIVACY] &&
					     room[WORKER_POOL_PRIVACY] > 0;
		pthread_mutex_unlock(&w.mu);
		if (ndone > 0)
			last_work = now;
		/* one round trip for the pools claimed (the completer
		 * reports) */
		if (claim[0] || claim[1]) {
			int g[NPOOLS] = { 0, 0 };

			if (claim_trip(&w, db, pk, npk, room, claim, g, &e) !=
			    0) {
				double wait = claim_backoff_s(++claim_fails);

				if (claim_fails == 1 ||
				    now - claim_warned >= 60.0) {
					log_warn("claiming failed failures=%d "
						 "next_in_s=%.1f error=%s%s",
						 claim_fails, wait,
						 log_q(e.msg),
						 db_schema_hint_field(&e));
					claim_warned = now;
				}
				claim_after = now + wait;
				ops_err_clear(&e);
			} else {
				if (claim_fails > 0)
					log_info("claiming works again "
						 "failures=%d",
						 claim_fails);
				claim_fails = 0;
				claim_after = 0;
				for (int p = 0; p < NPOOLS; p++)
					if (claim[p])
						more[p] = g[p] == room[p];
			}
			got = g[0] + g[1];
		}
		if (got > 0) {
			claimed_total += got;
			last_work = now;
		}
		if (stopping && w.idle.id > 0)
			handoff_leave(&w, db);
		if (stopping) {
			/* give back what no handler started */
			long long *ids = NULL;
			int *att = NULL, nb = 0, busy;

			pthread_mutex_lock(&w.mu);
			nq = queued(&w);
			ids = xcalloc((size_t)nq + 1, sizeof(*ids));
			att = xcalloc((size_t)nq + 1, sizeof(*att));
			for (int p = 0; p < NPOOLS; p++) {
				struct item *it;

				while ((it = fifo_pop(&w.todo[p])) != NULL) {
					ids[nb] = it->job.id;
					att[nb++] = it->job.attempt;
					forget(&w, it);
					free_item(it);
				}
			}
			busy = w.nrunning + w.done_n + w.cbusy;
			pthread_mutex_unlock(&w.mu);
			if (nb > 0 &&
			    queue_release(db, ids, att, nb, w.owner, &e) != 0)
				log_warn("giving back jobs failed error=%s",
					 log_q(e.msg));
			else if (nb > 0)
				log_info("gave back jobs not started count=%d",
					 nb);
			free(ids);
			free(att);
			if (busy == 0)
				break;
			if (!passed &&
			    (now >= stop_deadline || ops_stop_twice)) {
				log_warn("grace period over: telling running "
					 "jobs to stop");
				w.stop = SIGTERM;
				passed = true;
				stop_deadline = now + FINAL_WAIT_S;
			} else if (passed && now >= stop_deadline) {
				log_error("jobs did not stop; their leases "
					  "will lapse");
				break;
			}
		}
		/* leases of what we hold; reaping of dead workers' jobs */
		if (now >= next_renew) {
			int n = 0;
			long long *ids = held_ids(&w, &n);

			if (n > 0 && queue_renew(db, ids, n, w.owner,
						 o->lease_s, NULL, &e) != 0)
				log_warn("renewing leases failed error=%s",
					 log_q(e.msg));
			free(ids);
			if (n > 0)
				next_renew = now + (double)o->lease_s / 3.0;
		}
		if (now >= next_reap) {
			int n = 0;

			if (queue_reap(db, &n, &e) == 0 && n > 0) {
				log_warn("jobs whose worker's lease lapsed "
					 "count=%d",
					 n);
				more[0] = more[1] = true;
			}
			if (w.idle.id > 0 &&
			    queue_idle_reap(db, w.idle.id, &n, &e) == 0 &&
			    n > 0)
				log_info("deleted the handoff rows of workers "
					 "that are gone count=%d",
					 n);
			ops_err_clear(&e);
			next_reap = now + REAP_MS / 1000.0;
		}
		if (o->http_addr != NULL && now >= next_snapshot) {
			queue_snapshot(&w, db);
			next_snapshot = now + QUEUE_METRICS_MS / 1000.0;
		}
		pthread_mutex_lock(&w.mu);
		nq = queued(&w) + w.nrunning + w.done_n + w.cbusy;
		pthread_mutex_unlock(&w.mu);
		if (o->exit_when_idle_ms > 0 && !stopping && nq == 0 &&
		    got == 0 &&
		    (now - last_work) * 1000 >= (double)o->exit_when_idle_ms) {
			log_info("idle: exiting claimed=%lld", claimed_total);
			ops_stop_flag = SIGTERM;
		}
		metrics_tick(w.m);
		if (got > 0 && (more[0] || more[1]))
			continue; /* there may be more, and room for it */
		if (w.idle.id > 0 && listening)
			handoff_arm(&w, db, stopping, more, pk, npk);
		/* a notification that came with a reply of this pass's round
		 * trips is in libpq's hands, not on the socket: ppoll() would
		 * not see it until the next one or the poll fallback */
		if (listening) {
			struct notes nt;

			if (read_notes(&w, db, &nt, &e) != 0) {
				listening = false;
				ops_err_clear(&e);
			} else if (nt.generic > 0 || nt.handed > 0) {
				if (nt.generic > 0) {
					more[0] = more[1] = true;
					claim_after = 0; /* a job is there */
				}
				last_work = now;
				continue;
			}
		}
		/* wait for a notification, a finished job or a signal */
		pfd[0].fd = ops_wake_fd(&w.wake);
		pfd[0].events = POLLIN;
		if (listening && db_socket(db) >= 0) {
			pfd[1].fd = db_socket(db);
			pfd[1].events = POLLIN;
			nfd = 2;
		}
		wait_ms = (int)((next_poll - mono()) * 1000) + 1;
		if (o->exit_when_idle_ms > 0 && o->exit_when_idle_ms < wait_ms)
			wait_ms = (int)o->exit_when_idle_ms;
		if (stopping && wait_ms > 100)
			wait_ms = 100;
		if (wait_ms < 0)
			wait_ms = 0;
		{
			struct timespec ts = { wait_ms / 1000,
					       (wait_ms % 1000) * 1000000L };
			struct notes nt = { NULL, 0, 0 };

			if (ppoll(pfd, (nfds_t)nfd, &ts, &orig) > 0) {
				if (pfd[0].revents & POLLIN)
					ops_wake_drain(&w.wake);
				if (nfd == 2 && (pfd[1].revents & POLLIN)) {
					if (read_notes(&w, db, &nt, &e) != 0) {
						listening = false;
						ops_err_clear(&e);
					}
					if (nt.generic > 0) {
						more[0] = more[1] = true;
						/* a job was enqueued: the
						 * claim may work now */
						claim_after = 0;
					}
					if (nt.handed > 0)
						last_work = mono();
				}
			}
		}
	}
	handlers_join(&w, threads, o->concurrency);
	/* the completer reports what it can, then the loop the rest */
	pthread_mutex_lock(&w.mu);
	w.cquit = true;
	pthread_cond_broadcast(&w.ccv);
	pthread_mutex_unlock(&w.mu);
	if (w.cstarted)
		pthread_join(w.cthread, NULL);
	if (db != NULL) {
		struct ops_err e = OPS_ERR_INIT;
		struct item **done;
		int n = 0;

		pthread_mutex_lock(&w.mu);
		done = take_done_locked(&w, &n);
		pthread_mutex_unlock(&w.mu);
		if (n > 0 && report_trip(&w, db, done, n, &e) != 0)
			log_warn("reporting the last results failed error=%s",
				 log_q(e.msg));
		free(done);
	}
	/* results the database never took: their leases lapse and the jobs
	 * are retried elsewhere */
	for (int i = 0; i < w.done_n; i++)
		free_item(w.done[i]);
	for (int p = 0; p < NPOOLS; p++) {
		struct item *it;

		while ((it = fifo_pop(&w.todo[p])) != NULL)
			free_item(it);
		free(w.todo[p].v);
	}
	pthread_sigmask(SIG_SETMASK, &orig, NULL);
	log_info("worker stopped owner=%s claimed=%lld handed=%lld "
		 "round_trips=%lld round_trip_s=%.3f",
		 w.owner, claimed_total, w.handed, w.trips, w.trip_s);
	free(threads);
	free(w.inflight);
	free(w.done);
	db_close(w.cdb);
	free(url);
	db_close(db);
	metrics_free(w.m);
	ops_wake_close(&w.wake);
	pthread_cond_destroy(&w.cv);
	pthread_cond_destroy(&w.ccv);
	pthread_mutex_destroy(&w.mu);
	return r;
}
