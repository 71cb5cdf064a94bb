/*
 * The simulator's control surface: knobs changed at run time through
 * POST /__sim/control (the long options' names, with underscores), the
 * actions expire_sessions, add_notes and consultation, and the per-clinic
 * counters of GET /__sim/stats.  A control request is validated whole
 * before any knob changes, so a bad one changes nothing.
 *
 * "consultation" changes consultations as a clinic does in IDEXX Neo:
 * {"clinic": N, "id": "<consultation id>", "status": S}, or an array of
 * those, where S is in_consult (reopened), cancelled (its appointment
 * cancelled) or checked_out (completed again, later than before).  Its
 * errors name the field at fault; they are written into a JSON string by
 * the caller, so a value from the request is echoed only as digits.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "common/buf.h"
#include "common/parse.h"
#include "common/xmalloc.h"

#include "tests/sim/sim.h"

#define KNOB_MS_MAX		(10ULL * 60 * 1000)
#define KNOB_COUNT_MAX		(1ULL << 40)
#define CHANGES_MAX		256	/* consultations in one request */

static const char *const bodies[] = {
	"normal", "truncated", "garbage", "huge", "non-utf8",
};
static const char *const wraps[] = {
	"array", "appointments", "data", "events",
};
/* The consultation knob's statuses, in enum sim_change order. */
static const char *const changes[] = {
	NULL, "in_consult", "cancelled", "checked_out",
};

/* One consultation to change. */
struct change {
	unsigned int		 clinic;
	const struct sim_appt	*appt;
	enum sim_change		 to;
};

/* The actions of one control request, done once it is valid whole. */
struct actions {
	bool		*locked;
	bool		 expire;
	bool		 notes;
	struct change	 ch[CHANGES_MAX];
	size_t		 nch;
};

int
control_parse_body(const char *s, enum sim_body *ret)
{
	size_t i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		if (strcmp(s, bodies[i]) == 0) {
			*ret = (enum sim_body)i;
			return 0;
		}
	}
	return -EINVAL;
}

/* "2,5": lock those clinics (and unlock the rest). */
int
control_parse_locked(const char *s)
{
	bool *locked;
	char *copy, *tok, *save = NULL;
	uint64_t n;
	int r = 0;

	locked = xcalloc(sim.nclinics + 1, sizeof(*locked));
	copy = xstrdup(s);
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if (parse_u64(tok, &n) != 0 || n < 1 || n > sim.nclinics) {
			r = -EINVAL;
			goto out;
		}
		locked[n] = true;
	}
	free(sim.knobs.locked);
	sim.knobs.locked = locked;
	locked = NULL;
out:
	free(locked);
	free(copy);
	return r;
}

static int
get_u64(json_t *v, uint64_t max, uint64_t *ret)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return -EINVAL;
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

static int
get_rate(json_t *v, uint64_t *ret)
{
	double d;

	if (!json_is_number(v))
		return -EINVAL;
	d = json_number_value(v);
	if (!(d >= 0.0 && d <= 1.0))
		return -EINVAL;
	*ret = (uint64_t)(d * 1e6 + 0.5);
	return 0;
}

/* One {"clinic", "id", "status"} object; err says what is wrong. */
static int
stage_change(struct actions *act, json_t *o, struct buf *err)
{
	json_t *c = json_object_get(o, "clinic"), *id = json_object_get(o, "id");
	json_t *st = json_object_get(o, "status");
	const struct sim_appt *a;
	char ids[16];
	size_t i;

	if (!json_is_object(o) || json_object_size(o) != 3 || c == NULL ||
	    id == NULL || st == NULL) {
		buf_printf(err, "control: consultation: want an object of "
		    "clinic, id and status, and nothing else");
		return -EINVAL;
	}
	if (!json_is_integer(c) || json_integer_value(c) < 1 ||
	    json_integer_value(c) > (json_int_t)sim.nclinics) {
		buf_printf(err, "control: consultation: clinic must be a "
		    "number from 1 to %u", sim.nclinics);
		return -EINVAL;
	}
	if (json_is_integer(id) && json_integer_value(id) > 0 &&
	    json_integer_value(id) < 1000000000)
		snprintf(ids, sizeof(ids), "%lld",
		    (long long)json_integer_value(id));
	else if (json_is_string(id) && json_string_length(id) > 0 &&
	    json_string_length(id) < sizeof(ids) &&
	    strspn(json_string_value(id), "0123456789") ==
	    json_string_length(id))
		memcpy(ids, json_string_value(id), json_string_length(id) + 1);
	else {
		buf_printf(err, "control: consultation: id must be a "
		    "consultation id (digits)");
		return -EINVAL;
	}
	if ((a = neo_lookup((unsigned int)json_integer_value(c), ids)) ==
	    NULL) {
		buf_printf(err, "control: consultation: clinic %u has no "
		    "consultation %s (yet)", (unsigned int)json_integer_value(c),
		    ids);
		return -EINVAL;
	}
	for (i = 1; i < sizeof(changes) / sizeof(changes[0]); i++)
		if (json_is_string(st) &&
		    strcmp(json_string_value(st), changes[i]) == 0)
			break;
	if (i == sizeof(changes) / sizeof(changes[0])) {
		buf_printf(err, "control: consultation: status must be "
		    "in_consult, cancelled or checked_out");
		return -EINVAL;
	}
	if (act->nch == CHANGES_MAX) {
		buf_printf(err, "control: consultation: more than %d at once",
		    CHANGES_MAX);
		return -EINVAL;
	}
	act->ch[act->nch].clinic = (unsigned int)json_integer_value(c);
	act->ch[act->nch].appt = a;
	act->ch[act->nch].to = (enum sim_change)i;
	act->nch++;
	return 0;
}

