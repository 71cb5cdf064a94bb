/*
 * Unit tests for supervisor/qstash_verify.c.  Tokens are signed here, the
 * way QStash's own test signer does it (HS256 over the key string's bytes),
 * and then bent one way at a time: the other key, a changed payload,
 * header or signature, alg "none" and RS256, the clock on either side of
 * nbf and exp, another iss or sub, another body, padding, garbage and an
 * oversized header.  The body hashes are CONTRACTS §1's test vectors.
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

#include "supervisor/qstash_verify.h"

#define CURRENT		"sig_current_7Yx2kP9wQe3LmN5bR8tV"
#define NEXT		"sig_next_Hq4sD6fJ1gK8zX3cV0bN"
#define URL		"http://127.0.0.1:8080/hooks/discharge"
#define NOW		1764140000LL
#define HELLO		"{\"hello\":\"world\"}"
#define HELLO_HASH	"k6I5cakU5erL8KjSUVTNownDwccvu5kU1Hxg88toFYg="
#define EMPTY_HASH	"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU="
#define HS256		"{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static char token[8192];

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

static char payload[1024];

/* The claims QStash sends, with iat = now, nbf = now, exp = now + 300. */
static const char *
claims(const char *iss, const char *sub, const char *body_hash, long long now)
{
	snprintf(payload, sizeof(payload), "{\"iss\":\"%s\",\"sub\":\"%s\","
	    "\"exp\":%lld,\"nbf\":%lld,\"iat\":%lld,"
	    "\"jti\":\"jwt_2kV9Qe\",\"body\":\"%s\"}", iss, sub, now + 300,
	    now, now, body_hash);
	return payload;
}

static int
verify(const char *sig, const char *body, int64_t now, char *reason)
{
	struct qstash_verify_args a = {
		.current_key = CURRENT,
		.next_key = NEXT,
		.url = URL,
		.now = now,
	};

	reason[0] = '\0';
	return qstash_verify(&a, sig, body, strlen(body), reason,
	    QSTASH_REASON_MAX);
}

static void
assert_fails(int r, int want_r, const char *reason, const char *want)
{
	assert_int_equal(r, want_r);
	if (strstr(reason, want) == NULL)
		fail_msg("reason '%s' does not say '%s'", reason, want);
	/* No key, ever, in a reason. */
	assert_null(strstr(reason, "sig_"));
}

static void
test_valid_current(void **state)
{
	char reason[QSTASH_REASON_MAX];

	sign(CURRENT, HS256, claims("Upstash", URL, HELLO_HASH, NOW));
	assert_int_equal(verify(token, HELLO, NOW, reason), 0);
	assert_int_equal(verify(token, HELLO, NOW + 299, reason), 0);
}

static void
test_valid_next(void **state)
{
	char reason[QSTASH_REASON_MAX];

	sign(NEXT, HS256, claims("Upstash", URL, HELLO_HASH, NOW));
	assert_int_equal(verify(token, HELLO, NOW, reason), 0);
}

static void
test_other_key(void **state)
{
	char reason[QSTASH_REASON_MAX];
	struct qstash_verify_args a = {
		.current_key = CURRENT, .now = NOW,
	};

	sign("sig_some_other_key", HS256, claims("Upstash", URL, HELLO_HASH,
	    NOW));
	assert_fails(verify(token, HELLO, NOW, reason), -EACCES, reason,
	    "does not match");
	/* Signed with next, but no next key configured. */
	sign(NEXT, HS256, claims("Upstash", URL, HELLO_HASH, NOW));
	assert_int_equal(qstash_verify(&a, token, HELLO, strlen(HELLO),
	    reason, sizeof(reason)), -EACCES);
	/* A key that is a prefix of the real one is another key. */
	sign("sig_current", HS256, claims("Upstash", URL, HELLO_HASH, NOW));
	assert_int_equal(verify(token, HELLO, NOW, reason), -EACCES);
}

