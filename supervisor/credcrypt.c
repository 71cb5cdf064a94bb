/*
 * Credentials at rest (credcrypt.h): AES-256-GCM through OpenSSL's EVP
 * interface, in the byte-for-byte format of the PRD's TypeScript
 * AESEncryption.  Two quirks are deliberate because that code has them:
 * the IV is 16 bytes and goes to GCM as is (GHASH derives the counter from
 * it, unlike the 12-byte fast path), and the PBKDF2 salt is the constant
 * "idexx-salt".
 *
 * Derived keys and the scratch area that plaintext is decrypted into live
 * in one anonymous mapping that is mlock'ed when RLIMIT_MEMLOCK allows,
 * excluded from core dumps (MADV_DONTDUMP) and zeroed in a forked child
 * (MADV_WIPEONFORK).  Plaintext is copied out of the scratch area only
 * after the tag has been verified, so a caller never sees bytes of a
 * forgery.  Stored text is checked strictly, field by field, before any
 * key is touched; messages name the field, never its bytes.
 */
#include <sys/mman.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/utf8.h"
#include "common/xmalloc.h"

#include "supervisor/credcrypt.h"
#include "supervisor/secrets.h"

#define CREDCRYPT_KEY_LEN	32
#define CREDCRYPT_IV_LEN	16
#define CREDCRYPT_TAG_LEN	16
#define CREDCRYPT_SALT		"idexx-salt"
#define CREDCRYPT_ITERATIONS	100000

#define CREDCRYPT_ID_CHARS	"ABCDEFGHIJKLMNOPQRSTUVWXYZ" \
	"abcdefghijklmnopqrstuvwxyz0123456789_-"
#define CREDCRYPT_ID_RULE \
	"allowed: A-Z, a-z, 0-9, '_' and '-', 1 to 64 bytes"

struct credcrypt_slot {
	char id[CREDCRYPT_KEY_ID_MAX + 1];
	unsigned char key[CREDCRYPT_KEY_LEN];
};

/*
 * The locked pages: everything secret this module holds.  armed is set
 * when they are mapped; reading 0 means a fork wiped them.
 */
struct credcrypt_pages {
	unsigned char armed;
	unsigned char scratch[CREDCRYPT_PLAIN_MAX + CREDCRYPT_TAG_LEN];
	struct credcrypt_slot slots[CREDCRYPT_KEYS_MAX];
};

struct credcrypt {
	struct credcrypt_pages *pages;
	size_t pagesz;		/* bytes mapped */
	size_t nkeys;
	unsigned long derivations;
	bool locked;
};

/* Stored text, checked and decoded; nothing in it is secret. */
struct credcrypt_stored {
	char key_id[CREDCRYPT_KEY_ID_MAX + 1];
	unsigned char iv[CREDCRYPT_IV_LEN];
	unsigned char tag[CREDCRYPT_TAG_LEN];
	unsigned char ct[CREDCRYPT_PLAIN_MAX];
	size_t ctlen;
};

bool
credcrypt_key_id_valid(const char *id)
{
	size_t len;

	if (id == NULL)
		return false;
	len = strlen(id);
	return len > 0 && len <= CREDCRYPT_KEY_ID_MAX &&
	    id[strspn(id, CREDCRYPT_ID_CHARS)] == '\0';
}

int
credcrypt_new(struct credcrypt **ret)
{
	struct credcrypt *cc;
	long page = sysconf(_SC_PAGESIZE);
	size_t sz;
	void *p;

	if (page <= 0)
		page = 4096;
	sz = (sizeof(struct credcrypt_pages) + (size_t)page - 1) /
	    (size_t)page * (size_t)page;
	p = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	cc = xcalloc(1, sizeof(*cc));
	cc->pages = p;
	cc->pages->armed = 1;
	cc->pagesz = sz;
	/* Where possible: an unprivileged RLIMIT_MEMLOCK may refuse. */
	cc->locked = mlock(p, sz) == 0;
	if (!cc->locked)
		log_debug("credcrypt: key cache not locked in memory: %s",
		    strerror(errno));
	if (madvise(p, sz, MADV_DONTDUMP) < 0)
		log_debug("credcrypt: MADV_DONTDUMP: %s", strerror(errno));
#ifdef MADV_WIPEONFORK
	if (madvise(p, sz, MADV_WIPEONFORK) < 0)
		log_debug("credcrypt: MADV_WIPEONFORK: %s", strerror(errno));
#endif
	*ret = cc;
	return 0;
}

