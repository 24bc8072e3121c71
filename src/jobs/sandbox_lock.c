/* The sandbox commands' advisory locks: one behaviour for both. */
#include "jobs/sandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"

/* "pid 123, apexops/sandbox revenue, since 2026-12-01 08:40:00+00" of
 * the session holding key, or "" when it cannot be seen (it just ended,
 * or the role may not see other sessions). */
static void
describe_holder(struct db *db, int64_t key, char *out, size_t len)
{
	/* a bigint advisory key is (classid, objid) = (high, low) 32 bits,
	 * objsubid 1 */
	static const char sql[] =
		"SELECT 'pid ' || l.pid"
		" || coalesce(', ' || nullif(a.application_name, ''), '')"
		" || coalesce(', since ' || date_trunc('second',"
		"  a.backend_start), '')"
		" FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
		" WHERE l.locktype = 'advisory' AND l.granted"
		" AND l.objsubid = 1 AND l.database = (SELECT oid FROM"
		"  pg_database WHERE datname = current_database())"
		" AND ((l.classid::bigint << 32) | l.objid::bigint) = "
		"$1::bigint"
		" AND l.pid <> pg_backend_pid() LIMIT 1";
	struct ops_err ignored = OPS_ERR_INIT;
	char k[24];
	const char *p[1] = { k };
	char *v = NULL;

	out[0] = '\0';
	snprintf(k, sizeof(k), "%lld", (long long)key);
	if (db_query_value(db, sql, 1, p, &v, &ignored) == 0 && v != NULL)
		snprintf(out, len, "%s", v);
	free(v);
}

int
sandbox_lock_try(struct db *db, const char *name, const char *what,
		 struct ops_err *err)
{
	int64_t key = db_lock_key(name);
	char holder[256];
	bool got = false;
	int r;

	r = db_try_advisory_lock(db, key, &got, err);
	if (r != 0 || got)
		return r;
	describe_holder(db, key, holder, sizeof(holder));
	return ops_fail(err, OPS_E_CONFLICT, true,
			"%s holds the lock '%s'%s%s%s; run again when it has "
			"finished",
			what, name, holder[0] ? " (" : "", holder,
			holder[0] ? ")" : "");
}

void
sandbox_lock_release(struct db *db, const char *name)
{
	struct ops_err ignored = OPS_ERR_INIT;

	(void)db_advisory_unlock(db, db_lock_key(name), &ignored);
}
