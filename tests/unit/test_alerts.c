/*
 * Unit tests for supervisor/alerts_text.c, the pure parts of alerts,
 * table-driven with expected values written by hand: the failure-rate
 * threshold, the mail's retry delays, the kinds' names, splitting
 * alerts.to, cleaning names for headers and lines, and the RFC 5322
 * message; and outbound_mail()'s checks, which refuse before anything is
 * sent, and its loopback rule (plain text allowed only there).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "common/buf.h"

#include "supervisor/alerts.h"
#include "supervisor/outbound.h"

static void
test_rate(void **state)
{
	static const struct {
		uint64_t failed, total, rate, min;
		bool want;
	} t[] = {
		{ 2, 20, 100000, 10, false },	/* 10 %: not over 10 % */
		{ 3, 20, 100000, 10, true },	/* 15 % */
		{ 1, 9, 100000, 10, false },	/* too few sessions */
		{ 2, 10, 100000, 10, true },	/* 20 % of exactly the min */
		{ 0, 100, 0, 10, false },	/* 0 % is never over 0 */
		{ 1, 100, 0, 10, true },
		{ 10, 10, 1000000, 10, false },	/* 100 % is not over 100 % */
		{ 0, 0, 100000, 0, false },
		{ 5, 4, 100000, 1, false },	/* nonsense: more failed */
		{ 11, 100, 100000, 10, true },
		{ 10, 100, 100000, 10, false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_int_equal(alerts_rate_exceeded(t[i].failed, t[i].total,
		    t[i].rate, t[i].min), t[i].want);
}

static void
test_retry(void **state)
{
	static const struct { unsigned attempt; uint64_t want; } t[] = {
		{ 0, 1000 }, { 1, 1000 }, { 2, 2000 }, { 3, 4000 },
		{ 4, 8000 }, { 9, 256000 }, { 10, 300000 }, { 11, 300000 },
		{ 1000, 300000 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_int_equal(alerts_retry_ms(t[i].attempt), t[i].want);
}

static void
test_kinds(void **state)
{
	static const char *const names[] = {
		"consecutive_failures", "failure_rate", "slow_sync", "stale",
		"clinic_held", "audit_spool_full", "audit_refused",
	};
	enum alert_kind k;

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_string_equal(alerts_kind_name((enum alert_kind)i),
		    names[i]);
		assert_true(alerts_kind_parse(names[i], &k));
		assert_int_equal(k, (int)i);
	}
	assert_false(alerts_kind_parse("stale ", &k));
	assert_false(alerts_kind_parse("", &k));
	assert_string_equal(alerts_kind_name((enum alert_kind)99), "unknown");
}

static void
test_split(void **state)
{
	char scratch[256];
	const char *out[4];

	(void)state;
	assert_int_equal(alerts_split_rcpt("a@b.test", scratch,
	    sizeof(scratch), out, 4), 1);
	assert_string_equal(out[0], "a@b.test");
	assert_int_equal(alerts_split_rcpt(" a@b.test ,\tc@d.test", scratch,
	    sizeof(scratch), out, 4), 2);
	assert_string_equal(out[0], "a@b.test");
	assert_string_equal(out[1], "c@d.test");
	assert_int_equal(alerts_split_rcpt("a@b.test,,c@d.test", scratch,
	    sizeof(scratch), out, 4), -EINVAL);
	assert_int_equal(alerts_split_rcpt("", scratch, sizeof(scratch), out,
	    4), -EINVAL);
	assert_int_equal(alerts_split_rcpt("a@x,b@x,c@x,d@x,e@x", scratch,
	    sizeof(scratch), out, 4), -EINVAL);
	assert_int_equal(alerts_split_rcpt("a@x", scratch, 3, out, 4),
	    -EINVAL);
}

static void
test_clean(void **state)
{
	static const struct {
		const char *in;
		size_t max;
		bool ascii;
		const char *want;
	} t[] = {
		{ "Clinic 1", 100, true, "Clinic 1" },
		{ "Evil\r\nBcc: x@y", 100, true, "EvilBcc: x@y" },
		{ "Tab\there", 100, false, "Tabhere" },
		{ "Caf\xc3\xa9 V\xc3\xa9to", 100, false,
		    "Caf\xc3\xa9 V\xc3\xa9to" },
		{ "Caf\xc3\xa9", 100, true, "Caf?" },
		{ "bad \xff byte", 100, false, "bad ? byte" },
		{ "cut \xc3\xa9", 5, false, "cut " },	/* not mid-character */
		{ "abcdef", 3, true, "abc" },
		{ "", 10, true, "" },
	};
	char out[64];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		alerts_clean(t[i].in, t[i].max, t[i].ascii, out, sizeof(out));
		assert_string_equal(out, t[i].want);
	}
	/* The output buffer bounds it too. */
	alerts_clean("abcdefgh", 100, true, out, 4);
	assert_string_equal(out, "abc");
}

