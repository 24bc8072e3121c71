/*
 * Integration tests of the pacer's probes against the test cluster: the
 * bounded probe rate, sessions waiting on a lock, and the replica-lag
 * guard with a real streaming standby (tests/peers/pg-standby-up.sh, a
 * pg_basebackup of the test cluster) whose replay the test pauses.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include "core/xalloc.h"
#include "itest.h"
#include "jobs/pace.h"

static char *url;

static int
setup(void **state)
{
	struct db *db;

	(void)state;
	url = itest_new_db("pace", 1);
	db = itest_connect(url);
	itest_exec(db, "CREATE TABLE pace_t (id bigint PRIMARY KEY, v text)");
	db_close(db);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	free(url);
	return 0;
}

/*
 * Poll sql (one boolean) every 20 ms until it is true; false after a
 * minute, so that a broken condition fails the test instead of hanging it.
 */
static bool
wait_true(struct db *db, const char *sql)
{
	for (int i = 0; i < 3000; i++) {
		char *v = itest_value(db, sql);
		bool yes = v != NULL && strcmp(v, "t") == 0;

		free(v);
		if (yes)
			return true;
		usleep(20000);
	}
	return false;
}

static void
test_probes_at_a_bounded_rate(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct pace_opts o = { 0 };
	struct pace_stats st;
	struct pace *p;
	long next, pause;

	(void)state;
	o.sample_ms = 600000; /* one probe, then none for ten minutes */
	p = pace_new(&o);
	for (int i = 0; i < 5; i++)
		assert_int_equal(pace_after_batch(p, db, 500, 5.0, 0.1, &next,
						  &pause, NULL, &err),
				 0);
	pace_stats_get(p, &st);
	assert_int_equal(st.batches, 5);
	assert_int_equal(st.probes, 1);
	assert_int_equal(st.lag_waits, 0);
	assert_int_equal(st.backoffs, 0);
	assert_true(st.batch > PACE_DEFAULT_MIN_BATCH); /* it grew */
	pace_free(p);

	o.no_probe = true;
	p = pace_new(&o);
	assert_int_equal(pace_after_batch(p, db, 500, 5.0, 0.1, &next, &pause,
					  NULL, &err),
			 0);
	pace_stats_get(p, &st);
	assert_int_equal(st.probes, 0);
	assert_true(st.max_flush_ms == 0); /* no probe, no canary */
	pace_free(p);
	db_close(db);
}

/* Each probe runs the flush canary: one xid taken and committed durably
 * whatever the session says, the session's own setting left as it was. */
static void
test_flush_canary(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct pace_opts o = { 0 };
	struct pace_stats st;
	struct pace *p;
	long next, pause;
	char *before = NULL, *after = NULL, *sc = NULL;

	(void)state;
	assert_int_equal(db_exec(db, "SET synchronous_commit = off", 0, NULL,
				 NULL, &err),
			 0);
	assert_int_equal(db_query_value(db, "SELECT txid_current()", 0, NULL,
					&before, &err),
			 0);
	o.sample_ms = 600000; /* one probe */
	p = pace_new(&o);
	assert_int_equal(pace_after_batch(p, db, 500, 5.0, 0.1, &next, &pause,
					  NULL, &err),
			 0);
	pace_stats_get(p, &st);
	assert_int_equal(st.probes, 1);
	assert_true(st.max_flush_ms > 0);
	assert_true(st.base_flush_ms > 0);
	assert_int_equal(db_query_value(db, "SELECT txid_current()", 0, NULL,
					&after, &err),
			 0);
	/* the canary's xid lies between the two */
	assert_true(strtoll(after, NULL, 10) >= strtoll(before, NULL, 10) + 2);
	assert_int_equal(db_query_value(db,
					"SELECT current_setting("
					"'synchronous_commit')",
					0, NULL, &sc, &err),
			 0);
	assert_string_equal(sc, "off");
	free(before);
	free(after);
	free(sc);
	pace_free(p);
	db_close(db);
}

