/*
 * S3 client for the privacy exports: PUT object (multipart above a
 * threshold), DELETE, HEAD and presigned GET URLs, signed with SigV4
 * (storage/sigv4.h) and sent over src/http. Works with S3-compatible
 * stores, including the GCS XML API with HMAC keys (region "auto").
 *
 * Addressing: path-style (endpoint/bucket/key) when the endpoint's host is
 * an IP address or localhost, when force_path_style is set
 * (APEXOPS_S3_FORCE_PATH_STYLE=true), or when the bucket name cannot be a
 * DNS label; virtual-hosted style (bucket.host/key) otherwise, as the AWS
 * SDKs do.
 *
 * Every request carries x-amz-content-sha256 (the body's SHA-256) and
 * x-amz-date, and, with SSE configured, x-amz-server-side-encryption on
 * PUT and CreateMultipartUpload.
 *
 * A struct s3_client is used by one thread at a time (it owns one
 * http_client); make one per thread. Secrets are wiped when it is freed
 * and never reach logs or error text.
 */
#ifndef OPS_STORAGE_S3_H
#define OPS_STORAGE_S3_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/buf.h"
#include "core/err.h"
#include "http/http.h"

/* S3's multipart limits */
#define S3_MIN_PART_SIZE ((size_t)5 * 1024 * 1024)
#define S3_MAX_PARTS	 10000
/* defaults of s3_opts */
#define S3_DEFAULT_THRESHOLD ((size_t)64 * 1024 * 1024)
#define S3_DEFAULT_PART_SIZE ((size_t)16 * 1024 * 1024)

struct aws_profile;
struct aws_creds;

/* One set of AWS credentials; every string owned. */
struct s3_creds {
	char *access_key_id;
	char *secret_access_key; /* wiped by s3_creds_release() */
	char *session_token;	 /* NULL: none; wiped */
	time_t expires;		 /* UTC seconds; 0: does not expire */
};

#define S3_CREDS_INIT               \
	{                           \
		NULL, NULL, NULL, 0 \
	}

/* Wipe and free c's strings; c is S3_CREDS_INIT again. NULL is fine. */
void s3_creds_release(struct s3_creds *c);

/*
 * All strings borrowed (from the caller, the environment or profile);
 * s3_client_new() copies what it keeps.
 */
struct s3_opts {
	/* "https://host[:port]" (no path); NULL: AWS's endpoint for region,
	 * https://s3.<region>.amazonaws.com */
	const char *endpoint;
	const char *region; /* "us-east-1"; "auto" for GCS */
	const char *bucket;
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token; /* NULL or "": none */
	bool force_path_style;
	const char *sse; /* NULL or "": none; "AES256" or "aws:kms" */
	/* objects larger than this go up in parts; 0: the default. At
	 * least S3_MIN_PART_SIZE. */
	size_t multipart_threshold;
	/* 0: the default; at least S3_MIN_PART_SIZE; grown so that an object
	 * needs at most S3_MAX_PARTS parts */
	size_t part_size;
	const struct http_policy *policy; /* NULL: http_policy_default() */
	/*
	 * OAuth2 instead of SigV4 (GCS with a service account): when set,
	 * requests carry "Authorization: Bearer <token>" from this function
	 * (a new string the caller of it frees and wipes) and no x-amz-*
	 * header; access_key_id and secret_access_key are then not needed.
	 * presign_get is not available in this mode (OPS_E_INVALID).
	 */
	int (*bearer)(void *arg, char **token, struct ops_err *err);
	void *bearer_arg; /* borrowed */
	/*
	 * Temporary credentials: when set, every SigV4 signature (headers
	 * and presigned URLs) takes the credentials this returns at that
	 * moment (new copies, which the client releases with
	 * s3_creds_release()), with x-amz-security-token when they hold a
	 * session token; access_key_id, secret_access_key and
	 * session_token above are then ignored. It is called from whichever
	 * thread signs (a multipart part's thread, or another signing a
	 * URL): it must be thread-safe. An error from it fails the request
	 * with that error. NULL: the static keys above, as always.
	 */
	int (*creds)(void *arg, struct s3_creds *out, struct ops_err *err);
	void *creds_arg; /* borrowed */
	/* the container or IMDS provider s3_opts_from_env() chose (creds and
	 * creds_arg point at it): owned, freed by s3_opts_release() unless
	 * the caller takes it (sets it to NULL) to keep it as long as a
	 * client made from o lives; NULL otherwise */
	struct aws_creds *provider;
	/* the values s3_opts_from_env() read from the shared files, which
	 * strings above may point into: owned, freed by s3_opts_release();
	 * NULL when nothing came from them (and in an o filled by hand) */
	struct aws_profile *profile;
};

