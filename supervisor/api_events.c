/*
 * The HTTP API's live view (api_int.h): server-sent events of job starts
 * and ends to at most API_SSE_MAX subscribers, a heartbeat comment every
 * API_HEARTBEAT_MS so dead readers are found, and the dashboard, one page
 * with no external asset that draws the clinics from the stream.  A reader
 * that lets API_SSE_BACKLOG bytes pile up is dropped.
 */
#include <sys/queue.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/api.h"
#include "supervisor/api_int.h"
#include "supervisor/clinics.h"
#include "supervisor/supervisor.h"
#include "supervisor/workers.h"

#define API_SSE_BACKLOG	(1024 * 1024)	/* unsent bytes of a subscriber */
#define API_HEARTBEAT_MS	15000

static struct api_requests subscribers = LIST_HEAD_INITIALIZER(subscribers);
static unsigned n_subscribers;
static struct event *heartbeat;
static uint64_t jobs_done[API_KINDS][2];	/* [kind][ok] */
static uint64_t events_sent;

static const char dashboard_html[] =
"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
"<title>vetsync</title>\n<style>\n"
"body{font:14px system-ui,sans-serif;margin:2em;color:#222}\n"
"table{border-collapse:collapse;margin-bottom:1.5em}\n"
"td,th{border:1px solid #ccc;padding:.3em .7em;text-align:left}\n"
"th{background:#f3f3f3}.running{color:#06c}.held{color:#b00}\n"
".backoff{color:#c60}.queued{color:#666}#conn{font-size:12px}\n"
"#log{font:12px monospace;white-space:pre;max-height:20em;overflow:auto}\n"
"</style></head><body>\n<h1>vetsync</h1>\n<p id=\"conn\">connecting"
"&hellip;</p>\n<table><thead><tr><th>clinic</th><th>state</th>"
"<th>hold</th><th>last outcome</th><th>ok</th><th>failed</th></tr>"
"</thead><tbody id=\"clinics\"></tbody></table>\n<h2>events</h2>\n"
"<div id=\"log\"></div>\n<script>\n"
"'use strict';\nconst rows = new Map();\n"
"function cell(tr, i, text, cls) {\n"
"  const td = tr.children[i]; td.textContent = text == null ? '' : text;\n"
"  if (cls !== undefined) td.className = cls;\n}\n"
"function row(c) {\n  let tr = rows.get(c.clinic);\n  if (!tr) {\n"
"    tr = document.createElement('tr');\n"
"    for (let i = 0; i < 6; i++) tr.appendChild("
"document.createElement('td'));\n"
"    rows.set(c.clinic, tr);\n"
"    document.getElementById('clinics').appendChild(tr);\n  }\n"
"  cell(tr, 0, c.clinic);\n"
"  if (c.state) cell(tr, 1, c.state, c.state);\n"
"  if (c.hold) cell(tr, 2, c.hold === 'none' ? '' : c.hold);\n"
"  if ('lastOutcome' in c) cell(tr, 3, c.lastOutcome);\n"
"  if ('jobsOk' in c) cell(tr, 4, c.jobsOk);\n"
"  if ('jobsFailed' in c) cell(tr, 5, c.jobsFailed);\n}\n"
"function log(type, d) {\n  const l = document.getElementById('log');\n"
"  l.textContent = new Date().toISOString() + ' ' + type + ' ' +\n"
"    JSON.stringify(d) + '\\n' + l.textContent.slice(0, 20000);\n}\n"
"const es = new EventSource('/api/idexx/events');\n"
"es.onopen = () => { document.getElementById('conn').textContent = "
"'live'; };\n"
"es.onerror = () => { document.getElementById('conn').textContent = "
"'disconnected, retrying'; };\n"
"es.addEventListener('snapshot', e => {\n"
"  JSON.parse(e.data).clinics.forEach(row);\n});\n"
"for (const t of ['job_start', 'job_end']) {\n"
"  es.addEventListener(t, e => { const d = JSON.parse(e.data);\n"
"    row(d); log(t, d); });\n}\n"
"</script>\n</body></html>\n";

