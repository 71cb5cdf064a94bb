/*
 * Unit tests for worker/profile.c: both shipped profiles parse and say
 * what the extractors need; every error path names its line.
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

#include "worker/profile.h"

#include "fixture.h"

static void
test_shipped(void **state)
{
	static const char *const files[] = {
		"deploy/neo-profile.conf", "deploy/prd-html-profile.conf",
	};
	struct profile *p = NULL;
	struct profile_alts a;
	char err[256] = "";
	size_t i, len;
	char *text;

	for (i = 0; i < 2; i++) {
		text = fixture_read(files[i], &len);
		if (profile_parse(text, len, &p, err, sizeof(err)) != 0)
			fail_msg("%s: %s", files[i], err);
		if (i == 0) {
			assert_string_equal(profile_name(p), "neo");
			assert_int_equal(profile_kind(p), PROFILE_JSON);
			a = profile_get(p, "calendar", "id");
			assert_int_equal(a.n, 2);
			assert_string_equal(a.v[0], "appointment_id");
			assert_string_equal(a.v[1], "id");
			assert_string_equal(profile_str(p, "endpoints",
			    "page_data"), "/consultations/{id}/page-data");
			a = profile_get(p, "login", "csrf_field");
			assert_int_equal(a.n, 4);
			assert_string_equal(a.v[3], "csrfmiddlewaretoken");
			/* A continued locator: two alternatives. */
			assert_int_equal(profile_get(p, "login", "error").n, 2);
		} else {
			assert_string_equal(profile_name(p), "prd-html");
			assert_int_equal(profile_kind(p), PROFILE_HTML);
			a = profile_get(p, "list", "row");
			assert_int_equal(a.n, 3);
			assert_string_equal(a.v[0],
			    "//*[@data-testid=\"consultation-row\"]");
			assert_string_equal(a.v[2],
			    "//tr[contains(@class, \"consultation\")]");
		}
		assert_null(profile_str(p, "nosuch", "key"));
		assert_int_equal(profile_get(p, "calendar", "nosuch").n, 0);
		profile_free(p);
		p = NULL;
		free(text);
	}
}

#define JSON_MIN "[profile]\nname = t\nkind = json\n[endpoints]\n" \
	"login = /login\ncalendar = /cal\npage_data = /c/{id}\n" \
	"[login]\nusername_field = u\npassword_field = p\n" \
	"error = //div\n[calendar]\nid = id\nconsultation_id = c\n" \
	"[page_data]\nid = consultation.id\nline_name = n\n"

static void
test_minimal(void **state)
{
	static const char text[] = JSON_MIN
	    "; a comment\n"
	    "  # an indented comment\n"
	    "[calendar]\n";
	struct profile *p = NULL;
	char err[256];

	/* A repeated section header is allowed; keys are what count. */
	assert_int_equal(profile_parse(text, strlen(text), &p, err,
	    sizeof(err)), 0);
	assert_string_equal(profile_str(p, "calendar", "id"), "id");
	profile_free(p);
	profile_free(NULL);
}

static void
test_alternatives(void **state)
{
	static const char text[] = JSON_MIN
	    "[list]\n"
	    "row = //tr[@a = 'x' or @b] |  //div ||  //p\n"
	    "    || //li\n"
	    "[calendar]\n"
	    "wrapper =  a |b|  c  \n";
	struct profile *p = NULL;
	struct profile_alts a;
	char err[256];

	assert_int_equal(profile_parse(text, strlen(text), &p, err,
	    sizeof(err)), 0);
	a = profile_get(p, "list", "row");
	assert_int_equal(a.n, 3);
	/* '|' inside a locator is XPath's union, not a separator. */
	assert_string_equal(a.v[0], "//tr[@a = 'x' or @b] |  //div");
	assert_string_equal(a.v[1], "//p");
	assert_string_equal(a.v[2], "//li");
	a = profile_get(p, "calendar", "wrapper");
	assert_int_equal(a.n, 3);
	assert_string_equal(a.v[0], "a");
	assert_string_equal(a.v[1], "b");
	assert_string_equal(a.v[2], "c");
	profile_free(p);
}

