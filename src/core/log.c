#include "core/log.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/xalloc.h"

enum log_level log_min_level = LOG_INFO;
static enum log_format log_fmt = LOG_FMT_TEXT;
static char log_component[32] = "apexops";
/* the secret list: written rarely (start-up), read by every line */
static pthread_rwlock_t secrets_lock = PTHREAD_RWLOCK_INITIALIZER;
static char **secrets;
static size_t nsecrets;

void
log_setup(enum log_level lvl, enum log_format fmt, const char *component)
{
	log_min_level = lvl;
	log_fmt = fmt;
	if (component != NULL)
		snprintf(log_component, sizeof(log_component), "%s", component);
}

bool
log_is_json(void)
{
	return log_fmt == LOG_FMT_JSON;
}

int
log_level_parse(const char *s)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };

	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	if (strcmp(s, "warning") == 0)
		return LOG_WARN;
	return -1;
}

void
log_add_secret(const char *s)
{
	if (s == NULL || strlen(s) < 4) /* too short to scrub safely */
		return;
	pthread_rwlock_wrlock(&secrets_lock);
	for (size_t i = 0; i < nsecrets; i++) {
		if (strcmp(secrets[i], s) == 0) {
			pthread_rwlock_unlock(&secrets_lock);
			return;
		}
	}
	secrets = xrealloc(secrets, (nsecrets + 1) * sizeof(*secrets));
	secrets[nsecrets++] = xstrdup(s);
	pthread_rwlock_unlock(&secrets_lock);
}

void
log_remove_secret(const char *s)
{
	if (s == NULL)
		return;
	pthread_rwlock_wrlock(&secrets_lock);
	for (size_t i = 0; i < nsecrets; i++) {
		if (strcmp(secrets[i], s) == 0) {
			freezero_str(secrets[i]);
			secrets[i] = secrets[--nsecrets]; /* order is free */
			break;
		}
	}
	pthread_rwlock_unlock(&secrets_lock);
}

void
log_forget_secrets(void)
{
	pthread_rwlock_wrlock(&secrets_lock);
	for (size_t i = 0; i < nsecrets; i++)
		freezero_str(secrets[i]);
	free(secrets);
	secrets = NULL;
	nsecrets = 0;
	pthread_rwlock_unlock(&secrets_lock);
}

void
log_scrub(char *s)
{
	pthread_rwlock_rdlock(&secrets_lock);
	for (size_t i = 0; i < nsecrets; i++) {
		size_t n = strlen(secrets[i]);
		char *p;

		while ((p = strstr(s, secrets[i])) != NULL) {
			memcpy(p, "***", 3);
			memmove(p + 3, p + n, strlen(p + n) + 1);
		}
	}
	pthread_rwlock_unlock(&secrets_lock);
}

