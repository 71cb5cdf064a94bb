/*
 * Redacted snapshots (redact.h), in passes over a working copy, each
 * writing a new buffer:
 *
 *	1. bytes that are not valid UTF-8 (and NUL) become U+FFFD;
 *	2. the caller's literal secrets, as they are and form-encoded;
 *	3. header lines Cookie:, Set-Cookie:, Authorization: keep only
 *	   their name;
 *	4. markup and key/value text: in every tag, the value of an
 *	   attribute with a sensitive name, and the value= / content= of an
 *	   input or meta whose name, id or type is sensitive; the value of a
 *	   JSON member with a sensitive key (a string or scalar, not an
 *	   object or array); "name=value" outside tags (query strings, form
 *	   bodies) with a sensitive name;
 *	5. "Bearer <token>";
 *	6. anything shaped like a JWT ("eyJ" base64url, two dots).
 *
 * A name is sensitive when it contains, case-insensitively, one of
 * sensitive_words.  Redacting before cutting matters: a cut through a
 * secret would otherwise leave its head behind.  The cut itself falls on
 * a UTF-8 boundary.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/utf8.h"

#include "worker/redact.h"

#define REDACTED	"[redacted]"
#define TAG_MAX		8192	/* longer tags are copied untouched */

static const char *const sensitive_words[] = {
	"password", "passwd", "csrf", "xsrf", "token", "secret", "session",
	"auth", "cookie", "api_key", "apikey",
};

static bool
sensitive(const char *s, size_t n)
{
	size_t i, j, w;

	for (i = 0; i < sizeof(sensitive_words) / sizeof(*sensitive_words);
	    i++) {
		w = strlen(sensitive_words[i]);
		for (j = 0; j + w <= n; j++)
			if (strncasecmp(s + j, sensitive_words[i], w) == 0)
				return true;
	}
	return false;
}

static int
pass_utf8(const char *body, size_t len, struct buf *out)
{
	const unsigned char *s = (const unsigned char *)body;
	size_t i = 0, n;
	int r = 0;

	while (i < len && r == 0) {
		n = s[i] == '\0' ? 0 : utf8_sequence_len(s + i, len - i);
		if (n == 0) {
			r = buf_append(out, "\xef\xbf\xbd", 3);
			i++;
		} else {
			r = buf_append(out, s + i, n);
			i += n;
		}
	}
	return r;
}

/* Replace every occurrence of needle in in by REDACTED. */
static int
replace_all(const struct buf *in, const char *needle, size_t nlen,
    struct buf *out)
{
	const char *p, *end, *hit;
	int r = 0;

	if (in->len == 0)
		return 0;	/* in->data may be NULL */
	p = in->data;
	end = in->data + in->len;
	while (r == 0 && p < end &&
	    (hit = memmem(p, end - p, needle, nlen)) != NULL) {
		if ((r = buf_append(out, p, hit - p)) == 0)
			r = buf_puts(out, REDACTED);
		p = hit + nlen;
	}
	if (r == 0)
		r = buf_append(out, p, end - p);
	return r;
}

static void
form_encode(const char *s, struct buf *out)
{
	static const char hex[] = "0123456789ABCDEF";
	char e[3];

	for (; *s != '\0'; s++) {
		unsigned char c = *s;

		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
			buf_append(out, s, 1);
		else if (c == ' ')
			buf_append(out, "+", 1);
		else {
			e[0] = '%';
			e[1] = hex[c >> 4];
			e[2] = hex[c & 0xf];
			buf_append(out, e, 3);
		}
	}
}

static bool
is_name_char(char c)
{
	return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.' ||
	    c == ':';
}

static bool
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f';
}

