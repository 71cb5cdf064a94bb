/*
 * Extraction: from a response body to struct idexx_* values, driven by a
 * site profile.  JSON through jansson, HTML through libxml2's HTML parser
 * and XPath.  Nothing here does I/O.
 *
 * Any failure to find what the profile says should be there -- malformed
 * JSON or HTML, a required field missing under every alternative, every
 * locator of a field matching nothing -- returns -EBADMSG and fills
 * struct extract_error: which field or locator failed, a structural
 * fingerprint of the response, and a short skeleton of it.  The job then
 * ends "ui_changed" with a redacted snapshot (redact.h).
 *
 * Every string taken from a response is checked for valid UTF-8 and
 * bounded before it is kept; one that is not is an error for a required
 * field and dropped (NULL) for an optional one.
 */
#ifndef VS_WORKER_EXTRACT_H
#define VS_WORKER_EXTRACT_H

#include <stdbool.h>
#include <stddef.h>

#include "worker/idexx.h"
#include "worker/profile.h"

struct extract_error {
	char what[256];		/* "calendar.id: no alternative present" */
	char fingerprint[65];	/* SHA-256 hex of the structure */
	char skeleton[512];	/* JSON keys or tag outline, no values */
};

/* The login page: what to post back. */
struct login_form {
	char *action;			/* form action (path), NULL: same URL */
	char *username_field;		/* the name present in the page */
	char *password_field;
	char *company_field;		/* NULL when the page has none */
	char *csrf_name, *csrf_value;	/* NULL when the page has none */
};
void login_form_release(struct login_form *);

int extract_login_form(const struct profile *, const char *body, size_t len,
    struct login_form *ret, struct extract_error *err);

/* True when a login answer is the login page with an error shown. */
bool extract_login_failed(const struct profile *, const char *body,
    size_t len);

/* True when an HTML page says the session expired (prd-html). */
bool extract_session_expired(const struct profile *, const char *body,
    size_t len);

/*
 * True when one of the locators of section.key selects something in the
 * HTML page (a generalisation of the two above: [login] logged_in on the
 * prd-html dashboard, for instance).  False for an absent key or a page
 * that is not HTML.
 */
bool extract_html_matches(const struct profile *, const char *section,
    const char *key, const char *body, size_t len);

/*
 * The calendar (JSON: an array, or an object holding it under one of the
 * profile's wrappers).  Blocks and rosters are included, flagged.
 * *ret is an array of *ret_n entries; free each with idexx_appt_release()
 * and the array with free().
 */
int extract_calendar(const struct profile *, const char *body, size_t len,
    struct idexx_appt **ret, size_t *ret_n, struct extract_error *err);

/* One consultation's page-data (JSON). */
int extract_page_data(const struct profile *, const char *body, size_t len,
    struct idexx_consult *ret, struct extract_error *err);

/*
 * prd-html: one page of the consultations list, and the next page's URL
 * (NULL on the last page; free it).
 */
int extract_consult_list(const struct profile *, const char *body,
    size_t len, struct idexx_row **ret, size_t *ret_n, char **ret_next,
    struct extract_error *err);

/* prd-html: one consultation's detail page. */
int extract_consult_detail(const struct profile *, const char *body,
    size_t len, struct idexx_consult *ret, struct extract_error *err);

/*
 * The structural fingerprint of a response of some kind ("calendar",
 * "page_data", "login", ...), for UI-change detection even on success:
 * SHA-256 hex over the sorted JSON key paths or the HTML tag/class
 * outline, and the skeleton itself (bounded).
 */
int extract_fingerprint(const char *body, size_t len, bool html,
    char hex[65], char *skeleton, size_t skeletonsz);

#endif
