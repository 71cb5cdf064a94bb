/*
 * vetsyncd's HTTP API (api.h), on evhttp.  Every request is wrapped in a
 * struct api_request that lives until it is answered (api_reply()); when
 * the client goes away first, the connection's close callback detaches it
 * and the late answer is dropped, so an asynchronous handler (a database
 * unit, a validation job) never writes to a freed connection.  Routes are
 * a table of { path, method, authentication, handler }: a known path with
 * another method is 405, an unknown one 404.
 *
 * Deliberate quirks: evhttp itself refuses a body past api.body_max +
 * API_BODY_SLACK (its own 413, not JSON); between api.body_max and that
 * the answer is ours.  /health, /metrics, /dashboard and the event stream
 * need no token (an operator's view, on the listen address, by default
 * 127.0.0.1): they show clinic ids and states, never credentials.
 */
#include <sys/queue.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/api.h"
#include "supervisor/audit.h"
#include "supervisor/clinics.h"
#include "supervisor/config.h"
#include "supervisor/credentials.h"
#include "supervisor/db.h"
#include "supervisor/jwt.h"
#include "supervisor/secrets.h"
#include "supervisor/supervisor.h"
#include "supervisor/workers.h"

#define API_BODY_SLACK	(64 * 1024)	/* past body_max: evhttp's 413 */
#define API_PATH_MAX	256
#define API_FIELD_MAX	1024		/* bytes of a credential field */
#define API_SSE_BACKLOG	(1024 * 1024)	/* unsent bytes of a subscriber */
#define API_HEARTBEAT_MS	15000
#define API_KINDS	3		/* enum worker_job_kind */

struct api_request {
	struct evhttp_request *req;	/* NULL: the client went away */
	struct evhttp_connection *evcon;
	bool stream;			/* an event-stream subscriber */
	LIST_ENTRY(api_request) entry;
};
LIST_HEAD(api_requests, api_request);

enum api_auth {
	AUTH_NONE,
	AUTH_USER,		/* a user's token: sub is the clinic */
	AUTH_ADMIN,		/* service_role, or app_metadata.role admin */
};

struct api_route {
	const char *path;
	enum evhttp_cmd_type method;
	enum api_auth auth;
	void (*fn)(struct api_request *, const struct jwt_claims *);
};

struct delivery {
	char *path;
	api_delivery_fn *fn;
	void *arg;
};

static struct evhttp *http;
static SSL_CTX *ssl_ctx;
static struct db_async *adb;
static struct buf jwt_secret;
static bool have_jwt_secret;
static struct api_requests pending = LIST_HEAD_INITIALIZER(pending);
static struct api_requests subscribers = LIST_HEAD_INITIALIZER(subscribers);
static unsigned n_subscribers;
static struct event *heartbeat;
static struct delivery deliveries[API_DELIVERY_MAX];
static size_t n_deliveries;

/* Counters for /metrics, since start. */
static uint64_t jobs_done[API_KINDS][2];	/* [kind][ok] */
static uint64_t replies[6];			/* by status class, 1xx..5xx */
static uint64_t events_sent;

static const char sql_role[] = "SET LOCAL ROLE vetsync_tenant";
static const char sql_claims[] =
    "SELECT set_config('request.jwt.claims', "
    "json_build_object('sub', $1::text, 'role', 'authenticated')::text, "
    "true)";
#define ISO(col) "to_char(" col " AT TIME ZONE 'UTC', " \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
static const char sql_status[] =
    "SELECT u.idexx_sync_enabled, c.state, c.validation_status, s.status, "
    ISO("coalesce(s.completed_at, s.started_at)") ", "
    "coalesce(s.consultations_synced, 0), "
    "coalesce(s.discharge_calls_scheduled, 0), "
    ISO("s.next_scheduled_sync") " "
    "FROM users u LEFT JOIN idexx_credentials c ON c.user_id = u.id "
    "LEFT JOIN LATERAL (SELECT * FROM idexx_sync_sessions x "
    "WHERE x.user_id = u.id AND x.kind = 'notes' "
    "ORDER BY x.started_at DESC LIMIT 1) s ON true WHERE u.id = $1::uuid";
/* The same statement as `vetsyncctl credentials revoke`. */
static const char sql_revoke[] =
    "UPDATE idexx_credentials SET encrypted_username = NULL, "
    "encrypted_password = NULL, encrypted_company_id = NULL, "
    "state = 'revoked', validation_status = 'unknown', revoked_at = now() "
    "WHERE user_id = $1::uuid AND state <> 'revoked' "
    "RETURNING encryption_key_id";
