/*
 * What the files of the HTTP API share: api.c (requests, dispatch,
 * authentication, TLS, /health and /metrics), api_idexx.c (the PRD §7
 * routes) and api_events.c (the event stream and the dashboard).  Only
 * supervisor/api*.c include it.
 *
 * A struct api_request is owned by the API until it is answered with
 * api_reply() (or api_error(), api_reply_text()), which frees it;
 * req is NULL once the client went away.
 */
#ifndef VS_SUPERVISOR_API_INT_H
#define VS_SUPERVISOR_API_INT_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>

#define API_KINDS	3		/* enum worker_job_kind */

struct api_request {
	struct evhttp_request *req;	/* NULL: the client went away */
	struct evhttp_connection *evcon;
	bool stream;			/* an event-stream subscriber */
	LIST_ENTRY(api_request) entry;
};
LIST_HEAD(api_requests, api_request);

struct jwt_claims;
struct db_async;

/* api.c */
struct db_async *api_db(void);		/* NULL when not started */
void api_request_detach(struct api_request *);
void api_headers(struct evhttp_request *, const char *type);
void api_count_reply(int status);
void api_error(struct api_request *, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Answer 200 with out (borrowed) as a body of type. */
void api_reply_text(struct api_request *, const char *type,
    struct evbuffer *out);
/* The body as a JSON object (wiped from the buffer), or NULL: answered. */
json_t *api_body_json(struct api_request *, bool required);
/* A string field of 1 to API_FIELD_MAX bytes, or NULL: answered 400. */
const char *api_body_string(struct api_request *, json_t *body,
    const char *name, bool required);
json_t *api_nullable(const char *);

/* api_idexx.c: the user's and the admin's routes (token checked). */
void api_route_configure(struct api_request *, const struct jwt_claims *);
void api_route_status(struct api_request *, const struct jwt_claims *);
void api_route_trigger(struct api_request *, const struct jwt_claims *);
void api_route_revoke(struct api_request *, const struct jwt_claims *);
void api_route_admin(struct api_request *, const struct jwt_claims *);

/* api_events.c */
void api_route_dashboard(struct api_request *, const struct jwt_claims *);
void api_route_events(struct api_request *, const struct jwt_claims *);
/* Every known clinic's state and counts, a new array. */
json_t *api_clinics_json(void);
/* The event stream's and the jobs' lines of /metrics. */
void api_events_metrics(struct evbuffer *out);
/* A subscriber's connection closed: forget it (frees ar). */
void api_events_closed(struct api_request *);
void api_events_start(void);
/* End every stream (evhttp_free() frees their requests) and the timer. */
void api_events_stop(void);

#endif
