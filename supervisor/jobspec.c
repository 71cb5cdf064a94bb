/*
 * The Job message (see jobspec.h).  Time-zone arithmetic uses the C
 * library with TZ switched for the call: the supervisor is one thread, and
 * this keeps DST rules exactly those of the system's zoneinfo.
 */
#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "proto/frame.h"

#include "supervisor/config.h"
#include "supervisor/jobspec.h"
#include "supervisor/supervisor.h"
#include "supervisor/vault.h"

/* Run localtime_r/mktime in zone tz. */
static char *saved_tz;

static void
tz_enter(const char *tz)
{
	const char *cur = getenv("TZ");

	free(saved_tz);
	saved_tz = cur != NULL ? xstrdup(cur) : NULL;
	setenv("TZ", tz, 1);
	tzset();
}

static void
tz_leave(void)
{
	if (saved_tz != NULL)
		setenv("TZ", saved_tz, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved_tz);
	saved_tz = NULL;
}

int
jobspec_local_time(const char *tz, int64_t t, char *buf, size_t bufsz)
{
	time_t tt = (time_t)t;
	struct tm tm;

	tz_enter(tz);
	localtime_r(&tt, &tm);
	tz_leave();
	if (strftime(buf, bufsz, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		return -EINVAL;
	return 0;
}

/* The local calendar day after t's, as "YYYY-MM-DD". */
static int
next_local_day(const char *tz, int64_t t, char *buf, size_t bufsz)
{
	time_t tt = (time_t)t;
	struct tm tm;

	tz_enter(tz);
	localtime_r(&tt, &tm);
	/* Noon is never skipped or repeated by a DST change. */
	tm.tm_mday += 1;
	tm.tm_hour = 12;
	tm.tm_min = tm.tm_sec = 0;
	tm.tm_isdst = -1;
	tt = mktime(&tm);
	localtime_r(&tt, &tm);
	tz_leave();
	if (strftime(buf, bufsz, "%Y-%m-%d", &tm) == 0)
		return -EINVAL;
	return 0;
}

/* Operators' windows of jobs not yet sent: few, short-lived. */
struct window {
	uint64_t job;
	char start[JOBSPEC_WINDOW_LEN], end[JOBSPEC_WINDOW_LEN];
	struct window *next;
};
static struct window *windows;

static int
parse_day(const char *s, struct tm *tm)
{
	const char *end;

	memset(tm, 0, sizeof(*tm));
	if (strlen(s) != 10 || (end = strptime(s, "%Y-%m-%d", tm)) == NULL ||
	    *end != '\0')
		return -EINVAL;
	tm->tm_hour = 12;
	return 0;
}

int
jobspec_window_parse(const char *from, const char *to,
    char start[JOBSPEC_WINDOW_LEN], char end[JOBSPEC_WINDOW_LEN], char *err,
    size_t errsz)
{
	struct tm a, b, na, nb;
	time_t ta, tb;

	if (parse_day(from, &a) < 0 || parse_day(to, &b) < 0) {
		snprintf(err, errsz, "window '%s'..'%s': dates are YYYY-MM-DD",
		    log_q(from), log_q(to));
		return -EINVAL;
	}
	/* timegm() normalises 2026-02-30: a date that changed was wrong. */
	na = a;
	nb = b;
	ta = timegm(&na);
	tb = timegm(&nb);
	if (na.tm_mday != a.tm_mday || nb.tm_mday != b.tm_mday) {
		snprintf(err, errsz, "window '%s'..'%s': no such date", from,
		    to);
		return -EINVAL;
	}
	if (tb < ta) {
		snprintf(err, errsz, "window '%s'..'%s': --from is after --to",
		    from, to);
		return -EINVAL;
	}
	if ((tb - ta) / 86400 + 1 > JOBSPEC_WINDOW_DAYS_MAX) {
		snprintf(err, errsz, "window '%s'..'%s': %lld days, over the "
		    "%d-day limit", from, to,
		    (long long)((tb - ta) / 86400 + 1), JOBSPEC_WINDOW_DAYS_MAX);
		return -EINVAL;
	}
	snprintf(start, JOBSPEC_WINDOW_LEN, "%s 00:00:00", from);
	snprintf(end, JOBSPEC_WINDOW_LEN, "%s 23:59:59", to);
	return 0;
}

void
jobspec_window_set(uint64_t job_id, const char *start, const char *end)
{
	struct window *w = xcalloc(1, sizeof(*w));

	jobspec_window_drop(job_id);
	w->job = job_id;
	snprintf(w->start, sizeof(w->start), "%s", start);
	snprintf(w->end, sizeof(w->end), "%s", end);
	w->next = windows;
	windows = w;
}

void
jobspec_window_drop(uint64_t job_id)
{
	struct window **pp, *w;

	for (pp = &windows; (w = *pp) != NULL; pp = &w->next)
		if (w->job == job_id) {
			*pp = w->next;
			free(w);
			return;
		}
}

static const struct window *
window_find(uint64_t job_id)
{
	for (const struct window *w = windows; w != NULL; w = w->next)
		if (w->job == job_id)
			return w;
	return NULL;
}

int
jobspec_url_host_port(const char *url, char *host, size_t hostsz,
    unsigned *ret_port)
{
	const char *p, *end, *colon = NULL;
	unsigned port;
	size_t n;

	if (strncmp(url, "https://", 8) == 0) {
		p = url + 8;
		port = 443;
	} else if (strncmp(url, "http://", 7) == 0) {
		p = url + 7;
		port = 80;
	} else
		return -EINVAL;
	end = p + strcspn(p, "/?#");
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));

		if (rb == NULL)
			return -EINVAL;
		n = (size_t)(rb - p - 1);
		if (n == 0 || n >= hostsz)
			return -EINVAL;
		memcpy(host, p + 1, n);
		host[n] = '\0';
		if (rb + 1 < end) {
			if (rb[1] != ':')
				return -EINVAL;
			colon = rb + 1;
		}
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		n = (size_t)((colon != NULL ? colon : end) - p);
		if (n == 0 || n >= hostsz)
			return -EINVAL;
		memcpy(host, p, n);
		host[n] = '\0';
	}
	if (colon != NULL) {
		char *e;
		unsigned long v = strtoul(colon + 1, &e, 10);

		if (e != end || v == 0 || v > 65535)
			return -EINVAL;
		port = (unsigned)v;
	}
	*ret_port = port;
	return 0;
}

