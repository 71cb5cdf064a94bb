/*
 * The audit spool's writer into idexx_sync_audit_log (see auditdb.h).
 *
 * One batch is out at a time: a record appended while a unit is in flight
 * waits for it, and a unit waiting for the database holds the only copy
 * of nothing (the spool has them all), so a database that stays down
 * costs one queued unit, not one per record.  Kicks are deferred to the
 * next turn of the loop, so records appended together go together.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/alerts.h"
#include "supervisor/audit.h"
#include "supervisor/auditdb.h"
#include "supervisor/db.h"
#include "supervisor/reconcile.h"

#define RETRY_MIN_MS	1000
#define RETRY_MAX_MS	60000

static struct {
	struct event_base *base;
	struct db_async *db;
	char *instance;
	struct event *kick_ev;		/* submit the next batch */
	struct event *retry_ev;		/* after a refused unit */
	struct audit_batch batch;	/* the one in flight */
	bool busy;
	bool stopped;
	uint64_t retry_ms;
	uint64_t refusals;		/* in this episode */
	uint64_t written;
} wr = { .stopped = true };

/* The table's columns, mapped from a batch (auditdb.h). */
static const char sql_append[] =
    "INSERT INTO idexx_sync_audit_log (\"timestamp\", user_id, clinic_id,"
    " actor, action, status, session_id, policy_hash, error_details,"
    " metadata)"
    " SELECT (e.v->>'ts')::timestamptz, (e.v->>'uid')::uuid,"
    " (e.v->>'uid')::uuid, e.v->>'actor', e.v->>'action', e.v->>'status',"
    " e.v->>'session', e.v->>'policy_hash', e.v->'error', e.v->'metadata'"
    " FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(v, n)"
    " WHERE NOT EXISTS (SELECT 1 FROM idexx_sync_audit_log l"
    "  WHERE l.metadata ? 'spool_key'"
    "  AND l.metadata->>'spool_key' = e.v->'metadata'->>'spool_key')"
    " ORDER BY e.n";

/* The keys that become columns; everything else is metadata. */
static const char *const columns[] = {
	"ts", "event", "actor", "session", "status", "policy_hash", "error",
	NULL,
};

static bool
is_column(const char *key)
{
	for (size_t i = 0; columns[i] != NULL; i++)
		if (strcmp(key, columns[i]) == 0)
			return true;
	return false;
}

static void
copy_str(json_t *row, const char *to, json_t *rec, const char *from)
{
	json_t *v = json_object_get(rec, from);

	if (json_is_string(v))
		json_object_set(row, to, v);
}

/* One spool record as the row the INSERT reads. */
static json_t *
row_of(json_t *rec)
{
	json_t *row = json_object(), *meta = json_object(), *v;
	const char *key, *clinic;
	char skey[AUDIT_EPOCH_LEN + 24];

	copy_str(row, "ts", rec, "ts");
	copy_str(row, "action", rec, "event");
	copy_str(row, "actor", rec, "actor");
	copy_str(row, "session", rec, "session");
	copy_str(row, "status", rec, "status");
	copy_str(row, "policy_hash", rec, "policy_hash");
	if (json_object_get(row, "policy_hash") == NULL)
		copy_str(row, "policy_hash", rec, "policy_sha256");
	if (json_object_get(row, "actor") == NULL)
		json_object_set_new(row, "actor", json_string("vetsyncd"));
	v = json_object_get(rec, "ok");
	if (json_object_get(row, "status") == NULL && json_is_boolean(v))
		json_object_set_new(row, "status",
		    json_string(json_is_true(v) ? "ok" : "failed"));
	if (json_is_object(v = json_object_get(rec, "error")))
		json_object_set(row, "error", v);
	clinic = json_string_value(json_object_get(rec, "clinic"));
	if (clinic != NULL && reconcile_uuid_valid(clinic))
		json_object_set_new(row, "uid", json_string(clinic));
	json_object_foreach(rec, key, v) {
		if (!is_column(key))
			json_object_set(meta, key, v);
	}
	snprintf(skey, sizeof(skey), "%s/%" JSON_INTEGER_FORMAT,
	    audit_spool_epoch(),
	    json_integer_value(json_object_get(rec, "seq")));
	json_object_set_new(meta, "spool_key", json_string(skey));
	json_object_set_new(meta, "instance", json_string(wr.instance));
	json_object_set_new(row, "metadata", meta);
	return row;
}

static void kick(void);

static void
unit_done(int r, const char *error, void *arg)
{
	size_t n = json_array_size(wr.batch.records);
	int cr;

	(void)arg;
	wr.busy = false;
	if (r == 0) {
		if ((cr = audit_spool_confirm(&wr.batch)) < 0)
			log_warnx("audit spool: seq %" PRIu64 "..%" PRIu64
			    " are written, but the cursor or the spool could "
			    "not follow: %s (replayed later, without doubles)",
			    wr.batch.first_seq, wr.batch.last_seq,
			    strerror(-cr));
		wr.written += n;
		log_debug("audit: %zu record(s) written, seq %" PRIu64 "..%"
		    PRIu64, n, wr.batch.first_seq, wr.batch.last_seq);
		if (wr.refusals > 0)
			log_info("audit: the database takes records again, "
			    "after %" PRIu64 " refusal(s)", wr.refusals);
		wr.refusals = 0;
		wr.retry_ms = 0;
		audit_batch_release(&wr.batch);
		kick();
		return;
	}
	audit_batch_release(&wr.batch);
	audit_spool_rewind();
	if (r == -ECANCELED || wr.stopped)
		return;
	if (wr.refusals++ == 0)
		log_warnx("alert: audit: the database refused %zu record(s) "
		    "(seq %" PRIu64 "..%" PRIu64 "): %s; they stay in the "
		    "spool and are tried again", n, wr.batch.first_seq,
		    wr.batch.last_seq, error != NULL ? error : strerror(-r));
	if (wr.refusals == 1)
		alerts_raise(ALERT_AUDIT_REFUSED, NULL, "the database refuses "
		    "audit records; they wait in the local spool",
		    "the database's log and the audit log's table and "
		    "triggers (vetsyncctl audit verify)");
	wr.retry_ms = wr.retry_ms == 0 ? RETRY_MIN_MS : wr.retry_ms * 2;
	if (wr.retry_ms > RETRY_MAX_MS)
		wr.retry_ms = RETRY_MAX_MS;
	{
		struct timeval tv = clock_timeval_ms(wr.retry_ms);

		evtimer_add(wr.retry_ev, &tv);
	}
}

