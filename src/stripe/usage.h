/*
 * Stripe usage sync: report each customer's daily usage (usage_records)
 * as Billing Meter Events, exactly once whatever crashes, reruns or
 * throttling happen.
 *
 * For a day D in CRON_TZ, PostgreSQL computes the window [D 00:00, D+1
 * 00:00) local (23 or 25 hours on DST days) and the sums per customer and
 * metric; customers map to Stripe through users.stripe_customer_id, else
 * subscriptions.stripe_customer_id. The plan is one statement that writes a
 * ledger row (apexops.stripe_usage_events, status pending) for every
 * (customer, metric, day) whose recorded total exceeds what earlier rows
 * already carry: seq 0 for the first report, seq 1, 2, ... for late usage
 * (the difference). Then worker threads, each with its own Stripe client
 * and one shared rate limit, POST /v1/billing/meter_events with a
 * deterministic identifier and the same Idempotency-Key; the main thread
 * settles the rows in batches (sent or failed). A crash leaves rows
 * pending; the next run resends them unchanged, and Stripe's answer to a
 * known identifier (400 "An event already exists with identifier ...")
 * settles them as delivered. Decreases and customers without a Stripe id
 * are reported, never sent.
 *
 * The engine is in src/stripe because the brief of issue 12 put it there;
 * it talks to the database through db/ like the jobs do.
 *
 * Thread safety: usage_sync() starts and joins its own threads; callers
 * call it from one thread with their own struct db.
 */
#ifndef OPS_STRIPE_USAGE_H
#define OPS_STRIPE_USAGE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/config.h"
#include "core/err.h"

struct db;
struct job_ctx;

/* Stripe accepts a meter event's timestamp only within the past 35 days;
 * a day whose start is older than this (less a margin for the run) is
 * refused before anything is sent. */
#define USAGE_MAX_AGE_S	   (35L * 86400)
#define USAGE_AGE_MARGIN_S 3600L

/* A metric and the meter event name it is reported under. */
struct usage_meter {
	char *metric;
	char *event_name;
};

struct usage_meters {
	struct usage_meter *v;
	size_t n;
};

/*
 * Parse APEXOPS_STRIPE_METER_EVENTS ("impressions=apex_impressions,
 * api_calls=apex_api_calls"; NULL: none) over the default metrics
 * impressions, api_calls and data_transfer, each reported under its own
 * name unless mapped; a mapped metric not among them is added. A metric is
 * 1..32 of [A-Za-z0-9_.-], an event name 1..100 of [A-Za-z0-9_.:-]; a
 * metric given twice is an error. OPS_E_CONFIG naming the variable.
 * Release with usage_meters_release().
 */
int usage_meters_parse(const char *spec, struct usage_meters *out,
		       struct ops_err *err) __attribute__((warn_unused_result));
void usage_meters_release(struct usage_meters *m);

/* Is this Stripe error the duplicate-identifier refusal, i.e. the event
 * was delivered before? */
bool usage_is_duplicate(long http_status, const char *message);

struct usage_opts {
	const char *from; /* first day, YYYY-MM-DD in tz; NULL: scheduled */
	const char *to;	  /* last day; NULL: from */
	bool dry_run;	  /* plan and print; nothing written, nothing sent */
	/* filled by usage_job_run() from the configuration when 0/NULL */
	const char *tz;
	double now; /* unix seconds (the scheduler's clock, or a slot) */
	const char *api_base;
	const char *api_version;
	const char *secret_key; /* NULL only for a dry run */
	long max_rps;		/* resolved (> 0) */
	long concurrency;
	long timeout_ms;
	const struct usage_meters *meters;
	volatile sig_atomic_t *stop;
	long long run_id;
};

/* One meter event of the run: planned, sent, or left. */
struct usage_event {
	long long id; /* ledger row; 0 in a dry run's plan */
	char customer_id[40];
	char stripe_customer_id[256];
	char metric[40];
	char event_name[104];
	char day[11];
	int seq;
	long long quantity;  /* this event's value */
	long long day_total; /* the day's total once this event is counted */
	long long event_ts;  /* the day's start, unix seconds */
	char identifier[104];
	char status[16];  /* pending, sent, failed; "would send" (dry run) */
	char outcome[16]; /* created, replayed, duplicate, or "" */
	char request_id[64];
	char *error; /* NULL when none */
};

/* Usage of a customer without a Stripe id (not sent). */
struct usage_missing {
	char customer_id[40];
	char metric[40];
	char day[11];
	long long quantity;
};

/* Recorded usage below what Stripe was already told. */
struct usage_decrease {
	char customer_id[40];
	char metric[40];
	char day[11];
	long long reported;
	long long recorded;
};

struct usage_day {
	char day[11];
	char start[32]; /* window, RFC 3339 UTC */
	char end[32];
	int hours; /* 23, 24 or 25 */
};

struct usage_result {
	char tz[64];
	bool dry_run;
	struct usage_day *days;
	size_t ndays;
	struct usage_event *ev;
	size_t nev;
	struct usage_missing *missing;
	size_t nmissing;
	struct usage_decrease *dec;
	size_t ndec;
	long long planned; /* rows written by this run's plan */
	long long sent, created, replayed, duplicate, failed, left;
	double wall_s;	 /* whole run */
	double ledger_s; /* in ledger statements: plan, load, settle */
	double audit_s;	 /* writing billing_audit */
	/* database time (ledger and audit) with no call in flight */
	double ledger_serial_s;
	double plan_s; /* days, plan and loading the open rows */
	double send_s; /* sending phase */
	long long run_id;
};

/*
 * Run the sync described by o on db (main thread's connection; workers
 * send, the caller's thread settles). Days: o->from..o->to, each refused
 * (OPS_E_INVALID, nothing sent) when malformed, not over yet in o->tz, or
 * older than Stripe's 35 days; with o->from NULL, the scheduled set:
 * yesterday, plus every earlier day within the window that already has
 * ledger rows (pending or failed rows are resent, late usage is planned).
 * res is filled (release with usage_result_release()). Returns 0, or
 * OPS_E_HTTP when any row failed (res tells which), OPS_E_STOPPED when
 * stopped (rows left pending), or another error.
 */
int usage_sync(struct db *db, const struct usage_opts *o,
	       struct usage_result *res, struct ops_err *err)
	__attribute__((warn_unused_result));
void usage_result_release(struct usage_result *res);

/* Counts of res as a JSON object text (malloc'ed), for the run ledger. */
char *usage_counts_json(const struct usage_result *res);

/*
 * Run function of the job "stripe-usage-sync". ctx->args is a struct
 * usage_opts * with from/to/dry_run set (the CLI), or NULL (the scheduler:
 * yesterday in CRON_TZ relative to ctx->slot, and earlier open days);
 * everything else comes from ctx->cfg, and the key is read again on every
 * run. ctx->out may point at a struct usage_result to fill.
 */
int usage_job_run(struct job_ctx *ctx, struct ops_err *err);

/* The `apexops status` section: last synced day, rows pending and failed,
 * customers with recent usage but no Stripe id, open decreases. */
int usage_status_report(struct db *db, struct buf *out, struct ops_err *err);

#endif
