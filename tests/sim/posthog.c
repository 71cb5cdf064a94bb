/*
 * PostHog's capture API (CONTRACTS §2), as the Rust capture service
 * answers it: POST /batch/ ({"api_key", "batch": [...]}, body under
 * 20 MB) and the single-event paths /i/v0/e/, /capture/, /e/, /track/ and
 * /engage/ (with or without the trailing slash; body under 2 MB; a body
 * holding "batch" is taken as a batch there too).  400 for a body that is
 * not such JSON, an empty batch, or an event without a name or a
 * distinct_id (at the top or in properties); 401 for a missing or wrong
 * api_key, or keys mixed within a batch; 413 past the cap; 200 with
 * {"status":"Ok"} otherwise.  Error bodies are plain text, as Rust's are.
 *
 * The paths are served on the simulator's own port (its 64 KiB body cap
 * applies there) and, with --posthog-port-file, on a port of their own
 * with the real caps, written to that file.
 *
 * Accepted events are kept for GET /__sim/posthog (without the key), with
 * one line per request (time, path, status, events) so a test can see
 * retries and their spacing.  Knobs: posthog_fail_next N answers the next
 * N requests with posthog_fail_code (503 by default; 408, 429 or a 5xx),
 * a 429 with Retry-After: posthog_retry_after seconds; posthog_slow_ms
 * delays every answer; posthog_key changes the key accepted;
 * posthog_reset forgets events and counters.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "tests/sim/services.h"

#define PH_EVENT_BODY_MAX	(2 * 1024 * 1024)
#define PH_BATCH_BODY_MAX	(20 * 1024 * 1024)
#define PH_EVENTS_MAX		1000000
#define PH_LOG_MAX		100000	/* request lines kept */
#define PH_KEY_MAX		256

struct phknobs {
	uint64_t	fail_next;
	uint64_t	fail_code;
	uint64_t	retry_after;	/* seconds */
	uint64_t	slow_ms;
	char		key[PH_KEY_MAX];
};

static struct {
	struct phknobs	 k, staged;
	bool		 have_stage, reset;
	json_t		*events;	/* accepted, in order */
	json_t		*log;		/* one object per request */
	struct evhttp	*http;		/* our own port, or NULL */
	uint64_t	 requests, batches, accepted, unauthorized, bad,
			 too_large, failed;
} ph;

static void
log_request(const char *path, int code, size_t n)
{
	if (json_array_size(ph.log) >= PH_LOG_MAX)
		return;
	json_array_append_new(ph.log, json_pack("{s:I,s:s,s:i,s:I}", "at_ms",
	    (json_int_t)clock_wall_ms(), "path", path, "code", code, "events",
	    (json_int_t)n));
}

static void
answer_text(struct evhttp_request *req, const char *path, int code,
    const char *text)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		fatalx("out of memory");
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; charset=utf-8");
	evbuffer_add_printf(b, "%s", text);
	log_request(path, code, 0);
	services_reply(req, code, b, ph.k.slow_ms);
	evbuffer_free(b);
}

static bool
key_ok(json_t *k)
{
	size_t n = strlen(ph.k.key);

	return json_is_string(k) && json_string_length(k) == n &&
	    CRYPTO_memcmp(json_string_value(k), ph.k.key, n) == 0;
}

/* NULL when e is an event capture keeps, else why not. */
static const char *
event_invalid(json_t *e)
{
	json_t *name, *d;

	if (!json_is_object(e))
		return "event is not an object";
	name = json_object_get(e, "event");
	if (!json_is_string(name) || json_string_length(name) == 0)
		return "event is missing its name";
	d = json_object_get(e, "distinct_id");
	if (d == NULL && json_is_object(json_object_get(e, "properties")))
		d = json_object_get(json_object_get(e, "properties"),
		    "distinct_id");
	if (!(json_is_string(d) && json_string_length(d) > 0) &&
	    !json_is_integer(d))
		return "event is missing its distinct_id";
	if (json_object_get(e, "properties") != NULL &&
	    !json_is_object(json_object_get(e, "properties")))
		return "properties is not an object";
	return NULL;
}

