/*
 * Unit tests for common/sha256.c: the FIPS 180-4 / NIST example vectors,
 * a million 'a's, and every split of a message across update() calls
 * around the 55/56/64-byte padding edges.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/sha256.h"

static void
test_vectors(void **state)
{
	static const struct {
		const char *in;
		const char *hex;
	} cases[] = {
		{ "", "e3b0c44298fc1c149afbf4c8996fb924"
		    "27ae41e4649b934ca495991b7852b855" },
		{ "abc", "ba7816bf8f01cfea414140de5dae2223"
		    "b00361a396177a9cb410ff61f20015ad" },
		{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		    "248d6a61d20638b8e5c026930c3e6039"
		    "a33ce45964ff2167f6ecedd419db06c1" },
		{ "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
		    "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		    "cf5b16a778af8380036ce59e7b049237"
		    "0b249b11e8f07a51afac45037afee9d1" },
		{ "The quick brown fox jumps over the lazy dog",
		    "d7a8fbb307d7809469ca9abcb0082e4f"
		    "8d5651e46d3cdb762d02d0bf37c9e592" },
	};
	char hex[SHA256_HEX_LEN + 1];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sha256_hex(cases[i].in, strlen(cases[i].in), hex);
		assert_string_equal(hex, cases[i].hex);
	}
}

static void
test_million_a(void **state)
{
	static const unsigned char want[SHA256_DIGEST_LEN] = {
		0xcd, 0xc7, 0x6e, 0x5c, 0x99, 0x14, 0xfb, 0x92,
		0x81, 0xa1, 0xc7, 0xe2, 0x84, 0xd7, 0x3e, 0x67,
		0xf1, 0x80, 0x9a, 0x48, 0xa4, 0x97, 0x20, 0x0e,
		0x04, 0x6d, 0x39, 0xcc, 0xc7, 0x11, 0x2c, 0xd0,
	};
	unsigned char chunk[1000], digest[SHA256_DIGEST_LEN];
	struct sha256 ctx;
	int i;

	memset(chunk, 'a', sizeof(chunk));
	sha256_init(&ctx);
	for (i = 0; i < 1000; i++)
		sha256_update(&ctx, chunk, sizeof(chunk));
	sha256_final(&ctx, digest);
	assert_memory_equal(digest, want, sizeof(want));
}

/* Any split of the input across updates gives the one-call digest. */
static void
test_splits(void **state)
{
	unsigned char msg[130], one[SHA256_DIGEST_LEN], two[SHA256_DIGEST_LEN];
	struct sha256 ctx;
	size_t len, cut;

	for (len = 0; len < sizeof(msg); len++)
		msg[len] = (unsigned char)(len * 7 + 3);
	for (len = 50; len < sizeof(msg); len++) {
		sha256_init(&ctx);
		sha256_update(&ctx, msg, len);
		sha256_final(&ctx, one);
		for (cut = 0; cut <= len; cut++) {
			sha256_init(&ctx);
			sha256_update(&ctx, msg, cut);
			sha256_update(&ctx, msg + cut, len - cut);
			sha256_final(&ctx, two);
			assert_memory_equal(one, two, sizeof(one));
		}
	}
}

/* 55, 56 and 64 bytes: the padding edges (values from sha256sum). */
static void
test_padding_edges(void **state)
{
	static const struct {
		size_t n;
		const char *hex;
	} cases[] = {
		{ 55, "9f4390f8d30c2dd92ec9f095b65e2b9a"
		    "e9b0a925a5258e241c9f1e910f734318" },
		{ 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f"
		    "590ce20f1bde7090ef7970686ec6738a" },
		{ 64, "ffe054fe7ae0cb6dc65c3af9b61d5209"
		    "f439851db43d0ba5997337df154668eb" },
	};
	char buf[64], hex[SHA256_HEX_LEN + 1];
	size_t i;

	memset(buf, 'a', sizeof(buf));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sha256_hex(buf, cases[i].n, hex);
		assert_string_equal(hex, cases[i].hex);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_million_a),
		cmocka_unit_test(test_splits),
		cmocka_unit_test(test_padding_edges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
