/*
 * vetsyncd's configuration file.  One table, config_keys[], declares every
 * key: its section, name, type, default (written as a user would write it),
 * bounds and where it lands in struct config.  Defaults are applied by
 * parsing those strings through the same checks as the file's values, so a
 * default and a user's value can never mean different things, and
 * config_dump() prints the table back as INI that loads to the same result.
 *
 * inih splits the text into sections and key = value pairs; a reader of our
 * own feeds it one line at a time so that we know each line's number and
 * raw text.  Deliberate quirks, all documented in deploy/vetsyncd.conf:
 * inih's line buffer is fixed when it is built (200 bytes in Debian's
 * libinih) and it silently drops the rest of a longer line, so the reader
 * refuses such a line instead; inih's indented continuation lines and
 * "key: value" are refused; values are taken literally (no quotes, no
 * escapes); " ;" starts a comment (inih) and " #" inside a value is refused
 * as an ambiguous comment.  The first error wins and stops the parse.
 */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/utf8.h"
#include "common/xmalloc.h"

#include "supervisor/config.h"

#define CONFIG_FILE_MAX		(1024 * 1024)
#define CONFIG_QUOTE_MAX	72	/* bytes of a value quoted in errors */
#define ZONEINFO_DIR		"/usr/share/zoneinfo/"
#define ALNUM	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

#define SEC	1000ULL
#define MIN	(60 * SEC)
#define HOUR	(60 * MIN)
#define DAY	(24 * HOUR)
#define KiB	1024ULL
#define MiB	(1024 * KiB)
#define GiB	(1024 * MiB)
#define MICRO	1000000ULL

enum config_type {
	CT_STRING,	/* printable UTF-8 */
	CT_NAME,	/* identities and ids: [A-Za-z0-9._-] */
	CT_EMAIL,	/* one address */
	CT_EMAILS,	/* comma-separated addresses */
	CT_CONNINFO,	/* libpq connection string */
	CT_PATH,	/* absolute */
	CT_URL,		/* http:// or https:// */
	CT_SMTP_URL,	/* smtp:// or smtps:// */
	CT_LISTEN,	/* IPv4:port or [IPv6]:port */
	CT_DURATION,	/* uint64_t milliseconds */
	CT_SIZE,	/* uint64_t bytes */
	CT_FRACTION,	/* uint64_t millionths */
	CT_CLOCK,	/* unsigned minutes after midnight */
	CT_UINT,	/* unsigned */
	CT_BOOL,
	CT_TIMEZONE,	/* IANA name */
	CT_LOG_LEVEL,
};

#define CK_REQUIRED	0x1	/* an empty value is an error */
#define CK_HOSTNAME	0x2	/* empty default: the host name */
#define CK_KEY_ID	0x4	/* a CT_NAME without '.': a secret's suffix */

/*
 * Bounds are in the type's unit; for the string types they bound the length
 * in bytes.  secret names the credential that holds what a secret-looking
 * value was trying to carry.
 */
struct config_key {
	const char *section;
	const char *name;
	enum config_type type;
	const char *def;
	uint64_t min;
	uint64_t max;
	size_t offset;
	int flags;
	const char *secret;
	const char *desc;
};

#define OFF(f) offsetof(struct config, f)

