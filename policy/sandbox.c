/*
 * Child half: sandbox_enter(), the worker's one call into the policy.  The
 * order is fixed and each step must succeed or the caller exits (fail
 * closed):
 *
 *	1. PR_SET_NO_NEW_PRIVS	needed by Landlock and seccomp without
 *				privileges; no set-id gain through exec
 *	2. PR_SET_DUMPABLE 0	no ptrace attach by a same-uid process, no
 *				core, /proc/<pid> owned by root
 *	3. Landlock		filesystem and TCP rules (landlock.c)
 *	4. seccomp		the prebuilt filter, by the raw seccomp(2)
 *				syscall with TSYNC so every thread the
 *				libraries started is covered too
 *
 * The filter was compiled by the supervisor (libseccomp, seccomp.c); here
 * it is only checked for shape and installed, so the worker links no
 * seccomp library.
 */
#include <sys/prctl.h>
#include <sys/syscall.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include "policy/landlock.h"
#include "policy/policy.h"

#ifndef SECCOMP_SET_MODE_FILTER
#define SECCOMP_SET_MODE_FILTER		1
#endif
#ifndef SECCOMP_FILTER_FLAG_TSYNC
#define SECCOMP_FILTER_FLAG_TSYNC	(1UL << 0)
#endif

int
sandbox_landlock_abi(void)
{
	return landlock_abi();
}

static int
sandbox_seccomp(const void *bpf, size_t len, char *err, size_t errsz)
{
	struct sock_fprog prog;
	long r;

	if (bpf == NULL || len == 0 || len % sizeof(struct sock_filter) != 0 ||
	    len / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		snprintf(err, errsz, "seccomp: filter of %zu bytes is not a "
		    "BPF program", len);
		return -EINVAL;
	}
	prog.len = (unsigned short)(len / sizeof(struct sock_filter));
	prog.filter = (struct sock_filter *)(uintptr_t)bpf;
	r = syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER,
	    SECCOMP_FILTER_FLAG_TSYNC, &prog);
	if (r == -1) {
		snprintf(err, errsz, "seccomp: %s", strerror(errno));
		return -errno;
	}
	if (r != 0) {
		/* TSYNC names the thread that could not be synchronised. */
		snprintf(err, errsz, "seccomp: thread %ld could not be "
		    "synchronised", r);
		return -EBUSY;
	}
	return 0;
}

int
sandbox_enter(const struct sandbox_spec *spec, struct sandbox_report *ret,
    char *err, size_t errsz)
{
	struct sandbox_report rep;
	int r;

	memset(&rep, 0, sizeof(rep));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
	    prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
		snprintf(err, errsz, "no_new_privs: %s", strerror(errno));
		return -errno;
	}
	rep.no_new_privs = true;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1 ||
	    prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) {
		snprintf(err, errsz, "dumpable: %s", strerror(errno));
		return -errno;
	}
	rep.dumpable_off = true;
	if (spec->n_ro_paths > POLICY_MAX_RO_PATHS ||
	    spec->n_tcp_ports > POLICY_MAX_TCP_PORTS) {
		snprintf(err, errsz, "landlock: too many paths or ports");
		return -E2BIG;
	}
	if ((r = landlock_apply(spec, &rep, err, errsz)) != 0)
		return r;
	if ((r = sandbox_seccomp(spec->bpf, spec->bpf_len, err, errsz)) != 0)
		return r;
	rep.seccomp = true;
	if (ret != NULL)
		*ret = rep;
	return 0;
}
