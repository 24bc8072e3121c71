/*
 * Google Cloud Storage with a service account: the key file named by
 * GOOGLE_APPLICATION_CREDENTIALS (JSON with client_email, private_key,
 * token_uri), an RS256-signed JWT (scope devstorage.read_write) exchanged
 * at token_uri for an OAuth2 access token (grant type jwt-bearer, as
 * https://developers.google.com/identity/protocols/oauth2/service-account
 * describes), cached until a minute before it expires; and V4 signed URLs
 * (GOOG4-RSA-SHA256) made with the same key.
 *
 * The private key and the tokens never reach logs or error text; they are
 * wiped when freed. A struct gcs_auth is used by one thread at a time, as
 * the store that owns it.
 */
#ifndef OPS_STORAGE_GCS_AUTH_H
#define OPS_STORAGE_GCS_AUTH_H

#include <signal.h>
#include <stddef.h>
#include <time.h>

#include "core/err.h"
#include "http/http.h"
#include "storage/s3.h"

/* The parts of a service-account key file that are used; all owned. */
struct gcs_key {
	char *client_email;
	char *private_key; /* PEM; wiped by gcs_key_release() */
	char *token_uri;   /* default https://oauth2.googleapis.com/token */
};

/*
 * Parse a key file's text (len bytes, need not be NUL-terminated) into
 * *out (zeroed first). A missing or non-string field, a "type" other than
 * "service_account", or a token_uri that is not http(s) is OPS_E_CONFIG
 * naming the field, never quoting the key. Release *out with
 * gcs_key_release() whatever the result.
 */
int gcs_key_parse(const char *json, size_t len, struct gcs_key *out,
		  struct ops_err *err) __attribute__((warn_unused_result));
void gcs_key_release(struct gcs_key *k);

struct gcs_auth;

/*
 * Read the key file at path and load its RSA key. pol: the HTTP policy of
 * the token exchange (copied). stop (may be NULL) ends the exchange.
 * Errors name GOOGLE_APPLICATION_CREDENTIALS (OPS_E_CONFIG). *out is
 * freed with gcs_auth_free().
 */
int gcs_auth_new(const char *path, const struct http_policy *pol,
		 const volatile sig_atomic_t *stop, struct gcs_auth **out,
		 struct ops_err *err) __attribute__((warn_unused_result));
/* Wipe the key and token, free a. NULL is a no-op. */
void gcs_auth_free(struct gcs_auth *a);

/*
 * *token is a new copy of a valid access token (the caller frees it with
 * freezero_str), fetched when none is cached or the cached one expires
 * within a minute. A refused exchange is OPS_E_HTTP with the endpoint's
 * error code and description, not transient; a network failure is
 * transient.
 */
int gcs_auth_token(struct gcs_auth *a, char **token, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * *url is a new V4 signed URL (GOOG4-RSA-SHA256, location "auto",
 * signed header host) to GET object name through client c's endpoint and
 * addressing, valid for expires seconds (1 to 604800).
 */
int gcs_auth_presign_get(struct gcs_auth *a, const struct s3_client *c,
			 const char *name, long expires, char **url,
			 struct ops_err *err)
	__attribute__((warn_unused_result));

/* Replace the clock of JWTs and signed URLs (tests); NULL: time(). */
void gcs_auth_set_clock(struct gcs_auth *a, time_t (*fn)(void));

/* The base64url form of data (no padding), appended to out. */
void gcs_base64url(struct buf *out, const void *data, size_t len);

#endif
