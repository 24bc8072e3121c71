/*
 * Charts of a revenue plan: a terminal sparkline and a small hand-written
 * SVG (stacked bars per day and adapter). A plotting library (cairo via
 * librsvg, gnuplot) was considered; the chart is a few dozen elements and
 * must be byte-for-byte deterministic, so it is written directly.
 */
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "jobs/revenue.h"

static long long
day_total(const struct revenue_plan *plan, int d)
{
	long long t = 0;

	for (int a = 0; a < REVENUE_NADAPTERS; a++)
		t += plan->day_cents[(size_t)d * REVENUE_NADAPTERS + (size_t)a];
	return t;
}

void
revenue_sparkline(const struct revenue_plan *plan, int width, struct buf *out,
		  int *per_char)
{
	static const char *const bars[8] = { "▁", "▂", "▃", "▄",
					     "▅", "▆", "▇", "█" };
	int step, ncols;
	long long lo = 0, hi = 0;
	long long vals[512];

	if (width < 1)
		width = 1;
	if (width > (int)(sizeof(vals) / sizeof(vals[0])))
		width = (int)(sizeof(vals) / sizeof(vals[0]));
	step = (plan->days + width - 1) / width;
	ncols = (plan->days + step - 1) / step;
	for (int c = 0; c < ncols; c++) {
		vals[c] = 0;
		for (int d = c * step; d < plan->days && d < (c + 1) * step;
		     d++)
			vals[c] += day_total(plan, d);
		/* a short last bucket would look like a dip: scale it up */
		if (c == ncols - 1 && plan->days % step != 0)
			vals[c] = vals[c] * step / (plan->days % step);
		if (c == 0 || vals[c] < lo)
			lo = vals[c];
		if (c == 0 || vals[c] > hi)
			hi = vals[c];
	}
	for (int c = 0; c < ncols; c++) {
		int level = hi > lo ? (int)((vals[c] - lo) * 7 / (hi - lo)) : 3;

		buf_adds(out, bars[level]);
	}
	if (per_char != NULL)
		*per_char = step;
}

/* "1,234,567.89" */
static void
money(long long cents, char *s, size_t len)
{
	char digits[32], grouped[32];
	size_t n, j = 0;

	snprintf(digits, sizeof(digits), "%lld", cents / 100);
	n = strlen(digits);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			grouped[j++] = ',';
		grouped[j++] = digits[i];
	}
	grouped[j] = '\0';
	snprintf(s, len, "%s.%02lld", grouped, cents % 100);
}

/* The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 x 10^k (in cents,
 * k >= 1 dollar) at or above v: five gridlines at round amounts. */
static long long
nice_ceiling(long long v)
{
	static const long long m[] = { 100, 120, 150, 200, 250,
				       300, 400, 500, 600, 800 };
	long long p = 1;

	if (v <= 0)
		return 100;
	for (;;) {
		for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
			if (m[i] * p >= v)
				return m[i] * p;
		p *= 10;
	}
}

void
revenue_svg(const struct revenue_plan *plan, struct buf *out)
{
	static const char *const colors[REVENUE_NADAPTERS] = { "#4e79a7",
							       "#f28e2b",
							       "#59a14f" };
	const int W = 900, H = 440, left = 100, right = 170, top = 50,
		  bottom = 80;
	const double pw = W - left - right, ph = H - top - bottom;
	char total[64], from[16], to[16], lab[64];
	long long ymax = 0;
	double slot, bar;
	int label_step;

	for (int d = 0; d < plan->days; d++) {
		long long t = day_total(plan, d);

		if (t > ymax)
			ymax = t;
	}
	ymax = nice_ceiling(ymax);
	slot = pw / plan->days;
	bar = slot > 2 ? slot * 0.8 : slot;
	label_step = (plan->days + 9) / 10;
	money(plan->total_cents, total, sizeof(total));
	revenue_date_format(&plan->start, from, sizeof(from));
	revenue_date_format(&plan->end, to, sizeof(to));

	buf_addf(out,
		 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
		 "height=\"%d\" viewBox=\"0 0 %d %d\" "
		 "font-family=\"sans-serif\" font-size=\"12\">\n"
		 "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n"
		 "<text x=\"%d\" y=\"28\" font-size=\"16\" "
		 "font-weight=\"bold\">Sandbox revenue: %s tier, %s to %s, "
		 "total $%s</text>\n",
		 W, H, W, H, W, H, left, revenue_tier_name(plan->tier), from,
		 to, total);

	/* y axis: 5 gridlines with dollar labels */
	for (int i = 0; i <= 5; i++) {
		double y = top + ph - ph * i / 5;

		money(ymax * i / 5, lab, sizeof(lab));
		if (ymax % 500 == 0) /* every tick in whole dollars */
			lab[strlen(lab) - 3] = '\0';
		buf_addf(out,
			 "<line x1=\"%d\" y1=\"%.2f\" x2=\"%.2f\" "
			 "y2=\"%.2f\" stroke=\"#dddddd\"/>\n"
			 "<text x=\"%d\" y=\"%.2f\" text-anchor=\"end\">"
			 "$%s</text>\n",
			 left, y, left + pw, y, left - 6, y + 4, lab);
	}
	buf_addf(out,
		 "<text x=\"30\" y=\"%.2f\" text-anchor=\"middle\" "
		 "transform=\"rotate(-90 30 %.2f)\">USD per day</text>\n",
		 top + ph / 2, top + ph / 2);

	/* stacked bars, FakeNetworkA at the bottom */
	for (int d = 0; d < plan->days; d++) {
		double x = left + slot * d + (slot - bar) / 2, base = top + ph;

		for (int a = 0; a < REVENUE_NADAPTERS; a++) {
			long long c =
				plan->day_cents[(size_t)d * REVENUE_NADAPTERS +
						(size_t)a];
			double h = ph * (double)c / (double)ymax;

			if (c == 0)
				continue;
			base -= h;
			buf_addf(out,
				 "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" "
				 "height=\"%.2f\" fill=\"%s\"/>\n",
				 x, base, bar, h, colors[a]);
		}
	}

	/* axes */
	buf_addf(out,
		 "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%.2f\" "
		 "stroke=\"#333333\"/>\n"
		 "<line x1=\"%d\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" "
		 "stroke=\"#333333\"/>\n",
		 left, top, left, top + ph, left, top + ph, left + pw,
		 top + ph);

	/* x axis: a date label every label_step days */
	for (int d = 0; d < plan->days; d += label_step) {
		struct revenue_date dt;
		double x = left + slot * d + slot / 2, y = top + ph;

		revenue_date_from_days(revenue_date_to_days(&plan->start) + d,
				       &dt);
		revenue_date_format(&dt, lab, sizeof(lab));
		buf_addf(out,
			 "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" "
			 "y2=\"%.2f\" stroke=\"#333333\"/>\n"
			 "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\" "
			 "font-size=\"11\" transform=\"rotate(-40 %.2f "
			 "%.2f)\">%s</text>\n",
			 x, y, x, y + 4, x, y + 16, x, y + 16, lab);
	}

	/* legend */
	for (int a = 0; a < REVENUE_NADAPTERS; a++) {
		int x = W - right + 20, y = top + 10 + a * 22;

		buf_addf(out,
			 "<rect x=\"%d\" y=\"%d\" width=\"14\" "
			 "height=\"14\" fill=\"%s\"/>\n"
			 "<text x=\"%d\" y=\"%d\">%s</text>\n",
			 x, y, colors[a], x + 20, y + 12,
			 sandbox_adapters[a].name);
	}
	buf_adds(out, "</svg>\n");
}
