#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/file.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/xalloc.h"

#define OFF(f) offsetof(struct ops_config, f)

const struct cfg_def cfg_defs[] = {
	{ "DATABASE_URL", CFG_STR, OFF(database_url), NULL, 0, 0, NULL,
	  CFG_URL_SECRET | CFG_SECRET,
	  "PostgreSQL URL or conninfo; unset: the embedded cluster" },
	{ "DATABASE_SSL", CFG_BOOL, OFF(database_ssl), "false", 0, 0, NULL, 0,
	  "true: sslmode=require unless the URL sets sslmode" },
	{ "RETENTION_MONTHS", CFG_INT, OFF(retention_months), "18", 1, 1200,
	  NULL, 0, "months kept by the manual purge" },
	{ "USAGE_RETENTION_MONTHS", CFG_INT, OFF(usage_retention_months), "18",
	  1, 1200, NULL, 0, "months kept by the scheduled 02:30 purge" },
	{ "CONFIRM", CFG_CONFIRM, OFF(confirm), NULL, 0, 0, NULL, 0,
	  "exactly 1 or true: purge executes; anything else: dry-run" },
	{ "PRIVACY_EXPORT_PROVIDER", CFG_ENUM, OFF(privacy_export_provider),
	  "local", 0, 0, "local|s3|gcs", 0, "where privacy exports go" },
	{ "PRIVACY_EXPORT_BUCKET", CFG_STR, OFF(privacy_export_bucket),
	  "privacy-exports-dev", 0, 0, NULL, 0, "bucket for s3 and gcs" },
	{ "PRIVACY_EXPIRY_DAYS", CFG_INT, OFF(privacy_expiry_days), "30", 1,
	  3650, NULL, 0, "days before a privacy export expires" },
	{ "STRIPE_SECRET_KEY", CFG_STR, OFF(stripe_secret_key), NULL, 0, 0,
	  NULL, CFG_SECRET, "Stripe secret key (sk_...)" },
	{ "STRIPE_API_VERSION", CFG_STR, OFF(stripe_api_version), "2023-10-16",
	  0, 0, NULL, 0, "Stripe-Version header sent on every request" },
	{ "APEXOPS_STRIPE_API_BASE", CFG_STR, OFF(stripe_api_base),
	  "https://api.stripe.com", 0, 0, NULL, CFG_BASE_URL,
	  "Stripe API base URL: https://, or http:// to a loopback host" },
	{ "STRIPE_WEBHOOK_SECRET", CFG_STR, OFF(stripe_webhook_secret), NULL, 0,
	  0, NULL, CFG_SECRET, "Stripe webhook signing secret" },
	{ "SANDBOX_USER_PASSWORD", CFG_STR, OFF(sandbox_user_password),
	  "SandboxPass!2025", 0, 0, NULL, CFG_SECRET,
	  "password of the three sandbox logins" },
	{ "CRON_TZ", CFG_STR, OFF(cron_tz), "UTC", 0, 0, NULL, 0,
	  "IANA time zone of schedules and retention windows" },
	{ "APP_ENV", CFG_STR, OFF(app_env), NULL, 0, 0, NULL, 0,
	  "production makes sandbox commands refuse without --force" },
	{ "NODE_ENV", CFG_STR, OFF(node_env), NULL, 0, 0, NULL, 0,
	  "read like APP_ENV" },
	{ "APEXOPS_HOME", CFG_STR, OFF(home), "./.apexops", 0, 0, NULL, 0,
	  "state of the embedded cluster" },
	{ "APEXOPS_LOG_LEVEL", CFG_ENUM, OFF(log_level), "info", 0, 0,
	  "debug|info|warn|error", 0, "lowest level logged" },
	{ "APEXOPS_LOG_FORMAT", CFG_ENUM, OFF(log_format), "text", 0, 0,
	  "text|json", 0, "log line format on stderr" },
	{ "APEXOPS_DB_CONNECT_TIMEOUT", CFG_INT, OFF(connect_timeout_s), "5", 1,
	  300, NULL, 0, "seconds per connection attempt" },
	{ "APEXOPS_DB_CONNECT_RETRIES", CFG_INT, OFF(connect_retries), "2", 0,
	  20, NULL, 0, "extra connection attempts, with backoff" },
	{ "DATABASE_STATEMENT_TIMEOUT_MS", CFG_INT, OFF(statement_timeout_ms),
	  "30000", 0, 86400000, NULL, 0,
	  "statement_timeout of every session (0: none)" },
	{ "APEXOPS_LOCK_TIMEOUT_MS", CFG_INT, OFF(lock_timeout_ms), "5000", 0,
	  3600000, NULL, 0, "lock_timeout of every session (0: none)" },
	{ "APEXOPS_PG_BINDIR", CFG_STR, OFF(pg_bindir),
	  "/usr/lib/postgresql/15/bin", 0, 0, NULL, 0,
	  "PostgreSQL server binaries for the embedded cluster" },
	{ "APEXOPS_MIGRATIONS_DIR", CFG_STR, OFF(migrations_dir), NULL, 0, 0,
	  NULL, 0,
	  "migration files; unset: ./migrations/postgres, then next to the "
	  "binary, then PREFIX/share/apexops" },
	{ "APEXOPS_SCHEDULE_STRIPE_USAGE_SYNC", CFG_STR,
	  OFF(schedule_stripe_usage_sync), NULL, 0, 0, NULL, 0,
	  "cron expression of stripe-usage-sync, or off (default 0 2 * * *)" },
	{ "APEXOPS_SCHEDULE_USAGE_PURGE", CFG_STR, OFF(schedule_usage_purge),
	  NULL, 0, 0, NULL, 0,
	  "cron expression of usage-purge, or off (default 30 2 * * *)" },
	{ "APEXOPS_SCHEDULE_DUNNING_RETRIES", CFG_STR,
	  OFF(schedule_dunning_retries), NULL, 0, 0, NULL, 0,
	  "cron expression of dunning-retries, or off (default 0 3 * * *)" },
	{ "APEXOPS_SCHEDULE_PRIVACY_EXPIRY", CFG_STR,
	  OFF(schedule_privacy_expiry), NULL, 0, 0, NULL, 0,
	  "cron expression of privacy-expiry, or off (default 0 4 * * *)" },
	{ "APEXOPS_SCHEDULE_QUEUE_PRUNE", CFG_STR, OFF(schedule_queue_prune),
	  NULL, 0, 0, NULL, 0,
	  "cron expression of queue-prune, or off (default 15 4 * * *)" },
	{ "APEXOPS_CRON_GRACE_S", CFG_INT, OFF(cron_grace_s), "60", 0, 86400,
	  NULL, 0,
	  "seconds running jobs get to finish after SIGTERM before they are "
	  "told to stop" },
	{ "APEXOPS_CRON_LEASE_S", CFG_INT, OFF(cron_lease_s), "30", 3, 3600,
	  NULL, 0,
	  "seconds a scheduler's claim on a run lasts unless renewed; another "
	  "replica takes the run over after it lapses" },
	{ "APEXOPS_CRON_DEADLINE_S", CFG_INT, OFF(cron_deadline_s), "21600", 0,
	  31536000, NULL, 0,
	  "a missed slot still runs (once) within this many seconds; older "
	  "ones are recorded missed" },
	{ "APEXOPS_HTTP_ADDR", CFG_STR, OFF(http_addr), NULL, 0, 0, NULL, 0,
	  "HOST:PORT of the daemons' /healthz and /metrics; unset: off" },
	{ "APEXOPS_CLOCK_START", CFG_STR, OFF(clock_start), NULL, 0, 0, NULL, 0,
	  "virtual clock for tests and demos: what it reads at the epoch "
	  "(RFC 3339); refused in production" },
	{ "APEXOPS_CLOCK_EPOCH", CFG_STR, OFF(clock_epoch), NULL, 0, 0, NULL, 0,
	  "real unix seconds at which the virtual clock reads START "
	  "(default: the process start)" },
	{ "APEXOPS_CLOCK_SPEED", CFG_STR, OFF(clock_speed), NULL, 0, 0, NULL, 0,
	  "virtual seconds per real second (default 1)" },
	{ "APEXOPS_WORKER_CONCURRENCY", CFG_INT, OFF(worker_concurrency), "4",
	  1, 256, NULL, 0, "handler threads of apexops worker" },
	{ "PRIVACY_WORKER_CONCURRENCY", CFG_INT,
	  OFF(privacy_worker_concurrency), "2", 1, 64, NULL, 0,
	  "handlers for privacy jobs (the original's name)" },
	{ "APEXOPS_WORKER_LEASE_S", CFG_INT, OFF(worker_lease_s), "60", 5, 3600,
	  NULL, 0,
	  "seconds a worker's claim on a job lasts unless renewed; a dead "
	  "worker's jobs are retried after it" },
	{ "APEXOPS_WORKER_GRACE_S", CFG_INT, OFF(worker_grace_s), "60", 0,
	  86400, NULL, 0, "seconds running jobs get to finish after SIGTERM" },
	{ "APEXOPS_QUEUE_KEEP_DAYS", CFG_INT, OFF(queue_keep_days), "7", 1,
	  3650, NULL, 0,
	  "days finished queue jobs are kept (dead jobs: 30 days or more)" },
	{ "APEXOPS_PURGE_MAX_LAG_MS", CFG_INT, OFF(purge_max_lag_ms), "1000", 1,
	  3600000, NULL, 0,
	  "a purge waits while a standby's replay lags more (--max-lag)" },
	{ "APEXOPS_PURGE_MAX_LAG_BYTES", CFG_SIZE, OFF(purge_max_lag_bytes),
	  "16MB", 8192, 1L << 40, NULL, 0,
	  "... or lags this much WAL (--max-lag-bytes; 8kB to 1TB)" },
	{ "APEXOPS_PURGE_MAX_LAG_WAIT_S", CFG_INT, OFF(purge_max_lag_wait_s),
	  "300", 1, 86400, NULL, 0,
	  "seconds of one such wait before the purge stops, exit 75 "
	  "(--max-lag-wait)" },
	{ "PRIVACY_EXPORT_DIR", CFG_STR, OFF(privacy_export_dir),
	  "./logs/exports", 0, 0, NULL, 0,
	  "directory of local privacy exports" },
	{ "APEXOPS_GCS_ENDPOINT", CFG_STR, OFF(gcs_endpoint),
	  "https://storage.googleapis.com", 0, 0, NULL, CFG_BASE_URL,
	  "Cloud Storage XML API base URL: https://, or http:// to loopback" },
	{ "APEXOPS_GCS_HMAC_ACCESS_ID", CFG_STR, OFF(gcs_hmac_access_id), NULL,
	  0, 0, NULL, 0, "GCS HMAC key access id (GOOG1...)" },
	{ "APEXOPS_GCS_HMAC_SECRET", CFG_STR, OFF(gcs_hmac_secret), NULL, 0, 0,
	  NULL, CFG_SECRET, "GCS HMAC key secret" },
	{ "GOOGLE_APPLICATION_CREDENTIALS", CFG_STR,
	  OFF(google_application_credentials), NULL, 0, 0, NULL, 0,
	  "service-account key file for GCS (when no HMAC key is set)" },
	{ "APEXOPS_S3_MULTIPART_THRESHOLD_MB", CFG_INT,
	  OFF(s3_multipart_threshold_mb), "8", 5, 5120, NULL, 0,
	  "S3/GCS exports up to this are one PUT, larger go in parts of it" },
	{ "APEXOPS_STORAGE_TIMEOUT_S", CFG_INT, OFF(storage_timeout_s), "60", 1,
	  3600, NULL, 0, "seconds per S3/GCS request attempt" },
	{ "STRIPE_MAX_RPS", CFG_INT, OFF(stripe_max_rps), "0", 0, 10000, NULL,
	  0, "Stripe requests per second; 0: 25 with a test key, 100 live" },
	{ "APEXOPS_STRIPE_CONCURRENCY", CFG_INT, OFF(stripe_concurrency), "8",
	  1, 64, NULL, 0, "Stripe requests in flight at once" },
	{ "APEXOPS_STRIPE_METER_EVENTS", CFG_STR, OFF(stripe_meter_events),
	  NULL, 0, 0, NULL, 0,
	  "metric=event_name,... (default: each metric's own name)" },
	{ "DUNNING_RETRY_DAYS", CFG_STR, OFF(dunning_retry_days), "3,5,7", 0, 0,
	  NULL, 0, "days after the first failed payment to retry it" },
	{ "APEXOPS_STRIPE_TIMEOUT_MS", CFG_INT, OFF(stripe_timeout_ms), "30000",
	  100, 600000, NULL, 0,
	  "milliseconds one Stripe call attempt may take (then retried)" },
};
const int cfg_ndefs = (int)(sizeof(cfg_defs) / sizeof(cfg_defs[0]));

