/*
 * Diagnostics for vetsyncd, vetsyncctl and vetsync-worker.
 *
 * Lines go to stderr.  When systemd started us (JOURNAL_STREAM is set and
 * names our stderr) each line carries a "<N>" syslog priority prefix that
 * journald understands; otherwise lines are plain and carry a timestamp.
 * Structured context is written as key=value words at the start of the
 * message ("clinic=17 job=42: ...").
 *
 * Text that came from a clinic or the network must pass through log_q()
 * before it reaches a format string: it escapes control characters, quotes,
 * backslashes and invalid UTF-8, and bounds the length.
 *
 * Audit records are not diagnostics: they go through the supervisor's audit
 * writer, never through here.  Secrets are never passed to these functions.
 */
#ifndef VS_COMMON_LOG_H
#define VS_COMMON_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

/* Longest escaped string log_q() returns, excluding the NUL. */
#define LOG_Q_MAX 256

/*
 * Set the program name and verbosity.  Looks at JOURNAL_STREAM to choose the
 * journald format.  May be called again (after a reload, for example).
 */
void log_init(const char *progname, enum log_level max_level);
void log_set_level(enum log_level max_level);
enum log_level log_get_level(void);
bool log_is_journal(void);

void log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void log_vlog(enum log_level, const char *, va_list)
    __attribute__((format(printf, 2, 0)));
void fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

/*
 * Escape untrusted text into dst (always NUL-terminated, at most dstsz - 1
 * bytes).  Valid printable UTF-8 is kept; control characters, DEL, C1
 * controls, '"' and '\\' become C escapes; bytes of invalid UTF-8 become
 * \xNN.  When the input does not fit, the output ends in "...".  Returns dst.
 */
char *log_escape(char *dst, size_t dstsz, const char *src, size_t srclen);

/*
 * Escape a NUL-terminated string into one of a small ring of static buffers
 * (LOG_Q_MAX bytes); NULL becomes "(null)".  Up to eight results may be used
 * in one call.  Not thread-safe: vetsync logs from one thread.
 */
const char *log_q(const char *s);

#endif
