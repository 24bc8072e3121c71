/* placeholder until the command lands */
#include <stdio.h>

#include "cli/cli.h"

const char cmd_sandbox_bootstrap_usage[] =
	"usage: apexops sandbox bootstrap (not built yet)\n";

int
cmd_sandbox_bootstrap(struct cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	fprintf(stderr, "apexops sandbox bootstrap: not built yet\n");
	return 70;
}
