/*
 * Reconciliation of a worker's results into cases (see reconcile.h).
 *
 * The records travel to PostgreSQL as one JSON array parameter, and the
 * matching, the case writes and the sync-status upserts are one statement
 * of data-modifying CTEs, so a clinic's results cost one round trip
 * (BEGIN, role, claims, the statement, the session row, COMMIT, pipelined)
 * whatever their number.  Every write is guarded by IS DISTINCT FROM, which
 * is what makes a second application change nothing.  The statements with
 * parameters are prepared (once per connection, by db.c): the matching
 * statement alone took milliseconds to plan.
 */
#include <sys/random.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/parse.h"
#include "common/xmalloc.h"

#include "proto/frame.h"

#include "supervisor/audit.h"
#include "supervisor/db.h"
#include "supervisor/discharge.h"
#include "supervisor/reconcile.h"
#include "supervisor/workers.h"

struct reconcile {
	char user[37];
	char session[37];
	char timezone[65];
	enum worker_job_kind kind;
	unsigned long long job_id;
	json_t *records;
	size_t consultations, appointments;
	size_t dropped;
};

static struct db_async *rdb;
static char *instance;		/* written on this process's sessions */

/* Scope the unit's transaction to the tenant. */
static const char sql_role[] = "SET LOCAL ROLE vetsync_tenant";
static const char sql_claims[] =
    "SELECT set_config('request.jwt.claims', "
    "json_build_object('sub', $1::text, 'role', 'authenticated')::text, "
    "true)";

static const char sql_session_start[] =
    "INSERT INTO idexx_sync_sessions (id, user_id, kind, status, instance) "
    "VALUES ($1::uuid, $2::uuid, $3, 'running', $4) "
    "ON CONFLICT (id) DO NOTHING";

static const char sql_session_end[] =
    "INSERT INTO idexx_sync_sessions AS s (id, user_id, kind, status, "
    "completed_at, consultations_synced, consultations_failed, "
    "error_details, instance) "
    "VALUES ($1::uuid, $2::uuid, $3, $4, now(), $5::int, $6::int, "
    "$7::jsonb, $8) "
    "ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
    "completed_at = coalesce(s.completed_at, excluded.completed_at), "
    "consultations_synced = excluded.consultations_synced, "
    "consultations_failed = excluded.consultations_failed, "
    "error_details = excluded.error_details "
    "WHERE s.status IS DISTINCT FROM excluded.status "
    "OR s.consultations_synced IS DISTINCT FROM excluded.consultations_synced "
    "OR s.consultations_failed IS DISTINCT FROM excluded.consultations_failed "
    "OR s.error_details IS DISTINCT FROM excluded.error_details";

/*
 * Sessions a previous run of this instance ($1) left running: it died
 * before it could close them.  Across tenants, so as service_role; the
 * index on running sessions serves it.  $2: the job timeout in ms.
 */
static const char sql_recover[] =
    "UPDATE idexx_sync_sessions SET completed_at = now(),"
    " status = CASE WHEN started_at < now() - $2::bigint *"
    "  interval '1 millisecond' THEN 'timeout' ELSE 'failed' END,"
    " error_details = jsonb_build_object('reason', 'daemon restarted')"
    " WHERE status = 'running' AND instance = $1"
    " RETURNING id, user_id, kind, status, started_at";

/*
 * $1 user, $2 the clinic's time zone, $3 the records.  The patient + day
 * rule only considers cases not yet linked to a consultation.
 */
