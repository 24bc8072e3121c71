/*
 * Reading a small configuration file (a .env file, a NAME_FILE secret)
 * whole, refusing what is not a regular file: a directory used to read as
 * an empty file (every value silently fell back to its default), and a
 * FIFO blocked the process forever.
 *
 * Thread safety: may be called from several threads.
 */
#ifndef OPS_CORE_FILE_H
#define OPS_CORE_FILE_H

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/*
 * Append the contents of path (at most max bytes; 0: no limit) to out.
 * The file is opened with O_NONBLOCK (a FIFO must not block), then must be
 * a regular file by fstat(2); symbolic links are followed, as mounted
 * Kubernetes secrets are links. Returns 0; OPS_E_NOTFOUND when path does
 * not exist; OPS_E_IO when it cannot be read, is not a regular file or is
 * larger than max. The message names the file and the reason ("is a
 * directory", "is a FIFO", "Permission denied"); err may be NULL. On
 * error out holds no new bytes.
 */
int ops_read_file(const char *path, size_t max, struct buf *out,
		  struct ops_err *err) __attribute__((warn_unused_result));

#endif
