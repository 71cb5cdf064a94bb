/*
 * QStash v2 as CONTRACTS §1 describes it, for vetsync's discharge calls:
 * POST /v2/publish/<destination URL, raw> with a bearer token, delays
 * (Upstash-Delay, Upstash-Not-Before), deduplication (202 with the first
 * message's id within the window), Upstash-Retries and Upstash-Forward-*;
 * DELETE /v2/messages/<id> (404 once delivered or unknown) and the bulk
 * form; and delivery: a POST to the destination signed with an HS256 JWT,
 * retried on any non-2xx or transport failure with QStash's backoff
 * (e^(2.5n) s, capped at a day, or the destination's Retry-After), except
 * after 489 with Upstash-NonRetryable-Error.
 *
 * The failures tests ask for come from knobs: 429 (with Burst-RateLimit-*
 * and Retry-After) or 5xx on publish, for the next N requests or a
 * fraction; down (503, or the connection closed without an answer); slow
 * answers; duplicate deliveries, one after the other or at once; tokens
 * signed with the next key, an unknown key, corrupted or skewed in time.
 *
 * Deliberate limits: http:// destinations only (an https:// one fails as
 * a transport error would), no callbacks, queues, schedules,
 * Upstash-Retry-Delay or flow control; they are accepted and ignored.
 */
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/sha256.h"
#include "common/xmalloc.h"

#include "tests/sim/services.h"
#include "tests/sim/sim.h"

#define MSG_ID_LEN		(4 + 26)	/* "msg_" + 26 */
#define MSG_MAX			1000000
#define MSG_HISTORY_MAX		32		/* attempts kept per message */
#define HASH_SIZE		65536
#define BACKOFF_MAX_S		86400
#define JWT_LIFETIME_S		300
#define KEY_MAX			256
#define DEDUP_ID_MAX		512

enum msg_state {
	MSG_PENDING,
	MSG_DELIVERED,
	MSG_FAILED,
	MSG_CANCELLED,
};

static const char *const state_names[] = {
	"pending", "delivered", "failed", "cancelled",
};

struct msg {
	char			 id[MSG_ID_LEN + 1];
	char			*dest;
	char			*method;
	char			*ctype;
	char			*dedup;		/* NULL: none */
	char			*caller;	/* publisher's address */
	void			*body;
	size_t			 len;
	json_t			*received;	/* publish headers, redacted */
	json_t			*forward;	/* name -> value */
	json_t			*history;	/* one object per attempt */
	int64_t			 created_ms;	/* QStash clock */
	int64_t			 not_before_ms;
	int64_t			 next_ms;	/* next attempt */
	unsigned int		 retries;
	unsigned int		 retried;
	unsigned int		 attempts;
	unsigned int		 inflight;
	unsigned int		 dup_left;	/* duplicates still to send */
	bool			 orphan;	/* reset while on the wire */
	enum msg_state		 state;
	int			 last_status;
	struct msg		*id_next;	/* hash chains */
	struct msg		*dedup_next;
	TAILQ_ENTRY(msg)	 all;
	TAILQ_ENTRY(msg)	 active;	/* while pending */
};

TAILQ_HEAD(msg_list, msg);

/* One delivery request on the wire. */
struct attempt {
	struct msg		*m;
	struct evhttp_connection *conn;
	bool			 duplicate;
	bool			 done;		/* conn is the reaper's */
	unsigned int		 retried;
	TAILQ_ENTRY(attempt)	 entry;
};

enum down_mode {
	DOWN_NO,
	DOWN_503,
	DOWN_CLOSE,
};

enum sign_mode {
	SIGN_CURRENT,
	SIGN_NEXT,
	SIGN_UNKNOWN,
	SIGN_CORRUPT,
};

static const char *const sign_names[] = {
	"current", "next", "unknown", "corrupt",
};

struct qknobs {
	uint64_t	 fail_next;
	uint64_t	 fail_code;
	uint64_t	 rate_429;	/* millionths */
	uint64_t	 rate_5xx;
	uint64_t	 retry_after;
	uint64_t	 slow_ms;
	uint64_t	 duplicate;	/* next N messages delivered twice */
	bool		 dup_concurrent;
	enum down_mode	 down;
	enum sign_mode	 sign;
	int64_t		 sign_skew;	/* seconds added to iat/nbf/exp */
	uint64_t	 timeout_s;
	uint64_t	 dedup_window_s;
	uint64_t	 max_retries;
	uint64_t	 parallel;
	char		 current_key[KEY_MAX];
	char		 next_key[KEY_MAX];
};

struct qstats {
	uint64_t	publishes;	/* requests to /v2/publish */
	uint64_t	published;	/* 200: enqueued */
	uint64_t	deduplicated;	/* 202 */
	uint64_t	unauthorized;
	uint64_t	bad_requests;
	uint64_t	r429;
	uint64_t	r5xx;
	uint64_t	closed;
	uint64_t	deliveries;	/* requests sent to destinations */
	uint64_t	delivered;
	uint64_t	retries;
	uint64_t	failed;
	uint64_t	cancelled;
	uint64_t	duplicates;
};

/* A staged control request: knobs and actions applied together. */
struct qstage {
	struct qknobs	 k;
	bool		 scale_set;
	uint64_t	 scale;
	uint64_t	 advance_s;
	bool		 reset;
};

