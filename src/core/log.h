/*
 * Logging: one event per line on stderr, key=value text (default) or JSON.
 * A call reads like log_info("purge batch table=%s rows=%ld", t, n): the
 * words before the first key=value token are the message, the rest are
 * fields. Values with spaces are quoted by the caller ("%s" inside quotes
 * through log_q()). Secrets registered with log_add_secret() are replaced
 * by "***" in every line, whatever module wrote them.
 *
 * Threads: the daemons log from several threads. Each line is built in
 * memory and written to stderr with one write(2), not through stdio, so
 * lines from threads never mix: Linux does not interleave concurrent
 * writes to one file, and a pipe (journald) keeps a write of up to
 * PIPE_BUF (4096) bytes whole. Each function below says "any thread" or
 * "main thread, before threads start".
 */
#ifndef OPS_CORE_LOG_H
#define OPS_CORE_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };
enum log_format { LOG_FMT_TEXT = 0, LOG_FMT_JSON };

/* Read by the log_* macros without a lock: set by log_setup() only. */
extern enum log_level log_min_level;

/* Level, format and component name (copied; NULL keeps the old one).
 * Main thread, before threads start: the fields are read without a lock. */
void log_setup(enum log_level lvl, enum log_format fmt, const char *component);
/* Is the line format JSON? Any thread. */
bool log_is_json(void);
/* Parse "debug|info|warn|error"; -1 when unknown. s non-NULL. Any thread. */
int log_level_parse(const char *s);
/*
 * Remember s (copied) so that it never appears in a line; NULL or shorter
 * than 4 bytes is ignored. The secret list is guarded by a lock, so these
 * and log_scrub() may be called from any thread; in practice config_load()
 * registers every secret before threads start.
 */
void log_add_secret(const char *s);
/* Wipe and forget the registered secret equal to s (a rotated credential:
 * the list stays as long as what is live). NULL or unknown: no-op. Any
 * thread. */
void log_remove_secret(const char *s);
/* Wipe and forget every registered secret. Any thread. */
void log_forget_secrets(void);
/* Replace every registered secret in s (in place, same length or shorter).
 * s non-NULL. Any thread. */
void log_scrub(char *s);

/* Format, scrub and write one line. Any thread. */
void log_emit(enum log_level lvl, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Write one line whose message is taken as is (not split into key=value
 * fields; scrubbed of secrets), with extra fields given as a NULL-ended
 * list of key, value pairs (values NULL are left out). component NULL:
 * the one of log_setup(). Used by the CLI for its final error and warning
 * lines so that, with APEXOPS_LOG_FORMAT=json, every stderr line is JSON.
 * Any thread.
 */
void log_line(enum log_level lvl, const char *component, const char *msg,
	      const char *const *fields);

#define log_at(lvl, ...)                                        \
	do {                                                    \
		if ((lvl) >= log_min_level)                     \
			log_emit((lvl), __func__, __VA_ARGS__); \
	} while (0)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_at(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)

/*
 * Quote a value for a key=value field ("..." with \" and \\ escaped, a
 * newline as a space, at most about 500 bytes; NULL as ""). Returns a
 * pointer into one of four rotating buffers of the calling thread, so that
 * up to four may appear in one log call; the fifth call reuses the first.
 * Any thread: the buffers are _Thread_local.
 */
const char *log_q(const char *s);

#endif
