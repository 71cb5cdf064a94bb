/*
 * Discharge calls: the outbox statement and the publisher (see
 * discharge.h); the delivery endpoint is discharge_deliver.c.
 *
 * The publisher is one loop: lease a batch of due rows, send each its
 * request (publish, or the DELETE of a message to cancel), record each
 * answer, and go again once the batch is recorded.  An empty lease waits
 * DISCHARGE_POLL_MS, or less when the outbox announces new rows on the
 * channel vetsync_discharge.
 */
#include <sys/random.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/audit.h"
#include "supervisor/config.h"
#include "supervisor/db.h"
#include "supervisor/discharge.h"
#include "supervisor/discharge_int.h"
#include "supervisor/discharge_rules.h"
#include "supervisor/events.h"
#include "supervisor/outbound.h"
#include "supervisor/secrets.h"
#include "supervisor/supervisor.h"

#define DISCHARGE_POLL_MS	2000
#define DISCHARGE_BATCH		16
#define DISCHARGE_LEASE_MS	60000
#define DISCHARGE_HTTP_MS	10000
/*
 * cancel_message_id of a call cancelled before anything was published:
 * nothing to DELETE, only the cancellation to audit.
 */
#define NOTHING_PUBLISHED	"-"
/*
 * cancel_message_id "dedup:<id>": a publish under that dedup id got no
 * answer (a timeout, a connection lost after the request went out), so
 * QStash may hold a message whose id we never learnt.  Publishing the
 * same dedup id again learns it (202 with the existing id, or 200 with a
 * new one), and that message is then DELETEd.  last_error's maybe_sent
 * marks a pending row in that state until a publish of it succeeds.
 */
#define MAYBE_SENT		"dedup:"
#define MAYBE_SENT_LEN		(sizeof(MAYBE_SENT) - 1)
#define MAYBE_SENT_SQL(d)	"CASE WHEN (" d ".last_error->>'maybe_sent')" \
    "::boolean THEN '" MAYBE_SENT "' || " d ".dedup_id END"

struct discharge_state ds;

/* One leased row on its way to QStash. */
struct publish {
	char id[37];
	char user[37];
	char consultation[256];
	char dedup[DISCHARGE_TOKEN_MAX + 1];
	char cancel[DISCHARGE_TOKEN_MAX + 1];	/* "": publish */
	char probe[MAYBE_SENT_LEN + DISCHARGE_TOKEN_MAX + 1];	/* see above */
	int64_t not_before;
	unsigned attempts;
};

/*
 * $1 user, $2 the records, $3 discharge.delay in ms.  The CTEs see the
 * rows as they were before the statement, so ins, resched and cancel
 * never touch one row twice.
 */
