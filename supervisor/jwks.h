/*
 * The project's JWKS (api.jwks_url, CONTRACTS §3): its RS256/ES256 keys,
 * fetched with a GET through outbound.h at start, again every
 * JWKS_REFRESH_S, and on demand when a token names a kid we do not have
 * (jwks_refresh_for()).  On-demand fetches are at most one per
 * JWKS_MISS_S, so tokens with forged kids cannot make vetsyncd hammer the
 * URL.  A fetch that fails (no answer, not 200, not a JWKS, over
 * JWKS_DOC_MAX, no usable key) keeps the last good set and is tried again
 * after JWKS_RETRY_S, doubling up to JWKS_REFRESH_S.  Keys a document
 * holds but we cannot use are skipped, each logged once per fetch.
 *
 * One set per process; the api (api.c) is its only user.  The set a
 * caller gets from jwks_keys() stays valid until control returns to the
 * event loop.
 */
#ifndef VS_SUPERVISOR_JWKS_H
#define VS_SUPERVISOR_JWKS_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct jws_keys;

#define JWKS_REFRESH_S		600	/* periodic refresh */
#define JWKS_RETRY_S		30	/* first retry after a failure */
#define JWKS_MISS_S		10	/* on-demand fetches, at most one per */
#define JWKS_TIMEOUT_MS		10000	/* one fetch, whole */

/*
 * Called once a fetch has ended, fetched or not; cancelled is true when
 * vetsyncd is stopping (outbound_free() ran, or jwks_stop()).
 */
typedef void jwks_done_fn(bool cancelled);

/* The delays above, in milliseconds: vetsyncd's, or a test's. */
struct jwks_timing {
	uint64_t	refresh_ms;	/* JWKS_REFRESH_S */
	uint64_t	retry_ms;	/* JWKS_RETRY_S */
	uint64_t	miss_ms;	/* JWKS_MISS_S */
	uint64_t	timeout_ms;	/* JWKS_TIMEOUT_MS */
};

/*
 * Start fetching url on base (outbound_init() is run if it has not been)
 * with timing t (NULL: the defaults above, all four nonzero otherwise).
 * done (may be NULL) is called after every fetch.  Returns 0, or a
 * negative errno from outbound_init().
 */
int jwks_start(struct event_base *base, const char *url,
    const struct jwks_timing *t, jwks_done_fn *done);

/*
 * Stop: the timer is cancelled, a fetch in flight is forgotten (done is
 * not called for it) and the set is freed.  Safe to call twice, or
 * without jwks_start().
 */
void jwks_stop(void);

/* The current set, or NULL before the first good fetch. */
const struct jws_keys *jwks_keys(void);

/* Fetches ended since start, and those of them that failed (/metrics). */
uint64_t jwks_fetches(void);
uint64_t jwks_failures(void);

/* Whether jwks_start() ran and jwks_stop() has not. */
bool jwks_enabled(void);

/*
 * A token named a kid the set does not hold.  Returns true when a fetch
 * is in flight after the call (started now, or already running): done
 * will be called when it ends.  False when no fetch may start now (the
 * last on-demand one was under JWKS_MISS_S ago, or not started).
 */
bool jwks_refresh_for_miss(void);

#endif
