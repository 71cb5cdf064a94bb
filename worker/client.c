/*
 * The IDEXX Neo flows (see client.h): login, sessions, requests, logout
 * and the result, for the JSON profile ("neo") and the HTML one
 * ("prd-html"); what each flow fetches and reads is client_records.c.
 *
 * Every step that can fail ends in client_fail*(), which fills the result
 * once (the first failure is the one reported) and, when a response was
 * there to see, hands it to the sink as a snapshot.  Internal functions
 * return 0 to go on and -1 to stop; the reason is in the result, or in
 * sink_err when the supervisor could not be told.
 *
 * Deliberate quirks:
 * - The login form body, which holds the password, is built into a buffer
 *   that is wiped as soon as the POST ends; http.c does not copy it.
 * - A session is "proven" by the first request that succeeds on it.  An
 *   expiry on an unproven session is the "session" error, not a renewal:
 *   that bounds the renewals without a counter racing the server's TTL.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/utf8.h"
#include "common/xmalloc.h"

#include "worker/client.h"
#include "worker/client_int.h"
#include "worker/extract.h"
#include "worker/http.h"
#include "worker/idexx.h"
#include "worker/profile.h"

/* ---- the result ------------------------------------------------------ */

static void
client_failv(struct client *c, enum client_status st, const char *cls,
    const char *fmt, va_list ap)
{
	if (c->failed)
		return;
	c->failed = true;
	c->res->status = st;
	snprintf(c->res->error_class, sizeof(c->res->error_class), "%s", cls);
	vsnprintf(c->res->message, sizeof(c->res->message), fmt, ap);
}

int
client_fail(struct client *c, enum client_status st, const char *cls,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

int
client_fail(struct client *c, enum client_status st, const char *cls,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	client_failv(c, st, cls, fmt, ap);
	va_end(ap);
	return -1;
}

int
client_sink_rc(struct client *c, int r)
{
	if (r != 0 && c->sink_err == 0)
		c->sink_err = r;
	return r != 0 ? -1 : 0;
}

static int
client_event(struct client *c, enum client_event ev, const char *detail)
{
	return client_sink_rc(c, c->sink->event(c->sink->arg, ev, detail));
}

int
client_progress(struct client *c, enum client_stage st, uint32_t done,
    uint32_t total)
{
	return client_sink_rc(c, c->sink->progress(c->sink->arg, st, done,
	    total));
}

static void
client_snapshot(struct client *c, const struct http_req *req,
    const char *reason)
{
	struct client_snapshot s;

	memset(&s, 0, sizeof(s));
	s.reason = reason;
	s.path = req->path;
	s.status = req->status;
	s.content_type = req->content_type;
	s.body = req->body.data;
	s.len = req->body.len;
	client_sink_rc(c, c->sink->snapshot(c->sink->arg, &s));
}

/* A request ended without a usable answer. */
int
client_fail_req(struct client *c, const struct http_req *req,
    const char *what)
{
	char reason[256];

	if (c->failed)
		return -1;
	if (req->fail != HTTP_FAIL_NONE) {
		snprintf(reason, sizeof(reason), "%s: %s after %u attempt(s)",
		    what, http_fail_class(req->fail), req->attempts);
		client_snapshot(c, req, reason);
		return client_fail(c, CLIENT_FAILED,
		    http_fail_class(req->fail), "%s %.128s: %s after %u "
		    "attempt(s)", what, req->path,
		    http_fail_class(req->fail), req->attempts);
	}
	snprintf(reason, sizeof(reason), "%s: unexpected HTTP status %ld",
	    what, req->status);
	client_snapshot(c, req, reason);
	return client_fail(c, CLIENT_FAILED, "http", "%s %.128s: unexpected "
	    "HTTP status %ld", what, req->path, req->status);
}

int
client_fail_extract(struct client *c, const struct http_req *req,
    const char *what, const struct extract_error *e)
{
	char reason[384];

	if (c->failed)
		return -1;
	snprintf(reason, sizeof(reason), "ui_changed: %s: %s", what,
	    e->what[0] != '\0' ? e->what : "unreadable");
	client_snapshot(c, req, reason);
	return client_fail(c, CLIENT_UI_CHANGED, "ui_changed", "%s: %s",
	    what, e->what[0] != '\0' ? e->what : "unreadable response");
}

/*
 * JSON must be UTF-8 (RFC 8259 section 8.1).  A body that is not is
 * refused whole: read leniently, its ids would be dropped one by one and
 * the job would end "OK" with records silently missing.
 */
int
client_check_utf8(struct client *c, const struct http_req *req,
    const char *what)
{
	char reason[128];

	if (utf8_valid(req->body.data, req->body.len))
		return 0;
	snprintf(reason, sizeof(reason), "%s: not valid UTF-8", what);
	client_snapshot(c, req, reason);
	return client_fail(c, CLIENT_FAILED, "encoding", "%s %.128s: the "
	    "JSON response is not valid UTF-8", what, req->path);
}

/* The structure of a kind of response, once per kind per job. */
int
client_fingerprint(struct client *c, const char *kind,
    const struct http_req *req, bool html)
{
	char hex[65], skel[1024];
	size_t i;

	for (i = 0; i < c->n_fp_sent; i++)
		if (strcmp(c->fp_sent[i], kind) == 0)
			return 0;
	if (c->n_fp_sent == CLIENT_FP_KINDS)
		return 0;
	if (extract_fingerprint(req->body.data, req->body.len, html, hex,
	    skel, sizeof(skel)) != 0)
		return 0;
	c->fp_sent[c->n_fp_sent++] = kind;
	return client_sink_rc(c, c->sink->fingerprint(c->sink->arg, kind, hex,
	    skel));
}

/* ---- URLs ------------------------------------------------------------ */

static void
client_urlencode(struct buf *b, const char *s, bool form)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
		    *p == '.' || *p == '~')
			buf_append(b, p, 1);
		else if (*p == ' ' && form)
			buf_append(b, "+", 1);
		else {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };

			buf_append(b, e, 3);
		}
	}
}

