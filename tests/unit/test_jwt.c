/*
 * Unit tests for supervisor/jwt.c.  Tokens are signed here as Supabase's
 * auth server signs them (HS256, the JWT secret's bytes as the key) and
 * then bent one way at a time: another key, alg "none", alg RS256 over the
 * HS key (the confusion attack), the clock either side of exp and nbf,
 * another aud or iss, no sub, malformed parts, padding, an oversized token.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/base64.h"

#include "supervisor/jwt.h"

#define SECRET	"super-secret-jwt-token-with-at-least-32-characters-long"
#define ISS	"https://abcdefgh.supabase.co/auth/v1"
#define AUD	"authenticated"
#define SUB	"5f3c1a2b-8d4e-4f6a-9b7c-0123456789ab"
#define NOW	1764140000LL
#define HS256	"{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static char token[JWT_TOKEN_MAX + 4096];

/* b64url(header).b64url(payload).b64url(HMAC(key)) into token. */
static const char *
sign(const char *key, const char *header, const char *payload)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen;
	size_t n;

	n = base64url_encode(header, strlen(header), token);
	token[n++] = '.';
	n += base64url_encode(payload, strlen(payload), token + n);
	assert_non_null(HMAC(EVP_sha256(), key, (int)strlen(key),
	    (unsigned char *)token, n, mac, &maclen));
	token[n++] = '.';
	base64url_encode(mac, maclen, token + n);
	return token;
}

static char payload[2048];

/* A user's access token as Supabase issues it: exp = now + 3600. */
static const char *
claims(const char *sub, const char *aud, const char *iss, long long now)
{
	snprintf(payload, sizeof(payload), "{\"aud\":\"%s\",\"exp\":%lld,"
	    "\"iat\":%lld,\"iss\":\"%s\",\"sub\":\"%s\","
	    "\"email\":\"vet@example.com\",\"role\":\"authenticated\","
	    "\"aal\":\"aal1\",\"session_id\":\"s1\"}", aud, now + 3600, now,
	    iss, sub);
	return payload;
}

static int
verify_at(const char *tok, long long now, bool require_sub,
    struct jwt_claims *c, char *reason)
{
	struct jwt_expect e = {
		.key = SECRET, .keylen = strlen(SECRET), .audience = AUD,
		.issuer = ISS, .now = now, .leeway = JWT_LEEWAY,
		.require_sub = require_sub,
	};

	reason[0] = '\0';
	return jwt_verify(&e, tok, c, reason, JWT_REASON_MAX);
}

static void
assert_fails(int r, int want_r, const char *reason, const char *want)
{
	assert_int_equal(r, want_r);
	if (strstr(reason, want) == NULL)
		fail_msg("reason '%s' does not say '%s'", reason, want);
	/* Neither the key nor the token in a reason. */
	assert_null(strstr(reason, "secret"));
	assert_null(strstr(reason, "eyJ"));
}

static void
test_valid(void **state)
{
	char reason[JWT_REASON_MAX];
	struct jwt_claims c;

	sign(SECRET, HS256, claims(SUB, AUD, ISS, NOW));
	assert_int_equal(verify_at(token, NOW, true, &c, reason), 0);
	assert_string_equal(c.sub, SUB);
	assert_string_equal(c.role, "authenticated");
	assert_false(c.admin);
	assert_int_equal(c.exp, NOW + 3600);
	/* Within the leeway after exp. */
	assert_int_equal(verify_at(token, NOW + 3600 + JWT_LEEWAY - 1, true,
	    &c, reason), 0);
	/* aud as an array holding ours; typ optional; uppercase sub. */
	snprintf(payload, sizeof(payload), "{\"aud\":[\"x\",\"%s\"],"
	    "\"exp\":%lld,\"iss\":\"%s\",\"sub\":\"%s\"}", AUD, NOW + 60, ISS,
	    "5F3C1A2B-8D4E-4F6A-9B7C-0123456789AB");
	sign(SECRET, "{\"alg\":\"HS256\"}", payload);
	assert_int_equal(verify_at(token, NOW, true, &c, reason), 0);
	assert_string_equal(c.sub, SUB);
	assert_string_equal(c.role, "");
}

static void
test_wrong_key(void **state)
{
	char reason[JWT_REASON_MAX];
	struct jwt_claims c;

	sign("another-project-secret", HS256, claims(SUB, AUD, ISS, NOW));
	assert_fails(verify_at(token, NOW, true, &c, reason), -EACCES, reason,
	    "signature does not match");
	/* A prefix of the key is another key. */
	sign("super-secret", HS256, claims(SUB, AUD, ISS, NOW));
	assert_int_equal(verify_at(token, NOW, true, &c, reason), -EACCES);
}

