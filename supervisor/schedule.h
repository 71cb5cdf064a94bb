/*
 * The scheduler's time arithmetic, pure: no state, no I/O but the zone
 * files the C library reads.  Times are Unix epoch milliseconds (int64_t)
 * or seconds (time_t) as named.
 *
 * Notes reconciliation runs every interval per clinic, on slots spread
 * over the interval: slot k of a clinic starts at k * interval + its
 * offset (a hash of its id, stable across restarts and instances) plus a
 * jitter that is a hash of the id and k (below the configured jitter), so
 * every instance computes the same times and 100+ clinics never start
 * together.  The nightly schedule sync runs at a local time of day in the
 * clinic's zone: a local time that does not exist that day (the hour
 * skipped in spring) means the first instant after the gap, an ambiguous
 * one (repeated in autumn) its first occurrence, and it runs once a day.
 *
 * Catch-up: a clinic whose last run (of that kind) is older than the slot
 * that followed it missed that slot while nothing ran: it is due now, once,
 * however many slots it missed; otherwise it waits for its next slot.
 */
#ifndef VS_SUPERVISOR_SCHEDULE_H
#define VS_SUPERVISOR_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* The stable offset of clinic id within interval_ms (> 0). */
uint64_t schedule_offset_ms(const char *id, uint64_t interval_ms);

/*
 * The first notes slot of clinic id strictly after after_ms, with jitter
 * below jitter_ms (0: none; taken modulo interval_ms).
 */
int64_t schedule_notes_next(const char *id, int64_t after_ms,
    uint64_t interval_ms, uint64_t jitter_ms);

/* True for a zone name the C library will read from zoneinfo, or "UTC". */
bool schedule_tz_valid(const char *tz);

/*
 * The first instant strictly after after (seconds) at which the local time
 * in zone tz is minutes after midnight (0 .. 1439), per the rules above.
 * Returns 0 and writes *ret, or -EINVAL (bad zone or minutes).
 */
int schedule_local_next(time_t after, const char *tz, unsigned minutes,
    time_t *ret);

/*
 * When a clinic runs next, for the catch-up rule: last_ms is the start of
 * its last run of this kind (-1: none ever), slot_after_last_ms the first
 * slot after it, next_slot_ms the first slot after now_ms.  Returns now_ms
 * when a slot was missed, else next_slot_ms.
 */
int64_t schedule_first_run(int64_t last_ms, int64_t slot_after_last_ms,
    int64_t now_ms, int64_t next_slot_ms);

/* Both kinds together: the first notes run of clinic id. */
int64_t schedule_notes_first(const char *id, int64_t last_ms, int64_t now_ms,
    uint64_t interval_ms, uint64_t jitter_ms);

/* ... and its first schedule sync; -EINVAL for a bad zone. */
int schedule_daily_first(const char *tz, unsigned minutes, int64_t last_ms,
    int64_t now_ms, int64_t *ret_ms);

#endif
