/*
 * What cgroup.c (the manager), cgroup_clinic.c (clinic cgroups) and
 * cgroup_detect.c share, and the unit tests reach.  Not for other modules.
 *
 * The detection functions are pure: they take the text of
 * /proc/self/cgroup and /proc/self/mountinfo so that hosts this machine is
 * not (pure v2, co-mounted v1, cgroup namespaces) can be checked from
 * hand-written input.
 */
#ifndef VS_SUPERVISOR_CGROUP_INT_H
#define VS_SUPERVISOR_CGROUP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "supervisor/cgroup.h"

#define CGROUP_CTL_MEMORY	0x1
#define CGROUP_CTL_CPU		0x2
#define CGROUP_CTL_PIDS		0x4
#define CGROUP_CTL_CPUACCT	0x8
#define CGROUP_CTL_REQUIRED	(CGROUP_CTL_MEMORY | CGROUP_CTL_CPU | \
    CGROUP_CTL_PIDS)

#define CGROUP_HIER_MAX 4	/* v1: memory, cpu, pids, cpuacct */
#define CGROUP_KILL_PAUSE_NS 5000000L

/* One hierarchy's workers directory (v2: the only one). */
struct cgroup_hier {
	unsigned ctl;		/* CGROUP_CTL_* */
	unsigned id;		/* v1 hierarchy id */
	char *cgpath;		/* the workers cgroup, as /proc shows it */
	char *dir;		/* of the workers cgroup, in the filesystem */
	int fd;			/* the workers directory */
};

struct cgroup_manager {
	enum cgroup_mode mode;
	char *name;
	char *workers;		/* "<name>-workers" */
	char *why;		/* NONE: why no cgroups */
	struct cgroup_hier hier[CGROUP_HIER_MAX];
	size_t nhier;
	bool has_swap;		/* memory.swap.max / memory.memsw.* */
	bool has_kill;		/* cgroup.kill */
};

struct cgroup_clinic {
	struct cgroup_manager *mgr;
	char *name;
	int fd[CGROUP_HIER_MAX];	/* its directory per hierarchy */
	int procs[CGROUP_HIER_MAX];	/* its cgroup.procs, for join */
	size_t n;
};

/* Small files of cgroupfs, relative to a directory fd; 0 or -errno. */
int cgroup_write(int dirfd, const char *name, const char *value);
/* Writes none instead of "0" when v is 0 and none is not NULL. */
int cgroup_write_u64(int dirfd, const char *name, uint64_t v,
    const char *none);
/* A number file, or the value of "key N" line key; CGROUP_STAT_UNKNOWN. */
uint64_t cgroup_read_stat(int dirfd, const char *name, const char *key);
void cgroup_pause(long ns);

/*
 * SIGKILL what the cgroup.procs of the n directories (-1: skipped) list,
 * until they list nothing; bounded, then -EBUSY.  has_kill: try v2
 * cgroup.kill in fd[0] first.  Never signals the caller or init.
 */
int cgroup_kill_dirs(const int *fd, size_t n, bool has_kill,
    unsigned *ret_signalled);
/* rmdir name below parentfd, retrying EBUSY rounds times; ENOENT is 0. */
int cgroup_rmdir(int parentfd, const char *name, unsigned rounds);

/*
 * Our cgroup path in the hierarchy that has controller (NULL: the v2 line
 * "0::").  *ret_id is the hierarchy id (0 for v2).  -ENOENT if none.  The
 * caller frees *ret_path.
 */
int cgroup_self_path(const char *proc_cgroup, const char *controller,
    unsigned *ret_id, char **ret_path);

/*
 * The filesystem directory of cgroup path cgpath: the first mount of
 * cgroup2 (controller NULL) or of a v1 hierarchy with controller among its
 * options whose mount root contains cgpath.  -ENOENT if none.  The caller
 * frees *ret_dir.
 */
int cgroup_mount_dir(const char *mountinfo, const char *controller,
    const char *cgpath, char **ret_dir);

/*
 * The mode to use: v2 when usable, else v1 when all required controllers
 * were found (v1_mask), else NONE if allowed, else -ENOTSUP.
 */
int cgroup_choose_mode(bool v2_usable, unsigned v1_mask, bool allow_none,
    enum cgroup_mode *ret);

#endif
