/*
 * Leases: how vetsyncd instances sharing one database divide the clinics
 * (DESIGN §6), held in clinic_leases (migrations/0008_scheduler.sql).
 *
 * An instance holds a clinic's lease only while it has work for it (queued
 * or running).  It claims due clinics whose lease is free or expired with
 * SELECT ... FOR UPDATE SKIP LOCKED, at most its share (the due clinics
 * divided by the live instances, and no more than it can run), renews
 * every lease it holds each lease_time/3 with its heartbeat, and frees a
 * lease when the clinic's work is done (with the clinic's next due times)
 * or when it stops.
 *
 * A lease is fresh while its last successful claim or renewal was sent
 * less than 2/3 of lease_time ago: the row then still has a third of
 * lease_time to run, whatever the clocks.  Only a fresh lease lets a job
 * start (lease_fresh()); a lease that stops being fresh (the database is
 * unreachable, or another instance took it) is dropped here and lost_fn
 * is told, which cancels the clinic's job: a lease lapses rather than a
 * clinic running unleased.
 *
 * The module keeps its own state; one instance per process.
 */
#ifndef VS_SUPERVISOR_LEASE_H
#define VS_SUPERVISOR_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct db_async;

#define LEASE_ID_LEN	36	/* a users.id uuid */

/* A clinic this instance just claimed, and what is due for it. */
struct lease_claim {
	const char *user;
	const char *timezone;	/* users.timezone, "" when unset */
	bool notes_due, schedule_due;
};

typedef void lease_claimed_fn(const struct lease_claim *, void *arg);
/*
 * got: the lease is ours; exists: the user exists at all (a claim that
 * failed says got false, exists true: ask again later).
 */
typedef void lease_one_fn(const char *user, bool got, bool exists,
    void *arg);
typedef void lease_lost_fn(const char *user, void *arg);

/*
 * Start (db not owned): free the leases a previous run under this
 * instance name left.  Strings are copied.
 */
void lease_init(struct db_async *db, const char *instance, uint64_t lease_ms,
    lease_lost_fn *lost, void *arg);
/* Forget everything (no database work); for the end of the process. */
void lease_reset(void);

/* Claim up to max due clinics; fn runs for each one claimed. */
void lease_claim_due(unsigned max, lease_claimed_fn *fn, void *arg);
/* Claim clinic user, due or not (an operator's request). */
void lease_claim_one(const char *user, lease_one_fn *fn, void *arg);
/* Renew them all and beat the heartbeat; drop the stale ones. */
void lease_renew(void);
/*
 * Free user's lease, setting its next due times (epoch ms; -1 keeps the
 * stored one) and the latest session's next_scheduled_sync.
 */
void lease_release(const char *user, int64_t next_notes_ms,
    int64_t next_schedule_ms);
/* Free every lease but those in keep (n ids), and the heartbeat row. */
void lease_release_all(const char *const *keep, size_t n);

bool lease_held(const char *user);
bool lease_fresh(const char *user);
/* Monotonic ms of the claim of user's lease, 0 if not held. */
uint64_t lease_claimed_ms(const char *user);
size_t lease_count(void);
/* Call fn for each lease held (fn must not release). */
void lease_foreach(void (*fn)(const char *user, void *), void *arg);
/* Claims or renewals in flight. */
bool lease_busy(void);

#endif
