/*
 * The local provider: PRIVACY_EXPORT_DIR/<key>. Every directory below the
 * export directory is made 0700 and opened with openat(O_NOFOLLOW), then
 * checked with fstat: a symbolic link, or a directory someone else owns,
 * planted where a tenant's or user's directory goes is refused rather than
 * written through. Files are created 0600 under a temporary name
 * (".<name>.tmp.<random>") in their final directory, fsynced, renamed and
 * the directory fsynced, so that a crash leaves either the whole export or
 * a temporary that store_list() never shows.
 */
#include "storage/store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/xalloc.h"

#define DEFAULT_DIR "./logs/exports"
#define MAX_DEPTH   32

struct local {
	char *dir; /* absolute, no trailing '/' */
};

struct local_writer {
	struct local *l;
	int dirfd;
	int fd;
	char name[NAME_MAX + 1];
	char tmp[NAME_MAX + 1];
	char *key; /* for messages */
};

static int
io_fail(struct ops_err *err, int e, const char *what, const char *name)
{
	return ops_fail(err, OPS_E_IO, false, "store: cannot %s '%.300s': %s",
			what, name, strerror(e));
}

/* Append path to out lexically normalised ("." and empty segments
 * dropped, ".." removes the one before). out holds "/..." already. */
static void
normalise_into(struct buf *out, const char *path)
{
	const char *p = path;

	while (*p != '\0') {
		size_t n = strcspn(p, "/");

		if (n == 0 || (n == 1 && p[0] == '.')) {
			/* nothing */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			char *slash = strrchr(out->data, '/');

			buf_truncate(out, slash != NULL
						  ? (size_t)(slash - out->data)
						  : 0);
		} else {
			buf_adds(out, "/");
			buf_addn(out, p, n);
		}
		p += n;
		if (*p == '/')
			p++;
	}
}

static int
local_open(struct store *s, struct ops_err *err)
{
	const char *dir = s->cfg != NULL && s->cfg->privacy_export_dir != NULL
				  ? s->cfg->privacy_export_dir
				  : DEFAULT_DIR;
	struct buf b = BUF_INIT;
	struct local *l;

	if (dir[0] == '\0')
		return ops_fail(err, OPS_E_CONFIG, false,
				"PRIVACY_EXPORT_DIR is empty: name the "
				"directory of local privacy exports");
	buf_adds(&b, "");
	if (dir[0] != '/') {
		char cwd[PATH_MAX];

		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			int e = errno;

			buf_release(&b);
			return ops_fail(err, OPS_E_CONFIG, false,
					"PRIVACY_EXPORT_DIR '%.200s' is "
					"relative and the current directory "
					"is unknown: %s",
					dir, strerror(e));
		}
		normalise_into(&b, cwd);
	}
	normalise_into(&b, dir);
	if (b.len == 0) {
		buf_release(&b);
		return ops_fail(err, OPS_E_CONFIG, false,
				"PRIVACY_EXPORT_DIR must not be '/'");
	}
	if (b.len > 180) {
		buf_release(&b);
		return ops_fail(err, OPS_E_CONFIG, false,
				"PRIVACY_EXPORT_DIR '%.200s' is too long "
				"(at most 180 bytes as an absolute path)",
				dir);
	}
	l = xcalloc(1, sizeof(*l));
	l->dir = buf_detach(&b);
	s->impl = l;
	s->root = xasprintf("%s/", l->dir);
	return 0;
}

static void
local_close(struct store *s)
{
	struct local *l = s->impl;

	if (l == NULL)
		return;
	free(l->dir);
	free(l);
	s->impl = NULL;
}

/* Is the directory open at fd ours (a directory this user owns)? Tighten
 * its mode to 0700. */
