/*
 * The JSON extractors of profile "neo": the calendar and a consultation's
 * page-data, through jansson.
 *
 * Profile values are key names or dotted paths with array indexes
 * ("pageData.providers[0].name"), alternatives in order.  An alternative
 * whose value is absent, null or "" falls through to the next; the first
 * other value is the field's, checked by extract_keep().  Numbers are
 * taken where text is expected (ids often come as numbers) and written in
 * decimal; booleans accept true/false, numbers and "true"/"1"/"yes".
 *
 * Item numbers in messages count from 0, as JSON arrays do.  Blocks and
 * rosters without an id are left out rather than failing the calendar:
 * they are skipped downstream anyway.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "common/xmalloc.h"
#include "proto/frame_limits.h"

#include "worker/extract_int.h"
#include "worker/idexx.h"

#define PATH_SEGMENT_MAX	128

/* The value at a dotted path with [N] indexes, or NULL. */
static json_t *
json_path(json_t *v, const char *path)
{
	char seg[PATH_SEGMENT_MAX];
	const char *p = path;
	size_t n;
	char *end;
	unsigned long idx;

	while (v != NULL && *p != '\0') {
		n = strcspn(p, ".[");
		if (n > 0) {
			if (n >= sizeof(seg) || !json_is_object(v))
				return NULL;
			memcpy(seg, p, n);
			seg[n] = '\0';
			v = json_object_get(v, seg);
			p += n;
		}
		while (v != NULL && *p == '[') {
			if (p[1] < '0' || p[1] > '9')
				return NULL;
			idx = strtoul(p + 1, &end, 10);
			if (*end != ']' || !json_is_array(v))
				return NULL;
			v = json_array_get(v, idx);
			p = end + 1;
		}
		if (*p == '.')
			p++;
		else if (*p != '\0')
			return NULL;
	}
	return v;
}

/*
 * The text of v as a heap string (*ret, *ret_len), or 0 when v gives no
 * text: absent, null, "", or an object, array or boolean.
 */
static int
json_text(json_t *v, char **ret, size_t *ret_len)
{
	char num[64];
	int n;

	if (json_is_string(v)) {
		if (json_string_length(v) == 0)
			return 0;
		*ret_len = json_string_length(v);
		*ret = xmalloc(*ret_len + 1);
		memcpy(*ret, json_string_value(v), *ret_len);
		(*ret)[*ret_len] = '\0';
		return 1;
	}
	if (json_is_integer(v))
		n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
	else if (json_is_real(v))
		n = snprintf(num, sizeof(num), "%.15g", json_real_value(v));
	else
		return 0;
	*ret = xstrdup(num);
	*ret_len = (size_t)n;
	return 1;
}

static bool
json_flag(json_t *v)
{
	const char *s;

	if (json_is_true(v))
		return true;
	if (json_is_integer(v))
		return json_integer_value(v) != 0;
	if (json_is_string(v)) {
		s = json_string_value(v);
		return strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0 ||
		    strcasecmp(s, "yes") == 0;
	}
	return false;
}

struct jctx {
	const struct profile *prof;
	const char *section;
	const char *body;	/* cleaned */
	size_t len;
	struct extract_error *err;
};

/*
 * Fill the char * at base + f->off from the first alternative of
 * section.key that gives text.  where names the item in messages.
 */
static int
json_field(struct jctx *c, json_t *obj, const struct field_def *f,
    const char *key, void *base, const char *where)
{
	struct profile_alts a = profile_get(c->prof, c->section, key);
	char alts[160], *s;
	const char *why;
	size_t i, len;
	int r;

	for (i = 0; i < a.n; i++) {
		if (!json_text(json_path(obj, a.v[i]), &s, &len))
			continue;
		r = extract_keep(f, s, len, (char **)((char *)base + f->off),
		    &why);
		if (r != 0)
			extract_fail(c->err, c->body, c->len, false,
			    "%s.%s: %s %s%s", c->section, key, a.v[i], why,
			    where);
		return r;
	}
	if (f->flags & FIELD_REQUIRED) {
		extract_fail(c->err, c->body, c->len, false,
		    "%s.%s: none of %s present%s", c->section, key,
		    extract_alts_text(a, "|", alts, sizeof(alts)), where);
		return -EBADMSG;
	}
	return 0;
}

