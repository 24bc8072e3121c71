#include "db/db.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/signals.h"
#include "core/stop.h"
#include "core/xalloc.h"

#define DB_MAX_PARAMS 8

struct db {
	PGconn *conn; /* NULL after a failed reconnect */
	PGcancel *cancel;
	int cancel_slot; /* in cancel_slots[], or -1 */
	bool in_tx;
	bool took_locks; /* a session advisory lock was taken */
	char version[32];
	/* what db_reconnect() needs to connect again the same way */
	char *keys[DB_MAX_PARAMS + 1], *vals[DB_MAX_PARAMS + 1];
	long connect_timeout_s, retries;
	long statement_timeout_ms, lock_timeout_ms;
	const volatile sig_atomic_t *stop;
	/* the statements db_query_prepared() prepared on this connection,
	 * by name (borrowed: callers pass string literals); forgotten when
	 * the connection is opened again */
	const char *prepared[DB_MAX_PREPARED];
	int nprepared;
};

/*
 * The cancel objects of every open connection, for db_cancel_all() in a
 * signal handler: fixed slots (no allocation in the handler), changed
 * only with SIGINT/SIGTERM blocked in the changing thread and under a
 * mutex between threads; a PGcancel is freed only after its slot is
 * cleared.
 */
#define DB_CANCEL_SLOTS 64

static PGcancel *volatile cancel_slots[DB_CANCEL_SLOTS];
static pthread_mutex_t cancel_mu = PTHREAD_MUTEX_INITIALIZER;

static void
cancel_lock(sigset_t *old)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGINT);
	sigaddset(&s, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &s, old);
	pthread_mutex_lock(&cancel_mu);
}

static void
cancel_unlock(const sigset_t *old)
{
	pthread_mutex_unlock(&cancel_mu);
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

void
db_cancel_all(void)
{
	for (int i = 0; i < DB_CANCEL_SLOTS; i++) {
		PGcancel *c = cancel_slots[i];
		char buf[256]; /* PQcancel writes its error here, not malloc */

		if (c != NULL)
			(void)PQcancel(c, buf, sizeof(buf));
	}
}

/* Keep the cancel object of an open connection (db_cancel(), and
 * db_cancel_all() on a second stop signal). */
static void
cancel_register(struct db *db)
{
	sigset_t old;

	db->cancel = PQgetCancel(db->conn);
	db->cancel_slot = -1;
	if (db->cancel == NULL)
		return;
	cancel_lock(&old);
	for (int i = 0; i < DB_CANCEL_SLOTS; i++) {
		if (cancel_slots[i] == NULL) {
			cancel_slots[i] = db->cancel;
			db->cancel_slot = i;
			break;
		}
	}
	cancel_unlock(&old);
	if (db->cancel_slot < 0)
		log_warn("more than %d connections: a second stop signal will "
			 "not cancel this one's statements",
			 DB_CANCEL_SLOTS);
	ops_signals_on_second_stop(db_cancel_all);
}

static void
cancel_unregister(struct db *db)
{
	sigset_t old;

	if (db->cancel == NULL)
		return;
	if (db->cancel_slot >= 0) {
		cancel_lock(&old);
		cancel_slots[db->cancel_slot] = NULL;
		cancel_unlock(&old);
	}
	PQfreeCancel(db->cancel);
	db->cancel = NULL;
	db->cancel_slot = -1;
}

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

bool
db_sqlstate_schema_behind(const char *s)
{
	static const char *const states[] = {
		"42P01", /* undefined_table */
		"3F000", /* invalid_schema_name */
		"42883", /* undefined_function */
		"42703", /* undefined_column */
	};

	if (s == NULL)
		return false;
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (strcmp(s, states[i]) == 0)
			return true;
	return false;
}

const char *
db_schema_hint_field(const struct ops_err *err)
{
	return db_sqlstate_schema_behind(err->sqlstate)
		       ? " hint=\"" DB_SCHEMA_BEHIND_HINT "\""
		       : "";
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
		msg = conn ? PQerrorMessage(conn)
			   : "not connected to the database (a reconnect "
			     "failed)";
	snprintf(text, sizeof(text), "%s%s%s%s%s", msg, detail ? " (" : "",
		 detail ? detail : "", detail ? ")" : "", hint ? "" : "");
	(void)hint;
	n = strlen(text);
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' '))
		text[--n] = '\0';
	lost = PQstatus(conn) == CONNECTION_BAD; /* also for NULL */
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

