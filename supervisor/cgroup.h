/*
 * Per-clinic resource caps with cgroups, the supervisor's half.
 *
 * A cgroup_manager finds where vetsyncd may make cgroups and owns one
 * directory of clinic cgroups, "<name>-workers":
 *
 *   v2  <own>/supervisor            vetsyncd itself (the "no internal
 *       <own>/<name>-workers/<clinic>   processes" rule wants it in a leaf)
 *   v1  <own in each of memory, cpu, pids[, cpuacct]>/<name>-workers/<clinic>
 *
 * where <own> is vetsyncd's cgroup from /proc/self/cgroup (under systemd
 * with Delegate=yes, its service cgroup).  v2 is used when its memory, cpu
 * and pids controllers are available to us; otherwise v1 when all three
 * v1 hierarchies are mounted and writable.  Nothing weaker is ever chosen
 * silently: without both, cgroup_manager_new() fails with -ENOTSUP unless
 * the caller accepts rlimits alone (allow_none), in which case the mode is
 * CGROUP_MODE_NONE and every clinic cgroup is an empty shell.
 *
 * Clinic cgroups left over by an earlier run (a crash) are swept at
 * start-up: their processes are killed and the cgroups removed.
 *
 * Errors are 0 or -errno; output parameters are written only on success.
 * Clinic and manager names are 1-64 characters of [A-Za-z0-9_-].
 */
#ifndef VS_SUPERVISOR_CGROUP_H
#define VS_SUPERVISOR_CGROUP_H

#include <sys/types.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CGROUP_NAME_MAX 64
#define CGROUP_CPU_PERIOD_US 100000
/* A value cgroup_clinic_stats() could not read on this kernel. */
#define CGROUP_STAT_UNKNOWN UINT64_MAX

enum cgroup_mode {
	CGROUP_MODE_NONE,	/* rlimits only, accepted by configuration */
	CGROUP_MODE_V1,
	CGROUP_MODE_V2,
};

struct cgroup_limits {
	uint64_t memory_max;	/* bytes; 0: no cap */
	uint64_t memory_high;	/* bytes; 0: 90% of memory_max */
	uint64_t cpu_quota_us;	/* per period; 0: no cap */
	uint64_t cpu_period_us;	/* 0: CGROUP_CPU_PERIOD_US */
	unsigned pids_max;	/* 0: no cap */
};

struct cgroup_stats {
	uint64_t oom_kills;	/* v2 memory.events, v1 oom_control */
	uint64_t memory_max_hits; /* v2 memory.events max; v1 failcnt, which
				   some kernels leave at 0: oom_kills is
				   the reliable sign */
	uint64_t memory_current; /* bytes */
	uint64_t memory_peak;	/* bytes; v2 memory.peak, v1 max_usage */
	uint64_t cpu_usage_usec; /* v2 cpu.stat; v1 cpuacct.usage */
	uint64_t pids_current;
};

struct cgroup_manager;
struct cgroup_clinic;

/*
 * Fill *ret from the configuration's worker caps: memory in bytes, CPUs in
 * millionths (0.5 = 500000 -> quota 50000 per 100000 us), tasks.
 */
void cgroup_limits_from_config(struct cgroup_limits *ret, uint64_t memory_max,
    uint64_t cpu_max_micro, unsigned pids_max);

/* True if s is a valid clinic or manager name. */
bool cgroup_name_valid(const char *s);

/*
 * Detect the cgroup mechanism, set up "<name>-workers" (on v2 after moving
 * this process into "<own>/supervisor" and enabling the controllers) and
 * sweep stale clinic cgroups.  On failure a message for the operator is
 * left in err.  Returns -ENOTSUP when no mechanism is usable and
 * !allow_none; -EINVAL for a bad name.  The caller frees *ret.
 */
int cgroup_manager_new(const char *name, bool allow_none,
    struct cgroup_manager **ret, char *err, size_t errsz);
/* Removes the workers cgroups if they are empty.  Accepts NULL. */
void cgroup_manager_free(struct cgroup_manager *);
enum cgroup_mode cgroup_manager_mode(const struct cgroup_manager *);
const char *cgroup_mode_name(enum cgroup_mode);
/*
 * One line for the start-up log and `vetsyncctl status`, e.g.
 * "cgroup v1 (memory:/a/vetsync-workers cpu:/vetsync-workers
 * pids:/vetsync-workers)".  Always NUL-terminated.
 */
void cgroup_manager_describe(const struct cgroup_manager *, char *buf,
    size_t bufsz);

/*
 * Create (or reuse) the clinic's cgroup, write the limits and pre-open its
 * cgroup.procs file(s) for cgroup_clinic_join().  The clinic borrows the
 * manager, which must outlive it.  In CGROUP_MODE_NONE this succeeds and
 * the clinic does nothing.  The caller frees *ret.
 */
int cgroup_clinic_new(struct cgroup_manager *, const char *clinic,
    const struct cgroup_limits *, struct cgroup_clinic **ret);
/* Rewrite the limits (a configuration reload). */
int cgroup_clinic_update(struct cgroup_clinic *, const struct cgroup_limits *);
const char *cgroup_clinic_name(const struct cgroup_clinic *);

/*
 * Move the calling process into the clinic's cgroup(s).  Async-signal-safe:
 * meant for the child between fork() and execve(); no allocation, no
 * logging.  Returns 0 or -errno.
 */
int cgroup_clinic_join(const struct cgroup_clinic *);

/*
 * Move process pid (a spare worker started elsewhere) into the clinic's
 * cgroup(s).  On v1 its memory charges move with it where the kernel
 * still supports memory.move_charge_at_immigrate; on v2 they stay with
 * the cgroup that made them.  Returns 0 or -errno.
 */
int cgroup_clinic_attach(const struct cgroup_clinic *, pid_t pid);

/* Read the counters; fields this kernel lacks are CGROUP_STAT_UNKNOWN. */
int cgroup_clinic_stats(const struct cgroup_clinic *, struct cgroup_stats *ret);

/*
 * SIGKILL every process in the clinic's cgroup (v2 cgroup.kill when the
 * kernel has it) and wait, bounded, until none is listed.  Returns 0 when
 * the cgroup is empty, -EBUSY when processes remain after the bound,
 * -ENOTSUP in CGROUP_MODE_NONE (the caller kills by pid).
 */
int cgroup_clinic_kill(struct cgroup_clinic *);

/*
 * Close the fds and remove the cgroup(s).  A cgroup that still holds
 * processes is left for the next start-up's sweep.  Accepts NULL.
 */
void cgroup_clinic_free(struct cgroup_clinic *);

#endif