struct blocked {
	const char *url;
	int r;
	struct ops_err err;
};

/* A writer that queues behind the test's lock until it is released. */
static void *
blocked_writer(void *arg)
{
	struct blocked *b = arg;
	struct db *db = itest_connect(b->url);

	b->r = db_exec(db, "INSERT INTO pace_t VALUES (1, 'x')", 0, NULL, NULL,
		       &b->err);
	db_close(db);
	return NULL;
}

static void
test_sees_sessions_waiting_on_a_lock(void **state)
{
	struct db *holder = itest_connect(url);
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct blocked b = { url, -1, OPS_ERR_INIT };
	struct pace_opts o = { 0 };
	struct pace_stats st;
	struct pace *p;
	pthread_t th;
	long next, pause;

	(void)state;
	itest_exec(holder, "BEGIN");
	itest_exec(holder, "LOCK TABLE pace_t IN ACCESS EXCLUSIVE MODE");
	assert_int_equal(pthread_create(&th, NULL, blocked_writer, &b), 0);
	assert_true(wait_true(db, "SELECT count(*) > 0 FROM pg_locks"
				  " WHERE relation = 'pace_t'::regclass"
				  " AND NOT granted"));

	o.max_waiters = 0.5;
	o.start_batch = 4000;
	p = pace_new(&o);
	assert_int_equal(pace_after_batch(p, db, 4000, 20.0, 0.2, &next, &pause,
					  NULL, &err),
			 0);
	pace_stats_get(p, &st);
	assert_int_equal(st.probes, 1);
	assert_true(st.waiters >= 1.0);
	assert_int_equal(st.backoffs, 1);
	assert_string_equal(st.last_backoff, "waiters");
	assert_int_equal(next, 2000);
	assert_true(pause >= 20);
	pace_free(p);

	itest_exec(holder, "ROLLBACK");
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(b.r, 0);
	db_close(holder);
	db_close(db);
}

/* The standby, started for the lag tests. */
static char sb_dir[256];
static char *sb_url;

static int
standby_up(void **state)
{
	const char *root = getenv("OPS_ROOT");
	const char *port = getenv("OPS_TEST_PGPORT");
	char cmd[1024], line[300], sbport[16] = "";
	struct db *primary;
	FILE *f;

	(void)state;
	if (root == NULL || port == NULL) {
		fprintf(stderr, "OPS_ROOT and OPS_TEST_PGPORT unset; run "
				"through tests/run.sh\n");
		return -1;
	}
	snprintf(cmd, sizeof(cmd),
		 "PRIMARY_PORT=%s %s/tests/peers/"
		 "pg-standby-up.sh",
		 port, root);
	f = popen(cmd, "r");
	if (f == NULL || fgets(sb_dir, sizeof(sb_dir), f) == NULL) {
		if (f != NULL)
			pclose(f);
		fprintf(stderr, "pg-standby-up.sh failed\n");
		return -1;
	}
	if (pclose(f) != 0)
		return -1;
	sb_dir[strcspn(sb_dir, "\n")] = '\0';
	snprintf(line, sizeof(line), "%s/port", sb_dir);
	f = fopen(line, "r");
	if (f == NULL || fgets(sbport, sizeof(sbport), f) == NULL) {
		if (f != NULL)
			fclose(f);
		return -1;
	}
	fclose(f);
	sbport[strcspn(sbport, "\n")] = '\0';
	sb_url = xasprintf("postgresql://postgres@127.0.0.1:%s/postgres",
			   sbport);
	/* streaming, and caught up with what the primary wrote so far */
	primary = itest_connect(url);
	if (!wait_true(primary, "SELECT count(*) = 1 FROM pg_stat_replication"
				" WHERE state = 'streaming'"
				" AND replay_lsn IS NOT NULL")) {
		db_close(primary);
		return -1;
	}
	db_close(primary);
	return 0;
}

