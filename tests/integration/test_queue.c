/*
 * Integration tests of the job queue's functions (src/jobs/queue.c) alone,
 * against the real PostgreSQL: claims in batches (priority, kinds, due
 * times, SKIP LOCKED), fencing of a stale (job, attempt), the retry
 * backoff's bounds, dead after max_attempts with every error kept, a
 * permanent failure, the unique key, release, and pruning by age.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include "core/buf.h"
#define ITEST_DB "queue"
#include "itest.h"
#include "jobs/queue.h"

/* a connection to a queue emptied for the test */
static struct db *
fresh(void)
{
	struct db *db = itest_connect(url);

	itest_exec(db, "DELETE FROM apexops.queue_jobs");
	return db;
}

static long long
q_ll(struct db *db, const char *fmt, long long id)
{
	char sql[512];

	snprintf(sql, sizeof(sql), fmt, id);
	return itest_value_ll(db, sql);
}

static char *
q_str(struct db *db, const char *fmt, long long id)
{
	char sql[512];

	snprintf(sql, sizeof(sql), fmt, id);
	return itest_value(db, sql);
}

static void
test_claim_batches(void **state)
{
	struct db *db = fresh(), *other = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	const char *payloads[10];
	const char *ab[] = { "t.a", "t.b" }, *b_only[] = { "t.b" };
	struct queue_batch b = { NULL, 0 };
	long long first = 0, urgent = 0, later = 0;

	(void)state;
	for (int i = 0; i < 10; i++)
		payloads[i] = "{\"n\": 1}";
	assert_int_equal(
		queue_enqueue_bulk(db, "t.a", payloads, 10, &first, &err), 0);
	assert_true(first > 0);
	assert_int_equal(
		queue_enqueue_bulk(db, "t.b", payloads, 5, &first, &err), 0);
	assert_int_equal(queue_enqueue(db, "t.a", "{\"urgent\": true}", NULL, 5,
				       0, NULL, &urgent, &err),
			 0);
	assert_int_equal(queue_enqueue(db, "t.a", NULL, "2999-01-01T00:00:00Z",
				       9, 0, NULL, &later, &err),
			 0);
	/* several jobs per round trip, the highest priority first */
	assert_int_equal(queue_claim(db, ab, 2, 4, "owner-1", 60, &b, &err), 0);
	assert_int_equal(b.n, 4);
	assert_int_equal(b.v[0].id, urgent);
	assert_string_equal(b.v[0].payload, "{\"urgent\": true}");
	for (int i = 0; i < b.n; i++) {
		assert_int_equal(b.v[i].attempt, 1);
		assert_int_equal(b.v[i].max_attempts, 5);
		assert_int_equal(q_ll(db,
				      "SELECT count(*) FROM apexops.queue_jobs"
				      " WHERE id = %lld AND state = 'running'"
				      " AND lease_owner = 'owner-1'"
				      " AND lease_expires_at > now()",
				      b.v[i].id),
				 1);
	}
	queue_batch_release(&b);
	/* only the kinds asked for */
	assert_int_equal(
		queue_claim(db, b_only, 1, 100, "owner-1", 60, &b, &err), 0);
	assert_int_equal(b.n, 5);
	for (int i = 0; i < b.n; i++)
		assert_string_equal(b.v[i].kind, "t.b");
	queue_batch_release(&b);
	/* rows another transaction holds are skipped, not waited for */
	itest_exec(other, "BEGIN");
	itest_exec(other, "SELECT id FROM apexops.queue_jobs WHERE state ="
			  " 'available' ORDER BY id LIMIT 3 FOR UPDATE");
	assert_int_equal(queue_claim(db, ab, 2, 100, "owner-2", 60, &b, &err),
			 0);
	assert_int_equal(b.n, 4); /* 7 due t.a left, 3 of them locked */
	queue_batch_release(&b);
	itest_exec(other, "ROLLBACK");
	/* any kind (NULL): the 3 freed; never the job due in 2999 */
	assert_int_equal(queue_claim(db, NULL, 0, 100, "owner-2", 60, &b, &err),
			 0);
	assert_int_equal(b.n, 3);
	for (int i = 0; i < b.n; i++)
		assert_true(b.v[i].id != later);
	queue_batch_release(&b);
	assert_int_equal(queue_claim(db, ab, 2, 100, "owner-2", 60, &b, &err),
			 0);
	assert_int_equal(b.n, 0);
	assert_null(b.v);
	assert_int_equal(q_ll(db,
			      "SELECT count(*) FROM apexops.queue_jobs"
			      " WHERE state = 'available' AND id = %lld",
			      later),
			 1);
	db_close(other);
	db_close(db);
}

