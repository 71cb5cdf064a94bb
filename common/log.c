/*
 * Logging to stderr, in journald's "<N>" form under systemd and as plain
 * timestamped lines otherwise.  Escaping of untrusted text lives here too,
 * so that every caller escapes the same way.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/utf8.h"

static const char *log_progname = "vetsync";
static enum log_level log_max = LOG_LEVEL_INFO;
static bool log_journal;

static bool
journal_stream_is_stderr(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) == -1)
		return false;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

void
log_init(const char *progname, enum log_level max_level)
{
	if (progname != NULL)
		log_progname = progname;
	log_max = max_level;
	log_journal = journal_stream_is_stderr();
}

void
log_set_level(enum log_level max_level)
{
	log_max = max_level;
}

enum log_level
log_get_level(void)
{
	return log_max;
}

bool
log_is_journal(void)
{
	return log_journal;
}

static const char *
level_name(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_ERR:
		return "error";
	case LOG_LEVEL_WARNING:
		return "warning";
	case LOG_LEVEL_INFO:
		return "info";
	case LOG_LEVEL_DEBUG:
		return "debug";
	}
	return "?";
}

static void
log_emit(enum log_level level, const char *msg)
{
	char stamp[32];
	struct timespec ts;
	struct tm tm;

	if (log_journal) {
		fprintf(stderr, "<%d>%s\n", (int)level, msg);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s[%ld] %s: %s\n", stamp,
	    ts.tv_nsec / 1000000, log_progname, (long)getpid(),
	    level_name(level), msg);
}

void
log_vlog(enum log_level level, const char *fmt, va_list ap)
{
	char msg[2048];
	int saved = errno;

	if (level > log_max)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* A format argument may hold a newline: keep one event per line. */
	for (char *p = msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	log_emit(level, msg);
	errno = saved;
}

static void
log_format(enum log_level level, bool with_errno, const char *fmt, va_list ap)
{
	char msg[2048];
	int saved = errno;
	size_t len;

	if (level > log_max)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno) {
		len = strlen(msg);
		/* strerror() text is ours, not a peer's: no escaping needed. */
		snprintf(msg + len, sizeof(msg) - len, ": %s", strerror(saved));
	}
	for (char *p = msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	log_emit(level, msg);
	errno = saved;
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_format(LOG_LEVEL_WARNING, true, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_format(LOG_LEVEL_WARNING, false, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_format(LOG_LEVEL_INFO, false, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_format(LOG_LEVEL_DEBUG, false, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_format(LOG_LEVEL_ERR, true, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_format(LOG_LEVEL_ERR, false, fmt, ap);
	va_end(ap);
	exit(1);
}

/* Append s (n bytes) if it fits in the room left before the reserve. */
static bool
put(char *dst, size_t *pos, size_t limit, const char *s, size_t n)
{
	if (*pos + n > limit)
		return false;
	memcpy(dst + *pos, s, n);
	*pos += n;
	return true;
}

char *
log_escape(char *dst, size_t dstsz, const char *src, size_t srclen)
{
	static const char ellipsis[] = "...";
	const unsigned char *s = (const unsigned char *)src;
	size_t pos = 0, i = 0, limit;
	char tmp[8];
	size_t n;

	if (dstsz == 0)
		return dst;
	if (dstsz <= sizeof(ellipsis)) {
		dst[0] = '\0';
		return dst;
	}
	/* Keep room for the ellipsis and the NUL. */
	limit = dstsz - sizeof(ellipsis);
	while (i < srclen) {
		unsigned char c = s[i];
		size_t seq;

		if (c >= 0x80 && (seq = utf8_sequence_len(s + i, srclen - i)) > 0) {
			uint32_t cp = utf8_decode(s + i, seq);

			if (cp >= 0x80 && cp <= 0x9f) {
				n = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x",
				    (unsigned)cp);
				if (!put(dst, &pos, limit, tmp, n))
					break;
			} else if (!put(dst, &pos, limit, src + i, seq))
				break;
			i += seq;
			continue;
		}
		if (c == '\\' || c == '"') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			n = 2;
		} else if (c == '\n') {
			memcpy(tmp, "\\n", 2);
			n = 2;
		} else if (c == '\t') {
			memcpy(tmp, "\\t", 2);
			n = 2;
		} else if (c == '\r') {
			memcpy(tmp, "\\r", 2);
			n = 2;
		} else if (c < 0x20 || c >= 0x7f) {
			n = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02x", c);
		} else {
			tmp[0] = (char)c;
			n = 1;
		}
		if (!put(dst, &pos, limit, tmp, n))
			break;
		i++;
	}
	if (i < srclen) {
		memcpy(dst + pos, ellipsis, sizeof(ellipsis) - 1);
		pos += sizeof(ellipsis) - 1;
	}
	dst[pos] = '\0';
	return dst;
}

const char *
log_q(const char *s)
{
	static char ring[8][LOG_Q_MAX + 1];
	static unsigned int next;
	char *buf = ring[next++ % 8];

	if (s == NULL)
		return "(null)";
	return log_escape(buf, sizeof(ring[0]), s, strlen(s));
}
