/*
 * The worker's job handling, kept apart from main() so the IDEXX Neo
 * client (libcurl, jansson, libxml2) can be plugged in without touching
 * the sandbox entry or the channel loop.
 *
 * Until that client lands, every job is answered with a JobResult of
 * status UNSUPPORTED and error class "not_implemented": the supervisor
 * records a failed, explained run, never a fake success.
 */
#include <stdio.h>

#include "common/clock.h"
#include "proto/frame.h"
#include "worker/job.h"

static const char *
job_kind_name(Vetsync__JobKind kind)
{
	switch (kind) {
	case VETSYNC__JOB_KIND__RECONCILE_NOTES:
		return "RECONCILE_NOTES";
	case VETSYNC__JOB_KIND__SYNC_SCHEDULE:
		return "SYNC_SCHEDULE";
	case VETSYNC__JOB_KIND__VALIDATE_CREDENTIALS:
		return "VALIDATE_CREDENTIALS";
	default:
		return "unknown";
	}
}

int
job_run(int fd, const Vetsync__Job *job)
{
	Vetsync__Envelope env = VETSYNC__ENVELOPE__INIT;
	Vetsync__JobResult res = VETSYNC__JOB_RESULT__INIT;
	char msg[160];
	uint64_t start = clock_mono_ms();

	snprintf(msg, sizeof(msg), "job kind %s not run: the IDEXX Neo "
	    "client has not landed in this vetsync-worker",
	    job_kind_name(job->kind));
	res.job_id = job->job_id;
	res.has_job_id = 1;
	res.status = VETSYNC__JOB_STATUS__UNSUPPORTED;
	res.has_status = 1;
	res.error_class = (char *)"not_implemented";
	res.error_message = msg;
	res.total_ms = (uint32_t)(clock_mono_ms() - start);
	res.has_total_ms = 1;
	env.msg_case = VETSYNC__ENVELOPE__MSG_JOB_RESULT;
	env.job_result = &res;
	return frame_send(fd, &env);
}
