/*
 * Time.  Timeouts, backoff and rates use the monotonic clock; anything
 * written down for people or the database uses the wall clock.
 */
#ifndef VS_COMMON_CLOCK_H
#define VS_COMMON_CLOCK_H

#include <sys/time.h>

#include <stddef.h>
#include <stdint.h>

/* Monotonic time since an arbitrary origin. */
uint64_t clock_mono_ns(void);
uint64_t clock_mono_ms(void);

/* A duration in milliseconds as a struct timeval (for event timers). */
struct timeval clock_timeval_ms(uint64_t ms);

/* Wall-clock time since the Unix epoch. */
int64_t clock_wall_ms(void);

/*
 * Format wall-clock milliseconds as RFC 3339 UTC ("2026-11-25T08:00:00.123Z")
 * into buf (at least CLOCK_RFC3339_LEN bytes).  Returns buf.
 */
#define CLOCK_RFC3339_LEN 32
char *clock_format_rfc3339(int64_t wall_ms, char *buf, size_t size);

#endif
