/*
 * Base64 with the URL-safe alphabet of RFC 4648 §5, as JWTs and QStash's
 * body hashes use it.  Encoding writes no padding; decoding accepts the
 * unpadded form and the padded one (with exactly the '=' the length needs)
 * and refuses anything else: a character outside the alphabet, a length
 * that no encoding has, or unused low bits that are not zero (so each
 * decoded value has one spelling).
 */
#ifndef VS_COMMON_BASE64_H
#define VS_COMMON_BASE64_H

#include <stddef.h>

/* Characters base64url_encode() writes for n bytes, without the NUL. */
#define BASE64URL_LEN(n) \
	(((n) / 3) * 4 + ((n) % 3 == 0 ? 0 : (n) % 3 + 1))
/* Bytes base64url_decode() may write for n characters, at most. */
#define BASE64URL_DECODED_MAX(n) (((n) / 4) * 3 + 2)

/*
 * Encode len bytes into out, which holds BASE64URL_LEN(len) + 1 bytes; out
 * is NUL-terminated.  Returns the length written, without the NUL.
 */
size_t base64url_encode(const void *in, size_t len, char *out);

/*
 * Decode len characters of in into out (outsz bytes) and set *ret_len.
 * Returns 0, -EINVAL (not base64url) or -EMSGSIZE (out is too small);
 * *ret_len is written only on success, and out may hold a partial result
 * after a failure.
 */
int base64url_decode(const char *in, size_t len, void *out, size_t outsz,
    size_t *ret_len);

#endif
