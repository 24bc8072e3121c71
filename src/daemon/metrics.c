/* Daemon health and Prometheus metrics; see metrics.h. */
#include "daemon/metrics.h"

#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#ifdef HAVE_MHD
#include <microhttpd.h>
#endif

#include "core/log.h"
#include "core/parse.h"
#include "core/xalloc.h"

#define METRICS_JOBS	 16
#define METRICS_STATUSES 8
/* The loop wakes at least every third of a lease (10 s by default), and
 * at most every 60 s: older than this, it is stuck. */
#define ALIVE_S 90.0

static const char *const statuses[METRICS_STATUSES] = {
	"succeeded", "partial",	    "failed",	   "stopped",
	"abandoned", "unavailable", "not-started", "other",
};

struct mjob {
	char name[64];
	unsigned long long runs[METRICS_STATUSES];
	double duration_sum;
	unsigned long long duration_count;
	double last_success;
	unsigned long long takeovers, missed, claims;
	double lateness_sum, lateness_max;
};

/* Histogram buckets (seconds) of the worker's claims and handlers. */
#define METRICS_NBUCKETS 12
static const double buckets[METRICS_NBUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30,
};
#define METRICS_KINDS	16
#define METRICS_QROWS	64
#define WORKER_STATUSES 4
static const char *const worker_statuses[WORKER_STATUSES] = {
	"succeeded",
	"retrying",
	"dead",
	"other",
};

struct histo {
	unsigned long long le[METRICS_NBUCKETS]; /* cumulative at render */
	unsigned long long count;
	double sum;
};

struct mkind {
	char name[64];
	unsigned long long jobs[WORKER_STATUSES];
	struct histo handler;
};

struct metrics {
	pthread_mutex_t mu;
	/* apexops worker */
	bool worker;
	struct mkind kinds[METRICS_KINDS];
	int nkinds;
	struct histo claim;
	unsigned long long claimed, handed;
	struct metrics_queue_row qrows[METRICS_QROWS];
	int nqrows;
	long long depth;
	double oldest_age;
	bool have_snapshot;
	struct mjob jobs[METRICS_JOBS];
	int njobs;
	double last_tick; /* monotonic */
	bool db_ok;
	double db_down_since; /* monotonic; 0 when up */
	double db_down_total;
#ifdef HAVE_MHD
	struct MHD_Daemon *httpd;
	/* libmicrohttpd's messages while metrics_serve() starts it (on the
	 * calling thread) go into the error; later ones to the log */
	atomic_bool starting;
	char start_msg[200];
#endif
};

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct metrics *
metrics_new(void)
{
	struct metrics *m = xcalloc(1, sizeof(*m));

	pthread_mutex_init(&m->mu, NULL);
	m->last_tick = mono();
	return m;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
#ifdef HAVE_MHD
	if (m->httpd != NULL)
		MHD_stop_daemon(m->httpd);
#endif
	pthread_mutex_destroy(&m->mu);
	free(m);
}

/* The job's slot, added on first use; under m->mu. */
static struct mjob *
job_of(struct metrics *m, const char *job)
{
	for (int i = 0; i < m->njobs; i++)
		if (strcmp(m->jobs[i].name, job) == 0)
			return &m->jobs[i];
	if (m->njobs == METRICS_JOBS)
		return &m->jobs[METRICS_JOBS - 1];
	snprintf(m->jobs[m->njobs].name, sizeof(m->jobs[0].name), "%s", job);
	return &m->jobs[m->njobs++];
}

void
metrics_tick(struct metrics *m)
{
	pthread_mutex_lock(&m->mu);
	m->last_tick = mono();
	pthread_mutex_unlock(&m->mu);
}

void
metrics_set_health(struct metrics *m, bool db_ok)
{
	double now = mono();

	pthread_mutex_lock(&m->mu);
	if (!db_ok && m->db_down_since == 0)
		m->db_down_since = now;
	if (db_ok && m->db_down_since != 0) {
		m->db_down_total += now - m->db_down_since;
		m->db_down_since = 0;
	}
	m->db_ok = db_ok;
	m->last_tick = now;
	pthread_mutex_unlock(&m->mu);
}

