/*
 * The clinic table, the fair run queue and per-clinic backoff and circuit
 * breaking (see clinics.h).  Clinics live in a small chained hash table;
 * the run queue is a TAILQ of clinics with pending work.
 */
#include <sys/queue.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/alerts.h"
#include "supervisor/api.h"
#include "supervisor/audit.h"
#include "supervisor/clinics.h"
#include "supervisor/config.h"
#include "supervisor/credstore.h"
#include "supervisor/events.h"
#include "supervisor/jobspec.h"
#include "supervisor/reconcile.h"
#include "supervisor/supervisor.h"
#include "supervisor/vault.h"
#include "supervisor/workers.h"

#define CLINIC_HASH_BUCKETS 1024

struct clinic {
	char *id;
	enum clinic_state state;
	unsigned pending;		/* bit per enum worker_job_kind */
	unsigned failures;		/* consecutive */
	uint64_t retry_at_ms;
	uint64_t jobs_ok, jobs_failed;
	const char *last_outcome;
	struct event *retry_timer;
	struct worker *worker;
	enum clinic_hold hold;
	/* A credentials fetch in flight for job fetch_job (state RUNNING). */
	bool fetching;
	uint64_t fetch_job;
	enum worker_job_kind fetch_kind;
	/* New credentials waiting for their validation job ... */
	struct vault_creds *validate_creds;
	clinic_validate_cb *validate_cb;
	void *validate_arg;
	/* ... and the waiter of the one running. */
	bool validating;
	bool manual;		/* an operator asked for the queued work */
	/* An operator's window for the next job of kind win_kind. */
	bool has_window;
	enum worker_job_kind win_kind;
	char win_start[JOBSPEC_WINDOW_LEN], win_end[JOBSPEC_WINDOW_LEN];
	clinic_validate_cb *run_cb;
	void *run_arg;
	struct clinic *hash_next;
	TAILQ_ENTRY(clinic) queue_entry;
};

static struct clinic *clinic_table[CLINIC_HASH_BUCKETS];
static TAILQ_HEAD(, clinic) run_queue = TAILQ_HEAD_INITIALIZER(run_queue);
static size_t n_clinics;
static unsigned n_running, n_queued;
static clinics_gate_fn *gate_hook;
static clinics_ended_fn *ended_hook;

static void clinic_job_done(const struct worker_job *,
    const struct worker_outcome *, void *);