static const char sql_outbox[] =
    "WITH input AS ("
    " SELECT DISTINCT ON (x.cid) x.cid, x.pname, x.phone,"
    "  CASE WHEN x.completed THEN x.date_utc END AS done_at"
    " FROM jsonb_to_recordset($2::jsonb) AS x(cid text, pname text,"
    "  phone text, completed boolean, date_utc timestamptz)"
    " WHERE x.cid IS NOT NULL ORDER BY x.cid),"
    "cfg AS (SELECT coalesce((SELECT u.discharge_delay FROM users u"
    "  WHERE u.id = $1::uuid), $3::bigint * interval '1 millisecond')"
    "  AS delay),"
    "want AS ("
    " SELECT i.cid, i.pname, i.phone, i.done_at + cfg.delay AS due,"
    "  'discharge-' || $1 || '-' || CASE WHEN i.cid ~ '^[A-Za-z0-9._-]{1,64}$'"
    "   THEN i.cid ELSE md5(i.cid) END || '-' ||"
    "   floor(extract(epoch FROM i.done_at + cfg.delay))::bigint AS dedup,"
    "  s.case_id"
    " FROM input i CROSS JOIN cfg"
    " LEFT JOIN consultation_sync_status s ON s.user_id = $1::uuid"
    "  AND s.consultation_id = i.cid"
    " WHERE i.done_at IS NOT NULL),"
    "cur AS ("
    " SELECT d.id, d.consultation_id FROM scheduled_discharge_calls d"
    " JOIN input i ON i.cid = d.consultation_id WHERE d.user_id = $1::uuid),"
    "ins AS ("
    " INSERT INTO scheduled_discharge_calls (user_id, case_id,"
    "  consultation_id, scheduled_for, dedup_id, customer_phone, pet_name)"
    " SELECT $1::uuid, w.case_id, w.cid, w.due, w.dedup, w.phone, w.pname"
    " FROM want w WHERE NOT EXISTS (SELECT 1 FROM cur"
    "  WHERE cur.consultation_id = w.cid)"
    " ON CONFLICT DO NOTHING RETURNING id, consultation_id),"
    "resched AS ("
    " UPDATE scheduled_discharge_calls d SET scheduled_for = w.due,"
    "  dedup_id = w.dedup || '-g' ||"
    "   floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint,"
    "  status = 'pending',"
    "  cancel_message_id = coalesce(d.qstash_message_id,"
    "   d.cancel_message_id, " MAYBE_SENT_SQL("d") "),"
    "  qstash_message_id = NULL, next_attempt_at = now(),"
    "  customer_phone = w.phone, pet_name = w.pname,"
    "  case_id = coalesce(w.case_id, d.case_id), last_error = NULL"
    " FROM want w WHERE d.user_id = $1::uuid AND d.consultation_id = w.cid"
    " AND (d.status = 'cancelled' OR (d.status IN ('pending', 'published')"
    "  AND d.scheduled_for IS DISTINCT FROM w.due))"
    " RETURNING d.id),"
    "cancel AS ("
    " UPDATE scheduled_discharge_calls d SET status = 'cancelled',"
    "  cancel_message_id = coalesce(d.qstash_message_id,"
    "   d.cancel_message_id, " MAYBE_SENT_SQL("d") ","
    "   '" NOTHING_PUBLISHED "'),"
    "  last_error = d.last_error - 'maybe_sent',"
    "  qstash_message_id = NULL, next_attempt_at = now()"
    " FROM input i WHERE d.user_id = $1::uuid AND d.consultation_id = i.cid"
    " AND i.done_at IS NULL AND d.status IN ('pending', 'published')"
    " RETURNING d.id),"
    "link AS ("
    " UPDATE consultation_sync_status s SET discharge_call_id = c.id,"
    "  discharge_call_scheduled = true"
    " FROM (SELECT id, consultation_id FROM ins UNION ALL"
    "  SELECT id, consultation_id FROM cur) c"
    " WHERE s.user_id = $1::uuid AND s.consultation_id = c.consultation_id"
    " AND (s.discharge_call_id IS DISTINCT FROM c.id"
    "  OR s.discharge_call_scheduled IS NOT TRUE)"
    " RETURNING 1)"
    "SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM resched),"
    " (SELECT count(*) FROM cancel), (SELECT count(*) FROM link),"
    " CASE WHEN EXISTS (SELECT 1 FROM ins) OR EXISTS (SELECT 1 FROM resched)"
    "  OR EXISTS (SELECT 1 FROM cancel)"
    "  THEN pg_notify('vetsync_discharge', '') END";

/* $1 instance, $2 lease in ms, $3 batch size. */
static const char sql_lease[] =
    "UPDATE scheduled_discharge_calls d SET lease_until = now() +"
    " $2::bigint * interval '1 millisecond', leased_by = $1"
    " FROM (SELECT id FROM scheduled_discharge_calls"
    "  WHERE (status = 'pending' OR cancel_message_id IS NOT NULL)"
    "  AND next_attempt_at <= now()"
    "  AND (lease_until IS NULL OR lease_until < now())"
    "  ORDER BY next_attempt_at LIMIT $3::int FOR UPDATE SKIP LOCKED) c"
    " WHERE d.id = c.id"
    " RETURNING d.id, d.user_id, d.consultation_id, d.dedup_id,"
    " floor(extract(epoch FROM d.scheduled_for))::bigint, d.status,"
    " d.cancel_message_id, d.attempts";