void
metrics_claimed(struct metrics *m, const char *job, double lateness)
{
	struct mjob *j;

	pthread_mutex_lock(&m->mu);
	j = job_of(m, job);
	j->claims++;
	if (lateness < 0)
		lateness = 0;
	j->lateness_sum += lateness;
	if (lateness > j->lateness_max)
		j->lateness_max = lateness;
	pthread_mutex_unlock(&m->mu);
}

void
metrics_finished(struct metrics *m, const char *job, const char *status,
		 double seconds, double success_at)
{
	struct mjob *j;
	int s = METRICS_STATUSES - 1;

	for (int i = 0; i < METRICS_STATUSES - 1; i++)
		if (strcmp(statuses[i], status) == 0)
			s = i;
	pthread_mutex_lock(&m->mu);
	j = job_of(m, job);
	j->runs[s]++;
	j->duration_sum += seconds;
	j->duration_count++;
	if (success_at > 0)
		j->last_success = success_at;
	pthread_mutex_unlock(&m->mu);
}

void
metrics_takeover(struct metrics *m, const char *job)
{
	pthread_mutex_lock(&m->mu);
	job_of(m, job)->takeovers++;
	pthread_mutex_unlock(&m->mu);
}

void
metrics_missed(struct metrics *m, const char *job, int n)
{
	pthread_mutex_lock(&m->mu);
	job_of(m, job)->missed += (unsigned long long)(n > 0 ? n : 0);
	pthread_mutex_unlock(&m->mu);
}

static void
histo_add(struct histo *h, double v)
{
	for (int i = 0; i < METRICS_NBUCKETS; i++)
		if (v <= buckets[i]) {
			h->le[i]++;
			break;
		}
	h->count++;
	h->sum += v;
}

static void
histo_render(struct buf *out, const char *name, const char *labels,
	     const struct histo *h)
{
	unsigned long long cum = 0;

	for (int i = 0; i < METRICS_NBUCKETS; i++) {
		cum += h->le[i];
		buf_addf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels,
			 labels[0] ? "," : "", buckets[i], cum);
	}
	buf_addf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels,
		 labels[0] ? "," : "", h->count);
	buf_addf(out, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels,
		 labels[0] ? "}" : "", h->sum);
	buf_addf(out, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "",
		 labels, labels[0] ? "}" : "", h->count);
}

/* The kind's slot, added on first use; under m->mu. */
static struct mkind *
kind_of(struct metrics *m, const char *kind)
{
	for (int i = 0; i < m->nkinds; i++)
		if (strcmp(m->kinds[i].name, kind) == 0)
			return &m->kinds[i];
	if (m->nkinds == METRICS_KINDS)
		return &m->kinds[METRICS_KINDS - 1];
	snprintf(m->kinds[m->nkinds].name, sizeof(m->kinds[0].name), "%s",
		 kind);
	return &m->kinds[m->nkinds++];
}

void
metrics_worker_enable(struct metrics *m)
{
	pthread_mutex_lock(&m->mu);
	m->worker = true;
	pthread_mutex_unlock(&m->mu);
}

void
metrics_worker_claim(struct metrics *m, double seconds, int n)
{
	pthread_mutex_lock(&m->mu);
	m->worker = true;
	histo_add(&m->claim, seconds);
	m->claimed += (unsigned long long)(n > 0 ? n : 0);
	pthread_mutex_unlock(&m->mu);
}

void
metrics_worker_handed(struct metrics *m, int n)
{
	pthread_mutex_lock(&m->mu);
	m->worker = true;
	m->handed += (unsigned long long)(n > 0 ? n : 0);
	pthread_mutex_unlock(&m->mu);
}

void
metrics_worker_finished(struct metrics *m, const char *kind, const char *status,
			double seconds)
{
	struct mkind *k;
	int s = WORKER_STATUSES - 1;

	for (int i = 0; i < WORKER_STATUSES - 1; i++)
		if (strcmp(worker_statuses[i], status) == 0)
			s = i;
	pthread_mutex_lock(&m->mu);
	m->worker = true;
	k = kind_of(m, kind);
	k->jobs[s]++;
	histo_add(&k->handler, seconds);
	pthread_mutex_unlock(&m->mu);
}

void
metrics_worker_queue(struct metrics *m, const struct metrics_queue_row *rows,
		     int n, long long depth, double oldest_age_s)
{
	pthread_mutex_lock(&m->mu);
	m->worker = true;
	m->nqrows = n < METRICS_QROWS ? n : METRICS_QROWS;
	memcpy(m->qrows, rows, sizeof(*rows) * (size_t)m->nqrows);
	m->depth = depth;
	m->oldest_age = oldest_age_s;
	m->have_snapshot = true;
	pthread_mutex_unlock(&m->mu);
}

