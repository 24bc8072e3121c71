/* The scheduler daemon; see cron.h. */
#include "daemon/cron.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/stop.h"
#include "core/wake.h"
#include "core/xalloc.h"
#include "daemon/metrics.h"
#include "db/db.h"
#include "jobs/cron_expr.h"
#include "jobs/job.h"
#include "jobs/ledger.h"
#include "jobs/sched.h"

#define MAX_JOBS       16
#define MAX_MISSED     10000 /* missed slots recorded per job per pass */
#define MAX_ATTEMPTS   3     /* takeovers before a run is abandoned */
#define REPLICA_BEAT_S 10.0  /* real seconds between "replica seen" */

/* A configuration shared by the loop and the job threads it started. */
struct cfg_ref {
	struct ops_config cfg;
	int refs; /* under daemon.mu */
};

struct daemon;

struct cjob {
	struct daemon *d;
	const struct job_def *def;
	struct cron_expr expr;
	char schedule[128];
	bool enabled;
	/* a run of this job in this process */
	bool running;
	pthread_t thread;
	volatile sig_atomic_t stop;
	struct sched_claim claim;
	struct cfg_ref *cfg;
	double started; /* clock seconds */
	double next_renew;
	bool lost_lease;
	/* written by the thread, read after done (under daemon.mu) */
	bool done;
	bool withdrawn; /* the thread withdrew its claim itself */
	int result;
	char status[16];
	char error[512];
};

struct daemon {
	struct cjob jobs[MAX_JOBS];
	int njobs;
	struct cfg_ref *cfg;
	const struct cron_daemon_opts *o;
	char *db_url;
	struct db *db;
	bool db_ok;
	char host[256];
	char replica[300];
	double start;	      /* clock seconds at start */
	double next_replica;  /* real seconds */
	struct ops_wake wake; /* job threads poke it when done */
	pthread_mutex_t mu;
	struct metrics *m;
};

static double
real_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
cfg_unref(struct daemon *d, struct cfg_ref *c)
{
	bool last;

	if (c == NULL)
		return;
	pthread_mutex_lock(&d->mu);
	last = --c->refs == 0;
	pthread_mutex_unlock(&d->mu);
	if (last) {
		config_release(&c->cfg);
		free(c);
	}
}

static struct cfg_ref *
cfg_ref(struct daemon *d, struct cfg_ref *c)
{
	pthread_mutex_lock(&d->mu);
	c->refs++;
	pthread_mutex_unlock(&d->mu);
	return c;
}

const char *
cron_daemon_schedule(const struct ops_config *cfg, const char *name)
{
	return job_schedule(cfg, job_find(name));
}

/* "usage-purge" -> "APEXOPS_SCHEDULE_USAGE_PURGE" */
static void
schedule_var(const char *name, char *buf, size_t n)
{
	size_t w = (size_t)snprintf(buf, n, "APEXOPS_SCHEDULE_");

	for (const char *p = name; *p != '\0' && w + 1 < n; p++)
		buf[w++] = *p == '-' ? '_'
				     : (char)(*p >= 'a' && *p <= 'z' ? *p - 32
								     : *p);
	buf[w] = '\0';
}

int
cron_daemon_check(const struct ops_config *cfg, struct ops_err *err)
{
	struct ops_err cerr = OPS_ERR_INIT;

	for (int i = 0; i < job_count; i++) {
		const struct job_def *j = &job_table[i];
		const char *s = cron_daemon_schedule(cfg, j->name);
		struct cron_expr ce;
		char var[96];

		if ((j->flags & JOB_MANUAL_ONLY) || strcmp(s, "off") == 0)
			continue;
		schedule_var(j->name, var, sizeof(var));
		if (cron_parse(s, &ce, &cerr) != 0)
			return ops_fail(err, OPS_E_CONFIG, false,
					"%s='%s': %s (expected a cron "
					"expression of five fields, a macro "
					"such as @daily, or off)",
					var, s, cerr.msg);
	}
	if (ops_clock_setup(cfg->clock_start, cfg->clock_epoch,
			    cfg->clock_speed, err) != 0)
		return OPS_E_CONFIG;
	if (ops_clock_is_virtual() && config_is_production(cfg))
		return ops_fail(err, OPS_E_CONFIG, false,
				"APEXOPS_CLOCK_START is set while %s is "
				"production: a virtual clock is for tests and "
				"demos only",
				config_production_var(cfg));
	return 0;
}

