/*
 * S3 answers and request paths are untrusted input: the XML text reader
 * (UploadId, error Code and Message) must stay within the bytes it is
 * given, and path canonicalisation must not crash, whatever they hold.
 * The input is not NUL-terminated for the XML reader; for the path it is
 * copied into a C string.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "storage/s3.h"
#include "storage/sigv4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const tags[] = { "UploadId", "Code", "Message",
					    "ETag" };
	struct buf out = BUF_INIT;
	char *path;

	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		buf_reset(&out);
		(void)s3_xml_text((const char *)data, size, tags[i], 1024,
				  &out);
	}
	path = malloc(size + 2);
	if (path != NULL) {
		path[0] = '/';
		memcpy(path + 1, data, size);
		path[size + 1] = '\0';
		buf_reset(&out);
		(void)sigv4_canonical_uri(&out, path, SIGV4_NO_NORMALIZE);
		buf_reset(&out);
		(void)sigv4_canonical_uri(&out, path, 0);
		buf_reset(&out);
		(void)sigv4_encode_path(&out, path, strlen(path));
		free(path);
	}
	buf_release(&out);
	return 0;
}
