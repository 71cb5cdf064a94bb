/*
 * The isolation policy: a two-call face over the policy files in policy/.
 *
 * Parent half (libpolicy_parent.a, links libseccomp; supervisor and
 * vetsyncctl only): policy_load() reads seccomp.policy, landlock.policy and
 * limits.policy from a directory once at start-up and compiles the seccomp
 * rules to BPF there and then, so a missing or malformed file refuses to
 * start.  policy_prepare() turns the loaded policy into the sandbox_spec sent
 * to each worker in its Setup message; policy_limits_apply() sets the rlimits
 * in the forked child before exec.
 *
 * Child half (libpolicy_child.a, raw syscalls and kernel headers only; the
 * worker): sandbox_enter() applies a sandbox_spec to the calling process in
 * a fixed order -- no_new_privs, dumpable off, Landlock, seccomp (TSYNC) --
 * and fails on the first step that fails.  The caller exits on failure.
 *
 * Errors are 0 or a negative errno.  Functions taking err/errsz write a
 * one-line message there on failure ("file:line: message" for the policy
 * files); they never log.
 */
#ifndef VS_POLICY_POLICY_H
#define VS_POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Bounds on what a policy or a Setup message may hold. */
#define POLICY_MAX_RO_PATHS	16
#define POLICY_MAX_TCP_PORTS	16
#define POLICY_MAX_PATH		4096
#define POLICY_MAX_BPF_LEN	(4096 * 8)	/* BPF_MAXINSNS instructions */

/*
 * What the worker enters.  Built by policy_prepare() in the supervisor, sent
 * in Setup, rebuilt from Setup by the worker (pointing into the message).
 */
struct sandbox_spec {
	const void *bpf;		/* struct sock_filter[], native arch */
	size_t bpf_len;			/* bytes */
	const char *const *ro_paths;	/* readable files or directories */
	size_t n_ro_paths;
	const uint16_t *tcp_ports;	/* TCP connect allowed to these */
	size_t n_tcp_ports;
	int min_landlock_abi;		/* refuse a kernel below this ABI */
	bool require_landlock;		/* refuse a kernel without Landlock */
};

/* What the worker entered; sent back in Hello. */
struct sandbox_report {
	bool no_new_privs;
	bool dumpable_off;
	bool seccomp;
	int landlock_abi;		/* 0: kernel has no Landlock */
	bool landlock_fs;
	bool landlock_net;		/* ABI >= 4 */
	bool landlock_scoped;		/* ABI >= 6: abstract unix, signals */
};

/* ---- child half ------------------------------------------------------ */

/*
 * Confine the calling process (all its threads) as spec says.  On success
 * fills *ret (may be NULL).  On failure returns a negative errno and a
 * message in err; the process may be half-confined and must exit.
 */
int sandbox_enter(const struct sandbox_spec *spec, struct sandbox_report *ret,
    char *err, size_t errsz);

/* The kernel's Landlock ABI version, 0 when it has none. */
int sandbox_landlock_abi(void);

/* ---- parent half ----------------------------------------------------- */

struct policy;

/* Resource limits from limits.policy; see policy_limits_apply(). */
#define POLICY_LIMITS_MAX 16
struct policy_limit {
	int resource;			/* RLIMIT_* */
	uint64_t soft;			/* RLIM_INFINITY for "unlimited" */
	uint64_t hard;
};
struct policy_limits {
	size_t n;
	struct policy_limit limit[POLICY_LIMITS_MAX];
};

/*
 * A value for a ${name} placeholder in landlock.policy: a path for "read",
 * a list of ports separated by blanks or commas for "connect".
 */
struct policy_subst {
	const char *name;
	const char *value;
};

/*
 * Load and compile the policy in dir (seccomp.policy, landlock.policy,
 * limits.policy; in builds with sanitizers also seccomp-sanitizers.policy).
 * Errors: -ENOENT and friends for a file that cannot be read, -EINVAL for a
 * malformed one, with "file:line: message" in err.  The caller frees *ret
 * with policy_free().
 */
int policy_load(const char *dir, struct policy **ret, char *err,
    size_t errsz);
void policy_free(struct policy *);

/* The files the policy was read from (NULL-terminated), for hashing. */
const char *const *policy_files(const struct policy *);

/* The compiled filter, owned by the policy. */
int policy_seccomp_bpf(const struct policy *, const void **ret_bpf,
    size_t *ret_len);

/*
 * Parent prepare: resolve the Landlock rules with the caller's placeholder
 * values (an unknown ${name} is -EINVAL) and fill *ret with the spec to send
 * in Setup.  Everything *ret points to is heap memory owned by *ret (the BPF
 * is copied); release it with policy_spec_release().
 */
int policy_prepare(const struct policy *, const struct policy_subst *subst,
    size_t nsubst, struct sandbox_spec *ret, char *err, size_t errsz);
void policy_spec_release(struct sandbox_spec *);

/* Print what is enforced: rules, the filter as PFC, Landlock, limits. */
int policy_show(const struct policy *, FILE *out);

const struct policy_limits *policy_limits(const struct policy *);

/*
 * The native name of syscall nr ("execve"), for reporting a seccomp kill;
 * NULL when nr names none.  Returns a static buffer that the next call
 * overwrites.
 */
const char *policy_syscall_name(int nr);

/*
 * Set every limit with setrlimit(2).  Async-signal-safe (no allocation, no
 * locks): meant for the child between fork and exec.  Returns 0 or the
 * negative errno of the first limit that could not be set.
 */
int policy_limits_apply(const struct policy_limits *);

#endif
