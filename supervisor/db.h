/*
 * The supervisor's one door to PostgreSQL: every libpq call of vetsync is
 * in db.c (STYLE §1), and no libpq type crosses this header.
 *
 * A struct db is one connection.  It is opened from the configuration's
 * database.conninfo with the db-password secret, when there is one, laid
 * over it (PQconnectdbParams with expand_dbname: the conninfo is expanded
 * first, so the password, the client encoding (always UTF-8) and the
 * connect timeout given here win over anything it says).  Without a
 * db-password secret libpq's own sources apply (PGPASSWORD, ~/.pgpass).
 *
 * The synchronous face, for vetsyncctl and for start-up: each call blocks
 * until PostgreSQL has answered.  The event loop's face (non-blocking
 * connect, pipelined units of work, reconnection) is db_async_*() at the
 * end, with a connection of its own.
 *
 * Errors: functions return 0 or a negative errno, and keep PostgreSQL's own
 * message and SQLSTATE for db_error() and db_sqlstate() until the next
 * call.  -ECONNREFUSED: could not connect; -ECONNRESET: the connection was
 * lost; -EIO: the server refused the statement (see db_sqlstate());
 * -ENOMEM; -EINVAL: bad arguments.  Messages name the target, never the
 * password.
 */
#ifndef VS_SUPERVISOR_DB_H
#define VS_SUPERVISOR_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct db;
struct db_result;

#define DB_ERR_MAX	1024	/* a message buffer that fits */
#define DB_PARAMS_MAX	32	/* parameters of one statement */

struct db_params {
	const char *conninfo;		/* keyword=value string or URI */
	const char *password;		/* NULL: libpq's own sources */
	const char *application_name;	/* fallback_application_name */
	uint64_t connect_timeout_ms;	/* 0: the conninfo's or libpq's */
	uint64_t statement_timeout_ms;	/* 0: the server's */
};

/*
 * Connect.  On success *ret_db is a new connection (db_free()).  On
 * failure returns -ECONNREFUSED (or -ENOMEM) and writes into err a message
 * naming the conninfo and what libpq said ("connection to server at ...,
 * port ... failed: ...").
 */
int db_connect(const struct db_params *, struct db **ret_db, char *err,
    size_t errsz);

/*
 * Connect as vetsyncd would: database.conninfo and its timeouts from cf,
 * the password from the db-password secret if present.  A secret that
 * exists but is refused (mode, size) is an error, not a fallback.
 */
int db_connect_config(const struct config *cf, const char *application_name,
    struct db **ret_db, char *err, size_t errsz);

/* Close and free; NULL is fine. */
void db_free(struct db *);

/* PostgreSQL's last message (one line), or "" if the last call succeeded. */
const char *db_error(const struct db *);
/* The last error's SQLSTATE ("42501"), or "" if there was none. */
const char *db_sqlstate(const struct db *);
/* What the connection reached, for messages: "host=... port=... dbname=...". */
const char *db_target(const struct db *);

/* Run one or more statements without parameters; results are discarded. */
int db_exec(struct db *, const char *sql);

/*
 * Run one statement with nparams (at most DB_PARAMS_MAX) text parameters
 * ($1, ...; NULL pointers are SQL NULL).  On success *ret is its result, all
 * rows in memory; free it with db_result_free().
 */
int db_query(struct db *, const char *sql, int nparams,
    const char *const *params, struct db_result **ret);

/*
 * Like db_query(), but hand the rows to fn one at a time as they arrive
 * (libpq single-row mode), so a result of any size costs one row of memory.
 * The row is a result of one row, valid only during the call.  fn returns 0
 * to go on, a positive number to stop early (db_query_each() then returns
 * 0), or a negative errno to stop with that error.
 */
typedef int db_row_fn(const struct db_result *row, void *arg);
int db_query_each(struct db *, const char *sql, int nparams,
    const char *const *params, db_row_fn *fn, void *arg);

/* BEGIN [mode] (e.g. "ISOLATION LEVEL REPEATABLE READ READ ONLY"). */
int db_begin(struct db *, const char *mode);
int db_commit(struct db *);
/* ROLLBACK; keeps the error of the failure that led here for db_error(). */
void db_rollback(struct db *);

size_t db_result_rows(const struct db_result *);
size_t db_result_cols(const struct db_result *);
/* The text of a value, or NULL for SQL NULL (or a row/column out of range). */
const char *db_result_value(const struct db_result *, size_t row,
    size_t col);
void db_result_free(struct db_result *);

