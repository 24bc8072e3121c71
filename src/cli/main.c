/* apexops: the operations toolkit of the Apex Mediation platform. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/buf.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/xalloc.h"
#include "db/db.h"
#include "http/http.h"
#include "http/url.h"

static const struct cli_cmd commands[] = {
	{ "db", cmd_db, "run the embedded PostgreSQL cluster", cmd_db_usage },
	{ "migrate", cmd_migrate, "apply, revert and check schema migrations",
	  cmd_migrate_usage },
	{ "status", cmd_status, "one screen: database, migrations, jobs",
	  cmd_status_usage },
	{ "config", cmd_config, "show the effective configuration",
	  cmd_config_usage },
	{ "cron", cmd_cron, "the scheduler daemon; list, run now, history",
	  cmd_cron_usage },
	{ "worker", cmd_worker, "run queue jobs (the queue's workers)",
	  cmd_worker_usage },
	{ "queue", cmd_queue, "the job queue: stats, list, show, retry, cancel",
	  cmd_queue_usage },
	{ "privacy", cmd_privacy, "privacy requests: export, delete, list, url",
	  cmd_privacy_usage },
	{ "purge", cmd_purge, "retention purge (dry-run unless confirmed)",
	  cmd_purge_usage },
	{ "purge-old-usage", cmd_purge, "alias of purge", cmd_purge_usage },
	{ "sandbox", cmd_sandbox, "sandbox bootstrap and revenue scenarios",
	  cmd_sandbox_usage },
	{ "stripe", cmd_stripe, "billing jobs: sync-usage, dunning",
	  cmd_stripe_usage },
	{ "dunning", cmd_dunning, "dunning cases: list, show",
	  cmd_dunning_usage },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct cli_cmd *
find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* The help text of a subcommand with options of its own, or NULL. */
static const char *
sub_usage(const char *cmd, const char *sub)
{
	if (strcmp(cmd, "stripe") == 0 && strcmp(sub, "sync-usage") == 0)
		return cmd_stripe_sync_usage_usage;
	if (strcmp(cmd, "stripe") == 0 && strcmp(sub, "dunning") == 0)
		return cmd_stripe_dunning_usage;
	if (strcmp(cmd, "sandbox") != 0)
		return NULL;
	if (strcmp(sub, "bootstrap") == 0)
		return cmd_sandbox_bootstrap_usage;
	if (strcmp(sub, "revenue") == 0)
		return cmd_sandbox_revenue_usage;
	return NULL;
}

static void
usage_main(FILE *f)
{
	fprintf(f, "usage: apexops [--env-file PATH] <command> [options]\n"
		   "       apexops help <command> | --help | --version\n\n"
		   "commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-16s %s\n", commands[i].name,
			commands[i].summary);
	fprintf(f, "\nConfiguration comes from the environment, then a .env "
		   "file (--env-file, default ./.env),\nthen flags. "
		   "'apexops config' shows every variable. See apexops(1).\n");
}

/* "apexops CMD" or, with no command (NULL or ""), "apexops" */
static const char *
prog(const char *cmd, char *buf, size_t n)
{
	if (cmd == NULL || *cmd == '\0')
		return "apexops";
	snprintf(buf, n, "apexops %s", cmd);
	return buf;
}

/*
 * With APEXOPS_LOG_FORMAT=json every stderr line is JSON: the final error
 * or usage line and warnings go out as one log_line() each (message whole,
 * hint and sqlstate as fields); otherwise as the familiar
 * "apexops CMD: ..." lines.
 */
static void
say(enum log_level lvl, const char *cmd, const char *what, const char *msg,
    const char *const *fields)
{
	char p[96];

	if (log_is_json()) {
		log_line(lvl, cmd != NULL && *cmd != '\0' ? cmd : "apexops",
			 msg, fields);
		return;
	}
	fprintf(stderr, "%s: %s%s\n", prog(cmd, p, sizeof(p)), what, msg);
}

