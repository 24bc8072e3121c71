#include "core/progress.h"

#include <stdio.h>
#include <time.h>

#include "core/log.h"

double
clock_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
progress_start(struct progress *p, const char *what, long long total, bool tty)
{
	p->what = what;
	p->total = total;
	p->done = 0;
	p->started = clock_now();
	p->last_shown = p->started;
	/* with JSON logs every stderr line is JSON: no bar, log lines */
	if (log_is_json())
		tty = false;
	if (p->interval <= 0)
		p->interval = tty ? 0.2 : 10.0;
	p->tty = tty;
	p->drawn = false;
}

double
progress_rate(const struct progress *p)
{
	double el = clock_now() - p->started;

	return el > 0 ? (double)p->done / el : 0.0;
}

static void
show(struct progress *p, bool final)
{
	double rate = progress_rate(p);
	double eta = (p->total > p->done && rate > 0)
			     ? (double)(p->total - p->done) / rate
			     : 0.0;
	double pct =
		p->total > 0 ? 100.0 * (double)p->done / (double)p->total : 0.0;

	if (p->tty) {
		fprintf(stderr, "\r\033[K%s: %lld", p->what, p->done);
		if (p->total > 0)
			fprintf(stderr, "/%lld rows (%.1f%%)", p->total, pct);
		else
			fprintf(stderr, " rows");
		fprintf(stderr, "  %.0f rows/s", rate);
		if (!final && p->total > 0)
			fprintf(stderr, "  ETA %.0fs", eta);
		if (final)
			fprintf(stderr, "  %.1fs\n", clock_now() - p->started);
		fflush(stderr);
		p->drawn = true;
	} else {
		log_info("progress what=%s rows=%lld total=%lld rate=%.0f "
			 "eta_s=%.0f%s",
			 log_q(p->what), p->done, p->total, rate, eta,
			 final ? " final=true" : "");
	}
}

void
progress_add(struct progress *p, long long n)
{
	double now = clock_now();

	p->done += n;
	if (now - p->last_shown >= p->interval) {
		p->last_shown = now;
		show(p, false);
	}
}

void
progress_finish(struct progress *p)
{
	if (p->tty || p->done > 0)
		show(p, true);
}
