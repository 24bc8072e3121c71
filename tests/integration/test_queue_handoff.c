/*
 * Integration tests of the direct handoff (migration
 * 20261203_090000_queue_handoff, src/jobs/queue_handoff.c) against the
 * real PostgreSQL, with a "worker" connection and "enqueuer" connections
 * as the platform's API server would be: a ready worker of the kind gets
 * the job leased in the enqueuing transaction and in its notification;
 * nothing is handed to a worker not ready, of other kinds, dead, or
 * stopping; a rollback hands nothing; jobs with a unique key, a later
 * run_at or a payload too big for a notification are claimed; an
 * enqueuer holding the row never makes the worker wait; the dead rows
 * are reaped; handed jobs never read are given back with their attempt.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#define ITEST_DB "handoff"
#include "itest.h"
#include "jobs/queue.h"
#include "jobs/queue_handoff.h"

/* what arrived on a connection */
struct got {
	int n, handed;
	char channel[64];
	char payload[8192];
};

static void
collect(void *arg, const char *channel, const char *payload)
{
	struct got *g = arg;

	g->n++;
	snprintf(g->channel, sizeof(g->channel), "%s", channel);
	snprintf(g->payload, sizeof(g->payload), "%s", payload);
}

/* Notifications on db within ms milliseconds (stops at the first). */
static struct got
wait_notes(struct db *db, int ms)
{
	struct got g;
	struct ops_err err = OPS_ERR_INIT;
	int count = 0;

	memset(&g, 0, sizeof(g));
	for (int waited = 0; waited <= ms; waited += 20) {
		struct pollfd p = { db_socket(db), POLLIN, 0 };

		assert_int_equal(
			db_notifies_each(db, collect, &g, &count, &err), 0);
		if (g.n > 0)
			break;
		(void)poll(&p, 1, 20);
	}
	return g;
}

static long long
enqueue(struct db *db, const char *sql)
{
	return itest_value_ll(db, sql);
}

static long long
q_ll(struct db *db, const char *fmt, long long id)
{
	char sql[512];

	snprintf(sql, sizeof(sql), fmt, id);
	return itest_value_ll(db, sql);
}

static void
set_ready(struct db *w, int id, const char *const *kinds, int n)
{
	struct ops_err err = OPS_ERR_INIT;
	bool set = false;

	assert_int_equal(queue_idle_set(w, id, true, kinds, n, &set, &err), 0);
	assert_true(set);
}

