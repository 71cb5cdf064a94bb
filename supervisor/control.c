/*
 * The control socket (control.h).  Requests are small and answered at
 * once, so each connection is: read a line (bounded, with a deadline),
 * answer, close.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/clinics.h"
#include "supervisor/config.h"
#include "supervisor/control.h"
#include "supervisor/credentials.h"
#include "supervisor/jobspec.h"
#include "supervisor/supervisor.h"
#include "supervisor/workers.h"

struct control_conn {
	int fd;
	struct event *ev;
	struct buf in;		/* may hold a password: wiped when freed */
	bool deferred;		/* answered later (credentials-set) */
	bool dispatching;	/* inside conn_answer() */
	json_t *early;		/* a deferred answer given at once */
};

static int listen_fd = -1;
static struct event *listen_ev;
static char *listen_path;

static void
conn_free(struct control_conn *c)
{
	event_free(c->ev);
	close(c->fd);
	buf_release_secret(&c->in);
	free(c);
}

static void
add_worker(struct worker *w, void *arg)
{
	json_t *o = json_object();

	json_object_set_new(o, "clinic", json_string(worker_clinic(w)));
	json_object_set_new(o, "pid", json_integer(worker_pid(w)));
	json_object_set_new(o, "job",
	    json_integer((json_int_t)worker_job_id(w)));
	json_object_set_new(o, "state", json_string(worker_state_name(w)));
	json_array_append_new(arg, o);
}

static void
add_clinic(struct clinic *c, void *arg)
{
	json_t *o;

	/* Idle clinics that never failed are only counted. */
	if (clinic_state(c) == CLINIC_IDLE && clinic_failures(c) == 0 &&
	    clinic_jobs_ok(c) + clinic_jobs_failed(c) == 0)
		return;
	o = json_object();
	json_object_set_new(o, "clinic", json_string(clinic_name(c)));
	json_object_set_new(o, "state",
	    json_string(clinic_state_name(clinic_state(c))));
	json_object_set_new(o, "failures", json_integer(clinic_failures(c)));
	json_object_set_new(o, "jobs_ok",
	    json_integer((json_int_t)clinic_jobs_ok(c)));
	json_object_set_new(o, "jobs_failed",
	    json_integer((json_int_t)clinic_jobs_failed(c)));
	if (clinic_last_outcome(c) != NULL)
		json_object_set_new(o, "last_outcome",
		    json_string(clinic_last_outcome(c)));
	json_array_append_new(arg, o);
}

static json_t *
cmd_status(void)
{
	json_t *r = json_object(), *workers = json_array(),
	    *clinics = json_array();

	json_object_set_new(r, "ok", json_true());
	json_object_set_new(r, "instance", json_string(sv->config->instance.name));
	json_object_set_new(r, "pid", json_integer(getpid()));
	json_object_set_new(r, "uptime_ms",
	    json_integer((json_int_t)(clock_mono_ms() - sv->started_ms)));
	json_object_set_new(r, "mechanism", json_string(sv->mechanism));
	json_object_set_new(r, "policy_sha256", json_string(sv->policy_sha256));
	json_object_set_new(r, "stopping", json_boolean(sv->stopping));
	json_object_set_new(r, "max_concurrent",
	    json_integer(sv->config->workers.max_concurrent));
	json_object_set_new(r, "clinics_known",
	    json_integer((json_int_t)clinics_count()));
	json_object_set_new(r, "clinics_running", json_integer(clinics_running()));
	json_object_set_new(r, "clinics_queued", json_integer(clinics_queued()));
	workers_foreach(add_worker, workers);
	clinics_foreach(add_clinic, clinics);
	json_object_set_new(r, "workers", workers);
	json_object_set_new(r, "clinics", clinics);
	return r;
}

static json_t *error_answer(const char *, ...)
    __attribute__((format(printf, 1, 2)));

static json_t *
error_answer(const char *fmt, ...)
{
	json_t *r = json_object();
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_object_set_new(r, "ok", json_false());
	json_object_set_new(r, "error", json_string(msg));
	return r;
}

