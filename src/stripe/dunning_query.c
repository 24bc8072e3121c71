/* Dunning cases for operators: list, show, the status section. */
#include "stripe/dunning.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "db/db.h"

/* One query whose single row and column is a JSON text: parsed into *out. */
static int
query_json(struct db *db, const char *sql, int n, const char *const *p,
	   json_t **out, struct ops_err *err)
{
	json_error_t je;
	char *text = NULL;
	int r;

	*out = NULL;
	r = db_query_value(db, sql, n, p, &text, err);
	if (r != 0)
		return r;
	if (text == NULL)
		return 0;
	*out = json_loads(text, 0, &je);
	free(text);
	if (*out == NULL)
		return ops_fail(err, OPS_E_DB, false,
				"dunning: the database answered bad JSON: %s",
				je.text);
	return 0;
}

#define CASE_JSON                                                            \
	"jsonb_build_object('invoice', c.invoice_id, 'status', c.status,"    \
	" 'attempts', c.attempts, 'next_attempt_at', c.next_attempt_at,"     \
	" 'first_failed_at', c.first_failed_at, 'amount_due', c.amount_due," \
	" 'currency', c.currency, 'customer_id', c.customer_id,"             \
	" 'stripe_customer_id', c.stripe_customer_id, 'subscription_id',"    \
	" c.subscription_id, 'stripe_subscription_id',"                      \
	" c.stripe_subscription_id, 'opened_by', c.opened_by,"               \
	" 'pending_attempt', c.pending_attempt, 'pending_key',"              \
	" c.pending_key, 'stripe_action', c.stripe_action,"                  \
	" 'last_decline_code', c.last_decline_code, 'last_error',"           \
	" c.last_error, 'stripe_attempt_count', c.stripe_attempt_count,"     \
	" 'stripe_next_payment_attempt', c.stripe_next_payment_attempt,"     \
	" 'created_at', c.created_at, 'updated_at', c.updated_at,"           \
	" 'closed_at', c.closed_at)"

int
dunning_list(struct db *db, const char *status, long limit, json_t **out,
	     struct ops_err *err)
{
	static const char sql[] =
		"SELECT COALESCE(jsonb_agg(j ORDER BY id DESC), '[]') FROM"
		" (SELECT c.id, " CASE_JSON " AS j FROM apexops.dunning_cases c"
		" WHERE $1 = '' OR c.status = $1 ORDER BY c.id DESC LIMIT"
		" $2::bigint) x";
	char lim[24];
	const char *p[2] = { status ? status : "", lim };

	snprintf(lim, sizeof(lim), "%ld", limit > 0 ? limit : 1000);
	return query_json(db, sql, 2, p, out, err);
}

int
dunning_show(struct db *db, const char *invoice, json_t **out,
	     struct ops_err *err)
{
	static const char sql[] =
		"SELECT " CASE_JSON " || jsonb_build_object('transitions',"
		" (SELECT COALESCE(jsonb_agg(jsonb_build_object('at', t.at,"
		" 'kind', t.kind, 'from', t.from_status, 'to', t.to_status,"
		" 'attempt', t.attempt, 'idempotency_key', t.idempotency_key,"
		" 'decline_code', t.decline_code, 'detail', t.detail, 'run_id',"
		" t.run_id) ORDER BY t.id), '[]') FROM"
		" apexops.dunning_transitions t WHERE t.case_id = c.id))"
		" FROM apexops.dunning_cases c WHERE c.invoice_id = $1";
	const char *p[1] = { invoice };
	int r = query_json(db, sql, 1, p, out, err);

	if (r == 0 && *out == NULL)
		return ops_fail(err, OPS_E_NOTFOUND, false,
				"no dunning case for invoice '%s' ('apexops "
				"dunning list' shows the cases)",
				invoice);
	return r;
}

int
dunning_status_report(struct db *db, struct buf *out, struct ops_err *err)
{
	static const char sql[] =
		"SELECT count(*) FILTER (WHERE status = 'open'),"
		" count(*) FILTER (WHERE status = 'open' AND pending_attempt IS"
		" NOT NULL), count(*) FILTER (WHERE stripe_action IS NOT NULL),"
		" (SELECT count(*) FROM apexops.dunning_transitions WHERE kind"
		" = 'suspended' AND at > now() - interval '7 days'),"
		" count(*) FILTER (WHERE status = 'suspended'),"
		" to_char(min(next_attempt_at) FILTER (WHERE status = 'open')"
		" AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
		" count(*) FILTER (WHERE status = 'open' AND next_attempt_at <"
		" now() + interval '1 day')"
		" FROM apexops.dunning_cases";
	static const char next_sql[] =
		"SELECT invoice_id, attempts + 1, to_char(next_attempt_at AT"
		" TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM"
		" apexops.dunning_cases WHERE status = 'open' ORDER BY"
		" next_attempt_at, id LIMIT 3";
	struct db_res *res = NULL;
	const char *next;
	int r;

	r = db_query(db, sql, 0, NULL, &res, err);
	if (r != 0)
		return r;
	next = db_res_get(res, 0, 5);
	buf_addf(out,
		 "  open cases   %lld (%lld due within a day, %lld with an "
		 "attempt's outcome unknown)\n"
		 "  next attempt %s\n"
		 "  suspended    %lld now, %lld in the last 7 days\n",
		 db_res_ll(res, 0, 0), db_res_ll(res, 0, 6),
		 db_res_ll(res, 0, 1), next ? next : "none",
		 db_res_ll(res, 0, 4), db_res_ll(res, 0, 3));
	if (db_res_ll(res, 0, 2) > 0)
		buf_addf(out,
			 "  stripe       %lld pause/resume still to send "
			 "(the next run retries)\n",
			 db_res_ll(res, 0, 2));
	db_res_free(res);
	res = NULL;
	r = db_query(db, next_sql, 0, NULL, &res, err);
	if (r != 0)
		return r;
	for (int i = 0; i < db_res_rows(res); i++)
		buf_addf(out, "    %-24s attempt %s at %s\n",
			 db_res_get(res, i, 0), db_res_get(res, i, 1),
			 db_res_get(res, i, 2));
	db_res_free(res);
	return 0;
}
