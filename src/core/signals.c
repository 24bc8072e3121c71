/* Signal handlers that only set flags; see signals.h. */
#include "core/signals.h"

#include <stdbool.h>
#include <string.h>

#include "core/err.h"

volatile sig_atomic_t ops_stop_flag;
volatile sig_atomic_t ops_stop_twice;
volatile sig_atomic_t ops_reload_flag;

static void (*volatile second_stop_hook)(void);
static struct sigaction saved_int, saved_term, saved_hup, saved_pipe;
static bool installed;

static void
on_signal(int sig)
{
	if (sig == SIGHUP) {
		ops_reload_flag = 1;
		return;
	}
	if (ops_stop_flag != 0) {
		void (*fn)(void) = second_stop_hook;

		ops_stop_twice = 1;
		if (fn != NULL)
			fn();
		return;
	}
	ops_stop_flag = sig;
}

int
ops_signals_install(void)
{
	struct sigaction sa, ign;

	if (installed)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* no SA_RESTART: a blocking read or ppoll returns EINTR and looks */
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	if (sigaction(SIGINT, &sa, &saved_int) != 0 ||
	    sigaction(SIGTERM, &sa, &saved_term) != 0 ||
	    sigaction(SIGHUP, &sa, &saved_hup) != 0 ||
	    sigaction(SIGPIPE, &ign, &saved_pipe) != 0)
		return OPS_E_IO;
	installed = true;
	return 0;
}

void
ops_signals_restore(void)
{
	if (!installed)
		return;
	sigaction(SIGINT, &saved_int, NULL);
	sigaction(SIGTERM, &saved_term, NULL);
	sigaction(SIGHUP, &saved_hup, NULL);
	sigaction(SIGPIPE, &saved_pipe, NULL);
	installed = false;
}

void
ops_signals_on_second_stop(void (*fn)(void))
{
	second_stop_hook = fn;
}

void
ops_signals_reset(void)
{
	ops_stop_flag = 0;
	ops_stop_twice = 0;
	ops_reload_flag = 0;
}
