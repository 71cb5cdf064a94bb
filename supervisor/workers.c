/*
 * Worker processes: spawn, the per-worker state machine, the dispatch
 * table for frames from workers, timeouts, and the classification of every
 * exit (see workers.h).
 *
 * A worker moves through
 *   HELLO_WAIT -> RUNNING -> FINISHING            (result, then Shutdown)
 *                        \-> CANCELLING           (Cancel sent)
 * and any state -> DEAD once it is killed or closes its channel.  The
 * struct lives until the process is reaped, so that a pid is never
 * forgotten and no zombie is left behind.
 *
 * Spares (workers.prespawn): fork, exec and library start-up cost tens of
 * milliseconds, most of it the dynamic loader.  So a few workers are
 * started ahead, SPARE_STARTING -> SPARE: exec'd, sandboxed, Hello
 * received, holding nothing of any clinic, waiting in a cgroup of their
 * own.  A job takes one: it is moved into the clinic's cgroup and sent
 * the Job at once (-> RUNNING), and a new spare is started behind it.
 * Each job still runs in a process no other job has used.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "proto/frame.h"
#include "policy/policy.h"

#include "supervisor/audit.h"
#include "supervisor/cgroup.h"
#include "supervisor/config.h"
#include "supervisor/jobspec.h"
#include "supervisor/kmsg.h"
#include "supervisor/reconcile.h"
#include "supervisor/spawn.h"
#include "supervisor/supervisor.h"
#include "supervisor/vault.h"
#include "supervisor/workers.h"

enum worker_state {
	W_HELLO_WAIT = 1 << 0,
	W_RUNNING = 1 << 1,
	W_CANCELLING = 1 << 2,
	W_FINISHING = 1 << 3,
	W_DEAD = 1 << 4,
	W_SPARE_STARTING = 1 << 5,
	W_SPARE = 1 << 6,
};

/* Spares that die before their Hello this many times in a row: stop. */
#define SPARE_FAILURES_MAX 3

struct worker {
	struct worker_job job;
	char clinic[64 + 1];
	char timezone[64 + 1];
	enum worker_state state;
	pid_t pid;
	int fd;
	struct event *read_ev;
	struct event *job_timer;	/* wall-clock limit of the job */
	struct event *silence_timer;	/* no frame for too long */
	struct event *stop_timer;	/* Cancel/Shutdown not obeyed */
	struct cgroup_clinic *cgroup;
	struct reconcile *reconcile;	/* the job's records, for the DB */
	worker_done_cb done;
	void *done_arg;

	bool killed;			/* we sent SIGKILL */
	enum worker_exit_class kill_class;
	char kill_detail[200];

	uint64_t spawn_ns;
	uint64_t ready_ns;
	bool pooled;			/* was a spare */
	bool is_spare;			/* in the pool, no job yet */
	bool have_result;
	int result_status;
	uint64_t consultations, appointments, requests;
	TAILQ_ENTRY(worker) entry;
};

static TAILQ_HEAD(, worker) all_workers = TAILQ_HEAD_INITIALIZER(all_workers);
static unsigned n_workers;
static unsigned n_spares;		/* starting or ready */
static unsigned spare_failures;		/* consecutive, before Hello */
static struct cgroup_clinic *spare_cgroup;

typedef int (*dispatch_fn)(struct worker *, const Vetsync__Envelope *);

static void worker_drop_creds(struct worker *);
static int on_hello(struct worker *, const Vetsync__Envelope *);
static int on_progress(struct worker *, const Vetsync__Envelope *);
static int on_record(struct worker *, const Vetsync__Envelope *);
static int on_event(struct worker *, const Vetsync__Envelope *);
static int on_result(struct worker *, const Vetsync__Envelope *);

/*
 * What a worker may send, and when.  Data that was in flight when we sent
 * Cancel is still accepted; nothing is accepted after the result.
 */
