/*
 * worker_drive: run the real vetsync-worker on one job, as vetsyncd would,
 * and print what it says.  For the IDEXX integration tests and benchmark.
 *
 * It spawns the worker with a SOCK_SEQPACKET channel on fd 3 and an empty
 * environment, sends Setup built from the policy files with the parent
 * half of policy/ (${ca_bundle}, ${idexx_ports} filled from the options),
 * then one Job from the command line, and prints every message the worker
 * sends as one JSON line on stdout (protobuf field names; enums by name;
 * bytes as a string when they are UTF-8, else hex), for jq.  After the
 * JobResult it sends Shutdown, reaps the worker and prints a last line
 * {"type":"worker","exit":N,"signal":N,"maxrss_kb":N,"pss_kb":N,
 * "private_kb":N,"wall_ms":N} (PSS and private memory as the job ended).
 *
 * Exit status: 0 when a JobResult arrived, 1 otherwise, 2 on bad usage.
 * The password given is sent in the Job and nowhere else.
 */
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "common/clock.h"
#include "common/utf8.h"
#include "proto/frame.h"
#include "policy/policy.h"

struct drive {
	const char *worker, *policy, *url, *ip, *profile_file, *tz;
	const char *window_start, *window_end, *user, *password, *company;
	const char *ca_bundle, *clinic;
	Vetsync__JobKind kind;
	unsigned max_parallel, request_rate, request_timeout_ms;
	unsigned job_timeout_ms, timeout_s;
	uint64_t response_max;
	long cancel_after_ms;
	bool no_seccomp;
	char host[256];
	unsigned port;
};

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: worker_drive --url URL --profile-file FILE "
	    "--user U --password P\n"
	    "\t[--kind reconcile|schedule|validate] [--window-start T "
	    "--window-end T]\n"
	    "\t[--timezone TZ] [--company ID] [--ca-bundle FILE] [--ip IP]\n"
	    "\t[--max-parallel N] [--request-rate N] [--response-max BYTES]\n"
	    "\t[--request-timeout-ms N] [--job-timeout-ms N] "
	    "[--cancel-after-ms N]\n"
	    "\t[--worker PATH] [--policy DIR] [--timeout-s N] "
	    "[--no-seccomp]\n");
	exit(2);
}

/* ---- messages as JSON ------------------------------------------------ */

static json_t *msg_json(const ProtobufCMessage *);

static json_t *
bytes_json(const ProtobufCBinaryData *b)
{
	static const char hex[] = "0123456789abcdef";
	json_t *j;
	char *h;
	size_t i;

	if (utf8_valid((const char *)b->data, b->len))
		return json_stringn((const char *)b->data, b->len);
	h = malloc(b->len * 2 + 1);
	for (i = 0; i < b->len; i++) {
		h[2 * i] = hex[b->data[i] >> 4];
		h[2 * i + 1] = hex[b->data[i] & 15];
	}
	h[2 * b->len] = '\0';
	j = json_pack("{s:s}", "hex", h);
	free(h);
	return j;
}

static json_t *
value_json(const ProtobufCFieldDescriptor *f, const void *p)
{
	const ProtobufCEnumValue *ev;

	switch (f->type) {
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_UINT32:
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
		return json_integer((json_int_t)*(const uint64_t *)p);
	case PROTOBUF_C_TYPE_INT32:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
		return json_integer(*(const int64_t *)p);
	case PROTOBUF_C_TYPE_ENUM:
		ev = protobuf_c_enum_descriptor_get_value(f->descriptor,
		    *(const int *)p);
		return ev != NULL ? json_string(ev->name) :
		    json_integer(*(const int *)p);
	case PROTOBUF_C_TYPE_STRING:
		return json_string(*(char *const *)p);
	case PROTOBUF_C_TYPE_BYTES:
		return bytes_json(p);
	case PROTOBUF_C_TYPE_MESSAGE:
		return msg_json(*(ProtobufCMessage *const *)p);
	default:
		return json_null();
	}
}

static size_t
value_size(const ProtobufCFieldDescriptor *f)
{
	switch (f->type) {
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_INT64:
		return 8;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	default:
		return 4;
	}
}

