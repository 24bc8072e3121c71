/*
 * Where privacy exports go: local disk, S3 or Google Cloud Storage, behind
 * one interface so that export, delete, expiry and `privacy url` never
 * look at the provider.
 *
 * Keys are relative: "<tenant>/<user>/<epoch-ms>.<ext>". The store maps a
 * key to its place:
 *   local  <PRIVACY_EXPORT_DIR>/<key>         (directories 0700, files 0600)
 *   s3     s3://<PRIVACY_EXPORT_BUCKET>/privacy-exports/<key>
 *   gcs    gs://<PRIVACY_EXPORT_BUCKET>/privacy-exports/<key>
 * and names it by a location string (an absolute path for local, the
 * s3:// or gs:// URI otherwise) that the request row keeps.
 *
 * Writing streams: the writer keeps a bounded buffer (two multipart parts
 * for S3 and GCS, one filling while the other goes up on a thread of the
 * writer's own; a file for local) and the SHA-256 and size of everything
 * written. Nothing is visible under the key until store_writer_commit()
 * (local: a temporary name, fsync, rename; S3/GCS: a single PUT or a
 * completed multipart upload); store_writer_abort() leaves nothing behind
 * (the temporary file is removed, the multipart upload aborted).
 *
 * Transient errors (5xx, timeouts, resets) are retried inside; what comes
 * back is final for this attempt. Errors are OPS_E_* with err filled; a
 * missing object is OPS_E_NOTFOUND; bad configuration is OPS_E_CONFIG
 * naming the variable, never a secret's value.
 *
 * Thread safety: a struct store and its writers are used by one thread at
 * a time (an S3/GCS writer's upload thread is internal: it is joined
 * before the store is used again); several threads may each open their
 * own store.
 */
#ifndef OPS_STORAGE_STORE_H
#define OPS_STORAGE_STORE_H

#include <signal.h>
#include <stddef.h>

#include "core/config.h"
#include "core/err.h"

enum store_provider { STORE_LOCAL, STORE_S3, STORE_GCS };

/* "local", "s3", "gcs". */
const char *store_provider_name(enum store_provider p);
/* Parse one of the names above (exact, as PRIVACY_EXPORT_PROVIDER);
 * -1 when s is none of them. */
int store_provider_parse(const char *s, enum store_provider *out);
/* The provider of a location string: a path starting with '/' is local,
 * s3:// is S3, gs:// is GCS; -1 otherwise. */
int store_location_provider(const char *location, enum store_provider *out);

struct store;

/*
 * Open provider p with cfg (PRIVACY_EXPORT_DIR, PRIVACY_EXPORT_BUCKET,
 * the AWS_* variables for S3, APEXOPS_GCS_* / GOOGLE_APPLICATION_CREDENTIALS
 * for GCS). stop (may be NULL) ends waits and transfers with
 * OPS_E_STOPPED. *out is freed with store_free(). cfg must outlive it.
 */
int store_open(const struct ops_config *cfg, enum store_provider p,
	       const volatile sig_atomic_t *stop, struct store **out,
	       struct ops_err *err) __attribute__((warn_unused_result));
/* NULL is a no-op. */
void store_free(struct store *s);
enum store_provider store_provider_of(const struct store *s);

/* What a committed object is. */
struct store_object {
	char location[1100]; /* absolute path, s3://..., gs://... */
	long long size;	     /* bytes */
	char sha256[65];     /* lower-case hex of the content */
};

struct store_writer;

/*
 * Start writing key (relative, see above: [A-Za-z0-9._-] segments joined by
 * '/', none starting with '.' (so no ".." and no temporary's name), at most
 * 900 bytes; anything else is OPS_E_INVALID).
 * content_type: e.g. "application/x-ndjson", "text/csv"; NULL: octet-stream.
 */
int store_writer_open(struct store *s, const char *key,
		      const char *content_type, struct store_writer **out,
		      struct ops_err *err) __attribute__((warn_unused_result));
/* Append len bytes. On an error the writer must still be aborted. */
int store_write(struct store_writer *w, const void *data, size_t len,
		struct ops_err *err) __attribute__((warn_unused_result));
/*
 * Make the object visible under its key and fill *obj. Frees w whatever
 * the result; on failure nothing is left under the key.
 */
int store_writer_commit(struct store_writer *w, struct store_object *obj,
			struct ops_err *err)
	__attribute__((warn_unused_result));
/* Discard what was written, leave nothing behind, free w. NULL: no-op. */
void store_writer_abort(struct store_writer *w);

/* Delete the object at location (as in store_object); a missing object is
 * success. The location must belong to this store's provider and bucket or
 * directory (else OPS_E_INVALID). */
int store_delete(struct store *s, const char *location, struct ops_err *err)
	__attribute__((warn_unused_result));
/* 0 when the object at location exists, OPS_E_NOTFOUND when not. */
int store_exists(struct store *s, const char *location, struct ops_err *err)
	__attribute__((warn_unused_result));
/*
 * Call fn for each object whose key starts with prefix (relative, as for
 * store_writer_open; e.g. "<tenant>/<user>/"), with its location; stop and
 * return fn's value when it is non-zero. Local: temporary files of
 * unfinished writes are not listed.
 */
int store_list(struct store *s, const char *prefix,
	       int (*fn)(void *arg, const char *location), void *arg,
	       struct ops_err *err) __attribute__((warn_unused_result));
/*
 * *url (new, the caller frees) is how to fetch location: a presigned GET
 * URL valid for expires_s seconds (1..604800) for S3 and GCS, the file path
 * for local.
 */
int store_url(struct store *s, const char *location, long expires_s, char **url,
	      struct ops_err *err) __attribute__((warn_unused_result));

/*
 * Clear what writes that never finished left under prefix (as for
 * store_list): a worker killed mid-export leaves a temporary file (local)
 * or a multipart upload that was neither completed nor aborted (S3, GCS),
 * invisible under any key but taking space. Only those started more than
 * older_than_s seconds ago (at least 60) go, so writes in progress are
 * left alone; committed objects are never touched. *removed (may be NULL)
 * gets how many went.
 */
int store_sweep(struct store *s, const char *prefix, long older_than_s,
		int *removed, struct ops_err *err)
	__attribute__((warn_unused_result));

#endif
