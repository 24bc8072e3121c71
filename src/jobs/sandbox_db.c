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

/*
 * Convergence. Each fixture row is written by one statement of this shape:
 *
 *   WITH old AS (SELECT <columns> FROM t WHERE id = $1),
 *   up AS (INSERT ... ON CONFLICT (id) DO UPDATE SET <columns>
 *          WHERE (<columns>) IS DISTINCT FROM (EXCLUDED.<columns>)
 *          RETURNING (xmax = 0))
 *   SELECT up.created, concat_ws(', ', <one "column old -> new" per
 *          column that differs>) FROM up LEFT JOIN old ON true
 *
 * so every column the fixture owns is compared with the fixture, a row
 * that matches is not written (no row comes back: unchanged), and an
 * updated row says which columns it restored (both CTEs see the snapshot
 * from before the write). The texts are built by format() from values,
 * never SQL.
 */
static int
converge(struct db *db, const char *sql, int n, const char *const *params,
	 enum sandbox_kind kind, const char *label, struct sandbox_report *rep,
	 struct ops_err *err)
{
	struct sandbox_counts *c = &rep->kind[kind];
	struct db_res *res = NULL;
	int r;

	r = db_query(db, sql, n, params, &res, err);
	if (r != 0)
		return ops_err_prefix(err, "%s", label);
	if (db_res_rows(res) == 0) {
		c->unchanged++;
	} else if (strcmp(db_res_get(res, 0, 0), "t") == 0) {
		c->created++;
		buf_addf(&rep->changes, "created %s\n", label);
	} else {
		c->updated++;
		buf_addf(&rep->changes, "restored %s: %s\n", label,
			 db_res_get(res, 0, 1) ? db_res_get(res, 0, 1) : "");
	}
	db_res_free(res);
	return 0;
}

/* "{a,b,...}": a uuid[] parameter of fixture ids (constants, not data). */
static char *
id_array(const char *const *ids, int n)
{
	struct buf b = BUF_INIT;

	buf_adds(&b, "{");
	for (int i = 0; i < n; i++)
		buf_addf(&b, "%s%s", i > 0 ? "," : "", ids[i]);
	buf_adds(&b, "}");
	return buf_detach(&b);
}

struct fixture_ids {
	char *apps, *placements, *users, *configs, *waterfalls;
};

static int
fixture_ids_init(struct fixture_ids *f, struct ops_err *err)
{
	const char *apps[SANDBOX_NAPPS], *pls[SANDBOX_NALL_PLACEMENTS];
	const char *users[SANDBOX_NUSERS], *cfgs[SANDBOX_NADAPTERS];
	char wf[SANDBOX_NALL_PLACEMENTS][37];
	const char *wfs[SANDBOX_NALL_PLACEMENTS];

	memset(f, 0, sizeof(*f));
	for (int a = 0; a < SANDBOX_NAPPS; a++) {
		apps[a] = sandbox_apps[a].id;
		for (int p = 0; p < SANDBOX_NPLACEMENTS; p++) {
			int k = a * SANDBOX_NPLACEMENTS + p;

			pls[k] = sandbox_apps[a].placement_ids[p];
			if (sandbox_waterfall_id(pls[k], wf[k]) != 0)
				return ops_fail(err, OPS_E_INVALID, false,
						"cannot derive a waterfall id");
			wfs[k] = wf[k];
		}
	}
	for (int u = 0; u < SANDBOX_NUSERS; u++)
		users[u] = sandbox_users[u].id;
	for (int i = 0; i < SANDBOX_NADAPTERS; i++)
		cfgs[i] = sandbox_adapters[i].config_id;
	f->apps = id_array(apps, SANDBOX_NAPPS);
	f->placements = id_array(pls, SANDBOX_NALL_PLACEMENTS);
	f->users = id_array(users, SANDBOX_NUSERS);
	f->configs = id_array(cfgs, SANDBOX_NADAPTERS);
	f->waterfalls = id_array(wfs, SANDBOX_NALL_PLACEMENTS);
	return 0;
}

