/*
 * Unit tests for supervisor/config.c and supervisor/secrets.c through their
 * headers: the defaults, a file that sets every key, every error path with
 * the message an operator reads (written out by hand), every numeric bound
 * from both sides, the dump's round trip, the example configuration, and
 * the rules secret files must pass.  Secret files live in a temporary
 * directory under /tmp named by $CREDENTIALS_DIRECTORY.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/xmalloc.h"

#include "supervisor/config.h"
#include "supervisor/secrets.h"

#define NAME "t.conf"

static const char full_text[] =
    "# every key set to something other than its default\n"
    "[database]\n"
    "conninfo = host=/run/postgresql dbname=clinics user=vetsync\n"
    "connect_timeout = 5s\n"
    "statement_timeout = 1m\n"
    "\n"
    "[idexx]\n"
    "profile = /etc/vetsync/prd-html.conf\n"
    "base_url = https://uk.idexxneo.com\n"
    "window = 3d\n"
    "max_parallel = 8\n"
    "request_rate = 20\n"
    "response_max = 32M\n"
    "request_timeout = 45s\n"
    "ca_bundle = /etc/pki/tls/certs/ca-bundle.crt\n"
    "[schedule]\n"
    "notes_interval = 2h\n"
    "schedule_sync_time = 21:30\n"
    "jitter = 5m\n"
    "default_timezone = Europe/London\n"
    "[workers]\n"
    "max_concurrent = 100\n"
    "memory_max = 256M\n"
    "cpu_max = 0.25\n"
    "tasks_max = 64\n"
    "open_files_max = 128\n"
    "file_size_max = 0\n"
    "job_timeout = 20m\n"
    "silence_timeout = 2m\n"
    "stop_timeout = 5s\n"
    "backoff_initial = 1m\n"
    "backoff_max = 2h\n"
    "failure_threshold = 5\n"
    "prespawn = 7\n"
    "binary = /opt/vetsync/libexec/vetsync-worker\n"
    "policy_dir = /opt/vetsync/policy\n"
    "user = vsworker\n"
    "group = vsworkers\n"
    "allow_rlimits_only = yes\n"
    "[discharge]\n"
    "delay = 1d\n"
    "qstash_url = https://qstash.upstash.io\n"
    "delivery_url = https://vetsync.example.com/api/discharge/deliver\n"
    "retries = 5\n"
    "vapi_url = https://api.vapi.example\n"
    "vapi_assistant_id = asst_123\n"
    "vapi_phone_number_id = pn-456\n"
    "[api]\n"
    "listen = [::1]:8443\n"
    "tls_cert = /etc/vetsync/tls/cert.pem\n"
    "tls_key = /etc/vetsync/tls/key.pem\n"
    "jwt_issuer = https://abc.supabase.co/auth/v1\n"
    "jwt_audience = vetsync\n"
    "jwks_url = https://abc.supabase.co/auth/v1/.well-known/jwks.json\n"
    "body_max = 2M\n"
    "[alerts]\n"
    "smtp_url = smtps://alerts@mail.example.com:465\n"
    "from = vetsync@example.com\n"
    "to = ops@example.com, vet@example.org\n"
    "failure_rate = 0.25\n"
    "slow_sync = 15m\n"
    "consecutive_failures = 5\n"
    "stale_after = 12h\n"
    "repeat_after = 1h\n"
    "[posthog]\n"
    "host = https://eu.i.posthog.com\n"
    "batch_size = 100\n"
    "flush_interval = 30s\n"
    "[instance]\n"
    "name = vetsync-2\n"
    "lease_time = 2m\n"
    "[log]\n"
    "level = debug\n";

static struct config *
load_ok(const char *text)
{
	char err[CONFIG_ERR_MAX];
	struct config *cfg = NULL;
	int r = config_load_string(NAME, text, &cfg, err);

	if (r != 0)
		fail_msg("load failed (%d): %s", r, err);
	assert_non_null(cfg);
	return cfg;
}

static void
expect_error(const char *text, const char *want)
{
	char err[CONFIG_ERR_MAX];
	struct config *cfg = (struct config *)(uintptr_t)1;
	int r = config_load_string(NAME, text, &cfg, err);

	if (r != -EINVAL)
		fail_msg("text %s: got %d, want -EINVAL", text, r);
	/* Output parameters are written only on success. */
	assert_ptr_equal(cfg, (struct config *)(uintptr_t)1);
	if (strcmp(err, want) != 0)
		fail_msg("text:\n%s\ngot:  %s\nwant: %s", text, err, want);
}

static bool
have_zone(const char *name)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", name);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void
test_defaults(void **state)
{
	struct config *cfg = load_ok("");
	char host[HOST_NAME_MAX + 1];

	assert_string_equal(cfg->path, NAME);
	assert_string_equal(cfg->database.conninfo, "dbname=vetsync");
	assert_int_equal(cfg->database.connect_timeout_ms, 10000);
	assert_int_equal(cfg->database.statement_timeout_ms, 30000);
	assert_string_equal(cfg->idexx.profile,
	    VS_SYSCONFDIR "/vetsync/neo-profile.conf");
	assert_string_equal(cfg->idexx.base_url, "https://us.idexxneo.com");
	assert_int_equal(cfg->idexx.window_ms, 48 * 3600 * 1000ULL);
	assert_int_equal(cfg->idexx.max_parallel, 4);
	assert_int_equal(cfg->idexx.request_rate, 10);
	assert_int_equal(cfg->idexx.response_max, 16 << 20);
	assert_int_equal(cfg->idexx.request_timeout_ms, 30000);
	assert_string_equal(cfg->idexx.ca_bundle,
	    "/etc/ssl/certs/ca-certificates.crt");
	assert_int_equal(cfg->schedule.notes_interval_ms, 4 * 3600 * 1000);
	assert_int_equal(cfg->schedule.schedule_sync_minutes, 20 * 60);
	assert_int_equal(cfg->schedule.jitter_ms, 600000);
	assert_string_equal(cfg->schedule.default_timezone, "UTC");
	assert_int_equal(cfg->workers.max_concurrent, 8);
	assert_int_equal(cfg->workers.memory_max, 512ULL << 20);
	assert_int_equal(cfg->workers.cpu_max_micro, 500000);
	assert_int_equal(cfg->workers.tasks_max, 32);
	assert_int_equal(cfg->workers.open_files_max, 64);
	assert_int_equal(cfg->workers.file_size_max, 16 << 20);
	assert_int_equal(cfg->workers.job_timeout_ms, 600000);
	assert_int_equal(cfg->workers.silence_timeout_ms, 60000);
	assert_int_equal(cfg->workers.stop_timeout_ms, 10000);
	assert_int_equal(cfg->workers.backoff_initial_ms, 30000);
	assert_int_equal(cfg->workers.backoff_max_ms, 3600000);
	assert_int_equal(cfg->workers.failure_threshold, 3);
	assert_int_equal(cfg->workers.prespawn, 2);
	assert_string_equal(cfg->workers.binary,
	    VS_LIBEXECDIR "/vetsync-worker");
	assert_string_equal(cfg->workers.policy_dir, VS_PKGDATADIR "/policy");
	assert_string_equal(cfg->workers.user, "vetsync-worker");
	assert_string_equal(cfg->workers.group, "vetsync-worker");
	assert_false(cfg->workers.allow_rlimits_only);
	assert_int_equal(cfg->discharge.delay_ms, 2 * 86400 * 1000);
	assert_null(cfg->discharge.qstash_url);
	assert_null(cfg->discharge.delivery_url);
	assert_int_equal(cfg->discharge.retries, 3);
	assert_string_equal(cfg->discharge.vapi_url, "https://api.vapi.ai");
	assert_null(cfg->discharge.vapi_assistant_id);
	assert_null(cfg->discharge.vapi_phone_number_id);
	assert_string_equal(cfg->api.listen, "127.0.0.1:3001");
	assert_null(cfg->api.tls_cert);
	assert_null(cfg->api.tls_key);
	assert_null(cfg->api.jwt_issuer);
	assert_string_equal(cfg->api.jwt_audience, "authenticated");
	assert_null(cfg->api.jwks_url);
	assert_int_equal(cfg->api.body_max, 1 << 20);
	assert_null(cfg->alerts.smtp_url);
	assert_null(cfg->alerts.from);
	assert_null(cfg->alerts.to);
	assert_int_equal(cfg->alerts.failure_rate_micro, 100000);
	assert_int_equal(cfg->alerts.slow_sync_ms, 600000);
	assert_int_equal(cfg->alerts.consecutive_failures, 3);
	assert_int_equal(cfg->alerts.stale_after_ms, 86400000);
	assert_int_equal(cfg->alerts.repeat_after_ms, 6 * 3600000);
	assert_string_equal(cfg->posthog.host, "https://us.i.posthog.com");
	assert_int_equal(cfg->posthog.batch_size, 50);
	assert_int_equal(cfg->posthog.flush_interval_ms, 10000);
	assert_int_equal(cfg->instance.lease_time_ms, 60000);
	assert_int_equal(cfg->log.level, CONFIG_LOG_INFO);
	assert_string_equal(config_log_level_name(cfg->log.level), "info");

	/* The instance is named after the host unless told otherwise. */
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	assert_string_equal(cfg->instance.name, host);
	config_free(cfg);

	/* Comments, blank lines, CRLF, a BOM and empty sections: defaults. */
	cfg = load_ok("\xef\xbb\xbf# comment\r\n; another\r\n\r\n[log]\r\n"
	    "[api]\n  # indented comment\n");
	assert_int_equal(cfg->log.level, CONFIG_LOG_INFO);
	config_free(cfg);
}

