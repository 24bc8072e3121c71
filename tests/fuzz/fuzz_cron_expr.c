/*
 * libFuzzer target for cron expressions (text from the job table and the
 * command line). A parsed expression must format to text that parses back
 * to it, and its fire times, in a zone with DST, must increase.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs/cron_expr.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* a zone with both DST changes: the gap and the doubled hour */
	setenv("TZ", "Europe/Berlin", 1);
	tzset();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* just before Berlin's spring-forward and fall-back hours of 2026 */
	static const time_t afters[] = { 1774744200, 1792886400 };
	struct cron_expr ce, again;
	struct ops_err err = OPS_ERR_INIT;
	char text[CRON_FORMAT_MAX], *in;
	time_t next[3];

	if (size > 4096)
		return 0;
	in = malloc(size + 1);
	if (in == NULL)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0'; /* the parser takes a C string */
	if (cron_parse(in, &ce, &err) != 0) {
		/* refused: always with a message */
		if (err.code != OPS_E_INVALID || err.msg[0] == '\0')
			__builtin_trap();
		free(in);
		return 0;
	}
	free(in);
	if (cron_format(&ce, text, sizeof(text)) <= 0)
		__builtin_trap();
	if (cron_parse(text, &again, NULL) != 0 ||
	    memcmp(&ce, &again, sizeof(ce)) != 0)
		__builtin_trap();
	for (size_t i = 0; i < sizeof(afters) / sizeof(afters[0]); i++) {
		if (cron_next_n(&ce, afters[i], next, 3) != 0)
			__builtin_trap(); /* an accepted expression fires */
		if (next[0] <= afters[i] || next[1] <= next[0] ||
		    next[2] <= next[1])
			__builtin_trap();
	}
	return 0;
}
