/*
 * Unit tests for supervisor/credcrypt.c through its header: round trips of
 * every size up to the limit and of multi-byte UTF-8; a fresh IV for every
 * encryption; every kind of tampering (ciphertext, IV, tag, keyId) and of
 * malformed stored text, each with the message an operator reads (written
 * out by hand), the plaintext output left untouched and no secret in the
 * message; authentic text that is not UTF-8; re-encryption under another
 * key; a wrong and a missing key; the vectors that the PRD's own
 * TypeScript, run by Node (tests/crypto/aes-node.js), wrote into
 * tests/fixtures/credcrypt-vectors.json; and keys derived once per key
 * id, counted.  Master keys come from ENCRYPTION_KEY_<id>, set from the
 * fixture.  Runs under valgrind too, so it derives only a few keys.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#include "common/buf.h"
#include "common/xmalloc.h"

#include "supervisor/credcrypt.h"

#define K1	"fixture-k1"
#define K2	"Fixture_K2"
#define PLAIN	"correct horse battery staple"
#define BAD	"stored credential: "
#define AUTH1	"stored credential under key '" K1 "': authentication " \
	"failed (altered, or not encrypted with this key)"

static struct credcrypt *cc;	/* shared: its derivations are counted */
static json_t *fixture;		/* credcrypt-vectors.json */
static char *base;		/* PLAIN under K1 */
static char marker[] = "untouched";

static const char *
fixture_key(const char *id)
{
	return json_string_value(json_object_get(json_object_get(fixture,
	    "keys"), id));
}

static int
setup(void **state)
{
	const char *srcdir = getenv("top_srcdir"), *id;
	char *path, err[CREDCRYPT_ERR_MAX], env[128];
	json_error_t jerr;
	json_t *v;

	(void)state;
	path = xasprintf("%s/tests/fixtures/credcrypt-vectors.json",
	    srcdir != NULL ? srcdir : "..");
	fixture = json_load_file(path, 0, &jerr);
	if (fixture == NULL) {
		fprintf(stderr, "%s: %s\n", path, jerr.text);
		free(path);
		return -1;
	}
	free(path);
	unsetenv("CREDENTIALS_DIRECTORY");
	json_object_foreach(json_object_get(fixture, "keys"), id, v) {
		snprintf(env, sizeof(env), "ENCRYPTION_KEY_%s", id);
		setenv(env, json_string_value(v), 1);
	}
	if (credcrypt_new(&cc) < 0 || credcrypt_encrypt(cc, K1, PLAIN,
	    strlen(PLAIN), &base, err, sizeof(err)) < 0)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	free(base);
	credcrypt_free(cc);
	json_decref(fixture);
	return 0;
}

/* The stored text's member as a string (jansson owns it). */
static const char *
member(json_t *obj, const char *name)
{
	return json_string_value(json_object_get(obj, name));
}

/*
 * json with member name set to value (a string), or removed (value NULL);
 * member order kept.  The caller frees.
 */
static char *
with(const char *json, const char *name, const char *value)
{
	json_t *obj = json_loads(json, 0, NULL);
	char *s;

	assert_non_null(obj);
	if (value == NULL)
		json_object_del(obj, name);
	else
		json_object_set_new(obj, name, json_string(value));
	s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(obj);
	return s;
}

/* hex with the bit'th bit flipped. */
static char *
flip(const char *hex, size_t bit)
{
	static const char digits[] = "0123456789abcdef";
	char *s = xstrdup(hex), *d;
	size_t i = bit / 4;

	assert_true(i < strlen(s));
	d = strchr(digits, s[i]);
	assert_non_null(d);
	s[i] = digits[(d - digits) ^ (8 >> (bit % 4))];
	return s;
}

