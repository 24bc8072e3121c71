/* libFuzzer target for queue_handoff_parse(): a handoff notification's
 * payload (any client may pg_notify on a worker's channel). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/queue_handoff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct queue_job j;
	char why[96];
	char *text = malloc(size + 1);

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (queue_handoff_parse(text, &j, why, sizeof(why))) {
		/* what passes is a job the worker can run and fence */
		if (j.id <= 0 || j.attempt < 1 || j.max_attempts < 1 ||
		    j.payload == NULL || !queue_kind_valid(j.kind))
			__builtin_trap();
	} else if (j.payload != NULL || why[0] == '\0') {
		__builtin_trap();
	}
	free(j.payload);
	free(text);
	return 0;
}