/* Is k an access key id as AWS issues them: 1 to 128 letters and digits?
 * NULL is false. Pure; any thread. */
bool s3_valid_key_id(const char *k);

/*
 * Fill o as the AWS SDKs find their settings: bucket is the caller's.
 *   - Credentials, in the AWS SDKs' default chain order, the first
 *     source that has them winning:
 *       1. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, with
 *          AWS_SESSION_TOKEN (optional), when both are set (only one of
 *          the pair set is an error, not a reason to look further);
 *       2. the aws_access_key_id, aws_secret_access_key and
 *          aws_session_token of profile AWS_PROFILE (default "default")
 *          in the shared credentials file (AWS_SHARED_CREDENTIALS_FILE,
 *          else ~/.aws/credentials), each winning over the same
 *          profile's value in the shared config file (AWS_CONFIG_FILE,
 *          else ~/.aws/config);
 *       3. the container endpoint (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
 *          or _FULL_URI, storage/aws_creds.h);
 *       4. EC2 instance metadata (IMDSv2) unless AWS_EC2_METADATA_DISABLED
 *          is true.
 *     For 3 and 4, o->provider, o->creds and o->creds_arg are set and
 *     nothing is fetched yet: s3_opts_fetch_creds() does the first
 *     fetch. The pair and its token come from one place: never half
 *     from the environment and half from the files. With nothing found
 *     (IMDS disabled), the error names every source tried.
 *   - Region: AWS_REGION, else AWS_DEFAULT_REGION, else region of the
 *     profile in the config file.
 *   - AWS_ENDPOINT_URL_S3 (else AWS_ENDPOINT_URL, else AWS),
 *     APEXOPS_S3_FORCE_PATH_STYLE (true/false), APEXOPS_S3_SSE (AES256,
 *     aws:kms): the environment only.
 * An empty variable or value counts as unset. The files are read only for
 * what the environment lacks (storage/aws_profile.h has their format).
 *
 * The strings point into the environment, or into o->profile for values
 * from the files: use o before the environment changes, and call
 * s3_opts_release(o) when done with o (after s3_client_new(), which
 * copies). o is overwritten: release an earlier result first. A missing
 * or bad value is OPS_E_CONFIG naming the variable, or the profile and
 * the files looked at (never a secret's value), and so is a shared file
 * that is malformed, too big, not a regular file, unreadable, or named by
 * its variable and missing; then o holds nothing to release. The secret
 * key and the session token are registered with log_add_secret(). Reads
 * the environment: call it before starting threads.
 */
int s3_opts_from_env(struct s3_opts *o, const char *bucket, struct ops_err *err)
	__attribute__((warn_unused_result));
/* Wipe and free what s3_opts_from_env() read from the shared files, free
 * o->provider, and clear o. NULL, or an o filled by hand (profile and
 * provider NULL), is fine. */
void s3_opts_release(struct s3_opts *o);

/*
 * When o->provider is set: make it end its fetches when *stop is set
 * (NULL: ops_stop_flag; borrowed, must outlive the provider), and fetch
 * the credentials once now, so that a misconfigured or unreachable
 * source fails when the store opens rather than at the first upload.
 * The error names the source (the variable and scheme://host of the
 * endpoint) and, for IMDS, what else was tried; never a secret. 0 and
 * nothing done when o->provider is NULL.
 */
