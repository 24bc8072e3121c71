/*
 * The job kinds a worker knows: the built-in noop and the handlers of
 * other modules (privacy exports and deletes). Each entry names its
 * kind, handler, default max_attempts and pool (which concurrency limit
 * applies: APEXOPS_WORKER_CONCURRENCY or PRIVACY_WORKER_CONCURRENCY).
 */
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/stop.h"
#include "core/xalloc.h"
#include "daemon/worker.h"
#include "jobs/privacy.h"

/*
 * Tests count executions: when the process environment (never a payload)
 * names a file in APEXOPS_TEST_NOOP_LOG, each noop execution appends
 * "start|done ID ATTEMPT US" to it in one write (O_APPEND keeps lines
 * whole across processes; US: CLOCK_MONOTONIC microseconds, which
 * bench/queue compares with its enqueue times). The file is opened once.
 * With APEXOPS_TEST_NOOP_LOG_BUFFER set too (bench/queue, whose peers
 * record in memory), each handler thread keeps its lines and writes them
 * in 64 KiB blocks and when it exits; a killed worker's lines are lost
 * then, so the tests do not set it. Not configuration variables: nothing
 * an operator sets.
 */
struct noop_buf {
	size_t n;
	char b[65536];
};

static pthread_once_t noop_log_once = PTHREAD_ONCE_INIT;
static int noop_log_fd = -1;
static bool noop_log_buffered;
static pthread_key_t noop_log_key;

static void
noop_log_write(const char *b, size_t n)
{
	ssize_t w = write(noop_log_fd, b, n);

	if (w < 0 || (size_t)w != n)
		log_warn("noop: cannot record to the test log");
}

/* a handler thread's buffer, at its exit */
static void
noop_log_flush(void *arg)
{
	struct noop_buf *nb = arg;

	if (nb->n > 0)
		noop_log_write(nb->b, nb->n);
	free(nb);
}

static void
noop_log_open(void)
{
	const char *path = getenv("APEXOPS_TEST_NOOP_LOG");
	const char *buffered = getenv("APEXOPS_TEST_NOOP_LOG_BUFFER");

	if (path == NULL || path[0] == '\0')
		return;
	noop_log_fd =
		open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (noop_log_fd >= 0 && buffered != NULL && buffered[0] != '\0' &&
	    pthread_key_create(&noop_log_key, noop_log_flush) == 0)
		noop_log_buffered = true;
}

static void
noop_record(const struct worker_job *job, const char *what)
{
	struct timespec ts;
	struct noop_buf *nb;
	char line[128];
	int len;

	pthread_once(&noop_log_once, noop_log_open);
	if (noop_log_fd < 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	len = snprintf(line, sizeof(line), "%s %lld %d %lld\n", what, job->id,
		       job->attempt,
		       (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
	if (!noop_log_buffered) {
		noop_log_write(line, (size_t)len);
		return;
	}
	nb = pthread_getspecific(noop_log_key);
	if (nb == NULL) {
		nb = xcalloc(1, sizeof(*nb));
		if (pthread_setspecific(noop_log_key, nb) != 0)
			abort();
	}
	if (nb->n + (size_t)len > sizeof(nb->b)) {
		noop_log_write(nb->b, nb->n);
		nb->n = 0;
	}
	memcpy(nb->b + nb->n, line, (size_t)len);
	nb->n += (size_t)len;
}

/* The built-in kind: does nothing but sleep payload.sleep_ms (default 0);
 * the benchmark and the tests use it. */
static int
noop_handle(struct worker_job *job)
{
	json_t *doc = json_loads(job->payload, 0, NULL);
	json_t *ms = json_object_get(doc, "sleep_ms");
	long sleep_ms = json_is_integer(ms) ? (long)json_integer_value(ms) : 0;
	json_t *fail = json_object_get(doc, "fail_attempts");
	int r = 0;

	noop_record(job, "start");
	/* tests: fail the first fail_attempts attempts, then succeed */
	if (json_is_integer(fail) && job->attempt <= json_integer_value(fail)) {
		snprintf(job->error, sizeof(job->error),
			 "noop: failing attempt %d of the first %lld as asked",
			 job->attempt, (long long)json_integer_value(fail));
		job->permanent =
			json_is_true(json_object_get(doc, "permanent"));
		json_decref(doc);
		return -1;
	}
	json_decref(doc);
	if (sleep_ms > 0 && ops_sleep_ms(sleep_ms, job->stop) != 0) {
		snprintf(job->error, sizeof(job->error),
			 "noop: stopped after part of its %ld ms", sleep_ms);
		r = -1;
	}
	if (r == 0)
		noop_record(job, "done");
	return r;
}

/* privacy-export and privacy-delete: the payload names the request; the
 * request row says what to do (jobs/privacy.h). */
static int
privacy_handle(struct worker_job *job)
{
	struct ops_err err = OPS_ERR_INIT;
	json_t *doc = json_loads(job->payload, 0, NULL);
	json_t *rid = json_object_get(doc, "request_id");
	long long id = json_is_integer(rid) ? json_integer_value(rid) : 0;
	bool permanent = false;

	if (id < 1) {
		/* what was wrong, and what is allowed; never the value */
		snprintf(job->error, sizeof(job->error),
			 "%s: the payload's request_id is %s; it must be the "
			 "id of a privacy request, a positive integer",
			 job->kind,
			 !json_is_object(doc)
				 ? "unreadable (the payload is not a "
				   "JSON object)"
			 : rid == NULL		? "missing"
			 : json_is_integer(rid) ? "not positive"
						: "not an integer");
		job->permanent = true;
		json_decref(doc);
		return -1;
	}
	json_decref(doc);
	if (privacy_request_run(job->cfg, job->db_url, id, job->id,
				job->attempt, job->stop, &permanent,
				&err) != 0) {
		snprintf(job->error, sizeof(job->error), "%.250s", err.msg);
		job->permanent = permanent;
		return -1;
	}
	return 0;
}

const struct worker_kind worker_kinds[] = {
	{ "noop", noop_handle, 5, WORKER_POOL_DEFAULT,
	  "does nothing ({\"sleep_ms\": N} sleeps); for tests and benchmarks" },
	{ "privacy-export", privacy_handle, 5, WORKER_POOL_PRIVACY,
	  "export a user's data (apexops privacy export)" },
	{ "privacy-delete", privacy_handle, 5, WORKER_POOL_PRIVACY,
	  "erase a user's data (apexops privacy delete)" },
};
const int worker_nkinds = (int)(sizeof(worker_kinds) / sizeof(worker_kinds[0]));
