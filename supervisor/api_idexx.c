/*
 * The HTTP API's routes of PRD §7 (api_int.h): configure-credentials,
 * sync-status, trigger-sync, the revocation of credentials and the admin
 * metrics.  The token is checked before these run (api.c).  What a user
 * reads or changes goes through the event loop's database layer in one
 * unit scoped to the user's tenant (BEGIN, SET LOCAL ROLE vetsync_tenant,
 * the claims), as credstore.c does; the admin metrics read as service_role.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <jansson.h>

#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/api.h"
#include "supervisor/api_int.h"
#include "supervisor/audit.h"
#include "supervisor/clinics.h"
#include "supervisor/credentials.h"
#include "supervisor/credstore.h"
#include "supervisor/db.h"
#include "supervisor/jwt.h"
#include "supervisor/supervisor.h"
#include "supervisor/workers.h"

static const char sql_role[] = "SET LOCAL ROLE vetsync_tenant";
static const char sql_claims[] =
    "SELECT set_config('request.jwt.claims', "
    "json_build_object('sub', $1::text, 'role', 'authenticated')::text, "
    "true)";
#define ISO(col) "to_char(" col " AT TIME ZONE 'UTC', " \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
static const char sql_status[] =
    "SELECT u.idexx_sync_enabled, c.state, c.validation_status, s.status, "
    ISO("coalesce(s.completed_at, s.started_at)") ", "
    "coalesce(s.consultations_synced, 0), "
    "coalesce(s.discharge_calls_scheduled, 0), "
    ISO("s.next_scheduled_sync") " "
    "FROM users u LEFT JOIN idexx_credentials c ON c.user_id = u.id "
    "LEFT JOIN LATERAL (SELECT * FROM idexx_sync_sessions x "
    "WHERE x.user_id = u.id AND x.kind = 'notes' "
    "ORDER BY x.started_at DESC LIMIT 1) s ON true WHERE u.id = $1::uuid";
#define FAILED "status IN ('failed', 'timeout')"
static const char sql_admin[] =
    "SELECT json_build_object("
    "'totalClinics', (SELECT count(*) FROM users), "
    "'enabledClinics', (SELECT count(*) FROM users "
    "WHERE idexx_sync_enabled), "
    "'lastHour', (SELECT json_build_object('syncs', count(*), "
    "'failures', count(*) FILTER (WHERE " FAILED ")) "
    "FROM idexx_sync_sessions WHERE kind = 'notes' "
    "AND started_at > now() - interval '1 hour'), "
    "'last24Hours', (SELECT json_build_object('syncs', count(*), "
    "'failures', count(*) FILTER (WHERE " FAILED "), "
    "'consultationsSynced', coalesce(sum(consultations_synced), 0), "
    "'dischargeCallsScheduled', "
    "coalesce(sum(discharge_calls_scheduled), 0), "
    "'averageSyncTime', coalesce(round(avg(extract(epoch FROM "
    "completed_at - started_at)) FILTER (WHERE status = 'completed'), 3), "
    "0)) FROM idexx_sync_sessions WHERE kind = 'notes' "
    "AND started_at > now() - interval '24 hours'), "
    "'errorLog', (SELECT coalesce(json_agg(e), '[]') FROM ("
    "SELECT " ISO("started_at") " AS timestamp, user_id::text AS clinic, "
    "coalesce(error_details->>'error', error_details::text, status) "
    "AS error FROM idexx_sync_sessions WHERE " FAILED " "
    "AND started_at > now() - interval '24 hours' "
    "ORDER BY started_at DESC LIMIT 20) e))::text";

struct revoking {
	struct api_request *ar;
	char sub[37];
};

/* configure-credentials: the answer of credentials_set(). */
static void
credentials_answered(json_t *a, void *arg)
{
	struct api_request *ar = arg;
	const char *status = json_string_value(json_object_get(a,
	    "validationStatus"));
	const char *error = json_string_value(json_object_get(a, "error"));
	int code;

	json_object_del(a, "ok");
	if (status == NULL)
		code = error != NULL && (strstr(error, "stopping") != NULL ||
		    strstr(error, "no database") != NULL) ? 503 : 400;
	else if (json_is_true(json_object_get(a, "success")))
		code = 200;
	else if (strcmp(status, "invalid") == 0)
		code = 422;
	else
		code = 503;
	api_reply(ar, code, a);
}

