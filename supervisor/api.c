/*
 * vetsyncd's HTTP API (api.h), on evhttp.  Every request is wrapped in a
 * struct api_request that lives until it is answered (api_reply()); when
 * the client goes away first, the connection's close callback detaches it
 * and the late answer is dropped, so an asynchronous handler never writes
 * to a freed connection.  Routes are a table of { path, method, auth,
 * handler }: a known path with another method is 405, an unknown one 404.
 *
 * evhttp itself refuses a body past api.body_max + API_BODY_SLACK (its own
 * 413); between api.body_max and that, the answer is ours (JSON).
 */
#include <sys/queue.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
#include "supervisor/clinics.h"
#include "supervisor/config.h"
#include "supervisor/db.h"
#include "supervisor/secrets.h"
#include "supervisor/supervisor.h"
#include "supervisor/workers.h"

#define API_BODY_SLACK	(64 * 1024)	/* past body_max, evhttp's 413 */
#define API_PATH_MAX	256

struct api_request {
	struct evhttp_request *req;	/* NULL: the client went away */
	struct evhttp_connection *evcon;
	LIST_ENTRY(api_request) entry;
};

struct delivery {
	char *path;
	api_delivery_fn *fn;
	void *arg;
};

static struct evhttp *http;
static struct evhttp_bound_socket *bound;
static SSL_CTX *ssl_ctx;
static struct db_async *adb;
static struct buf jwt_secret;
static bool have_jwt_secret;
static LIST_HEAD(, api_request) pending = LIST_HEAD_INITIALIZER(pending);
static struct delivery deliveries[API_DELIVERY_MAX];
static size_t n_deliveries;

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

static void
request_free(struct api_request *ar)
{
	if (ar->evcon != NULL)
		evhttp_connection_set_closecb(ar->evcon, NULL, NULL);
	LIST_REMOVE(ar, entry);
	free(ar);
}

void
api_reply(struct api_request *ar, int status, json_t *body)
{
	struct evbuffer *out;
	struct evkeyvalq *h;
	char *text = NULL;

	if (ar == NULL) {
		json_decref(body);
		return;
	}
	if (ar->req == NULL) {
		log_debug("api: client gone before the answer (%d)", status);
		json_decref(body);
		request_free(ar);
		return;
	}
	out = evbuffer_new();
	h = evhttp_request_get_output_headers(ar->req);
	if (body != NULL) {
		text = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		evhttp_add_header(h, "Content-Type", "application/json");
		if (text != NULL) {
			evbuffer_add(out, text, strlen(text));
			evbuffer_add(out, "\n", 1);
		}
		free(text);
	}
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_send_reply(ar->req, status, NULL, out);
	evbuffer_free(out);
	/* evhttp_send_reply may have freed the connection: closecb is gone. */
	ar->evcon = NULL;
	request_free(ar);
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

/* GET /health: no authentication, nothing secret. */
static void
route_health(struct api_request *ar)
{
	bool db_ok = adb != NULL && db_async_connected(adb);

	api_reply(ar, 200, json_pack("{s:s,s:b,s:I,s:I,s:I,s:I,s:b}",
	    "status", db_ok && !sv->stopping ? "ok" : "degraded",
	    "database", db_ok,
	    "workers", (json_int_t)workers_count(),
	    "clinics", (json_int_t)clinics_count(),
	    "queued", (json_int_t)clinics_queued(),
	    "uptime_seconds",
	    (json_int_t)((clock_mono_ms() - sv->started_ms) / 1000),
	    "stopping", sv->stopping));
}

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
	size_t len;

	if (path == NULL || *path == '\0')
		path = "/";
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
	if (strcmp(path, "/health") == 0) {
		if (m != EVHTTP_REQ_GET) {
			reply_error(ar, 405, "/health: method %s not allowed "
			    "(GET)", method_name(m));
			return;
		}
		route_health(ar);
		return;
	}
	reply_error(ar, 404, "no such path: %s", log_q(path));
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

void
api_event(const char *type, json_t *data)
{
	(void)type;
	(void)data;
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
	size_t n;
	char *end;
	unsigned long p;

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
	r = secret_read(SECRET_JWT_SECRET, &jwt_secret, serr, sizeof(serr));
	if (r == 0)
		have_jwt_secret = true;
	else
		log_warnx("api: %s: user routes answer 503 until it is there",
		    serr);
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
	if ((bound = evhttp_bind_socket_with_handle(http, host,
	    (ev_uint16_t)port)) == NULL) {
		snprintf(err, errsz, "api.listen '%s': cannot listen: %s",
		    cf->api.listen, strerror(errno));
		r = -EADDRINUSE;
		goto fail;
	}
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
		if (ar->evcon != NULL)
			evhttp_connection_set_closecb(ar->evcon, NULL, NULL);
		ar->evcon = NULL;
		ar->req = NULL;
	}
	if (http != NULL)
		evhttp_free(http);
	http = NULL;
	bound = NULL;
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