static void
test_full(void **state)
{
	struct config *cfg;

	if (!have_zone("Europe/London"))
		skip();
	cfg = load_ok(full_text);
	assert_string_equal(cfg->database.conninfo,
	    "host=/run/postgresql dbname=clinics user=vetsync");
	assert_int_equal(cfg->database.connect_timeout_ms, 5000);
	assert_int_equal(cfg->database.statement_timeout_ms, 60000);
	assert_string_equal(cfg->idexx.profile, "/etc/vetsync/prd-html.conf");
	assert_string_equal(cfg->idexx.base_url, "https://uk.idexxneo.com");
	assert_int_equal(cfg->idexx.window_ms, 3 * 86400000ULL);
	assert_int_equal(cfg->idexx.max_parallel, 8);
	assert_int_equal(cfg->idexx.request_rate, 20);
	assert_int_equal(cfg->idexx.response_max, 32 << 20);
	assert_int_equal(cfg->idexx.request_timeout_ms, 45000);
	assert_string_equal(cfg->idexx.ca_bundle,
	    "/etc/pki/tls/certs/ca-bundle.crt");
	assert_int_equal(cfg->schedule.notes_interval_ms, 7200000);
	assert_int_equal(cfg->schedule.schedule_sync_minutes, 21 * 60 + 30);
	assert_int_equal(cfg->schedule.jitter_ms, 300000);
	assert_string_equal(cfg->schedule.default_timezone, "Europe/London");
	assert_int_equal(cfg->workers.max_concurrent, 100);
	assert_int_equal(cfg->workers.memory_max, 256 << 20);
	assert_int_equal(cfg->workers.cpu_max_micro, 250000);
	assert_int_equal(cfg->workers.tasks_max, 64);
	assert_int_equal(cfg->workers.open_files_max, 128);
	assert_int_equal(cfg->workers.file_size_max, 0);
	assert_int_equal(cfg->workers.job_timeout_ms, 1200000);
	assert_int_equal(cfg->workers.silence_timeout_ms, 120000);
	assert_int_equal(cfg->workers.stop_timeout_ms, 5000);
	assert_int_equal(cfg->workers.backoff_initial_ms, 60000);
	assert_int_equal(cfg->workers.backoff_max_ms, 7200000);
	assert_int_equal(cfg->workers.failure_threshold, 5);
	assert_int_equal(cfg->workers.prespawn, 7);
	assert_string_equal(cfg->workers.binary,
	    "/opt/vetsync/libexec/vetsync-worker");
	assert_string_equal(cfg->workers.policy_dir, "/opt/vetsync/policy");
	assert_string_equal(cfg->workers.user, "vsworker");
	assert_string_equal(cfg->workers.group, "vsworkers");
	assert_true(cfg->workers.allow_rlimits_only);
	assert_int_equal(cfg->discharge.delay_ms, 86400000);
	assert_string_equal(cfg->discharge.qstash_url,
	    "https://qstash.upstash.io");
	assert_string_equal(cfg->discharge.delivery_url,
	    "https://vetsync.example.com/api/discharge/deliver");
	assert_int_equal(cfg->discharge.retries, 5);
	assert_string_equal(cfg->discharge.vapi_url,
	    "https://api.vapi.example");
	assert_string_equal(cfg->discharge.vapi_assistant_id, "asst_123");
	assert_string_equal(cfg->discharge.vapi_phone_number_id, "pn-456");
	assert_string_equal(cfg->api.listen, "[::1]:8443");
	assert_string_equal(cfg->api.tls_cert, "/etc/vetsync/tls/cert.pem");
	assert_string_equal(cfg->api.tls_key, "/etc/vetsync/tls/key.pem");
	assert_string_equal(cfg->api.jwt_issuer,
	    "https://abc.supabase.co/auth/v1");
	assert_string_equal(cfg->api.jwt_audience, "vetsync");
	assert_string_equal(cfg->api.jwks_url,
	    "https://abc.supabase.co/auth/v1/.well-known/jwks.json");
	assert_int_equal(cfg->api.body_max, 2 << 20);
	assert_string_equal(cfg->alerts.smtp_url,
	    "smtps://alerts@mail.example.com:465");
	assert_string_equal(cfg->alerts.from, "vetsync@example.com");
	assert_string_equal(cfg->alerts.to, "ops@example.com, vet@example.org");
	assert_int_equal(cfg->alerts.failure_rate_micro, 250000);
	assert_int_equal(cfg->alerts.slow_sync_ms, 900000);
	assert_int_equal(cfg->alerts.consecutive_failures, 5);
	assert_int_equal(cfg->alerts.stale_after_ms, 12 * 3600000);
	assert_int_equal(cfg->alerts.repeat_after_ms, 3600000);
	assert_string_equal(cfg->posthog.host, "https://eu.i.posthog.com");
	assert_int_equal(cfg->posthog.batch_size, 100);
	assert_int_equal(cfg->posthog.flush_interval_ms, 30000);
	assert_string_equal(cfg->instance.name, "vetsync-2");
	assert_int_equal(cfg->instance.lease_time_ms, 120000);
	assert_int_equal(cfg->log.level, CONFIG_LOG_DEBUG);
	config_free(cfg);
}