/* Parse every job's schedule under cfg into d (cfg already checked). */
static void
load_schedules(struct daemon *d, const struct ops_config *cfg)
{
	d->njobs = 0;
	for (int i = 0; i < job_count && d->njobs < MAX_JOBS; i++) {
		const struct job_def *j = &job_table[i];
		struct cjob *cj;
		const char *s;

		if (j->flags & JOB_MANUAL_ONLY)
			continue;
		cj = &d->jobs[d->njobs++];
		if (cj->def != j) {
			memset(cj, 0, sizeof(*cj));
			cj->def = j;
			cj->d = d;
		}
		s = cron_daemon_schedule(cfg, j->name);
		snprintf(cj->schedule, sizeof(cj->schedule), "%s", s);
		cj->enabled = strcmp(s, "off") != 0 &&
			      cron_parse(s, &cj->expr, NULL) == 0;
	}
}

static void
wake_loop(struct daemon *d)
{
	ops_wake_poke(&d->wake);
}

static void *
run_thread(void *arg)
{
	struct cjob *cj = arg;
	struct daemon *d = cj->d;
	struct ops_err err = OPS_ERR_INIT;
	struct job_ctx ctx;
	struct db *db = NULL;
	char *url = xstrdup(d->db_url), slot[32];
	int r;

	memset(&ctx, 0, sizeof(ctx));
	r = db_connect_config(&cj->cfg->cfg, "cron", &url, NULL, &db, &err);
	if (r == 0) {
		ops_format_rfc3339(cj->claim.slot, slot, sizeof(slot));
		ctx.db = db;
		ctx.cfg = &cj->cfg->cfg;
		ctx.trigger = cj->claim.trigger;
		ctx.slot = slot;
		ctx.stop = &cj->stop;
		ctx.run_id = cj->claim.id;
		ctx.attempt = cj->claim.attempt;
		ctx.lease_owner = d->replica;
		r = job_run(cj->def, &ctx, &err);
		if (ctx.status == NULL && r == OPS_E_CONFLICT) {
			/* the job's lock is held (a manual run): withdraw the
			 * claim so that the slot is tried again */
			struct ops_err uerr = OPS_ERR_INIT;

			if (sched_unclaim(db, cj->claim.id, cj->claim.attempt,
					  d->replica, &uerr) != 0)
				log_warn("withdrawing a claim failed job=%s "
					 "error=%s",
					 cj->def->name, log_q(uerr.msg));
			else
				cj->withdrawn = true;
		}
	}
	pthread_mutex_lock(&d->mu);
	cj->result = r;
	snprintf(cj->status, sizeof(cj->status), "%s",
		 ctx.status ? ctx.status : "");
	snprintf(cj->error, sizeof(cj->error), "%s", r != 0 ? err.msg : "");
	cj->done = true;
	pthread_mutex_unlock(&d->mu);
	job_ctx_release(&ctx);
	db_close(db);
	free(url);
	wake_loop(d);
	return NULL;
}