/*
 * An endpoint with its placeholders filled: {id}, {start}, {end},
 * {start_date}, {end_date}, {page}; values are URL-encoded.
 */
char *
client_expand(struct client *c, const char *tmpl, const char *id,
    unsigned page)
{
	struct buf b;
	const char *p = tmpl, *q;
	char pg[16];

	buf_init(&b, 0);
	snprintf(pg, sizeof(pg), "%u", page);
	while ((q = strchr(p, '{')) != NULL) {
		const char *close = strchr(q, '}');
		const char *v = NULL;
		size_t keylen, vlen = SIZE_MAX;
		char tmp[16];

		if (close == NULL)
			break;
		buf_append(&b, p, (size_t)(q - p));
		keylen = (size_t)(close - q - 1);
#define KEY(k) (keylen == strlen(k) && strncmp(q + 1, k, keylen) == 0)
		if (KEY("id"))
			v = id;
		else if (KEY("start"))
			v = c->p->window_start;
		else if (KEY("end"))
			v = c->p->window_end;
		else if (KEY("start_date")) {
			v = c->p->window_start;
			vlen = 10;
		} else if (KEY("end_date")) {
			v = c->p->window_end;
			vlen = 10;
		} else if (KEY("page"))
			v = pg;
#undef KEY
		if (v == NULL)
			buf_append(&b, q, (size_t)(close - q + 1));
		else if (vlen != SIZE_MAX) {
			snprintf(tmp, sizeof(tmp), "%.*s", (int)vlen, v);
			client_urlencode(&b, tmp, false);
		} else
			client_urlencode(&b, v, false);
		p = close + 1;
	}
	buf_puts(&b, p);
	return buf_detach(&b, NULL);
}

/*
 * Append "?k=v&k=v" (or "&...") for the window, when not templated: the
 * times as they are, or only their dates (the HTML list takes days).
 */
