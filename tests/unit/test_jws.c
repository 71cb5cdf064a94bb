/*
 * Unit tests for supervisor/jws.c and the RS256/ES256 half of jwt.c: real
 * tokens signed here with OpenSSL's EVP over the keys below, checked with
 * a JWKS document built from their public halves, then bent one way at a
 * time: a kid not in the set, no kid, a key of the wrong type for alg,
 * another key with the same kid, a tampered payload, signatures of the
 * wrong length, r or s zero, alg none, the alg confusion attack (HS256
 * "signed" with the RSA public key's bytes), crit and odd kids.  The JWKS
 * parser is fed keys it must skip (each with its reason) and documents it
 * must refuse.
 *
 * The keys are test-only, made with `openssl genpkey` (RSA 2048, RSA 1024,
 * EC P-256) and sign nothing but these tests.
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
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/base64.h"

#include "supervisor/jws.h"
#include "supervisor/jwt.h"

static const char pem_rsa1[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDo231rVlq4ISvC\n"
	"4BSQHag/PrNisikqoPy3UJDKVr6O5IQoODTRAOSPuoQkPKiUuxvdvCVWQhJqd+MY\n"
	"K2O3atv/VITc/J3MAYJPAPsr/OeMkyxFSiZbTogJBugNekFA1c4ROLMDqcQLU6Id\n"
	"l7BaV9jj3+GUxwFpNmd+6ztHrTpdlQUhIbgS7D/m5lF7qhycEDrqXgzRau//WQ2B\n"
	"Lmpx/DmHDmonJoWbKt2liZbINtbuvp1mzim1Q2610uxd9kr7GdC1F2JKdH+CUVW7\n"
	"epfaRaw1Q0R1xbVDaXkOi3IpNdCHDQHvuk/DhrW/3Ncu6On+HibXVHpGXAP5+7wA\n"
	"9orY4GjFAgMBAAECggEAFqU94cHwqaaEMHwFU+ymb5wj6u3DpiMo4JUDt8HO32um\n"
	"1Jh+vnK1R6sObc2+YVR/BcXl5akgTF1jZvbVSEGqqn6oOyuQFwZwi0lfo+wBAsFP\n"
	"VV+8MjYFccdLqv/gN7NzSmZ2tlz8tVNJWVJmsqqHa8XalNLztq01THkI91QH8JC9\n"
	"e6szkspqD+Iv6m/XzR6SRjH5A0p/PnBK75As9Rvom/SpAg4a+LoOLkBQJBFmtj4G\n"
	"nOYFuwPP6M7RtKyVUMm7OK2UPFU04KxZTBhRZ00N4pRhQhgpDDx/wHHfiLqwFBsQ\n"
	"3uyDSrxv2NI8v+DUm1UtXa2IQT7AJrWV4rYM/moCgwKBgQD+DtsPPFl2q/iagpi3\n"
	"c47aYLH+1uFCyllvzOsYZp9HWWiEn7U4a/plnI2bmuqhseOjoTSFSgqF2N7v53/8\n"
	"bMezbcVcf4TbnouZHHz0pulOy4G5kHpxc4A+CJGOr4X4GdZoh5bImLjHRWPw8XFi\n"
	"8JdnxNPocLI1BkpDtu5S2PxDPwKBgQDqoyYDwUQBeJ0weJXqEe/g/8BKQfki/1CT\n"
	"hxyPJWBKh5HQnSXeO0xjYJZYOhvqtA83wGSoX6w66wWtzBrtzOsG8yPLb0JA/CoS\n"
	"zNYDdFTdzKKFRf9ntHSbr5LIUZyxnTnvGh7R4vpVAzw0iilIv5J8ruTT1jm1WPaN\n"
	"WDF7PUkG+wKBgQDSSa2csNFEXxgJnGuX/XiS3VK3o1kVFbRty+oUam0Qe7r9e8xe\n"
	"hVHfZXP5BoOLj1jjCf4VDbIkE9yEKtRPNiMeK5Ae/hYUSuk1tNThFH8tD1mzJRmU\n"
	"aowNzL3eov5627gTEZgHNhJMLu2Ic/DsekR4Sf00+oMnTKuP3QzrWluDtQKBgHbr\n"
	"uZitm4ojV4f5lgHMlYe0GAGK7nqObIhZMmBa0TL1AzJ4c3jvFQhJK+oLiZqrKAtZ\n"
	"t6qe0uwJshckG4HrGjOrh7jT6wCEzc45gz6890ZzMOvbTleBXpiJpBtjQcfDqFlH\n"
	"I9e88qOjwB/g5ou4jMYk3lV/fkArlsqMqIeNyDWBAoGAHqi+jyHOKIZ0+giZ4JfA\n"
	"tBtyliy8SgoJWE31qtbIkMS0GkhzgXTsRpEC3RTuNNl+DQqSfqhDp0F8sOwy0sLQ\n"
	"rwM1BzdUAL4kU+MO7l/UEEB9cAVhKxe63oz5byumBGnHwrEs0x0Z0m/lBdfJr+fs\n"
	"N0YJ9W4ClzUlhhHFRp+cDog=\n"
	"-----END PRIVATE KEY-----\n";
static const char pem_rsa2[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCRssIG5Z1mlsSP\n"
	"FaAj3Qa6kU822P1sEYRzrbKHxDY6iSjV2Vj+JOR1H+JqiByytVAs2vig/LYhpEyG\n"
	"EVxMRV/jE+J7GP97nXPpJ9XCO7ikml19voNvPo6ZjAFCTXnwhN/txzW/qNI+HfHM\n"
	"x5YPphP3aKiDkpzszm2myY85z+2tKB9sSUsirKYMRt19WLBPGkMPZIZ+CApJLmHY\n"
	"/ZR596HtTpDsaQvKdlmgyHKOzgM0iFDSu6fUDeo3lAS0VQIGbXldBh/KU1lMXOy4\n"
	"zMmWcaHaFFVflQzUd3zcovFCdGgPso+Uaj681G0D3mavyhgJKp1pL3Iwtlki7/VH\n"
	"EQiGqfEnAgMBAAECggEADPf96FJA7/REm73fisGuSyYLCIVJDXkDsq5H4WjYMN6r\n"
	"mVlm3/xVr40+gKAL+eZEtDFrhxznc1gmDZr2/b0BG3vWIYHon860lhDbKJZbSZ+J\n"
	"6dru5RSK6eT56bZuv7d8HTSptp0m1auhrcooM81jIpcYxNlkiXmYbgur6Yf2Dn8M\n"
	"5unVg3XIAjTMNelh36TeX8+/9xDoU4ftehAB3dgCzFaeKooGkfp0I/AkQcT3n6VW\n"
	"KYE9SbtK0w4KqAcsB4cmZYltTREM6VMg0xrw4LTUi6wGnti+vixmNQJ4EwTgqq7a\n"
	"nLG8M5KFuqMAMC8ak0cj/4vnPLvIXyseEFEREGunoQKBgQDC7YMiuLIqbq01i/40\n"
	"ae942yYI3yM09IjVakMTKJ1x3fB6PXdv8NGkSn+EuGzVMzm0XzHh1qxS8gWio9ow\n"
	"hrjqZ7EVxJ7q7iPCHc8e/V0JNWyJigrq662RRgoiu2DcdRq6IS0/BJtXRlhCP9Fn\n"
	"FipwvZUrzu3XQxV6Dl1T5xD0xwKBgQC/WLdDJg3nMuzzz1ElYDVjHJAgJ6S5DMC2\n"
	"c8xCcBlGwUHC0DMlOvTFNL6pmdpkriA2NR3qG6LSnDZA+PF6uwHdPXEtG7KLiOYy\n"
	"QMZULtlXV8+FUUF6UXJrflfPZ+YHa9VTLVCp6Xk1djk+FGpoClZ2DxIy3ou+onWl\n"
	"h2zLIwAAoQKBgAKKQck0Cu5OnucxudBJCRvUDzzSW40XGqldRx56ywJu1/Ff16yX\n"
	"wMOZTOwX0yM8FaZqDyZYO8qg6L3j0LYNK1+yljYoZ8G79K9U4BwRRSMXlSB9sgK5\n"
	"q3tXJE6rjmmRBRYj1IkbsEKE4iWK21myij8J2WXGvoatkxwSD9lGC4yFAoGAB3xt\n"
	"Dw96E8WGR7OgtRmifRItAVULuMGq+HhnUWIZWw9Mh1al6Zr44I5Dt1bxmGbHk9dY\n"
	"KESUhjDeXoRezjJqzEEPIHio75SXjPfDyp9amXQyBkE7kpGFLHdw8Ahck4XAftST\n"
	"B1K/Dzxk2OzrjM56u3uzdpIGXZr1h1hZBUmFQoECgYBgF0xXrzlGaEbIDRm6CJz4\n"
	"9jHddH5fR/Z/h5im925JnyUM/umbs9B0qOy0nQ8yVr5wbJh6WML1yEbvuZ8OIr1B\n"
	"3nijcAKQyocdFNArNa/e1i1B1Cf9MOIhp4NddrtxtWd7VWeNC5/1OvGEJjOO8vhc\n"
	"XxdiIt1PoOjid3fg0CdEXw==\n"
	"-----END PRIVATE KEY-----\n";
static const char pem_rsaweak[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBALPGwmY++S5MTzzO\n"
	"4ueUuTiVz0AqEQyE4NHlB7UmvM2yj8mjkiLXHg9aDE09LlGAJeRalRi0qULe74ez\n"
	"avut1Igjo3dna6jzbLvFADFv/yoA1iRf7RG2IvMZUHtrsrgD20K+XVoi57s/ZamO\n"
	"QzVsBAsh+/1zjFWTeA1W5QTghKY7AgMBAAECgYEAnTg7lnOIM8cknMdJhMF54lSR\n"
	"dUnUsyAaBTXIsdH41+NLAEp+aN28OizECWBx+3CYssXNElgclpCk5gYwj34MGLLS\n"
	"M91WGN+HFTEEn83wvyN9R+GHlQPxY48GrT8Rq2fbb7b+ImNtlQYajfxdbkvOMm9E\n"
	"nUCsHSc3Ss1JlpeldKECQQDndPsXtSqrzRADO350Lr7Eui7RwuYHdVZJjDiQ01Bx\n"
	"L6KeWzX4B1AhMW/0Ggfxs6ZczHs07BZviSQF6tN4L/KpAkEAxtbiFLoQzfZI0h30\n"
	"2tkWl1xFvtXfxQ3cjq/Y89ZFzrBqZgloIjGTL1uTV2oMRHQLjmuL+eMxct2Lipzl\n"
	"DLGEQwJAKKZc6v8AbYfoRgkO3mzPSFHCo0htieXLr8MWtCjIufg5wUIXqmXuZsX9\n"
	"+YsQ1hxNHYM0KElGb3RQhVGGrlcNcQJAVmVv/omKW7OzmHijt6O0CThypaTQghKv\n"
	"zt/haLGly1UkJgnYUWMxDNbBgq31fpjdnJhmTcHF7p8MzsG1VHqdeQJAJEFS1gnQ\n"
	"U1g5XE8uNvITTWHOLJNPznGZdAGKu7BN7QE/47scljOqU4nT47b3aXYd1p8WfFPR\n"
	"ibiGWWjxECWGcw==\n"
	"-----END PRIVATE KEY-----\n";
static const char pem_ec1[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgd5g4eeq4VJPIFkm1\n"
	"/X7XID2AO32o70bIVTIBHPApjrehRANCAAQahYKVyphKqKcgs0+zhthseKah8XUt\n"
	"u2MZMTJNapMbwhSHrhVq6UU84B6q5c2a0r0FT5SI5AO3yO26MbllYqlj\n"
	"-----END PRIVATE KEY-----\n";
static const char pem_ec2[] =
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgyI5q42UquIVQzflw\n"
	"olPZYg145H7VPWiXgFzWwo6IHfShRANCAAS+Rx3YuIG7bRzZTZb0GMKGpCWbtk3/\n"
	"DAPOJN4RtEtJPwUCZ1QKvu2JG1cFNAMFvuZ1VvSkSs7MUMAX1/OYfldq\n"
	"-----END PRIVATE KEY-----\n";

#define SECRET	"super-secret-jwt-token-with-at-least-32-characters-long"
#define ISS	"https://abcdefgh.supabase.co/auth/v1"
#define AUD	"authenticated"
#define SUB	"5f3c1a2b-8d4e-4f6a-9b7c-0123456789ab"
#define NOW	1764140000LL
#define RS_KID	"rsa-2026-11"
#define EC_KID	"ec-2026-11"
#define RS_HDR	"{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"" RS_KID "\"}"
#define EC_HDR	"{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"" EC_KID "\"}"
#define SIG_MAX	1024

static EVP_PKEY *rsa1, *rsa2, *rsaweak, *ec1, *ec2;
static struct jws_keys *keys;	/* rsa1 as RS_KID, ec1 as EC_KID */
static char token[JWT_TOKEN_MAX + 1024];
static char payload[2048];
static char doc[JWKS_DOC_MAX + 4096];

