/*
 * Unit tests for worker/redact.c: each kind of secret is gone and
 * "[redacted]" stands in its place; the cap falls on a UTF-8 boundary;
 * invalid UTF-8 becomes U+FFFD.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"

#include "worker/redact.h"

static char *
redact(const char *in, size_t cap, const char *const *secrets, bool *cut)
{
	struct buf b;
	bool t = true;

	buf_init(&b, 0);
	assert_int_equal(redact_snapshot(in, strlen(in), cap, secrets, &b,
	    &t), 0);
	if (cut != NULL)
		*cut = t;
	return buf_detach(&b, NULL);
}

static void
test_kinds(void **state)
{
	static const char *const secrets[] = { "vet@clinic.test", "p@ss w0rd",
	    NULL };
	static const struct {
		const char *in;
		const char *gone;	/* must not appear */
		const char *want;	/* exact output */
	} cases[] = {
		{ "<input type=\"hidden\" name=\"_csrf\" value=\"tok123\">",
		    "tok123",
		    "<input type=\"hidden\" name=\"_csrf\" value=\"[redacted]\">" },
		{ "<input value='s3cr3t' type=password name=pw>", "s3cr3t",
		    "<input value='[redacted]' type=password name=pw>" },
		{ "<meta name=\"csrf-token\" content=\"abc\">", "abc",
		    "<meta name=\"csrf-token\" content=\"[redacted]\">" },
		{ "<div data-auth-token=\"zz9\">x</div>", "zz9",
		    "<div data-auth-token=\"[redacted]\">x</div>" },
		{ "{\"password\": \"hunter22\", \"name\": \"Rex\"}", "hunter22",
		    "{\"password\": \"[redacted]\", \"name\": \"Rex\"}" },
		{ "{\"sessionId\":12345,\"apiKey\":\"k\"}", "12345",
		    "{\"sessionId\":\"[redacted]\",\"apiKey\":\"[redacted]\"}" },
		{ "{\"api_key\":\"k-1\"}", "k-1",
		    "{\"api_key\":\"[redacted]\"}" },
		{ "username=bob&password=pw9&company_id=3", "pw9",
		    "username=bob&password=[redacted]&company_id=3" },
		{ "Set-Cookie: session=abc123; Path=/; HttpOnly\r\nX: 1\r\n",
		    "abc123", "Set-Cookie: [redacted]\r\nX: 1\r\n" },
		{ "cookie: a=b; c=d\n", "a=b", "cookie: [redacted]\n" },
		{ "Authorization: Basic dXNlcjpwYXNz\n", "dXNlcjpwYXNz",
		    "Authorization: [redacted]\n" },
		{ "token is Bearer abc.def-ghi_jkl here", "abc.def",
		    "token is Bearer [redacted] here" },
		{ "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln end",
		    "eyJhbGciOiJIUzI1NiJ9",
		    "jwt [redacted] end" },
		{ "<p>Signed in as vet@clinic.test</p>", "vet@clinic.test",
		    "<p>Signed in as [redacted]</p>" },
		{ "pw: p@ss w0rd, form: p%40ss+w0rd", "w0rd",
		    "pw: [redacted], form: [redacted]" },
		{ "www.example.com and a.b.c stay", NULL,
		    "www.example.com and a.b.c stay" },
		{ "<div class=\"author\">Dr. Reyes</div>", NULL,
		    "<div class=\"author\">Dr. Reyes</div>" },
	};
	size_t i;
	char *out;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		out = redact(cases[i].in, 65536, secrets, NULL);
		if (cases[i].gone != NULL &&
		    strstr(out, cases[i].gone) != NULL)
			fail_msg("case %zu: '%s' still in '%s'", i,
			    cases[i].gone, out);
		if (cases[i].gone != NULL &&
		    strstr(out, "[redacted]") == NULL)
			fail_msg("case %zu: no [redacted] in '%s'", i, out);
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("case %zu: '%s', want '%s'", i, out,
			    cases[i].want);
		free(out);
	}
}

static void
test_cap(void **state)
{
	bool cut;
	char *out;

	out = redact("abcdef", 4, NULL, &cut);
	assert_string_equal(out, "abcd");
	assert_true(cut);
	free(out);
	out = redact("abcd", 4, NULL, &cut);
	assert_string_equal(out, "abcd");
	assert_false(cut);
	free(out);
	/* "é" is two bytes: a cap of 2 after "a" keeps only "a". */
	out = redact("a\xc3\xa9z", 2, NULL, &cut);
	assert_string_equal(out, "a");
	assert_true(cut);
	free(out);
	/* The secret is removed before the cut, so no head of it is left. */
	out = redact("xx password=abcdefghij", 16, NULL, &cut);
	assert_string_equal(out, "xx password=[red");
	free(out);
}

static void
test_utf8(void **state)
{
	struct buf b;
	bool cut;
	char *out;

	out = redact("a\xff" "b\xc3", 100, NULL, &cut);
	assert_string_equal(out, "a\xef\xbf\xbd" "b\xef\xbf\xbd");
	assert_false(cut);
	free(out);
	buf_init(&b, 0);
	assert_int_equal(redact_snapshot("a\0b", 3, 100, NULL, &b, &cut), 0);
	assert_string_equal(b.data, "a\xef\xbf\xbd" "b");
	buf_release(&b);
	/* Nothing in, nothing out. */
	buf_init(&b, 0);
	assert_int_equal(redact_snapshot("", 0, 100, NULL, &b, &cut), 0);
	assert_int_equal(b.len, 0);
	assert_false(cut);
	buf_release(&b);
	/* A bounded output buffer refuses to grow past its limit. */
	buf_init(&b, 2);
	assert_int_equal(redact_snapshot("abcdef", 6, 100, NULL, &b, &cut),
	    -EMSGSIZE);
	buf_release(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