void
credcrypt_free(struct credcrypt *cc)
{
	if (cc == NULL)
		return;
	if (cc->pages != NULL) {
		OPENSSL_cleanse(cc->pages, cc->pagesz);
		if (cc->locked)
			munlock(cc->pages, cc->pagesz);
		munmap(cc->pages, cc->pagesz);
	}
	free(cc);
}

unsigned long
credcrypt_derivations(const struct credcrypt *cc)
{
	return cc->derivations;
}

bool
credcrypt_locked(const struct credcrypt *cc)
{
	return cc->locked;
}

static struct credcrypt_slot *
credcrypt_find(struct credcrypt *cc, const char *key_id)
{
	size_t i;

	for (i = 0; i < cc->nkeys; i++)
		if (strcmp(cc->pages->slots[i].id, key_id) == 0)
			return &cc->pages->slots[i];
	return NULL;
}

static int
credcrypt_bad_id(const char *key_id, char *err, size_t errsz)
{
	snprintf(err, errsz, "encryption key id '%s': not valid; "
	    CREDCRYPT_ID_RULE, key_id == NULL ? "(null)" : log_q(key_id));
	return -EINVAL;
}

/* The slot of key_id, deriving its key first if it is not cached. */
static int
credcrypt_slot(struct credcrypt *cc, const char *key_id,
    struct credcrypt_slot **ret, char *err, size_t errsz)
{
	struct credcrypt_slot *slot;
	struct buf secret;
	char serr[SECRET_ERR_MAX];
	int r;

	if (!credcrypt_key_id_valid(key_id))
		return credcrypt_bad_id(key_id, err, errsz);
	if (!cc->pages->armed) {
		snprintf(err, errsz, "encryption key '%s': the key cache was "
		    "wiped when this process was forked; make a new one",
		    key_id);
		return -EPERM;
	}
	if ((slot = credcrypt_find(cc, key_id)) != NULL) {
		*ret = slot;
		return 0;
	}
	if (cc->nkeys == CREDCRYPT_KEYS_MAX) {
		snprintf(err, errsz, "encryption key '%s': %d key ids are "
		    "cached already, the most there may be", key_id,
		    CREDCRYPT_KEYS_MAX);
		return -ENOSPC;
	}
	buf_init(&secret, SECRET_SIZE_MAX);
	r = secret_encryption_key(key_id, &secret, serr, sizeof(serr));
	if (r < 0) {
		/* secrets.c names the file or variable, never the content. */
		snprintf(err, errsz, "%s", serr);
		return r;
	}
	slot = &cc->pages->slots[cc->nkeys];
	if (PKCS5_PBKDF2_HMAC(secret.data, (int)secret.len,
	    (const unsigned char *)CREDCRYPT_SALT, sizeof(CREDCRYPT_SALT) - 1,
	    CREDCRYPT_ITERATIONS, EVP_sha256(), CREDCRYPT_KEY_LEN,
	    slot->key) != 1) {
		buf_release_secret(&secret);
		OPENSSL_cleanse(slot->key, sizeof(slot->key));
		snprintf(err, errsz, "encryption key '%s': key derivation "
		    "failed in OpenSSL", key_id);
		return -EIO;
	}
	buf_release_secret(&secret);
	memcpy(slot->id, key_id, strlen(key_id) + 1);
	cc->nkeys++;
	cc->derivations++;
	*ret = slot;
	return 0;
}

int
credcrypt_load_key(struct credcrypt *cc, const char *key_id, char *err,
    size_t errsz)
{
	struct credcrypt_slot *slot;

	return credcrypt_slot(cc, key_id, &slot, err, errsz);
}

static void
credcrypt_hex(char *dst, const unsigned char *src, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		dst[2 * i] = digits[src[i] >> 4];
		dst[2 * i + 1] = digits[src[i] & 0xf];
	}
	dst[2 * n] = '\0';
}

