#include "db/db.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xalloc.h"

struct db {
	PGconn *conn;
	PGcancel *cancel;
	bool in_tx;
	bool took_locks; /* a session advisory lock was taken */
	char version[32];
};

struct db_res {
	PGresult *res;
};

bool
db_sqlstate_transient(const char *s)
{
	if (s == NULL || s[0] == '\0')
		return false;
	return strncmp(s, "08", 2) == 0 || strcmp(s, "40001") == 0 ||
	       strcmp(s, "40P01") == 0 || strcmp(s, "57P01") == 0 ||
	       strcmp(s, "57P02") == 0 || strcmp(s, "57P03") == 0 ||
	       strcmp(s, "55P03") == 0 || strcmp(s, "53300") == 0;
}

/* Copy the libpq error into err; trims the trailing newline. */
static int
db_fail(struct ops_err *err, PGconn *conn, const PGresult *res)
{
	const char *msg = NULL, *state = NULL, *detail = NULL, *hint = NULL;
	char text[sizeof(err->msg)];
	size_t n;
	bool lost;

	if (res != NULL) {
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	}
	if (msg == NULL)
		msg = conn ? PQerrorMessage(conn) : "unknown database error";
	snprintf(text, sizeof(text), "%s%s%s%s%s", msg, detail ? " (" : "",
		 detail ? detail : "", detail ? ")" : "", hint ? "" : "");
	(void)hint;
	n = strlen(text);
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
		text[--n] = '\0';
	lost = conn != NULL && PQstatus(conn) == CONNECTION_BAD;
	if (lost && state == NULL)
		state = "08006";
	ops_fail(err, lost ? OPS_E_CONNECT : OPS_E_DB,
		 lost || db_sqlstate_transient(state), "%s", text);
	if (err != NULL) {
		err->code = lost ? OPS_E_CONNECT : OPS_E_DB;
		snprintf(err->sqlstate, sizeof(err->sqlstate), "%s",
			 state ? state : "");
	}
	return err ? err->code : OPS_E_DB;
}

static void
notice_to_log(void *arg, const char *message)
{
	char m[512];
	size_t n;

	(void)arg;
	snprintf(m, sizeof(m), "%s", message);
	n = strlen(m);
	while (n > 0 && m[n - 1] == '\n')
		m[--n] = '\0';
	log_debug("server notice text=%s", log_q(m));
}

int
db_check_url(const char *url, struct ops_err *err)
{
	char *msg = NULL;
	PQconninfoOption *opts = PQconninfoParse(url, &msg);

	if (opts == NULL) {
		char text[300];
		size_t n;

		snprintf(text, sizeof(text), "%s", msg ? msg : "out of memory");
		n = strlen(text);
		while (n > 0 && text[n - 1] == '\n')
			text[--n] = '\0';
		PQfreemem(msg);
		/* libpq's parse messages name keywords, never values */
		return ops_fail(err, OPS_E_CONFIG, false,
				"DATABASE_URL: invalid connection string: %s",
				text);
	}
	PQconninfoFree(opts);
	return 0;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int
db_session_setup(struct db *db, const struct db_opts *o, struct ops_err *err)
{
	char st[32], lt[32];
	const char *params[2] = { st, lt };

	snprintf(st, sizeof(st), "%ld", o->statement_timeout_ms);
	snprintf(lt, sizeof(lt), "%ld", o->lock_timeout_ms);
	return db_exec(db,
		       "SELECT set_config('statement_timeout', $1, false),"
		       " set_config('lock_timeout', $2, false)",
		       2, params, NULL, err);
}

int
db_connect(const struct db_opts *o, struct db **out, struct ops_err *err)
{
	const char *keys[6], *vals[6];
	char timeout[24];
	long backoff = 250;
	int k = 0, r;
	PGconn *conn = NULL;

	*out = NULL;
	r = db_check_url(o->url, err);
	if (r != 0)
		return r;
	snprintf(timeout, sizeof(timeout), "%ld",
		 o->connect_timeout_s > 0 ? o->connect_timeout_s : 5);
	/* Keywords before dbname are overridden by the URL, those after
	 * override it (libpq expand_dbname). */
	keys[k] = "connect_timeout", vals[k++] = timeout;
	if (o->ssl)
		keys[k] = "sslmode", vals[k++] = "require";
	keys[k] = "dbname", vals[k++] = o->url;
	keys[k] = "application_name",
	vals[k++] = o->appname ? o->appname : "apexops";
	keys[k] = NULL, vals[k] = NULL;

	for (long attempt = 0;; attempt++) {
		conn = PQconnectdbParams(keys, vals, 1);
		if (conn != NULL && PQstatus(conn) == CONNECTION_OK)
			break;
		if (attempt >= o->retries) {
			char text[400];
			size_t n;

			snprintf(text, sizeof(text), "%s",
				 conn ? PQerrorMessage(conn) : "out of memory");
			n = strlen(text);
			while (n > 0 &&
			       (text[n - 1] == '\n' || text[n - 1] == ' '))
				text[--n] = '\0';
			for (char *p = text; *p; p++)
				if (*p == '\n' || *p == '\t')
					*p = ' ';
			log_scrub(text);
			PQfinish(conn);
			return ops_fail(err, OPS_E_CONNECT, true,
					"cannot connect to the database after "
					"%ld attempt(s): %s",
					attempt + 1, text);
		}
		log_warn("database connection failed, retrying attempt=%ld "
			 "wait_ms=%ld",
			 attempt + 1, backoff);
		PQfinish(conn);
		/* full jitter keeps many replicas from retrying in step */
		sleep_ms(backoff / 2 + (long)(random() % (backoff / 2 + 1)));
		backoff = backoff * 2 > 4000 ? 4000 : backoff * 2;
	}
	*out = xcalloc(1, sizeof(**out));
	(*out)->conn = conn;
	(*out)->cancel = PQgetCancel(conn);
	PQsetNoticeProcessor(conn, notice_to_log, NULL);
	{
		int v = PQserverVersion(conn);

		snprintf((*out)->version, sizeof((*out)->version), "%d.%d",
			 v / 10000, v % 10000);
	}
	r = db_session_setup(*out, o, err);
	if (r != 0) {
		db_close(*out);
		*out = NULL;
	}
	return r;
}

/*
 * The server frees a session's advisory locks only when its backend notices
 * the disconnect, some time after PQfinish() has returned. A command run
 * right after this one (a purge after its preview, a second bootstrap) could
 * then find the lock still held and report a conflict that is not there.
 * Releasing the locks with a round trip makes "closed" mean "unlocked".
 * Best effort: an open transaction is rolled back first (PQfinish would abort
 * it anyway); a busy or broken connection is left to the server.
 */
static void
release_session_locks(PGconn *conn)
{
	PGTransactionStatusType ts;

	if (PQstatus(conn) != CONNECTION_OK)
		return;
	ts = PQtransactionStatus(conn);
	if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
		PQclear(PQexec(conn, "ROLLBACK"));
		ts = PQtransactionStatus(conn);
	}
	if (ts == PQTRANS_IDLE)
		PQclear(PQexec(conn, "SELECT pg_advisory_unlock_all()"));
}

