/*
 * Parent half, seccomp: read seccomp.policy, resolve every syscall name for
 * the native architecture, and compile the whole list once with libseccomp
 * into a BPF program kept in memory (exported through a memfd), together
 * with its PFC listing for "vetsyncctl policy show".
 *
 * The grammar, one rule a line (see policy/README):
 *
 *	allow NAME [COND ...]		# reason (required)
 *	errno NAME ERRNO [COND ...]	# reason (required)
 *	kill NAME			# reason
 *
 *	COND:	argN OP VALUE		OP one of == != < <= > >=
 *		argN & MASK == VALUE	(masked equality)
 *
 * Conditions on one line must all hold; several lines for one syscall are
 * alternatives.  The default action is fixed: kill the process.  "kill"
 * lines say so explicitly for the syscalls a reviewer will look for; they
 * add nothing to the filter.  A foreign architecture (x32 on x86_64, i386)
 * also kills the process.
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <seccomp.h>

#include "common/xmalloc.h"
#include "policy/policy.h"
#include "policy/policy_parse.h"
#include "policy/seccomp.h"

#define SC_MAX_RULES	512
#define SC_MAX_CONDS	6
#define SC_NAME_MAX	48

enum sc_action {
	SC_ALLOW,
	SC_ERRNO,
	SC_KILL,
};

struct sc_cond {
	unsigned int arg;
	enum scmp_compare op;
	uint64_t a;		/* value, or mask for SCMP_CMP_MASKED_EQ */
	uint64_t b;		/* value for SCMP_CMP_MASKED_EQ */
};

struct sc_rule {
	char name[SC_NAME_MAX];
	int nr;
	enum sc_action action;
	int errnum;
	size_t ncond;
	struct sc_cond cond[SC_MAX_CONDS];
	char *reason;
	char *where;		/* "file:line" */
};

struct policy_seccomp {
	struct sc_rule *rule;
	size_t nrule;
	void *bpf;
	size_t bpf_len;
	char *pfc;
};

static const struct {
	const char *text;
	enum scmp_compare op;
} sc_ops[] = {
	{ "==", SCMP_CMP_EQ }, { "!=", SCMP_CMP_NE },
	{ "<", SCMP_CMP_LT }, { "<=", SCMP_CMP_LE },
	{ ">", SCMP_CMP_GT }, { ">=", SCMP_CMP_GE },
};

static int
sc_parse_arg(const char *s, unsigned int *ret)
{
	if (strncmp(s, "arg", 3) != 0 || s[3] < '0' || s[3] > '5' ||
	    s[4] != '\0')
		return -EINVAL;
	*ret = (unsigned int)(s[3] - '0');
	return 0;
}

/* Parse the conditions in words[i..n) into r. */
static int
sc_parse_conds(const struct policy_line *l, size_t i, struct sc_rule *r,
    char *err, size_t errsz)
{
	struct sc_cond *c;
	size_t k;

	while (i < l->nword) {
		if (r->ncond == SC_MAX_CONDS)
			return policy_line_error(l, err, errsz,
			    "more than %d conditions", SC_MAX_CONDS);
		c = &r->cond[r->ncond];
		if (sc_parse_arg(l->word[i], &c->arg) != 0)
			return policy_line_error(l, err, errsz,
			    "'%s': expected arg0 to arg5", l->word[i]);
		for (k = 0; k < r->ncond; k++) {
			if (r->cond[k].arg == c->arg)
				return policy_line_error(l, err, errsz,
				    "'%s' compared twice", l->word[i]);
		}
		if (i + 2 >= l->nword)
			return policy_line_error(l, err, errsz,
			    "'%s': incomplete condition", l->word[i]);
		if (strcmp(l->word[i + 1], "&") == 0) {
			if (i + 4 >= l->nword ||
			    strcmp(l->word[i + 3], "==") != 0)
				return policy_line_error(l, err, errsz,
				    "'%s': expected 'argN & MASK == VALUE'",
				    l->word[i]);
			if (policy_value_parse(l->word[i + 2], &c->a) != 0)
				return policy_line_error(l, err, errsz,
				    "bad mask '%s'", l->word[i + 2]);
			if (policy_value_parse(l->word[i + 4], &c->b) != 0)
				return policy_line_error(l, err, errsz,
				    "bad value '%s'", l->word[i + 4]);
			if ((c->b & ~c->a) != 0)
				return policy_line_error(l, err, errsz,
				    "value '%s' has bits outside mask '%s'",
				    l->word[i + 4], l->word[i + 2]);
			c->op = SCMP_CMP_MASKED_EQ;
			i += 5;
		} else {
			for (k = 0; k < sizeof(sc_ops) / sizeof(*sc_ops); k++) {
				if (strcmp(sc_ops[k].text, l->word[i + 1]) == 0)
					break;
			}
			if (k == sizeof(sc_ops) / sizeof(*sc_ops))
				return policy_line_error(l, err, errsz,
				    "unknown operator '%s'", l->word[i + 1]);
			c->op = sc_ops[k].op;
			if (policy_value_parse(l->word[i + 2], &c->a) != 0)
				return policy_line_error(l, err, errsz,
				    "bad value '%s'", l->word[i + 2]);
			c->b = 0;
			i += 3;
		}
		r->ncond++;
	}
	return 0;
}

