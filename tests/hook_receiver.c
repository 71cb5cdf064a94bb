/*
 * hook_receiver: a destination for the simulator's QStash deliveries in
 * tests.  It logs every request as one JSON line (method, URI, headers,
 * body, the status it answered and, given signing keys, what
 * qstash_verify() made of its Upstash-Signature against the URL it was
 * sent to), and answers from a list of status codes: "500,489,200"
 * answers the first request 500, the second 489 (with
 * Upstash-NonRetryable-Error: true), and every later one 200.
 *
 *   hook_receiver --port-file F --log F [--port P] [--answers LIST]
 *       [--retry-after S] [--current-key K [--next-key K]] [--delay-ms MS]
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "common/base64.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/xmalloc.h"

#include "supervisor/qstash_verify.h"

#define ANSWERS_MAX	64
#define BODY_MAX	(1024 * 1024)

static struct {
	struct event_base	*base;
	FILE			*log;
	int			 answers[ANSWERS_MAX];
	size_t			 nanswers;
	uint64_t		 n;
	const char		*retry_after;
	const char		*current_key;
	const char		*next_key;
	uint64_t		 delay_ms;
} r;

struct later {
	struct evhttp_request	*req;
	struct event		*timer;
	int			 code;
};

static const char *
method_name(enum evhttp_cmd_type cmd)
{
	switch (cmd) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "OTHER";
	}
}

static void
reply(struct evhttp_request *req, int code)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);

	if (code == 489)
		evhttp_add_header(out, "Upstash-NonRetryable-Error", "true");
	if ((code < 200 || code > 299) && r.retry_after != NULL)
		evhttp_add_header(out, "Retry-After", r.retry_after);
	evhttp_send_reply(req, code, code < 300 ? "OK" : "Refused", NULL);
}

static void
reply_later(evutil_socket_t fd, short what, void *arg)
{
	struct later *l = arg;

	reply(l->req, l->code);
	event_free(l->timer);
	free(l);
}

/* What qstash_verify() says of the request, "ok" or the reason. */
static json_t *
verdict(struct evhttp_request *req, const char *body, size_t len)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct qstash_verify_args a = {
		.current_key = r.current_key,
		.next_key = r.next_key,
		.now = (int64_t)time(NULL),
	};
	const char *host = evhttp_find_header(in, "Host");
	char reason[QSTASH_REASON_MAX], *url;
	json_t *j;

	url = xasprintf("http://%s%s", host != NULL ? host : "",
	    evhttp_request_get_uri(req));
	a.url = url;
	if (qstash_verify(&a, evhttp_find_header(in, "Upstash-Signature"),
	    body, len, reason, sizeof(reason)) == 0)
		j = json_string("ok");
	else
		j = json_string(reason);
	free(url);
	return j;
}

/* The body as a string, or {"base64url": ...} when it is not UTF-8. */
static json_t *
body_json(const char *body, size_t len)
{
	json_t *j;
	char *enc;

	if (len == 0)
		return json_string("");
	if ((j = json_stringn(body, len)) != NULL)
		return j;
	enc = xmalloc(BASE64URL_LEN(len) + 1);
	base64url_encode(body, len, enc);
	j = json_pack("{s:s}", "base64url", enc);
	free(enc);
	return j;
}

static void
handle(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evkeyval *kv;
	struct later *l;
	struct timeval tv;
	json_t *line, *headers;
	size_t len = evbuffer_get_length(in);
	const char *body = (const char *)evbuffer_pullup(in, -1);
	char *s;
	int code;

	code = r.answers[r.n < r.nanswers ? r.n : r.nanswers - 1];
	r.n++;
	headers = json_object();
	TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next)
		json_object_set_new(headers, kv->key, json_string(kv->value));
	line = json_pack("{s:I,s:I,s:s,s:s,s:o,s:o,s:i}",
	    "n", (json_int_t)r.n,
	    "at_ms", (json_int_t)clock_wall_ms(),
	    "method", method_name(evhttp_request_get_command(req)),
	    "uri", evhttp_request_get_uri(req),
	    "headers", headers,
	    "body", body_json(body, len),
	    "status", code);
	if (line == NULL)
		fatalx("request %llu: cannot log it", (unsigned long long)r.n);
	if (r.current_key != NULL)
		json_object_set_new(line, "verify", verdict(req, body, len));
	if ((s = json_dumps(line, JSON_COMPACT)) == NULL)
		fatalx("out of memory");
	fprintf(r.log, "%s\n", s);
	fflush(r.log);
	free(s);
	json_decref(line);

	if (r.delay_ms == 0) {
		reply(req, code);
		return;
	}
	l = xcalloc(1, sizeof(*l));
	l->req = req;
	l->code = code;
	if ((l->timer = evtimer_new(r.base, reply_later, l)) == NULL)
		fatalx("out of memory");
	tv = clock_timeval_ms(r.delay_ms);
	evtimer_add(l->timer, &tv);
}