static EVP_PKEY *
load(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k;

	assert_non_null(b);
	k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(k);
	return k;
}

static void
b64_bn(EVP_PKEY *k, const char *param, char *out)
{
	unsigned char bin[1024];
	BIGNUM *bn = NULL;
	int n;

	assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
	n = BN_bn2bin(bn, bin);
	BN_free(bn);
	base64url_encode(bin, (size_t)n, out);
}

/* The JWK of k's public half, with members (e.g. "\"use\":\"sig\","). */
static const char *
jwk(EVP_PKEY *k, const char *kid, const char *members)
{
	static char out[16][8192];	/* a ring: a table may hold many */
	static int next;
	char *o = out[next++ % 16];
	char a[2048], b[2048];
	unsigned char pub[65];
	size_t len;

	if (EVP_PKEY_is_a(k, "RSA")) {
		b64_bn(k, OSSL_PKEY_PARAM_RSA_N, a);
		b64_bn(k, OSSL_PKEY_PARAM_RSA_E, b);
		snprintf(o, sizeof(out[0]), "{%s\"kty\":\"RSA\",\"kid\":\"%s\","
		    "\"n\":\"%s\",\"e\":\"%s\"}", members, kid, a, b);
	} else {
		assert_int_equal(EVP_PKEY_get_octet_string_param(k,
		    OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len), 1);
		assert_int_equal(len, 65);
		base64url_encode(pub + 1, 32, a);
		base64url_encode(pub + 33, 32, b);
		snprintf(o, sizeof(out[0]), "{%s\"kty\":\"EC\",\"crv\":"
		    "\"P-256\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}",
		    members, kid, a, b);
	}
	return o;
}