static int
sc_line(const struct policy_line *l, void *ctx, char *err, size_t errsz)
{
	struct policy_seccomp *sc = ctx;
	struct sc_rule r;
	size_t first;
	int nr;

	memset(&r, 0, sizeof(r));
	if (strcmp(l->word[0], "allow") == 0) {
		r.action = SC_ALLOW;
		first = 2;
	} else if (strcmp(l->word[0], "errno") == 0) {
		r.action = SC_ERRNO;
		first = 3;
	} else if (strcmp(l->word[0], "kill") == 0) {
		r.action = SC_KILL;
		first = 2;
	} else
		return policy_line_error(l, err, errsz,
		    "unknown action '%s' (allow, errno or kill)", l->word[0]);
	if (l->nword < first)
		return policy_line_error(l, err, errsz, "'%s' needs %s",
		    l->word[0], r.action == SC_ERRNO ? "a syscall and an errno"
		    : "a syscall");
	if (strlen(l->word[1]) >= sizeof(r.name))
		return policy_line_error(l, err, errsz, "syscall name too long");
	nr = seccomp_syscall_resolve_name(l->word[1]);
	if (nr == __NR_SCMP_ERROR)
		return policy_line_error(l, err, errsz, "unknown syscall '%s'",
		    l->word[1]);
	if (nr < 0)
		return policy_line_error(l, err, errsz,
		    "syscall '%s' does not exist on this architecture",
		    l->word[1]);
	if (r.action == SC_ERRNO &&
	    policy_errno_lookup(l->word[2], &r.errnum) != 0)
		return policy_line_error(l, err, errsz, "unknown errno '%s'",
		    l->word[2]);
	if (r.action == SC_KILL && l->nword > first)
		return policy_line_error(l, err, errsz,
		    "'kill' takes no conditions");
	if (r.action != SC_KILL && *l->reason == '\0')
		return policy_line_error(l, err, errsz,
		    "'%s %s' without a '# reason'", l->word[0], l->word[1]);
	if (sc_parse_conds(l, first, &r, err, errsz) != 0)
		return -EINVAL;
	for (size_t i = 0; i < sc->nrule; i++) {
		if (sc->rule[i].nr == nr && (r.ncond == 0 ||
		    sc->rule[i].ncond == 0 || sc->rule[i].action == SC_KILL ||
		    r.action == SC_KILL))
			return policy_line_error(l, err, errsz,
			    "'%s' already has a rule at %s", l->word[1],
			    sc->rule[i].where);
	}
	if (sc->nrule == SC_MAX_RULES)
		return policy_line_error(l, err, errsz, "more than %d rules",
		    SC_MAX_RULES);
	snprintf(r.name, sizeof(r.name), "%s", l->word[1]);
	r.nr = nr;
	r.reason = xstrdup(l->reason);
	r.where = xasprintf("%s:%u", l->file, l->lineno);
	sc->rule = xreallocarray(sc->rule, sc->nrule + 1, sizeof(*sc->rule));
	sc->rule[sc->nrule++] = r;
	return 0;
}

int
policy_seccomp_read(struct policy_seccomp **scp, const char *path, char *err,
    size_t errsz)
{
	if (*scp == NULL)
		*scp = xcalloc(1, sizeof(**scp));
	return policy_parse_file(path, sc_line, *scp, err, errsz);
}

/* Run an export function into a memfd and read the result back. */
static int
sc_export(scmp_filter_ctx ctx, int (*fn)(const scmp_filter_ctx, int),
    void **ret, size_t *ret_len)
{
	struct stat st;
	char *data = NULL;
	size_t off = 0;
	ssize_t n;
	int fd, r;

	if ((fd = memfd_create("vetsync-policy", MFD_CLOEXEC)) == -1)
		return -errno;
	if ((r = fn(ctx, fd)) < 0)
		goto out;
	if (fstat(fd, &st) == -1 || lseek(fd, 0, SEEK_SET) == -1) {
		r = -errno;
		goto out;
	}
	data = xmalloc((size_t)st.st_size + 1);
	while (off < (size_t)st.st_size) {
		if ((n = read(fd, data + off, (size_t)st.st_size - off)) <= 0) {
			r = n == 0 ? -EIO : -errno;
			goto out;
		}
		off += (size_t)n;
	}
	data[off] = '\0';
	*ret = data;
	*ret_len = off;
	data = NULL;
	r = 0;
out:
	free(data);
	close(fd);
	return r;
}