/* hex in capitals; the caller frees. */
static char *
upper(const char *hex)
{
	char *s = xstrdup(hex), *p;

	for (p = s; *p != '\0'; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	assert_string_not_equal(s, hex);
	return s;
}

/* The message holds no secret and no plaintext. */
static void
assert_no_secret(const char *err)
{
	const char *id;
	json_t *v;

	json_object_foreach(json_object_get(fixture, "keys"), id, v)
		assert_null(strstr(err, json_string_value(v)));
	assert_null(strstr(err, PLAIN));
	assert_null(strstr(err, "horse"));
}

/* Decrypting json with c fails with want and message msg; out untouched. */
static void
refused_by(struct credcrypt *c, const char *json, int want, const char *msg)
{
	struct buf out = { marker, 7, 9, 11 };
	char err[CREDCRYPT_ERR_MAX] = "";
	int r;

	r = credcrypt_decrypt(c, json, &out, err, sizeof(err));
	if (r != want || strcmp(err, msg) != 0)
		fprintf(stderr, "# %s\n#  -> %d '%s'\n", json != NULL ? json :
		    "(null)", r, err);
	assert_int_equal(r, want);
	assert_string_equal(err, msg);
	assert_ptr_equal(out.data, marker);
	assert_int_equal(out.len, 7);
	assert_int_equal(out.cap, 9);
	assert_int_equal(out.limit, 11);
	assert_no_secret(err);
}

static void
refused(const char *json, int want, const char *msg)
{
	refused_by(cc, json, want, msg);
}

/* Same, for a text we built and now free. */
static void
refused_free(char *json, int want, const char *msg)
{
	refused(json, want, msg);
	free(json);
}

static void
decrypts_to(struct credcrypt *c, const char *json, const char *plain,
    size_t len)
{
	struct buf out;
	char err[CREDCRYPT_ERR_MAX] = "";
	int r;

	r = credcrypt_decrypt(c, json, &out, err, sizeof(err));
	if (r != 0)
		fprintf(stderr, "# %s\n", err);
	assert_int_equal(r, 0);
	assert_int_equal(out.len, len);
	assert_memory_equal(out.data, plain, len);
	assert_int_equal(out.data[len], '\0');
	buf_release_secret(&out);
}

static void
test_round_trip(void **state)
{
	static const size_t sizes[] = {
		0, 1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 255, 256,
		1000, 1024, 2047, 2048, 4095, 4096,
	};
	static const char *const texts[] = {
		"ü", "Ünïcödé пароль 密码 🐾🐕", "𝄞€£¥", "\x7f tab\t nl\n cr\r",
		"\"quoted\" \\back\\slash {json} [x]",
	};
	char *plain, *json, *want, err[CREDCRYPT_ERR_MAX];
	size_t i, j;

	(void)state;
	plain = xmalloc(CREDCRYPT_PLAIN_MAX);
	for (i = 0; i < CREDCRYPT_PLAIN_MAX; i++)
		plain[i] = (char)(' ' + (i * 7) % 95);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		const char *id = i % 2 == 0 ? K1 : K2;

		assert_int_equal(credcrypt_encrypt(cc, id, plain, sizes[i],
		    &json, err, sizeof(err)), 0);
		/* {"encrypted":"","iv":"","authTag":"","keyId":""} */
		assert_int_equal(strlen(json), 48 + 2 * sizes[i] + 32 + 32 +
		    strlen(id));
		want = xasprintf("\",\"keyId\":\"%s\"}", id);
		assert_string_equal(json + strlen(json) - strlen(want), want);
		free(want);
		assert_memory_equal(json, "{\"encrypted\":\"", 14);
		decrypts_to(cc, json, plain, sizes[i]);
		free(json);
	}
	/* Multi-byte UTF-8, and a 4096-byte text of 3-byte characters. */
	for (j = 0; j < sizeof(texts) / sizeof(texts[0]); j++) {
		assert_int_equal(credcrypt_encrypt(cc, K2, texts[j],
		    strlen(texts[j]), &json, err, sizeof(err)), 0);
		decrypts_to(cc, json, texts[j], strlen(texts[j]));
		free(json);
	}
	for (i = 0; i + 3 <= CREDCRYPT_PLAIN_MAX; i += 3)
		memcpy(plain + i, "€", 3);
	memset(plain + i, 'x', CREDCRYPT_PLAIN_MAX - i);
	assert_int_equal(credcrypt_encrypt(cc, K1, plain, CREDCRYPT_PLAIN_MAX,
	    &json, err, sizeof(err)), 0);
	decrypts_to(cc, json, plain, CREDCRYPT_PLAIN_MAX);
	free(json);
	free(plain);
}

