/*
 * Unit tests for supervisor/discharge_rules.c, table-driven with expected
 * values written by hand: the client's number in E.164, the publisher's
 * backoff and its jitter, what a 429 asks to wait, and which ids may go
 * into a header or a URL path.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/discharge_rules.h"

static void
test_e164_accepted(void **state)
{
	static const struct { const char *in, *want; } t[] = {
		{ "+13035550123", "+13035550123" },
		{ "+1 303-555-0123", "+13035550123" },	/* the simulator's */
		{ "(303) 555-0123", "+13035550123" },
		{ "303.555.0123", "+13035550123" },
		{ "1-303-555-0123", "+13035550123" },
		{ "  +44 20 7946 0958", "+442079460958" },
		{ "0044 20 7946 0958", "+442079460958" },
		{ "+491711234567", "+491711234567" },
		{ "+123456789012345", "+123456789012345" },	/* 15 digits */
	};
	char out[DISCHARGE_E164_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(out, 0, sizeof(out));
		assert_int_equal(discharge_e164(t[i].in, out, sizeof(out)), 0);
		assert_string_equal(out, t[i].want);
	}
}

static void
test_e164_refused(void **state)
{
	static const char *const t[] = {
		"", "+", "555-0123", "303555012", "30355501234",
		"0303555012", "1303555012", "+1234567", "+1234567890123456",
		"+0123456789", "+1 303 555 0123 x12", "303-555-O123",
		"+1\n3035550123", "++13035550123", "12345678901234567890123456789",
	};
	char out[DISCHARGE_E164_MAX] = "untouched";

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(discharge_e164(t[i], out, sizeof(out)),
		    -EINVAL);
		assert_string_equal(out, "untouched");
	}
	assert_int_equal(discharge_e164(NULL, out, sizeof(out)), -EINVAL);
	/* A buffer too small is refused, not overrun. */
	assert_int_equal(discharge_e164("+13035550123", out, 8), -EINVAL);
}

static void
test_backoff(void **state)
{
	static const struct { unsigned attempts; uint64_t lo, hi; } t[] = {
		{ 0, 500, 1000 },
		{ 1, 1000, 2000 },
		{ 2, 2000, 4000 },
		{ 5, 16000, 32000 },
		{ 8, 128000, 256000 },
		{ 9, 150000, 300000 },		/* the cap */
		{ 40, 150000, 300000 },
		{ 4000000000u, 150000, 300000 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		/* The jitter's extremes and values between. */
		assert_int_equal(discharge_backoff_ms(t[i].attempts, 0),
		    t[i].lo);
		assert_int_equal(discharge_backoff_ms(t[i].attempts,
		    t[i].hi - t[i].lo), t[i].hi);
		for (uint64_t r = 1; r < 5000; r += 997) {
			uint64_t v = discharge_backoff_ms(t[i].attempts,
			    r * 7919);

			assert_true(v >= t[i].lo && v <= t[i].hi);
		}
	}
}

static void
test_wait(void **state)
{
	const int64_t now = 1764140000;
	uint64_t ms = 12345;

	(void)state;
	assert_int_equal(discharge_wait_ms("7", NULL, now, &ms), 0);
	assert_int_equal(ms, 7000);
	assert_int_equal(discharge_wait_ms("0", "1764140030", now, &ms), 0);
	assert_int_equal(ms, 0);	/* Retry-After wins */
	assert_int_equal(discharge_wait_ms(NULL, "1764140030", now, &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(discharge_wait_ms("soon", "1764140002", now, &ms), 0);
	assert_int_equal(ms, 2000);
	assert_int_equal(discharge_wait_ms(NULL, "1764139000", now, &ms), 0);
	assert_int_equal(ms, 0);	/* a reset in the past */
	/* 1764140000 is Wed, 26 Nov 2025 06:53:20 GMT. */
	assert_int_equal(discharge_wait_ms("Wed, 26 Nov 2025 06:54:20 GMT",
	    NULL, now, &ms), 0);
	assert_int_equal(ms, 60000);
	assert_int_equal(discharge_wait_ms("999999", NULL, now, &ms), 0);
	assert_int_equal(ms, DISCHARGE_WAIT_MAX_MS);
	ms = 42;
	assert_int_equal(discharge_wait_ms(NULL, NULL, now, &ms), -ENOENT);
	assert_int_equal(discharge_wait_ms("-3", "x", now, &ms), -ENOENT);
	assert_int_equal(discharge_wait_ms("5s", "", now, &ms), -ENOENT);
	assert_int_equal(discharge_wait_ms("99999999999999999999999", NULL,
	    now, &ms), -ENOENT);
	assert_int_equal(ms, 42);
}

static void
test_token(void **state)
{
	char longest[DISCHARGE_TOKEN_MAX + 2];

	(void)state;
	assert_true(discharge_token_valid("msg_26hZCxZCuWyyTWPmSVBrNC1RADwn"));
	assert_true(discharge_token_valid(
	    "discharge-11111111-2222-4333-8444-555555555501-C1.2_3-1764140000"));
	assert_true(discharge_token_valid("a:b"));
	assert_false(discharge_token_valid(NULL));
	assert_false(discharge_token_valid(""));
	assert_false(discharge_token_valid("a b"));
	assert_false(discharge_token_valid("a/b"));
	assert_false(discharge_token_valid("a\r\nX-Evil: 1"));
	assert_false(discharge_token_valid("caf\xc3\xa9"));
	memset(longest, 'x', sizeof(longest));
	longest[DISCHARGE_TOKEN_MAX] = '\0';
	assert_true(discharge_token_valid(longest));
	longest[DISCHARGE_TOKEN_MAX] = 'x';
	longest[DISCHARGE_TOKEN_MAX + 1] = '\0';
	assert_false(discharge_token_valid(longest));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_e164_accepted),
		cmocka_unit_test(test_e164_refused),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_wait),
		cmocka_unit_test(test_token),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
