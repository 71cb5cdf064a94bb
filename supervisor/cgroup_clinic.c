/*
 * One clinic's cgroup: made below the manager's workers directory in every
 * hierarchy, its limits written (v2 memory.max/high/swap.max, cpu.max,
 * pids.max; v1 their older names), joined by the forked child, read for
 * counters, killed and removed.
 *
 * cgroup.procs is opened when the clinic is made so that joining is one
 * write(2) per hierarchy in the child: async-signal-safe, and on v2 checked
 * against the opener's credentials, the supervisor's.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/cgroup.h"
#include "supervisor/cgroup_int.h"

static int
cg_v2_limits(int fd, const struct cgroup_limits *l, bool has_swap)
{
	char s[64];
	uint64_t high = l->memory_high;
	uint64_t period = l->cpu_period_us ? l->cpu_period_us :
	    CGROUP_CPU_PERIOD_US;
	int r;

	if (high == 0)
		high = l->memory_max / 10 * 9;
	if ((r = cgroup_write_u64(fd, "memory.max", l->memory_max,
	    "max")) != 0 ||
	    (r = cgroup_write_u64(fd, "memory.high", high, "max")) != 0)
		return r;
	if (has_swap && (r = cgroup_write(fd, "memory.swap.max", "0")) != 0)
		return r;
	if (l->cpu_quota_us == 0)
		snprintf(s, sizeof(s), "max %llu", (unsigned long long)period);
	else
		snprintf(s, sizeof(s), "%llu %llu",
		    (unsigned long long)l->cpu_quota_us,
		    (unsigned long long)period);
	if ((r = cgroup_write(fd, "cpu.max", s)) != 0)
		return r;
	return cgroup_write_u64(fd, "pids.max", l->pids_max, "max");
}

static int
cg_v1_memory(int fd, const struct cgroup_limits *l, bool has_swap)
{
	uint64_t high = l->memory_high;
	int r;

	if (high == 0)
		high = l->memory_max / 10 * 9;
	/* memsw may never be below the memory limit: order the writes. */
	r = cgroup_write_u64(fd, "memory.limit_in_bytes", l->memory_max, "-1");
	if (r == -EINVAL && has_swap) {
		if ((r = cgroup_write_u64(fd, "memory.memsw.limit_in_bytes",
		    l->memory_max, "-1")) != 0)
			return r;
		r = cgroup_write_u64(fd, "memory.limit_in_bytes", l->memory_max,
		    "-1");
	}
	if (r != 0)
		return r;
	if (has_swap && (r = cgroup_write_u64(fd, "memory.memsw.limit_in_bytes",
	    l->memory_max, "-1")) != 0)
		return r;
	if ((r = cgroup_write_u64(fd, "memory.soft_limit_in_bytes", high,
	    "-1")) != 0)
		return r;
	/* Refused for cgroups with children or with use_hierarchy parents
	 * on old kernels; the memsw cap is what stops swapping. */
	if ((r = cgroup_write(fd, "memory.swappiness", "0")) != 0)
		log_debug("cgroup: memory.swappiness: %s", strerror(-r));
	/* A spare worker moved in brings its charges along (both kinds). */
	if ((r = cgroup_write(fd, "memory.move_charge_at_immigrate", "3")) != 0)
		log_debug("cgroup: memory.move_charge_at_immigrate: %s",
		    strerror(-r));
	return 0;
}

/* The clinic's directory in the hierarchy of controller ctl, or -1. */
static int
cg_clinic_fd(const struct cgroup_clinic *c, unsigned ctl)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		if (c->mgr->hier[i].ctl & ctl)
			return c->fd[i];
	}
	return -1;
}

static int
cg_v1_limits(const struct cgroup_clinic *c, const struct cgroup_limits *l)
{
	uint64_t period = l->cpu_period_us ? l->cpu_period_us :
	    CGROUP_CPU_PERIOD_US;
	int fd, r;

	fd = cg_clinic_fd(c, CGROUP_CTL_MEMORY);
	if ((r = cg_v1_memory(fd, l, c->mgr->has_swap)) != 0)
		return r;
	fd = cg_clinic_fd(c, CGROUP_CTL_CPU);
	if ((r = cgroup_write_u64(fd, "cpu.cfs_period_us", period,
	    NULL)) != 0 ||
	    (r = cgroup_write_u64(fd, "cpu.cfs_quota_us", l->cpu_quota_us,
	    "-1")) != 0)
		return r;
	fd = cg_clinic_fd(c, CGROUP_CTL_PIDS);
	return cgroup_write_u64(fd, "pids.max", l->pids_max, "max");
}

int
cgroup_clinic_update(struct cgroup_clinic *c, const struct cgroup_limits *l)
{
	int r;

	if (l->memory_max != 0 && l->memory_high > l->memory_max)
		return -EINVAL;
	switch (c->mgr->mode) {
	case CGROUP_MODE_V2:
		r = cg_v2_limits(c->fd[0], l, c->mgr->has_swap);
		break;
	case CGROUP_MODE_V1:
		r = cg_v1_limits(c, l);
		break;
	default:
		r = 0;
		break;
	}
	return r;
}

