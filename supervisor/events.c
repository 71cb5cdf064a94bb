/*
 * PostHog events (see events.h): a ring of formatted events, one batch in
 * flight at a time through outbound.c, and the hooks that fill the ring.
 *
 * A batch, once taken from the ring, is a struct flight that keeps its
 * body until it is answered for good, so a retry sends the very same
 * events (same uuids) and the order of events is kept.  Deliberate quirk:
 * sync.started waits for its clinic's name from the database (one small
 * query, never on the job's path); its timestamp is that of the start, so
 * PostHog orders it right even when sync.completed is queued first.
 */
#include <sys/random.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/clinics.h"
#include "supervisor/config.h"
#include "supervisor/db.h"
#include "supervisor/discharge_rules.h"
#include "supervisor/events.h"
#include "supervisor/outbound.h"
#include "supervisor/reconcile.h"
#include "supervisor/secrets.h"
#include "supervisor/supervisor.h"
#include "supervisor/workers.h"

#define EVENTS_RESPONSE_MAX	(64 * 1024)
#define EVENTS_WARNED_MAX	16	/* status codes warned about */

/* JobResult status values (proto/vetsync.proto, enum JobStatus). */
static const char *const job_status_names[] = {
	[2] = "failed", [3] = "invalid_credentials", [4] = "ui_changed",
	[5] = "timeout", [6] = "cancelled", [7] = "unsupported",
};

static const char sql_clinic_name[] =
    "SELECT clinic_name FROM users WHERE id = $1::uuid";

struct waiting {
	char *json;
	uint64_t at_ms;			/* monotonic, when queued */
};

/* A batch taken from the ring, until it is answered for good. */
struct flight {
	char **events;
	size_t n;
	char *body;			/* holds the key: wiped */
	size_t len;
	unsigned attempts;		/* failed so far */
};

/* A sync.started waiting for its clinic's name. */
struct lookup {
	char user[CLINIC_ID_MAX + 1];
	char kind[16];
	char uuid[37];
	int64_t at_ms;			/* wall clock */
};

enum drop_reason {
	DROP_OVERFLOW,
	DROP_REJECTED,
	DROP_RETRIES,
	DROP_TOO_LARGE,
	DROP_STOPPING,
	DROP_REASONS
};

static const char *const drop_names[DROP_REASONS] = {
	"overflow", "rejected", "retries", "too_large", "stopping",
};

static struct {
	bool enabled, stopping, inflight, failing, overflowing;
	struct db_async *db;
	char *url;
	char *key;			/* the secret, NUL-terminated */
	unsigned batch_size;
	uint64_t interval_ms;
	uint64_t http_ms;
	struct waiting *ring;
	size_t head, count;
	struct flight *flight;
	struct event *flush_timer, *retry_timer;
	long warned[EVENTS_WARNED_MAX];
	size_t nwarned;
	uint64_t sent, dropped[DROP_REASONS];
	uint64_t requests_ok, requests_retried, requests_rejected;
} ev;

static void send_batch(void);

/* --- the pure parts ------------------------------------------------------- */

static void
uuid4(char out[37])
{
	unsigned char r[16];

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		uint64_t a = clock_mono_ns(), b = (uint64_t)clock_wall_ms();

		memcpy(r, &a, 8);
		memcpy(r + 8, &b, 8);
	}
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4], r[5],
	    r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
}

char *
events_format(const char *name, const char *distinct_id, json_t *props,
    bool person, const char *uuid, int64_t wall_ms)
{
	char id[37], ts[CLOCK_RFC3339_LEN], *s = NULL;
	json_t *e = NULL, *d;

	if (!json_is_object(props) || name == NULL || distinct_id == NULL)
		goto out;
	if ((d = json_string(distinct_id)) == NULL)
		goto out;
	json_object_set_new(props, "distinct_id", d);
	json_object_set_new(props, "$lib", json_string("vetsync"));
	json_object_set_new(props, "$process_person_profile",
	    json_boolean(person));
	if (uuid == NULL) {
		uuid4(id);
		uuid = id;
	}
	clock_format_rfc3339(wall_ms < 0 ? clock_wall_ms() : wall_ms, ts,
	    sizeof(ts));
	e = json_pack("{s:s,s:O,s:s,s:s}", "event", name, "properties", props,
	    "timestamp", ts, "uuid", uuid);
	if (e != NULL)
		s = json_dumps(e, JSON_COMPACT);
out:
	json_decref(e);
	json_decref(props);
	return s;
}