static void
test_encrypt_refused(void **state)
{
	char *json = marker, err[CREDCRYPT_ERR_MAX], *big;

	(void)state;
	big = xcalloc(1, CREDCRYPT_PLAIN_MAX + 1);
	memset(big, 'p', CREDCRYPT_PLAIN_MAX + 1);
	assert_int_equal(credcrypt_encrypt(cc, K1, big,
	    CREDCRYPT_PLAIN_MAX + 1, &json, err, sizeof(err)), -EMSGSIZE);
	assert_string_equal(err, "encrypting under key 'fixture-k1': "
	    "plaintext of 4097 bytes is more than 4096");
	free(big);

	assert_int_equal(credcrypt_encrypt(cc, K1, "a\xff", 2, &json, err,
	    sizeof(err)), -EINVAL);
	assert_string_equal(err, "encrypting under key 'fixture-k1': "
	    "plaintext is not UTF-8 without NUL bytes");
	assert_int_equal(credcrypt_encrypt(cc, K1, "a\0b", 3, &json, err,
	    sizeof(err)), -EINVAL);
	assert_int_equal(credcrypt_encrypt(cc, K1, "\xc0\xaf", 2, &json, err,
	    sizeof(err)), -EINVAL);

	assert_int_equal(credcrypt_encrypt(cc, "k.1", PLAIN, strlen(PLAIN),
	    &json, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "encryption key id 'k.1': not valid; "
	    "allowed: A-Z, a-z, 0-9, '_' and '-', 1 to 64 bytes");
	assert_int_equal(credcrypt_encrypt(cc, "", PLAIN, strlen(PLAIN),
	    &json, err, sizeof(err)), -EINVAL);
	assert_int_equal(credcrypt_encrypt(cc, NULL, PLAIN, strlen(PLAIN),
	    &json, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "encryption key id '(null)': not valid; "
	    "allowed: A-Z, a-z, 0-9, '_' and '-', 1 to 64 bytes");

	assert_int_equal(credcrypt_encrypt(cc, "absent", PLAIN, strlen(PLAIN),
	    &json, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "encryption key 'absent': neither "
	    "$CREDENTIALS_DIRECTORY/encryption-key-absent nor "
	    "ENCRYPTION_KEY_absent is set");
	assert_ptr_equal(json, marker);
}

static void
test_fresh_iv(void **state)
{
	enum { N = 64 };
	char *json[N], err[CREDCRYPT_ERR_MAX];
	json_t *obj[N];
	size_t i, j;

	(void)state;
	for (i = 0; i < N; i++) {
		assert_int_equal(credcrypt_encrypt(cc, K1, PLAIN,
		    strlen(PLAIN), &json[i], err, sizeof(err)), 0);
		obj[i] = json_loads(json[i], 0, NULL);
		assert_non_null(obj[i]);
	}
	for (i = 0; i < N; i++) {
		for (j = 0; j < i; j++) {
			assert_string_not_equal(member(obj[i], "iv"),
			    member(obj[j], "iv"));
			assert_string_not_equal(member(obj[i], "encrypted"),
			    member(obj[j], "encrypted"));
		}
	}
	for (i = 0; i < N; i++) {
		json_decref(obj[i]);
		free(json[i]);
	}
}

static void
test_tampered(void **state)
{
	json_t *obj = json_loads(base, 0, NULL);
	const char *ct = member(obj, "encrypted"), *iv = member(obj, "iv");
	const char *tag = member(obj, "authTag");
	size_t bits[] = { 0, 1, 7, 8, 100 }, i;
	char *s, *s2, *u1, *u2, *u3;

	(void)state;
	decrypts_to(cc, base, PLAIN, strlen(PLAIN));
	for (i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		refused_free(with(base, "encrypted", s = flip(ct, bits[i])),
		    -EBADMSG, AUTH1);
		free(s);
		refused_free(with(base, "iv", s = flip(iv, bits[i])),
		    -EBADMSG, AUTH1);
		free(s);
		refused_free(with(base, "authTag", s = flip(tag, bits[i])),
		    -EBADMSG, AUTH1);
		free(s);
	}
	/* The last bit of each. */
	refused_free(with(base, "encrypted", s = flip(ct, 4 * strlen(ct) - 1)),
	    -EBADMSG, AUTH1);
	free(s);
	refused_free(with(base, "iv", s = flip(iv, 127)), -EBADMSG, AUTH1);
	free(s);
	refused_free(with(base, "authTag", s = flip(tag, 127)), -EBADMSG,
	    AUTH1);
	free(s);

	/* A whole byte short, at either end. */
	refused_free(with(base, "encrypted", s = xstrndup(ct, strlen(ct) - 2)),
	    -EBADMSG, AUTH1);
	free(s);
	refused_free(with(base, "encrypted", ct + 2), -EBADMSG, AUTH1);
	refused_free(with(base, "encrypted", ""), -EBADMSG, AUTH1);
	refused_free(with(base, "encrypted", s = xasprintf("%s00", ct)),
	    -EBADMSG, AUTH1);
	free(s);

	/* Another key that is loaded, and a key that is not there. */
	refused_free(with(base, "keyId", K2), -EBADMSG,
	    "stored credential under key 'Fixture_K2': authentication failed "
	    "(altered, or not encrypted with this key)");
	refused_free(with(base, "keyId", "absent"), -ENOENT,
	    "encryption key 'absent': neither $CREDENTIALS_DIRECTORY/"
	    "encryption-key-absent nor ENCRYPTION_KEY_absent is set");

	/* Hex in capitals is still the same bytes. */
	s = with(base, "encrypted", u1 = upper(ct));
	s2 = with(s, "iv", u2 = upper(iv));
	free(s);
	s = with(s2, "authTag", u3 = upper(tag));
	free(s2);
	assert_null(strstr(s, ct));
	assert_non_null(strstr(s, "\"keyId\":\"" K1 "\""));
	decrypts_to(cc, s, PLAIN, strlen(PLAIN));
	free(s);
	free(u1);
	free(u2);
	free(u3);
	json_decref(obj);
}

static void
test_malformed(void **state)
{
	json_t *obj = json_loads(base, 0, NULL);
	const char *ct = member(obj, "encrypted");
	char *s, *big;

	(void)state;
	/* Lengths and hex. */
	refused_free(with(base, "encrypted", s = xstrndup(ct, strlen(ct) - 1)),
	    -EINVAL, BAD "'encrypted' is not hex: an odd number of digits "
	    "(55)");
	free(s);
	refused_free(with(base, "iv", "00112233445566778899aabbccddee"),
	    -EINVAL, BAD "'iv' is 15 bytes, not 16");
	refused_free(with(base, "iv", "00112233445566778899aabbccddeeff00"),
	    -EINVAL, BAD "'iv' is 17 bytes, not 16");
	refused_free(with(base, "iv", "00112233445566778899aabb"),
	    -EINVAL, BAD "'iv' is 12 bytes, not 16");
	refused_free(with(base, "iv", "00112233445566778899aabbccddeef"),
	    -EINVAL, BAD "'iv' is not hex: an odd number of digits (31)");
	refused_free(with(base, "iv", ""), -EINVAL, BAD "'iv' is 0 bytes, "
	    "not 16");
	refused_free(with(base, "iv", "0011223344556677889g0011223344zz"),
	    -EINVAL, BAD "'iv' is not hex: a non-hex character at offset 19");
	refused_free(with(base, "iv", "00112233445566778899aabbccdd ee0"),
	    -EINVAL, BAD "'iv' is not hex: a non-hex character at offset 28");
	refused_free(with(base, "authTag", "00112233445566778899aabbccddee"),
	    -EINVAL, BAD "'authTag' is 15 bytes, not 16");
	refused_free(with(base, "authTag", "00112233445566778899aabb"),
	    -EINVAL, BAD "'authTag' is 12 bytes, not 16");
	refused_free(with(base, "authTag", "-0112233445566778899aabbccddeeff"),
	    -EINVAL, BAD "'authTag' is not hex: a non-hex character at "
	    "offset 0");
	refused_free(with(base, "encrypted", "0x12"), -EINVAL,
	    BAD "'encrypted' is not hex: a non-hex character at offset 1");
	big = xmalloc(2 * CREDCRYPT_PLAIN_MAX + 3);
	memset(big, 'a', 2 * CREDCRYPT_PLAIN_MAX + 2);
	big[2 * CREDCRYPT_PLAIN_MAX + 2] = '\0';
	refused_free(with(base, "encrypted", big), -EINVAL,
	    BAD "'encrypted' is 4097 bytes, more than 4096");
	free(big);

	/* Members missing, unknown, of the wrong type, or a bad key id. */
	refused_free(with(base, "encrypted", NULL), -EINVAL,
	    BAD "no 'encrypted' member");
	refused_free(with(base, "iv", NULL), -EINVAL, BAD "no 'iv' member");
	refused_free(with(base, "authTag", NULL), -EINVAL,
	    BAD "no 'authTag' member");
	refused_free(with(base, "keyId", NULL), -EINVAL,
	    BAD "no 'keyId' member");
	refused_free(with(base, "version", "2"), -EINVAL,
	    BAD "unknown member 'version'");
	refused_free(with(base, "keyId", "a/b"), -EINVAL,
	    BAD "'keyId' 'a/b' is not a key id; allowed: A-Z, a-z, 0-9, '_' "
	    "and '-', 1 to 64 bytes");
	refused_free(with(base, "keyId", ""), -EINVAL,
	    BAD "'keyId' '' is not a key id; allowed: A-Z, a-z, 0-9, '_' "
	    "and '-', 1 to 64 bytes");
	refused_free(with(base, "keyId", "K\n1"), -EINVAL,
	    BAD "'keyId' 'K\\n1' is not a key id; allowed: A-Z, a-z, 0-9, "
	    "'_' and '-', 1 to 64 bytes");
	s = xmalloc(66);
	memset(s, 'k', 65);
	s[65] = '\0';
	refused_free(with(base, "keyId", s), -EINVAL, BAD "'keyId' '"
	    "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
	    "' is not a key id; allowed: A-Z, a-z, 0-9, '_' and '-', 1 to 64 "
	    "bytes");
	free(s);
	refused("{\"encrypted\":\"\",\"iv\":16,\"authTag\":\"\","
	    "\"keyId\":\"k\"}", -EINVAL, BAD "'iv' is not a string");
	refused("{\"encrypted\":null,\"iv\":\"\",\"authTag\":\"\","
	    "\"keyId\":\"k\"}", -EINVAL, BAD "'encrypted' is not a string");

	/* Not the JSON of an object. */
	refused(NULL, -EINVAL, BAD "none given");
	refused("", -EINVAL, BAD "not valid JSON: it ends too early at line "
	    "1, column 0");
	refused("[]", -EINVAL, BAD "not a JSON object");
	refused("\"x\"", -EINVAL, BAD "not valid JSON: a syntax error at line "
	    "1, column 3");
	refused("{\"iv\":\"00\",\"iv\":\"00\"}", -EINVAL, BAD "not valid "
	    "JSON: a member appears twice at line 1, column 15");
	refused("{\"encrypted\":\"a\\u0000\"}", -EINVAL, BAD "not valid JSON: "
	    "a NUL character at line 1, column 22");
	refused("{\"encrypted\":\"\xff\"}", -EINVAL, BAD "not valid JSON: "
	    "not UTF-8 at line 1, column 14");
	s = xasprintf("%s junk", base);
	refused_free(s, -EINVAL, BAD "not valid JSON: junk after the object "
	    "at line 1, column 183");
	s = xasprintf("%s{}", base);
	refused_free(s, -EINVAL, BAD "not valid JSON: junk after the object "
	    "at line 1, column 179");
	s = xstrndup(base, strlen(base) - 1);
	refused_free(s, -EINVAL, BAD "not valid JSON: it ends too early at "
	    "line 1, column 177");
	s = xstrndup(base, 40);
	refused_free(s, -EINVAL, BAD "not valid JSON: it ends too early at "
	    "line 1, column 40");

	/* Whitespace around is JSON, and still the same text. */
	s = xasprintf("\n %s \n", base);
	decrypts_to(cc, s, PLAIN, strlen(PLAIN));
	free(s);

	/* Too long to be read at all. */
	big = xmalloc(CREDCRYPT_JSON_MAX + 2);
	memset(big, ' ', CREDCRYPT_JSON_MAX + 1);
	big[CREDCRYPT_JSON_MAX + 1] = '\0';
	memcpy(big, base, strlen(base));
	refused(big, -EINVAL, BAD "more than 16384 bytes");
	big[CREDCRYPT_JSON_MAX] = '\0';
	decrypts_to(cc, big, PLAIN, strlen(PLAIN));
	free(big);
	json_decref(obj);
}

/*
 * Stored text made here with EVP directly, as the PRD's code would make
 * it: a check of the format independent of credcrypt_encrypt().  The
 * caller frees.
 */
static char *
evp_stored(const char *id, const void *plain, int len)
{
	static const unsigned char iv[16] = "0123456789abcdef";
	unsigned char key[32], ct[64], tag[16];
	char hex[3][129];
	const char *secret = fixture_key(id);
	const unsigned char *parts[3] = { ct, iv, tag };
	int outl = 0, finl = 0, lens[3] = { len, 16, 16 }, i, j;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

	assert_true(len <= (int)sizeof(ct));
	assert_int_equal(PKCS5_PBKDF2_HMAC(secret, (int)strlen(secret),
	    (const unsigned char *)"idexx-salt", 10, 100000, EVP_sha256(), 32,
	    key), 1);
	assert_int_equal(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL,
	    NULL, NULL), 1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, 16,
	    NULL), 1);
	assert_int_equal(EVP_EncryptInit_ex(ctx, NULL, NULL, key, iv), 1);
	assert_int_equal(EVP_EncryptUpdate(ctx, ct, &outl, plain, len), 1);
	assert_int_equal(EVP_EncryptFinal_ex(ctx, ct + outl, &finl), 1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16,
	    tag), 1);
	EVP_CIPHER_CTX_free(ctx);
	explicit_bzero(key, sizeof(key));
	for (i = 0; i < 3; i++) {
		for (j = 0; j < lens[i]; j++)
			sprintf(hex[i] + 2 * j, "%02x", parts[i][j]);
		hex[i][2 * lens[i]] = '\0';
	}
	return xasprintf("{\"encrypted\":\"%s\",\"iv\":\"%s\","
	    "\"authTag\":\"%s\",\"keyId\":\"%s\"}", hex[0], hex[1], hex[2],
	    id);
}

