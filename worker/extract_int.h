/*
 * What the extraction files (extract.c, extract_json.c, extract_html.c)
 * and profile.c share and nobody else sees: the response size bound, the
 * cleaning of response bytes, the field tables that map profile keys to
 * struct idexx_* members with their proto/ limits, and the failure report.
 *
 * Cleaning: every byte sequence of a response that is not valid UTF-8
 * (and every NUL) becomes U+FFFD before parsing, so that jansson and
 * libxml2 never decide the encoding on their own.  A field whose text
 * holds U+FFFD is therefore "not valid UTF-8": an error when required,
 * dropped when optional.
 */
#ifndef VS_WORKER_EXTRACT_INT_H
#define VS_WORKER_EXTRACT_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "worker/extract.h"

/* The largest body extraction looks at; the client caps below this. */
#define EXTRACT_BODY_MAX	(16 * 1024 * 1024)
/* Calendar items, list rows and line nodes looked at in one response. */
#define EXTRACT_ITEMS_MAX	10000
/* Locator work per evaluation (libxml2 XPath operations). */
#define EXTRACT_XPATH_OPS_MAX	5000000UL

/* Field flags. */
#define FIELD_REQUIRED	0x01	/* missing or bad: the response fails */
#define FIELD_TEXT	0x02	/* notes: line breaks kept, cut when long */
#define FIELD_STRICT	0x04	/* may be absent, but bad is an error */

struct field_def {
	const char *key;	/* profile key */
	size_t off;		/* offset of the char * in the struct */
	size_t max;		/* bytes, from proto/frame_limits.h */
	int flags;
};

struct bool_def {
	const char *key;
	size_t off;		/* offset of the bool in the struct */
};

extern const struct field_def extract_appt_fields[];
extern const size_t extract_appt_nfields;
extern const struct bool_def extract_appt_bools[];
extern const size_t extract_appt_nbools;
extern const struct field_def extract_consult_fields[];
extern const size_t extract_consult_nfields;

/* A line's text fields: line_name (required), line_quantity. */
extern const struct field_def extract_line_name;
extern const struct field_def extract_line_quantity;

/*
 * A heap copy of body with invalid UTF-8 and NUL replaced by U+FFFD, or
 * NULL when len is over EXTRACT_BODY_MAX.
 */
char *extract_clean(const char *body, size_t len, size_t *ret_len);

/*
 * extract_clean() for section, or -EMSGSIZE with err saying the body is
 * over EXTRACT_BODY_MAX.
 */
int extract_begin(const char *section, const char *body, size_t len,
    char **ret, size_t *ret_len, struct extract_error *err);

/*
 * Decide what to keep of a field's text s (len bytes, heap, consumed).
 * Returns 0 with *ret set (possibly to NULL: dropped), or -EBADMSG for a
 * required field, with err filled by the caller.  *why says what was
 * wrong when s was refused ("not valid UTF-8", "over N bytes").
 */
int extract_keep(const struct field_def *, char *s, size_t len, char **ret,
    const char **why);

/*
 * Fill err (when not NULL): the message, then the fingerprint and
 * skeleton of body (already cleaned) as JSON or HTML.
 */
void extract_fail(struct extract_error *, const char *body, size_t len,
    bool html, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* "a|b|c" of alternatives into buf. */
const char *extract_alts_text(struct profile_alts, const char *sep,
    char *buf, size_t bufsz);

/*
 * libxml2's process-wide settings, once: no error output, no external
 * entities or network.
 */
void extract_xml_init(void);

/* The internal fingerprint: as extract_fingerprint(), never failing. */
void extract_fp(const char *clean, size_t len, bool html, char hex[65],
    char *skeleton, size_t skeletonsz, bool *ret_ok);

#endif