static json_t *
msg_json(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	json_t *o = json_object(), *a;
	unsigned i;
	size_t k, n;

	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		const char *p = base + f->offset;

		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			n = *(const size_t *)(base + f->quantifier_offset);
			a = json_array();
			for (k = 0; k < n; k++)
				json_array_append_new(a, value_json(f,
				    *(char *const *)p + k * value_size(f)));
			json_object_set_new(o, f->name, a);
			continue;
		}
		if (f->type == PROTOBUF_C_TYPE_STRING ||
		    f->type == PROTOBUF_C_TYPE_MESSAGE) {
			if (*(void *const *)p == NULL)
				continue;
		} else if (f->quantifier_offset != 0 &&
		    !*(const protobuf_c_boolean *)(base +
		    f->quantifier_offset))
			continue;
		json_object_set_new(o, f->name, value_json(f, p));
	}
	return o;
}

static void
print_env(const Vetsync__Envelope *env)
{
	const ProtobufCFieldDescriptor *f;
	json_t *o;
	char *s;

	f = protobuf_c_message_descriptor_get_field(
	    &vetsync__envelope__descriptor, (unsigned)env->msg_case);
	if (f == NULL)
		return;
	o = msg_json(*(ProtobufCMessage *const *)((const char *)env +
	    f->offset));
	json_object_set_new(o, "type", json_string(f->name));
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(o);
}

/* ---- the worker ------------------------------------------------------ */

static pid_t
spawn(const struct drive *d, int *ret_fd)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1)
		return -1;
	if (frame_socket_init(sv[0]) != 0 || frame_socket_init(sv[1]) != 0)
		return -1;
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		char *argv[] = { (char *)d->worker, NULL }, *envp[] = { NULL };

		if (dup2(sv[1], 3) == -1)
			_exit(126);
		execve(d->worker, argv, envp);
		_exit(127);
	}
	close(sv[1]);
	*ret_fd = sv[0];
	return pid;
}