static int
stage_changes(struct actions *act, json_t *v, struct buf *err)
{
	json_t *e;
	size_t i;
	int r;

	if (!json_is_array(v))
		return stage_change(act, v, err);
	if (json_array_size(v) == 0) {
		buf_printf(err, "control: consultation: an empty array");
		return -EINVAL;
	}
	json_array_foreach(v, i, e)
		if ((r = stage_change(act, e, err)) != 0)
			return r;
	return 0;
}

static int
apply_one(struct sim_knobs *k, const char *key, json_t *v,
    struct actions *act, struct buf *err)
{
	uint64_t n;
	size_t i;

	if (strcmp(key, "latency_ms") == 0)
		return get_u64(v, KNOB_MS_MAX, &k->latency_ms);
	if (strcmp(key, "slow_ms") == 0)
		return get_u64(v, KNOB_MS_MAX, &k->slow_ms);
	if (strcmp(key, "session_ttl_ms") == 0)
		return get_u64(v, KNOB_COUNT_MAX, &k->session_ttl_ms);
	if (strcmp(key, "session_max_requests") == 0)
		return get_u64(v, KNOB_COUNT_MAX, &k->session_max_requests);
	if (strcmp(key, "retry_after") == 0)
		return get_u64(v, 86400, &k->retry_after);
	if (strcmp(key, "rate_429") == 0)
		return get_rate(v, &k->rate_429);
	if (strcmp(key, "rate_5xx") == 0)
		return get_rate(v, &k->rate_5xx);
	if (strcmp(key, "variant") == 0) {
		if (get_u64(v, 2, &n) != 0)
			return -EINVAL;
		k->variant = (int)n;
		return 0;
	}
	if (strcmp(key, "body") == 0)
		return json_is_string(v) ?
		    control_parse_body(json_string_value(v), &k->body) :
		    -EINVAL;
	if (strcmp(key, "wrap") == 0) {
		if (!json_is_string(v))
			return -EINVAL;
		if (strcmp(json_string_value(v), "rotate") == 0) {
			k->wrap = SIM_WRAP_ROTATE;
			return 0;
		}
		for (i = 0; i < sizeof(wraps) / sizeof(wraps[0]); i++) {
			if (strcmp(json_string_value(v), wraps[i]) == 0) {
				k->wrap = (int)i;
				return 0;
			}
		}
		return -EINVAL;
	}
	if (strcmp(key, "ui_changed") == 0) {
		if (!json_is_boolean(v))
			return -EINVAL;
		k->ui_changed = json_is_true(v);
		return 0;
	}
	if (strcmp(key, "expiry") == 0) {
		if (json_is_string(v))
			n = strtoull(json_string_value(v), NULL, 10);
		else if (get_u64(v, 1000, &n) != 0)
			return -EINVAL;
		if (n != 401 && n != 302)
			return -EINVAL;
		k->expiry = (enum sim_expiry)n;
		return 0;
	}
	if (strcmp(key, "locked") == 0) {
		json_t *e;

		if (!json_is_array(v))
			return -EINVAL;
		free(act->locked);
		act->locked = xcalloc(sim.nclinics + 1, sizeof(*act->locked));
		json_array_foreach(v, i, e) {
			if (get_u64(e, sim.nclinics, &n) != 0 || n < 1)
				return -EINVAL;
			act->locked[n] = true;
		}
		return 0;
	}
	if (strcmp(key, "expire_sessions") == 0) {
		if (!json_is_boolean(v))
			return -EINVAL;
		act->expire = json_is_true(v);
		return 0;
	}
	if (strcmp(key, "add_notes") == 0) {
		if (!json_is_boolean(v))
			return -EINVAL;
		act->notes = json_is_true(v);
		return 0;
	}
	if (strcmp(key, "consultation") == 0)
		return stage_changes(act, v, err);
	return -ENOENT;
}

