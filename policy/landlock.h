/*
 * Child half, Landlock: internal to policy/; the face is sandbox_enter() in
 * policy.h.
 */
#ifndef VS_POLICY_LANDLOCK_H
#define VS_POLICY_LANDLOCK_H

#include <stddef.h>

#include "policy/policy.h"

/* The kernel's Landlock ABI, 0 when it has none. */
int landlock_abi(void);

/*
 * Restrict the calling thread (no_new_privs must be set) to read-only
 * access to spec->ro_paths and TCP connect to spec->tcp_ports, best effort
 * by ABI.  Fills the landlock_* fields of rep.
 */
int landlock_apply(const struct sandbox_spec *spec, struct sandbox_report *rep,
    char *err, size_t errsz);

#endif