static void
start_run(struct daemon *d, struct cjob *cj, const struct sched_claim *c)
{
	pthread_attr_t attr;
	char slot[32];

	cj->claim = *c;
	cj->stop = 0;
	cj->done = false;
	cj->withdrawn = false;
	cj->lost_lease = false;
	cj->cfg = cfg_ref(d, d->cfg);
	cj->started = ops_clock_now();
	cj->next_renew = cj->started + (double)d->cfg->cfg.cron_lease_s / 3.0;
	ops_format_rfc3339(c->slot, slot, sizeof(slot));
	log_info("claimed run job=%s run=%lld slot=%s trigger=%s attempt=%d",
		 cj->def->name, c->id, slot, c->trigger, c->attempt);
	metrics_claimed(d->m, cj->def->name, ops_clock_now() - (double)c->slot);
	pthread_attr_init(&attr);
	if (pthread_create(&cj->thread, &attr, run_thread, cj) != 0) {
		struct ops_err err = OPS_ERR_INIT;

		log_error("cannot start a thread job=%s", cj->def->name);
		if (sched_release(d->db, c->id, c->attempt, d->replica,
				  ops_clock_now(), &err) != 0)
			log_warn("releasing the lease failed error=%s",
				 log_q(err.msg));
		cfg_unref(d, cj->cfg);
		cj->cfg = NULL;
	} else {
		cj->running = true;
	}
	pthread_attr_destroy(&attr);
}

static void
reap(struct daemon *d)
{
	for (int i = 0; i < d->njobs; i++) {
		struct cjob *cj = &d->jobs[i];
		bool done;

		if (!cj->running)
			continue;
		pthread_mutex_lock(&d->mu);
		done = cj->done;
		pthread_mutex_unlock(&d->mu);
		if (!done)
			continue;
		pthread_join(cj->thread, NULL);
		cj->running = false;
		/* never started (no connection, a stop while connecting): give
		 * the slot back rather than leave it to its lease. A first
		 * attempt's row goes, so the slot is claimed afresh; a taken
		 * over one keeps its history and its lease lapses at once. */
		if (cj->status[0] == '\0' && !cj->withdrawn &&
		    !cj->lost_lease && d->db != NULL) {
			struct ops_err uerr = OPS_ERR_INIT;
			int ur =
				cj->claim.attempt == 1
					? sched_unclaim(d->db, cj->claim.id,
							cj->claim.attempt,
							d->replica, &uerr)
					: sched_release(d->db, cj->claim.id,
							cj->claim.attempt,
							d->replica,
							ops_clock_now(), &uerr);

			if (ur != 0 && ur != OPS_E_CONFLICT)
				log_warn("giving back a run that did not start "
					 "failed job=%s run=%lld error=%s",
					 cj->def->name, cj->claim.id,
					 log_q(uerr.msg));
		}
		cfg_unref(d, cj->cfg);
		cj->cfg = NULL;
		if (cj->result == 0)
			log_info("run finished job=%s run=%lld status=%s "
				 "seconds=%.1f",
				 cj->def->name, cj->claim.id, cj->status,
				 ops_clock_now() - cj->started);
		else
			log_warn("run finished job=%s run=%lld status=%s "
				 "error=%s",
				 cj->def->name, cj->claim.id,
				 cj->status[0] ? cj->status : "not-started",
				 log_q(cj->error));
		metrics_finished(d->m, cj->def->name,
				 cj->status[0] ? cj->status : "not-started",
				 ops_clock_now() - cj->started,
				 cj->result == 0 ? ops_clock_now() : 0);
	}
}

/* Renew the leases of this process's runs that are due. */
static void
renew(struct daemon *d, double now)
{
	for (int i = 0; i < d->njobs; i++) {
		struct cjob *cj = &d->jobs[i];
		struct ops_err err = OPS_ERR_INIT;
		int r;

		if (!cj->running || cj->lost_lease || now < cj->next_renew)
			continue;
		r = sched_renew(d->db, cj->claim.id, cj->claim.attempt,
				d->replica,
				now + (double)d->cfg->cfg.cron_lease_s, &err);
		if (r == OPS_E_CONFLICT) {
			log_error(
				"lost the lease: another replica took the run "
				"over; stopping it job=%s run=%lld",
				cj->def->name, cj->claim.id);
			cj->lost_lease = true;
			cj->stop = SIGTERM;
		} else if (r != 0) {
			log_warn("renewing a lease failed job=%s error=%s",
				 cj->def->name, log_q(err.msg));
			d->db_ok = false;
			return;
		} else {
			cj->next_renew =
				now + (double)d->cfg->cfg.cron_lease_s / 3.0;
		}
	}
}