int s3_opts_fetch_creds(struct s3_opts *o, const volatile sig_atomic_t *stop,
			struct ops_err *err)
	__attribute__((warn_unused_result));

struct s3_client;

/*
 * *out is a new client the caller frees with s3_client_free(). A bad
 * endpoint, region, bucket, SSE mode or size is OPS_E_CONFIG.
 */
int s3_client_new(const struct s3_opts *o, struct s3_client **out,
		  struct ops_err *err) __attribute__((warn_unused_result));
/* Wipe the keys, free c. NULL is a no-op. */
void s3_client_free(struct s3_client *c);

/* One signed request as it goes on the wire, and what came back. */
struct s3_wire_request {
	const char *method;
	const char *url;
	const char *const *headers; /* NULL-terminated "Name: value" */
	const void *body;
	size_t body_len;
	bool idempotent; /* may be sent twice */
	/* ends the request with OPS_E_STOPPED; NULL: ops_stop_flag */
	const volatile sig_atomic_t *stop;
};

struct s3_wire_response {
	long status;
	struct buf body;
	char *etag; /* ETag response header, or NULL when not known */
};

#define S3_WIRE_RESPONSE_INIT     \
	{                         \
		0, BUF_INIT, NULL \
	}

void s3_wire_response_release(struct s3_wire_response *r);

/*
 * Sends one request; returns 0 when a response arrived (any status), or
 * an OPS_E_* code. resp is S3_WIRE_RESPONSE_INIT on entry.
 */
typedef int s3_send_fn(void *arg, const struct s3_wire_request *req,
		       struct s3_wire_response *resp, struct ops_err *err);

/*
 * The default transport: http_do() on the struct http_client *arg, with
 * retries (5xx, 429, timeouts, resets) for GET, HEAD, PUT (objects and
 * parts), DELETE and the POSTs marked idempotent (CompleteMultipartUpload;
 * CreateMultipartUpload is not). The response's ETag header is returned;
 * when a server sends none, a part's ETag is taken to be its MD5, which S3
 * returns for unencrypted and SSE-S3 parts.
 */
s3_send_fn s3_send_http;

/* Replace the transport (tests; a future streaming transport). fn NULL
 * restores s3_send_http. arg is borrowed. */
void s3_client_set_send(struct s3_client *c, s3_send_fn *fn, void *arg);

/* The stop flag of every request (store_open's); NULL: ops_stop_flag.
 * Borrowed. */
void s3_client_set_stop(struct s3_client *c, const volatile sig_atomic_t *stop);

/* Replace the clock that dates requests (tests of skew and expiry). fn
 * NULL restores time(). */
void s3_client_set_clock(struct s3_client *c, time_t (*fn)(void));

/*
 * Store len bytes of data under key, in one PUT up to the multipart
 * threshold, else as a multipart upload that is aborted when a part
 * fails. content_type may be NULL (application/octet-stream). key: 1 to
 * 1024 bytes. Errors: OPS_E_INVALID (bad key), OPS_E_HTTP (S3's code and
 * message in err; transient for 5xx and network failures).
 */
int s3_put_object(struct s3_client *c, const char *key, const void *data,
		  size_t len, const char *content_type, struct ops_err *err)
	__attribute__((warn_unused_result));

/* 0 when key exists, OPS_E_NOTFOUND when not, else an error. */
int s3_head_object(struct s3_client *c, const char *key, struct ops_err *err)
	__attribute__((warn_unused_result));

