/*
 * Snapshots of failing responses (PRD FR-3.3), safe to send and store:
 * credentials, cookies and tokens removed, size capped.
 *
 * Removed: the values of password, csrf/xsrf/authenticity token, session
 * and auth-like fields in forms and JSON; cookie values; bearer tokens;
 * the clinic's own username and password wherever they appear verbatim;
 * anything that looks like a JWT.  Bytes that are not valid UTF-8 become
 * U+FFFD.  The result is at most cap bytes and says when it was cut.
 */
#ifndef VS_WORKER_REDACT_H
#define VS_WORKER_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

/*
 * Redact body into ret (initialised by the caller).  secrets is a
 * NULL-terminated list of literal strings to remove as well (the clinic's
 * username and password).  *ret_truncated says whether the cap cut it.
 */
int redact_snapshot(const char *body, size_t len, size_t cap,
    const char *const *secrets, struct buf *ret, bool *ret_truncated);

#endif
