/*
 * The export encoder (see privacy_export.h). The server does the
 * encoding: row_to_json() for JSONL, COPY's CSV mode for CSV, so each
 * record crosses libpq once and is appended to the output as it is.
 *
 * JSONL goes through COPY's CSV mode with a delimiter and a quote byte
 * (0x01, 0x02) that JSON text never holds raw (json escapes every
 * control character), so COPY passes each line through untouched;
 * text mode would double every backslash.
 */
#include "jobs/privacy_export.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "jobs/privacy_map.h"

/* bytes buffered before a write to the sink */
#define FLUSH_AT (256 * 1024)

struct enc {
	const struct privacy_sink *sink;
	struct buf out;
	bool csv;
	const char *prefix; /* JSONL: {"table":"<name>","record": */
	int r;		    /* first sink failure */
	struct ops_err err; /* its detail (COPY would overwrite err) */
};

static int
enc_flush(struct enc *e)
{
	if (e->r == 0 && e->out.len > 0)
		e->r = e->sink->write(e->sink->arg, e->out.data, e->out.len,
				      &e->err);
	buf_reset(&e->out);
	return e->r;
}

static int
enc_add(struct enc *e, const char *data, size_t len)
{
	buf_addn(&e->out, data, len);
	if (e->out.len >= FLUSH_AT)
		return enc_flush(e);
	return e->r;
}

/*
 * One COPY row. JSONL: the record's JSON, wrapped here rather than by
 * the server (string concatenation per row costs the server more than
 * a memcpy costs us). CSV lines end in CRLF (RFC 4180).
 */
static int
on_row(void *arg, const char *row, size_t len)
{
	struct enc *e = arg;

	if (len > 0 && row[len - 1] == '\n')
		len--;
	if (e->csv) {
		buf_addn(&e->out, row, len);
		return enc_add(e, "\r\n", 2);
	}
	buf_adds(&e->out, e->prefix);
	buf_addn(&e->out, row, len);
	return enc_add(e, "}\n", 2);
}

int
privacy_subject_bind(struct db *db, const struct privacy_subject *s,
		     struct ops_err *err)
{
	static const char bind_sql[] =
		"SELECT set_config('apexops.privacy_user', $1, true),"
		" set_config('apexops.privacy_tenant', $2, true)";
	static const char member_sql[] =
		"SELECT count(*) FROM public.users"
		" WHERE id = $1::uuid AND publisher_id = $2::uuid";
	const char *params[2] = { s->user, s->tenant };
	char *n = NULL;
	int r;

	r = db_exec(db, bind_sql, 2, params, NULL, err);
	if (r == 0)
		r = db_query_value(db, member_sql, 2, params, &n, err);
	if (r == 0 && (n == NULL || strcmp(n, "1") != 0))
		r = ops_fail(err, OPS_E_REFUSED, false,
			     "user %s is not a user of tenant %s: refused, "
			     "nothing read or changed",
			     s->user, s->tenant);
	free(n);
	return r;
}

/*
 * The select list of table t for export: every column but the omitted
 * ones, masked ones through apexops.privacy_mask(). Built by the server
 * from the catalog (format('%I') quotes each name), so a column added
 * later is exported without a code change; only catalog names, never
 * data, make up the text. *out is NULL when the table does not exist.
 */
static int
select_list(struct db *db, const struct privacy_table *t, char **out,
	    struct ops_err *err)
{
	static const char sql[] =
		"SELECT string_agg(CASE WHEN a.attname = ANY(m.mask)"
		" THEN format('apexops.privacy_mask(t.%1$I::text) AS %1$I',"
		" a.attname) ELSE format('t.%I', a.attname) END, ', '"
		" ORDER BY a.attnum)"
		" FROM pg_attribute a,"
		" LATERAL (SELECT regexp_split_to_array($2, '\\s*,\\s*')"
		" AS mask, regexp_split_to_array($3, '\\s*,\\s*') AS omit) m"
		" WHERE a.attrelid = to_regclass($1) AND a.attnum > 0"
		" AND NOT a.attisdropped AND NOT a.attname = ANY(m.omit)";
	char *rel = xasprintf("public.%s", t->name);
	const char *params[3] = { rel, t->mask ? t->mask : "",
				  t->omit ? t->omit : "" };
	int r;

	r = db_query_value(db, sql, 3, params, out, err);
	free(rel);
	return r;
}

static int
count_rows(struct db *db, const struct privacy_table *t, long long *n,
	   struct ops_err *err)
{
	char *sql = xasprintf("SELECT count(*) FROM public.%s t WHERE %s",
			      t->name, t->match);
	char *v = NULL;
	int r;

	*n = 0;
	r = db_query_value(db, sql, 0, NULL, &v, err);
	if (r == 0 && v != NULL)
		*n = strtoll(v, NULL, 10);
	free(v);
	free(sql);
	return r;
}

