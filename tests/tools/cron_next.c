/*
 * The C side of tests/e2e/test_cron_expr_diff.sh: reads lines of
 * "ZONE AFTER COUNT EXPRESSION" (AFTER in seconds since the epoch) on stdin
 * and answers each with one line: "ok T1 T2 ..." (the next COUNT fire
 * times, seconds since the epoch) or "error MESSAGE". The zone is set as
 * the scheduler sets it: setenv("TZ") and tzset().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/cron_expr.h"

int
main(void)
{
	char line[4096], zone[128] = "", cur[128] = "";
	long long after;
	int count, used;

	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		struct cron_expr ce;
		struct ops_err err = OPS_ERR_INIT;
		time_t next[16];
		char *text;
		int r;

		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "%127s %lld %d %n", zone, &after, &count,
			   &used) != 3 ||
		    count < 1 || count > 16) {
			fprintf(stderr, "cron_next: bad input line: %s\n",
				line);
			return 64;
		}
		if (strcmp(zone, cur) != 0) {
			if (setenv("TZ", zone, 1) != 0) {
				perror("cron_next: setenv");
				return 1;
			}
			tzset();
			snprintf(cur, sizeof(cur), "%s", zone);
		}
		text = line + used;
		r = cron_parse(text, &ce, &err);
		if (r == 0)
			r = cron_next_n(&ce, (time_t)after, next,
					(size_t)count);
		if (r != 0) {
			printf("error %s\n", r == OPS_E_INVALID && err.msg[0]
						     ? err.msg
						     : "cron_next failed");
			continue;
		}
		printf("ok");
		for (int i = 0; i < count; i++)
			printf(" %lld", (long long)next[i]);
		printf("\n");
	}
	return 0;
}