static json_t *
cmd_sync(json_t *req)
{
	const char *clinic = json_string_value(json_object_get(req, "clinic"));
	const char *kind = json_string_value(json_object_get(req, "kind"));
	const char *from = json_string_value(json_object_get(req, "from"));
	const char *to = json_string_value(json_object_get(req, "to"));
	char start[JOBSPEC_WINDOW_LEN], end[JOBSPEC_WINDOW_LEN], err[160];
	enum worker_job_kind k;
	json_t *r;
	int rc;

	if (clinic == NULL)
		return error_answer("sync: missing %s", "'clinic'");
	if (kind == NULL || strcmp(kind, "notes") == 0)
		k = WORKER_JOB_RECONCILE_NOTES;
	else if (strcmp(kind, "schedule") == 0)
		k = WORKER_JOB_SYNC_SCHEDULE;
	else if (strcmp(kind, "validate") == 0)
		k = WORKER_JOB_VALIDATE_CREDENTIALS;
	else
		return error_answer("sync: unknown kind '%s' (notes, schedule "
		    "or validate)", log_q(kind));
	if ((from != NULL) != (to != NULL))
		return error_answer("sync: a window needs both %s",
		    "'from' and 'to'");
	if (from != NULL && k == WORKER_JOB_VALIDATE_CREDENTIALS)
		return error_answer("sync: %s", "a validation has no window");
	if (from != NULL && jobspec_window_parse(from, to, start, end, err,
	    sizeof(err)) < 0)
		return error_answer("sync: %s", err);
	rc = from != NULL ? clinic_request_window(clinic, k, start, end) :
	    clinic_request(clinic, k, true);
	if (rc == -EINVAL)
		return error_answer("sync: invalid clinic id '%s' (1-64 of "
		    "A-Z a-z 0-9 _ -, not starting with _)", log_q(clinic));
	if (rc == -ESHUTDOWN)
		return error_answer("sync: %s", "vetsyncd is stopping");
	r = json_object();
	json_object_set_new(r, "ok", json_true());
	json_object_set_new(r, "clinic", json_string(clinic));
	json_object_set_new(r, "state",
	    json_string(clinic_state_name(clinic_state(clinic_find(clinic)))));
	return r;
}

static void conn_send(struct control_conn *, json_t *);

/* The deferred answer of credentials-set; the connection ends with it. */
static void
credentials_answered(json_t *ans, void *arg)
{
	struct control_conn *c = arg;

	if (c->dispatching) {
		c->early = ans;
		return;
	}
	conn_send(c, ans);
	conn_free(c);
}

static json_t *
cmd_credentials_set(struct control_conn *c, json_t *req)
{
	const char *clinic = json_string_value(json_object_get(req, "clinic"));
	const char *user = json_string_value(json_object_get(req, "username"));
	const char *pass = json_string_value(json_object_get(req, "password"));
	json_t *company = json_object_get(req, "company_id");

	if (clinic == NULL || user == NULL || pass == NULL)
		return error_answer("credentials-set: needs %s",
		    "'clinic', 'username' and 'password'");
	if (company != NULL && !json_is_null(company) &&
	    !json_is_string(company))
		return error_answer("credentials-set: %s",
		    "'company_id' is not a string");
	c->dispatching = true;
	credentials_set(clinic, user, pass, json_string_value(company),
	    credentials_answered, c);
	c->dispatching = false;
	if (c->early != NULL) {
		json_t *ans = c->early;

		c->early = NULL;
		return ans;
	}
	c->deferred = true;
	return NULL;
}