/*
 * Authentic text whose plaintext is not UTF-8 or holds a NUL (the PRD's
 * code never writes such, Node would make U+FFFD of it) is refused rather
 * than handed on; the same bytes as UTF-8 decrypt.
 */
static void
test_not_utf8(void **state)
{
	char *s;

	(void)state;
	s = evp_stored(K1, "pass\xffword", 9);
	refused_free(s, -EINVAL, "stored credential under key 'fixture-k1': "
	    "the plaintext is not UTF-8 without NUL bytes");
	s = evp_stored(K1, "pass\0word", 9);
	refused_free(s, -EINVAL, "stored credential under key 'fixture-k1': "
	    "the plaintext is not UTF-8 without NUL bytes");
	s = evp_stored(K1, "pass\xc3\xbfword", 10);
	decrypts_to(cc, s, "passÿword", 10);
	free(s);
}

/* Re-encrypting json under to fails with want and msg; no output. */
static void
reencrypt_refused(const char *json, const char *to, int want,
    const char *msg)
{
	char *out = marker, err[CREDCRYPT_ERR_MAX] = "";

	assert_int_equal(credcrypt_reencrypt(cc, json, to, &out, err,
	    sizeof(err)), want);
	assert_string_equal(err, msg);
	assert_ptr_equal(out, marker);
	assert_no_secret(err);
}

