/*
 * IDEXX Neo site profiles (deploy/neo-profile.conf,
 * deploy/prd-html-profile.conf): where things are, as data, so that a
 * change on IDEXX's side is a configuration change, not a release.
 *
 * A profile is INI text, sent by the supervisor in each Job:
 *
 *	[profile]   name = neo, kind = json | html
 *	[endpoints] login, logout, calendar, page_data ("{id}" is replaced),
 *	            dashboard, consultations, consultation (prd-html)
 *	[login]     username_field, password_field, company_field,
 *	            csrf_field, session_cookie (JSON/form names, '|' between
 *	            alternatives), error, expired (locators)
 *	[calendar]  wrapper, and one key per struct idexx_appt field
 *	[page_data] one key per struct idexx_consult field (dotted JSON paths)
 *	[list] [detail]  prd-html locators
 *
 * Alternatives: JSON names and form fields are separated by '|'
 * ("appointment_id | id"); locators, which are XPath expressions and may
 * themselves contain '|', are separated by '||' (primary first, then the
 * fallbacks).  profile_parse() checks that every key the profile's kind
 * needs is present, and refuses unknown sections and keys, naming the
 * line.
 */
#ifndef VS_WORKER_PROFILE_H
#define VS_WORKER_PROFILE_H

#include <stddef.h>

struct profile;

enum profile_kind {
	PROFILE_JSON,		/* "neo": JSON endpoints behind a session */
	PROFILE_HTML,		/* "prd-html": HTML pages */
};

/* A list of alternatives, in order of preference. */
struct profile_alts {
	const char *const *v;
	size_t n;
};

int profile_parse(const char *text, size_t len, struct profile **ret,
    char *err, size_t errsz);
void profile_free(struct profile *);

const char *profile_name(const struct profile *);
enum profile_kind profile_kind(const struct profile *);

/*
 * The alternatives of section.key; an absent key gives n == 0.  The
 * strings are owned by the profile.
 */
struct profile_alts profile_get(const struct profile *, const char *section,
    const char *key);

/* The first alternative of section.key, or NULL. */
const char *profile_str(const struct profile *, const char *section,
    const char *key);

#endif