void
db_close(struct db *db)
{
	if (db == NULL)
		return;
	if (db->cancel != NULL)
		PQfreeCancel(db->cancel);
	if (db->took_locks)
		release_session_locks(db->conn);
	PQfinish(db->conn);
	free(db);
}

static PGresult *
run(struct db *db, const char *sql, int nparams, const char *const *params)
{
	return PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL,
			    0);
}

int
db_exec(struct db *db, const char *sql, int nparams, const char *const *params,
	long long *affected, struct ops_err *err)
{
	PGresult *res = run(db, sql, nparams, params);
	ExecStatusType st = PQresultStatus(res);
	int r = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		r = db_fail(err, db->conn, res);
	else if (affected != NULL)
		*affected = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return r;
}

int
db_query(struct db *db, const char *sql, int nparams, const char *const *params,
	 struct db_res **out, struct ops_err *err)
{
	PGresult *res = run(db, sql, nparams, params);

	*out = NULL;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		int r = db_fail(err, db->conn, res);

		PQclear(res);
		return r;
	}
	*out = xmalloc(sizeof(**out));
	(*out)->res = res;
	return 0;
}

int
db_query_value(struct db *db, const char *sql, int nparams,
	       const char *const *params, char **out, struct ops_err *err)
{
	struct db_res *res;
	int r;

	*out = NULL;
	r = db_query(db, sql, nparams, params, &res, err);
	if (r != 0)
		return r;
	if (db_res_rows(res) > 0 && db_res_get(res, 0, 0) != NULL)
		*out = xstrdup(db_res_get(res, 0, 0));
	db_res_free(res);
	return 0;
}