/* Rotation: the same plaintext under another key, with a fresh IV. */
static void
test_reencrypt(void **state)
{
	char *json, *back, *s, *t, id[CREDCRYPT_KEY_ID_MAX + 1];
	char err[CREDCRYPT_ERR_MAX];
	json_t *a, *b;

	(void)state;
	assert_int_equal(credcrypt_reencrypt(cc, base, K2, &json, err,
	    sizeof(err)), 0);
	assert_int_equal(credcrypt_key_id(json, id, sizeof(id)), 0);
	assert_string_equal(id, K2);
	decrypts_to(cc, json, PLAIN, strlen(PLAIN));
	assert_int_equal(credcrypt_reencrypt(cc, json, K1, &back, err,
	    sizeof(err)), 0);
	decrypts_to(cc, back, PLAIN, strlen(PLAIN));
	a = json_loads(base, 0, NULL);
	b = json_loads(back, 0, NULL);
	assert_string_not_equal(member(a, "iv"), member(b, "iv"));
	assert_string_not_equal(member(a, "encrypted"),
	    member(b, "encrypted"));

	t = with(base, "authTag", s = flip(member(a, "authTag"), 5));
	reencrypt_refused(t, K2, -EBADMSG, AUTH1);
	free(t);
	free(s);
	reencrypt_refused("{}", K2, -EINVAL, BAD "no 'encrypted' member");
	reencrypt_refused(base, "absent", -ENOENT, "encryption key 'absent': "
	    "neither $CREDENTIALS_DIRECTORY/encryption-key-absent nor "
	    "ENCRYPTION_KEY_absent is set");
	reencrypt_refused(base, "a/b", -EINVAL, "encryption key id 'a/b': "
	    "not valid; allowed: A-Z, a-z, 0-9, '_' and '-', 1 to 64 bytes");
	json_decref(a);
	json_decref(b);
	free(back);
	free(json);
}

