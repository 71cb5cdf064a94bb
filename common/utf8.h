/*
 * Strict UTF-8 checks (RFC 3629): no overlong forms, no surrogates, nothing
 * past U+10FFFF.  Every string from a peer is checked before it is used.
 */
#ifndef VS_COMMON_UTF8_H
#define VS_COMMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True if the len bytes at s are valid UTF-8 with no NUL byte. */
bool utf8_valid(const char *s, size_t len);

/*
 * Length of the valid multi-byte or ASCII sequence starting at s (at most n
 * bytes available), or 0 if the bytes there are not valid UTF-8.
 */
size_t utf8_sequence_len(const unsigned char *s, size_t n);

/* Code point of a sequence that utf8_sequence_len() accepted. */
uint32_t utf8_decode(const unsigned char *s, size_t len);

#endif
