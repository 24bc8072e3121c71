/*
 * What every command gets: the loaded configuration and helpers to reach
 * the database and report errors. Each command lives in cmd_<name>.c and
 * returns a process exit code (sysexits: 0 ok, 1 a job failed, 64 usage,
 * 69 database unreachable, 75 temporary failure, 78 configuration).
 */
#ifndef OPS_CLI_CLI_H
#define OPS_CLI_CLI_H

#include <stdbool.h>

#include "core/config.h"
#include "core/err.h"

struct db;

struct cli_ctx {
	struct ops_config cfg;
	const char *cmd;      /* command name, e.g. "purge" */
	const char *env_file; /* --env-file, or NULL */
	char *db_url;	      /* resolved URL (embedded or DATABASE_URL) */
	bool embedded;	      /* db_url points at the embedded cluster */
};

struct cli_cmd {
	const char *name;
	int (*fn)(struct cli_ctx *ctx, int argc, char **argv);
	const char *summary;
	const char *usage; /* full --help text */
};

/*
 * Connect as application_name "apexops/<ctx->cmd>". Without DATABASE_URL
 * this starts the embedded cluster if needed and says so in one line.
 * *out is a new connection the caller closes.
 */
int cli_db_connect(struct cli_ctx *ctx, struct db **out, struct ops_err *err);

/* Print "apexops CMD: MESSAGE" and the help hint to stderr; returns 64.
 * cmd NULL or "": "apexops: MESSAGE" and a hint to 'apexops --help'. */
int cli_usage(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Print err as "apexops CMD: error: ..." and return its exit code. ctx
 * may be NULL (then "apexops: error: ..."); so may err (exit 1). */
int cli_report(const struct cli_ctx *ctx, const struct ops_err *err);
/*
 * Print a warning, "apexops CMD: warning: MESSAGE" (cmd NULL or "":
 * "apexops: warning: ..."). With APEXOPS_LOG_FORMAT=json, cli_usage(),
 * cli_report() and cli_warn() each write one JSON line instead, so that
 * every stderr line is JSON. Main thread.
 */
void cli_warn(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Print the --help text of a command to stdout; returns 0. */
int cli_help(const char *cmd);
/* Is stdout/stderr a terminal (for progress and sparklines)? */
bool cli_isatty_err(void);
bool cli_isatty_out(void);

/* commands */
int cmd_db(struct cli_ctx *ctx, int argc, char **argv);
int cmd_migrate(struct cli_ctx *ctx, int argc, char **argv);
int cmd_status(struct cli_ctx *ctx, int argc, char **argv);
int cmd_config(struct cli_ctx *ctx, int argc, char **argv);
int cmd_cron(struct cli_ctx *ctx, int argc, char **argv);
int cmd_queue(struct cli_ctx *ctx, int argc, char **argv);
int cmd_privacy(struct cli_ctx *ctx, int argc, char **argv);
int cmd_worker(struct cli_ctx *ctx, int argc, char **argv);
int cmd_purge(struct cli_ctx *ctx, int argc, char **argv);
int cmd_sandbox(struct cli_ctx *ctx, int argc, char **argv);
int cmd_sandbox_bootstrap(struct cli_ctx *ctx, int argc, char **argv);
int cmd_sandbox_revenue(struct cli_ctx *ctx, int argc, char **argv);
int cmd_stripe(struct cli_ctx *ctx, int argc, char **argv);
int cmd_stripe_sync_usage(struct cli_ctx *ctx, int argc, char **argv);
int cmd_stripe_dunning(struct cli_ctx *ctx, int argc, char **argv);
int cmd_dunning(struct cli_ctx *ctx, int argc, char **argv);

extern const char cmd_db_usage[];
extern const char cmd_migrate_usage[];
extern const char cmd_status_usage[];
extern const char cmd_config_usage[];
extern const char cmd_cron_usage[];
extern const char cmd_queue_usage[];
extern const char cmd_privacy_usage[];
extern const char cmd_worker_usage[];
extern const char cmd_purge_usage[];
extern const char cmd_sandbox_usage[];
extern const char cmd_sandbox_bootstrap_usage[];
extern const char cmd_sandbox_revenue_usage[];
extern const char cmd_stripe_usage[];
extern const char cmd_stripe_sync_usage_usage[];
extern const char cmd_stripe_dunning_usage[];
extern const char cmd_dunning_usage[];

#endif
