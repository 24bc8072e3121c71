/* placeholder until the migrate command lands */
#include <stdio.h>

#include "cli/cli.h"

const char cmd_migrate_usage[] = "usage: apexops migrate (not built yet)\n";

int
cmd_migrate(struct cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	fprintf(stderr, "apexops migrate: not built yet\n");
	return 70;
}
