/* Direct handoff to idle workers; see queue_handoff.h. */
#include "jobs/queue_handoff.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "db/db.h"

#define STR_(x)	   #x
#define STR(x)	   STR_(x)
#define LOCK_CLASS STR(QUEUE_HANDOFF_LOCK_CLASS)

int
queue_idle_register(struct db *db, const char *owner, long lease_s,
		    struct queue_idle *out, struct ops_err *err)
{
	char lease[24];
	const char *p[2] = { owner, lease };
	struct db_res *res = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	snprintf(lease, sizeof(lease), "%ld", lease_s > 0 ? lease_s : 1);
	/* the lock before the row is visible: a row without its lock
	 * held is a dead worker's (queue_idle_reap) */
	r = db_query(db,
		     "WITH n AS (SELECT nextval('apexops.queue_idle_id_seq')"
		     "::int AS id),"
		     " l AS (SELECT n.id, pg_advisory_lock(" LOCK_CLASS
		     ", n.id) FROM n)"
		     " INSERT INTO apexops.queue_idle (id, owner, channel,"
		     " lease_s) SELECT l.id, $1, 'apexops_queue_w' || l.id,"
		     " $2::int FROM l RETURNING id, channel",
		     2, p, &res, err);
	if (r != 0)
		return ops_err_prefix(err, "registering for handoffs");
	if (db_res_rows(res) != 1) {
		db_res_free(res);
		return ops_fail(err, OPS_E_DB, false,
				"registering for handoffs: no row");
	}
	out->id = (int)db_res_ll(res, 0, 0);
	snprintf(out->channel, sizeof(out->channel), "%s",
		 db_res_get(res, 0, 1));
	db_res_free(res);
	r = db_listen(db, out->channel, err);
	if (r != 0) {
		out->id = 0;
		return ops_err_prefix(err, "registering for handoffs");
	}
	return 0;
}

int
queue_idle_set(struct db *db, int id, bool ready, const char *const *kinds,
	       int nkinds, bool *set, struct ops_err *err)
{
	struct buf kb = BUF_INIT;
	char ids[16];
	const char *p[3];
	long long n = 0;
	int r = buf_puts(&kb, "{");

	*set = false;
	for (int i = 0; r == 0 && i < nkinds; i++) /* kinds: [a-z0-9_.-] */
		r = buf_printf(&kb, "%s\"%s\"", i ? "," : "", kinds[i]);
	if (r == 0)
		r = buf_puts(&kb, "}");
	if (r != 0) /* an unbounded buf fails only if memory runs out */
		abort();
	snprintf(ids, sizeof(ids), "%d", id);
	p[0] = ids;
	p[1] = ready ? "t" : "f";
	p[2] = buf_str(&kb);
	r = db_exec(db,
		    "UPDATE apexops.queue_idle i SET ready = $2::boolean,"
		    " kinds = $3::text[], updated_at = now()"
		    " WHERE i.id = (SELECT x.id FROM apexops.queue_idle x"
		    "  WHERE x.id = $1::int FOR UPDATE SKIP LOCKED)"
		    " AND (SELECT set_config('synchronous_commit', 'off',"
		    " true)) = 'off'",
		    3, p, &n, err);
	buf_release(&kb);
	if (r != 0)
		return ops_err_prefix(err, "marking this worker %s",
				      ready ? "ready" : "busy");
	*set = n > 0;
	return 0;
}

int
queue_idle_leave(struct db *db, int id, long wait_ms, struct ops_err *err)
{
	char ids[16], ms[24];
	const char *p[2] = { ids, ms };
	int r;

	snprintf(ids, sizeof(ids), "%d", id);
	snprintf(ms, sizeof(ms), "%ld", wait_ms > 0 ? wait_ms : 1);
	/* lock_timeout is set (for this statement's transaction) before
	 * the delete waits on the row: the filter runs first */
	r = db_exec(db,
		    "DELETE FROM apexops.queue_idle WHERE id = $1::int"
		    " AND (SELECT set_config('lock_timeout', $2, true))"
		    " IS NOT NULL",
		    2, p, NULL, err);
	if (r != 0 && err != NULL && strcmp(err->sqlstate, "55P03") == 0) {
		ops_err_clear(err);
		return ops_fail(err, OPS_E_CONFLICT, true,
				"leaving the idle workers: an enqueuing "
				"transaction held this worker's row for "
				"over %ld ms",
				wait_ms);
	}
	if (r != 0)
		return ops_err_prefix(err, "leaving the idle workers");
	return 0;
}

