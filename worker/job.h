/*
 * One job, run inside the sandbox.  The IDEXX Neo client plugs in here;
 * until it lands every job is answered honestly as unsupported.
 */
#ifndef VS_WORKER_JOB_H
#define VS_WORKER_JOB_H

#include "proto/frame.h"

/*
 * Run job and send its JobResult (and any Progress before it) on fd.
 * Returns 0, or the negative errno of a failed send; the caller exits.
 */
int job_run(int fd, const Vetsync__Job *job);

#endif
