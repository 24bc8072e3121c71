#include "db/migrate.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/signals.h"
#include "core/stop.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "db/lock.h"

#define MIG_MAX_FILE (16 * 1024 * 1024)

static const char ledger_sql[] =
	"CREATE SCHEMA IF NOT EXISTS apexops;"
	"CREATE TABLE IF NOT EXISTS apexops.schema_migrations ("
	" version text PRIMARY KEY,"
	" name text NOT NULL,"
	" checksum text NOT NULL,"
	" applied_at timestamptz NOT NULL DEFAULT now(),"
	" execution_ms integer NOT NULL DEFAULT 0,"
	" applied_by text NOT NULL DEFAULT current_user)";

static bool
is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int
migrate_find_dir(const char *configured, char **out, struct ops_err *err)
{
	char exe[PATH_MAX], cand[PATH_MAX + 64];
	ssize_t n;

	*out = NULL;
	if (configured != NULL) {
		if (!is_dir(configured))
			return ops_fail(err, OPS_E_CONFIG, false,
					"APEXOPS_MIGRATIONS_DIR: '%s' is not a "
					"directory",
					configured);
		*out = xstrdup(configured);
		return 0;
	}
	if (is_dir("migrations/postgres")) {
		*out = realpath("migrations/postgres", NULL);
		if (*out != NULL)
			return 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash != NULL)
			*slash = '\0';
		snprintf(cand, sizeof(cand), "%s/../migrations/postgres", exe);
		if (!is_dir(cand))
			snprintf(cand, sizeof(cand),
				 "%s/../share/apexops/migrations/postgres",
				 exe);
		if (is_dir(cand)) {
			*out = realpath(cand, NULL);
			if (*out != NULL)
				return 0;
		}
	}
	return ops_fail(err, OPS_E_CONFIG, false,
			"cannot find the migration files: set "
			"APEXOPS_MIGRATIONS_DIR or run from the source tree");
}

static int
read_file(const char *path, struct buf *b, struct ops_err *err)
{
	char chunk[8192];
	size_t n;
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return ops_fail(err, OPS_E_IO, false, "cannot read '%s': %s",
				path, strerror(errno));
	b->max = MIG_MAX_FILE;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf_append(b, chunk, n) != 0) {
			fclose(f);
			return ops_fail(err, OPS_E_IO, false,
					"'%s' is larger than 16 MiB", path);
		}
	}
	fclose(f);
	return 0;
}

static void
sha256_hex(const char *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned int i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

/* "<8 digits>_<6 digits>_<name>.(up|down).sql"; *up set; id = base name */
static bool
parse_name(const char *file, char **id, bool *up)
{
	size_t len = strlen(file), base;

	if (len > 7 && strcmp(file + len - 7, ".up.sql") == 0) {
		base = len - 7;
		*up = true;
	} else if (len > 9 && strcmp(file + len - 9, ".down.sql") == 0) {
		base = len - 9;
		*up = false;
	} else {
		return false;
	}
	if (base < 17)
		return false;
	for (int i = 0; i < 15; i++) {
		if (i == 8) {
			if (file[i] != '_')
				return false;
		} else if (!isdigit((unsigned char)file[i])) {
			return false;
		}
	}
	if (file[15] != '_')
		return false;
	for (size_t i = 16; i < base; i++)
		if (!isalnum((unsigned char)file[i]) && file[i] != '_')
			return false;
	*id = xstrndup(file, base);
	return true;
}

static int
cmp_mig(const void *a, const void *b)
{
	return strcmp(((const struct migration *)a)->id,
		      ((const struct migration *)b)->id);
}

static struct migration *
find_or_add(struct migration_set *set, const char *id)
{
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->v[i].id, id) == 0)
			return &set->v[i];
	set->v = xrealloc(set->v, (set->n + 1) * sizeof(*set->v));
	memset(&set->v[set->n], 0, sizeof(set->v[0]));
	set->v[set->n].id = xstrdup(id);
	set->v[set->n].version = xstrndup(id, 15);
	set->v[set->n].name = xstrdup(id + 16);
	return &set->v[set->n++];
}