/* a job whose lease lapsed, claimed again: the first attempt's late
 * results are rejected, the second's accepted once */
static void
test_fencing(void **state)
{
	struct db *db = fresh();
	struct ops_err err = OPS_ERR_INIT;
	const char *k[] = { "t.f" };
	struct queue_batch b = { NULL, 0 };
	long long id = 0;
	int done = -1, n = 0, att1, att2;
	char *s;

	(void)state;
	assert_int_equal(
		queue_enqueue(db, "t.f", NULL, NULL, 0, 0, NULL, &id, &err), 0);
	assert_int_equal(queue_claim(db, k, 1, 10, "w-a", 60, &b, &err), 0);
	assert_int_equal(b.n, 1);
	att1 = b.v[0].attempt;
	queue_batch_release(&b);
	/* w-a stalls past its lease; the reaper counts the attempt */
	itest_exec(db, "UPDATE apexops.queue_jobs SET lease_expires_at ="
		       " now() - interval '1 s'");
	assert_int_equal(queue_reap(db, &n, &err), 0);
	assert_int_equal(n, 1);
	s = q_str(db,
		  "SELECT state || ' ' || (errors->0->>'error') FROM"
		  " apexops.queue_jobs WHERE id = %lld",
		  id);
	assert_string_equal(s, "failed-retrying the lease of w-a lapsed");
	free(s);
	/* claimed again, by the same owner name even: a new attempt */
	assert_int_equal(queue_claim(db, k, 1, 10, "w-a", 60, &b, &err), 0);
	assert_int_equal(b.n, 1);
	att2 = b.v[0].attempt;
	queue_batch_release(&b);
	assert_int_equal(att2, att1 + 1);
	/* the first attempt's late success and failure are rejected */
	assert_int_equal(queue_complete(db, &id, &att1, 1, "w-a", &done, &err),
			 0);
	assert_int_equal(done, 0);
	assert_int_equal(
		queue_fail(db, id, att1, "w-a", "late", false, 0, NULL, &err),
		OPS_E_CONFLICT);
	ops_err_clear(&err);
	assert_int_equal(queue_complete_claim(db, &id, &att1, 1, k, 1, 0, "w-a",
					      60, &b, &err),
			 0);
	queue_batch_release(&b);
	assert_int_equal(q_ll(db,
			      "SELECT count(*) FROM apexops.queue_jobs WHERE"
			      " id = %lld AND state = 'running'",
			      id),
			 1);
	/* another owner cannot complete it either */
	assert_int_equal(queue_complete(db, &id, &att2, 1, "w-b", &done, &err),
			 0);
	assert_int_equal(done, 0);
	/* the current attempt completes, once (through the claim's path) */
	assert_int_equal(queue_complete_claim(db, &id, &att2, 1, k, 1, 0, "w-a",
					      60, &b, &err),
			 0);
	queue_batch_release(&b);
	s = q_str(db,
		  "SELECT state || ' ' || attempt || ' ' ||"
		  " (finished_at IS NOT NULL) FROM apexops.queue_jobs"
		  " WHERE id = %lld",
		  id);
	assert_string_equal(s, "succeeded 2 true");
	free(s);
	assert_int_equal(queue_complete(db, &id, &att2, 1, "w-a", &done, &err),
			 0);
	assert_int_equal(done, 0);
	db_close(db);
}

