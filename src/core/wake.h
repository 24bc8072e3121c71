/*
 * A self-pipe that wakes a poll() loop: a thread that finished something
 * (or a signal handler) pokes it, the loop polls its read end among its
 * other descriptors and drains it before it looks for work. Both ends are
 * non-blocking and close-on-exec; a poke into a full pipe is dropped (the
 * loop has a wake-up pending already).
 *
 * Thread safety: ops_wake_poke() may be called from any thread and from a
 * signal handler (it is one write(2)); the others belong to the loop's
 * thread.
 */
#ifndef OPS_CORE_WAKE_H
#define OPS_CORE_WAKE_H

#include "core/err.h"

struct ops_wake {
	int fd[2]; /* read end, write end; -1 when closed */
};

/* Open the pipe. Returns 0, or OPS_E_IO with the reason in err. */
int ops_wake_open(struct ops_wake *w, struct ops_err *err);
/* Wake the loop. */
void ops_wake_poke(struct ops_wake *w);
/* Read every pending byte (after poll() said the read end is readable). */
void ops_wake_drain(struct ops_wake *w);
/* The descriptor to poll for POLLIN. */
int ops_wake_fd(const struct ops_wake *w);
/* Close both ends; a closed or never opened one (fd -1) is left alone. */
void ops_wake_close(struct ops_wake *w);

#endif
