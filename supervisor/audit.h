/*
 * The supervisor's audit trail: one writer, structured records.
 *
 * Every worker exit, policy violation, protocol violation, circuit-breaker
 * trip and job start/end is recorded here with its clinic and job.  Records
 * are appended as one JSON object per line to the local spool file and
 * fsync'd before audit_record() returns, so none is lost if the process dies
 * right after.  The spool is what the database writer (hash-chained
 * idexx_sync_audit_log) replays in order; until the database is reachable
 * it is the audit log.
 *
 * Records never carry secrets: callers pass identifiers, classes and counts,
 * never credentials or page content.
 */
#ifndef VS_SUPERVISOR_AUDIT_H
#define VS_SUPERVISOR_AUDIT_H

#include <stdint.h>

#include <jansson.h>

/* Open (creating, mode 0600) the spool file; returns 0 or -errno. */
int audit_open(const char *path);
void audit_close(void);

/*
 * Append one record {"ts", "seq", "event", "clinic", "job", ...fields}.
 * fields is a JSON object whose reference is stolen (may be NULL).  A
 * failure to write is logged; the caller carries on.
 */
void audit_record(const char *event, const char *clinic, uint64_t job,
    json_t *fields);

/* Records written since audit_open(). */
uint64_t audit_count(void);

#endif
