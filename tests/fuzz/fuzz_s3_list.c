/*
 * ListObjectsV2 and ListMultipartUploads answers are untrusted input:
 * the page readers must stay
 * within the bytes it is given (not NUL-terminated), hand out only
 * NUL-free keys of at most 1024 bytes, and stop when the callback asks.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "storage/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
each(void *arg, const char *key)
{
	int *n = arg;

	if (strlen(key) == 0 || strlen(key) > 1024)
		abort();
	return ++(*n) == 1000 ? 1 : 0;
}

static int
each_upload(void *arg, const char *key, const char *id, time_t when)
{
	(void)when;
	if (strlen(key) == 0 || strlen(key) > 1024 || strlen(id) == 0 ||
	    strlen(id) > 1024)
		abort();
	return each(arg, key);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf next = BUF_INIT, next_id = BUF_INIT;
	bool truncated = false;
	int n = 0;

	(void)s3_list_parse((const char *)data, size, each, &n, &truncated,
			    &next);
	if (next.len > 1024)
		abort();
	buf_reset(&next);
	n = 0;
	(void)s3_uploads_parse((const char *)data, size, each_upload, &n,
			       &truncated, &next, &next_id);
	if (next.len > 1024 || next_id.len > 1024)
		abort();
	buf_release(&next);
	buf_release(&next_id);
	return 0;
}