static const struct config_key config_keys[] = {
	{ "database", "conninfo", CT_CONNINFO, "dbname=vetsync", 1, 1024,
	    OFF(database.conninfo), CK_REQUIRED, "db-password",
	    "libpq connection string, without a password" },
	{ "database", "connect_timeout", CT_DURATION, "10s", 1 * SEC, 5 * MIN,
	    OFF(database.connect_timeout_ms), 0, NULL,
	    "time allowed to connect to PostgreSQL" },
	{ "database", "statement_timeout", CT_DURATION, "30s", 100, 1 * HOUR,
	    OFF(database.statement_timeout_ms), 0, NULL,
	    "longest statement before PostgreSQL cancels it" },

	{ "idexx", "profile", CT_PATH,
	    VS_SYSCONFDIR "/vetsync/neo-profile.conf", 1, PATH_MAX - 1,
	    OFF(idexx.profile), CK_REQUIRED, NULL,
	    "IDEXX Neo site profile: endpoints, fields and locators" },
	{ "idexx", "base_url", CT_URL, "https://us.idexxneo.com", 8, 1024,
	    OFF(idexx.base_url), CK_REQUIRED, NULL,
	    "IDEXX Neo site (us., ca. or uk.idexxneo.com)" },
	{ "idexx", "window", CT_DURATION, "48h", 1 * HOUR, 31 * DAY,
	    OFF(idexx.window_ms), 0, NULL,
	    "how far back notes reconciliation looks" },
	{ "idexx", "max_parallel", CT_UINT, "4", 1, 64,
	    OFF(idexx.max_parallel), 0, NULL,
	    "requests in flight per clinic" },
	{ "idexx", "request_rate", CT_UINT, "10", 1, 1000,
	    OFF(idexx.request_rate), 0, NULL,
	    "requests per second per clinic" },
	{ "idexx", "response_max", CT_SIZE, "16M", 64 * KiB, 1 * GiB,
	    OFF(idexx.response_max), 0, NULL,
	    "largest response body a worker accepts" },
	{ "idexx", "request_timeout", CT_DURATION, "30s", 1 * SEC, 10 * MIN,
	    OFF(idexx.request_timeout_ms), 0, NULL,
	    "time allowed for one request to IDEXX" },
	{ "idexx", "ca_bundle", CT_PATH, "/etc/ssl/certs/ca-certificates.crt",
	    1, PATH_MAX - 1, OFF(idexx.ca_bundle), CK_REQUIRED, NULL,
	    "CA certificates, the one file a worker may read" },

	{ "schedule", "notes_interval", CT_DURATION, "4h", 5 * MIN, 7 * DAY,
	    OFF(schedule.notes_interval_ms), 0, NULL,
	    "how often each clinic's notes are reconciled" },
	{ "schedule", "schedule_sync_time", CT_CLOCK, "20:00", 0, 23 * 60 + 59,
	    OFF(schedule.schedule_sync_minutes), 0, NULL,
	    "clinic-local time of the nightly sync of tomorrow's schedule" },
	{ "schedule", "jitter", CT_DURATION, "10m", 0, 1 * DAY,
	    OFF(schedule.jitter_ms), 0, NULL,
	    "random spread added to each clinic's start" },
	{ "schedule", "default_timezone", CT_TIMEZONE, "UTC", 1, 64,
	    OFF(schedule.default_timezone), CK_REQUIRED, NULL,
	    "time zone of clinics that have none recorded" },

	{ "credentials", "key_id", CT_NAME, "1", 1, 64,
	    OFF(credentials.key_id), CK_REQUIRED | CK_KEY_ID, NULL,
	    "master key new credentials are encrypted with "
	    "(encryption-key-<id>)" },

	{ "workers", "max_concurrent", CT_UINT, "8", 1, 4096,
	    OFF(workers.max_concurrent), 0, NULL,
	    "workers running at once, all clinics together" },
	{ "workers", "memory_max", CT_SIZE, "512M", 16 * MiB, 64 * GiB,
	    OFF(workers.memory_max), 0, NULL,
	    "memory cap of one worker (cgroup memory.max)" },
	{ "workers", "cpu_max", CT_FRACTION, "0.5", MICRO / 100, 64 * MICRO,
	    OFF(workers.cpu_max_micro), 0, NULL,
	    "CPUs one worker may use (cgroup cpu.max)" },
	{ "workers", "tasks_max", CT_UINT, "32", 4, 4096,
	    OFF(workers.tasks_max), 0, NULL,
	    "threads of one worker (cgroup pids.max, RLIMIT_NPROC)" },
	{ "workers", "open_files_max", CT_UINT, "64", 16, 65536,
	    OFF(workers.open_files_max), 0, NULL,
	    "file descriptors of one worker (RLIMIT_NOFILE)" },
	{ "workers", "file_size_max", CT_SIZE, "16M", 0, 64 * GiB,
	    OFF(workers.file_size_max), 0, NULL,
	    "largest file a worker may write (RLIMIT_FSIZE)" },
	{ "workers", "job_timeout", CT_DURATION, "10m", 10 * SEC, 1 * DAY,
	    OFF(workers.job_timeout_ms), 0, NULL,
	    "longest job before its worker is killed" },
	{ "workers", "silence_timeout", CT_DURATION, "60s", 1 * SEC, 1 * HOUR,
	    OFF(workers.silence_timeout_ms), 0, NULL,
	    "longest a worker may go without a message" },
	{ "workers", "stop_timeout", CT_DURATION, "10s", 100, 5 * MIN,
	    OFF(workers.stop_timeout_ms), 0, NULL,
	    "grace between asking a worker to stop and killing it" },
	{ "workers", "backoff_initial", CT_DURATION, "30s", 1 * SEC, 1 * DAY,
	    OFF(workers.backoff_initial_ms), 0, NULL,
	    "first retry delay after a failed job; doubles each time" },
	{ "workers", "backoff_max", CT_DURATION, "1h", 1 * SEC, 7 * DAY,
	    OFF(workers.backoff_max_ms), 0, NULL,
	    "cap on the retry delay" },
	{ "workers", "failure_threshold", CT_UINT, "3", 1, 1000,
	    OFF(workers.failure_threshold), 0, NULL,
	    "consecutive failures that open a clinic's circuit breaker" },
	{ "workers", "prespawn", CT_UINT, "2", 0, 64,
	    OFF(workers.prespawn), 0, NULL,
	    "sandboxed spare workers kept ready, so a job starts at once" },
	{ "workers", "binary", CT_PATH, VS_LIBEXECDIR "/vetsync-worker",
	    1, PATH_MAX - 1, OFF(workers.binary), CK_REQUIRED, NULL,
	    "the worker program" },
	{ "workers", "policy_dir", CT_PATH, VS_PKGDATADIR "/policy",
	    1, PATH_MAX - 1, OFF(workers.policy_dir), CK_REQUIRED, NULL,
	    "isolation policy files (seccomp, Landlock, limits)" },
	{ "workers", "user", CT_NAME, "vetsync-worker", 1, 32,
	    OFF(workers.user), CK_REQUIRED, NULL,
	    "user workers run as when vetsyncd starts as root" },
	{ "workers", "group", CT_NAME, "vetsync-worker", 1, 32,
	    OFF(workers.group), CK_REQUIRED, NULL,
	    "group workers run as when vetsyncd starts as root" },
	{ "workers", "allow_rlimits_only", CT_BOOL, "no", 0, 0,
	    OFF(workers.allow_rlimits_only), 0, NULL,
	    "start even when no cgroup can cap workers (rlimits only)" },

	{ "discharge", "delay", CT_DURATION, "2d", 1 * MIN, 30 * DAY,
	    OFF(discharge.delay_ms), 0, NULL,
	    "time from a completed consultation to its discharge call" },
	{ "discharge", "qstash_url", CT_URL, "", 8, 1024,
	    OFF(discharge.qstash_url), 0, "qstash-token",
	    "QStash API; empty: no discharge calls" },
	{ "discharge", "delivery_url", CT_URL, "", 8, 1024,
	    OFF(discharge.delivery_url), 0, "qstash-current-signing-key",
	    "our endpoint QStash calls, as the Internet sees it" },
	{ "discharge", "retries", CT_UINT, "3", 0, 20,
	    OFF(discharge.retries), 0, NULL,
	    "QStash delivery retries" },
	{ "discharge", "vapi_url", CT_URL, "https://api.vapi.ai", 8, 1024,
	    OFF(discharge.vapi_url), CK_REQUIRED, "vapi-key",
	    "VAPI API" },
	{ "discharge", "vapi_assistant_id", CT_NAME, "", 0, 128,
	    OFF(discharge.vapi_assistant_id), 0, NULL,
	    "VAPI assistant that makes discharge calls" },
	{ "discharge", "vapi_phone_number_id", CT_NAME, "", 0, 128,
	    OFF(discharge.vapi_phone_number_id), 0, NULL,
	    "VAPI phone number calls come from" },

	{ "api", "listen", CT_LISTEN, "127.0.0.1:3001", 1, 64,
	    OFF(api.listen), CK_REQUIRED, NULL,
	    "address and port of the HTTP API and dashboard" },
	{ "api", "tls_cert", CT_PATH, "", 1, PATH_MAX - 1,
	    OFF(api.tls_cert), 0, NULL,
	    "PEM certificate chain; empty: plain HTTP" },
	{ "api", "tls_key", CT_PATH, "", 1, PATH_MAX - 1,
	    OFF(api.tls_key), 0, NULL,
	    "PEM private key of tls_cert (a file, mode 0600)" },
	{ "api", "jwt_issuer", CT_URL, "", 8, 1024,
	    OFF(api.jwt_issuer), 0, "jwt-secret",
	    "expected 'iss' of Supabase JWTs; empty: not checked" },
	{ "api", "jwt_audience", CT_STRING, "authenticated", 1, 128,
	    OFF(api.jwt_audience), CK_REQUIRED, NULL,
	    "expected 'aud' of Supabase JWTs" },
	{ "api", "jwks_url", CT_URL, "", 8, 1024,
	    OFF(api.jwks_url), 0, "jwt-secret",
	    "JWKS of RS256/ES256 keys; empty: HS256 with jwt-secret only" },
	{ "api", "body_max", CT_SIZE, "1M", 1 * KiB, 64 * MiB,
	    OFF(api.body_max), 0, NULL,
	    "largest request body accepted" },

	{ "alerts", "smtp_url", CT_SMTP_URL, "", 8, 1024,
	    OFF(alerts.smtp_url), 0, "smtp-password",
	    "mail server, smtp(s)://[user@]host[:port]; empty: no mail" },
	{ "alerts", "from", CT_EMAIL, "", 3, 254,
	    OFF(alerts.from), 0, NULL,
	    "sender address of alert mail" },
	{ "alerts", "to", CT_EMAILS, "", 3, 1024,
	    OFF(alerts.to), 0, NULL,
	    "recipients of alert mail, comma-separated" },
	{ "alerts", "failure_rate", CT_FRACTION, "0.10", 0, MICRO,
	    OFF(alerts.failure_rate_micro), 0, NULL,
	    "share of failed syncs in an hour that raises an alert" },
	{ "alerts", "slow_sync", CT_DURATION, "10m", 1 * MIN, 1 * DAY,
	    OFF(alerts.slow_sync_ms), 0, NULL,
	    "a sync running longer raises an alert" },
	{ "alerts", "consecutive_failures", CT_UINT, "3", 1, 100,
	    OFF(alerts.consecutive_failures), 0, NULL,
	    "failures in a row of one clinic that raise an alert" },
	{ "alerts", "stale_after", CT_DURATION, "24h", 1 * HOUR, 30 * DAY,
	    OFF(alerts.stale_after_ms), 0, NULL,
	    "a clinic without a successful sync this long raises an alert" },
	{ "alerts", "repeat_after", CT_DURATION, "6h", 5 * MIN, 7 * DAY,
	    OFF(alerts.repeat_after_ms), 0, NULL,
	    "the same alert is not sent again within this time" },

	{ "posthog", "host", CT_URL, "https://us.i.posthog.com", 8, 1024,
	    OFF(posthog.host), CK_REQUIRED, "posthog-key",
	    "PostHog instance; events are sent when posthog-key exists" },
	{ "posthog", "batch_size", CT_UINT, "50", 1, 1000,
	    OFF(posthog.batch_size), 0, NULL,
	    "events sent in one request" },
	{ "posthog", "flush_interval", CT_DURATION, "10s", 1 * SEC, 10 * MIN,
	    OFF(posthog.flush_interval_ms), 0, NULL,
	    "longest an event waits before it is sent" },

	{ "instance", "name", CT_NAME, "", 1, 64,
	    OFF(instance.name), CK_REQUIRED | CK_HOSTNAME, NULL,
	    "this vetsyncd among those sharing the database" },
	{ "instance", "lease_time", CT_DURATION, "60s", 10 * SEC, 1 * HOUR,
	    OFF(instance.lease_time_ms), 0, NULL,
	    "how long a clinic stays claimed without a heartbeat" },

	{ "log", "level", CT_LOG_LEVEL, "info", 0, 0,
	    OFF(log.level), 0, NULL,
	    "most verbose diagnostics written: error, warning, info, debug" },
};

