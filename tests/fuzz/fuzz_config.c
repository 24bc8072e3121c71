/*
 * libFuzzer target for configuration parsing: the input is a .env file
 * whose values go through the full validation of every variable and the
 * base-URL rule main() applies after loading, plus the strict
 * number/date/uuid parsers and URL redaction.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/parse.h"
#include "core/xalloc.h"
#include "http/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *
no_env(const char *name)
{
	(void)name;
	return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct ops_config cfg;
	struct ops_err err = OPS_ERR_INIT;
	char *text = xstrndup((const char *)data, size);
	long v;
	int y, m, d;
	FILE *f;

	if (path[0] == '\0')
		snprintf(path, sizeof(path), "/tmp/apexops-fuzz-%d.env",
			 (int)getpid());
	(void)parse_long(text, -1000000, 1000000, &v);
	(void)parse_date(text, &y, &m, &d);
	(void)is_uuid(text);
	free(config_redact_url(text));
	f = fopen(path, "w");
	if (f != NULL) {
		fwrite(data, 1, size, f);
		fclose(f);
		if (config_load(&cfg, path, no_env, &err) == 0) {
			if (cfg.retention_months < 1 ||
			    cfg.retention_months > 1200)
				__builtin_trap();
			/* the blank rule: no loaded value is padded */
			if (cfg.cron_tz == NULL || cfg.cron_tz[0] == ' ' ||
			    cfg.home == NULL || cfg.home[0] == ' ')
				__builtin_trap();
			(void)http_base_urls_check(&cfg, &err);
			config_release(&cfg);
		}
		log_forget_secrets();
	}
	free(text);
	return 0;
}