static struct {
	struct event_base	*base;
	struct event		*timer;
	struct event		*reaper;
	TAILQ_HEAD(, attempt)	 attempts;
	const char		*token;
	struct qknobs		 k;
	struct qstats		 st;
	struct msg_list		 all;
	struct msg_list		 active;
	size_t			 nmsgs;
	unsigned int		 inflight;
	struct msg		*by_id[HASH_SIZE];
	struct msg		*by_dedup[HASH_SIZE];
	/* The clock: sim0_ms at mono0, running scale times real time. */
	uint64_t		 mono0;
	int64_t			 sim0_ms;
	uint64_t		 scale;
	struct qstage		*stage;
} q;

/* A reply waiting for its delay (qstash_slow_ms, vapi_slow_ms). */
struct delayed {
	struct evhttp_request	*req;
	struct evbuffer		*body;
	struct event		*timer;
	int			 code;
	TAILQ_ENTRY(delayed)	 entry;
};

static TAILQ_HEAD(, delayed) delayeds = TAILQ_HEAD_INITIALIZER(delayeds);

static void	 arm(uint64_t real_ms);

static int64_t
now_ms(void)
{
	return q.sim0_ms + (int64_t)((clock_mono_ms() - q.mono0) * q.scale);
}

static void
set_scale(uint64_t scale)
{
	q.sim0_ms = now_ms();
	q.mono0 = clock_mono_ms();
	q.scale = scale;
}

static const char *
method_name(struct evhttp_request *req)
{
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "OTHER";
	}
}

static void
send_reply(struct evhttp_request *req, int code, struct evbuffer *body)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const char *uri = evhttp_request_get_uri(req);

	if (evhttp_find_header(out, "Content-Type") == NULL)
		evhttp_add_header(out, "Content-Type",
		    "application/json; charset=utf-8");
	/* The URI names a destination, not a token; bodies are not logged. */
	log_info("%s %s status=%d bytes=%zu", method_name(req), log_q(uri),
	    code, evbuffer_get_length(body));
	evhttp_send_reply(req, code, NULL, body);
}

static void
delayed_fire(evutil_socket_t fd, short what, void *arg)
{
	struct delayed *d = arg;

	TAILQ_REMOVE(&delayeds, d, entry);
	send_reply(d->req, d->code, d->body);
	evbuffer_free(d->body);
	event_free(d->timer);
	free(d);
}

void
services_reply(struct evhttp_request *req, int code, struct evbuffer *body,
    uint64_t delay_ms)
{
	struct delayed *d;
	struct timeval tv;

	if (delay_ms == 0) {
		send_reply(req, code, body);
		return;
	}
	d = xcalloc(1, sizeof(*d));
	d->req = req;
	d->code = code;
	if ((d->body = evbuffer_new()) == NULL ||
	    (d->timer = evtimer_new(q.base, delayed_fire, d)) == NULL)
		fatalx("out of memory");
	evbuffer_add_buffer(d->body, body);
	tv = clock_timeval_ms(delay_ms);
	evtimer_add(d->timer, &tv);
	TAILQ_INSERT_TAIL(&delayeds, d, entry);
}

void
services_dump(struct evbuffer *b, json_t *j)
{
	char *s;

	if (j == NULL || (s = json_dumps(j, JSON_COMPACT)) == NULL)
		fatalx("cannot build a JSON answer");
	json_decref(j);
	evbuffer_add(b, s, strlen(s));
	free(s);
}

void
services_reply_json(struct evhttp_request *req, int code, json_t *j,
    uint64_t delay_ms)
{
	struct evbuffer *b;

	if ((b = evbuffer_new()) == NULL)
		fatalx("out of memory");
	services_dump(b, j);
	services_reply(req, code, b, delay_ms);
	evbuffer_free(b);
}

static void
reply_json(struct evhttp_request *req, int code, json_t *j)
{
	services_reply_json(req, code, j, q.k.slow_ms);
}

static void
reply_error(struct evhttp_request *req, int code, const char *what)
{
	reply_json(req, code, json_pack("{s:s}", "error", what));
}

/*
 * Drop the connection without an answer: "down", as a client sees it.
 * Shutting the socket down, rather than freeing the connection, leaves
 * libevent to clean up when it notices, with no pointer of ours dangling.
 */
static void
close_connection(struct evhttp_request *req)
{
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	struct bufferevent *bev;

	log_info("%s %s: connection closed (qstash_down)", method_name(req),
	    log_q(evhttp_request_get_uri(req)));
	if (c != NULL && (bev = evhttp_connection_get_bufferevent(c)) != NULL)
		shutdown(bufferevent_getfd(bev), SHUT_RDWR);
}

static unsigned int
hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % HASH_SIZE;
}

