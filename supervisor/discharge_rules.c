/*
 * The pure rules of discharge calls (see discharge_rules.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "supervisor/discharge_rules.h"

int
discharge_e164(const char *raw, char *out, size_t outsz)
{
	char digits[32];
	size_t n = 0;
	bool plus = false;
	const char *p = raw;

	if (raw == NULL || outsz < DISCHARGE_E164_MAX)
		return -EINVAL;
	while (*p == ' ')
		p++;
	if (*p == '+') {
		plus = true;
		p++;
	}
	for (; *p != '\0'; p++) {
		if (*p >= '0' && *p <= '9') {
			if (n + 1 >= sizeof(digits))
				return -EINVAL;
			digits[n++] = *p;
		} else if (*p != ' ' && *p != '-' && *p != '.' && *p != '(' &&
		    *p != ')')
			return -EINVAL;
	}
	digits[n] = '\0';
	if (!plus && n > 2 && digits[0] == '0' && digits[1] == '0') {
		plus = true;
		memmove(digits, digits + 2, n - 1);
		n -= 2;
	}
	if (!plus) {
		if (n == 11 && digits[0] == '1') {
			memmove(digits, digits + 1, n);
			n--;
		}
		if (n != 10 || digits[0] < '2')
			return -EINVAL;
		out[0] = '+';
		out[1] = '1';
		memcpy(out + 2, digits, n + 1);
		return 0;
	}
	if (n < 8 || n > 15 || digits[0] == '0')
		return -EINVAL;
	out[0] = '+';
	memcpy(out + 1, digits, n + 1);
	return 0;
}

uint64_t
discharge_backoff_ms(unsigned attempts, uint64_t rnd)
{
	uint64_t d = DISCHARGE_BACKOFF_MIN_MS;

	for (unsigned i = 0; i < attempts && d < DISCHARGE_BACKOFF_MAX_MS; i++)
		d *= 2;
	if (d > DISCHARGE_BACKOFF_MAX_MS)
		d = DISCHARGE_BACKOFF_MAX_MS;
	return d / 2 + rnd % (d / 2 + 1);
}

/* Digits only, a value that fits; -1 otherwise. */
static long long
number(const char *s)
{
	char *end;
	long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	return v;
}

int
discharge_wait_ms(const char *retry_after, const char *reset, int64_t now_s,
    uint64_t *ret_ms)
{
	long long v;
	uint64_t ms;
	struct tm tm;
	const char *end;

	if ((v = number(retry_after)) >= 0)
		ms = (uint64_t)v * 1000;
	else if (retry_after != NULL && (memset(&tm, 0, sizeof(tm)),
	    end = strptime(retry_after, "%a, %d %b %Y %H:%M:%S GMT", &tm)) !=
	    NULL && *end == '\0') {
		int64_t at = (int64_t)timegm(&tm);

		ms = at > now_s ? (uint64_t)(at - now_s) * 1000 : 0;
	} else if ((v = number(reset)) >= 0)
		ms = v > now_s ? (uint64_t)(v - now_s) * 1000 : 0;
	else
		return -ENOENT;
	*ret_ms = ms > DISCHARGE_WAIT_MAX_MS ? DISCHARGE_WAIT_MAX_MS : ms;
	return 0;
}

bool
discharge_token_valid(const char *s)
{
	size_t n;

	if (s == NULL)
		return false;
	for (n = 0; s[n] != '\0'; n++) {
		char c = s[n];

		if (n >= DISCHARGE_TOKEN_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == ':' || c == '-'))
			return false;
	}
	return n > 0;
}
