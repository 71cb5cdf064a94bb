/*
 * The worker's HTTP client over libcurl multi (see http.h).
 *
 * One easy handle per attempt, created when the attempt starts and
 * cleaned up when it ends: the multi handle keeps the connections alive
 * between them, the share handle the cookies and TLS sessions, so a fresh
 * handle costs little and no state leaks from one attempt into the next.
 * The worker is single-threaded, so the share handle needs no locks.
 *
 * Deliberate quirks:
 * - The body limit is enforced twice: CURLOPT_MAXFILESIZE refuses an
 *   announced Content-Length over it before a byte arrives, and the write
 *   callback aborts a body that grows past it (chunked, or lying).
 * - Request bodies are passed with CURLOPT_POSTFIELDS, not COPYPOSTFIELDS,
 *   so the login form (with the password) lives only in the caller's
 *   buffer, which the caller wipes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "worker/http.h"

#define HTTP_CONNECT_TIMEOUT_MS	10000
#define HTTP_LOW_SPEED_BYTES	64	/* per second, below which ... */
#define HTTP_LOW_SPEED_S	15	/* ... for this long, we give up */
#define HTTP_POLL_MAX_MS	1000

struct http {
	const struct http_config *cf;
	CURLM *multi;
	CURLSH *share;
	struct curl_slist *resolve;
	struct curl_slist *hdr_json;
	struct curl_slist *hdr_html;
	double tokens;			/* rate limit bucket */
	uint64_t tokens_at;
	uint64_t rng;
	unsigned requests;
	uint64_t bytes;
};

const char *
http_fail_class(enum http_fail f)
{
	switch (f) {
	case HTTP_FAIL_NONE:
		return "none";
	case HTTP_FAIL_NETWORK:
		return "network";
	case HTTP_FAIL_TIMEOUT:
		return "timeout";
	case HTTP_FAIL_TLS:
		return "tls";
	case HTTP_FAIL_TOO_LARGE:
		return "too_large";
	case HTTP_FAIL_HTTP:
		return "http";
	case HTTP_FAIL_RATE_LIMITED:
		return "rate_limited";
	}
	return "unknown";
}

int
http_new(const struct http_config *cf, struct http **ret)
{
	struct http *h = NULL;
	char *entry = NULL;
	bool v6;
	int r = -ENOMEM;

	if (cf->base_url == NULL || cf->pin_host == NULL ||
	    cf->pin_ip == NULL || cf->pin_port == 0 || cf->pin_port > 65535 ||
	    cf->max_parallel == 0 || cf->request_rate == 0 ||
	    cf->response_max == 0 || cf->request_timeout_ms == 0)
		return -EINVAL;
	if (strncmp(cf->base_url, "https://", 8) != 0 &&
	    strncmp(cf->base_url, "http://", 7) != 0)
		return -EINVAL;
	h = xcalloc(1, sizeof(*h));
	h->cf = cf;
	h->rng = clock_mono_ns() ^ ((uint64_t)getpid() << 32) ^
	    0x9e3779b97f4a7c15ULL;
	h->tokens = cf->max_parallel;
	h->tokens_at = clock_mono_ms();
	if ((h->multi = curl_multi_init()) == NULL ||
	    (h->share = curl_share_init()) == NULL)
		goto out;
	if (curl_share_setopt(h->share, CURLSHOPT_SHARE,
	    CURL_LOCK_DATA_COOKIE) != CURLSHE_OK ||
	    curl_share_setopt(h->share, CURLSHOPT_SHARE,
	    CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK)
		goto out;
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    (long)cf->max_parallel);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
	    (long)cf->max_parallel);
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS,
	    (long)cf->max_parallel);

	v6 = strchr(cf->pin_ip, ':') != NULL;
	entry = xasprintf("%s:%u:%s%s%s", cf->pin_host, cf->pin_port,
	    v6 ? "[" : "", cf->pin_ip, v6 ? "]" : "");
	if ((h->resolve = curl_slist_append(NULL, entry)) == NULL)
		goto out;
	if ((h->hdr_json = curl_slist_append(NULL,
	    "Accept: application/json")) == NULL ||
	    curl_slist_append(h->hdr_json,
	    "X-Requested-With: XMLHttpRequest") == NULL ||
	    (h->hdr_html = curl_slist_append(NULL,
	    "Accept: text/html,application/xhtml+xml")) == NULL)
		goto out;
	*ret = h;
	h = NULL;
	r = 0;
