/*
 * Outgoing HTTP on the event loop (see outbound.h): libcurl's multi
 * interface with libevent doing the waiting, as in curl's hiperfifo
 * example.  libcurl says which sockets to watch (socket_cb) and when to
 * wake it (timer_cb); each event hands the socket back to
 * curl_multi_socket_action(), and finished transfers are collected after
 * every call.  Callbacks run from those events, never from inside
 * libcurl, so a callback may send new requests; outbound_send() only adds
 * the transfer (libcurl asks for a timer to start it), so it never calls
 * back before it returns.
 *
 * A mail is a transfer too: libcurl's SMTP reads the message through
 * read_cb from our copy, and a refused command ends the transfer with a
 * curl error while the reply code it got is the answer the caller wants,
 * so check_done() hands a 4xx/5xx code over as a status, not an error.
 */
#include <arpa/inet.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/outbound.h"

#define DEFAULT_TIMEOUT_MS	30000

struct outbound_headers {
	struct buf raw;		/* "Name: value\r\n" lines of the last answer */
};

struct transfer {
	CURL *easy;
	struct curl_slist *headers;
	struct curl_slist *rcpt;	/* a mail's recipients */
	char *body;			/* the request's, owned */
	size_t body_len, body_off;	/* a mail's message, read_cb */
	char *password;			/* a mail's, wiped */
	bool mail;
	struct buf response;
	struct outbound_headers rheaders;
	bool too_big;
	char errbuf[CURL_ERROR_SIZE];
	char host[128];
	outbound_cb *cb;
	void *arg;
	struct transfer *next, *prev;
};

static struct {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct transfer *head;
	size_t pending;
	bool curl_global;
} ob;

static void check_done(void);

static void
list_remove(struct transfer *t)
{
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		ob.head = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
	ob.pending--;
}

static void
transfer_free(struct transfer *t)
{
	if (t == NULL)
		return;
	if (t->easy != NULL)
		curl_easy_cleanup(t->easy);
	curl_slist_free_all(t->headers);
	curl_slist_free_all(t->rcpt);
	free(t->body);
	if (t->password != NULL) {
		explicit_bzero(t->password, strlen(t->password));
		free(t->password);
	}
	buf_release(&t->response);
	buf_release(&t->rheaders.raw);
	free(t);
}

/* Run t's callback and free it. */
static void
finish(struct transfer *t, int error, const char *text, long status)
{
	struct outbound_response resp;

	memset(&resp, 0, sizeof(resp));
	resp.error = error;
	resp.error_text = text != NULL ? text : "";
	resp.status = error < 0 ? 0 : status;
	resp.body = t->response.data != NULL ? t->response.data : "";
	resp.len = t->response.len;
	resp.headers = &t->rheaders;
	if (t->cb != NULL)
		t->cb(&resp, t->arg);
	transfer_free(t);
}

static int
errno_of(CURLcode c)
{
	switch (c) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		return -ECONNREFUSED;
	case CURLE_WRITE_ERROR:
		return -EMSGSIZE;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EPROTO;
	}
}

