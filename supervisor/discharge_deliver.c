/*
 * The endpoint QStash delivers discharge calls to (see discharge.h for
 * the decisions): verify, claim in PostgreSQL, dial VAPI, record, answer.
 * A delivery is a small state machine carried by struct delivery through
 * three callbacks: the claim's unit, VAPI's answer, the record's unit.  The
 * answer to QStash goes out last, once the outcome is written (or could
 * not be: then the row stays 'claimed', which never dials again).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/xmalloc.h"

#include "supervisor/api.h"
#include "supervisor/config.h"
#include "supervisor/db.h"
#include "supervisor/discharge_int.h"
#include "supervisor/discharge_rules.h"
#include "supervisor/outbound.h"
#include "supervisor/qstash_verify.h"
#include "supervisor/supervisor.h"

#define DELIVERY_BODY_MAX	4096
#define VAPI_HTTP_MS		15000
#define SIGNATURE_TOLERANCE_S	5

struct delivery {
	struct api_request *req;
	char call[37];
	char dedup[DISCHARGE_TOKEN_MAX + 1];
	char message[DISCHARGE_TOKEN_MAX + 1];
	char user[37];
	char consultation[256];
	int answer;			/* to QStash, once recorded */
	const char *outcome;		/* for the audit */
};

/*
 * The claim: $1 id, $2 dedup id, $3 instance.  pending/published, or a
 * claim whose dial VAPI refused before making a call.
 */
static const char sql_claim[] =
    "UPDATE scheduled_discharge_calls d SET status = 'claimed',"
    " claimed_at = now(), claimed_by = $3, dial_retry = false"
    " WHERE d.id = $1::uuid AND d.dedup_id = $2"
    " AND (d.status IN ('pending', 'published')"
    "  OR (d.status = 'claimed' AND d.dial_retry AND d.vapi_call_id IS NULL))"
    " RETURNING d.user_id, d.consultation_id, d.customer_phone, d.pet_name,"
    " (SELECT u.clinic_name FROM users u WHERE u.id = d.user_id)";

/* $1 id, $2 status, $3 vapi call id, $4 dial_retry, $5 error. */
static const char sql_outcome[] =
    "UPDATE scheduled_discharge_calls SET status = $2, vapi_call_id = $3,"
    " dial_retry = $4::boolean, last_error = $5::jsonb"
    " WHERE id = $1::uuid AND status = 'claimed' AND vapi_call_id IS NULL";

/* Answer and free d; once stopping, the API has let the request go. */
static void
reply(struct delivery *d, int status, const char *what)
{
	if (!ds.stopping)
		api_reply(d->req, status, json_pack("{s:s}", status < 300 ?
		    "status" : "error", what));
	free(d);
}

static void
outcome_done(int r, const char *error, const struct db_result *rows,
    void *arg)
{
	struct delivery *d = arg;

	(void)rows;
	if (r < 0 && r != -ECANCELED)
		log_warnx("discharge call %s: cannot record the dial's outcome "
		    "(%s): %s; it stays claimed", d->call, d->outcome,
		    error != NULL ? error : strerror(-r));
	reply(d, d->answer, d->outcome);
}

/* Record the outcome, then answer QStash with d->answer. */
static void
record_outcome(struct delivery *d, const char *status, const char *vapi_id,
    bool retry, const char *err)
{
	const char *p[5];

	p[0] = d->call;
	p[1] = status;
	p[2] = vapi_id;
	p[3] = retry ? "true" : "false";
	p[4] = err;
	db_async_submit(ds.db, discharge_service_unit(outcome_done, d,
	    sql_outcome, 5, p));
}

