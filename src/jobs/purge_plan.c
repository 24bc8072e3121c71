/* The purge plan: what the catalog says about each policy table, what
 * would go, and which foreign keys reach into it. */
#include "jobs/purge_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "db/db.h"

/* Foreign keys that reference the policy table or one of its partitions
 * (the top-level constraints only: conparentid = 0 skips the copies that
 * a key on the parent gets on each partition): referencing table,
 * name, ON DELETE action, and the match condition with aliases r (the
 * referencing table) and p (the policy table), quoted by PostgreSQL. */
static const char refs_sql[] =
	"SELECT c.conrelid::regclass::text, c.conname::text,"
	" CASE c.confdeltype WHEN 'c' THEN 'cascade' WHEN 'n' THEN 'set null'"
	"  WHEN 'd' THEN 'set default' WHEN 'r' THEN 'restrict'"
	"  ELSE 'no action' END,"
	" format('(%s) = (%s)',"
	"  (SELECT string_agg(format('r.%I', a.attname), ', ' ORDER BY k.i)"
	"   FROM unnest(c.conkey) WITH ORDINALITY k(n, i)"
	"   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n),"
	"  (SELECT string_agg(format('p.%I', a.attname), ', ' ORDER BY k.i)"
	"   FROM unnest(c.confkey) WITH ORDINALITY k(n, i)"
	"   JOIN pg_attribute a ON a.attrelid = c.confrelid"
	"   AND a.attnum = k.n))"
	" FROM pg_constraint c WHERE c.contype = 'f'"
	" AND c.confrelid IN (SELECT relid"
	"  FROM pg_partition_tree($1::regclass) UNION SELECT $1::regclass)"
	" AND c.conparentid = 0"
	" ORDER BY 1, 2";

static bool
ref_blocks(const char *action)
{
	return strcmp(action, "restrict") == 0 ||
	       strcmp(action, "no action") == 0;
}

int
purge_probe_table(struct db *db, const struct purge_policy *p,
		  struct purge_table_info *ti, struct ops_err *err)
{
	char qname[160];
	const char *params[2] = { qname, p->column };
	struct db_res *res = NULL;
	int r;

	memset(ti, 0, sizeof(*ti));
	purge_policy_ident(p, qname, sizeof(qname));
	r = db_query(
		db,
		"SELECT c.relkind = 'p',"
		" a.attnum IS NOT NULL,"
		" COALESCE(pt.partstrat = 'r' AND pt.partnatts = 1"
		"  AND pt.partattrs[0] = a.attnum, false)"
		" FROM pg_class c"
		" LEFT JOIN pg_attribute a ON a.attrelid = c.oid"
		"  AND a.attname = $2 AND NOT a.attisdropped"
		" LEFT JOIN pg_partitioned_table pt ON pt.partrelid = c.oid"
		" WHERE c.oid = to_regclass($1)",
		2, params, &res, err);
	if (r != 0)
		return r;
	if (db_res_rows(res) > 0) {
		ti->exists = true;
		ti->partitioned = strcmp(db_res_get(res, 0, 0), "t") == 0;
		ti->has_col = strcmp(db_res_get(res, 0, 1), "t") == 0;
		ti->range_by_col = strcmp(db_res_get(res, 0, 2), "t") == 0;
	}
	db_res_free(res);
	return 0;
}

int
purge_expired_partitions(struct db *db, const char *qname, const char *cutoff,
			 struct db_res **out, struct ops_err *err)
{
	const char *params[2] = { qname, cutoff };
	bool own_tx = !db_in_tx(db);
	int r = 0;

	*out = NULL;
	/*
	 * pg_get_expr() writes the bounds in the session's DateStyle and
	 * TimeZone, and reading "IST" back is Israel, not India: pin both for
	 * this statement so that the text round trip is exact.
	 */
	if (own_tx)
		r = db_begin(db, err);
	if (r == 0)
		r = db_exec(db,
			    "SELECT set_config('DateStyle', 'ISO, YMD', true),"
			    " set_config('TimeZone', 'UTC', true)",
			    0, NULL, NULL, err);
	if (r == 0)
		r = db_query(
			db,
			"SELECT name FROM (SELECT c.oid::regclass::text AS "
			"name,"
			"  substring(pg_get_expr(c.relpartbound, c.oid)"
			"   FROM 'TO \\(''([^'']+)''\\)')::timestamptz AS upper"
			"  FROM pg_inherits i JOIN pg_class c ON c.oid = "
			"i.inhrelid"
			"  WHERE i.inhparent = $1::regclass) x"
			" WHERE upper <= $2::timestamptz ORDER BY upper",
			2, params, out, err);
	if (own_tx) {
		if (r == 0)
			r = db_commit(db, err);
		if (r != 0)
			db_rollback(db);
	}
	if (r != 0) {
		db_res_free(*out);
		*out = NULL;
	}
	return r;
}

/* The foreign keys that reference qname, with their counts against the
 * cutoff; builds ti->keep_referenced from the RESTRICT / NO ACTION ones. */
