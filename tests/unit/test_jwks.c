/*
 * Unit tests for supervisor/jwks.c through its public face, with short
 * timings, against an evhttp server on 127.0.0.1 in the same event loop
 * serving a JWKS of P-256 keys made here: the fetch at start, the
 * periodic refresh picking up a rotated key, a refresh that fails (500,
 * not JSON, oversized, too slow) keeping the last good set with the
 * failures counted, the rate limit on fetches for unknown kids, and
 * jwks_stop() or outbound_free() with a fetch in flight (done called
 * once, or not at all; nothing leaked).
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

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
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "common/base64.h"

#include "supervisor/jwks.h"
#include "supervisor/jws.h"
#include "supervisor/outbound.h"

static const struct jwks_timing timing = {
	.refresh_ms = 300, .retry_ms = 100, .miss_ms = 150, .timeout_ms = 400,
};

static struct event_base *base;
static struct evhttp *http;
static char url[64];
static EVP_PKEY *k1, *k2;

/* What the server answers, and what it saw. */
static struct {
	int	 status;
	char	 doc[96 * 1024];
	bool	 hold;		/* never answer (a slow JWKS) */
	int	 requests;
} srv;

/* What done saw. */
static struct {
	int	 calls;
	int	 cancelled;
	bool	 stop_loop;
} done_seen;

static void
server_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer *out;

	srv.requests++;
	if (srv.hold)
		return;		/* evhttp_free() drops it */
	out = evbuffer_new();
	evbuffer_add(out, srv.doc, strlen(srv.doc));
	evhttp_send_reply(req, srv.status, NULL, out);
	evbuffer_free(out);
}

static void
done(bool cancelled)
{
	done_seen.calls++;
	done_seen.cancelled += cancelled;
	if (done_seen.stop_loop)
		event_base_loopbreak(base);
}

static void
time_up(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(base);
}

/*
 * Run the loop for ms, or until done when until_done.  A timer of our own,
 * not event_base_loopexit(): that one would stay armed after an early
 * break and end a later run too soon.
 */
static void
run(int ms, bool until_done)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct event *t = evtimer_new(base, time_up, NULL);

	assert_non_null(t);
	done_seen.stop_loop = until_done;
	evtimer_add(t, &tv);
	event_base_dispatch(base);
	event_free(t);
	done_seen.stop_loop = false;
}

/* A JWKS of the given (kid, key) pairs into srv.doc. */
static void
serve(const char *kid1, EVP_PKEY *a, const char *kid2, EVP_PKEY *b)
{
	const char *kids[2] = { kid1, kid2 };
	EVP_PKEY *keys[2] = { a, b };
	unsigned char pub[65];
	char x[64], y[64];
	size_t len, n;

	n = (size_t)snprintf(srv.doc, sizeof(srv.doc), "{\"keys\":[");
	for (int i = 0; i < 2 && kids[i] != NULL; i++) {
		assert_int_equal(EVP_PKEY_get_octet_string_param(keys[i],
		    OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len), 1);
		base64url_encode(pub + 1, 32, x);
		base64url_encode(pub + 33, 32, y);
		n += (size_t)snprintf(srv.doc + n, sizeof(srv.doc) - n,
		    "%s{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\","
		    "\"x\":\"%s\",\"y\":\"%s\"}", i > 0 ? "," : "", kids[i], x,
		    y);
	}
	snprintf(srv.doc + n, sizeof(srv.doc) - n, "]}");
	srv.status = 200;
	srv.hold = false;
}

static int
setup(void **state)
{
	struct evhttp_bound_socket *s;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);

	base = event_base_new();
	http = evhttp_new(base);
	evhttp_set_gencb(http, server_cb, NULL);
	s = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	if (base == NULL || s == NULL || getsockname(
	    evhttp_bound_socket_get_fd(s), (struct sockaddr *)&ss,
	    &sslen) != 0)
		return -1;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/jwks.json",
	    ntohs(((struct sockaddr_in *)&ss)->sin_port));
	k1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	k2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	return k1 != NULL && k2 != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	evhttp_free(http);
	event_base_free(base);
	return 0;
}

/* Every test starts fresh and ends with jwks and outbound stopped. */
static int
each_setup(void **state)
{
	memset(&srv, 0, sizeof(srv));
	memset(&done_seen, 0, sizeof(done_seen));
	serve("k1", k1, "k2", k2);
	assert_false(jwks_enabled());
	assert_null(jwks_keys());
	assert_int_equal(jwks_start(base, url, &timing, done), 0);
	assert_true(jwks_enabled());
	/* Before the first fetch: an empty set, not NULL. */
	assert_non_null(jwks_keys());
	assert_int_equal(jws_keys_count(jwks_keys()), 0);
	return 0;
}

static int
each_teardown(void **state)
{
	jwks_stop();
	outbound_free();
	jwks_stop();		/* twice is safe */
	return 0;
}

