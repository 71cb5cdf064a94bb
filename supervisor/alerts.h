/*
 * Alerts by email (DESIGN §7, PRD §13.3): the four thresholds over the
 * sync sessions in PostgreSQL, and the supervisor's own operational
 * alerts, each logged ("alert: ..."), audited and mailed once.
 *
 * Thresholds (alerts.* in the configuration):
 *   - failure_rate: of the sessions that ended in the last hour (a sliding
 *     window; notes and schedule syncs, not credential checks), more than
 *     this share failed or timed out, counted only over at least
 *     ALERTS_RATE_MIN_SESSIONS sessions (one failure of two is not a
 *     rate).  One alert for all clinics, naming the worst ones.
 *   - slow_sync: a session 'running' for longer, per clinic.
 *   - consecutive_failures: a clinic's last N ended sessions all failed.
 *   - stale_after: a clinic with sync enabled and active credentials has
 *     no completed sync for this long (since its credentials were stored,
 *     when it never had one).
 * Operational alerts (alerts_raise()): a clinic held by the circuit
 * breaker or for its credentials, the audit spool full, the database
 * refusing audit records.
 *
 * Every instance sharing the database evaluates the thresholds (every
 * ALERTS_SCAN_MS, and for a clinic whose job just ended), and claims what
 * it finds in vetsync_alerts (migrations/0009_alerts.sql) with one INSERT
 * ... ON CONFLICT DO UPDATE ... WHERE the last claim is older than
 * alerts.repeat_after: only the instance that gets the row back mails, so
 * an alert is mailed once per repeat_after, not once per instance.  No
 * "resolved" mail is sent: a condition that clears simply raises nothing
 * more, and one that comes back within repeat_after stays quiet (the
 * claim of the first episode still holds).  When the database cannot be
 * reached, operational alerts are deduplicated in this process instead
 * (the same key, the same repeat_after).
 *
 * Mail goes out through outbound_mail() on the event loop, one message at
 * a time from a queue of at most ALERTS_QUEUE_MAX; a full queue drops the
 * new alert (logged and audited).  A server that is down or answers 4xx is
 * tried again with a doubling delay (ALERTS_RETRY_MIN_MS ..
 * ALERTS_RETRY_MAX_MS) until repeat_after has passed since the claim; a
 * 5xx is final.  Each outcome is audited (alert_mailed) and written on the
 * alert's row.  Nothing here waits on a sync, and no sync waits on mail.
 *
 * Text: the subject and the body name the clinic (id and name), the
 * threshold, the figure and what to look at; never a credential, the SMTP
 * password, or a consultation's notes.  Names from the database are
 * stripped of control characters before they go into a header or a line.
 */
#ifndef VS_SUPERVISOR_ALERTS_H
#define VS_SUPERVISOR_ALERTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

struct db_async;
struct supervisor;

#define ALERTS_SCAN_MS		(60 * 1000)	/* the periodic evaluation */
#define ALERTS_SCAN_ENV		"VETSYNC_ALERTS_SCAN_MS"	/* tests */
#define ALERTS_RATE_MIN_SESSIONS 10
#define ALERTS_QUEUE_MAX	64
#define ALERTS_RETRY_MIN_MS	1000
#define ALERTS_RETRY_MAX_MS	(5 * 60 * 1000)
#define ALERTS_KEY_MAX		128

enum alert_kind {
	ALERT_CONSECUTIVE_FAILURES,
	ALERT_FAILURE_RATE,
	ALERT_SLOW_SYNC,
	ALERT_STALE,
	ALERT_CLINIC_HELD,
	ALERT_AUDIT_SPOOL_FULL,
	ALERT_AUDIT_REFUSED,
};

/*
 * Start, on s's loop and with s's configuration (read at each use, so a
 * reload applies): db (not owned) for the thresholds and the claims,
 * instance (instance.name) for the claims' owner.  Reads the
 * smtp-password secret once when alerts.smtp_url is set; without
 * alerts.smtp_url alerts are logged and audited only.  Until it runs,
 * alerts_raise() and alerts_job_ended() do nothing, so modules linked
 * without a supervisor (unit tests) may call them.
 */
void alerts_start(const struct supervisor *s, struct db_async *db,
    const char *instance);

/* Stop: mail still queued is dropped (logged); the password is wiped. */
void alerts_stop(void);

/* A job of clinic id ended: evaluate its failures and the rate soon. */
void alerts_job_ended(const char *id);

/*
 * Raise an operational alert about clinic id (NULL: none), with figure
 * (what happened) and look (what to look at).  Never blocks and never
 * calls back: safe from inside audit_emit().  A key already waiting or
 * being mailed is not raised again.
 */
void alerts_raise(enum alert_kind, const char *id, const char *figure,
    const char *look);

/* The pure parts, for tests. */

/* "consecutive_failures", ...; also the key's prefix and the SQL kind. */
const char *alerts_kind_name(enum alert_kind);
/* True for a name alerts_kind_name() returns; the kind in *ret. */
bool alerts_kind_parse(const char *, enum alert_kind *ret);

/*
 * True when failed of total sessions is over rate_micro (millionths) and
 * total is at least min_total.
 */
bool alerts_rate_exceeded(uint64_t failed, uint64_t total,
    uint64_t rate_micro, uint64_t min_total);

/* Delay before attempt n (1, 2, ...) of a mail: doubling, capped. */
uint64_t alerts_retry_ms(unsigned attempt);

/*
 * Copy s into out (size bytes, NUL-terminated), dropping control
 * characters (CR and LF included) and cutting at a character boundary
 * at most max bytes in; ascii keeps only printable ASCII (headers),
 * others become '?'.
 */
void alerts_clean(const char *s, size_t max, bool ascii, char *out,
    size_t size);

/*
 * Split a comma-separated address list (alerts.to) into out[] (at most
 * max, trimmed; pointers into scratch, which holds a copy).  Returns
 * the count, or -EINVAL for an empty entry or too many.
 */
int alerts_split_rcpt(const char *to, char *scratch, size_t scratchsz,
    const char **out, size_t max);

struct alert_mail_text {
	const char *from;
	const char *to;		/* as configured: "a@b, c@d" */
	const char *subject;	/* cleaned ASCII */
	const char *body;	/* UTF-8, LF line ends */
	const char *key;	/* X-Vetsync-Alert */
	int64_t wall_ms;	/* Date */
	uint64_t unique;	/* Message-ID's random part */
};

/*
 * The RFC 5322 message: Date, From, To, Subject, Message-ID (at the
 * sender's domain), MIME headers for UTF-8 text, Auto-Submitted, a blank
 * line, the body with CRLF line ends.  Returns 0, or -EINVAL (a field with
 * CR or LF) or -ENOMEM; out is reset first.
 */
int alerts_format(const struct alert_mail_text *, struct buf *out);

#endif
