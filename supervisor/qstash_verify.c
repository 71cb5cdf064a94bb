/*
 * Upstash-Signature, checked the way qstash-js's Receiver does it, with
 * two deliberate differences: alg is pinned to HS256 (the header is read
 * first, by the JWS core in jws.h, so "none" or an RSA alg never reaches
 * a key), and
 * every claim QStash sets is required rather than optional.  The payload
 * is parsed only once a signature matched.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "common/base64.h"
#include "common/sha256.h"

#include "supervisor/jws.h"
#include "supervisor/qstash_verify.h"

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
		return jws_fail(reason, rsz, -EBADMSG, "signature: payload is "
		    "not a JSON object");
	for (i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		if (!json_is_string(json_object_get(claims, strings[i])))
			return jws_fail(reason, rsz, -EBADMSG, "signature: "
			    "claim '%s' missing or not a string", strings[i]);
	for (i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++)
		if (jws_claim_number(claims, numbers[i], &t[i]) != 0)
			return jws_fail(reason, rsz, -EBADMSG, "signature: "
			    "claim '%s' missing or not a number", numbers[i]);
	exp = t[0];
	nbf = t[1];
	if (strcmp(json_string_value(json_object_get(claims, "iss")),
	    "Upstash") != 0)
		return jws_fail(reason, rsz, -EPERM, "signature: iss is not "
		    "\"Upstash\"");
	if (a->now >= exp + a->tolerance)
		return jws_fail(reason, rsz, -ETIME, "signature: expired %lld "
		    "s ago", (long long)(a->now - exp));
	if (a->now + a->tolerance < nbf)
		return jws_fail(reason, rsz, -ETIME, "signature: not yet valid "
		    "(nbf is %lld s ahead)", (long long)(nbf - a->now));
	if (a->url != NULL && strcmp(json_string_value(json_object_get(claims,
	    "sub")), a->url) != 0)
		return jws_fail(reason, rsz, -EPERM, "signature: sub is not "
		    "the expected URL");

	sha256_init(&ctx);
	sha256_update(&ctx, body, len);
	sha256_final(&ctx, digest);
	n = base64url_encode(digest, sizeof(digest), want);
	got = json_string_value(json_object_get(claims, "body"));
	if (unpadded_len(got) != n || memcmp(got, want, n) != 0)
		return jws_fail(reason, rsz, -EPERM, "signature: body hash "
		    "mismatch");
	return 0;
}

int
qstash_verify(const struct qstash_verify_args *a, const char *sig,
    const void *body, size_t len, char *reason, size_t rsz)
{
	struct jws j = { 0 };
	json_t *claims = NULL, *typ;
	json_error_t jerr;
	int r;

	if (a == NULL || a->current_key == NULL || *a->current_key == '\0')
		return jws_fail(reason, rsz, -EINVAL, "signature: no current "
		    "signing key configured");
	if (sig == NULL || *sig == '\0')
		return jws_fail(reason, rsz, -EBADMSG, "signature: header "
		    "missing or empty");
	if ((r = jws_decode(sig, QSTASH_SIGNATURE_MAX, "signature", &j, reason,
	    rsz)) < 0)
		return r;
	/* No alg at all is "not HS256" here, as qstash-js has it. */
	if (!json_is_string(json_object_get(j.header, "alg"))) {
		r = jws_fail(reason, rsz, -EPROTO, "signature: alg is not "
		    "HS256");
		goto out;
	}
	if ((r = jws_check_alg(&j, JWS_HS256, "signature", reason, rsz)) < 0)
		goto out;
	typ = json_object_get(j.header, "typ");
	if (typ != NULL && (!json_is_string(typ) ||
	    strcmp(json_string_value(typ), "JWT") != 0)) {
		r = jws_fail(reason, rsz, -EBADMSG, "signature: typ is not "
		    "JWT");
		goto out;
	}

	/* Current key, then next: rolling makes the next key current. */
	if (!jws_hs256_ok(&j, a->current_key, strlen(a->current_key)) &&
	    (a->next_key == NULL ||
	    !jws_hs256_ok(&j, a->next_key, strlen(a->next_key)))) {
		r = jws_fail(reason, rsz, -EACCES, "signature: does not match "
		    "the current or the next signing key");
		goto out;
	}

	claims = json_loadb(j.payload, j.payload_len, JSON_REJECT_DUPLICATES,
	    &jerr);
	r = check_claims(a, claims, body, len, reason, rsz);
out:
	json_decref(claims);
	jws_release(&j);
	return r;
}
