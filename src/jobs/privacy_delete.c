/* Erasure by the data map (see privacy_delete.h). */
#include "jobs/privacy_delete.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/xalloc.h"
#include "db/db.h"
#include "jobs/privacy_map.h"

/*
 * The erasure, or with count its preview: the same tenant check, the
 * same tables in the same order, the same predicates, counted by a
 * SELECT instead of changed by a DELETE or UPDATE.
 */
static int
erase_or_count(struct db *db, const struct privacy_subject *s, bool count,
	       char **receipt, long long *total, struct ops_err *err)
{
	json_t *tables = json_object();
	json_t *doc = NULL;
	long long sum = 0;
	char *text;
	int r;

	*receipt = NULL;
	if (total != NULL)
		*total = 0;
	r = privacy_subject_bind(db, s, err);
	for (int i = 0; r == 0 && i < privacy_map_count; i++) {
		const struct privacy_table *t = &privacy_map[i];
		long long n = 0;
		char *sql;
		char rel[128];
		bool exists = false;
		json_t *entry;

		if (t->action == PRIVACY_KEEP)
			continue;
		/* a table an adopted database lacks has nothing to erase */
		snprintf(rel, sizeof(rel), "public.%s", t->name);
		r = db_relation_exists(db, rel, &exists, err);
		if (r != 0)
			break;
		if (!exists)
			continue;
		/* the map's constants and a catalog-checked table name */
		if (count && t->action == PRIVACY_DELETE)
			sql = xasprintf("SELECT count(*) FROM public.%s t"
					" WHERE %s",
					t->name, t->match);
		else if (count)
			sql = xasprintf("SELECT count(*) FROM public.%s t"
					" WHERE %s AND (%s)",
					t->name, t->match, t->personal);
		else if (t->action == PRIVACY_DELETE)
			sql = xasprintf("DELETE FROM public.%s t WHERE %s",
					t->name, t->match);
		else
			sql = xasprintf("UPDATE public.%s t SET %s WHERE %s"
					" AND (%s)",
					t->name, t->anonymise, t->match,
					t->personal);
		if (count) {
			char *v = NULL;

			r = db_query_value(db, sql, 0, NULL, &v, err);
			n = v != NULL ? strtoll(v, NULL, 10) : 0;
			free(v);
		} else {
			r = db_exec(db, sql, 0, NULL, &n, err);
		}
		free(sql);
		if (r != 0) {
			(void)ops_err_prefix(err, "%s %s",
					     count ? "count" : "erase",
					     t->name);
			break;
		}
		entry = json_object();
		json_object_set_new(
			entry, "action",
			json_string(privacy_action_name(t->action)));
		json_object_set_new(entry, "rows", json_integer(n));
		json_object_set_new(tables, t->name, entry);
		sum += n;
	}
	if (r != 0)
		goto out;
	doc = json_object();
	json_object_set(doc, "tables", tables);
	json_object_set_new(doc, "rows_total", json_integer(sum));
	json_object_set_new(doc, "nothing_left", json_boolean(sum == 0));
	json_object_set_new(doc, "data_map_version",
			    json_integer(PRIVACY_MAP_VERSION));
	text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text == NULL)
		abort(); /* jansson fails only on allocation */
	*receipt = text;
	if (total != NULL)
		*total = sum;
out:
	json_decref(doc);
	json_decref(tables);
	return r;
}

int
privacy_erase(struct db *db, const struct privacy_subject *s, char **receipt,
	      long long *total, struct ops_err *err)
{
	return erase_or_count(db, s, false, receipt, total, err);
}

int
privacy_erase_preview(struct db *db, const struct privacy_subject *s,
		      char **preview, long long *total, struct ops_err *err)
{
	return erase_or_count(db, s, true, preview, total, err);
}