int
db_exec_script(struct db *db, const char *sql, struct ops_err *err)
{
	PGresult *res;
	int r = 0;

	if (PQsendQuery(db->conn, sql) != 1)
		return db_fail(err, db->conn, NULL);
	while ((res = PQgetResult(db->conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);

		if (r == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
		    st != PGRES_EMPTY_QUERY)
			r = db_fail(err, db->conn, res);
		PQclear(res);
	}
	return r;
}

int
db_res_rows(const struct db_res *res)
{
	return res ? PQntuples(res->res) : 0;
}

int
db_res_cols(const struct db_res *res)
{
	return res ? PQnfields(res->res) : 0;
}

const char *
db_res_get(const struct db_res *res, int row, int col)
{
	if (res == NULL || row >= PQntuples(res->res) ||
	    col >= PQnfields(res->res) || PQgetisnull(res->res, row, col))
		return NULL;
	return PQgetvalue(res->res, row, col);
}

long long
db_res_ll(const struct db_res *res, int row, int col)
{
	const char *v = db_res_get(res, row, col);

	return v ? strtoll(v, NULL, 10) : 0;
}

double
db_res_double(const struct db_res *res, int row, int col)
{
	const char *v = db_res_get(res, row, col);

	return v ? strtod(v, NULL) : 0.0;
}

const char *
db_res_colname(const struct db_res *res, int col)
{
	return PQfname(res->res, col);
}

void
db_res_free(struct db_res *res)
{
	if (res == NULL)
		return;
	PQclear(res->res);
	free(res);
}

int
db_begin(struct db *db, struct ops_err *err)
{
	int r = db_exec(db, "BEGIN", 0, NULL, NULL, err);

	if (r == 0)
		db->in_tx = true;
	return r;
}

int
db_commit(struct db *db, struct ops_err *err)
{
	int r = db_exec(db, "COMMIT", 0, NULL, NULL, err);

	db->in_tx = false;
	return r;
}

void
db_rollback(struct db *db)
{
	if (db == NULL)
		return;
	if (db->in_tx || PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
		PGresult *res = PQexec(db->conn, "ROLLBACK");

		PQclear(res);
	}
	db->in_tx = false;
}

bool
db_in_tx(const struct db *db)
{
	return db->in_tx;
}

int64_t
db_lock_key(const char *name)
{
	uint64_t h = 1469598103934665603ULL;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return (int64_t)h;
}

static int
lock_call(struct db *db, const char *sql, int64_t key, bool *got,
	  struct ops_err *err)
{
	char k[24];
	const char *params[1] = { k };
	char *v = NULL;
	int r;

	snprintf(k, sizeof(k), "%" PRId64, key);
	r = db_query_value(db, sql, 1, params, &v, err);
	if (r == 0 && got != NULL)
		*got = v != NULL && strcmp(v, "t") == 0;
	free(v);
	return r;
}

int
db_advisory_lock(struct db *db, int64_t key, struct ops_err *err)
{
	db->took_locks = true; /* db_close releases it */
	return lock_call(db, "SELECT pg_advisory_lock($1::bigint)", key, NULL,
			 err);
}

int
db_try_advisory_lock(struct db *db, int64_t key, bool *got, struct ops_err *err)
{
	db->took_locks = true; /* db_close releases it */
	return lock_call(db, "SELECT pg_try_advisory_lock($1::bigint)", key,
			 got, err);
}

int
db_advisory_unlock(struct db *db, int64_t key, struct ops_err *err)
{
	return lock_call(db, "SELECT pg_advisory_unlock($1::bigint)", key, NULL,
			 err);
}

int
db_copy_begin(struct db *db, const char *sql, struct ops_err *err)
{
	PGresult *res = PQexec(db->conn, sql);
	int r = 0;

	if (PQresultStatus(res) != PGRES_COPY_IN)
		r = db_fail(err, db->conn, res);
	PQclear(res);
	return r;
}

int
db_copy_put(struct db *db, const char *data, size_t len, struct ops_err *err)
{
	while (len > 0) {
		int chunk = len > (1 << 30) ? (1 << 30) : (int)len;

		if (PQputCopyData(db->conn, data, chunk) != 1)
			return db_fail(err, db->conn, NULL);
		data += chunk;
		len -= (size_t)chunk;
	}
	return 0;
}

int
db_copy_end(struct db *db, const char *abort_msg, long long *rows,
	    struct ops_err *err)
{
	PGresult *res;
	int r = 0;

	if (PQputCopyEnd(db->conn, abort_msg) != 1)
		return db_fail(err, db->conn, NULL);
	while ((res = PQgetResult(db->conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			if (r == 0)
				r = db_fail(err, db->conn, res);
		} else if (rows != NULL) {
			*rows = strtoll(PQcmdTuples(res), NULL, 10);
		}
		PQclear(res);
	}
	return r;
}

int
db_copy_out(struct db *db, const char *sql,
	    int (*cb)(void *arg, const char *row, size_t len), void *arg,
	    struct ops_err *err)
{
	PGresult *res = PQexec(db->conn, sql);
	char *row;
	int n, r = 0, stop = 0;

	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		r = db_fail(err, db->conn, res);
		PQclear(res);
		return r;
	}
	PQclear(res);
	while ((n = PQgetCopyData(db->conn, &row, 0)) > 0) {
		if (!stop && cb(arg, row, (size_t)n) != 0)
			stop = 1; /* drain the rest: libpq has no early stop */
		PQfreemem(row);
	}
	if (n == -2)
		r = db_fail(err, db->conn, NULL);
	while ((res = PQgetResult(db->conn)) != NULL) {
		if (r == 0 && PQresultStatus(res) != PGRES_COMMAND_OK)
			r = db_fail(err, db->conn, res);
		PQclear(res);
	}
	if (r == 0 && stop)
		r = ops_fail(err, OPS_E_STOPPED, false, "copy stopped");
	return r;
}

void
db_cancel(struct db *db)
{
	char buf[1];

	if (db != NULL && db->cancel != NULL)
		(void)PQcancel(db->cancel, buf, sizeof(buf));
}

const char *
db_server_version(struct db *db)
{
	return db->version;
}

int
db_server_version_num(struct db *db)
{
	return PQserverVersion(db->conn);
}

int
db_backend_pid(struct db *db)
{
	return PQbackendPID(db->conn);
}