static bool
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

/* Is every '%' in s[0..n) followed by two hex digits, and not %00? */
static bool
percent_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%')
			continue;
		if (i + 2 >= n || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
			return false;
		if (s[i + 1] == '0' && s[i + 2] == '0')
			return false;
		i += 2;
	}
	return true;
}

/*
 * The checks libpq leaves to connect time, or whose messages would echo a
 * password: a URL's user:password part must be percent-encoded (libpq
 * splits at the first '@' and then reports the rest of the password as a
 * host name), and percent-encoding must be valid (libpq's message quotes
 * the token).
 */
static int
check_uri_text(const char *url, struct ops_err *err)
{
	const char *hier, *end, *at, *slash;
	size_t n;

	if (strncmp(url, "postgresql://", 13) == 0)
		hier = url + 13;
	else if (strncmp(url, "postgres://", 11) == 0)
		hier = url + 11;
	else
		return 0;
	end = hier + strcspn(hier, "?");
	n = (size_t)(end - hier);
	at = memchr(hier, '@', n);
	slash = memchr(hier, '/', n);
	if (at != NULL) {
		/* the first '/' before the first '@' or a second '@' */
		if ((slash != NULL && slash < at) ||
		    memchr(at + 1, '@', (size_t)(end - at - 1)) != NULL)
			return ops_fail(
				err, OPS_E_CONFIG, false,
				"DATABASE_URL: the user:password part of the "
				"URL is malformed: it holds '@' or '/' that "
				"must be percent-encoded (write '@' as %%40, "
				"'/' as %%2F, ':' in the user name as %%3A)");
		if (!percent_ok(hier, (size_t)(at - hier)))
			return ops_fail(
				err, OPS_E_CONFIG, false,
				"DATABASE_URL: invalid percent-encoding "
				"in the user:password part of the URL "
				"(a literal '%%' is written %%25)");
		if (!percent_ok(at + 1, strlen(at + 1)))
			return ops_fail(
				err, OPS_E_CONFIG, false,
				"DATABASE_URL: invalid percent-encoding "
				"after the host part of the URL (a "
				"literal '%%' is written %%25)");
		return 0;
	}
	if (!percent_ok(hier, strlen(hier)))
		return ops_fail(err, OPS_E_CONFIG, false,
				"DATABASE_URL: invalid percent-encoding in the "
				"URL (a literal '%%' is written %%25)");
	return 0;
}

/* Each of a comma-separated port list is empty or 1..65535. */
static bool
ports_ok(const char *ports)
{
	const char *p = ports;

	for (;;) {
		size_t len = strcspn(p, ",");
		long v = 0;

		if (len > 5)
			return false;
		for (size_t i = 0; i < len; i++) {
			if (p[i] < '0' || p[i] > '9')
				return false;
			v = v * 10 + (p[i] - '0');
		}
		if (len > 0 && (v < 1 || v > 65535))
			return false;
		if (p[len] == '\0')
			return true;
		p += len + 1;
	}
}