static json_t *
clinic_json(const struct clinic *c)
{
	const char *last = clinic_last_outcome(c);

	return json_pack("{s:s,s:s,s:s,s:i,s:I,s:I,s:o}",
	    "clinic", clinic_name(c),
	    "state", clinic_state_name(clinic_state(c)),
	    "hold", clinic_hold_name(clinic_hold_reason(c)),
	    "failures", (int)clinic_failures(c),
	    "jobsOk", (json_int_t)clinic_jobs_ok(c),
	    "jobsFailed", (json_int_t)clinic_jobs_failed(c),
	    "lastOutcome", api_nullable(last));
}

static void
add_clinic(struct clinic *c, void *arg)
{
	json_array_append_new(arg, clinic_json(c));
}

json_t *
api_clinics_json(void)
{
	json_t *a = json_array();

	clinics_foreach(add_clinic, a);
	return a;
}

/* GET /dashboard */
void
api_route_dashboard(struct api_request *ar, const struct jwt_claims *c)
{
	struct evbuffer *out = evbuffer_new();

	evbuffer_add(out, dashboard_html, sizeof(dashboard_html) - 1);
	evhttp_add_header(evhttp_request_get_output_headers(ar->req),
	    "Content-Security-Policy", "default-src 'self'; "
	    "script-src 'unsafe-inline'; style-src 'unsafe-inline'");
	api_reply_text(ar, "text/html; charset=utf-8", out);
	evbuffer_free(out);
}

/* Write to one subscriber; a reader too slow to keep up is dropped. */
static void
sse_write(struct api_request *ar, const char *text, size_t len)
{
	struct bufferevent *bev;
	struct evhttp_connection *evcon = ar->evcon;
	struct evbuffer *chunk;

	bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
	if (bev == NULL || evbuffer_get_length(bufferevent_get_output(bev)) >
	    API_SSE_BACKLOG) {
		log_info("api: event-stream subscriber too slow, dropped");
		LIST_REMOVE(ar, entry);
		n_subscribers--;
		api_request_detach(ar);
		free(ar);
		if (evcon != NULL)
			evhttp_connection_free(evcon);
		return;
	}
	chunk = evbuffer_new();
	evbuffer_add(chunk, text, len);
	evhttp_send_reply_chunk(ar->req, chunk);
	evbuffer_free(chunk);
}

static void
sse_broadcast(const char *text, size_t len)
{
	struct api_request *ar, *next;

	for (ar = LIST_FIRST(&subscribers); ar != NULL; ar = next) {
		next = LIST_NEXT(ar, entry);
		sse_write(ar, text, len);
	}
}

static char *
sse_format(const char *type, json_t *data)
{
	char *json = data != NULL ? json_dumps(data, JSON_COMPACT) : NULL;
	char *text;

	text = xasprintf("event: %s\ndata: %s\n\n", type,
	    json != NULL ? json : "{}");
	free(json);
	return text;
}

void
api_event(const char *type, json_t *data)
{
	char *text;

	if (LIST_EMPTY(&subscribers))
		return;
	/* The type is written raw into the stream: a word, nothing more. */
	if (type == NULL || *type == '\0' ||
	    strspn(type, "abcdefghijklmnopqrstuvwxyz_") != strlen(type)) {
		log_warnx("api: event type '%s' is not [a-z_]+: dropped",
		    log_q(type));
		return;
	}
	text = sse_format(type, data);
	sse_broadcast(text, strlen(text));
	events_sent++;
	free(text);
}

static void
heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
	static const char beat[] = ": heartbeat\n\n";

	sse_broadcast(beat, sizeof(beat) - 1);
}

