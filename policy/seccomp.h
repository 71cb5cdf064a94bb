/*
 * Parent half, seccomp: the rules of seccomp.policy, compiled once with
 * libseccomp to a BPF program for the native architecture.  Internal to
 * policy/; the face is policy.h.
 */
#ifndef VS_POLICY_SECCOMP_H
#define VS_POLICY_SECCOMP_H

#include <stddef.h>
#include <stdio.h>

struct policy_seccomp;

/* Add the rules of one file; may be called for an addendum. */
int policy_seccomp_read(struct policy_seccomp **sc, const char *path,
    char *err, size_t errsz);
/* Compile what was read; fills the BPF and its PFC listing. */
int policy_seccomp_compile(struct policy_seccomp *sc, char *err,
    size_t errsz);
int policy_seccomp_get_bpf(const struct policy_seccomp *sc,
    const void **ret_bpf, size_t *ret_len);
int policy_seccomp_show(const struct policy_seccomp *sc, FILE *out);
void policy_seccomp_free(struct policy_seccomp *sc);

#endif