int
credcrypt_encrypt(struct credcrypt *cc, const char *key_id, const void *plain,
    size_t len, char **ret_json, char *err, size_t errsz)
{
	struct credcrypt_slot *slot;
	EVP_CIPHER_CTX *ctx = NULL;
	unsigned char iv[CREDCRYPT_IV_LEN], tag[CREDCRYPT_TAG_LEN];
	unsigned char ct[CREDCRYPT_PLAIN_MAX];
	char ivhex[2 * CREDCRYPT_IV_LEN + 1], taghex[2 * CREDCRYPT_TAG_LEN + 1];
	char *cthex = NULL;
	int outl = 0, finl = 0, r;

	if (!credcrypt_key_id_valid(key_id))
		return credcrypt_bad_id(key_id, err, errsz);
	if (len > CREDCRYPT_PLAIN_MAX) {
		snprintf(err, errsz, "encrypting under key '%s': plaintext of "
		    "%zu bytes is more than %d", key_id, len,
		    CREDCRYPT_PLAIN_MAX);
		return -EMSGSIZE;
	}
	if (len > 0 && (plain == NULL || !utf8_valid(plain, len))) {
		snprintf(err, errsz, "encrypting under key '%s': plaintext is "
		    "not UTF-8 without NUL bytes", key_id);
		return -EINVAL;
	}
	if ((r = credcrypt_slot(cc, key_id, &slot, err, errsz)) < 0)
		return r;
	if (RAND_bytes(iv, sizeof(iv)) != 1) {
		snprintf(err, errsz, "encrypting under key '%s': no random "
		    "bytes for an IV", key_id);
		return -EIO;
	}
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, sizeof(iv),
	    NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, slot->key, iv) != 1 ||
	    (len > 0 && EVP_EncryptUpdate(ctx, ct, &outl, plain,
	    (int)len) != 1) ||
	    EVP_EncryptFinal_ex(ctx, ct + outl, &finl) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, sizeof(tag),
	    tag) != 1 || (size_t)outl + (size_t)finl != len) {
		snprintf(err, errsz, "encrypting under key '%s': AES-256-GCM "
		    "failed in OpenSSL", key_id);
		r = -EIO;
		goto out;
	}
	cthex = xmalloc(2 * len + 1);
	credcrypt_hex(cthex, ct, len);
	credcrypt_hex(ivhex, iv, sizeof(iv));
	credcrypt_hex(taghex, tag, sizeof(tag));
	/* The member order of JSON.stringify() on the PRD's EncryptedData. */
	*ret_json = xasprintf("{\"encrypted\":\"%s\",\"iv\":\"%s\","
	    "\"authTag\":\"%s\",\"keyId\":\"%s\"}", cthex, ivhex, taghex,
	    key_id);
	r = 0;
out:
	free(cthex);
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

static int
credcrypt_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decode the hex of member name into dst: exactly want bytes, or (want 0)
 * at most max bytes.
 */
static int
credcrypt_unhex(const char *name, const char *s, size_t slen,
    unsigned char *dst, size_t want, size_t max, size_t *ret_len, char *err,
    size_t errsz)
{
	size_t i, n;
	int hi, lo;

	if (slen % 2 != 0) {
		snprintf(err, errsz, "stored credential: '%s' is not hex: an "
		    "odd number of digits (%zu)", name, slen);
		return -EINVAL;
	}
	n = slen / 2;
	if (want != 0 && n != want) {
		snprintf(err, errsz, "stored credential: '%s' is %zu bytes, "
		    "not %zu", name, n, want);
		return -EINVAL;
	}
	if (want == 0 && n > max) {
		snprintf(err, errsz, "stored credential: '%s' is %zu bytes, "
		    "more than %zu", name, n, max);
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		hi = credcrypt_hexval(s[2 * i]);
		lo = credcrypt_hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			snprintf(err, errsz, "stored credential: '%s' is not "
			    "hex: a non-hex character at offset %zu", name,
			    hi < 0 ? 2 * i : 2 * i + 1);
			return -EINVAL;
		}
		dst[i] = (unsigned char)(hi << 4 | lo);
	}
	*ret_len = n;
	return 0;
}