const struct cfg_def *
config_def(const char *name)
{
	for (int i = 0; i < cfg_ndefs; i++)
		if (strcmp(cfg_defs[i].name, name) == 0)
			return &cfg_defs[i];
	return NULL;
}

/*
 * The contents of a NAME_FILE secret, less exactly one trailing newline (as
 * Docker and Kubernetes secret files end); nothing else is trimmed.
 */
static char *
read_secret_file(const char *var, const char *path, struct ops_err *err)
{
	struct buf b = BUF_INIT;

	if (ops_read_file(path, 64 * 1024, &b, err) != 0) {
		ops_err_recode(err, OPS_E_CONFIG, "%s_FILE", var);
		buf_release(&b);
		return NULL;
	}
	if (b.len > 0 && b.data[b.len - 1] == '\n')
		buf_truncate(&b, b.len - 1);
	if (memchr(buf_str(&b), '\0', b.len) != NULL) {
		buf_release_wipe(&b);
		ops_fail(err, OPS_E_CONFIG, false,
			 "%s_FILE: '%s' holds a NUL byte: expected the secret "
			 "as text",
			 var, path);
		return NULL;
	}
	return buf_detach(&b);
}

static bool
all_space(const char *v)
{
	for (; *v != '\0'; v++)
		if (!isspace((unsigned char)*v))
			return false;
	return true;
}