/* Header lines whose value is a credential keep only their name. */
static int
pass_headers(const struct buf *in, struct buf *out)
{
	static const char *const names[] = {
		"set-cookie:", "cookie:", "authorization:",
		"proxy-authorization:",
	};
	const char *p, *end, *nl, *s;
	size_t i, n;
	int r = 0;

	if (in->len == 0)
		return 0;	/* in->data may be NULL */
	p = in->data;
	end = in->data + in->len;
	while (r == 0 && p < end) {
		nl = memchr(p, '\n', end - p);
		n = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		for (s = p; s < p + n && (*s == ' ' || *s == '\t'); s++)
			;
		for (i = 0; i < sizeof(names) / sizeof(*names); i++)
			if ((size_t)(p + n - s) >= strlen(names[i]) &&
			    strncasecmp(s, names[i], strlen(names[i])) == 0)
				break;
		if (i < sizeof(names) / sizeof(*names)) {
			r = buf_append(out, p, s - p + strlen(names[i]));
			if (r == 0)
				r = buf_puts(out, " " REDACTED);
			if (r == 0 && nl != NULL)
				r = buf_puts(out, nl[-1] == '\r' ? "\r\n" :
				    "\n");
		} else
			r = buf_append(out, p, n);
		p += n;
	}
	return r;
}

/* The end of a quoted string starting at p (the quote), or NULL. */
static const char *
quoted_end(const char *p, const char *end)
{
	char q = *p++;

	for (; p < end; p++) {
		if (*p == '\\' && q == '"' && p + 1 < end) {
			p++;
			continue;
		}
		if (*p == q)
			return p + 1;
	}
	return NULL;
}

struct attr {
	const char *name, *value;	/* value: inside the quotes */
	size_t nlen, vlen;
};

#define TAG_ATTRS_MAX	64

/*
 * Rewrite the tag at p (from '<' to '>'), which is not longer than
 * TAG_MAX; returns the end of the tag, or NULL when it is not one.
 */
static const char *
redact_tag(const char *p, const char *end, struct buf *out)
{
	struct attr a[TAG_ATTRS_MAX];
	const char *s = p + 1, *tag, *vs, *ve, *last;
	size_t tlen, n = 0, i;
	bool input, hot = false;

	tag = s;
	while (s < end && isalnum((unsigned char)*s))
		s++;
	tlen = s - tag;
	if (tlen == 0)
		return NULL;
	input = (tlen == 5 && strncasecmp(tag, "input", 5) == 0) ||
	    (tlen == 4 && strncasecmp(tag, "meta", 4) == 0);
	for (;;) {
		while (s < end && (is_ws(*s) || *s == '/'))
			s++;
		if (s >= end || s - p > TAG_MAX)
			return NULL;
		if (*s == '>')
			break;
		if (n == TAG_ATTRS_MAX)
			return NULL;
		a[n].name = s;
		while (s < end && !is_ws(*s) && *s != '=' && *s != '>' &&
		    *s != '/')
			s++;
		a[n].nlen = s - a[n].name;
		a[n].value = NULL;
		a[n].vlen = 0;
		while (s < end && is_ws(*s))
			s++;
		if (s < end && *s == '=') {
			for (s++; s < end && is_ws(*s); s++)
				;
			if (s < end && (*s == '"' || *s == '\'')) {
				if ((ve = quoted_end(s, end)) == NULL)
					return NULL;
				vs = s + 1;
				a[n].value = vs;
				a[n].vlen = ve - 1 - vs;
				s = ve;
			} else {
				vs = s;
				while (s < end && !is_ws(*s) && *s != '>')
					s++;
				a[n].value = vs;
				a[n].vlen = s - vs;
			}
		}
		if (a[n].nlen == 0)
			return NULL;
		n++;
	}
	/* An input or meta whose name, id or type is sensitive. */
	for (i = 0; i < n && input; i++)
		if (a[i].value != NULL &&
		    ((a[i].nlen == 4 && strncasecmp(a[i].name, "name", 4) == 0) ||
		    (a[i].nlen == 2 && strncasecmp(a[i].name, "id", 2) == 0) ||
		    (a[i].nlen == 8 &&
		    strncasecmp(a[i].name, "property", 8) == 0) ||
		    (a[i].nlen == 4 && strncasecmp(a[i].name, "type", 4) == 0)) &&
		    sensitive(a[i].value, a[i].vlen))
			hot = true;
	last = p;
	for (i = 0; i < n; i++) {
		bool redact;

		if (a[i].value == NULL || a[i].vlen == 0)
			continue;
		redact = sensitive(a[i].name, a[i].nlen) || (hot &&
		    ((a[i].nlen == 5 &&
		    strncasecmp(a[i].name, "value", 5) == 0) ||
		    (a[i].nlen == 7 &&
		    strncasecmp(a[i].name, "content", 7) == 0)));
		if (!redact)
			continue;
		buf_append(out, last, a[i].value - last);
		buf_puts(out, REDACTED);
		last = a[i].value + a[i].vlen;
	}
	buf_append(out, last, s + 1 - last);
	return s + 1;
}

