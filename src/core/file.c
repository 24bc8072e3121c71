/* Whole-file reads of configuration files; see file.h. */
#include "core/file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *
kind(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	return "not a regular file";
}

int
ops_read_file(const char *path, size_t max, struct buf *out,
	      struct ops_err *err)
{
	size_t start = out->len;
	struct stat st;
	char chunk[8192];
	int fd, r = 0, e;

	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		e = errno;
		return ops_fail(err, e == ENOENT ? OPS_E_NOTFOUND : OPS_E_IO,
				false, "cannot open '%s': %s", path,
				strerror(e));
	}
	if (fstat(fd, &st) != 0) {
		e = errno;
		r = ops_fail(err, OPS_E_IO, false, "cannot read '%s': %s", path,
			     strerror(e));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = ops_fail(err, OPS_E_IO, false,
			     "'%s' is %s, expected a regular file", path,
			     kind(st.st_mode));
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			e = errno;
			r = ops_fail(err, OPS_E_IO, false,
				     "cannot read '%s': %s", path, strerror(e));
			goto out;
		}
		if (n == 0)
			break;
		if ((max != 0 && out->len - start + (size_t)n > max) ||
		    buf_append(out, chunk, (size_t)n) != 0) {
			r = ops_fail(err, OPS_E_IO, false,
				     "'%s' is larger than %zu bytes", path,
				     max != 0 ? max : out->max);
			goto out;
		}
	}
out:
	explicit_bzero(chunk, sizeof(chunk)); /* may have held a secret */
	if (r != 0) {
		if (out->data != NULL)
			explicit_bzero(out->data + start, out->len - start);
		buf_truncate(out, start);
	}
	close(fd);
	return r;
}