static struct msg *
find_id(const char *id)
{
	struct msg *m;

	for (m = q.by_id[hash(id)]; m != NULL; m = m->id_next)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

/* The newest message with that dedup id inside the window, or NULL. */
static struct msg *
find_dedup(const char *dedup)
{
	struct msg *m;
	int64_t since = now_ms() - (int64_t)q.k.dedup_window_s * 1000;

	for (m = q.by_dedup[hash(dedup)]; m != NULL; m = m->dedup_next)
		if (strcmp(m->dedup, dedup) == 0 && m->created_ms >= since)
			return m;
	return NULL;
}

static void
random_id(char *out, size_t n, const char *prefix)
{
	static const char digits[] = "0123456789abcdefghijkmnpqrstuvwxyz";
	unsigned char r[64];
	size_t i, p = strlen(prefix);

	if (n - p > sizeof(r) || getrandom(r, n - p, 0) != (ssize_t)(n - p))
		fatal("getrandom");
	memcpy(out, prefix, p);
	for (i = p; i < n; i++)
		out[i] = digits[r[i - p] % (sizeof(digits) - 1)];
	out[n] = '\0';
}

static uint64_t
draw_micro(void)
{
	return data_next(&sim.prng) % 1000000;
}

static void
msg_free(struct msg *m)
{
	if (m == NULL)
		return;
	free(m->dest);
	free(m->method);
	free(m->ctype);
	free(m->dedup);
	free(m->caller);
	free(m->body);
	json_decref(m->received);
	json_decref(m->forward);
	json_decref(m->history);
	free(m);
}

static void
finish_msg(struct msg *m, enum msg_state state)
{
	if (m->state == MSG_PENDING)
		TAILQ_REMOVE(&q.active, m, active);
	m->state = state;
	if (state == MSG_DELIVERED)
		q.st.delivered++;
	else if (state == MSG_FAILED)
		q.st.failed++;
	else if (state == MSG_CANCELLED)
		q.st.cancelled++;
}

/*
 * "<n><unit>..." with units s, m, h, d ("1d10h30m"), as Upstash-Delay
 * takes them; the common parser also knows ms and w, which QStash does not.
 */
static int
parse_delay(const char *s, uint64_t *ret_ms)
{
	const char *p;

	if (*s == '\0' || strstr(s, "ms") != NULL || strchr(s, 'w') != NULL)
		return -EINVAL;
	p = s + strlen(s) - 1;
	if (*p != 's' && *p != 'm' && *p != 'h' && *p != 'd')
		return -EINVAL;
	return parse_duration_ms(s, ret_ms);
}

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
	if (parse_delay(v, &n) == 0) {
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

static const char *
header_in(struct evhttp_request *req, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

static bool
authorized(struct evhttp_request *req)
{
	const char *a = header_in(req, "Authorization");

	return a != NULL && strncmp(a, "Bearer ", 7) == 0 &&
	    strlen(a + 7) == strlen(q.token) &&
	    CRYPTO_memcmp(a + 7, q.token, strlen(q.token)) == 0;
}

/* The failure knobs of the API itself; true when one answered. */
static bool
api_failure(struct evhttp_request *req, bool publish)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	char v[32];
	int code = 0;

	if (q.k.down == DOWN_CLOSE) {
		q.st.closed++;
		close_connection(req);
		return true;
	}
	if (q.k.down == DOWN_503) {
		q.st.r5xx++;
		reply_error(req, 503, "service unavailable");
		return true;
	}
	if (!publish)
		return false;
	if (q.k.fail_next > 0) {
		q.k.fail_next--;
		code = (int)q.k.fail_code;
	} else if (q.k.rate_429 > 0 && draw_micro() < q.k.rate_429)
		code = 429;
	else if (q.k.rate_5xx > 0 && draw_micro() < q.k.rate_5xx)
		code = 500;
	if (code == 0)
		return false;
	if (code == 429) {
		q.st.r429++;
		evhttp_add_header(out, "Burst-RateLimit-Limit", "100");
		evhttp_add_header(out, "Burst-RateLimit-Remaining", "0");
		snprintf(v, sizeof(v), "%lld", (long long)(time(NULL) +
		    (time_t)q.k.retry_after));
		evhttp_add_header(out, "Burst-RateLimit-Reset", v);
		snprintf(v, sizeof(v), "%llu",
		    (unsigned long long)q.k.retry_after);
		evhttp_add_header(out, "Retry-After", v);
		reply_error(req, 429, "too many requests");
	} else {
		q.st.r5xx++;
		reply_error(req, code, "internal server error");
	}
	return true;
}

static bool
prefixed(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* Content-based dedup: a hash of destination, body, type and forwards. */
static char *
content_dedup(const struct msg *m)
{
	struct sha256 ctx;
	unsigned char d[SHA256_DIGEST_LEN];
	char hex[SHA256_HEX_LEN + 1], *fw;
	size_t i;

	fw = json_dumps(m->forward, JSON_COMPACT | JSON_SORT_KEYS);
	if (fw == NULL)
		fatalx("out of memory");
	sha256_init(&ctx);
	sha256_update(&ctx, m->dest, strlen(m->dest) + 1);
	sha256_update(&ctx, m->body, m->len);
	sha256_update(&ctx, m->ctype, strlen(m->ctype) + 1);
	sha256_update(&ctx, fw, strlen(fw));
	sha256_final(&ctx, d);
	free(fw);
	for (i = 0; i < sizeof(d); i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	return xstrdup(hex);
}

/* Fill m from the publish request's headers; NULL or what was wrong. */
static const char *
read_headers(struct evhttp_request *req, struct msg *m, int64_t now)
{
	struct evkeyval *kv;
	const char *v;
	uint64_t n;

	TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next) {
		json_object_set_new(m->received, kv->key, json_string(
		    strcasecmp(kv->key, "Authorization") == 0 ? "[redacted]" :
		    kv->value));
		if (prefixed(kv->key, "Upstash-Forward-") &&
		    kv->key[16] != '\0')
			json_object_set_new(m->forward, kv->key + 16,
			    json_string(kv->value));
	}
	m->not_before_ms = now;
	if ((v = header_in(req, "Upstash-Delay")) != NULL) {
		if (parse_delay(v, &n) != 0 || n > 365ULL * 86400 * 1000)
			return "invalid Upstash-Delay: want <n>s|m|h|d";
		m->not_before_ms = now + (int64_t)n;
	}
	if ((v = header_in(req, "Upstash-Not-Before")) != NULL) {
		if (parse_u64(v, &n) != 0 || n > (uint64_t)INT32_MAX * 2)
			return "invalid Upstash-Not-Before: want Unix seconds";
		m->not_before_ms = (int64_t)n * 1000;
	}
	m->retries = (unsigned int)(q.k.max_retries < 3 ? q.k.max_retries : 3);
	if ((v = header_in(req, "Upstash-Retries")) != NULL) {
		if (parse_u64(v, &n) != 0 || n > 100)
			return "invalid Upstash-Retries";
		m->retries = (unsigned int)(n < q.k.max_retries ? n :
		    q.k.max_retries);
	}
	v = header_in(req, "Upstash-Method");
	m->method = xstrdup(v != NULL ? v : "POST");
	if (strcmp(m->method, "POST") != 0 && strcmp(m->method, "GET") != 0 &&
	    strcmp(m->method, "PUT") != 0 && strcmp(m->method, "DELETE") != 0 &&
	    strcmp(m->method, "PATCH") != 0)
		return "invalid Upstash-Method";
	v = header_in(req, "Content-Type");
	m->ctype = xstrdup(v != NULL ? v : "");
	if ((v = header_in(req, "Upstash-Deduplication-Id")) != NULL) {
		if (*v == '\0' || strlen(v) > DEDUP_ID_MAX)
			return "invalid Upstash-Deduplication-Id";
		m->dedup = xstrdup(v);
	} else if ((v = header_in(req,
	    "Upstash-Content-Based-Deduplication")) != NULL &&
	    strcmp(v, "true") == 0)
		m->dedup = content_dedup(m);
	return NULL;
}

static bool
valid_destination(const char *dest)
{
	struct evhttp_uri *u;
	bool ok;

	if (strncmp(dest, "http://", 7) != 0 &&
	    strncmp(dest, "https://", 8) != 0)
		return false;
	if ((u = evhttp_uri_parse(dest)) == NULL)
		return false;
	ok = evhttp_uri_get_host(u) != NULL && *evhttp_uri_get_host(u) != '\0';
	evhttp_uri_free(u);
	return ok;
}

static void
publish(struct evhttp_request *req, const char *dest)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	struct msg *m, *dup;
	const char *what;
	char *host = NULL;
	ev_uint16_t port = 0;
	int64_t now = now_ms();
	unsigned int h;

	q.st.publishes++;
	if (api_failure(req, false))
		return;
	if (!authorized(req)) {
		q.st.unauthorized++;
		reply_error(req, 401, "unauthorized: missing or invalid bearer "
		    "token");
		return;
	}
	if (api_failure(req, true))
		return;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		reply_error(req, 405, "method not allowed");
		return;
	}
	if (!valid_destination(dest)) {
		q.st.bad_requests++;
		reply_error(req, 400, "invalid destination url: want "
		    "http(s)://host/path");
		return;
	}
	if (q.nmsgs >= MSG_MAX) {
		reply_error(req, 500, "simulator full");
		return;
	}

	m = xcalloc(1, sizeof(*m));
	m->dest = xstrdup(dest);
	m->received = json_object();
	m->forward = json_object();
	m->history = json_array();
	m->len = evbuffer_get_length(in);
	m->body = xmalloc(m->len + 1);
	evbuffer_copyout(in, m->body, m->len);
	if ((what = read_headers(req, m, now)) != NULL) {
		q.st.bad_requests++;
		reply_error(req, 400, what);
		msg_free(m);
		return;
	}
	if (m->dedup != NULL && (dup = find_dedup(m->dedup)) != NULL) {
		q.st.deduplicated++;
		reply_json(req, 202, json_pack("{s:s,s:b}", "messageId",
		    dup->id, "deduplicated", 1));
		msg_free(m);
		return;
	}
	do
		random_id(m->id, MSG_ID_LEN, "msg_");
	while (find_id(m->id) != NULL);
	if (c != NULL)
		evhttp_connection_get_peer(c, &host, &port);
	m->caller = xstrdup(host != NULL ? host : "");
	m->created_ms = now;
	m->next_ms = m->not_before_ms;
	h = hash(m->id);
	m->id_next = q.by_id[h];
	q.by_id[h] = m;
	if (m->dedup != NULL) {
		h = hash(m->dedup);
		m->dedup_next = q.by_dedup[h];
		q.by_dedup[h] = m;
	}
	TAILQ_INSERT_TAIL(&q.all, m, all);
	TAILQ_INSERT_TAIL(&q.active, m, active);
	q.nmsgs++;
	q.st.published++;
	reply_json(req, 200, json_pack("{s:s,s:s}", "messageId", m->id, "url",
	    m->dest));
	arm(0);
}

static void
cancel(struct evhttp_request *req, const char *id)
{
	struct msg *m;

	if (api_failure(req, false))
		return;
	if (!authorized(req)) {
		q.st.unauthorized++;
		reply_error(req, 401, "unauthorized: missing or invalid bearer "
		    "token");
		return;
	}
	/* Delivered messages are deleted soon after: gone, as QStash says. */
	if ((m = find_id(id)) == NULL || m->state != MSG_PENDING) {
		reply_error(req, 404, "message not found");
		return;
	}
	finish_msg(m, MSG_CANCELLED);
	reply_json(req, 200, json_object());
}

/* DELETE /v2/messages?messageIds=a&messageIds=b; none: every message. */
static void
cancel_bulk(struct evhttp_request *req)
{
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *query = evhttp_uri_get_query(u);
	struct evkeyvalq params;
	struct evkeyval *kv;
	struct msg *m;
	json_int_t n = 0;
	bool any = false;

	if (api_failure(req, false))
		return;
	if (!authorized(req)) {
		q.st.unauthorized++;
		reply_error(req, 401, "unauthorized: missing or invalid bearer "
		    "token");
		return;
	}
	TAILQ_INIT(&params);
	if (query != NULL && evhttp_parse_query_str(query, &params) != 0) {
		reply_error(req, 400, "bad query");
		return;
	}
	TAILQ_FOREACH(kv, &params, next) {
		if (strcmp(kv->key, "messageIds") != 0)
			continue;
		any = true;
		if ((m = find_id(kv->value)) != NULL &&
		    m->state == MSG_PENDING) {
			finish_msg(m, MSG_CANCELLED);
			n++;
		}
	}
	if (!any) {
		while ((m = TAILQ_FIRST(&q.active)) != NULL) {
			finish_msg(m, MSG_CANCELLED);
			n++;
		}
	}
	evhttp_clear_headers(&params);
	reply_json(req, 200, json_pack("{s:I}", "cancelled", n));
}

/* --- delivery ---------------------------------------------------------- */

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
	int64_t t = (int64_t)time(NULL) + q.k.sign_skew;
	size_t n, cl, hl = strlen(hdr);

	sha256_init(&ctx);
	sha256_update(&ctx, m->body, m->len);
	sha256_final(&ctx, d);
	/* Padded, as QStash's own example is: receivers strip the '='. */
	n = base64url_encode(d, sizeof(d), body_hash);
	body_hash[n++] = '=';
	body_hash[n] = '\0';
	random_id(jti, 24, "jwt_");
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

	switch (q.k.sign) {
	case SIGN_NEXT: key = q.k.next_key; break;
	case SIGN_UNKNOWN: key = "sig_unknown_to_the_receiver"; break;
	default: key = q.k.current_key; break;
	}
	if (HMAC(EVP_sha256(), key, (int)strlen(key), (unsigned char *)tok, n,
	    mac, &maclen) == NULL)
		fatalx("HMAC failed");
	tok[n++] = '.';
	base64url_encode(mac, maclen, tok + n);
	if (q.k.sign == SIGN_CORRUPT)
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
	    (json_int_t)(now_ms() / 1000), "status", status, "retried",
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

	for (a = TAILQ_FIRST(&q.attempts); a != NULL; a = next) {
		next = TAILQ_NEXT(a, entry);
		if (!a->done)
			continue;
		TAILQ_REMOVE(&q.attempts, a, entry);
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
	evtimer_add(q.reaper, &tv);
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

	q.inflight--;
	m->inflight--;
	if (m->orphan) {
		if (m->inflight == 0)
			msg_free(m);
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
		finish_msg(m, MSG_DELIVERED);
		/* A sequential duplicate comes after the first success. */
		if (m->dup_left > 0) {
			m->dup_left--;
			send_attempt(m, true);
		}
		goto out;
	}
	if (status == 489 && nr != NULL && strcasecmp(nr, "true") == 0) {
		finish_msg(m, MSG_FAILED);
		goto out;
	}
	if (m->retried >= m->retries) {
		finish_msg(m, MSG_FAILED);
		goto out;
	}
	m->retried++;
	q.st.retries++;
	wait_s = backoff_s(m->retried);
	if (parse_retry_after(ra, (int64_t)time(NULL), &wait_s) &&
	    wait_s > BACKOFF_MAX_S)
		wait_s = BACKOFF_MAX_S;
	m->next_ms = now_ms() + (int64_t)wait_s * 1000;
out:
	attempt_release(a);
	arm(0);
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
	TAILQ_INSERT_TAIL(&q.attempts, a, entry);
	a->m = m;
	a->duplicate = duplicate;
	a->retried = m->retried;
	m->attempts++;
	q.st.deliveries++;
	if (duplicate)
		q.st.duplicates++;
	m->inflight++;
	q.inflight++;
	if (strncmp(m->dest, "http://", 7) != 0 ||
	    (u = evhttp_uri_parse(m->dest)) == NULL) {
		attempt_done(NULL, a);	/* https: not spoken here */
		return false;
	}
	host = evhttp_uri_get_host(u);
	port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
	path = evhttp_uri_get_path(u);
	query = evhttp_uri_get_query(u);
	c = evhttp_connection_base_new(q.base, NULL, host, (ev_uint16_t)port);
	if (c == NULL || (req = evhttp_request_new(attempt_done, a)) == NULL)
		fatalx("qstash: cannot set up a delivery to '%s'",
		    log_q(m->dest));
	evhttp_connection_set_timeout(c, (int)q.k.timeout_s);
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
	int64_t now = now_ms(), soonest = INT64_MAX;
	bool twice;

	for (m = TAILQ_FIRST(&q.active); m != NULL; m = next) {
		next = TAILQ_NEXT(m, active);
		if (m->inflight > 0)
			continue;
		if (m->next_ms > now) {
			if (m->next_ms < soonest)
				soonest = m->next_ms;
			continue;
		}
		if (q.inflight >= q.k.parallel)
			return;	/* attempt_done() arms again */
		twice = false;
		if (m->attempts == 0 && q.k.duplicate > 0) {
			q.k.duplicate--;
			if (q.k.dup_concurrent)
				twice = true;
			else
				m->dup_left++;
		}
		if (send_attempt(m, false) && twice)
			send_attempt(m, true);
	}
	if (soonest == INT64_MAX)
		return;
	if (q.scale == 0)
		arm(1000);	/* a stopped clock moves by qstash_advance */
	else
		arm((uint64_t)(soonest - now) / q.scale + 1);
}

/* Run tick() in real_ms, or sooner if it is already due sooner. */
static void
arm(uint64_t real_ms)
{
	struct timeval tv, left, now;

	if (real_ms > 1000)
		real_ms = 1000;	/* pick up clock changes */
	tv = clock_timeval_ms(real_ms);
	if (evtimer_pending(q.timer, &left)) {
		event_base_gettimeofday_cached(q.base, &now);
		timersub(&left, &now, &left);
		if (timercmp(&left, &tv, <=))
			return;
	}
	evtimer_add(q.timer, &tv);
}

/* --- routes, inspection ------------------------------------------------ */

bool
services_route(struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const char *uri = evhttp_request_get_uri(req);

	if (strncmp(path, "/v2/publish/", 12) == 0) {
		/* The destination is appended raw, query and all. */
		publish(req, strstr(uri, "/v2/publish/") + 12);
		return true;
	}
	if (strncmp(path, "/v2/messages/", 13) == 0 && path[13] != '\0' &&
	    cmd == EVHTTP_REQ_DELETE) {
		cancel(req, path + 13);
		return true;
	}
	if (strcmp(path, "/v2/messages") == 0 && cmd == EVHTTP_REQ_DELETE) {
		cancel_bulk(req);
		return true;
	}
	if (strncmp(path, "/v2/", 4) == 0) {
		reply_error(req, 404, "not found");
		return true;
	}
	if (strcmp(path, "/call") == 0) {
		vapi_call(req);
		return true;
	}
	return false;
}

/* The body as a string, or {"base64url": ...} when it is not UTF-8. */
static json_t *
body_json(const struct msg *m)
{
	json_t *j;
	char *enc;

	if ((j = json_stringn(m->body, m->len)) != NULL)
		return j;
	enc = xmalloc(BASE64URL_LEN(m->len) + 1);
	base64url_encode(m->body, m->len, enc);
	j = json_pack("{s:s}", "base64url", enc);
	free(enc);
	return j;
}

static json_t *
msg_json(const struct msg *m)
{
	return json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:i,s:i,s:i,s:i,s:s?,"
	    "s:o,s:O,s:O,s:O}",
	    "id", m->id,
	    "destination", m->dest,
	    "method", m->method,
	    "created", (json_int_t)(m->created_ms / 1000),
	    "not_before", (json_int_t)(m->not_before_ms / 1000),
	    "next_attempt", (json_int_t)(m->next_ms / 1000),
	    "state", state_names[m->state],
	    "attempts", (int)m->attempts,
	    "retried", (int)m->retried,
	    "retries", (int)m->retries,
	    "last_status", m->last_status,
	    "dedup_id", m->dedup,
	    "body", body_json(m),
	    "headers", m->received,
	    "forward", m->forward,
	    "history", m->history);
}

