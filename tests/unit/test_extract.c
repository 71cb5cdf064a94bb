/*
 * Unit tests for worker/extract*.c through extract.h, driven by the two
 * shipped profiles and the hand-written fixtures in tests/fixtures/.
 * Expected values are written by hand from the fixtures.
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

#include "worker/extract.h"
#include "worker/profile.h"

#include "fixture.h"

/* A string literal as (body, len). */
#define S(lit)	(lit), (sizeof(lit) - 1)

static struct profile *neo, *prd;

static struct profile *
load_profile(const char *file)
{
	struct profile *p = NULL;
	char err[256], *text;
	size_t len;

	text = fixture_read(file, &len);
	if (profile_parse(text, len, &p, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", file, err);
		abort();
	}
	free(text);
	return p;
}

static int
setup(void **state)
{
	neo = load_profile("deploy/neo-profile.conf");
	prd = load_profile("deploy/prd-html-profile.conf");
	return 0;
}

static int
teardown(void **state)
{
	profile_free(neo);
	profile_free(prd);
	return 0;
}

static int
calendar(const char *file, struct idexx_appt **v, size_t *n,
    struct extract_error *err)
{
	char path[256], *body;
	size_t len;
	int r;

	snprintf(path, sizeof(path), "tests/fixtures/neo/%s", file);
	body = fixture_read(path, &len);
	memset(err, 0, sizeof(*err));
	r = extract_calendar(neo, body, len, v, n, err);
	free(body);
	return r;
}

static void
appts_free(struct idexx_appt *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		idexx_appt_release(&v[i]);
	free(v);
}

static void
assert_fp(const struct extract_error *err)
{
	size_t i;

	assert_int_equal(strlen(err->fingerprint), 64);
	for (i = 0; i < 64; i++)
		assert_non_null(strchr("0123456789abcdef",
		    err->fingerprint[i]));
}

static void
test_calendar_array(void **state)
{
	struct extract_error err;
	struct idexx_appt *v = NULL;
	size_t n = 0;

	assert_int_equal(calendar("calendar-array.json", &v, &n, &err), 0);
	/* The fifth item, a block without an id, is left out. */
	assert_int_equal(n, 4);
	/* appointment_id first, then id; numbers become decimal text. */
	assert_string_equal(v[0].id, "A-1001");
	assert_string_equal(v[0].consultation_id, "C-5001");
	assert_string_equal(v[0].start, "2024-11-28 09:00:00");
	assert_string_equal(v[0].end, "2024-11-28 09:30:00");
	assert_string_equal(v[0].patient_id, "P-1");
	assert_string_equal(v[0].patient_name, "Biscuit");
	assert_string_equal(v[0].client_id, "77");
	assert_string_equal(v[0].first_name, "Dana");
	assert_string_equal(v[0].last_name, "Okafor");
	assert_string_equal(v[0].email, "dana@example.org");
	assert_string_equal(v[0].phone, "+1 555 0100");
	assert_string_equal(v[0].provider, "Dr. Reyes");
	assert_string_equal(v[0].resource_id, "3");
	assert_string_equal(v[0].type_description, "Vaccination");
	assert_string_equal(v[0].reason, "Annual  boosters");
	assert_string_equal(v[0].status, "Checked out");
	assert_false(v[0].is_block);
	assert_false(v[0].is_roster);
	assert_false(v[0].cancelled);

	assert_string_equal(v[1].id, "1002");
	assert_null(v[1].consultation_id);	/* null: not opened yet */
	assert_string_equal(v[1].status, "Booked");	/* status_label */
	assert_null(v[1].email);
	assert_true(v[1].cancelled);

	assert_string_equal(v[2].id, "1003");
	assert_string_equal(v[2].consultation_id, "5003");
	assert_true(v[2].is_block);
	assert_false(v[2].is_roster);

	/* An empty appointment_id falls through to id. */
	assert_string_equal(v[3].id, "1004");
	assert_true(v[3].is_roster);
	appts_free(v, n);
}

static void
test_calendar_wrappers(void **state)
{
	struct extract_error err;
	struct idexx_appt *v = NULL;
	size_t n = 0;

	assert_int_equal(calendar("calendar-appointments.json", &v, &n, &err),
	    0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, "A-1");
	assert_string_equal(v[0].consultation_id, "C-1");
	assert_string_equal(v[1].id, "A-2");
	assert_null(v[1].consultation_id);
	appts_free(v, n);

	assert_int_equal(calendar("calendar-data.json", &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, "7");
	assert_string_equal(v[0].consultation_id, "9");
	appts_free(v, n);

	v = NULL;
	assert_int_equal(calendar("calendar-events.json", &v, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_non_null(v);
	appts_free(v, n);
}

static void
test_calendar_ui_changed(void **state)
{
	struct extract_error err;
	struct idexx_appt *v = NULL;
	size_t n = 0;

	assert_int_equal(calendar("calendar-ui-changed-wrapper.json", &v, &n,
	    &err), -EBADMSG);
	assert_string_equal(err.what, "calendar.wrapper: none of "
	    "appointments|data|events holds an array");
	assert_fp(&err);
	assert_string_equal(err.skeleton, "items\nitems[]\n"
	    "items[].appointment_id\nitems[].consultation_id\n");
	assert_null(v);

	assert_int_equal(calendar("calendar-ui-changed-ids.json", &v, &n,
	    &err), -EBADMSG);
	assert_string_equal(err.what, "calendar.id: none of "
	    "appointment_id|id present in item 3");
	assert_fp(&err);
	assert_non_null(strstr(err.skeleton, "[].apptRef\n"));
	assert_null(v);
}

static void
test_calendar_malformed(void **state)
{
	struct extract_error err;
	struct idexx_appt *v = NULL;
	size_t n = 0;

	assert_int_equal(calendar("calendar-truncated.json", &v, &n, &err),
	    -EBADMSG);
	assert_non_null(strstr(err.what, "calendar: not JSON at line 1 "));
	assert_string_equal(err.skeleton, "(not json)\n");
	assert_fp(&err);

	assert_int_equal(calendar("calendar-garbage.json", &v, &n, &err),
	    -EBADMSG);
	assert_string_equal(err.what, "calendar: not JSON at line 1 column 4: "
	    "'[' or '{' expected near 'nope'");

	assert_int_equal(calendar("../garbage.bin", &v, &n, &err), -EBADMSG);
	assert_non_null(strstr(err.what, "calendar: not JSON"));

	assert_int_equal(extract_calendar(neo, "", 0, &v, &n, &err), -EBADMSG);
	assert_int_equal(extract_calendar(neo, "42", 2, &v, &n, &err),
	    -EBADMSG);
	assert_int_equal(extract_calendar(neo, "[1]", 3, &v, &n, &err),
	    -EBADMSG);
	assert_string_equal(err.what, "calendar: item 0 is not an object");
	assert_null(v);
}

static void
test_calendar_utf8(void **state)
{
	struct extract_error err;
	struct idexx_appt *v = NULL;
	size_t n = 0;

	/* Latin-1 in an optional field: dropped, the rest kept. */
	assert_int_equal(calendar("calendar-latin1-optional.json", &v, &n,
	    &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].id, "A-1");
	assert_null(v[0].patient_name);
	assert_string_equal(v[0].reason, "ok");
	appts_free(v, n);

	/* In the id: an error naming it. */
	v = NULL;
	assert_int_equal(calendar("calendar-latin1-required.json", &v, &n,
	    &err), -EBADMSG);
	assert_string_equal(err.what,
	    "calendar.id: id not valid UTF-8 in item 0");
	assert_null(v);

	/* A NUL escaped in the JSON is not valid text either. */
	assert_int_equal(extract_calendar(neo, S("[{\"id\": \"a\\u0000b\", "
	    "\"patient_name\": \"x\"}]"), &v, &n, &err), -EBADMSG);
	assert_string_equal(err.what,
	    "calendar.id: id not valid UTF-8 in item 0");
	assert_int_equal(extract_calendar(neo, S("[{\"id\": \"ab\", "
	    "\"patient_name\": \"x\\u0000\"}]"), &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_null(v[0].patient_name);
	appts_free(v, n);
}

static void
test_calendar_overlong(void **state)
{
	struct extract_error err;
	struct idexx_appt *v = NULL;
	char body[1024];
	size_t n = 0;
	int len;

	/* An id over FRAME_ID_MAX (128) fails; a long name is dropped. */
	len = snprintf(body, sizeof(body),
	    "[{\"id\": \"%0129d\"}]", 7);
	assert_int_equal(extract_calendar(neo, body, (size_t)len, &v, &n,
	    &err), -EBADMSG);
	assert_string_equal(err.what, "calendar.id: id too long in item 0");
	len = snprintf(body, sizeof(body),
	    "[{\"id\": \"%0128d\", \"start\": \"%065d\"}]", 7, 1);
	assert_int_equal(extract_calendar(neo, body, (size_t)len, &v, &n,
	    &err), 0);
	assert_int_equal(strlen(v[0].id), 128);
	assert_null(v[0].start);
	appts_free(v, n);
}

static int
page_data(const char *file, struct idexx_consult *k,
    struct extract_error *err)
{
	char path[256], *body;
	size_t len;
	int r;

	snprintf(path, sizeof(path), "tests/fixtures/neo/%s", file);
	body = fixture_read(path, &len);
	memset(err, 0, sizeof(*err));
	r = extract_page_data(neo, body, len, k, err);
	free(body);
	return r;
}

static void
test_page_data(void **state)
{
	struct extract_error err;
	struct idexx_consult k;

	assert_int_equal(page_data("page-data.json", &k, &err), 0);
	assert_string_equal(k.id, "C-5001");
	assert_string_equal(k.appointment_id, "1001");
	assert_string_equal(k.date, "2024-11-28 09:05:00");
	assert_string_equal(k.status, "Finalised");
	assert_string_equal(k.reason, "Limping, left hind");
	/* consultationNotes.notes wins over consultation.notes. */
	assert_string_equal(k.notes, "S: limping 3 days\nO: pain on flexion\n"
	    "A: soft tissue injury\nP: NSAID 5 days");
	assert_string_equal(k.discharge_summary,
	    "Rest for a week.\nRecheck in 10 days.");
	assert_string_equal(k.provider, "Dr. Reyes");
	assert_string_equal(k.patient_id, "42");
	assert_string_equal(k.patient_name, "Biscuit");
	assert_string_equal(k.species, "Canine");
	assert_string_equal(k.breed, "Beagle");
	assert_string_equal(k.client_id, "77");
	assert_string_equal(k.first_name, "Dana");
	assert_string_equal(k.last_name, "Okafor");
	assert_string_equal(k.phone, "+1 555 0100");
	assert_string_equal(k.email, "dana@example.org");
	assert_int_equal(k.n_lines, 3);
	assert_string_equal(k.lines[0].name, "Consultation fee");
	assert_string_equal(k.lines[0].quantity, "1");
	assert_false(k.lines[0].declined);
	assert_string_equal(k.lines[1].name, "Meloxicam 1.5 mg/ml");
	assert_string_equal(k.lines[1].quantity, "1.5");
	assert_string_equal(k.lines[2].name, "X-ray, two views");
	assert_string_equal(k.lines[2].quantity, "2");
	assert_true(k.lines[2].declined);
	idexx_consult_release(&k);
	idexx_consult_release(&k);	/* harmless twice */
}

static void
test_page_data_fallthrough(void **state)
{
	struct extract_error err;
	struct idexx_consult k;

	/* consultationNotes.notes is null: consultation.notes is used. */
	assert_int_equal(page_data("page-data-fallthrough.json", &k, &err), 0);
	assert_string_equal(k.id, "5002");
	assert_string_equal(k.notes, "Notes kept on the consultation");
	assert_null(k.provider);	/* providers[0] absent */
	assert_null(k.patient_name);
	assert_int_equal(k.n_lines, 0);
	idexx_consult_release(&k);

	/* "" falls through too. */
	assert_int_equal(page_data("page-data-empty-notes.json", &k, &err), 0);
	assert_string_equal(k.notes, "fallback");
	assert_int_equal(k.n_lines, 0);
	assert_null(k.lines);
	idexx_consult_release(&k);
}

static void
test_page_data_errors(void **state)
{
	struct extract_error err;
	struct idexx_consult k;

	memset(&k, 0, sizeof(k));
	assert_int_equal(page_data("page-data-ui-changed.json", &k, &err),
	    -EBADMSG);
	assert_string_equal(err.what,
	    "page_data.id: none of consultation.id present");
	assert_fp(&err);
	assert_non_null(strstr(err.skeleton, "visit.notes\n"));
	assert_null(k.id);

	assert_int_equal(page_data("page-data-no-line-name.json", &k, &err),
	    -EBADMSG);
	assert_string_equal(err.what,
	    "page_data.line_name: none of productService present in line 1");

	assert_int_equal(page_data("page-data-truncated.json", &k, &err),
	    -EBADMSG);
	assert_non_null(strstr(err.what, "page_data: not JSON at line 1"));

	assert_int_equal(extract_page_data(neo, "[]", 2, &k, &err), -EBADMSG);
	assert_string_equal(err.what, "page_data: not an object");
	assert_int_equal(extract_page_data(neo, S("{\"consultation\":{\"id\":1},"
	    "\"consultationLines\":{}}"), &k, &err), -EBADMSG);
	assert_string_equal(err.what, "page_data.lines: not an array");
}

static void
test_page_data_long_notes(void **state)
{
	struct extract_error err;
	struct idexx_consult k;
	char *body;
	size_t len, i, o;

	/*
	 * Notes of 70000 bytes of "é" (2 bytes each): cut to the last
	 * boundary within 65536, which falls between two characters.
	 */
	body = malloc(200000);
	o = (size_t)sprintf(body, "{\"consultation\":{\"id\":\"C\","
	    "\"notes\":\"");
	for (i = 0; i < 35000; i++) {
		body[o++] = '\xc3';
		body[o++] = '\xa9';
	}
	o += (size_t)sprintf(body + o, "\"}}");
	len = o;
	assert_int_equal(extract_page_data(neo, body, len, &k, &err), 0);
	assert_int_equal(strlen(k.notes), 65536);
	assert_int_equal((unsigned char)k.notes[65534], 0xc3);
	idexx_consult_release(&k);

	/* With an odd prefix the boundary is one byte short of the limit. */
	o = (size_t)sprintf(body, "{\"consultation\":{\"id\":\"C\","
	    "\"notes\":\"x");
	for (i = 0; i < 35000; i++) {
		body[o++] = '\xc3';
		body[o++] = '\xa9';
	}
	o += (size_t)sprintf(body + o, "\"}}");
	assert_int_equal(extract_page_data(neo, body, o, &k, &err), 0);
	assert_int_equal(strlen(k.notes), 65535);
	idexx_consult_release(&k);
	free(body);
}

static void
test_fingerprint_json(void **state)
{
	static const char a[] = "{\"b\":1,\"a\":[{\"x\":1},{\"y\":[2]}]}";
	static const char b[] = "{\"a\":[{\"y\":[9,8]},{\"x\":\"v\"}],"
	    "\"b\":\"changed\"}";
	static const char c[] = "{\"b\":1,\"a\":[{\"x\":1},{\"z\":[2]}]}";
	char ha[65], hb[65], hc[65], sk[512], tiny[8];

	assert_int_equal(extract_fingerprint(a, strlen(a), false, ha, sk,
	    sizeof(sk)), 0);
	assert_string_equal(sk, "a\na[]\na[].x\na[].y\na[].y[]\nb\n");
	/* Values and order change: the same fingerprint. */
	assert_int_equal(extract_fingerprint(b, strlen(b), false, hb, NULL,
	    0), 0);
	assert_string_equal(ha, hb);
	/* A renamed key: another. */
	assert_int_equal(extract_fingerprint(c, strlen(c), false, hc, NULL,
	    0), 0);
	assert_string_not_equal(ha, hc);
	/* The skeleton is bounded. */
	assert_int_equal(extract_fingerprint(a, strlen(a), false, ha, tiny,
	    sizeof(tiny)), 0);
	assert_string_equal(tiny, "a\na[]\na");
	assert_int_equal(extract_fingerprint("{", 1, false, ha, NULL, 0),
	    -EBADMSG);
}

/* HTML tests are appended below. */
#include "test_extract_html.c"

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_calendar_array),
		cmocka_unit_test(test_calendar_wrappers),
		cmocka_unit_test(test_calendar_ui_changed),
		cmocka_unit_test(test_calendar_malformed),
		cmocka_unit_test(test_calendar_utf8),
		cmocka_unit_test(test_calendar_overlong),
		cmocka_unit_test(test_page_data),
		cmocka_unit_test(test_page_data_fallthrough),
		cmocka_unit_test(test_page_data_errors),
		cmocka_unit_test(test_page_data_long_notes),
		cmocka_unit_test(test_fingerprint_json),
		HTML_TESTS
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
