/*
 * The job kinds a worker knows: the built-in noop and the handlers of
 * other modules (privacy exports and deletes). Each entry names its
 * kind, handler, default max_attempts and pool (which concurrency limit
 * applies: APEXOPS_WORKER_CONCURRENCY or PRIVACY_WORKER_CONCURRENCY).
 */
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/stop.h"
#include "daemon/worker.h"
#include "jobs/privacy.h"

/*
 * Tests count executions: when the process environment (never a payload)
 * names a file in APEXOPS_TEST_NOOP_LOG, each noop execution appends
 * "start|done ID ATTEMPT US" to it in one write (O_APPEND keeps lines
 * whole across processes; US: CLOCK_MONOTONIC microseconds, which
 * bench/queue compares with its enqueue times). The file is opened once.
 * Not a configuration variable: nothing an operator sets.
 */
static pthread_once_t noop_log_once = PTHREAD_ONCE_INIT;
static int noop_log_fd = -1;

static void
noop_log_open(void)
{
	const char *path = getenv("APEXOPS_TEST_NOOP_LOG");

	if (path != NULL && path[0] != '\0')
		noop_log_fd = open(
			path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
}

static void
noop_record(const struct worker_job *job, const char *what)
{
	struct timespec ts;
	char line[128];
	int len;

	pthread_once(&noop_log_once, noop_log_open);
	if (noop_log_fd < 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	len = snprintf(line, sizeof(line), "%s %lld %d %lld\n", what, job->id,
		       job->attempt,
		       (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
	if (write(noop_log_fd, line, (size_t)len) != len)
		log_warn("noop: cannot record to the test log");
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

	json_decref(doc);
	if (id < 1) {
		snprintf(job->error, sizeof(job->error),
			 "%s: the payload names no request_id", job->kind);
		job->permanent = true;
		return -1;
	}
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