void
qstash_inspect(struct evkeyvalq *query, struct evbuffer *b)
{
	const char *want_state = evhttp_find_header(query, "state");
	const char *want_id = evhttp_find_header(query, "id");
	const char *want_dest = evhttp_find_header(query, "destination");
	json_t *list = json_array(), *j;
	struct msg *m;

	TAILQ_FOREACH(m, &q.all, all) {
		if ((want_state != NULL &&
		    strcmp(want_state, state_names[m->state]) != 0) ||
		    (want_id != NULL && strcmp(want_id, m->id) != 0) ||
		    (want_dest != NULL && strcmp(want_dest, m->dest) != 0))
			continue;
		json_array_append_new(list, msg_json(m));
	}
	j = json_pack("{s:I,s:I,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
	    "s:I,s:I,s:I,s:I,s:I},s:o}",
	    "now", (json_int_t)(now_ms() / 1000),
	    "clock_scale", (json_int_t)q.scale,
	    "stats",
	    "publishes", (json_int_t)q.st.publishes,
	    "published", (json_int_t)q.st.published,
	    "deduplicated", (json_int_t)q.st.deduplicated,
	    "unauthorized", (json_int_t)q.st.unauthorized,
	    "bad_requests", (json_int_t)q.st.bad_requests,
	    "429", (json_int_t)q.st.r429,
	    "5xx", (json_int_t)q.st.r5xx,
	    "closed", (json_int_t)q.st.closed,
	    "deliveries", (json_int_t)q.st.deliveries,
	    "delivered", (json_int_t)q.st.delivered,
	    "retries", (json_int_t)q.st.retries,
	    "failed", (json_int_t)q.st.failed,
	    "cancelled", (json_int_t)q.st.cancelled,
	    "duplicates", (json_int_t)q.st.duplicates,
	    "pending", (json_int_t)(q.st.published - q.st.delivered -
	    q.st.failed - q.st.cancelled),
	    "messages", list);
	services_dump(b, j);
}

