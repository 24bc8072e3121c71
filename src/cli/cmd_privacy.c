/*
 * apexops privacy: file data-subject requests (export, delete), list and
 * show them, hand out an export's link, expire old exports.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "core/signals.h"
#include "core/stop.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "jobs/privacy.h"
#include "jobs/privacy_id.h"
#include "storage/store.h"

const char cmd_privacy_usage[] =
	"usage: apexops privacy export --tenant T --user U [--format jsonl|csv]"
	" [--wait]\n"
	"       apexops privacy delete --tenant T --user U [--wait]\n"
	"       apexops privacy delete --tenant T --user U --dry-run [--json]\n"
	"       apexops privacy list [--overdue] [--json]\n"
	"       apexops privacy show ID\n"
	"       apexops privacy url ID\n"
	"       apexops privacy expire [--dry-run]\n"
	"\n"
	"Data-subject requests (GDPR): each is a row of "
	"apexops.privacy_requests,\n"
	"due one month after it was filed, run by 'apexops worker'.\n"
	"  export   file an export of the user's data: JSONL (json is the same)"
	"\n"
	"           or CSV, to PRIVACY_EXPORT_PROVIDER (local, s3, gcs); it\n"
	"           expires after PRIVACY_EXPIRY_DAYS (30)\n"
	"  delete   file an erasure: rows deleted or anonymised by the data "
	"map,"
	"\n"
	"           earlier exports deleted in every provider, a receipt kept\n"
	"  --dry-run  (delete) change nothing, file nothing: each table's "
	"rows\n"
	"           the erasure would delete or anonymise now, and the "
	"earlier\n"
	"           exports it would delete (--json: the receipt's shape)\n"
	"  --tenant and --user are UUIDs; the user must belong to the tenant\n"
	"  (users.publisher_id), else the request fails and nothing is touched."
	"\n"
	"  --wait   block until the request finishes; exit 0 only if it "
	"completed\n"
	"  list     newest first; --overdue: open or failed past their due "
	"date\n"
	"  show     one request with its artifact, counts, receipt and error\n"
	"  url      how to fetch a completed export: a presigned GET URL (S3,\n"
	"           GCS) valid 7 days at most and never past expires_at, or "
	"the\n"
	"           file's path (local)\n"
	"  expire   delete the artifacts of exports past expires_at, then "
	"mark\n"
	"           them expired (--dry-run: count only); exit 75 when a "
	"provider\n"
	"           could not be reached (those wait for the next run)\n";

#define MAX_URL_S 604800L /* 7 days: the longest SigV4 presign */

static int
request_id_arg(const char *s, long long *id)
{
	struct ops_err err = OPS_ERR_INIT;

	if (privacy_request_id_parse(s, id, &err) != 0)
		return cli_usage("privacy", "%s", err.msg);
	return 0;
}

/* Poll the request until it finishes; print how it ended. */
static int
wait_request(struct cli_ctx *ctx, struct db *db, long long id)
{
	static const char sql[] =
		"SELECT status, COALESCE(location, ''), COALESCE(size_bytes, "
		"0),"
		" COALESCE(sha256, ''), COALESCE(error, ''),"
		" COALESCE(receipt::text, '')"
		" FROM apexops.privacy_requests WHERE id = $1::bigint";
	struct ops_err err = OPS_ERR_INIT;
	char id_s[24];
	const char *params[1] = { id_s };

	snprintf(id_s, sizeof(id_s), "%lld", id);
	for (;;) {
		struct db_res *res = NULL;
		const char *st;
		int rc = -1;

		if (db_query(db, sql, 1, params, &res, &err) != 0)
			return cli_report(ctx, &err);
		if (db_res_rows(res) == 0) {
			db_res_free(res);
			ops_fail(&err, OPS_E_NOTFOUND, false,
				 "request %lld vanished", id);
			return cli_report(ctx, &err);
		}
		st = db_res_get(res, 0, 0);
		if (strcmp(st, "completed") == 0) {
			if (db_res_get(res, 0, 1)[0] != '\0')
				printf("request %lld completed: %s (%s bytes, "
				       "sha256 %s)\n",
				       id, db_res_get(res, 0, 1),
				       db_res_get(res, 0, 2),
				       db_res_get(res, 0, 3));
			else
				printf("request %lld completed: %s\n", id,
				       db_res_get(res, 0, 5));
			rc = OPS_EXIT_OK;
		} else if (strcmp(st, "failed") == 0 ||
			   strcmp(st, "expired") == 0) {
			printf("request %lld %s: %s\n", id, st,
			       db_res_get(res, 0, 4));
			rc = OPS_EXIT_FAIL;
		}
		db_res_free(res);
		if (rc >= 0)
			return rc;
		if (ops_sleep_ms(200, &ops_stop_flag) != 0) {
			fprintf(stderr,
				"apexops privacy: stopped waiting; request "
				"%lld is still open\n",
				id);
			return OPS_EXIT_TEMPFAIL;
		}
	}
}