static void
test_start_and_refresh(void **state)
{
	uint64_t fetches = jwks_fetches();

	run(2000, true);
	assert_int_equal(done_seen.calls, 1);
	assert_int_equal(jws_keys_count(jwks_keys()), 2);
	assert_non_null(jws_keys_find(jwks_keys(), "k2"));
	assert_int_equal(jwks_fetches(), fetches + 1);
	/* Rotated: k2 out, k3 in; the periodic refresh brings it. */
	serve("k1", k1, "k3", k2);
	run(2000, true);
	assert_int_equal(done_seen.calls, 2);
	assert_null(jws_keys_find(jwks_keys(), "k2"));
	assert_non_null(jws_keys_find(jwks_keys(), "k3"));
	/* And again, every refresh_ms. */
	run(timing.refresh_ms * 3 + 150, false);
	assert_true(done_seen.calls >= 4);
	assert_int_equal(done_seen.cancelled, 0);
}

static void
test_failures_keep_the_set(void **state)
{
	static const char *const bad[] = { "{\"keys\":[]}", "not json",
	    "{\"keys\":[{\"kty\":\"OKP\",\"kid\":\"ed\"}]}" };
	uint64_t failures = jwks_failures();
	int calls;

	run(2000, true);
	assert_int_equal(jws_keys_count(jwks_keys()), 2);
	srv.status = 500;
	run(2000, true);
	assert_int_equal(jwks_failures(), failures + 1);
	assert_int_equal(jws_keys_count(jwks_keys()), 2);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		srv.status = 200;
		snprintf(srv.doc, sizeof(srv.doc), "%s", bad[i]);
		run(2000, true);
		assert_int_equal(jwks_failures(), failures + 2 + i);
		assert_non_null(jws_keys_find(jwks_keys(), "k1"));
	}
	/* Over JWKS_DOC_MAX: refused by the fetch itself. */
	memset(srv.doc, ' ', JWKS_DOC_MAX + 10);
	srv.doc[JWKS_DOC_MAX + 10] = '\0';
	run(2000, true);
	assert_int_equal(jwks_failures(), failures + 5);
	assert_int_equal(jws_keys_count(jwks_keys()), 2);
	/* Retries come sooner than refresh_ms after a failure, then back. */
	calls = done_seen.calls;
	serve("k1", k1, NULL, NULL);
	run(2000, true);
	assert_int_equal(done_seen.calls, calls + 1);
	assert_int_equal(jws_keys_count(jwks_keys()), 1);
}

static void
test_slow(void **state)
{
	uint64_t failures = jwks_failures();
	uint64_t t0;

	run(2000, true);
	srv.hold = true;
	t0 = jwks_fetches();
	run(2000, true);	/* the next refresh times out */
	assert_int_equal(jwks_fetches(), t0 + 1);
	assert_int_equal(jwks_failures(), failures + 1);
	assert_int_equal(jws_keys_count(jwks_keys()), 2);
	assert_int_equal(done_seen.cancelled, 0);
}

static void
test_miss_rate_limit(void **state)
{
	int requests;

	run(2000, true);
	requests = srv.requests;
	/* A miss right after a fetch: starts one (none for a miss yet). */
	assert_true(jwks_refresh_for_miss());
	assert_true(jwks_refresh_for_miss());	/* in flight: wait on it */
	run(2000, true);
	assert_int_equal(srv.requests, requests + 1);
	/* Within miss_ms of the last one: no fetch. */
	for (int i = 0; i < 20; i++)
		assert_false(jwks_refresh_for_miss());
	run(50, false);
	assert_false(jwks_refresh_for_miss());
	assert_int_equal(srv.requests, requests + 1);
	/* After miss_ms: one more. */
	run((int)timing.miss_ms, false);
	requests = srv.requests;
	assert_true(jwks_refresh_for_miss());
	run(2000, true);
	assert_int_equal(srv.requests, requests + 1);
}

static void
test_stop_in_flight(void **state)
{
	srv.hold = true;
	run(100, false);	/* the start fetch is held */
	assert_int_equal(srv.requests, 1);
	jwks_stop();
	assert_false(jwks_enabled());
	assert_null(jwks_keys());
	assert_false(jwks_refresh_for_miss());
	/* outbound_free() ends the forgotten fetch: done is not called. */
	outbound_free();
	assert_int_equal(done_seen.calls, 0);
}

static void
test_cancelled(void **state)
{
	srv.hold = true;
	run(100, false);
	/* vetsyncd stopping: outbound_free() cancels, done(true) once. */
	outbound_free();
	assert_int_equal(done_seen.calls, 1);
	assert_int_equal(done_seen.cancelled, 1);
	/* No timer left to fetch again. */
	run(timing.refresh_ms + 100, false);
	assert_int_equal(srv.requests, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_start_and_refresh,
		    each_setup, each_teardown),
		cmocka_unit_test_setup_teardown(test_failures_keep_the_set,
		    each_setup, each_teardown),
		cmocka_unit_test_setup_teardown(test_slow, each_setup,
		    each_teardown),
		cmocka_unit_test_setup_teardown(test_miss_rate_limit,
		    each_setup, each_teardown),
		cmocka_unit_test_setup_teardown(test_stop_in_flight,
		    each_setup, each_teardown),
		cmocka_unit_test_setup_teardown(test_cancelled, each_setup,
		    each_teardown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
