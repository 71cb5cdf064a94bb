/*
 * PostgreSQL through libpq (db.h): the only file of vetsync that includes
 * libpq-fe.h.  Server notices (CREATE ... IF NOT EXISTS and the like) go to
 * the debug log, not to stderr.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/buf.h"
#include "common/log.h"

#include "supervisor/config.h"
#include "supervisor/db.h"
#include "supervisor/secrets.h"

struct db {
	PGconn *conn;
	char target[256];
	char error[DB_ERR_MAX];
	char sqlstate[6];
};

struct db_result {
	PGresult *res;
};

/* Copy a libpq message as one line: newlines and tabs become blanks. */
static void
copy_message(char *dst, size_t dstsz, const char *msg)
{
	size_t i, n = 0;
	bool blank = true;

	if (dstsz == 0)
		return;
	for (i = 0; msg != NULL && msg[i] != '\0' && n + 1 < dstsz; i++) {
		char c = msg[i];

		if (c == '\n' || c == '\t' || c == '\r')
			c = ' ';
		if (c == ' ' && blank)
			continue;
		blank = c == ' ';
		dst[n++] = c;
	}
	while (n > 0 && dst[n - 1] == ' ')
		n--;
	dst[n] = '\0';
}

static void
notice_processor(void *arg, const char *message)
{
	char line[DB_ERR_MAX];

	(void)arg;
	copy_message(line, sizeof(line), message);
	log_debug("database: %s", line);
}

static void
clear_error(struct db *db)
{
	db->error[0] = '\0';
	db->sqlstate[0] = '\0';
}

/* Record why res (may be NULL) failed; returns the errno to report. */
static int
set_error(struct db *db, const PGresult *res)
{
	const char *msg = NULL, *state = NULL;

	if (res != NULL) {
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	}
	if (msg == NULL)
		msg = PQerrorMessage(db->conn);
	copy_message(db->error, sizeof(db->error), msg);
	if (db->error[0] == '\0')
		snprintf(db->error, sizeof(db->error), "unknown error");
	snprintf(db->sqlstate, sizeof(db->sqlstate), "%s",
	    state != NULL ? state : "");
	if (PQstatus(db->conn) == CONNECTION_BAD)
		return -ECONNRESET;
	return -EIO;
}

int
db_connect(const struct db_params *p, struct db **ret_db, char *err,
    size_t errsz)
{
	const char *keys[8], *vals[8];
	char timeout[32], sql[64];
	struct db *db = NULL;
	int n = 0, r;

	if (p == NULL || p->conninfo == NULL) {
		snprintf(err, errsz, "database: no conninfo");
		return -EINVAL;
	}
	if ((db = calloc(1, sizeof(*db))) == NULL) {
		snprintf(err, errsz, "database: out of memory");
		return -ENOMEM;
	}
	/* dbname first: what follows overrides what the conninfo says. */
	keys[n] = "dbname";
	vals[n++] = p->conninfo;
	if (p->password != NULL) {
		keys[n] = "password";
		vals[n++] = p->password;
	}
	if (p->connect_timeout_ms > 0) {
		/* Whole seconds; libpq treats 1 as 2. */
		snprintf(timeout, sizeof(timeout), "%llu",
		    (unsigned long long)((p->connect_timeout_ms + 999) / 1000));
		keys[n] = "connect_timeout";
		vals[n++] = timeout;
	}
	keys[n] = "client_encoding";
	vals[n++] = "UTF8";
	keys[n] = "fallback_application_name";
	vals[n++] = p->application_name != NULL ? p->application_name :
	    "vetsync";
	keys[n] = NULL;
	vals[n] = NULL;

	db->conn = PQconnectdbParams(keys, vals, 1);
	if (db->conn == NULL) {
		snprintf(err, errsz, "database: out of memory");
		r = -ENOMEM;
		goto out;
	}
	if (PQstatus(db->conn) != CONNECTION_OK) {
		copy_message(db->error, sizeof(db->error),
		    PQerrorMessage(db->conn));
		snprintf(err, errsz, "database '%s': %s", p->conninfo,
		    db->error);
		r = -ECONNREFUSED;
		goto out;
	}
	PQsetNoticeProcessor(db->conn, notice_processor, NULL);
	if (PQhost(db->conn) != NULL && PQhost(db->conn)[0] == '/')
		snprintf(db->target, sizeof(db->target),
		    "socket %s/.s.PGSQL.%s dbname=%s", PQhost(db->conn),
		    PQport(db->conn), PQdb(db->conn));
	else
		snprintf(db->target, sizeof(db->target),
		    "host=%s port=%s dbname=%s", PQhost(db->conn),
		    PQport(db->conn), PQdb(db->conn));
	if (p->statement_timeout_ms > 0) {
		snprintf(sql, sizeof(sql), "SET statement_timeout = %llu",
		    (unsigned long long)p->statement_timeout_ms);
		if ((r = db_exec(db, sql)) < 0) {
			snprintf(err, errsz, "database %s: %s", db->target,
			    db->error);
			goto out;
		}
	}
	*ret_db = db;
	db = NULL;
	r = 0;
out:
	db_free(db);
	return r;
}

