/*
 * sandbox_probe: enters exactly the worker's sandbox and tries one thing.
 *
 *	sandbox_probe POLICY_DIR CA_BUNDLE PORT ACTION
 *	sandbox_probe POLICY_DIR info
 *
 * It loads and compiles the policy as vetsyncd does (parent half), applies
 * the limits as the spawn code does, drops to nobody when started as root,
 * and enters the sandbox with the same call as vetsync-worker
 * (sandbox_enter), with CA_BUNDLE as its only readable file and PORT as its
 * only TCP port (0: listen on a fresh port before entering and allow that
 * one).  Then it performs ACTION and reports:
 *
 *	exit 0, "result ok"		the action succeeded
 *	exit 1, "result errno ENAME"	the call failed with that errno
 *	exit 2, "setup: ..."		the probe could not get that far
 *	killed by SIGSYS		seccomp stopped it
 *
 * Everything an action needs (addresses, the parent's pid) is computed
 * before the sandbox, so the only call made inside is the one under test.
 * tests/integration/sandbox.sh runs every action and checks the outcome.
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <linux/sched.h>

#include "policy/policy.h"

#ifdef VS_SANITIZERS
/* LeakSanitizer needs ptrace at exit; see policy/seccomp-sanitizers.policy. */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
	return "detect_leaks=0";
}
#endif

static struct {
	const char *ca;
	pid_t ppid;
	struct sockaddr_in allowed, other, pg;
} probe;

static int
probe_listen(struct sockaddr_in *sin)
{
	socklen_t len = sizeof(*sin);
	int fd;

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)sin, sizeof(*sin)) == -1 ||
	    listen(fd, 4) == -1 ||
	    getsockname(fd, (struct sockaddr *)sin, &len) == -1)
		return -errno;
	return fd;	/* kept open for the life of the probe */
}

static int
probe_connect(const struct sockaddr_in *sin)
{
	int fd;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) == -1)
		return -errno;
	close(fd);
	return 0;
}

static int
probe_open(const char *path, int flags)
{
	char b[64];
	int fd;

	if ((fd = open(path, flags | O_CLOEXEC, 0600)) == -1)
		return -errno;
	if ((flags & O_ACCMODE) == O_RDONLY && read(fd, b, sizeof(b)) == -1)
		return -errno;
	close(fd);
	return 0;
}

static int
probe_socket(int domain, int type)
{
	int fd;

	if ((fd = socket(domain, type, 0)) == -1)
		return -errno;
	close(fd);
	return 0;
}

static void *
probe_thread_main(void *arg)
{
	return arg;
}

static int
probe_thread(void)
{
	pthread_t t;
	void *res;
	int r;

	if ((r = pthread_create(&t, NULL, probe_thread_main, &probe)) != 0)
		return -r;
	if ((r = pthread_join(t, &res)) != 0)
		return -r;
	return res == &probe ? 0 : -EINVAL;
}

static int
probe_clone3(void)
{
	struct clone_args args;
	long r;

	memset(&args, 0, sizeof(args));
	args.exit_signal = SIGCHLD;
	r = syscall(SYS_clone3, &args, sizeof(args));
	if (r == 0)
		_exit(0);	/* the child, should there be one */
	return r == -1 ? -errno : 0;
}

static int
probe_mprotect_exec(void)
{
	void *p;

	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (mprotect(p, 4096, PROT_READ | PROT_EXEC) == -1)
		return -errno;
	return 0;
}

