/*
 * The site profile parser: a small INI reader written for this grammar
 * only (the worker links no INI library).
 *
 *	# comment, ; comment
 *	[section]
 *	key = value
 *	    continued value          (an indented line continues the last key)
 *
 * Every key is declared in the table below with its section, its type and
 * the kinds that need it.  Values of type NAMES are split at '|' and
 * locators (LOC) at "||", blanks trimmed around each alternative; a LOC
 * alternative must compile as XPath 1.0.  Unknown sections and keys, a
 * repeated key, an empty alternative, a line over PROFILE_LINE_MAX and a
 * key the kind needs but lacks are errors that name the line
 * ("profile:12: ...").  Everything is bounded: the text by
 * FRAME_PROFILE_MAX, a key's alternatives by PROFILE_ALTS_MAX, the keys by
 * PROFILE_KEYS_MAX.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/xpath.h>

#include "common/utf8.h"
#include "common/xmalloc.h"
#include "proto/frame_limits.h"

#include "worker/extract_int.h"
#include "worker/profile.h"

#define PROFILE_LINE_MAX	4096
#define PROFILE_VALUE_MAX	8192	/* a value with its continuations */
#define PROFILE_ALTS_MAX	16
#define PROFILE_KEYS_MAX	200

enum key_type {
	KEY_STR,		/* one value */
	KEY_NAMES,		/* '|' between alternatives */
	KEY_LOC,		/* "||" between XPath alternatives */
};

#define REQ_JSON	0x1
#define REQ_HTML	0x2
#define REQ_BOTH	(REQ_JSON | REQ_HTML)

struct key_def {
	const char *section;
	const char *key;
	enum key_type type;
	int required;
};

static const struct key_def key_defs[] = {
	{ "profile", "name", KEY_STR, REQ_BOTH },
	{ "profile", "kind", KEY_STR, REQ_BOTH },

	{ "endpoints", "login", KEY_STR, REQ_BOTH },
	{ "endpoints", "logout", KEY_STR, 0 },
	{ "endpoints", "calendar", KEY_STR, REQ_JSON },
	{ "endpoints", "page_data", KEY_STR, REQ_JSON },
	{ "endpoints", "dashboard", KEY_STR, REQ_HTML },
	{ "endpoints", "consultations", KEY_STR, REQ_HTML },
	{ "endpoints", "consultation", KEY_STR, REQ_HTML },

	{ "login", "form", KEY_LOC, 0 },
	{ "login", "username_field", KEY_NAMES, REQ_BOTH },
	{ "login", "password_field", KEY_NAMES, REQ_BOTH },
	{ "login", "company_field", KEY_NAMES, 0 },
	{ "login", "csrf_field", KEY_NAMES, 0 },
	{ "login", "session_cookie", KEY_NAMES, 0 },
	{ "login", "error", KEY_LOC, REQ_BOTH },
	{ "login", "expired", KEY_LOC, REQ_HTML },
	{ "login", "logged_in", KEY_LOC, 0 },

	{ "calendar", "wrapper", KEY_NAMES, 0 },
	{ "calendar", "id", KEY_NAMES, REQ_JSON },
	{ "calendar", "consultation_id", KEY_NAMES, REQ_JSON },
	{ "calendar", "start", KEY_NAMES, 0 },
	{ "calendar", "end", KEY_NAMES, 0 },
	{ "calendar", "patient_id", KEY_NAMES, 0 },
	{ "calendar", "patient_name", KEY_NAMES, 0 },
	{ "calendar", "client_id", KEY_NAMES, 0 },
	{ "calendar", "first_name", KEY_NAMES, 0 },
	{ "calendar", "last_name", KEY_NAMES, 0 },
	{ "calendar", "email", KEY_NAMES, 0 },
	{ "calendar", "phone", KEY_NAMES, 0 },
	{ "calendar", "provider", KEY_NAMES, 0 },
	{ "calendar", "resource_id", KEY_NAMES, 0 },
	{ "calendar", "type_description", KEY_NAMES, 0 },
	{ "calendar", "reason", KEY_NAMES, 0 },
	{ "calendar", "status", KEY_NAMES, 0 },
	{ "calendar", "is_block", KEY_NAMES, 0 },
	{ "calendar", "is_roster", KEY_NAMES, 0 },
	{ "calendar", "cancelled", KEY_NAMES, 0 },

#define CONSULT_KEYS(section, type, req)				\
	{ section, "id", type, req },					\
	{ section, "appointment_id", type, 0 },				\
	{ section, "date", type, 0 },					\
	{ section, "status", type, 0 },					\
	{ section, "reason", type, 0 },					\
	{ section, "notes", type, 0 },					\
	{ section, "discharge_summary", type, 0 },			\
	{ section, "provider", type, 0 },				\
	{ section, "patient_id", type, 0 },				\
	{ section, "patient_name", type, 0 },				\
	{ section, "species", type, 0 },				\
	{ section, "breed", type, 0 },					\
	{ section, "client_id", type, 0 },				\
	{ section, "first_name", type, 0 },				\
	{ section, "last_name", type, 0 },				\
	{ section, "phone", type, 0 },					\
	{ section, "email", type, 0 },					\
	{ section, "lines", type, 0 },					\
	{ section, "line_name", type, req },				\
	{ section, "line_quantity", type, 0 },				\
	{ section, "line_declined", type, 0 }
	CONSULT_KEYS("page_data", KEY_NAMES, REQ_JSON),
	{ "detail", "root", KEY_LOC, REQ_HTML },
	CONSULT_KEYS("detail", KEY_LOC, REQ_HTML),
#undef CONSULT_KEYS

	{ "list", "row", KEY_LOC, REQ_HTML },
	{ "list", "consultation_id", KEY_LOC, REQ_HTML },
	{ "list", "patient_name", KEY_LOC, 0 },
	{ "list", "date", KEY_LOC, 0 },
	{ "list", "has_notes", KEY_LOC, 0 },
	{ "list", "next", KEY_LOC, 0 },
	{ "list", "empty", KEY_LOC, 0 },
};
#define NKEY_DEFS (sizeof(key_defs) / sizeof(key_defs[0]))

