/*
 * Sandbox revenue scenarios: the original generator's formulas
 * (ORIGINAL-SYSTEM.md §2.10, generateSandboxRevenue.js) reproduced to the
 * cent, and a writer that replaces the sandbox publisher's revenue_events
 * rows of the window with COPY in one transaction.
 *
 * The algorithm (revenue_generate) is pure: placements in, rows out, no
 * database, so the original's test vectors are unit tests.
 */
#ifndef OPS_JOBS_REVENUE_H
#define OPS_JOBS_REVENUE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "jobs/sandbox_fixtures.h"

struct db;
struct progress;

#define REVENUE_MAX_DAYS 3660
/* The rotation is over the fixture adapters, sandbox_adapters[] (their
 * ids, names and eCPMs), in jobs/sandbox_fixtures.h. */
#define REVENUE_NADAPTERS SANDBOX_NADAPTERS

enum revenue_tier { REVENUE_STARTER = 0, REVENUE_GROWTH, REVENUE_SCALE };
#define REVENUE_NTIERS 3

/* A placement of the sandbox publisher; strings are borrowed. */
struct revenue_placement {
	const char *id;
	const char *name;
	const char *type;
};

/* A UTC calendar date. */
struct revenue_date {
	int y, m, d;
};

/* One revenue_events row; indexes point into the inputs. */
struct revenue_row {
	int day;       /* 0 .. days-1 */
	int placement; /* index into the placement array */
	int adapter;   /* index into sandbox_adapters */
	long long impressions;
	long long clicks;
	long long cents; /* revenue in cents (NUMERIC(12,2)) */
};

struct revenue_plan {
	enum revenue_tier tier;
	struct revenue_date start, end;
	int days;
	struct revenue_row *rows; /* owned */
	size_t nrows;
	long long total_cents;
	/* per day and adapter: day_cents[day * REVENUE_NADAPTERS + a] (owned)
	 */
	long long *day_cents;
};

/* "starter|growth|scale", case-insensitive; OPS_E_INVALID otherwise. */
int revenue_tier_parse(const char *s, enum revenue_tier *out);
const char *revenue_tier_name(enum revenue_tier t);
/* Monthly revenue target of a tier in USD (3000, 50000, 150000). */
double revenue_tier_monthly(enum revenue_tier t);

/* Days since 1970-01-01 and back; valid for years 1..9999. */
long revenue_date_to_days(const struct revenue_date *dt);
void revenue_date_from_days(long days, struct revenue_date *out);
/* "YYYY-MM-DD" into buf (at least 11 bytes). */
void revenue_date_format(const struct revenue_date *dt, char *buf, size_t len);

/*
 * The original's H: h = (h * 31 + c) mod 2^32 over the UTF-16 code units
 * of s (our inputs are ASCII, so over its bytes); 0 becomes 1.
 */
uint32_t revenue_hash(const char *s);
/* N(seed) = frac(sin(seed) * 10000), in [0, 1). */
double revenue_noise(uint32_t seed);
/*
 * JavaScript Number(x.toFixed(2)) as integer cents: the nearest cent to
 * the exact binary value of x, an exact tie going away from zero.
 */
long long revenue_js_cents(double x);
/* JavaScript Math.round: nearest integer, halves toward +infinity. */
double revenue_js_round(double x);

/*
 * Build the scenario of tier over days (1..REVENUE_MAX_DAYS) from start for
 * the placements pl[0..n-1], already in name order (the order decides the
 * adapter rotation). *out is filled and owned by the caller
 * (revenue_plan_release). n == 0 or a bad window is OPS_E_INVALID.
 */
int revenue_generate(enum revenue_tier tier, const struct revenue_date *start,
		     int days, const struct revenue_placement *pl, size_t n,
		     struct revenue_plan *out, struct ops_err *err);
void revenue_plan_release(struct revenue_plan *plan);

/*
 * Daily totals as a sparkline of ▁▂▃▄▅▆▇█ (UTF-8) appended to out, at
 * most width characters: with more days than width, each character is the
 * sum of ceil(days / width) days, and *per_char (may be NULL) says how
 * many.
 */
void revenue_sparkline(const struct revenue_plan *plan, int width,
		       struct buf *out, int *per_char);
/*
 * An SVG chart of daily revenue stacked by adapter (legend, axes, date
 * labels, title with tier and total) appended to out. Deterministic.
 */
