/*
 * Process signals, the one place that installs handlers. Handlers only set
 * flags (and, on a second stop signal, call one async-signal-safe hook):
 *   - the first SIGINT or SIGTERM stores the signal number in ops_stop_flag,
 *     which every job, sleep (core/stop.h) and daemon loop polls;
 *   - a second one calls the hook set with ops_signals_on_second_stop()
 *     (the db layer registers one that cancels running statements) and
 *     sets ops_stop_twice;
 *   - SIGHUP sets ops_reload_flag;
 *   - SIGPIPE is ignored, so a closed pipe is an EPIPE error, not a death.
 * Daemons block TERM, INT and HUP and wait in ppoll() with the saved mask.
 *
 * Thread safety: install/restore from the main thread, before threads
 * start; the flags may be read from any thread.
 */
#ifndef OPS_CORE_SIGNALS_H
#define OPS_CORE_SIGNALS_H

#include <signal.h>

extern volatile sig_atomic_t ops_stop_flag;  /* signal number, or 0 */
extern volatile sig_atomic_t ops_stop_twice; /* a second stop arrived */
extern volatile sig_atomic_t ops_reload_flag;

/* Install the handlers (idempotent). Returns 0 or OPS_E_IO. */
int ops_signals_install(void) __attribute__((warn_unused_result));
/* Put back what was installed before ops_signals_install(). */
void ops_signals_restore(void);
/*
 * fn (async-signal-safe, may be NULL) runs inside the handler of a second
 * SIGINT/SIGTERM. One hook per process; a later call replaces it.
 */
void ops_signals_on_second_stop(void (*fn)(void));
/* Clear the flags (tests, and a daemon after it handled a reload). */
void ops_signals_reset(void);

#endif
