#include "db/cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "db/db.h"

#define CLUSTER_USER "apexops"
#define CLUSTER_DB   "apexops"

static uint64_t
fnv(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static int
mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

static bool
port_free(int port)
{
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	if (fd < 0)
		return false;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

static int
pick_port(const char *home)
{
	int start = 54320 + (int)(fnv(home) % 1000);

	for (int i = 0; i < 200; i++)
		if (port_free(start + i))
			return start + i;
	return -1;
}

static int
read_state(struct cluster *cl)
{
	char path[PATH_MAX], line[PATH_MAX + 32];
	FILE *f;

	snprintf(path, sizeof(path), "%s/cluster.conf", cl->home);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		char *eq = strchr(line, '='), *nl = strchr(line, '\n');

		if (nl)
			*nl = '\0';
		if (eq == NULL)
			continue;
		*eq++ = '\0';
		if (strcmp(line, "base") == 0) {
			free(cl->base);
			cl->base = xstrdup(eq);
		} else if (strcmp(line, "port") == 0) {
			cl->port = atoi(eq); /* our own file, written below */
		}
	}
	fclose(f);
	return cl->base != NULL && cl->port > 0 ? 0 : -1;
}

static int
write_state(const struct cluster *cl, struct ops_err *err)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/cluster.conf", cl->home);
	snprintf(tmp, sizeof(tmp), "%s/cluster.conf.tmp", cl->home);
	f = fopen(tmp, "w");
	if (f == NULL)
		return ops_fail(err, OPS_E_IO, false, "cannot write '%s': %s",
				tmp, strerror(errno));
	fprintf(f, "# written by apexops db; do not edit\nbase=%s\nport=%d\n",
		cl->base, cl->port);
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		return ops_fail(err, OPS_E_IO, false, "cannot write '%s': %s",
				path, strerror(errno));
	return 0;
}

static void
set_paths(struct cluster *cl)
{
	free(cl->datadir);
	free(cl->sockdir);
	free(cl->logfile);
	cl->datadir = xasprintf("%s/data", cl->base);
	cl->sockdir = xasprintf("%s/run", cl->base);
	cl->logfile = xasprintf("%s/server.log", cl->base);
}

int
cluster_open(struct cluster *cl, const char *home, const char *bindir,
	     struct ops_err *err)
{
	char real[PATH_MAX];

	memset(cl, 0, sizeof(*cl));
	if (mkdir_p(home, 0700) != 0 || realpath(home, real) == NULL)
		return ops_fail(err, OPS_E_IO, false,
				"APEXOPS_HOME: cannot create '%s': %s", home,
				strerror(errno));
	cl->home = xstrdup(real);
	cl->bindir = xstrdup(bindir);
	cl->as_postgres = geteuid() == 0;
	if (read_state(cl) != 0) {
		/*
		 * Root: the postgres user must reach the data directory and
		 * the socket path must stay short (108 bytes), so both live
		 * in /var/tmp. Others: inside APEXOPS_HOME unless too long.
		 */
		free(cl->base);
		if (cl->as_postgres || strlen(real) > 70)
			cl->base = xasprintf("/var/tmp/apexops-%u-%016llx",
					     (unsigned)geteuid(),
					     (unsigned long long)fnv(real));
		else
			cl->base = xasprintf("%s/pg", real);
		cl->port = 0;
	}
	set_paths(cl);
	return 0;
}

char *
cluster_url(const struct cluster *cl)
{
	return xasprintf("postgresql://%s@/%s?host=%s&port=%d", CLUSTER_USER,
			 CLUSTER_DB, cl->sockdir, cl->port);
}

void
cluster_release(struct cluster *cl)
{
	free(cl->home);
	free(cl->base);
	free(cl->datadir);
	free(cl->sockdir);
	free(cl->logfile);
	free(cl->bindir);
	memset(cl, 0, sizeof(*cl));
}

/*
 * Run a server program (as postgres when we are root) with output to
 * cl->logfile or /dev/null. Returns its exit status, or -1.
 */
