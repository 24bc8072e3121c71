/* apexops migrate up|down [N]|status|verify */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "core/parse.h"
#include "core/signals.h"
#include "db/db.h"
#include "db/migrate.h"

const char cmd_migrate_usage[] =
	"usage: apexops migrate up [--to VERSION] [--dry-run]\n"
	"       apexops migrate down [N|all] [--execute]\n"
	"       apexops migrate status\n"
	"       apexops migrate verify\n"
	"\n"
	"Versioned SQL migrations from migrations/postgres (or\n"
	"APEXOPS_MIGRATIONS_DIR): <YYYYMMDD_HHMMSS>_<name>.up.sql and\n"
	".down.sql. The ledger is apexops.schema_migrations, with the SHA-256\n"
	"of each applied file: an applied migration edited on disk is refused\n"
	"by name. Each migration runs in its own transaction; concurrent\n"
	"migrators wait for each other on an advisory lock.\n"
	"\n"
	"  up       apply every pending migration (--to: stop after VERSION;\n"
	"           --dry-run: list them, change nothing); refuses when the\n"
	"           database has an unknown migration and some are pending\n"
	"  down     revert the newest N applied migrations (default 1; 'all'\n"
	"           reverts every one). Without --execute it only prints what\n"
	"           it would revert. The baseline's down drops only the\n"
	"           tables it created itself, never adopted ones.\n"
	"  status   every migration: applied, pending, changed, file missing;\n"
	"           exit 1 when the database has a migration this binary\n"
	"           does not know (the database is ahead of it)\n"
	"  verify   exit 1 when an applied file changed or is unknown\n"
	"\n"
	"Migrations run with statement_timeout 0 and the session's\n"
	"lock_timeout. A first SIGTERM/SIGINT stops before the next\n"
	"migration; a second cancels the running one (rolled back).\n";

static void
report(void *arg, const struct migration *m, bool done, double seconds)
{
	const char *verb = arg;

	if (!done)
		printf("%s %s\n", verb, m->id);
	else
		printf("  done in %.3fs\n", seconds);
	fflush(stdout);
}

static const char *
state_name(enum mig_state s)
{
	switch (s) {
	case MIG_PENDING:
		return "pending";
	case MIG_APPLIED:
		return "applied";
	case MIG_CHANGED:
		return "CHANGED";
	case MIG_FILE_MISSING:
		return "FILE MISSING";
	}
	return "?";
}

/* Name each applied migration this binary does not know, on stderr. */
static void
warn_unknown(const struct mig_status *st)
{
	for (size_t i = 0; i < st->n; i++)
		if (st->v[i].state == MIG_FILE_MISSING)
			cli_warn("migrate",
				 "the database has "
				 "migration %s (applied %s), which this binary "
				 "does not know: the database is ahead of this "
				 "binary (a newer apexops migrated it) or the "
				 "file was removed",
				 st->v[i].id,
				 st->v[i].applied_at ? st->v[i].applied_at
						     : "-");
}

/* After up: warn when the database has migrations this binary lacks. */
static int
count_unknown(struct db *db, const struct migration_set *set, size_t *missing,
	      struct ops_err *err)
{
	struct mig_status st;
	int r = migrate_status(db, set, &st, err);

	*missing = 0;
	if (r != 0)
		return r;
	warn_unknown(&st);
	*missing = st.missing;
	mig_status_release(&st);
	return 0;
}

static int
print_status(struct db *db, const struct migration_set *set, bool verify,
	     struct ops_err *err)
{
	struct mig_status st;
	int r = migrate_status(db, set, &st, err);

	if (r != 0)
		return r;
	printf("migrations in %s\n\n", set->dir);
	printf("%-48s %-13s %s\n", "MIGRATION", "STATE", "APPLIED AT");
	for (size_t i = 0; i < st.n; i++)
		printf("%-48s %-13s %s\n", st.v[i].id,
		       state_name(st.v[i].state),
		       st.v[i].applied_at ? st.v[i].applied_at : "-");
	printf("\n%zu applied, %zu pending, %zu changed, %zu file missing\n",
	       st.applied, st.pending, st.changed, st.missing);
	warn_unknown(&st);
	if (!verify && st.missing > 0)
		r = ops_fail(err, OPS_E_REFUSED, false,
			     "the database is ahead of this binary: %zu "
			     "applied migration(s) unknown to it",
			     st.missing);
	if (verify && (st.changed > 0 || st.missing > 0)) {
		for (size_t i = 0; i < st.n; i++) {
			if (st.v[i].state == MIG_CHANGED)
				cli_warn("migrate",
					 "%s changed on disk after it was "
					 "applied (applied %.12s, file %.12s)",
					 st.v[i].id, st.v[i].applied_checksum,
					 st.v[i].m->checksum);
		}
		r = ops_fail(err, OPS_E_REFUSED, false,
			     "verify failed: %zu changed, %zu missing",
			     st.changed, st.missing);
	}
	mig_status_release(&st);
	return r;
}

