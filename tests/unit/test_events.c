/*
 * Unit tests for the pure parts of supervisor/events.c: an event's JSON
 * as PostHog's batch takes it (CONTRACTS §2), the batch body and its size
 * bound, which answers are retried, the backoff with Retry-After, and the
 * error class and step of a failed sync.  Expected values written by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "supervisor/events.h"
#include "supervisor/supervisor.h"
#include "supervisor/workers.h"

/* events.c reads the supervisor's state; these tests never reach it. */
struct supervisor *sv;

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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