/* POST /api/idexx/configure-credentials {username, password, companyId?} */
void
api_route_configure(struct api_request *ar, const struct jwt_claims *c)
{
	const char *user, *pass, *company = NULL;
	json_t *body;

	if ((body = api_body_json(ar, true)) == NULL)
		return;
	if ((user = api_body_string(ar, body, "username", true)) == NULL ||
	    (pass = api_body_string(ar, body, "password", true)) == NULL)
		goto out;
	if (json_object_get(body, "companyId") != NULL &&
	    !json_is_null(json_object_get(body, "companyId")) &&
	    (company = api_body_string(ar, body, "companyId", false)) == NULL)
		goto out;
	log_info("api: clinic=%s: new credentials submitted", c->sub);
	credentials_set(c->sub, user, pass, company, credentials_answered, ar);
out:
	/* vetsyncd's jansson frees wiped: the password goes here. */
	json_decref(body);
}

/* A unit scoped to the clinic's tenant: BEGIN, role, claims. */
static struct db_unit *
tenant_unit(const char *sub, db_unit_rows_cb *cb, void *arg)
{
	struct db_unit *u = db_unit_new_rows(cb, arg);
	const char *p[1] = { sub };

	(void)db_unit_add(u, "BEGIN", 0, NULL);
	(void)db_unit_add(u, sql_role, 0, NULL);
	(void)db_unit_add(u, sql_claims, 1, p);
	return u;
}

/* False (after answering 503) when the database layer is not there. */
static bool
database_ready(struct api_request *ar)
{
	if (api_db() != NULL && db_async_connected(api_db()))
		return true;
	api_error(ar, 503, "database: not connected; try again later");
	return false;
}

static void
status_rows(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	struct api_request *ar = arg;
	const char *state, *valid, *st;
	const char *cred = "not_configured";

	if (r < 0) {
		log_warnx("api: sync-status: %s", error != NULL ? error :
		    strerror(-r));
		api_error(ar, 503, "database: the sync status could not be "
		    "read");
		return;
	}
	if (db_result_rows(rows) == 0) {
		api_error(ar, 404, "no such user: the token's sub has no "
		    "users row");
		return;
	}
	state = db_result_value(rows, 0, 1);
	valid = db_result_value(rows, 0, 2);
	if (state != NULL && strcmp(state, "revoked") != 0)
		cred = strcmp(state, "suspended") == 0 || valid == NULL ||
		    strcmp(valid, "valid") != 0 ? "invalid" : "valid";
	st = db_result_value(rows, 0, 3);
	if (st != NULL && strcmp(st, "timeout") == 0)
		st = "failed";
	api_reply(ar, 200, json_pack("{s:o,s:o,s:b,s:s}",
	    "lastSync", st == NULL ? json_null() :
	    json_pack("{s:o,s:s,s:I,s:I}",
	    "timestamp", api_nullable(db_result_value(rows, 0, 4)),
	    "status", st,
	    "consultationsSynced",
	    (json_int_t)strtoll(db_result_value(rows, 0, 5), NULL, 10),
	    "dischargeCallsScheduled",
	    (json_int_t)strtoll(db_result_value(rows, 0, 6), NULL, 10)),
	    "nextScheduledSync", api_nullable(db_result_value(rows, 0, 7)),
	    "syncEnabled", strcmp(db_result_value(rows, 0, 0), "t") == 0,
	    "credentialStatus", cred));
}

/* GET /api/idexx/sync-status */
void
api_route_status(struct api_request *ar, const struct jwt_claims *c)
{
	const char *p[1] = { c->sub };
	struct db_unit *u;

	if (!database_ready(ar))
		return;
	u = tenant_unit(c->sub, status_rows, ar);
	(void)db_unit_add(u, sql_status, 1, p);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(api_db(), u);
}

