/* placeholder until the purge command lands */
#include <stdio.h>

#include "cli/cli.h"

const char cmd_purge_usage[] = "usage: apexops purge (not built yet)\n";

int
cmd_purge(struct cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	fprintf(stderr, "apexops purge: not built yet\n");
	return 70;
}
