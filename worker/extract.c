/*
 * What the extractors share: cleaning response bytes, keeping or refusing
 * a field's text against its proto/ limit, the failure report, and the
 * structural fingerprint.
 *
 * Policy for text that does not fit (extract.h leaves it to us): a
 * required field that is not valid UTF-8 or is too long fails the
 * response; an optional one is dropped, except notes and discharge
 * summaries (FIELD_TEXT), which are cut at the last UTF-8 boundary within
 * their limit -- the notes are what the sync is for, and a cut note is
 * better than none.
 *
 * The fingerprint of a JSON response is its sorted, unique key paths
 * ("appointments[].patient_name", arrays collapsed to "[]"); of an HTML
 * page, the sorted, unique element signatures "tag.class1.class2[testid]"
 * (class tokens sorted).  Neither holds a value, so it is stable while
 * the data changes and moves when the structure does.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <libxml/xmlerror.h>

#include "common/buf.h"
#include "common/sha256.h"
#include "common/utf8.h"
#include "common/xmalloc.h"
#include "proto/frame_limits.h"

#include "worker/extract_int.h"

#define FP_PATHS_MAX	8192	/* distinct paths or signatures kept */
#define FP_PATH_MAX	256	/* longest path or signature */
#define FP_DEPTH_MAX	32
#define FP_CLASSES_MAX	16

#define APPT(f)		offsetof(struct idexx_appt, f)
#define CONSULT(f)	offsetof(struct idexx_consult, f)

const struct field_def extract_appt_fields[] = {
	{ "id", APPT(id), FRAME_ID_MAX, FIELD_REQUIRED },
	{ "consultation_id", APPT(consultation_id), FRAME_ID_MAX, 0 },
	{ "start", APPT(start), FRAME_SHORT_MAX, 0 },
	{ "end", APPT(end), FRAME_SHORT_MAX, 0 },
	{ "patient_id", APPT(patient_id), FRAME_ID_MAX, 0 },
	{ "patient_name", APPT(patient_name), FRAME_NAME_MAX, 0 },
	{ "client_id", APPT(client_id), FRAME_ID_MAX, 0 },
	{ "first_name", APPT(first_name), FRAME_NAME_MAX, 0 },
	{ "last_name", APPT(last_name), FRAME_NAME_MAX, 0 },
	{ "email", APPT(email), FRAME_NAME_MAX, 0 },
	{ "phone", APPT(phone), FRAME_NAME_MAX, 0 },
	{ "provider", APPT(provider), FRAME_NAME_MAX, 0 },
	{ "resource_id", APPT(resource_id), FRAME_ID_MAX, 0 },
	{ "type_description", APPT(type_description), FRAME_NAME_MAX, 0 },
	{ "reason", APPT(reason), FRAME_LINE_MAX, 0 },
	{ "status", APPT(status), FRAME_NAME_MAX, 0 },
};
const size_t extract_appt_nfields =
    sizeof(extract_appt_fields) / sizeof(extract_appt_fields[0]);

const struct bool_def extract_appt_bools[] = {
	{ "is_block", APPT(is_block) },
	{ "is_roster", APPT(is_roster) },
	{ "cancelled", APPT(cancelled) },
};
const size_t extract_appt_nbools =
    sizeof(extract_appt_bools) / sizeof(extract_appt_bools[0]);

const struct field_def extract_consult_fields[] = {
	{ "id", CONSULT(id), FRAME_ID_MAX, FIELD_REQUIRED },
	{ "appointment_id", CONSULT(appointment_id), FRAME_ID_MAX, 0 },
	{ "date", CONSULT(date), FRAME_SHORT_MAX, 0 },
	{ "status", CONSULT(status), FRAME_NAME_MAX, 0 },
	{ "reason", CONSULT(reason), FRAME_LINE_MAX, 0 },
	{ "notes", CONSULT(notes), FRAME_TEXT_MAX, FIELD_TEXT },
	{ "discharge_summary", CONSULT(discharge_summary), FRAME_TEXT_MAX,
	    FIELD_TEXT },
	{ "provider", CONSULT(provider), FRAME_NAME_MAX, 0 },
	{ "patient_id", CONSULT(patient_id), FRAME_ID_MAX, 0 },
	{ "patient_name", CONSULT(patient_name), FRAME_NAME_MAX, 0 },
	{ "species", CONSULT(species), FRAME_NAME_MAX, 0 },
	{ "breed", CONSULT(breed), FRAME_NAME_MAX, 0 },
	{ "client_id", CONSULT(client_id), FRAME_ID_MAX, 0 },
	{ "first_name", CONSULT(first_name), FRAME_NAME_MAX, 0 },
	{ "last_name", CONSULT(last_name), FRAME_NAME_MAX, 0 },
	{ "phone", CONSULT(phone), FRAME_NAME_MAX, 0 },
	{ "email", CONSULT(email), FRAME_NAME_MAX, 0 },
};
const size_t extract_consult_nfields =
    sizeof(extract_consult_fields) / sizeof(extract_consult_fields[0]);

