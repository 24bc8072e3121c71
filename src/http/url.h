/*
 * Base URLs of remote services (Stripe, and the S3/GCS endpoints): one rule
 * for every variable that names one, checked with libcurl's URL parser so
 * that what is checked is what curl will connect to.
 *
 *   - https:// with any host;
 *   - http:// only when the host is a loopback address: an IPv4 literal in
 *     127.0.0.0/8, [::1], or exactly "localhost" (test peers run there);
 *   - never a user name or password, a query or a fragment.
 *
 * A string-prefix test accepted http://localhost@evil:80 (host "evil") and
 * http://localhost.evil.example, which would send the secret key over plain
 * HTTP to another machine.
 *
 * Thread safety: every function here may be called from several threads
 * (each parses with its own CURLU handle).
 */
#ifndef OPS_HTTP_URL_H
#define OPS_HTTP_URL_H

#include "core/config.h"
#include "core/err.h"

/*
 * Check url as the value of variable var (both non-NULL). Returns 0, or
 * OPS_E_CONFIG with a message naming var, what is wrong and what is
 * allowed; err may be NULL. The URL is quoted in the message only when it
 * holds no user name, password or query (which may carry a token).
 */
int http_base_url_check(const char *var, const char *url, struct ops_err *err)
	__attribute__((warn_unused_result));

/*
 * Check every variable of cfg_defs marked CFG_BASE_URL that has a value.
 * main() calls it right after config_load(); the first bad one fails.
 */
int http_base_urls_check(const struct ops_config *cfg, struct ops_err *err)
	__attribute__((warn_unused_result));

#endif