/* At start: this instance's leases belong to a run that is gone. */
static const char sql_unlease[] =
    "UPDATE scheduled_discharge_calls SET lease_until = NULL,"
    " leased_by = NULL WHERE leased_by = $1";

/*
 * Published: $1 id, $2 message id, $3 the dedup id sent.  When the row
 * changed meanwhile (cancelled, rescheduled), the message just published
 * is one to cancel.
 */
static const char sql_published[] =
    "WITH pub AS ("
    " UPDATE scheduled_discharge_calls SET status = 'published',"
    "  qstash_message_id = $2, attempts = attempts + 1, last_error = NULL,"
    "  lease_until = NULL, leased_by = NULL"
    " WHERE id = $1::uuid AND status = 'pending' AND dedup_id = $3"
    " RETURNING id),"
    "stale AS ("
    " UPDATE scheduled_discharge_calls SET cancel_message_id = $2,"
    "  next_attempt_at = now(), lease_until = NULL, leased_by = NULL"
    " WHERE id = $1::uuid AND NOT EXISTS (SELECT 1 FROM pub)"
    " AND (status = 'cancelled' OR dedup_id <> $3)"
    " AND qstash_message_id IS DISTINCT FROM $2"
    " RETURNING id)"
    "SELECT (SELECT count(*) FROM pub), (SELECT count(*) FROM stale)";

/*
 * Not now: $1 id, $2 wait in ms, $3 the error, $4 the dedup id sent, $5
 * whether that publish may have reached QStash (no answer).  A row that
 * changed meanwhile then has that dedup id's message, if any, to cancel;
 * one that did not stays maybe_sent until a publish of it succeeds.
 */
static const char sql_retry[] =
    "UPDATE scheduled_discharge_calls SET attempts = attempts + 1,"
    " next_attempt_at = now() + $2::bigint * interval '1 millisecond',"
    " last_error = CASE WHEN status = 'pending' AND dedup_id = $4"
    "  AND ($5::boolean OR (last_error->>'maybe_sent')::boolean)"
    "  THEN $3::jsonb || '{\"maybe_sent\": true}' ELSE $3::jsonb END,"
    " cancel_message_id = CASE WHEN $5::boolean"
    "  AND (status = 'cancelled' OR dedup_id <> $4)"
    "  AND coalesce(cancel_message_id, '" NOTHING_PUBLISHED "') = '"
    NOTHING_PUBLISHED "' THEN '" MAYBE_SENT "' || $4"
    "  ELSE cancel_message_id END,"
    " lease_until = NULL, leased_by = NULL"
    " WHERE id = $1::uuid";

/* Refused for good: $1 id, $2 the error. */
static const char sql_failed[] =
    "UPDATE scheduled_discharge_calls SET status = 'failed',"
    " attempts = attempts + 1, last_error = $2::jsonb, lease_until = NULL,"
    " leased_by = NULL WHERE id = $1::uuid AND status = 'pending'";

/* The message $2 is gone from QStash. */
static const char sql_cancelled[] =
    "UPDATE scheduled_discharge_calls SET cancel_message_id = NULL,"
    " lease_until = NULL, leased_by = NULL"
    " WHERE id = $1::uuid AND cancel_message_id = $2";

static void pump(void);

bool
discharge_enabled(void)
{
	return ds.enabled;
}

void
discharge_outbox_add(struct db_unit *u, const char *user,
    const char *records)
{
	char delay[24];
	const char *p[3];

	if (!ds.enabled || u == NULL || records == NULL)
		return;
	snprintf(delay, sizeof(delay), "%" PRIu64, ds.delay_ms);
	p[0] = user;
	p[1] = records;
	p[2] = delay;
	(void)db_unit_add_prepared(u, sql_outbox, 3, p);
}

uint64_t
discharge_random(void)
{
	uint64_t r = 0;

	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = clock_mono_ns();
	return r;
}