/*
 * The worker never resolves names: resolve here and pin the address.
 * Literal addresses need no lookup.  getaddrinfo() blocks the loop, so the
 * answer for the (one) IDEXX host is kept for RESOLVE_TTL_MS: at most one
 * lookup a minute, however many clinics start.
 */
#define RESOLVE_TTL_MS (60 * 1000)

static struct {
	char host[256];
	char ip[64];
	uint64_t expires_ms;
} resolved;

static int
resolve_host(const char *host, char *ip, size_t ipsz, char *err, size_t errsz)
{
	struct addrinfo hints, *res = NULL;
	int r;

	if (strcmp(resolved.host, host) == 0 &&
	    clock_mono_ms() < resolved.expires_ms) {
		snprintf(ip, ipsz, "%s", resolved.ip);
		return 0;
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((r = getaddrinfo(host, NULL, &hints, &res)) != 0) {
		snprintf(err, errsz, "cannot resolve IDEXX host '%s': %s",
		    log_q(host), gai_strerror(r));
		return -EHOSTUNREACH;
	}
	if (res->ai_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->
		    sin_addr, ip, (socklen_t)ipsz);
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->
		    sin6_addr, ip, (socklen_t)ipsz);
	freeaddrinfo(res);
	snprintf(resolved.host, sizeof(resolved.host), "%s", host);
	snprintf(resolved.ip, sizeof(resolved.ip), "%s", ip);
	resolved.expires_ms = clock_mono_ms() + RESOLVE_TTL_MS;
	return 0;
}

static Vetsync__JobKind
job_kind_wire(enum worker_job_kind kind)
{
	switch (kind) {
	case WORKER_JOB_RECONCILE_NOTES:
		return VETSYNC__JOB_KIND__RECONCILE_NOTES;
	case WORKER_JOB_SYNC_SCHEDULE:
		return VETSYNC__JOB_KIND__SYNC_SCHEDULE;
	case WORKER_JOB_VALIDATE_CREDENTIALS:
		break;
	}
	return VETSYNC__JOB_KIND__VALIDATE_CREDENTIALS;
}