static void
test_tampered(void **state)
{
	char reason[JWT_REASON_MAX], good[sizeof(token)], evil[sizeof(token)];
	struct jwt_claims c;
	char *p;

	sign(SECRET, HS256, claims(SUB, AUD, ISS, NOW));
	strcpy(good, token);
	/* Another sub with the old signature. */
	sign(SECRET, HS256, claims("00000000-0000-4000-8000-000000000000",
	    AUD, ISS, NOW));
	snprintf(evil, sizeof(evil), "%.*s%s",
	    (int)(strrchr(token, '.') - token), token, strrchr(good, '.'));
	assert_fails(verify_at(evil, NOW, true, &c, reason), -EACCES, reason,
	    "signature");
	/* One character of the signature changed. */
	strcpy(evil, good);
	p = strrchr(evil, '.') + 1;
	*p = *p == 'A' ? 'B' : 'A';
	assert_int_equal(verify_at(evil, NOW, true, &c, reason), -EACCES);
	/* The signature cut short, and empty. */
	strcpy(evil, good);
	evil[strlen(evil) - 3] = '\0';
	assert_int_equal(verify_at(evil, NOW, true, &c, reason), -EACCES);
	strcpy(evil, good);
	strrchr(evil, '.')[1] = '\0';
	assert_int_equal(verify_at(evil, NOW, true, &c, reason), -EACCES);
}

static void
test_alg_none(void **state)
{
	char reason[JWT_REASON_MAX];
	struct jwt_claims c;

	sign(SECRET, "{\"alg\":\"none\",\"typ\":\"JWT\"}",
	    claims(SUB, AUD, ISS, NOW));
	assert_fails(verify_at(token, NOW, true, &c, reason), -EPROTO, reason,
	    "alg none");
	strrchr(token, '.')[1] = '\0';
	assert_fails(verify_at(token, NOW, true, &c, reason), -EPROTO, reason,
	    "alg none");
	sign(SECRET, "{\"alg\":\"hs256\"}", claims(SUB, AUD, ISS, NOW));
	assert_int_equal(verify_at(token, NOW, true, &c, reason), -EPROTO);
	sign(SECRET, "{\"typ\":\"JWT\"}", claims(SUB, AUD, ISS, NOW));
	assert_fails(verify_at(token, NOW, true, &c, reason), -EBADMSG,
	    reason, "no alg");
	sign(SECRET, "{\"alg\":5}", claims(SUB, AUD, ISS, NOW));
	assert_int_equal(verify_at(token, NOW, true, &c, reason), -EBADMSG);
}

/* RS256 "signed" with the HS secret as if it were a public key. */
static void
test_alg_confusion(void **state)
{
	char reason[JWT_REASON_MAX];
	struct jwt_claims c;

	sign(SECRET, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}",
	    claims(SUB, AUD, ISS, NOW));
	assert_fails(verify_at(token, NOW, true, &c, reason), -EPROTO, reason,
	    "alg RS256 is not accepted");
	sign(SECRET, "{\"alg\":\"ES256\"}", claims(SUB, AUD, ISS, NOW));
	assert_fails(verify_at(token, NOW, true, &c, reason), -EPROTO, reason,
	    "ES256");
	sign(SECRET, "{\"alg\":\"HS512\"}", claims(SUB, AUD, ISS, NOW));
	assert_fails(verify_at(token, NOW, true, &c, reason), -EPROTO, reason,
	    "(other)");
}

static void
test_expired(void **state)
{
	char reason[JWT_REASON_MAX];
	struct jwt_claims c;

	sign(SECRET, HS256, claims(SUB, AUD, ISS, NOW));
	assert_fails(verify_at(token, NOW + 3600 + JWT_LEEWAY, true, &c,
	    reason), -ETIME, reason, "expired 30 s ago");
	assert_fails(verify_at(token, NOW + 86400, true, &c, reason), -ETIME,
	    reason, "expired");
	/* No exp at all, or exp of the wrong type. */
	snprintf(payload, sizeof(payload), "{\"aud\":\"%s\",\"sub\":\"%s\"}",
	    AUD, SUB);
	sign(SECRET, HS256, payload);
	assert_fails(verify_at(token, NOW, true, &c, reason), -EBADMSG, reason,
	    "'exp' missing");
	snprintf(payload, sizeof(payload), "{\"aud\":\"%s\",\"sub\":\"%s\","
	    "\"exp\":\"%lld\"}", AUD, SUB, NOW + 60);
	sign(SECRET, HS256, payload);
	assert_int_equal(verify_at(token, NOW, true, &c, reason), -EBADMSG);
}

