/* apexops config: the effective configuration, secrets hidden. */
#include <stdio.h>

#include "cli/cli.h"

const char cmd_config_usage[] =
	"usage: apexops config\n"
	"\n"
	"Prints every configuration variable, its effective value and where "
	"it\n"
	"came from (default, env file, environment, secret file). Secrets are\n"
	"never printed; DATABASE_URL is shown without its password. Loading\n"
	"validates every value: a bad one exits 78 naming the variable.\n";

int
cmd_config(struct cli_ctx *ctx, int argc, char **argv)
{
	(void)argv;
	if (argc > 1)
		return cli_usage("config", "takes no arguments");
	config_show(&ctx->cfg);
	if (ctx->cfg.confirm_raw != NULL && !ctx->cfg.confirm)
		cli_warn("config",
			 "CONFIRM='%s' is not exactly 1 or true: purge runs as "
			 "a dry-run",
			 ctx->cfg.confirm_raw);
	return 0;
}
