/*
 * The IDEXX Neo flows, for either kind of site profile (profile.h): log
 * in, reconcile notes, sync a day's schedule, validate credentials, log
 * out.  client.c decides what to fetch and what an answer means (a
 * session that expired, a login refused, a page that changed); http.c
 * fetches it; extract.c reads it; the sink (job.c) turns what was read
 * into messages for the supervisor as it arrives.
 *
 * Sessions: an expired session (401, a redirect to the login page, the
 * profile's "expired" page) is renewed by a fresh login and the failed
 * requests run again.  An expiry before any request succeeded on a fresh
 * session is an error of class "session", never a loop.  A refused login
 * ends the flow at once: it is never retried.
 */
#ifndef VS_WORKER_CLIENT_H
#define VS_WORKER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/idexx.h"
#include "worker/profile.h"

enum client_flow {
	CLIENT_RECONCILE_NOTES,		/* consultations in the window */
	CLIENT_SYNC_SCHEDULE,		/* appointments in the window */
	CLIENT_VALIDATE,		/* log in and out */
};

enum client_stage {
	CLIENT_STAGE_LOGGING_IN,
	CLIENT_STAGE_CALENDAR,
	CLIENT_STAGE_CONSULTATIONS,
	CLIENT_STAGE_LOGGING_OUT,
};

enum client_event {
	CLIENT_EVENT_LOGIN_OK,
	CLIENT_EVENT_LOGIN_FAILED,
	CLIENT_EVENT_SESSION_EXPIRED,
	CLIENT_EVENT_SESSION_RENEWED,
	CLIENT_EVENT_RATE_LIMITED,
	CLIENT_EVENT_LOGGED_OUT,
};

enum client_status {
	CLIENT_OK,
	CLIENT_FAILED,			/* error_class says why */
	CLIENT_INVALID_CREDENTIALS,
	CLIENT_UI_CHANGED,
	CLIENT_TIMEOUT,			/* the job's deadline passed */
	CLIENT_CANCELLED,
	CLIENT_UNSUPPORTED,		/* the profile cannot do this flow */
};

/* A failing response, as it came (the sink redacts it). */
struct client_snapshot {
	const char *reason;
	const char *path;
	long status;			/* 0: no response */
	const char *content_type;
	const char *body;
	size_t len;
};

/*
 * Where results go.  A nonzero return from any callback (a failed send to
 * the supervisor) ends the flow, and client_run() returns it.
 */
struct client_sink {
	int (*progress)(void *, enum client_stage, uint32_t done,
	    uint32_t total);
	int (*event)(void *, enum client_event, const char *detail);
	int (*appointment)(void *, const struct idexx_appt *);
	int (*consultation)(void *, const struct idexx_consult *);
	int (*fingerprint)(void *, const char *kind, const char *sha256,
	    const char *summary);
	int (*snapshot)(void *, const struct client_snapshot *);
	/* The channel is readable: true cancels the flow. */
	bool (*watch)(void *);
	void *arg;
};

struct client_params {
	const struct profile *profile;
	const char *base_url;
	const char *pin_host;
	unsigned pin_port;
	const char *pin_ip;
	const char *ca_bundle;		/* NULL: the system's */
	unsigned max_parallel, request_rate, request_timeout_ms;
	uint64_t response_max;
	uint64_t deadline_ms;		/* clock_mono_ms() end of the job */
	const char *username;
	const char *password;		/* the caller wipes it */
	const char *company_id;		/* may be NULL */
	const char *window_start;	/* clinic-local "YYYY-MM-DD HH:MM:SS" */
	const char *window_end;
	int watch_fd;			/* the channel, -1: none */
};

struct client_result {
	enum client_status status;
	char error_class[32];		/* "" when OK */
	char message[512];
	uint32_t consultations, appointments, notes_found;
	uint32_t requests;
	uint64_t bytes_received;
	uint32_t login_ms;
};

/*
 * Run a flow.  *ret is always filled.  Returns 0 (the outcome is in *ret,
 * success or not), or the nonzero value a sink callback returned.
 */
int client_run(const struct client_params *, enum client_flow,
    const struct client_sink *, struct client_result *ret);

#endif