struct profile_entry {
	const struct key_def *def;
	char **alts;
	size_t n;
	unsigned int line;
};

struct profile {
	char *name;
	enum profile_kind kind;
	struct profile_entry entries[PROFILE_KEYS_MAX];
	size_t n;
};

static int
profile_err(char *err, size_t errsz, unsigned int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
profile_err(char *err, size_t errsz, unsigned int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err == NULL || errsz == 0)
		return -EINVAL;
	n = snprintf(err, errsz, "profile:%u: ", line);
	if (n >= 0 && (size_t)n < errsz) {
		va_start(ap, fmt);
		vsnprintf(err + n, errsz - n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static const struct key_def *
key_lookup(const char *section, const char *key)
{
	size_t i;

	for (i = 0; i < NKEY_DEFS; i++)
		if (strcmp(key_defs[i].section, section) == 0 &&
		    strcmp(key_defs[i].key, key) == 0)
			return &key_defs[i];
	return NULL;
}

static bool
section_known(const char *section)
{
	size_t i;

	for (i = 0; i < NKEY_DEFS; i++)
		if (strcmp(key_defs[i].section, section) == 0)
			return true;
	return false;
}

static struct profile_entry *
entry_find(const struct profile *p, const char *section, const char *key)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (strcmp(p->entries[i].def->section, section) == 0 &&
		    strcmp(p->entries[i].def->key, key) == 0)
			return (struct profile_entry *)&p->entries[i];
	return NULL;
}

static bool
xpath_valid(const char *expr)
{
	xmlXPathCompExprPtr comp;

	extract_xml_init();
	if ((comp = xmlXPathCompile((const xmlChar *)expr)) == NULL)
		return false;
	xmlXPathFreeCompExpr(comp);
	return true;
}

/* Split value into e's alternatives, as e->def's type says. */
static int
entry_split(struct profile_entry *e, const char *value, char *err,
    size_t errsz)
{
	const struct key_def *d = e->def;
	const char *p = value, *end, *sep;
	size_t seplen, len;

	seplen = d->type == KEY_LOC ? 2 : 1;
	for (;;) {
		if (d->type == KEY_STR)
			sep = NULL;
		else if (d->type == KEY_LOC)
			sep = strstr(p, "||");
		else
			sep = strchr(p, '|');
		end = sep != NULL ? sep : p + strlen(p);
		while (p < end && is_blank(*p))
			p++;
		len = end - p;
		while (len > 0 && is_blank(p[len - 1]))
			len--;
		if (len == 0)
			return profile_err(err, errsz, e->line,
			    "[%s] %s: empty alternative %zu", d->section, d->key,
			    e->n + 1);
		if (e->n == PROFILE_ALTS_MAX)
			return profile_err(err, errsz, e->line,
			    "[%s] %s: more than %d alternatives", d->section,
			    d->key, PROFILE_ALTS_MAX);
		e->alts[e->n++] = xstrndup(p, len);
		if (d->type == KEY_LOC && !xpath_valid(e->alts[e->n - 1]))
			return profile_err(err, errsz, e->line,
			    "[%s] %s: alternative %zu is not XPath 1.0",
			    d->section, d->key, e->n);
		if (sep == NULL)
			break;
		p = sep + seplen;
	}
	return 0;
}

static int
profile_add(struct profile *p, const char *section, const char *key,
    const char *value, unsigned int line, char *err, size_t errsz)
{
	const struct key_def *d;
	struct profile_entry *e;

	if ((d = key_lookup(section, key)) == NULL)
		return profile_err(err, errsz, line, "[%s]: unknown key '%s'",
		    section, key);
	if ((e = entry_find(p, section, key)) != NULL)
		return profile_err(err, errsz, line,
		    "[%s] %s: repeated (first at line %u)", section, key,
		    e->line);
	if (p->n == PROFILE_KEYS_MAX)
		return profile_err(err, errsz, line, "more than %d keys",
		    PROFILE_KEYS_MAX);
	e = &p->entries[p->n++];
	e->def = d;
	e->line = line;
	e->alts = xcalloc(PROFILE_ALTS_MAX, sizeof(*e->alts));
	return entry_split(e, value, err, errsz);
}

static bool
name_valid(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		    *s == '-' || *s == '_'))
			return false;
	return true;
}

