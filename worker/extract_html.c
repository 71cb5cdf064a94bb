/*
 * The HTML extractors: the login form (both profiles), the login-failed
 * and session-expired markers, and the prd-html consultations list and
 * detail page, through libxml2's HTML parser and XPath 1.0.
 *
 * A page is malformed when it is empty or its root element is not <html>
 * (the parser is lenient and would otherwise make a page out of any
 * bytes).  Locators are tried in order; the first that selects something
 * wins.  A locator's value is: the first node's text when it selects
 * nodes (an attribute's value, or an element's text), else the string or
 * number it evaluates to.  Names are whitespace-normalised; notes keep
 * their line breaks (<br>, block boundaries and newlines in the text),
 * with blanks trimmed around each line.  Flags (has_notes, line_declined)
 * take XPath's boolean() of the first locator that is true, so a flag
 * read from an attribute is written "@data-declined = 'true'".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/HTMLparser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "proto/frame_limits.h"

#include "worker/extract_int.h"
#include "worker/idexx.h"

#define HTML_OPTIONS	(HTML_PARSE_NONET | HTML_PARSE_NOERROR | \
    HTML_PARSE_NOWARNING | HTML_PARSE_RECOVER | HTML_PARSE_NOIMPLIED)
#define CSRF_VALUE_MAX	FRAME_LINE_MAX

struct hctx {
	const struct profile *prof;
	const char *section;
	char *body;		/* cleaned */
	size_t len;
	htmlDocPtr doc;
	xmlXPathContextPtr xp;
	struct extract_error *err;
};

static void
html_end(struct hctx *c)
{
	if (c->xp != NULL)
		xmlXPathFreeContext(c->xp);
	if (c->doc != NULL)
		xmlFreeDoc(c->doc);
	free(c->body);
	memset(c, 0, sizeof(*c));
}

static int
html_begin(struct hctx *c, const struct profile *prof, const char *section,
    const char *body, size_t len, struct extract_error *err)
{
	xmlNodePtr root;
	int r;

	memset(c, 0, sizeof(*c));
	c->prof = prof;
	c->section = section;
	c->err = err;
	extract_xml_init();
	if ((r = extract_begin(section, body, len, &c->body, &c->len,
	    err)) != 0)
		return r;
	if (c->len > 0)
		c->doc = htmlReadMemory(c->body, (int)c->len, NULL, "UTF-8",
		    HTML_OPTIONS);
	root = c->doc != NULL ? xmlDocGetRootElement(c->doc) : NULL;
	if (root == NULL || root->name == NULL ||
	    strcasecmp((const char *)root->name, "html") != 0) {
		extract_fail(err, c->body, c->len, true,
		    "%s: not an HTML page (%s)", section, root == NULL ?
		    "no root element" : "root element is not <html>");
		return -EBADMSG;
	}
	if ((c->xp = xmlXPathNewContext(c->doc)) == NULL)
		return -ENOMEM;
	return 0;
}

/* Evaluate expr at node (NULL: the document). */
static xmlXPathObjectPtr
loc_eval(struct hctx *c, const char *expr, xmlNodePtr node)
{
	xmlXPathCompExprPtr comp;
	xmlXPathObjectPtr o;

	if ((comp = xmlXPathCompile((const xmlChar *)expr)) == NULL)
		return NULL;
	c->xp->node = node != NULL ? node : (xmlNodePtr)c->doc;
	c->xp->opLimit = EXTRACT_XPATH_OPS_MAX;
	c->xp->opCount = 0;
	o = xmlXPathCompiledEval(comp, c->xp);
	xmlXPathFreeCompExpr(comp);
	return o;
}

static bool
obj_true(xmlXPathObjectPtr o)
{
	if (o == NULL)
		return false;
	switch (o->type) {
	case XPATH_NODESET:
		return o->nodesetval != NULL && o->nodesetval->nodeNr > 0;
	case XPATH_BOOLEAN:
		return o->boolval != 0;
	case XPATH_NUMBER:
		return o->floatval != 0 && o->floatval == o->floatval;
	case XPATH_STRING:
		return o->stringval != NULL && o->stringval[0] != '\0';
	default:
		return false;
	}
}