static int
send_setup(const struct drive *d, int fd)
{
	/* --no-seccomp: a filter that allows everything (for strace). */
	static const struct sock_filter allow[] = {
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	char ports[16];
	struct policy_subst subst[] = {
		{ "ca_bundle", d->ca_bundle },
		{ "idexx_ports", ports },
	};
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Setup setup = VETSYNC__SETUP__INIT;
	struct sandbox_spec spec;
	struct policy *p = NULL;
	uint32_t tcp[POLICY_MAX_TCP_PORTS];
	char err[512];
	int r;

	snprintf(ports, sizeof(ports), "%u", d->port);
	if ((r = policy_load(d->policy, &p, err, sizeof(err))) != 0 ||
	    (r = policy_prepare(p, subst, 2, &spec, err, sizeof(err))) != 0) {
		fprintf(stderr, "worker_drive: policy: %s\n", err);
		policy_free(p);
		return r;
	}
	for (size_t i = 0; i < spec.n_tcp_ports; i++)
		tcp[i] = spec.tcp_ports[i];
	setup.has_protocol_version = 1;
	setup.protocol_version = FRAME_PROTOCOL_VERSION;
	setup.has_seccomp_bpf = 1;
	setup.seccomp_bpf.data = (uint8_t *)(d->no_seccomp ?
	    (const void *)allow : spec.bpf);
	setup.seccomp_bpf.len = d->no_seccomp ? sizeof(allow) : spec.bpf_len;
	setup.n_landlock_ro_paths = spec.n_ro_paths;
	setup.landlock_ro_paths = (char **)spec.ro_paths;
	setup.n_landlock_tcp_ports = spec.n_tcp_ports;
	setup.landlock_tcp_ports = tcp;
	setup.has_landlock_min_abi = 1;
	setup.landlock_min_abi = (uint32_t)spec.min_landlock_abi;
	setup.has_require_landlock = 1;
	setup.require_landlock = spec.require_landlock &&
	    sandbox_landlock_abi() > 0;
	env.msg_case = VETSYNC__ENVELOPE__MSG_SETUP;
	env.setup = &setup;
	r = frame_send(fd, &env);
	policy_spec_release(&spec);
	policy_free(p);
	return r;
}

static int
send_job(const struct drive *d, int fd, const char *profile)
{
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Job job = VETSYNC__JOB__INIT;
	Vetsync__PinnedAddress pin = VETSYNC__PINNED_ADDRESS__INIT;
	Vetsync__Credentials cr = VETSYNC__CREDENTIALS__INIT;
	Vetsync__JobLimits lim = VETSYNC__JOB_LIMITS__INIT;
	char err[FRAME_ERR_MAX];
	int r;

	pin.host = (char *)d->host;
	pin.has_port = 1;
	pin.port = d->port;
	pin.ip = (char *)d->ip;
	cr.username = (char *)d->user;
	cr.password = (char *)d->password;
	cr.company_id = (char *)d->company;
	lim.has_max_parallel = lim.has_request_rate = 1;
	lim.has_response_max = lim.has_request_timeout_ms = 1;
	lim.has_job_timeout_ms = 1;
	lim.max_parallel = d->max_parallel;
	lim.request_rate = d->request_rate;
	lim.response_max = d->response_max;
	lim.request_timeout_ms = d->request_timeout_ms;
	lim.job_timeout_ms = d->job_timeout_ms;
	job.has_job_id = 1;
	job.job_id = 1;
	job.has_kind = 1;
	job.kind = d->kind;
	job.clinic_id = (char *)d->clinic;
	job.base_url = (char *)d->url;
	job.pinned = &pin;
	job.site_profile = (char *)profile;
	job.time_zone = (char *)d->tz;
	job.window_start = (char *)d->window_start;
	job.window_end = (char *)d->window_end;
	job.credentials = &cr;
	job.limits = &lim;
	job.ca_bundle = (char *)d->ca_bundle;
	env.msg_case = VETSYNC__ENVELOPE__MSG_JOB;
	env.job = &job;
	if ((r = frame_validate(&env, err, sizeof(err))) != 0) {
		fprintf(stderr, "worker_drive: job: %s\n", err);
		return r;
	}
	return frame_send(fd, &env);
}

static int
send_simple(int fd, int kind)
{
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Cancel cancel = VETSYNC__CANCEL__INIT;
	Vetsync__Shutdown shut = VETSYNC__SHUTDOWN__INIT;

	env.msg_case = kind;
	if (kind == VETSYNC__ENVELOPE__MSG_CANCEL) {
		cancel.has_job_id = 1;
		cancel.job_id = 1;
		env.cancel = &cancel;
	} else
		env.shutdown = &shut;
	return frame_send(fd, &env);
}

/*
 * The worker's proportional and private memory now (kB), from
 * /proc/PID/smaps_rollup: RSS counts every shared library page in full,
 * PSS and private pages are what the worker costs.  -1 when unreadable.
 */
static void
smaps(pid_t pid, long *ret_pss, long *ret_priv)
{
	char path[64], line[256];
	long v, clean = -1, dirty = -1;
	FILE *f;

	*ret_pss = *ret_priv = -1;
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "Pss: %ld kB", &v) == 1)
			*ret_pss = v;
		else if (sscanf(line, "Private_Clean: %ld kB", &v) == 1)
			clean = v;
		else if (sscanf(line, "Private_Dirty: %ld kB", &v) == 1)
			dirty = v;
	}
	fclose(f);
	if (clean >= 0 && dirty >= 0)
		*ret_priv = clean + dirty;
}

static char *
read_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char *s = NULL;
	size_t n;

	if (f == NULL)
		return NULL;
	s = calloc(1, FRAME_PROFILE_MAX + 1);
	n = fread(s, 1, FRAME_PROFILE_MAX, f);
	s[n] = '\0';
	fclose(f);
	return s;
}

