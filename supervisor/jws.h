/*
 * The JSON Web Signature core (RFC 7515, compact serialization) that
 * jwt.c (Supabase access tokens) and qstash_verify.c (Upstash-Signature)
 * share, and the JSON Web Key sets (RFC 7517) Supabase serves for its
 * asymmetric keys.
 *
 * A token is checked in a fixed order: jws_decode() splits it, decodes the
 * three parts (base64url, the canonical spelling only) and the header
 * (a JSON object, duplicate names refused); jws_check_alg() pins alg to
 * the caller's allow-list before any key is touched; then jws_hs256_ok()
 * (a secret, compared in constant time) or jws_verify() (an RSA or P-256
 * key from a set) decides.  The payload is returned as bytes: the caller
 * parses it only once a signature matched.
 *
 * Algorithms: HS256, RS256 (RSASSA-PKCS1-v1_5 with SHA-256, keys of 2048
 * to 8192 bits) and ES256 (ECDSA on P-256 with SHA-256, the signature the
 * raw 64 bytes r || s).  "none", every other alg, a header with "crit", a
 * key of the wrong type for alg and a signature of the wrong length are
 * refused, each with its reason.  An HS256 token is never checked against
 * a key of a set (the alg confusion attack): only against the secret.
 *
 * No I/O and no logging.  Reasons start with the caller's word ("token",
 * "signature"), never quote the token, a key or text from either beyond
 * the names of the algorithms we know, and fit in JWS_REASON_MAX bytes.
 */
#ifndef VS_SUPERVISOR_JWS_H
#define VS_SUPERVISOR_JWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define JWS_REASON_MAX	160	/* a reason buffer that never truncates */
#define JWS_KID_MAX	128	/* bytes of a key id */
#define JWKS_DOC_MAX	(64 * 1024)	/* bytes of a JWKS document */
#define JWKS_KEYS_MAX	32	/* keys kept from one document */

/* An allow-list is a bitwise or of these. */
enum jws_alg {
	JWS_HS256 = 0x1,
	JWS_RS256 = 0x2,
	JWS_ES256 = 0x4,
};

/* A decoded token; jws_release() frees what it holds. */
struct jws {
	json_t		*header;	/* the header object */
	char		*payload;	/* decoded, NUL-terminated after len */
	size_t		 payload_len;
	unsigned char	*sig;
	size_t		 sig_len;
	const char	*signed_part;	/* "header.payload", in the token */
	size_t		 signed_len;
	enum jws_alg	 alg;		/* 0 until jws_check_alg() */
	const char	*kid;		/* in header; NULL: none */
};

/* A verification key of a set (struct jws_keys); owned by the set. */
struct jws_key;
struct jws_keys;

/*
 * Write fmt into reason (size bytes; size 0: nothing is written) and
 * return r: the one way every reason in jws, jwt and qstash_verify is set.
 */
int jws_fail(char *reason, size_t size, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Split token (at most max bytes) and decode its parts into *ret, which
 * the caller releases with jws_release() on success.  Returns 0, or:
 *   -EMSGSIZE  longer than max
 *   -EBADMSG   not three non-empty dot-separated parts (the signature may
 *              be empty), a part not base64url, a header that is not a
 *              JSON object
 * what ("token") starts every reason.
 */
int jws_decode(const char *token, size_t max, const char *what,
    struct jws *ret, char *reason, size_t reasonsz);
void jws_release(struct jws *);

/*
 * Pin the header's alg to allowed (enum jws_alg bits) and read kid.
 * Returns 0 and sets j->alg and j->kid, or:
 *   -EBADMSG   alg missing or not a string, kid not a string of 1 to
 *              JWS_KID_MAX printable characters, a "crit" header
 *   -EPROTO    alg is "none" or not in allowed (the reason names it when
 *              it is one we know, else says "(other)")
 */
int jws_check_alg(struct jws *j, unsigned allowed, const char *what,
    char *reason, size_t reasonsz);

/* Whether j (alg HS256) carries HMAC-SHA256(key) (constant time). */
bool jws_hs256_ok(const struct jws *j, const void *key, size_t keylen);

/*
 * Check j's signature (alg RS256 or ES256) with k.  Returns 0, or:
 *   -EPROTO    k is not a key for j's alg (an EC key for RS256, ...)
 *   -EACCES    the signature has the wrong length or does not match
 */
int jws_verify(const struct jws *j, const struct jws_key *k,
    const char *what, char *reason, size_t reasonsz);

/*
 * A number claim of payload object claims (an integer, or a real that
 * fits): 0, or -EBADMSG when missing or of another type.
 */
int jws_claim_number(json_t *claims, const char *name, int64_t *ret);

/*
 * Called for each key of a document jws_keys_parse() cannot use, with the
 * key's index and why (a static string, no text from the document in it).
 */
typedef void jws_skip_fn(size_t index, const char *why, void *arg);

/*
 * Parse a JWKS document ({"keys": [...]}: RSA keys with n and e, EC keys
 * on P-256 with x and y, each with a kid; use "sig" and alg RS256 or
 * ES256 when given) into a new set in *ret (free with jws_keys_free()).
 * Keys we cannot use are skipped and reported to skip (may be NULL): an
 * unknown kty, curve or alg, use other than "sig", key_ops without
 * "verify", private members, an RSA key under 2048 bits, a point off the
 * curve, no kid or a kid seen before, past JWKS_KEYS_MAX.  Returns 0, or
 * a negative errno with a message in err:
 *   -EMSGSIZE  the document is over JWKS_DOC_MAX bytes
 *   -EBADMSG   not a JSON object with a "keys" array
 *   -ENOKEY    no key in it could be used
 */
int jws_keys_parse(const char *doc, size_t len, jws_skip_fn *skip,
    void *arg, struct jws_keys **ret, char *err, size_t errsz);
/* A new set with no key (free with jws_keys_free()). */
struct jws_keys *jws_keys_new(void);
void jws_keys_free(struct jws_keys *);
size_t jws_keys_count(const struct jws_keys *);
/* Whether a and b hold the same keys by the same kids, in order. */
bool jws_keys_same(const struct jws_keys *a, const struct jws_keys *b);
/* The key with that kid, or NULL. */
const struct jws_key *jws_keys_find(const struct jws_keys *,
    const char *kid);
/* The alg (JWS_RS256 or JWS_ES256) a key serves. */
enum jws_alg jws_key_alg(const struct jws_key *);

#endif
