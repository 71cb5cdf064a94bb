/*
 * Upstash-Signature, checked the way qstash-js's Receiver does it, with
 * two deliberate differences: alg is pinned to HS256 (the header is read
 * before anything else, so "none" or an RSA alg never reaches a key), and
 * every claim QStash sets is required rather than optional.  The payload
 * is parsed only once a signature matched.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/base64.h"
#include "common/sha256.h"

#include "supervisor/qstash_verify.h"

#define HS256_LEN	32
/* A decoded JWT part: the header and payload are a few hundred bytes. */
#define PART_MAX	BASE64URL_DECODED_MAX(QSTASH_SIGNATURE_MAX)

static int
fail(char *reason, size_t size, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(char *reason, size_t size, int r, const char *fmt, ...)
{
	va_list ap;

	if (size > 0) {
		va_start(ap, fmt);
		vsnprintf(reason, size, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* Decode one part into a NUL-terminated buffer of PART_MAX + 1 bytes. */
static int
part(const char *s, size_t len, char *out, size_t *ret_len)
{
	size_t n;

	if (len == 0 || base64url_decode(s, len, out, PART_MAX, &n) != 0)
		return -EBADMSG;
	out[n] = '\0';
	*ret_len = n;
	return 0;
}

static bool
hs256_matches(const char *key, const char *signed_part, size_t len,
    const unsigned char *sig)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	bool ok;

	if (key == NULL || *key == '\0')
		return false;
	if (HMAC(EVP_sha256(), key, (int)strlen(key),
	    (const unsigned char *)signed_part, len, mac, &maclen) == NULL)
		return false;
	ok = maclen == HS256_LEN && CRYPTO_memcmp(mac, sig, HS256_LEN) == 0;
	OPENSSL_cleanse(mac, sizeof(mac));
	return ok;
}

static int
number_claim(json_t *claims, const char *name, int64_t *ret)
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

static size_t
unpadded_len(const char *s)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == '=')
		n--;
	return n;
}

static int
check_claims(const struct qstash_verify_args *a, json_t *claims,
    const void *body, size_t len, char *reason, size_t rsz)
{
	static const char *const strings[] = { "iss", "sub", "jti", "body" };
	static const char *const numbers[3] = { "exp", "nbf", "iat" };
	unsigned char digest[SHA256_DIGEST_LEN];
	struct sha256 ctx;
	char want[BASE64URL_LEN(SHA256_DIGEST_LEN) + 1];
	const char *got;
	int64_t t[3], exp, nbf;
	size_t i, n;

	if (!json_is_object(claims))
		return fail(reason, rsz, -EBADMSG, "signature: payload is not "
		    "a JSON object");
	for (i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		if (!json_is_string(json_object_get(claims, strings[i])))
			return fail(reason, rsz, -EBADMSG, "signature: claim "
			    "'%s' missing or not a string", strings[i]);
	for (i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++)
		if (number_claim(claims, numbers[i], &t[i]) != 0)
			return fail(reason, rsz, -EBADMSG, "signature: claim "
			    "'%s' missing or not a number", numbers[i]);
	exp = t[0];
	nbf = t[1];
	if (strcmp(json_string_value(json_object_get(claims, "iss")),
	    "Upstash") != 0)
		return fail(reason, rsz, -EPERM, "signature: iss is not "
		    "\"Upstash\"");
	if (a->now >= exp + a->tolerance)
		return fail(reason, rsz, -ETIME, "signature: expired %lld s "
		    "ago", (long long)(a->now - exp));
	if (a->now + a->tolerance < nbf)
		return fail(reason, rsz, -ETIME, "signature: not yet valid "
		    "(nbf is %lld s ahead)", (long long)(nbf - a->now));
	if (a->url != NULL && strcmp(json_string_value(json_object_get(claims,
	    "sub")), a->url) != 0)
		return fail(reason, rsz, -EPERM, "signature: sub is not the "
		    "expected URL");

	sha256_init(&ctx);
	sha256_update(&ctx, body, len);
	sha256_final(&ctx, digest);
	n = base64url_encode(digest, sizeof(digest), want);
	got = json_string_value(json_object_get(claims, "body"));
	if (unpadded_len(got) != n || memcmp(got, want, n) != 0)
		return fail(reason, rsz, -EPERM, "signature: body hash "
		    "mismatch");
	return 0;
}

int
qstash_verify(const struct qstash_verify_args *a, const char *sig,
    const void *body, size_t len, char *reason, size_t rsz)
{
	char header[PART_MAX + 1], payload[PART_MAX + 1];
	unsigned char mac[PART_MAX + 1];
	const char *dot1, *dot2, *alg, *typ;
	json_t *h = NULL, *claims = NULL;
	json_error_t jerr;
	size_t siglen, hlen, plen, maclen;
	int r;

	if (a == NULL || a->current_key == NULL || *a->current_key == '\0')
		return fail(reason, rsz, -EINVAL, "signature: no current "
		    "signing key configured");
	if (sig == NULL || *sig == '\0')
		return fail(reason, rsz, -EBADMSG, "signature: header missing "
		    "or empty");
	siglen = strnlen(sig, QSTASH_SIGNATURE_MAX + 1);
	if (siglen > QSTASH_SIGNATURE_MAX)
		return fail(reason, rsz, -EMSGSIZE, "signature: header over "
		    "the %d byte limit", QSTASH_SIGNATURE_MAX);
	if ((dot1 = strchr(sig, '.')) == NULL ||
	    (dot2 = strchr(dot1 + 1, '.')) == NULL ||
	    strchr(dot2 + 1, '.') != NULL)
		return fail(reason, rsz, -EBADMSG, "signature: not a compact "
		    "JWT (three dot-separated parts)");
	if (part(sig, (size_t)(dot1 - sig), header, &hlen) != 0 ||
	    part(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload, &plen) != 0)
		return fail(reason, rsz, -EBADMSG, "signature: header or "
		    "payload is not base64url");
	if (base64url_decode(dot2 + 1, siglen - (size_t)(dot2 + 1 - sig), mac,
	    sizeof(mac), &maclen) != 0)
		return fail(reason, rsz, -EBADMSG, "signature: signature part "
		    "is not base64url");

	h = json_loadb(header, hlen, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(h)) {
		r = fail(reason, rsz, -EBADMSG, "signature: JWT header is not "
		    "a JSON object");
		goto out;
	}
	alg = json_string_value(json_object_get(h, "alg"));
	typ = json_string_value(json_object_get(h, "typ"));
	if (alg == NULL || strcmp(alg, "HS256") != 0) {
		r = fail(reason, rsz, -EPROTO, "signature: alg is not HS256");
		goto out;
	}
	if (json_object_get(h, "typ") != NULL &&
	    (typ == NULL || strcmp(typ, "JWT") != 0)) {
		r = fail(reason, rsz, -EBADMSG, "signature: typ is not JWT");
		goto out;
	}

	/* Current key, then next: rolling makes the next key current. */
	if (maclen != HS256_LEN ||
	    (!hs256_matches(a->current_key, sig, (size_t)(dot2 - sig), mac) &&
	    !hs256_matches(a->next_key, sig, (size_t)(dot2 - sig), mac))) {
		r = fail(reason, rsz, -EACCES, "signature: does not match the "
		    "current or the next signing key");
		goto out;
	}

	claims = json_loadb(payload, plen, JSON_REJECT_DUPLICATES, &jerr);
	r = check_claims(a, claims, body, len, reason, rsz);
out:
	json_decref(h);
	json_decref(claims);
	return r;
}
