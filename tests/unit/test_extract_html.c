/*
 * HTML extraction tests, included by test_extract.c (they share its
 * profiles and helpers): the login form, the markers, the prd-html list in
 * each markup and the detail page in both, and the failures.
 */

static char *
html_fixture(const char *file, size_t *len)
{
	char path[256];

	snprintf(path, sizeof(path), "tests/fixtures/prd-html/%s", file);
	return fixture_read(path, len);
}

static void
test_login_form(void **state)
{
	struct extract_error err;
	struct login_form f;
	size_t len;
	char *body;

	body = html_fixture("login.html", &len);
	assert_int_equal(extract_login_form(neo, body, len, &f, &err), 0);
	assert_string_equal(f.action, "/login");
	assert_string_equal(f.username_field, "username");
	assert_string_equal(f.password_field, "password");
	assert_string_equal(f.company_field, "company_id");
	assert_string_equal(f.csrf_name, "_csrf");
	assert_string_equal(f.csrf_value, "tok-123abc");
	login_form_release(&f);
	assert_false(extract_login_failed(neo, body, len));
	assert_false(extract_session_expired(prd, body, len));
	free(body);

	/* No known names: input[type=email], type=password, "csrf". */
	body = html_fixture("login-plain.html", &len);
	assert_int_equal(extract_login_form(prd, body, len, &f, &err), 0);
	assert_null(f.action);
	assert_string_equal(f.username_field, "mail");
	assert_string_equal(f.password_field, "pw");
	assert_null(f.company_field);
	assert_string_equal(f.csrf_name, "x_csrf_guard");
	assert_string_equal(f.csrf_value, "g-9");
	login_form_release(&f);
	free(body);

	/* No CSRF input, no company. */
	body = html_fixture("login-nocsrf.html", &len);
	assert_int_equal(extract_login_form(neo, body, len, &f, &err), 0);
	assert_string_equal(f.action, "/auth/login");
	assert_string_equal(f.username_field, "username");
	assert_null(f.company_field);
	assert_null(f.csrf_name);
	assert_null(f.csrf_value);
	login_form_release(&f);
	login_form_release(NULL);
	free(body);

	body = html_fixture("login-no-form.html", &len);
	assert_int_equal(extract_login_form(neo, body, len, &f, &err),
	    -EBADMSG);
	assert_string_equal(err.what, "login.form: no login form in the page");
	assert_false(extract_login_failed(neo, body, len));
	free(body);

	assert_int_equal(extract_login_form(neo, S("<html><body><form>"
	    "<input type=\"password\" name=\"password\"></form></body></html>"),
	    &f, &err), -EBADMSG);
	assert_string_equal(err.what, "login.username_field: none of "
	    "username|email|login present in the form");
}

static void
test_login_failed(void **state)
{
	size_t len;
	char *body;

	body = html_fixture("login-failed.html", &len);
	assert_true(extract_login_failed(neo, body, len));
	assert_true(extract_login_failed(prd, body, len));
	free(body);
	body = html_fixture("login-locked.html", &len);
	assert_true(extract_login_failed(neo, body, len));
	free(body);
	assert_false(extract_login_failed(neo, S("not html")));
	assert_false(extract_login_failed(neo, "", 0));
}

static void
test_markers(void **state)
{
	size_t len;
	char *body;

	body = html_fixture("expired.html", &len);
	assert_true(extract_session_expired(prd, body, len));
	assert_true(extract_session_expired(neo, body, len));
	assert_false(extract_html_matches(prd, "login", "logged_in", body,
	    len));
	free(body);
	body = html_fixture("dashboard.html", &len);
	assert_false(extract_session_expired(prd, body, len));
	assert_true(extract_html_matches(prd, "login", "logged_in", body,
	    len));
	/* neo has no logged_in key. */
	assert_false(extract_html_matches(neo, "login", "logged_in", body,
	    len));
	free(body);
}

static int
list(const char *file, struct idexx_row **v, size_t *n, char **next,
    struct extract_error *err)
{
	size_t len;
	char *body;
	int r;

