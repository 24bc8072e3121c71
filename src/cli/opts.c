/* Strict getopt_long wrapper; see opts.h. */
#include "cli/opts.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static const struct option *
find_exact(const struct option *longopts, const char *name, size_t len)
{
	for (const struct option *o = longopts; o->name != NULL; o++)
		if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
			return o;
	return NULL;
}

static const struct option *
find_prefixed(const struct option *longopts, const char *name, size_t len)
{
	for (const struct option *o = longopts; o->name != NULL; o++)
		if (strncmp(o->name, name, len) == 0)
			return o;
	return NULL;
}

/* Refuse abbreviated and unknown long options before getopt sees them. */
static int
scan_longopts(const char *cmd, int argc, char **argv,
	      const struct option *longopts)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *name, *eq;
		const struct option *o;
		size_t len;

		if (strcmp(a, "--") == 0)
			break;
		if (strncmp(a, "--", 2) != 0)
			continue;
		name = a + 2;
		eq = strchr(name, '=');
		len = eq != NULL ? (size_t)(eq - name) : strlen(name);
		o = find_exact(longopts, name, len);
		if (o == NULL) {
			const struct option *p;

			p = len > 0 ? find_prefixed(longopts, name, len) : NULL;
			if (p != NULL)
				cli_usage(cmd,
					  "option '--%.*s' is not spelled out: "
					  "write '--%s' in full (options are "
					  "never abbreviated)",
					  (int)len, name, p->name);
			else
				cli_usage(cmd, "unknown option '--%.*s'",
					  (int)len, name);
			return -1;
		}
		/* a required value given as the next word is not an option */
		if (o->has_arg == required_argument && eq == NULL)
			i++;
	}
	return 0;
}

int
cli_getopt(const char *cmd, int argc, char **argv, const char *shortopts,
	   const struct option *longopts)
{
	static char **scanned; /* the argv already checked */
	char spec[64];
	int c;

	if (argv != scanned) {
		scanned = argv;
		if (scan_longopts(cmd, argc, argv, longopts) != 0)
			return CLI_OPT_ERROR;
	}
	snprintf(spec, sizeof(spec), ":%s", shortopts);
	opterr = 0;
	c = getopt_long(argc, argv, spec, longopts, NULL);
	if (c == ':') {
		cli_usage(cmd, "option '%s' needs a value", argv[optind - 1]);
		return CLI_OPT_ERROR;
	}
	if (c == '?') {
		if (optopt != 0 && optopt != '?' &&
		    strncmp(argv[optind - 1], "--", 2) != 0)
			cli_usage(cmd, "unknown option '-%c'", optopt);
		else
			cli_usage(cmd, "unknown option '%s'", argv[optind - 1]);
		return CLI_OPT_ERROR;
	}
	return c;
}
