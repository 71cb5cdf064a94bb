/*
 * idexx_sim: a simulator of IDEXX Neo for vetsync's tests and benchmarks.
 *
 * It serves the two site profiles of DESIGN §4 ("neo": JSON behind a cookie
 * session; "prd-html": the PRD's pages) for N clinic accounts, with data
 * generated from --seed, and the failure modes a client must survive:
 * expiring sessions, 429 with Retry-After, 5xx, latency, broken bodies and
 * a changed UI.  Tests steer it at run time through /__sim/control and read
 * /__sim/stats and /__sim/expected (loopback peers only).
 *
 * This file holds the command line, the HTTP plumbing (libevent's evhttp,
 * optionally over TLS) and failure injection; see tests/sim/sim.h for the
 * other modules.  One log line per request goes to stderr; form bodies,
 * and so passwords, are never logged.
 *
 * Quirks, on purpose: --latency-ms delays every answer (the network),
 * --slow-ms adds to it on the pages behind the session only (a slow
 * backend); --body breaks only those pages too, so a client can still log
 * in.  429 and 5xx hit every request but the control endpoint.  Sessions
 * are attributed to clinics by cookie, logins by user name.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/xmalloc.h"

#include "tests/sim/services.h"
#include "tests/sim/sim.h"

#define SIM_BODY_MAX		(64 * 1024)
#define SIM_HEADERS_MAX		(16 * 1024)
#define SIM_COOKIE_MAX		128

struct sim sim;

/* An answer waiting for its simulated latency. */
struct pending {
	struct evhttp_request	*req;
	struct evbuffer		*body;
	struct event		*timer;
	int			 code;
	unsigned int		 clinic;
	TAILQ_ENTRY(pending)	 entry;
};

static TAILQ_HEAD(, pending) pendings = TAILQ_HEAD_INITIALIZER(pendings);
static struct event_base *base;

static const char *
reason_of(int code)
{
	switch (code) {
	case 200: return "OK";
	case 302: return "Found";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

static void
count(unsigned int clinic, size_t field_offset)
{
	*(uint64_t *)((char *)&sim.stats[0] + field_offset) += 1;
	if (clinic != 0)
		*(uint64_t *)((char *)&sim.stats[clinic] + field_offset) += 1;
}
#define COUNT(c, f)	count((c), offsetof(struct sim_stats, f))

static void
send_now(struct evhttp_request *req, int code, struct evbuffer *body,
    unsigned int clinic, bool stats)
{
	size_t len = evbuffer_get_length(body);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);

	if (evhttp_find_header(out, "Content-Type") == NULL)
		evhttp_add_header(out, "Content-Type",
		    "text/html; charset=utf-8");
	if (stats) {
		sim.stats[0].bytes += len;
		if (clinic != 0)
			sim.stats[clinic].bytes += len;
	}
	log_info("%s %s clinic=%u status=%d bytes=%zu",
	    evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST" :
	    "GET", log_q(evhttp_request_get_uri(req)), clinic, code, len);
	evhttp_send_reply(req, code, reason_of(code), body);
}

static void
pending_fire(evutil_socket_t fd, short what, void *arg)
{
	struct pending *p = arg;

	TAILQ_REMOVE(&pendings, p, entry);
	send_now(p->req, p->code, p->body, p->clinic, true);
	evbuffer_free(p->body);
	event_free(p->timer);
	free(p);
}

static void
finish(struct evhttp_request *req, int code, struct evbuffer *body,
    unsigned int clinic, uint64_t delay_ms)
{
	struct pending *p;
	struct timeval tv;

	if (delay_ms == 0) {
		send_now(req, code, body, clinic, true);
		return;
	}
	p = xcalloc(1, sizeof(*p));
	p->req = req;
	p->code = code;
	p->clinic = clinic;
	p->body = evbuffer_new();
	evbuffer_add_buffer(p->body, body);
	p->timer = evtimer_new(base, pending_fire, p);
	if (p->body == NULL || p->timer == NULL)
		fatalx("out of memory");
	tv.tv_sec = (time_t)(delay_ms / 1000);
	tv.tv_usec = (suseconds_t)(delay_ms % 1000) * 1000;
	evtimer_add(p->timer, &tv);
	TAILQ_INSERT_TAIL(&pendings, p, entry);
}

static uint64_t
draw_micro(void)
{
	return data_next(&sim.prng) % 1000000;
}

/* The value of cookie name, or false. */
static bool
cookie(struct evhttp_request *req, const char *name, char *out, size_t size)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	struct evkeyval *kv;
	size_t nlen = strlen(name), vlen;
	const char *p, *e;

	TAILQ_FOREACH(kv, h, next) {
		if (strcasecmp(kv->key, "Cookie") != 0)
			continue;
		for (p = kv->value; *p != '\0'; p = *e ? e + 1 : e) {
			while (*p == ' ')
				p++;
			e = strchr(p, ';');
			if (e == NULL)
				e = p + strlen(p);
			vlen = (size_t)(e - p) > nlen ?
			    (size_t)(e - p) - nlen - 1 : SIZE_MAX;
			if (vlen < size && strncmp(p, name, nlen) == 0 &&
			    p[nlen] == '=') {
				memcpy(out, p + nlen + 1, vlen);
				out[vlen] = '\0';
				return true;
			}
		}
	}
	return false;
}

