/*
 * One job, inside the sandbox: parse the site profile the Job carries,
 * run the flow its kind names (worker/client.c), and stream what the flow
 * finds to the supervisor as it arrives -- Progress, Event, Appointment,
 * Consultation, UiFingerprint, and on failure a redacted Snapshot --
 * ending with exactly one JobResult.
 *
 * Every message is made to fit the wire's limits before it is sent (see
 * proto/frame_limits.h): an optional string that is not valid UTF-8 is
 * dropped, one too long is cut at a character boundary, and a record whose
 * required id does not fit is skipped with a warning.  One odd field never
 * costs the job.
 *
 * Times: IDEXX's are clinic-local.  The worker switches TZ to the Job's
 * zone (its process, one job at a time) and converts each with mktime()
 * (tm_isdst = -1, so DST is the zone's business); that reads
 * /usr/share/zoneinfo, which Landlock allows for this reason alone.
 *
 * While the flow runs, the channel is polled with the transfers: a Cancel
 * of this job stops it (CANCELLED); Shutdown or the supervisor's close
 * stops it too, and job_run() then returns -EPIPE so that the worker exits.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/utf8.h"
#include "common/xmalloc.h"

#include "proto/frame.h"

#include "worker/client.h"
#include "worker/idexx.h"
#include "worker/job.h"
#include "worker/profile.h"
#include "worker/redact.h"

#define JOB_STRS_MAX	64		/* copies one message may need */
#define JOB_UTC_LEN	21		/* "YYYY-MM-DDTHH:MM:SSZ" + NUL */

struct job_ctx {
	int fd;
	const Vetsync__Job *job;
	uint64_t job_id;
	bool tz_ok;
	int stop;			/* -EPIPE or -EPROTO from the channel */
	int send_err;
	char *strs[JOB_STRS_MAX];	/* copies made for the message */
	size_t n_strs;
};

/* ---- strings that fit ------------------------------------------------ */

static void
job_strs_free(struct job_ctx *j)
{
	size_t i;

	for (i = 0; i < j->n_strs; i++)
		free(j->strs[i]);
	j->n_strs = 0;
}

/*
 * s as the wire takes it: NULL when absent or not valid UTF-8, else s or a
 * copy cut to max bytes at a character boundary (freed by job_strs_free).
 */
static char *
job_str(struct job_ctx *j, const char *s, size_t max)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t len, i = 0, n;
	char *copy;

	if (s == NULL)
		return NULL;
	len = strlen(s);
	if (!utf8_valid(s, len))
		return NULL;
	if (len <= max)
		return (char *)s;
	if (j->n_strs == JOB_STRS_MAX)
		return NULL;
	while (i < len && (n = utf8_sequence_len(u + i, len - i)) != 0 &&
	    i + n <= max)
		i += n;
	copy = xstrndup(s, i);
	j->strs[j->n_strs++] = copy;
	return copy;
}

/* A required id: the string itself or NULL when it cannot be sent. */
static char *
job_id(const char *s)
{
	size_t len;

	if (s == NULL || (len = strlen(s)) == 0 || len > FRAME_ID_MAX ||
	    !utf8_valid(s, len))
		return NULL;
	return (char *)s;
}

/* ---- time ------------------------------------------------------------ */

static bool
job_digits(const char *s, size_t n, int *ret)
{
	int v = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*ret = v;
	return true;
}

/*
 * "YYYY-MM-DD HH:MM[:SS][.fff][Z|+HH:MM]" (or with 'T') in the clinic's
 * zone, unless it names its own offset, to "YYYY-MM-DDTHH:MM:SSZ".
 */
