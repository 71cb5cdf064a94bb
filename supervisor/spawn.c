/*
 * fork + exec of vetsync-worker.  Everything between fork() and execve() is
 * async-signal-safe: the supervisor may hold locks in libpq, libcurl or
 * malloc at the moment of the fork, and the child must not touch them.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#include "proto/frame.h"
#include "policy/policy.h"

#include "supervisor/cgroup.h"
#include "supervisor/spawn.h"

const char *
spawn_exit_reason(int code)
{
	switch (code) {
	case SPAWN_EXIT_CGROUP:
		return "could not join its cgroup";
	case SPAWN_EXIT_RLIMIT:
		return "could not set its resource limits";
	case SPAWN_EXIT_IDENTITY:
		return "could not drop to the worker identity";
	case SPAWN_EXIT_PRCTL:
		return "could not set no-new-privs or non-dumpable";
	case SPAWN_EXIT_FDS:
		return "could not set up its file descriptors";
	case SPAWN_EXIT_EXEC:
		return "could not execute the worker binary";
	}
	return NULL;
}

int
spawn_resolve_identity(const char *user, const char *group, uid_t *ret_uid,
    gid_t *ret_gid)
{
	struct passwd *pw;
	struct group *gr;
	gid_t gid;

	errno = 0;
	if ((pw = getpwnam(user)) == NULL)
		return errno != 0 ? -errno : -ENOENT;
	gid = pw->pw_gid;
	if (group != NULL && *group != '\0') {
		errno = 0;
		if ((gr = getgrnam(group)) == NULL)
			return errno != 0 ? -errno : -ESRCH;
		gid = gr->gr_gid;
	}
	if (pw->pw_uid == 0 || gid == 0)
		return -EPERM;
	*ret_uid = pw->pw_uid;
	*ret_gid = gid;
	return 0;
}

/* The child's half.  Never returns. */
static void __attribute__((noreturn))
spawn_child(const struct spawn_params *p, int chan, int devnull)
{
	static char *const argv[] = { "vetsync-worker", NULL };
	static char *const envp[] = { NULL };
	sigset_t all;

	/* Signal dispositions and the mask are inherited: start clean. */
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);

	if (p->cgroup != NULL && cgroup_clinic_join(p->cgroup) != 0)
		_exit(SPAWN_EXIT_CGROUP);
	if (p->limits != NULL && policy_limits_apply(p->limits) != 0)
		_exit(SPAWN_EXIT_RLIMIT);
	if (p->drop_identity) {
		if (setgroups(1, &p->gid) == -1 ||
		    setresgid(p->gid, p->gid, p->gid) == -1 ||
		    setresuid(p->uid, p->uid, p->uid) == -1)
			_exit(SPAWN_EXIT_IDENTITY);
		/* Make sure there is no way back. */
		if (setuid(0) == 0)
			_exit(SPAWN_EXIT_IDENTITY);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		_exit(SPAWN_EXIT_PRCTL);

	/*
	 * fds: 0,1 /dev/null; 2 our stderr; 3 the channel; nothing else.
	 * /dev/null first: it may itself sit on fd 3.
	 */
	if (dup2(devnull, STDIN_FILENO) == -1 ||
	    dup2(devnull, STDOUT_FILENO) == -1)
		_exit(SPAWN_EXIT_FDS);
	if (chan != SPAWN_CHANNEL_FD) {
		if (dup2(chan, SPAWN_CHANNEL_FD) == -1)
			_exit(SPAWN_EXIT_FDS);
	} else if (fcntl(chan, F_SETFD, 0) == -1)
		_exit(SPAWN_EXIT_FDS);
	if (close_range(SPAWN_CHANNEL_FD + 1, ~0U, 0) == -1)
		_exit(SPAWN_EXIT_FDS);

	execve(p->binary, argv, envp);
	_exit(SPAWN_EXIT_EXEC);
}

int
spawn_worker(const struct spawn_params *p, pid_t *ret_pid, int *ret_fd)
{
	int sv[2] = { -1, -1 };
	int devnull = -1, r;
	pid_t pid;

	if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1)
		return -errno;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0, sv) == -1) {
		r = -errno;
		goto fail;
	}
	if ((r = frame_socket_init(sv[0])) < 0 ||
	    (r = frame_socket_init(sv[1])) < 0)
		goto fail;
	/* The worker's end blocks: it has nothing else to do. */
	if (fcntl(sv[1], F_SETFL, 0) == -1) {
		r = -errno;
		goto fail;
	}
	if ((pid = fork()) == -1) {
		r = -errno;
		goto fail;
	}
	if (pid == 0)
		spawn_child(p, sv[1], devnull);
	close(sv[1]);
	close(devnull);
	*ret_pid = pid;
	*ret_fd = sv[0];
	return 0;
fail:
	if (sv[0] != -1)
		close(sv[0]);
	if (sv[1] != -1)
		close(sv[1]);
	close(devnull);
	return r;
}