static void
capture(struct evhttp_request *req, const char *path, bool batch_path)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evkeyvalq *hin = evhttp_request_get_input_headers(req);
	const char *enc = evhttp_find_header(hin, "Content-Encoding");
	size_t len = evbuffer_get_length(in), i;
	json_t *body = NULL, *batch, *e, *one = NULL;
	const char *why = NULL;
	char ra[24];
	int code;

	ph.requests++;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		answer_text(req, path, 405, "Method Not Allowed");
		return;
	}
	if (len > (batch_path ? PH_BATCH_BODY_MAX : PH_EVENT_BODY_MAX)) {
		ph.too_large++;
		answer_text(req, path, 413, "Payload Too Large");
		return;
	}
	if (ph.k.fail_next > 0) {
		ph.k.fail_next--;
		ph.failed++;
		code = (int)ph.k.fail_code;
		if (code == 429) {
			snprintf(ra, sizeof(ra), "%llu",
			    (unsigned long long)ph.k.retry_after);
			evhttp_add_header(
			    evhttp_request_get_output_headers(req),
			    "Retry-After", ra);
		}
		answer_text(req, path, code, code == 429 ? "Too Many Requests" :
		    code == 408 ? "Request Timeout" : "Service Unavailable");
		return;
	}
	if (enc != NULL && strcmp(enc, "identity") != 0) {
		ph.bad++;
		answer_text(req, path, 400, "failed to decode the body: the "
		    "simulator takes no Content-Encoding");
		return;
	}
	body = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, NULL);
	if (!json_is_object(body)) {
		why = "failed to parse the body as a JSON object";
		goto bad;
	}
	batch = json_object_get(body, "batch");
	if (batch == NULL && !batch_path) {
		/* One event: the body itself, less its key. */
		one = json_array();
		json_array_append(one, body);
		batch = one;
	}
	if (!json_is_array(batch) || json_array_size(batch) == 0) {
		why = "empty or missing batch";
		goto bad;
	}
	json_array_foreach(batch, i, e)
		if ((why = event_invalid(e)) != NULL)
			goto bad;
	if (!key_ok(json_object_get(body, "api_key"))) {
		ph.unauthorized++;
		answer_text(req, path, 401, "API key is not valid");
		goto out;
	}
	json_array_foreach(batch, i, e)
		if (json_object_get(e, "api_key") != NULL &&
		    !key_ok(json_object_get(e, "api_key"))) {
			ph.unauthorized++;
			answer_text(req, path, 401,
			    "mixed API keys in a batch");
			goto out;
		}
	if (json_array_size(ph.events) + json_array_size(batch) >
	    PH_EVENTS_MAX) {
		answer_text(req, path, 503, "simulator full");
		goto out;
	}
	json_array_foreach(batch, i, e) {
		json_t *c = json_deep_copy(e);

		json_object_del(c, "api_key");
		json_object_set_new(c, "_path", json_string(path));
		json_array_append_new(ph.events, c);
	}
	ph.batches++;
	ph.accepted += json_array_size(batch);
	log_request(path, 200, json_array_size(batch));
	services_reply_json(req, 200, json_pack("{s:s}", "status", "Ok"),
	    ph.k.slow_ms);
	goto out;
bad:
	ph.bad++;
	answer_text(req, path, 400, why);
out:
	json_decref(one);
	json_decref(body);
}

/* "/x" and "/x/" for each of the capture paths. */
static bool
path_is(const char *path, const char *base)
{
	size_t n = strlen(base);

	return strncmp(path, base, n) == 0 && (path[n] == '\0' ||
	    (path[n] == '/' && path[n + 1] == '\0'));
}

bool
posthog_route(struct evhttp_request *req, const char *path)
{
	static const char *const single[] = { "/i/v0/e", "/capture", "/e",
	    "/track", "/engage" };

	if (path_is(path, "/batch")) {
		capture(req, path, true);
		return true;
	}
	for (size_t i = 0; i < sizeof(single) / sizeof(single[0]); i++)
		if (path_is(path, single[i])) {
			capture(req, path, false);
			return true;
		}
	return false;
}

/* The port of our own: capture paths only. */
static void
own_port(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *path = u != NULL ? evhttp_uri_get_path(u) : NULL;

	(void)arg;
	if (path == NULL || !posthog_route(req, path))
		answer_text(req, path != NULL ? path : "/", 404, "Not Found");
}

