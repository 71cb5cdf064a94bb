/*
 * Clinics' credentials in PostgreSQL (credstore.h).  Each operation is one
 * unit of the event loop's database layer: BEGIN, the tenant's role and
 * claims, the statement, COMMIT, pipelined.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/audit.h"
#include "supervisor/config.h"
#include "supervisor/credcrypt.h"
#include "supervisor/credstore.h"
#include "supervisor/db.h"
#include "supervisor/reconcile.h"
#include "supervisor/supervisor.h"

static struct db_async *cdb;
static struct credcrypt *ccache;

static const char sql_role[] = "SET LOCAL ROLE vetsync_tenant";
static const char sql_claims[] =
    "SELECT set_config('request.jwt.claims', "
    "json_build_object('sub', $1::text, 'role', 'authenticated')::text, "
    "true)";

static const char sql_fetch[] =
    "SELECT c.state, c.encrypted_username, c.encrypted_password, "
    "c.encrypted_company_id, u.timezone "
    "FROM users u LEFT JOIN idexx_credentials c ON c.user_id = u.id "
    "WHERE u.id = $1::uuid";

static const char sql_store[] =
    "INSERT INTO idexx_credentials AS c (user_id, encrypted_username, "
    "encrypted_password, encrypted_company_id, encryption_key_id, state, "
    "validation_status, last_validated_at, revoked_at) "
    "SELECT $1::uuid, $2, $3, $4, $5, "
    "CASE WHEN u.idexx_sync_enabled THEN 'active' ELSE 'validated' END, "
    "'valid', now(), NULL FROM users u WHERE u.id = $1::uuid "
    "ON CONFLICT (user_id) DO UPDATE SET "
    "encrypted_username = excluded.encrypted_username, "
    "encrypted_password = excluded.encrypted_password, "
    "encrypted_company_id = excluded.encrypted_company_id, "
    "encryption_key_id = excluded.encryption_key_id, "
    "state = excluded.state, validation_status = 'valid', "
    "last_validated_at = now(), revoked_at = NULL";

static const char sql_mark_valid[] =
    "UPDATE idexx_credentials c SET validation_status = 'valid', "
    "last_validated_at = now(), state = CASE WHEN u.idexx_sync_enabled "
    "THEN 'active' ELSE 'validated' END "
    "FROM users u WHERE c.user_id = $1::uuid AND u.id = c.user_id "
    "AND c.state <> 'revoked'";

static const char sql_mark_invalid[] =
    "UPDATE idexx_credentials SET validation_status = 'invalid', "
    "state = 'suspended' WHERE user_id = $1::uuid AND state <> 'revoked'";

void
credstore_init(struct db_async *db, struct credcrypt *cc)
{
	cdb = db;
	ccache = cc;
}

bool
credstore_enabled(void)
{
	return cdb != NULL && ccache != NULL;
}

const char *
credstore_strerror(int r)
{
	switch (r) {
	case -ENOENT:
		return "not configured";
	case -EKEYREVOKED:
		return "revoked";
	case -EKEYREJECTED:
		return "suspended: IDEXX refused them";
	case -ENOKEY:
		return "master key missing";
	case -EBADMSG:
		return "ciphertext does not authenticate";
	case -ECANCELED:
		return "cancelled";
	case -ENOBUFS:
		return "database queue full";
	}
	return "database error";
}

/* A unit scoped to clinic's tenant: BEGIN, role, claims. */
static void
unit_begin(struct db_unit *u, const char *clinic)
{
	const char *p[1] = { clinic };

	(void)db_unit_add(u, "BEGIN", 0, NULL);
	(void)db_unit_add(u, sql_role, 0, NULL);
	(void)db_unit_add(u, sql_claims, 1, p);
}

struct fetch {
	char clinic[40];
	uint64_t job;
	const char *purpose;
	credstore_fetch_cb *cb;
	void *arg;
};

/* Decrypt one column into out (a fresh buffer); "" for SQL NULL. */
static int
decrypt_field(const char *json, struct buf *out, char *err, size_t errsz)
{
	int r;

	buf_init(out, 0);
	if (json == NULL)
		return 0;
	r = credcrypt_decrypt(ccache, json, out, err, errsz);
	return r == -ENOENT ? -ENOKEY : r;
}

static int
fetch_decrypt(const struct db_result *rows, struct vault_creds *creds,
    char *err, size_t errsz)
{
	struct buf user, pass, company;
	const char *state;
	int r;

	if (db_result_rows(rows) == 0) {
		snprintf(err, errsz, "no such user");
		return -ENOENT;
	}
	state = db_result_value(rows, 0, 0);
	if (state == NULL) {
		snprintf(err, errsz, "no credentials stored");
		return -ENOENT;
	}
	if (strcmp(state, "revoked") == 0) {
		snprintf(err, errsz, "credentials revoked");
		return -EKEYREVOKED;
	}
	if (strcmp(state, "suspended") == 0) {
		snprintf(err, errsz, "credentials suspended: IDEXX refused "
		    "them; set them again");
		return -EKEYREJECTED;
	}
	if ((r = decrypt_field(db_result_value(rows, 0, 1), &user, err,
	    errsz)) < 0)
		return r;
	if ((r = decrypt_field(db_result_value(rows, 0, 2), &pass, err,
	    errsz)) < 0) {
		buf_release_secret(&user);
		return r;
	}
	if ((r = decrypt_field(db_result_value(rows, 0, 3), &company, err,
	    errsz)) < 0) {
		buf_release_secret(&user);
		buf_release_secret(&pass);
		return r;
	}
	r = vault_creds_set(creds, user.data != NULL ? user.data : "",
	    pass.data != NULL ? pass.data : "", company.data);
	buf_release_secret(&user);
	buf_release_secret(&pass);
	buf_release_secret(&company);
	if (r < 0)
		snprintf(err, errsz, "stored credentials are malformed "
		    "(empty or multi-line)");
	return r;
}