int
control_apply(const char *text, size_t len, struct buf *err)
{
	struct sim_knobs k = sim.knobs;
	struct actions *act;
	json_error_t jerr;
	json_t *top = NULL, *v;
	const char *key;
	size_t i;
	int r = 0;

	act = xcalloc(1, sizeof(*act));
	top = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (top == NULL || !json_is_object(top)) {
		buf_printf(err, "control: not a JSON object");
		r = -EINVAL;
		goto out;
	}
	json_object_foreach(top, key, v) {
		r = apply_one(&k, key, v, act, err);
		if (r == -ENOENT) {
			buf_printf(err, "control: unknown knob");
			goto out;
		}
		if (r != 0) {
			if (err->len == 0)
				buf_printf(err, "control: bad value for a knob");
			goto out;
		}
	}
	if (act->locked != NULL) {
		free(sim.knobs.locked);
		k.locked = act->locked;
		act->locked = NULL;
	}
	sim.knobs = k;
	if (act->expire)
		session_expire_all();
	if (act->notes)
		sim.notes_gen++;
	for (i = 0; i < act->nch; i++)
		data_consult_change(act->ch[i].clinic, act->ch[i].appt,
		    act->ch[i].to);
out:
	free(act->locked);
	free(act);
	json_decref(top);
	return r;
}

static void
dump(struct evbuffer *b, json_t *j)
{
	char *s;

	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (s == NULL)
		abort();
	evbuffer_add(b, s, strlen(s));
	free(s);
}

int
control_expiry(void)
{
	if (sim.knobs.expiry != SIM_EXPIRY_DEFAULT)
		return sim.knobs.expiry;
	return sim.profile == SIM_PROFILE_NEO ? 401 : 302;
}

void
control_knobs(struct evbuffer *b)
{
	json_t *locked;
	unsigned int i;

	locked = json_array();
	for (i = 1; i <= sim.nclinics; i++)
		if (sim.knobs.locked[i])
			json_array_append_new(locked, json_integer(i));
	dump(b, json_pack("{s:s,s:i,s:I,s:I,s:I,s:I,s:I,s:f,s:I,s:f,s:I,"
	    "s:s,s:i,s:s,s:b,s:o,s:i,s:I}",
	    "profile", sim.profile == SIM_PROFILE_NEO ? "neo" : "prd-html",
	    "clinics", (int)sim.nclinics,
	    "seed", (json_int_t)sim.seed,
	    "consultations", (json_int_t)sim.consultations,
	    "latency_ms", (json_int_t)sim.knobs.latency_ms,
	    "session_ttl_ms", (json_int_t)sim.knobs.session_ttl_ms,
	    "session_max_requests", (json_int_t)sim.knobs.session_max_requests,
	    "rate_429", sim.knobs.rate_429 / 1e6,
	    "retry_after", (json_int_t)sim.knobs.retry_after,
	    "rate_5xx", sim.knobs.rate_5xx / 1e6,
	    "slow_ms", (json_int_t)sim.knobs.slow_ms,
	    "body", bodies[sim.knobs.body],
	    "variant", sim.knobs.variant,
	    "wrap", sim.knobs.wrap == SIM_WRAP_ROTATE ? "rotate" :
	    wraps[sim.knobs.wrap],
	    "ui_changed", sim.knobs.ui_changed,
	    "locked", locked,
	    "expiry", control_expiry(),
	    "notes_gen", (json_int_t)sim.notes_gen));
}

static json_t *
stats_json(const struct sim_stats *s)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
	    "requests", (json_int_t)s->requests,
	    "bytes", (json_int_t)s->bytes,
	    "logins", (json_int_t)s->logins,
	    "failed_logins", (json_int_t)s->failed_logins,
	    "expired", (json_int_t)s->expired,
	    "429", (json_int_t)s->r429,
	    "5xx", (json_int_t)s->r5xx);
}

void
control_stats(struct evbuffer *b)
{
	json_t *clinics;
	char key[16];
	unsigned int i;

	clinics = json_object();
	for (i = 1; i <= sim.nclinics; i++) {
		snprintf(key, sizeof(key), "%u", i);
		json_object_set_new(clinics, key, stats_json(&sim.stats[i]));
	}
	dump(b, json_pack("{s:o,s:o}", "clinics", clinics, "total",
	    stats_json(&sim.stats[0])));
}

void
control_stats_reset(void)
{
	memset(sim.stats, 0, (sim.nclinics + 1) * sizeof(*sim.stats));
}