#define FAILED "status IN ('failed', 'timeout')"
static const char sql_admin[] =
    "SELECT json_build_object("
    "'totalClinics', (SELECT count(*) FROM users), "
    "'enabledClinics', (SELECT count(*) FROM users "
    "WHERE idexx_sync_enabled), "
    "'lastHour', (SELECT json_build_object('syncs', count(*), "
    "'failures', count(*) FILTER (WHERE " FAILED ")) "
    "FROM idexx_sync_sessions WHERE kind = 'notes' "
    "AND started_at > now() - interval '1 hour'), "
    "'last24Hours', (SELECT json_build_object('syncs', count(*), "
    "'failures', count(*) FILTER (WHERE " FAILED "), "
    "'consultationsSynced', coalesce(sum(consultations_synced), 0), "
    "'dischargeCallsScheduled', "
    "coalesce(sum(discharge_calls_scheduled), 0), "
    "'averageSyncTime', coalesce(round(avg(extract(epoch FROM "
    "completed_at - started_at)) FILTER (WHERE status = 'completed'), 3), "
    "0)) FROM idexx_sync_sessions WHERE kind = 'notes' "
    "AND started_at > now() - interval '24 hours'), "
    "'errorLog', (SELECT coalesce(json_agg(e), '[]') FROM ("
    "SELECT " ISO("started_at") " AS timestamp, user_id::text AS clinic, "
    "coalesce(error_details->>'error', error_details::text, status) "
    "AS error FROM idexx_sync_sessions WHERE " FAILED " "
    "AND started_at > now() - interval '24 hours' "
    "ORDER BY started_at DESC LIMIT 20) e))::text";

/* The connection closed before the answer: forget the request. */
static void
conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct api_request *ar = arg;

	/*
	 * A request evhttp detached from its connection (the client's EOF
	 * while we held it) is ours to free; one still on the connection
	 * is freed by evhttp right after this callback.
	 */
	if (ar->req != NULL && evhttp_request_get_connection(ar->req) == NULL)
		evhttp_request_free(ar->req);
	ar->req = NULL;
	ar->evcon = NULL;
	if (ar->stream) {
		LIST_REMOVE(ar, entry);
		n_subscribers--;
		free(ar);
	}
}

static struct api_request *
request_new(struct evhttp_request *req)
{
	struct api_request *ar = xcalloc(1, sizeof(*ar));

	ar->req = req;
	ar->evcon = evhttp_request_get_connection(req);
	if (ar->evcon != NULL)
		evhttp_connection_set_closecb(ar->evcon, conn_closed, ar);
	LIST_INSERT_HEAD(&pending, ar, entry);
	return ar;
}

/* Forget ar's connection: no close callback from here on. */
static void
request_detach(struct api_request *ar)
{
	if (ar->evcon != NULL)
		evhttp_connection_set_closecb(ar->evcon, NULL, NULL);
	ar->evcon = NULL;
}

static void
add_headers(struct evhttp_request *req, const char *type)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	if (type != NULL)
		evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
}

static void
count_reply(int status)
{
	if (status >= 100 && status < 600)
		replies[status / 100]++;
}

void
api_reply(struct api_request *ar, int status, json_t *body)
{
	struct evbuffer *out;
	char *text;

	if (ar == NULL) {
		json_decref(body);
		return;
	}
	LIST_REMOVE(ar, entry);
	request_detach(ar);
	if (ar->req == NULL) {
		log_debug("api: the client left before the answer (%d)",
		    status);
		json_decref(body);
		free(ar);
		return;
	}
	out = evbuffer_new();
	add_headers(ar->req, body != NULL ? "application/json" : NULL);
	if (status == 401)
		evhttp_add_header(evhttp_request_get_output_headers(ar->req),
		    "WWW-Authenticate", "Bearer");
	if (body != NULL) {
		if ((text = json_dumps(body, JSON_COMPACT)) != NULL) {
			evbuffer_add(out, text, strlen(text));
			evbuffer_add(out, "\n", 1);
			free(text);
		}
		json_decref(body);
	}
	count_reply(status);
	evhttp_send_reply(ar->req, status, NULL, out);
	evbuffer_free(out);
	free(ar);
}

