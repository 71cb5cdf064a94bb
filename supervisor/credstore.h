/*
 * Clinics' IDEXX credentials in PostgreSQL (idexx_credentials), as the
 * daemon reads and writes them through the event loop's database layer.
 *
 * The ciphertexts are the PRD's EncryptedData JSON (credcrypt.h); the
 * supervisor alone decrypts them, just before a job, and hands the
 * plaintext to that clinic's worker inside the Job (vault.h's struct
 * vault_creds, wiped as soon as the Job is sent).  Every decryption is
 * audited with the clinic, the job and the purpose.
 *
 * The lifecycle (PRD §8.3, migrations/0006_credentials.sql): no row = not
 * configured; configured; validated; active (validated and the user's
 * idexx_sync_enabled); suspended (IDEXX refused them); revoked (ciphertexts
 * deleted, row kept as the marker).  Credentials are stored only after a
 * validation job succeeded with them (credstore_store()), so a stored row
 * is at least validated.
 *
 * Every statement runs in a transaction scoped to the clinic's tenant
 * (SET LOCAL ROLE vetsync_tenant and its JWT claims), so row-level security
 * bounds the daemon here as everywhere else.
 */
#ifndef VS_SUPERVISOR_CREDSTORE_H
#define VS_SUPERVISOR_CREDSTORE_H

#include <stdbool.h>
#include <stdint.h>

#include "supervisor/vault.h"

struct credcrypt;
struct db_async;

#define CREDSTORE_ERR_MAX 256

/*
 * The database and the key cache to use (neither owned); new credentials
 * are encrypted under the configuration's credentials.key_id.  Until then,
 * and with a NULL database, credstore_enabled() is false and clinics take
 * their credentials from the file vault (vault.h).
 */
void credstore_init(struct db_async *, struct credcrypt *);
bool credstore_enabled(void);

/*
 * Fetch and decrypt clinic's credentials for job and purpose ("sync job",
 * "validation").  cb runs once: r = 0 with creds (the callee owns them:
 * vault_creds_release() and free()) and the clinic's time zone (NULL when
 * none is recorded; valid during the call); or r < 0 and a message:
 * -ENOENT not configured, -EKEYREVOKED revoked, -EKEYREJECTED suspended,
 * -ENOKEY the master key is missing, -EBADMSG the ciphertext does not
 * authenticate, -EIO or -ENOBUFS the database, -ECANCELED shutting down.
 */
typedef void credstore_fetch_cb(int r, const char *error,
    struct vault_creds *creds, const char *timezone, void *arg);
void credstore_fetch(const char *clinic, uint64_t job, const char *purpose,
    credstore_fetch_cb *cb, void *arg);

/*
 * Encrypt creds under the configured key and store them as clinic's, just
 * validated: validation_status 'valid', last_validated_at now, state
 * 'active' when the user has idexx_sync_enabled, else 'validated'.  cb
 * (may be NULL) runs once with 0 or a negative errno and a message.
 */
typedef void credstore_done_cb(int r, const char *error, void *arg);
void credstore_store(const char *clinic, const struct vault_creds *creds,
    uint64_t job, credstore_done_cb *cb, void *arg);

/*
 * Record the outcome of validating the stored credentials: valid re-activates
 * a suspended or validated row (last_validated_at now); invalid suspends
 * it.  A revoked row is left alone.
 */
void credstore_mark(const char *clinic, bool valid, uint64_t job);

/*
 * The revocation, one statement ($1: the user id) whoever revokes
 * (vetsyncctl, the HTTP API): the ciphertexts deleted, the row kept as the
 * marker; the trigger of migrations/0006 announces it.  It returns a row
 * when there was something to revoke.
 */
#define CREDSTORE_SQL_REVOKE \
    "UPDATE idexx_credentials SET encrypted_username = NULL, " \
    "encrypted_password = NULL, encrypted_company_id = NULL, " \
    "state = 'revoked', validation_status = 'unknown', revoked_at = now() " \
    "WHERE user_id = $1::uuid AND state <> 'revoked' " \
    "RETURNING encryption_key_id"

/* Errors as text for messages and answers ("not configured", ...). */
const char *credstore_strerror(int r);

#endif
