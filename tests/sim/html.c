/*
 * Profile "prd-html" of the simulator (PRD §6.3) and the login form both
 * profiles share.  Rows come in three markups (--variant): the PRD's
 * [data-testid="consultation-row"], then .consultation-item, then rows
 * only tr[class*="consultation"] matches.  With --ui-changed every class
 * and data-testid a locator or fallback could use is renamed, while the
 * login form stays as it was, so a client logs in and then finds nothing.
 *
 * A consultation changed by the "consultation" knob keeps its row; its
 * detail page shows its status (in_progress, cancelled) and its date.
 *
 * Names and notes are HTML-escaped; every page is UTF-8.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "tests/sim/sim.h"

/* Locators, as served and as renamed by --ui-changed. */
struct names {
	const char *user_menu;
	const char *row_testid;
	const char *item;
	const char *entry;
	const char *id_attr;
	const char *patient;
	const char *date;
	const char *indicator;
	const char *detail;
	const char *notes;
	const char *discharge;
};

static const struct names normal = {
	"user-menu", "consultation-row", "consultation-item",
	"row consultation-entry", "data-consultation-id", "patient-name",
	"consultation-date", "notes-indicator", "consultation-detail",
	"consultation-notes", "discharge-summary",
};
static const struct names renamed = {
	"account-menu", "visit-row", "visit-item", "row visit-entry",
	"data-visit-id", "pet-name", "visit-date", "memo-flag", "visit-detail",
	"visit-memo", "discharge-text",
};

static const struct names *
names(void)
{
	return sim.knobs.ui_changed ? &renamed : &normal;
}

void
html_escape(struct evbuffer *b, const char *s)
{
	const char *run = s;

	for (; s != NULL && *s != '\0'; s++) {
		const char *e;

		switch (*s) {
		case '&': e = "&amp;"; break;
		case '<': e = "&lt;"; break;
		case '>': e = "&gt;"; break;
		case '"': e = "&quot;"; break;
		case '\'': e = "&#39;"; break;
		default: continue;
		}
		evbuffer_add(b, run, (size_t)(s - run));
		evbuffer_add(b, e, strlen(e));
		run = s + 1;
	}
	if (s != NULL)
		evbuffer_add(b, run, (size_t)(s - run));
}

static void
head(struct evbuffer *b, const char *title)
{
	evbuffer_add_printf(b, "<!DOCTYPE html>\n<html lang=\"en\"><head>"
	    "<meta charset=\"utf-8\"><title>%s - IDEXX Neo</title></head>\n"
	    "<body>\n", title);
}

static void
tail(struct evbuffer *b)
{
	evbuffer_add_printf(b, "</body></html>\n");
}

static void
user_menu(struct evbuffer *b, unsigned int clinic)
{
	evbuffer_add_printf(b, "<nav><div data-testid=\"%s\">vet%u@clinic%u"
	    ".test</div><a href=\"/logout\">Sign out</a></nav>\n",
	    names()->user_menu, clinic, clinic);
}

void
html_login(struct evbuffer *b, const char *csrf, const char *error)
{
	head(b, "Sign in");
	if (error != NULL)
		evbuffer_add_printf(b, "%s\n", error);
	evbuffer_add_printf(b, "<form method=\"post\" action=\"/login\">"
	    "<input type=\"email\" name=\"username\">"
	    "<input type=\"password\" name=\"password\">"
	    "<input type=\"text\" name=\"company_id\">"
	    "<input type=\"hidden\" name=\"_csrf\" value=\"%s\">"
	    "<button type=\"submit\">Sign in</button></form>\n", csrf);
	tail(b);
}

void
html_dashboard(struct evbuffer *b, unsigned int clinic)
{
	head(b, "Dashboard");
	user_menu(b, clinic);
	evbuffer_add_printf(b, "<main><h1>Dashboard</h1>"
	    "<a href=\"/consultations\">Consultations</a></main>\n");
	tail(b);
}

