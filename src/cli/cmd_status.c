/* placeholder until the status command lands */
#include <stdio.h>

#include "cli/cli.h"

const char cmd_status_usage[] = "usage: apexops status (not built yet)\n";

int
cmd_status(struct cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	fprintf(stderr, "apexops status: not built yet\n");
	return 70;
}
