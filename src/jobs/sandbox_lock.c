/* The sandbox commands' advisory locks: one behaviour for both, through
 * db/lock.h's db_lock_try(). */
#include "jobs/sandbox.h"

#include <stdio.h>
#include <string.h>

#include "db/lock.h"

int
sandbox_lock_try(struct db *db, const char *name, const char *what,
		 struct ops_err *err)
{
	int r = db_lock_try(db, name, err);

	if (r == OPS_E_CONFLICT) {
		ops_err_prefix(err, "%s is running", what);
		if (err != NULL) {
			size_t n = strlen(err->msg);

			snprintf(err->msg + n, sizeof(err->msg) - n,
				 "; run again when it has finished");
		}
	}
	return r;
}

void
sandbox_lock_release(struct db *db, const char *name)
{
	struct ops_err ignored = OPS_ERR_INIT;

	(void)db_lock_release(db, name, &ignored);
}