static int
plan_references(struct db *db, const struct purge_policy *p,
		struct purge_table_info *ti, const char *qname,
		const char *cutoff, struct purge_table_result *t,
		struct ops_err *err)
{
	const char *params[1] = { qname };
	struct db_res *res = NULL;
	struct buf keep = BUF_INIT;
	int r;

	r = db_query(db, refs_sql, 1, params, &res, err);
	for (int i = 0; r == 0 && i < db_res_rows(res); i++) {
		const char *child = db_res_get(res, i, 0);
		const char *match = db_res_get(res, i, 3);
		const char *cp[1] = { cutoff };
		struct purge_ref *ref;
		char *sql, *v = NULL;

		if (t->nrefs >= PURGE_MAX_REFS) {
			r = ops_fail(err, OPS_E_INVALID, false,
				     "more than %d foreign keys reference %s",
				     PURGE_MAX_REFS, t->name);
			break;
		}
		ref = &t->refs[t->nrefs++];
		snprintf(ref->table, sizeof(ref->table), "%s", child);
		snprintf(ref->constraint, sizeof(ref->constraint), "%s",
			 db_res_get(res, i, 1));
		snprintf(ref->action, sizeof(ref->action), "%s",
			 db_res_get(res, i, 2));
		/* child and match: catalog names quoted by PostgreSQL;
		 * qname and the column: policy constants */
		sql = xasprintf("SELECT count(*) FROM %s r WHERE EXISTS"
				" (SELECT 1 FROM %s p WHERE %s"
				" AND p.%s < $1::timestamptz)",
				child, qname, match, p->column);
		r = db_query_value(db, sql, 1, cp, &v, err);
		free(sql);
		ref->referencing_rows = v ? strtoll(v, NULL, 10) : 0;
		free(v);
		v = NULL;
		if (r != 0)
			break;
		sql = xasprintf("SELECT count(*) FROM %s p"
				" WHERE p.%s < $1::timestamptz AND EXISTS"
				" (SELECT 1 FROM %s r WHERE %s)",
				qname, p->column, child, match);
		r = db_query_value(db, sql, 1, cp, &v, err);
		free(sql);
		ref->referenced_rows = v ? strtoll(v, NULL, 10) : 0;
		free(v);
		if (r != 0)
			break;
		if (ref_blocks(ref->action))
			buf_addf(&keep,
				 " AND NOT EXISTS (SELECT 1 FROM %s r"
				 " WHERE %s)",
				 child, match);
		log_info("purge plan reference table=%s referenced_by=%s "
			 "constraint=%s action=%s referencing_rows=%lld "
			 "referenced_rows=%lld",
			 log_q(t->name), log_q(ref->table),
			 log_q(ref->constraint), ref->action,
			 ref->referencing_rows, ref->referenced_rows);
	}
	if (r == 0 && keep.len >= sizeof(ti->keep_referenced))
		r = ops_fail(err, OPS_E_INVALID, false,
			     "the foreign keys that reference %s are too many "
			     "to skip",
			     t->name);
	if (r == 0)
		snprintf(ti->keep_referenced, sizeof(ti->keep_referenced), "%s",
			 keep.len ? buf_str(&keep) : "");
	buf_release(&keep);
	db_res_free(res);
	return r;
}

/*
 * May whole expired partitions be dropped? Not when a DELETE trigger or
 * rule on the table or a partition would keep or see rows (a legal hold
 * that returns NULL), nor when a foreign key references the table (its
 * ON DELETE action would be bypassed): then the rows go row by row.
 */
static int
plan_whole_partitions(struct db *db, struct purge_table_info *ti,
		      const char *qname, struct purge_table_result *t,
		      struct ops_err *err)
{
	const char *params[1] = { qname };
	struct db_res *res = NULL;
	int r;

	ti->drop_whole = false;
	if (!ti->range_by_col)
		return 0;
	if (t->nrefs > 0) {
		snprintf(t->partitions_off, sizeof(t->partitions_off),
			 "referenced by foreign keys");
		return 0;
	}
	/* tgtype bit 3: DELETE; ev_type '4': DELETE */
	r = db_query(db,
		     "SELECT EXISTS (SELECT 1 FROM pg_trigger g"
		     "  WHERE g.tgrelid IN (SELECT relid"
		     "   FROM pg_partition_tree($1::regclass))"
		     "  AND NOT g.tgisinternal AND g.tgenabled <> 'D'"
		     "  AND (g.tgtype::int & 8) <> 0),"
		     " EXISTS (SELECT 1 FROM pg_rewrite w"
		     "  WHERE w.ev_class IN (SELECT relid"
		     "   FROM pg_partition_tree($1::regclass))"
		     "  AND w.ev_type = '4')",
		     1, params, &res, err);
	if (r != 0)
		return r;
	if (strcmp(db_res_get(res, 0, 0), "t") == 0)
		snprintf(t->partitions_off, sizeof(t->partitions_off),
			 "DELETE triggers");
	else if (strcmp(db_res_get(res, 0, 1), "t") == 0)
		snprintf(t->partitions_off, sizeof(t->partitions_off),
			 "DELETE rules");
	else
		ti->drop_whole = true;
	db_res_free(res);
	return 0;
}