char *
client_window_path(struct client *c, const char *tmpl, const char *kstart,
    const char *kend, bool dates, unsigned page)
{
	struct buf b;
	char *path, v[32];

	path = client_expand(c, tmpl, NULL, page);
	if (strchr(tmpl, '{') != NULL)
		return path;
	buf_init(&b, 0);
	buf_puts(&b, path);
	free(path);
	buf_puts(&b, strchr(tmpl, '?') != NULL ? "&" : "?");
	buf_printf(&b, "%s=", kstart);
	snprintf(v, sizeof(v), "%.*s", dates ? 10 : 31, c->p->window_start);
	client_urlencode(&b, v, false);
	buf_printf(&b, "&%s=", kend);
	snprintf(v, sizeof(v), "%.*s", dates ? 10 : 31, c->p->window_end);
	client_urlencode(&b, v, false);
	if (page != 0)
		buf_printf(&b, "&page=%u", page);
	return buf_detach(&b, NULL);
}

/*
 * Is a clinic-local "YYYY-MM-DD HH:MM:SS" (or with 'T') inside the
 * window?  Anything else cannot be placed, and counts as inside.
 */
bool
client_in_window(struct client *c, const char *date)
{
	char d[20];

	if (date == NULL || strlen(date) < 19 || date[4] != '-' ||
	    date[7] != '-' || (date[10] != ' ' && date[10] != 'T') ||
	    date[13] != ':' || date[16] != ':')
		return true;
	memcpy(d, date, 19);
	d[10] = ' ';
	d[19] = '\0';
	return strncmp(d, c->p->window_start, 19) >= 0 &&
	    strncmp(d, c->p->window_end, 19) < 0;
}

/*
 * A URL from a page (form action, next link, Location) as a path on our
 * base URL; NULL when it points elsewhere.
 */
char *
client_local_path(struct client *c, const char *url, const char *relto)
{
	size_t blen = strlen(c->p->base_url);
	const char *q;

	if (strncmp(url, c->p->base_url, blen) == 0 &&
	    (url[blen] == '/' || url[blen] == '?' || url[blen] == '\0')) {
		url += blen;
		if (*url == '\0')
			return xstrdup("/");
		if (*url == '?')
			return xasprintf("/%s", url);
		return xstrdup(url);
	}
	if (url[0] == '/' && url[1] != '/')
		return xstrdup(url);
	if (url[0] == '?' && relto != NULL) {
		q = strchr(relto, '?');
		return xasprintf("%.*s%s", (int)(q != NULL ?
		    (size_t)(q - relto) : strlen(relto)), relto, url);
	}
	return NULL;
}

/* Does a redirect go to the login page? */
static bool
client_to_login(struct client *c, const char *location)
{
	char *path;
	size_t n = strlen(c->login_path);
	bool yes;

	if (location == NULL)
		return false;
	if ((path = client_local_path(c, location, NULL)) == NULL)
		return false;
	yes = strncmp(path, c->login_path, n) == 0 &&
	    (path[n] == '\0' || path[n] == '?' || path[n] == '#');
	free(path);
	return yes;
}

static bool
client_redirect(long status)
{
	return status == 301 || status == 302 || status == 303 ||
	    status == 307 || status == 308;
}

static bool
client_expired(struct client *c, const struct http_req *req)
{
	if (req->fail != HTTP_FAIL_NONE)
		return false;
	if (req->status == 401)
		return true;
	if (client_redirect(req->status) && client_to_login(c, req->location))
		return true;
	if (c->html && req->status == 200 &&
	    extract_session_expired(c->p->profile, req->body.data,
	    req->body.len))
		return true;
	return false;
}

/* ---- requests -------------------------------------------------------- */

static int
client_run_status(struct client *c, int r)
{
	if (r == -ECANCELED)
		return client_fail(c, CLIENT_CANCELLED, "cancelled",
		    "cancelled by the supervisor");
	if (r == -ETIMEDOUT)
		return client_fail(c, CLIENT_TIMEOUT, "timeout",
		    "the job ran past its deadline");
	if (r == -1)
		return -1;
	return client_fail(c, CLIENT_FAILED, "internal", "http: %s",
	    strerror(-r));
}