/*
 * The one rule for blank values, for every variable: empty or only white
 * space is an error, never "unset" nor a directory named " "; leading or
 * trailing white space is an error too, except in a secret key or
 * password (CFG_SECRET without CFG_URL_SECRET), which is used as given.
 */
static int
check_blank(const struct cfg_def *d, const char *v, const char *src,
	    struct ops_err *err)
{
	size_t n = strlen(v);
	bool raw_secret =
		(d->flags & CFG_SECRET) && !(d->flags & CFG_URL_SECRET);

	if (all_space(v))
		return ops_fail(err, OPS_E_CONFIG, false,
				"%s: %s value (from the %s): set a value or "
				"unset it",
				d->name, n == 0 ? "empty" : "white-space-only",
				src);
	if (!raw_secret && (isspace((unsigned char)v[0]) ||
			    isspace((unsigned char)v[n - 1]))) {
		if (d->flags & CFG_SECRET)
			return ops_fail(err, OPS_E_CONFIG, false,
					"%s: the value (from the %s) has "
					"leading or trailing white space: "
					"remove it",
					d->name, src);
		return ops_fail(err, OPS_E_CONFIG, false,
				"%s: invalid value '%s' (from the %s): "
				"leading or trailing white space is not "
				"allowed: remove it",
				d->name, v, src);
	}
	return 0;
}