/* Values that load, and what they become; one aspect of a type each. */
static void
test_accepted_values(void **state)
{
	struct config *cfg;

	cfg = load_ok("[api]\nlisten = 0.0.0.0:443\n"
	    "jwt_issuer = http://[::1]:54321/auth/v1\n"
	    "[database]\nconninfo = postgresql://vetsync@db.internal/clinics"
	    "?sslmode=verify-full\n"
	    "[alerts]\nfailure_rate = 0 ; alert on any failure\n"
	    "[workers]\ncpu_max = 2\nallow_rlimits_only = on\n"
	    "job_timeout = 1h30m\n[schedule]\nschedule_sync_time = 00:00\n"
	    "default_timezone = UTC\n[log]\nlevel = error\n");
	assert_string_equal(cfg->api.listen, "0.0.0.0:443");
	assert_string_equal(cfg->api.jwt_issuer,
	    "http://[::1]:54321/auth/v1");
	assert_string_equal(cfg->database.conninfo,
	    "postgresql://vetsync@db.internal/clinics?sslmode=verify-full");
	assert_int_equal(cfg->alerts.failure_rate_micro, 0);
	assert_int_equal(cfg->workers.cpu_max_micro, 2000000);
	assert_true(cfg->workers.allow_rlimits_only);
	assert_int_equal(cfg->workers.job_timeout_ms, 5400000);
	assert_int_equal(cfg->schedule.schedule_sync_minutes, 0);
	assert_int_equal(cfg->log.level, CONFIG_LOG_ERROR);
	config_free(cfg);

	/* An optional key set empty is unset; a later section reopens. */
	cfg = load_ok("[api]\ntls_cert =\n[log] ; diagnostics\n"
	    "level = warning\n[api]\t# again\ntls_key =\n");
	assert_null(cfg->api.tls_cert);
	assert_null(cfg->api.tls_key);
	assert_int_equal(cfg->log.level, CONFIG_LOG_WARNING);
	config_free(cfg);
}

