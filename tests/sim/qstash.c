/*
 * The simulator's QStash v2 (CONTRACTS §1), for vetsync's discharge calls:
 * POST /v2/publish/<destination URL, raw> with a bearer token, delays
 * (Upstash-Delay, Upstash-Not-Before), deduplication (202 with the first
 * message's id within the window, by Upstash-Deduplication-Id or by
 * content), Upstash-Retries and Upstash-Forward-*; DELETE
 * /v2/messages/<id> (404 once delivered or unknown) and the bulk form,
 * which with no ids cancels everything, as QStash's does.  Delivery is in
 * qstash_deliver.c.
 *
 * The publish side fails on request: 429 (with Burst-RateLimit-* and
 * Retry-After) or 5xx for the next N publishes or a fraction, down (503,
 * or the connection closed without an answer), and slow answers.  Knobs
 * arrive staged from services.c and apply all at once.
 *
 * Each message counts the publishes answered with its id
 * (publish_requests in /__sim/qstash: 1, plus one per 202), so a test
 * sees a publish sent twice although deduplication hides it.
 *
 * Deliberate limits: no callbacks, queues, schedules, Upstash-Retry-Delay,
 * Upstash-Timeout or flow control; those headers are kept, not obeyed.
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

#include "common/base64.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/sha256.h"
#include "common/xmalloc.h"

#include "tests/sim/services.h"
#include "tests/sim/qstash.h"
#include "tests/sim/sim.h"

#define DEDUP_ID_MAX		512

static const char *const state_names[] = {
	"pending", "delivered", "failed", "cancelled",
};

static const char *const sign_names[] = {
	"current", "next", "unknown", "corrupt",
};

struct qstash qs;

int64_t
qstash_now_ms(void)
{
	return qs.sim0_ms + (int64_t)((clock_mono_ms() - qs.mono0) * qs.scale);
}

static void
set_scale(uint64_t scale)
{
	qs.sim0_ms = qstash_now_ms();
	qs.mono0 = clock_mono_ms();
	qs.scale = scale;
}

static void
reply_json(struct evhttp_request *req, int code, json_t *j)
{
	services_reply_json(req, code, j, qs.k.slow_ms);
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

	log_info("%s %s: connection closed (qstash_down)", services_method(req),
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

	for (m = qs.by_id[hash(id)]; m != NULL; m = m->id_next)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

/* The newest message with that dedup id inside the window, or NULL. */
static struct msg *
find_dedup(const char *dedup)
{
	struct msg *m;
	int64_t since = qstash_now_ms() - (int64_t)qs.k.dedup_window_s * 1000;

	for (m = qs.by_dedup[hash(dedup)]; m != NULL; m = m->dedup_next)
		if (strcmp(m->dedup, dedup) == 0 && m->created_ms >= since)
			return m;
	return NULL;
}

void
qstash_random_id(char *out, size_t n, const char *prefix)
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

void
qstash_msg_free(struct msg *m)
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

void
qstash_finish(struct msg *m, enum msg_state state)
{
	if (m->state == MSG_PENDING)
		TAILQ_REMOVE(&qs.active, m, active);
	m->state = state;
	if (state == MSG_DELIVERED)
		qs.st.delivered++;
	else if (state == MSG_FAILED)
		qs.st.failed++;
	else if (state == MSG_CANCELLED)
		qs.st.cancelled++;
}

/*
 * "<n><unit>..." with units s, m, h, d ("1d10h30m"), as Upstash-Delay
 * takes them; the common parser also knows ms and w, which QStash does not.
 */
int
qstash_parse_delay(const char *s, uint64_t *ret_ms)
{
	const char *p;

	if (*s == '\0' || strstr(s, "ms") != NULL || strchr(s, 'w') != NULL)
		return -EINVAL;
	p = s + strlen(s) - 1;
	if (*p != 's' && *p != 'm' && *p != 'h' && *p != 'd')
		return -EINVAL;
	return parse_duration_ms(s, ret_ms);
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
	    strlen(a + 7) == strlen(qs.token) &&
	    CRYPTO_memcmp(a + 7, qs.token, strlen(qs.token)) == 0;
}