int
db_check_url(const char *url, struct ops_err *err)
{
	char *msg = NULL;
	PQconninfoOption *opts;
	int r;

	if (url == NULL || url[0] == '\0')
		return ops_fail(err, OPS_E_CONFIG, false,
				"DATABASE_URL: empty connection string");
	r = check_uri_text(url, err);
	if (r != 0)
		return r;
	opts = PQconninfoParse(url, &msg);
	if (opts == NULL) {
		char text[300];
		size_t n;

		snprintf(text, sizeof(text), "%s", msg ? msg : "out of memory");
		n = strlen(text);
		while (n > 0 && text[n - 1] == '\n')
			text[--n] = '\0';
		PQfreemem(msg);
		/*
		 * Pass on only the messages that name a keyword; others
		 * (missing "=" after "...") may quote part of a value.
		 */
		if (strncmp(text, "invalid connection option", 25) == 0 ||
		    strncmp(text, "invalid URI query parameter", 27) == 0 ||
		    strncmp(text, "unterminated quoted string", 26) == 0)
			return ops_fail(err, OPS_E_CONFIG, false,
					"DATABASE_URL: invalid connection "
					"string: %s",
					text);
		if (strncmp(text, "missing \"=\"", 11) == 0)
			return ops_fail(err, OPS_E_CONFIG, false,
					"DATABASE_URL: invalid connection "
					"string: a word without '=' (write "
					"key=value pairs; quote a value with "
					"spaces, as password='a b')");
		return ops_fail(err, OPS_E_CONFIG, false,
				"DATABASE_URL: invalid connection string "
				"(expected postgresql://user:password@host:"
				"port/dbname or key=value pairs)");
	}
	r = 0;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "port") != 0 || o->val == NULL)
			continue;
		/* the value is not shown: in a URL with a misplaced ':' it
		 * may be a password */
		if (!ports_ok(o->val))
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "DATABASE_URL: the port is not a number "
				     "from 1 to 65535");
	}
	PQconninfoFree(opts);
	return r;
}

/*
 * Every apexops session reads and writes values the same way, whatever the
 * role or database defaults say (ALTER ROLE ... SET DateStyle = 'SQL, DMY'
 * would otherwise change how every timestamp comes back). Set at session
 * level after connecting, so a reconnect applies them again.
 */
static int
db_session_setup(struct db *db, struct ops_err *err)
{
	char st[32], lt[32];
	const char *params[2] = { st, lt };

	snprintf(st, sizeof(st), "%ld", db->statement_timeout_ms);
	snprintf(lt, sizeof(lt), "%ld", db->lock_timeout_ms);
	return db_exec(db,
		       "SELECT set_config('DateStyle', 'ISO, MDY', false),"
		       " set_config('TimeZone', 'UTC', false),"
		       " set_config('IntervalStyle', 'postgres', false),"
		       " set_config('extra_float_digits', '3', false),"
		       " set_config('statement_timeout', $1, false),"
		       " set_config('lock_timeout', $2, false)",
		       2, params, NULL, err);
}

/* libpq's message as one line: newlines and tabs to spaces, trimmed. */
static void
one_line(char *dst, size_t size, const char *src)
{
	size_t n;

	snprintf(dst, size, "%s", src != NULL ? src : "out of memory");
	n = strlen(dst);
	while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == ' '))
		dst[--n] = '\0';
	for (char *p = dst; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	log_scrub(dst);
}

/*
 * One connection attempt, waiting at most timeout_s and returning early
 * (OPS_E_STOPPED) when *stop is set. *out is the connection, good or bad
 * (the caller reads its error and PQfinish()es it).
 */
static int
connect_once(const char *const *keys, const char *const *vals, long timeout_s,
	     const volatile sig_atomic_t *stop, PGconn **out)
{
	PostgresPollingStatusType ps = PGRES_POLLING_WRITING;
	struct timespec start, now;
	PGconn *conn;

	*out = NULL;
	conn = PQconnectStartParams(keys, vals, 1);
	if (conn == NULL)
		return OPS_E_CONNECT;
	*out = conn;
	if (PQstatus(conn) == CONNECTION_BAD)
		return OPS_E_CONNECT;
	/*
	 * Verbose errors put the server's SQLSTATE into the message
	 * ("FATAL:  28P01: password authentication failed ..."): libpq has
	 * no other way to tell why a connection was refused.
	 */
	PQsetErrorVerbosity(conn, PQERRORS_VERBOSE);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		struct pollfd pfd;
		long waited_ms;
		int n;

		if (ps == PGRES_POLLING_OK)
			return 0;
		if (ps == PGRES_POLLING_FAILED)
			return OPS_E_CONNECT;
		if (ops_stopped(stop))
			return OPS_E_STOPPED;
		clock_gettime(CLOCK_MONOTONIC, &now);
		waited_ms = (long)(now.tv_sec - start.tv_sec) * 1000 +
			    (now.tv_nsec - start.tv_nsec) / 1000000L;
		if (waited_ms >= timeout_s * 1000)
			return OPS_E_CONNECT; /* PQerrorMessage may be empty */
		pfd.fd = PQsocket(conn);
		pfd.events = ps == PGRES_POLLING_READING ? POLLIN : POLLOUT;
		pfd.revents = 0;
		/* short slices: a stop request is seen within 100 ms */
		n = poll(&pfd, 1, 100);
		if (n < 0 && errno != EINTR)
			return OPS_E_CONNECT;
		if (n > 0)
			ps = PQconnectPoll(conn);
	}
}

