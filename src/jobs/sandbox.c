#include "jobs/sandbox.h"

#include <crypt.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "stripe/stripe.h"

/* §4.2: apps and their placements in the order Interstitial 01,
 * Interstitial 02, Rewarded 01, Rewarded 02, Banner 01. */
const struct sandbox_app sandbox_apps[SANDBOX_NAPPS] = {
	{ "7bcfc807-1834-4d69-a1ca-27e258f4ce75",
	  "Apex Sandbox Android",
	  "com.apex.sandbox.android",
	  "android",
	  "Android",
	  { "edcbe420-5e96-4c0f-b7ee-e5a10eb11db3",
	    "92fe3cb3-8028-4a65-aacf-c9916b2efc29",
	    "b8372490-f300-49e8-b7c2-a77fc04f85e9",
	    "631c2a8a-94b8-4448-8d56-a7cddb280ea5",
	    "47998e9f-dfbe-4ba9-922c-3001f106722e" } },
	{ "6b8213e3-b331-40b8-a32f-2bac1678e737",
	  "Apex Sandbox iOS",
	  "com.apex.sandbox.ios",
	  "ios",
	  "iOS",
	  { "26c8907d-7635-4a13-a94b-6c3b12af1779",
	    "3b94ce00-15d2-4b96-9d1e-b096cd12cdb9",
	    "ca610a0c-8607-4a38-8a21-9cbfd3018b7b",
	    "83d155c1-d3ab-413a-8d6f-bb282d4a058b",
	    "bdf98482-e3c8-4792-bc06-7e98f7184d08" } },
	{ "26c1c1eb-9fe1-4d3d-9218-6a2d863d57ac",
	  "Apex Sandbox Unity",
	  "com.apex.sandbox.unity",
	  "unity",
	  "Unity",
	  { "3d1094ab-a85b-4737-a749-d8a153a0f026",
	    "7f7f250e-48c0-4a89-9015-5c6cea325b3e",
	    "074b2dc7-3173-4da0-aba0-250f3f129df1",
	    "e159286d-7f60-437c-9f58-83aebdcdbf13",
	    "f6e7aa9b-09c5-4644-bf56-f8ab781ac62d" } },
	{ "3a6dac72-aa81-44af-909c-5b48ab9cbe67",
	  "Apex Sandbox Android TV/CTV",
	  "com.apex.sandbox.androidtv",
	  "android_tv",
	  "Android TV",
	  { "28f1d412-71d4-486b-93c7-e3d7101f2b2c",
	    "15d8efc7-0e45-4eb8-9eec-47eedb8424bb",
	    "916aa3f1-b875-45f9-b672-bb6461ceadf4",
	    "430810ca-0549-4755-ae74-cd0df596cfee",
	    "1a5c9eca-b8b7-4b9a-b8a7-2ec5942d5645" } },
	{ "f79cd436-751a-4e26-b2cc-298d1029f794",
	  "Apex Sandbox tvOS",
	  "com.apex.sandbox.tvos",
	  "tvos",
	  "tvOS",
	  { "8a94e8fd-8995-4b17-b308-38f1104d1e84",
	    "d8f4ec50-cde4-47b7-a139-ed02bd1f88d8",
	    "090ce110-b9dc-4722-93dd-8bd3fcfdb2e0",
	    "24ed4867-b16e-4a4b-b8ac-43dd05788a81",
	    "f7defcdc-33e5-41f3-8577-2bceb73015d3" } },
};

const char *const sandbox_placement_types[SANDBOX_NPLACEMENTS] = {
	"interstitial", "interstitial", "rewarded", "rewarded", "banner"
};
const char *const sandbox_placement_labels[SANDBOX_NPLACEMENTS] = {
	"Interstitial 01", "Interstitial 02", "Rewarded 01", "Rewarded 02",
	"Banner 01"
};

/* §4.1 */
const struct sandbox_user sandbox_users[SANDBOX_NUSERS] = {
	{ SANDBOX_OWNER_ID, "owner@apex-sandbox.test", "owner" },
	{ "6348ae56-dcd1-474a-9563-f6cf5f96395e", "dev@apex-sandbox.test",
	  "developer" },
	{ "1f13d605-e292-4a31-9532-5eeace27d601", "finance@apex-sandbox.test",
	  "finance" },
};

