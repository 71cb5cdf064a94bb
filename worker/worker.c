/*
 * vetsync-worker: one clinic's sandboxed process.
 *
 * vetsyncd forks and execs us with an empty environment, our identity and
 * limits already set, and the channel -- an AF_UNIX SOCK_SEQPACKET socket
 * -- on fd 3.  main() then does, in this order and exiting non-zero on any
 * failure (fail closed):
 *
 *	1. check fd 3 is the channel;
 *	2. initialise libcurl and libxml2, which read their configuration
 *	   and load what they need from disk now, while they still can;
 *	3. read Setup, the first frame, and enter the sandbox it describes
 *	   (sandbox_enter: no_new_privs, dumpable off, Landlock, seccomp);
 *	4. send Hello with the sandbox report;
 *	5. serve: Job runs (worker/job.c) and is answered with a JobResult,
 *	   Cancel of a job no longer running is ignored, Shutdown exits 0.
 *
 * The worker trusts its parent (STYLE §3): any frame that fails to decode
 * or arrives out of place ends the process with status 1.  Exits after the
 * sandbox use _exit(): atexit handlers of the libraries could make calls
 * the filter does not allow.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <libxml/parser.h>

#include "common/log.h"
#include "proto/frame.h"
#include "policy/policy.h"
#include "worker/job.h"

#define WORKER_FD		3
#define WORKER_EXIT_OK		0
#define WORKER_EXIT_FAIL	1

#ifdef VS_SANITIZERS
/* LeakSanitizer stops the world with ptrace, which the sandbox forbids. */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
	return "detect_leaks=0";
}
#endif

static void __attribute__((noreturn))
worker_exit(int status)
{
	fflush(stderr);
	_exit(status);
}

static int
worker_check_channel(int fd)
{
	struct stat st;
	socklen_t len = sizeof(int);
	int type;

	if (fstat(fd, &st) == -1)
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return -ENOTSOCK;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1)
		return -errno;
	return type == SOCK_SEQPACKET ? 0 : -EPROTOTYPE;
}

static int
worker_recv(Vetsync__Envelope **ret)
{
	char err[FRAME_ERR_MAX];
	int r;

	do {
		r = frame_recv(WORKER_FD, ret, err, sizeof(err));
	} while (r == -EINTR);
	if (r == -EPIPE)
		return r;
	if (r != 0)
		log_warnx("channel: %s", err);
	return r;
}

/* Enter the sandbox described by setup; exits on failure. */
static void
worker_enter(const Vetsync__Setup *setup, struct sandbox_report *rep)
{
	struct sandbox_spec spec;
	uint16_t ports[POLICY_MAX_TCP_PORTS];
	char err[512];

	if (setup->n_landlock_ro_paths > POLICY_MAX_RO_PATHS ||
	    setup->n_landlock_tcp_ports > POLICY_MAX_TCP_PORTS) {
		log_warnx("setup: %zu paths and %zu ports over the limits",
		    setup->n_landlock_ro_paths, setup->n_landlock_tcp_ports);
		worker_exit(WORKER_EXIT_FAIL);
	}
	for (size_t i = 0; i < setup->n_landlock_tcp_ports; i++) {
		if (setup->landlock_tcp_ports[i] == 0 ||
		    setup->landlock_tcp_ports[i] > 65535) {
			log_warnx("setup: bad port %u",
			    setup->landlock_tcp_ports[i]);
			worker_exit(WORKER_EXIT_FAIL);
		}
		ports[i] = (uint16_t)setup->landlock_tcp_ports[i];
	}
	memset(&spec, 0, sizeof(spec));
	spec.bpf = setup->seccomp_bpf.data;
	spec.bpf_len = setup->seccomp_bpf.len;
	spec.ro_paths = (const char *const *)setup->landlock_ro_paths;
	spec.n_ro_paths = setup->n_landlock_ro_paths;
	spec.tcp_ports = ports;
	spec.n_tcp_ports = setup->n_landlock_tcp_ports;
	spec.min_landlock_abi = (int)setup->landlock_min_abi;
	spec.require_landlock = setup->require_landlock;
	if (sandbox_enter(&spec, rep, err, sizeof(err)) != 0) {
		log_warnx("sandbox: %s", err);
		worker_exit(WORKER_EXIT_FAIL);
	}
}