int
cmd_migrate(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "execute", no_argument, NULL, 'x' },
		{ NULL, 0, NULL, 0 },
	};
	struct ops_err err = OPS_ERR_INIT;
	struct migration_set set = { 0 };
	struct db *db = NULL;
	const char *sub, *to = NULL;
	bool dry = false, execute = false;
	char *dir = NULL;
	size_t n = 1, count = 0;
	int c, r;

	if (argc < 2)
		return cli_usage("migrate", "expected up, down, status or "
					    "verify");
	sub = argv[1];
	/* "down -1" would read as an unknown option '-1': it is a count */
	for (int i = 2; strcmp(sub, "down") == 0 && i < argc; i++)
		if (argv[i][0] == '-' && isdigit((unsigned char)argv[i][1]))
			return cli_usage("migrate",
					 "down: invalid count '%s': N must be "
					 "a whole number >= 1, or 'all'",
					 argv[i]);
	optind = 2;
	while ((c = cli_getopt("migrate", argc, argv, "", opts)) != -1) {
		switch (c) {
		case 't':
			to = optarg;
			break;
		case 'n':
			dry = true;
			break;
		case 'x':
			execute = true;
			break;
		default:
			return OPS_EXIT_USAGE; /* cli_getopt said why */
		}
	}
	if (strcmp(sub, "up") != 0 && strcmp(sub, "down") != 0 &&
	    strcmp(sub, "status") != 0 && strcmp(sub, "verify") != 0)
		return cli_usage("migrate",
				 "unknown subcommand '%s' (expected up, down, "
				 "status or verify)",
				 sub);
	if (strcmp(sub, "down") == 0) {
		if (optind < argc) {
			long v;

			if (strcmp(argv[optind], "all") == 0)
				n = (size_t)-1;
			else if (parse_long(argv[optind], 1, 100000, &v) == 0)
				n = (size_t)v;
			else
				return cli_usage("migrate",
						 "down: invalid count '%s': N "
						 "must be a whole number >= 1 "
						 "(at most 100000), or 'all'",
						 argv[optind]);
			optind++;
		}
		dry = !execute;
	} else if (execute) {
		return cli_usage("migrate", "--execute goes with down");
	}
	if (to != NULL && strcmp(sub, "up") != 0)
		return cli_usage("migrate", "--to goes with up");
	if (optind < argc)
		return cli_usage("migrate", "unexpected argument '%s'",
				 argv[optind]);

	/*
	 * main.c installed the signal handlers: a first SIGINT/SIGTERM lets
	 * the running migration finish and stops before the next; a second
	 * cancels the running statement (db_cancel_all).
	 */
	r = migrate_find_dir(ctx->cfg.migrations_dir, &dir, &err);
	if (r == 0)
		r = migrations_load(dir, &set, &err);
	if (r == 0)
		r = cli_db_connect(ctx, &db, &err);
	if (r != 0)
		goto out;
	if (strcmp(sub, "up") == 0) {
		size_t unknown = 0;

		r = migrate_up(db, &set, to, dry, report,
			       dry ? "would apply" : "applying", &count, &err);
		if (r == 0)
			r = count_unknown(db, &set, &unknown, &err);
		if (r == 0)
			printf("%s%zu migration(s)%s\n",
			       dry ? "dry-run: would apply " : "applied ",
			       count,
			       unknown > 0  ? ": the database is ahead of this "
					      "binary (see the warning)"
			       : count == 0 ? ": schema is up to date"
					    : "");
	} else if (strcmp(sub, "down") == 0) {
		r = migrate_down(db, &set, n, dry, report,
				 dry ? "would revert" : "reverting", &count,
				 &err);
		if (r == 0 && dry)
			printf("preview: would revert %zu migration(s); run "
			       "again with --execute to do it\n",
			       count);
		else if (r == 0)
			printf("reverted %zu migration(s)\n", count);
	} else {
		r = print_status(db, &set, strcmp(sub, "verify") == 0, &err);
	}
out:
	db_close(db);
	migrations_release(&set);
	free(dir);
	if (r != 0)
		return cli_report(ctx, &err);
	return 0;
}