static void
db_params_free(struct db *db)
{
	for (int i = 0; i < DB_MAX_PARAMS; i++) {
		free(db->keys[i]);
		if (db->vals[i] != NULL)
			explicit_bzero(db->vals[i], strlen(db->vals[i]));
		free(db->vals[i]);
		db->keys[i] = db->vals[i] = NULL;
	}
}

static void
db_param(struct db *db, int *k, const char *key, const char *val)
{
	db->keys[*k] = xstrdup(key);
	db->vals[*k] = xstrdup(val);
	(*k)++;
}

/*
 * Take the SQLSTATE out of a verbose startup error ("... failed: FATAL:
 * 28P01: password authentication failed ..."): state gets it ("" when
 * there is none, as for a refused TCP connection) and text loses it.
 */
static void
take_sqlstate(char *text, char state[6])
{
	static const char *const sev[] = { "FATAL:  ", "ERROR:  ", "PANIC:  " };

	char *loc;

	state[0] = '\0';
	/* verbose messages also name the server's source line: drop it */
	while ((loc = strstr(text, " LOCATION:  ")) != NULL) {
		char *next = strstr(loc, " connection to server");

		if (next == NULL)
			*loc = '\0';
		else
			memmove(loc, next, strlen(next) + 1);
	}
	for (size_t i = 0; i < sizeof(sev) / sizeof(sev[0]); i++) {
		char *p = strstr(text, sev[i]), *code;
		bool ok = p != NULL;

		if (!ok)
			continue;
		code = p + strlen(sev[i]);
		for (int j = 0; j < 5 && ok; j++)
			ok = (code[j] >= '0' && code[j] <= '9') ||
			     (code[j] >= 'A' && code[j] <= 'Z');
		if (!ok || code[5] != ':' || code[6] != ' ')
			continue;
		memcpy(state, code, 5);
		state[5] = '\0';
		memmove(code, code + 7, strlen(code + 7) + 1);
		return;
	}
}

/*
 * The server refused the connection for a reason a retry cannot change:
 * no retry, and say why. A bad login or a missing database is the
 * configuration's fault (78).
 */
static int
refused(const char *state, const char *text, struct ops_err *err)
{
	const char *hint = "";
	int code = OPS_E_CONNECT;
	int r;

	if (strncmp(state, "28", 2) == 0) {
		code = OPS_E_CONFIG;
		hint = ": check the user and password in DATABASE_URL (and "
		       "pg_hba.conf)";
	} else if (strcmp(state, "3D000") == 0) {
		code = OPS_E_CONFIG;
		hint = ": create the database or fix its name in DATABASE_URL";
	}
	r = ops_fail(err, code, false,
		     "cannot connect to the database: %s (SQLSTATE %s)%s", text,
		     state, hint);
	if (err != NULL)
		snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state);
	return r;
}

/*
 * Connect db->conn from db->keys/vals, retrying with backoff. Fills the
 * server version and session settings. On failure db->conn is NULL.
 */