static const char *
credcrypt_json_error(const json_error_t *jerr)
{
	switch (json_error_code(jerr)) {
	case json_error_premature_end_of_input:
		return "it ends too early";
	case json_error_end_of_input_expected:
		return "junk after the object";
	case json_error_duplicate_key:
		return "a member appears twice";
	case json_error_invalid_utf8:
		return "not UTF-8";
	case json_error_null_character:
	case json_error_null_byte_in_key:
		return "a NUL character";
	default:
		return "a syntax error";
	}
}

/* The string member name of obj, with its length; -EINVAL if not one. */
static int
credcrypt_member(json_t *obj, const char *name, const char **ret,
    size_t *ret_len, char *err, size_t errsz)
{
	json_t *v = json_object_get(obj, name);

	if (v == NULL) {
		snprintf(err, errsz, "stored credential: no '%s' member", name);
		return -EINVAL;
	}
	if (!json_is_string(v)) {
		snprintf(err, errsz, "stored credential: '%s' is not a string",
		    name);
		return -EINVAL;
	}
	*ret = json_string_value(v);
	*ret_len = json_string_length(v);
	if (strlen(*ret) != *ret_len) {
		snprintf(err, errsz, "stored credential: '%s' holds a NUL "
		    "character", name);
		return -EINVAL;
	}
	return 0;
}

static int
credcrypt_parse(const char *text, struct credcrypt_stored *ret, char *err,
    size_t errsz)
{
	static const char *const names[] = {
		"encrypted", "iv", "authTag", "keyId",
	};
	json_t *obj = NULL, *v;
	json_error_t jerr;
	const char *key, *s[4];
	size_t n, len[4], i;
	int r = -EINVAL;

	if (text == NULL) {
		snprintf(err, errsz, "stored credential: none given");
		return -EINVAL;
	}
	if ((n = strnlen(text, CREDCRYPT_JSON_MAX + 1)) > CREDCRYPT_JSON_MAX) {
		snprintf(err, errsz, "stored credential: more than %d bytes",
		    CREDCRYPT_JSON_MAX);
		return -EINVAL;
	}
	obj = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
	if (obj == NULL) {
		/* jerr.text may quote the input: only say where and what. */
		snprintf(err, errsz, "stored credential: not valid JSON: %s "
		    "at line %d, column %d", credcrypt_json_error(&jerr),
		    jerr.line, jerr.column);
		return -EINVAL;
	}
	if (!json_is_object(obj)) {
		snprintf(err, errsz, "stored credential: not a JSON object");
		goto out;
	}
	json_object_foreach(obj, key, v) {
		for (i = 0; i < 4; i++)
			if (strcmp(key, names[i]) == 0)
				break;
		if (i == 4) {
			snprintf(err, errsz, "stored credential: unknown "
			    "member '%s'", log_q(key));
			goto out;
		}
	}
	for (i = 0; i < 4; i++)
		if ((r = credcrypt_member(obj, names[i], &s[i], &len[i], err,
		    errsz)) < 0)
			goto out;
	r = -EINVAL;
	if (!credcrypt_key_id_valid(s[3])) {
		snprintf(err, errsz, "stored credential: 'keyId' '%s' is not "
		    "a key id; " CREDCRYPT_ID_RULE, log_q(s[3]));
		goto out;
	}
	memcpy(ret->key_id, s[3], len[3] + 1);
	if ((r = credcrypt_unhex(names[0], s[0], len[0], ret->ct, 0,
	    sizeof(ret->ct), &ret->ctlen, err, errsz)) < 0 ||
	    (r = credcrypt_unhex(names[1], s[1], len[1], ret->iv,
	    sizeof(ret->iv), 0, &n, err, errsz)) < 0 ||
	    (r = credcrypt_unhex(names[2], s[2], len[2], ret->tag,
	    sizeof(ret->tag), 0, &n, err, errsz)) < 0)
		goto out;
	r = 0;
out:
	json_decref(obj);
	return r;
}

