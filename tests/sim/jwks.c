/*
 * Supabase's JWKS endpoint (CONTRACTS §3), GET
 * /auth/v1/.well-known/jwks.json: the public halves of the keys a test
 * gave the simulator, as RS256 and ES256 JWKs ({kty, kid, use "sig", alg,
 * n and e, or crv P-256, x and y}).  The tests sign their tokens with the
 * private halves (tests/jws_sign), so what vetsyncd fetches here is what
 * verifies them.
 *
 * Steered with POST /__sim/jwks and a JSON object (loopback only, like
 * /__sim/control; a bad request changes nothing):
 *   keys [{"kid": K, "pem": FILE}, ...]   the keys served from now on (a
 *                                       PEM file, private or public, RSA
 *                                       or EC P-256): a new kid rotates
 *   status N                            answer N (200, or 4xx/5xx with an
 *                                       error body)
 *   slow_ms MS                          answer that much later
 *   pad_bytes N                         add a "pad" member of N bytes (an
 *                                       oversized document)
 *   reset true                          no keys, 200, no delay, no pad
 * GET /__sim/jwks shows the kids, the knobs and how many times the
 * document was asked for.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/log.h"

#include "tests/sim/services.h"
#include "tests/sim/sim.h"

#define JWKS_PATH	"/auth/v1/.well-known/jwks.json"
#define JWKS_PAD_MAX	(16 * 1024 * 1024)
#define JWKS_SLOW_MAX	600000
#define JWKS_BN_MAX	1024	/* bytes of an RSA modulus we serve */

static struct {
	json_t		*keys;		/* the JWKs served */
	uint64_t	 status;
	uint64_t	 slow_ms;
	uint64_t	 pad_bytes;
	uint64_t	 requests;
} jk = { .status = 200 };

static EVP_PKEY *
load(const char *file)
{
	EVP_PKEY *k = NULL;
	BIO *b;

	if ((b = BIO_new_file(file, "r")) == NULL)
		return NULL;
	k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
	if (k == NULL && BIO_reset(b) == 0)
		k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	ERR_clear_error();
	return k;
}

static json_t *
b64_json(const unsigned char *p, size_t n)
{
	char out[BASE64URL_LEN(JWKS_BN_MAX) + 1];

	base64url_encode(p, n, out);
	return json_string(out);
}

static json_t *
b64_bn(EVP_PKEY *k, const char *param)
{
	unsigned char bin[JWKS_BN_MAX];
	BIGNUM *bn = NULL;
	json_t *j = NULL;

	if (EVP_PKEY_get_bn_param(k, param, &bn) == 1 &&
	    BN_num_bytes(bn) <= JWKS_BN_MAX)
		j = b64_json(bin, (size_t)BN_bn2bin(bn, bin));
	BN_free(bn);
	return j;
}

/* The public JWK of k by kid, or NULL. */
static json_t *
jwk_of(EVP_PKEY *k, const char *kid)
{
	unsigned char pub[65];
	char group[32];
	size_t len;

	if (EVP_PKEY_is_a(k, "RSA"))
		return json_pack("{s:s,s:s,s:s,s:s,s:o*,s:o*}", "kty", "RSA",
		    "kid", kid, "use", "sig", "alg", "RS256",
		    "n", b64_bn(k, OSSL_PKEY_PARAM_RSA_N),
		    "e", b64_bn(k, OSSL_PKEY_PARAM_RSA_E));
	if (!EVP_PKEY_is_a(k, "EC") || EVP_PKEY_get_utf8_string_param(k,
	    OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) != 1 ||
	    strcmp(group, "prime256v1") != 0 ||
	    EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub,
	    sizeof(pub), &len) != 1 || len != sizeof(pub))
		return NULL;
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:o}", "kty", "EC",
	    "crv", "P-256", "kid", kid, "use", "sig", "alg", "ES256",
	    "x", b64_json(pub + 1, 32), "y", b64_json(pub + 33, 32));
}

/* keys [{kid, pem}] into a new array of JWKs, or NULL with err set. */
static json_t *
keys_of(json_t *list, struct buf *err)
{
	json_t *out = json_array(), *v, *j;
	const char *kid, *pem;
	EVP_PKEY *k;
	size_t i;

	if (!json_is_array(list)) {
		buf_printf(err, "jwks: keys is not an array");
		goto bad;
	}
	json_array_foreach(list, i, v) {
		kid = json_string_value(json_object_get(v, "kid"));
		pem = json_string_value(json_object_get(v, "pem"));
		if (kid == NULL || pem == NULL || *kid == '\0') {
			buf_printf(err, "jwks: key %zu needs kid and pem", i);
			goto bad;
		}
		if ((k = load(pem)) == NULL) {
			buf_printf(err, "jwks: key %zu: no PEM key in %s", i,
			    log_q(pem));
			goto bad;
		}
		j = jwk_of(k, kid);
		EVP_PKEY_free(k);
		if (j == NULL) {
			buf_printf(err, "jwks: key %zu: not RSA or EC P-256",
			    i);
			goto bad;
		}
		json_array_append_new(out, j);
	}
	return out;
bad:
	json_decref(out);
	return NULL;
}

