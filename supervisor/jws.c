/*
 * JWS and JWKS (jws.h) on OpenSSL 3's EVP interface.  Public keys are built
 * from a JWK's members with EVP_PKEY_fromdata() and then checked with
 * EVP_PKEY_public_check(), so a point off P-256 or a degenerate RSA
 * modulus never becomes a key.  ES256's raw r || s is turned into the DER
 * ECDSA-Sig-Value EVP expects; r and s of zero or past the group order are
 * refused by the verification itself.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>

#include "common/base64.h"
#include "common/xmalloc.h"

#include "supervisor/jws.h"

#define HS256_LEN	32
#define ES256_HALF	32		/* bytes of r, of s, of x, of y */
#define RSA_BITS_MIN	2048
#define RSA_BITS_MAX	8192
#define RSA_E_MAX	8		/* bytes of an exponent */
/* A member of a JWK: n of an 8192-bit key is 1,366 characters. */
#define JWK_MEMBER_MAX	BASE64URL_LEN(RSA_BITS_MAX / 8)

struct jws_key {
	char		 kid[JWS_KID_MAX + 1];
	enum jws_alg	 alg;
	EVP_PKEY	*pkey;
};

struct jws_keys {
	struct jws_key	 keys[JWKS_KEYS_MAX];
	size_t		 n;
};

int
jws_fail(char *reason, size_t size, int r, const char *fmt, ...)
{
	va_list ap;

	if (size > 0 && reason != NULL) {
		va_start(ap, fmt);
		vsnprintf(reason, size, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* Decode len characters into a new NUL-terminated buffer. */
static int
decode_part(const char *s, size_t len, unsigned char **ret, size_t *ret_len)
{
	unsigned char *out = xmalloc(BASE64URL_DECODED_MAX(len) + 1);
	size_t n;

	if (base64url_decode(s, len, out, BASE64URL_DECODED_MAX(len),
	    &n) != 0) {
		free(out);
		return -EBADMSG;
	}
	out[n] = '\0';
	*ret = out;
	*ret_len = n;
	return 0;
}

int
jws_decode(const char *token, size_t max, const char *what, struct jws *ret,
    char *reason, size_t rsz)
{
	struct jws j = { 0 };
	unsigned char *header = NULL;
	const char *dot1, *dot2;
	json_error_t jerr;
	size_t len, hlen;
	int r;

	if (token == NULL || *token == '\0')
		return jws_fail(reason, rsz, -EBADMSG, "%s: missing or empty",
		    what);
	len = strnlen(token, max + 1);
	if (len > max)
		return jws_fail(reason, rsz, -EMSGSIZE, "%s: over the %zu "
		    "byte limit", what, max);
	if ((dot1 = strchr(token, '.')) == NULL ||
	    (dot2 = strchr(dot1 + 1, '.')) == NULL ||
	    strchr(dot2 + 1, '.') != NULL)
		return jws_fail(reason, rsz, -EBADMSG, "%s: not a compact JWT "
		    "(three dot-separated parts)", what);
	if (dot1 == token || dot2 == dot1 + 1 ||
	    decode_part(token, (size_t)(dot1 - token), &header, &hlen) != 0 ||
	    decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1),
	    (unsigned char **)&j.payload, &j.payload_len) != 0) {
		r = jws_fail(reason, rsz, -EBADMSG, "%s: header or payload is "
		    "not base64url", what);
		goto out;
	}
	if (decode_part(dot2 + 1, len - (size_t)(dot2 + 1 - token), &j.sig,
	    &j.sig_len) != 0) {
		r = jws_fail(reason, rsz, -EBADMSG, "%s: signature part is not "
		    "base64url", what);
		goto out;
	}
	j.header = json_loadb((const char *)header, hlen,
	    JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(j.header)) {
		r = jws_fail(reason, rsz, -EBADMSG, "%s: JWT header is not a "
		    "JSON object", what);
		goto out;
	}
	j.signed_part = token;
	j.signed_len = (size_t)(dot2 - token);
	*ret = j;
	memset(&j, 0, sizeof(j));
	r = 0;
out:
	free(header);
	jws_release(&j);
	return r;
}

void
jws_release(struct jws *j)
{
	if (j == NULL)
		return;
	json_decref(j->header);
	free(j->payload);
	free(j->sig);
	memset(j, 0, sizeof(*j));
}

static const struct {
	const char	*name;
	enum jws_alg	 alg;
} algs[] = {
	{ "HS256", JWS_HS256 },
	{ "RS256", JWS_RS256 },
	{ "ES256", JWS_ES256 },
};

static const char *
alg_name(enum jws_alg alg)
{
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (algs[i].alg == alg)
			return algs[i].name;
	return "(other)";
}

static bool
kid_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > JWS_KID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}

