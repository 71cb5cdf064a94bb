/*
 * api.jwks_url's key set (jwks.h).  One fetch at a time: a fetch carries
 * a small struct of its own as the outbound callback's argument, so
 * jwks_stop() can forget a fetch still in flight (the struct is freed by
 * the callback outbound_free() runs later) without outbound.h having to
 * cancel one request.
 *
 * Before the first good fetch the set is empty, not NULL: a token by any
 * kid is then "kid not in the set", which asks for a fetch.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xmalloc.h"

#include "supervisor/jwks.h"
#include "supervisor/jws.h"
#include "supervisor/outbound.h"

struct fetch {
	bool	orphan;		/* jwks_stop() ran: free and go */
};

static struct {
	bool		 enabled;
	char		*url;
	jwks_done_fn	*done;
	struct jws_keys	*keys;
	struct event	*timer;
	struct fetch	*inflight;
	uint64_t	 last_miss_ms;	/* the last on-demand fetch, mono */
	bool		 have_miss;
	struct jwks_timing t;		/* in ms */
	uint64_t	 retry_ms;	/* the next delay after a failure */
	uint64_t	 fetches;	/* ended, since start */
	uint64_t	 failed;
} jw;

static void fetch_start(void);

static void
schedule(uint64_t ms)
{
	struct timeval tv = clock_timeval_ms(ms);

	evtimer_add(jw.timer, &tv);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	fetch_start();
}

#define SKIPS_LOGGED	8	/* skipped keys named, per fetch */

/* The keys a document holds that we cannot use, to be logged once. */
struct skips {
	size_t		 n;
	size_t		 index[SKIPS_LOGGED];
	const char	*why[SKIPS_LOGGED];	/* static strings of jws.c */
};

static void
skipped(size_t index, const char *why, void *arg)
{
	struct skips *s = arg;

	if (s->n < SKIPS_LOGGED) {
		s->index[s->n] = index;
		s->why[s->n] = why;
	}
	s->n++;
}

/*
 * Name the skipped keys: as a warning when the set changed or could not
 * be taken, else (the same document again) at debug level, so a key we
 * cannot use is not warned about every JWKS_REFRESH_S.
 */
static void
log_skips(const struct skips *s, bool warn)
{
	char line[JWS_REASON_MAX + 64];

	for (size_t i = 0; i < s->n && i <= SKIPS_LOGGED; i++) {
		if (i == SKIPS_LOGGED)
			snprintf(line, sizeof(line), "%zu more keys skipped",
			    s->n - SKIPS_LOGGED);
		else
			snprintf(line, sizeof(line), "key %zu skipped: %s",
			    s->index[i], s->why[i]);
		if (warn)
			log_warnx("api.jwks_url: %s", line);
		else
			log_debug("api.jwks_url: %s", line);
	}
}

/* Whether r brought a set we took. */
static bool
take(const struct outbound_response *r)
{
	struct jws_keys *set = NULL;
	struct skips sk = { 0 };
	char err[JWS_REASON_MAX];
	bool same;

	if (r->error < 0) {
		log_warnx("api.jwks_url: %s; keeping the %zu key(s) we have",
		    r->error_text, jws_keys_count(jw.keys));
		return false;
	}
	if (r->status != 200) {
		log_warnx("api.jwks_url: answered %ld, not 200; keeping the "
		    "%zu key(s) we have", r->status, jws_keys_count(jw.keys));
		return false;
	}
	if (jws_keys_parse(r->body, r->len, skipped, &sk, &set, err,
	    sizeof(err)) < 0) {
		log_skips(&sk, true);
		log_warnx("api.jwks_url: %s; keeping the %zu key(s) we have",
		    err, jws_keys_count(jw.keys));
		return false;
	}
	same = jws_keys_same(set, jw.keys);
	log_skips(&sk, !same);
	if (same)
		log_debug("api.jwks_url: %zu key(s), unchanged",
		    jws_keys_count(set));
	else
		log_info("api.jwks_url: %zu key(s) in use (was %zu)",
		    jws_keys_count(set), jws_keys_count(jw.keys));
	jws_keys_free(jw.keys);
	jw.keys = set;
	return true;
}

