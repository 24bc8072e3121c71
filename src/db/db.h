/*
 * The PostgreSQL layer: the only module that includes libpq-fe.h. Every
 * statement takes parameters ($1, $2 ...) as text; no caller builds SQL
 * from data. Errors carry the SQLSTATE and whether a retry may help.
 *
 * Threads: a struct db belongs to one thread at a time. db_connect(),
 * db_reconnect() and db_close() may run in several threads at once (the
 * process-wide registry of cancel objects behind db_cancel_all() is
 * locked); db_connect_config() may start the embedded cluster and logs
 * through log_q(): call it from the main thread.
 */
#ifndef OPS_DB_DB_H
#define OPS_DB_DB_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct db;     /* one connection; not shared between threads */
struct db_res; /* a query result */
struct ops_config;

struct db_opts {
	const char *url; /* URL or conninfo (required) */
	bool ssl;	 /* DATABASE_SSL: sslmode=require unless url sets it */
	const char *appname; /* application_name, e.g. "apexops/purge" */
	long connect_timeout_s;
	long retries; /* extra attempts after the first, with backoff */
	long statement_timeout_ms; /* 0: none */
	long lock_timeout_ms;	   /* 0: none */
	/* a stop request ends connecting and waiting to retry early
	 * (OPS_E_STOPPED); NULL: &ops_stop_flag (core/signals.h) */
	const volatile sig_atomic_t *stop;
};

/*
 * Connect, retrying transient failures with exponential backoff and jitter
 * (ops_backoff_equal_jitter, waits through ops_sleep_ms so a stop request
 * ends them). *out is a new connection the caller closes with db_close().
 * Failure to reach the server is OPS_E_CONNECT; the message never shows a
 * password.
 *
 * Every session is pinned, whatever the role or database defaults are:
 * DateStyle ISO, TimeZone UTC, IntervalStyle postgres, extra_float_digits
 * 3, plus o's statement_timeout and lock_timeout. The strings in o are
 * copied: o may go away after the call.
 */
int db_connect(const struct db_opts *o, struct db **out, struct ops_err *err);

/*
 * Connect as command cmd_name (application_name "apexops/<cmd_name>")
 * with the timeouts and retries of cfg. *url is in/out: when NULL it is
 * resolved, from cfg->database_url or else by starting (or reusing) the
 * embedded cluster under cfg->home, and set to a new string the caller
 * frees; a later call reuses it. *embedded (may be NULL) says whether it
 * points at the embedded cluster. *out as for db_connect().
 */
int db_connect_config(const struct ops_config *cfg, const char *cmd_name,
		      char **url, bool *embedded, struct db **out,
		      struct ops_err *err);

/*
 * For long-running callers: when the connection is broken (PQstatus
 * CONNECTION_BAD, as after a server restart or pg_terminate_backend),
 * connect again with the same options and backoff and apply the session
 * settings again. A good connection is left alone (returns 0). Session
 * state (advisory locks, an open transaction, temporary tables) does not
 * survive: the caller takes its locks again. On failure db stays usable
 * for db_close() and a later db_reconnect(); statements fail with
 * OPS_E_CONNECT.
 */
int db_reconnect(struct db *db, struct ops_err *err);
/* Close. NULL is a no-op. */
void db_close(struct db *db);

/* Run a statement that returns no rows; *affected (may be NULL) gets the
 * row count of INSERT/UPDATE/DELETE. */
int db_exec(struct db *db, const char *sql, int nparams,
	    const char *const *params, long long *affected,
	    struct ops_err *err);
/* Run a query; *out is a new result freed with db_res_free(). */
int db_query(struct db *db, const char *sql, int nparams,
	     const char *const *params, struct db_res **out,
	     struct ops_err *err);
/*
 * db_query() through a statement prepared once per connection under name
 * (a string literal: it is kept, not copied), for a query run again and
 * again on one session (the worker's claim): no parse or plan per call.
 * A connection opened again prepares afresh; a statement the server no
 * longer has (a pooler's DISCARD ALL) is prepared again once. Inside a
 * transaction, or past DB_MAX_PREPARED names, it is db_query(). Not for
 * a connection through a pooler in transaction mode.
 */
#define DB_MAX_PREPARED 8
int db_query_prepared(struct db *db, const char *name, const char *sql,
		      int nparams, const char *const *params,
		      struct db_res **out, struct ops_err *err);
/*
 * Set the session setting name (a literal) to value for the rest of the
 * session, keeping its old value in *saved for db_setting_restore(). On
 * failure *saved is NULL or the old value, and nothing is changed.
 */
int db_setting_swap(struct db *db, const char *name, const char *value,
		    char **saved, struct ops_err *err);
/* Set name back to saved and free saved; saved NULL does nothing. */
int db_setting_restore(struct db *db, const char *name, char *saved,
		       struct ops_err *err);
/*
 * First column of the first row as a new string (caller frees), or NULL
 * when there is no row or the value is SQL NULL.
 */
int db_query_value(struct db *db, const char *sql, int nparams,
		   const char *const *params, char **out, struct ops_err *err);
