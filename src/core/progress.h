/*
 * Progress of long work: on a terminal, one line redrawn in place with
 * rows, rate and ETA; elsewhere a log line every interval seconds.
 */
#ifndef OPS_CORE_PROGRESS_H
#define OPS_CORE_PROGRESS_H

#include <stdbool.h>

struct progress {
	const char *what; /* e.g. "purge usage_events" (borrowed) */
	long long total;  /* expected rows; 0 when unknown */
	long long done;
	double started; /* monotonic seconds */
	double last_shown;
	double interval; /* seconds between log lines (default 10) */
	bool tty;	 /* draw on stderr in place */
	bool drawn;
};

/* tty: draw on the terminal; false: periodic log lines. With JSON logs
 * (log_is_json()) always log lines, so that stderr stays JSON. */
void progress_start(struct progress *p, const char *what, long long total,
		    bool tty);
/* Add n rows; shows progress when due. */
void progress_add(struct progress *p, long long n);
/* Final line (and a newline on a terminal). */
void progress_finish(struct progress *p);
/* Rows per second so far. */
double progress_rate(const struct progress *p);
/* Monotonic clock in seconds. */
double clock_now(void);

#endif