static int
check_dir(int fd, const char *shown, struct ops_err *err)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return io_fail(err, errno, "stat", shown);
	if (!S_ISDIR(st.st_mode))
		return ops_fail(err, OPS_E_REFUSED, false,
				"store: '%.300s' is not a directory", shown);
	if (st.st_uid != geteuid())
		return ops_fail(err, OPS_E_REFUSED, false,
				"store: refusing directory '%.300s': it is "
				"owned by uid %ld, not by this user (uid %ld)",
				shown, (long)st.st_uid, (long)geteuid());
	if ((st.st_mode & 077) != 0 && fchmod(fd, 0700) != 0)
		return io_fail(err, errno, "chmod 0700", shown);
	return 0;
}

/*
 * Open the export directory, making it (and missing parents, 0700) when
 * create. Its existing parents are the operator's and may be links; a
 * directory made here is checked as the ones below. Returns 0 with *out
 * the fd, OPS_E_NOTFOUND when it does not exist and !create, or an error.
 */
static int
open_base(const struct local *l, bool create, int *out, struct ops_err *err)
{
	int fd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int pfd, e, r;
	char *copy, *p, *seg;

	*out = -1;
	if (fd >= 0) {
		r = check_dir(fd, l->dir, err);
		if (r != 0) {
			close(fd);
			return r;
		}
		*out = fd;
		return 0;
	}
	e = errno;
	if (e != ENOENT || !create) {
		r = io_fail(err, e, "open the export directory", l->dir);
		return e == ENOENT ? OPS_E_NOTFOUND : r;
	}
	/* mkdir -p, opening each level as it goes */
	pfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return io_fail(err, errno, "open", "/");
	copy = xstrdup(l->dir + 1);
	for (p = copy; p != NULL;) {
		bool made = false;

		seg = p;
		p = strchr(p, '/');
		if (p != NULL)
			*p++ = '\0';
		if (mkdirat(pfd, seg, 0700) == 0) {
			made = true;
		} else if (errno != EEXIST) {
			r = io_fail(err, errno, "make the export directory",
				    l->dir);
			goto fail;
		}
		fd = openat(pfd, seg,
			    O_RDONLY | O_DIRECTORY | O_CLOEXEC |
				    (made ? O_NOFOLLOW : 0));
		if (fd < 0) {
			r = io_fail(err, errno, "open the export directory",
				    l->dir);
			goto fail;
		}
		if (made) {
			r = check_dir(fd, l->dir, err);
			if (r != 0) {
				close(fd);
				goto fail;
			}
		}
		close(pfd);
		pfd = fd;
	}
	free(copy);
	r = check_dir(pfd, l->dir, err);
	if (r != 0) {
		close(pfd);
		return r;
	}
	*out = pfd;
	return 0;
fail:
	free(copy);
	close(pfd);
	return r;
}

/*
 * Walk the directory segments of key (all but the last) from the export
 * directory, making them 0700 when create. fds[0] is the export
 * directory, fds[i] the i-th segment; *n is how many are open. *last
 * points to the last segment. Returns 0, OPS_E_NOTFOUND (a directory is
 * missing and !create) or an error.
 */
static int
walk(const struct local *l, const char *key, bool create, int *fds, int *n,
     const char **last, struct ops_err *err)
{
	const char *p = key, *slash;
	char seg[NAME_MAX + 1];
	int r;

	*n = 0;
	r = open_base(l, create, &fds[0], err);
	if (r != 0)
		return r;
	*n = 1;
	while ((slash = strchr(p, '/')) != NULL) {
		size_t len = (size_t)(slash - p);
		int fd = -1;

		if (len > NAME_MAX || *n >= MAX_DEPTH)
			return ops_fail(err, OPS_E_INVALID, false,
					"store: key '%.200s' has a segment "
					"too long or too many segments",
					key);
		memcpy(seg, p, len);
		seg[len] = '\0';
		/* a delete may remove an empty directory between our
		 * mkdir and open: try again a few times */
		for (int tries = 0; tries < 5 && fd < 0; tries++) {
			if (create && mkdirat(fds[*n - 1], seg, 0700) != 0 &&
			    errno != EEXIST)
				return io_fail(err, errno, "make directory",
					       key);
			fd = openat(fds[*n - 1], seg,
				    O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					    O_CLOEXEC);
			if (fd < 0 && (errno != ENOENT || !create))
				break;
		}
		if (fd < 0) {
			int e = errno;

			if (e == ENOENT)
				return OPS_E_NOTFOUND;
			if (e == ELOOP || e == ENOTDIR)
				return ops_fail(
					err, OPS_E_REFUSED, false,
					"store: refusing '%.*s' in the export "
					"directory: it is a symbolic link or "
					"not a directory",
					(int)(slash - key), key);
			return io_fail(err, e, "open directory", key);
		}
		fds[(*n)++] = fd;
		r = check_dir(fd, seg, err);
		if (r != 0)
			return r;
		p = slash + 1;
	}
	*last = p;
	if (strlen(p) > NAME_MAX - 30)
		return ops_fail(err, OPS_E_INVALID, false,
				"store: file name '%.100s' is too long "
				"(at most %d bytes)",
				p, NAME_MAX - 30);
	return 0;
}