#define NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

/* Relations between keys, checked once every key has its value. */
enum config_rule_kind {
	RULE_LE,	/* a <= b */
	RULE_LT,	/* a < b */
	RULE_NEEDS,	/* a set: b set too */
};

static const struct config_rule {
	enum config_rule_kind kind;
	const char *a_section, *a_name;
	const char *b_section, *b_name;
} config_rules[] = {
	{ RULE_LE, "workers", "backoff_initial", "workers", "backoff_max" },
	{ RULE_LT, "workers", "silence_timeout", "workers", "job_timeout" },
	{ RULE_LT, "workers", "stop_timeout", "workers", "job_timeout" },
	{ RULE_LT, "schedule", "jitter", "schedule", "notes_interval" },
	{ RULE_LT, "alerts", "slow_sync", "alerts", "stale_after" },
	{ RULE_NEEDS, "api", "tls_cert", "api", "tls_key" },
	{ RULE_NEEDS, "api", "tls_key", "api", "tls_cert" },
	{ RULE_NEEDS, "discharge", "qstash_url", "discharge", "delivery_url" },
	{ RULE_NEEDS, "discharge", "qstash_url",
	    "discharge", "vapi_assistant_id" },
	{ RULE_NEEDS, "discharge", "qstash_url",
	    "discharge", "vapi_phone_number_id" },
	{ RULE_NEEDS, "alerts", "smtp_url", "alerts", "from" },
	{ RULE_NEEDS, "alerts", "smtp_url", "alerts", "to" },
};

static const char *const log_level_names[] = {
	[CONFIG_LOG_ERROR] = "error",
	[CONFIG_LOG_WARNING] = "warning",
	[CONFIG_LOG_INFO] = "info",
	[CONFIG_LOG_DEBUG] = "debug",
};

/* Parameter names whose values are secrets, in conninfo and URL queries. */
static const char *const secret_params[] = {
	"password", "passwd", "pwd", "sslpassword", "secret", "client_secret",
	"token", "access_token", "apikey", "api_key", "api-key", "key",
	"auth", "authorization", "signature", "sig",
};

struct config_parse {
	const char *name;		/* for messages */
	const char *pos;		/* next line of the text */
	unsigned lineno;
	const char *line;		/* the raw line inih is parsing */
	size_t linelen;
	struct config *cfg;
	unsigned lines[NKEYS];		/* where each key was set, 0: default */
	unsigned fail_line;
	bool failed;
	char *err;
};

static void config_failv(struct config_parse *, unsigned, const char *,
    va_list) __attribute__((format(printf, 3, 0)));
static void config_fail(struct config_parse *, unsigned, const char *, ...)
    __attribute__((format(printf, 3, 4)));
static void config_fail_key(struct config_parse *, const struct config_key *,
    const char *, const char *, ...) __attribute__((format(printf, 4, 5)));

/* Record the first error: "name:line: ..." (no line when line is 0). */
static void
config_failv(struct config_parse *p, unsigned line, const char *fmt,
    va_list ap)
{
	int n;

	if (p->failed)
		return;
	p->failed = true;
	p->fail_line = line;
	if (line != 0)
		n = snprintf(p->err, CONFIG_ERR_MAX, "%s:%u: ", p->name, line);
	else
		n = snprintf(p->err, CONFIG_ERR_MAX, "%s: ", p->name);
	if (n < 0 || n >= CONFIG_ERR_MAX)
		return;
	vsnprintf(p->err + n, CONFIG_ERR_MAX - (size_t)n, fmt, ap);
}

static void
config_fail(struct config_parse *p, unsigned line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	config_failv(p, line, fmt, ap);
	va_end(ap);
}

static const char *
config_quote(char *dst, size_t dstsz, const char *s)
{
	return log_escape(dst, dstsz, s, strlen(s));
}

/* "file:line: [section] key 'value': " then fmt. */
static void
config_fail_key(struct config_parse *p, const struct config_key *k,
    const char *value, const char *fmt, ...)
{
	char q[CONFIG_QUOTE_MAX], what[CONFIG_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	config_fail(p, p->lineno, "[%s] %s '%s': %s", k->section, k->name,
	    config_quote(q, sizeof(q), value), what);
}

static const struct config_key *
config_key_find(const char *section, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

static bool
config_section_known(const char *section, size_t len)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strlen(config_keys[i].section) == len &&
		    strncmp(config_keys[i].section, section, len) == 0)
			return true;
	return false;
}