int
migrations_load(const char *dir, struct migration_set *set, struct ops_err *err)
{
	struct dirent *de;
	DIR *d;
	int r = 0;

	memset(set, 0, sizeof(*set));
	set->dir = xstrdup(dir);
	d = opendir(dir);
	if (d == NULL)
		return ops_fail(err, OPS_E_IO, false, "cannot open '%s': %s",
				dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		struct migration *m;
		char *id = NULL;
		bool up;

		if (de->d_name[0] == '.')
			continue;
		if (!parse_name(de->d_name, &id, &up)) {
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "unexpected file '%s' in '%s': expected "
				     "YYYYMMDD_HHMMSS_name.up.sql or "
				     ".down.sql",
				     de->d_name, dir);
			break;
		}
		m = find_or_add(set, id);
		free(id);
		if (up)
			m->up_path = xasprintf("%s/%s", dir, de->d_name);
		else
			m->down_path = xasprintf("%s/%s", dir, de->d_name);
	}
	closedir(d);
	for (size_t i = 0; r == 0 && i < set->n; i++) {
		struct migration *m = &set->v[i];
		struct buf b = BUF_INIT;

		if (m->up_path == NULL) {
			r = ops_fail(err, OPS_E_CONFIG, false,
				     "migration '%s' has a .down.sql but no "
				     ".up.sql",
				     m->id);
			break;
		}
		r = read_file(m->up_path, &b, err);
		if (r == 0)
			sha256_hex(buf_str(&b), b.len, m->checksum);
		buf_release(&b);
	}
	if (r != 0) {
		migrations_release(set);
		return r;
	}
	qsort(set->v, set->n, sizeof(set->v[0]), cmp_mig);
	return 0;
}

void
migrations_release(struct migration_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		free(set->v[i].version);
		free(set->v[i].name);
		free(set->v[i].id);
		free(set->v[i].up_path);
		free(set->v[i].down_path);
	}
	free(set->v);
	free(set->dir);
	memset(set, 0, sizeof(*set));
}

static const struct migration *
set_find(const struct migration_set *set, const char *id)
{
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->v[i].id, id) == 0)
			return &set->v[i];
	return NULL;
}

static int
cmp_row(const void *a, const void *b)
{
	return strcmp(((const struct mig_status_row *)a)->id,
		      ((const struct mig_status_row *)b)->id);
}

int
migrate_status(struct db *db, const struct migration_set *set,
	       struct mig_status *st, struct ops_err *err)
{
	struct db_res *res = NULL;
	bool exists = false;
	int r;

	memset(st, 0, sizeof(*st));
	/* read-only: a database never migrated has no ledger yet */
	r = db_relation_exists(db, "apexops.schema_migrations", &exists, err);
	if (r != 0)
		return r;
	r = db_query(db,
		     exists ? "SELECT version, checksum, to_char(applied_at AT "
			      "TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"') "
			      "FROM apexops.schema_migrations ORDER BY version"
			    : "SELECT NULL::text, NULL::text, NULL::text WHERE "
			      "false",
		     0, NULL, &res, err);
	if (r != 0)
		return r;
	st->v = xcalloc(set->n + (size_t)db_res_rows(res) + 1, sizeof(*st->v));
	for (int i = 0; i < db_res_rows(res); i++) {
		const char *id = db_res_get(res, i, 0);
		const struct migration *m = set_find(set, id);
		struct mig_status_row *row = &st->v[st->n++];

		row->id = xstrdup(id);
		row->applied_checksum = xstrdup(db_res_get(res, i, 1));
		row->applied_at = xstrdup(db_res_get(res, i, 2));
		row->m = m;
		if (m == NULL) {
			row->state = MIG_FILE_MISSING;
			st->missing++;
		} else if (strcmp(m->checksum, row->applied_checksum) != 0) {
			row->state = MIG_CHANGED;
			st->changed++;
			st->applied++;
		} else {
			row->state = MIG_APPLIED;
			st->applied++;
		}
	}
	db_res_free(res);
	for (size_t i = 0; i < set->n; i++) {
		bool found = false;

		for (size_t j = 0; j < st->n && !found; j++)
			found = strcmp(st->v[j].id, set->v[i].id) == 0;
		if (found)
			continue;
		st->v[st->n].id = xstrdup(set->v[i].id);
		st->v[st->n].state = MIG_PENDING;
		st->v[st->n].m = &set->v[i];
		st->n++;
		st->pending++;
	}
	qsort(st->v, st->n, sizeof(st->v[0]), cmp_row);
	return 0;
}

void
mig_status_release(struct mig_status *st)
{
	for (size_t i = 0; i < st->n; i++) {
		free(st->v[i].id);
		free(st->v[i].applied_at);
		free(st->v[i].applied_checksum);
	}
	free(st->v);
	memset(st, 0, sizeof(*st));
}

#define MIGRATE_LOCK "apexops.migrate"

/* Wait for the migration lock (30 minutes at most), saying who holds it;
 * a stop signal ends the wait. */
static int
take_lock(struct db *db, struct ops_err *err)
{
	int r = db_lock_wait(db, MIGRATE_LOCK, 30L * 60 * 1000, &ops_stop_flag,
			     err);

	if (r == OPS_E_CONFLICT)
		ops_err_prefix(err, "another migrator has run for 30 minutes");
	return r;
}