/* header.payload + '.' + b64url(sig) into token. */
static const char *
assemble(const char *header, const char *pl, const unsigned char *sig,
    size_t siglen)
{
	size_t n;

	n = base64url_encode(header, strlen(header), token);
	token[n++] = '.';
	n += base64url_encode(pl, strlen(pl), token + n);
	token[n++] = '.';
	base64url_encode(sig, siglen, token + n);
	return token;
}

/* Sign with k (RS256, or ES256 as r || s) whatever header says. */
static const char *
sign(EVP_PKEY *k, const char *header, const char *pl)
{
	unsigned char sig[SIG_MAX], raw[64];
	const unsigned char *p = sig;
	const BIGNUM *r, *s;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ECDSA_SIG *es;
	size_t siglen = sizeof(sig), n;

	assemble(header, pl, (const unsigned char *)"", 0);
	n = strlen(token) - 1;		/* without the last '.' */
	assert_int_equal(EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL,
	    k, NULL), 1);
	assert_int_equal(EVP_DigestSign(md, sig, &siglen,
	    (unsigned char *)token, n), 1);
	EVP_MD_CTX_free(md);
	if (!EVP_PKEY_is_a(k, "EC"))
		return assemble(header, pl, sig, siglen);
	es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
	assert_non_null(es);
	ECDSA_SIG_get0(es, &r, &s);
	assert_int_equal(BN_bn2binpad(r, raw, 32), 32);
	assert_int_equal(BN_bn2binpad(s, raw + 32, 32), 32);
	ECDSA_SIG_free(es);
	return assemble(header, pl, raw, sizeof(raw));
}