int
queue_idle_reap(struct db *db, int own_id, int *n, struct ops_err *err)
{
	char ids[16];
	const char *p[1] = { ids };
	long long count = 0;
	int r;

	*n = 0;
	snprintf(ids, sizeof(ids), "%d", own_id);
	/* a live worker holds its row's lock: the shared try fails and
	 * takes nothing; a dead one's is free. The session's own lock does
	 * not stop it: its own row is left out. */
	r = db_exec(db,
		    "DELETE FROM apexops.queue_idle i WHERE i.id <> $1::int"
		    " AND pg_try_advisory_xact_lock_shared(" LOCK_CLASS
		    ", i.id)",
		    1, p, &count, err);
	if (r != 0)
		return ops_err_prefix(err, "deleting dead workers' rows");
	*n = (int)count;
	return 0;
}

int
queue_release_orphans(struct db *db, const char *owner, const long long *held,
		      int n, int *released, struct ops_err *err)
{
	struct buf hb = BUF_INIT;
	const char *p[2];
	long long count = 0;
	int r = buf_puts(&hb, "{");

	if (released != NULL)
		*released = 0;
	for (int i = 0; r == 0 && i < n; i++)
		r = buf_printf(&hb, "%s%lld", i ? "," : "", held[i]);
	if (r == 0)
		r = buf_puts(&hb, "}");
	if (r != 0)
		abort();
	p[0] = owner;
	p[1] = buf_str(&hb);
	r = db_exec(db,
		    "UPDATE apexops.queue_jobs q SET state = 'available',"
		    " attempt = q.attempt - 1, run_at = now(),"
		    " lease_owner = NULL, lease_expires_at = NULL,"
		    " updated_at = now()"
		    " WHERE q.state = 'running' AND q.lease_owner = $1"
		    " AND q.attempt = 1 AND q.started_at = q.created_at"
		    " AND q.id <> ALL ($2::bigint[])",
		    2, p, &count, err);
	buf_release(&hb);
	if (r != 0)
		return ops_err_prefix(err, "giving back jobs handed to this "
					   "worker");
	if (released != NULL)
		*released = (int)count;
	return 0;
}

static bool
why_not(char *why, size_t len, const char *msg)
{
	if (why != NULL && len > 0)
		snprintf(why, len, "%s", msg);
	return false;
}

bool
queue_handoff_parse(const char *text, struct queue_job *job, char *why,
		    size_t whylen)
{
	json_error_t je;
	json_t *o, *v;
	long long id, attempt, maxa;
	const char *kind, *payload;
	bool ok = false;

	memset(job, 0, sizeof(*job));
	if (text == NULL)
		return why_not(why, whylen, "no payload");
	o = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		return why_not(why, whylen, "not a JSON object");
	}
	v = json_object_get(o, "id");
	id = json_is_integer(v) ? json_integer_value(v) : 0;
	v = json_object_get(o, "attempt");
	attempt = json_is_integer(v) ? json_integer_value(v) : 0;
	v = json_object_get(o, "max_attempts");
	maxa = json_is_integer(v) ? json_integer_value(v) : 0;
	kind = json_string_value(json_object_get(o, "kind"));
	payload = json_string_value(json_object_get(o, "payload"));
	if (id <= 0)
		why_not(why, whylen, "no positive integer id");
	else if (attempt < 1 || attempt > 1000000 || maxa < 1 || maxa > 1000000)
		why_not(why, whylen, "attempt or max_attempts out of range");
	else if (!queue_kind_valid(kind))
		why_not(why, whylen, "no valid kind");
	else if (payload == NULL)
		why_not(why, whylen, "no payload string");
	else
		ok = true;
	if (ok) {
		job->id = id;
		snprintf(job->kind, sizeof(job->kind), "%s", kind);
		job->payload = xstrdup(payload);
		job->attempt = (int)attempt;
		job->max_attempts = (int)maxa;
	}
	json_decref(o);
	return ok;
}