static void
close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

static int
local_w_open(struct store *s, const char *key, const char *ctype, void **out,
	     struct ops_err *err)
{
	struct local *l = s->impl;
	struct local_writer *w;
	int fds[MAX_DEPTH], n = 0, r;
	const char *last = NULL;
	unsigned char rnd[8];

	(void)ctype;
	*out = NULL;
	r = walk(l, key, true, fds, &n, &last, err);
	if (r != 0) {
		close_fds(fds, n);
		return r;
	}
	w = xcalloc(1, sizeof(*w));
	w->l = l;
	w->key = xstrdup(key);
	snprintf(w->name, sizeof(w->name), "%s", last);
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		r = io_fail(err, errno, "draw a temporary name for", key);
		goto fail;
	}
	snprintf(w->tmp, sizeof(w->tmp),
		 ".%s.tmp.%02x%02x%02x%02x%02x%02x%02x%02x", last, rnd[0],
		 rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	w->dirfd = fds[n - 1];
	fds[n - 1] = -1;
	close_fds(fds, n - 1);
	w->fd = openat(w->dirfd, w->tmp,
		       O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		       0600);
	if (w->fd < 0) {
		r = io_fail(err, errno, "create a temporary file for", key);
		close(w->dirfd);
		goto fail;
	}
	*out = w;
	return 0;
fail:
	free(w->key);
	free(w);
	return r;
}