/* The slots of cj due in (last, now], newest last, at most MAX_MISSED+1. */
static int
due_slots(const struct cjob *cj, time_t last, double now, time_t **out, int *n)
{
	time_t *v = NULL, t = last, next;
	int count = 0, cap = 0;

	*out = NULL;
	*n = 0;
	for (;;) {
		if (cron_next(&cj->expr, t, &next) != 0)
			break;
		if ((double)next > now)
			break;
		if (count == MAX_MISSED + 1) {
			memmove(v, v + 1, sizeof(*v) * (size_t)(count - 1));
			count--;
		}
		if (count == cap) {
			cap = cap ? cap * 2 : 8;
			v = xrealloc(v, sizeof(*v) * (size_t)cap);
		}
		v[count++] = next;
		t = next;
	}
	*out = v;
	*n = count;
	return 0;
}

/* One pass over one job: take a lapsed run over, or claim its due slot. */
static int
schedule_job(struct daemon *d, struct cjob *cj, double now, struct ops_err *err)
{
	const struct ops_config *cfg = &d->cfg->cfg;
	double lease_until = now + (double)cfg->cron_lease_s;
	struct sched_claim c;
	bool taken, abandoned, found, busy, claimed;
	time_t last, *slots = NULL;
	int n, r, inserted;

	if (cj->running || !cj->enabled)
		return 0;
	r = sched_takeover(d->db, cj->def->name, d->replica, now, lease_until,
			   !(cj->def->flags & JOB_ABANDON_ON_TAKEOVER),
			   MAX_ATTEMPTS, &c, &taken, &abandoned, err);
	if (r != 0)
		return r;
	if (abandoned)
		log_warn("abandoned a run after %d attempts job=%s run=%lld "
			 "previous_owner=%s",
			 c.attempt, cj->def->name, c.id,
			 log_q(c.previous_owner));
	if (taken) {
		log_warn("took over a run whose lease lapsed job=%s run=%lld "
			 "attempt=%d previous_owner=%s",
			 cj->def->name, c.id, c.attempt,
			 log_q(c.previous_owner));
		metrics_takeover(d->m, cj->def->name);
		start_run(d, cj, &c);
		return 0;
	}
	r = sched_last_slot(d->db, cj->def->name, &last, &found, err);
	if (r != 0)
		return r;
	/* no slot recorded yet: nothing before this process started is
	 * owed; a very old last slot: the year before now is enough (the
	 * newest MAX_MISSED missed slots are recorded) */
	if (!found)
		last = (time_t)floor(d->start);
	else if ((double)last < now - 366.0 * 86400.0)
		last = (time_t)floor(now - 366.0 * 86400.0);
	due_slots(cj, last, now, &slots, &n);
	log_debug("due slots job=%s last=%lld now=%.3f due=%d", cj->def->name,
		  (long long)last, now, n);
	if (n == 0)
		goto out;
	if (n > 1) {
		r = sched_record_missed(
			d->db, cj->def->name, slots, n - 1,
			"missed: no scheduler ran this slot in time (only the "
			"newest missed slot within the starting deadline runs)",
			&inserted, err);
		if (r != 0)
			goto out;
		if (inserted > 0) {
			log_warn("recorded missed slots job=%s count=%d",
				 cj->def->name, inserted);
			metrics_missed(d->m, cj->def->name, inserted);
		}
	}
	if (now - (double)slots[n - 1] > (double)cfg->cron_deadline_s) {
		r = sched_record_missed(d->db, cj->def->name, &slots[n - 1], 1,
					"missed: past the starting deadline "
					"(APEXOPS_CRON_DEADLINE_S)",
					&inserted, err);
		if (r == 0 && inserted > 0)
			metrics_missed(d->m, cj->def->name, inserted);
		goto out;
	}
	/* never overlap: a run of the job elsewhere keeps this slot waiting
	 * (it runs as catch-up when that one ends, within the deadline) */
	r = sched_busy(d->db, cj->def->name, now, &busy, err);
	if (r != 0 || busy)
		goto out;
	r = sched_claim(d->db, cj->def->name, slots[n - 1],
			(now - (double)slots[n - 1]) / ops_clock_speed() > 2.0
				? LEDGER_CATCH_UP
				: LEDGER_SCHEDULED,
			d->replica, lease_until, &c, &claimed, err);
	if (r == 0 && claimed)
		start_run(d, cj, &c);
out:
	free(slots);
	return r;
}