/* The password inside a URL or conninfo, or NULL. */
static char *
url_password(const char *url)
{
	const char *p = strstr(url, "://"), *at, *colon, *slash, *q;

	if (p != NULL) {
		p += 3;
		slash = strchr(p, '/');
		at = strrchr(p, '@');
		if (at != NULL && (slash == NULL || at < slash)) {
			colon = memchr(p, ':', (size_t)(at - p));
			if (colon != NULL)
				return xstrndup(colon + 1,
						(size_t)(at - colon - 1));
		}
	}
	q = strstr(url, "password=");
	if (q != NULL) {
		q += 9;
		if (*q == '\'')
			q++;
		return xstrndup(q, strcspn(q, p ? "&" : " '"));
	}
	return NULL;
}

static bool
valid_tz(const char *tz)
{
	char path[512];
	struct stat st;

	if (*tz == '\0' || tz[0] == '/' || strstr(tz, "..") != NULL)
		return false;
	for (const char *p = tz; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '/' || *p == '_' ||
		      *p == '-' || *p == '+'))
			return false;
	if (strcmp(tz, "UTC") == 0)
		return true;
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", tz);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int
config_check_months(const char *name, const char *value, long *out,
		    struct ops_err *err)
{
	if (parse_long(value, 1, 1200, out) != 0)
		return ops_fail(err, OPS_E_CONFIG, false,
				"%s: invalid value '%s': expected a whole "
				"number of months from 1 to 1200",
				name, value);
	return 0;
}

