/*
 * Tests for supervisor/cgroup.c against the real kernel: every test that
 * needs cgroups makes its own manager ("t<pid>-<test>") on this host, puts
 * real processes (tests/cgroup_hog) in real clinic cgroups and removes
 * everything it made.  The detection parsers are also checked on
 * hand-written /proc text for hosts this one is not (pure v2, co-mounted
 * v1 controllers, cgroup namespaces).  Without root or a writable
 * cgroupfs the kernel tests skip and say why.
 */
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "supervisor/cgroup.h"
#include "supervisor/cgroup_int.h"

#define MiB (1024ULL * 1024)

static char hog_path[PATH_MAX];
static const char *skip_reason;

/* -- helpers ----------------------------------------------------------- */

/* snprintf that fails the test rather than truncate */
static void pathf(char *buf, size_t sz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
pathf(char *buf, size_t sz, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sz, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sz)
		fail_msg("path too long");
}

static char *
slurp(const char *path)
{
	static char data[65536];
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	n = read(fd, data, sizeof(data) - 1);
	close(fd);
	if (n < 0)
		return NULL;
	data[n] = '\0';
	return data;
}

static unsigned long long
read_num(const char *dir, const char *file)
{
	char path[PATH_MAX];
	const char *s;

	pathf(path, sizeof(path), "%s/%s", dir, file);
	if ((s = slurp(path)) == NULL)
		fail_msg("cannot read %s", path);
	if (strncmp(s, "max", 3) == 0)
		return ULLONG_MAX;
	return strtoull(s, NULL, 10);
}

static void
manager_name(char *buf, size_t sz, const char *test)
{
	pathf(buf, sz, "t%d-%s", (int)getpid(), test);
}

/* The filesystem directory of our own cgroup in v1 hierarchy ctl. */
static void
own_dir(const char *ctl, char *buf, size_t sz)
{
	char selfcg[4096], *mi, *cg = NULL, *dir = NULL;
	unsigned id;

	pathf(selfcg, sizeof(selfcg), "%s", slurp("/proc/self/cgroup"));
	mi = strdup(slurp("/proc/self/mountinfo"));
	assert_int_equal(cgroup_self_path(selfcg, ctl, &id, &cg), 0);
	assert_int_equal(cgroup_mount_dir(mi, ctl, cg, &dir), 0);
	pathf(buf, sz, "%s", dir);
	free(cg);
	free(dir);
	free(mi);
}

static void
clinic_dir(const char *ctl, const char *mgr, const char *clinic, char *buf,
    size_t sz)
{
	char own[PATH_MAX];

	own_dir(ctl, own, sizeof(own));
	pathf(buf, sz, "%s/%s-workers/%s", own, mgr, clinic);
}

static bool
procs_has(const char *dir, pid_t pid)
{
	char path[PATH_MAX];
	const char *s, *p;
	long v;

	pathf(path, sizeof(path), "%s/cgroup.procs", dir);
	if ((s = slurp(path)) == NULL)
		return false;
	for (p = s; *p != '\0';) {
		char *end;

		v = strtol(p, &end, 10);
		if (end == p)
			break;
		if (v == pid)
			return true;
		p = end + (*end == '\n');
	}
	return false;
}

static bool
procs_empty(const char *dir)
{
	char path[PATH_MAX];
	const char *s;

	pathf(path, sizeof(path), "%s/cgroup.procs", dir);
	return (s = slurp(path)) != NULL && *s == '\0';
}

/* fork, join the clinic's cgroup, exec the hog; its stdout is *ret_out. */
static pid_t
spawn_hog(const struct cgroup_clinic *c, int *ret_out, const char *a1,
    const char *a2)
{
	int p[2];
	pid_t pid;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	if ((pid = fork()) == 0) {
		if (c != NULL && cgroup_clinic_join(c) != 0)
			_exit(120);
		dup2(p[1], STDOUT_FILENO);
		execl(hog_path, hog_path, a1, a2, (char *)NULL);
		_exit(127);
	}
	assert_true(pid > 0);
	close(p[1]);
	if (ret_out != NULL)
		*ret_out = p[0];
	else
		close(p[0]);
	return pid;
}

