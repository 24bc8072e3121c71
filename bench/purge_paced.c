/*
 * Benchmark helper for bench/purge: the purge's two steps driven by the
 * pacer and the partition module directly, so that their curve can be
 * measured before `apexops purge` calls them.
 *
 *   purge_paced CONNINFO TABLE COLUMN CUTOFF [key=value ...]
 *
 * Drops every partition of TABLE whose upper bound is at or before CUTOFF
 * with purge_partition_drop(), then deletes the rest row-wise as
 * src/jobs/purge.c does (keyset walk by COLUMN, ctid batches of one short
 * transaction, synchronous_commit off), sized and paused by the pacer.
 * Keys: target_ms min_batch max_batch start_batch sleep_coef max_pause_ms
 * max_waiters max_flush_ratio sample_ms (struct pace_opts), nopace=1 (fixed
 * batches of max_batch, no pause), lock_timeout_ms (the partition step). Prints
 * one line of key=value results; the partition step's start and end are epoch
 * seconds (part_t0, part_t1) for the writer's latency window.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "core/stop.h"
#include "db/db.h"
#include "jobs/pace.h"
#include "jobs/purge_partition.h"

static double
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static double
epoch_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what, const struct ops_err *err)
{
	fprintf(stderr, "purge_paced: %s: %s\n", what, err->msg);
	exit(1);
}

struct knobs {
	struct pace_opts po;
	long lock_timeout_ms;
	int nopace;
};

static void
parse_knob(struct knobs *k, const char *arg)
{
	const char *eq = strchr(arg, '=');
	double v;
	char *end;

	if (eq == NULL) {
		fprintf(stderr, "purge_paced: '%s' is not key=value\n", arg);
		exit(64);
	}
	v = strtod(eq + 1, &end);
	if (*end != '\0') {
		fprintf(stderr, "purge_paced: '%s' needs a number\n", arg);
		exit(64);
	}
#define KNOB(name, field, type)                              \
	if (strncmp(arg, name "=", strlen(name) + 1) == 0) { \
		field = (type)v;                             \
		return;                                      \
	}
	KNOB("target_ms", k->po.target_ms, long)
	KNOB("min_batch", k->po.min_batch, long)
	KNOB("max_batch", k->po.max_batch, long)
	KNOB("start_batch", k->po.start_batch, long)
	KNOB("sleep_coef", k->po.sleep_coef, double)
	KNOB("max_pause_ms", k->po.max_pause_ms, long)
	KNOB("max_waiters", k->po.max_waiters, double)
	KNOB("max_flush_ratio", k->po.max_flush_ratio, double)
	KNOB("sample_ms", k->po.sample_ms, long)
	KNOB("lock_timeout_ms", k->lock_timeout_ms, long)
	KNOB("nopace", k->nopace, int)
#undef KNOB
	fprintf(stderr, "purge_paced: unknown key in '%s'\n", arg);
	exit(64);
}

int
main(int argc, char **argv)
{
	struct ops_err err = OPS_ERR_INIT;
	struct db_opts dbo = { 0 };
	struct knobs k;
	struct db *db = NULL;
	struct db_res *parts = NULL, *leaves = NULL;
	struct pace *p;
	struct pace_stats st;
	long long rows = 0, part_rows = 0, batches = 0;
	int nparts = 0, part_retries = 0, concurrent = 0;
	double t0, part_t0, part_t1;
	const char *table, *column, *cutoff;
	char sql[1024];

	if (argc < 5) {
		fprintf(stderr, "usage: purge_paced CONNINFO TABLE COLUMN "
				"CUTOFF [key=value ...]\n");
		return 64;
	}
	table = argv[2];
	column = argv[3];
	cutoff = argv[4];
	memset(&k, 0, sizeof(k));
	for (int i = 5; i < argc; i++)
		parse_knob(&k, argv[i]);
	log_setup(LOG_WARN, LOG_FMT_TEXT, "purge_paced");
	dbo.url = argv[1];
	dbo.appname = "apexops/bench-purge";
	dbo.connect_timeout_s = 10;
	if (db_connect(&dbo, &db, &err) != 0)
		die("connect", &err);
	t0 = mono_ms();

	/* whole expired partitions, as purge.c finds them */
	{
		const char *params[2] = { table, cutoff };

		if (db_query(db,
			     "SELECT name FROM (SELECT c.oid::regclass::text"
			     "  AS name, substring(pg_get_expr(c.relpartbound,"
			     "  c.oid) FROM 'TO \\(''([^'']+)''\\)')"
			     "  ::timestamptz AS upper"
			     "  FROM pg_inherits i JOIN pg_class c"
			     "  ON c.oid = i.inhrelid"
			     "  WHERE i.inhparent = to_regclass($1)) x"
			     " WHERE upper <= $2::timestamptz ORDER BY upper",
			     2, params, &parts, &err) != 0)
			die("listing partitions", &err);
	}
	part_t0 = epoch_s();
	for (int i = 0; i < db_res_rows(parts); i++) {
		struct purge_partition_stats ps;

		if (purge_partition_drop(db, table, db_res_get(parts, i, 0),
					 k.lock_timeout_ms, NULL, &ps,
					 &err) != 0)
			die("dropping a partition", &err);
		nparts++;
		part_rows += ps.rows;
		part_retries += ps.lock_retries;
		concurrent += ps.concurrent;
	}
	part_t1 = epoch_s();
	db_res_free(parts);

	/* the leaves left (or the table itself), row-wise */
	{
		const char *params[1] = { table };

		if (db_query(db,
			     "SELECT relid::regclass::text FROM"
			     " pg_partition_tree($1::regclass) WHERE isleaf"
			     " UNION ALL SELECT $1::regclass::text"
			     " WHERE NOT EXISTS (SELECT FROM pg_inherits"
			     "  WHERE inhparent = $1::regclass)"
			     " ORDER BY 1",
			     1, params, &leaves, &err) != 0)
			die("listing leaves", &err);
	}
	p = pace_new(&k.po);
	for (int li = 0; li < db_res_rows(leaves); li++) {
		const char *rel = db_res_get(leaves, li, 0);
		char lower[64] = "-infinity", limit[24];
		const char *params[3] = { cutoff, lower, limit };
		long size =
			k.nopace ? (k.po.max_batch > 0 ? k.po.max_batch : 2000)
				 : pace_first_batch(p);
		int pass = 0;

		/* bench-only: rel is regclass output, column an argument */
		snprintf(sql, sizeof(sql),
			 "WITH d AS (DELETE FROM %s WHERE ctid = ANY (ARRAY("
			 "SELECT ctid FROM %s WHERE %s >= $2::timestamptz"
			 " AND %s < $1::timestamptz ORDER BY %s LIMIT $3::int))"
			 " AND %s < $1::timestamptz RETURNING %s)"
			 " SELECT count(*), max(%s)::text FROM d",
			 rel, rel, column, column, column, column, column,
			 column);
		for (;;) {
			struct db_res *res = NULL;
			double b0, c0, b1;
			long long n;
			long pause = 0;

			snprintf(limit, sizeof(limit), "%ld", size);
			b0 = mono_ms();
			if (db_begin(db, &err) != 0 ||
			    db_exec(db, "SET LOCAL synchronous_commit = off", 0,
				    NULL, NULL, &err) != 0 ||
			    db_query(db, sql, 3, params, &res, &err) != 0)
				die("batch", &err);
			c0 = mono_ms();
			if (db_commit(db, &err) != 0)
				die("commit", &err);
			b1 = mono_ms();
			n = db_res_ll(res, 0, 0);
			if (n > 0)
				snprintf(lower, sizeof(lower), "%s",
					 db_res_get(res, 0, 1));
			db_res_free(res);
			rows += n;
			batches++;
			if (n == 0) {
				if (pass++ > 0 ||
				    strcmp(lower, "-infinity") == 0)
					break;
				snprintf(lower, sizeof(lower), "-infinity");
				continue;
			}
			if (k.nopace)
				continue;
			if (pace_after_batch(p, db, (long)n, b1 - b0, b1 - c0,
					     &size, &pause, NULL, &err) != 0)
				die("pacer", &err);
			if (ops_sleep_ms(pause, NULL) != 0)
				break;
		}
	}
	db_res_free(leaves);
	pace_stats_get(p, &st);
	printf("deleted_rows=%lld partition_rows=%lld partitions=%d "
	       "concurrent=%d part_retries=%d part_t0=%.3f part_t1=%.3f "
	       "part_ms=%.0f seconds=%.3f batches=%lld backoffs=%lld "
	       "pause_ms=%.0f batch_lo=%ld batch_hi=%ld probes=%lld "
	       "flush_floor_ms=%.2f flush_max_ms=%.2f last_backoff=%s\n",
	       rows + part_rows, part_rows, nparts, concurrent, part_retries,
	       part_t0, part_t1, (part_t1 - part_t0) * 1000.0,
	       (mono_ms() - t0) / 1000.0, batches, st.backoffs, st.pause_ms,
	       st.batch_lo, st.batch_hi, st.probes, st.base_flush_ms,
	       st.max_flush_ms, st.last_backoff[0] ? st.last_backoff : "-");
	pace_free(p);
	db_close(db);
	return 0;
}