static int
client_one_done(void *arg, struct http_req *req)
{
	(void)arg;
	(void)req;
	return 0;
}

/* Run one request as it is; no session handling. */
static int
client_fetch(struct client *c, struct http_req *req)
{
	int r;

	http_req_reset(req);
	if ((r = http_run(c->http, &req, 1, client_one_done, c)) != 0)
		return client_run_status(c, r);
	return 0;
}

static int client_renew(struct client *);

/*
 * Run one request on the session: renew the session when it expired,
 * then succeed only with a 2xx answer.
 */
int
client_get(struct client *c, struct http_req *req, const char *what)
{
	for (;;) {
		if (client_fetch(c, req) != 0)
			return -1;
		if (req->fail != HTTP_FAIL_NONE)
			return client_fail_req(c, req, what);
		if (client_expired(c, req)) {
			if (client_renew(c) != 0)
				return -1;
			continue;
		}
		if (req->status < 200 || req->status > 299)
			return client_fail_req(c, req, what);
		c->ok_since_login++;
		return 0;
	}
}

static int
client_batch_done(void *arg, struct http_req *req)
{
	struct client *c = arg;

	if (req->fail == HTTP_FAIL_NONE && client_expired(c, req)) {
		http_req_reset(req);
		return CLIENT_EXPIRED;
	}
	if (req->fail != HTTP_FAIL_NONE || req->status < 200 ||
	    req->status > 299)
		return client_fail_req(c, req, c->batch_kind);
	c->ok_since_login++;
	if (c->each(c, req) != 0)
		return -1;
	/* The body is read: let its memory go now, not at the end. */
	buf_release(&req->body);
	buf_init(&req->body, 0);
	c->batch_done++;
	return client_progress(c, CLIENT_STAGE_CONSULTATIONS, c->batch_done,
	    c->batch_total);
}

/* Run requests in parallel on the session, renewing it as needed. */
int
client_batch(struct client *c, struct http_req **reqs, size_t n,
    const char *kind, int (*each)(struct client *, struct http_req *))
{
	int r;

	c->each = each;
	c->batch_kind = kind;
	for (;;) {
		r = http_run(c->http, reqs, n, client_batch_done, c);
		if (r == 0)
			return 0;
		if (r != CLIENT_EXPIRED)
			return client_run_status(c, r);
		if (client_renew(c) != 0)
			return -1;
	}
}

/* ---- login and logout ------------------------------------------------ */

static void
client_form_field(struct buf *b, const char *name, const char *value)
{
	if (b->len > 0)
		buf_append(b, "&", 1);
	client_urlencode(b, name, true);
	buf_append(b, "=", 1);
	client_urlencode(b, value, true);
}

static bool
client_contains_ci(const char *body, size_t len, const char *word)
{
	size_t n = strlen(word), i;

	for (i = 0; i + n <= len; i++)
		if (strncasecmp(body + i, word, n) == 0)
			return true;
	return false;
}