/* Clock seconds of the next thing the loop must do. */
static double
next_wake(struct daemon *d, double now)
{
	double t = now + 3600.0;

	for (int i = 0; i < d->njobs; i++) {
		struct cjob *cj = &d->jobs[i];
		time_t next;

		if (cj->running) {
			if (cj->next_renew < t)
				t = cj->next_renew;
			continue;
		}
		if (!cj->enabled)
			continue;
		if (cron_next(&cj->expr, (time_t)floor(now), &next) == 0 &&
		    (double)next < t)
			t = (double)next;
	}
	/* renewals and new leases elsewhere: look again within a third of a
	 * lease; a lease held elsewhere: just after it would lapse */
	if (now + (double)d->cfg->cfg.cron_lease_s / 3.0 < t)
		t = now + (double)d->cfg->cfg.cron_lease_s / 3.0;
	if (d->db_ok) {
		struct ops_err err = OPS_ERR_INIT;
		double exp;
		bool found;

		if (sched_next_expiry(d->db, d->replica, &exp, &found, &err) ==
			    0 &&
		    found && exp > now && exp + 0.01 < t)
			t = exp + 0.01; /* (a lapsed one was just looked at) */
	}
	return t;
}

static void
reload(struct daemon *d)
{
	struct cfg_ref *n = xcalloc(1, sizeof(*n));
	struct ops_err err = OPS_ERR_INIT;

	n->refs = 1;
	if (config_load(&n->cfg, d->o->env_file, NULL, &err) != 0 ||
	    cron_daemon_check(&n->cfg, &err) != 0) {
		log_error("reload failed, keeping the old configuration "
			  "error=%s",
			  log_q(err.msg));
		config_release(&n->cfg);
		free(n);
		/* cron_daemon_check may have changed the clock: restore */
		if (ops_clock_setup(d->cfg->cfg.clock_start,
				    d->cfg->cfg.clock_epoch,
				    d->cfg->cfg.clock_speed, &err) != 0)
			log_error("restoring the clock failed error=%s",
				  log_q(err.msg));
		return;
	}
	cfg_unref(d, d->cfg);
	d->cfg = n;
	setenv("TZ", n->cfg.cron_tz, 1);
	tzset();
	load_schedules(d, &n->cfg);
	for (int i = 0; i < d->njobs; i++)
		log_info("schedule job=%s schedule=%s", d->jobs[i].def->name,
			 log_q(d->jobs[i].schedule));
	log_info("configuration reloaded");
}

static int
any_running(const struct daemon *d)
{
	int n = 0;

	for (int i = 0; i < d->njobs; i++)
		n += d->jobs[i].running;
	return n;
}

static void
ensure_db(struct daemon *d)
{
	struct ops_err err = OPS_ERR_INIT;

	if (d->db == NULL) {
		char *url = xstrdup(d->db_url);

		if (db_connect_config(&d->cfg->cfg, "cron", &url, NULL, &d->db,
				      &err) != 0) {
			log_warn("the database is unreachable, retrying "
				 "error=%s",
				 log_q(err.msg));
			d->db = NULL;
		}
		free(url);
	} else if (db_reconnect(d->db, &err) != 0) {
		log_warn("the database is unreachable, retrying error=%s",
			 log_q(err.msg));
		d->db_ok = false;
		return;
	}
	d->db_ok = d->db != NULL;
}