/* --- control ----------------------------------------------------------- */

int
services_json_u64(json_t *v, uint64_t max, uint64_t *ret)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return -EINVAL;
	*ret = (uint64_t)json_integer_value(v);
	return 0;
}

int
services_json_rate(json_t *v, uint64_t *ret)
{
	double d;

	if (!json_is_number(v) || !((d = json_number_value(v)) >= 0.0 &&
	    d <= 1.0))
		return -EINVAL;
	*ret = (uint64_t)(d * 1e6 + 0.5);
	return 0;
}

static int
get_key(json_t *v, char out[KEY_MAX])
{
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) >= KEY_MAX)
		return -EINVAL;
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int
stage_one(struct qstage *s, const char *key, json_t *v)
{
	struct qknobs *k = &s->k;
	const char *str = json_string_value(v);
	uint64_t n;
	size_t i;

	if (strcmp(key, "qstash_clock_scale") == 0) {
		s->scale_set = true;
		return services_json_u64(v, 1000000, &s->scale);
	}
	if (strcmp(key, "qstash_advance") == 0)
		return services_json_u64(v, 10ULL * 365 * 86400, &s->advance_s);
	if (strcmp(key, "qstash_reset") == 0) {
		s->reset = json_is_true(v);
		return json_is_boolean(v) ? 0 : -EINVAL;
	}
	if (strcmp(key, "qstash_fail_next") == 0)
		return services_json_u64(v, 1000000, &k->fail_next);
	if (strcmp(key, "qstash_fail_code") == 0) {
		if (services_json_u64(v, 599, &n) != 0 || (n != 429 && n < 500))
			return -EINVAL;
		k->fail_code = n;
		return 0;
	}
	if (strcmp(key, "qstash_rate_429") == 0)
		return services_json_rate(v, &k->rate_429);
	if (strcmp(key, "qstash_rate_5xx") == 0)
		return services_json_rate(v, &k->rate_5xx);
	if (strcmp(key, "qstash_retry_after") == 0)
		return services_json_u64(v, 86400, &k->retry_after);
	if (strcmp(key, "qstash_slow_ms") == 0)
		return services_json_u64(v, 600000, &k->slow_ms);
	if (strcmp(key, "qstash_duplicate") == 0)
		return services_json_u64(v, 1000000, &k->duplicate);
	if (strcmp(key, "qstash_duplicate_concurrent") == 0) {
		k->dup_concurrent = json_is_true(v);
		return json_is_boolean(v) ? 0 : -EINVAL;
	}
	if (strcmp(key, "qstash_down") == 0) {
		if (json_is_boolean(v))
			k->down = json_is_true(v) ? DOWN_503 : DOWN_NO;
		else if (str != NULL && strcmp(str, "503") == 0)
			k->down = DOWN_503;
		else if (str != NULL && strcmp(str, "close") == 0)
			k->down = DOWN_CLOSE;
		else
			return -EINVAL;
		return 0;
	}
	if (strcmp(key, "qstash_sign") == 0) {
		for (i = 0; str != NULL && i < sizeof(sign_names) /
		    sizeof(sign_names[0]); i++) {
			if (strcmp(str, sign_names[i]) == 0) {
				k->sign = (enum sign_mode)i;
				return 0;
			}
		}
		return -EINVAL;
	}
	if (strcmp(key, "qstash_sign_skew") == 0) {
		if (!json_is_integer(v) || json_integer_value(v) > 86400 * 30 ||
		    json_integer_value(v) < -86400 * 30)
			return -EINVAL;
		k->sign_skew = (int64_t)json_integer_value(v);
		return 0;
	}
	if (strcmp(key, "qstash_roll_keys") == 0) {
		/* current := next, next := the new key given. */
		memcpy(k->current_key, k->next_key, KEY_MAX);
		return get_key(v, k->next_key);
	}
	if (strcmp(key, "qstash_timeout_s") == 0)
		return services_json_u64(v, 900, &k->timeout_s) == 0 &&
		    k->timeout_s > 0 ? 0 : -EINVAL;
	if (strcmp(key, "qstash_dedup_window_s") == 0)
		return services_json_u64(v, 90ULL * 86400, &k->dedup_window_s);
	if (strcmp(key, "qstash_max_retries") == 0)
		return services_json_u64(v, 100, &k->max_retries);
	if (strcmp(key, "qstash_parallel") == 0)
		return services_json_u64(v, 10000, &k->parallel) == 0 &&
		    k->parallel > 0 ? 0 : -EINVAL;
	return -ENOENT;
}