/* The first alternative of key that is true at node. */
static bool
loc_flag(struct hctx *c, const char *key, xmlNodePtr node)
{
	struct profile_alts a = profile_get(c->prof, c->section, key);
	xmlXPathObjectPtr o;
	size_t i;
	bool t;

	for (i = 0; i < a.n; i++) {
		o = loc_eval(c, a.v[i], node);
		t = obj_true(o);
		xmlXPathFreeObject(o);
		if (t)
			return true;
	}
	return false;
}

/* The nodes of the first alternative of key selecting any, or NULL. */
static xmlXPathObjectPtr
loc_nodes(struct hctx *c, const char *key, xmlNodePtr node)
{
	struct profile_alts a = profile_get(c->prof, c->section, key);
	xmlXPathObjectPtr o;
	size_t i;

	for (i = 0; i < a.n; i++) {
		o = loc_eval(c, a.v[i], node);
		if (o != NULL && o->type == XPATH_NODESET &&
		    o->nodesetval != NULL && o->nodesetval->nodeNr > 0)
			return o;
		xmlXPathFreeObject(o);
	}
	return NULL;
}

static bool
is_space(int ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
	    ch == '\f';
}

/* Collapse whitespace runs to one space and trim, in place. */
static size_t
text_normalise(char *s)
{
	size_t i, o = 0;

	for (i = 0; s[i] != '\0'; i++) {
		if (is_space((unsigned char)s[i])) {
			if (o > 0 && s[o - 1] != ' ')
				s[o++] = ' ';
			continue;
		}
		s[o++] = s[i];
	}
	while (o > 0 && s[o - 1] == ' ')
		o--;
	s[o] = '\0';
	return o;
}

static bool
is_block(const xmlChar *name)
{
	static const char *const blocks[] = {
		"address", "article", "aside", "blockquote", "dd", "div", "dl",
		"dt", "fieldset", "footer", "form", "h1", "h2", "h3", "h4",
		"h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p",
		"pre", "section", "table", "tbody", "td", "th", "thead", "tr",
		"ul",
	};
	size_t i;

	for (i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++)
		if (strcasecmp((const char *)name, blocks[i]) == 0)
			return true;
	return false;
}

static void
soft_break(struct buf *b)
{
	if (b->len > 0 && b->data[b->len - 1] != '\n')
		buf_append(b, "\n", 1);
}

/*
 * The text of an element with its line breaks, bounded: a little over
 * limit bytes are collected, the caller cuts.
 */
static char *
text_with_breaks(xmlNodePtr top, size_t limit)
{
	struct buf raw, out;
	xmlNodePtr n = top->children;
	const char *s, *line, *nl;
	size_t len, a, z;

	buf_init(&raw, 0);
	while (n != NULL && raw.len <= limit + 8) {
		if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
			if (n->content != NULL)
				buf_puts(&raw, (const char *)n->content);
		} else if (n->type == XML_ELEMENT_NODE) {
			if (strcasecmp((const char *)n->name, "br") == 0)
				buf_append(&raw, "\n", 1);
			else if (is_block(n->name))
				soft_break(&raw);
			if (n->children != NULL) {
				n = n->children;
				continue;
			}
		}
		while (n != top && n->next == NULL) {
			n = n->parent;
			if (n != top && n->type == XML_ELEMENT_NODE &&
			    is_block(n->name))
				soft_break(&raw);
		}
		if (n == top)
			break;
		n = n->next;
	}
	/* Trim each line; collapse blanks inside it. */
	buf_init(&out, 0);
	s = raw.data != NULL ? raw.data : "";
	for (line = s; ; line = nl + 1) {
		nl = strchr(line, '\n');
		len = nl != NULL ? (size_t)(nl - line) : strlen(line);
		for (a = 0; a < len && is_space((unsigned char)line[a]); a++)
			;
		for (z = len; z > a && is_space((unsigned char)line[z - 1]);
		    z--)
			;
		for (; a < z; a++) {
			if (line[a] == '\t' || line[a] == '\r' ||
			    line[a] == '\f' || line[a] == ' ') {
				if (out.len > 0 && out.data[out.len - 1] != ' ')
					buf_append(&out, " ", 1);
				continue;
			}
			buf_append(&out, line + a, 1);
		}
		if (nl == NULL)
			break;
		buf_append(&out, "\n", 1);
	}
	while (out.len > 0 && out.data[out.len - 1] == '\n')
		out.data[--out.len] = '\0';
	buf_release(&raw);
	len = 0;
	while (len < out.len && out.data[len] == '\n')
		len++;
	s = xstrdup(out.data != NULL ? out.data + len : "");
	buf_release(&out);
	return (char *)s;
}

