/*
 * Configuration: one typed table (redis standardConfig, pgbouncer CF_*)
 * drives loading, validation and `apexops config`. Sources, lowest first:
 * defaults < .env file < the process environment < command flags (applied
 * by each command). Secrets may come from NAME_FILE (a mounted secret);
 * they are registered with the logger so that no line can show them.
 */
#ifndef OPS_CORE_CONFIG_H
#define OPS_CORE_CONFIG_H

#include <stdbool.h>

#include "core/dotenv.h"
#include "core/err.h"

struct ops_config {
	char *database_url; /* NULL: use the embedded cluster */
	bool database_ssl;
	long retention_months;
	long usage_retention_months;
	bool confirm;
	char *confirm_raw; /* as given, for the "means dry-run" warning */
	char *privacy_export_provider;
	char *privacy_export_bucket;
	long privacy_expiry_days;
	char *stripe_secret_key;
	char *stripe_api_version;
	char *stripe_api_base;
	char *stripe_webhook_secret;
	char *sandbox_user_password;
	char *cron_tz;
	char *app_env;
	char *node_env;
	char *home;
	char *log_level;
	char *log_format;
	long connect_timeout_s;
	long connect_retries;
	long statement_timeout_ms;
	long lock_timeout_ms;
	char *pg_bindir;
	char *migrations_dir;
	/* the scheduler (apexops cron) */
	char *schedule_stripe_usage_sync; /* APEXOPS_SCHEDULE_<JOB>: a cron */
	char *schedule_usage_purge;	  /* expression or "off"; NULL: the */
	char *schedule_dunning_retries;	  /* job's default */
	char *schedule_privacy_expiry;
	char *schedule_queue_prune;
	long cron_grace_s;
	long cron_lease_s;
	long cron_deadline_s;
	char *http_addr;
	char *clock_start; /* virtual clock (core/clock.h); NULL: real */
	char *clock_epoch;
	char *clock_speed;
	/* the queue workers (apexops worker) */
	long worker_concurrency;
	long privacy_worker_concurrency;
	long worker_lease_s;
	long worker_grace_s;
	long queue_keep_days;
	/* the pacer's standby guard, for the scheduled purge and as the
	 * defaults of purge's --max-lag, --max-lag-bytes, --max-lag-wait */
	long purge_max_lag_ms;
	long long purge_max_lag_bytes;
	long purge_max_lag_wait_s;
	/* privacy exports (jobs/privacy*.c, storage/) */
	char *privacy_export_dir;
	char *gcs_endpoint;
	char *gcs_hmac_access_id;
	char *gcs_hmac_secret;
	char *google_application_credentials;
	long s3_multipart_threshold_mb; /* S3/GCS part size (storage/) */
	long storage_timeout_s;		/* per S3/GCS request attempt */
	/* Stripe usage sync and dunning */
	long stripe_max_rps; /* 0: 25 with a test key, 100 with a live key */
	long stripe_concurrency;
	char *stripe_meter_events; /* "metric=event_name,..."; NULL: names */
	char *dunning_retry_days;  /* "3,5,7" */
	long stripe_timeout_ms;	   /* one Stripe call, per attempt */
	/* where each value came from, for `apexops config` */
	const char *source[96];
};

/* CFG_INT is a long, CFG_SIZE a long long of bytes (parse_size: "16MB") */
enum cfg_type { CFG_STR, CFG_INT, CFG_BOOL, CFG_ENUM, CFG_CONFIRM, CFG_SIZE };
enum cfg_flags {
	CFG_SECRET = 1 << 0,	 /* never printed; NAME_FILE accepted */
	CFG_URL_SECRET = 1 << 2, /* printed with its password removed */
	/* the base URL of a remote service: the loader only stores it; main()
	 * checks every one with http_base_urls_check() (src/http/url.h), as
	 * src/core does not include curl */
	CFG_BASE_URL = 1 << 3
};

struct cfg_def {
	const char *name;
	enum cfg_type type;
	size_t offset;
	const char *def;     /* NULL: no default */
	long min, max;	     /* CFG_INT, CFG_SIZE */
	const char *allowed; /* CFG_ENUM: "a|b|c" */
	int flags;
	const char *help;
};

extern const struct cfg_def cfg_defs[];
extern const int cfg_ndefs;

/*
 * The table's entry for variable name, or NULL when there is none. A
 * command's flag that overrides a variable takes its range from here, so
 * the flag and the variable cannot disagree. Thread-safe (the table is
 * constant).
 */
const struct cfg_def *config_def(const char *name);

/*
 * Load every variable. env_file: path of a .env file; NULL means "./.env
 * when present"; a given path that does not exist is an error. getenv_fn
 * may be NULL (uses getenv), tests pass their own. Every value is
 * validated; the first bad one fails with OPS_E_CONFIG naming it.
 */
int config_load(struct ops_config *cfg, const char *env_file,
		const char *(*getenv_fn)(const char *), struct ops_err *err)
	__attribute__((warn_unused_result));
/* Free everything; secrets are wiped. */
void config_release(struct ops_config *cfg);
/* Print every variable, value (secrets masked) and source to stdout. */
void config_show(const struct ops_config *cfg);
/* A copy of a postgres URL or conninfo with its password replaced. */
char *config_redact_url(const char *url) __attribute__((warn_unused_result));
/* Validate n as a month count for name (1..1200); fills err. */
int config_check_months(const char *name, const char *value, long *out,
			struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * Is this a production environment? APP_ENV or NODE_ENV equal to
 * "production", case-insensitive, ignoring surrounding white space (so
 * "production " counts). Commands that write demo data or run on a
 * virtual clock refuse in production without an explicit override.
 */
bool config_is_production(const struct ops_config *cfg);
/* Which variable made config_is_production() true ("APP_ENV"/"NODE_ENV"),
 * or NULL. */
const char *config_production_var(const struct ops_config *cfg);

#endif
