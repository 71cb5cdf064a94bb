/*
 * What the IDEXX Neo flows fetch and read (see client.h): the calendar
 * (JSON profiles), the day's schedule, and the consultations of the
 * notes reconciliation -- page-data per consulted appointment (neo), or
 * the list pages and a detail page per row (prd-html) -- each fetched in
 * parallel on the session and handed to the sink as it lands.
 * Sessions, requests and the result are client.c's (client_int.h).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xmalloc.h"

#include "worker/client.h"
#include "worker/client_int.h"
#include "worker/extract.h"
#include "worker/http.h"
#include "worker/idexx.h"
#include "worker/profile.h"

/* ---- the calendar (JSON profiles) ------------------------------------ */

static int
client_calendar(struct client *c, struct idexx_appt **ret, size_t *ret_n)
{
	const char *tmpl = profile_str(c->p->profile, "endpoints", "calendar");
	struct extract_error ee;
	struct http_req req;
	char *path;
	int r = -1;

	if (tmpl == NULL)
		return client_fail(c, CLIENT_UNSUPPORTED, "profile",
		    "profile '%s' has no calendar endpoint",
		    profile_name(c->p->profile));
	memset(&ee, 0, sizeof(ee));
	path = client_window_path(c, tmpl, "start", "end", false, 0);
	http_req_init(&req, path);
	req.json = true;
	if (client_progress(c, CLIENT_STAGE_CALENDAR, 0, 1) != 0)
		goto out;
	if (client_get(c, &req, "calendar") != 0)
		goto out;
	if (client_check_utf8(c, &req, "calendar") != 0 ||
	    client_fingerprint(c, "calendar", &req, false) != 0)
		goto out;
	if (extract_calendar(c->p->profile, req.body.data, req.body.len, ret,
	    ret_n, &ee) != 0) {
		client_fail_extract(c, &req, "calendar", &ee);
		goto out;
	}
	r = client_progress(c, CLIENT_STAGE_CALENDAR, 1, 1);
out:
	http_req_release(&req);
	free(path);
	return r;
}

static void
client_appts_free(struct idexx_appt *a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		idexx_appt_release(&a[i]);
	free(a);
}

int
client_records_schedule(struct client *c)
{
	struct idexx_appt *a = NULL;
	size_t n = 0, i;
	int r = -1;

	if (client_calendar(c, &a, &n) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (a[i].is_block || a[i].is_roster)
			continue;
		if (client_sink_rc(c, c->sink->appointment(c->sink->arg,
		    &a[i])) != 0)
			goto out;
		c->res->appointments++;
	}
	r = 0;
out:
	client_appts_free(a, n);
	return r;
}

/* ---- consultations --------------------------------------------------- */

/* What each consultation request carries: its id and where it came from. */
struct client_item {
	struct http_req req;
	char *path;
	const char *id;
	const struct idexx_appt *appt;		/* neo */
	const struct idexx_row *row;		/* prd-html */
};

static char *
client_dup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

static int
client_consult_send(struct client *c, struct idexx_consult *k)
{
	if (k->notes != NULL && k->notes[0] != '\0')
		c->res->notes_found++;
	c->res->consultations++;
	return client_sink_rc(c, c->sink->consultation(c->sink->arg, k));
}

static int
client_each_page_data(struct client *c, struct http_req *req)
{
	struct client_item *it = req->udata;
	struct idexx_consult k;
	struct extract_error ee;
	int r;

	memset(&k, 0, sizeof(k));
	memset(&ee, 0, sizeof(ee));
	if (client_check_utf8(c, req, "page_data") != 0 ||
	    client_fingerprint(c, "page_data", req, false) != 0)
		return -1;
	if (extract_page_data(c->p->profile, req->body.data, req->body.len,
	    &k, &ee) != 0)
		return client_fail_extract(c, req, "page_data", &ee);
	if (k.id == NULL)
		k.id = xstrdup(it->id);
	if (k.appointment_id == NULL && it->appt != NULL)
		k.appointment_id = client_dup(it->appt->id);
	if (k.provider == NULL && it->appt != NULL)
		k.provider = client_dup(it->appt->provider);
	r = client_consult_send(c, &k);
	idexx_consult_release(&k);
	return r;
}

static int
client_each_detail(struct client *c, struct http_req *req)
{
	struct client_item *it = req->udata;
	struct idexx_consult k;
	struct extract_error ee;
	int r;

	memset(&k, 0, sizeof(k));
	memset(&ee, 0, sizeof(ee));
	if (client_fingerprint(c, "consult_detail", req, true) != 0)
		return -1;
	if (extract_consult_detail(c->p->profile, req->body.data,
	    req->body.len, &k, &ee) != 0)
		return client_fail_extract(c, req, "consultation", &ee);
	if (k.id == NULL)
		k.id = xstrdup(it->id);
	if (k.patient_name == NULL && it->row != NULL)
		k.patient_name = client_dup(it->row->patient_name);
	if (k.date == NULL && it->row != NULL)
		k.date = client_dup(it->row->date);
	r = client_consult_send(c, &k);
	idexx_consult_release(&k);
	return r;
}

static void
client_items_free(struct client_item *items, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		http_req_release(&items[i].req);
		free(items[i].path);
	}
	free(items);
}

static bool
client_seen(struct client_item *items, size_t n, const char *id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(items[i].id, id) == 0)
			return true;
	return false;
}

