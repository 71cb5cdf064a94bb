/*
 * Child half, Landlock: raw syscalls and kernel headers only, so the worker
 * needs no library for it.
 *
 * Every access right the running kernel knows is handled, and only reading
 * the listed paths and connecting to the listed TCP ports is granted back:
 * no write, create, remove, execute or ioctl on any file, no read elsewhere,
 * no TCP bind.  The set is chosen by ABI version (best effort, as the kernel
 * documentation recommends): 1 files, 2 refer, 3 truncate, 4 TCP bind and
 * connect, 5 device ioctl, 6 scoping of abstract unix sockets and signals to
 * the sandbox.  A kernel without Landlock is refused when the spec requires
 * it, and so is one below spec->min_landlock_abi.
 *
 * Debian 12's <linux/landlock.h> predates ABI 3, so the newer constants and
 * the longer ruleset attribute are defined here.
 */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <linux/landlock.h>

#include "policy/landlock.h"

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset	444
#define __NR_landlock_add_rule		445
#define __NR_landlock_restrict_self	446
#endif
#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER	(1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE	(1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV	(1ULL << 15)
#endif
#define LL_RULE_NET_PORT		2
#define LL_ACCESS_NET_BIND_TCP		(1ULL << 0)
#define LL_ACCESS_NET_CONNECT_TCP	(1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET	(1ULL << 0)
#define LL_SCOPE_SIGNAL			(1ULL << 1)

/* ABI 1 file rights: everything up to and including MAKE_SYM. */
#define LL_FS_V1	((LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1)
#define LL_FS_READ	(LANDLOCK_ACCESS_FS_READ_FILE | \
			 LANDLOCK_ACCESS_FS_READ_DIR)

/* struct landlock_ruleset_attr as of ABI 6; its size tells the ABI used. */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

struct ll_path_beneath_attr {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

struct ll_net_port_attr {
	uint64_t allowed_access;
	uint64_t port;
};

int
landlock_abi(void)
{
	long abi;

	abi = syscall(__NR_landlock_create_ruleset, NULL, 0,
	    LANDLOCK_CREATE_RULESET_VERSION);
	return abi < 0 ? 0 : (int)abi;
}

static int
landlock_add_path(int ruleset, const char *path, uint64_t handled, char *err,
    size_t errsz)
{
	struct ll_path_beneath_attr pb;
	struct stat st;
	int fd, r = 0;

	if ((fd = open(path, O_PATH | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		r = -errno;
		snprintf(err, errsz, "landlock: '%s': %s", path,
		    strerror(errno));
		goto out;
	}
	/* Directory rights on a file are refused by the kernel. */
	pb.allowed_access = (S_ISDIR(st.st_mode) ? LL_FS_READ :
	    LANDLOCK_ACCESS_FS_READ_FILE) & handled;
	pb.parent_fd = fd;
	if (syscall(__NR_landlock_add_rule, ruleset,
	    LANDLOCK_RULE_PATH_BENEATH, &pb, 0) == -1) {
		r = -errno;
		snprintf(err, errsz, "landlock: adding '%s': %s", path,
		    strerror(errno));
	}
out:
	if (fd != -1)
		close(fd);
	return r;
}

int
landlock_apply(const struct sandbox_spec *spec, struct sandbox_report *rep,
    char *err, size_t errsz)
{
	struct ll_ruleset_attr attr;
	struct ll_net_port_attr np;
	size_t attr_size;
	int abi, ruleset = -1, r;

	abi = landlock_abi();
	rep->landlock_abi = abi;
	if (abi == 0) {
		if (!spec->require_landlock && spec->min_landlock_abi <= 0)
			return 0;
		snprintf(err, errsz, "landlock: not available in this kernel "
		    "and the policy requires it");
		return -EOPNOTSUPP;
	}
	if (abi < spec->min_landlock_abi) {
		snprintf(err, errsz, "landlock: kernel ABI %d is below the "
		    "policy's minimum %d", abi, spec->min_landlock_abi);
		return -EOPNOTSUPP;
	}

	memset(&attr, 0, sizeof(attr));
	attr.handled_access_fs = LL_FS_V1;
	attr_size = sizeof(attr.handled_access_fs);
	if (abi >= 2)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 4) {
		attr.handled_access_net = LL_ACCESS_NET_BIND_TCP |
		    LL_ACCESS_NET_CONNECT_TCP;
		attr_size = offsetof(struct ll_ruleset_attr, scoped);
	}
	if (abi >= 5)
		attr.handled_access_fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	if (abi >= 6) {
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
		attr_size = sizeof(attr);
	}
	ruleset = (int)syscall(__NR_landlock_create_ruleset, &attr, attr_size,
	    0);
	if (ruleset == -1) {
		r = -errno;
		snprintf(err, errsz, "landlock: creating the ruleset: %s",
		    strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < spec->n_ro_paths; i++) {
		if ((r = landlock_add_path(ruleset, spec->ro_paths[i],
		    attr.handled_access_fs, err, errsz)) != 0)
			goto out;
	}
	for (size_t i = 0; abi >= 4 && i < spec->n_tcp_ports; i++) {
		np.allowed_access = LL_ACCESS_NET_CONNECT_TCP;
		np.port = spec->tcp_ports[i];
		if (syscall(__NR_landlock_add_rule, ruleset, LL_RULE_NET_PORT,
		    &np, 0) == -1) {
			r = -errno;
			snprintf(err, errsz, "landlock: adding port %u: %s",
			    (unsigned int)spec->tcp_ports[i], strerror(errno));
			goto out;
		}
	}
	if (syscall(__NR_landlock_restrict_self, ruleset, 0) == -1) {
		r = -errno;
		snprintf(err, errsz, "landlock: restrict_self: %s",
		    strerror(errno));
		goto out;
	}
	rep->landlock_fs = true;
	rep->landlock_net = abi >= 4;
	rep->landlock_scoped = abi >= 6;
	r = 0;
out:
	if (ruleset != -1)
		close(ruleset);
	return r;
}
