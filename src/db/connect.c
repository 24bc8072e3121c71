/* Connect from the configuration: DATABASE_URL or the embedded cluster. */
#include "db/db.h"

#include <stdio.h>
#include <stdlib.h>

#include "core/config.h"
#include "core/log.h"
#include "core/xalloc.h"
#include "db/cluster.h"

/* Start (or reuse) the embedded cluster; *url is its new URL. */
static int
embedded_url(const struct ops_config *cfg, char **url, struct ops_err *err)
{
	struct cluster cl;
	int r;

	*url = NULL;
	r = cluster_open(&cl, cfg->home, cfg->pg_bindir, err);
	if (r == 0)
		r = cluster_ensure_started(&cl, true, err);
	if (r != 0) {
		cluster_release(&cl);
		return ops_err_prefix(err, "embedded cluster");
	}
	*url = cluster_url(&cl);
	log_info("DATABASE_URL is unset: using the embedded cluster home=%s "
		 "url=%s",
		 log_q(cl.home), log_q(*url));
	cluster_release(&cl);
	return 0;
}

int
db_connect_config(const struct ops_config *cfg, const char *cmd_name,
		  char **url, bool *embedded, struct db **out,
		  struct ops_err *err)
{
	struct db_opts o = { 0 };
	char app[64];
	int r;

	*out = NULL;
	if (*url == NULL) {
		if (cfg->database_url != NULL) {
			*url = xstrdup(cfg->database_url);
			if (embedded != NULL)
				*embedded = false;
		} else {
			r = embedded_url(cfg, url, err);
			if (r != 0)
				return r;
			if (embedded != NULL)
				*embedded = true;
		}
	}
	snprintf(app, sizeof(app), "apexops/%s", cmd_name);
	o.url = *url;
	o.ssl = cfg->database_ssl;
	o.appname = app;
	o.connect_timeout_s = cfg->connect_timeout_s;
	o.retries = cfg->connect_retries;
	o.statement_timeout_ms = cfg->statement_timeout_ms;
	o.lock_timeout_ms = cfg->lock_timeout_ms;
	return db_connect(&o, out, err);
}