/* Fetch every item's page in parallel; each() reads one as it lands. */
static int
client_fetch_items(struct client *c, struct client_item *items, size_t n,
    const char *kind, bool json,
    int (*each)(struct client *, struct http_req *))
{
	struct http_req **reqs;
	size_t i;
	int r;

	reqs = xreallocarray(NULL, n > 0 ? n : 1, sizeof(*reqs));
	for (i = 0; i < n; i++) {
		http_req_init(&items[i].req, items[i].path);
		items[i].req.json = json;
		items[i].req.udata = &items[i];
		reqs[i] = &items[i].req;
	}
	c->batch_done = 0;
	c->batch_total = (uint32_t)n;
	if ((r = client_progress(c, CLIENT_STAGE_CONSULTATIONS, 0,
	    (uint32_t)n)) == 0 && n > 0)
		r = client_batch(c, reqs, n, kind, each);
	free(reqs);
	return r;
}

int
client_records_notes_json(struct client *c)
{
	const char *tmpl = profile_str(c->p->profile, "endpoints",
	    "page_data");
	struct idexx_appt *a = NULL;
	struct client_item *items = NULL;
	size_t na = 0, n = 0, i;
	int r = -1;

	if (tmpl == NULL)
		return client_fail(c, CLIENT_UNSUPPORTED, "profile",
		    "profile '%s' has no page_data endpoint",
		    profile_name(c->p->profile));
	if (client_calendar(c, &a, &na) != 0)
		goto out;
	items = xreallocarray(NULL, na > 0 ? na : 1, sizeof(*items));
	for (i = 0; i < na; i++) {
		if (a[i].is_block || a[i].is_roster ||
		    a[i].consultation_id == NULL ||
		    a[i].consultation_id[0] == '\0' ||
		    client_seen(items, n, a[i].consultation_id))
			continue;
		memset(&items[n], 0, sizeof(items[n]));
		items[n].id = a[i].consultation_id;
		items[n].appt = &a[i];
		items[n].path = client_expand(c, tmpl, items[n].id, 0);
		n++;
	}
	r = client_fetch_items(c, items, n, "page_data", true,
	    client_each_page_data);
out:
	client_items_free(items, n);
	client_appts_free(a, na);
	return r;
}

static void
client_rows_free(struct idexx_row *rows, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		idexx_row_release(&rows[i]);
	free(rows);
}

int
client_records_notes_html(struct client *c)
{
	const char *list = profile_str(c->p->profile, "endpoints",
	    "consultations");
	const char *detail = profile_str(c->p->profile, "endpoints",
	    "consultation");
	struct idexx_row *rows = NULL, *page = NULL;
	struct client_item *items = NULL;
	struct extract_error ee;
	struct http_req req;
	size_t nrows = 0, npage = 0, n = 0, i;
	unsigned pages = 0;
	char *path = NULL, *next = NULL;
	int r = -1;

	if (list == NULL || detail == NULL)
		return client_fail(c, CLIENT_UNSUPPORTED, "profile",
		    "profile '%s' has no consultations endpoints",
		    profile_name(c->p->profile));
	http_req_init(&req, NULL);
	path = client_window_path(c, list, "startDate", "endDate", true,
	    1);
	while (path != NULL) {
		if (++pages > CLIENT_PAGES_MAX) {
			client_fail(c, CLIENT_FAILED, "too_large", "the "
			    "consultations list runs past %d pages",
			    CLIENT_PAGES_MAX);
			goto out;
		}
		if (client_progress(c, CLIENT_STAGE_CALENDAR, pages - 1,
		    0) != 0)
			goto out;
		http_req_release(&req);
		http_req_init(&req, path);
		if (client_get(c, &req, "consultations list") != 0)
			goto out;
		if (client_fingerprint(c, "consult_list", &req, true) != 0)
			goto out;
		memset(&ee, 0, sizeof(ee));
		if (extract_consult_list(c->p->profile, req.body.data,
		    req.body.len, &page, &npage, &next, &ee) != 0) {
			client_fail_extract(c, &req, "consultations list",
			    &ee);
			goto out;
		}
		if (nrows + npage > CLIENT_ROWS_MAX) {
			client_fail(c, CLIENT_FAILED, "too_large", "more than "
			    "%d consultations in the window",
			    CLIENT_ROWS_MAX);
			goto out;
		}
		rows = xreallocarray(rows, nrows + npage + 1, sizeof(*rows));
		memcpy(rows + nrows, page, npage * sizeof(*rows));
		nrows += npage;
		free(page);
		page = NULL;
		npage = 0;
		free(path);
		path = NULL;
		if (next != NULL) {
			if ((path = client_local_path(c, next, req.path)) ==
			    NULL) {
				client_fail(c, CLIENT_UI_CHANGED, "ui_changed",
				    "list.next: the next page is outside %s",
				    c->p->base_url);
				goto out;
			}
			free(next);
			next = NULL;
		}
	}
	if (client_progress(c, CLIENT_STAGE_CALENDAR, pages, pages) != 0)
		goto out;
	items = xreallocarray(NULL, nrows > 0 ? nrows : 1, sizeof(*items));
	for (i = 0; i < nrows; i++) {
		/* The list is by day: keep the window's hours only. */
		if (!client_in_window(c, rows[i].date) ||
		    client_seen(items, n, rows[i].consultation_id))
			continue;
		memset(&items[n], 0, sizeof(items[n]));
		items[n].id = rows[i].consultation_id;
		items[n].row = &rows[i];
		items[n].path = client_expand(c, detail, items[n].id, 0);
		n++;
	}
	r = client_fetch_items(c, items, n, "consultation", false,
	    client_each_detail);
out:
	client_items_free(items, n);
	client_rows_free(rows, nrows);
	client_rows_free(page, npage);
	http_req_release(&req);
	free(path);
	free(next);
	return r;
}
