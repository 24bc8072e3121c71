/*
 * A service-account key file (GOOGLE_APPLICATION_CREDENTIALS) is text an
 * operator mounts: gcs_key_parse() must refuse anything that is not one
 * without crashing or leaking, and never read past the bytes it is given
 * (the input is not NUL-terminated).
 */
#include <stddef.h>
#include <stdint.h>

#include "storage/gcs_auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gcs_key k;
	struct ops_err err = OPS_ERR_INIT;

	(void)gcs_key_parse((const char *)data, size, &k, &err);
	gcs_key_release(&k);
	return 0;
}
