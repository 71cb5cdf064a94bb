/*
 * Parent half, resource limits: the rules of limits.policy.  Internal to
 * policy/; policy_limits_apply() is in the face, policy.h.
 */
#ifndef VS_POLICY_LIMITS_H
#define VS_POLICY_LIMITS_H

#include <stddef.h>
#include <stdio.h>

#include "policy/policy.h"

int policy_limits_read(struct policy_limits *lim, const char *path,
    char *err, size_t errsz);
int policy_limits_show(const struct policy_limits *lim, FILE *out);

#endif