static void
test_nbf_future(void **state)
{
	char reason[JWT_REASON_MAX];
	struct jwt_claims c;

	snprintf(payload, sizeof(payload), "{\"aud\":\"%s\",\"iss\":\"%s\","
	    "\"sub\":\"%s\",\"exp\":%lld,\"nbf\":%lld}", AUD, ISS, SUB,
	    NOW + 3600, NOW + 600);
	sign(SECRET, HS256, payload);
	assert_fails(verify_at(token, NOW, true, &c, reason), -ETIME, reason,
	    "not valid yet (nbf is 600 s ahead)");
	/* Within the leeway: accepted. */
	assert_int_equal(verify_at(token, NOW + 600 - JWT_LEEWAY, true, &c,
	    reason), 0);
}

static void
test_wrong_aud(void **state)
{
	char reason[JWT_REASON_MAX];
	struct jwt_claims c;

	sign(SECRET, HS256, claims(SUB, "anon", ISS, NOW));
	assert_fails(verify_at(token, NOW, true, &c, reason), -EPERM, reason,
	    "aud");
	snprintf(payload, sizeof(payload), "{\"iss\":\"%s\",\"sub\":\"%s\","
	    "\"exp\":%lld}", ISS, SUB, NOW + 60);
	sign(SECRET, HS256, payload);
	assert_fails(verify_at(token, NOW, true, &c, reason), -EPERM, reason,
	    "aud");
	snprintf(payload, sizeof(payload), "{\"aud\":[\"anon\"],\"iss\":"
	    "\"%s\",\"sub\":\"%s\",\"exp\":%lld}", ISS, SUB, NOW + 60);
	sign(SECRET, HS256, payload);
	assert_int_equal(verify_at(token, NOW, true, &c, reason), -EPERM);
}

static void
test_wrong_iss(void **state)
{
	char reason[JWT_REASON_MAX];
	struct jwt_claims c;
	struct jwt_expect e = {
		.key = SECRET, .keylen = strlen(SECRET), .audience = AUD,
		.now = NOW,
	};

	sign(SECRET, HS256, claims(SUB, AUD, "https://evil.supabase.co/auth/v1",
	    NOW));
	assert_fails(verify_at(token, NOW, true, &c, reason), -EPERM, reason,
	    "iss");
	/* Without an issuer configured, iss is not checked. */
	assert_int_equal(jwt_verify(&e, token, &c, reason, sizeof(reason)), 0);
}

static void
test_missing_sub(void **state)
{
	char reason[JWT_REASON_MAX];
	struct jwt_claims c;

	snprintf(payload, sizeof(payload), "{\"aud\":\"%s\",\"iss\":\"%s\","
	    "\"exp\":%lld,\"role\":\"authenticated\"}", AUD, ISS, NOW + 60);
	sign(SECRET, HS256, payload);
	assert_fails(verify_at(token, NOW, true, &c, reason), -EBADMSG, reason,
	    "'sub' missing");
	sign(SECRET, HS256, claims("not-a-uuid", AUD, ISS, NOW));
	assert_fails(verify_at(token, NOW, true, &c, reason), -EBADMSG, reason,
	    "UUID");
	sign(SECRET, HS256, claims("5f3c1a2b-8d4e-4f6a-9b7c-0123456789a'", AUD,
	    ISS, NOW));
	assert_int_equal(verify_at(token, NOW, false, &c, reason), -EBADMSG);
}

static void
test_roles(void **state)
{
	char reason[JWT_REASON_MAX];
	struct jwt_claims c;

	/* An API-key token: service_role, no sub, no aud, iss supabase. */
	snprintf(payload, sizeof(payload), "{\"iss\":\"supabase\",\"ref\":"
	    "\"abcdefgh\",\"role\":\"service_role\",\"iat\":%lld,"
	    "\"exp\":%lld}", NOW, NOW + 60);
	sign(SECRET, HS256, payload);
	assert_int_equal(verify_at(token, NOW, false, &c, reason), 0);
	assert_true(c.admin);
	assert_string_equal(c.sub, "");
	/* ... which is not a user's token. */
	assert_int_equal(verify_at(token, NOW, true, &c, reason), -EBADMSG);
	/* anon without sub gets no such pass on aud. */
	snprintf(payload, sizeof(payload), "{\"iss\":\"supabase\",\"role\":"
	    "\"anon\",\"exp\":%lld}", NOW + 60);
	sign(SECRET, HS256, payload);
	assert_int_equal(verify_at(token, NOW, false, &c, reason), -EPERM);
	/* A user with app_metadata.role admin. */
	snprintf(payload, sizeof(payload), "{\"aud\":\"%s\",\"iss\":\"%s\","
	    "\"sub\":\"%s\",\"exp\":%lld,\"role\":\"authenticated\","
	    "\"app_metadata\":{\"role\":\"admin\"}}", AUD, ISS, SUB, NOW + 60);
	sign(SECRET, HS256, payload);
	assert_int_equal(verify_at(token, NOW, true, &c, reason), 0);
	assert_true(c.admin);
	/* user_metadata is the user's to write: no admin from there. */
	snprintf(payload, sizeof(payload), "{\"aud\":\"%s\",\"iss\":\"%s\","
	    "\"sub\":\"%s\",\"exp\":%lld,\"role\":\"authenticated\","
	    "\"user_metadata\":{\"role\":\"admin\"}}", AUD, ISS, SUB, NOW + 60);
	sign(SECRET, HS256, payload);
	assert_int_equal(verify_at(token, NOW, true, &c, reason), 0);
	assert_false(c.admin);
}