static void
fixture_ids_release(struct fixture_ids *f)
{
	free(f->apps);
	free(f->placements);
	free(f->users);
	free(f->configs);
	free(f->waterfalls);
	memset(f, 0, sizeof(*f));
}

static int
do_inventory(struct db *db, struct sandbox_report *rep, struct ops_err *err)
{
	static const char pub_sql[] =
		"WITH old AS (SELECT company_name FROM publishers"
		"  WHERE id = $1),"
		" up AS (INSERT INTO publishers (id, company_name)"
		"  VALUES ($1, $2) ON CONFLICT (id) DO UPDATE"
		"  SET company_name = EXCLUDED.company_name"
		"  WHERE publishers.company_name IS DISTINCT FROM"
		"  EXCLUDED.company_name RETURNING (xmax = 0) AS created)"
		" SELECT up.created, concat_ws(', ',"
		"  CASE WHEN o.company_name IS DISTINCT FROM $2 THEN"
		"  format('company_name %L -> %L', o.company_name, $2) END)"
		" FROM up LEFT JOIN old o ON true";
	static const char app_sql[] =
		"WITH old AS (SELECT publisher_id, name, bundle_id, platform"
		"  FROM apps WHERE id = $1),"
		" up AS (INSERT INTO apps (id, publisher_id, name, bundle_id,"
		"  platform) VALUES ($1, $2, $3, $4, $5)"
		"  ON CONFLICT (id) DO UPDATE SET"
		"  publisher_id = EXCLUDED.publisher_id, name = EXCLUDED.name,"
		"  bundle_id = EXCLUDED.bundle_id,"
		"  platform = EXCLUDED.platform"
		"  WHERE (apps.publisher_id, apps.name, apps.bundle_id,"
		"  apps.platform) IS DISTINCT FROM (EXCLUDED.publisher_id,"
		"  EXCLUDED.name, EXCLUDED.bundle_id, EXCLUDED.platform)"
		"  RETURNING (xmax = 0) AS created)"
		" SELECT up.created, concat_ws(', ',"
		"  CASE WHEN o.publisher_id IS DISTINCT FROM $2::uuid THEN"
		"  format('publisher_id %s -> %s', o.publisher_id, $2) END,"
		"  CASE WHEN o.name IS DISTINCT FROM $3 THEN"
		"  format('name %L -> %L', o.name, $3) END,"
		"  CASE WHEN o.bundle_id IS DISTINCT FROM $4 THEN"
		"  format('bundle_id %L -> %L', o.bundle_id, $4) END,"
		"  CASE WHEN o.platform IS DISTINCT FROM $5 THEN"
		"  format('platform %L -> %L', o.platform, $5) END)"
		" FROM up LEFT JOIN old o ON true";
	static const char pl_sql[] =
		"WITH old AS (SELECT app_id, name, type, status, config"
		"  FROM placements WHERE id = $1),"
		" up AS (INSERT INTO placements (id, app_id, name, type,"
		"  status, config) VALUES ($1, $2, $3, $4, 'active', '{}')"
		"  ON CONFLICT (id) DO UPDATE SET app_id = EXCLUDED.app_id,"
		"  name = EXCLUDED.name, type = EXCLUDED.type,"
		"  status = EXCLUDED.status, config = EXCLUDED.config"
		"  WHERE (placements.app_id, placements.name, placements.type,"
		"  placements.status, placements.config) IS DISTINCT FROM"
		"  (EXCLUDED.app_id, EXCLUDED.name, EXCLUDED.type,"
		"  EXCLUDED.status, EXCLUDED.config)"
		"  RETURNING (xmax = 0) AS created)"
		" SELECT up.created, concat_ws(', ',"
		"  CASE WHEN o.app_id IS DISTINCT FROM $2::uuid THEN"
		"  format('app_id %s -> %s', o.app_id, $2) END,"
		"  CASE WHEN o.name IS DISTINCT FROM $3 THEN"
		"  format('name %L -> %L', o.name, $3) END,"
		"  CASE WHEN o.type IS DISTINCT FROM $4 THEN"
		"  format('type %L -> %L', o.type, $4) END,"
		"  CASE WHEN o.status IS DISTINCT FROM 'active' THEN"
		"  format('status %L -> %L', o.status, 'active') END,"
		"  CASE WHEN o.config IS DISTINCT FROM '{}'::jsonb THEN"
		"  format('config %s -> {}', o.config) END)"
		" FROM up LEFT JOIN old o ON true";
	const char *pp[2] = { SANDBOX_PUBLISHER_ID, SANDBOX_PUBLISHER_NAME };
	char label[160];
	int r;

	r = converge(db, pub_sql, 2, pp, SBX_PUBLISHER,
		     "publisher " SANDBOX_PUBLISHER_ID, rep, err);
	if (r != 0)
		return r;
	for (int a = 0; a < SANDBOX_NAPPS; a++) {
		const struct sandbox_app *app = &sandbox_apps[a];
		const char *ap[5] = { app->id, SANDBOX_PUBLISHER_ID, app->name,
				      app->bundle_id, app->platform };

		snprintf(label, sizeof(label), "app %s (%s)", app->id,
			 app->name);
		r = converge(db, app_sql, 5, ap, SBX_APPS, label, rep, err);
		if (r != 0)
			return r;
		for (int p = 0; p < SANDBOX_NPLACEMENTS; p++) {
			char name[96];
			const char *lp[4] = { app->placement_ids[p], app->id,
					      name,
					      sandbox_placement_types[p] };

			sandbox_placement_name(app, p, name, sizeof(name));
			snprintf(label, sizeof(label), "placement %s (%s)",
				 app->placement_ids[p], name);
			r = converge(db, pl_sql, 4, lp, SBX_PLACEMENTS, label,
				     rep, err);
			if (r != 0)
				return r;
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
	/* the hash is named, never shown */
	static const char up_sql[] =
		"WITH old AS (SELECT publisher_id, email, password_hash, role"
		"  FROM users WHERE id = $1),"
		" up AS (INSERT INTO users (id, publisher_id, email,"
		"  password_hash, role) VALUES ($1, $2, $3, $4, $5)"
		"  ON CONFLICT (id) DO UPDATE SET"
		"  publisher_id = EXCLUDED.publisher_id,"
		"  email = EXCLUDED.email,"
		"  password_hash = EXCLUDED.password_hash,"
		"  role = EXCLUDED.role"
		"  WHERE (users.publisher_id, users.email, users.password_hash,"
		"  users.role) IS DISTINCT FROM (EXCLUDED.publisher_id,"
		"  EXCLUDED.email, EXCLUDED.password_hash, EXCLUDED.role)"
		"  RETURNING (xmax = 0) AS created)"
		" SELECT up.created, concat_ws(', ',"
		"  CASE WHEN o.publisher_id IS DISTINCT FROM $2::uuid THEN"
		"  format('publisher_id %s -> %s', o.publisher_id, $2) END,"
		"  CASE WHEN o.email IS DISTINCT FROM $3 THEN"
		"  format('email %L -> %L', o.email, $3) END,"
		"  CASE WHEN o.password_hash IS DISTINCT FROM $4 THEN"
		"  'password_hash replaced' END,"
		"  CASE WHEN o.role IS DISTINCT FROM $5 THEN"
		"  format('role %L -> %L', o.role, $5) END)"
		" FROM up LEFT JOIN old o ON true";
	char *hash = NULL, *stored = NULL, *other = NULL;
	int r = 0;

	for (int i = 0; i < SANDBOX_NUSERS; i++) {
		const struct sandbox_user *u = &sandbox_users[i];
		const char *p2[2] = { u->email, u->id };
		const char *p1[1] = { u->id };
		bool changed = false;
		char label[160];

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
		snprintf(label, sizeof(label), "user %s (%s)", u->id, u->email);
		{
			const char *p5[5] = { u->id, SANDBOX_PUBLISHER_ID,
					      u->email, hash, u->role };

			r = converge(db, up_sql, 5, p5, SBX_USERS, label, rep,
				     err);
		}
		if (r != 0)
			goto out;
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

/* DELETE ... RETURNING a label per row: count into kind's removed and
 * report each. */
static int
remove_rows(struct db *db, const char *sql, int n, const char *const *params,
	    enum sandbox_kind kind, const char *why, struct sandbox_report *rep,
	    struct ops_err *err)
{
	struct db_res *res = NULL;
	int r;

	r = db_query(db, sql, n, params, &res, err);
	if (r != 0)
		return r;
	for (int i = 0; i < db_res_rows(res); i++) {
		rep->kind[kind].removed++;
		buf_addf(&rep->changes, "removed %s (%s)\n",
			 db_res_get(res, i, 0), why);
	}
	db_res_free(res);
	return 0;
}

static int
do_adapters(struct db *db, struct sandbox_report *rep, struct ops_err *err)
{
	static const char ad_sql[] =
		"WITH old AS (SELECT name, enabled FROM adapters"
		"  WHERE id = $1),"
		" up AS (INSERT INTO adapters (id, name, enabled)"
		"  VALUES ($1, $2, true) ON CONFLICT (id) DO UPDATE"
		"  SET name = EXCLUDED.name, enabled = true"
		"  WHERE (adapters.name, adapters.enabled)"
		"  IS DISTINCT FROM (EXCLUDED.name, true)"
		"  RETURNING (xmax = 0) AS created)"
		" SELECT up.created, concat_ws(', ',"
		"  CASE WHEN o.name IS DISTINCT FROM $2 THEN"
		"  format('name %L -> %L', o.name, $2) END,"
		"  CASE WHEN o.enabled IS DISTINCT FROM true THEN"
		"  format('enabled %s -> true', o.enabled) END)"
		" FROM up LEFT JOIN old o ON true";
	static const char cfg_sql[] =
		"WITH old AS (SELECT publisher_id, adapter_id, config"
		"  FROM adapter_configs WHERE id = $1),"
		" up AS (INSERT INTO adapter_configs (id, publisher_id,"
		"  adapter_id, config) VALUES ($1, $2, $3, $4::jsonb)"
		"  ON CONFLICT (id) DO UPDATE SET"
		"  publisher_id = EXCLUDED.publisher_id,"
		"  adapter_id = EXCLUDED.adapter_id,"
		"  config = EXCLUDED.config, updated_at = now()"
		"  WHERE (adapter_configs.publisher_id,"
		"  adapter_configs.adapter_id, adapter_configs.config)"
		"  IS DISTINCT FROM (EXCLUDED.publisher_id,"
		"  EXCLUDED.adapter_id, EXCLUDED.config)"
		"  RETURNING (xmax = 0) AS created)"
		" SELECT up.created, concat_ws(', ',"
		"  CASE WHEN o.publisher_id IS DISTINCT FROM $2::uuid THEN"
		"  format('publisher_id %s -> %s', o.publisher_id, $2) END,"
		"  CASE WHEN o.adapter_id IS DISTINCT FROM $3::uuid THEN"
		"  format('adapter_id %s -> %s', o.adapter_id, $3) END,"
		"  CASE WHEN o.config IS DISTINCT FROM $4::jsonb THEN"
		"  format('config %s -> %s', o.config, $4::jsonb) END)"
		" FROM up LEFT JOIN old o ON true";
	/* a second config of the same adapter for the sandbox would make
	 * which one applies a matter of luck: part of converging this one */
	static const char dup_sql[] =
		"DELETE FROM adapter_configs WHERE publisher_id = $1"
		" AND adapter_id = $2 AND id <> $3"
		" RETURNING 'adapter config ' || id";
	char label[160];
	int r;

	for (int i = 0; i < SANDBOX_NADAPTERS; i++) {
		const struct sandbox_adapter *a = &sandbox_adapters[i];
		const char *p2[2] = { a->id, a->name };
		const char *p3[3] = { SANDBOX_PUBLISHER_ID, a->id,
				      a->config_id };
		char *cfg;

		snprintf(label, sizeof(label), "adapter %s (%s)", a->id,
			 a->name);
		r = converge(db, ad_sql, 2, p2, SBX_ADAPTERS, label, rep, err);
		if (r != 0)
			return r;
		cfg = sandbox_adapter_config_json(a);
		snprintf(label, sizeof(label), "adapter config %s (%s)",
			 a->config_id, a->name);
		{
			const char *p4[4] = { a->config_id,
					      SANDBOX_PUBLISHER_ID, a->id,
					      cfg };

			r = converge(db, cfg_sql, 4, p4, SBX_ADAPTER_CONFIGS,
				     label, rep, err);
		}
		free(cfg);
		if (r != 0)
			return r;
		r = remove_rows(db, dup_sql, 3, p3, SBX_ADAPTER_CONFIGS,
				"a second config of a fixture adapter", rep,
				err);
		if (r != 0)
			return ops_err_prefix(err, "adapter config %s",
					      a->config_id);
	}
	return 0;
}

static int
do_waterfalls(struct db *db, struct sandbox_report *rep, struct ops_err *err)
{
	/* another waterfall on a fixture placement would compete with the
	 * fixture's: part of converging it */
	static const char stray_sql[] =
		"DELETE FROM waterfall_configs WHERE placement_id = $1"
		" AND id <> $2 RETURNING 'waterfall ' || id";
	static const char wf_sql[] =
		"WITH old AS (SELECT customer_id, placement_id,"
		"  adapter_priorities, floor_price_cents,"
		"  optimization_strategy, active"
		"  FROM waterfall_configs WHERE id = $1),"
		" up AS (INSERT INTO waterfall_configs (id, customer_id,"
		"  placement_id, adapter_priorities, floor_price_cents,"
		"  optimization_strategy, active)"
		"  VALUES ($1, $2, $3, $4::jsonb, $5::int, $6, true)"
		"  ON CONFLICT (id) DO UPDATE SET"
		"  customer_id = EXCLUDED.customer_id,"
		"  placement_id = EXCLUDED.placement_id,"
		"  adapter_priorities = EXCLUDED.adapter_priorities,"
		"  floor_price_cents = EXCLUDED.floor_price_cents,"
		"  optimization_strategy = EXCLUDED.optimization_strategy,"
		"  active = EXCLUDED.active, updated_at = now()"
		"  WHERE (waterfall_configs.customer_id,"
		"  waterfall_configs.placement_id,"
		"  waterfall_configs.adapter_priorities,"
		"  waterfall_configs.floor_price_cents,"
		"  waterfall_configs.optimization_strategy,"
		"  waterfall_configs.active) IS DISTINCT FROM"
		"  (EXCLUDED.customer_id, EXCLUDED.placement_id,"
		"  EXCLUDED.adapter_priorities, EXCLUDED.floor_price_cents,"
		"  EXCLUDED.optimization_strategy, EXCLUDED.active)"
		"  RETURNING (xmax = 0) AS created)"
		" SELECT up.created, concat_ws(', ',"
		"  CASE WHEN o.customer_id IS DISTINCT FROM $2::uuid THEN"
		"  format('customer_id %s -> %s', o.customer_id, $2) END,"
		"  CASE WHEN o.placement_id IS DISTINCT FROM $3::uuid THEN"
		"  format('placement_id %s -> %s', o.placement_id, $3) END,"
		"  CASE WHEN o.adapter_priorities IS DISTINCT FROM $4::jsonb"
		"  THEN format('adapter_priorities %s -> %s',"
		"  o.adapter_priorities, $4::jsonb) END,"
		"  CASE WHEN o.floor_price_cents IS DISTINCT FROM $5::int THEN"
		"  format('floor_price_cents %s -> %s', o.floor_price_cents,"
		"  $5) END,"
		"  CASE WHEN o.optimization_strategy IS DISTINCT FROM $6 THEN"
		"  format('optimization_strategy %L -> %L',"
		"  o.optimization_strategy, $6) END,"
		"  CASE WHEN o.active IS DISTINCT FROM true THEN"
		"  format('active %s -> true', o.active) END)"
		" FROM up LEFT JOIN old o ON true";
	char *prio = sandbox_waterfall_priorities_json();
	char floor_s[16];
	int r = 0;

	snprintf(floor_s, sizeof(floor_s), "%d", SANDBOX_WATERFALL_FLOOR_CENTS);
	for (int a = 0; a < SANDBOX_NAPPS && r == 0; a++) {
		for (int p = 0; p < SANDBOX_NPLACEMENTS && r == 0; p++) {
			const char *pl = sandbox_apps[a].placement_ids[p];
			char id[37], label[160];

			r = sandbox_waterfall_id(pl, id);
			if (r != 0) {
				r = ops_fail(err, OPS_E_INVALID, false,
					     "cannot derive a waterfall id");
				break;
			}
			{
				const char *p2[2] = { pl, id };

				r = remove_rows(db, stray_sql, 2, p2,
						SBX_WATERFALLS,
						"a second waterfall of a "
						"fixture placement",
						rep, err);
			}
			if (r != 0) {
				ops_err_prefix(err, "waterfall of placement %s",
					       pl);
				break;
			}
			snprintf(label, sizeof(label),
				 "waterfall %s (placement %s)", id, pl);
			{
				const char *p6[6] = {
					id,	 SANDBOX_OWNER_ID,
					pl,	 prio,
					floor_s, SANDBOX_WATERFALL_STRATEGY
				};

				r = converge(db, wf_sql, 6, p6, SBX_WATERFALLS,
					     label, rep, err);
			}
		}
	}
	free(prio);
	return r;
}

/*
 * Rows owned by the sandbox publisher that are not fixtures: listed (and
 * counted as extra) always, removed only with prune. Order matters for
 * the removal: waterfalls of extra placements, the placements with their
 * demo revenue, apps, adapter configs, logins.
 */
static int
do_extras(struct db *db, const struct fixture_ids *f, bool prune,
	  struct sandbox_report *rep, struct ops_err *err)
{
	static const struct {
		enum sandbox_kind kind;
		const char *list; /* $1 publisher, $2 fixture ids */
		const char *del;
	} steps[] = {
		{ SBX_WATERFALLS,
		  "SELECT 'waterfall ' || w.id || ' (placement '"
		  " || w.placement_id || ')' FROM waterfall_configs w"
		  " JOIN placements p ON p.id = w.placement_id"
		  " JOIN apps a ON a.id = p.app_id WHERE a.publisher_id = $1"
		  " AND w.id <> ALL ($2::uuid[]) ORDER BY w.id",
		  "DELETE FROM waterfall_configs w USING placements p, apps a"
		  " WHERE p.id = w.placement_id AND a.id = p.app_id"
		  " AND a.publisher_id = $1 AND w.id <> ALL ($2::uuid[])" },
		{ SBX_PLACEMENTS,
		  "SELECT 'placement ' || p.id || ' (' || p.name || ')'"
		  " FROM placements p JOIN apps a ON a.id = p.app_id"
		  " WHERE a.publisher_id = $1 AND p.id <> ALL ($2::uuid[])"
		  " ORDER BY p.id",
		  /* the demo revenue of the placement goes with it */
		  "WITH gone AS (SELECT p.id FROM placements p"
		  " JOIN apps a ON a.id = p.app_id WHERE a.publisher_id = $1"
		  " AND p.id <> ALL ($2::uuid[])),"
		  " rev AS (DELETE FROM revenue_events"
		  " WHERE placement_id IN (SELECT id FROM gone))"
		  " DELETE FROM placements WHERE id IN (SELECT id FROM gone)" },
		{ SBX_APPS,
		  "SELECT 'app ' || id || ' (' || name || ')' FROM apps"
		  " WHERE publisher_id = $1 AND id <> ALL ($2::uuid[])"
		  " ORDER BY id",
		  "DELETE FROM apps WHERE publisher_id = $1"
		  " AND id <> ALL ($2::uuid[])" },
		{ SBX_ADAPTER_CONFIGS,
		  "SELECT 'adapter config ' || id || ' (adapter '"
		  " || adapter_id || ')' FROM adapter_configs"
		  " WHERE publisher_id = $1 AND id <> ALL ($2::uuid[])"
		  " ORDER BY id",
		  "DELETE FROM adapter_configs WHERE publisher_id = $1"
		  " AND id <> ALL ($2::uuid[])" },
		{ SBX_USERS,
		  "SELECT 'user ' || id || ' (' || email || ')' FROM users"
		  " WHERE publisher_id = $1 AND id <> ALL ($2::uuid[])"
		  " ORDER BY id",
		  "DELETE FROM users WHERE publisher_id = $1"
		  " AND id <> ALL ($2::uuid[])" },
	};
	int r = 0;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		enum sandbox_kind k = steps[i].kind;
		const char *ids = k == SBX_WATERFALLS	     ? f->waterfalls
				  : k == SBX_PLACEMENTS	     ? f->placements
				  : k == SBX_APPS	     ? f->apps
				  : k == SBX_ADAPTER_CONFIGS ? f->configs
							     : f->users;
		const char *p[2] = { SANDBOX_PUBLISHER_ID, ids };
		struct db_res *res = NULL;
		int found;

		r = db_query(db, steps[i].list, 2, p, &res, err);
		if (r != 0)
			break;
		found = db_res_rows(res);
		for (int j = 0; j < found; j++)
			buf_addf(&rep->changes, "%s %s (not a fixture)\n",
				 prune ? "removed" : "extra, left",
				 db_res_get(res, j, 0));
		db_res_free(res);
		if (!prune) {
			rep->kind[k].extra += found;
		} else if (found > 0) {
			long long n = 0;

			r = db_exec(db, steps[i].del, 2, p, &n, err);
			if (r != 0) {
				ops_err_prefix(err, "removing extra %s",
					       sandbox_kind_names[k]);
				break;
			}
			rep->kind[k].removed += (int)n;
		}
	}
	return r;
}

void
sandbox_report_release(struct sandbox_report *rep)
{
	if (rep != NULL)
		buf_release(&rep->changes);
}

int
sandbox_bootstrap_db(struct db *db, const struct sandbox_db_opts *o,
		     struct sandbox_report *rep, struct ops_err *err)
{
	struct fixture_ids f;
	const char *password = o->password;
	int r;

	memset(rep, 0, sizeof(*rep));
	memset(&f, 0, sizeof(f));
	if (password == NULL || *password == '\0')
		return ops_fail(err, OPS_E_CONFIG, false,
				"SANDBOX_USER_PASSWORD is empty; set a "
				"password of 1 to 72 bytes");
	if (strlen(password) > 72)
		return ops_fail(err, OPS_E_CONFIG, false,
				"SANDBOX_USER_PASSWORD is longer than 72 "
				"bytes, which bcrypt would silently cut; "
				"use 1 to 72 bytes");
	r = fixture_ids_init(&f, err);
	if (r != 0)
		return r;
	r = db_begin(db, err);
	if (r != 0)
		goto out;
	r = do_inventory(db, rep, err);
	if (r == 0)
		r = do_users(db, password, rep, err);
	if (r == 0)
		r = do_adapters(db, rep, err);
	if (r == 0)
		r = do_waterfalls(db, rep, err);
	if (r == 0)
		r = do_extras(db, &f, o->prune, rep, err);
	if (r != 0 || o->dry_run)
		db_rollback(db);
	else
		r = db_commit(db, err);
out:
	fixture_ids_release(&f);
	return r;
}
