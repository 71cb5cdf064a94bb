/*
 * PostgreSQL through libpq (db.h): the only file of vetsync that includes
 * libpq-fe.h.  The synchronous face first, then the event loop's.  Server
 * notices (CREATE ... IF NOT EXISTS and the like) go to the debug log, not
 * to stderr.
 *
 * The event loop's connection runs in pipeline mode throughout: a unit is
 * its statements and one sync, preceded by the Parses of the prepared
 * statements it is the first to need on this connection; the layer's own
 * LISTENs travel as units too, ahead of the queue.  Notifications are
 * read whenever the socket is readable, whatever is in flight.
 */
#include <sys/queue.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <libpq-fe.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/xmalloc.h"

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

/*
 * vetsyncd's connection parameters: database.* from cf, the password from
 * the db-password secret (read into secret, which the caller releases) if
 * there is one.  A secret that exists but is refused is an error.
 */
static int
params_from_config(const struct config *cf, const char *application_name,
    struct db_params *p, struct buf *secret, char *err, size_t errsz)
{
	char serr[SECRET_ERR_MAX];
	int r;

	memset(p, 0, sizeof(*p));
	p->conninfo = cf->database.conninfo;
	p->application_name = application_name;
	p->connect_timeout_ms = cf->database.connect_timeout_ms;
	p->statement_timeout_ms = cf->database.statement_timeout_ms;
	r = secret_read(SECRET_DB_PASSWORD, secret, serr, sizeof(serr));
	if (r < 0 && r != -ENOENT) {
		snprintf(err, errsz, "database: %s", serr);
		return r;
	}
	if (r == 0)
		p->password = secret->data;
	return 0;
}

int
db_connect_config(const struct config *cf, const char *application_name,
    struct db **ret_db, char *err, size_t errsz)
{
	struct db_params p;
	struct buf secret;
	int r;