int
jwks_control(struct evhttp_request *req, struct evbuffer *body)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	uint64_t status = jk.status, slow = jk.slow_ms, pad = jk.pad_bytes;
	json_t *top = NULL, *keys = NULL, *v;
	json_error_t jerr;
	const char *name;
	struct buf err;
	int code = 200;

	buf_init(&err, 1024);
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST)
		goto show;
	top = json_loadb((const char *)evbuffer_pullup(in, -1),
	    evbuffer_get_length(in), JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(top)) {
		buf_printf(&err, "jwks: not a JSON object");
		goto bad;
	}
	json_object_foreach(top, name, v) {
		if (strcmp(name, "keys") == 0) {
			if ((keys = keys_of(v, &err)) == NULL)
				goto bad;
		} else if (strcmp(name, "status") == 0) {
			if (services_json_u64(v, 599, &status) != 0 ||
			    status < 200) {
				buf_printf(&err, "jwks: status 200 to 599");
				goto bad;
			}
		} else if (strcmp(name, "slow_ms") == 0) {
			if (services_json_u64(v, JWKS_SLOW_MAX, &slow) != 0) {
				buf_printf(&err, "jwks: slow_ms 0 to %d",
				    JWKS_SLOW_MAX);
				goto bad;
			}
		} else if (strcmp(name, "pad_bytes") == 0) {
			if (services_json_u64(v, JWKS_PAD_MAX, &pad) != 0) {
				buf_printf(&err, "jwks: pad_bytes 0 to %d",
				    JWKS_PAD_MAX);
				goto bad;
			}
		} else if (strcmp(name, "reset") == 0 && json_is_true(v)) {
			status = 200;
			slow = pad = 0;
			if (keys == NULL)
				keys = json_array();
		} else {
			buf_printf(&err, "jwks: unknown knob '%s'", log_q(name));
			goto bad;
		}
	}
	if (keys != NULL) {
		json_decref(jk.keys);
		jk.keys = keys;
		keys = NULL;
	}
	jk.status = status;
	jk.slow_ms = slow;
	jk.pad_bytes = pad;
show:
	services_dump(body, json_pack("{s:I,s:I,s:I,s:I,s:o}",
	    "requests", (json_int_t)jk.requests,
	    "status", (json_int_t)jk.status,
	    "slow_ms", (json_int_t)jk.slow_ms,
	    "pad_bytes", (json_int_t)jk.pad_bytes,
	    "keys", jk.keys != NULL ? json_incref(jk.keys) : json_array()));
	goto out;
bad:
	code = 400;
	services_dump(body, json_pack("{s:s}", "error", err.data));
out:
	json_decref(keys);
	json_decref(top);
	buf_release(&err);
	return code;
}

bool
jwks_route(struct evhttp_request *req, const char *path)
{
	struct evbuffer *b;
	json_t *doc;
	char *pad;

	if (strcmp(path, JWKS_PATH) != 0)
		return false;
	jk.requests++;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		services_reply_json(req, 405, json_pack("{s:s}", "error",
		    "method not allowed"), 0);
		return true;
	}
	if (jk.status != 200) {
		services_reply_json(req, (int)jk.status, json_pack("{s:s}",
		    "error", "the simulator's jwks knob says so"), jk.slow_ms);
		return true;
	}
	doc = json_pack("{s:o}", "keys", jk.keys != NULL ?
	    json_incref(jk.keys) : json_array());
	if (jk.pad_bytes > 0) {
		if ((pad = malloc(jk.pad_bytes + 1)) == NULL)
			fatalx("out of memory");
		memset(pad, 'p', jk.pad_bytes);
		pad[jk.pad_bytes] = '\0';
		json_object_set_new(doc, "pad", json_string(pad));
		free(pad);
	}
	if ((b = evbuffer_new()) == NULL)
		fatalx("out of memory");
	services_dump(b, doc);
	services_reply(req, 200, b, jk.slow_ms);
	evbuffer_free(b);
	return true;
}

void
jwks_free(void)
{
	json_decref(jk.keys);
	jk.keys = NULL;
}
