/*
 * One job, run inside the sandbox: the IDEXX Neo flow its kind names,
 * with its results streamed to the supervisor as they arrive.
 */
#ifndef VS_WORKER_JOB_H
#define VS_WORKER_JOB_H

#include "proto/frame.h"

/*
 * Run job on the channel fd: send its Progress, Event, Appointment,
 * Consultation, UiFingerprint and Snapshot messages as they come, then its
 * JobResult.  While it runs, fd is polled: a Cancel of this job ends it
 * CANCELLED.  Wipes the job's password before it returns.
 *
 * Returns 0; the negative errno of a failed send; -EPIPE when the
 * supervisor sent Shutdown or closed the channel during the job (the
 * caller exits 0); -EPROTO when it sent a frame out of place (the caller
 * exits 1).
 */
int job_run(int fd, const Vetsync__Job *job);

#endif