static void
test_handoff(void **state)
{
	struct db *w = itest_connect(url), *c = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct queue_idle idle;
	const char *noop[] = { "noop" };
	struct queue_job job;
	struct got g;
	long long id;
	char *v;

	(void)state;
	itest_exec(c, "DELETE FROM apexops.queue_jobs");
	itest_exec(c, "DELETE FROM apexops.queue_idle");
	assert_int_equal(queue_idle_register(w, "host:1:aa", 30, &idle, &err),
			 0);
	assert_true(idle.id > 0);
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM pg_locks WHERE"
			      " locktype = 'advisory' AND classid = 1634755960"
			      " AND objid = %lld AND mode = 'ExclusiveLock'"
			      " AND granted",
			      idle.id),
			 1);

	/* registered, not ready: claimed as before */
	id = enqueue(c, "SELECT apexops.enqueue('noop', '{}')");
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM apexops.queue_jobs WHERE"
			      " id = %lld AND state = 'available'",
			      id),
			 1);
	g = wait_notes(w, 200);
	assert_int_equal(g.n, 0); /* w LISTENs on its own channel only */

	/* ready for noop: a job of another kind is not handed */
	set_ready(w, idle.id, noop, 1);
	id = enqueue(c, "SELECT apexops.enqueue('other', '{}')");
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM apexops.queue_jobs WHERE"
			      " id = %lld AND state = 'available'",
			      id),
			 1);

	/* a noop job is: running, attempt 1, under the worker's lease */
	id = enqueue(c, "SELECT apexops.enqueue('noop', "
			"'{\"q\": \"a\\\"b\", \"n\": [1, 2]}', max_attempts "
			"=> 3)");
	assert_int_equal(
		q_ll(c,
		     "SELECT count(*) FROM apexops.queue_jobs WHERE"
		     " id = %lld AND state = 'running' AND attempt = 1"
		     " AND lease_owner = 'host:1:aa' AND"
		     " lease_expires_at BETWEEN now() + interval '25 s'"
		     " AND now() + interval '31 s'"
		     " AND started_at = created_at",
		     id),
		1);
	g = wait_notes(w, 2000);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.channel, idle.channel);
	assert_true(queue_handoff_parse(g.payload, &job, NULL, 0));
	assert_int_equal(job.id, id);
	assert_string_equal(job.kind, "noop");
	assert_int_equal(job.attempt, 1);
	assert_int_equal(job.max_attempts, 3);
	v = itest_value(c, "SELECT payload::text FROM apexops.queue_jobs"
			   " ORDER BY id DESC LIMIT 1");
	assert_string_equal(job.payload, v);
	free(v);
	free(job.payload);
	/* handed once: the row is no longer ready */
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM apexops.queue_idle WHERE"
			      " id = %lld AND NOT ready",
			      idle.id),
			 1);
	id = enqueue(c, "SELECT apexops.enqueue('noop', '{}')");
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM apexops.queue_jobs WHERE"
			      " id = %lld AND state = 'available'",
			      id),
			 1);

	/* a rollback hands nothing and leaves the row ready */
	set_ready(w, idle.id, noop, 1);
	itest_exec(c, "BEGIN");
	(void)enqueue(c, "SELECT apexops.enqueue('noop', '{}')");
	itest_exec(c, "ROLLBACK");
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM apexops.queue_idle WHERE"
			      " id = %lld AND ready",
			      idle.id),
			 1);
	g = wait_notes(w, 200);
	assert_int_equal(g.n, 0);

	/* claimed, not handed: a unique key, a later run_at, a payload a
	 * notification cannot carry; the row stays ready */
	id = enqueue(c, "SELECT apexops.enqueue('noop', '{}', unique_key =>"
			" 'k1')");
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM apexops.queue_jobs WHERE"
			      " id = %lld AND state = 'available'",
			      id),
			 1);
	id = enqueue(c, "SELECT apexops.enqueue('noop', '{}', run_at =>"
			" now() + interval '1 hour')");
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM apexops.queue_jobs WHERE"
			      " id = %lld AND state = 'available'",
			      id),
			 1);
	id = enqueue(c, "SELECT apexops.enqueue('noop', jsonb_build_object("
			"'big', repeat('x', 8000)))");
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM apexops.queue_jobs WHERE"
			      " id = %lld AND state = 'available'",
			      id),
			 1);
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM apexops.queue_idle WHERE"
			      " id = %lld AND ready",
			      idle.id),
			 1);
	g = wait_notes(w, 200);
	assert_int_equal(g.n, 0);

	/* only due jobs of the ready kinds: the generic notification is not
	 * sent for a handed job, it is for the others */
	{
		struct db *l = itest_connect(url);

		assert_int_equal(db_listen(l, "apexops_queue", &err), 0);
		id = enqueue(c, "SELECT apexops.enqueue('noop', '{}')");
		assert_int_equal(wait_notes(w, 2000).n, 1);
		assert_int_equal(wait_notes(l, 200).n, 0);
		(void)enqueue(c, "SELECT apexops.enqueue('noop', '{}')");
		assert_int_equal(wait_notes(l, 2000).n, 1);
		db_close(l);
	}
	itest_exec(c, "DELETE FROM apexops.queue_jobs");
	itest_exec(c, "DELETE FROM apexops.queue_idle");
	db_close(w);
	db_close(c);
}

static void
test_enqueuer_holds_the_row(void **state)
{
	struct db *w = itest_connect(url), *c = itest_connect(url),
		  *c2 = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct queue_idle idle;
	const char *noop[] = { "noop" };
	bool set = true;
	long long id, id2;

	(void)state;
	itest_exec(c, "DELETE FROM apexops.queue_jobs");
	assert_int_equal(queue_idle_register(w, "host:2:bb", 30, &idle, &err),
			 0);
	set_ready(w, idle.id, noop, 1);
	itest_exec(c, "BEGIN");
	id = enqueue(c, "SELECT apexops.enqueue('noop', '{}')");
	/* a second enqueuer skips the held row: claimed */
	id2 = enqueue(c2, "SELECT apexops.enqueue('noop', '{}')");
	assert_int_equal(q_ll(c2,
			      "SELECT count(*) FROM apexops.queue_jobs WHERE"
			      " id = %lld AND state = 'available'",
			      id2),
			 1);
	/* the worker is not made to wait: its update is skipped */
	assert_int_equal(queue_idle_set(w, idle.id, false, noop, 1, &set, &err),
			 0);
	assert_false(set);
	/* leaving waits, up to its limit */
	assert_int_equal(queue_idle_leave(w, idle.id, 200, &err),
			 OPS_E_CONFLICT);
	assert_non_null(strstr(err.msg, "enqueuing transaction"));
	ops_err_clear(&err);
	assert_int_equal(wait_notes(w, 100).n, 0); /* not committed */
	itest_exec(c, "COMMIT");
	assert_int_equal(wait_notes(w, 2000).n, 1);
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM apexops.queue_jobs WHERE"
			      " id = %lld AND state = 'running'",
			      id),
			 1);
	/* now it leaves; nothing more is handed */
	assert_int_equal(queue_idle_leave(w, idle.id, 200, &err), 0);
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM apexops.queue_idle WHERE"
			      " id = %lld",
			      idle.id),
			 0);
	id2 = enqueue(c, "SELECT apexops.enqueue('noop', '{}')");
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM apexops.queue_jobs WHERE"
			      " id = %lld AND state = 'available'",
			      id2),
			 1);
	itest_exec(c, "DELETE FROM apexops.queue_jobs");
	db_close(w);
	db_close(c);
	db_close(c2);
}

