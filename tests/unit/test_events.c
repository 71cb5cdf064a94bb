/*
 * Unit tests for supervisor/events.c.  The pure parts: an event's JSON as
 * PostHog's batch takes it (CONTRACTS §2), the batch body and its size
 * bound, which answers are retried, the backoff with Retry-After, and the
 * error class and step of a failed sync; expected values written by hand.
 * The queue, through the public face against an evhttp server on
 * 127.0.0.1 in the same loop: batches of posthog.batch_size in order, the
 * rest waiting for the interval and sent at stop; a 503 retried with the
 * same body and a 400 dropped; the bound (the oldest dropped, counted);
 * and a stop with PostHog unreachable that keeps to its deadline.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "common/clock.h"

#include "supervisor/config.h"
#include "supervisor/events.h"
#include "supervisor/outbound.h"
#include "supervisor/supervisor.h"
#include "supervisor/workers.h"

#define KEY	"phc_unit_key"

static struct supervisor the_sv;
static struct config cf;
struct supervisor *sv = &the_sv;

/* The PostHog stand-in: every batch it got, and the answers to give. */
static struct evhttp *http;
static int port;
static json_t *got;		/* request bodies, parsed */
static char *raw[8];		/* the first bodies, as sent */
static int script[8], nscript;	/* statuses to answer, then 200s */
static char credsdir[64];

#define U1	"11111111-2222-4333-8444-555555555501"
#define ID1	"0b6a4c1e-5d2f-4a7b-9c3d-1e2f3a4b5c6d"

static void
test_format_shape(void **state)
{
	char *s = events_format("sync.completed", U1, json_pack("{s:s,s:i}",
	    "userId", U1, "consultations", 20), true, ID1, 1767225600123LL);

	(void)state;
	assert_non_null(s);
	assert_string_equal(s, "{\"event\":\"sync.completed\",\"properties\":{"
	    "\"userId\":\"" U1 "\",\"consultations\":20,\"distinct_id\":\""
	    U1 "\",\"$lib\":\"vetsync\",\"$process_person_profile\":true},"
	    "\"timestamp\":\"2026-01-01T00:00:00.123Z\",\"uuid\":\"" ID1
	    "\"}");
	free(s);
}

static void
test_format_fresh(void **state)
{
	char *a, *b;
	json_t *ja, *jb;
	const char *ua, *ub;

	(void)state;
	a = events_format("discharge.scheduled", U1, json_object(), false,
	    NULL, -1);
	b = events_format("discharge.scheduled", U1, json_object(), false,
	    NULL, -1);
	assert_non_null(a);
	assert_non_null(b);
	ja = json_loads(a, 0, NULL);
	jb = json_loads(b, 0, NULL);
	ua = json_string_value(json_object_get(ja, "uuid"));
	ub = json_string_value(json_object_get(jb, "uuid"));
	assert_non_null(ua);
	assert_non_null(ub);
	/* A v4 uuid: 8-4-4-4-12, version 4, variant 10xx. */
	assert_int_equal(strlen(ua), 36);
	assert_int_equal(ua[14], '4');
	assert_non_null(strchr("89ab", ua[19]));
	assert_string_not_equal(ua, ub);
	assert_true(json_is_false(json_object_get(json_object_get(ja,
	    "properties"), "$process_person_profile")));
	assert_int_equal(strlen(json_string_value(json_object_get(ja,
	    "timestamp"))), 24);
	json_decref(ja);
	json_decref(jb);
	free(a);
	free(b);
}

static void
test_format_refused(void **state)
{
	(void)state;
	/* Not an object; a distinct id that is not UTF-8; no name. */
	assert_null(events_format("x", U1, json_array(), true, NULL, -1));
	assert_null(events_format("x", "\xff\xfe", json_object(), true, NULL,
	    -1));
	assert_null(events_format(NULL, U1, json_object(), true, NULL, -1));
	assert_null(events_format("x", U1, NULL, true, NULL, -1));
}