static void
test_retry_backoff(void **state)
{
	struct db *db = fresh();
	struct ops_err err = OPS_ERR_INIT;
	const char *k[] = { "t.r" };
	struct queue_batch b = { NULL, 0 };
	long long id = 0;
	char st[16];

	(void)state;
	/* full jitter: within [0, min(1 h, 1 s * 2^(attempt - 1))], and
	 * spread over that range rather than fixed */
	for (int attempt = 1; attempt <= 16; attempt++) {
		long cap = attempt <= 13 ? 1000L << (attempt - 1) : 3600000L;
		long lo = cap, hi = 0;

		if (cap > 3600000L)
			cap = 3600000L;
		for (int i = 0; i < 200; i++) {
			long d = queue_retry_delay_ms(attempt);

			assert_true(d >= 0 && d <= cap);
			if (d < lo)
				lo = d;
			if (d > hi)
				hi = d;
		}
		assert_true(hi - lo > cap / 4);
	}
	/* queue_fail holds the job back by the delay it is given */
	assert_int_equal(
		queue_enqueue(db, "t.r", NULL, NULL, 0, 0, NULL, &id, &err), 0);
	assert_int_equal(queue_claim(db, k, 1, 10, "w", 60, &b, &err), 0);
	assert_int_equal(b.n, 1);
	queue_batch_release(&b);
	assert_int_equal(
		queue_fail(db, id, 1, "w", "try later", false, 90000, st, &err),
		0);
	assert_string_equal(st, QUEUE_RETRYING);
	assert_int_equal(q_ll(db,
			      "SELECT round(extract(epoch FROM run_at -"
			      " updated_at) * 1000) FROM apexops.queue_jobs"
			      " WHERE id = %lld",
			      id),
			 90000);
	assert_int_equal(queue_claim(db, k, 1, 10, "w", 60, &b, &err), 0);
	assert_int_equal(b.n, 0); /* not before its time */
	itest_exec(db, "UPDATE apexops.queue_jobs SET run_at = now()");
	assert_int_equal(queue_claim(db, k, 1, 10, "w", 60, &b, &err), 0);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.v[0].attempt, 2);
	queue_batch_release(&b);
	db_close(db);
}

