/*
 * The credential lifecycle as vetsyncd drives it (PRD §8.3, FR-2.6):
 *
 *   set      new credentials are validated by a VALIDATE_CREDENTIALS job in
 *            a sandboxed worker (queued like any job of the clinic), and
 *            stored encrypted (credstore.h) only if IDEXX accepted them;
 *            otherwise nothing is stored and the answer says 'invalid' (or
 *            'unknown' when IDEXX could not tell: down, timeout).
 *   revoke   announced by PostgreSQL (NOTIFY vetsync_credentials, sent by
 *            a trigger on idexx_credentials whoever revokes: vetsyncctl,
 *            the HTTP API, another instance): the clinic's worker is killed
 *            at once, its queued jobs dropped, and it is held until
 *            credentials are set again.
 *
 * The answers are the PRD's configure-credentials response (§7.1):
 * {"success", "validationStatus": "valid"|"invalid"|"unknown",
 * "lastValidated"}, plus "error" when it failed.
 */
#ifndef VS_SUPERVISOR_CREDENTIALS_H
#define VS_SUPERVISOR_CREDENTIALS_H

#include <jansson.h>

/* The answer, owned by the callee. */
typedef void credentials_answer_fn(json_t *answer, void *arg);

/*
 * Validate then store username/password/company_id (NULL: none) for clinic
 * id; answer runs once, possibly before this returns.  The strings are
 * copied; the caller wipes its own.
 */
void credentials_set(const char *id, const char *username,
    const char *password, const char *company_id,
    credentials_answer_fn *answer, void *arg);

/*
 * A notification on vetsync_credentials (payload NULL: some may have been
 * missed).
 */
void credentials_notified(const char *channel, const char *payload,
    void *arg);

#endif