static const struct {
	const char *text;
	const char *err;
} error_cases[] = {
	/* Structure. */
	{ "[log]\nlevel = info\n[databse]\nconninfo = x\n",
	  NAME ":3: [databse]: unknown section (did you mean [database]?); "
	  "allowed: [database], [idexx], [schedule], [credentials], "
	  "[workers], [discharge], [api], [alerts], [posthog], [instance], "
	  "[log]" },
	{ "[clinics]\n",
	  NAME ":1: [clinics]: unknown section; allowed: [database], [idexx], "
	  "[schedule], [credentials], [workers], [discharge], [api], [alerts], [posthog], "
	  "[instance], [log]" },
	{ "[log] level = debug\n",
	  NAME ":1: [log]: text after the section header; allowed: '[log]' "
	  "alone, or followed by ' ; comment'" },
	{ "[log];x\n",
	  NAME ":1: [log]: text after the section header; allowed: '[log]' "
	  "alone, or followed by ' ; comment'" },
	{ "[database]\nconninf = x\n",
	  NAME ":2: [database] conninf 'x': unknown key (did you mean "
	  "'conninfo'?); allowed: conninfo, connect_timeout, "
	  "statement_timeout" },
	{ "[log]\nverbose = yes\n",
	  NAME ":2: [log] verbose 'yes': unknown key; allowed: level" },
	{ "[log]\nlisten = 127.0.0.1:80\n",
	  NAME ":2: [log] listen '127.0.0.1:80': unknown key (it belongs in "
	  "[api]); allowed: level" },
	{ "[database]\npassword = hunter2\n",
	  NAME ":2: [database] password '****': unknown key; allowed: no "
	  "secrets in this file: they are read from $CREDENTIALS_DIRECTORY" },
	{ "# top\nconninfo = dbname=x\n",
	  NAME ":2: conninfo 'dbname=x': key outside any section; allowed: "
	  "keys after a [section] header (it belongs in [database])" },
	{ "[log]\nlevel = info\nlevel = debug\n",
	  NAME ":3: [log] level 'debug': duplicate key (first set on line 2); "
	  "allowed: each key once" },
	{ "[log]\nlevel = info\n[log]\nlevel = debug\n",
	  NAME ":4: [log] level 'debug': duplicate key (first set on line 2); "
	  "allowed: each key once" },
	{ "[log]\nlevel = info\njust words\n",
	  NAME ":3: expected 'key = value', '[section]' or a comment; got "
	  "'just words'" },
	{ "[log\nlevel = info\n",
	  NAME ":1: expected 'key = value', '[section]' or a comment; got "
	  "'[log'" },
	{ "[workers]\nuser = a\n  group = b\n",
	  NAME ":3: expected 'key = value' at the start of the line; allowed: "
	  "no indentation, no continuation lines, no 'key: value'" },
	{ "[log]\nlevel: info\n",
	  NAME ":2: expected 'key = value' at the start of the line; allowed: "
	  "no indentation, no continuation lines, no 'key: value'" },
	/* The first error is the one reported. */
	{ "[log]\nlevel = loud\n[nope]\n",
	  NAME ":2: [log] level 'loud': not a log level; allowed: error, "
	  "warning, info or debug" },
	{ "[log]\nnonsense\nlevel = loud\n",
	  NAME ":2: expected 'key = value', '[section]' or a comment; got "
	  "'nonsense'" },
	/* Values in general. */
	{ "[database]\nconninfo =\n",
	  NAME ":2: [database] conninfo '': empty value; allowed: a libpq "
	  "connection string such as 'host=/run/postgresql dbname=vetsync'" },
	{ "[workers]\nmemory_max =\n",
	  NAME ":2: [workers] memory_max '': empty value; allowed: a size such "
	  "as 64K, 512M or 2G (powers of 1024)" },
	{ "[workers]\nuser = \"vetsync\"\n",
	  NAME ":2: [workers] user '\\\"vetsync\\\"': quotes are not removed; "
	  "allowed: the value without quotes" },
	{ "[workers]\nuser = vetsync # the user\n",
	  NAME ":2: [workers] user 'vetsync # the user': '#' after a blank; "
	  "allowed: comments on a line of their own, or after ' ;'" },
	{ "[alerts]\nfrom = a\tb@example.com\n",
	  NAME ":2: [alerts] from 'a\\tb@example.com': control character; "
	  "allowed: one address such as ops@example.com" },
	{ "[log]\nlevel = \xc3\x28\n",
	  NAME ":2: not valid UTF-8; allowed: UTF-8 text without NUL bytes" },
	/* Each type. */
	{ "[database]\nconnect_timeout = 10 minutes\n",
	  NAME ":2: [database] connect_timeout '10 minutes': not valid; "
	  "allowed: a duration such as 90s, 10m, 4h, 2d or 1h30m, 1s to 5m" },
	{ "[workers]\nmemory_max = 512MB!\n",
	  NAME ":2: [workers] memory_max '512MB!': not valid; allowed: a size "
	  "such as 64K, 512M or 2G (powers of 1024), 16M to 64G" },
	{ "[workers]\ncpu_max = 50%\n",
	  NAME ":2: [workers] cpu_max '50%': not valid; allowed: a decimal "
	  "number such as 0.5, at most 6 decimals, 0.01 to 64" },
	{ "[schedule]\nschedule_sync_time = 8pm\n",
	  NAME ":2: [schedule] schedule_sync_time '8pm': not valid; allowed: a "
	  "time of day HH:MM, 00:00 to 23:59" },
	{ "[schedule]\nschedule_sync_time = 24:00\n",
	  NAME ":2: [schedule] schedule_sync_time '24:00': not valid; allowed: "
	  "a time of day HH:MM, 00:00 to 23:59" },
	{ "[workers]\nmax_concurrent = -1\n",
	  NAME ":2: [workers] max_concurrent '-1': not valid; allowed: a whole "
	  "number, 1 to 4096" },
	{ "[workers]\nallow_rlimits_only = maybe\n",
	  NAME ":2: [workers] allow_rlimits_only 'maybe': not a boolean; "
	  "allowed: yes, no, true, false, on, off, 1 or 0" },
	{ "[schedule]\ndefault_timezone = Mars/Olympus_Mons\n",
	  NAME ":2: [schedule] default_timezone 'Mars/Olympus_Mons': not "
	  "valid; allowed: UTC or an IANA time zone in /usr/share/zoneinfo/ "
	  "such as Europe/London" },
	{ "[schedule]\ndefault_timezone = ../../etc/passwd\n",
	  NAME ":2: [schedule] default_timezone '../../etc/passwd': not "
	  "valid; allowed: UTC or an IANA time zone in /usr/share/zoneinfo/ "
	  "such as Europe/London" },
	{ "[schedule]\ndefault_timezone = /etc/localtime\n",
	  NAME ":2: [schedule] default_timezone '/etc/localtime': not valid; "
	  "allowed: UTC or an IANA time zone in /usr/share/zoneinfo/ such as "
	  "Europe/London" },
	{ "[schedule]\ndefault_timezone = America\n",
	  NAME ":2: [schedule] default_timezone 'America': not valid; allowed: "
	  "UTC or an IANA time zone in /usr/share/zoneinfo/ such as "
	  "Europe/London" },
	{ "[log]\nlevel = verbose\n",
	  NAME ":2: [log] level 'verbose': not a log level; allowed: error, "
	  "warning, info or debug" },
	{ "[idexx]\nprofile = etc/neo-profile.conf\n",
	  NAME ":2: [idexx] profile 'etc/neo-profile.conf': not valid; "
	  "allowed: an absolute path without '..'" },
	{ "[idexx]\nca_bundle = /etc/ssl/../../root/ca.pem\n",
	  NAME ":2: [idexx] ca_bundle '/etc/ssl/../../root/ca.pem': not valid; "
	  "allowed: an absolute path without '..'" },
	{ "[idexx]\nbase_url = ftp://us.idexxneo.com\n",
	  NAME ":2: [idexx] base_url 'ftp://us.idexxneo.com': not valid; "
	  "allowed: an http:// or https:// URL with a host" },
	{ "[idexx]\nbase_url = https://\n",
	  NAME ":2: [idexx] base_url 'https://': not valid; allowed: an "
	  "http:// or https:// URL with a host" },
	{ "[idexx]\nbase_url = https://us.idexx neo.com\n",
	  NAME ":2: [idexx] base_url 'https://us.idexx neo.com': not valid; "
	  "allowed: an http:// or https:// URL with a host" },
	{ "[idexx]\nbase_url = https://us.idexxneo.com:0/\n",
	  NAME ":2: [idexx] base_url 'https://us.idexxneo.com:0/': not valid; "
	  "allowed: an http:// or https:// URL with a host" },
	{ "[alerts]\nsmtp_url = https://mail.example.com\n",
	  NAME ":2: [alerts] smtp_url 'https://mail.example.com': not valid; "
	  "allowed: an smtp:// or smtps:// URL with a host" },
	{ "[api]\nlisten = localhost:3001\n",
	  NAME ":2: [api] listen 'localhost:3001': not valid; allowed: "
	  "IPv4:port or [IPv6]:port, port 1 to 65535" },
	{ "[api]\nlisten = 127.0.0.1:65536\n",
	  NAME ":2: [api] listen '127.0.0.1:65536': not valid; allowed: "
	  "IPv4:port or [IPv6]:port, port 1 to 65535" },
	{ "[api]\nlisten = 127.0.0.1:0\n",
	  NAME ":2: [api] listen '127.0.0.1:0': not valid; allowed: IPv4:port "
	  "or [IPv6]:port, port 1 to 65535" },
	{ "[api]\nlisten = ::1:3001\n",
	  NAME ":2: [api] listen '::1:3001': not valid; allowed: IPv4:port or "
	  "[IPv6]:port, port 1 to 65535" },
	{ "[api]\nlisten = 127.0.0.1\n",
	  NAME ":2: [api] listen '127.0.0.1': not valid; allowed: IPv4:port or "
	  "[IPv6]:port, port 1 to 65535" },
	{ "[workers]\nuser = -vetsync\n",
	  NAME ":2: [workers] user '-vetsync': not valid; allowed: letters, "
	  "digits, '.', '_' and '-', not starting with '-'" },
	{ "[credentials]\nkey_id = v1.2\n",
	  NAME ":2: [credentials] key_id 'v1.2': not valid; allowed: "
	  "letters, digits, '_' and '-', not starting with '-'" },
	{ "[workers]\ngroup = a_group_name_longer_than_32_bytes\n",
	  NAME ":2: [workers] group 'a_group_name_longer_than_32_bytes': 33 "
	  "bytes long; allowed: 1 to 32 bytes" },
	{ "[alerts]\nfrom = vetsync\n",
	  NAME ":2: [alerts] from 'vetsync': not valid; allowed: one address "
	  "such as ops@example.com" },
	{ "[alerts]\nto = a@example.com,, b@example.com\n",
	  NAME ":2: [alerts] to 'a@example.com,, b@example.com': not valid; "
	  "allowed: addresses such as ops@example.com, separated by ','" },
	/* Secrets are refused, and not repeated back. */
	{ "[database]\nconninfo = postgres://u:pw@h/db\n",
	  NAME ":2: [database] conninfo 'postgres://u:****@h/db': holds a "
	  "secret; allowed: no secrets in this file: put it in "
	  "$CREDENTIALS_DIRECTORY/db-password" },
	{ "[database]\nconninfo = host=db password=hunter2 dbname=x\n",
	  NAME ":2: [database] conninfo 'host=db password=**** dbname=x': "
	  "holds a secret; allowed: no secrets in this file: put it in "
	  "$CREDENTIALS_DIRECTORY/db-password" },
	{ "[database]\nconninfo = postgresql://h/db?user=u&password=pw\n",
	  NAME ":2: [database] conninfo 'postgresql://h/db?user=u&password="
	  "****': holds a secret; allowed: no secrets in this file: put it in "
	  "$CREDENTIALS_DIRECTORY/db-password" },
	{ "[discharge]\nqstash_url = https://tok3n@qstash.upstash.io\n",
	  NAME ":2: [discharge] qstash_url 'https://****@qstash.upstash.io': "
	  "holds a secret; allowed: no secrets in this file: put it in "
	  "$CREDENTIALS_DIRECTORY/qstash-token" },
	{ "[idexx]\nbase_url = https://us.idexxneo.com/?token=abc\n",
	  NAME ":2: [idexx] base_url 'https://us.idexxneo.com/?token=****': "
	  "holds a secret; allowed: no secrets in this file" },
	{ "[alerts]\nsmtp_url = smtps://alerts:pw@mail.example.com\n",
	  NAME ":2: [alerts] smtp_url 'smtps://alerts:****@mail.example.com': "
	  "holds a secret; allowed: no secrets in this file: put it in "
	  "$CREDENTIALS_DIRECTORY/smtp-password" },
	/* Relations between keys name both. */
	{ "[workers]\nbackoff_initial = 2h\n",
	  NAME ":2: [workers] backoff_initial '2h': more than [workers] "
	  "backoff_max '1h' (default); allowed: at most backoff_max" },
	{ "[workers]\nbackoff_max = 10s\nbackoff_initial = 20s\n",
	  NAME ":3: [workers] backoff_initial '20s': more than [workers] "
	  "backoff_max '10s' (line 2); allowed: at most backoff_max" },
	{ "[workers]\nbackoff_max = 10s\n",
	  NAME ":2: [workers] backoff_initial '30s': more than [workers] "
	  "backoff_max '10s' (line 2); allowed: at most backoff_max" },
	{ "[workers]\nsilence_timeout = 10m\n",
	  NAME ":2: [workers] silence_timeout '10m': not less than [workers] "
	  "job_timeout '10m' (default); allowed: less than job_timeout" },
	{ "[workers]\njob_timeout = 30s\n",
	  NAME ":2: [workers] silence_timeout '1m': not less than [workers] "
	  "job_timeout '30s' (line 2); allowed: less than job_timeout" },
	{ "[workers]\nsilence_timeout = 1s\nstop_timeout = 5m\n"
	  "job_timeout = 1m\n",
	  NAME ":3: [workers] stop_timeout '5m': not less than [workers] "
	  "job_timeout '1m' (line 4); allowed: less than job_timeout" },
	{ "[schedule]\njitter = 4h\n",
	  NAME ":2: [schedule] jitter '4h': not less than [schedule] "
	  "notes_interval '4h' (default); allowed: less than notes_interval" },
	{ "[alerts]\nstale_after = 1h\nslow_sync = 2h\n",
	  NAME ":3: [alerts] slow_sync '2h': not less than [alerts] "
	  "stale_after '1h' (line 2); allowed: less than stale_after" },
	{ "[api]\ntls_cert = /etc/vetsync/cert.pem\n",
	  NAME ":2: [api] tls_cert '/etc/vetsync/cert.pem': needs [api] "
	  "tls_key, which is empty; allowed: set [api] tls_key too, or leave "
	  "[api] tls_cert empty" },
	{ "[api]\ntls_key = /etc/vetsync/key.pem\n",
	  NAME ":2: [api] tls_key '/etc/vetsync/key.pem': needs [api] "
	  "tls_cert, which is empty; allowed: set [api] tls_cert too, or leave "
	  "[api] tls_key empty" },
	{ "[discharge]\nqstash_url = https://qstash.upstash.io\n",
	  NAME ":2: [discharge] qstash_url 'https://qstash.upstash.io': needs "
	  "[discharge] delivery_url, which is empty; allowed: set [discharge] "
	  "delivery_url too, or leave [discharge] qstash_url empty" },
	{ "[discharge]\nqstash_url = https://qstash.upstash.io\n"
	  "delivery_url = https://v.example.com/d\n",
	  NAME ":2: [discharge] qstash_url 'https://qstash.upstash.io': needs "
	  "[discharge] vapi_assistant_id, which is empty; allowed: set "
	  "[discharge] vapi_assistant_id too, or leave [discharge] qstash_url "
	  "empty" },
	{ "[discharge]\nqstash_url = https://qstash.upstash.io\n"
	  "delivery_url = https://v.example.com/d\nvapi_assistant_id = a\n",
	  NAME ":2: [discharge] qstash_url 'https://qstash.upstash.io': needs "
	  "[discharge] vapi_phone_number_id, which is empty; allowed: set "
	  "[discharge] vapi_phone_number_id too, or leave [discharge] "
	  "qstash_url empty" },
	{ "[alerts]\nsmtp_url = smtp://mail.example.com\nto = a@example.com\n",
	  NAME ":2: [alerts] smtp_url 'smtp://mail.example.com': needs "
	  "[alerts] from, which is empty; allowed: set [alerts] from too, or "
	  "leave [alerts] smtp_url empty" },
	{ "[alerts]\nsmtp_url = smtp://mail.example.com\n"
	  "from = a@example.com\n",
	  NAME ":2: [alerts] smtp_url 'smtp://mail.example.com': needs "
	  "[alerts] to, which is empty; allowed: set [alerts] to too, or "
	  "leave [alerts] smtp_url empty" },
};