int
jobspec_encode(const struct worker_job *job, uint8_t **ret_buf,
    size_t *ret_len, char *err, size_t errsz)
{
	const struct config *cf = sv->config;
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Job j = VETSYNC__JOB__INIT;
	Vetsync__PinnedAddress pin = VETSYNC__PINNED_ADDRESS__INIT;
	Vetsync__Credentials cr = VETSYNC__CREDENTIALS__INIT;
	Vetsync__JobLimits lim = VETSYNC__JOB_LIMITS__INIT;
	const struct window *win;
	struct vault_creds creds;
	char host[256], ip[64], start[32], end[32], day[16];
	unsigned port;
	int64_t now = (int64_t)time(NULL);
	int r;

	memset(&creds, 0, sizeof(creds));
	if (jobspec_url_host_port(cf->idexx.base_url, host, sizeof(host),
	    &port) < 0) {
		snprintf(err, errsz, "idexx.base_url: cannot parse");
		return -EINVAL;
	}
	if ((r = resolve_host(host, ip, sizeof(ip), err, errsz)) < 0)
		return r;
	if (sv->profile_text == NULL) {
		snprintf(err, errsz, "no site profile loaded");
		return -EINVAL;
	}

	j.job_id = job->id;
	j.has_job_id = 1;
	j.kind = job_kind_wire(job->kind);
	j.has_kind = 1;
	j.clinic_id = (char *)job->clinic;
	j.base_url = cf->idexx.base_url;
	pin.host = host;
	pin.port = port;
	pin.has_port = 1;
	pin.ip = ip;
	j.pinned = &pin;
	j.site_profile = sv->profile_text;
	j.time_zone = (char *)job->timezone;
	if ((win = window_find(job->id)) != NULL &&
	    job->kind != WORKER_JOB_VALIDATE_CREDENTIALS) {
		/* An operator's window, as asked. */
		j.window_start = (char *)win->start;
		j.window_end = (char *)win->end;
	} else if (job->kind == WORKER_JOB_RECONCILE_NOTES) {
		if (jobspec_local_time(job->timezone,
		    now - (int64_t)(cf->idexx.window_ms / 1000), start,
		    sizeof(start)) < 0 ||
		    jobspec_local_time(job->timezone, now, end,
		    sizeof(end)) < 0)
			goto bad_tz;
		j.window_start = start;
		j.window_end = end;
	} else if (job->kind == WORKER_JOB_SYNC_SCHEDULE) {
		if (next_local_day(job->timezone, now, day, sizeof(day)) < 0)
			goto bad_tz;
		snprintf(start, sizeof(start), "%s 00:00:00", day);
		snprintf(end, sizeof(end), "%s 23:59:59", day);
		j.window_start = start;
		j.window_end = end;
	}
	lim.max_parallel = cf->idexx.max_parallel;
	lim.has_max_parallel = 1;
	lim.request_rate = cf->idexx.request_rate;
	lim.has_request_rate = 1;
	lim.response_max = cf->idexx.response_max;
	lim.has_response_max = 1;
	lim.request_timeout_ms = (uint32_t)cf->idexx.request_timeout_ms;
	lim.has_request_timeout_ms = 1;
	lim.job_timeout_ms = (uint32_t)cf->workers.job_timeout_ms;
	lim.has_job_timeout_ms = 1;
	j.limits = &lim;
	j.ca_bundle = cf->idexx.ca_bundle;

	if (job->creds != NULL)
		memset(&creds, 0, sizeof(creds));	/* nothing to release */
	else if ((r = vault_get(job->clinic, job->id,
	    job->kind == WORKER_JOB_VALIDATE_CREDENTIALS ? "validation" :
	    "sync job", &creds, err, errsz)) < 0)
		return r;
	cr.username = (char *)(job->creds != NULL ? job->creds->username :
	    creds.username);
	cr.password = (char *)(job->creds != NULL ? job->creds->password :
	    creds.password);
	cr.company_id = (char *)(job->creds != NULL ? job->creds->company_id :
	    creds.company_id);
	j.credentials = &cr;

	env.msg_case = VETSYNC__ENVELOPE__MSG_JOB;
	env.job = &j;
	r = frame_encode(&env, ret_buf, ret_len);
	if (r < 0)
		snprintf(err, errsz, "the job does not fit the wire contract "
		    "(%s)", strerror(-r));
	vault_creds_release(&creds);
	return r;
bad_tz:
	snprintf(err, errsz, "unknown time zone '%s'", log_q(job->timezone));
	return -EINVAL;
}