static const struct {
	Vetsync__Envelope__MsgCase kind;
	unsigned states;
	dispatch_fn fn;
} dispatch_table[] = {
	{ VETSYNC__ENVELOPE__MSG_HELLO, W_HELLO_WAIT | W_SPARE_STARTING,
	    on_hello },
	{ VETSYNC__ENVELOPE__MSG_PROGRESS, W_RUNNING | W_CANCELLING,
	    on_progress },
	{ VETSYNC__ENVELOPE__MSG_CONSULTATION, W_RUNNING | W_CANCELLING,
	    on_record },
	{ VETSYNC__ENVELOPE__MSG_APPOINTMENT, W_RUNNING | W_CANCELLING,
	    on_record },
	{ VETSYNC__ENVELOPE__MSG_SNAPSHOT, W_RUNNING | W_CANCELLING,
	    on_record },
	{ VETSYNC__ENVELOPE__MSG_UI_FINGERPRINT, W_RUNNING | W_CANCELLING,
	    on_record },
	{ VETSYNC__ENVELOPE__MSG_EVENT, W_RUNNING | W_CANCELLING, on_event },
	{ VETSYNC__ENVELOPE__MSG_JOB_RESULT, W_RUNNING | W_CANCELLING,
	    on_result },
};

const char *
worker_exit_class_name(enum worker_exit_class cls)
{
	switch (cls) {
	case WORKER_EXIT_CLEAN:
		return "clean";
	case WORKER_EXIT_ERROR:
		return "error_exit";
	case WORKER_EXIT_SIGNAL:
		return "signal";
	case WORKER_EXIT_SECCOMP:
		return "seccomp_violation";
	case WORKER_EXIT_OOM:
		return "out_of_memory";
	case WORKER_EXIT_TIMEOUT:
		return "timeout";
	case WORKER_EXIT_SILENCE:
		return "silence_timeout";
	case WORKER_EXIT_PROTOCOL:
		return "protocol_violation";
	case WORKER_EXIT_CANCELLED:
		return "cancelled";
	case WORKER_EXIT_SPAWN:
		return "spawn_failed";
	}
	return "unknown";
}

const char *
worker_job_kind_name(enum worker_job_kind kind)
{
	switch (kind) {
	case WORKER_JOB_RECONCILE_NOTES:
		return "reconcile_notes";
	case WORKER_JOB_SYNC_SCHEDULE:
		return "sync_schedule";
	case WORKER_JOB_VALIDATE_CREDENTIALS:
		return "validate_credentials";
	}
	return "unknown";
}

const char *
worker_state_name(const struct worker *w)
{
	switch (w->state) {
	case W_HELLO_WAIT:
		return "starting";
	case W_RUNNING:
		return "running";
	case W_CANCELLING:
		return "cancelling";
	case W_FINISHING:
		return "finishing";
	case W_DEAD:
		return "exiting";
	case W_SPARE_STARTING:
		return "spare-starting";
	case W_SPARE:
		return "spare";
	}
	return "?";
}

/* w leaves the pool of spares (taken, killed or dead). */
static void
spare_leave(struct worker *w)
{
	if (!w->is_spare)
		return;
	w->is_spare = false;
	n_spares--;
}

static void
timer_set(struct event *ev, uint64_t ms)
{
	struct timeval tv = clock_timeval_ms(ms);

	evtimer_add(ev, &tv);
}

/* Stop listening to the worker; the process is reaped on SIGCHLD. */
static void
worker_close_channel(struct worker *w)
{
	if (w->read_ev != NULL) {
		event_free(w->read_ev);
		w->read_ev = NULL;
	}
	if (w->fd != -1) {
		close(w->fd);
		w->fd = -1;
	}
}

void
worker_kill(struct worker *w, enum worker_exit_class cls, const char *detail)
{
	if (w->killed)
		return;
	spare_leave(w);
	w->killed = true;
	w->kill_class = cls;
	snprintf(w->kill_detail, sizeof(w->kill_detail), "%s", detail);
	log_warnx("clinic=%s job=%llu pid=%ld: killing worker: %s: %s",
	    w->clinic, (unsigned long long)w->job.id, (long)w->pid,
	    worker_exit_class_name(cls), detail);
	/* The cgroup takes any process it may have left behind too. */
	if (w->cgroup == NULL || cgroup_clinic_kill(w->cgroup) != 0)
		kill(w->pid, SIGKILL);
	w->state = W_DEAD;
	worker_close_channel(w);
}

