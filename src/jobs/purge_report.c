/* The purge result as JSON: for --json and for the run record. */
#include "jobs/purge_internal.h"

#include <jansson.h>
#include <stdlib.h>

#include "core/xalloc.h"

static json_t *
refs_json(const struct purge_table_result *t)
{
	json_t *arr = json_array();

	for (int i = 0; i < t->nrefs; i++) {
		const struct purge_ref *ref = &t->refs[i];
		json_t *o = json_object();

		json_object_set_new(o, "table", json_string(ref->table));
		json_object_set_new(o, "constraint",
				    json_string(ref->constraint));
		json_object_set_new(o, "on_delete", json_string(ref->action));
		json_object_set_new(o, "referencing_rows",
				    json_integer(ref->referencing_rows));
		json_object_set_new(o, "referenced_rows",
				    json_integer(ref->referenced_rows));
		json_array_append_new(arr, o);
	}
	return arr;
}

/* Why expired rows were left, as {"reason": rows} for the non-zero ones. */
static json_t *
left_json(const struct purge_table_result *t)
{
	json_t *o = json_object();

	if (t->left_locked > 0)
		json_object_set_new(o, "locked by another transaction",
				    json_integer(t->left_locked));
	if (t->left_trigger > 0)
		json_object_set_new(o, "kept by a trigger",
				    json_integer(t->left_trigger));
	if (t->left_referenced > 0)
		json_object_set_new(o, "referenced by a foreign key (skipped)",
				    json_integer(t->left_referenced));
	if (t->left_other > 0)
		json_object_set_new(o, "written behind the purge meanwhile",
				    json_integer(t->left_other));
	return o;
}

static json_t *
table_json(const struct purge_result *res, const struct purge_table_result *t)
{
	json_t *o = json_object();

	json_object_set_new(o, "table", json_string(t->name));
	json_object_set_new(o, "missing", json_boolean(t->missing));
	if (!t->missing) {
		json_object_set_new(o, "partitioned",
				    json_boolean(t->partitioned));
		json_object_set_new(o, "planned_rows",
				    json_integer(t->planned_rows));
		json_object_set_new(o, "null_rows", json_integer(t->null_rows));
		json_object_set_new(o, "est_bytes", json_integer(t->est_bytes));
		json_object_set_new(o, "oldest",
				    t->oldest[0] ? json_string(t->oldest)
						 : json_null());
		json_object_set_new(o, "newest",
				    t->newest[0] ? json_string(t->newest)
						 : json_null());
		json_object_set_new(o, "partitions_planned",
				    json_integer(t->partitions_planned));
		json_object_set_new(o, "partition_rows",
				    json_integer(t->partition_rows));
		json_object_set_new(o, "partitions",
				    json_string(t->partitions));
		json_object_set_new(o, "partitions_off",
				    t->partitions_off[0]
					    ? json_string(t->partitions_off)
					    : json_null());
		json_object_set_new(o, "references", refs_json(t));
		/* detached by an earlier run, not yet dropped: dropped
		 * first, their rows in planned_rows */
		json_object_set_new(o, "detached_pending",
				    json_integer(t->detached_pending));
		json_object_set_new(o, "detached_rows",
				    json_integer(t->detached_rows));
		json_object_set_new(o, "detached", json_string(t->detached));
	}
	if (res->executed && !t->missing) {
		json_object_set_new(o, "deleted_rows",
				    json_integer(t->deleted_rows));
		json_object_set_new(o, "partitions_detached",
				    json_integer(t->partitions_detached));
		json_object_set_new(o, "partitions_dropped",
				    json_integer(t->partitions_dropped));
		json_object_set_new(o, "detached_left",
				    json_integer(t->detached_left));
		json_object_set_new(o, "partitions_kept",
				    json_integer(t->partitions_kept));
		json_object_set_new(o, "batches", json_integer(t->batches));
		json_object_set_new(o, "passes", json_integer(t->passes));
		json_object_set_new(o, "lock_retries",
				    json_integer(t->lock_retries));
		json_object_set_new(o, "partition_seconds",
				    json_real(t->partition_seconds));
		json_object_set_new(o, "partition_detach_seconds",
				    json_real(t->partition_detach_seconds));
		json_object_set_new(o, "seconds", json_real(t->seconds));
		if (t->census) {
			json_object_set_new(o, "left_rows",
					    json_integer(t->left_rows));
			json_object_set_new(o, "left", left_json(t));
		}
		json_object_set_new(o, "vacuumed", json_boolean(t->vacuumed));
		if (t->vacuum_error[0] != '\0')
			json_object_set_new(o, "vacuum_warning",
					    json_string(t->vacuum_error));
	}
	return o;
}

static json_t *
pace_json(const struct purge_result *res)
{
	json_t *o = json_object();

	json_object_set_new(o, "enabled", json_boolean(res->paced));
	if (!res->paced)
		return o;
	json_object_set_new(o, "backoffs", json_integer(res->pace_backoffs));
	json_object_set_new(o, "pauses", json_integer(res->pace_pauses));
	json_object_set_new(o, "pause_ms", json_real(res->pace_pause_ms));
	json_object_set_new(o, "lag_waits", json_integer(res->pace_lag_waits));
	json_object_set_new(o, "lag_wait_ms", json_real(res->pace_lag_wait_ms));
	json_object_set_new(o, "max_lag_ms", json_real(res->pace_max_lag_ms));
	json_object_set_new(o, "max_lag_bytes",
			    json_integer(res->pace_max_lag_bytes));
	json_object_set_new(o, "batch_min", json_integer(res->pace_batch_lo));
	json_object_set_new(o, "batch_max", json_integer(res->pace_batch_hi));
	json_object_set_new(o, "flush_floor_ms",
			    json_real(res->pace_flush_floor_ms));
	json_object_set_new(o, "flush_max_ms",
			    json_real(res->pace_flush_max_ms));
	json_object_set_new(o, "last_backoff",
			    res->pace_last_backoff[0]
				    ? json_string(res->pace_last_backoff)
				    : json_null());
	return o;
}

