/*
 * Integration tests of the export encoder (jobs/privacy_export.h) with a
 * memory sink: JSONL with its manifest first and one parsable line per
 * record, counts that match, secrets omitted or masked, no other user's
 * rows; CSV sections with RFC 4180 quoting; a user of another tenant
 * refused with nothing written; a failing sink stops the export.
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
#include <jansson.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "itest.h"
#include "jobs/privacy_export.h"

#define T1 "11111111-1111-4111-8111-111111111111"
#define T2 "22222222-2222-4222-8222-222222222222"
#define UA "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
#define UB "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"

static char *url;

static int
setup(void **state)
{
	struct db *db;

	(void)state;
	url = itest_new_db("privacy_export", 1);
	db = itest_connect(url);
	itest_exec(db, "INSERT INTO publishers (id, company_name) VALUES"
		       " ('" T1 "', 'One'), ('" T2 "', 'Two')");
	itest_exec(db,
		   "INSERT INTO users (id, publisher_id, email,"
		   " password_hash, api_key) VALUES"
		   " ('" UA "', '" T1 "', 'alice@example.com',"
		   " '$2b$12$secrethashofalice', 'ak_live_alice_0123456789'),"
		   " ('" UB "', '" T1 "', 'bob@example.com', 'h', NULL)");
	itest_exec(db, "INSERT INTO usage_events (customer_id, event_name,"
		       " event_value, event_metadata) SELECT '" UA "',"
		       " 'impression', g, jsonb_build_object('note',"
		       " E'line\\nbreak, \"quoted\" \\\\ back')"
		       " FROM generate_series(1, 2500) g");
	itest_exec(db, "INSERT INTO usage_events (customer_id, event_name,"
		       " event_value) VALUES ('" UB "', 'bob-event', 1)");
	itest_exec(db, "INSERT INTO api_keys (key, user_id) VALUES"
		       " ('ak_key_of_alice_abcdefghijkl', '" UA "')");
	itest_exec(db,
		   "INSERT INTO invoices (invoice_number, customer_id,"
		   " due_date, amount_cents, total_amount_cents, line_items,"
		   " notes) VALUES ('INV-1', '" UA "', CURRENT_DATE, 100,"
		   " 119, '[]', 'Alice, \"Ltd\"')");
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

struct mem {
	struct buf b;
	int fail_after; /* fail the nth write; 0: never */
	int writes;
};

static int
mem_write(void *arg, const void *data, size_t len, struct ops_err *err)
{
	struct mem *m = arg;

	if (m->fail_after > 0 && ++m->writes >= m->fail_after)
		return ops_fail(err, OPS_E_IO, true, "sink: disk full");
	buf_addn(&m->b, data, len);
	return 0;
}

static void
subject(struct privacy_subject *s, const char *tenant, const char *user)
{
	memset(s, 0, sizeof(*s));
	s->request_id = 7;
	snprintf(s->tenant, sizeof(s->tenant), "%s", tenant);
	snprintf(s->user, sizeof(s->user), "%s", user);
}

static void
test_jsonl(void **state)
{
	struct db *db = itest_connect(url);
	struct mem m = { BUF_INIT, 0, 0 };
	struct privacy_sink sink = { mem_write, &m };
	struct ops_err err = OPS_ERR_INIT;
	struct privacy_subject s;
	char *counts = NULL, *line, *save = NULL;
	long long records = 0, usage = 0;
	json_t *man;

	(void)state;
	subject(&s, T1, UA);
	if (privacy_export_encode(db, &s, false, &sink, &counts, &err) != 0)
		fail_msg("export: %s", err.msg);
	assert_non_null(strstr(counts, "\"usage_events\":2500"));
	assert_non_null(strstr(counts, "\"users\":1"));
	/* secrets */
	assert_null(strstr(m.b.data, "secrethashofalice"));
	assert_null(strstr(m.b.data, "password_hash"));
	assert_null(strstr(m.b.data, "ak_live_alice_0123456789"));
	assert_null(strstr(m.b.data, "ak_key_of_alice_abcdefghijkl"));
	assert_non_null(strstr(m.b.data, "\"key\":\"ak_k****ijkl\""));
	/* nobody else */
	assert_null(strstr(m.b.data, "bob"));
	line = strtok_r(m.b.data, "\n", &save);
	man = json_loads(line, 0, NULL);
	assert_non_null(man);
	assert_int_equal(
		json_integer_value(json_object_get(
			json_object_get(man, "manifest"), "request_id")),
		7);
	assert_string_equal(json_string_value(json_object_get(
				    json_object_get(man, "manifest"), "user")),
			    UA);
	json_decref(man);
	while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
		json_t *rec = json_loads(line, 0, NULL);
		const char *table;

		if (rec == NULL)
			fail_msg("not JSON: %.80s", line);
		table = json_string_value(json_object_get(rec, "table"));
		assert_non_null(table);
		assert_true(json_is_object(json_object_get(rec, "record")));
		if (strcmp(table, "usage_events") == 0) {
			json_t *meta =
				json_object_get(json_object_get(rec, "record"),
						"event_metadata");

			usage++;
			/* escapes survive COPY untouched */
			assert_string_equal(json_string_value(json_object_get(
						    meta, "note")),
					    "line\nbreak, \"quoted\" \\ back");
		}
		records++;
		json_decref(rec);
	}
	assert_int_equal(usage, 2500);
	assert_int_equal(records, 2500 + 1 + 1 + 1);
	free(counts);
	buf_release(&m.b);
	db_close(db);
}