/* Append every section name once, "[a], [b]", or every key of one. */
static void
config_list(struct buf *b, const char *section)
{
	const char *prev = NULL;

	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &config_keys[i];

		if (section == NULL) {
			if (prev != NULL && strcmp(prev, k->section) == 0)
				continue;
			buf_printf(b, "%s[%s]", prev != NULL ? ", " : "",
			    k->section);
			prev = k->section;
		} else if (strcmp(k->section, section) == 0) {
			buf_printf(b, "%s%s", prev != NULL ? ", " : "",
			    k->name);
			prev = k->name;
		}
	}
}

/* Levenshtein distance, capped: anything over 63 bytes is "far". */
static unsigned
config_distance(const char *a, const char *b)
{
	unsigned row[64], prev, tmp;
	size_t la = strlen(a), lb = strlen(b);

	if (la >= 64 || lb >= 64)
		return UINT_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = (unsigned)i;
		for (size_t j = 1; j <= lb; j++) {
			unsigned best = prev + (a[i - 1] != b[j - 1]);

			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			tmp = row[j];
			row[j] = best;
			prev = tmp;
		}
	}
	return row[lb];
}

/* The nearest section (section NULL) or key of section within distance 2. */
static const char *
config_suggest(const char *section, const char *word)
{
	const char *best = NULL;
	unsigned bestd = 3;

	for (size_t i = 0; i < NKEYS; i++) {
		const char *cand = section == NULL ? config_keys[i].section :
		    config_keys[i].name;
		unsigned d;

		if (section != NULL &&
		    strcmp(config_keys[i].section, section) != 0)
			continue;
		if ((d = config_distance(word, cand)) < bestd) {
			bestd = d;
			best = cand;
		}
	}
	return best;
}

/* A key of that name in any section, for keys outside one or misplaced. */
static const struct config_key *
config_key_anywhere(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

static bool
config_secret_param(const char *s, size_t len)
{
	for (size_t i = 0; i < sizeof(secret_params) / sizeof(*secret_params);
	    i++)
		if (strlen(secret_params[i]) == len &&
		    strncasecmp(secret_params[i], s, len) == 0)
			return true;
	return false;
}

/*
 * Copy v into out with every secret-looking part replaced by "****": the
 * password of "scheme://user:password@", the whole user part of an http(s)
 * URL (tokens hide there), and the value of any secret-named parameter
 * ("password=", "?token=").  Returns true if anything was masked.
 */
static bool
config_mask(const char *v, bool http, struct buf *out)
{
	const char *s = v, *scheme, *auth, *at, *colon, *end;
	bool masked = false;

	buf_reset(out);
	if ((scheme = strstr(v, "://")) != NULL) {
		auth = scheme + 3;
		end = auth + strcspn(auth, "/?#");
		at = memchr(auth, '@', (size_t)(end - auth));
		if (at != NULL) {
			colon = memchr(auth, ':', (size_t)(at - auth));
			if (http || colon != NULL) {
				buf_append(out, v, (size_t)(auth - v));
				if (!http)
					buf_append(out, auth,
					    (size_t)(colon - auth) + 1);
				buf_puts(out, "****");
				s = at;
				masked = true;
			}
		}
	}
	while (*s != '\0') {
		size_t n = strcspn(s, "=");
		const char *name = s + n, *val;

		if (s[n] == '\0')
			break;
		/* The parameter name ends at '=' and starts after a break. */
		while (name > s && strchr(" \t?&;", name[-1]) == NULL)
			name--;
		val = s + n + 1;
		buf_append(out, s, (size_t)(val - s));
		if (config_secret_param(name, (size_t)(s + n - name))) {
			buf_puts(out, "****");
			val += strcspn(val, " \t&;#");
			masked = true;
		}
		s = val;
	}
	buf_puts(out, s);
	return masked;
}

static bool
config_may_hold_secret(const struct config_key *k)
{
	return k->type == CT_URL || k->type == CT_SMTP_URL ||
	    k->type == CT_CONNINFO;
}

static bool
config_printable(const char *v)
{
	for (const unsigned char *s = (const unsigned char *)v; *s != '\0';
	    s++)
		if (*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static bool
config_name_ok(const char *v)
{
	if (*v == '-')
		return false;
	return v[strspn(v, ALNUM "._-")] == '\0';
}

static bool
config_email_ok(const char *v, size_t len)
{
	const char *at = memchr(v, '@', len);
	size_t i;

	if (at == NULL || at == v || (size_t)(at - v) + 1 == len ||
	    memchr(at + 1, '@', len - (size_t)(at - v) - 1) != NULL)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)v[i] <= 0x20 || v[i] == 0x7f ||
		    strchr("<>()[]\\,;:\"", v[i]) != NULL)
			return false;
	for (i = (size_t)(at - v) + 1; i < len; i++)
		if (strchr(ALNUM ".-", v[i]) == NULL)
			return false;
	return true;
}

static bool
config_emails_ok(const char *v)
{
	for (;;) {
		size_t len;

		v += strspn(v, " ");
		len = strcspn(v, ",");
		while (len > 0 && v[len - 1] == ' ')
			len--;
		if (!config_email_ok(v, len))
			return false;
		v += strcspn(v, ",");
		if (*v == '\0')
			return true;
		v++;
	}
}

static bool
config_port_ok(const char *s)
{
	uint64_t port;

	return *s != '0' && parse_u64(s, &port) == 0 && port >= 1 &&
	    port <= 65535;
}

/* http(s)/smtp(s)://[user@]host[:port][/path][?query], host a name or [v6]. */
static bool
config_url_ok(const char *v, bool http)
{
	static const char *const schemes[2][2] = {
		{ "smtp://", "smtps://" }, { "http://", "https://" },
	};
	const char *s = NULL, *end, *host, *port = NULL;
	char addr[INET6_ADDRSTRLEN + 1];
	unsigned char sa[sizeof(struct in6_addr)];

	for (size_t i = 0; i < 2; i++)
		if (strncmp(v, schemes[http][i], strlen(schemes[http][i])) == 0)
			s = v + strlen(schemes[http][i]);
	if (s == NULL)
		return false;
	for (const unsigned char *t = (const unsigned char *)v; *t != '\0';
	    t++)
		if (*t <= 0x20 || *t >= 0x7f)
			return false;
	end = s + strcspn(s, "/?#");
	host = s;
	for (const char *t = s; t < end; t++)
		if (*t == '@')
			host = t + 1;
	if (*host == '[') {
		const char *close = memchr(host, ']', (size_t)(end - host));
		size_t n;

		if (close == NULL || (n = (size_t)(close - host - 1)) == 0 ||
		    n >= sizeof(addr))
			return false;
		memcpy(addr, host + 1, n);
		addr[n] = '\0';
		if (inet_pton(AF_INET6, addr, sa) != 1)
			return false;
		if (close + 1 < end && close[1] != ':')
			return false;
		port = close + 1 < end ? close + 2 : NULL;
	} else {
		const char *t = host;

		while (t < end && strchr(ALNUM ".-", *t) != NULL)
			t++;
		if (t == host || (t < end && *t != ':'))
			return false;
		port = t < end ? t + 1 : NULL;
	}
	if (port != NULL) {
		char num[8];
		size_t n = (size_t)(end - port);

		if (n == 0 || n >= sizeof(num))
			return false;
		memcpy(num, port, n);
		num[n] = '\0';
		if (!config_port_ok(num))
			return false;
	}
	return true;
}

static bool
config_listen_ok(const char *v)
{
	char addr[INET6_ADDRSTRLEN + 1];
	unsigned char sa[sizeof(struct in6_addr)];
	const char *colon;
	size_t n;

	if (*v == '[') {
		if ((colon = strstr(v, "]:")) == NULL)
			return false;
		n = (size_t)(colon - v - 1);
		if (n == 0 || n >= sizeof(addr))
			return false;
		memcpy(addr, v + 1, n);
		addr[n] = '\0';
		return inet_pton(AF_INET6, addr, sa) == 1 &&
		    config_port_ok(colon + 2);
	}
	if ((colon = strrchr(v, ':')) == NULL)
		return false;
	n = (size_t)(colon - v);
	if (n == 0 || n >= sizeof(addr))
		return false;
	memcpy(addr, v, n);
	addr[n] = '\0';
	return inet_pton(AF_INET, addr, sa) == 1 && config_port_ok(colon + 1);
}

static bool
config_path_ok(const char *v)
{
	size_t n = strlen(v);

	return v[0] == '/' && config_printable(v) &&
	    strstr(v, "/../") == NULL &&
	    !(n >= 3 && strcmp(v + n - 3, "/..") == 0);
}

static bool
config_timezone_ok(const char *v)
{
	char path[sizeof(ZONEINFO_DIR) + 64];
	struct stat st;

	if (strcmp(v, "UTC") == 0)
		return true;
	if (v[0] == '/' || v[0] == '\0' || strstr(v, "..") != NULL ||
	    strlen(v) > 64 ||
	    v[strspn(v, ALNUM "/_-+")] != '\0')
		return false;
	snprintf(path, sizeof(path), "%s%s", ZONEINFO_DIR, v);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Exact shortest form: "1h30m", "512M", "0.5". */
static const char *
config_format_duration(char *dst, size_t dstsz, uint64_t ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
		{ "d", DAY }, { "h", HOUR }, { "m", MIN }, { "s", SEC },
		{ "ms", 1 },
	};
	size_t pos = 0;

	if (ms == 0) {
		snprintf(dst, dstsz, "0s");
		return dst;
	}
	dst[0] = '\0';
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms < units[i].ms)
			continue;
		if (pos < dstsz)
			pos += (size_t)snprintf(dst + pos, dstsz - pos,
			    "%llu%s", (unsigned long long)(ms / units[i].ms),
			    units[i].unit);
		ms %= units[i].ms;
	}
	return dst;
}