/* The failure knobs of the API itself; true when one answered. */
static bool
api_failure(struct evhttp_request *req, bool publish)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	char v[32];
	int code = 0;

	if (qs.k.down == DOWN_CLOSE) {
		qs.st.closed++;
		close_connection(req);
		return true;
	}
	if (qs.k.down == DOWN_503) {
		qs.st.r5xx++;
		reply_error(req, 503, "service unavailable");
		return true;
	}
	if (!publish)
		return false;
	if (qs.k.fail_next > 0) {
		qs.k.fail_next--;
		code = (int)qs.k.fail_code;
	} else if (qs.k.rate_429 > 0 && draw_micro() < qs.k.rate_429)
		code = 429;
	else if (qs.k.rate_5xx > 0 && draw_micro() < qs.k.rate_5xx)
		code = 500;
	if (code == 0)
		return false;
	if (code == 429) {
		qs.st.r429++;
		evhttp_add_header(out, "Burst-RateLimit-Limit", "100");
		evhttp_add_header(out, "Burst-RateLimit-Remaining", "0");
		snprintf(v, sizeof(v), "%lld", (long long)(time(NULL) +
		    (time_t)qs.k.retry_after));
		evhttp_add_header(out, "Burst-RateLimit-Reset", v);
		snprintf(v, sizeof(v), "%llu",
		    (unsigned long long)qs.k.retry_after);
		evhttp_add_header(out, "Retry-After", v);
		reply_error(req, 429, "too many requests");
	} else {
		qs.st.r5xx++;
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
		if (qstash_parse_delay(v, &n) != 0 || n > 365ULL * 86400 * 1000)
			return "invalid Upstash-Delay: want <n>s|m|h|d";
		m->not_before_ms = now + (int64_t)n;
	}
	if ((v = header_in(req, "Upstash-Not-Before")) != NULL) {
		if (parse_u64(v, &n) != 0 || n > (uint64_t)INT32_MAX * 2)
			return "invalid Upstash-Not-Before: want Unix seconds";
		m->not_before_ms = (int64_t)n * 1000;
	}
	m->retries = qs.k.max_retries < 3 ? (unsigned int)qs.k.max_retries : 3;
	if ((v = header_in(req, "Upstash-Retries")) != NULL) {
		if (parse_u64(v, &n) != 0 || n > 100)
			return "invalid Upstash-Retries";
		m->retries = (unsigned int)(n < qs.k.max_retries ? n :
		    qs.k.max_retries);
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

void
qstash_publish(struct evhttp_request *req, const char *dest)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evhttp_connection *c = evhttp_request_get_connection(req);
	struct msg *m, *dup;
	const char *what;
	char *host = NULL;
	ev_uint16_t port = 0;
	int64_t now = qstash_now_ms();
	unsigned int h;

	qs.st.publishes++;
	if (api_failure(req, false))
		return;
	if (!authorized(req)) {
		qs.st.unauthorized++;
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
		qs.st.bad_requests++;
		reply_error(req, 400, "invalid destination url: want "
		    "http(s)://host/path");
		return;
	}
	if (qs.nmsgs >= MSG_MAX) {
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
		qs.st.bad_requests++;
		reply_error(req, 400, what);
		qstash_msg_free(m);
		return;
	}
	if (m->dedup != NULL && (dup = find_dedup(m->dedup)) != NULL) {
		qs.st.deduplicated++;
		dup->requests++;
		reply_json(req, 202, json_pack("{s:s,s:b}", "messageId",
		    dup->id, "deduplicated", 1));
		qstash_msg_free(m);
		return;
	}
	do
		qstash_random_id(m->id, MSG_ID_LEN, "msg_");
	while (find_id(m->id) != NULL);
	if (c != NULL)
		evhttp_connection_get_peer(c, &host, &port);
	m->caller = xstrdup(host != NULL ? host : "");
	m->created_ms = now;
	m->next_ms = m->not_before_ms;
	m->requests = 1;
	h = hash(m->id);
	m->id_next = qs.by_id[h];
	qs.by_id[h] = m;
	if (m->dedup != NULL) {
		h = hash(m->dedup);
		m->dedup_next = qs.by_dedup[h];
		qs.by_dedup[h] = m;
	}
	TAILQ_INSERT_TAIL(&qs.all, m, all);
	TAILQ_INSERT_TAIL(&qs.active, m, active);
	qs.nmsgs++;
	qs.st.published++;
	reply_json(req, 200, json_pack("{s:s,s:s}", "messageId", m->id, "url",
	    m->dest));
	qstash_arm(0);
}