static void
parse_answers(const char *list)
{
	char *copy = xstrdup(list), *tok, *save = NULL;
	uint64_t v;

	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (r.nanswers == ANSWERS_MAX || parse_u64(tok, &v) != 0 ||
		    v < 100 || v > 599)
			fatalx("--answers: bad list '%s'", list);
		r.answers[r.nanswers++] = (int)v;
	}
	free(copy);
	if (r.nanswers == 0)
		fatalx("--answers: empty list");
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	event_base_loopexit(r.base, NULL);
}

static __attribute__((noreturn)) void
usage(void)
{
	fprintf(stderr, "usage: hook_receiver --port-file FILE --log FILE "
	    "[--port P] [--answers LIST]\n"
	    "    [--retry-after S] [--current-key K [--next-key K]] "
	    "[--delay-ms MS]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },
		{ "port-file", required_argument, NULL, 'f' },
		{ "log", required_argument, NULL, 'l' },
		{ "answers", required_argument, NULL, 'a' },
		{ "retry-after", required_argument, NULL, 'r' },
		{ "current-key", required_argument, NULL, 'c' },
		{ "next-key", required_argument, NULL, 'n' },
		{ "delay-ms", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	struct evhttp *http;
	struct evhttp_bound_socket *bound;
	struct event *sigterm;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);
	const char *port_file = NULL, *log_file = NULL;
	char *tmp;
	uint64_t port = 0;
	FILE *f;
	int ch;

	log_init("hook_receiver", LOG_LEVEL_INFO);
	r.answers[0] = 200;
	r.nanswers = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (parse_u64(optarg, &port) != 0 || port > 65535)
				fatalx("--port: bad value '%s'", optarg);
			break;
		case 'f': port_file = optarg; break;
		case 'l': log_file = optarg; break;
		case 'a':
			r.nanswers = 0;
			parse_answers(optarg);
			break;
		case 'r': r.retry_after = optarg; break;
		case 'c': r.current_key = optarg; break;
		case 'n': r.next_key = optarg; break;
		case 'd':
			if (parse_u64(optarg, &r.delay_ms) != 0 ||
			    r.delay_ms > 600000)
				fatalx("--delay-ms: bad value '%s'", optarg);
			break;
		default: usage();
		}
	}
	if (optind != argc || port_file == NULL || log_file == NULL)
		usage();
	if ((r.log = fopen(log_file, "ae")) == NULL)
		fatal("%s", log_file);
	signal(SIGPIPE, SIG_IGN);
	if ((r.base = event_base_new()) == NULL ||
	    (http = evhttp_new(r.base)) == NULL)
		fatalx("libevent setup failed");
	evhttp_set_max_body_size(http, BODY_MAX);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(http, handle, NULL);
	if ((bound = evhttp_bind_socket_with_handle(http, "127.0.0.1",
	    (ev_uint16_t)port)) == NULL)
		fatalx("cannot listen on 127.0.0.1:%llu",
		    (unsigned long long)port);
	if (getsockname(evhttp_bound_socket_get_fd(bound),
	    (struct sockaddr *)&sin, &slen) != 0)
		fatal("getsockname");
	tmp = xasprintf("%s.tmp", port_file);
	if ((f = fopen(tmp, "we")) == NULL)
		fatal("%s", tmp);
	fprintf(f, "%u\n", ntohs(sin.sin_port));
	if (fclose(f) != 0 || rename(tmp, port_file) != 0)
		fatal("%s", port_file);
	free(tmp);
	sigterm = evsignal_new(r.base, SIGTERM, on_signal, NULL);
	if (sigterm == NULL || evsignal_add(sigterm, NULL) != 0)
		fatalx("signal setup failed");
	event_base_dispatch(r.base);
	event_free(sigterm);
	evhttp_free(http);
	event_base_free(r.base);
	fclose(r.log);
	return 0;
}