static void
test_batch_body(void **state)
{
	char *ev[3] = { "{\"a\":1}", "{\"b\":2}", "{\"c\":3}" };
	char *s;
	size_t taken;
	static const char want[] = "{\"api_key\":\"phc_k\\\"ey\","
	    "\"historical_migration\":false,\"batch\":[{\"a\":1},{\"b\":2},"
	    "{\"c\":3}]}";

	(void)state;
	s = events_batch_body("phc_k\"ey", ev, 3, 1 << 20, &taken);
	assert_non_null(s);
	assert_int_equal(taken, 3);
	assert_string_equal(s, want);
	free(s);
	/* Exactly the length of the body: all fit; one byte less: two. */
	s = events_batch_body("phc_k\"ey", ev, 3, strlen(want), &taken);
	assert_non_null(s);
	assert_int_equal(taken, 3);
	free(s);
	s = events_batch_body("phc_k\"ey", ev, 3, strlen(want) - 1, &taken);
	assert_non_null(s);
	assert_int_equal(taken, 2);
	assert_non_null(strstr(s, "{\"b\":2}]}"));
	free(s);
	/* Not even one fits. */
	taken = 99;
	assert_null(events_batch_body("k", ev, 3, 40, &taken));
	assert_int_equal(taken, 0);
	/* A key that is not UTF-8 cannot go into JSON. */
	assert_null(events_batch_body("\xff", ev, 3, 1 << 20, &taken));
	assert_int_equal(taken, 0);
}

static void
test_verdict(void **state)
{
	static const struct {
		int error;
		long status;
		enum events_verdict want;
	} cases[] = {
		{ 0, 200, EVENTS_SENT }, { 0, 204, EVENTS_SENT },
		{ -111, 0, EVENTS_RETRY }, { -110, 0, EVENTS_RETRY },
		{ 0, 408, EVENTS_RETRY }, { 0, 429, EVENTS_RETRY },
		{ 0, 500, EVENTS_RETRY }, { 0, 503, EVENTS_RETRY },
		{ 0, 599, EVENTS_RETRY }, { 0, 400, EVENTS_DROP },
		{ 0, 401, EVENTS_DROP }, { 0, 413, EVENTS_DROP },
		{ 0, 404, EVENTS_DROP }, { 0, 302, EVENTS_DROP },
		{ 0, 100, EVENTS_DROP },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (events_verdict(cases[i].error, cases[i].status) !=
		    cases[i].want)
			fail_msg("error %d status %ld: got %d, want %d",
			    cases[i].error, cases[i].status,
			    events_verdict(cases[i].error, cases[i].status),
			    cases[i].want);
}

static void
test_backoff(void **state)
{
	static const struct {
		unsigned attempt;
		int64_t retry_after_ms;
		uint64_t want;
	} cases[] = {
		{ 0, -1, 1000 }, { 1, -1, 2000 }, { 2, -1, 4000 },
		{ 4, -1, 16000 }, { 5, -1, 30000 }, { 9, -1, 30000 },
		{ 40, -1, 30000 },
		/* Retry-After is a minimum ... */
		{ 0, 5000, 5000 }, { 3, 5000, 8000 }, { 6, 45000, 45000 },
		{ 0, 0, 1000 },
		/* ... with a cap of its own. */
		{ 0, 86400000, EVENTS_RETRY_AFTER_MAX_MS },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (events_backoff_ms(cases[i].attempt,
		    cases[i].retry_after_ms) != cases[i].want)
			fail_msg("attempt %u retry-after %lld: got %llu, "
			    "want %llu", cases[i].attempt,
			    (long long)cases[i].retry_after_ms,
			    (unsigned long long)events_backoff_ms(
			    cases[i].attempt, cases[i].retry_after_ms),
			    (unsigned long long)cases[i].want);
}

static void
test_failure_class(void **state)
{
	static const struct {
		enum worker_exit_class cls;
		bool invalid;
		int status;
		const char *error, *step;
	} cases[] = {
		{ WORKER_EXIT_SPAWN, false, -1, "spawn_failed", "start" },
		{ WORKER_EXIT_CLEAN, true, 3, "invalid_credentials", "login" },
		{ WORKER_EXIT_CLEAN, false, 4, "ui_changed", "idexx" },
		{ WORKER_EXIT_CLEAN, false, 2, "failed", "idexx" },
		{ WORKER_EXIT_CLEAN, false, 5, "timeout", "idexx" },
		{ WORKER_EXIT_CLEAN, false, 99, "failed", "idexx" },
		{ WORKER_EXIT_TIMEOUT, false, -1, "timeout", "worker" },
		{ WORKER_EXIT_SECCOMP, false, -1, "seccomp_violation",
		    "worker" },
		{ WORKER_EXIT_CANCELLED, false, -1, "cancelled", "worker" },
	};
	struct worker_outcome o;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&o, 0, sizeof(o));
		o.cls = cases[i].cls;
		o.invalid_credentials = cases[i].invalid;
		o.result_status = cases[i].status;
		/* Free text never becomes the error. */
		strcpy(o.detail, "IDEXX said: call 303-555-0100");
		assert_string_equal(events_failure_error(&o), cases[i].error);
		assert_string_equal(events_failure_step(&o), cases[i].step);
	}
}