static void
reply_error(struct api_request *ar, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reply_error(struct api_request *ar, int status, const char *fmt, ...)
{
	char msg[API_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api_reply(ar, status, json_pack("{s:s}", "error", msg));
}

/* A fixed text body (HTML, metrics). */
static void
reply_text(struct api_request *ar, const char *type, struct evbuffer *out)
{
	LIST_REMOVE(ar, entry);
	request_detach(ar);
	add_headers(ar->req, type);
	count_reply(200);
	evhttp_send_reply(ar->req, 200, NULL, out);
	free(ar);
}

/*
 * Wipe and empty an evbuffer in place, chunk by chunk (evbuffer_pullup()
 * would copy the bytes and free the old chunks unwiped).
 */
static void
wipe_buffer(struct evbuffer *b)
{
	struct evbuffer_iovec *v;
	int n;

	if ((n = evbuffer_peek(b, -1, NULL, NULL, 0)) > 0) {
		v = xcalloc((size_t)n, sizeof(*v));
		n = evbuffer_peek(b, -1, NULL, v, n);
		for (int i = 0; i < n; i++)
			explicit_bzero(v[i].iov_base, v[i].iov_len);
		free(v);
	}
	evbuffer_drain(b, evbuffer_get_length(b));
}

/*
 * The request's body as a JSON object, or NULL after answering 400.  The
 * body is wiped once parsed: it may hold a password.  An empty body is
 * an empty object when optional.
 */
static json_t *
body_json(struct api_request *ar, bool required)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(ar->req);
	size_t len = evbuffer_get_length(in);
	json_error_t jerr;
	char *data;
	json_t *j;

	if (len == 0) {
		if (!required)
			return json_object();
		reply_error(ar, 400, "body: a JSON object is required");
		return NULL;
	}
	data = xmalloc(len);
	if (evbuffer_copyout(in, data, len) != (ev_ssize_t)len)
		fatalx("api: cannot copy a request body out");
	wipe_buffer(in);
	j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	explicit_bzero(data, len);
	free(data);
	if (j == NULL) {
		reply_error(ar, 400, "body is not JSON (line %d, column %d)",
		    jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		reply_error(ar, 400, "body is not a JSON object");
		return NULL;
	}
	return j;
}

/* A string field of 1 to API_FIELD_MAX bytes, or NULL after answering. */
static const char *
body_string(struct api_request *ar, json_t *body, const char *name,
    bool required)
{
	json_t *v = json_object_get(body, name);
	const char *s;

	if (v == NULL || (json_is_null(v) && !required)) {
		if (required)
			reply_error(ar, 400, "body: '%s' is missing", name);
		return NULL;
	}
	s = json_string_value(v);
	if (s == NULL || *s == '\0' || strlen(s) > API_FIELD_MAX) {
		reply_error(ar, 400, "body: '%s' must be a string of 1 to %d "
		    "bytes", name, API_FIELD_MAX);
		return NULL;
	}
	return s;
}

/* GET /health */
static void
route_health(struct api_request *ar, const struct jwt_claims *c)
{
	bool db_ok = adb != NULL && db_async_connected(adb);

	api_reply(ar, 200, json_pack("{s:s,s:b,s:I,s:I,s:I,s:I,s:b,s:b}",
	    "status", db_ok && !sv->stopping ? "ok" : "degraded",
	    "database", db_ok,
	    "workers", (json_int_t)workers_count(),
	    "clinics", (json_int_t)clinics_count(),
	    "queued", (json_int_t)clinics_queued(),
	    "uptime_seconds",
	    (json_int_t)((clock_mono_ms() - sv->started_ms) / 1000),
	    "stopping", sv->stopping,
	    "auth", have_jwt_secret));
}

static void
count_state(struct clinic *c, void *arg)
{
	unsigned *n = arg;

	n[clinic_state(c)]++;
}

static void
metric(struct evbuffer *out, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

/* GET /metrics: Prometheus text format 0.0.4 (CONTRACTS §7). */
static void
route_metrics(struct api_request *ar, const struct jwt_claims *c)
{
	static const enum clinic_state states[] = { CLINIC_IDLE,
	    CLINIC_QUEUED, CLINIC_RUNNING, CLINIC_BACKOFF, CLINIC_HELD };
	struct evbuffer *out = evbuffer_new();
	unsigned by_state[CLINIC_HELD + 1] = { 0 };
	const struct {
		const char *name, *type, *help;
		uint64_t v;
	} one[] = {
		{ "vetsync_workers", "gauge", "Worker processes running.",
		    workers_count() },
		{ "vetsync_workers_max", "gauge", "Cap on concurrent workers.",
		    sv->config->workers.max_concurrent },
		{ "vetsync_database_connected", "gauge", "1 when the event "
		    "loop's database connection is up.",
		    adb != NULL && db_async_connected(adb) },
		{ "vetsync_database_pending_units", "gauge", "Database units "
		    "queued or in flight.",
		    adb != NULL ? db_async_pending(adb) : 0 },
		{ "vetsync_database_queued_bytes", "gauge", "Bytes held by "
		    "database units queued or in flight.",
		    adb != NULL ? db_async_queued_bytes(adb) : 0 },
		{ "vetsync_audit_records_total", "counter", "Audit records "
		    "written to the spool since start.", audit_count() },
		{ "vetsync_audit_refused_total", "counter", "Audit records "
		    "refused since start.", audit_refused() },
		{ "vetsync_audit_spool_bytes", "gauge", "Bytes in the audit "
		    "spool.", audit_spool_size() },
		{ "vetsync_audit_spool_backlog_bytes", "gauge", "Bytes of the "
		    "audit spool not yet in the database.",
		    audit_spool_backlog() },
		{ "vetsync_events_subscribers", "gauge", "Event-stream "
		    "subscribers connected.", n_subscribers },
		{ "vetsync_events_sent_total", "counter", "Events written to "
		    "subscribers since start.", events_sent },
		{ "vetsync_uptime_seconds", "gauge", "Seconds since vetsyncd "
		    "started.", (clock_mono_ms() - sv->started_ms) / 1000 },
	};

	clinics_foreach(count_state, by_state);
	metric(out, "vetsync_clinics", "gauge", "Clinics known, by state.");
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		evbuffer_add_printf(out, "vetsync_clinics{state=\"%s\"} %u\n",
		    clinic_state_name(states[i]), by_state[states[i]]);
	metric(out, "vetsync_jobs_total", "counter",
	    "Jobs ended since start, by kind and result.");
	for (int k = 0; k < API_KINDS; k++)
		for (int ok = 1; ok >= 0; ok--)
			evbuffer_add_printf(out, "vetsync_jobs_total"
			    "{kind=\"%s\",result=\"%s\"} %llu\n",
			    worker_job_kind_name((enum worker_job_kind)k),
			    ok ? "ok" : "failed",
			    (unsigned long long)jobs_done[k][ok]);
	metric(out, "vetsync_http_responses_total", "counter",
	    "HTTP API responses since start, by status class.");
	for (int i = 1; i <= 5; i++)
		evbuffer_add_printf(out, "vetsync_http_responses_total"
		    "{code=\"%dxx\"} %llu\n", i,
		    (unsigned long long)replies[i]);
	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		metric(out, one[i].name, one[i].type, one[i].help);
		evbuffer_add_printf(out, "%s %llu\n", one[i].name,
		    (unsigned long long)one[i].v);
	}
	reply_text(ar, "text/plain; version=0.0.4; charset=utf-8", out);
	evbuffer_free(out);
}

/* configure-credentials: the answer of credentials_set(). */
static void
credentials_answered(json_t *a, void *arg)
{
	struct api_request *ar = arg;
	const char *status = json_string_value(json_object_get(a,
	    "validationStatus"));
	const char *error = json_string_value(json_object_get(a, "error"));
	int code;

	json_object_del(a, "ok");
	if (status == NULL)
		code = error != NULL && (strstr(error, "stopping") != NULL ||
		    strstr(error, "no database") != NULL) ? 503 : 400;
	else if (json_is_true(json_object_get(a, "success")))
		code = 200;
	else if (strcmp(status, "invalid") == 0)
		code = 422;
	else
		code = 503;
	api_reply(ar, code, a);
}

/* POST /api/idexx/configure-credentials {username, password, companyId?} */
static void
route_configure(struct api_request *ar, const struct jwt_claims *c)
{
	const char *user, *pass, *company = NULL;
	json_t *body;

	if ((body = body_json(ar, true)) == NULL)
		return;
	if ((user = body_string(ar, body, "username", true)) == NULL ||
	    (pass = body_string(ar, body, "password", true)) == NULL)
		goto out;
	if (json_object_get(body, "companyId") != NULL &&
	    !json_is_null(json_object_get(body, "companyId")) &&
	    (company = body_string(ar, body, "companyId", false)) == NULL)
		goto out;
	log_info("api: clinic=%s: new credentials submitted", c->sub);
	credentials_set(c->sub, user, pass, company, credentials_answered, ar);
out:
	/* vetsyncd's jansson frees wiped: the password goes here. */
	json_decref(body);
}

/* A unit scoped to the clinic's tenant: BEGIN, role, claims. */
static struct db_unit *
tenant_unit(const char *sub, db_unit_rows_cb *cb, void *arg)
{
	struct db_unit *u = db_unit_new_rows(cb, arg);
	const char *p[1] = { sub };

	(void)db_unit_add(u, "BEGIN", 0, NULL);
	(void)db_unit_add(u, sql_role, 0, NULL);
	(void)db_unit_add(u, sql_claims, 1, p);
	return u;
}

/* False (after answering 503) when the database layer is not there. */
static bool
database_ready(struct api_request *ar)
{
	if (adb != NULL && db_async_connected(adb))
		return true;
	reply_error(ar, 503, "database: not connected; try again later");
	return false;
}

static json_t *
nullable(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static void
status_rows(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	struct api_request *ar = arg;
	const char *state, *valid, *st;
	const char *cred = "not_configured";

	if (r < 0) {
		log_warnx("api: sync-status: %s", error != NULL ? error :
		    strerror(-r));
		reply_error(ar, 503, "database: the sync status could not be "
		    "read");
		return;
	}
	if (db_result_rows(rows) == 0) {
		reply_error(ar, 404, "no such user: the token's sub has no "
		    "users row");
		return;
	}
	state = db_result_value(rows, 0, 1);
	valid = db_result_value(rows, 0, 2);
	if (state != NULL && strcmp(state, "revoked") != 0)
		cred = strcmp(state, "suspended") == 0 || valid == NULL ||
		    strcmp(valid, "valid") != 0 ? "invalid" : "valid";
	st = db_result_value(rows, 0, 3);
	if (st != NULL && strcmp(st, "timeout") == 0)
		st = "failed";
	api_reply(ar, 200, json_pack("{s:o,s:o,s:b,s:s}",
	    "lastSync", st == NULL ? json_null() :
	    json_pack("{s:o,s:s,s:I,s:I}",
	    "timestamp", nullable(db_result_value(rows, 0, 4)),
	    "status", st,
	    "consultationsSynced",
	    (json_int_t)strtoll(db_result_value(rows, 0, 5), NULL, 10),
	    "dischargeCallsScheduled",
	    (json_int_t)strtoll(db_result_value(rows, 0, 6), NULL, 10)),
	    "nextScheduledSync", nullable(db_result_value(rows, 0, 7)),
	    "syncEnabled", strcmp(db_result_value(rows, 0, 0), "t") == 0,
	    "credentialStatus", cred));
}

/* GET /api/idexx/sync-status */
static void
route_status(struct api_request *ar, const struct jwt_claims *c)
{
	const char *p[1] = { c->sub };
	struct db_unit *u;

	if (!database_ready(ar))
		return;
	u = tenant_unit(c->sub, status_rows, ar);
	(void)db_unit_add(u, sql_status, 1, p);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(adb, u);
}

/* POST /api/idexx/trigger-sync {"kind": "notes"|"schedule"}? */
static void
route_trigger(struct api_request *ar, const struct jwt_claims *c)
{
	enum worker_job_kind kind = WORKER_JOB_RECONCILE_NOTES;
	const struct clinic *cl;
	const char *k;
	json_t *body;
	int r;

	if ((body = body_json(ar, false)) == NULL)
		return;
	if (json_object_get(body, "kind") != NULL) {
		k = json_string_value(json_object_get(body, "kind"));
		if (k != NULL && strcmp(k, "schedule") == 0)
			kind = WORKER_JOB_SYNC_SCHEDULE;
		else if (k == NULL || strcmp(k, "notes") != 0) {
			json_decref(body);
			reply_error(ar, 400, "body: 'kind' must be \"notes\" "
			    "or \"schedule\"");
			return;
		}
	}
	json_decref(body);
	if ((r = clinic_request(c->sub, kind, true)) < 0) {
		reply_error(ar, r == -ESHUTDOWN ? 503 : 400, "trigger-sync: %s",
		    r == -ESHUTDOWN ? "vetsyncd is stopping" :
		    "the token's sub is not a clinic id");
		return;
	}
	clinics_pump();
	cl = clinic_find(c->sub);
	log_info("api: clinic=%s: %s sync requested", c->sub,
	    worker_job_kind_name(kind));
	api_reply(ar, 202, json_pack("{s:b,s:s,s:s,s:s}", "queued", true,
	    "state", cl != NULL ? clinic_state_name(clinic_state(cl)) :
	    "queued",
	    "status", cl != NULL && clinic_state(cl) == CLINIC_RUNNING ?
	    "started" : "queued", "kind",
	    kind == WORKER_JOB_SYNC_SCHEDULE ? "schedule" : "notes"));
}

struct revoking {
	struct api_request *ar;
	char sub[37];
};

static void
revoke_rows(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	struct revoking *rv = arg;
	bool found;

	if (r < 0) {
		log_warnx("api: clinic=%s: revoke: %s", rv->sub,
		    error != NULL ? error : strerror(-r));
		reply_error(rv->ar, 503, "database: the credentials could not "
		    "be revoked");
		free(rv);
		return;
	}
	found = db_result_rows(rows) > 0;
	audit_record("credentials_revoked", rv->sub, 0, json_pack("{s:s,s:b}",
	    "reason", "revoked through the HTTP API", "found", found));
	log_info("api: clinic=%s: credentials %s", rv->sub, found ?
	    "revoked" : "not revoked (none stored, or revoked already)");
	api_reply(rv->ar, 200, json_pack("{s:b}", "revoked", found));
	free(rv);
}

/* DELETE /api/idexx/credentials: the trigger's NOTIFY kills the worker. */
static void
route_revoke(struct api_request *ar, const struct jwt_claims *c)
{
	struct revoking *rv;
	struct db_unit *u;
	const char *p[1] = { c->sub };

	if (!database_ready(ar))
		return;
	rv = xcalloc(1, sizeof(*rv));
	rv->ar = ar;
	snprintf(rv->sub, sizeof(rv->sub), "%s", c->sub);
	u = tenant_unit(c->sub, revoke_rows, rv);
	(void)db_unit_add(u, sql_revoke, 1, p);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(adb, u);
}

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
	    "lastOutcome", nullable(last));
}

static void
add_clinic(struct clinic *c, void *arg)
{
	json_array_append_new(arg, clinic_json(c));
}

static json_t *
clinics_json(void)
{
	json_t *a = json_array();

	clinics_foreach(add_clinic, a);
	return a;
}

static void
admin_rows(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	struct api_request *ar = arg;
	json_t *m, *day, *hour;
	json_int_t syncs, fails;
	const char *text;

	if (r < 0 || db_result_rows(rows) != 1 ||
	    (text = db_result_value(rows, 0, 0)) == NULL ||
	    (m = json_loads(text, 0, NULL)) == NULL) {
		log_warnx("api: admin metrics: %s", error != NULL ? error :
		    "no result");
		reply_error(ar, 503, "database: the metrics could not be read");
		return;
	}
	day = json_object_get(m, "last24Hours");
	hour = json_object_get(m, "lastHour");
	syncs = json_integer_value(json_object_get(day, "syncs"));
	fails = json_integer_value(json_object_get(day, "failures"));
	json_object_set_new(m, "successRate", json_real(syncs > 0 ?
	    100.0 * (double)(syncs - fails) / (double)syncs : 100.0));
	json_object_set(m, "averageSyncTime",
	    json_object_get(day, "averageSyncTime"));
	syncs = json_integer_value(json_object_get(hour, "syncs"));
	fails = json_integer_value(json_object_get(hour, "failures"));
	json_object_set_new(m, "failureRateLastHour", json_real(syncs > 0 ?
	    (double)fails / (double)syncs : 0.0));
	json_object_set_new(m, "clinics", clinics_json());
	json_object_set_new(m, "running", json_integer(clinics_running()));
	json_object_set_new(m, "queued", json_integer(clinics_queued()));
	json_object_set_new(m, "workers", json_integer(workers_count()));
	api_reply(ar, 200, m);
}

/* GET /api/admin/idexx-sync/metrics (admin or service role) */
static void
route_admin(struct api_request *ar, const struct jwt_claims *c)
{
	struct db_unit *u;

	if (!database_ready(ar))
		return;
	u = db_unit_new_rows(admin_rows, ar);
	(void)db_unit_add(u, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	    0, NULL);
	(void)db_unit_add(u, "SET LOCAL ROLE service_role", 0, NULL);
	(void)db_unit_add(u, sql_admin, 0, NULL);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(adb, u);
}

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

/* GET /dashboard */
static void
route_dashboard(struct api_request *ar, const struct jwt_claims *c)
{
	struct evbuffer *out = evbuffer_new();

	evbuffer_add(out, dashboard_html, sizeof(dashboard_html) - 1);
	evhttp_add_header(evhttp_request_get_output_headers(ar->req),
	    "Content-Security-Policy", "default-src 'self'; "
	    "script-src 'unsafe-inline'; style-src 'unsafe-inline'");
	reply_text(ar, "text/html; charset=utf-8", out);
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
		request_detach(ar);
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
static void
route_events(struct api_request *ar, const struct jwt_claims *c)
{
	json_t *snap;
	char *text;

	if (n_subscribers >= API_SSE_MAX) {
		reply_error(ar, 503, "events: %d subscribers already (the "
		    "limit)", API_SSE_MAX);
		return;
	}
	LIST_REMOVE(ar, entry);
	ar->stream = true;
	LIST_INSERT_HEAD(&subscribers, ar, entry);
	n_subscribers++;
	add_headers(ar->req, "text/event-stream");
	count_reply(200);
	evhttp_send_reply_start(ar->req, 200, "OK");
	snap = json_pack("{s:o}", "clinics", clinics_json());
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

static const struct api_route routes[] = {
	{ "/health", EVHTTP_REQ_GET, AUTH_NONE, route_health },
	{ "/metrics", EVHTTP_REQ_GET, AUTH_NONE, route_metrics },
	{ "/dashboard", EVHTTP_REQ_GET, AUTH_NONE, route_dashboard },
	{ "/api/idexx/events", EVHTTP_REQ_GET, AUTH_NONE, route_events },
	{ "/api/idexx/configure-credentials", EVHTTP_REQ_POST, AUTH_USER,
	    route_configure },
	{ "/api/idexx/sync-status", EVHTTP_REQ_GET, AUTH_USER, route_status },
	{ "/api/idexx/trigger-sync", EVHTTP_REQ_POST, AUTH_USER,
	    route_trigger },
	{ "/api/idexx/credentials", EVHTTP_REQ_DELETE, AUTH_USER,
	    route_revoke },
	{ "/api/admin/idexx-sync/metrics", EVHTTP_REQ_GET, AUTH_ADMIN,
	    route_admin },
};

static const char *
method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	case EVHTTP_REQ_TRACE:
		return "TRACE";
	case EVHTTP_REQ_CONNECT:
		return "CONNECT";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	}
	return "?";
}

/* Check the bearer token; false after answering 401, 403 or 503. */
static bool
authenticate(struct api_request *ar, const struct api_route *rt,
    struct jwt_claims *c)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(
	    ar->req), "Authorization");
	char reason[JWT_REASON_MAX];
	struct jwt_expect e = {
		.key = jwt_secret.data,
		.keylen = jwt_secret.len,
		.audience = sv->config->api.jwt_audience,
		.issuer = sv->config->api.jwt_issuer,
		.now = clock_wall_ms() / 1000,
		.leeway = JWT_LEEWAY,
		.require_sub = rt->auth == AUTH_USER,
	};

	if (!have_jwt_secret) {
		reply_error(ar, 503, "%s: authentication is not configured "
		    "(no jwt-secret)", rt->path);
		return false;
	}
	if (h == NULL) {
		reply_error(ar, 401, "%s: missing Authorization: Bearer token",
		    rt->path);
		return false;
	}
	if (strncasecmp(h, "Bearer ", 7) != 0) {
		reply_error(ar, 401, "%s: Authorization is not a Bearer token",
		    rt->path);
		return false;
	}
	h += 7;
	while (*h == ' ')
		h++;
	if (jwt_verify(&e, h, c, reason, sizeof(reason)) < 0) {
		log_info("api: %s %s: token refused: %s",
		    method_name(rt->method), rt->path, reason);
		reply_error(ar, 401, "%s", reason);
		return false;
	}
	if (rt->auth == AUTH_ADMIN && !c->admin) {
		reply_error(ar, 403, "%s: role '%s' may not read this (needs "
		    "service_role or app_metadata.role admin)", rt->path,
		    log_q(c->role));
		return false;
	}
	return true;
}

