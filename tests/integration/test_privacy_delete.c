/*
 * Integration tests of erasure (jobs/privacy_delete.h): afterwards a scan
 * of every table of the data map finds none of the user's personal data
 * (the email, hashes, keys, Stripe ids, IP, free text), the amounts kept
 * for legal reasons are still there, another user's rows are untouched,
 * a second erasure changes nothing and says so, a preview beforehand
 * changes nothing and says exactly what the erasure then does, and a user
 * asked for through another tenant is refused with nothing changed.
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

#include "core/xalloc.h"
#include "itest.h"
#include "jobs/privacy_delete.h"
#include "jobs/privacy_map.h"

#define T1 "11111111-1111-4111-8111-111111111111"
#define T2 "22222222-2222-4222-8222-222222222222"
#define UA "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
#define UB "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb"

static char *url;

/* one user's rows in every user table of the map */
static void
seed_user(struct db *db, const char *id, const char *name)
{
	static const char *const tmpl[] = {
		"INSERT INTO users (id, publisher_id, email, password_hash,"
		" api_key, stripe_customer_id) VALUES ('%1$s', '" T1 "',"
		" '%2$s@example.com', '$2b$12$%2$shash', 'ak_%2$s_0123456789',"
		" 'cus_%2$s')",
		"INSERT INTO usage_events (customer_id, event_name, "
		"event_value)"
		" SELECT '%1$s', '%2$s-impression', g FROM generate_series(1,"
		" 50) g",
		"INSERT INTO usage_records (customer_id, metric_type, quantity)"
		" VALUES ('%1$s', '%2$s-metric', 3)",
		"INSERT INTO events (event_type, data, customer_id) VALUES"
		" ('email', '{\"to\": \"%2$s@example.com\"}', '%1$s')",
		"INSERT INTO usage_alerts (customer_id, alert_type, "
		"usage_amount,"
		" limit_amount) VALUES ('%1$s', '%2$s-80', 80, 100)",
		"INSERT INTO api_keys (key, user_id) VALUES ('key_%2$s_secret',"
		" '%1$s')",
		"INSERT INTO waterfall_configs (customer_id, "
		"adapter_priorities)"
		" VALUES ('%1$s', '[\"%2$s\"]')",
		"INSERT INTO subscriptions (id, customer_id, plan_type,"
		" plan_limit_impressions, stripe_customer_id,"
		" cancellation_reason, base_price_cents, included_impressions,"
		" billing_interval, next_billing_date, metadata) VALUES"
		" (md5('%2$s')::uuid, '%1$s', 'growth', 1000, 'cus_%2$s',"
		" '%2$s moved away', 4900, 1000, 'month', CURRENT_DATE,"
		" '{\"contact\": \"%2$s@example.com\"}')",
		"INSERT INTO invoices (invoice_number, customer_id,"
		" subscription_id, due_date, amount_cents, total_amount_cents,"
		" line_items, notes, pdf_url) VALUES ('INV-%2$s', '%1$s',"
		" md5('%2$s')::uuid, CURRENT_DATE, 4900, 5831, '[]',"
		" 'for %2$s', 'https://pdf/%2$s.pdf')",
		"INSERT INTO payment_failures (customer_id, subscription_id,"
		" amount_cents, failure_reason) VALUES ('%1$s',"
		" md5('%2$s')::uuid, 5831, 'card of %2$s declined')",
		"INSERT INTO billing_audit (event_type, actor, customer_id, "
		"data,"
		" ip_address, user_agent) VALUES ('charge', '%2$s@example.com',"
		" '%1$s', '{\"amount\": 5831, \"email\": "
		"\"%2$s@example.com\"}',"
		" '192.0.2.7', 'Mozilla %2$s')",
	};

	for (size_t i = 0; i < sizeof(tmpl) / sizeof(tmpl[0]); i++) {
		char *sql = xasprintf(tmpl[i], id, name);

		itest_exec(db, sql);
		free(sql);
	}
}