/* HS256 over key bytes. */
static const char *
sign_hs(const void *key, size_t keylen, const char *header, const char *pl)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen;
	size_t n;

	assemble(header, pl, (const unsigned char *)"", 0);
	n = strlen(token) - 1;
	assert_non_null(HMAC(EVP_sha256(), key, (int)keylen,
	    (unsigned char *)token, n, mac, &maclen));
	return assemble(header, pl, mac, maclen);
}

static const char *
claims(long long exp_in)
{
	snprintf(payload, sizeof(payload), "{\"aud\":\"%s\",\"exp\":%lld,"
	    "\"iat\":%lld,\"iss\":\"%s\",\"sub\":\"%s\","
	    "\"role\":\"authenticated\"}", AUD, NOW + exp_in, NOW, ISS, SUB);
	return payload;
}

/* Verify with the set, and the HS256 secret when with_secret. */
static int
verify(const char *tok, bool with_secret, char *reason)
{
	struct jwt_expect e = {
		.key = with_secret ? SECRET : NULL,
		.keylen = with_secret ? strlen(SECRET) : 0,
		.keys = keys, .audience = AUD, .issuer = ISS, .now = NOW,
		.leeway = JWT_LEEWAY, .require_sub = true,
	};
	struct jwt_claims c;
	int r;

	reason[0] = '\0';
	memset(&c, 0, sizeof(c));
	r = jwt_verify(&e, tok, &c, reason, JWT_REASON_MAX);
	if (r == 0)
		assert_string_equal(c.sub, SUB);
	return r;
}

static void
assert_fails(int r, int want_r, const char *reason, const char *want)
{
	if (r != want_r)
		fail_msg("got %d, not %d (%s)", r, want_r, reason);
	if (strstr(reason, want) == NULL)
		fail_msg("reason '%s' does not say '%s'", reason, want);
	assert_null(strstr(reason, "eyJ"));
	assert_null(strstr(reason, RS_KID));
}