	body = html_fixture(file, &len);
	memset(err, 0, sizeof(*err));
	r = extract_consult_list(prd, body, len, v, n, next, err);
	free(body);
	return r;
}

static void
rows_free(struct idexx_row *v, size_t n, char *next)
{
	size_t i;

	for (i = 0; i < n; i++)
		idexx_row_release(&v[i]);
	free(v);
	free(next);
}

static void
test_list_variants(void **state)
{
	struct extract_error err;
	struct idexx_row *v;
	size_t n;
	char *next;

	assert_int_equal(list("list-variant0.html", &v, &n, &next, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].consultation_id, "5001");
	assert_string_equal(v[0].patient_name, "Biscuit the Beagle");
	assert_string_equal(v[0].date, "2024-11-28 09:00:00");
	assert_true(v[0].has_notes);
	assert_string_equal(v[1].consultation_id, "5002");
	assert_string_equal(v[1].patient_name, "Mochi & Co");
	assert_false(v[1].has_notes);
	assert_string_equal(next,
	    "/consultations?startDate=2024-11-27&endDate=2024-11-28&page=2");
	rows_free(v, n, next);

	/* .consultation-item, the first fallback; no next page. */
	assert_int_equal(list("list-variant1.html", &v, &n, &next, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].consultation_id, "6001");
	assert_string_equal(v[0].patient_name, "Pepper");
	assert_true(v[0].has_notes);
	assert_null(next);
	rows_free(v, n, next);

	/* tr[class*="consultation"]; has-notes is matched by token. */
	assert_int_equal(list("list-variant2.html", &v, &n, &next, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].consultation_id, "7001");
	assert_false(v[0].has_notes);
	assert_string_equal(v[1].consultation_id, "7002");
	assert_true(v[1].has_notes);
	rows_free(v, n, next);

	assert_int_equal(list("list-empty.html", &v, &n, &next, &err), 0);
	assert_int_equal(n, 0);
	assert_null(next);
	rows_free(v, n, next);
}

static void
test_list_errors(void **state)
{
	struct extract_error err;
	struct idexx_row *v = NULL;
	size_t n;
	char *next = NULL;

	assert_int_equal(list("list-ui-changed.html", &v, &n, &next, &err),
	    -EBADMSG);
	assert_non_null(strstr(err.what, "list.row: no locator matched "
	    "(tried: //*[@data-testid=\"consultation-row\"] || "));
	assert_fp(&err);
	assert_non_null(strstr(err.skeleton, "tr[visit-row]\n"));

	assert_int_equal(list("list-missing-id.html", &v, &n, &next, &err),
	    -EBADMSG);
	assert_string_equal(err.what, "list.consultation_id: no locator "
	    "matched in row 1 (tried: @data-consultation-id)");

	assert_int_equal(list("fragment.html", &v, &n, &next, &err), -EBADMSG);
	assert_string_equal(err.what, "list: not an HTML page (root element "
	    "is not <html>)");
	assert_int_equal(list("../garbage.bin", &v, &n, &next, &err),
	    -EBADMSG);
	assert_non_null(strstr(err.what, "list: not an HTML page"));
	assert_int_equal(extract_consult_list(prd, "", 0, &v, &n, &next,
	    &err), -EBADMSG);
	assert_string_equal(err.what,
	    "list: not an HTML page (no root element)");
	assert_null(v);
	assert_null(next);
}

static int
detail(const char *file, struct idexx_consult *k, struct extract_error *err)
{
	size_t len;
	char *body;
	int r;

	body = html_fixture(file, &len);
	memset(err, 0, sizeof(*err));
	r = extract_consult_detail(prd, body, len, k, err);
	free(body);
	return r;
}

