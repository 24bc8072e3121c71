/*
 * Logging: one event per line on stderr, key=value text (default) or JSON.
 * A call reads like log_info("purge batch table=%s rows=%ld", t, n): the
 * words before the first key=value token are the message, the rest are
 * fields. Values with spaces are quoted by the caller ("%s" inside quotes
 * through log_q()). Secrets registered with log_add_secret() are replaced
 * by "***" in every line, whatever module wrote them.
 */
#ifndef OPS_CORE_LOG_H
#define OPS_CORE_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF };
enum log_format { LOG_FMT_TEXT = 0, LOG_FMT_JSON };

extern enum log_level log_min_level;

void log_setup(enum log_level lvl, enum log_format fmt, const char *component);
/* Parse "debug|info|warn|error"; -1 when unknown. */
int log_level_parse(const char *s);
/* Remember s (copied) so that it never appears in a line. Empty is ignored. */
void log_add_secret(const char *s);
void log_forget_secrets(void);
/* Replace every registered secret in s (in place, same length or shorter). */
void log_scrub(char *s);

void log_emit(enum log_level lvl, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

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
 * Quote a value for a key=value field: returns a pointer into one of a few
 * rotating static buffers ("..." with \" and \\ escaped), so that up to four
 * may appear in one call. Not thread-safe; apexops logs from one thread.
 */
const char *log_q(const char *s);

#endif