static void
test_errors(void **state)
{
	for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]);
	    i++)
		expect_error(error_cases[i].text, error_cases[i].err);
}

/*
 * Every numeric key at both bounds (accepted) and just past them (refused
 * with the bounds in the key's units).  ctx goes after the key in its
 * section, to keep relations between keys satisfied at the extremes.
 */
static const struct {
	const char *section, *key;
	const char *min, *below, *max, *above;
	const char *allowed;
	const char *ctx;
} range_cases[] = {
	{ "database", "connect_timeout", "1s", "999ms", "5m", "5m1ms",
	  "1s to 5m", "" },
	{ "database", "statement_timeout", "100ms", "99ms", "1h", "3600001ms",
	  "100ms to 1h", "" },
	{ "idexx", "window", "1h", "59m59s", "31d", "31d1s", "1h to 31d", "" },
	{ "idexx", "max_parallel", "1", "0", "64", "65", "1 to 64", "" },
	{ "idexx", "request_rate", "1", "0", "1000", "1001", "1 to 1000", "" },
	{ "idexx", "response_max", "64K", "65535", "1G", "1048577K",
	  "64K to 1G", "" },
	{ "idexx", "request_timeout", "1s", "999ms", "10m", "10m1s",
	  "1s to 10m", "" },
	{ "schedule", "notes_interval", "5m", "4m59s", "7d", "7d1s",
	  "5m to 7d", "jitter = 0\n" },
	{ "schedule", "jitter", "0s", NULL, "1d", "1d1ms", "0s to 1d",
	  "notes_interval = 7d\n" },
	{ "workers", "max_concurrent", "1", "0", "4096", "4097", "1 to 4096",
	  "" },
	{ "workers", "memory_max", "16M", "16383K", "64G", "65537M",
	  "16M to 64G", "" },
	{ "workers", "cpu_max", "0.01", "0.009999", "64", "64.000001",
	  "0.01 to 64", "" },
	{ "workers", "tasks_max", "4", "3", "4096", "4097", "4 to 4096", "" },
	{ "workers", "open_files_max", "16", "15", "65536", "65537",
	  "16 to 65536", "" },
	{ "workers", "file_size_max", "0", NULL, "64G", "65537M", "0B to 64G",
	  "" },
	{ "workers", "job_timeout", "10s", "9s", "1d", "1d1ms", "10s to 1d",
	  "silence_timeout = 1s\nstop_timeout = 1s\n" },
	{ "workers", "silence_timeout", "1s", "999ms", "1h", "1h1s",
	  "1s to 1h", "job_timeout = 1d\n" },
	{ "workers", "stop_timeout", "100ms", "99ms", "5m", "5m1s",
	  "100ms to 5m", "" },
	{ "workers", "backoff_initial", "1s", "999ms", "1d", "1d1s",
	  "1s to 1d", "backoff_max = 7d\n" },
	{ "workers", "backoff_max", "1s", "999ms", "7d", "7d1s", "1s to 7d",
	  "backoff_initial = 1s\n" },
	{ "workers", "failure_threshold", "1", "0", "1000", "1001",
	  "1 to 1000", "" },
	{ "workers", "prespawn", "0", NULL, "64", "65", "0 to 64", "" },
	{ "discharge", "delay", "1m", "59s", "30d", "30d1s", "1m to 30d", "" },
	{ "discharge", "retries", "0", NULL, "20", "21", "0 to 20", "" },
	{ "api", "body_max", "1K", "1023", "64M", "65537K", "1K to 64M", "" },
	{ "alerts", "failure_rate", "0", NULL, "1", "1.000001", "0 to 1", "" },
	{ "alerts", "slow_sync", "1m", "59s", "1d", "1d1s", "1m to 1d",
	  "stale_after = 30d\n" },
	{ "alerts", "consecutive_failures", "1", "0", "100", "101",
	  "1 to 100", "" },
	{ "alerts", "stale_after", "1h", "59m", "30d", "30d1s", "1h to 30d",
	  "" },
	{ "alerts", "repeat_after", "5m", "4m59s", "7d", "7d1s", "5m to 7d",
	  "" },
	{ "posthog", "batch_size", "1", "0", "1000", "1001", "1 to 1000", "" },
	{ "posthog", "flush_interval", "1s", "999ms", "10m", "10m1s",
	  "1s to 10m", "" },
	{ "instance", "lease_time", "10s", "9s", "1h", "1h1s", "10s to 1h",
	  "" },
};

