/*
 * The outside services the simulator stands in for, beside IDEXX Neo:
 * QStash (qstash.c, qstash_deliver.c) and VAPI (vapi.c).  This file routes
 * their paths, sends their answers (after a delay when a slow knob asks),
 * and splits a /__sim/control request: the qstash_ and vapi_ knobs are
 * staged here, the rest go on to control.c, and ours apply only if all of
 * it was good.
 */
#include <sys/queue.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "tests/sim/services.h"
#include "tests/sim/qstash.h"

/* A reply waiting for its delay (qstash_slow_ms, vapi_slow_ms). */
struct delayed {
	struct evhttp_request	*req;
	struct evbuffer		*body;
	struct event		*timer;
	int			 code;
	TAILQ_ENTRY(delayed)	 entry;
};

static TAILQ_HEAD(, delayed) delayeds = TAILQ_HEAD_INITIALIZER(delayeds);
static struct event_base *base;

const char *
services_method(struct evhttp_request *req)
{
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "OTHER";
	}
}

static void
send_reply(struct evhttp_request *req, int code, struct evbuffer *body)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const char *uri = evhttp_request_get_uri(req);

	if (evhttp_find_header(out, "Content-Type") == NULL)
		evhttp_add_header(out, "Content-Type",
		    "application/json; charset=utf-8");
	/* The URI names a destination, not a token; bodies are not logged. */
	log_info("%s %s status=%d bytes=%zu", services_method(req), log_q(uri),
	    code, evbuffer_get_length(body));
	evhttp_send_reply(req, code, NULL, body);
}

static void
delayed_fire(evutil_socket_t fd, short what, void *arg)
{
	struct delayed *d = arg;

	TAILQ_REMOVE(&delayeds, d, entry);
	send_reply(d->req, d->code, d->body);
	evbuffer_free(d->body);
	event_free(d->timer);
	free(d);
}

void
services_reply(struct evhttp_request *req, int code, struct evbuffer *body,
    uint64_t delay_ms)
{
	struct delayed *d;
	struct timeval tv;

	if (delay_ms == 0) {
		send_reply(req, code, body);
		return;
	}
	d = xcalloc(1, sizeof(*d));
	d->req = req;
	d->code = code;
	if ((d->body = evbuffer_new()) == NULL ||
	    (d->timer = evtimer_new(base, delayed_fire, d)) == NULL)
		fatalx("out of memory");
	evbuffer_add_buffer(d->body, body);
	tv = clock_timeval_ms(delay_ms);
	evtimer_add(d->timer, &tv);
	TAILQ_INSERT_TAIL(&delayeds, d, entry);
}

void
services_dump(struct evbuffer *b, json_t *j)
{
	char *s;

	if (j == NULL || (s = json_dumps(j, JSON_COMPACT)) == NULL)
		fatalx("cannot build a JSON answer");
	json_decref(j);
	evbuffer_add(b, s, strlen(s));
	free(s);
}

void
services_reply_json(struct evhttp_request *req, int code, json_t *j,
    uint64_t delay_ms)
{
	struct evbuffer *b;

	if ((b = evbuffer_new()) == NULL)
		fatalx("out of memory");
	services_dump(b, j);
	services_reply(req, code, b, delay_ms);
	evbuffer_free(b);
}

/* --- control ----------------------------------------------------------- */

int
services_json_u64(json_t *v, uint64_t max, uint64_t *ret)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return -EINVAL;
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

int
services_json_rate(json_t *v, uint64_t *ret)
{
	double d;

	if (!json_is_number(v) || !((d = json_number_value(v)) >= 0.0 &&
	    d <= 1.0))
		return -EINVAL;
	*ret = (uint64_t)(d * 1e6 + 0.5);
	return 0;
}

/* --- routes, inspection ------------------------------------------------ */

bool
services_route(struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *uri = evhttp_request_get_uri(req);

	if (strncmp(path, "/v2/publish/", 12) == 0) {
		/* The destination is appended raw, query and all. */
		qstash_publish(req, strstr(uri, "/v2/publish/") + 12);
		return true;
	}
	if (strncmp(path, "/v2/messages/", 13) == 0 && path[13] != '\0' &&
	    cmd == EVHTTP_REQ_DELETE) {
		qstash_cancel(req, path + 13);
		return true;
	}
	if (strcmp(path, "/v2/messages") == 0 && cmd == EVHTTP_REQ_DELETE) {
		qstash_cancel_bulk(req);
		return true;
	}
	if (strncmp(path, "/v2/", 4) == 0) {
		services_reply_json(req, 404, json_pack("{s:s}", "error",
		    "not found"), 0);
		return true;
	}
	if (strcmp(path, "/call") == 0) {
		vapi_call(req);
		return true;
	}
	return posthog_route(req, path);
}

int
services_control_begin(const char *text, size_t len, struct buf *err,
    char **ret_rest)
{
	json_error_t jerr;
	json_t *top, *rest = NULL, *v;
	const char *key;
	char *s;
	int r = 0;

	services_control_end(false);
	top = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (top == NULL || !json_is_object(top)) {
		buf_printf(err, "control: not a JSON object");
		r = -EINVAL;
		goto out;
	}
	rest = json_object();
	json_object_foreach(top, key, v) {
		if (strncmp(key, "qstash_", 7) == 0)
			r = qstash_control_stage(key, v);
		else if (strncmp(key, "vapi_", 5) == 0)
			r = vapi_control_stage(key, v);
		else if (strncmp(key, "posthog_", 8) == 0)
			r = posthog_control_stage(key, v);
		else {
			json_object_set(rest, key, v);
			continue;
		}
		if (r != 0) {
			/* Our knob names are ours; quoting them is safe. */
			buf_printf(err, "control: %s knob '%s'", r == -ENOENT ?
			    "unknown" : "bad value for", log_q(key));
			goto out;
		}
	}
	if ((s = json_dumps(rest, JSON_COMPACT)) == NULL)
		fatalx("out of memory");
	*ret_rest = s;
out:
	if (r != 0)
		services_control_end(false);
	json_decref(rest);
	json_decref(top);
	return r;
}

void
services_control_end(bool apply)
{
	qstash_control_end(apply);
	vapi_control_end(apply);
	posthog_control_end(apply);
}

void
services_init(struct event_base *b, const struct services_opts *o)
{
	base = b;
	qstash_init(b, o);
	vapi_init(o->vapi_key);
	posthog_init(b, o);
}

void
services_free(void)
{
	struct delayed *d;

	/* Answer what is still delayed, so no request is left behind. */
	while ((d = TAILQ_FIRST(&delayeds)) != NULL) {
		TAILQ_REMOVE(&delayeds, d, entry);
		evbuffer_drain(d->body, evbuffer_get_length(d->body));
		send_reply(d->req, 503, d->body);
		evbuffer_free(d->body);
		event_free(d->timer);
		free(d);
	}
	qstash_free();
	vapi_free();
	posthog_free();
}
