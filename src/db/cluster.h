/*
 * The embedded default: a private PostgreSQL cluster under APEXOPS_HOME,
 * on a unix socket and a free loopback port, for laptops and demos.
 * initdb refuses root, so when run as root the server runs as the
 * `postgres` user (runuser) with its data directory in /var/tmp, which that
 * user can reach; APEXOPS_HOME/cluster.conf records where it is.
 */
#ifndef OPS_DB_CLUSTER_H
#define OPS_DB_CLUSTER_H

#include <stdbool.h>

#include "core/err.h"

struct cluster {
	char *home;    /* absolute APEXOPS_HOME */
	char *base;    /* directory holding data/, run/ and server.log */
	char *datadir; /* PGDATA */
	char *sockdir; /* unix socket directory */
	char *logfile;
	char *bindir;
	int port;
	bool as_postgres; /* invoked as root: run the server as postgres */
};

/* Work out (or read back) the layout; creates APEXOPS_HOME. */
int cluster_open(struct cluster *cl, const char *home, const char *bindir,
		 struct ops_err *err);
/* initdb when needed (if allowed), start when stopped, create database
 * "apexops". Safe to call from several processes at once. */
int cluster_ensure_started(struct cluster *cl, bool init, struct ops_err *err);
/* Fast shutdown. A cluster that is not running is left alone (0); none
 * initialised under cl->home is OPS_E_NOTFOUND. */
int cluster_stop(struct cluster *cl, struct ops_err *err);
/* *running: the server answers; *initialised: a data directory exists. */
int cluster_status(struct cluster *cl, bool *initialised, bool *running,
		   struct ops_err *err);
/* "postgresql://apexops@/apexops?host=SOCKDIR&port=PORT"; caller frees. */
char *cluster_url(const struct cluster *cl);
void cluster_release(struct cluster *cl);

#endif