out:
	free(entry);
	http_free(h);
	return r;
}

void
http_free(struct http *h)
{
	if (h == NULL)
		return;
	if (h->multi != NULL)
		curl_multi_cleanup(h->multi);
	if (h->share != NULL)
		curl_share_cleanup(h->share);
	curl_slist_free_all(h->resolve);
	curl_slist_free_all(h->hdr_json);
	curl_slist_free_all(h->hdr_html);
	free(h);
}

unsigned
http_requests(const struct http *h)
{
	return h->requests;
}

uint64_t
http_bytes_received(const struct http *h)
{
	return h->bytes;
}

void
http_req_init(struct http_req *req, const char *path)
{
	memset(req, 0, sizeof(*req));
	req->path = path;
	buf_init(&req->body, 0);
}

static void
http_req_clear_answer(struct http_req *req)
{
	buf_reset(&req->body);
	free(req->location);
	free(req->content_type);
	req->location = req->content_type = NULL;
	req->status = 0;
	req->retry_after_set = false;
	req->retry_after_ms = 0;
	req->too_large = false;
}

void
http_req_reset(struct http_req *req)
{
	http_req_clear_answer(req);
	req->done = false;
	req->fail = HTTP_FAIL_NONE;
	req->attempts = req->attempts_429 = 0;
	req->not_before = 0;
}

void
http_req_release(struct http_req *req)
{
	if (req == NULL)
		return;
	buf_release(&req->body);
	free(req->location);
	free(req->content_type);
	req->location = req->content_type = NULL;
}

/* ---- one attempt ----------------------------------------------------- */

static size_t
http_write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct http_req *req = arg;
	size_t n = size * nmemb;

	if (req->body.limit != 0 && req->body.len + n > req->body.limit) {
		req->too_large = true;
		return 0;	/* abort: CURLE_WRITE_ERROR */
	}
	if (buf_append(&req->body, ptr, n) != 0) {
		req->too_large = true;
		return 0;
	}
	return n;
}

/* Keep a copy of a header value, trimmed, bounded. */
static char *
http_header_value(const char *p, size_t n)
{
	while (n > 0 && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n > 0 && (p[n - 1] == '\r' || p[n - 1] == '\n' ||
	    p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n > HTTP_HEADER_MAX)
		n = HTTP_HEADER_MAX;
	return xstrndup(p, n);
}

static bool
http_header_is(const char *line, size_t n, const char *name, size_t *ret_off)
{
	size_t len = strlen(name);

	if (n <= len || line[len] != ':' || strncasecmp(line, name, len) != 0)
		return false;
	*ret_off = len + 1;
	return true;
}

/* Retry-After: delay-seconds or an HTTP date (RFC 9110 10.2.3). */
static bool
http_parse_retry_after(const char *v, unsigned *ret_ms)
{
	char *end;
	unsigned long s;
	time_t t, now;

	if (*v >= '0' && *v <= '9') {
		errno = 0;
		s = strtoul(v, &end, 10);
		if (errno != 0 || *end != '\0')
			return false;
		*ret_ms = s >= HTTP_RETRY_AFTER_MAX_MS / 1000 ?
		    HTTP_RETRY_AFTER_MAX_MS : (unsigned)s * 1000;
		return true;
	}
	if ((t = curl_getdate(v, NULL)) == -1)
		return false;
	now = time(NULL);
	if (t <= now)
		*ret_ms = 0;
	else if (t - now >= HTTP_RETRY_AFTER_MAX_MS / 1000)
		*ret_ms = HTTP_RETRY_AFTER_MAX_MS;
	else
		*ret_ms = (unsigned)(t - now) * 1000;
	return true;
}

static size_t
http_header_cb(char *line, size_t size, size_t nmemb, void *arg)
{
	struct http_req *req = arg;
	size_t n = size * nmemb, off;
	char *v;

	/* A new response (1xx, or a proxy's) starts over. */
	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		free(req->location);
		free(req->content_type);
		req->location = req->content_type = NULL;
		req->retry_after_set = false;
		return n;
	}
	if (http_header_is(line, n, "Location", &off)) {
		free(req->location);
		req->location = http_header_value(line + off, n - off);
	} else if (http_header_is(line, n, "Content-Type", &off)) {
		free(req->content_type);
		req->content_type = http_header_value(line + off, n - off);
	} else if (http_header_is(line, n, "Retry-After", &off)) {
		v = http_header_value(line + off, n - off);
		req->retry_after_set = http_parse_retry_after(v,
		    &req->retry_after_ms);
		free(v);
	}
	return n;
}