int
services_control_begin(const char *text, size_t len, struct buf *err,
    char **ret_rest)
{
	json_error_t jerr;
	json_t *top, *rest = NULL, *v;
	const char *key;
	char *s;
	int r = 0;

	services_control_end(false);
	top = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (top == NULL || !json_is_object(top)) {
		buf_printf(err, "control: not a JSON object");
		r = -EINVAL;
		goto out;
	}
	q.stage = xcalloc(1, sizeof(*q.stage));
	q.stage->k = q.k;
	rest = json_object();
	json_object_foreach(top, key, v) {
		if (strncmp(key, "qstash_", 7) == 0)
			r = stage_one(q.stage, key, v);
		else if (strncmp(key, "vapi_", 5) == 0)
			r = vapi_control_stage(key, v);
		else {
			json_object_set(rest, key, v);
			continue;
		}
		if (r != 0) {
			/* Our knob names are ours; quoting them is safe. */
			buf_printf(err, "control: %s knob '%s'", r == -ENOENT ?
			    "unknown" : "bad value for", log_q(key));
			goto out;
		}
	}
	if ((s = json_dumps(rest, JSON_COMPACT)) == NULL)
		fatalx("out of memory");
	*ret_rest = s;
out:
	if (r != 0)
		services_control_end(false);
	json_decref(rest);
	json_decref(top);
	return r;
}