static const char sql_notes[] =
    "WITH input AS ("
    " SELECT DISTINCT ON (x.cid) x.*,"
    "  (x.date_utc AT TIME ZONE $2)::date AS day"
    " FROM jsonb_to_recordset($3::jsonb) AS x(cid text, aid text, pid text,"
    "  pname text, date_utc timestamptz, completed boolean, meta jsonb)"
    " WHERE x.cid IS NOT NULL ORDER BY x.cid),"
    "m AS ("
    " SELECT i.*,"
    "  CASE WHEN cc.ids IS NOT NULL THEN 'consultation'"
    "   WHEN ac.ids IS NOT NULL THEN 'appointment'"
    "   WHEN pc.ids IS NOT NULL THEN 'patient_day' END AS rule,"
    "  coalesce(cc.ids, ac.ids, pc.ids) AS ids,"
    "  CASE WHEN cardinality(coalesce(cc.ids, ac.ids, pc.ids)) = 1"
    "   THEN (coalesce(cc.ids, ac.ids, pc.ids))[1] END AS case_id"
    " FROM input i"
    " LEFT JOIN LATERAL (SELECT array_agg(c.id ORDER BY c.id) AS ids"
    "  FROM cases c WHERE c.user_id = $1::uuid"
    "  AND c.idexx_consultation_id = i.cid HAVING count(*) > 0) cc ON true"
    " LEFT JOIN LATERAL (SELECT array_agg(c.id ORDER BY c.id) AS ids"
    "  FROM cases c WHERE i.aid IS NOT NULL AND c.user_id = $1::uuid"
    "  AND c.idexx_appointment_id = i.aid HAVING count(*) > 0) ac ON true"
    " LEFT JOIN LATERAL (SELECT array_agg(c.id ORDER BY c.id) AS ids"
    "  FROM cases c WHERE i.day IS NOT NULL AND c.user_id = $1::uuid"
    "  AND c.idexx_consultation_id IS NULL"
    "  AND (c.patient_name = i.pname OR c.idexx_patient_id = i.pid)"
    "  AND (c.scheduled_at AT TIME ZONE $2)::date = i.day"
    "  HAVING count(*) > 0) pc ON true),"
    "upd AS ("
    " UPDATE cases k SET idexx_consultation_id = m.cid,"
    "  idexx_appointment_id = coalesce(m.aid, k.idexx_appointment_id),"
    "  idexx_patient_id = coalesce(m.pid, k.idexx_patient_id),"
    "  patient_name = coalesce(k.patient_name, m.pname),"
    "  metadata = k.metadata || jsonb_build_object('idexx', m.meta),"
    "  updated_at = now()"
    " FROM m WHERE k.id = m.case_id AND k.user_id = $1::uuid"
    " AND (k.idexx_consultation_id, k.idexx_appointment_id,"
    "  k.idexx_patient_id, k.patient_name, k.metadata)"
    "  IS DISTINCT FROM (m.cid, coalesce(m.aid, k.idexx_appointment_id),"
    "  coalesce(m.pid, k.idexx_patient_id),"
    "  coalesce(k.patient_name, m.pname),"
    "  k.metadata || jsonb_build_object('idexx', m.meta))"
    " RETURNING k.id),"
    "ins AS ("
    " INSERT INTO cases (user_id, patient_name, scheduled_at, status,"
    "  source, metadata, idexx_consultation_id, idexx_appointment_id,"
    "  idexx_patient_id)"
    " SELECT $1::uuid, m.pname, m.date_utc, 'completed', 'idexx',"
    "  jsonb_build_object('idexx', m.meta), m.cid, m.aid, m.pid"
    " FROM m WHERE m.rule IS NULL AND m.completed"
    " RETURNING id, idexx_consultation_id),"
    "st AS ("
    " INSERT INTO consultation_sync_status AS s (consultation_id, user_id,"
    "  case_id, sync_status, has_clinical_notes, notes_synced_at,"
    "  last_sync_attempt, idexx_appointment_id, match_rule, match_details)"
    " SELECT m.cid, $1::uuid, coalesce(m.case_id, ins.id),"
    "  CASE WHEN coalesce(m.case_id, ins.id) IS NOT NULL THEN 'synced'"
    "   ELSE 'pending' END,"
    "  coalesce(m.meta->>'notes', '') <> '',"
    "  CASE WHEN coalesce(m.case_id, ins.id) IS NOT NULL THEN now() END,"
    "  now(), m.aid,"
    "  CASE WHEN cardinality(m.ids) > 1 THEN 'ambiguous'"
    "   WHEN ins.id IS NOT NULL THEN 'created' ELSE m.rule END,"
    "  CASE WHEN cardinality(m.ids) > 1 THEN jsonb_build_object('rule',"
    "   m.rule, 'candidates', to_jsonb(m.ids)) END"
    " FROM m LEFT JOIN ins ON ins.idexx_consultation_id = m.cid"
    " ON CONFLICT (consultation_id, user_id) DO UPDATE SET"
    "  case_id = excluded.case_id, sync_status = excluded.sync_status,"
    "  has_clinical_notes = excluded.has_clinical_notes,"
    "  notes_synced_at = coalesce(s.notes_synced_at,"
    "   excluded.notes_synced_at),"
    "  last_sync_attempt = excluded.last_sync_attempt,"
    "  idexx_appointment_id = excluded.idexx_appointment_id,"
    /* Found again by consultation id: the rule that found it first stays. */
    "  match_rule = CASE WHEN s.case_id = excluded.case_id"
    "   AND s.match_rule IS NOT NULL THEN s.match_rule"
    "   ELSE excluded.match_rule END,"
    "  match_details = excluded.match_details"
    " WHERE (s.case_id, s.sync_status, s.has_clinical_notes,"
    "  s.idexx_appointment_id, s.match_details)"
    "  IS DISTINCT FROM (excluded.case_id, excluded.sync_status,"
    "  excluded.has_clinical_notes, excluded.idexx_appointment_id,"
    "  excluded.match_details)"
    "  OR (s.case_id IS DISTINCT FROM excluded.case_id"
    "  AND s.match_rule IS DISTINCT FROM excluded.match_rule)"
    " RETURNING 1)"
    "SELECT (SELECT count(*) FROM upd), (SELECT count(*) FROM ins),"
    " (SELECT count(*) FROM st)";