static int
http_start(struct http *h, struct http_req *req)
{
	const struct http_config *cf = h->cf;
	CURL *e = NULL;
	char *url = NULL;
	long t = (long)cf->request_timeout_ms;
	long low = HTTP_LOW_SPEED_S;
	int r = -ENOMEM;

	http_req_clear_answer(req);
	req->body.limit = cf->response_max > SIZE_MAX / 2 ? SIZE_MAX / 2 :
	    (size_t)cf->response_max;
	if ((e = curl_easy_init()) == NULL)
		goto out;
	url = xasprintf("%s%s", cf->base_url, req->path);
	if ((long)cf->request_timeout_ms / 1000 < low)
		low = (long)cf->request_timeout_ms / 1000 + 1;
	if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_RESOLVE, h->resolve) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SHARE, h->share) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_COOKIEFILE, "") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CAPATH, NULL) != CURLE_OK ||
	    (cf->ca_bundle != NULL &&
	    curl_easy_setopt(e, CURLOPT_CAINFO, cf->ca_bundle) != CURLE_OK) ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	    t < HTTP_CONNECT_TIMEOUT_MS ? t : HTTP_CONNECT_TIMEOUT_MS) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT,
	    (long)HTTP_LOW_SPEED_BYTES) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, low) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)req->body.limit) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_USERAGENT, "vetsync-worker") !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER,
	    req->json ? h->hdr_json : h->hdr_html) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_write_cb) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, req) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, http_header_cb) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, req) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, req) != CURLE_OK) {
		r = -EINVAL;
		goto out;
	}
	if (req->post != NULL &&
	    (curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)req->post_len) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->post) != CURLE_OK)) {
		r = -EINVAL;
		goto out;
	}
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
		goto out;
	req->easy = e;
	e = NULL;
	req->running = true;
	req->attempts++;
	h->requests++;
	r = 0;
out:
	free(url);
	if (e != NULL)
		curl_easy_cleanup(e);
	return r;
}

static void
http_stop(struct http *h, struct http_req *req)
{
	if (req->easy == NULL)
		return;
	curl_multi_remove_handle(h->multi, req->easy);
	curl_easy_cleanup(req->easy);
	req->easy = NULL;
	req->running = false;
}

/* ---- pacing ---------------------------------------------------------- */

static uint64_t
http_random(struct http *h)
{
	/* xorshift64*: jitter only, no secret depends on it. */
	h->rng ^= h->rng >> 12;
	h->rng ^= h->rng << 25;
	h->rng ^= h->rng >> 27;
	return h->rng * 2685821657736338717ULL;
}

/* Exponential backoff with jitter: half fixed, half random. */
static uint64_t
http_backoff_ms(struct http *h, unsigned attempt)
{
	uint64_t d = HTTP_BACKOFF_MIN_MS;

	while (attempt-- > 1 && d < HTTP_BACKOFF_MAX_MS)
		d *= 2;
	if (d > HTTP_BACKOFF_MAX_MS)
		d = HTTP_BACKOFF_MAX_MS;
	return d / 2 + http_random(h) % (d / 2 + 1);
}

static void
http_bucket_fill(struct http *h, uint64_t now)
{
	double cap = h->cf->max_parallel < h->cf->request_rate ?
	    h->cf->max_parallel : h->cf->request_rate;

	if (cap < 1)
		cap = 1;
	h->tokens += (double)(now - h->tokens_at) * h->cf->request_rate /
	    1000.0;
	if (h->tokens > cap)
		h->tokens = cap;
	h->tokens_at = now;
}