static void
reset_all(void)
{
	struct msg *m;

	while ((m = TAILQ_FIRST(&q.all)) != NULL) {
		TAILQ_REMOVE(&q.all, m, all);
		if (m->state == MSG_PENDING)
			TAILQ_REMOVE(&q.active, m, active);
		/* An attempt on the wire still points at it: keep it. */
		if (m->inflight > 0) {
			m->orphan = true;
			continue;
		}
		msg_free(m);
	}
	memset(q.by_id, 0, sizeof(q.by_id));
	memset(q.by_dedup, 0, sizeof(q.by_dedup));
	memset(&q.st, 0, sizeof(q.st));
	q.nmsgs = 0;
}

void
services_control_end(bool apply)
{
	struct qstage *s = q.stage;

	vapi_control_end(apply);
	q.stage = NULL;
	if (s == NULL)
		return;
	if (apply) {
		q.k = s->k;
		if (s->scale_set)
			set_scale(s->scale);
		q.sim0_ms += (int64_t)s->advance_s * 1000;
		if (s->reset)
			reset_all();
		arm(0);
	}
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

void
services_init(struct event_base *base, const struct services_opts *o)
{
	memset(&q, 0, sizeof(q));
	q.base = base;
	q.token = o->qstash_token;
	TAILQ_INIT(&q.all);
	TAILQ_INIT(&q.active);
	q.k.fail_code = 500;
	q.k.retry_after = 1;
	q.k.timeout_s = 30;
	q.k.dedup_window_s = 600;
	q.k.max_retries = 5;
	q.k.parallel = 100;
	if (strlen(o->current_key) >= KEY_MAX ||
	    strlen(o->next_key) >= KEY_MAX)
		fatalx("qstash: signing keys over %d bytes", KEY_MAX - 1);
	snprintf(q.k.current_key, KEY_MAX, "%s", o->current_key);
	snprintf(q.k.next_key, KEY_MAX, "%s", o->next_key);
	q.sim0_ms = clock_wall_ms();
	q.mono0 = clock_mono_ms();
	q.scale = o->clock_scale;
	TAILQ_INIT(&q.attempts);
	if ((q.timer = evtimer_new(base, tick, NULL)) == NULL ||
	    (q.reaper = evtimer_new(base, reap, NULL)) == NULL)
		fatalx("out of memory");
	vapi_init(o->vapi_key);
}

void
services_free(void)
{
	struct delayed *d;
	struct attempt *a;
	struct msg *m;

	/* Answer what is still delayed, so no request is left behind. */
	while ((d = TAILQ_FIRST(&delayeds)) != NULL) {
		TAILQ_REMOVE(&delayeds, d, entry);
		evbuffer_drain(d->body, evbuffer_get_length(d->body));
		send_reply(d->req, 503, d->body);
		evbuffer_free(d->body);
		event_free(d->timer);
		free(d);
	}
	/* Attempts still on the wire: evhttp drops them without a callback. */
	while ((a = TAILQ_FIRST(&q.attempts)) != NULL) {
		TAILQ_REMOVE(&q.attempts, a, entry);
		if (a->conn != NULL)
			evhttp_connection_free(a->conn);
		if (!a->done && a->m->orphan && --a->m->inflight == 0)
			msg_free(a->m);
		free(a);
	}
	while ((m = TAILQ_FIRST(&q.all)) != NULL) {
		TAILQ_REMOVE(&q.all, m, all);
		msg_free(m);
	}
	services_control_end(false);
	if (q.timer != NULL)
		event_free(q.timer);
	if (q.reaper != NULL)
		event_free(q.reaper);
	OPENSSL_cleanse(&q.k, sizeof(q.k));
	vapi_free();
}