static void
header(struct evhttp_request *req, const char *k, const char *v)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), k, v);
}

static void
content_type(struct evhttp_request *req, bool json)
{
	header(req, "Content-Type", json ? "application/json; charset=utf-8" :
	    "text/html; charset=utf-8");
}

static void
login_page(struct evhttp_request *req, struct evbuffer *body,
    const char *error)
{
	char csrf[33], c[128];

	session_random_token(csrf);
	snprintf(c, sizeof(c), "neo_csrf=%s; Path=/; HttpOnly", csrf);
	header(req, "Set-Cookie", c);
	content_type(req, false);
	html_login(body, csrf, error);
}

static int
clinic_of(const char *user)
{
	char want[64];
	unsigned int i;

	if (user == NULL || sscanf(user, "vet%u@", &i) != 1 || i < 1 ||
	    i > sim.nclinics)
		return 0;
	snprintf(want, sizeof(want), "vet%u@clinic%u.test", i, i);
	return strcmp(want, user) == 0 ? (int)i : 0;
}

static int
login(struct evhttp_request *req, struct evbuffer *body,
    unsigned int *ret_clinic)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evkeyvalq form;
	struct sim_session *s;
	const char *user, *pass, *company, *token;
	char *text = NULL, csrf[SIM_COOKIE_MAX], want[64], c[128];
	char want_company[16];
	size_t len;
	unsigned int clinic;
	int code;

	TAILQ_INIT(&form);
	len = evbuffer_get_length(in);
	text = xmalloc(len + 1);
	evbuffer_copyout(in, text, len);
	text[len] = '\0';
	if (strlen(text) != len || evhttp_parse_query_str(text, &form) != 0) {
		code = 400;
		content_type(req, false);
		evbuffer_add_printf(body, "bad form\n");
		goto out;
	}
	user = evhttp_find_header(&form, "username");
	pass = evhttp_find_header(&form, "password");
	company = evhttp_find_header(&form, "company_id");
	token = evhttp_find_header(&form, "_csrf");
	*ret_clinic = clinic = (unsigned int)clinic_of(user);
	if (!cookie(req, "neo_csrf", csrf, sizeof(csrf)) || token == NULL ||
	    csrf[0] == '\0' || strcmp(csrf, token) != 0) {
		code = 403;
		content_type(req, false);
		evbuffer_add_printf(body, "<h1>Forbidden: invalid CSRF "
		    "token</h1>\n");
		goto out;
	}
	code = 200;
	snprintf(want, sizeof(want), "password-%u", clinic);
	snprintf(want_company, sizeof(want_company), "c%u", clinic);
	if (clinic == 0 || pass == NULL || strcmp(pass, want) != 0 ||
	    (company != NULL && *company != '\0' &&
	    strcmp(company, want_company) != 0)) {
		COUNT(clinic, failed_logins);
		login_page(req, body, "<div class=\"error-message\">Invalid "
		    "username or password</div>");
		goto out;
	}
	if (sim.knobs.locked[clinic]) {
		COUNT(clinic, failed_logins);
		login_page(req, body, "<div class=\"alert alert-danger\">"
		    "Account locked</div>");
		goto out;
	}
	s = session_new(clinic);
	COUNT(clinic, logins);
	snprintf(c, sizeof(c), "neo_session=%s; Path=/; HttpOnly; "
	    "Max-Age=28800", session_token(s));
	header(req, "Set-Cookie", c);
	header(req, "Location", "/dashboard");
	code = 302;