/* --- the queue ------------------------------------------------------------ */

static void
server_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evbuffer *out = evbuffer_new();
	size_t n = evbuffer_get_length(in), i = json_array_size(got);
	const char *body = (const char *)evbuffer_pullup(in, -1);
	int code = i < (size_t)nscript ? script[i] : 200;

	(void)arg;
	json_array_append_new(got, json_loadb(body, n, 0, NULL));
	if (i < sizeof(raw) / sizeof(raw[0]))
		raw[i] = strndup(body, n);
	evbuffer_add_printf(out, "{\"status\":\"Ok\"}");
	evhttp_send_reply(req, code, NULL, out);
	evbuffer_free(out);
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Run the loop until the server has n requests, or ms pass. */
static void
run_until(size_t n, uint64_t ms)
{
	uint64_t end = clock_mono_ms() + ms;
	struct timeval tv = clock_timeval_ms(20);
	struct event *t = evtimer_new(sv->base, tick_cb, NULL);

	while (json_array_size(got) < n && clock_mono_ms() < end) {
		evtimer_add(t, &tv);
		event_base_loop(sv->base, EVLOOP_ONCE);
	}
	event_free(t);
}

/* A metric's value from events_metrics(); -1 when absent. */
static long long
metric(const char *name)
{
	struct evbuffer *b = evbuffer_new();
	char *text, *p;
	long long v = -1;
	size_t n;

	events_metrics(b);
	n = evbuffer_get_length(b);
	text = strndup((const char *)evbuffer_pullup(b, -1), n);
	for (p = text; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, name, strlen(name)) == 0 &&
		    p[strlen(name)] == ' ')
			v = strtoll(p + strlen(name) + 1, NULL, 10);
	}
	free(text);
	evbuffer_free(b);
	return v;
}

/* The user id of event e of request r. */
static const char *
user_of(size_t r, size_t e)
{
	return json_string_value(json_object_get(json_object_get(
	    json_array_get(json_object_get(json_array_get(got, r), "batch"),
	    e), "properties"), "userId"));
}

static size_t
events_in(size_t r)
{
	return json_array_size(json_object_get(json_array_get(got, r),
	    "batch"));
}

static void
start(int at_port, unsigned batch_size, uint64_t interval_ms)
{
	static char host[64];

	snprintf(host, sizeof(host), "http://127.0.0.1:%d/", at_port);
	cf.posthog.host = host;
	cf.posthog.batch_size = batch_size;
	cf.posthog.flush_interval_ms = interval_ms;
	assert_int_equal(events_start(NULL), 0);
	assert_true(events_enabled());
}

/* n credential.validated events of users c<first> ... */
static void
emit(unsigned first, unsigned n)
{
	char u[16];

	for (unsigned i = first; i < first + n; i++) {
		snprintf(u, sizeof(u), "c%u", i);
		events_credential_validated(u, i % 2 == 0);
	}
}

static int
queue_setup(void **state)
{
	struct evhttp_bound_socket *s;
	struct sockaddr_storage ss;
	ev_socklen_t len = sizeof(ss);
	char path[128];
	FILE *f;

	(void)state;
	snprintf(credsdir, sizeof(credsdir), "/tmp/vs-test-events.XXXXXX");
	if (mkdtemp(credsdir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/posthog-key", credsdir);
	if ((f = fopen(path, "we")) == NULL)
		return -1;
	fprintf(f, "%s\n", KEY);
	fclose(f);
	chmod(path, 0600);
	setenv("CREDENTIALS_DIRECTORY", credsdir, 1);
	the_sv.base = event_base_new();
	the_sv.config = &cf;
	http = evhttp_new(the_sv.base);
	evhttp_set_gencb(http, server_cb, NULL);
	s = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	if (s == NULL)
		return -1;
	getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&ss,
	    &len);
	port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	got = json_array();
	nscript = 0;
	return 0;
}

static int
queue_teardown(void **state)
{
	char path[128];

	(void)state;
	events_stop(0);
	outbound_free();
	evhttp_free(http);
	event_base_free(the_sv.base);
	json_decref(got);
	for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++) {
		free(raw[i]);
		raw[i] = NULL;
	}
	snprintf(path, sizeof(path), "%s/posthog-key", credsdir);
	unlink(path);
	rmdir(credsdir);
	return 0;
}

