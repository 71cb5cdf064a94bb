/*
 * The hash-chained audit log in PostgreSQL (idexx_sync_audit_log), read
 * side: verification of the chain and the latest rows.
 *
 * The chain is built by the database itself (migrations/0004_audit_log.sql):
 * a trigger gives every row a gap-free seq, the previous row's hash and
 *
 *   hash = hex SHA-256 of "vetsync-audit-v1\n" followed by the netstrings
 *          ("<bytes>:<text>," or "~" for NULL) of seq, prev_hash, id,
 *          timestamp, created_at, user_id, clinic_id, actor, action,
 *          status, ip_address, session_id, policy_hash, error_details and
 *          metadata, as text (times UTC "YYYY-MM-DDTHH:MM:SS.ffffffZ").
 *
 * auditlog_verify() computes that again here, independently of the SQL
 * that wrote it, from the latest retention checkpoint (or row 1) to the
 * chain head.  A row is broken when its seq does not follow the previous
 * one (rows deleted), its prev_hash is not the previous row's hash, or its
 * hash does not match its fields (a field changed); the chain is also broken
 * when the head records more rows than there are (rows deleted at the end).
 *
 * Both functions read as service_role when the connected role may switch to
 * it (vetsync_daemon, the owner on Supabase), since the daemon's own role
 * reads nothing; the connection keeps that role afterwards.
 *
 * Write side: vetsyncd's records go through its spool and writer
 * (audit.h, auditdb.h); auditlog_append() is the synchronous door for a
 * program with a struct db and no spool (vetsyncctl: key rotation,
 * revocation, credentials set by an operator).
 */
#ifndef VS_SUPERVISOR_AUDITLOG_H
#define VS_SUPERVISOR_AUDITLOG_H

#include <stdbool.h>
#include <stdint.h>

struct db;

#define AUDITLOG_TAIL_MAX	10000	/* rows auditlog_tail() returns */

/* One row, as text (NULL for SQL NULL); valid only during a callback. */
struct auditlog_row {
	const char *seq;
	const char *id;
	const char *timestamp;		/* UTC, as in the hash */
	const char *created_at;
	const char *user_id;
	const char *clinic_id;
	const char *actor;
	const char *action;
	const char *status;
	const char *ip_address;
	const char *session_id;
	const char *policy_hash;
	const char *error_details;	/* JSON */
	const char *metadata;		/* JSON */
	const char *prev_hash;
	const char *hash;
};

struct auditlog_verify {
	uint64_t rows;			/* rows found intact */
	int64_t first_seq;		/* first and last verified; 0: none */
	int64_t last_seq;
	int64_t checkpoint_seq;		/* the walk started after it */
	bool broken;
	int64_t broken_seq;		/* the first broken row's seq ... */
	char broken_id[40];		/* ... and id ("" at the head) */
	char reason[256];		/* what is wrong there */
};

/*
 * Walk the chain in one snapshot.  Returns 0 when the walk was done, whether
 * the chain is intact or not (*ret says which), or a db.h error when it
 * could not be (db_error() has PostgreSQL's message).
 */
int auditlog_verify(struct db *, struct auditlog_verify *ret);

/*
 * Hand the latest n rows (at most AUDITLOG_TAIL_MAX), oldest first, to fn.
 * Returns 0, fn's negative return, or a db.h error.
 */
typedef int auditlog_row_fn(const struct auditlog_row *, void *arg);
int auditlog_tail(struct db *, unsigned n, auditlog_row_fn *fn, void *arg);

/*
 * Act as service_role when the connected role may switch to it
 * (vetsync_daemon; the owner on Supabase); stay as it is otherwise.
 * Returns 0 or a db.h error.
 */
int auditlog_service_role(struct db *);

/* One row to append; NULL leaves a column NULL. */
struct auditlog_entry {
	const char *action;		/* required: "keys_rotated", ... */
	const char *clinic;		/* users.id: user_id and clinic_id */
	const char *actor;		/* NULL: "vetsyncctl" */
	const char *session_id;
	const char *status;		/* "ok", "failed", ... */
	const char *policy_hash;
	const char *error_details;	/* a JSON object's text */
	const char *metadata;		/* a JSON object's text */
};

/*
 * Append one row now, in its own statement, as service_role (as above);
 * the database links it into the chain.  A clinic id that is not a uuid
 * goes into metadata ("clinic") instead.  On success *ret_seq (may be NULL)
 * is the row's seq.  Returns 0, -EINVAL (no action, or error_details or
 * metadata not a JSON object; nothing is sent), or a db.h error.
 */
int auditlog_append(struct db *, const struct auditlog_entry *,
    int64_t *ret_seq);

#endif