static void
worker_violation(struct worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
worker_violation(struct worker *w, const char *fmt, ...)
{
	char detail[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	worker_kill(w, WORKER_EXIT_PROTOCOL, detail);
}

static int
worker_send(struct worker *w, const Vetsync__Envelope *env)
{
	int r;

	if (w->fd == -1)
		return -EPIPE;
	if ((r = frame_send(w->fd, env)) < 0)
		log_warnx("clinic=%s job=%llu: cannot send %s: %s", w->clinic,
		    (unsigned long long)w->job.id,
		    frame_kind_name((int)env->msg_case), strerror(-r));
	return r;
}

static void
worker_send_shutdown(struct worker *w)
{
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Shutdown sd = VETSYNC__SHUTDOWN__INIT;

	env.msg_case = VETSYNC__ENVELOPE__MSG_SHUTDOWN;
	env.shutdown = &sd;
	(void)worker_send(w, &env);
}

/* Build and send the Job; the worker is sandboxed and has said Hello. */
static int
worker_send_job(struct worker *w)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	char err[FRAME_ERR_MAX];
	ssize_t n;
	int r;

	r = jobspec_encode(&w->job, &buf, &len, err, sizeof(err));
	worker_drop_creds(w);	/* the worker alone holds them from here */
	if (r < 0) {
		/* Our side cannot build the job: stop the worker, no blame. */
		log_warnx("clinic=%s job=%llu: cannot prepare the job: %s",
		    w->clinic, (unsigned long long)w->job.id, err);
		worker_kill(w, WORKER_EXIT_CANCELLED, err);
		return r;
	}
	n = send(w->fd, buf, len, MSG_NOSIGNAL);
	explicit_bzero(buf, len);	/* it holds the clinic's password */
	free(buf);
	if (n != (ssize_t)len) {
		worker_kill(w, WORKER_EXIT_ERROR, "cannot send the job");
		return -EIO;
	}
	w->state = W_RUNNING;
	timer_set(w->job_timer, sv->config->workers.job_timeout_ms);
	timer_set(w->silence_timer, sv->config->workers.silence_timeout_ms);
	return 0;
}

static int
on_hello(struct worker *w, const Vetsync__Envelope *env)
{
	const Vetsync__Hello *h = env->hello;
	const Vetsync__SandboxReport *sb = h->sandbox;

	if ((pid_t)h->pid != w->pid) {
		worker_violation(w, "hello from pid %u, expected %ld", h->pid,
		    (long)w->pid);
		return -EPROTO;
	}
	if (!sb->seccomp || !sb->no_new_privs || !sb->nondumpable) {
		worker_violation(w, "worker is not sandboxed (seccomp %d, "
		    "no_new_privs %d, nondumpable %d)", sb->seccomp,
		    sb->no_new_privs, sb->nondumpable);
		return -EPROTO;
	}
	w->ready_ns = clock_mono_ns();
	if (w->state == W_SPARE_STARTING) {
		/* Ready and idle: no timer runs until a job takes it. */
		w->state = W_SPARE;
		spare_failures = 0;
		evtimer_del(w->silence_timer);
		log_debug("spare pid=%ld: ready in %llu us", (long)w->pid,
		    (unsigned long long)((w->ready_ns - w->spawn_ns) / 1000));
		return 0;
	}
	log_debug("clinic=%s job=%llu pid=%ld: ready in %llu us, landlock abi "
	    "%u", w->clinic, (unsigned long long)w->job.id, (long)w->pid,
	    (unsigned long long)((w->ready_ns - w->spawn_ns) / 1000),
	    sb->landlock_abi);
	return worker_send_job(w);
}

static bool
job_matches(struct worker *w, uint64_t job_id, const char *what)
{
	if (job_id == w->job.id)
		return true;
	worker_violation(w, "%s for job %llu, running job %llu", what,
	    (unsigned long long)job_id, (unsigned long long)w->job.id);
	return false;
}

static int
on_progress(struct worker *w, const Vetsync__Envelope *env)
{
	if (!job_matches(w, env->progress->job_id, "progress"))
		return -EPROTO;
	return 0;
}

static int
on_record(struct worker *w, const Vetsync__Envelope *env)
{
	uint64_t job_id = 0;

	switch (env->msg_case) {
	case VETSYNC__ENVELOPE__MSG_CONSULTATION:
		job_id = env->consultation->job_id;
		w->consultations++;
		break;
	case VETSYNC__ENVELOPE__MSG_APPOINTMENT:
		job_id = env->appointment->job_id;
		w->appointments++;
		break;
	case VETSYNC__ENVELOPE__MSG_SNAPSHOT:
		job_id = env->snapshot->job_id;
		break;
	case VETSYNC__ENVELOPE__MSG_UI_FINGERPRINT:
		job_id = env->ui_fingerprint->job_id;
		break;
	default:
		break;
	}
	if (!job_matches(w, job_id, frame_kind_name((int)env->msg_case)))
		return -EPROTO;
	reconcile_record(w->reconcile, env);
	return 0;
}

static int
on_event(struct worker *w, const Vetsync__Envelope *env)
{
	const Vetsync__Event *e = env->event;
	const ProtobufCEnumValue *v;
	json_t *f;

	if (!job_matches(w, e->job_id, "event"))
		return -EPROTO;
	v = protobuf_c_enum_descriptor_get_value(&vetsync__event_kind__descriptor,
	    (int)e->kind);
	f = json_object();
	if (e->detail != NULL)
		json_object_set_new(f, "detail", json_string(e->detail));
	{
		struct audit_event ev = { .event = v != NULL ? v->name :
		    "worker_event", .clinic = w->clinic, .job = w->job.id,
		    .status = e->kind == VETSYNC__EVENT_KIND__LOGIN_FAILED ?
		    "failed" : "ok" };

		(void)audit_emit(&ev, f);
	}
	return 0;
}

static int
on_result(struct worker *w, const Vetsync__Envelope *env)
{
	const Vetsync__JobResult *res = env->job_result;

	if (!job_matches(w, res->job_id, "result"))
		return -EPROTO;
	w->have_result = true;
	w->result_status = (int)res->status;
	if (res->has_requests)
		w->requests = res->requests;
	if (res->status != VETSYNC__JOB_STATUS__OK)
		log_info("clinic=%s job=%llu: job ended %s: %s: %s", w->clinic,
		    (unsigned long long)w->job.id,
		    protobuf_c_enum_descriptor_get_value(
		    &vetsync__job_status__descriptor, (int)res->status)->name,
		    log_q(res->error_class), log_q(res->error_message));
	w->state = W_FINISHING;
	evtimer_del(w->job_timer);
	worker_send_shutdown(w);
	timer_set(w->stop_timer, sv->config->workers.stop_timeout_ms);
	return 0;
}

static void
worker_dispatch(struct worker *w, const Vetsync__Envelope *env)
{
	for (size_t i = 0; i < sizeof(dispatch_table) /
	    sizeof(dispatch_table[0]); i++) {
		if (dispatch_table[i].kind != env->msg_case)
			continue;
		if ((dispatch_table[i].states & w->state) == 0)
			break;
		(void)dispatch_table[i].fn(w, env);
		return;
	}
	worker_violation(w, "%s not allowed while %s",
	    frame_kind_name((int)env->msg_case), worker_state_name(w));
}

static void
worker_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	Vetsync__Envelope *env;
	char err[FRAME_ERR_MAX];
	int r;

	/* Drain what is there, but let other clinics have their turn. */
	for (int i = 0; i < 64 && w->fd != -1; i++) {
		env = NULL;
		r = frame_recv(w->fd, &env, err, sizeof(err));
		if (r == -EAGAIN)
			return;
		if (r == -EPIPE) {
			/* It closed its end: it is exiting; reap decides. */
			worker_close_channel(w);
			return;
		}
		if (r < 0) {
			worker_violation(w, "bad frame: %s", err);
			return;
		}
		timer_set(w->silence_timer,
		    sv->config->workers.silence_timeout_ms);
		worker_dispatch(w, env);
		frame_free(env);
	}
}

