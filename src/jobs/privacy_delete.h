/*
 * Erasure of one user's data, driven by the data map (privacy_map.h):
 * rows deleted, or anonymised where the map keeps them for a legal
 * reason, in the caller's transaction so that the receipt written to the
 * request row commits with the erasure or not at all.
 *
 * Thread safety: uses only the struct db it is given.
 */
#ifndef OPS_JOBS_PRIVACY_DELETE_H
#define OPS_JOBS_PRIVACY_DELETE_H

#include "core/err.h"
#include "jobs/privacy_export.h"

struct db;

/*
 * Erase s inside the transaction open on db (the caller commits or rolls
 * back): the tenant check first (OPS_E_REFUSED: nothing changed), then
 * each table of the map in order. *receipt (new JSON object text, caller
 * frees): {"tables":{"usage_events":{"action":"delete","rows":N},...},
 * "rows_total":N,"nothing_left":bool,"data_map_version":N}; a second
 * erasure of the same user changes no row and says nothing_left.
 * *total (may be NULL) gets the rows changed.
 */
int privacy_erase(struct db *db, const struct privacy_subject *s,
		  char **receipt, long long *total, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * What privacy_erase() would do to s now, changing nothing: the same
 * tenant check (OPS_E_REFUSED), tables, order and predicates, each
 * table's rows counted instead of deleted or anonymised. *preview (new
 * JSON text, caller frees) has the receipt's shape, so that a preview and
 * the receipt of an erasure run right after it compare equal. Reads only;
 * runs in the caller's transaction (a READ ONLY one is fine).
 */
int privacy_erase_preview(struct db *db, const struct privacy_subject *s,
			  char **preview, long long *total, struct ops_err *err)
	__attribute__((warn_unused_result));

#endif