/* Delete key; a missing key is success, as in S3. */
int s3_delete_object(struct s3_client *c, const char *key, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * The multipart steps, for callers that stream. *upload_id is a new
 * string the caller frees. etag (at least 67 bytes) receives the part's
 * quoted ETag. parts are the ETags of parts 1..nparts in order.
 */
int s3_multipart_create(struct s3_client *c, const char *key,
			const char *content_type, char **upload_id,
			struct ops_err *err)
	__attribute__((warn_unused_result));
int s3_multipart_upload_part(struct s3_client *c, const char *key,
			     const char *upload_id, int part_number,
			     const void *data, size_t len, char etag[67],
			     struct ops_err *err)
	__attribute__((warn_unused_result));
int s3_multipart_complete(struct s3_client *c, const char *key,
			  const char *upload_id, const char *const *etags,
			  int nparts, struct ops_err *err)
	__attribute__((warn_unused_result));
int s3_multipart_abort(struct s3_client *c, const char *key,
		       const char *upload_id, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * *url is a new presigned GET URL for key, valid for expires seconds
 * (1 to 604800, 7 days; more is OPS_E_INVALID), that the caller frees.
 * It carries the session token, if any, but never the secret key. With
 * temporary credentials (s3_opts.creds) whose expiry is known, the
 * lifetime is clamped to what remains of theirs: S3 refuses a presigned
 * URL once the credentials that signed it have expired, so a longer
 * X-Amz-Expires would promise what S3 does not keep. Credentials
 * already expired are OPS_E_HTTP.
 */
int s3_presign_get(struct s3_client *c, const char *key, long expires,
		   char **url, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * The URL of key (no query) as the client addresses it. *url is new;
 * the caller frees it. For tests and log lines.
 */
int s3_object_url(const struct s3_client *c, const char *key, char **url,
		  struct ops_err *err) __attribute__((warn_unused_result));

/*
 * The pieces of key's URL as c addresses it, for signers of other schemes
 * (GCS's GOOG4-RSA-SHA256): *base "scheme://host[:port]", *path the
 * encoded wire path ("/bucket/key" or "/key"), *host the Host value. All
 * new; the caller frees them.
 */
void s3_object_parts(const struct s3_client *c, const char *key, char **base,
		     char **path, char **host);

/*
 * ListObjectsV2: call fn with each key that starts with prefix (any
 * string, "" for all), page after page (continuation tokens); stop and
 * return fn's value when it is non-zero.
 */
int s3_list_objects(struct s3_client *c, const char *prefix,
		    int (*fn)(void *arg, const char *key), void *arg,
		    struct ops_err *err) __attribute__((warn_unused_result));

/*
 * ListMultipartUploads: call fn with the key, upload id and start time
 * (UTC seconds; 0 when unreadable) of each upload under prefix that was
 * neither completed nor aborted, page after page; stop and return fn's
 * value when it is non-zero.
 */
int s3_list_uploads(struct s3_client *c, const char *prefix,
		    int (*fn)(void *arg, const char *key, const char *upload_id,
			      time_t initiated),
		    void *arg, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * Read one ListMultipartUploads page (as s3_list_parse): fn per
 * <Upload>; *truncated, and the markers of the next page into next_key
 * and next_id. -1 when doc is not a ListMultipartUploadsResult.
 */
int s3_uploads_parse(const char *doc, size_t len,
		     int (*fn)(void *arg, const char *key,
			       const char *upload_id, time_t initiated),
		     void *arg, bool *truncated, struct buf *next_key,
		     struct buf *next_id);

/*
 * Read one ListObjectsV2 page: fn gets the <Key> of each <Contents>
 * (entities decoded, at most 1024 bytes; a key holding a NUL is skipped);
 * *truncated is <IsTruncated>true</IsTruncated>; next gets the
 * <NextContinuationToken> (at most 1024 bytes). Returns 0, fn's non-zero
 * value, or -1 when doc is not a ListBucketResult. Never reads past len.
 */
int s3_list_parse(const char *doc, size_t len,
		  int (*fn)(void *arg, const char *key), void *arg,
		  bool *truncated, struct buf *next);

/*
 * Append the text of the first <tag>...</tag> element of an S3 XML
 * document (entities &amp; &lt; &gt; &quot; &apos; decoded), at most max
 * bytes of it. Returns 0, or -1 when there is no such element. Never reads
 * past len; doc need not be NUL-terminated.
 */
int s3_xml_text(const char *doc, size_t len, const char *tag, size_t max,
		struct buf *out);

#endif