static void
worker_job_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	worker_kill(arg, WORKER_EXIT_TIMEOUT, "job exceeded workers.job_timeout");
}

static void
worker_silence_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	if (w->state == W_DEAD && w->killed)
		return;
	worker_kill(w, WORKER_EXIT_SILENCE,
	    "nothing heard within workers.silence_timeout");
}

static void
worker_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	worker_kill(w, w->state == W_CANCELLING ? WORKER_EXIT_CANCELLED :
	    WORKER_EXIT_ERROR, "did not exit within workers.stop_timeout");
}

void
worker_cancel(struct worker *w, const char *why)
{
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Cancel c = VETSYNC__CANCEL__INIT;

	if (w->state & (W_DEAD | W_CANCELLING | W_FINISHING))
		return;
	if (w->state & (W_SPARE | W_SPARE_STARTING)) {
		spare_leave(w);
		w->killed = true;	/* quietly: it never had a job */
		w->kill_class = WORKER_EXIT_CANCELLED;
		kill(w->pid, SIGKILL);
		w->state = W_DEAD;
		worker_close_channel(w);
		return;
	}
	log_info("clinic=%s job=%llu: cancelling: %s", w->clinic,
	    (unsigned long long)w->job.id, why);
	if (w->state == W_HELLO_WAIT) {
		worker_kill(w, WORKER_EXIT_CANCELLED, why);
		return;
	}
	c.job_id = w->job.id;
	c.has_job_id = 1;
	env.msg_case = VETSYNC__ENVELOPE__MSG_CANCEL;
	env.cancel = &c;
	w->state = W_CANCELLING;
	w->kill_class = WORKER_EXIT_CANCELLED;
	snprintf(w->kill_detail, sizeof(w->kill_detail), "%s", why);
	if (worker_send(w, &env) < 0) {
		worker_kill(w, WORKER_EXIT_CANCELLED, why);
		return;
	}
	timer_set(w->stop_timer, sv->config->workers.stop_timeout_ms);
}

