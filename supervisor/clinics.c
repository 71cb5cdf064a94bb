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

#include "supervisor/audit.h"
#include "supervisor/clinics.h"
#include "supervisor/config.h"
#include "supervisor/supervisor.h"
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
	struct clinic *hash_next;
	TAILQ_ENTRY(clinic) queue_entry;
};

static struct clinic *clinic_table[CLINIC_HASH_BUCKETS];
static TAILQ_HEAD(, clinic) run_queue = TAILQ_HEAD_INITIALIZER(run_queue);
static size_t n_clinics;
static unsigned n_running, n_queued;

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

int
clinic_request(const char *id, enum worker_job_kind kind, bool manual)
{
	struct clinic *c;

	if (!clinic_id_valid(id))
		return -EINVAL;
	if (sv->stopping)
		return -ESHUTDOWN;
	c = clinic_get(id);
	c->pending |= 1u << kind;
	if (c->state == CLINIC_HELD) {
		if (!manual)
			return 0;
		log_info("clinic=%s: released from hold by an operator", c->id);
		audit_record("clinic_released", c->id, 0, NULL);
		c->failures = 0;
		c->state = CLINIC_IDLE;
	}
	if (c->state == CLINIC_BACKOFF && manual) {
		/* An operator asked: do not make them wait for the backoff. */
		evtimer_del(c->retry_timer);
		c->state = CLINIC_IDLE;
	}
	clinic_enqueue(c);
	clinics_pump();
	return 0;
}

/* Lowest pending kind first: notes, then schedule, then validation. */
static enum worker_job_kind
clinic_take_job(struct clinic *c)
{
	for (int k = WORKER_JOB_RECONCILE_NOTES;
	    k <= WORKER_JOB_VALIDATE_CREDENTIALS; k++)
		if (c->pending & (1u << k)) {
			c->pending &= ~(1u << k);
			return (enum worker_job_kind)k;
		}
	return WORKER_JOB_RECONCILE_NOTES;
}

static void
clinic_run(struct clinic *c)
{
	struct worker_job job;
	enum worker_job_kind kind;
	int r;

	kind = clinic_take_job(c);
	memset(&job, 0, sizeof(job));
	job.id = ++sv->next_job_id;
	job.kind = kind;
	job.clinic = c->id;
	job.timezone = sv->config->schedule.default_timezone;
	c->state = CLINIC_RUNNING;
	n_running++;
	r = worker_start(&job, clinic_job_done, c, &c->worker);
	if (r < 0) {
		struct worker_outcome o;

		/* No process at all (fork failed): a failure like any other. */
		log_warnx("clinic=%s job=%llu: cannot start a worker: %s",
		    c->id, (unsigned long long)job.id, strerror(-r));
		memset(&o, 0, sizeof(o));
		o.cls = WORKER_EXIT_SPAWN;
		o.result_status = -1;
		snprintf(o.detail, sizeof(o.detail), "spawn failed: %s",
		    strerror(-r));
		c->pending |= 1u << kind;
		clinic_job_done(&job, &o, c);
	}
}

void
clinics_pump(void)
{
	struct clinic *c;

	while (!sv->stopping && n_running < sv->config->workers.max_concurrent &&
	    (c = TAILQ_FIRST(&run_queue)) != NULL) {
		TAILQ_REMOVE(&run_queue, c, queue_entry);
		n_queued--;
		clinic_run(c);
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

	c->state = CLINIC_HELD;
	c->pending = 0;
	log_warnx("alert: clinic=%s: held after %u consecutive failures: %s",
	    c->id, c->failures, why);
	json_object_set_new(f, "failures", json_integer(c->failures));
	json_object_set_new(f, "reason", json_string(why));
	audit_record("circuit_open", c->id, 0, f);
}

static void
clinic_job_done(const struct worker_job *job, const struct worker_outcome *o,
    void *arg)
{
	struct clinic *c = arg;
	bool ok = o->cls == WORKER_EXIT_CLEAN && o->result_ok;
	struct timeval tv;
	uint64_t delay;

	c->worker = NULL;
	n_running--;
	c->last_outcome = ok ? "ok" : o->cls == WORKER_EXIT_CLEAN ?
	    "job_failed" : worker_exit_class_name(o->cls);
	if (ok) {
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
			c->state = CLINIC_HELD;
			c->pending = 0;
			log_warnx("alert: clinic=%s: IDEXX rejected its "
			    "credentials; held until they are set again", c->id);
			audit_record("credentials_suspended", c->id, job->id,
			    NULL);
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
	if (c->state == CLINIC_IDLE && c->pending != 0 && !sv->stopping)
		clinic_enqueue(c);
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
			event_free(c->retry_timer);
			free(c->id);
			free(c);
		}
		clinic_table[i] = NULL;
	}
	TAILQ_INIT(&run_queue);
	n_clinics = 0;
	n_queued = 0;
}