/* $1 user, $2 time zone (unused but kept for symmetry), $3 the records. */
static const char sql_schedule[] =
    "WITH input AS ("
    " SELECT DISTINCT ON (x.aid) x.* FROM jsonb_to_recordset($3::jsonb)"
    "  AS x(aid text, cid text, pid text, pname text,"
    "  start_utc timestamptz, cancelled boolean, meta jsonb)"
    " WHERE x.aid IS NOT NULL AND $2::text IS NOT NULL ORDER BY x.aid),"
    "cand AS ("
    " SELECT i.aid, array_agg(c.id) AS ids FROM input i"
    " JOIN cases c ON c.user_id = $1::uuid AND c.idexx_appointment_id = i.aid"
    " GROUP BY i.aid),"
    "upd AS ("
    " UPDATE cases k SET scheduled_at = coalesce(i.start_utc,"
    "  k.scheduled_at),"
    "  patient_name = coalesce(i.pname, k.patient_name),"
    "  idexx_patient_id = coalesce(i.pid, k.idexx_patient_id),"
    "  status = CASE WHEN i.cancelled THEN 'cancelled'"
    "   WHEN k.status IS NULL OR k.status = 'cancelled' THEN 'scheduled'"
    "   ELSE k.status END,"
    "  metadata = k.metadata || jsonb_build_object('idexx_appointment',"
    "   i.meta), updated_at = now()"
    " FROM input i JOIN cand c USING (aid)"
    " WHERE cardinality(c.ids) = 1 AND k.id = (c.ids)[1]"
    " AND (k.scheduled_at, k.patient_name, k.idexx_patient_id, k.status,"
    "  k.metadata) IS DISTINCT FROM (coalesce(i.start_utc, k.scheduled_at),"
    "  coalesce(i.pname, k.patient_name),"
    "  coalesce(i.pid, k.idexx_patient_id),"
    "  CASE WHEN i.cancelled THEN 'cancelled'"
    "   WHEN k.status IS NULL OR k.status = 'cancelled' THEN 'scheduled'"
    "   ELSE k.status END,"
    "  k.metadata || jsonb_build_object('idexx_appointment', i.meta))"
    " RETURNING k.id),"
    "ins AS ("
    " INSERT INTO cases (user_id, patient_name, scheduled_at, status,"
    "  source, metadata, idexx_appointment_id, idexx_patient_id)"
    " SELECT $1::uuid, i.pname, i.start_utc, 'scheduled', 'idexx',"
    "  jsonb_build_object('idexx_appointment', i.meta), i.aid, i.pid"
    " FROM input i WHERE NOT i.cancelled"
    " AND NOT EXISTS (SELECT 1 FROM cand c WHERE c.aid = i.aid)"
    " RETURNING id)"
    "SELECT (SELECT count(*) FROM upd), (SELECT count(*) FROM ins)";

/* Set key to the string s if there is one (and it is valid UTF-8). */
static void
set_str(json_t *o, const char *key, const char *s)
{
	json_t *v;

	if (s == NULL || s[0] == '\0')
		return;
	if ((v = json_string(s)) != NULL)
		json_object_set_new(o, key, v);
}