	buf_init(&secret, 0);
	if ((r = params_from_config(cf, application_name, &p, &secret, err,
	    errsz)) == 0)
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

/*
 * The event loop's face.  States: DOWN (waiting for the backoff timer),
 * CONNECTING (PQconnectPoll on the socket's events), IDLE (connected,
 * nothing in flight), BUSY (the head unit sent, reading its results),
 * ROLLBACK (the head unit failed inside its transaction: a ROLLBACK is on
 * its way, then the unit's callback).
 */
#define BACKOFF_MIN_MS	500
#define BACKOFF_MAX_MS	(10 * 1000)
#define UNIT_RETRIES	3	/* serialization failures of one unit */

struct db_stmt {
	char *sql;
	int nparams;
	bool prepared;		/* by db_unit_add_prepared() */
	char *params[DB_PARAMS_MAX];
};

/*
 * A statement prepared on the connection: the first unit that uses it
 * after a (re)connect sends the Parse ahead of its own statements, in the
 * same round trip.  Prepared statements outlive the transaction that made
 * them, so ready stays until the connection is lost.
 */
struct db_prep {
	char *sql;
	char name[16];		/* "vs_1" ... */
	bool ready;		/* prepared on this connection */
};

struct db_unit {
	struct db_stmt *stmts;
	size_t n, cap;
	db_unit_cb *cb;
	db_unit_rows_cb *rows_cb;	/* instead of cb: wants the rows */
	void *arg;
	unsigned retries;	/* after serialization failures, deadlocks */
	bool listen;		/* the layer's own LISTEN */
	size_t bytes;		/* what it holds, for the queue's cap */
	TAILQ_ENTRY(db_unit) entry;
};

struct db_listener {
	char channel[DB_CHANNEL_MAX + 1];
	db_notify_fn *fn;
	void *arg;
	TAILQ_ENTRY(db_listener) entry;
};

enum async_state { A_DOWN, A_CONNECTING, A_IDLE, A_BUSY, A_ROLLBACK };

struct db_async {
	struct event_base *base;
	char *conninfo, *password, *appname;
	char timeout[32], options[64];
	PGconn *conn;
	enum async_state state;
	struct event *sock_ev;
	struct event *timer;
	uint64_t backoff_ms;
	bool was_up, logged_down;
	TAILQ_HEAD(db_unit_queue, db_unit) queue;
	size_t pending;
	size_t queued_bytes, queue_max;
	bool full;		/* refusing since the last time it drained */
	size_t refused;		/* units refused in this episode */
	TAILQ_HEAD(, db_listener) listeners;
	/* The head unit in flight. */
	bool failed;
	bool retry;
	char error[DB_ERR_MAX];
	PGresult *rows;		/* its last result with tuples so far */
	size_t nresults;	/* results read for it so far */
	size_t nsent_preps;	/* its first results: these Parses */
	size_t sent_preps[DB_PREPARED_MAX];
	struct db_prep preps[DB_PREPARED_MAX];
	size_t npreps;
};

static void async_connect(struct db_async *);
static void async_event_cb(evutil_socket_t, short, void *);

void
db_unit_free(struct db_unit *u)
{
	if (u == NULL)
		return;
	for (size_t i = 0; i < u->n; i++) {
		free(u->stmts[i].sql);
		for (int j = 0; j < u->stmts[i].nparams; j++)
			free(u->stmts[i].params[j]);
	}
	free(u->stmts);
	free(u);
}

struct db_unit *
db_unit_new(db_unit_cb *cb, void *arg)
{
	struct db_unit *u = xcalloc(1, sizeof(*u));

	u->cb = cb;
	u->arg = arg;
	u->bytes = sizeof(*u);
	return u;
}

struct db_unit *
db_unit_new_rows(db_unit_rows_cb *cb, void *arg)
{
	struct db_unit *u = db_unit_new(NULL, arg);

	u->rows_cb = cb;
	return u;
}

/* Run u's callback: res (may be NULL) holds its rows when r is 0. */
static void
unit_callback(struct db_unit *u, int r, const char *error, PGresult *res)
{
	struct db_result rows = { res };

	if (u->rows_cb != NULL)
		u->rows_cb(r, r == 0 ? NULL : error, r == 0 ? &rows : NULL,
		    u->arg);
	else if (u->cb != NULL)
		u->cb(r, r == 0 ? NULL : error, u->arg);
}

/* Forget the rows kept for the unit in flight (sent again, or done). */
static void
async_drop_rows(struct db_async *a)
{
	PQclear(a->rows);
	a->rows = NULL;
}

int
db_unit_add_prepared(struct db_unit *u, const char *sql, int nparams,
    const char *const *params)
{
	int r;

	if ((r = db_unit_add(u, sql, nparams, params)) == 0)
		u->stmts[u->n - 1].prepared = true;
	return r;
}

int
db_unit_add(struct db_unit *u, const char *sql, int nparams,
    const char *const *params)
{
	struct db_stmt *s;

	if (nparams < 0 || nparams > DB_PARAMS_MAX)
		return -EINVAL;
	if (u->n == u->cap) {
		u->cap = u->cap == 0 ? 8 : u->cap * 2;
		u->stmts = xreallocarray(u->stmts, u->cap, sizeof(*u->stmts));
	}
	s = &u->stmts[u->n++];
	memset(s, 0, sizeof(*s));
	s->sql = xstrdup(sql);
	s->nparams = nparams;
	u->bytes += sizeof(*s) + strlen(sql) + 1;
	for (int j = 0; j < nparams; j++) {
		if (params[j] == NULL)
			continue;
		s->params[j] = xstrdup(params[j]);
		u->bytes += strlen(params[j]) + 1;
	}
	return 0;
}

bool
db_async_connected(const struct db_async *a)
{
	return a->state >= A_IDLE;
}

size_t
db_async_pending(const struct db_async *a)
{
	return a->pending;
}

static void
async_timer(struct db_async *a, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000),
	    (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(a->timer, &tv);
}

/* Watch the connection's socket for what (EV_READ / EV_WRITE). */
static void
async_watch(struct db_async *a, short what)
{
	if (a->sock_ev != NULL) {
		event_free(a->sock_ev);
		a->sock_ev = NULL;
	}
	if (what == 0 || a->conn == NULL || PQsocket(a->conn) < 0)
		return;
	a->sock_ev = event_new(a->base, PQsocket(a->conn), what,
	    async_event_cb, a);
	if (a->sock_ev == NULL)
		fatalx("cannot create a database event");
	event_add(a->sock_ev, NULL);
}

/* The connection failed or was lost: close it, try again later. */
static void
async_down(struct db_async *a, const char *why)
{
	char msg[DB_ERR_MAX];

	copy_message(msg, sizeof(msg), why);
	async_watch(a, 0);
	evtimer_del(a->timer);
	if (a->conn != NULL) {
		PQfinish(a->conn);
		a->conn = NULL;
	}
	/* The unit in flight, if any, stays at the head: sent again. */
	async_drop_rows(a);
	for (size_t i = 0; i < a->npreps; i++)
		a->preps[i].ready = false;
	a->state = A_DOWN;
	a->failed = false;
	a->retry = false;
	if (!a->logged_down) {
		log_warnx("database '%s': %s: %s; retrying, %zu unit(s) "
		    "waiting", a->conninfo, a->was_up ? "connection lost" :
		    "cannot connect", msg, a->pending);
		a->logged_down = true;
	} else
		log_debug("database '%s': %s", a->conninfo, msg);
	if (a->backoff_ms == 0)
		a->backoff_ms = BACKOFF_MIN_MS;
	async_timer(a, a->backoff_ms);
	a->backoff_ms *= 2;
	if (a->backoff_ms > BACKOFF_MAX_MS)
		a->backoff_ms = BACKOFF_MAX_MS;
}

/*
 * The prepared statement for st, registered on first use; NULL: st is sent
 * as it is (not asked for, or DB_PREPARED_MAX statements already).
 */
static struct db_prep *
async_prep(struct db_async *a, const struct db_stmt *st)
{
	struct db_prep *p;

	if (!st->prepared)
		return NULL;
	for (size_t i = 0; i < a->npreps; i++)
		if (strcmp(a->preps[i].sql, st->sql) == 0)
			return &a->preps[i];
	if (a->npreps == DB_PREPARED_MAX)
		return NULL;
	p = &a->preps[a->npreps++];
	p->sql = xstrdup(st->sql);
	snprintf(p->name, sizeof(p->name), "vs_%zu", a->npreps);
	p->ready = false;
	return p;
}

/* Send the head unit, if idle and there is one. */
static void
async_send(struct db_async *a)
{
	struct db_unit *u;
	int r;

	if (a->state != A_IDLE || (u = TAILQ_FIRST(&a->queue)) == NULL)
		return;
	a->failed = false;
	a->retry = false;
	a->error[0] = '\0';
	a->nresults = 0;
	a->nsent_preps = 0;
	async_drop_rows(a);
	/* First the Parses this connection has not had yet. */
	for (size_t i = 0; i < u->n; i++) {
		struct db_prep *p = async_prep(a, &u->stmts[i]);
		bool sent = false;

		if (p == NULL || p->ready)
			continue;
		for (size_t k = 0; k < a->nsent_preps; k++)
			sent |= a->sent_preps[k] == (size_t)(p - a->preps);
		if (sent || a->nsent_preps == DB_PREPARED_MAX)
			continue;
		if (!PQsendPrepare(a->conn, p->name, p->sql, 0, NULL))
			goto lost;
		a->sent_preps[a->nsent_preps++] = (size_t)(p - a->preps);
	}
	for (size_t i = 0; i < u->n; i++) {
		const struct db_stmt *st = &u->stmts[i];
		const struct db_prep *p = async_prep(a, st);
		const char *const *params = (const char *const *)st->params;
		int ok;

		if (p != NULL)
			ok = PQsendQueryPrepared(a->conn, p->name, st->nparams,
			    params, NULL, NULL, 0);
		else
			ok = PQsendQueryParams(a->conn, st->sql, st->nparams,
			    NULL, params, NULL, NULL, 0);
		if (!ok)
			goto lost;
	}
	if (!PQpipelineSync(a->conn))
		goto lost;
	a->state = A_BUSY;
	if ((r = PQflush(a->conn)) < 0)
		goto lost;
	async_watch(a, EV_READ | EV_PERSIST | (r == 1 ? EV_WRITE : 0));
	return;
lost:
	async_down(a, PQerrorMessage(a->conn));
}

/* Take u off the queue (the caller frees it). */
static void
async_remove(struct db_async *a, struct db_unit *u)
{
	TAILQ_REMOVE(&a->queue, u, entry);
	a->pending--;
	a->queued_bytes -= u->bytes;
	if (a->full && a->queued_bytes <= a->queue_max / 2) {
		log_info("database '%s': queue down to %zu bytes, taking units "
		    "again (%zu refused while full)", a->conninfo,
		    a->queued_bytes, a->refused);
		a->full = false;
		a->refused = 0;
	}
}

static void
async_insert(struct db_async *a, struct db_unit *after, struct db_unit *u)
{
	if (after != NULL)
		TAILQ_INSERT_AFTER(&a->queue, after, u, entry);
	else
		TAILQ_INSERT_HEAD(&a->queue, u, entry);
	a->pending++;
	a->queued_bytes += u->bytes;
}

/* The head unit is done (not to be retried): its callback, then the next. */
static void
async_complete(struct db_async *a, int r)
{
	struct db_unit *u = TAILQ_FIRST(&a->queue);
	PGresult *res = a->rows;
	char error[DB_ERR_MAX];

	/*
	 * The callback may submit work, which sends the next unit at once:
	 * what it reads (rows, message) must not be the next unit's.
	 */
	a->rows = NULL;
	memcpy(error, a->error, sizeof(error));
	async_remove(a, u);
	a->state = A_IDLE;
	unit_callback(u, r, error, res);
	PQclear(res);
	db_unit_free(u);
	async_send(a);
}

/* Read what has arrived for the unit in flight. */
static void
async_read(struct db_async *a)
{
	PGresult *res;
	int nulls = 0;

	if (!PQconsumeInput(a->conn)) {
		async_down(a, PQerrorMessage(a->conn));
		return;
	}
	while (!PQisBusy(a->conn)) {
		ExecStatusType st;

		if ((res = PQgetResult(a->conn)) == NULL) {
			/* The end of one statement's results. */
			if (PQstatus(a->conn) == CONNECTION_BAD) {
				async_down(a, PQerrorMessage(a->conn));
				return;
			}
			if (++nulls > 1)
				break;	/* nothing more is pending */
			continue;
		}
		nulls = 0;
		st = PQresultStatus(res);
		if (a->state == A_BUSY && st != PGRES_PIPELINE_SYNC &&
		    a->nresults++ < a->nsent_preps && st == PGRES_COMMAND_OK)
			a->preps[a->sent_preps[a->nresults - 1]].ready = true;
		if (st == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			if (a->state == A_ROLLBACK && a->retry &&
			    TAILQ_FIRST(&a->queue)->retries++ < UNIT_RETRIES) {
				/* Rolled back a deadlock: send it again. */
				a->state = A_IDLE;
				async_send(a);
				return;
			}
			if (a->state == A_ROLLBACK) {
				async_complete(a, -EIO);
				return;
			}
			if (!a->failed) {
				async_complete(a, 0);
				return;
			}
			/* A failed explicit transaction: end it. */
			if (PQtransactionStatus(a->conn) == PQTRANS_INERROR ||
			    PQtransactionStatus(a->conn) == PQTRANS_INTRANS) {
				if (!PQsendQueryParams(a->conn, "ROLLBACK", 0,
				    NULL, NULL, NULL, NULL, 0) ||
				    !PQpipelineSync(a->conn) ||
				    PQflush(a->conn) < 0) {
					async_down(a, PQerrorMessage(a->conn));
					return;
				}
				a->state = A_ROLLBACK;
				continue;
			}
			if (a->retry &&
			    TAILQ_FIRST(&a->queue)->retries++ < UNIT_RETRIES) {
				/* Serialization failure: send it again. */
				a->state = A_IDLE;
				async_send(a);
				return;
			}
			async_complete(a, -EIO);
			return;
		}
		if (a->state == A_BUSY && !a->failed &&
		    st == PGRES_FATAL_ERROR) {
			const char *state = PQresultErrorField(res,
			    PG_DIAG_SQLSTATE);
			const char *msg = PQresultErrorField(res,
			    PG_DIAG_MESSAGE_PRIMARY);

			a->failed = true;
			copy_message(a->error, sizeof(a->error),
			    msg != NULL ? msg : PQerrorMessage(a->conn));
			a->retry = state != NULL &&
			    (strcmp(state, "40001") == 0 ||
			    strcmp(state, "40P01") == 0);
		} else if (a->state == A_BUSY && !a->failed &&
		    st == PGRES_TUPLES_OK &&
		    TAILQ_FIRST(&a->queue)->rows_cb != NULL) {
			/* The latest rows so far: what the callback gets. */
			PQclear(a->rows);
			a->rows = res;
			res = NULL;
		}
		PQclear(res);
	}
	if (PQstatus(a->conn) == CONNECTION_BAD)
		async_down(a, PQerrorMessage(a->conn));
}

/* A LISTEN unit is done; resync: it re-armed every channel. */
static void
listen_done(int r, const char *error, void *arg, bool resync)
{
	struct db_async *a = arg;
	struct db_listener *l, *next;

	if (r == -ECANCELED)
		return;
	if (r < 0) {
		log_warnx("database '%s': LISTEN failed: %s", a->conninfo,
		    error != NULL ? error : strerror(-r));
		return;
	}
	if (!resync)
		return;
	/* fn may add listeners (at the tail): they are told too, harmlessly. */
	for (l = TAILQ_FIRST(&a->listeners); l != NULL; l = next) {
		next = TAILQ_NEXT(l, entry);
		l->fn(l->channel, NULL, l->arg);
	}
}

static void
listen_one_done(int r, const char *error, void *arg)
{
	listen_done(r, error, arg, false);
}

static void
listen_all_done(int r, const char *error, void *arg)
{
	listen_done(r, error, arg, true);
}

/* Add u to the queue right after the unit in flight, if there is one. */
static void
async_push_front(struct db_async *a, struct db_unit *u)
{
	struct db_unit *head = TAILQ_FIRST(&a->queue);

	async_insert(a, head != NULL && (a->state == A_BUSY ||
	    a->state == A_ROLLBACK) ? head : NULL, u);
}

static void
add_listen(struct db_unit *u, const char *channel)
{
	char sql[sizeof("LISTEN ") + DB_CHANNEL_MAX];

	/* The name was checked: a plain lowercase identifier. */
	snprintf(sql, sizeof(sql), "LISTEN %s", channel);
	(void)db_unit_add(u, sql, 0, NULL);
}

/*
 * A new connection: LISTEN on every channel before anything else is sent,
 * then tell each listener what it may have missed.  Earlier LISTEN units
 * still queued are superseded.
 */
static void
async_listen_all(struct db_async *a)
{
	struct db_unit *u, *next;
	struct db_listener *l;

	for (u = TAILQ_FIRST(&a->queue); u != NULL; u = next) {
		next = TAILQ_NEXT(u, entry);
		if (u->listen) {
			async_remove(a, u);
			db_unit_free(u);
		}
	}
	if (TAILQ_EMPTY(&a->listeners))
		return;
	u = db_unit_new(listen_all_done, a);
	u->listen = true;
	TAILQ_FOREACH(l, &a->listeners, entry)
		add_listen(u, l->channel);
	async_push_front(a, u);
}

bool
db_channel_valid(const char *s)
{
	size_t i;

	if (s == NULL || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (i = 1; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return i <= DB_CHANNEL_MAX;
}

int
db_async_listen(struct db_async *a, const char *channel, db_notify_fn *fn,
    void *arg)
{
	struct db_listener *l;
	struct db_unit *u;

	if (!db_channel_valid(channel) || fn == NULL)
		return -EINVAL;
	l = xcalloc(1, sizeof(*l));
	snprintf(l->channel, sizeof(l->channel), "%s", channel);
	l->fn = fn;
	l->arg = arg;
	TAILQ_INSERT_TAIL(&a->listeners, l, entry);
	/* Not connected: async_connected() will LISTEN. */
	if (a->state < A_IDLE)
		return 0;
	u = db_unit_new(listen_one_done, a);
	u->listen = true;
	add_listen(u, l->channel);
	async_push_front(a, u);
	async_send(a);
	return 0;
}

/* Hand the notifications that have arrived to their listeners. */
static void
async_notifies(struct db_async *a)
{
	struct db_listener *l, *next;
	PGnotify *n;

	while (a->conn != NULL && a->state >= A_IDLE &&
	    (n = PQnotifies(a->conn)) != NULL) {
		for (l = TAILQ_FIRST(&a->listeners); l != NULL; l = next) {
			next = TAILQ_NEXT(l, entry);
			if (strcmp(l->channel, n->relname) == 0)
				l->fn(l->channel, n->extra != NULL ?
				    n->extra : "", l->arg);
		}
		PQfreemem(n);
	}
}

static void
async_connected(struct db_async *a)
{
	PQsetNoticeProcessor(a->conn, notice_processor, NULL);
	if (PQsetnonblocking(a->conn, 1) != 0 ||
	    !PQenterPipelineMode(a->conn)) {
		async_down(a, PQerrorMessage(a->conn));
		return;
	}
	evtimer_del(a->timer);
	a->state = A_IDLE;
	a->backoff_ms = 0;
	if (!a->was_up || a->logged_down)
		log_info("database: connected to %s/%s (%zu unit(s) waiting)",
		    PQhost(a->conn), PQdb(a->conn), a->pending);
	a->was_up = true;
	a->logged_down = false;
	async_watch(a, EV_READ | EV_PERSIST);
	async_listen_all(a);
	async_send(a);
}

static void
async_poll(struct db_async *a)
{
	switch (PQconnectPoll(a->conn)) {
	case PGRES_POLLING_READING:
		async_watch(a, EV_READ);
		break;
	case PGRES_POLLING_WRITING:
		async_watch(a, EV_WRITE);
		break;
	case PGRES_POLLING_OK:
		async_connected(a);
		break;
	default:
		async_down(a, PQerrorMessage(a->conn));
		break;
	}
}

static void
async_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_async *a = arg;
	int r;

	(void)fd;
	switch (a->state) {
	case A_CONNECTING:
		async_poll(a);
		break;
	case A_IDLE:
		/* Nothing asked: a notice, or the server going away. */
		if (!PQconsumeInput(a->conn) ||
		    PQstatus(a->conn) == CONNECTION_BAD)
			async_down(a, PQerrorMessage(a->conn));
		break;
	case A_BUSY:
	case A_ROLLBACK:
		if (what & EV_WRITE) {
			if ((r = PQflush(a->conn)) < 0) {
				async_down(a, PQerrorMessage(a->conn));
				return;
			}
			if (r == 0)
				async_watch(a, EV_READ | EV_PERSIST);
		}
		if (what & EV_READ)
			async_read(a);
		break;
	default:
		break;
	}
	/* On every readiness, whatever the state: delivered promptly. */
	async_notifies(a);
}

static void
async_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct db_async *a = arg;

	(void)fd;
	(void)what;
	if (a->state == A_CONNECTING)
		async_down(a, "connect timeout");
	else if (a->state == A_DOWN)
		async_connect(a);
}

static void
async_connect(struct db_async *a)
{
	const char *keys[8], *vals[8];
	int n = 0;

	keys[n] = "dbname";
	vals[n++] = a->conninfo;
	if (a->password != NULL) {
		keys[n] = "password";
		vals[n++] = a->password;
	}
	if (a->options[0] != '\0') {
		keys[n] = "options";
		vals[n++] = a->options;
	}
	keys[n] = "client_encoding";
	vals[n++] = "UTF8";
	keys[n] = "fallback_application_name";
	vals[n++] = a->appname;
	keys[n] = NULL;
	vals[n] = NULL;

	a->conn = PQconnectStartParams(keys, vals, 1);
	if (a->conn == NULL)
		fatalx("database: out of memory");
	if (PQstatus(a->conn) == CONNECTION_BAD) {
		async_down(a, PQerrorMessage(a->conn));
		return;
	}
	a->state = A_CONNECTING;
	/* libpq's connect_timeout is enforced by blocking calls only. */
	async_timer(a, a->timeout[0] != '\0' ?
	    strtoull(a->timeout, NULL, 10) : 10000);
	async_watch(a, EV_WRITE);
}

int
db_async_new(struct event_base *base, const struct db_params *p,
    struct db_async **ret)
{
	struct db_async *a;