int
cgroup_clinic_new(struct cgroup_manager *m, const char *clinic,
    const struct cgroup_limits *l, struct cgroup_clinic **ret)
{
	struct cgroup_clinic *c = NULL;
	size_t i;
	int r;

	if (!cgroup_name_valid(clinic))
		return -EINVAL;
	c = xcalloc(1, sizeof(*c));
	c->mgr = m;
	c->name = xstrdup(clinic);
	for (i = 0; i < CGROUP_HIER_MAX; i++)
		c->fd[i] = c->procs[i] = -1;
	for (i = 0; i < m->nhier; i++, c->n++) {
		if (mkdirat(m->hier[i].fd, clinic, 0755) == -1 &&
		    errno != EEXIST) {
			r = -errno;
			goto out;
		}
		if ((c->fd[i] = openat(m->hier[i].fd, clinic,
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
		    (c->procs[i] = openat(c->fd[i], "cgroup.procs",
		    O_WRONLY | O_CLOEXEC)) == -1) {
			r = -errno;
			c->n++;		/* so that free sees this one */
			goto out;
		}
	}
	if ((r = cgroup_clinic_update(c, l)) != 0)
		goto out;
	*ret = c;
	c = NULL;
out:
	if (c != NULL)
		log_debug("cgroup '%s': %s", clinic, strerror(-r));
	cgroup_clinic_free(c);
	return r;
}

const char *
cgroup_clinic_name(const struct cgroup_clinic *c)
{
	return c->name;
}

int
cgroup_clinic_join(const struct cgroup_clinic *c)
{
	size_t i;

	for (i = 0; i < c->n; i++) {
		ssize_t n;

		do
			n = write(c->procs[i], "0", 1);
		while (n == -1 && errno == EINTR);
		if (n != 1)
			return n == -1 ? -errno : -EIO;
	}
	return 0;
}

int
cgroup_clinic_attach(const struct cgroup_clinic *c, pid_t pid)
{
	char buf[24];
	int len = snprintf(buf, sizeof(buf), "%ld", (long)pid);
	size_t i;

	for (i = 0; i < c->n; i++) {
		ssize_t n;

		do
			n = write(c->procs[i], buf, (size_t)len);
		while (n == -1 && errno == EINTR);
		if (n != len)
			return n == -1 ? -errno : -EIO;
	}
	return 0;
}

int
cgroup_clinic_stats(const struct cgroup_clinic *c, struct cgroup_stats *ret)
{
	const struct cgroup_manager *m = c->mgr;
	struct cgroup_stats st;
	int fd;

	memset(&st, 0xff, sizeof(st));	/* all CGROUP_STAT_UNKNOWN */
	if (m->mode == CGROUP_MODE_V2) {
		fd = c->fd[0];
		st.oom_kills = cgroup_read_stat(fd, "memory.events",
		    "oom_kill");
		st.memory_max_hits = cgroup_read_stat(fd, "memory.events",
		    "max");
		st.memory_current = cgroup_read_stat(fd, "memory.current",
		    NULL);
		st.memory_peak = cgroup_read_stat(fd, "memory.peak", NULL);
		st.cpu_usage_usec = cgroup_read_stat(fd, "cpu.stat",
		    "usage_usec");
		st.pids_current = cgroup_read_stat(fd, "pids.current", NULL);
	} else if (m->mode == CGROUP_MODE_V1) {
		fd = cg_clinic_fd(c, CGROUP_CTL_MEMORY);
		st.oom_kills = cgroup_read_stat(fd, "memory.oom_control",
		    "oom_kill");
		st.memory_max_hits = cgroup_read_stat(fd, "memory.failcnt",
		    NULL);
		st.memory_current = cgroup_read_stat(fd,
		    "memory.usage_in_bytes", NULL);
		st.memory_peak = cgroup_read_stat(fd,
		    "memory.max_usage_in_bytes", NULL);
		if ((fd = cg_clinic_fd(c, CGROUP_CTL_CPUACCT)) != -1) {
			st.cpu_usage_usec = cgroup_read_stat(fd,
			    "cpuacct.usage", NULL);
			if (st.cpu_usage_usec != CGROUP_STAT_UNKNOWN)
				st.cpu_usage_usec /= 1000;	/* ns */
		}
		fd = cg_clinic_fd(c, CGROUP_CTL_PIDS);
		st.pids_current = cgroup_read_stat(fd, "pids.current", NULL);
	} else
		return -ENOTSUP;
	*ret = st;
	return 0;
}

int
cgroup_clinic_kill(struct cgroup_clinic *c)
{
	if (c->mgr->mode == CGROUP_MODE_NONE)
		return -ENOTSUP;
	return cgroup_kill_dirs(c->fd, c->n, c->mgr->has_kill, NULL);
}

void
cgroup_clinic_free(struct cgroup_clinic *c)
{
	size_t i;
	int r;

	if (c == NULL)
		return;
	for (i = 0; i < c->n; i++) {
		if (c->procs[i] != -1)
			close(c->procs[i]);
		if (c->fd[i] != -1)
			close(c->fd[i]);
		r = cgroup_rmdir(c->mgr->hier[i].fd, c->name, 1);
		if (r != 0)
			log_debug("cgroup %s/%s: left for the next start-up: "
			    "%s", c->mgr->hier[i].dir, c->name, strerror(-r));
	}
	free(c->name);
	free(c);
}