void
html_expired(struct evbuffer *b)
{
	head(b, "Session expired");
	evbuffer_add_printf(b, "<div class=\"session-expired\">Your session "
	    "has expired</div><a href=\"/login\">Sign in again</a>\n");
	tail(b);
}

static void
row(struct evbuffer *b, const struct sim_visit *v)
{
	const struct names *n = names();
	char date[DATA_LOCAL_LEN];
	const char *cell = sim.knobs.variant == 1 ? "span" : "td";

	data_format_local(data_consult_date(v->appt), date);
	switch (sim.knobs.variant) {
	case 1:
		evbuffer_add_printf(b, "<div class=\"%s\" %s=\"%u\">", n->item,
		    n->id_attr, (unsigned int)v->appt->consult_id);
		break;
	case 2:
		evbuffer_add_printf(b, "<tr class=\"%s\" %s=\"%u\">", n->entry,
		    n->id_attr, (unsigned int)v->appt->consult_id);
		break;
	default:
		evbuffer_add_printf(b, "<tr data-testid=\"%s\" %s=\"%u\">",
		    n->row_testid, n->id_attr,
		    (unsigned int)v->appt->consult_id);
		break;
	}
	evbuffer_add_printf(b, "<%s class=\"%s\">", cell, n->patient);
	html_escape(b, v->patient);
	evbuffer_add_printf(b, "</%s><%s class=\"%s\">%s</%s>", cell, cell,
	    n->date, date, cell);
	evbuffer_add_printf(b, "<%s><span class=\"%s%s\"></span></%s>", cell,
	    n->indicator, data_has_notes(v->appt) ? " has-notes" : "", cell);
	evbuffer_add_printf(b, "%s\n", sim.knobs.variant == 1 ? "</div>" :
	    "</tr>");
}

int
html_list(unsigned int clinic, struct evkeyvalq *q, struct evbuffer *b)
{
	const struct sim_clinic *c = data_clinic(clinic);
	const char *sd, *ed, *ps;
	int64_t start, end, now = data_now();
	char s[DATA_LOCAL_LEN], e[DATA_LOCAL_LEN];
	unsigned long page = 1;
	size_t i, n = 0, first;
	bool more = false;

	sd = evhttp_find_header(q, "startDate");
	ed = evhttp_find_header(q, "endDate");
	ps = evhttp_find_header(q, "page");
	if (sd == NULL)
		start = now - 2 * 86400;
	else if (data_parse_date(sd, &start) != 0)
		return 400;
	if (ed == NULL)
		end = now + 1;
	else if (data_parse_date(ed, &end) != 0)
		return 400;
	else
		end += 86400;	/* the end date is included */
	if (ps != NULL) {
		char *ep;

		page = strtoul(ps, &ep, 10);
		if (*ps == '\0' || *ep != '\0' || page < 1 || page > 100000)
			return 400;
	}
	data_format_local(start, s);
	data_format_local(end, e);
	s[10] = e[10] = '\0';

	head(b, "Consultations");
	user_menu(b, clinic);
	evbuffer_add_printf(b, "<form method=\"get\" action=\"/consultations\">"
	    "<input type=\"date\" name=\"startDate\" value=\"%s\">"
	    "<input type=\"date\" name=\"endDate\" value=\"", s);
	html_escape(b, ed != NULL ? ed : e);
	evbuffer_add_printf(b, "\"><button data-testid=\"search\" "
	    "type=\"submit\">Search</button></form>\n");
	evbuffer_add_printf(b, sim.knobs.variant == 1 ?
	    "<div class=\"list\">\n" : "<table class=\"list\">\n");
	first = (page - 1) * SIM_PAGE_ROWS;
	for (i = 0; c != NULL && i < c->nappts; i++) {
		const struct sim_appt *a = &c->appts[i];
		struct sim_visit v;

		if (a->start < start || a->start >= end ||
		    !data_reportable(a, now))
			continue;
		if (n >= first + SIM_PAGE_ROWS) {
			more = true;
			break;
		}
		if (n++ < first)
			continue;
		data_visit_init(&v, c, a, false);
		row(b, &v);
		data_visit_release(&v);
	}
	evbuffer_add_printf(b, sim.knobs.variant == 1 ? "</div>\n" :
	    "</table>\n");
	if (more) {
		evbuffer_add_printf(b, "<a rel=\"next\" href=\"/consultations?"
		    "startDate=");
		html_escape(b, sd != NULL ? sd : s);
		evbuffer_add_printf(b, "&amp;endDate=");
		html_escape(b, ed != NULL ? ed : e);
		evbuffer_add_printf(b, "&amp;page=%lu\">Next</a>\n", page + 1);
	}
	tail(b);
	return 200;
}