static char *
read_all(int fd)
{
	static char out[512];
	size_t len = 0;
	ssize_t n;

	while (len < sizeof(out) - 1 &&
	    (n = read(fd, out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fd);
	return out;
}

static int
wait_status(pid_t pid)
{
	int st;

	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static struct cgroup_manager *
manager(const char *test, char *name, size_t namesz)
{
	struct cgroup_manager *m = NULL;
	char err[512];
	int r;

	manager_name(name, namesz, test);
	r = cgroup_manager_new(name, false, &m, err, sizeof(err));
	if (r != 0)
		fail_msg("cgroup_manager_new: %s", err);
	return m;
}

static const struct cgroup_limits default_limits = {
	.memory_max = 512 * MiB,
	.cpu_quota_us = 50000,
	.cpu_period_us = 100000,
	.pids_max = 64,
};

/* -- pure parts -------------------------------------------------------- */

static void
test_names(void **state)
{
	static const struct {
		const char *name;
		bool ok;
	} cases[] = {
		{ "clinic-17", true },
		{ "A_b-9", true },
		{ "x", true },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true },	/* 64 */
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false },	/* 65 */
		{ "", false },
		{ ".", false },
		{ "..", false },
		{ "a/b", false },
		{ "a b", false },
		{ "cgroup.procs", false },
		{ "memory.max", false },
		{ "caf\xc3\xa9", false },
		{ "a\n", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cgroup_name_valid(cases[i].name) != cases[i].ok)
			fail_msg("'%s': want %d", cases[i].name, cases[i].ok);
	}
	assert_false(cgroup_name_valid(NULL));
}

static void
test_limits_from_config(void **state)
{
	static const struct {
		uint64_t micro;
		uint64_t quota;
	} cases[] = {
		{ 500000, 50000 },	/* the default: 0.5 CPU */
		{ 1000000, 100000 },
		{ 1500000, 150000 },
		{ 2250000, 225000 },
		{ 1, 1000 },		/* the kernel's minimum quota */
		{ 0, 0 },		/* no cap */
	};
	struct cgroup_limits l;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cgroup_limits_from_config(&l, 512 * MiB, cases[i].micro, 64);
		assert_int_equal(l.cpu_quota_us, cases[i].quota);
		assert_int_equal(l.cpu_period_us, 100000);
		assert_int_equal(l.memory_max, 512 * MiB);
		assert_int_equal(l.memory_high, 0);
		assert_int_equal(l.pids_max, 64);
	}
}

static const char hybrid_cgroup[] =
    "9:name=systemd:/\n"
    "8:pids:/\n"
    "4:memory:/process_api/d884\n"
    "2:cpuacct:/\n"
    "1:cpu:/\n"
    "0::/\n";
static const char hybrid_mountinfo[] =
    "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup "
    "rw,cpuacct\n"
    "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup "
    "rw,memory\n"
    "38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup "
    "rw,xattr,name=systemd\n"
    "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

/* systemd on a pure v2 host; optional fields before the separator. */
static const char v2_cgroup[] =
    "0::/system.slice/vetsync.service\n";
static const char v2_mountinfo[] =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime "
    "shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";

/* cpu and cpuacct co-mounted (Debian 10 style); a bind mount first. */
static const char comount_cgroup[] =
    "5:cpu,cpuacct:/system.slice/vetsync.service\n"
    "4:memory:/system.slice/vetsync.service\n"
    "3:pids:/system.slice/vetsync.service\n";
static const char comount_mountinfo[] =
    "40 30 0:30 /other /mnt/x rw - cgroup cgroup rw,cpu,cpuacct\n"
    "41 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup "
    "rw,cpu,cpuacct\n"
    "42 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    "43 30 0:32 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n";

/* A container: mount root is a subtree; a blank in the mount point. */
static const char ns_cgroup[] = "0::/ctr/app\n";
static const char ns_mountinfo[] =
    "50 40 0:40 /ctr /sys/fs/cgroup\\040x rw - cgroup2 cgroup2 rw\n";

