/*
 * Supabase access tokens (jwt.h).  The header is decoded and its alg
 * pinned to HS256 before the key is used; the payload is parsed only once
 * the signature matched, so nothing an attacker wrote is interpreted
 * before then beyond the header's two fields.
 */
#include <ctype.h>
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

#include "supervisor/jwt.h"

#define HS256_LEN	32
#define PART_MAX	BASE64URL_DECODED_MAX(JWT_TOKEN_MAX)

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

static bool
uuid_valid(const char *s)
{
	size_t i;

	if (strlen(s) != 36)
		return false;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
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

static bool
aud_matches(json_t *aud, const char *want)
{
	size_t i;
	json_t *v;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	if (!json_is_array(aud))
		return false;
	json_array_foreach(aud, i, v)
		if (json_is_string(v) &&
		    strcmp(json_string_value(v), want) == 0)
			return true;
	return false;
}

static int
check_claims(const struct jwt_expect *e, json_t *claims,
    struct jwt_claims *c, char *reason, size_t rsz)
{
	json_t *sub, *role, *iss, *meta;
	int64_t exp, nbf;
	bool api_key;

	if (!json_is_object(claims))
		return fail(reason, rsz, -EBADMSG, "token: payload is not a "
		    "JSON object");
	if (number_claim(claims, "exp", &exp) != 0)
		return fail(reason, rsz, -EBADMSG, "token: claim 'exp' missing "
		    "or not a number");
	if (json_object_get(claims, "nbf") != NULL &&
	    number_claim(claims, "nbf", &nbf) != 0)
		return fail(reason, rsz, -EBADMSG, "token: claim 'nbf' is not "
		    "a number");
	if (e->now >= exp + e->leeway)
		return fail(reason, rsz, -ETIME, "token: expired %lld s ago",
		    (long long)(e->now - exp));
	if (json_object_get(claims, "nbf") != NULL &&
	    e->now + e->leeway < nbf)
		return fail(reason, rsz, -ETIME, "token: not valid yet (nbf "
		    "is %lld s ahead)", (long long)(nbf - e->now));

	sub = json_object_get(claims, "sub");
	role = json_object_get(claims, "role");
	if (sub != NULL && !json_is_string(sub))
		return fail(reason, rsz, -EBADMSG, "token: claim 'sub' is not "
		    "a string");
	if (role != NULL && (!json_is_string(role) ||
	    strlen(json_string_value(role)) >= JWT_ROLE_MAX))
		return fail(reason, rsz, -EBADMSG, "token: claim 'role' is not "
		    "a short string");
	if (sub != NULL && !uuid_valid(json_string_value(sub)))
		return fail(reason, rsz, -EBADMSG, "token: claim 'sub' is not "
		    "a UUID");
	if (sub == NULL && e->require_sub)
		return fail(reason, rsz, -EBADMSG, "token: claim 'sub' "
		    "missing (not a user's token)");
	api_key = sub == NULL && role != NULL &&
	    strcmp(json_string_value(role), "service_role") == 0;

	if (!api_key) {
		if (!aud_matches(json_object_get(claims, "aud"), e->audience))
			return fail(reason, rsz, -EPERM, "token: aud is not "
			    "the expected audience");
		iss = json_object_get(claims, "iss");
		if (e->issuer != NULL && (!json_is_string(iss) ||
		    strcmp(json_string_value(iss), e->issuer) != 0))
			return fail(reason, rsz, -EPERM, "token: iss is not "
			    "the expected issuer");
	}

	memset(c, 0, sizeof(*c));
	if (sub != NULL) {
		const char *s = json_string_value(sub);

		for (size_t i = 0; i < 36; i++)
			c->sub[i] = (char)tolower((unsigned char)s[i]);
	}
	if (role != NULL)
		snprintf(c->role, sizeof(c->role), "%s",
		    json_string_value(role));
	meta = json_object_get(claims, "app_metadata");
	c->admin = strcmp(c->role, "service_role") == 0 ||
	    (json_is_object(meta) && json_is_string(json_object_get(meta,
	    "role")) && strcmp(json_string_value(json_object_get(meta,
	    "role")), "admin") == 0);
	c->exp = exp;
	return 0;
}

int
jwt_verify(const struct jwt_expect *e, const char *token,
    struct jwt_claims *ret, char *reason, size_t rsz)
{
	char header[PART_MAX + 1], payload[PART_MAX + 1];
	unsigned char sig[PART_MAX + 1], mac[EVP_MAX_MD_SIZE];
	const char *dot1, *dot2, *alg;
	json_t *h = NULL, *claims = NULL;
	struct jwt_claims c;
	json_error_t jerr;
	unsigned int maclen = 0;
	size_t len, hlen, plen, siglen;
	int r;

	if (e == NULL || e->key == NULL || e->keylen == 0 ||
	    e->audience == NULL)
		return fail(reason, rsz, -EINVAL, "token: no key or audience "
		    "configured");
	if (token == NULL || *token == '\0')
		return fail(reason, rsz, -EBADMSG, "token: missing or empty");
	len = strnlen(token, JWT_TOKEN_MAX + 1);
	if (len > JWT_TOKEN_MAX)
		return fail(reason, rsz, -EMSGSIZE, "token: over the %d byte "
		    "limit", JWT_TOKEN_MAX);
	if ((dot1 = strchr(token, '.')) == NULL ||
	    (dot2 = strchr(dot1 + 1, '.')) == NULL ||
	    strchr(dot2 + 1, '.') != NULL)
		return fail(reason, rsz, -EBADMSG, "token: not a compact JWT "
		    "(three dot-separated parts)");
	if (dot1 == token || dot2 == dot1 + 1 ||
	    base64url_decode(token, (size_t)(dot1 - token), header, PART_MAX,
	    &hlen) != 0 ||
	    base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload,
	    PART_MAX, &plen) != 0)
		return fail(reason, rsz, -EBADMSG, "token: header or payload "
		    "is not base64url");
	header[hlen] = '\0';
	payload[plen] = '\0';
	if (base64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), sig,
	    PART_MAX, &siglen) != 0)
		return fail(reason, rsz, -EBADMSG, "token: signature is not "
		    "base64url");

	h = json_loadb(header, hlen, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(h)) {
		r = fail(reason, rsz, -EBADMSG, "token: header is not a JSON "
		    "object");
		goto out;
	}
	alg = json_string_value(json_object_get(h, "alg"));
	if (alg == NULL) {
		r = fail(reason, rsz, -EBADMSG, "token: header has no alg");
		goto out;
	}
	if (strcmp(alg, "HS256") != 0) {
		r = fail(reason, rsz, -EPROTO, "token: alg %s is not "
		    "accepted (HS256 only)", strcmp(alg, "none") == 0 ? "none" :
		    strcmp(alg, "RS256") == 0 ? "RS256" :
		    strcmp(alg, "ES256") == 0 ? "ES256" : "(other)");
		goto out;
	}
	if (HMAC(EVP_sha256(), e->key, (int)e->keylen,
	    (const unsigned char *)token, (size_t)(dot2 - token), mac,
	    &maclen) == NULL || maclen != HS256_LEN || siglen != HS256_LEN ||
	    CRYPTO_memcmp(mac, sig, HS256_LEN) != 0) {
		r = fail(reason, rsz, -EACCES, "token: signature does not "
		    "match");
		goto out;
	}
	claims = json_loadb(payload, plen, JSON_REJECT_DUPLICATES, &jerr);
	if ((r = check_claims(e, claims, &c, reason, rsz)) == 0)
		*ret = c;
out:
	OPENSSL_cleanse(mac, sizeof(mac));
	json_decref(h);
	json_decref(claims);
	return r;
}