static void
test_queue_batches(void **state)
{
	(void)state;
	start(port, 3, 600000);
	emit(0, 7);
	run_until(2, 5000);
	assert_int_equal(json_array_size(got), 2);
	assert_int_equal(events_in(0), 3);
	assert_int_equal(events_in(1), 3);
	assert_string_equal(user_of(0, 0), "c0");
	assert_string_equal(user_of(0, 2), "c2");
	assert_string_equal(user_of(1, 0), "c3");
	assert_string_equal(user_of(1, 2), "c5");
	assert_string_equal(json_string_value(json_object_get(json_array_get(
	    got, 0), "api_key")), KEY);
	/* The seventh waits for the interval ... */
	run_until(3, 300);
	assert_int_equal(json_array_size(got), 2);
	assert_int_equal(metric("vetsync_posthog_events_waiting"), 1);
	/* ... or the stop. */
	events_stop(2000);
	assert_int_equal(json_array_size(got), 3);
	assert_string_equal(user_of(2, 0), "c6");
	assert_int_equal(metric("vetsync_posthog_events_sent_total"), 7);
	assert_false(events_enabled());
}

static void
test_queue_retry_and_drop(void **state)
{
	(void)state;
	script[0] = 503;
	script[1] = 200;
	script[2] = 400;
	nscript = 3;
	start(port, 1, 1000);
	emit(0, 1);
	run_until(2, 5000);
	assert_int_equal(json_array_size(got), 2);
	run_until(3, 200);	/* the client reads the answer */
	/* The same body again: the same uuid, sent once in the end. */
	assert_non_null(raw[0]);
	assert_non_null(raw[1]);
	assert_string_equal(raw[0], raw[1]);
	assert_int_equal(metric("vetsync_posthog_events_sent_total"), 1);
	assert_int_equal(metric(
	    "vetsync_posthog_requests_total{result=\"retried\"}"), 1);
	/* A 400 is not retried. */
	emit(1, 1);
	run_until(3, 5000);
	assert_int_equal(json_array_size(got), 3);
	run_until(4, 1500);
	assert_int_equal(json_array_size(got), 3);
	assert_int_equal(metric(
	    "vetsync_posthog_events_dropped_total{reason=\"rejected\"}"), 1);
	assert_int_equal(metric("vetsync_posthog_events_waiting"), 0);
}

static void
test_queue_bound(void **state)
{
	size_t total = 0;

	(void)state;
	start(port, 1000, 600000);
	/* No loop runs meanwhile: the ring fills and the oldest go. */
	emit(0, EVENTS_QUEUE_MAX + 5);
	assert_int_equal(metric(
	    "vetsync_posthog_events_dropped_total{reason=\"overflow\"}"), 5);
	assert_int_equal(metric("vetsync_posthog_events_waiting"),
	    EVENTS_QUEUE_MAX);
	events_stop(10000);
	for (size_t i = 0; i < json_array_size(got); i++) {
		assert_true(events_in(i) <= 1000);
		total += events_in(i);
	}
	assert_int_equal(total, EVENTS_QUEUE_MAX);
	assert_string_equal(user_of(0, 0), "c5");
}

static void
test_queue_unreachable(void **state)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), dead;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	uint64_t t0;

	(void)state;
	/* A port nothing listens on. */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	getsockname(fd, (struct sockaddr *)&sa, &len);
	dead = ntohs(sa.sin_port);
	close(fd);
	start(dead, 1, 1000);
	emit(0, 2);
	run_until(1, 300);
	t0 = clock_mono_ms();
	events_stop(1000);
	assert_true(clock_mono_ms() - t0 < 1500);
	assert_int_equal(metric(
	    "vetsync_posthog_events_dropped_total{reason=\"stopping\"}"), 2);
	assert_int_equal(metric("vetsync_posthog_events_sent_total"), 0);
	assert_int_equal(json_array_size(got), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_shape),
		cmocka_unit_test(test_format_fresh),
		cmocka_unit_test(test_format_refused),
		cmocka_unit_test(test_batch_body),
		cmocka_unit_test(test_verdict),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_failure_class),
		cmocka_unit_test_setup_teardown(test_queue_batches,
		    queue_setup, queue_teardown),
		cmocka_unit_test_setup_teardown(test_queue_retry_and_drop,
		    queue_setup, queue_teardown),
		cmocka_unit_test_setup_teardown(test_queue_bound,
		    queue_setup, queue_teardown),
		cmocka_unit_test_setup_teardown(test_queue_unreachable,
		    queue_setup, queue_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