static const char *
config_format_size(char *dst, size_t dstsz, uint64_t v)
{
	static const char units[] = "TGMK";
	int shift = 40;

	for (const char *u = units; *u != '\0'; u++, shift -= 10)
		if (v != 0 && v % (1ULL << shift) == 0) {
			snprintf(dst, dstsz, "%llu%c",
			    (unsigned long long)(v >> shift), *u);
			return dst;
		}
	snprintf(dst, dstsz, "%lluB", (unsigned long long)v);
	return dst;
}

static const char *
config_format_fraction(char *dst, size_t dstsz, uint64_t micro)
{
	int n;

	n = snprintf(dst, dstsz, "%llu.%06llu",
	    (unsigned long long)(micro / MICRO),
	    (unsigned long long)(micro % MICRO));
	while (n > 0 && (size_t)n < dstsz && dst[n - 1] == '0')
		dst[--n] = '\0';
	if (n > 0 && (size_t)n < dstsz && dst[n - 1] == '.')
		dst[--n] = '\0';
	return dst;
}

/* A numeric value of k in the user's notation. */
static const char *
config_format_number(char *dst, size_t dstsz, const struct config_key *k,
    uint64_t v)
{
	switch (k->type) {
	case CT_DURATION:
		return config_format_duration(dst, dstsz, v);
	case CT_SIZE:
		return config_format_size(dst, dstsz, v);
	case CT_FRACTION:
		return config_format_fraction(dst, dstsz, v);
	case CT_CLOCK:
		snprintf(dst, dstsz, "%02u:%02u", (unsigned)(v / 60),
		    (unsigned)(v % 60));
		return dst;
	default:
		snprintf(dst, dstsz, "%llu", (unsigned long long)v);
		return dst;
	}
}

/* What a value of k may look like, for "allowed: ...". */
static const char *
config_type_help(const struct config_key *k)
{
	switch (k->type) {
	case CT_STRING:
		return "printable text";
	case CT_NAME:
		if (k->flags & CK_KEY_ID)
			return "letters, digits, '_' and '-', not starting "
			    "with '-'";
		return "letters, digits, '.', '_' and '-', not starting "
		    "with '-'";
	case CT_EMAIL:
		return "one address such as ops@example.com";
	case CT_EMAILS:
		return "addresses such as ops@example.com, separated by ','";
	case CT_CONNINFO:
		return "a libpq connection string such as "
		    "'host=/run/postgresql dbname=vetsync'";
	case CT_PATH:
		return "an absolute path without '..'";
	case CT_URL:
		return "an http:// or https:// URL with a host";
	case CT_SMTP_URL:
		return "an smtp:// or smtps:// URL with a host";
	case CT_LISTEN:
		return "IPv4:port or [IPv6]:port, port 1 to 65535";
	case CT_DURATION:
		return "a duration such as 90s, 10m, 4h, 2d or 1h30m";
	case CT_SIZE:
		return "a size such as 64K, 512M or 2G (powers of 1024)";
	case CT_FRACTION:
		return "a decimal number such as 0.5, at most 6 decimals";
	case CT_CLOCK:
		return "a time of day HH:MM, 00:00 to 23:59";
	case CT_UINT:
		return "a whole number";
	case CT_BOOL:
		return "yes, no, true, false, on, off, 1 or 0";
	case CT_TIMEZONE:
		return "UTC or an IANA time zone in " ZONEINFO_DIR
		    " such as Europe/London";
	case CT_LOG_LEVEL:
		return "error, warning, info or debug";
	}
	return "?";
}

static bool
config_is_string(const struct config_key *k)
{
	switch (k->type) {
	case CT_DURATION:
	case CT_SIZE:
	case CT_FRACTION:
	case CT_CLOCK:
	case CT_UINT:
	case CT_BOOL:
	case CT_LOG_LEVEL:
		return false;
	default:
		return true;
	}
}

static void *
config_field(const struct config *cfg, const struct config_key *k)
{
	return (char *)cfg + k->offset;
}

