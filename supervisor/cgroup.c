/*
 * Per-clinic cgroups: detection, the workers directory, clinic cgroups and
 * their limits, kill and counters, on cgroup v2 and on v1.
 *
 * Everything below a manager is reached through directory fds (openat,
 * mkdirat, unlinkat), opened once, so that a path is resolved when the
 * manager is made and nowhere else.  The v1 code keeps one directory per
 * hierarchy; cpu and cpuacct mounted together count as one hierarchy.
 *
 * Deliberate quirks: on v2 the whole process is moved into the
 * "supervisor" leaf, and a process already in a cgroup called
 * "supervisor" (a restart, or a second manager in one test) takes that
 * leaf's parent as its own cgroup.  Killing loops over cgroup.procs
 * because v1 has no cgroup.kill; the loop is bounded so that a fork bomb
 * cannot hold the supervisor.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/cgroup.h"
#include "supervisor/cgroup_int.h"

#define CG_FILE_MAX (4U << 20)	/* mountinfo on a busy host */
#define CG_KILL_ROUNDS 200	/* x CGROUP_KILL_PAUSE_NS: about 1 s */
#define CG_RMDIR_ROUNDS 100
#define CG_LEAF "supervisor"
#define CG_V2_CONTROLLERS "+memory +cpu +pids"

static const struct {
	unsigned ctl;
	const char *name;
} cg_v1_controllers[] = {
	{ CGROUP_CTL_MEMORY, "memory" },
	{ CGROUP_CTL_CPU, "cpu" },
	{ CGROUP_CTL_PIDS, "pids" },
	{ CGROUP_CTL_CPUACCT, "cpuacct" },
};

bool
cgroup_name_valid(const char *s)
{
	size_t len;

	if (s == NULL || (len = strlen(s)) == 0 || len > CGROUP_NAME_MAX)
		return false;
	for (; *s != '\0'; s++) {
		if ((*s < 'a' || *s > 'z') && (*s < 'A' || *s > 'Z') &&
		    (*s < '0' || *s > '9') && *s != '_' && *s != '-')
			return false;
	}
	return true;
}

void
cgroup_limits_from_config(struct cgroup_limits *ret, uint64_t memory_max,
    uint64_t cpu_max_micro, unsigned pids_max)
{
	memset(ret, 0, sizeof(*ret));
	ret->memory_max = memory_max;
	ret->cpu_period_us = CGROUP_CPU_PERIOD_US;
	/* millionths of a CPU per 100000 us period */
	ret->cpu_quota_us = cpu_max_micro / (1000000 / CGROUP_CPU_PERIOD_US);
	if (cpu_max_micro != 0 && ret->cpu_quota_us < 1000)
		ret->cpu_quota_us = 1000;	/* the kernel's minimum */
	ret->pids_max = pids_max;
}

const char *
cgroup_mode_name(enum cgroup_mode mode)
{
	switch (mode) {
	case CGROUP_MODE_V1:
		return "cgroup v1";
	case CGROUP_MODE_V2:
		return "cgroup v2";
	case CGROUP_MODE_NONE:
		break;
	}
	return "none (rlimits only)";
}

/* -- small file helpers ------------------------------------------------ */

static int
cg_read(int dirfd, const char *name, struct buf *b)
{
	char chunk[4096];
	ssize_t n;
	int fd, r = 0;

	buf_reset(b);
	if ((fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC)) == -1)
		return -errno;
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		if ((r = buf_append(b, chunk, (size_t)n)) != 0)
			break;
	}
	close(fd);
	if (r == 0)
		r = buf_append(b, "", 0);	/* data is never NULL */
	return r;
}

int
cgroup_write(int dirfd, const char *name, const char *value)
{
	size_t len = strlen(value);
	ssize_t n;
	int fd, r = 0;

	if ((fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC)) == -1)
		return -errno;
	do
		n = write(fd, value, len);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		r = -errno;
	else if ((size_t)n != len)
		r = -EIO;
	close(fd);
	return r;
}

