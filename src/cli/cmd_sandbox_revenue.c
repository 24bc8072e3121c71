/* placeholder until the command lands */
#include <stdio.h>

#include "cli/cli.h"

const char cmd_sandbox_revenue_usage[] =
	"usage: apexops sandbox revenue (not built yet)\n";

int
cmd_sandbox_revenue(struct cli_ctx *ctx, int argc, char **argv)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	fprintf(stderr, "apexops sandbox revenue: not built yet\n");
	return 70;
}