static void
test_csv(void **state)
{
	struct db *db = itest_connect(url);
	struct mem m = { BUF_INIT, 0, 0 };
	struct privacy_sink sink = { mem_write, &m };
	struct ops_err err = OPS_ERR_INIT;
	struct privacy_subject s;

	(void)state;
	subject(&s, T1, UA);
	if (privacy_export_encode(db, &s, true, &sink, NULL, &err) != 0)
		fail_msg("export: %s", err.msg);
	assert_true(strncmp(m.b.data, "section,manifest\r\nrequest_id,7\r\n",
			    32) == 0);
	assert_non_null(strstr(m.b.data, "rows.usage_events,2500\r\n"));
	assert_non_null(strstr(m.b.data, "\r\n\r\nsection,invoices\r\nid,"));
	/* RFC 4180: fields with commas and quotes are quoted, quotes
	 * doubled */
	assert_non_null(strstr(m.b.data, ",\"Alice, \"\"Ltd\"\"\","));
	assert_null(strstr(m.b.data, "secrethashofalice"));
	assert_null(strstr(m.b.data, "password_hash"));
	/* every line ends in CRLF, except inside quoted fields */
	assert_non_null(strstr(m.b.data, "section,users\r\n"));
	buf_release(&m.b);
	db_close(db);
}

static void
test_other_tenant_refused(void **state)
{
	struct db *db = itest_connect(url);
	struct mem m = { BUF_INIT, 0, 0 };
	struct privacy_sink sink = { mem_write, &m };
	struct ops_err err = OPS_ERR_INIT;
	struct privacy_subject s;
	char *counts = NULL;

	(void)state;
	subject(&s, T2, UA);
	assert_int_equal(
		privacy_export_encode(db, &s, false, &sink, &counts, &err),
		OPS_E_REFUSED);
	assert_non_null(strstr(err.msg, "is not a user of tenant " T2));
	assert_int_equal(m.b.len, 0);
	assert_null(counts);
	/* an unknown user reads the same */
	subject(&s, T1, "cccccccc-cccc-4ccc-8ccc-cccccccccccc");
	assert_int_equal(
		privacy_export_encode(db, &s, false, &sink, &counts, &err),
		OPS_E_REFUSED);
	assert_int_equal(m.b.len, 0);
	/* the connection is usable afterwards */
	assert_int_equal(itest_value_ll(db, "SELECT 1"), 1);
	db_close(db);
}

static void
test_sink_failure(void **state)
{
	struct db *db = itest_connect(url);
	struct mem m = { BUF_INIT, 1, 0 };
	struct privacy_sink sink = { mem_write, &m };
	struct ops_err err = OPS_ERR_INIT;
	struct privacy_subject s;

	(void)state;
	subject(&s, T1, UA);
	assert_int_equal(
		privacy_export_encode(db, &s, false, &sink, NULL, &err),
		OPS_E_IO);
	assert_non_null(strstr(err.msg, "disk full"));
	assert_int_equal(itest_value_ll(db, "SELECT 1"), 1);
	buf_release(&m.b);
	db_close(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_jsonl),
		cmocka_unit_test(test_csv),
		cmocka_unit_test(test_other_tenant_refused),
		cmocka_unit_test(test_sink_failure),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