/*
 * privacy delete --dry-run: what the erasure would do now
 * (privacy_delete_preview: a read-only transaction, the erasure's own
 * predicates, rows counted) and how many earlier exports it would delete
 * from their providers. Files nothing.
 */
static int
delete_preview(struct cli_ctx *ctx, struct db *db, const char *tenant,
	       const char *user, bool as_json)
{
	struct ops_err err = OPS_ERR_INIT;
	char *text = NULL, *out;
	long long total;
	json_t *doc, *tables, *v;
	const char *name;

	if (privacy_delete_preview(db, tenant, user, &text, &err) != 0)
		return cli_report(ctx, &err);
	doc = json_loads(text, 0, NULL);
	free(text);
	if (doc == NULL)
		abort(); /* our own JSON */
	total = (long long)json_integer_value(
		json_object_get(doc, "rows_total"));
	json_object_set_new(doc, "dry_run", json_true());
	json_object_set_new(doc, "tenant_id", json_string(tenant));
	json_object_set_new(doc, "user_id", json_string(user));
	if (as_json) {
		out = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (out == NULL)
			abort(); /* jansson fails only on allocation */
		printf("%s\n", out);
		free(out);
		json_decref(doc);
		return OPS_EXIT_OK;
	}
	printf("privacy delete preview: user %s of tenant %s (dry run: no "
	       "request filed, nothing changed)\n\n",
	       user, tenant);
	printf("  %-24s %-10s %10s\n", "table", "action", "rows");
	tables = json_object_get(doc, "tables");
	json_object_foreach(tables, name, v)
	{
		printf("  %-24s %-10s %10lld\n", name,
		       json_string_value(json_object_get(v, "action")),
		       (long long)json_integer_value(
			       json_object_get(v, "rows")));
	}
	printf("  %-24s %-10s %10lld\n", "total", "", total);
	printf("  %-24s %-10s %10lld artifact(s), from their providers\n\n",
	       "earlier exports", "delete",
	       (long long)json_integer_value(
		       json_object_get(doc, "exports_to_delete")));
	printf("%s\n", total == 0
			       ? "Nothing of this user's is left to erase; a "
				 "request would complete with nothing_left."
			       : "Without --dry-run the request is filed and "
				 "'apexops worker' carries it out, with these "
				 "predicates.");
	json_decref(doc);
	return OPS_EXIT_OK;
}

