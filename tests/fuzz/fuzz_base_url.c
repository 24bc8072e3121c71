/*
 * libFuzzer target for the base-URL rule (http/url.c): any input is a
 * candidate APEXOPS_STRIPE_API_BASE. Beyond memory safety, an accepted URL
 * must hold no query or fragment, and a plain http:// one must hold no
 * '@' in its authority (userinfo is refused).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"
#include "http/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xstrndup((const char *)data, size);
	struct ops_err err = OPS_ERR_INIT;

	if (http_base_url_check("APEXOPS_STRIPE_API_BASE", text, &err) == 0) {
		if (strchr(text, '?') != NULL || strchr(text, '#') != NULL)
			__builtin_trap();
		if (strncasecmp(text, "http://", 7) == 0) {
			size_t auth = strcspn(text + 7, "/");

			if (memchr(text + 7, '@', auth) != NULL)
				__builtin_trap();
		}
	} else if (err.msg[0] == '\0') {
		__builtin_trap(); /* a refusal always says why */
	}
	free(text);
	return 0;
}