int
purge_plan_table(struct db *db, const struct purge_policy *p,
		 struct purge_table_info *ti, const char *cutoff,
		 struct purge_table_result *t, struct ops_err *err)
{
	char qname[160], sql[1024];
	const char *params[2] = { cutoff, NULL };
	struct db_res *res = NULL;
	double size = 0, tuples = 0;
	int r;

	purge_policy_ident(p, qname, sizeof(qname));
	snprintf(sql, sizeof(sql),
		 "SELECT count(*), to_char(min(%s) AT TIME ZONE "
		 "'UTC', " PURGE_TS_FMT
		 "), to_char(max(%s) AT TIME ZONE 'UTC', " PURGE_TS_FMT
		 ") FROM %s WHERE %s < $1::timestamptz",
		 p->column, p->column, qname, p->column);
	r = db_query(db, sql, 1, params, &res, err);
	if (r != 0)
		goto out;
	t->planned_rows = db_res_ll(res, 0, 0);
	purge_copy_cell(t->oldest, sizeof(t->oldest), res, 0, 1);
	purge_copy_cell(t->newest, sizeof(t->newest), res, 0, 2);
	db_res_free(res);
	res = NULL;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE %s IS NULL",
		 qname, p->column);
	r = db_query(db, sql, 0, NULL, &res, err);
	if (r != 0)
		goto out;
	t->null_rows = db_res_ll(res, 0, 0);
	db_res_free(res);
	res = NULL;

	/* bytes per row from the size of table, TOAST and indexes */
	params[0] = qname;
	r = db_query(db,
		     "SELECT COALESCE(sum(pg_total_relation_size(c.oid)), 0),"
		     " COALESCE(sum(GREATEST(c.reltuples, 0)), 0)"
		     " FROM pg_class c WHERE c.oid IN (SELECT relid"
		     "  FROM pg_partition_tree($1::regclass) WHERE isleaf"
		     "  UNION ALL SELECT $1::regclass)"
		     " AND c.relkind IN ('r', 'm')",
		     1, params, &res, err);
	if (r != 0)
		goto out;
	size = db_res_double(res, 0, 0);
	tuples = db_res_double(res, 0, 1);
	db_res_free(res);
	res = NULL;
	if (tuples < 1 && t->planned_rows > 0) {
		long long n;

		/* never analysed: count once */
		r = purge_count_rel(db, qname, &n, err);
		if (r != 0)
			goto out;
		tuples = (double)n;
	}
	if (tuples >= 1)
		t->est_bytes =
			(long long)(size / tuples * (double)t->planned_rows);

	r = plan_references(db, p, ti, qname, cutoff, t, err);
	if (r != 0)
		goto out;
	r = plan_whole_partitions(db, ti, qname, t, err);
	if (r != 0 || !ti->drop_whole)
		goto out;
	{
		size_t used = 0;

		r = purge_expired_partitions(db, qname, cutoff, &res, err);
		if (r != 0)
			goto out;
		for (int i = 0; i < db_res_rows(res); i++) {
			const char *name = db_res_get(res, i, 0);
			long long n;
			int w;

			r = purge_count_rel(db, name, &n, err);
			if (r != 0)
				goto out;
			t->partitions_planned++;
			t->partition_rows += n;
			w = snprintf(t->partitions + used,
				     sizeof(t->partitions) - used, "%s%s",
				     used ? "," : "", name);
			if (w > 0 && (size_t)w < sizeof(t->partitions) - used)
				used += (size_t)w;
		}
		db_res_free(res);
		res = NULL;
	}
	r = 0;
out:
	db_res_free(res);
	if (r != 0)
		ops_err_prefix(err, "planning %s", t->name);
	return r;
}

int
purge_check_references(const struct purge_result *res, struct ops_err *err)
{
	struct buf msg = BUF_INIT;
	int r = 0;

	for (int i = 0; i < res->ntables; i++) {
		const struct purge_table_result *t = &res->tables[i];

		for (int k = 0; k < t->nrefs; k++) {
			const struct purge_ref *ref = &t->refs[k];

			if (!ref_blocks(ref->action) ||
			    ref->referenced_rows == 0)
				continue;
			buf_addf(&msg,
				 "%s%lld expired rows of %s are referenced "
				 "by %s (constraint %s, ON DELETE %s)",
				 msg.len ? "; " : "", ref->referenced_rows,
				 t->name, ref->table, ref->constraint,
				 ref->action);
		}
	}
	if (msg.len > 0)
		r = ops_fail(err, OPS_E_REFUSED, false,
			     "%s: nothing was deleted; remove those references "
			     "first, or run with --skip-referenced to keep the "
			     "referenced rows and purge the rest",
			     buf_str(&msg));
	buf_release(&msg);
	return r;
}