/* "metric=event_name,..." as the usage sync reads it (stripe/usage.c
 * parses it again; this check makes a bad value fail at load) */
static bool
meter_events_ok(const char *v)
{
	const char *p = v;

	while (*p != '\0') {
		size_t len = strcspn(p, ","), ml, nl;
		const char *eq = memchr(p, '=', len);

		if (eq == NULL)
			return false;
		ml = (size_t)(eq - p);
		nl = len - ml - 1;
		if (ml == 0 || ml > 32 ||
		    strspn(p, "abcdefghijklmnopqrstuvwxyz"
			      "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			      "0123456789_.-") < ml)
			return false;
		if (nl == 0 || nl > 100 ||
		    strspn(eq + 1,
			   "abcdefghijklmnopqrstuvwxyz"
			   "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-") < nl)
			return false;
		/* each metric once */
		for (const char *q = v; q < p;) {
			size_t ql = strcspn(q, "=");

			if (ql == ml && strncmp(q, p, ml) == 0)
				return false;
			q += strcspn(q, ",");
			if (*q == ',')
				q++;
		}
		p += len;
		if (*p == ',' && *++p == '\0')
			return false;
	}
	return true;
}

/* "3,5,7": 1..10 increasing whole numbers of days, each 1..365 */
static bool
valid_retry_days(const char *v)
{
	long prev = 0;
	int n = 0;

	while (*v != '\0') {
		long d = 0;
		int digits = 0;

		while (*v >= '0' && *v <= '9' && digits < 4) {
			d = d * 10 + (*v++ - '0');
			digits++;
		}
		if (digits == 0 || d < 1 || d > 365 || d <= prev || ++n > 10)
			return false;
		prev = d;
		if (*v == ',' && v[1] != '\0')
			v++;
		else if (*v != '\0')
			return false;
	}
	return n > 0;
}

static int
check_value(const struct cfg_def *d, const char *v, struct ops_config *cfg,
	    struct ops_err *err)
{
	char *base = (char *)cfg;
	const char *shown = (d->flags & CFG_SECRET) ? "(hidden)" : v;

	switch (d->type) {
	case CFG_INT: {
		long n;

		if (parse_long(v, d->min, d->max, &n) != 0)
			return ops_fail(err, OPS_E_CONFIG, false,
					"%s: invalid value '%s': expected a "
					"whole number from %ld to %ld",
					d->name, shown, d->min, d->max);
		*(long *)(base + d->offset) = n;
		return 0;
	}
	case CFG_SIZE: {
		long long n;
		char lo[32], hi[32];

		if (parse_size(v, d->min, d->max, &n) != 0) {
			format_size(d->min, lo, sizeof(lo));
			format_size(d->max, hi, sizeof(hi));
			return ops_fail(err, OPS_E_CONFIG, false,
					"%s: invalid value '%s': expected a "
					"size from %s to %s: bytes, or with a "
					"unit B, kB, MB, GB or TB (1 kB = "
					"1024 B)",
					d->name, shown, lo, hi);
		}
		*(long long *)(base + d->offset) = n;
		return 0;
	}
	case CFG_BOOL: {
		bool b;

		if (parse_bool(v, &b) != 0)
			return ops_fail(err, OPS_E_CONFIG, false,
					"%s: invalid value '%s': expected "
					"true or false",
					d->name, shown);
		*(bool *)(base + d->offset) = b;
		return 0;
	}
	case CFG_CONFIRM:
		/* The original's rule: exactly "1" or "true" executes. */
		*(bool *)(base + d->offset) =
			strcmp(v, "1") == 0 || strcmp(v, "true") == 0;
		free(cfg->confirm_raw);
		cfg->confirm_raw = xstrdup(v);
		return 0;
	case CFG_ENUM: {
		size_t n = strlen(v);
		const char *p = d->allowed;

		while (p != NULL && n > 0) {
			const char *bar = strchr(p, '|');
			size_t l = bar ? (size_t)(bar - p) : strlen(p);

			if (l == n && strncmp(p, v, n) == 0)
				break;
			p = bar ? bar + 1 : NULL;
		}
		if (p == NULL || n == 0)
			return ops_fail(err, OPS_E_CONFIG, false,
					"%s: invalid value '%s': expected one "
					"of %s",
					d->name, shown, d->allowed);
		break;
	}
	case CFG_STR:
		break;
	}
	if (*v == '\0')
		return ops_fail(err, OPS_E_CONFIG, false, "%s: empty value: %s",
				d->name, d->help);
	if (strcmp(d->name, "DATABASE_URL") == 0 &&
	    strncmp(v, "postgres://", 11) != 0 &&
	    strncmp(v, "postgresql://", 13) != 0 && strchr(v, '=') == NULL)
		return ops_fail(err, OPS_E_CONFIG, false,
				"DATABASE_URL: invalid value: expected a "
				"postgresql:// URL or a key=value conninfo");
	if (strcmp(d->name, "STRIPE_SECRET_KEY") == 0 &&
	    strncmp(v, "sk_", 3) != 0 && strncmp(v, "rk_", 3) != 0)
		return ops_fail(err, OPS_E_CONFIG, false,
				"STRIPE_SECRET_KEY: invalid value: expected a "
				"secret key starting with sk_ (or a restricted "
				"key, rk_)");
	if (strcmp(d->name, "STRIPE_API_VERSION") == 0) {
		int y, m, dd;
		char date[11];

		snprintf(date, sizeof(date), "%s", v);
		if (strlen(v) < 10 || parse_date(date, &y, &m, &dd) != 0 ||
		    strspn(v + 10,
			   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNO"
			   "PQRSTUVWXYZ0123456789_.-") != strlen(v + 10))
			return ops_fail(err, OPS_E_CONFIG, false,
					"STRIPE_API_VERSION: invalid value "
					"'%s': expected YYYY-MM-DD with an "
					"optional suffix such as .clover",
					v);
	}
	if (strcmp(d->name, "APEXOPS_STRIPE_METER_EVENTS") == 0 &&
	    !meter_events_ok(v))
		return ops_fail(err, OPS_E_CONFIG, false,
				"APEXOPS_STRIPE_METER_EVENTS: invalid value "
				"'%s': expected metric=event_name pairs "
				"separated by commas, each metric once "
				"(metric: 1 to 32 of A-Z a-z 0-9 _ . -; event "
				"name: 1 to 100 of A-Z a-z 0-9 _ . : -)",
				v);
	if (strcmp(d->name, "DUNNING_RETRY_DAYS") == 0 && !valid_retry_days(v))
		return ops_fail(err, OPS_E_CONFIG, false,
				"DUNNING_RETRY_DAYS: invalid value '%s': "
				"expected days after the first failed payment "
				"as increasing whole numbers from 1 to 365, "
				"comma-separated, at most 10 (such as 3,5,7)",
				v);
	if (strcmp(d->name, "CRON_TZ") == 0 && !valid_tz(v))
		return ops_fail(err, OPS_E_CONFIG, false,
				"CRON_TZ: unknown time zone '%s': expected an "
				"IANA name such as UTC or Europe/Tallinn",
				v);
	{
		char **slot = (char **)(base + d->offset);

		if (d->flags & CFG_SECRET)
			freezero_str(*slot);
		else
			free(*slot);
		*slot = xstrdup(v);
	}
	return 0;
}

int
config_load(struct ops_config *cfg, const char *env_file,
	    const char *(*getenv_fn)(const char *), struct ops_err *err)
{
	struct dotenv file = DOTENV_INIT;
	const char *path = env_file ? env_file : ".env";
	int r = 0;

	memset(cfg, 0, sizeof(*cfg));
	if (getenv_fn == NULL)
		getenv_fn = (const char *(*)(const char *))getenv;
	r = dotenv_load(path, &file, err);
	if (r == OPS_E_NOTFOUND && env_file == NULL) {
		r = 0; /* ./.env is optional */
		ops_err_clear(err);
	} else if (r == OPS_E_NOTFOUND) {
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "--env-file: '%s' does not exist", path);
		goto out;
	} else if (r != 0) {
		if (env_file != NULL)
			ops_err_prefix(err, "--env-file");
		goto out;
	}
	for (int i = 0; i < cfg_ndefs; i++) {
		const struct cfg_def *d = &cfg_defs[i];
		const char *v = getenv_fn(d->name), *src = "environment";
		char *secret = NULL;
		char fname[96];

		if (v == NULL) {
			v = dotenv_get(&file, d->name);
			src = "env file";
		}
		if (d->flags & CFG_SECRET) {
			const char *fv, *fsrc = "environment";

			snprintf(fname, sizeof(fname), "%s_FILE", d->name);
			fv = getenv_fn(fname);
			if (fv == NULL) {
				fv = dotenv_get(&file, fname);
				fsrc = "env file";
			}
			if (fv != NULL && v != NULL) {
				r = ops_fail(err, OPS_E_CONFIG, false,
					     "%s and %s are both set: use one",
					     d->name, fname);
				goto out;
			}
			if (fv != NULL) {
				/* the path follows the rule of names */
				struct cfg_def fd = { .name = fname };

				r = check_blank(&fd, fv, fsrc, err);
				if (r != 0)
					goto out;
				secret = read_secret_file(d->name, fv, err);
				if (secret == NULL) {
					r = OPS_E_CONFIG;
					goto out;
				}
				v = secret;
				src = "secret file";
			}
		}
		if (v != NULL) {
			r = check_blank(d, v, src, err);
			if (r != 0) {
				freezero_str(secret);
				goto out;
			}
		}
		if (v == NULL) {
			v = d->def;
			src = "default";
		}
		cfg->source[i] = src;
		if (v == NULL)
			continue;
		if (d->flags & CFG_SECRET) {
			if (d->flags & CFG_URL_SECRET) {
				char *pw = url_password(v);

				log_add_secret(pw);
				freezero_str(pw);
			} else {
				log_add_secret(v);
			}
		}
		r = check_value(d, v, cfg, err);
		freezero_str(secret);
		if (r != 0)
			goto out;
	}
out:
	dotenv_release(&file);
	if (r != 0)
		config_release(cfg);
	return r;
}

void
config_release(struct ops_config *cfg)
{
	char *base = (char *)cfg;

	for (int i = 0; i < cfg_ndefs; i++) {
		const struct cfg_def *d = &cfg_defs[i];
		char **slot;

		if (d->type != CFG_STR && d->type != CFG_ENUM)
			continue;
		slot = (char **)(base + d->offset);
		freezero_str(*slot);
		*slot = NULL;
	}
	free(cfg->confirm_raw);
	cfg->confirm_raw = NULL;
}

/* Copy a URL query (from '?' on), replacing the value of password=. */
static int
redact_query(struct buf *b, const char *q)
{
	int r = 0;

	while (*q != '\0') {
		size_t n = strcspn(q + 1, "&") + 1; /* one "?k=v" or "&k=v" */

		if (strncmp(q + 1, "password=", 9) == 0) {
			r |= buf_append(b, q, 10);
			r |= buf_puts(b, "***");
		} else {
			r |= buf_append(b, q, n);
		}
		q += n;
	}
	return r;
}

/* Copy a key=value conninfo, replacing the value of password. */
static int
redact_conninfo(struct buf *b, const char *s)
{
	int r = 0;

	while (*s != '\0') {
		const char *k = s, *v;
		size_t kl;

		if (*s == ' ' || *s == '\t' || *s == '\n') {
			r |= buf_append(b, s++, 1);
			continue;
		}
		kl = strcspn(s, "= \t\n");
		v = s + kl;
		while (*v == ' ' || *v == '\t')
			v++;
		if (*v != '=') { /* not a pair: copy the word */
			r |= buf_append(b, s, kl);
			s += kl;
			continue;
		}
		v++;
		while (*v == ' ' || *v == '\t')
			v++;
		s = v;
		if (*s == '\'') { /* quoted, with \' and \\ escapes */
			for (s++; *s != '\0' && *s != '\''; s++)
				if (*s == '\\' && s[1] != '\0')
					s++;
			if (*s == '\'')
				s++;
		} else {
			s += strcspn(s, " \t\n");
		}
		if (kl == 8 && strncmp(k, "password", 8) == 0) {
			r |= buf_puts(b, "password=***");
		} else {
			r |= buf_append(b, k, kl);
			r |= buf_puts(b, "=");
			r |= buf_append(b, v, (size_t)(s - v));
		}
	}
	return r;
}

char *
config_redact_url(const char *url)
{
	struct buf b = BUF_INIT;
	const char *p, *end, *at, *colon;
	int r = 0;

	if (url == NULL)
		return xstrdup("(unset)");
	p = strstr(url, "://");
	if (p == NULL) {
		r = redact_conninfo(&b, url);
		goto out;
	}
	p += 3;
	end = p + strcspn(p, "/?");
	at = memrchr(p, '@', (size_t)(end - p));
	colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
	if (colon != NULL) { /* user:password@host */
		r |= buf_append(&b, url, (size_t)(colon - url) + 1);
		r |= buf_puts(&b, "***");
		r |= buf_append(&b, at, (size_t)(end - at));
	} else {
		r |= buf_append(&b, url, (size_t)(end - url));
	}
	p = end + strcspn(end, "?");
	r |= buf_append(&b, end, (size_t)(p - end)); /* the path */
	r |= redact_query(&b, p);
out:
	if (r != 0) { /* cannot happen without a maximum; never half a URL */
		buf_release(&b);
		return xstrdup("(too long to show)");
	}
	return buf_detach(&b);
}

void
config_show(const struct ops_config *cfg)
{
	const char *base = (const char *)cfg;

	for (int i = 0; i < cfg_ndefs; i++) {
		const struct cfg_def *d = &cfg_defs[i];
		char val[256];

		switch (d->type) {
		case CFG_INT:
			snprintf(val, sizeof(val), "%ld",
				 *(const long *)(base + d->offset));
			break;
		case CFG_SIZE:
			format_size(*(const long long *)(base + d->offset), val,
				    sizeof(val));
			break;
		case CFG_BOOL:
		case CFG_CONFIRM:
			snprintf(val, sizeof(val), "%s",
				 *(const bool *)(base + d->offset) ? "true"
								   : "false");
			break;
		default: {
			const char *s = *(char *const *)(base + d->offset);

			if (s == NULL)
				snprintf(val, sizeof(val), "(unset)");
			else if (d->flags & CFG_URL_SECRET) {
				char *r = config_redact_url(s);

				snprintf(val, sizeof(val), "%s", r);
				free(r);
			} else if (d->flags & CFG_SECRET)
				snprintf(val, sizeof(val), "(set, hidden)");
			else
				snprintf(val, sizeof(val), "%s", s);
		}
		}
		printf("%-30s %-40s %s\n", d->name, val,
		       cfg->source[i] ? cfg->source[i] : "default");
	}
}

static bool
is_production_value(const char *v)
{
	size_t len;

	if (v == NULL)
		return false;
	while (isspace((unsigned char)*v))
		v++;
	len = strlen(v);
	while (len > 0 && isspace((unsigned char)v[len - 1]))
		len--;
	return len == 10 && strncasecmp(v, "production", 10) == 0;
}

const char *
config_production_var(const struct ops_config *cfg)
{
	if (is_production_value(cfg->app_env))
		return "APP_ENV";
	if (is_production_value(cfg->node_env))
		return "NODE_ENV";
	return NULL;
}

bool
config_is_production(const struct ops_config *cfg)
{
	return config_production_var(cfg) != NULL;
}