static void
test_dead_after_max_attempts(void **state)
{
	struct db *db = fresh();
	struct ops_err err = OPS_ERR_INIT;
	const char *k[] = { "t.d" };
	struct queue_batch b = { NULL, 0 };
	const char *want[] = { QUEUE_RETRYING, QUEUE_RETRYING, QUEUE_DEAD };
	long long id = 0, perm = 0;
	char st[16], msg[32], *s, *json = NULL;
	int n = 0;

	(void)state;
	assert_int_equal(
		queue_enqueue(db, "t.d", NULL, NULL, 0, 3, NULL, &id, &err), 0);
	for (int attempt = 1; attempt <= 3; attempt++) {
		itest_exec(db, "UPDATE apexops.queue_jobs SET run_at = now()");
		assert_int_equal(queue_claim(db, k, 1, 10, "w", 60, &b, &err),
				 0);
		assert_int_equal(b.n, 1);
		assert_int_equal(b.v[0].attempt, attempt);
		queue_batch_release(&b);
		snprintf(msg, sizeof(msg), "boom %d", attempt);
		/* a 10-minute retry delay: the last failure ignores it */
		assert_int_equal(queue_fail(db, id, attempt, "w", msg, false,
					    600000, st, &err),
				 0);
		assert_string_equal(st, want[attempt - 1]);
	}
	/* dead: the run_at of its last attempt, not a retry's */
	assert_int_equal(q_ll(db,
			      "SELECT (run_at <= now())::int FROM"
			      " apexops.queue_jobs WHERE id = %lld",
			      id),
			 1);
	/* dead: never claimed again, every attempt's error kept in order */
	itest_exec(db, "UPDATE apexops.queue_jobs SET run_at = now()");
	assert_int_equal(queue_claim(db, k, 1, 10, "w", 60, &b, &err), 0);
	assert_int_equal(b.n, 0);
	s = q_str(db,
		  "SELECT state || '|' || last_error || '|' ||"
		  " (finished_at IS NOT NULL) || '|' || (SELECT"
		  " string_agg((e->>'attempt') || ':' || (e->>'error'), ',')"
		  " FROM jsonb_array_elements(errors) e)"
		  " FROM apexops.queue_jobs WHERE id = %lld",
		  id);
	assert_string_equal(s, "dead|boom 3|true|1:boom 1,2:boom 2,3:boom 3");
	free(s);
	assert_int_equal(queue_show_json(db, id, &json, &err), 0);
	assert_non_null(strstr(json, "boom 1"));
	assert_non_null(strstr(json, "boom 3"));
	free(json);
	/* a permanent error: dead at once, attempts left or not */
	assert_int_equal(
		queue_enqueue(db, "t.d", NULL, NULL, 0, 5, NULL, &perm, &err),
		0);
	assert_int_equal(queue_claim(db, k, 1, 10, "w", 60, &b, &err), 0);
	assert_int_equal(b.n, 1);
	queue_batch_release(&b);
	assert_int_equal(
		queue_fail(db, perm, 1, "w", "bad input", true, 0, st, &err),
		0);
	assert_string_equal(st, QUEUE_DEAD);
	assert_int_equal(q_ll(db,
			      "SELECT (errors->0->>'permanent')::bool::int"
			      " FROM apexops.queue_jobs WHERE id = %lld",
			      perm),
			 1);
	/* a last attempt whose lease lapses: dead, its run_at kept */
	assert_int_equal(
		queue_enqueue(db, "t.d", NULL, NULL, 0, 1, NULL, &perm, &err),
		0);
	itest_exec(db, "UPDATE apexops.queue_jobs SET run_at = now() -"
		       " interval '1 hour' WHERE state = 'available'");
	assert_int_equal(queue_claim(db, k, 1, 10, "w", 60, &b, &err), 0);
	assert_int_equal(b.n, 1);
	queue_batch_release(&b);
	itest_exec(db, "UPDATE apexops.queue_jobs SET lease_expires_at ="
		       " now() - interval '1 s' WHERE state = 'running'");
	assert_int_equal(queue_reap(db, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(q_ll(db,
			      "SELECT (state = 'dead' AND finished_at IS NOT"
			      " NULL AND run_at < now() - interval '59 min')"
			      "::int FROM apexops.queue_jobs WHERE id = %lld",
			      perm),
			 1);
	db_close(db);
}

static void
test_unique_key(void **state)
{
	struct db *db = fresh();
	struct ops_err err = OPS_ERR_INIT;
	const char *k[] = { "t.u" };
	struct queue_batch b = { NULL, 0 };
	long long a = 0, again = 0, after = 0, other = 0;
	int done = 0, att;

	(void)state;
	assert_int_equal(queue_enqueue(db, "t.u", NULL, NULL, 0, 0, "export:7",
				       &a, &err),
			 0);
	assert_int_equal(queue_enqueue(db, "t.u", NULL, NULL, 0, 0, "export:7",
				       &again, &err),
			 0);
	assert_int_equal(again, a); /* the existing job's id */
	assert_int_equal(queue_enqueue(db, "t.u", NULL, NULL, 0, 0, "export:8",
				       &other, &err),
			 0);
	assert_true(other != a);
	/* still refused while it runs */
	assert_int_equal(queue_claim(db, k, 1, 1, "w", 60, &b, &err), 0);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.v[0].id, a);
	att = b.v[0].attempt;
	queue_batch_release(&b);
	assert_int_equal(queue_enqueue(db, "t.u", NULL, NULL, 0, 0, "export:7",
				       &again, &err),
			 0);
	assert_int_equal(again, a);
	/* finished: the key is free again */
	assert_int_equal(queue_complete(db, &a, &att, 1, "w", &done, &err), 0);
	assert_int_equal(done, 1);
	assert_int_equal(queue_enqueue(db, "t.u", NULL, NULL, 0, 0, "export:7",
				       &after, &err),
			 0);
	assert_true(after != a && after > 0);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM"
					    " apexops.queue_jobs WHERE"
					    " unique_key = 'export:7'"),
			 2);
	/* no key (a plain insert): every call is a job of its own, with the
	 * defaults for what it leaves out */
	assert_int_equal(
		queue_enqueue(db, "t.u", NULL, NULL, 0, 0, NULL, &a, &err), 0);
	assert_int_equal(
		queue_enqueue(db, "t.u", NULL, NULL, 0, 0, NULL, &again, &err),
		0);
	assert_true(a > 0 && again > a);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM"
					    " apexops.queue_jobs WHERE"
					    " unique_key IS NULL"),
			 2);
	other = itest_value_ll(db, "SELECT apexops.enqueue('t.u', NULL, NULL,"
				   " NULL, NULL, NULL)");
	assert_true(other > again);
	assert_int_equal(q_ll(db,
			      "SELECT count(*) FROM apexops.queue_jobs WHERE"
			      " id = %lld AND payload = '{}' AND priority = 0"
			      " AND max_attempts = 5 AND state = 'available'"
			      " AND unique_key IS NULL AND run_at <= now()",
			      other),
			 1);
	db_close(db);
}