/*
 * Does the table (or view, sequence, index) name, "schema.table" or as
 * the search_path finds it, exist? to_regclass, so a name that does not
 * parse is "no" too; *exists is false on every error.
 */
int db_relation_exists(struct db *db, const char *name, bool *exists,
		       struct ops_err *err);
/* Several statements in one string, without parameters: migration files
 * only, never data. */
int db_exec_script(struct db *db, const char *sql, struct ops_err *err);

int db_res_rows(const struct db_res *res);
int db_res_cols(const struct db_res *res);
/* Borrowed text of a cell, or NULL for SQL NULL. */
const char *db_res_get(const struct db_res *res, int row, int col);
/* A cell as an integer; 0 for NULL. */
long long db_res_ll(const struct db_res *res, int row, int col);
double db_res_double(const struct db_res *res, int row, int col);
/* Column name, borrowed. */
const char *db_res_colname(const struct db_res *res, int col);
void db_res_free(struct db_res *res);

int db_begin(struct db *db, struct ops_err *err);
int db_commit(struct db *db, struct ops_err *err);
/* Roll back if a transaction is open; safe to call on any path. */
void db_rollback(struct db *db);
bool db_in_tx(const struct db *db);

/* Session-level advisory locks on one bigint key. */
int db_advisory_lock(struct db *db, int64_t key, struct ops_err *err);
int db_try_advisory_lock(struct db *db, int64_t key, bool *got,
			 struct ops_err *err);
int db_advisory_unlock(struct db *db, int64_t key, struct ops_err *err);
/* A stable lock key for a name (FNV-1a 64). */
int64_t db_lock_key(const char *name);

/* COPY ... FROM STDIN: begin, put any number of chunks, end. */
int db_copy_begin(struct db *db, const char *sql, struct ops_err *err);
int db_copy_put(struct db *db, const char *data, size_t len,
		struct ops_err *err);
/* Finish; *rows (may be NULL) gets the row count. On a failure before
 * the end, pass abort_msg to abandon the COPY. */
int db_copy_end(struct db *db, const char *abort_msg, long long *rows,
		struct ops_err *err);
/* COPY ... TO STDOUT: cb gets each row; a non-zero return stops. */
int db_copy_out(struct db *db, const char *sql,
		int (*cb)(void *arg, const char *row, size_t len), void *arg,
		struct ops_err *err);

/* Ask the server to cancel the running statement; async-signal-safe. */
void db_cancel(struct db *db);
/*
 * Cancel the running statement of every open connection of the process.
 * Async-signal-safe (PQcancel into a stack buffer): db_connect() sets it
 * as the hook of a second SIGINT/SIGTERM (ops_signals_on_second_stop), so
 * a second stop signal ends a long statement at once. The statement fails
 * with SQLSTATE 57014 and its transaction rolls back.
 */
void db_cancel_all(void);
/* LISTEN on channel (a constant of the code, quoted as an identifier). */
int db_listen(struct db *db, const char *channel, struct ops_err *err)
	__attribute__((warn_unused_result));
/* The connection's socket, to wait on with poll(); -1 when closed. */
int db_socket(const struct db *db);
/* Read what arrived on the socket and drop the notifications received;
 * *count gets how many. OPS_E_CONNECT when the connection broke. Counts
 * too the notifications libpq took in with an earlier query's reply on
 * this connection, which poll() on db_socket() no longer sees: call it
 * after the last query and before waiting on the socket. */
int db_notifies(struct db *db, int *count, struct ops_err *err)
	__attribute__((warn_unused_result));
/* db_notifies(), calling fn(arg, channel, payload) for each notification
 * first (the strings are borrowed for the call); fn may be NULL. */
int db_notifies_each(struct db *db,
		     void (*fn)(void *arg, const char *channel,
				const char *payload),
		     void *arg, int *count, struct ops_err *err)
	__attribute__((warn_unused_result));
/* "15.20" etc., borrowed. */
const char *db_server_version(struct db *db);
int db_server_version_num(struct db *db);
/* The connection's backend pid. */
int db_backend_pid(struct db *db);

/* Is sqlstate transient (serialization, deadlock, connection, shutdown,
 * lock timeout)? */
bool db_sqlstate_transient(const char *sqlstate);
/* Does sqlstate say a table, schema, function or column is not there
 * (42P01, 3F000, 42883, 42703): most likely a database behind this
 * binary's migrations? NULL or "" is false. Pure; any thread. */
bool db_sqlstate_schema_behind(const char *sqlstate);
/* The operator's remedy for such an error, one sentence. */
#define DB_SCHEMA_BEHIND_HINT                                                \
	"the database may lack this apexops's migrations: 'apexops migrate " \
	"status' lists what is pending, 'apexops migrate up' applies it"
/* For a key=value log line: " hint=\"<DB_SCHEMA_BEHIND_HINT>\"" when err
 * (not NULL) says the schema is behind, else "". A constant; any thread. */
const char *db_schema_hint_field(const struct ops_err *err);
/* Validate a URL/conninfo without connecting; the message hides any
 * password. */
int db_check_url(const char *url, struct ops_err *err);

#endif