static void
drop_lock(struct db *db)
{
	struct ops_err e2 = OPS_ERR_INIT;

	(void)db_lock_release(db, MIGRATE_LOCK, &e2);
}

static int
refuse_changed(const struct mig_status *st, struct ops_err *err)
{
	for (size_t i = 0; i < st->n; i++) {
		if (st->v[i].state != MIG_CHANGED)
			continue;
		return ops_fail(err, OPS_E_REFUSED, false,
				"migration %s was applied with checksum "
				"%.12s but its file now has %.12s: applied "
				"migrations are frozen; restore '%s' or add "
				"a new migration",
				st->v[i].id, st->v[i].applied_checksum,
				st->v[i].m->checksum, st->v[i].m->up_path);
	}
	return 0;
}

/*
 * The database has migrations this binary does not know (a newer apexops
 * applied them, or their files were removed). Applying older pending
 * migrations around them could undo or clash with what the newer ones
 * did: refuse, naming the first. With nothing pending, up is a no-op and
 * the caller warns (mig_status.missing).
 */
static int
refuse_unknown(const struct mig_status *st, const struct migration_set *set,
	       const char *to, struct ops_err *err)
{
	const char *unknown = NULL;
	bool pending = false;

	for (size_t i = 0; i < st->n; i++) {
		const struct mig_status_row *row = &st->v[i];

		if (row->state == MIG_FILE_MISSING && unknown == NULL)
			unknown = row->id;
		if (row->state == MIG_PENDING &&
		    (to == NULL || strcmp(row->m->id, to) <= 0 ||
		     strcmp(row->m->version, to) <= 0))
			pending = true;
	}
	if (unknown == NULL || !pending)
		return 0;
	return ops_fail(err, OPS_E_REFUSED, false,
			"the database has migration %s, which this binary "
			"does not know (no file in '%s'): it is ahead of this "
			"binary; refusing to apply older migrations around it "
			"(use the apexops that applied %s)",
			unknown, set->dir, unknown);
}

static int
run_file(struct db *db, const struct migration *m, const char *path, bool up,
	 struct ops_err *err)
{
	struct buf sql = BUF_INIT;
	double t0 = clock_now();
	int r;

	r = read_file(path, &sql, err);
	if (r != 0)
		goto out;
	if (up) {
		char sum[65];

		/* the file may have changed since the set was loaded */
		sha256_hex(buf_str(&sql), sql.len, sum);
		if (strcmp(sum, m->checksum) != 0) {
			r = ops_fail(err, OPS_E_REFUSED, false,
				     "migration %s changed while migrating",
				     m->id);
			goto out;
		}
	}
	r = db_begin(db, err);
	if (r != 0)
		goto out;
	/*
	 * Unqualified names in migrations mean public: with the default
	 * search_path ("$user", public) a role named like the apexops schema
	 * would otherwise create the platform tables inside it.
	 */
	r = db_exec(db, "SET LOCAL search_path TO public", 0, NULL, NULL, err);
	if (r != 0)
		goto out;
	/*
	 * No statement timeout: a CREATE INDEX on a large adopted table
	 * takes as long as it takes, and the 30 s default would cancel it.
	 * lock_timeout stays, so DDL never queues long behind live traffic.
	 */
	r = db_exec(db, "SET LOCAL statement_timeout TO 0", 0, NULL, NULL, err);
	if (r != 0)
		goto out;
	r = db_exec_script(db, buf_str(&sql), err);
	if (r != 0 && ops_stop_twice && err != NULL &&
	    strcmp(err->sqlstate, "57014") == 0) {
		r = ops_fail(err, OPS_E_STOPPED, false,
			     "migration %s (%s) cancelled by a second stop "
			     "signal: rolled back, the ledger is unchanged",
			     m->id, up ? "up" : "down");
		goto out;
	}
	if (r != 0) {
		ops_err_prefix(err, "migration %s (%s) failed", m->id,
			       up ? "up" : "down");
		goto out;
	}
	if (up) {
		char ms[32];
		const char *params[4] = { m->id, m->name, m->checksum, ms };

		snprintf(ms, sizeof(ms), "%ld",
			 (long)((clock_now() - t0) * 1000));
		r = db_exec(db,
			    "INSERT INTO apexops.schema_migrations (version, "
			    "name, checksum, execution_ms) VALUES ($1, $2, $3, "
			    "$4::integer)",
			    4, params, NULL, err);
	} else {
		const char *params[1] = { m->id };

		r = db_exec(db,
			    "DELETE FROM apexops.schema_migrations WHERE "
			    "version = $1",
			    1, params, NULL, err);
	}
	if (r == 0)
		r = db_commit(db, err);
out:
	if (r != 0)
		db_rollback(db);
	buf_release(&sql);
	return r;
}