static void
span(struct evbuffer *b, const char *tag, const char *cls, const char *text)
{
	evbuffer_add_printf(b, "<%s class=\"%s\">", tag, cls);
	html_escape(b, text);
	evbuffer_add_printf(b, "</%s>", tag);
}

int
html_detail(unsigned int clinic, const char *id, struct evbuffer *b)
{
	static const char *const sections[SIM_SOAP] = {
		"subjective", "objective", "assessment", "plan",
	};
	const struct names *n = names();
	const struct sim_appt *a;
	struct sim_visit v;
	char date[DATA_LOCAL_LEN];
	unsigned int i;

	if ((a = neo_lookup(clinic, id)) == NULL) {
		head(b, "Not found");
		evbuffer_add_printf(b, "<h1>Consultation not found</h1>\n");
		tail(b);
		return 404;
	}
	data_visit_init(&v, data_clinic(clinic), a, true);
	data_format_local(data_consult_date(a), date);
	head(b, "Consultation");
	user_menu(b, clinic);
	evbuffer_add_printf(b, "<div class=\"%s\" %s=\"%u\" "
	    "data-appointment-id=\"%u\">", n->detail, n->id_attr,
	    (unsigned int)a->consult_id, (unsigned int)a->id);
	span(b, "h1", n->patient, v.patient);
	span(b, "span", "species", v.species);
	span(b, "span", "breed", v.breed);
	evbuffer_add_printf(b, "<div class=\"client\" data-client-id=\"%u\">",
	    (unsigned int)v.client_id);
	span(b, "span", "client-first-name", v.first_name);
	span(b, "span", "client-last-name", v.last_name);
	span(b, "span", "client-phone", v.phone);
	span(b, "span", "client-email", v.email);
	evbuffer_add_printf(b, "</div>");
	span(b, "span", n->date, date);
	span(b, "span", "consultation-status", v.status);
	span(b, "span", "provider", v.provider);
	span(b, "div", "reason", v.reason);
	for (i = 0; i < SIM_SOAP; i++) {
		evbuffer_add_printf(b, "<section class=\"soap\" "
		    "data-section=\"%s\">", sections[i]);
		html_escape(b, v.soap[i].data);
		evbuffer_add_printf(b, "</section>");
	}
	if (sim.knobs.variant == 1)
		evbuffer_add_printf(b, "<div data-testid=\"%s\">", n->notes);
	else
		evbuffer_add_printf(b, "<div class=\"%s\">", n->notes);
	html_escape(b, v.notes.data);
	if (sim.knobs.variant == 1)
		evbuffer_add_printf(b, "</div><div data-testid=\"%s\">",
		    n->discharge);
	else
		evbuffer_add_printf(b, "</div><div class=\"%s\">",
		    n->discharge);
	html_escape(b, v.discharge.data);
	evbuffer_add_printf(b, "</div><table class=\"products\">");
	for (i = 0; i < v.nlines; i++) {
		evbuffer_add_printf(b, "<tr class=\"product-line\" "
		    "data-declined=\"%s\">", v.lines[i].declined ? "true" :
		    "false");
		span(b, "td", "product-name", v.lines[i].product);
		evbuffer_add_printf(b, "<td class=\"product-quantity\">%u</td>"
		    "</tr>", v.lines[i].quantity);
	}
	evbuffer_add_printf(b, "</table></div>\n");
	tail(b);
	data_visit_release(&v);
	return 200;
}