static void
submit(void)
{
	json_t *rows, *rec;
	struct db_unit *u;
	char *text;
	const char *p[1];
	size_t i;
	int n;

	if (wr.stopped || wr.busy || evtimer_pending(wr.retry_ev, NULL))
		return;
	n = audit_spool_next(AUDITDB_BATCH, AUDITDB_BATCH_BYTES, &wr.batch);
	if (n < 0) {
		log_warnx("audit spool: cannot read: %s", strerror(-n));
		return;
	}
	if (n == 0) {
		/* Only lines that are not records: confirmed as skipped. */
		(void)audit_spool_confirm(&wr.batch);
		audit_batch_release(&wr.batch);
		return;
	}
	rows = json_array();
	json_array_foreach(wr.batch.records, i, rec)
		json_array_append_new(rows, row_of(rec));
	text = json_dumps(rows, JSON_COMPACT);
	json_decref(rows);
	if (text == NULL)
		fatalx("out of memory");
	p[0] = text;
	u = db_unit_new(unit_done, NULL);
	(void)db_unit_add(u, "BEGIN", 0, NULL);
	(void)db_unit_add(u, "SET LOCAL ROLE service_role", 0, NULL);
	(void)db_unit_add(u, sql_append, 1, p);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	free(text);
	wr.busy = true;
	db_async_submit(wr.db, u);
}

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	submit();
}

/* Submit on the next turn of the loop (records appended together). */
static void
kick(void)
{
	struct timeval now = { 0, 0 };

	if (wr.stopped || wr.busy || audit_spool_backlog() == 0)
		return;
	if (!evtimer_pending(wr.kick_ev, NULL))
		evtimer_add(wr.kick_ev, &now);
}

static void
notify(void *arg)
{
	(void)arg;
	kick();
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	submit();
}

void
auditdb_start(struct event_base *base, struct db_async *db,
    const char *instance)
{
	auditdb_stop();
	wr.base = base;
	wr.db = db;
	wr.instance = xstrdup(instance != NULL ? instance : "");
	wr.kick_ev = evtimer_new(base, kick_cb, NULL);
	wr.retry_ev = evtimer_new(base, retry_cb, NULL);
	if (wr.kick_ev == NULL || wr.retry_ev == NULL)
		fatalx("cannot create the audit writer's events");
	wr.stopped = false;
	wr.busy = false;
	wr.retry_ms = wr.refusals = wr.written = 0;
	audit_set_notify(notify, NULL);
	if (audit_spool_backlog() > 0)
		log_info("audit: %" PRIu64 " byte(s) of spooled records to "
		    "write, after seq %" PRIu64, audit_spool_backlog(),
		    audit_spool_confirmed());
	kick();
}

static void
drain_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

bool
auditdb_drain(uint64_t timeout_ms)
{
	uint64_t deadline = clock_mono_ms() + timeout_ms;
	struct timeval tick = clock_timeval_ms(50);
	struct auditdb_stats st;
	struct event *ev;

	if (wr.stopped)
		return audit_spool_backlog() == 0;
	if ((ev = evtimer_new(wr.base, drain_tick, wr.base)) == NULL)
		fatalx("cannot create the audit writer's events");
	while ((wr.busy || audit_spool_backlog() > 0) &&
	    db_async_connected(wr.db) && clock_mono_ms() < deadline &&
	    !evtimer_pending(wr.retry_ev, NULL)) {
		submit();
		evtimer_add(ev, &tick);
		event_base_loop(wr.base, EVLOOP_ONCE);
	}
	event_free(ev);
	auditdb_stats(&st);
	log_info("audit: %" PRIu64 " record(s) written since the start, %"
	    PRIu64 " refused by the full spool, confirmed through seq %" PRIu64,
	    st.written, st.refused, st.confirmed_seq);
	if (st.backlog_bytes > 0)
		log_warnx("audit: %" PRIu64 " byte(s) of records not yet in "
		    "the database stay in the spool for the next start",
		    st.backlog_bytes);
	return st.backlog_bytes == 0;
}

void
auditdb_stop(void)
{
	if (wr.stopped && wr.base == NULL)
		return;
	wr.stopped = true;
	audit_set_notify(NULL, NULL);
	if (wr.kick_ev != NULL)
		event_free(wr.kick_ev);
	if (wr.retry_ev != NULL)
		event_free(wr.retry_ev);
	wr.kick_ev = wr.retry_ev = NULL;
	free(wr.instance);
	wr.instance = NULL;
	wr.base = NULL;
	wr.db = NULL;
}

void
auditdb_stats(struct auditdb_stats *ret)
{
	ret->spool_bytes = audit_spool_size();
	ret->backlog_bytes = audit_spool_backlog();
	ret->confirmed_seq = audit_spool_confirmed();
	ret->written = wr.written;
	ret->refused = audit_refused();
	ret->retrying = wr.refusals > 0;
}