/* Swap one part of a good token for another's. */
static void
test_tampered(void **state)
{
	char reason[QSTASH_REASON_MAX], good[8192], *dot;
	char evil[8192], *p;
	const char *h;
	size_t n;

	sign(CURRENT, HS256, claims("Upstash", URL, HELLO_HASH, NOW));
	strcpy(good, token);

	/* Payload: someone else's sub, with the old signature. */
	sign(CURRENT, HS256, claims("Upstash", "http://evil.test/",
	    HELLO_HASH, NOW));
	dot = strrchr(good, '.');
	p = strrchr(token, '.');
	n = (size_t)(p - token);
	snprintf(evil, sizeof(evil), "%.*s%s", (int)n, token, dot);
	assert_fails(verify(evil, HELLO, NOW, reason), -EACCES, reason,
	    "signature");

	/* One bit of the signature flipped. */
	strcpy(evil, good);
	p = strrchr(evil, '.') + 1;
	*p = *p == 'A' ? 'B' : 'A';
	assert_fails(verify(evil, HELLO, NOW, reason), -EACCES, reason,
	    "signature");

	/* The signature cut short. */
	strcpy(evil, good);
	evil[strlen(evil) - 3] = '\0';	/* 30 bytes, well spelled */
	assert_int_equal(verify(evil, HELLO, NOW, reason), -EACCES);

	/* The header re-encoded with a space: another signed input. */
	sign(CURRENT, HS256, claims("Upstash", URL, HELLO_HASH, NOW));
	h = "{\"alg\":\"HS256\", \"typ\":\"JWT\"}";
	n = base64url_encode(h, strlen(h), evil);
	snprintf(evil + n, sizeof(evil) - n, "%s", strchr(good, '.'));
	assert_int_equal(verify(evil, HELLO, NOW, reason), -EACCES);
}

static void
test_alg_refused(void **state)
{
	char reason[QSTASH_REASON_MAX], *dot;

	sign(CURRENT, "{\"alg\":\"none\",\"typ\":\"JWT\"}",
	    claims("Upstash", URL, HELLO_HASH, NOW));
	assert_fails(verify(token, HELLO, NOW, reason), -EPROTO, reason,
	    "alg");
	/* alg none with an empty signature part, as such tokens come. */
	dot = strrchr(token, '.');
	dot[1] = '\0';
	assert_fails(verify(token, HELLO, NOW, reason), -EPROTO, reason,
	    "alg");
	sign(CURRENT, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
	    claims("Upstash", URL, HELLO_HASH, NOW));
	assert_fails(verify(token, HELLO, NOW, reason), -EPROTO, reason,
	    "alg");
	sign(CURRENT, "{\"alg\":\"hs256\"}", claims("Upstash", URL, HELLO_HASH,
	    NOW));
	assert_int_equal(verify(token, HELLO, NOW, reason), -EPROTO);
	sign(CURRENT, "{\"typ\":\"JWT\"}", claims("Upstash", URL, HELLO_HASH,
	    NOW));
	assert_int_equal(verify(token, HELLO, NOW, reason), -EPROTO);
	sign(CURRENT, "{\"alg\":\"HS256\",\"typ\":\"JWE\"}",
	    claims("Upstash", URL, HELLO_HASH, NOW));
	assert_int_equal(verify(token, HELLO, NOW, reason), -EBADMSG);
	/* typ is optional. */
	sign(CURRENT, "{\"alg\":\"HS256\"}", claims("Upstash", URL, HELLO_HASH,
	    NOW));
	assert_int_equal(verify(token, HELLO, NOW, reason), 0);
}