static void
route_delivery(struct api_request *ar, const struct delivery *d)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(ar->req);
	struct evbuffer *in = evhttp_request_get_input_buffer(ar->req);
	size_t len = evbuffer_get_length(in);
	unsigned char *body;

	body = len > 0 ? evbuffer_pullup(in, (ev_ssize_t)len) : NULL;
	d->fn(ar, evhttp_find_header(h, "Upstash-Signature"),
	    evhttp_find_header(h, "Upstash-Message-Id"),
	    evhttp_find_header(h, "Upstash-Retried"),
	    body != NULL ? body : (const unsigned char *)"", len, d->arg);
}

static void
dispatch(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	struct api_request *ar = request_new(req);
	const struct api_route *rt = NULL;
	struct jwt_claims claims;
	size_t len;

	if (path == NULL || *path == '\0')
		path = "/";
	log_debug("api: %s %s", method_name(m), log_q(path));
	if (strlen(path) > API_PATH_MAX) {
		reply_error(ar, 414, "path over the %d byte limit",
		    API_PATH_MAX);
		return;
	}
	len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
	if (len > sv->config->api.body_max) {
		reply_error(ar, 413, "body of %zu bytes over the %llu byte "
		    "limit (api.body_max)", len,
		    (unsigned long long)sv->config->api.body_max);
		return;
	}
	for (size_t i = 0; i < n_deliveries; i++) {
		if (strcmp(path, deliveries[i].path) != 0)
			continue;
		if (m != EVHTTP_REQ_POST) {
			reply_error(ar, 405, "%s: method %s not allowed "
			    "(POST)", deliveries[i].path, method_name(m));
			return;
		}
		route_delivery(ar, &deliveries[i]);
		return;
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strcmp(path, routes[i].path) == 0) {
			rt = &routes[i];
			break;
		}
	if (rt == NULL) {
		reply_error(ar, 404, "no such path: %s", log_q(path));
		return;
	}
	if (m != rt->method) {
		reply_error(ar, 405, "%s: method %s not allowed (%s)",
		    rt->path, method_name(m), method_name(rt->method));
		return;
	}
	memset(&claims, 0, sizeof(claims));
	if (rt->auth != AUTH_NONE && !authenticate(ar, rt, &claims))
		return;
	rt->fn(ar, &claims);
}