/* The text of an XPath result per the rules above, or NULL. */
static char *
obj_text(xmlXPathObjectPtr o, bool breaks, size_t limit)
{
	xmlNodePtr n;
	xmlChar *t;
	char *s, num[64];

	switch (o->type) {
	case XPATH_NODESET:
		if (o->nodesetval == NULL || o->nodesetval->nodeNr == 0)
			return NULL;
		n = o->nodesetval->nodeTab[0];
		if (n->type == XML_ELEMENT_NODE && breaks)
			return text_with_breaks(n, limit);
		if ((t = xmlNodeGetContent(n)) == NULL)
			return NULL;
		s = xstrdup((const char *)t);
		xmlFree(t);
		break;
	case XPATH_STRING:
		s = xstrdup(o->stringval != NULL ?
		    (const char *)o->stringval : "");
		break;
	case XPATH_NUMBER:
		if (o->floatval != o->floatval)
			return NULL;
		snprintf(num, sizeof(num), "%.15g", o->floatval);
		s = xstrdup(num);
		break;
	default:
		return NULL;
	}
	if (!breaks)
		text_normalise(s);
	return s;
}

/*
 * Fill the char * at base + f->off from the first locator of key giving
 * non-empty text at node.
 */
static int
html_field(struct hctx *c, xmlNodePtr node, const struct field_def *f,
    const char *key, void *base, const char *where)
{
	struct profile_alts a = profile_get(c->prof, c->section, key);
	xmlXPathObjectPtr o;
	const char *why;
	char alts[200], *s;
	size_t i;
	int r;

	for (i = 0; i < a.n; i++) {
		if ((o = loc_eval(c, a.v[i], node)) == NULL)
			continue;
		s = obj_text(o, (f->flags & FIELD_TEXT) != 0, f->max);
		xmlXPathFreeObject(o);
		if (s == NULL || *s == '\0') {
			free(s);
			continue;
		}
		r = extract_keep(f, s, strlen(s),
		    (char **)((char *)base + f->off), &why);
		if (r != 0)
			extract_fail(c->err, c->body, c->len, true,
			    "%s.%s: %s%s (locator %zu)", c->section, key, why,
			    where, i + 1);
		return r;
	}
	if (f->flags & FIELD_REQUIRED) {
		extract_fail(c->err, c->body, c->len, true,
		    "%s.%s: no locator matched%s (tried: %s)", c->section, key,
		    where, extract_alts_text(a, " || ", alts, sizeof(alts)));
		return -EBADMSG;
	}
	return 0;
}

void
login_form_release(struct login_form *f)
{
	if (f == NULL)
		return;
	free(f->action);
	free(f->username_field);
	free(f->password_field);
	free(f->company_field);
	free(f->csrf_name);
	if (f->csrf_value != NULL)
		xfree_secret(f->csrf_value, 0);
	memset(f, 0, sizeof(*f));
}

static bool
in_alts(struct profile_alts a, const char *name)
{
	size_t i;

	for (i = 0; i < a.n; i++)
		if (strcmp(a.v[i], name) == 0)
			return true;
	return false;
}

static char *
prop(xmlNodePtr n, const char *name)
{
	xmlChar *v = xmlGetProp(n, (const xmlChar *)name);
	char *s;

	if (v == NULL)
		return NULL;
	s = xstrdup((const char *)v);
	xmlFree(v);
	return s;
}

/*
 * The name of the first input of the form whose name is one of key's
 * alternatives, else of the first input of type type (may be NULL).
 */