static bool
job_utc(const struct job_ctx *j, const char *s, char out[JOB_UTC_LEN])
{
	struct tm tm;
	const char *p;
	int y, mo, d, h, mi, sec = 0, oh, om, sign = 0;
	time_t t;

	if (s == NULL || strlen(s) < 16 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != ' ' && s[10] != 'T') || s[13] != ':')
		return false;
	if (!job_digits(s, 4, &y) || !job_digits(s + 5, 2, &mo) ||
	    !job_digits(s + 8, 2, &d) || !job_digits(s + 11, 2, &h) ||
	    !job_digits(s + 14, 2, &mi))
		return false;
	p = s + 16;
	if (*p == ':') {
		if (!job_digits(p + 1, 2, &sec))
			return false;
		p += 3;
	}
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if (*p == 'Z') {
		sign = 1;
		oh = om = 0;
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (!job_digits(p + 1, 2, &oh))
			return false;
		p += 3;
		if (*p == ':')
			p++;
		if (!job_digits(p, 2, &om))
			return false;
		p += 2;
	}
	if (*p != '\0' || y < 1970 || y > 9999 || mo < 1 || mo > 12 ||
	    d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return false;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	tm.tm_isdst = -1;
	if (sign != 0) {
		if (oh > 23 || om > 59)
			return false;
		t = timegm(&tm) - sign * (oh * 3600 + om * 60);
	} else {
		if (!j->tz_ok)
			return false;
		t = mktime(&tm);
	}
	if (t == (time_t)-1 || gmtime_r(&t, &tm) == NULL)
		return false;
	return strftime(out, JOB_UTC_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) ==
	    JOB_UTC_LEN - 1;
}

/* Switch the process to the clinic's zone, if it names one we have. */
static bool
job_tz(const char *tz)
{
	char path[128];
	FILE *f;
	size_t i;

	if (tz == NULL || tz[0] == '\0' || tz[0] == '/' ||
	    strstr(tz, "..") != NULL || strlen(tz) > 64)
		return false;
	for (i = 0; tz[i] != '\0'; i++)
		if (!((tz[i] >= 'a' && tz[i] <= 'z') ||
		    (tz[i] >= 'A' && tz[i] <= 'Z') ||
		    (tz[i] >= '0' && tz[i] <= '9') || tz[i] == '/' ||
		    tz[i] == '_' || tz[i] == '-' || tz[i] == '+'))
			return false;
	/* glibc quietly takes an unknown zone for UTC: check it is there. */
	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", tz);
	if ((f = fopen(path, "re")) == NULL)
		return false;
	fclose(f);
	if (setenv("TZ", tz, 1) != 0)
		return false;
	tzset();
	return true;
}

/* ---- sending --------------------------------------------------------- */

static int
job_send(struct job_ctx *j, Vetsync__Envelope *env, const char *what)
{
	char err[FRAME_ERR_MAX];
	int r;

	if (j->send_err != 0)
		return j->send_err;
	r = frame_send(j->fd, env);
	if (r == -EPROTO) {
		/* Ours to fix, never the job's end: say which field. */
		frame_validate(env, err, sizeof(err));
		log_warnx("job %llu: %s not sent: %s",
		    (unsigned long long)j->job_id, what, err);
		r = 0;
	} else if (r != 0)
		j->send_err = r;
	job_strs_free(j);
	return r;
}

static int
job_progress(void *arg, enum client_stage st, uint32_t done, uint32_t total)
{
	static const Vetsync__Stage stages[] = {
		[CLIENT_STAGE_LOGGING_IN] = VETSYNC__STAGE__LOGGING_IN,
		[CLIENT_STAGE_CALENDAR] = VETSYNC__STAGE__FETCHING_CALENDAR,
		[CLIENT_STAGE_CONSULTATIONS] =
		    VETSYNC__STAGE__FETCHING_CONSULTATIONS,
		[CLIENT_STAGE_LOGGING_OUT] = VETSYNC__STAGE__LOGGING_OUT,
	};
	struct job_ctx *j = arg;
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Progress m = VETSYNC__PROGRESS__INIT;

	m.has_job_id = m.has_stage = m.has_done = m.has_total = 1;
	m.job_id = j->job_id;
	m.stage = stages[st];
	m.done = done;
	m.total = total;
	env.msg_case = VETSYNC__ENVELOPE__MSG_PROGRESS;
	env.progress = &m;
	return job_send(j, &env, "progress");
}

