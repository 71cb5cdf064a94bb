/*
 * Parent half, resource limits: read limits.policy and apply it with
 * setrlimit(2) in the forked child, before exec.  The limits are a floor
 * under the cgroup: they hold even where no cgroup controller is available.
 *
 * The grammar, one limit a line:
 *
 *	RESOURCE SOFT [HARD]	# reason
 *
 * RESOURCE is the lower-case name after RLIMIT_ (core, nofile, ...); a
 * value is "unlimited", a count, or for the byte-sized resources a size
 * ("512M").  HARD defaults to SOFT.  Each resource may appear once.
 *
 * policy_limits_apply() runs between fork and exec, so it is a plain loop
 * over a fixed array: no allocation, no locks, no stdio.
 */
#include <sys/resource.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/parse.h"
#include "policy/limits.h"
#include "policy/policy_parse.h"

static const struct {
	const char *name;
	int resource;
	bool bytes;
} limits_names[] = {
	{ "as", RLIMIT_AS, true },
	{ "core", RLIMIT_CORE, true },
	{ "cpu", RLIMIT_CPU, false },
	{ "data", RLIMIT_DATA, true },
	{ "fsize", RLIMIT_FSIZE, true },
	{ "memlock", RLIMIT_MEMLOCK, true },
	{ "msgqueue", RLIMIT_MSGQUEUE, true },
	{ "nice", RLIMIT_NICE, false },
	{ "nofile", RLIMIT_NOFILE, false },
	{ "nproc", RLIMIT_NPROC, false },
	{ "rtprio", RLIMIT_RTPRIO, false },
	{ "sigpending", RLIMIT_SIGPENDING, false },
	{ "stack", RLIMIT_STACK, true },
};

static const char *
limits_name(int resource)
{
	for (size_t i = 0; i < sizeof(limits_names) / sizeof(*limits_names);
	    i++) {
		if (limits_names[i].resource == resource)
			return limits_names[i].name;
	}
	return "?";
}

static int
limits_value(const char *s, bool bytes, uint64_t *ret)
{
	if (strcmp(s, "unlimited") == 0) {
		*ret = RLIM_INFINITY;
		return 0;
	}
	return bytes ? parse_size(s, ret) : parse_u64(s, ret);
}

static int
limits_line(const struct policy_line *l, void *ctx, char *err, size_t errsz)
{
	struct policy_limits *lim = ctx;
	struct policy_limit *pl;
	size_t i;

	for (i = 0; i < sizeof(limits_names) / sizeof(*limits_names); i++) {
		if (strcmp(limits_names[i].name, l->word[0]) == 0)
			break;
	}
	if (i == sizeof(limits_names) / sizeof(*limits_names))
		return policy_line_error(l, err, errsz,
		    "unknown resource '%s'", l->word[0]);
	if (l->nword < 2 || l->nword > 3)
		return policy_line_error(l, err, errsz,
		    "'%s' needs a soft and an optional hard limit", l->word[0]);
	for (size_t k = 0; k < lim->n; k++) {
		if (lim->limit[k].resource == limits_names[i].resource)
			return policy_line_error(l, err, errsz,
			    "'%s' given twice", l->word[0]);
	}
	if (lim->n == POLICY_LIMITS_MAX)
		return policy_line_error(l, err, errsz, "too many limits");
	pl = &lim->limit[lim->n];
	pl->resource = limits_names[i].resource;
	if (limits_value(l->word[1], limits_names[i].bytes, &pl->soft) != 0)
		return policy_line_error(l, err, errsz, "bad value '%s'",
		    l->word[1]);
	pl->hard = pl->soft;
	if (l->nword == 3 &&
	    limits_value(l->word[2], limits_names[i].bytes, &pl->hard) != 0)
		return policy_line_error(l, err, errsz, "bad value '%s'",
		    l->word[2]);
	if (pl->soft > pl->hard)
		return policy_line_error(l, err, errsz,
		    "'%s': soft limit above the hard limit", l->word[0]);
	if (*l->reason == '\0')
		return policy_line_error(l, err, errsz,
		    "'%s' without a '# reason'", l->word[0]);
	lim->n++;
	return 0;
}

int
policy_limits_read(struct policy_limits *lim, const char *path, char *err,
    size_t errsz)
{
	memset(lim, 0, sizeof(*lim));
	return policy_parse_file(path, limits_line, lim, err, errsz);
}

int
policy_limits_show(const struct policy_limits *lim, FILE *out)
{
	const struct policy_limit *pl;

	fprintf(out, "# limits (setrlimit before exec)\n");
	for (size_t i = 0; i < lim->n; i++) {
		pl = &lim->limit[i];
		fprintf(out, "%s", limits_name(pl->resource));
		if (pl->soft == RLIM_INFINITY)
			fprintf(out, " unlimited");
		else
			fprintf(out, " %llu", (unsigned long long)pl->soft);
		if (pl->hard == RLIM_INFINITY)
			fprintf(out, " unlimited\n");
		else
			fprintf(out, " %llu\n", (unsigned long long)pl->hard);
	}
	return ferror(out) ? -EIO : 0;
}

int
policy_limits_apply(const struct policy_limits *lim)
{
	struct rlimit rl;

	for (size_t i = 0; i < lim->n; i++) {
		rl.rlim_cur = (rlim_t)lim->limit[i].soft;
		rl.rlim_max = (rlim_t)lim->limit[i].hard;
		if (setrlimit(lim->limit[i].resource, &rl) == -1)
			return -errno;
	}
	return 0;
}
