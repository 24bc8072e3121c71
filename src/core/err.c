#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int
ops_fail(struct ops_err *err, int code, bool transient, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	err->transient = transient;
	if (code != OPS_E_DB)
		err->sqlstate[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

/* Put "head: " before err->msg, keeping as much of the old text as fits. */
static void
prefix_msg(struct ops_err *err, const char *fmt, va_list ap)
{
	char head[256], old[sizeof(err->msg)];
	size_t hl;

	vsnprintf(head, sizeof(head), fmt, ap);
	memcpy(old, err->msg, sizeof(old));
	hl = strlen(head);
	if (hl > sizeof(err->msg) - 3)
		hl = sizeof(err->msg) - 3;
	memcpy(err->msg, head, hl);
	memcpy(err->msg + hl, ": ", 2);
	memcpy(err->msg + hl + 2, old, sizeof(err->msg) - hl - 3);
	err->msg[sizeof(err->msg) - 1] = '\0';
}

int
ops_err_prefix(struct ops_err *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return OPS_E_INVALID;
	va_start(ap, fmt);
	prefix_msg(err, fmt, ap);
	va_end(ap);
	return err->code;
}

int
ops_err_recode(struct ops_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	if (code != OPS_E_DB)
		err->sqlstate[0] = '\0';
	va_start(ap, fmt);
	prefix_msg(err, fmt, ap);
	va_end(ap);
	return code;
}

void
ops_err_clear(struct ops_err *err)
{
	if (err == NULL)
		return;
	err->code = OPS_OK;
	err->transient = false;
	err->sqlstate[0] = '\0';
	err->msg[0] = '\0';
}

int
ops_err_exit_code(const struct ops_err *err)
{
	if (err == NULL)
		return OPS_EXIT_FAIL;
	switch (err->code) {
	case OPS_OK:
		return OPS_EXIT_OK;
	case OPS_E_CONFIG:
		return OPS_EXIT_CONFIG;
	case OPS_E_INVALID:
		return OPS_EXIT_USAGE;
	case OPS_E_CONNECT:
		return OPS_EXIT_UNAVAILABLE;
	case OPS_E_CONFLICT:
	case OPS_E_STOPPED: /* run again to finish */
		return OPS_EXIT_TEMPFAIL;
	default:
		return err->transient ? OPS_EXIT_TEMPFAIL : OPS_EXIT_FAIL;
	}
}
