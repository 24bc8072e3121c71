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
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/signals.h"
#include "core/stop.h"
#include "core/xalloc.h"
#include "daemon/metrics.h"
#include "db/db.h"
#include "jobs/queue.h"

#define PREFETCH_PER_HANDLER 32
#define POLL_MS		     1000 /* LISTEN's fallback */
#define REAP_MS		     5000 /* lapsed leases of dead workers */
#define FINAL_WAIT_S	     30.0 /* after the stop flag */

static const struct worker_kind *
kind_of(const char *kind)
{
	for (int i = 0; i < worker_nkinds; i++)
		if (strcmp(worker_kinds[i].kind, kind) == 0)
			return &worker_kinds[i];
	return NULL;
}

struct item {
	struct queue_job job;
	int rc;
	bool permanent;
	char error[256];
};

struct worker {
	const struct worker_opts *o;
	char owner[300];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* jobs claimed, not started: a FIFO of pointers */
	struct item **todo;
	int todo_head, todo_n, todo_cap;
	/* jobs finished, not yet reported */
	struct item **done;
	int done_n, done_cap;
	int running;		    /* jobs in handlers */
	bool quit;		    /* handlers exit */
	volatile sig_atomic_t stop; /* passed to running handlers */
	int wake[2];
	struct metrics *m;
	const struct ops_config *cfg;
};

static void
wake_main(struct worker *w)
{
	char c = 1;
	ssize_t n;

	do
		n = write(w->wake[1], &c, 1);
	while (n == -1 && errno == EINTR);
}

static void *
handler_thread(void *arg)
{
	struct worker *w = arg;

	for (;;) {
		struct item *it;
		const struct worker_kind *k;
		struct worker_job job;

		pthread_mutex_lock(&w->mu);
		while (w->todo_n == 0 && !w->quit)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->todo_n == 0 && w->quit) {
			pthread_mutex_unlock(&w->mu);
			return NULL;
		}
		it = w->todo[w->todo_head];
		w->todo_head = (w->todo_head + 1) % w->todo_cap;
		w->todo_n--;
		w->running++;
		pthread_mutex_unlock(&w->mu);

		memset(&job, 0, sizeof(job));
		job.id = it->job.id;
		job.kind = it->job.kind;
		job.payload = it->job.payload;
		job.attempt = it->job.attempt;
		job.stop = &w->stop;
		job.cfg = w->cfg;
		job.db_url = w->o->db_url;
		k = kind_of(it->job.kind);
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
		pthread_mutex_lock(&w->mu);
		if (w->done_n == w->done_cap) {
			w->done_cap = w->done_cap ? w->done_cap * 2 : 64;
			w->done =
				xrealloc(w->done, sizeof(*w->done) *
							  (size_t)w->done_cap);
		}
		w->done[w->done_n++] = it;
		w->running--;
		pthread_mutex_unlock(&w->mu);
		wake_main(w);
	}
}

static void
free_item(struct item *it)
{
	free(it->job.payload);
	free(it);
}

/* Drop it from the in-flight list (no longer ours to renew). */
static void
forget(struct item **inflight, int *ninflight, const struct item *it)
{
	for (int k = 0; k < *ninflight; k++)
		if (inflight[k] == it) {
			inflight[k] = inflight[--*ninflight];
			return;
		}
}

/* Report finished jobs: successes in one statement, failures each; the
 * reported ones leave the in-flight list and are freed. */
static int
report(struct worker *w, struct db *db, struct item **inflight, int *ninflight,
       struct ops_err *err)
{
	struct item **done;
	long long *ids;
	int *att, n, nok = 0, r = 0;

	pthread_mutex_lock(&w->mu);
	done = w->done;
	n = w->done_n;
	w->done = NULL;
	w->done_n = w->done_cap = 0;
	pthread_mutex_unlock(&w->mu);
	if (n == 0)
		return 0;
	ids = xcalloc((size_t)n, sizeof(*ids));
	att = xcalloc((size_t)n, sizeof(*att));
	for (int i = 0; i < n; i++)
		if (done[i]->rc == 0) {
			ids[nok] = done[i]->job.id;
			att[nok++] = done[i]->job.attempt;
		}
	if (nok > 0)
		r = queue_complete(db, ids, att, nok, w->owner, NULL, err);
	for (int i = 0; r == 0 && i < n; i++) {
		struct item *it = done[i];
		char state[16];
		long delay;
		int fr;

		if (it->rc == 0)
			continue;
		/* full jitter, 1 s doubling to 1 h (AWS) */
		delay = ops_backoff_full_jitter(1000, 3600 * 1000L,
						it->job.attempt - 1);
		fr = queue_fail(db, it->job.id, it->job.attempt, w->owner,
				it->error, it->permanent, delay, state, err);
		if (fr == OPS_E_CONFLICT) {
			ops_err_clear(err);
			continue;
		}
		r = fr;
		if (r == 0)
			log_warn("job failed id=%lld kind=%s attempt=%d "
				 "state=%s error=%s",
				 it->job.id, it->job.kind, it->job.attempt,
				 state, log_q(it->error));
	}
	if (r != 0 &&
	    !(err != NULL && (err->transient || err->code == OPS_E_CONNECT))) {
		/* a failure a retry will not cure: let these jobs go, so
		 * that their leases lapse and they are retried (by the reaper,
		 * on any worker) rather than held here for ever */
		log_error("cannot record results; their jobs will be retried "
			  "after their leases count=%d error=%s",
			  n, log_q(err != NULL ? err->msg : ""));
		for (int i = 0; i < n; i++) {
			forget(inflight, ninflight, done[i]);
			free_item(done[i]);
		}
	} else if (r != 0) {
		/* the database went away: keep them for the next pass (the
		 * leases protect the jobs meanwhile) */
		pthread_mutex_lock(&w->mu);
		for (int i = 0; i < n; i++) {
			if (w->done_n == w->done_cap) {
				w->done_cap =
					w->done_cap ? w->done_cap * 2 : 64;
				w->done = xrealloc(w->done,
						   sizeof(*w->done) *
							   (size_t)w->done_cap);
			}
			w->done[w->done_n++] = done[i];
		}
		pthread_mutex_unlock(&w->mu);
	} else {
		for (int i = 0; i < n; i++) {
			metrics_finished(w->m, done[i]->job.kind,
					 done[i]->rc == 0 ? "succeeded"
							  : "failed",
					 0, 0);
			forget(inflight, ninflight, done[i]);
			free_item(done[i]);
		}
	}
	free(done);
	free(ids);
	free(att);
	return r;
}

