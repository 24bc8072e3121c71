/*
 * The export encoder: every record of one user, from one REPEATABLE READ
 * READ ONLY snapshot, as JSONL or CSV, streamed through a sink in
 * constant memory (COPY ... TO STDOUT, one row at a time, through a
 * bounded buffer).
 *
 * JSONL: a manifest line first,
 *   {"manifest":{"request_id":N,"tenant":"..","user":"..",
 *    "generated_at":"RFC 3339","format":"jsonl","data_map_version":N,
 *    "counts":{"users":1,...}}}
 * then one line per record: {"table":"usage_events","record":{...}}.
 * CSV (RFC 4180, CRLF line ends): a "section,manifest" block of
 * key,value rows (rows.<table>,N per table), then per exported table a
 * "section,<table>" line, the column header and the rows; a blank line
 * ends each block.
 *
 * Thread safety: uses only the struct db it is given; several threads
 * may export at once with their own connections.
 */
#ifndef OPS_JOBS_PRIVACY_EXPORT_H
#define OPS_JOBS_PRIVACY_EXPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "jobs/privacy_id.h"

struct db;

/* Where the encoded bytes go: write returns 0 or an OPS_E_* code with
 * err filled; the encoder stops at the first failure. */
struct privacy_sink {
	int (*write)(void *arg, const void *data, size_t len,
		     struct ops_err *err);
	void *arg;
};

struct privacy_subject {
	long long request_id;
	char tenant[PRIVACY_UUID_LEN + 1]; /* canonical (privacy_id.h) */
	char user[PRIVACY_UUID_LEN + 1];
};

/*
 * Export s through sink (csv: CSV, else JSONL). db must have no
 * transaction open; the snapshot is opened and ended here. *counts
 * (may be NULL) gets a new JSON object text {"table": rows, ...} that
 * the caller frees. OPS_E_REFUSED when the user is not a user of the
 * tenant: then nothing but that membership was read and nothing was
 * written to the sink.
 */
int privacy_export_encode(struct db *db, const struct privacy_subject *s,
			  bool csv, const struct privacy_sink *sink,
			  char **counts, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * Set the subject for the data map's predicates in the current
 * transaction (set_config(..., true) from parameters) and check that
 * the user belongs to the tenant: OPS_E_REFUSED naming both when not
 * (the same message whether the user is absent or another tenant's).
 */
int privacy_subject_bind(struct db *db, const struct privacy_subject *s,
			 struct ops_err *err)
	__attribute__((warn_unused_result));

#endif
