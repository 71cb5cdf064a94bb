/*
 * vetsyncd's HTTP API (api.h), on evhttp.  Every request is wrapped in a
 * struct api_request that lives until it is answered (api_reply()); when
 * the client goes away first, the connection's close callback detaches it
 * and the late answer is dropped, so an asynchronous handler (a database
 * unit, a validation job) never writes to a freed connection.  Routes are
 * a table of { path, method, authentication, handler }: a known path with
 * another method is 405, an unknown one 404.
 *
 * The PRD's routes are in api_idexx.c, the event stream and the dashboard
 * in api_events.c; what they share is api_int.h.
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
#include "supervisor/api_int.h"
#include "supervisor/audit.h"
#include "supervisor/clinics.h"
#include "supervisor/config.h"
#include "supervisor/db.h"
#include "supervisor/events.h"
#include "supervisor/jwks.h"
#include "supervisor/jws.h"
#include "supervisor/jwt.h"
#include "supervisor/secrets.h"
#include "supervisor/supervisor.h"
#include "supervisor/workers.h"

#define API_BODY_SLACK	(64 * 1024)	/* past body_max: evhttp's 413 */
#define API_PATH_MAX	256
#define API_FIELD_MAX	1024		/* bytes of a credential field */
#define API_JWKS_WAITERS 64		/* requests waiting on a JWKS fetch */

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
static struct delivery deliveries[API_DELIVERY_MAX];
static size_t n_deliveries;

/* Requests whose token named a kid the JWKS fetch in flight may bring. */
static struct jwks_waiter {
	struct api_request	*ar;
	const struct api_route	*rt;
} waiters[API_JWKS_WAITERS];
static size_t n_waiters;

/* Counters for /metrics, since start. */
static uint64_t replies[6];			/* by status class, 1xx..5xx */

struct db_async *
api_db(void)
{
	return adb;
}

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
	if (ar->stream)
		api_events_closed(ar);
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
void
api_request_detach(struct api_request *ar)
{
	if (ar->evcon != NULL)
		evhttp_connection_set_closecb(ar->evcon, NULL, NULL);
	ar->evcon = NULL;
}

void
api_headers(struct evhttp_request *req, const char *type)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	if (type != NULL)
		evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
}

void
api_count_reply(int status)
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
	api_request_detach(ar);
	if (ar->req == NULL) {
		log_debug("api: the client left before the answer (%d)",
		    status);
		json_decref(body);
		free(ar);
		return;
	}
	out = evbuffer_new();
	api_headers(ar->req, body != NULL ? "application/json" : NULL);
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
	api_count_reply(status);
	evhttp_send_reply(ar->req, status, NULL, out);
	evbuffer_free(out);
	free(ar);
}