/* A unit run as service_role: BEGIN, role, sql, COMMIT. */
struct db_unit *
discharge_service_unit(db_unit_rows_cb *cb, void *arg, const char *sql,
    int n, const char *const *p)
{
	struct db_unit *u = db_unit_new_rows(cb, arg);

	(void)db_unit_add(u, "BEGIN", 0, NULL);
	(void)db_unit_add(u, "SET LOCAL ROLE service_role", 0, NULL);
	(void)db_unit_add_prepared(u, sql, n, p);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	return u;
}

/* {"class": cls, "status": status, "detail": detail} as text. */
char *
discharge_error_json(const char *cls, long status, const char *detail)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "class", json_string(cls));
	if (status > 0)
		json_object_set_new(o, "status", json_integer(status));
	if (detail != NULL && detail[0] != '\0') {
		json_t *d = json_stringn_nocheck(detail, strnlen(detail, 300));

		if (d == NULL || json_string_value(d) == NULL)
			d = json_string("(not UTF-8)");
		json_object_set_new(o, "detail", d);
	}
	if ((s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		fatalx("out of memory");
	json_decref(o);
	return s;
}

void
discharge_audit(const char *event, const char *user, const char *status,
    const char *call, const char *consultation, json_t *more)
{
	struct audit_event e = { .event = event, .clinic = user,
	    .status = status };
	json_t *f = more != NULL ? more : json_object();

	if (call != NULL)
		json_object_set_new(f, "call", json_string(call));
	if (consultation != NULL) {
		json_t *c = json_string(consultation);

		if (c != NULL)
			json_object_set_new(f, "consultation", c);
	}
	(void)audit_emit(&e, f);
}

static void
arm(uint64_t ms)
{
	struct timeval tv = clock_timeval_ms(ms);

	if (ds.timer != NULL)
		evtimer_add(ds.timer, &tv);
}

/* One request of the batch is recorded: the next batch when all are. */
static void
batch_step(void)
{
	if (ds.busy > 0 && --ds.busy > 0)
		return;
	if (ds.stopping)
		return;
	pump();
}

static void
record_done(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	struct publish *pb = arg;

	if (r < 0 && r != -ECANCELED)
		log_warnx("discharge call %s: cannot record QStash's answer: "
		    "%s; it is sent again later", pb->id,
		    error != NULL ? error : strerror(-r));
	if (r == 0 && rows != NULL && db_result_rows(rows) == 1 &&
	    pb->cancel[0] == '\0') {
		const char *pub = db_result_value(rows, 0, 0);
		const char *stale = db_result_value(rows, 0, 1);

		if (pub != NULL && strcmp(pub, "1") == 0)
			events_discharge_scheduled(pb->user, pb->consultation,
			    pb->not_before);
		if (stale != NULL && strcmp(stale, "0") != 0)
			log_info("discharge call %s: changed while it was "
			    "published; its message will be cancelled", pb->id);
	}
	free(pb);
	if (r != -ECANCELED)
		batch_step();
}

/* Submit sql with p for pb; record_done() finishes pb. */
static void
record(struct publish *pb, const char *sql, int n, const char *const *p)
{
	if (ds.db == NULL) {
		free(pb);
		batch_step();
		return;
	}
	db_async_submit(ds.db, discharge_service_unit(record_done, pb, sql, n,
	    p));
}

/* maybe_sent: the request may have reached QStash; no answer came. */
static void
record_retry(struct publish *pb, uint64_t wait_ms, const char *err,
    bool maybe_sent)
{
	char ms[24];
	const char *p[5];

	snprintf(ms, sizeof(ms), "%" PRIu64, wait_ms);
	p[0] = pb->id;
	p[1] = ms;
	p[2] = err;
	p[3] = pb->dedup;
	p[4] = maybe_sent ? "true" : "false";
	record(pb, sql_retry, 5, p);
}

/* No answer, but the request may have gone out: QStash may hold it. */
static bool
answer_lost(const struct outbound_response *a)
{
	return a->error < 0 && a->error != -ECONNREFUSED &&
	    a->error != -ENOMEM;
}

/* How long a publish that got no usable answer waits. */
static uint64_t
wait_for_answer(const struct publish *pb, const struct outbound_response *a)
{
	uint64_t ms;

	if (a->error == 0 && a->status == 429 &&
	    discharge_wait_ms(outbound_header(a->headers, "Retry-After"),
	    outbound_header(a->headers, "Burst-RateLimit-Reset"),
	    (int64_t)time(NULL), &ms) == 0)
		return ms + discharge_random() % 1000;
	return discharge_backoff_ms(pb->attempts, discharge_random());
}

static void
published(const struct outbound_response *a, void *arg)
{
	struct publish *pb = arg;
	json_t *j = NULL, *f;
	const char *mid = NULL;
	char *err = NULL;
	const char *p[3];
	char detail[OUTBOUND_ERR_MAX + 64];

	if (a->error == -ECANCELED) {
		free(pb);
		return;
	}
	if (a->error == 0 && (a->status == 200 || a->status == 202)) {
		j = json_loadb(a->body, a->len, 0, NULL);
		mid = json_string_value(json_object_get(j, "messageId"));
		if (discharge_token_valid(mid) && pb->probe[0] != '\0') {
			log_info("discharge call %s: a publish of it got no "
			    "answer; QStash holds it as %s, to be cancelled",
			    pb->id, mid);
			p[0] = pb->id;
			p[1] = mid;
			p[2] = pb->dedup;
			record(pb, sql_published, 3, p);
			json_decref(j);
			return;
		}
		if (discharge_token_valid(mid)) {
			f = json_object();
			json_object_set_new(f, "message_id", json_string(mid));
			json_object_set_new(f, "deduplicated",
			    json_boolean(a->status == 202));
			json_object_set_new(f, "not_before",
			    json_integer(pb->not_before));
			discharge_audit("discharge_published", pb->user, "ok",
			    pb->id, pb->consultation, f);
			log_info("discharge call %s: published as %s%s", pb->id,
			    mid, a->status == 202 ? " (deduplicated)" : "");
			p[0] = pb->id;
			p[1] = mid;
			p[2] = pb->dedup;
			record(pb, sql_published, 3, p);
			json_decref(j);
			return;
		}
		snprintf(detail, sizeof(detail), "answer %ld without a usable "
		    "messageId", a->status);
		err = discharge_error_json("qstash", a->status, detail);
		json_decref(j);
	} else if (a->error < 0)
		err = discharge_error_json("qstash_unreachable", 0,
		    a->error_text);
	else if (a->status != 429 && a->status >= 400 && a->status < 500) {
		/* Refused for good: the request is wrong, not QStash. */
		j = json_loadb(a->body, a->len, 0, NULL);
		err = discharge_error_json("qstash", a->status,
		    json_string_value(json_object_get(j, "error")));
		json_decref(j);
		if (pb->probe[0] != '\0') {
			/* Nothing to learn: nothing is left to cancel. */
			log_warnx("discharge call %s: QStash refused the publish "
			    "that looks for its lost message (%ld)", pb->id,
			    a->status);
			p[0] = pb->id;
			p[1] = pb->probe;
			record(pb, sql_cancelled, 2, p);
			free(err);
			return;
		}
		log_warnx("discharge call %s: QStash refused the publish (%ld):"
		    " the call is failed", pb->id, a->status);
		discharge_audit("discharge_publish_failed", pb->user, "failed",
		    pb->id, pb->consultation, json_pack("{s:I}", "http_status",
		    (json_int_t)a->status));
		p[0] = pb->id;
		p[1] = err;
		record(pb, sql_failed, 2, p);
		free(err);
		return;
	} else
		err = discharge_error_json("qstash", a->status, NULL);
	{
		uint64_t ms = wait_for_answer(pb, a);

		log_warnx("discharge call %s: publish %s; again in %" PRIu64
		    " ms", pb->id, a->error < 0 ? a->error_text :
		    a->status == 429 ? "rate limited (429)" : "failed (5xx)",
		    ms);
		discharge_audit("discharge_publish_failed", pb->user, "retry",
		    pb->id, pb->consultation, json_pack("{s:I,s:I}",
		    "http_status", (json_int_t)a->status, "retry_in_ms",
		    (json_int_t)ms));
		record_retry(pb, ms, err, answer_lost(a));
	}
	free(err);
}

static void
cancelled(const struct outbound_response *a, void *arg)
{
	struct publish *pb = arg;
	const char *p[2];
	char *err;

	if (a->error == -ECANCELED) {
		free(pb);
		return;
	}
	if (a->error == 0 && (a->status == 200 || a->status == 404)) {
		discharge_audit("discharge_cancelled", pb->user, a->status ==
		    200 ? "ok" : "gone", pb->id, pb->consultation,
		    json_pack("{s:s}", "message_id", pb->cancel));
		log_info("discharge call %s: message %s cancelled%s", pb->id,
		    pb->cancel, a->status == 404 ? " (already gone)" : "");
		p[0] = pb->id;
		p[1] = pb->cancel;
		record(pb, sql_cancelled, 2, p);
		return;
	}
	err = a->error < 0 ? discharge_error_json("qstash_unreachable", 0,
	    a->error_text) : discharge_error_json("qstash", a->status, NULL);
	log_warnx("discharge call %s: cannot cancel message %s: %s", pb->id,
	    pb->cancel, a->error < 0 ? a->error_text : "refused");
	record_retry(pb, wait_for_answer(pb, a), err, false);
	free(err);
}

/* Send pb's request; 0, or the row is recorded as a retry. */
static void
send_one(struct publish *pb)
{
	struct outbound_request rq;
	struct buf url, auth, nb, dd, rt;
	char *body = NULL;
	json_t *j;
	int r, h = 0;

	memset(&rq, 0, sizeof(rq));
	buf_init(&url, 4096);
	buf_init(&auth, 0);
	buf_init(&nb, 64);
	buf_init(&dd, 512);
	buf_init(&rt, 64);
	(void)buf_printf(&auth, "Authorization: Bearer %s", ds.token.data);
	rq.headers[h++] = auth.data;
	rq.timeout_ms = DISCHARGE_HTTP_MS;
	rq.response_max = 64 * 1024;
	if (pb->cancel[0] != '\0') {
		(void)buf_printf(&url, "%s/v2/messages/%s", ds.qstash_url,
		    pb->cancel);
		rq.method = "DELETE";
	} else {
		(void)buf_printf(&url, "%s/v2/publish/%s", ds.qstash_url,
		    ds.delivery_url);
		(void)buf_printf(&nb, "Upstash-Not-Before: %" PRId64,
		    pb->not_before);
		(void)buf_printf(&dd, "Upstash-Deduplication-Id: %s", pb->dedup);
		(void)buf_printf(&rt, "Upstash-Retries: %u", ds.retries);
		rq.headers[h++] = "Content-Type: application/json";
		rq.headers[h++] = nb.data;
		rq.headers[h++] = dd.data;
		rq.headers[h++] = rt.data;
		rq.method = "POST";
		j = json_pack("{s:s,s:s,s:s,s:s}", "call", pb->id, "dedup",
		    pb->dedup, "consultation", pb->consultation, "user",
		    pb->user);
		if (j == NULL || (body = json_dumps(j, JSON_COMPACT)) == NULL)
			fatalx("out of memory");
		json_decref(j);
		rq.body = body;
		rq.len = strlen(body);
	}
	rq.headers[h] = NULL;
	rq.url = url.data;
	r = outbound_send(&rq, pb->cancel[0] != '\0' ? cancelled : published,
	    pb);
	buf_release_secret(&auth);
	buf_release(&url);
	buf_release(&nb);
	buf_release(&dd);
	buf_release(&rt);
	free(body);
	if (r < 0) {
		char *err = discharge_error_json("request", 0, strerror(-r));

		log_warnx("discharge call %s: cannot send to QStash: %s",
		    pb->id, strerror(-r));
		record_retry(pb, discharge_backoff_ms(pb->attempts,
		    discharge_random()), err, false);
		free(err);
	}
}

static void
copy(char *dst, size_t dstsz, const char *src)
{
	snprintf(dst, dstsz, "%s", src != NULL ? src : "");
}

static void
lease_done(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	size_t n;

	(void)arg;
	ds.leasing = false;
	if (r < 0) {
		if (r != -ECANCELED) {
			log_warnx("discharge: cannot read the outbox: %s",
			    error != NULL ? error : strerror(-r));
			arm(DISCHARGE_POLL_MS);
		}
		return;
	}
	if (ds.stopping)
		return;
	n = db_result_rows(rows);
	if (n == 0) {
		arm(DISCHARGE_POLL_MS);
		return;
	}
	ds.busy = n;
	for (size_t i = 0; i < n; i++) {
		struct publish *pb = xcalloc(1, sizeof(*pb));
		const char *cancel = db_result_value(rows, i, 6);
		const char *status = db_result_value(rows, i, 5);

		copy(pb->id, sizeof(pb->id), db_result_value(rows, i, 0));
		copy(pb->user, sizeof(pb->user), db_result_value(rows, i, 1));
		copy(pb->consultation, sizeof(pb->consultation),
		    db_result_value(rows, i, 2));
		copy(pb->dedup, sizeof(pb->dedup), db_result_value(rows, i, 3));
		pb->not_before = strtoll(db_result_value(rows, i, 4) != NULL ?
		    db_result_value(rows, i, 4) : "0", NULL, 10);
		pb->attempts = (unsigned)strtoul(db_result_value(rows, i, 7) !=
		    NULL ? db_result_value(rows, i, 7) : "0", NULL, 10);
		if (cancel != NULL && strcmp(cancel, NOTHING_PUBLISHED) == 0) {
			const char *p[2] = { pb->id, NOTHING_PUBLISHED };

			discharge_audit("discharge_cancelled", pb->user,
			    "unpublished", pb->id, pb->consultation, NULL);
			log_info("discharge call %s: cancelled before it was "
			    "published", pb->id);
			record(pb, sql_cancelled, 2, p);
			continue;
		}
		if (cancel != NULL && strncmp(cancel, MAYBE_SENT,
		    MAYBE_SENT_LEN) == 0) {
			/* Publish that dedup id again to learn its message. */
			copy(pb->probe, sizeof(pb->probe), cancel);
			copy(pb->dedup, sizeof(pb->dedup),
			    cancel + MAYBE_SENT_LEN);
		} else if (cancel != NULL && cancel[0] != '\0')
			copy(pb->cancel, sizeof(pb->cancel), cancel);
		else if (status == NULL || strcmp(status, "pending") != 0) {
			/* Cancelled meanwhile: let the lease go. */
			record_retry(pb, 0, NULL, false);
			continue;
		}
		if ((pb->cancel[0] != '\0' && !discharge_token_valid(pb->cancel))
		    || (pb->cancel[0] == '\0' &&
		    !discharge_token_valid(pb->dedup))) {
			const char *p[2];
			char *err = discharge_error_json("outbox", 0,
			    "dedup or message id unfit for a header or URL");

			log_warnx("discharge call %s: unfit id; the call is "
			    "failed", pb->id);
			p[0] = pb->id;
			p[1] = err;
			record(pb, sql_failed, 2, p);
			free(err);
			continue;
		}
		send_one(pb);
	}
}

static void
pump(void)
{
	char lease[24], batch[8];
	const char *p[3];

	if (!ds.enabled || ds.stopping || ds.leasing || ds.busy > 0 ||
	    ds.db == NULL)
		return;
	ds.leasing = true;
	snprintf(lease, sizeof(lease), "%d", DISCHARGE_LEASE_MS);
	snprintf(batch, sizeof(batch), "%d", DISCHARGE_BATCH);
	p[0] = ds.instance;
	p[1] = lease;
	p[2] = batch;
	db_async_submit(ds.db, discharge_service_unit(lease_done, NULL,
	    sql_lease, 3, p));
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	pump();
}

static void
notified(const char *channel, const char *payload, void *arg)
{
	(void)channel;
	(void)payload;
	(void)arg;
	pump();
}

static int
read_secret(const char *name, struct buf *b, bool required)
{
	char err[SECRET_ERR_MAX];
	int r;

	if ((r = secret_read(name, b, err, sizeof(err))) < 0) {
		if (!required && r == -ENOENT)
			return 0;
		log_warnx("discharge calls: %s", err);
		return r;
	}
	return 0;
}

static void
unlease_done(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	(void)rows;
	(void)arg;
	if (r < 0 && r != -ECANCELED)
		log_warnx("discharge: cannot drop the leases of a previous "
		    "run: %s", error != NULL ? error : strerror(-r));
}

int
discharge_start(struct db_async *db, const char *instance)
{
	const struct config *cf = sv->config;
	const char *p[1];
	int r;

	if (cf->discharge.qstash_url == NULL || db == NULL)
		return 0;
	memset(&ds, 0, sizeof(ds));
	buf_init(&ds.token, 0);
	buf_init(&ds.current_key, 0);
	buf_init(&ds.next_key, 0);
	buf_init(&ds.vapi_key, 0);
	if ((r = read_secret(SECRET_QSTASH_TOKEN, &ds.token, true)) < 0 ||
	    (r = read_secret(SECRET_QSTASH_CURRENT_KEY, &ds.current_key,
	    true)) < 0 ||
	    (r = read_secret(SECRET_QSTASH_NEXT_KEY, &ds.next_key, false)) < 0 ||
	    (r = read_secret(SECRET_VAPI_KEY, &ds.vapi_key, true)) < 0)
		goto bad;
	if ((r = outbound_init(sv->base)) < 0)
		goto bad;
	ds.db = db;
	ds.instance = xstrdup(instance);
	ds.qstash_url = xstrdup(cf->discharge.qstash_url);
	ds.delivery_url = xstrdup(cf->discharge.delivery_url);
	ds.delay_ms = cf->discharge.delay_ms;
	ds.retries = cf->discharge.retries;
	/* A trailing '/' on the base would double in the paths. */
	while (strlen(ds.qstash_url) > 8 &&
	    ds.qstash_url[strlen(ds.qstash_url) - 1] == '/')
		ds.qstash_url[strlen(ds.qstash_url) - 1] = '\0';
	if ((r = discharge_deliver_start()) < 0)
		goto bad;
	ds.timer = evtimer_new(sv->base, timer_cb, NULL);
	p[0] = ds.instance;
	db_async_submit(db, discharge_service_unit(unlease_done, NULL,
	    sql_unlease, 1, p));
	if ((r = db_async_listen(db, "vetsync_discharge", notified, NULL)) < 0)
		log_warnx("discharge: cannot listen on vetsync_discharge: %s; "
		    "polling only", strerror(-r));
	ds.enabled = true;
	log_info("discharge calls: publishing to %s, delivered to %s",
	    log_q(ds.qstash_url), log_q(ds.delivery_url));
	pump();
	return 0;
bad:
	discharge_stop();
	return r;
}

void
discharge_stop(void)
{
	ds.stopping = true;
	ds.enabled = false;
	if (ds.timer != NULL)
		event_free(ds.timer);
	ds.timer = NULL;
	/* In-flight requests are cancelled without touching the rows. */
	outbound_free();
	buf_release_secret(&ds.token);
	buf_release_secret(&ds.current_key);
	buf_release_secret(&ds.next_key);
	buf_release_secret(&ds.vapi_key);
	free(ds.instance);
	free(ds.qstash_url);
	free(ds.delivery_url);
	ds.instance = ds.qstash_url = ds.delivery_url = NULL;
	ds.db = NULL;
}