static json_t *
tables_json(const struct purge_result *res)
{
	json_t *arr = json_array();

	for (int i = 0; i < res->ntables; i++)
		json_array_append_new(arr, table_json(res, &res->tables[i]));
	return arr;
}

char *
purge_tables_json(const struct purge_result *res)
{
	json_t *tj = tables_json(res);
	char *s = json_dumps(tj, JSON_COMPACT);

	json_decref(tj);
	return s ? s : xstrdup("[]");
}

char *
purge_result_json(const struct purge_result *res)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "run_id", json_integer(res->run_id));
	/* the mode asked for, also when the run failed before deleting */
	json_object_set_new(o, "mode",
			    json_string(res->execute ? "execute" : "dry-run"));
	json_object_set_new(
		o, "status",
		json_string(res->status[0] ? res->status : "failed"));
	json_object_set_new(o, "error",
			    res->error[0] ? json_string(res->error)
					  : json_null());
	json_object_set_new(o, "months", json_integer(res->months));
	json_object_set_new(o, "tz", json_string(res->tz));
	json_object_set_new(o, "today", json_string(res->today));
	json_object_set_new(o, "cutoff", json_string(res->cutoff));
	json_object_set_new(o, "cutoff_local", json_string(res->cutoff_local));
	json_object_set_new(o, "stopped", json_boolean(res->stopped));
	json_object_set_new(o, "planned_rows",
			    json_integer(res->planned_total));
	if (res->execute)
		json_object_set_new(o, "deleted_rows",
				    json_integer(res->deleted_total));
	if (res->executed) {
		json_object_set_new(o, "left_rows",
				    json_integer(res->left_total));
		json_object_set_new(o, "left_locked",
				    json_integer(res->left_locked));
		json_object_set_new(o, "warnings", json_integer(res->warnings));
		json_object_set_new(o, "pace", pace_json(res));
	}
	json_object_set_new(o, "null_rows", json_integer(res->null_total));
	json_object_set_new(o, "drop_pause_ms",
			    json_integer(res->drop_pause_ms));
	json_object_set_new(o, "detached_other",
			    json_integer(res->detached_other));
	json_object_set_new(o, "seconds", json_real(res->seconds));
	json_object_set_new(o, "tables", tables_json(res));
	s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	return s ? s : xstrdup("{}");
}

char *
purge_params_json(const struct purge_result *res, const struct purge_opts *o)
{
	json_t *j = json_object();
	char *s;

	json_object_set_new(j, "months", json_integer(res->months));
	json_object_set_new(j, "tz", json_string(res->tz));
	json_object_set_new(j, "as_of",
			    o->as_of ? json_string(o->as_of) : json_null());
	json_object_set_new(j, "today",
			    res->today[0] ? json_string(res->today)
					  : json_null());
	json_object_set_new(j, "cutoff",
			    res->cutoff[0] ? json_string(res->cutoff)
					   : json_null());
	json_object_set_new(j, "allow_future_as_of",
			    json_boolean(o->allow_future_as_of));
	json_object_set_new(j, "skip_referenced",
			    json_boolean(o->skip_referenced));
	json_object_set_new(j, "vacuum", json_boolean(o->vacuum));
	s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	return s ? s : xstrdup("{}");
}

char *
purge_counts_json(const struct purge_result *res)
{
	json_t *j = json_object(), *left = json_object();
	long long lk = 0, tr = 0, rf = 0, ot = 0;
	char *s;

	for (int i = 0; i < res->ntables; i++) {
		lk += res->tables[i].left_locked;
		tr += res->tables[i].left_trigger;
		rf += res->tables[i].left_referenced;
		ot += res->tables[i].left_other;
	}
	if (lk > 0)
		json_object_set_new(left, "locked by another transaction",
				    json_integer(lk));
	if (tr > 0)
		json_object_set_new(left, "kept by a trigger",
				    json_integer(tr));
	if (rf > 0)
		json_object_set_new(left,
				    "referenced by a foreign key (skipped)",
				    json_integer(rf));
	if (ot > 0)
		json_object_set_new(left, "written behind the purge meanwhile",
				    json_integer(ot));
	/* the names apexops.purge_runs used, so that old and new rows read
	 * alike in the history */
	json_object_set_new(j, "rows_planned",
			    json_integer(res->planned_total));
	if (res->execute)
		json_object_set_new(j, "rows_deleted",
				    json_integer(res->deleted_total));
	json_object_set_new(j, "null_rows", json_integer(res->null_total));
	json_object_set_new(j, "left_rows", json_integer(res->left_total));
	json_object_set_new(j, "left_locked", json_integer(res->left_locked));
	json_object_set_new(j, "left", left);
	json_object_set_new(j, "warnings", json_integer(res->warnings));
	if (res->executed)
		json_object_set_new(j, "pace", pace_json(res));
	if (res->status[0] != '\0')
		json_object_set_new(j, "status", json_string(res->status));
	json_object_set_new(j, "tables", tables_json(res));
	s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	return s ? s : xstrdup("{}");
}
