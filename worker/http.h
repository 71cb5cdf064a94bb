/*
 * The worker's HTTP client: the one module that drives libcurl (STYLE §1).
 *
 * One struct http per clinic: a curl multi handle for bounded parallel
 * transfers and a share handle that holds the clinic's cookies (the
 * session) and TLS sessions for every transfer.  Every transfer verifies
 * TLS against the job's CA bundle, connects only to the pinned address
 * (CURLOPT_RESOLVE: no name is ever resolved), speaks only http and
 * https, follows no redirect (the caller reads Location itself), has
 * connect, total and low-speed timeouts, and is aborted in its write
 * callback as soon as its body passes response_max.
 *
 * http_run() runs a batch of requests: at most max_parallel at once, at
 * most request_rate started per second (token bucket), 5xx answers and
 * network errors retried with exponential backoff and jitter (bounded),
 * 429 retried after its Retry-After (capped), the whole batch bounded by
 * the job's deadline and stopped when the watched descriptor says so
 * (cancel).  What a finished answer means -- an expired session, a page
 * that changed -- is the caller's business, told through a callback as
 * each request finishes, so results stream out as they arrive.
 *
 * Neither cookies nor request bodies (which carry the password at login)
 * are ever logged.
 */
#ifndef VS_WORKER_HTTP_H
#define VS_WORKER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* Retries: 5xx and network errors, then 429. */
#define HTTP_ATTEMPTS_MAX	4	/* per request, 5xx and network */
#define HTTP_BACKOFF_MIN_MS	250
#define HTTP_BACKOFF_MAX_MS	4000
#define HTTP_429_ATTEMPTS_MAX	8	/* per request, 429 answers */
#define HTTP_RETRY_AFTER_MAX_MS	30000	/* longest Retry-After we honour */
#define HTTP_HEADER_MAX		2048	/* longest header value kept */

/* Why a request ended without an answer the caller can read. */
enum http_fail {
	HTTP_FAIL_NONE = 0,	/* an answer: look at status and body */
	HTTP_FAIL_NETWORK,	/* connect, send or receive failed */
	HTTP_FAIL_TIMEOUT,	/* the request timeout passed */
	HTTP_FAIL_TLS,		/* handshake or certificate refused */
	HTTP_FAIL_TOO_LARGE,	/* body over response_max, aborted */
	HTTP_FAIL_HTTP,		/* 5xx after every attempt */
	HTTP_FAIL_RATE_LIMITED,	/* 429 after every attempt */
};

/* What http_run() tells the caller while it waits. */
enum http_note {
	HTTP_NOTE_RATE_LIMITED,	/* a 429: detail says how long we wait */
	HTTP_NOTE_RETRY,	/* a 5xx or network error, retrying */
};

struct http_config {
	const char *base_url;		/* "https://host[:port]", no path */
	const char *pin_host;		/* CURLOPT_RESOLVE host:port:ip */
	unsigned pin_port;
	const char *pin_ip;
	const char *ca_bundle;		/* NULL: libcurl's default */
	unsigned max_parallel;		/* 1..64 */
	unsigned request_rate;		/* starts per second, 1..1000 */
	uint64_t response_max;		/* bytes per body */
	unsigned request_timeout_ms;	/* per attempt */
	uint64_t deadline_ms;		/* clock_mono_ms() end; 0: none */
	int watch_fd;			/* polled while waiting; -1: none */
	/* watch_fd is readable: true stops the batch (-ECANCELED). */
	bool (*watch)(void *arg);
	void (*note)(void *arg, enum http_note, const char *detail);
	void *arg;
};

/*
 * One request.  The caller fills the first group (http_req_init() zeroes
 * it), http_run() the second.  body and the header copies are the
 * request's, released with http_req_release().
 */
struct http_req {
	const char *path;		/* path and query, from "/" */
	const char *post;		/* form body (POST), NULL: GET */
	size_t post_len;
	bool json;			/* Accept: JSON, X-Requested-With */
	void *udata;

	bool done;			/* finished (answer or failure) */
	enum http_fail fail;
	long status;			/* 0: no answer */
	struct buf body;
	char *location;			/* Location header, or NULL */
	char *content_type;		/* Content-Type header, or NULL */
	unsigned attempts;
	uint64_t elapsed_ms;		/* of the last attempt */

	/* private to http.c */
	void *easy;
	void *headers;
	uint64_t not_before;
	unsigned attempts_429;
	unsigned retry_after_ms;
	bool retry_after_set;
	bool too_large;
	bool running;
};

struct http;

/*
 * A client for one clinic.  The config's strings must outlive it.
 * Returns 0, -EINVAL for a bad config, -ENOMEM.
 */
int http_new(const struct http_config *, struct http **ret);
void http_free(struct http *);

void http_req_init(struct http_req *, const char *path);
/* Back to the state http_req_init() left, keeping path, post and json. */
void http_req_reset(struct http_req *);
void http_req_release(struct http_req *);

/*
 * Run the n requests that are not done yet.  finished(arg, req) is called
 * once per request as it ends (an answer, or a failure after its retries:
 * req->fail); a nonzero return stops the batch at once and is returned,
 * the requests still running are abandoned and left not done, so that
 * they can run again.  Returns 0 when every request is done,
 * -ECANCELED when the watch callback said stop, -ETIMEDOUT past the
 * deadline, -ENOMEM.
 */
int http_run(struct http *, struct http_req **reqs, size_t n,
    int (*finished)(void *arg, struct http_req *), void *arg);

/*
 * True when the session holds a cookie whose name contains one of the n
 * strings (case-insensitive).  Cookie values never leave this module.
 */
bool http_cookie_present(struct http *, const char *const *names, size_t n);

/* Forget every cookie (before a fresh login). */
void http_cookies_clear(struct http *);

/* Transfers started (every attempt counts) and bytes received. */
unsigned http_requests(const struct http *);
uint64_t http_bytes_received(const struct http *);

/* The class name of a failure ("network", "timeout", ...). */
const char *http_fail_class(enum http_fail);

#endif