/* POST /api/idexx/trigger-sync {"kind": "notes"|"schedule"}? */
void
api_route_trigger(struct api_request *ar, const struct jwt_claims *c)
{
	enum worker_job_kind kind = WORKER_JOB_RECONCILE_NOTES;
	const struct clinic *cl;
	const char *k;
	json_t *body;
	int r;

	if ((body = api_body_json(ar, false)) == NULL)
		return;
	if (json_object_get(body, "kind") != NULL) {
		k = json_string_value(json_object_get(body, "kind"));
		if (k != NULL && strcmp(k, "schedule") == 0)
			kind = WORKER_JOB_SYNC_SCHEDULE;
		else if (k == NULL || strcmp(k, "notes") != 0) {
			json_decref(body);
			api_error(ar, 400, "body: 'kind' must be \"notes\" "
			    "or \"schedule\"");
			return;
		}
	}
	json_decref(body);
	if ((r = clinic_request(c->sub, kind, true)) < 0) {
		api_error(ar, r == -ESHUTDOWN ? 503 : 400, "trigger-sync: %s",
		    r == -ESHUTDOWN ? "vetsyncd is stopping" :
		    "the token's sub is not a clinic id");
		return;
	}
	clinics_pump();
	cl = clinic_find(c->sub);
	log_info("api: clinic=%s: %s sync requested", c->sub,
	    worker_job_kind_name(kind));
	api_reply(ar, 202, json_pack("{s:b,s:s,s:s,s:s}", "queued", true,
	    "state", cl != NULL ? clinic_state_name(clinic_state(cl)) :
	    "queued",
	    "status", cl != NULL && clinic_state(cl) == CLINIC_RUNNING ?
	    "started" : "queued", "kind",
	    kind == WORKER_JOB_SYNC_SCHEDULE ? "schedule" : "notes"));
}

static void
revoke_rows(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	struct revoking *rv = arg;
	bool found;

	if (r < 0) {
		log_warnx("api: clinic=%s: revoke: %s", rv->sub,
		    error != NULL ? error : strerror(-r));
		api_error(rv->ar, 503, "database: the credentials could not "
		    "be revoked");
		free(rv);
		return;
	}
	found = db_result_rows(rows) > 0;
	audit_record("credentials_revoked", rv->sub, 0, json_pack("{s:s,s:b}",
	    "reason", "revoked through the HTTP API", "found", found));
	log_info("api: clinic=%s: credentials %s", rv->sub, found ?
	    "revoked" : "not revoked (none stored, or revoked already)");
	api_reply(rv->ar, 200, json_pack("{s:b}", "revoked", found));
	free(rv);
}

/* DELETE /api/idexx/credentials: the trigger's NOTIFY kills the worker. */
void
api_route_revoke(struct api_request *ar, const struct jwt_claims *c)
{
	struct revoking *rv;
	struct db_unit *u;
	const char *p[1] = { c->sub };

	if (!database_ready(ar))
		return;
	rv = xcalloc(1, sizeof(*rv));
	rv->ar = ar;
	snprintf(rv->sub, sizeof(rv->sub), "%s", c->sub);
	u = tenant_unit(c->sub, revoke_rows, rv);
	(void)db_unit_add(u, CREDSTORE_SQL_REVOKE, 1, p);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(api_db(), u);
}

static void
admin_rows(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	struct api_request *ar = arg;
	json_t *m, *day, *hour;
	json_int_t syncs, fails;
	const char *text;

	if (r < 0 || db_result_rows(rows) != 1 ||
	    (text = db_result_value(rows, 0, 0)) == NULL ||
	    (m = json_loads(text, 0, NULL)) == NULL) {
		log_warnx("api: admin metrics: %s", error != NULL ? error :
		    "no result");
		api_error(ar, 503, "database: the metrics could not be read");
		return;
	}
	day = json_object_get(m, "last24Hours");
	hour = json_object_get(m, "lastHour");
	syncs = json_integer_value(json_object_get(day, "syncs"));
	fails = json_integer_value(json_object_get(day, "failures"));
	json_object_set_new(m, "successRate", json_real(syncs > 0 ?
	    100.0 * (double)(syncs - fails) / (double)syncs : 100.0));
	json_object_set(m, "averageSyncTime",
	    json_object_get(day, "averageSyncTime"));
	syncs = json_integer_value(json_object_get(hour, "syncs"));
	fails = json_integer_value(json_object_get(hour, "failures"));
	json_object_set_new(m, "failureRateLastHour", json_real(syncs > 0 ?
	    (double)fails / (double)syncs : 0.0));
	json_object_set_new(m, "clinics", api_clinics_json());
	json_object_set_new(m, "running", json_integer(clinics_running()));
	json_object_set_new(m, "queued", json_integer(clinics_queued()));
	json_object_set_new(m, "workers", json_integer(workers_count()));
	api_reply(ar, 200, m);
}

/* GET /api/admin/idexx-sync/metrics (admin or service role) */
void
api_route_admin(struct api_request *ar, const struct jwt_claims *c)
{
	struct db_unit *u;

	if (!database_ready(ar))
		return;
	u = db_unit_new_rows(admin_rows, ar);
	(void)db_unit_add(u, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	    0, NULL);
	(void)db_unit_add(u, "SET LOCAL ROLE service_role", 0, NULL);
	(void)db_unit_add(u, sql_admin, 0, NULL);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(api_db(), u);
}