char *
events_batch_body(const char *key, char *const *events, size_t n,
    size_t max, size_t *ret_taken)
{
	static const char mid[] = ",\"historical_migration\":false,\"batch\":[";
	json_t *k = json_string(key);
	char *ek = k != NULL ? json_dumps(k, JSON_ENCODE_ANY) : NULL;
	struct buf b;
	size_t taken = 0, len;

	*ret_taken = 0;
	json_decref(k);
	if (ek == NULL)
		return NULL;
	buf_init(&b, 0);
	(void)buf_puts(&b, "{\"api_key\":");
	(void)buf_puts(&b, ek);
	(void)buf_puts(&b, mid);
	xfree_wiped(ek);
	for (; taken < n; taken++) {
		len = strlen(events[taken]);
		/* ',' before it, "]}" after it. */
		if (b.len + len + 3 > max)
			break;
		if (taken > 0)
			(void)buf_puts(&b, ",");
		(void)buf_append(&b, events[taken], len);
	}
	if (taken == 0) {
		buf_release_secret(&b);
		return NULL;
	}
	(void)buf_puts(&b, "]}");
	*ret_taken = taken;
	return buf_detach(&b, NULL);
}

enum events_verdict
events_verdict(int error, long status)
{
	if (error < 0)
		return EVENTS_RETRY;
	if (status >= 200 && status < 300)
		return EVENTS_SENT;
	if (status == 408 || status == 429 || (status >= 500 && status < 600))
		return EVENTS_RETRY;
	return EVENTS_DROP;
}

uint64_t
events_backoff_ms(unsigned attempt, int64_t retry_after_ms)
{
	uint64_t ms = attempt >= 15 ? EVENTS_BACKOFF_MAX_MS :
	    1000ULL << attempt;

	if (ms > EVENTS_BACKOFF_MAX_MS)
		ms = EVENTS_BACKOFF_MAX_MS;
	if (retry_after_ms >= 0 && (uint64_t)retry_after_ms > ms)
		ms = (uint64_t)retry_after_ms;
	if (ms > EVENTS_RETRY_AFTER_MAX_MS)
		ms = EVENTS_RETRY_AFTER_MAX_MS;
	return ms;
}

const char *
events_failure_step(const struct worker_outcome *o)
{
	if (o->cls == WORKER_EXIT_SPAWN)
		return "start";
	if (o->invalid_credentials)
		return "login";
	if (o->cls == WORKER_EXIT_CLEAN)
		return "idexx";
	return "worker";
}

const char *
events_failure_error(const struct worker_outcome *o)
{
	if (o->cls != WORKER_EXIT_CLEAN)
		return worker_exit_class_name(o->cls);
	if (o->invalid_credentials)
		return "invalid_credentials";
	if (o->result_status >= 0 && (size_t)o->result_status <
	    sizeof(job_status_names) / sizeof(job_status_names[0]) &&
	    job_status_names[o->result_status] != NULL)
		return job_status_names[o->result_status];
	return "failed";
}

/* --- the queue ------------------------------------------------------------ */

static void
flight_free(struct flight *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n; i++)
		free(f->events[i]);
	free(f->events);
	if (f->body != NULL)
		explicit_bzero(f->body, f->len);
	free(f->body);
	free(f);
}

static void
drop(enum drop_reason why, uint64_t n)
{
	ev.dropped[why] += n;
}

/* Arm the flush: now when a batch is full, else when the oldest is due. */
static void
schedule(void)
{
	struct timeval tv;
	uint64_t now, due;

	if (!ev.enabled || ev.inflight || ev.flight != NULL || ev.count == 0)
		return;
	now = clock_mono_ms();
	due = ev.ring[ev.head].at_ms + ev.interval_ms;
	tv = clock_timeval_ms(ev.count >= ev.batch_size || due <= now ? 0 :
	    due - now);
	evtimer_add(ev.flush_timer, &tv);
}