static int
probe_mmap_exec(void)
{
	void *p;

	p = mmap(NULL, 4096, PROT_READ | PROT_EXEC,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? -errno : 0;
}

/* Allocate and touch 1 MiB at a time; stop at 8 GiB in any case. */
static int
probe_memory_bomb(void)
{
	for (size_t i = 0; i < 8192; i++) {
		char *p = malloc(1 << 20);

		if (p == NULL)
			return -ENOMEM;
		memset(p, 0xa5, 1 << 20);
	}
	return 0;
}

static int
probe_fork_bomb(void)
{
	for (int i = 0; i < 64; i++) {
		pid_t pid = fork();

		if (pid == -1)
			return -errno;
		if (pid == 0)
			pause();
	}
	return 0;
}

static int
probe_fork(void)
{
	pid_t pid = fork();

	if (pid == -1)
		return -errno;
	if (pid == 0)
		_exit(0);
	return 0;
}

static int
probe_result(long r)
{
	return r == -1 ? -errno : 0;
}

static int
probe_act(const char *a)
{
	char *argv[] = { (char *)"/bin/true", NULL };
	char c = 'x';
	int sv[2];
	struct termios tio;

	if (strcmp(a, "execve") == 0)
		return probe_result(execve(argv[0], argv, NULL));
	if (strcmp(a, "fork") == 0)
		return probe_fork();
	if (strcmp(a, "vfork") == 0)
		return probe_result(syscall(SYS_vfork));
	if (strcmp(a, "fork-bomb") == 0)
		return probe_fork_bomb();
	if (strcmp(a, "open-shadow") == 0)
		return probe_open("/etc/shadow", O_RDONLY);
	if (strcmp(a, "open-passwd") == 0)
		return probe_open("/etc/passwd", O_RDONLY);
	if (strcmp(a, "open-environ") == 0)
		return probe_open("/proc/1/environ", O_RDONLY);
	if (strcmp(a, "write-tmp") == 0)
		return probe_open("/tmp/vetsync-sandbox-probe",
		    O_WRONLY | O_CREAT | O_TRUNC);
	if (strcmp(a, "read-ca") == 0)
		return probe_open(probe.ca, O_RDONLY);
	if (strcmp(a, "ptrace-traceme") == 0)
		return probe_result(syscall(SYS_ptrace, 0 /* TRACEME */, 0, 0,
		    0));
	if (strcmp(a, "ptrace-attach") == 0)
		return probe_result(syscall(SYS_ptrace, 16 /* ATTACH */,
		    probe.ppid, 0, 0));
	if (strcmp(a, "connect-5432") == 0)
		return probe_connect(&probe.pg);
	if (strcmp(a, "connect-other") == 0)
		return probe_connect(&probe.other);
	if (strcmp(a, "connect-allowed") == 0)
		return probe_connect(&probe.allowed);
	if (strcmp(a, "socket-netlink") == 0)
		return probe_socket(AF_NETLINK, SOCK_RAW);
	if (strcmp(a, "socket-packet") == 0)
		return probe_socket(AF_PACKET, SOCK_RAW);
	if (strcmp(a, "socket-udp") == 0)
		return probe_socket(AF_INET, SOCK_DGRAM);
	if (strcmp(a, "socket-unix") == 0)
		return probe_socket(AF_UNIX, SOCK_STREAM);
	if (strcmp(a, "socket-tcp6") == 0)
		return probe_socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC);
	if (strcmp(a, "socketpair-unix") == 0)
		return probe_result(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	if (strcmp(a, "bind-tcp") == 0) {
		struct sockaddr_in sin = probe.allowed;
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		sin.sin_port = 0;
		return probe_result(bind(fd, (struct sockaddr *)&sin,
		    sizeof(sin)));
	}
	if (strcmp(a, "unshare-user") == 0)
		return probe_result(unshare(CLONE_NEWUSER));
	if (strcmp(a, "mount") == 0)
		return probe_result(mount("none", "/tmp", "tmpfs", 0, NULL));
	if (strcmp(a, "bpf") == 0)
		return probe_result(syscall(SYS_bpf, 0, NULL, 0));
	if (strcmp(a, "io-uring") == 0)
		return probe_result(syscall(SYS_io_uring_setup, 1, NULL));
	if (strcmp(a, "thread") == 0)
		return probe_thread();
	if (strcmp(a, "clone3") == 0)
		return probe_clone3();
	if (strcmp(a, "mprotect-exec") == 0)
		return probe_mprotect_exec();
	if (strcmp(a, "mmap-exec") == 0)
		return probe_mmap_exec();
	if (strcmp(a, "memory-bomb") == 0)
		return probe_memory_bomb();
	if (strcmp(a, "kill-init") == 0)
		return probe_result(kill(1, 0));
	if (strcmp(a, "kill-parent") == 0)
		return probe_result(kill(probe.ppid, 0));
	if (strcmp(a, "prctl-dumpable") == 0)
		return probe_result(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0));
	if (strcmp(a, "prctl-name") == 0)
		return probe_result(prctl(PR_SET_NAME, "probe", 0, 0, 0));
	if (strcmp(a, "ioctl-tiocsti") == 0)
		return probe_result(ioctl(1, TIOCSTI, &c));
	if (strcmp(a, "ioctl-tcgets") == 0)
		return probe_result(ioctl(1, TCGETS, &tio));
	if (strcmp(a, "x32") == 0)
		return probe_result(syscall(0x40000000 | SYS_getpid));
	if (strcmp(a, "setuid") == 0)
		return probe_result(syscall(SYS_setuid, 0));
	if (strcmp(a, "memfd") == 0)
		return probe_result(syscall(SYS_memfd_create, "x", 0));
	if (strcmp(a, "getpid") == 0)
		return probe_result(syscall(SYS_getpid));
	fprintf(stderr, "setup: unknown action '%s'\n", a);
	exit(2);
}

