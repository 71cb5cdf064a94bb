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
 * An operator's window of clinic-local dates ("YYYY-MM-DD", from <= to,
 * at most JOBSPEC_WINDOW_DAYS_MAX days): 0 with the window's first and
 * last second ("YYYY-MM-DD HH:MM:SS") in start and end, or -EINVAL with
 * what is wrong in err.
 */
#define JOBSPEC_WINDOW_DAYS_MAX	92
#define JOBSPEC_WINDOW_LEN	20	/* "YYYY-MM-DD HH:MM:SS" and NUL */
int jobspec_window_parse(const char *from, const char *to,
    char start[JOBSPEC_WINDOW_LEN], char end[JOBSPEC_WINDOW_LEN], char *err,
    size_t errsz);

/*
 * The window job_id's Job carries instead of the computed one (copied);
 * jobspec_window_drop() forgets it (the job ended, or never ran).
 */
void jobspec_window_set(uint64_t job_id, const char *start, const char *end);
void jobspec_window_drop(uint64_t job_id);

/*
 * Split an http(s) URL into host and port (default 80/443).  Returns 0 or
 * -EINVAL.
 */
int jobspec_url_host_port(const char *url, char *host, size_t hostsz,
    unsigned *ret_port);

#endif
