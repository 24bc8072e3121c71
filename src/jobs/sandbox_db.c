/*
 * Sandbox bootstrap, the database part: converge the fixture rows
 * (jobs/sandbox_fixtures.h) in one transaction, and the logins' bcrypt
 * hashes.
 */
#include "jobs/sandbox.h"

#include <crypt.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "db/db.h"

/* The cost of a $2a$/$2b$/$2y$ hash, or -1 when s is no bcrypt hash. */
static int
bcrypt_cost(const char *s)
{
	if (s == NULL || strlen(s) != 60 || s[0] != '$' || s[1] != '2' ||
	    (s[2] != 'a' && s[2] != 'b' && s[2] != 'y') || s[3] != '$' ||
	    s[4] < '0' || s[4] > '9' || s[5] < '0' || s[5] > '9' || s[6] != '$')
		return -1;
	return (s[4] - '0') * 10 + (s[5] - '0');
}

int
sandbox_password_hash(const char *password, const char *stored, char **out,
		      bool *changed, struct ops_err *err)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd;
	const char *h;
	int r;

	*out = NULL;
	*changed = false;
	cd = xcalloc(1, sizeof(*cd)); /* about 32 KiB: not on the stack */
	if (bcrypt_cost(stored) >= 10) {
		h = crypt_r(password, stored, cd);
		if (h != NULL && strlen(h) == strlen(stored) &&
		    CRYPTO_memcmp(h, stored, strlen(stored)) == 0) {
			*out = xstrdup(stored);
			r = 0;
			goto out;
		}
		memset(cd, 0, sizeof(*cd));
	}
	if (crypt_gensalt_rn("$2b$", 10, NULL, 0, setting, sizeof(setting)) ==
	    NULL) {
		r = ops_fail(err, OPS_E_IO, false,
			     "bcrypt: cannot make a salt (libxcrypt)");
		goto out;
	}
	h = crypt_r(password, setting, cd);
	if (h == NULL || bcrypt_cost(h) != 10) {
		r = ops_fail(err, OPS_E_IO, false,
			     "bcrypt: hashing failed (libxcrypt)");
		goto out;
	}
	*out = xstrdup(h);
	*changed = true;
	r = 0;
out:
	OPENSSL_cleanse(cd, sizeof(*cd)); /* it held the password */
	free(cd);
	return r;
}

#define SANDBOX_LOCK_NAME "apexops/sandbox-bootstrap"

int
sandbox_lock(struct db *db, struct ops_err *err)
{
	int64_t key = db_lock_key(SANDBOX_LOCK_NAME);
	bool got = false;
	int r;

	r = db_try_advisory_lock(db, key, &got, err);
	if (r != 0 || got)
		return r;
	log_info("sandbox waiting for another bootstrap to finish");
	r = db_advisory_lock(db, key, err);
	if (r != 0 && err != NULL && strcmp(err->sqlstate, "55P03") == 0)
		return ops_fail(err, OPS_E_CONFLICT, true,
				"another sandbox bootstrap holds the lock; "
				"run again when it has finished");
	return r;
}

void
sandbox_unlock(struct db *db)
{
	struct ops_err ignored = OPS_ERR_INIT;

	(void)db_advisory_unlock(db, db_lock_key(SANDBOX_LOCK_NAME), &ignored);
}

/* Run an upsert that RETURNs (xmax = 0) for the rows it wrote: no row is
 * unchanged, 't' created, 'f' updated. */
static int
upsert(struct db *db, const char *sql, int n, const char *const *params,
       struct sandbox_counts *c, struct ops_err *err)
{
	struct db_res *res = NULL;
	int r;

	r = db_query(db, sql, n, params, &res, err);
	if (r != 0)
		return r;
	if (db_res_rows(res) == 0)
		c->unchanged++;
	else if (strcmp(db_res_get(res, 0, 0), "t") == 0)
		c->created++;
	else
		c->updated++;
	db_res_free(res);
	return 0;
}