static void
manifest_jsonl(struct enc *e, const struct privacy_subject *s,
	       const char *generated_at, json_t *counts)
{
	json_t *m = json_object();
	json_t *line = json_object();
	char *text;

	json_object_set_new(m, "request_id", json_integer(s->request_id));
	json_object_set_new(m, "tenant", json_string(s->tenant));
	json_object_set_new(m, "user", json_string(s->user));
	json_object_set_new(m, "generated_at", json_string(generated_at));
	json_object_set_new(m, "format", json_string("jsonl"));
	json_object_set_new(m, "data_map_version",
			    json_integer(PRIVACY_MAP_VERSION));
	json_object_set(m, "counts", counts);
	json_object_set_new(line, "manifest", m);
	text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text == NULL)
		abort(); /* jansson fails only on allocation */
	buf_adds(&e->out, text);
	buf_adds(&e->out, "\n");
	free(text);
	json_decref(line);
}

static void
manifest_csv(struct enc *e, const struct privacy_subject *s,
	     const char *generated_at, json_t *counts)
{
	const char *name;
	json_t *v;

	/* every value is digits, a UUID, a timestamp or a table name:
	 * nothing to quote */
	buf_addf(&e->out,
		 "section,manifest\r\nrequest_id,%lld\r\ntenant,%s\r\n"
		 "user,%s\r\ngenerated_at,%s\r\nformat,csv\r\n"
		 "data_map_version,%d\r\n",
		 s->request_id, s->tenant, s->user, generated_at,
		 PRIVACY_MAP_VERSION);
	json_object_foreach(counts, name, v)
	{
		buf_addf(&e->out, "rows.%s,%lld\r\n", name,
			 (long long)json_integer_value(v));
	}
	buf_adds(&e->out, "\r\n");
}

int
privacy_export_encode(struct db *db, const struct privacy_subject *s, bool csv,
		      const struct privacy_sink *sink, char **counts,
		      struct ops_err *err)
{
	struct enc e = { 0 };
	char *lists[64] = { NULL };
	char *generated_at = NULL, *prefix = NULL, *text;
	json_t *cnt = json_object();
	int r;

	if (counts != NULL)
		*counts = NULL;
	e.sink = sink;
	e.csv = csv;
	if (privacy_map_count > (int)(sizeof(lists) / sizeof(lists[0])))
		abort(); /* the map outgrew this function */

	r = db_begin(db, err);
	if (r != 0)
		goto out;
	r = db_exec(db,
		    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ,"
		    " READ ONLY",
		    0, NULL, NULL, err);
	if (r == 0)
		r = db_exec(db, "SET LOCAL client_encoding = 'UTF8'", 0, NULL,
			    NULL, err);
	if (r == 0)
		r = privacy_subject_bind(db, s, err);
	if (r == 0)
		r = db_query_value(db,
				   "SELECT to_char(now() AT TIME ZONE 'UTC',"
				   " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
				   0, NULL, &generated_at, err);
	/* counts first, in the same snapshot, so the manifest can lead */
	for (int i = 0; r == 0 && i < privacy_map_count; i++) {
		const struct privacy_table *t = &privacy_map[i];
		long long n = 0;

		if (!t->exported)
			continue;
		r = select_list(db, t, &lists[i], err);
		if (r != 0 || lists[i] == NULL)
			continue; /* a table this database lacks */
		r = count_rows(db, t, &n, err);
		if (r == 0)
			json_object_set_new(cnt, t->name, json_integer(n));
	}
	if (r != 0)
		goto out;
	if (csv)
		manifest_csv(&e, s, generated_at, cnt);
	else
		manifest_jsonl(&e, s, generated_at, cnt);
	for (int i = 0; r == 0 && i < privacy_map_count; i++) {
		const struct privacy_table *t = &privacy_map[i];
		char *sql;

		if (lists[i] == NULL)
			continue;
		if (csv) {
			buf_addf(&e.out, "section,%s\r\n", t->name);
			sql = xasprintf("COPY (SELECT %s FROM public.%s t"
					" WHERE %s) TO STDOUT WITH (FORMAT csv,"
					" HEADER true)",
					lists[i], t->name, t->match);
		} else {
			if (json_integer_value(json_object_get(cnt, t->name)) ==
			    0)
				continue;
			free(prefix);
			prefix = xasprintf("{\"table\":\"%s\",\"record\":",
					   t->name);
			e.prefix = prefix;
			sql = xasprintf("COPY (SELECT row_to_json(r) FROM"
					" (SELECT %s FROM public.%s t WHERE %s)"
					" r) TO STDOUT WITH (FORMAT csv,"
					" DELIMITER E'\\x01', QUOTE E'\\x02')",
					lists[i], t->name, t->match);
		}
		r = db_copy_out(db, sql, on_row, &e, err);
		free(sql);
		if (e.r != 0)
			break;
		if (r == 0 && csv)
			r = enc_add(&e, "\r\n", 2);
	}
	if (r == 0 && e.r == 0)
		r = enc_flush(&e);
	if (e.r != 0) {
		/* the sink's error, not COPY's "copy stopped" */
		r = e.r;
		if (err != NULL)
			*err = e.err;
	}
	if (r == 0)
		r = db_commit(db, err);
	if (r == 0 && counts != NULL) {
		text = json_dumps(cnt, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (text == NULL)
			abort();
		*counts = text;
	}
out:
	db_rollback(db);
	for (int i = 0; i < privacy_map_count; i++)
		free(lists[i]);
	free(generated_at);
	free(prefix);
	json_decref(cnt);
	buf_release(&e.out);
	return r;
}
