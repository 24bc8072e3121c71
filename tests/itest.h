/*
 * Integration-test helpers: each test gets a fresh database cloned from the
 * migrated template that tests/run.sh prepares (OPS_TEST_ADMIN_URL,
 * OPS_TEST_TEMPLATE). Header-only so each test program stays one file.
 * Include it after <cmocka.h>: the query helpers fail the test with
 * fail_msg.
 */
#ifndef OPS_TESTS_ITEST_H
#define OPS_TESTS_ITEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/xalloc.h"
#include "db/db.h"

static inline struct db *
itest_connect(const char *url)
{
	struct db_opts o = { 0 };
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = NULL;

	o.url = url;
	o.appname = "apexops/test";
	o.connect_timeout_s = 5;
	if (db_connect(&o, &db, &err) != 0) {
		fprintf(stderr, "itest: connect: %s\n", err.msg);
		abort();
	}
	return db;
}

/* A new database "it_<name>_<pid>" from the template (empty when
 * from_template is 0); returns its URL, which the caller frees. */
static inline char *
itest_new_db(const char *name, int from_template)
{
	const char *admin = getenv("OPS_TEST_ADMIN_URL");
	const char *tpl = getenv("OPS_TEST_TEMPLATE");
	struct ops_err err = OPS_ERR_INIT;
	char sql[512], dbname[128];
	struct db *db;
	char *url;

	if (admin == NULL) {
		fprintf(stderr, "itest: OPS_TEST_ADMIN_URL unset; run "
				"through tests/run.sh\n");
		exit(1);
	}
	snprintf(dbname, sizeof(dbname), "it_%s_%d", name, (int)getpid());
	db = itest_connect(admin);
	/* test-only DDL: the name is ours, not data */
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", dbname);
	db_exec(db, sql, 0, NULL, NULL, &err);
	if (from_template)
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE %s",
			 dbname, tpl ? tpl : "ops_tpl");
	else
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s", dbname);
	if (db_exec(db, sql, 0, NULL, NULL, &err) != 0) {
		fprintf(stderr, "itest: %s: %s\n", sql, err.msg);
		abort();
	}
	db_close(db);
	url = xstrdup(admin);
	{
		char *slash = strrchr(url, '/');
		char *res;

		*slash = '\0';
		res = xasprintf("%s/%s", url, dbname);
		free(url);
		url = res;
	}
	return url;
}

/* Run sql (no parameters: test fixtures only); fail the test on error. */
static inline void
itest_exec(struct db *db, const char *sql)
{
	struct ops_err err = OPS_ERR_INIT;

	if (db_exec(db, sql, 0, NULL, NULL, &err) != 0)
		fail_msg("%s: %s", sql, err.msg);
}

/* The first column of the first row (the caller frees it; NULL for SQL
 * NULL); fail the test on error. */
static inline char *
itest_value(struct db *db, const char *sql)
{
	struct ops_err err = OPS_ERR_INIT;
	char *v = NULL;

	if (db_query_value(db, sql, 0, NULL, &v, &err) != 0)
		fail_msg("%s: %s", sql, err.msg);
	return v;
}

/* itest_value as a number; -1 for SQL NULL. */
static inline long long
itest_value_ll(struct db *db, const char *sql)
{
	char *v = itest_value(db, sql);
	long long n = v ? strtoll(v, NULL, 10) : -1;

	free(v);
	return n;
}

/*
 * The group fixture most test files share: a file that defines ITEST_DB
 * (the database's name, a string) before including this header gets
 * `url`, a new database's URL from itest_new_db(ITEST_DB,
 * ITEST_DB_TEMPLATE) (the migrated template unless ITEST_DB_TEMPLATE is
 * 0), and itest_setup / itest_teardown to pass to
 * cmocka_run_group_tests(). One test program is one thread here.
 */
#ifdef ITEST_DB
#ifndef ITEST_DB_TEMPLATE
#define ITEST_DB_TEMPLATE 1
#endif
static char *url;

static int
itest_setup(void **state)
{
	(void)state;
	url = itest_new_db(ITEST_DB, ITEST_DB_TEMPLATE);
	return 0;
}

static int
itest_teardown(void **state)
{
	(void)state;
	free(url);
	url = NULL;
	return 0;
}
#endif

#endif