static int
job_event(void *arg, enum client_event ev, const char *detail)
{
	static const Vetsync__EventKind kinds[] = {
		[CLIENT_EVENT_LOGIN_OK] = VETSYNC__EVENT_KIND__LOGIN_OK,
		[CLIENT_EVENT_LOGIN_FAILED] = VETSYNC__EVENT_KIND__LOGIN_FAILED,
		[CLIENT_EVENT_SESSION_EXPIRED] =
		    VETSYNC__EVENT_KIND__SESSION_EXPIRED,
		[CLIENT_EVENT_SESSION_RENEWED] =
		    VETSYNC__EVENT_KIND__SESSION_RENEWED,
		[CLIENT_EVENT_RATE_LIMITED] = VETSYNC__EVENT_KIND__RATE_LIMITED,
		[CLIENT_EVENT_LOGGED_OUT] = VETSYNC__EVENT_KIND__LOGGED_OUT,
	};
	struct job_ctx *j = arg;
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Event m = VETSYNC__EVENT__INIT;

	m.has_job_id = m.has_kind = 1;
	m.job_id = j->job_id;
	m.kind = kinds[ev];
	m.detail = job_str(j, detail, FRAME_LINE_MAX);
	env.msg_case = VETSYNC__ENVELOPE__MSG_EVENT;
	env.event = &m;
	return job_send(j, &env, "event");
}

static Vetsync__Patient *
job_patient(struct job_ctx *j, Vetsync__Patient *m, const char *id,
    const char *name, const char *species, const char *breed)
{
	if ((m->id = job_id(id)) == NULL)
		return NULL;
	m->name = job_str(j, name, FRAME_NAME_MAX);
	m->species = job_str(j, species, FRAME_NAME_MAX);
	m->breed = job_str(j, breed, FRAME_NAME_MAX);
	return m;
}

static Vetsync__Client *
job_client(struct job_ctx *j, Vetsync__Client *m, const char *id,
    const char *first, const char *last, const char *phone,
    const char *email)
{
	if ((m->id = job_id(id)) == NULL)
		return NULL;
	m->first_name = job_str(j, first, FRAME_NAME_MAX);
	m->last_name = job_str(j, last, FRAME_NAME_MAX);
	m->phone = job_str(j, phone, FRAME_NAME_MAX);
	m->email = job_str(j, email, FRAME_NAME_MAX);
	return m;
}

static int
job_appointment(void *arg, const struct idexx_appt *a)
{
	struct job_ctx *j = arg;
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Appointment m = VETSYNC__APPOINTMENT__INIT;
	Vetsync__Patient pat = VETSYNC__PATIENT__INIT;
	Vetsync__Client cli = VETSYNC__CLIENT__INIT;
	char start[JOB_UTC_LEN], end[JOB_UTC_LEN];

	m.has_job_id = 1;
	m.job_id = j->job_id;
	if ((m.appointment_id = job_id(a->id)) == NULL) {
		log_warnx("job %llu: an appointment without a usable id "
		    "skipped", (unsigned long long)j->job_id);
		return 0;
	}
	m.consultation_id = job_id(a->consultation_id);
	m.start = job_str(j, a->start, FRAME_SHORT_MAX);
	m.end = job_str(j, a->end, FRAME_SHORT_MAX);
	m.patient = job_patient(j, &pat, a->patient_id, a->patient_name,
	    NULL, NULL);
	m.client = job_client(j, &cli, a->client_id, a->first_name,
	    a->last_name, a->phone, a->email);
	m.provider = job_str(j, a->provider, FRAME_NAME_MAX);
	m.resource_id = job_id(a->resource_id);
	m.type_description = job_str(j, a->type_description, FRAME_NAME_MAX);
	m.reason = job_str(j, a->reason, FRAME_LINE_MAX);
	m.status = job_str(j, a->status, FRAME_NAME_MAX);
	m.has_cancelled = 1;
	m.cancelled = a->cancelled;
	if (job_utc(j, a->start, start))
		m.start_utc = start;
	if (job_utc(j, a->end, end))
		m.end_utc = end;
	env.msg_case = VETSYNC__ENVELOPE__MSG_APPOINTMENT;
	env.appointment = &m;
	return job_send(j, &env, "appointment");
}