int
jws_check_alg(struct jws *j, unsigned allowed, const char *what,
    char *reason, size_t rsz)
{
	json_t *a = json_object_get(j->header, "alg");
	json_t *kid = json_object_get(j->header, "kid");
	enum jws_alg alg = 0;
	const char *s;

	if (!json_is_string(a))
		return jws_fail(reason, rsz, -EBADMSG, "%s: header has no alg",
		    what);
	s = json_string_value(a);
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (strcmp(s, algs[i].name) == 0)
			alg = algs[i].alg;
	if (strcmp(s, "none") == 0)
		return jws_fail(reason, rsz, -EPROTO, "%s: alg none is not "
		    "accepted", what);
	if ((alg & allowed) == 0)
		return jws_fail(reason, rsz, -EPROTO, "%s: alg %s is not "
		    "accepted", what, alg_name(alg));
	/* RFC 7515 §4.1.11: extensions we do not know must be refused. */
	if (json_object_get(j->header, "crit") != NULL)
		return jws_fail(reason, rsz, -EBADMSG, "%s: header has crit "
		    "extensions (none is supported)", what);
	if (kid != NULL && (!json_is_string(kid) ||
	    !kid_valid(json_string_value(kid))))
		return jws_fail(reason, rsz, -EBADMSG, "%s: kid is not a "
		    "string of 1 to %d printable characters", what,
		    JWS_KID_MAX);
	j->alg = alg;
	j->kid = kid != NULL ? json_string_value(kid) : NULL;
	return 0;
}

bool
jws_hs256_ok(const struct jws *j, const void *key, size_t keylen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	bool ok;

	if (key == NULL || keylen == 0 || keylen > INT32_MAX ||
	    j->alg != JWS_HS256 || j->sig_len != HS256_LEN)
		return false;
	if (HMAC(EVP_sha256(), key, (int)keylen,
	    (const unsigned char *)j->signed_part, j->signed_len, mac,
	    &maclen) == NULL)
		return false;
	ok = maclen == HS256_LEN &&
	    CRYPTO_memcmp(mac, j->sig, HS256_LEN) == 0;
	OPENSSL_cleanse(mac, sizeof(mac));
	return ok;
}

/* r || s into a DER ECDSA-Sig-Value (OPENSSL_free() it). */
static int
es256_der(const unsigned char *raw, unsigned char **ret, size_t *ret_len)
{
	ECDSA_SIG *sig = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(raw, ES256_HALF, NULL);
	BIGNUM *s = BN_bin2bn(raw + ES256_HALF, ES256_HALF, NULL);
	unsigned char *der = NULL;
	int n = -1;

	if (sig != NULL && r != NULL && s != NULL &&
	    ECDSA_SIG_set0(sig, r, s) == 1) {
		r = s = NULL;	/* the signature owns them */
		n = i2d_ECDSA_SIG(sig, &der);
	}
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	if (n <= 0)
		return -ENOMEM;
	*ret = der;
	*ret_len = (size_t)n;
	return 0;
}

int
jws_verify(const struct jws *j, const struct jws_key *k, const char *what,
    char *reason, size_t rsz)
{
	EVP_MD_CTX *md = NULL;
	unsigned char *der = NULL;
	const unsigned char *sig = j->sig;
	size_t siglen = j->sig_len, want;
	int r;

	if (j->alg != k->alg)
		return jws_fail(reason, rsz, -EPROTO, "%s: alg %s does not fit "
		    "the key of that kid (an %s key)", what, alg_name(j->alg),
		    k->alg == JWS_RS256 ? "RSA" : "EC");
	want = k->alg == JWS_ES256 ? 2 * ES256_HALF :
	    (size_t)EVP_PKEY_get_size(k->pkey);
	if (j->sig_len != want)
		return jws_fail(reason, rsz, -EACCES, "%s: %s signature of %zu "
		    "bytes, not %zu", what, alg_name(j->alg), j->sig_len, want);
	if (k->alg == JWS_ES256) {
		if (es256_der(j->sig, &der, &siglen) < 0) {
			r = jws_fail(reason, rsz, -EACCES, "%s: ES256 "
			    "signature cannot be read", what);
			goto out;
		}
		sig = der;
	}
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, k->pkey,
	    NULL) != 1 ||
	    EVP_DigestVerify(md, sig, siglen,
	    (const unsigned char *)j->signed_part, j->signed_len) != 1) {
		r = jws_fail(reason, rsz, -EACCES, "%s: signature does not "
		    "match", what);
		goto out;
	}
	r = 0;
out:
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	return r;
}