int
cgroup_write_u64(int dirfd, const char *name, uint64_t v, const char *none)
{
	char s[32];

	if (v == 0 && none != NULL)
		return cgroup_write(dirfd, name, none);
	snprintf(s, sizeof(s), "%llu", (unsigned long long)v);
	return cgroup_write(dirfd, name, s);
}

static bool
cg_exists(int dirfd, const char *name)
{
	return faccessat(dirfd, name, F_OK, 0) == 0;
}

/* The value of a single-number file, or of "key value" line key. */
uint64_t
cgroup_read_stat(int dirfd, const char *name, const char *key)
{
	struct buf b;
	const char *p;
	size_t klen;
	uint64_t v = CGROUP_STAT_UNKNOWN;

	buf_init(&b, 1U << 20);
	if (cg_read(dirfd, name, &b) != 0 || b.len == 0)
		goto out;
	p = b.data;
	if (key != NULL) {
		klen = strlen(key);
		for (;;) {
			if (strncmp(p, key, klen) == 0 && p[klen] == ' ')
				break;
			if ((p = strchr(p, '\n')) == NULL)
				goto out;
			p++;
		}
		p += klen + 1;
	}
	if (*p >= '0' && *p <= '9')
		v = strtoull(p, NULL, 10);
out:
	buf_release(&b);
	return v;
}