/* What the whole profile must satisfy once every line is read. */
static int
profile_check(struct profile *p, unsigned int lines, char *err, size_t errsz)
{
	struct profile_entry *e;
	const char *kind;
	size_t i;
	int need;

	if ((e = entry_find(p, "profile", "name")) == NULL)
		return profile_err(err, errsz, lines, "[profile] name: missing");
	if (!name_valid(e->alts[0]))
		return profile_err(err, errsz, e->line,
		    "[profile] name: '%s' is not [a-z0-9_-]+", e->alts[0]);
	p->name = xstrdup(e->alts[0]);
	if ((e = entry_find(p, "profile", "kind")) == NULL)
		return profile_err(err, errsz, lines, "[profile] kind: missing");
	kind = e->alts[0];
	if (strcmp(kind, "json") == 0)
		p->kind = PROFILE_JSON;
	else if (strcmp(kind, "html") == 0)
		p->kind = PROFILE_HTML;
	else
		return profile_err(err, errsz, e->line,
		    "[profile] kind: '%s' is neither json nor html", kind);
	for (i = 0; i < p->n; i++) {
		e = &p->entries[i];
		if (strcmp(e->def->section, "endpoints") != 0)
			continue;
		if (e->alts[0][0] != '/')
			return profile_err(err, errsz, e->line,
			    "[endpoints] %s: '%s' does not start with '/'",
			    e->def->key, e->alts[0]);
		if ((strcmp(e->def->key, "page_data") == 0 ||
		    strcmp(e->def->key, "consultation") == 0) &&
		    strstr(e->alts[0], "{id}") == NULL)
			return profile_err(err, errsz, e->line,
			    "[endpoints] %s: '%s' has no {id}", e->def->key,
			    e->alts[0]);
	}
	need = p->kind == PROFILE_JSON ? REQ_JSON : REQ_HTML;
	for (i = 0; i < NKEY_DEFS; i++) {
		if ((key_defs[i].required & need) == 0)
			continue;
		if (entry_find(p, key_defs[i].section, key_defs[i].key) == NULL)
			return profile_err(err, errsz, lines,
			    "[%s] %s: missing (kind %s needs it)",
			    key_defs[i].section, key_defs[i].key, kind);
	}
	return 0;
}