/*
 * At p, a JSON member "key": value with a sensitive key: write it
 * redacted and return the end; else NULL.
 */
static const char *
redact_member(const char *p, const char *end, struct buf *out)
{
	const char *kend, *s, *v;

	if ((kend = quoted_end(p, end)) == NULL)
		return NULL;
	for (s = kend; s < end && is_ws(*s); s++)
		;
	if (s >= end || *s != ':' || !sensitive(p + 1, kend - p - 2))
		return NULL;
	for (s++; s < end && is_ws(*s); s++)
		;
	if (s >= end || *s == '{' || *s == '[')
		return NULL;
	if (*s == '"') {
		if ((v = quoted_end(s, end)) == NULL)
			v = end;
	} else
		for (v = s; v < end && *v != ',' && *v != '}' && *v != ']' &&
		    *v != '\n'; v++)
			;
	buf_append(out, p, s - p);
	buf_puts(out, "\"" REDACTED "\"");
	return v;
}

/* At p (a name start), "name=value" with a sensitive name; else NULL. */
static const char *
redact_pair(const char *p, const char *end, struct buf *out)
{
	const char *s = p, *v;

	while (s < end && is_name_char(*s))
		s++;
	if (s == p || s >= end || *s != '=' || !sensitive(p, s - p))
		return NULL;
	v = s + 1;
	if (v < end && (*v == '"' || *v == '\'')) {
		buf_append(out, p, v + 1 - p);
		buf_puts(out, REDACTED);
		if ((v = quoted_end(v, end)) == NULL)
			return end;
		buf_append(out, v - 1, 1);
		return v;
	}
	while (v < end && !is_ws(*v) && *v != '&' && *v != ';' && *v != '"' &&
	    *v != '\'' && *v != '<' && *v != '>' && *v != ',')
		v++;
	buf_append(out, p, s + 1 - p);
	if (v > s + 1)
		buf_puts(out, REDACTED);
	return v;
}

static int
pass_markup(const struct buf *in, struct buf *out)
{
	const char *p, *end, *next;

	if (in->len == 0)
		return 0;	/* in->data may be NULL */
	p = in->data;
	end = in->data + in->len;
	while (p < end) {
		next = NULL;
		if (*p == '<' && p + 1 < end &&
		    isalpha((unsigned char)p[1]))
			next = redact_tag(p, end, out);
		else if (*p == '"')
			next = redact_member(p, end, out);
		else if (is_name_char(*p) &&
		    (p == in->data || !is_name_char(p[-1])))
			next = redact_pair(p, end, out);
		if (next == NULL) {
			/* Copy a name, or one byte, as it is. */
			next = p + 1;
			if (is_name_char(*p))
				while (next < end && is_name_char(*next))
					next++;
			buf_append(out, p, next - p);
		}
		p = next;
	}
	return 0;
}

static bool
is_b64url(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_';
}

