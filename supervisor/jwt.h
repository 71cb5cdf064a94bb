/*
 * Verification of Supabase access tokens (CONTRACTS §3): compact JWTs
 * signed HS256 with the project's JWT secret (its bytes as the key), or
 * RS256/ES256 with a key of the project's JWKS named by the header's kid
 * (jws.h).  The alg is pinned before any key is touched: HS256 only when
 * a secret is given, RS256 and ES256 only when a key set is; "none" and
 * any other alg are refused, naming the alg.  An HS256 token is checked
 * against the secret alone, whatever its kid.  Then exp (required) and
 * nbf (if present) are held against the clock with a leeway, aud against the
 * expected audience (a string or an array holding it), iss against the
 * expected issuer when one is configured, and sub must be a UUID when
 * required.
 *
 * Supabase's API-key tokens (role "service_role", no sub) carry no aud and
 * iss "supabase": for them aud and iss are not checked; the signature with
 * the project secret is what makes them trusted.
 *
 * No I/O, no logging: the reason never quotes the token or the key, so the
 * caller may log it as it is.
 */
#ifndef VS_SUPERVISOR_JWT_H
#define VS_SUPERVISOR_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JWT_TOKEN_MAX	8192	/* bytes of a token */
#define JWT_REASON_MAX	160	/* a reason buffer that never truncates */
#define JWT_ROLE_MAX	64
#define JWT_LEEWAY	30	/* seconds allowed on exp and nbf */

struct jws_keys;

struct jwt_expect {
	const void *key;	/* HS256 key bytes; NULL: no HS256 */
	size_t keylen;
	const struct jws_keys *keys;	/* RS256/ES256 keys; NULL: none */
	const char *audience;	/* required */
	const char *issuer;	/* NULL: not checked */
	int64_t now;		/* Unix seconds */
	int64_t leeway;		/* seconds */
	bool require_sub;	/* a UUID sub (a user's token) */
};

struct jwt_claims {
	char sub[37];		/* lowercase UUID, "" when absent */
	char role[JWT_ROLE_MAX];	/* the role claim, "" when absent */
	bool admin;		/* service_role, or app_metadata.role admin */
	int64_t exp;
};

/*
 * Verify token.  On success fills *ret and returns 0; else returns a
 * negative errno and writes what failed into reason (reasonsz bytes, may
 * be 0); *ret is then left alone:
 *   -EMSGSIZE  the token is longer than JWT_TOKEN_MAX
 *   -EBADMSG   not a compact JWT, bad base64url or JSON, a claim missing or
 *              of the wrong type
 *   -EPROTO    alg is none, not one we take, or does not fit the kid's key
 *   -EACCES    the signature does not match (or has the wrong length), an
 *              RS256/ES256 token without a kid
 *   -ENOKEY    an RS256/ES256 token whose kid is not in keys (the caller
 *              may refresh its set and try again)
 *   -ETIME     expired, or not valid yet
 *   -EPERM     aud or iss differ
 *   -EINVAL    neither a secret nor keys, or no audience given
 */
int jwt_verify(const struct jwt_expect *, const char *token,
    struct jwt_claims *ret, char *reason, size_t reasonsz);

#endif