/*
 * Check and decrypt stored text into the locked scratch area; *ret_len
 * bytes of plaintext are there on success.  The caller wipes the scratch
 * area (credcrypt_wipe) whatever the outcome.
 */
static int
credcrypt_open(struct credcrypt *cc, const char *json, size_t *ret_len,
    char *err, size_t errsz)
{
	struct credcrypt_stored *st;
	struct credcrypt_slot *slot;
	EVP_CIPHER_CTX *ctx = NULL;
	unsigned char *plain = cc->pages->scratch;
	int outl = 0, finl = 0, r;

	st = xmalloc(sizeof(*st));
	if ((r = credcrypt_parse(json, st, err, errsz)) < 0)
		goto out;
	if ((r = credcrypt_slot(cc, st->key_id, &slot, err, errsz)) < 0)
		goto out;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, sizeof(st->iv),
	    NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, slot->key, st->iv) != 1 ||
	    (st->ctlen > 0 && EVP_DecryptUpdate(ctx, plain, &outl, st->ct,
	    (int)st->ctlen) != 1) ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, sizeof(st->tag),
	    st->tag) != 1) {
		snprintf(err, errsz, "stored credential under key '%s': "
		    "AES-256-GCM failed in OpenSSL", st->key_id);
		r = -EIO;
		goto out;
	}
	/* OpenSSL compares the tag in constant time. */
	if (EVP_DecryptFinal_ex(ctx, plain + outl, &finl) != 1 ||
	    (size_t)outl + (size_t)finl != st->ctlen) {
		snprintf(err, errsz, "stored credential under key '%s': "
		    "authentication failed (altered, or not encrypted with "
		    "this key)", st->key_id);
		r = -EBADMSG;
		goto out;
	}
	if (st->ctlen > 0 && !utf8_valid((const char *)plain, st->ctlen)) {
		snprintf(err, errsz, "stored credential under key '%s': the "
		    "plaintext is not UTF-8 without NUL bytes", st->key_id);
		r = -EINVAL;
		goto out;
	}
	*ret_len = st->ctlen;
	r = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	free(st);
	return r;
}

static void
credcrypt_wipe(struct credcrypt *cc)
{
	OPENSSL_cleanse(cc->pages->scratch, sizeof(cc->pages->scratch));
}

int
credcrypt_decrypt(struct credcrypt *cc, const char *json,
    struct buf *ret_plain, char *err, size_t errsz)
{
	struct buf out;
	size_t len;
	int r;

	if ((r = credcrypt_open(cc, json, &len, err, errsz)) == 0) {
		/* One allocation at full size: no copy left by growth. */
		buf_init(&out, 0);
		out.cap = len + 1;
		out.data = xmalloc(out.cap);
		memcpy(out.data, cc->pages->scratch, len);
		out.data[len] = '\0';
		out.len = len;
		*ret_plain = out;
	}
	credcrypt_wipe(cc);
	return r;
}

int
credcrypt_reencrypt(struct credcrypt *cc, const char *json,
    const char *to_key_id, char **ret_json, char *err, size_t errsz)
{
	size_t len;
	int r;

	/* The new key first: a missing one fails before any decryption. */
	if ((r = credcrypt_load_key(cc, to_key_id, err, errsz)) < 0)
		return r;
	if ((r = credcrypt_open(cc, json, &len, err, errsz)) == 0)
		r = credcrypt_encrypt(cc, to_key_id, cc->pages->scratch, len,
		    ret_json, err, errsz);
	credcrypt_wipe(cc);
	return r;
}

int
credcrypt_key_id(const char *json, char *ret, size_t retsz)
{
	struct credcrypt_stored *st;
	char err[CREDCRYPT_ERR_MAX];
	int r;

	if (retsz > 0)
		ret[0] = '\0';
	st = xmalloc(sizeof(*st));
	if ((r = credcrypt_parse(json, st, err, sizeof(err))) < 0)
		goto out;
	if (strlen(st->key_id) >= retsz) {
		r = -ERANGE;
		goto out;
	}
	memcpy(ret, st->key_id, strlen(st->key_id) + 1);
out:
	free(st);
	return r;
}