static void
fetch_done(int r, const char *error, const struct db_result *rows, void *arg)
{
	struct fetch *f = arg;
	struct vault_creds *creds = NULL;
	const char *tz = NULL;
	char err[CREDSTORE_ERR_MAX] = "";
	json_t *a;

	if (r == 0) {
		creds = xcalloc(1, sizeof(*creds));
		r = fetch_decrypt(rows, creds, err, sizeof(err));
		if (r < 0) {
			free(creds);
			creds = NULL;
		} else if (db_result_rows(rows) > 0)
			tz = db_result_value(rows, 0, 4);
	} else
		snprintf(err, sizeof(err), "%s", error != NULL ? error :
		    credstore_strerror(r));
	if (r != -ECANCELED) {
		a = json_object();
		json_object_set_new(a, "purpose", json_string(f->purpose));
		json_object_set_new(a, "source", json_string("database"));
		json_object_set_new(a, "ok", json_boolean(r == 0));
		if (r < 0)
			json_object_set_new(a, "reason", json_string(err));
		audit_record("credential_access", f->clinic, f->job, a);
	}
	f->cb(r, err, creds, tz, f->arg);
	free(f);
}

void
credstore_fetch(const char *clinic, uint64_t job, const char *purpose,
    credstore_fetch_cb *cb, void *arg)
{
	struct fetch *f;
	struct db_unit *u;
	const char *p[1] = { clinic };

	if (!credstore_enabled() || !reconcile_uuid_valid(clinic)) {
		cb(-ENOENT, "no credential store for this clinic", NULL, NULL,
		    arg);
		return;
	}
	f = xcalloc(1, sizeof(*f));
	snprintf(f->clinic, sizeof(f->clinic), "%s", clinic);
	f->job = job;
	f->purpose = purpose;
	f->cb = cb;
	f->arg = arg;
	u = db_unit_new_rows(fetch_done, f);
	unit_begin(u, clinic);
	(void)db_unit_add(u, sql_fetch, 1, p);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(cdb, u);
}

struct store {
	char clinic[40];
	uint64_t job;
	const char *event;
	credstore_done_cb *cb;
	void *arg;
};

static void
store_done(int r, const char *error, void *arg)
{
	struct store *s = arg;
	json_t *a = json_object();

	json_object_set_new(a, "ok", json_boolean(r == 0));
	if (r < 0 && error != NULL)
		json_object_set_new(a, "reason", json_string(error));
	if (s->event != NULL)
		audit_record(s->event, s->clinic, s->job, a);
	else
		json_decref(a);
	if (r < 0)
		log_warnx("clinic=%s: cannot record its credentials: %s",
		    s->clinic, error != NULL ? error : credstore_strerror(r));
	if (s->cb != NULL)
		s->cb(r, error, s->arg);
	free(s);
}

static struct store *
store_new(const char *clinic, uint64_t job, const char *event,
    credstore_done_cb *cb, void *arg)
{
	struct store *s = xcalloc(1, sizeof(*s));

	snprintf(s->clinic, sizeof(s->clinic), "%s", clinic);
	s->job = job;
	s->event = event;
	s->cb = cb;
	s->arg = arg;
	return s;
}

void
credstore_store(const char *clinic, const struct vault_creds *creds,
    uint64_t job, credstore_done_cb *cb, void *arg)
{
	char err[CREDCRYPT_ERR_MAX];
	char *user = NULL, *pass = NULL, *company = NULL;
	/* Read at each store: a reload may change it. */
	const char *write_key_id = sv->config->credentials.key_id;
	const char *p[5];
	struct db_unit *u;
	int r;

	if (!credstore_enabled() || !reconcile_uuid_valid(clinic)) {
		if (cb != NULL)
			cb(-ENOENT, "no credential store for this clinic", arg);
		return;
	}
	r = credcrypt_encrypt(ccache, write_key_id, creds->username,
	    strlen(creds->username), &user, err, sizeof(err));
	if (r == 0)
		r = credcrypt_encrypt(ccache, write_key_id, creds->password,
		    strlen(creds->password), &pass, err, sizeof(err));
	if (r == 0 && creds->company_id != NULL)
		r = credcrypt_encrypt(ccache, write_key_id, creds->company_id,
		    strlen(creds->company_id), &company, err, sizeof(err));
	if (r < 0) {
		log_warnx("clinic=%s: cannot encrypt its credentials: %s",
		    clinic, err);
		if (cb != NULL)
			cb(r, err, arg);
		goto out;
	}
	p[0] = clinic;
	p[1] = user;
	p[2] = pass;
	p[3] = company;
	p[4] = write_key_id;
	u = db_unit_new(store_done, store_new(clinic, job, "credentials_stored",
	    cb, arg));
	unit_begin(u, clinic);
	(void)db_unit_add(u, sql_store, 5, p);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(cdb, u);
out:
	free(user);
	free(pass);
	free(company);
}

void
credstore_mark(const char *clinic, bool valid, uint64_t job)
{
	const char *p[1] = { clinic };
	struct db_unit *u;

	if (!credstore_enabled() || !reconcile_uuid_valid(clinic))
		return;
	/* A suspension is audited by the caller, which holds the clinic. */
	u = db_unit_new(store_done, store_new(clinic, job, valid ?
	    "credentials_validated" : NULL, NULL, NULL));
	unit_begin(u, clinic);
	(void)db_unit_add(u, valid ? sql_mark_valid : sql_mark_invalid, 1, p);
	(void)db_unit_add(u, "COMMIT", 0, NULL);
	db_async_submit(cdb, u);
}