out:
	evhttp_clear_headers(&form);
	if (text != NULL)
		xfree_secret(text, len + 1);
	return code;
}

/* Answer an unauthenticated or expired request to a protected page. */
static int
refuse(struct evhttp_request *req, struct evbuffer *body, bool json,
    bool was_expired)
{
	if (json) {
		if (control_expiry() == 302) {
			header(req, "Location", "/login");
			return 302;
		}
		content_type(req, true);
		evbuffer_add_printf(body, "{\"error\":\"unauthorized\"}");
		return 401;
	}
	if (was_expired && control_expiry() == 401) {
		content_type(req, false);
		html_expired(body);
		return 200;
	}
	header(req, "Location", "/login");
	return 302;
}

/* Route one request; returns the status, fills body and headers. */
static int
route(struct evhttp_request *req, const char *path, struct evkeyvalq *q,
    struct evbuffer *body, unsigned int *clinic, bool *data, bool *json)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct sim_session *s = NULL;
	char token[SIM_COOKIE_MAX], id[16];
	const char *p;
	bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
	bool neo = sim.profile == SIM_PROFILE_NEO;
	size_t n;

	if (cookie(req, "neo_session", token, sizeof(token)) &&
	    (s = session_find(token)) != NULL)
		*clinic = session_clinic(s);

	if (strcmp(path, "/login") == 0) {
		if (cmd == EVHTTP_REQ_POST)
			return login(req, body, clinic);
		login_page(req, body, NULL);
		return 200;
	}
	if (strcmp(path, "/logout") == 0) {
		session_free(s);
		header(req, "Set-Cookie", "neo_session=; Path=/; HttpOnly; "
		    "Max-Age=0");
		header(req, "Location", "/login");
		return 302;
	}
	if (strcmp(path, "/") == 0) {
		header(req, "Location", s != NULL ? "/dashboard" : "/login");
		return 302;
	}

	/* Everything else needs a live session. */
	*json = neo && strcmp(path, "/dashboard") != 0;
	*data = true;
	if (!get) {
		*data = false;
		content_type(req, false);
		return 405;
	}
	if (s == NULL) {
		*data = false;
		return refuse(req, body, *json, false);
	}
	if (!session_use(s)) {
		*data = false;
		COUNT(*clinic, expired);
		return refuse(req, body, *json, true);
	}

	content_type(req, *json);
	if (strcmp(path, "/dashboard") == 0) {
		html_dashboard(body, *clinic);
		return 200;
	}
	if (neo && strcmp(path, "/appointments/getCalendarEventData") == 0)
		return neo_calendar(*clinic, q, s, body);
	if (!neo && strcmp(path, "/consultations") == 0)
		return html_list(*clinic, q, body);
	if (strncmp(path, "/consultations/", 15) == 0) {
		p = path + 15;
		n = strcspn(p, "/");
		if (n > 0 && n < sizeof(id)) {
			memcpy(id, p, n);
			id[n] = '\0';
			if (neo && strcmp(p + n, "/page-data") == 0)
				return neo_page_data(*clinic, id, body);
			if (!neo && p[n] == '\0')
				return html_detail(*clinic, id, body);
		}
	}
	*data = false;
	if (*json)
		evbuffer_add_printf(body, "{\"error\":\"not_found\"}");
	else
		evbuffer_add_printf(body, "<h1>Not found</h1>\n");
	return 404;
}