static void
conn_answer(struct control_conn *c)
{
	json_error_t jerr;
	json_t *req, *ans;
	const char *cmd;

	req = json_loadb(c->in.data, c->in.len, 0, &jerr);
	if (req == NULL || !json_is_object(req))
		ans = error_answer("request is not a JSON object: %s",
		    log_q(jerr.text));
	else if ((cmd = json_string_value(json_object_get(req, "cmd"))) ==
	    NULL)
		ans = error_answer("request has no %s", "'cmd'");
	else if (strcmp(cmd, "status") == 0)
		ans = cmd_status();
	else if (strcmp(cmd, "sync") == 0)
		ans = cmd_sync(req);
	else if (strcmp(cmd, "credentials-set") == 0)
		ans = cmd_credentials_set(c, req);
	else
		ans = error_answer("unknown command '%s'", log_q(cmd));
	json_decref(req);
	if (ans != NULL)
		conn_send(c, ans);
}

/* Send the answer line and drop it. */
static void
conn_send(struct control_conn *c, json_t *ans)
{
	char *out;

	out = json_dumps(ans, JSON_COMPACT);
	json_decref(ans);
	if (out != NULL) {
		size_t len = strlen(out), off = 0;
		ssize_t n;

		out[len++] = '\n';
		while (off < len &&
		    (n = send(c->fd, out + off, len - off, MSG_NOSIGNAL)) > 0)
			off += (size_t)n;
		free(out);
	}
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control_conn *c = arg;
	char chunk[1024];
	ssize_t n;
	char *nl;

	if (what & EV_TIMEOUT) {
		conn_free(c);
		return;
	}
	n = recv(fd, chunk, sizeof(chunk), 0);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_free(c);
		return;
	}
	if (buf_append(&c->in, chunk, (size_t)n) < 0) {
		log_warnx("control: request over %d bytes refused",
		    CONTROL_REQUEST_MAX);
		conn_free(c);
		return;
	}
	if ((nl = memchr(c->in.data, '\n', c->in.len)) == NULL)
		return;
	c->in.len = (size_t)(nl - c->in.data);
	c->in.data[c->in.len] = '\0';
	/* Answer with a blocking socket: the answer is small. */
	fcntl(fd, F_SETFL, 0);
	event_del(c->ev);
	conn_answer(c);
	/* The request may hold a password: not a byte of it stays. */
	buf_release_secret(&c->in);
	if (!c->deferred)
		conn_free(c);
}

static void
listen_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control_conn *c;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct timeval deadline = { 5, 0 };
	int cfd;

	cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd == -1)
		return;
	if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1 ||
	    (cred.uid != 0 && cred.uid != geteuid())) {
		log_warnx("control: refused a connection from uid %ld",
		    (long)cred.uid);
		close(cfd);
		return;
	}
	setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &deadline, sizeof(deadline));
	c = xcalloc(1, sizeof(*c));
	c->fd = cfd;
	buf_init(&c->in, CONTROL_REQUEST_MAX);
	c->ev = event_new(sv->base, cfd, EV_READ | EV_PERSIST, conn_read_cb, c);
	if (c->ev == NULL)
		fatalx("cannot create a control event");
	event_add(c->ev, &deadline);
}

int
control_listen(const char *path, char *err, size_t errsz)
{
	struct sockaddr_un sun;
	mode_t old;
	int fd, r;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errsz, "control socket path '%s' is too long",
		    path);
		return -ENAMETOOLONG;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	(void)unlink(path);
	old = umask(0117);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		goto fail;
	}
	umask(old);
	if (listen(fd, 16) == -1)
		goto fail;
	listen_ev = event_new(sv->base, fd, EV_READ | EV_PERSIST, listen_cb,
	    NULL);
	if (listen_ev == NULL)
		fatalx("cannot create the control event");
	event_add(listen_ev, NULL);
	listen_fd = fd;
	listen_path = xstrdup(path);
	return 0;
fail:
	r = -errno;
	snprintf(err, errsz, "control socket '%s': %s", path, strerror(-r));
	if (fd != -1)
		close(fd);
	return r;
}

void
control_close(void)
{
	if (listen_ev != NULL)
		event_free(listen_ev);
	listen_ev = NULL;
	if (listen_fd != -1) {
		close(listen_fd);
		(void)unlink(listen_path);
	}
	listen_fd = -1;
	free(listen_path);
	listen_path = NULL;
}