static void
queue(char *json)
{
	struct waiting *w;
	size_t len;

	if (json == NULL)
		return;
	if (!ev.enabled || ev.stopping) {
		free(json);
		return;
	}
	if ((len = strlen(json)) > EVENTS_EVENT_MAX) {
		log_warnx("events: an event of %zu bytes is over the %d-byte "
		    "limit; dropped", len, EVENTS_EVENT_MAX);
		drop(DROP_TOO_LARGE, 1);
		free(json);
		return;
	}
	if (ev.count == EVENTS_QUEUE_MAX) {
		if (!ev.overflowing)
			log_warnx("events: %d events wait for PostHog; the "
			    "oldest are dropped", EVENTS_QUEUE_MAX);
		ev.overflowing = true;
		free(ev.ring[ev.head].json);
		ev.head = (ev.head + 1) % EVENTS_QUEUE_MAX;
		ev.count--;
		drop(DROP_OVERFLOW, 1);
	}
	w = &ev.ring[(ev.head + ev.count) % EVENTS_QUEUE_MAX];
	w->json = json;
	w->at_ms = clock_mono_ms();
	ev.count++;
	schedule();
}

/* Whether status was warned about already; remember it if not. */
static bool
warned(long status)
{
	for (size_t i = 0; i < ev.nwarned; i++)
		if (ev.warned[i] == status)
			return true;
	if (ev.nwarned < EVENTS_WARNED_MAX)
		ev.warned[ev.nwarned++] = status;
	return false;
}

static void
retry_after(const struct outbound_response *a, int64_t *ret_ms)
{
	uint64_t ms;

	*ret_ms = -1;
	if (a->error == 0 && discharge_wait_ms(outbound_header(a->headers,
	    "Retry-After"), NULL, (int64_t)time(NULL), &ms) == 0)
		*ret_ms = (int64_t)ms;
}

static void
answered(const struct outbound_response *a, void *arg)
{
	struct flight *f = arg;
	struct timeval tv;
	int64_t ra;
	uint64_t wait;

	if (f != ev.flight) {
		/* Given up at stop; outbound_free() cancels it now. */
		flight_free(f);
		return;
	}
	ev.inflight = false;
	switch (events_verdict(a->error, a->status)) {
	case EVENTS_SENT:
		ev.requests_ok++;
		ev.sent += f->n;
		if (ev.failing)
			log_info("events: PostHog takes events again");
		ev.failing = ev.overflowing = false;
		log_debug("events: %zu event(s) sent", f->n);
		break;
	case EVENTS_DROP:
		ev.requests_rejected++;
		drop(DROP_REJECTED, f->n);
		if (!warned(a->status))
			log_warnx("events: PostHog refused a batch with %ld%s; "
			    "its %zu event(s) are dropped (said once per "
			    "status)", a->status, a->status == 401 ?
			    " (check the posthog-key secret)" : "", f->n);
		break;
	case EVENTS_RETRY:
		ev.requests_retried++;
		if (ev.stopping) {
			drop(DROP_STOPPING, f->n);
			break;
		}
		if (f->attempts >= EVENTS_RETRIES) {
			log_warnx("events: PostHog failed %u times in a row; "
			    "%zu event(s) dropped", f->attempts + 1, f->n);
			drop(DROP_RETRIES, f->n);
			break;
		}
		retry_after(a, &ra);
		wait = events_backoff_ms(f->attempts, ra);
		f->attempts++;
		if (!ev.failing && a->error < 0)
			log_warnx("events: PostHog unreachable: %s; sent again "
			    "in %" PRIu64 " ms", a->error_text, wait);
		else if (!ev.failing)
			log_warnx("events: PostHog answered %s; sent again in "
			    "%" PRIu64 " ms", a->status == 429 ?
			    "429 (rate limited)" : a->status == 408 ? "408" :
			    "5xx", wait);
		else
			log_debug("events: PostHog failed again (%ld); sent "
			    "again in %" PRIu64 " ms", a->status, wait);
		ev.failing = true;
		tv = clock_timeval_ms(wait);
		evtimer_add(ev.retry_timer, &tv);
		return;
	}
	ev.flight = NULL;
	flight_free(f);
	if (!ev.stopping)
		schedule();
}