static int
client_login(struct client *c)
{
	const struct profile *pf = c->p->profile;
	struct profile_alts cookies;
	struct http_req get, post;
	struct login_form form;
	struct extract_error ee;
	struct buf body;
	char *action = NULL;
	uint64_t t0 = clock_mono_ms();
	int r = -1;

	memset(&form, 0, sizeof(form));
	memset(&ee, 0, sizeof(ee));
	buf_init(&body, 0);
	http_req_init(&get, c->login_path);
	http_req_init(&post, c->login_path);
	c->logged_in = false;
	if (client_progress(c, CLIENT_STAGE_LOGGING_IN, 0, 2) != 0)
		goto out;
	if (client_fetch(c, &get) != 0)
		goto out;
	if (get.fail != HTTP_FAIL_NONE || get.status != 200) {
		client_fail_req(c, &get, "login page");
		goto out;
	}
	if (client_fingerprint(c, "login", &get, true) != 0)
		goto out;
	if (extract_login_form(pf, get.body.data, get.body.len, &form,
	    &ee) != 0) {
		client_fail_extract(c, &get, "login page", &ee);
		goto out;
	}
	if (form.action != NULL && form.action[0] != '\0' &&
	    (action = client_local_path(c, form.action, c->login_path)) ==
	    NULL) {
		client_fail(c, CLIENT_UI_CHANGED, "ui_changed", "login.action: "
		    "the form posts outside %s", c->p->base_url);
		goto out;
	}
	client_form_field(&body, form.username_field, c->p->username);
	client_form_field(&body, form.password_field, c->p->password);
	if (form.company_field != NULL && c->p->company_id != NULL)
		client_form_field(&body, form.company_field,
		    c->p->company_id);
	if (form.csrf_name != NULL && form.csrf_value != NULL)
		client_form_field(&body, form.csrf_name, form.csrf_value);
	if (client_progress(c, CLIENT_STAGE_LOGGING_IN, 1, 2) != 0)
		goto out;
	post.path = action != NULL ? action : c->login_path;
	post.post = body.data;
	post.post_len = body.len;
	r = client_fetch(c, &post);
	/* The password leaves memory we own as soon as the POST is over. */
	explicit_bzero(body.data, body.len);
	post.post = NULL;
	if (r != 0)
		goto out;
	r = -1;
	if (post.fail != HTTP_FAIL_NONE) {
		client_fail_req(c, &post, "login");
		goto out;
	}
	if (client_redirect(post.status) &&
	    !client_to_login(c, post.location)) {
		cookies = profile_get(pf, "login", "session_cookie");
		if (cookies.n > 0 &&
		    !http_cookie_present(c->http, cookies.v, cookies.n)) {
			client_snapshot(c, &post, "login: no session cookie");
			client_fail(c, CLIENT_UI_CHANGED, "ui_changed",
			    "login.session_cookie: redirected without a "
			    "session cookie");
			goto out;
		}
		c->logged_in = true;
		c->ok_since_login = 0;
		c->logins++;
		if (c->res->login_ms == 0)
			c->res->login_ms = (uint32_t)(clock_mono_ms() - t0);
		if (client_progress(c, CLIENT_STAGE_LOGGING_IN, 2, 2) != 0 ||
		    client_event(c, CLIENT_EVENT_LOGIN_OK, NULL) != 0)
			goto out;
		r = 0;
		goto out;
	}
	if (post.status >= 200 && post.status < 500 &&
	    extract_login_failed(pf, post.body.data, post.body.len)) {
		bool locked = client_contains_ci(post.body.data,
		    post.body.len, "locked");

		client_event(c, CLIENT_EVENT_LOGIN_FAILED, locked ?
		    "account locked" : "credentials refused");
		client_fail(c, CLIENT_INVALID_CREDENTIALS,
		    locked ? "account_locked" : "invalid_credentials",
		    locked ? "IDEXX Neo says the account is locked: unlock it "
		    "in IDEXX Neo, then save the credentials again" :
		    "IDEXX Neo refused the username or password");
		goto out;
	}
	if (post.status >= 500 || post.status == 429) {
		client_fail_req(c, &post, "login");
		goto out;
	}
	client_snapshot(c, &post, "login: neither a session nor an error");
	client_fail(c, CLIENT_UI_CHANGED, "ui_changed", "login.error: the "
	    "answer (HTTP %ld) is neither a redirect to a session nor the "
	    "login page with an error", post.status);
out:
	buf_release_secret(&body);
	login_form_release(&form);
	http_req_release(&get);
	http_req_release(&post);
	free(action);
	return r;
}

static int
client_renew(struct client *c)
{
	if (client_event(c, CLIENT_EVENT_SESSION_EXPIRED, NULL) != 0)
		return -1;
	if (c->ok_since_login == 0)
		return client_fail(c, CLIENT_FAILED, "session", "the session "
		    "expired before any request succeeded on it: not "
		    "renewing it again");
	if (c->logins >= CLIENT_LOGINS_MAX)
		return client_fail(c, CLIENT_FAILED, "session", "the session "
		    "expired %u times: giving up", c->logins);
	http_cookies_clear(c->http);
	if (client_login(c) != 0)
		return -1;
	return client_event(c, CLIENT_EVENT_SESSION_RENEWED, NULL);
}

