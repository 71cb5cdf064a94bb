/*
 * Reconciliation of a worker's results into the clinic's cases (PRD
 * FR-1.5, FR-1.6; DESIGN §5), through the event loop's database layer.
 *
 * A job's Consultation and Appointment records are collected while it runs
 * (at most RECONCILE_RECORDS_MAX; the rest are counted as failed), and
 * applied when it ends, all in ONE transaction scoped to the tenant
 * (SET LOCAL ROLE vetsync_tenant, request.jwt.claims naming the clinic's
 * user), so row-level security bounds even the daemon's writes.  The
 * clinic id of vetsyncd is the users.id uuid; a job for a clinic whose id
 * is not a uuid (the test clinics of the database-less tests) does no
 * database work at all.
 *
 * Notes: each consultation is matched to its case by consultation id, else
 * by IDEXX appointment id, else by patient (name or IDEXX patient id) and
 * clinic-local day of the case's scheduled_at (the clinic is the tenant);
 * more than one candidate is recorded in consultation_sync_status as
 * 'ambiguous' with the candidates and never guessed; an unmatched completed
 * consultation creates a case.  Notes, discharge summary, products and
 * services and the status go into the case's metadata under "idexx".
 * Schedule: tomorrow's appointments create or update cases by appointment
 * id; cancelled ones are marked (status 'cancelled').  Applying the same
 * results again writes nothing: rows are updated only when a value
 * differs, so updated_at stays.
 *
 * idexx_sync_sessions: a 'running' row when the job starts, then
 * completed / failed / timeout with counts and error details, written in
 * the same transaction as the results; failed too when the transaction
 * is refused or the database queue is full.  Each row names the instance
 * that opened it, so that the next start of that instance can close what
 * it left running (reconcile_recover()).
 */
#ifndef VS_SUPERVISOR_RECONCILE_H
#define VS_SUPERVISOR_RECONCILE_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/frame.h"

#define RECONCILE_RECORDS_MAX	10000	/* per job */

struct db_async;
struct reconcile;
struct worker_job;
struct worker_outcome;

/* The database to write to (not owned); NULL: none, every call a no-op. */
void reconcile_init(struct db_async *);

/*
 * vetsyncd starts (call once, after reconcile_init()): name is this
 * instance (instance.name), written on every session this process opens.
 * Sessions of this instance still 'running' were left by a run that died
 * before closing them: they become 'timeout' when they started more than
 * job_timeout_ms ago, else 'failed', with error details {"reason":
 * "daemon restarted"}, each audited (sync_session_closed).  Sessions of
 * other instances sharing the database are left alone.  Queued ahead of
 * any job's unit, so it runs first once the database is reached.
 */
void reconcile_recover(const char *name, uint64_t job_timeout_ms);

/* True for a users.id uuid in its lowercase text form. */
bool reconcile_uuid_valid(const char *);

/*
 * A job starts: queue its 'running' session row.  Returns the collector
 * (reconcile_finish() or reconcile_free()), or NULL when the job does no
 * database work (no database, or a clinic id that is not a uuid).
 */
struct reconcile *reconcile_start(const struct worker_job *);

/* Keep what the records need (copied: frames are freed after dispatch). */
void reconcile_record(struct reconcile *, const Vetsync__Envelope *);

/*
 * The job ended with outcome o: apply its records if it delivered an OK
 * result, and close its session either way.  Frees r.  NULL is fine.
 */
void reconcile_finish(struct reconcile *r, const struct worker_outcome *o);

/*
 * True while the results waiting for the database exceed
 * RECONCILE_BACKLOG_MAX bytes: starting more jobs then would only pile up
 * results the database queue may have to refuse, so the caller waits.
 */
#define RECONCILE_BACKLOG_MAX	((size_t)24 << 20)
bool reconcile_backlogged(void);

/* Drop without writing anything more; NULL is fine. */
void reconcile_free(struct reconcile *);

#endif