void
reconcile_init(struct db_async *db)
{
	rdb = db;
	if (db == NULL) {
		free(instance);
		instance = NULL;
	}
}

static void
recover_done(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	size_t n;

	(void)arg;
	if (r < 0) {
		if (r != -ECANCELED)
			log_warnx("instance %s: cannot close the sessions a "
			    "previous run left running: %s", log_q(instance),
			    error != NULL ? error : strerror(-r));
		return;
	}
	n = db_result_rows(rows);
	for (size_t i = 0; i < n; i++) {
		json_t *f = json_object();

		set_str(f, "session", db_result_value(rows, i, 0));
		set_str(f, "kind", db_result_value(rows, i, 2));
		set_str(f, "status", db_result_value(rows, i, 3));
		set_str(f, "started_at", db_result_value(rows, i, 4));
		set_str(f, "instance", instance);
		json_object_set_new(f, "reason",
		    json_string("daemon restarted"));
		audit_record("sync_session_closed", db_result_value(rows, i, 1),
		    0, f);
	}
	if (n > 0)
		log_info("instance %s: closed %zu session(s) a previous run "
		    "left running", log_q(instance), n);
}

void
reconcile_recover(const char *name, uint64_t job_timeout_ms)
{
	struct db_unit *u;
	char timeout[24];
	const char *p[2];

	free(instance);
	instance = name != NULL && name[0] != '\0' ? xstrdup(name) : NULL;
	if (rdb == NULL || instance == NULL)
		return;
	snprintf(timeout, sizeof(timeout), "%llu",
	    (unsigned long long)job_timeout_ms);
	p[0] = instance;
	p[1] = timeout;
	u = db_unit_new_rows(recover_done, NULL);
	(void)db_unit_add(u, "BEGIN", 0, NULL);
	(void)db_unit_add(u, "SET LOCAL ROLE service_role", 0, NULL);
	(void)db_unit_add(u, sql_recover, 2, p);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(rdb, u);
}

bool
reconcile_backlogged(void)
{
	return rdb != NULL && db_async_queued_bytes(rdb) > RECONCILE_BACKLOG_MAX;
}

bool
reconcile_uuid_valid(const char *s)
{
	return parse_uuid_ok(s);
}

/* A random (version 4) uuid: the session's id, known before any insert. */
static void
uuid_random(char out[37])
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		fatal("getrandom");
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
	    b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

static const char *
kind_sql(enum worker_job_kind kind)
{
	switch (kind) {
	case WORKER_JOB_SYNC_SCHEDULE:
		return "schedule";
	case WORKER_JOB_VALIDATE_CREDENTIALS:
		return "validate";
	default:
		return "notes";
	}
}

/* A unit opening user's tenant-scoped transaction. */
static struct db_unit *
tenant_unit(const char *user, db_unit_cb *cb, void *arg)
{
	struct db_unit *u = db_unit_new(cb, arg);
	const char *p[1] = { user };

	(void)db_unit_add(u, "BEGIN", 0, NULL);
	(void)db_unit_add(u, sql_role, 0, NULL);
	(void)db_unit_add_prepared(u, sql_claims, 1, p);
	return u;
}

