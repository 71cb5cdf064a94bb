/*
 * The scheduler (DESIGN §6): which clinics run when, without anyone
 * asking.  Clinics come from PostgreSQL -- users with idexx_sync_enabled
 * and credentials in state 'active' -- read at start, again on a NOTIFY
 * on vetsync_clinics (migrations/0008_scheduler.sql) and periodically as a
 * safety net.  Each gets a row in clinic_leases with when its notes
 * reconciliation and its nightly schedule sync are next due (planned with
 * schedule.h, catching up once on a slot missed while no instance ran).
 *
 * Due clinics are claimed through leases (lease.h) and handed to clinics.c
 * as ordinary requests, which keeps one job per clinic at a time, the
 * global cap and the backoff.  A job starts only under a fresh lease (the
 * gate below), operators' requests included: they claim the lease on
 * demand and so queue behind a job another instance is running.  The one
 * exception is an operator's request while the database is unreachable,
 * which runs as it always did (there is nobody to ask), and says so.  When
 * a clinic's work is done its next due times are written and the lease
 * freed; on stop every lease is freed (those of running jobs when the jobs
 * end).
 *
 * VETSYNC_SCHEDULE_SCALE=N in the environment (tests only; 1 .. 100000)
 * divides schedule.notes_interval, schedule.jitter and the safety-net
 * period by N, so a test sees several notes slots in a minute.
 */
#ifndef VS_SUPERVISOR_SCHEDULER_H
#define VS_SUPERVISOR_SCHEDULER_H

struct db_async;
struct event_base;

/*
 * Start scheduling with the event loop's database (not owned; NULL: no
 * scheduler, jobs run only when asked, as without a database).
 */
void scheduler_start(struct event_base *, struct db_async *);
/* vetsyncd is stopping: claim nothing more, free the leases. */
void scheduler_stop(void);
/* Free everything; after the event loop, before the database goes. */
void scheduler_free(void);

#endif
