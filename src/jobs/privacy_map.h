/*
 * The privacy data map: for every platform table that holds a user's data
 * (or hangs off the user's tenant), how the user's rows are found, what an
 * export includes, and what an erasure does with them. Export, delete and
 * the tests all read this one table; a test compares it with PostgreSQL's
 * catalog (every table with a foreign key to users or publishers, directly
 * or through other tables, must be here).
 *
 * SQL fragments are constants. They find the subject through two
 * transaction-local settings that the caller sets with set_config() from
 * parameters (PRIVACY_MAP_USER, PRIVACY_MAP_TENANT below), so no id is
 * ever part of SQL text, and the same predicate serves COPY (which takes
 * no parameters), DELETE and UPDATE. The table alias is always t.
 *
 * Thread safety: constant data; read from any thread.
 */
#ifndef OPS_JOBS_PRIVACY_MAP_H
#define OPS_JOBS_PRIVACY_MAP_H

#include <stdbool.h>

/* Bumped whenever an entry changes; exports name it in their manifest. */
#define PRIVACY_MAP_VERSION 1

/* the subject, as the predicates see it */
#define PRIVACY_MAP_USER   "current_setting('apexops.privacy_user')::uuid"
#define PRIVACY_MAP_TENANT "current_setting('apexops.privacy_tenant')::uuid"

enum privacy_action {
	PRIVACY_DELETE,	   /* rows deleted */
	PRIVACY_ANONYMISE, /* rows kept, personal columns overwritten */
	PRIVACY_KEEP	   /* rows kept as they are (reason says why) */
};

struct privacy_table {
	const char *name;  /* table in schema public */
	const char *match; /* predicate on t: the subject's rows */
	/* export: false for the tenant's own records, which are not the
	 * user's personal data (reason says so) */
	bool exported;
	/* columns never exported (secrets), comma-separated, or NULL */
	const char *omit;
	/* columns exported masked by apexops.privacy_mask(), or NULL */
	const char *mask;
	enum privacy_action action;
	/* PRIVACY_ANONYMISE: the SET list of the UPDATE */
	const char *anonymise;
	/* predicate on t, true while a matched row still holds personal
	 * data: what delete acts on (so a second delete finds nothing) and
	 * what the tests scan for afterwards; "true" for deleted tables,
	 * NULL for kept ones */
	const char *personal;
	/* for the auditor: what the table holds, and the legal reason for
	 * keeping or anonymising instead of deleting */
	const char *reason;
};

/* in delete order: children before their parents */
extern const struct privacy_table privacy_map[];
extern const int privacy_map_count;

/* The entry of table name, or NULL. */
const struct privacy_table *privacy_map_find(const char *name);
/* "delete", "anonymise", "keep". */
const char *privacy_action_name(enum privacy_action a);

#endif
