/*
 * Parent half: load the policy directory, hold what it says, and prepare
 * the spec each worker enters.  One file per mechanism: seccomp.c reads and
 * compiles seccomp.policy, limits.c reads limits.policy, and landlock.policy
 * is read here because the parent only carries it to the worker (the child
 * half, landlock.c, enforces it).
 *
 * landlock.policy, one rule a line:
 *
 *	read PATH	# reason	PATH absolute or ${name}
 *	connect PORT	# reason	PORT 1-65535 or ${name}
 *	min-abi N	# reason	refuse a kernel below Landlock ABI N
 *	require yes|no	# reason	refuse a kernel without Landlock
 *
 * ${name} placeholders are filled by the supervisor at policy_prepare()
 * time from its configuration (the CA bundle, the IDEXX port or ports): the
 * policy file says what kind of access, the configuration says where.
 * Everything not named is denied: no write anywhere, no read elsewhere, no
 * TCP bind, no TCP connect to any other port.
 */
#include <sys/resource.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"
#include "common/xmalloc.h"
#include "policy/limits.h"
#include "policy/policy.h"
#include "policy/policy_parse.h"
#include "policy/seccomp.h"

#define POLICY_NFILES	4

struct policy {
	char *files[POLICY_NFILES + 1];
	size_t nfiles;
	struct policy_seccomp *sc;
	struct policy_limits limits;
	char *read[POLICY_MAX_RO_PATHS];
	size_t nread;
	char *connect[POLICY_MAX_TCP_PORTS];
	size_t nconnect;
	int min_abi;
	bool require;
	bool seen_min_abi, seen_require;
};

static bool
policy_is_placeholder(const char *s)
{
	size_t n = strlen(s);

	return n > 3 && s[0] == '$' && s[1] == '{' && s[n - 1] == '}';
}

static int
policy_port_parse(const char *s, uint16_t *ret)
{
	uint64_t v;

	if (parse_u64(s, &v) != 0 || v == 0 || v > 65535)
		return -EINVAL;
	*ret = (uint16_t)v;
	return 0;
}

static int
policy_landlock_line(const struct policy_line *l, void *ctx, char *err,
    size_t errsz)
{
	struct policy *p = ctx;
	const char *w = l->word[0];
	uint64_t v;
	uint16_t port;

	if (l->nword != 2)
		return policy_line_error(l, err, errsz,
		    "'%s' takes exactly one value", w);
	if (*l->reason == '\0')
		return policy_line_error(l, err, errsz,
		    "'%s %s' without a '# reason'", w, l->word[1]);
	if (strcmp(w, "read") == 0) {
		if (l->word[1][0] != '/' && !policy_is_placeholder(l->word[1]))
			return policy_line_error(l, err, errsz,
			    "'%s': not an absolute path or ${name}",
			    l->word[1]);
		if (p->nread == POLICY_MAX_RO_PATHS)
			return policy_line_error(l, err, errsz,
			    "more than %d paths", POLICY_MAX_RO_PATHS);
		p->read[p->nread++] = xstrdup(l->word[1]);
	} else if (strcmp(w, "connect") == 0) {
		if (!policy_is_placeholder(l->word[1]) &&
		    policy_port_parse(l->word[1], &port) != 0)
			return policy_line_error(l, err, errsz,
			    "'%s': not a port or ${name}", l->word[1]);
		if (p->nconnect == POLICY_MAX_TCP_PORTS)
			return policy_line_error(l, err, errsz,
			    "more than %d ports", POLICY_MAX_TCP_PORTS);
		p->connect[p->nconnect++] = xstrdup(l->word[1]);
	} else if (strcmp(w, "min-abi") == 0) {
		if (p->seen_min_abi)
			return policy_line_error(l, err, errsz,
			    "'min-abi' given twice");
		if (parse_u64(l->word[1], &v) != 0 || v > 64)
			return policy_line_error(l, err, errsz,
			    "bad ABI version '%s'", l->word[1]);
		p->min_abi = (int)v;
		p->seen_min_abi = true;
	} else if (strcmp(w, "require") == 0) {
		if (p->seen_require)
			return policy_line_error(l, err, errsz,
			    "'require' given twice");
		if (parse_bool(l->word[1], &p->require) != 0)
			return policy_line_error(l, err, errsz,
			    "'%s': expected yes or no", l->word[1]);
		p->seen_require = true;
	} else
		return policy_line_error(l, err, errsz,
		    "unknown rule '%s' (read, connect, min-abi, require)", w);
	return 0;
}

int
policy_load(const char *dir, struct policy **ret, char *err, size_t errsz)
{
	static const char *const names[] = {
		"seccomp.policy",
#ifdef VS_SANITIZERS
		"seccomp-sanitizers.policy",
#endif
		"landlock.policy",
		"limits.policy",
	};
	struct policy *p;
	const char *name;
	int r;

	p = xcalloc(1, sizeof(*p));
	p->min_abi = 1;
	p->require = true;
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		name = names[i];
		p->files[p->nfiles] = xasprintf("%s/%s", dir, name);
		if (strncmp(name, "seccomp", 7) == 0)
			r = policy_seccomp_read(&p->sc, p->files[p->nfiles],
			    err, errsz);
		else if (strcmp(name, "landlock.policy") == 0)
			r = policy_parse_file(p->files[p->nfiles],
			    policy_landlock_line, p, err, errsz);
		else
			r = policy_limits_read(&p->limits, p->files[p->nfiles],
			    err, errsz);
		p->nfiles++;
		if (r != 0)
			goto out;
	}
	if ((r = policy_seccomp_compile(p->sc, err, errsz)) != 0)
		goto out;
	*ret = p;
	p = NULL;
out:
	policy_free(p);
	return r;
}

