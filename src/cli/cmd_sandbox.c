/* placeholder until the sandbox command lands */
#include <stdio.h>

#include "cli/cli.h"

const char cmd_sandbox_usage[] = "usage: apexops sandbox (not built yet)\n";

int
cmd_sandbox(struct cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	fprintf(stderr, "apexops sandbox: not built yet\n");
	return 70;
}
