/*
 * Integration test of the worker's privacy pool (src/daemon/worker.c):
 * with a kind table of the test's own (worker_opts.kind_table, so no kind
 * operators see), PRIVACY_WORKER_CONCURRENCY=2 and four handlers, jobs of
 * the privacy pool run at most two at once, no more of them are claimed
 * than can start (the database never shows a third running), and while
 * the pool is full the other handlers go on with default jobs. And a
 * notification that reaches the worker with the reply to one of its own
 * round trips (taken in by libpq, so no longer on the socket) still wakes
 * it: the job it announces runs without waiting for the poll fallback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include <pthread.h>

#include "core/config.h"
#include "core/signals.h"
#include "core/stop.h"
#include "daemon/worker.h"
#include "itest.h"
#include "jobs/queue.h"

#define NPRIVATE 6
#define NPLAIN	 40
#define POOL	 2
#define HANDLERS 4

static char *url;
static char envfile[64];

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int cur_private, max_private, private_started, db_max_running;
static int plain_while_full, plain_runs, plain_waiting;

static int
setup(void **state)
{
	int fd;

	(void)state;
	url = itest_new_db("worker_pool", 1);
	snprintf(envfile, sizeof(envfile), "/tmp/apexops-pool-env.XXXXXX");
	fd = mkstemp(envfile);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(envfile);
	free(url);
	return 0;
}

static const char *
fake_getenv(const char *name)
{
	if (strcmp(name, "DATABASE_URL") == 0)
		return url;
	if (strcmp(name, "PRIVACY_WORKER_CONCURRENCY") == 0)
		return "2";
	if (strcmp(name, "APEXOPS_LOG_LEVEL") == 0)
		return "warn";
	return NULL;
}

/* wait on cv until done() holds or 60 s pass (a broken pool would make
 * the handlers wait for ever otherwise; a loaded machine may take a while
 * to start the other handlers) */
static void
wait_until(bool (*done)(void))
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 60;
	while (!done())
		if (pthread_cond_timedwait(&cv, &mu, &until) != 0)
			break;
}

static bool
pool_full_and_plain_ran(void)
{
	/* the last private jobs cannot fill the pool: let them through */
	return (cur_private >= POOL && plain_while_full > 0) ||
	       private_started == NPRIVATE;
}

static int
private_handle(struct worker_job *job)
{
	struct db *db = itest_connect(job->db_url);
	long long running = itest_value_ll(
		db, "SELECT count(*) FROM apexops.queue_jobs WHERE kind ="
		    " 't.private' AND state = 'running'");

	db_close(db);
	pthread_mutex_lock(&mu);
	if (running > db_max_running)
		db_max_running = (int)running;
	cur_private++;
	private_started++;
	if (cur_private > max_private)
		max_private = cur_private;
	pthread_cond_broadcast(&cv);
	/* hold the slot until the pool is full and a default job started
	 * beside it */
	wait_until(pool_full_and_plain_ran);
	cur_private--;
	pthread_mutex_unlock(&mu);
	return 0;
}

static bool
pool_full_or_private_done(void)
{
	return cur_private >= POOL || private_started == NPRIVATE;
}

static int
plain_handle(struct worker_job *job)
{
	pthread_mutex_lock(&mu);
	/* a default job waits for the pool to fill, so that the check of
	 * "default jobs go on beside a full pool" does not depend on how fast
	 * the machine starts the private ones; at most HANDLERS - POOL of them
	 * wait, so handlers stay free for the private jobs */
	if (plain_waiting < HANDLERS - POOL) {
		plain_waiting++;
		wait_until(pool_full_or_private_done);
		plain_waiting--;
	}
	plain_runs++;
	if (cur_private >= POOL)
		plain_while_full++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	return ops_sleep_ms(5, job->stop) == 0 ? 0 : -1;
}

static const struct worker_kind kinds[] = {
	{ "t.plain", plain_handle, 5, WORKER_POOL_DEFAULT, "test" },
	{ "t.private", private_handle, 5, WORKER_POOL_PRIVACY, "test" },
};

