/*
 * The credential lifecycle in vetsyncd (credentials.h): set = validate in
 * a worker, then store; revoke = a notification from PostgreSQL.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/audit.h"
#include "supervisor/clinics.h"
#include "supervisor/credentials.h"
#include "supervisor/credstore.h"
#include "supervisor/events.h"
#include "supervisor/reconcile.h"
#include "supervisor/vault.h"
#include "supervisor/workers.h"

struct setting {
	char id[CLINIC_ID_MAX + 1];
	struct vault_creds keep;	/* to store once validated */
	uint64_t job;
	credentials_answer_fn *answer;
	void *arg;
};

static json_t *
answer_new(bool success, const char *status, const char *error)
{
	char ts[CLOCK_RFC3339_LEN];
	json_t *a = json_object();

	json_object_set_new(a, "ok", json_true());
	json_object_set_new(a, "success", json_boolean(success));
	json_object_set_new(a, "validationStatus", json_string(status));
	if (success)
		json_object_set_new(a, "lastValidated", json_string(
		    clock_format_rfc3339(clock_wall_ms(), ts, sizeof(ts))));
	if (error != NULL)
		json_object_set_new(a, "error", json_string(error));
	return a;
}

static void
setting_end(struct setting *s, json_t *answer)
{
	vault_creds_release(&s->keep);
	s->answer(answer, s->arg);
	free(s);
}

static void
stored(int r, const char *error, void *arg)
{
	struct setting *s = arg;

	if (r < 0) {
		/* IDEXX said yes, but we could not keep them: say so. */
		setting_end(s, answer_new(false, "valid", error != NULL ? error :
		    credstore_strerror(r)));
		return;
	}
	log_info("clinic=%s: credentials validated and stored", s->id);
	clinic_credentials_set(s->id);
	setting_end(s, answer_new(true, "valid", NULL));
}

static void
validated(const char *id, const struct worker_outcome *o, void *arg)
{
	struct setting *s = arg;
	json_t *f;

	(void)id;
	if (o == NULL) {
		setting_end(s, answer_new(false, "unknown", "cancelled before "
		    "the validation ran (revoked, superseded or stopping)"));
		return;
	}
	if (o->cls == WORKER_EXIT_CLEAN && o->result_ok) {
		events_credential_validated(s->id, true);
		credstore_store(s->id, &s->keep, s->job, stored, s);
		return;
	}
	f = json_object();
	json_object_set_new(f, "outcome", json_string(o->invalid_credentials ?
	    "invalid" : worker_exit_class_name(o->cls)));
	json_object_set_new(f, "detail", json_string(o->detail));
	audit_record("credentials_rejected", s->id, s->job, f);
	if (o->invalid_credentials) {
		events_credential_validated(s->id, false);
		log_info("clinic=%s: IDEXX refused the new credentials; "
		    "nothing stored", s->id);
		setting_end(s, answer_new(false, "invalid", "IDEXX refused "
		    "the username or the password"));
		return;
	}
	log_warnx("clinic=%s: new credentials could not be validated (%s); "
	    "nothing stored", s->id, o->detail);
	setting_end(s, answer_new(false, "unknown", o->detail[0] != '\0' ?
	    o->detail : "the validation job failed"));
}

static json_t *
error_answer(const char *msg)
{
	json_t *a = json_object();

	json_object_set_new(a, "ok", json_false());
	json_object_set_new(a, "error", json_string(msg));
	return a;
}

void
credentials_set(const char *id, const char *username, const char *password,
    const char *company_id, credentials_answer_fn *answer, void *arg)
{
	struct vault_creds *creds;
	struct setting *s;
	int r;

	if (!credstore_enabled()) {
		answer(error_answer("credentials: no database: credentials "
		    "are stored in PostgreSQL only"), arg);
		return;
	}
	if (!reconcile_uuid_valid(id)) {
		answer(error_answer("credentials: a clinic is a user id (a "
		    "lowercase uuid)"), arg);
		return;
	}
	s = xcalloc(1, sizeof(*s));
	creds = xcalloc(1, sizeof(*creds));
	if (vault_creds_set(&s->keep, username, password, company_id) < 0 ||
	    vault_creds_set(creds, username, password, company_id) < 0) {
		vault_creds_release(&s->keep);
		free(creds);
		free(s);
		answer(error_answer("credentials: the username and the "
		    "password must be non-empty single lines"), arg);
		return;
	}
	snprintf(s->id, sizeof(s->id), "%s", id);
	s->answer = answer;
	s->arg = arg;
	audit_record("credentials_submitted", id, 0, NULL);
	r = clinic_validate(id, creds, validated, s);
	if (r < 0) {
		vault_creds_release(&s->keep);
		free(s);
		answer(error_answer(r == -ESHUTDOWN ? "credentials: vetsyncd "
		    "is stopping" : "credentials: invalid clinic id"), arg);
	}
}

void
credentials_notified(const char *channel, const char *payload, void *arg)
{
	json_t *n;
	const char *user, *state;

	(void)channel;
	(void)arg;
	if (payload == NULL) {
		/*
		 * Reconnected: a revocation may have been missed.  Each job
		 * reads the credentials afresh, so only running workers
		 * could still hold revoked ones; they end within the job
		 * timeout, and their clinic's next job finds the row revoked.
		 */
		log_info("credentials: listening again; revocations made "
		    "while disconnected apply from each clinic's next job");
		return;
	}
	if ((n = json_loads(payload, 0, NULL)) == NULL) {
		log_warnx("credentials: unreadable notification '%s'",
		    log_q(payload));
		return;
	}
	user = json_string_value(json_object_get(n, "user_id"));
	state = json_string_value(json_object_get(n, "state"));
	if (user == NULL || state == NULL || !clinic_id_valid(user))
		log_warnx("credentials: notification without a valid "
		    "user_id and state: '%s'", log_q(payload));
	else if (strcmp(state, "revoked") == 0 || strcmp(state, "deleted") == 0)
		clinic_revoke(user, strcmp(state, "revoked") == 0 ?
		    "credentials revoked" : "credentials deleted");
	else if (strcmp(state, "active") == 0 || strcmp(state, "validated") == 0)
		clinic_credentials_set(user);
	json_decref(n);
}
