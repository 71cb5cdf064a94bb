/*
 * Building the Job message for a worker: the clinic's slice of the
 * configuration (IDEXX base URL and the address pinned for it, the site
 * profile, the limits), the date window computed in the clinic's time zone,
 * and the clinic's credentials from the vault.
 *
 * The encoded frame holds a password: the caller wipes it
 * (explicit_bzero) and frees it as soon as it is sent.
 */
#ifndef VS_SUPERVISOR_JOBSPEC_H
#define VS_SUPERVISOR_JOBSPEC_H

#include <stddef.h>
#include <stdint.h>

#include "supervisor/workers.h"

/* Returns 0 or -errno, with a message for the operator in err. */
int jobspec_encode(const struct worker_job *, uint8_t **ret_buf,
    size_t *ret_len, char *err, size_t errsz);

/*
 * Clinic-local "YYYY-MM-DD HH:MM:SS" of wall-clock time t (seconds) in the
 * IANA zone tz.  Returns 0 or -EINVAL for an unknown zone.
 */
int jobspec_local_time(const char *tz, int64_t t, char *buf, size_t bufsz);

/*
 * Split an http(s) URL into host and port (default 80/443).  Returns 0 or
 * -EINVAL.
 */
int jobspec_url_host_port(const char *url, char *host, size_t hostsz,
    unsigned *ret_port);

#endif