static void
test_expired(void **state)
{
	char reason[QSTASH_REASON_MAX];
	struct qstash_verify_args a = {
		.current_key = CURRENT, .url = URL, .now = NOW + 310,
		.tolerance = 15,
	};

	sign(CURRENT, HS256, claims("Upstash", URL, HELLO_HASH, NOW));
	assert_fails(verify(token, HELLO, NOW + 300, reason), -ETIME, reason,
	    "expired 0 s ago");
	assert_fails(verify(token, HELLO, NOW + 3600, reason), -ETIME, reason,
	    "expired");
	/* A tolerance covers a little clock skew. */
	assert_int_equal(qstash_verify(&a, token, HELLO, strlen(HELLO), reason,
	    sizeof(reason)), 0);
}

static void
test_not_yet_valid(void **state)
{
	char reason[QSTASH_REASON_MAX];

	sign(CURRENT, HS256, claims("Upstash", URL, HELLO_HASH, NOW + 60));
	assert_fails(verify(token, HELLO, NOW, reason), -ETIME, reason,
	    "not yet valid");
	assert_int_equal(verify(token, HELLO, NOW + 60, reason), 0);
}

static void
test_wrong_iss(void **state)
{
	char reason[QSTASH_REASON_MAX];

	sign(CURRENT, HS256, claims("upstash", URL, HELLO_HASH, NOW));
	assert_fails(verify(token, HELLO, NOW, reason), -EPERM, reason,
	    "iss");
	sign(CURRENT, HS256, claims("", URL, HELLO_HASH, NOW));
	assert_int_equal(verify(token, HELLO, NOW, reason), -EPERM);
}

static void
test_sub(void **state)
{
	char reason[QSTASH_REASON_MAX];
	struct qstash_verify_args a = {
		.current_key = CURRENT, .now = NOW,
	};

	sign(CURRENT, HS256, claims("Upstash", URL "/x", HELLO_HASH, NOW));
	assert_fails(verify(token, HELLO, NOW, reason), -EPERM, reason,
	    "sub");
	/* Without an expected URL, sub is not compared. */
	assert_int_equal(qstash_verify(&a, token, HELLO, strlen(HELLO), reason,
	    sizeof(reason)), 0);
}

static void
test_body_hash(void **state)
{
	char reason[QSTASH_REASON_MAX];

	sign(CURRENT, HS256, claims("Upstash", URL, HELLO_HASH, NOW));
	assert_fails(verify(token, "{\"hello\":\"World\"}", NOW, reason),
	    -EPERM, reason, "body hash mismatch");
	assert_fails(verify(token, "", NOW, reason), -EPERM, reason,
	    "body hash");
	/* The empty body's vector, padded as the docs print it. */
	sign(CURRENT, HS256, claims("Upstash", URL, EMPTY_HASH, NOW));
	assert_int_equal(verify(token, "", NOW, reason), 0);
	assert_int_equal(verify(token, HELLO, NOW, reason), -EPERM);
}

static void
test_padding(void **state)
{
	char reason[QSTASH_REASON_MAX], unpadded[64];

	snprintf(unpadded, sizeof(unpadded), "%s", HELLO_HASH);
	unpadded[strlen(unpadded) - 1] = '\0';
	sign(CURRENT, HS256, claims("Upstash", URL, unpadded, NOW));
	assert_int_equal(verify(token, HELLO, NOW, reason), 0);
	sign(CURRENT, HS256, claims("Upstash", URL, HELLO_HASH, NOW));
	assert_int_equal(verify(token, HELLO, NOW, reason), 0);
	/* Extra '=' are trailing '=' too; a missing character is not. */
	sign(CURRENT, HS256, claims("Upstash", URL, HELLO_HASH "==", NOW));
	assert_int_equal(verify(token, HELLO, NOW, reason), 0);
	unpadded[strlen(unpadded) - 1] = '\0';
	sign(CURRENT, HS256, claims("Upstash", URL, unpadded, NOW));
	assert_int_equal(verify(token, HELLO, NOW, reason), -EPERM);
}

