/*
 * Verification of QStash's Upstash-Signature header (CONTRACTS §1,
 * "Verifying Upstash-Signature"): a compact HS256 JWT whose key is the
 * signing key string's bytes.  The signature must verify with the current
 * key or, failing that, the next one (keys roll: current := next); then
 * iss must be "Upstash", the clock must lie in [nbf, exp), sub must be the
 * expected URL when one is given, and the body claim must be
 * base64url(SHA-256(raw body)), trailing '=' ignored on both sides.
 *
 * No I/O and no logging: the caller logs the reason once.  The reason never
 * holds a key, and it quotes nothing from the token, so it can be logged
 * as it is.
 */
#ifndef VS_SUPERVISOR_QSTASH_VERIFY_H
#define VS_SUPERVISOR_QSTASH_VERIFY_H

#include <stddef.h>
#include <stdint.h>

/* The longest header value looked at; QStash's tokens are ~600 bytes. */
#define QSTASH_SIGNATURE_MAX	4096
/* A reason buffer of this size never truncates. */
#define QSTASH_REASON_MAX	128

struct qstash_verify_args {
	const char	*current_key;	/* required */
	const char	*next_key;	/* NULL or "": none */
	const char	*url;		/* NULL: sub is not checked */
	int64_t		 now;		/* Unix seconds */
	int64_t		 tolerance;	/* seconds allowed on exp and nbf */
};

/*
 * Verify the header value sig against body (len bytes).  Returns 0 when it
 * holds, else a negative errno, and writes what failed into reason
 * (reasonsz bytes, may be 0):
 *   -EMSGSIZE  the header is longer than QSTASH_SIGNATURE_MAX
 *   -EBADMSG   not a compact JWT (jws.h: a header with crit or a bad kid
 *              is not one either), or a claim missing or of the wrong type
 *   -EPROTO    alg is not HS256
 *   -EACCES    the signature matches neither key
 *   -EPERM     iss, sub or the body hash differs
 *   -ETIME     expired, or not valid yet
 *   -EINVAL    no current key was given
 */
int qstash_verify(const struct qstash_verify_args *, const char *sig,
    const void *body, size_t len, char *reason, size_t reasonsz);

#endif