/* Take the next batch from the ring (when none is held) and send it. */
static void
send_batch(void)
{
	struct outbound_request rq;
	struct flight *f = ev.flight;
	size_t n, taken;
	int r;

	if (!ev.enabled || ev.inflight)
		return;
	if (f == NULL) {
		if (ev.count == 0)
			return;
		n = ev.count < ev.batch_size ? ev.count : ev.batch_size;
		f = xcalloc(1, sizeof(*f));
		f->events = xcalloc(n, sizeof(*f->events));
		for (size_t i = 0; i < n; i++)
			f->events[i] = ev.ring[(ev.head + i) %
			    EVENTS_QUEUE_MAX].json;
		f->body = events_batch_body(ev.key, f->events, n,
		    EVENTS_BODY_MAX, &taken);
		if (f->body == NULL)
			fatalx("events: cannot build a batch");
		f->len = strlen(f->body);
		f->n = taken;
		ev.head = (ev.head + taken) % EVENTS_QUEUE_MAX;
		ev.count -= taken;
		ev.flight = f;
	}
	memset(&rq, 0, sizeof(rq));
	rq.method = "POST";
	rq.url = ev.url;
	rq.headers[0] = "Content-Type: application/json";
	rq.headers[1] = "User-Agent: vetsync";
	rq.body = f->body;
	rq.len = f->len;
	rq.timeout_ms = ev.http_ms;
	rq.response_max = EVENTS_RESPONSE_MAX;
	if ((r = outbound_send(&rq, answered, f)) < 0) {
		log_warnx("events: cannot send to PostHog: %s; %zu event(s) "
		    "dropped", strerror(-r), f->n);
		drop(DROP_REJECTED, f->n);
		ev.flight = NULL;
		flight_free(f);
		return;
	}
	ev.inflight = true;
}

/* A held batch waits for its retry timer, never for the flush. */
static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (ev.flight == NULL)
		send_batch();
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	send_batch();
}

/* --- the hooks ------------------------------------------------------------ */

static const char *
kind_name(enum worker_job_kind k)
{
	return k == WORKER_JOB_SYNC_SCHEDULE ? "schedule" : "notes";
}

static void
started(const char *user, const char *kind, const char *name,
    const char *uuid, int64_t at_ms)
{
	json_t *n = name != NULL ? json_string(name) : NULL;

	queue(events_format("sync.started", user, json_pack("{s:s,s:o,s:s}",
	    "userId", user, "clinicName", n != NULL ? n : json_null(), "kind",
	    kind), true, uuid, at_ms));
}

static void
lookup_done(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	struct lookup *l = arg;

	if (r < 0 && r != -ECANCELED)
		log_debug("events: clinic %s: no name: %s", l->user,
		    error != NULL ? error : strerror(-r));
	if (r != -ECANCELED)
		started(l->user, l->kind, r == 0 && db_result_rows(rows) == 1 ?
		    db_result_value(rows, 0, 0) : NULL, l->uuid, l->at_ms);
	free(l);
}

void
events_job_started(const struct worker_job *job)
{
	struct lookup *l;
	struct db_unit *u;
	const char *p[1];

	if (!ev.enabled || job->kind == WORKER_JOB_VALIDATE_CREDENTIALS)
		return;
	l = xcalloc(1, sizeof(*l));
	snprintf(l->user, sizeof(l->user), "%s", job->clinic);
	snprintf(l->kind, sizeof(l->kind), "%s", kind_name(job->kind));
	uuid4(l->uuid);
	l->at_ms = clock_wall_ms();
	if (ev.db == NULL || !reconcile_uuid_valid(job->clinic)) {
		lookup_done(0, NULL, NULL, l);
		return;
	}
	u = db_unit_new_rows(lookup_done, l);
	p[0] = job->clinic;
	(void)db_unit_add(u, "BEGIN", 0, NULL);
	(void)db_unit_add(u, "SET LOCAL ROLE service_role", 0, NULL);
	(void)db_unit_add_prepared(u, sql_clinic_name, 1, p);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(ev.db, u);
}

void
events_job_ended(const struct worker_job *job, const struct worker_outcome *o)
{
	json_t *props;

	if (!ev.enabled || job->kind == WORKER_JOB_VALIDATE_CREDENTIALS)
		return;
	if (o->cls == WORKER_EXIT_CLEAN && o->result_ok)
		queue(events_format("sync.completed", job->clinic,
		    json_pack("{s:s,s:I,s:f,s:s}", "userId", job->clinic,
		    "consultations", (json_int_t)o->consultations, "duration",
		    (double)o->duration_ms / 1000.0, "kind",
		    kind_name(job->kind)), true, NULL, -1));
	else {
		props = json_pack("{s:s,s:s,s:s,s:s}", "userId", job->clinic,
		    "error", events_failure_error(o), "step",
		    events_failure_step(o), "kind", kind_name(job->kind));
		queue(events_format("sync.failed", job->clinic, props, true,
		    NULL, -1));
	}
}

