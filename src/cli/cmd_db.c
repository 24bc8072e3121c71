/* apexops db start|stop|status|url: the embedded PostgreSQL cluster. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/opts.h"
#include "db/cluster.h"

const char cmd_db_usage[] =
	"usage: apexops db start|stop|status|url\n"
	"\n"
	"Runs a private PostgreSQL 15 cluster under APEXOPS_HOME (default\n"
	"./.apexops) on a unix socket and a free loopback port. Every command\n"
	"uses it when DATABASE_URL is unset. As root the server runs as the\n"
	"postgres user, with its data in /var/tmp/apexops-0-<hash>.\n"
	"\n"
	"  start   initialise if needed, start, create database apexops\n"
	"  stop    stop the server (fast shutdown); exit 1 when there is no\n"
	"          cluster under APEXOPS_HOME\n"
	"  status  print whether it is initialised and running; exit 3 if\n"
	"          it is not running\n"
	"  url     print the connection URL (no password: socket, trust)\n";

int
cmd_db(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ NULL, 0, NULL, 0 },
	};
	struct ops_err err = OPS_ERR_INIT;
	struct cluster cl;
	const char *sub;
	int c, r, rc = 0;

	optind = 1;
	while ((c = cli_getopt("db", argc, argv, "", opts)) != -1)
		return OPS_EXIT_USAGE; /* db takes no options; said why */
	if (argc - optind != 1)
		return cli_usage("db", "expected one of start, stop, status, "
				       "url");
	sub = argv[optind];
	if (strcmp(sub, "start") != 0 && strcmp(sub, "stop") != 0 &&
	    strcmp(sub, "status") != 0 && strcmp(sub, "url") != 0)
		return cli_usage("db",
				 "unknown subcommand '%s' (expected "
				 "start, stop, status or url)",
				 sub);
	r = cluster_open(&cl, ctx->cfg.home, ctx->cfg.pg_bindir, &err);
	if (r != 0)
		return cli_report(ctx, &err);
	if (strcmp(sub, "start") == 0) {
		r = cluster_ensure_started(&cl, true, &err);
		if (r == 0) {
			char *url = cluster_url(&cl);

			printf("embedded cluster running\n  data: %s\n  url:  "
			       "%s\n  tcp:  127.0.0.1:%d (logins over TCP are "
			       "refused: use the url)\n",
			       cl.datadir, url, cl.port);
			free(url);
		}
	} else if (strcmp(sub, "stop") == 0) {
		bool init, running;

		cluster_status(&cl, &init, &running, &err);
		r = cluster_stop(&cl, &err);
		if (r == 0)
			printf("embedded cluster %s\n",
			       running ? "stopped" : "was not running");
	} else if (strcmp(sub, "status") == 0) {
		bool init, running;

		r = cluster_status(&cl, &init, &running, &err);
		if (r == 0) {
			printf("home:        %s\ndata:        %s\n"
			       "initialised: %s\nrunning:     %s\n",
			       cl.home, cl.datadir, init ? "yes" : "no",
			       running ? "yes" : "no");
			if (running)
				printf("port:        %d\nsocket:      %s\n",
				       cl.port, cl.sockdir);
			rc = running ? 0 : 3;
		}
	} else {
		bool init, running;

		cluster_status(&cl, &init, &running, &err);
		if (!init) {
			r = ops_fail(&err, OPS_E_NOTFOUND, false,
				     "no embedded cluster under '%s' (run "
				     "'apexops db start')",
				     cl.home);
		} else {
			char *url = cluster_url(&cl);

			printf("%s\n", url);
			free(url);
		}
	}
	cluster_release(&cl);
	if (r != 0)
		return cli_report(ctx, &err);
	return rc;
}