struct reconcile *
reconcile_start(const struct worker_job *job)
{
	struct reconcile *r;
	struct db_unit *u;
	const char *p[4];

	if (rdb == NULL)
		return NULL;
	if (!reconcile_uuid_valid(job->clinic)) {
		log_debug("clinic=%s: not a user uuid; no database work",
		    job->clinic);
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	snprintf(r->user, sizeof(r->user), "%s", job->clinic);
	snprintf(r->timezone, sizeof(r->timezone), "%s",
	    job->timezone != NULL ? job->timezone : "UTC");
	r->kind = job->kind;
	r->job_id = (unsigned long long)job->id;
	uuid_random(r->session);
	if ((r->records = json_array()) == NULL)
		fatalx("out of memory");

	u = tenant_unit(r->user, NULL, NULL);
	p[0] = r->session;
	p[1] = r->user;
	p[2] = kind_sql(r->kind);
	p[3] = instance;
	(void)db_unit_add_prepared(u, sql_session_start, 4, p);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(rdb, u);
	return r;
}

static json_t *
consultation_json(const Vetsync__Consultation *c)
{
	json_t *o = json_object(), *meta = json_object(), *lines;
	const char *st = c->status != NULL ? c->status : "";

	set_str(o, "cid", c->consultation_id);
	set_str(o, "aid", c->appointment_id);
	set_str(o, "date_utc", c->date_utc);
	if (c->patient != NULL) {
		set_str(o, "pid", c->patient->id);
		set_str(o, "pname", c->patient->name);
	}
	if (c->client != NULL)	/* the discharge call's number */
		set_str(o, "phone", c->client->phone);
	json_object_set_new(o, "completed", json_boolean(
	    strcasecmp(st, "completed") == 0 ||
	    strcasecmp(st, "complete") == 0 ||
	    strcasecmp(st, "finalized") == 0));
	set_str(meta, "consultation_id", c->consultation_id);
	set_str(meta, "appointment_id", c->appointment_id);
	set_str(meta, "date", c->date);
	set_str(meta, "date_utc", c->date_utc);
	set_str(meta, "status", c->status);
	set_str(meta, "reason", c->reason);
	set_str(meta, "notes", c->notes);
	set_str(meta, "discharge_summary", c->discharge_summary);
	set_str(meta, "provider", c->provider);
	lines = json_array();
	for (size_t i = 0; i < c->n_lines; i++) {
		json_t *l = json_object();

		set_str(l, "name", c->lines[i]->name);
		set_str(l, "quantity", c->lines[i]->quantity);
		json_object_set_new(l, "declined",
		    json_boolean(c->lines[i]->declined));
		json_array_append_new(lines, l);
	}
	json_object_set_new(meta, "lines", lines);
	json_object_set_new(o, "meta", meta);
	return o;
}

static json_t *
appointment_json(const Vetsync__Appointment *a)
{
	json_t *o = json_object(), *meta = json_object();

	set_str(o, "aid", a->appointment_id);
	set_str(o, "cid", a->consultation_id);
	set_str(o, "start_utc", a->start_utc);
	if (a->patient != NULL) {
		set_str(o, "pid", a->patient->id);
		set_str(o, "pname", a->patient->name);
	}
	json_object_set_new(o, "cancelled", json_boolean(a->cancelled));
	set_str(meta, "appointment_id", a->appointment_id);
	set_str(meta, "consultation_id", a->consultation_id);
	set_str(meta, "start", a->start);
	set_str(meta, "end", a->end);
	set_str(meta, "start_utc", a->start_utc);
	set_str(meta, "end_utc", a->end_utc);
	set_str(meta, "provider", a->provider);
	set_str(meta, "type", a->type_description);
	set_str(meta, "reason", a->reason);
	set_str(meta, "status", a->status);
	json_object_set_new(meta, "cancelled", json_boolean(a->cancelled));
	json_object_set_new(o, "meta", meta);
	return o;
}

void
reconcile_record(struct reconcile *r, const Vetsync__Envelope *env)
{
	bool notes;

	if (r == NULL)
		return;
	notes = r->kind == WORKER_JOB_RECONCILE_NOTES;
	if (env->msg_case == VETSYNC__ENVELOPE__MSG_CONSULTATION && notes)
		r->consultations++;
	else if (env->msg_case == VETSYNC__ENVELOPE__MSG_APPOINTMENT && !notes)
		r->appointments++;
	else
		return;	/* not what this job applies */
	if (json_array_size(r->records) >= RECONCILE_RECORDS_MAX) {
		if (r->dropped++ == 0)
			log_warnx("clinic=%s job=%llu: more than %d records; "
			    "the rest are counted as failed", r->user,
			    r->job_id, RECONCILE_RECORDS_MAX);
		return;
	}
	json_array_append_new(r->records, notes ?
	    consultation_json(env->consultation) :
	    appointment_json(env->appointment));
}

struct apply_ctx {
	char user[37];
	char session[37];
	const char *kind;
	unsigned long long job_id;
	size_t n;
	const char *status;
};

static void
session_failed_done(int r, const char *error, void *arg)
{
	char *session = arg;

	if (r < 0 && r != -ECANCELED)
		log_warnx("session %s: cannot record its failure: %s; it "
		    "stays 'running' until vetsyncd next starts", session,
		    error != NULL ? error : strerror(-r));
	free(session);
}

/*
 * The results' transaction was refused (rolled back, session and all), or
 * the database queue was full: record that on the session, so that it
 * does not stay 'running'.  A small unit: it may fit where the results
 * did not.
 */
static void
session_failed(const struct apply_ctx *c, const char *error)
{
	struct db_unit *u;
	json_t *err = json_object();
	char *text, failed[24];
	const char *p[8];

	json_object_set_new(err, "class", json_string("database"));
	set_str(err, "detail", error);
	if ((text = json_dumps(err, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		fatalx("out of memory");
	snprintf(failed, sizeof(failed), "%zu", c->n);
	u = tenant_unit(c->user, session_failed_done, xstrdup(c->session));
	p[0] = c->session;
	p[1] = c->user;
	p[2] = c->kind;
	p[3] = "failed";
	p[4] = "0";
	p[5] = failed;
	p[6] = text;
	p[7] = instance;
	(void)db_unit_add_prepared(u, sql_session_end, 8, p);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(rdb, u);
	free(text);
	json_decref(err);
}

static void
apply_done(int r, const char *error, void *arg)
{
	struct apply_ctx *c = arg;

	if (r == 0)
		log_info("clinic=%s job=%llu: %zu record(s) reconciled, "
		    "session %s", c->user, c->job_id, c->n, c->status);
	else {
		log_warnx("clinic=%s job=%llu: reconciliation failed: %s",
		    c->user, c->job_id, error != NULL ? error : strerror(-r));
		/* Not after -ECANCELED: the layer is going away. */
		if ((r == -EIO || r == -ENOBUFS) && rdb != NULL)
			session_failed(c, error);
	}
	free(c);
}

void
reconcile_finish(struct reconcile *r, const struct worker_outcome *o)
{
	struct apply_ctx *c;
	struct db_unit *u;
	json_t *err = NULL;
	char *records = NULL, *errtext = NULL, synced[24], failed[24];
	const char *p[8], *status;

	if (r == NULL)
		return;
	if (rdb == NULL)
		goto out;
	if (o->result_ok)
		status = "completed";
	else if (o->cls == WORKER_EXIT_TIMEOUT || o->cls == WORKER_EXIT_SILENCE)
		status = "timeout";
	else
		status = "failed";
	if (!o->result_ok || r->dropped > 0) {
		err = json_object();
		json_object_set_new(err, "class",
		    json_string(worker_exit_class_name(o->cls)));
		json_object_set_new(err, "result_status",
		    json_integer(o->result_status));
		set_str(err, "detail", o->detail);
		if (r->dropped > 0)
			json_object_set_new(err, "records_dropped",
			    json_integer((json_int_t)r->dropped));
		errtext = json_dumps(err, JSON_COMPACT | JSON_SORT_KEYS);
	}
	c = xcalloc(1, sizeof(*c));
	snprintf(c->user, sizeof(c->user), "%s", r->user);
	snprintf(c->session, sizeof(c->session), "%s", r->session);
	c->kind = kind_sql(r->kind);
	c->job_id = r->job_id;
	c->status = status;
	u = tenant_unit(r->user, apply_done, c);
	if (o->result_ok && json_array_size(r->records) > 0) {
		records = json_dumps(r->records, JSON_COMPACT);
		if (records == NULL)
			fatalx("out of memory");
		c->n = json_array_size(r->records);
		p[0] = r->user;
		p[1] = r->timezone;
		p[2] = records;
		(void)db_unit_add_prepared(u,
		    r->kind == WORKER_JOB_RECONCILE_NOTES ? sql_notes :
		    sql_schedule, 3, p);
		if (r->kind == WORKER_JOB_RECONCILE_NOTES)
			discharge_outbox_add(u, r->user, records);
	}
	snprintf(synced, sizeof(synced), "%zu", o->result_ok ?
	    r->consultations - r->dropped : 0);
	snprintf(failed, sizeof(failed), "%zu", o->result_ok ? r->dropped :
	    r->consultations);
	p[0] = r->session;
	p[1] = r->user;
	p[2] = kind_sql(r->kind);
	p[3] = status;
	p[4] = synced;
	p[5] = failed;
	p[6] = errtext;
	p[7] = instance;
	(void)db_unit_add_prepared(u, sql_session_end, 8, p);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(rdb, u);
out:
	free(records);
	free(errtext);
	json_decref(err);
	reconcile_free(r);
}

void
reconcile_free(struct reconcile *r)
{
	if (r == NULL)
		return;
	json_decref(r->records);
	free(r);
}