int
policy_seccomp_compile(struct policy_seccomp *sc, char *err, size_t errsz)
{
	struct scmp_arg_cmp cmp[SC_MAX_CONDS];
	scmp_filter_ctx ctx;
	struct sc_rule *rl;
	size_t len;
	uint32_t act;
	int r;

	if (sc == NULL || sc->nrule == 0) {
		snprintf(err, errsz, "seccomp policy has no rules");
		return -EINVAL;
	}
	if ((ctx = seccomp_init(SCMP_ACT_KILL_PROCESS)) == NULL) {
		snprintf(err, errsz, "seccomp_init failed");
		return -ENOMEM;
	}
	/* The worker sets no_new_privs itself, before Landlock. */
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) != 0 ||
	    (r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
	    SCMP_ACT_KILL_PROCESS)) != 0) {
		snprintf(err, errsz, "seccomp_attr_set: %s", strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < sc->nrule; i++) {
		rl = &sc->rule[i];
		if (rl->action == SC_KILL)
			continue;	/* the default action */
		act = rl->action == SC_ALLOW ? SCMP_ACT_ALLOW :
		    SCMP_ACT_ERRNO((uint16_t)rl->errnum);
		for (size_t k = 0; k < rl->ncond; k++) {
			cmp[k].arg = rl->cond[k].arg;
			cmp[k].op = rl->cond[k].op;
			cmp[k].datum_a = rl->cond[k].a;
			cmp[k].datum_b = rl->cond[k].b;
		}
		r = seccomp_rule_add_exact_array(ctx, act, rl->nr,
		    (unsigned int)rl->ncond, cmp);
		if (r != 0) {
			snprintf(err, errsz, "%s: libseccomp refused the rule "
			    "for '%s': %s", rl->where, rl->name, strerror(-r));
			goto out;
		}
	}
	free(sc->bpf);
	free(sc->pfc);
	sc->bpf = NULL;
	sc->pfc = NULL;
	if ((r = sc_export(ctx, seccomp_export_bpf, &sc->bpf,
	    &sc->bpf_len)) != 0 ||
	    (r = sc_export(ctx, seccomp_export_pfc, (void **)&sc->pfc,
	    &len)) != 0) {
		snprintf(err, errsz, "exporting the seccomp filter: %s",
		    strerror(-r));
		goto out;
	}
	if (sc->bpf_len == 0 || sc->bpf_len > POLICY_MAX_BPF_LEN) {
		snprintf(err, errsz, "seccomp filter of %zu bytes is over the "
		    "%d limit", sc->bpf_len, POLICY_MAX_BPF_LEN);
		r = -E2BIG;
		goto out;
	}
	r = 0;
out:
	seccomp_release(ctx);
	return r;
}

int
policy_seccomp_get_bpf(const struct policy_seccomp *sc, const void **ret_bpf,
    size_t *ret_len)
{
	if (sc == NULL || sc->bpf == NULL)
		return -ENOENT;
	*ret_bpf = sc->bpf;
	*ret_len = sc->bpf_len;
	return 0;
}

static const char *
sc_op_text(enum scmp_compare op)
{
	for (size_t k = 0; k < sizeof(sc_ops) / sizeof(*sc_ops); k++) {
		if (sc_ops[k].op == op)
			return sc_ops[k].text;
	}
	return "?";
}

int
policy_seccomp_show(const struct policy_seccomp *sc, FILE *out)
{
	const struct sc_rule *rl;

	fprintf(out, "# seccomp: default action kill-process; foreign "
	    "architectures kill-process\n");
	for (size_t i = 0; i < sc->nrule; i++) {
		rl = &sc->rule[i];
		if (rl->action == SC_ERRNO)
			fprintf(out, "errno %s(%d) %s", rl->name, rl->nr,
			    policy_errno_name(rl->errnum));
		else
			fprintf(out, "%s %s(%d)", rl->action == SC_ALLOW ?
			    "allow" : "kill", rl->name, rl->nr);
		for (size_t k = 0; k < rl->ncond; k++) {
			const struct sc_cond *c = &rl->cond[k];

			if (c->op == SCMP_CMP_MASKED_EQ)
				fprintf(out, " arg%u & 0x%llx == 0x%llx",
				    c->arg, (unsigned long long)c->a,
				    (unsigned long long)c->b);
			else
				fprintf(out, " arg%u %s 0x%llx", c->arg,
				    sc_op_text(c->op),
				    (unsigned long long)c->a);
		}
		fprintf(out, "\t# %s: %s\n", rl->where, rl->reason);
	}
	fprintf(out, "# seccomp: compiled filter, %zu instructions\n",
	    sc->bpf_len / 8);
	fputs(sc->pfc != NULL ? sc->pfc : "", out);
	return ferror(out) ? -EIO : 0;
}

const char *
policy_syscall_name(int nr)
{
	static char name[SC_NAME_MAX];
	char *s;

	if (nr < 0 || (s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE,
	    nr)) == NULL)
		return NULL;
	snprintf(name, sizeof(name), "%s", s);
	free(s);
	return name;
}

void
policy_seccomp_free(struct policy_seccomp *sc)
{
	if (sc == NULL)
		return;
	for (size_t i = 0; i < sc->nrule; i++) {
		free(sc->rule[i].reason);
		free(sc->rule[i].where);
	}
	free(sc->rule);
	free(sc->bpf);
	free(sc->pfc);
	free(sc);
}