static int
standby_down(void **state)
{
	const char *root = getenv("OPS_ROOT");
	char cmd[1024];

	(void)state;
	if (sb_dir[0] != '\0' && root != NULL) {
		snprintf(cmd, sizeof(cmd),
			 "%s/tests/peers/pg-standby-down.sh %s", root, sb_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "pg-standby-down.sh failed\n");
	}
	free(sb_url);
	return 0;
}

/* Pause the standby's replay and write WAL it will not replay. */
static void
pause_replay_and_write(struct db *primary, struct db *standby)
{
	itest_exec(standby, "SELECT pg_wal_replay_pause()");
	assert_true(wait_true(standby, "SELECT pg_get_wal_replay_pause_state()"
				       " = 'paused'"));
	itest_exec(primary, "INSERT INTO pace_t SELECT g, repeat('x', 100)"
			    " FROM generate_series(1000, 20999) g");
	itest_exec(primary, "DELETE FROM pace_t WHERE id >= 1000");
	/* received by the standby, not replayed */
	assert_true(wait_true(primary, "SELECT bool_and(replay_lsn <"
				       " pg_current_wal_lsn()"
				       " AND write_lsn > replay_lsn)"
				       " FROM pg_stat_replication"));
}

struct pacer_run {
	struct pace *p;
	struct db *db;
	volatile sig_atomic_t stop;
	long next, pause;
	int r;
	struct ops_err err;
	atomic_int done; /* set when pace_after_batch() returned */
};

static void *
pacer_thread(void *arg)
{
	struct pacer_run *pr = arg;

	pr->r = pace_after_batch(pr->p, pr->db, 2000, 30.0, 0.3, &pr->next,
				 &pr->pause, &pr->stop, &pr->err);
	atomic_store(&pr->done, 1);
	return NULL;
}

/*
 * Wait until the pacer's backend has run its lag probe several times: a
 * call that does not wait probes once, so three probes mean it is in the
 * wait loop.
 */
static void
wait_for_probes(struct db *watcher, struct pacer_run *pr, int probes)
{
	int pid = db_backend_pid(pr->db);
	char sql[256], last[64] = "";
	int seen = 0;

	snprintf(sql, sizeof(sql),
		 "SELECT query_start::text FROM pg_stat_activity"
		 " WHERE pid = %d AND query LIKE '%%pg_stat_replication%%'",
		 pid);
	for (int i = 0; i < 60000 && seen < probes && !atomic_load(&pr->done);
	     i++) {
		char *v = itest_value(watcher, sql);

		if (v != NULL && strcmp(v, last) != 0) {
			snprintf(last, sizeof(last), "%s", v);
			seen++;
		}
		free(v);
		usleep(1000);
	}
	assert_true(seen >= probes);
	assert_false(atomic_load(&pr->done)); /* still waiting */
}

static void
test_waits_for_a_lagging_standby(void **state)
{
	struct db *primary = itest_connect(url);
	struct db *standby = itest_connect(sb_url);
	struct pacer_run pr;
	struct pace_opts o = { 0 };
	struct pace_stats st;
	pthread_t th;

	(void)state;
	memset(&pr, 0, sizeof(pr));
	o.sample_ms = 20;
	o.max_lag_bytes = 1024;
	o.min_batch = 500;
	o.start_batch = 2000;
	pr.p = pace_new(&o);
	pr.db = itest_connect(url);
	pause_replay_and_write(primary, standby);

	assert_int_equal(pthread_create(&th, NULL, pacer_thread, &pr), 0);
	wait_for_probes(primary, &pr, 3);
	/* still waiting: the standby has not moved */
	assert_true(wait_true(standby, "SELECT pg_get_wal_replay_pause_state()"
				       " = 'paused'"));
	itest_exec(standby, "SELECT pg_wal_replay_resume()");
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(pr.r, 0);
	pace_stats_get(pr.p, &st);
	assert_int_equal(st.lag_waits, 1);
	assert_true(st.probes >= 3);
	assert_true(st.max_lag_bytes > 1024);
	assert_true(st.lag_wait_ms > 0);
	assert_int_equal(pr.next, 500); /* restarts at min_batch */
	assert_int_equal(pr.pause, 0);
	pace_free(pr.p);
	db_close(pr.db);
	db_close(standby);
	db_close(primary);
}

