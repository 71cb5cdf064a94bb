/*
 * Clinic credentials for a job.  The supervisor alone decrypts them, hands
 * the plaintext to that clinic's worker inside the Job and wipes its own
 * copy (vault_creds_release).  Every access is audited with who and why.
 *
 * Until the encrypted store in PostgreSQL lands, credentials come from
 * systemd credentials: $CREDENTIALS_DIRECTORY/idexx-<clinic>, three lines
 * (username, password, optional company id), mode 0600.
 */
#ifndef VS_SUPERVISOR_VAULT_H
#define VS_SUPERVISOR_VAULT_H

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

/* Wipe and free.  Accepts a zeroed struct. */
void vault_creds_release(struct vault_creds *);

#endif