static void
test_privacy_pool(void **state)
{
	struct ops_config cfg;
	struct ops_err err = OPS_ERR_INIT;
	struct worker_opts o;
	const char *names[] = { "t.plain", "t.private" };
	const char *payloads[NPLAIN];
	struct db *db = itest_connect(url);
	long long first = 0;

	(void)state;
	for (int i = 0; i < NPLAIN; i++)
		payloads[i] = "{}";
	assert_int_equal(queue_enqueue_bulk(db, "t.private", payloads, NPRIVATE,
					    &first, &err),
			 0);
	assert_int_equal(queue_enqueue_bulk(db, "t.plain", payloads, NPLAIN,
					    &first, &err),
			 0);
	assert_int_equal(config_load(&cfg, envfile, fake_getenv, &err), 0);
	assert_int_equal(cfg.privacy_worker_concurrency, POOL);
	memset(&o, 0, sizeof(o));
	o.db_url = url;
	o.concurrency = HANDLERS;
	o.kinds = names;
	o.nkinds = 2;
	o.lease_s = 60;
	o.grace_s = 5;
	o.exit_when_idle_ms = 300;
	o.kind_table = kinds;
	o.nkind_table = 2;
	assert_int_equal(worker_run(&cfg, &o, &err), 0);
	ops_stop_flag = 0; /* exit_when_idle stops through it */
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM"
					    " apexops.queue_jobs WHERE state"
					    " = 'succeeded' AND attempt = 1"),
			 NPRIVATE + NPLAIN);
	assert_int_equal(private_started, NPRIVATE);
	assert_int_equal(plain_runs, NPLAIN);
	/* the pool filled, never overflowed, and was never claimed past */
	assert_int_equal(max_private, POOL);
	assert_true(db_max_running >= 1 && db_max_running <= POOL);
	/* with the pool full, free handlers ran default jobs */
	assert_true(plain_while_full > 0);
	config_release(&cfg);
	db_close(db);
}

static int
quick_handle(struct worker_job *job)
{
	(void)job;
	return 0;
}

static const struct worker_kind chain_kinds[] = {
	{ "t.first", quick_handle, 5, WORKER_POOL_DEFAULT, "test" },
	{ "t.second", quick_handle, 5, WORKER_POOL_DEFAULT, "test" },
};

/*
 * The claim of t.first enqueues t.second in the claim's own transaction
 * (a trigger of the test's): the claim does not see it, and its
 * notification comes back to the worker's listening connection with the
 * claim's reply. Nothing else wakes the worker (the poll fallback is ten
 * minutes away), so t.second runs only if the worker looks at what libpq
 * took in before it sleeps; otherwise it is still waiting when the worker
 * exits idle.
 */
static void
test_notification_in_a_reply(void **state)
{
	struct ops_config cfg;
	struct ops_err err = OPS_ERR_INIT;
	struct worker_opts o;
	const char *names[] = { "t.first", "t.second" };
	struct db *db = itest_connect(url);
	long long id = 0;

	(void)state;
	itest_exec(db, "CREATE FUNCTION public.t_chain() RETURNS trigger"
		       " LANGUAGE plpgsql AS $$ BEGIN"
		       " PERFORM apexops.enqueue('t.second', '{}');"
		       " RETURN NULL; END $$");
	itest_exec(db, "CREATE TRIGGER t_chain AFTER UPDATE ON"
		       " apexops.queue_jobs FOR EACH ROW WHEN"
		       " (NEW.kind = 't.first' AND NEW.state = 'running'"
		       " AND OLD.state <> 'running')"
		       " EXECUTE FUNCTION public.t_chain()");
	assert_int_equal(
		queue_enqueue(db, "t.first", "{}", NULL, 0, 5, NULL, &id, &err),
		0);
	assert_int_equal(config_load(&cfg, envfile, fake_getenv, &err), 0);
	memset(&o, 0, sizeof(o));
	o.db_url = url;
	o.concurrency = 2;
	o.kinds = names;
	o.nkinds = 2;
	o.lease_s = 60;
	o.grace_s = 5;
	o.exit_when_idle_ms = 2000;
	o.poll_ms = 600000;
	o.kind_table = chain_kinds;
	o.nkind_table = 2;
	assert_int_equal(worker_run(&cfg, &o, &err), 0);
	ops_stop_flag = 0;
	itest_exec(db, "DROP TRIGGER t_chain ON apexops.queue_jobs");
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM"
					    " apexops.queue_jobs WHERE kind IN"
					    " ('t.first', 't.second') AND"
					    " state = 'succeeded'"),
			 2);
	config_release(&cfg);
	db_close(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_privacy_pool),
		cmocka_unit_test(test_notification_in_a_reply),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
