/*
 * Profile "neo" of the simulator (DESIGN §4): the calendar and page-data
 * JSON endpoints, in their three key variants and the "UI changed" renaming,
 * and /__sim/expected, the ground truth tests compare a sync against.
 *
 * The calendar's wrapper rotates per session (array, "appointments",
 * "data", "events") unless the wrap knob pins it, so one client sees every
 * shape in its first four requests.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "common/xmalloc.h"

#include "tests/sim/sim.h"

static void
free_dump(const void *data, size_t len, void *arg)
{
	free(arg);
}

static void
dump(struct evbuffer *body, json_t *j)
{
	char *s;

	s = json_dumps(j, JSON_COMPACT);
	if (s == NULL)
		abort();
	evbuffer_add_reference(body, s, strlen(s), free_dump, s);
	json_decref(j);
}

static void
error(struct evbuffer *body, const char *what)
{
	dump(body, json_pack("{s:s}", "error", what));
}

static json_t *
str_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static json_t *
id_string(uint32_t id)
{
	char s[16];

	snprintf(s, sizeof(s), "%u", (unsigned int)id);
	return json_string(s);
}

static json_t *
calendar_item(const struct sim_clinic *c, const struct sim_appt *a,
    int64_t now, bool canonical)
{
	struct sim_visit v;
	json_t *o;
	char start[DATA_LOCAL_LEN], end[DATA_LOCAL_LEN];
	bool person = a->kind == SIM_VISIT;
	int variant = canonical ? 1 : sim.knobs.variant;
	bool renamed = !canonical && sim.knobs.ui_changed;

	data_visit_init(&v, c, a, false);
	data_format_local(a->start, start);
	data_format_local(a->end, end);
	o = json_object();
	if (renamed)
		json_object_set_new(o, "apptRef", json_integer(a->id));
	else {
		if (variant != 2)
			json_object_set_new(o, "id", json_integer(a->id));
		if (variant != 0)
			json_object_set_new(o, "appointment_id",
			    json_integer(a->id));
	}
	json_object_set_new(o, renamed ? "consultRef" :
	    "consultation_id", data_consult_visible(a, now) ?
	    id_string(a->consult_id) : json_null());
	json_object_set_new(o, "start", json_string(start));
	json_object_set_new(o, "end", json_string(end));
	json_object_set_new(o, "patient_id", person ?
	    json_integer(v.patient_id) : json_null());
	json_object_set_new(o, "patient_name", str_or_null(person ?
	    v.patient : NULL));
	json_object_set_new(o, "client_id", person ?
	    json_integer(v.client_id) : json_null());
	json_object_set_new(o, "first_name", str_or_null(person ?
	    v.first_name : NULL));
	json_object_set_new(o, "last_name", str_or_null(person ?
	    v.last_name : NULL));
	json_object_set_new(o, "email", str_or_null(person ? v.email : NULL));
	json_object_set_new(o, "phone_number", str_or_null(person ?
	    v.phone : NULL));
	json_object_set_new(o, "provider", json_string(v.provider));
	json_object_set_new(o, "resourceId", json_integer(v.provider_id));
	json_object_set_new(o, "type_description", json_string(v.type));
	json_object_set_new(o, "reason", json_string(v.reason));
	json_object_set_new(o, variant == 2 ? "status_label" :
	    "current_status", json_string(v.appt_status));
	json_object_set_new(o, "is_block", json_boolean(a->kind == SIM_BLOCK));
	json_object_set_new(o, "is_roster",
	    json_boolean(a->kind == SIM_ROSTER));
	json_object_set_new(o, "cancelled",
	    json_boolean(data_appt_cancelled(a)));
	data_visit_release(&v);
	return o;
}

static json_t *
lines_json(const struct sim_visit *v)
{
	json_t *lines;
	unsigned int i;

	lines = json_array();
	for (i = 0; i < v->nlines; i++)
		json_array_append_new(lines, json_pack("{s:s,s:i,s:b}",
		    "productService", v->lines[i].product, "quantity",
		    (int)v->lines[i].quantity, "isDeclined",
		    v->lines[i].declined));
	return lines;
}

static int
window(struct evkeyvalq *q, int64_t *ret_start, int64_t *ret_end,
    bool defaults)
{
	const char *s, *e;
	int64_t start, end;

	s = evhttp_find_header(q, "start");
	e = evhttp_find_header(q, "end");
	if (defaults && s == NULL && e == NULL) {
		*ret_end = data_now();
		*ret_start = *ret_end - 48 * 3600;
		return 0;
	}
	if (data_parse_local(s, &start) != 0 ||
	    data_parse_local(e, &end) != 0 || end < start)
		return -EINVAL;
	*ret_start = start;
	*ret_end = end;
	return 0;
}

int
neo_calendar(unsigned int clinic, struct evkeyvalq *q,
    struct sim_session *session, struct evbuffer *body)
{
	static const char *const wrappers[] = {
		NULL, "appointments", "data", "events",
	};
	const struct sim_clinic *c;
	json_t *list, *top;
	int64_t start, end, now = data_now();
	size_t i;
	int wrap;

	if (window(q, &start, &end, false) != 0) {
		error(body, "invalid start or end");
		return 400;
	}
	c = data_clinic(clinic);
	list = json_array();
	for (i = 0; c != NULL && i < c->nappts; i++)
		if (c->appts[i].start >= start && c->appts[i].start < end)
			json_array_append_new(list,
			    calendar_item(c, &c->appts[i], now, false));

	wrap = sim.knobs.wrap;
	if (wrap == SIM_WRAP_ROTATE)
		wrap = session_next_calendar(session) % 4;
	if (sim.knobs.ui_changed)
		top = json_pack("{s:o}", "items", list);
	else if (wrap == SIM_WRAP_ARRAY)
		top = list;
	else
		top = json_pack("{s:o}", wrappers[wrap], list);
	dump(body, top);
	return 200;
}

static int
parse_id(const char *s, uint32_t *ret)
{
	unsigned long v = 0;
	size_t i;

	if (s == NULL || *s == '\0' || strlen(s) > 9)
		return -EINVAL;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	*ret = (uint32_t)v;
	return 0;
}

/* The visible consultation of this clinic with that id, or NULL. */
static const struct sim_appt *
lookup(unsigned int clinic, const char *id)
{
	const struct sim_appt *a;
	unsigned int owner;
	uint32_t cid;

	if (parse_id(id, &cid) != 0 ||
	    (a = data_consult_find(cid, &owner)) == NULL || owner != clinic ||
	    !data_consult_visible(a, data_now()))
		return NULL;
	return a;
}

