/*
 * Product events to PostHog (PRD §13.3, DESIGN §7, CONTRACTS §2):
 *
 *   sync.started         {userId, clinicName, kind}
 *   sync.completed       {userId, consultations, duration, kind}
 *   sync.failed          {userId, error, step, kind}
 *   discharge.scheduled  {userId, consultationId, scheduledFor}
 *   credential.validated {userId, status: "valid" | "invalid"}
 *
 * userId is the clinic's users.id (the clinic id), and every event's
 * distinct_id.  duration is in seconds (milliseconds as a fraction), as
 * the PRD's alert thresholds count it; kind is "notes" or "schedule".
 * error is the session's error class (the worker's exit class, or the
 * job status when the worker ended cleanly with a failed job: "ui_changed",
 * "invalid_credentials", ...), never text from IDEXX; step is the part of
 * the run the failure came from, as far as the supervisor knows it:
 * "start" (no worker ran), "login" (IDEXX refused the credentials), "idexx"
 * (the worker reported a failed job) or "worker" (the process itself
 * failed: timeout, crash, sandbox, protocol).  No notes, names of people
 * or phone numbers go into an event; clinicName is users.clinic_name,
 * looked up when the sync starts (JSON null when unknown).
 *
 * discharge.scheduled is sent when QStash's acceptance of the call's
 * publish is recorded, which happens once per dedup id (discharge.c): the
 * outbox row itself is written inside the reconciliation's transaction,
 * whose unit hands no rows back, and an event sent before that commit
 * could tell of a call that never was.  A rescheduled call is scheduled
 * again, with its new scheduledFor.  credential.validated is sent when
 * IDEXX gave a verdict on a clinic's credentials: new ones being set
 * (credentials.c) or a validation job (clinics.c); a validation that ended
 * without one (a crash, a timeout) sends nothing.
 *
 * $process_person_profile is true for the events of what a clinic's user
 * did or is told about (sync.*, credential.validated), so they join the
 * web app's person of that user id; false for discharge.scheduled, which
 * is about a consultation, not about the user.  Every event carries
 * "$lib": "vetsync", a uuid (v4, made when the event happens, so a resend
 * is recognisable) and the time it happened (UTC, milliseconds).
 *
 * Delivery: events wait in memory, at most EVENTS_QUEUE_MAX (past it the
 * oldest waiting one is dropped and counted), and go to POST
 * <posthog.host>/batch/ when posthog.batch_size are waiting or the oldest
 * has waited posthog.flush_interval, one request at a time, in order.
 * Network errors, 5xx, 408 and 429 are retried with the same body after
 * min(2^n, 30) s (n = 0, 1, ...), longer when Retry-After says so (at most
 * EVENTS_RETRY_AFTER_MAX_MS), up to EVENTS_RETRIES times; any other answer
 * below 200 or from 300 up drops the batch, counted, with one warning per
 * status code.  Nothing here ever waits: a hook only formats and queues.
 * events_stop() makes a last attempt, bounded by its deadline.
 *
 * Disabled entirely (every hook a no-op) when posthog.host is empty or the
 * posthog-key secret is missing; vetsyncd says so once at start.  The key
 * is only ever in the request body (wiped when freed), never in a log line,
 * an error or /metrics.
 */
#ifndef VS_SUPERVISOR_EVENTS_H
#define VS_SUPERVISOR_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db_async;
struct evbuffer;
struct json_t;
struct worker_job;
struct worker_outcome;

#define EVENTS_QUEUE_MAX	10000	/* events waiting, not yet sent */
#define EVENTS_EVENT_MAX	(900 * 1024)	/* bytes of one event */
#define EVENTS_BODY_MAX		(5 * 1024 * 1024)	/* of a batch */
#define EVENTS_RETRIES		10	/* attempts after the first */
#define EVENTS_BACKOFF_MAX_MS	30000
#define EVENTS_RETRY_AFTER_MAX_MS	(10 * 60 * 1000)
#define EVENTS_HTTP_MS		15000	/* one request */
#define EVENTS_STOP_MS		3000	/* the last flush at stop */

/*
 * Start with sv->config's [posthog] and the posthog-key secret (both are
 * read once: a reload does not change them).  db (may be NULL) is used to
 * look up clinic names.  Returns 0 (also when
 * disabled), or -ENOMEM; a refused secret is logged and disables events.
 */
int events_start(struct db_async *db);

/*
 * Stop: send what waits, one batch after another, until everything is
 * answered or timeout_ms has passed (running the event loop meanwhile),
 * then drop the rest, counted.  Call before outbound_free().  Safe to
 * call twice, or without events_start().
 */
void events_stop(uint64_t timeout_ms);

/* True between a successful events_start() that found a key and stop. */
bool events_enabled(void);

/* The hooks.  Each is a no-op when disabled. */
void events_job_started(const struct worker_job *);
void events_job_ended(const struct worker_job *, const struct worker_outcome *);
void events_discharge_scheduled(const char *user, const char *consultation,
    int64_t scheduled_for_s);
void events_credential_validated(const char *user, bool valid);

/* The vetsync_posthog_* lines of /metrics (Prometheus text). */
void events_metrics(struct evbuffer *out);

/*
 * The pure parts, apart so that unit tests reach them.
 *
 * events_format(): one event as PostHog's batch wants it, a new
 * NUL-terminated string (the caller frees it), or NULL when props is not
 * a JSON object.  props (its reference taken, even on failure) gets
 * distinct_id, $lib and $process_person_profile added.  uuid and timestamp
 * are as given (tests pass fixed ones); uuid NULL: a fresh v4; wall_ms
 * below 0: now.
 */
char *events_format(const char *name, const char *distinct_id,
    struct json_t *props, bool person, const char *uuid, int64_t wall_ms);

/*
 * The body of a batch: {"api_key":key,"historical_migration":false,
 * "batch":[events[0],...]} with as many of the n events as fit in max
 * bytes (at least one, unless that one alone is over max: then none).
 * Returns a new string (the caller wipes and frees it: the key is in it)
 * and the events taken in *ret_taken, or NULL with *ret_taken 0.
 */
char *events_batch_body(const char *key, char *const *events, size_t n,
    size_t max, size_t *ret_taken);

/* What to do with an answer: error < 0 is no answer at all. */
enum events_verdict {
	EVENTS_SENT,		/* 2xx */
	EVENTS_RETRY,		/* no answer, 408, 429, 5xx */
	EVENTS_DROP,		/* anything else */
};
enum events_verdict events_verdict(int error, long status);

/*
 * The wait before retry number attempt (0 for the first retry):
 * min(2^attempt s, EVENTS_BACKOFF_MAX_MS), or retry_after_ms when that is
 * longer (at most EVENTS_RETRY_AFTER_MAX_MS); retry_after_ms < 0: none.
 */
uint64_t events_backoff_ms(unsigned attempt, int64_t retry_after_ms);

/*
 * The step a failed job broke at ("start", "login", "idexx", "worker")
 * and its error class (see above), both static strings.
 */
const char *events_failure_step(const struct worker_outcome *);
const char *events_failure_error(const struct worker_outcome *);

#endif