/* Apply (up) or revert one migration, reporting before and after. */
static int
step(struct db *db, const struct migration *m, bool up, bool dry_run,
     mig_report_fn report, void *arg, struct ops_err *err)
{
	double t0 = clock_now();
	int r;

	/* a first stop signal lets the running migration finish, then
	 * stops here; a second one cancels the running statement */
	if (!dry_run && ops_stopped(&ops_stop_flag))
		return ops_fail(err, OPS_E_STOPPED, false,
				"stopped by a signal before migration %s",
				m->id);
	if (report)
		report(arg, m, false, 0);
	if (dry_run)
		return 0;
	r = run_file(db, m, up ? m->up_path : m->down_path, up, err);
	if (r != 0)
		return r;
	log_info("migration %s version=%s seconds=%.3f",
		 up ? "applied" : "reverted", m->id, clock_now() - t0);
	if (report)
		report(arg, m, true, clock_now() - t0);
	return 0;
}

int
migrate_up(struct db *db, const struct migration_set *set, const char *to,
	   bool dry_run, mig_report_fn report, void *arg, size_t *applied,
	   struct ops_err *err)
{
	struct mig_status st;
	int r;

	*applied = 0;
	if (to != NULL && set_find(set, to) == NULL) {
		bool prefix = false;

		for (size_t i = 0; i < set->n && !prefix; i++)
			prefix = strcmp(set->v[i].version, to) == 0;
		if (!prefix)
			return ops_fail(err, OPS_E_INVALID, false,
					"--to: no migration '%s' in '%s'", to,
					set->dir);
	}
	/* the lock first: CREATE SCHEMA IF NOT EXISTS races otherwise */
	r = take_lock(db, err);
	if (r != 0)
		return r;
	/* a preview changes nothing: it reads a missing ledger as empty */
	r = dry_run ? 0 : db_exec_script(db, ledger_sql, err);
	if (r != 0) {
		drop_lock(db);
		return r;
	}
	/* read the ledger under the lock: another migrator may have run */
	r = migrate_status(db, set, &st, err);
	if (r == 0)
		r = refuse_changed(&st, err);
	if (r == 0)
		r = refuse_unknown(&st, set, to, err);
	for (size_t i = 0; r == 0 && i < st.n; i++) {
		const struct migration *m = st.v[i].m;

		if (st.v[i].state != MIG_PENDING)
			continue;
		if (to != NULL && strcmp(m->id, to) > 0 &&
		    strcmp(m->version, to) > 0)
			break;
		r = step(db, m, true, dry_run, report, arg, err);
		if (r == 0)
			(*applied)++;
	}
	mig_status_release(&st);
	drop_lock(db);
	return r;
}

int
migrate_down(struct db *db, const struct migration_set *set, size_t n,
	     bool dry_run, mig_report_fn report, void *arg, size_t *reverted,
	     struct ops_err *err)
{
	struct mig_status st;
	size_t todo = 0, k;
	int r;

	*reverted = 0;
	/* the lock first: CREATE SCHEMA IF NOT EXISTS races otherwise */
	r = take_lock(db, err);
	if (r != 0)
		return r;
	r = dry_run ? 0 : db_exec_script(db, ledger_sql, err);
	if (r != 0) {
		drop_lock(db);
		return r;
	}
	r = migrate_status(db, set, &st, err);
	if (r != 0)
		goto out;
	/* check every migration to revert before touching anything */
	for (size_t i = st.n; i-- > 0 && todo < n;) {
		const struct mig_status_row *row = &st.v[i];

		if (row->state == MIG_PENDING)
			continue;
		if (row->state == MIG_FILE_MISSING) {
			r = ops_fail(err, OPS_E_REFUSED, false,
				     "cannot revert %s: this binary does not "
				     "know it (no file in '%s'); the database "
				     "is ahead of this binary: revert it with "
				     "the apexops that applied it",
				     row->id, set->dir);
			goto out;
		}
		if (row->state == MIG_CHANGED) {
			r = ops_fail(err, OPS_E_REFUSED, false,
				     "cannot revert %s: its up file changed "
				     "since it was applied",
				     row->id);
			goto out;
		}
		if (row->m->down_path == NULL) {
			r = ops_fail(err, OPS_E_REFUSED, false,
				     "cannot revert %s: it has no .down.sql",
				     row->id);
			goto out;
		}
		todo++;
	}
	k = 0;
	for (size_t i = st.n; i-- > 0 && k < todo;) {
		const struct migration *m = st.v[i].m;

		if (st.v[i].state == MIG_PENDING)
			continue;
		k++;
		r = step(db, m, false, dry_run, report, arg, err);
		if (r != 0)
			break;
		(*reverted)++;
	}
out:
	mig_status_release(&st);
	drop_lock(db);
	return r;
}