static int
local_w_write(void *arg, const void *data, size_t len, struct ops_err *err)
{
	struct local_writer *w = arg;
	const char *p = data;

	while (len > 0) {
		ssize_t n = write(w->fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return io_fail(err, errno, "write", w->key);
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void
local_w_free(struct local_writer *w, bool unlink_tmp)
{
	if (w->fd >= 0)
		close(w->fd);
	if (unlink_tmp)
		(void)unlinkat(w->dirfd, w->tmp, 0);
	close(w->dirfd);
	free(w->key);
	free(w);
}

static int
local_w_commit(void *arg, struct ops_err *err)
{
	struct local_writer *w = arg;
	int r = 0, fd = w->fd;

	w->fd = -1;
	if (fsync(fd) != 0) {
		r = io_fail(err, errno, "fsync", w->key);
		close(fd);
		goto out;
	}
	if (close(fd) != 0) {
		r = io_fail(err, errno, "close", w->key);
		goto out;
	}
	if (renameat(w->dirfd, w->tmp, w->dirfd, w->name) != 0) {
		r = io_fail(err, errno, "rename the temporary file to", w->key);
		goto out;
	}
	/* the rename is durable once the directory is */
	if (fsync(w->dirfd) != 0) {
		/* the file is in place; report, but do not remove it */
		r = io_fail(err, errno, "fsync the directory of", w->key);
		(void)unlinkat(w->dirfd, w->name, 0);
		local_w_free(w, false);
		return r;
	}
out:
	local_w_free(w, r != 0);
	return r;
}

static void
local_w_abort(void *arg)
{
	if (arg != NULL)
		local_w_free(arg, true);
}

static int
local_del(struct store *s, const char *key, struct ops_err *err)
{
	int fds[MAX_DEPTH], n = 0, r;
	const char *last = NULL;
	struct stat st;

	r = walk(s->impl, key, false, fds, &n, &last, err);
	if (r == OPS_E_NOTFOUND) {
		close_fds(fds, n);
		ops_err_clear(err);
		return 0;
	}
	if (r != 0)
		goto out;
	if (fstatat(fds[n - 1], last, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(st.st_mode)) {
		r = ops_fail(err, OPS_E_REFUSED, false,
			     "store: refusing to delete '%.300s': it is a "
			     "directory",
			     key);
		goto out;
	}
	if (unlinkat(fds[n - 1], last, 0) != 0 && errno != ENOENT) {
		r = io_fail(err, errno, "delete", key);
		goto out;
	}
	/* drop the directories left empty (tenant, user): their names are
	 * ids of the person; a concurrent writer's walk() retries */
	for (int i = n - 1; i >= 1; i--) {
		const char *end = key, *seg;
		char name[NAME_MAX + 1];
		int k = 0;

		/* the i-th segment of key */
		for (seg = key; k < i - 1; k++)
			seg = strchr(seg, '/') + 1;
		end = strchr(seg, '/');
		snprintf(name, sizeof(name), "%.*s", (int)(end - seg), seg);
		if (unlinkat(fds[i - 1], name, AT_REMOVEDIR) != 0)
			break; /* not empty, or in use: keep it */
	}
	r = 0;
out:
	close_fds(fds, n);
	return r;
}

static int
local_exists(struct store *s, const char *key, struct ops_err *err)
{
	int fds[MAX_DEPTH], n = 0, r;
	const char *last = NULL;
	struct stat st;

	r = walk(s->impl, key, false, fds, &n, &last, err);
	if (r == 0) {
		if (fstatat(fds[n - 1], last, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno == ENOENT)
				r = OPS_E_NOTFOUND;
			else
				r = io_fail(err, errno, "stat", key);
		} else if (!S_ISREG(st.st_mode)) {
			r = OPS_E_NOTFOUND;
		}
	}
	if (r == OPS_E_NOTFOUND)
		(void)ops_fail(err, OPS_E_NOTFOUND, false,
			       "store: '%.300s' does not exist", key);
	close_fds(fds, n);
	return r;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List the directory at dfd (closed here): keys key_so_far + name for
 * names starting with partial; recurse into directories. */
static int
list_dir(int dfd, struct buf *key, const char *partial, int depth,
	 int (*fn)(void *arg, const char *key), void *arg, struct ops_err *err)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	char **names = NULL;
	size_t nn = 0, cap = 0, base = key->len;
	int r = 0;

	if (d == NULL) {
		r = io_fail(err, errno, "list", buf_str(key));
		close(dfd);
		return r;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' ||
		    strncmp(de->d_name, partial, strlen(partial)) != 0)
			continue; /* ".", "..", temporaries */
		if (nn == cap) {
			cap = cap ? 2 * cap : 16;
			names = xrealloc(names, cap * sizeof(*names));
		}
		names[nn++] = xstrdup(de->d_name);
	}
	if (nn > 1)
		qsort(names, nn, sizeof(*names), cmp_names);
	for (size_t i = 0; i < nn && r == 0; i++) {
		struct stat st;

		if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue; /* gone meanwhile */
		buf_truncate(key, base);
		buf_adds(key, names[i]);
		if (S_ISREG(st.st_mode)) {
			r = fn(arg, buf_str(key));
		} else if (S_ISDIR(st.st_mode) && depth < MAX_DEPTH) {
			int sub = openat(dirfd(d), names[i],
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC);

			if (sub < 0)
				continue;
			buf_adds(key, "/");
			r = list_dir(sub, key, "", depth + 1, fn, arg, err);
		}
	}
	buf_truncate(key, base);
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return r;
}

static int
local_list(struct store *s, const char *prefix,
	   int (*fn)(void *arg, const char *key), void *arg,
	   struct ops_err *err)
{
	int fds[MAX_DEPTH], n = 0, r, dfd;
	const char *last = NULL;
	struct buf key = BUF_INIT;

	r = walk(s->impl, prefix, false, fds, &n, &last, err);
	if (r == OPS_E_NOTFOUND) {
		ops_err_clear(err);
		close_fds(fds, n);
		return 0; /* nothing there yet */
	}
	if (r != 0) {
		close_fds(fds, n);
		return r;
	}
	dfd = fds[n - 1];
	fds[n - 1] = -1;
	close_fds(fds, n - 1);
	buf_addn(&key, prefix, (size_t)(last - prefix));
	r = list_dir(dfd, &key, last, 0, fn, arg, err);
	buf_release(&key);
	return r;
}

/* A temporary of an unfinished write: ".<name>.tmp.<16 hex>" */
static bool
is_temporary(const char *name)
{
	const char *t = strstr(name, ".tmp.");

	if (name[0] != '.' || t == NULL || t == name)
		return false;
	t += 5;
	if (strlen(t) != 16)
		return false;
	for (; *t != '\0'; t++)
		if (!((*t >= '0' && *t <= '9') || (*t >= 'a' && *t <= 'f')))
			return false;
	return true;
}

/* Remove the old temporaries below the directory at dfd (closed here)
 * whose names (after their '.') start with partial; recurse. */
static int
sweep_dir(int dfd, const char *partial, int depth, time_t cutoff, int *n,
	  struct ops_err *err)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	size_t pl = strlen(partial);
	int r = 0;

	if (d == NULL) {
		r = io_fail(err, errno, "list", "a directory to sweep");
		close(dfd);
		return r;
	}
	while (r == 0 && (de = readdir(d)) != NULL) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) !=
			    0)
			continue;
		if (S_ISREG(st.st_mode) && is_temporary(de->d_name) &&
		    strncmp(de->d_name + 1, partial, pl) == 0) {
			if (st.st_mtime < cutoff &&
			    unlinkat(dirfd(d), de->d_name, 0) == 0)
				(*n)++;
		} else if (S_ISDIR(st.st_mode) && de->d_name[0] != '.' &&
			   strncmp(de->d_name, partial, pl) == 0 &&
			   depth < MAX_DEPTH) {
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC);

			if (sub >= 0)
				r = sweep_dir(sub, "", depth + 1, cutoff, n,
					      err);
		}
	}
	closedir(d);
	return r;
}

static int
local_sweep(struct store *s, const char *prefix, time_t cutoff, int *removed,
	    struct ops_err *err)
{
	int fds[MAX_DEPTH], n = 0, r, dfd;
	const char *last = NULL;

	r = walk(s->impl, prefix, false, fds, &n, &last, err);
	if (r == OPS_E_NOTFOUND) {
		ops_err_clear(err);
		close_fds(fds, n);
		return 0;
	}
	if (r != 0) {
		close_fds(fds, n);
		return r;
	}
	dfd = fds[n - 1];
	fds[n - 1] = -1;
	close_fds(fds, n - 1);
	return sweep_dir(dfd, last, 0, cutoff, removed, err);
}

static int
local_url(struct store *s, const char *key, long expires_s, char **url,
	  struct ops_err *err)
{
	(void)expires_s;
	(void)err;
	*url = xasprintf("%s%s", s->root, key);
	return 0;
}

const struct store_provider_ops store_local_ops = {
	.open = local_open,
	.close = local_close,
	.w_open = local_w_open,
	.w_write = local_w_write,
	.w_commit = local_w_commit,
	.w_abort = local_w_abort,
	.del = local_del,
	.exists = local_exists,
	.list = local_list,
	.url = local_url,
	.sweep = local_sweep,
};
