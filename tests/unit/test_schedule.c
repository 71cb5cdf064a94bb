/*
 * Unit tests of supervisor/schedule.c, the scheduler's time arithmetic:
 * notes slots spread over the interval and stable, the nightly local time
 * on the daylight-saving days of America/New_York and Europe/London (2026:
 * 8 March and 1 November; 29 March and 25 October), and the catch-up rule.
 * Expected instants are written by hand in UTC.  Also the operator's window
 * of dates (vetsyncctl sync --from/--to) as jobspec checks it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "supervisor/jobspec.h"
#include "supervisor/schedule.h"
#include "supervisor/supervisor.h"

/* jobspec.c reads the supervisor's state; these tests never reach it. */
struct supervisor *sv;

#define MIN_MS	(60 * 1000LL)
#define HOUR_MS	(60 * MIN_MS)

/* "YYYY-MM-DDTHH:MM:SSZ" to seconds. */
static time_t
utc(const char *s)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	assert_non_null(strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm));
	return timegm(&tm);
}

static void
uuid_of(unsigned i, char out[37])
{
	snprintf(out, 37, "00000000-0000-4000-8000-%012x", i);
}

static void
test_offset_stable_and_spread(void **state)
{
	const uint64_t interval = 4 * HOUR_MS;
	unsigned buckets[16] = { 0 };
	char id[37];

	(void)state;
	for (unsigned i = 0; i < 160; i++) {
		uint64_t o;

		uuid_of(i, id);
		o = schedule_offset_ms(id, interval);
		assert_true(o < interval);
		assert_int_equal(o, schedule_offset_ms(id, interval));
		buckets[o / (interval / 16)]++;
	}
	/* 160 clinics in 16 slices of 15 min: none empty, none crowded. */
	for (size_t b = 0; b < 16; b++) {
		assert_true(buckets[b] >= 2);
		assert_true(buckets[b] <= 25);
	}
}

static void
test_notes_next(void **state)
{
	const uint64_t interval = 4 * HOUR_MS, jitter = 10 * MIN_MS;
	const char *id = "4f0c2a9e-6d1b-4c1e-9a55-0b7f3c2d1e00";
	int64_t now = (int64_t)utc("2026-06-01T00:00:00Z") * 1000;
	int64_t a, b, c;

	(void)state;
	a = schedule_notes_next(id, now, interval, jitter);
	assert_true(a > now);
	assert_true(a <= now + (int64_t)(interval + jitter));
	/* Strictly after: asking at the slot gives the next one. */
	b = schedule_notes_next(id, a, interval, jitter);
	assert_true(b > a);
	assert_true(b - a >= (int64_t)(interval - jitter));
	assert_true(b - a <= (int64_t)(interval + jitter));
	/* Deterministic: every instance computes the same slot. */
	assert_int_equal(a, schedule_notes_next(id, now, interval, jitter));
	assert_int_equal(schedule_notes_next(id, a + 1, interval, jitter), b);
	/* Without jitter the slots are exactly one interval apart. */
	a = schedule_notes_next(id, now, interval, 0);
	c = schedule_notes_next(id, a, interval, 0);
	assert_int_equal(c - a, (int64_t)interval);
	assert_int_equal(((a % (int64_t)interval) + (int64_t)interval) %
	    (int64_t)interval, (int64_t)schedule_offset_ms(id, interval));
}

static void
test_starts_never_bunch(void **state)
{
	const uint64_t interval = 4 * HOUR_MS, jitter = 10 * MIN_MS;
	int64_t now = (int64_t)utc("2026-06-01T00:00:00Z") * 1000;
	unsigned per_minute[240] = { 0 }, max = 0;
	char id[37];

	(void)state;
	for (unsigned i = 0; i < 200; i++) {
		int64_t t;

		uuid_of(i + 1000, id);
		t = schedule_notes_next(id, now, interval, jitter);
		assert_true(t > now && t < now + (int64_t)(interval + jitter));
		per_minute[((t - now) / MIN_MS) % 240]++;
	}
	for (size_t m = 0; m < 240; m++)
		if (per_minute[m] > max)
			max = per_minute[m];
	/* 200 clinics over 240 minutes: no minute sees more than 6. */
	assert_true(max <= 6);
}