static void
test_missing_claims(void **state)
{
	static const struct {
		const char *payload;
		const char *why;
	} cases[] = {
		{ "{\"sub\":\"" URL "\",\"exp\":1,\"nbf\":1,\"iat\":1,"
		    "\"jti\":\"j\",\"body\":\"" HELLO_HASH "\"}", "'iss'" },
		{ "{\"iss\":\"Upstash\",\"sub\":\"" URL "\",\"nbf\":1,"
		    "\"iat\":1,\"jti\":\"j\",\"body\":\"" HELLO_HASH "\"}",
		    "'exp'" },
		{ "{\"iss\":\"Upstash\",\"sub\":\"" URL "\",\"exp\":\"9\","
		    "\"nbf\":1,\"iat\":1,\"jti\":\"j\",\"body\":\""
		    HELLO_HASH "\"}", "'exp'" },
		{ "{\"iss\":\"Upstash\",\"sub\":\"" URL "\",\"exp\":9,"
		    "\"nbf\":1,\"iat\":1,\"jti\":\"j\"}", "'body'" },
		{ "{\"iss\":\"Upstash\",\"iss\":\"Upstash\"}", "JSON object" },
		{ "[1,2]", "JSON object" },
		{ "not json", "JSON object" },
	};
	char reason[QSTASH_REASON_MAX];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sign(CURRENT, HS256, cases[i].payload);
		assert_fails(verify(token, HELLO, NOW, reason), -EBADMSG,
		    reason, cases[i].why);
	}
}

static void
test_garbage(void **state)
{
	static const char *const bad[] = {
		"",
		"abc",
		"a.b",
		"a.b.c.d",
		"..",
		"eyJhbGciOiJIUzI1NiJ9..c2ln",
		"!!!.???.***",
		"eyJhbGciOiJIUzI1NiJ9.e30.c2ln c2ln",
		"Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln",
	};
	char reason[QSTASH_REASON_MAX];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(verify(bad[i], HELLO, NOW, reason), -EBADMSG);
	assert_int_equal(verify(NULL, HELLO, NOW, reason), -EBADMSG);
	/* Header that is not JSON. */
	sign(CURRENT, "{alg:HS256}", claims("Upstash", URL, HELLO_HASH, NOW));
	assert_fails(verify(token, HELLO, NOW, reason), -EBADMSG, reason,
	    "JWT header");
}

static void
test_oversized(void **state)
{
	char reason[QSTASH_REASON_MAX], *big;

	big = malloc(QSTASH_SIGNATURE_MAX + 2);
	assert_non_null(big);
	memset(big, 'A', QSTASH_SIGNATURE_MAX + 1);
	big[10] = '.';
	big[20] = '.';
	big[QSTASH_SIGNATURE_MAX + 1] = '\0';
	assert_fails(verify(big, HELLO, NOW, reason), -EMSGSIZE, reason,
	    "limit");
	free(big);
}

static void
test_no_key(void **state)
{
	char reason[QSTASH_REASON_MAX];
	struct qstash_verify_args a = { .current_key = "", .now = NOW };

	sign("", HS256, claims("Upstash", URL, HELLO_HASH, NOW));
	assert_int_equal(qstash_verify(&a, token, HELLO, strlen(HELLO), reason,
	    sizeof(reason)), -EINVAL);
	assert_int_equal(qstash_verify(NULL, token, HELLO, strlen(HELLO),
	    reason, sizeof(reason)), -EINVAL);
	/* A zero-sized reason is allowed. */
	a.current_key = CURRENT;
	assert_int_equal(qstash_verify(&a, "x", HELLO, strlen(HELLO), NULL, 0),
	    -EBADMSG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_current),
		cmocka_unit_test(test_valid_next),
		cmocka_unit_test(test_other_key),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_alg_refused),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_not_yet_valid),
		cmocka_unit_test(test_wrong_iss),
		cmocka_unit_test(test_sub),
		cmocka_unit_test(test_body_hash),
		cmocka_unit_test(test_padding),
		cmocka_unit_test(test_missing_claims),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_no_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