static uint64_t
config_number(const struct config *cfg, const struct config_key *k)
{
	void *f = config_field(cfg, k);

	if (k->type == CT_CLOCK || k->type == CT_UINT)
		return *(unsigned *)f;
	return *(uint64_t *)f;
}

/* Check a string value of k against its type; on error write the message. */
static int
config_check_string(struct config_parse *p, const struct config_key *k,
    const char *v)
{
	struct buf masked;
	size_t len = strlen(v);
	bool ok, secret;

	if (len < k->min || len > k->max) {
		config_fail_key(p, k, v, "%zu bytes long; allowed: %llu to "
		    "%llu bytes", len, (unsigned long long)k->min,
		    (unsigned long long)k->max);
		return -EINVAL;
	}
	if (config_may_hold_secret(k)) {
		buf_init(&masked, 0);
		secret = config_mask(v, k->type == CT_URL, &masked);
		if (secret && k->secret != NULL)
			config_fail_key(p, k, masked.data, "holds a secret; "
			    "allowed: no secrets in this file: put it in "
			    "$CREDENTIALS_DIRECTORY/%s", k->secret);
		else if (secret)
			config_fail_key(p, k, masked.data, "holds a secret; "
			    "allowed: no secrets in this file");
		buf_release_secret(&masked);
		if (secret)
			return -EINVAL;
	}
	switch (k->type) {
	case CT_NAME:
		ok = config_name_ok(v) &&
		    (!(k->flags & CK_KEY_ID) || strchr(v, '.') == NULL);
		break;
	case CT_EMAIL:
		ok = config_email_ok(v, len);
		break;
	case CT_EMAILS:
		ok = config_emails_ok(v);
		break;
	case CT_PATH:
		ok = config_path_ok(v);
		break;
	case CT_URL:
	case CT_SMTP_URL:
		ok = config_url_ok(v, k->type == CT_URL);
		break;
	case CT_LISTEN:
		ok = config_listen_ok(v);
		break;
	case CT_TIMEZONE:
		ok = config_timezone_ok(v);
		break;
	default:
		ok = true;
		break;
	}
	if (!ok) {
		config_fail_key(p, k, v, "not valid; allowed: %s",
		    config_type_help(k));
		return -EINVAL;
	}
	return 0;
}

static int
config_parse_number(const struct config_key *k, const char *v, uint64_t *ret)
{
	unsigned minutes;
	int r;

	switch (k->type) {
	case CT_DURATION:
		return parse_duration_ms(v, ret);
	case CT_SIZE:
		return parse_size(v, ret);
	case CT_FRACTION:
		return parse_fraction_micro(v, ret);
	case CT_CLOCK:
		if ((r = parse_clock_minutes(v, &minutes)) < 0)
			return r == -ERANGE ? -EINVAL : r;
		*ret = minutes;
		return 0;
	default:
		return parse_u64(v, ret);
	}
}

/* Check v and store it in p->cfg as the value of k. */
static int
config_set(struct config_parse *p, const struct config_key *k, const char *v)
{
	char lo[32], hi[32];
	void *f = config_field(p->cfg, k);
	uint64_t n;
	bool b;
	int r;

	if (*v == '\0' && ((k->flags & CK_REQUIRED) || !config_is_string(k))) {
		config_fail_key(p, k, v, "empty value; allowed: %s",
		    config_type_help(k));
		return -EINVAL;
	}
	if (*v == '\0' && config_is_string(k)) {
		free(*(char **)f);
		*(char **)f = NULL;
		return 0;
	}
	if (!config_printable(v)) {
		config_fail_key(p, k, v, "control character; allowed: %s",
		    config_type_help(k));
		return -EINVAL;
	}
	if (config_is_string(k)) {
		if ((r = config_check_string(p, k, v)) < 0)
			return r;
		free(*(char **)f);
		*(char **)f = xstrdup(v);
		return 0;
	}
	if (k->type == CT_BOOL) {
		if (parse_bool(v, &b) < 0) {
			config_fail_key(p, k, v, "not a boolean; allowed: %s",
			    config_type_help(k));
			return -EINVAL;
		}
		*(bool *)f = b;
		return 0;
	}
	if (k->type == CT_LOG_LEVEL) {
		for (size_t i = 0; i < sizeof(log_level_names) /
		    sizeof(log_level_names[0]); i++)
			if (strcmp(v, log_level_names[i]) == 0) {
				*(enum config_log_level *)f =
				    (enum config_log_level)i;
				return 0;
			}
		config_fail_key(p, k, v, "not a log level; allowed: %s",
		    config_type_help(k));
		return -EINVAL;
	}
	config_format_number(lo, sizeof(lo), k, k->min);
	config_format_number(hi, sizeof(hi), k, k->max);
	r = config_parse_number(k, v, &n);
	if (r == -EINVAL && k->type == CT_CLOCK) {
		config_fail_key(p, k, v, "not valid; allowed: %s",
		    config_type_help(k));
		return -EINVAL;
	}
	if (r == -EINVAL) {
		config_fail_key(p, k, v, "not valid; allowed: %s, %s to %s",
		    config_type_help(k), lo, hi);
		return -EINVAL;
	}
	if (r < 0 || n < k->min || n > k->max) {
		config_fail_key(p, k, v, "out of range; allowed: %s to %s",
		    lo, hi);
		return -EINVAL;
	}
	if (k->type == CT_CLOCK || k->type == CT_UINT)
		*(unsigned *)f = (unsigned)n;
	else
		*(uint64_t *)f = n;
	return 0;
}

/*
 * A "[section]" line from t to end: a known section, and nothing after it
 * but a comment.  inih would ignore the rest of the line; a lone '['
 * without ']' is left to inih, which reports it.
 */
static bool
config_check_section(struct config_parse *p, const char *t, const char *end)
{
	const char *close = memchr(t, ']', (size_t)(end - t)), *near, *rest;
	char q[CONFIG_QUOTE_MAX], name[64];
	struct buf list;

	if (close == NULL)
		return true;
	snprintf(name, sizeof(name), "%.*s", (int)(close - t - 1), t + 1);
	if (!config_section_known(t + 1, (size_t)(close - t - 1))) {
		near = config_suggest(NULL, name);
		buf_init(&list, 0);
		config_list(&list, NULL);
		config_fail(p, p->lineno, "[%s]: unknown section%s%s%s; "
		    "allowed: %s", config_quote(q, sizeof(q), name),
		    near != NULL ? " (did you mean [" : "",
		    near != NULL ? near : "", near != NULL ? "]?)" : "",
		    list.data);
		buf_release(&list);
		return false;
	}
	rest = close + 1 + strspn(close + 1, " \t\r");
	if (rest < end && ((*rest != ';' && *rest != '#') ||
	    rest == close + 1)) {
		config_fail(p, p->lineno, "[%s]: text after the section "
		    "header; allowed: '[%s]' alone, or followed by "
		    "' ; comment'", name, name);
		return false;
	}
	return true;
}