static void
test_wrong_secret(void **state)
{
	struct credcrypt *other;
	char err[CREDCRYPT_ERR_MAX];

	(void)state;
	assert_int_equal(credcrypt_new(&other), 0);
	assert_int_equal(setenv("ENCRYPTION_KEY_" K1, "not the secret", 1), 0);
	refused_by(other, base, -EBADMSG, AUTH1);
	assert_int_equal(credcrypt_derivations(other), 1);
	/* Cached: the right secret in the environment changes nothing. */
	assert_int_equal(setenv("ENCRYPTION_KEY_" K1, fixture_key(K1), 1), 0);
	refused_by(other, base, -EBADMSG, AUTH1);
	assert_int_equal(credcrypt_load_key(other, K1, err, sizeof(err)), 0);
	assert_int_equal(credcrypt_derivations(other), 1);
	credcrypt_free(other);
	credcrypt_free(NULL);
}

static void
test_load_key(void **state)
{
	char dir[] = "/tmp/vetsync-credcrypt.XXXXXX", *path, *want;
	char err[CREDCRYPT_ERR_MAX];
	unsigned long before = credcrypt_derivations(cc);
	int fd;

	(void)state;
	assert_int_equal(credcrypt_load_key(cc, K1, err, sizeof(err)), 0);
	assert_int_equal(credcrypt_load_key(cc, "absent", err, sizeof(err)),
	    -ENOENT);
	assert_string_equal(err, "encryption key 'absent': neither "
	    "$CREDENTIALS_DIRECTORY/encryption-key-absent nor "
	    "ENCRYPTION_KEY_absent is set");
	assert_int_equal(credcrypt_load_key(cc, "../k", err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(err, "encryption key id '../k': not valid; "
	    "allowed: A-Z, a-z, 0-9, '_' and '-', 1 to 64 bytes");

	/* A key file others may read is refused; the message names it. */
	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/encryption-key-shared", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, 0644), 0);
	assert_int_equal(write(fd, "file secret 42\n", 15), 15);
	close(fd);
	assert_int_equal(setenv("CREDENTIALS_DIRECTORY", dir, 1), 0);
	assert_int_equal(credcrypt_load_key(cc, "shared", err, sizeof(err)),
	    -EPERM);
	want = xasprintf("refusing secret file '%s': readable by group or "
	    "others (mode 0644)", path);
	assert_string_equal(err, want);
	assert_null(strstr(err, "file secret 42"));
	free(want);
	unsetenv("CREDENTIALS_DIRECTORY");
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	free(path);
	assert_int_equal(credcrypt_derivations(cc), before);
}

static void
test_vectors(void **state)
{
	json_t *vectors = json_object_get(fixture, "vectors"), *v;
	const char *plain;
	char id[CREDCRYPT_KEY_ID_MAX + 1];
	size_t i, n2 = 0, big = 0;

	(void)state;
	assert_true(json_array_size(vectors) >= 6);
	json_array_foreach(vectors, i, v) {
		plain = member(v, "plaintext");
		assert_int_equal(credcrypt_key_id(member(v, "stored"), id,
		    sizeof(id)), 0);
		assert_string_equal(id, member(v, "keyId"));
		decrypts_to(cc, member(v, "stored"), plain, strlen(plain));
		n2 += strcmp(id, K2) == 0;
		big += strlen(plain) >= 1024;
	}
	/* Both key ids and a 1 KiB text are there: the fixture is whole. */
	assert_true(n2 > 0 && n2 < json_array_size(vectors));
	assert_true(big > 0);
}

static void
test_key_id(void **state)
{
	char id[CREDCRYPT_KEY_ID_MAX + 1], small[5];
	char *s;

	(void)state;
	assert_int_equal(credcrypt_key_id(base, id, sizeof(id)), 0);
	assert_string_equal(id, K1);
	strcpy(small, "old");
	assert_int_equal(credcrypt_key_id(base, small, sizeof(small)), -ERANGE);
	assert_string_equal(small, "");
	strcpy(id, "old");
	assert_int_equal(credcrypt_key_id("{\"keyId\":\"k\"}", id, sizeof(id)),
	    -EINVAL);
	assert_string_equal(id, "");
	s = with(base, "keyId", "a b");
	assert_int_equal(credcrypt_key_id(s, id, sizeof(id)), -EINVAL);
	free(s);
	assert_int_equal(credcrypt_key_id(NULL, id, sizeof(id)), -EINVAL);
	assert_true(credcrypt_key_id_valid("aZ09_-"));
	assert_false(credcrypt_key_id_valid("a.b"));
	assert_false(credcrypt_key_id_valid(NULL));
}

/*
 * CREDCRYPT_KEYS_MAX key ids fit, one more does not, and one already
 * cached still does.  Deriving 32 keys takes a second or two natively,
 * minutes under valgrind, which skips it.
 */
static void
test_key_limit(void **state)
{
	struct credcrypt *many;
	char err[CREDCRYPT_ERR_MAX], id[16], env[64];
	int i;

	(void)state;
	if (RUNNING_ON_VALGRIND) {
		skip();
		return;
	}
	assert_int_equal(credcrypt_new(&many), 0);
	for (i = 0; i <= CREDCRYPT_KEYS_MAX; i++) {
		snprintf(id, sizeof(id), "lim%d", i);
		snprintf(env, sizeof(env), "ENCRYPTION_KEY_%s", id);
		assert_int_equal(setenv(env, id, 1), 0);
		if (i < CREDCRYPT_KEYS_MAX)
			assert_int_equal(credcrypt_load_key(many, id, err,
			    sizeof(err)), 0);
	}
	assert_int_equal(credcrypt_load_key(many, "lim32", err, sizeof(err)),
	    -ENOSPC);
	assert_string_equal(err, "encryption key 'lim32': 32 key ids are "
	    "cached already, the most there may be");
	assert_int_equal(credcrypt_load_key(many, "lim0", err, sizeof(err)),
	    0);
	assert_int_equal(credcrypt_derivations(many), CREDCRYPT_KEYS_MAX);
	credcrypt_free(many);
}

/* AddressSanitizer makes mlock() a no-op that reports success. */
#if defined(__SANITIZE_ADDRESS__)
#define TEST_MLOCK_WORKS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_MLOCK_WORKS 0
#endif
#endif
#ifndef TEST_MLOCK_WORKS
#define TEST_MLOCK_WORKS 1
#endif

/*
 * The kernel's view of the key cache: a mapping left out of core dumps
 * (dd), wiped in a forked child (wf) and locked in memory (lo).  Locking
 * needs RLIMIT_MEMLOCK to allow the two pages, as Debian's default 8 MiB
 * does.
 */
static void
test_locked_pages(void **state)
{
	struct rlimit rl;
	char line[512];
	bool lock = TEST_MLOCK_WORKS, found = false;
	FILE *f;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &rl), 0);
	if (geteuid() != 0 && rl.rlim_cur < 64 * 1024)
		lock = false;
	if (lock)
		assert_true(credcrypt_locked(cc));
	f = fopen("/proc/self/smaps", "re");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmFlags:", 8) == 0 &&
		    strstr(line, " dd") != NULL &&
		    strstr(line, " wf") != NULL &&
		    (!lock || strstr(line, " lo") != NULL))
			found = true;
	fclose(f);
	assert_true(found);
}

