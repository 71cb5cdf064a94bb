/*
 * A worker that misbehaves on purpose, for the containment tests.
 *
 * It starts exactly as vetsync-worker does, through the same entry_setup()
 * -- channel on fd 3, Setup read, sandbox entered, Hello -- and then, for its first Job, does what
 * the clinic id's prefix asks ("execve-1" tries execve, "garbage-2" sends a
 * garbage frame, ...).  The supervisor is then expected to classify the
 * result, audit it and carry on.  "ok" clinics behave, so that a test can
 * check that other clinics never notice.
 */
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"

#include "proto/frame.h"
#include "worker/entry.h"

#define CHAN ENTRY_CHANNEL_FD

static uint64_t job_id;

static void
send_env(Vetsync__Envelope *env)
{
	if (frame_send(CHAN, env) < 0)
		_exit(70);
}

static void
send_progress(unsigned done)
{
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Progress p = VETSYNC__PROGRESS__INIT;

	p.job_id = job_id;
	p.has_job_id = 1;
	p.stage = VETSYNC__STAGE__FETCHING_CONSULTATIONS;
	p.has_stage = 1;
	p.done = done;
	p.has_done = 1;
	env.msg_case = VETSYNC__ENVELOPE__MSG_PROGRESS;
	env.progress = &p;
	send_env(&env);
}

static void
send_result(Vetsync__JobStatus status, const char *cls, const char *msg)
{
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__JobResult r = VETSYNC__JOB_RESULT__INIT;

	r.job_id = job_id;
	r.has_job_id = 1;
	r.status = status;
	r.has_status = 1;
	r.error_class = (char *)cls;
	r.error_message = (char *)msg;
	env.msg_case = VETSYNC__ENVELOPE__MSG_JOB_RESULT;
	env.job_result = &r;
	send_env(&env);
}

static void
send_consultation(void)
{
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__Consultation c = VETSYNC__CONSULTATION__INIT;

	c.job_id = job_id;
	c.has_job_id = 1;
	c.consultation_id = "c-1";
	c.notes = "Bright, alert, responsive.";
	env.msg_case = VETSYNC__ENVELOPE__MSG_CONSULTATION;
	env.consultation = &c;
	send_env(&env);
}

/* Wait for Shutdown (exit 0) or Cancel (result CANCELLED, exit 0). */
static void __attribute__((noreturn))
wait_for_parent(void)
{
	Vetsync__Envelope *env;

	for (;;) {
		if (frame_recv(CHAN, &env, NULL, 0) < 0)
			_exit(71);
		if (env->msg_case == VETSYNC__ENVELOPE__MSG_CANCEL) {
			send_result(VETSYNC__JOB_STATUS__CANCELLED, "cancelled",
			    "cancelled by the supervisor");
		} else if (env->msg_case == VETSYNC__ENVELOPE__MSG_SHUTDOWN) {
			frame_free(env);
			_exit(0);
		}
		frame_free(env);
	}
}

static void
report_errno(const char *what, int err)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "%s: %s", what, strerrorname_np(err));
	send_result(VETSYNC__JOB_STATUS__FAILED, "denied", msg);
	wait_for_parent();
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* A real SIGSEGV, with no syscall involved (and no sanitizer check). */
static void __attribute__((no_sanitize("undefined", "address")))
crash(void)
{
	volatile int *volatile nowhere = NULL;

	*nowhere = 1;
}