/*
 * inih's line source.  Hands over one line, refusing what inih would get
 * wrong (a line longer than its buffer, which it would cut short silently)
 * and what we can judge from the raw text (bad UTF-8, unknown sections).
 * Returning NULL ends the parse, at the end of the text or at an error.
 */
static char *
config_reader(char *str, int num, void *stream)
{
	struct config_parse *p = stream;
	const char *s = p->pos, *t;
	size_t len, take;

	if (p->failed || *s == '\0')
		return NULL;
	len = strcspn(s, "\n");
	take = s[len] == '\n' ? len + 1 : len;
	p->lineno++;
	p->line = s;
	p->linelen = len;
	p->pos = s + take;
	if (num < 2 || len > (size_t)num - 2) {
		config_fail(p, p->lineno, "line of %zu bytes is too long; "
		    "allowed: at most %d bytes a line", len, num - 2);
		return NULL;
	}
	if (!utf8_valid(s, len)) {
		config_fail(p, p->lineno, "not valid UTF-8; allowed: UTF-8 "
		    "text without NUL bytes");
		return NULL;
	}
	t = s;
	if (p->lineno == 1 && len >= 3 && memcmp(t, "\xef\xbb\xbf", 3) == 0)
		t += 3;
	t += strspn(t, " \t");
	if (*t == '[' && !config_check_section(p, t, s + len))
		return NULL;
	memcpy(str, s, take);
	str[take] = '\0';
	return str;
}

static int
config_handler(void *user, const char *section, const char *name,
    const char *value)
{
	struct config_parse *p = user;
	const struct config_key *k, *other;
	const char *line = p->line;
	char q[CONFIG_QUOTE_MAX], qn[CONFIG_QUOTE_MAX];
	struct buf list;
	size_t i, nlen = strlen(name);

	if (p->lineno == 1 && p->linelen >= 3 &&
	    memcmp(line, "\xef\xbb\xbf", 3) == 0)
		line += 3;
	/* inih takes an indented line as the continuation of the last key. */
	if (*line == ' ' || *line == '\t' || strncmp(line, name, nlen) != 0 ||
	    line[nlen + strspn(line + nlen, " \t")] != '=') {
		config_fail(p, p->lineno, "expected 'key = value' at the start "
		    "of the line; allowed: no indentation, no continuation "
		    "lines, no 'key: value'");
		return 0;
	}
	config_quote(qn, sizeof(qn), name);
	if (*section == '\0') {
		other = config_key_anywhere(name);
		config_fail(p, p->lineno, "%s '%s': key outside any section; "
		    "allowed: keys after a [section] header%s%s%s", qn,
		    config_quote(q, sizeof(q), value),
		    other != NULL ? " (it belongs in [" : "",
		    other != NULL ? other->section : "",
		    other != NULL ? "])" : "");
		return 0;
	}
	if ((k = config_key_find(section, name)) == NULL) {
		const char *near = config_suggest(section, name);

		bool secretish = config_secret_param(name, nlen) ||
		    strcasestr(name, "pass") != NULL ||
		    strcasestr(name, "secret") != NULL ||
		    strcasestr(name, "token") != NULL;

		other = config_key_anywhere(name);
		buf_init(&list, 0);
		if (secretish && near == NULL)
			buf_puts(&list, "no secrets in this file: they are "
			    "read from $CREDENTIALS_DIRECTORY");
		else
			config_list(&list, section);
		/* A secret-named key's value is not repeated. */
		config_fail(p, p->lineno, "[%s] %s '%s': unknown "
		    "key%s%s%s%s%s%s; allowed: %s", section, qn,
		    secretish ? "****" : config_quote(q, sizeof(q), value),
		    near != NULL ? " (did you mean '" : "",
		    near != NULL ? near : "", near != NULL ? "'?)" : "",
		    near == NULL && other != NULL ? " (it belongs in [" : "",
		    near == NULL && other != NULL ? other->section : "",
		    near == NULL && other != NULL ? "])" : "", list.data);
		buf_release(&list);
		return 0;
	}
	i = (size_t)(k - config_keys);
	if (p->lines[i] != 0) {
		config_fail_key(p, k, value, "duplicate key (first set on "
		    "line %u); allowed: each key once", p->lines[i]);
		return 0;
	}
	p->lines[i] = p->lineno;
	if (*value == '"' || *value == '\'') {
		config_fail_key(p, k, value, "quotes are not removed; allowed: "
		    "the value without quotes");
		return 0;
	}
	if (strstr(value, " #") != NULL || strstr(value, "\t#") != NULL) {
		config_fail_key(p, k, value, "'#' after a blank; allowed: "
		    "comments on a line of their own, or after ' ;'");
		return 0;
	}
	return config_set(p, k, value) == 0;
}

static const char *
config_value_text(char *dst, size_t dstsz, const struct config *cfg,
    const struct config_key *k)
{
	const void *f = config_field(cfg, k);

	if (config_is_string(k)) {
		const char *s = *(char *const *)f;

		return s != NULL ? s : "";
	}
	if (k->type == CT_BOOL)
		return *(const bool *)f ? "yes" : "no";
	if (k->type == CT_LOG_LEVEL)
		return log_level_names[*(const enum config_log_level *)f];
	return config_format_number(dst, dstsz, k, config_number(cfg, k));
}

static bool
config_is_set(const struct config *cfg, const struct config_key *k)
{
	return !config_is_string(k) ||
	    *(char *const *)config_field(cfg, k) != NULL;
}

static void
config_check_rules(struct config_parse *p)
{
	for (size_t i = 0; i < sizeof(config_rules) / sizeof(config_rules[0]) &&
	    !p->failed; i++) {
		const struct config_rule *r = &config_rules[i];
		const struct config_key *a, *b;
		char va[64], vb[64], qa[CONFIG_QUOTE_MAX], qb[CONFIG_QUOTE_MAX];
		char where[32];
		unsigned la, lb;
		bool bad;

		a = config_key_find(r->a_section, r->a_name);
		b = config_key_find(r->b_section, r->b_name);
		if (a == NULL || b == NULL)
			fatalx("config rule %zu names an unknown key", i);
		la = p->lines[a - config_keys];
		lb = p->lines[b - config_keys];
		if (r->kind == RULE_NEEDS)
			bad = config_is_set(p->cfg, a) &&
			    !config_is_set(p->cfg, b);
		else if (r->kind == RULE_LE)
			bad = config_number(p->cfg, a) >
			    config_number(p->cfg, b);
		else
			bad = config_number(p->cfg, a) >=
			    config_number(p->cfg, b);
		if (!bad)
			continue;
		config_quote(qa, sizeof(qa),
		    config_value_text(va, sizeof(va), p->cfg, a));
		config_quote(qb, sizeof(qb),
		    config_value_text(vb, sizeof(vb), p->cfg, b));
		if (lb != 0)
			snprintf(where, sizeof(where), "line %u", lb);
		else
			snprintf(where, sizeof(where), "default");
		if (r->kind == RULE_NEEDS)
			config_fail(p, la, "[%s] %s '%s': needs [%s] %s, which "
			    "is empty; allowed: set [%s] %s too, or leave "
			    "[%s] %s empty", a->section, a->name, qa,
			    b->section, b->name, b->section, b->name,
			    a->section, a->name);
		else
			config_fail(p, la != 0 ? la : lb, "[%s] %s '%s': %s "
			    "[%s] %s '%s' (%s); allowed: %s %s", a->section,
			    a->name, qa, r->kind == RULE_LE ? "more than" :
			    "not less than", b->section, b->name, qb, where,
			    r->kind == RULE_LE ? "at most" : "less than",
			    b->name);
	}
}