/*
 * The event loop's face: one connection driven by libevent, never blocking.
 *
 * db_async_new() starts a non-blocking connect (PQconnectStartParams,
 * PQconnectPoll on the socket's events); if it fails, or the connection is
 * lost later, it tries again with a doubling backoff (0.5 s .. 10 s),
 * logging once per change of state (connected / unreachable).
 *
 * Work is submitted as units: a unit is a list of statements sent together
 * in pipeline mode (one round trip), normally BEGIN ... COMMIT, run in FIFO
 * order, one at a time.  A unit's callback runs exactly once: with 0 when
 * every statement succeeded, or -EIO when the server refused one (the
 * message is passed; the unit's transaction is rolled back), or
 * -ECANCELED when the layer is freed with the unit still queued.  When the
 * connection is lost while a unit is in flight (a server restart), the
 * unit is sent again, whole, once reconnected; so a unit must be a single
 * transaction whose effect is the same if applied twice (its COMMIT may
 * have happened before the connection dropped).  A unit that fails on a
 * serialization failure or a deadlock is rolled back and sent again, up
 * to 3 times.
 *
 * The queue is bounded by the bytes its units hold (their SQL, parameters
 * and bookkeeping; DB_QUEUE_MAX_DEFAULT unless db_async_set_queue_max()
 * says otherwise): a unit that would take it past the cap is refused,
 * its callback run with -ENOBUFS before db_async_submit() returns (the
 * caller still has its data), and a warning logged once until the queue
 * has drained to half the cap.  Smaller units may still fit.
 */
struct db_async;
struct db_unit;
struct event_base;

typedef void db_unit_cb(int r, const char *error, void *arg);

int db_async_new(struct event_base *, const struct db_params *,
    struct db_async **ret);
/* As db_connect_config(): database.* and the db-password secret. */
int db_async_new_config(struct event_base *, const struct config *,
    const char *application_name, struct db_async **ret, char *err,
    size_t errsz);
/* Close; queued units' callbacks run with -ECANCELED.  NULL is fine. */
void db_async_free(struct db_async *);
bool db_async_connected(const struct db_async *);
/* Units queued or in flight. */
size_t db_async_pending(const struct db_async *);

/* A new, empty unit; cb (may be NULL) runs once it is done. */
struct db_unit *db_unit_new(db_unit_cb *cb, void *arg);

/*
 * A unit whose callback also gets the rows of its last statement that
 * returned tuples (a SELECT, or an INSERT ... RETURNING; even with no row).
 * rows is valid only during the callback and is read with db_result_*();
 * it is NULL when r < 0, and never NULL when r is 0 (no row, no column
 * when no statement returned tuples).  Retries and resending after a
 * reconnect are as for any unit: only the rows of the run that succeeded
 * are seen.
 */
typedef void db_unit_rows_cb(int r, const char *error,
    const struct db_result *rows, void *arg);
struct db_unit *db_unit_new_rows(db_unit_rows_cb *cb, void *arg);
/*
 * Append a statement with nparams text parameters (copied; NULL is SQL
 * NULL).  Returns 0, -EINVAL (too many parameters) or -ENOMEM.
 */
int db_unit_add(struct db_unit *, const char *sql, int nparams,
    const char *const *params);
/*
 * As db_unit_add(), for a statement run often: the layer prepares it once
 * per connection (named, on first use, in the same round trip as the unit
 * that needs it; again after a reconnect) and then only binds and
 * executes it, so the server parses and plans it once rather than each
 * time.  Statements are told apart by their text; past DB_PREPARED_MAX
 * different texts the rest are sent as db_unit_add() would.
 */
#define DB_PREPARED_MAX	32
int db_unit_add_prepared(struct db_unit *, const char *sql, int nparams,
    const char *const *params);

/*
 * Hand the unit over (db owns it from here, and frees it after its cb;
 * when the queue refuses it, that is before this returns).
 */
void db_async_submit(struct db_async *, struct db_unit *);

#define DB_QUEUE_MAX_DEFAULT	((size_t)64 << 20)	/* bytes */
/* Cap the queue at bytes (> 0, else -EINVAL); for units queued later. */
int db_async_set_queue_max(struct db_async *, size_t bytes);
/* The bytes held by units queued or in flight. */
size_t db_async_queued_bytes(const struct db_async *);
/* Free a unit that was never submitted; NULL is fine. */
void db_unit_free(struct db_unit *);

/*
 * LISTEN/NOTIFY on the layer's connection.  db_async_listen() registers fn
 * for channel (a lowercase identifier, [a-z_][a-z0-9_]*, at most
 * DB_CHANNEL_MAX bytes: -EINVAL otherwise) for the layer's lifetime.  The
 * LISTEN is sent at once when connected (ahead of queued units, behind the
 * one in flight), and again first thing on every new connection.
 *
 * fn(channel, payload, arg) runs for each notification as soon as the
 * socket has it, whether units are in flight or not (payload "" when the
 * NOTIFY had none).  fn(channel, NULL, arg) means "notifications may have
 * been missed: resynchronise": it runs once per listener each time the
 * LISTEN is re-established on a new connection (after a reconnect; and on
 * the first connection for a listener registered before it), after the
 * LISTEN took effect, so nothing sent after the call is missed.
 */
#define DB_CHANNEL_MAX	63

typedef void db_notify_fn(const char *channel, const char *payload,
    void *arg);
int db_async_listen(struct db_async *, const char *channel, db_notify_fn *fn,
    void *arg);
/* True for a channel name db_async_listen() accepts. */
bool db_channel_valid(const char *);

#endif