void
qstash_cancel(struct evhttp_request *req, const char *id)
{
	struct msg *m;

	if (api_failure(req, false))
		return;
	if (!authorized(req)) {
		qs.st.unauthorized++;
		reply_error(req, 401, "unauthorized: missing or invalid bearer "
		    "token");
		return;
	}
	/* Delivered messages are deleted soon after: gone, as QStash says. */
	if ((m = find_id(id)) == NULL || m->state != MSG_PENDING) {
		reply_error(req, 404, "message not found");
		return;
	}
	qstash_finish(m, MSG_CANCELLED);
	reply_json(req, 200, json_object());
}

/* DELETE /v2/messages?messageIds=a&messageIds=b; none: every message. */
void
qstash_cancel_bulk(struct evhttp_request *req)
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
		qs.st.unauthorized++;
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
			qstash_finish(m, MSG_CANCELLED);
			n++;
		}
	}
	if (!any) {
		while ((m = TAILQ_FIRST(&qs.active)) != NULL) {
			qstash_finish(m, MSG_CANCELLED);
			n++;
		}
	}
	evhttp_clear_headers(&params);
	reply_json(req, 200, json_pack("{s:I}", "cancelled", n));
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
	    "s:o,s:O,s:O,s:O,s:i}",
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
	    "history", m->history,
	    "publish_requests", (int)m->requests);
}

/* The knobs as they are, keys left out. */
static json_t *
knobs_json(void)
{
	static const char *const downs[] = { "no", "503", "close" };

	return json_pack("{s:I,s:I,s:f,s:f,s:I,s:I,s:I,s:b,s:s,s:s,s:I,s:I,"
	    "s:I,s:I,s:I}",
	    "fail_next", (json_int_t)qs.k.fail_next,
	    "fail_code", (json_int_t)qs.k.fail_code,
	    "rate_429", qs.k.rate_429 / 1e6,
	    "rate_5xx", qs.k.rate_5xx / 1e6,
	    "retry_after", (json_int_t)qs.k.retry_after,
	    "slow_ms", (json_int_t)qs.k.slow_ms,
	    "duplicate", (json_int_t)qs.k.duplicate,
	    "duplicate_concurrent", qs.k.dup_concurrent,
	    "down", downs[qs.k.down],
	    "sign", sign_names[qs.k.sign],
	    "sign_skew", (json_int_t)qs.k.sign_skew,
	    "timeout_s", (json_int_t)qs.k.timeout_s,
	    "dedup_window_s", (json_int_t)qs.k.dedup_window_s,
	    "max_retries", (json_int_t)qs.k.max_retries,
	    "parallel", (json_int_t)qs.k.parallel);
}