static void
client_logout(struct client *c)
{
	const char *path = profile_str(c->p->profile, "endpoints", "logout");
	struct http_req req;

	if (path == NULL || !c->logged_in)
		return;
	if (client_progress(c, CLIENT_STAGE_LOGGING_OUT, 0, 1) != 0)
		return;
	http_req_init(&req, path);
	if (client_fetch(c, &req) == 0 && req.fail == HTTP_FAIL_NONE &&
	    req.status >= 200 && req.status < 400) {
		c->logged_in = false;
		if (client_progress(c, CLIENT_STAGE_LOGGING_OUT, 1, 1) == 0)
			client_event(c, CLIENT_EVENT_LOGGED_OUT, NULL);
	} else
		log_info("logout: %s, status %ld", http_fail_class(req.fail),
		    req.status);
	http_req_release(&req);
	http_cookies_clear(c->http);
}

/* ---- the flows ------------------------------------------------------- */

static void
client_note(void *arg, enum http_note note, const char *detail)
{
	struct client *c = arg;

	if (note == HTTP_NOTE_RATE_LIMITED)
		client_event(c, CLIENT_EVENT_RATE_LIMITED, detail);
	else
		log_info("%s", log_q(detail));
}

static bool
client_watch(void *arg)
{
	struct client *c = arg;

	return c->sink->watch != NULL && c->sink->watch(c->sink->arg);
}

int
client_run(const struct client_params *p, enum client_flow flow,
    const struct client_sink *sink, struct client_result *ret)
{
	struct client c;
	int r;

	memset(ret, 0, sizeof(*ret));
	memset(&c, 0, sizeof(c));
	c.p = p;
	c.sink = sink;
	c.res = ret;
	c.html = profile_kind(p->profile) == PROFILE_HTML;
	c.login_path = profile_str(p->profile, "endpoints", "login");
	if (c.login_path == NULL || c.login_path[0] != '/') {
		client_fail(&c, CLIENT_UNSUPPORTED, "profile", "profile '%s' "
		    "has no login endpoint", profile_name(p->profile));
		goto out;
	}
	if (flow != CLIENT_VALIDATE &&
	    (p->window_start == NULL || p->window_end == NULL)) {
		client_fail(&c, CLIENT_FAILED, "job", "the job has no window");
		goto out;
	}
	c.hc.base_url = p->base_url;
	c.hc.pin_host = p->pin_host;
	c.hc.pin_port = p->pin_port;
	c.hc.pin_ip = p->pin_ip;
	c.hc.ca_bundle = p->ca_bundle;
	c.hc.max_parallel = p->max_parallel;
	c.hc.request_rate = p->request_rate;
	c.hc.response_max = p->response_max;
	c.hc.request_timeout_ms = p->request_timeout_ms;
	c.hc.deadline_ms = p->deadline_ms;
	c.hc.watch_fd = p->watch_fd;
	c.hc.watch = client_watch;
	c.hc.note = client_note;
	c.hc.arg = &c;
	if ((r = http_new(&c.hc, &c.http)) != 0) {
		client_fail(&c, CLIENT_FAILED, "internal", "http client: %s",
		    strerror(-r));
		goto out;
	}
	if (client_login(&c) != 0)
		goto out;
	switch (flow) {
	case CLIENT_RECONCILE_NOTES:
		if (c.html)
			client_records_notes_html(&c);
		else
			client_records_notes_json(&c);
		break;
	case CLIENT_SYNC_SCHEDULE:
		client_records_schedule(&c);
		break;
	case CLIENT_VALIDATE:
		break;
	}
	if (c.sink_err == 0 && !(c.failed &&
	    (ret->status == CLIENT_CANCELLED || ret->status == CLIENT_TIMEOUT)))
		client_logout(&c);
out:
	if (!c.failed)
		ret->status = CLIENT_OK;
	if (c.http != NULL) {
		ret->requests = http_requests(c.http);
		ret->bytes_received = http_bytes_received(c.http);
	}
	http_free(c.http);
	return c.sink_err;
}