/* a graceful stop gives jobs back without spending their attempt */
static void
test_release(void **state)
{
	struct db *db = fresh();
	struct ops_err err = OPS_ERR_INIT;
	const char *k[] = { "t.g" };
	struct queue_batch b = { NULL, 0 };
	long long id = 0, stale;
	int att;

	(void)state;
	assert_int_equal(
		queue_enqueue(db, "t.g", NULL, NULL, 0, 0, NULL, &id, &err), 0);
	assert_int_equal(queue_claim(db, k, 1, 10, "w", 60, &b, &err), 0);
	assert_int_equal(b.n, 1);
	att = b.v[0].attempt;
	queue_batch_release(&b);
	stale = att + 1; /* a wrong attempt releases nothing */
	{
		int wrong = (int)stale;

		assert_int_equal(queue_release(db, &id, &wrong, 1, "w", &err),
				 0);
	}
	assert_int_equal(q_ll(db,
			      "SELECT count(*) FROM apexops.queue_jobs WHERE"
			      " id = %lld AND state = 'running'",
			      id),
			 1);
	assert_int_equal(queue_release(db, &id, &att, 1, "w", &err), 0);
	assert_int_equal(q_ll(db,
			      "SELECT attempt FROM apexops.queue_jobs WHERE"
			      " id = %lld AND state = 'available' AND"
			      " lease_owner IS NULL",
			      id),
			 0);
	db_close(db);
}

static void
test_prune(void **state)
{
	struct db *db = fresh();
	struct ops_err err = OPS_ERR_INIT;
	long long n = -1;
	char *s;

	(void)state;
	/* each row's unique_key names it; finished_at its age in days */
	itest_exec(db,
		   "INSERT INTO apexops.queue_jobs (kind, state, unique_key,"
		   " created_at, finished_at) VALUES"
		   " ('t.p', 'succeeded', 'ok-8d', now() - interval '9 days',"
		   "  now() - interval '8 days'),"
		   " ('t.p', 'succeeded', 'ok-6d', now() - interval '9 days',"
		   "  now() - interval '6 days'),"
		   " ('t.p', 'cancelled', 'cancel-8d', now() - interval '9"
		   "  days', now() - interval '8 days'),"
		   " ('t.p', 'dead', 'dead-29d', now() - interval '40 days',"
		   "  now() - interval '29 days'),"
		   " ('t.p', 'dead', 'dead-31d', now() - interval '40 days',"
		   "  now() - interval '31 days'),"
		   " ('t.p', 'available', 'open-40d', now() - interval '40"
		   "  days', NULL),"
		   " ('t.p', 'failed-retrying', 'retry-40d', now() - interval"
		   "  '40 days', NULL)");
	/* the defaults: succeeded and cancelled 7 days, dead 30 */
	assert_int_equal(queue_prune(db, 7, 30, &n, &err), 0);
	assert_int_equal(n, 3);
	s = itest_value(db, "SELECT string_agg(unique_key, ',' ORDER BY"
			    " unique_key) FROM apexops.queue_jobs");
	assert_string_equal(s, "dead-29d,ok-6d,open-40d,retry-40d");
	free(s);
	assert_int_equal(queue_prune(db, 7, 30, &n, &err), 0);
	assert_int_equal(n, 0);
	db_close(db);
}