void
events_discharge_scheduled(const char *user, const char *consultation,
    int64_t scheduled_for_s)
{
	char ts[CLOCK_RFC3339_LEN];
	json_t *c;

	if (!ev.enabled || (c = json_string(consultation)) == NULL)
		return;
	clock_format_rfc3339(scheduled_for_s * 1000, ts, sizeof(ts));
	queue(events_format("discharge.scheduled", user, json_pack(
	    "{s:s,s:o,s:s}", "userId", user, "consultationId", c,
	    "scheduledFor", ts), false, NULL, -1));
}

void
events_credential_validated(const char *user, bool valid)
{
	if (!ev.enabled)
		return;
	queue(events_format("credential.validated", user, json_pack(
	    "{s:s,s:s}", "userId", user, "status", valid ? "valid" :
	    "invalid"), true, NULL, -1));
}

/* --- start, stop, metrics ------------------------------------------------- */

bool
events_enabled(void)
{
	return ev.enabled;
}

/* scheme://host[:port] of url, without any userinfo, for log lines. */
static void
url_origin(const char *url, char *out, size_t outsz)
{
	const char *p = strstr(url, "://"), *e, *at;
	int scheme;

	scheme = p != NULL ? (int)(p - url) : 0;
	p = p != NULL ? p + 3 : url;
	e = p + strcspn(p, "/?#");
	for (at = p; at < e; at++)
		if (*at == '@')
			p = at + 1;
	snprintf(out, outsz, "%.*s://%.*s", scheme, url, (int)(e - p), p);
}

