/*
 * The supervisor's one door to libcurl (STYLE §1): outgoing HTTP requests
 * made asynchronously on the event loop, a curl multi handle driven by
 * libevent (CURLMOPT_SOCKETFUNCTION and CURLMOPT_TIMERFUNCTION on the
 * base given to outbound_init()).  QStash and VAPI (discharge.c) use it;
 * alerts and events may too.  No libcurl type crosses this header.
 *
 * A request is a method, a URL (http or https only; redirects are not
 * followed), headers, a body, a timeout and a cap on the response body.
 * Its callback runs exactly once, from the event loop, never from inside
 * outbound_send(): with error 0 and the HTTP status when an answer came
 * (any status, 4xx and 5xx included), or with a negative errno and a
 * message when none did (-ETIMEDOUT, -ECONNREFUSED, -EPROTO, -EMSGSIZE: the
 * body passed response_max, -ECANCELED: outbound_free() ran first).
 * Messages name the URL's host, never a header (headers carry tokens).
 */
#ifndef VS_SUPERVISOR_OUTBOUND_H
#define VS_SUPERVISOR_OUTBOUND_H

#include <stddef.h>
#include <stdint.h>

struct event_base;

#define OUTBOUND_HEADERS_MAX	32		/* request headers */
#define OUTBOUND_RESPONSE_MAX	(1024 * 1024)	/* default body cap */
#define OUTBOUND_RHEADERS_MAX	(16 * 1024)	/* response header bytes */
#define OUTBOUND_ERR_MAX	256

struct outbound_request {
	const char *method;		/* "GET", "POST", "DELETE", ... */
	const char *url;
	const char *headers[OUTBOUND_HEADERS_MAX + 1];	/* "Name: value", NULL */
	const void *body;		/* copied; NULL: none */
	size_t len;
	uint64_t timeout_ms;		/* whole request; 0: 30 s */
	size_t response_max;		/* 0: OUTBOUND_RESPONSE_MAX */
};

struct outbound_response {
	int error;			/* 0, or -errno: no answer */
	const char *error_text;		/* "" when error is 0 */
	long status;			/* HTTP status; 0 when error < 0 */
	const char *body;		/* NUL-terminated after len */
	size_t len;
	const struct outbound_headers *headers;	/* outbound_header() */
};

struct outbound_headers;

/* Valid only during the callback. */
typedef void outbound_cb(const struct outbound_response *, void *arg);

/* Start (once; again is a no-op).  Returns 0 or -ENOMEM. */
int outbound_init(struct event_base *);

/*
 * Stop: every request still in flight has its callback run with
 * -ECANCELED.  Safe to call twice, or without outbound_init().
 */
void outbound_free(void);

/*
 * Send r; cb(response, arg) runs later, once.  Returns 0, or -EINVAL (bad
 * method, URL or header: nothing is sent and cb never runs), -ENOMEM, or
 * -ESHUTDOWN (outbound_init() has not run).
 */
int outbound_send(const struct outbound_request *r, outbound_cb *cb,
    void *arg);

/*
 * The value of response header name (case-insensitive; the last one when
 * repeated), or NULL.  Valid during the callback.
 */
const char *outbound_header(const struct outbound_headers *, const char *name);

/* Requests in flight. */
size_t outbound_pending(void);

#endif