static void
fetched(const struct outbound_response *r, void *arg)
{
	struct fetch *f = arg;

	if (f->orphan) {
		free(f);
		return;
	}
	jw.inflight = NULL;
	free(f);
	if (r->error == -ECANCELED) {
		/* vetsyncd is stopping: no more fetches. */
		evtimer_del(jw.timer);
		if (jw.done != NULL)
			jw.done(true);
		return;
	}
	jw.fetches++;
	if (take(r)) {
		jw.retry_ms = jw.t.retry_ms;
		schedule(jw.t.refresh_ms);
	} else {
		jw.failed++;
		schedule(jw.retry_ms);
		jw.retry_ms = jw.retry_ms * 2 > jw.t.refresh_ms ?
		    jw.t.refresh_ms : jw.retry_ms * 2;
	}
	if (jw.done != NULL)
		jw.done(false);
}

static void
fetch_start(void)
{
	struct outbound_request rq = {
		.method = "GET",
		.url = jw.url,
		.headers = { "Accept: application/json", NULL },
		.timeout_ms = jw.t.timeout_ms,
		.response_max = JWKS_DOC_MAX,
	};
	struct fetch *f;
	int r;

	if (!jw.enabled || jw.inflight != NULL)
		return;
	evtimer_del(jw.timer);
	f = xcalloc(1, sizeof(*f));
	if ((r = outbound_send(&rq, fetched, f)) < 0) {
		free(f);
		log_warnx("api.jwks_url %s: cannot fetch: %s", log_q(jw.url),
		    strerror(-r));
		if (r != -ESHUTDOWN)
			schedule(jw.retry_ms);
		return;
	}
	log_debug("api.jwks_url: fetching %s", log_q(jw.url));
	jw.inflight = f;
}

/* Whether the host part of a URL (after the scheme) is a loopback one. */
static bool
loopback(const char *host)
{
	static const char *const names[] = { "127.", "localhost/",
	    "localhost:", "[::1]" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strncmp(host, names[i], strlen(names[i])) == 0)
			return true;
	return strcmp(host, "localhost") == 0;
}

int
jwks_start(struct event_base *base, const char *url,
    const struct jwks_timing *t, jwks_done_fn *done)
{
	int r;

	if (jw.enabled)
		return 0;
	if ((r = outbound_init(base)) < 0)
		return r;
	if ((jw.timer = evtimer_new(base, timer_cb, NULL)) == NULL)
		return -ENOMEM;
	if (strncmp(url, "http://", 7) == 0 && !loopback(url + 7))
		log_warnx("api.jwks_url %s is plain http: whoever is on the "
		    "path can serve keys vetsyncd will trust", log_q(url));
	jw.url = xstrdup(url);
	jw.done = done;
	jw.keys = jws_keys_new();
	jw.t.refresh_ms = t != NULL ? t->refresh_ms : JWKS_REFRESH_S * 1000;
	jw.t.retry_ms = t != NULL ? t->retry_ms : JWKS_RETRY_S * 1000;
	jw.t.miss_ms = t != NULL ? t->miss_ms : JWKS_MISS_S * 1000;
	jw.t.timeout_ms = t != NULL ? t->timeout_ms : JWKS_TIMEOUT_MS;
	jw.retry_ms = jw.t.retry_ms;
	jw.have_miss = false;
	jw.enabled = true;
	fetch_start();
	return 0;
}

void
jwks_stop(void)
{
	if (jw.inflight != NULL)
		jw.inflight->orphan = true;
	jw.inflight = NULL;
	if (jw.timer != NULL)
		event_free(jw.timer);
	jw.timer = NULL;
	jws_keys_free(jw.keys);
	jw.keys = NULL;
	free(jw.url);
	jw.url = NULL;
	jw.done = NULL;
	jw.enabled = false;
}

const struct jws_keys *
jwks_keys(void)
{
	return jw.keys;
}

uint64_t
jwks_fetches(void)
{
	return jw.fetches;
}

uint64_t
jwks_failures(void)
{
	return jw.failed;
}

bool
jwks_enabled(void)
{
	return jw.enabled;
}

bool
jwks_refresh_for_miss(void)
{
	uint64_t now = clock_mono_ms();

	if (!jw.enabled)
		return false;
	if (jw.inflight != NULL)
		return true;
	if (jw.have_miss && now - jw.last_miss_ms < jw.t.miss_ms)
		return false;
	jw.have_miss = true;
	jw.last_miss_ms = now;
	fetch_start();
	return jw.inflight != NULL;
}
