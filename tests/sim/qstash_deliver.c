/*
 * The simulator's QStash delivering: when a message is due (on the QStash
 * clock), POST its body to the destination with the headers of CONTRACTS
 * §1 and an Upstash-Signature JWT (HS256 over the signing key's bytes;
 * iss, sub, iat, nbf, exp = iat + 5 min, jti, and body, the padded
 * base64url SHA-256 of the body), and act on the answer: 2xx delivers,
 * 489 with Upstash-NonRetryable-Error fails at once, anything else (or no
 * answer) is retried after min(1 d, e^(2.5n)) s, or the destination's
 * Retry-After, until 1 + Upstash-Retries attempts are spent.
 *
 * Knobs bend it: duplicate deliveries (one after the first success, or
 * two at once), and tokens signed with the next key, an unknown key,
 * corrupted, or skewed in time.  Only http:// destinations are spoken to;
 * an https:// one fails as a connection would.
 */
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/base64.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/sha256.h"
#include "common/xmalloc.h"

#include "tests/sim/services.h"
#include "tests/sim/qstash.h"

/* One delivery request on the wire. */
struct attempt {
	struct msg		*m;
	struct evhttp_connection *conn;
	bool			 duplicate;
	bool			 done;		/* conn is the reaper's */
	unsigned int		 retried;
	TAILQ_ENTRY(attempt)	 entry;
};

static struct {
	struct event		*timer;
	struct event		*reaper;
	TAILQ_HEAD(, attempt)	 attempts;
	unsigned int		 inflight;
} dv;

/* Retry-After and friends: seconds, "6m5s", or an RFC 1123 date. */
static bool
parse_retry_after(const char *v, int64_t now_wall, uint64_t *ret_s)
{
	struct tm tm;
	uint64_t n;
	const char *end;

	if (v == NULL)
		return false;
	if (parse_u64(v, &n) == 0) {
		*ret_s = n;
		return true;
	}
	if (qstash_parse_delay(v, &n) == 0) {
		*ret_s = n / 1000;
		return true;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (end != NULL && *end == '\0') {
		n = (uint64_t)timegm(&tm);
		*ret_s = (int64_t)n > now_wall ? n - (uint64_t)now_wall : 0;
		return true;
	}
	return false;
}

static char *
sign(const struct msg *m)
{
	char body_hash[BASE64URL_LEN(SHA256_DIGEST_LEN) + 2];
	unsigned char d[SHA256_DIGEST_LEN], mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	struct sha256 ctx;
	const char *key, *hdr = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	char jti[32], *claims, *tok;
	json_t *j;
	int64_t t = (int64_t)time(NULL) + qs.k.sign_skew;
	size_t n, cl, hl = strlen(hdr);

	sha256_init(&ctx);
	sha256_update(&ctx, m->body, m->len);
	sha256_final(&ctx, d);
	/* Padded, as QStash's own example is: receivers strip the '='. */
	n = base64url_encode(d, sizeof(d), body_hash);
	body_hash[n++] = '=';
	body_hash[n] = '\0';
	qstash_random_id(jti, 24, "jwt_");
	j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:s,s:s}", "iss", "Upstash",
	    "sub", m->dest, "exp", (json_int_t)(t + JWT_LIFETIME_S), "nbf",
	    (json_int_t)t, "iat", (json_int_t)t, "jti", jti, "body",
	    body_hash);
	if (j == NULL || (claims = json_dumps(j, JSON_COMPACT)) == NULL)
		fatalx("out of memory");
	json_decref(j);
	cl = strlen(claims);
	tok = xmalloc(BASE64URL_LEN(hl) + BASE64URL_LEN(cl) +
	    BASE64URL_LEN(sizeof(mac)) + 3);
	n = base64url_encode(hdr, hl, tok);
	tok[n++] = '.';
	n += base64url_encode(claims, cl, tok + n);
	free(claims);

	switch (qs.k.sign) {
	case SIGN_NEXT: key = qs.k.next_key; break;
	case SIGN_UNKNOWN: key = "sig_unknown_to_the_receiver"; break;
	default: key = qs.k.current_key; break;
	}
	if (HMAC(EVP_sha256(), key, (int)strlen(key), (unsigned char *)tok, n,
	    mac, &maclen) == NULL)
		fatalx("HMAC failed");
	tok[n++] = '.';
	base64url_encode(mac, maclen, tok + n);
	if (qs.k.sign == SIGN_CORRUPT)
		tok[n] = tok[n] == 'A' ? 'B' : 'A';
	OPENSSL_cleanse(mac, sizeof(mac));
	return tok;
}

/*
 * Seconds before retry number n (1 for the first): min(1 d, e^(2.5n)),
 * the default backoff of CONTRACTS §1, as a table to spare libm.
 */
static uint64_t
backoff_s(unsigned int n)
{
	static const uint64_t s[] = { 0, 12, 148, 1808, 22026 };

	return n < sizeof(s) / sizeof(s[0]) ? s[n] : BACKOFF_MAX_S;
}

