/*
 * vetsyncd's HTTP API (DESIGN §7, PRD §7): the one module that serves HTTP
 * (STYLE §1).  evhttp on the supervisor's event base, plain or TLS
 * (api.tls_cert / api.tls_key), on api.listen.
 *
 * Routes: GET /health, GET /metrics (Prometheus text 0.0.4), GET /dashboard,
 * GET /api/idexx/events (server-sent events), and, with a Supabase JWT
 * (jwt.h), POST /api/idexx/configure-credentials, GET
 * /api/idexx/sync-status, POST /api/idexx/trigger-sync, DELETE
 * /api/idexx/credentials, GET /api/admin/idexx-sync/metrics (admin or
 * service role).  Other modules register raw POST endpoints with
 * api_delivery_register() (the QStash delivery of discharge calls).
 *
 * /health, /metrics, /dashboard and /api/idexx/events need no token: they
 * are an operator's view, served on api.listen (127.0.0.1 by default), and
 * show clinic ids, states and counts, never credentials.  The user routes
 * answer: 401 (token missing, forged, expired, another audience), 403
 * (not an admin), 503 (no jwt-secret, database down, stopping);
 * configure-credentials answers 200 (valid), 422 (IDEXX refused them) or
 * 503 (IDEXX could not tell) with the PRD's body.
 *
 * Every error is a JSON body {"error": "..."} naming what was wrong; bodies
 * are bounded by api.body_max (413), headers by API_HEADERS_MAX; no secret
 * (password, token, signature) is logged or echoed.
 */
#ifndef VS_SUPERVISOR_API_H
#define VS_SUPERVISOR_API_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct db_async;

#define API_ERR_MAX		512	/* a message buffer that fits */
#define API_HEADERS_MAX		8192	/* bytes of request headers */
#define API_SSE_MAX		32	/* event-stream subscribers */
#define API_DELIVERY_MAX	8	/* registered delivery paths */

/*
 * Listen on sv->config->api.listen and serve from sv->base.  db is the
 * event loop's database layer (may be NULL: routes that need it answer
 * 503).  The jwt-secret secret is read now; without it, and without
 * api.jwks_url, the user routes answer 503.  Returns 0, or a negative
 * errno with a message in err.
 */
int api_start(struct db_async *db, char *err, size_t errsz);

/*
 * Stop listening, end the event streams and free everything; requests
 * still waiting for an answer are dropped.  Safe to call twice, or without
 * api_start().
 */
void api_stop(void);

/*
 * Publish an event (type: "job_start", "job_end", "progress", ..., a word
 * of [a-z_], else dropped; data is borrowed and may be NULL) to the
 * event-stream subscribers.  Cheap when there are none; safe to call
 * before api_start() or after api_stop().
 */
void api_event(const char *type, json_t *data);

/*
 * The scheduler's hooks (clinics.c): a job started, a job ended (counted
 * for /metrics by kind and result, and published as "job_start" and
 * "job_end" events with the clinic's state).
 */
struct worker_job;
struct worker_outcome;
void api_job_started(const struct worker_job *);
void api_job_ended(const struct worker_job *, const struct worker_outcome *);

struct api_request;
/* Raw POST to the delivery path: the handler answers later with api_reply(). */
typedef void api_delivery_fn(struct api_request *, const char *upstash_signature,
    const char *upstash_message_id, const char *upstash_retried,
    const unsigned char *body, size_t len, void *arg);
void api_delivery_register(const char *path, api_delivery_fn *fn, void *arg);
/* Answer a request (any route) with status and a JSON body (reference stolen; NULL: empty). */
void api_reply(struct api_request *, int status, json_t *body);

#endif