int
events_start(struct db_async *db)
{
	const struct config *cf = sv->config;
	char err[SECRET_ERR_MAX], origin[256];
	struct buf key;
	json_t *k;
	size_t n;
	int r;

	if (ev.enabled)
		return 0;
	if (cf->posthog.host == NULL || cf->posthog.host[0] == '\0') {
		log_info("events: posthog.host is empty: PostHog events are "
		    "off");
		return 0;
	}
	buf_init(&key, 0);
	if ((r = secret_read(SECRET_POSTHOG_KEY, &key, err, sizeof(err))) < 0) {
		if (r == -ENOENT)
			log_info("events: no %s secret: PostHog events are off",
			    SECRET_POSTHOG_KEY);
		else
			log_warnx("events: %s: PostHog events are off", err);
		return 0;
	}
	/* The key goes into JSON: it must be text. */
	k = json_stringn(key.data, key.len);
	if (k == NULL || strlen(key.data) != key.len) {
		json_decref(k);
		buf_release_secret(&key);
		log_warnx("events: the %s secret is not UTF-8 text: PostHog "
		    "events are off", SECRET_POSTHOG_KEY);
		return 0;
	}
	json_decref(k);
	if ((r = outbound_init(sv->base)) < 0) {
		buf_release_secret(&key);
		return r;
	}
	memset(&ev, 0, sizeof(ev));
	ev.key = buf_detach(&key, NULL);
	ev.db = db;
	n = strlen(cf->posthog.host);
	while (n > 8 && cf->posthog.host[n - 1] == '/')
		n--;
	ev.url = xasprintf("%.*s/batch/", (int)n, cf->posthog.host);
	ev.batch_size = cf->posthog.batch_size > 0 ? cf->posthog.batch_size : 1;
	ev.interval_ms = cf->posthog.flush_interval_ms;
	ev.http_ms = EVENTS_HTTP_MS;
	ev.ring = xcalloc(EVENTS_QUEUE_MAX, sizeof(*ev.ring));
	ev.flush_timer = evtimer_new(sv->base, flush_cb, NULL);
	ev.retry_timer = evtimer_new(sv->base, retry_cb, NULL);
	if (ev.flush_timer == NULL || ev.retry_timer == NULL)
		fatalx("events: cannot create timers");
	ev.enabled = true;
	url_origin(ev.url, origin, sizeof(origin));
	log_info("events: PostHog at %s, batches of %u, at least every %"
	    PRIu64 " ms", log_q(origin), ev.batch_size, ev.interval_ms);
	return 0;
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

void
events_stop(uint64_t timeout_ms)
{
	uint64_t deadline = clock_mono_ms() + timeout_ms, now;
	struct timeval tick = clock_timeval_ms(50);
	struct event *t;

	if (!ev.enabled)
		return;
	ev.stopping = true;
	evtimer_del(ev.flush_timer);
	evtimer_del(ev.retry_timer);
	if ((t = evtimer_new(sv->base, tick_cb, NULL)) == NULL)
		fatalx("events: cannot create a timer");
	/* One try for each batch; a failure drops it (answered()). */
	while ((now = clock_mono_ms()) < deadline && (ev.inflight ||
	    ev.flight != NULL || ev.count > 0)) {
		if (!ev.inflight) {
			ev.http_ms = deadline - now;
			send_batch();
			if (!ev.inflight)
				break;
		}
		evtimer_add(t, &tick);
		event_base_loop(sv->base, EVLOOP_ONCE);
	}
	event_free(t);
	if (ev.flight != NULL) {
		/* Still in flight: answered() frees it when it is cancelled. */
		drop(DROP_STOPPING, ev.flight->n);
		if (!ev.inflight)
			flight_free(ev.flight);
		ev.flight = NULL;
	}
	drop(DROP_STOPPING, ev.count);
	for (; ev.count > 0; ev.count--) {
		free(ev.ring[ev.head].json);
		ev.head = (ev.head + 1) % EVENTS_QUEUE_MAX;
	}
	log_info("events: %" PRIu64 " event(s) sent to PostHog since the "
	    "start, %" PRIu64 " dropped at the stop", ev.sent,
	    ev.dropped[DROP_STOPPING]);
	ev.enabled = false;
	event_free(ev.flush_timer);
	event_free(ev.retry_timer);
	ev.flush_timer = ev.retry_timer = NULL;
	free(ev.ring);
	ev.ring = NULL;
	free(ev.url);
	ev.url = NULL;
	xfree_wiped(ev.key);
	ev.key = NULL;
	ev.db = NULL;
}

void
events_metrics(struct evbuffer *out)
{
	evbuffer_add_printf(out, "# HELP vetsync_posthog_enabled 1 when "
	    "events are sent to PostHog.\n"
	    "# TYPE vetsync_posthog_enabled gauge\n"
	    "vetsync_posthog_enabled %d\n", ev.enabled ? 1 : 0);
	evbuffer_add_printf(out, "# HELP vetsync_posthog_events_waiting Events "
	    "waiting to be sent, in flight included.\n"
	    "# TYPE vetsync_posthog_events_waiting gauge\n"
	    "vetsync_posthog_events_waiting %zu\n",
	    ev.count + (ev.flight != NULL ? ev.flight->n : 0));
	evbuffer_add_printf(out, "# HELP vetsync_posthog_events_sent_total "
	    "Events PostHog accepted since start.\n"
	    "# TYPE vetsync_posthog_events_sent_total counter\n"
	    "vetsync_posthog_events_sent_total %" PRIu64 "\n", ev.sent);
	evbuffer_add_printf(out, "# HELP vetsync_posthog_events_dropped_total "
	    "Events given up since start, by reason.\n"
	    "# TYPE vetsync_posthog_events_dropped_total counter\n");
	for (int i = 0; i < DROP_REASONS; i++)
		evbuffer_add_printf(out, "vetsync_posthog_events_dropped_total"
		    "{reason=\"%s\"} %" PRIu64 "\n", drop_names[i],
		    ev.dropped[i]);
	evbuffer_add_printf(out, "# HELP vetsync_posthog_requests_total "
	    "Batches sent to PostHog since start, by outcome.\n"
	    "# TYPE vetsync_posthog_requests_total counter\n"
	    "vetsync_posthog_requests_total{result=\"ok\"} %" PRIu64 "\n"
	    "vetsync_posthog_requests_total{result=\"retried\"} %" PRIu64 "\n"
	    "vetsync_posthog_requests_total{result=\"rejected\"} %" PRIu64 "\n",
	    ev.requests_ok, ev.requests_retried, ev.requests_rejected);
}