static int
do_inventory(struct db *db, struct sandbox_report *rep, struct ops_err *err)
{
	static const char pub_sql[] =
		"INSERT INTO publishers (id, company_name) VALUES ($1, $2)"
		" ON CONFLICT (id) DO NOTHING RETURNING true";
	static const char app_sql[] =
		"INSERT INTO apps (id, publisher_id, name, bundle_id, platform)"
		" VALUES ($1, $2, $3, $4, $5)"
		" ON CONFLICT (id) DO NOTHING RETURNING true";
	static const char pl_sql[] =
		"INSERT INTO placements (id, app_id, name, type)"
		" VALUES ($1, $2, $3, $4)"
		" ON CONFLICT (id) DO NOTHING RETURNING true";
	const char *pp[2] = { SANDBOX_PUBLISHER_ID, SANDBOX_PUBLISHER_NAME };
	int r;

	r = upsert(db, pub_sql, 2, pp, &rep->kind[SBX_PUBLISHER], err);
	if (r != 0)
		return ops_err_prefix(err, "publisher");
	for (int a = 0; a < SANDBOX_NAPPS; a++) {
		const struct sandbox_app *app = &sandbox_apps[a];
		const char *ap[5] = { app->id, SANDBOX_PUBLISHER_ID, app->name,
				      app->bundle_id, app->platform };

		r = upsert(db, app_sql, 5, ap, &rep->kind[SBX_APPS], err);
		if (r != 0)
			return ops_err_prefix(err, "app %s", app->id);
		for (int p = 0; p < SANDBOX_NPLACEMENTS; p++) {
			char name[96];
			const char *lp[4] = { app->placement_ids[p], app->id,
					      name,
					      sandbox_placement_types[p] };

			sandbox_placement_name(app, p, name, sizeof(name));
			r = upsert(db, pl_sql, 4, lp,
				   &rep->kind[SBX_PLACEMENTS], err);
			if (r != 0)
				return ops_err_prefix(err, "placement %s",
						      app->placement_ids[p]);
		}
	}
	return 0;
}

static int
do_users(struct db *db, const char *password, struct sandbox_report *rep,
	 struct ops_err *err)
{
	static const char other_sql[] =
		"SELECT id::text FROM users WHERE email = $1 AND id <> $2";
	static const char stored_sql[] =
		"SELECT password_hash FROM users WHERE id = $1 FOR UPDATE";
	static const char up_sql[] =
		"INSERT INTO users (id, publisher_id, email, password_hash, "
		"role) VALUES ($1, $2, $3, $4, $5)"
		" ON CONFLICT (id) DO UPDATE SET"
		" publisher_id = EXCLUDED.publisher_id,"
		" email = EXCLUDED.email,"
		" password_hash = EXCLUDED.password_hash,"
		" role = EXCLUDED.role"
		" WHERE (users.publisher_id, users.email, users.password_hash,"
		" users.role) IS DISTINCT FROM (EXCLUDED.publisher_id,"
		" EXCLUDED.email, EXCLUDED.password_hash, EXCLUDED.role)"
		" RETURNING (xmax = 0)";
	char *hash = NULL, *stored = NULL, *other = NULL;
	int r = 0;

