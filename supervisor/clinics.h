/*
 * Clinics as the supervisor schedules them: a queue of work, a global cap
 * on concurrent workers, and per-clinic failure handling.
 *
 * A clinic has at most one worker at a time; requests for a clinic that is
 * running or queued wait behind it (each job kind at most once).  Clinics
 * with work wait in one FIFO, each clinic once, so a clinic with many
 * requests cannot starve the others: after each job it goes to the back.
 * After a failure the clinic waits an exponentially growing, jittered
 * delay and retries; a success resets it; workers.failure_threshold
 * consecutive failures open the circuit breaker: the clinic is held, an
 * alert is raised and audited, and only an operator's request (a manual
 * trigger) lets it run again.  Invalid credentials hold it at once: retrying
 * would lock the clinic's IDEXX account.
 */
#ifndef VS_SUPERVISOR_CLINICS_H
#define VS_SUPERVISOR_CLINICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "supervisor/workers.h"

struct clinic;

enum clinic_state {
	CLINIC_IDLE,
	CLINIC_QUEUED,
	CLINIC_RUNNING,
	CLINIC_BACKOFF,
	CLINIC_HELD,
};

/* Why a held clinic is held. */
enum clinic_hold {
	CLINIC_HOLD_NONE,
	CLINIC_HOLD_FAILURES,		/* the circuit breaker */
	CLINIC_HOLD_CREDENTIALS,	/* refused, missing or suspended */
	CLINIC_HOLD_REVOKED,
};

/* Longest clinic id; ids are [A-Za-z0-9_-], not starting with '_'. */
#define CLINIC_ID_MAX 64

bool clinic_id_valid(const char *);

/*
 * Ask for a job of kind for clinic id (created if unknown).  manual marks
 * an operator's request, which also releases a held clinic.  Returns 0,
 * -EINVAL for a bad id, -ESHUTDOWN while stopping.
 */
int clinic_request(const char *id, enum worker_job_kind kind, bool manual);

/*
 * As clinic_request() from an operator, for the clinic-local dates start
 * .. end ("YYYY-MM-DD HH:MM:SS", see jobspec_window_parse()) instead of
 * the computed window: the clinic's next job of that kind uses them (a
 * newer window replaces one not used yet).  Same returns.
 */
int clinic_request_window(const char *id, enum worker_job_kind kind,
    const char *start, const char *end);

/*
 * Validate new credentials (owned from here: wiped and freed when used or
 * dropped) with a VALIDATE_CREDENTIALS job for clinic id, queued like any
 * job (behind a running one), and released from a hold.  cb runs once,
 * with the job's outcome, or with NULL when the job was cancelled before
 * it ran (revocation, shutdown, superseded by a newer request).  The
 * credentials stored for the clinic, and its failure count, are untouched
 * whatever the outcome: storing them is the caller's move.  Returns 0,
 * -EINVAL (bad id) or -ESHUTDOWN; cb is not called then.
 */
struct vault_creds;
typedef void clinic_validate_cb(const char *id,
    const struct worker_outcome *o, void *arg);
int clinic_validate(const char *id, struct vault_creds *creds,
    clinic_validate_cb *cb, void *arg);

/*
 * The clinic's credentials were revoked: kill its worker now (SIGKILL,
 * no grace), drop its queued and pending jobs, and hold it until
 * credentials are set again (clinic_credentials_set()).  Audited.
 */
void clinic_revoke(const char *id, const char *why);

/* Credentials were stored (validated): release a clinic held for them. */
void clinic_credentials_set(const char *id);

/*
 * The scheduler's hooks (NULL: none).  gate(id, manual) is asked before a
 * queued clinic's job starts (manual: an operator asked for it); false
 * leaves the clinic idle with its work pending until clinic_kick().
 * ended(id, kind, outcome, idle) runs after each job; idle is true when
 * nothing more of the clinic is queued or running.
 */
struct worker_outcome;
typedef bool clinics_gate_fn(const char *id, bool manual);
typedef void clinics_ended_fn(const char *id, enum worker_job_kind kind,
    const struct worker_outcome *o, bool idle);
void clinics_set_hooks(clinics_gate_fn *gate, clinics_ended_fn *ended);

/* Queue an idle clinic's pending work again (the gate said no before). */
void clinic_kick(const char *id);

/*
 * Stop the clinic's job now (its lease was lost): the worker is killed
 * (cancelled, not a failure), a queued clinic leaves the queue; work still
 * pending stays for clinic_kick().
 */
void clinic_cancel(const char *id, const char *why);

/* Start queued clinics while the cap allows; safe to call any time. */
void clinics_pump(void);

/* Stop: drop queued work and cancel running workers. */
void clinics_stop(void);

struct clinic *clinic_find(const char *id);
const char *clinic_name(const struct clinic *);
enum clinic_state clinic_state(const struct clinic *);
const char *clinic_state_name(enum clinic_state);
enum clinic_hold clinic_hold_reason(const struct clinic *);
const char *clinic_hold_name(enum clinic_hold);
unsigned clinic_failures(const struct clinic *);
uint64_t clinic_jobs_ok(const struct clinic *);
uint64_t clinic_jobs_failed(const struct clinic *);
/* Class of the last job's outcome, or NULL if none ran yet. */
const char *clinic_last_outcome(const struct clinic *);
/* Monotonic ms at which a clinic in backoff retries. */
uint64_t clinic_retry_at_ms(const struct clinic *);

size_t clinics_count(void);
unsigned clinics_running(void);
unsigned clinics_queued(void);
void clinics_foreach(void (*fn)(struct clinic *, void *), void *arg);
void clinics_free_all(void);

#endif
