/* apexops status: one screen for operators. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/config.h"
#include "db/db.h"
#include "db/migrate.h"
#include "jobs/job_status.h"
#include "jobs/status.h"

const char cmd_status_usage[] =
	"usage: apexops status\n"
	"\n"
	"One screen: whether the database answers and its version, migrations\n"
	"applied and pending, the scheduled jobs (schedule in CRON_TZ, next\n"
	"fire time, last run and outcome, last success, OVERDUE when the last\n"
	"success is older than the schedule allows, the scheduler replicas\n"
	"seen in the last minute), then one section per capability\n"
	"(retention: oldest retained row per table and the last purge run).\n"
	"Exit 0 when the database answers, no migration is pending or\n"
	"changed and no job is overdue, 1 otherwise, 69 when the database\n"
	"cannot be reached.\n";

int
cmd_status(struct cli_ctx *ctx, int argc, char **argv)
{
	struct ops_err err = OPS_ERR_INIT;
	struct migration_set set = { 0 };
	struct mig_status st = { 0 };
	struct db *db = NULL;
	char *dir = NULL, *url, *now = NULL;
	int r, rc = 0;

	(void)argv;
	if (argc > 1)
		return cli_usage("status", "takes no arguments");
	r = cli_db_connect(ctx, &db, &err);
	if (r != 0) {
		url = config_redact_url(ctx->db_url);
		printf("database     UNREACHABLE  %s\n", url);
		free(url);
		return cli_report(ctx, &err);
	}
	url = config_redact_url(ctx->db_url);
	db_query_value(db,
		       "SELECT to_char(now() AT TIME ZONE 'UTC', "
		       "'YYYY-MM-DD HH24:MI:SS\"Z\"')",
		       0, NULL, &now, &err);
	printf("apexops %s status at %s\n\n", APEXOPS_VERSION, now ? now : "?");
	printf("database\n  reachable    yes, PostgreSQL %s%s\n  url          "
	       "%s\n",
	       db_server_version(db),
	       ctx->embedded ? " (embedded cluster)" : "", url);
	free(url);
	free(now);
	r = migrate_find_dir(ctx->cfg.migrations_dir, &dir, &err);
	if (r == 0)
		r = migrations_load(dir, &set, &err);
	if (r == 0)
		r = migrate_status(db, &set, &st, &err);
	if (r != 0) {
		printf("\nmigrations\n  error        %s\n", err.msg);
		rc = 1;
	} else {
		const char *last = NULL;

		for (size_t i = 0; i < st.n; i++)
			if (st.v[i].state == MIG_APPLIED)
				last = st.v[i].id;
		printf("\nmigrations\n  applied      %zu (latest %s)\n"
		       "  pending      %zu\n",
		       st.applied, last ? last : "none", st.pending);
		if (st.changed || st.missing)
			printf("  PROBLEMS     %zu changed on disk, %zu file "
			       "missing ('apexops migrate verify')\n",
			       st.changed, st.missing);
		for (size_t i = 0; i < st.n; i++)
			if (st.v[i].state == MIG_PENDING)
				printf("    pending    %s\n", st.v[i].id);
		if (st.pending || st.changed || st.missing)
			rc = 1;
	}
	ops_err_clear(&err);
	{
		struct buf out = BUF_INIT;
		int overdue = 0;

		/* schedules and next fire times are in CRON_TZ */
		setenv("TZ", ctx->cfg.cron_tz, 1);
		tzset();
		printf("\njobs (CRON_TZ %s)\n", ctx->cfg.cron_tz);
		if (job_status_report(db, &ctx->cfg, &out, &overdue, &err) !=
		    0) {
			printf("  error        %s\n", err.msg);
			ops_err_clear(&err);
			db_rollback(db);
		} else {
			fputs(buf_str(&out), stdout);
		}
		if (overdue > 0)
			rc = 1;
		buf_release(&out);
	}
	for (size_t i = 0; status_sections[i].title != NULL; i++) {
		struct buf out = BUF_INIT;
		const char *needs = status_sections[i].needs;
		bool have = true;

		printf("\n%s\n", status_sections[i].title);
		if (needs != NULL &&
		    db_relation_exists(db, needs, &have, &err) == 0 && !have) {
			/* out is still empty: nothing to release */
			printf("  (%s is missing: run 'apexops migrate up')\n",
			       needs);
			continue;
		}
		if (err.code != OPS_OK) {
			printf("  error        %s\n", err.msg);
			ops_err_clear(&err);
			db_rollback(db);
		} else if (status_sections[i].fn(db, &out, &err) != 0) {
			printf("  error        %s\n", err.msg);
			ops_err_clear(&err);
			db_rollback(db);
		} else {
			fputs(buf_str(&out), stdout);
		}
		buf_release(&out);
	}
	mig_status_release(&st);
	migrations_release(&set);
	free(dir);
	db_close(db);
	return rc;
}
