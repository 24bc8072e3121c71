/* core/log.c from several threads: every line whole (one write per
 * line), every quoted value on its own line (log_q's buffers are per
 * thread), secrets scrubbed while threads log; and log_line() output. */
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "core/progress.h"

#define NTHREADS 8
#define NLINES	 400

static int saved_stderr = -1;
static char capture[64];

/* Send fd 2 to a fresh file until uncapture(). */
static void
capture_stderr(void)
{
	int fd;

	snprintf(capture, sizeof(capture), "/tmp/apexops-log-XXXXXX");
	fd = mkstemp(capture);
	assert_true(fd >= 0);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
}

/* Restore fd 2; returns the captured text (caller frees). */
static char *
uncapture(size_t *len)
{
	FILE *f;
	char *text;
	long n;

	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	f = fopen(capture, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	text = malloc((size_t)n + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
	text[n] = '\0';
	fclose(f);
	unlink(capture);
	*len = (size_t)n;
	return text;
}

static void
value(char *out, size_t n, char tag, int t, int i)
{
	char pad[160];

	memset(pad, 'a' + t, sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	snprintf(out, n, "%c-%d-%d-%s secret-%d", tag, t, i, pad, t);
}

static void *
writer(void *arg)
{
	int t = (int)(intptr_t)arg;
	char a[256], b[256];

	for (int i = 0; i < NLINES; i++) {
		value(a, sizeof(a), 'A', t, i);
		value(b, sizeof(b), 'B', t, i);
		/* two quoted values per line, from per-thread buffers */
		log_info("tline t=%d n=%d a=%s b=%s", t, i, log_q(a), log_q(b));
	}
	return NULL;
}

static void
run_writers(void)
{
	pthread_t th[NTHREADS];

	for (int t = 0; t < NTHREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, writer,
						(void *)(intptr_t)t),
				 0);
	for (int t = 0; t < NTHREADS; t++)
		assert_int_equal(pthread_join(th[t], NULL), 0);
}

/* expected scrubbed value of a for thread t, line i */
static void
scrubbed(char *out, size_t n, char tag, int t, int i)
{
	char v[256], *p;

	value(v, sizeof(v), tag, t, i);
	p = strstr(v, " secret-");
	if (t == 3) /* "secret-3" is registered: "***" */
		snprintf(p, sizeof(v) - (size_t)(p - v), " ***");
	snprintf(out, n, "%s", v);
}

static void
test_threads_text_lines_whole(void **state)
{
	int seen[NTHREADS][NLINES];
	size_t len, lines = 0;
	char *text, *line, *save = NULL;

	(void)state;
	memset(seen, 0, sizeof(seen));
	log_setup(LOG_INFO, LOG_FMT_TEXT, "test");
	log_add_secret("secret-3");
	capture_stderr();
	run_writers();
	text = uncapture(&len);
	assert_true(len > 0 && text[len - 1] == '\n');
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char want[700], a[256], b[256];
		const char *p = strstr(line, " tline t=");
		int t, i;

		lines++;
		if (strncmp(line, "ts=", 3) != 0 || p == NULL ||
		    sscanf(p, " tline t=%d n=%d", &t, &i) != 2 || t < 0 ||
		    t >= NTHREADS || i < 0 || i >= NLINES)
			fail_msg("broken line: %.200s", line);
		scrubbed(a, sizeof(a), 'A', t, i);
		scrubbed(b, sizeof(b), 'B', t, i);
		snprintf(want, sizeof(want),
			 " tline t=%d n=%d a=\"%s\" b=\"%s\"", t, i, a, b);
		if (strcmp(p, want) != 0)
			fail_msg("line of t=%d n=%d holds another's value: "
				 "%.300s",
				 t, i, p);
		seen[t][i]++;
	}
	assert_int_equal(lines, NTHREADS * NLINES);
	for (int t = 0; t < NTHREADS; t++)
		for (int i = 0; i < NLINES; i++)
			assert_int_equal(seen[t][i], 1);
	free(text);
	log_forget_secrets();
}

static void
test_threads_json_lines_parse(void **state)
{
	size_t len, lines = 0;
	char *text, *line, *save = NULL;

	(void)state;
	log_setup(LOG_INFO, LOG_FMT_JSON, "test");
	capture_stderr();
	run_writers();
	text = uncapture(&len);
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		json_error_t je;
		json_t *doc = json_loads(line, 0, &je);
		char a[256];
		int t, i;

		if (doc == NULL)
			fail_msg("not JSON: %s: %.200s", je.text, line);
		t = atoi(json_string_value(json_object_get(doc, "t")));
		i = atoi(json_string_value(json_object_get(doc, "n")));
		assert_in_range(t, 0, NTHREADS - 1);
		assert_in_range(i, 0, NLINES - 1);
		value(a, sizeof(a), 'A', t, i);
		assert_string_equal(
			json_string_value(json_object_get(doc, "a")), a);
		assert_string_equal(
			json_string_value(json_object_get(doc, "msg")),
			"tline");
		json_decref(doc);
		lines++;
	}
	assert_int_equal(lines, NTHREADS * NLINES);
	free(text);
	log_setup(LOG_INFO, LOG_FMT_TEXT, "test");
}