const struct sandbox_adapter sandbox_adapters[SANDBOX_NADAPTERS] = {
	{ "FakeNetworkA", "a7f66258-6c5c-462f-9ff4-126886c1d7d3",
	  "038fec38-d1c4-4bc0-8745-33d3289b2839", "always_fill", 180, "12.5",
	  "1" },
	{ "FakeNetworkB", "ca13eef0-bdbd-4475-823f-93c5b2932d6d",
	  "6f4b66b9-c7a1-42df-92b7-c3b5808140ea", "random_fill", 450, "8.1",
	  "0.55" },
	{ "FakeNetworkC", "dc801f21-749c-46ae-ad33-ded15da2f5f0",
	  "69ac363f-73cb-46b1-afc3-a9db2d2b1f99", "slow_timeout", 1500, "5.3",
	  "0.35" },
};

const char *const sandbox_kind_names[SBX_NKINDS] = {
	"publisher",	   "apps",	 "placements", "users", "adapters",
	"adapter_configs", "waterfalls",
};

const char *const sandbox_stripe_step_names[SBX_ST_NSTEPS] = {
	"customer",
	"card (tok_visa)",
	"ach (btok_us_verified)",
	"sepa (btok_sepa_debit)",
	"default source",
};

int
sandbox_check_environment(const struct ops_config *cfg, bool force,
			  const char *what, struct ops_err *err)
{
	const char *var = config_production_var(cfg);
	const char *val;

	if (force || var == NULL)
		return 0;
	val = strcmp(var, "APP_ENV") == 0 ? cfg->app_env : cfg->node_env;
	return ops_fail(err, OPS_E_CONFIG, false,
			"refusing to run: %s is '%s', a production "
			"environment, and %s; pass --force to run anyway",
			var, val, what);
}

int
sandbox_report_changes(const struct sandbox_report *rep)
{
	int n = 0;

	for (int k = 0; k < SBX_NKINDS; k++)
		n += rep->kind[k].created + rep->kind[k].updated +
		     rep->kind[k].removed;
	return n;
}

/* ---- ids and passwords ---- */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
sandbox_uuid5(const char *ns, const char *name, char out[37])
{
	unsigned char bytes[16], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx;
	int nb = 0, ok;

	for (const char *p = ns; *p != '\0'; p++) {
		int hi, lo;

		if (*p == '-')
			continue;
		hi = hexval(p[0]);
		lo = p[1] != '\0' ? hexval(p[1]) : -1;
		if (hi < 0 || lo < 0 || nb == 16)
			return OPS_E_INVALID;
		bytes[nb++] = (unsigned char)(hi << 4 | lo);
		p++;
	}
	if (nb != 16)
		return OPS_E_INVALID;
	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
	     EVP_DigestUpdate(ctx, bytes, 16) == 1 &&
	     EVP_DigestUpdate(ctx, name, strlen(name)) == 1 &&
	     EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= 16;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return OPS_E_INVALID;
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x50); /* version 5 */
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8],
		 md[9], md[10], md[11], md[12], md[13], md[14], md[15]);
	return 0;
}

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

/* ---- the database part ---- */

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

			snprintf(name, sizeof(name), "%s %s",
				 app->platform_word,
				 sandbox_placement_labels[p]);
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
		char cfg[256];

		r = upsert(db, ad_sql, 2, p2, &rep->kind[SBX_ADAPTERS], err);
		if (r != 0)
			return ops_err_prefix(err, "adapter %s", a->name);
		/* keys in the original's order */
		snprintf(cfg, sizeof(cfg),
			 "{\"behavior\": \"%s\", \"fillRate\": %s, "
			 "\"timeoutMs\": %d, \"targetEcpm\": %s}",
			 a->behavior, a->fill_rate, a->timeout_ms, a->ecpm);
		{
			const char *p4[4] = { a->config_id,
					      SANDBOX_PUBLISHER_ID, a->id,
					      cfg };

			r = upsert(db, cfg_sql, 4, p4,
				   &rep->kind[SBX_ADAPTER_CONFIGS], err);
		}
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