/* A forked child finds the cache wiped and says so; the parent keeps it. */
static void
test_forked(void **state)
{
	char *json = NULL, err[CREDCRYPT_ERR_MAX];
	struct buf out = { marker, 7, 9, 11 };
	int status, ok;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		ok = credcrypt_decrypt(cc, base, &out, err, sizeof(err)) ==
		    -EPERM && strcmp(err, "encryption key 'fixture-k1': the "
		    "key cache was wiped when this process was forked; make "
		    "a new one") == 0 && out.data == marker &&
		    credcrypt_encrypt(cc, K2, "x", 1, &json, err,
		    sizeof(err)) == -EPERM && json == NULL;
		_exit(ok ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	decrypts_to(cc, base, PLAIN, strlen(PLAIN));
}

/*
 * Everything above, hundreds of rows, derived K1 and K2 once each:
 * "absent", refused files and bad ids derive nothing.  More rows change
 * nothing.
 */
static void
test_derived_once(void **state)
{
	char *json, err[CREDCRYPT_ERR_MAX];
	int i;

	(void)state;
	assert_int_equal(credcrypt_derivations(cc), 2);
	for (i = 0; i < 50; i++) {
		assert_int_equal(credcrypt_encrypt(cc, i % 2 ? K1 : K2, PLAIN,
		    strlen(PLAIN), &json, err, sizeof(err)), 0);
		decrypts_to(cc, json, PLAIN, strlen(PLAIN));
		free(json);
	}
	assert_int_equal(credcrypt_derivations(cc), 2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_encrypt_refused),
		cmocka_unit_test(test_fresh_iv),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_not_utf8),
		cmocka_unit_test(test_reencrypt),
		cmocka_unit_test(test_wrong_secret),
		cmocka_unit_test(test_load_key),
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_key_id),
		cmocka_unit_test(test_key_limit),
		cmocka_unit_test(test_locked_pages),
		cmocka_unit_test(test_forked),
		cmocka_unit_test(test_derived_once),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
