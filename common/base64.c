/*
 * Base64url (RFC 4648 §5).  Decoding is strict on purpose: a signed token
 * must have one spelling, or a tampered copy might compare as the same.
 */
#include <errno.h>
#include <stdint.h>

#include "common/base64.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t
base64url_encode(const void *in, size_t len, char *out)
{
	const unsigned char *p = in;
	size_t i, o = 0;
	uint32_t v;

	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		out[o++] = alphabet[v >> 18];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = alphabet[(v >> 6) & 63];
		out[o++] = alphabet[v & 63];
	}
	if (len - i == 1) {
		v = (uint32_t)p[i] << 16;
		out[o++] = alphabet[v >> 18];
		out[o++] = alphabet[(v >> 12) & 63];
	} else if (len - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		out[o++] = alphabet[v >> 18];
		out[o++] = alphabet[(v >> 12) & 63];
		out[o++] = alphabet[(v >> 6) & 63];
	}
	out[o] = '\0';
	return o;
}

static int
value_of(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int
base64url_decode(const char *in, size_t len, void *out, size_t outsz,
    size_t *ret_len)
{
	unsigned char *o = out;
	size_t i, n = 0, need;
	uint32_t v = 0;
	int bits = 0, d;

	/* Padding, if any, must complete the last quantum exactly. */
	if (len % 4 == 0 && len > 0 && in[len - 1] == '=') {
		len -= in[len - 2] == '=' ? 2 : 1;
		if (len % 4 == 1 || len % 4 == 0)
			return -EINVAL;
	}
	if (len % 4 == 1)
		return -EINVAL;
	need = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
	if (need > outsz)
		return -EMSGSIZE;
	for (i = 0; i < len; i++) {
		if ((d = value_of(in[i])) < 0)
			return -EINVAL;
		v = v << 6 | (uint32_t)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[n++] = (unsigned char)(v >> bits);
			v &= (1U << bits) - 1;
		}
	}
	if (v != 0)
		return -EINVAL;	/* unused bits set: not a canonical spelling */
	*ret_len = n;
	return 0;
}