bool
clinic_id_valid(const char *id)
{
	size_t n = 0;

	for (; id[n] != '\0'; n++) {
		char c = id[n];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	/* A leading '_' is kept for vetsyncd's own cgroups ("_spares"). */
	return n > 0 && n <= CLINIC_ID_MAX && id[0] != '_';
}

static unsigned
clinic_hash(const char *id)
{
	unsigned h = 2166136261u;	/* FNV-1a */

	for (; *id != '\0'; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % CLINIC_HASH_BUCKETS;
}

struct clinic *
clinic_find(const char *id)
{
	struct clinic *c;

	for (c = clinic_table[clinic_hash(id)]; c != NULL; c = c->hash_next)
		if (strcmp(c->id, id) == 0)
			return c;
	return NULL;
}

static void
clinic_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct clinic *c = arg;

	if (c->state != CLINIC_BACKOFF)
		return;
	c->state = CLINIC_IDLE;
	if (c->pending != 0 && !sv->stopping) {
		c->state = CLINIC_QUEUED;
		TAILQ_INSERT_TAIL(&run_queue, c, queue_entry);
		n_queued++;
	}
	clinics_pump();
}

static struct clinic *
clinic_get(const char *id)
{
	struct clinic *c;
	unsigned h;

	if ((c = clinic_find(id)) != NULL)
		return c;
	c = xcalloc(1, sizeof(*c));
	c->id = xstrdup(id);
	c->state = CLINIC_IDLE;
	c->retry_timer = evtimer_new(sv->base, clinic_retry_cb, c);
	if (c->retry_timer == NULL)
		fatalx("cannot create a timer");
	h = clinic_hash(id);
	c->hash_next = clinic_table[h];
	clinic_table[h] = c;
	n_clinics++;
	return c;
}

static void
clinic_enqueue(struct clinic *c)
{
	if (c->state != CLINIC_IDLE)
		return;
	c->state = CLINIC_QUEUED;
	TAILQ_INSERT_TAIL(&run_queue, c, queue_entry);
	n_queued++;
}

static void
clinic_release(struct clinic *c, const char *by)
{
	json_t *f = json_object();

	log_info("clinic=%s: released from hold (%s) by %s", c->id,
	    clinic_hold_name(c->hold), by);
	json_object_set_new(f, "hold", json_string(clinic_hold_name(c->hold)));
	json_object_set_new(f, "by", json_string(by));
	audit_record("clinic_released", c->id, 0, f);
	c->failures = 0;
	c->hold = CLINIC_HOLD_NONE;
	c->state = CLINIC_IDLE;
}

static void validate_drop(struct clinic *);

/* Hold c: nothing queued stays, and a waiting validation is told. */
static void
clinic_set_hold(struct clinic *c, enum clinic_hold why)
{
	c->state = CLINIC_HELD;
	c->hold = why;
	c->pending = 0;
	validate_drop(c);
}

int
clinic_request(const char *id, enum worker_job_kind kind, bool manual)
{
	struct clinic *c;

	if (!clinic_id_valid(id))
		return -EINVAL;
	if (sv->stopping)
		return -ESHUTDOWN;
	c = clinic_get(id);
	if (c->state == CLINIC_HELD) {
		/* Revoked: only new credentials (clinic_validate) release. */
		if (!manual || c->hold == CLINIC_HOLD_REVOKED)
			return 0;
		clinic_release(c, "an operator");
	}
	c->pending |= 1u << kind;
	c->manual = c->manual || manual;
	if (c->state == CLINIC_BACKOFF && manual) {
		/* An operator asked: do not make them wait for the backoff. */
		evtimer_del(c->retry_timer);
		c->state = CLINIC_IDLE;
	}
	clinic_enqueue(c);
	clinics_pump();
	return 0;
}

int
clinic_request_window(const char *id, enum worker_job_kind kind,
    const char *start, const char *end)
{
	struct clinic *c;

	if (!clinic_id_valid(id))
		return -EINVAL;
	if (sv->stopping)
		return -ESHUTDOWN;
	/* Set first: the request may start the job at once. */
	c = clinic_get(id);
	c->has_window = true;
	c->win_kind = kind;
	snprintf(c->win_start, sizeof(c->win_start), "%s", start);
	snprintf(c->win_end, sizeof(c->win_end), "%s", end);
	return clinic_request(id, kind, true);
}

/* Drop new credentials still waiting for their job; their waiter hears. */
static void
validate_drop(struct clinic *c)
{
	clinic_validate_cb *cb = c->validate_cb;

	if (c->validate_creds != NULL) {
		vault_creds_release(c->validate_creds);
		free(c->validate_creds);
		c->validate_creds = NULL;
	}
	c->validate_cb = NULL;
	if (cb != NULL)
		cb(c->id, NULL, c->validate_arg);
}

int
clinic_validate(const char *id, struct vault_creds *creds,
    clinic_validate_cb *cb, void *arg)
{
	struct clinic *c;

	if (!clinic_id_valid(id) || sv->stopping) {
		vault_creds_release(creds);
		free(creds);
		return sv->stopping ? -ESHUTDOWN : -EINVAL;
	}
	c = clinic_get(id);
	validate_drop(c);	/* an older request, superseded */
	c->validate_creds = creds;
	c->validate_cb = cb;
	c->validate_arg = arg;
	c->manual = true;
	if (c->state == CLINIC_HELD)
		clinic_release(c, "new credentials");
	c->pending |= 1u << WORKER_JOB_VALIDATE_CREDENTIALS;
	if (c->state == CLINIC_BACKOFF) {
		evtimer_del(c->retry_timer);
		c->state = CLINIC_IDLE;
	}
	clinic_enqueue(c);
	clinics_pump();
	return 0;
}

void
clinic_credentials_set(const char *id)
{
	struct clinic *c = clinic_find(id);

	if (c != NULL && c->state == CLINIC_HELD &&
	    (c->hold == CLINIC_HOLD_CREDENTIALS ||
	    c->hold == CLINIC_HOLD_REVOKED))
		clinic_release(c, "new credentials");
}

static unsigned
bits(unsigned v)
{
	unsigned n = 0;

	for (; v != 0; v &= v - 1)
		n++;
	return n;
}

void
clinic_revoke(const char *id, const char *why)
{
	struct clinic *c = clinic_find(id);
	json_t *f = json_object();
	unsigned dropped = 0;

	json_object_set_new(f, "reason", json_string(why));
	if (c == NULL) {
		json_object_set_new(f, "worker_killed", json_false());
		json_object_set_new(f, "jobs_cancelled", json_integer(0));
		audit_record("credentials_revoked", id, 0, f);
		return;
	}
	dropped = bits(c->pending);
	validate_drop(c);
	json_object_set_new(f, "worker_killed",
	    json_boolean(c->worker != NULL));
	if (c->worker != NULL)
		json_object_set_new(f, "pid",
		    json_integer(worker_pid(c->worker)));
	switch (c->state) {
	case CLINIC_QUEUED:
		TAILQ_REMOVE(&run_queue, c, queue_entry);
		n_queued--;
		break;
	case CLINIC_BACKOFF:
		evtimer_del(c->retry_timer);
		break;
	case CLINIC_RUNNING:
		if (c->fetching) {
			c->fetching = false;
			n_running--;
		} else if (c->worker != NULL) {
			/* clinic_job_done() sees the hold and keeps it. */
			dropped++;
			worker_kill(c->worker, WORKER_EXIT_CANCELLED, why);
		}
		break;
	case CLINIC_IDLE:
	case CLINIC_HELD:
		break;
	}
	json_object_set_new(f, "jobs_cancelled", json_integer(dropped));
	clinic_set_hold(c, CLINIC_HOLD_REVOKED);
	log_warnx("clinic=%s: credentials revoked (%s): %s%u job(s) "
	    "cancelled; held until credentials are set again", c->id, why,
	    c->worker != NULL ? "worker killed, " : "", dropped);
	audit_record("credentials_revoked", c->id, 0, f);
	clinics_pump();
}

/*
 * New credentials first (the other jobs may be waiting for them), then the
 * lowest pending kind: notes, schedule, validation of the stored ones.
 */
static enum worker_job_kind
clinic_take_job(struct clinic *c)
{
	if (c->validate_creds != NULL) {
		c->pending &= ~(1u << WORKER_JOB_VALIDATE_CREDENTIALS);
		return WORKER_JOB_VALIDATE_CREDENTIALS;
	}
	for (int k = WORKER_JOB_RECONCILE_NOTES;
	    k <= WORKER_JOB_VALIDATE_CREDENTIALS; k++)
		if (c->pending & (1u << k)) {
			c->pending &= ~(1u << k);
			return (enum worker_job_kind)k;
		}
	return WORKER_JOB_RECONCILE_NOTES;
}

/* Start the worker of job; a spawn failure is a failed job like any other. */
static void
clinic_start(struct clinic *c, struct worker_job *job)
{
	struct worker_outcome o;
	int r;

	r = worker_start(job, clinic_job_done, c, &c->worker);
	if (r == 0) {
		api_job_started(job);
		events_job_started(job);
		return;
	}
	/* No process at all (fork failed). */
	log_warnx("clinic=%s job=%llu: cannot start a worker: %s", c->id,
	    (unsigned long long)job->id, strerror(-r));
	memset(&o, 0, sizeof(o));
	o.cls = WORKER_EXIT_SPAWN;
	o.result_status = -1;
	snprintf(o.detail, sizeof(o.detail), "spawn failed: %s", strerror(-r));
	clinic_job_done(job, &o, c);
}

struct fetch_ctx {
	char id[CLINIC_ID_MAX + 1];
	uint64_t job;
};

/* A held clinic's job that never ran: no worker, no failure counted. */
static void
clinic_skip(struct clinic *c, uint64_t job, enum clinic_hold why,
    const char *error)
{
	json_t *f = json_object();

	jobspec_window_drop(job);
	n_running--;
	clinic_set_hold(c, why);
	c->last_outcome = why == CLINIC_HOLD_REVOKED ? "revoked" :
	    "no_credentials";
	log_warnx("alert: clinic=%s job=%llu: not run: credentials %s; held "
	    "until credentials are set", c->id, (unsigned long long)job,
	    error);
	json_object_set_new(f, "reason", json_string(error));
	audit_record("sync_skipped", c->id, job, f);
	if (why != CLINIC_HOLD_REVOKED)
		alerts_raise(ALERT_CLINIC_HELD, c->id, "held: its "
		    "credentials are missing or suspended; no sync runs "
		    "until they are set again", "the clinic's IDEXX "
		    "credentials (vetsyncctl credentials set)");
}

static void
clinic_creds_cb(int r, const char *error, struct vault_creds *creds,
    const char *tz, void *arg)
{
	struct fetch_ctx *fc = arg;
	struct clinic *c = clinic_find(fc->id);
	struct worker_job job;
	struct worker_outcome o;

	if (c == NULL || !c->fetching || c->fetch_job != fc->job) {
		/* Revoked or stopped meanwhile: nothing runs. */
		jobspec_window_drop(fc->job);
		if (creds != NULL) {
			vault_creds_release(creds);
			free(creds);
		}
		free(fc);
		return;
	}
	c->fetching = false;
	memset(&job, 0, sizeof(job));
	job.id = fc->job;
	job.kind = c->fetch_kind;
	job.clinic = c->id;
	job.timezone = tz != NULL && *tz != '\0' ? tz :
	    sv->config->schedule.default_timezone;
	free(fc);
	if (r == -ENOENT || r == -EKEYREJECTED || r == -EKEYREVOKED) {
		clinic_skip(c, job.id, r == -EKEYREVOKED ?
		    CLINIC_HOLD_REVOKED : CLINIC_HOLD_CREDENTIALS,
		    credstore_strerror(r));
		clinics_pump();
		return;
	}
	if (r == -ECANCELED) {
		jobspec_window_drop(job.id);
		n_running--;
		c->state = CLINIC_IDLE;
		return;
	}
	if (r < 0) {
		/* The database or the keys: a failure, retried after backoff. */
		log_warnx("clinic=%s job=%llu: cannot read its credentials: %s",
		    c->id, (unsigned long long)job.id, error);
		memset(&o, 0, sizeof(o));
		o.cls = WORKER_EXIT_SPAWN;
		o.result_status = -1;
		snprintf(o.detail, sizeof(o.detail), "credentials: %s",
		    log_q(error));
		clinic_job_done(&job, &o, c);
		return;
	}
	job.creds = creds;
	clinic_start(c, &job);
}

static void
clinic_run(struct clinic *c)
{
	struct worker_job job;
	struct fetch_ctx *fc;

	memset(&job, 0, sizeof(job));
	job.id = ++sv->next_job_id;
	job.kind = clinic_take_job(c);
	job.clinic = c->id;
	job.timezone = sv->config->schedule.default_timezone;
	c->state = CLINIC_RUNNING;
	c->manual = false;
	if (c->has_window && c->win_kind == job.kind) {
		jobspec_window_set(job.id, c->win_start, c->win_end);
		c->has_window = false;
	}
	n_running++;
	if (job.kind == WORKER_JOB_VALIDATE_CREDENTIALS &&
	    c->validate_creds != NULL) {
		/* New credentials: validated as given, not as stored. */
		job.creds = c->validate_creds;
		c->validate_creds = NULL;
		c->validating = true;
		c->run_cb = c->validate_cb;
		c->run_arg = c->validate_arg;
		c->validate_cb = NULL;
		clinic_start(c, &job);
		return;
	}
	/*
	 * Credentials an operator provisioned as a systemd credential are
	 * used as they are; the others come from the database.
	 */
	if (credstore_enabled() && reconcile_uuid_valid(c->id) &&
	    !vault_has(c->id)) {
		c->fetching = true;
		c->fetch_job = job.id;
		c->fetch_kind = job.kind;
		fc = xcalloc(1, sizeof(*fc));
		snprintf(fc->id, sizeof(fc->id), "%s", c->id);
		fc->job = job.id;
		credstore_fetch(c->id, job.id,
		    job.kind == WORKER_JOB_VALIDATE_CREDENTIALS ? "validation" :
		    "sync job", clinic_creds_cb, fc);
		return;
	}
	clinic_start(c, &job);
}

static struct event *throttle_timer;

static void
throttle_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	clinics_pump();
}