static int
run_pg(const struct cluster *cl, const char *prog, const char *const *args,
       const char *out_path)
{
	const char *argv[32];
	char exe[PATH_MAX];
	int n = 0, status;
	pid_t pid;

	snprintf(exe, sizeof(exe), "%s/%s", cl->bindir, prog);
	if (cl->as_postgres) {
		argv[n++] = "runuser";
		argv[n++] = "-u";
		argv[n++] = "postgres";
		argv[n++] = "--";
	}
	argv[n++] = exe;
	for (int i = 0; args[i] != NULL && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(out_path ? out_path : "/dev/null",
			      O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		/* the server must not inherit our stdin */
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, STDIN_FILENO);
			close(fd);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * Open directory path without following a symbolic link in any of its
 * components (each is opened with O_NOFOLLOW from the one before).
 * Returns a descriptor, or -1 with errno set.
 */
static int
open_dir_nofollow(const char *path)
{
	char comp[PATH_MAX];
	const char *p = path;
	int fd;

	if (path[0] != '/') {
		errno = EINVAL;
		return -1;
	}
	fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	while (fd >= 0) {
		size_t len;
		int next;

		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		len = strcspn(p, "/");
		if (len >= sizeof(comp)) {
			close(fd);
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(comp, p, len);
		comp[len] = '\0';
		p += len;
		next = openat(fd, comp,
			      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = next;
	}
	return fd;
}

/*
 * Create (or reopen) directory name under the directory dirfd, never
 * through a symbolic link, and make sure it is ours: owned by the user
 * apexops runs as or, as root, by postgres, which the cluster belongs
 * to. A directory someone else made (in /var/tmp anyone can make one
 * with the name apexops would use) is refused, never adopted, and left
 * as it is. As root it is handed to postgres with fchown on the open
 * descriptor, mode 0700. path is the full path, for messages. Returns
 * the open descriptor, or -1 with err filled.
 */
static int
own_dir_at(const struct cluster *cl, int dirfd, const char *name,
	   const char *path, struct ops_err *err)
{
	struct passwd *pw = NULL;
	struct stat st;
	int fd, saved;

	if (cl->as_postgres) {
		pw = getpwnam("postgres");
		if (pw == NULL) {
			ops_fail(err, OPS_E_IO, false,
				 "running as root needs the 'postgres' user to "
				 "own the cluster (apt-get install "
				 "postgresql-15 creates it)");
			return -1;
		}
	}
	if (mkdirat(dirfd, name, 0700) != 0 && errno != EEXIST) {
		saved = errno;
		ops_fail(err, OPS_E_IO, false, "cannot create '%s': %s", path,
			 strerror(saved));
		return -1;
	}
	fd = openat(dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		saved = errno;
		ops_fail(err, OPS_E_REFUSED, false,
			 "refusing to use '%s': %s; apexops only uses a "
			 "directory it created itself: remove it or set "
			 "APEXOPS_HOME elsewhere",
			 path,
			 saved == ELOOP || saved == ENOTDIR
				 ? "it is a symbolic link or not a directory"
				 : strerror(saved));
		return -1;
	}
	if (fstat(fd, &st) != 0 || (st.st_uid != geteuid() &&
				    (pw == NULL || st.st_uid != pw->pw_uid))) {
		ops_fail(err, OPS_E_REFUSED, false,
			 "refusing to use '%s': it is owned by uid %u, not by "
			 "%s; apexops never adopts a directory it did not "
			 "create: remove it or set APEXOPS_HOME elsewhere",
			 path, (unsigned)st.st_uid,
			 pw != NULL ? "root or postgres" : "this user");
		close(fd);
		return -1;
	}
	if ((pw != NULL && fchown(fd, pw->pw_uid, pw->pw_gid) != 0) ||
	    fchmod(fd, 0700) != 0) {
		saved = errno;
		ops_fail(err, OPS_E_IO, false, "cannot prepare '%s': %s", path,
			 strerror(saved));
		close(fd);
		return -1;
	}
	return fd;
}

/* The cluster's base and run/ directories, created or checked; see
 * own_dir_at(). */
static int
prepare_dirs(const struct cluster *cl, struct ops_err *err)
{
	char parent[PATH_MAX];
	const char *name;
	char *slash;
	int pfd, bfd, rfd, saved;

	snprintf(parent, sizeof(parent), "%s", cl->base);
	slash = strrchr(parent, '/');
	if (slash == NULL || slash == parent)
		return ops_fail(err, OPS_E_IO, false,
				"unexpected cluster directory '%s'", cl->base);
	*slash = '\0';
	name = slash + 1;
	pfd = open_dir_nofollow(parent);
	if (pfd < 0) {
		saved = errno;
		return ops_fail(err, OPS_E_REFUSED, false,
				"cannot open '%s' without following symbolic "
				"links: %s",
				parent, strerror(saved));
	}
	bfd = own_dir_at(cl, pfd, name, cl->base, err);
	close(pfd);
	if (bfd < 0)
		return err != NULL ? err->code : OPS_E_REFUSED;
	rfd = own_dir_at(cl, bfd, "run", cl->sockdir, err);
	close(bfd);
	if (rfd < 0)
		return err != NULL ? err->code : OPS_E_REFUSED;
	close(rfd);
	return 0;
}

/*
 * Append text to DATADIR/postgresql.auto.conf, opened without following
 * a symbolic link anywhere on the path (the data directory belongs to
 * postgres; root must not write where a link points).
 */
static int
append_conf(const struct cluster *cl, const char *text, struct ops_err *err)
{
	char path[PATH_MAX];
	int dfd, fd, saved;
	size_t len = strlen(text);
	ssize_t n;

	snprintf(path, sizeof(path), "%s/postgresql.auto.conf", cl->datadir);
	dfd = open_dir_nofollow(cl->datadir);
	if (dfd < 0) {
		saved = errno;
		return ops_fail(err, OPS_E_REFUSED, false,
				"cannot open '%s' without following symbolic "
				"links: %s",
				cl->datadir, strerror(saved));
	}
	fd = openat(dfd, "postgresql.auto.conf",
		    O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	saved = errno;
	close(dfd);
	if (fd < 0)
		return ops_fail(err, OPS_E_IO, false, "cannot write '%s': %s",
				path, strerror(saved));
	n = write(fd, text, len);
	saved = errno;
	close(fd);
	if (n < 0 || (size_t)n != len)
		return ops_fail(err, OPS_E_IO, false, "cannot write '%s': %s",
				path, n < 0 ? strerror(saved) : "short write");
	return 0;
}

static int
cluster_init(struct cluster *cl, struct ops_err *err)
{
	char initlog[PATH_MAX], conf[PATH_MAX];
	const char *args[] = { "-D",
			       cl->datadir,
			       "-U",
			       CLUSTER_USER,
			       "-E",
			       "UTF8",
			       "--locale=C.UTF-8",
			       "--auth-local=trust",
			       "--auth-host=reject",
			       NULL };
	int r, rc;

	if (cl->as_postgres && getpwnam("postgres") == NULL)
		return ops_fail(err, OPS_E_IO, false,
				"running as root needs the 'postgres' user to "
				"own the cluster (apt-get install "
				"postgresql-15 creates it)");
	if (access(cl->bindir, X_OK) != 0)
		return ops_fail(err, OPS_E_IO, false,
				"PostgreSQL server binaries not found in '%s' "
				"(APEXOPS_PG_BINDIR); install postgresql-15",
				cl->bindir);
	r = prepare_dirs(cl, err);
	if (r != 0)
		return r;
	snprintf(initlog, sizeof(initlog), "%s/initdb.log", cl->base);
	log_info("initialising the embedded cluster datadir=%s",
		 log_q(cl->datadir));
	rc = run_pg(cl, "initdb", args, NULL);
	if (rc != 0)
		return ops_fail(err, OPS_E_IO, false,
				"initdb failed (exit %d) for '%s'", rc,
				cl->datadir);
	cl->port = pick_port(cl->home);
	if (cl->port < 0)
		return ops_fail(err, OPS_E_IO, false,
				"no free loopback port in 54320..55519");
	snprintf(conf, sizeof(conf),
		 "# apexops embedded cluster\n"
		 "listen_addresses = '127.0.0.1'\n"
		 "port = %d\n"
		 "unix_socket_directories = '%s'\n"
		 "max_connections = 50\n"
		 "shared_buffers = '128MB'\n"
		 "logging_collector = off\n",
		 cl->port, cl->sockdir);
	r = append_conf(cl, conf, err);
	if (r != 0)
		return r;
	(void)initlog;
	return write_state(cl, err);
}

static bool
is_initialised(const struct cluster *cl)
{
	char pv[PATH_MAX];

	snprintf(pv, sizeof(pv), "%s/PG_VERSION", cl->datadir);
	return access(pv, F_OK) == 0;
}

int
cluster_status(struct cluster *cl, bool *initialised, bool *running,
	       struct ops_err *err)
{
	const char *args[] = { "status", "-D", cl->datadir, NULL };

	(void)err;
	*initialised = is_initialised(cl);
	*running = *initialised && run_pg(cl, "pg_ctl", args, NULL) == 0;
	return 0;
}

static int
create_database(const struct cluster *cl, struct ops_err *err)
{
	struct db_opts o = { 0 };
	struct db *db;
	char *url = xasprintf("postgresql://%s@/postgres?host=%s&port=%d",
			      CLUSTER_USER, cl->sockdir, cl->port);
	char *v = NULL;
	int r;

	o.url = url;
	o.appname = "apexops/db";
	o.connect_timeout_s = 5;
	o.retries = 3;
	r = db_connect(&o, &db, err);
	free(url);
	if (r != 0)
		return r;
	r = db_query_value(db, "SELECT 1 FROM pg_database WHERE datname = $1",
			   1, (const char *const[]){ CLUSTER_DB }, &v, err);
	if (r == 0 && v == NULL) {
		/* a constant name: CREATE DATABASE takes no parameters */
		r = db_exec(db, "CREATE DATABASE " CLUSTER_DB, 0, NULL, NULL,
			    err);
		if (r != 0 && strcmp(err->sqlstate, "42P04") == 0)
			r = 0; /* created by a concurrent starter */
	}
	free(v);
	db_close(db);
	return r;
}

/*
 * The port of the running server, from line 4 of its postmaster.pid: for a
 * cluster whose APEXOPS_HOME state was lost (a home deleted and made again
 * at the same path finds the old cluster under /var/tmp). 0 when unreadable.
 */
static int
running_port(const struct cluster *cl)
{
	char path[PATH_MAX], buf[512];
	int fd, port = 0, line = 1;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/postmaster.pid", cl->datadir);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	for (char *p = buf; *p != '\0'; p++) {
		if (line == 4) {
			long v = 0;

			while (*p >= '0' && *p <= '9' && v < 65536)
				v = v * 10 + (*p++ - '0');
			port = *p == '\n' && v >= 1 && v <= 65535 ? (int)v : 0;
			break;
		}
		if (*p == '\n')
			line++;
	}
	return port;
}

int
cluster_ensure_started(struct cluster *cl, bool init, struct ops_err *err)
{
	char lockpath[PATH_MAX];
	bool initialised, running;
	int fd, r = 0;

	snprintf(lockpath, sizeof(lockpath), "%s/cluster.lock", cl->home);
	fd = open(lockpath, O_RDWR | O_CREAT, 0600);
	if (fd < 0)
		return ops_fail(err, OPS_E_IO, false, "cannot open '%s': %s",
				lockpath, strerror(errno));
	/* several apexops processes may start the cluster at once */
	while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
		;
	if (read_state(cl) == 0)
		set_paths(cl);
	cluster_status(cl, &initialised, &running, err);
	if (!initialised) {
		if (!init) {
			r = ops_fail(err, OPS_E_NOTFOUND, false,
				     "no embedded cluster under '%s' (run "
				     "'apexops db start')",
				     cl->home);
			goto out;
		}
		r = cluster_init(cl, err);
		if (r != 0)
			goto out;
	}
	if (running && cl->port <= 0) {
		/* running, but this home never recorded its port */
		cl->port = running_port(cl);
		r = cl->port > 0 ? write_state(cl, err)
				 : ops_fail(err, OPS_E_IO, false,
					    "the embedded cluster in '%s' is "
					    "running but its port cannot be "
					    "read; stop it with pg_ctl -D '%s' "
					    "stop",
					    cl->base, cl->datadir);
		if (r != 0)
			goto out;
	}
	if (!running) {
		const char *args[] = { "start", "-D",	     cl->datadir,
				       "-l",	cl->logfile, "-w",
				       "-t",	"60",	     NULL };
		int rc;

		/* the directories first: nothing is written through a
		 * directory apexops did not create */
		r = prepare_dirs(cl, err);
		if (r != 0)
			goto out;
		/* a port of 0 is unknown (a home made again finds the old
		 * cluster), never "free" */
		if (cl->port <= 0 || !port_free(cl->port)) {
			char line[32];

			cl->port = pick_port(cl->home);
			snprintf(line, sizeof(line), "port = %d\n", cl->port);
			r = append_conf(cl, line, err);
			if (r == 0)
				r = write_state(cl, err);
			if (r != 0)
				goto out;
		}
		rc = run_pg(cl, "pg_ctl", args, NULL);
		if (rc != 0) {
			r = ops_fail(err, OPS_E_IO, false,
				     "pg_ctl start failed (exit %d); see '%s'",
				     rc, cl->logfile);
			goto out;
		}
		log_info("embedded cluster started port=%d socket=%s", cl->port,
			 log_q(cl->sockdir));
	}
	r = create_database(cl, err);
out:
	flock(fd, LOCK_UN);
	close(fd);
	return r;
}

int
cluster_stop(struct cluster *cl, struct ops_err *err)
{
	const char *args[] = { "stop", "-D", cl->datadir, "-m",
			       "fast", "-w", NULL };
	bool initialised, running;

	cluster_status(cl, &initialised, &running, err);
	if (!initialised)
		return ops_fail(err, OPS_E_NOTFOUND, false,
				"no embedded cluster under '%s': nothing to "
				"stop",
				cl->home);
	if (!running)
		return 0;
	if (run_pg(cl, "pg_ctl", args, NULL) != 0)
		return ops_fail(err, OPS_E_IO, false,
				"pg_ctl stop failed; see '%s'", cl->logfile);
	return 0;
}