static int
setup(void **state)
{
	char err[JWS_REASON_MAX];

	rsa1 = load(pem_rsa1);
	rsa2 = load(pem_rsa2);
	rsaweak = load(pem_rsaweak);
	ec1 = load(pem_ec1);
	ec2 = load(pem_ec2);
	snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}",
	    jwk(rsa1, RS_KID, "\"use\":\"sig\",\"alg\":\"RS256\","),
	    jwk(ec1, EC_KID, "\"use\":\"sig\",\"alg\":\"ES256\","));
	if (jws_keys_parse(doc, strlen(doc), NULL, NULL, &keys, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	jws_keys_free(keys);
	EVP_PKEY_free(rsa1);
	EVP_PKEY_free(rsa2);
	EVP_PKEY_free(rsaweak);
	EVP_PKEY_free(ec1);
	EVP_PKEY_free(ec2);
	return 0;
}

static void
test_valid(void **state)
{
	char reason[JWT_REASON_MAX];

	assert_int_equal(jws_keys_count(keys), 2);
	assert_int_equal(jws_key_alg(jws_keys_find(keys, RS_KID)), JWS_RS256);
	assert_int_equal(jws_key_alg(jws_keys_find(keys, EC_KID)), JWS_ES256);
	sign(rsa1, RS_HDR, claims(3600));
	assert_int_equal(verify(token, false, reason), 0);
	assert_int_equal(verify(token, true, reason), 0);
	sign(ec1, EC_HDR, claims(3600));
	assert_int_equal(verify(token, false, reason), 0);
	assert_int_equal(verify(token, true, reason), 0);
	/* HS256 with the secret still works beside the set. */
	sign_hs(SECRET, strlen(SECRET), "{\"alg\":\"HS256\"}", claims(60));
	assert_int_equal(verify(token, true, reason), 0);
	/* ... and is refused when no secret is configured. */
	assert_fails(verify(token, false, reason), -EPROTO, reason,
	    "alg HS256 is not accepted");
}

static void
test_unknown_kid(void **state)
{
	char reason[JWT_REASON_MAX];

	sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"rsa-2027-01\"}", claims(60));
	assert_fails(verify(token, true, reason), -ENOKEY, reason,
	    "kid is not in the project's JWKS");
	sign(ec1, "{\"alg\":\"ES256\",\"kid\":\"" RS_KID "x\"}", claims(60));
	assert_int_equal(verify(token, true, reason), -ENOKEY);
	/* No kid at all: no key to try. */
	sign(rsa1, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", claims(60));
	assert_fails(verify(token, true, reason), -EACCES, reason,
	    "without a kid");
	/* Without a set, RS256 is not accepted at all. */
	{
		struct jwt_expect e = { .key = SECRET, .keylen = strlen(SECRET),
		    .audience = AUD, .now = NOW };
		struct jwt_claims c;

		sign(rsa1, RS_HDR, claims(60));
		assert_fails(jwt_verify(&e, token, &c, reason, sizeof(reason)),
		    -EPROTO, reason, "alg RS256 is not accepted");
	}
}

static void
test_forged(void **state)
{
	char reason[JWT_REASON_MAX], good[sizeof(token)], evil[sizeof(token)];

	/* Another key that claims the kid. */
	sign(rsa2, RS_HDR, claims(3600));
	assert_fails(verify(token, true, reason), -EACCES, reason,
	    "signature does not match");
	sign(ec2, EC_HDR, claims(3600));
	assert_fails(verify(token, true, reason), -EACCES, reason,
	    "signature does not match");
	/* A good signature over another payload. */
	sign(rsa1, RS_HDR, claims(3600));
	strcpy(good, token);
	sign(rsa1, RS_HDR, claims(7200));
	snprintf(evil, sizeof(evil), "%.*s%s",
	    (int)(strrchr(token, '.') - token), token, strrchr(good, '.'));
	assert_int_equal(verify(evil, true, reason), -EACCES);
	sign(ec1, EC_HDR, claims(3600));
	strcpy(good, token);
	sign(ec1, EC_HDR, claims(7200));
	snprintf(evil, sizeof(evil), "%.*s%s",
	    (int)(strrchr(token, '.') - token), token, strrchr(good, '.'));
	assert_int_equal(verify(evil, true, reason), -EACCES);
	/* The claims are still checked once the signature holds. */
	sign(ec1, EC_HDR, claims(-3600));
	assert_fails(verify(token, true, reason), -ETIME, reason, "expired");
}

static void
test_alg_none(void **state)
{
	char reason[JWT_REASON_MAX];

	assemble("{\"alg\":\"none\",\"kid\":\"" RS_KID "\"}", claims(60),
	    (const unsigned char *)"", 0);
	assert_fails(verify(token, false, reason), -EPROTO, reason,
	    "alg none");
	assert_fails(verify(token, true, reason), -EPROTO, reason,
	    "alg none");
	sign(rsa1, "{\"alg\":\"RS512\",\"kid\":\"" RS_KID "\"}", claims(60));
	assert_fails(verify(token, true, reason), -EPROTO, reason,
	    "alg (other) is not accepted");
	sign(rsa1, "{\"alg\":\"PS256\",\"kid\":\"" RS_KID "\"}", claims(60));
	assert_int_equal(verify(token, true, reason), -EPROTO);
}

/* HS256 "signed" with the RSA public key's bytes, by the RSA key's kid. */
static void
test_alg_confusion(void **state)
{
	char reason[JWT_REASON_MAX], pem[4096];
	unsigned char *der = NULL;
	BIO *b = BIO_new(BIO_s_mem());
	int derlen, pemlen;

	derlen = i2d_PUBKEY(rsa1, &der);
	assert_true(derlen > 0);
	assert_int_equal(PEM_write_bio_PUBKEY(b, rsa1), 1);
	pemlen = BIO_read(b, pem, sizeof(pem));
	assert_true(pemlen > 0);
	BIO_free(b);
	sign_hs(der, (size_t)derlen, "{\"alg\":\"HS256\",\"kid\":\"" RS_KID
	    "\"}", claims(60));
	assert_fails(verify(token, true, reason), -EACCES, reason,
	    "signature does not match");
	assert_fails(verify(token, false, reason), -EPROTO, reason,
	    "alg HS256 is not accepted");
	sign_hs(pem, (size_t)pemlen, "{\"alg\":\"HS256\",\"kid\":\"" RS_KID
	    "\"}", claims(60));
	assert_int_equal(verify(token, true, reason), -EACCES);
	assert_int_equal(verify(token, false, reason), -EPROTO);
	OPENSSL_free(der);
}

static void
test_wrong_key_type(void **state)
{
	char reason[JWT_REASON_MAX];

	/* ES256 by the RSA key's kid, and the other way round. */
	sign(ec1, "{\"alg\":\"ES256\",\"kid\":\"" RS_KID "\"}", claims(60));
	assert_fails(verify(token, true, reason), -EPROTO, reason,
	    "alg ES256 does not fit the key of that kid (an RSA key)");
	sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"" EC_KID "\"}", claims(60));
	assert_fails(verify(token, true, reason), -EPROTO, reason,
	    "(an EC key)");
}

