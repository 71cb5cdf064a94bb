/*
 * Parsers for durations, sizes, fractions and clock times.  Hand-written
 * rather than strtoull()-based so that signs, blanks, hex and overflow are
 * refused instead of wrapping silently.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "common/parse.h"

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Read digits at *sp into *ret; advance *sp.  At least one digit. */
static int
read_digits(const char **sp, uint64_t *ret)
{
	const char *s = *sp;
	uint64_t v = 0;

	if (!is_digit(*s))
		return -EINVAL;
	for (; is_digit(*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*sp = s;
	*ret = v;
	return 0;
}

int
parse_u64(const char *s, uint64_t *ret)
{
	uint64_t v;
	int r;

	if ((r = read_digits(&s, &v)) < 0)
		return r;
	if (*s != '\0')
		return -EINVAL;
	*ret = v;
	return 0;
}

static int
mul_check(uint64_t a, uint64_t b, uint64_t *ret)
{
	if (b != 0 && a > UINT64_MAX / b)
		return -ERANGE;
	*ret = a * b;
	return 0;
}

int
parse_duration_ms(const char *s, uint64_t *ret_ms)
{
	static const struct {
		const char *name;
		uint64_t ms;
	} units[] = {
		{ "ms", 1 },
		{ "s", 1000 },
		{ "m", 60 * 1000 },
		{ "h", 60 * 60 * 1000 },
		{ "d", 24 * 60 * 60 * 1000 },
		{ "w", 7 * 24 * 60 * 60 * 1000ULL },
	};
	uint64_t total = 0, v, term;
	int r;

	if (*s == '\0')
		return -EINVAL;
	while (*s != '\0') {
		size_t i, len = 0;

		if ((r = read_digits(&s, &v)) < 0)
			return r;
		while (s[len] >= 'a' && s[len] <= 'z')
			len++;
		if (len == 0) {
			if (*s != '\0')
				return -EINVAL;
			/* A bare number is seconds, and only alone. */
			if (total != 0)
				return -EINVAL;
			return mul_check(v, 1000, ret_ms);
		}
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (strlen(units[i].name) == len &&
			    strncmp(units[i].name, s, len) == 0)
				break;
		if (i == sizeof(units) / sizeof(units[0]))
			return -EINVAL;
		if ((r = mul_check(v, units[i].ms, &term)) < 0)
			return r;
		if (total > UINT64_MAX - term)
			return -ERANGE;
		total += term;
		s += len;
	}
	*ret_ms = total;
	return 0;
}

int
parse_size(const char *s, uint64_t *ret_bytes)
{
	uint64_t v, mult = 1;
	int r;

	if ((r = read_digits(&s, &v)) < 0)
		return r;
	switch (*s) {
	case '\0':
		break;
	case 'B':
		if (s[1] != '\0')
			return -EINVAL;
		break;
	case 'K':
	case 'M':
	case 'G':
	case 'T':
		mult = *s == 'K' ? 1ULL << 10 : *s == 'M' ? 1ULL << 20 :
		    *s == 'G' ? 1ULL << 30 : 1ULL << 40;
		s++;
		if (strcmp(s, "") != 0 && strcmp(s, "B") != 0 &&
		    strcmp(s, "iB") != 0)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	return mul_check(v, mult, ret_bytes);
}

int
parse_fraction_micro(const char *s, uint64_t *ret_micro)
{
	uint64_t whole, frac = 0, total;
	int digits = 0, r;

	if ((r = read_digits(&s, &whole)) < 0)
		return r;
	if (*s == '.') {
		s++;
		if (!is_digit(*s))
			return -EINVAL;
		for (; is_digit(*s); s++) {
			if (++digits > 6)
				return -EINVAL;
			frac = frac * 10 + (uint64_t)(*s - '0');
		}
		for (; digits < 6; digits++)
			frac *= 10;
	}
	if (*s != '\0')
		return -EINVAL;
	if ((r = mul_check(whole, 1000000, &total)) < 0)
		return r;
	if (total > UINT64_MAX - frac)
		return -ERANGE;
	*ret_micro = total + frac;
	return 0;
}

int
parse_clock_minutes(const char *s, unsigned int *ret_minutes)
{
	unsigned h, m;

	if (!is_digit(s[0]) || !is_digit(s[1]) || s[2] != ':' ||
	    !is_digit(s[3]) || !is_digit(s[4]) || s[5] != '\0')
		return -EINVAL;
	h = (unsigned)(s[0] - '0') * 10 + (unsigned)(s[1] - '0');
	m = (unsigned)(s[3] - '0') * 10 + (unsigned)(s[4] - '0');
	if (h > 23 || m > 59)
		return -ERANGE;
	*ret_minutes = h * 60 + m;
	return 0;
}

int
parse_bool(const char *s, bool *ret)
{
	static const char *yes[] = { "yes", "true", "on", "1" };
	static const char *no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

bool
parse_uuid_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return i == 36;
}
