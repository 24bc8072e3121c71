/*
 * Versioned SQL migrations: migrations/postgres/<version>_<name>.up.sql and
 * .down.sql, version = YYYYMMDD_HHMMSS. A ledger in schema apexops keeps
 * each applied version with the SHA-256 of its up file; an applied file
 * that changed on disk is refused by name. Each migration runs in its own
 * transaction; concurrent migrators serialise on an advisory lock.
 */
#ifndef OPS_DB_MIGRATE_H
#define OPS_DB_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"

struct db;

struct migration {
	char *version; /* "20251112_023000" */
	char *name;    /* "usage_retention_indexes" */
	char *id;      /* "20251112_023000_usage_retention_indexes" */
	char *up_path;
	char *down_path; /* NULL when there is no .down.sql */
	char checksum[65];
};

struct migration_set {
	char *dir;
	struct migration *v; /* sorted by id */
	size_t n;
};

enum mig_state {
	MIG_PENDING,
	MIG_APPLIED,
	MIG_CHANGED,	 /* applied, but the file differs now */
	MIG_FILE_MISSING /* in the ledger, no file on disk */
};

struct mig_status_row {
	char *id;
	enum mig_state state;
	char *applied_at; /* NULL when pending */
	char *applied_checksum;
	const struct migration *m; /* NULL for MIG_FILE_MISSING */
};

struct mig_status {
	struct mig_status_row *v;
	size_t n;
	size_t applied, pending, changed, missing;
};

/* Where the files are: configured dir, ./migrations/postgres, next to the
 * binary, PREFIX/share/apexops. *out is new. */
int migrate_find_dir(const char *configured, char **out, struct ops_err *err);
/* Read the directory: file names must match <version>_<name>.(up|down).sql;
 * anything else there is an error naming the file. */
int migrations_load(const char *dir, struct migration_set *set,
		    struct ops_err *err);
void migrations_release(struct migration_set *set);

/* Compare the ledger with the files. Read-only: a missing ledger reads as
 * empty. MIG_FILE_MISSING rows are migrations this binary does not know
 * (the database is ahead of it, or a file was removed). */
int migrate_status(struct db *db, const struct migration_set *set,
		   struct mig_status *st, struct ops_err *err);
void mig_status_release(struct mig_status *st);

/* Called before and after each migration is applied or reverted. */
typedef void (*mig_report_fn)(void *arg, const struct migration *m, bool done,
			      double seconds);

/*
 * Apply pending migrations in order (up to and including `to` when not
 * NULL). Refuses, before doing anything, when an applied file changed, or
 * when the database has a migration this binary does not know and there
 * is something to apply. *applied gets the count. dry_run: report what
 * would run, change nothing (not even the ledger's creation). Each
 * migration runs in its own transaction with statement_timeout 0 and the
 * session's lock_timeout. A stop request (ops_stop_flag) ends the run
 * before the next migration (OPS_E_STOPPED).
 */
int migrate_up(struct db *db, const struct migration_set *set, const char *to,
	       bool dry_run, mig_report_fn report, void *arg, size_t *applied,
	       struct ops_err *err);
/*
 * Revert the last n applied migrations, newest first. Refuses, before
 * doing anything, when one of them has no down file, a changed up file or
 * no file at all. dry_run: report only, change nothing.
 */
int migrate_down(struct db *db, const struct migration_set *set, size_t n,
		 bool dry_run, mig_report_fn report, void *arg,
		 size_t *reverted, struct ops_err *err);

#endif