/* Host and port of an http(s) URL; the pinned IP defaults to the host. */
static int
parse_url(struct drive *d)
{
	const char *p, *end, *colon;
	size_t n;

	if (strncmp(d->url, "https://", 8) == 0) {
		p = d->url + 8;
		d->port = 443;
	} else if (strncmp(d->url, "http://", 7) == 0) {
		p = d->url + 7;
		d->port = 80;
	} else
		return -1;
	end = p + strcspn(p, "/?#");
	colon = memchr(p, ':', (size_t)(end - p));
	n = (size_t)((colon != NULL ? colon : end) - p);
	if (n == 0 || n >= sizeof(d->host))
		return -1;
	memcpy(d->host, p, n);
	d->host[n] = '\0';
	if (colon != NULL)
		d->port = (unsigned)strtoul(colon + 1, NULL, 10);
	if (d->ip == NULL)
		d->ip = strspn(d->host, "0123456789.") == n ? d->host :
		    "127.0.0.1";
	return d->port > 0 && d->port < 65536 ? 0 : -1;
}

static void
parse_args(struct drive *d, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", 1, NULL, 'u' }, { "ip", 1, NULL, 'I' },
		{ "profile-file", 1, NULL, 'P' }, { "timezone", 1, NULL, 'z' },
		{ "window-start", 1, NULL, 's' }, { "window-end", 1, NULL, 'e' },
		{ "kind", 1, NULL, 'k' }, { "user", 1, NULL, 'U' },
		{ "password", 1, NULL, 'p' }, { "company", 1, NULL, 'c' },
		{ "ca-bundle", 1, NULL, 'C' }, { "clinic", 1, NULL, 'L' },
		{ "max-parallel", 1, NULL, 'm' },
		{ "request-rate", 1, NULL, 'r' },
		{ "response-max", 1, NULL, 'R' },
		{ "request-timeout-ms", 1, NULL, 't' },
		{ "job-timeout-ms", 1, NULL, 'T' },
		{ "cancel-after-ms", 1, NULL, 'x' },
		{ "worker", 1, NULL, 'w' }, { "policy", 1, NULL, 'o' },
		{ "timeout-s", 1, NULL, 'W' }, { "no-seccomp", 0, NULL, 'N' },
		{ NULL, 0, NULL, 0 },
	};
	static char worker[1024], policy[1024];
	const char *b = getenv("top_builddir"), *s = getenv("top_srcdir");
	int ch;

	snprintf(worker, sizeof(worker), "%s/vetsync-worker", b ? b : ".");
	snprintf(policy, sizeof(policy), "%s/policy", s ? s : ".");
	d->worker = worker;
	d->policy = policy;
	d->tz = "America/Denver";
	d->clinic = "clinic-1";
	d->ca_bundle = "/etc/ssl/certs/ca-certificates.crt";
	d->kind = VETSYNC__JOB_KIND__RECONCILE_NOTES;
	d->max_parallel = 8;
	d->request_rate = 200;
	d->response_max = 16 << 20;
	d->request_timeout_ms = 30000;
	d->job_timeout_ms = 600000;
	d->timeout_s = 300;
	d->cancel_after_ms = -1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'u': d->url = optarg; break;
		case 'I': d->ip = optarg; break;
		case 'P': d->profile_file = optarg; break;
		case 'z': d->tz = optarg; break;
		case 's': d->window_start = optarg; break;
		case 'e': d->window_end = optarg; break;
		case 'U': d->user = optarg; break;
		case 'p': d->password = optarg; break;
		case 'c': d->company = optarg; break;
		case 'C': d->ca_bundle = optarg; break;
		case 'L': d->clinic = optarg; break;
		case 'm': d->max_parallel = (unsigned)atoi(optarg); break;
		case 'r': d->request_rate = (unsigned)atoi(optarg); break;
		case 'R': d->response_max = strtoull(optarg, NULL, 10); break;
		case 't': d->request_timeout_ms = (unsigned)atoi(optarg); break;
		case 'T': d->job_timeout_ms = (unsigned)atoi(optarg); break;
		case 'x': d->cancel_after_ms = atol(optarg); break;
		case 'w': d->worker = optarg; break;
		case 'o': d->policy = optarg; break;
		case 'W': d->timeout_s = (unsigned)atoi(optarg); break;
		case 'N': d->no_seccomp = true; break;
		case 'k':
			if (strcmp(optarg, "reconcile") == 0)
				d->kind = VETSYNC__JOB_KIND__RECONCILE_NOTES;
			else if (strcmp(optarg, "schedule") == 0)
				d->kind = VETSYNC__JOB_KIND__SYNC_SCHEDULE;
			else if (strcmp(optarg, "validate") == 0)
				d->kind =
				    VETSYNC__JOB_KIND__VALIDATE_CREDENTIALS;
			else
				usage();
			break;
		default:
			usage();
		}
	}
	if (d->url == NULL || d->profile_file == NULL || d->user == NULL ||
	    d->password == NULL || parse_url(d) != 0)
		usage();
}