static void
dialled(const struct outbound_response *a, void *arg)
{
	struct delivery *d = arg;
	json_t *j = NULL;
	const char *id = NULL;
	char *err = NULL;
	const char *status;
	bool retry = false;

	if (a->error == -ECANCELED) {
		/* Stopping: the row stays claimed; never dialled twice. */
		reply(d, 503, "vetsyncd is stopping");
		return;
	}
	if (a->error == 0 && a->status >= 200 && a->status < 300) {
		j = json_loadb(a->body, a->len, 0, NULL);
		id = json_string_value(json_object_get(j, "id"));
		if (id == NULL)
			err = discharge_error_json("vapi", a->status,
			    "answer without a call id");
	}
	if (id != NULL) {
		status = "completed";
		d->answer = 200;
		d->outcome = "dialled";
	} else if (a->error == -ECONNREFUSED || (a->error == 0 &&
	    (a->status == 429 || a->status >= 500))) {
		/* No call was made: QStash may deliver again. */
		err = a->error < 0 ? discharge_error_json("vapi_unreachable", 0,
		    a->error_text) : discharge_error_json("vapi", a->status,
		    NULL);
		status = "claimed";
		retry = true;
		d->answer = 500;
		d->outcome = "vapi unavailable; retry";
	} else {
		if (err == NULL && a->error < 0)
			err = discharge_error_json("vapi_outcome_unknown", 0,
			    a->error_text);
		else if (err == NULL) {
			j = j != NULL ? j : json_loadb(a->body, a->len, 0, NULL);
			err = discharge_error_json("vapi", a->status,
			    json_string_value(json_object_get(j, "message")));
		}
		status = "failed";
		d->answer = 200;
		d->outcome = a->error < 0 ? "outcome unknown; not retried" :
		    "refused by vapi";
	}
	discharge_audit("discharge_dialled", d->user, retry ? "retry" :
	    strcmp(status, "completed") == 0 ? "ok" : "failed", d->call,
	    d->consultation, json_pack("{s:I,s:s?}", "http_status",
	    (json_int_t)a->status, "vapi_call_id", id));
	if (id != NULL)
		log_info("discharge call %s: dialled, VAPI call %s", d->call,
		    log_q(id));
	else
		log_warnx("discharge call %s: %s (%s)", d->call, d->outcome,
		    a->error < 0 ? a->error_text : "VAPI answered an error");
	record_outcome(d, status, id, retry, err);
	free(err);
	json_decref(j);
}

static void
dial(struct delivery *d, const char *phone, const char *pet,
    const char *clinic)
{
	struct outbound_request rq;
	struct buf url, auth;
	char e164[DISCHARGE_E164_MAX], *body;
	json_t *j, *vars;
	int r;

	if (discharge_e164(phone, e164, sizeof(e164)) < 0) {
		char *err = discharge_error_json("customer", 0, phone == NULL ?
		    "the client has no phone number" :
		    "the client's phone number is not E.164");

		log_warnx("discharge call %s: the client's number is missing "
		    "or not E.164; not dialled", d->call);
		discharge_audit("discharge_dialled", d->user, "failed",
		    d->call, d->consultation, json_pack("{s:s}", "reason",
		    "no E.164 number"));
		d->answer = 200;
		d->outcome = "no E.164 number";
		record_outcome(d, "failed", NULL, false, err);
		free(err);
		return;
	}
	vars = json_object();
	if (pet != NULL)
		json_object_set_new(vars, "petName", json_string(pet));
	if (clinic != NULL)
		json_object_set_new(vars, "clinicName", json_string(clinic));
	/* assistantOverrides.metadata ties VAPI's call to our row. */
	j = json_pack("{s:s,s:{s:s},s:{s:o,s:{s:s}}}", "assistantId",
	    sv->config->discharge.vapi_assistant_id, "customer", "number", e164,
	    "assistantOverrides", "variableValues", vars, "metadata",
	    "dischargeCallId", d->call);
	if (j == NULL)
		fatalx("out of memory");
	if (sv->config->discharge.vapi_phone_number_id != NULL)
		json_object_set_new(j, "phoneNumberId", json_string(
		    sv->config->discharge.vapi_phone_number_id));
	if ((body = json_dumps(j, JSON_COMPACT)) == NULL)
		fatalx("out of memory");
	json_decref(j);
	memset(&rq, 0, sizeof(rq));
	buf_init(&url, 4096);
	buf_init(&auth, 0);
	(void)buf_printf(&url, "%s%scall", sv->config->discharge.vapi_url,
	    sv->config->discharge.vapi_url[strlen(
	    sv->config->discharge.vapi_url) - 1] == '/' ? "" : "/");
	(void)buf_printf(&auth, "Authorization: Bearer %s", ds.vapi_key.data);
	rq.method = "POST";
	rq.url = url.data;
	rq.headers[0] = auth.data;
	rq.headers[1] = "Content-Type: application/json";
	rq.headers[2] = NULL;
	rq.body = body;
	rq.len = strlen(body);
	rq.timeout_ms = VAPI_HTTP_MS;
	rq.response_max = 256 * 1024;
	r = outbound_send(&rq, dialled, d);
	buf_release_secret(&auth);
	buf_release(&url);
	free(body);
	if (r < 0) {
		char *err = discharge_error_json("request", 0, strerror(-r));

		/* Nothing was sent: as VAPI unavailable. */
		d->answer = 500;
		d->outcome = "cannot reach vapi; retry";
		record_outcome(d, "claimed", NULL, true, err);
		free(err);
	}
}

