/*
 * The capability sections of `apexops status`: each appends indented
 * "  key  value" lines to out. Capabilities add a row to status_sections[]
 * in status.c.
 */
#ifndef OPS_JOBS_STATUS_H
#define OPS_JOBS_STATUS_H

#include "core/buf.h"
#include "core/err.h"

struct db;

struct status_section {
	const char *title;
	/* the table fn reads (a constant, "schema.name"): when it is missing
	 * (the database not migrated so far) the section says so and fn is
	 * not called; NULL: fn copes by itself */
	const char *needs;
	int (*fn)(struct db *db, struct buf *out, struct ops_err *err);
};

/* Terminated by a row with a NULL title. */
extern const struct status_section status_sections[];

#endif