static char *
form_input(struct hctx *c, xmlNodeSetPtr inputs, const char *key,
    const char *type)
{
	struct profile_alts a = profile_get(c->prof, "login", key);
	char *name, *t;
	size_t i, j;

	for (j = 0; j < a.n; j++)
		for (i = 0; i < (size_t)inputs->nodeNr; i++) {
			if ((name = prop(inputs->nodeTab[i], "name")) == NULL)
				continue;
			if (strcmp(name, a.v[j]) == 0)
				return name;
			free(name);
		}
	if (type == NULL)
		return NULL;
	for (i = 0; i < (size_t)inputs->nodeNr; i++) {
		t = prop(inputs->nodeTab[i], "type");
		if (t != NULL && strcasecmp(t, type) == 0 &&
		    (name = prop(inputs->nodeTab[i], "name")) != NULL) {
			free(t);
			if (*name != '\0')
				return name;
			free(name);
			continue;
		}
		free(t);
	}
	return NULL;
}

/* The hidden CSRF input: a profile name, else a name holding "csrf". */
static xmlNodePtr
form_csrf(struct hctx *c, xmlNodeSetPtr inputs)
{
	struct profile_alts a = profile_get(c->prof, "login", "csrf_field");
	xmlNodePtr found = NULL;
	char *name, *t;
	size_t i, pass;

	for (pass = 0; pass < 2 && found == NULL; pass++)
		for (i = 0; i < (size_t)inputs->nodeNr && found == NULL; i++) {
			t = prop(inputs->nodeTab[i], "type");
			name = prop(inputs->nodeTab[i], "name");
			if (t != NULL && name != NULL &&
			    strcasecmp(t, "hidden") == 0 &&
			    (pass == 0 ? in_alts(a, name) :
			    strcasestr(name, "csrf") != NULL))
				found = inputs->nodeTab[i];
			free(t);
			free(name);
		}
	return found;
}

static int
form_string(struct hctx *c, char **s, size_t max, const char *what)
{
	static const struct field_def def = { "", 0, 0, FIELD_REQUIRED };
	struct field_def f = def;
	const char *why;

	if (*s == NULL)
		return 0;
	f.max = max;
	if (extract_keep(&f, *s, strlen(*s), s, &why) != 0) {
		*s = NULL;
		extract_fail(c->err, c->body, c->len, true, "login.%s: %s",
		    what, why);
		return -EBADMSG;
	}
	return 0;
}

int
extract_login_form(const struct profile *prof, const char *body, size_t len,
    struct login_form *ret, struct extract_error *err)
{
	static const char default_form[] = "//form[.//input[@type='password']]";
	struct login_form f;
	struct hctx c;
	xmlXPathObjectPtr forms = NULL, inputs = NULL;
	xmlNodePtr form, csrf;
	int r;

