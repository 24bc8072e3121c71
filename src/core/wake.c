/* The self-pipe of a poll() loop. See wake.h. */
#include "core/wake.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int
ops_wake_open(struct ops_wake *w, struct ops_err *err)
{
	w->fd[0] = w->fd[1] = -1;
	if (pipe2(w->fd, O_NONBLOCK | O_CLOEXEC) != 0) {
		w->fd[0] = w->fd[1] = -1;
		return ops_fail(err, OPS_E_IO, false,
				"cannot create the wake-up pipe: %s",
				strerror(errno));
	}
	return 0;
}

void
ops_wake_poke(struct ops_wake *w)
{
	char c = 1;
	ssize_t n;
	int saved = errno; /* callable from a signal handler */

	do
		n = write(w->fd[1], &c, 1);
	while (n == -1 && errno == EINTR);
	errno = saved;
}

void
ops_wake_drain(struct ops_wake *w)
{
	char buf[256];

	while (read(w->fd[0], buf, sizeof(buf)) > 0)
		;
}

int
ops_wake_fd(const struct ops_wake *w)
{
	return w->fd[0];
}

void
ops_wake_close(struct ops_wake *w)
{
	for (int i = 0; i < 2; i++)
		if (w->fd[i] >= 0) {
			close(w->fd[i]);
			w->fd[i] = -1;
		}
}
