/*
 * Unit tests for policy/: every malformed line is refused with its
 * file:line, a missing file is refused, placeholders resolve, the limits
 * apply, and the compiled filter decides as the shipped seccomp.policy
 * says.  Filter decisions are observed by installing the filter in a
 * forked child and making the call there: SIGSYS means killed.
 *
 * The expected decisions are read from seccomp.policy by a deliberately
 * simpler reader than the one under test (unconditioned "allow", "errno"
 * and "kill" lines), and the conditioned rules are checked one by one in
 * a table written by hand.  Valgrind cannot run a seccomp-confined child,
 * so those cases skip under it.
 */
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <cmocka.h>
#include <netinet/in.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>

#include "policy/policy.h"

#define GOOD_SECCOMP	"allow read\t# the channel\n"
#define GOOD_LANDLOCK	"read ${ca_bundle} # certs\nconnect ${idexx_ports} # idexx\n"
#define GOOD_LIMITS	"core 0 # no dumps\n"

static char tmpdir[] = "/tmp/vetsync-test-policy-XXXXXX";

static const char *
srcdir(void)
{
	const char *s = getenv("top_srcdir");

	return s != NULL ? s : ".";
}

static bool
under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");

	return p != NULL && strstr(p, "vgpreload") != NULL;
}

static void
write_file(const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if (text == NULL) {
		unlink(path);
		return;
	}
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

static void
write_policy(const char *sc, const char *ll, const char *lim)
{
	write_file("seccomp.policy", sc);
	write_file("seccomp-sanitizers.policy", "allow getppid # asan\n");
	write_file("landlock.policy", ll);
	write_file("limits.policy", lim);
}

static int
setup_dir(void **state)
{
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown_dir(void **state)
{
	static const char *const names[] = { "seccomp.policy",
	    "seccomp-sanitizers.policy", "landlock.policy", "limits.policy" };
	char path[512];

	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	return rmdir(tmpdir);
}

static void
test_malformed(void **state)
{
	static const struct {
		const char *file;	/* which file gets the text */
		const char *text;
		const char *want;	/* after "DIR/" */
	} cases[] = {
		{ "seccomp.policy", "allow read # ok\nallow nosuchcall # x\n",
		  "seccomp.policy:2: unknown syscall 'nosuchcall'" },
		{ "seccomp.policy", "permit read # x\n",
		  "seccomp.policy:1: unknown action 'permit' (allow, errno or kill)" },
		{ "seccomp.policy", "errno clone3 ENOTANERRNO # x\n",
		  "seccomp.policy:1: unknown errno 'ENOTANERRNO'" },
		{ "seccomp.policy", "errno clone3 # x\n",
		  "seccomp.policy:1: 'errno' needs a syscall and an errno" },
		{ "seccomp.policy", "allow\n",
		  "seccomp.policy:1: 'allow' needs a syscall" },
		{ "seccomp.policy", "# comment\n\nallow read\n",
		  "seccomp.policy:3: 'allow read' without a '# reason'" },
		{ "seccomp.policy", "allow socket arg7 == 1 # x\n",
		  "seccomp.policy:1: 'arg7': expected arg0 to arg5" },
		{ "seccomp.policy", "allow socket arg0 == # x\n",
		  "seccomp.policy:1: 'arg0': incomplete condition" },
		{ "seccomp.policy", "allow socket arg0 =~ 2 # x\n",
		  "seccomp.policy:1: unknown operator '=~'" },
		{ "seccomp.policy", "allow socket arg0 == AF_NOPE # x\n",
		  "seccomp.policy:1: bad value 'AF_NOPE'" },
		{ "seccomp.policy", "allow socket arg0 == 12x # x\n",
		  "seccomp.policy:1: bad value '12x'" },
		{ "seccomp.policy", "allow mmap arg2 & PROT_EXEC == PROT_READ # x\n",
		  "seccomp.policy:1: value 'PROT_READ' has bits outside mask 'PROT_EXEC'" },
		{ "seccomp.policy", "allow mmap arg2 & PROT_EXEC = 0 # x\n",
		  "seccomp.policy:1: 'arg2': expected 'argN & MASK == VALUE'" },
		{ "seccomp.policy", "allow socket arg0 == 2 arg0 == 10 # x\n",
		  "seccomp.policy:1: 'arg0' compared twice" },
		{ "seccomp.policy", "allow read # a\nallow read # b\n",
		  "seccomp.policy:2: 'read' already has a rule at " },
		{ "seccomp.policy", "allow ioctl arg1 == FIONBIO # a\nkill ioctl # b\n",
		  "seccomp.policy:2: 'ioctl' already has a rule at " },
		{ "seccomp.policy", "kill execve arg0 == 0 # x\n",
		  "seccomp.policy:1: 'kill' takes no conditions" },
		{ "seccomp.policy", "allow socketcall # x\n",
		  "seccomp.policy:1: syscall 'socketcall' does not exist on this architecture" },
		{ "seccomp.policy", "a b c d e f g h i j k l m n o p q # x\n",
		  "seccomp.policy:1: more than 16 words" },
#ifndef VS_SANITIZERS	/* the addendum has rules of its own */
		{ "seccomp.policy", "# only comments\n",
		  "seccomp policy has no rules" },
#endif
		{ "landlock.policy", "read etc/ssl # x\n",
		  "landlock.policy:1: 'etc/ssl': not an absolute path or ${name}" },
		{ "landlock.policy", "connect 0 # x\n",
		  "landlock.policy:1: '0': not a port or ${name}" },
		{ "landlock.policy", "connect 65536 # x\n",
		  "landlock.policy:1: '65536': not a port or ${name}" },
		{ "landlock.policy", "connect 443\n",
		  "landlock.policy:1: 'connect 443' without a '# reason'" },
		{ "landlock.policy", "write /tmp # x\n",
		  "landlock.policy:1: unknown rule 'write' (read, connect, min-abi, require)" },
		{ "landlock.policy", "read /a /b # x\n",
		  "landlock.policy:1: 'read' takes exactly one value" },
		{ "landlock.policy", "require maybe # x\n",
		  "landlock.policy:1: 'maybe': expected yes or no" },
		{ "landlock.policy", "min-abi 1 # x\nmin-abi 2 # y\n",
		  "landlock.policy:2: 'min-abi' given twice" },
		{ "limits.policy", "cores 0 # x\n",
		  "limits.policy:1: unknown resource 'cores'" },
		{ "limits.policy", "data 512X # x\n",
		  "limits.policy:1: bad value '512X'" },
		{ "limits.policy", "nofile 64M # x\n",
		  "limits.policy:1: bad value '64M'" },
		{ "limits.policy", "nofile 128 64 # x\n",
		  "limits.policy:1: 'nofile': soft limit above the hard limit" },
		{ "limits.policy", "core 0 # x\ncore 0 # y\n",
		  "limits.policy:2: 'core' given twice" },
		{ "limits.policy", "core 0\n",
		  "limits.policy:1: 'core' without a '# reason'" },
		{ "limits.policy", "core # x\n",
		  "limits.policy:1: 'core' needs a soft and an optional hard limit" },
	};
	struct policy *p;
	char err[512], want[1024];

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		write_policy(GOOD_SECCOMP, GOOD_LANDLOCK, GOOD_LIMITS);
		write_file(cases[i].file, cases[i].text);
		p = (struct policy *)&err;	/* must stay untouched */
		err[0] = '\0';
		assert_int_equal(policy_load(tmpdir, &p, err, sizeof(err)),
		    -EINVAL);
		assert_ptr_equal(p, (struct policy *)&err);
		if (strchr(cases[i].want, ':') != NULL)
			snprintf(want, sizeof(want), "%s/%s", tmpdir,
			    cases[i].want);
		else
			snprintf(want, sizeof(want), "%s", cases[i].want);
		if (strncmp(err, want, strlen(want)) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, err,
			    want);
	}
}

static void
test_line_limits(void **state)
{
	char text[2048], err[512], want[600];
	struct policy *p = NULL;

	memset(text, 'x', sizeof(text));
	memcpy(text, "allow read # ", 13);
	text[sizeof(text) - 2] = '\n';
	text[sizeof(text) - 1] = '\0';
	write_policy(text, GOOD_LANDLOCK, GOOD_LIMITS);
	assert_int_equal(policy_load(tmpdir, &p, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s/seccomp.policy:1: line longer than",
	    tmpdir);
	assert_true(strncmp(err, want, strlen(want)) == 0);

	/* A NUL byte is reported, not taken for the end of the line. */
	write_policy(GOOD_SECCOMP, GOOD_LANDLOCK, GOOD_LIMITS);
	{
		char path[512];
		FILE *f;

		snprintf(path, sizeof(path), "%s/limits.policy", tmpdir);
		assert_non_null(f = fopen(path, "w"));
		fwrite("core 0 # a\ncore\0 0 # b\n", 1, 23, f);
		fclose(f);
	}
	assert_int_equal(policy_load(tmpdir, &p, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s/limits.policy:2: NUL byte", tmpdir);
	assert_string_equal(err, want);
}

static void
test_missing(void **state)
{
	static const char *const names[] = { "seccomp.policy",
	    "landlock.policy", "limits.policy" };
	struct policy *p = NULL;
	char err[512], want[600];

	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		write_policy(GOOD_SECCOMP, GOOD_LANDLOCK, GOOD_LIMITS);
		write_file(names[i], NULL);
		assert_int_equal(policy_load(tmpdir, &p, err, sizeof(err)),
		    -ENOENT);
		assert_null(p);
		snprintf(want, sizeof(want), "%s/%s: %s", tmpdir, names[i],
		    strerror(ENOENT));
		assert_string_equal(err, want);
	}
	assert_int_equal(policy_load("/nonexistent-vetsync", &p, err,
	    sizeof(err)), -ENOENT);
}

/* Valgrind has no seccomp(2): libseccomp cannot even start under it. */
static struct policy *
load_shipped(void)
{
	struct policy *p = NULL;
	char dir[512], err[512];

	if (under_valgrind())
		skip();

	snprintf(dir, sizeof(dir), "%s/policy", srcdir());
	if (policy_load(dir, &p, err, sizeof(err)) != 0)
		fail_msg("shipped policy: %s", err);
	return p;
}

static void
test_shipped(void **state)
{
	struct policy *p = load_shipped();
	const char *const *files = policy_files(p);
	const void *bpf;
	char *text = NULL;
	size_t len, n = 0;
	FILE *f;

	while (files[n] != NULL)
		n++;
#ifdef VS_SANITIZERS
	assert_int_equal(n, 4);
#else
	assert_int_equal(n, 3);
#endif
	assert_non_null(strstr(files[0], "/seccomp.policy"));
	assert_int_equal(policy_seccomp_bpf(p, &bpf, &len), 0);
	assert_true(len > 0 && len % sizeof(struct sock_filter) == 0);
	assert_true(len <= POLICY_MAX_BPF_LEN);

	assert_non_null(f = open_memstream(&text, &len));
	assert_int_equal(policy_show(p, f), 0);
	fclose(f);
	assert_non_null(strstr(text, "allow read(0)"));
	assert_non_null(strstr(text, "errno clone3(435) ENOSYS"));
	assert_non_null(strstr(text, "kill execve(59)"));
	assert_non_null(strstr(text, "read ${ca_bundle}"));
	assert_non_null(strstr(text, "core 0 0"));
	assert_non_null(strstr(text, "if ($syscall == 0)"));	/* PFC */
	free(text);
	policy_free(p);

	assert_string_equal(policy_syscall_name(59), "execve");
	assert_string_equal(policy_syscall_name(SYS_socket), "socket");
	assert_null(policy_syscall_name(-1));
	assert_null(policy_syscall_name(100000));
}

static void
test_prepare(void **state)
{
	static const struct policy_subst subst[] = {
		{ "ca_bundle", "/etc/ssl/certs/ca-certificates.crt" },
		{ "idexx_ports", "443, 8443" },
	};
	struct policy_subst bad[2];
	struct sandbox_spec spec;
	struct policy *p;
	const void *bpf;
	char err[512];
	size_t len;

	if (under_valgrind())
		skip();
	write_policy(GOOD_SECCOMP, GOOD_LANDLOCK "connect 8080 # test\n"
	    "require no # test\nmin-abi 2 # test\n", GOOD_LIMITS);
	assert_int_equal(policy_load(tmpdir, &p, err, sizeof(err)), 0);
	assert_int_equal(policy_prepare(p, subst, 2, &spec, err, sizeof(err)),
	    0);
	assert_int_equal(spec.n_ro_paths, 1);
	assert_string_equal(spec.ro_paths[0], subst[0].value);
	assert_int_equal(spec.n_tcp_ports, 3);
	assert_int_equal(spec.tcp_ports[0], 443);
	assert_int_equal(spec.tcp_ports[1], 8443);
	assert_int_equal(spec.tcp_ports[2], 8080);
	assert_false(spec.require_landlock);
	assert_int_equal(spec.min_landlock_abi, 2);
	assert_int_equal(policy_seccomp_bpf(p, &bpf, &len), 0);
	assert_int_equal(spec.bpf_len, len);
	assert_ptr_not_equal(spec.bpf, bpf);	/* a copy */
	assert_memory_equal(spec.bpf, bpf, len);
	policy_spec_release(&spec);

	assert_int_equal(policy_prepare(p, subst, 1, &spec, err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(err, "landlock: no value for '${idexx_ports}'");
	bad[0] = subst[0];
	bad[1].name = "idexx_ports";
	bad[1].value = "443 http";
	assert_int_equal(policy_prepare(p, bad, 2, &spec, err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(err, "landlock: bad port 'http'");
	bad[0].name = "ca_bundle";
	bad[0].value = "certs.pem";
	assert_int_equal(policy_prepare(p, bad, 2, &spec, err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(err, "landlock: 'certs.pem' is not an absolute path");
	policy_free(p);
}

static void
test_limits(void **state)
{
	struct policy *p = load_shipped();
	const struct policy_limits *lim = policy_limits(p);
	struct rlimit rl;
	int status;
	pid_t pid;
	bool core = false, data = false;

	for (size_t i = 0; i < lim->n; i++) {
		if (lim->limit[i].resource == RLIMIT_CORE) {
			core = true;
			assert_int_equal(lim->limit[i].soft, 0);
			assert_int_equal(lim->limit[i].hard, 0);
		}
		if (lim->limit[i].resource == RLIMIT_DATA) {
			data = true;
			assert_int_equal(lim->limit[i].soft, 512ULL << 20);
		}
	}
	assert_true(core && data);
	if (under_valgrind())
		skip();
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		if (policy_limits_apply(lim) != 0)
			_exit(1);
		if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_max != 0)
			_exit(2);
		if (getrlimit(RLIMIT_DATA, &rl) != 0 ||
		    rl.rlim_cur != 512ULL << 20)
			_exit(3);
		if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur != 64)
			_exit(4);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	policy_free(p);
}

/* ---- filter decisions ------------------------------------------------ */

enum verdict {
	V_KILL,		/* SIGSYS */
	V_RUN,		/* the kernel ran it (any result) */
	V_ERRNO,	/* the filter answered with an errno */
};

static const void *bpf_prog;
static size_t bpf_len;

/* Install the filter in a child, make one call, report what happened. */
static enum verdict
decide(long nr, const long a[6], int *ret_errno)
{
	struct sock_fprog prog;
	int status;
	pid_t pid;
	long r;

	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		/* cmocka's handlers must not catch what the call raises. */
		signal(SIGILL, SIG_DFL);
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		signal(SIGFPE, SIG_DFL);
		prog.len = (unsigned short)(bpf_len / sizeof(struct sock_filter));
		prog.filter = (struct sock_filter *)(uintptr_t)bpf_prog;
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
		    syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0,
		    &prog) != 0)
			_exit(250);
		r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
		_exit(r == -1 ? (errno < 250 ? errno : 249) : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
		return V_KILL;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 250)
		fail_msg("could not install the filter");
	*ret_errno = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
	return V_RUN;
}

struct expect {
	enum verdict v;
	int err;
	bool conditioned;
	bool seen;
};

/* Read the unconditioned rules of one file, simply. */
static void
read_expectations(const char *path, struct expect *ex, size_t n)
{
	char line[1024], act[32], name[64], third[64];
	FILE *f;
	int nr, k;

	if ((f = fopen(path, "r")) == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		char *hash = strchr(line, '#');

		if (hash != NULL)
			*hash = '\0';
		k = sscanf(line, "%31s %63s %63s", act, name, third);
		if (k < 2)
			continue;
		nr = seccomp_syscall_resolve_name(name);
		assert_true(nr >= 0 && (size_t)nr < n);
		if (strcmp(act, "errno") == 0) {
			ex[nr].v = V_ERRNO;
			ex[nr].err = strcmp(third, "ENOSYS") == 0 ? ENOSYS :
			    -1;
			ex[nr].conditioned = sscanf(line,
			    "%*s %*s %*s %63s", third) == 1;
		} else if (strcmp(act, "allow") == 0) {
			ex[nr].v = V_RUN;
			ex[nr].conditioned |= k == 3;
		} else
			ex[nr].v = V_KILL;
		ex[nr].seen = true;
	}
	fclose(f);
}

/*
 * Every syscall number 0-511: the unconditioned "allow" lines run, the
 * "errno" lines answer their errno, everything else -- "kill" lines,
 * syscalls the file does not name, numbers no syscall has -- is killed.
 * Arguments are all -1, which every allowed call rejects harmlessly.
 */
static void
test_filter_sweep(void **state)
{
	static const long bad[6] = { -1, -1, -1, -1, -1, -1 };
	struct expect ex[512];
	struct policy *p;
	char path[512];
	enum verdict v;
	int e, checked = 0;

	if (under_valgrind())
		skip();
	p = load_shipped();
	assert_int_equal(policy_seccomp_bpf(p, &bpf_prog, &bpf_len), 0);
	memset(ex, 0, sizeof(ex));
	snprintf(path, sizeof(path), "%s/policy/seccomp.policy", srcdir());
	read_expectations(path, ex, 512);
#ifdef VS_SANITIZERS
	snprintf(path, sizeof(path), "%s/policy/seccomp-sanitizers.policy",
	    srcdir());
	read_expectations(path, ex, 512);
#endif
	for (long nr = 0; nr < 512; nr++) {
		if (ex[nr].conditioned)
			continue;	/* test_filter_conditions */
		if (nr == SYS_rt_sigreturn || nr == SYS_restart_syscall)
			continue;	/* no -1 argument makes them harmless */
		if (nr == 335 || nr == 336)
			continue;	/* uretprobe, uprobe: the kernel exempts
					 * them from seccomp (6.11+); they act
					 * only from a uprobe trampoline */
		v = decide(nr, bad, &e);
		if (!ex[nr].seen || ex[nr].v == V_KILL) {
			if (v != V_KILL)
				fail_msg("syscall %ld (%s) ran, want killed",
				    nr, seccomp_syscall_resolve_num_arch(
				    SCMP_ARCH_NATIVE, (int)nr));
		} else if (v == V_KILL)
			fail_msg("syscall %ld (%s) killed, want allowed", nr,
			    seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE,
			    (int)nr));
		else if (ex[nr].v == V_ERRNO && e != ex[nr].err)
			fail_msg("syscall %ld: errno %d, want %d", nr, e,
			    ex[nr].err);
		checked++;
	}
	assert_true(checked > 480);
	policy_free(p);
}

#define A(a0, a1, a2, a3)	{ (long)(a0), (long)(a1), (long)(a2), \
				  (long)(a3), -1, -1 }
#define TT	(CLONE_THREAD | CLONE_VM | CLONE_SIGHAND)
#ifndef CLONE_PIDFD
#define CLONE_PIDFD	0x00001000
#endif

/* Every conditioned rule, both sides of each condition. */
static void
test_filter_conditions(void **state)
{
	static const struct {
		const char *what;
		long nr;
		long a[6];
		enum verdict v;
		int err;	/* for V_ERRNO and V_RUN; -1: any */
	} cases[] = {
		{ "socket inet stream", SYS_socket,
		  A(AF_INET, SOCK_STREAM, 0, -1), V_RUN, 0 },
		{ "socket inet stream nonblock cloexec tcp", SYS_socket,
		  A(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
		  IPPROTO_TCP, -1), V_RUN, 0 },
		{ "socket inet6 stream", SYS_socket,
		  A(AF_INET6, SOCK_STREAM, 0, -1), V_RUN, 0 },
		{ "socket inet6 stream tcp", SYS_socket,
		  A(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP, -1),
		  V_RUN, 0 },
		{ "socket inet dgram", SYS_socket,
		  A(AF_INET, SOCK_DGRAM, 0, -1), V_KILL, 0 },
		{ "socket inet raw", SYS_socket,
		  A(AF_INET, SOCK_RAW, IPPROTO_TCP, -1), V_KILL, 0 },
		{ "socket inet stream udp", SYS_socket,
		  A(AF_INET, SOCK_STREAM, IPPROTO_UDP, -1), V_KILL, 0 },
		{ "socket inet stream sctp", SYS_socket,
		  A(AF_INET, SOCK_STREAM, 132, -1), V_KILL, 0 },
		{ "socket unix", SYS_socket,
		  A(AF_UNIX, SOCK_STREAM, 0, -1), V_KILL, 0 },
		{ "socket netlink", SYS_socket,
		  A(AF_NETLINK, SOCK_RAW, 0, -1), V_KILL, 0 },
		{ "socket packet", SYS_socket,
		  A(AF_PACKET, SOCK_RAW, 0, -1), V_KILL, 0 },
		{ "socket inet, high bits in domain", SYS_socket,
		  A(0x100000000L | AF_INET, SOCK_STREAM, 0, -1), V_KILL, 0 },
		{ "socketpair unix", SYS_socketpair,
		  A(AF_UNIX, SOCK_STREAM, 0, -1), V_RUN, EFAULT },
		{ "socketpair inet", SYS_socketpair,
		  A(AF_INET, SOCK_STREAM, 0, -1), V_KILL, 0 },
		{ "clone thread (kernel refuses PIDFD)", SYS_clone,
		  A(TT | CLONE_PIDFD, 0, 0, 0), V_RUN, -1 },
		{ "clone process", SYS_clone,
		  A(SIGCHLD, 0, 0, 0), V_KILL, 0 },
		{ "clone vfork", SYS_clone,
		  A(CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0, 0), V_KILL, 0 },
		{ "clone thread + newuser", SYS_clone,
		  A(TT | CLONE_NEWUSER, 0, 0, 0), V_KILL, 0 },
		{ "clone thread + newnet", SYS_clone,
		  A(TT | CLONE_NEWNET, 0, 0, 0), V_KILL, 0 },
		{ "clone thread + parent", SYS_clone,
		  A(TT | CLONE_PARENT, 0, 0, 0), V_KILL, 0 },
		{ "clone vm only", SYS_clone,
		  A(CLONE_VM | CLONE_SIGHAND, 0, 0, 0), V_KILL, 0 },
		{ "clone3", SYS_clone3, A(0, 0, 0, 0), V_ERRNO, ENOSYS },
		{ "mmap rw", SYS_mmap, A(0, 4096, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS), V_RUN, -1 },
		{ "mmap rx", SYS_mmap, A(0, 4096, PROT_READ | PROT_EXEC,
		  MAP_PRIVATE | MAP_ANONYMOUS), V_KILL, 0 },
		{ "mprotect r", SYS_mprotect, A(-1, 4096, PROT_READ, 0),
		  V_RUN, EINVAL },
		{ "mprotect x", SYS_mprotect, A(-1, 4096, PROT_EXEC, 0),
		  V_KILL, 0 },
		{ "fcntl F_GETFL", SYS_fcntl, A(-1, F_GETFL, 0, 0), V_RUN,
		  EBADF },
		{ "fcntl F_SETFL", SYS_fcntl, A(-1, F_SETFL, 0, 0), V_RUN,
		  EBADF },
		{ "fcntl F_GETFD", SYS_fcntl, A(-1, F_GETFD, 0, 0), V_RUN,
		  EBADF },
		{ "fcntl F_SETFD", SYS_fcntl, A(-1, F_SETFD, 0, 0), V_RUN,
		  EBADF },
		{ "fcntl F_DUPFD", SYS_fcntl, A(-1, F_DUPFD, 0, 0), V_KILL, 0 },
		{ "fcntl F_SETOWN", SYS_fcntl, A(-1, F_SETOWN, 0, 0), V_KILL,
		  0 },
		{ "ioctl FIONREAD", SYS_ioctl, A(-1, FIONREAD, 0, 0), V_RUN,
		  EBADF },
		{ "ioctl FIONBIO", SYS_ioctl, A(-1, FIONBIO, 0, 0), V_RUN,
		  EBADF },
		{ "ioctl TCGETS", SYS_ioctl, A(-1, TCGETS, 0, 0), V_RUN,
		  ENOTTY },
		{ "ioctl TIOCSTI", SYS_ioctl, A(-1, TIOCSTI, 0, 0), V_KILL, 0 },
		{ "ioctl FIOCLEX", SYS_ioctl, A(-1, FIOCLEX, 0, 0), V_KILL, 0 },
		{ "prctl PR_SET_NAME", SYS_prctl, A(PR_SET_NAME, -1, 0, 0),
		  V_RUN, EFAULT },
		{ "prctl PR_GET_NAME", SYS_prctl, A(PR_GET_NAME, -1, 0, 0),
		  V_RUN, EFAULT },
		{ "prctl PR_SET_DUMPABLE", SYS_prctl,
		  A(PR_SET_DUMPABLE, 1, 0, 0), V_KILL, 0 },
		{ "prctl PR_SET_NO_NEW_PRIVS", SYS_prctl,
		  A(PR_SET_NO_NEW_PRIVS, 1, 0, 0), V_KILL, 0 },
		{ "prctl PR_SET_SECCOMP", SYS_prctl,
		  A(PR_SET_SECCOMP, 2, 0, 0), V_KILL, 0 },
		{ "x32 getpid", 0x40000000L | SYS_getpid, A(0, 0, 0, 0),
		  V_KILL, 0 },
	};
	struct policy *p;
	enum verdict v;
	int e;

	if (under_valgrind())
		skip();
	p = load_shipped();
	assert_int_equal(policy_seccomp_bpf(p, &bpf_prog, &bpf_len), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		e = 0;
		v = decide(cases[i].nr, cases[i].a, &e);
		if (cases[i].v == V_KILL && v != V_KILL)
			fail_msg("%s: ran (errno %d), want killed",
			    cases[i].what, e);
		if (cases[i].v != V_KILL && v == V_KILL)
			fail_msg("%s: killed, want allowed", cases[i].what);
		if (cases[i].v != V_KILL && cases[i].err != -1 &&
		    e != cases[i].err)
			fail_msg("%s: errno %d, want %d", cases[i].what, e,
			    cases[i].err);
	}
	policy_free(p);
}

static void
test_sandbox_enter_rejects(void **state)
{
	static const char *const paths[] = { "/nonexistent-vetsync" };
	struct sandbox_spec spec;
	char err[256];
	int status;
	pid_t pid;

	if (under_valgrind())
		skip();
	/* A filter that is not a whole number of instructions. */
	memset(&spec, 0, sizeof(spec));
	spec.bpf = "1234567";
	spec.bpf_len = 7;
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0)
		_exit(sandbox_enter(&spec, NULL, err, sizeof(err)) == -EINVAL &&
		    strstr(err, "not a BPF program") != NULL ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* A path that cannot be opened fails closed. */
	if (sandbox_landlock_abi() == 0)
		return;
	spec.ro_paths = paths;
	spec.n_ro_paths = 1;
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0)
		_exit(sandbox_enter(&spec, NULL, err, sizeof(err)) == -ENOENT ?
		    0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_line_limits),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_shipped),
		cmocka_unit_test(test_prepare),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_filter_sweep),
		cmocka_unit_test(test_filter_conditions),
		cmocka_unit_test(test_sandbox_enter_rejects),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
