/*
 * The fingerprint of what confines the workers: SHA-256 over the policy
 * files (name and content, in order) and the worker binary.  It goes into
 * every sync session's audit record, so that an auditor can tie each run
 * to the exact policy that confined it.
 */
#ifndef VS_SUPERVISOR_POLICYHASH_H
#define VS_SUPERVISOR_POLICYHASH_H

#include <stddef.h>

struct policy;

/* Write 64 lowercase hex digits and a NUL into hex.  Returns 0 or -errno. */
int policyhash_compute(const struct policy *, const char *worker_binary,
    char hex[65]);

#endif