int
jws_claim_number(json_t *claims, const char *name, int64_t *ret)
{
	json_t *v = json_object_get(claims, name);

	if (json_is_integer(v))
		*ret = (int64_t)json_integer_value(v);
	else if (json_is_real(v) && json_real_value(v) > -9e18 &&
	    json_real_value(v) < 9e18)
		*ret = (int64_t)json_real_value(v);
	else
		return -EBADMSG;
	return 0;
}

/* --- JWKS ---------------------------------------------------------------- */

/* A base64url member of a JWK, decoded: 0, or -EBADMSG naming it in why. */
static int
member(json_t *jwk, const char *name, unsigned char *out, size_t outsz,
    size_t *ret_len, const char **why)
{
	const char *s = json_string_value(json_object_get(jwk, name));

	if (s == NULL || *s == '\0') {
		*why = "a member is missing or not a string";
		return -EBADMSG;
	}
	if (strlen(s) > JWK_MEMBER_MAX ||
	    base64url_decode(s, strlen(s), out, outsz, ret_len) != 0) {
		*why = "a member is not base64url of a fitting length";
		return -EBADMSG;
	}
	return 0;
}

static EVP_PKEY *
pkey_from(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY_CTX *check = NULL;
	EVP_PKEY *pkey = NULL;

	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		goto out;
	if ((check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL ||
	    EVP_PKEY_public_check(check) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
out:
	EVP_PKEY_CTX_free(check);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

static EVP_PKEY *
rsa_key(json_t *jwk, const char **why)
{
	unsigned char n[RSA_BITS_MAX / 8 + 1], e[RSA_E_MAX];
	size_t nlen, elen, skip = 0;
	OSSL_PARAM_BLD *bld = NULL;
	BIGNUM *bn = NULL, *be = NULL;
	EVP_PKEY *pkey = NULL;

	if (member(jwk, "n", n, sizeof(n), &nlen, why) < 0 ||
	    member(jwk, "e", e, sizeof(e), &elen, why) < 0)
		return NULL;
	while (skip < nlen && n[skip] == 0)
		skip++;
	if (nlen - skip < RSA_BITS_MIN / 8 || nlen - skip > RSA_BITS_MAX / 8) {
		*why = "an RSA modulus outside 2048 to 8192 bits";
		return NULL;
	}
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    (bn = BN_bin2bn(n + skip, (int)(nlen - skip), NULL)) == NULL ||
	    (be = BN_bin2bn(e, (int)elen, NULL)) == NULL ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) != 1)
		*why = "out of memory";
	else if (BN_num_bits(bn) < RSA_BITS_MIN || !BN_is_odd(be) ||
	    BN_is_one(be))
		*why = "an RSA key under 2048 bits or with a bad exponent";
	else if ((pkey = pkey_from("RSA", bld)) == NULL)
		*why = "an RSA key OpenSSL refuses";
	BN_free(bn);
	BN_free(be);
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

static EVP_PKEY *
ec_key(json_t *jwk, const char **why)
{
	unsigned char pub[1 + 2 * ES256_HALF];
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;
	size_t nx, ny;

	if (crv == NULL || strcmp(crv, "P-256") != 0) {
		*why = "an EC key on a curve other than P-256";
		return NULL;
	}
	pub[0] = POINT_CONVERSION_UNCOMPRESSED;
	if (member(jwk, "x", pub + 1, ES256_HALF, &nx, why) < 0 ||
	    member(jwk, "y", pub + 1 + ES256_HALF, ES256_HALF, &ny, why) < 0)
		return NULL;
	if (nx != ES256_HALF || ny != ES256_HALF) {
		*why = "an EC coordinate that is not 32 bytes";
		return NULL;
	}
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	    "prime256v1", 0) != 1 ||
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub,
	    sizeof(pub)) != 1)
		*why = "out of memory";
	else if ((pkey = pkey_from("EC", bld)) == NULL)
		*why = "an EC point that is not on P-256";
	OSSL_PARAM_BLD_free(bld);
	return pkey;
}

/* Whether jwk may sign: use "sig" and key_ops holding "verify", if given. */
static bool
for_signatures(json_t *jwk)
{
	json_t *use = json_object_get(jwk, "use");
	json_t *ops = json_object_get(jwk, "key_ops");
	json_t *v;
	size_t i;

	if (use != NULL && (!json_is_string(use) ||
	    strcmp(json_string_value(use), "sig") != 0))
		return false;
	if (ops == NULL)
		return true;
	json_array_foreach(ops, i, v)
		if (json_is_string(v) &&
		    strcmp(json_string_value(v), "verify") == 0)
			return true;
	return false;
}