void
posthog_inspect(struct evbuffer *b)
{
	services_dump(b, json_pack("{s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I},"
	    "s:{s:I,s:I,s:I,s:I},s:O,s:O}", "stats",
	    "requests", (json_int_t)ph.requests,
	    "batches", (json_int_t)ph.batches,
	    "events", (json_int_t)ph.accepted,
	    "unauthorized", (json_int_t)ph.unauthorized,
	    "bad", (json_int_t)ph.bad,
	    "too_large", (json_int_t)ph.too_large,
	    "failed", (json_int_t)ph.failed,
	    "knobs", "fail_next", (json_int_t)ph.k.fail_next,
	    "fail_code", (json_int_t)ph.k.fail_code,
	    "retry_after", (json_int_t)ph.k.retry_after,
	    "slow_ms", (json_int_t)ph.k.slow_ms,
	    "requests", ph.log, "events", ph.events));
}

int
posthog_control_stage(const char *key, json_t *j)
{
	struct phknobs *k = &ph.staged;
	uint64_t n;

	if (!ph.have_stage) {
		ph.staged = ph.k;
		ph.have_stage = true;
	}
	if (strcmp(key, "posthog_fail_next") == 0)
		return services_json_u64(j, 1000000, &k->fail_next);
	if (strcmp(key, "posthog_fail_code") == 0) {
		if (services_json_u64(j, 599, &n) != 0 ||
		    (n != 408 && n != 429 && n < 500))
			return -EINVAL;
		k->fail_code = n;
		return 0;
	}
	if (strcmp(key, "posthog_retry_after") == 0)
		return services_json_u64(j, 86400, &k->retry_after);
	if (strcmp(key, "posthog_slow_ms") == 0)
		return services_json_u64(j, 600000, &k->slow_ms);
	if (strcmp(key, "posthog_key") == 0) {
		if (!json_is_string(j) || json_string_length(j) == 0 ||
		    json_string_length(j) >= PH_KEY_MAX)
			return -EINVAL;
		snprintf(k->key, sizeof(k->key), "%s", json_string_value(j));
		return 0;
	}
	if (strcmp(key, "posthog_reset") == 0) {
		ph.reset = json_is_true(j);
		return json_is_boolean(j) ? 0 : -EINVAL;
	}
	return -ENOENT;
}

void
posthog_control_end(bool apply)
{
	if (apply && ph.have_stage)
		ph.k = ph.staged;
	if (apply && ph.reset) {
		json_array_clear(ph.events);
		json_array_clear(ph.log);
		ph.requests = ph.batches = ph.accepted = ph.unauthorized = 0;
		ph.bad = ph.too_large = ph.failed = 0;
	}
	ph.have_stage = false;
	ph.reset = false;
}

void
posthog_init(struct event_base *base, const struct services_opts *o)
{
	struct evhttp_bound_socket *s;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char *tmp;
	FILE *f;

	ph.k.fail_code = 503;
	ph.k.retry_after = 1;
	if (strlen(o->posthog_key) >= PH_KEY_MAX)
		fatalx("--posthog-key: over %d bytes", PH_KEY_MAX - 1);
	snprintf(ph.k.key, sizeof(ph.k.key), "%s", o->posthog_key);
	if ((ph.events = json_array()) == NULL || (ph.log = json_array()) ==
	    NULL)
		fatalx("out of memory");
	if (o->posthog_port_file == NULL)
		return;
	if ((ph.http = evhttp_new(base)) == NULL)
		fatalx("posthog: cannot create the HTTP server");
	/* Past the cap of the batch path, so our own 413 says it. */
	evhttp_set_max_body_size(ph.http, PH_BATCH_BODY_MAX + 64 * 1024);
	evhttp_set_allowed_methods(ph.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_timeout(ph.http, 60);
	evhttp_set_gencb(ph.http, own_port, NULL);
	s = evhttp_bind_socket_with_handle(ph.http, o->posthog_bind, 0);
	if (s == NULL || getsockname(evhttp_bound_socket_get_fd(s),
	    (struct sockaddr *)&ss, &sslen) != 0)
		fatalx("posthog: cannot listen on %s", o->posthog_bind);
	tmp = xasprintf("%s.tmp", o->posthog_port_file);
	if ((f = fopen(tmp, "we")) == NULL)
		fatal("%s", tmp);
	fprintf(f, "%u\n", ntohs(ss.ss_family == AF_INET6 ?
	    ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port));
	if (fclose(f) != 0 || rename(tmp, o->posthog_port_file) != 0)
		fatal("%s", o->posthog_port_file);
	free(tmp);
}

void
posthog_free(void)
{
	if (ph.http != NULL)
		evhttp_free(ph.http);
	ph.http = NULL;
	json_decref(ph.events);
	json_decref(ph.log);
	ph.events = ph.log = NULL;
}