static void
test_bad_lengths(void **state)
{
	static const size_t es[] = { 0, 32, 63, 65, 72 };
	static const size_t rs[] = { 0, 64, 255, 257, 512 };
	unsigned char sig[SIG_MAX];
	char reason[JWT_REASON_MAX];

	memset(sig, 0x5a, sizeof(sig));
	for (size_t i = 0; i < sizeof(es) / sizeof(es[0]); i++) {
		assemble(EC_HDR, claims(60), sig, es[i]);
		assert_fails(verify(token, true, reason), -EACCES, reason,
		    "bytes, not 64");
	}
	for (size_t i = 0; i < sizeof(rs) / sizeof(rs[0]); i++) {
		assemble(RS_HDR, claims(60), sig, rs[i]);
		assert_fails(verify(token, true, reason), -EACCES, reason,
		    "bytes, not 256");
	}
	/* A DER signature is not the JWS form. */
	{
		unsigned char der[SIG_MAX];
		size_t derlen = sizeof(der);
		EVP_MD_CTX *md = EVP_MD_CTX_new();

		assemble(EC_HDR, claims(60), (const unsigned char *)"", 0);
		assert_int_equal(EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL,
		    NULL, ec1, NULL), 1);
		assert_int_equal(EVP_DigestSign(md, der, &derlen,
		    (unsigned char *)token, strlen(token) - 1), 1);
		EVP_MD_CTX_free(md);
		assemble(EC_HDR, claims(60), der, derlen);
		assert_int_equal(verify(token, true, reason), -EACCES);
	}
	/* r or s zero, and both all ones (past the order). */
	memset(sig, 0, 64);
	sig[63] = 1;
	assemble(EC_HDR, claims(60), sig, 64);
	assert_fails(verify(token, true, reason), -EACCES, reason,
	    "does not match");
	memset(sig, 0, 64);
	sig[31] = 1;
	assemble(EC_HDR, claims(60), sig, 64);
	assert_int_equal(verify(token, true, reason), -EACCES);
	memset(sig, 0xff, 64);
	assemble(EC_HDR, claims(60), sig, 64);
	assert_int_equal(verify(token, true, reason), -EACCES);
}