static int
setup(void **state)
{
	struct db *db;

	(void)state;
	url = itest_new_db("privacy_delete", 1);
	db = itest_connect(url);
	itest_exec(db, "INSERT INTO publishers (id, company_name) VALUES"
		       " ('" T1 "', 'One'), ('" T2 "', 'Two')");
	seed_user(db, UA, "alice");
	seed_user(db, UB, "bob");
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

static void
subject(struct privacy_subject *s, const char *tenant, const char *user)
{
	memset(s, 0, sizeof(*s));
	s->request_id = 1;
	snprintf(s->tenant, sizeof(s->tenant), "%s", tenant);
	snprintf(s->user, sizeof(s->user), "%s", user);
}

/* rows of every table of the map whose text holds needle */
static long long
scan(struct db *db, const char *needle)
{
	long long n = 0;

	for (int i = 0; i < privacy_map_count; i++) {
		char *sql = xasprintf("SELECT count(*) FROM public.%s t WHERE"
				      " t::text LIKE '%%%s%%'",
				      privacy_map[i].name, needle);

		n += itest_value_ll(db, sql);
		free(sql);
	}
	return n;
}

/* a digest of every row of a user in the map's user tables */
static char *
digest(struct db *db, const char *user)
{
	char *sql = xasprintf(
		"SELECT md5(string_agg(x, '|' ORDER BY x)) FROM ("
		" SELECT t::text x FROM users t WHERE id = '%1$s'"
		" UNION ALL SELECT t::text FROM usage_events t WHERE"
		" customer_id = '%1$s'"
		" UNION ALL SELECT t::text FROM invoices t WHERE customer_id ="
		" '%1$s'"
		" UNION ALL SELECT t::text FROM billing_audit t WHERE"
		" customer_id = '%1$s'"
		" UNION ALL SELECT t::text FROM api_keys t WHERE user_id ="
		" '%1$s'"
		" UNION ALL SELECT t::text FROM subscriptions t WHERE"
		" customer_id = '%1$s') s",
		user);
	char *v = itest_value(db, sql);

	free(sql);
	return v;
}

static void
test_erase(void **state)
{
	static const char *const personal[] = {
		"alice@example.com", "alicehash",	 "ak_alice_0123456789",
		"cus_alice",	     "key_alice_secret", "alice moved away",
		"for alice",	     "alice.pdf",	 "card of alice",
		"Mozilla alice",
	};
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct privacy_subject s;
	char *receipt = NULL, *preview = NULL, *before, *after, *alice;
	long long total = 0, ptotal = -1;

	(void)state;
	before = digest(db, UB);
	assert_true(scan(db, "alice@example.com") > 0); /* the scan sees */
	subject(&s, T1, UA);
	/* the preview, in a read-only transaction: it changes nothing */
	alice = digest(db, UA);
	assert_int_equal(db_begin(db, &err), 0);
	itest_exec(db, "SET TRANSACTION READ ONLY");
	if (privacy_erase_preview(db, &s, &preview, &ptotal, &err) != 0)
		fail_msg("preview: %s", err.msg);
	db_rollback(db);
	after = digest(db, UA);
	assert_string_equal(alice, after);
	free(alice);
	free(after);
	assert_int_equal(db_begin(db, &err), 0);
	if (privacy_erase(db, &s, &receipt, &total, &err) != 0)
		fail_msg("erase: %s", err.msg);
	assert_int_equal(db_commit(db, &err), 0);
	/* and the erasure did exactly what the preview said, table by
	 * table */
	assert_string_equal(preview, receipt);
	assert_int_equal(ptotal, total);
	free(preview);
	assert_non_null(strstr(receipt, "\"usage_events\":{\"action\":"
					"\"delete\",\"rows\":50}"));
	assert_non_null(strstr(receipt, "\"invoices\":{\"action\":"
					"\"anonymise\",\"rows\":1}"));
	assert_non_null(strstr(receipt, "\"nothing_left\":false"));
	assert_true(total > 50);
	free(receipt);

	for (size_t i = 0; i < sizeof(personal) / sizeof(personal[0]); i++)
		if (scan(db, personal[i]) != 0)
			fail_msg("'%s' is still somewhere", personal[i]);
	/* the map's own notion of personal data agrees */
	itest_exec(db, "BEGIN");
	itest_exec(db, "SELECT set_config('apexops.privacy_user', '" UA "',"
		       " true), set_config('apexops.privacy_tenant', '" T1
		       "', true)");
	for (int i = 0; i < privacy_map_count; i++) {
		const struct privacy_table *t = &privacy_map[i];
		char *sql;

		if (t->personal == NULL)
			continue;
		sql = xasprintf("SELECT count(*) FROM public.%s t WHERE %s"
				" AND (%s)",
				t->name, t->match, t->personal);
		if (itest_value_ll(db, sql) != 0)
			fail_msg("%s still holds personal data", t->name);
		free(sql);
	}
	itest_exec(db, "ROLLBACK");
	/* what the law keeps is kept */
	assert_int_equal(itest_value_ll(db, "SELECT total_amount_cents FROM"
					    " invoices WHERE invoice_number ="
					    " 'INV-alice'"),
			 5831);
	assert_int_equal(itest_value_ll(db, "SELECT (data->>'amount')::int"
					    " FROM billing_audit WHERE"
					    " customer_id = '" UA "'"),
			 5831);
	assert_int_equal(itest_value_ll(db, "SELECT count(*) FROM users WHERE"
					    " id = '" UA "' AND email LIKE"
					    " 'erased-%@erased.invalid'"),
			 1);
	/* bob is untouched */
	after = digest(db, UB);
	assert_string_equal(before, after);
	assert_true(scan(db, "bob@example.com") > 0);
	free(before);
	free(after);

	/* a second erasure is harmless and says there was nothing left */
	assert_int_equal(db_begin(db, &err), 0);
	if (privacy_erase(db, &s, &receipt, &total, &err) != 0)
		fail_msg("erase again: %s", err.msg);
	assert_int_equal(db_commit(db, &err), 0);
	assert_int_equal(total, 0);
	assert_non_null(strstr(receipt, "\"nothing_left\":true"));
	free(receipt);
	db_close(db);
}

static void
test_other_tenant_refused(void **state)
{
	struct db *db = itest_connect(url);
	struct ops_err err = OPS_ERR_INIT;
	struct privacy_subject s;
	char *receipt = NULL, *before, *after;

	(void)state;
	before = digest(db, UB);
	subject(&s, T2, UB);
	assert_int_equal(db_begin(db, &err), 0);
	assert_int_equal(privacy_erase(db, &s, &receipt, NULL, &err),
			 OPS_E_REFUSED);
	db_rollback(db);
	assert_null(receipt);
	/* the preview refuses alike */
	ops_err_clear(&err);
	assert_int_equal(db_begin(db, &err), 0);
	assert_int_equal(privacy_erase_preview(db, &s, &receipt, NULL, &err),
			 OPS_E_REFUSED);
	db_rollback(db);
	assert_null(receipt);
	assert_non_null(strstr(err.msg, "not a user of tenant " T2));
	after = digest(db, UB);
	assert_string_equal(before, after);
	free(before);
	free(after);
	db_close(db);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_other_tenant_refused),
		cmocka_unit_test(test_erase),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
