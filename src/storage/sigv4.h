/*
 * AWS Signature Version 4 (AWS4-HMAC-SHA256) with OpenSSL, for S3 and for
 * S3-compatible stores such as the GCS XML API with HMAC keys. Ours rather
 * than curl's CURLOPT_AWS_SIGV4: curl 7.88 (Debian 12) neither sorts nor
 * fully encodes query strings and never sends x-amz-content-sha256.
 *
 * Canonicalisation follows AWS's documentation and its published test
 * suite (tests/fixtures/sigv4/), and is checked byte for byte against
 * @smithy/signature-v4, the signer of the AWS SDK for JavaScript:
 *   - path: for S3 (SIGV4_S3) each segment of the path as sent is decoded
 *     and URI-encoded once, without removing dot segments or empty
 *     segments; for other services the path as sent is normalised (empty
 *     and "." segments dropped, ".." removes the one before) and each
 *     segment URI-encoded again, as AWS requires;
 *   - query: names and values URI-encoded (A-Z a-z 0-9 - _ . ~ kept,
 *     everything else %XX), sorted by encoded name, then encoded value;
 *   - headers: names lower-cased and sorted, values trimmed with runs of
 *     blanks (and CR/LF) collapsed to one space, repeated names joined
 *     with "," in the given order.
 *
 * Every function here is reentrant: no static state, so any number of
 * threads may sign at once. Secrets (the secret key, the derived keys) are
 * wiped with OPENSSL_cleanse() and never copied into results or errors.
 */
#ifndef OPS_STORAGE_SIGV4_H
#define OPS_STORAGE_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/buf.h"
#include "core/err.h"

/* The longest validity of a presigned URL, in seconds (7 days). */
#define SIGV4_MAX_EXPIRES 604800

/* The payload hash that S3 accepts in place of the body's SHA-256. */
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"

enum sigv4_flags {
	/* keep the path's dot and empty segments, encode it once (S3) */
	SIGV4_NO_NORMALIZE = 1 << 0,
	/* add and sign x-amz-content-sha256 (S3 requires it) */
	SIGV4_CONTENT_SHA256 = 1 << 1,
	/* send x-amz-security-token but leave it out of the signature (the
	 * test suite's post-sts-header-after; some services want that) */
	SIGV4_TOKEN_UNSIGNED = 1 << 2,
	SIGV4_S3 = SIGV4_NO_NORMALIZE | SIGV4_CONTENT_SHA256
};

/* Credentials; all borrowed. session_token may be NULL or "". */
struct sigv4_creds {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;
};

/* A query parameter, decoded (the signer encodes it). value NULL is "". */
struct sigv4_param {
	const char *name;
	const char *value;
};

/* A header to sign, as it will be sent. Names are case-insensitive. */
struct sigv4_header {
	const char *name;
	const char *value;
};

struct sigv4_request {
	const char *method; /* "GET", "PUT", ... */
	/* The path as sent on the wire, percent-encoded, starting with '/'
	 * (build it with sigv4_encode_path()); without the query. */
	const char *path;
	const struct sigv4_param *query; /* may be NULL when nquery is 0 */
	size_t nquery;
	/* Must include "host". x-amz-date, x-amz-content-sha256,
	 * x-amz-security-token and authorization are the signer's own and
	 * are refused here. */
	const struct sigv4_header *headers;
	size_t nheaders;
	/*
	 * The hex SHA-256 of the body (64 lower-case digits) or
	 * SIGV4_UNSIGNED_PAYLOAD. NULL: the signer hashes body/body_len for
	 * sigv4_sign(), and uses UNSIGNED-PAYLOAD for sigv4_presign().
	 */
	const char *payload_hash;
	const void *body; /* may be NULL when body_len is 0 */
	size_t body_len;
	time_t when;	     /* signing time, UTC seconds */
	const char *region;  /* "us-east-1", "auto" (GCS) */
	const char *service; /* "s3" */
	unsigned flags;	     /* enum sigv4_flags */
};

/*
 * What a signature produced. Strings are owned by the struct; none holds
 * the secret key (a session token may appear in presigned URLs' query,
 * which is the point of them). Release with sigv4_signed_release().
 */
struct sigv4_signed {
	char amz_date[17];     /* x-amz-date value: 20150830T123600Z */
	char payload_hash[65]; /* what was signed; x-amz-content-sha256 */
	char signature[65];    /* hex */
	/* sigv4_sign(): the Authorization header value; presign: NULL */
	char *authorization;
	/* The encoded, sorted query string to send ("" when none); for
	 * presign it holds the X-Amz-* parameters and ends with
	 * X-Amz-Signature. */
	char *query;
	char *signed_headers;	 /* "host;x-amz-date" */
	char *canonical_request; /* for tests and debugging */
	char *string_to_sign;
};

#define SIGV4_SIGNED_INIT                                \
	{                                                \
		"", "", "", NULL, NULL, NULL, NULL, NULL \
	}

/*
 * Sign req for the Authorization header form. On success *out (which
 * must be SIGV4_SIGNED_INIT or released) holds the header values to send:
 * x-amz-date (out->amz_date), x-amz-content-sha256 (out->payload_hash,
 * with SIGV4_CONTENT_SHA256), x-amz-security-token (creds->session_token,
 * when set), Authorization (out->authorization). Returns 0, or
 * OPS_E_INVALID naming the bad field (never quoting a secret). *out is
 * left empty on failure.
 */
int sigv4_sign(const struct sigv4_request *req, const struct sigv4_creds *creds,
	       struct sigv4_signed *out, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * Presign req as a URL valid for expires seconds (1 to
 * SIGV4_MAX_EXPIRES): out->query is the query string to append to
 * scheme://host + req->path after "?". Only the headers in req are signed
 * (usually just host); x-amz-content-sha256 is neither added nor signed.
 * A session token goes into the query as X-Amz-Security-Token and is
 * signed. Returns 0 or OPS_E_INVALID.
 */
int sigv4_presign(const struct sigv4_request *req,
		  const struct sigv4_creds *creds, long expires,
		  struct sigv4_signed *out, struct ops_err *err)
	__attribute__((warn_unused_result));

/* Free what s holds and reset it to SIGV4_SIGNED_INIT. NULL is a no-op. */
void sigv4_signed_release(struct sigv4_signed *s);

/*
 * Append the wire form of a raw (decoded) path: each '/'-separated
 * segment URI-encoded, the slashes kept. "/bucket/a b(1).txt" gives
 * "/bucket/a%20b%281%29.txt". Returns 0, or -1 when out is full.
 */
int sigv4_encode_path(struct buf *out, const char *raw, size_t len);

/*
 * Append the canonical URI of a wire path (the first line after the
 * method in the canonical request), per flags' SIGV4_NO_NORMALIZE.
 * Exposed for tests. Returns 0, or -1 when out is full.
 */
int sigv4_canonical_uri(struct buf *out, const char *path, unsigned flags);

/* Write the lower-case hex SHA-256 of data into hex (65 bytes). */
void sigv4_sha256_hex(const void *data, size_t len, char hex[65]);

#endif
