/*
 * The supervisor's audit trail: one writer, structured records.
 *
 * Every credential access, login, sync start/end, worker exit, policy or
 * protocol violation, circuit-breaker trip, discharge call, key rotation
 * and revocation is recorded here with its clinic, job, actor, session and
 * status.  Records are appended as one JSON object per line to the local
 * spool file and fsync'd before audit_emit() returns, so none is lost if
 * the process dies right after.  The database writer (auditdb.h) drains
 * the spool, in order, into the hash-chained idexx_sync_audit_log; until
 * the database is reachable the spool is the audit log.
 *
 * The spool is bounded (audit_open()): a record that would grow it past
 * its limit is refused, counted, and logged loudly once per episode (the
 * episode ends when a record is accepted again); nothing already spooled
 * is ever dropped.
 *
 * Each record carries a seq that never repeats within the spool's epoch (a
 * random 128-bit number kept in the cursor file): "<epoch>/<seq>" is the
 * record's key, which the database writer stores with the row so that
 * replaying a record never doubles it.  The cursor file ("<spool>.cursor",
 * replaced atomically) holds the epoch and the seq of the last record the
 * database has confirmed; the spool is truncated once everything in it is
 * confirmed, and compacted when a confirmed prefix grows large (or when the
 * limit is reached).
 *
 * Records never carry secrets: callers pass identifiers, classes and counts,
 * never credentials or page content.  One process, one spool: these
 * functions keep global state and are not thread-safe.
 */
#ifndef VS_SUPERVISOR_AUDIT_H
#define VS_SUPERVISOR_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define AUDIT_SPOOL_MAX		(64ULL << 20)	/* default limit, bytes */
#define AUDIT_SPOOL_MIN		4096ULL		/* the smallest accepted */
#define AUDIT_SPOOL_ENV		"VETSYNC_AUDIT_SPOOL_MAX"
#define AUDIT_RECORD_MAX	(64 * 1024)	/* one line, bytes */
#define AUDIT_EPOCH_LEN		33		/* 32 hex digits, NUL */

/*
 * Open (creating, mode 0600) the spool file and its cursor file
 * "<path>.cursor"; a record cut short by a crash at the end of the spool
 * is removed, and numbering resumes after the highest seq seen.  The limit
 * is AUDIT_SPOOL_MAX, or $VETSYNC_AUDIT_SPOOL_MAX (bytes, at least
 * AUDIT_SPOOL_MIN) when set.  Returns 0 or -errno; a bad limit or cursor
 * is -EINVAL, and is logged naming what was wrong.
 */
int audit_open(const char *path);
void audit_close(void);

/* One event.  Strings are copied; NULL leaves the field out. */
struct audit_event {
	const char *event;	/* the action, e.g. "worker_exit" */
	const char *clinic;	/* the clinic's id */
	uint64_t job;		/* the job's id; 0: none */
	const char *session;	/* NULL: "job-<job>" when there is a job */
	const char *actor;	/* NULL: "vetsyncd" */
	const char *status;	/* "ok", "failed", an exit class, ... */
	const char *policy_hash;	/* where the policy in force matters */
	json_t *error;		/* error_details; reference stolen */
};

/*
 * Append one record {"ts", "seq", "event", "clinic", "job", "session",
 * "actor", "status", "policy_hash", "error", ...fields} and fsync it.
 * fields is a JSON object whose reference is stolen (may be NULL); its
 * keys must not be those above.  Returns 0, -ENOSPC (refused: the spool is
 * at its limit), -EMSGSIZE (one record over AUDIT_RECORD_MAX), -EBADF (no
 * spool open) or -EIO.  A failure is logged; callers may carry on.
 */
int audit_emit(const struct audit_event *, json_t *fields);

/* audit_emit() with only event, clinic and job. */
void audit_record(const char *event, const char *clinic, uint64_t job,
    json_t *fields);

/* Records written, and refused, since audit_open(). */
uint64_t audit_count(void);
uint64_t audit_refused(void);

/* Called after every record appended (the database writer's kick). */
typedef void audit_notify_fn(void *arg);
void audit_set_notify(audit_notify_fn *fn, void *arg);

/*
 * The reading side, for the database writer.  Records are handed out in
 * spool order, each once, until audit_spool_rewind() hands the unconfirmed
 * ones out again.
 */
struct audit_batch {
	json_t *records;	/* array of the records, oldest first */
	uint64_t first_seq;
	uint64_t last_seq;
	uint64_t end;		/* spool offset after the last record */
};

/* The spool's epoch (32 hex digits), "" when no spool is open. */
const char *audit_spool_epoch(void);

/*
 * Read up to max records (and about max_bytes) not yet handed out into
 * *b.  Returns the number read (0: nothing new), or -errno.  Lines that are
 * not a record are skipped with a warning naming their offset.  Free the
 * batch with audit_batch_release().
 */
int audit_spool_next(size_t max, size_t max_bytes, struct audit_batch *b);
void audit_batch_release(struct audit_batch *);

/*
 * The database holds every record up to b (batches are confirmed in the
 * order they were read): the cursor file is replaced, then the spool is
 * truncated when nothing is left in it, or compacted when the confirmed
 * prefix is large.  Returns 0 or -errno (the cursor could not be written;
 * those records will be replayed, which the keys make harmless).
 */
int audit_spool_confirm(const struct audit_batch *b);

/* Hand out again everything read but not confirmed. */
void audit_spool_rewind(void);

/* Bytes in the spool, and bytes not yet confirmed. */
uint64_t audit_spool_size(void);
uint64_t audit_spool_backlog(void);
/* The seq of the last record confirmed (0: none). */
uint64_t audit_spool_confirmed(void);

#endif