static bool
loopback(struct evhttp_request *req)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	const struct sockaddr *sa;
	static const unsigned char v6lo[16] = { [15] = 1 };

	if (c == NULL || (sa = evhttp_connection_get_addr(c)) == NULL)
		return false;
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)(const void *)sa)->
		    sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)(const void *)sa)->
		    sin6_addr, v6lo, 16) == 0;
	return false;
}

static void
control(struct evhttp_request *req, const char *path, struct evkeyvalq *q)
{
	struct evbuffer *body = evbuffer_new(), *in;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct buf err;
	char *text, *rest, *rest2;
	size_t len;
	int code = 200;

	buf_init(&err, 1024);
	content_type(req, true);
	if (!loopback(req)) {
		code = 403;
		evbuffer_add_printf(body, "{\"error\":\"loopback only\"}");
	} else if (strcmp(path, "/__sim/control") == 0) {
		if (cmd == EVHTTP_REQ_POST) {
			in = evhttp_request_get_input_buffer(req);
			len = evbuffer_get_length(in);
			text = (char *)evbuffer_pullup(in, -1);
			rest = rest2 = NULL;
			/* SMTP's, QStash's and VAPI's knobs, the rest after. */
			if (smtp_control_begin(text != NULL ? text : "", len,
			    &err, &rest2) != 0 ||
			    services_control_begin(rest2, strlen(rest2), &err,
			    &rest) != 0 ||
			    control_apply(rest, strlen(rest), &err) != 0) {
				code = 400;
				evbuffer_add_printf(body, "{\"error\":\"%s\"}",
				    err.data);
			}
			services_control_end(code == 200);
			smtp_control_end(code == 200);
			free(rest);
			free(rest2);
		}
		if (code == 200)
			control_knobs(body);
	} else if (strcmp(path, "/__sim/qstash") == 0)
		qstash_inspect(q, body);
	else if (strcmp(path, "/__sim/vapi") == 0)
		vapi_inspect(body);
	else if (strcmp(path, "/__sim/mail") == 0)
		smtp_inspect(body);
	else if (strcmp(path, "/__sim/posthog") == 0)
		posthog_inspect(body);
	else if (strcmp(path, "/__sim/stats") == 0)
		control_stats(body);
	else if (strcmp(path, "/__sim/stats/reset") == 0 &&
	    cmd == EVHTTP_REQ_POST) {
		control_stats_reset();
		evbuffer_add_printf(body, "{\"ok\":true}");
	} else if (strcmp(path, "/__sim/expected") == 0)
		code = neo_expected(q, body);
	else if (strcmp(path, "/__sim/jwks") == 0)
		code = jwks_control(req, body);
	else {
		code = 404;
		evbuffer_add_printf(body, "{\"error\":\"not_found\"}");
	}
	send_now(req, code, body, 0, false);
	evbuffer_free(body);
	buf_release(&err);
}

static void
handle(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	struct evkeyvalq q;
	struct evbuffer *body = evbuffer_new();
	const char *path, *query;
	unsigned int clinic = 0;
	uint64_t delay;
	bool data = false, json = false;
	int code;
	char ra[32];

	TAILQ_INIT(&q);
	if (body == NULL)
		fatalx("out of memory");
	path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
	if (path == NULL || *path == '\0')
		path = "/";
	if (services_route(req, path))
		goto out;
	if (jwks_route(req, path))
		goto out;
	if (query != NULL && evhttp_parse_query_str(query, &q) != 0) {
		send_now(req, 400, body, 0, false);
		goto out;
	}
	if (strncmp(path, "/__sim/", 7) == 0) {
		control(req, path, &q);
		goto out;
	}

	delay = sim.knobs.latency_ms;
	if (sim.knobs.rate_429 > 0 && draw_micro() < sim.knobs.rate_429) {
		code = 429;
		snprintf(ra, sizeof(ra), "%llu",
		    (unsigned long long)sim.knobs.retry_after);
		header(req, "Retry-After", ra);
		content_type(req, false);
		evbuffer_add_printf(body, "<h1>Too Many Requests</h1>\n");
	} else if (sim.knobs.rate_5xx > 0 &&
	    draw_micro() < sim.knobs.rate_5xx) {
		static const int codes[] = { 500, 502, 503 };

		code = codes[data_next(&sim.prng) % 3];
		content_type(req, false);
		evbuffer_add_printf(body, "<h1>%s</h1>\n", reason_of(code));
	} else {
		code = route(req, path, &q, body, &clinic, &data, &json);
		if (data)
			delay += sim.knobs.slow_ms;
		if (data && code == 200)
			mutate_body(body, json);
	}
	if (code == 429 || code >= 500) {
		/* Attribute the refusal to the session's clinic, if any. */
		char token[SIM_COOKIE_MAX];
		struct sim_session *s;

		if (cookie(req, "neo_session", token, sizeof(token)) &&
		    (s = session_find(token)) != NULL)
			clinic = session_clinic(s);
		if (code == 429)
			COUNT(clinic, r429);
		else
			COUNT(clinic, r5xx);
	}
	COUNT(clinic, requests);
	finish(req, code, body, clinic, delay);
out:
	evhttp_clear_headers(&q);
	evbuffer_free(body);
}