/* The worker's families, under m->mu. Kinds are the queue's
 * ([a-z0-9_.-]) and states its own list: no label escaping. */
static void
render_worker(struct metrics *m, struct buf *out)
{
	char labels[96];

	buf_adds(out, "# HELP apexops_worker_jobs_total Jobs this worker "
		      "ran, by kind and outcome.\n"
		      "# TYPE apexops_worker_jobs_total counter\n");
	for (int i = 0; i < m->nkinds; i++)
		for (int s = 0; s < WORKER_STATUSES; s++)
			buf_addf(out,
				 "apexops_worker_jobs_total{kind=\"%s\","
				 "status=\"%s\"} %llu\n",
				 m->kinds[i].name, worker_statuses[s],
				 m->kinds[i].jobs[s]);
	buf_adds(out, "# HELP apexops_worker_handler_duration_seconds How "
		      "long handlers ran, by kind.\n"
		      "# TYPE apexops_worker_handler_duration_seconds "
		      "histogram\n");
	for (int i = 0; i < m->nkinds; i++) {
		snprintf(labels, sizeof(labels), "kind=\"%s\"",
			 m->kinds[i].name);
		histo_render(out, "apexops_worker_handler_duration_seconds",
			     labels, &m->kinds[i].handler);
	}
	buf_adds(out, "# HELP apexops_worker_claim_duration_seconds How "
		      "long a claim round trip took (with the completions "
		      "riding on it).\n"
		      "# TYPE apexops_worker_claim_duration_seconds "
		      "histogram\n");
	histo_render(out, "apexops_worker_claim_duration_seconds", "",
		     &m->claim);
	buf_addf(out,
		 "# HELP apexops_worker_claimed_jobs_total Jobs this worker "
		 "claimed.\n# TYPE apexops_worker_claimed_jobs_total "
		 "counter\napexops_worker_claimed_jobs_total %llu\n",
		 m->claimed);
	buf_addf(out,
		 "# HELP apexops_worker_handed_jobs_total Jobs handed to this "
		 "worker by apexops.enqueue(), without a claim.\n"
		 "# TYPE apexops_worker_handed_jobs_total counter\n"
		 "apexops_worker_handed_jobs_total %llu\n",
		 m->handed);
	if (!m->have_snapshot)
		return;
	buf_adds(out, "# HELP apexops_queue_jobs Unfinished jobs in the "
		      "queue, by kind and state (every worker's).\n"
		      "# TYPE apexops_queue_jobs gauge\n");
	for (int i = 0; i < m->nqrows; i++)
		buf_addf(out,
			 "apexops_queue_jobs{kind=\"%s\",state=\"%s\"} "
			 "%lld\n",
			 m->qrows[i].kind, m->qrows[i].state,
			 m->qrows[i].count);
	buf_addf(out,
		 "# HELP apexops_queue_depth Jobs due now, not running.\n"
		 "# TYPE apexops_queue_depth gauge\napexops_queue_depth "
		 "%lld\n",
		 m->depth);
	buf_addf(out,
		 "# HELP apexops_queue_oldest_available_age_seconds How long "
		 "the oldest due job has waited.\n# TYPE "
		 "apexops_queue_oldest_available_age_seconds gauge\n"
		 "apexops_queue_oldest_available_age_seconds %.3f\n",
		 m->oldest_age);
}

bool
metrics_healthy(struct metrics *m)
{
	bool ok;

	pthread_mutex_lock(&m->mu);
	ok = m->db_ok && mono() - m->last_tick < ALIVE_S;
	pthread_mutex_unlock(&m->mu);
	return ok;
}