static void
probe_setup_fail(const char *what, const char *msg)
{
	printf("setup: %s: %s\n", what, msg);
	exit(2);
}

int
main(int argc, char **argv)
{
	struct policy *p = NULL;
	struct sandbox_spec spec;
	struct sandbox_report rep;
	struct policy_subst subst[2];
	char err[512], port[16];
	const char *e;
	uid_t uid;
	int r;

	if (argc == 3 && strcmp(argv[2], "info") == 0) {
#ifdef VS_SANITIZERS
		printf("sanitizers=1\n");
#else
		printf("sanitizers=0\n");
#endif
		printf("landlock_abi=%d\n", sandbox_landlock_abi());
		return 0;
	}
	if (argc != 5) {
		fprintf(stderr, "usage: sandbox_probe POLICY_DIR CA_BUNDLE "
		    "PORT ACTION\n");
		return 2;
	}
	probe.ca = argv[2];
	probe.ppid = getppid();
	if ((r = policy_load(argv[1], &p, err, sizeof(err))) != 0)
		probe_setup_fail("policy", err);
	if (probe_listen(&probe.other) < 0)
		probe_setup_fail("listen", strerror(errno));
	probe.pg = probe.other;
	probe.pg.sin_port = htons(5432);
	if (strcmp(argv[3], "0") == 0) {
		if (probe_listen(&probe.allowed) < 0)
			probe_setup_fail("listen", strerror(errno));
		snprintf(port, sizeof(port), "%u", ntohs(probe.allowed.sin_port));
	} else {
		snprintf(port, sizeof(port), "%s", argv[3]);
		probe.allowed = probe.other;
		probe.allowed.sin_port = htons((uint16_t)atoi(argv[3]));
	}
	subst[0].name = "ca_bundle";
	subst[0].value = argv[2];
	subst[1].name = "idexx_ports";
	subst[1].value = port;
	if ((r = policy_prepare(p, subst, 2, &spec, err, sizeof(err))) != 0)
		probe_setup_fail("prepare", err);
	if ((r = policy_limits_apply(policy_limits(p))) != 0)
		probe_setup_fail("limits", strerror(-r));
	if (geteuid() == 0 && (setgroups(0, NULL) == -1 ||
	    setgid(65534) == -1 || setuid(65534) == -1))
		probe_setup_fail("drop to nobody", strerror(errno));
	uid = getuid();
	if ((r = sandbox_enter(&spec, &rep, err, sizeof(err))) != 0)
		probe_setup_fail("sandbox", err);
	printf("sandbox uid=%u abi=%d fs=%d net=%d scoped=%d seccomp=%d\n",
	    (unsigned int)uid, rep.landlock_abi, rep.landlock_fs,
	    rep.landlock_net, rep.landlock_scoped, rep.seccomp);
	printf("action %s\n", argv[4]);
	fflush(stdout);
	r = probe_act(argv[4]);
	if (r == 0) {
		printf("result ok\n");
		fflush(stdout);
		_exit(0);
	}
	switch (-r) {
	case EACCES: e = "EACCES"; break;
	case EPERM: e = "EPERM"; break;
	case ENOSYS: e = "ENOSYS"; break;
	case ENOMEM: e = "ENOMEM"; break;
	case ENOTTY: e = "ENOTTY"; break;
	case EAFNOSUPPORT: e = "EAFNOSUPPORT"; break;
	case ECONNREFUSED: e = "ECONNREFUSED"; break;
	case EAGAIN: e = "EAGAIN"; break;
	case EINVAL: e = "EINVAL"; break;
	default: e = "other"; break;
	}
	printf("result errno %s (%d)\n", e, -r);
	fflush(stdout);
	_exit(1);
}