/* One JWK into k; NULL, or why it cannot be used. */
static const char *
key_from(json_t *jwk, const struct jws_keys *set, struct jws_key *k)
{
	static const char *const private[] = { "d", "p", "q", "dp", "dq", "qi",
	    "oth", "k" };
	const char *kty, *kid, *alg, *why = NULL;

	if (!json_is_object(jwk))
		return "not a JSON object";
	kty = json_string_value(json_object_get(jwk, "kty"));
	kid = json_string_value(json_object_get(jwk, "kid"));
	alg = json_string_value(json_object_get(jwk, "alg"));
	if (kid == NULL || !kid_valid(kid))
		return "no kid of 1 to 128 printable characters";
	if (jws_keys_find(set, kid) != NULL)
		return "a kid seen before in the document";
	for (size_t i = 0; i < sizeof(private) / sizeof(private[0]); i++)
		if (json_object_get(jwk, private[i]) != NULL)
			return "private or symmetric key material (refused)";
	if (!for_signatures(jwk))
		return "not for signatures (use or key_ops)";
	if (kty != NULL && strcmp(kty, "RSA") == 0)
		k->alg = JWS_RS256;
	else if (kty != NULL && strcmp(kty, "EC") == 0)
		k->alg = JWS_ES256;
	else
		return "kty is not RSA or EC";
	if (json_object_get(jwk, "alg") != NULL &&
	    (alg == NULL || strcmp(alg, alg_name(k->alg)) != 0))
		return k->alg == JWS_RS256 ? "an RSA key for an alg other than "
		    "RS256" : "an EC key for an alg other than ES256";
	k->pkey = k->alg == JWS_RS256 ? rsa_key(jwk, &why) : ec_key(jwk, &why);
	ERR_clear_error();
	if (k->pkey == NULL)
		return why;
	snprintf(k->kid, sizeof(k->kid), "%s", kid);
	return NULL;
}

int
jws_keys_parse(const char *doc, size_t len, jws_skip_fn *skip, void *arg,
    struct jws_keys **ret, char *err, size_t errsz)
{
	struct jws_keys *set = NULL;
	json_error_t jerr;
	json_t *top = NULL, *keys, *jwk;
	const char *why;
	size_t i;
	int r;

	if (len > JWKS_DOC_MAX)
		return jws_fail(err, errsz, -EMSGSIZE, "jwks: document of %zu "
		    "bytes over the %d byte limit", len, JWKS_DOC_MAX);
	top = json_loadb(doc, len, JSON_REJECT_DUPLICATES, &jerr);
	keys = json_object_get(top, "keys");
	if (!json_is_object(top) || !json_is_array(keys)) {
		r = jws_fail(err, errsz, -EBADMSG, "jwks: not a JSON object "
		    "with a \"keys\" array");
		goto out;
	}
	set = jws_keys_new();
	json_array_foreach(keys, i, jwk) {
		if (set->n == JWKS_KEYS_MAX)
			why = "past the limit of 32 keys";
		else
			why = key_from(jwk, set, &set->keys[set->n]);
		if (why == NULL)
			set->n++;
		else if (skip != NULL)
			skip(i, why, arg);
	}
	if (set->n == 0) {
		r = jws_fail(err, errsz, -ENOKEY, "jwks: none of its %zu keys "
		    "is an RS256 or ES256 key we can use",
		    json_array_size(keys));
		goto out;
	}
	*ret = set;
	set = NULL;
	r = 0;
out:
	jws_keys_free(set);
	json_decref(top);
	return r;
}

struct jws_keys *
jws_keys_new(void)
{
	return xcalloc(1, sizeof(struct jws_keys));
}

void
jws_keys_free(struct jws_keys *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; i < set->n; i++)
		EVP_PKEY_free(set->keys[i].pkey);
	free(set);
}

size_t
jws_keys_count(const struct jws_keys *set)
{
	return set != NULL ? set->n : 0;
}

bool
jws_keys_same(const struct jws_keys *a, const struct jws_keys *b)
{
	if (jws_keys_count(a) != jws_keys_count(b))
		return false;
	for (size_t i = 0; i < jws_keys_count(a); i++)
		if (strcmp(a->keys[i].kid, b->keys[i].kid) != 0 ||
		    EVP_PKEY_eq(a->keys[i].pkey, b->keys[i].pkey) != 1)
			return false;
	return true;
}

const struct jws_key *
jws_keys_find(const struct jws_keys *set, const char *kid)
{
	if (set == NULL || kid == NULL)
		return NULL;
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->keys[i].kid, kid) == 0)
			return &set->keys[i];
	return NULL;
}

enum jws_alg
jws_key_alg(const struct jws_key *k)
{
	return k->alg;
}
