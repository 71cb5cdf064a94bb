/*
 * The pure rules of discharge calls (discharge.h), apart so that unit
 * tests reach them without a database, an event loop or the network: the
 * client's number in E.164, the publisher's backoff, a rate limit's wait,
 * and which ids may travel in a header or a URL path.  No I/O, no logging.
 */
#ifndef VS_SUPERVISOR_DISCHARGE_RULES_H
#define VS_SUPERVISOR_DISCHARGE_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DISCHARGE_E164_MAX	17	/* '+', 15 digits, NUL */
#define DISCHARGE_BACKOFF_MIN_MS	1000ULL
#define DISCHARGE_BACKOFF_MAX_MS	(5ULL * 60 * 1000)
#define DISCHARGE_WAIT_MAX_MS	(60ULL * 60 * 1000)	/* a rate limit's */
#define DISCHARGE_TOKEN_MAX	200	/* dedup and message ids */

/*
 * The client's phone as IDEXX gave it, in E.164 ("+13035550123") into out
 * (outsz >= DISCHARGE_E164_MAX).  Spaces, '-', '.', '(' and ')' are
 * dropped; "+" or "00" starts an international number (8 to 15 digits,
 * the first not 0); without either, a North American number is assumed
 * (IDEXX Neo's clinics): 10 digits whose first is 2-9, or those preceded
 * by 1.  Returns 0, or -EINVAL for anything else (letters, extensions,
 * too short or too long), leaving out alone.
 */
int discharge_e164(const char *raw, char *out, size_t outsz);

/*
 * How long a publish or cancel that failed (QStash down, 5xx) waits before
 * its next attempt, after attempts failures so far: doubling from
 * DISCHARGE_BACKOFF_MIN_MS, at most DISCHARGE_BACKOFF_MAX_MS, with jitter
 * (half of it drawn from rnd) so that instances and rows spread out.
 */
uint64_t discharge_backoff_ms(unsigned attempts, uint64_t rnd);

/*
 * What a 429 asks to wait, in ms, from Retry-After (seconds, or an
 * RFC 1123 date) or else Burst-RateLimit-Reset (Unix seconds); either may
 * be NULL.  now_s is the wall clock.  At most DISCHARGE_WAIT_MAX_MS.
 * Returns 0 with *ret_ms set, or -ENOENT when neither says anything
 * usable (the caller backs off as for a 5xx).
 */
int discharge_wait_ms(const char *retry_after, const char *reset,
    int64_t now_s, uint64_t *ret_ms);

/*
 * True for an id that may go into a header or a URL path as it is:
 * 1 to DISCHARGE_TOKEN_MAX bytes of [A-Za-z0-9._:-].
 */
bool discharge_token_valid(const char *);

#endif