static void
test_lag_wait_honours_stop_and_its_bound(void **state)
{
	struct db *primary = itest_connect(url);
	struct db *standby = itest_connect(sb_url);
	struct pacer_run pr;
	struct pace_opts o = { 0 };
	pthread_t th;

	(void)state;
	memset(&pr, 0, sizeof(pr));
	o.sample_ms = 20;
	o.max_lag_bytes = 1024;
	pr.p = pace_new(&o);
	pr.db = itest_connect(url);
	pause_replay_and_write(primary, standby);

	/* a stop request ends the wait */
	assert_int_equal(pthread_create(&th, NULL, pacer_thread, &pr), 0);
	wait_for_probes(primary, &pr, 3);
	pr.stop = 1;
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(pr.r, OPS_E_STOPPED);
	pace_free(pr.p);

	/* a standby that stays behind ends it after max_lag_wait_ms */
	o.max_lag_wait_ms = 200;
	pr.p = pace_new(&o);
	pr.stop = 0;
	pr.r = pace_after_batch(pr.p, pr.db, 2000, 30.0, 0.3, &pr.next,
				&pr.pause, NULL, &pr.err);
	assert_int_equal(pr.r, OPS_E_CONFLICT);
	assert_true(pr.err.transient);
	assert_non_null(strstr(pr.err.msg, "standby is still behind"));
	pace_free(pr.p);

	itest_exec(standby, "SELECT pg_wal_replay_resume()");
	db_close(pr.db);
	db_close(standby);
	db_close(primary);
}

/* A role without pg_monitor sees the standby but not its LSNs: counted,
 * warned about, never waited for. */
static void
test_hidden_lag_for_an_unprivileged_role(void **state)
{
	struct db *primary = itest_connect(url);
	struct db *standby = itest_connect(sb_url);
	struct ops_err err = OPS_ERR_INIT;
	struct pace_opts o = { 0 };
	struct pace_stats st;
	struct pace *p;
	struct db *db;
	char *nomon_url, *at;
	long next, pause;

	(void)state;
	itest_exec(primary, "DROP ROLE IF EXISTS pace_nomon");
	itest_exec(primary, "CREATE ROLE pace_nomon LOGIN");
	at = strstr(url, "postgres@");
	assert_non_null(at);
	nomon_url = xasprintf("%.*s%s%s", (int)(at - url), url, "pace_nomon@",
			      at + strlen("postgres@"));
	db = itest_connect(nomon_url);
	pause_replay_and_write(primary, standby);
	o.max_lag_bytes = 1024;
	p = pace_new(&o);
	assert_int_equal(pace_after_batch(p, db, 500, 5.0, 0.1, &next, &pause,
					  NULL, &err),
			 0);
	pace_stats_get(p, &st);
	assert_int_equal(st.probes, 1);
	assert_int_equal(st.lag_hidden, 1);
	assert_int_equal(st.lag_waits, 0);
	pace_free(p);
	itest_exec(standby, "SELECT pg_wal_replay_resume()");
	db_close(db);
	free(nomon_url);
	db_close(standby);
	db_close(primary);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probes_at_a_bounded_rate),
		cmocka_unit_test(test_flush_canary),
		cmocka_unit_test(test_sees_sessions_waiting_on_a_lock),
	};
	const struct CMUnitTest lag_tests[] = {
		cmocka_unit_test(test_waits_for_a_lagging_standby),
		cmocka_unit_test(test_lag_wait_honours_stop_and_its_bound),
		cmocka_unit_test(test_hidden_lag_for_an_unprivileged_role),
	};
	int failed;

	failed = cmocka_run_group_tests_name("pace", tests, setup, NULL);
	failed += cmocka_run_group_tests_name("pace_standby", lag_tests,
					      standby_up, standby_down);
	teardown(NULL);
	return failed;
}
