/* libFuzzer target for the privacy id parsers (ids from argv and SQL). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/privacy_id.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[PRIVACY_UUID_LEN + 1];
	char *text = malloc(size + 1);
	long long id;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (privacy_uuid_parse("user id", text, out, NULL) == 0) {
		/* what passes is canonical: 36 bytes, lower-case hex and
		 * dashes, nothing a path could misread */
		if (strlen(out) != PRIVACY_UUID_LEN ||
		    strspn(out, "0123456789abcdef-") != PRIVACY_UUID_LEN ||
		    strcasecmp(out, text) != 0)
			__builtin_trap();
	} else if (out[0] != '\0') {
		__builtin_trap();
	}
	if (privacy_request_id_parse(text, &id, NULL) == 0 && id < 1)
		__builtin_trap();
	free(text);
	return 0;
}
