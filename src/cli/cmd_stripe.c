/* apexops stripe SUBCOMMAND: dispatch to the billing subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct cli_cmd stripe_subs[] = {
	{ "sync-usage", cmd_stripe_sync_usage,
	  "report daily usage to Stripe as Billing Meter Events",
	  cmd_stripe_sync_usage_usage },
	{ "dunning", cmd_stripe_dunning,
	  "retry failed invoice payments, suspend, reactivate",
	  cmd_stripe_dunning_usage },
};
#define NSUBS (sizeof(stripe_subs) / sizeof(stripe_subs[0]))

const char cmd_stripe_usage[] =
	"usage: apexops stripe <subcommand> [options]\n"
	"\n"
	"  sync-usage  report daily usage to Stripe as Billing Meter Events\n"
	"  dunning     retry failed invoice payments on DUNNING_RETRY_DAYS,\n"
	"              suspend after the last attempt, reactivate when paid\n"
	"\n"
	"'apexops stripe SUBCOMMAND --help' describes its options.\n";

int
cmd_stripe(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 2)
		return cli_usage("stripe", "expected a subcommand");
	for (size_t i = 0; i < NSUBS; i++) {
		if (strcmp(argv[1], stripe_subs[i].name) != 0)
			continue;
		if (argc > 2 && (strcmp(argv[2], "--help") == 0 ||
				 strcmp(argv[2], "-h") == 0)) {
			fputs(stripe_subs[i].usage, stdout);
			return OPS_EXIT_OK;
		}
		return stripe_subs[i].fn(ctx, argc - 1, argv + 1);
	}
	return cli_usage("stripe", "unknown subcommand '%s'", argv[1]);
}