/* Wipe and free the job's credentials, once sent or no longer needed. */
static void
worker_drop_creds(struct worker *w)
{
	if (w->job.creds == NULL)
		return;
	vault_creds_release(w->job.creds);
	free(w->job.creds);
	w->job.creds = NULL;
}

static void
worker_free(struct worker *w)
{
	worker_close_channel(w);
	if (w->job_timer != NULL)
		event_free(w->job_timer);
	if (w->silence_timer != NULL)
		event_free(w->silence_timer);
	if (w->stop_timer != NULL)
		event_free(w->stop_timer);
	cgroup_clinic_free(w->cgroup);
	reconcile_free(w->reconcile);
	worker_drop_creds(w);
	free(w);
}

static struct worker *
worker_new(void)
{
	struct worker *w = xcalloc(1, sizeof(*w));

	w->fd = -1;
	w->pid = -1;
	w->result_status = -1;
	return w;
}

/* Copy the job into w (the strings into w's own buffers). */
static void
worker_set_job(struct worker *w, const struct worker_job *job,
    worker_done_cb done, void *arg)
{
	w->job = *job;
	snprintf(w->clinic, sizeof(w->clinic), "%s", job->clinic);
	snprintf(w->timezone, sizeof(w->timezone), "%s",
	    job->timezone != NULL ? job->timezone : "UTC");
	w->job.clinic = w->clinic;
	w->job.timezone = w->timezone;
	w->done = done;
	w->done_arg = arg;
}

static void
limits_from_config(struct cgroup_limits *l, unsigned workers)
{
	cgroup_limits_from_config(l, sv->config->workers.memory_max,
	    sv->config->workers.cpu_max_micro,
	    sv->config->workers.tasks_max * workers);
}

/*
 * fork + exec into cgroup cg, register the process and send it Setup.
 * The caller has set w's state-independent fields.
 */
static int
worker_spawn(struct worker *w, struct cgroup_clinic *cg,
    enum worker_state state)
{
	struct spawn_params sp;
	ssize_t n;
	int r;

	memset(&sp, 0, sizeof(sp));
	sp.binary = sv->config->workers.binary;
	sp.cgroup = cg;
	sp.limits = policy_limits(sv->policy);
	sp.drop_identity = sv->drop_identity;
	sp.uid = sv->worker_uid;
	sp.gid = sv->worker_gid;
	w->spawn_ns = clock_mono_ns();
	if ((r = spawn_worker(&sp, &w->pid, &w->fd)) < 0)
		return r;

	w->state = state;
	TAILQ_INSERT_TAIL(&all_workers, w, entry);
	n_workers++;
	w->read_ev = event_new(sv->base, w->fd, EV_READ | EV_PERSIST,
	    worker_read_cb, w);
	w->job_timer = evtimer_new(sv->base, worker_job_timeout_cb, w);
	w->silence_timer = evtimer_new(sv->base, worker_silence_cb, w);
	w->stop_timer = evtimer_new(sv->base, worker_stop_cb, w);
	if (w->read_ev == NULL || w->job_timer == NULL ||
	    w->silence_timer == NULL || w->stop_timer == NULL)
		fatalx("cannot create worker events");
	event_add(w->read_ev, NULL);
	timer_set(w->silence_timer, sv->config->workers.silence_timeout_ms);

	/* Setup goes first; the worker answers Hello once sandboxed. */
	n = send(w->fd, sv->setup_frame, sv->setup_len, MSG_NOSIGNAL);
	if (n != (ssize_t)sv->setup_len)
		worker_kill(w, WORKER_EXIT_SPAWN, "cannot send setup");
	return 0;
}

static void
worker_audit_start(struct worker *w)
{
	json_t *f = json_object();

	json_object_set_new(f, "kind",
	    json_string(worker_job_kind_name(w->job.kind)));
	json_object_set_new(f, "pid", json_integer(w->pid));
	json_object_set_new(f, "pooled", json_boolean(w->pooled));
	json_object_set_new(f, "policy_sha256", json_string(sv->policy_sha256));
	json_object_set_new(f, "mechanism", json_string(sv->mechanism));
	audit_record("sync_started", w->clinic, w->job.id, f);
	w->reconcile = reconcile_start(&w->job);
}