static struct bufferevent *
tls_bev(struct event_base *b, void *arg)
{
	SSL *ssl;

	if ((ssl = SSL_new(arg)) == NULL)
		return NULL;
	return bufferevent_openssl_socket_new(b, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

static SSL_CTX *
tls_setup(const char *cert, const char *key)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		fatalx("SSL_CTX_new failed");
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		fatalx("tls: cannot load certificate '%s'", cert);
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		fatalx("tls: cannot load key '%s'", key);
	return ctx;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	log_info("signal %d: shutting down", (int)sig);
	event_base_loopexit(base, NULL);
}

static void
write_port_file(const char *file, unsigned int port)
{
	char *tmp;
	FILE *f;

	tmp = xasprintf("%s.tmp", file);
	if ((f = fopen(tmp, "we")) == NULL)
		fatal("%s", tmp);
	fprintf(f, "%u\n", port);
	if (fclose(f) != 0 || rename(tmp, file) != 0)
		fatal("%s", file);
	free(tmp);
}

static __attribute__((noreturn)) void
usage(void)
{
	fprintf(stderr, "usage: idexx_sim --port PORT [--bind ADDR] "
	    "[--profile neo|prd-html] [--clinics N] [--seed S]\n"
	    "    [--consultations K] [--timezone TZ] [--latency-ms MS] "
	    "[--session-ttl-ms MS]\n"
	    "    [--session-max-requests N] [--rate-429 F] [--retry-after S] "
	    "[--rate-5xx F]\n"
	    "    [--slow-ms MS] [--body normal|truncated|garbage|huge|"
	    "non-utf8] [--variant 0|1|2]\n"
	    "    [--wrap rotate|array|appointments|data|events] [--ui-changed] "
	    "[--locked LIST]\n"
	    "    [--expiry 401|302] [--tls-cert FILE --tls-key FILE] "
	    "[--port-file FILE]\n"
	    "    [--smtp-port-file FILE [--smtp-user U --smtp-password P]]\n"
	    "    [--qstash-token T] [--qstash-current-key K] "
	    "[--qstash-next-key K]\n"
	    "    [--qstash-clock-scale N] [--vapi-key K]\n"
	    "    [--posthog-key K] [--posthog-port-file FILE]\n");
	exit(2);
}

static uint64_t
num(const char *opt, const char *s, uint64_t max)
{
	uint64_t v;

	if (parse_u64(s, &v) != 0 || v > max)
		fatalx("--%s: bad value '%s'", opt, s);
	return v;
}

static uint64_t
rate(const char *opt, const char *s)
{
	uint64_t v;

	if (parse_fraction_micro(s, &v) != 0 || v > 1000000)
		fatalx("--%s: bad fraction '%s'", opt, s);
	return v;
}

enum {
	OPT_PORT = 256, OPT_BIND, OPT_PROFILE, OPT_CLINICS, OPT_SEED,
	OPT_CONSULTATIONS, OPT_TIMEZONE, OPT_LATENCY, OPT_TTL, OPT_MAXREQ,
	OPT_429, OPT_RETRY, OPT_5XX, OPT_SLOW, OPT_BODY, OPT_VARIANT,
	OPT_WRAP, OPT_UI, OPT_LOCKED, OPT_EXPIRY, OPT_CERT, OPT_KEY,
	OPT_SMTPPORT, OPT_SMTPUSER, OPT_SMTPPASS,
	OPT_PORTFILE, OPT_QTOKEN, OPT_QCURRENT, OPT_QNEXT, OPT_QSCALE,
	OPT_VAPIKEY, OPT_PHKEY, OPT_PHPORTFILE,
};

static const struct option longopts[] = {
	{ "port", required_argument, NULL, OPT_PORT },
	{ "bind", required_argument, NULL, OPT_BIND },
	{ "profile", required_argument, NULL, OPT_PROFILE },
	{ "clinics", required_argument, NULL, OPT_CLINICS },
	{ "seed", required_argument, NULL, OPT_SEED },
	{ "consultations", required_argument, NULL, OPT_CONSULTATIONS },
	{ "timezone", required_argument, NULL, OPT_TIMEZONE },
	{ "latency-ms", required_argument, NULL, OPT_LATENCY },
	{ "session-ttl-ms", required_argument, NULL, OPT_TTL },
	{ "session-max-requests", required_argument, NULL, OPT_MAXREQ },
	{ "rate-429", required_argument, NULL, OPT_429 },
	{ "retry-after", required_argument, NULL, OPT_RETRY },
	{ "rate-5xx", required_argument, NULL, OPT_5XX },
	{ "slow-ms", required_argument, NULL, OPT_SLOW },
	{ "body", required_argument, NULL, OPT_BODY },
	{ "variant", required_argument, NULL, OPT_VARIANT },
	{ "wrap", required_argument, NULL, OPT_WRAP },
	{ "ui-changed", no_argument, NULL, OPT_UI },
	{ "locked", required_argument, NULL, OPT_LOCKED },
	{ "expiry", required_argument, NULL, OPT_EXPIRY },
	{ "tls-cert", required_argument, NULL, OPT_CERT },
	{ "tls-key", required_argument, NULL, OPT_KEY },
	{ "port-file", required_argument, NULL, OPT_PORTFILE },
	{ "smtp-port-file", required_argument, NULL, OPT_SMTPPORT },
	{ "smtp-user", required_argument, NULL, OPT_SMTPUSER },
	{ "smtp-password", required_argument, NULL, OPT_SMTPPASS },
	{ "qstash-token", required_argument, NULL, OPT_QTOKEN },
	{ "qstash-current-key", required_argument, NULL, OPT_QCURRENT },
	{ "qstash-next-key", required_argument, NULL, OPT_QNEXT },
	{ "qstash-clock-scale", required_argument, NULL, OPT_QSCALE },
	{ "vapi-key", required_argument, NULL, OPT_VAPIKEY },
	{ "posthog-key", required_argument, NULL, OPT_PHKEY },
	{ "posthog-port-file", required_argument, NULL, OPT_PHPORTFILE },
	{ NULL, 0, NULL, 0 },
};

int
main(int argc, char **argv)
{
	struct evhttp *http = NULL;
	struct evhttp_bound_socket *bound;
	struct event *sigterm, *sigint;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct pending *p;
	SSL_CTX *ctx = NULL;
	const char *bind_addr = "127.0.0.1", *cert = NULL, *key = NULL;
	const char *port_file = NULL, *locked = NULL, *wrap = NULL;
	const char *smtp_port_file = NULL, *smtp_user = NULL;
	const char *smtp_password = NULL;
	unsigned int smtp_port;
	struct services_opts so = {
		.qstash_token = "qstash-sim-token",
		.current_key = "sig_sim_current",
		.next_key = "sig_sim_next",
		.clock_scale = 1,
		.vapi_key = "vapi-sim-key",
		.posthog_key = "phc_sim_key",
	};
	unsigned int port = 0;
	bool have_port = false;
	int ch;

	log_init("idexx_sim", LOG_LEVEL_INFO);
	sim.profile = SIM_PROFILE_NEO;
	sim.nclinics = 3;
	sim.seed = 1;
	sim.consultations = 50;
	sim.timezone = "America/Denver";
	sim.knobs.retry_after = 1;
	sim.knobs.wrap = SIM_WRAP_ROTATE;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case OPT_PORT:
			port = (unsigned int)num("port", optarg, 65535);
			have_port = true;
			break;
		case OPT_BIND: bind_addr = optarg; break;
		case OPT_PROFILE:
			if (strcmp(optarg, "neo") == 0)
				sim.profile = SIM_PROFILE_NEO;
			else if (strcmp(optarg, "prd-html") == 0)
				sim.profile = SIM_PROFILE_HTML;
			else
				fatalx("--profile: neo or prd-html");
			break;
		case OPT_CLINICS:
			sim.nclinics = (unsigned int)num("clinics", optarg,
			    SIM_MAX_CLINICS);
			if (sim.nclinics == 0)
				fatalx("--clinics: at least 1");
			break;
		case OPT_SEED:
			sim.seed = num("seed", optarg, UINT64_MAX);
			break;
		case OPT_CONSULTATIONS:
			sim.consultations = (unsigned int)num("consultations",
			    optarg, SIM_MAX_CONSULTATIONS);
			break;
		case OPT_TIMEZONE: sim.timezone = optarg; break;
		case OPT_LATENCY:
			sim.knobs.latency_ms = num("latency-ms", optarg,
			    600000);
			break;
		case OPT_TTL:
			sim.knobs.session_ttl_ms = num("session-ttl-ms", optarg,
			    UINT32_MAX);
			break;
		case OPT_MAXREQ:
			sim.knobs.session_max_requests =
			    num("session-max-requests", optarg, UINT32_MAX);
			break;
		case OPT_429:
			sim.knobs.rate_429 = rate("rate-429", optarg);
			break;
		case OPT_5XX:
			sim.knobs.rate_5xx = rate("rate-5xx", optarg);
			break;
		case OPT_RETRY:
			sim.knobs.retry_after = num("retry-after", optarg,
			    86400);
			break;
		case OPT_SLOW:
			sim.knobs.slow_ms = num("slow-ms", optarg, 600000);
			break;
		case OPT_BODY:
			if (control_parse_body(optarg, &sim.knobs.body) != 0)
				fatalx("--body: bad value '%s'", optarg);
			break;
		case OPT_VARIANT:
			sim.knobs.variant = (int)num("variant", optarg, 2);
			break;
		case OPT_WRAP: wrap = optarg; break;
		case OPT_UI: sim.knobs.ui_changed = true; break;
		case OPT_LOCKED: locked = optarg; break;
		case OPT_EXPIRY:
			if (strcmp(optarg, "401") == 0)
				sim.knobs.expiry = SIM_EXPIRY_401;
			else if (strcmp(optarg, "302") == 0)
				sim.knobs.expiry = SIM_EXPIRY_302;
			else
				fatalx("--expiry: 401 or 302");
			break;
		case OPT_CERT: cert = optarg; break;
		case OPT_KEY: key = optarg; break;
		case OPT_PORTFILE: port_file = optarg; break;
		case OPT_SMTPPORT: smtp_port_file = optarg; break;
		case OPT_SMTPUSER: smtp_user = optarg; break;
		case OPT_SMTPPASS: smtp_password = optarg; break;
		case OPT_QTOKEN: so.qstash_token = optarg; break;
		case OPT_QCURRENT: so.current_key = optarg; break;
		case OPT_QNEXT: so.next_key = optarg; break;
		case OPT_QSCALE:
			so.clock_scale = num("qstash-clock-scale", optarg,
			    1000000);
			break;
		case OPT_VAPIKEY: so.vapi_key = optarg; break;
		case OPT_PHKEY: so.posthog_key = optarg; break;
		case OPT_PHPORTFILE: so.posthog_port_file = optarg; break;
		default: usage();
		}
	}
	if (optind != argc || !have_port || (cert == NULL) != (key == NULL) ||
	    (smtp_user == NULL) != (smtp_password == NULL))
		usage();

	if (setenv("TZ", sim.timezone, 1) != 0)
		fatal("setenv");
	tzset();
	sim.t0 = data_now();
	sim.prng = data_mix(sim.seed ^ 0x5151);
	sim.clinics = xcalloc(sim.nclinics + 1, sizeof(*sim.clinics));
	sim.stats = xcalloc(sim.nclinics + 1, sizeof(*sim.stats));
	sim.knobs.locked = xcalloc(sim.nclinics + 1, sizeof(bool));
	if (locked != NULL && control_parse_locked(locked) != 0)
		fatalx("--locked: bad list '%s'", locked);
	if (wrap != NULL) {
		struct buf err;
		char *j = xasprintf("{\"wrap\":\"%s\"}", wrap);

		buf_init(&err, 256);
		if (strchr(wrap, '"') != NULL ||
		    control_apply(j, strlen(j), &err) != 0)
			fatalx("--wrap: bad value '%s'", wrap);
		free(j);
		buf_release(&err);
	}
	signal(SIGPIPE, SIG_IGN);

	if ((base = event_base_new()) == NULL || (http = evhttp_new(base)) ==
	    NULL)
		fatalx("libevent setup failed");
	evhttp_set_max_body_size(http, SIM_BODY_MAX);
	evhttp_set_max_headers_size(http, SIM_HEADERS_MAX);
	evhttp_set_timeout(http, 60);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_HEAD | EVHTTP_REQ_DELETE);
	so.posthog_bind = bind_addr;
	services_init(base, &so);
	evhttp_set_gencb(http, handle, NULL);
	if (cert != NULL) {
		ctx = tls_setup(cert, key);
		evhttp_set_bevcb(http, tls_bev, ctx);
	}
	bound = evhttp_bind_socket_with_handle(http, bind_addr,
	    (ev_uint16_t)port);
	if (bound == NULL)
		fatalx("cannot listen on %s:%u", bind_addr, port);
	if (getsockname(evhttp_bound_socket_get_fd(bound),
	    (struct sockaddr *)&ss, &sslen) != 0)
		fatal("getsockname");
	port = ntohs(ss.ss_family == AF_INET6 ?
	    ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port);
	if (port_file != NULL)
		write_port_file(port_file, port);
	if (smtp_port_file != NULL) {
		if (smtp_start(base, bind_addr, smtp_user, smtp_password,
		    &smtp_port) < 0)
			fatalx("smtp: cannot listen on %s", bind_addr);
		write_port_file(smtp_port_file, smtp_port);
		log_info("smtp: listening on %s:%u", bind_addr, smtp_port);
	}
	log_info("listening on %s:%u profile=%s clinics=%u seed=%llu%s",
	    bind_addr, port, sim.profile == SIM_PROFILE_NEO ? "neo" :
	    "prd-html", sim.nclinics, (unsigned long long)sim.seed,
	    ctx != NULL ? " tls" : "");

	sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
	sigint = evsignal_new(base, SIGINT, on_signal, NULL);
	if (sigterm == NULL || sigint == NULL || evsignal_add(sigterm, NULL) ||
	    evsignal_add(sigint, NULL))
		fatalx("signal setup failed");

	event_base_dispatch(base);

	/* Answer what is still delayed, so no request is left behind. */
	while ((p = TAILQ_FIRST(&pendings)) != NULL) {
		TAILQ_REMOVE(&pendings, p, entry);
		evbuffer_drain(p->body, evbuffer_get_length(p->body));
		send_now(p->req, 503, p->body, p->clinic, false);
		evbuffer_free(p->body);
		event_free(p->timer);
		free(p);
	}
	services_free();
	smtp_free();
	event_free(sigterm);
	event_free(sigint);
	evhttp_free(http);
	event_base_free(base);
	SSL_CTX_free(ctx);
	session_free_all();
	data_clinics_free();
	free(sim.stats);
	free(sim.knobs.locked);
	mutate_free();
	jwks_free();
	return 0;
}
