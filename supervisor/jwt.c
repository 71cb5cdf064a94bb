/*
 * Supabase access tokens (jwt.h), on the JWS core (jws.h).  The header is
 * decoded and its alg pinned before a key is used; the payload is parsed
 * only once the signature matched, so nothing an attacker wrote is
 * interpreted before then beyond the header's alg and kid.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "supervisor/jws.h"
#include "supervisor/jwt.h"

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
		return jws_fail(reason, rsz, -EBADMSG, "token: payload is not "
		    "a JSON object");
	if (jws_claim_number(claims, "exp", &exp) != 0)
		return jws_fail(reason, rsz, -EBADMSG, "token: claim 'exp' "
		    "missing or not a number");
	if (json_object_get(claims, "nbf") != NULL &&
	    jws_claim_number(claims, "nbf", &nbf) != 0)
		return jws_fail(reason, rsz, -EBADMSG, "token: claim 'nbf' is "
		    "not a number");
	if (e->now >= exp + e->leeway)
		return jws_fail(reason, rsz, -ETIME, "token: expired %lld s "
		    "ago", (long long)(e->now - exp));
	if (json_object_get(claims, "nbf") != NULL &&
	    e->now + e->leeway < nbf)
		return jws_fail(reason, rsz, -ETIME, "token: not valid yet "
		    "(nbf is %lld s ahead)", (long long)(nbf - e->now));

	sub = json_object_get(claims, "sub");
	role = json_object_get(claims, "role");
	if (sub != NULL && !json_is_string(sub))
		return jws_fail(reason, rsz, -EBADMSG, "token: claim 'sub' is "
		    "not a string");
	if (role != NULL && (!json_is_string(role) ||
	    strlen(json_string_value(role)) >= JWT_ROLE_MAX))
		return jws_fail(reason, rsz, -EBADMSG, "token: claim 'role' is "
		    "not a short string");
	if (sub != NULL && !uuid_valid(json_string_value(sub)))
		return jws_fail(reason, rsz, -EBADMSG, "token: claim 'sub' is "
		    "not a UUID");
	if (sub == NULL && e->require_sub)
		return jws_fail(reason, rsz, -EBADMSG, "token: claim 'sub' "
		    "missing (not a user's token)");
	api_key = sub == NULL && role != NULL &&
	    strcmp(json_string_value(role), "service_role") == 0;

	if (!api_key) {
		if (!aud_matches(json_object_get(claims, "aud"), e->audience))
			return jws_fail(reason, rsz, -EPERM, "token: aud is "
			    "not the expected audience");
		iss = json_object_get(claims, "iss");
		if (e->issuer != NULL && (!json_is_string(iss) ||
		    strcmp(json_string_value(iss), e->issuer) != 0))
			return jws_fail(reason, rsz, -EPERM, "token: iss is "
			    "not the expected issuer");
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
	const struct jws_key *k;
	struct jws j = { 0 };
	struct jwt_claims c;
	json_error_t jerr;
	json_t *claims = NULL;
	unsigned allowed = 0;
	int r;

	if (e != NULL && e->key != NULL && e->keylen > 0)
		allowed |= JWS_HS256;
	if (e != NULL && e->keys != NULL)
		allowed |= JWS_RS256 | JWS_ES256;
	if (allowed == 0 || e->audience == NULL)
		return jws_fail(reason, rsz, -EINVAL, "token: no key or "
		    "audience configured");
	if ((r = jws_decode(token, JWT_TOKEN_MAX, "token", &j, reason,
	    rsz)) < 0)
		return r;
	if ((r = jws_check_alg(&j, allowed, "token", reason, rsz)) < 0)
		goto out;
	if (j.alg == JWS_HS256) {
		if (!jws_hs256_ok(&j, e->key, e->keylen)) {
			r = jws_fail(reason, rsz, -EACCES, "token: signature "
			    "does not match");
			goto out;
		}
	} else if (j.kid == NULL) {
		r = jws_fail(reason, rsz, -EACCES, "token: an RS256/ES256 "
		    "token without a kid");
		goto out;
	} else if ((k = jws_keys_find(e->keys, j.kid)) == NULL) {
		r = jws_fail(reason, rsz, -ENOKEY, "token: its kid is not in "
		    "the project's JWKS");
		goto out;
	} else if ((r = jws_verify(&j, k, "token", reason, rsz)) < 0)
		goto out;
	claims = json_loadb(j.payload, j.payload_len, JSON_REJECT_DUPLICATES,
	    &jerr);
	if ((r = check_claims(e, claims, &c, reason, rsz)) == 0)
		*ret = c;
out:
	json_decref(claims);
	jws_release(&j);
	return r;
}