int
main(int argc, char **argv)
{
	struct drive d;
	struct rusage ru;
	Vetsync__Envelope *env = NULL;
	char err[FRAME_ERR_MAX], *profile;
	uint64_t t0, sent = 0, deadline;
	bool result = false, cancelled = false, hello = false;
	long pss = -1, priv = -1;
	int fd = -1, status = 0, r;
	pid_t pid;

	memset(&d, 0, sizeof(d));
	parse_args(&d, argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if ((profile = read_file(d.profile_file)) == NULL) {
		fprintf(stderr, "worker_drive: %s: %s\n", d.profile_file,
		    strerror(errno));
		return 2;
	}
	t0 = clock_mono_ms();
	deadline = t0 + (uint64_t)d.timeout_s * 1000;
	if ((pid = spawn(&d, &fd)) == -1) {
		perror("worker_drive: spawn");
		return 1;
	}
	if (send_setup(&d, fd) != 0)
		goto reap;
	while (!result) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		uint64_t now = clock_mono_ms();
		int wait = 1000;

		if (now >= deadline) {
			fprintf(stderr, "worker_drive: no JobResult within "
			    "%u s\n", d.timeout_s);
			break;
		}
		if (hello && !cancelled && d.cancel_after_ms >= 0) {
			if (now >= sent + (uint64_t)d.cancel_after_ms) {
				send_simple(fd, VETSYNC__ENVELOPE__MSG_CANCEL);
				cancelled = true;
				continue;
			}
			wait = (int)(sent + (uint64_t)d.cancel_after_ms - now);
		}
		if ((r = poll(&pfd, 1, wait)) == -1 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		if ((r = frame_recv(fd, &env, err, sizeof(err))) != 0) {
			if (r == -EAGAIN || r == -EINTR)
				continue;
			fprintf(stderr, "worker_drive: channel: %s\n",
			    r == -EPIPE ? "worker closed it" : err);
			break;
		}
		print_env(env);
		switch (env->msg_case) {
		case VETSYNC__ENVELOPE__MSG_HELLO:
			hello = true;
			sent = clock_mono_ms();
			if (send_job(&d, fd, profile) != 0)
				goto reap;
			break;
		case VETSYNC__ENVELOPE__MSG_JOB_RESULT:
			result = true;
			break;
		default:
			break;
		}
		frame_free(env);
		env = NULL;
	}
	if (result) {
		smaps(pid, &pss, &priv);
		send_simple(fd, VETSYNC__ENVELOPE__MSG_SHUTDOWN);
	}
reap:
	if (!result)
		kill(pid, SIGKILL);
	memset(&ru, 0, sizeof(ru));
	while (wait4(pid, &status, 0, &ru) == -1 && errno == EINTR)
		;
	printf("{\"type\":\"worker\",\"exit\":%d,\"signal\":%d,"
	    "\"maxrss_kb\":%ld,\"pss_kb\":%ld,\"private_kb\":%ld,"
	    "\"wall_ms\":%llu}\n",
	    WIFEXITED(status) ? WEXITSTATUS(status) : -1,
	    WIFSIGNALED(status) ? WTERMSIG(status) : 0, ru.ru_maxrss, pss, priv,
	    (unsigned long long)(clock_mono_ms() - t0));
	close(fd);
	free(profile);
	return result ? 0 : 1;
}