/* A ready spare, taken out of the pool; NULL when none is ready. */
static struct worker *
spare_take(void)
{
	struct worker *w;

	TAILQ_FOREACH(w, &all_workers, entry)
		if (w->state == W_SPARE) {
			spare_leave(w);
			return w;
		}
	return NULL;
}

/* Give a ready spare its job: into the clinic's cgroup, then the Job. */
static int
spare_assign(struct worker *w, const struct worker_job *job,
    worker_done_cb done, void *arg)
{
	struct cgroup_limits limits;
	int r;

	worker_set_job(w, job, done, arg);
	w->pooled = true;
	/* Ready, for this job, once the Job is on its way: measure that. */
	w->spawn_ns = clock_mono_ns();
	if (sv->cgroups != NULL) {
		limits_from_config(&limits, 1);
		if ((r = cgroup_clinic_new(sv->cgroups, w->clinic, &limits,
		    &w->cgroup)) < 0 ||
		    (r = cgroup_clinic_attach(w->cgroup, w->pid)) < 0)
			return r;
	}
	worker_audit_start(w);
	(void)worker_send_job(w);
	w->ready_ns = clock_mono_ns();
	return 0;
}

int
worker_start(const struct worker_job *job, worker_done_cb done, void *arg,
    struct worker **ret_worker)
{
	struct cgroup_limits limits;
	struct worker *w;
	int r;

	if ((w = spare_take()) != NULL) {
		r = spare_assign(w, job, done, arg);
		workers_prespawn();
		if (r == 0) {
			if (ret_worker != NULL)
				*ret_worker = w;
			return 0;
		}
		/* Could not move it: it must not run the job; start afresh. */
		log_warnx("clinic=%s: cannot move a spare worker into its "
		    "cgroup: %s", job->clinic, strerror(-r));
		w->done = NULL;
		w->job.creds = NULL;	/* job->creds go to the next worker */
		worker_cancel(w, "spare could not be assigned");
	}

	w = worker_new();
	worker_set_job(w, job, done, arg);
	if (sv->cgroups != NULL) {
		limits_from_config(&limits, 1);
		r = cgroup_clinic_new(sv->cgroups, w->clinic, &limits,
		    &w->cgroup);
		if (r < 0) {
			log_warnx("clinic=%s: cannot create its cgroup: %s",
			    w->clinic, strerror(-r));
			goto fail;
		}
	}
	if ((r = worker_spawn(w, w->cgroup, W_HELLO_WAIT)) < 0)
		goto fail;
	log_debug("clinic=%s job=%llu pid=%ld: %s started", w->clinic,
	    (unsigned long long)w->job.id, (long)w->pid,
	    worker_job_kind_name(job->kind));
	worker_audit_start(w);
	if (ret_worker != NULL)
		*ret_worker = w;
	return 0;
fail:
	worker_free(w);
	return r;
}

void
workers_prespawn(void)
{
	struct cgroup_limits limits;
	struct worker *w;
	unsigned want = sv->config->workers.prespawn;
	int r;

	if (sv->stopping || spare_failures >= SPARE_FAILURES_MAX)
		return;
	if (want > 0 && spare_cgroup == NULL && sv->cgroups != NULL) {
		limits_from_config(&limits, want);
		r = cgroup_clinic_new(sv->cgroups, "_spares", &limits,
		    &spare_cgroup);
		if (r < 0) {
			log_warnx("cannot create the spare workers' cgroup: %s; "
			    "starting workers on demand", strerror(-r));
			spare_failures = SPARE_FAILURES_MAX;
			return;
		}
	}
	while (n_spares < want) {
		w = worker_new();
		snprintf(w->clinic, sizeof(w->clinic), "-");
		w->job.clinic = w->clinic;
		w->is_spare = true;
		if ((r = worker_spawn(w, spare_cgroup, W_SPARE_STARTING)) < 0) {
			log_warnx("cannot start a spare worker: %s",
			    strerror(-r));
			worker_free(w);
			return;
		}
		n_spares++;
	}
}

void
workers_retire_spares(void)
{
	struct worker *w, *next;

	for (w = TAILQ_FIRST(&all_workers); w != NULL; w = next) {
		next = TAILQ_NEXT(w, entry);
		if (w->is_spare)
			worker_cancel(w, "retired");
	}
	spare_failures = 0;
}

