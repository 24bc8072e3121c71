/* The base-URL rule; see url.h. */
#include "http/url.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define ALLOWED                                                        \
	"expected https://HOST[:PORT][/PATH], or http:// only with a " \
	"loopback host (127.0.0.0/8, [::1] or localhost)"

/* Does part of h exist? (an empty query "?" counts as present) */
static bool
has_part(CURLU *h, CURLUPart part)
{
	char *v = NULL;
	CURLUcode uc = curl_url_get(h, part, &v, 0);

	curl_free(v);
	return uc == CURLUE_OK;
}

static bool
loopback_host(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	char inner[INET6_ADDRSTRLEN + 1];
	size_t n = strlen(host);

	if (strcasecmp(host, "localhost") == 0)
		return true;
	/* curl normalises IPv4 forms (127.1, 2130706433) to dotted quads */
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (n < 3 || host[0] != '[' || host[n - 1] != ']' ||
	    n - 2 >= sizeof(inner))
		return false;
	memcpy(inner, host + 1, n - 2);
	inner[n - 2] = '\0';
	return inet_pton(AF_INET6, inner, &a6) == 1 &&
	       memcmp(&a6, &in6addr_loopback, sizeof(a6)) == 0;
}

int
http_base_url_check(const char *var, const char *url, struct ops_err *err)
{
	CURLU *h = curl_url();
	char *scheme = NULL, *host = NULL;
	int r;

	if (h == NULL)
		return ops_fail(err, OPS_E_CONFIG, false,
				"%s: out of memory checking the URL", var);
	if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK) {
		/* no value: it may hold a password curl could not split off */
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "%s: invalid value: not a URL: " ALLOWED, var);
		goto out;
	}
	if (has_part(h, CURLUPART_USER) || has_part(h, CURLUPART_PASSWORD) ||
	    has_part(h, CURLUPART_OPTIONS)) {
		r = ops_fail(
			err, OPS_E_CONFIG, false,
			"%s: invalid value: a user name or password "
			"(user@host) is not allowed in a base URL: " ALLOWED,
			var);
		goto out;
	}
	/* curl drops an empty "#": look at the text too ('?' and '#' only
	 * ever start a query or fragment in a URL) */
	if (has_part(h, CURLUPART_QUERY) || has_part(h, CURLUPART_FRAGMENT) ||
	    strpbrk(url, "?#") != NULL) {
		/* no value: a query may carry a token */
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "%s: invalid value: a query (?...) or fragment "
			     "(#...) is not allowed in a base URL: " ALLOWED,
			     var);
		goto out;
	}
	if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    *host == '\0') {
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "%s: invalid value '%s': no host: " ALLOWED, var,
			     url);
		goto out;
	}
	if (strcmp(scheme, "https") == 0) {
		r = 0;
		goto out;
	}
	if (strcmp(scheme, "http") != 0) {
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "%s: invalid value '%s': scheme '%s' is not "
			     "allowed: " ALLOWED,
			     var, url, scheme);
		goto out;
	}
	if (has_part(h, CURLUPART_ZONEID) || !loopback_host(host)) {
		r = ops_fail(err, OPS_E_CONFIG, false,
			     "%s: invalid value '%s': plain http:// to host "
			     "'%s', which is not a loopback address, would "
			     "send credentials unencrypted: " ALLOWED,
			     var, url, host);
		goto out;
	}
	r = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(h);
	return r;
}

int
http_base_urls_check(const struct ops_config *cfg, struct ops_err *err)
{
	const char *base = (const char *)cfg;

	for (int i = 0; i < cfg_ndefs; i++) {
		const struct cfg_def *d = &cfg_defs[i];
		const char *v;
		int r;

		if (!(d->flags & CFG_BASE_URL) || d->type != CFG_STR)
			continue;
		v = *(char *const *)(base + d->offset);
		if (v == NULL)
			continue;
		r = http_base_url_check(d->name, v, err);
		if (r != 0)
			return r;
	}
	return 0;
}