static bool
json_bool(struct jctx *c, json_t *obj, const char *key)
{
	struct profile_alts a = profile_get(c->prof, c->section, key);
	json_t *v;
	size_t i;

	for (i = 0; i < a.n; i++)
		if ((v = json_path(obj, a.v[i])) != NULL && !json_is_null(v))
			return json_flag(v);
	return false;
}

static json_t *
json_parse(struct jctx *c)
{
	json_error_t e;
	json_t *root;

	root = json_loadb(c->body, c->len, JSON_ALLOW_NUL, &e);
	if (root == NULL)
		extract_fail(c->err, c->body, c->len, false,
		    "%s: not JSON at line %d column %d: %s", c->section,
		    e.line, e.column, e.text);
	return root;
}

static int
json_begin(struct jctx *c, const struct profile *prof, const char *section,
    const char *body, size_t len, struct extract_error *err)
{
	c->prof = prof;
	c->section = section;
	c->err = err;
	c->len = 0;
	return extract_begin(section, body, len, (char **)&c->body, &c->len,
	    err);
}

static int
calendar_item(struct jctx *c, json_t *item, size_t idx,
    struct idexx_appt *a, bool *ret_skip)
{
	char where[48];
	size_t i;
	int r;

	snprintf(where, sizeof(where), " in item %zu", idx);
	*ret_skip = false;
	if (!json_is_object(item)) {
		extract_fail(c->err, c->body, c->len, false,
		    "calendar: item %zu is not an object", idx);
		return -EBADMSG;
	}
	for (i = 0; i < extract_appt_nbools; i++)
		*(bool *)((char *)a + extract_appt_bools[i].off) =
		    json_bool(c, item, extract_appt_bools[i].key);
	for (i = 0; i < extract_appt_nfields; i++) {
		struct field_def f = extract_appt_fields[i];

		/* A block or roster without an id is left out, not an error. */
		if (a->is_block || a->is_roster)
			f.flags &= ~FIELD_REQUIRED;
		if ((r = json_field(c, item, &f, f.key, a, where)) != 0)
			return r;
	}
	*ret_skip = a->id == NULL;
	return 0;
}

int
extract_calendar(const struct profile *prof, const char *body, size_t len,
    struct idexx_appt **ret, size_t *ret_n, struct extract_error *err)
{
	struct idexx_appt *v = NULL;
	struct profile_alts w;
	struct jctx c;
	json_t *root = NULL, *arr = NULL, *item;
	char alts[160];
	size_t i, n = 0;
	bool skip;
	int r;

