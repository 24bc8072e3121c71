/* apexops sandbox bootstrap|revenue: dispatch to the two subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

const char cmd_sandbox_usage[] =
	"usage: apexops sandbox bootstrap [options]\n"
	"       apexops sandbox revenue [TIER] [options]\n"
	"\n"
	"  bootstrap  bring the sandbox publisher (Apex Sandbox Studio) to a\n"
	"             known state: apps, placements, logins, "
	"FakeNetworkA/B/C,\n"
	"             waterfalls, Stripe test customer\n"
	"  revenue    write a deterministic Starter/Growth/Scale revenue\n"
	"             scenario for the sandbox publisher\n"
	"\n"
	"'apexops sandbox bootstrap --help' and 'apexops sandbox revenue "
	"--help'\n"
	"describe their options.\n";

int
cmd_sandbox(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 2)
		return cli_usage("sandbox", "expected bootstrap or revenue");
	/* every message of a subcommand names it: "apexops sandbox
	 * bootstrap: ..." (cli_report() and the connection's
	 * application_name use ctx->cmd) */
	if (strcmp(argv[1], "bootstrap") == 0) {
		ctx->cmd = "sandbox bootstrap";
		return cmd_sandbox_bootstrap(ctx, argc - 1, argv + 1);
	}
	if (strcmp(argv[1], "revenue") == 0) {
		ctx->cmd = "sandbox revenue";
		return cmd_sandbox_revenue(ctx, argc - 1, argv + 1);
	}
	return cli_usage("sandbox",
			 "unknown subcommand '%s' (expected bootstrap or "
			 "revenue)",
			 argv[1]);
}
