/*
 * SHA-256 (FIPS 180-4), libc only, for fingerprints of response structure.
 * Not for secrets: nothing here is constant-time or wipes its state.
 */
#ifndef VS_COMMON_SHA256_H
#define VS_COMMON_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN	32
#define SHA256_HEX_LEN		64	/* without the NUL */

struct sha256 {
	uint32_t h[8];
	uint64_t len;		/* bytes hashed so far */
	unsigned char block[64];
	size_t fill;		/* bytes in block */
};

void sha256_init(struct sha256 *);
void sha256_update(struct sha256 *, const void *, size_t);
void sha256_final(struct sha256 *, unsigned char digest[SHA256_DIGEST_LEN]);

/* One call: the lowercase hex digest of len bytes into hex (65 bytes). */
void sha256_hex(const void *, size_t len, char hex[SHA256_HEX_LEN + 1]);

#endif
