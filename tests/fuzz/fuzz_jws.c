/*
 * libFuzzer target: the JWS core (supervisor/jws.c) on what the network
 * hands it.  The first byte picks the door: even, the rest is a JWKS
 * document for jws_keys_parse(); odd, it is a bearer token for
 * jwt_verify() with an HS256 secret and a key set of one RSA and one
 * P-256 key (so RS256 and ES256 tokens reach the EVP verification).
 * Seeds: tests/fuzz/corpus/jws.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/jws.h"
#include "supervisor/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Public halves of two test-only keys (tests/unit/test_jws.c's rsa1, ec1). */
static const char jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r\",\"e\":\"AQAB\",\"n\":"
    "\"6Nt9a1ZauCErwuAUkB2oPz6zYrIpKqD8t1CQyla-juSEKDg00QDkj7qEJDyolLsb3b"
    "wlVkISanfjGCtjt2rb_1SE3PydzAGCTwD7K_znjJMsRUomW06ICQboDXpBQNXOETizA6"
    "nEC1OiHZewWlfY49_hlMcBaTZnfus7R606XZUFISG4Euw_5uZRe6ocnBA66l4M0Wrv_1"
    "kNgS5qcfw5hw5qJyaFmyrdpYmWyDbW7r6dZs4ptUNutdLsXfZK-xnQtRdiSnR_glFVu3"
    "qX2kWsNUNEdcW1Q2l5DotyKTXQhw0B77pPw4a1v9zXLujp_h4m11R6RlwD-fu8APaK2O"
    "BoxQ"
    "\"},"
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"e\","
    "\"x\":\"GoWClcqYSqinILNPs4bYbHimofF1LbtjGTEyTWqTG8I\","
    "\"y\":\"FIeuFWrpRTzgHqrlzZrSvQVPlIjkA7fI7boxuWViqWM\"}]}";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct jws_keys *keys;
	char reason[JWT_REASON_MAX], *text;
	struct jws_keys *set = NULL;
	struct jwt_claims c;
	struct jwt_expect e = {
		.key = "fuzz-secret", .keylen = 11, .audience = "authenticated",
		.issuer = "https://fuzz.supabase.co/auth/v1", .now = 1764140000,
		.leeway = JWT_LEEWAY,
	};

	if (keys == NULL && jws_keys_parse(jwks, strlen(jwks), NULL, NULL,
	    &keys, reason, sizeof(reason)) != 0)
		abort();
	if (size == 0)
		return 0;
	if ((data[0] & 1) == 0) {
		if (jws_keys_parse((const char *)data + 1, size - 1, NULL,
		    NULL, &set, reason, sizeof(reason)) == 0)
			jws_keys_free(set);
		return 0;
	}
	if ((text = malloc(size)) == NULL)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	e.keys = keys;
	e.require_sub = (data[0] & 2) != 0;
	(void)jwt_verify(&e, text, &c, reason, sizeof(reason));
	free(text);
	return 0;
}