void
api_delivery_register(const char *path, api_delivery_fn *fn, void *arg)
{
	if (path == NULL || path[0] != '/' || fn == NULL ||
	    strlen(path) > API_PATH_MAX)
		fatalx("api: delivery path '%s' is not a path",
		    path != NULL ? path : "(null)");
	for (size_t i = 0; i < n_deliveries; i++)
		if (strcmp(deliveries[i].path, path) == 0) {
			deliveries[i].fn = fn;
			deliveries[i].arg = arg;
			return;
		}
	if (n_deliveries == API_DELIVERY_MAX)
		fatalx("api: more than %d delivery paths", API_DELIVERY_MAX);
	deliveries[n_deliveries].path = xstrdup(path);
	deliveries[n_deliveries].fn = fn;
	deliveries[n_deliveries].arg = arg;
	n_deliveries++;
}

static struct bufferevent *
tls_bev(struct event_base *base, void *arg)
{
	SSL *ssl = SSL_new(ssl_ctx);

	if (ssl == NULL)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

static int
tls_setup(const struct config *cf, char *err, size_t errsz)
{
	if ((ssl_ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION) != 1) {
		snprintf(err, errsz, "api: cannot create a TLS context");
		return -ENOMEM;
	}
	if (SSL_CTX_use_certificate_chain_file(ssl_ctx, cf->api.tls_cert) !=
	    1) {
		snprintf(err, errsz, "api.tls_cert '%s': not a PEM "
		    "certificate chain we can read", cf->api.tls_cert);
		return -EINVAL;
	}
	if (SSL_CTX_use_PrivateKey_file(ssl_ctx, cf->api.tls_key,
	    SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ssl_ctx) != 1) {
		snprintf(err, errsz, "api.tls_key '%s': not a PEM private key "
		    "of api.tls_cert", cf->api.tls_key);
		return -EINVAL;
	}
	ERR_clear_error();
	return 0;
}

/* "127.0.0.1:3001" or "[::1]:3001" into host and port. */
static int
split_listen(const char *listen, char *host, size_t hostsz, unsigned *port)
{
	const char *colon = strrchr(listen, ':');
	const char *h = listen;
	unsigned long p;
	char *end;
	size_t n;

	if (colon == NULL)
		return -EINVAL;
	n = (size_t)(colon - listen);
	if (n >= 2 && listen[0] == '[' && listen[n - 1] == ']') {
		h++;
		n -= 2;
	}
	if (n == 0 || n >= hostsz)
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || p == 0 || p > 65535)
		return -EINVAL;
	*port = (unsigned)p;
	return 0;
}