const struct sim_appt *
neo_lookup(unsigned int clinic, const char *id)
{
	return lookup(clinic, id);
}

int
neo_page_data(unsigned int clinic, const char *id, struct evbuffer *body)
{
	const struct sim_clinic *c = data_clinic(clinic);
	const struct sim_appt *a;
	struct sim_visit v;
	json_t *top, *lines, *providers;
	char date[DATA_LOCAL_LEN];
	unsigned int i;

	if ((a = lookup(clinic, id)) == NULL) {
		error(body, "not_found");
		return 404;
	}
	data_visit_init(&v, c, a, true);
	data_format_local(data_consult_date(a), date);
	lines = lines_json(&v);
	providers = json_array();
	for (i = 0; i < c->nproviders; i++)
		json_array_append_new(providers, json_pack("{s:i,s:s}", "id",
		    (int)(clinic * 100 + i + 1), "name",
		    data_provider_name(c, i)));
	top = json_pack("{s:{s:o,s:s,s:o,s:s,s:s,s:s,s:I},"
	    "s:{s:I,s:s,s:s,s:s},s:{s:I,s:s,s:s,s:s,s:s},"
	    "s:{s:o},s:{s:s},s:o}",
	    sim.knobs.ui_changed ? "visit" : "consultation",
	    "id", id_string(a->consult_id),
	    "reason", v.reason,
	    "notes", sim.knobs.variant == 1 ? json_null() :
	    json_string(v.notes.len ? v.notes.data : ""),
	    "dischargeSummary", v.discharge.len ? v.discharge.data : "",
	    "date", date,
	    "status", v.status,
	    "appointmentId", (json_int_t)a->id,
	    "patient", "id", (json_int_t)v.patient_id, "name", v.patient,
	    "species", v.species, "breed", v.breed,
	    "client", "id", (json_int_t)v.client_id, "firstName", v.first_name,
	    "lastName", v.last_name, "phone", v.phone, "email", v.email,
	    "pageData", "providers", providers,
	    "consultationNotes", "notes", v.notes.len ? v.notes.data : "",
	    "consultationLines", lines);
	data_visit_release(&v);
	if (top == NULL)
		abort();
	dump(body, top);
	return 200;
}