void
workers_release(void)
{
	cgroup_clinic_free(spare_cgroup);
	spare_cgroup = NULL;
}

/* Turn a wait status into an outcome. */
static void
worker_classify(struct worker *w, int status, struct worker_outcome *o)
{
	struct cgroup_stats st;
	bool have_stats = false;
	const char *why;
	char sysname[64];

	memset(o, 0, sizeof(*o));
	o->result_status = w->result_status;
	o->result_ok = w->have_result &&
	    w->result_status == VETSYNC__JOB_STATUS__OK;
	o->invalid_credentials = w->have_result &&
	    w->result_status == VETSYNC__JOB_STATUS__INVALID_CREDENTIALS;
	o->consultations = w->consultations;
	o->appointments = w->appointments;
	o->requests = w->requests;
	o->duration_ms = (clock_mono_ns() - w->spawn_ns) / 1000000;
	if (w->ready_ns != 0)
		o->spawn_to_ready_us = (w->ready_ns - w->spawn_ns) / 1000;
	if (w->cgroup != NULL && cgroup_clinic_stats(w->cgroup, &st) == 0) {
		have_stats = true;
		if (st.memory_peak != CGROUP_STAT_UNKNOWN)
			o->memory_peak = st.memory_peak;
		if (st.cpu_usage_usec != CGROUP_STAT_UNKNOWN)
			o->cpu_usec = st.cpu_usage_usec;
	}

	if (WIFEXITED(status)) {
		o->code = WEXITSTATUS(status);
		if (w->killed || w->kill_class == WORKER_EXIT_CANCELLED) {
			/* Cancelled and it obeyed. */
			o->cls = w->kill_class;
			snprintf(o->detail, sizeof(o->detail), "%s",
			    w->kill_detail);
		} else if (o->code == 0 && w->have_result) {
			o->cls = WORKER_EXIT_CLEAN;
		} else if ((why = spawn_exit_reason(o->code)) != NULL) {
			o->cls = WORKER_EXIT_SPAWN;
			snprintf(o->detail, sizeof(o->detail), "%s", why);
		} else {
			o->cls = WORKER_EXIT_ERROR;
			snprintf(o->detail, sizeof(o->detail),
			    o->code == 0 ? "exited without a result" :
			    "exited with code %d", o->code);
		}
		return;
	}
	o->code = WTERMSIG(status);
	if (o->code == SIGSYS) {
		o->cls = WORKER_EXIT_SECCOMP;
		if (kmsg_seccomp_syscall(w->pid, sysname, sizeof(sysname)) == 0)
			snprintf(o->detail, sizeof(o->detail),
			    "syscall %s outside the policy", sysname);
		else
			snprintf(o->detail, sizeof(o->detail),
			    "a syscall outside the policy (name not logged)");
	} else if (o->code == SIGKILL && have_stats && st.oom_kills > 0 &&
	    st.oom_kills != CGROUP_STAT_UNKNOWN) {
		o->cls = WORKER_EXIT_OOM;
		snprintf(o->detail, sizeof(o->detail),
		    "killed by the OOM killer at workers.memory_max");
	} else if (w->killed) {
		o->cls = w->kill_class;
		snprintf(o->detail, sizeof(o->detail), "%s", w->kill_detail);
	} else {
		o->cls = WORKER_EXIT_SIGNAL;
		snprintf(o->detail, sizeof(o->detail), "killed by signal %s",
		    sigabbrev_np(o->code) != NULL ? sigabbrev_np(o->code) :
		    "?");
	}
}