int
db_connect_config(const struct config *cf, const char *application_name,
    struct db **ret_db, char *err, size_t errsz)
{
	struct db_params p = {
		.conninfo = cf->database.conninfo,
		.application_name = application_name,
		.connect_timeout_ms = cf->database.connect_timeout_ms,
		.statement_timeout_ms = cf->database.statement_timeout_ms,
	};
	struct buf secret;
	char serr[SECRET_ERR_MAX];
	int r;

	buf_init(&secret, 0);
	r = secret_read(SECRET_DB_PASSWORD, &secret, serr, sizeof(serr));
	if (r < 0 && r != -ENOENT) {
		snprintf(err, errsz, "database: %s", serr);
		return r;
	}
	if (r == 0)
		p.password = secret.data;
	r = db_connect(&p, ret_db, err, errsz);
	buf_release_secret(&secret);
	return r;
}

void
db_free(struct db *db)
{
	if (db == NULL)
		return;
	if (db->conn != NULL)
		PQfinish(db->conn);
	free(db);
}

const char *
db_error(const struct db *db)
{
	return db->error;
}

const char *
db_sqlstate(const struct db *db)
{
	return db->sqlstate;
}

const char *
db_target(const struct db *db)
{
	return db->target;
}

int
db_exec(struct db *db, const char *sql)
{
	PGresult *res;
	int r = 0;

	clear_error(db);
	if (!PQsendQuery(db->conn, sql))
		return set_error(db, NULL);
	/* Several statements give several results; the first error counts. */
	while ((res = PQgetResult(db->conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);

		if (r == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
		    st != PGRES_EMPTY_QUERY)
			r = set_error(db, res);
		PQclear(res);
	}
	if (r == 0 && PQstatus(db->conn) == CONNECTION_BAD)
		r = set_error(db, NULL);
	return r;
}

static int
check_params(struct db *db, int nparams)
{
	clear_error(db);
	if (nparams < 0 || nparams > DB_PARAMS_MAX) {
		snprintf(db->error, sizeof(db->error),
		    "%d parameters, at most %d", nparams, DB_PARAMS_MAX);
		return -EINVAL;
	}
	return 0;
}

int
db_query(struct db *db, const char *sql, int nparams,
    const char *const *params, struct db_result **ret)
{
	struct db_result *result = NULL;
	PGresult *res;
	int r;

	if ((r = check_params(db, nparams)) < 0)
		return r;
	res = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	if (res == NULL || (PQresultStatus(res) != PGRES_TUPLES_OK &&
	    PQresultStatus(res) != PGRES_COMMAND_OK)) {
		r = set_error(db, res);
		goto out;
	}
	if ((result = malloc(sizeof(*result))) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	result->res = res;
	res = NULL;
	*ret = result;
	r = 0;
out:
	PQclear(res);
	return r;
}

int
db_query_each(struct db *db, const char *sql, int nparams,
    const char *const *params, db_row_fn *fn, void *arg)
{
	struct db_result row;
	PGresult *res;
	int r;

	if ((r = check_params(db, nparams)) < 0)
		return r;
	if (!PQsendQueryParams(db->conn, sql, nparams, NULL, params, NULL, NULL,
	    0) || !PQsetSingleRowMode(db->conn))
		return set_error(db, NULL);
	/*
	 * Each row comes as a PGRES_SINGLE_TUPLE result, then an empty
	 * PGRES_TUPLES_OK.  Read to the end even after fn stopped or failed:
	 * the connection is usable only once every result is consumed.
	 */
	while ((res = PQgetResult(db->conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);

		if (r == 0 && st == PGRES_SINGLE_TUPLE) {
			row.res = res;
			r = fn(&row, arg);
		} else if (r == 0 && st != PGRES_TUPLES_OK &&
		    st != PGRES_COMMAND_OK) {
			r = set_error(db, res);
		}
		PQclear(res);
	}
	return r > 0 ? 0 : r;
}

int
db_begin(struct db *db, const char *mode)
{
	char sql[128];

	snprintf(sql, sizeof(sql), "BEGIN%s%s", mode != NULL ? " " : "",
	    mode != NULL ? mode : "");
	return db_exec(db, sql);
}

int
db_commit(struct db *db)
{
	return db_exec(db, "COMMIT");
}

void
db_rollback(struct db *db)
{
	char error[DB_ERR_MAX], sqlstate[6];
	PGresult *res;

	memcpy(error, db->error, sizeof(error));
	memcpy(sqlstate, db->sqlstate, sizeof(sqlstate));
	if ((res = PQexec(db->conn, "ROLLBACK")) != NULL)
		PQclear(res);
	memcpy(db->error, error, sizeof(error));
	memcpy(db->sqlstate, sqlstate, sizeof(sqlstate));
}

size_t
db_result_rows(const struct db_result *r)
{
	return (size_t)PQntuples(r->res);
}

size_t
db_result_cols(const struct db_result *r)
{
	return (size_t)PQnfields(r->res);
}

const char *
db_result_value(const struct db_result *r, size_t row, size_t col)
{
	if (row >= (size_t)PQntuples(r->res) ||
	    col >= (size_t)PQnfields(r->res))
		return NULL;
	if (PQgetisnull(r->res, (int)row, (int)col))
		return NULL;
	return PQgetvalue(r->res, (int)row, (int)col);
}

void
db_result_free(struct db_result *r)
{
	if (r == NULL)
		return;
	PQclear(r->res);
	free(r);
}
