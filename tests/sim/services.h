/*
 * The simulator's stand-ins for the outside services of a discharge call
 * (CONTRACTS §1 and §4): QStash v2 (tests/sim/qstash.c, qstash_deliver.c)
 * and VAPI's create-call (tests/sim/vapi.c), behind tests/sim/services.c.
 * They share idexx_sim's port and event loop; idexx_sim.c hands them their
 * paths and their control knobs.
 *
 * QStash keeps its own clock, which starts at the wall clock and can run
 * faster (qstash_clock_scale) or jump (qstash_advance), so a message due
 * in two days is delivered in a test within seconds.  Delays, retries and
 * dedup windows follow that clock; the signatures it makes carry the wall
 * clock, as the receiver checks them against its own.
 *
 * Every answer goes out through services_reply(); nothing here logs a
 * token, a key or a body.
 *
 * Command line: --qstash-token T, --qstash-current-key K, --qstash-next-key
 * K, --qstash-clock-scale N (0 stops the clock), --vapi-key K.
 *
 * Knobs, in a POST /__sim/control body beside the IDEXX ones:
 *   qstash_clock_scale N        the clock runs N times real time
 *   qstash_advance S            move the clock S seconds on, once
 *   qstash_fail_next N          answer the next N publishes with ...
 *   qstash_fail_code C          ... 429 or a 5xx (default 500)
 *   qstash_rate_429 F, qstash_rate_5xx F   that fraction of publishes
 *   qstash_retry_after S        Retry-After (and Burst-RateLimit-Reset)
 *   qstash_down false|"503"|"close"   503 to every API call, or close the
 *                               connection without an answer
 *   qstash_slow_ms MS           answer the API that much later
 *   qstash_duplicate N          deliver the next N messages twice: after
 *                               the first success, or at once with
 *   qstash_duplicate_concurrent true
 *   qstash_sign "current"|"next"|"unknown"|"corrupt"   the key that signs
 *   qstash_sign_skew S          iat, nbf and exp moved by S seconds
 *   qstash_roll_keys "K"        current := next, next := K
 *   qstash_timeout_s, qstash_dedup_window_s (600), qstash_max_retries (5,
 *   the plan's cap), qstash_parallel (100 deliveries at once)
 *   qstash_reset true           forget every message and counter
 *   vapi_fail_next N, vapi_fail_code C, vapi_rate_5xx F, vapi_slow_ms MS,
 *   vapi_reset true
 * GET /__sim/qstash[?state=&id=&destination=&messages=0] lists the clock,
 * the knobs, the counters and the messages; GET /__sim/vapi the calls.
 *
 * PostHog's capture (tests/sim/posthog.c): --posthog-key K, and
 * --posthog-port-file F for a port of its own with the real body caps;
 * posthog_ knobs (see there); GET /__sim/posthog lists the events.
 */
#ifndef VS_TESTS_SIM_SERVICES_H
#define VS_TESTS_SIM_SERVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

struct event_base;
struct evbuffer;
struct evhttp_request;
struct evkeyvalq;
struct json_t;

struct services_opts {
	const char	*qstash_token;
	const char	*current_key;	/* QStash signing keys */
	const char	*next_key;
	uint64_t	 clock_scale;	/* QStash clock speed; 0 stops it */
	const char	*vapi_key;
	const char	*posthog_key;
	const char	*posthog_bind;	/* address of PostHog's own port */
	const char	*posthog_port_file;	/* NULL: no port of its own */
};

/* services.c */
void	 services_init(struct event_base *, const struct services_opts *);
void	 services_free(void);
/* "POST", "DELETE", ...: for log lines. */
const char	*services_method(struct evhttp_request *);
/* Send code and body after delay_ms; body is emptied, not freed. */
void	 services_reply(struct evhttp_request *, int code,
	    struct evbuffer *body, uint64_t delay_ms);
/* As services_reply(), with j (whose reference is taken) as the body. */
void	 services_reply_json(struct evhttp_request *, int code,
	    struct json_t *j, uint64_t delay_ms);
/* Append j compactly to b and drop the reference to j. */
void	 services_dump(struct evbuffer *b, struct json_t *j);
/* Knob values: integers in [0, max]; fractions in [0, 1] as millionths. */
int	 services_json_u64(struct json_t *, uint64_t max, uint64_t *ret);
int	 services_json_rate(struct json_t *, uint64_t *ret_micro);
/* True when path is QStash's or VAPI's; the request is then answered. */
bool	 services_route(struct evhttp_request *, const char *path);
/* GET /__sim/qstash: the clock, the counters and every message. */
void	 qstash_inspect(struct evkeyvalq *query, struct evbuffer *);

/*
 * A /__sim/control request names IDEXX knobs and qstash_ / vapi_ knobs.
 * services_control_begin() checks and stages ours and returns the rest as
 * JSON in *ret_rest (the caller frees it) for control_apply(); then
 * services_control_end(true) applies what was staged, or (false) drops it,
 * so a request that is bad anywhere changes nothing.
 */
int	 services_control_begin(const char *json, size_t len, struct buf *err,
	    char **ret_rest);
void	 services_control_end(bool apply);

/* vapi.c */
void	 vapi_init(const char *key);
void	 vapi_free(void);
void	 vapi_call(struct evhttp_request *);
void	 vapi_inspect(struct evbuffer *);
/* Stage one vapi_ knob: 0, -ENOENT (unknown) or -EINVAL (bad value). */
int	 vapi_control_stage(const char *key, struct json_t *value);
void	 vapi_control_end(bool apply);

/* posthog.c */
void	 posthog_init(struct event_base *, const struct services_opts *);
void	 posthog_free(void);
/* True when path is one of PostHog's capture paths; it is then answered. */
bool	 posthog_route(struct evhttp_request *, const char *path);
void	 posthog_inspect(struct evbuffer *);
/* Stage one posthog_ knob: 0, -ENOENT (unknown) or -EINVAL (bad value). */
int	 posthog_control_stage(const char *key, struct json_t *value);
void	 posthog_control_end(bool apply);

#endif
