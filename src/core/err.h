/* Error values shared by every module. */
#ifndef OPS_CORE_ERR_H
#define OPS_CORE_ERR_H

#include <stdbool.h>

enum ops_errcode {
	OPS_OK = 0,
	OPS_E_INVALID = -1,  /* bad input: a value, a flag, a file */
	OPS_E_CONFIG = -2,   /* bad configuration (exit 78) */
	OPS_E_DB = -3,	     /* a database statement failed */
	OPS_E_CONNECT = -4,  /* the database cannot be reached (exit 69) */
	OPS_E_IO = -5,	     /* a local file or process failed */
	OPS_E_HTTP = -6,     /* a remote HTTP peer failed */
	OPS_E_NOTFOUND = -7, /* a required object does not exist */
	OPS_E_REFUSED = -8,  /* a safety check refused the action */
	OPS_E_STOPPED = -9,  /* stopped by a signal before finishing */
	OPS_E_CONFLICT = -10 /* a concurrent actor holds the resource */
};

/* sysexits(3) values used as process exit codes. */
#define OPS_EXIT_OK	     0
#define OPS_EXIT_FAIL	     1
#define OPS_EXIT_USAGE	     64
#define OPS_EXIT_DATAERR     65
#define OPS_EXIT_UNAVAILABLE 69
#define OPS_EXIT_SOFTWARE    70
#define OPS_EXIT_TEMPFAIL    75
#define OPS_EXIT_CONFIG	     78

/*
 * Detail of a failure, filled by ops_fail(); owned by the caller.
 *
 * NULL rule: every function that takes a struct ops_err * accepts NULL,
 * in src/core and everywhere else. The detail is then dropped; the return
 * code is the same. Functions that only fill err never dereference it
 * without checking, so a caller that needs no message may pass NULL.
 */
struct ops_err {
	int code;	  /* enum ops_errcode */
	bool transient;	  /* a later retry may succeed */
	char sqlstate[6]; /* set with OPS_E_DB, else "" */
	char msg[512];
};

#define OPS_ERR_INIT             \
	{                        \
		0, false, "", "" \
	}

/*
 * Fill err (NULL: nothing is filled) and return code. The message is
 * worded as git does: lower case, no trailing period, the failure first.
 */
int ops_fail(struct ops_err *err, int code, bool transient, const char *fmt,
	     ...) __attribute__((format(printf, 4, 5)));

/*
 * Prefix err->msg with "what: " and return err->code. NULL err: nothing to
 * prefix and no code to return, so OPS_E_INVALID (a failure) comes back;
 * a caller that may have a NULL err and needs the exact code returns its
 * own.
 */
int ops_err_prefix(struct ops_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Give err a new code and prefix its message with "what: " (as
 * ops_err_prefix), e.g. to turn a file error into OPS_E_CONFIG. NULL err
 * is fine. Returns code.
 */
int ops_err_recode(struct ops_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Reset err to "no error". NULL is a no-op. */
void ops_err_clear(struct ops_err *err);

/* The process exit code for an error (sysexits); NULL: OPS_EXIT_FAIL.
 * OPS_E_STOPPED and OPS_E_CONFLICT are 75: running again may finish. */
int ops_err_exit_code(const struct ops_err *err);

#endif