/* Milliseconds until a token is there; 0 when one was taken. */
static uint64_t
http_bucket_take(struct http *h, uint64_t now)
{
	http_bucket_fill(h, now);
	if (h->tokens >= 1) {
		h->tokens -= 1;
		return 0;
	}
	return (uint64_t)((1 - h->tokens) * 1000.0 / h->cf->request_rate) + 1;
}

/* ---- the end of an attempt ------------------------------------------- */

static enum http_fail
http_classify(CURLcode rc, const struct http_req *req)
{
	switch (rc) {
	case CURLE_OK:
		return HTTP_FAIL_NONE;
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		if (req->too_large || rc == CURLE_FILESIZE_EXCEEDED)
			return HTTP_FAIL_TOO_LARGE;
		return HTTP_FAIL_NETWORK;
	case CURLE_OPERATION_TIMEDOUT:
		return HTTP_FAIL_TIMEOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_USE_SSL_FAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
		return HTTP_FAIL_TLS;
	default:
		return HTTP_FAIL_NETWORK;
	}
}

static void
http_notef(struct http *h, enum http_note note, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
http_notef(struct http *h, enum http_note note, const char *fmt, ...)
{
	char detail[256];
	va_list ap;

	if (h->cf->note == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	h->cf->note(h->cf->arg, note, detail);
}

/*
 * An attempt ended.  Returns true when the request is done, false when it
 * goes back to the queue for another attempt.
 */
static bool
http_finish(struct http *h, struct http_req *req, CURLcode rc, uint64_t now)
{
	curl_off_t dl = 0, hdr = 0;
	long status = 0;
	enum http_fail f;
	uint64_t wait;

	curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
	if (curl_easy_getinfo(req->easy, CURLINFO_SIZE_DOWNLOAD_T, &dl) ==
	    CURLE_OK && dl > 0)
		h->bytes += (uint64_t)dl;
	if (curl_easy_getinfo(req->easy, CURLINFO_HEADER_SIZE, &hdr) ==
	    CURLE_OK && hdr > 0)
		h->bytes += (uint64_t)hdr;
	http_stop(h, req);
	f = http_classify(rc, req);
	req->status = f == HTTP_FAIL_NONE ? status : 0;
	if (f == HTTP_FAIL_NONE && status == 429) {
		if (++req->attempts_429 >= HTTP_429_ATTEMPTS_MAX) {
			req->fail = HTTP_FAIL_RATE_LIMITED;
			return true;
		}
		wait = req->retry_after_set ? req->retry_after_ms :
		    http_backoff_ms(h, req->attempts_429);
		http_notef(h, HTTP_NOTE_RATE_LIMITED,
		    "429 on %.128s: waiting %llu ms", req->path,
		    (unsigned long long)wait);
		req->not_before = now + wait;
		req->attempts--;	/* 429s have their own budget */
		return false;
	}
	if (f == HTTP_FAIL_NONE && status >= 500 && status <= 599)
		f = HTTP_FAIL_HTTP;
	req->fail = f;
	if (f == HTTP_FAIL_NETWORK || f == HTTP_FAIL_TIMEOUT ||
	    f == HTTP_FAIL_HTTP) {
		if (req->attempts >= HTTP_ATTEMPTS_MAX)
			return true;
		wait = http_backoff_ms(h, req->attempts);
		http_notef(h, HTTP_NOTE_RETRY,
		    "%s on %.128s (status %ld): attempt %u in %llu ms",
		    http_fail_class(f), req->path, status, req->attempts + 1,
		    (unsigned long long)wait);
		req->not_before = now + wait;
		return false;
	}
	return true;
}

/* ---- the batch ------------------------------------------------------- */

static void
http_abandon(struct http *h, struct http_req **reqs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (reqs[i]->running)
			http_stop(h, reqs[i]);
}

int
http_run(struct http *h, struct http_req **reqs, size_t n,
    int (*finished)(void *, struct http_req *), void *arg)
{
	const struct http_config *cf = h->cf;
	struct curl_waitfd wfd;
	CURLMsg *m;
	uint64_t now, wake, w;
	size_t i, left = 0, running = 0;
	int still, msgs, r = 0;
	bool ended;

	for (i = 0; i < n; i++) {
		if (reqs[i]->done)
			continue;
		reqs[i]->fail = HTTP_FAIL_NONE;
		left++;
	}
	while (left > 0) {
		now = clock_mono_ms();
		if (cf->deadline_ms != 0 && now >= cf->deadline_ms) {
			r = -ETIMEDOUT;
			goto out;
		}
		wake = now + HTTP_POLL_MAX_MS;
		if (cf->deadline_ms != 0 && cf->deadline_ms < wake)
			wake = cf->deadline_ms;
		/* Start what the parallelism, the clock and the rate allow. */
		for (i = 0; i < n && running < cf->max_parallel; i++) {
			struct http_req *q = reqs[i];

			if (q->done || q->running)
				continue;
			if (q->not_before > now) {
				if (q->not_before < wake)
					wake = q->not_before;
				continue;
			}
			if ((w = http_bucket_take(h, now)) != 0) {
				if (now + w < wake)
					wake = now + w;
				break;
			}
			if ((r = http_start(h, q)) != 0)
				goto out;
			running++;
		}
		if (curl_multi_perform(h->multi, &still) != CURLM_OK) {
			r = -ENOMEM;
			goto out;
		}
		ended = false;
		while ((m = curl_multi_info_read(h->multi, &msgs)) != NULL) {
			struct http_req *q;
			char *priv = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
			    &priv);
			if ((q = (struct http_req *)priv) == NULL)
				continue;
			running--;
			ended = true;
			now = clock_mono_ms();
			if (!http_finish(h, q, m->data.result, now))
				continue;
			q->done = true;
			left--;
			if ((r = finished(arg, q)) != 0)
				goto out;
		}
		if (left == 0)
			break;
		/* A slot is free or a retry is scheduled: plan again first. */
		if (ended)
			continue;
		now = clock_mono_ms();
		w = wake > now ? wake - now : 0;
		wfd.fd = cf->watch_fd;
		wfd.events = CURL_WAIT_POLLIN;
		wfd.revents = 0;
		if (curl_multi_poll(h->multi, cf->watch_fd >= 0 ? &wfd : NULL,
		    cf->watch_fd >= 0 ? 1 : 0, (int)w, NULL) != CURLM_OK) {
			r = -ENOMEM;
			goto out;
		}
		if (cf->watch_fd >= 0 && wfd.revents != 0 &&
		    cf->watch != NULL && cf->watch(cf->arg)) {
			r = -ECANCELED;
			goto out;
		}
	}
out:
	http_abandon(h, reqs, n);
	return r;
}

/* ---- cookies --------------------------------------------------------- */

bool
http_cookie_present(struct http *h, const char *const *names, size_t n)
{
	struct curl_slist *list = NULL, *p;
	CURL *e;
	bool found = false;
	size_t i;

	if ((e = curl_easy_init()) == NULL)
		return false;
	if (curl_easy_setopt(e, CURLOPT_SHARE, h->share) != CURLE_OK ||
	    curl_easy_getinfo(e, CURLINFO_COOKIELIST, &list) != CURLE_OK)
		goto out;
	/* Netscape format: domain, flag, path, secure, expiry, name, value. */
	for (p = list; p != NULL && !found; p = p->next) {
		const char *f = p->data;
		char name[256];
		size_t len;
		int tab;

		for (tab = 0; tab < 5 && f != NULL; tab++)
			if ((f = strchr(f, '\t')) != NULL)
				f++;
		if (f == NULL)
			continue;
		len = strcspn(f, "\t");
		if (len == 0 || len >= sizeof(name))
			continue;
		memcpy(name, f, len);
		name[len] = '\0';
		for (i = 0; i < n && !found; i++)
			found = strcasestr(name, names[i]) != NULL;
		explicit_bzero(name, sizeof(name));
	}
out:
	if (list != NULL) {
		for (p = list; p != NULL; p = p->next)
			explicit_bzero(p->data, strlen(p->data));
		curl_slist_free_all(list);
	}
	curl_easy_cleanup(e);
	return found;
}

void
http_cookies_clear(struct http *h)
{
	CURL *e;

	if ((e = curl_easy_init()) == NULL)
		return;
	if (curl_easy_setopt(e, CURLOPT_SHARE, h->share) == CURLE_OK)
		curl_easy_setopt(e, CURLOPT_COOKIELIST, "ALL");
	curl_easy_cleanup(e);
}
