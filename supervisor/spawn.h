/*
 * Starting one worker process: DESIGN §2 "Spawn", in this order.
 *
 * Parent: socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC), fork.
 * Child (async-signal-safe only: no malloc, no stdio, no logging):
 * join the clinic's cgroup, set the rlimits, drop to the worker identity
 * when running as root, PR_SET_NO_NEW_PRIVS, PR_SET_DUMPABLE 0, the channel
 * on fd 3, /dev/null on 0 and 1, our stderr on 2, every other fd closed,
 * an empty environment, execve.  A failure in the child exits with
 * SPAWN_EXIT_* codes that the supervisor classifies; there is never a fork
 * without exec, so the child never runs supervisor code with its secrets.
 */
#ifndef VS_SUPERVISOR_SPAWN_H
#define VS_SUPERVISOR_SPAWN_H

#include <sys/types.h>

#include <stdbool.h>

struct cgroup_clinic;
struct policy_limits;

/* The fd on which a worker finds its channel. */
#define SPAWN_CHANNEL_FD 3

/* Exit codes of a child that failed before execve succeeded. */
#define SPAWN_EXIT_CGROUP 120
#define SPAWN_EXIT_RLIMIT 121
#define SPAWN_EXIT_IDENTITY 122
#define SPAWN_EXIT_PRCTL 123
#define SPAWN_EXIT_FDS 124
#define SPAWN_EXIT_EXEC 127

struct spawn_params {
	const char *binary;			/* absolute path */
	const struct cgroup_clinic *cgroup;	/* NULL: none (rlimits only) */
	const struct policy_limits *limits;	/* NULL: none (tests only) */
	bool drop_identity;
	uid_t uid;
	gid_t gid;
};

/*
 * Start a worker.  On success *ret_pid is the child and *ret_fd the
 * supervisor's end of the channel (non-blocking, close-on-exec).
 * Returns 0 or -errno (socketpair/fork failures).
 */
int spawn_worker(const struct spawn_params *, pid_t *ret_pid, int *ret_fd);

/* What a SPAWN_EXIT_* code means, or NULL for any other code. */
const char *spawn_exit_reason(int code);

/*
 * Resolve the worker identity (user and group names) into ids.  Only
 * meaningful when running as root; returns -ENOENT naming nothing when a
 * name is unknown (the caller says which).
 */
int spawn_resolve_identity(const char *user, const char *group,
    uid_t *ret_uid, gid_t *ret_gid);

#endif