void
clinics_pump(void)
{
	static bool throttled;
	struct timeval tv = { 0, 100 * 1000 };
	struct clinic *c;

	/*
	 * Backpressure: while the database is behind with earlier results,
	 * queued clinics wait (looked at again every 100 ms), so no result
	 * is ever refused for lack of room.
	 */
	if (reconcile_backlogged() && TAILQ_FIRST(&run_queue) != NULL) {
		if (!throttled)
			log_info("clinics: the database is behind with results; "
			    "%u queued clinic(s) wait", n_queued);
		throttled = true;
		if (throttle_timer == NULL &&
		    (throttle_timer = evtimer_new(sv->base, throttle_cb,
		    NULL)) == NULL)
			fatalx("cannot create a timer");
		if (!evtimer_pending(throttle_timer, NULL))
			evtimer_add(throttle_timer, &tv);
		return;
	}
	if (throttled)
		log_info("clinics: the database caught up; starting again");
	throttled = false;
	while (!sv->stopping && n_running < sv->config->workers.max_concurrent &&
	    (c = TAILQ_FIRST(&run_queue)) != NULL) {
		TAILQ_REMOVE(&run_queue, c, queue_entry);
		n_queued--;
		if (gate_hook != NULL && !gate_hook(c->id, c->manual)) {
			c->state = CLINIC_IDLE;	/* until clinic_kick() */
			continue;
		}
		clinic_run(c);
	}
}