static void
test_dead_worker(void **state)
{
	struct db *w = itest_connect(url), *w2 = itest_connect(url),
		  *c = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct queue_idle idle, idle2;
	const char *noop[] = { "noop" };
	long long id;
	int n = -1;

	(void)state;
	itest_exec(c, "DELETE FROM apexops.queue_jobs");
	itest_exec(c, "DELETE FROM apexops.queue_idle");
	assert_int_equal(queue_idle_register(w, "host:3:cc", 30, &idle, &err),
			 0);
	assert_int_equal(queue_idle_register(w2, "host:4:dd", 30, &idle2, &err),
			 0);
	set_ready(w, idle.id, noop, 1);
	/* a live worker's row is not reaped, nor the reaper's own */
	assert_int_equal(queue_idle_reap(w2, idle2.id, &n, &err), 0);
	assert_int_equal(n, 0);
	/* the worker's session ends: its lock is free, its row ready */
	db_close(w);
	for (int i = 0; i < 100; i++) {
		if (q_ll(c,
			 "SELECT count(*) FROM pg_locks WHERE classid ="
			 " 1634755960 AND objid = %lld",
			 idle.id) == 0)
			break;
		usleep(20000);
	}
	id = enqueue(c, "SELECT apexops.enqueue('noop', '{}')");
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM apexops.queue_jobs WHERE"
			      " id = %lld AND state = 'available'",
			      id),
			 1);
	assert_int_equal(queue_idle_reap(w2, idle2.id, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(itest_value_ll(c, "SELECT count(*) FROM"
					   " apexops.queue_idle"),
			 1);
	itest_exec(c, "DELETE FROM apexops.queue_jobs");
	itest_exec(c, "DELETE FROM apexops.queue_idle");
	db_close(w2);
	db_close(c);
}

static void
test_release_orphans(void **state)
{
	struct db *w = itest_connect(url), *c = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct queue_idle idle;
	const char *noop[] = { "noop" };
	struct queue_batch b = { NULL, 0 };
	long long a, h, claimed;
	int n = -1;

	(void)state;
	itest_exec(c, "DELETE FROM apexops.queue_jobs");
	assert_int_equal(queue_idle_register(w, "host:5:ee", 30, &idle, &err),
			 0);
	set_ready(w, idle.id, noop, 1);
	a = enqueue(c, "SELECT apexops.enqueue('noop', '{}')");
	set_ready(w, idle.id, noop, 1);
	h = enqueue(c, "SELECT apexops.enqueue('noop', '{}')");
	/* a job the worker claimed (started after its enqueue) */
	claimed = enqueue(c, "SELECT apexops.enqueue('other', '{}')");
	{
		const char *k[] = { "other" };

		assert_int_equal(
			queue_claim(c, k, 1, 10, "host:5:ee", 30, &b, &err), 0);
		assert_int_equal(b.n, 1);
		queue_batch_release(&b);
	}
	/* the worker holds h: only a comes back, its attempt undone */
	assert_int_equal(queue_release_orphans(w, "host:5:ee", &h, 1, &n, &err),
			 0);
	assert_int_equal(n, 1);
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM apexops.queue_jobs WHERE"
			      " id = %lld AND state = 'available' AND"
			      " attempt = 0 AND lease_owner IS NULL",
			      a),
			 1);
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM apexops.queue_jobs WHERE"
			      " id = %lld AND state = 'running'",
			      h),
			 1);
	assert_int_equal(q_ll(c,
			      "SELECT count(*) FROM apexops.queue_jobs WHERE"
			      " id = %lld AND state = 'running'",
			      claimed),
			 1);
	/* another owner's handed job is not this worker's to give back */
	assert_int_equal(
		queue_release_orphans(w, "host:6:ff", NULL, 0, &n, &err), 0);
	assert_int_equal(n, 0);
	itest_exec(c, "DELETE FROM apexops.queue_jobs");
	itest_exec(c, "DELETE FROM apexops.queue_idle");
	db_close(w);
	db_close(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handoff),
		cmocka_unit_test(test_enqueuer_holds_the_row),
		cmocka_unit_test(test_dead_worker),
		cmocka_unit_test(test_release_orphans),
	};

	return cmocka_run_group_tests(tests, itest_setup, itest_teardown);
}
