/*
 * Clinic credentials for a job.  The supervisor alone decrypts them, hands
 * the plaintext to that clinic's worker inside the Job and wipes its own
 * copy (vault_creds_release).  Every access is audited with who and why.
 *
 * Clinics' credentials are kept encrypted in PostgreSQL (credstore.h),
 * unless an operator provisions them as a systemd credential:
 * $CREDENTIALS_DIRECTORY/idexx-<clinic>, three lines (username, password,
 * optional company id), mode 0600, which vault_get() reads.  That file,
 * when present, is used instead of the database (so such a clinic syncs
 * even while the database is down); revoking it means removing the file
 * as well, since a revocation in the database only holds the clinic until
 * vetsyncd restarts.
 */
#ifndef VS_SUPERVISOR_VAULT_H
#define VS_SUPERVISOR_VAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

struct vault_creds {
	struct buf raw;		/* owns the bytes the pointers point into */
	const char *username;
	const char *password;
	const char *company_id;	/* NULL when none */
};

/*
 * Fetch the credentials of clinic for purpose ("sync job", "validation"),
 * auditing the access.  Returns 0, -ENOENT (none stored) or -EINVAL
 * (malformed), with a message in err that never holds the secret.
 */
int vault_get(const char *clinic, uint64_t job, const char *purpose,
    struct vault_creds *ret, char *err, size_t errsz);

/* True if the file vault has credentials for clinic (not read). */
bool vault_has(const char *clinic);

/*
 * Fill a zeroed c with copies of username, password and company_id (NULL or
 * "": none), all in c->raw.  Returns 0, or -EINVAL when username or
 * password is empty or holds a newline or a NUL.
 */
int vault_creds_set(struct vault_creds *c, const char *username,
    const char *password, const char *company_id);

/* Wipe and free.  Accepts a zeroed struct. */
void vault_creds_release(struct vault_creds *);

#endif