static void
test_ranges(void **state)
{
	for (size_t i = 0; i < sizeof(range_cases) / sizeof(range_cases[0]);
	    i++) {
		const char *bad[2] = { range_cases[i].below,
		    range_cases[i].above };
		const char *good[2] = { range_cases[i].min,
		    range_cases[i].max };
		struct config *cfg;
		char *text, *want;

		for (size_t j = 0; j < 2; j++) {
			text = xasprintf("[%s]\n%s = %s\n%s",
			    range_cases[i].section, range_cases[i].key,
			    good[j], range_cases[i].ctx);
			cfg = load_ok(text);
			config_free(cfg);
			free(text);
			if (bad[j] == NULL)
				continue;
			text = xasprintf("[%s]\n%s = %s\n%s",
			    range_cases[i].section, range_cases[i].key,
			    bad[j], range_cases[i].ctx);
			want = xasprintf("%s:2: [%s] %s '%s': out of range; "
			    "allowed: %s", NAME, range_cases[i].section,
			    range_cases[i].key, bad[j],
			    range_cases[i].allowed);
			expect_error(text, want);
			free(want);
			free(text);
		}
	}
	/* Past what 64 bits hold is out of range too, not wrapped. */
	expect_error("[workers]\nmax_concurrent = 99999999999999999999\n",
	    NAME ":2: [workers] max_concurrent '99999999999999999999': out of "
	    "range; allowed: 1 to 4096");
	expect_error("[workers]\njob_timeout = 99999999999999999w\n",
	    NAME ":2: [workers] job_timeout '99999999999999999w': out of "
	    "range; allowed: 10s to 1d");
}

/* inih's buffer holds 198 bytes a line; longer lines are refused whole. */
static void
test_long_line(void **state)
{
	char text[512], want[CONFIG_ERR_MAX];
	struct config *cfg;
	size_t n;

	/* "conninfo = " is 11 bytes; pad the value to a 198-byte line. */
	n = (size_t)snprintf(text, sizeof(text), "[database]\nconninfo = "
	    "dbname=");
	memset(text + n, 'x', 198 - 18);
	text[n + 180] = '\n';
	text[n + 181] = '\0';
	cfg = load_ok(text);
	assert_int_equal(strlen(cfg->database.conninfo), 198 - 11);
	config_free(cfg);

	text[n + 180] = 'x';
	text[n + 181] = '\n';
	text[n + 182] = '\0';
	snprintf(want, sizeof(want), "%s:2: line of 199 bytes is too long; "
	    "allowed: at most 198 bytes a line", NAME);
	expect_error(text, want);
}

static char tmpdir[64];

static int
setup_tmpdir(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/vetsync-test-config-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int
teardown_tmpdir(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	int r = system(cmd);

	free(cmd);
	return r == 0 ? 0 : -1;
}

static char *
write_file(const char *name, const char *content, size_t len, mode_t mode)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

/* A string literal's bytes, NULs inside included, the final one not. */
#define write_lit(name, lit, mode) write_file(name, lit, sizeof(lit) - 1, mode)

static void
test_files(void **state)
{
	char err[CONFIG_ERR_MAX], *path, *want;
	struct config *cfg = NULL;

	path = write_lit("good.conf", "[log]\nlevel = debug\n", 0644);
	assert_int_equal(config_load(path, &cfg, err), 0);
	assert_string_equal(cfg->path, path);
	assert_int_equal(cfg->log.level, CONFIG_LOG_DEBUG);
	config_free(cfg);
	cfg = NULL;
	free(path);

	path = xasprintf("%s/missing.conf", tmpdir);
	assert_int_equal(config_load(path, &cfg, err), -ENOENT);
	want = xasprintf("%s: cannot read: No such file or directory", path);
	assert_string_equal(err, want);
	assert_null(cfg);
	free(want);
	free(path);

	assert_int_equal(config_load(tmpdir, &cfg, err), -EINVAL);
	want = xasprintf("%s: cannot read: not a regular file", tmpdir);
	assert_string_equal(err, want);
	free(want);

	path = write_lit("nul.conf", "[log]\n\nlevel = info\0x\n", 0644);
	assert_int_equal(config_load(path, &cfg, err), -EINVAL);
	want = xasprintf("%s:3: NUL byte; allowed: UTF-8 text without NUL "
	    "bytes", path);
	assert_string_equal(err, want);
	free(want);
	free(path);

	path = write_lit("bad.conf", "[log]\nlevel = loud\n", 0644);
	assert_int_equal(config_load(path, &cfg, err), -EINVAL);
	want = xasprintf("%s:2: [log] level 'loud': not a log level; allowed: "
	    "error, warning, info or debug", path);
	assert_string_equal(err, want);
	assert_null(cfg);
	free(want);
	free(path);
}

static char *
dump_to_string(const struct config *cfg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&text, &len);

	assert_non_null(fp);
	config_dump(cfg, fp);
	assert_int_equal(fclose(fp), 0);
	return text;
}