int
cli_usage(const char *cmd, const char *fmt, ...)
{
	struct buf msg = BUF_INIT;
	char hint[96];
	const char *fields[] = { "hint", hint, "exit", "64", NULL };
	va_list ap;

	va_start(ap, fmt);
	if (buf_vprintf(&msg, fmt, ap) != 0)
		buf_reset(&msg);
	va_end(ap);
	if (cmd == NULL || *cmd == '\0')
		snprintf(hint, sizeof(hint), "Try 'apexops --help'.");
	else
		snprintf(hint, sizeof(hint), "Try 'apexops help %s'.", cmd);
	say(LOG_ERROR, cmd, "", buf_str(&msg), fields);
	if (!log_is_json())
		fprintf(stderr, "%s\n", hint);
	buf_release(&msg);
	return OPS_EXIT_USAGE;
}

void
cli_warn(const char *cmd, const char *fmt, ...)
{
	struct buf msg = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	if (buf_vprintf(&msg, fmt, ap) != 0)
		buf_reset(&msg);
	va_end(ap);
	say(LOG_WARN, cmd, "warning: ", buf_str(&msg), NULL);
	buf_release(&msg);
}

static int
report(const char *cmd, const struct ops_err *err)
{
	static const char behind[] = DB_SCHEMA_BEHIND_HINT;
	int rc = ops_err_exit_code(err);
	bool hint = db_sqlstate_schema_behind(err->sqlstate);
	char msg[sizeof(err->msg)], exit_s[16], p[96];
	const char *fields[] = {
		"sqlstate",  err->sqlstate[0] != '\0' ? err->sqlstate : NULL,
		"transient", err->transient ? "true" : "false",
		"exit",	     exit_s,
		"hint",	     hint ? behind : NULL,
		NULL
	};

	snprintf(msg, sizeof(msg), "%s", err->msg);
	log_scrub(msg);
	snprintf(exit_s, sizeof(exit_s), "%d", rc);
	say(LOG_ERROR, cmd, "error: ", msg, fields);
	if (!log_is_json() && err->sqlstate[0] != '\0')
		fprintf(stderr, "%s: sqlstate %s%s\n", prog(cmd, p, sizeof(p)),
			err->sqlstate,
			err->transient ? " (a retry may succeed)" : "");
	if (!log_is_json() && hint)
		fprintf(stderr, "%s: %s\n", prog(cmd, p, sizeof(p)), behind);
	return rc;
}

int
cli_report(const struct cli_ctx *ctx, const struct ops_err *err)
{
	/* the NULL rule of err.h: no detail, still a failure */
	static const struct ops_err unknown = { OPS_E_IO, false, "",
						"failed (no detail)" };

	return report(ctx ? ctx->cmd : NULL, err != NULL ? err : &unknown);
}

int
cli_help(const char *cmd)
{
	const struct cli_cmd *c = find_command(cmd);

	if (c == NULL)
		return cli_usage("help", "unknown command '%s'", cmd);
	fputs(c->usage, stdout);
	return OPS_EXIT_OK;
}

bool
cli_isatty_err(void)
{
	return isatty(STDERR_FILENO) == 1;
}

bool
cli_isatty_out(void)
{
	return isatty(STDOUT_FILENO) == 1;
}

int
cli_db_connect(struct cli_ctx *ctx, struct db **out, struct ops_err *err)
{
	return db_connect_config(&ctx->cfg, ctx->cmd, &ctx->db_url,
				 &ctx->embedded, out, err);
}

/* Take --env-file PATH / --env-file=PATH out of argv, wherever it is. */
static int
take_env_file(int *argc, char **argv, const char **path, int *count)
{
	int w = 1;

	for (int i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < *argc)
				argv[w++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "--env-file") == 0) {
			if (i + 1 >= *argc)
				return -1;
			*path = argv[++i];
			(*count)++;
			continue;
		}
		if (strncmp(argv[i], "--env-file=", 11) == 0) {
			*path = argv[i] + 11;
			(*count)++;
			continue;
		}
		argv[w++] = argv[i];
	}
	*argc = w;
	argv[w] = NULL;
	return 0;
}