	if ((r = json_begin(&c, prof, "calendar", body, len, err)) != 0)
		return r;
	if ((root = json_parse(&c)) == NULL) {
		r = -EBADMSG;
		goto out;
	}
	if (json_is_array(root))
		arr = root;
	else if (json_is_object(root)) {
		w = profile_get(prof, "calendar", "wrapper");
		for (i = 0; i < w.n && arr == NULL; i++)
			if ((item = json_path(root, w.v[i])) != NULL &&
			    json_is_array(item))
				arr = item;
		if (arr == NULL) {
			extract_fail(err, c.body, c.len, false,
			    "calendar.wrapper: none of %s holds an array",
			    w.n > 0 ? extract_alts_text(w, "|", alts,
			    sizeof(alts)) : "(none)");
			r = -EBADMSG;
			goto out;
		}
	} else {
		extract_fail(err, c.body, c.len, false,
		    "calendar: neither an array nor an object");
		r = -EBADMSG;
		goto out;
	}
	if (json_array_size(arr) > EXTRACT_ITEMS_MAX) {
		extract_fail(err, c.body, c.len, false,
		    "calendar: %zu items over the %d limit",
		    json_array_size(arr), EXTRACT_ITEMS_MAX);
		r = -EBADMSG;
		goto out;
	}
	v = xcalloc(json_array_size(arr) + 1, sizeof(*v));
	json_array_foreach(arr, i, item) {
		if ((r = calendar_item(&c, item, i, &v[n], &skip)) != 0) {
			idexx_appt_release(&v[n]);
			goto out;
		}
		if (skip)
			idexx_appt_release(&v[n]);
		else
			n++;
	}
	*ret = v;
	*ret_n = n;
	v = NULL;
	n = 0;
	r = 0;
out:
	for (i = 0; i < n; i++)
		idexx_appt_release(&v[i]);
	free(v);
	json_decref(root);
	free((char *)c.body);
	return r;
}

static int
page_data_lines(struct jctx *c, json_t *root, struct idexx_consult *k)
{
	struct profile_alts a = profile_get(c->prof, c->section, "lines");
	struct idexx_line *l;
	json_t *arr = NULL, *item;
	char where[48];
	size_t i;
	int r;

	for (i = 0; i < a.n && arr == NULL; i++)
		if ((arr = json_path(root, a.v[i])) != NULL &&
		    json_is_null(arr))
			arr = NULL;
	if (arr == NULL)
		return 0;
	if (!json_is_array(arr)) {
		extract_fail(c->err, c->body, c->len, false,
		    "page_data.lines: not an array");
		return -EBADMSG;
	}
	if (json_array_size(arr) > FRAME_LINES_MAX) {
		extract_fail(c->err, c->body, c->len, false,
		    "page_data.lines: %zu lines over the %d limit",
		    json_array_size(arr), FRAME_LINES_MAX);
		return -EBADMSG;
	}
	k->lines = xcalloc(json_array_size(arr) + 1, sizeof(*k->lines));
	json_array_foreach(arr, i, item) {
		snprintf(where, sizeof(where), " in line %zu", i);
		l = &k->lines[k->n_lines++];
		if (!json_is_object(item)) {
			extract_fail(c->err, c->body, c->len, false,
			    "page_data.lines: line %zu is not an object", i);
			return -EBADMSG;
		}
		if ((r = json_field(c, item, &extract_line_name, "line_name",
		    l, where)) != 0 ||
		    (r = json_field(c, item, &extract_line_quantity,
		    "line_quantity", l, where)) != 0)
			return r;
		l->declined = json_bool(c, item, "line_declined");
	}
	return 0;
}

int
extract_page_data(const struct profile *prof, const char *body, size_t len,
    struct idexx_consult *ret, struct extract_error *err)
{
	struct idexx_consult k;
	struct jctx c;
	json_t *root = NULL;
	size_t i;
	int r;

	memset(&k, 0, sizeof(k));
	if ((r = json_begin(&c, prof, "page_data", body, len, err)) != 0)
		return r;
	if ((root = json_parse(&c)) == NULL) {
		r = -EBADMSG;
		goto out;
	}
	if (!json_is_object(root)) {
		extract_fail(err, c.body, c.len, false,
		    "page_data: not an object");
		r = -EBADMSG;
		goto out;
	}
	for (i = 0; i < extract_consult_nfields; i++) {
		const struct field_def *f = &extract_consult_fields[i];

		if ((r = json_field(&c, root, f, f->key, &k, "")) != 0)
			goto out;
	}
	if ((r = page_data_lines(&c, root, &k)) != 0)
		goto out;
	*ret = k;
	memset(&k, 0, sizeof(k));
	r = 0;
out:
	idexx_consult_release(&k);
	json_decref(root);
	free((char *)c.body);
	return r;
}
