/*
 * Unit tests for supervisor/outbound.c through its public face, against an
 * evhttp server on 127.0.0.1 in the same event loop: a POST whose method,
 * headers and body arrive as sent, the status and response headers (a
 * 429's Retry-After and Burst-RateLimit-Reset read together), DELETE and
 * an empty 404, a body over response_max (-EMSGSIZE), a server too slow
 * for timeout_ms (-ETIMEDOUT), a refused connection, requests refused
 * before anything is sent (-EINVAL), and outbound_free() cancelling what
 * is in flight (-ECANCELED), each callback run exactly once.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "supervisor/outbound.h"

struct answer {
	int calls;
	int error;
	long status;
	char body[256];
	size_t len;
	char retry_after[64];
	char reset[64];
	char missing[8];
};

static struct event_base *base;
static struct evhttp *http;
static int port;
static char seen_method[16], seen_auth[128], seen_body[128];
static struct evhttp_request *held;	/* a request answered late */

static void
server_cb(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *out = evbuffer_new();
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
	const char *a = evhttp_find_header(h, "Authorization");
	size_t n = evbuffer_get_length(in);

	(void)arg;
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_POST:
		snprintf(seen_method, sizeof(seen_method), "POST");
		break;
	case EVHTTP_REQ_DELETE:
		snprintf(seen_method, sizeof(seen_method), "DELETE");
		break;
	default:
		snprintf(seen_method, sizeof(seen_method), "OTHER");
	}
	snprintf(seen_auth, sizeof(seen_auth), "%s", a != NULL ? a : "");
	if (n >= sizeof(seen_body))
		n = sizeof(seen_body) - 1;
	evbuffer_remove(in, seen_body, n);
	seen_body[n] = '\0';
	if (strcmp(uri, "/ok") == 0) {
		evbuffer_add_printf(out, "{\"messageId\":\"msg_1\"}");
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strcmp(uri, "/limited") == 0) {
		evhttp_add_header(oh, "Retry-After", "7");
		evhttp_add_header(oh, "Burst-RateLimit-Reset", "1764140030");
		evbuffer_add_printf(out, "{\"error\":\"slow down\"}");
		evhttp_send_reply(req, 429, "Too Many Requests", out);
	} else if (strcmp(uri, "/big") == 0) {
		for (int i = 0; i < 100; i++)
			evbuffer_add_printf(out, "0123456789");
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strcmp(uri, "/slow") == 0) {
		held = req;	/* never answered in time */
	} else
		evhttp_send_reply(req, 404, "Not Found", out);
	evbuffer_free(out);
}

static void
answered(const struct outbound_response *r, void *arg)
{
	struct answer *a = arg;
	const char *v;

	a->calls++;
	a->error = r->error;
	a->status = r->status;
	a->len = r->len < sizeof(a->body) - 1 ? r->len : sizeof(a->body) - 1;
	memcpy(a->body, r->body, a->len);
	a->body[a->len] = '\0';
	/* Read two headers before using either: both must stay valid. */
	{
		const char *ra = outbound_header(r->headers, "retry-after");
		const char *rs = outbound_header(r->headers,
		    "Burst-RateLimit-Reset");

		snprintf(a->retry_after, sizeof(a->retry_after), "%s",
		    ra != NULL ? ra : "");
		snprintf(a->reset, sizeof(a->reset), "%s", rs != NULL ? rs : "");
	}
	v = outbound_header(r->headers, "X-Absent");
	snprintf(a->missing, sizeof(a->missing), "%s", v == NULL ? "null" :
	    "set");
	if (r->error != -ECANCELED)
		event_base_loopbreak(base);
}

/* Run the loop until the callback has run (or 5 s pass). */
static void
run(struct answer *a)
{
	struct timeval tv = { 5, 0 };

	while (a->calls == 0) {
		event_base_loopexit(base, &tv);
		if (event_base_dispatch(base) != 0 || a->calls == 0)
			break;
	}
}

static int
setup(void **state)
{
	struct evhttp_bound_socket *s;
	struct sockaddr_storage ss;
	ev_socklen_t len = sizeof(ss);

	(void)state;
	base = event_base_new();
	http = evhttp_new(base);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
	    EVHTTP_REQ_DELETE);
	evhttp_set_gencb(http, server_cb, NULL);
	s = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	if (s == NULL)
		return -1;
	getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&ss,
	    &len);
	port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return outbound_init(base);
}

static int
teardown(void **state)
{
	(void)state;
	outbound_free();
	evhttp_free(http);
	event_base_free(base);
	return 0;
}

static void
url(char *buf, size_t n, const char *path)
{
	snprintf(buf, n, "http://127.0.0.1:%d%s", port, path);
}