static int
db_open(struct db *db, struct ops_err *err)
{
	PGconn *conn = NULL;
	int r;

	for (int attempt = 0;; attempt++) {
		char text[400], state[6];
		long wait_ms;

		r = connect_once((const char *const *)db->keys,
				 (const char *const *)db->vals,
				 db->connect_timeout_s, db->stop, &conn);
		if (r == 0)
			break;
		if (r == OPS_E_STOPPED) {
			PQfinish(conn);
			return ops_fail(err, OPS_E_STOPPED, false,
					"stopped while connecting to the "
					"database");
		}
		one_line(text, sizeof(text),
			 conn != NULL && PQerrorMessage(conn)[0] != '\0'
				 ? PQerrorMessage(conn)
				 : (conn != NULL ? "timeout expired" : NULL));
		PQfinish(conn);
		conn = NULL;
		take_sqlstate(text, state);
		if (state[0] != '\0' && !db_sqlstate_transient(state))
			return refused(state, text, err);
		if (attempt >= db->retries)
			return ops_fail(err, OPS_E_CONNECT, true,
					"cannot connect to the database after "
					"%d attempt(s): %s",
					attempt + 1, text);
		/* equal jitter: replicas do not retry in step, never at once */
		wait_ms = ops_backoff_equal_jitter(250, 4000, attempt);
		log_warn("database connection failed, retrying attempt=%d "
			 "wait_ms=%ld reason=%s",
			 attempt + 1, wait_ms, log_q(text));
		if (ops_sleep_ms(wait_ms, db->stop) != 0)
			return ops_fail(err, OPS_E_STOPPED, false,
					"stopped while waiting to reconnect to "
					"the database: %s",
					text);
	}
	db->conn = conn;
	db->in_tx = false;
	db->nprepared = 0;
	PQsetErrorVerbosity(conn, PQERRORS_DEFAULT);
	PQsetNoticeProcessor(conn, notice_to_log, NULL);
	{
		int v = PQserverVersion(conn);

		snprintf(db->version, sizeof(db->version), "%d.%d", v / 10000,
			 v % 10000);
	}
	r = db_session_setup(db, err);
	if (r != 0) {
		PQfinish(db->conn);
		db->conn = NULL;
		return r;
	}
	cancel_register(db);
	return 0;
}

int
db_connect(const struct db_opts *o, struct db **out, struct ops_err *err)
{
	char timeout[24];
	struct db *db;
	int k = 0, r;

	*out = NULL;
	r = db_check_url(o->url, err);
	if (r != 0)
		return r;
	db = xcalloc(1, sizeof(*db));
	db->connect_timeout_s =
		o->connect_timeout_s > 0 ? o->connect_timeout_s : 5;
	db->retries = o->retries;
	db->statement_timeout_ms = o->statement_timeout_ms;
	db->lock_timeout_ms = o->lock_timeout_ms;
	db->stop = o->stop != NULL ? o->stop : &ops_stop_flag;
	snprintf(timeout, sizeof(timeout), "%ld", db->connect_timeout_s);
	/* Keywords before dbname are overridden by the URL, those after
	 * override it (libpq expand_dbname). */
	db_param(db, &k, "connect_timeout", timeout);
	if (o->ssl)
		db_param(db, &k, "sslmode", "require");
	db_param(db, &k, "dbname", o->url);
	db_param(db, &k, "application_name",
		 o->appname ? o->appname : "apexops");
	r = db_open(db, err);
	if (r != 0) {
		db_params_free(db);
		free(db);
		return r;
	}
	*out = db;
	return 0;
}