static void
record(struct msg *m, const struct attempt *a, int status, const char *error)
{
	json_t *h = json_pack("{s:I,s:i,s:i,s:b}", "at",
	    (json_int_t)(qstash_now_ms() / 1000), "status", status, "retried",
	    (int)a->retried, "duplicate", a->duplicate);

	if (error != NULL)
		json_object_set_new(h, "error", json_string(error));
	if (json_array_size(m->history) >= MSG_HISTORY_MAX)
		json_array_remove(m->history, 0);
	json_array_append_new(m->history, h);
}

static bool	 send_attempt(struct msg *, bool duplicate);

/*
 * Outgoing connections are freed here, on the next turn of the loop:
 * not from inside their own callback, and not by evhttp's free-on-
 * completion, which forgets connections whose connect() failed.
 */
static void
reap(evutil_socket_t fd, short what, void *arg)
{
	struct attempt *a, *next;

	for (a = TAILQ_FIRST(&dv.attempts); a != NULL; a = next) {
		next = TAILQ_NEXT(a, entry);
		if (!a->done)
			continue;
		TAILQ_REMOVE(&dv.attempts, a, entry);
		if (a->conn != NULL)
			evhttp_connection_free(a->conn);
		free(a);
	}
}

static void
attempt_release(struct attempt *a)
{
	struct timeval tv = { 0, 0 };

	a->done = true;
	evtimer_add(dv.reaper, &tv);
}

static void
attempt_done(struct evhttp_request *req, void *arg)
{
	struct attempt *a = arg;
	struct msg *m = a->m;
	struct evkeyvalq *in;
	const char *nr = NULL, *ra = NULL;
	uint64_t wait_s;
	int status = req != NULL ? evhttp_request_get_response_code(req) : 0;

	dv.inflight--;
	m->inflight--;
	if (m->orphan) {
		if (m->inflight == 0)
			qstash_msg_free(m);
		attempt_release(a);
		return;
	}
	if (req != NULL && status != 0) {
		in = evhttp_request_get_input_headers(req);
		nr = evhttp_find_header(in, "Upstash-NonRetryable-Error");
		if ((ra = evhttp_find_header(in, "Retry-After")) == NULL &&
		    (ra = evhttp_find_header(in, "X-RateLimit-Reset")) == NULL)
			ra = evhttp_find_header(in,
			    "X-RateLimit-Reset-Requests");
	}
	record(m, a, status, status == 0 ? "no answer (transport failure)" :
	    NULL);
	log_info("qstash: message %s attempt retried=%u%s status=%d", m->id,
	    a->retried, a->duplicate ? " (duplicate)" : "", status);
	if (a->duplicate || m->state != MSG_PENDING)
		goto out;	/* a duplicate or a cancelled message: no say */
	m->last_status = status;
	if (status >= 200 && status < 300) {
		qstash_finish(m, MSG_DELIVERED);
		/* A sequential duplicate comes after the first success. */
		if (m->dup_left > 0) {
			m->dup_left--;
			send_attempt(m, true);
		}
		goto out;
	}
	if (status == 489 && nr != NULL && strcasecmp(nr, "true") == 0) {
		qstash_finish(m, MSG_FAILED);
		goto out;
	}
	if (m->retried >= m->retries) {
		qstash_finish(m, MSG_FAILED);
		goto out;
	}
	m->retried++;
	qs.st.retries++;
	wait_s = backoff_s(m->retried);
	if (parse_retry_after(ra, (int64_t)time(NULL), &wait_s) &&
	    wait_s > BACKOFF_MAX_S)
		wait_s = BACKOFF_MAX_S;
	m->next_ms = qstash_now_ms() + (int64_t)wait_s * 1000;
out:
	attempt_release(a);
	qstash_arm(0);
}