static int
pass_tokens(const struct buf *in, struct buf *out)
{
	const char *p, *end, *s, *dot1, *dot2;

	if (in->len == 0)
		return 0;	/* in->data may be NULL */
	p = in->data;
	end = in->data + in->len;
	while (p < end) {
		bool boundary = p == in->data || !is_b64url(p[-1]);

		/* "Bearer <token>" */
		if (boundary && end - p > 7 && strncasecmp(p, "bearer", 6) == 0 &&
		    (p[6] == ' ' || p[6] == '\t')) {
			for (s = p + 6; s < end && (*s == ' ' || *s == '\t');
			    s++)
				;
			if (s < end && strncmp(s, REDACTED, strlen(REDACTED))) {
				const char *t = s;

				while (t < end && (is_b64url(*t) || *t == '.' ||
				    *t == '~' || *t == '+' || *t == '/' ||
				    *t == '='))
					t++;
				if (t > s) {
					buf_append(out, p, s - p);
					buf_puts(out, REDACTED);
					p = t;
					continue;
				}
			}
		}
		/* A JWT: eyJ<base64url>.<base64url>.<base64url or nothing> */
		if (boundary && end - p > 3 && strncmp(p, "eyJ", 3) == 0) {
			for (s = p; s < end && is_b64url(*s); s++)
				;
			dot1 = s;
			if (dot1 - p >= 10 && dot1 < end && *dot1 == '.') {
				for (s = dot1 + 1; s < end && is_b64url(*s); s++)
					;
				dot2 = s;
				if (dot2 - dot1 > 2 && dot2 < end &&
				    *dot2 == '.') {
					for (s = dot2 + 1;
					    s < end && is_b64url(*s); s++)
						;
					buf_puts(out, REDACTED);
					p = s;
					continue;
				}
			}
		}
		s = p + 1;
		if (is_b64url(*p))
			while (s < end && is_b64url(*s))
				s++;
		buf_append(out, p, s - p);
		p = s;
	}
	return 0;
}

int
redact_snapshot(const char *body, size_t len, size_t cap,
    const char *const *secrets, struct buf *ret, bool *ret_truncated)
{
	struct buf a, b, enc, *cur = &a, *next = &b, *t;
	size_t i, n;
	int r;

	buf_init(&a, 0);
	buf_init(&b, 0);
	buf_init(&enc, 0);
	if ((r = pass_utf8(body, len, cur)) != 0)
		goto out;
	for (i = 0; secrets != NULL && secrets[i] != NULL; i++) {
		if (secrets[i][0] == '\0')
			continue;
		buf_reset(next);
		if ((r = replace_all(cur, secrets[i], strlen(secrets[i]),
		    next)) != 0)
			goto out;
		t = cur, cur = next, next = t;
		buf_reset(&enc);
		form_encode(secrets[i], &enc);
		if (enc.len == strlen(secrets[i]))
			continue;
		buf_reset(next);
		if ((r = replace_all(cur, enc.data, enc.len, next)) != 0)
			goto out;
		t = cur, cur = next, next = t;
	}
	buf_reset(next);
	if ((r = pass_headers(cur, next)) != 0)
		goto out;
	t = cur, cur = next, next = t;
	buf_reset(next);
	if ((r = pass_markup(cur, next)) != 0)
		goto out;
	t = cur, cur = next, next = t;
	buf_reset(next);
	if ((r = pass_tokens(cur, next)) != 0)
		goto out;
	t = cur, cur = next, next = t;

	n = cur->len;
	if (n > cap) {
		n = cap;
		while (n > 0 && ((unsigned char)cur->data[n] & 0xc0) == 0x80)
			n--;
	}
	if ((r = buf_append(ret, cur->data != NULL ? cur->data : "", n)) != 0)
		goto out;
	*ret_truncated = n < cur->len;
out:
	buf_release_secret(&a);
	buf_release_secret(&b);
	buf_release_secret(&enc);
	return r;
}
