/* Integration tests of the named advisory locks (src/db/lock.h). */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* after the headers it needs (clang-format keeps blocks apart) */
#include <cmocka.h>

#include "db/lock.h"
#define ITEST_DB	  "lock"
#define ITEST_DB_TEMPLATE 0
#include "itest.h"

static void
test_names_keep_their_keys(void **state)
{
	(void)state;
	/* the keys of the names in use before the helper existed: an
	 * older binary must still exclude a newer one */
	assert_true(db_lock_key("apexops.migrate") == 5066480413002999510LL);
	assert_true(db_lock_key("apexops.purge") == 279324026369727388LL);
	assert_true(db_lock_key("apexops/sandbox-bootstrap") ==
		    6438167579588527582LL);
	assert_true(db_lock_key("apexops/sandbox-revenue") ==
		    7400799388706803384LL);
}

static void
test_try_names_the_holder(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	struct db *a = itest_connect(url), *b = itest_connect(url);
	struct db_lock_holder h;
	bool held = true;
	char want[64];

	(void)state;
	assert_int_equal(db_lock_holder(b, "apexops.test-try", &h, &held, &err),
			 0);
	assert_false(held);
	assert_int_equal(db_lock_try(a, "apexops.test-try", &err), 0);
	assert_int_equal(db_lock_holder(b, "apexops.test-try", &h, &held, &err),
			 0);
	assert_true(held);
	assert_int_equal(h.pid, db_backend_pid(a));
	assert_string_equal(h.appname, "apexops/test");
	assert_string_equal(h.client, "127.0.0.1");
	assert_int_equal(strlen(h.since), 20);
	assert_int_equal(db_lock_try(b, "apexops.test-try", &err),
			 OPS_E_CONFLICT);
	assert_int_equal(ops_err_exit_code(&err), 75);
	snprintf(want, sizeof(want), "backend pid %d", db_backend_pid(a));
	if (strstr(err.msg, want) == NULL ||
	    strstr(err.msg, "apexops/test") == NULL ||
	    strstr(err.msg, "127.0.0.1") == NULL ||
	    strstr(err.msg, "connected since") == NULL)
		fail_msg("message does not name the holder: %s", err.msg);
	/* another name is another lock */
	assert_int_equal(db_lock_try(b, "apexops.test-other", &err), 0);
	assert_int_equal(db_lock_release(a, "apexops.test-try", &err), 0);
	assert_int_equal(db_lock_try(b, "apexops.test-try", &err), 0);
	db_close(a);
	db_close(b);
}

static void
test_wait_times_out_naming_the_holder(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	struct db *a = itest_connect(url), *b = itest_connect(url);
	char want[64];

	(void)state;
	assert_int_equal(db_lock_try(a, "apexops.test-wait", &err), 0);
	assert_int_equal(db_lock_wait(b, "apexops.test-wait", 300, NULL, &err),
			 OPS_E_CONFLICT);
	snprintf(want, sizeof(want), "backend pid %d", db_backend_pid(a));
	if (strstr(err.msg, want) == NULL)
		fail_msg("message does not name the holder: %s", err.msg);
	db_close(a);
	db_close(b);
}

static void
test_wait_stops_on_request(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	struct db *a = itest_connect(url), *b = itest_connect(url);
	volatile sig_atomic_t stop = 1;

	(void)state;
	assert_int_equal(db_lock_try(a, "apexops.test-stop", &err), 0);
	/* a long timeout: only the stop request can end the wait */
	assert_int_equal(
		db_lock_wait(b, "apexops.test-stop", 3600L * 1000, &stop, &err),
		OPS_E_STOPPED);
	assert_non_null(strstr(err.msg, "apexops.test-stop"));
	db_close(a);
	db_close(b);
}

struct releaser {
	struct db *holder;
	int waiter_pid;
};

/* Release the lock once the waiter has tried it at least once. */
static void *
release_when_tried(void *arg)
{
	struct releaser *rl = arg;
	struct ops_err err = OPS_ERR_INIT;
	char pid_s[24];
	const char *params[1] = { pid_s };

	snprintf(pid_s, sizeof(pid_s), "%d", rl->waiter_pid);
	for (;;) {
		char *v = NULL;
		bool tried;

		if (db_query_value(rl->holder,
				   "SELECT count(*) FROM pg_stat_activity "
				   "WHERE pid = $1::int AND query LIKE "
				   "'%pg_try_advisory_lock%'",
				   1, params, &v, &err) != 0)
			break;
		tried = v != NULL && strcmp(v, "1") == 0;
		free(v);
		if (tried)
			break;
		usleep(10 * 1000);
	}
	(void)db_lock_release(rl->holder, "apexops.test-handover", &err);
	return NULL;
}

static void
test_wait_takes_the_lock_when_released(void **state)
{
	struct ops_err err = OPS_ERR_INIT;
	struct db *a = itest_connect(url), *b = itest_connect(url);
	struct releaser rl = { a, db_backend_pid(b) };
	struct db_lock_holder h;
	bool held = false;
	pthread_t t;

	(void)state;
	assert_int_equal(db_lock_try(a, "apexops.test-handover", &err), 0);
	assert_int_equal(pthread_create(&t, NULL, release_when_tried, &rl), 0);
	assert_int_equal(db_lock_wait(b, "apexops.test-handover", 60L * 1000,
				      NULL, &err),
			 0);
	pthread_join(t, NULL);
	assert_int_equal(
		db_lock_holder(a, "apexops.test-handover", &h, &held, &err), 0);
	assert_true(held);
	assert_int_equal(h.pid, db_backend_pid(b));
	db_close(a);
	db_close(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names_keep_their_keys),
		cmocka_unit_test(test_try_names_the_holder),
		cmocka_unit_test(test_wait_times_out_naming_the_holder),
		cmocka_unit_test(test_wait_stops_on_request),
		cmocka_unit_test(test_wait_takes_the_lock_when_released),
	};
	return cmocka_run_group_tests(tests, itest_setup, itest_teardown);
}
