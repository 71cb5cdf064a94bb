/*
 * jws_sign: make a compact JWS for the integration tests, as Supabase's
 * auth server signs access tokens.
 *
 *   jws_sign ALG KEYFILE KID < payload
 *
 * ALG RS256 or ES256: KEYFILE is a PEM private key (RSA, or EC P-256; the
 * ES256 signature is the raw r || s of RFC 7518 §3.4).  ALG HS256:
 * KEYFILE's bytes are the HMAC key (so a test can "sign" with a public
 * key's PEM, the alg confusion attack).  The header is {"alg", "typ":
 * "JWT", "kid"}, without kid when KID is "-".  Any other ALG is written
 * into the header as it is and the token signed as HS256 would be.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "common/base64.h"

#define IN_MAX	(64 * 1024)
#define SIG_MAX	1024

static char *
slurp(FILE *f, size_t *ret_len)
{
	char *p = malloc(IN_MAX + 1);
	size_t n;

	if (p == NULL)
		exit(2);
	n = fread(p, 1, IN_MAX, f);
	if (ferror(f) || !feof(f)) {
		fprintf(stderr, "jws_sign: input over %d bytes or unreadable\n",
		    IN_MAX);
		exit(2);
	}
	p[n] = '\0';
	*ret_len = n;
	return p;
}

static void
put_b64(const void *p, size_t n)
{
	char *out = malloc(BASE64URL_LEN(n) + 1);

	if (out == NULL)
		exit(2);
	base64url_encode(p, n, out);
	fputs(out, stdout);
	free(out);
}

/* Sign input with the PEM key in file; raw r || s for EC. */
static size_t
sign_pkey(const char *file, const char *input, size_t len,
    unsigned char *sig)
{
	unsigned char der[SIG_MAX];
	const unsigned char *p = der;
	size_t derlen = sizeof(der);
	const BIGNUM *r, *s;
	EVP_MD_CTX *md;
	EVP_PKEY *k;
	ECDSA_SIG *es;
	BIO *b;

	if ((b = BIO_new_file(file, "r")) == NULL ||
	    (k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) == NULL) {
		fprintf(stderr, "jws_sign: no PEM private key in %s\n", file);
		exit(2);
	}
	BIO_free(b);
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, k,
	    NULL) != 1 || EVP_DigestSign(md, der, &derlen,
	    (const unsigned char *)input, len) != 1) {
		fprintf(stderr, "jws_sign: cannot sign with %s\n", file);
		exit(2);
	}
	EVP_MD_CTX_free(md);
	if (!EVP_PKEY_is_a(k, "EC")) {
		EVP_PKEY_free(k);
		memcpy(sig, der, derlen);
		return derlen;
	}
	EVP_PKEY_free(k);
	if ((es = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) == NULL)
		exit(2);
	ECDSA_SIG_get0(es, &r, &s);
	if (BN_bn2binpad(r, sig, 32) != 32 ||
	    BN_bn2binpad(s, sig + 32, 32) != 32)
		exit(2);
	ECDSA_SIG_free(es);
	return 64;
}

int
main(int argc, char **argv)
{
	unsigned char sig[SIG_MAX];
	char header[512], *payload, *input, *key;
	unsigned int maclen;
	size_t plen, klen, n, siglen;
	FILE *f;

	if (argc != 4 || strlen(argv[1]) > 16 || strlen(argv[3]) > 256 ||
	    strchr(argv[3], '"') != NULL) {
		fprintf(stderr, "usage: jws_sign RS256|ES256|HS256 KEYFILE KID "
		    "< payload\n");
		return 2;
	}
	if (strcmp(argv[3], "-") == 0)
		snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":"
		    "\"JWT\"}", argv[1]);
	else
		snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":"
		    "\"JWT\",\"kid\":\"%s\"}", argv[1], argv[3]);
	payload = slurp(stdin, &plen);
	n = BASE64URL_LEN(strlen(header)) + 1 + BASE64URL_LEN(plen);
	if ((input = malloc(n + 1)) == NULL)
		return 2;
	n = base64url_encode(header, strlen(header), input);
	input[n++] = '.';
	n += base64url_encode(payload, plen, input + n);
	if (strcmp(argv[1], "RS256") == 0 || strcmp(argv[1], "ES256") == 0)
		siglen = sign_pkey(argv[2], input, n, sig);
	else {
		if ((f = fopen(argv[2], "rb")) == NULL) {
			fprintf(stderr, "jws_sign: cannot read %s\n", argv[2]);
			return 2;
		}
		key = slurp(f, &klen);
		fclose(f);
		if (HMAC(EVP_sha256(), key, (int)klen,
		    (const unsigned char *)input, n, sig, &maclen) == NULL)
			return 2;
		siglen = maclen;
		free(key);
	}
	fputs(input, stdout);
	putchar('.');
	put_b64(sig, siglen);
	putchar('\n');
	free(input);
	free(payload);
	return 0;
}