static void
test_local_next(void **state)
{
	static const struct {
		const char *tz;
		unsigned minutes;
		const char *after, *want;
	} cases[] = {
		/* New York, ordinary days either side of the change. */
		{ "America/New_York", 20 * 60, "2026-03-07T12:00:00Z",
		    "2026-03-08T01:00:00Z" },	/* 20:00 EST */
		{ "America/New_York", 20 * 60, "2026-03-08T12:00:00Z",
		    "2026-03-09T00:00:00Z" },	/* 20:00 EDT */
		/* Spring forward: 02:30 does not exist; 03:00 EDT. */
		{ "America/New_York", 150, "2026-03-08T05:00:00Z",
		    "2026-03-08T07:00:00Z" },
		/* ... and the next day it does. */
		{ "America/New_York", 150, "2026-03-08T07:00:00Z",
		    "2026-03-09T06:30:00Z" },
		/* Fall back: 01:30 happens twice; the first (EDT). */
		{ "America/New_York", 90, "2026-11-01T04:00:00Z",
		    "2026-11-01T05:30:00Z" },
		/* Once a day: not again at the second 01:30 (EST). */
		{ "America/New_York", 90, "2026-11-01T05:30:00Z",
		    "2026-11-02T06:30:00Z" },
		{ "America/New_York", 20 * 60, "2026-10-31T12:00:00Z",
		    "2026-11-01T00:00:00Z" },	/* 20:00 EDT */
		{ "America/New_York", 20 * 60, "2026-11-01T12:00:00Z",
		    "2026-11-02T01:00:00Z" },	/* 20:00 EST */
		/* London: 01:30 skipped on 29 March; 02:00 BST. */
		{ "Europe/London", 90, "2026-03-29T00:00:00Z",
		    "2026-03-29T01:00:00Z" },
		{ "Europe/London", 20 * 60, "2026-03-28T12:00:00Z",
		    "2026-03-28T20:00:00Z" },	/* 20:00 GMT */
		{ "Europe/London", 20 * 60, "2026-03-29T12:00:00Z",
		    "2026-03-29T19:00:00Z" },	/* 20:00 BST */
		/* 25 October: 01:30 twice; the first (BST) only. */
		{ "Europe/London", 90, "2026-10-24T23:00:00Z",
		    "2026-10-25T00:30:00Z" },
		{ "Europe/London", 90, "2026-10-25T00:30:00Z",
		    "2026-10-26T01:30:00Z" },
		/* Midnight, and the last minute of the day, in UTC. */
		{ "UTC", 0, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z" },
		{ "UTC", 1439, "2026-12-31T23:59:30Z",
		    "2027-01-01T23:59:00Z" },
		/* A zone east of UTC crossing the date line of the day. */
		{ "Asia/Tokyo", 20, "2026-05-01T15:00:00Z",
		    "2026-05-01T15:20:00Z" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		time_t got = 0;
		char buf[32];

		assert_int_equal(schedule_local_next(utc(cases[i].after),
		    cases[i].tz, cases[i].minutes, &got), 0);
		strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", gmtime(&got));
		if (strcmp(buf, cases[i].want) != 0)
			fail_msg("case %zu: %s %u after %s: %s, want %s", i,
			    cases[i].tz, cases[i].minutes, cases[i].after, buf,
			    cases[i].want);
	}
}

static void
test_local_next_refuses(void **state)
{
	time_t got = 42;

	(void)state;
	assert_int_equal(schedule_local_next(0, "Not/AZone", 60, &got),
	    -EINVAL);
	assert_int_equal(schedule_local_next(0, "../../etc/passwd", 60, &got),
	    -EINVAL);
	assert_int_equal(schedule_local_next(0, "", 60, &got), -EINVAL);
	assert_int_equal(schedule_local_next(0, "UTC", 1440, &got), -EINVAL);
	assert_int_equal(got, 42);	/* untouched on failure */
	/* TZ is put back as it was. */
	setenv("TZ", "Asia/Tokyo", 1);
	assert_int_equal(schedule_local_next(0, "Europe/London", 60, &got),
	    0);
	assert_string_equal(getenv("TZ"), "Asia/Tokyo");
	unsetenv("TZ");
	assert_true(schedule_tz_valid("America/New_York"));
	assert_false(schedule_tz_valid("America/New_York;rm"));
}

static void
test_catch_up(void **state)
{
	const uint64_t interval = 4 * HOUR_MS;
	const char *id = "7a1d3c5e-0000-4000-8000-000000000001";
	int64_t now = (int64_t)utc("2026-06-02T12:00:00Z") * 1000, t, next;
	int64_t slot = schedule_notes_next(id, now - 10 * HOUR_MS, interval, 0);

	(void)state;
	next = schedule_notes_next(id, now, interval, 0);
	/* Never ran: the next slot, no catch-up. */
	assert_int_equal(schedule_notes_first(id, -1, now, interval, 0),
	    next);
	/* Ran just before now: its next slot has not come: wait for it. */
	t = schedule_notes_first(id, now - 1, now, interval, 0);
	assert_int_equal(t, next);
	/* Down for 10 h (two slots or more missed): due now, once. */
	assert_true(slot < now);
	assert_int_equal(schedule_notes_first(id, now - 10 * HOUR_MS, now,
	    interval, 0), now);
	/* Down for a week: still one run now, not 42. */
	assert_int_equal(schedule_notes_first(id, now - 7 * 24 * HOUR_MS, now,
	    interval, 0), now);
	/* The pure rule. */
	assert_int_equal(schedule_first_run(-1, 0, 100, 200), 200);
	assert_int_equal(schedule_first_run(10, 90, 100, 200), 100);
	assert_int_equal(schedule_first_run(10, 100, 100, 200), 100);
	assert_int_equal(schedule_first_run(10, 150, 100, 200), 200);
}

static void
test_daily_catch_up(void **state)
{
	int64_t now = (int64_t)utc("2026-03-09T15:00:00Z") * 1000, t = 0;

	(void)state;
	/* Last run the evening of the 7th (EST); the 8th's was missed. */
	assert_int_equal(schedule_daily_first("America/New_York", 20 * 60,
	    (int64_t)utc("2026-03-08T01:00:05Z") * 1000, now, &t), 0);
	assert_int_equal(t, now);
	/* Ran last night (the 8th, EDT): tonight at 20:00 EDT. */
	assert_int_equal(schedule_daily_first("America/New_York", 20 * 60,
	    (int64_t)utc("2026-03-09T00:00:10Z") * 1000, now, &t), 0);
	assert_int_equal(t, (int64_t)utc("2026-03-10T00:00:00Z") * 1000);
	/* Never ran: tonight, no catch-up. */
	assert_int_equal(schedule_daily_first("America/New_York", 20 * 60, -1,
	    now, &t), 0);
	assert_int_equal(t, (int64_t)utc("2026-03-10T00:00:00Z") * 1000);
	assert_int_equal(schedule_daily_first("Mars/Olympus", 0, -1, now, &t),
	    -EINVAL);
}

static void
test_window_parse(void **state)
{
	static const struct {
		const char *from, *to;
		int ret;
		const char *start, *end, *err;
	} cases[] = {
		{ "2026-03-01", "2026-03-07", 0, "2026-03-01 00:00:00",
		    "2026-03-07 23:59:59", NULL },
		{ "2026-03-08", "2026-03-08", 0, "2026-03-08 00:00:00",
		    "2026-03-08 23:59:59", NULL },
		{ "2024-02-29", "2024-03-01", 0, "2024-02-29 00:00:00",
		    "2024-03-01 23:59:59", NULL },
		{ "2026-01-01", "2026-04-02", 0, "2026-01-01 00:00:00",
		    "2026-04-02 23:59:59", NULL },	/* 92 days */
		{ "2026-01-01", "2026-04-03", -EINVAL, NULL, NULL,
		    "93 days, over the 92-day limit" },
		{ "2026-02-29", "2026-03-01", -EINVAL, NULL, NULL,
		    "no such date" },
		{ "2026-04-31", "2026-05-01", -EINVAL, NULL, NULL,
		    "no such date" },
		{ "2026-03-10", "2026-03-01", -EINVAL, NULL, NULL,
		    "--from is after --to" },
		{ "2026-3-1", "2026-03-02", -EINVAL, NULL, NULL,
		    "dates are YYYY-MM-DD" },
		{ "2026-03-01x", "2026-03-02", -EINVAL, NULL, NULL,
		    "dates are YYYY-MM-DD" },
		{ "yesterday", "today", -EINVAL, NULL, NULL,
		    "dates are YYYY-MM-DD" },
		{ "", "2026-03-02", -EINVAL, NULL, NULL,
		    "dates are YYYY-MM-DD" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char start[JOBSPEC_WINDOW_LEN] = "-", end[JOBSPEC_WINDOW_LEN] =
		    "-", err[160] = "";
		int r = jobspec_window_parse(cases[i].from, cases[i].to, start,
		    end, err, sizeof(err));

		if (r != cases[i].ret)
			fail_msg("case %zu (%s..%s): %d, want %d (%s)", i,
			    cases[i].from, cases[i].to, r, cases[i].ret, err);
		if (r == 0) {
			assert_string_equal(start, cases[i].start);
			assert_string_equal(end, cases[i].end);
		} else {
			if (strstr(err, cases[i].err) == NULL)
				fail_msg("case %zu: '%s' lacks '%s'", i, err,
				    cases[i].err);
			assert_string_equal(start, "-");
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_offset_stable_and_spread),
		cmocka_unit_test(test_notes_next),
		cmocka_unit_test(test_starts_never_bunch),
		cmocka_unit_test(test_local_next),
		cmocka_unit_test(test_local_next_refuses),
		cmocka_unit_test(test_catch_up),
		cmocka_unit_test(test_daily_catch_up),
		cmocka_unit_test(test_window_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