	memset(&f, 0, sizeof(f));
	if ((r = html_begin(&c, prof, "login", body, len, err)) != 0)
		goto out;
	if (profile_get(prof, "login", "form").n > 0)
		forms = loc_nodes(&c, "form", NULL);
	else if ((forms = loc_eval(&c, default_form, NULL)) != NULL &&
	    (forms->type != XPATH_NODESET || forms->nodesetval == NULL ||
	    forms->nodesetval->nodeNr == 0)) {
		xmlXPathFreeObject(forms);
		forms = NULL;
	}
	if (forms == NULL) {
		extract_fail(err, c.body, c.len, true,
		    "login.form: no login form in the page");
		r = -EBADMSG;
		goto out;
	}
	form = forms->nodesetval->nodeTab[0];
	inputs = loc_eval(&c, ".//input", form);
	if (inputs == NULL || inputs->type != XPATH_NODESET ||
	    inputs->nodesetval == NULL) {
		extract_fail(err, c.body, c.len, true,
		    "login.form: the form has no inputs");
		r = -EBADMSG;
		goto out;
	}
	f.username_field = form_input(&c, inputs->nodesetval,
	    "username_field", "email");
	f.password_field = form_input(&c, inputs->nodesetval,
	    "password_field", "password");
	f.company_field = form_input(&c, inputs->nodesetval,
	    "company_field", NULL);
	if (f.username_field == NULL || f.password_field == NULL) {
		char alts[160];
		const char *key = f.username_field == NULL ?
		    "username_field" : "password_field";

		extract_fail(err, c.body, c.len, true,
		    "login.%s: none of %s present in the form", key,
		    extract_alts_text(profile_get(prof, "login", key), "|",
		    alts, sizeof(alts)));
		r = -EBADMSG;
		goto out;
	}
	if ((csrf = form_csrf(&c, inputs->nodesetval)) != NULL) {
		f.csrf_name = prop(csrf, "name");
		if ((f.csrf_value = prop(csrf, "value")) == NULL)
			f.csrf_value = xstrdup("");
	}
	f.action = prop(form, "action");
	if (f.action != NULL && *f.action == '\0') {
		free(f.action);
		f.action = NULL;
	}
	if ((r = form_string(&c, &f.action, FRAME_URL_MAX, "form action")) ||
	    (r = form_string(&c, &f.username_field, FRAME_NAME_MAX,
	    "username_field")) ||
	    (r = form_string(&c, &f.password_field, FRAME_NAME_MAX,
	    "password_field")) ||
	    (r = form_string(&c, &f.company_field, FRAME_NAME_MAX,
	    "company_field")) ||
	    (r = form_string(&c, &f.csrf_name, FRAME_NAME_MAX,
	    "csrf_field")) ||
	    (r = form_string(&c, &f.csrf_value, CSRF_VALUE_MAX,
	    "csrf_field value")))
		goto out;
	*ret = f;
	memset(&f, 0, sizeof(f));
	r = 0;
out:
	xmlXPathFreeObject(forms);
	xmlXPathFreeObject(inputs);
	login_form_release(&f);
	html_end(&c);
	return r;
}

bool
extract_html_matches(const struct profile *prof, const char *section,
    const char *key, const char *body, size_t len)
{
	struct hctx c;
	bool t = false;

	if (profile_get(prof, section, key).n == 0)
		return false;
	if (html_begin(&c, prof, section, body, len, NULL) == 0)
		t = loc_flag(&c, key, NULL);
	html_end(&c);
	return t;
}

bool
extract_login_failed(const struct profile *prof, const char *body,
    size_t len)
{
	return extract_html_matches(prof, "login", "error", body, len);
}

bool
extract_session_expired(const struct profile *prof, const char *body,
    size_t len)
{
	return extract_html_matches(prof, "login", "expired", body, len);
}

static int
list_row(struct hctx *c, xmlNodePtr node, size_t idx, struct idexx_row *row)
{
	static const struct field_def id_def = {
		"consultation_id", offsetof(struct idexx_row, consultation_id),
		FRAME_ID_MAX, FIELD_REQUIRED
	};
	static const struct field_def name_def = {
		"patient_name", offsetof(struct idexx_row, patient_name),
		FRAME_NAME_MAX, 0
	};
	static const struct field_def date_def = {
		"date", offsetof(struct idexx_row, date), FRAME_SHORT_MAX, 0
	};
	char where[48];
	int r;

	snprintf(where, sizeof(where), " in row %zu", idx);
	if ((r = html_field(c, node, &id_def, id_def.key, row, where)) ||
	    (r = html_field(c, node, &name_def, name_def.key, row, where)) ||
	    (r = html_field(c, node, &date_def, date_def.key, row, where)))
		return r;
	row->has_notes = loc_flag(c, "has_notes", node);
	return 0;
}

int
extract_consult_list(const struct profile *prof, const char *body,
    size_t len, struct idexx_row **ret, size_t *ret_n, char **ret_next,
    struct extract_error *err)
{
	static const struct field_def next_def = {
		"next", 0, FRAME_URL_MAX, FIELD_STRICT
	};
	struct idexx_row *v = NULL;
	xmlXPathObjectPtr rows = NULL;
	struct hctx c;
	char *next = NULL, alts[200];
	size_t i, n = 0, nr;
	int r;