int
api_start(struct db_async *db, char *err, size_t errsz)
{
	const struct config *cf = sv->config;
	struct timeval tv = clock_timeval_ms(API_HEARTBEAT_MS);
	char host[128], serr[SECRET_ERR_MAX];
	unsigned port;
	int r;

	if (http != NULL)
		return 0;
	if (split_listen(cf->api.listen, host, sizeof(host), &port) < 0) {
		snprintf(err, errsz, "api.listen '%s': not host:port",
		    cf->api.listen);
		return -EINVAL;
	}
	adb = db;
	if (secret_read(SECRET_JWT_SECRET, &jwt_secret, serr,
	    sizeof(serr)) == 0)
		have_jwt_secret = true;
	else
		log_warnx("api: %s: user routes answer 503 until it is there",
		    serr);
	if (cf->api.jwks_url != NULL)
		log_warnx("api.jwks_url: RS256/ES256 tokens are not supported "
		    "yet; only HS256 tokens signed with jwt-secret are "
		    "accepted");
	if (cf->api.tls_cert != NULL && (r = tls_setup(cf, err, errsz)) < 0)
		goto fail;
	if ((http = evhttp_new(sv->base)) == NULL) {
		snprintf(err, errsz, "api: cannot create the HTTP server");
		r = -ENOMEM;
		goto fail;
	}
	if (ssl_ctx != NULL)
		evhttp_set_bevcb(http, tls_bev, NULL);
	evhttp_set_max_headers_size(http, API_HEADERS_MAX);
	evhttp_set_max_body_size(http,
	    (ev_ssize_t)(cf->api.body_max + API_BODY_SLACK));
	evhttp_set_timeout(http, 30);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http, dispatch, NULL);
	if (evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port) ==
	    NULL) {
		snprintf(err, errsz, "api.listen '%s': cannot listen: %s",
		    cf->api.listen, strerror(errno));
		r = -EADDRINUSE;
		goto fail;
	}
	heartbeat = event_new(sv->base, -1, EV_PERSIST, heartbeat_cb, NULL);
	evtimer_add(heartbeat, &tv);
	log_info("api: listening on %s (%s)", cf->api.listen,
	    ssl_ctx != NULL ? "TLS" : "plain HTTP");
	return 0;
fail:
	api_stop();
	return r;
}

void
api_stop(void)
{
	struct api_request *ar;

	/*
	 * What still waits for an answer is detached: evhttp_free() frees
	 * the requests, and a handler's late api_reply() just frees ours.
	 */
	LIST_FOREACH(ar, &pending, entry) {
		request_detach(ar);
		ar->req = NULL;
	}
	while ((ar = LIST_FIRST(&subscribers)) != NULL) {
		LIST_REMOVE(ar, entry);
		request_detach(ar);
		free(ar);
	}
	n_subscribers = 0;
	if (heartbeat != NULL)
		event_free(heartbeat);
	heartbeat = NULL;
	if (http != NULL)
		evhttp_free(http);
	http = NULL;
	if (ssl_ctx != NULL)
		SSL_CTX_free(ssl_ctx);
	ssl_ctx = NULL;
	if (have_jwt_secret)
		buf_release_secret(&jwt_secret);
	have_jwt_secret = false;
	adb = NULL;
	for (size_t i = 0; i < n_deliveries; i++)
		free(deliveries[i].path);
	n_deliveries = 0;
}
