/*
 * The audit log's one writer into PostgreSQL: it drains the spool
 * (audit.h), in order, into the hash-chained idexx_sync_audit_log through
 * the event loop's database layer (db.h, db_async_*).
 *
 * Records go out in batches of up to AUDITDB_BATCH, one unit each (BEGIN,
 * SET LOCAL ROLE service_role, one INSERT, COMMIT), one unit at a time.
 * Every row carries its record's key "<epoch>/<seq>" in
 * metadata->>'spool_key', unique in the table
 * (migrations/0005_audit_writer.sql), and the INSERT skips the keys already
 * there: a unit sent again after a lost connection, or records replayed
 * after a crash between the COMMIT and the cursor, never double a row.
 * Only once the unit has committed is the batch confirmed to the spool
 * (cursor, then truncation).
 *
 * Columns: action = the event; user_id and clinic_id = the clinic when it
 * is a users.id uuid (otherwise the clinic is only in metadata); actor
 * ("vetsyncd" unless the record names one); session_id ("job-<id>" or the
 * record's session); status (the record's, or "ok"/"failed" from its "ok"
 * field); policy_hash (the record's, or its "policy_sha256" field);
 * error_details = its "error"; "timestamp" = when the event happened;
 * metadata = everything else, with clinic, job, seq, spool_key and
 * instance.
 *
 * A unit the server refuses (no migration 0005, a revoked grant) is retried
 * with a doubling delay (1 s .. 60 s), logged once per episode; nothing is
 * skipped.  While the database is down the unit waits in the layer's queue
 * and the spool takes what comes, up to its limit.
 */
#ifndef VS_SUPERVISOR_AUDITDB_H
#define VS_SUPERVISOR_AUDITDB_H

#include <stdbool.h>
#include <stdint.h>

struct db_async;
struct event_base;

#define AUDITDB_BATCH		200		/* records per unit */
#define AUDITDB_BATCH_BYTES	(256 * 1024)	/* about, per unit */
#define AUDITDB_DRAIN_MS	3000		/* auditdb_drain() at exit */

/*
 * Start writing the open spool to db (not owned; it must outlive the
 * writer until auditdb_stop()).  instance names this vetsyncd in each
 * row's metadata.  What an earlier run left in the spool goes first.
 */
void auditdb_start(struct event_base *, struct db_async *db,
    const char *instance);

/*
 * At exit, with the loop stopped: run it until the spool is written or
 * timeout_ms have passed (at once when the database is not connected).
 * Returns true when nothing is left to write.
 */
bool auditdb_drain(uint64_t timeout_ms);

/* Stop; what is unwritten stays in the spool for the next start. */
void auditdb_stop(void);

/* The writer and its spool, for status and metrics. */
struct auditdb_stats {
	uint64_t spool_bytes;		/* in the spool file */
	uint64_t backlog_bytes;		/* not yet confirmed by the database */
	uint64_t confirmed_seq;		/* the last record confirmed */
	uint64_t written;		/* records confirmed since the start */
	uint64_t refused;		/* records the full spool refused */
	bool retrying;			/* the database refused the last batch */
};
void auditdb_stats(struct auditdb_stats *ret);

#endif
