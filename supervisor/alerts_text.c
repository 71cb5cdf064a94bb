/*
 * The pure parts of alerts (see alerts.h): the kinds' names, the rate
 * threshold, the mail's retry delays, cleaning text from the database for
 * a header or a line, the recipients, and the RFC 5322 message.  Nothing
 * here does I/O, so tests/unit/test_alerts.c links this file alone.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"

#include "supervisor/alerts.h"

static const char *const kind_names[] = {
	[ALERT_CONSECUTIVE_FAILURES] = "consecutive_failures",
	[ALERT_FAILURE_RATE] = "failure_rate",
	[ALERT_SLOW_SYNC] = "slow_sync",
	[ALERT_STALE] = "stale",
	[ALERT_CLINIC_HELD] = "clinic_held",
	[ALERT_AUDIT_SPOOL_FULL] = "audit_spool_full",
	[ALERT_AUDIT_REFUSED] = "audit_refused",
};

const char *
alerts_kind_name(enum alert_kind k)
{
	if ((size_t)k < sizeof(kind_names) / sizeof(*kind_names))
		return kind_names[k];
	return "unknown";
}

bool
alerts_kind_parse(const char *s, enum alert_kind *ret)
{
	for (size_t i = 0; i < sizeof(kind_names) / sizeof(*kind_names); i++)
		if (strcmp(s, kind_names[i]) == 0) {
			*ret = (enum alert_kind)i;
			return true;
		}
	return false;
}

bool
alerts_rate_exceeded(uint64_t failed, uint64_t total, uint64_t rate_micro,
    uint64_t min_total)
{
	if (total == 0 || total < min_total || failed > total)
		return false;
	return failed * 1000000 > rate_micro * total;
}

uint64_t
alerts_retry_ms(unsigned attempt)
{
	uint64_t d = ALERTS_RETRY_MIN_MS;

	for (unsigned i = 1; i < attempt && d < ALERTS_RETRY_MAX_MS; i++)
		d *= 2;
	return d < ALERTS_RETRY_MAX_MS ? d : ALERTS_RETRY_MAX_MS;
}

void
alerts_clean(const char *s, size_t max, bool ascii, char *out, size_t size)
{
	size_t o = 0, n;
	const unsigned char *p = (const unsigned char *)s;

	if (size == 0)
		return;
	if (max > size - 1)
		max = size - 1;
	while (*p != '\0') {
		/* The length of this UTF-8 sequence, by its lead byte. */
		n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 :
		    (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 1;
		for (size_t i = 1; i < n; i++)
			if ((p[i] & 0xc0) != 0x80) {
				n = 1;
				break;
			}
		if (*p < 0x20 || *p == 0x7f) {
			p++;
			continue;
		}
		if (*p >= 0x80 && (ascii || n == 1)) {
			/* Not ASCII (or not UTF-8): one '?' for it. */
			if (o + 1 > max)
				break;
			out[o++] = '?';
			p += n;
			continue;
		}
		if (o + n > max)
			break;
		memcpy(out + o, p, n);
		o += n;
		p += n;
	}
	out[o] = '\0';
}

int
alerts_split_rcpt(const char *to, char *scratch, size_t scratchsz,
    const char **out, size_t max)
{
	char *p, *next, *e;
	size_t n = 0;

	if (strlen(to) >= scratchsz)
		return -EINVAL;
	memcpy(scratch, to, strlen(to) + 1);
	for (p = scratch; p != NULL; p = next) {
		if ((next = strchr(p, ',')) != NULL)
			*next++ = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		e = p + strlen(p);
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (*p == '\0' || n == max)
			return -EINVAL;
		out[n++] = p;
	}
	return (int)n;
}

static bool
has_crlf(const char *s)
{
	return s != NULL && strpbrk(s, "\r\n") != NULL;
}

int
alerts_format(const struct alert_mail_text *m, struct buf *out)
{
	char date[64];
	const char *domain, *p;
	struct tm tm;
	time_t t = (time_t)(m->wall_ms / 1000);
	int r = 0;

	buf_reset(out);
	if (has_crlf(m->from) || has_crlf(m->to) || has_crlf(m->subject) ||
	    has_crlf(m->key))
		return -EINVAL;
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000",
	    &tm) == 0)
		return -EINVAL;
	domain = strrchr(m->from, '@');
	domain = domain != NULL && domain[1] != '\0' ? domain + 1 : "vetsync";
	r |= buf_printf(out, "Date: %s\r\nFrom: vetsync <%s>\r\nTo: %s\r\n"
	    "Subject: %s\r\nMessage-ID: <alert.%016" PRIx64 ".%" PRId64
	    "@%s>\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"
	    "Auto-Submitted: auto-generated\r\nX-Vetsync-Alert: %s\r\n\r\n",
	    date, m->from, m->to, m->subject, m->unique, m->wall_ms, domain,
	    m->key);
	for (p = m->body; *p != '\0'; ) {
		size_t n = strcspn(p, "\r\n");

		r |= buf_append(out, p, n);
		r |= buf_puts(out, "\r\n");
		p += n;
		if (*p == '\r')
			p++;
		if (*p == '\n')
			p++;
	}
	return r < 0 ? -ENOMEM : 0;
}