/* Job names are the job table's ([a-z0-9-]), so no label escaping. */
void
metrics_render(struct metrics *m, struct buf *out)
{
	double now = mono();
	bool alive;

	pthread_mutex_lock(&m->mu);
	alive = now - m->last_tick < ALIVE_S;
	buf_addf(out,
		 "# HELP apexops_up 1 while the daemon's loop is "
		 "alive.\n# TYPE apexops_up gauge\napexops_up %d\n",
		 alive ? 1 : 0);
	buf_addf(out,
		 "# HELP apexops_database_up 1 when the database "
		 "answered on the last pass.\n# TYPE "
		 "apexops_database_up gauge\napexops_database_up %d\n",
		 m->db_ok ? 1 : 0);
	buf_addf(out,
		 "# HELP apexops_database_down_seconds_total Time without a "
		 "database, in which no replica could claim a run here.\n"
		 "# TYPE apexops_database_down_seconds_total counter\n"
		 "apexops_database_down_seconds_total %.3f\n",
		 m->db_down_total +
			 (m->db_down_since != 0 ? now - m->db_down_since : 0));
	buf_adds(out, "# HELP apexops_cron_runs_total Runs this process "
		      "finished, by job and status.\n"
		      "# TYPE apexops_cron_runs_total counter\n");
	for (int i = 0; i < m->njobs; i++)
		for (int s = 0; s < METRICS_STATUSES; s++)
			buf_addf(out,
				 "apexops_cron_runs_total{job=\"%s\","
				 "status=\"%s\"} %llu\n",
				 m->jobs[i].name, statuses[s],
				 m->jobs[i].runs[s]);
	buf_adds(out, "# HELP apexops_cron_run_duration_seconds How "
		      "long runs took.\n# TYPE "
		      "apexops_cron_run_duration_seconds summary\n");
	for (int i = 0; i < m->njobs; i++)
		buf_addf(out,
			 "apexops_cron_run_duration_seconds_sum{job="
			 "\"%s\"} %.6f\n"
			 "apexops_cron_run_duration_seconds_count{job="
			 "\"%s\"} %llu\n",
			 m->jobs[i].name, m->jobs[i].duration_sum,
			 m->jobs[i].name, m->jobs[i].duration_count);
	buf_adds(out, "# HELP apexops_cron_start_lateness_seconds From "
		      "the slot to the claim of its run.\n# TYPE "
		      "apexops_cron_start_lateness_seconds summary\n");
	for (int i = 0; i < m->njobs; i++)
		buf_addf(out,
			 "apexops_cron_start_lateness_seconds_sum{job="
			 "\"%s\"} %.6f\n"
			 "apexops_cron_start_lateness_seconds_count{"
			 "job=\"%s\"} %llu\n",
			 m->jobs[i].name, m->jobs[i].lateness_sum,
			 m->jobs[i].name, m->jobs[i].claims);
	buf_adds(out, "# HELP apexops_cron_last_success_timestamp_"
		      "seconds When a run of the job last succeeded "
		      "here (scheduler clock).\n# TYPE "
		      "apexops_cron_last_success_timestamp_seconds "
		      "gauge\n");
	for (int i = 0; i < m->njobs; i++)
		if (m->jobs[i].last_success > 0)
			buf_addf(out,
				 "apexops_cron_last_success_timestamp_"
				 "seconds{job=\"%s\"} %.3f\n",
				 m->jobs[i].name, m->jobs[i].last_success);
	buf_adds(out, "# HELP apexops_cron_takeovers_total Runs taken "
		      "over after another replica's lease lapsed.\n"
		      "# TYPE apexops_cron_takeovers_total counter\n");
	for (int i = 0; i < m->njobs; i++)
		buf_addf(out,
			 "apexops_cron_takeovers_total{job=\"%s\"} "
			 "%llu\n",
			 m->jobs[i].name, m->jobs[i].takeovers);
	buf_adds(out, "# HELP apexops_cron_missed_total Slots recorded "
		      "missed by this process.\n# TYPE "
		      "apexops_cron_missed_total counter\n");
	for (int i = 0; i < m->njobs; i++)
		buf_addf(out, "apexops_cron_missed_total{job=\"%s\"} %llu\n",
			 m->jobs[i].name, m->jobs[i].missed);
	if (m->worker)
		render_worker(m, out);
	pthread_mutex_unlock(&m->mu);
}

static bool
port_ok(const char *p)
{
	long v;

	return parse_long(p, 1, 65535, &v) == 0;
}

/* addr as a passive numeric socket address into *ai (freeaddrinfo() it),
 * or -1 when it is not HOST:PORT (or a port alone) of that form. */