/* Send one delivery request; false when it could not even start. */
static bool
send_attempt(struct msg *m, bool duplicate)
{
	struct evhttp_connection *c = NULL;
	struct evhttp_request *req;
	struct evhttp_uri *u = NULL;
	struct evkeyvalq *out;
	struct attempt *a;
	const char *host, *path, *query, *k;
	char *tok, *target, retried[16], hostport[300];
	json_t *v;
	int port;
	enum evhttp_cmd_type cmd;

	a = xcalloc(1, sizeof(*a));
	TAILQ_INSERT_TAIL(&dv.attempts, a, entry);
	a->m = m;
	a->duplicate = duplicate;
	a->retried = m->retried;
	m->attempts++;
	qs.st.deliveries++;
	if (duplicate)
		qs.st.duplicates++;
	m->inflight++;
	dv.inflight++;
	if (strncmp(m->dest, "http://", 7) != 0 ||
	    (u = evhttp_uri_parse(m->dest)) == NULL) {
		attempt_done(NULL, a);	/* https: not spoken here */
		return false;
	}
	host = evhttp_uri_get_host(u);
	port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
	path = evhttp_uri_get_path(u);
	query = evhttp_uri_get_query(u);
	c = evhttp_connection_base_new(qs.base, NULL, host, (ev_uint16_t)port);
	if (c == NULL || (req = evhttp_request_new(attempt_done, a)) == NULL)
		fatalx("qstash: cannot set up a delivery to '%s'",
		    log_q(m->dest));
	evhttp_connection_set_timeout(c, (int)qs.k.timeout_s);
	evhttp_connection_set_retries(c, 0);
	a->conn = c;

	out = evhttp_request_get_output_headers(req);
	snprintf(hostport, sizeof(hostport), "%s:%d", host, port);
	evhttp_add_header(out, "Host", hostport);
	evhttp_add_header(out, "User-Agent", "Upstash-QStash");
	if (m->ctype[0] != '\0')
		evhttp_add_header(out, "Content-Type", m->ctype);
	json_object_foreach(m->forward, k, v)
		evhttp_add_header(out, k, json_string_value(v));
	tok = sign(m);
	evhttp_add_header(out, "Upstash-Signature", tok);
	free(tok);
	evhttp_add_header(out, "Upstash-Message-Id", m->id);
	snprintf(retried, sizeof(retried), "%u", m->retried);
	evhttp_add_header(out, "Upstash-Retried", retried);
	evhttp_add_header(out, "Upstash-Caller-Ip", m->caller);
	evbuffer_add(evhttp_request_get_output_buffer(req), m->body, m->len);

	if (strcmp(m->method, "GET") == 0)
		cmd = EVHTTP_REQ_GET;
	else if (strcmp(m->method, "PUT") == 0)
		cmd = EVHTTP_REQ_PUT;
	else if (strcmp(m->method, "DELETE") == 0)
		cmd = EVHTTP_REQ_DELETE;
	else if (strcmp(m->method, "PATCH") == 0)
		cmd = EVHTTP_REQ_PATCH;
	else
		cmd = EVHTTP_REQ_POST;
	target = xasprintf("%s%s%s", path != NULL && *path != '\0' ? path :
	    "/", query != NULL ? "?" : "", query != NULL ? query : "");
	if (evhttp_make_request(c, req, cmd, target) != 0) {
		/* evhttp has freed req; the reaper frees the connection. */
		free(target);
		evhttp_uri_free(u);
		attempt_done(NULL, a);
		return false;
	}
	free(target);
	evhttp_uri_free(u);
	return true;
}

/* Start every due attempt (up to the parallel cap); arm for the next. */
static void
tick(evutil_socket_t fd, short what, void *arg)
{
	struct msg *m, *next;
	int64_t now = qstash_now_ms(), soonest = INT64_MAX;
	bool twice;

	for (m = TAILQ_FIRST(&qs.active); m != NULL; m = next) {
		next = TAILQ_NEXT(m, active);
		if (m->inflight > 0)
			continue;
		if (m->next_ms > now) {
			if (m->next_ms < soonest)
				soonest = m->next_ms;
			continue;
		}
		if (dv.inflight >= qs.k.parallel)
			return;	/* attempt_done() arms again */
		twice = false;
		if (m->attempts == 0 && qs.k.duplicate > 0) {
			qs.k.duplicate--;
			if (qs.k.dup_concurrent)
				twice = true;
			else
				m->dup_left++;
		}
		if (send_attempt(m, false) && twice)
			send_attempt(m, true);
	}
	if (soonest == INT64_MAX)
		return;
	if (qs.scale == 0)
		qstash_arm(1000);	/* stopped: qstash_advance moves it */
	else
		qstash_arm((uint64_t)(soonest - now) / qs.scale + 1);
}

/* Run tick() in real_ms, or sooner if it is already due sooner. */
void
qstash_arm(uint64_t real_ms)
{
	struct timeval tv, left, now;

	if (real_ms > 1000)
		real_ms = 1000;	/* pick up clock changes */
	tv = clock_timeval_ms(real_ms);
	if (evtimer_pending(dv.timer, &left)) {
		event_base_gettimeofday_cached(qs.base, &now);
		timersub(&left, &now, &left);
		if (timercmp(&left, &tv, <=))
			return;
	}
	evtimer_add(dv.timer, &tv);
}

void
qstash_deliver_init(void)
{
	TAILQ_INIT(&dv.attempts);
	if ((dv.timer = evtimer_new(qs.base, tick, NULL)) == NULL ||
	    (dv.reaper = evtimer_new(qs.base, reap, NULL)) == NULL)
		fatalx("out of memory");
}

void
qstash_deliver_free(void)
{
	struct attempt *a;

	while ((a = TAILQ_FIRST(&dv.attempts)) != NULL) {
		TAILQ_REMOVE(&dv.attempts, a, entry);
		if (a->conn != NULL)
			evhttp_connection_free(a->conn);
		if (!a->done && a->m->orphan && --a->m->inflight == 0)
			qstash_msg_free(a->m);
		free(a);
	}
	if (dv.timer != NULL)
		event_free(dv.timer);
	if (dv.reaper != NULL)
		event_free(dv.reaper);
	dv.timer = dv.reaper = NULL;
}