/* two pools in one statement: each up to its own limit, a pool of two
 * kinds by priority across them, a pool at limit 0 nothing; bad shapes
 * are refused */
static void
test_claim_pools(void **state)
{
	struct db *db = fresh();
	struct ops_err err = OPS_ERR_INIT;
	const char *payloads[6] = { "{}", "{}", "{}", "{}", "{}", "{}" };
	const char *def[] = { "t.a" }, *priv[] = { "t.x", "t.y" };
	struct queue_pool_claim pc[3] = { { def, 1, 4 },
					  { priv, 2, 2 },
					  { def, 1, 1 } };
	struct queue_batch b = { NULL, 0 };
	long long first = 0, y_urgent = 0;
	int na = 0, nxy = 0;

	(void)state;
	assert_int_equal(
		queue_enqueue_bulk(db, "t.a", payloads, 6, &first, &err), 0);
	assert_int_equal(
		queue_enqueue_bulk(db, "t.x", payloads, 3, &first, &err), 0);
	assert_int_equal(queue_enqueue(db, "t.y", NULL, NULL, 7, 0, NULL,
				       &y_urgent, &err),
			 0);
	assert_int_equal(queue_claim_pools(db, pc, 2, "pools", 60, &b, &err),
			 0);
	assert_int_equal(b.n, 6);
	assert_int_equal(b.v[0].id, y_urgent); /* priority 7, first */
	for (int i = 0; i < b.n; i++) {
		if (strcmp(b.v[i].kind, "t.a") == 0)
			na++;
		else
			nxy++;
		assert_int_equal(b.v[i].attempt, 1);
	}
	assert_int_equal(na, 4);
	assert_int_equal(nxy, 2); /* t.y's urgent job and the oldest t.x */
	queue_batch_release(&b);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM"
					    " apexops.queue_jobs WHERE state ="
					    " 'running' AND lease_owner ="
					    " 'pools'"),
			 6);
	/* the default pool full (limit 0): only the other's */
	pc[0].limit = 0;
	assert_int_equal(queue_claim_pools(db, pc, 2, "pools", 60, &b, &err),
			 0);
	assert_int_equal(b.n, 2);
	for (int i = 0; i < b.n; i++)
		assert_string_equal(b.v[i].kind, "t.x");
	queue_batch_release(&b);
	/* one pool alone; then nothing left of it */
	assert_int_equal(
		queue_claim_pools(db, pc + 2, 1, "pools", 60, &b, &err), 0);
	assert_int_equal(b.n, 1);
	queue_batch_release(&b);
	assert_int_equal(queue_claim_pools(db, pc, 2, "pools", 60, &b, &err),
			 0);
	assert_int_equal(b.n, 0);
	/* shapes it cannot name */
	assert_int_equal(queue_claim_pools(db, pc, 3, "pools", 60, &b, &err),
			 OPS_E_INVALID);
	ops_err_clear(&err);
	pc[1].nkinds = 0;
	assert_int_equal(queue_claim_pools(db, pc, 2, "pools", 60, &b, &err),
			 OPS_E_INVALID);
	ops_err_clear(&err);
	db_close(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_claim_batches),
		cmocka_unit_test(test_claim_pools),
		cmocka_unit_test(test_fencing),
		cmocka_unit_test(test_retry_backoff),
		cmocka_unit_test(test_dead_after_max_attempts),
		cmocka_unit_test(test_unique_key),
		cmocka_unit_test(test_release),
		cmocka_unit_test(test_prune),
	};

	return cmocka_run_group_tests(tests, itest_setup, itest_teardown);
}