static void
test_detail(void **state)
{
	struct extract_error err;
	struct idexx_consult k;

	assert_int_equal(detail("detail-variant0.html", &k, &err), 0);
	assert_string_equal(k.id, "5001");
	assert_string_equal(k.appointment_id, "1001");
	assert_string_equal(k.patient_name, "Biscuit");
	assert_string_equal(k.species, "Canine");
	assert_string_equal(k.breed, "Beagle");
	assert_string_equal(k.client_id, "77");
	assert_string_equal(k.first_name, "Dana");
	assert_string_equal(k.last_name, "Okafor");
	assert_string_equal(k.phone, "+1 555 0100");
	assert_string_equal(k.email, "dana@example.org");
	assert_string_equal(k.date, "2024-11-28 09:05:00");
	assert_string_equal(k.status, "Finalised");
	assert_string_equal(k.provider, "Dr. Reyes");
	assert_string_equal(k.reason, "Limping, left hind");
	/* <br> and block boundaries are line breaks; blanks collapse. */
	assert_string_equal(k.notes, "S: limping 3 days\nO: pain on flexion\n"
	    "A: soft tissue injury\nP: NSAID 5 days");
	assert_string_equal(k.discharge_summary,
	    "Rest for a week.\nRecheck in 10 days.");
	assert_null(k.patient_id);
	assert_int_equal(k.n_lines, 2);
	assert_string_equal(k.lines[0].name, "Consultation fee");
	assert_string_equal(k.lines[0].quantity, "1");
	assert_false(k.lines[0].declined);
	assert_string_equal(k.lines[1].name, "X-ray, two views");
	assert_true(k.lines[1].declined);
	idexx_consult_release(&k);

	/* data-testid notes and summary, the fallbacks. */
	assert_int_equal(detail("detail-variant1.html", &k, &err), 0);
	assert_string_equal(k.id, "5002");
	assert_string_equal(k.notes, "Line one\nLine two");
	assert_string_equal(k.discharge_summary, "Go home.");
	assert_string_equal(k.first_name, "Ana");
	assert_null(k.species);
	assert_int_equal(k.n_lines, 0);
	idexx_consult_release(&k);
}

static void
test_detail_errors(void **state)
{
	struct extract_error err;
	struct idexx_consult k;

	memset(&k, 0, sizeof(k));
	assert_int_equal(detail("detail-ui-changed.html", &k, &err), -EBADMSG);
	assert_non_null(strstr(err.what,
	    "detail.root: no locator matched (tried: "));
	assert_non_null(strstr(err.skeleton, "div.visit-detail\n"));

	/* Latin-1 in the patient's name: dropped. */
	assert_int_equal(detail("detail-latin1-optional.html", &k, &err), 0);
	assert_string_equal(k.id, "5003");
	assert_null(k.patient_name);
	assert_string_equal(k.notes, "ok");
	idexx_consult_release(&k);

	/* In the id: an error naming it. */
	assert_int_equal(detail("detail-latin1-required.html", &k, &err),
	    -EBADMSG);
	assert_string_equal(err.what,
	    "detail.id: not valid UTF-8 (locator 1)");
	assert_null(k.id);
}

static void
test_fingerprint_html(void **state)
{
	static const char a[] = "<html><body><div class=\"b a\" "
	    "data-testid=\"t\">x</div><p>1</p><p>2</p></body></html>";
	static const char b[] = "<html><body><p>other text</p><div "
	    "class=\"a  b\" data-testid=\"t\">y</div></body></html>";
	static const char c[] = "<html><body><div class=\"b c\" "
	    "data-testid=\"t\">x</div><p>1</p></body></html>";
	char ha[65], hb[65], hc[65], sk[512];

	assert_int_equal(extract_fingerprint(a, strlen(a), true, ha, sk,
	    sizeof(sk)), 0);
	assert_string_equal(sk, "body\ndiv.a.b[t]\nhtml\np\n");
	assert_int_equal(extract_fingerprint(b, strlen(b), true, hb, NULL,
	    0), 0);
	assert_string_equal(ha, hb);
	assert_int_equal(extract_fingerprint(c, strlen(c), true, hc, NULL,
	    0), 0);
	assert_string_not_equal(ha, hc);
}

#define HTML_TESTS \
	cmocka_unit_test(test_login_form), \
	cmocka_unit_test(test_login_failed), \
	cmocka_unit_test(test_markers), \
	cmocka_unit_test(test_list_variants), \
	cmocka_unit_test(test_list_errors), \
	cmocka_unit_test(test_detail), \
	cmocka_unit_test(test_detail_errors), \
	cmocka_unit_test(test_fingerprint_html),
