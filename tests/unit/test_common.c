/*
 * Unit tests for common/: durations, sizes, fractions, clock times, UTF-8
 * validation, log escaping and buffers.  Expected values written by hand.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/utf8.h"

static void
test_duration(void **state)
{
	static const struct {
		const char *in;
		int ret;
		uint64_t ms;
	} cases[] = {
		{ "90s", 0, 90000 },
		{ "4h", 0, 14400000 },
		{ "2d", 0, 172800000 },
		{ "1w", 0, 604800000 },
		{ "250ms", 0, 250 },
		{ "1h30m", 0, 5400000 },
		{ "1m30s500ms", 0, 90500 },
		{ "30", 0, 30000 },
		{ "0s", 0, 0 },
		{ "", -EINVAL, 0 },
		{ "s", -EINVAL, 0 },
		{ "4x", -EINVAL, 0 },
		{ "4 h", -EINVAL, 0 },
		{ " 4h", -EINVAL, 0 },
		{ "-4h", -EINVAL, 0 },
		{ "4H", -EINVAL, 0 },
		{ "1h30", -EINVAL, 0 },
		{ "0x10s", -EINVAL, 0 },
		{ "1.5h", -EINVAL, 0 },
		{ "99999999999999999999s", -ERANGE, 0 },
		{ "30000000000000000w", -ERANGE, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t ms = 12345;
		int r = parse_duration_ms(cases[i].in, &ms);

		if (r != cases[i].ret)
			fail_msg("'%s': got %d, want %d", cases[i].in, r,
			    cases[i].ret);
		if (r == 0)
			assert_int_equal(ms, cases[i].ms);
		else
			assert_int_equal(ms, 12345);	/* untouched */
	}
}