static void
test_errors(void **state)
{
	static const struct {
		const char *text;
		const char *err;
	} cases[] = {
		{ "[profile]\nname = x\nkind = json\n[nope]\n",
		    "profile:4: unknown section [nope]" },
		{ "[profile]\nname = x\nsize = 3\n",
		    "profile:3: [profile]: unknown key 'size'" },
		{ "name = x\n", "profile:1: key outside any section" },
		{ "[profile]\nname x\n",
		    "profile:2: expected 'key = value' or '[section]'" },
		{ "[profile] x\n", "profile:1: text after the section header" },
		{ "[profile\n", "profile:1: bad section header" },
		{ "[]\n", "profile:1: bad section header" },
		{ "[profile]\n= x\n", "profile:2: bad key" },
		{ "   x = y\n", "profile:1: indented line continues no key" },
		{ "[profile]\nname = a\nname = b\n",
		    "profile:3: [profile] name: repeated (first at line 2)" },
		{ "[profile]\nname = t\nkind = xml\n",
		    "profile:3: [profile] kind: 'xml' is neither json nor "
		    "html" },
		{ "[profile]\nname = T!\nkind = json\n",
		    "profile:2: [profile] name: 'T!' is not [a-z0-9_-]+" },
		{ "[profile]\nkind = json\n",
		    "profile:2: [profile] name: missing" },
		{ "[profile]\nname = t\n", "profile:2: [profile] kind: missing" },
		{ "[profile]\nname = t\nkind = json\n",
		    "profile:3: [endpoints] login: missing (kind json needs "
		    "it)" },
		{ "[profile]\nname = t\nkind = html\n[endpoints]\n"
		    "login = /l\n",
		    "profile:5: [endpoints] dashboard: missing (kind html "
		    "needs it)" },
		{ JSON_MIN "[calendar]\nstart = a ||b\n",
		    "profile:19: [calendar] start: empty alternative 2" },
		{ JSON_MIN "[calendar]\nstart = a | |b\n",
		    "profile:19: [calendar] start: empty alternative 2" },
		{ JSON_MIN "[calendar]\nstart =\n",
		    "profile:19: [calendar] start: empty alternative 1" },
		{ JSON_MIN "[list]\nrow = //a || \n",
		    "profile:19: [list] row: empty alternative 2" },
		{ JSON_MIN "[list]\nrow = //a || //b[\n",
		    "profile:19: [list] row: alternative 2 is not XPath 1.0" },
		{ JSON_MIN "[calendar]\nstart = a|b|c|d|e|f|g|h|i|j|k|l|m|n|"
		    "o|p|q\n",
		    "profile:19: [calendar] start: more than 16 alternatives" },
		{ "[profile]\nname = t\nkind = json\n[endpoints]\n"
		    "login = login\n",
		    "profile:5: [endpoints] login: 'login' does not start with "
		    "'/'" },
		{ "[profile]\nname = t\nkind = json\n[endpoints]\n"
		    "login = /login\ncalendar = /cal\npage_data = /c/x\n",
		    "profile:7: [endpoints] page_data: '/c/x' has no {id}" },
		{ JSON_MIN "[calendar]\nstart = \xff\n",
		    "profile:0: not valid UTF-8 text" },
	};
	struct profile *p = NULL;
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		if (profile_parse(cases[i].text, strlen(cases[i].text), &p,
		    err, sizeof(err)) != -EINVAL)
			fail_msg("case %zu parsed", i);
		if (strcmp(err, cases[i].err) != 0)
			fail_msg("case %zu: '%s', want '%s'", i, err,
			    cases[i].err);
		assert_null(p);
	}
}

static void
test_bounds(void **state)
{
	struct profile *p = NULL;
	char err[256], *text;
	size_t len, i;

	/* An overlong line. */
	text = malloc(8192);
	len = (size_t)snprintf(text, 8192, "[profile]\nname = ");
	memset(text + len, 'a', 5000);
	len += 5000;
	assert_int_equal(profile_parse(text, len, &p, err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(err, "profile:2: line over 4096 bytes");
	free(text);

	/* Text over FRAME_PROFILE_MAX. */
	text = calloc(1, 70000);
	memset(text, '#', 69999);
	assert_int_equal(profile_parse(text, 69999, &p, err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(err,
	    "profile:0: text of 69999 bytes over the 65536 limit");
	free(text);

	/* A NUL in the text. */
	assert_int_equal(profile_parse("[profile]\0", 10, &p, err,
	    sizeof(err)), -EINVAL);

	/* No text at all: the first missing key. */
	assert_int_equal(profile_parse("", 0, &p, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "profile:0: [profile] name: missing");

	/* A value grown past its limit by continuations. */
	text = malloc(20000);
	len = (size_t)snprintf(text, 20000, "[calendar]\nstart = a");
	for (i = 0; i < 5; i++) {
		len += (size_t)snprintf(text + len, 20000 - len, "\n  |");
		memset(text + len, 'b', 2000);
		len += 2000;
	}
	assert_int_equal(profile_parse(text, len, &p, err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(err,
	    "profile:7: [calendar] start: value over 8192 bytes");
	free(text);
	assert_null(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped),
		cmocka_unit_test(test_minimal),
		cmocka_unit_test(test_alternatives),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