	for (int i = 0; i < SANDBOX_NUSERS; i++) {
		const struct sandbox_user *u = &sandbox_users[i];
		const char *p2[2] = { u->email, u->id };
		const char *p1[1] = { u->id };
		bool changed = false;

		r = db_query_value(db, other_sql, 2, p2, &other, err);
		if (r != 0)
			goto out;
		if (other != NULL) {
			/* permanent until an operator acts: not a conflict
			 * a retry could resolve (exit 1, not 75) */
			r = ops_fail(err, OPS_E_REFUSED, false,
				     "user '%s' exists with id %s, not the "
				     "sandbox id %s; rename or remove that "
				     "user first",
				     u->email, other, u->id);
			goto out;
		}
		r = db_query_value(db, stored_sql, 1, p1, &stored, err);
		if (r != 0)
			goto out;
		r = sandbox_password_hash(password, stored, &hash, &changed,
					  err);
		if (r != 0)
			goto out;
		{
			const char *p5[5] = { u->id, SANDBOX_PUBLISHER_ID,
					      u->email, hash, u->role };

			r = upsert(db, up_sql, 5, p5, &rep->kind[SBX_USERS],
				   err);
		}
		if (r != 0) {
			ops_err_prefix(err, "user '%s'", u->email);
			goto out;
		}
		if (changed && stored != NULL)
			rep->passwords_rehashed++;
		free(hash);
		free(stored);
		hash = stored = NULL;
	}
out:
	free(hash);
	free(stored);
	free(other);
	return r;
}

static int
do_adapters(struct db *db, struct sandbox_report *rep, struct ops_err *err)
{
	static const char ad_sql[] =
		"INSERT INTO adapters (id, name, enabled) VALUES ($1, $2, true)"
		" ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,"
		" enabled = true"
		" WHERE (adapters.name, adapters.enabled)"
		" IS DISTINCT FROM (EXCLUDED.name, true)"
		" RETURNING (xmax = 0)";
	static const char cfg_sql[] =
		"INSERT INTO adapter_configs (id, publisher_id, adapter_id, "
		"config) VALUES ($1, $2, $3, $4::jsonb)"
		" ON CONFLICT (id) DO UPDATE SET"
		" publisher_id = EXCLUDED.publisher_id,"
		" adapter_id = EXCLUDED.adapter_id,"
		" config = EXCLUDED.config, updated_at = now()"
		" WHERE (adapter_configs.publisher_id,"
		" adapter_configs.adapter_id, adapter_configs.config)"
		" IS DISTINCT FROM (EXCLUDED.publisher_id,"
		" EXCLUDED.adapter_id, EXCLUDED.config)"
		" RETURNING (xmax = 0)";
	/* a second config of the same adapter for the sandbox would make
	 * which one applies a matter of luck */
	static const char dup_sql[] =
		"DELETE FROM adapter_configs WHERE publisher_id = $1"
		" AND adapter_id = $2 AND id <> $3";
	int r;

	for (int i = 0; i < SANDBOX_NADAPTERS; i++) {
		const struct sandbox_adapter *a = &sandbox_adapters[i];
		const char *p2[2] = { a->id, a->name };
		const char *p3[3] = { SANDBOX_PUBLISHER_ID, a->id,
				      a->config_id };
		long long gone = 0;
		char *cfg;

		r = upsert(db, ad_sql, 2, p2, &rep->kind[SBX_ADAPTERS], err);
		if (r != 0)
			return ops_err_prefix(err, "adapter %s", a->name);
		cfg = sandbox_adapter_config_json(a);
		{
			const char *p4[4] = { a->config_id,
					      SANDBOX_PUBLISHER_ID, a->id,
					      cfg };

			r = upsert(db, cfg_sql, 4, p4,
				   &rep->kind[SBX_ADAPTER_CONFIGS], err);
		}
		free(cfg);
		if (r != 0)
			return ops_err_prefix(err, "adapter config %s",
					      a->config_id);
		r = db_exec(db, dup_sql, 3, p3, &gone, err);
		if (r != 0)
			return ops_err_prefix(err, "adapter config %s",
					      a->config_id);
		rep->kind[SBX_ADAPTER_CONFIGS].removed += (int)gone;
	}
	return 0;
}

