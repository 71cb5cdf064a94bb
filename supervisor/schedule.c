/*
 * The scheduler's time arithmetic (see schedule.h).  Local times go
 * through the C library with TZ set for the call and put back after: the
 * supervisor is one thread, and the rules are exactly the system's
 * zoneinfo.  A wall-clock time is found by asking mktime() for both
 * readings (standard and daylight) and keeping those that read back as
 * asked; when neither does, the time fell in a gap, and the end of the
 * gap is found by bisection between the two.
 */
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"

#include "supervisor/schedule.h"

#define ZONEINFO "/usr/share/zoneinfo/"
#define ZONE_NAME_MAX 64

/* FNV-1a, 64 bits: stable across builds and hosts, unlike random(). */
static uint64_t
hash64(const char *s, uint64_t seed)
{
	uint64_t h = 14695981039346656037ull ^ seed;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	/* Mix the high bits down: ids differ mostly at the end. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

uint64_t
schedule_offset_ms(const char *id, uint64_t interval_ms)
{
	return interval_ms == 0 ? 0 : hash64(id, 0) % interval_ms;
}

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t
notes_slot(const char *id, int64_t k, uint64_t interval_ms,
    uint64_t jitter_ms)
{
	int64_t t = k * (int64_t)interval_ms +
	    (int64_t)schedule_offset_ms(id, interval_ms);

	if (jitter_ms % interval_ms != 0)
		t += (int64_t)(hash64(id, (uint64_t)k + 1) %
		    (jitter_ms % interval_ms));
	return t;
}

int64_t
schedule_notes_next(const char *id, int64_t after_ms, uint64_t interval_ms,
    uint64_t jitter_ms)
{
	int64_t k, t;

	if (interval_ms == 0)
		return after_ms + 1;
	/* Jitter < interval: slot k-1 may still be ahead, k+1 always is. */
	k = floor_div(after_ms - (int64_t)schedule_offset_ms(id, interval_ms),
	    (int64_t)interval_ms);
	for (int64_t i = k - 1; i <= k + 1; i++)
		if ((t = notes_slot(id, i, interval_ms, jitter_ms)) > after_ms)
			return t;
	return notes_slot(id, k + 2, interval_ms, jitter_ms);
}

bool
schedule_tz_valid(const char *tz)
{
	char path[sizeof(ZONEINFO) + ZONE_NAME_MAX];
	struct stat st;
	size_t n = strlen(tz);

	if (strcmp(tz, "UTC") == 0)
		return true;
	if (n == 0 || n > ZONE_NAME_MAX || tz[0] == '/' || tz[0] == ':' ||
	    strstr(tz, "..") != NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = tz[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("/_-+", c) != NULL))
			return false;
	}
	snprintf(path, sizeof(path), ZONEINFO "%s", tz);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Order of two broken-down local times, seconds included. */
static int
wall_cmp(const struct tm *a, const struct tm *b)
{
	const int x[6] = { a->tm_year, a->tm_mon, a->tm_mday, a->tm_hour,
	    a->tm_min, a->tm_sec };
	const int y[6] = { b->tm_year, b->tm_mon, b->tm_mday, b->tm_hour,
	    b->tm_min, b->tm_sec };

	for (size_t i = 0; i < 6; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

/* The instant of local wall time want (TZ already set). */
static time_t
wall_instant(const struct tm *want)
{
	time_t cand[2], lo, hi, best = (time_t)-1;
	struct tm tm;

	for (int dst = 0; dst < 2; dst++) {
		tm = *want;
		tm.tm_isdst = dst;
		cand[dst] = mktime(&tm);
		localtime_r(&cand[dst], &tm);
		if (wall_cmp(&tm, want) == 0 && (best == (time_t)-1 ||
		    cand[dst] < best))
			best = cand[dst];
	}
	if (best != (time_t)-1)
		return best;
	/*
	 * In a gap: one reading lands before it, the other after; the local
	 * time only moves forward between them.  The first instant whose
	 * local time is at or past want is the end of the gap.
	 */
	lo = cand[0] < cand[1] ? cand[0] : cand[1];
	hi = cand[0] < cand[1] ? cand[1] : cand[0];
	while (lo < hi) {
		time_t mid = lo + (hi - lo) / 2;

		localtime_r(&mid, &tm);
		if (wall_cmp(&tm, want) >= 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return hi;
}

int
schedule_local_next(time_t after, const char *tz, unsigned minutes,
    time_t *ret)
{
	const char *cur;
	char *saved;
	struct tm now, want;
	time_t t = (time_t)-1, day;
	int found = 0;

	if (minutes >= 24 * 60 || !schedule_tz_valid(tz))
		return -EINVAL;
	cur = getenv("TZ");
	saved = cur != NULL ? xstrdup(cur) : NULL;
	setenv("TZ", tz, 1);
	tzset();
	localtime_r(&after, &now);
	/* Today's time may be past; tomorrow's never is (2 for safety). */
	for (int d = 0; d < 3 && !found; d++) {
		memset(&want, 0, sizeof(want));
		want.tm_year = now.tm_year;
		want.tm_mon = now.tm_mon;
		want.tm_mday = now.tm_mday + d;
		want.tm_hour = 12;
		day = timegm(&want);	/* normalises the calendar date */
		gmtime_r(&day, &want);
		want.tm_hour = (int)(minutes / 60);
		want.tm_min = (int)(minutes % 60);
		want.tm_sec = 0;
		t = wall_instant(&want);
		found = t > after;
	}
	if (saved != NULL)
		setenv("TZ", saved, 1);
	else
		unsetenv("TZ");
	tzset();
	free(saved);
	if (!found)
		return -EINVAL;
	*ret = t;
	return 0;
}

int64_t
schedule_first_run(int64_t last_ms, int64_t slot_after_last_ms,
    int64_t now_ms, int64_t next_slot_ms)
{
	if (last_ms >= 0 && slot_after_last_ms <= now_ms)
		return now_ms;
	return next_slot_ms;
}

int64_t
schedule_notes_first(const char *id, int64_t last_ms, int64_t now_ms,
    uint64_t interval_ms, uint64_t jitter_ms)
{
	int64_t after_last = last_ms < 0 ? 0 :
	    schedule_notes_next(id, last_ms, interval_ms, jitter_ms);

	return schedule_first_run(last_ms, after_last, now_ms,
	    schedule_notes_next(id, now_ms, interval_ms, jitter_ms));
}

int
schedule_daily_first(const char *tz, unsigned minutes, int64_t last_ms,
    int64_t now_ms, int64_t *ret_ms)
{
	time_t after_last = 0, next;
	int r;

	if (last_ms >= 0 && (r = schedule_local_next((time_t)(last_ms / 1000),
	    tz, minutes, &after_last)) < 0)
		return r;
	if ((r = schedule_local_next((time_t)(now_ms / 1000), tz, minutes,
	    &next)) < 0)
		return r;
	*ret_ms = schedule_first_run(last_ms, (int64_t)after_last * 1000,
	    now_ms, (int64_t)next * 1000);
	return 0;
}
