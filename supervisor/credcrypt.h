/*
 * Clinic credentials encrypted at rest, in the format the product's
 * TypeScript AESEncryption writes (PRD §6.2, DESIGN §7), so that rows it
 * wrote decrypt here and rows written here decrypt there.
 *
 * The stored text is the JSON of EncryptedData:
 *	{"encrypted":"<hex>","iv":"<hex>","authTag":"<hex>","keyId":"<id>"}
 * AES-256-GCM with a 16-byte IV (passed to GCM as is, as Node does) and a
 * 16-byte tag; the key is PBKDF2-HMAC-SHA256(secret, "idexx-salt", 100000
 * iterations, 32 bytes), the secret being the master key of that id from
 * secret_encryption_key() (supervisor/secrets.h).  Plaintext is UTF-8
 * without NUL bytes, at most CREDCRYPT_PLAIN_MAX bytes.
 *
 * A struct credcrypt caches derived keys by key id in memory that is
 * locked (mlock) where the limits allow, left out of core dumps and wiped
 * in a forked child (where every call then fails with -EPERM: make a new
 * cache there); a key is derived once per id, never per row.  It is not
 * thread-safe: one owner at a time.
 *
 * Errors are a negative errno and a message in err (errsz bytes;
 * CREDCRYPT_ERR_MAX is enough) that names the key id or the field at
 * fault, never a secret, a key or any plaintext.
 */
#ifndef VS_SUPERVISOR_CREDCRYPT_H
#define VS_SUPERVISOR_CREDCRYPT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"

#define CREDCRYPT_ERR_MAX	256
#define CREDCRYPT_PLAIN_MAX	4096	/* bytes of plaintext, of ciphertext */
#define CREDCRYPT_KEYS_MAX	32	/* key ids cached at once */
#define CREDCRYPT_KEY_ID_MAX	64	/* bytes in a key id */
#define CREDCRYPT_JSON_MAX	16384	/* bytes of stored text, at most */

struct credcrypt;	/* a cache of derived keys by key id */

/* A new, empty cache.  0 or a negative errno (-ENOMEM). */
int credcrypt_new(struct credcrypt **ret);

/* Wipes every cached key and frees.  NULL is ok. */
void credcrypt_free(struct credcrypt *);

/*
 * Derive (once) and cache the key of key_id from secret_encryption_key()
 * ($CREDENTIALS_DIRECTORY/encryption-key-<id> or ENCRYPTION_KEY_<id>); the
 * secret is wiped right after derivation.  0 (also when already cached),
 * -ENOENT (no such key), -EINVAL (bad id: not [A-Za-z0-9_-]{1,64}),
 * -ENOSPC (CREDCRYPT_KEYS_MAX ids cached) or another -errno from
 * secret_encryption_key() (-EPERM for a secret file others may read);
 * err names the key id, never the secret.
 */
int credcrypt_load_key(struct credcrypt *, const char *key_id, char *err,
    size_t errsz);

/*
 * Encrypt len bytes of UTF-8 (no NUL, at most CREDCRYPT_PLAIN_MAX) under
 * key_id (loaded on demand) with a fresh random IV.  On success
 * *ret_json is malloc'd EncryptedData JSON text the caller frees.  Errors
 * as credcrypt_load_key(), and -EINVAL for plaintext that is not UTF-8,
 * -EMSGSIZE for plaintext too long, -EIO when OpenSSL fails.
 */
int credcrypt_encrypt(struct credcrypt *, const char *key_id,
    const void *plain, size_t len, char **ret_json, char *err, size_t errsz);

/*
 * Decrypt stored text.  On success ret_plain (a new buffer, NUL-terminated
 * after len) holds the plaintext; the caller wipes and frees it with
 * buf_release_secret().  Any tampering (ciphertext, IV, tag, keyId) or a
 * wrong key gives -EBADMSG; a key id with no key -ENOENT; malformed JSON
 * or hex, a missing, unknown or repeated field, wrong lengths, sizes over
 * the limits (CREDCRYPT_JSON_MAX bytes of text, CREDCRYPT_PLAIN_MAX of
 * ciphertext) or plaintext that is not UTF-8 without NUL -EINVAL.
 * On any error ret_plain is left alone: no partial plaintext ever reaches
 * it (decryption happens in the locked scratch area and is copied out
 * only once the tag has been verified).  ret_plain itself is ordinary
 * heap memory, not locked: release it as soon as it has been used.
 */
int credcrypt_decrypt(struct credcrypt *, const char *json,
    struct buf *ret_plain, char *err, size_t errsz);

/*
 * Re-encrypt stored text under to_key_id with a fresh IV (key rotation),
 * the plaintext never leaving the locked pages.  On success *ret_json is
 * malloc'd EncryptedData JSON text the caller frees.  Errors as
 * credcrypt_load_key() for to_key_id (checked first), then as
 * credcrypt_decrypt() for json; *ret_json is left alone.
 */
int credcrypt_reencrypt(struct credcrypt *, const char *json,
    const char *to_key_id, char **ret_json, char *err, size_t errsz);

/*
 * The keyId of stored text, without decrypting, into ret (retsz bytes;
 * CREDCRYPT_KEY_ID_MAX + 1 is enough).  The whole text is checked as
 * credcrypt_decrypt() checks it before decrypting.  0; -EINVAL when
 * malformed, -ERANGE when ret is too small; then ret holds "".
 */
int credcrypt_key_id(const char *json, char *ret, size_t retsz);

/* True if key_id is [A-Za-z0-9_-], 1 to CREDCRYPT_KEY_ID_MAX bytes. */
bool credcrypt_key_id_valid(const char *key_id);

/*
 * How many keys this cache has derived since it was made: a test's proof
 * that keys are derived once per id, not once per row.
 */
unsigned long credcrypt_derivations(const struct credcrypt *);

/* True if the key cache is locked in memory (mlock succeeded). */
bool credcrypt_locked(const struct credcrypt *);

#endif
