/*
 * Named session advisory locks: the one way apexops keeps two runs of a
 * job apart. A lock is named by a string ("apexops.migrate",
 * "apexops.purge", "apexops/sandbox-bootstrap", "apexops/sandbox-revenue")
 * whose key is db_lock_key(name), the FNV-1a 64 hash the code has always
 * used, so older and newer binaries exclude each other.
 *
 * A lock belongs to the session (not to a transaction): it is held until
 * db_lock_release() or db_close(), which releases every lock of the
 * session before it returns; a lost connection loses it.
 *
 * Each caller picks one behaviour:
 *   - db_lock_try(): one attempt; a held lock is OPS_E_CONFLICT with a
 *     message naming the holder (backend pid, application_name, client
 *     address, connected since). For commands an operator runs by hand
 *     (purge, sandbox bootstrap, sandbox revenue): they should be told
 *     at once, not wait.
 *   - db_lock_wait(): poll until taken, a timeout (OPS_E_CONFLICT naming
 *     the holder) or a stop request (OPS_E_STOPPED). Never a blocking
 *     pg_advisory_lock(), which no signal can interrupt. For work that
 *     should simply queue (migrate, a scheduled job).
 *
 * Not thread-safe beyond struct db's rule (one connection per thread).
 */
#ifndef OPS_DB_LOCK_H
#define OPS_DB_LOCK_H

#include <signal.h>
#include <stdbool.h>

#include "core/err.h"

struct db;

/* Who holds a lock, from pg_locks and pg_stat_activity. */
struct db_lock_holder {
	int pid;	  /* backend pid; 0 when not known */
	char appname[64]; /* application_name, "" when unset */
	char client[64];  /* client address, or "local socket" */
	char since[32];	  /* backend start, "YYYY-MM-DDTHH:MM:SSZ" UTC */
};

/*
 * Take lock name once. 0: taken. OPS_E_CONFLICT (transient): another
 * session holds it; err names the holder. Other codes: the query failed.
 * name must not be NULL.
 */
int db_lock_try(struct db *db, const char *name, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * Take lock name, polling (every 50 ms at first, then up to every 500 ms)
 * for at most timeout_ms (<= 0: one attempt). Logs who holds it every
 * 5 s while waiting. OPS_E_CONFLICT naming the holder on timeout;
 * OPS_E_STOPPED as soon as *stop is set (stop may be NULL: never).
 */
int db_lock_wait(struct db *db, const char *name, long timeout_ms,
		 const volatile sig_atomic_t *stop, struct ops_err *err)
	__attribute__((warn_unused_result));

/* Release lock name (held by this session). Not holding it is no error. */
int db_lock_release(struct db *db, const char *name, struct ops_err *err);

/*
 * Look up the holder of lock name: *held false when nobody holds it
 * (then *h is zeroed). h and held must not be NULL.
 */
int db_lock_holder(struct db *db, const char *name, struct db_lock_holder *h,
		   bool *held, struct ops_err *err);

#endif