static void
worker_audit_exit(struct worker *w, const struct worker_outcome *o)
{
	json_t *f = json_object();
	struct audit_event e = { .event = "worker_exit", .clinic = w->clinic,
	    .job = w->job.id, .policy_hash = sv->policy_sha256 };

	json_object_set_new(f, "class",
	    json_string(worker_exit_class_name(o->cls)));
	json_object_set_new(f, "kind",
	    json_string(worker_job_kind_name(w->job.kind)));
	json_object_set_new(f, "pid", json_integer(w->pid));
	json_object_set_new(f, "code", json_integer(o->code));
	if (o->detail[0] != '\0')
		json_object_set_new(f, "detail", json_string(o->detail));
	json_object_set_new(f, "ok", json_boolean(o->result_ok));
	if (o->result_status >= 0) {
		const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
		    &vetsync__job_status__descriptor, o->result_status);

		if (v != NULL)
			json_object_set_new(f, "result", json_string(v->name));
	}
	json_object_set_new(f, "consultations",
	    json_integer((json_int_t)o->consultations));
	json_object_set_new(f, "appointments",
	    json_integer((json_int_t)o->appointments));
	json_object_set_new(f, "duration_ms",
	    json_integer((json_int_t)o->duration_ms));
	if (o->memory_peak != 0)
		json_object_set_new(f, "memory_peak",
		    json_integer((json_int_t)o->memory_peak));
	if (o->cpu_usec != 0)
		json_object_set_new(f, "cpu_usec",
		    json_integer((json_int_t)o->cpu_usec));
	if (o->spawn_to_ready_us != 0)
		json_object_set_new(f, "spawn_to_ready_us",
		    json_integer((json_int_t)o->spawn_to_ready_us));
	json_object_set_new(f, "policy_sha256", json_string(sv->policy_sha256));
	e.status = o->cls == WORKER_EXIT_CLEAN && o->result_ok ? "ok" :
	    worker_exit_class_name(o->cls);
	if (strcmp(e.status, "ok") != 0) {
		e.error = json_object();
		json_object_set_new(e.error, "class", json_string(e.status));
		json_object_set_new(e.error, "detail", json_string(o->detail));
	}
	(void)audit_emit(&e, f);
}

static struct worker *
worker_by_pid(pid_t pid)
{
	struct worker *w;

	TAILQ_FOREACH(w, &all_workers, entry)
		if (w->pid == pid)
			return w;
	return NULL;
}

void
workers_reap(void)
{
	struct worker_outcome o;
	struct worker *w;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if ((w = worker_by_pid(pid)) == NULL) {
			log_debug("reaped pid %ld, not a worker", (long)pid);
			continue;
		}
		TAILQ_REMOVE(&all_workers, w, entry);
		n_workers--;
		worker_close_channel(w);
		worker_classify(w, status, &o);
		if (w->done == NULL) {
			/* A spare: it never had a job, so nothing to audit. */
			bool retired = w->killed &&
			    w->kill_class == WORKER_EXIT_CANCELLED;

			spare_leave(w);
			if (!retired)
				log_warnx("spare worker pid=%ld: %s: %s",
				    (long)pid, worker_exit_class_name(o.cls),
				    o.detail);
			if (!retired && w->ready_ns == 0 &&
			    ++spare_failures == SPARE_FAILURES_MAX)
				log_warnx("spare workers keep failing to "
				    "start; starting workers on demand");
			worker_free(w);
			workers_prespawn();
			continue;
		}
		if (o.cls == WORKER_EXIT_CLEAN && o.result_ok)
			log_info("clinic=%s job=%llu: %s done in %llu ms "
			    "(%llu consultations, %llu appointments)",
			    w->clinic, (unsigned long long)w->job.id,
			    worker_job_kind_name(w->job.kind),
			    (unsigned long long)o.duration_ms,
			    (unsigned long long)o.consultations,
			    (unsigned long long)o.appointments);
		else if (o.cls == WORKER_EXIT_CLEAN)
			log_info("clinic=%s job=%llu: %s did not succeed; the "
			    "worker exited cleanly", w->clinic,
			    (unsigned long long)w->job.id,
			    worker_job_kind_name(w->job.kind));
		else
			log_warnx("clinic=%s job=%llu pid=%ld: worker %s: %s",
			    w->clinic, (unsigned long long)w->job.id,
			    (long)pid, worker_exit_class_name(o.cls),
			    o.detail);
		worker_audit_exit(w, &o);
		/* Anything it left behind in its cgroup goes too. */
		if (w->cgroup != NULL)
			(void)cgroup_clinic_kill(w->cgroup);
		reconcile_finish(w->reconcile, &o);
		w->reconcile = NULL;
		w->done(&w->job, &o, w->done_arg);
		worker_free(w);
	}
}

unsigned
workers_count(void)
{
	return n_workers;
}

void
workers_foreach(void (*fn)(struct worker *, void *), void *arg)
{
	struct worker *w, *next;

	for (w = TAILQ_FIRST(&all_workers); w != NULL; w = next) {
		next = TAILQ_NEXT(w, entry);
		fn(w, arg);
	}
}

const char *
worker_clinic(const struct worker *w)
{
	return w->clinic;
}

pid_t
worker_pid(const struct worker *w)
{
	return w->pid;
}

uint64_t
worker_job_id(const struct worker *w)
{
	return w->job.id;
}