static void
test_self_path(void **state)
{
	static const struct {
		const char *text, *ctl;
		int ret;
		unsigned id;
		const char *path;
	} cases[] = {
		{ hybrid_cgroup, NULL, 0, 0, "/" },
		{ hybrid_cgroup, "memory", 0, 4, "/process_api/d884" },
		{ hybrid_cgroup, "cpu", 0, 1, "/" },
		{ hybrid_cgroup, "cpuacct", 0, 2, "/" },
		{ hybrid_cgroup, "pids", 0, 8, "/" },
		{ hybrid_cgroup, "systemd", -ENOENT, 0, NULL },
		{ hybrid_cgroup, "name=systemd", 0, 9, "/" },
		{ hybrid_cgroup, "cpuset", -ENOENT, 0, NULL },
		{ v2_cgroup, NULL, 0, 0, "/system.slice/vetsync.service" },
		{ ns_cgroup, NULL, 0, 0, "/ctr/app" },
		{ v2_cgroup, "memory", -ENOENT, 0, NULL },
		{ comount_cgroup, "cpu", 0, 5,
		    "/system.slice/vetsync.service" },
		{ comount_cgroup, "cpuacct", 0, 5,
		    "/system.slice/vetsync.service" },
		{ comount_cgroup, NULL, -ENOENT, 0, NULL },
		{ "", NULL, -ENOENT, 0, NULL },
		{ "garbage\n::\n0:/x\n", NULL, -ENOENT, 0, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *path = NULL;
		unsigned id = 99;
		int r = cgroup_self_path(cases[i].text, cases[i].ctl, &id,
		    &path);

		if (r != cases[i].ret)
			fail_msg("case %zu: got %d, want %d", i, r,
			    cases[i].ret);
		if (r == 0) {
			assert_int_equal(id, cases[i].id);
			assert_string_equal(path, cases[i].path);
		} else {
			assert_int_equal(id, 99);
			assert_null(path);
		}
		free(path);
	}
}

static void
test_mount_dir(void **state)
{
	static const struct {
		const char *text, *ctl, *cgpath;
		int ret;
		const char *dir;
	} cases[] = {
		{ hybrid_mountinfo, NULL, "/", 0, "/sys/fs/cgroup/unified" },
		{ hybrid_mountinfo, "memory", "/process_api/d884", 0,
		    "/sys/fs/cgroup/memory/process_api/d884" },
		{ hybrid_mountinfo, "cpu", "/", 0, "/sys/fs/cgroup/cpu" },
		{ hybrid_mountinfo, "cpuacct", "/", 0,
		    "/sys/fs/cgroup/cpuacct" },
		{ hybrid_mountinfo, "pids", "/a", 0, "/sys/fs/cgroup/pids/a" },
		{ hybrid_mountinfo, "cpuset", "/", -ENOENT, NULL },
		{ v2_mountinfo, NULL, "/system.slice/vetsync.service", 0,
		    "/sys/fs/cgroup/system.slice/vetsync.service" },
		{ v2_mountinfo, "memory", "/", -ENOENT, NULL },
		/* the bind mount of /other does not contain our cgroup */
		{ comount_mountinfo, "cpuacct", "/system.slice/v.service", 0,
		    "/sys/fs/cgroup/cpu,cpuacct/system.slice/v.service" },
		{ comount_mountinfo, "cpu", "/other/y", 0, "/mnt/x/y" },
		{ comount_mountinfo, "cpu", "/otherwise", 0,
		    "/sys/fs/cgroup/cpu,cpuacct/otherwise" },
		{ ns_mountinfo, NULL, "/ctr/app", 0, "/sys/fs/cgroup x/app" },
		{ ns_mountinfo, NULL, "/ctr", 0, "/sys/fs/cgroup x" },
		{ ns_mountinfo, NULL, "/elsewhere", -ENOENT, NULL },
		{ "", NULL, "/", -ENOENT, NULL },
		{ "1 2 3\n", NULL, "/", -ENOENT, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *dir = NULL;
		int r = cgroup_mount_dir(cases[i].text, cases[i].ctl,
		    cases[i].cgpath, &dir);

		if (r != cases[i].ret)
			fail_msg("case %zu: got %d, want %d", i, r,
			    cases[i].ret);
		if (r == 0)
			assert_string_equal(dir, cases[i].dir);
		else
			assert_null(dir);
		free(dir);
	}
}

static void
test_choose_mode(void **state)
{
	static const struct {
		bool v2;
		unsigned v1;
		bool allow_none;
		int ret;
		enum cgroup_mode mode;
	} cases[] = {
		{ true, 0, false, 0, CGROUP_MODE_V2 },
		{ true, CGROUP_CTL_REQUIRED, false, 0, CGROUP_MODE_V2 },
		{ false, CGROUP_CTL_REQUIRED, false, 0, CGROUP_MODE_V1 },
		{ false, CGROUP_CTL_REQUIRED | CGROUP_CTL_CPUACCT, true, 0,
		    CGROUP_MODE_V1 },
		/* never silently weaker: one v1 controller short is none */
		{ false, CGROUP_CTL_MEMORY | CGROUP_CTL_CPU, false, -ENOTSUP,
		    CGROUP_MODE_NONE },
		{ false, CGROUP_CTL_MEMORY | CGROUP_CTL_CPU, true, 0,
		    CGROUP_MODE_NONE },
		{ false, CGROUP_CTL_CPU | CGROUP_CTL_PIDS | CGROUP_CTL_CPUACCT,
		    false, -ENOTSUP, CGROUP_MODE_NONE },
		{ false, 0, false, -ENOTSUP, CGROUP_MODE_NONE },
		{ false, 0, true, 0, CGROUP_MODE_NONE },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum cgroup_mode mode = 42;
		int r = cgroup_choose_mode(cases[i].v2, cases[i].v1,
		    cases[i].allow_none, &mode);

		if (r != cases[i].ret)
			fail_msg("case %zu: got %d, want %d", i, r,
			    cases[i].ret);
		assert_int_equal(mode, r == 0 ? (int)cases[i].mode : 42);
	}
}

/* -- the kernel -------------------------------------------------------- */

static void
test_detect(void **state)
{
	struct cgroup_manager *m;
	char name[96], desc[1024], own[PATH_MAX], dir[PATH_MAX], want[256];
	struct stat st;

	m = manager("detect", name, sizeof(name));
	cgroup_manager_describe(m, desc, sizeof(desc));
	print_message("# %s\n", desc);
	/* This host has no v2 controllers: v1 it must be. */
	assert_int_equal(cgroup_manager_mode(m), CGROUP_MODE_V1);
	assert_string_equal(cgroup_mode_name(CGROUP_MODE_V1), "cgroup v1");
	assert_non_null(strstr(desc, "cgroup v1 ("));
	static const char *const ctls[] = { "memory", "cpu", "pids" };
	for (size_t i = 0; i < 3; i++) {
		own_dir(ctls[i], own, sizeof(own));
		pathf(dir, sizeof(dir), "%s/%s-workers", own, name);
		assert_int_equal(stat(dir, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		pathf(want, sizeof(want), "%s:", ctls[i]);
		assert_non_null(strstr(desc, want));
		pathf(want, sizeof(want), "%s-workers", name);
		assert_non_null(strstr(desc, want));
	}
	cgroup_manager_free(m);
	/* the manager removes what it made */
	for (size_t i = 0; i < 3; i++) {
		own_dir(ctls[i], own, sizeof(own));
		pathf(dir, sizeof(dir), "%s/%s-workers", own, name);
		assert_int_equal(stat(dir, &st), -1);
	}
}

static void
test_clinic_limits(void **state)
{
	struct cgroup_manager *m;
	struct cgroup_clinic *c = NULL, *bad = (void *)0x1;
	struct cgroup_limits l = {
		.memory_max = 64 * MiB,
		.cpu_quota_us = 50000,
		.cpu_period_us = 100000,
		.pids_max = 16,
	};
	char name[96], mem[PATH_MAX], cpu[PATH_MAX], pids[PATH_MAX];
	struct stat st;

	m = manager("limits", name, sizeof(name));
	assert_int_equal(cgroup_clinic_new(m, "clinic-1", &l, &c), 0);
	assert_string_equal(cgroup_clinic_name(c), "clinic-1");
	clinic_dir("memory", name, "clinic-1", mem, sizeof(mem));
	clinic_dir("cpu", name, "clinic-1", cpu, sizeof(cpu));
	clinic_dir("pids", name, "clinic-1", pids, sizeof(pids));
	assert_int_equal(read_num(mem, "memory.limit_in_bytes"), 64 * MiB);
	assert_int_equal(read_num(mem, "memory.memsw.limit_in_bytes"),
	    64 * MiB);
	/* memory.high: 90%, which the kernel rounds down to a page */
	assert_int_equal(read_num(mem, "memory.soft_limit_in_bytes"),
	    (64 * MiB / 10 * 9) & ~(unsigned long long)(getpagesize() - 1));
	assert_int_equal(read_num(mem, "memory.swappiness"), 0);
	assert_int_equal(read_num(cpu, "cpu.cfs_period_us"), 100000);
	assert_int_equal(read_num(cpu, "cpu.cfs_quota_us"), 50000);
	assert_int_equal(read_num(pids, "pids.max"), 16);

	/* a reload: raise memory (memsw first), then lower it again */
	l.memory_max = 128 * MiB;
	l.memory_high = 100 * MiB;
	l.cpu_quota_us = 150000;
	l.pids_max = 0;
	assert_int_equal(cgroup_clinic_update(c, &l), 0);
	assert_int_equal(read_num(mem, "memory.limit_in_bytes"), 128 * MiB);
	assert_int_equal(read_num(mem, "memory.memsw.limit_in_bytes"),
	    128 * MiB);
	assert_int_equal(read_num(mem, "memory.soft_limit_in_bytes"),
	    100 * MiB);
	assert_int_equal(read_num(cpu, "cpu.cfs_quota_us"), 150000);
	assert_int_equal(read_num(pids, "pids.max"), ULLONG_MAX);
	l.memory_max = 32 * MiB;
	l.memory_high = 0;
	assert_int_equal(cgroup_clinic_update(c, &l), 0);
	assert_int_equal(read_num(mem, "memory.limit_in_bytes"), 32 * MiB);
	assert_int_equal(read_num(mem, "memory.memsw.limit_in_bytes"),
	    32 * MiB);
	/* memory.high above memory.max is refused, nothing written */
	l.memory_high = 64 * MiB;
	assert_int_equal(cgroup_clinic_update(c, &l), -EINVAL);
	assert_int_equal(read_num(mem, "memory.limit_in_bytes"), 32 * MiB);

	/* invalid clinic names never reach the filesystem */
	assert_int_equal(cgroup_clinic_new(m, "../escape", &l, &bad),
	    -EINVAL);
	assert_int_equal(cgroup_clinic_new(m, "", &l, &bad), -EINVAL);
	assert_int_equal(cgroup_clinic_new(m, "a.b", &l, &bad), -EINVAL);
	assert_ptr_equal(bad, (void *)0x1);

	cgroup_clinic_free(c);
	assert_int_equal(stat(mem, &st), -1);
	assert_int_equal(stat(cpu, &st), -1);
	assert_int_equal(stat(pids, &st), -1);
	cgroup_manager_free(m);
}

static void
test_join(void **state)
{
	static const char *const ctls[] = { "memory", "cpu", "pids",
	    "cpuacct" };
	struct cgroup_manager *m;
	struct cgroup_clinic *c;
	struct cgroup_stats st;
	char name[96], dir[PATH_MAX];
	pid_t pid;
	int status;

	m = manager("join", name, sizeof(name));
	assert_int_equal(cgroup_clinic_new(m, "c1", &default_limits, &c), 0);
	pid = spawn_hog(c, NULL, "sleep", NULL);
	/* the child joins one hierarchy after the other: wait for all */
	for (int tries = 0; tries < 400; tries++) {
		size_t in = 0;

		for (size_t i = 0; i < 4; i++) {
			clinic_dir(ctls[i], name, "c1", dir, sizeof(dir));
			in += procs_has(dir, pid);
		}
		if (in == 4)
			break;
		usleep(5000);
	}
	for (size_t i = 0; i < 4; i++) {
		clinic_dir(ctls[i], name, "c1", dir, sizeof(dir));
		if (!procs_has(dir, pid))
			fail_msg("pid %d not in %s", (int)pid, dir);
	}
	/* and not us */
	clinic_dir("memory", name, "c1", dir, sizeof(dir));
	assert_false(procs_has(dir, getpid()));
	assert_int_equal(cgroup_clinic_stats(c, &st), 0);
	assert_int_equal(st.pids_current, 1);
	assert_int_equal(st.oom_kills, 0);
	assert_true(st.memory_current > 0 && st.memory_current < 64 * MiB);
	assert_true(st.cpu_usage_usec != CGROUP_STAT_UNKNOWN);
	kill(pid, SIGKILL);
	status = wait_status(pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	cgroup_clinic_free(c);
	assert_false(access(dir, F_OK) == 0);
	cgroup_manager_free(m);
}

static void
test_oom(void **state)
{
	struct cgroup_manager *m;
	struct cgroup_clinic *c;
	struct cgroup_stats st;
	struct cgroup_limits l = default_limits;
	char name[96], bytes[32];
	const char *out;
	pid_t pid;
	int fd, status;

	m = manager("oom", name, sizeof(name));
	l.memory_max = 32 * MiB;
	assert_int_equal(cgroup_clinic_new(m, "bomb", &l, &c), 0);
	snprintf(bytes, sizeof(bytes), "%llu", 256 * MiB);
	pid = spawn_hog(c, &fd, "mem", bytes);
	out = read_all(fd);
	status = wait_status(pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail_msg("memory bomb not killed: status %#x, said '%s'",
		    status, out);
	assert_int_equal(cgroup_clinic_stats(c, &st), 0);
	print_message("# oom_kills %llu peak %llu max_hits %llu\n",
	    (unsigned long long)st.oom_kills,
	    (unsigned long long)st.memory_peak,
	    (unsigned long long)st.memory_max_hits);
	assert_true(st.oom_kills >= 1 && st.oom_kills != CGROUP_STAT_UNKNOWN);
	/* v1 failcnt stays 0 on this kernel although the cap was hit */
	assert_true(st.memory_max_hits != CGROUP_STAT_UNKNOWN);
	assert_true(st.memory_peak >= 28 * MiB);
	assert_true(st.memory_peak <= 32 * MiB);
	cgroup_clinic_free(c);
	cgroup_manager_free(m);
}

static void
test_fork_bomb(void **state)
{
	struct cgroup_manager *m;
	struct cgroup_clinic *c;
	struct cgroup_limits l = default_limits;
	char name[96];
	const char *out;
	unsigned long forked;
	int fd, err, status;
	pid_t pid;

	m = manager("forkbomb", name, sizeof(name));
	l.pids_max = 8;
	assert_int_equal(cgroup_clinic_new(m, "bomb", &l, &c), 0);
	pid = spawn_hog(c, &fd, "fork", "1000");
	out = read_all(fd);
	status = wait_status(pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (sscanf(out, "forked %lu errno %d", &forked, &err) != 2)
		fail_msg("hog said '%s'", out);
	print_message("# pids.max 8: forked %lu, then errno %d\n", forked,
	    err);
	/* itself plus seven */
	assert_int_equal(forked, 7);
	assert_int_equal(err, EAGAIN);
	cgroup_clinic_free(c);
	cgroup_manager_free(m);
}

static void
test_cpu_cap(void **state)
{
	struct cgroup_manager *m;
	struct cgroup_clinic *c;
	struct cgroup_stats st;
	unsigned long long cpu, wall;
	char name[96];
	const char *out;
	int fd, status;
	pid_t pid;

	m = manager("cpu", name, sizeof(name));
	assert_int_equal(cgroup_clinic_new(m, "burner", &default_limits, &c),
	    0);
	pid = spawn_hog(c, &fd, "cpu", "3");
	out = read_all(fd);
	status = wait_status(pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (sscanf(out, "cpu_usec %llu wall_usec %llu", &cpu, &wall) != 2)
		fail_msg("hog said '%s'", out);
	assert_int_equal(cgroup_clinic_stats(c, &st), 0);
	print_message("# cap 0.5 CPU: rusage %.3f s, cpuacct %.3f s over "
	    "%.3f s wall: share %.3f\n", cpu / 1e6,
	    st.cpu_usage_usec / 1e6, wall / 1e6, (double)cpu / wall);
	assert_true(wall >= 3000000);
	assert_true(cpu * 10 <= wall * 6);		/* <= 0.6 CPU */
	assert_true(cpu * 10 >= wall * 2);		/* it did run */
	assert_true(st.cpu_usage_usec * 10 <= wall * 6);
	assert_true(st.cpu_usage_usec * 10 >= wall * 2);
	cgroup_clinic_free(c);
	cgroup_manager_free(m);
}

static void
test_kill(void **state)
{
	struct cgroup_manager *m;
	struct cgroup_clinic *c;
	struct cgroup_stats st;
	char name[96], dir[PATH_MAX];
	pid_t pid[5];
	int status;

	m = manager("kill", name, sizeof(name));
	assert_int_equal(cgroup_clinic_new(m, "many", &default_limits, &c), 0);
	clinic_dir("pids", name, "many", dir, sizeof(dir));
	for (size_t i = 0; i < 4; i++)
		pid[i] = spawn_hog(c, NULL, "sleep", NULL);
	/* and one that forks grandchildren we never see */
	pid[4] = spawn_hog(c, NULL, "tree", "5");
	/* 4 + 1 + 5, all joined before we kill */
	for (int tries = 0; tries < 400; tries++) {
		assert_int_equal(cgroup_clinic_stats(c, &st), 0);
		if (st.pids_current >= 10)
			break;
		usleep(5000);
	}
	assert_int_equal(st.pids_current, 10);
	assert_false(procs_empty(dir));
	assert_int_equal(cgroup_clinic_kill(c), 0);
	assert_true(procs_empty(dir));
	for (size_t i = 0; i < 5; i++) {
		status = wait_status(pid[i]);
		assert_true(WIFSIGNALED(status) &&
		    WTERMSIG(status) == SIGKILL);
	}
	/* killing an empty cgroup is fine */
	assert_int_equal(cgroup_clinic_kill(c), 0);
	cgroup_clinic_free(c);
	assert_false(access(dir, F_OK) == 0);
	cgroup_manager_free(m);
}

static void
test_stale_sweep(void **state)
{
	struct cgroup_manager *m;
	struct cgroup_clinic *c;
	char name[96], mem[PATH_MAX], pids[PATH_MAX];
	pid_t pid;
	int status;

	/* a "previous run" that dies with a worker still running */
	m = manager("stale", name, sizeof(name));
	assert_int_equal(cgroup_clinic_new(m, "left", &default_limits, &c),
	    0);
	pid = spawn_hog(c, NULL, "sleep", NULL);
	clinic_dir("memory", name, "left", mem, sizeof(mem));
	clinic_dir("pids", name, "left", pids, sizeof(pids));
	for (int tries = 0; tries < 400 && !procs_has(pids, pid); tries++)
		usleep(5000);
	assert_true(procs_has(mem, pid));
	assert_true(procs_has(pids, pid));
	cgroup_clinic_free(c);		/* busy: left behind */
	cgroup_manager_free(m);
	assert_int_equal(access(mem, F_OK), 0);
	assert_int_equal(access(pids, F_OK), 0);

	/* the next start-up */
	m = manager("stale", name, sizeof(name));
	status = wait_status(pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_false(access(mem, F_OK) == 0);
	assert_false(access(pids, F_OK) == 0);
	cgroup_manager_free(m);
}

/*
 * No cgroups at all: in a private mount namespace with /sys/fs/cgroup
 * detached, a manager must refuse, or say "none" when that is accepted.
 * Runs in a child, which reports through its exit status.
 */
static int
no_cgroups_child(void)
{
	struct cgroup_manager *m = NULL;
	struct cgroup_clinic *c = NULL;
	struct cgroup_stats st;
	char err[512], desc[1024], name[96];

	manager_name(name, sizeof(name), "none");
	if (unshare(CLONE_NEWNS) != 0 ||
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0 ||
	    umount2("/sys/fs/cgroup", MNT_DETACH) != 0)
		return 2;
	if (cgroup_manager_new(name, false, &m, err, sizeof(err)) !=
	    -ENOTSUP || m != NULL)
		return 10;
	printf("# refused: %s\n", err);
	if (strstr(err, "no usable cgroup mechanism") == NULL ||
	    strstr(err, "memory: not mounted") == NULL)
		return 11;
	if (cgroup_manager_new(name, true, &m, err, sizeof(err)) != 0)
		return 12;
	if (cgroup_manager_mode(m) != CGROUP_MODE_NONE)
		return 13;
	cgroup_manager_describe(m, desc, sizeof(desc));
	printf("# accepted: %s\n", desc);
	if (strncmp(desc, "none (rlimits only)", 19) != 0)
		return 14;
	if (cgroup_clinic_new(m, "c", &default_limits, &c) != 0 ||
	    cgroup_clinic_join(c) != 0 ||
	    cgroup_clinic_kill(c) != -ENOTSUP ||
	    cgroup_clinic_stats(c, &st) != -ENOTSUP)
		return 15;
	cgroup_clinic_free(c);
	cgroup_manager_free(m);
	return 0;
}

static void
test_no_cgroups(void **state)
{
	pid_t pid;
	int status;

	fflush(stdout);
	if ((pid = fork()) == 0)
		_exit(no_cgroups_child());
	status = wait_status(pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
		fail_msg("cannot make a private mount namespace as root");
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
probe_host(void)
{
	struct cgroup_manager *m = NULL;
	const char *top;
	char err[512], name[96];

	top = getenv("top_builddir");
	snprintf(hog_path, sizeof(hog_path), "%s/tests/cgroup_hog",
	    top != NULL ? top : ".");
	if (geteuid() != 0)
		skip_reason = "not root: cgroups cannot be created";
	else if (access(hog_path, X_OK) != 0)
		skip_reason = "tests/cgroup_hog not built";
	else {
		manager_name(name, sizeof(name), "probe");
		if (cgroup_manager_new(name, false, &m, err,
		    sizeof(err)) != 0) {
			static char why[600];

			snprintf(why, sizeof(why), "no writable cgroups: %s",
			    err);
			skip_reason = why;
		} else if (cgroup_manager_mode(m) != CGROUP_MODE_V1)
			skip_reason = "the kernel tests read v1 files back; "
			    "this host offers cgroup v2";
		cgroup_manager_free(m);
	}
}

/*
 * A failed test leaves its cgroups behind (cmocka jumps out of it): a
 * manager of the same name sweeps them, as vetsyncd's next start-up would.
 */
static int
group_teardown(void **state)
{
	static const char *const tags[] = { "detect", "limits", "join", "oom",
	    "forkbomb", "cpu", "kill", "stale" };
	struct cgroup_manager *m;
	char err[512], name[96];

	if (skip_reason != NULL)
		return 0;
	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		m = NULL;
		manager_name(name, sizeof(name), tags[i]);
		if (cgroup_manager_new(name, false, &m, err, sizeof(err)) == 0)
			cgroup_manager_free(m);
	}
	return 0;
}

int
main(void)
{
	/*
	 * The kernel tests are left out, with the reason, where they cannot
	 * run: cmocka reports skip() as "not ok", which TAP drivers fail.
	 */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_limits_from_config),
		cmocka_unit_test(test_self_path),
		cmocka_unit_test(test_mount_dir),
		cmocka_unit_test(test_choose_mode),
		/* the kernel */
		cmocka_unit_test(test_detect),
		cmocka_unit_test(test_clinic_limits),
		cmocka_unit_test(test_join),
		cmocka_unit_test(test_oom),
		cmocka_unit_test(test_fork_bomb),
		cmocka_unit_test(test_cpu_cap),
		cmocka_unit_test(test_kill),
		cmocka_unit_test(test_stale_sweep),
		cmocka_unit_test(test_no_cgroups),
	};
	size_t n = sizeof(tests) / sizeof(tests[0]);

	probe_host();
	if (skip_reason != NULL) {
		printf("# SKIP the %zu kernel tests: %s\n", n - 5, skip_reason);
		n = 5;
	}
	return _cmocka_run_group_tests("cgroup", tests, n, NULL,
	    group_teardown);
}