static void
check_round_trip(const char *text)
{
	struct config *a = load_ok(text), *b;
	char *dump_a = dump_to_string(a), *dump_b;

	b = load_ok(dump_a);
	assert_true(config_equal(a, b));
	dump_b = dump_to_string(b);
	assert_string_equal(dump_a, dump_b);
	free(dump_a);
	free(dump_b);
	config_free(a);
	config_free(b);
}

static void
test_dump(void **state)
{
	struct config *a, *b;
	char *dump;

	check_round_trip("");
	if (have_zone("Europe/London"))
		check_round_trip(full_text);
	check_round_trip("[workers]\njob_timeout = 1h30m250ms\n"
	    "file_size_max = 1000\ncpu_max = 0.012345\n[idexx]\n"
	    "response_max = 1536K\n");

	/* A key, its description, default and bounds, in its section. */
	a = load_ok("");
	dump = dump_to_string(a);
	assert_non_null(strstr(dump, "\n[workers]\n"));
	assert_non_null(strstr(dump, "# memory cap of one worker (cgroup "
	    "memory.max)\n# default: 512M; allowed: 16M to 64G\n"
	    "memory_max = 512M\n"));
	assert_non_null(strstr(dump, "\nqstash_url =\n"));
	free(dump);

	/* config_equal() sees one changed key. */
	b = load_ok("[alerts]\nrepeat_after = 6h1ms\n");
	assert_false(config_equal(a, b));
	config_free(b);

	/* Whatever put a secret there, the dump does not print it. */
	free(a->database.conninfo);
	a->database.conninfo = xstrdup("host=db password=hunter2");
	free(a->alerts.smtp_url);
	a->alerts.smtp_url = xstrdup("smtps://alerts:hunter2@mail.example.com");
	dump = dump_to_string(a);
	assert_null(strstr(dump, "hunter2"));
	assert_non_null(strstr(dump, "\nconninfo = host=db password=****\n"));
	assert_non_null(strstr(dump,
	    "\nsmtp_url = smtps://alerts:****@mail.example.com\n"));
	free(dump);
	config_free(a);
}

/*
 * deploy/vetsyncd.conf lists every key commented out with its default:
 * with the "#" taken off those lines it must load, and match the defaults
 * (but for the install paths, which follow configure's prefix).
 */
static void
test_example(void **state)
{
	const char *srcdir = getenv("top_srcdir");
	char err[CONFIG_ERR_MAX], *path, *text, *p;
	struct config *ex = NULL, *def;
	FILE *fp;
	long len;

	if (srcdir == NULL)
		srcdir = ".";
	path = xasprintf("%s/deploy/vetsyncd.conf", srcdir);
	assert_non_null(fp = fopen(path, "r"));
	assert_int_equal(fseek(fp, 0, SEEK_END), 0);
	assert_true((len = ftell(fp)) > 0);
	rewind(fp);
	text = xmalloc((size_t)len + 1);
	assert_int_equal(fread(text, 1, (size_t)len, fp), (size_t)len);
	text[len] = '\0';
	fclose(fp);

	/* As shipped, every key is a comment: all defaults. */
	assert_int_equal(config_load_string(path, text, &ex, err), 0);
	def = load_ok("");
	assert_true(config_equal(ex, def));
	config_free(ex);

	/* "#key = value" lines are keys; "# text" lines stay comments. */
	for (p = text; (p = strstr(p, "\n#")) != NULL; p++)
		if (p[2] >= 'a' && p[2] <= 'z')
			memmove(p + 1, p + 2, strlen(p + 2) + 1);
	if (config_load_string(path, text, &ex, err) != 0)
		fail_msg("uncommented example: %s", err);
	free(ex->idexx.profile);
	ex->idexx.profile = xstrdup(def->idexx.profile);
	free(ex->workers.binary);
	ex->workers.binary = xstrdup(def->workers.binary);
	free(ex->workers.policy_dir);
	ex->workers.policy_dir = xstrdup(def->workers.policy_dir);
	free(ex->instance.name);
	ex->instance.name = xstrdup(def->instance.name);
	assert_true(config_equal(ex, def));
	config_free(ex);
	config_free(def);
	free(text);
	free(path);
}

/* Secrets. */

static void
use_credentials_dir(void)
{
	assert_int_equal(setenv("CREDENTIALS_DIRECTORY", tmpdir, 1), 0);
}

/* The message is pre, the temporary directory, then post. */
static void
expect_secret_error(const char *name, int want_r, const char *pre,
    const char *post)
{
	char err[SECRET_ERR_MAX], want[SECRET_ERR_MAX];
	struct buf b = { NULL, 77, 0, 0 };
	int r = secret_read(name, &b, err, sizeof(err));

	if (r != want_r)
		fail_msg("secret '%s': got %d, want %d (%s)", name, r, want_r,
		    err);
	assert_null(b.data);
	assert_int_equal(b.len, 77);
	snprintf(want, sizeof(want), "%s%s%s", pre, tmpdir, post);
	assert_string_equal(err, want);
}