void
policy_free(struct policy *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->nfiles; i++)
		free(p->files[i]);
	for (size_t i = 0; i < p->nread; i++)
		free(p->read[i]);
	for (size_t i = 0; i < p->nconnect; i++)
		free(p->connect[i]);
	policy_seccomp_free(p->sc);
	free(p);
}

const char *const *
policy_files(const struct policy *p)
{
	return (const char *const *)p->files;
}

int
policy_seccomp_bpf(const struct policy *p, const void **ret_bpf,
    size_t *ret_len)
{
	return policy_seccomp_get_bpf(p->sc, ret_bpf, ret_len);
}

const struct policy_limits *
policy_limits(const struct policy *p)
{
	return &p->limits;
}

static const char *
policy_subst_find(const char *placeholder, const struct policy_subst *subst,
    size_t nsubst)
{
	size_t n = strlen(placeholder) - 3;	/* without "${" and "}" */

	for (size_t i = 0; i < nsubst; i++) {
		if (strlen(subst[i].name) == n &&
		    strncmp(subst[i].name, placeholder + 2, n) == 0)
			return subst[i].value;
	}
	return NULL;
}

/* Append the ports in s (one, or a list for a placeholder) to spec. */
static int
policy_prepare_ports(const char *s, uint16_t *ports, size_t *n, char *err,
    size_t errsz)
{
	char *copy, *w, *save = NULL;
	int r = 0;

	copy = xstrdup(s);
	for (w = strtok_r(copy, " \t,", &save); w != NULL;
	    w = strtok_r(NULL, " \t,", &save)) {
		if (*n == POLICY_MAX_TCP_PORTS) {
			snprintf(err, errsz, "landlock: more than %d ports",
			    POLICY_MAX_TCP_PORTS);
			r = -E2BIG;
			break;
		}
		if (policy_port_parse(w, &ports[*n]) != 0) {
			snprintf(err, errsz, "landlock: bad port '%s'", w);
			r = -EINVAL;
			break;
		}
		(*n)++;
	}
	free(copy);
	return r;
}

int
policy_prepare(const struct policy *p, const struct policy_subst *subst,
    size_t nsubst, struct sandbox_spec *ret, char *err, size_t errsz)
{
	char **paths;
	uint16_t *ports;
	const char *v;
	const void *sbpf;
	void *bpf;
	size_t nports = 0, npaths = 0, len;
	int r;

	paths = xcalloc(POLICY_MAX_RO_PATHS + 1, sizeof(*paths));
	ports = xcalloc(POLICY_MAX_TCP_PORTS, sizeof(*ports));
	bpf = NULL;
	for (size_t i = 0; i < p->nread; i++) {
		v = p->read[i];
		if (policy_is_placeholder(v) &&
		    (v = policy_subst_find(v, subst, nsubst)) == NULL) {
			snprintf(err, errsz, "landlock: no value for '%s'",
			    p->read[i]);
			r = -EINVAL;
			goto out;
		}
		if (v[0] != '/' || strlen(v) >= POLICY_MAX_PATH) {
			snprintf(err, errsz, "landlock: '%s' is not an "
			    "absolute path", v);
			r = -EINVAL;
			goto out;
		}
		paths[npaths++] = xstrdup(v);
	}
	for (size_t i = 0; i < p->nconnect; i++) {
		v = p->connect[i];
		if (policy_is_placeholder(v) &&
		    (v = policy_subst_find(v, subst, nsubst)) == NULL) {
			snprintf(err, errsz, "landlock: no value for '%s'",
			    p->connect[i]);
			r = -EINVAL;
			goto out;
		}
		if ((r = policy_prepare_ports(v, ports, &nports, err,
		    errsz)) != 0)
			goto out;
	}
	if ((r = policy_seccomp_get_bpf(p->sc, &sbpf, &len)) != 0) {
		snprintf(err, errsz, "seccomp: no compiled filter");
		goto out;
	}
	bpf = xmalloc(len);
	memcpy(bpf, sbpf, len);
	ret->bpf = bpf;
	ret->bpf_len = len;
	ret->ro_paths = (const char *const *)paths;
	ret->n_ro_paths = npaths;
	ret->tcp_ports = ports;
	ret->n_tcp_ports = nports;
	ret->min_landlock_abi = p->min_abi;
	ret->require_landlock = p->require;
	paths = NULL;
	ports = NULL;
	r = 0;
out:
	if (paths != NULL) {
		for (size_t i = 0; i < npaths; i++)
			free(paths[i]);
		free(paths);
	}
	free(ports);
	return r;
}

void
policy_spec_release(struct sandbox_spec *spec)
{
	if (spec == NULL)
		return;
	for (size_t i = 0; i < spec->n_ro_paths; i++)
		free((void *)spec->ro_paths[i]);
	free((void *)spec->ro_paths);
	free((void *)spec->tcp_ports);
	free((void *)spec->bpf);
	memset(spec, 0, sizeof(*spec));
}

int
policy_show(const struct policy *p, FILE *out)
{
	int r;

	fprintf(out, "# policy files\n");
	for (size_t i = 0; i < p->nfiles; i++)
		fprintf(out, "%s\n", p->files[i]);
	fprintf(out, "# landlock (ABI >= 6 also scopes abstract unix "
	    "sockets and signals)\n");
	fprintf(out, "require %s\nmin-abi %d\n", p->require ? "yes" : "no",
	    p->min_abi);
	for (size_t i = 0; i < p->nread; i++)
		fprintf(out, "read %s\n", p->read[i]);
	for (size_t i = 0; i < p->nconnect; i++)
		fprintf(out, "connect %s\n", p->connect[i]);
	if ((r = policy_limits_show(&p->limits, out)) != 0)
		return r;
	return policy_seccomp_show(p->sc, out);
}