static int
file_cmd(struct cli_ctx *ctx, const char *kind, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "tenant", required_argument, NULL, 't' },
		{ "user", required_argument, NULL, 'u' },
		{ "format", required_argument, NULL, 'f' },
		{ "wait", no_argument, NULL, 'w' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *tenant = NULL, *user = NULL, *format = NULL;
	char t[PRIVACY_UUID_LEN + 1], u[PRIVACY_UUID_LEN + 1];
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = NULL;
	bool wait = false, dry = false, as_json = false;
	long long id = 0;
	int c, rc;

	optind = 1;
	while ((c = cli_getopt("privacy", argc, argv, "", lo)) != -1) {
		switch (c) {
		case 't':
			tenant = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case 'f':
			format = optarg;
			break;
		case 'w':
			wait = true;
			break;
		case 'n':
			dry = true;
			break;
		case 'j':
			as_json = true;
			break;
		default:
			return OPS_EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage("privacy", "%s: unexpected argument '%s'",
				 kind, argv[optind]);
	if ((dry || as_json) && strcmp(kind, "export") == 0)
		return cli_usage("privacy",
				 "export takes no %s (an export changes "
				 "nothing; --dry-run previews a delete)",
				 dry ? "--dry-run" : "--json");
	if (as_json && !dry)
		return cli_usage("privacy", "delete: --json goes with "
					    "--dry-run (the preview)");
	if (dry && wait)
		return cli_usage("privacy", "delete: --dry-run files no "
					    "request to --wait for");
	if (tenant == NULL || user == NULL)
		return cli_usage("privacy", "%s needs --tenant T and --user U",
				 kind);
	if (format != NULL && strcmp(kind, "delete") == 0)
		return cli_usage("privacy", "delete takes no --format");
	if (format != NULL && strcmp(format, "jsonl") != 0 &&
	    strcmp(format, "json") != 0 && strcmp(format, "csv") != 0)
		return cli_usage("privacy",
				 "--format '%s': use jsonl (or json) or csv",
				 format);
	/* ids checked before any connection, query or path */
	if (privacy_uuid_parse("tenant id", tenant, t, &err) != 0 ||
	    privacy_uuid_parse("user id", user, u, &err) != 0)
		return cli_usage("privacy", "%s", err.msg);
	if (cli_db_connect(ctx, &db, &err) != 0)
		return cli_report(ctx, &err);
	if (dry) {
		rc = delete_preview(ctx, db, t, u, as_json);
		goto out;
	}
	if (privacy_file(db, kind, t, u, format, &id, &err) != 0) {
		rc = cli_report(ctx, &err);
		goto out;
	}
	printf("request %lld queued (%s of user %s, tenant %s)\n", id, kind, u,
	       t);
	fflush(stdout);
	rc = wait ? wait_request(ctx, db, id) : OPS_EXIT_OK;
out:
	db_close(db);
	return rc;
}

static void
list_text(json_t *doc)
{
	size_t i;
	json_t *j;

	printf("%-7s %-7s %-10s %-36s %-36s %-17s %s\n", "id", "kind", "status",
	       "tenant", "user", "due (UTC)", "finished");
	json_array_foreach(doc, i, j)
	{
		const char *fin =
			json_string_value(json_object_get(j, "finished"));

		printf("%-7lld %-7s %-10s %-36s %-36s %-17s %s%s\n",
		       (long long)json_integer_value(json_object_get(j, "id")),
		       json_string_value(json_object_get(j, "kind")),
		       json_string_value(json_object_get(j, "status")),
		       json_string_value(json_object_get(j, "tenant_id")),
		       json_string_value(json_object_get(j, "user_id")),
		       json_string_value(json_object_get(j, "due")),
		       fin ? fin : "-",
		       json_is_true(json_object_get(j, "overdue")) ? " OVERDUE"
								   : "");
	}
}

static int
list_cmd(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "overdue", no_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	static const char sql[] =
		"SELECT COALESCE(json_agg(json_build_object('id', id, 'kind',"
		" kind, 'status', status, 'tenant_id', tenant_id, 'user_id',"
		" user_id, 'format', format, 'requested_at', requested_at,"
		" 'due_at', due_at, 'due', to_char(due_at AT TIME ZONE 'UTC',"
		" 'YYYY-MM-DD HH24:MI'), 'finished', to_char(finished_at AT"
		" TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), 'overdue',"
		" status IN ('queued', 'running', 'failed') AND due_at <"
		" now(), 'provider', provider, 'location', location,"
		" 'expires_at', expires_at, 'error', error) ORDER BY id DESC),"
		" '[]') FROM apexops.privacy_requests"
		" WHERE NOT $1::bool OR (status IN ('queued', 'running',"
		" 'failed') AND due_at < now())";
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = NULL;
	bool overdue = false, as_json = false;
	const char *params[1];
	char *json = NULL;
	json_t *doc;
	int c, rc = OPS_EXIT_OK;

	optind = 1;
	while ((c = cli_getopt("privacy", argc, argv, "", lo)) != -1) {
		switch (c) {
		case 'o':
			overdue = true;
			break;
		case 'j':
			as_json = true;
			break;
		default:
			return OPS_EXIT_USAGE;
		}
	}
	if (optind != argc)
		return cli_usage("privacy", "list: unexpected argument '%s'",
				 argv[optind]);
	if (cli_db_connect(ctx, &db, &err) != 0)
		return cli_report(ctx, &err);
	params[0] = overdue ? "true" : "false";
	if (db_query_value(db, sql, 1, params, &json, &err) != 0) {
		rc = cli_report(ctx, &err);
		goto out;
	}
	if (as_json) {
		printf("%s\n", json);
	} else {
		doc = json_loads(json, 0, NULL);
		list_text(doc);
		json_decref(doc);
	}
out:
	free(json);
	db_close(db);
	return rc;
}

static int
show_cmd(struct cli_ctx *ctx, int argc, char **argv)
{
	static const char sql[] = "SELECT row_to_json(r) FROM (SELECT *,"
				  " status IN ('queued', 'running', 'failed')"
				  " AND due_at < now() AS overdue"
				  " FROM apexops.privacy_requests"
				  " WHERE id = $1::bigint) r";
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = NULL;
	char id_s[24], *json = NULL, *text;
	const char *params[1] = { id_s };
	long long id;
	json_t *doc;
	int rc = OPS_EXIT_OK;

	if (argc != 2)
		return cli_usage("privacy", "show: name one request id");
	if (request_id_arg(argv[1], &id) != 0)
		return OPS_EXIT_USAGE;
	snprintf(id_s, sizeof(id_s), "%lld", id);
	if (cli_db_connect(ctx, &db, &err) != 0)
		return cli_report(ctx, &err);
	if (db_query_value(db, sql, 1, params, &json, &err) != 0) {
		rc = cli_report(ctx, &err);
	} else if (json == NULL) {
		ops_fail(&err, OPS_E_NOTFOUND, false, "no request %lld", id);
		rc = cli_report(ctx, &err);
	} else {
		doc = json_loads(json, 0, NULL);
		text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", text ? text : json);
		free(text);
		json_decref(doc);
	}
	free(json);
	db_close(db);
	return rc;
}

static int
url_cmd(struct cli_ctx *ctx, int argc, char **argv)
{
	static const char sql[] =
		"SELECT kind, status, COALESCE(location, ''),"
		" GREATEST(0, floor(extract(epoch FROM expires_at - now())))"
		"::bigint FROM apexops.privacy_requests WHERE id = $1::bigint";
	struct ops_err err = OPS_ERR_INIT;
	struct db_res *res = NULL;
	struct store *st = NULL;
	struct db *db = NULL;
	char id_s[24], *url = NULL;
	const char *params[1] = { id_s };
	enum store_provider p;
	long long id, left;
	long expires_s;
	int rc = OPS_EXIT_OK;

	if (argc != 2)
		return cli_usage("privacy", "url: name one request id");
	if (request_id_arg(argv[1], &id) != 0)
		return OPS_EXIT_USAGE;
	snprintf(id_s, sizeof(id_s), "%lld", id);
	if (cli_db_connect(ctx, &db, &err) != 0)
		return cli_report(ctx, &err);
	if (db_query(db, sql, 1, params, &res, &err) != 0) {
		rc = cli_report(ctx, &err);
		goto out;
	}
	if (db_res_rows(res) == 0) {
		ops_fail(&err, OPS_E_NOTFOUND, false, "no request %lld", id);
		rc = cli_report(ctx, &err);
		goto out;
	}
	if (strcmp(db_res_get(res, 0, 0), "export") != 0 ||
	    strcmp(db_res_get(res, 0, 1), "completed") != 0 ||
	    db_res_get(res, 0, 2)[0] == '\0') {
		ops_fail(&err, OPS_E_NOTFOUND, false,
			 "request %lld has no export to fetch (it is a %s "
			 "request, %s)",
			 id, db_res_get(res, 0, 0), db_res_get(res, 0, 1));
		rc = cli_report(ctx, &err);
		goto out;
	}
	left = db_res_ll(res, 0, 3);
	if (left < 1) {
		ops_fail(&err, OPS_E_NOTFOUND, false,
			 "request %lld's export is past its expires_at; "
			 "'apexops privacy expire' deletes it",
			 id);
		rc = cli_report(ctx, &err);
		goto out;
	}
	expires_s = left < MAX_URL_S ? (long)left : MAX_URL_S;
	if (store_location_provider(db_res_get(res, 0, 2), &p) != 0) {
		ops_fail(&err, OPS_E_INVALID, false,
			 "request %lld: unknown location", id);
		rc = cli_report(ctx, &err);
		goto out;
	}
	if (store_open(&ctx->cfg, p, &ops_stop_flag, &st, &err) != 0 ||
	    store_url(st, db_res_get(res, 0, 2), expires_s, &url, &err) != 0) {
		rc = cli_report(ctx, &err);
		goto out;
	}
	printf("%s\n", url);
out:
	free(url);
	store_free(st);
	db_res_free(res);
	db_close(db);
	return rc;
}

static int
expire_cmd(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct privacy_expire_result res;
	struct ops_err err = OPS_ERR_INIT;
	struct db *db = NULL;
	bool dry = false;
	int c, r, rc;

	optind = 1;
	while ((c = cli_getopt("privacy", argc, argv, "", lo)) != -1) {
		if (c != 'n')
			return OPS_EXIT_USAGE;
		dry = true;
	}
	if (optind != argc)
		return cli_usage("privacy", "expire: unexpected argument '%s'",
				 argv[optind]);
	if (cli_db_connect(ctx, &db, &err) != 0)
		return cli_report(ctx, &err);
	r = privacy_expire(db, &ctx->cfg, dry, &ops_stop_flag, &res, &err);
	if (dry && r == 0) {
		printf("%lld export(s) past expires_at (dry run: nothing "
		       "deleted)\n",
		       res.due);
		rc = OPS_EXIT_OK;
	} else if (dry) {
		rc = cli_report(ctx, &err); /* no count to stand on */
	} else if (r == 0 || res.left > 0) {
		printf("%lld export(s) past expires_at: %lld expired, %lld "
		       "left for the next run\n",
		       res.due, res.expired, res.left);
		if (res.swept > 0)
			printf("%lld unfinished write(s) older than a day "
			       "swept\n",
			       res.swept);
		if (res.sweep_error[0] != '\0')
			cli_warn("privacy", "unfinished writes not swept: %s",
				 res.sweep_error);
		if (res.left > 0) {
			cli_warn("privacy", "%s", err.msg);
			rc = OPS_EXIT_TEMPFAIL;
		} else {
			rc = OPS_EXIT_OK;
		}
	} else {
		rc = cli_report(ctx, &err);
	}
	db_close(db);
	return rc;
}

int
cmd_privacy(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : NULL;

	if (sub == NULL)
		return cli_usage("privacy",
				 "which subcommand? (export, delete, "
				 "list, show, url, expire)");
	if (strcmp(sub, "export") == 0 || strcmp(sub, "delete") == 0)
		return file_cmd(ctx, sub, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return list_cmd(ctx, argc - 1, argv + 1);
	if (strcmp(sub, "show") == 0)
		return show_cmd(ctx, argc - 1, argv + 1);
	if (strcmp(sub, "url") == 0)
		return url_cmd(ctx, argc - 1, argv + 1);
	if (strcmp(sub, "expire") == 0)
		return expire_cmd(ctx, argc - 1, argv + 1);
	return cli_usage("privacy",
			 "unknown subcommand '%s' (export, delete, list, show, "
			 "url, expire)",
			 sub);
}