int
profile_parse(const char *text, size_t len, struct profile **ret, char *err,
    size_t errsz)
{
	struct profile *p = NULL;
	char line[PROFILE_LINE_MAX + 1], section[64] = "", key[64] = "";
	char value[PROFILE_VALUE_MAX + 1];
	unsigned int lineno = 0, keyline = 0;
	size_t pos = 0, n;
	char *s, *eq, *close;
	int r;

	if (len > FRAME_PROFILE_MAX) {
		r = profile_err(err, errsz, 0, "text of %zu bytes over the %d "
		    "limit", len, FRAME_PROFILE_MAX);
		goto out;
	}
	if (!utf8_valid(text, len)) {
		r = profile_err(err, errsz, 0, "not valid UTF-8 text");
		goto out;
	}
	p = xcalloc(1, sizeof(*p));
	value[0] = '\0';
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);

		lineno++;
		n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
		if (n > PROFILE_LINE_MAX) {
			r = profile_err(err, errsz, lineno, "line over %d bytes",
			    PROFILE_LINE_MAX);
			goto out;
		}
		memcpy(line, text + pos, n);
		pos += n + (nl != NULL ? 1 : 0);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		line[n] = '\0';

		s = line;
		while (is_blank(*s))
			s++;
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (s != line && *key != '\0') {
			/* A continuation of the last key's value. */
			if (strlen(value) + 1 + strlen(s) > PROFILE_VALUE_MAX) {
				r = profile_err(err, errsz, lineno,
				    "[%s] %s: value over %d bytes", section,
				    key, PROFILE_VALUE_MAX);
				goto out;
			}
			strcat(value, " ");
			strcat(value, s);
			continue;
		}
		if (*key != '\0') {
			if ((r = profile_add(p, section, key, value, keyline,
			    err, errsz)) != 0)
				goto out;
			*key = '\0';
		}
		if (s != line) {
			r = profile_err(err, errsz, lineno,
			    "indented line continues no key");
			goto out;
		}
		if (*s == '[') {
			close = strchr(s, ']');
			if (close == NULL || close == s + 1 ||
			    (size_t)(close - s - 1) >= sizeof(section)) {
				r = profile_err(err, errsz, lineno,
				    "bad section header");
				goto out;
			}
			for (eq = close + 1; is_blank(*eq); eq++)
				;
			if (*eq != '\0') {
				r = profile_err(err, errsz, lineno,
				    "text after the section header");
				goto out;
			}
			*close = '\0';
			if (!section_known(s + 1)) {
				r = profile_err(err, errsz, lineno,
				    "unknown section [%s]", s + 1);
				goto out;
			}
			memcpy(section, s + 1, close - s);
			continue;
		}
		if ((eq = strchr(s, '=')) == NULL) {
			r = profile_err(err, errsz, lineno,
			    "expected 'key = value' or '[section]'");
			goto out;
		}
		if (*section == '\0') {
			r = profile_err(err, errsz, lineno,
			    "key outside any section");
			goto out;
		}
		n = eq - s;
		while (n > 0 && is_blank(s[n - 1]))
			n--;
		if (n == 0 || n >= sizeof(key)) {
			r = profile_err(err, errsz, lineno, "bad key");
			goto out;
		}
		memcpy(key, s, n);
		key[n] = '\0';
		for (s = eq + 1; is_blank(*s); s++)
			;
		if (strlen(s) > PROFILE_VALUE_MAX) {
			r = profile_err(err, errsz, lineno, "value too long");
			goto out;
		}
		memcpy(value, s, strlen(s) + 1);
		keyline = lineno;
		if (key_lookup(section, key) == NULL) {
			r = profile_err(err, errsz, lineno,
			    "[%s]: unknown key '%s'", section, key);
			goto out;
		}
	}
	if (*key != '\0' &&
	    (r = profile_add(p, section, key, value, keyline, err, errsz)) != 0)
		goto out;
	if ((r = profile_check(p, lineno, err, errsz)) != 0)
		goto out;
	*ret = p;
	p = NULL;
	r = 0;
out:
	profile_free(p);
	return r;
}

void
profile_free(struct profile *p)
{
	size_t i, j;

	if (p == NULL)
		return;
	for (i = 0; i < p->n; i++) {
		if (p->entries[i].alts == NULL)
			continue;
		for (j = 0; j < p->entries[i].n; j++)
			free(p->entries[i].alts[j]);
		free(p->entries[i].alts);
	}
	free(p->name);
	free(p);
}

const char *
profile_name(const struct profile *p)
{
	return p->name;
}

enum profile_kind
profile_kind(const struct profile *p)
{
	return p->kind;
}

struct profile_alts
profile_get(const struct profile *p, const char *section, const char *key)
{
	struct profile_alts a = { NULL, 0 };
	struct profile_entry *e;

	if ((e = entry_find(p, section, key)) != NULL) {
		a.v = (const char *const *)e->alts;
		a.n = e->n;
	}
	return a;
}

const char *
profile_str(const struct profile *p, const char *section, const char *key)
{
	struct profile_alts a = profile_get(p, section, key);

	return a.n > 0 ? a.v[0] : NULL;
}