/* GET /api/idexx/events: server-sent events, API_SSE_MAX at most. */
void
api_route_events(struct api_request *ar, const struct jwt_claims *c)
{
	json_t *snap;
	char *text;

	if (n_subscribers >= API_SSE_MAX) {
		api_error(ar, 503, "events: %d subscribers already (the "
		    "limit)", API_SSE_MAX);
		return;
	}
	LIST_REMOVE(ar, entry);
	ar->stream = true;
	LIST_INSERT_HEAD(&subscribers, ar, entry);
	n_subscribers++;
	api_headers(ar->req, "text/event-stream");
	api_count_reply(200);
	evhttp_send_reply_start(ar->req, 200, "OK");
	snap = json_pack("{s:o}", "clinics", api_clinics_json());
	text = sse_format("snapshot", snap);
	json_decref(snap);
	sse_write(ar, text, strlen(text));
	free(text);
}

void
api_job_started(const struct worker_job *job)
{
	json_t *d;

	if (LIST_EMPTY(&subscribers))
		return;
	d = json_pack("{s:s,s:I,s:s,s:s}", "clinic", job->clinic,
	    "job", (json_int_t)job->id, "kind", worker_job_kind_name(job->kind),
	    "state", "running");
	api_event("job_start", d);
	json_decref(d);
}

void
api_job_ended(const struct worker_job *job, const struct worker_outcome *o)
{
	const struct clinic *c = clinic_find(job->clinic);
	bool ok = o->cls == WORKER_EXIT_CLEAN && o->result_ok;
	json_t *d;

	if ((unsigned)job->kind < API_KINDS)
		jobs_done[job->kind][ok]++;
	if (LIST_EMPTY(&subscribers))
		return;
	d = c != NULL ? clinic_json(c) : json_pack("{s:s}", "clinic",
	    job->clinic);
	json_object_set_new(d, "job", json_integer((json_int_t)job->id));
	json_object_set_new(d, "kind", json_string(
	    worker_job_kind_name(job->kind)));
	json_object_set_new(d, "ok", json_boolean(ok));
	json_object_set_new(d, "exit", json_string(
	    worker_exit_class_name(o->cls)));
	json_object_set_new(d, "durationMs",
	    json_integer((json_int_t)o->duration_ms));
	json_object_set_new(d, "consultations",
	    json_integer((json_int_t)o->consultations));
	api_event("job_end", d);
	json_decref(d);
}

void
api_events_closed(struct api_request *ar)
{
	LIST_REMOVE(ar, entry);
	n_subscribers--;
	free(ar);
}

void
api_events_metrics(struct evbuffer *out)
{
	evbuffer_add_printf(out, "# HELP vetsync_jobs_total Jobs ended since "
	    "start, by kind and result.\n# TYPE vetsync_jobs_total counter\n");
	for (int k = 0; k < API_KINDS; k++)
		for (int ok = 1; ok >= 0; ok--)
			evbuffer_add_printf(out, "vetsync_jobs_total"
			    "{kind=\"%s\",result=\"%s\"} %llu\n",
			    worker_job_kind_name((enum worker_job_kind)k),
			    ok ? "ok" : "failed",
			    (unsigned long long)jobs_done[k][ok]);
	evbuffer_add_printf(out, "# HELP vetsync_events_subscribers "
	    "Event-stream subscribers connected.\n"
	    "# TYPE vetsync_events_subscribers gauge\n"
	    "vetsync_events_subscribers %u\n", n_subscribers);
	evbuffer_add_printf(out, "# HELP vetsync_events_sent_total Events "
	    "written to subscribers since start.\n"
	    "# TYPE vetsync_events_sent_total counter\n"
	    "vetsync_events_sent_total %llu\n",
	    (unsigned long long)events_sent);
}

void
api_events_start(void)
{
	struct timeval tv = clock_timeval_ms(API_HEARTBEAT_MS);

	if (heartbeat != NULL)
		return;
	heartbeat = event_new(sv->base, -1, EV_PERSIST, heartbeat_cb, NULL);
	evtimer_add(heartbeat, &tv);
}

void
api_events_stop(void)
{
	struct api_request *ar;

	while ((ar = LIST_FIRST(&subscribers)) != NULL) {
		LIST_REMOVE(ar, entry);
		api_request_detach(ar);
		free(ar);
	}
	n_subscribers = 0;
	if (heartbeat != NULL)
		event_free(heartbeat);
	heartbeat = NULL;
}