static int
config_apply_defaults(struct config_parse *p)
{
	char host[HOST_NAME_MAX + 1];

	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &config_keys[i];
		const char *def = k->def;

		if (k->flags & CK_HOSTNAME) {
			if (gethostname(host, sizeof(host)) < 0 ||
			    strnlen(host, sizeof(host)) == sizeof(host) ||
			    !config_name_ok(host) || strlen(host) > k->max ||
			    host[0] == '\0')
				snprintf(host, sizeof(host), "vetsyncd");
			def = host;
		}
		if (config_set(p, k, def) < 0)
			return -EINVAL;
	}
	return 0;
}

/* The syntax error inih found on line n: quote that line. */
static void
config_syntax_error(struct config_parse *p, const char *text, unsigned n)
{
	char q[CONFIG_QUOTE_MAX];
	const char *s = text;

	for (unsigned i = 1; i < n && *s != '\0'; i++)
		s += strcspn(s, "\n") + (s[strcspn(s, "\n")] == '\n');
	p->failed = false;
	config_fail(p, n, "expected 'key = value', '[section]' or a comment; "
	    "got '%s'", log_escape(q, sizeof(q), s, strcspn(s, "\r\n")));
}

int
config_load_string(const char *name, const char *text,
    struct config **ret_config, char err[CONFIG_ERR_MAX])
{
	struct config_parse *p;
	int r;

	p = xcalloc(1, sizeof(*p));
	p->name = name;
	p->pos = text;
	p->err = err;
	p->cfg = xcalloc(1, sizeof(*p->cfg));
	p->cfg->path = xstrdup(name);
	err[0] = '\0';

	if ((r = config_apply_defaults(p)) < 0)
		goto out;
	/*
	 * inih counts the lines it has read; parsing stops at our first
	 * error, so an earlier line number can only be inih's own.
	 */
	r = ini_parse_stream(config_reader, p, config_handler, p);
	if (r == -2)
		fatalx("config: out of memory");
	if (r > 0 && (!p->failed || (unsigned)r < p->fail_line))
		config_syntax_error(p, text, (unsigned)r);
	if (!p->failed)
		config_check_rules(p);
	r = p->failed ? -EINVAL : 0;
	if (r == 0) {
		*ret_config = p->cfg;
		p->cfg = NULL;
	}
out:
	config_free(p->cfg);
	free(p);
	return r;
}

int
config_load(const char *path, struct config **ret_config,
    char err[CONFIG_ERR_MAX])
{
	struct buf text;
	struct stat st;
	char chunk[8192];
	ssize_t n;
	int fd = -1, r;

	buf_init(&text, CONFIG_FILE_MAX);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0 ||
	    fstat(fd, &st) < 0) {
		r = -errno;
		goto io;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, CONFIG_ERR_MAX, "%s: cannot read: not a regular "
		    "file", path);
		r = -EINVAL;
		goto out;
	}
	for (;;) {
		if ((n = read(fd, chunk, sizeof(chunk))) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto io;
		}
		if (n == 0)
			break;
		if (buf_append(&text, chunk, (size_t)n) < 0) {
			snprintf(err, CONFIG_ERR_MAX, "%s: larger than %d "
			    "bytes; allowed: at most %d bytes", path,
			    CONFIG_FILE_MAX, CONFIG_FILE_MAX);
			r = -EFBIG;
			goto out;
		}
	}
	if (text.len > 0 && memchr(text.data, '\0', text.len) != NULL) {
		const char *nul = memchr(text.data, '\0', text.len);
		unsigned line = 1;

		for (const char *s = text.data; s < nul; s++)
			line += *s == '\n';
		snprintf(err, CONFIG_ERR_MAX, "%s:%u: NUL byte; allowed: "
		    "UTF-8 text without NUL bytes", path, line);
		r = -EINVAL;
		goto out;
	}
	r = config_load_string(path, text.data != NULL ? text.data : "",
	    ret_config, err);
	goto out;
io:
	snprintf(err, CONFIG_ERR_MAX, "%s: cannot read: %s", path,
	    strerror(-r));
out:
	if (fd != -1)
		close(fd);
	buf_release(&text);
	return r;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < NKEYS; i++)
		if (config_is_string(&config_keys[i]))
			free(*(char **)config_field(cfg, &config_keys[i]));
	free(cfg->path);
	free(cfg);
}

bool
config_equal(const struct config *a, const struct config *b)
{
	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &config_keys[i];
		char va[64], vb[64];

		if (strcmp(config_value_text(va, sizeof(va), a, k),
		    config_value_text(vb, sizeof(vb), b, k)) != 0)
			return false;
	}
	return true;
}

const char *
config_log_level_name(enum config_log_level level)
{
	if ((size_t)level >= sizeof(log_level_names) /
	    sizeof(log_level_names[0]))
		return "?";
	return log_level_names[level];
}

void
config_dump(const struct config *cfg, FILE *fp)
{
	const char *section = NULL;
	struct buf masked;
	char v[64], lo[32], hi[32];

	buf_init(&masked, 0);
	fprintf(fp, "# vetsyncd configuration: every key, defaults included"
	    "\n# loaded from %s\n", log_q(cfg->path));
	for (size_t i = 0; i < NKEYS; i++) {
		const struct config_key *k = &config_keys[i];
		const char *text = config_value_text(v, sizeof(v), cfg, k);

		if (section == NULL || strcmp(section, k->section) != 0) {
			fprintf(fp, "\n[%s]\n", k->section);
			section = k->section;
		}
		fprintf(fp, "# %s\n# default: %s", k->desc,
		    (k->flags & CK_HOSTNAME) ? "the host name" :
		    *k->def != '\0' ? k->def : "empty");
		if (!config_is_string(k) && k->type != CT_BOOL &&
		    k->type != CT_LOG_LEVEL)
			fprintf(fp, "; allowed: %s to %s",
			    config_format_number(lo, sizeof(lo), k, k->min),
			    config_format_number(hi, sizeof(hi), k, k->max));
		fputc('\n', fp);
		if (config_may_hold_secret(k) &&
		    config_mask(text, k->type == CT_URL, &masked))
			text = masked.data;
		fprintf(fp, "%s =%s%s\n", k->name, *text != '\0' ? " " : "",
		    text);
	}
	buf_release_secret(&masked);
}