static void
test_post(void **state)
{
	struct outbound_request rq = { .method = "POST" };
	struct answer a = { 0 };
	char u[128];

	(void)state;
	url(u, sizeof(u), "/ok");
	rq.url = u;
	rq.headers[0] = "Authorization: Bearer t0ken";
	rq.headers[1] = "Content-Type: application/json";
	rq.body = "{\"call\":1}";
	rq.len = strlen(rq.body);
	assert_int_equal(outbound_send(&rq, answered, &a), 0);
	assert_int_equal(a.calls, 0);	/* never from inside send */
	run(&a);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.error, 0);
	assert_int_equal(a.status, 200);
	assert_string_equal(a.body, "{\"messageId\":\"msg_1\"}");
	assert_string_equal(seen_method, "POST");
	assert_string_equal(seen_auth, "Bearer t0ken");
	assert_string_equal(seen_body, "{\"call\":1}");
	assert_string_equal(a.missing, "null");
	assert_int_equal(outbound_pending(), 0);
}

static void
test_429_headers(void **state)
{
	struct outbound_request rq = { .method = "POST" };
	struct answer a = { 0 };
	char u[128];

	(void)state;
	url(u, sizeof(u), "/limited");
	rq.url = u;
	assert_int_equal(outbound_send(&rq, answered, &a), 0);
	run(&a);
	assert_int_equal(a.error, 0);
	assert_int_equal(a.status, 429);
	assert_string_equal(a.retry_after, "7");
	assert_string_equal(a.reset, "1764140030");
}

static void
test_delete_404(void **state)
{
	struct outbound_request rq = { .method = "DELETE" };
	struct answer a = { 0 };
	char u[128];

	(void)state;
	url(u, sizeof(u), "/v2/messages/msg_gone");
	rq.url = u;
	assert_int_equal(outbound_send(&rq, answered, &a), 0);
	run(&a);
	assert_int_equal(a.error, 0);
	assert_int_equal(a.status, 404);
	assert_string_equal(seen_method, "DELETE");
	assert_int_equal(a.len, 0);
}

static void
test_response_cap(void **state)
{
	struct outbound_request rq = { .method = "GET", .response_max = 100 };
	struct answer a = { 0 };
	char u[128];

	(void)state;
	url(u, sizeof(u), "/big");
	rq.url = u;
	assert_int_equal(outbound_send(&rq, answered, &a), 0);
	run(&a);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.error, -EMSGSIZE);
	assert_int_equal(a.status, 0);
}

static void
test_timeout(void **state)
{
	struct outbound_request rq = { .method = "POST", .timeout_ms = 300 };
	struct answer a = { 0 };
	char u[128];

	(void)state;
	url(u, sizeof(u), "/slow");
	rq.url = u;
	assert_int_equal(outbound_send(&rq, answered, &a), 0);
	run(&a);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.error, -ETIMEDOUT);
	assert_int_equal(a.status, 0);
}

static void
test_refused(void **state)
{
	struct outbound_request rq = { .method = "GET" };
	struct answer a = { 0 };

	(void)state;
	/* Port 1 on loopback: nobody listens. */
	rq.url = "http://127.0.0.1:1/x";
	assert_int_equal(outbound_send(&rq, answered, &a), 0);
	run(&a);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.error, -ECONNREFUSED);
}

static void
test_invalid(void **state)
{
	struct outbound_request rq = { .method = "GET" };
	struct answer a = { 0 };
	char u[128];

	(void)state;
	url(u, sizeof(u), "/ok");
	rq.url = "ftp://127.0.0.1/x";
	assert_int_equal(outbound_send(&rq, answered, &a), -EINVAL);
	rq.url = "http://127.0.0.1/a b";
	assert_int_equal(outbound_send(&rq, answered, &a), -EINVAL);
	rq.url = u;
	rq.method = "BREW";
	assert_int_equal(outbound_send(&rq, answered, &a), -EINVAL);
	rq.method = "POST";
	rq.headers[0] = "X-Evil: 1\r\nX-More: 2";
	assert_int_equal(outbound_send(&rq, answered, &a), -EINVAL);
	rq.headers[0] = "no colon";
	assert_int_equal(outbound_send(&rq, answered, &a), -EINVAL);
	assert_int_equal(a.calls, 0);
	assert_int_equal(outbound_pending(), 0);
}

static void
test_free_cancels(void **state)
{
	struct outbound_request rq = { .method = "POST", .timeout_ms = 10000 };
	struct answer a = { 0 }, b = { 0 };
	char u[128];

	(void)state;
	url(u, sizeof(u), "/slow");
	rq.url = u;
	assert_int_equal(outbound_send(&rq, answered, &a), 0);
	assert_int_equal(outbound_send(&rq, answered, &b), 0);
	assert_int_equal(outbound_pending(), 2);
	outbound_free();
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_int_equal(a.error, -ECANCELED);
	assert_int_equal(outbound_pending(), 0);
	assert_int_equal(outbound_send(&rq, answered, &a), -ESHUTDOWN);
	assert_int_equal(outbound_init(base), 0);	/* again, for teardown */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_post),
		cmocka_unit_test(test_429_headers),
		cmocka_unit_test(test_delete_404),
		cmocka_unit_test(test_response_cap),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_free_cancels),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