static char *
waterfall_priorities(void)
{
	json_t *arr = json_array();
	char *s;

	for (int i = 0; i < SANDBOX_NADAPTERS; i++) {
		const struct sandbox_adapter *a = &sandbox_adapters[i];

		json_array_append_new(
			arr, json_pack("{s:s, s:i, s:i, s:s}", "adapter_id",
				       a->id, "priority", i + 1, "timeout_ms",
				       a->timeout_ms, "notes", a->behavior));
	}
	s = json_dumps(arr, JSON_PRESERVE_ORDER | JSON_COMPACT);
	json_decref(arr);
	if (s == NULL)
		abort(); /* out of memory */
	return s;
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
	char *prio = waterfall_priorities();
	int r;

	r = db_query(db, list_sql, 1, pp, &res, err);
	if (r != 0)
		goto out;
	for (int i = 0; i < db_res_rows(res); i++) {
		const char *pl = db_res_get(res, i, 0);
		char name[64], id[37];
		long long gone = 0;

		snprintf(name, sizeof(name), "waterfall:%s", pl);
		r = sandbox_uuid5(SANDBOX_PUBLISHER_ID, name, id);
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

/* ---- Stripe ---- */

static const char *
jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static void
set_id(struct sandbox_stripe_item *it, const char *id)
{
	snprintf(it->id, sizeof(it->id), "%s", id ? id : "");
}

/* Stripe's 4xx answers about the request itself (not auth, not rate
 * limit) are refusals; the rest are failures. */
static bool
is_refusal(const struct stripe_error *se)
{
	long s = se->http_status;

	return s >= 400 && s < 500 && s != 401 && s != 403 && s != 409 &&
	       s != 429;
}

static void
record_failure(struct sandbox_stripe_item *it, const struct stripe_error *se,
	       const struct ops_err *e, bool refusal)
{
	it->outcome = refusal ? SBX_OUT_REFUSED : SBX_OUT_FAILED;
	if (refusal)
		snprintf(it->detail, sizeof(it->detail),
			 "%s (%s%s%s, HTTP %ld)", se->message, se->type,
			 se->code[0] ? " " : "", se->code, se->http_status);
	else
		snprintf(it->detail, sizeof(it->detail), "%s", e->msg);
}

/* GET the customer with its sources expanded; NULL *out when it does not
 * exist or was deleted. */
static int
get_customer(struct stripe *st, const char *cus, json_t **out,
	     struct ops_err *err)
{
	struct stripe_error se;
	json_t *params, *doc = NULL;
	char path[320];
	int r;

	*out = NULL;
	snprintf(path, sizeof(path), "/v1/customers/%s", cus);
	params = json_pack("{s:[s]}", "expand", "sources");
	r = stripe_call(st, "GET", path, params, NULL, &doc, NULL, &se, err);
	json_decref(params);
	if (r == OPS_E_NOTFOUND && strcmp(se.code, "resource_missing") == 0)
		return 0;
	if (r != 0)
		return r;
	if (json_is_true(json_object_get(doc, "deleted"))) {
		json_decref(doc);
		return 0;
	}
	*out = doc;
	return 0;
}

/*
 * Find a source of the customer: object "card" or "bank_account", or a
 * Source object ("source") of the given type (sepa_debit). Uses the list
 * endpoint GET /v1/customers/{id}/sources; a peer without that endpoint
 * (404 with no error code, as stripe-stateful-mock answers) falls back on
 * the customer's expanded sources.
 */
static int
find_source(struct stripe *st, const char *cus, const json_t *customer,
	    const char *object, const char *type, char *id, size_t idlen,
	    struct ops_err *err)
{
	struct stripe_error se;
	json_t *params, *doc = NULL, *item;
	const json_t *data;
	char path[320];
	size_t i;
	int r;

	id[0] = '\0';
	snprintf(path, sizeof(path), "/v1/customers/%s/sources", cus);
	params = json_pack("{s:s, s:i}", "object", object, "limit",
			   type != NULL ? 100 : 1);
	r = stripe_call(st, "GET", path, params, NULL, &doc, NULL, &se, err);
	json_decref(params);
	if (r == OPS_E_NOTFOUND && se.code[0] == '\0') {
		log_debug("stripe sources list missing on this peer; using the "
			  "customer's sources");
		ops_err_clear(err);
		data = json_object_get(json_object_get(customer, "sources"),
				       "data");
		r = 0;
	} else if (r != 0) {
		return r;
	} else {
		data = json_object_get(doc, "data");
	}
	json_array_foreach(data, i, item)
	{
		const char *obj = jstr(item, "object");

		if (obj == NULL || strcmp(obj, object) != 0)
			continue;
		if (type != NULL && (jstr(item, "type") == NULL ||
				     strcmp(jstr(item, "type"), type) != 0))
			continue;
		snprintf(id, idlen, "%s",
			 jstr(item, "id") ? jstr(item, "id") : "");
		break;
	}
	json_decref(doc);
	return r;
}

static int
owner_row(struct db *db, char **email, char **cus, struct ops_err *err)
{
	static const char sql[] = "SELECT email, stripe_customer_id FROM users"
				  " WHERE id = $1";
	const char *p[1] = { SANDBOX_OWNER_ID };
	struct db_res *res = NULL;
	int r;

	*email = *cus = NULL;
	r = db_query(db, sql, 1, p, &res, err);
	if (r != 0)
		return r;
	if (db_res_rows(res) == 0) {
		db_res_free(res);
		return ops_fail(err, OPS_E_NOTFOUND, false,
				"sandbox owner %s is not in users",
				SANDBOX_OWNER_ID);
	}
	*email = xstrdup(db_res_get(res, 0, 0));
	*cus = xstrdup(db_res_get(res, 0, 1)); /* NULL stays NULL */
	db_res_free(res);
	return 0;
}

#define OWNER_NAME "Apex Sandbox Owner"
#define OWNER_DESC "Sandbox staging org billing contact"

static int
customer_step(struct db *db, struct stripe *st, bool dry_run, const char *email,
	      const char *stored, json_t **customer,
	      struct sandbox_stripe_item *it, struct ops_err *err)
{
	static const char store_sql[] =
		"UPDATE users SET stripe_customer_id = $2 WHERE id = $1"
		" AND stripe_customer_id IS DISTINCT FROM $2";
	struct stripe_error se;
	json_t *params = NULL, *doc = NULL, *cust = NULL;
	char key[320];
	int r = 0;

	*customer = NULL;
	if (stored != NULL && stripe_id_valid(stored)) {
		r = get_customer(st, stored, &cust, err);
		if (r != 0)
			goto fail;
		if (cust == NULL)
			log_warn(
				"stripe stored customer is gone, looking up by "
				"email customer=%s",
				log_q(stored));
	}
	if (cust == NULL) {
		params = json_pack("{s:s, s:i}", "email", email, "limit", 1);
		r = stripe_call(st, "GET", "/v1/customers", params, NULL, &doc,
				NULL, &se, err);
		json_decref(params);
		params = NULL;
		if (r != 0)
			goto fail;
		{
			json_t *first =
				json_array_get(json_object_get(doc, "data"), 0);
			const char *id = jstr(first, "id");

			if (id != NULL && stripe_id_valid(id)) {
				r = get_customer(st, id, &cust, err);
				if (r != 0)
					goto fail;
			}
		}
		json_decref(doc);
		doc = NULL;
	}
	if (cust == NULL && dry_run) {
		it->outcome = SBX_OUT_WOULD;
		return 0;
	}
	if (cust == NULL) {
		params = json_pack("{s:s, s:s, s:s}", "email", email, "name",
				   OWNER_NAME, "description", OWNER_DESC);
		/*
		 * Deterministic, so that a crash before the id is stored
		 * replays the same customer; when a stored customer was
		 * deleted in Stripe, its replacement is another operation
		 * and gets another key (the old one would replay the
		 * deleted customer for 24 hours).
		 */
		if (stored != NULL && stripe_id_valid(stored))
			snprintf(key, sizeof(key),
				 "apexops-sandbox-%s-customer-after-%s-v1",
				 SANDBOX_OWNER_ID, stored);
		else
			snprintf(key, sizeof(key),
				 "apexops-sandbox-%s-customer-v1",
				 SANDBOX_OWNER_ID);
		r = stripe_call(st, "POST", "/v1/customers", params, key, &doc,
				NULL, &se, err);
		json_decref(params);
		params = NULL;
		if (r != 0 || !stripe_id_valid(jstr(doc, "id"))) {
			if (r == 0)
				r = ops_fail(err, OPS_E_HTTP, false,
					     "stripe: customer without an id");
			goto fail;
		}
		it->outcome = SBX_OUT_CREATED;
		r = get_customer(st, jstr(doc, "id"), &cust, err);
		if (r == 0 && cust == NULL)
			r = ops_fail(err, OPS_E_HTTP, false,
				     "stripe: customer %s, just created or "
				     "replayed by its idempotency key, cannot "
				     "be read back (deleted?)",
				     jstr(doc, "id"));
		json_decref(doc);
		doc = NULL;
		if (r != 0)
			goto fail;
	} else {
		it->outcome = SBX_OUT_FOUND;
	}
	set_id(it, jstr(cust, "id"));

	/* some peers ignore name on create; converge name and description */
	if (jstr(cust, "name") == NULL ||
	    strcmp(jstr(cust, "name"), OWNER_NAME) != 0 ||
	    jstr(cust, "description") == NULL ||
	    strcmp(jstr(cust, "description"), OWNER_DESC) != 0) {
		char path[320];

		if (dry_run) {
			it->outcome = SBX_OUT_WOULD;
		} else {
			snprintf(path, sizeof(path), "/v1/customers/%s",
				 it->id);
			snprintf(key, sizeof(key),
				 "apexops-sandbox-%s-profile-v1", it->id);
			params = json_pack("{s:s, s:s}", "name", OWNER_NAME,
					   "description", OWNER_DESC);
			r = stripe_call(st, "POST", path, params, key, &doc,
					NULL, &se, err);
			json_decref(params);
			params = NULL;
			json_decref(doc);
			doc = NULL;
			if (r != 0)
				goto fail;
			if (it->outcome == SBX_OUT_FOUND)
				it->outcome = SBX_OUT_CREATED;
		}
	}
	if (!dry_run) {
		const char *p[2] = { SANDBOX_OWNER_ID, it->id };
		long long n = 0;

		r = db_exec(db, store_sql, 2, p, &n, err);
		if (r != 0) {
			ops_err_prefix(err, "storing users.stripe_customer_id");
			goto fail;
		}
		if (n > 0 && it->outcome == SBX_OUT_FOUND)
			it->outcome = SBX_OUT_CREATED; /* newly linked */
	}
	*customer = cust;
	return 0;
fail:
	json_decref(cust);
	json_decref(doc);
	record_failure(it, &se, err, false);
	return r;
}

static int
attach_step(struct stripe *st, bool dry_run, const char *cus,
	    const json_t *customer, const char *object, const char *type,
	    const char *token, const char *tag, struct sandbox_stripe_item *it,
	    struct ops_err *err)
{
	struct stripe_error se;
	json_t *params, *doc = NULL;
	char path[320], key[320];
	int r;

	memset(&se, 0, sizeof(se));
	r = find_source(st, cus, customer, object, type, it->id, sizeof(it->id),
			err);
	if (r != 0) {
		record_failure(it, &se, err, false);
		return r;
	}
	if (it->id[0] != '\0') {
		it->outcome = SBX_OUT_FOUND;
		return 0;
	}
	if (dry_run) {
		it->outcome = SBX_OUT_WOULD;
		return 0;
	}
	snprintf(path, sizeof(path), "/v1/customers/%s/sources", cus);
	snprintf(key, sizeof(key), "apexops-sandbox-%s-%s-v1", cus, tag);
	params = json_pack("{s:s}", "source", token);
	r = stripe_call(st, "POST", path, params, key, &doc, NULL, &se, err);
	json_decref(params);
	if (r != 0) {
		bool refused = is_refusal(&se);

		record_failure(it, &se, err, refused);
		if (refused) {
			ops_err_clear(err);
			r = 0;
		}
		json_decref(doc);
		return r;
	}
	set_id(it, jstr(doc, "id"));
	it->outcome = SBX_OUT_CREATED;
	json_decref(doc);
	return 0;
}

static int
default_step(struct stripe *st, bool dry_run, const char *cus, const char *card,
	     struct sandbox_stripe_item *it, struct ops_err *err)
{
	struct stripe_error se;
	json_t *cust = NULL, *params, *doc = NULL;
	char path[320], key[400];
	const char *cur;
	int r;

	memset(&se, 0, sizeof(se));
	if (card[0] == '\0') {
		it->outcome = dry_run ? SBX_OUT_WOULD : SBX_OUT_NONE;
		return 0;
	}
	r = get_customer(st, cus, &cust, err);
	if (r != 0 || cust == NULL) {
		if (r == 0)
			r = ops_fail(err, OPS_E_HTTP, false,
				     "stripe: customer %s disappeared", cus);
		record_failure(it, &se, err, false);
		return r;
	}
	cur = jstr(cust, "default_source");
	if (cur != NULL && strcmp(cur, card) == 0) {
		it->outcome = SBX_OUT_FOUND;
		set_id(it, card);
		json_decref(cust);
		return 0;
	}
	json_decref(cust);
	if (dry_run) {
		it->outcome = SBX_OUT_WOULD;
		return 0;
	}
	snprintf(path, sizeof(path), "/v1/customers/%s", cus);
	snprintf(key, sizeof(key), "apexops-sandbox-%s-default-%s-v1", cus,
		 card);
	params = json_pack("{s:s}", "default_source", card);
	r = stripe_call(st, "POST", path, params, key, &doc, NULL, &se, err);
	json_decref(params);
	json_decref(doc);
	if (r != 0) {
		record_failure(it, &se, err, false);
		return r;
	}
	set_id(it, card);
	it->outcome = SBX_OUT_CREATED;
	return 0;
}

int
sandbox_bootstrap_stripe(struct db *db, struct stripe *st, bool dry_run,
			 struct sandbox_stripe_report *rep, struct ops_err *err)
{
	static const struct {
		enum sandbox_stripe_step step;
		const char *object, *type, *token, *tag;
	} sources[] = {
		{ SBX_ST_CARD, "card", NULL, "tok_visa", "card" },
		{ SBX_ST_ACH, "bank_account", NULL, "btok_us_verified", "ach" },
		{ SBX_ST_SEPA, "source", "sepa_debit", "btok_sepa_debit",
		  "sepa" },
	};
	struct ops_err first = OPS_ERR_INIT;
	char *email = NULL, *stored = NULL, *cus = NULL;
	json_t *customer = NULL;
	int r, failed = 0;

	memset(rep, 0, sizeof(*rep));
	r = owner_row(db, &email, &stored, err);
	if (r != 0) {
		if (r == OPS_E_NOTFOUND && dry_run) {
			/* the dry run rolled the owner back: plan from email */
			ops_err_clear(err);
			email = xstrdup(sandbox_users[0].email);
		} else {
			goto out;
		}
	}
	r = customer_step(db, st, dry_run, email, stored, &customer,
			  &rep->step[SBX_ST_CUSTOMER], err);
	if (r != 0)
		goto out;
	if (customer == NULL) { /* dry run, no customer yet */
		for (int s = SBX_ST_CARD; s < SBX_ST_NSTEPS; s++)
			rep->step[s].outcome = SBX_OUT_WOULD;
		goto out;
	}
	cus = xstrdup(rep->step[SBX_ST_CUSTOMER].id);
	for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
		struct ops_err e = OPS_ERR_INIT;

		if (attach_step(st, dry_run, cus, customer, sources[i].object,
				sources[i].type, sources[i].token,
				sources[i].tag, &rep->step[sources[i].step],
				&e) != 0) {
			if (failed++ == 0)
				first = e;
		}
	}
	{
		struct ops_err e = OPS_ERR_INIT;

		if (default_step(st, dry_run, cus, rep->step[SBX_ST_CARD].id,
				 &rep->step[SBX_ST_DEFAULT], &e) != 0) {
			if (failed++ == 0)
				first = e;
		}
	}
	if (failed > 0) {
		if (err != NULL)
			*err = first;
		r = first.code != 0 ? first.code : OPS_E_HTTP;
		if (failed > 1)
			ops_err_prefix(err, "%d Stripe steps failed, first",
				       failed);
	}
out:
	json_decref(customer);
	free(email);
	free(stored);
	free(cus);
	return r;
}