int
main(int argc, char **argv)
{
	struct cli_ctx ctx;
	struct ops_err err = OPS_ERR_INIT;
	const struct cli_cmd *c;
	const char *name, *fmt_env;
	int rc, env_files = 0;

	memset(&ctx, 0, sizeof(ctx));
	/* JSON from the first line when the environment asks for it: usage
	 * and configuration errors come before the configuration is read */
	fmt_env = getenv("APEXOPS_LOG_FORMAT");
	if (fmt_env != NULL && strcmp(fmt_env, "json") == 0)
		log_setup(LOG_INFO, LOG_FMT_JSON, "apexops");
	if (take_env_file(&argc, argv, &ctx.env_file, &env_files) != 0)
		return cli_usage(NULL, "--env-file needs a path");
	if (argc < 2) {
		if (log_is_json())
			return cli_usage(NULL, "a command is needed");
		usage_main(stderr);
		return OPS_EXIT_USAGE;
	}
	name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
		usage_main(stdout);
		return OPS_EXIT_OK;
	}
	if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
		printf("apexops %s\n", APEXOPS_VERSION);
		return OPS_EXIT_OK;
	}
	if (strcmp(name, "help") == 0) {
		if (argc < 3) {
			usage_main(stdout);
			return OPS_EXIT_OK;
		}
		if (argc > 3 && sub_usage(argv[2], argv[3]) != NULL) {
			fputs(sub_usage(argv[2], argv[3]), stdout);
			return OPS_EXIT_OK;
		}
		return cli_help(argv[2]);
	}
	c = find_command(name);
	if (c == NULL) {
		if (log_is_json())
			return cli_usage(NULL, "unknown command '%s'", name);
		fprintf(stderr, "apexops: unknown command '%s'\n\n", name);
		usage_main(stderr);
		return OPS_EXIT_USAGE;
	}
	/* --help before any configuration is read: it must always work */
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") != 0 &&
		    strcmp(argv[i], "-h") != 0)
			continue;
		if (argc > 2 && sub_usage(c->name, argv[2]) != NULL) {
			fputs(sub_usage(c->name, argv[2]), stdout);
			return OPS_EXIT_OK;
		}
		return cli_help(name);
	}
	ctx.cmd = c->name;
	if (strcmp(c->name, "purge-old-usage") == 0)
		ctx.cmd = "purge";
	/* every base URL through the one http rule before anything runs */
	if (config_load(&ctx.cfg, ctx.env_file, NULL, &err) != 0 ||
	    http_base_urls_check(&ctx.cfg, &err) != 0) {
		rc = cli_report(&ctx, &err);
		config_release(&ctx.cfg);
		log_forget_secrets();
		return rc;
	}
	log_setup((enum log_level)log_level_parse(ctx.cfg.log_level),
		  strcmp(ctx.cfg.log_format, "json") == 0 ? LOG_FMT_JSON
							  : LOG_FMT_TEXT,
		  ctx.cmd);
	if (env_files > 1)
		cli_warn(ctx.cmd,
			 "--env-file given %d times: only '%s' is read",
			 env_files, ctx.env_file);
	/* Every command: SIGINT/SIGTERM only set ops_stop_flag, which
	 * commands, sleeps and HTTP retries poll; SIGPIPE is ignored so a
	 * closed pipe is an EPIPE error, not a silent death. A command may
	 * install handlers of its own over these (purge does, for now). */
	if (ops_signals_install() != 0) {
		ops_fail(&err, OPS_E_IO, false,
			 "cannot install the signal handlers: %s",
			 strerror(errno));
		rc = cli_report(&ctx, &err);
		goto out;
	}
	if (http_global_init(&err) != 0) {
		rc = cli_report(&ctx, &err);
		goto out;
	}
	/* getopt in each command starts after the command name */
	optind = 1;
	rc = c->fn(&ctx, argc - 1, argv + 1);
	http_global_cleanup();
out:
	/* the handlers stay: stdout is flushed by exit(), after this */
	free(ctx.db_url);
	config_release(&ctx.cfg);
	log_forget_secrets();
	return rc;
}