static void
test_malformed(void **state)
{
	static const char *const bad[] = {
		"", "abc", "a.b", "a.b.c.d", ".b.c", "a..c",
		"eyJhbGciOiJIUzI1NiJ9.e30.",		/* {} payload */
		"e!J.e30.AAAA", "eyJhbGciOiJIUzI1NiJ9.e30.@@@",
		"bnVsbA.e30.AAAA",			/* header null */
		"WzFd.e30.AAAA",			/* header [1] */
	};
	char reason[JWT_REASON_MAX];
	struct jwt_claims c;
	int r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = verify_at(bad[i], NOW, true, &c, reason);
		if (r != -EBADMSG && r != -EACCES)
			fail_msg("'%s': %d (%s)", bad[i], r, reason);
	}
	assert_int_equal(verify_at(NULL, NOW, true, &c, reason), -EBADMSG);
	/* The payload is not JSON, but signed: refused after the MAC. */
	sign(SECRET, HS256, "not json");
	assert_fails(verify_at(token, NOW, true, &c, reason), -EBADMSG, reason,
	    "payload is not a JSON object");
	/* Duplicate claims are refused. */
	snprintf(payload, sizeof(payload), "{\"aud\":\"%s\",\"sub\":\"%s\","
	    "\"sub\":\"%s\",\"exp\":%lld}", AUD, SUB, SUB, NOW + 60);
	sign(SECRET, HS256, payload);
	assert_int_equal(verify_at(token, NOW, true, &c, reason), -EBADMSG);
}

static void
test_padding(void **state)
{
	char reason[JWT_REASON_MAX], padded[sizeof(token) + 8];
	struct jwt_claims c;
	const char *dot1;

	sign(SECRET, HS256, claims(SUB, AUD, ISS, NOW));
	/* A padded signature part is the same bytes: accepted. */
	snprintf(padded, sizeof(padded), "%s=", token);
	assert_int_equal(verify_at(padded, NOW, true, &c, reason), 0);
	/* Wrong padding is not base64url. */
	snprintf(padded, sizeof(padded), "%s==", token);
	assert_fails(verify_at(padded, NOW, true, &c, reason), -EBADMSG,
	    reason, "base64url");
	/* Padding in the header changes the signed input. */
	dot1 = strchr(token, '.');
	snprintf(padded, sizeof(padded), "%.*s=%s", (int)(dot1 - token),
	    token, dot1);
	assert_int_not_equal(verify_at(padded, NOW, true, &c, reason), 0);
}

static void
test_oversized(void **state)
{
	char reason[JWT_REASON_MAX];
	struct jwt_claims c;
	char *big = malloc(JWT_TOKEN_MAX + 2);

	assert_non_null(big);
	memset(big, 'A', JWT_TOKEN_MAX + 1);
	big[10] = '.';
	big[20] = '.';
	big[JWT_TOKEN_MAX + 1] = '\0';
	assert_fails(verify_at(big, NOW, true, &c, reason), -EMSGSIZE, reason,
	    "limit");
	free(big);
	/* No key configured. */
	{
		struct jwt_expect e = { .audience = AUD, .now = NOW };

		sign(SECRET, HS256, claims(SUB, AUD, ISS, NOW));
		assert_int_equal(jwt_verify(&e, token, &c, reason,
		    sizeof(reason)), -EINVAL);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_alg_none),
		cmocka_unit_test(test_alg_confusion),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_nbf_future),
		cmocka_unit_test(test_wrong_aud),
		cmocka_unit_test(test_wrong_iss),
		cmocka_unit_test(test_missing_sub),
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_padding),
		cmocka_unit_test(test_oversized),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
