/* apexops sandbox bootstrap: the sandbox publisher to a known state. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "core/buf.h"
#include "core/log.h"
#include "db/db.h"
#include "jobs/sandbox.h"
#include "stripe/stripe.h"

#define CMD "sandbox bootstrap"

const char cmd_sandbox_bootstrap_usage[] =
	"usage: apexops sandbox bootstrap [--dry-run] [--prune] [--force]\n"
	"\n"
	"Bring the sandbox publisher Apex Sandbox Studio\n"
	"(" SANDBOX_PUBLISHER_ID ") to a known state, on an empty\n"
	"database too: its 5 apps and 25 placements (created where missing),\n"
	"the owner, developer and finance logins (bcrypt of\n"
	"SANDBOX_USER_PASSWORD), FakeNetworkA/B/C adapters and configs, and\n"
	"one static waterfall per placement. Every fixture row is compared\n"
	"column by column and restored where it drifted (each change is\n"
	"listed); rows that already match are not written, so a second run\n"
	"reports no changes. Rows of the sandbox publisher that are not\n"
	"fixtures (an added placement, app, login, config or waterfall) are\n"
	"listed as extra and left alone unless --prune. All database work is\n"
	"one transaction under an advisory lock.\n"
	"\n"
	"With STRIPE_SECRET_KEY set, after the commit: find or create the\n"
	"owner's Stripe customer and attach a card (tok_visa), an ACH account\n"
	"(btok_us_verified) and a SEPA Direct Debit PaymentMethod (Stripe's\n"
	"test IBAN DE89370400440532013000), the card as default source; the\n"
	"output lists the attached methods with their ids. A method Stripe\n"
	"refuses is reported with Stripe's reason; any other Stripe failure\n"
	"exits 1, the database work kept.\n"
	"\n"
	"  --dry-run  do the database work in a transaction, report what it\n"
	"             would change, roll back; Stripe is only read\n"
	"  --prune    also remove the sandbox publisher's rows that are not\n"
	"             fixtures (an extra placement with its demo revenue)\n"
	"  --force    run even when APP_ENV or NODE_ENV is production (any\n"
	"             case, surrounding spaces ignored); refused otherwise\n"
	"\n"
	"Exit: 0 done, 1 a step failed (a sandbox login's email owned by\n"
	"another user included: a retry cannot help), 64 usage, 69 database\n"
	"unreachable, 75 another bootstrap holds the lock, 78 refused\n"
	"(production) or bad configuration.\n";

static void
print_report(const struct sandbox_report *rep, bool dry_run)
{
	int changes = sandbox_report_changes(rep), extra = 0;

	for (int k = 0; k < SBX_NKINDS; k++) {
		const struct sandbox_counts *c = &rep->kind[k];

		printf("  %-16s created %d, updated %d, unchanged %d",
		       sandbox_kind_names[k], c->created, c->updated,
		       c->unchanged);
		if (c->removed > 0)
			printf(", removed %d", c->removed);
		if (c->extra > 0)
			printf(", extra %d", c->extra);
		putchar('\n');
		extra += c->extra;
	}
	/* each change, one line, as "restored placement <id> (<name>):
	 * name 'x' -> 'y'" */
	for (const char *l = buf_str(&rep->changes); *l != '\0';) {
		const char *nl = strchr(l, '\n');
		int len = nl != NULL ? (int)(nl - l) : (int)strlen(l);

		printf("  %.*s\n", len, l);
		l += len + (nl != NULL);
	}
	if (rep->passwords_rehashed > 0)
		printf("  password hashes replaced for %d existing user%s "
		       "(SANDBOX_USER_PASSWORD differs from the stored "
		       "hash)\n",
		       rep->passwords_rehashed,
		       rep->passwords_rehashed == 1 ? "" : "s");
	if (changes == 0)
		printf("database: no changes\n");
	else if (dry_run)
		printf("database: %d change%s would be made (dry run, rolled "
		       "back)\n",
		       changes, changes == 1 ? "" : "s");
	else
		printf("database: %d change%s committed\n", changes,
		       changes == 1 ? "" : "s");
	if (extra > 0)
		printf("database: %d extra row%s of the sandbox publisher left "
		       "(not fixtures; --prune removes them)\n",
		       extra, extra == 1 ? "" : "s");
}

static const char *
outcome_word(enum sandbox_stripe_outcome o, enum sandbox_stripe_step s)
{
	switch (o) {
	case SBX_OUT_NONE:
		return "not reached";
	case SBX_OUT_FOUND:
		return s == SBX_ST_DEFAULT ? "already set" : "found";
	case SBX_OUT_CREATED:
		return s == SBX_ST_CUSTOMER  ? "created or updated"
		       : s == SBX_ST_DEFAULT ? "set"
					     : "attached";
	case SBX_OUT_WOULD:
		return s == SBX_ST_CUSTOMER  ? "would create or update"
		       : s == SBX_ST_DEFAULT ? "would set"
					     : "would attach";
	case SBX_OUT_REFUSED:
		return "refused by Stripe";
	case SBX_OUT_FAILED:
		return "failed";
	}
	return "?";
}