int
db_reconnect(struct db *db, struct ops_err *err)
{
	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		return 0;
	cancel_unregister(db);
	PQfinish(db->conn); /* the server already freed its locks */
	db->conn = NULL;
	db->took_locks = false;
	log_info("database connection lost, reconnecting");
	return db_open(db, err);
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
	cancel_unregister(db);
	if (db->took_locks)
		release_session_locks(db->conn);
	PQfinish(db->conn);
	db_params_free(db);
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

static bool
is_prepared(const struct db *db, const char *name)
{
	for (int i = 0; i < db->nprepared; i++)
		if (strcmp(db->prepared[i], name) == 0)
			return true;
	return false;
}

int
db_query_prepared(struct db *db, const char *name, const char *sql, int nparams,
		  const char *const *params, struct db_res **out,
		  struct ops_err *err)
{
	PGresult *res;

	*out = NULL;
	if (db->conn == NULL || db->in_tx)
		return db_query(db, sql, nparams, params, out, err);
	for (int pass = 0; pass < 2; pass++) {
		if (!is_prepared(db, name)) {
			if (db->nprepared == DB_MAX_PREPARED)
				return db_query(db, sql, nparams, params, out,
						err);
			res = PQprepare(db->conn, name, sql, nparams, NULL);
			if (PQresultStatus(res) != PGRES_COMMAND_OK) {
				int r = db_fail(err, db->conn, res);

				PQclear(res);
				return r;
			}
			PQclear(res);
			db->prepared[db->nprepared++] = name;
		}
		res = PQexecPrepared(db->conn, name, nparams, params, NULL,
				     NULL, 0);
		if (PQresultStatus(res) == PGRES_TUPLES_OK) {
			*out = xmalloc(sizeof(**out));
			(*out)->res = res;
			return 0;
		}
		/* the statement is gone (a DISCARD ALL by a pooler): prepare
		 * it again, once */
		if (pass == 0 && PQresultErrorField(res, PG_DIAG_SQLSTATE) &&
		    strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE),
			   "26000") == 0) {
			PQclear(res);
			db->nprepared = 0;
			continue;
		}
		{
			int r = db_fail(err, db->conn, res);

			PQclear(res);
			return r;
		}
	}
	return ops_fail(err, OPS_E_DB, false, "cannot prepare %s", name);
}

int
db_setting_swap(struct db *db, const char *name, const char *value,
		char **saved, struct ops_err *err)
{
	const char *p[2] = { name, value };
	int r;

	*saved = NULL;
	r = db_query_value(db, "SELECT current_setting($1)", 1, p, saved, err);
	if (r == 0)
		r = db_exec(db, "SELECT set_config($1, $2, false)", 2, p, NULL,
			    err);
	return r;
}

int
db_setting_restore(struct db *db, const char *name, char *saved,
		   struct ops_err *err)
{
	const char *p[2] = { name, saved };
	int r;

	if (saved == NULL)
		return 0;
	r = db_exec(db, "SELECT set_config($1, $2, false)", 2, p, NULL, err);
	free(saved);
	return r;
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
db_relation_exists(struct db *db, const char *name, bool *exists,
		   struct ops_err *err)
{
	char *v = NULL;
	int r = db_query_value(db, "SELECT to_regclass($1) IS NOT NULL", 1,
			       &name, &v, err);

	*exists = r == 0 && v != NULL && strcmp(v, "t") == 0;
	free(v);
	return r;
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

int
db_listen(struct db *db, const char *channel, struct ops_err *err)
{
	char *ident;
	char sql[160];
	int r;

	if (db->conn == NULL)
		return ops_fail(err, OPS_E_CONNECT, true,
				"not connected to the database");
	/* LISTEN takes no parameters: the channel is quoted as an
	 * identifier by libpq (channels are constants of the code) */
	ident = PQescapeIdentifier(db->conn, channel, strlen(channel));
	if (ident == NULL)
		return ops_fail(err, OPS_E_INVALID, false,
				"cannot quote the channel name");
	snprintf(sql, sizeof(sql), "LISTEN %s", ident);
	PQfreemem(ident);
	r = db_exec(db, sql, 0, NULL, NULL, err);
	return r;
}

int
db_socket(const struct db *db)
{
	return db->conn != NULL ? PQsocket(db->conn) : -1;
}

int
db_notifies(struct db *db, int *count, struct ops_err *err)
{
	return db_notifies_each(db, NULL, NULL, count, err);
}

int
db_notifies_each(struct db *db,
		 void (*fn)(void *arg, const char *channel,
			    const char *payload),
		 void *arg, int *count, struct ops_err *err)
{
	PGnotify *n;

	*count = 0;
	if (db->conn == NULL)
		return ops_fail(err, OPS_E_CONNECT, true,
				"not connected to the database");
	if (PQconsumeInput(db->conn) != 1)
		return ops_fail(err, OPS_E_CONNECT, true,
				"reading notifications: %s",
				PQerrorMessage(db->conn));
	while ((n = PQnotifies(db->conn)) != NULL) {
		(*count)++;
		if (fn != NULL)
			fn(arg, n->relname, n->extra);
		PQfreemem(n);
	}
	return 0;
}
