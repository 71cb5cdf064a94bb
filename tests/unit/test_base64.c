/*
 * Unit tests for common/base64.c: the RFC 4648 §10 vectors in the URL
 * alphabet, padded and unpadded input, the characters only base64url has,
 * and the spellings decoding must refuse.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/base64.h"

static const struct {
	const char *raw;
	const char *enc;
} vectors[] = {
	{ "", "" },
	{ "f", "Zg" },
	{ "fo", "Zm8" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg" },
	{ "fooba", "Zm9vYmE" },
	{ "foobar", "Zm9vYmFy" },
};

static void
test_encode(void **state)
{
	char out[64];
	size_t i, n;

	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		n = base64url_encode(vectors[i].raw, strlen(vectors[i].raw),
		    out);
		assert_int_equal(n, strlen(vectors[i].enc));
		assert_int_equal(n, BASE64URL_LEN(strlen(vectors[i].raw)));
		assert_string_equal(out, vectors[i].enc);
	}
}

static void
test_decode_both_forms(void **state)
{
	static const char *const padded[] = {
		"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy",
	};
	char out[64];
	size_t i, n;

	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		assert_int_equal(base64url_decode(vectors[i].enc,
		    strlen(vectors[i].enc), out, sizeof(out), &n), 0);
		assert_int_equal(n, strlen(vectors[i].raw));
		assert_memory_equal(out, vectors[i].raw, n);
		assert_int_equal(base64url_decode(padded[i], strlen(padded[i]),
		    out, sizeof(out), &n), 0);
		assert_int_equal(n, strlen(vectors[i].raw));
		assert_memory_equal(out, vectors[i].raw, n);
	}
}

/* 0xfb 0xff 0xbf uses the two characters that differ from base64. */
static void
test_url_alphabet(void **state)
{
	static const unsigned char raw[] = { 0xfb, 0xff, 0xbf, 0x00 };
	unsigned char back[8];
	char out[16];
	size_t n;

	base64url_encode(raw, sizeof(raw), out);
	assert_string_equal(out, "-_-_AA");
	assert_int_equal(base64url_decode(out, strlen(out), back, sizeof(back),
	    &n), 0);
	assert_int_equal(n, sizeof(raw));
	assert_memory_equal(back, raw, n);
	/* The standard alphabet's '+' and '/' are not base64url. */
	assert_int_equal(base64url_decode("+/+/AA", 6, back, sizeof(back), &n),
	    -EINVAL);
}

static void
test_decode_refused(void **state)
{
	static const char *const bad[] = {
		"Z",		/* a length no encoding has */
		"Zm9vY",
		"Zh",		/* unused bits set: "Zg" spelled twice */
		"Zm9",
		"Zg=",		/* padding that does not complete a quantum */
		"Zg===",
		"Z===",
		"====",
		"Zm8==",
		"Zm=8",		/* padding in the middle */
		"Zm 8",
		"Zm8\n",
		"Zm\x80" "8",
	};
	char out[64];
	size_t i, n = 999;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(base64url_decode(bad[i], strlen(bad[i]), out,
		    sizeof(out), &n), -EINVAL);
		assert_int_equal(n, 999);	/* untouched on failure */
	}
}

static void
test_decode_bounds(void **state)
{
	char out[6];
	size_t n = 0;

	assert_int_equal(base64url_decode("Zm9vYmFy", 8, out, 5, &n),
	    -EMSGSIZE);
	assert_int_equal(base64url_decode("Zm9vYmFy", 8, out, 6, &n), 0);
	assert_int_equal(n, 6);
	/* Only len characters are read: the rest may be anything. */
	assert_int_equal(base64url_decode("Zm9v!!!", 4, out, sizeof(out), &n),
	    0);
	assert_int_equal(n, 3);
	assert_true(BASE64URL_DECODED_MAX(8) >= 6);
}

/* Every length and byte value survives a round trip. */
static void
test_round_trip(void **state)
{
	unsigned char raw[300], back[300];
	char enc[BASE64URL_LEN(300) + 1];
	size_t len, i, n;

	for (i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(i * 151 + 7);
	for (len = 0; len <= sizeof(raw); len++) {
		n = base64url_encode(raw, len, enc);
		assert_int_equal(n, BASE64URL_LEN(len));
		assert_int_equal(base64url_decode(enc, n, back, sizeof(back),
		    &i), 0);
		assert_int_equal(i, len);
		assert_memory_equal(back, raw, len);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_decode_both_forms),
		cmocka_unit_test(test_url_alphabet),
		cmocka_unit_test(test_decode_refused),
		cmocka_unit_test(test_decode_bounds),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