static void
print_stripe(const struct sandbox_stripe_report *rep)
{
	int changes = 0, failures = 0;

	for (int s = 0; s < SBX_ST_NSTEPS; s++) {
		const struct sandbox_stripe_item *it = &rep->step[s];
		char detail[sizeof(it->detail)];

		snprintf(detail, sizeof(detail), "%s", it->detail);
		log_scrub(detail);
		printf("  stripe %-24s %s%s%s%s%s\n",
		       sandbox_stripe_step_names[s],
		       outcome_word(it->outcome, (enum sandbox_stripe_step)s),
		       it->id[0] ? " " : "", it->id, detail[0] ? ": " : "",
		       detail);
		if (it->outcome == SBX_OUT_CREATED ||
		    it->outcome == SBX_OUT_WOULD)
			changes++;
		if (it->outcome == SBX_OUT_FAILED)
			failures++;
	}
	if (changes == 0 && failures == 0)
		printf("stripe: no changes\n");
	{
		static const struct {
			enum sandbox_stripe_step step;
			const char *what;
		} methods[] = {
			{ SBX_ST_CARD, "card" },
			{ SBX_ST_ACH, "ACH" },
			{ SBX_ST_SEPA, "SEPA" },
		};
		const char *sep = "";

		printf("stripe: payment methods on %s:",
		       rep->step[SBX_ST_CUSTOMER].id[0]
			       ? rep->step[SBX_ST_CUSTOMER].id
			       : "(no customer yet)");
		for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]);
		     i++) {
			const struct sandbox_stripe_item *it =
				&rep->step[methods[i].step];

			if (it->outcome != SBX_OUT_FOUND &&
			    it->outcome != SBX_OUT_CREATED)
				continue;
			printf("%s %s %s", sep, methods[i].what, it->id);
			sep = ",";
		}
		printf("%s\n", sep[0] ? "" : " none");
	}
}

static int
parse_args(int argc, char **argv, struct sandbox_db_opts *o, bool *force)
{
	enum { O_DRY = 1, O_FORCE, O_PRUNE };
	static const struct option longopts[] = {
		{ "dry-run", no_argument, NULL, O_DRY },
		{ "force", no_argument, NULL, O_FORCE },
		{ "prune", no_argument, NULL, O_PRUNE },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 0; /* full reset of GNU getopt */
	while ((c = cli_getopt(CMD, argc, argv, "", longopts)) != -1) {
		switch (c) {
		case O_DRY:
			o->dry_run = true;
			break;
		case O_PRUNE:
			o->prune = true;
			break;
		case O_FORCE:
			*force = true;
			break;
		default:
			return OPS_EXIT_USAGE;
		}
	}
	if (optind < argc)
		return cli_usage(CMD,
				 "unexpected argument '%s' (allowed: "
				 "--dry-run, --prune, --force)",
				 argv[optind]);
	return 0;
}

int
cmd_sandbox_bootstrap(struct cli_ctx *ctx, int argc, char **argv)
{
	struct ops_err err = OPS_ERR_INIT;
	struct sandbox_report rep = { 0 };
	struct sandbox_stripe_report srep;
	struct stripe *st = NULL;
	struct db *db = NULL;
	struct sandbox_db_opts dbo = { NULL, false, false };
	bool force = false, locked = false;
	int rc = OPS_EXIT_OK, r;

	r = parse_args(argc, argv, &dbo, &force);
	if (r != 0)
		return r;
	r = sandbox_check_environment(
		&ctx->cfg, force,
		"the sandbox bootstrap writes demo logins and data", &err);
	if (r != 0)
		return cli_report(ctx, &err);
	if (ctx->cfg.stripe_secret_key != NULL) {
		struct stripe_opts so = { 0 };

		so.api_base = ctx->cfg.stripe_api_base;
		so.secret_key = ctx->cfg.stripe_secret_key;
		so.api_version = ctx->cfg.stripe_api_version;
		r = stripe_new(&so, &st, &err);
		if (r != 0)
			return cli_report(ctx, &err);
	}

	r = cli_db_connect(ctx, &db, &err);
	if (r != 0) {
		rc = cli_report(ctx, &err);
		goto out;
	}
	r = sandbox_lock_try(db, SANDBOX_BOOTSTRAP_LOCK,
			     "another sandbox bootstrap", &err);
	if (r != 0) {
		rc = cli_report(ctx, &err);
		goto out;
	}
	locked = true;
	dbo.password = ctx->cfg.sandbox_user_password;
	r = sandbox_bootstrap_db(db, &dbo, &rep, &err);
	if (r != 0) {
		ops_err_prefix(&err, "sandbox bootstrap rolled back");
		rc = cli_report(ctx, &err);
		goto out;
	}
	printf("sandbox bootstrap%s: %s (%s)\n",
	       dbo.dry_run ? " (dry run)" : "", SANDBOX_PUBLISHER_NAME,
	       SANDBOX_PUBLISHER_ID);
	print_report(&rep, dbo.dry_run);

	if (st == NULL) {
		printf("stripe: skipped (STRIPE_SECRET_KEY is not set)\n");
		goto out;
	}
	r = sandbox_bootstrap_stripe(db, st, dbo.dry_run, &srep, &err);
	print_stripe(&srep);
	if (r != 0) {
		cli_report(ctx, &err);
		cli_warn(CMD,
			 "stripe provisioning failed; the database changes "
			 "above %s",
			 dbo.dry_run ? "were rolled back (dry run)"
				     : "are committed and kept");
		rc = OPS_EXIT_FAIL;
	}
out:
	if (locked)
		sandbox_lock_release(db, SANDBOX_BOOTSTRAP_LOCK);
	sandbox_report_release(&rep);
	db_close(db);
	stripe_free(st);
	fflush(stdout);
	return rc;
}
