/*
 * Sandbox bootstrap: brings the sandbox publisher Apex Sandbox Studio to
 * the fixture state of jobs/sandbox_fixtures.h, on an empty database too.
 * The database part (sandbox_db.c) converges every fixture row in one
 * transaction: a row that already matches is not written, so a rerun
 * changes nothing and keeps updated_at. The Stripe part (sandbox_stripe.c)
 * provisions the owner's test customer through stripe/customer.h.
 *
 * Thread safety: each function uses the struct db / struct stripe it is
 * given, which belong to one thread.
 */
#ifndef OPS_JOBS_SANDBOX_H
#define OPS_JOBS_SANDBOX_H

#include <stdbool.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"
#include "jobs/sandbox_fixtures.h"

struct db;
struct stripe;

enum sandbox_kind {
	SBX_PUBLISHER,
	SBX_APPS,
	SBX_PLACEMENTS,
	SBX_USERS,
	SBX_ADAPTERS,
	SBX_ADAPTER_CONFIGS,
	SBX_WATERFALLS,
	SBX_NKINDS
};
extern const char *const sandbox_kind_names[SBX_NKINDS];

/* Per kind of row: fixture rows created, restored (updated), already
 * right; rows removed; rows of the sandbox publisher that are not
 * fixtures, found and left (without --prune). */
struct sandbox_counts {
	int created, updated, unchanged, removed, extra;
};

struct sandbox_report {
	struct sandbox_counts kind[SBX_NKINDS];
	int passwords_rehashed; /* users whose hash was replaced */
	/* one line per change, "restored placement <id> (<name>): name
	 * 'x' -> 'y'", "created ...", "removed ...", "extra, left ..."
	 * (owned; sandbox_report_release()) */
	struct buf changes;
};

/* Free what the report owns. NULL is a no-op. */
void sandbox_report_release(struct sandbox_report *rep);

/*
 * The sandbox commands write demo logins and data: in a production
 * environment (config_is_production(): APP_ENV or NODE_ENV "production",
 * any case, surrounding white space ignored) they refuse unless force.
 * Returns 0, or OPS_E_CONFIG (exit 78) with a message naming the
 * variable, its value, why (what: e.g. "the sandbox bootstrap writes demo
 * logins and data") and --force.
 */
int sandbox_check_environment(const struct ops_config *cfg, bool force,
			      const char *what, struct ops_err *err);

/* Total of created + updated + removed over every kind. */
int sandbox_report_changes(const struct sandbox_report *rep);

/* Advisory lock names of the two sandbox commands. */
#define SANDBOX_BOOTSTRAP_LOCK "apexops/sandbox-bootstrap"
#define SANDBOX_REVENUE_LOCK   "apexops/sandbox-revenue"

/*
 * Take the session advisory lock called name, trying once (db_lock_try()):
 * both sandbox commands behave alike (no waiting; the caller exits 75 and
 * may rerun). When another session holds it: OPS_E_CONFLICT (transient),
 * "<what> is running: lock '<name>' ... held by backend pid N
 * (application_name ..., client ..., connected since ...); run again when
 * it has finished". Release with sandbox_lock_release() (which ignores
 * errors: db_close() releases the session's locks anyway).
 */
int sandbox_lock_try(struct db *db, const char *name, const char *what,
		     struct ops_err *err);
void sandbox_lock_release(struct db *db, const char *name);

struct sandbox_db_opts {
	/* the sandbox login password (1..72 bytes, bcrypt's limit; longer
	 * or empty is OPS_E_CONFIG naming SANDBOX_USER_PASSWORD) */
	const char *password;
	bool dry_run; /* roll back; the report says what a run would do */
	bool prune;   /* remove the sandbox publisher's non-fixture rows */
};

/*
 * The database part, in one transaction, committed (or rolled back when
 * o->dry_run or on failure). Every fixture row (publisher, apps,
 * placements, logins, adapters, adapter configs, waterfalls) is compared
 * column by column with jobs/sandbox_fixtures.h and created or restored
 * where it differs; a second config of a fixture adapter or a second
 * waterfall of a fixture placement is removed (it would compete with the
 * fixture's). Rows of the sandbox publisher that are not fixtures (apps,
 * placements and their waterfalls, adapter configs, logins) are reported
 * as extra and left, or removed with o->prune (an extra placement with its
 * revenue_events rows). A sandbox login's email owned by another user is
 * OPS_E_REFUSED (permanent: exit 1). *rep is filled on success and on
 * failure; release it with sandbox_report_release().
 */
int sandbox_bootstrap_db(struct db *db, const struct sandbox_db_opts *o,
			 struct sandbox_report *rep, struct ops_err *err);

/* Stripe provisioning steps, in order. */
enum sandbox_stripe_step {
	SBX_ST_CUSTOMER,
	SBX_ST_CARD,
	SBX_ST_ACH,
	SBX_ST_SEPA,
	SBX_ST_DEFAULT,
	SBX_ST_NSTEPS
};
enum sandbox_stripe_outcome {
	SBX_OUT_NONE = 0, /* not reached */
	SBX_OUT_FOUND,	  /* already there, unchanged */
	SBX_OUT_CREATED,  /* created or attached (or set) now */
	SBX_OUT_WOULD,	  /* dry run: would create/attach/set */
	SBX_OUT_REFUSED,  /* Stripe refused it; detail says why */
	SBX_OUT_FAILED	  /* a failure that makes the run fail */
};
struct sandbox_stripe_item {
	enum sandbox_stripe_outcome outcome;
	char id[128];	  /* Stripe object id, when known */
	char detail[800]; /* Stripe's error, for REFUSED/FAILED */
};
struct sandbox_stripe_report {
	struct sandbox_stripe_item step[SBX_ST_NSTEPS];
};
extern const char *const sandbox_stripe_step_names[SBX_ST_NSTEPS];

/*
 * Find or create the owner's Stripe customer (stored in
 * users.stripe_customer_id), attach a card (source tok_visa) and an ACH
 * bank account (source btok_us_verified), attach a SEPA Direct Debit
 * PaymentMethod (type sepa_debit, Stripe's test IBAN
 * DE89370400440532013000, billing name and email), and make the card the
 * default source; each step's item gets the Stripe id (card_..., ba_...,
 * pm_...). Each POST carries an idempotency key derived from the customer
 * and the step, so a crashed rerun replays. A method Stripe refuses is
 * recorded as SBX_OUT_REFUSED with Stripe's message and the other steps go
 * on. Returns an error when a step failed otherwise (network, auth, 5xx)
 * or the owner row is missing. dry_run sends no POST.
 */
int sandbox_bootstrap_stripe(struct db *db, struct stripe *st, bool dry_run,
			     struct sandbox_stripe_report *rep,
			     struct ops_err *err);

/*
 * Keep or make a bcrypt hash of password: when stored (may be NULL) is a
 * bcrypt hash of cost 10 or more that matches password, *out is a copy of
 * it and *changed false; otherwise *out is a new $2b$10$ hash and
 * *changed true. The caller frees *out.
 */
int sandbox_password_hash(const char *password, const char *stored, char **out,
			  bool *changed, struct ops_err *err);

#endif