void
api_error(struct api_request *ar, int status, const char *fmt, ...)
{
	char msg[API_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	api_reply(ar, status, json_pack("{s:s}", "error", msg));
}

/* A fixed text body (HTML, metrics). */
void
api_reply_text(struct api_request *ar, const char *type,
    struct evbuffer *out)
{
	LIST_REMOVE(ar, entry);
	api_request_detach(ar);
	api_headers(ar->req, type);
	api_count_reply(200);
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
json_t *
api_body_json(struct api_request *ar, bool required)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(ar->req);
	size_t len = evbuffer_get_length(in);
	json_error_t jerr;
	char *data;
	json_t *j;

	if (len == 0) {
		if (!required)
			return json_object();
		api_error(ar, 400, "body: a JSON object is required");
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
		api_error(ar, 400, "body is not JSON (line %d, column %d)",
		    jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		api_error(ar, 400, "body is not a JSON object");
		return NULL;
	}
	return j;
}

/* A string field of 1 to API_FIELD_MAX bytes, or NULL after answering. */
const char *
api_body_string(struct api_request *ar, json_t *body, const char *name,
    bool required)
{
	json_t *v = json_object_get(body, name);
	const char *s;

	if (v == NULL || (json_is_null(v) && !required)) {
		if (required)
			api_error(ar, 400, "body: '%s' is missing", name);
		return NULL;
	}
	s = json_string_value(v);
	if (s == NULL || *s == '\0' || strlen(s) > API_FIELD_MAX) {
		api_error(ar, 400, "body: '%s' must be a string of 1 to %d "
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
	    "auth", have_jwt_secret || jwks_enabled()));
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
		{ "vetsync_uptime_seconds", "gauge", "Seconds since vetsyncd "
		    "started.", (clock_mono_ms() - sv->started_ms) / 1000 },
		{ "vetsync_jwks_keys", "gauge", "Keys of api.jwks_url in use.",
		    jws_keys_count(jwks_keys()) },
		{ "vetsync_jwks_fetches_total", "counter", "Fetches of "
		    "api.jwks_url ended since start.", jwks_fetches() },
		{ "vetsync_jwks_fetch_failures_total", "counter", "Fetches of "
		    "api.jwks_url that failed since start (the last good keys "
		    "stayed in use).", jwks_failures() },
	};

	clinics_foreach(count_state, by_state);
	metric(out, "vetsync_clinics", "gauge", "Clinics known, by state.");
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		evbuffer_add_printf(out, "vetsync_clinics{state=\"%s\"} %u\n",
		    clinic_state_name(states[i]), by_state[states[i]]);
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
	api_events_metrics(out);
	events_metrics(out);
	api_reply_text(ar, "text/plain; version=0.0.4; charset=utf-8", out);
	evbuffer_free(out);
}

json_t *
api_nullable(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static const struct api_route routes[] = {
	{ "/health", EVHTTP_REQ_GET, AUTH_NONE, route_health },
	{ "/metrics", EVHTTP_REQ_GET, AUTH_NONE, route_metrics },
	{ "/dashboard", EVHTTP_REQ_GET, AUTH_NONE, api_route_dashboard },
	{ "/api/idexx/events", EVHTTP_REQ_GET, AUTH_NONE, api_route_events },
	{ "/api/idexx/configure-credentials", EVHTTP_REQ_POST, AUTH_USER,
	    api_route_configure },
	{ "/api/idexx/sync-status", EVHTTP_REQ_GET, AUTH_USER,
	    api_route_status },
	{ "/api/idexx/trigger-sync", EVHTTP_REQ_POST, AUTH_USER,
	    api_route_trigger },
	{ "/api/idexx/credentials", EVHTTP_REQ_DELETE, AUTH_USER,
	    api_route_revoke },
	{ "/api/admin/idexx-sync/metrics", EVHTTP_REQ_GET, AUTH_ADMIN,
	    api_route_admin },
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

/*
 * Check the bearer token; false after answering 401, 403 or 503, or (when
 * may_wait) after parking the request until the JWKS fetch its unknown kid
 * asked for has ended (jwks_done() carries on).
 */
static bool
authenticate(struct api_request *ar, const struct api_route *rt,
    struct jwt_claims *c, bool may_wait)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(
	    ar->req), "Authorization");
	char reason[JWT_REASON_MAX];
	struct jwt_expect e = {
		.key = have_jwt_secret ? jwt_secret.data : NULL,
		.keylen = have_jwt_secret ? jwt_secret.len : 0,
		.keys = jwks_keys(),
		.audience = sv->config->api.jwt_audience,
		.issuer = sv->config->api.jwt_issuer,
		.now = clock_wall_ms() / 1000,
		.leeway = JWT_LEEWAY,
		.require_sub = rt->auth == AUTH_USER,
	};

	int r;

	if (!have_jwt_secret && !jwks_enabled()) {
		api_error(ar, 503, "%s: authentication is not configured "
		    "(no jwt-secret, no api.jwks_url)", rt->path);
		return false;
	}
	if (h == NULL) {
		api_error(ar, 401, "%s: missing Authorization: Bearer token",
		    rt->path);
		return false;
	}
	if (strncasecmp(h, "Bearer ", 7) != 0) {
		api_error(ar, 401, "%s: Authorization is not a Bearer token",
		    rt->path);
		return false;
	}
	h += 7;
	while (*h == ' ')
		h++;
	r = jwt_verify(&e, h, c, reason, sizeof(reason));
	if (r == -ENOKEY && may_wait && n_waiters < API_JWKS_WAITERS &&
	    jwks_refresh_for_miss()) {
		log_debug("api: %s %s: unknown kid, waiting for the JWKS",
		    method_name(rt->method), rt->path);
		waiters[n_waiters].ar = ar;
		waiters[n_waiters].rt = rt;
		n_waiters++;
		return false;
	}
	if (r < 0) {
		log_info("api: %s %s: token refused: %s",
		    method_name(rt->method), rt->path, reason);
		api_error(ar, 401, "%s", reason);
		return false;
	}
	if (rt->auth == AUTH_ADMIN && !c->admin) {
		api_error(ar, 403, "%s: role '%s' may not read this (needs "
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
		api_error(ar, 414, "path over the %d byte limit",
		    API_PATH_MAX);
		return;
	}
	len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
	if (len > sv->config->api.body_max) {
		api_error(ar, 413, "body of %zu bytes over the %llu byte "
		    "limit (api.body_max)", len,
		    (unsigned long long)sv->config->api.body_max);
		return;
	}
	for (size_t i = 0; i < n_deliveries; i++) {
		if (strcmp(path, deliveries[i].path) != 0)
			continue;
		if (m != EVHTTP_REQ_POST) {
			api_error(ar, 405, "%s: method %s not allowed "
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
		api_error(ar, 404, "no such path: %s", log_q(path));
		return;
	}
	if (m != rt->method) {
		api_error(ar, 405, "%s: method %s not allowed (%s)",
		    rt->path, method_name(m), method_name(rt->method));
		return;
	}
	memset(&claims, 0, sizeof(claims));
	if (rt->auth != AUTH_NONE && !authenticate(ar, rt, &claims, true))
		return;
	rt->fn(ar, &claims);
}

/* A JWKS fetch ended: the requests it held go on, once, with what it got. */
static void
jwks_done(bool cancelled)
{
	struct jwks_waiter w[API_JWKS_WAITERS];
	struct jwt_claims claims;
	size_t n = n_waiters;

	memcpy(w, waiters, n * sizeof(w[0]));
	n_waiters = 0;
	for (size_t i = 0; i < n; i++) {
		if (w[i].ar->req == NULL)	/* the client left */
			api_reply(w[i].ar, 0, NULL);
		else if (cancelled || sv->stopping)
			api_error(w[i].ar, 503, "%s: vetsyncd is stopping",
			    w[i].rt->path);
		else {
			memset(&claims, 0, sizeof(claims));
			if (authenticate(w[i].ar, w[i].rt, &claims, false))
				w[i].rt->fn(w[i].ar, &claims);
		}
	}
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
	else if (cf->api.jwks_url == NULL)
		log_warnx("api: %s: user routes answer 503 until it is there",
		    serr);
	else
		log_info("api: %s: only RS256/ES256 tokens of api.jwks_url's "
		    "keys are accepted", serr);
	if (cf->api.jwks_url != NULL &&
	    (r = jwks_start(sv->base, cf->api.jwks_url, NULL, jwks_done)) < 0) {
		snprintf(err, errsz, "api.jwks_url: cannot start fetching: %s",
		    strerror(-r));
		goto fail;
	}
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
	/* Every method evhttp knows reaches dispatch(): 405 in JSON. */
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
	    EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
	    EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http, dispatch, NULL);
	if (evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port) ==
	    NULL) {
		snprintf(err, errsz, "api.listen '%s': cannot listen: %s",
		    cf->api.listen, strerror(errno));
		r = -EADDRINUSE;
		goto fail;
	}
	api_events_start();
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
		api_request_detach(ar);
		ar->req = NULL;
	}
	/* No JWKS fetch will end for them now: theirs is the last word. */
	for (size_t i = 0; i < n_waiters; i++)
		api_reply(waiters[i].ar, 0, NULL);
	n_waiters = 0;
	jwks_stop();
	api_events_stop();
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
