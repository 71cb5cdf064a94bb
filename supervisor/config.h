/*
 * vetsyncd's configuration: /etc/vetsync/vetsyncd.conf, INI.
 *
 * Every key is declared once, in the table in config.c (section, name,
 * type, default, bounds, where it lands in struct config).  Loading is all
 * or nothing: config_load() returns a complete struct config, or an error
 * and a message "file:line: ..." naming the key and what is allowed; a
 * reload swaps configurations only when the new one loaded whole.
 *
 * Secrets never live here (see secrets.h).  Durations are milliseconds,
 * sizes bytes, fractions millionths, clock times minutes after midnight.
 * The string of an optional key left empty (api.tls_cert,
 * discharge.qstash_url, alerts.smtp_url, ...) is NULL; those of required
 * keys never are.  A struct config owns its strings.
 */
#ifndef VS_SUPERVISOR_CONFIG_H
#define VS_SUPERVISOR_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_DEFAULT_PATH VS_SYSCONFDIR "/vetsync/vetsyncd.conf"
#define CONFIG_ERR_MAX 512

enum config_log_level {
	CONFIG_LOG_ERROR,
	CONFIG_LOG_WARNING,
	CONFIG_LOG_INFO,
	CONFIG_LOG_DEBUG,
};

struct config {
	char *path;			/* file it was loaded from */

	struct {
		char *conninfo;		/* libpq conninfo, no password */
		uint64_t connect_timeout_ms;
		uint64_t statement_timeout_ms;
	} database;

	struct {
		char *profile;		/* site profile file */
		char *base_url;		/* https://us.idexxneo.com */
		uint64_t window_ms;	/* notes window, default 48h */
		unsigned max_parallel;	/* requests in flight per clinic */
		unsigned request_rate;	/* requests per second per clinic */
		uint64_t response_max;	/* bytes per response */
		uint64_t request_timeout_ms;
		char *ca_bundle;	/* the one file a worker may read */
	} idexx;

	struct {
		uint64_t notes_interval_ms;
		unsigned schedule_sync_minutes;	/* local time of day */
		uint64_t jitter_ms;
		char *default_timezone;
	} schedule;

	struct {
		char *key_id;		/* master key of new encryptions */
	} credentials;

	struct {
		unsigned max_concurrent;
		uint64_t memory_max;	/* bytes */
		uint64_t cpu_max_micro;	/* CPUs in millionths: 0.5 = 500000 */
		unsigned tasks_max;
		unsigned open_files_max;
		uint64_t file_size_max;	/* bytes */
		uint64_t job_timeout_ms;
		uint64_t silence_timeout_ms;
		uint64_t stop_timeout_ms;
		uint64_t backoff_initial_ms;
		uint64_t backoff_max_ms;
		unsigned failure_threshold;	/* circuit breaker */
		unsigned prespawn;	/* spare workers kept ready */
		char *binary;		/* vetsync-worker */
		char *policy_dir;
		char *user;		/* identity when started as root */
		char *group;
		bool allow_rlimits_only;
	} workers;

	struct {
		uint64_t delay_ms;
		char *qstash_url;
		char *delivery_url;	/* our endpoint QStash calls */
		unsigned retries;
		char *vapi_url;
		char *vapi_assistant_id;
		char *vapi_phone_number_id;
	} discharge;

	struct {
		char *listen;		/* "127.0.0.1:3001", "[::1]:3001" */
		char *tls_cert;
		char *tls_key;
		char *jwt_issuer;
		char *jwt_audience;
		char *jwks_url;
		uint64_t body_max;
	} api;

	struct {
		char *smtp_url;
		char *from;
		char *to;		/* comma-separated addresses */
		uint64_t failure_rate_micro;	/* 0.10 = 100000 */
		uint64_t slow_sync_ms;
		unsigned consecutive_failures;
		uint64_t stale_after_ms;
		uint64_t repeat_after_ms;	/* dedup window */
	} alerts;

	struct {
		char *host;
		unsigned batch_size;
		uint64_t flush_interval_ms;
	} posthog;

	struct {
		char *name;		/* default: the host name */
		uint64_t lease_time_ms;
	} instance;

	struct {
		enum config_log_level level;
	} log;
};

/*
 * Load and validate path.  On success *ret_config is a new struct config
 * (free with config_free()).  On failure returns -EINVAL (bad content),
 * -ENOENT or another -errno (unreadable file), leaves *ret_config alone
 * and writes the message, "file:line: ...", into err.
 */
int config_load(const char *path, struct config **ret_config,
    char err[CONFIG_ERR_MAX]);

/* Parse a configuration held in memory; name is used in messages. */
int config_load_string(const char *name, const char *text,
    struct config **ret_config, char err[CONFIG_ERR_MAX]);

void config_free(struct config *);

/*
 * True if every key of the table has the same value in both (path aside):
 * a reload that changes nothing can say so.
 */
bool config_equal(const struct config *, const struct config *);

/* "error", "warning", "info" or "debug". */
const char *config_log_level_name(enum config_log_level);

/*
 * Print the effective configuration, every key of the table with its value
 * (defaults included), as INI that config_load() accepts.  Nothing secret is
 * stored in struct config; secret-looking parts of URLs (user:password@)
 * are masked all the same.
 */
void config_dump(const struct config *, FILE *);

#endif