static int
resolve_addr(const char *addr, struct addrinfo **ai)
{
	struct addrinfo hints;
	char host[256], port[16];
	const char *colon = strrchr(addr, ':');

	*ai = NULL;
	if (colon == NULL) {
		snprintf(host, sizeof(host), "127.0.0.1");
		snprintf(port, sizeof(port), "%s", addr);
	} else {
		size_t hl = (size_t)(colon - addr);

		if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
			addr++;
			hl -= 2;
		}
		snprintf(host, sizeof(host), "%.*s", (int)hl, addr);
		snprintf(port, sizeof(port), "%s", colon + 1);
		if (host[0] == '\0')
			snprintf(host, sizeof(host), "127.0.0.1");
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	if (!port_ok(port) || getaddrinfo(host, port, &hints, ai) != 0 ||
	    *ai == NULL) {
		if (*ai != NULL)
			freeaddrinfo(*ai);
		*ai = NULL;
		return -1;
	}
	return 0;
}

bool
metrics_addr_valid(const char *addr)
{
	struct addrinfo *ai;

	if (addr == NULL || resolve_addr(addr, &ai) != 0)
		return false;
	freeaddrinfo(ai);
	return true;
}

#ifdef HAVE_MHD
/* libmicrohttpd's error log: one line, through the logger. */
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct metrics *m = cls;
	char msg[200];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
		msg[--n] = '\0';
	if (m->starting)
		snprintf(m->start_msg, sizeof(m->start_msg), "%s", msg);
	else
		log_warn("http server: error=%s", log_q(msg));
}

static enum MHD_Result
answer(void *cls, struct MHD_Connection *conn, const char *url,
       const char *method, const char *version, const char *upload,
       size_t *upload_size, void **req)
{
	struct metrics *m = cls;
	struct MHD_Response *resp;
	struct buf out = BUF_INIT;
	unsigned int code = MHD_HTTP_OK;
	const char *type = "text/plain; charset=utf-8";
	enum MHD_Result ret;
	size_t len;
	char *body;

	(void)version;
	(void)upload;
	(void)upload_size;
	(void)req;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		code = MHD_HTTP_METHOD_NOT_ALLOWED;
		buf_adds(&out, "method not allowed\n");
	} else if (strcmp(url, "/healthz") == 0) {
		bool ok = metrics_healthy(m);

		code = ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
		buf_adds(&out, ok ? "ok\n" : "unhealthy\n");
	} else if (strcmp(url, "/metrics") == 0) {
		type = "text/plain; version=0.0.4; charset=utf-8";
		metrics_render(m, &out);
	} else {
		code = MHD_HTTP_NOT_FOUND;
		buf_adds(&out, "not found: /healthz, /metrics\n");
	}
	len = out.len;
	body = buf_detach(&out);
	resp = MHD_create_response_from_buffer(len, body,
					       MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, "Content-Type", type);
	ret = MHD_queue_response(conn, code, resp);
	MHD_destroy_response(resp);
	return ret;
}
#endif

int
metrics_serve(struct metrics *m, const char *addr, struct ops_err *err)
{
#ifdef HAVE_MHD
	struct addrinfo *ai = NULL;

	if (resolve_addr(addr, &ai) != 0)
		return ops_fail(
			err, OPS_E_CONFIG, false,
			"APEXOPS_HTTP_ADDR '%s': " METRICS_ADDR_EXPECTED, addr);
	m->starting = true;
	m->start_msg[0] = '\0';
	m->httpd = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
			(ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
		0, NULL, NULL, answer, m, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
		MHD_OPTION_CONNECTION_LIMIT, 32U, MHD_OPTION_CONNECTION_TIMEOUT,
		10U, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, m, MHD_OPTION_END);
	m->starting = false;
	freeaddrinfo(ai);
	/* libmicrohttpd says "port 0" of an address given whole: its
	 * reason (after the colon) is kept, the address is ours */
	if (m->httpd == NULL) {
		const char *why = strrchr(m->start_msg, ':');

		return ops_fail(
			err, OPS_E_CONFIG, false,
			"HTTP address '%s' (--http, APEXOPS_HTTP_ADDR): "
			"cannot listen there: %s",
			addr,
			why != NULL && why[1] == ' '
				? why + 2
				: "in use, or not an address of this "
				  "host");
	}
	return 0;
#else
	(void)m;
	return ops_fail(err, OPS_E_CONFIG, false,
			"APEXOPS_HTTP_ADDR '%s': this apexops was built "
			"without libmicrohttpd",
			addr);
#endif
}
