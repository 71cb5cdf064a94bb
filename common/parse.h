/*
 * Parsers for the typed values of the configuration and the command line.
 * Each takes a NUL-terminated string, writes *ret only on success and
 * returns 0, -EINVAL (not of that form) or -ERANGE (too large).  Leading and
 * trailing blanks are not accepted: the caller trims.
 */
#ifndef VS_COMMON_PARSE_H
#define VS_COMMON_PARSE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Durations: one or more <number><unit> terms, units ms, s, m, h, d, w
 * ("90s", "4h", "2d", "1h30m"); a bare number is seconds.  Milliseconds.
 */
int parse_duration_ms(const char *s, uint64_t *ret_ms);

/*
 * Sizes: <number>[unit], units K, M, G, T (powers of 1024, optionally
 * followed by "iB" or "B"), or B / none for bytes ("512M", "64KiB").
 */
int parse_size(const char *s, uint64_t *ret_bytes);

/*
 * Fractions and decimals: "0.5", "1", "2.25"; at most 6 decimals.  Returned
 * in millionths (0.5 -> 500000).
 */
int parse_fraction_micro(const char *s, uint64_t *ret_micro);

/* Clock times "HH:MM" (00:00-23:59), as minutes since midnight. */
int parse_clock_minutes(const char *s, unsigned int *ret_minutes);

/* Unsigned decimal integers, no sign, no blanks. */
int parse_u64(const char *s, uint64_t *ret);

/* Booleans: yes/no, true/false, on/off, 1/0. */
int parse_bool(const char *s, bool *ret);

/*
 * True for a UUID in its canonical lowercase text form
 * ("xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", hex digits 0-9 a-f): how
 * PostgreSQL prints a users.id, which is how vetsync names a clinic.
 */
bool parse_uuid_ok(const char *s);

#endif