static void
test_header(void **state)
{
	char reason[JWT_REASON_MAX], hdr[512];

	sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"" RS_KID "\",\"crit\":"
	    "[\"exp\"],\"exp\":1}", claims(60));
	assert_fails(verify(token, true, reason), -EBADMSG, reason, "crit");
	sign(rsa1, "{\"alg\":\"RS256\",\"kid\":7}", claims(60));
	assert_fails(verify(token, true, reason), -EBADMSG, reason, "kid");
	sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"\"}", claims(60));
	assert_int_equal(verify(token, true, reason), -EBADMSG);
	sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"a b\"}", claims(60));
	assert_int_equal(verify(token, true, reason), -EBADMSG);
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"kid\":\"%0129d\"}",
	    0);
	sign(rsa1, hdr, claims(60));
	assert_int_equal(verify(token, true, reason), -EBADMSG);
	/* Two kids: duplicate names are refused. */
	sign(rsa1, "{\"alg\":\"RS256\",\"kid\":\"x\",\"kid\":\"" RS_KID "\"}",
	    claims(60));
	assert_fails(verify(token, true, reason), -EBADMSG, reason,
	    "header is not a JSON object");
	/* A jwk or jku in the header is never used as the key. */
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"kid\":\"%s\","
	    "\"jku\":\"http://evil.test/jwks\"}", RS_KID);
	sign(rsa2, hdr, claims(60));
	assert_int_equal(verify(token, true, reason), -EACCES);
}

/* What a skip callback saw. */
struct skips {
	size_t	n;
	size_t	index[8];
	char	why[8][JWS_REASON_MAX];
};

static void
record(size_t index, const char *why, void *arg)
{
	struct skips *s = arg;

	if (s->n < 8) {
		s->index[s->n] = index;
		snprintf(s->why[s->n], sizeof(s->why[0]), "%s", why);
	}
	s->n++;
}

static void
test_jwks_skips(void **state)
{
	char offcurve[8192], good[8192], *y;
	const struct {
		const char *jwk;
		const char *why;
	} cases[] = {
		{ "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed\","
		    "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
		    "kty is not RSA or EC" },
		{ "{\"kty\":\"oct\",\"kid\":\"hs\",\"k\":\"c2VjcmV0\"}",
		    "symmetric" },
		{ jwk(rsa2, "r1", "\"alg\":\"RS512\","), "other than RS256" },
		{ jwk(ec2, "e1", "\"alg\":\"ES384\","), "other than ES256" },
		{ jwk(rsa2, "r2", "\"use\":\"enc\","), "not for signatures" },
		{ jwk(rsa2, "r3", "\"key_ops\":[\"encrypt\"],"),
		    "not for signatures" },
		{ jwk(rsa2, "r4", "\"d\":\"AQAB\","), "private" },
		{ jwk(rsaweak, "r5", ""), "2048" },
		{ jwk(rsa2, "", ""), "no kid" },
		{ jwk(rsa2, RS_KID, ""), "seen before" },
		{ "{\"kty\":\"EC\",\"crv\":\"P-384\",\"kid\":\"e2\","
		    "\"x\":\"AA\",\"y\":\"AA\"}", "P-256" },
		{ "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"e3\","
		    "\"x\":\"AAAA\",\"y\":\"AAAA\"}", "32 bytes" },
		{ "{\"kty\":\"RSA\",\"kid\":\"r6\",\"n\":\"A!\","
		    "\"e\":\"AQAB\"}", "base64url" },
		{ "{\"kty\":\"RSA\",\"kid\":\"r7\",\"e\":\"AQAB\"}",
		    "missing" },
		{ "[1]", "not a JSON object" },
		{ offcurve, "not on P-256" },
	};
	struct jws_keys *set;
	struct skips sk;
	char err[JWS_REASON_MAX];

	snprintf(good, sizeof(good), "%s", jwk(rsa1, RS_KID, ""));
	snprintf(offcurve, sizeof(offcurve), "%s", jwk(ec2, "e4", ""));
	y = strstr(offcurve, "\"y\":\"") + 5;
	*y = *y == 'A' ? 'B' : 'A';
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* Each bad key beside a good one: skipped, the rest kept. */
		snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", good,
		    cases[i].jwk);
		memset(&sk, 0, sizeof(sk));
		set = NULL;
		if (jws_keys_parse(doc, strlen(doc), record, &sk, &set, err,
		    sizeof(err)) != 0)
			fail_msg("case %zu: %s", i, err);
		if (jws_keys_count(set) != 1 || sk.n != 1)
			fail_msg("case %zu: %zu keys kept, %zu skipped", i,
			    jws_keys_count(set), sk.n);
		assert_int_equal(sk.index[0], 1);
		if (strstr(sk.why[0], cases[i].why) == NULL)
			fail_msg("case %zu: '%s' does not say '%s'", i,
			    sk.why[0], cases[i].why);
		jws_keys_free(set);
		/* Alone, it leaves no usable key (a duplicate is no more). */
		if (strcmp(cases[i].why, "seen before") == 0)
			continue;
		snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", cases[i].jwk);
		set = NULL;
		assert_int_equal(jws_keys_parse(doc, strlen(doc), NULL, NULL,
		    &set, err, sizeof(err)), -ENOKEY);
		assert_null(set);
	}
}