static void
test_format(void **state)
{
	struct alert_mail_text m = {
		.from = "vetsync@ops.example",
		.to = "a@x.example, b@y.example",
		.subject = "[vetsync] 3 consecutive failed syncs: Clinic 1",
		.body = "line one\nline two\r\n\nend",
		.key = "consecutive_failures:abc",
		.wall_ms = 1795665600123LL,	/* 2026-11-26 04:00:00.123 */
		.unique = 0xabcdef,
	};
	static const char want[] =
	    "Date: Thu, 26 Nov 2026 04:00:00 +0000\r\n"
	    "From: vetsync <vetsync@ops.example>\r\n"
	    "To: a@x.example, b@y.example\r\n"
	    "Subject: [vetsync] 3 consecutive failed syncs: Clinic 1\r\n"
	    "Message-ID: <alert.0000000000abcdef.1795665600123"
	    "@ops.example>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"
	    "Auto-Submitted: auto-generated\r\n"
	    "X-Vetsync-Alert: consecutive_failures:abc\r\n"
	    "\r\n"
	    "line one\r\nline two\r\n\r\nend\r\n";
	struct buf out;

	(void)state;
	buf_init(&out, 64 * 1024);
	assert_int_equal(alerts_format(&m, &out), 0);
	assert_int_equal(out.len, strlen(want));
	assert_memory_equal(out.data, want, out.len);

	/* A header that would end early is refused. */
	m.subject = "x\r\nBcc: evil@example";
	assert_int_equal(alerts_format(&m, &out), -EINVAL);
	m.subject = "ok";
	m.to = "a@x\nb@y";
	assert_int_equal(alerts_format(&m, &out), -EINVAL);
	buf_release(&out);
}

static void
test_loopback(void **state)
{
	static const struct { const char *url; bool want; } t[] = {
		{ "smtp://127.0.0.1:2525", true },
		{ "smtp://alerts@127.0.0.1:2525", true },
		{ "smtp://127.8.9.10", true },
		{ "smtp://localhost:25", true },
		{ "smtp://LOCALHOST", true },
		{ "smtp://[::1]:2525", true },
		{ "smtp://mail.example.com:587", false },
		{ "smtp://127.0.0.1.example.com", false },
		{ "smtp://10.0.0.1:25", false },
		{ "smtp://[::2]:25", false },
		{ "smtps://localhost.example:465", false },
		{ "smtp://user@mail.example@127.0.0.1", true },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_int_equal(outbound_url_loopback(t[i].url), t[i].want);
}

static void
no_call(const struct outbound_response *r, void *arg)
{
	(void)r;
	(void)arg;
	fail_msg("a refused mail called back");
}

static void
test_mail_refused(void **state)
{
	static const char msg[] = "Subject: x\r\n\r\nbody\r\n";
	struct outbound_mail ok = {
		.url = "smtp://127.0.0.1:9", .from = "a@b.example",
		.rcpt = { "c@d.example", NULL }, .message = msg,
		.len = sizeof(msg) - 1,
	}, m;
	struct event_base *base;

	(void)state;
	assert_int_equal(outbound_mail(&ok, no_call, NULL), -ESHUTDOWN);
	assert_non_null(base = event_base_new());
	assert_int_equal(outbound_init(base), 0);
	m = ok;
	m.url = "http://127.0.0.1:9";
	assert_int_equal(outbound_mail(&m, no_call, NULL), -EINVAL);
	m.url = "smtp://127.0.0.1:9/\r\nRCPT";
	assert_int_equal(outbound_mail(&m, no_call, NULL), -EINVAL);
	m = ok;
	m.from = "a@b.example>\r\nRCPT TO:<evil@x";
	assert_int_equal(outbound_mail(&m, no_call, NULL), -EINVAL);
	m.from = "no-at-sign";
	assert_int_equal(outbound_mail(&m, no_call, NULL), -EINVAL);
	m = ok;
	m.rcpt[0] = NULL;
	assert_int_equal(outbound_mail(&m, no_call, NULL), -EINVAL);
	m.rcpt[0] = "c@d.example";
	m.rcpt[1] = "e @f.example";
	assert_int_equal(outbound_mail(&m, no_call, NULL), -EINVAL);
	m = ok;
	m.len = 0;
	assert_int_equal(outbound_mail(&m, no_call, NULL), -EINVAL);
	m.message = "a\0b";
	m.len = 3;
	assert_int_equal(outbound_mail(&m, no_call, NULL), -EINVAL);
	m.len = OUTBOUND_MAIL_MAX + 1;
	assert_int_equal(outbound_mail(&m, no_call, NULL), -EINVAL);
	assert_int_equal(outbound_pending(), 0);
	outbound_free();
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_retry),
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_clean),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_loopback),
		cmocka_unit_test(test_mail_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