const char *
log_q(const char *s)
{
	/* per thread: a daemon's threads quote at the same time */
	static _Thread_local char ring[4][512];
	static _Thread_local int next;
	char *out = ring[next];
	size_t o = 0;

	next = (next + 1) % 4;
	out[o++] = '"';
	for (; s != NULL && *s != '\0' && o < sizeof(ring[0]) - 4; s++) {
		if (*s == '"' || *s == '\\')
			out[o++] = '\\';
		out[o++] = (*s == '\n') ? ' ' : *s;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

static const char *
level_name(enum log_level lvl)
{
	static const char *const n[] = { "debug", "info", "warn", "error" };

	return lvl <= LOG_ERROR ? n[lvl] : "off";
}

static int
json_str(struct buf *b, const char *s, size_t n)
{
	int r = 0;

	r |= buf_puts(b, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			r |= buf_printf(b, "\\%c", c);
		else if (c < 0x20)
			r |= buf_printf(b, "\\u%04x", c);
		else
			r |= buf_append(b, &s[i], 1);
	}
	r |= buf_puts(b, "\"");
	return r;
}

/* Length of a key at s ("[A-Za-z_][A-Za-z0-9_.]*="), 0 if none. */
static size_t
key_len(const char *s)
{
	size_t i = 0;

	if (!isalpha((unsigned char)s[0]) && s[0] != '_')
		return 0;
	while (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.')
		i++;
	return s[i] == '=' ? i : 0;
}

/* Split "message k=v k2="v 2"" into JSON fields. */
static int
render_json(struct buf *out, const char *ts, enum log_level lvl,
	    const char *func, const char *text)
{
	const char *p = text, *msg_end = NULL;
	int r = 0;

	r |= buf_puts(out, "{\"ts\":");
	r |= json_str(out, ts, strlen(ts));
	r |= buf_printf(out,
			",\"level\":\"%s\",\"component\":", level_name(lvl));
	r |= json_str(out, log_component, strlen(log_component));
	r |= buf_puts(out, ",\"func\":");
	r |= json_str(out, func, strlen(func));
	for (const char *q = text; *q != '\0'; q++) {
		if ((q == text || q[-1] == ' ') && key_len(q) > 0) {
			msg_end = q;
			break;
		}
	}
	if (msg_end == NULL)
		msg_end = text + strlen(text);
	{
		size_t n = (size_t)(msg_end - text);

		while (n > 0 && text[n - 1] == ' ')
			n--;
		r |= buf_puts(out, ",\"msg\":");
		r |= json_str(out, text, n);
	}
	p = msg_end;
	while (*p != '\0') {
		size_t kl = key_len(p);
		const char *key = p, *v, *ve;
		struct buf val = BUF_INIT;

		if (kl == 0) { /* stray text: skip the token */
			while (*p != '\0' && *p != ' ')
				p++;
			while (*p == ' ')
				p++;
			continue;
		}
		v = p + kl + 1;
		if (*v == '"') {
			v++;
			for (ve = v; *ve != '\0' && *ve != '"'; ve++) {
				if (*ve == '\\' && ve[1] != '\0')
					ve++;
				r |= buf_append(&val, ve, 1);
			}
			p = *ve == '"' ? ve + 1 : ve;
		} else {
			for (ve = v; *ve != '\0' && *ve != ' '; ve++)
				;
			r |= buf_append(&val, v, (size_t)(ve - v));
			p = ve;
		}
		r |= buf_puts(out, ",");
		r |= json_str(out, key, kl);
		r |= buf_puts(out, ":");
		r |= json_str(out, buf_str(&val), val.len);
		buf_release(&val);
		while (*p == ' ')
			p++;
	}
	r |= buf_puts(out, "}");
	return r;
}

/* Write all of b to stderr with as few write(2) calls as the kernel
 * allows: one, for any line up to PIPE_BUF and in practice far more. */
static void
write_line(const struct buf *b)
{
	const char *p = buf_str(b);
	size_t left = b->len;

	while (left > 0) {
		ssize_t n = write(STDERR_FILENO, p, left);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return; /* nowhere to report a failed log write */
		p += n;
		left -= (size_t)n;
	}
}

static void
timestamp(char *ts, size_t n)
{
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(ts, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000));
}

void
log_emit(enum log_level lvl, const char *func, const char *fmt, ...)
{
	struct buf text = BUF_INIT, line = BUF_INIT;
	char ts[96];
	va_list ap;
	int r;

	timestamp(ts, sizeof(ts));
	va_start(ap, fmt);
	r = buf_vprintf(&text, fmt, ap);
	va_end(ap);
	if (text.data != NULL)
		log_scrub(text.data);
	if (log_fmt == LOG_FMT_JSON)
		r |= render_json(&line, ts, lvl, func, buf_str(&text));
	else
		r |= buf_printf(&line, "ts=%s level=%s component=%s %s", ts,
				level_name(lvl), log_component, buf_str(&text));
	r |= buf_puts(&line, "\n");
	if (r == 0) /* no maximum: only a broken format string fails */
		write_line(&line);
	buf_release(&text);
	buf_release(&line);
}

void
log_line(enum log_level lvl, const char *component, const char *msg,
	 const char *const *fields)
{
	struct buf text = BUF_INIT, line = BUF_INIT;
	char ts[96];
	int r = 0;

	timestamp(ts, sizeof(ts));
	if (component == NULL)
		component = log_component;
	r |= buf_puts(&text, msg != NULL ? msg : "");
	if (text.data != NULL)
		log_scrub(text.data);
	if (log_fmt == LOG_FMT_JSON) {
		r |= buf_puts(&line, "{\"ts\":");
		r |= json_str(&line, ts, strlen(ts));
		r |= buf_printf(&line, ",\"level\":\"%s\",\"component\":",
				level_name(lvl));
		r |= json_str(&line, component, strlen(component));
		r |= buf_puts(&line, ",\"msg\":");
		/* strlen: scrubbing may have shortened it */
		r |= json_str(&line, buf_str(&text), strlen(buf_str(&text)));
	} else {
		r |= buf_printf(&line, "ts=%s level=%s component=%s msg=%s", ts,
				level_name(lvl), component,
				log_q(buf_str(&text)));
	}
	for (size_t i = 0; fields != NULL && fields[i] != NULL; i += 2) {
		char *v;

		if (fields[i + 1] == NULL)
			continue;
		v = xstrdup(fields[i + 1]);
		log_scrub(v);
		if (log_fmt == LOG_FMT_JSON) {
			r |= buf_puts(&line, ",");
			r |= json_str(&line, fields[i], strlen(fields[i]));
			r |= buf_puts(&line, ":");
			r |= json_str(&line, v, strlen(v));
		} else {
			r |= buf_printf(&line, " %s=%s", fields[i], log_q(v));
		}
		free(v);
	}
	if (log_fmt == LOG_FMT_JSON)
		r |= buf_puts(&line, "}");
	r |= buf_puts(&line, "\n");
	if (r == 0)
		write_line(&line);
	buf_release(&text);
	buf_release(&line);
}
