/*
 * Ids of privacy requests, checked before they reach a query or a path:
 * tenant and user ids are UUIDs (RFC 9562 text form, 8-4-4-4-12 hex
 * digits, either case; no braces, no "urn:uuid:", no spaces), request
 * ids are whole numbers >= 1. A tenant or user id that passes is
 * rewritten in lower case, so paths and keys built from it are
 * canonical ("/" and ".." cannot pass).
 *
 * Thread safety: pure functions; callable from any thread.
 */
#ifndef OPS_JOBS_PRIVACY_ID_H
#define OPS_JOBS_PRIVACY_ID_H

#include "core/err.h"

#define PRIVACY_UUID_LEN 36

/*
 * Parse s (NULL is refused) as a UUID into out (37 bytes: the lower-case
 * form and a NUL). what names the value in the message ("tenant id").
 * OPS_E_INVALID with err filled: the message quotes at most 40 bytes of
 * s, with non-printable bytes shown as '?'.
 */
int privacy_uuid_parse(const char *what, const char *s,
		       char out[PRIVACY_UUID_LEN + 1], struct ops_err *err)
	__attribute__((warn_unused_result));

/* Parse s as a request id (1 .. 2^63-1, decimal digits only) into *out;
 * else OPS_E_INVALID. */
int privacy_request_id_parse(const char *s, long long *out, struct ops_err *err)
	__attribute__((warn_unused_result));

#endif