/* Wait until clock time t (or a signal, or a job thread's byte). */
static void
wait_until(struct daemon *d, double t, const sigset_t *orig)
{
	long ms = ops_clock_ms_until(t);
	struct timespec ts;
	struct pollfd pfd = { ops_wake_fd(&d->wake), POLLIN, 0 };

	if (ms > 60000)
		ms = 60000;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	if (ppoll(&pfd, 1, &ts, orig) > 0 && (pfd.revents & POLLIN))
		ops_wake_drain(&d->wake);
}

int
cron_daemon_run(const struct ops_config *cfg0, const struct cron_daemon_opts *o,
		struct ops_err *err)
{
	struct daemon d;
	sigset_t mask, orig;
	bool stopping = false, stop_passed = false;
	double stop_deadline = 0, passed_at = 0;
	/* failed passes in a row since the database last worked: the pause
	 * before the next try grows from it */
	int down_passes = 0;
	/* passes in a row in which scheduling failed: a warning at the first,
	 * then at most one a minute (a database not migrated yet fails every
	 * pass) */
	int sched_fails = 0;
	double sched_warned = 0;
	char clockdesc[160];
	int r;

	memset(&d, 0, sizeof(d));
	d.o = o;
	d.cfg = xcalloc(1, sizeof(*d.cfg));
	d.cfg->refs = 1;
	(void)cfg0;
	r = config_load(&d.cfg->cfg, o->env_file, NULL, err);
	if (r == 0)
		r = cron_daemon_check(&d.cfg->cfg, err);
	if (r != 0) {
		config_release(&d.cfg->cfg);
		free(d.cfg);
		return r;
	}
	pthread_mutex_init(&d.mu, NULL);
	if (ops_wake_open(&d.wake, err) != 0) {
		config_release(&d.cfg->cfg);
		free(d.cfg);
		return err != NULL ? err->code : OPS_E_IO;
	}
	d.db_url = xstrdup(o->db_url);
	if (gethostname(d.host, sizeof(d.host)) != 0)
		snprintf(d.host, sizeof(d.host), "unknown");
	d.host[sizeof(d.host) - 1] = '\0';
	snprintf(d.replica, sizeof(d.replica), "%s:%ld", d.host,
		 (long)getpid());
	setenv("TZ", d.cfg->cfg.cron_tz, 1);
	tzset();
	d.start = ops_clock_now();
	load_schedules(&d, &d.cfg->cfg);
	d.m = metrics_new();
	/* listening first: a daemon that cannot serve says nothing else */
	if (o->http_addr != NULL &&
	    metrics_serve(d.m, o->http_addr, err) != 0) {
		metrics_free(d.m);
		ops_wake_close(&d.wake);
		free(d.db_url);
		cfg_unref(&d, d.cfg);
		return r = err != NULL ? err->code : OPS_E_CONFIG;
	}
	ops_clock_describe(clockdesc, sizeof(clockdesc));
	log_info("scheduler started replica=%s tz=%s clock=%s", d.replica,
		 log_q(d.cfg->cfg.cron_tz), log_q(clockdesc));
	if (ops_clock_is_virtual())
		log_warn("running on a virtual clock (APEXOPS_CLOCK_START): "
			 "for tests and demos only clock=%s",
			 log_q(clockdesc));
	for (int i = 0; i < d.njobs; i++)
		log_info("schedule job=%s schedule=%s", d.jobs[i].def->name,
			 log_q(d.jobs[i].schedule));
	if (ops_signals_install() != 0)
		log_warn("cannot install signal handlers");
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, &orig);

	for (;;) {
		double now = ops_clock_now();
		struct ops_err perr = OPS_ERR_INIT;

		if (ops_reload_flag) {
			ops_reload_flag = 0;
			reload(&d);
		}
		if (!stopping &&
		    (ops_stop_flag ||
		     (o->run_for_s > 0 && now - d.start >= o->run_for_s))) {
			stopping = true;
			stop_deadline = now + (double)d.cfg->cfg.cron_grace_s;
			log_info("stopping: no new runs; running jobs have "
				 "%lds to finish running=%d",
				 d.cfg->cfg.cron_grace_s, any_running(&d));
		}
		reap(&d);
		if (stopping) {
			if (any_running(&d) == 0)
				break;
			if (!stop_passed &&
			    (now >= stop_deadline || ops_stop_twice)) {
				log_warn("grace period over: telling running "
					 "jobs to stop running=%d",
					 any_running(&d));
				for (int i = 0; i < d.njobs; i++)
					d.jobs[i].stop = SIGTERM;
				stop_passed = true;
				passed_at = real_now();
			}
			if (stop_passed && real_now() - passed_at > 30.0) {
				log_error("jobs did not stop within 30s of "
					  "being told; leaving them to their "
					  "leases running=%d",
					  any_running(&d));
				break;
			}
		}
		ensure_db(&d);
		metrics_set_health(d.m, d.db_ok);
		if (d.db_ok) {
			renew(&d, now);
			if (real_now() >= d.next_replica) {
				if (sched_replica_seen(d.db, d.replica, d.host,
						       (int)getpid(), clockdesc,
						       &perr) != 0)
					log_warn("recording the replica failed "
						 "error=%s",
						 log_q(perr.msg));
				d.next_replica = real_now() + REPLICA_BEAT_S;
			}
			for (int i = 0; !stopping && d.db_ok && i < d.njobs;
			     i++) {
				if (schedule_job(&d, &d.jobs[i], now, &perr) !=
				    0) {
					if (++sched_fails == 1 ||
					    real_now() - sched_warned >= 60.0) {
						log_warn("scheduling failed "
							 "job=%s failures=%d "
							 "error=%s%s",
							 d.jobs[i].def->name,
							 sched_fails,
							 log_q(perr.msg),
							 db_schema_hint_field(
								 &perr));
						sched_warned = real_now();
					}
					ops_err_clear(&perr);
					d.db_ok = false;
				}
			}
			if (d.db_ok) {
				/* a whole pass went through */
				if (sched_fails > 0)
					log_info("scheduling works again "
						 "failures=%d",
						 sched_fails);
				sched_fails = 0;
				down_passes = 0;
			}
		}
		if (d.db_ok) {
			wait_until(&d,
				   stopping ? now + 0.2 * ops_clock_speed()
					    : next_wake(&d, ops_clock_now()),
				   &orig);
		} else {
			/* back off in real time: 0.5 s doubling up to 10 s,
			 * half of each step random, so that the schedulers of
			 * a fleet that lost the database together do not all
			 * come back in the same instant */
			double pause = (double)ops_backoff_equal_jitter(
					       500, 10000, down_passes) /
				       1000.0;

			if (down_passes < 16)
				down_passes++;
			wait_until(&d,
				   ops_clock_now() + pause * ops_clock_speed(),
				   &orig);
		}
		metrics_tick(d.m);
	}
	/* runs still going: let their leases lapse at once */
	for (int i = 0; i < d.njobs; i++) {
		struct cjob *cj = &d.jobs[i];
		struct ops_err rerr = OPS_ERR_INIT;

		if (!cj->running || d.db == NULL)
			continue;
		if (sched_release(d.db, cj->claim.id, cj->claim.attempt,
				  d.replica, ops_clock_now(), &rerr) != 0)
			log_warn("releasing a lease failed job=%s error=%s",
				 cj->def->name, log_q(rerr.msg));
	}
	if (d.db != NULL) {
		struct ops_err gerr = OPS_ERR_INIT;

		if (sched_replica_gone(d.db, d.replica, &gerr) != 0)
			log_warn("removing the replica failed error=%s",
				 log_q(gerr.msg));
	}
	log_info("scheduler stopped replica=%s", d.replica);
	pthread_sigmask(SIG_SETMASK, &orig, NULL);
	metrics_free(d.m);
	db_close(d.db);
	ops_wake_close(&d.wake);
	free(d.db_url);
	if (any_running(&d) == 0)
		cfg_unref(&d, d.cfg);
	/* else: threads still hold it; the process is about to exit */
	return 0;
}