static int
worker_hello(const struct sandbox_report *rep)
{
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Hello hello = VETSYNC__HELLO__INIT;
	Vetsync__SandboxReport sr = VETSYNC__SANDBOX_REPORT__INIT;

	sr.has_no_new_privs = sr.has_seccomp = sr.has_landlock_abi = 1;
	sr.has_landlock_fs = sr.has_landlock_net = sr.has_nondumpable = 1;
	sr.no_new_privs = rep->no_new_privs;
	sr.seccomp = rep->seccomp;
	sr.landlock_abi = (uint32_t)rep->landlock_abi;
	sr.landlock_fs = rep->landlock_fs;
	sr.landlock_net = rep->landlock_net;
	sr.nondumpable = rep->dumpable_off;
	hello.has_protocol_version = 1;
	hello.protocol_version = FRAME_PROTOCOL_VERSION;
	hello.has_pid = 1;
	hello.pid = (uint32_t)getpid();
	hello.sandbox = &sr;
	env.msg_case = VETSYNC__ENVELOPE__MSG_HELLO;
	env.hello = &hello;
	return frame_send(WORKER_FD, &env);
}

int
main(int argc, char **argv)
{
	Vetsync__Envelope *env = NULL;
	struct sandbox_report rep;
	int r;

	log_init("vetsync-worker", LOG_LEVEL_INFO);
	if ((r = worker_check_channel(WORKER_FD)) != 0) {
		log_warnx("fd %d is not a SOCK_SEQPACKET channel: %s",
		    WORKER_FD, strerror(-r));
		return WORKER_EXIT_FAIL;
	}
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_warnx("curl_global_init failed");
		return WORKER_EXIT_FAIL;
	}
	xmlInitParser();
	if ((r = frame_socket_init(WORKER_FD)) != 0) {
		log_warnx("channel: %s", strerror(-r));
		return WORKER_EXIT_FAIL;
	}

	if (worker_recv(&env) != 0)
		return WORKER_EXIT_FAIL;
	if (env->msg_case != VETSYNC__ENVELOPE__MSG_SETUP) {
		log_warnx("channel: %s before setup",
		    frame_kind_name(env->msg_case));
		return WORKER_EXIT_FAIL;
	}
	worker_enter(env->setup, &rep);
	frame_free(env);
	env = NULL;
	if ((r = worker_hello(&rep)) != 0) {
		log_warnx("channel: hello: %s", strerror(-r));
		worker_exit(WORKER_EXIT_FAIL);
	}

	for (;;) {
		if ((r = worker_recv(&env)) == -EPIPE)
			worker_exit(WORKER_EXIT_OK);	/* parent gone */
		if (r != 0)
			worker_exit(WORKER_EXIT_FAIL);
		switch (env->msg_case) {
		case VETSYNC__ENVELOPE__MSG_JOB:
			r = job_run(WORKER_FD, env->job);
			break;
		case VETSYNC__ENVELOPE__MSG_CANCEL:
			/* Jobs run to completion before we read again. */
			log_debug("cancel of job %llu: not running",
			    (unsigned long long)env->cancel->job_id);
			r = 0;
			break;
		case VETSYNC__ENVELOPE__MSG_SHUTDOWN:
			frame_free(env);
			worker_exit(WORKER_EXIT_OK);
		default:
			log_warnx("channel: unexpected %s",
			    frame_kind_name(env->msg_case));
			worker_exit(WORKER_EXIT_FAIL);
		}
		frame_free(env);
		env = NULL;
		if (r != 0) {
			log_warnx("channel: %s", strerror(-r));
			worker_exit(r == -EPIPE ? WORKER_EXIT_OK :
			    WORKER_EXIT_FAIL);
		}
	}
}