static int
job_consultation(void *arg, const struct idexx_consult *k)
{
	struct job_ctx *j = arg;
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Consultation m = VETSYNC__CONSULTATION__INIT;
	Vetsync__Patient pat = VETSYNC__PATIENT__INIT;
	Vetsync__Client cli = VETSYNC__CLIENT__INIT;
	Vetsync__ConsultationLine *lines = NULL, **lp = NULL;
	char date[JOB_UTC_LEN];
	size_t i, n = 0;
	int r;

	m.has_job_id = 1;
	m.job_id = j->job_id;
	if ((m.consultation_id = job_id(k->id)) == NULL) {
		log_warnx("job %llu: a consultation without a usable id "
		    "skipped", (unsigned long long)j->job_id);
		return 0;
	}
	m.appointment_id = job_id(k->appointment_id);
	m.date = job_str(j, k->date, FRAME_SHORT_MAX);
	m.status = job_str(j, k->status, FRAME_NAME_MAX);
	m.reason = job_str(j, k->reason, FRAME_LINE_MAX);
	m.notes = job_str(j, k->notes, FRAME_TEXT_MAX);
	m.discharge_summary = job_str(j, k->discharge_summary,
	    FRAME_TEXT_MAX);
	m.provider = job_str(j, k->provider, FRAME_NAME_MAX);
	m.patient = job_patient(j, &pat, k->patient_id, k->patient_name,
	    k->species, k->breed);
	m.client = job_client(j, &cli, k->client_id, k->first_name,
	    k->last_name, k->phone, k->email);
	if (job_utc(j, k->date, date))
		m.date_utc = date;
	if (k->n_lines > 0) {
		size_t max = k->n_lines < FRAME_LINES_MAX ? k->n_lines :
		    FRAME_LINES_MAX;

		lines = xcalloc(max, sizeof(*lines));
		lp = xcalloc(max, sizeof(*lp));
		for (i = 0; i < k->n_lines && n < max; i++) {
			Vetsync__ConsultationLine *l = &lines[n];
			const char *name = k->lines[i].name;

			vetsync__consultation_line__init(l);
			if (name == NULL || name[0] == '\0' ||
			    (l->name = job_str(j, name, FRAME_NAME_MAX)) ==
			    NULL || l->name[0] == '\0')
				continue;
			l->quantity = job_str(j, k->lines[i].quantity,
			    FRAME_SHORT_MAX);
			l->has_declined = 1;
			l->declined = k->lines[i].declined;
			lp[n++] = l;
		}
		m.n_lines = n;
		m.lines = lp;
	}
	env.msg_case = VETSYNC__ENVELOPE__MSG_CONSULTATION;
	env.consultation = &m;
	r = job_send(j, &env, "consultation");
	free(lines);
	free(lp);
	return r;
}

static int
job_fingerprint(void *arg, const char *kind, const char *sha256,
    const char *summary)
{
	struct job_ctx *j = arg;
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__UiFingerprint m = VETSYNC__UI_FINGERPRINT__INIT;

	m.has_job_id = 1;
	m.job_id = j->job_id;
	m.response_kind = (char *)kind;
	m.sha256 = (char *)sha256;
	m.summary = job_str(j, summary, FRAME_LINE_MAX);
	env.msg_case = VETSYNC__ENVELOPE__MSG_UI_FINGERPRINT;
	env.ui_fingerprint = &m;
	return job_send(j, &env, "ui fingerprint");
}

