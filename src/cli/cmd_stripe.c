/* apexops stripe SUBCOMMAND: the billing jobs, dispatched from a table. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct {
	const char *name;
	const char *cmd; /* ctx->cmd: names the subcommand in messages */
	int (*fn)(struct cli_ctx *ctx, int argc, char **argv);
} stripe_subs[] = {
	{ "dunning", "stripe dunning", cmd_stripe_dunning },
};

const char cmd_stripe_usage[] =
	"usage: apexops stripe dunning [--dry-run] [--json]\n"
	"\n"
	"  dunning    retry failed invoice payments on DUNNING_RETRY_DAYS "
	"(the\n"
	"             dunning-retries job, 03:00): open cases from "
	"billing_audit\n"
	"             payment_failed rows and Stripe's open invoices, pay "
	"the due\n"
	"             ones, suspend after the last attempt, reactivate when "
	"paid.\n"
	"             --dry-run reads Stripe and writes nothing; --json "
	"prints\n"
	"             the counts and each case's outcome as JSON. "
	"'apexops dunning'\n"
	"             lists and shows the cases.\n";

int
cmd_stripe(struct cli_ctx *ctx, int argc, char **argv)
{
	if (argc < 2)
		return cli_usage("stripe", "expected a subcommand: dunning");
	for (size_t i = 0; i < sizeof(stripe_subs) / sizeof(stripe_subs[0]);
	     i++) {
		if (strcmp(argv[1], stripe_subs[i].name) != 0)
			continue;
		ctx->cmd = stripe_subs[i].cmd;
		return stripe_subs[i].fn(ctx, argc - 1, argv + 1);
	}
	return cli_usage("stripe", "unknown subcommand '%s' (expected dunning)",
			 argv[1]);
}