static void
check_done(void)
{
	struct transfer *t;
	CURLMsg *m;
	char text[OUTBOUND_ERR_MAX + CURL_ERROR_SIZE + 128];
	long status;
	int left, e;

	while ((m = curl_multi_info_read(ob.multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		t = NULL;
		(void)curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
		    (char **)&t);
		if (t == NULL)
			continue;
		curl_multi_remove_handle(ob.multi, t->easy);
		list_remove(t);
		if (m->data.result == CURLE_OK) {
			status = 0;
			(void)curl_easy_getinfo(t->easy,
			    CURLINFO_RESPONSE_CODE, &status);
			finish(t, 0, NULL, status);
			continue;
		}
		e = t->too_big ? -EMSGSIZE : errno_of(m->data.result);
		status = 0;
		if (t->mail)
			(void)curl_easy_getinfo(t->easy,
			    CURLINFO_RESPONSE_CODE, &status);
		if (t->too_big)
			snprintf(text, sizeof(text), "%s: response body over "
			    "its limit", t->host);
		else
			snprintf(text, sizeof(text), "%s: %s", t->host,
			    t->errbuf[0] != '\0' ? t->errbuf :
			    curl_easy_strerror(m->data.result));
		/* A mail's refused command: the reply code is the answer. */
		if (t->mail && status >= 400 && status < 600)
			finish(t, 0, text, status);
		else
			finish(t, e, text, 0);
	}
}

static void
event_cb(evutil_socket_t fd, short what, void *arg)
{
	int flags = 0, running;

	(void)arg;
	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(ob.multi, fd, flags, &running);
	check_done();
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	int running;

	(void)fd;
	(void)what;
	(void)arg;
	curl_multi_socket_action(ob.multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done();
}

static int
socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct event *ev = socketp;
	short kind = EV_PERSIST;

	(void)easy;
	(void)userp;
	if (what == CURL_POLL_REMOVE) {
		if (ev != NULL)
			event_free(ev);
		curl_multi_assign(ob.multi, s, NULL);
		return 0;
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (ev != NULL)
		event_free(ev);
	if ((ev = event_new(ob.base, s, kind, event_cb, NULL)) == NULL)
		fatalx("out of memory");
	event_add(ev, NULL);
	curl_multi_assign(ob.multi, s, ev);
	return 0;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct timeval tv;

	(void)multi;
	(void)userp;
	if (timeout_ms < 0) {
		evtimer_del(ob.timer);
		return 0;
	}
	/* Zero: act from the loop, never from inside libcurl. */
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	evtimer_add(ob.timer, &tv);
	return 0;
}

static size_t
write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct transfer *t = arg;

	if (buf_append(&t->response, p, size * n) < 0) {
		t->too_big = true;
		return 0;
	}
	return size * n;
}

/* A mail's message, as libcurl's SMTP upload asks for it. */
static size_t
read_cb(char *p, size_t size, size_t n, void *arg)
{
	struct transfer *t = arg;
	size_t left = t->body_len - t->body_off, len = size * n;

	if (len > left)
		len = left;
	memcpy(p, t->body + t->body_off, len);
	t->body_off += len;
	return len;
}

/* Each header line is kept as "Name: value" and its NUL, trimmed. */
static size_t
header_cb(char *p, size_t size, size_t n, void *arg)
{
	struct transfer *t = arg;
	size_t len = size * n, keep = len;

	/* A new status line (after a 100 Continue): only the last counts. */
	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
		buf_reset(&t->rheaders.raw);
		return len;
	}
	while (keep > 0 && (p[keep - 1] == '\r' || p[keep - 1] == '\n' ||
	    p[keep - 1] == ' ' || p[keep - 1] == '\t'))
		keep--;
	if (keep == 0 || memchr(p, '\0', keep) != NULL)
		return len;
	if (buf_append(&t->rheaders.raw, p, keep) < 0 ||
	    buf_append(&t->rheaders.raw, "", 1) < 0)
		return 0;
	return len;
}

int
outbound_init(struct event_base *base)
{
	if (ob.multi != NULL)
		return 0;
	if (!ob.curl_global) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return -ENOMEM;
		ob.curl_global = true;
	}
	ob.base = base;
	if ((ob.multi = curl_multi_init()) == NULL)
		return -ENOMEM;
	if ((ob.timer = evtimer_new(base, timeout_cb, NULL)) == NULL) {
		curl_multi_cleanup(ob.multi);
		ob.multi = NULL;
		return -ENOMEM;
	}
	curl_multi_setopt(ob.multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(ob.multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	return 0;
}

void
outbound_free(void)
{
	struct transfer *t;

	if (ob.multi == NULL)
		return;
	while ((t = ob.head) != NULL) {
		curl_multi_remove_handle(ob.multi, t->easy);
		list_remove(t);
		finish(t, -ECANCELED, "cancelled: vetsyncd is stopping", 0);
	}
	curl_multi_cleanup(ob.multi);
	ob.multi = NULL;
	event_free(ob.timer);
	ob.timer = NULL;
	if (ob.curl_global) {
		curl_global_cleanup();
		ob.curl_global = false;
	}
}

size_t
outbound_pending(void)
{
	return ob.pending;
}

/* Header text: printable, no CR or LF, a name before ':'. */
static bool
header_valid(const char *h)
{
	const char *colon = strchr(h, ':');

	if (colon == NULL || colon == h)
		return false;
	for (; *h != '\0'; h++)
		if ((unsigned char)*h < 0x20 && *h != '\t')
			return false;
	return true;
}

static void
url_host(const char *url, char *out, size_t outsz)
{
	const char *p = strstr(url, "://"), *e;
	size_t n;

	p = p != NULL ? p + 3 : url;
	e = p + strcspn(p, "/?#");
	n = (size_t)(e - p) < outsz - 1 ? (size_t)(e - p) : outsz - 1;
	memcpy(out, p, n);
	out[n] = '\0';
	/* Userinfo would be a secret: keep what follows it. */
	if ((e = strrchr(out, '@')) != NULL)
		memmove(out, e + 1, strlen(e + 1) + 1);
}

/* t's easy handle for url, limited to HTTP(S) or to SMTP(S). */
static int
easy_new(struct transfer *t, const char *url, bool mail, uint64_t timeout_ms)
{
	if ((t->easy = curl_easy_init()) == NULL)
		return -ENOMEM;
	curl_easy_setopt(t->easy, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, mail ? "smtp,smtps" :
	    "http,https");
#else
	curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS, mail ?
	    CURLPROTO_SMTP | CURLPROTO_SMTPS : CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
	curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ?
	    timeout_ms : DEFAULT_TIMEOUT_MS));
	curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
	return 0;
}