static void
claimed(int r, const char *error, const struct db_result *rows, void *arg)
{
	struct delivery *d = arg;

	if (r < 0) {
		if (r != -ECANCELED)
			log_warnx("discharge call %s: cannot claim: %s", d->call,
			    error != NULL ? error : strerror(-r));
		reply(d, 503, "the database is unavailable");
		return;
	}
	if (db_result_rows(rows) != 1) {
		log_info("discharge call %s: delivery of %s claims nothing "
		    "(a duplicate, or a call cancelled or rescheduled)",
		    d->call, d->message);
		discharge_audit("discharge_delivery", NULL, "duplicate",
		    d->call, NULL, json_pack("{s:s}", "message_id",
		    d->message));
		reply(d, 200, "duplicate");
		return;
	}
	snprintf(d->user, sizeof(d->user), "%s",
	    db_result_value(rows, 0, 0) != NULL ? db_result_value(rows, 0, 0) :
	    "");
	snprintf(d->consultation, sizeof(d->consultation), "%s",
	    db_result_value(rows, 0, 1) != NULL ? db_result_value(rows, 0, 1) :
	    "");
	discharge_audit("discharge_claimed", d->user, "ok", d->call,
	    d->consultation, json_pack("{s:s,s:s}", "message_id", d->message,
	    "instance", ds.instance));
	dial(d, db_result_value(rows, 0, 2), db_result_value(rows, 0, 3),
	    db_result_value(rows, 0, 4));
}

static void
deliver(struct api_request *req, const char *signature,
    const char *message_id, const char *retried, const unsigned char *body,
    size_t len, void *arg)
{
	struct qstash_verify_args va;
	struct delivery *d;
	char reason[QSTASH_REASON_MAX];
	json_t *j;
	const char *call, *dedup, *p[3];

	(void)arg;
	if (!ds.enabled || ds.db == NULL) {
		api_reply(req, 503, json_pack("{s:s}", "error",
		    "discharge calls are not enabled"));
		return;
	}
	memset(&va, 0, sizeof(va));
	va.current_key = ds.current_key.data;
	va.next_key = ds.next_key.data;
	va.url = ds.delivery_url;
	va.now = (int64_t)time(NULL);
	va.tolerance = SIGNATURE_TOLERANCE_S;
	if (signature == NULL || qstash_verify(&va, signature, body, len,
	    reason, sizeof(reason)) < 0) {
		if (signature == NULL)
			snprintf(reason, sizeof(reason), "no Upstash-Signature");
		log_warnx("discharge delivery refused: %s", reason);
		discharge_audit("discharge_delivery", NULL, "bad_signature",
		    NULL, NULL, json_pack("{s:s}", "reason", reason));
		api_reply(req, 401, json_pack("{s:s}", "error",
		    "Upstash-Signature does not verify"));
		return;
	}
	if (len > DELIVERY_BODY_MAX ||
	    (j = json_loadb((const char *)body, len, 0, NULL)) == NULL) {
		api_reply(req, 400, json_pack("{s:s}", "error",
		    "body is not a JSON object of a discharge call"));
		return;
	}
	call = json_string_value(json_object_get(j, "call"));
	dedup = json_string_value(json_object_get(j, "dedup"));
	if (call == NULL || !parse_uuid_ok(call) || !discharge_token_valid(dedup)) {
		json_decref(j);
		api_reply(req, 400, json_pack("{s:s}", "error",
		    "body: 'call' must be a uuid and 'dedup' an id"));
		return;
	}
	d = xcalloc(1, sizeof(*d));
	d->req = req;
	snprintf(d->call, sizeof(d->call), "%s", call);
	snprintf(d->dedup, sizeof(d->dedup), "%s", dedup);
	snprintf(d->message, sizeof(d->message), "%s",
	    discharge_token_valid(message_id) ? message_id : "?");
	json_decref(j);
	log_info("discharge call %s: delivery of %s (retried %s)", d->call,
	    d->message, retried != NULL && discharge_token_valid(retried) ?
	    retried : "?");
	discharge_audit("discharge_delivery", NULL, "ok", d->call, NULL,
	    json_pack("{s:s}", "message_id", d->message));
	p[0] = d->call;
	p[1] = d->dedup;
	p[2] = ds.instance;
	db_async_submit(ds.db, discharge_service_unit(claimed, d, sql_claim, 3,
	    p));
}

int
discharge_deliver_start(void)
{
	const char *u = ds.delivery_url, *path;
	char copy[1024];

	if (u == NULL || (path = strstr(u, "://")) == NULL ||
	    (path = strchr(path + 3, '/')) == NULL) {
		log_warnx("discharge.delivery_url '%s': no path to serve",
		    u != NULL ? log_q(u) : "");
		return -EINVAL;
	}
	if (strlen(path) >= sizeof(copy))
		return -EINVAL;
	snprintf(copy, sizeof(copy), "%.*s", (int)strcspn(path, "?#"), path);
	api_delivery_register(copy, deliver, NULL);
	return 0;
}