void
qstash_inspect(struct evkeyvalq *query, struct evbuffer *b)
{
	const char *want_state = evhttp_find_header(query, "state");
	const char *want_id = evhttp_find_header(query, "id");
	const char *want_dest = evhttp_find_header(query, "destination");
	const char *with = evhttp_find_header(query, "messages");
	json_t *list = json_array(), *j;
	struct msg *m;

	TAILQ_FOREACH(m, &qs.all, all) {
		if ((with != NULL && strcmp(with, "0") == 0) ||
		    (want_state != NULL &&
		    strcmp(want_state, state_names[m->state]) != 0) ||
		    (want_id != NULL && strcmp(want_id, m->id) != 0) ||
		    (want_dest != NULL && strcmp(want_dest, m->dest) != 0))
			continue;
		json_array_append_new(list, msg_json(m));
	}
	j = json_pack("{s:I,s:I,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
	    "s:I,s:I,s:I,s:I,s:I},s:o}",
	    "now", (json_int_t)(qstash_now_ms() / 1000),
	    "clock_scale", (json_int_t)qs.scale,
	    "stats",
	    "publishes", (json_int_t)qs.st.publishes,
	    "published", (json_int_t)qs.st.published,
	    "deduplicated", (json_int_t)qs.st.deduplicated,
	    "unauthorized", (json_int_t)qs.st.unauthorized,
	    "bad_requests", (json_int_t)qs.st.bad_requests,
	    "429", (json_int_t)qs.st.r429,
	    "5xx", (json_int_t)qs.st.r5xx,
	    "closed", (json_int_t)qs.st.closed,
	    "deliveries", (json_int_t)qs.st.deliveries,
	    "delivered", (json_int_t)qs.st.delivered,
	    "retries", (json_int_t)qs.st.retries,
	    "failed", (json_int_t)qs.st.failed,
	    "cancelled", (json_int_t)qs.st.cancelled,
	    "duplicates", (json_int_t)qs.st.duplicates,
	    "pending", (json_int_t)(qs.st.published - qs.st.delivered -
	    qs.st.failed - qs.st.cancelled),
	    "messages", list);
	json_object_set_new(j, "knobs", knobs_json());
	services_dump(b, j);
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

static void
reset_all(void)
{
	struct msg *m;

	while ((m = TAILQ_FIRST(&qs.all)) != NULL) {
		TAILQ_REMOVE(&qs.all, m, all);
		if (m->state == MSG_PENDING)
			TAILQ_REMOVE(&qs.active, m, active);
		/* An attempt on the wire still points at it: keep it. */
		if (m->inflight > 0) {
			m->orphan = true;
			continue;
		}
		qstash_msg_free(m);
	}
	memset(qs.by_id, 0, sizeof(qs.by_id));
	memset(qs.by_dedup, 0, sizeof(qs.by_dedup));
	memset(&qs.st, 0, sizeof(qs.st));
	qs.nmsgs = 0;
}

int
qstash_control_stage(const char *key, json_t *v)
{
	if (qs.stage == NULL) {
		qs.stage = xcalloc(1, sizeof(*qs.stage));
		qs.stage->k = qs.k;
	}
	return stage_one(qs.stage, key, v);
}

void
qstash_control_end(bool apply)
{
	struct qstage *s = qs.stage;

	qs.stage = NULL;
	if (s == NULL)
		return;
	if (apply) {
		qs.k = s->k;
		if (s->scale_set)
			set_scale(s->scale);
		qs.sim0_ms += (int64_t)s->advance_s * 1000;
		if (s->reset)
			reset_all();
		qstash_arm(0);
	}
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

void
qstash_init(struct event_base *base, const struct services_opts *o)
{
	memset(&qs, 0, sizeof(qs));
	qs.base = base;
	qs.token = o->qstash_token;
	TAILQ_INIT(&qs.all);
	TAILQ_INIT(&qs.active);
	qs.k.fail_code = 500;
	qs.k.retry_after = 1;
	qs.k.timeout_s = 30;
	qs.k.dedup_window_s = 600;
	qs.k.max_retries = 5;
	qs.k.parallel = 100;
	if (strlen(o->current_key) >= KEY_MAX ||
	    strlen(o->next_key) >= KEY_MAX)
		fatalx("qstash: signing keys over %d bytes", KEY_MAX - 1);
	snprintf(qs.k.current_key, KEY_MAX, "%s", o->current_key);
	snprintf(qs.k.next_key, KEY_MAX, "%s", o->next_key);
	qs.sim0_ms = clock_wall_ms();
	qs.mono0 = clock_mono_ms();
	qs.scale = o->clock_scale;
	qstash_deliver_init();
}

void
qstash_free(void)
{
	struct msg *m;

	qstash_deliver_free();
	while ((m = TAILQ_FIRST(&qs.all)) != NULL) {
		TAILQ_REMOVE(&qs.all, m, all);
		qstash_msg_free(m);
	}
	qstash_control_end(false);
	OPENSSL_cleanse(&qs.k, sizeof(qs.k));
}
