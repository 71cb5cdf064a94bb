/*
 * Secrets of vetsyncd: the database password, API tokens, signing keys and
 * the master keys that encrypt clinics' IDEXX credentials.  They never sit
 * in the configuration file; systemd hands them over as credentials
 * (LoadCredential=, LoadCredentialEncrypted=), files in the directory named
 * by $CREDENTIALS_DIRECTORY, one secret a file.
 *
 * A secret file must be a regular file (not a symbolic link) that neither
 * group nor others may read, at most SECRET_SIZE_MAX bytes and not empty;
 * one trailing newline is dropped.  Anything else is refused with a
 * message naming the file, never its content.
 *
 * A secret read into a struct buf belongs to the caller, who wipes and frees
 * it with buf_release_secret() as soon as it is no longer needed.
 */
#ifndef VS_SUPERVISOR_SECRETS_H
#define VS_SUPERVISOR_SECRETS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

#define SECRET_SIZE_MAX		4096	/* bytes in one secret file */
#define SECRET_NAME_MAX		64	/* bytes in a name or a key id */
#define SECRET_ERR_MAX		512	/* a message buffer that fits */

/* The secrets vetsyncd knows, by file name. */
#define SECRET_DB_PASSWORD		"db-password"
#define SECRET_QSTASH_TOKEN		"qstash-token"
#define SECRET_QSTASH_CURRENT_KEY	"qstash-current-signing-key"
#define SECRET_QSTASH_NEXT_KEY		"qstash-next-signing-key"
#define SECRET_JWT_SECRET		"jwt-secret"
#define SECRET_SMTP_PASSWORD		"smtp-password"
#define SECRET_POSTHOG_KEY		"posthog-key"
#define SECRET_VAPI_KEY			"vapi-key"

/* Those names, NULL-terminated, for vetsyncd --check-config. */
extern const char *const secret_names[];

/*
 * Read $CREDENTIALS_DIRECTORY/<name>; name is [a-z0-9_-], 1 to
 * SECRET_NAME_MAX bytes.  On success *ret_secret is a new buffer holding
 * the secret (NUL-terminated after len; the secret itself may hold any
 * byte).  Returns -EINVAL (bad name), -ENOENT ($CREDENTIALS_DIRECTORY unset
 * or no such file), -EPERM (symbolic link, not a regular file, readable by
 * group or others), -EFBIG (too large), -ENODATA (empty) or another -errno;
 * then a message goes to err (errsz bytes; SECRET_ERR_MAX is enough) and
 * *ret_secret is left alone.
 */
int secret_read(const char *name, struct buf *ret_secret, char *err,
    size_t errsz);

/*
 * The master key with id key_id ([A-Za-z0-9_-], 1 to SECRET_NAME_MAX
 * bytes): $CREDENTIALS_DIRECTORY/encryption-key-<id> if there is one, else
 * the environment variable ENCRYPTION_KEY_<id> (the PRD's deployments set
 * those).  A file that exists but is refused is an error; the environment
 * is not consulted then.  Returns as secret_read(); -ENOENT when neither
 * exists.
 */
int secret_encryption_key(const char *key_id, struct buf *ret_secret,
    char *err, size_t errsz);

/*
 * True if $CREDENTIALS_DIRECTORY/<name> exists as a regular file (not
 * following a symbolic link).  Reads nothing; says nothing about whether
 * secret_read() would accept it.
 */
bool secret_exists(const char *name);

/* True if name is a valid secret name ([a-z0-9_-], not empty, bounded). */
bool secret_name_valid(const char *name);

#endif