static void
test_jwks_refused(void **state)
{
	static const char *const bad[] = {
		"", "[]", "{}", "{\"keys\":{}}", "{\"keys\":[]}x", "null",
		"{\"keys\":[],\"keys\":[]}",
	};
	struct jws_keys *set = NULL;
	struct skips sk;
	char err[JWS_REASON_MAX];
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(jws_keys_parse(bad[i], strlen(bad[i]), NULL,
		    NULL, &set, err, sizeof(err)), -EBADMSG);
	assert_int_equal(jws_keys_parse("{\"keys\":[]}", 11, NULL, NULL, &set,
	    err, sizeof(err)), -ENOKEY);
	assert_null(set);
	/* Over JWKS_DOC_MAX: refused before it is parsed. */
	n = (size_t)snprintf(doc, sizeof(doc), "{\"keys\":[%s],\"pad\":\"",
	    jwk(ec1, EC_KID, ""));
	memset(doc + n, 'a', JWKS_DOC_MAX - n);
	strcpy(doc + JWKS_DOC_MAX, "\"}");
	assert_int_equal(jws_keys_parse(doc, strlen(doc), NULL, NULL, &set,
	    err, sizeof(err)), -EMSGSIZE);
	assert_non_null(strstr(err, "limit"));
	/* Past JWKS_KEYS_MAX keys: the first are kept, the rest skipped. */
	n = (size_t)snprintf(doc, sizeof(doc), "{\"keys\":[");
	for (int i = 0; i < JWKS_KEYS_MAX + 2; i++) {
		char kid[16];

		snprintf(kid, sizeof(kid), "k%d", i);
		n += (size_t)snprintf(doc + n, sizeof(doc) - n, "%s%s",
		    i > 0 ? "," : "", jwk(ec1, kid, ""));
	}
	snprintf(doc + n, sizeof(doc) - n, "]}");
	memset(&sk, 0, sizeof(sk));
	assert_int_equal(jws_keys_parse(doc, strlen(doc), record, &sk, &set,
	    err, sizeof(err)), 0);
	assert_int_equal(jws_keys_count(set), JWKS_KEYS_MAX);
	assert_int_equal(sk.n, 2);
	assert_non_null(strstr(sk.why[0], "limit"));
	assert_non_null(jws_keys_find(set, "k31"));
	assert_null(jws_keys_find(set, "k32"));
	assert_null(jws_keys_find(set, NULL));
	jws_keys_free(set);
}

static void
test_keys_same(void **state)
{
	struct jws_keys *a = NULL, *b = NULL, *empty = jws_keys_new();
	char err[JWS_REASON_MAX];

	snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", jwk(rsa1, "a", ""),
	    jwk(ec1, "b", ""));
	assert_int_equal(jws_keys_parse(doc, strlen(doc), NULL, NULL, &a, err,
	    sizeof(err)), 0);
	assert_true(jws_keys_same(a, a));
	assert_false(jws_keys_same(a, keys));	/* other kids */
	assert_false(jws_keys_same(a, empty));
	assert_true(jws_keys_same(empty, empty));
	/* Same kids, another key behind one. */
	snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", jwk(rsa1, "a", ""),
	    jwk(ec2, "b", ""));
	assert_int_equal(jws_keys_parse(doc, strlen(doc), NULL, NULL, &b, err,
	    sizeof(err)), 0);
	assert_false(jws_keys_same(a, b));
	jws_keys_free(a);
	jws_keys_free(b);
	jws_keys_free(empty);
	jws_keys_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_unknown_kid),
		cmocka_unit_test(test_forged),
		cmocka_unit_test(test_alg_none),
		cmocka_unit_test(test_alg_confusion),
		cmocka_unit_test(test_wrong_key_type),
		cmocka_unit_test(test_bad_lengths),
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_jwks_skips),
		cmocka_unit_test(test_jwks_refused),
		cmocka_unit_test(test_keys_same),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