static void
test_secret_read(void **state)
{
	char err[SECRET_ERR_MAX], big[SECRET_SIZE_MAX + 1];
	struct buf b;
	char *path, *link;

	use_credentials_dir();
	free(write_file("db-password", "s3cret pw\n", 10, 0600));
	assert_int_equal(secret_read("db-password", &b, err, sizeof(err)), 0);
	assert_int_equal(b.len, 9);
	assert_memory_equal(b.data, "s3cret pw", 10);
	buf_release_secret(&b);
	assert_true(secret_exists("db-password"));

	/* Only one newline goes; inner bytes are kept as they are. */
	free(write_file("jwt-secret", "a\0b\n\n", 5, 0400));
	assert_int_equal(secret_read("jwt-secret", &b, err, sizeof(err)), 0);
	assert_int_equal(b.len, 4);
	assert_memory_equal(b.data, "a\0b\n", 5);
	buf_release_secret(&b);

	free(write_file("qstash-token", "t", 1, 0640));
	expect_secret_error("qstash-token", -EPERM, "refusing secret file '",
	    "/qstash-token': readable by group or others (mode 0640)");
	free(write_file("qstash-token", "t", 1, 0644));
	expect_secret_error("qstash-token", -EPERM, "refusing secret file '",
	    "/qstash-token': readable by group or others (mode 0644)");
	free(write_file("qstash-token", "t", 1, 0620));
	expect_secret_error("qstash-token", -EPERM, "refusing secret file '",
	    "/qstash-token': writable by group or others (mode 0620)");

	path = xasprintf("%s/db-password", tmpdir);
	link = xasprintf("%s/smtp-password", tmpdir);
	assert_int_equal(symlink(path, link), 0);
	expect_secret_error("smtp-password", -EPERM, "refusing secret file '",
	    "/smtp-password': a symbolic link");
	assert_false(secret_exists("smtp-password"));
	free(link);
	free(path);

	path = xasprintf("%s/vapi-key", tmpdir);
	assert_int_equal(mkdir(path, 0700), 0);
	expect_secret_error("vapi-key", -EPERM, "refusing secret file '",
	    "/vapi-key': not a regular file");
	assert_false(secret_exists("vapi-key"));
	free(path);

	expect_secret_error("posthog-key", -ENOENT, "secret file '",
	    "/posthog-key' does not exist");
	assert_false(secret_exists("posthog-key"));

	memset(big, 'k', sizeof(big));
	free(write_file("big", big, SECRET_SIZE_MAX, 0600));
	assert_int_equal(secret_read("big", &b, err, sizeof(err)), 0);
	assert_int_equal(b.len, SECRET_SIZE_MAX);
	buf_release_secret(&b);
	free(write_file("big", big, SECRET_SIZE_MAX + 1, 0600));
	expect_secret_error("big", -EFBIG, "refusing secret file '", "/big': "
	    "4097 bytes, more than 4096");

	free(write_file("empty", "\n", 1, 0600));
	expect_secret_error("empty", -ENODATA, "refusing secret file '",
	    "/empty': empty");
}

static void
test_secret_names(void **state)
{
	static const char *const bad[] = {
		"", "../db-password", "a/b", "DB-PASSWORD", "db.password",
		"db password", NULL,
	};
	char err[SECRET_ERR_MAX], long_name[SECRET_NAME_MAX + 2];
	struct buf b;

	use_credentials_dir();
	memset(long_name, 'a', SECRET_NAME_MAX);
	long_name[SECRET_NAME_MAX] = '\0';
	assert_true(secret_name_valid(long_name));
	long_name[SECRET_NAME_MAX] = 'a';
	long_name[SECRET_NAME_MAX + 1] = '\0';
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *name = bad[i] != NULL ? bad[i] : long_name;

		assert_false(secret_name_valid(name));
		assert_int_equal(secret_read(name, &b, err, sizeof(err)),
		    -EINVAL);
		assert_non_null(strstr(err, "not valid; allowed: a-z, 0-9, "
		    "'_' and '-', 1 to 64 bytes"));
		assert_false(secret_exists(name));
	}
	assert_int_equal(secret_read("a/b", &b, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "secret name 'a/b': not valid; allowed: a-z, "
	    "0-9, '_' and '-', 1 to 64 bytes");
	for (size_t i = 0; secret_names[i] != NULL; i++)
		assert_true(secret_name_valid(secret_names[i]));

	assert_int_equal(unsetenv("CREDENTIALS_DIRECTORY"), 0);
	assert_int_equal(secret_read("db-password", &b, err, sizeof(err)),
	    -ENOENT);
	assert_string_equal(err, "secret 'db-password': "
	    "$CREDENTIALS_DIRECTORY is not set (LoadCredential= in the unit "
	    "provides it)");
	assert_false(secret_exists("db-password"));
	assert_int_equal(setenv("CREDENTIALS_DIRECTORY", "relative/dir", 1), 0);
	assert_int_equal(secret_read("db-password", &b, err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(err, "secret 'db-password': "
	    "$CREDENTIALS_DIRECTORY 'relative/dir' is not an absolute path");
}

static void
test_encryption_key(void **state)
{
	char err[SECRET_ERR_MAX], *want, *big;
	struct buf b;

	use_credentials_dir();
	free(write_file("encryption-key-K1", "file-key\n", 9, 0600));
	assert_int_equal(setenv("ENCRYPTION_KEY_K1", "env-key", 1), 0);
	assert_int_equal(secret_encryption_key("K1", &b, err, sizeof(err)), 0);
	assert_string_equal(b.data, "file-key");
	buf_release_secret(&b);

	/* No file: the environment, as the PRD's deployments have it. */
	assert_int_equal(setenv("ENCRYPTION_KEY_v2-new", "env-key-2", 1), 0);
	assert_int_equal(secret_encryption_key("v2-new", &b, err,
	    sizeof(err)), 0);
	assert_string_equal(b.data, "env-key-2");
	assert_int_equal(b.len, 9);
	buf_release_secret(&b);

	/* A file that is refused is not quietly replaced by the environment. */
	free(write_file("encryption-key-K3", "k", 1, 0644));
	assert_int_equal(setenv("ENCRYPTION_KEY_K3", "env-key-3", 1), 0);
	assert_int_equal(secret_encryption_key("K3", &b, err, sizeof(err)),
	    -EPERM);
	want = xasprintf("refusing secret file '%s/encryption-key-K3': "
	    "readable by group or others (mode 0644)", tmpdir);
	assert_string_equal(err, want);
	free(want);

	assert_int_equal(secret_encryption_key("K4", &b, err, sizeof(err)),
	    -ENOENT);
	assert_string_equal(err, "encryption key 'K4': neither "
	    "$CREDENTIALS_DIRECTORY/encryption-key-K4 nor ENCRYPTION_KEY_K4 "
	    "is set");

	big = xmalloc(SECRET_SIZE_MAX + 2);
	memset(big, 'e', SECRET_SIZE_MAX + 1);
	big[SECRET_SIZE_MAX + 1] = '\0';
	assert_int_equal(setenv("ENCRYPTION_KEY_K5", big, 1), 0);
	free(big);
	assert_int_equal(secret_encryption_key("K5", &b, err, sizeof(err)),
	    -EFBIG);
	assert_string_equal(err, "encryption key 'K5': ENCRYPTION_KEY_K5 is "
	    "more than 4096 bytes");

	assert_int_equal(secret_encryption_key("a/b", &b, err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(err, "encryption key id 'a/b': not valid; allowed: "
	    "A-Z, a-z, 0-9, '_' and '-', 1 to 64 bytes");
	assert_int_equal(secret_encryption_key("", &b, err, sizeof(err)),
	    -EINVAL);
	assert_int_equal(secret_encryption_key("k.1", &b, err, sizeof(err)),
	    -EINVAL);

	/* Without a credentials directory the environment still serves. */
	assert_int_equal(unsetenv("CREDENTIALS_DIRECTORY"), 0);
	assert_int_equal(secret_encryption_key("K1", &b, err, sizeof(err)), 0);
	assert_string_equal(b.data, "env-key");
	buf_release_secret(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_accepted_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_ranges),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_dump),
		cmocka_unit_test(test_example),
		cmocka_unit_test(test_secret_read),
		cmocka_unit_test(test_secret_names),
		cmocka_unit_test(test_encryption_key),
	};

	return cmocka_run_group_tests(tests, setup_tmpdir, teardown_tmpdir);
}