/* Queue b's jobs for the handlers and note them in flight (the array
 * has room: the caller grew it). */
static void
push_todo(struct worker *w, struct queue_batch *b, struct item **inflight,
	  int *ninflight)
{
	pthread_mutex_lock(&w->mu);
	for (int i = 0; i < b->n; i++) {
		struct item *it = xcalloc(1, sizeof(*it));

		it->job = b->v[i];
		b->v[i].payload = NULL; /* moved to the item */
		inflight[(*ninflight)++] = it;
		if (w->todo_n == w->todo_cap) {
			int cap = w->todo_cap ? w->todo_cap * 2 : 256;
			struct item **v = xcalloc((size_t)cap, sizeof(*v));

			for (int k = 0; k < w->todo_n; k++)
				v[k] = w->todo[(w->todo_head + k) %
					       w->todo_cap];
			free(w->todo);
			w->todo = v;
			w->todo_head = 0;
			w->todo_cap = cap;
		}
		w->todo[(w->todo_head + w->todo_n) % w->todo_cap] = it;
		w->todo_n++;
	}
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* The ids of every job this process holds, for lease renewal (caller
 * frees). */
static long long *
held_ids(struct item **inflight, int ninflight)
{
	long long *ids = xcalloc((size_t)ninflight + 1, sizeof(*ids));

	for (int i = 0; i < ninflight; i++)
		ids[i] = inflight[i]->job.id;
	return ids;
}

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
	double next_renew = 0, next_reap = 0, started = mono(),
	       stop_deadline = 0, last_work = mono();
	bool stopping = false, passed = false, listening = false;
	/* everything claimed and not yet reported, for lease renewal */
	struct item **inflight = NULL;
	int ninflight = 0, capinflight = 0, r = 0;
	long long claimed_total = 0;

	memset(&w, 0, sizeof(w));
	w.o = o;
	w.cfg = cfg;
	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	snprintf(w.owner, sizeof(w.owner), "%s:%ld", host, (long)getpid());
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	if (pipe(w.wake) != 0)
		return ops_fail(err, OPS_E_IO, false, "pipe: %s",
				strerror(errno));
	for (int i = 0; i < 2; i++)
		(void)fcntl(w.wake[i], F_SETFL,
			    fcntl(w.wake[i], F_GETFL) | O_NONBLOCK);
	w.m = metrics_new();
	if (o->http_addr != NULL &&
	    metrics_serve(w.m, o->http_addr, err) != 0) {
		metrics_free(w.m);
		close(w.wake[0]);
		close(w.wake[1]);
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
	log_info("worker started owner=%s concurrency=%d", w.owner,
		 o->concurrency);
	url = xstrdup(o->db_url);

	for (;;) {
		struct ops_err e = OPS_ERR_INIT;
		double now = mono();
		struct pollfd pfd[2];
		int nfd = 1, wait_ms = POLL_MS, got = 0, busy;

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
					continue;
				continue;
			}
			listening = false;
		} else if (db_reconnect(db, &e) != 0) {
			metrics_set_health(w.m, false);
			if (ops_sleep_ms(1000, &ops_stop_flag) != 0 && stopping)
				break;
			continue;
		}
		if (!listening) {
			if (db_listen(db, "apexops_queue", &e) == 0)
				listening = true;
			else
				log_warn("LISTEN failed; polling error=%s",
					 log_q(e.msg));
		}
		metrics_set_health(w.m, true);
		/* results */
		pthread_mutex_lock(&w.mu);
		if (w.done_n > 0)
			last_work = now;
		pthread_mutex_unlock(&w.mu);
		if (report(&w, db, inflight, &ninflight, &e) != 0) {
			log_warn("reporting results failed error=%s",
				 log_q(e.msg));
			ops_err_clear(&e);
		}
		pthread_mutex_lock(&w.mu);
		busy = w.running + w.todo_n;
		pthread_mutex_unlock(&w.mu);
		if (stopping) {
			/* give back what no handler started */
			long long *ids = NULL;
			int *att = NULL, nb = 0;

			pthread_mutex_lock(&w.mu);
			ids = xcalloc((size_t)w.todo_n + 1, sizeof(*ids));
			att = xcalloc((size_t)w.todo_n + 1, sizeof(*att));
			while (w.todo_n > 0) {
				struct item *it = w.todo[w.todo_head];

				w.todo_head = (w.todo_head + 1) % w.todo_cap;
				w.todo_n--;
				ids[nb] = it->job.id;
				att[nb++] = it->job.attempt;
				forget(inflight, &ninflight, it);
				free_item(it);
			}
			busy = w.running + w.done_n;
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
		/* claim up to the prefetch limit */
		if (!stopping) {
			int room = o->concurrency * PREFETCH_PER_HANDLER - busy;

			if (room > 0) {
				struct queue_batch b = { NULL, 0 };

				if (queue_claim(db, o->kinds, o->nkinds, room,
						w.owner, o->lease_s, &b,
						&e) != 0) {
					log_warn("claiming failed error=%s",
						 log_q(e.msg));
				} else if (b.n > 0) {
					got = b.n;
					claimed_total += b.n;
					last_work = now;
					if (ninflight + b.n > capinflight) {
						capinflight =
							(ninflight + b.n) * 2;
						inflight = xrealloc(
							inflight,
							sizeof(*inflight) *
								(size_t)capinflight);
					}
					push_todo(&w, &b, inflight, &ninflight);
				}
				queue_batch_release(&b);
			}
		}
		/* leases of what we hold; reaping of dead workers' jobs */
		if (now >= next_renew && ninflight > 0) {
			long long *ids = held_ids(inflight, ninflight);

			if (queue_renew(db, ids, ninflight, w.owner, o->lease_s,
					NULL, &e) != 0)
				log_warn("renewing leases failed error=%s",
					 log_q(e.msg));
			free(ids);

			next_renew = now + (double)o->lease_s / 3.0;
		}
		if (now >= next_reap) {
			int n = 0;

			if (queue_reap(db, &n, &e) == 0 && n > 0)
				log_warn("jobs whose worker's lease lapsed "
					 "count=%d",
					 n);
			next_reap = now + REAP_MS / 1000.0;
		}
		if (o->exit_when_idle_ms > 0 && !stopping && busy == 0 &&
		    got == 0 &&
		    (now - last_work) * 1000 >= (double)o->exit_when_idle_ms) {
			log_info("idle: exiting claimed=%lld", claimed_total);
			ops_stop_flag = SIGTERM;
		}
		metrics_tick(w.m);
		if (got > 0)
			continue; /* there may be more */
		/* wait for a notification, a finished job or a signal */
		pfd[0].fd = w.wake[0];
		pfd[0].events = POLLIN;
		if (listening && db_socket(db) >= 0) {
			pfd[1].fd = db_socket(db);
			pfd[1].events = POLLIN;
			nfd = 2;
		}
		if (stopping)
			wait_ms = 100;
		{
			struct timespec ts = { wait_ms / 1000,
					       (wait_ms % 1000) * 1000000L };
			char buf[256];
			int nn = 0;

			if (ppoll(pfd, (nfds_t)nfd, &ts, &orig) > 0) {
				if (pfd[0].revents & POLLIN)
					while (read(w.wake[0], buf,
						    sizeof(buf)) > 0)
						;
				if (nfd == 2 && (pfd[1].revents & POLLIN) &&
				    db_notifies(db, &nn, &e) != 0)
					listening = false;
			}
		}
	}
	/* handlers out */
	pthread_mutex_lock(&w.mu);
	w.quit = true;
	w.stop = SIGTERM;
	pthread_cond_broadcast(&w.cv);
	pthread_mutex_unlock(&w.mu);
	for (int i = 0; i < o->concurrency; i++)
		pthread_join(threads[i], NULL);
	if (db != NULL) {
		struct ops_err e = OPS_ERR_INIT;

		if (report(&w, db, inflight, &ninflight, &e) != 0)
			log_warn("reporting the last results failed error=%s",
				 log_q(e.msg));
	}
	/* results the database never took: their leases lapse and the jobs
	 * are retried elsewhere */
	for (int i = 0; i < w.done_n; i++)
		free_item(w.done[i]);
	for (int i = 0; i < w.todo_n; i++)
		free_item(w.todo[(w.todo_head + i) % w.todo_cap]);
	pthread_sigmask(SIG_SETMASK, &orig, NULL);
	log_info("worker stopped owner=%s claimed=%lld", w.owner,
		 claimed_total);
	free(threads);
	free(inflight);
	free(w.todo);
	free(w.done);
	free(url);
	db_close(db);
	metrics_free(w.m);
	close(w.wake[0]);
	close(w.wake[1]);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	return r;
}
