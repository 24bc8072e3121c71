/*
 * Temporary AWS credentials for the S3 export, from the two sources the
 * AWS SDKs try last in their default chain (AWS SDKs and Tools Reference
 * Guide, "Container credential provider" and "IMDS credential provider"):
 *   - the container endpoint (ECS task roles, EKS Pod Identity): GET
 *     http://169.254.170.2 + AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, else
 *     AWS_CONTAINER_CREDENTIALS_FULL_URI (https, or http to a loopback
 *     address, 169.254.170.2, 169.254.170.23 or [fd00:ec2::23] only), with
 *     "Authorization: <token>" from the file AWS_CONTAINER_AUTHORIZATION_
 *     TOKEN_FILE (read at every fetch; it wins) or AWS_CONTAINER_
 *     AUTHORIZATION_TOKEN;
 *   - EC2 instance metadata, IMDSv2 only, at AWS_EC2_METADATA_SERVICE_
 *     ENDPOINT (default http://169.254.169.254) unless
 *     AWS_EC2_METADATA_DISABLED is true: PUT /latest/api/token, then the
 *     role name and the role's credentials under
 *     /latest/meta-data/iam/security-credentials/, each call with 1 s to
 *     connect and 1 s in all, one attempt, so that a machine off EC2 fails
 *     fast.
 * Both answer {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}.
 * A struct aws_creds caches them until 5 minutes before Expiration, then
 * fetches again; when that fails while the cached ones are still valid, it
 * logs a warning and keeps using them.
 *
 * Secrets (keys, session token, authorization token) are wiped when freed
 * and never reach logs or error text; errors name the variable and the
 * endpoint's scheme://host.
 *
 * Thread safety: aws_creds_get() may be called from several threads at
 * once (a mutex guards the cache and the HTTP client): the S3 store sends
 * multipart parts from a thread while another signs a URL.
 * aws_creds_from_env() reads the environment: call it before threads
 * start. The parsers are pure.
 */
#ifndef OPS_STORAGE_AWS_CREDS_H
#define OPS_STORAGE_AWS_CREDS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "core/err.h"
#include "storage/s3.h"

/* fetch again this long before Expiration */
#define AWS_CREDS_REFRESH_AHEAD 300
/* the biggest answer and token file read */
#define AWS_CREDS_MAX_BYTES ((size_t)64 * 1024)

enum aws_creds_source {
	AWS_CREDS_CONTAINER,
	AWS_CREDS_IMDS,
};

/*
 * Parse a credentials answer (len bytes, need not be NUL-terminated) into
 * *out (cleared first): AccessKeyId (1 to 128 letters and digits),
 * SecretAccessKey, Token (optional; no control characters) and
 * Expiration (optional; ISO 8601 UTC: out->expires 0 when absent). With
 * imds, "Code" must be "Success". what names the source in messages.
 * Anything else is OPS_E_HTTP naming the field, never a value; then *out
 * holds nothing. Release *out with s3_creds_release() after success.
 */
int aws_creds_parse(const char *json, size_t len, bool imds, const char *what,
		    struct s3_creds *out, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * "2026-12-03T10:15:30Z", with optional fractional seconds and "Z",
 * "+00:00" or another "+hh:mm"/"-hh:mm" offset, as UTC seconds into *out.
 * Returns 0, or -1 when s (a C string) is not such a time.
 */
int aws_iso8601_parse(const char *s, time_t *out)
	__attribute__((warn_unused_result));

/* Is AWS_EC2_METADATA_DISABLED "true" (any case)? */
bool aws_creds_imds_disabled(void);

struct aws_creds;

/*
 * The provider the environment asks for: the container endpoint when
 * either URI variable is set, else IMDS unless disabled; *out NULL when
 * neither (then it returns 0). A URI that is malformed, relative where it
 * must not be, or plain http to a host that is not allowed, an
 * authorization token with a line break, or a bad IMDS endpoint is
 * OPS_E_CONFIG naming the variable. Nothing is fetched yet. *out is freed
 * with aws_creds_free().
 */
int aws_creds_from_env(struct aws_creds **out, struct ops_err *err)
	__attribute__((warn_unused_result));
/* Wipe the cached credentials and tokens, free a. NULL is a no-op. */
void aws_creds_free(struct aws_creds *a);

enum aws_creds_source aws_creds_source(const struct aws_creds *a);

/* The stop flag of the fetches (NULL: ops_stop_flag). Borrowed; set it
 * before the first aws_creds_get(). */
void aws_creds_set_stop(struct aws_creds *a, const volatile sig_atomic_t *stop);

/*
 * *out gets new copies of valid credentials (release them with
 * s3_creds_release()), fetched when none are cached or the cached ones
 * expire within AWS_CREDS_REFRESH_AHEAD. Errors: the container endpoint
 * refusing (4xx) or an unreadable token file is OPS_E_CONFIG; IMDS not
 * answering or answering without a role is OPS_E_CONFIG, its message
 * starting "the instance metadata service at <endpoint>"; a 5xx or a
 * network failure of the container endpoint is OPS_E_HTTP, transient; a
 * bad answer is OPS_E_HTTP. Safe from several threads.
 */
int aws_creds_get(struct aws_creds *a, struct s3_creds *out,
		  struct ops_err *err) __attribute__((warn_unused_result));

/* The s3_opts.creds hook: arg is a struct aws_creds. */
int aws_creds_hook(void *arg, struct s3_creds *out, struct ops_err *err);

#endif