void revenue_svg(const struct revenue_plan *plan, struct buf *out);

/* Placements loaded from the database; strings owned by the list. */
struct revenue_placements {
	struct revenue_placement *v;
	size_t n;
};

/*
 * Load the sandbox publisher's fixture placements (jobs/sandbox_fixtures.h;
 * any other placement of the publisher is not part of the scenario) in
 * name order:
 * ORDER BY name COLLATE "C", id, so the order (and with it the adapter
 * rotation) does not depend on the database's collation. An empty list is
 * not an error here.
 */
int revenue_load_placements(struct db *db, struct revenue_placements *out,
			    struct ops_err *err);
void revenue_placements_release(struct revenue_placements *pl);
/* OPS_E_NOTFOUND naming what is missing when the sandbox publisher or the
 * FakeNetwork adapters do not exist (bootstrap not run). */
int revenue_check_prereqs(struct db *db, struct ops_err *err);

struct revenue_write_opts {
	bool keep_history; /* do not delete the window's earlier rows */
	bool row_checks;   /* always let the FK triggers check each row */
};

struct revenue_write_stats {
	long long deleted;	 /* earlier rows removed from the window */
	long long inserted;	 /* rows written by COPY */
	bool bulk_checked;	 /* references checked in bulk, not per row */
	const char *why_per_row; /* static; why not in bulk, or NULL */
};

/*
 * In one transaction: unless o->keep_history, delete the sandbox
 * publisher's revenue_events rows with event_date in [plan->start,
 * plan->end]; then COPY the plan's rows. Nothing of another publisher is
 * touched. prog (may be NULL) gets the rows as they are sent. On failure
 * the transaction is rolled back.
 *
 * References: revenue_events' three foreign keys are checked either by
 * their row triggers (one lookup per key per row) or, when that is exactly
 * equivalent and allowed, once for the whole load (revenue.c,
 * "bulk reference checks"). st says which, and why not in bulk.
 */
int revenue_write(struct db *db, const struct revenue_plan *plan,
		  const struct revenue_placement *pl,
		  const struct revenue_write_opts *o, struct progress *prog,
		  struct revenue_write_stats *st, struct ops_err *err);

/* What `apexops sandbox revenue` (and the job "sandbox-revenue") runs. */
struct revenue_opts {
	bool tiers[REVENUE_NTIERS]; /* which tiers; several only with dry_run */
	int days;		    /* 1..REVENUE_MAX_DAYS */
	bool have_start; /* else today (UTC, database clock) - days + 1 */
	struct revenue_date start;
	bool dry_run;	   /* compute, write nothing, take no lock */
	bool keep_history; /* revenue_write_opts.keep_history */
	bool row_checks;   /* revenue_write_opts.row_checks */
	const char *plot;  /* write an SVG chart here (one tier), or NULL */
	bool progress_tty; /* draw the COPY's progress on stderr */
	bool force;	   /* run in production (the callers check it) */
	volatile sig_atomic_t *stop; /* polled between tiers; may be NULL */
};

struct revenue_tier_result {
	bool ran;
	struct revenue_plan plan;	  /* owned by the result */
	struct revenue_write_stats write; /* when !dry_run */
};

struct revenue_result {
	struct revenue_tier_result tier[REVENUE_NTIERS];
	size_t placements; /* fixture placements found */
	bool written;	   /* at least one tier was written */
};

/* Free the plans. NULL is a no-op. */
void revenue_result_release(struct revenue_result *res);

/*
 * The whole command as a library call: check the options, take the
 * revenue lock (sandbox_lock_try(SANDBOX_REVENUE_LOCK): another writer is
 * OPS_E_CONFLICT, exit 75; a dry run takes no lock), load the fixture
 * placements (none: OPS_E_NOTFOUND telling to run the bootstrap), check
 * the publisher and adapters exist, then per tier generate the plan,
 * write the SVG (o->plot) and, unless o->dry_run, replace the window's
 * rows (revenue_write()). *res is filled as far as the run got; release
 * it with revenue_result_release() on every path. Prints nothing. Options
 * out of range (days, several tiers without dry_run, plot with several
 * tiers) are OPS_E_INVALID. A set *o->stop between tiers is OPS_E_STOPPED.
 */
int revenue_run(struct db *db, const struct revenue_opts *o,
		struct revenue_result *res, struct ops_err *err);

#endif