const struct field_def extract_line_name = {
	"line_name", offsetof(struct idexx_line, name), FRAME_NAME_MAX,
	FIELD_REQUIRED
};
const struct field_def extract_line_quantity = {
	"line_quantity", offsetof(struct idexx_line, quantity),
	FRAME_SHORT_MAX, 0
};

static const char replacement[] = "\xef\xbf\xbd";	/* U+FFFD */

char *
extract_clean(const char *body, size_t len, size_t *ret_len)
{
	const unsigned char *s = (const unsigned char *)body;
	size_t i = 0, n, o = 0;
	char *out;

	if (len > EXTRACT_BODY_MAX)
		return NULL;
	/* Each bad byte grows to at most three. */
	out = xmalloc(len * 3 + 1);
	while (i < len) {
		n = s[i] == '\0' ? 0 : utf8_sequence_len(s + i, len - i);
		if (n == 0) {
			memcpy(out + o, replacement, 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, s + i, n);
		o += n;
		i += n;
	}
	out[o] = '\0';
	*ret_len = o;
	return out;
}

int
extract_begin(const char *section, const char *body, size_t len, char **ret,
    size_t *ret_len, struct extract_error *err)
{
	if ((*ret = extract_clean(body, len, ret_len)) != NULL)
		return 0;
	if (err != NULL) {
		memset(err, 0, sizeof(*err));
		snprintf(err->what, sizeof(err->what),
		    "%s: response of %zu bytes over the %d limit", section,
		    len, EXTRACT_BODY_MAX);
	}
	return -EMSGSIZE;
}

/* Length of the longest prefix of s within max bytes ending on a boundary. */
static size_t
utf8_cut(const char *s, size_t len, size_t max)
{
	size_t n;

	if (len <= max)
		return len;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

int
extract_keep(const struct field_def *f, char *s, size_t len, char **ret,
    const char **why)
{
	const char *bad = NULL;

	if (memchr(s, '\0', len) != NULL || !utf8_valid(s, len) ||
	    memmem(s, len, replacement, 3) != NULL)
		bad = "not valid UTF-8";
	else if (len > f->max) {
		if (f->flags & FIELD_TEXT) {
			s[utf8_cut(s, len, f->max)] = '\0';
		} else
			bad = "too long";
	}
	if (bad != NULL) {
		free(s);
		*why = bad;
		if (f->flags & (FIELD_REQUIRED | FIELD_STRICT))
			return -EBADMSG;
		*ret = NULL;
		return 0;
	}
	*ret = s;
	return 0;
}

const char *
extract_alts_text(struct profile_alts a, const char *sep, char *buf,
    size_t bufsz)
{
	size_t i, o = 0;
	int n;

	buf[0] = '\0';
	for (i = 0; i < a.n && o < bufsz; i++) {
		n = snprintf(buf + o, bufsz - o, "%s%s", i > 0 ? sep : "",
		    a.v[i]);
		if (n < 0)
			break;
		o += n;
	}
	return buf;
}

static void
xml_quiet(void *ctx, const char *fmt, ...)
{
}

static void
xml_quiet_structured(void *ctx, xmlErrorPtr e)
{
}

static xmlParserInputPtr
xml_no_entities(const char *url, const char *id, xmlParserCtxtPtr ctx)
{
	return NULL;
}

void
extract_xml_init(void)
{
	static int done;

	if (done)
		return;
	done = 1;
	xmlInitParser();
	xmlSetGenericErrorFunc(NULL, xml_quiet);
	xmlSetStructuredErrorFunc(NULL, xml_quiet_structured);
	xmlSetExternalEntityLoader(xml_no_entities);
}

/* The key paths of a JSON value, appended to paths. */
struct fp_set {
	char **v;
	size_t n;
	bool full;
};

static int
fp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
fp_compact(struct fp_set *set)
{
	size_t i, o = 0;

	qsort(set->v, set->n, sizeof(*set->v), fp_cmp);
	for (i = 0; i < set->n; i++) {
		if (o > 0 && strcmp(set->v[o - 1], set->v[i]) == 0) {
			free(set->v[i]);
			continue;
		}
		set->v[o++] = set->v[i];
	}
	set->n = o;
}

static void
fp_add(struct fp_set *set, const char *s)
{
	if (set->full)
		return;
	if (set->n == FP_PATHS_MAX) {
		fp_compact(set);
		if (set->n > FP_PATHS_MAX / 2) {
			set->full = true;
			return;
		}
	}
	set->v[set->n++] = xstrdup(s);
}

static void
fp_json(struct fp_set *set, json_t *v, char *path, size_t plen, int depth)
{
	const char *key;
	json_t *child;
	size_t i, klen, j;

	if (depth > FP_DEPTH_MAX || set->full)
		return;
	if (json_is_object(v)) {
		json_object_foreach(v, key, child) {
			klen = strlen(key);
			if (plen + 1 + klen >= FP_PATH_MAX)
				continue;
			i = plen;
			if (plen > 0)
				path[i++] = '.';
			for (j = 0; j < klen; j++) {
				unsigned char c = key[j];

				/* One path a line: no control bytes. */
				path[i++] = c < 0x20 || c == 0x7f ? '?' : c;
			}
			path[i] = '\0';
			fp_add(set, path);
			fp_json(set, child, path, i, depth + 1);
			path[plen] = '\0';
		}
	} else if (json_is_array(v)) {
		if (plen + 2 >= FP_PATH_MAX)
			return;
		memcpy(path + plen, "[]", 3);
		fp_add(set, path);
		json_array_foreach(v, i, child)
			fp_json(set, child, path, plen + 2, depth + 1);
		path[plen] = '\0';
	}
}

static void
fp_html(struct fp_set *set, xmlNodePtr root)
{
	char sig[FP_PATH_MAX], *classes[FP_CLASSES_MAX], *cls, *tok, *save;
	xmlNodePtr n = root;
	xmlChar *c, *tid;
	size_t nc, i, o;
	int w;

	while (n != NULL && !set->full) {
		if (n->type == XML_ELEMENT_NODE && n->name != NULL) {
			o = 0;
			w = snprintf(sig, sizeof(sig), "%s", n->name);
			o = w > 0 && (size_t)w < sizeof(sig) ? (size_t)w :
			    sizeof(sig) - 1;
			nc = 0;
			cls = NULL;
			if ((c = xmlGetProp(n, (const xmlChar *)"class")) !=
			    NULL) {
				cls = xstrdup((const char *)c);
				xmlFree(c);
				for (tok = strtok_r(cls, " \t\r\n\f", &save);
				    tok != NULL && nc < FP_CLASSES_MAX;
				    tok = strtok_r(NULL, " \t\r\n\f", &save))
					classes[nc++] = tok;
				qsort(classes, nc, sizeof(*classes), fp_cmp);
			}
			for (i = 0; i < nc && o < sizeof(sig) - 1; i++) {
				w = snprintf(sig + o, sizeof(sig) - o, ".%s",
				    classes[i]);
				o = w > 0 && o + w < sizeof(sig) ? o + w :
				    sizeof(sig) - 1;
			}
			free(cls);
			tid = xmlGetProp(n, (const xmlChar *)"data-testid");
			if (tid != NULL && o < sizeof(sig) - 1)
				snprintf(sig + o, sizeof(sig) - o, "[%s]", tid);
			xmlFree(tid);
			for (i = 0; sig[i] != '\0'; i++)
				if ((unsigned char)sig[i] < 0x20)
					sig[i] = '?';
			sig[utf8_cut(sig, strlen(sig), sizeof(sig) - 1)] =
			    '\0';
			fp_add(set, sig);
		}
		/* Depth-first, without recursion. */
		if (n->type == XML_ELEMENT_NODE && n->children != NULL) {
			n = n->children;
			continue;
		}
		while (n != NULL && n != root && n->next == NULL)
			n = n->parent;
		if (n == NULL || n == root)
			break;
		n = n->next;
	}
}

void
extract_fp(const char *clean, size_t len, bool html, char hex[65],
    char *skeleton, size_t skeletonsz, bool *ret_ok)
{
	struct fp_set set = { NULL, 0, false };
	char path[FP_PATH_MAX];
	struct buf canon;
	json_t *root = NULL, *el;
	htmlDocPtr doc = NULL;
	xmlNodePtr top;
	size_t i, n;
	bool ok = false;

	buf_init(&canon, 0);
	set.v = xcalloc(FP_PATHS_MAX, sizeof(*set.v));
	if (html) {
		extract_xml_init();
		doc = htmlReadMemory(clean, (int)len, NULL, "UTF-8",
		    HTML_PARSE_NONET | HTML_PARSE_NOERROR |
		    HTML_PARSE_NOWARNING | HTML_PARSE_RECOVER |
		    HTML_PARSE_NOIMPLIED);
		top = doc != NULL ? xmlDocGetRootElement(doc) : NULL;
		if (top != NULL) {
			ok = true;
			fp_html(&set, top);
		}
	} else {
		root = json_loadb(clean, len, JSON_ALLOW_NUL, NULL);
		if (root != NULL) {
			ok = true;
			path[0] = '\0';
			if (json_is_array(root)) {
				memcpy(path, "[]", 3);
				fp_add(&set, path);
				json_array_foreach(root, i, el)
					fp_json(&set, el, path, 2, 1);
			} else
				fp_json(&set, root, path, 0, 0);
		}
	}
	fp_compact(&set);
	if (!ok)
		buf_puts(&canon, html ? "(not html)\n" : "(not json)\n");
	for (i = 0; i < set.n; i++) {
		buf_puts(&canon, set.v[i]);
		buf_puts(&canon, "\n");
		free(set.v[i]);
	}
	free(set.v);
	sha256_hex(canon.data != NULL ? canon.data : "", canon.len, hex);
	if (skeleton != NULL && skeletonsz > 0) {
		n = utf8_cut(canon.data != NULL ? canon.data : "", canon.len,
		    skeletonsz - 1);
		if (n > 0)
			memcpy(skeleton, canon.data, n);
		skeleton[n] = '\0';
	}
	buf_release(&canon);
	json_decref(root);
	if (doc != NULL)
		xmlFreeDoc(doc);
	*ret_ok = ok;
}

int
extract_fingerprint(const char *body, size_t len, bool html, char hex[65],
    char *skeleton, size_t skeletonsz)
{
	char h[65], *clean, *sk = NULL;
	size_t clen;
	bool ok;

	if ((clean = extract_clean(body, len, &clen)) == NULL)
		return -EMSGSIZE;
	if (skeleton != NULL && skeletonsz > 0)
		sk = xmalloc(skeletonsz);
	extract_fp(clean, clen, html, h, sk, skeletonsz, &ok);
	free(clean);
	if (!ok) {
		free(sk);
		return -EBADMSG;
	}
	memcpy(hex, h, sizeof(h));
	if (sk != NULL)
		memcpy(skeleton, sk, strlen(sk) + 1);
	free(sk);
	return 0;
}

void
extract_fail(struct extract_error *err, const char *body, size_t len,
    bool html, const char *fmt, ...)
{
	char what[sizeof(err->what)];
	size_t i, o, n, k;
	va_list ap;
	bool ok;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	/*
	 * The message may quote the response: keep it valid UTF-8 without
	 * control characters ('?' for either); the logger escapes the rest.
	 */
	n = strlen(what);
	for (i = 0, o = 0; i < n && o + 4 < sizeof(err->what); ) {
		k = utf8_sequence_len((const unsigned char *)what + i, n - i);
		if (k == 0 || (k == 1 && ((unsigned char)what[i] < 0x20 ||
		    what[i] == 0x7f))) {
			err->what[o++] = '?';
			i += k == 0 ? 1 : k;
			continue;
		}
		memcpy(err->what + o, what + i, k);
		o += k;
		i += k;
	}
	err->what[o] = '\0';
	extract_fp(body, len, html, err->fingerprint, err->skeleton,
	    sizeof(err->skeleton), &ok);
}