static void
test_log_line_fields(void **state)
{
	static const char *const fields[] = { "sqlstate", "40001", "skip", NULL,
					      "exit",	  "75",	   NULL };
	size_t len;
	char *text;
	json_t *doc;

	(void)state;
	log_add_secret("hunter2secret");
	log_setup(LOG_INFO, LOG_FMT_JSON, "test");
	capture_stderr();
	/* the message is kept whole: "a=b" is not a field here */
	log_line(LOG_ERROR, "purge", "bad value 'a=b' for hunter2secret",
		 fields);
	text = uncapture(&len);
	log_setup(LOG_INFO, LOG_FMT_TEXT, "test");
	doc = json_loads(text, 0, NULL);
	if (doc == NULL)
		fail_msg("not JSON: %s", text);
	assert_string_equal(json_string_value(json_object_get(doc, "msg")),
			    "bad value 'a=b' for ***");
	assert_string_equal(json_string_value(json_object_get(doc, "level")),
			    "error");
	assert_string_equal(
		json_string_value(json_object_get(doc, "component")), "purge");
	assert_string_equal(json_string_value(json_object_get(doc, "sqlstate")),
			    "40001");
	assert_null(json_object_get(doc, "skip"));
	json_decref(doc);
	free(text);
	log_forget_secrets();
}

static void
test_progress_json_draws_no_bar(void **state)
{
	struct progress pr = { 0 };
	size_t len;
	char *text;
	json_t *doc;

	(void)state;
	log_setup(LOG_INFO, LOG_FMT_JSON, "test");
	capture_stderr();
	/* asked for a terminal bar, but stderr must stay JSON */
	progress_start(&pr, "purge t", 10, true);
	progress_add(&pr, 10);
	progress_finish(&pr);
	text = uncapture(&len);
	log_setup(LOG_INFO, LOG_FMT_TEXT, "test");
	assert_false(pr.tty);
	assert_null(strchr(text, '\r'));
	for (char *line = text, *nl; *line != '\0'; line = nl + 1) {
		nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = '\0';
		doc = json_loads(line, 0, NULL);
		if (doc == NULL)
			fail_msg("not JSON: %s", line);
		json_decref(doc);
	}
	free(text);
}

/* A rotated credential leaves the scrub list; the others stay. */
static void
test_remove_secret(void **state)
{
	char s[] = "old-key-1 new-key-2 other-3";

	(void)state;
	log_add_secret("old-key-1");
	log_add_secret("new-key-2");
	log_add_secret("other-3");
	log_remove_secret("old-key-1");
	log_remove_secret("never-added");
	log_remove_secret(NULL);
	log_scrub(s);
	assert_string_equal(s, "old-key-1 *** ***");
	log_forget_secrets();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_text_lines_whole),
		cmocka_unit_test(test_threads_json_lines_parse),
		cmocka_unit_test(test_log_line_fields),
		cmocka_unit_test(test_remove_secret),
		cmocka_unit_test(test_progress_json_draws_no_bar),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