/* Hand t to libcurl and keep it in the list of transfers in flight. */
static int
transfer_start(struct transfer *t)
{
	if (curl_multi_add_handle(ob.multi, t->easy) != CURLM_OK)
		return -ENOMEM;
	t->next = ob.head;
	if (ob.head != NULL)
		ob.head->prev = t;
	ob.head = t;
	ob.pending++;
	return 0;
}

int
outbound_send(const struct outbound_request *r, outbound_cb *cb, void *arg)
{
	struct transfer *t = NULL;
	const char *m = r->method;
	int e = -ENOMEM;

	if (ob.multi == NULL)
		return -ESHUTDOWN;
	if (m == NULL || r->url == NULL ||
	    (strncasecmp(r->url, "http://", 7) != 0 &&
	    strncasecmp(r->url, "https://", 8) != 0) ||
	    strpbrk(r->url, " \r\n") != NULL)
		return -EINVAL;
	if (strcmp(m, "GET") != 0 && strcmp(m, "POST") != 0 &&
	    strcmp(m, "PUT") != 0 && strcmp(m, "DELETE") != 0 &&
	    strcmp(m, "PATCH") != 0)
		return -EINVAL;
	t = xcalloc(1, sizeof(*t));
	buf_init(&t->response, r->response_max > 0 ? r->response_max :
	    OUTBOUND_RESPONSE_MAX);
	buf_init(&t->rheaders.raw, OUTBOUND_RHEADERS_MAX);
	url_host(r->url, t->host, sizeof(t->host));
	t->cb = cb;
	t->arg = arg;
	for (size_t i = 0; i < OUTBOUND_HEADERS_MAX && r->headers[i] != NULL;
	    i++) {
		struct curl_slist *l;

		if (!header_valid(r->headers[i])) {
			e = -EINVAL;
			goto bad;
		}
		if ((l = curl_slist_append(t->headers, r->headers[i])) == NULL)
			goto bad;
		t->headers = l;
	}
	if (easy_new(t, r->url, false, r->timeout_ms) < 0)
		goto bad;
	curl_easy_setopt(t->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(t->easy, CURLOPT_CUSTOMREQUEST, m);
	if (r->body != NULL || strcmp(m, "POST") == 0 ||
	    strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0) {
		t->body = xmalloc(r->len + 1);
		if (r->len > 0)
			memcpy(t->body, r->body, r->len);
		t->body[r->len] = '\0';
		curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->body);
		curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)r->len);
	} else if (strcmp(m, "GET") == 0)
		curl_easy_setopt(t->easy, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(t->easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(t->easy, CURLOPT_HEADERDATA, t);
	if (transfer_start(t) < 0)
		goto bad;
	return 0;
bad:
	transfer_free(t);
	return e;
}

bool
outbound_url_loopback(const char *url)
{
	char host[128], *colon;
	struct in_addr a4;
	struct in6_addr a6;

	url_host(url, host, sizeof(host));
	if (host[0] == '[') {
		char *close = strchr(host, ']');

		if (close == NULL)
			return false;
		*close = '\0';
		return inet_pton(AF_INET6, host + 1, &a6) == 1 &&
		    IN6_IS_ADDR_LOOPBACK(&a6);
	}
	if ((colon = strchr(host, ':')) != NULL)
		*colon = '\0';
	if (strcasecmp(host, "localhost") == 0)
		return true;
	return inet_pton(AF_INET, host, &a4) == 1 &&
	    (ntohl(a4.s_addr) >> 24) == 127;
}

/* An envelope address: printable, no space, no '<' or '>', one '@'. */
static bool
mail_address_valid(const char *a)
{
	const char *at = strchr(a, '@');

	if (at == NULL || at == a || at[1] == '\0' || strchr(at + 1, '@'))
		return false;
	for (; *a != '\0'; a++)
		if ((unsigned char)*a <= 0x20 || *a == 0x7f || *a == '<' ||
		    *a == '>')
			return false;
	return true;
}

int
outbound_mail(const struct outbound_mail *m, outbound_cb *cb, void *arg)
{
	struct transfer *t = NULL;
	char addr[264];
	size_t i;
	bool smtps;
	int e = -ENOMEM;

	if (ob.multi == NULL)
		return -ESHUTDOWN;
	if (m->url == NULL || ((smtps = strncasecmp(m->url, "smtps://",
	    8) == 0) == false && strncasecmp(m->url, "smtp://", 7) != 0) ||
	    strpbrk(m->url, " \r\n") != NULL)
		return -EINVAL;
	if (m->from == NULL || !mail_address_valid(m->from) ||
	    strlen(m->from) > 254 || m->rcpt[0] == NULL)
		return -EINVAL;
	for (i = 0; i < OUTBOUND_RCPT_MAX && m->rcpt[i] != NULL; i++)
		if (!mail_address_valid(m->rcpt[i]) ||
		    strlen(m->rcpt[i]) > 254)
			return -EINVAL;
	if (m->message == NULL || m->len == 0 || m->len > OUTBOUND_MAIL_MAX ||
	    memchr(m->message, '\0', m->len) != NULL)
		return -EINVAL;
	t = xcalloc(1, sizeof(*t));
	t->mail = true;
	buf_init(&t->response, OUTBOUND_RHEADERS_MAX);
	buf_init(&t->rheaders.raw, OUTBOUND_RHEADERS_MAX);
	url_host(m->url, t->host, sizeof(t->host));
	t->cb = cb;
	t->arg = arg;
	for (i = 0; i < OUTBOUND_RCPT_MAX && m->rcpt[i] != NULL; i++) {
		struct curl_slist *l;

		snprintf(addr, sizeof(addr), "<%s>", m->rcpt[i]);
		if ((l = curl_slist_append(t->rcpt, addr)) == NULL)
			goto bad;
		t->rcpt = l;
	}
	t->body = xmalloc(m->len);
	memcpy(t->body, m->message, m->len);
	t->body_len = m->len;
	if (m->password != NULL)
		t->password = xstrdup(m->password);
	if (easy_new(t, m->url, true, m->timeout_ms) < 0)
		goto bad;
	/* STARTTLS or nothing, except on this machine (see outbound.h). */
	if (!smtps && !outbound_url_loopback(m->url))
		curl_easy_setopt(t->easy, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	if (t->password != NULL)
		curl_easy_setopt(t->easy, CURLOPT_PASSWORD, t->password);
	snprintf(addr, sizeof(addr), "<%s>", m->from);
	curl_easy_setopt(t->easy, CURLOPT_MAIL_FROM, addr);
	curl_easy_setopt(t->easy, CURLOPT_MAIL_RCPT, t->rcpt);
	curl_easy_setopt(t->easy, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(t->easy, CURLOPT_INFILESIZE_LARGE,
	    (curl_off_t)t->body_len);
	curl_easy_setopt(t->easy, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(t->easy, CURLOPT_READDATA, t);
	if (transfer_start(t) < 0)
		goto bad;
	return 0;
bad:
	transfer_free(t);
	return e;
}

const char *
outbound_header(const struct outbound_headers *h, const char *name)
{
	const char *p, *end, *found = NULL;
	size_t nlen = strlen(name);

	if (h == NULL || h->raw.data == NULL)
		return NULL;
	for (p = h->raw.data, end = p + h->raw.len; p < end;
	    p += strlen(p) + 1) {
		if (strncasecmp(p, name, nlen) != 0 || p[nlen] != ':')
			continue;
		found = p + nlen + 1;
		while (*found == ' ' || *found == '\t')
			found++;
	}
	return found;
}