void
clinics_set_hooks(clinics_gate_fn *gate, clinics_ended_fn *ended)
{
	gate_hook = gate;
	ended_hook = ended;
}

void
clinic_kick(const char *id)
{
	struct clinic *c = clinic_find(id);

	if (c == NULL || sv->stopping || c->state != CLINIC_IDLE ||
	    c->pending == 0)
		return;
	clinic_enqueue(c);
	clinics_pump();
}

void
clinic_cancel(const char *id, const char *why)
{
	struct clinic *c = clinic_find(id);

	if (c == NULL)
		return;
	if (c->state == CLINIC_QUEUED) {
		TAILQ_REMOVE(&run_queue, c, queue_entry);
		n_queued--;
		c->state = CLINIC_IDLE;
	} else if (c->state == CLINIC_RUNNING && c->fetching) {
		c->fetching = false;
		c->pending |= 1u << c->fetch_kind;
		c->state = CLINIC_IDLE;
		n_running--;
		clinics_pump();
	} else if (c->state == CLINIC_RUNNING && c->worker != NULL) {
		log_warnx("clinic=%s: job cancelled: %s", c->id, why);
		worker_kill(c->worker, WORKER_EXIT_CANCELLED, why);
	}
}

static uint64_t
clinic_backoff_ms(unsigned failures)
{
	uint64_t initial = sv->config->workers.backoff_initial_ms;
	uint64_t max = sv->config->workers.backoff_max_ms;
	uint64_t d = initial;

	for (unsigned i = 1; i < failures && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	/* Full jitter in the upper half: spread retries, keep a floor. */
	return d / 2 + (d > 1 ? (uint64_t)random() % (d / 2 + 1) : 0);
}

static void
clinic_hold(struct clinic *c, const char *why)
{
	json_t *f = json_object();
	char figure[256];

	clinic_set_hold(c, CLINIC_HOLD_FAILURES);
	log_warnx("alert: clinic=%s: held after %u consecutive failures: %s",
	    c->id, c->failures, why);
	json_object_set_new(f, "failures", json_integer(c->failures));
	json_object_set_new(f, "reason", json_string(why));
	audit_record("circuit_open", c->id, 0, f);
	snprintf(figure, sizeof(figure), "held after %u consecutive "
	    "failures (workers.failure_threshold %u); no sync runs until "
	    "an operator asks for one", c->failures,
	    sv->config->workers.failure_threshold);
	alerts_raise(ALERT_CLINIC_HELD, c->id, figure, "the worker exits "
	    "of the clinic in the audit log; then vetsyncctl sync to "
	    "release it");
}

static void
clinic_job_done(const struct worker_job *job, const struct worker_outcome *o,
    void *arg)
{
	struct clinic *c = arg;
	bool ok = o->cls == WORKER_EXIT_CLEAN && o->result_ok;
	struct timeval tv;
	uint64_t delay;

	jobspec_window_drop(job->id);
	c->worker = NULL;
	n_running--;
	if (c->validating) {
		/* New credentials: the verdict is the waiter's, not ours. */
		clinic_validate_cb *cb = c->run_cb;

		c->validating = false;
		c->run_cb = NULL;
		if (cb != NULL)
			cb(c->id, o, c->run_arg);
		if (c->state == CLINIC_RUNNING)
			c->state = CLINIC_IDLE;
		goto next;
	}
	c->last_outcome = ok ? "ok" : o->cls == WORKER_EXIT_CLEAN ?
	    "job_failed" : worker_exit_class_name(o->cls);
	if (job->kind == WORKER_JOB_VALIDATE_CREDENTIALS &&
	    (ok || o->invalid_credentials)) {
		credstore_mark(c->id, ok, job->id);
		events_credential_validated(c->id, ok);
	}
	if (c->state == CLINIC_HELD) {
		/* Revoked while it ran: it stays held. */
	} else if (ok) {
		c->jobs_ok++;
		c->failures = 0;
		c->state = CLINIC_IDLE;
	} else if (o->cls == WORKER_EXIT_CANCELLED) {
		c->state = CLINIC_IDLE;
	} else {
		c->jobs_failed++;
		c->failures++;
		/* The failed job is retried, after the backoff. */
		c->pending |= 1u << job->kind;
		if (o->invalid_credentials) {
			clinic_set_hold(c, CLINIC_HOLD_CREDENTIALS);
			log_warnx("alert: clinic=%s: IDEXX rejected its "
			    "credentials; held until they are set again", c->id);
			audit_record("credentials_suspended", c->id, job->id,
			    NULL);
			alerts_raise(ALERT_CLINIC_HELD, c->id, "held: IDEXX "
			    "Neo rejected its credentials", "the clinic's "
			    "IDEXX account (locked? password changed?), then "
			    "vetsyncctl credentials set");
			if (job->kind != WORKER_JOB_VALIDATE_CREDENTIALS)
				credstore_mark(c->id, false, job->id);
		} else if (c->failures >= sv->config->workers.failure_threshold)
			clinic_hold(c, o->detail);
		else {
			delay = clinic_backoff_ms(c->failures);
			c->state = CLINIC_BACKOFF;
			c->retry_at_ms = clock_mono_ms() + delay;
			tv = clock_timeval_ms(delay);
			evtimer_add(c->retry_timer, &tv);
			log_info("clinic=%s: failure %u (%s), retry in %llu ms",
			    c->id, c->failures, c->last_outcome,
			    (unsigned long long)delay);
		}
	}
next:
	api_job_ended(job, o);
	alerts_job_ended(c->id);
	events_job_ended(job, o);
	if (c->state == CLINIC_IDLE && c->pending != 0 && !sv->stopping)
		clinic_enqueue(c);
	if (ended_hook != NULL)
		ended_hook(c->id, job->kind, o, c->state != CLINIC_QUEUED &&
		    c->state != CLINIC_RUNNING);
	clinics_pump();
}

static void
cancel_one(struct worker *w, void *arg)
{
	worker_cancel(w, arg);
}

void
clinics_stop(void)
{
	struct clinic *c;

	while ((c = TAILQ_FIRST(&run_queue)) != NULL) {
		TAILQ_REMOVE(&run_queue, c, queue_entry);
		c->state = CLINIC_IDLE;
	}
	n_queued = 0;
	for (size_t i = 0; i < CLINIC_HASH_BUCKETS; i++)
		for (c = clinic_table[i]; c != NULL; c = c->hash_next) {
			if (c->fetching) {
				c->fetching = false;
				c->state = CLINIC_IDLE;
				n_running--;
			}
			validate_drop(c);
		}
	workers_foreach(cancel_one, "shutting down");
}

const char *
clinic_name(const struct clinic *c)
{
	return c->id;
}

enum clinic_state
clinic_state(const struct clinic *c)
{
	return c->state;
}

const char *
clinic_state_name(enum clinic_state s)
{
	switch (s) {
	case CLINIC_IDLE:
		return "idle";
	case CLINIC_QUEUED:
		return "queued";
	case CLINIC_RUNNING:
		return "running";
	case CLINIC_BACKOFF:
		return "backoff";
	case CLINIC_HELD:
		return "held";
	}
	return "?";
}

enum clinic_hold
clinic_hold_reason(const struct clinic *c)
{
	return c->state == CLINIC_HELD ? c->hold : CLINIC_HOLD_NONE;
}

const char *
clinic_hold_name(enum clinic_hold h)
{
	switch (h) {
	case CLINIC_HOLD_NONE:
		return "none";
	case CLINIC_HOLD_FAILURES:
		return "failures";
	case CLINIC_HOLD_CREDENTIALS:
		return "credentials";
	case CLINIC_HOLD_REVOKED:
		return "revoked";
	}
	return "?";
}

unsigned
clinic_failures(const struct clinic *c)
{
	return c->failures;
}

uint64_t
clinic_jobs_ok(const struct clinic *c)
{
	return c->jobs_ok;
}

uint64_t
clinic_jobs_failed(const struct clinic *c)
{
	return c->jobs_failed;
}

const char *
clinic_last_outcome(const struct clinic *c)
{
	return c->last_outcome;
}

uint64_t
clinic_retry_at_ms(const struct clinic *c)
{
	return c->retry_at_ms;
}

size_t
clinics_count(void)
{
	return n_clinics;
}

unsigned
clinics_running(void)
{
	return n_running;
}

unsigned
clinics_queued(void)
{
	return n_queued;
}

void
clinics_foreach(void (*fn)(struct clinic *, void *), void *arg)
{
	for (size_t i = 0; i < CLINIC_HASH_BUCKETS; i++)
		for (struct clinic *c = clinic_table[i]; c != NULL;
		    c = c->hash_next)
			fn(c, arg);
}

void
clinics_free_all(void)
{
	for (size_t i = 0; i < CLINIC_HASH_BUCKETS; i++) {
		struct clinic *c = clinic_table[i], *next;

		for (; c != NULL; c = next) {
			next = c->hash_next;
			if (c->validate_creds != NULL) {
				vault_creds_release(c->validate_creds);
				free(c->validate_creds);
			}
			event_free(c->retry_timer);
			free(c->id);
			free(c);
		}
		clinic_table[i] = NULL;
	}
	TAILQ_INIT(&run_queue);
	if (throttle_timer != NULL)
		event_free(throttle_timer);
	throttle_timer = NULL;
	n_clinics = 0;
	n_queued = 0;
}
