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
 *	   (worker/entry.c: no_new_privs, dumpable off, Landlock, seccomp);
 *	4. send Hello with the sandbox report;
 *	5. serve: Job runs (worker/job.c) and is answered with a JobResult,
 *	   Cancel of a job no longer running is ignored, Shutdown exits 0.
 *
 * The worker trusts its parent (STYLE §3): any frame that fails to decode
 * or arrives out of place ends the process with status 1.  Exits after the
 * sandbox use _exit(): atexit handlers of the libraries could make calls
 * the filter does not allow.
 */

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
#include "worker/entry.h"
#include "worker/job.h"

#define WORKER_FD		ENTRY_CHANNEL_FD
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

int
main(int argc, char **argv)
{
	Vetsync__Envelope *env = NULL;
	char err[FRAME_ERR_MAX];
	int r;

	log_init("vetsync-worker", LOG_LEVEL_INFO);
	if ((r = entry_check_channel(WORKER_FD)) != 0) {
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
	if ((r = entry_setup(WORKER_FD, err, sizeof(err))) != 0) {
		log_warnx("%s", err);
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
