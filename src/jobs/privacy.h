/*
 * Privacy requests (apexops.privacy_requests, migration
 * 20261201_120000_privacy): filing, the workers' run of one request,
 * and expiry of exports. Export and delete read the data map
 * (privacy_map.h); artifacts go through storage/store.h.
 *
 * Exactly once: a request is owned by the queue attempt that last
 * claimed it (the row's attempt column). The artifact key is fixed per
 * request ("<tenant>/<user>/<requested_at epoch-ms>.<ext>"), and the
 * owner commits the artifact while holding the request row locked and
 * still its owner, then marks it completed in the same transaction; a
 * stale attempt finds the row taken and leaves. A worker killed
 * mid-export leaves nothing under the key (the store's writer commits
 * atomically), and the retry writes the one artifact.
 *
 * Thread safety: privacy_request_run() opens its own connection and
 * stores; it may run in several threads at once. The others use the
 * struct db they are given.
 */
#ifndef OPS_JOBS_PRIVACY_H
#define OPS_JOBS_PRIVACY_H

#include <signal.h>
#include <stdbool.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"

struct db;
struct job_ctx;

/*
 * File a request through apexops.request_privacy() (kind "export" or
 * "delete"; format "jsonl", "json", "csv" or NULL); *id gets its id, or
 * the open request's of the same kind, tenant, user and format. Ids are
 * validated (privacy_id.h) before the query: OPS_E_INVALID.
 */
int privacy_file(struct db *db, const char *kind, const char *tenant,
		 const char *user, const char *format, long long *id,
		 struct ops_err *err) __attribute__((warn_unused_result));

/*
 * Run request request_id as attempt attempt of queue job job_id, on a
 * connection of its own to db_url. 0: the request completed, or there
 * was nothing to do (already finished, or a newer attempt owns it).
 * Else the request row holds the error (status failed when *permanent
 * or this was the job's last attempt, else queued for the retry) and so
 * does err. *permanent: do not retry (the user is not the tenant's, a
 * malformed request).
 */
int privacy_request_run(const struct ops_config *cfg, const char *db_url,
			long long request_id, long long job_id, int attempt,
			volatile sig_atomic_t *stop, bool *permanent,
			struct ops_err *err);

struct privacy_expire_result {
	long long due;	   /* completed exports past expires_at */
	long long expired; /* artifact deleted (or gone) and marked expired */
	long long left;	   /* left for the next run (provider unreachable) */
	char first_error[256]; /* why the first was left, "" when none */
	/* unfinished writes of killed exports (temporary files, multipart
	 * uploads) older than PRIVACY_SWEEP_AGE_S swept from the configured
	 * provider; sweep_error says why not, "" when it ran */
	long long swept;
	char sweep_error[256];
};

/* What expiry sweeps is older than this: longer than any export runs. */
#define PRIVACY_SWEEP_AGE_S 86400L

/*
 * Delete the artifacts of completed exports past expires_at in their
 * providers and mark those requests expired; a request is marked only
 * once its artifact is confirmed gone. dry_run: count only. A provider
 * that cannot be opened or answers with an error leaves its requests
 * (res->left, res->first_error) and the run returns OPS_E_HTTP or the
 * provider's code after doing the rest. Then (not in a dry run) the
 * configured provider is swept of unfinished writes older than a day
 * (store_sweep): a failed sweep is reported in res->sweep_error and
 * logged, never fatal.
 */
int privacy_expire(struct db *db, const struct ops_config *cfg, bool dry_run,
		   const volatile sig_atomic_t *stop,
		   struct privacy_expire_result *res, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * What a delete of user of tenant (canonical UUIDs) would do now, changing
 * nothing: in a read-only transaction of its own on db (none open), the
 * erasure's preview (privacy_erase_preview: OPS_E_REFUSED for a user not
 * the tenant's) with "exports_to_delete", the earlier exports' recorded
 * locations that the erasure deletes. *json: new JSON text, caller frees.
 */
int privacy_delete_preview(struct db *db, const char *tenant, const char *user,
			   char **json, struct ops_err *err)
	__attribute__((warn_unused_result));

/* The `apexops status` section: open, overdue and soon-due requests,
 * failures, exports waiting for expiry. */
int privacy_status_report(struct db *db, struct buf *out, struct ops_err *err);

/* The scheduler's privacy-expiry job (jobs/job.h). */
int privacy_expiry_job_run(struct job_ctx *ctx, struct ops_err *err);

#endif
