/*
 * Discharge calls made exactly once (PRD FR-1.8, DESIGN §5): the outbox,
 * its publisher to QStash, and the endpoint QStash delivers to, which
 * claims the call in PostgreSQL and only then asks VAPI to dial.
 *
 * Outbox.  discharge_outbox_add() is called by the reconciliation inside
 * the clinic's transaction, after the notes: every completed consultation
 * with a time (date_utc) gets one scheduled_discharge_calls row due at that
 * time plus the clinic's users.discharge_delay (else discharge.delay),
 * dedup_id "discharge-<user>-<consultation>-<due, Unix s>" (a consultation
 * id outside [A-Za-z0-9._-]{1,64} is replaced by its MD5), unique per
 * (user, consultation): never two rows for one consultation, and a sync
 * that changed nothing writes nothing.  A consultation seen again not
 * completed cancels a pending or published call; one whose due time moved
 * reschedules it (a new dedup id, pending again).  Either way the message
 * already at QStash is put in cancel_message_id for the publisher to
 * DELETE ("-" when none was published: the publisher only audits it;
 * "dedup:<id>" when a publish got no answer: the publisher publishes that
 * dedup id again to learn the message id QStash holds, then DELETEs it).
 * consultation_sync_status.discharge_call_id links the row.
 *
 * Publisher.  As service_role: rows due for an attempt (pending, or with a
 * message to cancel) are leased to this instance (lease_until, taken with
 * FOR UPDATE SKIP LOCKED, so instances never work one row at once), then
 * POST <qstash_url>/v2/publish/<delivery_url> with the token,
 * Upstash-Not-Before, Upstash-Deduplication-Id and Upstash-Retries.  200,
 * or 202 (a duplicate: the existing id), records the message id and
 * 'published'.  A 429 waits what Retry-After / Burst-RateLimit-Reset say;
 * no answer or a 5xx backs off with jitter; the row stays 'pending' either
 * way.  Another 4xx fails the row, audited.  A row stays pending until its
 * answer is recorded, so a daemon killed mid-publish publishes it again
 * after a restart (its own leases are dropped at start; another
 * instance's run out), and the dedup id makes that harmless.
 *
 * Delivery (the endpoint, registered on the HTTP API at the path of
 * discharge.delivery_url).  401 unless Upstash-Signature verifies (current
 * key, then next; sub = delivery_url).  Then the claim, one UPDATE:
 * status 'claimed' WHERE the id and dedup id are the message's and the
 * status is pending or published (a message left from before a reschedule
 * or a cancel claims nothing).  Nothing claimed: a duplicate or stale
 * delivery, 200 without a dial.  Claimed: POST <vapi_url>/call, then:
 *   201       'completed' with vapi_call_id; 200.
 *   429, 5xx  VAPI made no call: the row stays 'claimed' with dial_retry,
 *             and we answer 500 so that QStash delivers again; only a
 *             delivery that finds dial_retry set and no vapi_call_id may
 *             claim it again.  When QStash gives up, the row stays visible
 *             as claimed with its last_error (never silently lost).
 *   connection refused: as a 5xx (nothing reached VAPI).
 *   other 4xx 'failed' with VAPI's error; 200 (retrying cannot help).
 *   timeout or a cut answer: the call may have been made, so it is never
 *             tried again: 'failed' with "outcome unknown"; 200.
 * A number that is not E.164 fails the row without a dial.  A daemon that
 * dies after the claim leaves the row 'claimed' without dial_retry: the
 * redelivery claims nothing, so a client is never called twice; such rows
 * (claimed, no vapi_call_id, old claimed_at) are the ones to look at.
 *
 * Everything is audited: discharge_published / _publish_failed,
 * discharge_cancelled, discharge_delivery (with status ok, duplicate,
 * bad_signature, ...), discharge_claimed, discharge_dialled.  No token,
 * key, signature or phone number is logged or audited.
 */
#ifndef VS_SUPERVISOR_DISCHARGE_H
#define VS_SUPERVISOR_DISCHARGE_H

#include <stdbool.h>

struct db_async;
struct db_unit;

/*
 * Start with sv->config's [discharge] (nothing happens when
 * discharge.qstash_url is empty): read the qstash-token, signing keys and
 * vapi-key secrets, register the delivery endpoint, and start publishing.
 * instance names this process's leases.  Returns 0, or a negative errno
 * with a message logged (a secret that is missing or refused).
 */
int discharge_start(struct db_async *db, const char *instance);

/* Stop publishing and forget the secrets (wiped); safe to call twice. */
void discharge_stop(void);

/* True once discharge_start() succeeded with discharge.qstash_url set. */
bool discharge_enabled(void);

/*
 * Append the outbox statement to a reconciliation unit (already scoped to
 * user's tenant) for records, the JSON array of consultations the notes
 * statement took (cid, pname, phone, completed, date_utc).  A no-op when
 * discharge calls are not enabled.
 */
void discharge_outbox_add(struct db_unit *u, const char *user,
    const char *records);

#endif