static int
job_snapshot(void *arg, const struct client_snapshot *s)
{
	struct job_ctx *j = arg;
	const Vetsync__Credentials *cr = j->job->credentials;
	const char *secrets[3] = { cr->username, cr->password, NULL };
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Snapshot m = VETSYNC__SNAPSHOT__INIT;
	struct buf body;
	bool cut = false;
	int r;

	buf_init(&body, 0);
	if (s->len > 0 && redact_snapshot(s->body, s->len,
	    FRAME_SNAPSHOT_MAX, secrets, &body, &cut) != 0) {
		buf_release(&body);
		buf_puts(&body, "[the response could not be redacted]");
		cut = true;
	}
	m.has_job_id = 1;
	m.job_id = j->job_id;
	m.reason = job_str(j, s->reason, FRAME_LINE_MAX);
	if (m.reason == NULL || m.reason[0] == '\0')
		m.reason = (char *)"failure";
	m.url_path = job_str(j, s->path, FRAME_URL_MAX);
	if (s->status >= 100 && s->status <= 599) {
		m.has_http_status = 1;
		m.http_status = (uint32_t)s->status;
	}
	m.content_type = job_str(j, s->content_type, FRAME_NAME_MAX);
	if (body.len > 0) {
		m.has_body = 1;
		m.body.data = (uint8_t *)body.data;
		m.body.len = body.len < FRAME_SNAPSHOT_MAX ? body.len :
		    FRAME_SNAPSHOT_MAX;
	}
	m.has_truncated = 1;
	m.truncated = cut;
	env.msg_case = VETSYNC__ENVELOPE__MSG_SNAPSHOT;
	env.snapshot = &m;
	r = job_send(j, &env, "snapshot");
	buf_release(&body);
	return r;
}

/*
 * The channel is readable while the flow runs.  True stops the flow:
 * a Cancel of this job, Shutdown, the supervisor gone, or a frame that
 * has no business arriving now.
 */
static bool
job_watch(void *arg)
{
	struct job_ctx *j = arg;
	Vetsync__Envelope *env = NULL;
	char err[FRAME_ERR_MAX];
	bool stop = true;
	int r;

	r = frame_recv(j->fd, &env, err, sizeof(err));
	if (r == -EAGAIN || r == -EINTR)
		return false;
	if (r == -EPIPE) {
		j->stop = -EPIPE;
		return true;
	}
	if (r != 0) {
		log_warnx("channel: %s", err);
		j->stop = -EPROTO;
		return true;
	}
	switch (env->msg_case) {
	case VETSYNC__ENVELOPE__MSG_CANCEL:
		stop = env->cancel->job_id == j->job_id;
		if (!stop)
			log_debug("cancel of job %llu: not running",
			    (unsigned long long)env->cancel->job_id);
		break;
	case VETSYNC__ENVELOPE__MSG_SHUTDOWN:
		j->stop = -EPIPE;
		break;
	default:
		log_warnx("channel: unexpected %s while job %llu runs",
		    frame_kind_name(env->msg_case),
		    (unsigned long long)j->job_id);
		j->stop = -EPROTO;
		break;
	}
	frame_free(env);
	return stop;
}

/* ---- the job --------------------------------------------------------- */

static Vetsync__JobStatus
job_status(enum client_status st)
{
	switch (st) {
	case CLIENT_OK:
		return VETSYNC__JOB_STATUS__OK;
	case CLIENT_INVALID_CREDENTIALS:
		return VETSYNC__JOB_STATUS__INVALID_CREDENTIALS;
	case CLIENT_UI_CHANGED:
		return VETSYNC__JOB_STATUS__UI_CHANGED;
	case CLIENT_TIMEOUT:
		return VETSYNC__JOB_STATUS__TIMEOUT;
	case CLIENT_CANCELLED:
		return VETSYNC__JOB_STATUS__CANCELLED;
	case CLIENT_UNSUPPORTED:
		return VETSYNC__JOB_STATUS__UNSUPPORTED;
	case CLIENT_FAILED:
		break;
	}
	return VETSYNC__JOB_STATUS__FAILED;
}