void
cgroup_pause(long ns)
{
	struct timespec ts = { 0, ns };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* -- killing and removing ---------------------------------------------- */

/*
 * SIGKILL whatever is listed in the cgroup.procs of the n directories,
 * until none is (bounded).  Never signals ourselves, init or garbage.
 */
int
cgroup_kill_dirs(const int *fd, size_t n, bool has_kill,
    unsigned *ret_signalled)
{
	struct buf b;
	unsigned signalled = 0;
	pid_t self = getpid();
	bool any;
	char *p, *end;
	long pid;
	size_t i;
	int round, r = -EBUSY;

	buf_init(&b, CG_FILE_MAX);
	if (has_kill && n > 0 && cgroup_write(fd[0], "cgroup.kill", "1") == 0)
		signalled++;
	for (round = 0; round < CG_KILL_ROUNDS; round++) {
		any = false;
		for (i = 0; i < n; i++) {
			if (fd[i] == -1 || cg_read(fd[i], "cgroup.procs", &b))
				continue;
			for (p = b.data; *p != '\0'; p = end) {
				pid = strtol(p, &end, 10);
				if (end == p)
					break;
				while (*end == '\n')
					end++;
				if (pid <= 1 || pid == self)
					continue;
				any = true;
				if (kill((pid_t)pid, SIGKILL) == 0)
					signalled++;
			}
		}
		if (!any) {
			r = 0;
			break;
		}
		cgroup_pause(CGROUP_KILL_PAUSE_NS);
	}
	buf_release(&b);
	if (ret_signalled != NULL)
		*ret_signalled = signalled;
	return r;
}

int
cgroup_rmdir(int parentfd, const char *name, unsigned rounds)
{
	unsigned i;

	for (i = 0;; i++) {
		if (unlinkat(parentfd, name, AT_REMOVEDIR) == 0 ||
		    errno == ENOENT)
			return 0;
		if (errno != EBUSY || i + 1 >= rounds)
			return -errno;
		cgroup_pause(CGROUP_KILL_PAUSE_NS);
	}
}

/* Kill and remove a clinic cgroup left by an earlier run. */
static void
cg_sweep_one(struct cgroup_manager *m, const char *name)
{
	int fd[CGROUP_HIER_MAX];
	unsigned signalled = 0;
	size_t i;
	int r;

	for (i = 0; i < m->nhier; i++)
		fd[i] = openat(m->hier[i].fd, name,
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	r = cgroup_kill_dirs(fd, m->nhier, m->has_kill, &signalled);
	for (i = 0; i < m->nhier; i++) {
		if (fd[i] != -1)
			close(fd[i]);
	}
	if (r != 0)
		log_warnx("cgroup '%s': stale processes survive SIGKILL", name);
	for (i = 0; i < m->nhier; i++) {
		r = cgroup_rmdir(m->hier[i].fd, name, CG_RMDIR_ROUNDS);
		if (r != 0)
			log_warnx("cgroup %s/%s: cannot remove stale cgroup: "
			    "%s", m->hier[i].dir, name, strerror(-r));
	}
	log_info("cgroup: removed stale cgroup of clinic '%s' "
	    "(%u kill signals)", name, signalled);
}

static void
cg_sweep(struct cgroup_manager *m)
{
	struct dirent *de;
	DIR *d;
	size_t i;
	int fd;

	for (i = 0; i < m->nhier; i++) {
		if ((fd = openat(m->hier[i].fd, ".",
		    O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
			continue;
		if ((d = fdopendir(fd)) == NULL) {
			close(fd);
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			if (de->d_type == DT_DIR &&
			    cgroup_name_valid(de->d_name))
				cg_sweep_one(m, de->d_name);
		}
		closedir(d);
	}
}

/* -- the manager ------------------------------------------------------- */

static int
cg_open_dir(const char *path, int *ret)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd == -1)
		return -errno;
	*ret = fd;
	return 0;
}

/* Make (or reuse) the workers directory below parent. */
static int
cg_make_workers(struct cgroup_manager *m, int parentfd, int *ret)
{
	int fd;

	if (mkdirat(parentfd, m->workers, 0755) == -1 && errno != EEXIST)
		return -errno;
	fd = openat(parentfd, m->workers, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return -errno;
	*ret = fd;
	return 0;
}

static bool
cg_words_have(const char *text, const char *word)
{
	size_t wlen = strlen(word);
	const char *p = text;

	while ((p = strstr(p, word)) != NULL) {
		if ((p == text || p[-1] == ' ' || p[-1] == '\n') &&
		    (p[wlen] == ' ' || p[wlen] == '\n' || p[wlen] == '\0'))
			return true;
		p += wlen;
	}
	return false;
}

/*
 * Move every process of ownfd into the leaf, ourselves first: v2 lets a
 * cgroup enable controllers for its children only while it holds no
 * process itself.
 */
static int
cg_v2_enter_leaf(int ownfd, int leaffd)
{
	struct buf b;
	char *p, *end, pid[24];
	int round, r;

	if ((r = cgroup_write(leaffd, "cgroup.procs", "0")) != 0)
		return r;
	buf_init(&b, CG_FILE_MAX);
	for (round = 0; round < 10; round++) {
		if ((r = cg_read(ownfd, "cgroup.procs", &b)) != 0 ||
		    b.len == 0)
			break;
		for (p = b.data; *p != '\0'; p = end) {
			long v = strtol(p, &end, 10);

			if (end == p)
				break;
			while (*end == '\n')
				end++;
			snprintf(pid, sizeof(pid), "%ld", v);
			r = cgroup_write(leaffd, "cgroup.procs", pid);
			if (r != 0 && r != -ESRCH)
				goto out;
		}
	}
	r = 0;
out:
	buf_release(&b);
	return r;
}

static int
cg_v2_setup(struct cgroup_manager *m, const char *selfcg,
    const char *mountinfo, struct buf *why)
{
	struct cgroup_hier *h = &m->hier[0];
	struct buf b;
	char *own = NULL, *dir = NULL, *slash;
	unsigned id;
	int ownfd = -1, leaffd = -1, r;

	buf_init(&b, CG_FILE_MAX);
	if ((r = cgroup_self_path(selfcg, NULL, &id, &own)) != 0) {
		buf_puts(why, "v2: no cgroup2 line in /proc/self/cgroup");
		goto out;
	}
	/* Already in our leaf: a restart, or a second manager. */
	slash = strrchr(own, '/');
	if (slash != NULL && strcmp(slash + 1, CG_LEAF) == 0)
		*(slash == own ? slash + 1 : slash) = '\0';
	if ((r = cgroup_mount_dir(mountinfo, NULL, own, &dir)) != 0) {
		buf_printf(why, "v2: cgroup %s is not under a cgroup2 mount",
		    own);
		goto out;
	}
	if ((r = cg_open_dir(dir, &ownfd)) != 0 ||
	    (r = cg_read(ownfd, "cgroup.controllers", &b)) != 0) {
		buf_printf(why, "v2: %s: %s", dir, strerror(-r));
		goto out;
	}
	if (!cg_words_have(b.data, "memory") || !cg_words_have(b.data, "cpu") ||
	    !cg_words_have(b.data, "pids")) {
		buf_printf(why, "v2: %s: controllers memory, cpu and pids "
		    "not all available (have: %.*s)", dir,
		    (int)strcspn(b.data, "\n"), b.data);
		r = -ENOTSUP;
		goto out;
	}
	if ((mkdirat(ownfd, CG_LEAF, 0755) == -1 && errno != EEXIST) ||
	    (leaffd = openat(ownfd, CG_LEAF,
	    O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		r = -errno;
		buf_printf(why, "v2: %s/%s: %s (not delegated to us? "
		    "systemd needs Delegate=yes)", dir, CG_LEAF, strerror(-r));
		goto out;
	}
	if ((r = cg_v2_enter_leaf(ownfd, leaffd)) != 0) {
		buf_printf(why, "v2: cannot move into %s/%s: %s", dir,
		    CG_LEAF, strerror(-r));
		goto out;
	}
	if ((r = cgroup_write(ownfd, "cgroup.subtree_control",
	    CG_V2_CONTROLLERS)) != 0) {
		buf_printf(why, "v2: %s: cannot enable controllers: %s", dir,
		    strerror(-r));
		goto out;
	}
	if ((r = cg_make_workers(m, ownfd, &h->fd)) != 0 ||
	    (r = cgroup_write(h->fd, "cgroup.subtree_control",
	    CG_V2_CONTROLLERS)) != 0) {
		buf_printf(why, "v2: %s/%s: %s", dir, m->workers,
		    strerror(-r));
		goto out;
	}
	h->ctl = CGROUP_CTL_REQUIRED | CGROUP_CTL_CPUACCT;
	h->cgpath = xasprintf("%s%s%s", own, own[strlen(own) - 1] == '/' ?
	    "" : "/", m->workers);
	h->dir = xasprintf("%s/%s", dir, m->workers);
	m->nhier = 1;
	m->has_swap = cg_exists(h->fd, "memory.swap.max");
	m->has_kill = cg_exists(h->fd, "cgroup.kill");
	r = 0;
out:
	if (r != 0 && h->fd != -1) {
		unlinkat(ownfd, m->workers, AT_REMOVEDIR);
		close(h->fd);
		h->fd = -1;
	}
	if (leaffd != -1)
		close(leaffd);
	if (ownfd != -1)
		close(ownfd);
	free(own);
	free(dir);
	buf_release(&b);
	return r;
}

/* Set up one v1 controller; a hierarchy it shares with another is reused. */
static int
cg_v1_add(struct cgroup_manager *m, unsigned ctl, const char *name,
    const char *selfcg, const char *mountinfo, struct buf *why)
{
	struct cgroup_hier *h;
	char *own = NULL, *dir = NULL;
	unsigned id;
	size_t i;
	int fd = -1, r;

	if ((r = cgroup_self_path(selfcg, name, &id, &own)) != 0 ||
	    (r = cgroup_mount_dir(mountinfo, name, own, &dir)) != 0) {
		buf_printf(why, "%s%s: not mounted", why->len ? "; " : "",
		    name);
		goto out;
	}
	for (i = 0; i < m->nhier; i++) {
		if (m->hier[i].id == id) {
			m->hier[i].ctl |= ctl;
			goto out;
		}
	}
	if ((r = cg_open_dir(dir, &fd)) != 0 ||
	    (r = cg_make_workers(m, fd, &m->hier[m->nhier].fd)) != 0) {
		buf_printf(why, "%s%s: %s/%s: %s", why->len ? "; " : "", name,
		    dir, m->workers, strerror(-r));
		goto out;
	}
	h = &m->hier[m->nhier++];
	h->ctl = ctl;
	h->id = id;
	h->cgpath = xasprintf("%s%s%s", own, own[strlen(own) - 1] == '/' ?
	    "" : "/", m->workers);
	h->dir = xasprintf("%s/%s", dir, m->workers);
out:
	if (fd != -1)
		close(fd);
	free(own);
	free(dir);
	return r;
}

static struct cgroup_hier *
cg_hier_of(const struct cgroup_manager *m, unsigned ctl, size_t *ret_i)
{
	size_t i;

	for (i = 0; i < m->nhier; i++) {
		if (m->hier[i].ctl & ctl) {
			if (ret_i != NULL)
				*ret_i = i;
			return (struct cgroup_hier *)&m->hier[i];
		}
	}
	return NULL;
}

static void
cg_release_hiers(struct cgroup_manager *m, bool remove)
{
	size_t i;
	int parent, r;
	char *slash;

	for (i = 0; i < m->nhier; i++) {
		struct cgroup_hier *h = &m->hier[i];

		if (remove && h->dir != NULL &&
		    (slash = strrchr(h->dir, '/')) != NULL) {
			*slash = '\0';
			parent = open(h->dir, O_RDONLY | O_DIRECTORY |
			    O_CLOEXEC);
			*slash = '/';
			if (parent != -1) {
				r = cgroup_rmdir(parent, m->workers, 1);
				if (r != 0)
					log_debug("cgroup %s: not removed: %s",
					    h->dir, strerror(-r));
				close(parent);
			}
		}
		if (h->fd != -1)
			close(h->fd);
		free(h->cgpath);
		free(h->dir);
		memset(h, 0, sizeof(*h));
		h->fd = -1;
	}
	m->nhier = 0;
}

static int
cg_v1_setup(struct cgroup_manager *m, const char *selfcg,
    const char *mountinfo, struct buf *why)
{
	struct cgroup_hier *h;
	unsigned mask = 0;
	size_t i;

	for (i = 0; i < sizeof(cg_v1_controllers) /
	    sizeof(cg_v1_controllers[0]); i++) {
		if (cg_v1_add(m, cg_v1_controllers[i].ctl,
		    cg_v1_controllers[i].name, selfcg, mountinfo, why) == 0)
			mask |= cg_v1_controllers[i].ctl;
	}
	if ((h = cg_hier_of(m, CGROUP_CTL_CPU, NULL)) != NULL &&
	    !cg_exists(h->fd, "cpu.cfs_quota_us")) {
		buf_printf(why, "%scpu: no CFS bandwidth control "
		    "(cpu.cfs_quota_us)", why->len ? "; " : "");
		mask &= ~CGROUP_CTL_CPU;
	}
	if ((mask & CGROUP_CTL_REQUIRED) != CGROUP_CTL_REQUIRED) {
		cg_release_hiers(m, true);
		return -ENOTSUP;
	}
	/* cpuacct is accounting only: its absence is reported, not fatal. */
	if (!(mask & CGROUP_CTL_CPUACCT))
		log_info("cgroup v1: %s; no CPU usage figures", why->data);
	h = cg_hier_of(m, CGROUP_CTL_MEMORY, NULL);
	m->has_swap = cg_exists(h->fd, "memory.memsw.limit_in_bytes");
	return 0;
}

int
cgroup_manager_new(const char *name, bool allow_none,
    struct cgroup_manager **ret, char *err, size_t errsz)
{
	struct cgroup_manager *m = NULL;
	struct buf selfcg, mountinfo, why2, why1;
	bool v2 = false;
	size_t i;
	int r;

	buf_init(&selfcg, CG_FILE_MAX);
	buf_init(&mountinfo, CG_FILE_MAX);
	buf_init(&why2, 1024);
	buf_init(&why1, 1024);
	buf_puts(&why2, "");
	buf_puts(&why1, "");
	if (errsz > 0)
		err[0] = '\0';
	if (!cgroup_name_valid(name)) {
		snprintf(err, errsz, "cgroup name '%s' is not valid",
		    log_q(name));
		r = -EINVAL;
		goto out;
	}
	m = xcalloc(1, sizeof(*m));
	for (i = 0; i < CGROUP_HIER_MAX; i++)
		m->hier[i].fd = -1;
	m->name = xstrdup(name);
	m->workers = xasprintf("%s-workers", name);
	if ((r = cg_read(AT_FDCWD, "/proc/self/cgroup", &selfcg)) != 0 ||
	    (r = cg_read(AT_FDCWD, "/proc/self/mountinfo", &mountinfo)) != 0) {
		snprintf(err, errsz, "cannot read /proc/self: %s",
		    strerror(-r));
		goto out;
	}
	buf_puts(&selfcg, "");	/* NUL-terminated even when empty */
	buf_puts(&mountinfo, "");
	v2 = cg_v2_setup(m, selfcg.data, mountinfo.data, &why2) == 0;
	if (v2)
		r = cgroup_choose_mode(true, 0, allow_none, &m->mode);
	else {
		buf_puts(&why1, "v1: ");
		i = why1.len;
		if (cg_v1_setup(m, selfcg.data, mountinfo.data, &why1) == 0)
			r = cgroup_choose_mode(false, CGROUP_CTL_REQUIRED,
			    allow_none, &m->mode);
		else
			r = cgroup_choose_mode(false, 0, allow_none,
			    &m->mode);
		if (why1.len == i)
			buf_reset(&why1);
	}
	if (r != 0) {
		snprintf(err, errsz, "no usable cgroup mechanism (%s; %s): "
		    "refusing to run workers with rlimits alone", why2.data,
		    why1.data);
		goto out;
	}
	if (m->mode == CGROUP_MODE_NONE)
		m->why = xasprintf("%s; %s", why2.data, why1.data);
	else if (m->mode == CGROUP_MODE_V1 && why2.len > 0)
		log_debug("cgroup: not using v2: %s", why2.data);
	cg_sweep(m);
	*ret = m;
	m = NULL;
	r = 0;
out:
	cgroup_manager_free(m);
	buf_release(&selfcg);
	buf_release(&mountinfo);
	buf_release(&why2);
	buf_release(&why1);
	return r;
}

void
cgroup_manager_free(struct cgroup_manager *m)
{
	if (m == NULL)
		return;
	cg_release_hiers(m, true);
	free(m->name);
	free(m->workers);
	free(m->why);
	free(m);
}

enum cgroup_mode
cgroup_manager_mode(const struct cgroup_manager *m)
{
	return m->mode;
}

void
cgroup_manager_describe(const struct cgroup_manager *m, char *out,
    size_t outsz)
{
	struct buf b;
	size_t i, j, n;
	const char *sep;

	buf_init(&b, 0);
	buf_puts(&b, cgroup_mode_name(m->mode));
	if (m->mode == CGROUP_MODE_NONE && m->why != NULL)
		buf_printf(&b, ": %s", m->why);
	if (m->nhier > 0)
		buf_puts(&b, " (");
	for (i = 0; i < m->nhier; i++) {
		if (m->mode == CGROUP_MODE_V1) {
			sep = "";
			n = sizeof(cg_v1_controllers) /
			    sizeof(cg_v1_controllers[0]);
			for (j = 0; j < n; j++) {
				if (!(m->hier[i].ctl &
				    cg_v1_controllers[j].ctl))
					continue;
				buf_printf(&b, "%s%s", sep,
				    cg_v1_controllers[j].name);
				sep = ",";
			}
			buf_puts(&b, ":");
		}
		buf_printf(&b, "%s%s", m->hier[i].cgpath,
		    i + 1 < m->nhier ? " " : "");
	}
	if (m->nhier > 0) {
		if (!m->has_swap)
			buf_puts(&b, "; swap not capped: no swap accounting");
		buf_puts(&b, ")");
	}
	snprintf(out, outsz, "%s", b.data != NULL ? b.data : "");
	buf_release(&b);
}
