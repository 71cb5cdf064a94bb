/*
 * Unit tests for the pieces of supervisor/jobspec.c that need no running
 * supervisor: splitting the IDEXX base URL into the host and port to pin,
 * and clinic-local time across daylight-saving changes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/jobspec.h"
#include "supervisor/supervisor.h"

/* jobspec.c reads the supervisor's state; these tests never reach it. */
struct supervisor *sv;

static void
test_url_host_port(void **state)
{
	static const struct {
		const char *url;
		int ret;
		const char *host;
		unsigned port;
	} cases[] = {
		{ "https://us.idexxneo.com", 0, "us.idexxneo.com", 443 },
		{ "https://ca.idexxneo.com/", 0, "ca.idexxneo.com", 443 },
		{ "http://127.0.0.1:18443", 0, "127.0.0.1", 18443 },
		{ "http://127.0.0.1:18443/path?q=1", 0, "127.0.0.1", 18443 },
		{ "https://[::1]:8443/x", 0, "::1", 8443 },
		{ "https://[::1]", 0, "::1", 443 },
		{ "http://host", 0, "host", 80 },
		{ "ftp://host", -EINVAL, NULL, 0 },
		{ "https://", -EINVAL, NULL, 0 },
		{ "https://host:0", -EINVAL, NULL, 0 },
		{ "https://host:65536", -EINVAL, NULL, 0 },
		{ "https://host:12ab", -EINVAL, NULL, 0 },
		{ "https://[::1", -EINVAL, NULL, 0 },
		{ "https://[::1]x", -EINVAL, NULL, 0 },
	};
	char host[256];
	unsigned port;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = jobspec_url_host_port(cases[i].url, host, sizeof(host),
		    &port);

		if (r != cases[i].ret)
			fail_msg("'%s': got %d, want %d", cases[i].url, r,
			    cases[i].ret);
		if (r == 0) {
			assert_string_equal(host, cases[i].host);
			assert_int_equal(port, cases[i].port);
		}
	}
}

static void
test_local_time_dst(void **state)
{
	char buf[32];

	/* Denver springs forward at 02:00 on 2026-03-08. */
	assert_int_equal(jobspec_local_time("America/Denver", 1772960399, buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "2026-03-08 01:59:59");
	assert_int_equal(jobspec_local_time("America/Denver", 1772960400, buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "2026-03-08 03:00:00");
	/* ... and falls back on 2026-11-01: 08:00Z is the second 01:00. */
	assert_int_equal(jobspec_local_time("America/Denver", 1793520000, buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "2026-11-01 01:00:00");
	assert_int_equal(jobspec_local_time("UTC", 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1970-01-01 00:00:00");
	/* The process's own zone is left as it was. */
	assert_int_equal(jobspec_local_time("Asia/Tokyo", 0, buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "1970-01-01 09:00:00");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url_host_port),
		cmocka_unit_test(test_local_time_dst),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