static int
do_waterfalls(struct db *db, struct sandbox_report *rep, struct ops_err *err)
{
	static const char list_sql[] =
		"SELECT p.id::text FROM placements p"
		" JOIN apps a ON a.id = p.app_id WHERE a.publisher_id = $1"
		" ORDER BY p.name, p.id";
	static const char stray_sql[] =
		"DELETE FROM waterfall_configs WHERE placement_id = $1"
		" AND id <> $2";
	static const char wf_sql[] =
		"INSERT INTO waterfall_configs (id, customer_id, placement_id,"
		" adapter_priorities, floor_price_cents, optimization_strategy,"
		" active) VALUES ($1, $2, $3, $4::jsonb, 50, 'static', true)"
		" ON CONFLICT (id) DO UPDATE SET"
		" customer_id = EXCLUDED.customer_id,"
		" placement_id = EXCLUDED.placement_id,"
		" adapter_priorities = EXCLUDED.adapter_priorities,"
		" floor_price_cents = EXCLUDED.floor_price_cents,"
		" optimization_strategy = EXCLUDED.optimization_strategy,"
		" active = EXCLUDED.active, updated_at = now()"
		" WHERE (waterfall_configs.customer_id,"
		" waterfall_configs.placement_id,"
		" waterfall_configs.adapter_priorities,"
		" waterfall_configs.floor_price_cents,"
		" waterfall_configs.optimization_strategy,"
		" waterfall_configs.active) IS DISTINCT FROM"
		" (EXCLUDED.customer_id, EXCLUDED.placement_id,"
		" EXCLUDED.adapter_priorities, EXCLUDED.floor_price_cents,"
		" EXCLUDED.optimization_strategy, EXCLUDED.active)"
		" RETURNING (xmax = 0)";
	const char *pp[1] = { SANDBOX_PUBLISHER_ID };
	struct db_res *res = NULL;
	char *prio = sandbox_waterfall_priorities_json();
	int r;

	r = db_query(db, list_sql, 1, pp, &res, err);
	if (r != 0)
		goto out;
	for (int i = 0; i < db_res_rows(res); i++) {
		const char *pl = db_res_get(res, i, 0);
		char id[37];
		long long gone = 0;

		r = sandbox_waterfall_id(pl, id);
		if (r != 0) {
			r = ops_fail(err, OPS_E_INVALID, false,
				     "cannot derive a waterfall id");
			goto out;
		}
		{
			const char *p2[2] = { pl, id };

			r = db_exec(db, stray_sql, 2, p2, &gone, err);
		}
		if (r != 0)
			goto fail;
		rep->kind[SBX_WATERFALLS].removed += (int)gone;
		{
			const char *p4[4] = { id, SANDBOX_OWNER_ID, pl, prio };

			r = upsert(db, wf_sql, 4, p4,
				   &rep->kind[SBX_WATERFALLS], err);
		}
		if (r != 0)
			goto fail;
		continue;
	fail:
		ops_err_prefix(err, "waterfall of placement %s", pl);
		goto out;
	}
	r = 0;
out:
	db_res_free(res);
	free(prio);
	return r;
}

int
sandbox_bootstrap_db(struct db *db, const char *password, bool dry_run,
		     struct sandbox_report *rep, struct ops_err *err)
{
	int r;

	memset(rep, 0, sizeof(*rep));
	if (password == NULL || *password == '\0')
		return ops_fail(err, OPS_E_CONFIG, false,
				"SANDBOX_USER_PASSWORD is empty; set a "
				"password of 1 to 72 bytes");
	if (strlen(password) > 72)
		return ops_fail(err, OPS_E_CONFIG, false,
				"SANDBOX_USER_PASSWORD is longer than 72 "
				"bytes, which bcrypt would silently cut; "
				"use 1 to 72 bytes");
	r = db_begin(db, err);
	if (r != 0)
		return r;
	r = do_inventory(db, rep, err);
	if (r == 0)
		r = do_users(db, password, rep, err);
	if (r == 0)
		r = do_adapters(db, rep, err);
	if (r == 0)
		r = do_waterfalls(db, rep, err);
	if (r != 0 || dry_run) {
		db_rollback(db);
		return r;
	}
	return db_commit(db, err);
}
