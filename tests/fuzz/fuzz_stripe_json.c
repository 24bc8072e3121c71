/*
 * Stripe answers are untrusted input: the error parser and the form
 * encoder (which re-encodes whatever JSON object it gets) must not crash
 * or read out of bounds on any body.
 */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/buf.h"
#include "stripe/stripe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stripe_error se;
	struct buf out = BUF_INIT;
	json_t *doc;

	memset(&se, 0, sizeof(se));
	(void)stripe_error_parse((const char *)data, size, &se);
	doc = json_loadb((const char *)data, size, 0, NULL);
	if (doc != NULL) {
		out.max = 1 << 20;
		(void)stripe_form_encode(&out, doc);
		(void)stripe_id_valid(
			json_string_value(json_object_get(doc, "id")));
		json_decref(doc);
	}
	buf_release(&out);
	return 0;
}