	if ((r = html_begin(&c, prof, "list", body, len, err)) != 0)
		goto out;
	if ((rows = loc_nodes(&c, "row", NULL)) == NULL) {
		if (loc_flag(&c, "empty", NULL))
			goto done;
		extract_fail(err, c.body, c.len, true,
		    "list.row: no locator matched (tried: %s)",
		    extract_alts_text(profile_get(prof, "list", "row"),
		    " || ", alts, sizeof(alts)));
		r = -EBADMSG;
		goto out;
	}
	nr = (size_t)rows->nodesetval->nodeNr;
	if (nr > EXTRACT_ITEMS_MAX) {
		extract_fail(err, c.body, c.len, true,
		    "list.row: %zu rows over the %d limit", nr,
		    EXTRACT_ITEMS_MAX);
		r = -EBADMSG;
		goto out;
	}
	v = xcalloc(nr + 1, sizeof(*v));
	for (i = 0; i < nr; i++) {
		if ((r = list_row(&c, rows->nodesetval->nodeTab[i], i,
		    &v[n])) != 0) {
			idexx_row_release(&v[n]);
			goto out;
		}
		n++;
	}
done:
	/* No next link is the last page; a bad one is an error. */
	if ((r = html_field(&c, NULL, &next_def, "next", &next, "")) != 0)
		goto out;
	if (v == NULL)
		v = xcalloc(1, sizeof(*v));
	*ret = v;
	*ret_n = n;
	*ret_next = next;
	v = NULL;
	next = NULL;
	n = 0;
	r = 0;
out:
	for (i = 0; i < n; i++)
		idexx_row_release(&v[i]);
	free(v);
	free(next);
	xmlXPathFreeObject(rows);
	html_end(&c);
	return r;
}

static int
detail_lines(struct hctx *c, xmlNodePtr root, struct idexx_consult *k)
{
	xmlXPathObjectPtr o;
	struct idexx_line *l;
	char where[48];
	size_t i, nr;
	int r = 0;

	if ((o = loc_nodes(c, "lines", root)) == NULL)
		return 0;
	nr = (size_t)o->nodesetval->nodeNr;
	if (nr > FRAME_LINES_MAX) {
		extract_fail(c->err, c->body, c->len, true,
		    "detail.lines: %zu lines over the %d limit", nr,
		    FRAME_LINES_MAX);
		r = -EBADMSG;
		goto out;
	}
	k->lines = xcalloc(nr + 1, sizeof(*k->lines));
	for (i = 0; i < nr; i++) {
		snprintf(where, sizeof(where), " in line %zu", i);
		l = &k->lines[k->n_lines++];
		if ((r = html_field(c, o->nodesetval->nodeTab[i],
		    &extract_line_name, "line_name", l, where)) != 0 ||
		    (r = html_field(c, o->nodesetval->nodeTab[i],
		    &extract_line_quantity, "line_quantity", l, where)) != 0)
			goto out;
		l->declined = loc_flag(c, "line_declined",
		    o->nodesetval->nodeTab[i]);
	}
out:
	xmlXPathFreeObject(o);
	return r;
}

int
extract_consult_detail(const struct profile *prof, const char *body,
    size_t len, struct idexx_consult *ret, struct extract_error *err)
{
	struct idexx_consult k;
	xmlXPathObjectPtr roots = NULL;
	xmlNodePtr root;
	struct hctx c;
	char alts[200];
	size_t i;
	int r;

	memset(&k, 0, sizeof(k));
	if ((r = html_begin(&c, prof, "detail", body, len, err)) != 0)
		goto out;
	if ((roots = loc_nodes(&c, "root", NULL)) == NULL) {
		extract_fail(err, c.body, c.len, true,
		    "detail.root: no locator matched (tried: %s)",
		    extract_alts_text(profile_get(prof, "detail", "root"),
		    " || ", alts, sizeof(alts)));
		r = -EBADMSG;
		goto out;
	}
	root = roots->nodesetval->nodeTab[0];
	for (i = 0; i < extract_consult_nfields; i++) {
		const struct field_def *f = &extract_consult_fields[i];

		if ((r = html_field(&c, root, f, f->key, &k, "")) != 0)
			goto out;
	}
	if ((r = detail_lines(&c, root, &k)) != 0)
		goto out;
	*ret = k;
	memset(&k, 0, sizeof(k));
	r = 0;
out:
	idexx_consult_release(&k);
	xmlXPathFreeObject(roots);
	html_end(&c);
	return r;
}