	if (p == NULL || p->conninfo == NULL)
		return -EINVAL;
	a = xcalloc(1, sizeof(*a));
	a->base = base;
	a->conninfo = xstrdup(p->conninfo);
	a->password = p->password != NULL ? xstrdup(p->password) : NULL;
	a->appname = xstrdup(p->application_name != NULL ?
	    p->application_name : "vetsync");
	if (p->connect_timeout_ms > 0)
		snprintf(a->timeout, sizeof(a->timeout), "%llu",
		    (unsigned long long)p->connect_timeout_ms);
	if (p->statement_timeout_ms > 0)
		snprintf(a->options, sizeof(a->options),
		    "-c statement_timeout=%llu",
		    (unsigned long long)p->statement_timeout_ms);
	TAILQ_INIT(&a->queue);
	TAILQ_INIT(&a->listeners);
	a->queue_max = DB_QUEUE_MAX_DEFAULT;
	if ((a->timer = evtimer_new(base, async_timer_cb, a)) == NULL)
		fatalx("cannot create a database timer");
	async_connect(a);
	*ret = a;
	return 0;
}

int
db_async_new_config(struct event_base *base, const struct config *cf,
    const char *application_name, struct db_async **ret, char *err,
    size_t errsz)
{
	struct db_params p;
	struct buf secret;
	int r;

	buf_init(&secret, 0);
	if ((r = params_from_config(cf, application_name, &p, &secret, err,
	    errsz)) == 0 && (r = db_async_new(base, &p, ret)) < 0)
		snprintf(err, errsz, "database: %s", strerror(-r));
	buf_release_secret(&secret);
	return r;
}

void
db_async_submit(struct db_async *a, struct db_unit *u)
{
	char error[DB_ERR_MAX];

	/* (LISTEN units, and a lowered cap, may leave it over.) */
	if (a->queued_bytes > a->queue_max ||
	    u->bytes > a->queue_max - a->queued_bytes) {
		/* Loud, but once until the queue drains. */
		if (!a->full)
			log_warnx("database '%s': queue full (%zu unit(s), "
			    "%zu bytes, cap %zu): refusing work until it "
			    "drains", a->conninfo, a->pending,
			    a->queued_bytes, a->queue_max);
		a->full = true;
		a->refused++;
		snprintf(error, sizeof(error), "database queue full: %zu "
		    "bytes queued, a unit of %zu, cap %zu", a->queued_bytes,
		    u->bytes, a->queue_max);
		unit_callback(u, -ENOBUFS, error, NULL);
		db_unit_free(u);
		return;
	}
	async_insert(a, TAILQ_LAST(&a->queue, db_unit_queue), u);
	async_send(a);
}

int
db_async_set_queue_max(struct db_async *a, size_t bytes)
{
	if (bytes == 0)
		return -EINVAL;
	a->queue_max = bytes;
	return 0;
}

size_t
db_async_queued_bytes(const struct db_async *a)
{
	return a->queued_bytes;
}

void
db_async_free(struct db_async *a)
{
	struct db_listener *l;
	struct db_unit *u;

	if (a == NULL)
		return;
	async_watch(a, 0);
	if (a->timer != NULL)
		event_free(a->timer);
	if (a->conn != NULL)
		PQfinish(a->conn);
	snprintf(a->error, sizeof(a->error), "database layer closed");
	async_drop_rows(a);
	while ((u = TAILQ_FIRST(&a->queue)) != NULL) {
		async_remove(a, u);
		unit_callback(u, -ECANCELED, a->error, NULL);
		db_unit_free(u);
	}
	while ((l = TAILQ_FIRST(&a->listeners)) != NULL) {
		TAILQ_REMOVE(&a->listeners, l, entry);
		free(l);
	}
	for (size_t i = 0; i < a->npreps; i++)
		free(a->preps[i].sql);
	free(a->conninfo);
	if (a->password != NULL) {
		explicit_bzero(a->password, strlen(a->password));
		free(a->password);
	}
	free(a->appname);
	free(a);
}