static json_t *
expected_consult(const struct sim_clinic *c, const struct sim_appt *a)
{
	struct sim_visit v;
	json_t *o, *lines;
	char date[DATA_LOCAL_LEN], nsha[65], dsha[65];

	data_visit_init(&v, c, a, true);
	data_format_local(data_consult_date(a), date);
	data_sha256_hex(v.notes.data ? v.notes.data : "", v.notes.len, nsha);
	data_sha256_hex(v.discharge.data ? v.discharge.data : "",
	    v.discharge.len, dsha);
	lines = lines_json(&v);
	o = json_pack("{s:o,s:I,s:s,s:s,s:I,s:s,s:I,s:s,s:s,s:s,s:s,s:s,"
	    "s:I,s:b,s:s,s:I,s:s,s:o}",
	    "id", id_string(a->consult_id),
	    "appointment_id", (json_int_t)a->id,
	    "date", date,
	    "status", v.status,
	    "patient_id", (json_int_t)v.patient_id,
	    "patient_name", v.patient,
	    "client_id", (json_int_t)v.client_id,
	    "client_first_name", v.first_name,
	    "client_last_name", v.last_name,
	    "client_email", v.email,
	    "client_phone", v.phone,
	    "provider", v.provider,
	    "notes_len", (json_int_t)v.notes.len,
	    "has_notes", v.notes.len > 0,
	    "notes_sha256", nsha,
	    "discharge_len", (json_int_t)v.discharge.len,
	    "discharge_sha256", dsha,
	    "lines", lines);
	json_object_set_new(o, "reason", json_string(v.reason));
	data_visit_release(&v);
	return o;
}

int
neo_expected(struct evkeyvalq *q, struct evbuffer *body)
{
	const struct sim_clinic *c;
	const struct sim_appt *a;
	const char *cs;
	json_t *appts, *cons;
	int64_t start, end, now = data_now();
	char s[DATA_LOCAL_LEN], e[DATA_LOCAL_LEN];
	uint32_t clinic;
	size_t i;

	cs = evhttp_find_header(q, "clinic");
	if (parse_id(cs, &clinic) != 0 || (c = data_clinic(clinic)) == NULL) {
		error(body, "unknown clinic");
		return 404;
	}
	if (window(q, &start, &end, true) != 0) {
		error(body, "invalid start or end");
		return 400;
	}
	appts = json_array();
	cons = json_array();
	for (i = 0; i < c->nappts; i++) {
		a = &c->appts[i];
		if (a->start < start || a->start >= end)
			continue;
		json_array_append_new(appts, calendar_item(c, a, now, true));
		if (data_reportable(a, now))
			json_array_append_new(cons, expected_consult(c, a));
	}
	data_format_local(start, s);
	data_format_local(end, e);
	dump(body, json_pack("{s:I,s:s,s:s,s:I,s:o,s:o}", "clinic",
	    (json_int_t)clinic, "start", s, "end", e, "notes_gen",
	    (json_int_t)sim.notes_gen, "appointments", appts,
	    "consultations", cons));
	return 200;
}
