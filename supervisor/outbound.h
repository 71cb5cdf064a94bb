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
 *
 * Mail (outbound_mail()) goes through the same loop: one message to an
 * SMTP server, smtp:// or smtps://[user@]host[:port].  smtps:// is TLS
 * from the first byte; smtp:// must upgrade with STARTTLS (libcurl's
 * CURLUSESSL_ALL: a server without it fails the send) unless the host is
 * a loopback address (127.0.0.0/8, [::1], localhost), where plain text
 * is allowed, for a local relay and for tests.  Peers are verified
 * against the system's CAs.  Its callback gets error 0 and, in status,
 * the server's last reply code when one came: 250 when the message was
 * accepted, 4xx (try later) or 5xx (refused for good) when a command was
 * refused; a negative errno when no answer came (-ECONNREFUSED,
 * -ETIMEDOUT, -EPROTO: the connection dropped, TLS failed).  The password
 * is wiped from our copy when the transfer ends; no message names it.
 */
#ifndef VS_SUPERVISOR_OUTBOUND_H
#define VS_SUPERVISOR_OUTBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

#define OUTBOUND_HEADERS_MAX	32		/* request headers */
#define OUTBOUND_RESPONSE_MAX	(1024 * 1024)	/* default body cap */
#define OUTBOUND_RHEADERS_MAX	(16 * 1024)	/* response header bytes */
#define OUTBOUND_ERR_MAX	256
#define OUTBOUND_RCPT_MAX	32		/* recipients of one mail */
#define OUTBOUND_MAIL_MAX	(256 * 1024)	/* bytes of one message */

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

struct outbound_mail {
	const char *url;		/* smtp:// or smtps:// */
	const char *password;		/* NULL: no AUTH; copied */
	const char *from;		/* envelope sender, "a@b" */
	const char *rcpt[OUTBOUND_RCPT_MAX + 1];	/* "a@b", NULL */
	const char *message;		/* RFC 5322, CRLF lines; copied */
	size_t len;
	uint64_t timeout_ms;		/* whole session; 0: 30 s */
};

/*
 * Send m; cb(response, arg) runs later, once, as for outbound_send().
 * Returns 0, or -EINVAL (not an smtp(s) URL, no recipient, an address
 * with a space, '<', '>' or a control character, a message with a NUL or
 * over OUTBOUND_MAIL_MAX: nothing is sent and cb never runs), -ENOMEM or
 * -ESHUTDOWN.
 */
int outbound_mail(const struct outbound_mail *m, outbound_cb *cb, void *arg);

/* True when the URL's host is a loopback address or "localhost". */
bool outbound_url_loopback(const char *url);

/*
 * The value of response header name (case-insensitive; the last one when
 * repeated), or NULL.  Valid during the callback.
 */
const char *outbound_header(const struct outbound_headers *, const char *name);

/* Requests in flight. */
size_t outbound_pending(void);

#endif
