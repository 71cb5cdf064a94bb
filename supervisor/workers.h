/*
 * Running workers: one sandboxed vetsync-worker process per clinic job.
 *
 * worker_start() spawns the process, sends it Setup, waits for its Hello,
 * sends the Job and then reads its frames through a dispatch table of
 * { message kind, states in which it is allowed, handler } (STYLE §6).
 * Anything else is a protocol violation: the worker is killed.  A job's
 * wall-clock timeout and its silence timeout kill it too.  When the process
 * has been reaped (workers_reap() on SIGCHLD) its exit is classified, the
 * outcome is audited, and the owner's callback runs once; the struct worker
 * is freed right after the callback returns.
 *
 * The supervisor never dies because of a worker: every failure here is
 * logged, audited, and ends in that worker's death alone.
 */
#ifndef VS_SUPERVISOR_WORKERS_H
#define VS_SUPERVISOR_WORKERS_H

#include <sys/types.h>

#include <stdbool.h>
#include <stdint.h>

struct worker;

enum worker_exit_class {
	WORKER_EXIT_CLEAN,	/* exit 0 after a result */
	WORKER_EXIT_ERROR,	/* non-zero exit code */
	WORKER_EXIT_SIGNAL,	/* killed by a signal we did not send */
	WORKER_EXIT_SECCOMP,	/* SIGSYS: a syscall outside the policy */
	WORKER_EXIT_OOM,	/* killed by the cgroup's OOM killer */
	WORKER_EXIT_TIMEOUT,	/* the job's wall-clock limit */
	WORKER_EXIT_SILENCE,	/* no frame within the silence timeout */
	WORKER_EXIT_PROTOCOL,	/* broke the wire contract */
	WORKER_EXIT_CANCELLED,	/* cancelled (revocation, shutdown) */
	WORKER_EXIT_SPAWN,	/* failed before running the worker */
};

enum worker_job_kind {
	WORKER_JOB_RECONCILE_NOTES,
	WORKER_JOB_SYNC_SCHEDULE,
	WORKER_JOB_VALIDATE_CREDENTIALS,
};

struct vault_creds;

struct worker_job {
	uint64_t id;
	enum worker_job_kind kind;
	const char *clinic;	/* clinic id, [A-Za-z0-9_-] */
	const char *timezone;	/* IANA name */
	/*
	 * The clinic's credentials, already decrypted (credstore.h) or new
	 * ones to validate; NULL: read from the file vault at send time.
	 * worker_start() takes them over, and wipes and frees them once the
	 * Job is sent (or the worker is gone).
	 */
	struct vault_creds *creds;
};

struct worker_outcome {
	enum worker_exit_class cls;
	int code;		/* exit code, or signal number */
	bool result_ok;		/* a JobResult with status OK arrived */
	bool invalid_credentials;	/* IDEXX refused the login */
	int result_status;	/* JobResult status, -1 if none */
	char detail[256];	/* classification detail, already escaped */
	uint64_t consultations, appointments, requests;
	uint64_t memory_peak;	/* bytes, from the cgroup; 0 if unknown */
	uint64_t cpu_usec;	/* CPU time, from the cgroup; 0 if unknown */
	uint64_t spawn_to_ready_us;	/* fork to Hello */
	uint64_t duration_ms;
};

typedef void (*worker_done_cb)(const struct worker_job *,
    const struct worker_outcome *, void *arg);

/*
 * Start a worker for job (copied; job->creds taken over, even on failure).
 * done runs exactly once, after the
 * process is gone, even when the spawn itself failed later in the child.
 * Returns 0, or -errno when no process could be started at all (done is
 * then not called).
 */
int worker_start(const struct worker_job *job, worker_done_cb done, void *arg,
    struct worker **ret_worker);

/* Ask the worker to stop its job (Cancel), killing it after stop_timeout. */
void worker_cancel(struct worker *, const char *why);

/* Kill now; the outcome class is cls unless the process already ended. */
void worker_kill(struct worker *, enum worker_exit_class cls,
    const char *detail);

/*
 * Keep workers.prespawn spare workers started and sandboxed (see
 * workers.c).  Safe to call any time; does nothing while stopping or
 * after spares kept failing to start.
 */
void workers_prespawn(void);

/* Kill the spares (their Setup is stale after a reload); then prespawn. */
void workers_retire_spares(void);

/* Free what the pool holds; after the last worker is reaped. */
void workers_release(void);

/* Reap every exited child; call on SIGCHLD. */
void workers_reap(void);

/* Running workers, and a walk over them for status and shutdown. */
unsigned workers_count(void);
void workers_foreach(void (*fn)(struct worker *, void *), void *arg);
const char *worker_clinic(const struct worker *);
pid_t worker_pid(const struct worker *);
uint64_t worker_job_id(const struct worker *);
const char *worker_state_name(const struct worker *);

const char *worker_exit_class_name(enum worker_exit_class);
const char *worker_job_kind_name(enum worker_job_kind);

#endif