static void
act(const char *clinic)
{
	char name[64];
	char *dash;

	snprintf(name, sizeof(name), "%s", clinic);
	if ((dash = strchr(name, '-')) != NULL)
		*dash = '\0';

	if (strcmp(name, "ok") == 0) {
		send_progress(1);
		send_consultation();
		send_result(VETSYNC__JOB_STATUS__OK, NULL, NULL);
		wait_for_parent();
	} else if (strcmp(name, "crash") == 0) {
		crash();
	} else if (strcmp(name, "exit3") == 0) {
		_exit(3);
	} else if (strcmp(name, "invalid") == 0) {
		send_result(VETSYNC__JOB_STATUS__INVALID_CREDENTIALS,
		    "invalid_credentials", "IDEXX refused the login");
		wait_for_parent();
	} else if (strcmp(name, "execve") == 0) {
		char *argv[] = { "/bin/true", NULL };

		execve("/bin/true", argv, argv + 1);
		report_errno("execve", errno);
	} else if (strcmp(name, "forkbomb") == 0) {
		for (;;)
			if (fork() == 0)
				sleep(60);
	} else if (strcmp(name, "ptrace") == 0) {
		ptrace(PTRACE_TRACEME, 0, NULL, NULL);
		report_errno("ptrace", errno);
	} else if (strcmp(name, "shadow") == 0) {
		if (open("/etc/shadow", O_RDONLY) == -1)
			report_errno("open /etc/shadow", errno);
		send_result(VETSYNC__JOB_STATUS__OK, NULL, "read /etc/shadow");
		wait_for_parent();
	} else if (strcmp(name, "pgconnect") == 0) {
		struct sockaddr_in sin;
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(5432);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (fd == -1 || connect(fd, (struct sockaddr *)&sin,
		    sizeof(sin)) == -1)
			report_errno("connect 127.0.0.1:5432", errno);
		send_result(VETSYNC__JOB_STATUS__OK, NULL, "connected");
		wait_for_parent();
	} else if (strcmp(name, "membomb") == 0) {
		/* Touch memory until the cgroup's OOM killer steps in. */
		for (;;) {
			char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (p == MAP_FAILED)
				report_errno("mmap", errno);
			memset(p, 0x5a, 1 << 20);
		}
	} else if (strcmp(name, "cpuburn") == 0) {
		/* Burn for 3 s of wall time, saying so now and then. */
		uint64_t end = clock_mono_ms() + 3000, next = 0;
		volatile unsigned long x = 0;

		while (clock_mono_ms() < end) {
			x++;
			if (clock_mono_ms() >= next) {
				send_progress((unsigned)(x & 0xffff));
				next = clock_mono_ms() + 200;
			}
		}
		send_result(VETSYNC__JOB_STATUS__OK, NULL, NULL);
		wait_for_parent();
	} else if (strcmp(name, "garbage") == 0) {
		static const char junk[] = "\xff\xfe garbage \x01\x02\x03";

		send(CHAN, junk, sizeof(junk), 0);
		wait_for_parent();
	} else if (strcmp(name, "oversize") == 0) {
		size_t n = FRAME_MAX + 4096;
		char *big = calloc(1, n);
		int sz = (int)n * 2;

		setsockopt(CHAN, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		send(CHAN, big, n, 0);
		wait_for_parent();
	} else if (strcmp(name, "outofstate") == 0) {
		Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
		Vetsync__Cancel c = VETSYNC__CANCEL__INIT;

		/* Only the supervisor sends Cancel. */
		c.job_id = job_id;
		c.has_job_id = 1;
		env.msg_case = VETSYNC__ENVELOPE__MSG_CANCEL;
		env.cancel = &c;
		send_env(&env);
		wait_for_parent();
	} else if (strcmp(name, "wrongjob") == 0) {
		job_id++;
		send_progress(1);
		wait_for_parent();
	} else if (strcmp(name, "silent") == 0) {
		for (;;)
			sleep_ms(1000);
	} else if (strcmp(name, "slow") == 0 ||
	    strcmp(name, "slowkill") == 0) {
		/* Chatty but never done: only the job timeout ends it. */
		for (unsigned i = 0;; i++) {
			send_progress(i);
			sleep_ms(200);
		}
	} else {
		send_result(VETSYNC__JOB_STATUS__FAILED, "test",
		    "unknown hostile behaviour");
		wait_for_parent();
	}
}

int
main(void)
{
	Vetsync__Envelope *env = NULL;
	char err[256];

	if (entry_setup(CHAN, err, sizeof(err)) != 0) {
		fprintf(stderr, "hostile_worker: %s\n", err);
		return 65;
	}
	if (frame_recv(CHAN, &env, err, sizeof(err)) < 0)
		return 66;
	if (env->msg_case != VETSYNC__ENVELOPE__MSG_JOB)
		return 67;
	job_id = env->job->job_id;
	act(env->job->clinic_id);
	return 0;
}