static int
job_result(struct job_ctx *j, const struct client_result *cr,
    uint64_t start)
{
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__JobResult res = VETSYNC__JOB_RESULT__INIT;

	res.has_job_id = res.has_status = 1;
	res.job_id = j->job_id;
	res.status = job_status(cr->status);
	if (cr->status != CLIENT_OK) {
		res.error_class = job_str(j, cr->error_class, FRAME_SHORT_MAX);
		res.error_message = job_str(j, cr->message, FRAME_LINE_MAX);
	}
	res.has_consultations = res.has_appointments = 1;
	res.has_notes_found = res.has_requests = res.has_bytes_received = 1;
	res.has_login_ms = res.has_total_ms = 1;
	res.consultations = cr->consultations;
	res.appointments = cr->appointments;
	res.notes_found = cr->notes_found;
	res.requests = cr->requests;
	res.bytes_received = cr->bytes_received;
	res.login_ms = cr->login_ms;
	res.total_ms = (uint32_t)(clock_mono_ms() - start);
	env.msg_case = VETSYNC__ENVELOPE__MSG_JOB_RESULT;
	env.job_result = &res;
	j->send_err = 0;	/* the result is worth a last try */
	return job_send(j, &env, "job result");
}

int
job_run(int fd, const Vetsync__Job *job)
{
	const Vetsync__JobLimits *lim = job->limits;
	const Vetsync__Credentials *cr = job->credentials;
	struct client_sink sink;
	struct client_params p;
	struct client_result res;
	struct job_ctx j;
	struct profile *pf = NULL;
	char err[256];
	enum client_flow flow;
	uint64_t start = clock_mono_ms();
	int r;

	memset(&j, 0, sizeof(j));
	memset(&res, 0, sizeof(res));
	j.fd = fd;
	j.job = job;
	j.job_id = job->job_id;
	err[0] = '\0';
	if (profile_parse(job->site_profile, strlen(job->site_profile), &pf,
	    err, sizeof(err)) != 0) {
		res.status = CLIENT_FAILED;
		snprintf(res.error_class, sizeof(res.error_class), "profile");
		snprintf(res.message, sizeof(res.message), "site profile: %s",
		    err[0] != '\0' ? err : "cannot be parsed");
		goto result;
	}
	if ((j.tz_ok = job_tz(job->time_zone)) == false)
		log_warnx("job %llu: time zone '%s' unknown here: no UTC "
		    "times", (unsigned long long)j.job_id,
		    log_q(job->time_zone));
	switch (job->kind) {
	case VETSYNC__JOB_KIND__RECONCILE_NOTES:
		flow = CLIENT_RECONCILE_NOTES;
		break;
	case VETSYNC__JOB_KIND__SYNC_SCHEDULE:
		flow = CLIENT_SYNC_SCHEDULE;
		break;
	default:
		flow = CLIENT_VALIDATE;
		break;
	}
	memset(&p, 0, sizeof(p));
	p.profile = pf;
	p.base_url = job->base_url;
	p.pin_host = job->pinned->host;
	p.pin_port = job->pinned->port;
	p.pin_ip = job->pinned->ip;
	p.ca_bundle = job->ca_bundle;
	p.max_parallel = lim->max_parallel;
	p.request_rate = lim->request_rate;
	p.request_timeout_ms = lim->request_timeout_ms;
	p.response_max = lim->response_max;
	p.deadline_ms = start + lim->job_timeout_ms;
	p.username = cr->username;
	p.password = cr->password;
	p.company_id = cr->company_id;
	p.window_start = job->window_start;
	p.window_end = job->window_end;
	p.watch_fd = fd;
	memset(&sink, 0, sizeof(sink));
	sink.progress = job_progress;
	sink.event = job_event;
	sink.appointment = job_appointment;
	sink.consultation = job_consultation;
	sink.fingerprint = job_fingerprint;
	sink.snapshot = job_snapshot;
	sink.watch = job_watch;
	sink.arg = &j;
	client_run(&p, flow, &sink, &res);
	if (j.stop == -EPROTO && res.status == CLIENT_CANCELLED)
		snprintf(res.message, sizeof(res.message), "stopped: the "
		    "supervisor sent a frame out of place");
result:
	r = job_result(&j, &res, start);
	/* The password is no longer needed by anyone in this process. */
	if (cr->password != NULL)
		explicit_bzero(cr->password, strlen(cr->password));
	profile_free(pf);
	job_strs_free(&j);
	if (r == 0 && j.stop != 0)
		r = j.stop;
	return r;
}