static void
test_size(void **state)
{
	static const struct {
		const char *in;
		int ret;
		uint64_t bytes;
	} cases[] = {
		{ "512M", 0, 512ULL << 20 },
		{ "512MiB", 0, 512ULL << 20 },
		{ "512MB", 0, 512ULL << 20 },
		{ "64K", 0, 65536 },
		{ "2G", 0, 2ULL << 30 },
		{ "1T", 0, 1ULL << 40 },
		{ "100", 0, 100 },
		{ "100B", 0, 100 },
		{ "0", 0, 0 },
		{ "M", -EINVAL, 0 },
		{ "512m", -EINVAL, 0 },
		{ "512 M", -EINVAL, 0 },
		{ "512Mi", -EINVAL, 0 },
		{ "1.5G", -EINVAL, 0 },
		{ "-1", -EINVAL, 0 },
		{ "20000000T", -ERANGE, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 7;
		int r = parse_size(cases[i].in, &v);

		if (r != cases[i].ret)
			fail_msg("'%s': got %d, want %d", cases[i].in, r,
			    cases[i].ret);
		assert_int_equal(v, r == 0 ? cases[i].bytes : 7);
	}
}

static void
test_fraction(void **state)
{
	static const struct {
		const char *in;
		int ret;
		uint64_t micro;
	} cases[] = {
		{ "0.5", 0, 500000 },
		{ "1", 0, 1000000 },
		{ "0.10", 0, 100000 },
		{ "2.000001", 0, 2000001 },
		{ "0", 0, 0 },
		{ ".5", -EINVAL, 0 },
		{ "0.", -EINVAL, 0 },
		{ "0.1234567", -EINVAL, 0 },
		{ "1e3", -EINVAL, 0 },
		{ "-0.5", -EINVAL, 0 },
		{ "50%", -EINVAL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 9;
		int r = parse_fraction_micro(cases[i].in, &v);

		if (r != cases[i].ret)
			fail_msg("'%s': got %d, want %d", cases[i].in, r,
			    cases[i].ret);
		assert_int_equal(v, r == 0 ? cases[i].micro : 9);
	}
}

static void
test_clock_and_bool(void **state)
{
	unsigned int m = 0;
	bool b = false;

	assert_int_equal(parse_clock_minutes("20:00", &m), 0);
	assert_int_equal(m, 1200);
	assert_int_equal(parse_clock_minutes("00:00", &m), 0);
	assert_int_equal(m, 0);
	assert_int_equal(parse_clock_minutes("23:59", &m), 0);
	assert_int_equal(m, 1439);
	assert_int_equal(parse_clock_minutes("24:00", &m), -ERANGE);
	assert_int_equal(parse_clock_minutes("12:60", &m), -ERANGE);
	assert_int_equal(parse_clock_minutes("8:00", &m), -EINVAL);
	assert_int_equal(parse_clock_minutes("08:00:00", &m), -EINVAL);
	assert_int_equal(parse_clock_minutes("ab:cd", &m), -EINVAL);
	assert_int_equal(m, 1439);

	assert_int_equal(parse_bool("yes", &b), 0);
	assert_true(b);
	assert_int_equal(parse_bool("off", &b), 0);
	assert_false(b);
	assert_int_equal(parse_bool("maybe", &b), -EINVAL);
	assert_int_equal(parse_bool("YES", &b), -EINVAL);

	assert_true(parse_uuid_ok("11111111-2222-4333-8444-555555555501"));
	assert_true(parse_uuid_ok("0123abcd-ef01-2345-6789-abcdefabcdef"));
	assert_false(parse_uuid_ok("11111111-2222-4333-8444-55555555550"));
	assert_false(parse_uuid_ok("11111111-2222-4333-8444-5555555555011"));
	assert_false(parse_uuid_ok("11111111-2222-4333-8444-55555555550A"));
	assert_false(parse_uuid_ok("11111111222243338444555555555501abcd"));
	assert_false(parse_uuid_ok("11111111-2222-4333-8444_555555555501"));
	assert_false(parse_uuid_ok("clinic-a"));
	assert_false(parse_uuid_ok(""));
}

static void
test_utf8(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		bool valid;
	} cases[] = {
		{ "plain ascii", 11, true },
		{ "Zo\xc3\xab", 4, true },			/* Zoë */
		{ "\xe6\x9f\xb4\xe7\x8a\xac", 6, true },	/* 柴犬 */
		{ "\xf0\x9f\x90\xb6", 4, true },		/* dog emoji */
		{ "\xc3", 1, false },				/* truncated */
		{ "\xc0\xaf", 2, false },			/* overlong / */
		{ "\xe0\x80\xaf", 3, false },			/* overlong */
		{ "\xed\xa0\x80", 3, false },			/* surrogate */
		{ "\xf4\x90\x80\x80", 4, false },		/* > U+10FFFF */
		{ "\xff", 1, false },
		{ "a\0b", 3, false },				/* NUL */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (utf8_valid(cases[i].in, cases[i].len) != cases[i].valid)
			fail_msg("case %zu: want %s", i,
			    cases[i].valid ? "valid" : "invalid");
}

static void
test_log_escape(void **state)
{
	char out[64];
	char small[12];

	assert_string_equal(log_escape(out, sizeof(out), "ok", 2), "ok");
	assert_string_equal(log_escape(out, sizeof(out), "a\nb\tc", 5),
	    "a\\nb\\tc");
	assert_string_equal(log_escape(out, sizeof(out), "\x1b[31m", 5),
	    "\\x1b[31m");
	assert_string_equal(log_escape(out, sizeof(out), "say \"hi\" \\", 10),
	    "say \\\"hi\\\" \\\\");
	assert_string_equal(log_escape(out, sizeof(out), "Zo\xc3\xab", 4),
	    "Zo\xc3\xab");
	assert_string_equal(log_escape(out, sizeof(out), "bad\xff", 4),
	    "bad\\xff");
	/* A C1 control (U+0085) is escaped even though it is valid UTF-8. */
	assert_string_equal(log_escape(out, sizeof(out), "x\xc2\x85y", 4),
	    "x\\u0085y");
	/* Truncation is marked and never splits an escape. */
	assert_string_equal(log_escape(small, sizeof(small),
	    "abcdefghijklmnop", 16), "abcdefgh...");
	assert_string_equal(log_escape(small, sizeof(small),
	    "abcdef\n\n\n", 9), "abcdef\\n...");
	assert_string_equal(log_q(NULL), "(null)");
	assert_string_equal(log_q("x\ry"), "x\\ry");
}

/* A log line under journald carries <N> and no timestamp. */
static void
test_log_journal_format(void **state)
{
	char path[] = "/tmp/vetsync-log-XXXXXX";
	char line[256], js[64];
	struct stat st;
	int fd, saved;
	FILE *f;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)st.st_dev,
	    (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", js, 1);
	log_init("test", LOG_LEVEL_INFO);
	assert_true(log_is_journal());
	log_warnx("clinic=%s job=%d: %s", "7", 3, log_q("evil\nline"));
	log_debug("not shown at info");
	unsetenv("JOURNAL_STREAM");
	log_init("test", LOG_LEVEL_INFO);
	assert_false(log_is_journal());
	log_info("plain line");
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);

	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	assert_string_equal(line, "<4>clinic=7 job=3: evil\\nline\n");
	assert_non_null(fgets(line, sizeof(line), f));
	assert_non_null(strstr(line, " test["));
	assert_non_null(strstr(line, "] info: plain line\n"));
	assert_null(fgets(line, sizeof(line), f));
	fclose(f);
	close(fd);
	unlink(path);
}

static void
test_buf(void **state)
{
	struct buf b;
	size_t len = 0;
	char *p;

	buf_init(&b, 10);
	assert_int_equal(buf_puts(&b, "hello"), 0);
	assert_int_equal(buf_printf(&b, "%d", 1234), 0);
	assert_string_equal(b.data, "hello1234");
	/* Past the limit: refused, contents unchanged. */
	assert_int_equal(buf_puts(&b, "xy"), -EMSGSIZE);
	assert_string_equal(b.data, "hello1234");
	assert_int_equal(buf_puts(&b, "z"), 0);
	p = buf_detach(&b, &len);
	assert_int_equal(len, 10);
	assert_string_equal(p, "hello1234z");
	assert_null(b.data);
	free(p);
	buf_release(&b);
}

static void
test_clock(void **state)
{
	char out[CLOCK_RFC3339_LEN];
	uint64_t a = clock_mono_ns(), b = clock_mono_ns();
	struct timeval tv = clock_timeval_ms(90500);

	assert_true(b >= a);
	assert_int_equal(tv.tv_sec, 90);
	assert_int_equal(tv.tv_usec, 500000);
	assert_string_equal(clock_format_rfc3339(0, out, sizeof(out)),
	    "1970-01-01T00:00:00.000Z");
	assert_string_equal(clock_format_rfc3339(1795000000123LL, out,
	    sizeof(out)), "2026-11-18T11:06:40.123Z");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_fraction),
		cmocka_unit_test(test_clock_and_bool),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_log_escape),
		cmocka_unit_test(test_log_journal_format),
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_clock),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
