/*
 * Integration tests of the privacy data map (jobs/privacy_map.h) against
 * the migrated schema: every table that reaches users or publishers
 * through foreign keys is in the map (so a new table cannot be
 * forgotten), every fragment of the map is valid SQL on the real
 * columns, and secrets are never exported.
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
#include "core/xalloc.h"
#define ITEST_DB "privacy_map"
#include "itest.h"
#include "jobs/privacy_map.h"

/* Tables of schema public that reference users or publishers through a
 * chain of foreign keys and are missing from the map, comma-separated
 * ("" when none); the caller frees. */
static char *
missing_tables(struct db *db)
{
	static const char sql[] =
		"WITH RECURSIVE fk(child, parent) AS ("
		"  SELECT c.conrelid, c.confrelid FROM pg_constraint c"
		"   WHERE c.contype = 'f'),"
		" reach(rel) AS ("
		"  SELECT 'public.users'::regclass::oid"
		"  UNION SELECT 'public.publishers'::regclass::oid"
		"  UNION SELECT fk.child FROM fk JOIN reach ON fk.parent = "
		"reach.rel)"
		" SELECT COALESCE(string_agg(c.relname, ',' ORDER BY "
		"c.relname),"
		" '') FROM reach JOIN pg_class c ON c.oid = reach.rel"
		" WHERE c.relnamespace = 'public'::regnamespace"
		"   AND NOT c.relname = ANY(string_to_array($1, ','))";
	struct buf names = BUF_INIT;
	struct ops_err err = OPS_ERR_INIT;
	const char *params[1];
	char *v = NULL;

	for (int i = 0; i < privacy_map_count; i++)
		buf_addf(&names, "%s%s", i ? "," : "", privacy_map[i].name);
	params[0] = buf_str(&names);
	if (db_query_value(db, sql, 1, params, &v, &err) != 0)
		fail_msg("catalog: %s", err.msg);
	buf_release(&names);
	return v;
}

static void
test_map_covers_catalog(void **state)
{
	struct db *db = itest_connect(url);
	char *missing;

	(void)state;
	missing = missing_tables(db);
	if (missing[0] != '\0')
		fail_msg("tables with a foreign key to users or publishers "
			 "missing from the privacy data map: %s",
			 missing);
	free(missing);
	/* the check bites: a new table that references users, directly
	 * or through another table, is reported */
	itest_exec(db, "CREATE TABLE public.user_notes (id int PRIMARY KEY,"
		       " customer_id uuid REFERENCES public.users (id))");
	itest_exec(db, "CREATE TABLE public.note_tags (note int REFERENCES"
		       " public.user_notes (id))");
	missing = missing_tables(db);
	assert_string_equal(missing, "note_tags,user_notes");
	free(missing);
	itest_exec(db, "DROP TABLE public.note_tags, public.user_notes");
	db_close(db);
}

/* every predicate, SET list and column named by the map runs against
 * the real schema */
static void
test_map_fragments_are_valid(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;

	(void)state;
	itest_exec(db, "BEGIN");
	itest_exec(db, "SELECT set_config('apexops.privacy_user',"
		       " gen_random_uuid()::text, true),"
		       " set_config('apexops.privacy_tenant',"
		       " gen_random_uuid()::text, true)");
	for (int i = 0; i < privacy_map_count; i++) {
		const struct privacy_table *t = &privacy_map[i];
		char *sql;

		sql = xasprintf("SELECT count(*) FROM public.%s t WHERE %s",
				t->name, t->match);
		if (db_exec(db, sql, 0, NULL, NULL, &err) != 0)
			fail_msg("%s: match: %s", t->name, err.msg);
		free(sql);
		if (t->personal != NULL) {
			sql = xasprintf("SELECT count(*) FROM public.%s t "
					"WHERE %s AND (%s)",
					t->name, t->match, t->personal);
			if (db_exec(db, sql, 0, NULL, NULL, &err) != 0)
				fail_msg("%s: personal: %s", t->name, err.msg);
			free(sql);
		}
		if (t->action == PRIVACY_ANONYMISE) {
			assert_non_null(t->anonymise);
			sql = xasprintf("UPDATE public.%s t SET %s WHERE %s",
					t->name, t->anonymise, t->match);
			if (db_exec(db, sql, 0, NULL, NULL, &err) != 0)
				fail_msg("%s: anonymise: %s", t->name, err.msg);
			free(sql);
		}
		if (t->action == PRIVACY_DELETE)
			assert_string_equal(t->personal, "true");
		if (t->action == PRIVACY_KEEP)
			assert_null(t->personal);
		assert_non_null(t->reason);
		for (int k = 0; k < 2; k++) {
			const char *cols = k ? t->mask : t->omit;

			if (cols == NULL)
				continue;
			sql = xasprintf("SELECT %s FROM public.%s t LIMIT 0",
					cols, t->name);
			if (db_exec(db, sql, 0, NULL, NULL, &err) != 0)
				fail_msg("%s: columns %s: %s", t->name, cols,
					 err.msg);
			free(sql);
		}
	}
	db_rollback(db);
	db_close(db);
}

/* secrets: the password hash is omitted, API keys are masked */
static void
test_map_secrets(void **state)
{
	const struct privacy_table *users = privacy_map_find("users");
	const struct privacy_table *keys = privacy_map_find("api_keys");

	(void)state;
	assert_non_null(users);
	assert_non_null(keys);
	assert_non_null(strstr(users->omit, "password_hash"));
	assert_non_null(strstr(users->mask, "api_key"));
	assert_string_equal(keys->mask, "key");
	assert_null(privacy_map_find("no_such_table"));
	assert_string_equal(privacy_action_name(PRIVACY_ANONYMISE),
			    "anonymise");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_covers_catalog),
		cmocka_unit_test(test_map_fragments_are_valid),
		cmocka_unit_test(test_map_secrets),
	};

	return cmocka_run_group_tests(tests, itest_setup, itest_teardown);
}
