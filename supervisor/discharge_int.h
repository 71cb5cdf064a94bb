/*
 * What discharge.c (outbox, publisher) and discharge_deliver.c (the
 * endpoint) share; not for other modules.
 */
#ifndef VS_SUPERVISOR_DISCHARGE_INT_H
#define VS_SUPERVISOR_DISCHARGE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/buf.h"

#include "supervisor/db.h"

struct event;

struct discharge_state {
	bool enabled, stopping, leasing;
	size_t busy;			/* requests of the batch unrecorded */
	struct db_async *db;
	struct event *timer;
	char *instance;
	char *qstash_url;		/* no trailing '/' */
	char *delivery_url;
	uint64_t delay_ms;
	unsigned retries;
	struct buf token;		/* secrets, wiped when released */
	struct buf current_key;
	struct buf next_key;
	struct buf vapi_key;
};

extern struct discharge_state ds;

/* BEGIN, SET LOCAL ROLE service_role, sql (prepared), COMMIT. */
struct db_unit *discharge_service_unit(db_unit_rows_cb *cb, void *arg,
    const char *sql, int n, const char *const *p);
/* {"class", "status", "detail"} as JSON text; free() it. */
char *discharge_error_json(const char *cls, long status, const char *detail);
/* An audit record of a call; more (stolen) may be NULL. */
void discharge_audit(const char *event, const char *user, const char *status,
    const char *call, const char *consultation, json_t *more);
uint64_t discharge_random(void);

/* discharge_deliver.c: register the endpoint; 0 or -EINVAL (bad URL). */
int discharge_deliver_start(void);

#endif
