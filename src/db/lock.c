/* Named session advisory locks; see lock.h. */
#include "db/lock.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/progress.h"
#include "core/stop.h"
#include "db/db.h"

int
db_lock_holder(struct db *db, const char *name, struct db_lock_holder *h,
	       bool *held, struct ops_err *err)
{
	char key[32];
	const char *params[1] = { key };
	struct db_res *res = NULL;
	int r;

	memset(h, 0, sizeof(*h));
	*held = false;
	snprintf(key, sizeof(key), "%" PRId64, db_lock_key(name));
	/* a bigint key is classid (high 32 bits) and objid, objsubid 1 */
	r = db_query(db,
		     "SELECT a.pid, coalesce(a.application_name, ''),"
		     " coalesce(host(a.client_addr), 'local socket'),"
		     " to_char(a.backend_start AT TIME ZONE 'UTC',"
		     " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
		     " FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
		     " WHERE l.locktype = 'advisory' AND l.granted"
		     " AND l.objsubid = 1 AND ((l.classid::bigint << 32)"
		     " | l.objid::bigint) = $1::bigint LIMIT 1",
		     1, params, &res, err);
	if (r != 0)
		return r;
	if (db_res_rows(res) > 0) {
		*held = true;
		h->pid = (int)db_res_ll(res, 0, 0);
		snprintf(h->appname, sizeof(h->appname), "%s",
			 db_res_get(res, 0, 1));
		snprintf(h->client, sizeof(h->client), "%s",
			 db_res_get(res, 0, 2));
		snprintf(h->since, sizeof(h->since), "%s",
			 db_res_get(res, 0, 3) ? db_res_get(res, 0, 3) : "");
	}
	db_res_free(res);
	return 0;
}

/* OPS_E_CONFLICT naming the holder (looked up now). */
static int
conflict(struct db *db, const char *name, const char *how, struct ops_err *err)
{
	struct ops_err e2 = OPS_ERR_INIT;
	struct db_lock_holder h;
	bool held = false;

	if (db_lock_holder(db, name, &h, &held, &e2) == 0 && held)
		return ops_fail(err, OPS_E_CONFLICT, true,
				"lock '%s' %s held by backend pid %d "
				"(application_name '%s', client %s, connected "
				"since %s)",
				name, how, h.pid, h.appname, h.client, h.since);
	return ops_fail(err, OPS_E_CONFLICT, true,
			"lock '%s' %s held by another session", name, how);
}

int
db_lock_try(struct db *db, const char *name, struct ops_err *err)
{
	bool got = false;
	int r;

	r = db_try_advisory_lock(db, db_lock_key(name), &got, err);
	if (r != 0)
		return r;
	return got ? 0 : conflict(db, name, "is", err);
}

int
db_lock_wait(struct db *db, const char *name, long timeout_ms,
	     const volatile sig_atomic_t *stop, struct ops_err *err)
{
	double start = clock_now(), last_log = start;
	long pause = 50;
	bool got = false;
	int r;

	for (;;) {
		double waited;

		r = db_try_advisory_lock(db, db_lock_key(name), &got, err);
		if (r != 0 || got)
			return r;
		waited = clock_now() - start;
		if (waited * 1000 >= (double)timeout_ms)
			return conflict(db, name, "is still", err);
		if (clock_now() - last_log >= 5.0) {
			struct ops_err e2 = OPS_ERR_INIT;
			struct db_lock_holder h;
			bool held = false;

			last_log = clock_now();
			if (db_lock_holder(db, name, &h, &held, &e2) == 0 &&
			    held)
				log_info("waiting for a lock lock=%s "
					 "waited_s=%.0f holder_pid=%d "
					 "holder_app=%s holder_client=%s",
					 name, waited, h.pid, log_q(h.appname),
					 log_q(h.client));
		}
		if (ops_sleep_ms(pause, stop) != 0)
			return ops_fail(err, OPS_E_STOPPED, false,
					"stopped while waiting for lock '%s'",
					name);
		pause = pause * 2 > 500 ? 500 : pause * 2;
	}
}

int
db_lock_release(struct db *db, const char *name, struct ops_err *err)
{
	return db_advisory_unlock(db, db_lock_key(name), err);
}
